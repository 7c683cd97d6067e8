"""The error hierarchy.

`PagingError` and its subclasses mirror page_table_multiarch's `PagingError` enum (NoMemory, NotAligned,
NotMapped, AlreadyMapped, MappedToHugePage) and add what the Rust crate leaves to panics or silence:
`InvalidAddress` (non-canonical VAs, PAs wider than the format) and `InvalidFlags` (flags the entry format
cannot encode, such as RISC-V write-without-read). `PhysMemError` covers physical-memory access outside
every RAM region. `InvalidArgument` is an argument of the wrong type or out of its range (a negative size, a
float address, an unknown access name); it is also a `ValueError` (`InvalidArgumentType`: a `TypeError`), so
code that catches the built-in kinds keeps working. Every error carries a message that names the address or
value at fault.
"""

from __future__ import annotations


class PagetableError(Exception):
    """Base class of every error this library raises on purpose."""


class InvalidArgument(PagetableError, ValueError):
    """An argument outside the range the call accepts (a negative size, an address of 65 bits, ...)."""


class InvalidArgumentType(InvalidArgument, TypeError):
    """An argument of the wrong type (a float or a string where an integer address belongs, ...)."""


class PhysMemError(PagetableError):
    """A physical address range that is not (wholly) inside one RAM region, or a malformed image."""


class PagingError(PagetableError):
    """Base class of the page-table operation errors (page_table_multiarch's `PagingError`)."""


class NoMemory(PagingError):
    """No free frame could be allocated (for a table or a data page)."""


class NotAligned(PagingError):
    """An address or size is not aligned to the page size the operation needs."""


class NotMapped(PagingError):
    """The address has no present mapping."""


class AlreadyMapped(PagingError):
    """The target slot already holds a mapping or a table."""


class MappedToHugePage(PagingError):
    """A huge (superpage/block) leaf sits above the slot the operation needs."""


class InvalidAddress(PagingError):
    """A VA that is not canonical for the format, or a PA wider than the format allows."""


class InvalidFlags(PagingError):
    """Flags that the entry format cannot encode (e.g. RISC-V WRITE without READ)."""


class NotATree(PagingError):
    """A region operation met tables that do not form a tree (a loop, a table shared by several entries or
    used at two levels, a table outside RAM): it cannot tell what to change, so it changes nothing."""
