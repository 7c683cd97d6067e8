"""Ask QEMU how RISC-V virtual addresses translate.

A tiny bare-metal stub (assembled by :mod:`pagetable.vectors.rvasm`) runs in
M-mode on ``qemu-system-riscv64 -M virt`` next to a caller-supplied physical
memory image holding page tables.  For each :class:`ProbeCase` it performs one
real S- or U-mode access through the MMU and records what the hart did.

Architecture followed (RISC-V Privileged spec, version 20211203):

* Section 3.1.6.3 "Memory Privilege in mstatus": loads/stores are done from
  M-mode with ``mstatus.MPRV=1`` and ``MPP`` = the probed privilege, so they
  are translated and protected exactly as S/U accesses, with ``SUM``/``MXR``
  as requested.
* Section 3.3.2 "Trap-Return Instructions": instruction fetches are probed by
  ``mret`` to ``va`` in S/U mode.
* Section 3.1.15 / Table 3.6 "mcause": the exception codes reported (1/5/7
  access faults, 12/13/15 page faults, 2 illegal instruction).
* Section 3.7 "Physical Memory Protection": PMP entry 0 is a NAPOT region over
  the whole physical address space with RWX, as S/U accesses fail when no PMP
  entry matches.  (QEMU 7.2 goes further: with no PMP entry, MRET to S/U mode
  is itself an illegal instruction.)
* Section 4.1.11 "satp" and 4.2.1 "SFENCE.VMA".
* Hypervisor extension (a case with ``virt=True``, on ``-cpu rv64,h=true``):
  loads and stores are HLV.D/HSV.D from M-mode, translated through
  ``vsatp`` and ``hgatp`` as VS- or VU-mode by ``hstatus.SPVP``; fetches are
  ``mret`` with ``mstatus.MPV=1`` into VS/VU-mode.  Traps report the
  guest-physical address in ``mtval2``.  QEMU 7.2 needs care here
  (shared/qemu-7.2-notes.md): hfence.gvma after every hstatus change (item 7),
  a non-Bare HS ``satp`` so VS-stage faults are page faults (item 10), and
  the trap handler clears ``mstatus.MPV`` so that its ``mret`` to M-mode does
  not run M-mode with V=1.

QEMU ``virt`` machine facts relied on (checked against QEMU 7.2): RAM at
0x8000_0000, 16550 UART at 0x1000_0000 (byte registers, LSR bit 5 = THR
empty), SiFive test finisher at 0x10_0000 (write 0x5555 to power off with
exit status 0), the flattened device tree placed 2 MiB-aligned just below
``min(RAM end, 3 GiB)``, and the generic loader's ``cpu-num`` setting the
hart's reset PC to the address it loads the stub at.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from ..rvasm import Assembler

__all__ = [
    "RAM_BASE",
    "ProbeCase",
    "ProbeResult",
    "QemuFailed",
    "QemuLayout",
    "QemuUnavailable",
    "build_stub",
    "find_qemu",
    "plan_layout",
    "run_probes",
]

RAM_BASE: Final = 0x8000_0000
QEMU_BINARY: Final = "qemu-system-riscv64"

_MIB: Final = 1 << 20
_ALIGN: Final = 2 * _MIB  # granule of the layout (QEMU aligns the FDT to 2 MiB)
_FDT_SLOT: Final = 2 * _MIB  # room left for QEMU's FDT at the top of RAM
_FDT_CAP: Final = 3072 * _MIB  # QEMU 7.2 virt: FDT below min(RAM end, 3 GiB)

_UART: Final = 0x1000_0000  # virt: ns16550a, regshift 0
_UART_LSR: Final = 5  # line status register; bit 5 = THR empty
_FINISHER: Final = 0x10_0000  # virt: sifive_test
_FINISHER_PASS: Final = 0x5555

# mstatus bits (Privileged spec, Section 3.1.6; MPV and GVA: hypervisor extension, "Machine Status").
_MSTATUS_MPP_SHIFT: Final = 11
_MSTATUS_MPP: Final = 3 << _MSTATUS_MPP_SHIFT
_MSTATUS_MPRV: Final = 1 << 17
_MSTATUS_SUM: Final = 1 << 18
_MSTATUS_MXR: Final = 1 << 19
_MSTATUS_GVA: Final = 1 << 38
_MSTATUS_MPV: Final = 1 << 39
_HSTATUS_SPVP: Final = 1 << 8  # hypervisor extension, "Hypervisor Status Register"

# Exception codes (Privileged spec, Table 3.6).
CAUSE_ILLEGAL_INSTRUCTION: Final = 2

_PRIVILEGE: Final[dict[str, int]] = {"user": 0, "supervisor": 1}
_ACCESS: Final[dict[str, int]] = {"read": 0, "write": 1, "execute": 2}

# Stub state block, addressed through mscratch (offsets in bytes).
_ST_CAUSE, _ST_EPC, _ST_TVAL, _ST_RESUME = 0, 8, 16, 24
_ST_CASE, _ST_CASE_END, _ST_RESULT = 32, 40, 48
_ST_OUT_START, _ST_OUT_END, _ST_SATP = 56, 64, 72
_ST_TVAL2, _ST_HYP, _ST_HGATP, _ST_VSATP = 80, 88, 96, 104
_STATE_SIZE: Final = 112

_CASE_SIZE: Final = 40  # va, mstatus bits, access kind (+4: V=1), vsstatus bits, hstatus bits
_VIRT: Final = 4
_RESULT_SIZE: Final = 32  # cause (all ones = none), value, tval, tval2
_HEADER_MAGIC: Final = 0x5052_4F42_4553_5632  # "PROBESV2"
_TRAILER_MAGIC: Final = 0x454E_445F_5052_4F42  # "END_PROB"
_HEADER_SIZE: Final = 32  # magic, satp and hgatp read back, number of cases
_TRAILER_SIZE: Final = 8
_NONE: Final = 2**64 - 1


class QemuUnavailable(RuntimeError):
    """``qemu-system-riscv64`` could not be found."""


class QemuFailed(RuntimeError):
    """QEMU exited badly, timed out, or its output was truncated or malformed."""


@dataclass(frozen=True)
class ProbeCase:
    """One access to probe.

    ``va`` is an 8-byte aligned virtual address; ``access`` is ``"read"``,
    ``"write"`` or ``"execute"``; ``privilege`` is ``"supervisor"`` or
    ``"user"``; ``sum``/``mxr`` are the mstatus.SUM/MXR bits in force
    (Privileged spec, Section 3.1.6.3).  ``virt``: an access with V=1 (VS- or
    VU-mode by ``privilege``) through vsatp and hgatp, with vsstatus.SUM/MXR
    = ``vs_sum``/``vs_mxr`` (``mxr`` is then the HS-level MXR).
    """

    va: int
    access: str
    privilege: str
    sum: bool = False
    mxr: bool = False
    virt: bool = False
    vs_sum: bool = False
    vs_mxr: bool = False


@dataclass(frozen=True)
class ProbeResult:
    """What the hart did for one :class:`ProbeCase`.

    ``cause`` is ``None`` when the access succeeded, else the mcause exception
    code (Privileged spec, Table 3.6).  ``value`` is the u64 loaded at ``va``
    for reads and writes (0 if the load faulted), and mepc for executes.
    ``tval`` is mtval of the trap (0 on success), ``tval2`` mtval2 (the
    guest-physical address >> 2 of a guest-page fault; 0 without H).
    """

    cause: int | None
    value: int
    tval: int
    tval2: int = 0


@dataclass(frozen=True)
class QemuLayout:
    """Guest physical memory plan: RAM size and where the stub is loaded."""

    ram_size: int
    stub_base: int


def find_qemu() -> str | None:
    """Return the path of ``qemu-system-riscv64`` on PATH, or ``None``."""
    return shutil.which(QEMU_BINARY)


def _round_up(value: int, granule: int) -> int:
    return -(-value // granule) * granule


# ---------------------------------------------------------------------------
# The stub
# ---------------------------------------------------------------------------


def _stub_code() -> Assembler:
    """Assemble the stub's code; data follows at label ``state``.

    Register use: s0 = state block (from mscratch), s1 = case, s2 = result,
    a0 = va, a1 = mstatus bits, a2 = value, a3/a4 = vsstatus/hstatus bits,
    t0-t2 scratch.  The trap handler clobbers only t5/t6, and every path back
    from an access reloads its state from memory, because an execute probe
    runs arbitrary code.  The H CSRs are touched only when the state block's
    hypervisor flag is set (they are illegal instructions without H).
    """
    a = Assembler()

    def clear_trap() -> None:
        """Mark the state block's trap record as "no trap" (cause all-ones)."""
        a.li("t1", -1)
        a.sd("t1", _ST_CAUSE, "s0")
        for offset in (_ST_EPC, _ST_TVAL, _ST_TVAL2):
            a.sd("zero", offset, "s0")

    def guarded(resume: str, access: Callable[[], None]) -> None:
        """One access with the mstatus bits in a1 set (MPRV|MPP|SUM|MXR, or MXR for HLV/HSV), cleared
        right after; a trap resumes at `resume` (where MPRV is already clear)."""
        a.la("t1", resume)
        a.sd("t1", _ST_RESUME, "s0")
        a.csrs("mstatus", "a1")
        access()
        a.csrc("mstatus", "a1")

    def load_then_store(name: str, load: Callable[[], None], store: Callable[[], None]) -> None:
        """A write probe: load (0 if it faults), then store the same value back."""
        guarded(f"after_{name}", load)
        a.label(f"after_{name}")
        a.csrr("s0", "mscratch")
        clear_trap()  # forget the load's fault, if any
        guarded("record", store)
        a.j("record")

    # -- setup (Privileged spec 3.1.7 mtvec, 3.1.8 medeleg/mideleg, 3.7 PMP) --
    a.la("t0", "trap")
    a.csrw("mtvec", "t0")
    a.la("s0", "state")
    a.csrw("mscratch", "s0")
    a.csrw("medeleg", "zero")
    a.csrw("mideleg", "zero")
    a.csrw("mie", "zero")
    a.li("t0", -1)  # NAPOT over the whole address space
    a.csrw("pmpaddr0", "t0")
    a.li("t0", 0x1F)  # A=NAPOT, X, W, R; L=0
    a.csrw("pmpcfg0", "t0")
    a.ld("t0", _ST_SATP, "s0")
    a.csrw("satp", "t0")
    a.sfence_vma()
    a.csrr("t0", "satp")  # read back (WARL: unsupported modes drop)
    a.ld("t1", _ST_OUT_START, "s0")
    a.sd("t0", 8, "t1")
    a.ld("t0", _ST_HYP, "s0")
    a.beqz("t0", "next_case")
    a.ld("t0", _ST_HGATP, "s0")
    a.csrw("hgatp", "t0")
    a.ld("t0", _ST_VSATP, "s0")
    a.csrw("vsatp", "t0")
    a.hfence_gvma()
    a.csrr("t0", "hgatp")
    a.sd("t0", 16, "t1")

    # -- per-case loop ---------------------------------------------------------
    a.label("next_case")
    a.csrr("s0", "mscratch")
    a.ld("s1", _ST_CASE, "s0")
    a.ld("t0", _ST_CASE_END, "s0")
    a.bgeu("s1", "t0", "output")
    # Start every case from a clean state: an execute probe returns through
    # the handler with its SUM/MXR still set.
    a.li("t1", _MSTATUS_MPP | _MSTATUS_MPRV | _MSTATUS_SUM | _MSTATUS_MXR)
    a.csrc("mstatus", "t1")
    a.ld("t0", _ST_HYP, "s0")
    a.beqz("t0", "clean")
    a.li("t1", _MSTATUS_SUM | _MSTATUS_MXR)  # same bits in vsstatus
    a.csrc("vsstatus", "t1")
    a.li("t1", _HSTATUS_SPVP)
    a.csrc("hstatus", "t1")
    a.label("clean")
    a.sfence_vma()
    a.ld("a0", 0, "s1")
    a.ld("a1", 8, "s1")
    a.ld("t0", 16, "s1")
    a.ld("a3", 24, "s1")
    a.ld("a4", 32, "s1")
    clear_trap()
    a.li("a2", 0)  # value if the load faults
    a.andi("t2", "t0", _VIRT)
    a.beqz("t2", "plain")
    # V=1: vsstatus and hstatus.SPVP for this case, then flush (QEMU 7.2 keys
    # its HLV/HSV TLB entries without SPVP: shared notes item 7).
    a.csrs("vsstatus", "a3")
    a.csrs("hstatus", "a4")
    a.hfence_gvma()
    a.andi("t0", "t0", 3)
    a.bnez("t0", "virt_not_read")
    guarded("record", lambda: a.hlv_d("a2", "a0"))
    a.j("record")
    a.label("virt_not_read")
    a.li("t1", 1)
    a.bne("t0", "t1", "execute")
    load_then_store("virt_load", lambda: a.hlv_d("a2", "a0"), lambda: a.hsv_d("a2", "a0"))

    a.label("plain")
    a.bnez("t0", "not_read")
    # read: one load with MPRV=1 (a1 holds MPRV|MPP|SUM|MXR); clear right after.
    guarded("record", lambda: a.ld("a2", 0, "a0"))
    a.j("record")

    a.label("not_read")
    a.li("t1", 1)
    a.bne("t0", "t1", "execute")
    load_then_store("load", lambda: a.ld("a2", 0, "a0"), lambda: a.sd("a2", 0, "a0"))

    # execute: mret to va in S/U, or VS/VU with MPV (a1 holds MPP|SUM|MXR[|MPV], no MPRV).
    a.label("execute")
    a.la("t1", "after_execute")
    a.sd("t1", _ST_RESUME, "s0")
    a.csrw("mepc", "a0")
    a.csrs("mstatus", "a1")
    a.mret()
    a.label("after_execute")
    a.csrr("s0", "mscratch")
    a.ld("s1", _ST_CASE, "s0")
    a.ld("a2", _ST_EPC, "s0")  # value = mepc
    # A fetch that succeeded hits the illegal 0x0000 parcel at va itself.
    a.ld("t0", _ST_CAUSE, "s0")
    a.li("t1", CAUSE_ILLEGAL_INSTRUCTION)
    a.bne("t0", "t1", "record")
    a.ld("t1", 0, "s1")
    a.bne("a2", "t1", "record")
    a.li("t1", -1)
    a.sd("t1", _ST_CAUSE, "s0")
    a.sd("zero", _ST_TVAL, "s0")

    a.label("record")
    a.csrr("s0", "mscratch")
    a.ld("s1", _ST_CASE, "s0")
    a.ld("s2", _ST_RESULT, "s0")
    a.ld("t0", _ST_CAUSE, "s0")
    a.sd("t0", 0, "s2")
    a.sd("a2", 8, "s2")
    a.ld("t0", _ST_TVAL, "s0")
    a.sd("t0", 16, "s2")
    a.ld("t0", _ST_TVAL2, "s0")
    a.sd("t0", 24, "s2")
    a.addi("s1", "s1", _CASE_SIZE)
    a.sd("s1", _ST_CASE, "s0")
    a.addi("s2", "s2", _RESULT_SIZE)
    a.sd("s2", _ST_RESULT, "s0")
    a.j("next_case")

    # -- output: header, results, trailer, byte by byte to the UART -------------
    a.label("output")
    a.ld("s1", _ST_OUT_START, "s0")
    a.ld("s2", _ST_OUT_END, "s0")
    a.li("s3", _UART)
    a.label("send")
    a.bgeu("s1", "s2", "finish")
    a.label("wait_thre")
    a.lbu("t0", _UART_LSR, "s3")
    a.andi("t0", "t0", 0x20)
    a.beqz("t0", "wait_thre")
    a.lbu("t0", 0, "s1")
    a.sb("t0", 0, "s3")
    a.addi("s1", "s1", 1)
    a.j("send")
    a.label("finish")
    a.fence()
    a.li("t0", _FINISHER)
    a.li("t1", _FINISHER_PASS)
    a.sw("t1", 0, "t0")
    a.j("finish")

    # -- trap handler (mtvec direct mode needs 4-byte alignment) ------------------
    # Entered with MPP = the trapping mode (M for MPRV loads/stores, whose
    # MPRV is still set; MPV=1 after a trap from VS/VU).  Clears MPRV, MPV
    # and GVA and sets MPP=M so mret resumes the stub in M-mode, physically
    # (QEMU 7.2's mret enters V=1 from MPV even when MPP=M).  MPV and GVA are
    # read-only zero without H, so clearing them there is harmless.  Clobbers
    # t5/t6 only.
    a.align(4)
    a.label("trap")
    a.csrr("t6", "mscratch")
    a.li("t5", _MSTATUS_MPRV | _MSTATUS_MPV | _MSTATUS_GVA)
    a.csrc("mstatus", "t5")
    a.li("t5", _MSTATUS_MPP)  # MPP = M: mret returns to the stub
    a.csrs("mstatus", "t5")
    a.csrr("t5", "mcause")
    a.sd("t5", _ST_CAUSE, "t6")
    a.csrr("t5", "mepc")
    a.sd("t5", _ST_EPC, "t6")
    a.csrr("t5", "mtval")
    a.sd("t5", _ST_TVAL, "t6")
    a.ld("t5", _ST_HYP, "t6")
    a.beqz("t5", "trap_return")
    a.csrr("t5", "mtval2")
    a.sd("t5", _ST_TVAL2, "t6")
    a.label("trap_return")
    a.ld("t5", _ST_RESUME, "t6")
    a.csrw("mepc", "t5")
    a.mret()

    a.align(8)
    a.label("state")
    return a


