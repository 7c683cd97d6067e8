"""uptr: user pointers that check and read user memory through an AddrSpace."""

from __future__ import annotations

import errno

import construct
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pagetable.arch.riscv_sv39 import SV39
from pagetable.flags import MappingFlags as F
from pagetable.flags import PageSize
from pagetable.frames import FrameAllocator
from pagetable.mm import AddrSpace, Cow
from pagetable.physmem import PhysMem
from pagetable.uptr import (
    C_CHAR,
    PATH_MAX,
    KernelFault,
    LockedAddrSpace,
    UserConstPtr,
    UserMemoryError,
    UserPtr,
    accessing_user_memory,
    check_null_terminated,
    check_region,
    copy_from_user,
    copy_to_user,
    is_accessing_user_memory,
    pointer_to,
    user_fault,
)

from .test_aspace import G16

RAM = 0x8000_0000
BASE = 0x1000_0000
P0, P1, P2, P3 = BASE, BASE + 0x1000, BASE + 0x2000, BASE + 0x3000   # lazy RW | RO | unmapped | kernel RW
URW, URO = F.READ | F.WRITE | F.USER, F.READ | F.USER


def make(ram: int = 16 << 20) -> AddrSpace:
    """P0 lazy user RW, P1 user read-only (pre-filled), P2 unmapped, P3 kernel-only RW."""
    a = AddrSpace.new_empty(SV39, BASE, 0x1000_0000, FrameAllocator(PhysMem([(RAM, ram)])))
    a.map(P0, 0x1000, URW, False, Cow())
    a.map_alloc(P1, 0x1000, URW, True)
    a.write(P1, b"read-only page\0")
    a.protect(P1, 0x1000, URO)
    a.map_alloc(P3, 0x1000, F.READ | F.WRITE, True)
    return a


def code(exc: pytest.ExceptionInfo[UserMemoryError]) -> int:
    assert isinstance(exc.value, OSError)
    return int(exc.value.errno or 0)


def test_check_region_errors() -> None:
    a = make()
    with pytest.raises(UserMemoryError) as e:
        check_region(a, P0 + 2, 4, 4, URO)                   # misaligned
    assert code(e) == errno.EFAULT
    with pytest.raises(UserMemoryError) as e:
        check_region(a, P2, 8, 8, URO)                       # no area
    assert code(e) == errno.EFAULT
    with pytest.raises(UserMemoryError) as e:
        check_region(a, P3, 8, 8, URO)                       # kernel-only area
    assert code(e) == errno.EFAULT
    with pytest.raises(UserMemoryError) as e:
        check_region(a, P1, 8, 8, URW)                       # read-only for a write
    assert code(e) == errno.EFAULT
    check_region(a, P2 + 0x123, 0, 8, URW)                   # zero length: accepted, like Linux (axptr: EFAULT)
    assert len(a.page_table.walk(P0, P0 + 0x1000)) == 0      # ... and nothing was touched


def test_populate_failure_is_enomem() -> None:
    a = AddrSpace.new_empty(SV39, BASE, 0x1000_0000, FrameAllocator(PhysMem([(RAM, 4 << 12)])))
    a.map(P0, 0x8000, URW, False, Cow())
    with pytest.raises(UserMemoryError) as e:
        check_region(a, P0, 0x8000, 8, URW)
    assert code(e) == errno.ENOMEM


def test_straddling_pointers() -> None:
    a = make()
    used = a.frames.in_use
    across = UserConstPtr(P1 - 8, np.uint64)                  # lazy page, then read-only page
    got = across.get_as_slice(a, 2)
    assert isinstance(got, np.ndarray)
    assert got.tolist() == [0, int.from_bytes(b"read-onl", "little")]
    assert a.frames.in_use == used + 1                       # the lazy page was faulted in
    with pytest.raises(UserMemoryError) as e:
        UserPtr(P1 - 8, np.uint64).write(a, [1, 2])          # second page is read-only
    assert code(e) == errno.EFAULT
    assert a.read(P1 - 8, 8) == bytes(8)                     # nothing written
    with pytest.raises(UserMemoryError) as e:
        UserConstPtr(P2 - 8, np.uint64).get_as_slice(a, 2)   # runs into the unmapped page
    assert code(e) == errno.EFAULT


