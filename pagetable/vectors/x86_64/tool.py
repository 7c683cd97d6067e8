"""x86-64's part of the command line: the `vectors generate` options (register choices), the vector set's
README notes and `explain` for a paging-structure entry or a paging register (Intel SDM Vol. 3A 4.5, the
entry-format tables 4-15 to 4-20; 2.5 for CR0/CR4; 4.6.2 for PKRU; 12.12.2 for IA32_PAT).

`explain --register` names what the value is, as for the other architectures: `pte` an entry of 4-level
(and 5-level) paging, `pte32` a 4-byte entry of 32-bit paging (Tables 4-4 to 4-6, `explain_entry32`),
`pae_pte` an 8-byte entry of PAE paging (Tables 4-8 to 4-11, `explain_pae`), `cr3_32` and `cr3_pae` CR3 as
those modes read it (Tables 4-3 and 4-7); `cr3` is IA-32e paging's (Table 4-12)."""

from __future__ import annotations

import argparse

from ...arch.x86_64 import (
    CR0,
    CR3,
    CR3_32,
    CR3_PAE,
    CR4,
    EFER,
    EPTP,
    PAT,
    PDE_2M,
    PKRU,
    PTE_4K,
    RFLAGS,
    TABLE_ENTRY,
    X86Options,
    X86Rules,
    explain_entry32,
    explain_pae,
)
from ...arch.x86_64.entry import PS, pat_entries
from ...errors import PagetableError
from ...judging import entry_verdicts
from ...layout import Layout
from ...listing import permissions
from ...walker import Reason
from ..schema import VectorSet
from .gen import STUB_SLOT_32, RegisterChoices, generate_x86
from .layout import STUB_SLOT
from .modes import MAXPHYADDR, VECTOR_MODES, X86VectorMode

REGISTERS = ("pte", "pte32", "pae_pte", "cr0", "cr3", "cr3_32", "cr3_pae", "cr4", "efer", "pat", "pkru", "rflags",
             "eptp", "ncr3", "host_pat")
LAYOUTS: dict[str, Layout] = {"cr0": CR0, "cr3": CR3, "cr3_32": CR3_32, "cr3_pae": CR3_PAE, "cr4": CR4, "efer": EFER,
                              "pat": PAT, "pkru": PKRU, "rflags": RFLAGS, "eptp": EPTP, "ncr3": CR3, "host_pat": PAT}
_ROOTS = {"cr3_32": "the page directory", "cr3_pae": "the page-directory-pointer table (32-byte aligned)"}
MODE_HELP = {name: " over ".join(f"{fmt.name} ({reg})" for fmt, reg in ((m.stage1, "CR3"), (m.stage2, ", ".join(
    m.stage2_registers))) if fmt is not None) for name, m in VECTOR_MODES.items()}
_ENTRY_NAMES = {5: "PML5E", 4: "PML4E", 3: "PDPTE", 2: "PDE", 1: "PTE"}


def add_generate_options(g: argparse.ArgumentParser) -> None:
    g.add_argument("--ac", action="store_true",
                   help="x86: RFLAGS.AC=1 (SMAP then lets explicit supervisor data accesses to user pages through)")
    g.add_argument("--no-nxe", action="store_true", help="x86: IA32_EFER.NXE=0 (every XD=1 is then a reserved bit)")
    g.add_argument("--no-wp", action="store_true", help="x86: CR0.WP=0 (supervisor writes ignore R/W=0)")


def generate(ns: argparse.Namespace) -> VectorSet:
    return generate_x86(ns.mode, ns.seed, ns.cases, RegisterChoices(ac=ns.ac, nxe=not ns.no_nxe, wp=not ns.no_wp))


