"""Ask QEMU how RISC-V virtual addresses translate.

A tiny bare-metal stub (``stub.S`` beside this module, assembled by GNU binutils: ``riscv64-linux-gnu-as``,
Debian package ``binutils-riscv64-linux-gnu``) runs in M-mode on ``qemu-system-riscv64 -M virt`` next to a
caller-supplied physical memory image holding page tables.  For each :class:`ProbeCase` it performs one
real S- or U-mode access through the MMU and records what the hart did.  The same stub, assembled with
XLEN=32, runs on ``qemu-system-riscv32`` (``xlen=32``: :mod:`pagetable.vectors.riscv.qemu32`, the Sv32
harness), with the same records (RV32 uses the low word of each u64 field).  This module plans the memory
layout, builds the stub's data, gives QEMU its command line and reads the result; assembling and running
are :mod:`pagetable.vectors.qemu`'s, which does nothing RISC-V specific.

Architecture followed (RISC-V Privileged spec, version 20211203; the stub's comments cite the sections
each instruction follows):

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
* Hypervisor extension (a case with ``virt=True``, on ``-cpu rv64,h=true`` or
  ``rv32,h=true``): loads and stores are HLV.D/HSV.D (RV32: HLV.W/HSV.W)
  from M-mode, translated through ``vsatp`` and ``hgatp`` as VS- or VU-mode
  by ``hstatus.SPVP``; fetches are ``mret`` with ``mstatus.MPV=1`` (RV32:
  ``mstatush.MPV``) into VS/VU-mode.  Traps report the
  guest-physical address in ``mtval2``.  QEMU 7.2 needs care here (docs/qemu.md,
  "How QEMU is asked"): its TLB for HLV/HSV ignores hstatus.SPVP, so the stub
  runs hfence.gvma after every hstatus change; with a Bare HS ``satp`` it
  reports VS-stage faults of HLV/HSV as access faults, so the HS ``satp``
  should be non-Bare; and its ``mret`` enters V=1 from MPV even when MPP=M,
  so the trap handler clears ``mstatus.MPV``.

QEMU ``virt`` machine facts relied on (checked against QEMU 7.2): RAM at
0x8000_0000, 16550 UART at 0x1000_0000 (byte registers, LSR bit 5 = THR
empty), SiFive test finisher at 0x10_0000 (write 0x5555 to power off with
exit status 0), the flattened device tree placed 2 MiB-aligned just below
``min(RAM end, 3 GiB)``, and the generic loader's ``cpu-num`` setting the
hart's reset PC to the address it loads the stub at.  The device addresses
are the stub's (``.equ`` in stub.S); the CSR bits it shares with this module
are :mod:`pagetable.arch.riscv_sv39.csr`'s, passed to the assembler.
"""

from __future__ import annotations

import functools
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ...arch.riscv_sv39 import csr
from ...arch.riscv_sv39.csr import CAUSE_ILLEGAL_INSTRUCTION
from .. import qemu as runner
from ..qemu import Program, QemuFailed, QemuUnavailable, Record, ToolchainFailed, ToolchainUnavailable, round_up, tail

__all__ = [
    "QEMU_BINARY",
    "QEMU_BINARY_RV32",
    "QEMU_PACKAGE",
    "RAM_BASE",
    "TOOLCHAIN_PACKAGE",
    "TOOLCHAIN_PREFIX",
    "XLENS",
    "ProbeCase",
    "ProbeResult",
    "QemuFailed",
    "QemuLayout",
    "QemuUnavailable",
    "ToolchainFailed",
    "ToolchainUnavailable",
    "assemble_stub",
    "build_stub",
    "find_qemu",
    "missing_toolchain",
    "plan_layout",
    "qemu_command",
    "run_probes",
    "stub_program",
    "stub_source",
]

