"""x86-64 paging entries: the layouts against the SDM's entry-format tables, the codec's bytes (the spec
profile and page_table_multiarch's), PAT memory types, round trips, and PageTable on 4- and 5-level paging.

Intel SDM Vol. 3A, Tables 4-15 to 4-20; Table 12-12 (IA32_PAT at reset)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pagetable.arch.x86_64 import (
    ARCEOS,
    PAGING4,
    PAGING5,
    PDE_2M,
    PDPTE_1G,
    PTE_4K,
    SPEC,
    TABLE_ENTRY,
    X86Codec,
    pat_entries,
)
from pagetable.errors import AlreadyMapped, InvalidArgument, InvalidFlags, NotAligned, NotMapped
from pagetable.flags import MappingFlags as F
from pagetable.flags import PageSize
from pagetable.format import EntryKind, PagingFormat
from pagetable.frames import FrameAllocator
from pagetable.layout import Layout
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.translation import MemoryType, memory_type_flags

GiB, MiB = 1 << 30, 1 << 20
UC, WC, WT, WP, WB, UC_MINUS = 0, 1, 4, 5, 6, 7              # IA32_PAT's memory-type encodings


def _pat(*entries: int) -> int:
    """An IA32_PAT value from its entries PA0..PA7."""
    return sum(code << (8 * k) for k, code in enumerate(entries))


UC_AT_7 = _pat(WB, WT, UC_MINUS, WB, WB, WT, UC_MINUS, UC)     # UC only at PA7: PAT index 4 + PCD + PWT


@pytest.mark.parametrize(("layout", "fields"), [
    # name: (lsb, width), as the SDM's tables give the bit positions
    (TABLE_ENTRY, {"P": (0, 1), "R/W": (1, 1), "U/S": (2, 1), "PWT": (3, 1), "PCD": (4, 1), "A": (5, 1),
                   "PS": (7, 1), "ADDR": (12, 40), "XD": (63, 1)}),
    (PDPTE_1G, {"P": (0, 1), "R/W": (1, 1), "U/S": (2, 1), "PWT": (3, 1), "PCD": (4, 1), "A": (5, 1), "D": (6, 1),
                "PS": (7, 1), "G": (8, 1), "PAT": (12, 1), "RSVD": (13, 17), "ADDR": (30, 22), "PK": (59, 4),
                "XD": (63, 1)}),
    (PDE_2M, {"P": (0, 1), "R/W": (1, 1), "U/S": (2, 1), "PWT": (3, 1), "PCD": (4, 1), "A": (5, 1), "D": (6, 1),
              "PS": (7, 1), "G": (8, 1), "PAT": (12, 1), "RSVD": (13, 8), "ADDR": (21, 31), "PK": (59, 4),
              "XD": (63, 1)}),
    (PTE_4K, {"P": (0, 1), "R/W": (1, 1), "U/S": (2, 1), "PWT": (3, 1), "PCD": (4, 1), "A": (5, 1), "D": (6, 1),
              "PAT": (7, 1), "G": (8, 1), "ADDR": (12, 40), "PK": (59, 4), "XD": (63, 1)}),
])
def test_layouts_follow_the_sdm_entry_tables(layout: Layout, fields: dict[str, tuple[int, int]]) -> None:
    assert {f.name: (f.lsb, f.width) for f in layout.fields} == fields


def test_layout_for_names_each_entry_kind_by_the_size_it_maps() -> None:
    assert SPEC.layout_for(EntryKind.TABLE, GiB) is TABLE_ENTRY
    assert SPEC.layout_for(EntryKind.BLOCK, GiB) is PDPTE_1G
    assert SPEC.layout_for(EntryKind.BLOCK, 2 * MiB) is PDE_2M
    assert SPEC.layout_for(EntryKind.PAGE, 4096) is PTE_4K
    for fmt in (PAGING4, PAGING5):        # the same layouts whatever the levels above
        assert [SPEC.layout_for(EntryKind.BLOCK, lv.span) for lv in fmt.levels if lv.leaf][:2] == [PDPTE_1G, PDE_2M]


def test_arceos_reproduces_page_table_multiarch_bytes() -> None:
    """X64PTE's README and tests: READ|WRITE at 0x233000; DEVICE R/W; a 2 MiB R/W page; user R/X."""
    assert ARCEOS.new_page(0x233000, F.READ | F.WRITE, False) == 0x8000_0000_0023_3003
    assert ARCEOS.new_page(0, F.READ | F.WRITE | F.DEVICE, False) == 0x8000_0000_0000_001B
    assert ARCEOS.new_page(0, F.READ | F.WRITE, True) == 0x8000_0000_0000_0083
    assert ARCEOS.new_page(0, F.READ | F.EXECUTE | F.USER, False) == 0x5
    assert ARCEOS.new_page(0x1000, F.WRITE, False) == 0x8000_0000_0000_1003      # READ implied, as the crate
    assert ARCEOS.new_table(0x5000) == 0x5007
    assert ARCEOS.flags_np(0x8000_0000_0000_001B, False) == F.READ | F.WRITE | F.UNCACHED   # DEVICE is lost


