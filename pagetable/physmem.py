"""Physical memory modelled as numpy arrays.

`PhysMem` holds one or more RAM regions, each a little-endian `uint8` array (or a read-only `numpy.memmap`
of a dump) at a physical base. Page-table entries are read and written as little-endian u64 by physical
address, one at a time or many at once (`read_u64_np`), which is what makes bulk walks fast. Any access
that is not wholly inside one region raises `PhysMemError` naming the address: there is no wrap-around and
no silent zero page. Hardware walkers need the softer question "is this RAM?" (an access fault, not an
exception), which `contains` / `contains_np` answer.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .errors import PhysMemError

U64 = npt.NDArray[np.uint64]
Bool = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Region:
    """One RAM region: `data` holds the bytes of [base, base + size)."""

    base: int
    data: npt.NDArray[np.uint8]

    @property
    def size(self) -> int:
        return int(self.data.shape[0])

    @property
    def end(self) -> int:
        return self.base + self.size

    @property
    def words(self) -> U64:
        """The region as little-endian u64 words (a view, so writes go through)."""
        return self.data.view("<u8")


class PhysMem:
    """Physical memory: RAM regions at physical bases, byte and u64 access by physical address.

    `PhysMem([(0x8000_0000, 8 << 20)])` makes 8 MiB of zeroed RAM at 0x8000_0000; a region may also be given
    as an existing `uint8` array (kept, not copied). Bases and sizes must be 8-byte multiples so that every
    aligned u64 lies inside one region; regions must not overlap.
    """

    def __init__(self, regions: Iterable[tuple[int, int | npt.NDArray[np.uint8]]]) -> None:
        built: list[Region] = []
        for base, spec in regions:
            data = np.zeros(spec, dtype=np.uint8) if isinstance(spec, int) else spec
            if data.dtype != np.uint8 or data.ndim != 1:
                raise PhysMemError("a region's array must be one-dimensional uint8")
            if base < 0 or base % 8 or data.shape[0] % 8 or data.shape[0] == 0:
                raise PhysMemError(f"region at {base:#x} of {data.shape[0]:#x} bytes: base and size must be "
                                   "non-zero multiples of 8")
            built.append(Region(base, data))
        built.sort(key=lambda r: r.base)
        for a, b in itertools.pairwise(built):
            if b.base < a.end:
                raise PhysMemError(f"regions overlap: [{a.base:#x}, {a.end:#x}) and [{b.base:#x}, {b.end:#x})")
        if not built:
            raise PhysMemError("physical memory needs at least one region")
        self.regions: tuple[Region, ...] = tuple(built)
        self._bases = np.array([r.base for r in built], dtype=np.uint64)
        self._sizes = np.array([r.size for r in built], dtype=np.uint64)

    # ----------------------------------------------------------------- lookup
    def _locate(self, pa: int, size: int) -> tuple[Region, int]:
        for r in self.regions:
            if r.base <= pa and pa + size <= r.end:
                return r, pa - r.base
        raise PhysMemError(f"physical range [{pa:#x}, {pa + size:#x}) is not inside RAM "
                           f"({self.describe()})")

    def describe(self) -> str:
        """The region list as text, e.g. "[0x80000000, 0x80800000)"."""
        return ", ".join(f"[{r.base:#x}, {r.end:#x})" for r in self.regions)

    def contains(self, pa: int, size: int = 1) -> bool:
        """True if [pa, pa + size) lies inside one region."""
        return any(r.base <= pa and pa + size <= r.end for r in self.regions)

    def contains_np(self, pas: U64, size: int = 8) -> Bool:
        """Vectorised `contains` for many physical addresses of `size` bytes each."""
        pas = np.asarray(pas, dtype=np.uint64)
        out = np.zeros(pas.shape, dtype=bool)
        for r in self.regions:
            if size <= r.size:      # offsets are computed only where pa >= base, so nothing wraps
                out |= (pas >= np.uint64(r.base)) & (pas - np.uint64(r.base) <= np.uint64(r.size - size))
        return out

    # -------------------------------------------------------------- scalar IO
    def read(self, pa: int, size: int) -> bytes:
        r, off = self._locate(pa, size)
        return r.data[off:off + size].tobytes()

    def write(self, pa: int, data: bytes | npt.NDArray[np.uint8]) -> None:
        buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes | bytearray) else data
        r, off = self._locate(pa, len(buf))
        r.data[off:off + len(buf)] = buf

    def view(self, pa: int, size: int) -> npt.NDArray[np.uint8]:
        """A writable numpy view of [pa, pa + size)."""
        r, off = self._locate(pa, size)
        return r.data[off:off + size]

    def words(self, pa: int, count: int) -> U64:
        """A writable u64 view of `count` words at the 8-aligned `pa` (e.g. a whole page table)."""
        if pa % 8:
            raise PhysMemError(f"u64 view at {pa:#x} is not 8-byte aligned")
        r, off = self._locate(pa, count * 8)
        return r.words[off // 8: off // 8 + count]

    def fill(self, pa: int, size: int, byte: int = 0) -> None:
        self.view(pa, size)[:] = byte

    def read_u64(self, pa: int) -> int:
        if pa % 8 == 0:
            r, off = self._locate(pa, 8)
            return int(r.words[off // 8])
        return int.from_bytes(self.read(pa, 8), "little")

    def write_u64(self, pa: int, value: int) -> None:
        if not 0 <= value < 1 << 64:
            raise PhysMemError(f"value {value:#x} does not fit in 64 bits")
        if pa % 8 == 0:
            r, off = self._locate(pa, 8)
            r.words[off // 8] = value
        else:
            self.write(pa, value.to_bytes(8, "little"))

    # ---------------------------------------------------------- vectorised IO
    def _word_index(self, pas: U64) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        """Region number and word index within it for each 8-aligned PA; raises if any is outside RAM."""
        pas = np.asarray(pas, dtype=np.uint64)
        if pas.size and np.any(pas & np.uint64(7)):
            bad = int(pas[(pas & np.uint64(7)) != 0][0])
            raise PhysMemError(f"u64 access at {bad:#x} is not 8-byte aligned")
        which = np.searchsorted(self._bases, pas, side="right").astype(np.intp) - 1
        clipped = np.clip(which, 0, None)
        ok = (which >= 0) & (pas - self._bases[clipped] <= self._sizes[clipped] - np.uint64(8))
        if not np.all(ok):
            bad = int(pas[~ok][0])
            raise PhysMemError(f"u64 access at {bad:#x} is not inside RAM ({self.describe()})")
        idx = ((pas - self._bases[which]) >> np.uint64(3)).astype(np.intp)
        return which, idx

    def read_u64_np(self, pas: U64) -> U64:
        """Read the u64 at each 8-aligned physical address (all must be inside RAM)."""
        which, idx = self._word_index(pas)
        if len(self.regions) == 1:
            return self.regions[0].words[idx]
        out = np.empty(idx.shape, dtype=np.uint64)
        for n, r in enumerate(self.regions):
            sel = which == n
            out[sel] = r.words[idx[sel]]
        return out

    def write_u64_np(self, pas: U64, values: U64) -> None:
        """Write each value to its 8-aligned physical address (all must be inside RAM)."""
        which, idx = self._word_index(pas)
        values = np.broadcast_to(np.asarray(values, dtype=np.uint64), idx.shape)
        for n, r in enumerate(self.regions):
            sel = which == n
            r.words[idx[sel]] = values[sel]

    # ------------------------------------------------------------- raw images
    def save(self, directory: str | os.PathLike[str], stem: str = "mem") -> list[tuple[str, int]]:
        """Write each region to `directory/<stem>.bin` (or `<stem>-N.bin` for several); returns (file, base)."""
        out: list[tuple[str, int]] = []
        for n, r in enumerate(self.regions):
            name = f"{stem}.bin" if len(self.regions) == 1 else f"{stem}-{n}.bin"
            r.data.tofile(os.path.join(directory, name))
            out.append((name, r.base))
        return out

    @classmethod
    def load(cls, images: Sequence[tuple[str | os.PathLike[str], int]], *, writable: bool = False) -> PhysMem:
        """Map raw image files at their physical bases (memory-mapped, so multi-GiB dumps are cheap).

        With `writable=False` the files are mapped copy-on-write: changes stay in this process.
        """
        regions: list[tuple[int, int | npt.NDArray[np.uint8]]] = []
        for path, base in images:
            try:
                size = os.path.getsize(path)
            except OSError as exc:
                raise PhysMemError(f"cannot read memory image {os.fspath(path)!r}: {exc.strerror}") from None
            if size == 0 or size % 8:
                raise PhysMemError(f"memory image {os.fspath(path)!r} has {size} bytes; "
                                   "it must be a non-empty multiple of 8")
            data = np.memmap(path, dtype=np.uint8, mode="r+" if writable else "c")
            regions.append((base, data))
        return cls(regions)
