"""Physical memory modelled as numpy arrays.

`PhysMem` holds one or more RAM regions, each a little-endian `uint8` array (or a read-only `numpy.memmap`
of a dump) at a physical base. Page-table entries are read and written as little-endian u64 by physical
address, one at a time or many at once (`read_u64_np`), which is what makes bulk walks fast. Any access
that is not wholly inside one region raises `PhysMemError` naming the address: there is no wrap-around and
no silent zero page. Hardware walkers need the softer question "is this RAM?" (an access fault, not an
exception), which `contains` / `contains_np` answer.

Bad arguments change nothing: a negative size or count, a range reaching past 2**64, a float or string
address, a value that is not a u64, or data that is not bytes-like is `InvalidArgument` (`args`), and a
region list that overlaps, is misaligned or ends beyond 2**64 is `PhysMemError`.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from . import args
from .errors import InvalidArgument, InvalidArgumentType, PhysMemError

U64 = npt.NDArray[np.uint64]
Bool = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Region:
    """One RAM region: `data` holds the bytes of [base, base + size)."""

    base: int
    data: npt.NDArray[np.uint8]

    @functools.cached_property
    def size(self) -> int:
        return int(self.data.shape[0])

    @functools.cached_property
    def end(self) -> int:
        return self.base + self.size

    @functools.cached_property
    def words(self) -> U64:
        """The region as little-endian u64 words (a view, so writes go through)."""
        return self.data.view("<u8")

    @functools.cached_property
    def words32(self) -> npt.NDArray[np.uint32]:
        """The region as little-endian u32 words (a view, so writes go through)."""
        return self.data.view("<u4")

    def words_of(self, size: int) -> npt.NDArray[Any]:
        """The region as little-endian words of `size` bytes: `words` (8) or `words32` (4)."""
        return self.words if size == 8 else self.words32


@dataclass(frozen=True)
class EntryMemory:
    """Access to a PhysMem by page-table entries of one width (`size`: 8 or 4 bytes, `PagingFormat.entry_size`),
    so that table code reads and writes entries the same way whatever their width. Values are Python ints
    and u64 columns either way (a 4-byte entry read is zero-extended; a write must fit). For 8-byte entries
    the methods are PhysMem's own u64 ones; for 4-byte entries, their 32-bit twins over the same checks."""

    size: int
    read: Callable[[int], int]                       # an aligned entry (checked)
    write: Callable[[int, int], None]
    fetch: Callable[[int], int | None]               # one lane's entry fetch: None outside RAM (unchecked)
    store: Callable[[int, int], None]                # one lane's entry store (unchecked address)
    words: Callable[[int, int], npt.NDArray[Any]]    # a writable view of `count` entries (a whole table)
    read_np: Callable[[U64], U64]
    gather_np: Callable[[U64], tuple[Bool, U64]]     # which are RAM, and the entries at those (unchecked)
    write_np: Callable[[U64, U64], None]


