"""VMSAv8-64 translation table descriptors: invalid, table, block and page, stage 1 and stage 2, for the
4KB, 16KB and 64KB granules and the three output-address forms.

Arm Architecture Reference Manual for A-profile architecture (DDI 0487 M.a.a), section D8.3.1 "VMSAv8-64
descriptor formats": D8.3.1.1 (Figure D8-12 "VMSAv8-64 Table descriptor formats", Figure D8-13, Tables
D8-50 and D8-51), D8.3.1.2 (Figures D8-14 and D8-15, the Block and Page descriptor formats, Figures D8-16
and D8-17, the stage 1 and stage 2 attribute fields, Tables D8-52 and D8-53), D8.3.1.3 (Tables D8-54 and
D8-55, the Invalid descriptor) and Table D8-48 "Determination of descriptor type".

Every layout is built by `descriptor_layout(stage, kind, granule, level, form)` from one declaration of the
shared fields (bits 1:0, the lower and upper attributes of each stage, the table attributes) and an
output-address field placed by the granule and level:
- `OAForm.OA48`: a 48-bit OA (or next-level table address, NLTA) in bits 47:m.
- `OAForm.LPA` (FEAT_LPA, 64KB granule only): a 52-bit OA with OA[51:48] in descriptor bits 15:12.
- `OAForm.LPA2` (FEAT_LPA2 with TCR_ELx.DS=1 or VTCR_EL2.DS=1, 4KB and 16KB granules only): a 52-bit OA with
  OA[49:48] in bits 49:48 and OA[51:50] in bits 9:8, where the other forms have SH[1:0] (shareability then
  comes from TCR_ELx.SHn / VTCR_EL2.SH0).
The block levels follow: 4KB level 1 and 2 (and level 0 with LPA2), 16KB level 2 (and level 1 with LPA2),
64KB level 2 (and level 1 with LPA); tables at levels 0-2 (-1 with 4KB and LPA2; 1-2 with 64KB); pages at
level 3.

Not modelled here (later features that reuse these bits, each off by default): stage 1 and stage 2
Indirect permissions (FEAT_S1PIE/S2PIE: PIIndex in bits 54:51, 7:6), Overlay permissions (POIndex in
62:59), FEAT_AIE (AttrIndx[3] at 59), FEAT_THE's Protected bit (52), FEAT_HAFT's table AF (10), Realm and
Root state (NSE, AMEC), and the VMSAv9-128 (FEAT_D128) 128-bit descriptors of D8.3.2. Field names follow the
manual; in the EL2 and EL3 regimes (one privilege level) AP[1] is RES1, nG is RES0, PXN is RES0 and UXN is
XN, which the field docs say.
"""

from __future__ import annotations

import enum
import functools

from ... import args
from ...errors import InvalidArgument
from ...format import EntryKind
from ...layout import Field, Layout

_SOURCE = "Arm ARM DDI 0487 M.a.a, D8.3.1"


class Granule(enum.IntEnum):
    """A translation granule, by its page shift (the 'm' of Figure D8-12)."""

    K4 = 12
    K16 = 14
    K64 = 16

    @property
    def size(self) -> int:
        return 1 << self.value

    @property
    def stride(self) -> int:
        """Address bits resolved per lookup level: 9, 11 or 13 (a table is one granule of 8-byte entries)."""
        return self.value - 3

    @property
    def label(self) -> str:
        return f"{self.size >> 10}KB"


class OAForm(enum.Enum):
    """How a descriptor holds its output address (D8.3.1.1, D8.3.1.2)."""

    OA48 = "48-bit OA"
    LPA = "52-bit OA, FEAT_LPA (64KB granule): OA[51:48] in bits 15:12"
    LPA2 = "52-bit OA, FEAT_LPA2 with DS=1 (4KB/16KB granules): OA[51:50] in bits 9:8, no SH field"

    @property
    def oa_bits(self) -> int:
        return 48 if self is OAForm.OA48 else 52


class Stage(enum.IntEnum):
    STAGE1 = 1
    STAGE2 = 2


def check_form(granule: Granule, form: OAForm) -> None:
    """InvalidArgument for a granule and OA form the architecture does not combine (LPA is the 64KB
    granule's 52-bit form, LPA2 the 4KB and 16KB granules')."""
    if (form is OAForm.LPA and granule is not Granule.K64) or (form is OAForm.LPA2 and granule is Granule.K64):
        raise InvalidArgument(f"{form.name} is not a form of the {granule.label} granule "
                              "(FEAT_LPA: 64KB only; FEAT_LPA2 with DS=1: 4KB and 16KB only)")


