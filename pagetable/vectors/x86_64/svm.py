"""Ask QEMU how a guest's accesses translate under AMD nested paging (NPT): a host that VMRUNs a guest.

A bare-metal host (``svm.S``, assembled by GNU binutils like the one-stage harness's stubs; the reset ROM
``boot.S`` of :mod:`pagetable.vectors.x86_64.qemu` starts it at :data:`STUB_BASE`) enables SVM and, for each
:class:`NptProbeCase`, runs a guest in 64-bit mode with nested paging on -- guest CR3 and nCR3 the case
image's tables, built with :class:`~pagetable.table.PageTable` (``PAGING4`` or ``PAGING5`` under ``NPT4``;
:class:`GuestMode`: the guest's CR4.LA57, CR0.WP, CR4.SMEP/SMAP/PKE with PKRU, EFER.NXE and RFLAGS.AC; the
host's EFER.NXE, which the nested walk follows, is ``host_nxe``) -- into a snippet that performs one access at
the guest VA (an 8-byte load, a store of what a load read, or a fetch: a jump to the VA) at guest CPL 0 or 3.
It records the #VMEXIT: exit code, EXITINFO1, EXITINFO2, the guest RIP and what the load read
(:class:`NptProbeResult`).  Results come back over COM1, the run ends through isa-debug-exit, both as in the
one-stage harness, whose command line, ROM, descriptors and records this module reuses.

AMD64 Architecture Programmer's Manual Vol. 2 (Pub. 24593), chapter 15 "Secure Virtual Machine":

* 15.4 "Enabling SVM": EFER.SVME (CPUID Fn8000_0001_ECX[SVM] = bit 2); 15.30.4 VM_HSAVE_PA.
* 15.5 "VMRUN Instruction", 15.5.1 "Basic Operation": the VMCB (Appendix B, Tables B-1 and B-2: the control
  area at 0, the state-save area at 0x400; :data:`VMCB_FIELDS`), its consistency checks (guest EFER.SVME=1,
  the VMRUN intercept set, ASID != 0, ...); the segment attributes (descriptor bits 47:40 and 55:52,
  :func:`segment_attributes`); 15.5.2 and 15.6: what #VMEXIT saves and restores.
* 15.9-15.12 intercepts: every exception (15.12: EXITINFO1 = the error code; 15.12.15 #PF: EXITINFO2 = the
  faulting linear address, and CR2 is not written), INTn, VMMCALL, shutdown; VMRUN must be intercepted.
* 15.25 "Nested Paging": NP_ENABLE (VMCB 0x090 bit 0), N_CR3 (0x0B0); the nested walk uses the host's paging
  mode (long mode, EFER.NXE as ``host_nxe`` says, no LA57 here); 15.25.5 every nested access is a user access
  and guest table accesses are writes; 15.25.6 #VMEXIT(NPF), exit code 0x400, EXITINFO1 = the page-fault error
  code with bit 32 (final guest-physical address) or bit 33 (guest page-table access), EXITINFO2 = the GPA.
  CPUID Fn8000_000A_EDX[NP] = bit 0.

The harness's own mappings, in slots no probe uses, so everything else in the image stays byte for byte as
given (the processor sets A/D bits in the entries it walks):

* **one guest root entry** (a PML4E of the guest's table, a PML5E with CR4.LA57; the slot
  :func:`~pagetable.vectors.x86_64.qemu.choose_slot` picks from the probe VAs) pointing at guest tables of its
  own that map the guest page -- the snippets, read-only -- at the slot's base as a user page (CPL 3 runs
  there) and after it as a supervisor page (CPL 0 runs there: SMEP forbids it a user page);
* **one nested root entry** (an nCR3 PML4E; :func:`choose_nested_slot`: the highest slot below 2^MAXPHYADDR
  whose entry is 0 and that holds no GPA the caller says the probes use) pointing at nested tables of its own
  that map the GPAs of the stub region at slot base + PA (2 MiB user pages, writable: the guest walk sets A/D
  in the harness's guest tables) to the stub region.

Both sets of tables live in the stub's memory below 16 MiB; the host runs identity-mapped with tables of its
own.  QEMU 7.2 facts this relies on (target/i386/tcg/sysemu/svm_helper.c, target/i386/tcg/excp_helper.c,
target/i386/cpu.h): INT3 in the guest is checked against the INTn intercept (exit 0x75 at RIP = the INT3), not
the #BP exception intercept the APM describes (raise_interrupt2 with is_int=1), so a successful fetch is
either exit; the guest CPL is SS.DPL (cpu_x86_load_seg_cache), set equal to the VMCB's CPL field here.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from ...arch.x86_64 import CR0, CR4, EFER, NPT4, PAGING4, PAGING5, RFLAGS, NptRules, X86Options
from ...arch.x86_64.cpuid import CPUID_EXT1_ECX, CPUID_EXT8_EAX, CPUID_EXTA_EDX
from ...flags import MappingFlags
from ...frames import FrameAllocator
from ...physmem import PhysMem
from ...table import PageTable
from ...walker import Walker
from .. import qemu as runner
from ..qemu import Program, QemuFailed, Record, ToolchainFailed, round_up
from . import qemu as x86
from .layout import RAM_BASE

__all__ = [
    "CPUID_EXTA_EDX",
    "EXIT_EXCP_BASE",
    "EXIT_INTN",
    "EXIT_INVALID",
    "EXIT_NPF",
    "EXIT_PF",
    "EXIT_SHUTDOWN",
    "EXIT_VMMCALL",
    "GUEST_CR0",
    "GUEST_CR4",
    "GUEST_EFER",
    "STUB_BASE",
    "VMCB_FIELDS",
    "GuestMode",
    "NptFeatures",
    "NptProbeCase",
    "NptProbeResult",
    "NptProbeRun",
    "VmcbField",
    "build_svm_stub",
    "choose_nested_slot",
    "guest_state",
    "npt_features",
    "pack_vmcb",
    "run_npt_probes",
    "segment_attributes",
    "svm_program",
]

STUB_BASE: Final = x86.STUB_BASE
_PAGE: Final = 4096
_LARGE: Final = 2 << 20
_NONE: Final = 2**64 - 1
_NESTED_SHIFT: Final = 39                     # an NPT4 root entry maps 512 GiB of guest-physical space
_TABLE_FRAMES: Final = 8                      # each of the three sets of tables needs at most 4
_STACK: Final = 2 * _PAGE
_STATUS_OK, _STATUS_NO_SVM = 0, 1
_MSR_VM_HSAVE_PA: Final = 0xC001_0117         # APM Vol. 2 15.30.4
_ASID: Final = 1                              # any but 0 (15.5.1: ASID 0 is the host's)
_TLB_FLUSH_ALL: Final = 1                     # TLB_CONTROL: flush every ASID's entries on VMRUN (15.16.1)
_PRIVILEGE: Final = {"supervisor": 0, "user": 3}

# #VMEXIT codes (APM Vol. 2, Appendix C, Table C-1).
EXIT_EXCP_BASE: Final = 0x40                  # + vector: an intercepted exception
EXIT_PF: Final = EXIT_EXCP_BASE + 14
EXIT_BP: Final = EXIT_EXCP_BASE + 3
EXIT_INTN: Final = 0x75
EXIT_SHUTDOWN: Final = 0x7F
EXIT_VMRUN: Final = 0x80
EXIT_VMMCALL: Final = 0x81
EXIT_NPF: Final = 0x400
EXIT_INVALID: Final = _NONE                   # VMEXIT_INVALID (-1): the VMCB failed a consistency check
_NO_EXIT: Final = _NONE - 1                   # what the stub writes before VMRUN: no #VMEXIT came back

@dataclass(frozen=True)
class VmcbField:
    """One VMCB field: its byte offset and size (APM Vol. 2, Appendix B)."""

    name: str
    offset: int
    size: int
    doc: str


VMCB_FIELDS: Final = {f.name: f for f in (
    # Table B-1, the control area.
    VmcbField("INTERCEPT_EXCEPTIONS", 0x008, 4, "bit n: intercept exception vector n"),
    VmcbField("INTERCEPT_MISC", 0x00C, 8, "the intercept vectors at 0x00C and 0x010, as one u64: bit 21 INTn, "
                                          "31 shutdown, 32 VMRUN, 33 VMMCALL"),
    VmcbField("IOPM_BASE_PA", 0x040, 8, "I/O permission map (unused: no IOIO intercept)"),
    VmcbField("MSRPM_BASE_PA", 0x048, 8, "MSR permission map (unused: no MSR intercept)"),
    VmcbField("ASID", 0x058, 4, "guest address-space identifier"),
    VmcbField("TLB_CONTROL", 0x05C, 1, "1: flush the TLB of every ASID on VMRUN"),
    VmcbField("EXITCODE", 0x070, 8, "#VMEXIT code"),
    VmcbField("EXITINFO1", 0x078, 8, "exit information 1"),
    VmcbField("EXITINFO2", 0x080, 8, "exit information 2"),
    VmcbField("NP_CONTROL", 0x090, 8, "bit 0 NP_ENABLE: nested paging"),
    VmcbField("N_CR3", 0x0B0, 8, "nested page-table root"),
    # Table B-2, the state-save area (offsets from the VMCB's start); a segment is selector (2 bytes),
    # attributes (2), limit (4), base (8).
    VmcbField("ES", 0x400, 16, "ES: selector, attributes, limit, base"),
    VmcbField("CS", 0x410, 16, "CS"),
    VmcbField("SS", 0x420, 16, "SS"),
    VmcbField("DS", 0x430, 16, "DS"),
    VmcbField("CPL", 0x4CB, 1, "the guest's current privilege level"),
    VmcbField("EFER", 0x4D0, 8, "guest EFER"),
    VmcbField("CR4", 0x548, 8, "guest CR4"),
    VmcbField("CR3", 0x550, 8, "guest CR3"),
    VmcbField("CR0", 0x558, 8, "guest CR0"),
    VmcbField("DR7", 0x560, 8, "guest DR7"),
    VmcbField("DR6", 0x568, 8, "guest DR6"),
    VmcbField("RFLAGS", 0x570, 8, "guest RFLAGS"),
    VmcbField("RIP", 0x578, 8, "guest RIP"),
    VmcbField("RSP", 0x5D8, 8, "guest RSP"),
    VmcbField("RAX", 0x5F8, 8, "guest RAX"),
    VmcbField("G_PAT", 0x668, 8, "guest PAT (with nested paging)"),
)}
_VMCB_SIZE: Final = _PAGE
_SEGMENTS: Final = ("ES", "CS", "SS", "DS")

# The intercepts (Table B-1): every exception, and in the vectors at 0x00C/0x010 INTn, shutdown, VMRUN
# (which 15.5.1 requires) and VMMCALL.
_INTERCEPT_MISC: Final = 1 << 21 | 1 << 31 | 1 << 32 | 1 << 33
_INTERCEPT_ALL_EXCEPTIONS: Final = 0xFFFF_FFFF

# The host's and the guest's control registers: long mode, paging, CR0.WP, EFER.NXE; EFER.SVME in both
# (15.5.1: VMRUN refuses a guest EFER without it).
_HOST_CR0: Final = CR0.mask("PG", "WP")
_HOST_EFER: Final = EFER.mask("LME", "SVME")            # and NXE, unless a run asks for host_nxe=False
GUEST_CR0: Final = CR0.mask("PE", "MP", "ET", "NE", "PG")        # and WP, as GuestMode says
GUEST_CR4: Final = CR4.mask("PAE")                   # and LA57, SMEP, SMAP, PKE, as GuestMode says
GUEST_EFER: Final = EFER.mask("LME", "LMA", "SVME")                # and NXE, as GuestMode says
_GUEST_RFLAGS: Final = 0x2                    # bit 1 reads as 1; IF=0: no interrupt reaches the guest; and AC
_DR6, _DR7 = 0xFFFF_0FF0, 0x400               # their reset values
_PAT: Final = 0x0007_0406_0007_0406           # the reset IA32_PAT

_GUEST_KERNEL_CS, _GUEST_KERNEL_SS = x86.KERNEL_CS, x86.KERNEL_DS
_GUEST_USER_CS, _GUEST_USER_SS = x86.USER_CS | 3, x86.USER_DS | 3
_CODE, _DATA = 0xB, 0x3                       # execute/read and read/write, accessed


def segment_attributes(descriptor: int) -> int:
    """The VMCB's 12-bit segment attributes for a segment descriptor (15.5.1, Table B-2: bits 7:0 are the
    descriptor's bits 47:40 -- type, S, DPL, P -- and bits 11:8 its bits 55:52 -- AVL, L, D/B, G)."""
    return (descriptor >> 40) & 0xFF | (descriptor >> 44) & 0xF00


