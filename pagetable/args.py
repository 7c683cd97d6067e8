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
_KNOWN_FLAGS = sum(MappingFlags)
Error = type[PagetableError] | None


def _fail(error: Error, default: type[PagetableError], message: str) -> PagetableError:
    return (error or default)(message)


def describe(value: object) -> str:
    """A value for a message: its type and a short repr."""
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


def integer(value: object, what: str, lo: int | None = None, hi: int | None = None, *,
            error: Error = None) -> int:
    """`value` as an `int`, which must satisfy lo <= value < hi (either bound may be None)."""
    if type(value) is int:                  # the common case, without the checks below
        v = value
    else:
        try:
            if isinstance(value, bool | np.bool_ | np.ndarray):
                raise TypeError
            v = operator.index(value)  # type: ignore[arg-type]
        except TypeError:
            raise _fail(error, InvalidArgumentType, f"{what} must be an integer, not {describe(value)}") from None
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
    if type(value) is int and 0 <= value < ADDR_LIMIT:     # the common case, in one call
        return value
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
    if isinstance(values, np.ndarray):
        arr = values
    else:
        try:
            arr = np.asarray(values)
        except (ValueError, TypeError):                 # a ragged list, or something numpy cannot take
            raise _fail(error, InvalidArgumentType, f"{what} must be a flat list or array of integers, not "
                        f"{describe(values)}") from None
        if arr.dtype.kind in "fO" and isinstance(values, list | tuple):
            arr = np.asarray(values, dtype=object)      # ints numpy promoted to float ([2**63, -1]): check each
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
        raise _fail(error, InvalidArgument, f"{what} must be one of {accepted}, not {describe(value)}")
    return names[key]


def flags(value: object, what: str = "flags", *, error: Error = None) -> MappingFlags:
    """`MappingFlags` from flags or an integer made of their bits."""
    if type(value) is MappingFlags:                 # the common case: already flags
        return value
    bits = integer(value, what, error=error)
    if bits & ~_KNOWN_FLAGS:
        raise _fail(error, InvalidArgument, f"{what} {number(bits)} has bits that are not MappingFlags "
                    f"({', '.join(f.name or '' for f in MappingFlags)})")
    return MappingFlags(bits)


def boolean(value: object, what: str, *, error: Error = None) -> bool:
    """A bool (numpy bools included); 0/1 integers and other truthy values are refused."""
    if not isinstance(value, bool | np.bool_):
        raise _fail(error, InvalidArgumentType, f"{what} must be True or False, not {describe(value)}")
    return bool(value)


def data(value: object, what: str = "data", *, error: Error = None) -> bytes:
    """Bytes-like `value` (bytes, bytearray, memoryview) as bytes; anything else is refused."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise _fail(error, InvalidArgumentType, f"{what} must be bytes-like, not {describe(value)}")
    return bytes(value)


def dtype(kind: object, what: str = "element type", *, error: Error = None) -> np.dtype[Any]:
    """A numpy dtype that can lay a value out in memory: not None (numpy would make it float64), no Python
    objects, at least one byte."""
    try:
        if kind is None:
            raise TypeError("None")
        dt: np.dtype[Any] = np.dtype(kind)  # type: ignore[call-overload]
    except (TypeError, ValueError, SyntaxError) as exc:      # numpy parses "i4,(2)f8" strings with ast
        raise _fail(error, InvalidArgumentType, f"{what} {describe(kind)} is not a numpy dtype: {exc}") from None
    if dt.hasobject or dt.itemsize == 0:
        raise _fail(error, InvalidArgument, f"{what} {dt} cannot be laid out in memory (objects, or no bytes)")
    return dt


def pack(value: object, dt: np.dtype[Any], what: str = "value", *, error: Error = None) -> bytes:
    """The bytes of one `dt` element holding `value`, which must fit it exactly as it is: an integer element
    takes an integer in range (never a float, truncated), a bool one a bool, a float one a number that does
    not overflow it, a bytes or string one a value no longer than it; an array is not one element.
    Structured dtypes follow numpy's assignment rules."""
    if dt.kind in "ui":
        info = np.iinfo(dt)
        return np.array(integer(value, f"a {dt} {what}", int(info.min), int(info.max) + 1, error=error),
                        dtype=dt).tobytes()
    if dt.kind == "b":
        return np.array(boolean(value, f"a {dt} {what}", error=error), dtype=dt).tobytes()
    if dt.kind in "fc":
        real = (int, float, np.integer, np.floating)
        allowed = real if dt.kind == "f" else (*real, complex, np.complexfloating)
        if isinstance(value, bool | np.bool_) or not isinstance(value, allowed):
            raise _fail(error, InvalidArgumentType, f"a {dt} {what} is a {'real ' if dt.kind == 'f' else ''}number, "
                        f"not {describe(value)}")
        try:
            with np.errstate(over="ignore"):
                out = np.array(value, dtype=dt)
            overflow = bool(np.isinf(out).any()) and not bool(np.isinf(np.asarray(value)).any())
        except OverflowError:                         # an int beyond any float
            overflow = True
        if overflow:
            raise _fail(error, InvalidArgument, f"{describe(value)} does not fit a {dt} {what}")
        return out.tobytes()
    if dt.kind in "SU":
        kind, per = (bytes, 1) if dt.kind == "S" else (str, 4)
        if not isinstance(value, kind) or len(value) > dt.itemsize // per:
            raise _fail(error, InvalidArgument, f"a {dt} {what} holds {kind.__name__} of up to "
                        f"{dt.itemsize // per}, not {describe(value)}")
        return np.array(value, dtype=dt).tobytes()
    try:
        out = np.asarray(value, dtype=dt)
    except (TypeError, ValueError, OverflowError) as exc:
        raise _fail(error, InvalidArgument, f"{describe(value)} is not a {dt} {what}: {exc}") from None
    if out.shape != ():
        raise _fail(error, InvalidArgument, f"one {dt} {what}, not an array of shape {out.shape}")
    return out.tobytes()
