"""`UserPtr` and `UserConstPtr`: typed pointers into user memory (axptr's, docs/uptr.md).

The element type is a numpy dtype (`np.uint32`, a structured dtype, `C_CHAR`), a construct struct, or
`pointer_to(elem)` for arrays of user pointers (argv/envp: `UserConstPtr(addr, pointer_to(C_CHAR))`). Every
access first checks the region (alignment, areas granting READ|USER, or READ|WRITE|USER for `UserPtr`),
populates it, and reads through the page table inside `accessing_user_memory()`. `UserConstPtr` has no
write methods at all.

Reads return copies, never views of physical memory: a view would outlive the check that granted it (a
copy-on-write `try_clone` shares the frame with the child, an unmap frees it for reuse), so writing through
it could change another address space. `get_as_slice` of a `UserPtr` is a writable copy (store it back
with `write`), of a `UserConstPtr` a read-only one.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import construct
import numpy as np
import numpy.typing as npt

from .. import args
from ..flags import MappingFlags
from ..mm.aspace import AddrSpace
from .check import PATH_MAX, AddrSpaceProvider, check_null_terminated, check_region, copy_from_user, copy_to_user
from .errors import BadArgument, BadPointer, UserMemoryError

T = TypeVar("T")
R = TypeVar("R")
C_CHAR = np.dtype(np.uint8)
ARG_MAX = 2 * 1024 * 1024 // 8          # pointers in an argv/envp array before E2BIG


class Elem(Protocol[T]):
    """How one element is laid out in user memory."""

    @property
    def size(self) -> int: ...

    @property
    def align(self) -> int: ...

    def decode(self, data: bytes) -> T: ...

    def encode(self, value: T) -> bytes: ...


@dataclass(frozen=True)
class NumpyElem:
    """An element of a numpy dtype (decoded as a numpy scalar or structured record)."""

    dtype: np.dtype[Any]

    @property
    def size(self) -> int:
        return int(self.dtype.itemsize)

    @property
    def align(self) -> int:
        return int(self.dtype.alignment)

    def decode(self, data: bytes) -> Any:
        return np.frombuffer(data, dtype=self.dtype, count=1)[0]

    def encode(self, value: Any) -> bytes:
        """One element's bytes (`args.pack`: an integer element takes an integer that fits)."""
        return args.pack(value, self.dtype, "element", error=BadArgument)


@dataclass(frozen=True)
class ConstructElem:
    """An element described by a fixed-size construct struct (decoded as a construct Container)."""

    struct: Any
    align: int = 8

    @property
    def size(self) -> int:
        return int(self.struct.sizeof())

    def decode(self, data: bytes) -> Any:
        return self.struct.parse(data)

    def encode(self, value: Any) -> bytes:
        try:
            data = bytes(self.struct.build(value))
        except (construct.ConstructError, TypeError, ValueError, KeyError, AttributeError) as exc:
            raise BadArgument(f"{value!r:.40} does not build the element struct: {exc}") from None
        if len(data) != self.size:
            raise BadArgument(f"the element struct built {len(data)} bytes, not {self.size}")
        return data


@dataclass(frozen=True)
class PointerElem:
    """A 64-bit user pointer to `target` elements (decoded as a `UserConstPtr`)."""

    target: Elem[Any]
    size: int = 8
    align: int = 8

    def decode(self, data: bytes) -> UserConstPtr[Any]:
        return UserConstPtr(int.from_bytes(data, "little"), self.target)

    def encode(self, value: UserConstPtr[Any]) -> bytes:
        if not isinstance(value, UserConstPtr):
            raise BadArgument(f"an element of a pointer array is a user pointer, not {type(value).__name__}")
        return value.address.to_bytes(8, "little")


def as_elem(kind: Any) -> Elem[Any]:
    """An `Elem` from a numpy dtype (or anything np.dtype accepts), a construct struct, or an Elem."""
    if isinstance(kind, NumpyElem | ConstructElem | PointerElem):
        return kind
    if isinstance(kind, construct.Construct):
        try:
            kind.sizeof()
        except construct.ConstructError:
            raise BadArgument(f"{kind} has no fixed size, so it cannot be an element in user memory") from None
        return ConstructElem(kind)
    return NumpyElem(args.dtype(kind, "element type (a numpy dtype, a construct struct or pointer_to(...))",
                                error=BadArgument))


def pointer_to(kind: Any) -> PointerElem:
    """The element type "user pointer to `kind`" (argv is `pointer_to(C_CHAR)`)."""
    return PointerElem(as_elem(kind))


def _lend(provider: AddrSpaceProvider, run: Callable[[AddrSpace], R]) -> R:
    """Run `run` on the address space `provider` lends."""
    if not callable(getattr(provider, "with_addr_space", None)):
        raise BadArgument(f"{type(provider).__name__} does not lend an address space (with_addr_space)")
    return provider.with_addr_space(run)


