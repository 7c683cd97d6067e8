"""RISC-V's part of the command line: the `vectors generate` options, the vector set's README notes and
`explain` for a PTE, satp, vsatp or hgatp value (privileged spec, "Sv39" PTE layout and "satp"; hypervisor
extension "hgatp")."""

from __future__ import annotations

import argparse

from ...arch.riscv_sv39 import HGATP, PTE, SATP, SPEC, SV39, Hgatp, Satp
from ...arch.riscv_sv39.entry import pte_paddr
from ...arch.riscv_sv39.walk import RiscvOptions, RiscvRules
from ...errors import PagetableError
from ...judging import entry_verdicts
from ...listing import permissions
from ...walker import Reason
from ..schema import VectorSet
from .gen import generate_riscv
from .modes import VECTOR_MODES, vector_mode
from .qemu32 import TAG_OPCODE

REGISTERS = ("pte", "satp", "vsatp", "hgatp")
MODE_HELP = {name: "satp" if m.gstage is None else "the G-stage alone (vsatp Bare)" if m.stage1 is None
             else "both stages" for name, m in VECTOR_MODES.items()}


def add_generate_options(g: argparse.ArgumentParser) -> None:
    g.add_argument("--sum", action="store_true", help="walk with SUM=1 (vsstatus.SUM in two-stage modes)")
    g.add_argument("--mxr", action="store_true", help="walk with MXR=1 (vsstatus.MXR in two-stage modes)")
    g.add_argument("--hs-mxr", action="store_true", help="hypervisor modes: the HS-level sstatus.MXR=1")
    g.add_argument("--ad", choices=("svade", "svadu"), default="svade",
                   help="A/D=0: page fault (Svade, default) or hardware update (Svadu)")
    g.add_argument("--svnapot", action="store_true", help="implement Svnapot")
    g.add_argument("--svpbmt", action="store_true", help="implement Svpbmt")


def generate(ns: argparse.Namespace) -> VectorSet:
    options = vector_mode(ns.mode).options(sum=ns.sum, mxr=ns.mxr, hs_mxr=ns.hs_mxr, ad=ns.ad,
                                           svnapot=ns.svnapot, svpbmt=ns.svpbmt)
    return generate_riscv(ns.mode, ns.seed, ns.cases, options)


def readme_notes(vs: VectorSet) -> str:
    """What a RISC-V vector set's README says about levels, V=1 accesses and syndromes."""
    hyp = ("All accesses are made with V=1: 'supervisor' is VS-mode, 'user' VU-mode. A fault's 'stage' says\n"
           "which stage decided (2: the G-stage, a guest-page fault or its access fault), and 'gpa' is the\n"
           "guest-physical address reached or faulting (mtval2/htval hold it shifted right by 2).\n"
           if "hgatp" in vs.registers else "")
    tags = (f"Every u32 of non-table memory holds (PA >> 2) << 7 | {TAG_OPCODE:#x} (a reserved opcode), so a\n"
            "load reveals the PA it reached (its bits 26:2) and a fetch traps.\n"
            if vs.mode in VECTOR_MODES and VECTOR_MODES[vs.mode].xlen == 32 else
            "Every u64 of non-table memory holds its own PA << 16, so a load reveals the PA it reached.\n")
    return ("or the exception 'fault' raised at page-table level 'level' (the spec's i: 0 = 4 KiB level),\n"
            "with the 'syndrome' the trap reports (scause/stval, and htval/htinst with the H extension;\n"
            "mcause/mtval/mtval2/mtinst when the trap goes to M-mode).\n" + hyp + tags)


def explain(register: str, value: int) -> list[str]:
    layout = {"pte": PTE, "satp": SATP, "vsatp": SATP, "hgatp": HGATP}[register]
    lines = [layout.format(value)]
    if layout is PTE:
        lines.append(f"  PA {pte_paddr(value):#x}; letters: {SPEC.letters(value, False)}")
        napot, pbmt = bool(PTE.get(value, "N")), PTE.get(value, "PBMT") != 0
        options = RiscvOptions(svnapot=napot, svpbmt=pbmt)      # the extensions the entry uses, implemented
        for level, leaf, bits, verdict in entry_verdicts(RiscvRules(Satp.for_table(SV39, 0), options), value):
            lines.append(f"  -> at Sv39 level {level}: " + (
                "invalid (V=0: the hardware reads no other bit)" if verdict == Reason.INVALID else
                f"page fault ({verdict.label})" if verdict != Reason.OK else
                f"leaf, {permissions(bits)}" if leaf else "pointer to the next table"))
        extensions = " and ".join(n for n, on in (("Svnapot", napot), ("Svpbmt", pbmt)) if on) or "no Svnapot or Svpbmt"
        lines.append(f"     (Svade, SUM=MXR=0, {extensions}; a leaf's PA is not checked against memory)")
        return lines
    atp = (Hgatp if layout is HGATP else Satp)
    try:
        reg = atp.decode(value)
    except PagetableError:
        mode = layout.get(value, "MODE")
        effect = ("hgatp's fields are WARL: the write is not ignored (unlike satp's); MODE then reads as "
                  "whatever legal value the hart chooses" if layout is HGATP else
                  f"a write of this value to {register} has no effect")
        return [*lines, f"  -> MODE {mode} is reserved: {effect}"]
    fmt = reg.format
    where = "translation off (Bare)" if fmt is None else f"{fmt.name}, root table at PA {reg.root:#x}"
    low = " (PPN[1:0] read as zero)" if layout is HGATP and fmt is not None and reg.ppn & 3 else ""
    return [*lines, f"  -> {where}{low}; {atp.TAG} {reg.tag}"]
