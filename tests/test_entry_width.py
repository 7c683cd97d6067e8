"""The core with 4-byte page-table entries (the width of RISC-V Sv32's PTEs and x86 32-bit paging's): PhysMem's
32-bit entry access (exact bytes, alignment, RAM bounds, values too wide), and PageTable, the walker and its
entry updates over a format whose entries are 4 bytes — Sv39's rules and PTE bits on two levels of 10-bit
indices (the shape of Sv32), which stay below 2**32 for PAs below 2**32. Every write is checked to touch
its 4 bytes and nothing beside them."""

from __future__ import annotations

import numpy as np
import pytest

from pagetable.arch.riscv_sv39 import SV39, Satp
from pagetable.arch.riscv_sv39.entry import A, D, R, RiscvCodec, U, V, W, X
from pagetable.arch.riscv_sv39.walk import RiscvOptions, RiscvRules
from pagetable.errors import InvalidArgument, PhysMemError
from pagetable.flags import MappingFlags as F
from pagetable.format import Extension, Level, PagingFormat
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.translation import Regime, Region
from pagetable.walker import Reason, Walker

BASE = 0x8000_0000
NARROW = PagingFormat(name="two-level, 4-byte entries", levels=(Level("PGD", 1, 22, 10, True),
                                                               Level("PTE", 0, 12, 10, True)),
                      va_bits=32, pa_bits=32, codec=RiscvCodec(), extension=Extension.ZERO, entry_size=4)


def _ram() -> PhysMem:
    mem = PhysMem([(BASE, 4 << 20)])
    mem.view(BASE, 4 << 20)[:] = 0xEE                  # every byte marked, so a spilled write shows
    return mem


def test_32_bit_entry_access_reads_and_writes_four_bytes() -> None:
    mem = _ram()
    e = mem.entries(4)
    e.write(BASE + 8, 0x1234_5678)
    assert mem.read(BASE + 4, 12) == b"\xee" * 4 + bytes.fromhex("78563412") + b"\xee" * 4
    assert e.read(BASE + 8) == e.fetch(BASE + 8) == 0x1234_5678 and e.fetch(BASE - 4) is None
    e.write_np(np.array([BASE + 16, BASE + 20], dtype=np.uint64), np.array([1, 2], dtype=np.uint64))
    assert mem.read(BASE + 16, 8) == bytes.fromhex("0100000002000000")
    assert list(e.read_np(np.array([BASE + 20, BASE + 8], dtype=np.uint64))) == [2, 0x1234_5678]
    inram, got = e.gather_np(np.array([BASE + 16, 0x100, BASE + 20], dtype=np.uint64))
    assert list(inram) == [True, False, True] and list(got) == [1, 2]
    assert list(e.words(BASE + 16, 2)) == [1, 2] and e.words(BASE, 1).dtype == np.dtype("<u4")
    assert mem.entries(8).read is not None and mem.entries(8).size == 8


@pytest.mark.parametrize(("call", "message"), [
    (lambda e: e.write(BASE + 2, 1), "32-bit access at 0x80000002 is not 4-byte aligned"),
    (lambda e: e.write(BASE, 1 << 32), "u32 value 0x100000000 does not fit in 32 bits"),
    (lambda e: e.read(BASE + (4 << 20)), "is not inside RAM"),
    (lambda e: e.read_np(np.array([BASE + 1], dtype=np.uint64)), "is not 4-byte aligned"),
    (lambda e: e.write_np(np.array([BASE], dtype=np.uint64), np.array([1 << 32], dtype=np.uint64)),
     "does not fit a 32-bit entry"),
])
def test_32_bit_entry_access_refuses(call: object, message: str) -> None:
    with pytest.raises((PhysMemError, InvalidArgument), match=message):
        call(_ram().entries(4))  # type: ignore[operator]


def test_entries_are_4_or_8_bytes() -> None:
    with pytest.raises(InvalidArgument, match="page-table entries are 4 or 8 bytes, not 2"):
        _ram().entries(2)


