"""AArch64 layouts: every descriptor and register layout against the Arm ARM's bit positions, the 52-bit OA
forms round-tripping, the TG0/TG1 granule encodings, MAIR Attr decoding, and `explain`.

Arm ARM DDI 0487 M.a.a: D8.3.1 (Tables D8-48, D8-50 to D8-55), D24.2 (the register descriptions)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pagetable.arch.aarch64 import (
    HCR_EL2,
    ID_AA64MMFR0_EL1,
    INVALID,
    LINUX_MAIR_EL1,
    MAIR_EL1,
    MAIR_EL2,
    SCTLR_EL1,
    SCTLR_EL2,
    TCR_EL1,
    TCR_EL2,
    TTBR0_EL1,
    TTBR1_EL2,
    VTCR_EL2,
    VTTBR_EL2,
    Granule,
    OAForm,
    Stage,
    block_levels,
    descriptor_kind,
    descriptor_layout,
    explain,
    explain_descriptor,
    mair_attr,
    mair_attrs,
    output_address,
    pa_bits,
    pa_range,
    stage1_start_level,
    stage2_start_level,
    table_base,
    table_levels,
    tg0_granule,
    tg1_granule,
    with_output_address,
)
from pagetable.arch.aarch64.explain import explain_ttbr
from pagetable.errors import InvalidArgument
from pagetable.format import EntryKind
from pagetable.layout import Layout
from pagetable.translation import MemoryType as M

S1, S2 = Stage.STAGE1, Stage.STAGE2
K4, K16, K64 = Granule.K4, Granule.K16, Granule.K64
OA48, LPA, LPA2 = OAForm.OA48, OAForm.LPA, OAForm.LPA2
TABLE, BLOCK, PAGE = EntryKind.TABLE, EntryKind.BLOCK, EntryKind.PAGE

# ---- the manual's bit positions, name: (lsb, width) -------------------------------------------------
# Table D8-52: stage 1 Block and Page descriptor attributes (bits 9:8 are SH unless LPA2 makes them OA)
S1_LEAF = {"VALID": (0, 1), "TYPE": (1, 1), "AttrIndx": (2, 3), "NS": (5, 1), "AP": (6, 2), "AF": (10, 1),
           "nG": (11, 1), "GP": (50, 1), "DBM": (51, 1), "Contiguous": (52, 1), "PXN": (53, 1), "UXN": (54, 1),
           "SW": (55, 4), "PBHA": (59, 4), "SW63": (63, 1)}
# Table D8-53: stage 2 Block and Page descriptor attributes
S2_LEAF = {"VALID": (0, 1), "TYPE": (1, 1), "MemAttr": (2, 4), "S2AP": (6, 2), "AF": (10, 1), "FnXS": (11, 1),
           "DBM": (51, 1), "Contiguous": (52, 1), "XN": (53, 2), "SW": (55, 4), "PBHA": (59, 4)}
# Tables D8-50 and D8-51: Table descriptors (IGNORED bits 58:51 and 11:2, less 9:8 with LPA2)
S1_TABLE = {"VALID": (0, 1), "TYPE": (1, 1), "IGN51": (51, 8), "PXNTable": (59, 1), "UXNTable": (60, 1),
            "APTable": (61, 2), "NSTable": (63, 1)}
S2_TABLE = {"VALID": (0, 1), "TYPE": (1, 1), "IGN51": (51, 8)}
SH = {"SH": (8, 2)}
IGN_LOW_48 = {"IGN2": (2, 10)}
IGN_LOW_LPA2 = {"IGN2": (2, 6), "IGN10": (10, 2)}
NT = {"nT": (16, 1)}


@pytest.mark.parametrize(("layout", "fields"), [
    # stage 1 pages: OAB[47:12] / [47:14] / [47:16]; 64KB+LPA adds OAB[51:48] at 15:12; LPA2 OAB[49:m] + [51:50]
    (descriptor_layout(S1, PAGE, K4, 3), S1_LEAF | SH | {"OAB": (12, 36)}),
    (descriptor_layout(S1, PAGE, K16, 3), S1_LEAF | SH | {"OAB": (14, 34)}),
    (descriptor_layout(S1, PAGE, K64, 3), S1_LEAF | SH | {"OAB": (16, 32)}),
    (descriptor_layout(S1, PAGE, K64, 3, LPA), S1_LEAF | SH | {"OAB": (16, 32), "OAB_HI": (12, 4)}),
    (descriptor_layout(S1, PAGE, K4, 3, LPA2), S1_LEAF | {"OAB": (12, 38), "OAB_HI": (8, 2)}),
    (descriptor_layout(S1, PAGE, K16, 3, LPA2), S1_LEAF | {"OAB": (14, 36), "OAB_HI": (8, 2)}),
    # stage 1 blocks: Block[16] nT; OAB[47:30] 4KB L1, [47:21] 4KB L2, [47:39] 4KB L0 (DS=1), [47:25] 16KB L2,
    # [47:36] 16KB L1 (DS=1), [47:29] 64KB L2, [47:42] 64KB L1 (FEAT_LPA)
    (descriptor_layout(S1, BLOCK, K4, 1), S1_LEAF | SH | NT | {"OAB": (30, 18)}),
    (descriptor_layout(S1, BLOCK, K4, 2), S1_LEAF | SH | NT | {"OAB": (21, 27)}),
    (descriptor_layout(S1, BLOCK, K4, 0, LPA2), S1_LEAF | NT | {"OAB": (39, 11), "OAB_HI": (8, 2)}),
    (descriptor_layout(S1, BLOCK, K16, 2), S1_LEAF | SH | NT | {"OAB": (25, 23)}),
    (descriptor_layout(S1, BLOCK, K16, 1, LPA2), S1_LEAF | NT | {"OAB": (36, 14), "OAB_HI": (8, 2)}),
    (descriptor_layout(S1, BLOCK, K64, 2), S1_LEAF | SH | NT | {"OAB": (29, 19)}),
    (descriptor_layout(S1, BLOCK, K64, 1, LPA), S1_LEAF | SH | NT | {"OAB": (42, 6), "OAB_HI": (12, 4)}),
    # stage 1 tables: NLTA[47:m]; LPA2 NLTA[49:m] and [51:50] at 9:8; 64KB+LPA NLTA[51:48] at 15:12
    (descriptor_layout(S1, TABLE, K4, 0), S1_TABLE | IGN_LOW_48 | {"NLTA": (12, 36)}),
    (descriptor_layout(S1, TABLE, K16, 1), S1_TABLE | IGN_LOW_48 | {"NLTA": (14, 34)}),
    (descriptor_layout(S1, TABLE, K64, 1), S1_TABLE | IGN_LOW_48 | {"NLTA": (16, 32)}),
    (descriptor_layout(S1, TABLE, K4, -1, LPA2), S1_TABLE | IGN_LOW_LPA2 | {"NLTA": (12, 38), "NLTA_HI": (8, 2)}),
    (descriptor_layout(S1, TABLE, K64, 2, LPA), S1_TABLE | IGN_LOW_48 | {"NLTA": (16, 32), "NLTA_HI": (12, 4)}),
    # stage 2
    (descriptor_layout(S2, PAGE, K4, 3), S2_LEAF | SH | {"OAB": (12, 36)}),
    (descriptor_layout(S2, PAGE, K16, 3, LPA2), S2_LEAF | {"OAB": (14, 36), "OAB_HI": (8, 2)}),
    (descriptor_layout(S2, PAGE, K64, 3, LPA), S2_LEAF | SH | {"OAB": (16, 32), "OAB_HI": (12, 4)}),
    (descriptor_layout(S2, BLOCK, K4, 1), S2_LEAF | SH | NT | {"OAB": (30, 18)}),
    (descriptor_layout(S2, BLOCK, K64, 2), S2_LEAF | SH | NT | {"OAB": (29, 19)}),
    (descriptor_layout(S2, TABLE, K4, 1), S2_TABLE | IGN_LOW_48 | {"NLTA": (12, 36)}),
    (descriptor_layout(S2, TABLE, K16, 0, LPA2), S2_TABLE | IGN_LOW_LPA2 | {"NLTA": (14, 36), "NLTA_HI": (8, 2)}),
    (INVALID, {"VALID": (0, 1), "IGN": (1, 63)}),                         # Tables D8-54 and D8-55
])
def test_descriptor_layouts_follow_the_arm_arm(layout: Layout, fields: dict[str, tuple[int, int]]) -> None:
    assert {f.name: (f.lsb, f.width) for f in layout.fields} == fields


_WALK0 = {"T0SZ": (0, 6), "IRGN0": (8, 2), "ORGN0": (10, 2), "SH0": (12, 2), "TG0": (14, 2)}


@pytest.mark.parametrize(("layout", "fields"), [
    (TTBR0_EL1, {"CnP": (0, 1), "BADDR": (1, 47), "ASID": (48, 16)}),                 # D24.2.209
    (TTBR1_EL2, {"CnP": (0, 1), "BADDR": (1, 47), "ASID": (48, 16)}),                 # D24.2.213
    (VTTBR_EL2, {"CnP": (0, 1), "BADDR": (1, 47), "VMID": (48, 16)}),                 # D24.2.225
    (TCR_EL1, _WALK0 | {                                                                # D24.2.194
        "EPD0": (7, 1), "T1SZ": (16, 6), "A1": (22, 1), "EPD1": (23, 1), "IRGN1": (24, 2), "ORGN1": (26, 2),
        "SH1": (28, 2), "TG1": (30, 2), "IPS": (32, 3), "AS": (36, 1), "TBI0": (37, 1), "TBI1": (38, 1),
        "HA": (39, 1), "HD": (40, 1), "HPD0": (41, 1), "HPD1": (42, 1), "HWU059": (43, 1), "HWU060": (44, 1),
        "HWU061": (45, 1), "HWU062": (46, 1), "HWU159": (47, 1), "HWU160": (48, 1), "HWU161": (49, 1),
        "HWU162": (50, 1), "TBID0": (51, 1), "TBID1": (52, 1), "NFD0": (53, 1), "NFD1": (54, 1),
        "E0PD0": (55, 1), "E0PD1": (56, 1), "TCMA0": (57, 1), "TCMA1": (58, 1), "DS": (59, 1), "MTX0": (60, 1),
        "MTX1": (61, 1)}),
    (TCR_EL2, _WALK0 | {                                                                # D24.2.195, E2H=0
        "PS": (16, 3), "TBI": (20, 1), "HA": (21, 1), "HD": (22, 1), "RES1_23": (23, 1), "HPD": (24, 1),
        "HWU59": (25, 1), "HWU60": (26, 1), "HWU61": (27, 1), "HWU62": (28, 1), "TBID": (29, 1), "TCMA": (30, 1),
        "RES1_31": (31, 1), "DS": (32, 1), "MTX": (33, 1)}),
    (VTCR_EL2, _WALK0 | {                                                               # D24.2.224
        "SL0": (6, 2), "PS": (16, 3), "VS": (19, 1), "HA": (21, 1), "HD": (22, 1), "HWU59": (25, 1),
        "HWU60": (26, 1), "HWU61": (27, 1), "HWU62": (28, 1), "NSW": (29, 1), "NSA": (30, 1), "RES1_31": (31, 1),
        "DS": (32, 1), "SL2": (33, 1)}),
    (MAIR_EL1, {f"Attr{n}": (8 * n, 8) for n in range(8)}),                           # D24.2.127
    (MAIR_EL2, {f"Attr{n}": (8 * n, 8) for n in range(8)}),
    (SCTLR_EL1, {"M": (0, 1), "A": (1, 1), "C": (2, 1), "SA": (3, 1), "SA0": (4, 1), "I": (12, 1),  # D24.2.175
                 "WXN": (19, 1), "SPAN": (23, 1), "E0E": (24, 1), "EE": (25, 1), "EPAN": (57, 1)}),
    (SCTLR_EL2, {"M": (0, 1), "A": (1, 1), "C": (2, 1), "SA": (3, 1), "I": (12, 1), "WXN": (19, 1),
                 "EE": (25, 1)}),                                                         # D24.2.176
    (HCR_EL2, {"VM": (0, 1), "PTW": (2, 1), "DC": (12, 1), "TVM": (26, 1), "TGE": (27, 1), "TRVM": (30, 1),
               "RW": (31, 1), "CD": (32, 1), "ID": (33, 1), "E2H": (34, 1), "NV": (42, 1), "NV1": (43, 1),
               "FWB": (46, 1)}),                                                          # D24.2.62
    (ID_AA64MMFR0_EL1, {"PARange": (0, 4), "ASIDBits": (4, 4), "BigEnd": (8, 4), "SNSMem": (12, 4),
                        "BigEndEL0": (16, 4), "TGran16": (20, 4), "TGran64": (24, 4), "TGran4": (28, 4),
                        "TGran16_2": (32, 4), "TGran64_2": (36, 4), "TGran4_2": (40, 4), "ExS": (44, 4),
                        "FGT": (56, 4), "ECV": (60, 4)}),                                 # D24.2.88
])
def test_register_layouts_follow_the_arm_arm(layout: Layout, fields: dict[str, tuple[int, int]]) -> None:
    assert {f.name: (f.lsb, f.width) for f in layout.fields} == fields


# ---- which descriptors exist ------------------------------------------------------------------------
BLOCK_SHIFT = {(K4, 0): 39, (K4, 1): 30, (K4, 2): 21, (K16, 1): 36, (K16, 2): 25, (K64, 1): 42, (K64, 2): 29}
"""The least significant OA bit of each block, Table D8-52's Block[47:17] rows."""


