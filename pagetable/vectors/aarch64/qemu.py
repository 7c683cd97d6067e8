"""Ask QEMU how AArch64 (VMSAv8-64) addresses translate: AT instructions and real accesses, stage 1 of the
EL1&0 and EL2 regimes and two-stage EL1&0 translation, independently of the library's own walker.

A bare-metal stub (``stub.S`` beside this module, assembled by GNU binutils: ``aarch64-linux-gnu-as``,
Debian package ``binutils-aarch64-linux-gnu``) runs on ``qemu-system-aarch64 -M virt,virtualization=on
-cpu max``: without EL3 the PE resets into EL2, where the generic loader's ``cpu-num`` starts the stub at
:data:`~pagetable.vectors.aarch64.layout.STUB_BASE` (CurrentEL is read and checked: the header's
``CURRENTEL`` must be 0b1000).  The caller's image is loaded at
:data:`~pagetable.vectors.aarch64.layout.RAM_BASE` (0x4100_0000), with the tag convention of
:mod:`pagetable.vectors.aarch64.layout`.  For each :class:`ProbeCase` the stub writes the case's
:class:`Registers`, invalidates every TLB entry (TLBI ALLE1, ALLE2; DSB; ISB) and then:

* ``method="at"`` -- from EL2 with the EL2 MMU off, one AT instruction (Arm ARM DDI 0487 M.a.a, C5.5 and
  D8.14): ``AT S1E1R/W`` for EL1 (``S1E1RP/WP``, FEAT_PAN2, when the case has PSTATE.PAN), ``S1E0R/W`` for
  EL0, ``S12E1R/W`` and ``S12E0R/W`` when HCR_EL2.VM=1 (two stages), ``S1E2R/W`` for EL2; then PAR_EL1
  (D24.2.118) raw.  AT S1E2R/W with SCTLR_EL2.M=0 is flat (PA = VA, as the architecture says); with M=1
  the stub runs it from its alias in the case's EL2 regime (below).
* ``method="access"`` -- a real 8-byte LDR, an STR, or a branch to the VA, at the case's EL with its MMU
  on: EL1 and EL0 through an ERET from EL2 (D1.10, C6.2.91) into a "probe page" the harness maps in the
  case's EL1&0 regime; EL2 -- and EL0 with HCR_EL2.{E2H,TGE} = {1,1} -- at the stub's alias in the case's
  EL2 (EL2&0) regime.  The result is the value loaded
  (or the PC reached), or the exception: which EL took it, ESR_ELx (D24.2.47/48; ISS of Data and
  Instruction Aborts, D24.2.47.5 and .6), FAR_ELx, ELR_ELx, and HPFAR_EL2 (D24.2.64) for stage 2 faults.
  A write is two accesses: a load, then the store of what it read (0 when the load faulted), so data is
  unchanged; its result is the store's.  The processor may update AF and dirty state in the image's
  descriptors (TCR_ELx.HA/HD): later cases see those updates.

Keeping the stub mapped (like :func:`pagetable.vectors.x86_64.qemu.choose_slot`): for access cases, and AT
S1E2 with SCTLR_EL2.M=1, the harness writes **one root-table entry** per root table those cases use, in a
slot no case VA indexes (:func:`choose_slot`), pointing at translation tables of its own in the stub's
memory: in the EL1&0 regime (TTBR1's root if it can, else TTBR0's) they map the probe page -- the EL1
vectors (VBAR_EL1), which only execute HVC, and the access snippets; read-only and executable at EL1 and EL0
-- at the slot's first VA; in the EL2 regime (TTBR0_EL2; with HCR_EL2.E2H=1 TTBR1_EL2 if it can) they map
the stub's code (read-only, executable) and state block (read/write, execute-never) at VA = slot base + (PA
- STUB_BASE).  For two-stage access cases the harness also writes one stage 2 root entry (VTTBR_EL2's root,
:func:`choose_s2_slot`) mapping its IPAs (slot base + (PA - STUB_BASE)) of the stub's region to the stub,
and its stage 1 tables then hold those IPAs.  Everything else in the image is left byte for byte;
:attr:`ProbeRun.image` is the image as QEMU got it.  Exceptions taken to EL1 go to the probe page's EL1
vectors and on to EL2 (HVC); stage 2 faults go to EL2 directly.

Not supported yet: HCR_EL2.TGE without E2H (Registers refuses it), EL1/EL0 accesses with
SCTLR_EL1.M=0, stage 1 root tables outside the image for access cases, big-endian walks.

Results come back over the PL011 UART (0x0900_0000) as binary records (:class:`~pagetable.vectors.qemu.Record`),
the run ends with PSCI SYSTEM_OFF (SMC, virt's PSCI conduit with virtualization=on), and a stub that
crashes or hangs ends in :class:`QemuFailed` by the timeout.  ``ID_AA64MMFR0/1/2_EL1`` are returned
(:class:`CpuFeatures`).  Assembling and running are :mod:`pagetable.vectors.qemu`'s.

QEMU virt machine facts relied on (checked against Debian's QEMU 7.2): RAM at 0x4000_0000, the device tree
at its start when no kernel is given (the stub sits 2 MiB above); PL011 at 0x0900_0000 (writes go out
without set-up); ``-device loader,...,cpu-num=0`` sets the reset PC; PSCI SYSTEM_OFF by SMC #0 exits QEMU
with status 0.  Its walker's deviations from the Arm ARM are in /work/shared/qemu-7.2-notes.md (items 1,
14-17, 20) and docs/qemu.md; the harness reports what QEMU does, deviations included.
"""

from __future__ import annotations

import functools
import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from ...arch.aarch64 import (
    HCR_EL2,
    ID_AA64MMFR0_EL1,
    LINUX_MAIR_EL1,
    SCTLR_EL1,
    SCTLR_EL2,
    TCR_EL1,
    TCR_EL2,
    VTCR_EL2,
    Granule,
    OAForm,
    Stage,
    descriptor_layout,
    mair_attrs,
    output_address,
    output_shift,
    pa_bits,
    stage1_start_level,
    stage2_start_level,
    table_base,
    tg0_granule,
    tg1_granule,
    with_output_address,
)
from ...errors import InvalidArgument
from ...format import EntryKind
from ...layout import Layout
from ...physmem import PhysMem
from .. import qemu as runner
from ..qemu import Program, QemuFailed, QemuUnavailable, Record, ToolchainFailed, ToolchainUnavailable, round_up, tail
from .layout import RAM_BASE, STUB_BASE, TAG_BRK_IMM, VIRT_RAM_BASE

__all__ = [
    "ACCESSES",
    "AT_OPS",
    "CPU",
    "DONE_IMM",
    "MACHINE",
    "METHODS",
    "QEMU_BINARY",
    "QEMU_PACKAGE",
    "RAM_BASE",
    "STUB_BASE",
    "TOOLCHAIN_PACKAGE",
    "TOOLCHAIN_PREFIX",
    "CpuFeatures",
    "ProbeCase",
    "ProbeResult",
    "ProbeRun",
    "QemuFailed",
    "QemuUnavailable",
    "Registers",
    "ToolchainFailed",
    "ToolchainUnavailable",
    "assemble_stub",
    "at_op",
    "choose_s2_slot",
    "choose_slot",
    "cpu_features",
    "find_qemu",
    "missing_toolchain",
    "qemu_command",
    "run_probes",
    "stub_program",
    "stub_source",
]

QEMU_BINARY: Final = "qemu-system-aarch64"
QEMU_PACKAGE: Final = "qemu-system-arm"
TOOLCHAIN_PREFIX: Final = "aarch64-linux-gnu-"
TOOLCHAIN_PACKAGE: Final = "binutils-aarch64-linux-gnu"
MACHINE: Final = "virt,virtualization=on"
CPU: Final = "max"