def test_spec_bytes_and_memory_types_through_the_reset_pat() -> None:
    """Reset IA32_PAT: index 0 WB, 2 UC- (PCD), 3 UC (PCD|PWT); a 2 MiB page has PS and PAT at bit 12."""
    assert pat_entries(0x0007_0406_0007_0406) == (MemoryType.WB, MemoryType.WT, MemoryType.UC_MINUS, MemoryType.UC,
                                                  MemoryType.WB, MemoryType.WT, MemoryType.UC_MINUS, MemoryType.UC)
    assert SPEC.new_page(0x233000, F.READ | F.WRITE, False) == 0x8000_0000_0023_3003
    assert SPEC.new_page(0, F.READ | F.WRITE | F.DEVICE, False) == 0x8000_0000_0000_001B
    assert SPEC.new_page(0, F.READ | F.WRITE | F.UNCACHED, False) == 0x8000_0000_0000_0013
    assert SPEC.new_page(0x20_0000, F.READ | F.EXECUTE, True) == 0x20_0081
    assert SPEC.memory_type_np(0x13, False) == MemoryType.UC_MINUS
    assert SPEC.memory_type_np(0x1B, False) == MemoryType.UC
    assert SPEC.memory_type_np(0x83 | 1 << 12, True) == MemoryType.WB          # PAT index 4 (bit 12)
    assert SPEC.memory_type_np(0x03 | 1 << 7, False) == MemoryType.WB          # PAT index 4 (bit 7)
    assert X86Codec(global_kernel=True).new_page(0, F.READ, False) == 0x8000_0000_0000_0101
    assert X86Codec(global_kernel=True).new_page(0, F.READ | F.USER, False) == 0x8000_0000_0000_0005
    assert SPEC.new_page(0x7000, F(0), False) == 0x7000                         # a not-present placeholder


def test_a_pat_with_the_type_at_a_high_index_sets_the_pat_bit_where_the_entry_keeps_it() -> None:
    """IA32_PAT with UC only at PA7: a DEVICE PTE has PAT at bit 7, a DEVICE 2 MiB page at bit 12 (bit 7 is
    its PS); both decode as UC, hence DEVICE. UC- stays at PA2 (PCD)."""
    codec = X86Codec(pat=UC_AT_7)
    assert pat_entries(UC_AT_7)[7] == MemoryType.UC and MemoryType.UC not in pat_entries(UC_AT_7)[:7]
    assert codec.new_page(0, F.READ | F.DEVICE, False) == 0x8000_0000_0000_0099           # P|PWT|PCD|PAT(7)
    assert codec.new_page(0, F.READ | F.DEVICE, True) == 0x8000_0000_0000_1099            # P|PWT|PCD|PS|PAT(12)
    for huge in (False, True):
        raw = codec.new_page(0, F.READ | F.DEVICE, huge)
        assert codec.memory_type_np(raw, huge) == MemoryType.UC
        assert codec.flags_np(raw, huge) == F.READ | F.DEVICE
    assert codec.new_page(0, F.READ | F.WRITE | F.UNCACHED, False) == 0x8000_0000_0000_0013
    wc = X86Codec(pat=_pat(WB, WC, UC_MINUS, UC, WB, WT, UC_MINUS, UC))      # Linux's: WC at PA1
    assert wc.memory_type_np(0x9, False) == MemoryType.WC and wc.flags_np(0x9, False) & F.UNCACHED
    assert wc.memory_type_np(0x89, True) == MemoryType.WC          # a 2 MiB page's bit 7 is PS, not PAT


