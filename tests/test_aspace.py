"""AddrSpace over real RISC-V tables: backends, faults, copy-on-write clones, errors, and a stateful model."""

from __future__ import annotations

import dataclasses
import errno

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, precondition, rule

from pagetable.arch.riscv_sv39 import SV39, SV48, SV57, Satp
from pagetable.arch.riscv_sv39.walk import RiscvOptions, RiscvRules
from pagetable.flags import MappingFlags as F
from pagetable.flags import PageSize
from pagetable.format import Level, PagingFormat
from pagetable.frames import FrameAllocator
from pagetable.mm.aspace import DEFAULT_RAM_SIZE, RISCV_QEMU_VIRT_RAM_BASE, AddrSpace
from pagetable.mm.backends import Alloc, Cow, Linear, Shared, SharedPages
from pagetable.mm.errors import AlreadyExists, BadAddress, InvalidParam, MmError, OutOfMemory, OutOfRange
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.walker import Access, Privilege, Reason, Walker

from .fuzzing import count, fuzz

RAM = 0x8000_0000
BASE, SIZE = 0x1000_0000, 0x1000_0000
RW, RO, RWX = F.READ | F.WRITE | F.USER, F.READ | F.USER, F.READ | F.WRITE | F.EXECUTE
G16 = dataclasses.replace(SV39, name="16K-granule", va_bits=47, levels=(
    Level("PUD", 2, 36, 11, True), Level("PMD", 1, 25, 11, True), Level("PTE", 0, 14, 11, True)))
"""A format with 16 KiB pages: AArch64's 16K-granule shape (2048-entry tables, 16 KiB / 32 MiB / 64 GiB
leaves) over the RISC-V entry codec, whose PPN names any 4 KiB-aligned PA. No MMU walks it, but mm and
uptr reach a format only through the generic PageTable, so every page size they use must be this one."""


def space(fmt: PagingFormat = SV39, ram: int = 32 << 20) -> AddrSpace:
    return AddrSpace.new_empty(fmt, BASE, SIZE, FrameAllocator(PhysMem([(RAM, ram)])))


def mmu(a: AddrSpace) -> Walker:
    """The hardware walker over the space's table (SUM=1 so supervisor checks see user pages too)."""
    return Walker(a.frames.mem, RiscvRules(Satp.for_table(a.fmt, a.page_table_root),
                                           RiscvOptions(sum=True, ad="svadu")))


def test_linear_maps_huge_pages_and_protect_splits_areas_and_entries() -> None:
    a = space()
    a.map_linear(BASE, RAM + (8 << 20), 4 << 20, F.READ | F.WRITE)
    sizes = a.page_table.walk().size.tolist()
    assert sizes == [2 << 20, 2 << 20]                       # huge pages where aligned
    a.protect(BASE + 0x1000, 0x2000, F.READ)
    assert [(x.start - BASE, x.size, x.flags) for x in a.areas()] == [
        (0, 0x1000, F.READ | F.WRITE), (0x1000, 0x2000, F.READ), (0x3000, (4 << 20) - 0x3000, F.READ | F.WRITE)]
    w = mmu(a)
    assert w.translate(BASE + 0x1008, "write").reason == Reason.PERMISSION
    assert w.translate(BASE + 0x3008, "write").pa == RAM + (8 << 20) + 0x3008
    assert w.translate(BASE + 0x1008, "read").pa == RAM + (8 << 20) + 0x1008
    a.unmap(BASE, 4 << 20)
    assert len(a.page_table.walk()) == 0 and list(a.areas()) == []
    assert a.frames.in_use == 1


def test_linear_offset_may_be_negative() -> None:
    a = space()
    a.map_linear(BASE, RAM + SIZE + BASE, 0x2000, F.READ)       # PA above VA: pa_va_offset < 0
    assert a.page_table.query(BASE + 0x1234)[0] == RAM + SIZE + BASE + 0x1234


def test_alloc_eager_and_lazy_read_write_across_pages() -> None:
    a = space()
    before = a.frames.in_use
    a.map_alloc(BASE, 0x3000, RW, populate=True)
    assert a.frames.in_use == before + 3 + 2                    # 3 frames, a level-1 and a level-0 table
    a.map_alloc(BASE + 0x10000, 0x4000, RW, populate=False)
    assert a.frames.in_use == before + 5                        # lazy: nothing yet
    data = bytes(range(256)) * 40
    a.write(BASE + 0x10000 + 0xF00, data)                       # spans three pages
    assert a.read(BASE + 0x10000 + 0xF00, len(data)) == data
    assert a.frames.in_use == before + 5 + 4                    # the write touched four pages
    assert a.read(BASE + 0x13800, 16) == bytes(16)              # zeroed on fault-in