ACCESSES: Final = ("read", "write", "execute")
METHODS: Final = ("at", "access")
AT_OPS: Final = ("s1e1r", "s1e1w", "s1e1rp", "s1e1wp", "s1e0r", "s1e0w", "s12e1r", "s12e1w", "s12e0r", "s12e0w",
                 "s1e2r", "s1e2w")
"""The AT operations of the stub's at_table, in its order (C5.5)."""

_MIB: Final = 1 << 20
_K64: Final = 0x1_0000
_NONE: Final = 2**64 - 1
_STACK: Final = 0x4000
_STUB_LIMIT: Final = RAM_BASE                 # the stub's region ends below the image

# PSTATE in SPSR_EL2 (C5.2.19): M[3:0] EL0t / EL1h, DAIF masked, PAN bit 22.
_SPSR_EL0T, _SPSR_EL1H, _SPSR_EL2H = 0b0000, 0b0101, 0b1001
_SPSR_DAIF: Final = 0xF << 6
_SPSR_PAN: Final = 1 << 22
_MODE_LOWER, _MODE_FLAT, _MODE_MMU = 0, 1, 2
_PHASE_ACCESS, _PHASE_ENTER, _PHASE_EXIT = 0, 1, 2
_HVC_EL1_VECTOR: Final = 0x100                # HVC #(0x100 + n): EL1 vector entry n
_HVC_TRANSITION: Final = 0xE2
DONE_IMM: Final = 0xD0E                       # BRK #0xD0E ends a snippet that completed
_EC_HVC64, _EC_BRK64 = 0x16, 0x3C             # ESR_ELx.EC (D24.2.47)
_VEC_CURRENT_SYNC, _VEC_LOWER_SYNC = 4, 8     # EL2 vector entries: current EL with SPx, lower EL AArch64

# ---------------------------------------------------------------------------------------------- registers
# v8.0 RES1 bits of SCTLR_EL1 (EOS, TSCXT, EIS, SPAN, nTLSMD, LSMAOE) and SCTLR_EL2 (E2H=0), D24.2.175/176.
_SCTLR_EL1_RES1: Final = (1 << 11) | (1 << 20) | (1 << 22) | (1 << 23) | (1 << 28) | (1 << 29)
_SCTLR_EL2_RES1: Final = 0x30C5_0830
_SCTLR_EL1_FREE: Final = SCTLR_EL1.mask("M", "A", "C", "SA", "SA0", "I", "WXN", "SPAN", "EPAN") | _SCTLR_EL1_RES1
_SCTLR_EL2_FREE: Final = SCTLR_EL2.mask("M", "A", "C", "SA", "I", "WXN") | _SCTLR_EL2_RES1
_SCTLR_EL2_OFF: Final = _SCTLR_EL2_RES1 | SCTLR_EL2.mask("C", "I")
"""The stub's own SCTLR_EL2: MMU off (M=0), little-endian."""
_HCR_FIXED: Final = HCR_EL2.mask("RW")
_HCR_FREE: Final = HCR_EL2.mask("VM", "PTW", "CD", "ID", "FWB", "E2H", "TGE")
_CPTR_EL2_RES1: Final = 0x33FF                # CPTR_EL2 (E2H=0): RES1 bits 13:12, 9:0; TFP=0


def _u64(name: str, value: object) -> int:
    if type(value) is not int or not 0 <= value < 2**64:
        raise ValueError(f"{name} {value!r} is not a u64")
    return value


def _names(layout: Layout, mask: int) -> str:
    return ", ".join(f.name for f in layout.fields if f.mask & mask)


@dataclass(frozen=True)
class Registers:
    """The System register values one probe runs with (Arm ARM DDI 0487 M.a.a, D24.2), as the PE holds them,
    and PSTATE.PAN.  Layouts: :data:`~pagetable.arch.aarch64.TCR_EL1` and the rest.

    Any u64 for TCR_EL1, TTBR0/1_EL1, MAIR_EL1, VTCR_EL2, VTTBR_EL2, TCR_EL2, TTBR0/1_EL2 and MAIR_EL2: they
    are what is probed.  The others are checked, as the stub must keep running with them (ValueError
    otherwise):

    * SCTLR_EL1: M, A, C, SA, SA0, I, WXN, SPAN, EPAN and the v8.0 RES1 bits 11, 20, 22, 28, 29, nothing else
      (in particular EE=E0E=0: little-endian data and walks, as the stub's records are);
    * SCTLR_EL2: with E2H=0, M, A, C, SA, I, WXN and the RES1 bits; with E2H=1 (SCTLR_EL1's layout) what
      SCTLR_EL1 may hold and the E2H=0 RES1 bits (so the default stays valid); EE=0 either way.  It is
      written only for EL2 regime cases with M=1 (AT S1E2R/W, EL2 accesses); every other case runs with the
      stub's own SCTLR_EL2 (MMU off);
    * HCR_EL2: RW=1 (EL1 is AArch64), plus any of VM (stage 2), PTW, CD, ID, FWB and E2H (FEAT_VHE: the EL2
      regime becomes the EL2&0 regime, TCR_EL2 takes TCR_EL1's layout and TTBR1_EL2 is used), and TGE with
      E2H (EL0 in the EL2&0 regime; EL1 is then unused); routing or trap bits would take the stub's
      exceptions elsewhere;
    * ``pan``: PSTATE.PAN for EL1 cases (AT S1E1RP/WP, or the ERET's SPSR_EL2.PAN).
    """

    sctlr_el1: int = _SCTLR_EL1_RES1 | SCTLR_EL1.mask("M", "C", "I")
    tcr_el1: int = TCR_EL1.build(T0SZ=16, IRGN0=1, ORGN0=1, SH0=3, TG0=0, T1SZ=16, IRGN1=1, ORGN1=1, SH1=3, TG1=2,
                                 IPS=5)
    ttbr0_el1: int = 0
    ttbr1_el1: int = 0
    mair_el1: int = LINUX_MAIR_EL1
    hcr_el2: int = _HCR_FIXED
    vtcr_el2: int = VTCR_EL2.build(T0SZ=24, SL0=1, IRGN0=1, ORGN0=1, SH0=3, TG0=0, PS=2, RES1_31=1)
    vttbr_el2: int = 0
    sctlr_el2: int = _SCTLR_EL2_OFF
    tcr_el2: int = TCR_EL2.build(T0SZ=16, IRGN0=1, ORGN0=1, SH0=3, TG0=0, PS=5, RES1_23=1, RES1_31=1)
    ttbr0_el2: int = 0
    ttbr1_el2: int = 0
    mair_el2: int = LINUX_MAIR_EL1
    pan: bool = False

    def __post_init__(self) -> None:
        for name in ("tcr_el1", "ttbr0_el1", "ttbr1_el1", "mair_el1", "vtcr_el2", "vttbr_el2", "tcr_el2",
                     "ttbr0_el2", "ttbr1_el2", "mair_el2"):
            _u64(name.upper(), getattr(self, name))
        for name, layout, value, fixed, free in (
                ("HCR_EL2", HCR_EL2, self.hcr_el2, _HCR_FIXED, _HCR_FREE),
                ("SCTLR_EL1", SCTLR_EL1, self.sctlr_el1, 0, _SCTLR_EL1_FREE),
                ("SCTLR_EL2", SCTLR_EL1 if self.e2h else SCTLR_EL2, self.sctlr_el2, 0,
                 _SCTLR_EL1_FREE | _SCTLR_EL2_RES1 if self.e2h else _SCTLR_EL2_FREE)):
            if type(value) is not int or value & ~free != fixed:
                extra = " and the v8.0 RES1 bits" if layout is not HCR_EL2 else ""
                raise ValueError(f"{name} {value!r} is not one the probe stub runs with: it must be {fixed:#x} "
                                 f"plus any of {_names(layout, free)}{extra}")
        if type(self.pan) is not bool:
            raise ValueError(f"pan must be a bool, not {self.pan!r}")
        if self.tge and not self.e2h:
            raise ValueError("HCR_EL2.TGE without E2H is not supported: the probe stub runs EL0 under TGE only in "
                             "the EL2&0 regime (E2H=1)")

    @property
    def e2h(self) -> bool:
        """HCR_EL2.E2H: the EL2 regime is the EL2&0 regime (TCR_EL2 in TCR_EL1's layout, TTBR1_EL2 used)."""
        return type(self.hcr_el2) is int and bool(HCR_EL2.get(self.hcr_el2 & _NONE, "E2H"))

    @property
    def tge(self) -> bool:
        """HCR_EL2.TGE: with E2H, EL0 runs in the EL2&0 regime and its exceptions go to EL2."""
        return type(self.hcr_el2) is int and bool(HCR_EL2.get(self.hcr_el2 & _NONE, "TGE"))

    @property
    def two_stage(self) -> bool:
        """HCR_EL2.VM: EL1&0 accesses go through stage 2."""
        return bool(HCR_EL2.get(self.hcr_el2, "VM"))