def test_flags_without_an_encoding_are_refused() -> None:
    for flags in (F.WRITE, F.EXECUTE, F.USER, F.WRITE | F.EXECUTE):
        with pytest.raises(InvalidFlags, match="always readable"):
            SPEC.new_page(0, flags, False)
    with pytest.raises(InvalidFlags, match="NXE"):
        X86Codec(nxe=False).new_page(0, F.READ, False)
    assert X86Codec(nxe=False).new_page(0, F.READ | F.EXECUTE, False) == 0x1
    with pytest.raises(InvalidArgument, match="reserved memory type"):
        X86Codec(pat=_pat(WB, WT, 2, UC, WB, WT, UC_MINUS, UC)).new_page(0, F.READ, False)
    with pytest.raises(InvalidFlags, match="no uc entry"):
        X86Codec(pat=_pat(*[WB] * 8)).new_page(0, F.READ | F.DEVICE, False)
    with pytest.raises(NotAligned):
        SPEC.new_page(0x1000, F.READ, True)                  # bit 12 of a huge page is its PAT bit


FLAGS = st.builds(lambda w, x, u, mt: F.READ | (F.WRITE if w else 0) | (F.EXECUTE if x else 0) | (F.USER if u else 0)
                  | mt, st.booleans(), st.booleans(), st.booleans(), st.sampled_from([F(0), F.DEVICE, F.UNCACHED]))


@given(FLAGS, st.integers(0, (1 << 31) - 1), st.booleans())
def test_flags_and_address_round_trip(flags: F, frame: int, huge: bool) -> None:
    pa = frame << (21 if huge else 12) & ((1 << 52) - 1)
    for codec in (SPEC, X86Codec(global_kernel=True)):
        raw = codec.new_page(pa, flags, huge)
        assert codec.flags_np(raw, huge) == flags
        assert codec.paddr_np(raw, huge) == pa
        assert bool(codec.is_leaf_np(raw, not huge)) and not codec.is_table_np(raw, not huge)
        column = codec.new_page_np(np.array([pa], dtype=np.uint64), flags, huge)
        assert column.tolist() == [raw]
        assert codec.flags_np(column, huge).tolist() == [flags]


def test_demote_moves_the_pat_bit_from_bit_12_to_bit_7() -> None:
    codec = X86Codec(pat=UC_AT_7)
    huge = codec.new_page(0x4000_0000, F.READ | F.WRITE | F.DEVICE, True)
    assert huge & (1 << 12) and huge & (1 << 7)               # PAT (bit 12) and PS (bit 7)
    assert codec.demote(huge, True) == huge                   # a 1 GiB page's bits are a 2 MiB page's
    as_4k = codec.demote(huge, False)
    assert as_4k & (1 << 7) and not as_4k & (1 << 12)         # PAT now at bit 7, PS gone
    assert codec.memory_type_np(as_4k, False) == MemoryType.UC
    assert codec.demote(codec.new_page(0x4000_0000, F.READ, True), False) & 0x1FFF == 0x1   # WB: no PAT bit


def _table(fmt: PagingFormat, codec: X86Codec = SPEC) -> tuple[PhysMem, PageTable]:
    mem = PhysMem([(0, 64 * MiB)])
    return mem, PageTable(fmt.with_codec(codec), mem, FrameAllocator(mem, 32 * MiB, 32 * MiB))


def test_page_table_on_4_level_paging_maps_every_page_size_and_splits_keeping_the_pat_bit() -> None:
    _, pt = _table(PAGING4, X86Codec(pat=UC_AT_7))
    pt.map(0x4000_0000, 0x40_0000, 2 * MiB, F.READ | F.WRITE | F.DEVICE)
    pt.map(0x8000_0000, 0, GiB, F.READ)
    pt.map(0x1000, 0x9000, 4096, F.READ | F.USER | F.EXECUTE)
    assert pt.query(0x4000_1234) == (0x40_1234, F.READ | F.WRITE | F.DEVICE, PageSize.SIZE_2M)
    assert pt.query(0x8765_4321) == (0x0765_4321, F.READ, PageSize.SIZE_1G)
    assert pt.query(0x1010) == (0x9010, F.READ | F.USER | F.EXECUTE, PageSize.SIZE_4K)
    pt.protect(0x4000_0000, F.READ | F.DEVICE)                 # still one 2 MiB page
    pt.unmap_region(0x4000_0000, 4096)                         # splits it: 511 PTEs keep UC via PAT at bit 7
    assert pt.query(0x4000_1000) == (0x40_1000, F.READ | F.DEVICE, PageSize.SIZE_4K)
    assert pt.lookup(0x4000_1000).raw == 0x8000_0000_0040_1099       # P|PWT|PCD|PAT(7), XD: as a PTE
    m = pt.walk()
    assert len(m) == 1 + 511 + 1