def test_writes_through_user_ptr_break_cow_and_const_ptr_cannot_write() -> None:
    a = make()
    p = UserPtr(P0 + 16, np.uint32)
    p.set(a, 0xDEADBEEF)
    child = a.try_clone()
    p.set(child, 7)
    assert p.get(a) == 0xDEADBEEF and p.get(child) == 7
    c = UserConstPtr(P0 + 16, np.uint32)
    assert not hasattr(c, "set") and not hasattr(c, "write")
    view = c.get_as_slice(a, 4)
    assert isinstance(view, np.ndarray) and not view.flags.writeable
    child.destroy()


def test_strings_and_argv_across_pages() -> None:
    a = make()
    text = "héllo, wörld".encode()
    start = P1 - 5
    UserPtr(start, C_CHAR).write(a, list(text[:5]))          # the first 5 bytes end lazy page P0 ...
    assert UserConstPtr(start, C_CHAR).get_as_bytes(a) == text[:5] + b"read-only page"   # ... P1 goes on
    assert UserConstPtr(P1, C_CHAR).get_as_str(a) == "read-only page"
    UserPtr(P0 + 0x100, C_CHAR).write(a, list(text + b"\0"))
    assert UserConstPtr(P0 + 0x100, C_CHAR).get_as_str(a) == "héllo, wörld"
    # argv at the end of P0 pointing at strings in P0 and P1, the NULL in P1? (P1 is read-only: build in P0)
    UserPtr(P0 + 0x200, C_CHAR).write(a, list(b"-v\0"))
    argv = UserPtr(P0 + 0xFF0, np.uint64)
    argv.write(a, [P0 + 0x100, P0 + 0x200])                  # two pointers end exactly at the page edge
    with pytest.raises(UserMemoryError) as e:                # ... and P1 holds no NULL pointer: "read-onl"...
        UserConstPtr(P0 + 0xFF0, pointer_to(C_CHAR)).get_as_null_terminated(a, limit=3)
    assert code(e) == errno.E2BIG
    argv.write(a, [P0 + 0x100, 0])
    args = UserConstPtr(P0 + 0xFF0, pointer_to(C_CHAR)).get_as_null_terminated(a)
    assert [s.get_as_str(a) for s in args] == ["héllo, wörld"]
    # argv whose terminator lies on the next (lazy) page, pointing at a string that straddles two pages
    three = BASE + 0x8000
    a.map(three, 0x3000, URW, False, Cow())
    UserPtr(three + 0x1FFA, C_CHAR).write(a, list(b"--verbose\0"))
    UserPtr(three + 0x1800, C_CHAR).write(a, list(b"x\0"))
    UserPtr(three + 0xFF0, np.uint64).write(a, [three + 0x1FFA, three + 0x1800, 0])
    argv2 = UserConstPtr(three + 0xFF0, pointer_to(C_CHAR)).get_as_null_terminated(a)
    assert [s.get_as_str(a) for s in argv2] == ["--verbose", "x"]


