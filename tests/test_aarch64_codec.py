"""The AArch64 codecs byte for byte: `A64Codec` (SPEC, EL2, ARCEOS) and `S2Codec` against the descriptor bit
tables of the Arm ARM, for every granule and output-address form, pages, blocks at every block level and
tables; the MappingFlags encodings codec.py documents; page_table_multiarch 0.6.1's A64PTE bytes
(docs reference.md §2.3) for ARCEOS; flags and addresses round-tripping, scalar and numpy alike.

Arm ARM DDI 0487 M.a.a: D8.3.1 (Figures D8-12 to D8-17, Tables D8-50 to D8-53), Table D8-60 (AP[2:1]),
D8.4.1.2 (PXN/UXN), Table D8-78 (stage 2 XN[1:0]), D8.6 (MAIR AttrIndx, stage 2 MemAttr with FWB=0/1)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pagetable.arch.aarch64 import Granule, OAForm
from pagetable.arch.aarch64.codec import ARCEOS, ARCEOS_MAIR, SPEC, A64Codec, OutputAddress, S2Codec
from pagetable.arch.aarch64.modes import stage1_format, stage2_format
from pagetable.errors import InvalidAddress, InvalidFlags, NotAligned
from pagetable.flags import MappingFlags as F
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.translation import MemoryType

K4, K16, K64 = Granule.K4, Granule.K16, Granule.K64
OA48, LPA, LPA2 = OAForm.OA48, OAForm.LPA, OAForm.LPA2
R, W, X, U, DEV, NC = F.READ, F.WRITE, F.EXECUTE, F.USER, F.DEVICE, F.UNCACHED
FORMS = [(K4, OA48), (K16, OA48), (K64, OA48), (K64, LPA), (K4, LPA2), (K16, LPA2)]

# descriptor bits by the manual's tables (Table D8-52 stage 1, D8-53 stage 2)
VALID, PAGE, AF, NG, SH_IS = 1, 2, 1 << 10, 1 << 11, 3 << 8
AP_EL0, AP_RO = 1 << 6, 1 << 7                   # AP[1], AP[2]
PXN, UXN = 1 << 53, 1 << 54
S2R, S2W, S2XN = 1 << 6, 1 << 7, 2 << 53


def attr(index: int) -> int:
    return index << 2


# Linux's MAIR_EL1: Attr0 Normal WB (0xff), Attr2 Normal NC (0x44), Attr3 nGnRnE, Attr4 nGnRE
WB, NCI, DEVI = attr(0), attr(2), attr(4)


# ------------------------------------------------------------------------- stage 1, SPEC, 4KB 48-bit
@pytest.mark.parametrize(("flags", "bits"), [
    (R | W, VALID | PAGE | AF | SH_IS | WB | PXN | UXN),                               # kernel RW
    (R, VALID | PAGE | AF | SH_IS | WB | AP_RO | PXN | UXN),                           # kernel RO
    (R | X, VALID | PAGE | AF | SH_IS | WB | AP_RO | UXN),                             # kernel RX
    (R | W | X, VALID | PAGE | AF | SH_IS | WB | UXN),                                 # kernel RWX
    (U | R | W, VALID | PAGE | AF | SH_IS | WB | AP_EL0 | NG | PXN | UXN),             # user RW
    (U | R, VALID | PAGE | AF | SH_IS | WB | AP_EL0 | AP_RO | NG | PXN | UXN),         # user RO
    (U | R | X, VALID | PAGE | AF | SH_IS | WB | AP_EL0 | AP_RO | NG | PXN),           # user RX
    (U | R | W | X, VALID | PAGE | AF | SH_IS | WB | AP_EL0 | NG | PXN),               # user RWX
    (U | X, VALID | PAGE | AF | SH_IS | WB | AP_RO | NG | PXN),                         # EL0 execute-only
    (R | W | DEV, VALID | PAGE | AF | DEVI | PXN | UXN),                               # Device-nGnRE, SH=00
    (R | W | NC, VALID | PAGE | AF | SH_IS | NCI | PXN | UXN),                          # Normal NC
    (R | W | DEV | NC, VALID | PAGE | AF | DEVI | PXN | UXN),                          # DEVICE wins
])
def test_spec_page_bytes(flags: F, bits: int) -> None:
    pa = 0x0000_8765_4321_F000
    assert SPEC.new_page(pa, flags, False) == bits | pa
    assert SPEC.new_page(pa, flags, True) == (bits & ~PAGE) | pa          # a block: bit 1 clear
    assert SPEC.new_table(pa) == 3 | pa


def test_spec_known_values() -> None:
    """The same, written out as constants (Linux's PAGE_KERNEL is 0x00e8_0000_0000_0f03 with nG/DBM/SW bits;
    ours: kernel RW 0x0060_0000_0000_0703)."""
    assert SPEC.new_page(0x4000_0000, R | W, False) == 0x0060_0000_4000_0703
    assert SPEC.new_page(0x4000_0000, R | X, False) == 0x0040_0000_4000_0783
    assert SPEC.new_page(0x4000_0000, U | R | W, False) == 0x0060_0000_4000_0F43
    assert SPEC.new_page(0x4000_0000, U | X, False) == 0x0020_0000_4000_0F83
    assert SPEC.new_page(0x4000_0000, R | W | DEV, False) == 0x0060_0000_4000_0413
    assert SPEC.new_page(0x4000_0000, R | W, True) == 0x0060_0000_4000_0701


@pytest.mark.parametrize("flags", [W, W | X, U | W, U | W | X, X, X | DEV, DEV, NC, U, U | DEV])
def test_spec_refuses_what_ap_cannot_say(flags: F) -> None:
    """Write-only has no AP[2:1] value at either EL; EL1 reads every valid page, so a kernel page without
    READ cannot be encoded, and a USER page that EL0 can neither read nor execute is a kernel read-only
    page (USER would be lost)."""
    with pytest.raises(InvalidFlags):
        SPEC.new_page(0x1000, flags, False)


def test_spec_empty_flags_keep_the_address_in_an_invalid_descriptor() -> None:
    assert SPEC.new_page(0x5000, F(0), False) == 0x5000
    assert SPEC.flags_np(0x5000, False) == 0


def test_el2_codec() -> None:
    """One privilege (EL2): AP[1] RES1 (set), no nG, no PXN, UXN is XN; USER is not a flag."""
    el2 = A64Codec(el2=True)
    assert U not in el2.supported_flags
    assert el2.new_page(0x1000, R | W, False) == VALID | PAGE | AF | SH_IS | WB | AP_EL0 | UXN | 0x1000
    assert el2.new_page(0x1000, R | X, False) == VALID | PAGE | AF | SH_IS | WB | AP_EL0 | AP_RO | 0x1000
    assert el2.new_page(0x1000, R | W | X, False) == VALID | PAGE | AF | SH_IS | WB | AP_EL0 | 0x1000
    assert el2.flags_np(el2.new_page(0x1000, R | X, False), False) == R | X
    with pytest.raises(InvalidFlags):
        el2.new_page(0x1000, X, False)


def test_mair_without_the_memory_type_refuses() -> None:
    only_wb = A64Codec(mair=0xFF)                          # Attr1-7 Device-nGnRnE; no Normal NC
    assert only_wb.new_page(0, R | DEV, False) & 0x1C == attr(1)     # the lowest Device attribute
    with pytest.raises(InvalidFlags):
        only_wb.new_page(0, R | NC, False)
    with pytest.raises(InvalidFlags):
        A64Codec(mair=0).new_page(0, R, False)             # all Device: no Normal Write-Back
    assert A64Codec(mair=0x04_00).new_page(0, R | DEV, False) & 0x1C == attr(1)   # nGnRE before nGnRnE


def test_memory_types_through_mair() -> None:
    for flags, memtype in ((R, MemoryType.NORMAL_WB), (R | NC, MemoryType.NORMAL_NC),
                           (R | DEV, MemoryType.DEVICE_NGNRE)):
        raw = SPEC.new_page(0, flags, False)
        assert SPEC.memory_type_np(raw, False) == memtype
    assert SPEC.memory_type_np(attr(3) | 3, False) == MemoryType.DEVICE_NGNRNE
    off = A64Codec(cacheable=False)                        # SCTLR_ELx.C=0: Normal is Non-cacheable
    assert off.memory_type_np(off.new_page(0, R, False), False) == MemoryType.NORMAL_NC
    assert off.memory_type_np(off.new_page(0, R | DEV, False), False) == MemoryType.DEVICE_NGNRE


# --------------------------------------------------------------------- every granule and OA form
ATTRS = VALID | AF | WB | PXN | UXN                     # kernel RW, bit 1 and SH apart


@pytest.mark.parametrize(("granule", "form", "pa", "field"), [
    (K4, OA48, 0x0000_ABCD_1234_5000, 0x0000_ABCD_1234_5000),
    (K16, OA48, 0x0000_ABCD_1234_C000, 0x0000_ABCD_1234_C000),
    (K64, OA48, 0x0000_ABCD_1234_0000, 0x0000_ABCD_1234_0000),
    # FEAT_LPA, 64KB: OA[51:48] in bits 15:12
    (K64, LPA, 0x000F_ABCD_1234_0000, 0x0000_ABCD_1234_F000),
    (K64, LPA, 0x0005_0000_0001_0000, 0x0000_0000_0001_5000),
    # FEAT_LPA2: OA[49:48] in place, OA[51:50] in bits 9:8, no SH
    (K4, LPA2, 0x000F_ABCD_1234_5000, 0x0003_ABCD_1234_5300),
    (K4, LPA2, 0x0009_0000_0000_1000, 0x0001_0000_0000_1200),
    (K16, LPA2, 0x000E_ABCD_1234_C000, 0x0002_ABCD_1234_C300),
])
def test_page_and_table_address_fields(granule: Granule, form: OAForm, pa: int, field: int) -> None:
    c = A64Codec(OutputAddress(granule, form))
    sh = 0 if form is LPA2 else SH_IS
    assert c.new_page(pa, R | W, False) == ATTRS | PAGE | sh | field
    assert c.new_table(pa) == 3 | field
    assert c.paddr_np(c.new_page(pa, R | W, False), False) == pa
    assert c.paddr_np(c.new_table(pa), False) == pa
    s2 = S2Codec(OutputAddress(granule, form))
    assert s2.new_page(pa, R | W, False) == VALID | PAGE | AF | attr(0b1111) | S2R | S2W | S2XN | sh | field
    assert s2.paddr_np(s2.new_page(pa, R | W, False), False) == pa


@pytest.mark.parametrize(("granule", "form", "pa", "error"), [
    (K4, OA48, 1 << 48, InvalidAddress), (K64, LPA, 1 << 52, InvalidAddress), (K4, LPA2, 1 << 52, InvalidAddress),
    (K4, OA48, 0x800, NotAligned), (K16, OA48, 0x1000, NotAligned), (K64, LPA, 0x8000, NotAligned),
])
def test_addresses_the_field_cannot_hold(granule: Granule, form: OAForm, pa: int, error: type[Exception]) -> None:
    for codec in (A64Codec(OutputAddress(granule, form)), S2Codec(OutputAddress(granule, form))):
        with pytest.raises(error):
            codec.new_page(pa, R, False)
        with pytest.raises(error):
            codec.new_table(pa)


# each block level: (granule, form, level, block size, a 52-bit or 48-bit aligned PA, its address field)
BLOCKS = [
    (K4, OA48, 1, 1 << 30, 0x0000_8000_4000_0000, 0x0000_8000_4000_0000),
    (K4, OA48, 2, 1 << 21, 0x0000_8000_4020_0000, 0x0000_8000_4020_0000),
    (K16, OA48, 2, 1 << 25, 0x0000_8000_4200_0000, 0x0000_8000_4200_0000),
    (K64, OA48, 2, 1 << 29, 0x0000_8000_6000_0000, 0x0000_8000_6000_0000),
    (K64, LPA, 2, 1 << 29, 0x000C_8000_6000_0000, 0x0000_8000_6000_C000),
    (K64, LPA, 1, 1 << 42, 0x000A_4C00_0000_0000, 0x0000_4C00_0000_A000),      # 4TB (FEAT_LPA)
    (K4, LPA2, 0, 1 << 39, 0x000D_8080_0000_0000, 0x0001_8080_0000_0300),      # 512GB (DS=1)
    (K4, LPA2, 1, 1 << 30, 0x000D_8000_4000_0000, 0x0001_8000_4000_0300),
    (K4, LPA2, 2, 1 << 21, 0x0004_8000_4020_0000, 0x0000_8000_4020_0100),
    (K16, LPA2, 1, 1 << 36, 0x0007_8010_0000_0000, 0x0003_8010_0000_0100),     # 64GB (DS=1)
    (K16, LPA2, 2, 1 << 25, 0x0007_8000_4200_0000, 0x0003_8000_4200_0100),
]


def _table(fmt_granule: Granule, fmt: object) -> PageTable:
    mem = PhysMem([(0x4000_0000, 16 << 20)])
    frames = FrameAllocator(mem, 0x4000_0000, 16 << 20, frame_size=fmt_granule.size)
    return PageTable(fmt, mem, frames)  # type: ignore[arg-type]


@pytest.mark.parametrize(("granule", "form", "level", "size", "pa", "field"), BLOCKS)
def test_blocks_at_each_block_level_through_a_page_table(granule: Granule, form: OAForm, level: int, size: int,
                                                         pa: int, field: int) -> None:
    """A block mapped by `PageTable` sits at the manual's level with bits 1:0 = 0b01 and its OA field
    (Figures D8-14, D8-15); the table descriptors above it are 0b11 with the next table's address."""
    fmt = stage1_format(granule, 52 if form is not OA48 else 48, form)
    pt = _table(granule, fmt)
    va = 3 * size
    pt.map(va, pa, size, R | W)
    depth = next(d for d, lv in enumerate(fmt.levels) if lv.arch_level == level)
    slot = pt.lookup(va, depth)
    sh = 0 if form is LPA2 else SH_IS
    assert slot.raw == ATTRS | sh | field
    assert pt.query(va) == (pa, R | W, size)
    for d in range(depth):                               # table descriptors: 0b11, NLTA, no attributes
        above = pt.lookup(va, d)
        assert above.raw & 0xFFF0_0000_0000_0FFF & ~(3 << 8 if form is LPA2 else 0) == 3
        assert fmt.codec.paddr_np(above.raw, True) == pt.lookup(va, d + 1).table
    s2fmt = stage2_format(granule, 48 if form is OA48 else 52, fmt.levels[0].arch_level, form)
    s2 = _table(granule, s2fmt)
    s2.map(va, pa, size, R | W)
    assert s2.lookup(va, depth).raw == VALID | AF | attr(0b1111) | S2R | S2W | S2XN | sh | field


