"""RISC-V Sv32 (privileged spec, "Sv32: Page-Based 32-bit Virtual-Memory Systems") through PageTable and the
walker: the 4-byte PTE and RV32 satp bit for bit, 4 MiB megapages, a walker case per fault rule with its
syndrome, a hypothesis round trip, and agreement with qemu-system-riscv32 on every case (QEMU 7.2's named
deviation: it sets A/D in hardware, where Svade faults)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pagetable.arch.riscv_sv39 import SV32, Satp32
from pagetable.arch.riscv_sv39.entry import A, D, G, R, U, V, W, X
from pagetable.arch.riscv_sv39.walk import RiscvOptions, RiscvRules
from pagetable.errors import InvalidAddress, InvalidArgument
from pagetable.flags import MappingFlags as F
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.vectors.riscv import qemu32
from pagetable.vectors.riscv.qemu import ProbeCase
from pagetable.walker import Reason, Walker

from .conftest import require_qemu_riscv32

RAM = qemu32.RAM_BASE
MiB = 1 << 20


_PAS = np.arange(RAM, RAM + 8 * MiB, 4, dtype=np.uint64)
_TAGS = np.array([qemu32.tag(int(p)) for p in _PAS[:2]], dtype=np.uint32)
_TAGGED = (((_PAS >> np.uint64(2)) << np.uint64(7)) | np.uint64(qemu32.TAG_OPCODE)).astype(np.uint32)
assert (_TAGGED[:2] == _TAGS).all()                 # the harness's tag, computed a column at a time


def _space() -> tuple[PhysMem, PageTable]:
    mem = PhysMem([(RAM, 8 * MiB)])
    mem.regions[0].words32[:] = _TAGGED             # the harness's tag in every word
    return mem, PageTable(SV32, mem, FrameAllocator(mem, RAM + 4 * MiB, 4 * MiB))


def test_satp_rv32_bits() -> None:
    """MODE bit 31 (1: Sv32), ASID 30:22, PPN 21:0."""
    satp = Satp32.for_table(SV32, 0x8040_0000, asid=0x1A5)
    assert satp.encode() == 1 << 31 | 0x1A5 << 22 | 0x8040_0000 >> 12
    assert Satp32.decode(satp.encode()) == satp and satp.format is SV32
    assert Satp32.decode(0x8_0000).format is None                       # MODE 0: Bare
    with pytest.raises(InvalidArgument, match="does not fit in 32 bits"):
        Satp32.decode(1 << 32)


def test_sv32_ptes_are_4_bytes_with_a_22_bit_ppn() -> None:
    """A 4 KiB page and a 4 MiB megapage: PPN << 10 | flags in 4-byte words, PAs of 34 bits, the
    neighbouring words untouched; a PA of 2**34 does not fit."""
    mem, pt = _space()
    pt.map(0x0040_1000, 0x3_FFFF_F000, 4096, F.READ | F.WRITE | F.USER)       # PA bits 33:32 set
    pt.map(0x8000_0000, RAM, 4 * MiB, F.READ | F.EXECUTE)
    root = pt.root_paddr
    e = mem.entries(4)
    table = (e.read(root + 4 * 1) >> 10) << 12
    assert e.read(root + 4 * 1) == V | (table >> 12) << 10
    assert e.read(table + 4 * 1) == 0x3_FFFF_F << 10 | V | R | W | U | A | D == 0xFFFF_FCD7
    assert e.read(root + 4 * 0x200) == (RAM >> 12) << 10 | V | R | X | A
    assert e.read(root + 4 * 0x201) == 0 and e.read(table + 8) == 0
    with pytest.raises(InvalidAddress):
        pt.map(0x0050_0000, 1 << 34, 4096, F.READ)


def _walker(pt: PageTable, options: RiscvOptions | None = None) -> Walker:
    return Walker(pt.mem, RiscvRules(Satp32.for_table(SV32, pt.root_paddr), options))


def _scene() -> tuple[PhysMem, PageTable, list[tuple[str, int, str, str, Reason, int | None]]]:
    """Sv32 pages and raw PTEs for each rule, with the walker's expected (reason, PA) per case."""
    mem, pt = _space()
    pt.map(0x1000, RAM + 0x1000, 4096, F.READ | F.WRITE)                   # kernel RW
    pt.map(0x2000, RAM + 0x2000, 4096, F.READ | F.USER)                     # user RO
    pt.map(0x3000, RAM + 0x3000, 4096, F.EXECUTE)                           # X only
    pt.map(0x40_0000, RAM, 4 * MiB, F.READ | F.WRITE)                       # a megapage over RAM
    e = mem.entries(4)
    table = int(pt.walk(0x1000, 0x1FFF).slot[0]) - 4                          # the PTEs of [0, 4 MiB)
    e.write(table + 4 * 4, V | W | A | D | (RAM + 0x4000) >> 12 << 10)          # 0x4000: W without R
    e.write(table + 4 * 5, V | R | W | (RAM + 0x5000) >> 12 << 10)              # 0x5000: A=0 (Svade)
    e.write(table + 4 * 6, V | R | W | A | D | 0x2_0000_0000 >> 12 << 10)       # 0x6000: no RAM there
    root = pt.root_paddr
    e.write(root + 4 * 3, V | R | W | A | D | (RAM + 0x1000) >> 12 << 10)       # 0xC0_0000: misaligned megapage
    e.write(root + 4 * 4, V | G | (RAM + 0x7000) >> 12 << 10)                    # 0x100_0000: pointer with G ...
    e.write(root + 4 * 5, V | 0x2_0000_0000 >> 12 << 10)                        # 0x140_0000: table outside RAM
    cases = [("kernel-rw", 0x1008, "write", "supervisor", Reason.OK, RAM + 0x1008),
             ("kernel-rw-user", 0x1008, "read", "user", Reason.PERMISSION, None),
             ("user-ro-sum0", 0x2010, "read", "supervisor", Reason.PERMISSION, None),
             ("user-ro", 0x2010, "read", "user", Reason.OK, RAM + 0x2010),
             ("user-ro-write", 0x2010, "write", "user", Reason.PERMISSION, None),
             ("x-only-read", 0x3000, "read", "supervisor", Reason.PERMISSION, None),
             ("x-only-fetch", 0x3000, "execute", "supervisor", Reason.OK, RAM + 0x3000),
             ("w-without-r", 0x4000, "read", "supervisor", Reason.W_WITHOUT_R, None),
             ("a-clear", 0x5000, "read", "supervisor", Reason.ACCESSED_DIRTY, None),
             ("no-ram", 0x6000, "read", "supervisor", Reason.PA_OUTSIDE_MEMORY, None),
             ("megapage", 0x40_1234, "read", "supervisor", Reason.OK, RAM + 0x1234),
             ("misaligned-megapage", 0xC0_0000, "read", "supervisor", Reason.MISALIGNED_SUPERPAGE, None),
             ("table-outside-ram", 0x140_0000, "read", "supervisor", Reason.TABLE_OUTSIDE_MEMORY, None),
             ("invalid", 0x0, "read", "supervisor", Reason.INVALID, None),
             ("unmapped-root", 0x200_0000, "read", "supervisor", Reason.INVALID, None)]
    return mem, pt, cases


