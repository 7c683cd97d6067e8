"""Ask QEMU how x86-64 linear addresses translate (4-level and 5-level paging), under TCG or KVM.

Two tiny bare-metal programs, assembled by GNU binutils (``x86_64-linux-gnu-as``, Debian package
``binutils-x86-64-linux-gnu``): ``boot.S``, a 64 KiB ROM that ``qemu-system-x86_64 -M pc`` runs as its
BIOS (``-bios``), takes the processor from the reset vector to 32-bit protected mode and jumps to
``stub.S``, which the generic loader has put at :data:`STUB_BASE` (2 MiB); the stub enters IA-32e mode and,
for each :class:`ProbeCase`, performs one real access through the MMU -- an 8-byte load, a store (of what a
load read), or an instruction fetch (a jump to the VA) -- at CPL 0 or CPL 3, with the case's CR0, CR4,
IA32_EFER, RFLAGS and PKRU, and records the exception vector, the error code and CR2, or on success the
value loaded or the RIP reached.  Results come back over COM1; the isa-debug-exit device ends the run.  The
caller's image is loaded at :data:`~pagetable.vectors.x86_64.layout.RAM_BASE` (16 MiB) with the tag
convention of :mod:`pagetable.vectors.x86_64.layout`.  Assembling and running are
:mod:`pagetable.vectors.qemu`'s, which does nothing x86 specific; 32-bit and PAE paging are
:mod:`pagetable.vectors.x86_64.qemu32`'s, which shares this module's ROM, records, output checks and
command line.

Architecture followed (Intel SDM Vol. 3A, Order No. 253668; the stubs' comments cite the sections each
instruction follows):

* Chapter 10 (9 in editions before 2023) "Processor Management and Initialization": 10.1.4, the first
  instruction at 0xFFFFFFF0 in real-address mode; 10.9.1, switching to protected mode; 10.8.5,
  "Initializing IA-32e Mode" (CR4.PAE and CR4.LA57 with paging off, CR3, IA32_EFER.LME, CR0.PG).
* Chapter 4 "Paging": the case's CR3 (4.5, Tables 4-12/4-13), CR0.WP, CR4.SMEP/SMAP/PKE, IA32_EFER.NXE,
  RFLAGS.AC and PKRU (4.6, 4.6.2) are real register values, built and checked with the layouts of
  :mod:`pagetable.arch.x86_64.regs` (:class:`Registers`); every case writes CR4 first with PGE clear and
  then reloads CR3, which invalidates every TLB entry, global ones included, and every paging-structure
  cache (4.10.4.1).
* Chapter 6 "Interrupt and Exception Handling": 64-bit IDT gates (6.14.1, Figure 6-8), the stack frame
  (6.14.2), IRETQ into CPL 3 and back by an exception (6.14.3); the #PF error code and CR2 (6.15,
  Interrupt 14; 4.7).  An access that succeeds ends in UD2 (#UD at a RIP the harness knows); a fetch that
  succeeds executes the tag's INT3 (#BP, whose gate has DPL 3 so that CPL-3 code may raise it, 6.12.1.1).
* 3.4.5 "Segment Descriptors" (Figure 3-8) and 5.2.1 (the L bit of a 64-bit code segment); 8.7 "Task
  Management in 64-bit Mode" (7.7 in editions before 2023; the 64-bit TSS, Figure 8-11: RSP0, the stack
  of traps from CPL 3).

The stub's own code, GDT, IDT, TSS and stacks must stay mapped under the case's CR3: the harness writes
**one root-table entry** -- a PML4E, or a PML5E with CR4.LA57 -- in a slot no probe VA uses
(:func:`choose_slot`: slot 255, which vector sets leave free, else the highest unused slot whose entry is 0,
else the highest unused one; ValueError when every slot is used), pointing at tables of its own (built
with :class:`~pagetable.table.PageTable` in the stub's memory below 16 MiB) that map the stub at VA = slot
base + PA with supervisor 2 MiB pages, and one read-only user page holding the access snippets at the
slot's base, for CPL-3 accesses.  No harness entry
sets XD, G or a reserved bit, so every CR0/CR4/EFER a case may choose keeps the stub running.  Everything
else in the image is left byte for byte as given; the processor sets A/D bits in the entries it walks, so
compare loaded values without them.  The run's :class:`ProbeRun` has the image as QEMU got it.

QEMU ``pc`` machine facts relied on (checked against QEMU 7.2): a 64 KiB ``-bios`` image is mapped to end
at 4 GiB; RAM starts at 0; COM1 is a 16550A at I/O port 0x3F8; ``-device isa-debug-exit,iobase=0xf4``
exits with status (value << 1) | 1; the generic loader (``-device loader``) writes files into RAM before
the first instruction; ``-no-reboot`` turns a triple fault (a stub that crashed) into an exit with status 0.
"""

from __future__ import annotations

import functools
import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from ...arch.x86_64 import CR0, CR3, CR4, EFER, PAGING4, PAGING5, PKRU, RFLAGS, X86Rules, rules_from_registers
from ...arch.x86_64.cpuid import CPUID7_EBX, CPUID7_ECX, CPUID_EXT1_EDX, CPUID_EXT8_EAX
from ...flags import MappingFlags
from ...frames import FrameAllocator
from ...layout import Layout
from ...physmem import PhysMem
from ...table import PageTable
from .. import qemu as runner
from ..qemu import Program, QemuFailed, QemuUnavailable, Record, ToolchainFailed, ToolchainUnavailable, round_up, tail
from .layout import RAM_BASE, STUB_SLOT