def test_block_and_table_levels_per_granule_and_form() -> None:
    assert {(g, f): block_levels(g, f) for g, f in ((K4, OA48), (K4, LPA2), (K16, OA48), (K16, LPA2), (K64, OA48),
                                                    (K64, LPA))} == {
        (K4, OA48): (1, 2), (K4, LPA2): (0, 1, 2), (K16, OA48): (2,), (K16, LPA2): (1, 2), (K64, OA48): (2,),
        (K64, LPA): (1, 2)}
    assert table_levels(K4) == (0, 1, 2) and table_levels(K4, LPA2) == (-1, 0, 1, 2)
    assert table_levels(K16) == (0, 1, 2) and table_levels(K64) == (1, 2) == table_levels(K64, LPA)
    for (g, level), lsb in BLOCK_SHIFT.items():
        form = OA48 if level in block_levels(g) else LPA if g is K64 else LPA2
        assert descriptor_layout(S1, BLOCK, g, level, form)["OAB"].lsb == lsb


@pytest.mark.parametrize(("kind", "granule", "level", "form"), [
    (BLOCK, K4, 0, OA48), (BLOCK, K16, 1, OA48), (BLOCK, K64, 1, OA48), (BLOCK, K4, 3, OA48),
    (PAGE, K4, 2, OA48), (TABLE, K4, 3, OA48), (TABLE, K64, 0, OA48), (TABLE, K4, -1, OA48),
    (PAGE, K4, 3, LPA), (PAGE, K64, 3, LPA2), (BLOCK, K16, 0, LPA2),
])
def test_descriptors_the_architecture_lacks_are_refused(kind: EntryKind, granule: Granule, level: int,
                                                        form: OAForm) -> None:
    with pytest.raises(InvalidArgument):
        descriptor_layout(S1, kind, granule, level, form)


