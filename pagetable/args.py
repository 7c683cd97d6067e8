"""Checks for the arguments of public calls: integers that really are integers, inside their range.

Every public entry point passes its arguments through these before it reads or changes anything, so a wrong
type or an out-of-range value is an `InvalidArgument` (or `InvalidArgumentType`) naming the argument, never
a numpy wrap-around, a silently truncated float, a negative size read as "up to the end", or a traceback
from deep inside. An integer is a Python `int` or a numpy integer (anything with `__index__`), never a
`bool` or a `float`; an array of addresses is an integer array (or a list of ints) with no value outside
[0, 2**64). Modules whose errors carry an errno (mm, uptr) pass their own error class as `error`.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import InvalidArgument, InvalidArgumentType, PagetableError
from .flags import MappingFlags

ADDR_LIMIT = 1 << 64
"""One past the highest 64-bit address: a range may end exactly here, never beyond."""

U64 = npt.NDArray[np.uint64]
Error = type[PagetableError] | None


def _fail(error: Error, default: type[PagetableError], message: str) -> PagetableError:
    return (error or default)(message)


def _describe(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


def integer(value: object, what: str, lo: int | None = None, hi: int | None = None, *,
            error: Error = None) -> int:
    """`value` as an `int`, which must satisfy lo <= value < hi (either bound may be None)."""
    try:
        if isinstance(value, bool | np.bool_ | np.ndarray):
            raise TypeError
        v = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise _fail(error, InvalidArgumentType, f"{what} must be an integer, not {_describe(value)}") from None
    if lo is not None and v < lo:
        bound = "is negative" if lo == 0 and v < 0 else f"must be at least {number(lo)}"
        raise _fail(error, InvalidArgument, f"{what} {number(v)} {bound}")
    if hi is not None and v >= hi:
        bits = hi.bit_length() - 1
        bound = f"does not fit in {bits} bits" if hi == 1 << bits else f"must be below {number(hi)}"
        raise _fail(error, InvalidArgument, f"{what} {number(v)} {bound}")
    return int(v)


def number(v: int) -> str:
    """An integer for a message: decimal when small, hex otherwise (addresses, masks)."""
    return str(v) if -1024 < v < 1024 else f"{v:#x}"


def address(value: object, what: str, *, error: Error = None) -> int:
    """A 64-bit address (or any u64 value): an integer in [0, 2**64)."""
    return integer(value, what, 0, ADDR_LIMIT, error=error)


def size(value: object, what: str, *, error: Error = None) -> int:
    """A byte count: an integer in [0, 2**64]."""
    return integer(value, what, 0, ADDR_LIMIT + 1, error=error)


def span(start: object, length: object, what: str, *, error: Error = None) -> tuple[int, int]:
    """(start, length) of a range that starts at a 64-bit address and ends at or below 2**64."""
    s, n = address(start, f"{what} start", error=error), size(length, f"{what} size", error=error)
    if s + n > ADDR_LIMIT:
        raise _fail(error, InvalidArgument, f"{what} [{s:#x}, +{n:#x}) ends beyond 2**64")
    return s, n


def u64_array(values: Any, what: str, *, error: Error = None) -> U64:
    """`values` (an integer array, a list of ints or one int) as a uint64 array, every value in [0, 2**64).
    Arrays of floats, bools, strings or objects that are not integers are refused, never cast."""
    arr = values if isinstance(values, np.ndarray) else np.asarray(values)
    kind = arr.dtype.kind
    if kind == "u":
        return arr.astype(np.uint64, copy=False)
    if kind == "i":
        if arr.size and int(arr.min()) < 0:
            raise _fail(error, InvalidArgument, f"{what}: {number(int(arr.min()))} is negative")
        return arr.astype(np.uint64)
    if kind == "O":          # Python ints beyond int64 (or a mix of types)
        flat = [integer(v, f"{what} element", 0, ADDR_LIMIT, error=error) for v in arr.reshape(-1).tolist()]
        return np.array(flat, dtype=np.uint64).reshape(arr.shape)
    name = {"f": "floats", "c": "complex numbers", "b": "booleans", "U": "strings", "S": "bytes"}.get(kind, kind)
    raise _fail(error, InvalidArgumentType, f"{what} must be integers, not {name} ({arr.dtype})")


def choice(value: object, what: str, names: dict[str, Any], *, error: Error = None) -> Any:
    """The value `names` gives for the (case-insensitive) name `value`; the error lists the accepted names."""
    key = value.lower() if isinstance(value, str) else None
    if key is None or key not in names:
        accepted = ", ".join(names)
        raise _fail(error, InvalidArgument, f"{what} must be one of {accepted}, not {_describe(value)}")
    return names[key]


def flags(value: object, what: str = "flags", *, error: Error = None) -> MappingFlags:
    """`MappingFlags` from flags or an integer made of their bits."""
    bits = integer(value, what, error=error)
    known = sum(MappingFlags)
    if bits & ~known:
        raise _fail(error, InvalidArgument, f"{what} {number(bits)} has bits that are not MappingFlags "
                    f"({', '.join(f.name or '' for f in MappingFlags)})")
    return MappingFlags(bits)


def boolean(value: object, what: str, *, error: Error = None) -> bool:
    """A bool (numpy bools included); 0/1 integers and other truthy values are refused."""
    if not isinstance(value, bool | np.bool_):
        raise _fail(error, InvalidArgumentType, f"{what} must be True or False, not {_describe(value)}")
    return bool(value)