_STUB_CODE: Final = _stub_code()
_CODE_SIZE: Final = _STUB_CODE.address_of("state")


def _stub_size(n_cases: int) -> int:
    return _CODE_SIZE + _STATE_SIZE + n_cases * _CASE_SIZE + _HEADER_SIZE + n_cases * _RESULT_SIZE + _TRAILER_SIZE


def _case_record(case: ProbeCase) -> tuple[int, int, int, int, int]:
    """Return (va, mstatus bits to set, access kind, vsstatus bits, hstatus bits) for one case, validating
    it."""
    if case.access not in _ACCESS:
        raise ValueError(f"access must be one of {sorted(_ACCESS)}, not {case.access!r}")
    if case.privilege not in _PRIVILEGE:
        raise ValueError(f"privilege must be one of {sorted(_PRIVILEGE)}, not {case.privilege!r}")
    if not 0 <= case.va < 2**64 or case.va % 8:
        raise ValueError(f"va {case.va:#x} must be an 8-byte aligned u64")
    kind = _ACCESS[case.access]
    fetch = kind == _ACCESS["execute"]
    bits = _MSTATUS_SUM if case.sum else 0
    bits |= _MSTATUS_MXR if case.mxr else 0
    if not case.virt:
        bits |= _PRIVILEGE[case.privilege] << _MSTATUS_MPP_SHIFT
        return case.va, bits | (0 if fetch else _MSTATUS_MPRV), kind, 0, 0
    vs_bits = (_MSTATUS_SUM if case.vs_sum else 0) | (_MSTATUS_MXR if case.vs_mxr else 0)
    if fetch:                                   # mret into VS/VU-mode
        bits |= _PRIVILEGE[case.privilege] << _MSTATUS_MPP_SHIFT | _MSTATUS_MPV
    spvp = _HSTATUS_SPVP if case.privilege == "supervisor" else 0   # HLV/HSV as VS or VU
    return case.va, bits, kind | _VIRT, vs_bits, spvp