def test_descriptor_type_follows_table_d8_48() -> None:
    assert descriptor_kind(0x0, 1, K4) is None and descriptor_kind(0x2, 3, K4) is None      # bit 0 clear
    assert descriptor_kind(0x3, 0, K4) is TABLE and descriptor_kind(0x3, 3, K4) is PAGE
    assert descriptor_kind(0x1, 1, K4) is BLOCK and descriptor_kind(0x1, 2, K16) is BLOCK
    assert descriptor_kind(0x1, 3, K4) is None                                                # 0b01 at level 3
    assert descriptor_kind(0x1, 0, K4) is None and descriptor_kind(0x1, 0, K4, LPA2) is BLOCK
    assert descriptor_kind(0x1, 1, K64) is None and descriptor_kind(0x1, 1, K64, LPA) is BLOCK
    with pytest.raises(InvalidArgument):
        descriptor_kind(0x3, 0, K64)                                                          # 64KB: levels 1-3
    with pytest.raises(InvalidArgument):
        descriptor_kind(0x3, 4, K4)


# ---- output addresses -----------------------------------------------------------------------------
COMBOS = [(stage, kind, g, level, form)
          for stage in Stage for g, form in ((K4, OA48), (K4, LPA2), (K16, OA48), (K16, LPA2), (K64, OA48),
                                             (K64, LPA))
          for kind, levels in ((TABLE, table_levels(g, form)), (BLOCK, block_levels(g, form)), (PAGE, (3,)))
          for level in levels]


