"""`MemoryArea` and the `MappingBackend` protocol (memory_set's, docs/mm.md).

An area is a half-open VA range with flags and a backend that knows how to put it into a page table.
Backends raise (an `MmError` or a `PagingError`) on failure instead of returning false.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Generic, Protocol, TypeVar

from .. import args
from ..flags import MappingFlags
from .errors import InvalidParam

PT = TypeVar("PT", contravariant=True)


class MappingBackend(Protocol[PT]):
    """How an area's pages get into (and out of) the page table `pt`."""

    def map(self, start: int, size: int, flags: MappingFlags, pt: PT) -> None:
        """Map [start, start + size) with `flags` (a lazy backend may map nothing yet)."""
        ...

    def unmap(self, start: int, size: int, pt: PT) -> None:
        """Unmap [start, start + size) and release what the backend owns there."""
        ...

    def protect(self, start: int, size: int, flags: MappingFlags, pt: PT) -> None:
        """Change the flags of whatever is mapped in [start, start + size)."""
        ...


B = TypeVar("B")


@dataclass(frozen=True)
class MemoryArea(Generic[B]):
    """[start, start + size) with `flags`, backed by `backend`."""

    start: int
    size: int
    flags: MappingFlags
    backend: B

    def __post_init__(self) -> None:
        args.span(self.start, self.size, "area", error=InvalidParam)
        args.flags(self.flags, "area flags", error=InvalidParam)

    @property
    def end(self) -> int:
        return self.start + self.size

    def contains(self, addr: int) -> bool:
        return self.start <= addr < self.end

    def with_range(self, start: int, end: int) -> MemoryArea[B]:
        """The same area restricted to [start, end) (the backend is shared: backends compute per-page state
        from the address, so a piece of an area is an area)."""
        return replace(self, start=start, size=end - start)

    def with_flags(self, flags: MappingFlags) -> MemoryArea[B]:
        return replace(self, flags=flags)

    def __str__(self) -> str:
        return f"[{self.start:#x}, {self.end:#x}) {self.flags.short()} {type(self.backend).__name__}"