def build_stub(stub_base: int, satp: int, cases: Sequence[ProbeCase], hgatp: int | None = None,
               vsatp: int = 0) -> bytes:
    """Return the stub image (code, state block, cases, output area) for ``stub_base``; ``hgatp`` (with
    ``vsatp``) turns on the hypervisor set-up, which cases with ``virt`` need."""
    for name, value in (("satp", satp), ("hgatp", hgatp or 0), ("vsatp", vsatp)):
        if not 0 <= value < 2**64:
            raise ValueError(f"{name} {value:#x} is not a u64")
    if hgatp is None and any(c.virt for c in cases):
        raise ValueError("cases with virt=True need hgatp (and vsatp)")
    n = len(cases)
    state = stub_base + _CODE_SIZE
    case_table = state + _STATE_SIZE
    out_start = case_table + n * _CASE_SIZE
    results = out_start + _HEADER_SIZE
    out_end = results + n * _RESULT_SIZE + _TRAILER_SIZE
    blob = bytearray(_STUB_CODE.assemble())
    blob += struct.pack("<14Q", _NONE, 0, 0, 0, case_table, out_start, results, out_start, out_end, satp, 0,
                        hgatp is not None, hgatp or 0, vsatp)
    for case in cases:
        blob += struct.pack("<5Q", *_case_record(case))
    blob += struct.pack("<4Q", _HEADER_MAGIC, 0, 0, n)
    blob += bytes(n * _RESULT_SIZE)
    blob += struct.pack("<Q", _TRAILER_MAGIC)
    assert len(blob) == _stub_size(n)
    return bytes(blob)


