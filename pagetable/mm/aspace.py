"""`AddrSpace`: a kernel address space over real tables (the `AddrSpace` of ArceOS's and Starry's axmm), with
lazy allocation, copy-on-write `try_clone` and page-fault handling, in pages of its format (`fmt.page_size`).

Differences from the Rust crates, each a fix (docs/design.md, "Where the Rust crates differ", items 10-13):
- `protect` updates both the entries and the areas (ArceOS only changed the entries);
- `read`/`write` check the areas' permissions and fault lazy pages in (ArceOS ignored both), and `write`
  breaks copy-on-write before it stores;
- range checks: outside the space → `OutOfRange` (ENOMEM), misaligned → `InvalidParam` (EINVAL), an access
  without an area or permission → `BadAddress` (EFAULT); never a panic;
- copy-on-write counts have no 255 limit, and a write fault on a sole owner restores WRITE on the entry
  (not only on the area).

Every argument is checked before anything changes: an address or size that is not an integer, flags that
are not `MappingFlags`, a `populate` that is not a bool or a backend that is not one is `InvalidParam`
(EINVAL); a failed call leaves the areas, the entries and the frames as they were.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Self, TypeVar

from .. import args
from ..errors import NoMemory, PagetableError, PagingError, PhysMemError
from ..flags import MappingFlags
from ..format import PagingFormat
from ..frames import FrameAllocator
from ..physmem import PhysMem
from ..table import PageTable
from .area import MemoryArea
from .backends import Alloc, Backend, Cow, Linear, Shared
from .errors import BadAddress, BadState, InvalidParam, MmError, OutOfMemory, OutOfRange
from .memory_set import MemorySet

Area = MemoryArea[Backend]
R = TypeVar("R")
NO_ACCESS = MappingFlags(0)
RISCV_QEMU_VIRT_RAM_BASE = 0x8000_0000
"""Where the RISC-V QEMU `virt` machine has RAM: `new_empty`'s default RAM base (other machines and
architectures put RAM elsewhere; pass `ram_base`)."""
DEFAULT_RAM_SIZE = 64 << 20
"""`new_empty`'s default amount of RAM (64 MiB)."""


@contextlib.contextmanager
def _out_of_memory() -> Iterator[None]:
    """A backend or table that ran out of frames is OutOfMemory (ENOMEM), not a bare NoMemory or BadState."""
    try:
        yield
    except NoMemory as exc:
        raise OutOfMemory(str(exc)) from exc
    except BadState as exc:
        if isinstance(exc.__cause__, NoMemory):
            raise OutOfMemory(str(exc.__cause__)) from exc
        raise