@dataclass(frozen=True)
class ProbeCase:
    """One translation to probe: ``va`` an 8-byte aligned u64, ``access`` ``"read"``, ``"write"`` or
    ``"execute"`` (not with AT), ``el`` 0, 1 or 2 (the EL1&0 regime for 0 and 1, the EL2 regime for 2),
    ``method`` ``"at"`` or ``"access"``, with the registers ``regs``.  An access at EL1 or EL0 needs
    SCTLR_EL1.M=1 (the stub's probe page is reached through the case's stage 1); PAN only with EL1."""

    va: int
    access: str
    el: int = 1
    method: str = "at"
    regs: Registers = field(default_factory=Registers)


def at_op(case: ProbeCase) -> str:
    """The AT operation a case's ``method="at"`` executes (C5.5)."""
    rw = "w" if case.access == "write" else "r"
    if case.el == 2:
        return f"s1e2{rw}"
    if case.regs.tge:                   # {E2H, TGE} = {1, 1}: AT S1E0R/W translate in the EL2&0 regime
        return f"s1e0{rw}"
    if case.regs.two_stage:
        return f"s12e{case.el}{rw}"
    return f"s1e1{rw}p" if case.regs.pan else f"s1e{case.el}{rw}"


def _sctlr_m(value: int) -> bool:
    return bool(value & 1)


def _in_el2_regime(case: ProbeCase) -> bool:
    """The case translates in the EL2 (or EL2&0) regime: EL2, or EL0 with HCR_EL2.{E2H, TGE} = {1, 1}."""
    return case.el == 2 or case.regs.tge


def _check_case(case: ProbeCase) -> None:
    if not isinstance(case, ProbeCase):
        raise ValueError(f"a case must be a ProbeCase, not {type(case).__name__}")
    if case.access not in ACCESSES:
        raise ValueError(f"access must be one of {list(ACCESSES)}, not {case.access!r}")
    if case.method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, not {case.method!r}")
    if case.el not in (0, 1, 2) or type(case.el) is not int:
        raise ValueError(f"el must be 0, 1 or 2, not {case.el!r}")
    if type(case.va) is not int or not 0 <= case.va < 2**64 or case.va % 8:
        raise ValueError(f"va {case.va!r} must be an 8-byte aligned u64")
    if not isinstance(case.regs, Registers):
        raise ValueError(f"regs must be Registers, not {type(case.regs).__name__}")
    r = case.regs
    if case.method == "at" and case.access == "execute":
        raise ValueError("no AT instruction checks execute permission: use method='access' for execute")
    if r.pan and case.el != 1:
        raise ValueError("PSTATE.PAN applies to EL1 cases only")
    if r.pan and case.method == "at" and r.two_stage:
        raise ValueError("AT S12E1R/W has no PAN form (FEAT_PAN2 adds only S1E1RP/WP): no AT for PAN with "
                         "HCR_EL2.VM=1")
    if r.tge and case.el == 1:
        raise ValueError("with HCR_EL2.{E2H, TGE} = {1, 1} EL1 is not used: give EL0 or EL2 cases")
    if case.method == "access" and r.tge and not _sctlr_m(r.sctlr_el2):
        raise ValueError("an EL0 access with HCR_EL2.TGE=1 needs SCTLR_EL2.M=1: the stub's probe page is mapped "
                         "through the case's EL2&0 regime")
    if case.method == "access" and case.el < 2 and not r.tge and not SCTLR_EL1.get(r.sctlr_el1, "M"):
        raise ValueError("an EL1/EL0 access needs SCTLR_EL1.M=1: the stub's probe page is mapped through the "
                         "case's stage 1")


# ---------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class ProbeResult:
    """What the PE did for one :class:`ProbeCase`.

    ``par`` is PAR_EL1 after the AT instruction (``method="at"``; None for accesses).  For an access,
    ``el`` is None when it succeeded, else the EL that took the exception (1 or 2); ``esr``, ``far`` and
    ``elr`` are that EL's ESR_ELx, FAR_ELx and ELR_ELx, ``hpfar`` HPFAR_EL2 (an exception taken to EL2;
    0 otherwise).  ``value`` is the u64 a read or write loaded (0 if the load faulted), or for an execute
    the PC reached (the VA on success).  ``raw`` keeps every register the stub recorded, by name.
    """

    par: int | None
    el: int | None = None
    esr: int = 0
    far: int = 0
    elr: int = 0
    hpfar: int = 0
    value: int = 0
    raw: tuple[tuple[str, int], ...] = ()

    @property
    def ok(self) -> bool:
        """The translation succeeded: PAR_EL1.F=0, or the access completed."""
        return not self.par & 1 if self.par is not None else self.el is None

    @property
    def ec(self) -> int:
        """ESR_ELx.EC (bits 31:26) of the exception."""
        return (self.esr >> 26) & 0x3F

    @property
    def fsc(self) -> int:
        """The fault status code: PAR_EL1.FST for AT, ESR_ELx.ISS DFSC/IFSC (bits 5:0) for an access."""
        return (self.par >> 1) & 0x3F if self.par is not None else self.esr & 0x3F

    @property
    def pa(self) -> int:
        """PAR_EL1.PA (bits 51:12) with the VA's page offset not included: the output address of a successful
        AT, page-aligned."""
        if self.par is None or self.par & 1:
            raise ValueError("no PA: not a successful AT")
        return self.par & 0x000F_FFFF_FFFF_F000

    @property
    def fault_ipa(self) -> int:
        """HPFAR_EL2.FIPA as an address (IPA[51:12]; D24.2.64): the IPA of a stage 2 fault taken to EL2."""
        return ((self.hpfar >> 4) & ((1 << 40) - 1)) << 12


@dataclass(frozen=True)
class CpuFeatures:
    """The ID registers the stub read (D24.2.88 ID_AA64MMFR0_EL1, D24.2.89 ID_AA64MMFR1_EL1, D24.2.90
    ID_AA64MMFR2_EL1, D24.2.84 ID_AA64PFR0_EL1) and CurrentEL, raw, with the fields translation needs."""

    mmfr0: int
    mmfr1: int
    mmfr2: int
    pfr0: int
    midr: int
    current_el: int

    @property
    def pa_bits(self) -> int:
        return pa_bits(ID_AA64MMFR0_EL1.get(self.mmfr0, "PARange"))

    def field(self, name: str) -> int:
        """One 4-bit field by name: PARange, TGran4/16/64 and TGran*_2 (MMFR0), HAFDBS, PAN, VH, XNX (MMFR1),
        VARange, TTL, ST (MMFR2)."""
        if name in {f.name for f in ID_AA64MMFR0_EL1.fields}:
            return ID_AA64MMFR0_EL1.get(self.mmfr0, name)
        where = {"HAFDBS": (1, 0), "VMIDBits": (1, 4), "VH": (1, 8), "HPDS": (1, 12), "PAN": (1, 20),
                 "XNX": (1, 28), "CnP": (2, 0), "UAO": (2, 4), "VARange": (2, 16), "ST": (2, 28), "TTL": (2, 48),
                 "BBM": (2, 52), "E0PD": (2, 60)}
        if name not in where:
            raise KeyError(name)
        reg, lsb = where[name]
        return ((self.mmfr1 if reg == 1 else self.mmfr2) >> lsb) & 0xF


