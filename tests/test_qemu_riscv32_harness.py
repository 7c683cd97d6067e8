"""Tests of the QEMU RV32 (Sv32) probe harness (pagetable/vectors/riscv/qemu32.py, the XLEN=32 stub.S).

Sv32 tables are built by hand here, from the bit layout of RISC-V Privileged spec 20211203, Section 4.3
"Sv32: Page-Based 32-bit Virtual-Memory Systems": 4-byte PTEs with V R W X U G A D in bits 0-7, PPN[0] in
19:10 and PPN[1] in 31:20 (a 34-bit PA), VPN[1] = VA[31:22] and VPN[0] = VA[21:12], 4 MiB megapages at
level 1, and the RV32 satp (Section 4.1.11: MODE bit 31, ASID 30:22, PPN 21:0).  QEMU's answers are
checked exactly against what the spec says (Section 4.3.1 for U/SUM/MXR, Table 3.6 for exception codes),
except for the one QEMU 7.2 deviation named below.  The tests that need ``qemu-system-riscv32`` or the
binutils that assemble the stub (``binutils-riscv64-linux-gnu``) skip without them, or fail when ``CI=true``.
"""

from __future__ import annotations

import stat
import struct
from pathlib import Path

import pytest

from pagetable.vectors.riscv import qemu as rv
from pagetable.vectors.riscv import qemu32 as q
from pagetable.vectors.riscv.qemu import ProbeCase, ProbeResult

from .conftest import require_qemu_riscv32, require_toolchain

# PTE bits (Privileged spec, Section 4.3.1, Figure 4.18).
V, R, W, X, U, G, A, D = 1, 2, 4, 8, 16, 32, 64, 128

RAM_BASE = q.RAM_BASE
ROOT, L0 = RAM_BASE, RAM_BASE + 0x1000
MEGA_FRAME = RAM_BASE + 0x40_0000  # 4 MiB aligned
IMAGE_SIZE = 8 << 20
BASE_VA = 0x0040_0000  # VPN[1] = 1: root[1] -> L0; L0[i] maps BASE_VA + i * 4 KiB
MEGA_VA = 0x0080_0000  # root[2]: a 4 MiB megapage at MEGA_FRAME
MISALIGNED_VA = 0x00C0_0000  # root[3]: a megapage whose PPN[0] is not 0
HIGH_VA = 0x0100_0000  # root[4]: a megapage at PA 0x1_8040_0000 (PA bit 32 set), beyond RAM
HIGH_TABLE_VA = 0x0140_0000  # root[5]: a pointer to PA 0x1_8000_1000 (L0's PA with bit 32 set)
UNMAPPED_VA = 0xFFFF_F000  # root[1023] = 0
ASID = 5
SATP = 1 << 31 | ASID << 22 | ROOT >> 12  # MODE = Sv32


def pte(pa: int, flags: int) -> int:
    """An Sv32 PTE: PPN[1] = PA[33:22] in bits 31:20, PPN[0] = PA[21:12] in bits 19:10, flags in 7:0."""
    return (pa >> 22) << 20 | ((pa >> 12) & 0x3FF) << 10 | flags


def tag(pa: int) -> int:
    """The word the image holds at ``pa`` outside the tables: PA[26:2] over the reserved opcode 1101011."""
    return ((pa >> 2) << 7 | 0b1101011) & 0xFFFF_FFFF


def va(page: int, offset: int = 8) -> int:
    """Virtual address ``offset`` into L0 slot ``page``."""
    return BASE_VA + page * 0x1000 + offset


# L0 slot -> (frame, flags); the frames are data pages of the image.
LEAVES: dict[int, tuple[int, int]] = {
    0: (RAM_BASE + 0x2000, V | R | W | A | D),  # read-write
    1: (RAM_BASE + 0x3000, V | R | X | A | D),  # read-execute
    2: (RAM_BASE + 0x4000, R | W | X | A | D),  # V=0
    3: (RAM_BASE + 0x5000, V | W | A | D),  # W without R: reserved
    4: (RAM_BASE + 0x6000, V | R | W | U | A | D),  # user read-write
    5: (RAM_BASE + 0x7000, V | X | A | D),  # execute-only
    6: (RAM_BASE + 0x8000, V | R | W),  # A=D=0
    7: (L0, V | R | A | D),  # the L0 table itself
    8: (RAM_BASE + 0x9000 + (2 << 32), V | R | A | D),  # PA bit 33 set: beyond RAM
}


