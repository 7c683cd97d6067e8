"""x86-64 paging. Modules: `entry` (the PML5E/PML4E/PDPTE/PDE/PTE layouts, PAT memory types and the
codecs), `ept` (Intel EPT's entries, EPTP and codec), `modes` (the 32-bit, PAE, 4-level and 5-level formats, EPT's
and nested paging's), `paging32` (32-bit paging's CR3, entries and codec), `pae` (PAE paging's CR3, PDPTE,
entries and codecs), `walk` (the walk rules: #PF with its error code, #GP), `ept_walk` (EPT violations and
misconfigurations), `npt` (AMD nested paging: #VMEXIT(NPF)), `memtype` (two memory types combined),
`explain` (32-bit and PAE entries, field by field and level by level), `cpuid` (the feature bits paging
depends on) and `regs` (CR0, CR3, CR4, IA32_EFER, IA32_PAT, PKRU, RFLAGS, and the walk rules their values
select)."""

from .entry import ARCEOS, NESTED, PDE_2M, PDPTE_1G, PTE_4K, SPEC, TABLE_ENTRY, X86Codec, pat_entries
from .ept import EPT_PDE_2M, EPT_PDPTE_1G, EPT_PTE_4K, EPT_TABLE, EPTP, EptCodec
from .ept_walk import EptOptions, EptRules
from .explain import explain_entry32, explain_pae
from .modes import (
    EPT4,
    EPT5,
    EPT_MODES,
    MODES,
    NPT4,
    NPT5,
    NPT_MODES,
    PAGING4,
    PAGING5,
    PAGING32,
    PAGING32_PSE,
    PAGING32_PSE36,
    PAGING_PAE,
    paging32,
)
from .npt import NptRules
from .pae import (
    CR3_PAE,
    PAE,
    PAE_PDE_2M,
    PAE_PTE,
    PAE_TABLE,
    PDPT,
    PDPTE,
    PaeCodec,
    PdpteCodec,
    load_pdptes,
    pdpte_reserved,
)
from .paging32 import CR3_32, PDE_4M, PDE_TABLE32, PTE32, SPEC32, X86Codec32
from .regs import CR0, CR3, CR4, EFER, PAT, PKRU, RFLAGS, paging_mode, rules_from_registers
from .walk import X86Options, X86Rules

__all__ = [
    "ARCEOS",
    "CR0",
    "CR3",
    "CR3_32",
    "CR3_PAE",
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
    "NESTED",
    "NPT4",
    "NPT5",
    "NPT_MODES",
    "PAE",
    "PAE_PDE_2M",
    "PAE_PTE",
    "PAE_TABLE",
    "PAGING4",
    "PAGING5",
    "PAGING32",
    "PAGING32_PSE",
    "PAGING32_PSE36",
    "PAGING_PAE",
    "PAT",
    "PDE_2M",
    "PDE_4M",
    "PDE_TABLE32",
    "PDPT",
    "PDPTE",
    "PDPTE_1G",
    "PKRU",
    "PTE32",
    "PTE_4K",
    "RFLAGS",
    "SPEC",
    "SPEC32",
    "TABLE_ENTRY",
    "EptCodec",
    "EptOptions",
    "EptRules",
    "NptRules",
    "PaeCodec",
    "PdpteCodec",
    "X86Codec",
    "X86Codec32",
    "X86Options",
    "X86Rules",
    "explain_entry32",
    "explain_pae",
    "load_pdptes",
    "paging32",
    "paging_mode",
    "pat_entries",
    "pdpte_reserved",
    "rules_from_registers",
]