@dataclass(frozen=True)
class ProbeRun:
    """A run's results, one per case in order, with the CPU's ID registers, the harness's root-table entries
    (``slots``: (PA of the root table, slot index, entry) each) and the image as QEMU got it."""

    results: list[ProbeResult]
    features: CpuFeatures
    slots: tuple[tuple[int, int, int], ...]
    image: bytes


def find_qemu() -> str | None:
    """Return the path of ``qemu-system-aarch64`` on PATH, or ``None``."""
    return runner.find_qemu(QEMU_BINARY)


def missing_toolchain() -> list[str]:
    """The binutils programs the stub needs that are not on PATH (empty when all are there)."""
    return runner.missing_tools(TOOLCHAIN_PREFIX)


# ---------------------------------------------------------------------------------------------- the stub
_STATE: Final = Record("ST", ("PHASE", "MODE", "SP", "TARGET", "SPSR", "STATE_PA", "VBAR_PA", "STACK", "CASE",
                               "CASE_END", "RESULT", "OUT_START", "OUT_END", "VECTOR", "PAR", "ESR2", "FAR2", "HPFAR",
                               "ELR2", "ESR1", "FAR1", "ELR1", "VALUE"))
_CASE: Final = Record("CASE", ("OP", "AT", "MODE", "SPSR", "VA", "TARGET", "TARGET2", "DELTA", "HCR_EL2",
                               "SCTLR_EL1", "TCR_EL1", "TTBR0_EL1", "TTBR1_EL1", "MAIR_EL1", "VBAR_EL1", "VTCR_EL2",
                               "VTTBR_EL2", "SCTLR_EL2", "TCR_EL2", "TTBR0_EL2", "TTBR1_EL2", "MAIR_EL2"))
_RESULT: Final = Record("RES", ("PAR", "VECTOR", "ESR2", "FAR2", "HPFAR", "ELR2", "ESR1", "FAR1", "ELR1", "VALUE"))
_HEADER: Final = Record("HDR", ("MAGIC", "COUNT", "CURRENTEL", "MMFR0", "MMFR1", "MMFR2", "PFR0", "MIDR"))
_TRAILER_SIZE: Final = 8
_HEADER_MAGIC: Final = 0x3436_4141_424F_5250  # "PROBAA64"
_TRAILER_MAGIC: Final = 0x454E_445F_5052_4F42  # "END_PROB"
_IMAGE_FILE, _STUB_FILE, _SERIAL_FILE = "image.bin", "stub.bin", "out.bin"
_AT_SNIPPETS: Final = ("s1e2r", "s1e2w", "s1e0r", "s1e0w")
"""The AT operations the stub can also run from its alias in the EL2 (EL2&0) regime with SCTLR_EL2.M=1."""
_SNIPPETS: Final = ("snip_read", "read_done", "snip_write", "write_done", "snip_fetch", "el1_vectors",
                    *(f"{kind}_{op}" for op in _AT_SNIPPETS for kind in ("snip_at", "at_done")))


def _defsyms() -> dict[str, int]:
    """Every number stub.S shares with this module, by the name it uses."""
    return runner.defsyms(
        _STATE, _CASE, _RESULT, _HEADER,
        NO_TRAP=-1, MODE_FLAT=_MODE_FLAT, MODE_MMU=_MODE_MMU, PHASE_ACCESS=_PHASE_ACCESS,
        PHASE_ENTER=_PHASE_ENTER, PHASE_EXIT=_PHASE_EXIT, HVC_EL1_VECTOR=_HVC_EL1_VECTOR,
        HVC_TRANSITION=_HVC_TRANSITION, DONE_IMM=DONE_IMM, SCTLR_EL2_OFF=_SCTLR_EL2_OFF, HCR_EL2_BASE=_HCR_FIXED,
        HCR_E2H_BIT=HCR_EL2["E2H"].lsb,
        CPTR_EL2_BASE=_CPTR_EL2_RES1,
    )


def stub_source() -> str:
    """The text of stub.S, read from the package."""
    return runner.package_text(__name__, "stub.S")


def assemble_stub(address: int = 0) -> Program:
    """Assemble stub.S linked at ``address`` (uncached: :func:`stub_program` is what the harness loads).
    Raises :class:`ToolchainUnavailable`, naming the Debian package ``binutils-aarch64-linux-gnu``, when
    binutils are missing."""
    return runner.assemble(stub_source(), "stub.S", prefix=TOOLCHAIN_PREFIX, package=TOOLCHAIN_PACKAGE,
                           defsyms=_defsyms(), address=address)


@functools.cache
def stub_program() -> Program:
    """The stub, linked at 0 and assembled once per process (on first use, not at import).

    The code ends at the 64 KiB aligned symbol ``state``, where the data goes; ``probe_page`` (the EL1
    vectors and the snippets) is 64 KiB aligned and fits in 4 KiB; ``vectors_el2`` is 2 KiB aligned and
    ``at_table`` has a 16-byte entry per :data:`AT_OPS`."""
    program = assemble_stub()
    sym = program.symbols
    need = ("state", "probe_page", "probe_page_end", "vectors_el2", "at_table", "at_table_end", *_SNIPPETS)
    if (any(name not in sym for name in need) or sym["state"] != len(program.code) or sym["state"] % _K64
            or sym["probe_page"] % _K64 or sym["probe_page_end"] - sym["probe_page"] > 4096
            or sym["vectors_el2"] % 0x800 or sym["el1_vectors"] != sym["probe_page"]
            or sym["at_table_end"] - sym["at_table"] != 16 * len(AT_OPS)):
        raise ToolchainFailed(f"the assembled stub is not what the harness expects: {len(program.code)} bytes, "
                              f"symbols {({k: sym.get(k) for k in need})}")
    return program


# --------------------------------------------------------------------------------------- translation geometry
@dataclass(frozen=True)
class _Geometry:
    """One translation's table geometry: granule, input-address bits, initial lookup level, OA form."""

    stage: Stage
    granule: Granule
    bits: int
    level: int
    form: OAForm

    @property
    def slot_shift(self) -> int:
        return output_shift(self.granule, self.level)

    @property
    def entries(self) -> int:
        """Entries of the initial lookup table (with stage 2 concatenation: all of its tables)."""
        return 1 << (self.bits - self.slot_shift)

    def slot(self, address: int) -> int:
        return (address >> self.slot_shift) & (self.entries - 1)

    def index(self, address: int, level: int) -> int:
        if level == self.level:
            return self.slot(address)
        return (address >> output_shift(self.granule, level)) & ((1 << self.granule.stride) - 1)


def _form(granule: Granule, ds: bool, size_bits: int) -> OAForm:
    if ds and granule is not Granule.K64:
        return OAForm.LPA2
    if granule is Granule.K64 and size_bits == 52:
        return OAForm.LPA
    return OAForm.OA48


def _stage1(tcr: Layout, value: int, n: str, tg: Callable[[int], Granule], size_field: str) -> _Geometry:
    """The geometry of one stage 1 region (TnSZ, TGn, DS of TCR_EL1 or TCR_EL2); InvalidArgument if its
    fields are reserved."""
    granule = tg(tcr.get(value, f"TG{n}"))
    bits = 64 - tcr.get(value, f"T{n}SZ")
    return _Geometry(Stage.STAGE1, granule, bits, stage1_start_level(granule, bits),
                     _form(granule, bool(tcr.get(value, "DS")), pa_bits(tcr.get(value, size_field))))