def build_image() -> bytes:
    """Root and L0 tables at RAM_BASE, every other word its tag."""
    image = bytearray(struct.pack(f"<{IMAGE_SIZE // 4}I", *(tag(RAM_BASE + 4 * i) for i in range(IMAGE_SIZE // 4))))
    image[: 2 * 0x1000] = bytes(2 * 0x1000)

    def put(table: int, index: int, value: int) -> None:
        struct.pack_into("<I", image, table - RAM_BASE + 4 * index, value)

    put(ROOT, 1, pte(L0, V))
    put(ROOT, 2, pte(MEGA_FRAME, V | R | W | X | A | D))
    put(ROOT, 3, pte(MEGA_FRAME + 0x1000, V | R | W | A | D))
    put(ROOT, 4, pte(MEGA_FRAME + (1 << 32), V | R | W | X | A | D))
    put(ROOT, 5, pte(L0 + (1 << 32), V))
    for slot, (frame, flags) in LEAVES.items():
        put(L0, slot, pte(frame, flags))
    return bytes(image)


def ok(value: int) -> ProbeResult:
    """An access that succeeded with ``value``."""
    return ProbeResult(None, value, 0)


def fault(cause: int, value: int, tval: int) -> ProbeResult:
    """An access that trapped."""
    return ProbeResult(cause, value, tval)


S, USER = "supervisor", "user"

# (id, case, expected) in the order they run: the order matters for the "after_*" cases (state must not
# leak from one case to the next) and the A/D cases (QEMU updates the PTE in memory).
EXPECTED: list[tuple[str, ProbeCase, ProbeResult]] = [
    ("s_read_rw", ProbeCase(va(0, 0x10), "read", S), ok(tag(RAM_BASE + 0x2010))),
    ("s_write_rw", ProbeCase(va(0, 0xFFC), "write", S), ok(tag(RAM_BASE + 0x2FFC))),
    ("s_exec_rw", ProbeCase(va(0, 0x10), "execute", S), fault(12, va(0, 0x10), va(0, 0x10))),
    ("s_exec_rx", ProbeCase(va(1, 0x44), "execute", S), ok(va(1, 0x44))),
    ("s_write_rx", ProbeCase(va(1, 0x44), "write", S), fault(15, tag(RAM_BASE + 0x3044), va(1, 0x44))),
    ("u_read_s_page", ProbeCase(va(0), "read", USER), fault(13, 0, va(0))),
    ("s_read_invalid", ProbeCase(va(2), "read", S), fault(13, 0, va(2))),
    ("s_write_invalid", ProbeCase(va(2), "write", S), fault(15, 0, va(2))),
    ("s_exec_invalid", ProbeCase(va(2), "execute", S), fault(12, va(2), va(2))),
    ("s_read_w_only", ProbeCase(va(3), "read", S), fault(13, 0, va(3))),
    ("s_write_w_only", ProbeCase(va(3), "write", S), fault(15, 0, va(3))),
    ("u_read_u_page", ProbeCase(va(4), "read", USER), ok(tag(RAM_BASE + 0x6008))),
    ("s_read_u_page", ProbeCase(va(4), "read", S), fault(13, 0, va(4))),
    ("s_write_u_page", ProbeCase(va(4), "write", S), fault(15, 0, va(4))),
    ("s_read_u_page_sum", ProbeCase(va(4), "read", S, sum=True), ok(tag(RAM_BASE + 0x6008))),
    ("s_write_u_page_sum", ProbeCase(va(4), "write", S, sum=True), ok(tag(RAM_BASE + 0x6008))),
    ("s_read_x_only", ProbeCase(va(5), "read", S), fault(13, 0, va(5))),
    ("s_read_x_only_mxr", ProbeCase(va(5), "read", S, mxr=True), ok(tag(RAM_BASE + 0x7008))),
    ("s_write_x_only_mxr", ProbeCase(va(5), "write", S, mxr=True), fault(15, tag(RAM_BASE + 0x7008), va(5))),
    ("u_read_x_only_mxr", ProbeCase(va(5), "read", USER, mxr=True), fault(13, 0, va(5))),
    ("s_exec_x_only", ProbeCase(va(5), "execute", S), ok(va(5))),
    # An execute probe with SUM and MXR set must not leave them set.
    ("exec_with_sum_mxr", ProbeCase(va(1), "execute", S, sum=True, mxr=True), ok(va(1))),
    ("after_s_read_x_only", ProbeCase(va(5), "read", S), fault(13, 0, va(5))),
    ("after_s_read_u_page", ProbeCase(va(4), "read", S), fault(13, 0, va(4))),
    ("s_read_megapage", ProbeCase(MEGA_VA + 0x12_3454, "read", S), ok(tag(MEGA_FRAME + 0x12_3454))),
    ("s_write_megapage", ProbeCase(MEGA_VA + 0x3F_FFFC, "write", S), ok(tag(MEGA_FRAME + 0x3F_FFFC))),
    ("s_exec_megapage", ProbeCase(MEGA_VA + 0x20_0000, "execute", S), ok(MEGA_VA + 0x20_0000)),
    ("s_read_misaligned_megapage", ProbeCase(MISALIGNED_VA + 8, "read", S), fault(13, 0, MISALIGNED_VA + 8)),
    # QEMU 7.2 drops PA bits 33:32 of a leaf's translation: the megapage at PA 0x1_8040_0000 reaches the
    # RAM at 0x8040_0000, the 4 KiB page at 0x2_8000_9000 the RAM at 0x8000_9000 (the spec: no memory
    # there, access faults 5, 7, 1).  A pointer's PA keeps them: the walk reads no memory at
    # 0x1_8000_1000 and QEMU 7.2 reports that as a page fault (as on RV64, docs/qemu.md; the spec: an
    # access fault).
    ("s_read_pa_bit32_page", ProbeCase(HIGH_VA + 0x12_3454, "read", S), ok(tag(MEGA_FRAME + 0x12_3454))),
    ("s_write_pa_bit32_page", ProbeCase(HIGH_VA + 0x3F_FFFC, "write", S), ok(tag(MEGA_FRAME + 0x3F_FFFC))),
    ("s_exec_pa_bit32_page", ProbeCase(HIGH_VA + 0x20_0000, "execute", S), ok(HIGH_VA + 0x20_0000)),
    ("s_read_pa_bit33_4k_page", ProbeCase(va(8, 0x10), "read", S), ok(tag(RAM_BASE + 0x9010))),
    ("s_read_pa_bit32_table", ProbeCase(HIGH_TABLE_VA + 8, "read", S), fault(13, 0, HIGH_TABLE_VA + 8)),
    ("s_read_unmapped", ProbeCase(UNMAPPED_VA, "read", S), fault(13, 0, UNMAPPED_VA)),
    ("s_exec_unmapped", ProbeCase(UNMAPPED_VA, "execute", S), fault(12, UNMAPPED_VA, UNMAPPED_VA)),
    ("s_read_l0_empty_slot", ProbeCase(va(9), "read", S), fault(13, 0, va(9))),
    # QEMU 7.2 updates A and D in the PTE itself (no page fault on A=0/D=0).
    ("pte6_before", ProbeCase(va(7, 6 * 4), "read", S), ok(pte(RAM_BASE + 0x8000, V | R | W))),
    ("s_read_no_ad", ProbeCase(va(6), "read", S), ok(tag(RAM_BASE + 0x8008))),
    ("pte6_after_read", ProbeCase(va(7, 6 * 4), "read", S), ok(pte(RAM_BASE + 0x8000, V | R | W | A))),
    ("s_write_no_d", ProbeCase(va(6), "write", S), ok(tag(RAM_BASE + 0x8008))),
    ("pte6_after_write", ProbeCase(va(7, 6 * 4), "read", S), ok(pte(RAM_BASE + 0x8000, V | R | W | A | D))),
]


@pytest.fixture(scope="module")
def qemu_results() -> dict[str, ProbeResult]:
    """Run every EXPECTED case in one QEMU run; map id -> result."""
    exe = require_qemu_riscv32()
    cases = [case for _, case, _ in EXPECTED]
    results = q.run_probes_rv32(build_image(), SATP, cases, qemu=exe, timeout=60)
    assert len(results) == len(cases)
    return {name: result for (name, _, _), result in zip(EXPECTED, results, strict=True)}


@pytest.mark.parametrize(("name", "expected"), [(n, e) for n, _, e in EXPECTED], ids=[n for n, _, _ in EXPECTED])
def test_sv32_probe(qemu_results: dict[str, ProbeResult], name: str, expected: ProbeResult) -> None:
    assert qemu_results[name] == expected


def test_probe_ids_unique() -> None:
    assert len({n for n, _, _ in EXPECTED}) == len(EXPECTED)


def test_pte_layout() -> None:
    """The hand-made PTE puts PA[33:22] in bits 31:20 and PA[21:12] in bits 19:10 (Figure 4.18)."""
    assert pte(0x3_FFC0_0000, V) == 0xFFF0_0001
    assert pte(0x0_003F_F000, R) == 0x000F_FC02


def test_tag_is_the_harness_tag() -> None:
    """The harness's documented tag is the scheme these tests build (PA[26:2] over opcode 1101011)."""
    for pa in (RAM_BASE, RAM_BASE + 0x2010, MEGA_FRAME + 0x3F_FFFC, 0x3_FFFF_FFFC):
        assert q.tag(pa) == tag(pa)
    assert q.tag(RAM_BASE + 4) == 0x0000_00EB
    assert q.tag(RAM_BASE + 0x800_0000) == q.tag(RAM_BASE)  # unique within 128 MiB only


def test_no_cases() -> None:
    exe = require_qemu_riscv32()
    assert q.run_probes_rv32(build_image(), SATP, [], qemu=exe) == []


def test_bare_satp() -> None:
    """satp MODE=0 (Bare): the VA is the PA (Section 4.1.11)."""
    exe = require_qemu_riscv32()
    results = q.run_probes_rv32(build_image(), 0, [ProbeCase(RAM_BASE + 0x2010, "read", S),
                                                   ProbeCase(RAM_BASE + 0x2010, "execute", USER)], qemu=exe)
    assert results == [ok(tag(RAM_BASE + 0x2010)), ok(RAM_BASE + 0x2010)]


# -- failure paths without QEMU ------------------------------------------------


def _fake_qemu(tmp_path: Path, script: str) -> str:
    path = tmp_path / "fake-qemu"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_missing_qemu_raises_unavailable(tmp_path: Path) -> None:
    with pytest.raises(q.QemuUnavailable, match=r"no-such-qemu not found .*\(Debian package qemu-system-misc\)"):
        q.run_probes_rv32(b"\0" * 8, 0, [], qemu=str(tmp_path / "no-such-qemu"))


def test_qemu_not_on_path_raises_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    assert q.find_qemu() is None
    with pytest.raises(q.QemuUnavailable, match=r"qemu-system-riscv32 not found on PATH \(Debian package "
                                                r"qemu-system-misc\)"):
        q.run_probes_rv32(b"\0" * 8, 0, [])


def test_no_output_raises(tmp_path: Path) -> None:
    """The RV32 run expects the same 8-byte records as RV64: a header of 32 bytes, 40 per case, 8 more."""
    require_toolchain()
    exe = _fake_qemu(tmp_path, "exit 0\n")
    with pytest.raises(q.QemuFailed, match="got 0 bytes, expected 80"):
        q.run_probes_rv32(b"\0" * 8, 0, [ProbeCase(0, "read", S)], qemu=exe)


def test_command_line_is_riscv32(tmp_path: Path) -> None:
    """The fake QEMU records its arguments: -cpu rv32, the image at RAM_BASE, the stub after it."""
    require_toolchain()
    args = tmp_path / "args"
    exe = _fake_qemu(tmp_path, f'echo "$@" > {args}\nexit 0\n')
    with pytest.raises(q.QemuFailed):
        q.run_probes_rv32(b"\0" * 8, SATP, [ProbeCase(0, "read", S)], qemu=exe)
    argv = args.read_text().split()
    assert argv[argv.index("-cpu") + 1] == "rv32"
    assert argv[argv.index("-m") + 1] == "6M"
    loaders = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-device"]
    assert [loader.split(",")[2:] for loader in loaders] == [
        ["addr=0x80000000", "force-raw=on"], ["addr=0x80200000", "force-raw=on", "cpu-num=0"]]


@pytest.mark.parametrize(
    "case",
    [
        ProbeCase(2, "read", S),  # not 4-byte aligned
        ProbeCase(2**32, "read", S),  # not a u32
        ProbeCase(0, "fetch", S),
        ProbeCase(0, "read", "machine"),
    ],
)
def test_invalid_case_rejected(case: ProbeCase) -> None:
    with pytest.raises(ValueError):
        rv.build_stub(0x8040_0000, 0, [case], xlen=32)


def test_4_byte_aligned_va_accepted() -> None:
    """RV32 probes words: a VA 4 mod 8 is fine (RV64 refuses it)."""
    require_toolchain()
    rv.build_stub(0x8040_0000, SATP, [ProbeCase(0xFFFF_FFFC, "read", S)], xlen=32)
    with pytest.raises(ValueError, match="8-byte aligned u64"):
        rv.build_stub(0x8040_0000, SATP, [ProbeCase(0xFFFF_FFFC, "read", S)])


@pytest.mark.parametrize(("satp", "hgatp"), [(2**32, None), (SATP, 2**32)])
def test_invalid_satp_or_hgatp_rejected(satp: int, hgatp: int | None) -> None:
    with pytest.raises(ValueError, match=r"is not a u32"):
        rv.build_stub(0x8040_0000, satp, [], hgatp, xlen=32)


def test_plan_layout_keeps_the_stub_below_4_gib() -> None:
    """An RV32 stub runs with 32-bit M-mode addresses: one that would end past 4 GiB is refused."""
    require_toolchain()
    assert rv.plan_layout(IMAGE_SIZE, 10, xlen=32) == rv.QemuLayout(12 << 20, RAM_BASE + IMAGE_SIZE)
    with pytest.raises(ValueError, match=r"would end at 0x.*beyond the 2\*\*32 bytes"):
        rv.plan_layout(1, 14_000_000, xlen=32)


def test_unknown_xlen_rejected() -> None:
    with pytest.raises(ValueError, match="xlen"):
        rv.plan_layout(1, 1, xlen=128)


# -- the assembled stub --------------------------------------------------------


def test_stub_is_what_the_harness_expects() -> None:
    """The RV32 stub ends at ``state``, 8-byte aligned; ``trap`` is 4-byte aligned; every instruction is 4
    bytes; it is assembled once per process, and differs from the RV64 stub (no ld/sd, HLV.W/HSV.W for
    HLV.D/HSV.D: the hypervisor extension's encodings, SYSTEM opcode, funct3 4, funct7 0110100/0110110 for
    the loads and 0110101/0110111 for the stores)."""
    require_toolchain()
    program = rv.stub_program(32)
    code = program.code
    assert len(code) == program.symbols["state"]
    assert len(code) % 8 == 0
    assert program.symbols["trap"] % 4 == 0
    words = [int.from_bytes(code[i : i + 4], "little") for i in range(0, len(code), 4)]
    assert all(word & 3 == 3 for word in words)
    assert not any(word & 0x707F == 0x3003 or word & 0x707F == 0x3023 for word in words)  # ld, sd
    hypervisor = [word >> 25 for word in words if word & 0x707F == 0x4073 and word >> 25 in range(0x30, 0x38)]
    assert sorted(set(hypervisor)) == [0b0110100, 0b0110101]                              # hlv.w, hsv.w
    assert rv.stub_program(32) is program


def test_stub_is_position_independent() -> None:
    require_toolchain()
    elsewhere = rv.assemble_stub(0x8765_4000, xlen=32)
    assert elsewhere.code == rv.stub_program(32).code
    assert elsewhere.symbols["state"] == 0x8765_4000 + len(elsewhere.code)
