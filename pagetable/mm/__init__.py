"""Memory management over real page tables: `MemoryArea`/`MemorySet` (memory_set), the `Linear`, `Alloc`,
`Cow` and `Shared` backends, `AddrSpace` (axmm, with lazy allocation, copy-on-write `try_clone` and
page-fault handling) and `GuestAddrSpace` (axaddrspace, over nested tables). Errors carry the errno a kernel
would return (`pagetable.mm.errors`)."""

from .area import MappingBackend, MemoryArea
from .aspace import AddrSpace
from .backends import Alloc, Backend, Cow, Linear, Shared, SharedPages
from .errors import AlreadyExists, BadAddress, BadState, InvalidParam, MmError, OutOfMemory, OutOfRange
from .guest import GuestAddrSpace
from .memory_set import MemorySet

__all__ = ["AddrSpace", "Alloc", "AlreadyExists", "Backend", "BadAddress", "BadState", "Cow", "GuestAddrSpace",
           "InvalidParam", "Linear", "MappingBackend", "MemoryArea", "MemorySet", "MmError", "OutOfMemory",
           "OutOfRange", "Shared", "SharedPages"]
