"""Field / Layout: scalar and numpy get/set/build, construct parse/build, explain()."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pagetable.arch.riscv_sv39 import PTE, SATP
from pagetable.layout import Field, Layout

U64S = st.integers(0, 2**64 - 1)

# A 16-bit layout with gaps at 15:13, 8:5 and 1:0.
GAPPY = Layout("gappy", 16, [Field("b", 9, 4, "bee"), Field("a", 2, 3, "ay", {5: "five"})], "test")

PTE_FIELDS = [("N", 63, 1), ("PBMT", 61, 2), ("Reserved", 54, 7), ("PPN", 10, 44), ("RSW", 8, 2),
              ("D", 7, 1), ("A", 6, 1), ("G", 5, 1), ("U", 4, 1), ("X", 3, 1), ("W", 2, 1), ("R", 1, 1),
              ("V", 0, 1)]
SATP_FIELDS = [("MODE", 60, 4), ("ASID", 44, 16), ("PPN", 0, 44)]


def test_field_geometry() -> None:
    f = Field("PPN", 10, 44, "physical page number")
    assert f.mask == 0x003F_FFFF_FFFF_FC00
    assert f.msb == 53
    assert f.bits == "53:10"
    one = Field("N", 63, 1, "napot")
    assert (one.mask, one.msb, one.bits) == (1 << 63, 63, "63")


def test_the_riscv_pte_declaration_matches_the_spec_bit_table() -> None:
    assert [(f.name, f.lsb, f.width) for f in reversed(PTE.fields)] == PTE_FIELDS
    assert PTE.mask("V") == 0x1
    assert PTE.mask("R", "W", "X") == 0xE
    assert PTE.mask("U", "G", "A", "D") == 0xF0
    assert PTE.mask("RSW") == 0x300
    assert PTE.mask("Reserved") == 0x1FC0_0000_0000_0000
    assert PTE.mask("PBMT") == 0x6000_0000_0000_0000
    assert PTE.mask("N") == 0x8000_0000_0000_0000
    assert PTE["PPN"].mask == 0x003F_FFFF_FFFF_FC00


def test_satp_declaration() -> None:
    assert [(f.name, f.lsb, f.width) for f in reversed(SATP.fields)] == SATP_FIELDS


@pytest.mark.parametrize("fields", [
    [Field("a", 0, 4, ""), Field("b", 3, 2, "")],      # overlap
    [Field("a", 0, 4, ""), Field("b", 14, 4, "")],     # past the width
])
def test_bad_layouts(fields: list[Field]) -> None:
    with pytest.raises(ValueError, match="bad"):
        Layout("bad", 16, fields, "")


def test_get_set_build() -> None:
    raw = 0x2008_00C7
    assert PTE.get(raw, "PPN") == 0x80200
    assert PTE.get(raw, "D") == 1
    assert PTE.get(raw, "U") == 0
    assert PTE.get(raw, "RSW") == 0
    assert PTE.set(raw, "U", 1) == 0x2008_00D7
    assert PTE.set(raw, "PPN", 0x1) == 0x4C7
    assert PTE.set(raw, "D", 0) == 0x2008_0047
    assert PTE.set(2**64 - 1, "PBMT", 1) == 0xBFFF_FFFF_FFFF_FFFF
    assert PTE.build(V=1, R=1, W=1, A=1, D=1, PPN=0x80200) == 0x2008_00C7
    assert PTE.build() == 0
    assert PTE.build(N=1, PBMT=2) == 0xC000_0000_0000_0000
    assert SATP.build(MODE=8, ASID=0xFFFF, PPN=0x80200) == 0x8FFF_F000_0008_0200


@pytest.mark.parametrize(("name", "value"), [("V", 2), ("PBMT", 4), ("PPN", 1 << 44), ("RSW", -1),
                                             ("Reserved", 0x80)])
def test_set_of_a_too_wide_value_raises(name: str, value: int) -> None:
    with pytest.raises(ValueError, match=re.escape(f"RISC-V PTE.{name}")):
        PTE.set(0, name, value)
    with pytest.raises(ValueError, match=name):
        PTE.build(**{name: value})


def test_unknown_bits() -> None:
    assert GAPPY.unknown_bits(0xFFFF) == 0b1110_0001_1110_0011
    assert GAPPY.unknown_bits(0b0001_1110_0001_1100) == 0
    assert PTE.unknown_bits(2**64 - 1) == 0             # the PTE declares all 64 bits


def test_numpy_get_set() -> None:
    raw = np.array([0, 0x2008_00C7, 2**64 - 1, 0x8000_0000_0000_0001], dtype=np.uint64)
    assert PTE.get_np(raw, "PPN").tolist() == [0, 0x80200, (1 << 44) - 1, 0]
    assert PTE.get_np(raw, "N").tolist() == [0, 0, 1, 1]
    assert PTE.get_np(raw, "PBMT").tolist() == [0, 0, 3, 0]
    out = PTE.set_np(raw, "PPN", np.array([1, 2, 3, 4], dtype=np.uint64))
    assert out.dtype == np.uint64
    assert out.tolist() == [0x400, 0x8C7, 0xFFC0_0000_0000_0FFF, 0x8000_0000_0000_1001]
    assert PTE.set_np(raw, "V", 0).tolist() == [0, 0x2008_00C6, 2**64 - 2, 0x8000_0000_0000_0000]
    with pytest.raises(ValueError, match="2 bits"):
        PTE.set_np(raw, "PBMT", np.array([0, 1, 2, 4], dtype=np.uint64))
    with pytest.raises(ValueError, match="44 bits"):
        PTE.set_np(raw, "PPN", 1 << 44)
    with pytest.raises(ValueError, match="-1 is negative"):
        PTE.set_np(raw, "V", np.array([0, 0, 0, -1]))


def test_numpy_set_of_a_negative_scalar_raises_value_error_like_set() -> None:
    raw = np.zeros(2, dtype=np.uint64)
    with pytest.raises(ValueError, match=r"RISC-V PTE\.V"):
        PTE.set(0, "V", -1)
    with pytest.raises(ValueError, match=r"RISC-V PTE\.V"):
        PTE.set_np(raw, "V", -1)


@settings(max_examples=100, deadline=None)
@given(U64S, st.sampled_from([n for n, _, _ in PTE_FIELDS]), U64S)
def test_scalar_and_numpy_agree(raw: int, name: str, value: int) -> None:
    f = PTE[name]
    value &= (1 << f.width) - 1
    arr = np.array([raw], dtype=np.uint64)
    assert int(PTE.get_np(arr, name)[0]) == PTE.get(raw, name) == (raw >> f.lsb) & ((1 << f.width) - 1)
    new = PTE.set(raw, name, value)
    assert int(PTE.set_np(arr, name, value)[0]) == new
    assert PTE.get(new, name) == value
    assert new & ~f.mask == raw & ~f.mask            # nothing else changed


@settings(max_examples=100, deadline=None)
@given(U64S)
def test_construct_parse_agrees_with_the_masks(raw: int) -> None:
    for layout in (PTE, SATP):
        parsed = layout.parse(raw)
        assert parsed == {f.name: (raw & f.mask) >> f.lsb for f in layout.fields}
        assert layout.to_bytes(**parsed) == raw.to_bytes(8, "little")
        assert int.from_bytes(layout.to_bytes(**parsed), "little") == layout.build(**parsed)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 0xFFFF))
def test_construct_names_the_gaps(raw: int) -> None:
    parsed = GAPPY.parse(raw)
    assert parsed == {"_gap_15_13": raw >> 13, "b": (raw >> 9) & 0xF, "_gap_8_5": (raw >> 5) & 0xF,
                      "a": (raw >> 2) & 0x7, "_gap_1_0": raw & 0x3}
    assert GAPPY.to_bytes(**parsed) == raw.to_bytes(2, "little")
    declared = {k: v for k, v in parsed.items() if not k.startswith("_gap")}
    assert int.from_bytes(GAPPY.to_bytes(**declared), "little") == GAPPY.build(**declared) == raw & 0x1E1C


def test_to_bytes_with_some_fields() -> None:
    assert PTE.to_bytes(V=1, PPN=0x80200) == bytes([0x01, 0x00, 0x08, 0x20, 0, 0, 0, 0])
    assert SATP.to_bytes(MODE=8) == bytes([0, 0, 0, 0, 0, 0, 0, 0x80])


def test_explain_lists_every_pte_field_msb_first() -> None:
    raw = 0x4000_0000_2008_03D7            # PBMT=IO, PPN=0x80200, RSW=3, D, A, U, W, R, V
    got = [(fv.field.name, fv.value, fv.meaning) for fv in PTE.explain(raw)]
    assert got == [("N", 0, ""), ("PBMT", 2, "IO"), ("Reserved", 0, ""), ("PPN", 0x80200, ""), ("RSW", 3, ""),
                   ("D", 1, ""), ("A", 1, ""), ("G", 0, ""), ("U", 1, ""), ("X", 0, ""), ("W", 1, ""),
                   ("R", 1, ""), ("V", 1, "")]


def test_explain_lists_every_satp_field() -> None:
    raw = 0x9123_4000_0008_0200
    got = [(fv.field.name, fv.value, fv.meaning) for fv in SATP.explain(raw)]
    assert got == [("MODE", 9, "Sv48"), ("ASID", 0x1234, ""), ("PPN", 0x80200, "")]


def test_format_renders_each_field() -> None:
    text = PTE.format(0x4000_0000_2008_03D7)
    lines = text.splitlines()
    assert lines[0].startswith("RISC-V PTE 0x40000000200803d7  (RISC-V privileged spec")
    assert len(lines) == 1 + 13
    body = {line.split("]")[1].split()[0]: line for line in lines[1:]}
    assert list(body) == [n for n, _, _ in PTE_FIELDS]
    assert "[61:62]" not in text
    assert body["PBMT"].strip().startswith("[62:61] PBMT")
    assert "= 2 (10)  IO" in body["PBMT"]
    assert "= 0x80200" in body["PPN"]
    assert "= 3 (11)" in body["RSW"]
    assert "= 1   # dirty" in body["D"]
    sat = SATP.format(0x8000_0000_0008_0200).splitlines()
    assert sat[0] == "satp 0x8000000000080200  (RISC-V privileged spec, satp register (RV64))"
    assert "= 8 (1000)  Sv39" in sat[1]
