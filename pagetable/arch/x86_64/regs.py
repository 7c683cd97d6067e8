"""The x86-64 registers that control paging, each declared once as a layout: CR0, CR3, CR4, IA32_EFER,
IA32_PAT, PKRU, IA32_PKRS and RFLAGS (the bits paging reads).

Intel SDM Vol. 3A, section 2.5 "Control Registers" (Figure 2-7), 4.5 (CR3 with 4-level and 5-level paging,
Table 4-12 and 4-13), 4.6.2 "Protection Keys" (PKRU, IA32_PKRS), 12.12.2 "IA32_PAT MSR"; Vol. 4 for
IA32_EFER (0xC0000080); AMD APM Vol. 2, section 3.1.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import InvalidArgument
from ...layout import Field, Layout
from .entry import PAT_TYPES, pat_entries
from .walk import X86Options, X86Rules

CR0 = Layout("CR0", 64, [
    Field("PE", 0, 1, "protection enable"),
    Field("MP", 1, 1, "monitor coprocessor"),
    Field("EM", 2, 1, "emulation"),
    Field("TS", 3, 1, "task switched"),
    Field("ET", 4, 1, "extension type"),
    Field("NE", 5, 1, "numeric error"),
    Field("WP", 16, 1, "write protect: supervisor writes honour R/W=0"),
    Field("AM", 18, 1, "alignment mask"),
    Field("NW", 29, 1, "not write-through"),
    Field("CD", 30, 1, "cache disable"),
    Field("PG", 31, 1, "paging"),
], "Intel SDM Vol. 3A, Figure 2-7 (Control Registers)")

CR3 = Layout("CR3", 64, [
    Field("PWT", 3, 1, "page-level write-through of the root table (CR4.PCIDE=0)"),
    Field("PCD", 4, 1, "page-level cache disable of the root table (CR4.PCIDE=0)"),
    Field("ADDR", 12, 40, "physical address of the PML4 (PML5 with LA57) table; bits MAXPHYADDR..51 reserved"),
    Field("NOFLUSH", 63, 1, "on MOV to CR3 with CR4.PCIDE=1: keep the PCID's TLB entries (not stored)"),
], "Intel SDM Vol. 3A, Tables 4-12 and 4-13 (CR3 with 4-level and 5-level paging)")
"""With CR4.PCIDE=1, bits 11:0 are the PCID (and PWT/PCD are not used)."""

CR4 = Layout("CR4", 64, [
    Field("VME", 0, 1, "virtual-8086 mode extensions"),
    Field("PVI", 1, 1, "protected-mode virtual interrupts"),
    Field("TSD", 2, 1, "time stamp disable"),
    Field("DE", 3, 1, "debugging extensions"),
    Field("PSE", 4, 1, "page size extensions (32-bit paging)"),
    Field("PAE", 5, 1, "physical address extension (required by 4-level and 5-level paging)"),
    Field("MCE", 6, 1, "machine-check enable"),
    Field("PGE", 7, 1, "global pages"),
    Field("PCE", 8, 1, "performance-monitoring counter enable"),
    Field("OSFXSR", 9, 1, "OS support for FXSAVE/FXRSTOR"),
    Field("OSXMMEXCPT", 10, 1, "OS support for unmasked SIMD floating-point exceptions"),
    Field("UMIP", 11, 1, "user-mode instruction prevention"),
    Field("LA57", 12, 1, "57-bit linear addresses: 5-level paging"),
    Field("VMXE", 13, 1, "VMX enable"),
    Field("SMXE", 14, 1, "SMX enable"),
    Field("FSGSBASE", 16, 1, "RDFSBASE/WRFSBASE and friends"),
    Field("PCIDE", 17, 1, "process-context identifiers"),
    Field("OSXSAVE", 18, 1, "XSAVE and processor extended states"),
    Field("KL", 19, 1, "Key Locker"),
    Field("SMEP", 20, 1, "supervisor-mode execution prevention"),
    Field("SMAP", 21, 1, "supervisor-mode access prevention"),
    Field("PKE", 22, 1, "protection keys for user-mode pages"),
    Field("CET", 23, 1, "control-flow enforcement"),
    Field("PKS", 24, 1, "protection keys for supervisor-mode pages"),
    Field("UINTR", 25, 1, "user interrupts"),
    Field("LAM_SUP", 28, 1, "linear-address masking for supervisor pointers"),
], "Intel SDM Vol. 3A, Figure 2-7 (Control Registers)")

EFER = Layout("IA32_EFER", 64, [
    Field("SCE", 0, 1, "SYSCALL enable"),
    Field("LME", 8, 1, "long mode enable"),
    Field("LMA", 10, 1, "long mode active (read-only: LME and CR0.PG)"),
    Field("NXE", 11, 1, "execute-disable enable: the XD bit of paging entries"),
    Field("SVME", 12, 1, "secure virtual machine enable (AMD)"),
    Field("LMSLE", 13, 1, "long mode segment limit enable (AMD)"),
    Field("FFXSR", 14, 1, "fast FXSAVE/FXRSTOR (AMD)"),
    Field("TCE", 15, 1, "translation cache extension (AMD)"),
], "Intel SDM Vol. 4, IA32_EFER (0xC0000080); AMD APM Vol. 2, Figure 3-8")

_TYPES = {code: t.name.replace("_MINUS", "-") for code, t in PAT_TYPES.items()}     # UC, WC, WT, WP, WB, UC-
PAT = Layout("IA32_PAT", 64, [Field(f"PA{k}", 8 * k, 3, f"memory type of PAT index {k}", _TYPES) for k in range(8)],
             "Intel SDM Vol. 3A, 12.12.2 (IA32_PAT MSR, 0x277): bits 7:3 of each byte are reserved")

PKRU = Layout("PKRU", 32, [Field(f"{kind}{k}", 2 * k + (kind == "WD"), 1,
                                 f"protection key {k}: {'access' if kind == 'AD' else 'write'} disable")
                           for k in range(16) for kind in ("AD", "WD")],
              "Intel SDM Vol. 3A, 4.6.2 (PKRU; IA32_PKRS has the same layout for supervisor-mode pages)")

RFLAGS = Layout("RFLAGS", 64, [
    Field("CF", 0, 1, "carry"),
    Field("FIXED1", 1, 1, "reads as 1"),
    Field("PF", 2, 1, "parity"),
    Field("AF", 4, 1, "auxiliary carry"),
    Field("ZF", 6, 1, "zero"),
    Field("SF", 7, 1, "sign"),
    Field("TF", 8, 1, "trap"),
    Field("IF", 9, 1, "interrupt enable"),
    Field("DF", 10, 1, "direction"),
    Field("OF", 11, 1, "overflow"),
    Field("IOPL", 12, 2, "I/O privilege level"),
    Field("NT", 14, 1, "nested task"),
    Field("RF", 16, 1, "resume"),
    Field("VM", 17, 1, "virtual-8086 mode"),
    Field("AC", 18, 1, "alignment check / access control: with CR4.SMAP, supervisor accesses to user pages"),
    Field("VIF", 19, 1, "virtual interrupt"),
    Field("VIP", 20, 1, "virtual interrupt pending"),
    Field("ID", 21, 1, "CPUID available"),
], "Intel SDM Vol. 1, 3.4.3 (EFLAGS); Vol. 3A 4.6 (SMAP and RFLAGS.AC)")


def paging_mode(cr0: int, cr4: int, efer: int) -> str:
    """The paging mode (`walk.PAGING_MODES`) CR0.PG, CR4.PAE and IA32_EFER.LME select (SDM 4.1.1, Table 4-1):
    32-bit paging with CR4.PAE=0, PAE paging with CR4.PAE=1 and LME=0, IA-32e paging (4-level or 5-level
    by CR4.LA57) with CR4.PAE=1 and LME=1; InvalidArgument for paging off and for LME=1 without CR4.PAE
    (setting CR0.PG would #GP)."""
    if not CR0.get(cr0, "PG"):
        raise InvalidArgument(f"CR0 {cr0:#x}: paging is off (CR0.PG=0)")
    if not CR4.get(cr4, "PAE"):
        if EFER.get(efer, "LME"):
            raise InvalidArgument(f"CR4 {cr4:#x}, IA32_EFER {efer:#x}: IA32_EFER.LME=1 needs CR4.PAE=1 (setting "
                                  "CR0.PG would #GP)")
        return "32-bit"
    return "ia32e" if EFER.get(efer, "LME") else "pae"


def rules_from_registers(cr0: int, cr3: int, cr4: int, efer: int, pat: int | None = None, rflags: int = 0,
                         pkru: int = 0, pkrs: int = 0, maxphyaddr: int = 52, gbpages: bool = True,
                         pse36: bool = True, pdptes: Sequence[int] | None = None) -> X86Rules:
    """The walk rules of a CPU whose registers hold these values, in the paging mode they select
    (`paging_mode`): 32-bit paging (CR4.PSE for 4 MiB pages, `pse36` whether the CPU has PSE-36; CR3 as
    `CR3_32`), PAE paging (CR3 as `CR3_PAE`; `pdptes`: the PDPTE registers, `pae.load_pdptes`), or
    4-level or 5-level paging (IA-32e mode; CR4.LA57 chooses 5 levels). CR4.PSE is ignored outside 32-bit
    paging, and CR4.LA57, CR4.PKE and CR4.PKS outside IA-32e mode (protection keys need it). InvalidArgument
    for registers that select no paging mode, PDPTEs whose load would #GP (or none for PAE paging), or a
    reserved IA32_PAT encoding."""
    paging = paging_mode(cr0, cr4, efer)
    if pat is not None:
        pat_entries(pat)                                  # a reserved memory type: WRMSR would #GP
    ia32e = paging == "ia32e"
    options = X86Options(wp=bool(CR0.get(cr0, "WP")), smep=bool(CR4.get(cr4, "SMEP")),
                         smap=bool(CR4.get(cr4, "SMAP")), ac=bool(RFLAGS.get(rflags, "AC")),
                         nxe=bool(EFER.get(efer, "NXE")), la57=ia32e and bool(CR4.get(cr4, "LA57")),
                         maxphyaddr=maxphyaddr, gbpages=gbpages, pke=ia32e and bool(CR4.get(cr4, "PKE")),
                         pks=ia32e and bool(CR4.get(cr4, "PKS")), pkru=pkru, pkrs=pkrs, paging=paging,
                         pse=paging == "32-bit" and bool(CR4.get(cr4, "PSE")), pse36=pse36)
    return X86Rules(CR3.get(cr3, "ADDR") << 12 if ia32e else cr3, options, pat,    # CR3_32, CR3_PAE: the rules'
                    pdptes=pdptes if paging == "pae" else None)