def _stage2(vtcr: int) -> _Geometry:
    granule = tg0_granule(VTCR_EL2.get(vtcr, "TG0"))
    bits = 64 - VTCR_EL2.get(vtcr, "T0SZ")
    level = stage2_start_level(granule, VTCR_EL2.get(vtcr, "SL0"), VTCR_EL2.get(vtcr, "SL2"))
    geometry = _Geometry(Stage.STAGE2, granule, bits, level,
                         _form(granule, bool(VTCR_EL2.get(vtcr, "DS")), pa_bits(VTCR_EL2.get(vtcr, "PS"))))
    if not 0 <= bits - geometry.slot_shift <= granule.stride + 4:
        raise InvalidArgument(f"VTCR_EL2: {bits}-bit IPAs do not start at level {level} (at most 16 concatenated "
                              "tables)")
    return geometry


def _ips_bits(regs: Registers) -> int:
    return pa_bits(TCR_EL1.get(regs.tcr_el1, "IPS"))


def _image_word(image: bytes, pa: int) -> int | None:
    offset = pa - RAM_BASE
    if pa % 8 or not 0 <= offset <= len(image) - 8:
        return None
    return int(struct.unpack_from("<Q", image, offset)[0])


def _s2_translate(image: bytes, regs: Registers, ipa: int) -> int | None:
    """The PA the case's stage 2 (in ``image``) maps ``ipa`` to, or None: a minimal walk used only to find
    where a stage 1 root table is, to write the harness's entry into it."""
    try:
        g = _stage2(regs.vtcr_el2)
    except InvalidArgument:
        return None
    table = table_base(regs.vttbr_el2, g.form is not OAForm.OA48)
    if ipa >> g.bits:
        return None
    for level in range(g.level, 4):
        desc = _image_word(image, table + 8 * g.index(ipa, level))
        if desc is None or not desc & 1:
            return None
        kind = EntryKind.PAGE if level == 3 else EntryKind.TABLE if desc & 2 else EntryKind.BLOCK
        if level == 3 and not desc & 2:
            return None
        try:
            layout = descriptor_layout(Stage.STAGE2, kind, g.granule, level, g.form)
        except InvalidArgument:
            return None
        address = output_address(layout, desc)
        if kind is not EntryKind.TABLE:
            return address | (ipa & ((1 << output_shift(g.granule, level)) - 1))
        table = address
    return None


# ------------------------------------------------------------------------------------- the harness's tables
class _Tables:
    """The harness's translation tables, allocated upwards from ``start`` in the stub's memory ``mem``."""

    def __init__(self, mem: PhysMem, start: int, limit: int) -> None:
        self.mem, self.next, self.limit = mem, start, limit

    def alloc(self, granule: Granule) -> int:
        pa = round_up(self.next, granule.size)
        if pa + granule.size > self.limit:
            raise ValueError("the harness's translation tables do not fit in the stub's region: split the run")
        self.next = pa + granule.size
        return pa

    def tree(self, g: _Geometry, pages: Sequence[tuple[int, int, int]], address: Callable[[int], int]) -> int:
        """Tables below the initial lookup level mapping each (VA, output address, leaf template) of
        ``pages`` (every VA in one slot); returns the initial-level entry that points at them.  ``address``
        turns a table's PA into the address descriptors hold (its IPA, for stage 1 tables under stage 2)."""
        if g.level == 3:
            if len(pages) != 1:
                raise ValueError(f"the slot of a level 3 initial lookup ({g.granule.label}) holds one page, and "
                                 f"the harness needs {len(pages)}")
            _, oa, template = pages[0]
            return template | oa
        top = self.alloc(g.granule)
        children: dict[tuple[int, int], int] = {}
        for va, oa, template in pages:
            table = top
            for level in range(g.level + 1, 3):
                index = g.index(va, level)
                child = children.get((table, index))
                if child is None:
                    child = children[table, index] = self.alloc(g.granule)
                    self.mem.write_u64(table + 8 * index, _table_entry(g, level, address(child)))
                table = child
            self.mem.write_u64(table + 8 * g.index(va, 3), template | oa)
        return _table_entry(g, g.level, address(top))


def _table_entry(g: _Geometry, level: int, next_table: int) -> int:
    layout = descriptor_layout(g.stage, EntryKind.TABLE, g.granule, level, g.form)
    return with_output_address(layout, layout.build(VALID=1, TYPE=1), next_table)


def _page_template(g: _Geometry, **attrs: int) -> int:
    """A level 3 page descriptor without its OA (PAs of the stub are below 2**32: the OA is ORed in)."""
    layout = descriptor_layout(g.stage, EntryKind.PAGE, g.granule, 3, g.form)
    if g.form is not OAForm.LPA2:
        attrs["SH"] = 3
    return layout.build(VALID=1, TYPE=1, AF=1, **attrs)


# --------------------------------------------------------------------------------------------- slot choice
def choose_slot(image: bytes, root: int, g: _Geometry, used: set[int], top: int | None = None) -> int:
    """The initial-lookup slot for the harness's entry in the root table at PA ``root`` (in ``image``): one
    not in ``used`` (the slots case addresses index) and, with ``top``, whose addresses stay below it --
    the last one (layout.STUB_SLOT), else the highest such slot whose entry is 0, else the highest such
    slot.  ValueError when none is left."""
    free = [k for k in range(g.entries - 1, -1, -1) if k not in used
            and (top is None or (k + 1) << g.slot_shift <= top)]
    if not free:
        raise ValueError(f"the cases use every usable slot of the root table at {root:#x}: the harness needs one "
                         "for its own mapping")
    return next((k for k in free if _image_word(image, root + 8 * k) == 0), free[0])


def choose_s2_slot(image: bytes, root: int, g: _Geometry, avoid: set[int], top: int, span: int) -> int:
    """The stage 2 root slot for the harness: the highest whose entry in ``image`` is 0 (layout.S2_STUB_SLOT:
    vector sets leave the last one empty), not in ``avoid`` (slots of the cases' stage 1 root IPAs), whose
    IPAs [base, base + span) fit in the slot and stay below ``top`` (the stage 1 IPS and the IPA size).
    ValueError when none is."""
    if span > 1 << g.slot_shift:
        raise ValueError(f"a stage 2 root slot of {1 << g.slot_shift:#x} bytes cannot hold the stub's {span:#x}")
    for k in range(g.entries - 1, -1, -1):
        if k not in avoid and (k << g.slot_shift) + span <= top and _image_word(image, root + 8 * k) == 0:
            return k
    raise ValueError(f"no empty stage 2 root slot below {top:#x} is left in the table at {root:#x} for the "
                     "harness's mapping of its stub")


def _slot_base(g: _Geometry, slot: int, upper: bool) -> int:
    va = slot << g.slot_shift
    return (va | (_NONE ^ ((1 << g.bits) - 1))) if upper else va


# ------------------------------------------------------------------------------------------------ planning
@dataclass(frozen=True)
class _Map:
    """Offsets (from STUB_BASE) of the stub's region."""

    code: int
    state: int
    stack_top: int
    tables: int

    @classmethod
    def of(cls, code: int) -> _Map:
        state = code
        stack_top = round_up(state + _STATE.size, 16) + _STACK
        return cls(code, state, stack_top, round_up(stack_top, _K64))


@dataclass
class _Plan:
    """What the harness adds for a run: the stub region's memory, its tables, the image's new entries, and
    per case its mode, snippet addresses, VBAR_EL1 and alias delta."""

    mem: PhysMem
    tables: _Tables
    writes: dict[int, int] = field(default_factory=dict)      # PA in the image -> entry
    slots: list[tuple[int, int, int]] = field(default_factory=list)

    def write(self, root: int, slot: int, entry: int) -> None:
        pa = root + 8 * slot
        if self.writes.get(pa, entry) != entry:
            raise ValueError(f"two sets of cases need different harness entries in slot {slot} of the table at "
                             f"{root:#x}: split the run")
        if pa not in self.writes:
            self.writes[pa] = entry
            self.slots.append((root, slot, entry))