RAM_BASE: Final = 0x8000_0000
QEMU_BINARY: Final = "qemu-system-riscv64"
QEMU_BINARY_RV32: Final = "qemu-system-riscv32"
QEMU_PACKAGE: Final = "qemu-system-misc"
TOOLCHAIN_PREFIX: Final = "riscv64-linux-gnu-"
TOOLCHAIN_PACKAGE: Final = "binutils-riscv64-linux-gnu"

XLENS: Final = (64, 32)
_QEMU_BINARIES: Final = {64: QEMU_BINARY, 32: QEMU_BINARY_RV32}

# The stub has no compressed instructions (.option norvc in stub.S); h: HLV/HSV, HFENCE.GVMA and the H CSRs.
# No linker relaxation: the code is linked at 0 and loaded anywhere,
# pc-relative throughout.  The RV64 binutils assemble and link RV32 with the ilp32 ABI and elf32lriscv.
_AS_FLAGS: Final[dict[int, tuple[str, ...]]] = {
    64: ("-march=rv64gc_zicsr_zifencei_h", "-mno-relax"),
    32: ("-march=rv32gc_zicsr_zifencei_h", "-mabi=ilp32", "-mno-relax"),
}
_LD_FLAGS: Final[dict[int, tuple[str, ...]]] = {64: ("--no-relax",), 32: ("--no-relax", "-m", "elf32lriscv")}

_MIB: Final = 1 << 20
_ALIGN: Final = 2 * _MIB  # granule of the layout (QEMU aligns the FDT to 2 MiB)
_FDT_SLOT: Final = 2 * _MIB  # room left for QEMU's FDT at the top of RAM
_FDT_CAP: Final = 3072 * _MIB  # QEMU 7.2 virt: FDT below min(RAM end, 3 GiB)

_PRIVILEGE: Final[dict[str, int]] = {"user": 0, "supervisor": 1}
_ACCESS: Final[dict[str, int]] = {"read": 0, "write": 1, "execute": 2}
_VIRT: Final = 4  # added to the access kind of a case with V=1

# The stub's data, u64 fields in the order they follow the code: the state block (addressed through
# mscratch), the case records, then what the stub sends: the header, one result record per case and the
# trailer.  The assembler gets each field's offset (ST_CAUSE, CASE_VA, RES_CAUSE, HDR_SATP, ...).
_STATE: Final = Record("ST", ("CAUSE", "EPC", "TVAL", "RESUME", "CASE", "CASE_END", "RESULT", "OUT_START",
                               "OUT_END", "SATP", "TVAL2", "HYP", "HGATP", "VSATP", "TINST"))
# va, mstatus bits, access kind, vsstatus/hstatus bits
_CASE: Final = Record("CASE", ("VA", "MSTATUS", "KIND", "VSSTATUS", "HSTATUS"))
# cause (all ones = none), value, mtval, mtval2, mtinst
_RESULT: Final = Record("RES", ("CAUSE", "VALUE", "TVAL", "TVAL2", "TINST"))
# magic, satp and hgatp read back, number of cases
_HEADER: Final = Record("HDR", ("MAGIC", "SATP", "HGATP", "COUNT"))
_STATE_SIZE: Final = _STATE.size
_CASE_SIZE: Final = _CASE.size
_RESULT_SIZE: Final = _RESULT.size
_HEADER_SIZE: Final = _HEADER.size
_TRAILER_SIZE: Final = 8
_HEADER_MAGIC: Final = 0x5052_4F42_4553_5632  # "PROBESV2"
_TRAILER_MAGIC: Final = 0x454E_445F_5052_4F42  # "END_PROB"

_IMAGE_FILE, _STUB_FILE, _SERIAL_FILE = "image.bin", "stub.bin", "out.bin"


def _no_trap(xlen: int) -> int:
    """The cause field of a result without a trap: XLEN ones (the RV32 stub writes the low word only)."""
    return (1 << xlen) - 1