def _segment(selector: int, descriptor: int) -> bytes:
    """A VMCB segment: selector, attributes, limit (0xFFFFFFFF: flat) and base 0."""
    return struct.pack("<HHIQ", selector, segment_attributes(descriptor), 0xFFFF_FFFF, 0)


def _selector_attributes(selector: int, descriptor: int) -> int:
    """The first 4 bytes of a VMCB segment (selector, attributes) as the u32 the stub writes per case."""
    raw: int = struct.unpack_from("<I", _segment(selector, descriptor))[0]
    return raw


def pack_vmcb(values: Mapping[str, int | bytes]) -> bytes:
    """A 4 KiB VMCB with these fields (names of :data:`VMCB_FIELDS`: integers, or bytes of the field's size
    for a segment), every other byte 0."""
    out = bytearray(_VMCB_SIZE)
    for name, value in values.items():
        f = VMCB_FIELDS[name]
        raw = value if isinstance(value, bytes) else value.to_bytes(f.size, "little")
        if len(raw) != f.size:
            raise ValueError(f"VMCB field {name} takes {f.size} bytes, not {len(raw)}")
        out[f.offset:f.offset + f.size] = raw
    return bytes(out)


@dataclass(frozen=True)
class GuestMode:
    """The guest's paging controls a run may choose: CR4.LA57 (5-level paging; the guest's tables are
    ``PAGING5``), CR0.WP, CR4.SMEP, CR4.SMAP, CR4.PKE with PKRU, EFER.NXE and RFLAGS.AC; the rest of the
    guest's CR0, CR4, EFER and RFLAGS is fixed (:data:`GUEST_CR0`, :data:`GUEST_CR4`, :data:`GUEST_EFER`:
    64-bit mode)."""

    la57: bool = False
    wp: bool = True
    smep: bool = False
    smap: bool = False
    pke: bool = False
    nxe: bool = True
    ac: bool = False
    pkru: int = 0

    def __post_init__(self) -> None:
        if type(self.pkru) is not int or not 0 <= self.pkru < 1 << 32:
            raise ValueError(f"PKRU {self.pkru!r} is not a 32-bit value")

    @property
    def cr0(self) -> int:
        return GUEST_CR0 | (CR0.mask("WP") if self.wp else 0)

    @property
    def cr4(self) -> int:
        chosen = [name for name, on in (("LA57", self.la57), ("SMEP", self.smep), ("SMAP", self.smap),
                                        ("PKE", self.pke)) if on]
        return GUEST_CR4 | (CR4.mask(*chosen) if chosen else 0)

    @property
    def efer(self) -> int:
        return GUEST_EFER | (EFER.mask("NXE") if self.nxe else 0)

    @property
    def rflags(self) -> int:
        return _GUEST_RFLAGS | (RFLAGS.mask("AC") if self.ac else 0)

    def options(self, maxphyaddr: int) -> X86Options:
        """The library's walk options for this guest on a CPU with ``maxphyaddr``."""
        return X86Options(wp=self.wp, smep=self.smep, smap=self.smap, ac=self.ac, nxe=self.nxe, la57=self.la57,
                          maxphyaddr=maxphyaddr, pke=self.pke, pkru=self.pkru)