def block_levels(granule: Granule, form: OAForm = OAForm.OA48) -> tuple[int, ...]:
    """The lookup levels at which a Block descriptor exists (D8.3.1.2)."""
    check_form(granule, form)
    wide = form is not OAForm.OA48
    return {Granule.K4: (0, 1, 2) if wide else (1, 2), Granule.K16: (1, 2) if wide else (2,),
            Granule.K64: (1, 2) if wide else (2,)}[granule]


def table_levels(granule: Granule, form: OAForm = OAForm.OA48) -> tuple[int, ...]:
    """The lookup levels at which a Table descriptor exists: 4KB -1 (with LPA2) to 2, 16KB 0-2, 64KB 1-2."""
    check_form(granule, form)
    return {Granule.K4: (-1, 0, 1, 2) if form is OAForm.LPA2 else (0, 1, 2), Granule.K16: (0, 1, 2),
            Granule.K64: (1, 2)}[granule]


def output_shift(granule: Granule, level: int) -> int:
    """The least significant OA bit of a leaf at `level`: the size of the block or page it maps is
    1 << output_shift (4KB: 4K at level 3, 2M at 2, 1G at 1, 512G at 0)."""
    return granule.value + granule.stride * (3 - level)


# ------------------------------------------------------------------ the shared fields, declared once
def _valid(kind: EntryKind | None) -> list[Field]:
    """Bits 1:0 (Table D8-48): Valid, and for a valid descriptor the type bit."""
    valid = [Field("VALID", 0, 1, "valid descriptor", {0: "invalid", 1: "valid"})]
    if kind is None:
        return valid
    named = {EntryKind.TABLE: {1: "table (levels below 3)"}, EntryKind.BLOCK: {0: "block (levels below 3)"},
             EntryKind.PAGE: {1: "page (level 3)"}}[kind]
    return [*valid, Field("TYPE", 1, 1, "descriptor type", named)]


_SH = Field("SH", 8, 2, "shareability SH[1:0]", {0: "Non-shareable", 1: "reserved (CONSTRAINED UNPREDICTABLE)",
                                                  2: "Outer Shareable", 3: "Inner Shareable"})
_AF = Field("AF", 10, 1, "access flag (0: the first access faults, or sets it with TCR_ELx.HA / VTCR_EL2.HA)")
_CONTIGUOUS = Field("Contiguous", 52, 1, "one of a contiguous set of entries (a TLB may cache them as one)")
_DBM = Field("DBM", 51, 1, "dirty bit modifier: with HD, a write clears AP[2] / sets S2AP[1] instead of faulting")
_SW = Field("SW", 55, 4, "reserved for software use (IGNORED by the walk)")
_PBHA = Field("PBHA", 59, 4, "page-based hardware attributes (FEAT_HPDS2, with TCR_ELx.HWUnn); IGNORED otherwise")

