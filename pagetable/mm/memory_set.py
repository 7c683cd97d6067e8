"""`MemorySet`: the sorted, non-overlapping set of `MemoryArea`s of an address space (memory_set's
`MemorySet`, docs/mm.md).

Each operation takes the page table `pt` and hands it to the areas' backends, exactly as memory_set does;
the set itself never touches a page table. Areas are kept in two parallel lists sorted by start (a list of
starts searched with `bisect`, standing in for memory_set's `BTreeMap<start, MemoryArea>`), so a lookup is
O(log n) and an operation costs O(log n + k) for the k areas it touches, plus one list splice.

Behaviour is memory_set's except where it is a bug (docs/design.md, "Where the Rust crates differ", item 10)
or a crash; every difference is listed here and at the method concerned:

1. Errors are exceptions carrying an errno (`pagetable.mm.errors`): memory_set's `InvalidParam`,
   `AlreadyExists` and `BadState` become `InvalidParam` (EINVAL), `AlreadyExists` (EEXIST) and `BadState`
   (EFAULT). A backend signals failure by raising a `PagetableError` (not by returning false); the set turns it
   into `BadState`, chained to the backend's error (`__cause__`). Any other exception (a bug) propagates as
   it is, with the set still consistent.
2. `find_free_area` never returns a block reaching past `limit_end` (memory_set accepts a gap that ends
   beyond `limit.end` as long as some area starts after it), and never returns a block overlapping an area
   that starts between an unaligned area end and its aligned-up value (memory_set restarts its scan at the
   aligned-up end and so skips such an area; reachable when `align` exceeds the areas' granularity, e.g.
   align 2 MiB with 4 KiB areas). `align` must be a power of two (`InvalidParam`; memory_set divides by it
   and panics on 0); `size` must be positive.
3. `unmap` raises `BadState` when a backend fails (memory_set `unwrap`s and panics for areas wholly inside the
   range). Areas are processed in ascending order; on failure the areas before the failing one are unmapped
   (removed or trimmed), the failing one and those after it are untouched: the set always describes what the
   page table holds, never a half-updated area.
4. `protect` raises `BadState` when a backend fails (memory_set ignores the backend's result and records the
   new flags anyway), with the same "what was done" guarantee as `unmap`. A zero-size `protect` does nothing
   (memory_set splits an area that strictly contains the point into three, one of them empty).
5. `clear` removes each area once its backend has unmapped it; if a backend fails, `BadState` is raised and the
   areas not yet unmapped stay in the set (memory_set leaves every area in the set, including those it already
   unmapped).
6. Ranges are checked: a start or size that is not an integer, a negative one, or an end beyond 2**64, is
   `InvalidParam` (memory_set's
   `MemoryArea::new` panics on overflow; its `unmap`/`protect` return `InvalidParam`).
7. Merging is optional and OFF by default: memory_set never merges adjacent areas, and its test suite's area
   counts (16 → 13 → 8, 23 and 39 after protect splits) depend on that. With `merge=True`, an area that `map`
   inserts, or that `protect` changes, is merged with the neighbours it touches when their flags are equal and
   their backends compare equal (`==`); a backend must therefore compute everything per address (area.py),
   so that a merged area behaves like its parts.
8. Additions: `overlapping(start, size)` (the areas intersecting a range) and `insert(area)` (add an area
   whose mappings already exist, without calling its backend, e.g. for a clone).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from .. import args
from ..errors import PagetableError
from ..flags import MappingFlags, align_up
from .area import MappingBackend, MemoryArea
from .errors import AlreadyExists, BadState, InvalidParam

B = TypeVar("B", bound="MappingBackend[Any]")

ADDR_LIMIT = 1 << 64
"""One past the highest address: a range may end exactly here, never beyond."""

UpdateFlags = Callable[[MappingFlags], MappingFlags | None]


def _check_range(start: int, size: int, what: str) -> int:
    """The end of [start, start + size), or InvalidParam if either is not an integer, the range is negative or
    it overflows 64 bits."""
    start, size = args.span(start, size, what, error=InvalidParam)
    return start + size


class MemorySet(Generic[B]):
    """The areas of one address space, sorted by start and never overlapping (memory_set's `MemorySet<B>`).

    The page table is not stored: every operation that changes mappings takes it as `pt` and passes it to the
    backend of each area concerned, with the exact sub-range concerned.
    """

    def __init__(self, merge: bool = False) -> None:
        self.merge = merge
        self._starts: list[int] = []
        self._areas: list[MemoryArea[B]] = []

    # ---------------------------------------------------------------- queries
    def __len__(self) -> int:
        return len(self._areas)

    def __iter__(self) -> Iterator[MemoryArea[B]]:
        """The areas in ascending order of start (a snapshot: the set may be changed while iterating)."""
        return iter(tuple(self._areas))

    def __repr__(self) -> str:
        return f"MemorySet([{', '.join(str(a) for a in self._areas)}])"

    def is_empty(self) -> bool:
        return not self._areas

    def _overlapping(self, start: int, end: int) -> tuple[int, int]:
        """Index range [lo, hi) of the areas that intersect [start, end) (end > start)."""
        lo = bisect_right(self._starts, start) - 1
        if lo < 0 or self._areas[lo].end <= start:
            lo += 1
        return lo, max(lo, bisect_left(self._starts, end))

    def overlaps(self, start: int, size: int) -> bool:
        """Whether some area intersects [start, start + size). As in memory_set (whose `AddrRange::overlaps` is
        `a.start < b.end && b.start < a.end`), an empty range overlaps an area that strictly contains its point."""
        end = _check_range(start, size, "overlaps")
        i = bisect_right(self._starts, start) - 1          # the last area starting at or before `start`
        if i >= 0 and self._areas[i].start < end and start < self._areas[i].end:
            return True
        return i + 1 < len(self._areas) and self._areas[i + 1].start < end

    def find(self, addr: int) -> MemoryArea[B] | None:
        """The area containing `addr` (memory_set: the last area starting at or before it, if it contains it)."""
        addr = args.integer(addr, "address", error=InvalidParam)
        i = bisect_right(self._starts, addr) - 1
        if i >= 0 and self._areas[i].contains(addr):
            return self._areas[i]
        return None

    def overlapping(self, start: int, size: int) -> list[MemoryArea[B]]:
        """The areas intersecting [start, start + size), ascending (not in memory_set; for callers that check
        coverage or populate a range)."""
        end = _check_range(start, size, "overlapping")
        if size == 0:
            return []
        lo, hi = self._overlapping(start, end)
        return self._areas[lo:hi]

    def find_free_area(self, hint: int, size: int, limit_start: int, limit_end: int, align: int) -> int | None:
        """The lowest `align`-aligned start ≥ max(hint, limit_start) such that [start, start + size) overlaps no
        area and ends at or before `limit_end`; None if there is none.

        memory_set's algorithm (a candidate, moved to the aligned-up end of each area in its way), with two fixes:
        the candidate must always end by `limit_end` (memory_set accepts any gap before a later area, even one
        reaching past `limit.end`), and the scan looks at every area ending after the candidate (memory_set
        restarts at the aligned-up end of the area below the candidate and can skip an area starting in between).
        As in memory_set, a `size` that is not a multiple of `align` gives None. `align` must be a power of two
        and `size` positive (`InvalidParam`).
        """
        hint, limit_start, limit_end = (args.integer(v, f"find_free_area {name}", error=InvalidParam) for v, name in
                                        ((hint, "hint"), (limit_start, "limit start"), (limit_end, "limit end")))
        size, align = (args.integer(v, f"find_free_area {name}", error=InvalidParam) for v, name in
                       ((size, "size"), (align, "alignment")))
        if align <= 0 or align & (align - 1):
            raise InvalidParam(f"find_free_area: alignment {align:#x} is not a power of two")
        if size <= 0:
            raise InvalidParam(f"find_free_area: size {size:#x} must be positive")
        if size % align:
            return None
        limit_end = min(limit_end, ADDR_LIMIT)
        cand = align_up(max(hint, limit_start, 0), align)
        i = max(0, bisect_right(self._starts, cand) - 1)
        while cand + size <= limit_end:
            if i == len(self._areas):
                return cand
            area = self._areas[i]
            i += 1
            if area.end <= cand:
                continue                                     # entirely below the candidate
            if cand + size <= area.start:
                return cand                                  # the gap before this area fits
            cand = align_up(area.end, align)
        return None

    # ------------------------------------------------------------- internals
    def _splice(self, lo: int, hi: int, areas: list[MemoryArea[B]]) -> None:
        """Replace the areas at indices [lo, hi) by `areas` (sorted, and fitting between the neighbours)."""
        self._areas[lo:hi] = areas
        self._starts[lo:hi] = [a.start for a in areas]

    def _coalesce(self, lo: int, hi: int) -> None:
        """Merge the runs of touching, equal-flagged, equal-backend areas among indices [lo, hi)."""
        lo, hi = max(lo, 0), min(hi, len(self._areas))
        if hi - lo < 2:
            return
        out = [self._areas[lo]]
        for area in self._areas[lo + 1:hi]:
            last = out[-1]
            if last.end == area.start and last.flags == area.flags and last.backend == area.backend:
                out[-1] = last.with_range(last.start, area.end)
            else:
                out.append(area)
        if len(out) != hi - lo:
            self._splice(lo, hi, out)

    @staticmethod
    @contextmanager
    def _backend(what: str, area: MemoryArea[B], start: int, size: int) -> Iterator[None]:
        """Around one backend call: a `PagetableError` from it becomes `BadState` (chained)."""
        try:
            yield
        except PagetableError as exc:
            raise BadState(f"backend {type(area.backend).__name__} could not {what} [{start:#x}, "
                           f"{start + size:#x}) of area {area}: {exc}") from exc

    # ------------------------------------------------------------- mutations
    def map(self, area: MemoryArea[B], pt: object, unmap_overlap: bool = False) -> None:
        """Map `area` through its backend and insert it (memory_set `MemorySet::map`).

        An empty or overflowing area is `InvalidParam`. If it overlaps existing areas: `AlreadyExists`, or with
        `unmap_overlap` the range is first unmapped (`self.unmap`, as memory_set does; that stays done even if
        the backend then fails). A backend failure is `BadState` and the area is not inserted.
        """
        if area.size <= 0:
            raise InvalidParam(f"map: area {area} is empty")
        end = _check_range(area.start, area.size, "map")
        if self.overlaps(area.start, area.size):
            if not unmap_overlap:
                raise AlreadyExists(f"map: [{area.start:#x}, {end:#x}) overlaps an existing area")
            self.unmap(area.start, area.size, pt)
        with self._backend("map", area, area.start, area.size):
            area.backend.map(area.start, area.size, area.flags, pt)
        self.insert(area)

    def insert(self, area: MemoryArea[B]) -> None:
        """Insert `area` WITHOUT calling its backend, for an area whose mappings already exist in the page table
        (e.g. a clone's, set up by the backend). Not in memory_set. Empty/overflowing → `InvalidParam`,
        overlap → `AlreadyExists`; merges like `map` when merging is on."""
        if area.size <= 0:
            raise InvalidParam(f"insert: area {area} is empty")
        end = _check_range(area.start, area.size, "insert")
        if self.overlaps(area.start, area.size):
            raise AlreadyExists(f"insert: [{area.start:#x}, {end:#x}) overlaps an existing area")
        i = bisect_left(self._starts, area.start)
        self._splice(i, i, [area])
        if self.merge:
            self._coalesce(i - 1, i + 2)

    def unmap(self, start: int, size: int, pt: object) -> None:
        """Unmap [start, start + size) (memory_set `MemorySet::unmap`): areas wholly inside are unmapped and
        removed, an area straddling `start` is shrunk (or split in two if it also straddles the end), an area
        straddling the end loses its head. Each backend is called exactly on its area's intersection with the
        range. Size 0 does nothing; an overflowing range is `InvalidParam`.

        Differences: a backend failure is `BadState` instead of a panic. Areas are processed in ascending order
        (memory_set: wholly contained ones first, then the left and right straddlers); on failure the areas
        below the failing one are done, the failing one and those above it untouched.
        """
        end = _check_range(start, size, "unmap")
        if size == 0:
            return
        lo, hi = self._overlapping(start, end)
        kept: list[MemoryArea[B]] = []
        done = lo
        try:
            for area in self._areas[lo:hi]:
                s, e = max(area.start, start), min(area.end, end)
                with self._backend("unmap", area, s, e - s):
                    area.backend.unmap(s, e - s, pt)
                if area.start < start:
                    kept.append(area.with_range(area.start, start))
                if area.end > end:
                    kept.append(area.with_range(end, area.end))
                done += 1
        finally:
            self._splice(lo, done, kept)

    def protect(self, start: int, size: int, update_flags: UpdateFlags, pt: object) -> None:
        """Change the flags of [start, start + size) (memory_set `MemorySet::protect`).

        For each area intersecting the range, `update_flags(area.flags)` gives the new flags, or None to leave
        that area alone (no split, no backend call). Otherwise the area is split into up to three areas so that
        exactly the intersection carries the new flags, and the backend's `protect` is called on the
        intersection. An overflowing range is `InvalidParam`; size 0 does nothing.

        Differences: a backend failure is `BadState` (memory_set ignores it and records the new flags); areas
        are processed in ascending order and on failure the areas below the failing one keep their new flags,
        the failing one and those above it are untouched. With `merge=True` the changed pieces merge with
        equal neighbours.
        """
        end = _check_range(start, size, "protect")
        if size == 0:
            return
        lo, hi = self._overlapping(start, end)
        pieces: list[MemoryArea[B]] = []
        done = lo
        try:
            for area in self._areas[lo:hi]:
                new_flags = update_flags(area.flags)
                if new_flags is not None:
                    s, e = max(area.start, start), min(area.end, end)
                    with self._backend("protect", area, s, e - s):
                        area.backend.protect(s, e - s, new_flags, pt)
                    if area.start < s:
                        pieces.append(area.with_range(area.start, s))
                    pieces.append(area.with_range(s, e).with_flags(new_flags))
                    if e < area.end:
                        pieces.append(area.with_range(e, area.end))
                else:
                    pieces.append(area)
                done += 1
        finally:
            self._splice(lo, done, pieces)
            if self.merge:
                self._coalesce(lo - 1, lo + len(pieces) + 1)

    def clear(self, pt: object) -> None:
        """Unmap every area through its backend and empty the set (memory_set `MemorySet::clear`).

        Difference: each area leaves the set once unmapped, so if a backend fails (`BadState`) the set still
        holds exactly the areas that are still mapped (memory_set keeps them all).
        """
        done = 0
        try:
            for area in self._areas:
                with self._backend("unmap", area, area.start, area.size):
                    area.backend.unmap(area.start, area.size, pt)
                done += 1
        finally:
            self._splice(0, done, [])