@dataclass(frozen=True)
class ProbeCase:
    """One access to probe.

    ``va`` is an XLEN-aligned virtual address (8 bytes on RV64, 4 on RV32); ``access`` is ``"read"``,
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
    code (Privileged spec, Table 3.6).  ``value`` is the u64 (RV32: the u32)
    loaded at ``va`` for reads and writes (0 if the load faulted), and mepc
    for executes.
    ``tval`` is mtval of the trap (0 on success), ``tval2`` mtval2 (the
    guest-physical address >> 2 of a guest-page fault; 0 without H), ``tinst``
    mtinst (0 without H).
    """

    cause: int | None
    value: int
    tval: int
    tval2: int = 0
    tinst: int = 0


@dataclass(frozen=True)
class QemuLayout:
    """Guest physical memory plan: RAM size and where the stub is loaded."""

    ram_size: int
    stub_base: int


def find_qemu() -> str | None:
    """Return the path of ``qemu-system-riscv64`` on PATH, or ``None``."""
    return runner.find_qemu(QEMU_BINARY)


def missing_toolchain() -> list[str]:
    """The binutils programs the stub needs that are not on PATH (empty when all are there)."""
    return runner.missing_tools(TOOLCHAIN_PREFIX)


# ---------------------------------------------------------------------------
# The stub
# ---------------------------------------------------------------------------


def _check_xlen(xlen: int) -> None:
    if xlen not in XLENS:
        raise ValueError(f"xlen must be one of {XLENS}, not {xlen!r}")


def _defsyms(xlen: int) -> dict[str, int]:
    """Every number stub.S shares with this module, by the name it uses (MPV and GVA as RV64's mstatus bits,
    on RV32 as mstatush's)."""
    virt = {"MSTATUS_MPV": csr.MSTATUS_MPV, "MSTATUS_GVA": csr.MSTATUS_GVA} if xlen == 64 else \
        {"MSTATUSH_MPV": csr.MSTATUS_MPV >> csr.MSTATUSH_SHIFT, "MSTATUSH_GVA": csr.MSTATUS_GVA >> csr.MSTATUSH_SHIFT}
    return runner.defsyms(
        _STATE, _CASE, _RESULT, _HEADER,
        XLEN=xlen,
        STATE_SIZE=_STATE_SIZE,              # CASE_SIZE is the case record's own
        RESULT_SIZE=_RESULT_SIZE,
        ACCESS_READ=_ACCESS["read"],
        ACCESS_WRITE=_ACCESS["write"],
        NO_TRAP=-1,  # li loads it sign-extended: XLEN ones
        MSTATUS_MPP=csr.MSTATUS_MPP,
        MSTATUS_MPRV=csr.MSTATUS_MPRV,
        MSTATUS_SUM=csr.MSTATUS_SUM,
        MSTATUS_MXR=csr.MSTATUS_MXR,
        CAUSE_ILLEGAL_INSTRUCTION=CAUSE_ILLEGAL_INSTRUCTION,
        VIRT=_VIRT,
        HSTATUS_SPVP=csr.HSTATUS_SPVP,
        **virt,
    )


def stub_source() -> str:
    """The text of stub.S, read from the package."""
    return runner.package_text(__name__, "stub.S")


def assemble_stub(address: int = 0, xlen: int = 64) -> Program:
    """Assemble stub.S for ``xlen`` (64 or 32) with GNU binutils, linked at ``address`` (uncached:
    :func:`stub_program` is what the harness loads).  Raises :class:`ToolchainUnavailable`, naming the
    Debian package ``binutils-riscv64-linux-gnu``, when binutils are missing."""
    _check_xlen(xlen)
    return runner.assemble(stub_source(), "stub.S", prefix=TOOLCHAIN_PREFIX, package=TOOLCHAIN_PACKAGE,
                           as_flags=_AS_FLAGS[xlen], ld_flags=_LD_FLAGS[xlen], defsyms=_defsyms(xlen),
                           address=address)