def guest_state(guest_cr3: int, ncr3: int, guest: GuestMode | None = None) -> dict[str, int | bytes]:
    """The VMCB fields every probe shares: the intercepts, ASID, TLB control, nested paging with ``ncr3``,
    and the guest in 64-bit mode at CPL 0 with ``guest_cr3`` and the paging controls of ``guest`` (default
    4-level paging with CR0.WP and EFER.NXE) (the stub writes RIP, RAX, CS, SS, CPL and RFLAGS per probe, and
    PKRU, which the VMCB does not hold, once)."""
    mode = guest or GuestMode()
    return {
        "INTERCEPT_EXCEPTIONS": _INTERCEPT_ALL_EXCEPTIONS, "INTERCEPT_MISC": _INTERCEPT_MISC,
        "ASID": _ASID, "TLB_CONTROL": _TLB_FLUSH_ALL, "NP_CONTROL": 1, "N_CR3": ncr3,
        "ES": _segment(0, 0), "DS": _segment(0, 0),
        "CS": _segment(_GUEST_KERNEL_CS, x86.segment_descriptor(_CODE, 0, long=True)),
        "SS": _segment(_GUEST_KERNEL_SS, x86.segment_descriptor(_DATA, 0, big=True)),
        "CPL": 0, "EFER": mode.efer, "CR0": mode.cr0, "CR3": guest_cr3, "CR4": mode.cr4,
        "DR6": _DR6, "DR7": _DR7, "RFLAGS": mode.rflags, "G_PAT": _PAT,
    }


