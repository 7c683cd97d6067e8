"""PageTable over Sv39/Sv48/Sv57: single-leaf and region operations, splitting, freeing, atomicity, walk."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from pagetable.arch.riscv_sv39 import SV39, SV48, SV57
from pagetable.arch.x86_64 import EPT4, PAGING4, PAGING5
from pagetable.errors import (
    AlreadyMapped,
    InvalidAddress,
    InvalidArgument,
    InvalidArgumentType,
    InvalidFlags,
    MappedToHugePage,
    NoMemory,
    NotAligned,
    NotATree,
    NotMapped,
)
from pagetable.flags import MappingFlags
from pagetable.format import PagingFormat
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable

from .fuzzing import count, fuzz

R, W, X, U = MappingFlags.READ, MappingFlags.WRITE, MappingFlags.EXECUTE, MappingFlags.USER
RW = R | W
NONE = MappingFlags(0)
K4, M2, G1, G512, T256 = 1 << 12, 1 << 21, 1 << 30, 1 << 39, 1 << 48
RAM = 0x8000_0000

MODES = [SV39, SV48, SV57]
MODE_IDS = ["sv39", "sv48", "sv57"]
SIZES = {"Sv39": [K4, M2, G1], "Sv48": [K4, M2, G1, G512], "Sv57": [K4, M2, G1, G512, T256]}
NON_CANONICAL = {"Sv39": 0x0000_0040_0000_0000, "Sv48": 0x0000_8000_0000_0000, "Sv57": 0x0100_0000_0000_0000}
UPPER_START = {"Sv39": 0xFFFF_FFC0_0000_0000, "Sv48": 0xFFFF_8000_0000_0000, "Sv57": 0xFF00_0000_0000_0000}
LOW_BITS = {NONE: 0x00, R: 0x43, RW: 0xC7, R | X: 0x4B, X: 0x49, R | U: 0x53, RW | U: 0xD7}   # SPEC: V R W X U A D

Leaf = tuple[int, int, int, int]          # va, pa, size, flags


def make(fmt: PagingFormat, frames: int | None = None) -> tuple[PhysMem, FrameAllocator, PageTable]:
    mem = PhysMem([(RAM, 4 << 20)])
    fa = FrameAllocator(mem, size=None if frames is None else frames * K4)
    return mem, fa, PageTable(fmt, mem, fa)


def leaves(pt: PageTable, placeholders: bool = False) -> list[Leaf]:
    w = pt.walk(placeholders=placeholders)
    return list(zip(w.va.tolist(), w.pa.tolist(), w.size.tolist(), w.flags.tolist(), strict=True))


def pte(pa: int, flags: MappingFlags) -> int:
    """The SPEC codec's leaf, written out from the spec's bit positions."""
    return (pa >> 12) << 10 | LOW_BITS[flags]


def depth_of(size: int) -> int:
    """Depth below the root of a leaf of `size` bytes, for every mode (they differ only at the top)."""
    return {K4: 0, M2: 1, G1: 2, G512: 3, T256: 4}[size]


class Snapshot:
    """Everything a failed operation must leave untouched."""

    def __init__(self, mem: PhysMem, fa: FrameAllocator, pt: PageTable) -> None:
        self.mem, self.fa, self.pt = mem, fa, pt
        self.data = [r.data.copy() for r in mem.regions]
        self.in_use = fa.in_use
        self.live = fa.live()
        self.leaves = leaves(pt, placeholders=True)

    def assert_unchanged(self) -> None:
        assert leaves(self.pt, placeholders=True) == self.leaves
        assert self.fa.in_use == self.in_use
        assert self.fa.live() == self.live
        for r, old in zip(self.mem.regions, self.data, strict=True):
            assert np.array_equal(r.data, old)


def all_sizes() -> list[tuple[PagingFormat, int]]:
    return [(fmt, s) for fmt in MODES for s in SIZES[fmt.name]]


# --------------------------------------------------------------------------- single leaves


@pytest.mark.parametrize(("fmt", "size"), all_sizes(), ids=[f"{f.name}-{s:#x}" for f, s in all_sizes()])
@pytest.mark.parametrize("upper", [False, True], ids=["low", "high"])
def test_map_query_remap_protect_unmap(fmt: PagingFormat, size: int, upper: bool) -> None:
    mem, fa, pt = make(fmt)
    va = (1 << 64) - 3 * size if upper else 3 * size
    pa = 5 * size
    levels = fmt.depth_count
    leaf_depth = levels - 1 - depth_of(size)
    pt.map(va, pa, size, RW)
    assert fa.in_use == 1 + leaf_depth
    assert pt.query(va) == (pa, RW, size)
    assert pt.query(va + size - 8) == (pa + size - 8, RW, size)
    assert pt.query(va + size // 2 + 0x123) == (pa + size // 2 + 0x123, RW, size)
    for outside in (va - K4, va + size):
        with pytest.raises(NotMapped, match=f"{outside:#x}"):
            pt.query(outside)
    slot = pt.lookup(va + 0x10)
    assert slot.depth == leaf_depth
    assert slot.raw == pte(pa, RW) == mem.read_u64(slot.pa)
    assert leaves(pt) == [(va, pa, size, RW)]
    m = pt.walk()[0]
    assert (m.va, m.pa, m.size, m.flags, m.level, m.raw) == (va, pa, size, RW, depth_of(size), pte(pa, RW))

    pa2 = 7 * size
    assert pt.remap(va + size - K4, pa2, R) == size
    assert pt.query(va + 8) == (pa2 + 8, R, size)
    assert mem.read_u64(slot.pa) == pte(pa2, R)
    assert pt.protect(va + size // 2, R | X) == size
    assert pt.query(va) == (pa2, R | X, size)
    assert mem.read_u64(slot.pa) == pte(pa2, R | X)

    assert pt.unmap(va + size - 1) == (pa2, R | X, size)
    assert leaves(pt) == []
    assert fa.in_use == 1                         # every table on the way was empty and freed
    with pytest.raises(NotMapped):
        pt.query(va)
    pt.destroy()
    assert fa.in_use == 0


@pytest.mark.parametrize("fmt", MODES, ids=MODE_IDS)
def test_leaf_bytes_and_table_entries_on_the_way(fmt: PagingFormat) -> None:
    mem, fa, pt = make(fmt)
    pt.map(0x4020_0000, 0x8020_0000, M2, RW)
    slot = pt.lookup(0x4020_0000)
    assert slot.raw == 0x2008_00C7                # page_table_multiarch's example value, here with D preset
    # the entries above are pointers: V and the PPN of the next table, nothing else
    table = pt.root_paddr
    for depth in range(fmt.depth_count - 2):
        raw = mem.read_u64(table + fmt.index(0x4020_0000, depth) * 8)
        assert raw & 0x3FF == 0x1
        table = (raw >> 10) << 12
        assert table in fa.live()
    assert slot.table == table


@pytest.mark.parametrize("fmt", MODES, ids=MODE_IDS)
def test_not_aligned(fmt: PagingFormat) -> None:
    mem, fa, pt = make(fmt)
    snap = Snapshot(mem, fa, pt)
    with pytest.raises(NotAligned, match="0x1800"):
        pt.map(0x1800, 0x9000_0000, K4, R)
    with pytest.raises(NotAligned, match="0x201000"):
        pt.map(0x20_1000, 0x9000_0000, M2, R)
    with pytest.raises(NotAligned, match="0x90001000"):
        pt.map(0x20_0000, 0x9000_1000, M2, R)
    with pytest.raises(NotAligned, match="0x40200000"):
        pt.map(0x4000_0000, 0x4020_0000, G1, R)
    with pytest.raises(NotAligned, match="0x90000800"):
        pt.map(0x1000, 0x9000_0800, K4, R)
    for bad_size in (0x3000, 1 << 16, 1 << 13, 0):
        with pytest.raises(NotAligned):
            pt.map(0, 0, bad_size, R)
    snap.assert_unchanged()
    pt.map(0x20_0000, 0x9000_0000, M2, R)
    with pytest.raises(NotAligned, match="0x90001000"):
        pt.remap(0x20_0000, 0x9000_1000, R)
    assert pt.query(0x20_0000) == (0x9000_0000, R, M2)


@pytest.mark.parametrize("fmt", MODES, ids=MODE_IDS)
def test_invalid_address(fmt: PagingFormat) -> None:
    mem, fa, pt = make(fmt)
    snap = Snapshot(mem, fa, pt)
    bad = NON_CANONICAL[fmt.name]
    for va in (bad, UPPER_START[fmt.name] - K4, 0x8000_0000_0000_0000, 1 << 64, -K4):
        with pytest.raises(InvalidAddress, match=f"{va:#x}" if va >= 0 else "virtual address"):
            pt.map(va, 0x9000_0000, K4, R)
        with pytest.raises(InvalidAddress):
            pt.query(va)
        with pytest.raises(InvalidAddress):
            pt.unmap(va)
    with pytest.raises(InvalidAddress, match="0x100000000000000"):
        pt.map(0x1000, 1 << 56, K4, R)
    with pytest.raises(InvalidAddress):
        pt.map(0x1000, -K4, K4, R)
    with pytest.raises(InvalidAddress):
        pt.map(0x20_0000, (1 << 57) - M2, M2, R)
    snap.assert_unchanged()
    pt.map(0x1000, (1 << 56) - K4, K4, R)         # the highest page is fine
    assert pt.query(0x1FFF) == ((1 << 56) - 1, R, K4)
    with pytest.raises(InvalidAddress):
        pt.remap(0x1000, 1 << 56, R)


@pytest.mark.parametrize("fmt", MODES, ids=MODE_IDS)
def test_invalid_flags_change_nothing(fmt: PagingFormat) -> None:
    mem, fa, pt = make(fmt)
    snap = Snapshot(mem, fa, pt)
    for flags in (W, U, W | X):
        with pytest.raises(InvalidFlags):
            pt.map(0x1000, 0x9000_0000, K4, flags)
        with pytest.raises(InvalidFlags):
            pt.map_region(0x1000, 0x9000_0000, 4 * K4, flags)
    snap.assert_unchanged()
    pt.map(0x1000, 0x9000_0000, K4, R)
    with pytest.raises(InvalidFlags):
        pt.protect(0x1000, W)
    with pytest.raises(InvalidFlags):
        pt.remap(0x1000, 0x9000_1000, W)
    assert pt.query(0x1000) == (0x9000_0000, R, K4)


@pytest.mark.parametrize("fmt", MODES, ids=MODE_IDS)
def test_already_mapped_and_mapped_to_huge_page(fmt: PagingFormat) -> None:
    mem, fa, pt = make(fmt)
    pt.map(0x1000, 0x9000_0000, K4, R)
    pt.map(0x4020_0000, 0xA020_0000, M2, RW)
    pt.map(0x8000_0000, 0x1_0000_0000, G1, R | X)
    snap = Snapshot(mem, fa, pt)
    with pytest.raises(AlreadyMapped, match="0x1000"):
        pt.map(0x1000, 0x9000_0000, K4, R)                  # same slot
    with pytest.raises(AlreadyMapped):
        pt.map(0x0, 0x9000_0000, M2, R)                      # a table is in the 2M slot
    with pytest.raises(AlreadyMapped):
        pt.map(0x4020_0000, 0xB000_0000, M2, R)              # a 2M leaf is in the slot
    with pytest.raises(AlreadyMapped):
        pt.map(0x4000_0000, 0xC000_0000, G1, R)              # a table is in the 1G slot
    with pytest.raises(MappedToHugePage, match="0x40201000"):
        pt.map(0x4020_1000, 0x9000_1000, K4, R)              # 4K inside a 2M leaf
    with pytest.raises(MappedToHugePage):
        pt.map(0x8000_5000, 0x9000_1000, K4, R)              # 4K inside a 1G leaf
    with pytest.raises(MappedToHugePage):
        pt.map(0x8020_0000, 0xA000_0000, M2, R)              # 2M inside a 1G leaf
    snap.assert_unchanged()


@pytest.mark.parametrize("fmt", MODES, ids=MODE_IDS)
def test_empty_flags_make_a_placeholder(fmt: PagingFormat) -> None:
    _mem, fa, pt = make(fmt)
    pt.map(0x20_0000, 0x9020_0000, M2, NONE)
    slot = pt.lookup(0x20_0000)
    assert slot.raw == 0x2408_0000                          # PPN only, V=0
    with pytest.raises(NotMapped):
        pt.query(0x20_0000)
    with pytest.raises(NotMapped):
        pt.protect(0x20_0000, R)
    assert leaves(pt) == []
    assert leaves(pt, placeholders=True) == [(0x20_0000, 0x9020_0000, M2, 0)]
    with pytest.raises(AlreadyMapped):
        pt.map(0x20_0000, 0x9020_0000, M2, R)
    with pytest.raises(AlreadyMapped):
        pt.map(0x20_1000, 0x9020_1000, K4, R)               # the placeholder sits in the way
    assert pt.unmap(0x20_0000) == (0x9020_0000, NONE, M2)
    assert fa.in_use == 1
    with pytest.raises(NotMapped):
        pt.unmap(0x20_0000)


@pytest.mark.parametrize("fmt", MODES, ids=MODE_IDS)
def test_single_operations_on_unmapped_addresses(fmt: PagingFormat) -> None:
    mem, fa, pt = make(fmt)
    pt.map(0x1000, 0x9000_0000, K4, R)
    snap = Snapshot(mem, fa, pt)
    for va in (0x2000, 0x4000_0000, UPPER_START[fmt.name]):
        with pytest.raises(NotMapped, match=f"{va:#x}"):
            pt.unmap(va)
        with pytest.raises(NotMapped):
            pt.remap(va, 0x9000_0000, R)
        with pytest.raises(NotMapped):
            pt.protect(va, R)
        with pytest.raises(NotMapped):
            pt.query(va)
    snap.assert_unchanged()


# --------------------------------------------------------------------------- map_region


@pytest.mark.parametrize("fmt", MODES, ids=MODE_IDS)
def test_map_region_allow_huge_picks_the_largest_aligned_leaf(fmt: PagingFormat) -> None:
    _mem, _fa, pt = make(fmt)
    sizes = SIZES[fmt.name]
    top = sizes[-1]
    below = sizes[:-1]
    va = top - sum(below)                  # aligned to 4K only; then 2M, 1G, ... boundaries in turn
    size = top + 2 * sum(below)
    pa = va + 3 * top
    expected_sizes = [*below, top, *below[::-1]]
    expected_vas = [va + sum(expected_sizes[:i]) for i in range(len(expected_sizes))]
    assert expected_vas[len(below)] == top
    vas, pas, szs = pt.plan_region(va, pa, size, True)
    assert (vas.tolist(), pas.tolist(), szs.tolist()) == (expected_vas, [v + 3 * top for v in expected_vas],
                                                          expected_sizes)
    pt.map_region(va, pa, size, RW, allow_huge=True)
    assert leaves(pt) == [(v, v + 3 * top, s, RW) for v, s in zip(expected_vas, expected_sizes, strict=True)]
    assert pt.walk().level.tolist() == [depth_of(s) for s in expected_sizes]
    assert pt.query(va + size - 1) == (pa + size - 1, RW, K4)
    assert pt.query(top + 0x1234) == (top + 0x1234 + 3 * top, RW, top)


def test_map_region_allow_huge_when_pa_is_only_2m_aligned_to_va() -> None:
    _mem, _fa, pt = make(SV39)
    va = G1 - M2 - K4
    size = K4 + M2 + G1 + M2 + K4
    pt.map_region(va, va + M2, size, R, allow_huge=True)
    got = leaves(pt)
    assert [s for _, _, s, _ in got] == [K4] + [M2] * 514 + [K4]
    assert all(p == v + M2 and f == R for v, p, _, f in got)
    assert got[1][0] == G1 - M2
    assert got[-1][0] == va + size - K4


@pytest.mark.parametrize("fmt", MODES, ids=MODE_IDS)
def test_map_region_without_huge_uses_4k_pages(fmt: PagingFormat) -> None:
    _mem, fa, pt = make(fmt)
    va = M2 - 2 * K4
    pt.map_region(va, 0x4000_0000 - 2 * K4, 4 * K4 + M2, R)
    got = leaves(pt)
    assert len(got) == 4 + 512
    assert got == [(va + i * K4, 0x4000_0000 - 2 * K4 + i * K4, K4, R) for i in range(516)]
    assert fa.in_use == 1 + (fmt.depth_count - 2) + 3          # three last-level tables


def test_map_region_with_an_array_of_pas() -> None:
    _mem, _fa, pt = make(SV39)
    n = 20
    pas = (np.random.default_rng(7).permutation(n).astype(np.uint64) * np.uint64(K4) + np.uint64(0x9000_0000))
    va = 0x1F_F000 - 5 * K4                              # crosses a 2M boundary
    pt.map_region(va, pas, n * K4, RW | U)
    assert leaves(pt) == [(va + i * K4, int(p), K4, RW | U) for i, p in enumerate(pas.tolist())]
    for i in (0, 7, 19):
        assert pt.query(va + i * K4 + 0x10) == (int(pas[i]) + 0x10, RW | U, K4)


def test_map_region_array_shape_and_alignment_are_checked() -> None:
    mem, fa, pt = make(SV39)
    snap = Snapshot(mem, fa, pt)
    with pytest.raises(ValueError, match="expected 4"):
        pt.map_region(0x1000, np.zeros(3, dtype=np.uint64), 4 * K4, R)
    with pytest.raises(NotAligned):
        pt.map_region(0x1000, np.array([0, 0x800, 0x2000, 0x3000], dtype=np.uint64), 4 * K4, R)
    snap.assert_unchanged()


def test_map_region_array_pa_too_wide_is_an_invalid_address() -> None:
    """errors.py: InvalidAddress is "a PA wider than the format allows" — as for an int target."""
    mem, fa, pt = make(SV39)
    snap = Snapshot(mem, fa, pt)
    with pytest.raises(InvalidAddress):
        pt.map_region(0x1000, (1 << 56) - K4, 2 * K4, R)
    with pytest.raises(InvalidAddress):
        pt.map_region(0x1000, np.array([0, 1 << 56, 0x2000, 0x3000], dtype=np.uint64), 4 * K4, R)
    snap.assert_unchanged()


@pytest.mark.parametrize("n", [511, 514])
def test_map_region_array_of_wrong_length_with_allow_huge_is_rejected(n: int) -> None:
    """An array must hold one PA per page whatever `allow_huge` says (513 pages here)."""
    mem, fa, pt = make(SV39)
    snap = Snapshot(mem, fa, pt)
    pas = np.arange(n, dtype=np.uint64) * np.uint64(K4) + np.uint64(0x4000_0000)
    with pytest.raises(ValueError, match="expected 513"):
        pt.map_region(0x20_0000, pas, 513 * K4, R, allow_huge=True)
    snap.assert_unchanged()


def test_map_region_array_with_allow_huge_maps_each_page_to_its_pa() -> None:
    """With allow_huge, an array target may use a 2M leaf only where its 512 PAs are contiguous."""
    _mem, _fa, pt = make(SV39)
    n = 1024 + 1
    pas = np.arange(n, dtype=np.uint64) * np.uint64(K4) + np.uint64(0x4000_0000)
    pas[2] = np.uint64(0x7000_0000)                    # breaks the first 2M run only
    pt.map_region(0x20_0000, pas, n * K4, R, allow_huge=True)
    mapped = {v + off: p + off for v, p, s, _ in leaves(pt) for off in range(0, s, K4)}
    assert mapped == {0x20_0000 + i * K4: p for i, p in enumerate(pas.tolist())}
    assert pt.query(0x20_2000)[0] == 0x7000_0000


def test_map_region_with_a_callable() -> None:
    _mem, _fa, pt = make(SV39)
    calls: list[int] = []
    va = M2 - K4
    base = 0x1_0000_0000 - K4

    def target(v: int) -> int:
        calls.append(v)
        return v - va + base

    pt.map_region(va, target, K4 + M2 + K4, RW, allow_huge=True)
    assert calls == [M2 - K4, M2, 2 * M2]               # asked once per leaf, at its start
    assert leaves(pt) == [(M2 - K4, base, K4, RW), (M2, base + K4, M2, RW), (2 * M2, base + K4 + M2, K4, RW)]

    pt.map_region(0x4000_0000, lambda v: 0x9000_0000 + (0x4000_0000 + 2 * K4 - v), 3 * K4, R)
    assert pt.query(0x4000_0000)[0] == 0x9000_2000
    assert pt.query(0x4000_2000)[0] == 0x9000_0000


def test_map_region_callable_results_are_checked() -> None:
    mem, fa, pt = make(SV39)
    snap = Snapshot(mem, fa, pt)
    with pytest.raises(NotAligned, match="0x90000800"):
        pt.map_region(0x1000, lambda v: 0x9000_0800, 2 * K4, R)
    with pytest.raises(InvalidAddress):
        pt.map_region(0x1000, lambda v: 1 << 56, 2 * K4, R)
    snap.assert_unchanged()


@pytest.mark.parametrize("fmt", MODES, ids=MODE_IDS)
def test_region_arguments_are_checked(fmt: PagingFormat) -> None:
    mem, fa, pt = make(fmt)
    snap = Snapshot(mem, fa, pt)
    with pytest.raises(NotAligned):
        pt.map_region(0x1800, 0x9000_0000, K4, R)
    with pytest.raises(NotAligned):
        pt.map_region(0x1000, 0x9000_0000, 0x1800, R)
    with pytest.raises(NotAligned):
        pt.map_region(0x1000, 0x9000_0800, K4, R)
    with pytest.raises(NotAligned):
        pt.map_region(0x1000, 0x9000_0000, 0, R)
    with pytest.raises(InvalidAddress):
        pt.map_region(NON_CANONICAL[fmt.name], 0x9000_0000, K4, R)
    with pytest.raises(InvalidAddress):
        pt.map_region(NON_CANONICAL[fmt.name] - K4, 0x9000_0000, 2 * K4, R)    # runs into the hole
    with pytest.raises(InvalidAddress):
        pt.map_region(0x1000, (1 << 56) - K4, 2 * K4, R)                         # PA runs past 56 bits
    with pytest.raises(NotAligned):
        pt.unmap_region(0x1800, K4)
    with pytest.raises(NotAligned):
        pt.protect_region(0x1800, K4, R)
    with pytest.raises(InvalidAddress):
        pt.unmap_region(NON_CANONICAL[fmt.name], K4)
    with pytest.raises(InvalidAddress):
        pt.protect_region(NON_CANONICAL[fmt.name], K4, R)
    snap.assert_unchanged()


# --------------------------------------------------------------------------- splitting


@pytest.mark.parametrize(("fmt", "size"), [(f, s) for f, s in all_sizes() if s > K4],
                         ids=[f"{f.name}-{s:#x}" for f, s in all_sizes() if s > K4])
def test_unmap_region_inside_a_huge_page_splits_it(fmt: PagingFormat, size: int) -> None:
    _mem, fa, pt = make(fmt)
    va, pa = size, 2 * size
    pt.map(va, pa, size, RW | U)
    before = fa.in_use
    removed = pt.unmap_region(va + K4, K4)
    assert list(zip(removed.va.tolist(), removed.pa.tolist(), removed.size.tolist(), removed.flags.tolist(),
                    strict=True)) == [(va + K4, pa + K4, K4, RW | U)]
    splits = depth_of(size)                          # one new table per level down to 4K
    assert fa.in_use == before + splits
    got = leaves(pt)
    assert len(got) == 511 * splits
    assert Counter(s for _, _, s, _ in got) == {s: 511 for s in SIZES[fmt.name] if s < size}
    assert all(p - pa == v - va and f == RW | U for v, p, _, f in got)
    assert all(r & 0x3FF == LOW_BITS[RW | U] for r in pt.walk().raw.tolist())
    # the leaves tile [va, va + size) except the removed page
    covered = [(v, v + s) for v, _, s, _ in got]
    assert covered[0] == (va, va + K4)
    assert covered[1][0] == va + 2 * K4
    assert all(a[1] == b[0] for a, b in itertools.pairwise(covered[1:]))
    assert covered[-1][1] == va + size
    with pytest.raises(NotMapped):
        pt.query(va + K4 + 8)
    assert pt.query(va + 8) == (pa + 8, RW | U, K4)
    assert pt.query(va + 3 * K4 + 5) == (pa + 3 * K4 + 5, RW | U, K4)
    assert pt.query(va + size - 1) == (pa + size - 1, RW | U, size // 512)
    # removing the rest frees every table again
    assert len(pt.unmap_region(va, size, missing_ok=True)) == 511 * splits
    assert fa.in_use == 1


@pytest.mark.parametrize("fmt", MODES, ids=MODE_IDS)
def test_protect_region_inside_a_1g_page_splits_only_where_needed(fmt: PagingFormat) -> None:
    _mem, fa, pt = make(fmt)
    pt.map(G1, 0x1_0000_0000, G1, RW)
    pt.map(2 * G1, 0x2_0000_0000, G1, RW)
    base = fa.in_use
    pt.protect_region(G1 + M2 + K4, K4, R)
    pt.protect_region(2 * G1 + 2 * M2, 2 * M2, R | X)
    assert fa.in_use == base + 3                    # 1G→2M twice, 2M→4K once
    got = leaves(pt)
    first = [m for m in got if m[0] < 2 * G1]
    second = [m for m in got if m[0] >= 2 * G1]
    assert Counter(s for _, _, s, _ in first) == {M2: 511, K4: 512}
    assert [(v, f) for v, _, _, f in first if f != RW] == [(G1 + M2 + K4, R)]
    assert all(p == v - G1 + 0x1_0000_0000 for v, p, _, _ in first)
    assert Counter(s for _, _, s, _ in second) == {M2: 512}
    assert [(v, f) for v, _, _, f in second if f != RW] == [(2 * G1 + 2 * M2, R | X), (2 * G1 + 3 * M2, R | X)]
    assert all(p == v - 2 * G1 + 0x2_0000_0000 for v, p, _, _ in second)
    assert pt.query(G1 + M2 + K4 + 1) == (0x1_0020_1001, R, K4)
    assert pt.query(G1 + M2 + 2 * K4) == (0x1_0020_2000, RW, K4)
    assert pt.query(G1 + 5 * M2) == (0x1_00A0_0000, RW, M2)
    slot = pt.lookup(G1 + M2 + K4)
    assert slot.raw == pte(0x1_0020_1000, R)


def test_protect_region_of_whole_leaves_does_not_split() -> None:
    _mem, fa, pt = make(SV39)
    pt.map(G1, 0x1_0000_0000, G1, RW)
    pt.map_region(0x20_0000, 0x4020_0000, 2 * M2, RW, allow_huge=True)
    before = fa.in_use
    pt.protect_region(G1, G1, R)
    pt.protect_region(0x20_0000, 2 * M2, R | X)
    assert fa.in_use == before
    assert leaves(pt) == [(0x20_0000, 0x4020_0000, M2, R | X), (0x40_0000, 0x4040_0000, M2, R | X),
                          (G1, 0x1_0000_0000, G1, R)]


# --------------------------------------------------------------------------- freeing empty tables


@pytest.mark.parametrize("fmt", MODES, ids=MODE_IDS)
def test_tables_that_become_empty_are_freed(fmt: PagingFormat) -> None:
    _mem, fa, pt = make(fmt)
    pages = [M2 + i * K4 for i in (0, 3, 511)]
    for i, v in enumerate(pages):
        pt.map(v, 0x9000_0000 + i * K4, K4, R)
    full = 1 + (fmt.depth_count - 1)
    assert fa.in_use == full
    pt.unmap(pages[0])
    pt.unmap(pages[2])
    assert fa.in_use == full                       # one page is left: nothing freed yet
    pt.unmap(pages[1])
    assert fa.in_use == 1
    pt.map(M2, 0xA000_0000, M2, RW)                # the 2M slot is free for a leaf again
    assert pt.query(M2 + 5) == (0xA000_0005, RW, M2)
    assert fa.in_use == full - 1


@pytest.mark.parametrize("fmt", MODES, ids=MODE_IDS)
def test_unmap_region_frees_tables_and_a_huge_map_succeeds_after(fmt: PagingFormat) -> None:
    _mem, fa, pt = make(fmt)
    pt.map_region(G1 - 4 * K4, 0x9000_0000, 8 * K4 + M2, R)   # spans two 1G slots
    upper = UPPER_START[fmt.name]
    pt.map(upper, 0x9100_0000, K4, R)
    assert fa.in_use > 3
    removed = pt.unmap_region(G1 - 4 * K4, 8 * K4 + M2)
    assert len(removed) == 8 + 512
    assert leaves(pt) == [(upper, 0x9100_0000, K4, R)]
    assert fa.in_use == 1 + (fmt.depth_count - 1)   # only the upper page's path is left
    pt.map(G1, 0x4000_0000, G1, R)
    pt.map(G1 - M2, 0x4000_0000 - M2, M2, R)
    pt.unmap_region(upper, K4)
    pt.unmap_region(G1 - M2, M2 + G1)
    assert fa.in_use == 1
    pt.destroy()
    assert fa.in_use == 0


_leaf_sets_settings = fuzz(short=40, long=1_000)


@st.composite
def _leaf_sets(draw: st.DrawFn) -> tuple[PagingFormat, list[tuple[int, int]], bool, tuple[int, int]]:
    fmt = draw(st.sampled_from([SV39, SV48]))
    slots = draw(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.sampled_from([K4, M2])),
                          min_size=1, max_size=12, unique_by=lambda t: t[:2]))
    chosen: dict[int, int] = {}
    for g, m, size in slots:                        # 4K pages or 2M leaves in four 1G slots of four 2M each
        base = g * G1 + m * M2
        if size == M2:
            chosen[base] = M2
        else:
            for k in draw(st.sets(st.sampled_from([0, 1, 5, 510, 511]), min_size=1)):
                chosen[base + k * K4] = K4
    edges = sorted({g * G1 + m * M2 // 2 for g in range(4) for m in range(8)} | {4 * G1})
    lo, hi = sorted(draw(st.lists(st.sampled_from(edges), min_size=2, max_size=2, unique=True)))
    return fmt, sorted(chosen.items()), draw(st.booleans()), (lo, hi)


@_leaf_sets_settings
@given(_leaf_sets())
def test_unmap_region_frees_exactly_what_single_unmaps_free(case: tuple[PagingFormat, list[tuple[int, int]], bool,
                                                                        tuple[int, int]]) -> None:
    """Two identical setups (with a borrowed upper half, sometimes); one unmaps a range at once, the other
    every leaf the range covers with unmap (whose bottom-up freeing is the reference): the same bytes and
    the same live frames after, the borrowed tables untouched."""
    fmt, chosen, borrow, (lo, hi) = case
    upper = UPPER_START[fmt.name]
    twins = []
    for _ in range(2):
        mem = PhysMem([(RAM, 4 << 20)])
        fa = FrameAllocator(mem)
        kernel = PageTable(fmt, mem, fa)
        pt = PageTable(fmt, mem, fa)
        for va, size in chosen:
            pt.map(va, RAM + (va % G1), size, R)
            if borrow:
                kernel.map(upper + va, RAM + (va % G1), size, R)
        if borrow:
            pt.copy_from(kernel, upper, (1 << 64) - upper)
        twins.append((mem, fa, pt))
    for offset in ((0, upper) if borrow else (0,)):
        start, end = offset + lo, offset + hi
        inside = [(va + offset, size) for va, size in chosen if start <= va + offset and va + offset + size <= end]
        if any(va + offset < end and start < va + offset + size for va, size in chosen
               if (va + offset, size) not in inside):
            continue                                 # a leaf sticks out: the bulk call would split it
        (mem_a, fa_a, a), (mem_b, fa_b, b) = twins
        removed = a.unmap_region(start, end - start, missing_ok=True)
        assert list(zip(removed.va.tolist(), removed.size.tolist(), strict=True)) == inside
        for va, _ in inside:
            b.unmap(va)
        assert fa_a.live() == fa_b.live()
        assert np.array_equal(mem_a.regions[0].data, mem_b.regions[0].data)


# --------------------------------------------------------------------------- all-or-nothing


@pytest.mark.parametrize("fmt", MODES, ids=MODE_IDS)
def test_map_region_conflict_changes_nothing(fmt: PagingFormat) -> None:
    mem, fa, pt = make(fmt)
    pt.map(G1 + K4, 0x9000_0000, K4, R)
    pt.map(2 * G1 + M2, 0xA000_0000, M2, R)
    snap = Snapshot(mem, fa, pt)
    # starts in fresh tables below G1, hits the existing 4K page in the middle
    with pytest.raises(AlreadyMapped, match=f"{G1 + K4:#x}"):
        pt.map_region(G1 - 8 * K4, 0x1_0000_0000, 16 * K4, RW)
    with pytest.raises(MappedToHugePage):
        pt.map_region(2 * G1 + M2 - 8 * K4, 0x1_0000_0000, 16 * K4, RW)
    with pytest.raises(AlreadyMapped):
        pt.map_region(2 * G1, 0x1_0000_0000, 2 * M2, RW, allow_huge=True)
    snap.assert_unchanged()


@pytest.mark.parametrize("fmt", MODES, ids=MODE_IDS)
def test_map_region_out_of_memory_changes_nothing(fmt: PagingFormat) -> None:
    # a region across a 2M boundary in empty space needs depth_count new tables; leave one fewer free
    mem, fa, pt = make(fmt, frames=fmt.depth_count)
    assert fa.in_use == 1
    snap = Snapshot(mem, fa, pt)
    with pytest.raises(NoMemory):
        pt.map_region(G1 + M2 - K4, 0x9000_0000, 2 * K4, R)
    snap.assert_unchanged()
    pt.map(G1 + M2 - K4, 0x9000_0000, K4, R)         # one page needs one table fewer: it fits exactly
    assert fa.in_use == fmt.depth_count
    snap = Snapshot(mem, fa, pt)
    with pytest.raises(NoMemory):
        pt.map(G1 + M2, 0x9000_1000, K4, R)
    with pytest.raises(NoMemory):
        pt.map_region(2 * G1, 0x9000_1000, K4, R)
    snap.assert_unchanged()


@pytest.mark.parametrize("fmt", MODES, ids=MODE_IDS)
def test_map_pages_out_of_memory_at_a_lower_level_frees_the_upper_tables(fmt: PagingFormat) -> None:
    """map_pages plans no room check: the tables of one level are allocated before the next level's fail."""
    mem, fa, pt = make(fmt, frames=fmt.depth_count)        # the root and all but one of the tables needed
    snap = Snapshot(mem, fa, pt)
    with pytest.raises(NoMemory):
        pt.map_pages(np.array([G1 - K4, G1 + K4], dtype=np.uint64), np.array([RAM, RAM], dtype=np.uint64), R)
    snap.assert_unchanged()


