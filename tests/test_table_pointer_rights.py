"""Table entries no more permissive than the pages below them need (x86 R/W, U/S, XD; EPT R/W/X): exact
bytes for a few mappings, and, under random map/unmap/protect/remap sequences, the invariant that every
table entry holds exactly the rights its table's entries need, with the walk's effective rights those of
the page alone."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pagetable.arch.x86_64 import ARCEOS, EPT4, PAGING4, EptCodec
from pagetable.arch.x86_64.entry import RW, US, XD, P
from pagetable.arch.x86_64.walk import X86Options, X86Rules
from pagetable.errors import InvalidArgument, NotMapped, PagetableError
from pagetable.flags import MappingFlags as F
from pagetable.format import PagingFormat
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.translation import Access, Privilege, perm_bit
from pagetable.walker import Walker

MiB = 1 << 20
ADDR = ((1 << 52) - 1) & ~0xFFF


def table(fmt: PagingFormat = PAGING4) -> PageTable:
    mem = PhysMem([(0, 16 * MiB)])
    return PageTable(fmt, mem, FrameAllocator(mem, 8 * MiB, 8 * MiB))


def pointers(pt: PageTable, va: int) -> list[int]:
    """The non-address bits of the table entries on `va`'s path."""
    leaf = pt.lookup(va).depth
    return [pt.lookup(va, d).raw & ~ADDR for d in range(leaf)]


def test_table_entries_take_the_rights_of_their_pages_and_lose_them_again() -> None:
    pt = table()
    pt.map(0x1000, 0x10_0000, 4096, F.READ)                            # supervisor, read-only, no execute
    assert pointers(pt, 0x1000) == [P | XD] * 3
    pt.map(0x2000, 0x10_1000, 4096, F.READ | F.WRITE | F.USER)         # a user page beside it
    assert pointers(pt, 0x1000) == [P | RW | US | XD] * 3
    pt.map(0x20_0000, 0x10_2000, 4096, F.READ | F.EXECUTE)             # executable, in another page table
    assert pointers(pt, 0x20_0000) == [P | RW | US] * 2 + [P]          # PML4E, PDPTE: all three pages
    assert pointers(pt, 0x1000)[2] == P | RW | US | XD                 # the first PT's PDE: its two pages
    pt.unmap(0x2000)
    assert pointers(pt, 0x1000) == [P, P, P | XD]
    pt.protect(0x20_0000, F.READ)
    assert pointers(pt, 0x1000) == [P | XD] * 3
    pt.protect_region(0x1000, 0x1000, F.READ | F.WRITE | F.EXECUTE | F.USER)
    assert pointers(pt, 0x1000) == [P | RW | US] * 3


def test_huge_pages_split_keep_their_rights_in_the_new_table_entry() -> None:
    pt = table()
    pt.map(0x20_0000, 0x20_0000, 2 * MiB, F.READ | F.WRITE | F.USER)
    pt.protect_region(0x20_0000, 0x1000, F.READ | F.USER)             # splits the 2 MiB page
    assert pointers(pt, 0x20_1000) == [P | RW | US | XD] * 3          # the other 511 pages stay writable
    pt.protect_region(0x20_0000, 2 * MiB, F.READ | F.USER)
    assert pointers(pt, 0x20_1000) == [P | US | XD] * 3


def test_ept_table_entries_and_the_arceos_profile() -> None:
    pt = table(EPT4.with_codec(EptCodec()))
    pt.map(0x1000, 0x10_0000, 4096, F.READ)
    assert pointers(pt, 0x1000) == [0b001] * 3                         # R only
    pt.map(0x2000, 0x10_1000, 4096, F.EXECUTE)                         # execute-only: R stays with X
    assert pointers(pt, 0x1000) == [0b101] * 3
    crate = table(PAGING4.with_codec(ARCEOS))
    crate.map(0x1000, 0x10_0000, 4096, F.READ)
    assert pointers(crate, 0x1000) == [P | RW | US] * 3                # the crate's permissive tables


