"""The CPUID feature bits x86 paging and nested paging depend on, each declared once: PSE, PAE, PGE, PSE-36
and MMX (leaf 1), SMEP, SMAP, PKU and LA57 (leaf 7), execute disable, 1-GByte pages and long mode
(0x80000001 EDX), MAXPHYADDR (0x80000008), and SVM (0x80000001 ECX) with nested paging (0x8000000A EDX).

Intel SDM Vol. 2A, CPUID (Tables 3-8 and 3-11); AMD APM Vol. 3, Appendix E.
"""

from __future__ import annotations

from ...layout import Field, Layout

CPUID1_EDX = Layout("CPUID.01H:EDX", 32, [
    Field("PSE", 3, 1, "page size extension: 4-MByte pages (CR4.PSE)"),
    Field("PAE", 6, 1, "physical address extension (CR4.PAE)"),
    Field("PGE", 13, 1, "global pages (CR4.PGE)"),
    Field("PSE36", 17, 1, "36-bit page size extension: 4-MByte pages above 4 GBytes"),
    Field("MMX", 23, 1, "MMX technology (the stub's 8-byte MOVQ)"),
], "Intel SDM Vol. 2A, CPUID, Table 3-11")
CPUID7_EBX = Layout("CPUID.(EAX=07H,ECX=0):EBX", 32, [
    Field("SMEP", 7, 1, "supervisor-mode execution prevention"),
    Field("SMAP", 20, 1, "supervisor-mode access prevention"),
], "Intel SDM Vol. 2A, CPUID, Table 3-8")
CPUID7_ECX = Layout("CPUID.(EAX=07H,ECX=0):ECX", 32, [
    Field("PKU", 3, 1, "protection keys for user-mode pages"),
    Field("LA57", 16, 1, "5-level paging"),
], "Intel SDM Vol. 2A, CPUID, Table 3-8")
CPUID_EXT1_EDX = Layout("CPUID.80000001H:EDX", 32, [
    Field("NX", 20, 1, "execute disable (IA32_EFER.NXE)"),
    Field("PAGE1GB", 26, 1, "1-GByte pages"),
    Field("LM", 29, 1, "Intel 64 architecture (IA-32e mode)"),
], "Intel SDM Vol. 2A, CPUID, Table 3-8")
CPUID_EXT8_EAX = Layout("CPUID.80000008H:EAX", 32, [
    Field("PHYS", 0, 8, "physical-address width (MAXPHYADDR)"),
    Field("LINEAR", 8, 8, "linear-address width"),
], "Intel SDM Vol. 2A, CPUID, Table 3-8")
CPUID_EXT1_ECX = Layout("CPUID Fn8000_0001_ECX", 32, [
    Field("SVM", 2, 1, "secure virtual machine"),
], "AMD APM Vol. 3, Appendix E.4.2")
CPUID_EXTA_EDX = Layout("CPUID Fn8000_000A_EDX", 32, [
    Field("NP", 0, 1, "nested paging"),
], "AMD APM Vol. 3, Appendix E.4.10")

__all__ = ["CPUID1_EDX", "CPUID7_EBX", "CPUID7_ECX",
           "CPUID_EXT1_ECX", "CPUID_EXT1_EDX", "CPUID_EXT8_EAX", "CPUID_EXTA_EDX"]