def test_string_errors() -> None:
    a = make()
    UserPtr(P0, C_CHAR).write(a, [0xFF, 0xFE, 0])
    with pytest.raises(UserMemoryError) as e:
        UserConstPtr(P0, C_CHAR).get_as_str(a)
    assert code(e) == errno.EILSEQ
    UserPtr(P0, C_CHAR).write(a, [ord("a")] * 0x1000)          # no NUL in P0; P1 has one
    assert len(UserConstPtr(P0, C_CHAR).get_as_bytes(a, limit=0x2000)) == 0x1000 + len("read-only page")
    with pytest.raises(UserMemoryError) as e:
        UserConstPtr(P0, C_CHAR).get_as_str(a, limit=100)
    assert code(e) == errno.ENAMETOOLONG
    UserPtr(P1 - 8, C_CHAR).write(a, [1] * 8)
    a.protect(P1, 0x1000, F.READ)                              # P1 becomes kernel-only
    with pytest.raises(UserMemoryError) as e:
        check_null_terminated(a, P1 - 8, 1, F.READ | F.USER)
    assert code(e) == errno.EFAULT
    with pytest.raises(UserMemoryError) as e:
        check_null_terminated(a, P0 + 1, 2, F.READ | F.USER)
    assert code(e) == errno.EFAULT                             # misaligned element


def test_accessing_user_memory_flag_and_fault_path() -> None:
    a = make()
    assert not is_accessing_user_memory()
    with pytest.raises(KernelFault):
        user_fault(a, P0, F.READ)                              # a kernel bug outside a user access
    with pytest.raises(RuntimeError), accessing_user_memory():
        with accessing_user_memory():
            assert is_accessing_user_memory()
        assert is_accessing_user_memory()                      # nesting-safe
        raise RuntimeError
    assert not is_accessing_user_memory()                      # exception-safe
    with accessing_user_memory():
        user_fault(a, P0, F.READ)                              # resolved: lazy page allocated
        with pytest.raises(UserMemoryError) as e:
            user_fault(a, P2, F.READ)
        assert code(e) == errno.EFAULT
    assert a.page_table.query(P0)[1] == URW


def test_pointer_kinds_provider_and_views() -> None:
    a = make()
    locked = LockedAddrSpace(a)
    point = construct.Struct("x" / construct.Int32ul, "y" / construct.Int32ul)
    UserPtr(P0 + 8, point).set(locked, {"x": 3, "y": 4})
    got = UserConstPtr(P0 + 8, point).get(locked)
    assert (got.x, got.y) == (3, 4)
    rec = np.dtype([("x", "<u4"), ("y", "<u4")])
    assert UserConstPtr(P0 + 8, rec).get(a)["y"] == 4
    assert UserConstPtr(P0 + 8, np.uint32).cast(np.uint64).get(a) == 3 | 4 << 32
    assert UserConstPtr(0, np.uint8).nullable() is None and UserPtr(8, np.uint8).nullable() is not None
    # even over physically contiguous pages the slice is a copy; `write` stores it back
    a.map_linear(BASE + 0x10000, RAM + (8 << 20), 0x2000, URW)
    ptr = UserPtr(BASE + 0x10FF0, np.uint8)
    arr = ptr.get_as_slice(a, 0x20)
    assert isinstance(arr, np.ndarray) and arr.flags.writeable
    arr[:] = 9
    assert a.read(BASE + 0x10FF0, 0x20) == bytes(0x20)
    ptr.write(a, arr)
    assert a.frames.mem.read(RAM + (8 << 20) + 0xFF0, 0x20) == bytes([9]) * 0x20


def test_a_slice_kept_across_a_cow_clone_cannot_write_into_the_child() -> None:
    """A writable view from get_as_slice, kept across try_clone, used to write into the child's memory too."""
    a = make()
    p = UserPtr(P0, np.uint64)
    p.write(a, [1, 2, 3, 4])
    kept = p.get_as_slice(a, 4)
    child = a.try_clone()
    assert isinstance(kept, np.ndarray)
    kept[:] = 99

    def values(space: AddrSpace) -> list[int]:
        return list(map(int, p.get_as_slice(space, 4)))
    assert values(a) == values(child) == [1, 2, 3, 4]
    p.write(a, kept)
    assert values(a) == [99] * 4 and values(child) == [1, 2, 3, 4]
    child.destroy()


