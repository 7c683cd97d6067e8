"""Intel EPT entries and EPTP against the SDM's format tables (Vol. 3C Tables 29-1 to 29-6, 25-9), the EPT
codec's bytes and refusals (the misconfigurations it must never write), round trips, and PageTable on 4- and
5-level EPT."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pagetable.arch.x86_64 import EPT4, EPT5, EPT_PDE_2M, EPT_PDPTE_1G, EPT_PTE_4K, EPT_TABLE, EPTP, EptCodec
from pagetable.errors import InvalidFlags, NotAligned
from pagetable.flags import MappingFlags as F
from pagetable.flags import PageSize
from pagetable.format import EntryKind
from pagetable.frames import FrameAllocator
from pagetable.layout import Layout
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.translation import MemoryType

MiB, GiB = 1 << 20, 1 << 30
RIGHTS = {"R": (0, 1), "W": (1, 1), "X": (2, 1)}


@pytest.mark.parametrize(("layout", "fields"), [
    (EPT_TABLE, {**RIGHTS, "RSVD": (3, 5), "A": (8, 1), "XU": (10, 1), "ADDR": (12, 40)}),
    (EPT_PDPTE_1G, {**RIGHTS, "MT": (3, 3), "IPAT": (6, 1), "PS": (7, 1), "A": (8, 1), "D": (9, 1), "XU": (10, 1),
                    "RSVD": (12, 18), "ADDR": (30, 22), "SVE": (63, 1)}),
    (EPT_PDE_2M, {**RIGHTS, "MT": (3, 3), "IPAT": (6, 1), "PS": (7, 1), "A": (8, 1), "D": (9, 1), "XU": (10, 1),
                  "RSVD": (12, 9), "ADDR": (21, 31), "SVE": (63, 1)}),
    (EPT_PTE_4K, {**RIGHTS, "MT": (3, 3), "IPAT": (6, 1), "A": (8, 1), "D": (9, 1), "XU": (10, 1),
                  "ADDR": (12, 40), "SVE": (63, 1)}),
    (EPTP, {"MT": (0, 3), "WALK": (3, 3), "AD": (6, 1), "SSS": (7, 1), "ADDR": (12, 40)}),
])
def test_layouts_follow_the_sdm_tables(layout: Layout, fields: dict[str, tuple[int, int]]) -> None:
    assert {f.name: (f.lsb, f.width) for f in layout.fields} == fields


def test_codec_bytes() -> None:
    ept = EptCodec()
    assert ept.new_page(0x1234_5000, F.READ | F.WRITE | F.EXECUTE, False) == 0x1234_5037     # RWX, WB (6 << 3)
    assert ept.new_page(0x20_0000, F.READ, True) == 0x20_00B1                               # R, WB, bit 7
    assert ept.new_page(0, F.READ | F.WRITE | F.DEVICE, False) == 0x3                       # UC (0)
    assert ept.new_page(0, F.READ | F.UNCACHED, False) == 0x9                               # WC (1)
    assert ept.new_page(0, F.EXECUTE, False) == 0x34                                        # execute-only
    assert ept.new_page(0x5000, F(0), False) == 0x5000                                      # not present
    assert ept.new_table(0x7000) == 0x7007
    mbec = EptCodec(mbec=True)
    assert mbec.new_page(0, F.READ | F.EXECUTE | F.USER, False) == 0x431                   # XU, not X
    assert mbec.new_page(0, F.READ | F.EXECUTE, False) == 0x35
    assert mbec.new_table(0) == 0x407
    assert ept.layout_for(EntryKind.BLOCK, 2 * MiB) is EPT_PDE_2M and ept.layout_for(EntryKind.TABLE, GiB) is EPT_TABLE


def test_misconfigurations_are_never_written() -> None:
    with pytest.raises(InvalidFlags, match="misconfiguration"):
        EptCodec().new_page(0, F.WRITE, False)
    with pytest.raises(InvalidFlags, match="execute-only"):
        EptCodec(execute_only=False).new_page(0, F.EXECUTE, False)
    with pytest.raises(NotAligned):
        EptCodec().new_page(0x1000, F.READ, True)


def test_memory_types_decode_and_reserved_ones_have_none() -> None:
    ept = EptCodec()
    raws = np.array([r << 3 | 1 for r in range(8)], dtype=np.uint64)
    assert ept.memory_type_np(raws, False).tolist() == [MemoryType.UC, MemoryType.WC, MemoryType.NONE, MemoryType.NONE,
                                                        MemoryType.WT, MemoryType.WP, MemoryType.WB, MemoryType.NONE]
    assert EPTP.format(0x5E).count("WB") == 1 and EPTP.get(0x5E, "WALK") == 3 and EPTP.get(0x5E, "AD") == 1


FLAGS = st.builds(lambda w, x, mt: F.READ | (F.WRITE if w else 0) | (F.EXECUTE if x else 0) | mt, st.booleans(),
                  st.booleans(), st.sampled_from([F(0), F.DEVICE, F.UNCACHED])) | st.sampled_from([F.EXECUTE])


@given(FLAGS, st.integers(0, (1 << 31) - 1), st.booleans(), st.booleans())
def test_flags_and_address_round_trip(flags: F, frame: int, huge: bool, mbec: bool) -> None:
    codec = EptCodec(mbec=mbec)
    pa = frame << (21 if huge else 12) & ((1 << 52) - 1)
    for f in (flags, flags | F.USER) if mbec and flags & F.EXECUTE else (flags,):
        raw = codec.new_page(pa, f, huge)
        assert codec.flags_np(raw, huge) == f
        assert codec.paddr_np(raw, huge) == pa
        assert bool(codec.is_leaf_np(raw, not huge)) and not codec.is_table_np(raw, not huge)
        assert codec.new_page_np(np.array([pa], dtype=np.uint64), f, huge).tolist() == [raw]


def test_page_table_on_4_and_5_level_ept() -> None:
    for fmt, gpa in ((EPT4, 0x4000_0000), (EPT5, 0x00AB_0000_0000_0000)):
        mem = PhysMem([(0, 64 * MiB)])
        pt = PageTable(fmt, mem, FrameAllocator(mem, 32 * MiB, 32 * MiB))
        pt.map(gpa, 0x20_0000, 2 * MiB, F.READ | F.WRITE | F.DEVICE)
        pt.map(gpa + GiB, 0x1000, 4096, F.EXECUTE)
        assert pt.query(gpa + 5) == (0x20_0005, F.READ | F.WRITE | F.DEVICE, PageSize.SIZE_2M)
        assert pt.query(gpa + GiB) == (0x1000, F.EXECUTE, PageSize.SIZE_4K)
        pt.unmap_region(gpa, 4096)                            # splits the 2 MiB page into EPT PTEs
        assert pt.query(gpa + 4096) == (0x20_1000, F.READ | F.WRITE | F.DEVICE, PageSize.SIZE_4K)
        assert not pt.lookup(gpa + 4096).raw & (1 << 7)
    assert not EPT4.is_canonical(1 << 48) and EPT4.is_canonical((1 << 48) - 1)       # zero-extended GPAs