class AddrSpace:
    """The VA range [base, base + size) of `fmt` tables, with its areas."""

    def __init__(self, fmt: PagingFormat, base: int, size: int, frames: FrameAllocator) -> None:
        if not isinstance(fmt, PagingFormat) or not isinstance(frames, FrameAllocator):
            raise InvalidParam("an address space needs a PagingFormat and a FrameAllocator")
        base, size = args.span(base, size, "address space", error=InvalidParam)
        if frames.frame_size != fmt.page_size:             # a data page is one frame
            raise InvalidParam(f"{fmt.name} has {fmt.page_size:#x}-byte pages, but the allocator hands out "
                               f"{frames.frame_size:#x}-byte frames (FrameAllocator(..., frame_size="
                               f"{fmt.page_size:#x}))")
        self.fmt = fmt
        self._base, self._size = base, size
        self._pt = PageTable(fmt, frames.mem, frames)
        self._areas: MemorySet[Backend] = MemorySet()

    @classmethod
    def new_empty(cls, fmt: PagingFormat, base: int, size: int, frames: FrameAllocator | None = None, *,
                  ram_base: int | None = None, ram_size: int | None = None) -> Self:
        """An address space with no areas, its tables and pages allocated from `frames`. Without `frames`,
        RAM is made for it: `ram_size` bytes (default `DEFAULT_RAM_SIZE`, 64 MiB) at `ram_base` (default
        `RISCV_QEMU_VIRT_RAM_BASE`, 0x8000_0000, where the RISC-V QEMU virt machine has RAM), in frames of
        the format's page size. `base`, `size` and the RAM must be aligned to `fmt.page_size`."""
        base, size = args.span(base, size, "address space", error=InvalidParam)
        if not isinstance(fmt, PagingFormat):
            raise InvalidParam(f"an address space needs a PagingFormat, not {type(fmt).__name__}")
        page = fmt.page_size
        if base % page or size % page or size <= 0:
            raise InvalidParam(f"address space [{base:#x}, +{size:#x}) is not aligned to {fmt.name}'s "
                               f"{page:#x}-byte pages")
        if not (fmt.is_canonical(base) and fmt.is_canonical(base + size - 1)):
            raise InvalidParam(f"address space [{base:#x}, +{size:#x}) is not canonical for {fmt.name}")
        if frames is not None:
            if ram_base is not None or ram_size is not None:
                raise InvalidParam("new_empty takes frames or ram_base/ram_size, not both: the allocator's "
                                   "memory is the RAM")
            return cls(fmt, base, size, frames)
        ram_base, ram_size = args.span(RISCV_QEMU_VIRT_RAM_BASE if ram_base is None else ram_base,
                                       DEFAULT_RAM_SIZE if ram_size is None else ram_size, "RAM",
                                       error=InvalidParam)
        if ram_base % page or ram_size % page or ram_size <= 0:
            raise InvalidParam(f"RAM [{ram_base:#x}, +{ram_size:#x}) is not a positive number of {fmt.name}'s "
                               f"{page:#x}-byte pages at a page-aligned base")
        try:
            frames = FrameAllocator(PhysMem([(ram_base, ram_size)]), frame_size=page)
        except PhysMemError as exc:
            raise InvalidParam(str(exc)) from None
        return cls(fmt, base, size, frames)

    # ------------------------------------------------------------- basics
    @property
    def base(self) -> int:
        return self._base

    @property
    def end(self) -> int:
        return self._base + self._size

    @property
    def size(self) -> int:
        return self._size

    @property
    def page_table(self) -> PageTable:
        return self._pt

    @property
    def page_table_root(self) -> int:
        return self._pt.root_paddr

    @property
    def frames(self) -> FrameAllocator:
        return self._pt.frames

    def contains_range(self, start: int, size: int) -> bool:
        start, size = args.integer(start, "start", error=InvalidParam), args.integer(size, "size", error=InvalidParam)
        return self._base <= start and start + size <= self.end and size >= 0

    def with_addr_space(self, fn: Callable[[AddrSpace], R]) -> R:
        """uptr's `AddrSpaceProvider`: lend this space to `fn`."""
        return fn(self)

    def areas(self) -> Iterator[Area]:
        return iter(self._areas)

    def _validate(self, start: int, size: int) -> tuple[int, int]:
        """(start, size) as ints, checked to be a page-aligned range inside the space."""
        start, size = args.span(start, size, "range", error=InvalidParam)
        if not self.contains_range(start, size):
            raise OutOfRange(f"[{start:#x}, +{size:#x}) is outside the address space "
                             f"[{self._base:#x}, {self.end:#x})")
        page = self.fmt.page_size
        if start % page or size % page:
            raise InvalidParam(f"[{start:#x}, +{size:#x}) is not aligned to {self.fmt.name}'s {page:#x}-byte pages")
        return start, size

    # ---------------------------------------------------------- mappings
    def copy_mappings_from(self, other: AddrSpace) -> None:
        """Share `other`'s top-level entries for its whole range (e.g. the kernel half) in this table."""
        if not isinstance(other, AddrSpace):
            raise InvalidParam(f"copy_mappings_from needs an AddrSpace, not {type(other).__name__}")
        if self._base < other.end and other.base < self.end:
            raise InvalidParam("copy_mappings_from: the two address spaces overlap")
        self._pt.copy_from(other._pt, other.base, other.size)

    def clear_mappings(self, start: int, size: int) -> None:
        """Undo `copy_mappings_from` for [start, start + size)."""
        self._pt.uncopy(start, size)

    def find_free_area(self, hint: int, size: int, limit_start: int, limit_end: int,
                       align: int | None = None) -> int | None:
        """A free block of `size` bytes in [limit_start, limit_end) (and the space), at or after `hint`
        when possible, aligned to `align` (default: the format's page size); None if there is none."""
        align = self.fmt.page_size if align is None else align
        limit_start = args.integer(limit_start, "find_free_area limit start", error=InvalidParam)
        limit_end = args.integer(limit_end, "find_free_area limit end", error=InvalidParam)
        return self._areas.find_free_area(hint, size, max(limit_start, self._base), min(limit_end, self.end),
                                          align)

    def map(self, start: int, size: int, flags: MappingFlags, populate: bool, backend: Backend) -> None:
        """Add an area backed by `backend`; with `populate`, fault every page in now."""
        start, size = self._validate(start, size)
        flags = args.flags(flags, error=InvalidParam)
        populate = args.boolean(populate, "populate", error=InvalidParam)
        if isinstance(backend, type) or not all(callable(getattr(backend, m, None))
                                                for m in ("map", "unmap", "protect", "populate", "clone_map")):
            raise InvalidParam(f"{args.describe(backend)} is not a mapping backend (Linear, Alloc, Cow, Shared)")
        self._check_flags(flags)
        with _out_of_memory():
            self._areas.map(MemoryArea(start, size, flags, backend), self._pt)
        if populate:
            try:
                self.populate_area(start, size)
            except MmError:
                self.unmap(start, size)                # a failed map leaves no area behind
                raise

    def _check_flags(self, flags: MappingFlags) -> None:
        """InvalidParam (EINVAL) for flags the entry format cannot encode (RISC-V: WRITE without READ), at
        map or protect time rather than at the first fault."""
        try:
            self._pt.check_flags(flags)
        except PagingError as exc:
            raise InvalidParam(str(exc)) from None

    def map_linear(self, va: int, pa: int, size: int, flags: MappingFlags) -> None:
        """Map [va, va + size) to [pa, pa + size) (huge pages where both are aligned)."""
        va, size = self._validate(va, size)
        pa = args.address(pa, "physical address", error=InvalidParam)
        if pa % self.fmt.page_size:
            raise InvalidParam(f"PA {pa:#x} is not aligned to {self.fmt.name}'s {self.fmt.page_size:#x}-byte pages")
        self.map(va, size, flags, False, Linear(va - pa))

    def map_alloc(self, start: int, size: int, flags: MappingFlags, populate: bool) -> None:
        """Anonymous zeroed memory, allocated now (`populate`) or on first touch."""
        self.map(start, size, flags, False, Alloc(args.boolean(populate, "populate", error=InvalidParam)))

    def unmap(self, start: int, size: int) -> None:
        start, size = self._validate(start, size)
        with _out_of_memory():                         # splitting a huge page may need a table
            self._areas.unmap(start, size, self._pt)

    def unmap_user_areas(self) -> None:
        for area in [a for a in self._areas if a.flags & MappingFlags.USER]:
            self._areas.unmap(area.start, area.size, self._pt)

    def protect(self, start: int, size: int, flags: MappingFlags) -> None:
        """New flags for [start, start + size): areas are split as needed, entries rewritten."""
        start, size = self._validate(start, size)
        new = args.flags(flags, error=InvalidParam)
        self._check_flags(new)
        with _out_of_memory():
            self._areas.protect(start, size, lambda old: None if old == new else new, self._pt)

    def clear(self) -> None:
        """Unmap every area (frames owned by backends are released)."""
        self._areas.clear(self._pt)

    def destroy(self) -> None:
        """`clear`, then free the page table itself."""
        self.clear()
        self._pt.destroy()

    # ------------------------------------------------------ populate/faults
    def _covering(self, start: int, size: int) -> Iterator[tuple[Area, int, int]]:
        """(area, lo, hi) pieces covering [start, start + size); BadAddress at the first gap."""
        pos, end = start, start + size
        while pos < end:
            area = self._areas.find(pos)
            if area is None:
                raise BadAddress(f"{pos:#x} is not in any area")
            hi = min(area.end, end)
            yield area, pos, hi
            pos = hi

    def populate_area(self, start: int, size: int, access: MappingFlags = NO_ACCESS) -> None:
        """Fault in every page of the range for `access` (WRITE breaks copy-on-write). A gap or an area
        without the access → BadAddress; no memory → OutOfMemory."""
        start, size = args.span(start, size, "range", error=InvalidParam)
        access = args.flags(access, "access", error=InvalidParam)
        page = self.fmt.page_size
        lo, hi = start & ~(page - 1), -(-(start + size) // page) * page
        self._validate(lo, hi - lo)
        pieces = list(self._covering(lo, hi - lo))
        for area, a, b in pieces:                      # every area is checked before any is populated
            if access & ~area.flags:
                raise BadAddress(f"[{a:#x}, {b:#x}) is {area.flags.short()}, not {MappingFlags(access).short()}")
        if len(pieces) > 1:                            # each backend's populate is all-or-nothing; so is this
            need = sum(area.backend.frames_needed(a, b - a, access, self._pt) for area, a, b in pieces)
            free = self.frames.total - self.frames.in_use
            if need > free:
                raise OutOfMemory(f"populating [{lo:#x}, {hi:#x}) may need {need} frames; {free} are free")
        for area, a, b in pieces:
            with _out_of_memory():
                try:
                    area.backend.populate(a, b - a, area.flags, access, self._pt)
                except PagingError as exc:
                    if isinstance(exc, NoMemory):
                        raise
                    raise BadState(str(exc)) from exc

    def check_region_access(self, start: int, size: int, access: MappingFlags) -> bool:
        """True if [start, start + size) is covered by contiguous areas whose flags all include `access`."""
        start, size = args.span(start, size, "range", error=InvalidParam)
        access = args.flags(access, "access", error=InvalidParam)
        if size == 0:
            return self._areas.find(start) is not None
        try:
            return all(not access & ~area.flags for area, _, _ in self._covering(start, size))
        except BadAddress:
            return False

    can_access_range = check_region_access

    def handle_page_fault(self, vaddr: int, access: MappingFlags) -> bool:
        """Resolve a fault at `vaddr` for `access` (lazy allocation, copy-on-write). False when the address
        has no area or the area does not allow the access — a real fault for the program."""
        vaddr = args.integer(vaddr, "fault address", error=InvalidParam)
        access = args.flags(access, "access", error=InvalidParam)
        if not self._base <= vaddr < self.end:
            return False
        area = self._areas.find(vaddr)
        if area is None or access & ~area.flags:
            return False
        page = vaddr & ~(self.fmt.page_size - 1)
        try:
            area.backend.populate(page, self.fmt.page_size, area.flags, access, self._pt)
            _, flags, _ = self._pt.query(page)
        except PagetableError:
            return False
        return not access & ~flags

    # ------------------------------------------------------------- data
    def _pages(self, start: int, size: int, access: MappingFlags) -> list[tuple[int, int, int]]:
        """(pa, offset in buffer, length) chunks for [start, start + size) after checking the access and
        faulting the pages in."""
        if size == 0:
            return []
        if not self.check_region_access(start, size, access):
            raise BadAddress(f"[{start:#x}, +{size:#x}) is not {MappingFlags(access).short()} in this space")
        self.populate_area(start, size, access)
        out = []
        pos, end = start, start + size
        while pos < end:
            pa, _, page_size = self._pt.query(pos)
            n = min(end, (pos & ~(page_size - 1)) + page_size) - pos
            out.append((pa, pos - start, n))
            pos += n
        return out

    def read(self, start: int, size: int) -> bytes:
        """Read through the page tables (lazy pages are faulted in); needs READ on every byte."""
        start, size = args.span(start, size, "read", error=InvalidParam)
        pages = self._pages(start, size, MappingFlags.READ)     # checked before anything is allocated
        out = bytearray(size)
        for pa, off, n in pages:
            out[off:off + n] = self._pt.mem.read(pa, n)
        return bytes(out)

    def write(self, start: int, data: bytes) -> None:
        """Write through the page tables (copy-on-write is broken first); needs WRITE on every byte."""
        data = args.data(data, error=InvalidParam)
        for pa, off, n in self._pages(start, len(data), MappingFlags.WRITE):
            self._pt.mem.write(pa, data[off:off + n])

    # ------------------------------------------------------------- clone
    def try_clone(self) -> Self:
        """A copy as fork makes it: Linear and Shared areas map the same memory, Alloc areas are copied,
        Cow areas share their frames copy-on-write (both sides lose WRITE until a write fault)."""
        with _out_of_memory():
            child = type(self)(self.fmt, self._base, self._size, self._pt.frames)
        shared: list[Area] = []
        try:
            with _out_of_memory():
                for area in list(self._areas):
                    backend = area.backend.clone_map(area.start, area.size, area.flags, self._pt, child._pt)
                    child._areas.insert(MemoryArea(area.start, area.size, area.flags, backend))
                    if isinstance(backend, Cow):
                        shared.append(area)
        except PagetableError:
            child.destroy()                            # the child's references go ...
            for area in shared:                        # ... and pages only this space holds are writable again
                area.backend.protect(area.start, area.size, area.flags, self._pt)
            raise
        return child

    # ----------------------------------------------------------- listing
    def maps(self) -> str:
        """A /proc/pid/maps-style listing: `start-end perms offset 00:00 0 [backend]`."""
        lines = []
        for a in self._areas:
            b = a.backend
            perms = "".join(ch if a.flags & bit else "-" for ch, bit in
                            (("r", MappingFlags.READ), ("w", MappingFlags.WRITE), ("x", MappingFlags.EXECUTE)))
            perms += "s" if isinstance(b, Shared) else "p"
            offset = a.start - b.start if isinstance(b, Cow) and b.file else 0   # file offset of the area
            lines.append(f"{a.start:08x}-{a.end:08x} {perms} {offset:08x} 00:00 0 "
                         f"[{type(a.backend).__name__.lower()}]")
        return "\n".join(lines)