@pytest.mark.parametrize(("granule", "form", "levels"), [
    (K4, OA48, (1, 2)), (K16, OA48, (2,)), (K64, OA48, (2,)), (K64, LPA, (1, 2)), (K4, LPA2, (0, 1, 2)),
    (K16, LPA2, (1, 2))])
def test_formats_offer_blocks_only_where_the_manual_has_them(granule: Granule, form: OAForm,
                                                             levels: tuple[int, ...]) -> None:
    fmt = stage1_format(granule, 52 if form is not OA48 else 48, form)
    assert tuple(lv.arch_level for lv in fmt.levels if lv.leaf and lv.arch_level < 3) == levels


# ------------------------------------------------------------------------------------------ stage 2
@pytest.mark.parametrize(("flags", "fwb", "bits"), [
    (R | W, False, VALID | PAGE | AF | SH_IS | attr(0b1111) | S2R | S2W | S2XN),
    (R | W | X, False, VALID | PAGE | AF | SH_IS | attr(0b1111) | S2R | S2W),
    (R, False, VALID | PAGE | AF | SH_IS | attr(0b1111) | S2R | S2XN),
    (W, False, VALID | PAGE | AF | SH_IS | attr(0b1111) | S2W | S2XN),             # write-only exists
    (X, False, VALID | PAGE | AF | SH_IS | attr(0b1111)),                          # execute-only exists
    (R | W | DEV, False, VALID | PAGE | AF | attr(0b0001) | S2R | S2W | S2XN),      # Device-nGnRE
    (R | W | NC, False, VALID | PAGE | AF | SH_IS | attr(0b0101) | S2R | S2W | S2XN),
    (R | W, True, VALID | PAGE | AF | SH_IS | attr(0b0110) | S2R | S2W | S2XN),      # FWB: forced WB
    (R | W | NC, True, VALID | PAGE | AF | SH_IS | attr(0b0101) | S2R | S2W | S2XN),
    (R | W | DEV, True, VALID | PAGE | AF | attr(0b0001) | S2R | S2W | S2XN),
])
def test_stage2_page_bytes(flags: F, fwb: bool, bits: int) -> None:
    c = S2Codec(fwb=fwb)
    assert c.new_page(0x8_0000_0000, flags, False) == bits | 0x8_0000_0000
    assert c.new_page(0x8_0000_0000, flags, True) == (bits & ~PAGE) | 0x8_0000_0000
    assert c.flags_np(bits, False) == flags
    assert c.new_table(0x8_0000_0000) == 3 | 0x8_0000_0000
    assert c.new_page(0x1000, F(0), False) == 0x1000