@functools.cache
def stub_program(xlen: int = 64) -> Program:
    """The stub's code for ``xlen``, linked at 0 and assembled once per process and XLEN (on first use, not
    at import).

    The code ends at the 8-byte aligned symbol ``state``, where :func:`build_stub` appends the data; the
    trap handler ``trap`` is 4-byte aligned (mtvec direct mode).  Being position independent, the code runs
    wherever :func:`plan_layout` puts it.
    """
    program = assemble_stub(xlen=xlen)
    state, trap = program.symbols.get("state"), program.symbols.get("trap")
    if state is None or trap is None or state != len(program.code) or state % 8 or trap % 4:
        raise ToolchainFailed(f"the assembled stub is not what the harness expects: {len(program.code)} bytes, "
                              f"state at {state}, trap at {trap} (state must end the code, 8-byte aligned; "
                              "trap must be 4-byte aligned)")
    return program


def _stub_size(n_cases: int, xlen: int) -> int:
    return (len(stub_program(xlen).code) + _STATE_SIZE + n_cases * _CASE_SIZE + _HEADER_SIZE
            + n_cases * _RESULT_SIZE + _TRAILER_SIZE)


def _case_record(case: ProbeCase, xlen: int) -> dict[str, int]:
    """Return one case's record (va, mstatus bits to set, access kind, vsstatus bits, hstatus bits),
    validating it for ``xlen``: an XLEN-aligned va of XLEN bits.  The mstatus bits are RV64's: the RV32
    stub sets their high word (MPV) in mstatush."""
    if case.access not in _ACCESS:
        raise ValueError(f"access must be one of {sorted(_ACCESS)}, not {case.access!r}")
    if case.privilege not in _PRIVILEGE:
        raise ValueError(f"privilege must be one of {sorted(_PRIVILEGE)}, not {case.privilege!r}")
    if not 0 <= case.va < 2**xlen or case.va % (xlen // 8):
        raise ValueError(f"va {case.va:#x} must be a {xlen // 8}-byte aligned u{xlen}")
    kind = _ACCESS[case.access]
    fetch = kind == _ACCESS["execute"]
    bits = csr.MSTATUS_SUM if case.sum else 0
    bits |= csr.MSTATUS_MXR if case.mxr else 0
    if not case.virt:
        bits |= _PRIVILEGE[case.privilege] << csr.MSTATUS_MPP_SHIFT
        bits |= 0 if fetch else csr.MSTATUS_MPRV
        return {"VA": case.va, "MSTATUS": bits, "KIND": kind, "VSSTATUS": 0, "HSTATUS": 0}
    vs_bits = (csr.MSTATUS_SUM if case.vs_sum else 0) | (csr.MSTATUS_MXR if case.vs_mxr else 0)
    if fetch:                                   # mret into VS/VU-mode
        bits |= _PRIVILEGE[case.privilege] << csr.MSTATUS_MPP_SHIFT | csr.MSTATUS_MPV
    spvp = csr.HSTATUS_SPVP if case.privilege == "supervisor" else 0   # HLV/HSV as VS or VU
    return {"VA": case.va, "MSTATUS": bits, "KIND": kind | _VIRT, "VSSTATUS": vs_bits, "HSTATUS": spvp}


def build_stub(stub_base: int, satp: int, cases: Sequence[ProbeCase], hgatp: int | None = None,
               vsatp: int = 0, *, xlen: int = 64) -> bytes:
    """Return the stub image (code, state block, cases, output area) for ``stub_base``; ``hgatp`` (with
    ``vsatp``) turns on the hypervisor set-up, which cases with ``virt`` need."""
    _check_xlen(xlen)
    for name, value in (("satp", satp), ("hgatp", hgatp or 0), ("vsatp", vsatp)):
        if not 0 <= value < 2**xlen:
            raise ValueError(f"{name} {value:#x} is not a u{xlen}")
    if hgatp is None and any(c.virt for c in cases):
        raise ValueError("cases with virt=True need hgatp (and vsatp)")
    records = [_case_record(case, xlen) for case in cases]
    n = len(cases)
    code = stub_program(xlen).code
    state = stub_base + len(code)
    case_table = state + _STATE_SIZE
    out_start = case_table + n * _CASE_SIZE
    results = out_start + _HEADER_SIZE
    out_end = results + n * _RESULT_SIZE + _TRAILER_SIZE
    blob = bytearray(code)
    blob += _STATE.pack({
        "CAUSE": _no_trap(xlen), "EPC": 0, "TVAL": 0, "RESUME": 0, "CASE": case_table, "CASE_END": out_start,
        "RESULT": results, "OUT_START": out_start, "OUT_END": out_end, "SATP": satp, "TVAL2": 0,
        "HYP": int(hgatp is not None), "HGATP": hgatp or 0, "VSATP": vsatp, "TINST": 0,
    })
    for record in records:
        blob += _CASE.pack(record)
    blob += _HEADER.pack({"MAGIC": _HEADER_MAGIC, "SATP": 0, "HGATP": 0, "COUNT": n})
    blob += bytes(n * _RESULT_SIZE)
    blob += struct.pack("<Q", _TRAILER_MAGIC)
    assert len(blob) == _stub_size(n, xlen)
    return bytes(blob)


def plan_layout(image_size: int, n_cases: int, xlen: int = 64) -> QemuLayout:
    """Choose RAM size and stub address for an image and a number of cases.

    The image is rounded up to 2 MiB and the stub region follows it, also
    rounded to 2 MiB.  QEMU 7.2 ``virt`` loads its FDT 2 MiB-aligned below
    ``min(RAM end, 3 GiB)``: with RAM ending at or below 3 GiB that is the top
    2 MiB, left spare here; past 3 GiB it is [3 GiB - 2 MiB, 3 GiB), which the
    stub then skips over (an image reaching into it is rejected).  An RV32 stub,
    running in M-mode with 32-bit addresses, must end below 4 GiB.
    """
    _check_xlen(xlen)
    if image_size < 0 or n_cases < 0:
        raise ValueError("image_size and n_cases must be non-negative")
    image_end = RAM_BASE + round_up(max(image_size, 1), _ALIGN)
    stub_len = round_up(_stub_size(n_cases, xlen), _ALIGN)
    stub_base = image_end
    if stub_base + stub_len + _FDT_SLOT <= _FDT_CAP:
        ram_end = stub_base + stub_len + _FDT_SLOT
    else:
        if image_end > _FDT_CAP - _FDT_SLOT:
            raise ValueError(f"image of {image_size:#x} bytes reaches QEMU's FDT at {_FDT_CAP - _FDT_SLOT:#x}")
        stub_base = max(stub_base, _FDT_CAP)
        ram_end = stub_base + stub_len
    if stub_base + stub_len > 2**xlen:
        raise ValueError(f"the stub for {n_cases} cases would end at {stub_base + stub_len:#x}, beyond the "
                         f"2**{xlen} bytes an RV{xlen} hart addresses in M-mode")
    return QemuLayout(ram_size=ram_end - RAM_BASE, stub_base=stub_base)


# ---------------------------------------------------------------------------
# Running QEMU
# ---------------------------------------------------------------------------


def _parse_output(raw: bytes, satp: int, hgatp: int | None, n: int, stderr: bytes, xlen: int) -> list[ProbeResult]:
    expected = _HEADER_SIZE + n * _RESULT_SIZE + _TRAILER_SIZE
    if len(raw) != expected:
        raise QemuFailed(
            f"stub output truncated or malformed: got {len(raw)} bytes, expected "
            f"{expected}; QEMU stderr: {tail(stderr)!r}"
        )
    header = _HEADER.unpack(raw, 0)
    (trailer,) = struct.unpack_from("<Q", raw, expected - _TRAILER_SIZE)
    if header["MAGIC"] != _HEADER_MAGIC or trailer != _TRAILER_MAGIC or header["COUNT"] != n:
        raise QemuFailed("stub output has a bad header or trailer")
    if header["SATP"] != satp:
        raise QemuFailed(
            f"the hart did not accept satp={satp:#x} (read back {header['SATP']:#x}): "
            "translation mode or ASID width not supported by this -cpu"
        )
    if hgatp is not None and header["HGATP"] != hgatp:
        raise QemuFailed(f"the hart did not accept hgatp={hgatp:#x} (read back {header['HGATP']:#x})")
    results = []
    for i in range(n):
        r = _RESULT.unpack(raw, _HEADER_SIZE + i * _RESULT_SIZE)
        cause = None if r["CAUSE"] == _no_trap(xlen) else r["CAUSE"]
        results.append(ProbeResult(cause, r["VALUE"], r["TVAL"], r["TVAL2"], r["TINST"]))
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
        f"file,id=c0,path={os.path.join(workdir, _SERIAL_FILE)}",
        "-serial",
        "chardev:c0",
        "-device",
        f"loader,file={os.path.join(workdir, _IMAGE_FILE)},addr={RAM_BASE:#x},force-raw=on",
        "-device",
        f"loader,file={os.path.join(workdir, _STUB_FILE)},addr={layout.stub_base:#x},force-raw=on,cpu-num=0",
    ]