def plan_layout(image_size: int, n_cases: int) -> QemuLayout:
    """Choose RAM size and stub address for an image and a number of cases.

    The image is rounded up to 2 MiB and the stub region follows it, also
    rounded to 2 MiB.  QEMU 7.2 ``virt`` loads its FDT 2 MiB-aligned below
    ``min(RAM end, 3 GiB)``: with RAM ending at or below 3 GiB that is the top
    2 MiB, left spare here; past 3 GiB it is [3 GiB - 2 MiB, 3 GiB), which the
    stub then skips over (an image reaching into it is rejected).
    """
    if image_size < 0 or n_cases < 0:
        raise ValueError("image_size and n_cases must be non-negative")
    image_end = RAM_BASE + _round_up(max(image_size, 1), _ALIGN)
    stub_len = _round_up(_stub_size(n_cases), _ALIGN)
    stub_base = image_end
    if stub_base + stub_len + _FDT_SLOT <= _FDT_CAP:
        ram_end = stub_base + stub_len + _FDT_SLOT
    else:
        if image_end > _FDT_CAP - _FDT_SLOT:
            raise ValueError(f"image of {image_size:#x} bytes reaches QEMU's FDT at {_FDT_CAP - _FDT_SLOT:#x}")
        stub_base = max(stub_base, _FDT_CAP)
        ram_end = stub_base + stub_len
    return QemuLayout(ram_size=ram_end - RAM_BASE, stub_base=stub_base)