__all__ = [
    "CPUID7_EBX",
    "CPUID7_ECX",
    "CPUID_EXT1_EDX",
    "KVM_CPU",
    "QEMU_BINARY",
    "QEMU_PACKAGE",
    "RAM_BASE",
    "STUB_BASE",
    "TCG_CPU",
    "TOOLCHAIN_PACKAGE",
    "TOOLCHAIN_PREFIX",
    "CpuFeatures",
    "ProbeCase",
    "ProbeResult",
    "ProbeRun",
    "QemuFailed",
    "QemuLayout",
    "QemuUnavailable",
    "Registers",
    "StubImage",
    "ToolchainFailed",
    "ToolchainUnavailable",
    "assemble_stub",
    "build_stub",
    "choose_slot",
    "cpu_features",
    "find_qemu",
    "kvm_usable",
    "missing_toolchain",
    "plan_layout",
    "qemu_command",
    "rom_program",
    "run_probes",
    "stub_program",
]

QEMU_BINARY: Final = "qemu-system-x86_64"
QEMU_PACKAGE: Final = "qemu-system-x86"
TOOLCHAIN_PREFIX: Final = "x86_64-linux-gnu-"
TOOLCHAIN_PACKAGE: Final = "binutils-x86-64-linux-gnu"
TCG_CPU: Final = "max,phys-bits=40"
"""TCG's CPU: the paging features the harness uses (LA57, SMEP, SMAP, PKU, 1-GByte pages); MAXPHYADDR 40."""
KVM_CPU: Final = "host,-arch-capabilities"
"""KVM's CPU: the host's features and MAXPHYADDR, with IA32_ARCH_CAPABILITIES off."""

STUB_BASE: Final = 0x20_0000
"""Where the stub is loaded: 2 MiB, below the image (2 MiB aligned: the harness maps it with 2 MiB pages)."""

_MIB: Final = 1 << 20
_PAGE: Final = 4096
_LARGE: Final = 2 * _MIB
_STUB_LIMIT: Final = RAM_BASE                # the stub ends below the image
_TABLE_FRAMES: Final = 16                    # the harness's page tables (it needs at most 9)
_STACK: Final = 2 * _PAGE

_PRIVILEGE: Final = {"supervisor": 0, "user": 3}
_ACCESSES: Final = ("read", "write", "execute")

# The GDT the harness builds (SDM 3.4.5): selector -> descriptor, and the selectors the stub uses.
KERNEL_CS, KERNEL_DS, BOOT_CS, USER_DS, USER_CS, TSS_SEL = 0x08, 0x10, 0x18, 0x20, 0x28, 0x30
_RPL3: Final = 3
UD_VECTOR: Final = 6                         # #UD: the UD2 after a load or store that succeeded
BP_VECTOR: Final = 3                         # #BP: INT3, a fetch of a tag that succeeded
_EXIT_PORT, _EXIT_VALUE = 0xF4, 0x10
_EXIT_STATUS: Final = (_EXIT_VALUE << 1) | 1  # isa-debug-exit's exit status for _EXIT_VALUE
_NONE: Final = 2**64 - 1
_STATUS_OK, _STATUS_NO_LA57 = 0, 1
_MSR_EFER: Final = 0xC000_0080               # IA32_EFER's MSR address (SDM Vol. 4, Table 2-2)

# The registers a case may choose, and the rest of each, fixed (the stub needs protected mode, IA-32e mode
# and interrupts off).
_CR0_FIXED: Final = CR0.mask("PE", "PG")
_CR0_FREE: Final = CR0.mask("WP", "MP", "ET", "NE")
_CR0_DEFAULT: Final = _CR0_FIXED | CR0.mask("MP", "ET", "NE")
_CR4_FIXED: Final = CR4.mask("PAE")
_CR4_FREE: Final = CR4.mask("LA57", "SMEP", "SMAP", "PKE", "PGE")
_EFER_FIXED: Final = EFER.mask("LME", "LMA")
_EFER_FREE: Final = EFER.mask("NXE")
_RFLAGS_FIXED: Final = RFLAGS.mask("FIXED1")
_RFLAGS_FREE: Final = RFLAGS.mask("AC")


@dataclass(frozen=True)
class Registers:
    """The register values a probe runs with: CR0, CR4, IA32_EFER, RFLAGS and PKRU, as the processor holds
    them (layouts :data:`~pagetable.arch.x86_64.CR0` and the rest).  A case may choose CR0.WP (and MP, ET,
    NE, which paging ignores), CR4.LA57/SMEP/SMAP/PKE/PGE, IA32_EFER.NXE, RFLAGS.AC and PKRU; the other bits
    are fixed: CR0.PE|PG, CR4.PAE, IA32_EFER.LME|LMA, RFLAGS bit 1.  :meth:`of` builds them from the choices
    (CR0 = PE|MP|ET|NE|PG plus WP); :meth:`rules` gives the walk rules the same values select
    (:func:`~pagetable.arch.x86_64.rules_from_registers`).  IA32_PAT is not among them: memory types are
    not observable by a probe."""

    cr0: int = _CR0_DEFAULT | CR0.mask("WP")
    cr4: int = _CR4_FIXED
    efer: int = _EFER_FIXED | _EFER_FREE
    rflags: int = _RFLAGS_FIXED
    pkru: int = 0

    def __post_init__(self) -> None:
        check_registers((("CR0", CR0, self.cr0, _CR0_FIXED, _CR0_FREE), ("CR4", CR4, self.cr4, _CR4_FIXED, _CR4_FREE),
                         ("IA32_EFER", EFER, self.efer, _EFER_FIXED, _EFER_FREE),
                         ("RFLAGS", RFLAGS, self.rflags, _RFLAGS_FIXED, _RFLAGS_FREE)))
        if type(self.pkru) is not int or not 0 <= self.pkru < 1 << PKRU.width:
            raise ValueError(f"PKRU {self.pkru!r} is not a 32-bit value")

    @classmethod
    def of(cls, *, la57: bool = False, wp: bool = True, nxe: bool = True, smep: bool = False, smap: bool = False,
           pke: bool = False, ac: bool = False, pkru: int = 0, pge: bool = False) -> Registers:
        """The registers with these choices (CR4.LA57, CR0.WP, IA32_EFER.NXE, CR4.SMEP/SMAP/PKE/PGE,
        RFLAGS.AC)."""
        def bits(layout: Layout, **chosen: bool) -> int:
            return layout.mask(*(name for name, on in chosen.items() if on)) if any(chosen.values()) else 0
        return cls(cr0=_CR0_DEFAULT | bits(CR0, WP=wp), cr4=_CR4_FIXED | bits(CR4, LA57=la57, SMEP=smep, SMAP=smap,
                                                                                   PKE=pke, PGE=pge),
                   efer=_EFER_FIXED | bits(EFER, NXE=nxe), rflags=_RFLAGS_FIXED | bits(RFLAGS, AC=ac), pkru=pkru)

    @property
    def la57(self) -> bool:
        return bool(CR4.get(self.cr4, "LA57"))

    def rules(self, cr3: int, maxphyaddr: int, gbpages: bool) -> X86Rules:
        """The library's walk rules for these registers with ``cr3``, on a CPU with this MAXPHYADDR and
        1-GByte page support."""
        return rules_from_registers(self.cr0, cr3, self.cr4, self.efer, rflags=self.rflags, pkru=self.pkru,
                                    maxphyaddr=maxphyaddr, gbpages=gbpages)


