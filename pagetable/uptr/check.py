"""Checking and copying user memory through an `AddrSpace`, as a kernel does (axptr's `check_region` and
`check_null_terminated`, with its bugs fixed: docs/design.md, "Where the Rust crates differ", item 14), in
pages of the space's format.

- `check_region`: misaligned → EFAULT; not covered by areas granting `access` → EFAULT; then the covering
  pages are populated (lazy allocation, copy-on-write broken for WRITE), errors mapped to their errno.
  A zero-length region is accepted without touching memory, as Linux's `access_ok` does (axptr: EFAULT).
- `check_null_terminated`: scans page by page (`fmt.page_size`; an element is at most a page), checking each
  new page before reading it and faulting lazy pages in through `handle_page_fault`; stops at the first zero
  element; a page without access → EFAULT; more than `limit` elements → `too_long` (ENAMETOOLONG for paths,
  E2BIG for argv), so a hostile buffer cannot make it run forever.
- `copy_from_user` / `copy_to_user`: page by page through the page table, as the MMU checks a user access:
  every page needs an entry with USER and the access's permission; a missing or insufficient entry is a
  page fault that `user_fault` resolves (inside `accessing_user_memory`) or reports, so a kernel-only page
  is EFAULT, never read or written.

Bad arguments (an address or size that is not an integer or leaves the 64-bit space, an element size that is
not a power of two) are `BadPointer` (EFAULT) or `BadArgument` (EINVAL), raised before any memory is touched.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable, Iterator
from typing import Protocol, TypeVar

import numpy as np

from .. import args
from ..errors import NotMapped
from ..flags import MappingFlags
from ..mm.aspace import AddrSpace
from ..mm.errors import MmError
from .access import accessing_user_memory, user_fault
from .errors import BadArgument, BadPointer, UserMemoryError

PATH_MAX = 4096                 # Linux's, counting the NUL (not a page size)
R = TypeVar("R")


class AddrSpaceProvider(Protocol):
    """Something that lends its address space for the duration of a call (axptr's trait)."""

    def with_addr_space(self, fn: Callable[[AddrSpace], R]) -> R: ...


class LockedAddrSpace:
    """An `AddrSpace` behind a lock, lent to one user-memory operation at a time."""

    def __init__(self, aspace: AddrSpace) -> None:
        self._aspace = aspace
        self._lock = threading.RLock()

    def with_addr_space(self, fn: Callable[[AddrSpace], R]) -> R:
        with self._lock:
            return fn(self._aspace)


def _efault(message: str) -> UserMemoryError:
    return UserMemoryError(errno.EFAULT, message)


def _space(aspace: object) -> AddrSpace:
    if not isinstance(aspace, AddrSpace):
        raise BadArgument(f"user memory is reached through an AddrSpace, not {type(aspace).__name__}")
    return aspace


def _range(start: object, size: object) -> tuple[int, int]:
    return args.span(start, size, "user range", error=BadPointer)


def check_region(aspace: AddrSpace, start: int, size: int, align: int, access: MappingFlags) -> None:
    """Make [start, start + size) ready for `access`, or raise the errno a syscall would return."""
    aspace = _space(aspace)
    start, size = _range(start, size)
    align = args.integer(align, "alignment", 1, args.ADDR_LIMIT, error=BadArgument)
    access = args.flags(access, "access", error=BadArgument)
    if size == 0:
        return
    if start % align:
        raise _efault(f"user pointer {start:#x} is not aligned to {align}")
    _access_ok(aspace, start, size, access)
    try:
        aspace.populate_area(start, size, access)
    except MmError as exc:
        raise UserMemoryError.from_mm(exc) from exc


def _page_pa(aspace: AddrSpace, va: int, access: MappingFlags) -> int:
    """The PA of `va` as the MMU would give it for a user `access` (the entry needs USER and the access's
    permission), taking (and resolving) a page fault if needed."""
    access |= MappingFlags.USER
    need = access & (MappingFlags.READ | MappingFlags.WRITE | MappingFlags.USER)
    for _ in range(2):
        try:
            pa, flags, _ = aspace.page_table.query(va)
            if not need & ~flags:
                return pa
        except NotMapped:
            pass
        user_fault(aspace, va, access)
    raise _efault(f"{va:#x} is still not accessible after its page fault was handled")


def _chunks(start: int, size: int, page: int) -> Iterator[tuple[int, int]]:
    """(va, length) of each `page`-byte page's part of [start, start + size), lazily (a huge range faults at
    its first bad page, not after listing billions of pages)."""
    pos, end = start, start + size
    while pos < end:
        n = min(end, (pos | (page - 1)) + 1) - pos
        yield pos, n
        pos += n


def _user_range(aspace: AddrSpace, start: object, size: object, access: object) -> tuple[int, int, MappingFlags]:
    """Check a user copy's arguments and that areas granting the access (and USER) cover the range, as a
    kernel's access_ok does, before any page is touched."""
    start, size = _range(start, size)
    flags = args.flags(access, "access", error=BadArgument) | MappingFlags.USER
    if size:
        _access_ok(aspace, start, size, flags)
    return start, size, flags


def _access_ok(aspace: AddrSpace, start: int, size: int, access: MappingFlags) -> None:
    """EFAULT unless areas granting `access` cover [start, start + size)."""
    if not aspace.check_region_access(start, size, access):
        raise _efault(f"[{start:#x}, +{size:#x}) is not {MappingFlags(access).short()} user memory")


def copy_from_user(aspace: AddrSpace, start: int, size: int, access: MappingFlags = MappingFlags.READ) -> bytes:
    """Read user memory page by page through the table, resolving page faults; each page must be mapped
    for a user access (USER and READ): a kernel-only page is EFAULT."""
    aspace = _space(aspace)
    start, size, access = _user_range(aspace, start, size, access)
    with accessing_user_memory():
        return b"".join(aspace.page_table.mem.read(_page_pa(aspace, va, access), n)
                        for va, n in _chunks(start, size, aspace.fmt.page_size))


def copy_to_user(aspace: AddrSpace, start: int, data: bytes, access: MappingFlags = MappingFlags.WRITE) -> None:
    """Write user memory through the table, resolving page faults (copy-on-write included); each page must
    be mapped for a user store (USER and WRITE): a kernel-only page is EFAULT, untouched. Every page is
    checked before the first byte is written, so a failed copy writes nothing."""
    aspace = _space(aspace)
    data = args.data(data, error=BadArgument)
    store = args.flags(access, "access", error=BadArgument) | MappingFlags.WRITE
    start, _, access = _user_range(aspace, start, len(data), store)
    with accessing_user_memory():
        pages = [(_page_pa(aspace, va, access), n) for va, n in _chunks(start, len(data), aspace.fmt.page_size)]
    off = 0
    for pa, n in pages:
        aspace.page_table.mem.write(pa, data[off:off + n])
        off += n


def check_null_terminated(aspace: AddrSpace, start: int, elem_size: int, access: MappingFlags,
                          limit: int = PATH_MAX, too_long: int = errno.ENAMETOOLONG) -> int:
    """The number of `elem_size`-byte elements before the first all-zero one at `start` (which must be
    aligned to `elem_size`); EFAULT on a page without access. `limit` counts the terminator, as Linux's
    PATH_MAX does: a terminator not within the first `limit` elements (a 4,096-character path, or longer) is
    `too_long`."""
    aspace = _space(aspace)
    page = aspace.fmt.page_size
    start = args.address(start, "user pointer", error=BadPointer)
    elem_size = args.integer(elem_size, "element size", 1, page + 1, error=BadArgument)
    limit = args.integer(limit, "limit", 1, error=BadArgument)
    access = args.flags(access, "access", error=BadArgument)
    if elem_size & (elem_size - 1):
        raise BadArgument(f"element size {elem_size} is not a power of two")
    if start % elem_size:
        raise _efault(f"user pointer {start:#x} is not aligned to {elem_size}")
    count, pos = 0, start
    with accessing_user_memory():
        while True:
            if pos >= 1 << 64 or not aspace.check_region_access(pos & ~(page - 1), page, access):
                raise _efault(f"scan ran into {pos:#x}, which is not {MappingFlags(access).short()} user memory")
            n = ((pos | (page - 1)) + 1) - pos
            chunk = np.frombuffer(aspace.page_table.mem.read(_page_pa(aspace, pos, access), n), dtype=np.uint8)
            zero = np.flatnonzero(~chunk.reshape(-1, elem_size).any(axis=1))
            found = int(zero[0]) if zero.size else n // elem_size
            if count + found >= limit:            # the terminator would be element `limit` + 1 or later
                raise UserMemoryError(too_long, f"no terminator within {limit} elements at {start:#x}")
            if zero.size:
                return count + found
            count += found
            pos += n