def _normal_attr(mair: int) -> int:
    """The first AttrIndx whose MAIR_ELx Attr is Normal memory (the harness maps its code and data with it:
    the Arm ARM makes a fetch from Device memory a Permission fault, though QEMU 7.2 runs it); 0 if none."""
    for n, attr in enumerate(mair_attrs(mair)):
        if attr.memory_type is not None and attr.memory_type.name.startswith("NORMAL"):
            return n
    return 0


def _shifted(delta: int) -> Callable[[int], int]:
    """PA -> the address a harness descriptor holds: the PA plus ``delta`` (the stub's IPA under stage 2)."""
    return lambda pa: pa + delta


def _sym(name: str) -> int:
    return stub_program().symbols[name]


def _root(image: bytes, regs: Registers, ttbr: int, g: _Geometry) -> int | None:
    """The PA of a stage 1 root table (through the case's stage 2 when HCR_EL2.VM=1), if inside the image."""
    base = table_base(ttbr, g.form is not OAForm.OA48)
    if regs.two_stage:
        translated = _s2_translate(image, regs, base)
        if translated is None:
            return None
        base = translated
    return base if _image_word(image, base) is not None else None


@dataclass(frozen=True)
class _Region:
    """A stage 1 region the harness can put its slot in: the EL1&0 regime's TTBR0 or TTBR1 half, or TTBR0_EL2."""

    root: int
    geometry: _Geometry
    upper: bool


def _two_range_regions(tcr: int, ttbr1: int, ttbr0: int, root_of: Callable[[int, _Geometry], int | None]
                       ) -> list[_Region]:
    """The regions of a regime with two VA ranges (EL1&0, or EL2&0 with its TCR_EL2 in TCR_EL1's layout) the
    harness could use, TTBR1's first: those TCR does not disable, whose fields are valid, and whose root
    table `root_of` finds inside the image."""
    out = []
    for n, upper, ttbr, tg in (("1", True, ttbr1, tg1_granule), ("0", False, ttbr0, tg0_granule)):
        if TCR_EL1.get(tcr, f"EPD{n}"):
            continue
        try:
            g = _stage1(TCR_EL1, tcr, n, tg, "IPS")
        except InvalidArgument:
            continue
        root = root_of(ttbr, g)
        if root is not None:
            out.append(_Region(root, g, upper))
    return out


def _el1_regions(image: bytes, regs: Registers) -> list[_Region]:
    """The EL1&0 regions of ``regs`` the harness could use, TTBR1's first."""
    return _two_range_regions(regs.tcr_el1, regs.ttbr1_el1, regs.ttbr0_el1,
                              lambda ttbr, g: _root(image, regs, ttbr, g))


def _el2_regions(image: bytes, regs: Registers) -> list[_Region]:
    """The EL2 regions of ``regs`` the harness could use: TTBR0_EL2's (HCR_EL2.E2H=0), or TTBR1_EL2's and
    TTBR0_EL2's, TCR_EL2 in TCR_EL1's layout (E2H=1, D24.2.195).  ValueError when there is none."""
    if not regs.e2h:
        try:
            g = _stage1(TCR_EL2, regs.tcr_el2, "0", tg0_granule, "PS")
        except InvalidArgument as exc:
            raise ValueError(f"an EL2 case with SCTLR_EL2.M=1 needs a valid TCR_EL2: {exc}") from None
        root = table_base(regs.ttbr0_el2, g.form is not OAForm.OA48)
        if _image_word(image, root) is None:
            raise ValueError(f"TTBR0_EL2's root table {root:#x} is not inside the image at {RAM_BASE:#x}: the "
                             "harness writes its entry there")
        return [_Region(root, g, False)]
    def in_image(ttbr: int, g: _Geometry) -> int | None:        # EL2&0 has no stage 2
        root = table_base(ttbr, g.form is not OAForm.OA48)
        return root if _image_word(image, root) is not None else None

    out = _two_range_regions(regs.tcr_el2, regs.ttbr1_el2, regs.ttbr0_el2, in_image)
    if not out:
        raise ValueError("an EL2 case with HCR_EL2.E2H=1 and SCTLR_EL2.M=1 needs a TTBR0_EL2 or TTBR1_EL2 root "
                         "table inside the image in a region with valid TCR_EL2 fields, for the harness's entry")
    return out


def _el1_region_of(va: int) -> bool:
    """VA bit 55 selects TTBR1 in the EL1&0 regime (D8.2.x)."""
    return bool(va >> 55 & 1)