def test_5_level_paging_shape() -> None:
    assert [lv.arch_level for lv in PAGING5.levels] == [5, 4, 3, 2, 1]
    assert [lv.index_lsb for lv in PAGING5.levels] == [48, 39, 30, 21, 12]
    assert [lv.leaf for lv in PAGING5.levels] == [False, False, True, True, True]
    assert PAGING5.va_bits == 57 and PAGING4.va_bits == 48 and PAGING4.pa_bits == 52
    assert PAGING4.is_canonical(0xFFFF_8000_0000_0000) and not PAGING4.is_canonical(0x0000_8000_0000_0000)
    assert PAGING5.is_canonical(0x00FF_FFFF_FFFF_F000) and not PAGING5.is_canonical(0x0100_0000_0000_0000)
    _, pt = _table(PAGING5)
    pt.map(0x00FF_0000_0000_0000, 0x20_0000, 2 * MiB, F.READ | F.WRITE)
    assert pt.query(0x00FF_0000_0000_0042)[0] == 0x20_0042


def test_letters_follow_linux_x86_ptdump() -> None:
    raw = SPEC.new_page(0, F.READ | F.WRITE | F.USER | F.DEVICE, True)
    assert SPEC.letters(raw, True) == "USR RW PWT PCD PSE         NX"
    assert SPEC.letters(X86Codec(global_kernel=True).new_page(0, F.READ | F.EXECUTE, False), False) == \
        "    ro                 GLB x "


def test_an_entry_with_ps_where_no_page_can_be_is_not_a_page_to_the_table() -> None:
    """A PML4E with PS=1 (reserved: no 512 GiB pages) is neither a table nor a page: query, unmap and
    protect say NotMapped and write nothing; map says AlreadyMapped; walk lists nothing."""
    mem, pt = _table(PAGING4)
    pt.map(0x4000_0000, 0x20_0000, 2 * MiB, F.READ)
    slot = pt.lookup(0x4000_0000, 0)
    mem.write_u64(slot.pa, slot.raw | 1 << 7)
    before = mem.regions[0].data.tobytes()
    for call in (lambda: pt.query(0x4000_0000), lambda: pt.unmap(0x4000_0000),
                 lambda: pt.protect(0x4000_0000, F.READ | F.WRITE)):
        with pytest.raises(NotMapped):
            call()
    with pytest.raises(AlreadyMapped, match="invalid entry"):
        pt.map(0x4020_0000, 0x40_0000, 2 * MiB, F.READ)
    assert len(pt.walk(placeholders=True)) == 0
    assert mem.regions[0].data.tobytes() == before


@pytest.mark.parametrize("codec", [SPEC, ARCEOS, X86Codec(nxe=False), X86Codec(pat=0x0001_0405_0600_0701)],
                         ids=["spec", "arceos", "no-nxe", "wc-wt-wp-pat"])
@pytest.mark.parametrize("huge", [False, True])
def test_flags_and_memory_types_of_any_raw_entry_follow_the_fields(codec: X86Codec, huge: bool) -> None:
    """flags_np and memory_type_np (one table lookup each) against the fields read one by one from the
    layout, for every combination of the bits they depend on, on a column and on ints."""
    layout = PDE_2M if huge else PTE_4K
    rng = np.random.default_rng(7)
    raws = rng.integers(0, 1 << 63, 4096, dtype=np.uint64) | rng.integers(0, 2, 4096, dtype=np.uint64) << np.uint64(63)
    types = pat_entries(codec.pat)
    for raw, got_flags, got_type in zip(raws.tolist(), codec.flags_np(raws, huge).tolist(),
                                        codec.memory_type_np(raws, huge).tolist(), strict=True):
        index = layout.extract(raw, "PWT") | layout.extract(raw, "PCD") << 1 | layout.extract(raw, "PAT") << 2
        assert got_type == codec.memory_type_np(raw, huge) == types[index]
        want = F(0)
        if layout.extract(raw, "P"):
            want = F.READ | (F.WRITE if layout.extract(raw, "R/W") else F(0)) | \
                (F.USER if layout.extract(raw, "U/S") else F(0))
            want |= F.EXECUTE if not codec.nxe or not layout.extract(raw, "XD") else F(0)
            if codec.arceos:
                want |= F.UNCACHED if layout.extract(raw, "PCD") else F(0)
            else:
                want |= F(memory_type_flags(int(types[index])))
        assert got_flags == codec.flags_np(raw, huge) == want