def _privilege_state(privilege: str) -> dict[str, int]:
    """The CS and SS (selector and attributes, as u32s) and the CPL a probe at ``privilege`` runs with."""
    dpl = _PRIVILEGE[privilege]
    cs, ss = (_GUEST_USER_CS, _GUEST_USER_SS) if dpl else (_GUEST_KERNEL_CS, _GUEST_KERNEL_SS)
    return {"CS": _selector_attributes(cs, x86.segment_descriptor(_CODE, dpl, long=True)),
            "SS": _selector_attributes(ss, x86.segment_descriptor(_DATA, dpl, big=True)), "CPL": dpl}


# ---------------------------------------------------------------------------------------------------------
# Cases and results
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NptProbeCase:
    """One guest access: ``va`` an 8-byte aligned guest VA, ``access`` ``"read"``, ``"write"`` or
    ``"execute"``, ``privilege`` ``"supervisor"`` (guest CPL 0) or ``"user"`` (guest CPL 3)."""

    va: int
    access: str
    privilege: str = "supervisor"


@dataclass(frozen=True)
class NptProbeResult:
    """What one :class:`NptProbeCase` did: ``exit_code`` ``None`` when the access succeeded, else the
    #VMEXIT code (:data:`EXIT_PF` a guest #PF, :data:`EXIT_NPF` a nested page fault, ...) with EXITINFO1
    and EXITINFO2.  ``value``: what a read or write probe loaded (0 if the load faulted), or for an execute
    probe the guest RIP reached (the VA when it succeeded).  ``rip``: the guest RIP at the exit."""

    exit_code: int | None
    exitinfo1: int
    exitinfo2: int
    value: int
    rip: int = 0


@dataclass(frozen=True)
class NptFeatures:
    """What CPUID told the host: MAXPHYADDR, SVM (Fn8000_0001_ECX bit 2), nested paging (Fn8000_000A_EDX
    bit 0)."""

    maxphyaddr: int
    svm: bool
    npt: bool


@dataclass(frozen=True)
class NptProbeRun:
    """A run's results, one per case, with the CPU's features, the guest and nested root slots the
    harness used, and the image as QEMU got it (the given one with those two entries written)."""

    results: list[NptProbeResult]
    features: NptFeatures
    guest_slot: int
    nested_slot: int
    image: bytes


