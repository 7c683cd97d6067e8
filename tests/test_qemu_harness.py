"""Tests of the QEMU RISC-V probe harness and its stub (pagetable/vectors/riscv/stub.S).

A tiny Sv39 table is built by hand (RISC-V Privileged spec 20211203,
Section 4.4 "Sv39", 4.3.1 PTE format, 4.3.2 translation algorithm) and QEMU's
answers are checked exactly against what the spec says (Section 4.3.1 for
U/SUM/MXR, Table 3.6 for exception codes, Section 3.7 for access faults).
The tests that need ``qemu-system-riscv64`` or the binutils that assemble the
stub (``binutils-riscv64-linux-gnu``) skip without them, or fail when ``CI=true``.
"""

from __future__ import annotations

import stat
from array import array
from pathlib import Path

import pytest

from pagetable.vectors import qemu as runner
from pagetable.vectors.riscv import qemu as q
from pagetable.vectors.riscv.qemu import ProbeCase, ProbeResult

from .conftest import require_qemu, require_toolchain

# PTE bits (Privileged spec, Sections 4.3.1 and 4.4.1).
V, R, W, X, U, G, A, D = 1, 2, 4, 8, 16, 32, 64, 128

RAM_BASE = q.RAM_BASE
ROOT, L1, L0 = RAM_BASE, RAM_BASE + 0x1000, RAM_BASE + 0x2000
RAM_SIZE = 4 << 20
BASE_VA = 0x4000_0000  # root[1] -> L1; L1[0] -> L0; L0[i] maps BASE_VA + i*4K
OUTSIDE_RAM = 0x100_0000_0000
LOOP_FRAME = RAM_BASE + 0xC000  # holds "jal zero, 0": executing it never traps
SATP = (8 << 60) | (ROOT >> 12)  # Sv39, ASID 0


def pte(pa: int, flags: int) -> int:
    """A PTE: PPN = pa >> 12 in bits 53:10, flags in bits 7:0."""
    return (pa >> 12) << 10 | flags


def tag(pa: int) -> int:
    """The u64 each data frame holds at physical address ``pa``."""
    return pa << 16


def va(page: int, offset: int = 8) -> int:
    """Virtual address ``offset`` into L0 slot ``page``."""
    return BASE_VA + page * 0x1000 + offset


# L0 slot -> (frame, flags); the frames are data pages of the image.
LEAVES: dict[int, tuple[int, int]] = {
    0: (RAM_BASE + 0x3000, V | R | A | D),  # read-only
    1: (RAM_BASE + 0x4000, V | R | W | A | D),  # read-write
    2: (RAM_BASE + 0x5000, V | R | X | A | D),  # read-execute
    3: (RAM_BASE + 0x6000, V | R | W | U | A | D),  # user read-write
    4: (RAM_BASE + 0x7000, V | W | A | D),  # W without R: reserved
    5: (RAM_BASE + 0xB000, R | W | X | A | D),  # V=0
    6: (RAM_BASE + 0x8000, V | X | A | D),  # execute-only
    7: (OUTSIDE_RAM, V | R | W | X | A | D),  # frame outside RAM
    8: (RAM_BASE + 0x9000, V | R | X | U | A | D),  # user read-execute
    9: (RAM_BASE + 0xA000, V | R | W),  # A=D=0
    10: (L0, V | R | A | D),  # the L0 table itself
    11: (LOOP_FRAME, V | R | X | A | D),  # an endless loop
}


