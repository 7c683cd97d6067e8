"""Fuzz the public library API with random argument values: plausible ones mixed with negative, huge and
wrong-typed ones, in random sequences of calls on PhysMem, FrameAllocator, PageTable, Walker, AddrSpace and
uptr.

The property, for every call: an answer, or an error of the library's own kind (`PagetableError`: an mm or
uptr error carries an errno) that leaves everything exactly as it was (memory, frames, entries, areas).
After a call that succeeds, the frame accounting still adds up."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from pagetable.arch.riscv_sv39 import SV39, SV48, Satp
from pagetable.arch.riscv_sv39.walk import RiscvRules
from pagetable.errors import PagetableError
from pagetable.flags import MappingFlags as F
from pagetable.frames import FrameAllocator
from pagetable.mm import Alloc, Cow, Linear
from pagetable.mm.aspace import AddrSpace
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.uptr import (
    C_CHAR,
    UserConstPtr,
    UserPtr,
    check_null_terminated,
    check_region,
    copy_from_user,
    copy_to_user,
    pointer_to,
)
from pagetable.walker import Walker

from .fuzzing import JUNK, bounded, count, fuzz

RAM, HI = 0x8000_0000, 0x9000_0000
RAM_SIZE = 64 * 4096
UBASE = 0x1000_0000

addr = st.one_of(st.integers(0, 80).map(lambda k: RAM + k * 4096), st.integers(0, RAM_SIZE).map(lambda k: RAM + k),
                 st.integers(0, 64).map(lambda k: UBASE + k * 4096), st.integers(0, 1 << 20).map(lambda k: UBASE + k),
                 st.sampled_from([0, 0x1000, 0x20_0000, HI, 0xFFFF_FFC0_0000_0000, (1 << 64) - 4096]), JUNK)
size = st.one_of(st.sampled_from([0, 1, 8, 4096, 8192, 0x10000, 0x20_0000]), st.integers(-16, 1 << 17), JUNK)
flags = st.one_of(st.sampled_from([F.READ, F.READ | F.WRITE, F.READ | F.WRITE | F.USER, F.EXECUTE, F.USER,
                                   F.READ | F.USER, F(0), F.WRITE, F.DEVICE | F.READ]), st.integers(-1, 130), JUNK)
boolean = st.one_of(st.booleans(), JUNK)
region_size = st.one_of(size.filter(lambda v: not isinstance(v, int) or not (1 << 22) < v < (1 << 40)),
                        st.just(1 << 60))      # RAM of a size a test may really allocate, or far too much
addrs = st.one_of(st.lists(addr.filter(lambda v: isinstance(v, int)), max_size=6).map(
    lambda v: np.array([x & ((1 << 64) - 1) for x in v], dtype=np.uint64)), JUNK)
data = st.one_of(st.binary(max_size=64), JUNK)
elem = st.one_of(st.sampled_from([np.uint8, np.uint32, np.uint64, C_CHAR]), st.just(pointer_to(C_CHAR)), JUNK)


def frames_state(fa: FrameAllocator) -> tuple[bytes, bytes, bytes]:
    return fa._used.tobytes(), fa._count.tobytes(), fa._refs.tobytes()


def accounting(fa: FrameAllocator) -> None:
    live = fa.live()
    assert sum(live.values()) == fa.in_use
    assert all(fa.ref_count(pa) >= 1 for pa in live)


@dataclasses.dataclass
class World:
    """Everything one example works on."""

    mem: PhysMem
    frames: FrameAllocator
    pt: PageTable
    other: PageTable
    walker: Walker
    space: AddrSpace

    @classmethod
    def make(cls) -> World:
        mem = PhysMem([(RAM, RAM_SIZE), (HI, 4 * 4096)])
        frames = FrameAllocator(mem)
        pt = PageTable(SV39, mem, frames)
        pt.map(0x1000, RAM + 40 * 4096, 4096, F.READ | F.WRITE | F.USER)
        space = AddrSpace.new_empty(SV39, UBASE, 1 << 30, frames)
        space.map(UBASE, 0x4000, F.READ | F.WRITE | F.USER, False, Cow())
        space.map_alloc(UBASE + 0x4000, 0x2000, F.READ | F.USER, True)
        space.map_alloc(UBASE + 0x8000, 0x1000, F.READ | F.WRITE, True)           # kernel-only
        return cls(mem, frames, pt, PageTable(SV39, mem, frames), Walker(mem, RiscvRules(
            Satp.for_table(SV39, pt.root_paddr))), space)

    def state(self) -> object:
        return ([r.data.tobytes() for r in self.mem.regions], frames_state(self.frames), self.space.maps(),
                sorted(self.pt._borrowed))


Call = tuple[Callable[..., object], tuple[st.SearchStrategy[Any], ...]]
CALLS: dict[str, Call] = {
    # PhysMem
    "PhysMem.read": (lambda w, pa, n: w.mem.read(pa, n), (addr, size)),
    "PhysMem.write": (lambda w, pa, d: w.mem.write(pa, d), (addr, data)),
    "PhysMem.fill": (lambda w, pa, n, b: w.mem.fill(pa, n, b), (addr, size, st.one_of(st.integers(-2, 300), JUNK))),
    "PhysMem.view": (lambda w, pa, n: w.mem.view(pa, n), (addr, size)),
    "PhysMem.words": (lambda w, pa, n: w.mem.words(pa, n), (addr, size)),
    "PhysMem.read_u64": (lambda w, pa: w.mem.read_u64(pa), (addr,)),
    "PhysMem.write_u64": (lambda w, pa, v: w.mem.write_u64(pa, v), (addr, addr)),
    "PhysMem.read_u64_np": (lambda w, pas: w.mem.read_u64_np(pas), (addrs,)),
    "PhysMem.write_u64_np": (lambda w, pas, v: w.mem.write_u64_np(pas, v), (addrs, addrs)),
    "PhysMem.contains": (lambda w, pa, n: w.mem.contains(pa, n), (addr, size)),
    "PhysMem.contains_np": (lambda w, pas, n: w.mem.contains_np(pas, n), (addrs, size)),
    "PhysMem()": (lambda w, b, n: PhysMem([(b, n)]), (addr, region_size)),
    # FrameAllocator
    "FrameAllocator.alloc": (lambda w, n, a: w.frames.alloc(n, a), (size, st.one_of(st.none(), size))),
    "FrameAllocator.alloc_many": (lambda w, n: w.frames.alloc_many(n), (size,)),
    "FrameAllocator.reserve": (lambda w, pa, n: w.frames.reserve(pa, n), (addr, size)),
    "FrameAllocator.free": (lambda w, pa: w.frames.free(pa), (addr,)),
    "FrameAllocator.add_ref": (lambda w, pa: w.frames.add_ref(pa), (addr,)),
    "FrameAllocator.release": (lambda w, pa: w.frames.release(pa), (addr,)),
    "FrameAllocator.add_ref_many": (lambda w, pas: w.frames.add_ref_many(pas), (addrs,)),
    "FrameAllocator.release_many": (lambda w, pas: w.frames.release_many(pas), (addrs,)),
    "FrameAllocator.ref_count": (lambda w, pa: w.frames.ref_count(pa), (addr,)),
    "FrameAllocator()": (lambda w, b, n, f: FrameAllocator(w.mem, b, n, f), (addr, size, size)),
    # PageTable
    "PageTable.map": (lambda w, va, pa, n, f: w.pt.map(va, pa, n, f), (addr, addr, size, flags)),
    "PageTable.unmap": (lambda w, va: w.pt.unmap(va), (addr,)),
    "PageTable.query": (lambda w, va: w.pt.query(va), (addr,)),
    "PageTable.remap": (lambda w, va, pa, f: w.pt.remap(va, pa, f), (addr, addr, flags)),
    "PageTable.protect": (lambda w, va, f: w.pt.protect(va, f), (addr, flags)),
    "PageTable.lookup": (lambda w, va, d: w.pt.lookup(va, d), (addr, st.one_of(st.none(), st.integers(-1, 4), JUNK))),
    "PageTable.map_region": (lambda w, va, pa, n, f, h: w.pt.map_region(va, pa, n, f, h),
                             (addr, st.one_of(addr, addrs), size, flags, boolean)),
    "PageTable.unmap_region": (lambda w, va, n, m: w.pt.unmap_region(va, n, m), (addr, size, boolean)),
    "PageTable.protect_region": (lambda w, va, n, f, m: w.pt.protect_region(va, n, f, m), (addr, size, flags, boolean)),
    "PageTable.map_pages": (lambda w, vas, pas, f: w.pt.map_pages(vas, pas, f), (addrs, addrs, flags)),
    "PageTable.walk": (lambda w, a, b, p: w.pt.walk(a, b, placeholders=p), (st.one_of(st.none(), addr),
                                                                           st.one_of(st.none(), addr), boolean)),
    "PageTable.copy_from": (lambda w, o, a, n: w.pt.copy_from(w.other if o else w, a, n), (st.booleans(), addr, size)),
    "PageTable.uncopy": (lambda w, a, n: w.pt.uncopy(a, n), (addr, size)),
    "PageTable()": (lambda w, f, r: PageTable(f, w.mem, w.frames, r), (st.one_of(st.sampled_from([SV39, SV48]), JUNK),
                                                                      st.one_of(st.none(), addr))),
    # Walker
    "Walker.translate": (lambda w, va, a, p: w.walker.translate(va, a, p),
                         (addr, st.one_of(st.sampled_from(["read", "fetch", "store", "x"]), JUNK),
                          st.one_of(st.sampled_from(["user", "s"]), JUNK))),
    "Walker.translate_many": (lambda w, vas, a: w.walker.translate_many(vas, a), (addrs, st.one_of(addrs, JUNK))),
    "Walker.mappings": (lambda w, a, b: w.walker.mappings(a, b), (st.one_of(st.none(), addr),
                                                                 st.one_of(st.none(), addr))),
    # AddrSpace
    "AddrSpace.map": (lambda w, a, n, f, p, b: w.space.map(a, n, f, p, b),
                      (addr, size, flags, boolean, st.one_of(st.sampled_from([Cow(), Alloc(False), Alloc(True),
                                                                              Linear(UBASE - RAM)]), JUNK))),
    "AddrSpace.map_linear": (lambda w, va, pa, n, f: w.space.map_linear(va, pa, n, f), (addr, addr, size, flags)),
    "AddrSpace.map_alloc": (lambda w, a, n, f, p: w.space.map_alloc(a, n, f, p), (addr, size, flags, boolean)),
    "AddrSpace.unmap": (lambda w, a, n: w.space.unmap(a, n), (addr, size)),
    "AddrSpace.protect": (lambda w, a, n, f: w.space.protect(a, n, f), (addr, size, flags)),
    "AddrSpace.read": (lambda w, a, n: w.space.read(a, n), (addr, size)),
    "AddrSpace.write": (lambda w, a, d: w.space.write(a, d), (addr, data)),
    "AddrSpace.populate_area": (lambda w, a, n, f: w.space.populate_area(a, n, f), (addr, size, flags)),
    "AddrSpace.check_region_access": (lambda w, a, n, f: w.space.check_region_access(a, n, f), (addr, size, flags)),
    "AddrSpace.handle_page_fault": (lambda w, a, f: w.space.handle_page_fault(a, f), (addr, flags)),
    "AddrSpace.find_free_area": (lambda w, h, n, a, b, al: w.space.find_free_area(h, n, a, b, al),
                                 (addr, size, addr, addr, size)),
    "AddrSpace.try_clone": (lambda w: w.space.try_clone().destroy(), ()),
    # uptr
    "uptr.check_region": (lambda w, a, n, al, f: check_region(w.space, a, n, al, f), (addr, size, size, flags)),
    "uptr.check_null_terminated": (lambda w, a, e, f, lim: check_null_terminated(w.space, a, e, f, lim),
                                   (addr, size, flags, st.one_of(st.integers(-1, 5000), JUNK))),
    "uptr.copy_from_user": (lambda w, a, n: copy_from_user(w.space, a, n), (addr, size)),
    "uptr.copy_to_user": (lambda w, a, d: copy_to_user(w.space, a, d), (addr, data)),
    "UserPtr.get": (lambda w, a, e: UserConstPtr(a, e).get(w.space), (addr, elem)),
    "UserPtr.set": (lambda w, a, e, v: UserPtr(a, e).set(w.space, v), (addr, elem, st.one_of(addr, JUNK))),
    "UserPtr.get_as_slice": (lambda w, a, e, n: UserConstPtr(a, e).get_as_slice(w.space, n), (addr, elem, size)),
    "UserPtr.get_as_str": (lambda w, a, lim: UserConstPtr(a, C_CHAR).get_as_str(w.space, lim),
                           (addr, st.one_of(st.integers(-1, 5000), JUNK))),
    "UserPtr.get_as_null_terminated": (lambda w, a, e: UserConstPtr(a, e).get_as_null_terminated(w.space, 64),
                                       (addr, elem)),
    "UserPtr.write": (lambda w, a, e, v: UserPtr(a, e).write(w.space, v), (addr, elem, st.one_of(addrs, JUNK))),
}


@fuzz(short=150, long=6_000)
@given(st.lists(st.sampled_from(sorted(CALLS)), min_size=1, max_size=8), st.data())
def test_random_calls_answer_or_fail_cleanly(names: list[str], draw: st.DataObject) -> None:
    w = World.make()
    for name in names:
        fn, strategies = CALLS[name]
        values = [draw.draw(s) for s in strategies]
        count(f"api {name}")
        before = w.state()
        with bounded(20, 64 << 20):
            try:
                fn(w, *values)
            except PagetableError:
                assert w.state() == before, f"{name}{tuple(values)} failed and changed the state"
        accounting(w.frames)
