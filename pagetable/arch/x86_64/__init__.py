"""x86-64 paging. Modules: `entry` (the PML5E/PML4E/PDPTE/PDE/PTE layouts, PAT memory types and the
codecs), `ept` (Intel EPT's entries, EPTP and codec), `modes` (the 4-level and 5-level formats, and EPT's),
`walk` (the walk rules: #PF with its error code, #GP) and `regs` (CR0, CR3, CR4, IA32_EFER, IA32_PAT, PKRU,
RFLAGS, and the walk rules their values select)."""

from .entry import ARCEOS, PDE_2M, PDPTE_1G, PTE_4K, SPEC, TABLE_ENTRY, X86Codec, pat_entries
from .ept import EPT_PDE_2M, EPT_PDPTE_1G, EPT_PTE_4K, EPT_TABLE, EPTP, EptCodec
from .modes import EPT4, EPT5, EPT_MODES, MODES, PAGING4, PAGING5
from .regs import CR0, CR3, CR4, EFER, PAT, PKRU, RFLAGS, rules_from_registers
from .walk import X86Options, X86Rules

__all__ = [
           "ARCEOS",
           "CR0",
           "CR3",
           "CR4",
           "EFER",
           "EPT4",
           "EPT5",
           "EPTP",
           "EPT_MODES",
           "EPT_PDE_2M",
           "EPT_PDPTE_1G",
           "EPT_PTE_4K",
           "EPT_TABLE",
           "MODES",
           "PAGING4",
           "PAGING5",
           "PAT",
           "PDE_2M",
           "PDPTE_1G",
           "PKRU",
           "PTE_4K",
           "RFLAGS",
           "SPEC",
           "TABLE_ENTRY",
           "EptCodec",
           "X86Codec",
           "X86Options",
           "X86Rules",
           "pat_entries",
           "rules_from_registers",
]