def test_stage2_xn_and_memattr_decoding() -> None:
    base = VALID | PAGE | AF | attr(0b1111) | S2R
    xnx, plain = S2Codec(xnx=True), S2Codec(xnx=False)
    for xn, with_xnx, without in ((0, True, True), (1, True, True), (2, False, False), (3, True, False)):
        assert bool(xnx.flags_np(base | xn << 53, False) & X) is with_xnx
        assert bool(plain.flags_np(base | xn << 53, False) & X) is without
    for memattr, fwb, memtype in ((0b0000, False, MemoryType.DEVICE_NGNRNE), (0b0001, False, MemoryType.DEVICE_NGNRE),
                                  (0b0010, False, MemoryType.DEVICE_NGRE), (0b0011, False, MemoryType.DEVICE_GRE),
                                  (0b0101, False, MemoryType.NORMAL_NC), (0b1010, False, MemoryType.NORMAL_WT),
                                  (0b1111, False, MemoryType.NORMAL_WB), (0b1101, False, MemoryType.NORMAL_MIXED),
                                  (0b1100, False, MemoryType.DEFAULT),          # 0bxx00: reserved
                                  (0b0110, True, MemoryType.NORMAL_WB), (0b0101, True, MemoryType.NORMAL_NC),
                                  (0b0111, True, MemoryType.DEFAULT),           # keeps stage 1's type
                                  (0b0001, True, MemoryType.DEVICE_NGNRE)):
        assert S2Codec(fwb=fwb).memory_type_np(VALID | PAGE | attr(memattr), False) == memtype


