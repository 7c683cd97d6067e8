"""The `uptr` checks every architecture's `mm` tests make on a user space: a pointer read across a lazy
copy-on-write page (zeros, faulted in) and a read-only one, a store that faults its page in, and EFAULT for a
store to the read-only page and for a load from the kernel's range."""

from __future__ import annotations

import errno
from collections.abc import Callable

import numpy as np
import pytest

from pagetable.flags import MappingFlags as F
from pagetable.mm import AddrSpace, Cow
from pagetable.uptr import UserConstPtr, UserMemoryError, UserPtr, copy_from_user
from pagetable.walker import Walker


def check_user_pointers(kernel: AddrSpace, user: AddrSpace, base: int, kernel_va: int, cpu: Callable[[], Walker],
                        data: F = F.READ | F.WRITE) -> None:
    """Map a lazy COW page at `base` and a read-only page after it in `user` (with `data` rights: 32-bit x86
    pages must be executable) and check `uptr` through them, and that the processor (`cpu()`: a walker of the
    user's tables) sees the pages they fault in; `kernel_va` is in `kernel`'s range. Both spaces are destroyed
    and every frame is freed."""
    page = user.fmt.page_size
    user.map(base, page, data | F.USER, False, Cow())
    user.map_alloc(base + page, page, data | F.USER, True)
    user.write(base + page, b"read-only\0")
    user.protect(base + page, page, (data & ~F.WRITE) | F.USER)
    got = UserConstPtr(base + page - 4, np.uint32).get_as_slice(user, 2)     # the lazy page, the read-only one
    assert isinstance(got, np.ndarray) and got.tolist() == [0, int.from_bytes(b"read", "little")]
    UserPtr(base + 16, np.uint32).set(user, 0xDEADBEEF)
    assert copy_from_user(user, base + 16, 4) == (0xDEADBEEF).to_bytes(4, "little")
    assert cpu().translate(base + 16, "write", "user").ok                    # faulted in, as the CPU sees it
    with pytest.raises(UserMemoryError) as exc:
        UserPtr(base + page, np.uint32).set(user, 1)                        # read-only for the user
    assert exc.value.errno == errno.EFAULT
    with pytest.raises(UserMemoryError) as exc:
        UserConstPtr(kernel_va, np.uint32).get(user)                       # the kernel's range is not the user's
    assert exc.value.errno == errno.EFAULT
    for space in (user, kernel):
        space.destroy()
    assert user.frames.in_use == 0