class PhysMem:
    """Physical memory: RAM regions at physical bases, byte and u64 access by physical address.

    `PhysMem([(0x8000_0000, 8 << 20)])` makes 8 MiB of zeroed RAM at 0x8000_0000; a region may also be given
    as an existing `uint8` array (kept, not copied). Bases and sizes must be 8-byte multiples so that every
    aligned u64 lies inside one region; regions must not overlap.
    """

    def __init__(self, regions: Iterable[tuple[int, int | npt.NDArray[np.uint8]]]) -> None:
        built: list[Region] = []
        try:
            items = list(regions)
        except TypeError:
            raise InvalidArgumentType("physical memory takes an iterable of (base, size or uint8 array) pairs") \
                from None
        for item in items:
            if not isinstance(item, tuple | list) or len(item) != 2:
                raise InvalidArgumentType(f"a region must be a (base, size or uint8 array) pair, not {item!r:.60}")
            base, spec = item
            base = args.address(base, "region base", error=PhysMemError)
            if isinstance(spec, np.ndarray):
                if spec.dtype != np.uint8 or spec.ndim != 1 or not spec.flags.c_contiguous:
                    raise PhysMemError("a region's array must be one-dimensional, contiguous uint8")
                if not spec.flags.writeable:
                    raise PhysMemError("a region's array must be writable (PhysMem.load maps an image "
                                       "copy-on-write, so a read-only file is fine there)")
                data = spec
            else:
                asked = args.size(spec, "region size", error=PhysMemError)
                _check_region(base, asked)                # before anything is allocated
                data = _zeros(base, asked)
            _check_region(base, int(data.shape[0]))
            built.append(Region(base, data))
        built.sort(key=lambda r: r.base)
        for a, b in itertools.pairwise(built):
            if b.base < a.end:
                raise PhysMemError(f"regions overlap: [{a.base:#x}, {a.end:#x}) and [{b.base:#x}, {b.end:#x})")
        if not built:
            raise PhysMemError("physical memory needs at least one region")
        self.regions: tuple[Region, ...] = tuple(built)
        # per region: its base, the address of its last word, and its words (one lane's fetches)
        self._spans = tuple((r.base, r.end - 8, r.words) for r in built)
        self._bases = np.array([r.base for r in built], dtype=np.uint64)
        self._sizes = np.array([r.size for r in built], dtype=np.uint64)

    # ----------------------------------------------------------------- lookup
    def _locate(self, pa: int, size: int) -> tuple[Region, int, int]:
        """The region holding [pa, pa + size), the offset of `pa` in it, and `size` (both checked)."""
        pa, size = args.span(pa, size, "physical range")
        for r in self.regions:
            if r.base <= pa and pa + size <= r.end:
                return r, pa - r.base, size
        raise PhysMemError(f"physical range [{pa:#x}, {pa + size:#x}) is not inside RAM "
                           f"({self.describe()})")

    def describe(self) -> str:
        """The region list as text, e.g. "[0x80000000, 0x80800000)"."""
        return ", ".join(f"[{r.base:#x}, {r.end:#x})" for r in self.regions)

    def contains(self, pa: int, size: int = 1) -> bool:
        """True if [pa, pa + size) lies inside one region (`pa` a 64-bit address, `size` ≥ 0)."""
        pa, size = args.address(pa, "pa"), args.size(size, "size")
        return any(r.base <= pa and pa + size <= r.end for r in self.regions)

    def holds(self, pa: int, size: int) -> bool:
        """`contains` for the walker's own addresses (ints below 2**64, so unchecked): one lane's test."""
        for base, last, _ in self._spans:  # noqa: SIM110 (a loop: any() costs a generator per lane)
            if base <= pa and pa + size <= last + 8:
                return True
        return False

    def fetch_u64(self, pa: int) -> int | None:
        """The u64 at the walker's own 8-aligned `pa` (unchecked), or None if it is not RAM: one lane's
        entry fetch."""
        for base, last, words in self._spans:
            if base <= pa <= last:
                out: int = words.item((pa - base) >> 3)
                return out
        return None

    def store_u64(self, pa: int, value: int) -> None:
        """`write_u64` for a table's own 8-aligned entry address and a u64 value (unchecked: one lane)."""
        for base, last, words in self._spans:
            if base <= pa <= last:
                words[(pa - base) >> 3] = value
                return
        self.write_u64(pa, value)                        # raises, naming the address

    def contains_np(self, pas: U64, size: int = 8) -> Bool:
        """Vectorised `contains` for many physical addresses of `size` bytes each."""
        pas = args.u64_array(pas, "physical addresses")
        size = args.size(size, "size")
        if pas.size:                # all in one region (two reductions, no temporary column)
            lo, hi = int(pas.min()), int(pas.max())
            if any(r.base <= lo and hi <= r.end - size for r in self.regions):
                return np.ones(pas.shape, dtype=bool)
        out = np.zeros(pas.shape, dtype=bool)
        for r in self.regions:
            if size <= r.size:      # below the base, pa - base wraps round to more than any region's size
                out |= pas - np.uint64(r.base) <= np.uint64(r.size - size)
        return out

    def touches_np(self, pas: U64, size: int) -> Bool:
        """For each [pa, pa + size): whether any byte of it is RAM."""
        pas = args.u64_array(pas, "physical addresses")
        size = args.size(size, "size")
        out = np.zeros(pas.shape, dtype=bool)
        for r in self.regions:
            start_before_end = pas < np.uint64(r.end) if r.end < args.ADDR_LIMIT else np.ones(pas.shape, dtype=bool)
            end_after_base = (pas >= np.uint64(max(r.base - size + 1, 0))) if size else np.zeros(pas.shape, dtype=bool)
            out |= start_before_end & end_after_base
        return out

    # -------------------------------------------------------------- scalar IO
    def read(self, pa: int, size: int) -> bytes:
        r, off, size = self._locate(pa, size)
        return r.data[off:off + size].tobytes()

    def write(self, pa: int, data: bytes | bytearray | memoryview | npt.NDArray[np.uint8]) -> None:
        """Store `data` (bytes-like, or a one-dimensional uint8 array) at `pa`."""
        buf = _bytes_of(data)
        r, off, _ = self._locate(pa, len(buf))
        r.data[off:off + len(buf)] = buf

    def view(self, pa: int, size: int) -> npt.NDArray[np.uint8]:
        """A writable numpy view of [pa, pa + size)."""
        r, off, size = self._locate(pa, size)
        return r.data[off:off + size]

    def words(self, pa: int, count: int) -> U64:
        """A writable u64 view of `count` words at the 8-aligned `pa` (e.g. a whole page table)."""
        count = args.integer(count, "word count", 0, args.ADDR_LIMIT >> 3)
        r, off, _ = self._locate(pa, count * 8)
        if pa % 8:
            raise PhysMemError(f"u64 view at {pa:#x} is not 8-byte aligned")
        return r.words[off // 8: off // 8 + count]

    def fill(self, pa: int, size: int, byte: int = 0) -> None:
        """Set every byte of [pa, pa + size) to `byte` (0-255)."""
        value = args.integer(byte, "fill byte", 0, 256)
        self.view(pa, size)[:] = value

    def read_u64(self, pa: int) -> int:
        pa = args.address(pa, "pa")
        if pa % 8 == 0:
            r, off, _ = self._locate(pa, 8)
            return int(r.words[off // 8])
        return int.from_bytes(self.read(pa, 8), "little")

    def write_u64(self, pa: int, value: int) -> None:
        pa = args.address(pa, "pa")
        value = args.address(value, "u64 value")
        if pa % 8 == 0:
            r, off, _ = self._locate(pa, 8)
            r.words[off // 8] = value
        else:
            self.write(pa, value.to_bytes(8, "little"))

    # ---------------------------------------------------------- vectorised IO
    def _word_index(self, pas: U64, size: int = 8) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        """Region number and index of the `size`-byte word (8, or 4) within it for each `size`-aligned PA;
        raises if any is outside RAM."""
        pas = args.u64_array(pas, "physical addresses")
        shift, kind = np.uint64(size.bit_length() - 1), "u64" if size == 8 else f"{8 * size}-bit"
        if len(self.regions) == 1 and pas.size:      # one region: an unsigned offset (wrapping below the
            r = self.regions[0]                       # base) checked by its largest value, in two passes
            offset = pas - np.uint64(r.base)
            if int(offset.max()) <= r.size - size and not int(np.bitwise_or.reduce(offset)) & (size - 1):
                offset >>= shift                             # in place: the offsets are this call's own
                return np.zeros(pas.shape, dtype=np.intp), offset.view(np.intp)
        if pas.size and np.any(pas & np.uint64(size - 1)):
            bad = int(pas[(pas & np.uint64(size - 1)) != 0][0])
            raise PhysMemError(f"{kind} access at {bad:#x} is not {size}-byte aligned")
        which = np.searchsorted(self._bases, pas, side="right").astype(np.intp) - 1
        clipped = np.clip(which, 0, None)
        ok = (which >= 0) & (pas - self._bases[clipped] <= self._sizes[clipped] - np.uint64(size))
        if not np.all(ok):
            bad = int(pas[~ok][0])
            raise PhysMemError(f"{kind} access at {bad:#x} is not inside RAM ({self.describe()})")
        idx = ((pas - self._bases[which]) >> shift).astype(np.intp)
        return which, idx

    def _read_np(self, pas: U64, size: int) -> U64:
        """The `size`-byte word (8, or 4) at each `size`-aligned physical address (all inside RAM), as u64s."""
        which, idx = self._word_index(pas, size)
        if len(self.regions) == 1:
            return self.regions[0].words_of(size)[idx].astype(np.uint64, copy=False)
        out = np.empty(idx.shape, dtype=np.uint64)
        for n, r in enumerate(self.regions):
            sel = which == n
            out[sel] = r.words_of(size)[idx[sel]]
        return out

    def _write_np(self, pas: U64, values: U64, size: int) -> None:
        """Write each value (below 2**(8 * size)) to its `size`-aligned physical address (all inside RAM)."""
        which, idx = self._word_index(pas, size)
        given = args.u64_array(values, "u64 values" if size == 8 else "u32 values")
        if size == 4 and given.size and int(given.max()) >> 32:
            raise InvalidArgument(f"value {int(given.max()):#x} does not fit a 32-bit entry")
        try:
            values = np.broadcast_to(given, idx.shape)
        except ValueError:
            raise InvalidArgument(f"{given.shape[0] if given.ndim else 1} values for {idx.size} addresses") \
                from None
        if len(self.regions) == 1:
            self.regions[0].words_of(size)[idx] = values
            return
        for n, r in enumerate(self.regions):
            sel = which == n
            r.words_of(size)[idx[sel]] = values[sel]

    def read_u64_np(self, pas: U64) -> U64:
        """Read the u64 at each 8-aligned physical address (all must be inside RAM)."""
        return self._read_np(pas, 8)

    def gather_u64_np(self, pas: U64) -> tuple[Bool, U64]:
        """For a walker's own 8-aligned physical addresses (unchecked): which are RAM, and the u64 at each
        of those (a fetch that may miss, in one pass for the usual single region)."""
        if len(self._spans) == 1:
            base, last, words = self._spans[0]
            offset = pas - np.uint64(base)                     # wraps above 2**63 below the base: outside
            inram: Bool = offset <= np.uint64(last - base)
            if inram.all():
                return inram, words[(offset >> np.uint64(3)).astype(np.intp)]
            return inram, words[(offset[inram] >> np.uint64(3)).astype(np.intp)]
        inram = self.contains_np(pas, 8)
        return inram, self.read_u64_np(pas[inram])

    def write_u64_np(self, pas: U64, values: U64) -> None:
        """Write each value to its 8-aligned physical address (all must be inside RAM)."""
        self._write_np(pas, values, 8)

    # ------------------------------------------------------- entries by width
    def entries(self, size: int) -> EntryMemory:
        """Access by page-table entries of `size` bytes (8 or 4: `PagingFormat.entry_size`)."""
        if size == 8:
            return EntryMemory(8, self.read_u64, self.write_u64, self.fetch_u64, self.store_u64, self.words,
                               self.read_u64_np, self.gather_u64_np, self.write_u64_np)
        if size == 4:
            return EntryMemory(4, self.read_u32, self.write_u32, self.fetch_u32, self.write_u32, self.words32,
                               self.read_u32_np, self.gather_u32_np, self.write_u32_np)
        raise InvalidArgument(f"page-table entries are 4 or 8 bytes, not {size!r}")

    def read_u32(self, pa: int) -> int:
        """The little-endian u32 at the 4-aligned `pa`."""
        r, off, _ = self._locate(self._aligned(pa, 4), 4)
        return int(r.words32[off // 4])

    def write_u32(self, pa: int, value: int) -> None:
        """Store a 32-bit `value` at the 4-aligned `pa`."""
        value = args.integer(value, "u32 value", 0, 1 << 32)
        r, off, _ = self._locate(self._aligned(pa, 4), 4)
        r.words32[off // 4] = value

    def fetch_u32(self, pa: int) -> int | None:
        """The u32 at the 4-aligned `pa`, or None if it is not RAM: one lane's fetch of a 4-byte entry."""
        for r in self.regions:
            if r.base <= pa <= r.end - 4:
                out: int = r.words32.item((pa - r.base) >> 2)
                return out
        return None

    def words32(self, pa: int, count: int) -> npt.NDArray[np.uint32]:
        """A writable u32 view of `count` words at the 4-aligned `pa` (a table of 4-byte entries)."""
        count = args.integer(count, "word count", 0, args.ADDR_LIMIT >> 2)
        r, off, _ = self._locate(self._aligned(pa, 4), count * 4)
        return r.words32[off // 4: off // 4 + count]

    def _aligned(self, pa: int, size: int) -> int:
        pa = args.address(pa, "pa")
        if pa % size:
            raise PhysMemError(f"{8 * size}-bit access at {pa:#x} is not {size}-byte aligned")
        return pa

    def read_u32_np(self, pas: U64) -> U64:
        """The u32 at each 4-aligned physical address (all inside RAM), as a u64 column."""
        return self._read_np(pas, 4)

    def gather_u32_np(self, pas: U64) -> tuple[Bool, U64]:
        """`gather_u64_np` for 4-byte entries: which addresses are RAM, and the u32 at each of those."""
        inram = self.contains_np(pas, 4)
        return inram, self.read_u32_np(pas[inram])

    def write_u32_np(self, pas: U64, values: U64) -> None:
        """Write each value (all below 2**32) to its 4-aligned physical address (all inside RAM)."""
        self._write_np(pas, values, 4)

    # ------------------------------------------------------------- raw images
    def file_names(self, stem: str = "mem") -> list[str]:
        """The file `save` writes each region to: `<stem>.bin`, or `<stem>-N.bin` for several."""
        return [f"{stem}.bin"] if len(self.regions) == 1 else [f"{stem}-{n}.bin" for n in range(len(self.regions))]

    def save(self, directory: str | os.PathLike[str], stem: str = "mem") -> list[tuple[str, int]]:
        """Write each region to `directory/<stem>.bin` (or `<stem>-N.bin` for several); returns (file, base)."""
        out: list[tuple[str, int]] = []
        for name, r in zip(self.file_names(stem), self.regions, strict=True):
            path = os.path.join(directory, name)
            try:
                r.data.tofile(path)
            except OSError as exc:
                raise PhysMemError(f"cannot write memory image {path!r}: {exc.strerror}") from None
            out.append((name, r.base))
        return out

    @classmethod
    def load(cls, images: Sequence[tuple[str | os.PathLike[str], int]], *, writable: bool = False) -> PhysMem:
        """Map raw image files at their physical bases (memory-mapped, so multi-GiB dumps are cheap).

        With `writable=False` the files are mapped copy-on-write: changes stay in this process.
        """
        regions: list[tuple[int, int | npt.NDArray[np.uint8]]] = []
        for item in images:
            if not isinstance(item, tuple | list) or len(item) != 2 or not isinstance(item[0], str | os.PathLike):
                raise InvalidArgumentType(f"an image is a (path, base) pair, not {args.describe(item)}")
            path, base = item
            name = os.fspath(path)
            base = args.address(base, f"base of memory image {name!r}")
            try:
                if not os.path.isfile(name):
                    what = "a directory" if os.path.isdir(name) else "not a regular file" \
                        if os.path.exists(name) else "missing"
                    raise PhysMemError(f"memory image {name!r} is {what}")
                size = os.path.getsize(name)
                if size == 0 or size % 8:
                    raise PhysMemError(f"memory image {name!r} has {size} bytes; it must be a non-empty "
                                       "multiple of 8")
                data = np.memmap(name, dtype=np.uint8, mode="r+" if writable else "c")
            except OSError as exc:
                raise PhysMemError(f"cannot read memory image {name!r}: {exc.strerror}") from None
            regions.append((base, data))
        return cls(regions)


def _check_region(base: int, size: int) -> None:
    if base % 8 or size % 8 or size == 0:
        raise PhysMemError(f"region at {base:#x} of {size:#x} bytes: base and size must be non-zero multiples of 8")
    if base + size > args.ADDR_LIMIT:
        raise PhysMemError(f"region at {base:#x} of {size:#x} bytes ends beyond 2**64")


def _zeros(base: int, size: int) -> npt.NDArray[np.uint8]:
    """`size` zeroed bytes of RAM for the region at `base`; PhysMemError if the machine cannot hold them
    (more than its physical memory is refused before numpy is asked: `PhysMem.load` maps a large image)."""
    machine = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if size > machine:
        raise PhysMemError(f"a region of {size:#x} bytes at {base:#x} is more than this machine's "
                           f"{machine >> 30} GiB of memory (PhysMem.load maps a large image from a file instead)")
    try:
        return np.zeros(size, dtype=np.uint8)
    except (MemoryError, ValueError):
        raise PhysMemError(f"cannot allocate {size:#x} bytes of RAM for the region at {base:#x}") from None


def _bytes_of(data: object) -> npt.NDArray[np.uint8]:
    """`data` as a uint8 array (bytes-like objects are viewed, not copied)."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8 or data.ndim != 1:
            raise InvalidArgumentType(f"data must be a one-dimensional uint8 array, not {data.dtype} with "
                                      f"shape {data.shape}")
        return data
    try:
        return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)  # type: ignore[arg-type]
    except TypeError:
        raise InvalidArgumentType(f"data must be bytes-like or a uint8 array, not {type(data).__name__}") \
            from None