# ---------------------------------------------------------------------------
# Running QEMU
# ---------------------------------------------------------------------------


def _tail(text: bytes, limit: int = 2000) -> str:
    return text[-limit:].decode("utf-8", "replace").strip()


def _parse_output(raw: bytes, satp: int, hgatp: int | None, n: int, stderr: bytes) -> list[ProbeResult]:
    expected = _HEADER_SIZE + n * _RESULT_SIZE + _TRAILER_SIZE
    if len(raw) != expected:
        raise QemuFailed(
            f"stub output truncated or malformed: got {len(raw)} bytes, expected "
            f"{expected}; QEMU stderr: {_tail(stderr)!r}"
        )
    magic, satp_back, hgatp_back, count = struct.unpack_from("<4Q", raw, 0)
    (trailer,) = struct.unpack_from("<Q", raw, expected - _TRAILER_SIZE)
    if magic != _HEADER_MAGIC or trailer != _TRAILER_MAGIC or count != n:
        raise QemuFailed("stub output has a bad header or trailer")
    if satp_back != satp:
        raise QemuFailed(
            f"the hart did not accept satp={satp:#x} (read back {satp_back:#x}): "
            "translation mode or ASID width not supported by this -cpu"
        )
    if hgatp is not None and hgatp_back != hgatp:
        raise QemuFailed(f"the hart did not accept hgatp={hgatp:#x} (read back {hgatp_back:#x})")
    results = []
    for i in range(n):
        cause, value, tval, tval2 = struct.unpack_from("<4Q", raw, _HEADER_SIZE + i * _RESULT_SIZE)
        results.append(ProbeResult(None if cause == _NONE else cause, value, tval, tval2))
    return results


