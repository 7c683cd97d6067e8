"""RISC-V PTE encoding (RiscvCodec, SPEC, ARCEOS) and satp, against the privileged spec's bit tables.

Sv39 PTE (RISC-V privileged spec, "Sv39" / "Svpbmt" / "Svnapot"): V=bit 0, R=1, W=2, X=3, U=4, G=5, A=6,
D=7, RSW=9:8, PPN=53:10, reserved 60:54, PBMT=62:61 (0 PMA, 1 NC, 2 IO, 3 reserved), N=63. Every expected
value below is written out by hand from that table, never computed with the library's own masks.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pagetable.arch.riscv_sv39 import ARCEOS, SATP, SPEC, SV39, SV48, SV57, RiscvCodec, Satp
from pagetable.errors import InvalidAddress, InvalidFlags
from pagetable.flags import MappingFlags

R, W, X, U = MappingFlags.READ, MappingFlags.WRITE, MappingFlags.EXECUTE, MappingFlags.USER
DEV, NC = MappingFlags.DEVICE, MappingFlags.UNCACHED
NONE = MappingFlags(0)

PA = 0x8020_0000
PPN_FIELD = 0x2008_0000            # 0x80200 << 10
PBMT_NC = 1 << 61
PBMT_IO = 2 << 61

SVPBMT = RiscvCodec(svpbmt=True)
GLOBAL = RiscvCodec(global_kernel=True)
HW_AD = RiscvCodec(ad="hardware")
ALL_CODECS = [SPEC, SVPBMT, GLOBAL, HW_AD, ARCEOS, RiscvCodec(svpbmt=True, ad="all", global_kernel=True)]

# (codec, flags, expected raw at PA 0x8020_0000)
CASES: list[tuple[str, RiscvCodec, MappingFlags, int]] = [
    # default SPEC codec: V + R/W/X/U, A on every leaf, D only on writable leaves; G never; no PBMT
    ("spec r", SPEC, R, PPN_FIELD | 0x43),
    ("spec rw", SPEC, R | W, PPN_FIELD | 0xC7),
    ("spec x", SPEC, X, PPN_FIELD | 0x49),
    ("spec rx", SPEC, R | X, PPN_FIELD | 0x4B),
    ("spec rwx", SPEC, R | W | X, PPN_FIELD | 0xCF),
    ("spec ru", SPEC, R | U, PPN_FIELD | 0x53),
    ("spec rwu", SPEC, R | W | U, PPN_FIELD | 0xD7),
    ("spec xu", SPEC, X | U, PPN_FIELD | 0x59),
    ("spec rxu", SPEC, R | X | U, PPN_FIELD | 0x5B),
    ("spec rwxu", SPEC, R | W | X | U, PPN_FIELD | 0xDF),
    ("spec device ignored", SPEC, R | DEV, PPN_FIELD | 0x43),
    ("spec uncached ignored", SPEC, R | W | NC, PPN_FIELD | 0xC7),
    ("spec empty", SPEC, NONE, PPN_FIELD),
    # Svpbmt: DEVICE -> PBMT=IO (2), UNCACHED -> NC (1), DEVICE wins
    ("pbmt pma", SVPBMT, R, PPN_FIELD | 0x43),
    ("pbmt io", SVPBMT, R | DEV, PBMT_IO | PPN_FIELD | 0x43),
    ("pbmt nc", SVPBMT, R | W | NC, PBMT_NC | PPN_FIELD | 0xC7),
    ("pbmt device wins", SVPBMT, R | W | DEV | NC, PBMT_IO | PPN_FIELD | 0xC7),
    ("pbmt io x", SVPBMT, X | DEV, PBMT_IO | PPN_FIELD | 0x49),
    ("pbmt empty", SVPBMT, NONE, PPN_FIELD),
    # global_kernel: G (bit 5) on non-USER leaves only
    ("global r", GLOBAL, R, PPN_FIELD | 0x63),
    ("global rw", GLOBAL, R | W, PPN_FIELD | 0xE7),
    ("global rx", GLOBAL, R | X, PPN_FIELD | 0x6B),
    ("global ru", GLOBAL, R | U, PPN_FIELD | 0x53),
    ("global rwxu", GLOBAL, R | W | X | U, PPN_FIELD | 0xDF),
    # ad="hardware": A = D = 0
    ("hw r", HW_AD, R, PPN_FIELD | 0x03),
    ("hw rw", HW_AD, R | W, PPN_FIELD | 0x07),
    ("hw x", HW_AD, X, PPN_FIELD | 0x09),
    ("hw rwxu", HW_AD, R | W | X | U, PPN_FIELD | 0x1F),
    # ARCEOS = page_table_multiarch 0.6.1 Rv64PTE: V|A|D on every non-empty leaf
    ("arceos rw", ARCEOS, R | W, 0x2008_00C7),
    ("arceos rxu", ARCEOS, R | X | U, PPN_FIELD | 0xDB),
    ("arceos rwxu", ARCEOS, R | W | X | U, PPN_FIELD | 0xDF),
    ("arceos r", ARCEOS, R, PPN_FIELD | 0xC3),
    ("arceos device ignored", ARCEOS, R | W | DEV, PPN_FIELD | 0xC7),
    ("arceos empty", ARCEOS, NONE, PPN_FIELD),
]


@pytest.mark.parametrize(("codec", "flags", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_leaf_encoding(codec: RiscvCodec, flags: MappingFlags, expected: int) -> None:
    assert codec.new_page(PA, flags, False) == expected
    assert codec.new_page(PA, flags, True) == expected            # the same PTE at every level
    pas = np.array([PA, PA + 0x1000, 0], dtype=np.uint64)
    got = codec.new_page_np(pas, flags, False)
    assert got.dtype == np.uint64
    assert got.tolist() == [expected, expected + (1 << 10), expected & ~PPN_FIELD]


def test_arceos_reproduces_page_table_multiarch_exactly() -> None:
    assert ARCEOS.new_page(0x8020_0000, R | W, False) == 0x2008_00C7
    assert ARCEOS.new_page(0, R | X | U, False) & 0x3FF == 0xDB
    assert ARCEOS.new_page(0, R | W | X | U, True) & 0x3FF == 0xDF
    assert ARCEOS.new_page(0x8020_0000, NONE, False) == 0x2008_0000             # V=0, PPN only
    assert ARCEOS.new_page(0x8020_0000, NONE, False) & 1 == 0
    assert ARCEOS.new_table(0x8020_1000) == 0x2008_0401


def test_ppn_extremes() -> None:
    top = (1 << 56) - 0x1000
    assert SPEC.new_page(top, R, False) == 0x003F_FFFF_FFFF_FC43
    assert SPEC.new_page(0, R, False) == 0x43
    assert SPEC.new_table(top) == 0x003F_FFFF_FFFF_FC01


@pytest.mark.parametrize("codec", ALL_CODECS)
def test_new_table_is_v_and_ppn_only(codec: RiscvCodec) -> None:
    assert codec.new_table(0x8020_1000) == 0x2008_0401
    assert codec.new_table(0) == 0x1
    assert codec.new_table(0x1234_5678_9000) == (0x1_2345_6789 << 10) | 1


@pytest.mark.parametrize("codec", ALL_CODECS)
@pytest.mark.parametrize("flags", [W, W | X, W | U, W | X | U, U, DEV, NC, DEV | NC | U, W | DEV])
def test_invalid_flags(codec: RiscvCodec, flags: MappingFlags) -> None:
    with pytest.raises(InvalidFlags, match="RISC-V cannot encode"):
        codec.new_page(PA, flags, False)
    with pytest.raises(InvalidFlags):
        codec.new_page_np(np.array([PA], dtype=np.uint64), flags, True)


def test_invalid_flags_messages_name_the_reason() -> None:
    with pytest.raises(InvalidFlags, match="W=1 with R=0"):
        SPEC.new_page(PA, W | X, False)
    with pytest.raises(InvalidFlags, match="needs R or X"):
        SPEC.new_page(PA, U, False)


def test_supported_flags() -> None:
    assert SPEC.supported_flags == R | W | X | U
    assert ARCEOS.supported_flags == R | W | X | U
    assert SVPBMT.supported_flags == R | W | X | U | DEV | NC


# --------------------------------------------------------------------------- decoding


def test_decode_fields() -> None:
    raw = np.array([0, PPN_FIELD | 0xC7, PPN_FIELD | 0xC6, PBMT_IO | PPN_FIELD | 0x43,
                    PBMT_NC | PPN_FIELD | 0x5B, 0x8000_0000_0000_0000 | PPN_FIELD | 0x49, 0x2008_0401,
                    PPN_FIELD | 0x3D7], dtype=np.uint64)
    assert SVPBMT.flags_np(raw, False).tolist() == [0, R | W, 0, R | DEV, R | X | U | NC, X, 0, R | W | U]
    assert SVPBMT.paddr_np(raw, True).tolist() == [0] + [PA] * 5 + [0x8020_1000, PA]
    assert SVPBMT.is_present_np(raw).tolist() == [False, True, False, True, True, True, True, True]
    assert SVPBMT.is_leaf_np(raw, True).tolist() == [False, True, False, True, True, True, False, True]
    assert SVPBMT.is_table_np(raw, False).tolist() == [False, False, False, False, False, False, True, False]
    assert SVPBMT.is_table_np(raw, True).tolist() == [False] * 8       # no tables at the last level


def test_reserved_w_only_entry_is_neither_leaf_nor_table() -> None:
    raw = np.array([PPN_FIELD | 0x05, PPN_FIELD | 0x0D], dtype=np.uint64)          # V|W, V|W|X
    assert SPEC.is_leaf_np(raw, False).tolist() == [False, True]
    assert SPEC.is_table_np(raw, False).tolist() == [False, False]


def test_without_svpbmt_pbmt_is_not_decoded() -> None:
    """Module docstring: without Svpbmt DEVICE/UNCACHED are not encoded "(and so not decoded either)"."""
    raw = np.array([PBMT_IO | PPN_FIELD | 0x43, PBMT_NC | PPN_FIELD | 0x43], dtype=np.uint64)
    assert SPEC.flags_np(raw, False).tolist() == [R, R]
    assert ARCEOS.flags_np(raw, False).tolist() == [R, R]


def test_with_paddr_keeps_every_other_bit() -> None:
    raw = np.array([0x4000_0000_2008_03D7, 0xFFC0_0000_0000_03FF], dtype=np.uint64)
    out = SPEC.with_paddr_np(raw, np.array([0x1000, 0x8020_0000], dtype=np.uint64), True)
    assert out.tolist() == [0x4000_0000_0000_07D7, 0xFFC0_0000_2008_03FF]


def test_demote_keeps_the_pte() -> None:
    assert SPEC.demote(0x4000_0000_2008_03D7, True) == 0x4000_0000_2008_03D7
    assert ARCEOS.demote(PPN_FIELD | 0xDF, False) == PPN_FIELD | 0xDF


def test_letters() -> None:
    blank = "  ..  "
    assert SPEC.letters(PPN_FIELD | 0xC7, False) == f". {blank} {blank} D A . . . W R V"
    assert SPEC.letters(0xC000_0000_0000_02FF, True) == "N MT(IO) RSW(2) D A G U X W R V"
    assert SPEC.letters(PBMT_NC | 0x1, False) == f". MT(NC) {blank} . . . . . . . V"


ENCODABLE = [f for f in (MappingFlags(n) for n in range(64))
             if not f or (f & (R | X) and not (f & W and not f & R))]
PAGE_PAS = st.lists(st.integers(0, (1 << 44) - 1).map(lambda p: p << 12), min_size=1, max_size=16)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(ALL_CODECS), st.sampled_from(ENCODABLE), PAGE_PAS, st.booleans())
def test_encode_decode_round_trip(codec: RiscvCodec, flags: MappingFlags, pas: list[int], huge: bool) -> None:
    arr = np.array(pas, dtype=np.uint64)
    raw = codec.new_page_np(arr, flags, huge)
    assert raw.tolist() == [codec.new_page(p, flags, huge) for p in pas]
    expected = flags & codec.supported_flags
    if expected & DEV:
        expected &= ~NC                                  # DEVICE wins over UNCACHED
    assert codec.flags_np(raw, huge).tolist() == [int(expected)] * len(pas)
    assert codec.paddr_np(raw, huge).tolist() == pas
    assert codec.is_present_np(raw).tolist() == [bool(flags)] * len(pas)
    assert codec.is_leaf_np(raw, not huge).tolist() == [bool(flags)] * len(pas)
    assert not codec.is_table_np(raw, False).any()
    # PPN in bits 53:10; nothing in the reserved bits 60:54 or the RSW bits
    assert all(r & 0x1FC0_0000_0000_0300 == 0 for r in raw.tolist())
    assert [(r >> 10) & ((1 << 44) - 1) for r in raw.tolist()] == [p >> 12 for p in pas]


@settings(max_examples=50, deadline=None)
@given(PAGE_PAS)
def test_new_table_round_trip(pas: list[int]) -> None:
    raw = np.array([SPEC.new_table(p) for p in pas], dtype=np.uint64)
    assert raw.tolist() == [(p >> 12) << 10 | 1 for p in pas]
    assert SPEC.paddr_np(raw, True).tolist() == pas
    assert SPEC.is_table_np(raw, False).all()
    assert not SPEC.is_leaf_np(raw, False).any()
    assert SPEC.flags_np(raw, True).tolist() == [0] * len(pas)


# --------------------------------------------------------------------------- satp


@pytest.mark.parametrize(("satp", "raw"), [
    (Satp(8, 0, 0x80200), 0x8000_0000_0008_0200),
    (Satp(9, 0x1234, 0x80200), 0x9123_4000_0008_0200),
    (Satp(10, 0xFFFF, (1 << 44) - 1), 0xAFFF_FFFF_FFFF_FFFF),
    (Satp(0, 0, 0), 0),
])
def test_satp_encode_decode(satp: Satp, raw: int) -> None:
    assert satp.encode() == raw
    assert Satp.decode(raw) == satp
    assert satp.root == satp.ppn << 12


def test_satp_formats() -> None:
    assert Satp(8, 0, 1).format is SV39
    assert Satp(9, 0, 1).format is SV48
    assert Satp(10, 0, 1).format is SV57
    assert Satp(0, 0, 0).format is None
    assert Satp.decode(0x8000_0000_0008_0200).root == 0x8020_0000


@pytest.mark.parametrize("mode", [1, 7, 11, 15])
def test_satp_decode_rejects_unknown_modes(mode: int) -> None:
    with pytest.raises(InvalidAddress, match=f"MODE {mode} "):
        Satp.decode(mode << 60 | 0x80200)


def test_satp_encode_rejects_too_wide_fields() -> None:
    with pytest.raises(ValueError, match="ASID"):
        Satp(8, 1 << 16, 0).encode()
    with pytest.raises(ValueError, match="PPN"):
        Satp(8, 0, 1 << 44).encode()


def test_satp_for_table() -> None:
    assert Satp.for_table(SV39, 0x8020_0000) == Satp(8, 0, 0x80200)
    assert Satp.for_table(SV48, 0x8020_0000, asid=7).encode() == 0x9000_7000_0008_0200
    assert Satp.for_table(SV57, 0x1000).encode() == 0xA000_0000_0000_0001
    assert Satp.for_table(SV39.with_codec(ARCEOS), 0x8020_0000).mode == 8
    with pytest.raises(InvalidAddress, match="0x80200800"):
        Satp.for_table(SV39, 0x8020_0800)
    with pytest.raises(ValueError, match="Sv39x4"):
        Satp.for_table(dataclasses.replace(SV39, name="Sv39x4"), 0x8020_0000)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([0, 8, 9, 10]), st.integers(0, 0xFFFF), st.integers(0, (1 << 44) - 1))
def test_satp_round_trip(mode: int, asid: int, ppn: int) -> None:
    raw = Satp(mode, asid, ppn).encode()
    assert raw == mode << 60 | asid << 44 | ppn
    assert Satp.decode(raw) == Satp(mode, asid, ppn)
    assert SATP.parse(raw) == {"MODE": mode, "ASID": asid, "PPN": ppn}