_STATE: Final = Record("ST", ("HOST_CR3", "HOST_EFER", "VMCB", "HSAVE", "CASE", "CASE_END", "RESULT",
                              "OUT_START", "OUT_END", "OUT_PA", "STACK", "GDTR", "GDTR_HI", "GUEST_RFLAGS",
                              "GUEST_PKRU"))
_CASE: Final = Record("CASE", ("VA", "RIP1", "RIP2", "CS", "SS", "CPL"))
_RESULT: Final = Record("RES", ("EXIT_CODE", "EXITINFO1", "EXITINFO2", "RIP", "VALUE"))
_HEADER: Final = Record("HDR", ("MAGIC", "STATUS", "COUNT", "EXT1_ECX", "EXT1_EDX", "EXT8_EAX", "EXTA_EDX"))
_TRAILER_SIZE: Final = 8
_HEADER_MAGIC: Final = 0x3436_5842_4D56_5358  # "XSVMBX64"
_TRAILER_MAGIC: Final = 0x454E_445F_5356_4D42  # "BMVS_DNE"
_SNIPPETS: Final = ("snip_read", "read_done", "snip_write", "write_done", "snip_fetch")


def _defsyms() -> dict[str, int]:
    """Every number svm.S shares with this module, by the name it uses."""
    return runner.defsyms(
        _STATE, _CASE, _RESULT, _HEADER,
        **{f"VMCB_{name}": f.offset for name, f in VMCB_FIELDS.items()},
        KERNEL_CS=x86.KERNEL_CS, KERNEL_DS=x86.KERNEL_DS, NO_EXIT=_NO_EXIT - 2**64,
        STATUS_NO_SVM=_STATUS_NO_SVM, EXIT_PORT=x86._EXIT_PORT, EXIT_VALUE=x86._EXIT_VALUE,
        MSR_EFER=x86._MSR_EFER, MSR_VM_HSAVE_PA=_MSR_VM_HSAVE_PA, CR4_PAE=CR4.mask("PAE"), CR4_PKE=CR4.mask("PKE"),
        HOST_CR0=_HOST_CR0,
        CPUID_SVM=CPUID_EXT1_ECX.mask("SVM"), CPUID_NP=CPUID_EXTA_EDX.mask("NP"),
    )


@functools.cache
def svm_program() -> Program:
    """The SVM host stub, linked at 0, assembled once per process; its code ends at the 8-byte aligned
    symbol ``state`` and its guest page (the snippets) is 4 KiB aligned."""
    program = runner.assemble(x86.stub_source("svm.S"), "svm.S", prefix=x86.TOOLCHAIN_PREFIX,
                              package=x86.TOOLCHAIN_PACKAGE, as_flags=("--64",), defsyms=_defsyms())
    sym = program.symbols
    names = ("state", "guest_page", "guest_page_end", *_SNIPPETS)
    where = {name: sym.get(name, -1) for name in names}
    page = range(where["guest_page"], where["guest_page_end"])
    if (where["state"] != len(program.code) or where["state"] % 8 or where["guest_page"] % _PAGE
            or len(page) != _PAGE or any(where[name] not in page for name in _SNIPPETS)):
        raise ToolchainFailed(f"the assembled SVM stub is not what the harness expects: {len(program.code)} "
                              f"bytes, symbols {where}")
    return program


@dataclass(frozen=True)
class _StubMap:
    """Offsets in the stub region (from STUB_BASE) of everything :func:`build_svm_stub` appends."""

    state: int
    host_tables: int
    guest_tables: int
    nested_tables: int
    vmcb: int
    hsave: int
    gdt: int
    stack_top: int
    cases: int
    out: int
    end: int

    @classmethod
    def of(cls, code_size: int, n_cases: int) -> _StubMap:
        host_tables = round_up(code_size + _STATE.size, _PAGE)
        guest_tables = host_tables + _TABLE_FRAMES * _PAGE
        nested_tables = guest_tables + _TABLE_FRAMES * _PAGE
        vmcb = nested_tables + _TABLE_FRAMES * _PAGE
        hsave, gdt = vmcb + _PAGE, vmcb + 2 * _PAGE
        stack_top = gdt + _PAGE + _STACK
        out = stack_top + n_cases * _CASE.size
        return cls(code_size, host_tables, guest_tables, nested_tables, vmcb, hsave, gdt, stack_top, stack_top,
                   out, out + _HEADER.size + n_cases * _RESULT.size + _TRAILER_SIZE)


def _plan(image_size: int, n_cases: int) -> x86.QemuLayout:
    """RAM for the image at RAM_BASE and the stub region at STUB_BASE (2 MiB multiples, below RAM_BASE)."""
    stub_size = round_up(_StubMap.of(len(svm_program().code), n_cases).end, _LARGE)
    if STUB_BASE + stub_size > RAM_BASE:
        raise ValueError(f"{n_cases} cases do not fit below RAM_BASE: split the run")
    return x86.QemuLayout(ram_size=RAM_BASE + round_up(max(image_size, 1), _LARGE), stub_base=STUB_BASE,
                          stub_size=stub_size)


