"""MemorySet: memory_set's own test suite on its mock page table and on a real Sv39 table, then the
deliberate fixes (docs/design.md, "Where the Rust crates differ", item 10), merging, and random operation
sequences (hypothesis).

Every scenario is written in the mock's coordinates (addresses below 0x10000, one mock byte per address) and
run through a `Harness`:

* `MockHarness` — memory_set's mock: a 0x10000-byte array, one byte per address holding the flag value;
  map fails unless every byte is zero, unmap and protect fail unless every byte is non-zero.
* `Sv39Harness` — a real `PageTable(SV39, ...)` over 16 MiB of RAM at 0x8000_0000. Every address and size is
  scaled by 32 (0x80 → one 4 KiB page, 0x10000 → 2 MiB), and `LinearBackend` maps VA → PA = VA + 0x8080_0000
  with `map_region`/`unmap_region`/`protect_region`. The frame allocator manages only the first 8 MiB, so the
  mapped PAs never hold page tables. The mock's flag values become RISC-V-encodable flags:
  1 → READ, 2 → READ|WRITE, 3 → READ|EXECUTE, 7 → READ|WRITE|EXECUTE (`ENC`).

After each step `check` compares what the table holds (mock bytes, or the leaves `walk()` returns, per 0x80-byte
unit) with what the areas say, unit by unit; at the end no page-table frame may be left (`frames.in_use == 1`).
"""

from __future__ import annotations

import errno
import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from pagetable.arch.riscv_sv39 import SV39
from pagetable.errors import AlreadyMapped, InvalidAddress, NotMapped, PagingError
from pagetable.flags import MappingFlags, align_up
from pagetable.frames import FrameAllocator
from pagetable.mm.area import MemoryArea
from pagetable.mm.errors import AlreadyExists, BadState, InvalidParam
from pagetable.mm.memory_set import MemorySet, UpdateFlags
from pagetable.physmem import PhysMem
from pagetable.table import PageTable

R, W, X = MappingFlags.READ, MappingFlags.WRITE, MappingFlags.EXECUTE
MAX_ADDR = 0x10000                      # memory_set's MAX_ADDR: the mock table's size
RAM = 0x8000_0000
OFFSET = RAM + (8 << 20)                # LinearBackend: PA = VA + OFFSET
SCALE = 32                              # mock address → Sv39 address
ENC = {1: R, 2: R | W, 3: R | X, 7: R | W | X}
DEC = {int(f): n for n, f in ENC.items()}

MockPT = npt.NDArray[np.uint8]
Units = npt.NDArray[np.uint8]


class Injected(PagingError):
    """The failure a test backend was told to produce."""


# ------------------------------------------------------------------------------------------- backends
@dataclass(frozen=True)
class MockBackend:
    """memory_set's `MockBackend` (tests.rs), all-or-nothing: it checks the whole range before writing.
    `fail` names the operations that raise `Injected`; `tag` only makes backends compare unequal."""

    tag: int = 0
    fail: frozenset[str] = frozenset()

    def _view(self, op: str, start: int, size: int, pt: MockPT) -> MockPT:
        if op in self.fail:
            raise Injected(f"{op} [{start:#x}, +{size:#x}) fails on purpose")
        if start < 0 or size <= 0 or start + size > pt.shape[0]:
            raise InvalidAddress(f"[{start:#x}, +{size:#x}) is outside the mock table")
        return pt[start:start + size]

    def map(self, start: int, size: int, flags: MappingFlags, pt: MockPT) -> None:
        view = self._view("map", start, size, pt)
        if np.any(view):
            raise AlreadyMapped(f"[{start:#x}, +{size:#x}) is already mapped in the mock")
        view[:] = int(flags)

    def unmap(self, start: int, size: int, pt: MockPT) -> None:
        view = self._view("unmap", start, size, pt)
        if not np.all(view):
            raise NotMapped(f"[{start:#x}, +{size:#x}) is not wholly mapped in the mock")
        view[:] = 0

    def protect(self, start: int, size: int, flags: MappingFlags, pt: MockPT) -> None:
        view = self._view("protect", start, size, pt)
        if not np.all(view):
            raise NotMapped(f"[{start:#x}, +{size:#x}) is not wholly mapped in the mock")
        view[:] = int(flags)


@dataclass(frozen=True)
class LinearBackend:
    """A fixed-offset mapping through the real table (4K leaves): VA → VA + offset."""

    offset: int = OFFSET

    def map(self, start: int, size: int, flags: MappingFlags, pt: PageTable) -> None:
        pt.map_region(start, start + self.offset, size, flags)

    def unmap(self, start: int, size: int, pt: PageTable) -> None:
        pt.unmap_region(start, size)

    def protect(self, start: int, size: int, flags: MappingFlags, pt: PageTable) -> None:
        pt.protect_region(start, size, flags)


