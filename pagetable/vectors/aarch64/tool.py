"""AArch64's part of the command line: the vector set's README notes and `explain` for a translation
register (`arch.aarch64.explain`) or a descriptor, read at each lookup level of a 4KB stage 1 walk
(`descriptor`) or stage 2 walk (`s2_descriptor`; Arm ARM DDI 0487 M.a.a, D8.3 and D24.2). `vectors generate`
has no AArch64 options: everything a walk depends on is in the registers a set records."""

from __future__ import annotations

import argparse

from ...arch.aarch64 import Granule, OAForm, Stage, explain_descriptor
from ...arch.aarch64 import explain as explain_register
from ...arch.aarch64.descriptors import table_levels
from ...arch.aarch64.regs import LINUX_MAIR_EL1
from ..schema import VectorSet
from .gen import RAM_BASE, generate_aarch64
from .modes import VECTOR_MODES

REGISTERS = ("descriptor", "s2_descriptor", "tcr_el1", "ttbr0_el1", "ttbr1_el1", "mair_el1", "sctlr_el1", "tcr_el2",
             "ttbr0_el2", "mair_el2", "sctlr_el2", "vtcr_el2", "vttbr_el2", "hcr_el2", "id_aa64mmfr0_el1")
MODE_HELP = {name: " over ".join(what for what in (
    "" if m.regime is None else f"{'EL1&0 (TTBR0_EL1, TTBR1_EL1)' if m.regime == 'el1' else 'EL2 (TTBR0_EL2)'} "
    f"{m.granule.label} {m.va_bits}-bit VAs" + ("" if m.form is OAForm.OA48 else f" {m.form.name}"),
    f"stage 2 (VTTBR_EL2) {m.s2_granule.label} {m.s2_ipa_bits}-bit IPAs from level {m.s2_start}" if m.stage2
    else "") if what) for name, m in VECTOR_MODES.items()}


def add_generate_options(g: argparse.ArgumentParser) -> None:
    """None: an AArch64 set's walk is configured by its registers alone."""


def generate(ns: argparse.Namespace) -> VectorSet:
    return generate_aarch64(ns.mode, ns.seed, ns.cases)


def readme_notes(vs: VectorSet) -> str:
    """What an AArch64 vector set's README says about levels, fault kinds, syndromes, tags and the free slot."""
    regs = vs.registers
    extra = ""
    if "vtcr_el2" in regs and "tcr_el1" in regs:
        extra = ("A fault's 'stage' is 2 where stage 2 decided, with 'gpa' the IPA (and 'implicit' for a stage 1\n"
                 "table read: ESR S1PTW=1); translations list the IPA as 'gpa'.\n")
    elif "vtcr_el2" in regs:
        extra = ("Stage 2 alone: 'va' is an IPA, accessed from EL1 ('supervisor') or EL0 ('user'); a fault's\n"
                 "syndrome is esr (S1PTW=0) and hpfar.\n")
    elif "tcr_el2" in regs:
        extra = "The EL2 regime has no EL0: every 'user' case faults.\n"
    return ("perms (the walk's effective permissions: S = EL1 (EL2 in the EL2 regime), U = EL0) and memtype\n"
            "(from MAIR_ELx, combined with stage 2's MemAttr), or the 'fault' (translation, address-size,\n"
            "access-flag, permission, external-abort: a table or the page outside RAM, platform-defined) at\n"
            "lookup level 'level' (the manual's: 3 = the page level, 0 or -1 the first), with the 'syndrome'\n"
            "esr (EC, IL, WnR, S1PTW, DFSC/IFSC), far (the VA), hpfar (stage 2 faults: IPA[51:12] in bits\n"
            "43:4) and el (the Exception level taking it).\n" + extra +
            f"RAM is at {RAM_BASE:#x}. Every u64 of non-table memory holds (PA << 32) | 0xD4214C80: a load\n"
            "reveals the PA it reached, a fetch executes BRK #0xA64. No case uses the last entry of a root table\n"
            "(TTBR0, TTBR1, TTBR0_EL2, VTTBR_EL2): a harness may map its code there.\n")


def explain(register: str, value: int) -> list[str]:
    """Every field of `value` as `register` holds it, and what translation makes of it; a descriptor's fields
    as a level 2 block's (bits 1:0 = 0b01) or a page's, then what a 4KB granule walk makes of it at each
    level (48-bit OA; a stage 1 leaf's memory type by Linux's MAIR)."""
    if register not in ("descriptor", "s2_descriptor"):
        return explain_register(register, value)
    stage = Stage.STAGE2 if register == "s2_descriptor" else Stage.STAGE1
    mair = LINUX_MAIR_EL1 if stage is Stage.STAGE1 else None
    first = 2 if value & 3 == 1 else 3                    # every field, as a block (bits 1:0 = 0b01) or page
    lines = explain_descriptor(value, Granule.K4, first, stage, mair=mair)
    for level in (lv for lv in (*table_levels(Granule.K4), 3) if lv != first):
        lines += [f"  at level {level}:{line[4:]}" for line in explain_descriptor(value, Granule.K4, level, stage,
                                                                                  mair=mair)[1:]]
    lines.append(f"     (stage {int(stage)}, 4KB granule, 48-bit OA" + (", Linux's MAIR_EL1" if mair else "") +
                 "; the address is not checked against memory or an output size)")
    return lines