def choose_nested_slot(image: bytes, ncr3: int, maxphyaddr: int, gpas: Sequence[int] = ()) -> int:
    """The nCR3 root slot for the harness's nested entry: the highest slot whose guest-physical range lies
    below 2^``maxphyaddr`` (a guest entry can name no GPA above it), whose entry in ``image`` is 0 and that
    none of ``gpas`` (GPAs the probes use) falls in.  ValueError when there is none."""
    used = {gpa >> _NESTED_SHIFT for gpa in gpas}
    words = struct.unpack_from("<512Q", image, ncr3 - RAM_BASE)
    top = min(512, 1 << max(maxphyaddr - _NESTED_SHIFT, 0))
    for slot in range(top - 1, -1, -1):
        if slot not in used and words[slot] == 0:
            return slot
    raise ValueError("no nested root slot below MAXPHYADDR is free (entry 0 and no probe GPA in it): the "
                     "harness needs one for the stub's guest-physical addresses")


def _host_root(image: bytes, gpa: int, ncr3: int, maxphyaddr: int) -> int:
    """The host-physical address of guest-physical ``gpa`` through the image's nested tables (the library's
    NPT walk: the harness writes its guest root entry there)."""
    mem = PhysMem([(RAM_BASE, round_up(len(image), 8))])
    mem.write(RAM_BASE, image)
    t = Walker(mem, NptRules(ncr3, X86Options(maxphyaddr=maxphyaddr))).translate(gpa, "write", "user")
    if t.pa is None or not RAM_BASE <= t.pa <= RAM_BASE + len(image) - _PAGE:
        raise ValueError(f"the guest's root table at GPA {gpa:#x} is not mapped writable into the image")
    return t.pa


@dataclass(frozen=True)
class _SvmStub:
    blob: bytes
    guest_entry: int
    nested_entry: int


def _snippet_va(name: str, guest_base: int, privilege: str) -> int:
    """The guest VA of snippet ``name`` for a probe at ``privilege``: on the guest page, which the harness maps
    at ``guest_base`` as a user page (CPL 3) and in the next page as a supervisor one (CPL 0: under SMEP the
    guest cannot run on a user page)."""
    sym = svm_program().symbols
    alias = guest_base + (_PAGE if privilege == "supervisor" else 0)
    return (alias + sym[name] - sym["guest_page"]) & _NONE


def _case_record(case: NptProbeCase, guest_base: int) -> dict[str, int]:
    first = "snip_fetch" if case.access == "execute" else "snip_read"
    return {"VA": case.va, "RIP1": _snippet_va(first, guest_base, case.privilege),
            "RIP2": _snippet_va("snip_write", guest_base, case.privilege) if case.access == "write" else 0,
            **_privilege_state(case.privilege)}


def _check_case(case: NptProbeCase) -> None:
    """ValueError for a case the stub cannot run: the one-stage harness's checks of VA, access, privilege."""
    x86._check_case(x86.ProbeCase(case.va, case.access, case.privilege), False)


