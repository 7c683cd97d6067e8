"""The level-by-level descent's building blocks: whole-table reads, entry selection, and the walk columns
they give (issue 11 made them copy less; these pin what they must still return)."""

from __future__ import annotations

import numpy as np

from pagetable.arch.riscv_sv39 import SV39
from pagetable.arch.x86_64 import PAGING4
from pagetable.arch.x86_64.walk import X86Rules
from pagetable.descent import ALIAS_FACTOR, ALIAS_FLOOR, Entries, read_tables
from pagetable.flags import MappingFlags
from pagetable.flags import MappingFlags as F
from pagetable.frames import FrameAllocator
from pagetable.mappings import Mappings
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.walker import Access, Privilege, Walker, perm_bit

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


# --------------------------------------------------------------------------- shared tables, loops, bounds
def _x86_table() -> tuple[PhysMem, PageTable]:
    mem = PhysMem([(RAM, 64 * K4)])
    return mem, PageTable(PAGING4, mem, FrameAllocator(mem))


def test_a_shared_table_is_listed_under_each_entry_with_the_rights_of_its_own_path() -> None:
    """PD entries 1 and 3 share one page table; entry 3 is supervisor-only and read-only (U/S=R/W=0), so
    what the hardware gives at 0x600000 is less than at 0x200000 (Intel SDM vol. 3A 4.6.1). The listing
    used to list the table once, under entry 1."""
    mem, pt = _x86_table()
    pt.map(0x20_0000, RAM + 0x2_0000, K4, F.READ | F.WRITE | F.USER)
    pde = pt.lookup(0x20_0000, 2)
    mem.write_u64(pde.table + 8 * 3, pde.raw & ~0x6)
    m = Walker(mem, X86Rules(pt.root_paddr)).mappings()
    sup_rw = perm_bit(Access.READ, Privilege.SUPERVISOR) | perm_bit(Access.WRITE, Privilege.SUPERVISOR)
    user_rw = perm_bit(Access.READ, Privilege.USER) | perm_bit(Access.WRITE, Privilege.USER)
    assert m.va.tolist() == [0x20_0000, 0x60_0000] and m.pa.tolist() == [RAM + 0x2_0000] * 2
    assert m.perms is not None and m.perms.tolist() == [sup_rw | user_rw, perm_bit(Access.READ, Privilege.SUPERVISOR)]
    table = pde.raw & 0xF_FFFF_FFFF_F000
    assert m.problems == (f"the level-1 table {table:#x} is shared by 2 entries (VAs 0x200000, 0x600000): its "
                          "entries are listed under each",)
    (e,) = m.events
    assert (e.kind, e.table, e.level, e.slots.tolist(), e.vas.tolist(), e.span, e.listed.tolist()) == (
        "shared", table, 1, [pde.table + 8, pde.table + 24], [0x20_0000, 0x60_0000], 1 << 21, [True, True])
    assert e.unlisted_bytes == 0


def test_a_tree_where_every_entry_points_at_one_next_table_is_bounded_and_says_what_is_left_out() -> None:
    """KASAN's early shadow, everywhere: 512**4 aliases. The alias entries read stay within ALIAS_FLOOR +
    ALIAS_FACTOR x the distinct entries, in VA order; each level's report says how much VA is not listed."""
    mem = PhysMem([(RAM, 4 * K4)])
    words = mem.regions[0].words
    for t in range(3):
        words[t * 512:(t + 1) * 512] = np.uint64(RAM + (t + 1) * K4 | 0x7)     # P, R/W, U/S -> the next table
    words[3 * 512:] = np.uint64(RAM | 0x7)                                    # 4 KiB leaves
    m = Walker(mem, X86Rules(RAM)).mappings()
    assert ALIAS_FLOOR == 1 << 16 and ALIAS_FACTOR == 4
    # level 4 (the root): 512 distinct entries; its 511 aliases of the PDPT: room for (65536 + 4 x 1024) / 512
    assert len(m) == 5 * 512 and m.va[-1] == 0x9FF000 and len(m.problems) == 3
    assert m.problems[0] == (f"the level-3 table {RAM + K4:#x} is shared by 512 entries (VAs 0x0, 0x8000000000, "
                             "0x10000000000, 0x18000000000, ...): 375 of its 512 references (VAs 0x448000000000 "
                             "on, 192000G of VA in all) are not listed: the descent reads at most 65536 + 4 x "
                             "1024 entries of aliases")
    assert m.problems[2].startswith(f"the level-1 table {RAM + 3 * K4:#x} is shared by 512 entries (VAs 0x0, "
                                    "0x200000, 0x400000, 0x600000, ...): 2555 of its 2560 references (VAs "
                                    "0xa00000 on, 5110M of VA in all)")
    assert [(e.kind, e.level, int(e.listed.sum()), e.listed.size) for e in m.events] == [
        ("shared", 3, 137, 512), ("shared", 2, 5, 137 * 512), ("shared", 1, 5, 5 * 512)]
    assert m.events[0].unlisted_bytes == 375 << 39


def test_loops_tables_used_at_two_levels_and_unreadable_tables_are_recorded() -> None:
    """The descent's events, in the order it meets them (level by level; per level: unreadable tables,
    tables reached again, shared ones), with the referring entries and their VAs."""
    mem, pt = _x86_table()
    pt.map(0x20_0000, RAM + 0x2_0000, K4, F.READ)
    pt.map(0xC000_0000, RAM + 0x3_0000, K4, F.READ)                # PDPT entry 3 -> PD2 -> PT2
    root, pdpt = pt.root_paddr, pt.lookup(0x20_0000, 1)
    pd, pt2 = pt.lookup(0x20_0000, 2).table, pt.lookup(0xC000_0000, 3).table
    mem.write_u64(root + 8 * 5, root | 0x3)                        # root entry 5 -> the root: a loop
    mem.write_u64(root + 8 * 7, 0x1000 | 0x3)                      # root entry 7 -> outside RAM
    mem.write_u64(pdpt.table + 8 * 2, pdpt.raw)                    # PDPT entry 2 -> the PD: shared
    mem.write_u64(pdpt.table + 8 * 4, pt2 | 0x3)                   # PDPT entry 4 -> PT2, as a PD
    mem.write_u64(pd + 8 * 5, pdpt.table | 0x3)                    # PD entry 5 -> the PDPT, as a PT: a loop
    m = Walker(mem, X86Rules(root)).mappings()
    got = [(e.kind, e.table, e.level, e.slots.tolist(), e.vas.tolist(), e.listed.tolist(), e.first_level)
           for e in m.events]
    assert got == [
        ("unreadable", 0x1000, 3, [root + 56], [7 << 39], [False], None),
        ("loop", root, 3, [root + 40], [5 << 39], [False], 4),
        ("shared", pd, 2, [pdpt.table, pdpt.table + 16], [0, 2 << 30], [True, True], None),
        ("loop", pdpt.table, 1, [pd + 40, pd + 40], [5 << 21, (2 << 30) + (5 << 21)], [False, False], 3),
        ("other-level", pt2, 1, [pt.lookup(0xC000_0000, 2).table], [3 << 30], [False], 2),
    ]
    assert m.va.tolist() == [0x20_0000, (2 << 30) + 0x20_0000]          # PT2 is not read as a PT
    assert m.problems[3] == (f"the entry at {pd + 40:#x} makes table {pdpt.table:#x} the level-1 table for VA "
                             "0xa00000; a loop: it points back at a table on its own path: not walked again")