def _plan(image: bytes, cases: Sequence[ProbeCase]) -> tuple[_Plan, list[dict[str, int]], int]:
    """Build the stub's region (code, state, tables), the image's new entries and the case records."""
    program = stub_program()
    m = _Map.of(len(program.code))
    n = len(cases)
    mem = PhysMem([(STUB_BASE, _STUB_LIMIT - STUB_BASE)])
    mem.write(STUB_BASE, program.code)
    plan = _Plan(mem, _Tables(mem, STUB_BASE + m.tables, _STUB_LIMIT))
    sym = program.symbols
    probe = STUB_BASE + sym["probe_page"]

    def snippet_pa(name: str) -> int:
        return STUB_BASE + sym[name]

    # -- stage 1 slots: the EL1&0 regions and the EL2 regions access cases need
    lower = [c for c in cases if c.method == "access" and not _in_el2_regime(c)]
    el2 = [c for c in cases if _sctlr_m(c.regs.sctlr_el2) and _in_el2_regime(c)]
    used: dict[int, set[int]] = {}   # by root table PA (TTBR0 and TTBR1 may share one)
    el1_choice: dict[Registers, _Region] = {}
    regions_of: dict[Registers, list[_Region]] = {}

    def el1_regions(regs: Registers) -> list[_Region]:
        if regs not in regions_of:
            regions_of[regs] = _el1_regions(image, regs)
        return regions_of[regs]

    for c in lower:
        if c.regs.two_stage:
            try:
                _stage2(c.regs.vtcr_el2)
            except InvalidArgument as exc:
                raise ValueError(f"a two-stage access case needs a valid VTCR_EL2: {exc}") from None
        if c.regs not in el1_choice:
            regions = [r for r in el1_regions(c.regs)
                       if not (c.el == 0 and TCR_EL1.get(c.regs.tcr_el1, "E0PD1" if r.upper else "E0PD0"))]
            if not regions:
                raise ValueError("an EL1/EL0 access case needs a TTBR0_EL1 or TTBR1_EL1 root table inside the image "
                                 "(through stage 2 with HCR_EL2.VM=1) in a region with valid TCR_EL1 fields, for "
                                 "the harness's entry")
            el1_choice[c.regs] = regions[0]
    for c in cases:
        if not _in_el2_regime(c):
            for region in ([el1_choice[c.regs]] if c.regs in el1_choice else el1_regions(c.regs)):
                if region.upper == _el1_region_of(c.va):
                    used.setdefault(region.root, set()).add(region.geometry.slot(c.va))
        else:
            try:
                el2_regions = _el2_regions(image, c.regs)
            except ValueError:
                continue
            for region in el2_regions:
                if region.upper == (c.regs.e2h and _el1_region_of(c.va)):
                    used.setdefault(region.root, set()).add(region.geometry.slot(c.va))

    # -- stage 2: the IPAs of the stub (two-stage access cases)
    s2_alias: dict[Registers, int] = {}
    s2_trees: list[tuple[Registers, int, int, _Geometry]] = []   # regs, root, slot, geometry
    s2_avoid: dict[int, set[int]] = {}
    for c in lower:
        if c.regs.two_stage:
            g2 = _stage2(c.regs.vtcr_el2)
            for ttbr in (c.regs.ttbr0_el1, c.regs.ttbr1_el1):
                s2_avoid.setdefault(table_base(c.regs.vttbr_el2, g2.form is not OAForm.OA48), set()).add(
                    g2.slot(table_base(ttbr)))
    span = _STUB_LIMIT - STUB_BASE
    s2_slot_of: dict[tuple[int, _Geometry, int], int] = {}
    for c in lower:
        if not c.regs.two_stage or c.regs in s2_alias:
            continue
        g2 = _stage2(c.regs.vtcr_el2)
        root2 = table_base(c.regs.vttbr_el2, g2.form is not OAForm.OA48)
        if _image_word(image, root2) is None:
            raise ValueError(f"VTTBR_EL2's root table {root2:#x} is not inside the image: the harness writes its "
                             "stage 2 entry there")
        top = 1 << min(g2.bits, _ips_bits(c.regs))
        key = (root2, g2, top)
        if key not in s2_slot_of:
            s2_slot_of[key] = choose_s2_slot(image, root2, g2, s2_avoid.get(root2, set()), top, span)
        slot2 = s2_slot_of[key]
        s2_alias[c.regs] = (slot2 << g2.slot_shift) - STUB_BASE
        s2_trees.append((c.regs, root2, slot2, g2))

    # -- the EL1&0 probe page mappings
    el1_va: dict[Registers, int] = {}
    shared: dict[tuple[_Region, int, int], int] = {}    # cases with the same region, stage 2, attributes share
    for regs, region in el1_choice.items():
        g = region.geometry
        delta, attr = s2_alias.get(regs, 0), _normal_attr(regs.mair_el1)
        if (region, delta, attr) not in shared:
            slot = choose_slot(image, region.root, g, used.get(region.root, set()))
            used.setdefault(region.root, set()).add(slot)
            va = _slot_base(g, slot, region.upper)
            template = _page_template(g, AP=0b11, AttrIndx=attr)
            entry = plan.tables.tree(g, [(va, probe + delta, template)], _shifted(delta))
            plan.write(region.root, slot, entry)
            shared[region, delta, attr] = va
        el1_va[regs] = shared[region, delta, attr]

    # -- the EL2 mappings: code read-only and executable, the state block read/write and execute-never
    el2_delta: dict[Registers, int] = {}
    for c in el2:
        if c.regs in el2_delta:
            continue
        region = _el2_regions(image, c.regs)[0]
        g = region.geometry
        top = round_up(m.state + _STATE.size, g.granule.size)
        if top > 1 << g.slot_shift:
            raise ValueError(f"an EL2 root slot of {1 << g.slot_shift:#x} bytes cannot hold the stub's {top:#x}")
        slot = choose_slot(image, region.root, g, used.get(region.root, set()))
        used.setdefault(region.root, set()).add(slot)
        base = _slot_base(g, slot, region.upper)
        attr = _normal_attr(c.regs.mair_el2)
        if c.regs.e2h:      # two privilege levels: code read-only for EL2 and EL0 (TGE), data EL2 only, PXN
            code_t = _page_template(g, AP=0b11, AttrIndx=attr)
            data_t = _page_template(g, AP=0b00, AttrIndx=attr, UXN=1, PXN=1)
        else:               # one privilege level: AP[1] RES1, UXN is XN
            code_t = _page_template(g, AP=0b11, AttrIndx=attr)
            data_t = _page_template(g, AP=0b01, AttrIndx=attr, UXN=1)
        pages = [(base + off, STUB_BASE + off, code_t if off < m.state else data_t)
                 for off in range(0, top, g.granule.size)]
        plan.write(region.root, slot, plan.tables.tree(g, pages, lambda pa: pa))
        el2_delta[c.regs] = (base - STUB_BASE) & _NONE

    # -- stage 2 trees over the stub's region so far (code, state, stage 1 tables)
    s1_end = round_up(plan.tables.next, _K64)
    done: set[tuple[int, int]] = set()
    for _regs, root2, slot2, g2 in s2_trees:
        if (root2, slot2) in done:
            continue
        done.add((root2, slot2))
        base2 = slot2 << g2.slot_shift
        template = _page_template(g2, S2AP=0b11, MemAttr=0xF)
        pages = [(base2 + off, STUB_BASE + off, template) for off in range(0, s1_end - STUB_BASE, g2.granule.size)]
        plan.write(root2, slot2, plan.tables.tree(g2, pages, lambda pa: pa))

    # -- the case records
    records = []
    for c in cases:
        r = c.regs
        rec = {"OP": 0, "AT": 0, "MODE": _MODE_LOWER, "SPSR": 0, "VA": c.va, "TARGET": 0, "TARGET2": 0, "DELTA": 0,
               "HCR_EL2": r.hcr_el2, "SCTLR_EL1": r.sctlr_el1, "TCR_EL1": r.tcr_el1, "TTBR0_EL1": r.ttbr0_el1,
               "TTBR1_EL1": r.ttbr1_el1, "MAIR_EL1": r.mair_el1, "VBAR_EL1": 0, "VTCR_EL2": r.vtcr_el2,
               "VTTBR_EL2": r.vttbr_el2, "SCTLR_EL2": r.sctlr_el2, "TCR_EL2": r.tcr_el2, "TTBR0_EL2": r.ttbr0_el2,
               "TTBR1_EL2": r.ttbr1_el2, "MAIR_EL2": r.mair_el2}
        first, second = _snippets(c)
        if c.method == "at" and not (_in_el2_regime(c) and r in el2_delta):
            rec["AT"] = AT_OPS.index(at_op(c))
        elif not _in_el2_regime(c):
            va = el1_va[r]
            rec.update(OP=1, MODE=_MODE_LOWER, VBAR_EL1=va,
                       SPSR=(_SPSR_EL1H if c.el == 1 else _SPSR_EL0T) | _SPSR_DAIF | (_SPSR_PAN if r.pan else 0),
                       TARGET=va + sym[first] - sym["probe_page"],
                       TARGET2=va + sym[second] - sym["probe_page"] if second else 0)
        elif r in el2_delta:
            delta = el2_delta[r]
            el0 = c.el == 0 and c.method == "access"              # EL0 with {E2H, TGE} = {1, 1}: ERET to it
            spsr = (_SPSR_EL0T if el0 else _SPSR_EL2H) | _SPSR_DAIF
            rec.update(OP=1, MODE=_MODE_MMU, DELTA=delta, SPSR=spsr,
                       TARGET=(snippet_pa(first) + delta) & _NONE,
                       TARGET2=(snippet_pa(second) + delta) & _NONE if second else 0)
        else:
            rec.update(OP=1, MODE=_MODE_FLAT, SPSR=_SPSR_EL2H | _SPSR_DAIF, TARGET=snippet_pa(first),
                       TARGET2=snippet_pa(second) if second else 0)
        records.append(rec)

    # -- state block, cases, output area
    cases_off = round_up(plan.tables.next, 16)
    out = cases_off + n * _CASE.size
    end = out + _HEADER.size + n * _RESULT.size + _TRAILER_SIZE
    if end > _STUB_LIMIT:
        raise ValueError(f"{n} cases do not fit in the stub's region below {_STUB_LIMIT:#x}: split the run")
    mem.write(STUB_BASE + m.state, _STATE.pack({
        "PHASE": 0, "MODE": 0, "SP": 0, "TARGET": 0, "SPSR": 0, "STATE_PA": STUB_BASE + m.state,
        "VBAR_PA": STUB_BASE + sym["vectors_el2"], "STACK": STUB_BASE + m.stack_top, "CASE": cases_off,
        "CASE_END": out, "RESULT": out + _HEADER.size, "OUT_START": out, "OUT_END": end, "VECTOR": _NONE,
        "PAR": 0, "ESR2": 0, "FAR2": 0, "HPFAR": 0, "ELR2": 0, "ESR1": 0, "FAR1": 0, "ELR1": 0, "VALUE": 0}))
    mem.write(cases_off, b"".join(_CASE.pack(rec) for rec in records))
    mem.write(out, _HEADER.pack({"MAGIC": _HEADER_MAGIC, "COUNT": n, "CURRENTEL": 0, "MMFR0": 0, "MMFR1": 0,
                                 "MMFR2": 0, "PFR0": 0, "MIDR": 0}))
    mem.write_u64(end - _TRAILER_SIZE, _TRAILER_MAGIC)
    return plan, records, end