def build_svm_stub(layout: x86.QemuLayout, guest_cr3: int, ncr3: int, cases: Sequence[NptProbeCase],
                   guest_slot: int, nested_slot: int, guest_mode: GuestMode | None = None,
                   host_nxe: bool = True) -> _SvmStub:
    """The stub region's bytes (code, state block, the host's, the harness's guest and nested tables, VMCB,
    host save area, GDT, stack, cases, output area) and the guest and nested root entries the image's roots
    need in ``guest_slot`` and ``nested_slot`` (the guest's root a PML5 with ``guest_mode.la57``); the host
    runs with EFER.NXE as ``host_nxe`` says, which the nested walk follows."""
    mode = guest_mode or GuestMode()
    program = svm_program()
    code, sym = program.code, program.symbols
    for case in cases:
        _check_case(case)
    m = _StubMap.of(len(code), len(cases))
    base, size = layout.stub_base, layout.stub_size
    alias = nested_slot << _NESTED_SHIFT          # the stub region's GPA - HPA
    mem = PhysMem([(base, size)])
    mem.write(base, code)
    rwx = MappingFlags.READ | MappingFlags.WRITE | MappingFlags.EXECUTE

    def frames(at: int, memory: PhysMem = mem, offset: int = 0) -> FrameAllocator:
        return FrameAllocator(memory, offset + base + at, _TABLE_FRAMES * _PAGE)

    # The host's tables: the stub region identity-mapped with supervisor 2 MiB pages.
    host = PageTable(PAGING4, mem, frames(m.host_tables))
    host.map_region(base, base, size, rwx)
    # The nested tables: the stub region's GPAs (alias + PA) to the region, user 2 MiB pages (NPT4).
    nested = PageTable(NPT4, mem, frames(m.nested_tables))
    nested.map_region(alias + base, base, size, rwx)
    # The guest tables, built at their GPAs and copied to their PAs: the guest page at the slot's base.
    guest_mem = PhysMem([(alias + base + m.guest_tables, _TABLE_FRAMES * _PAGE)])
    guest = PageTable(PAGING5 if mode.la57 else PAGING4, guest_mem, frames(m.guest_tables, guest_mem, alias))
    guest_base = x86.slot_base(guest_slot, mode.la57)
    guest.map(guest_base, alias + base + sym["guest_page"], _PAGE,
              MappingFlags.READ | MappingFlags.EXECUTE | MappingFlags.USER)
    guest.map(guest_base + _PAGE, alias + base + sym["guest_page"], _PAGE, MappingFlags.READ | MappingFlags.EXECUTE)
    mem.write(base + m.guest_tables, guest_mem.read(alias + base + m.guest_tables, _TABLE_FRAMES * _PAGE))
    guest_entry = guest_mem.read_u64(guest.root_paddr + 8 * guest_slot)
    nested_entry = mem.read_u64(nested.root_paddr + 8 * nested_slot)

    mem.write(base + m.vmcb, pack_vmcb(guest_state(guest_cr3, ncr3, mode)))
    for selector in (x86.KERNEL_CS, x86.KERNEL_DS):
        mem.write_u64(base + m.gdt + selector, x86._GDT[selector])
    gdtr, gdtr_hi = x86._pseudo_descriptor(base + m.gdt, x86.KERNEL_DS + 8 - 1)
    n = len(cases)
    mem.write(base + m.state, _STATE.pack({
        "HOST_CR3": host.root_paddr, "HOST_EFER": _HOST_EFER | (EFER.mask("NXE") if host_nxe else 0),
        "VMCB": base + m.vmcb, "HSAVE": base + m.hsave, "CASE": base + m.cases,
        "CASE_END": base + m.out, "RESULT": base + m.out + _HEADER.size, "OUT_START": base + m.out,
        "OUT_END": base + m.end, "OUT_PA": base + m.out, "STACK": base + m.stack_top, "GDTR": gdtr,
        "GDTR_HI": gdtr_hi, "GUEST_RFLAGS": mode.rflags, "GUEST_PKRU": mode.pkru}))
    mem.write(base + m.cases, b"".join(_CASE.pack(_case_record(case, guest_base)) for case in cases))
    mem.write(base + m.out, _HEADER.pack({"MAGIC": _HEADER_MAGIC, "STATUS": _STATUS_OK, "COUNT": n,
                                          "EXT1_ECX": 0, "EXT1_EDX": 0, "EXT8_EAX": 0, "EXTA_EDX": 0}))
    mem.write_u64(base + m.end - _TRAILER_SIZE, _TRAILER_MAGIC)
    return _SvmStub(mem.read(base, m.end), guest_entry, nested_entry)


def _result(case: NptProbeCase, r: Mapping[str, int], guest_base: int) -> NptProbeResult:
    """A result record as an :class:`NptProbeResult`: success when a load or store reached its VMMCALL, or a
    fetch executed the INT3 at the VA (exit INTn at the VA, or #BP just after it)."""
    code, rip = r["EXIT_CODE"], r["RIP"]
    if case.access == "execute":
        if (code, rip) in ((EXIT_INTN, case.va), (EXIT_BP, case.va + 1)):
            return NptProbeResult(None, 0, 0, case.va)
        return NptProbeResult(code, r["EXITINFO1"], r["EXITINFO2"], rip, rip)
    done = _snippet_va("write_done" if case.access == "write" else "read_done", guest_base, case.privilege)
    if code == EXIT_VMMCALL and rip == done:
        return NptProbeResult(None, 0, 0, r["VALUE"])
    return NptProbeResult(code, r["EXITINFO1"], r["EXITINFO2"], r["VALUE"], rip)


def _parse(raw: bytes, cases: Sequence[NptProbeCase], stderr: bytes, guest_base: int
           ) -> tuple[list[NptProbeResult], NptFeatures]:
    header = x86.read_header(raw, _HEADER, _HEADER_MAGIC, len(cases), stderr, "SVM stub")
    features = NptFeatures(maxphyaddr=CPUID_EXT8_EAX.get(header["EXT8_EAX"], "PHYS"),
                           svm=bool(CPUID_EXT1_ECX.get(header["EXT1_ECX"], "SVM")),
                           npt=bool(CPUID_EXTA_EDX.get(header["EXTA_EDX"], "NP")))
    if header["STATUS"] == _STATUS_NO_SVM:
        return [], features
    expected = _HEADER.size + len(cases) * _RESULT.size + _TRAILER_SIZE
    if len(raw) != expected or struct.unpack_from("<Q", raw, expected - _TRAILER_SIZE)[0] != _TRAILER_MAGIC:
        raise QemuFailed(f"SVM stub output truncated or malformed: {len(raw)} bytes, expected {expected}; "
                         f"QEMU stderr: {runner.tail(stderr)!r}")
    records = [_RESULT.unpack(raw, _HEADER.size + i * _RESULT.size) for i in range(len(cases))]
    for r in records:
        if r["EXIT_CODE"] in (EXIT_INVALID, _NO_EXIT, EXIT_SHUTDOWN):
            raise QemuFailed(f"VMRUN did not run the guest as the harness set it up: exit code "
                             f"{r['EXIT_CODE']:#x} (EXITINFO1 {r['EXITINFO1']:#x})")
    return [_result(case, r, guest_base) for case, r in zip(cases, records, strict=True)], features


