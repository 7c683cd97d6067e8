"""GuestAddrSpace (the axaddrspace API) over Sv39x4 G-stage tables: the axaddrspace test cases
(the axaddrspace crate's own tests) as concrete tests, with the deliberate differences noted."""

from __future__ import annotations

import errno

import numpy as np
import pytest

from pagetable.arch.riscv_sv39 import SV39X4, SV48X4, Hgatp, faults
from pagetable.arch.riscv_sv39.walk import RiscvRules
from pagetable.flags import MappingFlags as F
from pagetable.format import PagingFormat
from pagetable.frames import FrameAllocator
from pagetable.mm import BadAddress, GuestAddrSpace, OutOfRange
from pagetable.physmem import PhysMem
from pagetable.walker import Walker

BASE, SIZE = 0x10000, 0x10000           # the axaddrspace tests' space
RW = F.READ | F.WRITE


def make(fmt: PagingFormat = SV39X4) -> GuestAddrSpace:
    frames = FrameAllocator(PhysMem([(0, 1 << 20)]), 0x80000, 0x80000)   # tables/frames from the upper half
    return GuestAddrSpace.new_empty(fmt, BASE, SIZE, frames)


def test_creation_allocates_one_16k_root_and_destroy_frees_it() -> None:
    g = make()
    assert list(g.frames.live().values()) == [4] and g.page_table_root % 0x4000 == 0
    g.destroy()
    assert g.frames.in_use == 0


def test_contains_range() -> None:
    g = make()
    assert g.contains_range(BASE, SIZE) and g.contains_range(BASE + 0x1000, 0x1000)
    assert not g.contains_range(BASE - 1, 2) and not g.contains_range(BASE + SIZE - 0x1000, 0x2000)


def test_map_linear_and_translate() -> None:
    g = make()
    g.map_linear(0x18000, 0x10000, 0x8000, RW)               # HPA below GPA: a negative offset in Rust
    assert g.translate(0x18000) == 0x10000 and g.translate(0x18123) == 0x10123
    assert g.translate(0x1F000) == 0x17000
    leaf = g.page_table.lookup(0x18000).raw
    assert leaf & (1 << 4)                                    # U=1 on every G-stage leaf
    h = Walker(g.frames.mem, RiscvRules.gstage(Hgatp.for_table(SV39X4, g.page_table_root)))
    assert h.translate(0x18123, "write").pa == 0x10123


def test_map_alloc_populate_and_lazy_and_fault() -> None:
    g = make()
    before = g.frames.in_use
    g.map_alloc(BASE, 0x4000, RW, True)
    pas = [g.translate(BASE + i * 0x1000) for i in range(4)]
    assert None not in pas and len(set(pas)) == 4
    assert all(0x80000 <= p < 0x100000 for p in pas if p is not None)
    assert g.read_buffer(BASE, 0x4000) == bytes(0x4000)       # zeroed frames
    g.map_alloc(BASE + 0x8000, 0x2000, RW, False)
    assert g.translate(BASE + 0x8000) is None                 # lazy
    used = g.frames.in_use
    assert g.handle_page_fault(BASE + 0x8010, F.READ)
    assert g.translate(BASE + 0x8010) is not None and g.frames.in_use == used + 1
    assert g.handle_page_fault(BASE + 0x8010, F.READ) and g.frames.in_use == used + 1   # repeated: no leak
    assert not g.handle_page_fault(BASE + 0xC000, F.READ)     # no area
    assert before < used


def test_unmap_clear_translate() -> None:
    g = make()
    g.map_alloc(BASE, 0x2000, RW, True)
    g.map_linear(BASE + 0x4000, 0x1000, 0x1000, F.READ)
    n = g.frames.in_use
    g.unmap(BASE, 0x1000)
    assert g.translate(BASE) is None and g.frames.in_use == n - 1
    assert g.translate(BASE - 0x1000) is None and g.translate(BASE + SIZE) is None
    with pytest.raises(OutOfRange) as exc:
        g.unmap(BASE + SIZE - 0x1000, 0x2000)
    assert exc.value.errno == errno.ENOMEM
    g.clear()
    assert g.translate(BASE + 0x1000) is None and g.translate(BASE + 0x4000) is None
    assert list(g.areas()) == [] and g.frames.in_use == 4   # only the root is left


