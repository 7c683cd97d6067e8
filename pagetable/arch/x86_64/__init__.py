"""x86-64 paging. Modules: `entry` (the PML5E/PML4E/PDPTE/PDE/PTE layouts, PAT memory types and the
codecs), `modes` (the 4-level and 5-level formats) and `walk` (the walk rules: #PF with its error code,
#GP)."""

from .entry import ARCEOS, PDE_2M, PDPTE_1G, PTE_4K, SPEC, TABLE_ENTRY, X86Codec, pat_entries
from .modes import MODES, PAGING4, PAGING5
from .walk import X86Options, X86Rules

__all__ = ["ARCEOS", "MODES", "PAGING4", "PAGING5", "PDE_2M", "PDPTE_1G", "PTE_4K", "SPEC", "TABLE_ENTRY",
           "X86Codec", "X86Options", "X86Rules", "pat_entries"]