def test_the_walker_applies_every_rule_to_sv32() -> None:
    _, pt, cases = _scene()
    w = _walker(pt)
    for label, va, access, privilege, reason, pa in cases:
        t = w.translate(va, access, privilege)
        assert (t.reason, t.pa if t.ok else None) == (reason, pa), label
        if not t.ok:
            code = {"read": 13, "write": 15, "execute": 12}[access] - (8 if reason in (
                Reason.PA_OUTSIDE_MEMORY, Reason.TABLE_OUTSIDE_MEMORY) else 0)
            assert dict(t.syndrome) == {"scause": code, "stval": va}, label
    many = w.translate_many(np.array([c[1] for c in cases], dtype=np.uint64),
                            np.array([("read", "write", "execute").index(c[2]) for c in cases], dtype=np.uint8),
                            np.array([c[3] == "user" for c in cases], dtype=np.uint8))
    assert [Reason(int(r)) for r in many.reason] == [c[4] for c in cases]
    assert w.translate(0x4000_0000 << 2, "read").reason == Reason.NON_CANONICAL           # above 32 bits
    assert w.translate(0x1_0000_0000 - 8, "read").reason == Reason.INVALID


def test_sv32_has_no_pbmt_or_napot() -> None:
    _, pt = _space()
    with pytest.raises(InvalidArgument, match="Sv32 PTEs have no PBMT or N field"):
        _walker(pt, RiscvOptions(svpbmt=True))


@settings(max_examples=60, deadline=None)
@given(vpn=st.integers(1, (1 << 20) - 1), ppn=st.integers(0, (1 << 22) - 1),
       flags=st.sampled_from([F.READ, F.READ | F.WRITE, F.EXECUTE, F.READ | F.EXECUTE | F.USER]))
def test_a_mapped_page_translates_back(vpn: int, ppn: int, flags: F) -> None:
    mem, pt = _space()
    pt.map(vpn << 12, ppn << 12, 4096, flags)
    assert pt.query(vpn << 12) == (ppn << 12, flags, 4096)
    access = "read" if flags & F.READ else "execute"
    t = _walker(pt).translate((vpn << 12) | 0x7F8, access, "user" if flags & F.USER else "supervisor")
    outside = not mem.contains(ppn << 12)
    assert t.reason == (Reason.PA_OUTSIDE_MEMORY if outside else Reason.OK)
    assert outside or t.pa == (ppn << 12) | 0x7F8


def test_sv32_agrees_with_qemu() -> None:
    """Every scene case on qemu-system-riscv32: QEMU's cause, mtval and the word loaded (the tag of the PA)
    or the fetch's mepc are the walker's; A=0 is QEMU 7.2's one named deviation (it sets A/D)."""
    exe = require_qemu_riscv32()
    mem, pt, cases = _scene()
    w = _walker(pt)
    image = mem.read(RAM, 8 * MiB)
    results = qemu32.run_probes_rv32(image, Satp32.for_table(SV32, pt.root_paddr).encode(),
                                     [ProbeCase(va, access, privilege) for _, va, access, privilege, _, _ in cases],
                                     qemu=exe)
    for (label, va, access, privilege, reason, pa), got in zip(cases, results, strict=True):
        t = w.translate(va, access, privilege)
        if reason == Reason.ACCESSED_DIRTY:                     # QEMU 7.2 sets A and goes on
            assert got.cause is None and got.value == qemu32.tag(RAM + 0x5000), label
        elif reason == Reason.TABLE_OUTSIDE_MEMORY:             # QEMU 7.2: a page fault, not an access fault
            assert (got.cause, got.tval) == (13, va), label
        elif t.ok:
            assert got.cause is None and got.value == (va if access == "execute" else qemu32.tag(pa or 0)), label
        else:
            assert (got.cause, got.tval) == (t.syndrome["scause"], t.syndrome["stval"]), (label, got)
