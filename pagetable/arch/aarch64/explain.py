"""`explain` for the AArch64 translation registers and descriptors: every field named (the layouts'
`format`), then what translation makes of the value: a TCR's granules, region sizes and initial lookup
levels, a MAIR's eight memory types, a TTBR's table base, a descriptor decoded as a table, block or page at
a given granule and level (Arm ARM DDI 0487 M.a.a, D8.3 and D24.2; see `descriptors` and `regs`).

The command line's `pagetable explain --arch aarch64` (`pagetable.vectors.aarch64.tool`) prints these lines.
"""

from __future__ import annotations

from collections.abc import Callable

from ...errors import InvalidArgument, PagetableError
from ...format import EntryKind
from ...layout import Layout
from .descriptors import (
    INVALID,
    Granule,
    OAForm,
    Stage,
    descriptor_kind,
    descriptor_layout,
    output_address,
    output_shift,
)
from .regs import (
    HCR_EL2,
    ID_AA64MMFR0_EL1,
    MAIR_EL1,
    MAIR_EL2,
    SCTLR_EL1,
    SCTLR_EL2,
    TCR_EL1,
    TCR_EL2,
    TTBR0_EL1,
    TTBR0_EL2,
    TTBR1_EL1,
    TTBR1_EL2,
    VTCR_EL2,
    VTTBR_EL2,
    mair_attr,
    mair_attrs,
    pa_bits,
    pa_range,
    stage1_start_level,
    stage2_start_level,
    table_base,
    tg0_granule,
    tg1_granule,
)


def _pa_line(what: str, code: int) -> str:
    try:
        return f"  -> {what}: {pa_bits(code)} bits"
    except PagetableError as exc:
        return f"  -> {what}: {exc}"


def _region(layout: Layout, value: int, n: str, decode: Callable[[int], Granule], base: str, ds: bool) -> str:
    """One translation region of a TCR: its granule, VA size and initial lookup level."""
    try:
        granule = decode(layout.get(value, f"TG{n}"))
    except PagetableError as exc:
        return f"  -> {base}: {exc}"
    va_bits = 64 - layout.get(value, f"T{n}SZ")
    try:
        start = f"walk starts at level {stage1_start_level(granule, va_bits)}"
    except PagetableError as exc:
        start = str(exc)
    note = "" if va_bits <= (52 if ds or granule is Granule.K64 else 48) else " (beyond the largest VA: faults)"
    return f"  -> {base}: {granule.label} granule, {va_bits}-bit region{note}, {start}"


def explain_ttbr(layout: Layout, value: int, wide: bool = False) -> list[str]:
    """A TTBR0/TTBR1_ELx or VTTBR_EL2 value: its fields and the table base address it holds (`wide`: BADDR
    as a 52-bit address, with bits 51:48 in register bits 5:2; `regs.table_base`)."""
    tag = "VMID" if layout is VTTBR_EL2 else "ASID"
    form = " (52-bit BADDR)" if wide else ""
    return [layout.format(value), f"  -> initial lookup table at PA {table_base(value, wide):#x}{form}, "
                                  f"{tag} {layout.get(value, tag):#x}"]


def explain_tcr_el1(value: int) -> list[str]:
    """TCR_EL1: both regions' granule (TG0 and TG1 encode granules differently), size and start level."""
    ds = bool(TCR_EL1.get(value, "DS"))
    lines = [TCR_EL1.format(value)]
    for n, decode, epd in (("0", tg0_granule, "EPD0"), ("1", tg1_granule, "EPD1")):
        lines.append(_region(TCR_EL1, value, n, decode, f"TTBR{n}_EL1", ds)
                     + (f" (walks disabled: {epd}=1)" if TCR_EL1.get(value, epd) else ""))
    lines.append(_pa_line("intermediate physical address size (IPS)", TCR_EL1.get(value, "IPS")))
    return lines


def explain_tcr_el2(value: int) -> list[str]:
    """TCR_EL2 (HCR_EL2.E2H=0): the single region's granule, size and start level; the PA size."""
    lines = [TCR_EL2.format(value),
             _region(TCR_EL2, value, "0", tg0_granule, "TTBR0_EL2", bool(TCR_EL2.get(value, "DS")))]
    lines.append(_pa_line("physical address size (PS)", TCR_EL2.get(value, "PS")))
    return lines


def explain_vtcr_el2(value: int) -> list[str]:
    """VTCR_EL2: the stage 2 granule, IPA size, and the initial lookup level SL0 (and SL2) give."""
    lines = [VTCR_EL2.format(value)]
    try:
        granule = tg0_granule(VTCR_EL2.get(value, "TG0"))
        level = stage2_start_level(granule, VTCR_EL2.get(value, "SL0"), VTCR_EL2.get(value, "SL2"))
    except PagetableError as exc:
        lines.append(f"  -> stage 2: {exc}")
    else:
        ipa = 64 - VTCR_EL2.get(value, "T0SZ")
        top = output_shift(granule, level - 1)          # the IA bits the initial level's one table resolves
        concat = 1 << (ipa - top) if ipa > top else 1
        lines.append(f"  -> stage 2: {granule.label} granule, {ipa}-bit IPA, walk starts at level {level}"
                     + (f" with {concat} concatenated tables" if concat > 1 else "")
                     + (" (more than 16: SL0 and T0SZ disagree, a level 0 Translation fault)" if concat > 16
                        else ""))
    lines.append(_pa_line("physical address size (PS)", VTCR_EL2.get(value, "PS")))
    return lines


