"""A frame allocator over a range of physical memory, with reference counts.

A bitmap of frames (numpy), single and multi-frame aligned allocations, frees that must name an allocation
exactly, and per-allocation reference counts for copy-on-write sharing (no 255 limit: counts are Python
ints). `in_use` and `live()` are the accounting tests use to prove that no frame leaked.
"""

from __future__ import annotations

import numpy as np

from .errors import NoMemory, PhysMemError
from .physmem import PhysMem


class FrameAllocator:
    """Allocates `frame_size`-byte frames from [base, base + size) of `mem` (default: all of its first region)."""

    def __init__(self, mem: PhysMem, base: int | None = None, size: int | None = None,
                 frame_size: int = 4096) -> None:
        region = mem.regions[0]
        base = region.base if base is None else base
        size = (region.end - base) if size is None else size
        if base % frame_size or size % frame_size or size <= 0:
            raise PhysMemError(f"allocator range [{base:#x}, +{size:#x}) is not frame-aligned")
        if not mem.contains(base, size):
            raise PhysMemError(f"allocator range [{base:#x}, {base + size:#x}) is not inside RAM")
        self.mem = mem
        self.base = base
        self.frame_size = frame_size
        self._used = np.zeros(size // frame_size, dtype=bool)
        self._count: dict[int, int] = {}      # allocation head PA -> number of frames
        self._refs: dict[int, int] = {}       # allocation head PA -> reference count
        self._next = 0

    @property
    def total(self) -> int:
        """Number of frames managed."""
        return int(self._used.shape[0])

    @property
    def in_use(self) -> int:
        """Number of frames currently allocated."""
        return int(np.count_nonzero(self._used))

    def live(self) -> dict[int, int]:
        """Every live allocation: head PA -> number of frames."""
        return dict(self._count)

    def reserve(self, pa: int, count: int = 1) -> None:
        """Mark frames as allocated (e.g. memory that a loaded image already uses)."""
        first = self._index(pa)
        if np.any(self._used[first:first + count]) or first + count > self.total:
            raise NoMemory(f"cannot reserve {count} frame(s) at {pa:#x}: taken or out of range")
        self._used[first:first + count] = True
        self._count[pa] = count
        self._refs[pa] = 1

    def alloc(self, count: int = 1, align: int | None = None, *, zero: bool = True) -> int:
        """Allocate `count` contiguous frames whose first PA is a multiple of `align`; returns that PA."""
        if count < 1:
            raise ValueError("count must be at least 1")
        align = self.frame_size if align is None else align
        if align < self.frame_size or align & (align - 1):
            raise ValueError(f"alignment {align:#x} must be a power of two ≥ the frame size")
        first = self._find_one() if count == 1 and align == self.frame_size else self._find_run(count, align)
        self._used[first:first + count] = True
        pa = self.base + first * self.frame_size
        self._count[pa] = count
        self._refs[pa] = 1
        if zero:
            self.mem.fill(pa, count * self.frame_size)
        return pa

    def _find_one(self) -> int:
        for start in (self._next, 0):
            free = np.flatnonzero(~self._used[start:])
            if free.size:
                self._next = start + int(free[0]) + 1
                return start + int(free[0])
        raise NoMemory(f"no free frame (all {self.total} in use)")

    def _find_run(self, count: int, align: int) -> int:
        step = align // self.frame_size
        skew = ((-self.base) % align) // self.frame_size      # first frame index whose PA is aligned
        starts = np.arange(skew, self.total - count + 1, step)
        if starts.size:
            used_before = np.concatenate(([0], np.cumsum(self._used, dtype=np.int64)))
            free = used_before[starts + count] - used_before[starts] == 0
            hits = np.flatnonzero(free)
            if hits.size:
                return int(starts[hits[0]])
        raise NoMemory(f"no run of {count} free frame(s) aligned to {align:#x}")

    def _index(self, pa: int) -> int:
        off = pa - self.base
        if off < 0 or off % self.frame_size or off // self.frame_size >= self.total:
            raise PhysMemError(f"{pa:#x} is not a frame of this allocator")
        return off // self.frame_size

    def free(self, pa: int) -> None:
        """Free the allocation that starts at `pa` regardless of its reference count."""
        count = self._count.pop(pa, None)
        if count is None:
            raise PhysMemError(f"free of {pa:#x}, which is not the start of a live allocation")
        del self._refs[pa]
        first = self._index(pa)
        self._used[first:first + count] = False

    def add_ref(self, pa: int) -> int:
        """Take one more reference to the allocation at `pa`; returns the new count."""
        if pa not in self._refs:
            raise PhysMemError(f"reference to {pa:#x}, which is not a live allocation")
        self._refs[pa] += 1
        return self._refs[pa]

    def release(self, pa: int) -> int:
        """Drop one reference; frees the allocation when none is left. Returns the remaining count."""
        if pa not in self._refs:
            raise PhysMemError(f"release of {pa:#x}, which is not a live allocation")
        self._refs[pa] -= 1
        left = self._refs[pa]
        if left == 0:
            self.free(pa)
        return left

    def frames_of(self, pa: int) -> int:
        """Number of frames of the live allocation at `pa` (0 if it is not live)."""
        return self._count.get(pa, 0)

    def ref_count(self, pa: int) -> int:
        """Current reference count of the allocation at `pa` (0 if it is not live)."""
        return self._refs.get(pa, 0)