def test_page_fault_handling_lazy_and_repeated() -> None:
    a = space()
    a.map_alloc(BASE, 0x2000, RO, populate=False)
    n = a.frames.in_use
    assert a.handle_page_fault(BASE + 0x10, F.READ)
    assert a.frames.in_use == n + 3                             # frame + two tables
    assert a.handle_page_fault(BASE + 0x10, F.READ)             # repeated fault: no second frame
    assert a.frames.in_use == n + 3
    assert not a.handle_page_fault(BASE + 0x10, F.WRITE)        # area is read-only
    assert not a.handle_page_fault(BASE + 0x5000, F.READ)       # no area
    assert not a.handle_page_fault(0x10, F.READ)                # outside the space


def test_cow_clone_shares_then_copies_on_write() -> None:
    a = space()
    a.map(BASE, 0x2000, RW, False, Cow(BASE))
    a.write(BASE, b"parent")
    frame = a.page_table.query(BASE)[0]
    b = a.try_clone()
    assert a.frames.ref_count(frame) == 2
    for s in (a, b):
        assert s.page_table.query(BASE)[1] == RO                # both sides lost WRITE
        assert s.read(BASE, 6) == b"parent"
    assert mmu(b).translate(BASE, "write", "user").reason == Reason.PERMISSION
    b.write(BASE, b"child!")                                    # count 2 -> copy
    assert b.page_table.query(BASE)[0] != frame and a.frames.ref_count(frame) == 1
    assert a.read(BASE, 6) == b"parent" and b.read(BASE, 6) == b"child!"
    assert a.handle_page_fault(BASE, F.WRITE)                   # count 1 -> WRITE restored in place
    assert a.page_table.query(BASE) == (frame, RW, 0x1000)
    used = a.frames.in_use
    b.destroy()
    a.destroy()
    assert used > 0 and a.frames.in_use == 0


def test_cow_file_backed_and_protect_keeps_shared_pages_read_only() -> None:
    a = space()
    image = b"\x7fELF" + bytes(range(200)) * 30                # 6004 bytes: page 1 is partly zero
    a.map(BASE, 0x3000, RW, False, Cow(BASE, image))
    assert a.read(BASE, 4) == b"\x7fELF"
    assert a.read(BASE + 0x1000, 0x1000) == image[0x1000:] + bytes(0x2000 - len(image))
    assert a.read(BASE + 0x2000, 8) == bytes(8)
    b = a.try_clone()
    a.protect(BASE, 0x3000, RW | F.EXECUTE)                     # making it writable must not unshare
    assert a.page_table.query(BASE)[1] == (RW | F.EXECUTE) & ~F.WRITE
    a.write(BASE, b"X")
    assert b.read(BASE, 4) == b"\x7fELF" and a.read(BASE, 4) == b"XELF"
    b.destroy()
    a.destroy()
    assert a.frames.in_use == 0


@pytest.mark.parametrize("offset", [0x800, 0xFF8, 8, -0x10])
def test_cow_file_image_that_starts_inside_a_page(offset: int) -> None:
    """With `start` not page-aligned, the file bytes before the first page boundary used to read as zeros."""
    a = space()
    image = bytes(range(1, 256)) * 40                          # 10,200 bytes, no zero byte
    a.map(BASE, 0x5000, RW, False, Cow(BASE + offset, image))
    got = a.read(BASE, 0x5000)
    want = bytearray(0x5000)
    lo = max(offset, 0)
    want[lo:offset + len(image)] = image[lo - offset:]
    assert got == bytes(want)
    with pytest.raises(InvalidParam):
        Cow(-1, image)
    with pytest.raises(InvalidParam):
        Cow(BASE, "text")  # type: ignore[arg-type]