def _expected_raw(oa: int, form: OAForm) -> int:
    """Where the manual puts a 52-bit OA's bits: LPA2 OA[49:m] in place and OA[51:50] at 9:8; LPA OA[47:m] in
    place and OA[51:48] at 15:12; the 48-bit form in place."""
    if form is LPA2:
        return (oa & ((1 << 50) - 1)) | (oa >> 50) << 8
    if form is LPA:
        return (oa & ((1 << 48) - 1)) | (oa >> 48) << 12
    return oa


@given(st.sampled_from(COMBOS), st.integers(0, (1 << 52) - 1), st.integers(0, (1 << 64) - 1))
def test_output_addresses_round_trip_in_every_form(combo: tuple[Stage, EntryKind, Granule, int, OAForm], oa: int,
                                                   other: int) -> None:
    stage, kind, g, level, form = combo
    layout = descriptor_layout(stage, kind, g, level, form)
    shift = g.value if kind is TABLE else g.value + g.stride * (3 - level)
    oa = oa & ~((1 << shift) - 1) & ((1 << form.oa_bits) - 1)
    address_bits = _expected_raw(((1 << form.oa_bits) - 1) & ~((1 << shift) - 1), form)
    rest = other & ~address_bits
    raw = with_output_address(layout, rest, oa)
    assert raw == rest | _expected_raw(oa, form)
    assert output_address(layout, raw) == oa
    with pytest.raises(InvalidArgument):
        with_output_address(layout, 0, oa | 1 << (shift - 1))                   # not aligned
    with pytest.raises(InvalidArgument):
        with_output_address(layout, 0, oa | 1 << form.oa_bits)                  # too wide for the form