def explain_mair(layout: Layout, value: int) -> list[str]:
    """MAIR_EL1 or MAIR_EL2: each Attr<n> decoded to its memory type."""
    lines = [layout.format(value)]
    for n, attr in enumerate(mair_attrs(value)):
        need = f" (needs {attr.feature}; UNPREDICTABLE without it)" if attr.feature else ""
        lines.append(f"  -> AttrIndx {n}: {attr.code:#04x} {attr.description}{need}")
    return lines


def explain_id_aa64mmfr0(value: int) -> list[str]:
    lines = [ID_AA64MMFR0_EL1.format(value)]
    try:
        lines.append(f"  -> physical addresses of {pa_range(value)} bits")
    except PagetableError as exc:
        lines.append(f"  -> PARange: {exc}")
    return lines


def _plain(layout: Layout, summary: Callable[[int], str]) -> Callable[[int], list[str]]:
    return lambda value: [layout.format(value), f"  -> {summary(value)}"]


REGISTERS: dict[str, Callable[[int], list[str]]] = {
    "ttbr0_el1": lambda v: explain_ttbr(TTBR0_EL1, v),
    "ttbr1_el1": lambda v: explain_ttbr(TTBR1_EL1, v),
    "ttbr0_el2": lambda v: explain_ttbr(TTBR0_EL2, v),
    "ttbr1_el2": lambda v: explain_ttbr(TTBR1_EL2, v),
    "vttbr_el2": lambda v: explain_ttbr(VTTBR_EL2, v),
    "tcr_el1": explain_tcr_el1,
    "tcr_el2": explain_tcr_el2,
    "vtcr_el2": explain_vtcr_el2,
    "mair_el1": lambda v: explain_mair(MAIR_EL1, v),
    "mair_el2": lambda v: explain_mair(MAIR_EL2, v),
    "sctlr_el1": _plain(SCTLR_EL1, lambda v: f"stage 1 translation {'on' if v & 1 else 'off'} (M)"),
    "sctlr_el2": _plain(SCTLR_EL2, lambda v: f"stage 1 translation {'on' if v & 1 else 'off'} (M)"),
    "hcr_el2": _plain(HCR_EL2, lambda v: f"stage 2 translation {'on' if v & 1 else 'off'} (VM)"),
    "id_aa64mmfr0_el1": explain_id_aa64mmfr0,
}
"""Register name (lower case) -> its explain function."""


def explain(register: str, value: int) -> list[str]:
    """Every field of `value` as `register` holds it, and what translation makes of it."""
    try:
        fn = REGISTERS[register.lower()]
    except KeyError:
        raise InvalidArgument(f"no AArch64 register {register!r} (registers: {', '.join(REGISTERS)})") from None
    return fn(value)


def explain_descriptor(raw: int, granule: Granule, level: int, stage: Stage = Stage.STAGE1,
                       form: OAForm = OAForm.OA48, mair: int | None = None) -> list[str]:
    """A descriptor read at lookup `level` of a `stage` walk with `granule` and OA `form`: its layout's
    fields and what the walk makes of it (Table D8-48); with `mair`, a stage 1 leaf's memory type."""
    kind = descriptor_kind(raw, level, granule, form)
    if kind is None:
        lines = [INVALID.format(raw)]
        lines.append("  -> invalid (bit 0 clear: the walk reads no other bit; Translation fault)" if not raw & 1
                     else f"  -> reserved at level {level} with the {granule.label} granule and {form.name} "
                          "(bits 1:0 = 0b01 where no block exists): Translation fault")
        return lines
    layout = descriptor_layout(stage, kind, granule, level, form)
    oa = output_address(layout, raw)
    lines = [layout.format(raw)]
    if kind is EntryKind.TABLE:
        lines.append(f"  -> table: the level {level + 1} table at PA {oa:#x}")
    else:
        size = 1 << output_shift(granule, level)
        af = ("" if layout.get(raw, "AF") else
              "; AF=0: the first access faults (Access flag fault) unless hardware updates it")
        lines.append(f"  -> {kind.value} of {size:#x} bytes at PA {oa:#x}{af}")
        if mair is not None and stage == Stage.STAGE1:
            index = layout.get(raw, "AttrIndx")
            attr = mair_attr((MAIR_EL1.check(mair) >> (8 * index)) & 0xFF)
            lines.append(f"  -> memory type: Attr{index} = {attr.code:#04x} {attr.description}")
    return lines