def test_shared_pages_are_seen_by_every_space() -> None:
    a = space()
    pages = SharedPages(a.page_table, 2)
    a.map(BASE, 0x2000, RW, False, Shared(BASE, pages))
    b = space_sharing(a)
    b.map(BASE + 0x8000, 0x2000, RW, False, Shared(BASE + 0x8000, pages))
    a.write(BASE + 0x1000, b"hello")
    assert b.read(BASE + 0x9000, 5) == b"hello"
    c = a.try_clone()
    c.write(BASE, b"from c")
    assert a.read(BASE, 6) == b"from c"
    for s in (a, b, c):
        s.destroy()
    pages.close()
    assert a.frames.in_use == 0


@pytest.mark.parametrize("call", [
    lambda a: a.map(float(BASE), 0x1000, RW, False, Cow()),
    lambda a: a.map(BASE, -0x1000, RW, False, Cow()),
    lambda a: a.map(BASE, 0x1000, "rw", False, Cow()),
    lambda a: a.map(BASE, 0x1000, 1 << 9, False, Cow()),
    lambda a: a.map(BASE, 0x1000, RW, 1, Cow()),
    lambda a: a.map(BASE, 0x1000, RW, False, object()),
    lambda a: a.map_linear(BASE, -0x1000, 0x1000, RW),
    lambda a: a.map_alloc(BASE, 0x1000, RW, "yes"),
    lambda a: a.protect(BASE, 4096.0, RO),
    lambda a: a.protect(BASE, 0x1000, None),
    lambda a: a.unmap(BASE + 0.5, 0x1000),
    lambda a: a.read(BASE, -1),
    lambda a: a.write(BASE, "text"),
    lambda a: a.populate_area(BASE, 0x1000, "w"),
    lambda a: a.check_region_access(BASE, (1 << 64), RO),
    lambda a: a.handle_page_fault("0x10000000", F.READ),
    lambda a: a.find_free_area(BASE, 0x1000, "0", BASE + SIZE),
    lambda a: a.find_free_area(BASE, 4096.0, BASE, BASE + SIZE),
    lambda a: a.contains_range(None, 1),
    lambda a: a.copy_mappings_from("kernel"),
    lambda a: AddrSpace.new_empty(SV39, BASE, 1.5),  # type: ignore[arg-type]
])
def test_bad_arguments_are_einval_and_change_nothing(call: object) -> None:
    a = space()
    a.map(BASE, 0x2000, RW, True, Cow())
    a.write(BASE, b"data")
    before = (a.maps(), a.frames.live(), a.page_table.walk().raw.tolist(), a.read(BASE, 4))
    with pytest.raises(InvalidParam) as e:
        call(a)  # type: ignore[operator]
    assert e.value.errno == errno.EINVAL
    assert (a.maps(), a.frames.live(), a.page_table.walk().raw.tolist(), a.read(BASE, 4)) == before


def space_sharing(a: AddrSpace) -> AddrSpace:
    return AddrSpace.new_empty(SV39, BASE, SIZE, a.frames)


def test_errors_carry_errno() -> None:
    a = space()
    with pytest.raises(OutOfRange) as e1:
        a.map_alloc(BASE + SIZE - 0x1000, 0x2000, RW, False)
    assert e1.value.errno == errno.ENOMEM and isinstance(e1.value, OSError)
    with pytest.raises(InvalidParam) as e2:
        a.map_alloc(BASE + 0x10, 0x1000, RW, False)
    assert e2.value.errno == errno.EINVAL
    a.map_alloc(BASE, 0x1000, RO, False)
    with pytest.raises(AlreadyExists) as e3:
        a.map_alloc(BASE, 0x1000, RO, False)
    assert e3.value.errno == errno.EEXIST
    with pytest.raises(BadAddress) as e4:
        a.write(BASE, b"x")                                     # read-only area
    assert e4.value.errno == errno.EFAULT
    with pytest.raises(BadAddress):
        a.read(BASE + 0x800, 0x1000)                            # runs off the area
    assert a.check_region_access(BASE, 0x1000, F.READ) and not a.check_region_access(BASE, 0x1001, F.READ)
    assert not a.check_region_access(BASE, 0x1000, F.WRITE)


def test_out_of_memory_is_enomem_and_leaves_nothing_behind() -> None:
    a = space(ram=64 << 10)                                     # 16 frames
    a.map_alloc(BASE, 0x40000, RW, False)
    with pytest.raises(MmError) as exc:
        a.populate_area(BASE, 0x40000)
    assert exc.value.errno == errno.ENOMEM
    assert a.frames.in_use == 1 and len(a.page_table.walk()) == 0
    with pytest.raises(MmError) as exc:
        a.map_alloc(BASE + 0x100000, 0x40000, RW, True)         # eager: fails inside the backend
    assert exc.value.errno == errno.ENOMEM
    assert a.frames.in_use == 1 and [x.start for x in a.areas()] == [BASE]