def check_registers(registers: Sequence[tuple[str, Layout, int, int, int]]) -> None:
    """ValueError unless each (name, layout, value, fixed, free) has exactly the ``fixed`` bits and any of the
    ``free`` ones: the register values a probe stub can run with."""
    for name, layout, value, fixed, free in registers:
        if type(value) is not int or value & ~free != fixed:
            names = ", ".join(f.name for f in layout.fields if f.mask & free)
            raise ValueError(f"{name} {value!r} is not one the probe stub runs with: it must be {fixed:#x} plus "
                             f"any of {names}")


@dataclass(frozen=True)
class ProbeCase:
    """One access to probe: ``va`` an 8-byte aligned linear address (canonical or not), ``access``
    ``"read"``, ``"write"`` or ``"execute"``, ``privilege`` ``"supervisor"`` (CPL 0) or ``"user"``
    (CPL 3), with the registers ``regs``."""

    va: int
    access: str
    privilege: str
    regs: Registers = field(default_factory=Registers)


@dataclass(frozen=True)
class ProbeResult:
    """What the processor did for one :class:`ProbeCase`.

    ``vector`` is ``None`` when the access succeeded, else the exception vector (SDM Table 6-1: 14 #PF,
    13 #GP, ...).  ``error_code`` is the error code the exception pushed (0 for vectors without one), ``cr2``
    CR2 after the access (the stub zeroes it before each: a #PF's linear address).  ``value`` is the u64
    a read or a write probe loaded (0 if the load faulted), and for an execute probe the RIP reached: the
    VA when it succeeded.  ``rip`` is the RIP the exception pushed (for a fault, the faulting instruction's;
    0 on success).
    """

    vector: int | None
    error_code: int
    cr2: int
    value: int
    rip: int = 0


@dataclass(frozen=True)
class CpuFeatures:
    """What CPUID told the stub (SDM Vol. 2A): MAXPHYADDR, 1-GByte pages, 5-level paging, SMEP, SMAP, PKU."""

    maxphyaddr: int
    gbpages: bool
    la57: bool
    smep: bool
    smap: bool
    pku: bool

    @classmethod
    def from_cpuid(cls, leaf7_ebx: int, leaf7_ecx: int, ext1_edx: int, ext8_eax: int) -> CpuFeatures:
        return cls(maxphyaddr=CPUID_EXT8_EAX.get(ext8_eax, "PHYS"),
                   gbpages=bool(CPUID_EXT1_EDX.get(ext1_edx, "PAGE1GB")),
                   la57=bool(CPUID7_ECX.get(leaf7_ecx, "LA57")), smep=bool(CPUID7_EBX.get(leaf7_ebx, "SMEP")),
                   smap=bool(CPUID7_EBX.get(leaf7_ebx, "SMAP")), pku=bool(CPUID7_ECX.get(leaf7_ecx, "PKU")))

    def missing(self, regs: Registers) -> list[str]:
        """The CR4 bits ``regs`` sets that this CPU does not implement."""
        need = {"LA57": self.la57, "SMEP": self.smep, "SMAP": self.smap, "PKE": self.pku}
        return [f"CR4.{name}" for name, have in need.items() if CR4.get(regs.cr4, name) and not have]


@dataclass(frozen=True)
class ProbeRun:
    """A run's results, one per case in order, with the CPU's features, the root-table slot the harness used,
    and the image as QEMU got it (the given one with that slot's entry written)."""

    results: list[ProbeResult]
    features: CpuFeatures
    slot: int
    image: bytes


@dataclass(frozen=True)
class QemuLayout:
    """Guest physical memory plan: RAM size, and the stub's region [stub_base, stub_base + stub_size)
    (2 MiB multiples)."""

    ram_size: int
    stub_base: int
    stub_size: int


def find_qemu() -> str | None:
    """Return the path of ``qemu-system-x86_64`` on PATH, or ``None``."""
    return runner.find_qemu(QEMU_BINARY)


def missing_toolchain() -> list[str]:
    """The binutils programs the stubs need that are not on PATH (empty when all are there)."""
    return runner.missing_tools(TOOLCHAIN_PREFIX)