_S1_LOWER = [
    Field("AttrIndx", 2, 3, "MAIR_ELx attribute index AttrIndx[2:0]"),
    Field("NS", 5, 1, "non-secure output (Secure state; RES0 from Non-secure state)"),
    Field("AP", 6, 2, "data access permissions AP[2:1] (AP[1] is RES1 in a one-privilege regime: EL2, EL3)",
          {0: "EL1 read/write, EL0 none", 1: "EL1 and EL0 read/write", 2: "EL1 read-only, EL0 none",
           3: "EL1 and EL0 read-only"}),
    _SH,
    _AF,
    Field("nG", 11, 1, "not global: the translation is for the current ASID only (RES0 in EL2/EL3 regimes)"),
]
_S1_UPPER = [
    Field("GP", 50, 1, "guarded page (FEAT_BTI; RES0 otherwise)"),
    _DBM,
    _CONTIGUOUS,
    Field("PXN", 53, 1, "privileged execute-never (RES0 in a one-privilege regime)"),
    Field("UXN", 54, 1, "unprivileged execute-never; XN in a one-privilege regime (EL2, EL3)"),
    _SW,
    _PBHA,
    Field("SW63", 63, 1, "reserved for software use (Non-secure state; IGNORED in Secure state)"),
]
_S2_LOWER = [
    Field("MemAttr", 2, 4, "stage 2 memory type MemAttr[3:0] (HCR_EL2.FWB=0; with FWB=1 bit 5 is RES0)"),
    Field("S2AP", 6, 2, "stage 2 data access permissions S2AP[1:0]",
          {0: "no access", 1: "read-only", 2: "write-only", 3: "read/write"}),
    _SH,
    _AF,
    Field("FnXS", 11, 1, "FEAT_XS: the XS attribute is 0 for this page (RES0 without FEAT_XS)"),
]
_S2_UPPER = [
    _DBM,
    _CONTIGUOUS,
    Field("XN", 53, 2, "stage 2 execute-never XN[1:0] (Table D8-78; XN[0] is FEAT_XNX's, RES0 without it)",
          {0: "executable at EL1 and EL0", 1: "not executable at EL1 (EL0 may execute)",
           2: "not executable", 3: "not executable at EL0 (EL1 may execute)"}),
    _SW,
    _PBHA,
]
_S1_TABLE = [
    Field("IGN51", 51, 8, "IGNORED (bits 58:51)"),
    Field("PXNTable", 59, 1, "privileged execute-never for every lookup below (RES0 in one-privilege regimes)"),
    Field("UXNTable", 60, 1, "unprivileged execute-never below; XNTable in a one-privilege regime"),
    Field("APTable", 61, 2, "access permission limit for every lookup below",
          {0: "no effect", 1: "no EL0 access", 2: "no writes", 3: "no writes, no EL0 access"}),
    Field("NSTable", 63, 1, "non-secure tables below (Secure state; RES0 otherwise)"),
]
_S2_TABLE = [Field("IGN51", 51, 8, "IGNORED (bits 58:51); bits 63:59 are RES0")]
_ATTRIBUTES = {(Stage.STAGE1, False): (_S1_LOWER, _S1_UPPER), (Stage.STAGE2, False): (_S2_LOWER, _S2_UPPER),
               (Stage.STAGE1, True): ([], _S1_TABLE), (Stage.STAGE2, True): ([], _S2_TABLE)}


def _address_fields(kind: EntryKind, lsb: int, form: OAForm) -> list[Field]:
    """The address field: next-level table address (NLTA) for a table, OA base (OAB) for a leaf, from bit
    `lsb` up to 47 (49 with LPA2), and the OA[51:m] bits FEAT_LPA / FEAT_LPA2 move below the attributes."""
    name = "NLTA" if kind is EntryKind.TABLE else "OAB"
    top = 49 if form is OAForm.LPA2 else 47
    out = [Field(name, lsb, top + 1 - lsb, f"{name}[{top}:{lsb}]: output address bits {top}:{lsb}")]
    if form is OAForm.LPA:
        out.append(Field(f"{name}_HI", 12, 4, f"{name}[51:48] (FEAT_LPA, 64KB granule)"))
    elif form is OAForm.LPA2:
        out.append(Field(f"{name}_HI", 8, 2, f"{name}[51:50] (FEAT_LPA2, DS=1)"))
    return out


def _table_low_ignored(form: OAForm) -> list[Field]:
    """The IGNORED bits of a Table descriptor's low half: 11:2, less bits 9:8 where LPA2 puts NLTA[51:50]."""
    if form is OAForm.LPA2:
        return [Field("IGN2", 2, 6, "IGNORED (bits 7:2)"), Field("IGN10", 10, 2, "IGNORED (bits 11:10)")]
    return [Field("IGN2", 2, 10, "IGNORED (bits 11:2)")]


