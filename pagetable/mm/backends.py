"""Mapping backends: how an area's pages get into a `PageTable` (ArceOS axmm's and Starry's copy-on-write
axmm's), always through the generic table so the bytes are the architecture's, in pages of the table's
format (`fmt.page_size`; one data frame per page).

- `Linear(pa_va_offset)`: VA -> VA - offset (signed), mapped eagerly, huge pages where aligned.
- `Alloc(populate)`: private anonymous memory in zeroed frames, eager or on first touch; a clone copies the
  pages it has.
- `Cow(start, file)`: private memory (anonymous, or a file image) filled on first touch; a clone shares every
  frame read-only, both sides lose WRITE and the frame's reference count goes up; a write fault on a frame
  with count 1 restores WRITE, otherwise copies the frame. Counts are 64-bit (no 255 limit: docs/design.md,
  "Where the Rust crates differ", item 13).
- `Shared(start, pages)`: the same frames in every address space that maps them (`SharedPages`).

Data frames come from the table's own allocator (`pt.frames`) and carry one reference per mapping; a backend
that owns frames releases them on unmap, so unmapping everything frees everything.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from .. import args
from ..flags import MappingFlags
from ..mappings import Mappings
from ..table import PageTable
from .errors import InvalidParam

U64 = npt.NDArray[np.uint64]


class Backend(Protocol):
    """The operations AddrSpace needs from a backend (MappingBackend plus populate and clone)."""

    def map(self, start: int, size: int, flags: MappingFlags, pt: PageTable) -> None: ...

    def unmap(self, start: int, size: int, pt: PageTable) -> None: ...

    def protect(self, start: int, size: int, flags: MappingFlags, pt: PageTable) -> None: ...

    def populate(self, start: int, size: int, flags: MappingFlags, access: MappingFlags, pt: PageTable) -> None:
        """Make every page of [start, start + size) present with an entry that allows `access` (fault in lazy
        pages, break copy-on-write for WRITE); `flags` are the area's."""
        ...

    def clone_map(self, start: int, size: int, flags: MappingFlags, parent: PageTable,
                  child: PageTable) -> Backend:
        """Give `child` this range as a fork would, adjusting `parent` if needed; returns the child's backend."""
        ...

    def frames_needed(self, start: int, size: int, access: MappingFlags, pt: PageTable) -> int:
        """At most how many frames `populate` of this range for `access` allocates (data and tables)."""
        ...


