"""RISC-V's part of the command line: the `vectors generate` options, the vector set's README notes and
`explain` for a PTE, satp, vsatp or hgatp value (privileged spec, "Sv39" PTE layout and "satp"; hypervisor
extension "hgatp"), of an RV64 hart (`explain`) or an RV32 one (`explain32`: the "Sv32" PTE layout and the
RV32 satp, vsatp and hgatp)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from ...arch.riscv_sv39 import PTE, PTE32, SPEC, SPEC32, SV32, SV39, Hgatp, Hgatp32, Satp, Satp32, Vsatp, Vsatp32
from ...arch.riscv_sv39.entry import RiscvCodec, pte_paddr
from ...arch.riscv_sv39.walk import RiscvOptions, RiscvRules
from ...errors import PagetableError
from ...format import PagingFormat
from ...judging import entry_verdicts
from ...layout import Layout
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


@dataclass(frozen=True)
class _Hart:
    """What `explain` reads a value as on one XLEN: the PTE layout and its codec, the one-stage mode whose
    levels judge a PTE, and the address-translation registers."""

    pte: Layout
    codec: RiscvCodec
    mode: PagingFormat
    registers: dict[str, type[Satp | Hgatp]]


_RV64 = _Hart(PTE, SPEC, SV39, {"satp": Satp, "vsatp": Vsatp, "hgatp": Hgatp})
_RV32 = _Hart(PTE32, SPEC32, SV32, {"satp": Satp32, "vsatp": Vsatp32, "hgatp": Hgatp32})


def explain(register: str, value: int) -> list[str]:
    """Every field of `value` as an RV64 hart's `register` holds it, and what translation makes of it."""
    return _explain(_RV64, register, value)


def explain32(register: str, value: int) -> list[str]:
    """`explain` on an RV32 hart: an Sv32 PTE (judged at Sv32's two levels), the RV32 satp, vsatp, hgatp."""
    return _explain(_RV32, register, value)


def _explain(hart: _Hart, register: str, value: int) -> list[str]:
    if register == "pte":
        return _pte(hart, value)
    atp = hart.registers[register]
    layout = atp.LAYOUT
    lines = [layout.format(value)]
    g_stage = issubclass(atp, Hgatp)
    try:
        reg = atp.decode(value)
    except PagetableError:
        mode = layout.get(value, "MODE")
        effect = ("hgatp's fields are WARL: the write is not ignored (unlike satp's); MODE then reads as "
                  "whatever legal value the hart chooses" if g_stage else
                  f"a write of this value to {register} has no effect")
        return [*lines, f"  -> MODE {mode} is reserved: {effect}"]
    fmt = reg.format
    where = "translation off (Bare)" if fmt is None else f"{fmt.name}, root table at PA {reg.root:#x}"
    low = " (PPN[1:0] read as zero)" if g_stage and fmt is not None and reg.ppn & 3 else ""
    return [*lines, f"  -> {where}{low}; {atp.TAG} {reg.tag}"]


def _pte(hart: _Hart, value: int) -> list[str]:
    """A PTE's fields, PA and ptdump letters, and the walk's verdict on it at each level of `hart.mode`, with
    the extensions its N and PBMT bits need (an RV64 PTE's; Sv32's has neither)."""
    lines = [hart.pte.format(value)]
    lines.append(f"  PA {pte_paddr(value):#x}; letters: {hart.codec.letters(value, False)}")
    napot, pbmt = bool(PTE.get(value, "N")), PTE.get(value, "PBMT") != 0
    options = RiscvOptions(svnapot=napot, svpbmt=pbmt)          # the extensions the entry uses, implemented
    rules = RiscvRules(hart.registers["satp"].for_table(hart.mode, 0), options)
    for level, leaf, bits, verdict in entry_verdicts(rules, value):
        lines.append(f"  -> at {hart.mode.name} level {level}: " + (
            "invalid (V=0: the hardware reads no other bit)" if verdict == Reason.INVALID else
            f"page fault ({verdict.label})" if verdict != Reason.OK else
            f"leaf, {permissions(bits)}" if leaf else "pointer to the next table"))
    extensions = ("Svnapot", napot), ("Svpbmt", pbmt)
    used = " and ".join(n for n, on in extensions if on) or "no Svnapot or Svpbmt" if hart is _RV64 else ""
    lines.append(f"     (Svade, SUM=MXR=0{', ' + used if used else ''}; a leaf's PA is not checked against memory)")
    return lines