# ------------------------------------------------------------------------------------------ ARCEOS
@pytest.mark.parametrize(("flags", "huge", "bits", "decoded"), [          # reference.md §2.3's table
    (R | W, False, 0x0060_0000_0000_0707, R | W),
    (R | W, True, 0x0060_0000_0000_0705, R | W),
    (R | X, False, 0x0040_0000_0000_0787, R | X),
    (R | W | DEV, False, 0x0060_0000_0000_0403, R | W | DEV),
    (R | W | NC, False, 0x0060_0000_0000_070B, R | W | NC),
    (U | R | W, False, 0x0060_0000_0000_0747, U | R | W),
    (U | R | X, False, 0x0020_0000_0000_07C7, U | R | X),
    (W, False, 0x0060_0000_0000_0706, F(0)),                 # write-only: not VALID (the crate's bug)
    (F(0), False, 0x402, F(0)),                              # the lazy-mapping placeholder AF|bit 1
    (F(0), True, 0x400, F(0)),
])
def test_arceos_profile_bytes(flags: F, huge: bool, bits: int, decoded: F) -> None:
    pa = 0x4020_3000 if not huge else 0x4020_0000
    assert ARCEOS.new_page(pa, flags, huge) == bits | pa
    assert ARCEOS.flags_np(bits | pa, huge) == decoded
    assert ARCEOS.new_table(pa) == 3 | pa
    assert ARCEOS.mair == ARCEOS_MAIR == 0x44_FF_04


