"""The generic page table: page_table_multiarch's `PageTable64` operations, done correctly.

`PageTable(format, mem, frames)` owns a tree of tables in `mem` (a `PhysMem`) whose entries are encoded by
the format's codecs (`format.codecs`: one per level). It offers map/unmap/remap/query/protect for single
leaves, vectorised region operations (map_region/unmap_region/protect_region), `walk` (every leaf as numpy
columns) and `copy_from`.

Where the Rust crate deviates (docs/design.md, "Where the Rust crates differ", items 1, 2 and 15) this class
does not: VAs must be canonical and PAs within the format's width (`InvalidAddress`); addresses must be
aligned to the page size (`NotAligned`, never silently aligned down); a region operation that cuts a huge page
splits it into the next level's leaves with the same attributes; tables that become empty are freed; a region
operation checks everything before it writes, and frees any table it allocated if it fails, so it either
happens whole or not at all; errors are exceptions, never a crash. Arguments are checked (`args`) before
anything is read or written: a VA, PA or size that is not an integer is `InvalidArgumentType`, flags with bits
that are not `MappingFlags` are `InvalidArgument`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from . import args
from .descent import Descent, Entries, PhysicalReader, read_tables
from .errors import (
    AlreadyMapped,
    InvalidAddress,
    InvalidArgument,
    InvalidArgumentType,
    MappedToHugePage,
    NoMemory,
    NotAligned,
    NotATree,
    NotMapped,
)
from .flags import MappingFlags, PageSize
from .format import Extension, PagingFormat
from .frames import FrameAllocator
from .mappings import Mappings
from .physmem import PhysMem

U64 = npt.NDArray[np.uint64]
Bool = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]
Target = int | U64 | Callable[[int], int]
_PAGE_SIZES = {s.value: s for s in PageSize}


@functools.cache
def _mapping_flags(value: int) -> MappingFlags:
    """`MappingFlags(value)`, remembered: building a Flag member costs a microsecond, and there are few."""
    return MappingFlags(value)


class Slot(NamedTuple):
    """Where a lookup stopped: the entry at `pa` (depth `depth`) holds `raw`."""

    depth: int
    pa: int
    raw: int
    table: int              # physical address of the table holding the entry


class PageTable:
    """A page table of `fmt` in `mem`, allocating its tables from `frames`.

    With `root=None` a zeroed root is allocated; otherwise the existing table at `root` is adopted (tables
    this allocator did not hand out are never freed).
    """

    def __init__(self, fmt: PagingFormat, mem: PhysMem, frames: FrameAllocator, root: int | None = None) -> None:
        for value, kind in ((fmt, PagingFormat), (mem, PhysMem), (frames, FrameAllocator)):
            if not isinstance(value, kind):
                raise InvalidArgumentType(f"a page table needs a {kind.__name__}, not {type(value).__name__}")
        if frames.mem is not mem:
            raise InvalidArgument("the frame allocator must allocate from the page table's memory")
        self.fmt = fmt
        self._last_depth = fmt.depth_count - 1
        # per level, for one-entry descents: the VA's index shift and mask, and whether it is the last level
        self._levels = [(lv.index_lsb, lv.entries - 1, d == self._last_depth) for d, lv in enumerate(fmt.levels)]
        self._sizes = {d: _PAGE_SIZES[lv.span] for d, lv in enumerate(fmt.levels) if lv.leaf}   # a leaf's size
        self._codecs = fmt.codecs                        # each depth's entry codec
        self.mem = mem
        self.entries = mem.entries(fmt.entry_size)       # the tables' entries, of the format's width
        self.frames = frames
        self._borrowed: set[int] = set()
        if root is None:
            root = self._alloc_table(0)
        else:
            root = args.address(root, "root table address")
            if root % fmt.root_size:
                raise InvalidAddress(f"root table {root:#x} is not aligned to its {fmt.root_size:#x}-byte size")
            if not mem.contains(root, fmt.root_size):
                raise InvalidAddress(f"root table [{root:#x}, {root + fmt.root_size:#x}) is not inside RAM "
                                     f"({mem.describe()})")
        self._root = root

    # ------------------------------------------------------------ basics
    @property
    def root_paddr(self) -> int:
        return self._root

    def _table_frames(self, depth: int) -> tuple[int, int]:
        """How many frames a table at `depth` takes, and their alignment."""
        size, fs = self.fmt.table_size(depth), self.frames.frame_size
        return max(1, size // fs), max(size, fs)

    def _alloc_table(self, depth: int) -> int:
        count, align = self._table_frames(depth)
        return self.frames.alloc(count, align=align)

    def _alloc_tables(self, wanted: list[tuple[int, int]]) -> U64:
        """For each (depth, count) in turn, `count` new zeroed tables of that depth, one allocator call each;
        NoMemory frees the tables already made."""
        made: list[U64] = []
        try:
            for depth, count in wanted:
                frames, align = self._table_frames(depth)
                made.append(self.frames.alloc_each(count, frames, align))
        except NoMemory:
            for tables in made:
                self.frames.free_many(tables)      # zeroed and not written to yet
            raise
        return np.concatenate(made) if made else np.zeros(0, dtype=np.uint64)

    def _free_table(self, pa: int) -> None:
        """Free a table this allocator handed out, zeroing it so no stale entries linger in free memory."""
        if self.frames.ref_count(pa):
            self.mem.fill(pa, self.frames.frames_of(pa) * self.frames.frame_size)
            self.frames.free(pa)

    def _last(self, depth: int) -> bool:
        return depth == self._last_depth

    def _is_leaf(self, raw: int, depth: int) -> bool:
        """A leaf, at a level whose entries may be leaves (an x86 PML4E with PS=1 is not a page: PS is
        reserved there)."""
        return depth in self._sizes and bool(self._codecs[depth].is_leaf_np(raw, depth == self._last_depth))

    def _is_table(self, raw: int, depth: int) -> bool:
        return bool(self._codecs[depth].is_table_np(raw, depth == self._last_depth))

    def _paddr(self, raw: int, depth: int) -> int:
        return int(self._codecs[depth].paddr_np(raw, depth != self._last_depth))

    def _flags(self, raw: int, depth: int) -> MappingFlags:
        return _mapping_flags(int(self._codecs[depth].flags_np(raw, depth != self._last_depth)))

    def _size(self, depth: int) -> PageSize:
        return self._sizes[depth]

    def _check_page(self, va: int, pa: int | None, size: int) -> tuple[int, int]:
        """(va, pa) as ints after checking both against the format and the page size (pa None: only va)."""
        va = self.fmt.check_va(va)
        if va % size:
            raise NotAligned(f"VA {va:#x} is not aligned to {PageSize(size).label()}")
        if pa is None:
            return va, 0
        pa = self.fmt.check_pa(pa)
        if pa % size:
            raise NotAligned(f"PA {pa:#x} is not aligned to {PageSize(size).label()}")
        if size > 1 << self.fmt.pa_bits:          # else an aligned page that starts in the PA space ends in it
            self.fmt.check_pa(pa + size - 1)
        return va, pa

    def lookup(self, va: int, depth: int | None = None) -> Slot:
        """Descend to the entry that decides `va`: a leaf, or the first non-table entry on the way; with
        `depth`, stop at that depth's entry if the descent gets there."""
        va = self.fmt.check_va(va)
        if depth is not None:
            depth = args.integer(depth, "depth", 0, self.fmt.depth_count)
        return self._lookup(va, depth)

    def _lookup(self, va: int, depth: int | None = None) -> Slot:
        """`lookup` of a checked VA."""
        table, codecs, size, fetch = self._root, self._codecs, self.fmt.entry_size, self.entries.fetch
        for d, (shift, mask, last) in enumerate(self._levels):
            pa = table + ((va >> shift) & mask) * size
            raw = fetch(pa)
            if raw is None:                               # a table pointer led outside RAM
                self.entries.read(pa)                     # raises, naming the address and the RAM
            if d != depth and not last and codecs[d].is_table_np(raw, last):     # no tables at the last level
                table = codecs[d].paddr_np(raw, True)
                continue
            return Slot._make((d, pa, raw, table))
        raise AssertionError("unreachable: the last level has no table entries")

    def _leaf(self, va: int) -> Slot:
        """The leaf that maps the checked `va` (NotMapped if none)."""
        slot = self._lookup(va)
        if not self._is_leaf(slot.raw, slot.depth):
            raise NotMapped(f"{va:#x} is not mapped")
        return slot

    # ------------------------------------------------------- single leaves
    def map(self, va: int, pa: int, size: int, flags: MappingFlags) -> None:
        """Map one leaf of `size` bytes (a size the format allows) at `va` to `pa`."""
        depth = self.fmt.depth_for_size(size)
        va, pa = self._check_page(va, pa, size)
        raw = self._codecs[depth].new_page(pa, args.flags(flags), depth != self._last_depth)
        self._apply_one(va, raw, depth)

    def unmap(self, va: int) -> tuple[int, MappingFlags, PageSize]:
        """Remove the whole leaf containing `va` (also an empty-flags placeholder); returns its base PA, flags
        and size. Tables left empty are freed."""
        va = self.fmt.check_va(va)
        slot = self.lookup(va)
        if slot.raw == 0 or self._is_table(slot.raw, slot.depth) or slot.depth not in self._sizes:
            raise NotMapped(f"{va:#x} is not mapped")       # (an entry no page can be at its level)
        self.entries.write(slot.pa, 0)
        self._free_empty(va, slot.depth)
        self._refit_one(va)
        return self._paddr(slot.raw, slot.depth), self._flags(slot.raw, slot.depth), self._size(slot.depth)

    def query(self, va: int) -> tuple[int, MappingFlags, PageSize]:
        """The PA `va` maps to (offset included), the leaf's flags and size; NotMapped if absent."""
        va = self.fmt.check_va(va)
        slot = self._leaf(va)
        size = self._size(slot.depth)
        return self._paddr(slot.raw, slot.depth) + (va & (size - 1)), self._flags(slot.raw, slot.depth), size

    def remap(self, va: int, pa: int, flags: MappingFlags) -> PageSize:
        """Point the present leaf containing `va` at `pa` (aligned to that leaf's size) with `flags`."""
        va = self.fmt.check_va(va)
        slot = self._leaf(va)
        size = self._size(slot.depth)
        _, pa = self._check_page(va & ~(size - 1), pa, size)
        raw = self._codecs[slot.depth].new_page(pa, args.flags(flags), not self._last(slot.depth))
        self.entries.write(slot.pa, raw)
        self._rewritten(va, slot.raw, raw, slot.depth)
        return size

    def protect(self, va: int, flags: MappingFlags) -> PageSize:
        """Give the whole present leaf containing `va` new flags (address kept); returns its size."""
        va = self.fmt.check_va(va)
        slot = self._leaf(va)
        pa = self._paddr(slot.raw, slot.depth)
        raw = self._codecs[slot.depth].new_page(pa, args.flags(flags), not self._last(slot.depth))
        self.entries.write(slot.pa, raw)
        self._rewritten(va, slot.raw, raw, slot.depth)
        return self._size(slot.depth)

    def check_flags(self, flags: MappingFlags) -> MappingFlags:
        """`flags` as MappingFlags, or InvalidFlags if the entry format cannot encode them (RISC-V: WRITE
        without READ)."""
        flags = args.flags(flags)
        self._codecs[self._last_depth].new_page(0, flags, False)
        return flags

    # ------------------------------------------------------------ regions
    def _check_region(self, va: int, size: int) -> tuple[int, int]:
        """(va, size) as ints after checking that the region is page-aligned, non-empty and canonical."""
        va, size = args.integer(va, "region start"), args.integer(size, "region size")
        ps = self.fmt.page_size
        if va % ps or size % ps:
            raise NotAligned(f"region [{va:#x}, +{size:#x}) is not {ps:#x}-aligned")
        if size <= 0:
            raise NotAligned(f"region size {size:#x} must be positive")
        self.fmt.check_va(va)
        self.fmt.check_va(va + size - 1)
        top = self.fmt.va_bits - 1
        if self.fmt.extension is Extension.SIGN and va >> top != (va + size - 1) >> top:
            raise InvalidAddress(f"region [{va:#x}, +{size:#x}) crosses the non-canonical hole")
        return va, size

    def plan_region(self, va: int, target: Target, size: int, allow_huge: bool) -> tuple[U64, U64, U64]:
        """The leaves `map_region` would write: arrays of VA, PA and size."""
        va, size = self._check_region(va, size)
        huge = args.boolean(allow_huge, "allow_huge")
        sizes = [s for s in self.fmt.page_sizes() if huge or s == self.fmt.page_size]
        if not isinstance(target, np.ndarray) and not callable(target):
            target = self.fmt.check_pa(target)
        if isinstance(target, int):
            self.fmt.check_pa(target + size - 1)
            if target % self.fmt.page_size:
                raise NotAligned(f"PA {target:#x} is not page-aligned")
            pieces = _linear_pieces(va, target, size, sizes)
            self._check_room(va, size, pieces)
            try:
                return _plan_linear(va, target, pieces)
            except MemoryError:
                raise NoMemory(f"the plan for [{va:#x}, +{size:#x}) does not fit in this process's memory") \
                    from None
        if isinstance(target, np.ndarray):
            pas = args.u64_array(target, "target physical addresses")
            n = size // self.fmt.page_size
            if pas.shape != (n,):
                raise InvalidArgument(f"expected {n} physical addresses (one per page), got shape {pas.shape}")
            wide = (pas >> np.uint64(self.fmt.pa_bits)) != 0
            if np.any(wide):
                self.fmt.check_pa(int(pas[wide][0]))
            misaligned = (pas % np.uint64(self.fmt.page_size)) != 0
            if np.any(misaligned):
                raise NotAligned(f"PA {int(pas[misaligned][0]):#x} is not page-aligned")
            return _plan_pages(va, pas, sizes, self.fmt.page_size)
        return _plan_callable(va, target, size, sizes, self.fmt)

    def _check_room(self, va: int, size: int, pieces: list[tuple[int, int, int]]) -> None:
        """NoMemory before a plan is built when it cannot fit: the part of the region under empty root entries
        needs more frames for new tables (a table larger than a frame takes several: 64 KiB tables from 4 KiB
        frames) than the allocator has free, or the region needs more entries at some
        level than tables filling all of RAM could hold (a 16 GiB map of 4 KiB pages on 1 MiB of RAM would
        otherwise build its whole plan first)."""
        span0 = self.fmt.levels[0].span
        first, last = self.fmt.index(va, 0), self.fmt.index(va + size - 1, 0)
        roots = self.entries.words(self._root + first * self.fmt.entry_size, last - first + 1)
        need = 0
        for k in np.flatnonzero(roots == 0).tolist():     # no table below it yet: every table is new
            lo = (va & ~(span0 - 1)) + k * span0
            for a, b, s in pieces:
                part = max(0, min(b, lo + span0) - max(a, lo))
                for d in range(1, self.fmt.depth_for_size(s) + 1):   # a table per `entries` at each level
                    tables = -(-(part // self.fmt.levels[d].span) // self.fmt.levels[d].entries)
                    need += tables * self._table_frames(d)[0]
        free = self.frames.total - self.frames.in_use
        if need > free:
            raise NoMemory(f"mapping [{va:#x}, +{size:#x}) needs at least {need} frames for new tables; "
                           f"{free} frames are free")
        ram = sum(r.size for r in self.mem.regions)   # wherever the tables are, they are in RAM
        for d in range(1, self.fmt.depth_count):
            leaves = sum((b - a) // s for a, b, s in pieces if self.fmt.depth_for_size(s) == d)
            room = ram // self.fmt.table_size(d) * self.fmt.levels[d].entries
            if leaves > room:
                raise NoMemory(f"mapping [{va:#x}, +{size:#x}) needs {leaves} level-{self.fmt.levels[d].arch_level} "
                               f"entries; tables in all of RAM could hold {room}")

    def map_region(self, va: int, target: Target, size: int, flags: MappingFlags,
                   allow_huge: bool = False) -> None:
        """Map [va, va + size): `target` is the first PA of a linear mapping, an array of one PA per page, or
        a function VA → PA (called at each leaf's start, as page_table_multiarch does). With `allow_huge`,
        the largest leaf whose VA and PA are both aligned and that fits is used at each step.
        All-or-nothing: any conflict or lack of memory leaves the table as it was."""
        flags = args.flags(flags)
        vas, pas, sizes = self.plan_region(va, target, size, allow_huge)     # sorted by VA
        kinds = list(_lanes_of_each(sizes, self.fmt.page_sizes()))
        if len(kinds) == 1:                                # one leaf size: the columns are made whole
            d = self.fmt.depth_for_size(kinds[0][0])
            self._apply(vas, self._codecs[d].new_page_np(pas, flags, not self._last(d)),
                        np.full(vas.shape, d, dtype=np.int8))
            return
        leaf_depth = np.zeros(vas.shape, dtype=np.int8)
        raws = np.zeros(vas.shape, dtype=np.uint64)
        for s, lanes in kinds:
            d = self.fmt.depth_for_size(s)
            leaf_depth[lanes] = d
            raws[lanes] = self._codecs[d].new_page_np(pas[lanes], flags, not self._last(d))
        self._apply(vas, raws, leaf_depth)

    def map_pages(self, vas: U64, pas: U64, flags: MappingFlags) -> None:
        """Map arbitrary smallest-size pages (VA i → PA i) with one set of flags; all-or-nothing."""
        vas = args.u64_array(vas, "virtual addresses").reshape(-1)
        pas = args.u64_array(pas, "physical addresses").reshape(-1)
        flags = args.flags(flags)
        if vas.shape != pas.shape:
            raise InvalidArgument(f"map_pages needs as many PAs as VAs ({pas.size} for {vas.size})")
        if not vas.size:
            return
        ps = np.uint64(self.fmt.page_size)
        bad_va = ~self.fmt.canonical_np(vas)
        if np.any(bad_va):
            self.fmt.check_va(int(vas[bad_va][0]))
        wide = (pas >> np.uint64(self.fmt.pa_bits)) != 0
        if np.any(wide):
            self.fmt.check_pa(int(pas[wide][0]))
        if np.any(vas % ps) or np.any(pas % ps):
            raise NotAligned("map_pages needs page-aligned VAs and PAs")
        if np.any(vas[1:] < vas[:-1]):                   # _apply takes the lanes sorted by VA
            order = np.argsort(vas, kind="stable")
            vas, pas = vas[order], pas[order]
        last = self.fmt.depth_count - 1
        self._apply(vas, self._codecs[last].new_page_np(pas, flags, False), np.full(vas.shape, last, dtype=np.int8))

    def set_leaves(self, leaves: Mappings, flags: MappingFlags, pas: U64 | None = None) -> None:
        """Rewrite the given leaves (as `walk` returned them, placeholders included) with `flags`, and with
        new output addresses `pas` if given (e.g. copy-on-write breaking)."""
        if not isinstance(leaves, Mappings) or leaves.fmt != self.fmt:
            raise InvalidArgumentType("set_leaves takes Mappings of this table's format (from walk())")
        flags = args.flags(flags)
        target = leaves.pa if pas is None else args.u64_array(pas, "physical addresses").reshape(-1)
        if target.shape != leaves.pa.shape:
            raise InvalidArgument(f"{target.size} physical addresses for {len(leaves)} leaves")
        for d, lanes in _lanes_of_each(leaves.depth, range(self.fmt.depth_count)):
            leaf = self._codecs[d].new_page_np(target[lanes], flags, not self._last(d))
            self.entries.write_np(leaves.slot[lanes], leaf)
        self._refit(leaves.va)

    def unmap_region(self, va: int, size: int, missing_ok: bool = False) -> Mappings:
        """Remove every leaf in [va, va + size), splitting huge leaves that stick out of the range; returns
        what was removed (placeholders included). A hole raises NotMapped unless `missing_ok`; either way
        nothing is changed before all checks pass. Tables left empty are freed."""
        va, size = self._check_region(va, size)
        parts = self._prepare_range(va, size, missing_ok)
        found = self._mappings(parts, [])
        if len(found):
            self.entries.write_np(found.slot, np.zeros(len(found), dtype=np.uint64))
            self._free_empty_many(parts)
            self._refit(found.va)
        return found

    def protect_region(self, va: int, size: int, flags: MappingFlags, missing_ok: bool = False) -> None:
        """Give every leaf in [va, va + size) new flags, splitting huge leaves that stick out of the range.
        Empty-flags placeholders count as leaves, so protecting to no access and back restores them."""
        va, size = self._check_region(va, size)
        flags = self.check_flags(flags)                   # InvalidFlags before anything changes
        parts = self._prepare_range(va, size, missing_ok)
        for e in parts:                                   # placeholders included
            huge, codec = not self._last(e.depth), self._codecs[e.depth]
            self.entries.write_np(e.slot, codec.new_page_np(codec.paddr_np(e.raw, huge), flags, huge))
        if parts:
            self._refit(np.concatenate([e.va for e in parts]))

    def _prepare_range(self, va: int, size: int, missing_ok: bool) -> list[Entries]:
        """Split the leaves that cross either end of the range (after checking for holes), then list the
        leaf entries inside it (placeholders included), a part per level."""
        end = va + size
        found, problems = self._leaf_entries(va, end, placeholders=True)
        if problems:                            # an adopted table whose tables are not a tree here
            raise NotATree(f"[{va:#x}, {end:#x}): {problems[0]}")
        if not missing_ok and _covered(self.fmt, found, va, end) != size:
            raise NotMapped(f"[{va:#x}, {end:#x}) is not wholly mapped")
        undo: list[tuple[int, int, int]] = []
        try:
            for edge in (va, end):
                self._split_at(edge, undo)
        except NoMemory:
            for slot_pa, raw, table in reversed(undo):
                self.entries.write(slot_pa, raw)
                self._free_table(table)
            raise
        if not undo:                            # nothing split: no leaf crosses an edge
            return found
        return self._leaf_entries(va, end, placeholders=True)[0]

    def _split_at(self, edge: int, undo: list[tuple[int, int, int]]) -> None:
        """Split huge leaves until `edge` is a leaf boundary (no-op outside canonical space or on holes);
        each split is recorded in `undo` as (slot PA, old entry, new table)."""
        if not self.fmt.is_canonical(edge):
            return
        while True:
            slot = self.lookup(edge)
            if slot.raw == 0 or self._last(slot.depth) or slot.depth not in self._sizes:   # nothing to split
                return                                    # (a hole, or a level with no pages: x86's PML4)
            if edge % self._size(slot.depth) == 0:
                return
            if self._is_table(slot.raw, slot.depth):
                return
            undo.append((slot.pa, slot.raw, self._split(slot)))

    def _split(self, slot: Slot) -> int:
        """Replace a huge leaf (or placeholder) by a table of next-level leaves that map the same memory;
        returns the new table's PA."""
        child_depth = slot.depth + 1
        codec, child_codec = self._codecs[slot.depth], self._codecs[child_depth]
        child_huge = not self._last(child_depth)
        template = codec.demote(slot.raw, child_huge)
        n = self.fmt.levels[child_depth].entries
        child_size = self.fmt.levels[child_depth].span
        base = self._paddr(slot.raw, slot.depth)
        pas = np.uint64(base) + np.arange(n, dtype=np.uint64) * np.uint64(child_size)
        children = child_codec.with_paddr_np(np.full(n, template, dtype=np.uint64), pas, child_huge)
        table = self._alloc_table(child_depth)
        self.entries.words(table, n)[:] = children
        self.entries.write(slot.pa, codec.new_table(table))
        return table

    # -------------------------------------------------------------- apply
    def _apply(self, vas: U64, raws: U64, depths: npt.NDArray[np.int8]) -> None:
        """Write leaf `raws` at `vas` (sorted; each at its depth), creating the tables on the way. Level by
        level, the lanes going deeper are grouped by the entry they go through (a run of the sorted VAs):
        each such entry is read and checked once, and a missing table below it is planned once. What a level
        knows of its lanes is kept per run (the first lane of each, and its table: an existing one, or the
        number of a new one), not per lane: only the leaves' slots are a column. Every slot is checked
        before anything is allocated or written; if allocation fails the new tables are freed."""
        fmt = self.fmt
        n = vas.shape[0]
        counts = np.bincount(depths, minlength=fmt.depth_count) if n else np.zeros(fmt.depth_count, dtype=np.intp)
        heads = np.zeros(1, dtype=np.intp)               # the runs of the lanes that reach this level: the
        run_table = np.array([self._root], dtype=np.uint64)   # first lane of each, its existing table ...
        run_new = np.array([-1], dtype=np.int64)              # ... or the new table's number, if it is new
        leaves: list[tuple[_Places, U64]] = []           # per level: where its leaves go, and them
        pointers: list[_Places] = []     # per level below the root: where its new tables' pointers go
        wanted: list[tuple[int, int]] = []               # ... and (depth, how many tables)
        above = 0                                        # lanes whose leaf is above this level
        for depth in range(fmt.depth_count):
            level, here = fmt.levels[depth].arch_level, int(counts[depth])
            if here:                                     # the lanes whose leaf is at this level
                if here == n:                            # all of them: each run's lanes are its table's
                    places = _Places(run_new, run_table, fmt.index_np(vas, depth), fmt.entry_size,
                                     np.diff(heads, append=n))
                    mine: Any = slice(None)
                else:
                    mine = np.flatnonzero(depths == depth)
                    run = np.searchsorted(heads, mine, side="right") - 1
                    places = _Places(run_new[run], run_table[run], fmt.index_np(vas[mine], depth), fmt.entry_size)
                held, raw = self._held(places)
                _refuse(raw != 0, AlreadyMapped, vas[mine][held], raw, level, "holds")
                leaves.append((places, raws[mine]))
            above += here
            if above == n:
                break
            on: Any = slice(None) if above == 0 else np.flatnonzero(depths > depth)
            first = np.flatnonzero(_starts(vas[on] >> np.uint64(fmt.levels[depth].index_lsb)))
            entry_heads = first if above == 0 else on[first]      # per entry: its first lane
            va = vas[entry_heads]
            parent = np.searchsorted(heads, entry_heads, side="right") - 1
            places = _Places(run_new[parent], run_table[parent], fmt.index_np(va, depth), fmt.entry_size)
            raw = self._entries_at(places)
            last, codec = self._last(depth), self._codecs[depth]
            tab = codec.is_table_np(raw, last)
            in_way = (raw != 0) & ~tab
            _refuse(in_way & codec.is_leaf_np(raw, last), MappedToHugePage, va, raw, level, "is a huge leaf")
            _refuse(in_way, AlreadyMapped, va, raw, level, "is an invalid entry")
            need = raw == 0                                       # an empty entry: a new table below it
            pointers.append(places.select(np.flatnonzero(need)))
            planned = sum(count for _, count in wanted)
            wanted.append((depth + 1, int(np.count_nonzero(need))))
            heads = entry_heads                                   # the next level's runs
            run_table = np.where(tab, codec.paddr_np(raw, True), 0).astype(np.uint64)
            run_new = np.where(need, planned + np.cumsum(need) - 1, -1).astype(np.int64)
        made = self._alloc_tables(wanted)
        if made.size:
            self.entries.write_np(_Places.concat(pointers).resolve(made), self._pointers(made, wanted))
        if leaves:
            self.entries.write_np(_Places.concat([p for p, _ in leaves]).resolve(made),
                                  leaves[0][1] if len(leaves) == 1 else np.concatenate([r for _, r in leaves]))
        self._refit(vas)

    def _pointers(self, made: U64, wanted: list[tuple[int, int]]) -> U64:
        """The table entries pointing at the tables `made` for `wanted` (`_alloc_tables`' (depth, count)):
        per level, one made by that level's codec and the others its copies with their tables."""
        out = []
        for (depth, count), tables in zip(wanted, np.split(made, np.cumsum([c for _, c in wanted])[:-1]), strict=True):
            if count:
                codec = self._codecs[depth - 1]                   # the pointers sit one level up
                template = np.full(count, codec.new_table(int(tables[0])), dtype=np.uint64)
                out.append(codec.with_paddr_np(template, tables, True))
        return out[0] if len(out) == 1 else np.concatenate(out)

    def _apply_one(self, va: int, raw: int, depth: int) -> None:
        """`_apply` for one leaf, on ints: the same refusals, checked before anything is allocated or
        written; the missing tables are allocated together (none is kept if one cannot be)."""
        d, slot, entry, _ = self._lookup(va, depth)        # down the tables that exist
        if entry != 0:
            level = self.fmt.levels[d].arch_level
            if d == depth:
                raise AlreadyMapped(f"cannot map {va:#x}: the level-{level} entry holds {entry:#x}")
            huge = self._is_leaf(entry, d)
            raise (MappedToHugePage if huge else AlreadyMapped)(
                f"cannot map {va:#x}: the level-{level} entry {'is a huge leaf' if huge else 'is an invalid entry'} "
                f"{entry:#x}")
        made: list[int] = []
        try:
            for below in range(d + 1, depth + 1):
                made.append(self._alloc_table(below))
        except NoMemory:
            for pa in made:
                self._free_table(pa)
            raise
        for new in made:                              # each new table's pointer (no rights yet), then the leaf
            codec = self._codecs[d]
            self.entries.store(slot, codec.fit_pointer(codec.new_table(new), 0) if codec.pointer_rights
                               else codec.new_table(new))
            d += 1
            slot = new + self.fmt.index(va, d) * self.fmt.entry_size
        self.entries.store(slot, raw)
        self._widen_one(va, raw, depth)

    def _entries_at(self, places: _Places) -> U64:
        """The entries at `places` as they are (0 in a table yet to be made)."""
        places = places.each()
        raw = np.zeros(places.into.shape, dtype=np.uint64)
        old = places.into < 0
        raw[old] = self.entries.read_np(places.select(old).at)
        return raw

    def _held(self, places: _Places) -> tuple[npt.NDArray[np.intp], U64]:
        """The places in existing tables (a table yet to be made holds nothing), and the entries there."""
        if places.lengths is not None and not np.any(places.into < 0):
            return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.uint64)
        places = places.each()
        old = np.flatnonzero(places.into < 0)
        return old, self.entries.read_np(places.select(old).at)

    # ------------------------------------------------------ freeing tables
    def _free_empty(self, va: int, depth: int) -> None:
        """Free the tables above a just-cleared entry at `depth` that became empty, bottom-up."""
        path = [self._root]
        for d in range(depth):
            raw = self.entries.read(path[-1] + self.fmt.index(va, d) * self.fmt.entry_size)
            if not self._is_table(raw, d):
                return                      # already freed along with a sibling's path
            path.append(self._paddr(raw, d))
        for d in range(depth, 0, -1):
            if d == 1 and self.fmt.index(va, 0) in self._borrowed:
                return
            table = path[d]
            if np.any(self.entries.words(table, self.fmt.levels[d].entries)):
                return
            self.entries.write(path[d - 1] + self.fmt.index(va, d - 1) * self.fmt.entry_size, 0)
            self._free_table(table)

    def _free_empty_many(self, cleared: list[Entries]) -> None:
        """`_free_empty` for many cleared entries (a part per level), a level at a time from the bottom:
        the tables that held them, and one level up the tables whose pointers to freed tables were just
        cleared, are each read once, and the empty ones are unhooked and freed together."""
        fmt = self.fmt
        freed = np.zeros(0, dtype=np.uint64)        # a VA in each table freed at the level below
        for depth in range(fmt.depth_count - 1, 0, -1):
            shift = np.uint64(fmt.levels[depth - 1].index_lsb)  # VA >> shift names a table at `depth`
            held = np.concatenate([e.va >> shift for e in cleared if e.depth == depth] or [freed[:0]])
            vas = np.union1d(held[_starts(held)], freed >> shift) << shift       # a VA in each table, once
            if depth == 1 and self._borrowed:       # a borrowed subtree's top table is the other table's
                vas = vas[~np.isin(fmt.index_np(vas, 0), np.array(sorted(self._borrowed), dtype=np.uint64))]
            pointer = self._tables_at(vas, depth - 1)[0] + fmt.index_np(vas, depth - 1) * np.uint64(fmt.entry_size)
            tables = self._codecs[depth - 1].paddr_np(self.entries.read_np(pointer), True)
            n = fmt.levels[depth].entries
            empty = ~read_tables(self.mem, tables, n, self.fmt.entry_size).reshape(-1, n).any(axis=1)
            self.entries.write_np(pointer[empty], np.zeros(int(np.count_nonzero(empty)), dtype=np.uint64))
            self._free_empty_tables(tables[empty])
            freed = vas[empty]

    def _tables_at(self, vas: U64, depth: int) -> tuple[U64, Bool]:
        """The table at `depth` on the way to each VA, and whether there is one (the entries above are
        table entries all the way)."""
        table = np.full(vas.shape, self._root, dtype=np.uint64)
        there = np.ones(vas.shape, dtype=bool)
        for d in range(depth):
            codec = self._codecs[d]
            raw = self.entries.read_np(table + self.fmt.index_np(vas, d) * np.uint64(self.fmt.entry_size))
            there &= codec.is_table_np(raw, False)
            table = np.where(there, codec.paddr_np(raw, True), self._root)
        return table, there

    # ------------------------------------------------------ table entries' rights
    def _refit(self, vas: U64) -> None:
        """Give each table entry above the entries at `vas` the rights the entries of its table need and no
        more (`EntryCodec.pointer_rights`: x86's R/W, U/S and XD, EPT's R/W/X), bottom-up; a no-op for
        formats whose table entries carry no rights."""
        fmt = self.fmt
        if not fmt.pointer_rights or not vas.size:
            return
        here = vas
        for depth in range(fmt.depth_count - 2, -1, -1):          # the table entries at `depth`
            shift = np.uint64(fmt.levels[depth].index_lsb)
            here = _distinct(here >> shift) << shift                # a VA under each of those entries, once
            tables, there = self._tables_at(here, depth)
            slot = tables[there] + fmt.index_np(here[there], depth) * np.uint64(fmt.entry_size)
            raw = self.entries.read_np(slot)
            codec = self._codecs[depth]
            tab = codec.is_table_np(raw, False)
            if not tab.any() or not codec.pointer_rights:
                continue
            slot, raw = slot[tab], raw[tab]
            n = fmt.levels[depth + 1].entries
            below = read_tables(self.mem, codec.paddr_np(raw, True), n, self.fmt.entry_size).reshape(-1, n)
            fitted = codec.fit_pointer(raw, np.bitwise_or.reduce(self._codecs[depth + 1].pointer_needs(below), axis=1))
            changed = fitted != raw
            if changed.any():
                self.entries.write_np(slot[changed], fitted[changed])

    def _rewritten(self, va: int, old: int, new: int, depth: int) -> None:
        """The table entries above one entry rewritten from `old` to `new`: widened when `new` needs all
        `old` did (no table read), else refitted (`_refit_one`)."""
        codec = self._codecs[depth]
        if self.fmt.pointer_rights:
            if codec.pointer_needs(old) & ~codec.pointer_needs(new):
                self._refit_one(va)
            else:
                self._widen_one(va, new, depth)

    def _refit_one(self, va: int) -> None:
        """`_refit` for one VA's path, on ints and one table read per level, stopping where a table entry
        keeps its rights (the ones above then do too)."""
        if not self.fmt.pointer_rights:
            return
        path, table, size, codecs = [], self._root, self.fmt.entry_size, self._codecs
        for d, (shift, mask, _) in enumerate(self._levels[:-1]):
            slot = table + ((va >> shift) & mask) * size
            raw = self.entries.fetch(slot)
            if raw is None or not codecs[d].is_table_np(raw, False):
                break
            path.append((slot, raw, d))
            table = codecs[d].paddr_np(raw, True)
        for slot, raw, d in reversed(path):
            below = self.entries.words(codecs[d].paddr_np(raw, True), self.fmt.levels[d + 1].entries)
            fitted = codecs[d].fit_pointer(raw, int(np.bitwise_or.reduce(codecs[d + 1].pointer_needs(below))))
            if fitted == raw:
                return
            self.entries.store(slot, fitted)

    def widen(self, va: int, depth: int) -> None:
        """After the entry at `depth` on `va`'s path was written by hand (a raw entry, not through this
        table), give each table entry above it the rights it needs, widening only (`EntryCodec.
        pointer_rights`; nothing for formats whose table entries carry none)."""
        va = self.fmt.check_va(va)
        slot = self.lookup(va, args.integer(depth, "depth", 0, self.fmt.depth_count))
        if slot.depth != depth:
            raise InvalidArgument(f"{va:#x} has no depth-{depth} entry (the walk stops at depth {slot.depth})")
        self._widen_one(va, slot.raw, depth)

    def _widen_one(self, va: int, raw: int, depth: int) -> None:
        """`_refit` after one entry `raw` was written at `depth` for `va` (the others unchanged): each table
        entry above gains what it needs, bottom-up, until one already has it."""
        if not self.fmt.pointer_rights or depth == 0:
            return
        path, table, size, codecs = [], self._root, self.fmt.entry_size, self._codecs
        for d, (shift, mask, _) in enumerate(self._levels[:depth]):
            slot = table + ((va >> shift) & mask) * size
            path.append(slot)
            table = codecs[d].paddr_np(self.entries.read(slot), True)
        child = raw
        for d in range(depth - 1, -1, -1):
            slot, pointer = path[d], self.entries.read(path[d])
            needs = codecs[d].pointer_needs(pointer) | codecs[d + 1].pointer_needs(child)
            wider = codecs[d].fit_pointer(pointer, needs)
            if wider == pointer:
                return
            self.entries.store(slot, wider)
            child = wider

    def _free_empty_tables(self, tables: U64) -> None:
        """Free the (all-zero) tables among `tables` that this allocator handed out."""
        self.frames.free_many(tables[self.frames.is_live_np(tables)])

    # --------------------------------------------------------------- walk
    def walk(self, start: int | None = None, end: int | None = None, *, placeholders: bool = False) -> Mappings:
        """Every present leaf overlapping [start, end) (default: everything), VAs sign-extended, as numpy
        columns sorted by VA. Vectorised level by level, so the cost is per table, not per entry. With
        `placeholders`, non-present non-zero entries at leaf-capable levels are listed too. This is the
        software view (the entry codec's leaf and table tests); `Walker.mappings` is the hardware's. A table
        pointer outside RAM is not followed, a loop or a table used at two levels is walked once, and a table
        shared by several entries is listed under each (within `descent.ALIAS_FLOOR`); all are reported in the
        result's `problems`."""
        placeholders = args.boolean(placeholders, "placeholders")
        return self._mappings(*self._leaf_entries(start, end, placeholders))

    def _leaf_entries(self, start: int | None, end: int | None, placeholders: bool) -> tuple[list[Entries],
                                                                                           list[str]]:
        """What `walk` lists, as the descent's entries (a part per level, each sorted by VA), and the
        descent's problems."""
        fmt = self.fmt
        descent = Descent(fmt, self._root, PhysicalReader(self.mem, fmt.entry_size), start, end)
        parts: list[Entries] = []
        for e in descent:
            last, codec = self._last(e.depth), self._codecs[e.depth]
            leaf = codec.is_leaf_np(e.raw, last)
            if placeholders:
                leaf |= ~codec.is_present_np(e.raw)
            if fmt.levels[e.depth].leaf and np.any(leaf):
                parts.append(e.select(leaf))
            tab = codec.is_table_np(e.raw, last)
            descent.descend(tab, codec.paddr_np(e.raw[tab], True))
        return parts, descent.problems

    def _mappings(self, parts: list[Entries], problems: list[str]) -> Mappings:
        """Leaf entries (`_leaf_entries`) as `walk`'s columns."""
        fmt = self.fmt
        rows = []
        for e in parts:
            huge, shape, codec = not self._last(e.depth), e.raw.shape, self._codecs[e.depth]
            rows.append(Mappings(fmt, e.va, codec.paddr_np(e.raw, huge), np.full(shape, fmt.levels[e.depth].span,
                                 dtype=np.uint64), codec.flags_np(e.raw, huge), np.full(shape, e.depth, dtype=np.int8),
                                 e.raw, e.slot))
        return Mappings.concat(fmt, rows, problems)

    # --------------------------------------------------- sharing, teardown
    def copy_from(self, other: PageTable, start: int, size: int) -> None:
        """Share `other`'s root entries covering [start, start + size) (e.g. the kernel half). Shared
        subtrees stay `other`'s: this table never frees them. A slot already in use here: AlreadyMapped."""
        start, size = args.span(start, size, "range")
        if not isinstance(other, PageTable) or other.fmt != self.fmt or other.mem is not self.mem:
            raise InvalidArgument("copy_from needs a table of the same format in the same memory")
        if size == 0:
            return
        self.fmt.check_va(start)
        self.fmt.check_va(start + size - 1)
        first, last = self.fmt.index(start, 0), self.fmt.index(start + size - 1, 0)
        es = self.fmt.entry_size
        for i in range(first, last + 1):
            mine = self.entries.read(self._root + i * es)
            if mine and i not in self._borrowed:
                raise AlreadyMapped(f"root entry {i} is in use in this table")
        for i in range(first, last + 1):
            self.entries.write(self._root + i * es, other.entries.read(other._root + i * es))
            self._borrowed.add(i)

    def uncopy(self, start: int, size: int) -> None:
        """Undo `copy_from` for [start, start + size): clear the borrowed root entries there (the other
        table keeps its subtrees)."""
        start, size = args.span(start, size, "range")
        if size == 0:
            return
        self.fmt.check_va(start)
        self.fmt.check_va(start + size - 1)
        for i in range(self.fmt.index(start, 0), self.fmt.index(start + size - 1, 0) + 1):
            if i in self._borrowed:
                self.entries.write(self._root + i * self.fmt.entry_size, 0)
                self._borrowed.discard(i)

    def destroy(self) -> None:
        """Free every table this table owns (not leaf frames, not borrowed subtrees), each once: the tables
        are found by the same bounded descent as `walk`, so an adopted table with loops is no trap."""
        fmt = self.fmt
        found = {self._root}
        descent = Descent(fmt, self._root, PhysicalReader(self.mem, fmt.entry_size))
        for e in descent:
            codec = self._codecs[e.depth]
            tab = codec.is_table_np(e.raw, self._last(e.depth))
            if e.depth == 0 and self._borrowed:
                index = (e.slot - np.uint64(self._root)) // np.uint64(fmt.entry_size)
                tab &= ~np.isin(index, np.array(sorted(self._borrowed), dtype=np.uint64))
            tables = codec.paddr_np(e.raw[tab], True)
            found.update(tables.tolist())
            descent.descend(tab, tables)
        for table in found:
            self._free_table(table)


def _starts(keys: U64) -> npt.NDArray[np.bool_]:
    """For sorted `keys`: where a run of equal keys starts."""
    starts = np.empty(keys.shape, dtype=bool)
    starts[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=starts[1:])
    return starts


def _covered(fmt: PagingFormat, leaves: list[Entries], start: int, end: int) -> int:
    """The bytes of [start, end) that `leaves` (overlapping it; a part per level, sorted) cover: they are
    disjoint, so only the lowest and the highest can stick out."""
    parts = [(int(e.va[0]), int(e.va[-1]) + fmt.levels[e.depth].span, e.va.size * fmt.levels[e.depth].span)
             for e in leaves if e.va.size]
    if not parts:
        return 0
    first, last = min(p[0] for p in parts), max(p[1] for p in parts)
    return sum(p[2] for p in parts) - max(0, start - first) - max(0, last - end)


def _lanes(mask: npt.NDArray[np.bool_]) -> Any:
    """An index of the lanes where `mask` is true: `slice(None)`, which copies nothing, if it is everywhere."""
    return slice(None) if mask.all() else mask


def _distinct(values: U64) -> U64:
    """The distinct values, sorted (the VAs of a bulk operation mostly come sorted: then by their runs, without
    np.unique's hashing)."""
    if values.size > 1 and bool(np.all(values[1:] >= values[:-1])):
        return values[np.flatnonzero(np.concatenate(([True], values[1:] != values[:-1])))]
    return np.unique(values)


def _lanes_of_each(column: npt.NDArray[Any], values: Iterable[int]) -> Iterator[tuple[int, Any]]:
    """For each of `values` that `column` holds: the value and an index of its lanes (`_lanes`)."""
    for v in values:
        lanes = column == v
        if lanes.any():
            yield v, _lanes(lanes)


@dataclass(frozen=True)
class _Places:
    """Entries to write once the new tables exist: entry `index` of new table number `into`, or of the
    existing table `table` where `into` is -1. With `lengths`, `into` and `table` are per run of
    neighbouring places (`lengths[k]` of them in run k), not per place."""

    into: I64
    table: U64
    index: U64
    entry_size: int
    lengths: npt.NDArray[np.intp] | None = None

    def each(self) -> _Places:
        """The same places with `into` and `table` per place."""
        if self.lengths is None:
            return self
        return _Places(np.repeat(self.into, self.lengths), np.repeat(self.table, self.lengths), self.index,
                       self.entry_size)

    @property
    def at(self) -> U64:
        """The PAs of the entries in existing tables (meaningless where `into` is not -1)."""
        p = self.each()
        out: U64 = p.table + p.index * np.uint64(self.entry_size)
        return out

    def select(self, which: Any) -> _Places:
        p = self.each()
        return _Places(p.into[which], p.table[which], p.index[which], self.entry_size)

    @staticmethod
    def concat(parts: list[_Places]) -> _Places:
        if len(parts) == 1:
            return parts[0]
        parts = [p.each() for p in parts]
        return _Places(np.concatenate([p.into for p in parts]), np.concatenate([p.table for p in parts]),
                       np.concatenate([p.index for p in parts]), parts[0].entry_size)

    def resolve(self, made: U64) -> U64:
        """The entries' PAs, `made` being the new tables' PAs by number (per run, then per place)."""
        table = np.where(self.into >= 0, made.take(self.into, mode="clip"), self.table) if made.size else self.table
        out: U64 = self.index * np.uint64(self.entry_size)
        out += table if self.lengths is None else np.repeat(table, self.lengths)
        return out


def _refuse(bad: npt.NDArray[np.bool_], err: type[Exception], vas: U64, raw: U64, level: int, what: str) -> None:
    """Raise `err` for the first lane in `bad`, naming its VA and the entry in the way."""
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise err(f"cannot map {int(vas[i]):#x}: the level-{level} entry {what} {int(raw[i]):#x}")


def _linear_pieces(va: int, pa: int, size: int, sizes: list[PageSize]) -> list[tuple[int, int, int]]:
    """The greedy largest-aligned-leaf plan of a linear mapping as (start, end, leaf size) pieces: the part
    a size s covers is the s-aligned middle of the range minus the part a larger size already covers."""
    end = va + size
    out: list[tuple[int, int, int]] = []
    taken_lo, taken_hi = end, end        # the interval covered by larger sizes (empty to start)
    for s in sorted(sizes, reverse=True):
        if (pa - va) % s:
            continue
        lo, hi = -(-va // s) * s, end // s * s
        if lo >= hi:
            continue
        pieces = [(lo, hi)] if taken_lo >= taken_hi else [(lo, taken_lo), (taken_hi, hi)]
        out += [(a, b, int(s)) for a, b in pieces if b > a]
        taken_lo, taken_hi = lo, hi
    return out


def _plan_linear(va: int, pa: int, pieces: list[tuple[int, int, int]]) -> tuple[U64, U64, U64]:
    """The leaves of `_linear_pieces`, as arrays of VA, PA and size sorted by VA (no per-page loop): the
    pieces are disjoint, so putting them in order sorts the leaves."""
    pieces = sorted(pieces)
    parts = [np.arange((b - a) // s, dtype=np.uint64) for a, b, s in pieces]
    for (a, _, s), part in zip(pieces, parts, strict=True):      # in place: no temporary column per piece
        part *= np.uint64(s)
        part += np.uint64(a)
    vas = parts[0] if len(parts) == 1 else np.concatenate(parts)
    sz = np.concatenate([np.full((b - a) // s, s, dtype=np.uint64) for a, b, s in pieces])
    pas = vas + np.uint64((pa - va) % (1 << 64))                   # modulo 2**64: pa may be below va
    return vas, pas, sz


def _plan_pages(va: int, pas: U64, sizes: list[PageSize], page: int) -> tuple[U64, U64, U64]:
    """Plan for one PA per page: a huge leaf wherever a whole aligned block of pages is physically
    contiguous from an equally aligned PA (largest size first), 4K leaves elsewhere. Vectorised per size."""
    n = pas.shape[0]
    index = np.arange(n, dtype=np.uint64)
    run = pas - index * np.uint64(page)            # constant along a physically contiguous run
    taken = np.zeros(n, dtype=bool)
    out_va, out_pa, out_size = [], [], []
    for s in sorted(sizes, reverse=True):
        m = s // page
        if m == 1:
            continue
        first = (-(va // page)) % m                # first page whose VA is s-aligned
        k = (n - first) // m
        if k <= 0:
            continue
        starts = first + np.arange(k) * m
        block = run[first:first + k * m].reshape(k, m)
        ok = ((block == block[:, :1]).all(axis=1) & (pas[starts] % np.uint64(s) == 0)
              & ~taken[first:first + k * m].reshape(k, m).any(axis=1))
        chosen = starts[ok]
        taken[(chosen[:, None] + np.arange(m)[None, :]).reshape(-1)] = True
        out_va.append(np.uint64(va) + chosen.astype(np.uint64) * np.uint64(page))
        out_pa.append(pas[chosen])
        out_size.append(np.full(chosen.shape[0], s, dtype=np.uint64))
    rest = np.flatnonzero(~taken)
    out_va.append(np.uint64(va) + index[rest] * np.uint64(page))
    out_pa.append(pas[rest])
    out_size.append(np.full(rest.shape[0], page, dtype=np.uint64))
    vas, pa, sz = np.concatenate(out_va), np.concatenate(out_pa), np.concatenate(out_size)
    order = np.argsort(vas, kind="stable")
    return vas[order], pa[order], sz[order]


def _plan_callable(va: int, fn: Callable[[int], int], size: int, sizes: list[PageSize],
                   fmt: PagingFormat) -> tuple[U64, U64, U64]:
    """page_table_multiarch's map_region loop: ask for the PA at each step, take the largest fitting leaf."""
    vas: list[int] = []
    pas: list[int] = []
    szs: list[int] = []
    v, end = va, va + size
    while v < end:
        p = fn(v)
        fmt.check_pa(p)
        if p % fmt.page_size:
            raise NotAligned(f"target PA {p:#x} for VA {v:#x} is not page-aligned")
        s = next(s for s in sorted(sizes, reverse=True) if v % s == 0 and p % s == 0 and end - v >= s)
        vas.append(v)
        pas.append(p)
        szs.append(s)
        v += s
    return (np.array(vas, dtype=np.uint64), np.array(pas, dtype=np.uint64), np.array(szs, dtype=np.uint64))
