"""The level-by-level descent's building blocks: whole-table reads, entry selection, and the walk columns
they give (issue 11 made them copy less; these pin what they must still return)."""

from __future__ import annotations

import numpy as np

from pagetable.arch.riscv_sv39 import SV39
from pagetable.descent import Entries, read_tables
from pagetable.flags import MappingFlags
from pagetable.frames import FrameAllocator
from pagetable.mappings import Mappings
from pagetable.physmem import PhysMem
from pagetable.table import PageTable

K4 = 4096
RAM = 0x8000_0000


def _entries_of(mem: PhysMem, tables: list[int], count: int) -> list[int]:
    return [mem.read_u64(t + 8 * i) for t in tables for i in range(count)]


def test_read_tables_gives_every_entry_in_table_order_whatever_the_runs() -> None:
    """Adjacent tables are read as one run; a run never crosses a region boundary, even where two regions
    touch (one view of both would be refused), and tables out of address order are read in the order
    given."""
    mem = PhysMem([(RAM, 4 * K4), (RAM + 4 * K4, 4 * K4)])      # two regions that touch
    for k in range(8):
        mem.words(RAM + k * K4, 512)[:] = np.arange(512, dtype=np.uint64) + np.uint64(k << 16)
    order = [RAM + 2 * K4, RAM + 3 * K4, RAM + 4 * K4, RAM + 5 * K4, RAM, RAM + 7 * K4, RAM + K4]
    got = read_tables(mem, np.array(order, dtype=np.uint64), 512)
    assert got.tolist() == _entries_of(mem, order, 512)
    assert read_tables(mem, np.zeros(0, dtype=np.uint64), 512).shape == (0,)


def test_read_tables_copies() -> None:
    mem = PhysMem([(RAM, 2 * K4)])
    got = read_tables(mem, np.array([RAM, RAM + K4], dtype=np.uint64), 512)
    mem.write_u64(RAM, 7)
    assert got[0] == 0


def test_entries_select_copies_nothing_when_every_entry_is_chosen() -> None:
    e = Entries(1, np.arange(4, dtype=np.uint64), np.arange(4, dtype=np.uint64) << np.uint64(21),
                np.array([1, 0, 3, 0], dtype=np.uint64), np.array([63, 62, 61, 60], dtype=np.uint64))
    assert e.select(np.ones(4, dtype=bool)) is e
    part = e.select(e.raw != 0)
    assert (part.depth, part.slot.tolist(), part.va.tolist(), part.raw.tolist(), part.carry.tolist()) == (
        1, [0, 2], [0, 2 << 21], [1, 3], [63, 61])


def test_concat_sorts_parts_and_keeps_a_sorted_single_part() -> None:
    mem = PhysMem([(RAM, 64 * K4)])
    pt = PageTable(SV39, mem, FrameAllocator(mem))
    pt.map_region(0x4000_0000, RAM, 4 * K4, MappingFlags.READ)
    pt.map(0x20_0000, RAM, 1 << 21, MappingFlags.READ)
    w = pt.walk()
    assert w.va.tolist() == [0x20_0000, 0x4000_0000, 0x4000_1000, 0x4000_2000, 0x4000_3000]
    one = Mappings.concat(SV39, [w], ["a problem"])
    assert one.va is w.va and one.problems == ("a problem",)
    backwards = Mappings.concat(SV39, [w.select(w.size == K4), w.select(w.size != K4)])
    assert backwards.va.tolist() == w.va.tolist()
    assert backwards.depth.tolist() == w.depth.tolist() and backwards.slot.tolist() == w.slot.tolist()
