"""x86-64 paging. Modules: `entry` (the PML5E/PML4E/PDPTE/PDE/PTE layouts, PAT memory types and the
codecs), `modes` (the 4-level and 5-level formats), `walk` (the walk rules: #PF with its error code, #GP)
and `regs` (CR0, CR3, CR4, IA32_EFER, IA32_PAT, PKRU, RFLAGS, and the walk rules their values select)."""

from .entry import ARCEOS, PDE_2M, PDPTE_1G, PTE_4K, SPEC, TABLE_ENTRY, X86Codec, pat_entries
from .modes import MODES, PAGING4, PAGING5
from .regs import CR0, CR3, CR4, EFER, PAT, PKRU, RFLAGS, rules_from_registers
from .walk import X86Options, X86Rules

__all__ = ["ARCEOS", "CR0", "CR3", "CR4", "EFER", "MODES", "PAGING4", "PAGING5", "PAT", "PDE_2M", "PDPTE_1G",
           "PKRU", "PTE_4K", "RFLAGS", "SPEC", "TABLE_ENTRY", "X86Codec", "X86Options", "X86Rules", "pat_entries",
           "rules_from_registers"]