def test_copy_from_and_to_user_refuse_kernel_only_pages() -> None:
    """copy_from_user returned the bytes of a kernel-only R|W page and copy_to_user overwrote them."""
    a = make()
    a.write(P3, b"kernel secret")
    for start, size in ((P3, 13), (P3 - 8, 16)):         # the kernel page alone, and a range running into it
        with pytest.raises(UserMemoryError) as e:
            copy_from_user(a, start, size)
        assert code(e) == errno.EFAULT
        with pytest.raises(UserMemoryError) as e:
            copy_to_user(a, start, b"x" * size)
        assert code(e) == errno.EFAULT
    assert a.read(P3, 13) == b"kernel secret"
    assert copy_from_user(a, P1, 14) == b"read-only page"        # user pages still work
    copy_to_user(a, P0, b"ok")
    assert copy_from_user(a, P0, 2) == b"ok"


def test_path_max_counts_the_terminating_nul() -> None:
    """Linux: a 4,095-character path fits PATH_MAX; 4,096 characters plus the NUL are ENAMETOOLONG."""
    a = AddrSpace.new_empty(SV39, BASE, 0x1000_0000, FrameAllocator(PhysMem([(RAM, 1 << 20)])))
    a.map_alloc(P0, 0x3000, URW, True)
    for n, ok in ((PATH_MAX - 1, True), (PATH_MAX, False), (PATH_MAX + 1, False)):
        a.write(P0, b"a" * n + b"\0")
        if ok:
            assert UserConstPtr(P0, C_CHAR).get_as_str(a) == "a" * n
            assert check_null_terminated(a, P0, 1, URO) == n
        else:
            with pytest.raises(UserMemoryError) as e:
                UserConstPtr(P0, C_CHAR).get_as_str(a)
            assert code(e) == errno.ENAMETOOLONG


@pytest.mark.parametrize(("call", "errno_"), [
    (lambda a: copy_from_user(a, -1, 4), errno.EFAULT),
    (lambda a: copy_from_user(a, P0, -4), errno.EFAULT),
    (lambda a: copy_from_user(a, float(P0), 4), errno.EFAULT),  # type: ignore[arg-type]
    (lambda a: copy_from_user(a, (1 << 64) - 2, 4), errno.EFAULT),
    (lambda a: copy_to_user(a, P0, "text"), errno.EINVAL),  # type: ignore[arg-type]
    (lambda a: check_region(a, P0, 8, 0, URO), errno.EINVAL),
    (lambda a: check_region(a, P0, 8, 8, "r"), errno.EINVAL),  # type: ignore[arg-type]
    (lambda a: check_null_terminated(a, P0, 3, URO), errno.EINVAL),
    (lambda a: check_null_terminated(a, P0, 1, URO, limit=0), errno.EINVAL),
    (lambda a: UserPtr(-8, np.uint8), errno.EFAULT),
    (lambda a: UserPtr(P0, np.uint8).get_as_slice(a, -1), errno.EINVAL),
    (lambda a: UserPtr(P0, np.uint8).get_as_slice(a, 1.5), errno.EINVAL),  # type: ignore[arg-type]
    (lambda a: copy_from_user("space", P0, 4), errno.EINVAL),  # type: ignore[arg-type]
])
def test_bad_arguments_are_errno_errors_and_touch_nothing(call: object, errno_: int) -> None:
    a = make()
    before = (a.frames.live(), a.page_table.walk().raw.tolist())
    with pytest.raises(UserMemoryError) as e:
        call(a)  # type: ignore[operator]
    assert code(e) == errno_
    assert (a.frames.live(), a.page_table.walk().raw.tolist()) == before


SPACE = make()
GRANTED = {P0: True, P1: True, P2: False, P3: False}         # pages readable by a user pointer