def test_a_52_bit_page_decodes_its_high_bits() -> None:
    oa = 0xF_1234_5678_0000
    assert with_output_address(descriptor_layout(S1, PAGE, K64, 3, LPA), 0x403, oa) == 0x1234_5678_F403
    assert with_output_address(descriptor_layout(S1, PAGE, K4, 3, LPA2), 0x403, oa) == 0x3_1234_5678_0703


# ---- registers -------------------------------------------------------------------------------------
def test_tg0_and_tg1_encode_granules_differently() -> None:
    assert [tg0_granule(c) for c in (0, 1, 2)] == [K4, K64, K16]
    assert [tg1_granule(c) for c in (1, 2, 3)] == [K16, K4, K64]
    with pytest.raises(InvalidArgument, match="reserved"):
        tg0_granule(3)
    with pytest.raises(InvalidArgument, match="reserved"):
        tg1_granule(0)
    assert TCR_EL1["TG0"].encodings[2] == "16KB" and TCR_EL1["TG1"].encodings[2] == "4KB"


def test_pa_sizes_and_start_levels() -> None:
    assert [pa_bits(c) for c in range(8)] == [32, 36, 40, 42, 44, 48, 52, 56]
    with pytest.raises(InvalidArgument):
        pa_bits(8)
    assert pa_range(0x0000_0000_0000_1125) == 48 and pa_range(0x6) == 52
    assert [stage1_start_level(K4, b) for b in (48, 39, 30, 52)] == [0, 1, 2, -1]
    assert [stage1_start_level(K16, b) for b in (48, 47, 37, 36, 52)] == [0, 1, 1, 2, 0]
    assert [stage1_start_level(K64, b) for b in (48, 42, 52)] == [1, 2, 1]
    assert [stage2_start_level(K4, sl0) for sl0 in range(4)] == [2, 1, 0, 3]
    assert [stage2_start_level(K16, sl0) for sl0 in range(4)] == [3, 2, 1, 0]
    assert [stage2_start_level(K64, sl0) for sl0 in range(3)] == [3, 2, 1]
    assert stage2_start_level(K4, 0, sl2=1) == -1
    for g, sl0, sl2 in ((K64, 3, 0), (K4, 1, 1), (K16, 0, 1)):
        with pytest.raises(InvalidArgument):
            stage2_start_level(g, sl0, sl2)


WT_NIBBLES, NC_NIBBLES, WB_NIBBLES = {1, 2, 3, 8, 9, 10, 11}, {4}, {5, 6, 7, 12, 13, 14, 15}
"""The oooo / iiii encodings of D24.2.127: 0b00RW (RW != 00) and 0b10RW Write-Through, 0b0100
Non-cacheable, 0b01RW (RW != 00) and 0b11RW Write-Back."""