def test_unmap_user_areas_copy_mappings_and_maps_listing() -> None:
    kernel = AddrSpace.new_empty(SV39, 0xFFFF_FFC0_0000_0000, 1 << 30, FrameAllocator(PhysMem([(RAM, 8 << 20)])))
    kernel.map_linear(0xFFFF_FFC0_0000_0000, RAM, 2 << 20, F.READ | F.WRITE)
    user = AddrSpace.new_empty(SV39, BASE, SIZE, kernel.frames)
    user.copy_mappings_from(kernel)
    assert user.page_table.query(0xFFFF_FFC0_0000_1000)[0] == RAM + 0x1000
    user.map_alloc(BASE, 0x2000, RW, True)
    user.map_alloc(BASE + 0x4000, 0x1000, F.READ | F.WRITE, True)    # kernel-only area in the user space
    assert user.maps().splitlines() == [
        "10000000-10002000 rw-p 00000000 00:00 0 [alloc]", "10004000-10005000 rw-p 00000000 00:00 0 [alloc]"]
    user.unmap_user_areas()
    assert [x.start for x in user.areas()] == [BASE + 0x4000]
    user.clear_mappings(0xFFFF_FFC0_0000_0000, 1 << 30)
    with pytest.raises(Exception, match="not mapped"):
        user.page_table.query(0xFFFF_FFC0_0000_1000)
    user.destroy()
    assert kernel.page_table.query(0xFFFF_FFC0_0000_1000)[0] == RAM + 0x1000   # kernel tables untouched
    kernel.destroy()
    assert kernel.frames.in_use == 0


# --------------------------------------------------------------------------- stateful model
PAGES = 24          # the model's VA window: BASE .. BASE + 24 pages


