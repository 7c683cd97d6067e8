"""`explain` for the entries of x86 32-bit paging and PAE paging: every field of a raw value in the layouts it
can have, and what the walk makes of it at each level (Intel SDM Vol. 3A, Tables 4-4 to 4-6 for 32-bit paging,
4-8 to 4-11 for PAE paging; the rules: `walk.X86Rules`).

A 32-bit entry is read as a PTE, or with PS=1 as a PDE that maps a 4 MiB page (CR4.PSE=1, PSE-36 with
MAXPHYADDR 40); a PAE entry as a PDPTE (whose reserved bits make the MOV to CR3 #GP: `pae.pdpte_reserved`)
and as a PTE, or with PS=1 as a PDE that maps a 2 MiB page (EFER.NXE=1, MAXPHYADDR 52). CR0.WP=1, no SMEP
or SMAP; the address is not checked against memory."""

from __future__ import annotations

from ... import args
from ...judging import entry_verdicts
from ...listing import permissions
from ...walker import Reason
from .pae import PAE_PDE_2M, PAE_PTE, PAE_TABLE, PDPTE, pdpte_reserved
from .paging32 import PDE_4M, PDE_TABLE32, PS, PTE32
from .walk import X86Options, X86Rules

_NAMES = {2: "PDE", 1: "PTE"}


def _verdicts(rules: X86Rules, value: int) -> list[str]:
    """What the walk makes of `value` as a PDE and as a PTE of `rules`' format, one line each."""
    return [f"  -> as a {_NAMES[level]}: " + (
        "not present (P=0: the hardware reads no other bit)" if verdict == Reason.INVALID else
        f"page fault ({verdict.label})" if verdict != Reason.OK else
        f"page, {permissions(bits)}" if leaf else "reference to the next table")
        for level, leaf, bits, verdict in entry_verdicts(rules, value) if level in _NAMES]


def explain_entry32(value: int) -> list[str]:
    """A 32-bit paging entry (4 bytes): its fields as a PTE, or with PS=1 as a 4 MiB page's PDE, and the walk's
    verdict as a PDE and as a PTE."""
    value = PTE32.check(value)
    lines = (PDE_4M if value & PS else PTE32).format(value).splitlines()
    if value & PS:
        lines.append(f"  (PS=1: a 4 MiB page in a PDE with CR4.PSE=1, a reference to a page table with CR4.PSE=0; "
                     f"in a PTE bit 7 is PAT; {PDE_TABLE32.name} has PS=0)")
    lines += _verdicts(X86Rules(0, X86Options(paging="32-bit", pse=True, maxphyaddr=40)), value)
    lines.append("     (CR4.PSE=1, PSE-36 with MAXPHYADDR 40, CR0.WP=1, no SMEP/SMAP; the address is not checked "
                 "against memory)")
    return lines


def explain_pae(value: int) -> list[str]:
    """A PAE paging entry (8 bytes): its fields as a PDPTE, and as a PTE or with PS=1 a 2 MiB page's PDE, and
    what each level makes of it (the PDPTE's at the MOV to CR3 that loads it)."""
    value = args.address(value, "entry")
    lines = PDPTE.format(value).splitlines()
    reserved = pdpte_reserved(value, 52)
    lines.append("  -> as a PDPTE: " + (
        "not present (P=0: the hardware reads no other bit; an access under it is a #PF)" if not value & 1 else
        f"MOV to CR3 would #GP (reserved bits {reserved:#x} set)" if reserved else
        "reference to the page directory"))
    lines += (PAE_PDE_2M if value & PS else PAE_PTE).format(value).splitlines()
    if value & PS:
        lines.append(f"  (PS=1: a 2 MiB page in a PDE; in a PTE bit 7 is PAT; {PAE_TABLE.name} has PS=0)")
    lines += _verdicts(X86Rules(0, X86Options(paging="pae"), pdptes=(0, 0, 0, 0)), value)
    lines.append("     (EFER.NXE=1, MAXPHYADDR 52, CR0.WP=1, no SMEP/SMAP; the address is not checked against "
                 "memory)")
    return lines