def test_arceos_decoding_of_other_descriptors() -> None:
    """From<DescriptorAttr>: READ always; WRITE unless AP[2]; AP[1] gives USER and EXECUTE unless UXN; else
    EXECUTE unless PXN; AttrIndx 0 DEVICE, 2 UNCACHED."""
    assert ARCEOS.flags_np(0x0000_0000_0000_0747, False) == U | R | W | X       # user, no PXN/UXN
    assert ARCEOS.flags_np(0x0000_0000_0000_0707, False) == R | W | X
    assert ARCEOS.flags_np(0x0060_0000_0000_0783, False) == R | DEV             # AttrIndx 0
    assert ARCEOS.flags_np(0x0060_0000_0000_0706, False) == 0                   # not VALID


# --------------------------------------------------------------------------------- round trips
def _normal(flags: F, el2: bool) -> F:
    """What decoding gives back for `flags`: DEVICE wins over UNCACHED; USER does not exist in EL2."""
    if flags & DEV:
        flags &= ~NC
    if el2:
        flags &= ~U
    return flags


CODECS = st.builds(lambda form, el2, huge: (A64Codec(OutputAddress(*form), el2=el2), huge),
                   st.sampled_from(FORMS), st.booleans(), st.booleans())


@settings(max_examples=300, deadline=None)
@given(CODECS, st.integers(0, 63))
def test_stage1_flags_round_trip(codec_huge: tuple[A64Codec, bool], bits: int) -> None:
    codec, huge = codec_huge
    flags = F(bits) & codec.supported_flags
    try:
        raw = codec.new_page(0, flags, huge)
    except InvalidFlags:
        assert (flags & W and not flags & R) or (not flags & R and not (flags & U and flags & X and not codec.el2)) or \
            (flags & U and not codec.el2 and not flags & (R | X))
        return
    assert codec.flags_np(raw, huge) == _normal(flags, codec.el2)
    column = codec.flags_np(np.array([raw, 0], dtype=np.uint64), huge)
    assert list(column) == [_normal(flags, codec.el2), 0]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(FORMS), st.booleans(), st.booleans(), st.integers(0, 63))