TestBackend = MockBackend | LinearBackend
Set = MemorySet[TestBackend]


# ------------------------------------------------------------------------------------------- harnesses
class Harness(ABC):
    """A page table plus the translation from the mock scenarios' numbers to it."""

    name: ClassVar[str]
    scale: ClassVar[int]
    pt: object

    def x(self, n: int) -> int:
        """A mock address or size, scaled to this table."""
        return n * self.scale

    @abstractmethod
    def flag(self, n: int) -> MappingFlags:
        """The flags standing for the mock's flag value `n`."""

    @abstractmethod
    def decode(self, flags: MappingFlags) -> int:
        """The mock flag value that `flags` stands for."""

    @abstractmethod
    def backend(self) -> TestBackend: ...

    @abstractmethod
    def units(self) -> Units:
        """What the table holds, per mock address: int(flags) of the mapping covering it, 0 if none."""

    @abstractmethod
    def finish(self) -> None:
        """Assert that nothing is left mapped and nothing leaked."""

    def area(self, start: int, size: int, n: int) -> MemoryArea[TestBackend]:
        """An area given in mock numbers."""
        return MemoryArea(self.x(start), self.x(size), self.flag(n), self.backend())

    def update(self, new: int) -> UpdateFlags:
        """memory_set's test `update_flags(new)`: replace the low 3 bits, None when they are already equal."""
        def update_flags(old: MappingFlags) -> MappingFlags | None:
            o = self.decode(old)
            if o & 0x7 == new & 0x7:
                return None
            return self.flag((new & 0x7) | (o & ~0x7))
        return update_flags

    def expected(self, ms: Set) -> Units:
        """What the table should hold according to the areas, per mock address."""
        out = np.zeros(MAX_ADDR, dtype=np.uint8)
        for a in ms:
            assert a.start % self.scale == 0 and a.size % self.scale == 0
            out[a.start // self.scale:a.end // self.scale] = int(a.flags)
        return out

    def check(self, ms: Set) -> None:
        """The set is well formed and the table holds exactly its areas with their flags."""
        check_well_formed(ms)
        np.testing.assert_array_equal(self.units(), self.expected(ms))


class MockHarness(Harness):
    name = "mock"
    scale = 1

    def __init__(self) -> None:
        self.pt: MockPT = np.zeros(MAX_ADDR, dtype=np.uint8)

    def flag(self, n: int) -> MappingFlags:
        return MappingFlags(n)

    def decode(self, flags: MappingFlags) -> int:
        return int(flags)

    def backend(self) -> TestBackend:
        return MockBackend()

    def units(self) -> Units:
        return self.pt.copy()

    def finish(self) -> None:
        assert not np.any(self.pt)


class Sv39Harness(Harness):
    name = "sv39"
    scale = SCALE

    def __init__(self) -> None:
        self.mem = PhysMem([(RAM, 16 << 20)])
        self.frames = FrameAllocator(self.mem, size=8 << 20)
        self.pt: PageTable = PageTable(SV39, self.mem, self.frames)

    def flag(self, n: int) -> MappingFlags:
        return ENC[n]

    def decode(self, flags: MappingFlags) -> int:
        return DEC[int(flags)]

    def backend(self) -> TestBackend:
        return LinearBackend()

    def units(self) -> Units:
        leaves = self.pt.walk()
        assert not leaves.problems
        assert len(self.pt.walk(placeholders=True)) == len(leaves)       # no non-present leftovers
        out = np.zeros(MAX_ADDR, dtype=np.uint8)
        for leaf in leaves:
            assert leaf.size == 0x1000
            assert leaf.pa == leaf.va + OFFSET
            assert leaf.va + leaf.size <= MAX_ADDR * SCALE
            out[leaf.va // SCALE:(leaf.va + leaf.size) // SCALE] = int(leaf.flags)
        return out

    def finish(self) -> None:
        assert len(self.pt.walk(placeholders=True)) == 0
        assert self.frames.in_use == 1, f"{self.frames.in_use - 1} page-table frame(s) leaked"


HARNESSES: dict[str, Callable[[], Harness]] = {"mock": MockHarness, "sv39": Sv39Harness}


@pytest.fixture(params=list(HARNESSES))
def h(request: pytest.FixtureRequest) -> Harness:
    name: str = request.param
    return HARNESSES[name]()


def check_well_formed(ms: Set) -> None:
    """Sorted by start, non-empty, non-overlapping; with merging on, no two mergeable neighbours."""
    areas = list(ms)
    assert len(areas) == len(ms)
    assert ms.is_empty() == (not areas)
    for a in areas:
        assert a.size > 0
    for a, b in itertools.pairwise(areas):
        assert a.end <= b.start
        if ms.merge:
            assert not (a.end == b.start and a.flags == b.flags and a.backend == b.backend)


def offset_in_block(h: Harness, addr: int) -> int:
    """memory_set's `align_offset_4k` in mock numbers (the 0x1000 mock block is 0x20000 bytes on Sv39)."""
    return addr % h.x(0x1000) // h.scale


# ======================================================================= memory_set's suite (§9)
def test_map_unmap(h: Harness) -> None:
    ms: Set = MemorySet()
    # Map [0, 0x1000), [0x2000, 0x3000), ... with flags 1, then the gaps with flags 2.
    for start in range(0, MAX_ADDR, 0x2000):
        ms.map(h.area(start, 0x1000, 1), h.pt)
    for start in range(0x1000, MAX_ADDR, 0x2000):
        ms.map(h.area(start, 0x1000, 2), h.pt)
    h.check(ms)
    assert len(ms) == 16
    table = h.units()
    assert np.all((table == int(h.flag(1))) | (table == int(h.flag(2))))

    area = ms.find(h.x(0x4100))
    assert area is not None
    assert (area.start, area.end, area.flags) == (h.x(0x4000), h.x(0x5000), h.flag(1))
    assert h.units()[0x4200] == int(h.flag(1))

    with pytest.raises(AlreadyExists):
        ms.map(h.area(0x4000, 0x4000, 3), h.pt)
    assert len(ms) == 16
    h.check(ms)

    ms.map(h.area(0x4000, 0x4000, 3), h.pt, unmap_overlap=True)
    h.check(ms)
    assert len(ms) == 13
    area = ms.find(h.x(0x4100))
    assert area is not None
    assert (area.start, area.end, area.flags) == (h.x(0x4000), h.x(0x8000), h.flag(3))
    assert np.all(h.units()[0x4000:0x8000] == int(h.flag(3)))

    ms.unmap(h.x(0x4000), h.x(0x8000), h.pt)
    h.check(ms)
    assert len(ms) == 8
    ms.unmap(0, h.x(MAX_ADDR * 2), h.pt)           # including ranges that are not mapped
    h.check(ms)
    assert len(ms) == 0
    assert not np.any(h.units())
    h.finish()


def test_unmap_split(h: Harness) -> None:
    ms: Set = MemorySet()
    for start in range(0, MAX_ADDR, 0x2000):
        ms.map(h.area(start, 0x1000, 1), h.pt)
    assert len(ms) == 8

    # Unmap [0xc00, 0x2400), [0x2c00, 0x4400), ...: areas shrink at both ends.
    for start in range(0, MAX_ADDR, 0x2000):
        ms.unmap(h.x(start + 0xc00), h.x(0x1800), h.pt)
    h.check(ms)
    assert len(ms) == 8
    table = h.units()
    for area in ms:
        if area.start == 0:
            assert area.size == h.x(0xc00)
        else:
            assert offset_in_block(h, area.start) == 0x400
            assert offset_in_block(h, area.end) == 0xc00
            assert area.size == h.x(0x800)
        assert np.all(table[area.start // h.scale:area.end // h.scale] == int(h.flag(1)))

    # Unmap [0x800, 0x900), [0x2800, 0x2900), ...: each area splits in two.
    for start in range(0, MAX_ADDR, 0x2000):
        ms.unmap(h.x(start + 0x800), h.x(0x100), h.pt)
    h.check(ms)
    assert len(ms) == 16
    table = h.units()
    sizes = {0: 0x800, 0x400: 0x400, 0x900: 0x300}
    for area in ms:
        assert area.size == h.x(sizes[offset_in_block(h, area.start)])
        assert np.all(table[area.start // h.scale:area.end // h.scale] == int(h.flag(1)))
    areas = list(ms)
    for a, b in itertools.pairwise(areas):            # the holes are unmapped
        assert not np.any(table[a.end // h.scale:b.start // h.scale])

    ms.unmap(0, h.x(MAX_ADDR), h.pt)
    assert len(ms) == 0
    assert not np.any(h.units())
    h.finish()


def test_protect(h: Harness) -> None:
    ms: Set = MemorySet()
    for start in range(0, MAX_ADDR, 0x2000):
        ms.map(h.area(start, 0x1000, 0x7), h.pt)
    assert len(ms) == 8

    # Protect [0xc00, 0x2400), [0x2c00, 0x4400), ... to 1: areas split in two.
    for start in range(0, MAX_ADDR, 0x2000):
        ms.protect(h.x(start + 0xc00), h.x(0x1800), h.update(0x1), h.pt)
    h.check(ms)
    assert len(ms) == 23
    for area in ms:
        off = offset_in_block(h, area.start)
        if area.start == 0:
            assert (area.size, area.flags) == (h.x(0xc00), h.flag(0x7))
        else:
            expect = {0: (0x400, 0x1), 0x400: (0x800, 0x7), 0xc00: (0x400, 0x1)}[off]
            assert (area.size, area.flags) == (h.x(expect[0]), h.flag(expect[1]))

    # Protect [0x800, 0x900), [0x2800, 0x2900), ... with 0x13: the 7-areas split in three (middle: 3).
    for start in range(0, MAX_ADDR, 0x2000):
        ms.protect(h.x(start + 0x800), h.x(0x100), h.update(0x13), h.pt)
    h.check(ms)
    assert len(ms) == 39
    for area in ms:
        off = offset_in_block(h, area.start)
        if area.start == 0:
            assert (area.size, area.flags) == (h.x(0x800), h.flag(0x7))
        else:
            expect = {0: (0x400, 0x1), 0x400: (0x400, 0x7), 0x800: (0x100, 0x3), 0x900: (0x300, 0x7),
                      0xc00: (0x400, 0x1)}[off]
            assert (area.size, area.flags) == (h.x(expect[0]), h.flag(expect[1]))

    # Protecting [0x880, 0x900), ... with the flags they already have is skipped: no split.
    for start in range(0, MAX_ADDR, 0x2000):
        ms.protect(h.x(start + 0x880), h.x(0x80), h.update(0x3), h.pt)
    h.check(ms)
    assert len(ms) == 39

    ms.unmap(0, h.x(MAX_ADDR), h.pt)
    assert len(ms) == 0
    assert not np.any(h.units())
    h.finish()


FIND_FREE_CASES = [          # (hint, size, align) -> answer, limit [0, 0x10000)
    ((0, 0x1000, 1), 0x1000),
    ((0x800, 0x800, 0x800), 0x1000),
    ((0x1800, 0x800, 0x800), 0x1800),
    ((0x1800, 0x1000, 0x1000), 0x3000),
    ((0x2000, 0x1000, 0x1000), 0x3000),
    ((0xf000, 0x1000, 0x1000), 0xf000),
    ((0xf001, 0x1000, 0x1000), None),
]


def test_find_free_area(h: Harness) -> None:
    ms: Set = MemorySet()
    for start in range(0, MAX_ADDR, 0x2000):
        ms.map(h.area(start, 0x1000, 1), h.pt)
    for (hint, size, align), answer in FIND_FREE_CASES:
        got = ms.find_free_area(h.x(hint), h.x(size), 0, h.x(MAX_ADDR), h.x(align))
        assert got == (None if answer is None else h.x(answer)), (hex(hint), hex(size), hex(align))
    ms.clear(h.pt)
    assert ms.is_empty()
    h.check(ms)
    h.finish()


# ======================================================================= the fixes (§11 item 10)
def memory_set_find_free_area(areas: list[tuple[int, int]], hint: int, size: int, limit: tuple[int, int],
                              align: int) -> int | None:
    """memory_set's `find_free_area`, transcribed with its quirks (areas: sorted (start, end) pairs)."""
    if size % align:
        return None
    last_end = align_up(max(hint, limit[0]), align)
    before = [end for start, end in areas if start < last_end]
    if before:
        last_end = align_up(max(last_end, before[-1]), align)
    scan_from = last_end                        # `self.areas.range(last_end..)` is evaluated once
    for start, end in areas:
        if start < scan_from:
            continue
        if last_end + size <= start:
            return last_end
        last_end = align_up(end, align)
    return last_end if last_end + size <= limit[1] else None


def mock_area(start: int, size: int, flags: MappingFlags, backend: MockBackend | None = None
              ) -> MemoryArea[TestBackend]:
    """An area on the mock (typed for a `Set`: MemoryArea is invariant in its backend type)."""
    return MemoryArea(start, size, flags, backend or MockBackend())


def mock_set(*areas: tuple[int, int, int], merge: bool = False) -> tuple[Set, MockHarness]:
    """A mock set holding (start, size, flags) areas."""
    h = MockHarness()
    ms: Set = MemorySet(merge=merge)
    for start, size, n in areas:
        ms.map(h.area(start, size, n), h.pt)
    return ms, h


def test_find_free_area_never_past_limit_end() -> None:
    ms, _ = mock_set((0, 0x1000, 1), (0x9000, 0x1000, 1))
    spans = [(a.start, a.end) for a in ms]
    # A gap [0x1000, 0x9000) ends after limit_end 0x4000: memory_set returns the block [0x1000, 0x5000)
    # because an area starts after it; the fixed version finds nothing.
    assert memory_set_find_free_area(spans, 0, 0x4000, (0, 0x4000), 0x1000) == 0x1000
    assert ms.find_free_area(0, 0x4000, 0, 0x4000, 0x1000) is None
    # Blocks that do fit the limit are found as before.
    assert memory_set_find_free_area(spans, 0, 0x3000, (0, 0x4000), 0x1000) == 0x1000
    assert ms.find_free_area(0, 0x3000, 0, 0x4000, 0x1000) == 0x1000
    # Without a later area memory_set already checks the limit.
    assert memory_set_find_free_area(spans[:1], 0, 0x4000, (0, 0x4000), 0x1000) is None


def test_find_free_area_sees_area_below_the_aligned_candidate() -> None:
    """memory_set restarts its scan at align_up(end of the area below the candidate), skipping an area that
    starts in between: with areas [0x10, 0x210) and [0x210, 0x500) and align 0x200 it returns 0x400, inside
    the second area (on a real table: 4K areas and a 2 MiB alignment)."""
    ms, _ = mock_set((0x10, 0x200, 1), (0x210, 0x2f0, 2))
    spans = [(a.start, a.end) for a in ms]
    bad = memory_set_find_free_area(spans, 0x100, 0x200, (0, MAX_ADDR), 0x200)
    assert bad == 0x400 and ms.overlaps(0x400, 0x200)
    assert ms.find_free_area(0x100, 0x200, 0, MAX_ADDR, 0x200) == 0x600


def test_find_free_area_arguments() -> None:
    ms, _ = mock_set((0x1000, 0x1000, 1))
    assert ms.find_free_area(0, 0x1800, 0, MAX_ADDR, 0x1000) is None        # size not a multiple of align
    for align in (0, 3, 0x1800, -4):
        with pytest.raises(InvalidParam):
            ms.find_free_area(0, 0x1000, 0, MAX_ADDR, align)
    with pytest.raises(InvalidParam):
        ms.find_free_area(0, 0, 0, MAX_ADDR, 1)
    assert ms.find_free_area(0, 0x1000, 0x1000, MAX_ADDR, 0x1000) == 0x2000          # limit_start is a floor
    assert ms.find_free_area(0x1800, 0x800, 0, 0x2000, 0x800) is None                # hint inside an area
    assert ms.find_free_area(0, 0x1000, 0, 0x1000, 0x1000) == 0                      # ends exactly at the limit
    assert ms.find_free_area(0, 1 << 63, 1 << 63, 1 << 64, 1) == 1 << 63             # up to 2**64, no overflow
    assert ms.find_free_area(0, 1 << 63, 1 << 63, 1 << 70, 1 << 63) == 1 << 63       # limit clamped to 2**64
    assert ms.find_free_area((1 << 63) + 1, 1 << 63, 0, 1 << 70, 1 << 63) is None


def test_protect_backend_failure_is_bad_state() -> None:
    h = MockHarness()
    ms: Set = MemorySet()
    a = mock_area(0x0, 0x1000, R)
    b = mock_area(0x1000, 0x1000, R, MockBackend(fail=frozenset({"protect"})))
    c = mock_area(0x2000, 0x1000, R)
    for area in (a, b, c):
        ms.map(area, h.pt)
    with pytest.raises(BadState) as info:
        ms.protect(0x800, 0x2000, lambda old: old | W, h.pt)
    assert info.value.errno == errno.EFAULT
    assert isinstance(info.value.__cause__, Injected)
    # memory_set would have recorded R|W for all three; here A (done before B) changed, B and C did not.
    assert [(x.start, x.end, x.flags) for x in ms] == [(0, 0x800, R), (0x800, 0x1000, R | W), (0x1000, 0x2000, R),
                                                       (0x2000, 0x3000, R)]
    assert list(ms)[2] is b and list(ms)[3] is c
    h.check(ms)


def test_map_backend_failure_is_bad_state() -> None:
    ms, h = mock_set((0x1000, 0x1000, 1))
    broken = MockBackend(fail=frozenset({"map"}))
    with pytest.raises(BadState) as info:
        ms.map(mock_area(0x3000, 0x1000, R, broken), h.pt)
    assert isinstance(info.value.__cause__, Injected)
    assert [(a.start, a.end) for a in ms] == [(0x1000, 0x2000)]
    assert ms.find(0x3000) is None
    h.check(ms)
    # A conflict inside the backend (the mock's map refuses non-zero bytes) is BadState too.
    h.pt[0x5000] = 9
    with pytest.raises(BadState) as info:
        ms.map(h.area(0x5000, 0x100, 1), h.pt)
    assert isinstance(info.value.__cause__, AlreadyMapped)
    assert len(ms) == 1
    h.pt[0x5000] = 0
    # With unmap_overlap the overlapped range is unmapped first (as in memory_set) and stays unmapped.
    with pytest.raises(BadState):
        ms.map(mock_area(0x1800, 0x1000, R, broken), h.pt, unmap_overlap=True)
    assert [(a.start, a.end) for a in ms] == [(0x1000, 0x1800)]
    h.check(ms)


def test_unmap_backend_failure_is_bad_state() -> None:
    """memory_set panics (`unwrap`) when a wholly contained area fails to unmap; here the areas below the
    failing one are unmapped, the failing one and those above it are left whole."""
    h = MockHarness()
    ms: Set = MemorySet()
    a = mock_area(0x0, 0x1000, R)
    b = mock_area(0x1000, 0x1000, R, MockBackend(fail=frozenset({"unmap"})))
    c = mock_area(0x2000, 0x1000, R)
    for area in (a, b, c):
        ms.map(area, h.pt)
    with pytest.raises(BadState) as info:
        ms.unmap(0x800, 0x2000, h.pt)
    assert isinstance(info.value.__cause__, Injected)
    assert [(x.start, x.end) for x in ms] == [(0, 0x800), (0x1000, 0x2000), (0x2000, 0x3000)]
    assert list(ms)[1] is b and list(ms)[2] is c
    h.check(ms)


def test_clear_backend_failure_keeps_what_is_still_mapped() -> None:
    h = MockHarness()
    ms: Set = MemorySet()
    areas = [mock_area(0x0, 0x1000, R),
             mock_area(0x1000, 0x1000, R, MockBackend(fail=frozenset({"unmap"}))),
             mock_area(0x2000, 0x1000, R)]
    for area in areas:
        ms.map(area, h.pt)
    with pytest.raises(BadState):
        ms.clear(h.pt)
    assert list(ms) == areas[1:]
    h.check(ms)


def test_range_checks_and_errnos() -> None:
    ms, h = mock_set((0x1000, 0x1000, 1))
    with pytest.raises(InvalidParam) as info:
        ms.map(h.area(0x3000, 0, 1), h.pt)
    assert info.value.errno == errno.EINVAL
    for start, size in ((-0x1000, 0x1000), ((1 << 64) - 0x1000, 0x2000)):
        with pytest.raises(InvalidParam):
            ms.map(mock_area(start, size, R), h.pt)
        with pytest.raises(InvalidParam):
            ms.unmap(start, size, h.pt)
        with pytest.raises(InvalidParam):
            ms.protect(start, size, lambda f: f, h.pt)
    with pytest.raises(AlreadyExists) as exists:
        ms.map(h.area(0x1800, 0x1000, 2), h.pt)
    assert exists.value.errno == errno.EEXIST
    ms.unmap(0x1800, 0, h.pt)                       # size 0: nothing happens
    ms.protect(0x1800, 0, lambda f: f | W, h.pt)    # (memory_set would split into three, one empty)
    assert [(a.start, a.end, a.flags) for a in ms] == [(0x1000, 0x2000, R)]
    ms.unmap(0x4000, 0x1000, h.pt)                  # nothing mapped there: fine
    h.check(ms)


def test_queries() -> None:
    ms, _ = mock_set((0x1000, 0x1000, 1), (0x3000, 0x800, 2), (0x3800, 0x800, 3))
    assert [a.start for a in ms] == [0x1000, 0x3000, 0x3800]
    assert len(ms) == 3 and not ms.is_empty()
    assert ms.find(0xfff) is None and ms.find(0x2000) is None
    found = ms.find(0x1fff)
    assert found is not None and found.start == 0x1000
    found = ms.find(0x3800)
    assert found is not None and found.flags == MappingFlags(3)
    assert not ms.overlaps(0, 0x1000) and not ms.overlaps(0x2000, 0x1000)
    assert ms.overlaps(0, 0x1001) and ms.overlaps(0x1fff, 1) and ms.overlaps(0, 0x10000)
    assert ms.overlaps(0x1800, 0)                   # memory_set: an empty range strictly inside an area
    assert not ms.overlaps(0x1000, 0)
    assert [a.start for a in ms.overlapping(0x1800, 0x2000)] == [0x1000, 0x3000]
    assert ms.overlapping(0x2000, 0x1000) == [] and ms.overlapping(0x1800, 0) == []
    assert "0x1000" in repr(ms)
    empty: Set = MemorySet()
    assert empty.is_empty() and empty.find(0) is None and not empty.overlaps(0, 1 << 64)
    assert empty.find_free_area(0, 0x1000, 0, 0x1000, 0x1000) == 0


def test_insert_does_not_call_the_backend() -> None:
    ms, h = mock_set((0x1000, 0x1000, 1))
    h.pt[0x3000:0x4000] = 2                                        # mapped by someone else (e.g. a clone)
    ms.insert(mock_area(0x3000, 0x1000, MappingFlags(2), MockBackend(fail=frozenset({"map"}))))
    assert [(a.start, a.end) for a in ms] == [(0x1000, 0x2000), (0x3000, 0x4000)]
    h.check(ms)
    with pytest.raises(AlreadyExists):
        ms.insert(mock_area(0x1800, 0x1000, R))
    with pytest.raises(InvalidParam):
        ms.insert(mock_area(0x5000, 0, R))
    merging, h2 = mock_set((0x1000, 0x1000, 1), merge=True)
    h2.pt[0x2000:0x3000] = 1
    merging.insert(mock_area(0x2000, 0x1000, MappingFlags(1)))
    assert [(a.start, a.end) for a in merging] == [(0x1000, 0x3000)]
    merging.clear(h2.pt)
    h2.finish()


def test_iteration_is_a_snapshot() -> None:
    ms, h = mock_set((0x1000, 0x1000, 1), (0x3000, 0x1000, 2))
    for area in ms:
        ms.unmap(area.start, area.size, h.pt)
    assert ms.is_empty()
    h.finish()


# ---------------------------------------------------------------------------------------------- merging
def test_merge_is_off_by_default() -> None:
    ms, _ = mock_set((0x1000, 0x1000, 1), (0x2000, 0x1000, 1))
    assert len(ms) == 2 and not ms.merge


def test_merge_touching_equal_areas() -> None:
    ms, h = mock_set((0x1000, 0x1000, 1), (0x2000, 0x1000, 1), merge=True)
    assert [(a.start, a.end) for a in ms] == [(0x1000, 0x3000)]
    ms.map(h.area(0x4000, 0x1000, 1), h.pt)                       # not touching
    ms.map(h.area(0x3000, 0x1000, 1), h.pt)                       # fills the gap: merges both sides
    assert [(a.start, a.end) for a in ms] == [(0x1000, 0x5000)]
    ms.map(h.area(0x5000, 0x1000, 2), h.pt)                       # different flags
    ms.map(mock_area(0x6000, 0x1000, MappingFlags(2), MockBackend(tag=1)), h.pt)   # different backend
    assert [(a.start, a.end) for a in ms] == [(0x1000, 0x5000), (0x5000, 0x6000), (0x6000, 0x7000)]
    h.check(ms)
    # protect splits, and protecting back merges again
    ms.protect(0x2000, 0x1000, lambda f: MappingFlags(3), h.pt)
    assert [(a.start, a.end) for a in ms][:3] == [(0x1000, 0x2000), (0x2000, 0x3000), (0x3000, 0x5000)]
    ms.protect(0x2000, 0x1000, lambda f: MappingFlags(1), h.pt)
    assert [(a.start, a.end) for a in ms][:1] == [(0x1000, 0x5000)]
    # protecting [0x4000, 0x6000) to 2 merges with [0x5000, 0x6000) but not with the tag-1 area
    ms.protect(0x4000, 0x2000, lambda f: MappingFlags(2), h.pt)
    assert [(a.start, a.end, int(a.flags)) for a in ms] == [(0x1000, 0x4000, 1), (0x4000, 0x6000, 2),
                                                             (0x6000, 0x7000, 2)]
    h.check(ms)
    # unmapping a merged area's middle splits it like any other
    ms.unmap(0x2000, 0x1000, h.pt)
    assert [(a.start, a.end) for a in ms][:2] == [(0x1000, 0x2000), (0x3000, 0x4000)]
    ms.clear(h.pt)
    h.finish()


def test_merge_on_real_table() -> None:
    h = Sv39Harness()
    ms: Set = MemorySet(merge=True)
    for start in range(0, 0x4000, 0x1000):
        ms.map(h.area(start, 0x1000, 2), h.pt)
    assert len(ms) == 1
    ms.protect(h.x(0x1000), h.x(0x1000), lambda f: R, h.pt)
    assert len(ms) == 3
    h.check(ms)
    ms.protect(0, h.x(0x4000), lambda f: R | W, h.pt)
    assert len(ms) == 1
    h.check(ms)
    ms.clear(h.pt)
    h.finish()


# ---------------------------------------------------------------------------------------------- hypothesis
SPAN = 64                           # random ranges are made of up to 64 units of `unit` mock bytes
span_units = st.integers(0, SPAN)
flag_value = st.sampled_from(sorted(ENC))


class MemorySetMachine(RuleBasedStateMachine):
    """Random map/unmap/protect/find_free_area against a per-address model of the flags; after each step the
    set is well formed and the table (mock bytes or Sv39 leaves) equals both the areas and the model. On the
    mock every byte is an address (unit 1: off-by-one errors show); on Sv39 a unit is 0x80 mock bytes, i.e.
    one page."""

    harness: ClassVar[Callable[[], Harness]] = MockHarness
    merge: ClassVar[bool] = False
    unit: ClassVar[int] = 1

    def __init__(self) -> None:
        super().__init__()
        self.h = type(self).harness()
        self.ms: Set = MemorySet(merge=type(self).merge)
        self.model = np.zeros(MAX_ADDR, dtype=np.uint8)

    def span(self, start: int, size: int) -> tuple[int, int]:
        """Units → a mock range [lo, hi), which may run past the space (for unmap/protect)."""
        return start * self.unit, (start + size) * self.unit

    @rule(start=span_units, size=span_units, n=flag_value, unmap_overlap=st.booleans())
    def map(self, start: int, size: int, n: int, unmap_overlap: bool) -> None:
        lo, hi = self.span(start, size)
        hi = min(hi, SPAN * self.unit)
        area = self.h.area(lo, hi - lo, n)
        if hi <= lo:
            with pytest.raises(InvalidParam):
                self.ms.map(area, self.h.pt, unmap_overlap)
        elif np.any(self.model[lo:hi]) and not unmap_overlap:
            with pytest.raises(AlreadyExists):
                self.ms.map(area, self.h.pt, unmap_overlap)
        else:
            self.ms.map(area, self.h.pt, unmap_overlap)
            self.model[lo:hi] = int(self.h.flag(n))

    @rule(start=span_units, size=span_units)
    def unmap(self, start: int, size: int) -> None:
        lo, hi = self.span(start, size)
        self.ms.unmap(self.h.x(lo), self.h.x(hi - lo), self.h.pt)
        self.model[lo:hi] = 0

    @rule(start=span_units, size=span_units, new=st.sampled_from([1, 2, 3, 7, 0x13]))
    def protect(self, start: int, size: int, new: int) -> None:
        lo, hi = self.span(start, size)
        update = self.h.update(new)
        self.ms.protect(self.h.x(lo), self.h.x(hi - lo), update, self.h.pt)
        window = self.model[lo:hi]
        before = window.copy()
        for value in np.unique(before[before != 0]):
            changed = update(MappingFlags(int(value)))
            if changed is not None:
                window[before == value] = int(changed)

    @rule(hint=span_units, size=st.integers(1, 8), align_shift=st.integers(0, 4),
          limit=st.tuples(span_units, span_units))
    def find_free_area(self, hint: int, size: int, align_shift: int, limit: tuple[int, int]) -> None:
        align = self.unit << align_shift
        size *= self.unit
        hint *= self.unit
        ls, le = min(limit) * self.unit, max(limit) * self.unit
        got = self.ms.find_free_area(self.h.x(hint), self.h.x(size), self.h.x(ls), self.h.x(le), self.h.x(align))
        want = None
        if size % align == 0:
            cand = align_up(max(hint, ls), align)
            while cand + size <= le:
                if not np.any(self.model[cand:cand + size]):
                    want = cand
                    break
                cand += align
        assert got == (None if want is None else self.h.x(want))

    @invariant()
    def table_matches(self) -> None:
        self.h.check(self.ms)
        np.testing.assert_array_equal(self.h.units(), self.model)

    def teardown(self) -> None:
        self.ms.clear(self.h.pt)
        assert self.ms.is_empty()
        self.h.finish()


class MergingMemorySetMachine(MemorySetMachine):
    merge = True


class Sv39MemorySetMachine(MemorySetMachine):
    harness = Sv39Harness
    unit = 0x80


MemorySetMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
MergingMemorySetMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
Sv39MemorySetMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=20, deadline=None)
TestMemorySetMachine = MemorySetMachine.TestCase
TestMergingMemorySetMachine = MergingMemorySetMachine.TestCase
TestSv39MemorySetMachine = Sv39MemorySetMachine.TestCase


@st.composite
def aligned_layout(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]]]:
    """An alignment and sorted non-overlapping areas whose bounds are multiples of it."""
    align = 1 << draw(st.integers(0, 12))
    cuts = sorted(draw(st.sets(st.integers(0, MAX_ADDR // align), max_size=12)))
    areas = [(cuts[i] * align, cuts[i + 1] * align) for i in range(0, len(cuts) - 1, 2)]
    return align, areas


@given(layout=aligned_layout(), hint=st.integers(0, MAX_ADDR), size_units=st.integers(1, 16),
       limit=st.tuples(st.integers(0, MAX_ADDR), st.integers(0, MAX_ADDR)))
def test_find_free_area_agrees_with_memory_set_inside_the_limit(layout: tuple[int, list[tuple[int, int]]],
                                                                  hint: int, size_units: int,
                                                                  limit: tuple[int, int]) -> None:
    """With area bounds on the alignment, the fixed search returns memory_set's answer whenever that answer
    ends by limit_end, and None otherwise."""
    align, spans = layout
    ms: Set = MemorySet()
    pt = np.zeros(MAX_ADDR, dtype=np.uint8)
    for start, end in spans:
        ms.map(mock_area(start, end - start, R), pt)
    size = size_units * align
    ls, le = min(limit), max(limit)
    ref = memory_set_find_free_area(spans, hint, size, (ls, le), align)
    got = ms.find_free_area(hint, size, ls, le, align)
    assert got == (ref if ref is not None and ref + size <= le else None)