def run_npt_probes(image: bytes, guest_cr3: int, ncr3: int, cases: Sequence[NptProbeCase], *,
                   maxphyaddr: int = 40, gpas: Sequence[int] = (), guest: GuestMode | None = None,
                   host_nxe: bool = True, cpu: str | None = None,
                   timeout: float = 60.0, qemu: str | None = None) -> NptProbeRun:
    """Run every case as a guest access under nested paging in QEMU's TCG and return the results in order.

    ``image`` is placed at RAM_BASE and holds the nested tables (root at host-physical ``ncr3``) and,
    at the GPAs they map, the guest's (root at guest-physical ``guest_cr3``, PWT/PCD clear).  The guest runs
    with CR0 = PE|MP|ET|NE|PG, CR4.PAE, EFER = LME|LMA|SVME, RFLAGS 0x2 and ``guest``'s CR0.WP, CR4.LA57,
    SMEP, SMAP, PKE, EFER.NXE, RFLAGS.AC and PKRU (:class:`GuestMode`; default WP=1 and NXE=1, 4-level
    paging); the host (whose mode the nested walk uses) with
    4-level paging and EFER.NXE = ``host_nxe`` (without it XD is a reserved bit of nested entries).
    ``maxphyaddr`` is the CPU's (``-cpu max,phys-bits=40`` by default), ``gpas`` GPAs the probes use that the
    harness must not take a nested slot from.  An empty ``cases`` runs CPUID only.

    Raises QemuUnavailable/ToolchainUnavailable as :func:`~pagetable.vectors.x86_64.qemu.run_probes`,
    QemuFailed when QEMU exits badly, the CPU has no SVM or nested paging, or VMRUN refuses the VMCB, and
    ValueError for a case or table the harness cannot run.
    """
    exe = runner.require_qemu(x86.QEMU_BINARY, x86.QEMU_PACKAGE, qemu)
    cpu = cpu if cpu is not None else x86.TCG_CPU
    mode = guest or GuestMode()
    layout = _plan(len(image), len(cases))
    if not RAM_BASE <= ncr3 <= RAM_BASE + len(image) - _PAGE or ncr3 % _PAGE:
        raise ValueError(f"nCR3 {ncr3:#x} is not a table inside the image at {RAM_BASE:#x}")
    if guest_cr3 % _PAGE:
        raise ValueError(f"guest CR3 {guest_cr3:#x} must be the root's GPA alone (no PWT, PCD)")
    if cases:
        guest_root = _host_root(image, guest_cr3, ncr3, maxphyaddr)
        guest_slot = x86.choose_slot(image, guest_root, [c.va for c in cases], mode.la57)
        nested_slot = choose_nested_slot(image, ncr3, maxphyaddr, [*gpas, guest_cr3])
    else:
        guest_root, guest_slot, nested_slot = ncr3, 0, 0
    stub = build_svm_stub(layout, guest_cr3, ncr3, cases, guest_slot, nested_slot, mode, host_nxe)
    loaded = bytearray(image)
    if cases:
        struct.pack_into("<Q", loaded, guest_root - RAM_BASE + 8 * guest_slot, stub.guest_entry)
        struct.pack_into("<Q", loaded, ncr3 - RAM_BASE + 8 * nested_slot, stub.nested_entry)
    run = runner.run_qemu(lambda workdir: x86.qemu_command(exe, layout, "tcg", cpu, workdir),
                          {x86._IMAGE_FILE: bytes(loaded), x86._STUB_FILE: stub.blob,
                           x86._ROM_FILE: x86.rom_program().code},
                          x86._SERIAL_FILE, timeout=timeout, ok_status=x86._EXIT_STATUS,
                          explain=x86._explain_status)
    results, features = _parse(run.serial, cases, run.stderr, x86.slot_base(guest_slot, mode.la57))
    if not (features.svm and features.npt):
        raise QemuFailed(f"-cpu {cpu} has no SVM with nested paging (CPUID Fn8000_0001_ECX[SVM] = "
                         f"{int(features.svm)}, Fn8000_000A_EDX[NP] = {int(features.npt)})")
    return NptProbeRun(results, features, guest_slot, nested_slot, bytes(loaded))


def npt_features(*, cpu: str | None = None, timeout: float = 60.0, qemu: str | None = None) -> NptFeatures:
    """What CPUID says about SVM, nested paging and MAXPHYADDR on ``cpu`` (a run without cases)."""
    return run_npt_probes(bytes(_PAGE), 0, RAM_BASE, [], cpu=cpu, timeout=timeout, qemu=qemu).features