def _expected_type(code: int) -> M | None:
    outer, inner = code >> 4, code & 0xF
    if outer == 0:
        return {0: M.DEVICE_NGNRNE, 1: M.DEVICE_NGNRE, 2: M.DEVICE_NGRE, 3: M.DEVICE_GRE}[inner >> 2] \
            if inner & 3 in (0, 1) else None
    if inner == 0:
        return {0x40: M.NORMAL_NC, 0xA0: M.NORMAL_WT, 0xF0: M.NORMAL_WB}.get(code)
    kinds = [M.NORMAL_WT if n in WT_NIBBLES else M.NORMAL_NC if n in NC_NIBBLES else M.NORMAL_WB
             for n in (outer, inner)]
    return kinds[0] if kinds[0] == kinds[1] else M.NORMAL_MIXED


def test_mair_decodes_every_attr_encoding() -> None:
    decoded = [mair_attr(code) for code in range(256)]
    assert [a.memory_type for a in decoded] == [_expected_type(code) for code in range(256)]
    unpredictable = [a.code for a in decoded if a.memory_type is None]
    assert unpredictable == sorted([0b0000_0010 | dd << 2 | x for dd in range(4) for x in (0, 1)]
                                   + [h << 4 for h in range(1, 16) if h not in (0b0100, 0b1010, 0b1111)])
    assert all("UNPREDICTABLE" in a.description for a in decoded if a.memory_type is None)
    assert {a.code: a.feature for a in decoded if a.feature} == {
        **{dd << 2 | 1: "FEAT_XS" for dd in range(4)}, 0x40: "FEAT_XS", 0xA0: "FEAT_XS", 0xF0: "FEAT_MTE2"}
    assert mair_attr(0xFF).description == ("Normal, Outer Write-Back Non-transient RA WA, "
                                           "Inner Write-Back Non-transient RA WA")
    assert mair_attr(0xBB).description == ("Normal, Outer Write-Through Non-transient RA WA, "
                                           "Inner Write-Through Non-transient RA WA")
    assert mair_attr(0x21).description == ("Normal, Outer Write-Through Transient RA No-WA, "
                                           "Inner Write-Through Transient No-RA WA")
    assert mair_attr(0xF4).memory_type is M.NORMAL_MIXED                     # outer WB, inner NC
    assert mair_attr(0x0C).description == "Device-GRE"
    with pytest.raises(InvalidArgument):
        mair_attr(0x100)


def test_linux_mair() -> None:
    linux = {0: 0xFF, 1: 0xFF, 2: 0x44, 3: 0x00, 4: 0x04}          # MT_NORMAL, _TAGGED, _NC, nGnRnE, nGnRE
    assert sum(code << 8 * n for n, code in linux.items()) == LINUX_MAIR_EL1
    assert [a.memory_type for a in mair_attrs(LINUX_MAIR_EL1)][:5] == [
        M.NORMAL_WB, M.NORMAL_WB, M.NORMAL_NC, M.DEVICE_NGNRNE, M.DEVICE_NGNRE]


# ---- explain ---------------------------------------------------------------------------------------
def test_explain_tcr_el1_names_granules_and_region_sizes() -> None:
    tcr = TCR_EL1.build(T0SZ=25, TG0=0b10, T1SZ=16, TG1=0b10, IPS=0b101, EPD1=1)
    lines = explain("TCR_EL1", tcr)
    assert lines[0].startswith("TCR_EL1 0x") and "[31:30] TG1      = 2 (10)  4KB" in lines[0]
    assert "[15:14] TG0      = 2 (10)  16KB" in lines[0]
    assert lines[1:] == ["  -> TTBR0_EL1: 16KB granule, 39-bit region, walk starts at level 1",
                         "  -> TTBR1_EL1: 4KB granule, 48-bit region, walk starts at level 0 (walks disabled: EPD1=1)",
                         "  -> intermediate physical address size (IPS): 48 bits"]
    assert "TG1 0b00 is reserved" in explain("tcr_el1", TCR_EL1.build(T1SZ=16, TG1=0))[2]


