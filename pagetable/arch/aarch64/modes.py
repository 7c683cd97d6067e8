"""VMSAv8-64 translation formats, built from a granule, an input-address size and an OA form rather than
picked from a fixed list.

Arm ARM DDI 0487 M.a.a, D8.2 "Translation table walk" (D8.2.6 to D8.2.8: the lookup levels of the 4KB,
16KB and 64KB granules, the initial lookup level from TnSZ; D8.2.4 / D8.2.5: concatenated stage 2 initial
tables). A lookup at level L resolves `stride` (granule shift - 3) address bits above the bits of the levels
below; the initial level resolves whatever remains of the input address (at most `stride` bits at stage 1;
at stage 2 up to 4 more, from 2 to 16 concatenated tables). Blocks exist at the levels of
`descriptors.block_levels`; pages at level 3.

Level names follow Linux's arm64 page tables from the bottom: PTE (level 3), PMD (2), PUD (1), P4D (0),
the initial level always PGD.
"""

from __future__ import annotations

import functools

from ...errors import InvalidArgument
from ...format import Extension, Level, PagingFormat
from .codec import A64Codec, OutputAddress, S2Codec
from .descriptors import Granule, OAForm, Stage, block_levels, output_shift, table_levels

_NAMES = {3: "PTE", 2: "PMD", 1: "PUD", 0: "P4D"}
MAX_CONCATENATED = 16


def _levels(granule: Granule, ia_bits: int, start: int, form: OAForm) -> tuple[Level, ...]:
    blocks = block_levels(granule, form)
    out = []
    for level in range(start, 4):
        lsb = output_shift(granule, level)
        bits = ia_bits - lsb if level == start else granule.stride
        out.append(Level("PGD" if level == start else _NAMES[level], level, lsb, bits, level == 3 or level in blocks))
    return tuple(out)


def _name(stage: Stage, granule: Granule, ia_bits: int, form: OAForm, upper: bool = False) -> str:
    what = "upper-range VA" if upper else "VA" if stage is Stage.STAGE1 else "IPA"
    wide = "" if form is OAForm.OA48 else f", {form.name}"
    return f"VMSAv8-64 stage {int(stage)} {granule.label} granule, {ia_bits}-bit {what}{wide}"


@functools.cache
def stage1_format(granule: Granule, ia_bits: int, form: OAForm = OAForm.OA48, *, upper: bool = False,
                  codec: A64Codec | None = None) -> PagingFormat:
    """The stage 1 format of a 2**ia_bits region (64 - TnSZ) with `granule` and OA `form`: TTBR0's
    (addresses from 0) or, with `upper`, TTBR1's (addresses ending at 2**64). The initial level follows from
    the size (`regs.stage1_start_level`); InvalidArgument for a size the granule cannot start at (more
    than 48 bits without the 52-bit forms, fewer bits than one table below a page)."""
    limit = 52 if form is not OAForm.OA48 else 48
    if not granule.value + 1 <= ia_bits <= limit:
        raise InvalidArgument(f"a {ia_bits}-bit stage 1 region is outside what the {granule.label} granule with "
                              f"{form.value} translates (at most {limit} bits)")
    start = 4 - -(-(ia_bits - granule.value) // granule.stride)
    if start < table_levels(granule, form)[0]:
        raise InvalidArgument(f"a {ia_bits}-bit region would start at level {start}, which the {granule.label} "
                              f"granule with {form.value} does not have")
    codec = codec or A64Codec(OutputAddress(granule, form))
    return PagingFormat(_name(Stage.STAGE1, granule, ia_bits, form, upper), _levels(granule, ia_bits, start, form),
                        ia_bits, form.oa_bits, codec, Extension.ONES if upper else Extension.ZERO)


@functools.cache
def stage2_format(granule: Granule, ia_bits: int, start: int, form: OAForm = OAForm.OA48, *,
                  codec: S2Codec | None = None) -> PagingFormat:
    """The stage 2 format of a 2**ia_bits IPA space (64 - VTCR_EL2.T0SZ) starting at lookup level `start`
    (VTCR_EL2.SL0/SL2: `regs.stage2_start_level`). InvalidArgument where the two are inconsistent (the
    initial lookup would need no table, or more than 16 concatenated ones: the manual's
    AArch64.S2InconsistentSL, for which every access faults)."""
    if start not in (*table_levels(granule, form), 3):
        raise InvalidArgument(f"stage 2 with the {granule.label} granule cannot start at level {start}")
    lsb = output_shift(granule, start)
    extra = ia_bits - lsb - granule.stride
    if not 1 - granule.stride <= extra <= MAX_CONCATENATED.bit_length() - 1:
        tables = "no table" if extra < 1 - granule.stride else f"{1 << extra} concatenated tables"
        raise InvalidArgument(f"a {ia_bits}-bit IPA space starting at level {start} with the {granule.label} "
                              f"granule needs {tables} (VTCR_EL2.T0SZ and SL0 are inconsistent: every stage 2 "
                              "access would fault)")
    codec = codec or S2Codec(OutputAddress(granule, form))
    return PagingFormat(_name(Stage.STAGE2, granule, ia_bits, form), _levels(granule, ia_bits, start, form),
                        ia_bits, form.oa_bits, codec, Extension.ZERO)


def concatenated(fmt: PagingFormat, granule: Granule) -> int:
    """How many initial tables a stage 2 format concatenates (1 when its root is one table or smaller)."""
    return max(1, fmt.root_size // granule.size)


# the formats vector sets and tests name most
S1_4K_48 = stage1_format(Granule.K4, 48)
S1_4K_39 = stage1_format(Granule.K4, 39)
S1_16K_47 = stage1_format(Granule.K16, 47)
S1_64K_48 = stage1_format(Granule.K64, 48)
S1_64K_52 = stage1_format(Granule.K64, 52, OAForm.LPA)
S1_4K_52 = stage1_format(Granule.K4, 52, OAForm.LPA2)
S2_4K_40 = stage2_format(Granule.K4, 40, 1)
