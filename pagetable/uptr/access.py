"""The "accessing user memory" flag and the page-fault path that consults it (axptr's per-CPU bool, made
nesting- and exception-safe as a context variable: docs/design.md, "Where the Rust crates differ", item 14).

`accessing_user_memory()` is a context manager; `is_accessing_user_memory()` tells the fault path whether a
fault on a user address may be resolved by the address space (lazy allocation, copy-on-write) or is a kernel
bug. `user_fault(aspace, va, access)` is that fault path.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
from collections.abc import Iterator

from ..flags import MappingFlags
from ..mm.aspace import AddrSpace
from .errors import KernelFault, UserMemoryError

_ACCESSING: contextvars.ContextVar[int] = contextvars.ContextVar("accessing_user_memory", default=0)


@contextlib.contextmanager
def accessing_user_memory() -> Iterator[None]:
    """Mark the enclosed code as accessing user memory (nests; restored on exceptions)."""
    token = _ACCESSING.set(_ACCESSING.get() + 1)
    try:
        yield
    finally:
        _ACCESSING.reset(token)


def is_accessing_user_memory() -> bool:
    return _ACCESSING.get() > 0


def user_fault(aspace: AddrSpace, va: int, access: MappingFlags) -> None:
    """A page fault at `va`: resolved by the address space while a user access is in progress (EFAULT if it
    cannot be), a `KernelFault` otherwise."""
    if not is_accessing_user_memory():
        raise KernelFault(f"page fault at {va:#x} ({MappingFlags(access).short()}) outside a user-memory access")
    if not aspace.handle_page_fault(va, access):
        raise UserMemoryError(errno.EFAULT, f"unresolvable page fault at {va:#x}")