class AddrSpaceMachine(RuleBasedStateMachine):
    """Random map/unmap/protect/populate/fault/clone/write sequences on several spaces; after each step the
    hardware walker agrees with the areas and every written byte reads back as COW semantics require."""

    spaces = Bundle("spaces")

    def __init__(self) -> None:
        super().__init__()
        self.frames = FrameAllocator(PhysMem([(RAM, 8 << 20)]))
        self.live: dict[int, tuple[AddrSpace, dict[int, int]]] = {}   # id -> (space, page -> byte value)
        self.fmt: PagingFormat = SV39

    @rule(target=spaces, fmt=st.sampled_from([SV39, SV48, SV57]))
    def new(self, fmt: PagingFormat) -> int:
        s = AddrSpace.new_empty(fmt, BASE, SIZE, self.frames)
        self.live[id(s)] = (s, {})
        return id(s)

    def _get(self, key: int) -> tuple[AddrSpace, dict[int, int]] | None:
        return self.live.get(key)

    @rule(key=spaces, first=st.integers(0, PAGES - 1), n=st.integers(1, 4),
          kind=st.sampled_from(["alloc", "lazy", "cow"]), writable=st.booleans())
    def map(self, key: int, first: int, n: int, kind: str, writable: bool) -> None:
        got = self._get(key)
        if got is None:
            return
        s, data = got
        n = min(n, PAGES - first)
        flags = RW if writable else RO
        start = BASE + first * 0x1000
        try:
            if kind == "cow":
                s.map(start, n * 0x1000, flags, False, Cow(start))
            else:
                s.map_alloc(start, n * 0x1000, flags, kind == "alloc")
        except AlreadyExists:
            return
        for p in range(first, first + n):
            data[p] = 0

    @rule(key=spaces, first=st.integers(0, PAGES - 1), n=st.integers(1, 6))
    def unmap(self, key: int, first: int, n: int) -> None:
        got = self._get(key)
        if got is None:
            return
        s, data = got
        n = min(n, PAGES - first)
        s.unmap(BASE + first * 0x1000, n * 0x1000)
        for p in range(first, first + n):
            data.pop(p, None)

    @rule(key=spaces, first=st.integers(0, PAGES - 1), n=st.integers(1, 6), writable=st.booleans())
    def protect(self, key: int, first: int, n: int, writable: bool) -> None:
        got = self._get(key)
        if got is None:
            return
        n = min(n, PAGES - first)
        got[0].protect(BASE + first * 0x1000, n * 0x1000, RW if writable else RO)

    @rule(key=spaces, page=st.integers(0, PAGES - 1), value=st.integers(1, 255))
    def write(self, key: int, page: int, value: int) -> None:
        got = self._get(key)
        if got is None:
            return
        s, data = got
        va = BASE + page * 0x1000 + 0x123
        if page in data and s.check_region_access(va, 1, F.WRITE):
            s.write(va, bytes([value]))
            data[page] = value
        else:
            with pytest.raises(BadAddress):
                s.write(va, bytes([value]))

    @rule(key=spaces, first=st.integers(0, PAGES - 1), n=st.integers(1, 4), write=st.booleans())
    def populate(self, key: int, first: int, n: int, write: bool) -> None:
        got = self._get(key)
        if got is None:
            return
        s, data = got
        n = min(n, PAGES - first)
        access = F.WRITE if write else F.READ
        start = BASE + first * 0x1000
        if all(p in data for p in range(first, first + n)) and s.check_region_access(start, n * 0x1000, access):
            s.populate_area(start, n * 0x1000, access)
            res = mmu(s).translate_many(start + np.arange(n, dtype=np.uint64) * np.uint64(0x1000),
                                        Access.WRITE if write else Access.READ, Privilege.USER)
            assert res.ok.all()                                     # populated for exactly that access
        else:
            with pytest.raises(BadAddress):
                s.populate_area(start, n * 0x1000, access)

    @rule(key=spaces, page=st.integers(0, PAGES - 1), write=st.booleans())
    def fault(self, key: int, page: int, write: bool) -> None:
        got = self._get(key)
        if got is None:
            return
        s, data = got
        access = F.READ | (F.WRITE if write else F.READ)
        ok = s.handle_page_fault(BASE + page * 0x1000, access)
        assert ok == (page in data and s.check_region_access(BASE + page * 0x1000, 1, access))

    @rule(target=spaces, key=spaces)
    def clone(self, key: int) -> int:
        got = self._get(key)
        if got is None:
            return key
        child = got[0].try_clone()
        self.live[id(child)] = (child, dict(got[1]))
        return id(child)

    @precondition(lambda self: bool(self.live))
    @rule(key=consumes(spaces))
    def drop(self, key: int) -> None:
        got = self.live.pop(key, None)
        if got is not None:
            got[0].destroy()

    @invariant()
    def tables_agree_with_areas_and_data(self) -> None:
        for s, data in self.live.values():
            walker = mmu(s)
            vas = BASE + np.arange(PAGES, dtype=np.uint64) * np.uint64(0x1000)
            res = walker.translate_many(vas, Access.READ, Privilege.USER)
            for p in range(PAGES):
                area = next((a for a in s.areas() if a.contains(BASE + p * 0x1000)), None)
                assert (area is not None) == (p in data)
                if res.reason[p] == Reason.OK:
                    assert area is not None                         # nothing mapped outside areas
                    _, entry_flags, _ = s.page_table.query(BASE + p * 0x1000)
                    assert entry_flags | F.WRITE == area.flags | F.WRITE   # the area's flags (WRITE may wait)
                    wres = walker.translate(BASE + p * 0x1000, "write", "user")
                    if wres.ok:
                        assert area.flags & F.WRITE                 # never writable beyond the area
                        assert s.frames.ref_count(s.page_table.query(BASE + p * 0x1000)[0]) == 1
                if area is not None and area.flags & F.READ:
                    assert s.read(BASE + p * 0x1000 + 0x123, 1) == bytes([data[p]])

    def teardown(self) -> None:
        count("AddrSpace model (30 random steps against a dict)")
        for s, _ in self.live.values():
            s.destroy()
        assert self.frames.in_use == 0, f"{self.frames.in_use} frames leaked"


TestAddrSpaceMachine = AddrSpaceMachine.TestCase
TestAddrSpaceMachine.settings = settings(fuzz(short=60, long=1_000), stateful_step_count=30)


def _mm_state(a: AddrSpace) -> tuple[str, dict[int, int], list[int]]:
    return a.maps(), a.frames.live(), a.page_table.walk(placeholders=True).raw.tolist()