def _check(pt: PageTable) -> None:
    """Every table entry holds exactly the rights of its table's entries, and every page's effective
    rights are the page's own."""
    codec, fmt, mem = pt.fmt.codec, pt.fmt, pt.frames.mem

    def visit(table_pa: int, depth: int) -> None:
        n = fmt.levels[depth].entries
        raw = mem.words(table_pa, n).copy()
        for i in np.flatnonzero(codec.is_table_np(raw, depth == fmt.depth_count - 1)).tolist():
            child = int(codec.paddr_np(int(raw[i]), True))
            below = mem.words(child, fmt.levels[depth + 1].entries)
            want = codec.fit_pointer(int(raw[i]), int(np.bitwise_or.reduce(codec.pointer_needs(below))))
            assert int(raw[i]) == want, (hex(int(raw[i])), hex(want), depth)
            visit(child, depth + 1)

    visit(pt.root_paddr, 0)
    walker = Walker(mem, X86Rules(pt.root_paddr, X86Options(wp=True)))
    m = pt.walk()
    for access in Access:
        for priv in Privilege:
            t = walker.translate_many(m.va, access, priv)
            flags = m.flags
            own = (flags & F.READ.value != 0) if access == Access.READ else \
                (flags & F.WRITE.value != 0) if access == Access.WRITE else (flags & F.EXECUTE.value != 0)
            if priv == Privilege.USER:
                own &= flags & F.USER.value != 0
            assert np.array_equal((t.perms & perm_bit(access, priv)) != 0, own)


_FLAGS = st.sampled_from([F.READ, F.READ | F.WRITE, F.READ | F.EXECUTE, F.READ | F.USER,
                          F.READ | F.WRITE | F.USER, F.READ | F.WRITE | F.EXECUTE | F.USER])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["map", "unmap", "protect", "region"]), st.integers(0, 63), _FLAGS,
                          st.booleans()), min_size=1, max_size=25))
def test_table_entries_stay_exactly_as_permissive_as_their_pages(steps: list[tuple[str, int, F, bool]]) -> None:
    pt = table()
    for op, page, flags, huge in steps:
        va = (page % 4) << 39 | (page // 4 % 4) << 30 | (page // 16) << 21 if huge else (page % 8) << 30 | page << 12
        size = 2 * MiB if huge else 4096
        try:
            if op == "map":
                pt.map(va, 0x40_0000 if huge else 0x30_0000 + page * 4096, size, flags)
            elif op == "unmap":
                pt.unmap(va)
            elif op == "protect":
                pt.protect(va, flags)
            else:
                pt.protect_region(va & ~0xFFF, 4096, flags, missing_ok=True)
        except PagetableError:
            pass
        _check(pt)


def test_protect_region_over_a_hole_at_a_level_without_pages() -> None:
    """A range whose PML4 entry is empty: nothing to split there (x86 has no pages at that level)."""
    pt = table()
    pt.protect_region(0x1000, 0x1000, F.READ, missing_ok=True)
    assert len(pt.walk()) == 0
    with pytest.raises(NotMapped):
        pt.protect_region(0x1000, 0x1000, F.READ)


def test_widen_after_a_raw_entry_and_its_refusals() -> None:
    pt = table()
    pt.map(0x1000, 0x10_0000, 4096, F.READ)                            # table entries P|XD
    leaf = pt.lookup(0x2000)                                           # an empty slot of the same PT
    pt.frames.mem.write_u64(leaf.pa, P | RW | US | 0x10_1000)          # a raw user, writable, executable page
    assert pointers(pt, 0x1000) == [P | XD] * 3
    pt.widen(0x2000, 3)
    assert pointers(pt, 0x1000) == [P | RW | US] * 3
    with pytest.raises(InvalidArgument, match="no depth-3 entry"):
        pt.widen(0x40_0000_0000, 3)                                    # no table there: the walk stops at 0