def readme_notes(vs: VectorSet) -> str:
    """What an x86-64 vector set's README says about levels, fault kinds, syndromes, tags and the free slot."""
    nested = ""
    mode = VECTOR_MODES.get(vs.mode)
    if mode is not None and mode.stage2 is not None:
        nested = ("The nested walk's faults have stage 2 and the guest-physical address 'gpa' (implicit: a guest\n"
                  "paging-structure access), with the syndrome " + (
                      "exit_qualification (an EPT violation's; 0 for a misconfiguration), gpa and\n"
                      "guest_linear (ept-violation, ept-misconfiguration).\n" if mode.ept else
                      "exitinfo1 (the error code | bit 32 final address / bit 33 guest\n"
                      "table walk) and exitinfo2 (the GPA) of #VMEXIT(NPF) (nested-page-fault).\n"))
    return nested + ("perms (the walk's effective permissions: S = CPL 0, U = CPL 3) and memtype (from IA32_PAT),\n"
            "or the exception 'fault' (page-fault = #PF, general-protection = #GP for a non-canonical\n"
            "address, no-memory where a table or the page lies outside RAM) at paging level 'level' (the\n"
            "SDM's: 1 = PT, 2 = PD, 3 = PDPT, 4 = PML4, 5 = PML5), with the 'syndrome' error_code (#PF's:\n"
            "P, W/R, U/S, RSVD, I/D, PK) and cr2 (the linear address; both 0 for #GP and no-memory).\n"
            "Every u64 of non-table memory holds (PA << 8) | 0xCC: a load reveals the PA it reached, a fetch\n"
            "executes INT3. " + _free_slot(mode))


def _free_slot(mode: X86VectorMode | None) -> str:
    """The README's sentence on the root slot no case uses (`layout.STUB_SLOT`, `gen.STUB_SLOT_32`)."""
    if mode is not None and mode.paging != "ia32e":
        size = 4 if mode.paging == "32-bit" else 8
        name, shift = ("PDE", 22) if size == 4 else ("PDPTE", 30)
        where = f"{name} {STUB_SLOT_32[size]} (VA {STUB_SLOT_32[size] << shift:#x})"
    else:
        where = f"PML4 index {STUB_SLOT} (nor, with 5-level paging, PML5 index {STUB_SLOT})"
    return f"No case uses {where}:\na harness may map its code there.\n"


def explain(register: str, value: int) -> list[str]:
    """Every field of `value` as `register` holds it, and what paging makes of it."""
    entries = {"pte": _entry, "pte32": explain_entry32, "pae_pte": explain_pae}      # 4-level, 32-bit, PAE paging
    if register in entries:
        return entries[register](value)
    layout = LAYOUTS[register]
    lines = [layout.format(value)]
    if layout is CR3:
        lines.append(f"  -> the PML4 table (PML5 with CR4.LA57=1) at PA {CR3.get(value, 'ADDR') << 12:#x}")
    elif register in _ROOTS:
        lines.append(f"  -> {_ROOTS[register]} at PA {layout.get(value, 'ADDR') << layout['ADDR'].lsb:#x}")
    elif layout is PAT:
        try:
            types = pat_entries(value)
        except PagetableError as exc:
            lines.append(f"  -> {exc}: loading it would #GP")
        else:
            lines.append("  -> PAT index (PAT, PCD, PWT) 0-7: " + ", ".join(t.label for t in types))
    elif layout is PKRU:
        for kind, what in (("AD", "access disabled"), ("WD", "write disabled")):
            keys = [str(k) for k in range(16) if PKRU.get(value, f"{kind}{k}")]
            lines.append(f"  -> keys {what}: {', '.join(keys) or 'none'}")
    return lines


def _entry(value: int) -> list[str]:
    """A paging-structure entry: its layout as a PTE (or, with PS=1, as a 2 MiB page's PDE) and the walk's
    verdict on it at each level of 4-level paging."""
    value = PTE_4K.check(value)
    lines = [(PDE_2M if value & PS else PTE_4K).format(value)]
    if value & PS:
        lines.append("  (PS=1: a 2 MiB page in a PDE, a 1 GiB page in a PDPTE; in a PTE bit 7 is PAT; "
                     f"{TABLE_ENTRY.name} has PS=0)")
    rules = X86Rules(0, X86Options(maxphyaddr=MAXPHYADDR))
    for level, leaf, bits, verdict in entry_verdicts(rules, value):
        lines.append(f"  -> as a {_ENTRY_NAMES[level]}: " + (
            "not present (P=0: the hardware reads no other bit)" if verdict == Reason.INVALID else
            f"page fault ({verdict.label})" if verdict != Reason.OK else
            f"page, {permissions(bits)}" if leaf else "reference to the next table"))
    lines.append(f"     (CR0.WP=1, EFER.NXE=1, no SMEP/SMAP/PKE, MAXPHYADDR {MAXPHYADDR}; the address is not "
                 "checked against memory)")
    return lines
