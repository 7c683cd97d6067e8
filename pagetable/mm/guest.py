"""`GuestAddrSpace`: a guest-physical address space over nested (stage-2) tables — axaddrspace's `AddrSpace`
API on top of `AddrSpace`, for any nested format (RISC-V Sv39x4/Sv48x4/Sv57x4, AArch64 stage 2 with any
granule; x86 EPT plugs in through the same `PagingFormat` interface).

Fixed relative to axaddrspace (docs/design.md, "Where the Rust crates differ", items 9 and 11): the G-stage
root is the real 16 KiB x4 root, so GPA bits never alias; leaves get U=1 (the `GSTAGE` codec); the linear
offset is signed; frames are zeroed and a repeated fault allocates nothing; `translate_and_get_limit` returns
the bytes left in the leaf mapping that holds the GPA (host-contiguous for sure), not the whole area's size;
`translated_byte_buffer` returns None on holes instead of panicking, and checks the end of the range, not its
length against the area size.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .. import args
from ..errors import NotMapped
from ..flags import MappingFlags
from .aspace import AddrSpace
from .errors import BadAddress, InvalidParam

U8 = npt.NDArray[np.uint8]


class GuestAddrSpace(AddrSpace):
    """Guest-physical memory [base, base + size) mapped by nested tables to host-physical memory."""

    def translate(self, gpa: int) -> int | None:
        """The host-physical address of `gpa`, or None outside the space or where nothing is mapped."""
        got = self._leaf(gpa)
        return None if got is None else got[0]

    def translate_and_get_limit(self, gpa: int) -> tuple[int, int] | None:
        """(HPA, bytes from `gpa` to the end of the leaf that maps it), or None."""
        got = self._leaf(gpa)
        return None if got is None else got[:2]

    def _leaf(self, gpa: int) -> tuple[int, int, MappingFlags] | None:
        """(HPA, bytes left in the leaf, its flags) for `gpa`, or None outside the space or unmapped."""
        gpa = args.integer(gpa, "guest-physical address", error=InvalidParam)
        if not self.base <= gpa < self.end:
            return None
        try:
            hpa, flags, size = self.page_table.query(gpa)
        except NotMapped:
            return None
        return hpa, size - (gpa & (size - 1)), flags

    def translated_byte_buffer(self, gpa: int, length: int) -> list[U8] | None:
        """Numpy views of host memory covering [gpa, gpa + length), one per leaf; None if any byte is
        outside the space, outside every area, or not mapped (lazy pages are not faulted in). A view is
        writable only where its leaf has WRITE, so a page shared copy-on-write with a clone (both sides lose
        WRITE) cannot be changed through it; `write_buffer` breaks the sharing first. Views are good until
        the next operation on the space: after a clone or an unmap they may reach another space's memory."""
        gpa = args.integer(gpa, "guest-physical address", error=InvalidParam)
        length = args.integer(length, "length", error=InvalidParam)
        if length < 0 or not self.contains_range(gpa, length):
            return None
        if length and not self.check_region_access(gpa, length, MappingFlags(0)):
            return None
        out: list[U8] = []
        pos, end = gpa, gpa + length
        while pos < end:
            got = self._leaf(pos)
            if got is None:
                return None
            hpa, limit, flags = got
            n = min(limit, end - pos)
            view = self.page_table.mem.view(hpa, n)
            view.flags.writeable = bool(flags & MappingFlags.WRITE)
            out.append(view)
            pos += n
        return out

    # ----------------------------------------------------- guest memory accessor
    def read_buffer(self, gpa: int, length: int) -> bytes:
        """Copy guest memory out (across leaves); a hole → BadAddress (EFAULT)."""
        views = self.translated_byte_buffer(gpa, length)
        if views is None:
            raise BadAddress(f"guest range [{gpa:#x}, +{length:#x}) is not mapped")
        return b"".join(v.tobytes() for v in views)

    def write_buffer(self, gpa: int, data: bytes) -> None:
        """Copy `data` into guest memory (across leaves), breaking copy-on-write sharing first; a hole, or an
        area without WRITE → BadAddress and nothing is written."""
        data = args.data(data, error=InvalidParam)
        views = self.translated_byte_buffer(gpa, len(data))
        if views is None:
            raise BadAddress(f"guest range [{gpa:#x}, +{len(data):#x}) is not mapped")
        if not all(v.flags.writeable for v in views):   # every page is mapped: this breaks copy-on-write
            self.populate_area(gpa, len(data), MappingFlags.WRITE)
            views = self.translated_byte_buffer(gpa, len(data))
            assert views is not None
        off = 0
        for v in views:
            v[:] = np.frombuffer(data, dtype=np.uint8, count=v.shape[0], offset=off)
            off += v.shape[0]

    def read_obj(self, gpa: int, dtype: npt.DTypeLike) -> np.generic:
        """One object of numpy `dtype` at `gpa`."""
        dt = args.dtype(dtype, error=InvalidParam)
        value: np.generic = np.frombuffer(self.read_buffer(gpa, dt.itemsize), dtype=dt)[0]
        return value

    def write_obj(self, gpa: int, value: object, dtype: npt.DTypeLike) -> None:
        """Store `value` as numpy `dtype` at `gpa` (an integer dtype takes an integer that fits)."""
        self.write_buffer(gpa, args.pack(value, args.dtype(dtype, error=InvalidParam), error=InvalidParam))
