"""mm errors: each names the errno a kernel would return, so callers can hand it back like a syscall.

memory_set's `MappingError` values become `AlreadyExists` (EEXIST), `InvalidParam` (EINVAL) and `BadState`
(EFAULT); AddrSpace adds `OutOfRange` (ENOMEM, as Linux returns for addresses outside the space),
`BadAddress` (EFAULT) and `OutOfMemory` (ENOMEM). All are `OSError`s with `.errno` set.
"""

from __future__ import annotations

import errno
import os

from ..errors import PagetableError


class MmError(PagetableError, OSError):
    """An mm failure carrying the errno a kernel would return."""

    code = errno.EINVAL

    def __init__(self, message: str) -> None:
        OSError.__init__(self, self.code, message)

    def __str__(self) -> str:
        return f"{self.strerror} ({errno.errorcode.get(self.code, self.code)}: {os.strerror(self.code)})"


class AlreadyExists(MmError):
    """The range overlaps an existing area."""

    code = errno.EEXIST


class InvalidParam(MmError):
    """An empty, overflowing or misaligned range, or an invalid argument."""

    code = errno.EINVAL


class BadState(MmError):
    """A backend could not map, unmap or protect a range."""

    code = errno.EFAULT


class OutOfRange(MmError):
    """The range is not inside the address space."""

    code = errno.ENOMEM


class BadAddress(MmError):
    """An access to an address with no area, or without the needed permission."""

    code = errno.EFAULT


class OutOfMemory(MmError):
    """No frame could be allocated."""

    code = errno.ENOMEM