def test_a_populating_map_that_runs_out_of_memory_leaves_no_area() -> None:
    a = space(ram=1 << 20)
    before = _mm_state(a)
    with pytest.raises(OutOfMemory):
        a.map(BASE, 2 << 20, RW, True, Cow())
    assert _mm_state(a) == before


def test_a_read_that_runs_out_of_memory_faults_nothing_in() -> None:
    """Two lazy areas: the first was populated (130 frames) before the second ran out of memory."""
    a = space(ram=1 << 20)
    a.map(BASE, 0x80000, RW, False, Cow())
    a.map(BASE + 0x80000, 0x100000, RW, False, Cow())
    before = _mm_state(a)
    with pytest.raises(OutOfMemory):
        a.read(BASE, 0x180000)
    assert _mm_state(a) == before


def test_a_failed_clone_leaves_the_parent_as_it_was() -> None:
    """try_clone ran out of memory half way, raised a bare NoMemory and left the parent's copy-on-write pages
    read-only."""
    a = space(ram=1 << 20)
    a.map(BASE, 0x4000, RW, False, Cow())
    a.write(BASE, b"x" * 0x4000)
    a.map(BASE + 0x100_0000, 0x80000, RW, True, Alloc(True))
    before = _mm_state(a)
    with pytest.raises(OutOfMemory) as e:
        a.try_clone()
    assert e.value.errno == errno.ENOMEM
    assert _mm_state(a) == before
    a.write(BASE, b"y")                                     # and it still works


def test_flags_the_format_cannot_encode_are_refused_at_map_time() -> None:
    """A lazy write-only area was accepted, and every later fault or write failed with EFAULT."""
    a = space()
    for populate in (False, True):
        with pytest.raises(InvalidParam, match="W=1 with R=0"):
            a.map(BASE, 0x1000, F.WRITE | F.USER, populate, Alloc(False))
    a.map(BASE, 0x1000, RW, True, Alloc(True))
    with pytest.raises(InvalidParam, match="W=1 with R=0"):
        a.protect(BASE, 0x1000, F.WRITE)
    a.map(BASE + 0x10000, 0x4000, F(0), False, Cow())      # no access at all: a fault is refused, not an error
    assert a.handle_page_fault(BASE + 0x10000, F(0)) is False


def test_running_out_of_frames_in_protect_is_enomem() -> None:
    a = space(ram=1 << 20)
    a.map_linear(BASE + 0x20_0000, RAM + 0x20_0000, 2 << 20, RW)      # one 2 MiB leaf
    a.frames.alloc_many(a.frames.total - a.frames.in_use)
    with pytest.raises(OutOfMemory):
        a.protect(BASE + 0x20_1000, 0x1000, RO)             # splitting the leaf needs a table
    with pytest.raises(OutOfMemory):
        a.unmap(BASE + 0x20_1000, 0x1000)


def test_backends_check_their_arguments() -> None:
    a = space()
    with pytest.raises(InvalidParam):
        a.map(BASE, 0x1000, RW, False, Alloc)  # type: ignore[arg-type]   # the class, not a backend
    with pytest.raises(InvalidParam):
        Linear("x")  # type: ignore[arg-type]
    with pytest.raises(InvalidParam):
        Alloc(1)  # type: ignore[arg-type]


# ------------------------------------------------------- page size from the format; RAM where asked
def test_new_empty_makes_ram_at_the_riscv_virt_base_unless_told_otherwise() -> None:
    a = AddrSpace.new_empty(SV39, BASE, SIZE)
    assert (RISCV_QEMU_VIRT_RAM_BASE, DEFAULT_RAM_SIZE) == (0x8000_0000, 64 << 20)
    assert [(r.base, r.size) for r in a.frames.mem.regions] == [(0x8000_0000, 64 << 20)]
    assert a.frames.frame_size == 0x1000 and 0x8000_0000 <= a.page_table_root < 0x8400_0000
    b = AddrSpace.new_empty(SV39, BASE, SIZE, ram_base=0x4000_0000, ram_size=1 << 20)   # another machine's RAM
    assert [(r.base, r.size) for r in b.frames.mem.regions] == [(0x4000_0000, 1 << 20)]
    b.map_alloc(BASE, 0x2000, RW, True)
    b.write(BASE + 0xFF8, b"across a page")
    assert b.read(BASE + 0xFF8, 13) == b"across a page"
    assert all(0x4000_0000 <= pa < 0x4010_0000 for pa in [b.page_table_root, *b.page_table.walk().pa.tolist()])
    for kwargs in ({"ram_base": 0x4000_0800}, {"ram_size": 0x1800}, {"ram_size": 0}, {"ram_base": -1}):
        with pytest.raises(InvalidParam):
            AddrSpace.new_empty(SV39, BASE, SIZE, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidParam, match="not both"):
        AddrSpace.new_empty(SV39, BASE, SIZE, a.frames, ram_base=0x4000_0000)
    b.destroy()
    assert b.frames.in_use == 0


