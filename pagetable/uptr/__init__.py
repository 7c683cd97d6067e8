"""User pointers that check and read user memory through an `AddrSpace`, as a kernel does (axptr).

`UserPtr`/`UserConstPtr` (typed by numpy dtypes, construct structs or `pointer_to(...)`), the
`AddrSpaceProvider` protocol (`AddrSpace` itself, `LockedAddrSpace`), `check_region`,
`check_null_terminated`, `copy_from_user`/`copy_to_user`, the `accessing_user_memory()` context and the
fault path that consults it, and errno-carrying `UserMemoryError`s.
"""

from .access import accessing_user_memory, is_accessing_user_memory, user_fault
from .check import (
    PATH_MAX,
    AddrSpaceProvider,
    LockedAddrSpace,
    check_null_terminated,
    check_region,
    copy_from_user,
    copy_to_user,
)
from .errors import BadArgument, BadPointer, KernelFault, UserMemoryError
from .ptr import ARG_MAX, C_CHAR, Elem, UserConstPtr, UserPtr, as_elem, pointer_to

__all__ = [
    "ARG_MAX",
    "C_CHAR",
    "PATH_MAX",
    "AddrSpaceProvider",
    "BadArgument",
    "BadPointer",
    "Elem",
    "KernelFault",
    "LockedAddrSpace",
    "UserConstPtr",
    "UserMemoryError",
    "UserPtr",
    "accessing_user_memory",
    "as_elem",
    "check_null_terminated",
    "check_region",
    "copy_from_user",
    "copy_to_user",
    "is_accessing_user_memory",
    "pointer_to",
    "user_fault",
]