def test_stage2_flags_round_trip(form: tuple[Granule, OAForm], fwb: bool, huge: bool, bits: int) -> None:
    codec = S2Codec(OutputAddress(*form), fwb=fwb)
    flags = F(bits) & codec.supported_flags
    raw = codec.new_page(0, flags, huge)
    if not flags:
        assert raw == 0
        return
    assert codec.flags_np(raw, huge) == _normal(flags, False)


def test_arceos_flags_round_trip() -> None:
    for bits in range(64):
        flags = F(bits)
        if not flags & R:
            continue
        back = ARCEOS.flags_np(ARCEOS.new_page(0, flags, False), False)
        assert back == _normal(flags, False)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(FORMS), st.booleans(), st.integers(0, (1 << 52) - 1), st.integers(0, (1 << 64) - 1),
       st.sampled_from([R | W, U | R | X, R | DEV]))
def test_addresses_round_trip_scalar_and_numpy(form: tuple[Granule, OAForm], stage2: bool, pa: int, other: int,
                                               flags: F) -> None:
    address = OutputAddress(*form)
    codec: A64Codec | S2Codec = S2Codec(address) if stage2 else A64Codec(address)
    pa = pa % (1 << address.oa_bits) & ~(address.granule.size - 1)
    raw = codec.new_page(pa, flags, False)
    assert codec.paddr_np(raw, False) == pa
    assert codec.flags_np(raw, False) == codec.flags_np(raw & ~address.field, False)   # the address is not flags
    pas = np.array([pa, 0, (1 << address.oa_bits) - address.granule.size], dtype=np.uint64)
    raws = codec.new_page_np(pas, flags, False)
    assert [int(r) for r in raws] == [codec.new_page(int(p), flags, False) for p in pas]
    assert list(codec.paddr_np(raws, False)) == list(pas)
    moved = codec.with_paddr_np(np.array([other, raw], dtype=np.uint64), pas[1:].copy(), False)
    assert int(codec.paddr_np(moved[0], False)) == 0 and int(moved[0]) & ~address.field == other & ~address.field
    assert int(moved[1]) == codec.new_page(int(pas[2]), flags, False)
    assert int(codec.paddr_np(np.uint64(other), False)) == codec.paddr_np(other, False)