@settings(max_examples=300, deadline=None)
@given(start=st.integers(P0 - 0x800, P3 + 0x1800), size=st.integers(0, 0x2800))
def test_random_pointers_never_read_ungranted_bytes(start: int, size: int) -> None:
    try:
        data = UserConstPtr(start, np.uint8).get_as_slice(SPACE, size)
    except UserMemoryError as exc:
        assert exc.errno == errno.EFAULT
        pages = range(start & ~0xFFF, start + size, 0x1000)
        assert size and not all(GRANTED.get(p, False) for p in pages)
        return
    assert len(data) == size
    if size:                                                  # zero-length reads touch nothing (Linux rule)
        assert all(GRANTED.get(p, False) for p in range(start & ~0xFFF, start + size, 0x1000))


@pytest.mark.parametrize(("dtype", "value"), [(np.float32, 1e300), ("S3", b"abcdef"), (np.bool_, 5),
                                              (np.float32, "1.5"), (np.uint32, 1.5), (np.uint8, 256),
                                              ("U2", "abc"), (np.float64, None), (np.float64, 10**400),
                                              (np.float32, 1j), (np.float32, np.complex64(1 + 2j))])
def test_values_that_do_not_fit_their_element_are_refused(dtype: object, value: object) -> None:
    """1e300 was stored as inf in a float32, b"abcdef" as b"abc" in S3, 5 as True, "1.5" as a float."""
    a = make()
    before = a.read(P0, 8)
    with pytest.raises(UserMemoryError) as e:
        UserPtr(P0, dtype).set(a, value)
    assert code(e) == errno.EINVAL
    assert a.read(P0, 8) == before
    UserPtr(P0, np.float32).set(a, 1.5)
    assert UserConstPtr(P0, np.float32).get(a) == 1.5


@pytest.mark.parametrize("kind", [",", ",,", "1)", "(", None, object])
def test_element_types_numpy_cannot_parse_are_refused(kind: object) -> None:
    """numpy parses "i4,(2)f8"-like strings with ast.literal_eval, so "," raised a SyntaxError (the long fuzz
    profile found it)."""
    with pytest.raises(UserMemoryError) as e:
        UserConstPtr(P0, kind)
    assert code(e) == errno.EINVAL


def test_user_memory_in_16k_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """uptr pages by the address space's format: a region populates the 16 KiB page holding it, a scan
    takes elements up to a (16 KiB) page, strings cross 16 KiB pages, and a copy checks each 16 KiB page
    once, as the MMU does."""
    a = AddrSpace.new_empty(G16, BASE, 0x1000_0000, ram_base=0x4000_0000, ram_size=4 << 20)
    a.map(BASE, 0x8000, URW, False, Cow())
    check_region(a, BASE + 0x5000, 0x100, 8, URW)
    leaves = a.page_table.walk()
    assert (leaves.va.tolist(), leaves.size.tolist()) == ([BASE + 0x4000], [0x4000])
    copy_to_user(a, BASE + 0x1FFF, b"\1")                    # element 0 of 8 KiB elements is not zero
    assert check_null_terminated(a, BASE, 0x2000, URO) == 1
    assert check_null_terminated(a, BASE + 0x4000, 0x4000, URO) == 0     # one element as large as a page
    with pytest.raises(UserMemoryError) as e:
        check_null_terminated(a, BASE, 0x8000, URO)            # an element larger than a page
    assert code(e) == errno.EINVAL
    copy_to_user(a, BASE + 0x3FFC, b"abcdefgh\0")
    assert UserConstPtr(BASE + 0x3FFC, C_CHAR).get_as_str(a) == "abcdefgh"
    assert copy_from_user(a, BASE + 0x3FF8, 16) == bytes(4) + b"abcdefgh" + bytes(4)
    queried: list[int] = []
    query = a.page_table.query

    def counted(va: int) -> tuple[int, F, PageSize]:
        queried.append(va)
        return query(va)
    monkeypatch.setattr(a.page_table, "query", counted)
    copy_from_user(a, BASE, 0x8000)
    copy_to_user(a, BASE + 0x10, bytes(0x7FF0))
    assert queried == [BASE, BASE + 0x4000, BASE + 0x10, BASE + 0x4000]
    a.destroy()
    assert a.frames.in_use == 0
