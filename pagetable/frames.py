"""A frame allocator over a range of physical memory, with reference counts.

A bitmap of frames (numpy), single and multi-frame aligned allocations, frees that must name an allocation
exactly, and per-allocation reference counts for copy-on-write sharing (no 255 limit: 64-bit counts).
Bookkeeping is per frame in numpy arrays, so many single frames are allocated, shared and released in one
call (`alloc_many`, `alloc_each`, `free_many`, `add_ref_many`, `release_many`). `in_use` and `live()` are the
accounting tests use to prove that no frame leaked.

Every call checks its arguments (`args`) and the allocator's state before it changes anything: a negative
or non-integer count, an address that is not the head of a live allocation, or a bulk release that would
drop a count below zero raises and leaves the bookkeeping exactly as it was.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from . import args
from .errors import InvalidArgument, InvalidArgumentType, NoMemory, PhysMemError
from .physmem import PhysMem


class FrameAllocator:
    """Allocates `frame_size`-byte frames from [base, base + size) of `mem` (default: all of its first region)."""

    def __init__(self, mem: PhysMem, base: int | None = None, size: int | None = None,
                 frame_size: int = 4096) -> None:
        if not isinstance(mem, PhysMem):
            raise InvalidArgumentType(f"a frame allocator needs a PhysMem, not {type(mem).__name__}")
        frame_size = args.integer(frame_size, "frame size", 8, args.ADDR_LIMIT)
        if frame_size & (frame_size - 1):
            raise InvalidArgument(f"frame size {frame_size:#x} is not a power of two")
        region = mem.regions[0]
        base = region.base if base is None else args.address(base, "allocator base")
        size = (region.end - base) if size is None else args.size(size, "allocator size")
        if base % frame_size:
            raise PhysMemError(f"allocator base {base:#x} is not a multiple of the {frame_size:#x}-byte frame "
                               "size (pass a frame-aligned base)")
        if size % frame_size or size <= 0:
            raise PhysMemError(f"allocator size {size:#x} from {base:#x} is not a positive multiple of the "
                               f"{frame_size:#x}-byte frame size")
        if not mem.contains(base, size):
            raise PhysMemError(f"allocator range [{base:#x}, {base + size:#x}) is not inside RAM")
        self.mem = mem
        self.base = base
        self.frame_size = frame_size
        self._used = np.zeros(size // frame_size, dtype=bool)
        self._count = np.zeros(size // frame_size, dtype=np.int64)   # at an allocation's head: its frames
        self._refs = np.zeros(size // frame_size, dtype=np.int64)    # at an allocation's head: references
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
        heads = np.flatnonzero(self._count)
        return {self.base + int(i) * self.frame_size: int(self._count[i]) for i in heads}

    def reserve(self, pa: int, count: int = 1) -> None:
        """Mark frames as allocated (e.g. memory that a loaded image already uses)."""
        count = args.integer(count, "frame count", 1)
        first = self._index(pa)
        if first + count > self.total or np.any(self._used[first:first + count]):
            raise NoMemory(f"cannot reserve {count} frame(s) at {pa:#x}: taken or out of range")
        self._used[first:first + count] = True
        self._count[first] = count
        self._refs[first] = 1

    def alloc(self, count: int = 1, align: int | None = None, *, zero: bool = True) -> int:
        """Allocate `count` contiguous frames whose first PA is a multiple of `align`; returns that PA."""
        count = args.integer(count, "frame count", 1)
        align = self.frame_size if align is None else args.integer(align, "alignment", 1, args.ADDR_LIMIT)
        if align < self.frame_size or align & (align - 1):
            raise InvalidArgument(f"alignment {align:#x} must be a power of two ≥ the frame size")
        if count > self.total:
            raise NoMemory(f"{count} contiguous frames wanted, the allocator has {self.total}")
        first = self._find_one() if count == 1 and align == self.frame_size else self._find_run(count, align)
        self._used[first:first + count] = True
        pa = self.base + first * self.frame_size
        self._count[first] = count
        self._refs[first] = 1
        if zero:
            self.mem.fill(pa, count * self.frame_size)
        return pa

    def alloc_many(self, n: int, *, zero: bool = True) -> npt.NDArray[np.uint64]:
        """Allocate `n` single frames at once (not necessarily contiguous); returns their PAs in order."""
        n = args.integer(n, "frame count", 0)
        free = np.flatnonzero(~self._used)
        if free.size < n:
            raise NoMemory(f"{n} frames wanted, {free.size} free")
        idx = free[:n]
        self._used[idx] = True
        self._count[idx] = 1
        self._refs[idx] = 1
        pas = np.uint64(self.base) + idx.astype(np.uint64) * np.uint64(self.frame_size)
        if zero and n:
            words = self.frame_size // 8
            offs = (pas[:, None] + np.arange(words, dtype=np.uint64)[None, :] * np.uint64(8)).reshape(-1)
            self.mem.write_u64_np(offs, np.zeros(offs.shape, dtype=np.uint64))
        return pas

    def alloc_each(self, n: int, count: int = 1, align: int | None = None, *,
                   zero: bool = True) -> npt.NDArray[np.uint64]:
        """Make `n` allocations of `count` frames each in one call: the ones `n` calls of `alloc(count, align)`
        would make, in the same order. All-or-nothing: NoMemory leaves every frame as it was."""
        n = args.integer(n, "allocation count", 0)
        count = args.integer(count, "frame count", 1)
        align = self.frame_size if align is None else args.integer(align, "alignment", 1, args.ADDR_LIMIT)
        if align < self.frame_size or align & (align - 1):
            raise InvalidArgument(f"alignment {align:#x} must be a power of two ≥ the frame size")
        if count == 1 and align == self.frame_size:
            # `alloc` takes the first free frame from `_next` on, wrapping to 0: n calls take these
            free = np.concatenate((np.flatnonzero(~self._used[self._next:]) + self._next,
                                   np.flatnonzero(~self._used[:self._next])))
            if free.size < n:
                raise NoMemory(f"{n} frames wanted, {free.size} free")
            heads = free[:n]
            self._used[heads] = True
            if n:
                self._next = int(heads[-1]) + 1
        else:
            if n and count > self.total:
                raise NoMemory(f"{count} contiguous frames wanted, the allocator has {self.total}")
            found: list[int] = []
            try:
                for _ in range(n):                  # each run is found after the previous one is taken
                    found.append(self._find_run(count, align))
                    self._used[found[-1]:found[-1] + count] = True
            except NoMemory:
                for first in found:
                    self._used[first:first + count] = False
                raise
            heads = np.array(found, dtype=np.intp)
        self._count[heads] = count
        self._refs[heads] = 1
        pas = np.uint64(self.base) + heads.astype(np.uint64) * np.uint64(self.frame_size)
        if zero:
            self._zero_runs(heads, count)
        return pas

    def _zero_runs(self, heads: npt.NDArray[np.intp], count: int) -> None:
        """Zero the allocations of `count` frames at frame numbers `heads`: one fill per run of adjacent ones."""
        breaks = np.flatnonzero(np.diff(heads) != count) + 1
        for run in np.split(heads, breaks) if heads.size else []:
            self.mem.fill(self.base + int(run[0]) * self.frame_size, run.size * count * self.frame_size)

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

    def _frame(self, pa: int, what: str) -> int | None:
        """The frame number of `pa`, or None if it is not the start of a frame of this allocator."""
        off = args.address(pa, f"{what} address") - self.base
        if off < 0 or off % self.frame_size or off // self.frame_size >= self.total:
            return None
        return off // self.frame_size

    def _index(self, pa: int) -> int:
        i = self._frame(pa, "frame")
        if i is None:
            raise PhysMemError(f"{pa:#x} is not a frame of this allocator")
        return i

    def _head(self, pa: int, what: str) -> int:
        i = self._frame(pa, what)
        if i is None or not self._count[i]:
            raise PhysMemError(f"{what} of {pa:#x}, which is not the start of a live allocation")
        return i

    def _live_heads(self, pas: npt.NDArray[np.uint64]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.bool_]]:
        """The frame number of each PA and whether it starts a live allocation."""
        off = pas - np.uint64(self.base)
        idx = (off // np.uint64(self.frame_size)).astype(np.intp)
        ok = (pas >= np.uint64(self.base)) & (off % np.uint64(self.frame_size) == 0) & (idx < self.total)
        ok[ok] &= self._count[idx[ok]] > 0
        return idx, ok

    def _heads(self, pas: npt.NDArray[np.uint64], what: str) -> npt.NDArray[np.intp]:
        pas = args.u64_array(pas, f"{what} addresses").reshape(-1)
        idx, ok = self._live_heads(pas)
        if not np.all(ok):
            raise PhysMemError(f"{what} of {int(pas[~ok][0]):#x}, which is not the start of a live allocation")
        return idx

    def is_live_np(self, pas: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
        """For each PA: whether it starts a live allocation (False for any other address, in range or not)."""
        pas = args.u64_array(pas, "frame addresses")
        return self._live_heads(pas.reshape(-1))[1].reshape(pas.shape)

    def free(self, pa: int) -> None:
        """Free the allocation that starts at `pa` regardless of its reference count."""
        i = self._head(pa, "free")
        self._used[i:i + int(self._count[i])] = False
        self._count[i] = 0
        self._refs[i] = 0

    def free_many(self, pas: npt.NDArray[np.uint64]) -> None:
        """`free` for many allocations at once. All-or-nothing: if any PA does not start a live allocation,
        or names one twice, nothing is freed."""
        heads = self._heads(pas, "free")
        distinct, times = np.unique(heads, return_counts=True)
        if np.any(times > 1):
            raise PhysMemError(f"free of {self.base + int(distinct[times > 1][0]) * self.frame_size:#x} twice: "
                               "nothing was freed")
        self._release_frames(heads)

    def _release_frames(self, heads: npt.NDArray[np.intp]) -> None:
        """Mark the allocations at frame numbers `heads` free."""
        single = self._count[heads] == 1
        self._used[heads[single]] = False
        for i in heads[~single].tolist():            # multi-frame allocations: few
            self._used[i:i + int(self._count[i])] = False
        self._count[heads] = 0
        self._refs[heads] = 0

    def add_ref(self, pa: int) -> int:
        """Take one more reference to the allocation at `pa`; returns the new count."""
        i = self._head(pa, "reference")
        self._refs[i] += 1
        return int(self._refs[i])

    def release(self, pa: int) -> int:
        """Drop one reference; frees the allocation when none is left. Returns the remaining count."""
        i = self._head(pa, "release")
        self._refs[i] -= 1
        left = int(self._refs[i])
        if left == 0:
            self.free(pa)
        return left

    def add_ref_many(self, pas: npt.NDArray[np.uint64]) -> None:
        """`add_ref` for many allocations (a PA may repeat)."""
        np.add.at(self._refs, self._heads(pas, "reference"), 1)

    def release_many(self, pas: npt.NDArray[np.uint64]) -> None:
        """`release` for many single-frame or multi-frame allocations (a PA may repeat). All-or-nothing: if
        any allocation would be released more often than it is referenced, nothing changes."""
        heads, times = np.unique(self._heads(pas, "release"), return_counts=True)
        over = self._refs[heads] < times
        if np.any(over):
            i = int(heads[over][0])
            raise PhysMemError(f"release of {self.base + i * self.frame_size:#x} {int(times[over][0])} times, "
                               f"but it has {int(self._refs[i])} reference(s): nothing was released")
        self._refs[heads] -= times
        self._release_frames(heads[self._refs[heads] == 0])

    def frames_of(self, pa: int) -> int:
        """Number of frames of the live allocation at `pa` (0 if it is not live)."""
        i = self._frame(pa, "frame")
        return 0 if i is None else int(self._count[i])

    def ref_count(self, pa: int) -> int:
        """Current reference count of the allocation at `pa` (0 if it is not live)."""
        i = self._frame(pa, "frame")
        return 0 if i is None or not self._count[i] else int(self._refs[i])

    def ref_counts(self, pas: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
        """Reference counts of many live allocations."""
        counts: npt.NDArray[np.int64] = self._refs[self._heads(pas, "reference count")]
        return counts
