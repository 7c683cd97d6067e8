"""uptr errors: `UserMemoryError` is an `OSError` carrying the errno a syscall would return (EFAULT, EILSEQ,
ENOMEM, ENAMETOOLONG, E2BIG), so a caller can hand it straight back; `KernelFault` is a page fault taken
outside a user-memory access — a kernel bug, never resolved silently."""

from __future__ import annotations

import errno

from ..errors import PagetableError
from ..mm.errors import MmError


class UserMemoryError(MmError):
    """A user-memory access that fails with `errno` (chosen per error, unlike the fixed-code mm errors)."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(message)

    @classmethod
    def from_mm(cls, exc: MmError) -> UserMemoryError:
        return cls(exc.errno or errno.EFAULT, str(exc.strerror))


class BadPointer(UserMemoryError):
    """A user pointer or length that is not a 64-bit address or a byte count (EFAULT, as a kernel reports a
    garbage pointer)."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EFAULT, message)


class BadArgument(UserMemoryError):
    """An element size, count or limit that the call cannot take (EINVAL)."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EINVAL, message)


class KernelFault(PagetableError):
    """A page fault on user memory while no user-memory access was in progress."""