def _walker(mem: PhysMem, root: int, options: RiscvOptions | None = None) -> Walker:
    """Sv39's rules over the narrow format (a test double: no mode has this shape but Sv32)."""
    rules = RiscvRules(Satp.for_table(SV39, BASE), options)
    rules.regime = Regime(NARROW.name, (Region("satp", NARROW, root),))
    return Walker(mem, rules)


def test_a_page_table_of_4_byte_entries() -> None:
    """4 KiB pages and a 4 MiB leaf at the root: each entry is PPN << 10 | flags in 4 bytes at table +
    4 * index, the bytes beside it untouched (zeroed tables aside); unmap clears its 4 bytes."""
    mem = _ram()
    frames = FrameAllocator(mem)
    pt = PageTable(NARROW, mem, frames)
    root = pt.root_paddr
    assert mem.read(root, 4096) == b"\0" * 4096                       # a zeroed 1024-entry, 4-byte table
    pt.map(0x0040_1000, BASE + 0x20_0000, 4096, F.READ | F.WRITE | F.USER)
    pt.map(0x0080_0000, BASE, 4 << 20, F.READ | F.EXECUTE)
    pointer = mem.entries(4).read(root + 4 * 1)
    table = (pointer >> 10) << 12
    assert pointer == V | ((table >> 12) << 10)
    assert mem.entries(4).read(table + 4 * 1) == ((BASE + 0x20_0000) >> 12) << 10 | V | R | W | U | A | D
    assert mem.entries(4).read(root + 4 * 2) == (BASE >> 12) << 10 | V | R | X | A
    assert mem.read(table + 8, 4) == b"\0" * 4 and mem.read(root + 12, 4) == b"\0" * 4
    assert pt.query(0x0040_1000)[0] == BASE + 0x20_0000 and pt.query(0x0080_0123)[0] == BASE + 0x123
    leaves = pt.walk()
    assert list(leaves.va) == [0x0040_1000, 0x0080_0000] and list(leaves.slot) == [table + 4, root + 8]
    pt.unmap(0x0040_1000)
    assert mem.entries(4).read(table + 4) == 0


def test_map_region_and_the_walker_over_4_byte_entries() -> None:
    mem = _ram()
    pt = PageTable(NARROW, mem, FrameAllocator(mem))
    pt.map_region(0x1000_0000, BASE + 0x10_0000, 64 << 10, F.READ | F.WRITE)
    w = _walker(mem, pt.root_paddr)
    vas = np.arange(0x1000_0000, 0x1001_0000, 0x800, dtype=np.uint64)
    many = w.translate_many(vas, "write", "supervisor")
    assert list(many.pa) == [int(v) - 0x1000_0000 + BASE + 0x10_0000 for v in vas]
    one = w.translate(0x1000_4008, "write")
    assert one.ok and one.pa == BASE + 0x10_4008 and one.pte == ((BASE + 0x10_4000) >> 12) << 10 | V | R | W | A | D
    assert w.translate(0x1001_0000).reason == Reason.INVALID
    assert w.translate(1 << 32).reason == Reason.NON_CANONICAL


def test_hardware_updates_write_4_bytes() -> None:
    """Svadu sets A (and D on a store) in the 4-byte PTE it used, and nothing beside it."""
    mem = _ram()
    pt = PageTable(NARROW.with_codec(RiscvCodec(ad="hardware")), mem, FrameAllocator(mem))
    pt.map(0x2000, BASE + 0x30_0000, 4096, F.READ | F.WRITE)
    slot = int(pt.walk().slot[0])
    before = mem.read(slot - 4, 12)
    w = _walker(mem, pt.root_paddr, RiscvOptions(ad="svadu"))
    (update,) = w.entry_updates(0x2000, "write", apply=True)
    assert (update.pa, update.new) == (slot, update.old | A | D)
    assert mem.read(slot - 4, 12) == before[:4] + (update.new).to_bytes(4, "little") + before[8:]