def kvm_usable() -> bool:
    """Whether /dev/kvm exists and this process may open it for reading and writing."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


# ---------------------------------------------------------------------------
# The data shared with the stub
# ---------------------------------------------------------------------------

# The state block (addressed RIP-relative from the code's end), the case records, and what the stub
# sends: the header, one result record per case and the trailer.
_STATE: Final = Record("ST", (
    "VECTOR", "ERROR", "CR2", "RIP", "VALUE",            # the trap record the handler writes
    "RESUME", "RSP",                                      # where and on which stack the handler resumes
    "CASE", "CASE_END", "RESULT", "OUT_START", "OUT_END",  # VAs (the alias)
    "OUT_PA", "CR3", "ALIAS",                             # the header's PA, the cases' CR3, VA - PA
    "BOOT_CR3", "BOOT_CR4", "BOOT_EFER", "STACK_PA", "STACK",
    "GDTR_PA", "GDTR", "GDTR_HI", "IDTR", "IDTR_HI",      # pseudo-descriptors: limit (16) then base
))
_CASE: Final = Record("CASE", ("VA", "CR0", "CR4", "EFER", "RFLAGS", "PKRU", "CS", "SS", "RIP1", "RIP2",
                               "NEED7_EBX", "NEED7_ECX"))    # the CPUID leaf-7 bits its CR4 needs
_RESULT: Final = Record("RES", ("VECTOR", "ERROR", "CR2", "RIP", "VALUE"))
_HEADER: Final = Record("HDR", ("MAGIC", "STATUS", "COUNT", "CR3", "CPUID7_EBX", "CPUID7_ECX", "EXT1_EDX",
                                "EXT8_EAX"))
_TRAILER_SIZE: Final = 8
_HEADER_MAGIC: Final = 0x3436_5842_4F52_5058  # "XPROBX64"
_TRAILER_MAGIC: Final = 0x454E_445F_5052_4F42  # "END_PROB"

_IMAGE_FILE, _STUB_FILE, _ROM_FILE, _SERIAL_FILE = "image.bin", "stub.bin", "rom.bin", "out.bin"
_HIGH_FILE: Final = "high.bin"               # RAM at HIGH_BASE (qemu_command's high_size)
HIGH_BASE: Final = 1 << 32
"""Where RAM above 4 GiB starts on QEMU's ``pc`` machine (``qemu_command``'s ``high_size``)."""
_SNIPPETS: Final = ("snip_read", "read_done", "snip_write", "write_done", "snip_fetch")


# -- descriptors (SDM Vol. 3A 3.4.5, Figure 3-8; 5.2.1; 6.14.1, Figure 6-8; 8.7, Figures 8-11 and 8-4) --

def segment_descriptor(kind: int, dpl: int, *, long: bool = False, big: bool = False) -> int:
    """A flat segment descriptor (base 0, limit 0xFFFFF with G=1): type ``kind`` (0xB execute/read code,
    0x3 read/write data, both with the accessed bit set: the processor would otherwise write it when it
    loads the descriptor, and boot.S's GDT is in ROM, where under KVM that write never lands and the load
    repeats forever), S=1, ``dpl``, P=1; L (bit 53: 64-bit code) or D/B (bit 54: 32-bit)."""
    return (0xFFFF | 0xF << 48 | kind << 40 | 1 << 44 | dpl << 45 | 1 << 47 | int(long) << 53 | int(big) << 54
            | 1 << 55)


def system_descriptor(base: int, limit: int, kind: int) -> tuple[int, int]:
    """A 16-byte system-segment descriptor of IA-32e mode (a TSS: type 9, available 64-bit TSS), P=1,
    DPL 0, G=0, as two u64s."""
    low = (limit & 0xFFFF | (base & 0xFF_FFFF) << 16 | kind << 40 | 1 << 47 | (limit >> 16 & 0xF) << 48
           | (base >> 24 & 0xFF) << 56)
    return low, base >> 32


def gate_descriptor(offset: int, selector: int, dpl: int) -> tuple[int, int]:
    """A 64-bit interrupt gate (type 0xE, IST 0, P=1) to ``selector:offset``, as two u64s."""
    low = offset & 0xFFFF | selector << 16 | 0xE << 40 | dpl << 45 | 1 << 47 | (offset >> 16 & 0xFFFF) << 48
    return low, offset >> 32


_CODE, _DATA = 0xB, 0x3                      # execute/read and read/write, accessed (SDM Table 3-1)
_GDT: Final = {
    KERNEL_CS: segment_descriptor(_CODE, 0, long=True),
    KERNEL_DS: segment_descriptor(_DATA, 0, big=True),
    BOOT_CS: segment_descriptor(_CODE, 0, big=True),
    USER_DS: segment_descriptor(_DATA, 3, big=True),
    USER_CS: segment_descriptor(_CODE, 3, long=True),
}
_TSS_SIZE: Final = 104
_TSS_RSP0: Final = 4                         # offset of RSP0 in the 64-bit TSS (Figure 8-11)
_TSS_IOMAP: Final = 102                      # offset of the I/O map base address


def _pseudo_descriptor(base: int, limit: int) -> tuple[int, int]:
    """A 10-byte LGDT/LIDT operand (limit, then base; SDM Figure 3-11) as the two u64 fields it fills."""
    raw = int.from_bytes(struct.pack("<HQ", limit, base) + bytes(6), "little")
    return raw & _NONE, raw >> 64


# ---------------------------------------------------------------------------
# The stubs
# ---------------------------------------------------------------------------


def _register_defsyms() -> dict[str, int]:
    """The register bits both stubs use, from the layouts of pagetable/arch/x86_64/regs.py."""
    return {"CR0_PE": CR0.mask("PE"), "CR0_PG": CR0.mask("PG"), "CR0_CD": CR0.mask("CD"), "CR0_NW": CR0.mask("NW"),
            "CR4_LA57": CR4.mask("LA57"), "CR4_PKE": CR4.mask("PKE"), "CR4_PGE": CR4.mask("PGE"),
            "CPUID7_ECX_LA57": CPUID7_ECX.mask("LA57")}


def _stub_defsyms() -> dict[str, int]:
    """Every number stub.S shares with this module, by the name it uses."""
    return runner.defsyms(
        _STATE, _CASE, _RESULT, _HEADER,
        KERNEL_CS=KERNEL_CS, KERNEL_DS=KERNEL_DS, TSS_SEL=TSS_SEL,
        NO_TRAP=_NONE - 2**64, RFLAGS_CLEAN=_RFLAGS_FIXED,
        STATUS_NO_LA57=_STATUS_NO_LA57, EXIT_PORT=_EXIT_PORT, EXIT_VALUE=_EXIT_VALUE, MSR_EFER=_MSR_EFER,
        **_register_defsyms(),
    )


def _rom_defsyms() -> dict[str, int]:
    """Every number boot.S shares with this module."""
    return {"STUB_BASE": STUB_BASE, "KERNEL_DS": KERNEL_DS, "BOOT_CS": BOOT_CS, "DESC_CODE64": _GDT[KERNEL_CS],
            "DESC_DATA": _GDT[KERNEL_DS], "DESC_CODE32": _GDT[BOOT_CS], **_register_defsyms()}


def stub_source(name: str) -> str:
    """The text of the harness's assembly file `name` (boot.S, stub.S, svm.S) after the macros they share
    (macros.S)."""
    return runner.package_text(__name__, "macros.S") + runner.package_text(__name__, name)


def _assemble(name: str, defsyms: dict[str, int], address: int) -> Program:
    return runner.assemble(stub_source(name), name, prefix=TOOLCHAIN_PREFIX, package=TOOLCHAIN_PACKAGE,
                           as_flags=("--64",), defsyms=defsyms, address=address)


def assemble_stub(address: int = 0) -> Program:
    """Assemble stub.S linked at ``address`` (uncached: :func:`stub_program` is what the harness loads).
    Raises :class:`ToolchainUnavailable`, naming the Debian package ``binutils-x86-64-linux-gnu``, when
    binutils are missing."""
    return _assemble("stub.S", _stub_defsyms(), address)


@functools.cache
def stub_program() -> Program:
    """The probe stub, linked at 0 and assembled once per process (on first use, not at import).

    The code ends at the 8-byte aligned symbol ``state``, where :func:`build_stub` appends the data; the
    user page (``user_page``, the access snippets) is 4 KiB aligned; ``isr_table`` has a 16-byte entry per
    vector 0-31.  Being position independent, the code runs anywhere.
    """
    program = assemble_stub()
    sym = program.symbols
    need = ("state", "user_page", "user_page_end", "isr_table", "isr_end", *_SNIPPETS)
    if (any(name not in sym for name in need) or sym["state"] != len(program.code) or sym["state"] % 8
            or sym["user_page"] % _PAGE or sym["user_page_end"] != sym["user_page"] + _PAGE
            or sym["isr_end"] != sym["isr_table"] + 32 * 16
            or not all(sym["user_page"] <= sym[s] < sym["user_page_end"] for s in _SNIPPETS)):
        raise ToolchainFailed(f"the assembled stub is not what the harness expects: {len(program.code)} bytes, "
                              f"symbols {({k: sym.get(k) for k in need})}")
    return program


@functools.cache
def rom_program() -> Program:
    """The reset-vector ROM (boot.S), 64 KiB, assembled once per process."""
    program = _assemble("boot.S", _rom_defsyms(), 0)
    if len(program.code) != 0x10000:
        raise ToolchainFailed(f"the assembled ROM is {len(program.code)} bytes, not 64 KiB")
    return program


# ---------------------------------------------------------------------------
# Layout, slot and the stub's data
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _StubMap:
    """Offsets in the stub region (from STUB_BASE) of everything :func:`build_stub` appends to the code."""

    state: int
    tables: int
    idt: int
    gdt: int
    tss: int
    rsp0_top: int
    stack_top: int
    cases: int
    out: int
    end: int

    @classmethod
    def of(cls, code_size: int, n_cases: int, state_record: Record = _STATE, case_record: Record = _CASE,
           header_record: Record = _HEADER) -> _StubMap:
        """The offsets for a stub of ``code_size`` bytes and ``n_cases`` cases, with these records (the 32-bit
        stub's are its own; the result record and trailer are the same)."""
        state = code_size
        tables = round_up(state + state_record.size, _PAGE)
        idt = tables + _TABLE_FRAMES * _PAGE
        gdt = idt + _PAGE
        tss = gdt + 0x100
        rsp0_top = gdt + _PAGE + _STACK
        stack_top = rsp0_top + _STACK
        cases = stack_top
        out = cases + n_cases * case_record.size
        end = out + header_record.size + n_cases * _RESULT.size + _TRAILER_SIZE
        return cls(state, tables, idt, gdt, tss, rsp0_top, stack_top, cases, out, end)


def plan_layout(image_size: int, n_cases: int) -> QemuLayout:
    """Choose RAM size and the stub's region for an image and a number of cases: the image at RAM_BASE
    (16 MiB), RAM to its end rounded up to 2 MiB; the stub at STUB_BASE, its region rounded up to 2 MiB,
    which must end at or below RAM_BASE (ValueError: too many cases)."""
    if image_size < 0 or n_cases < 0:
        raise ValueError("image_size and n_cases must be non-negative")
    stub_size = round_up(_StubMap.of(len(stub_program().code), n_cases).end, _LARGE)
    if STUB_BASE + stub_size > _STUB_LIMIT:
        raise ValueError(f"{n_cases} cases need a stub of {stub_size:#x} bytes, more than the "
                         f"{_STUB_LIMIT - STUB_BASE:#x} between STUB_BASE and RAM_BASE: split the run")
    return QemuLayout(ram_size=RAM_BASE + round_up(max(image_size, 1), _LARGE), stub_base=STUB_BASE,
                      stub_size=stub_size)


def _root_shift(la57: bool) -> int:
    return 48 if la57 else 39


def _canonical(va: int, la57: bool) -> bool:
    top = (1 << 64) - (1 << (56 if la57 else 47))
    return va & top in (0, top)


def slot_base(slot: int, la57: bool) -> int:
    """The lowest VA of root-table slot ``slot`` (canonical: sign-extended from bit 47, or 56 with LA57)."""
    va = slot << _root_shift(la57)
    return va | ((1 << 64) - (1 << (_root_shift(la57) + 9))) if slot >= 256 else va


def choose_slot(image: bytes, root: int, vas: Sequence[int], la57: bool) -> int:
    """The root-table slot for the harness's entry: one that no canonical VA of ``vas`` indexes (a
    non-canonical VA never reaches the table) -- :data:`~pagetable.vectors.x86_64.layout.STUB_SLOT` (255,
    which vector sets leave empty), else the highest such slot whose entry in ``image`` (whose root table is
    at physical ``root``) is 0, else the highest such slot.  ValueError when every slot is used."""
    used = {(va >> _root_shift(la57)) & 511 for va in vas if _canonical(va, la57)}
    return pick_slot(struct.unpack_from("<512Q", image, root - RAM_BASE), used, (STUB_SLOT,), "root-table")


def pick_slot(entries: Sequence[int], used: set[int], preferred: Sequence[int], what: str) -> int:
    """The slot of ``entries`` (a root table's, one per slot) for a harness's own entry, among those not in
    ``used``: the first whose entry is 0, in the order ``preferred`` then from the highest slot down, else
    the first in that order.  ValueError when every slot is used."""
    order: list[int] = [*preferred, *range(len(entries) - 1, -1, -1)]
    free = [k for k in order if k not in used]
    if not free:
        raise ValueError(f"the probe VAs use all {len(entries)} {what} slots: the harness needs one for its own "
                         "mapping")
    return next((k for k in free if entries[k] == 0), free[0])


def _check_case(case: ProbeCase, la57: bool) -> None:
    if case.access not in _ACCESSES:
        raise ValueError(f"access must be one of {list(_ACCESSES)}, not {case.access!r}")
    if case.privilege not in _PRIVILEGE:
        raise ValueError(f"privilege must be one of {sorted(_PRIVILEGE)}, not {case.privilege!r}")
    if type(case.va) is not int or not 0 <= case.va < 2**64 or case.va % 8:
        raise ValueError(f"va {case.va!r} must be an 8-byte aligned u64")
    if not isinstance(case.regs, Registers):
        raise ValueError(f"regs must be Registers, not {type(case.regs).__name__}")
    if case.regs.la57 != la57:
        raise ValueError("every case of a run must have the same CR4.LA57 (it cannot change in IA-32e mode)")


def _snippet(case: ProbeCase, name: str, layout: QemuLayout, slot: int) -> int:
    """The VA of snippet label ``name`` for ``case``: on the user page for CPL 3, else at its alias."""
    sym = stub_program().symbols
    alias = slot_base(slot, case.regs.la57)
    if case.privilege == "user":
        return (alias + sym[name] - sym["user_page"]) & _NONE
    return (alias + layout.stub_base + sym[name]) & _NONE


def _done(case: ProbeCase, layout: QemuLayout, slot: int) -> int:
    """The RIP of the #UD that ends ``case``'s access when it succeeds (a read or a write)."""
    return _snippet(case, "write_done" if case.access == "write" else "read_done", layout, slot)


def _case_record(case: ProbeCase, layout: QemuLayout, slot: int) -> dict[str, int]:
    """One case's record: its VA and registers, the IRETQ frame's CS/SS and the snippet(s) it runs."""
    user = case.privilege == "user"
    cs, ss = (USER_CS | _RPL3, USER_DS | _RPL3) if user else (KERNEL_CS, KERNEL_DS)
    first = "snip_fetch" if case.access == "execute" else "snip_read"
    r = case.regs
    return {"VA": case.va, "CR0": r.cr0, "CR4": r.cr4, "EFER": r.efer, "RFLAGS": r.rflags, "PKRU": r.pkru,
            "CS": cs, "SS": ss, "RIP1": _snippet(case, first, layout, slot),
            "RIP2": _snippet(case, "snip_write", layout, slot) if case.access == "write" else 0,
            "NEED7_EBX": (CPUID7_EBX.mask("SMEP") if CR4.get(r.cr4, "SMEP") else 0)
            | (CPUID7_EBX.mask("SMAP") if CR4.get(r.cr4, "SMAP") else 0),
            "NEED7_ECX": CPUID7_ECX.mask("PKU") if CR4.get(r.cr4, "PKE") else 0}


@dataclass(frozen=True)
class StubImage:
    """What :func:`build_stub` makes: the bytes of the stub's region, loaded at STUB_BASE, and the root-table
    entry the image's root needs in the run's slot."""

    blob: bytes
    root_entry: int


def build_stub(layout: QemuLayout, cr3: int, cases: Sequence[ProbeCase], slot: int, la57: bool) -> StubImage:
    """The stub region's bytes for a run (code, state block, the harness's page tables, IDT, GDT, TSS,
    stacks, cases and output area) and the root-table entry for ``slot``, which the image's root needs."""
    program = stub_program()
    code, sym = program.code, program.symbols
    m = _StubMap.of(len(code), len(cases))
    base = layout.stub_base
    alias = slot_base(slot, la57)

    def va(offset: int) -> int:
        return (alias + base + offset) & _NONE

    user_va = alias
    for case in cases:
        _check_case(case, la57)
    records = [_case_record(case, layout, slot) for case in cases]

    mem = PhysMem([(base, layout.stub_size)])
    mem.write(base, code)
    # The harness's tables (SDM 4.5): the stub's region at its alias with supervisor 2 MiB pages, the user
    # page at the slot's base; the boot root also maps the region where it is (slot 0, identity), which the
    # switch to IA-32e mode needs.  Its slot's entry is the one the image's root gets.
    pt = PageTable(PAGING5 if la57 else PAGING4, mem, FrameAllocator(mem, base + m.tables, _TABLE_FRAMES * _PAGE))
    supervisor = MappingFlags.READ | MappingFlags.WRITE | MappingFlags.EXECUTE
    for start in sorted({alias, 0}):
        for offset in range(0, layout.stub_size, _LARGE):
            pt.map((start + base + offset) & _NONE, base + offset, _LARGE, supervisor)
    pt.map(user_va, base + sym["user_page"], _PAGE, MappingFlags.READ | MappingFlags.EXECUTE | MappingFlags.USER)
    root_entry = mem.read_u64(pt.root_paddr + 8 * slot)
    # IDT: vectors 0-31 (#BP with DPL 3, for INT3 at CPL 3).
    for vector in range(32):
        low, high = gate_descriptor(va(sym["isr_table"] + 16 * vector), KERNEL_CS, 3 if vector == BP_VECTOR else 0)
        mem.write(base + m.idt + 16 * vector, struct.pack("<QQ", low, high))
    # GDT and TSS.
    for selector, descriptor in _GDT.items():
        mem.write_u64(base + m.gdt + selector, descriptor)
    tss_low, tss_high = system_descriptor(va(m.tss), _TSS_SIZE - 1, 0x9)
    mem.write(base + m.gdt + TSS_SEL, struct.pack("<QQ", tss_low, tss_high))
    gdt_limit = TSS_SEL + 16 - 1
    mem.write(base + m.tss + _TSS_RSP0, struct.pack("<Q", va(m.rsp0_top)))
    mem.write(base + m.tss + _TSS_IOMAP, struct.pack("<H", _TSS_SIZE))
    # The state block, the cases, the output area.
    gdtr, gdtr_hi = _pseudo_descriptor(va(m.gdt), gdt_limit)
    idtr, idtr_hi = _pseudo_descriptor(va(m.idt), 256 * 16 - 1)
    gdtr_pa, _ = _pseudo_descriptor(base + m.gdt, gdt_limit)
    n = len(cases)
    mem.write(base + m.state, _STATE.pack({
        "VECTOR": _NONE, "ERROR": 0, "CR2": 0, "RIP": 0, "VALUE": 0, "RESUME": 0, "RSP": 0,
        "CASE": va(m.cases), "CASE_END": va(m.out), "RESULT": va(m.out + _HEADER.size), "OUT_START": va(m.out),
        "OUT_END": va(m.end), "OUT_PA": base + m.out, "CR3": cr3, "ALIAS": alias,
        "BOOT_CR3": pt.root_paddr, "BOOT_CR4": _CR4_FIXED | (CR4.mask("LA57") if la57 else 0),
        "BOOT_EFER": EFER.mask("LME"), "STACK_PA": base + m.stack_top, "STACK": va(m.stack_top),
        "GDTR_PA": gdtr_pa, "GDTR": gdtr, "GDTR_HI": gdtr_hi, "IDTR": idtr, "IDTR_HI": idtr_hi,
    }))
    mem.write(base + m.cases, b"".join(_CASE.pack(record) for record in records))
    mem.write(base + m.out, _HEADER.pack({"MAGIC": _HEADER_MAGIC, "STATUS": _STATUS_OK, "COUNT": n, "CR3": 0,
                                          "CPUID7_EBX": 0, "CPUID7_ECX": 0, "EXT1_EDX": 0, "EXT8_EAX": 0}))
    mem.write_u64(base + m.end - _TRAILER_SIZE, _TRAILER_MAGIC)
    return StubImage(mem.read(base, m.end), root_entry)


# ---------------------------------------------------------------------------
# Running QEMU
# ---------------------------------------------------------------------------


def _explain_status(status: int) -> str:
    if status == 0:
        return "the guest reset: a triple fault, the stub could not run"
    return f"the stub ends with status {_EXIT_STATUS}"


def read_header(raw: bytes, header: Record, magic: int, count: int, stderr: bytes, stub: str = "stub"
                ) -> dict[str, int]:
    """The output header (`header`'s fields) of `stub` (the name messages give it), checked: all there, with
    the stub's `magic` and one record to come per case (`count`)."""
    if len(raw) < header.size:
        raise QemuFailed(f"{stub} output truncated: {len(raw)} bytes; QEMU stderr: {tail(stderr)!r}")
    fields = header.unpack(raw, 0)
    if fields["MAGIC"] != magic or fields["COUNT"] != count:
        raise QemuFailed(f"{stub} output has a bad header")
    return fields


def refuse_missing(missing: Iterable[str], cpu: str) -> None:
    """QemuFailed naming the CPU features cases set that `-cpu cpu` lacks (`missing`), if any."""
    names = sorted(set(missing))
    if names:
        raise QemuFailed(f"-cpu {cpu} does not implement {', '.join(names)}, which cases set")


def _parse_output(raw: bytes, cr3: int, cases: Sequence[ProbeCase], stderr: bytes, cpu: str, layout: QemuLayout,
                  slot: int) -> tuple[list[ProbeResult], CpuFeatures]:
    header = read_header(raw, _HEADER, _HEADER_MAGIC, len(cases), stderr)
    features = CpuFeatures.from_cpuid(header["CPUID7_EBX"], header["CPUID7_ECX"], header["EXT1_EDX"],
                                      header["EXT8_EAX"])
    if header["STATUS"] == _STATUS_NO_LA57:
        raise QemuFailed(f"-cpu {cpu} does not implement 5-level paging (CPUID.(EAX=07H,ECX=0):ECX.LA57 = 0)")
    results = read_results(raw, _HEADER.size, cases, [_done(case, layout, slot) for case in cases], stderr)
    if header["CR3"] != cr3:
        raise QemuFailed(f"the processor did not keep CR3 {cr3:#x} (read back {header['CR3']:#x})")
    refuse_missing((name for case in cases for name in features.missing(case.regs)), cpu)
    return results, features


class Access(Protocol):
    """What :func:`read_results` needs of a case: its VA and access."""

    @property
    def va(self) -> int: ...

    @property
    def access(self) -> str: ...


def read_results(raw: bytes, header_size: int, cases: Sequence[Access], done: Sequence[int],
                 stderr: bytes) -> list[ProbeResult]:
    """The stub's result records after its header of ``header_size`` bytes (their number and the trailer
    checked), one :class:`ProbeResult` per case: a fetch that reached the tag's INT3 at its VA (#BP at VA
    + 1) and a load or store that reached its UD2 (#UD at ``done[i]``, the case's RIP of it) succeeded;
    anything else is the exception the stub recorded."""
    expected = header_size + len(cases) * _RESULT.size + _TRAILER_SIZE
    if len(raw) != expected:
        raise QemuFailed(f"stub output truncated or malformed: got {len(raw)} bytes, expected {expected}; "
                         f"QEMU stderr: {tail(stderr)!r}")
    (trailer,) = struct.unpack_from("<Q", raw, expected - _TRAILER_SIZE)
    if trailer != _TRAILER_MAGIC:
        raise QemuFailed("stub output has a bad trailer")
    results = []
    for i, case in enumerate(cases):
        r = _RESULT.unpack(raw, header_size + i * _RESULT.size)
        vector, value, rip = r["VECTOR"], r["VALUE"], r["RIP"]
        if case.access == "execute":
            if vector == BP_VECTOR and rip == case.va + 1:        # INT3 at the VA: the fetch succeeded
                results.append(ProbeResult(None, 0, r["CR2"], case.va))
                continue
            value = rip
        elif vector == UD_VECTOR and rip == done[i]:               # the UD2 after the access
            results.append(ProbeResult(None, 0, r["CR2"], value))
            continue
        results.append(ProbeResult(vector, r["ERROR"], r["CR2"], value, rip))
    return results


def qemu_command(qemu: str, layout: QemuLayout, accel: str, cpu: str, workdir: str, high_size: int = 0) -> list[str]:
    """Return the QEMU command line for a run whose files are in ``workdir``; with ``high_size`` (a multiple
    of 1 MiB), that much RAM more at :data:`HIGH_BASE` (``max-ram-below-4g`` keeps the rest below), loaded
    with the run's file ``high.bin``."""
    path = functools.partial(os.path.join, workdir)
    high = ["-device", f"loader,file={path(_HIGH_FILE)},addr={HIGH_BASE:#x},force-raw=on"] if high_size else []
    machine = f"pc,max-ram-below-4g={layout.ram_size // _MIB}M" if high_size else "pc"
    return [
        qemu, "-M", machine, "-accel", accel, "-cpu", cpu, "-m", f"{(layout.ram_size + high_size) // _MIB}M",
        "-smp", "1", "-nodefaults", "-display", "none", "-vga", "none", "-monitor", "none", "-parallel", "none",
        "-no-reboot",
        "-bios", path(_ROM_FILE),
        "-chardev", f"file,id=c0,path={path(_SERIAL_FILE)}", "-serial", "chardev:c0",
        "-device", f"isa-debug-exit,iobase={_EXIT_PORT:#x},iosize=0x4",
        "-device", f"loader,file={path(_IMAGE_FILE)},addr={RAM_BASE:#x},force-raw=on",
        "-device", f"loader,file={path(_STUB_FILE)},addr={layout.stub_base:#x},force-raw=on",
        *high,
    ]


def run_probes(
    image: bytes,
    cr3: int,
    cases: Sequence[ProbeCase],
    *,
    accel: str = "tcg",
    cpu: str | None = None,
    timeout: float = 60.0,
    qemu: str | None = None,
) -> ProbeRun:
    """Run every case through QEMU's MMU (``accel="tcg"``, on :data:`TCG_CPU`) or the host's (``"kvm"``,
    on :data:`KVM_CPU`) and return the results, one per case, in order.

    ``image`` is placed at :data:`RAM_BASE`; ``cr3`` (a CR3 value: the root table's address, which must be
    in the image, and PWT/PCD) is every case's.  Every case must have the same CR4.LA57.  Write probes store
    back the value they loaded, so data is unchanged, but the processor sets A/D bits in the image's entries
    as a side effect; later cases see those updates.

    Raises :class:`QemuUnavailable` when no QEMU is found, :class:`ToolchainUnavailable` when binutils are
    missing, :class:`QemuFailed` when QEMU exits badly, times out, its output is short, or the CPU lacks a
    feature the cases use (5-level paging, SMEP, SMAP, PKU), and ValueError for a case, CR3 or image the
    stub cannot run.
    """
    exe = runner.require_qemu(QEMU_BINARY, QEMU_PACKAGE, qemu)
    cpu = cpu if cpu is not None else KVM_CPU if accel == "kvm" else TCG_CPU
    if type(cr3) is not int or not 0 <= cr3 < 2**64 or cr3 & ~CR3.mask("ADDR", "PWT", "PCD"):
        raise ValueError(f"CR3 {cr3!r} must hold only the root's address, PWT and PCD (CR4.PCIDE=0)")
    root = CR3.get(cr3, "ADDR") << 12
    if not RAM_BASE <= root <= RAM_BASE + len(image) - _PAGE:
        raise ValueError(f"CR3's root table {root:#x} is not inside the image at {RAM_BASE:#x}")
    la57 = cases[0].regs.la57 if cases else False
    layout = plan_layout(len(image), len(cases))
    slot = choose_slot(image, root, [c.va for c in cases], la57)
    stub = build_stub(layout, cr3, cases, slot, la57)
    loaded = bytearray(image)
    struct.pack_into("<Q", loaded, root - RAM_BASE + 8 * slot, stub.root_entry)
    run = runner.run_qemu(lambda workdir: qemu_command(exe, layout, accel, cpu, workdir),
                          {_IMAGE_FILE: bytes(loaded), _STUB_FILE: stub.blob, _ROM_FILE: rom_program().code},
                          _SERIAL_FILE, timeout=timeout, ok_status=_EXIT_STATUS, explain=_explain_status)
    results, features = _parse_output(run.serial, cr3, cases, run.stderr, cpu, layout, slot)
    return ProbeRun(results, features, slot, bytes(loaded))


def cpu_features(*, accel: str = "tcg", cpu: str | None = None, timeout: float = 60.0,
                 qemu: str | None = None) -> CpuFeatures:
    """What CPUID says on this ``accel``/``cpu`` (a run without cases on an empty 4-level table), for
    choosing the cases and the walker's MAXPHYADDR and 1-GByte page support before a run."""
    return run_probes(bytes(_PAGE), RAM_BASE, [], accel=accel, cpu=cpu, timeout=timeout, qemu=qemu).features