def test_translated_byte_buffer() -> None:
    g = make()
    g.map_alloc(BASE, 0x3000, RW, True)
    bufs = g.translated_byte_buffer(BASE + 0x800, 0x1100)
    assert bufs is not None and [b.shape[0] for b in bufs] == [0x800, 0x900]
    pattern = np.arange(0x1100, dtype=np.uint32).astype(np.uint8)
    bufs[0][:] = pattern[:0x800]
    bufs[1][:] = pattern[0x800:]
    assert g.read_buffer(BASE + 0x800, 0x1100) == pattern.tobytes()
    assert g.translated_byte_buffer(BASE + 0x2800, 0x1000) is None     # runs past the area
    assert g.translated_byte_buffer(BASE + 0x5000, 0x10) is None       # unmapped
    g.map_alloc(BASE + 0x3000, 0x1000, RW, False)
    assert g.translated_byte_buffer(BASE + 0x2800, 0x1000) is None     # a lazy hole: None, not a crash
    assert g.translated_byte_buffer(BASE + 0x100, 0) == []


def test_translate_and_get_limit_is_the_bytes_left_in_the_mapping() -> None:
    g = make()
    g.map_alloc(BASE, 0x3000, RW, True)
    assert g.translate_and_get_limit(BASE) == (g.translate(BASE), 0x1000)   # not the area's 0x3000
    page = g.translate(BASE + 0x1000)
    assert page is not None and g.translate_and_get_limit(BASE + 0x1F00) == (page + 0xF00, 0x100)
    g2 = make(SV48X4)
    g2.map_linear(BASE, 0x40000, 0x10000, RW)
    assert g2.translate_and_get_limit(BASE + 0x10) == (0x40010, 0x1000 - 0x10)


def test_memory_accessor() -> None:
    a, b = make(), make()
    for g in (a, b):
        g.map_alloc(BASE, 0x2000, RW, True)
    a.write_obj(BASE + 0x100, 0x1122334455667788, np.uint64)
    b.write_obj(BASE + 0x100, 7, np.uint64)
    assert a.read_obj(BASE + 0x100, np.uint64) == 0x1122334455667788   # two VMs are isolated
    a.write_buffer(BASE + 4096 - 8, bytes(range(16)))                  # across the page boundary
    assert a.read_buffer(BASE + 4096 - 8, 16) == bytes(range(16))
    assert a.read_buffer(BASE, 0) == b""
    a.write_buffer(BASE + 0x1FFF, b"")                                  # empty buffers are fine
    with pytest.raises(BadAddress) as exc:
        a.read_buffer(BASE + 0x1FF8, 16)                                # runs off the mapping
    assert exc.value.errno == errno.EFAULT


def test_gpa_walker_fault_kind_for_a_hole() -> None:
    g = make()
    h = Walker(g.frames.mem, RiscvRules.gstage(Hgatp.for_table(SV39X4, g.page_table_root)))
    assert h.translate(BASE, "read").fault == faults.GUEST_PAGE_FAULT


def test_byte_buffers_keep_copy_on_write_clones_apart() -> None:
    """translated_byte_buffer handed out writable views of frames a clone shares copy-on-write."""
    from pagetable.mm import Cow
    g = make()
    g.map(BASE, 0x2000, RW | F.USER, True, Cow())
    g.write_buffer(BASE + 0x10, b"parent")
    child = g.try_clone()
    views = g.translated_byte_buffer(BASE + 0x10, 6)
    assert views is not None and not any(v.flags.writeable for v in views)
    with pytest.raises(ValueError, match="read-only"):
        views[0][:] = 0
    g.write_buffer(BASE + 0x10, b"PARENT")                  # breaks the sharing, then writes
    assert g.read_buffer(BASE + 0x10, 6) == b"PARENT" and child.read_buffer(BASE + 0x10, 6) == b"parent"
    mine = g.translated_byte_buffer(BASE + 0x10, 6)
    assert mine is not None and all(v.flags.writeable for v in mine)
    child.destroy()