def test_explain_vtcr_tcr_el2_mair_ttbr() -> None:
    vtcr = VTCR_EL2.build(T0SZ=24, SL0=1, TG0=0, PS=2, RES1_31=1)
    assert explain("vtcr_el2", vtcr)[1:] == [
        "  -> stage 2: 4KB granule, 40-bit IPA, walk starts at level 1 with 2 concatenated tables",
        "  -> physical address size (PS): 40 bits"]
    assert "SL0=0b11 is reserved" in explain("vtcr_el2", VTCR_EL2.build(SL0=3, TG0=1))[1]
    assert explain("tcr_el2", TCR_EL2.build(T0SZ=16, TG0=1, PS=6))[1:] == [
        "  -> TTBR0_EL2: 64KB granule, 48-bit region, walk starts at level 1",
        "  -> physical address size (PS): 52 bits"]
    mair = explain("mair_el1", LINUX_MAIR_EL1 | 0x02 << 56)
    assert mair[3] == "  -> AttrIndx 2: 0x44 Normal, Outer Non-cacheable, Inner Non-cacheable"
    assert mair[8] == "  -> AttrIndx 7: 0x02 UNPREDICTABLE (0b0000dd1x)"
    assert "AttrIndx 0: 0x01 Device-nGnRnE with XS=0 (needs FEAT_XS" in explain("mair_el2", 0x01)[1]
    assert explain("vttbr_el2", 0x0005_0000_8000_0001)[1] == "  -> initial lookup table at PA 0x80000000, VMID 0x5"
    assert explain("hcr_el2", HCR_EL2.build(VM=1))[1] == "  -> stage 2 translation on (VM)"
    assert explain("id_aa64mmfr0_el1", 0x5)[1] == "  -> physical addresses of 48 bits"
    assert "PARange: physical address size encoding 0b1000 is reserved" in explain("id_aa64mmfr0_el1", 0x8)[1]
    with pytest.raises(InvalidArgument, match="no AArch64 register"):
        explain("cr3", 0)


def test_explain_descriptor_decodes_at_a_granule_and_level() -> None:
    block = 0x0060_0000_4000_0705                       # UXN|PXN, AF, SH=11, AttrIndx 1, 2MB block at 1 GiB
    lines = explain_descriptor(block, K4, 2, mair=LINUX_MAIR_EL1)
    assert lines[0].startswith("VMSAv8-64 stage 1 level 2 block (2MB) descriptor, 4KB granule, OA48")
    assert lines[-2:] == ["  -> block of 0x200000 bytes at PA 0x40000000",
                          "  -> memory type: Attr1 = 0xff Normal, Outer Write-Back Non-transient RA WA, "
                          "Inner Write-Back Non-transient RA WA"]
    assert explain_descriptor(0x8000_0003, K16, 1)[-1] == "  -> table: the level 2 table at PA 0x80000000"
    assert explain_descriptor(0x0000_0000_4000_0005, K4, 2)[-1].endswith("AF=0: the first access faults "
                                                                           "(Access flag fault) unless hardware "
                                                                           "updates it")
    assert explain_descriptor(0x1, K4, 3)[-1].startswith("  -> reserved at level 3")
    assert explain_descriptor(0x0, K4, 3)[-1].startswith("  -> invalid (bit 0 clear")
    page = explain_descriptor(0x1234_5678_F4C7, K64, 3, S2, LPA)               # S2AP=11, AF
    assert "[  7:6] S2AP     = 3 (11)  read/write" in page[0]
    assert page[-1] == "  -> page of 0x10000 bytes at PA 0xf123456780000"
    reserved = explain_descriptor(0x3 | 1 << 49, K4, 3)                        # bit 49: RES0 without DS=1
    assert reserved[0].endswith("bits 49 are set but belong to no field (reserved: zero)")


def test_ttbr_table_base_in_the_48_and_52_bit_forms() -> None:
    """D24.2.209: BADDR[47:1]; for a 52-bit BADDR, A[51:48] in register bits 5:2 and bit 1 RES0."""
    ttbr = 0x0001_0000_4000_0000 | 0b1010 << 2 | 1                # ASID 1, CnP, bits 5:2 = 0b1010
    assert table_base(ttbr) == 0x4000_0028
    assert table_base(ttbr, wide=True) == 0xA_0000_4000_0000
    assert explain("ttbr0_el1", ttbr)[1] == "  -> initial lookup table at PA 0x40000028, ASID 0x1"
    assert explain_ttbr(TTBR0_EL1, ttbr, wide=True)[1] == ("  -> initial lookup table at PA 0xa000040000000 "
                                                            "(52-bit BADDR), ASID 0x1")


def test_vtcr_with_too_many_concatenated_tables_faults() -> None:
    vtcr = VTCR_EL2.build(T0SZ=20, SL0=0, TG0=0, PS=5)              # 44-bit IPA from level 2: 2**14 tables
    assert explain("vtcr_el2", vtcr)[1].endswith("with 16384 concatenated tables (more than 16: SL0 and T0SZ "
                                                 "disagree, a level 0 Translation fault)")