def qemu_command(qemu: str, layout: QemuLayout, cpu: str, workdir: str) -> list[str]:
    """Return the QEMU command line for a run whose files are in ``workdir``."""
    return [
        qemu,
        "-M",
        "virt",
        "-bios",
        "none",
        "-display",
        "none",
        "-monitor",
        "none",
        "-parallel",
        "none",
        "-m",
        f"{layout.ram_size // _MIB}M",
        "-smp",
        "1",
        "-cpu",
        cpu,
        "-chardev",
        f"file,id=c0,path={os.path.join(workdir, 'out.bin')}",
        "-serial",
        "chardev:c0",
        "-device",
        f"loader,file={os.path.join(workdir, 'image.bin')},addr={RAM_BASE:#x},force-raw=on",
        "-device",
        f"loader,file={os.path.join(workdir, 'stub.bin')},addr={layout.stub_base:#x},force-raw=on,cpu-num=0",
    ]


def run_probes(
    image: bytes,
    satp: int,
    cases: Sequence[ProbeCase],
    *,
    hgatp: int | None = None,
    vsatp: int = 0,
    cpu: str = "rv64",
    timeout: float = 120.0,
    qemu: str | None = None,
) -> list[ProbeResult]:
    """Run every case through QEMU's MMU and return one result per case, in order.

    ``image`` is placed at :data:`RAM_BASE`; ``satp`` is written as is
    (MODE/ASID/PPN, Privileged spec Section 4.1.11).  With ``hgatp`` (on a
    ``-cpu`` with ``h=true``), hgatp and ``vsatp`` are written too and cases
    may have ``virt``; the HS ``satp`` should then be non-Bare (QEMU 7.2
    reports VS-stage faults of HLV/HSV as access faults under a Bare satp:
    shared/qemu-7.2-notes.md item 10).  hgatp/vsatp are not WARL-checked by
    QEMU 7.2 (item 19): give only modes the CPU implements.  Write probes store back
    the value they loaded, so data is unchanged, but QEMU may set A/D bits in
    the image's PTEs as a side effect; later cases see those updates.

    Raises :class:`QemuUnavailable` when no QEMU is found and
    :class:`QemuFailed` when it exits badly, times out or its output is short.
    """
    exe = qemu if qemu is not None else find_qemu()
    if exe is None:
        raise QemuUnavailable(f"{QEMU_BINARY} not found on PATH")
    layout = plan_layout(len(image), len(cases))
    stub = build_stub(layout.stub_base, satp, cases, hgatp, vsatp)
    with tempfile.TemporaryDirectory(prefix="pagetable-qemu-") as workdir:
        with open(os.path.join(workdir, "image.bin"), "wb") as f:
            f.write(image)
        with open(os.path.join(workdir, "stub.bin"), "wb") as f:
            f.write(stub)
        cmd = qemu_command(exe, layout, cpu, workdir)
        try:
            proc = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                cwd=workdir,
                check=False,
            )
        except FileNotFoundError as exc:
            raise QemuUnavailable(f"cannot run {exe}: {exc}") from exc
        except subprocess.TimeoutExpired as exc:
            raise QemuFailed(f"QEMU timed out after {timeout} s; stderr: {_tail(exc.stderr or b'')!r}") from exc
        if proc.returncode != 0:
            raise QemuFailed(f"QEMU exited with status {proc.returncode}; stderr: {_tail(proc.stderr)!r}")
        try:
            with open(os.path.join(workdir, "out.bin"), "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raw = b""
        return _parse_output(raw, satp, hgatp, len(cases), proc.stderr)