def test_arceos_arm_el2_feature() -> None:
    """reference.md §2.3, feature `arm-el2`: USER ignored, only UXN (XN) when EXECUTE is absent."""
    el2 = A64Codec(mair=ARCEOS_MAIR, arceos=True, el2=True)
    assert el2.new_page(0x4020_3000, R | W, False) == 0x0040_0000_4020_3707
    assert el2.new_page(0x4020_3000, R | W | X, False) == 0x0000_0000_4020_3707
    assert el2.new_page(0x4020_3000, R | X, False) == 0x0000_0000_4020_3787
    assert el2.flags_np(0x0040_0000_0000_0707, False) == R | W
    assert el2.flags_np(0x0000_0000_0000_0747, False) == R | W | X       # AP[1] means nothing at EL2


@pytest.mark.parametrize(("granule", "form", "level", "size", "pa", "field"), BLOCKS)
def test_block_nt_and_res0_bits_are_not_address_bits(granule: Granule, form: OAForm, level: int, size: int,
                                                     pa: int, field: int) -> None:
    """A block's OA starts at its size (Figure D8-14): bit 16 is nT (FEAT_BBML1) and the bits between the
    granule and the block size are RES0, so `paddr_np` of a block ignores them (a table's NLTA and a page's
    OA keep every bit from the granule up), and `with_paddr_np` keeps nT."""
    for codec in (A64Codec(OutputAddress(granule, form)), S2Codec(OutputAddress(granule, form))):
        block = codec.new_page(pa, R | W, True) | 1 << 16
        assert codec.paddr_np(block, True) == pa
        assert int(codec.paddr_np(np.array([block], dtype=np.uint64), True)[0]) == pa
        moved = codec.with_paddr_np(np.array([block], dtype=np.uint64), np.array([0], dtype=np.uint64), True)
        assert int(moved[0]) == (block & ~codec.address.field) | 1 << 16
        assert codec.paddr_np(codec.new_table(pa | granule.size), True) == pa | granule.size
        assert codec.paddr_np(codec.new_page(pa | granule.size, R, False), False) == pa | granule.size