def run_probes(
    image: bytes,
    satp: int,
    cases: Sequence[ProbeCase],
    *,
    hgatp: int | None = None,
    vsatp: int = 0,
    cpu: str | None = None,
    timeout: float = 120.0,
    qemu: str | None = None,
    xlen: int = 64,
) -> list[ProbeResult]:
    """Run every case through QEMU's MMU and return one result per case, in order.

    ``xlen`` 64 runs :data:`QEMU_BINARY` (``-cpu rv64`` unless ``cpu`` says
    otherwise), 32 :data:`QEMU_BINARY_RV32` (``-cpu rv32``):
    :func:`pagetable.vectors.riscv.qemu32.run_probes_rv32`.

    ``image`` is placed at :data:`RAM_BASE`; ``satp`` is written as is
    (MODE/ASID/PPN, Privileged spec Section 4.1.11).  With ``hgatp`` (on a
    ``-cpu`` with ``h=true``), hgatp and ``vsatp`` are written too and cases
    may have ``virt``; the HS ``satp`` should then be non-Bare (QEMU 7.2
    reports VS-stage faults of HLV/HSV as access faults under a Bare satp:
    docs/qemu.md).  QEMU 7.2 keeps any MODE written to hgatp, reserved ones
    included (docs/qemu.md), so the hgatp read-back does not catch an
    unsupported mode, and vsatp is not read back: give only modes the CPU
    implements.  Write probes store back
    the value they loaded, so data is unchanged, but QEMU may set A/D bits in
    the image's PTEs as a side effect; later cases see those updates.

    Raises :class:`QemuUnavailable` when no QEMU is found,
    :class:`ToolchainUnavailable` when binutils are missing, and
    :class:`QemuFailed` when QEMU exits badly, times out or its output is short.
    """
    _check_xlen(xlen)
    exe = runner.require_qemu(_QEMU_BINARIES[xlen], QEMU_PACKAGE, qemu)
    layout = plan_layout(len(image), len(cases), xlen)
    stub = build_stub(layout.stub_base, satp, cases, hgatp, vsatp, xlen=xlen)
    hart = cpu or f"rv{xlen}"
    run = runner.run_qemu(lambda workdir: qemu_command(exe, layout, hart, workdir),
                          {_IMAGE_FILE: image, _STUB_FILE: stub}, _SERIAL_FILE, timeout=timeout)
    return _parse_output(run.serial, satp, hgatp, len(cases), run.stderr, xlen)