@pytest.mark.parametrize("fmt", MODES, ids=MODE_IDS)
def test_map_pages_in_any_order_writes_the_same_table(fmt: PagingFormat) -> None:
    vas = [G1 + 5 * K4, 0x1000, G1 - K4, G1 + K4, 0x3000, UPPER_START[fmt.name]]
    pas = [RAM + i * K4 for i in range(len(vas))]
    ordered = sorted(zip(vas, pas, strict=True))
    mem_a, _, a = make(fmt)
    a.map_pages(np.array(vas, dtype=np.uint64), np.array(pas, dtype=np.uint64), RW)
    mem_b, _, b = make(fmt)
    b.map_pages(np.array([v for v, _ in ordered], dtype=np.uint64), np.array([p for _, p in ordered],
                dtype=np.uint64), RW)
    assert leaves(a) == [(v, p, K4, RW) for v, p in ordered]
    assert np.array_equal(mem_a.regions[0].data, mem_b.regions[0].data)
    with pytest.raises(AlreadyMapped, match=f"cannot map {G1 - K4:#x}"):     # the lowest VA in the way
        a.map_pages(np.array([G1 + 7 * K4, G1 - K4], dtype=np.uint64), np.array([RAM, RAM], dtype=np.uint64), R)


@pytest.mark.parametrize("missing_ok", [False, True])
@pytest.mark.parametrize("fmt", MODES, ids=MODE_IDS)
def test_unmap_region_over_a_hole(fmt: PagingFormat, missing_ok: bool) -> None:
    mem, fa, pt = make(fmt)
    for i in (0, 1, 3):
        pt.map(0x10_0000 + i * K4, 0x9000_0000 + i * K4, K4, R)
    snap = Snapshot(mem, fa, pt)
    if not missing_ok:
        with pytest.raises(NotMapped):
            pt.unmap_region(0x10_0000, 4 * K4)
        snap.assert_unchanged()
        return
    removed = pt.unmap_region(0x10_0000, 4 * K4, missing_ok=True)
    assert removed.va.tolist() == [0x10_0000, 0x10_1000, 0x10_3000]
    assert removed.pa.tolist() == [0x9000_0000, 0x9000_1000, 0x9000_3000]
    assert leaves(pt) == []
    assert fa.in_use == 1


