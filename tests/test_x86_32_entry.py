"""x86 32-bit and PAE paging entries: the layouts against the SDM's tables, exact bytes of each entry kind,
round trips, and the refusals (PAs too wide for the entry, PSE-36 without it, XD where there is none).

Intel SDM Vol. 3A, Tables 4-3 to 4-6 (32-bit paging) and 4-7 to 4-11 (PAE paging)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pagetable.arch.x86_64 import (
    CR3_32,
    CR3_PAE,
    PAE,
    PAE_PDE_2M,
    PAE_PTE,
    PAE_TABLE,
    PDE_4M,
    PDE_TABLE32,
    PDPT,
    PDPTE,
    PTE32,
    SPEC,
    SPEC32,
    PaeCodec,
    X86Codec32,
    pat_entries,
    pdpte_reserved,
)
from pagetable.errors import InvalidAddress, InvalidArgument, InvalidFlags, NotAligned
from pagetable.flags import MappingFlags as F
from pagetable.format import EntryCodec, EntryKind
from pagetable.layout import Layout
from pagetable.translation import MemoryType, memory_type_flags

MiB, GiB = 1 << 20, 1 << 30
UC_AT_7 = 0x0007_0406_0607_0406     # IA32_PAT: WB, WT, UC-, WB, WB, WT, UC-, UC (UC only at PA7)
RWX = F.READ | F.WRITE | F.EXECUTE
CODECS: list[EntryCodec] = [SPEC32, PAE, PDPT]          # mypy holds each to the EntryCodec protocol


@pytest.mark.parametrize(("layout", "width", "fields"), [
    # name: (lsb, width), as the SDM's tables give the bit positions
    (CR3_32, 32, {"IGN_2_0": (0, 3), "PWT": (3, 1), "PCD": (4, 1), "IGN_11_5": (5, 7), "ADDR": (12, 20)}),
    (PDE_4M, 32, {"P": (0, 1), "R/W": (1, 1), "U/S": (2, 1), "PWT": (3, 1), "PCD": (4, 1), "A": (5, 1), "D": (6, 1),
                  "PS": (7, 1), "G": (8, 1), "PAT": (12, 1), "ADDR_HI": (13, 8), "RSVD": (21, 1), "ADDR": (22, 10)}),
    (PDE_TABLE32, 32, {"P": (0, 1), "R/W": (1, 1), "U/S": (2, 1), "PWT": (3, 1), "PCD": (4, 1), "A": (5, 1),
                       "PS": (7, 1), "ADDR": (12, 20)}),
    (PTE32, 32, {"P": (0, 1), "R/W": (1, 1), "U/S": (2, 1), "PWT": (3, 1), "PCD": (4, 1), "A": (5, 1), "D": (6, 1),
                 "PAT": (7, 1), "G": (8, 1), "ADDR": (12, 20)}),
    (CR3_PAE, 32, {"IGN_4_0": (0, 5), "ADDR": (5, 27)}),
    (PDPTE, 64, {"P": (0, 1), "RSVD_2_1": (1, 2), "PWT": (3, 1), "PCD": (4, 1), "RSVD_8_5": (5, 4), "ADDR": (12, 40),
                 "RSVD_63_52": (52, 12)}),
    (PAE_PDE_2M, 64, {"P": (0, 1), "R/W": (1, 1), "U/S": (2, 1), "PWT": (3, 1), "PCD": (4, 1), "A": (5, 1),
                      "D": (6, 1), "PS": (7, 1), "G": (8, 1), "PAT": (12, 1), "RSVD": (13, 8), "ADDR": (21, 31),
                      "RSVD_62_52": (52, 11), "XD": (63, 1)}),
    (PAE_TABLE, 64, {"P": (0, 1), "R/W": (1, 1), "U/S": (2, 1), "PWT": (3, 1), "PCD": (4, 1), "A": (5, 1),
                     "PS": (7, 1), "ADDR": (12, 40), "RSVD_62_52": (52, 11), "XD": (63, 1)}),
    (PAE_PTE, 64, {"P": (0, 1), "R/W": (1, 1), "U/S": (2, 1), "PWT": (3, 1), "PCD": (4, 1), "A": (5, 1), "D": (6, 1),
                   "PAT": (7, 1), "G": (8, 1), "ADDR": (12, 40), "RSVD_62_52": (52, 11), "XD": (63, 1)}),
])
def test_layouts_follow_the_sdm_tables(layout: Layout, width: int, fields: dict[str, tuple[int, int]]) -> None:
    assert layout.width == width
    assert {f.name: (f.lsb, f.width) for f in layout.fields} == fields


def test_layout_for_names_each_entry_kind() -> None:
    assert SPEC32.layout_for(EntryKind.TABLE, 4 * MiB) is PDE_TABLE32
    assert SPEC32.layout_for(EntryKind.BLOCK, 4 * MiB) is PDE_4M
    assert SPEC32.layout_for(EntryKind.PAGE, 4096) is PTE32
    assert PAE.layout_for(EntryKind.TABLE, 2 * MiB) is PAE_TABLE
    assert PAE.layout_for(EntryKind.BLOCK, 2 * MiB) is PAE_PDE_2M
    assert PAE.layout_for(EntryKind.PAGE, 4096) is PAE_PTE
    assert PDPT.layout_for(EntryKind.TABLE, GiB) is PDPTE


def test_a_4k_pte_with_every_flag() -> None:
    """P|R/W|PWT|PCD|PAT(7)|G: UC through PAT index 7; then a user page, UC- through PCD (PA2)."""
    codec = X86Codec32(pat=UC_AT_7, global_kernel=True)
    raw = codec.new_page(0xFFFF_F000, RWX | F.DEVICE, False)
    assert raw == 0xFFFF_F19B
    assert raw.to_bytes(4, "little") == b"\x9b\xf1\xff\xff"
    assert PTE32.to_bytes(P=1, **{"R/W": 1}, PWT=1, PCD=1, PAT=1, G=1, ADDR=0xFFFFF) == b"\x9b\xf1\xff\xff"
    assert codec.memory_type_np(raw, False) == MemoryType.UC
    assert codec.flags_np(raw, False) == RWX | F.DEVICE
    assert codec.paddr_np(raw, False) == 0xFFFF_F000
    user = codec.new_page(0x1234_5000, RWX | F.USER | F.UNCACHED, False)
    assert user == 0x1234_5017                                   # P|R/W|U/S|PCD, no G for a user page
    assert codec.memory_type_np(user, False) == MemoryType.UC_MINUS
    assert codec.flags_np(user, False) == RWX | F.USER | F.UNCACHED
    assert SPEC32.new_page(0x7000, F(0), False) == 0x7000       # a not-present placeholder keeps the address


def test_a_4m_pde_with_pat_and_pse36_address_bits() -> None:
    """PA 0xAB_4040_0000: bits 31:22 in place, 39:32 (0xAB) in bits 20:13; PAT at bit 12 with PCD|PWT: UC."""
    codec = X86Codec32(pat=UC_AT_7)
    raw = codec.new_page(0xAB_4040_0000, RWX | F.DEVICE, True)
    assert raw == 0x4055_709B                                    # 0x4040_0000 | 0xAB << 13 | PAT | PS | 0x1B
    assert raw == PDE_4M.build(P=1, **{"R/W": 1}, PWT=1, PCD=1, PS=1, PAT=1, ADDR_HI=0xAB, ADDR=0x101)
    assert codec.paddr_np(raw, True) == 0xAB_4040_0000
    assert codec.memory_type_np(raw, True) == MemoryType.UC
    assert codec.flags_np(raw, True) == RWX | F.DEVICE
    assert bool(codec.is_leaf_np(raw, False)) and not codec.is_table_np(raw, False)
    column = codec.new_page_np(np.array([0xAB_4040_0000, 0x40_0000], dtype=np.uint64), RWX | F.DEVICE, True)
    assert column.tolist() == [0x4055_709B, 0x0040_109B]
    assert codec.paddr_np(column, True).tolist() == [0xAB_4040_0000, 0x40_0000]
    moved = codec.with_paddr_np(column, np.array([0x12_00C0_0000, 0xFFC0_0000], dtype=np.uint64), True)
    assert moved.tolist() == [0x00C2_509B, 0xFFC0_109B]          # 0x12 << 13 = 0x24000; attributes kept
    assert SPEC32.new_page(0x1_0000_0000, F(0), True) == 0x2080  # a placeholder keeps PS (and PSE-36 bits)
    assert SPEC32.paddr_np(0x2080, True) == 0x1_0000_0000


def test_a_pde_that_references_a_page_table_and_cr3() -> None:
    raw = SPEC32.new_table(0xFFFF_F000)
    assert raw == 0xFFFF_F007                                    # P|R/W|U/S: the PTEs decide
    assert bool(SPEC32.is_table_np(raw, False)) and not SPEC32.is_leaf_np(raw, False)
    assert SPEC32.paddr_np(raw, True) == 0xFFFF_F000             # PS=0: bits 21:12 are address bits
    assert SPEC32.fit_pointer(raw, SPEC32.pointer_needs(SPEC32.new_page(0, F.READ | F.EXECUTE, False))) == 0xFFFF_F001
    assert CR3_32.build(ADDR=0x12345, PCD=1) == 0x1234_5010
    assert CR3_32.parse(0x1234_5018)["ADDR"] == 0x12345 and CR3_32.parse(0x1234_5018)["PWT"] == 1
    assert CR3_PAE.build(ADDR=0x1234_5660 >> 5) == 0x1234_5660   # the PDPT: 32-byte aligned, below 4 GiB


def test_with_cr4_pse_clear_ps_is_ignored() -> None:
    """CR4.PSE=0: a PDE with PS=1 references a page table (bits 31:12), and no 4 MiB page is encoded."""
    codec = X86Codec32(pse=False)
    raw = 0x0123_4081                                            # P and PS
    assert bool(codec.is_table_np(raw, False)) and not codec.is_leaf_np(raw, False)
    assert codec.paddr_np(raw, True) == 0x0123_4000
    assert bool(SPEC32.is_leaf_np(raw, False)) and SPEC32.paddr_np(raw, True) == 0x0100_0000 | 0x1A << 32
    with pytest.raises(InvalidFlags, match=r"CR4\.PSE=0 has no 4 MiB pages"):
        codec.new_page(0x40_0000, RWX, True)


def test_pae_pdpte_bytes_and_each_reserved_bit_rule() -> None:
    raw = PDPT.new_table(0xF_2345_6000)
    assert raw == 0xF_2345_6001                                  # P and the address; no R/W, U/S, XD
    assert bool(PDPT.is_table_np(raw, False)) and not PDPT.is_leaf_np(raw, False)
    assert PDPT.paddr_np(raw, True) == 0xF_2345_6000 and PDPT.flags_np(raw, True) == 0
    assert not PDPT.pointer_rights and PDPT.fit_pointer(raw, 0x7) == raw
    assert pdpte_reserved(raw, 36) == 0
    for bit in (1, 2, 5, 6, 7, 8, *range(52, 64)):               # 2:1, 8:5 and 63:52 whatever MAXPHYADDR
        assert pdpte_reserved(raw | 1 << bit, 52) == 1 << bit
        assert pdpte_reserved(1 << bit, 52) == 0                 # only a present PDPTE is checked
    for bit in (0, 3, 4, *range(9, 12)):                         # P, PWT, PCD, ignored 11:9
        assert pdpte_reserved(raw | 1 << bit, 36) == 0
    assert pdpte_reserved(raw | 1 << 36, 36) == 1 << 36          # an address bit at MAXPHYADDR
    assert pdpte_reserved(raw | 1 << 51, 36) == 1 << 51 and pdpte_reserved(raw | 1 << 51, 52) == 0
    assert pdpte_reserved(raw, 32) == 0xF_0000_0000              # address bits 35:32 with MAXPHYADDR 32
    column = np.array([raw, raw | 0x46, 0x46], dtype=np.uint64)
    assert pdpte_reserved(column, 36).tolist() == [0, 0x46, 0]
    with pytest.raises(InvalidArgument, match="maxphyaddr"):
        pdpte_reserved(raw, 31)
    with pytest.raises(InvalidFlags, match="no 1 GiB pages"):
        PDPT.new_page(0, F.READ, True)


def test_pae_pde_and_pte_are_4_level_pagings_bits() -> None:
    """A 2 MiB PDE with XD (EFER.NXE=1), PAT at bit 12; a PTE with PAT at bit 7; a PDE to a page table."""
    raw = PAE.new_page(0xF_FFE0_0000, F.READ | F.WRITE, True)
    assert raw == 0x8000_000F_FFE0_0083                          # XD | address | PS | R/W | P
    assert raw == PAE_PDE_2M.build(P=1, **{"R/W": 1}, PS=1, ADDR=0xF_FFE0_0000 >> 21, XD=1)
    assert raw.to_bytes(8, "little") == bytes.fromhex("8300e0ff0f000080")
    assert PAE.flags_np(raw, True) == F.READ | F.WRITE and PAE.paddr_np(raw, True) == 0xF_FFE0_0000
    uc = PaeCodec(pat=UC_AT_7)
    assert uc.new_page(0x5000, F.READ | F.EXECUTE | F.DEVICE, False) == 0x5099    # P|PWT|PCD|PAT(7)
    assert uc.new_page(0x20_0000, F.READ | F.EXECUTE | F.DEVICE, True) == 0x20_1099
    assert PAE.new_table(0x3000) == 0x3007
    with pytest.raises(InvalidFlags, match="NXE"):
        PaeCodec(nxe=False).new_page(0, F.READ, True)


FLAGS32 = st.builds(lambda w, u, mt: F.READ | F.EXECUTE | (F.WRITE if w else 0) | (F.USER if u else 0) | mt,
                    st.booleans(), st.booleans(), st.sampled_from([F(0), F.DEVICE, F.UNCACHED]))
FLAGS64 = st.builds(lambda f, x: f if x else f & ~F.EXECUTE, FLAGS32, st.booleans())


@given(FLAGS32, st.integers(0, (1 << 40) - 1), st.booleans(), st.booleans())
def test_32_bit_flags_and_address_round_trip(flags: F, pa: int, huge: bool, global_kernel: bool) -> None:
    pa &= ~(4 * MiB - 1) if huge else 0xFFFF_F000
    codec = X86Codec32(global_kernel=global_kernel)
    raw = codec.new_page(pa, flags, huge)
    assert raw < 1 << 32
    assert codec.flags_np(raw, huge) == flags and codec.paddr_np(raw, huge) == pa
    if huge:
        assert PDE_4M.get(raw, "ADDR_HI") == pa >> 32 and PDE_4M.get(raw, "ADDR") == (pa >> 22) & 0x3FF
    assert bool(codec.is_leaf_np(raw, not huge)) and not codec.is_table_np(raw, not huge)
    column = codec.new_page_np(np.array([pa], dtype=np.uint64), flags, huge)
    assert column.tolist() == [raw]
    assert codec.flags_np(column, huge).tolist() == [flags] and codec.paddr_np(column, huge).tolist() == [pa]
    other = np.array([pa ^ (4 * MiB if huge else 0x1000)], dtype=np.uint64)
    moved = codec.with_paddr_np(column, other, huge)
    assert codec.paddr_np(moved, huge).tolist() == other.tolist() and codec.flags_np(moved, huge).tolist() == [flags]


@given(FLAGS64, st.integers(0, (1 << 52) - 1), st.booleans())
def test_pae_flags_and_address_round_trip(flags: F, pa: int, huge: bool) -> None:
    pa &= ~(2 * MiB - 1) if huge else ~0xFFF
    raw = PAE.new_page(pa, flags, huge)
    assert PAE.flags_np(raw, huge) == flags and PAE.paddr_np(raw, huge) == pa
    assert raw == SPEC.new_page(pa, flags, huge)                 # 4-level paging's PD and PT bits
    assert (PAE_PDE_2M if huge else PAE_PTE).get(raw, "RSVD_62_52") == 0


def test_refusals_name_the_limit() -> None:
    with pytest.raises(InvalidAddress, match="32-bit physical address"):
        SPEC32.new_page(1 << 32, RWX, False)
    with pytest.raises(InvalidAddress, match="32-bit physical address"):
        SPEC32.new_table(0x1_0000_0000)
    with pytest.raises(InvalidAddress, match="32-bit physical address"):
        SPEC32.new_page_np(np.array([0x1000, 1 << 32], dtype=np.uint64), RWX, False)
    with pytest.raises(InvalidAddress, match="32-bit physical address"):
        SPEC32.with_paddr_np(np.array([0x7], dtype=np.uint64), np.array([1 << 32], dtype=np.uint64), True)
    with pytest.raises(InvalidAddress, match="36-bit physical address"):
        X86Codec32(maxphyaddr=36).new_page(1 << 36, RWX, True)
    assert X86Codec32(maxphyaddr=36).new_page((1 << 36) - 4 * MiB, RWX, True) == 0xFFC1_E083
    with pytest.raises(InvalidAddress, match="40-bit physical address"):
        X86Codec32(maxphyaddr=52).new_page(1 << 40, RWX, True)
    with pytest.raises(InvalidAddress, match="40-bit physical address"):
        SPEC32.new_page_np(np.array([1 << 40], dtype=np.uint64), RWX, True)
    with pytest.raises(InvalidAddress, match="needs PSE-36"):
        X86Codec32(maxphyaddr=32).new_page(1 << 32, RWX, True)
    with pytest.raises(InvalidFlags, match=r"CR4\.PSE=0"):
        X86Codec32(pse=False).new_page(1 << 32, RWX, True)
    for flags in (F.READ, F.READ | F.WRITE, F.READ | F.USER | F.DEVICE):
        with pytest.raises(InvalidFlags, match="no XD bit"):
            SPEC32.new_page(0, flags, False)
    with pytest.raises(InvalidFlags, match="always readable"):
        SPEC32.new_page(0, F.EXECUTE, False)
    with pytest.raises(NotAligned, match="4 MiB"):
        SPEC32.new_page(0x20_0000, RWX, True)
    with pytest.raises(InvalidArgument, match="maxphyaddr"):
        X86Codec32(maxphyaddr=31)


def test_demote_moves_the_pat_bit_and_refuses_a_page_above_4_gib() -> None:
    codec = X86Codec32(pat=UC_AT_7)
    raw = codec.new_page(0xFFC0_0000, RWX | F.DEVICE, True)
    child = codec.demote(raw, False)
    assert child == 0xFFC0_009B                                  # PS gone, PAT at bit 7
    assert codec.with_paddr_np(np.array([child], dtype=np.uint64), np.array([0xFFC0_1000], dtype=np.uint64),
                               False).tolist() == [0xFFC0_109B]
    assert codec.memory_type_np(child, False) == MemoryType.UC
    with pytest.raises(InvalidAddress, match="0x100000000 is above 4 GiB"):
        codec.demote(codec.new_page(1 << 32, RWX, True), False)


def test_letters_follow_linux_x86_ptdump() -> None:
    assert SPEC32.letters(SPEC32.new_page(0, RWX | F.USER | F.DEVICE, True), True) == "USR RW PWT PCD PSE         x "
    assert PDPT.letters(0x1019, False) == "PWT PCD"


@pytest.mark.parametrize("codec", [SPEC32, X86Codec32(pat=0x0001_0405_0600_0701), X86Codec32(pse=False)],
                         ids=["spec", "wc-wt-wp-pat", "no-pse"])
@pytest.mark.parametrize("huge", [False, True])
def test_any_raw_entry_decodes_as_its_fields_say(codec: X86Codec32, huge: bool) -> None:
    """flags_np, memory_type_np and paddr_np against the fields read one by one from the layout, for random
    32-bit entries, on a column and on ints."""
    rng = np.random.default_rng(32)
    raws = rng.integers(0, 1 << 32, 4096, dtype=np.uint64)
    types = pat_entries(codec.pat)
    for raw, flags, memtype, pa in zip(raws.tolist(), codec.flags_np(raws, huge).tolist(),
                                       codec.memory_type_np(raws, huge).tolist(), codec.paddr_np(raws, huge).tolist(),
                                       strict=True):
        large = huge and codec.pse and PDE_4M.extract(raw, "PS")
        layout = PDE_4M if huge else PTE32
        index = layout.extract(raw, "PWT") | layout.extract(raw, "PCD") << 1 | layout.extract(raw, "PAT") << 2
        assert memtype == codec.memory_type_np(raw, huge) == types[index]
        want = F(0)
        if layout.extract(raw, "P"):
            want = F.READ | F.EXECUTE | (F.WRITE if layout.extract(raw, "R/W") else F(0)) | \
                (F.USER if layout.extract(raw, "U/S") else F(0)) | F(memory_type_flags(int(types[index])))
        assert flags == codec.flags_np(raw, huge) == want
        want_pa = PDE_4M.extract(raw, "ADDR") << 22 | PDE_4M.extract(raw, "ADDR_HI") << 32 if large else \
            PTE32.extract(raw, "ADDR") << 12
        assert pa == codec.paddr_np(raw, huge) == want_pa