def _pages(pt: PageTable, start: int, size: int) -> U64:
    """The VA of every page of [start, start + size) (pages of the table's format: `fmt.page_size`)."""
    page = pt.fmt.page_size
    return np.uint64(start) + np.arange(size // page, dtype=np.uint64) * np.uint64(page)


def _missing(pt: PageTable, start: int, size: int) -> tuple[Mappings, U64]:
    """The leaves in the range (placeholders included), and the VAs of its pages that have none."""
    page = pt.fmt.page_size
    have = pt.walk(start, start + size, placeholders=True)
    covered = np.zeros(size // page, dtype=bool)
    for va, sz in zip(have.va.tolist(), have.size.tolist(), strict=True):
        lo, hi = max(va, start), min(va + sz, start + size)
        covered[(lo - start) // page:(hi - start) // page] = True
    return have, _pages(pt, start, size)[~covered]


def _new_tables(pt: PageTable, vas: U64) -> int:
    """At most how many tables mapping pages at `vas` allocates: one per distinct entry above the leaves."""
    levels = pt.fmt.levels
    return sum(int(np.unique(vas >> np.uint64(levels[d - 1].index_lsb)).size) for d in range(1, len(levels)))


def _copy_frames(pt: PageTable, src: U64, dst: U64) -> None:
    """Copy whole pages (`fmt.page_size` bytes) src[i] → dst[i] (vectorised)."""
    words = np.arange(pt.fmt.page_size // 8, dtype=np.uint64) * np.uint64(8)
    data = pt.mem.read_u64_np((src[:, None] + words[None, :]).reshape(-1))
    pt.mem.write_u64_np((dst[:, None] + words[None, :]).reshape(-1), data)


def _release(pt: PageTable, removed: Mappings) -> None:
    """Drop the references the removed leaves (empty-flags placeholders included) held on their frames."""
    if len(removed):
        pt.frames.release_many(removed.pa)


class _Eager(abc.ABC):
    """Shared behaviour of backends whose pages are always mapped (Linear, Shared): nothing to populate,
    and a clone simply maps the same memory."""

    @abc.abstractmethod
    def map(self, start: int, size: int, flags: MappingFlags, pt: PageTable) -> None: ...

    @abc.abstractmethod
    def unmap(self, start: int, size: int, pt: PageTable) -> None: ...

    def protect(self, start: int, size: int, flags: MappingFlags, pt: PageTable) -> None:
        pt.protect_region(start, size, flags, missing_ok=True)

    def populate(self, start: int, size: int, flags: MappingFlags, access: MappingFlags, pt: PageTable) -> None:
        return  # always mapped: nothing to fault in

    def frames_needed(self, start: int, size: int, access: MappingFlags, pt: PageTable) -> int:
        return 0

    def clone_map(self, start: int, size: int, flags: MappingFlags, parent: PageTable,
                  child: PageTable) -> Backend:
        self.map(start, size, flags, child)
        return self


@dataclass(frozen=True)
class Linear(_Eager):
    """A fixed-offset mapping: PA = VA - pa_va_offset (the offset may be negative)."""

    pa_va_offset: int

    def __post_init__(self) -> None:
        args.integer(self.pa_va_offset, "Linear offset", error=InvalidParam)

    def map(self, start: int, size: int, flags: MappingFlags, pt: PageTable) -> None:
        pt.map_region(start, start - self.pa_va_offset, size, flags, allow_huge=True)

    def unmap(self, start: int, size: int, pt: PageTable) -> None:
        pt.unmap_region(start, size, missing_ok=True)



@dataclass(frozen=True)
class Alloc:
    """Private anonymous memory in zeroed frames: all at map time (`populate`) or page by page on touch."""

    populate_now: bool = False

    def __post_init__(self) -> None:
        args.boolean(self.populate_now, "Alloc populate", error=InvalidParam)

    def map(self, start: int, size: int, flags: MappingFlags, pt: PageTable) -> None:
        if self.populate_now:
            self.populate(start, size, flags, MappingFlags(0), pt)

    def unmap(self, start: int, size: int, pt: PageTable) -> None:
        _release(pt, pt.unmap_region(start, size, missing_ok=True))

    def protect(self, start: int, size: int, flags: MappingFlags, pt: PageTable) -> None:
        pt.protect_region(start, size, flags, missing_ok=True)

    def frames_needed(self, start: int, size: int, access: MappingFlags, pt: PageTable) -> int:
        _, missing = _missing(pt, start, size)
        return int(missing.size) + _new_tables(pt, missing)

    def populate(self, start: int, size: int, flags: MappingFlags, access: MappingFlags, pt: PageTable) -> None:
        _, missing = _missing(pt, start, size)
        if missing.size:
            frames = pt.frames.alloc_many(int(missing.size), zero=True)
            try:
                pt.map_pages(missing, frames, flags)
            except BaseException:
                pt.frames.release_many(frames)
                raise

    def clone_map(self, start: int, size: int, flags: MappingFlags, parent: PageTable,
                  child: PageTable) -> Backend:
        have = parent.walk(start, start + size, placeholders=True)
        if len(have):
            frames = child.frames.alloc_many(len(have), zero=False)
            _copy_frames(parent, have.pa, frames)
            try:
                child.map_pages(have.va, frames, flags)
            except BaseException:
                child.frames.release_many(frames)
                raise
        return self


@dataclass(frozen=True)
class Cow:
    """Private memory filled on first touch — zeros, or `file` bytes laid out from `start` (zero past its
    end) — and shared copy-on-write with clones."""

    start: int = 0
    file: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        args.address(self.start, "Cow start", error=InvalidParam)
        if self.file is not None and not isinstance(self.file, bytes):
            raise InvalidParam(f"a Cow file image must be bytes, not {type(self.file).__name__}")

    def map(self, start: int, size: int, flags: MappingFlags, pt: PageTable) -> None:
        pass  # lazy

    def unmap(self, start: int, size: int, pt: PageTable) -> None:
        _release(pt, pt.unmap_region(start, size, missing_ok=True))

    def protect(self, start: int, size: int, flags: MappingFlags, pt: PageTable) -> None:
        have = pt.walk(start, start + size, placeholders=True)
        if not len(have):
            return
        shared = pt.frames.ref_counts(have.pa) > 1
        pt.set_leaves(have, flags)
        if flags & MappingFlags.WRITE and np.any(shared):
            pt.set_leaves(have.select(shared), flags & ~MappingFlags.WRITE)   # still copy-on-write

    def _fill(self, pt: PageTable, vas: U64, frames: U64) -> None:
        """Copy the file bytes that fall in each new page [va, va + page size) into its frame; `start` need
        not be page-aligned, so the first page may begin before the file and take its bytes at an offset."""
        if not self.file:
            return
        end, page = self.start + len(self.file), pt.fmt.page_size
        for va, pa in zip(vas.tolist(), frames.tolist(), strict=True):
            lo, hi = max(va, self.start), min(va + page, end)
            if lo < hi:
                pt.mem.write(pa + lo - va, self.file[lo - self.start:hi - self.start])

    def _work(self, start: int, size: int, access: MappingFlags, pt: PageTable) -> tuple[U64, Mappings, Mappings]:
        """What populating for `access` does: the pages to fill, the present pages whose copy-on-write a
        WRITE breaks as sole owner (WRITE back) and as sharer (a private copy)."""
        have, missing = _missing(pt, start, size)
        broken = have.select(pt.fmt.codec.is_present_np(have.raw) & ((have.flags & np.uint64(MappingFlags.WRITE)) == 0)
                             & bool(access & MappingFlags.WRITE))
        shared = pt.frames.ref_counts(broken.pa) > 1 if len(broken) else np.zeros(0, dtype=bool)
        return missing, broken.select(~shared), broken.select(shared)

    def frames_needed(self, start: int, size: int, access: MappingFlags, pt: PageTable) -> int:
        missing, _, copies = self._work(start, size, access, pt)
        return int(missing.size) + len(copies) + _new_tables(pt, missing)

    def populate(self, start: int, size: int, flags: MappingFlags, access: MappingFlags, pt: PageTable) -> None:
        """Fill the missing pages and, for WRITE, break copy-on-write: a sole owner gets WRITE back, a shared
        frame is copied. All-or-nothing: every frame it needs is allocated before anything changes."""
        missing, sole, copies = self._work(start, size, access, pt)
        fresh = pt.frames.alloc_many(int(missing.size), zero=True)
        try:
            private = pt.frames.alloc_many(len(copies), zero=False)
        except BaseException:
            pt.frames.release_many(fresh)
            raise
        if missing.size:
            self._fill(pt, missing, fresh)
            try:
                pt.map_pages(missing, fresh, flags)
            except BaseException:
                pt.frames.release_many(np.concatenate([fresh, private]))
                raise
        pt.set_leaves(sole, flags)                               # sole owner: WRITE back
        if len(copies):                                          # shared: a private copy
            _copy_frames(pt, copies.pa, private)
            pt.set_leaves(copies, flags, private)
            pt.frames.release_many(copies.pa)

    def clone_map(self, start: int, size: int, flags: MappingFlags, parent: PageTable,
                  child: PageTable) -> Backend:
        have = parent.walk(start, start + size, placeholders=True)
        if len(have):
            readonly = flags & ~MappingFlags.WRITE
            child.map_pages(have.va, have.pa, readonly)
            parent.frames.add_ref_many(have.pa)
            parent.set_leaves(have, readonly)
        return self


class SharedPages:
    """`count` zeroed pages (frames of the table's page size) shared by every address space that maps them.
    The handle holds one reference per frame until `close()`; each mapping holds another."""

    def __init__(self, pt: PageTable, count: int) -> None:
        if pt.frames.frame_size != pt.fmt.page_size:
            raise InvalidParam(f"shared pages are {pt.fmt.page_size:#x}-byte pages of {pt.fmt.name}, but the "
                               f"table's allocator hands out {pt.frames.frame_size:#x}-byte frames")
        self.frames = pt.frames
        self.pas = pt.frames.alloc_many(count, zero=True)
        self._open = True

    def close(self) -> None:
        if self._open:
            self.frames.release_many(self.pas)
            self._open = False


@dataclass(frozen=True)
class Shared(_Eager):
    """Maps the pages of `pages` from `start` (the page at `va` is pages.pas[(va - start) / page size])."""

    start: int
    pages: SharedPages = field(compare=False)

    def __post_init__(self) -> None:
        args.address(self.start, "Shared start", error=InvalidParam)
        if not isinstance(self.pages, SharedPages):
            raise InvalidParam(f"Shared maps SharedPages, not {args.describe(self.pages)}")

    def _range(self, start: int, size: int, page: int) -> U64:
        first = (start - self.start) // page
        if first < 0 or first + size // page > self.pages.pas.size:
            raise InvalidParam(f"[{start:#x}, +{size:#x}) is outside the shared pages")
        return self.pages.pas[first:first + size // page]

    def map(self, start: int, size: int, flags: MappingFlags, pt: PageTable) -> None:
        pas = self._range(start, size, pt.fmt.page_size)
        pt.map_pages(_pages(pt, start, size), pas, flags)
        pt.frames.add_ref_many(pas)

    def unmap(self, start: int, size: int, pt: PageTable) -> None:
        _release(pt, pt.unmap_region(start, size, missing_ok=True))