def build_image() -> bytes:
    """Root/L1/L0 tables at RAM_BASE, then 4 KiB frames tagged PA << 16."""
    words = array("Q", (tag(RAM_BASE + 8 * i) for i in range(RAM_SIZE // 8)))
    for i in range(3 * 512):  # the three table pages
        words[i] = 0

    def put(table: int, index: int, value: int) -> None:
        words[(table - RAM_BASE) // 8 + index] = value

    put(ROOT, 1, pte(L1, V))
    put(L1, 0, pte(L0, V))
    put(L1, 1, pte(RAM_BASE + 0x20_0000, V | R | W | A | D))  # 2 MiB superpage
    put(L1, 2, pte(RAM_BASE + 0x1000, V | R | A | D))  # misaligned superpage
    for slot, (frame, flags) in LEAVES.items():
        put(L0, slot, pte(frame, flags))
    words[(LOOP_FRAME - RAM_BASE) // 8] = 0x0000_006F  # jal zero, 0
    return words.tobytes()


def ok(value: int) -> ProbeResult:
    """An access that succeeded with ``value``."""
    return ProbeResult(None, value, 0)


def fault(cause: int, value: int, tval: int) -> ProbeResult:
    """An access that trapped."""
    return ProbeResult(cause, value, tval)


S, USER = "supervisor", "user"

# (id, case, expected) in the order they run: the order matters for the
# "after_*" cases (state must not leak from one case to the next) and the
# A/D cases (QEMU updates the PTE in memory).
EXPECTED: list[tuple[str, ProbeCase, ProbeResult]] = [
    ("s_read_ro", ProbeCase(va(0, 0x10), "read", S), ok(tag(RAM_BASE + 0x3010))),
    ("s_write_ro", ProbeCase(va(0, 0x10), "write", S), fault(15, tag(RAM_BASE + 0x3010), va(0, 0x10))),
    ("s_exec_ro", ProbeCase(va(0, 0x10), "execute", S), fault(12, va(0, 0x10), va(0, 0x10))),
    ("s_read_rw", ProbeCase(va(1, 0xFF8), "read", S), ok(tag(RAM_BASE + 0x4FF8))),
    ("s_write_rw", ProbeCase(va(1, 0xFF8), "write", S), ok(tag(RAM_BASE + 0x4FF8))),
    ("s_read_rx", ProbeCase(va(2, 0x40), "read", S), ok(tag(RAM_BASE + 0x5040))),
    ("s_exec_rx", ProbeCase(va(2, 0x40), "execute", S), ok(va(2, 0x40))),
    ("s_write_rx", ProbeCase(va(2, 0x40), "write", S), fault(15, tag(RAM_BASE + 0x5040), va(2, 0x40))),
    ("u_read_s_page", ProbeCase(va(1), "read", USER), fault(13, 0, va(1))),
    ("u_write_s_page", ProbeCase(va(1), "write", USER), fault(15, 0, va(1))),
    ("u_exec_s_page", ProbeCase(va(2), "execute", USER), fault(12, va(2), va(2))),
    ("u_read_u_page", ProbeCase(va(3), "read", USER), ok(tag(RAM_BASE + 0x6008))),
    ("u_write_u_page", ProbeCase(va(3), "write", USER), ok(tag(RAM_BASE + 0x6008))),
    ("s_read_u_page", ProbeCase(va(3), "read", S), fault(13, 0, va(3))),
    ("s_write_u_page", ProbeCase(va(3), "write", S), fault(15, 0, va(3))),
    ("s_read_u_page_sum", ProbeCase(va(3), "read", S, sum=True), ok(tag(RAM_BASE + 0x6008))),
    ("s_write_u_page_sum", ProbeCase(va(3), "write", S, sum=True), ok(tag(RAM_BASE + 0x6008))),
    ("u_exec_u_page", ProbeCase(va(8), "execute", USER), ok(va(8))),
    ("s_exec_u_page_sum", ProbeCase(va(8), "execute", S, sum=True), fault(12, va(8), va(8))),
    ("s_read_w_only", ProbeCase(va(4), "read", S), fault(13, 0, va(4))),
    ("s_write_w_only", ProbeCase(va(4), "write", S), fault(15, 0, va(4))),
    ("s_read_invalid", ProbeCase(va(5), "read", S), fault(13, 0, va(5))),
    ("s_write_invalid", ProbeCase(va(5), "write", S), fault(15, 0, va(5))),
    ("s_exec_invalid", ProbeCase(va(5), "execute", S), fault(12, va(5), va(5))),
    ("s_read_x_only", ProbeCase(va(6), "read", S), fault(13, 0, va(6))),
    ("s_read_x_only_mxr", ProbeCase(va(6), "read", S, mxr=True), ok(tag(RAM_BASE + 0x8008))),
    ("s_write_x_only_mxr", ProbeCase(va(6), "write", S, mxr=True), fault(15, tag(RAM_BASE + 0x8008), va(6))),
    ("u_read_x_only_mxr", ProbeCase(va(6), "read", USER, mxr=True), fault(13, 0, va(6))),
    ("s_exec_x_only", ProbeCase(va(6), "execute", S), ok(va(6))),
    # An execute probe with SUM and MXR set must not leave them set.
    ("exec_with_sum_mxr", ProbeCase(va(0), "execute", USER, sum=True, mxr=True), fault(12, va(0), va(0))),
    ("after_s_read_x_only", ProbeCase(va(6), "read", S), fault(13, 0, va(6))),
    ("exec_with_sum_mxr_2", ProbeCase(va(2), "execute", S, sum=True, mxr=True), ok(va(2))),
    ("after_s_read_u_page", ProbeCase(va(3), "read", S), fault(13, 0, va(3))),
    ("s_read_outside_ram", ProbeCase(va(7), "read", S), fault(5, 0, va(7))),
    ("s_write_outside_ram", ProbeCase(va(7), "write", S), fault(7, 0, va(7))),
    ("s_exec_outside_ram", ProbeCase(va(7), "execute", S), fault(1, va(7), va(7))),
    ("s_read_superpage", ProbeCase(BASE_VA + 0x21_2348, "read", S), ok(tag(RAM_BASE + 0x21_2348))),
    ("s_write_superpage", ProbeCase(BASE_VA + 0x3F_FFF8, "write", S), ok(tag(RAM_BASE + 0x3F_FFF8))),
    ("s_read_misaligned_superpage", ProbeCase(BASE_VA + 0x40_0008, "read", S), fault(13, 0, BASE_VA + 0x40_0008)),
    ("s_read_unmapped", ProbeCase(0x8000_0000, "read", S), fault(13, 0, 0x8000_0000)),
    ("s_exec_unmapped", ProbeCase(0x8000_0000, "execute", S), fault(12, 0x8000_0000, 0x8000_0000)),
    ("s_read_non_canonical", ProbeCase(0x80_0000_0000, "read", S), fault(13, 0, 0x80_0000_0000)),
    ("s_read_l0_empty_slot", ProbeCase(va(12), "read", S), fault(13, 0, va(12))),
    # QEMU 7.2 updates A and D in the PTE itself (no page fault on A=0/D=0).
    ("pte9_before", ProbeCase(va(10, 9 * 8), "read", S), ok(pte(RAM_BASE + 0xA000, V | R | W))),
    ("s_read_no_ad", ProbeCase(va(9), "read", S), ok(tag(RAM_BASE + 0xA008))),
    ("pte9_after_read", ProbeCase(va(10, 9 * 8), "read", S), ok(pte(RAM_BASE + 0xA000, V | R | W | A))),
    ("s_write_no_d", ProbeCase(va(9), "write", S), ok(tag(RAM_BASE + 0xA008))),
    ("pte9_after_write", ProbeCase(va(10, 9 * 8), "read", S), ok(pte(RAM_BASE + 0xA000, V | R | W | A | D))),
]


@pytest.fixture(scope="module")
def qemu_results() -> dict[str, ProbeResult]:
    """Run every EXPECTED case in one QEMU run; map id -> result."""
    exe = require_qemu()
    cases = [case for _, case, _ in EXPECTED]
    results = q.run_probes(build_image(), SATP, cases, qemu=exe, timeout=60)
    assert len(results) == len(cases)
    return {name: result for (name, _, _), result in zip(EXPECTED, results, strict=True)}


@pytest.mark.parametrize(("name", "expected"), [(n, e) for n, _, e in EXPECTED], ids=[n for n, _, _ in EXPECTED])
def test_sv39_probe(qemu_results: dict[str, ProbeResult], name: str, expected: ProbeResult) -> None:
    assert qemu_results[name] == expected


def test_probe_ids_unique() -> None:
    assert len({n for n, _, _ in EXPECTED}) == len(EXPECTED)


def test_no_cases() -> None:
    exe = require_qemu()
    assert q.run_probes(build_image(), SATP, [], qemu=exe) == []


def test_unsupported_satp_mode_fails() -> None:
    exe = require_qemu()
    bad_satp = (11 << 60) | (ROOT >> 12)  # MODE 11 is reserved
    with pytest.raises(q.QemuFailed, match="did not accept satp"):
        q.run_probes(build_image(), bad_satp, [ProbeCase(va(0), "read", S)], qemu=exe)


def test_timeout_raises() -> None:
    exe = require_qemu()
    with pytest.raises(q.QemuFailed, match="timed out"):
        q.run_probes(build_image(), SATP, [ProbeCase(va(11, 0), "execute", S)], qemu=exe, timeout=2)


# -- failure paths without QEMU ------------------------------------------------


def _fake_qemu(tmp_path: Path, script: str) -> str:
    path = tmp_path / "fake-qemu"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_missing_qemu_raises_unavailable(tmp_path: Path) -> None:
    with pytest.raises(q.QemuUnavailable):
        q.run_probes(b"\0" * 8, 0, [], qemu=str(tmp_path / "no-such-qemu"))


def test_find_qemu_none_without_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    assert q.find_qemu() is None


def test_bad_exit_status_raises(tmp_path: Path) -> None:
    require_toolchain()
    exe = _fake_qemu(tmp_path, "echo 'boom: bad machine' >&2\nexit 3\n")
    with pytest.raises(q.QemuFailed, match=r"status 3.*boom: bad machine"):
        q.run_probes(b"\0" * 8, 0, [ProbeCase(0, "read", S)], qemu=exe)


def test_no_output_raises(tmp_path: Path) -> None:
    require_toolchain()
    exe = _fake_qemu(tmp_path, "exit 0\n")
    with pytest.raises(q.QemuFailed, match="got 0 bytes, expected 80"):
        q.run_probes(b"\0" * 8, 0, [ProbeCase(0, "read", S)], qemu=exe)


@pytest.mark.parametrize(
    "case",
    [
        ProbeCase(4, "read", S),
        ProbeCase(0, "fetch", S),
        ProbeCase(0, "read", "machine"),
        ProbeCase(2**64, "read", S),
    ],
)
def test_invalid_case_rejected(case: ProbeCase) -> None:
    with pytest.raises(ValueError):
        q.build_stub(0x8040_0000, 0, [case])


# -- layout ------------------------------------------------------------------

MIB = 1 << 20


@pytest.mark.parametrize(
    ("image_size", "n_cases", "ram_size", "stub_base"),
    [
        (4 * MIB, 10, 8 * MIB, RAM_BASE + 4 * MIB),
        (1, 0, 6 * MIB, RAM_BASE + 2 * MIB),
        (4 * MIB + 1, 5000, 10 * MIB, RAM_BASE + 6 * MIB),
        (4 * MIB, 50_000, 10 * MIB, RAM_BASE + 4 * MIB),
        # RAM ending at 3 GiB: the FDT takes the top 2 MiB.
        (1024 * MIB - 4 * MIB, 10, 1024 * MIB, RAM_BASE + 1020 * MIB),
        # Past 3 GiB the FDT sits at [3 GiB - 2 MiB, 3 GiB): the stub skips it.
        (1024 * MIB - 2 * MIB, 10, 1026 * MIB, 0xC000_0000),
    ],
)
def test_plan_layout(image_size: int, n_cases: int, ram_size: int, stub_base: int) -> None:
    require_toolchain()
    assert q.plan_layout(image_size, n_cases) == q.QemuLayout(ram_size, stub_base)


def test_plan_layout_rejects_image_over_fdt() -> None:
    require_toolchain()
    with pytest.raises(ValueError, match="FDT"):
        q.plan_layout(1024 * MIB, 1)


# -- the assembled stub --------------------------------------------------------


def _words(code: bytes) -> list[int]:
    return [int.from_bytes(code[i : i + 4], "little") for i in range(0, len(code), 4)]


def test_stub_is_what_the_harness_expects() -> None:
    """The code ends at ``state``, 8-byte aligned (the state block's u64s follow it); ``trap`` is 4-byte
    aligned (mtvec direct mode); every instruction is 4 bytes (no compressed ones: low bits 11); the stub is
    assembled once per process."""
    require_toolchain()
    program = q.stub_program()
    code = program.code
    assert len(code) == program.symbols["state"]
    assert len(code) % 8 == 0
    assert program.symbols["trap"] % 4 == 0
    assert 0 < program.symbols["trap"] < len(code)
    assert all(word & 3 == 3 for word in _words(code))
    assert q.stub_program() is program


def test_stub_is_position_independent() -> None:
    """Linked elsewhere, the code is the same bytes: every address in it is pc-relative (lla = auipc+addi)."""
    require_toolchain()
    elsewhere = q.assemble_stub(0x8765_4000)
    assert elsewhere.code == q.stub_program().code
    assert elsewhere.symbols["state"] == 0x8765_4000 + len(elsewhere.code)


def test_missing_toolchain_raises_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    assert q.missing_toolchain() == [f"riscv64-linux-gnu-{tool}" for tool in ("as", "ld", "objcopy", "nm")]
    with pytest.raises(q.ToolchainUnavailable, match=r"riscv64-linux-gnu-as.*binutils-riscv64-linux-gnu"):
        q.assemble_stub()


def test_stub_source_needs_the_harness_symbols() -> None:
    """stub.S assembled without the harness's --defsym values stops with a message saying so."""
    require_toolchain()
    with pytest.raises(q.ToolchainFailed, match=r"(?s)needs the harness's --defsym"):
        runner.assemble(q.stub_source(), "stub.S", prefix=q.TOOLCHAIN_PREFIX, package=q.TOOLCHAIN_PACKAGE,
                        as_flags=("-march=rv64gc_zicsr_zifencei_h",))


def test_assembler_error_raises_failed() -> None:
    require_toolchain()
    with pytest.raises(q.ToolchainFailed, match=r"(?s)status 1.*bogus"):
        runner.assemble("\tbogus a0\n", "bad.S", prefix=q.TOOLCHAIN_PREFIX, package=q.TOOLCHAIN_PACKAGE)
