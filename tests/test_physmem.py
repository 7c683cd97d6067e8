"""PhysMem: RAM regions, byte and u64 access (scalar and vectorised), range errors, raw images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pagetable.errors import InvalidArgument, InvalidArgumentType, PhysMemError
from pagetable.physmem import PhysMem

BASE = 0x8000_0000
SIZE = 0x1_0000
HI_BASE = 0x1_0000_0000


def two_regions() -> PhysMem:
    """64 KiB at 0x8000_0000 and 8 KiB at 0x1_0000_0000 (given out of order on purpose)."""
    return PhysMem([(HI_BASE, 0x2000), (BASE, SIZE)])


# --------------------------------------------------------------------------- construction


def test_regions_are_zeroed_and_sorted_by_base() -> None:
    mem = two_regions()
    assert [(r.base, r.size, r.end) for r in mem.regions] == [(BASE, SIZE, BASE + SIZE),
                                                              (HI_BASE, 0x2000, HI_BASE + 0x2000)]
    assert not mem.regions[0].data.any()
    assert not mem.regions[1].data.any()
    assert mem.describe() == "[0x80000000, 0x80010000), [0x100000000, 0x100002000)"


def test_given_array_is_kept_not_copied() -> None:
    backing = np.zeros(0x1000, dtype=np.uint8)
    mem = PhysMem([(0x1000, backing)])
    mem.write_u64(0x1008, 0x1122_3344_5566_7788)
    assert backing[8:16].tolist() == [0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]
    backing[0] = 0xAB
    assert mem.read(0x1000, 1) == b"\xab"


@pytest.mark.parametrize(("regions", "message"), [
    ([(0x1004, 0x1000)], "0x1004"),                   # base not a multiple of 8
    ([(0x1000, 0x1004)], "0x1004"),                   # size not a multiple of 8
    ([(0x1000, 0)], "0x1000"),                        # empty region
    ([(-8, 0x1000)], "region base -8 is negative"),   # negative base
    ([(0x1000, 0x2000), (0x2000, 0x1000)], "overlap"),
    ([(0x2000, 0x1000), (0x1000, 0x1008)], "overlap"),
    ([], "at least one region"),
])
def test_bad_region_lists_are_rejected(regions: list[tuple[int, int]], message: str) -> None:
    with pytest.raises(PhysMemError, match=message):
        PhysMem(regions)


def test_region_array_must_be_1d_uint8() -> None:
    with pytest.raises(PhysMemError, match="uint8"):
        PhysMem([(0, np.zeros(16, dtype=np.uint16))])
    with pytest.raises(PhysMemError, match="one-dimensional"):
        PhysMem([(0, np.zeros((2, 8), dtype=np.uint8))])


def test_adjacent_regions_are_allowed() -> None:
    mem = PhysMem([(0x1000, 0x1000), (0x2000, 0x1000)])
    assert len(mem.regions) == 2


# --------------------------------------------------------------------------- contains


def test_contains_edges() -> None:
    mem = two_regions()
    assert mem.contains(BASE)
    assert mem.contains(BASE, SIZE)
    assert mem.contains(BASE + SIZE - 8, 8)
    assert not mem.contains(BASE + SIZE - 4, 8)
    assert not mem.contains(BASE - 1)
    assert not mem.contains(BASE + SIZE)
    assert mem.contains(HI_BASE + 0x1FFF)
    assert not mem.contains(HI_BASE + 0x2000)


def test_a_range_spanning_two_adjacent_regions_is_not_contained() -> None:
    mem = PhysMem([(0x1000, 0x1000), (0x2000, 0x1000)])
    assert not mem.contains(0x1FF8, 16)
    with pytest.raises(PhysMemError, match="0x1ff8"):
        mem.read(0x1FF8, 16)
    with pytest.raises(PhysMemError, match="0x1ffc"):
        mem.read_u64(0x1FFC)


def test_contains_np_matches_the_edges() -> None:
    mem = two_regions()
    pas = np.array([BASE - 8, BASE, BASE + SIZE - 8, BASE + SIZE - 4, BASE + SIZE, HI_BASE, HI_BASE + 0x1FF8,
                    HI_BASE + 0x2000, 0], dtype=np.uint64)
    assert mem.contains_np(pas).tolist() == [False, True, True, False, False, True, True, False, False]
    assert mem.contains_np(pas, 1).tolist() == [False, True, True, True, False, True, True, False, False]


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([0, 8, 0xFF8, BASE, BASE + SIZE - 8, HI_BASE])),
       st.sampled_from([1, 8, 16, 0x1000, 0x2000]))
def test_contains_np_agrees_with_contains(pa: int, size: int) -> None:
    mem = PhysMem([(0, 0x1000), (BASE, SIZE), (HI_BASE, 0x2000)])
    assert bool(mem.contains_np(np.array([pa], dtype=np.uint64), size)[0]) == mem.contains(pa, size)


def test_contains_np_size_larger_than_a_region_at_zero() -> None:
    """[0, 0x2000) is not inside a 4 KiB region at PA 0 (end - size must not wrap around)."""
    mem = PhysMem([(0, 0x1000)])
    assert not mem.contains(0, 0x2000)
    assert mem.contains_np(np.array([0, 0x800], dtype=np.uint64), 0x2000).tolist() == [False, False]


# --------------------------------------------------------------------------- scalar IO


def test_write_u64_is_little_endian() -> None:
    mem = two_regions()
    mem.write_u64(BASE + 0x10, 0x0102_0304_0506_0708)
    assert mem.read(BASE + 0x10, 8) == bytes([8, 7, 6, 5, 4, 3, 2, 1])
    assert mem.read_u64(BASE + 0x10) == 0x0102_0304_0506_0708
    # the bytes around it are untouched
    assert mem.read(BASE + 0x8, 8) == bytes(8)
    assert mem.read(BASE + 0x18, 8) == bytes(8)


def test_unaligned_u64_access() -> None:
    mem = two_regions()
    mem.write_u64(BASE + 3, 0xFFEE_DDCC_BBAA_9988)
    assert mem.read(BASE, 16) == bytes([0, 0, 0, 0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF, 0, 0, 0, 0, 0])
    assert mem.read_u64(BASE + 3) == 0xFFEE_DDCC_BBAA_9988
    assert mem.read_u64(BASE) == 0xCCBB_AA99_8800_0000


def test_write_and_read_bytes_in_the_second_region() -> None:
    mem = two_regions()
    mem.write(HI_BASE + 0x100, b"hello")
    mem.write(HI_BASE + 0x200, np.array([1, 2, 3], dtype=np.uint8))
    assert mem.read(HI_BASE + 0xFF, 7) == b"\x00hello\x00"
    assert mem.read(HI_BASE + 0x200, 3) == b"\x01\x02\x03"
    assert mem.regions[1].data[0x100:0x105].tobytes() == b"hello"
    assert not mem.regions[0].data.any()


def test_u64_extremes_and_too_wide_values() -> None:
    mem = two_regions()
    mem.write_u64(BASE, 2**64 - 1)
    assert mem.read_u64(BASE) == 2**64 - 1
    assert mem.read(BASE, 8) == b"\xff" * 8
    with pytest.raises(InvalidArgument, match="0x10000000000000000 does not fit in 64 bits"):
        mem.write_u64(BASE, 2**64)
    with pytest.raises(InvalidArgument, match="-1 is negative"):
        mem.write_u64(BASE, -1)
    assert mem.read_u64(BASE) == 2**64 - 1


@pytest.mark.parametrize("pa", [BASE - 8, BASE + SIZE, BASE + SIZE - 4, 0, HI_BASE + 0x2000, HI_BASE - 8])
def test_scalar_access_outside_ram_names_the_address(pa: int) -> None:
    mem = two_regions()
    before = [r.data.copy() for r in mem.regions]
    with pytest.raises(PhysMemError, match=f"{pa:#x}"):
        mem.read_u64(pa)
    with pytest.raises(PhysMemError, match=f"{pa:#x}"):
        mem.write_u64(pa, 0x1234)
    with pytest.raises(PhysMemError, match=f"{pa:#x}"):
        mem.read(pa, 8)
    with pytest.raises(PhysMemError, match=f"{pa:#x}"):
        mem.write(pa, b"12345678")
    with pytest.raises(PhysMemError, match=f"{pa:#x}"):
        mem.view(pa, 8)
    with pytest.raises(PhysMemError, match=f"{pa:#x}"):
        mem.fill(pa, 8, 0xFF)
    for r, old in zip(mem.regions, before, strict=True):
        assert np.array_equal(r.data, old)


def test_view_and_words_write_through() -> None:
    mem = two_regions()
    mem.view(BASE + 8, 4)[:] = [1, 2, 3, 4]
    assert mem.read(BASE + 8, 4) == b"\x01\x02\x03\x04"
    w = mem.words(BASE + 0x1000, 512)
    assert w.shape == (512,)
    w[3] = 0xDEAD_BEEF_0000_0001
    assert mem.read_u64(BASE + 0x1018) == 0xDEAD_BEEF_0000_0001
    with pytest.raises(PhysMemError, match="0x80001004"):
        mem.words(BASE + 0x1004, 2)
    with pytest.raises(PhysMemError, match="0x8000f008"):
        mem.words(BASE + SIZE - 0xFF8, 512)


def test_fill() -> None:
    mem = two_regions()
    mem.fill(BASE + 0x10, 0x20, 0x5A)
    assert mem.read(BASE + 0x8, 0x30) == bytes(8) + b"\x5a" * 0x20 + bytes(8)
    mem.fill(BASE + 0x18, 8)
    assert mem.read_u64(BASE + 0x18) == 0


# --------------------------------------------------------------------------- vectorised IO


def test_u64_np_round_trip_across_regions() -> None:
    mem = two_regions()
    pas = np.array([HI_BASE + 0x1FF8, BASE, BASE + SIZE - 8, HI_BASE], dtype=np.uint64)
    vals = np.array([1, 2**64 - 1, 0x8000_0000_0000_0000, 0x0123_4567_89AB_CDEF], dtype=np.uint64)
    mem.write_u64_np(pas, vals)
    assert mem.read_u64(HI_BASE + 0x1FF8) == 1
    assert mem.read_u64(BASE) == 2**64 - 1
    assert mem.read_u64(BASE + SIZE - 8) == 0x8000_0000_0000_0000
    assert mem.read(HI_BASE, 8) == bytes([0xEF, 0xCD, 0xAB, 0x89, 0x67, 0x45, 0x23, 0x01])
    assert mem.read_u64_np(pas).tolist() == vals.tolist()


def test_u64_np_single_region_and_broadcast_value() -> None:
    mem = PhysMem([(BASE, SIZE)])
    pas = BASE + np.arange(4, dtype=np.uint64) * np.uint64(0x1000)
    mem.write_u64_np(pas, np.uint64(0xAA))  # type: ignore[arg-type]
    assert [mem.read_u64(int(p)) for p in pas] == [0xAA] * 4
    assert mem.read_u64_np(pas).tolist() == [0xAA] * 4
    assert mem.read_u64(BASE + 8) == 0


def test_u64_np_empty() -> None:
    mem = two_regions()
    out = mem.read_u64_np(np.zeros(0, dtype=np.uint64))
    assert out.shape == (0,)
    mem.write_u64_np(np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.uint64))


@pytest.mark.parametrize("bad", [BASE - 8, BASE + SIZE, HI_BASE - 8, HI_BASE + 0x2000, 0,
                                 0x9000_0000])
def test_u64_np_outside_ram_names_the_address_and_writes_nothing(bad: int) -> None:
    mem = two_regions()
    pas = np.array([BASE, bad, HI_BASE], dtype=np.uint64)
    with pytest.raises(PhysMemError, match=f"{bad:#x}"):
        mem.read_u64_np(pas)
    with pytest.raises(PhysMemError, match=f"{bad:#x}"):
        mem.write_u64_np(pas, np.array([7, 7, 7], dtype=np.uint64))
    assert mem.read_u64(BASE) == 0
    assert mem.read_u64(HI_BASE) == 0


def test_u64_np_unaligned_names_the_address() -> None:
    mem = two_regions()
    with pytest.raises(PhysMemError, match="0x80000004"):
        mem.read_u64_np(np.array([BASE, BASE + 4], dtype=np.uint64))
    with pytest.raises(PhysMemError, match="0x80000004"):
        mem.write_u64_np(np.array([BASE + 4], dtype=np.uint64), np.array([1], dtype=np.uint64))


@pytest.mark.parametrize("pa", [2**64 - 8, 2**64 - 0x1000, HI_BASE * 2])
def test_u64_np_far_above_ram_is_a_physmem_error(pa: int) -> None:
    """An address above every region (even one where pa + 8 wraps around 2**64) is a PhysMemError."""
    mem = PhysMem([(0, 0x1000)])
    with pytest.raises(PhysMemError, match=f"{pa:#x}"):
        mem.read_u64_np(np.array([pa], dtype=np.uint64))
    with pytest.raises(PhysMemError, match=f"{pa:#x}"):
        mem.write_u64_np(np.array([pa], dtype=np.uint64), np.array([1], dtype=np.uint64))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([(BASE, SIZE // 8), (HI_BASE, 0x2000 // 8)]).flatmap(
    lambda r: st.integers(0, r[1] - 1).map(lambda i: r[0] + 8 * i)), st.integers(0, 2**64 - 1)),
    min_size=1, max_size=20, unique_by=lambda t: t[0]))
def test_scalar_and_vectorised_access_agree(writes: list[tuple[int, int]]) -> None:
    a, b = two_regions(), two_regions()
    for pa, v in writes:
        a.write_u64(pa, v)
    pas = np.array([pa for pa, _ in writes], dtype=np.uint64)
    b.write_u64_np(pas, np.array([v for _, v in writes], dtype=np.uint64))
    for ra, rb in zip(a.regions, b.regions, strict=True):
        assert np.array_equal(ra.data, rb.data)
    assert b.read_u64_np(pas).tolist() == [a.read_u64(pa) for pa, _ in writes]


# --------------------------------------------------------------------------- images


def test_save_load_round_trip_single_region(tmp_path: Path) -> None:
    mem = PhysMem([(BASE, SIZE)])
    mem.write_u64(BASE + 0x40, 0x1122_3344_5566_7788)
    mem.write(BASE + SIZE - 3, b"end")
    files = mem.save(tmp_path)
    assert files == [("mem.bin", BASE)]
    raw = (tmp_path / "mem.bin").read_bytes()
    assert len(raw) == SIZE
    assert raw[0x40:0x48] == bytes([0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11])
    loaded = PhysMem.load([(tmp_path / name, base) for name, base in files])
    assert [(r.base, r.size) for r in loaded.regions] == [(BASE, SIZE)]
    assert np.array_equal(loaded.regions[0].data, mem.regions[0].data)
    assert loaded.read_u64(BASE + 0x40) == 0x1122_3344_5566_7788


def test_save_load_round_trip_several_regions(tmp_path: Path) -> None:
    mem = two_regions()
    mem.write_u64(BASE, 1)
    mem.write_u64(HI_BASE + 0x1FF8, 2)
    files = mem.save(tmp_path, stem="dump")
    assert files == [("dump-0.bin", BASE), ("dump-1.bin", HI_BASE)]
    loaded = PhysMem.load([(str(tmp_path / name), base) for name, base in files])
    assert loaded.describe() == mem.describe()
    assert loaded.read_u64_np(np.array([BASE, HI_BASE + 0x1FF8], dtype=np.uint64)).tolist() == [1, 2]


def test_load_copy_on_write_leaves_the_file_alone(tmp_path: Path) -> None:
    PhysMem([(0x1000, 0x1000)]).save(tmp_path)
    path = tmp_path / "mem.bin"
    loaded = PhysMem.load([(path, 0x1000)])
    loaded.write_u64(0x1000, 0xFFFF)
    assert loaded.read_u64(0x1000) == 0xFFFF
    assert path.read_bytes() == bytes(0x1000)


def test_load_writable_writes_through_to_the_file(tmp_path: Path) -> None:
    PhysMem([(0x1000, 0x1000)]).save(tmp_path)
    path = tmp_path / "mem.bin"
    loaded = PhysMem.load([(path, 0x1000)], writable=True)
    loaded.write_u64(0x1008, 0xABCD)
    data = loaded.regions[0].data
    assert isinstance(data, np.memmap)
    data.flush()
    assert path.read_bytes()[8:16] == bytes([0xCD, 0xAB, 0, 0, 0, 0, 0, 0])


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.bin"
    with pytest.raises(PhysMemError, match=r"nope\.bin"):
        PhysMem.load([(missing, 0)])
    odd = tmp_path / "odd.bin"
    odd.write_bytes(b"12345")
    with pytest.raises(PhysMemError, match=r"odd\.bin.*5 bytes"):
        PhysMem.load([(odd, 0)])
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(PhysMemError, match=r"empty\.bin"):
        PhysMem.load([(empty, 0)])


# ------------------------------------------------------------- bad arguments change nothing (issue 9)
def _snapshot(mem: PhysMem) -> list[bytes]:
    return [r.data.tobytes() for r in mem.regions]


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda m: m.fill(BASE, -1, 0xAA), InvalidArgument, "size -1 is negative"),
    (lambda m: m.read(BASE + 0x1000, -8), InvalidArgument, "size -8 is negative"),
    (lambda m: m.words(BASE + 0x1000, -1), InvalidArgument, "word count -1 is negative"),
    (lambda m: m.view(BASE, -4096), InvalidArgument, "is negative"),
    (lambda m: m.fill(BASE, 8, 256), InvalidArgument, "fill byte 256 does not fit in 8 bits"),
    (lambda m: m.read(float(BASE), 8), InvalidArgumentType, "must be an integer, not float"),
    (lambda m: m.read(str(BASE), 8), InvalidArgumentType, "must be an integer, not str"),
    (lambda m: m.read(BASE, 8.0), InvalidArgumentType, "must be an integer, not float"),
    (lambda m: m.read(True, 8), InvalidArgumentType, "must be an integer, not bool"),
    (lambda m: m.write(BASE, [1, 2, 3]), InvalidArgumentType, "bytes-like"),
    (lambda m: m.write(BASE, "abc"), InvalidArgumentType, "bytes-like"),
    (lambda m: m.write(BASE, np.zeros(4, dtype=np.int32)), InvalidArgumentType, "uint8"),
    (lambda m: m.write_u64(BASE, 1.5), InvalidArgumentType, "u64 value must be an integer"),
    (lambda m: m.read((1 << 64) - 8, 16), InvalidArgument, "ends beyond 2\\*\\*64"),
    (lambda m: m.read_u64(1 << 64), InvalidArgument, "does not fit in 64 bits"),
    (lambda m: m.read_u64_np([BASE, -8]), InvalidArgument, "-8 is negative"),
    (lambda m: m.read_u64_np(np.array([BASE + 0.5])), InvalidArgumentType, "not floats"),
    (lambda m: m.write_u64_np([BASE, BASE + 8], [1, 2, 3]), InvalidArgument, "3 values for 2 addresses"),
    (lambda m: m.write_u64_np([BASE], [-1]), InvalidArgument, "-1 is negative"),
    (lambda m: m.write_u64_np([BASE], [2**64]), InvalidArgument, "does not fit in 64 bits"),
    (lambda m: m.contains_np([BASE], -1), InvalidArgument, "size -1 is negative"),
])
def test_bad_arguments_raise_and_change_nothing(call: object, error: type[Exception], message: str) -> None:
    """Negative sizes used to be read as "to the end of the region": fill(pa, -1) overwrote the whole region,
    read(pa, -8) returned 4,088 bytes, words(pa, -1) 511 words."""
    mem = two_regions()
    mem.write(BASE, bytes(range(256)) * (SIZE // 256))
    before = _snapshot(mem)
    with pytest.raises(error, match=message):
        call(mem)  # type: ignore[operator]
    assert _snapshot(mem) == before


def test_numpy_integers_are_integers() -> None:
    mem = two_regions()
    mem.write_u64(np.uint64(BASE), np.uint64(7))  # type: ignore[arg-type]
    assert mem.read(np.int64(BASE), np.int32(8)) == (7).to_bytes(8, "little")  # type: ignore[arg-type]
    assert mem.read_u64_np(np.array([BASE], dtype=np.int64)).tolist() == [7]


@pytest.mark.parametrize(("regions", "message"), [
    ([((1 << 64) - 8, 16)], "ends beyond 2\\*\\*64"),           # accepted before: [..., 0x10000000000000008)
    ([((1 << 64) + 8, 16)], "region base 0x10000000000000008 does not fit in 64 bits"),   # was OverflowError
    ([(1.5, 16)], "region base must be an integer"),
    ([(0x1000, "16")], "region size must be an integer"),
    ([(0x1000, -16)], "region size -16 is negative"),
])
def test_regions_beyond_2_64_or_of_the_wrong_type_are_physmem_errors(regions: list[tuple[object, object]],
                                                                      message: str) -> None:
    with pytest.raises(PhysMemError, match=message):
        PhysMem(regions)  # type: ignore[arg-type]


def test_region_lists_of_the_wrong_shape() -> None:
    with pytest.raises(InvalidArgumentType, match="iterable"):
        PhysMem(5)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentType, match="pair"):
        PhysMem([(0x1000, 16, 3)])  # type: ignore[list-item]


def test_a_region_the_machine_cannot_hold_is_a_physmem_error() -> None:
    with pytest.raises(PhysMemError, match="more than this machine's"):
        PhysMem([(0, 1 << 64)])
    with pytest.raises(PhysMemError, match="more than this machine's"):
        PhysMem([(0x8000_0008, 1 << 60)])       # numpy would report a failed 1 EiB allocation to tracemalloc


def test_load_refuses_directories_and_bad_bases(tmp_path: Path) -> None:
    (tmp_path / "mem.bin").write_bytes(bytes(4096))
    with pytest.raises(PhysMemError, match="is a directory"):
        PhysMem.load([(tmp_path, BASE)])
    with pytest.raises(PhysMemError, match="is missing"):
        PhysMem.load([(tmp_path / "nope.bin", BASE)])
    with pytest.raises(InvalidArgument, match="does not fit in 64 bits"):
        PhysMem.load([(tmp_path / "mem.bin", 1 << 64)])
    with pytest.raises(PhysMemError, match="ends beyond 2\\*\\*64"):
        PhysMem.load([(tmp_path / "mem.bin", (1 << 64) - 4096 + 8)])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([0, 8, 0xFF8, 0x1000, BASE - 8, BASE, BASE + 0x1000, BASE + SIZE - 8, BASE + SIZE,
                                 HI_BASE, HI_BASE + 0x1FF8, HI_BASE + 0x2000, 2**64 - 8]), min_size=1, max_size=6),
       st.sampled_from([1, 8, 0x1000]))
def test_contains_np_of_a_column_agrees_with_contains(pas: list[int], size: int) -> None:
    """A column wholly inside one region, or spread over several and outside them: each lane as `contains`."""
    mem = PhysMem([(0, 0x1000), (BASE, SIZE), (HI_BASE, 0x2000)])
    assert mem.contains_np(np.array(pas, dtype=np.uint64), size).tolist() == [mem.contains(p, size) for p in pas]