def test_a_format_with_16k_pages_gets_16k_pages_everywhere() -> None:
    """Alignment checks, fault-in, copies, file images, shared pages and free-area search all use the
    format's page size: with a hard-coded 4 KiB each of these goes wrong."""
    a = AddrSpace.new_empty(G16, BASE, SIZE, ram_base=0x4000_0000, ram_size=16 << 20)
    assert a.frames.frame_size == 0x4000 and a.page_table_root % 0x4000 == 0
    for start, size in ((BASE + 0x1000, 0x4000), (BASE, 0x1000)):             # 4 KiB-aligned is not enough
        with pytest.raises(InvalidParam, match="0x4000-byte pages"):
            a.map_alloc(start, size, RW, False)
        with pytest.raises(InvalidParam, match="0x4000-byte pages"):
            a.unmap(start, size)
    with pytest.raises(InvalidParam, match="0x4000-byte pages"):
        a.map_linear(BASE, 0x4000_1000, 0x4000, RW)
    a.map_alloc(BASE, 0x8000, RW, False)
    assert a.frames.in_use == 1                                 # the root
    assert a.handle_page_fault(BASE + 0x5000, F.WRITE)          # the page [BASE + 0x4000, BASE + 0x8000)
    pa, _, size = a.page_table.query(BASE + 0x4000)
    assert size == PageSize.SIZE_16K and a.page_table.query(BASE + 0x7FF8)[0] == pa + 0x3FF8
    assert a.frames.in_use == 4                                 # two tables and one 16 KiB frame
    assert a.page_table.walk().va.tolist() == [BASE + 0x4000]
    a.write(BASE + 0x3FF0, bytes(range(32)))                    # the last 16 bytes of page 0, the first of page 1
    first = a.page_table.query(BASE)[0]
    assert a.frames.mem.read(first + 0x3FF0, 16) == bytes(range(16)) and a.frames.mem.read(pa, 16) == bytes(
        range(16, 32))
    child = a.try_clone()                                       # Alloc pages are copied whole
    assert child.read(BASE + 0x3FF0, 32) == bytes(range(32))
    image = bytes(range(256)) * 80                              # 20 KiB from an unaligned start: 3 pages
    a.map(BASE + 0x10_0000, 0xC000, RO, False, Cow(BASE + 0x10_0100, image))
    assert a.read(BASE + 0x10_0100, len(image)) == image
    a.map_alloc(BASE + 0x30_0000, 0x8000, RW, False)
    a.populate_area(BASE + 0x30_5000, 0x10)                     # the page holding the range, and only it
    assert a.page_table.walk(BASE + 0x30_0000, BASE + 0x30_8000).va.tolist() == [BASE + 0x30_4000]
    pages = SharedPages(a.page_table, 2)
    a.map(BASE + 0x20_0000, 0x8000, RW, False, Shared(BASE + 0x20_0000, pages))
    shared = a.page_table.walk(BASE + 0x20_0000, BASE + 0x20_8000)
    assert shared.pa.tolist() == pages.pas.tolist() and shared.size.tolist() == [0x4000, 0x4000]
    assert a.find_free_area(BASE + 0x9000, 0x4000, BASE, BASE + SIZE) == BASE + 0xC000   # page-aligned
    four_k = FrameAllocator(PhysMem([(0x4000_0000, 1 << 20)]))
    with pytest.raises(InvalidParam, match="0x1000-byte frames"):
        AddrSpace(G16, BASE, SIZE, four_k)                       # a data page must be one frame
    with pytest.raises(InvalidParam, match="0x1000-byte frames"):
        SharedPages(PageTable(G16, four_k.mem, four_k), 1)
    with pytest.raises(InvalidParam):
        AddrSpace.new_empty(G16, BASE + 0x1000, SIZE)
    child.destroy()
    a.destroy()
    pages.close()
    assert a.frames.in_use == 0