class UserConstPtr(Generic[T]):
    """A read-only user pointer to elements of `elem`."""

    ACCESS = MappingFlags.READ | MappingFlags.USER

    def __init__(self: UserConstPtr[Any], address: int, elem: Any) -> None:
        self.address = args.address(address, "user pointer", error=BadPointer)
        self.elem: Elem[T] = as_elem(elem)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.address:#x})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and isinstance(other, UserConstPtr) and other.address == self.address \
            and other.elem == self.elem

    def __hash__(self) -> int:
        return hash((type(self), self.address))

    def is_null(self) -> bool:
        return self.address == 0

    def nullable(self) -> UserConstPtr[T] | None:
        """None for a null pointer, else the pointer (axptr's `nullable`)."""
        return None if self.is_null() else self

    def cast(self, elem: Any) -> UserConstPtr[Any]:
        """The same address viewed as pointing at `elem` elements (same pointer kind)."""
        return type(self)(self.address, elem)

    def _region(self, aspace: AddrSpace, count: int) -> None:
        check_region(aspace, self.address, count * self.elem.size, self.elem.align, self.ACCESS)

    def get(self, provider: AddrSpaceProvider) -> T:
        """The element at the pointer."""
        def run(aspace: AddrSpace) -> T:
            self._region(aspace, 1)
            return self.elem.decode(copy_from_user(aspace, self.address, self.elem.size))
        return _lend(provider, run)

    def get_as_slice(self, provider: AddrSpaceProvider, n: int) -> npt.NDArray[Any] | list[T]:
        """`n` elements: a numpy array (a copy, never a view of physical memory: see the module docstring;
        read-only for a const pointer), or a list for construct elements."""
        n = args.integer(n, "element count", 0, args.ADDR_LIMIT, error=BadArgument)

        def run(aspace: AddrSpace) -> npt.NDArray[Any] | list[T]:
            self._region(aspace, n)
            size = n * self.elem.size
            if isinstance(self.elem, NumpyElem):
                arr = np.frombuffer(copy_from_user(aspace, self.address, size), dtype=self.elem.dtype).copy()
                arr.flags.writeable = bool(self.ACCESS & MappingFlags.WRITE)
                return arr
            data = copy_from_user(aspace, self.address, size)
            return [self.elem.decode(data[i * self.elem.size:(i + 1) * self.elem.size]) for i in range(n)]
        return _lend(provider, run)

    def get_as_null_terminated(self, provider: AddrSpaceProvider, limit: int | None = None) -> list[T]:
        """The elements before the first all-zero one (a null pointer in a pointer array). Too many:
        E2BIG for pointer arrays, ENAMETOOLONG otherwise."""
        is_ptr = isinstance(self.elem, PointerElem)
        bound = limit if limit is not None else ARG_MAX if is_ptr else PATH_MAX

        def run(aspace: AddrSpace) -> list[T]:
            n = check_null_terminated(aspace, self.address, self.elem.size, self.ACCESS, bound,
                                      errno.E2BIG if is_ptr else errno.ENAMETOOLONG)
            data = copy_from_user(aspace, self.address, n * self.elem.size)
            return [self.elem.decode(data[i * self.elem.size:(i + 1) * self.elem.size]) for i in range(n)]
        return _lend(provider, run)

    def get_as_bytes(self, provider: AddrSpaceProvider, limit: int = PATH_MAX) -> bytes:
        """The bytes up to (not including) the NUL."""
        def run(aspace: AddrSpace) -> bytes:
            n = check_null_terminated(aspace, self.address, 1, self.ACCESS, limit)
            return copy_from_user(aspace, self.address, n)
        return _lend(provider, run)

    def get_as_str(self, provider: AddrSpaceProvider, limit: int = PATH_MAX) -> str:
        """The NUL-terminated string at the pointer, as UTF-8; invalid UTF-8 → EILSEQ."""
        if self.elem.size != 1:
            raise BadArgument("get_as_str needs a pointer to C_CHAR")
        data = self.get_as_bytes(provider, limit)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UserMemoryError(errno.EILSEQ, f"string at {self.address:#x} is not UTF-8: {exc.reason}") from None


class UserPtr(UserConstPtr[T]):
    """A read-write user pointer: also `set` and `write`."""

    ACCESS = MappingFlags.READ | MappingFlags.WRITE | MappingFlags.USER

    def __init__(self: UserPtr[Any], address: int, elem: Any) -> None:
        super().__init__(address, elem)   # (restated so that type checkers infer UserPtr[Any])

    def set(self, provider: AddrSpaceProvider, value: T) -> None:
        """Store one element at the pointer."""
        self.write(provider, [value])

    def write(self, provider: AddrSpaceProvider, values: list[T] | npt.NDArray[Any]) -> None:
        """Store consecutive elements from the pointer on (a list, tuple or one-dimensional array)."""
        if not isinstance(values, list | tuple) and not (isinstance(values, np.ndarray) and values.ndim == 1):
            raise BadArgument(f"write takes a list or a one-dimensional array of elements, not "
                              f"{type(values).__name__}")
        data = b"".join(self.elem.encode(v) for v in values)

        def run(aspace: AddrSpace) -> None:
            self._region(aspace, len(values))
            copy_to_user(aspace, self.address, data)
        _lend(provider, run)