@functools.cache
def descriptor_layout(stage: Stage, kind: EntryKind, granule: Granule, level: int,
                      form: OAForm = OAForm.OA48) -> Layout:
    """The layout of a valid `kind` descriptor at lookup `level` of a `stage` translation with `granule` and
    OA `form`; InvalidArgument where that descriptor does not exist (a block at a level without blocks, a
    page above level 3, a table at level 3 or above the granule's first level)."""
    check_form(granule, form)
    levels = {EntryKind.TABLE: table_levels(granule, form), EntryKind.BLOCK: block_levels(granule, form),
              EntryKind.PAGE: (3,)}[kind]
    if level not in levels:
        raise InvalidArgument(f"no {kind.value} descriptor at level {level} with the {granule.label} granule "
                              f"and {form.value} (levels: {', '.join(map(str, levels))})")
    table = kind is EntryKind.TABLE
    lower, upper = _ATTRIBUTES[stage, table]
    if form is OAForm.LPA2:
        lower = [f for f in lower if f is not _SH]       # bits 9:8 are OA[51:50]; SH comes from TCR/VTCR
    fields = [*_valid(kind), *lower, *upper]
    if table:
        fields += _table_low_ignored(form)
        lsb = granule.value
    else:
        lsb = granule.value if kind is EntryKind.PAGE else output_shift(granule, level)
    if kind is EntryKind.BLOCK:
        fields.append(Field("nT", 16, 1, "FEAT_BBML1: no translation caching during a break-before-make"))
    fields += _address_fields(kind, lsb, form)
    what = f"level {level} {kind.value}" + (f" ({_size(output_shift(granule, level))})" if not table else "")
    source = (f"Figure D8-12, Table D8-{50 if stage == 1 else 51}" if table else
              f"Figures D8-14 to D8-{16 if stage == 1 else 17}, Table D8-{52 if stage == 1 else 53}")
    return Layout(f"VMSAv8-64 stage {int(stage)} {what} descriptor, {granule.label} granule, {form.name}", 64,
                  fields, f"{_SOURCE}, {source}")


def _size(shift: int) -> str:
    """A block or page size as the manual writes it: 4KB, 2MB, 512GB, 4TB."""
    unit, s = next((u, s) for u, s in (("T", 40), ("G", 30), ("M", 20), ("K", 10)) if shift >= s)
    return f"{1 << (shift - s)}{unit}B"


INVALID = Layout("VMSAv8-64 invalid descriptor", 64, [
    *_valid(None),
    Field("IGN", 1, 63, "IGNORED: available for software use"),
], f"{_SOURCE}.3, Tables D8-54 and D8-55 (stage 1 and stage 2 Invalid descriptor)")


def _address_names(layout: Layout) -> tuple[str, str | None]:
    base = "NLTA" if "NLTA" in {f.name for f in layout.fields} else "OAB"
    return base, (f"{base}_HI" if f"{base}_HI" in {f.name for f in layout.fields} else None)


def output_address(layout: Layout, raw: int) -> int:
    """The output address (or next-level table address) a descriptor of `layout` holds."""
    raw = layout.check(raw)
    base, hi = _address_names(layout)
    f = layout[base]
    oa = layout.get(raw, base) << f.lsb
    if hi is not None:
        oa |= layout.get(raw, hi) << (f.msb + 1)
    return oa


def with_output_address(layout: Layout, raw: int, oa: int) -> int:
    """`raw` with its output address set to `oa`; InvalidArgument for an address that is not aligned to
    the block, page or table, or needs more bits than the OA form has."""
    raw = layout.check(raw)
    oa = args.address(oa, "output address")
    base, hi = _address_names(layout)
    f = layout[base]
    width = f.msb + 1 + (layout[hi].width if hi is not None else 0)
    if oa & ((1 << f.lsb) - 1) or oa >> width:
        raise InvalidArgument(f"{layout.name}: output address {oa:#x} is not {1 << f.lsb:#x}-aligned "
                              f"below 2**{width}")
    raw = layout.set(raw, base, (oa >> f.lsb) & ((1 << f.width) - 1))
    return layout.set(raw, hi, oa >> (f.msb + 1)) if hi is not None else raw


def descriptor_kind(raw: int, level: int, granule: Granule, form: OAForm = OAForm.OA48) -> EntryKind | None:
    """What a descriptor at `level` is, by bits 1:0 (Table D8-48): None for an invalid one (bit 0 clear)
    and for one the walk treats as invalid (bits 1:0 = 0b01 at level 3, or where the granule has no block;
    a Translation fault), else TABLE, BLOCK or PAGE. InvalidArgument for a level the granule lacks."""
    raw = INVALID.check(raw)
    first = table_levels(granule, form)[0]
    if not first <= level <= 3:
        raise InvalidArgument(f"the {granule.label} granule with {form.value} has lookup levels {first} to 3")
    if not raw & 1:
        return None
    if level == 3:
        return EntryKind.PAGE if raw & 2 else None
    if raw & 2:
        return EntryKind.TABLE
    return EntryKind.BLOCK if level in block_levels(granule, form) else None