@pytest.mark.parametrize("fmt", MODES, ids=MODE_IDS)
def test_region_ops_over_a_hole_do_not_split_first(fmt: PagingFormat) -> None:
    mem, fa, pt = make(fmt)
    pt.map(M2, 0xA000_0000, M2, RW)
    snap = Snapshot(mem, fa, pt)
    with pytest.raises(NotMapped):
        pt.unmap_region(M2 + M2 // 2, M2)          # the second half runs into a hole
    with pytest.raises(NotMapped):
        pt.protect_region(M2 + M2 // 2, M2, R)
    with pytest.raises(NotMapped):
        pt.unmap_region(0, 2 * M2)
    with pytest.raises(InvalidFlags):
        pt.protect_region(M2 + K4, K4, W)          # would need a split
    snap.assert_unchanged()


@pytest.mark.parametrize("fmt", MODES, ids=MODE_IDS)
def test_protect_region_missing_ok(fmt: PagingFormat) -> None:
    _mem, _fa, pt = make(fmt)
    pt.map(0x1000, 0x9000_1000, K4, RW)
    pt.map(0x3000, 0x9000_3000, K4, RW)
    pt.protect_region(0x0, 4 * K4, R | X, missing_ok=True)
    assert leaves(pt) == [(0x1000, 0x9000_1000, K4, R | X), (0x3000, 0x9000_3000, K4, R | X)]


def test_unmap_region_out_of_memory_while_splitting_changes_nothing() -> None:
    """Two 2M leaves cut at both ends need two new tables; with one frame free, nothing may change."""
    mem, fa, pt = make(SV39, frames=3)
    pt.map(0x4000_0000, 0x1_0000_0000, M2, RW)
    pt.map(0x4020_0000, 0x1_0020_0000, M2, RW)
    assert fa.in_use == 2
    snap = Snapshot(mem, fa, pt)
    with pytest.raises(NoMemory):
        pt.unmap_region(0x4010_0000, M2)
    snap.assert_unchanged()


# --------------------------------------------------------------------------- walk


@pytest.mark.parametrize("fmt", MODES, ids=MODE_IDS)
def test_walk_sign_extends_and_sorts(fmt: PagingFormat) -> None:
    _mem, _fa, pt = make(fmt)
    upper = UPPER_START[fmt.name]
    top = (1 << 64) - K4
    pt.map(top, 0x9000_3000, K4, R)
    pt.map(upper, 0x9000_2000, K4, R)
    pt.map(0x1000, 0x9000_1000, K4, R)
    pt.map(upper + G1, 0xC000_0000, G1, RW)
    w = pt.walk()
    assert w.va.tolist() == [0x1000, upper, upper + G1, top]
    assert w.pa.tolist() == [0x9000_1000, 0x9000_2000, 0xC000_0000, 0x9000_3000]
    assert w.size.tolist() == [K4, K4, G1, K4]
    assert w.total_size() == 3 * K4 + G1
    assert [m.va for m in w] == w.va.tolist()
    assert pt.query(top + 0xFFF) == (0x9000_3FFF, R, K4)
    assert pt.query(upper + G1 + 0x10) == (0xC000_0010, RW, G1)
    assert pt.walk(upper).va.tolist() == [upper, upper + G1, top]
    assert pt.walk(0, 0x2000).va.tolist() == [0x1000]
    assert pt.walk(upper + G1 + M2, upper + G1 + 2 * M2).va.tolist() == [upper + G1]   # overlapping leaf
    assert pt.walk(0x2000, upper).va.tolist() == []
    assert str(w[0]).startswith("0x0000000000001000 -> 0x90001000   4K r----- level 0 pte 0x")


@pytest.mark.parametrize("fmt", MODES, ids=MODE_IDS)
def test_region_ops_at_the_top_of_the_address_space(fmt: PagingFormat) -> None:
    _mem, fa, pt = make(fmt)
    top = (1 << 64) - K4
    pt.map(top, 0x9000_0000, K4, RW)
    pt.protect_region(top, K4, R)
    assert pt.query(top) == (0x9000_0000, R, K4)
    removed = pt.unmap_region(top, K4)
    assert removed.va.tolist() == [top]
    assert fa.in_use == 1


def test_walk_reports_table_pointers_outside_ram() -> None:
    mem, _fa, pt = make(SV39)
    pt.map(0x1000, 0x9000_0000, K4, R)
    pt.map(0xC000_0000, 0x4000_0000, G1, R)
    mem.write_u64(pt.root_paddr + 2 * 8, (0x1_0000_0000 >> 12) << 10 | 0x1)   # root entry 2 -> no RAM
    w = pt.walk()
    assert list(zip(w.va.tolist(), w.size.tolist(), strict=True)) == [(0x1000, K4), (0xC000_0000, G1)]
    assert len(w.problems) == 1
    assert "0x80000000" in w.problems[0]
    assert "0x100000000" in w.problems[0]
    assert pt.walk(0, 0x8000_0000).problems == ()


# --------------------------------------------------------------------------- sharing and teardown


@pytest.mark.parametrize("fmt", MODES, ids=MODE_IDS)
def test_copy_from_shares_root_entries(fmt: PagingFormat) -> None:
    mem = PhysMem([(RAM, 4 << 20)])
    fa = FrameAllocator(mem)
    kernel = PageTable(fmt, mem, fa)
    upper = UPPER_START[fmt.name]
    kernel.map(upper + M2, 0x8020_0000, M2, RW)
    kernel.map(upper + 5 * G1, 0x4000_0000, G1, R | X)
    kernel_tables = fa.in_use
    user = PageTable(fmt, mem, fa)
    user.map(0x1000, 0x9000_0000, K4, R | U)
    user_tables = fa.in_use - kernel_tables
    user.copy_from(kernel, upper, (1 << 64) - upper)
    half = fmt.levels[0].entries // 2
    assert fa.in_use == kernel_tables + user_tables          # shared, not copied
    assert mem.words(user.root_paddr + half * 8, half).tolist() == \
        mem.words(kernel.root_paddr + half * 8, half).tolist()
    assert user.query(upper + M2 + 0x10) == (0x8020_0010, RW, M2)
    assert leaves(user) == [(0x1000, 0x9000_0000, K4, R | U), (upper + M2, 0x8020_0000, M2, RW),
                            (upper + 5 * G1, 0x4000_0000, G1, R | X)]
    with pytest.raises(AlreadyMapped):
        user.copy_from(kernel, 0, K4)                          # root entry 0 is the user's own
    user.copy_from(kernel, upper, K4)                          # re-borrowing is fine
    user.destroy()
    assert fa.in_use == kernel_tables                          # the kernel's tables survive
    assert kernel.query(upper + M2) == (0x8020_0000, RW, M2)
    kernel.unmap(upper + M2)
    kernel.unmap(upper + 5 * G1)
    assert fa.in_use == 1
    kernel.destroy()
    assert fa.in_use == 0


def test_copy_from_needs_the_same_format_and_memory() -> None:
    mem, fa, pt = make(SV39)
    _other_mem, _other_fa, other = make(SV39)
    with pytest.raises(ValueError, match="same"):
        pt.copy_from(other, 0, G1)
    with pytest.raises(ValueError, match="same"):
        pt.copy_from(PageTable(SV48, mem, fa), 0, G1)
    pt.copy_from(PageTable(SV39, mem, fa), 0, 0)               # size 0: nothing to do


@pytest.mark.parametrize("fmt", MODES, ids=MODE_IDS)
def test_destroy_frees_every_table(fmt: PagingFormat) -> None:
    _mem, fa, pt = make(fmt)
    pt.map_region(G1 - 4 * K4, 0x9000_0000, 8 * K4, R)
    pt.map(UPPER_START[fmt.name], 0x9000_0000, M2, R)
    assert fa.in_use > 1
    pt.destroy()
    assert fa.in_use == 0
    assert fa.live() == {}


def test_adopting_an_existing_root() -> None:
    mem, fa, pt = make(SV39)
    pt.map(0x1000, 0x9000_0000, K4, R)
    again = PageTable(SV39, mem, fa, root=pt.root_paddr)
    assert again.query(0x1000) == (0x9000_0000, R, K4)
    with pytest.raises(InvalidAddress, match="0x80000800"):
        PageTable(SV39, mem, fa, root=RAM + 0x800)
    with pytest.raises(InvalidAddress, match="0x1000"):
        PageTable(SV39, mem, fa, root=0x1000)


# --------------------------------------------------------------------------- stateful model


WINDOW = G1                               # four 2M chunks at 1 GiB, inside one Sv39 root entry
CHUNKS = 4
PAGES = CHUNKS * 512
LINEAR = 0x1_0000_0000                    # PA = VA + LINEAR keeps 2M alignment
FLAG_SETS = [R, RW, R | X, X, R | U, RW | U]

page_index = st.one_of(st.integers(0, PAGES - 1), st.sampled_from([0, 1, 510, 511, 512, 1023, 1024, 2047]))
flag_set = st.sampled_from(FLAG_SETS)


class PageTableModel(RuleBasedStateMachine):
    """Random 4K/2M maps, unmaps, protects and region operations, checked against a dict of leaves."""

    def __init__(self) -> None:
        super().__init__()
        self.mem, self.fa, self.pt = make(SV39)
        self.model: dict[int, tuple[int, int, MappingFlags]] = {}     # leaf va -> (pa, size, flags)

    # ----------------------------------------------------------- model helpers
    def leaf_of(self, v: int) -> int | None:
        if v in self.model:
            return v
        head = v & ~(M2 - 1)
        if head in self.model and self.model[head][1] == M2:
            return head
        return None

    def overlapping(self, start: int, end: int) -> list[int]:
        return sorted(v for v, (_, s, _) in self.model.items() if v < end and start < v + s)

    def split(self, v: int) -> None:
        pa, size, flags = self.model.pop(v)
        assert size == M2
        for i in range(512):
            self.model[v + i * K4] = (pa + i * K4, K4, flags)

    def covered(self, start: int, end: int) -> int:
        return sum(min(v + s, end) - max(v, start) for v, (_, s, _) in self.model.items()
                   if v < end and start < v + s)

    def expected_tables(self) -> int:
        if not self.model:
            return 1
        chunks = {v >> 21 for v, (_, s, _) in self.model.items() if s == K4}
        return 2 + len(chunks)

    def cut_edges(self, start: int, end: int) -> None:
        for v in self.overlapping(start, end):
            _, s, _ = self.model[v]
            if v < start or v + s > end:
                self.split(v)

    # ----------------------------------------------------------------- rules
    @rule(page=page_index, pfn=st.integers(0, 1 << 20), flags=flag_set)
    def map_4k(self, page: int, pfn: int, flags: MappingFlags) -> None:
        va, pa = WINDOW + page * K4, pfn * K4
        head = self.leaf_of(va)
        if head is not None:
            err = MappedToHugePage if self.model[head][1] == M2 else AlreadyMapped
            with pytest.raises(err):
                self.pt.map(va, pa, K4, flags)
            return
        self.pt.map(va, pa, K4, flags)
        self.model[va] = (pa, K4, flags)

    @rule(chunk=st.integers(0, CHUNKS - 1), pfn2m=st.integers(0, 1 << 10), flags=flag_set)
    def map_2m(self, chunk: int, pfn2m: int, flags: MappingFlags) -> None:
        va, pa = WINDOW + chunk * M2, pfn2m * M2
        if self.overlapping(va, va + M2):
            with pytest.raises(AlreadyMapped):
                self.pt.map(va, pa, M2, flags)
            return
        self.pt.map(va, pa, M2, flags)
        self.model[va] = (pa, M2, flags)

    @rule(page=page_index)
    def unmap(self, page: int) -> None:
        va = WINDOW + page * K4
        head = self.leaf_of(va)
        if head is None:
            with pytest.raises(NotMapped):
                self.pt.unmap(va)
            return
        pa, size, flags = self.model.pop(head)
        assert self.pt.unmap(va) == (pa, flags, size)

    @rule(page=page_index, flags=flag_set)
    def protect(self, page: int, flags: MappingFlags) -> None:
        va = WINDOW + page * K4
        head = self.leaf_of(va)
        if head is None:
            with pytest.raises(NotMapped):
                self.pt.protect(va, flags)
            return
        pa, size, _ = self.model[head]
        assert self.pt.protect(va, flags) == size
        self.model[head] = (pa, size, flags)

    @rule(page=page_index, n=st.integers(1, 700), linear=st.booleans(), pfn=st.integers(0, 1 << 20),
          flags=flag_set, allow_huge=st.booleans())
    def map_region(self, page: int, n: int, linear: bool, pfn: int, flags: MappingFlags,
                   allow_huge: bool) -> None:
        n = min(n, PAGES - page)
        va = WINDOW + page * K4
        pa = va + LINEAR if linear else pfn * K4
        size = n * K4
        if self.overlapping(va, va + size):
            snap = Snapshot(self.mem, self.fa, self.pt)
            with pytest.raises((AlreadyMapped, MappedToHugePage)):
                self.pt.map_region(va, pa, size, flags, allow_huge)
            snap.assert_unchanged()
            return
        self.pt.map_region(va, pa, size, flags, allow_huge)
        v, p = va, pa
        while v < va + size:
            s = M2 if allow_huge and v % M2 == 0 and p % M2 == 0 and va + size - v >= M2 else K4
            self.model[v] = (p, s, flags)
            v, p = v + s, p + s

    @rule(page=page_index, n=st.integers(1, 700), missing_ok=st.booleans())
    def unmap_region(self, page: int, n: int, missing_ok: bool) -> None:
        n = min(n, PAGES - page)
        start, end = WINDOW + page * K4, WINDOW + (page + n) * K4
        if not missing_ok and self.covered(start, end) != end - start:
            snap = Snapshot(self.mem, self.fa, self.pt)
            with pytest.raises(NotMapped):
                self.pt.unmap_region(start, end - start)
            snap.assert_unchanged()
            return
        removed = self.pt.unmap_region(start, end - start, missing_ok)
        self.cut_edges(start, end)
        gone = self.overlapping(start, end)
        assert removed.va.tolist() == gone
        assert removed.pa.tolist() == [self.model[v][0] for v in gone]
        for v in gone:
            del self.model[v]

    @rule(page=page_index, n=st.integers(1, 700), flags=flag_set, missing_ok=st.booleans())
    def protect_region(self, page: int, n: int, flags: MappingFlags, missing_ok: bool) -> None:
        n = min(n, PAGES - page)
        start, end = WINDOW + page * K4, WINDOW + (page + n) * K4
        if not missing_ok and self.covered(start, end) != end - start:
            snap = Snapshot(self.mem, self.fa, self.pt)
            with pytest.raises(NotMapped):
                self.pt.protect_region(start, end - start, flags)
            snap.assert_unchanged()
            return
        self.pt.protect_region(start, end - start, flags, missing_ok)
        self.cut_edges(start, end)
        for v in self.overlapping(start, end):
            pa, s, _ = self.model[v]
            self.model[v] = (pa, s, flags)

    # ------------------------------------------------------------ invariants
    @invariant()
    def walk_matches_the_model(self) -> None:
        assert leaves(self.pt) == [(v, p, s, int(f)) for v, (p, s, f) in sorted(self.model.items())]
        assert self.fa.in_use == self.expected_tables()

    @invariant()
    def query_matches_the_model(self) -> None:
        keys = sorted(self.model)
        for v in keys[:: max(1, len(keys) // 8)]:
            p, s, f = self.model[v]
            assert self.pt.query(v + s - 1) == (p + s - 1, f, s)
        for probe in (0, 511, 512, 2047):
            va = WINDOW + probe * K4
            if self.leaf_of(va) is None:
                with pytest.raises(NotMapped):
                    self.pt.query(va)

    def teardown(self) -> None:
        self.pt.unmap_region(WINDOW, PAGES * K4, missing_ok=True)
        assert leaves(self.pt) == []
        assert self.fa.in_use == 1
        self.pt.destroy()
        assert self.fa.in_use == 0
        count("PageTable model (25 random steps against a dict)")


PageTableModel.TestCase.settings = settings(fuzz(short=30, long=1_000), stateful_step_count=25)
TestPageTableModel = PageTableModel.TestCase



# --------------------------------------------------------------------------- cyclic and aliased tables
def _ptr(table: int) -> int:
    return (table >> 12) << 10 | 0x1                     # V=1, R=W=X=0: a pointer to `table`


def test_walk_of_a_self_referencing_root_is_bounded_and_says_so() -> None:
    """512 pointers from the root to itself used to make walk() build 512**3 entries (a 1 GiB array, then
    MemoryError) and list nothing."""
    mem, _fa, pt = make(SV48)
    mem.words(pt.root_paddr, 512)[:] = _ptr(pt.root_paddr)
    w = pt.walk()
    assert len(w) == 0
    assert len(w.problems) == 1
    assert "and 511 more entries" in w.problems[0] and "a loop" in w.problems[0]
    assert f"table {pt.root_paddr:#x} the level-2 table" in w.problems[0]


def test_walk_lists_a_shared_table_under_each_sharer_and_names_them() -> None:
    """The hardware translates every alias: the walk used to list the first alone."""
    mem, _fa, pt = make(SV39)
    pt.map(0x20_0000, 0x9000_0000, K4, R)                # a PTE table under root entry 0, PMD entry 1
    slot = pt.lookup(0x20_0000, 1)
    for k in (3, 5):
        mem.write_u64(slot.table + 8 * k, slot.raw)      # PMD entries 3 and 5 share that PTE table
    w = pt.walk()
    assert w.va.tolist() == [0x20_0000, 0x60_0000, 0xa0_0000]
    assert w.pa.tolist() == [0x9000_0000] * 3
    assert w.problems == (f"the level-0 table {slot.raw >> 10 << 12:#x} is shared by 3 entries (VAs 0x200000, "
                          "0x600000, 0xa00000): its entries are listed under each",)


def test_walk_reports_a_table_used_at_two_levels() -> None:
    mem, _fa, pt = make(SV39)
    pt.map(0x20_0000, 0x9000_0000, K4, R)
    pmd = pt.lookup(0x20_0000, 1).table
    pt.map(0x4000_0000 + 0x1000, 0x9000_1000, K4, R)     # another PMD table under root entry 1
    other = pt.lookup(0x4000_0000, 1).table
    mem.write_u64(other + 8 * 7, _ptr(pmd))              # ... whose entry 7 uses the first PMD table as a PTE table
    w = pt.walk()
    assert sorted(w.va.tolist()) == [0x20_0000, 0x4000_1000]
    assert len(w.problems) == 1
    assert f"makes table {pmd:#x} the level-0 table for VA 0x40e00000" in w.problems[0]
    assert "also used at level 1" in w.problems[0]


def test_walk_memory_is_bounded_on_random_pointer_soup() -> None:
    """Every entry of every table points at some table of the region: the walk reads each table once."""
    mem = PhysMem([(RAM, 64 * K4)])
    fa = FrameAllocator(mem)
    pt = PageTable(SV57, mem, fa)
    rng = np.random.default_rng(1)
    tables = np.uint64(RAM) + rng.integers(0, 64, size=64 * 512).astype(np.uint64) * np.uint64(K4)
    mem.regions[0].words[:] = ((tables >> np.uint64(12)) << np.uint64(10)) | np.uint64(1)
    w = pt.walk()
    assert len(w) == 0 and 0 < len(w.problems) <= 64 * 5


def test_root_errors_say_which_rule_failed() -> None:
    """An aligned root outside RAM used to be reported as "not 0x1000-aligned RAM"."""
    mem, fa, _ = make(SV39)
    with pytest.raises(InvalidAddress, match=r"root table \[0x1000, 0x2000\) is not inside RAM"):
        PageTable(SV39, mem, fa, root=0x1000)
    with pytest.raises(InvalidAddress, match="is not aligned to its 0x1000-byte size"):
        PageTable(SV39, mem, fa, root=RAM + 8)


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda pt: pt.map(4096.0, RAM, K4, R), InvalidArgumentType, "virtual address must be an integer"),
    (lambda pt: pt.map(0x1000, "0x80000000", K4, R), InvalidArgumentType, "physical address must be an integer"),
    (lambda pt: pt.map(0x1000, RAM, K4, "r"), InvalidArgumentType, "flags must be an integer"),
    (lambda pt: pt.map(0x1000, RAM, K4, 1 << 8), InvalidArgument, "not MappingFlags"),
    (lambda pt: pt.map(0x1000, -K4, K4, R), InvalidAddress, "wider than"),
    (lambda pt: pt.map_region(0x1000, RAM, -K4, R), NotAligned, "must be positive"),
    (lambda pt: pt.map_region(0x1000, RAM, float(K4), R), InvalidArgumentType, "region size"),
    (lambda pt: pt.map_region(0x1000, RAM, K4, R, allow_huge=1), InvalidArgumentType, "allow_huge"),
    (lambda pt: pt.map_region(0x1000, np.array([RAM + 0.5]), K4, R), InvalidArgumentType, "not floats"),
    (lambda pt: pt.map_pages(np.array([0x1000]), np.array([-K4]), R), InvalidArgument, "is negative"),
    (lambda pt: pt.unmap_region(0x1000, K4 * 1.0), InvalidArgumentType, "region size"),
    (lambda pt: pt.query(None), InvalidArgumentType, "virtual address must be an integer"),
    (lambda pt: pt.lookup(0x1000, depth=7), InvalidArgument, "depth 7 must be below 3"),
    (lambda pt: pt.walk(-1), InvalidArgument, "walk start -1 is negative"),
    (lambda pt: pt.walk(0, 1 << 65), InvalidArgument, "walk end"),
    (lambda pt: pt.walk(placeholders=None), InvalidArgumentType, "placeholders"),
])
def test_bad_arguments_raise_and_change_nothing(call: object, error: type[Exception], message: str) -> None:
    mem, fa, pt = make(SV39)
    pt.map(0x5000, RAM + 0x10_0000, K4, RW)
    before = (mem.regions[0].data.tobytes(), fa.live())
    with pytest.raises(error, match=message):
        call(pt)  # type: ignore[operator]
    assert (mem.regions[0].data.tobytes(), fa.live()) == before


def test_region_operations_refuse_tables_that_are_not_a_tree() -> None:
    """On an adopted table whose PTE table is shared by two PMD entries, unmapping a range over both aliases
    used to say NotMapped (the walk lists a shared table once) or, with missing_ok, do half the job."""
    mem, _fa, pt = make(SV39)
    pt.map(0x20_0000, 0x9000_0000, K4, R)
    slot = pt.lookup(0x20_0000, 1)
    mem.write_u64(slot.table + 8 * 3, slot.raw)            # PMD entry 3 shares entry 1's PTE table
    before = mem.regions[0].data.tobytes()
    for call in (lambda: pt.unmap_region(0x20_0000, 3 * M2), lambda: pt.unmap_region(0, G1, missing_ok=True),
                 lambda: pt.protect_region(0x20_0000, 3 * M2, RW, missing_ok=True)):
        with pytest.raises(NotATree, match="is shared by 2 entries"):
            call()
    assert mem.regions[0].data.tobytes() == before
    pt.unmap_region(0x60_0000, K4)                         # one alias alone: its entry is the shared one
    assert len(pt.walk()) == 0                               # ... so both VAs lost the page


@pytest.mark.parametrize("fmt", MODES, ids=MODE_IDS)
def test_destroy_of_an_adopted_self_referencing_root_is_quick(fmt: PagingFormat) -> None:
    """destroy() recursed into every entry: 512**(levels-1) visits for a root of self-pointers (Sv48: minutes)."""
    mem, fa, pt = make(fmt)
    pt.map(0x1000, RAM + 0x20_0000, K4, R)
    root = fa.alloc()
    mem.words(root, 512)[:] = _ptr(root)
    adopted = PageTable(fmt, mem, fa, root=root)
    adopted.destroy()
    assert fa.ref_count(root) == 0                         # the root (ours: from this allocator) is freed once
    assert pt.query(0x1000)[0] == RAM + 0x20_0000          # another table is untouched


def test_a_region_too_big_for_the_frames_fails_before_it_is_planned() -> None:
    """16 GiB of 4 KiB pages on 1 MiB of RAM built its whole plan (626 MB) before NoMemory; 256 GiB ended in a
    numpy MemoryError."""
    import tracemalloc
    mem = PhysMem([(RAM, 1 << 20)])
    fa = FrameAllocator(mem)
    pt = PageTable(SV39, mem, fa)
    tracemalloc.start()
    for size in (1 << 34, 1 << 38):
        with pytest.raises(NoMemory, match="needs at least"):
            pt.map_region(0, RAM, size, R)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1 << 20 and fa.in_use == 1


def test_the_early_room_check_counts_the_empty_root_entries_only() -> None:
    """One page under the same root entry made the check give up: 64 GiB then took 2.4 GB before NoMemory."""
    import tracemalloc
    mem = PhysMem([(RAM, 1 << 20)])
    fa = FrameAllocator(mem)
    pt = PageTable(SV48, mem, fa)
    pt.map(0x1000, RAM + 0x8_0000, K4, R)
    tracemalloc.start()
    with pytest.raises(NoMemory, match="tables in all of RAM could hold"):
        pt.map_region(1 << 30, RAM, 1 << 36, R)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1 << 20


def test_an_unreadable_table_is_one_note_however_many_entries_point_at_it() -> None:
    mem, _fa, pt = make(SV39)
    pt.map(0x20_0000, 0x9000_0000, K4, R)
    pmd = pt.lookup(0x20_0000, 1).table
    mem.words(pmd, 512)[:] = _ptr(0x1_0000_0000)          # 512 pointers at one table outside RAM
    w = pt.walk()
    assert len(w.problems) == 1 and "(512 entries point at it)" in w.problems[0]


@pytest.mark.parametrize("fmt", [*MODES, PAGING4], ids=[*MODE_IDS, "4level"])
def test_a_region_over_new_and_existing_leaf_tables_refuses_a_taken_slot_by_its_va(fmt: PagingFormat) -> None:
    """map_region's leaves are placed per run of the entry above them: a run into a table made by this call
    holds nothing, a run into an existing table is read. A taken slot in the existing table is refused by
    its own VA, and nothing changes; the same region around it then maps, also with huge leaves mixed in."""
    mem, fa, pt = make(fmt)
    pt.map(0x4020_3000, 0x9000_0000, K4, R)                  # the second 2 MiB block's table exists
    snap = Snapshot(mem, fa, pt)
    with pytest.raises(AlreadyMapped, match="0x40203000"):
        pt.map_region(0x4000_0000, 0x9100_0000, 4 * M2, RW)   # 4K pages: new table, existing table, new ...
    snap.assert_unchanged()
    pt.map_region(0x4000_0000, 0x9100_0000, M2 + 0x3000, RW)
    pt.map_region(0x4020_4000, 0x9120_4000, 3 * M2 - 0x4000, RW, allow_huge=True)   # 4K, then 2M leaves
    m = pt.walk()
    assert m.total_size() == 4 * M2
    assert sorted(set(m.size.tolist())) == [K4, M2]
    assert int(m.pa[m.va == 0x4020_3000][0]) == 0x9000_0000
    ok = m.va != 0x4020_3000
    assert np.array_equal(m.pa[ok] - m.va[ok], np.full(int(ok.sum()), 0x9100_0000 - 0x4000_0000, dtype=np.uint64))


@pytest.mark.parametrize("fmt", [*MODES, PAGING4, PAGING5, EPT4], ids=[*MODE_IDS, "4level", "5level", "ept4"])
def test_pointers_to_new_tables_are_the_codecs_own(fmt: PagingFormat) -> None:
    """_apply writes one pointer by `new_table` and the others as its copy with another table's address
    (`with_paddr_np`): the same entries `new_table` makes for each."""
    pas = np.array([0x1000, 0x2000, 0x8000_0000, 0x3_FFFF_F000, 0xF_FFFF_F000], dtype=np.uint64)
    template = np.full(pas.shape, fmt.codec.new_table(int(pas[0])), dtype=np.uint64)
    assert fmt.codec.with_paddr_np(template, pas, True).tolist() == [fmt.codec.new_table(p) for p in pas.tolist()]