def _snippets(case: ProbeCase) -> tuple[str, str | None]:
    """The snippet(s) an access runs: read, a load then a store for write, fetch, or EL2's AT snippet."""
    if case.method == "at":
        return f"snip_at_{at_op(case)}", None
    if case.access == "write":
        return "snip_read", "snip_write"
    return ("snip_fetch" if case.access == "execute" else "snip_read"), None


# ------------------------------------------------------------------------------------------------- running
def qemu_command(qemu: str, ram_size: int, workdir: str) -> list[str]:
    """The QEMU command line for a run whose files are in ``workdir``."""
    path = functools.partial(os.path.join, workdir)
    return [
        qemu, "-M", MACHINE, "-cpu", CPU, "-m", f"{ram_size // _MIB}M", "-smp", "1", "-nodefaults",
        "-display", "none", "-monitor", "none", "-parallel", "none", "-no-reboot",
        "-chardev", f"file,id=c0,path={path(_SERIAL_FILE)}", "-serial", "chardev:c0",
        "-device", f"loader,file={path(_IMAGE_FILE)},addr={RAM_BASE:#x},force-raw=on",
        "-device", f"loader,file={path(_STUB_FILE)},addr={STUB_BASE:#x},force-raw=on,cpu-num=0",
    ]


def _done_address(case: ProbeCase, rec: dict[str, int]) -> int:
    """The address of the BRK #DONE_IMM that ends ``case``'s (last) snippet when it completes."""
    name = _snippets(case)[1] or _snippets(case)[0]
    done = {"snip_read": "read_done", "snip_write": "write_done",
            **{f"snip_at_{op}": f"at_done_{op}" for op in _AT_SNIPPETS}}[name]
    target = rec["TARGET2"] or rec["TARGET"]
    return (target + _sym(done) - _sym(name)) & _NONE


def _result(case: ProbeCase, rec: dict[str, int], r: dict[str, int]) -> ProbeResult:
    raw = tuple(r.items())
    if rec["OP"] == 0:
        return ProbeResult(par=r["PAR"], raw=raw)
    vector, esr2 = r["VECTOR"], r["ESR2"]
    if vector == _VEC_LOWER_SYNC and esr2 >> 26 == _EC_HVC64 and esr2 & 0xFFFF >= _HVC_EL1_VECTOR:
        el, esr, far, elr, hpfar = 1, r["ESR1"], r["FAR1"], r["ELR1"], 0
    else:
        el, esr, far, elr, hpfar = 2, esr2, r["FAR2"], r["ELR2"], r["HPFAR"]
    brk = esr >> 26 == _EC_BRK64
    imm = esr & 0xFFFF
    if case.access == "execute":
        if brk and imm == TAG_BRK_IMM and elr == case.va:
            return ProbeResult(par=None, value=case.va, raw=raw)
        return ProbeResult(par=None, el=el, esr=esr, far=far, elr=elr, hpfar=hpfar, value=elr, raw=raw)
    if brk and imm == DONE_IMM and elr == _done_address(case, rec):
        return ProbeResult(par=r["PAR"] if case.method == "at" else None, value=r["VALUE"], raw=raw)
    return ProbeResult(par=None, el=el, esr=esr, far=far, elr=elr, hpfar=hpfar, value=r["VALUE"], raw=raw)


def _parse_output(raw: bytes, cases: Sequence[ProbeCase], records: list[dict[str, int]],
                  stderr: bytes) -> tuple[list[ProbeResult], CpuFeatures]:
    n = len(cases)
    expected = _HEADER.size + n * _RESULT.size + _TRAILER_SIZE
    if len(raw) != expected:
        raise QemuFailed(f"stub output truncated or malformed: got {len(raw)} bytes, expected {expected} (the stub "
                         f"crashed or hung?); QEMU stderr: {tail(stderr)!r}")
    header = _HEADER.unpack(raw, 0)
    (trailer,) = struct.unpack_from("<Q", raw, expected - _TRAILER_SIZE)
    if header["MAGIC"] != _HEADER_MAGIC or trailer != _TRAILER_MAGIC or header["COUNT"] != n:
        raise QemuFailed("stub output has a bad header or trailer")
    features = CpuFeatures(header["MMFR0"], header["MMFR1"], header["MMFR2"], header["PFR0"], header["MIDR"],
                           (header["CURRENTEL"] >> 2) & 3)
    if features.current_el != 2:
        raise QemuFailed(f"the stub ran at EL{features.current_el}, not EL2 (-M {MACHINE})")
    results = [_result(case, rec, _RESULT.unpack(raw, _HEADER.size + i * _RESULT.size))
               for i, (case, rec) in enumerate(zip(cases, records, strict=True))]
    # An AT S1E2R/W run from the alias (SCTLR_EL2.M=1) completes with BRK #DONE_IMM: its PAR is the result.
    for i, (case, result) in enumerate(zip(cases, results, strict=True)):
        if case.method == "at" and result.par is None and result.el is not None:
            raise QemuFailed(f"case {i}: AT S1E2 from the stub's EL2 alias took an exception (ESR_EL{result.el} "
                             f"{result.esr:#x}, ELR {result.elr:#x}): the EL2 regime does not keep the stub mapped")
    return results, features


def run_probes(image: bytes, cases: Sequence[ProbeCase], *, qemu: str | None = None,
               timeout: float = 60.0) -> ProbeRun:
    """Run every case through QEMU's MMU (``-M virt,virtualization=on -cpu max``) and return the results, one
    per case, in order.

    ``image`` is placed at :data:`RAM_BASE`; the cases' TTBRs point into it.  Raises
    :class:`QemuUnavailable` when no QEMU is found, :class:`ToolchainUnavailable` when binutils are missing,
    :class:`QemuFailed` when QEMU exits badly, times out or its output is short, and ValueError for a case
    or image the stub cannot run (no free root-table slot, a root table outside the image, too many cases).
    """
    exe = runner.require_qemu(QEMU_BINARY, QEMU_PACKAGE, qemu)
    image = bytes(image)
    for case in cases:
        _check_case(case)
    plan, records, end = _plan(image, cases)
    loaded = bytearray(image)
    for pa, entry in plan.writes.items():
        struct.pack_into("<Q", loaded, pa - RAM_BASE, entry)
    stub = plan.mem.read(STUB_BASE, end - STUB_BASE)
    ram_size = round_up(RAM_BASE + max(len(image), 1) - VIRT_RAM_BASE, _MIB)
    run = runner.run_qemu(lambda workdir: qemu_command(exe, ram_size, workdir),
                          {_IMAGE_FILE: bytes(loaded), _STUB_FILE: stub}, _SERIAL_FILE, timeout=timeout)
    results, features = _parse_output(run.serial, cases, records, run.stderr)
    return ProbeRun(results, features, tuple(plan.slots), bytes(loaded))


def cpu_features(*, qemu: str | None = None, timeout: float = 60.0) -> CpuFeatures:
    """The ID registers of ``-cpu max`` (a run without cases)."""
    return run_probes(bytes(4096), [], qemu=qemu, timeout=timeout).features
