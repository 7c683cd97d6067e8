"""uptr errors: `UserMemoryError` is an `OSError` carrying the errno a syscall would return (EFAULT, EILSEQ,
ENOMEM, ENAMETOOLONG, E2BIG), so a caller can hand it straight back; `KernelFault` is a page fault taken
outside a user-memory access — a kernel bug, never resolved silently."""

from __future__ import annotations

import errno
import os

from ..errors import PagetableError
from ..mm.errors import MmError


class UserMemoryError(PagetableError, OSError):
    """A user-memory access that fails with `errno`."""

    def __init__(self, code: int, message: str) -> None:
        OSError.__init__(self, code, message)

    def __str__(self) -> str:
        return f"{self.strerror} ({errno.errorcode.get(self.errno or 0, self.errno)}: {os.strerror(self.errno or 0)})"

    @classmethod
    def from_mm(cls, exc: MmError) -> UserMemoryError:
        return cls(exc.errno or errno.EFAULT, str(exc.strerror))


class KernelFault(PagetableError):
    """A page fault on user memory while no user-memory access was in progress."""
