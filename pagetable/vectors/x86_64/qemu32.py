"""Ask QEMU how x86 linear addresses translate under 32-bit paging and PAE paging.

The protected-mode face of :mod:`pagetable.vectors.x86_64.qemu`: the same reset ROM (``boot.S``, which
takes the processor to 32-bit protected mode), the same runner, result records, output checks and
classification (:func:`~pagetable.vectors.x86_64.qemu.read_results`), descriptors, command line and image
convention -- the caller's image at :data:`~pagetable.vectors.x86_64.layout.RAM_BASE` (16 MiB), every data
u64 holding its tag ``(PA << 8) | 0xCC`` -- with a stub of its own, ``stub32.S``, which never leaves
protected mode (``x86_64-linux-gnu-as --32``, ``ld -m elf_i386``).  Per :class:`ProbeCase32` it performs
one access at CPL 0 or CPL 3 with the case's CR0, CR4, IA32_EFER and EFLAGS: a load is one 8-byte MMX
``MOVQ`` (so a load reads the tag, which names PAs above 4 GiB too), a write stores back what that load
read, a fetch jumps to the VA; results are as in the 64-bit harness (:class:`ProbeResult`, with EIP for
RIP).  The run's paging mode is ``paging="32"`` (CR4.PAE=0) or ``"pae"`` (CR4.PAE=1); every case's
CR4.PAE must say the same.

Intel SDM Vol. 3A (Order No. 253668), chapter 4 "Paging":

* 4.3 "32-Bit Paging": CR3 (Table 4-3: the page directory's address, PWT, PCD), 4 MiB pages with CR4.PSE
  and PSE-36 (Table 4-4: PA bits 39:32 in PDE bits 20:13, M = min(MAXPHYADDR, 40)), no XD.
* 4.4 "PAE Paging": CR3 (Table 4-7: the 32-byte aligned PDPT, bits 31:5); 4.4.1: the four PDPTEs are
  loaded at MOV to CR3 (and at a MOV to CR0 or CR4 that changes paging bits), and a present one with a
  reserved bit makes that MOV #GP(0): the stub catches it, the case's result is vector 13 at EIP
  :attr:`ProbeRun32.load_cr3` and no access is made.  XD with IA32_EFER.NXE, 2 MiB pages.
* 4.6 (CR0.WP, CR4.SMEP and SMAP with EFLAGS.AC), 4.7 (the #PF error code), 4.10.4.1 (each case writes
  CR4 first with PGE clear, then CR3: no translation survives into the next case).
* Chapter 6: 32-bit interrupt gates (Figure 6-2), the frames with and without a privilege change (6.12.1,
  Figure 6-4); 8.2.1: the 32-bit TSS (Figure 8-2: SS0:ESP0 for traps from CPL 3).

The stub's own mapping: the harness writes **one root entry** of the image's tables, in a slot no probe VA
uses (:func:`choose_slot_32`: the highest unused slot whose entry is 0, else the highest unused one): a PDE
(one of 1024, 4 MiB each) under 32-bit paging, a PDPTE (one of 4, 1 GiB each) under PAE.  It points at
tables of its own in the stub's memory below 16 MiB that map the stub (2 MiB at physical
:data:`~pagetable.vectors.x86_64.qemu.STUB_BASE`) at VA = slot base + PA with supervisor 4 KiB pages, and
the page of access snippets read-only as a user page at the slot's base.  The entries are built with the
codecs of :mod:`pagetable.arch.x86_64.paging32` and :mod:`pagetable.arch.x86_64.pae`; none sets PS, XD,
G or a reserved bit, so every register value a case may choose keeps the stub running (a PDE that
references a page table means the same with CR4.PSE=0 and 1).

``high``, when given, is loaded at :data:`~pagetable.vectors.x86_64.qemu.HIGH_BASE` (4 GiB) as RAM there
(``-M pc,max-ram-below-4g``: RAM below 4 GiB ends where the image does), for 4 MiB pages above 4 GiB
(PSE-36) and PAE pages there.

CPU (:data:`TCG_CPU`): ``-cpu max,phys-bits=40`` on ``qemu-system-x86_64``, the 64-bit harness's: PSE,
PSE-36, PAE, PGE, NX, SMEP, SMAP and MAXPHYADDR 40, which is PSE-36's widest (M = min(MAXPHYADDR, 40) =
40: all eight of PDE bits 20:13 are address bits) and PAE's reserved-bit boundary.  QEMU 7.2's
``qemu32`` model has neither PSE-36, NX nor SMEP/SMAP and no CPUID leaf 0x80000008 (MAXPHYADDR 36);
``qemu-system-i386`` walks with the same code (target/i386/tcg/sysemu/excp_helper.c, ``mmu_translate``)
but its CPUs have no long mode, so their MAXPHYADDR is 36 and not configurable ("phys-bits is not
user-configurable in 32 bit"): PSE-36 would reach PA bit 35 only.  ``accel="kvm"`` runs the same stub under KVM on the
64-bit harness's KVM CPU; this project's machines' KVM (PVM, without hardware virtualization) raises #GP at
the MOV to CR0 that enables paging outside IA-32e mode, a triple fault, so TCG is the judge here.  Where
QEMU 7.2 departs from the SDM here: docs/qemu.md, "x86 32-bit and PAE paging".
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from ...arch.x86_64 import CR0, CR3_32, CR3_PAE, CR4, EFER, PAE, PDPT, RFLAGS, SPEC32
from ...arch.x86_64.cpuid import CPUID1_EDX, CPUID7_EBX, CPUID_EXT1_EDX, CPUID_EXT8_EAX
from ...flags import MappingFlags
from ...layout import Layout
from ...physmem import PhysMem
from .. import qemu as runner
from ..qemu import Program, QemuFailed, QemuUnavailable, Record, ToolchainFailed, ToolchainUnavailable, round_up
from . import qemu as x86
from .layout import RAM_BASE
from .qemu import (
    BP_VECTOR,
    HIGH_BASE,
    KERNEL_CS,
    KERNEL_DS,
    QEMU_BINARY,
    QEMU_PACKAGE,
    STUB_BASE,
    TCG_CPU,
    TOOLCHAIN_PACKAGE,
    TOOLCHAIN_PREFIX,
    TSS_SEL,
    USER_CS,
    USER_DS,
    ProbeResult,
    QemuLayout,
    StubImage,
    find_qemu,
    missing_toolchain,
)

__all__ = [
    "HIGH_BASE",
    "PAGINGS",
    "QEMU_BINARY",
    "QEMU_PACKAGE",
    "RAM_BASE",
    "STUB_BASE",
    "TCG_CPU",
    "TOOLCHAIN_PACKAGE",
    "TOOLCHAIN_PREFIX",
    "CpuFeatures32",
    "ProbeCase32",
    "ProbeResult",
    "ProbeRun32",
    "QemuFailed",
    "QemuUnavailable",
    "Registers32",
    "ToolchainFailed",
    "ToolchainUnavailable",
    "assemble_stub32",
    "build_stub_32",
    "choose_slot_32",
    "cpu_features_32",
    "find_qemu",
    "missing_toolchain",
    "plan_layout_32",
    "run_probes_32",
    "slot_base_32",
    "stub32_program",
]

PAGINGS: Final = ("32", "pae")
"""The paging modes: 32-bit paging (CR4.PAE=0) and PAE paging (CR4.PAE=1), both with CR0.PG=1 outside IA-32e
mode (SDM Vol. 3A, Table 4-1)."""

_PAGE: Final = 4096
_MIB: Final = 1 << 20
_STUB_SIZE: Final = 2 * _MIB          # the stub's region: [STUB_BASE, 4 MiB), one 4 MiB PDE or 2 MiB PDE
_U32: Final = 0xFFFF_FFFF
_SHIFT: Final = {"32": 22, "pae": 30}  # the bits of VA a root entry maps: a PDE's 4 MiB, a PDPTE's 1 GiB
_SLOTS: Final = {"32": 1024, "pae": 4}
_STATUS_OK, _STATUS_NO_PAE = 0, 1
_GP_VECTOR: Final = 13

# The registers a case may choose; the rest fixed (protected mode with paging, no IA-32e mode, interrupts
# off, CR0.EM=TS=0 for MMX).
_CR4_FREE: Final = CR4.mask("PSE", "PAE", "SMEP", "SMAP", "PGE")
_EFER_FREE: Final = EFER.mask("NXE")


@dataclass(frozen=True)
class Registers32:
    """The register values a probe runs with: CR0, CR4, IA32_EFER and EFLAGS, as the processor holds them.
    A case may choose CR0.WP (and MP, ET, NE, which paging ignores), CR4.PSE/PAE/SMEP/SMAP/PGE, IA32_EFER.NXE
    and EFLAGS.AC; the other bits are fixed: CR0.PE|PG, EFLAGS bit 1, and none else (IA32_EFER.LME=0: not
    IA-32e mode).  CR4.PAE chooses the paging mode (:attr:`paging`).  :meth:`of` builds them from the
    choices (CR0 = PE|MP|ET|NE|PG plus WP)."""

    cr0: int = x86._CR0_DEFAULT | CR0.mask("WP")
    cr4: int = CR4.mask("PSE")
    efer: int = 0
    rflags: int = x86._RFLAGS_FIXED

    def __post_init__(self) -> None:
        x86.check_registers((("CR0", CR0, self.cr0, x86._CR0_FIXED, x86._CR0_FREE),
                             ("CR4", CR4, self.cr4, 0, _CR4_FREE), ("IA32_EFER", EFER, self.efer, 0, _EFER_FREE),
                             ("EFLAGS", RFLAGS, self.rflags, x86._RFLAGS_FIXED, x86._RFLAGS_FREE)))

    @classmethod
    def of(cls, paging: str = "32", *, wp: bool = True, pse: bool = True, nxe: bool = False, smep: bool = False,
           smap: bool = False, ac: bool = False, pge: bool = False) -> Registers32:
        """The registers of ``paging`` ("32" or "pae") with these choices (CR0.WP, CR4.PSE, IA32_EFER.NXE,
        CR4.SMEP/SMAP/PGE, EFLAGS.AC)."""
        if paging not in PAGINGS:
            raise ValueError(f"paging must be one of {list(PAGINGS)}, not {paging!r}")
        chosen = {"PSE": pse, "PAE": paging == "pae", "SMEP": smep, "SMAP": smap, "PGE": pge}
        cr4 = sum(CR4.mask(name) for name, on in chosen.items() if on)
        return cls(cr0=x86._CR0_DEFAULT | (CR0.mask("WP") if wp else 0), cr4=cr4, efer=EFER.mask("NXE") if nxe else 0,
                   rflags=x86._RFLAGS_FIXED | (RFLAGS.mask("AC") if ac else 0))

    @property
    def paging(self) -> str:
        """"pae" with CR4.PAE=1, else "32"."""
        return "pae" if CR4.get(self.cr4, "PAE") else "32"


@dataclass(frozen=True)
class ProbeCase32:
    """One access to probe: ``va`` an 8-byte aligned 32-bit linear address, ``access`` ``"read"``,
    ``"write"`` or ``"execute"``, ``privilege`` ``"supervisor"`` (CPL 0) or ``"user"`` (CPL 3), with the
    registers ``regs``."""

    va: int
    access: str
    privilege: str
    regs: Registers32 = field(default_factory=Registers32)


@dataclass(frozen=True)
class CpuFeatures32:
    """What CPUID told the stub (SDM Vol. 2A): MAXPHYADDR (CPUID.80000008H:EAX[7:0]; without that leaf 36
    with PAE, else 32: SDM Vol. 3A 4.1.4), and PSE, PAE, PGE, PSE-36, MMX, NX, SMEP, SMAP."""

    maxphyaddr: int
    pse: bool
    pae: bool
    pge: bool
    pse36: bool
    mmx: bool
    nx: bool
    smep: bool
    smap: bool

    @classmethod
    def from_cpuid(cls, leaf1_edx: int, leaf7_ebx: int, ext1_edx: int, ext8_eax: int) -> CpuFeatures32:
        """The features from the four CPUID words (0 for a leaf beyond the CPU's highest)."""
        def has(name: str) -> bool:
            return bool(CPUID1_EDX.get(leaf1_edx, name))
        return cls(maxphyaddr=CPUID_EXT8_EAX.get(ext8_eax, "PHYS") or (36 if has("PAE") else 32),
                   pse=has("PSE"), pae=has("PAE"), pge=has("PGE"), pse36=has("PSE36"), mmx=has("MMX"),
                   nx=bool(CPUID_EXT1_EDX.get(ext1_edx, "NX")), smep=bool(CPUID7_EBX.get(leaf7_ebx, "SMEP")),
                   smap=bool(CPUID7_EBX.get(leaf7_ebx, "SMAP")))

    def missing(self, regs: Registers32) -> list[str]:
        """The CR4 and IA32_EFER bits ``regs`` sets that this CPU does not implement."""
        need = [("CR4", CR4, regs.cr4, name, have) for name, have in
                (("PSE", self.pse), ("PAE", self.pae), ("PGE", self.pge), ("SMEP", self.smep), ("SMAP", self.smap))]
        need.append(("IA32_EFER", EFER, regs.efer, "NXE", self.nx))
        return [f"{reg}.{name}" for reg, layout, value, name, have in need if layout.get(value, name) and not have]


@dataclass(frozen=True)
class ProbeRun32:
    """A run's results, one per case in order, with the CPU's features, the root slot the harness used, the
    EIP of the stub's MOV to CR3 (a result with vector 13 there is a #GP at the CR3 load: no access was
    made), and the image as QEMU got it (the given one with that slot's entry written)."""

    results: list[ProbeResult]
    features: CpuFeatures32
    slot: int
    load_cr3: int
    image: bytes


# ---------------------------------------------------------------------------
# The data shared with the stub
# ---------------------------------------------------------------------------

_STATE: Final = Record("ST", (
    "VECTOR", "ERROR", "CR2", "RIP", "VALUE",            # the trap record the handler writes
    "RESUME", "RSP",                                      # where and on which stack the handler resumes
    "CASE", "CASE_END", "RESULT", "OUT_START", "OUT_END",  # VAs (the alias)
    "OUT_PA", "CR3", "ALIAS",                             # the header's PA, the cases' CR3, VA - PA
    "BOOT_CR3", "BOOT_CR4", "STACK",
    "GDTR_PA", "GDTR", "IDTR",                            # pseudo-descriptors: limit (16) then base (32)
))
_CASE: Final = Record("CASE", ("VA", "CR0", "CR4", "EFER", "RFLAGS", "CS", "SS", "RIP1", "RIP2",
                               "NEED1_EDX", "NEED7_EBX", "NEEDX1_EDX"))   # the CPUID bits its registers need
_HEADER: Final = Record("HDR", ("MAGIC", "STATUS", "COUNT", "CR3", "CPUID1_EDX", "CPUID7_EBX", "EXT1_EDX",
                                "EXT8_EAX"))
_HEADER_MAGIC: Final = 0x3233_5842_4F52_5058  # "XPROBX32"

_CODE, _DATA = 0xB, 0x3
_GDT: Final = {
    KERNEL_CS: x86.segment_descriptor(_CODE, 0, big=True),
    KERNEL_DS: x86.segment_descriptor(_DATA, 0, big=True),
    x86.BOOT_CS: x86.segment_descriptor(_CODE, 0, big=True),
    USER_DS: x86.segment_descriptor(_DATA, 3, big=True),
    USER_CS: x86.segment_descriptor(_CODE, 3, big=True),
}
_TSS_SIZE: Final = 104                   # the 32-bit TSS (SDM Figure 8-2)
_TSS_ESP0, _TSS_SS0, _TSS_IOMAP = 4, 8, 102
_GATE: Final = 8                         # a 32-bit interrupt gate's size (Figure 6-2)


def _stub_defsyms() -> dict[str, int]:
    """Every number stub32.S shares with this module, by the name it uses."""
    return runner.defsyms(
        _STATE, _CASE, x86._RESULT, _HEADER,
        KERNEL_CS=KERNEL_CS, KERNEL_DS=KERNEL_DS, USER_DS=USER_DS, TSS_SEL=TSS_SEL,
        NO_TRAP=_U32, RFLAGS_CLEAN=x86._RFLAGS_FIXED, STATUS_NO_PAE=_STATUS_NO_PAE,
        EXIT_PORT=x86._EXIT_PORT, EXIT_VALUE=x86._EXIT_VALUE, MSR_EFER=x86._MSR_EFER,
        CR0_PG=CR0.mask("PG"), CR4_PAE=CR4.mask("PAE"), CR4_PGE=CR4.mask("PGE"), CPUID1_EDX_PAE=CPUID1_EDX.mask("PAE"),
        EXT1_EDX_EFER=CPUID_EXT1_EDX.mask("NX", "LM"),       # IA32_EFER exists (SDM Vol. 4, Table 2-2)
    )


def assemble_stub32(address: int = 0) -> Program:
    """Assemble stub32.S linked at ``address`` (uncached: :func:`stub32_program` is what the harness loads)."""
    return runner.assemble(x86.stub_source("stub32.S"), "stub32.S", prefix=TOOLCHAIN_PREFIX, package=TOOLCHAIN_PACKAGE,
                           as_flags=("--32",), ld_flags=("-m", "elf_i386"), defsyms=_stub_defsyms(), address=address)


@functools.cache
def stub32_program() -> Program:
    """The 32-bit probe stub, linked at 0 and assembled once per process: code up to the 8-byte aligned
    ``state``, the 4 KiB user page of snippets, a 16-byte ``isr_table`` entry per vector 0-31."""
    program = assemble_stub32()
    sym = program.symbols
    need = ("state", "user_page", "user_page_end", "isr_table", "isr_end", "load_cr3", *x86._SNIPPETS)
    if (any(name not in sym for name in need) or sym["state"] != len(program.code) or sym["state"] % 8
            or sym["user_page"] % _PAGE or sym["user_page_end"] != sym["user_page"] + _PAGE
            or sym["isr_end"] != sym["isr_table"] + 32 * 16
            or not all(sym["user_page"] <= sym[s] < sym["user_page_end"] for s in x86._SNIPPETS)):
        raise ToolchainFailed(f"the assembled 32-bit stub is not what the harness expects: {len(program.code)} "
                              f"bytes, symbols {({k: sym.get(k) for k in need})}")
    return program


# ---------------------------------------------------------------------------
# Layout, slot and the stub's data
# ---------------------------------------------------------------------------


def _stub_map(n_cases: int) -> x86._StubMap:
    return x86._StubMap.of(len(stub32_program().code), n_cases, _STATE, _CASE, _HEADER)


def plan_layout_32(image_size: int, n_cases: int) -> QemuLayout:
    """RAM and the stub's region: the image at RAM_BASE (16 MiB), RAM below 4 GiB to its end rounded up to
    2 MiB; the stub's 2 MiB at STUB_BASE (ValueError: too many cases for them)."""
    if image_size < 0 or n_cases < 0:
        raise ValueError("image_size and n_cases must be non-negative")
    end = _stub_map(n_cases).end
    if end > _STUB_SIZE:
        raise ValueError(f"{n_cases} cases need a stub of {end:#x} bytes, more than its {_STUB_SIZE:#x} (one "
                         "mapping of the harness's): split the run")
    return QemuLayout(ram_size=RAM_BASE + round_up(max(image_size, 1), 2 * _MIB), stub_base=STUB_BASE,
                      stub_size=_STUB_SIZE)


def slot_base_32(slot: int, paging: str) -> int:
    """The lowest VA of root slot ``slot``: a PDE's 4 MiB (32-bit paging), a PDPTE's 1 GiB (PAE)."""
    return slot << _SHIFT[paging]


def _root_entries(image: bytes, root: int, paging: str) -> tuple[int, ...]:
    """The root table's entries in ``image``: 1024 u32 PDEs, or the 4 u64 PDPTEs."""
    return struct.unpack_from("<1024I" if paging == "32" else "<4Q", image, root - RAM_BASE)


def choose_slot_32(image: bytes, root: int, vas: Sequence[int], paging: str) -> int:
    """The root slot for the harness's entry: one that no VA of ``vas`` indexes, the highest whose entry in
    ``image`` (whose root table -- the page directory, or the PDPT -- is at physical ``root``) is 0, else
    the highest.  ValueError when every slot is used."""
    used = {va >> _SHIFT[paging] for va in vas}
    return x86.pick_slot(_root_entries(image, root, paging), used, (), "PDE" if paging == "32" else "PDPTE")


def _check_case(case: ProbeCase32, paging: str) -> None:
    if case.access not in x86._ACCESSES:
        raise ValueError(f"access must be one of {list(x86._ACCESSES)}, not {case.access!r}")
    if case.privilege not in x86._PRIVILEGE:
        raise ValueError(f"privilege must be one of {sorted(x86._PRIVILEGE)}, not {case.privilege!r}")
    if type(case.va) is not int or not 0 <= case.va <= _U32 or case.va % 8:
        raise ValueError(f"va {case.va!r} must be an 8-byte aligned u32")
    if not isinstance(case.regs, Registers32):
        raise ValueError(f"regs must be Registers32, not {type(case.regs).__name__}")
    if case.regs.paging != paging:
        raise ValueError(f"a case's CR4.PAE selects {case.regs.paging!r} paging in a run of {paging!r} paging")


def _va(slot: int, paging: str, pa: int) -> int:
    """The VA of stub byte ``pa`` at the alias."""
    return (slot_base_32(slot, paging) + pa) & _U32


def _snippet(case: ProbeCase32, name: str, slot: int) -> int:
    """The VA of snippet label ``name`` for ``case``: on the user page for CPL 3, else at its alias."""
    sym = stub32_program().symbols
    if case.privilege == "user":
        return slot_base_32(slot, case.regs.paging) + sym[name] - sym["user_page"]
    return _va(slot, case.regs.paging, STUB_BASE + sym[name])


def _case_record(case: ProbeCase32, slot: int) -> dict[str, int]:
    """One case's record: its VA and registers, the IRET frame's CS/SS, the snippet(s) it runs and the CPUID
    bits its registers need."""
    user = case.privilege == "user"
    cs, ss = (USER_CS | 3, USER_DS | 3) if user else (KERNEL_CS, KERNEL_DS)
    r = case.regs

    def need(cpuid: Layout, *bits: str) -> int:
        """The CPUID bits of the CR4 bits ``bits`` the case sets (the same names)."""
        return sum(cpuid.mask(bit) for bit in bits if CR4.get(r.cr4, bit))
    return {"VA": case.va, "CR0": r.cr0, "CR4": r.cr4, "EFER": r.efer, "RFLAGS": r.rflags, "CS": cs, "SS": ss,
            "RIP1": _snippet(case, "snip_fetch" if case.access == "execute" else "snip_read", slot),
            "RIP2": _snippet(case, "snip_write", slot) if case.access == "write" else 0,
            "NEED1_EDX": need(CPUID1_EDX, "PSE", "PAE", "PGE"), "NEED7_EBX": need(CPUID7_EBX, "SMEP", "SMAP"),
            "NEEDX1_EDX": CPUID_EXT1_EDX.mask("NX") if EFER.get(r.efer, "NXE") else 0}


def _tables(mem: PhysMem, tables: int, slot: int, paging: str) -> tuple[int, int]:
    """Write the harness's tables at physical ``tables`` (4 KiB aligned): the stub's 2 MiB at slot base + PA
    with supervisor 4 KiB pages, its user page at the slot's base; the boot root also maps them where they
    are (slot 0, identity), sharing the slot's tables.  Returns the boot root's address and the root entry
    for ``slot``."""
    sym = stub32_program().symbols
    supervisor = MappingFlags.READ | MappingFlags.WRITE | MappingFlags.EXECUTE
    user = MappingFlags.READ | MappingFlags.EXECUTE | MappingFlags.USER
    pages = range(STUB_BASE, STUB_BASE + _STUB_SIZE, _PAGE)
    if paging == "32":            # SDM Tables 4-5 and 4-6: the page directory, one page table
        pd, pt = tables, tables + _PAGE
        entry = SPEC32.new_table(pt)
        mem.write(pt, struct.pack("<I", SPEC32.new_page(STUB_BASE + sym["user_page"], user, False)))
        for pa in pages:
            mem.write(pt + 4 * (pa >> 12 & 1023), struct.pack("<I", SPEC32.new_page(pa, supervisor, False)))
        for k in {0, slot}:
            mem.write(pd + 4 * k, struct.pack("<I", entry))
        return pd, entry
    # PAE (Tables 4-8, 4-10, 4-11): the PDPT, a page directory, the user page's table and the stub's.
    pdpt, pd, pt_user, pt_stub = (tables + k * _PAGE for k in range(4))
    entry = PDPT.new_table(pd)
    mem.write_u64(pt_user, PAE.new_page(STUB_BASE + sym["user_page"], user, False))
    for pa in pages:
        mem.write_u64(pt_stub + 8 * (pa >> 12 & 511), PAE.new_page(pa, supervisor, False))
    mem.write_u64(pd, PAE.new_table(pt_user))
    mem.write_u64(pd + 8 * (STUB_BASE >> 21), PAE.new_table(pt_stub))
    for k in {0, slot}:
        mem.write_u64(pdpt + 8 * k, entry)
    return pdpt, entry


def build_stub_32(layout: QemuLayout, cr3: int, cases: Sequence[ProbeCase32], slot: int, paging: str) -> StubImage:
    """The stub region's bytes for a run (code, state block, the harness's tables, IDT, GDT, TSS, stacks,
    cases and output area) and the root entry for ``slot``, which the image's root needs."""
    if paging not in PAGINGS:
        raise ValueError(f"paging must be one of {list(PAGINGS)}, not {paging!r}")
    program = stub32_program()
    code, sym = program.code, program.symbols
    m = _stub_map(len(cases))
    base = layout.stub_base

    def va(offset: int) -> int:
        return _va(slot, paging, base + offset)

    for case in cases:
        _check_case(case, paging)
    records = [_case_record(case, slot) for case in cases]
    mem = PhysMem([(base, layout.stub_size)])
    mem.write(base, code)
    boot_root, root_entry = _tables(mem, base + m.tables, slot, paging)
    # IDT: 32-bit interrupt gates for vectors 0-31 (#BP with DPL 3, for INT3 at CPL 3); GDT, TSS.
    for vector in range(32):
        gate, _ = x86.gate_descriptor(va(sym["isr_table"] + 16 * vector), KERNEL_CS, 3 if vector == BP_VECTOR else 0)
        mem.write_u64(base + m.idt + _GATE * vector, gate)
    for selector, descriptor in _GDT.items():
        mem.write_u64(base + m.gdt + selector, descriptor)
    tss, _ = x86.system_descriptor(va(m.tss), _TSS_SIZE - 1, 0x9)      # an available 32-bit TSS
    mem.write_u64(base + m.gdt + TSS_SEL, tss)
    gdt_limit = TSS_SEL + 8 - 1
    mem.write(base + m.tss + _TSS_ESP0, struct.pack("<I", va(m.rsp0_top)))
    mem.write(base + m.tss + _TSS_SS0, struct.pack("<H", KERNEL_DS))
    mem.write(base + m.tss + _TSS_IOMAP, struct.pack("<H", _TSS_SIZE))
    n = len(cases)
    mem.write(base + m.state, _STATE.pack({
        "VECTOR": _U32, "ERROR": 0, "CR2": 0, "RIP": 0, "VALUE": 0, "RESUME": 0, "RSP": 0,
        "CASE": va(m.cases), "CASE_END": va(m.out), "RESULT": va(m.out + _HEADER.size), "OUT_START": va(m.out),
        "OUT_END": va(m.end), "OUT_PA": base + m.out, "CR3": cr3, "ALIAS": slot_base_32(slot, paging),
        "BOOT_CR3": boot_root, "BOOT_CR4": CR4.mask("PAE") if paging == "pae" else 0, "STACK": va(m.stack_top),
        "GDTR_PA": x86._pseudo_descriptor(base + m.gdt, gdt_limit)[0],
        "GDTR": x86._pseudo_descriptor(va(m.gdt), gdt_limit)[0],
        "IDTR": x86._pseudo_descriptor(va(m.idt), 32 * _GATE - 1)[0],
    }))
    mem.write(base + m.cases, b"".join(_CASE.pack(record) for record in records))
    mem.write(base + m.out, _HEADER.pack({"MAGIC": _HEADER_MAGIC, "STATUS": _STATUS_OK, "COUNT": n, "CR3": 0,
                                          "CPUID1_EDX": 0, "CPUID7_EBX": 0, "EXT1_EDX": 0, "EXT8_EAX": 0}))
    mem.write_u64(base + m.end - x86._TRAILER_SIZE, x86._TRAILER_MAGIC)
    return StubImage(mem.read(base, m.end), root_entry)


# ---------------------------------------------------------------------------
# Running QEMU
# ---------------------------------------------------------------------------


def _check_cr3(cr3: int, image: bytes, paging: str) -> int:
    """The root table's address (the page directory's, or the PDPT's), checked to be inside ``image``."""
    layout, size = (CR3_32, _PAGE) if paging == "32" else (CR3_PAE, 32)
    if type(cr3) is not int or not 0 <= cr3 <= _U32 or cr3 & ~layout.mask(*(f.name for f in layout.fields)):
        raise ValueError(f"CR3 {cr3!r} must hold only the fields of {layout.name}")
    root = cr3 & layout.mask("ADDR")
    if not RAM_BASE <= root <= RAM_BASE + len(image) - size:
        raise ValueError(f"CR3's root table {root:#x} is not inside the image at {RAM_BASE:#x}")
    return root


def _parse_output(raw: bytes, cr3: int, cases: Sequence[ProbeCase32], stderr: bytes, cpu: str,
                  slot: int, load_cr3: int) -> tuple[list[ProbeResult], CpuFeatures32]:
    header = x86.read_header(raw, _HEADER, _HEADER_MAGIC, len(cases), stderr)
    features = CpuFeatures32.from_cpuid(header["CPUID1_EDX"], header["CPUID7_EBX"], header["EXT1_EDX"],
                                        header["EXT8_EAX"])
    if header["STATUS"] == _STATUS_NO_PAE:
        raise QemuFailed(f"-cpu {cpu} does not implement PAE paging (CPUID.01H:EDX.PAE = 0)")
    if not features.mmx:
        raise QemuFailed(f"-cpu {cpu} does not implement MMX (CPUID.01H:EDX.MMX = 0), which the stub's loads use")
    x86.refuse_missing((name for case in cases for name in features.missing(case.regs)), cpu)
    done = [_snippet(case, "write_done" if case.access == "write" else "read_done", slot) for case in cases]
    results = x86.read_results(raw, _HEADER.size, cases, done, stderr)
    loaded = any(not (r.vector == _GP_VECTOR and r.rip == load_cr3) for r in results)
    if header["CR3"] != (cr3 if loaded else 0):
        raise QemuFailed(f"the processor did not keep CR3 {cr3:#x} (read back {header['CR3']:#x})")
    return results, features


def run_probes_32(
    image: bytes,
    cr3: int,
    cases: Sequence[ProbeCase32],
    *,
    paging: str,
    high: bytes = b"",
    accel: str = "tcg",
    cpu: str | None = None,
    timeout: float = 60.0,
    qemu: str | None = None,
) -> ProbeRun32:
    """Run every case through QEMU's MMU under ``paging`` ("32" or "pae") and return the results, one per
    case, in order.

    ``image`` is placed at :data:`RAM_BASE`, ``high`` (if any) at :data:`HIGH_BASE` as RAM there; ``cr3`` (a
    CR3 value of that paging mode: the page directory's address with PWT and PCD, or the 32-byte aligned
    PDPT's, inside the image) is every case's, and every case's CR4.PAE must match ``paging``.  Write
    probes store back the value they loaded; the processor sets A/D bits in the image's entries, which later
    cases see.  ``accel``/``cpu`` as in :func:`~pagetable.vectors.x86_64.qemu.run_probes` (default
    :data:`TCG_CPU`, or the KVM one).

    Raises :class:`QemuUnavailable` when no QEMU is found, :class:`ToolchainUnavailable` when binutils are
    missing, :class:`QemuFailed` when QEMU exits badly, times out, its output is short, or the CPU lacks a
    feature the cases use, and ValueError for a case, CR3 or image the stub cannot run.
    """
    exe = runner.require_qemu(QEMU_BINARY, QEMU_PACKAGE, qemu)
    cpu = cpu if cpu is not None else x86.KVM_CPU if accel == "kvm" else TCG_CPU
    if paging not in PAGINGS:
        raise ValueError(f"paging must be one of {list(PAGINGS)}, not {paging!r}")
    root = _check_cr3(cr3, image, paging)
    layout = plan_layout_32(len(image), len(cases))
    slot = choose_slot_32(image, root, [c.va for c in cases], paging)
    stub = build_stub_32(layout, cr3, cases, slot, paging)
    loaded = bytearray(image)
    struct.pack_into("<I" if paging == "32" else "<Q", loaded, root - RAM_BASE + (4 if paging == "32" else 8) * slot,
                     stub.root_entry)
    high_size = round_up(len(high), 2 * _MIB)
    files = {x86._IMAGE_FILE: bytes(loaded), x86._STUB_FILE: stub.blob, x86._ROM_FILE: x86.rom_program().code}
    if high:
        files[x86._HIGH_FILE] = high
    run = runner.run_qemu(lambda workdir: x86.qemu_command(exe, layout, accel, cpu, workdir, high_size), files,
                          x86._SERIAL_FILE, timeout=timeout, ok_status=x86._EXIT_STATUS, explain=x86._explain_status)
    load_cr3 = _va(slot, paging, STUB_BASE + stub32_program().symbols["load_cr3"])
    results, features = _parse_output(run.serial, cr3, cases, run.stderr, cpu, slot, load_cr3)
    return ProbeRun32(results, features, slot, load_cr3, bytes(loaded))


def cpu_features_32(*, accel: str = "tcg", cpu: str | None = None, timeout: float = 60.0,
                    qemu: str | None = None) -> CpuFeatures32:
    """What CPUID says on this ``accel``/``cpu`` (a run without cases on an empty page directory)."""
    return run_probes_32(bytes(_PAGE), RAM_BASE, [], paging="32", accel=accel, cpu=cpu, timeout=timeout,
                         qemu=qemu).features
