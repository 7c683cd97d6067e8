"""FrameAllocator: single and multi-frame aligned allocation, exact frees, reference counts, accounting."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pagetable.errors import InvalidArgument, InvalidArgumentType, NoMemory, PhysMemError
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem

BASE = 0x8000_0000
FRAME = 0x1000


def make(frames: int = 16, base: int = BASE) -> tuple[PhysMem, FrameAllocator]:
    mem = PhysMem([(base, frames * FRAME)])
    return mem, FrameAllocator(mem)


def test_defaults_cover_the_first_region() -> None:
    mem = PhysMem([(BASE, 16 * FRAME), (0x1_0000_0000, 4 * FRAME)])
    fa = FrameAllocator(mem)
    assert (fa.base, fa.total, fa.frame_size, fa.in_use, fa.live()) == (BASE, 16, FRAME, 0, {})


def test_sub_range() -> None:
    mem = PhysMem([(BASE, 16 * FRAME)])
    fa = FrameAllocator(mem, base=BASE + 4 * FRAME, size=2 * FRAME)
    assert fa.total == 2
    assert fa.alloc() == BASE + 4 * FRAME
    assert fa.alloc() == BASE + 5 * FRAME
    with pytest.raises(NoMemory):
        fa.alloc()


@pytest.mark.parametrize(("base", "size"), [(BASE + 8, 4 * FRAME), (BASE, 4 * FRAME + 8), (BASE, 0),
                                            (BASE + 14 * FRAME, 4 * FRAME), (BASE - FRAME, 2 * FRAME)])
def test_bad_ranges(base: int, size: int) -> None:
    mem = PhysMem([(BASE, 16 * FRAME)])
    with pytest.raises(PhysMemError, match=f"{base:#x}"):
        FrameAllocator(mem, base=base, size=size)


def test_single_frames_are_sequential_and_zeroed() -> None:
    mem, fa = make(4)
    mem.fill(BASE, 4 * FRAME, 0xCC)
    a = fa.alloc()
    assert a == BASE
    assert mem.read(a, FRAME) == bytes(FRAME)
    assert mem.read(BASE + FRAME, 1) == b"\xcc"         # the next frame was not touched
    b = fa.alloc(zero=False)
    assert b == BASE + FRAME
    assert mem.read(b, FRAME) == b"\xcc" * FRAME
    assert fa.in_use == 2
    assert fa.live() == {BASE: 1, BASE + FRAME: 1}


def test_multi_frame_aligned_allocation() -> None:
    mem, fa = make(64)
    first = fa.alloc()                                  # frame 0: pushes the 16 KiB run to frame 4
    assert first == BASE
    mem.fill(BASE + FRAME, 63 * FRAME, 0xEE)
    run = fa.alloc(4, align=0x4000)
    assert run == BASE + 0x4000
    assert mem.read(run, 4 * FRAME) == bytes(4 * FRAME)
    assert mem.read(run + 4 * FRAME, 1) == b"\xee"
    assert fa.live() == {BASE: 1, run: 4}
    assert fa.in_use == 5
    big = fa.alloc(16, align=0x10000)
    assert big == BASE + 0x10000
    assert fa.in_use == 21
    # an unaligned multi-frame run is placed in the first hole that fits
    two = fa.alloc(2)
    assert two == BASE + FRAME
    assert fa.live()[two] == 2


def test_alignment_is_absolute_not_relative_to_the_allocator_base() -> None:
    mem = PhysMem([(BASE + FRAME, 32 * FRAME)])        # base 0x8000_1000 is not 16K-aligned
    fa = FrameAllocator(mem)
    pa = fa.alloc(1, align=0x4000)
    assert pa == BASE + 0x4000
    pa2 = fa.alloc(2, align=0x8000)
    assert pa2 == BASE + 0x8000


def test_bad_alloc_arguments() -> None:
    _, fa = make(8)
    with pytest.raises(ValueError, match="count"):
        fa.alloc(0)
    with pytest.raises(ValueError, match="0x3000"):
        fa.alloc(1, align=0x3000)
    with pytest.raises(ValueError, match="0x800"):
        fa.alloc(1, align=0x800)
    assert fa.in_use == 0


def test_no_memory_when_exhausted_and_reuse_after_free() -> None:
    _, fa = make(4)
    pas = [fa.alloc() for _ in range(4)]
    assert pas == [BASE + i * FRAME for i in range(4)]
    with pytest.raises(NoMemory):
        fa.alloc()
    assert fa.in_use == 4
    fa.free(pas[2])
    assert fa.in_use == 3
    assert fa.alloc() == pas[2]
    with pytest.raises(NoMemory):
        fa.alloc()


def test_no_memory_for_a_run_when_fragmented() -> None:
    _, fa = make(8)
    pas = [fa.alloc() for _ in range(8)]
    for pa in pas[::2]:
        fa.free(pa)
    assert fa.in_use == 4
    with pytest.raises(NoMemory, match="2 free"):
        fa.alloc(2)
    with pytest.raises(NoMemory):
        fa.alloc(9)
    assert fa.in_use == 4
    assert fa.alloc() == BASE                           # single frames are still there


def test_no_memory_for_an_alignment_outside_the_range() -> None:
    _, fa = make(8)
    with pytest.raises(NoMemory):
        fa.alloc(1, align=0x1_0000_0000)                # no 4 GiB-aligned frame in [0x8000_0000, +32K)
    assert fa.in_use == 0


def test_free_must_name_the_head_of_a_live_allocation() -> None:
    _, fa = make(8)
    run = fa.alloc(4)
    with pytest.raises(PhysMemError, match=f"{run + FRAME:#x}"):
        fa.free(run + FRAME)
    with pytest.raises(PhysMemError, match=f"{BASE + 5 * FRAME:#x}"):
        fa.free(BASE + 5 * FRAME)                       # never allocated
    with pytest.raises(PhysMemError, match="0x1234"):
        fa.free(0x1234)
    assert fa.in_use == 4
    fa.free(run)
    assert fa.in_use == 0
    assert fa.live() == {}
    with pytest.raises(PhysMemError, match=f"{run:#x}"):
        fa.free(run)                                    # double free


def test_reference_counts() -> None:
    _, fa = make(4)
    pa = fa.alloc(2)
    assert fa.ref_count(pa) == 1
    assert fa.add_ref(pa) == 2
    assert fa.add_ref(pa) == 3
    assert fa.ref_count(pa) == 3
    assert fa.release(pa) == 2
    assert fa.release(pa) == 1
    assert fa.in_use == 2
    assert fa.live() == {pa: 2}
    assert fa.release(pa) == 0                          # last reference frees it
    assert fa.in_use == 0
    assert fa.live() == {}
    assert fa.ref_count(pa) == 0
    with pytest.raises(PhysMemError, match=f"{pa:#x}"):
        fa.release(pa)
    with pytest.raises(PhysMemError, match=f"{pa:#x}"):
        fa.add_ref(pa)
    with pytest.raises(PhysMemError, match=f"{pa + FRAME:#x}"):
        fa.add_ref(pa + FRAME)                          # not the head either


def test_reference_counts_have_no_small_limit() -> None:
    _, fa = make(1)
    pa = fa.alloc()
    for n in range(2, 300):
        assert fa.add_ref(pa) == n
    assert fa.ref_count(pa) == 299


def test_free_ignores_the_reference_count() -> None:
    _, fa = make(2)
    pa = fa.alloc()
    fa.add_ref(pa)
    fa.free(pa)
    assert fa.in_use == 0
    assert fa.ref_count(pa) == 0


def test_reserve() -> None:
    _, fa = make(8)
    fa.reserve(BASE, 2)
    fa.reserve(BASE + 4 * FRAME)
    assert fa.in_use == 3
    assert fa.live() == {BASE: 2, BASE + 4 * FRAME: 1}
    assert fa.alloc() == BASE + 2 * FRAME
    assert fa.alloc(2) == BASE + 5 * FRAME
    with pytest.raises(NoMemory, match=f"{BASE + FRAME:#x}"):
        fa.reserve(BASE + FRAME)                        # taken
    with pytest.raises(NoMemory, match=f"{BASE + 7 * FRAME:#x}"):
        fa.reserve(BASE + 7 * FRAME, 2)                 # runs past the end
    with pytest.raises(PhysMemError, match="0x80000800"):
        fa.reserve(BASE + 0x800)                        # not a frame
    assert fa.in_use == 6
    fa.free(BASE)
    assert fa.in_use == 4


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(
    st.tuples(st.just("alloc"), st.integers(1, 5), st.sampled_from([0x1000, 0x2000, 0x4000, 0x8000])),
    st.tuples(st.just("free"), st.integers(0, 100), st.just(0)),
    st.tuples(st.just("ref"), st.integers(0, 100), st.sampled_from([1, -1])),
), max_size=60))
def test_allocations_stay_disjoint_aligned_and_accounted(ops: list[tuple[str, int, int]]) -> None:
    frames = 32
    mem, fa = make(frames, base=BASE + FRAME)           # an unaligned base exercises the skew
    model: dict[int, tuple[int, int]] = {}              # head -> (count, refs)
    for op, a, b in ops:
        if op == "alloc":
            try:
                pa = fa.alloc(a, align=b)
            except NoMemory:
                # the model agrees no aligned run of `a` free frames exists
                used = np.zeros(frames, dtype=bool)
                for head, (count, _) in model.items():
                    i = (head - fa.base) // FRAME
                    used[i:i + count] = True
                for i in range(frames - a + 1):
                    if (fa.base + i * FRAME) % b == 0:
                        assert used[i:i + a].any()
                continue
            assert pa % b == 0
            assert fa.base <= pa and pa + a * FRAME <= fa.base + frames * FRAME
            assert mem.read(pa, a * FRAME) == bytes(a * FRAME)
            for head, (count, _) in model.items():
                assert pa + a * FRAME <= head or head + count * FRAME <= pa
            mem.fill(pa, a * FRAME, 0x77)               # dirty it so the next allocation must zero
            model[pa] = (a, 1)
        elif model:
            head = sorted(model)[a % len(model)]
            count, refs = model[head]
            if op == "free":
                fa.free(head)
                del model[head]
            elif b == 1:
                assert fa.add_ref(head) == refs + 1
                model[head] = (count, refs + 1)
            else:
                assert fa.release(head) == refs - 1
                if refs == 1:
                    del model[head]
                else:
                    model[head] = (count, refs - 1)
        assert fa.live() == {h: c for h, (c, _) in model.items()}
        assert fa.in_use == sum(c for c, _ in model.values())
        assert all(fa.ref_count(h) == r for h, (_, r) in model.items())


# ------------------------------------------------------------- bad arguments change nothing (issue 9)
def _state(fa: FrameAllocator) -> tuple[int, dict[int, int], list[int]]:
    return fa.in_use, fa.live(), [fa.ref_count(pa) for pa in fa.live()]


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda fa, p: fa.alloc_many(-1), InvalidArgument, "frame count -1 is negative"),   # allocated 255 of 256
    (lambda fa, p: fa.alloc_many(2.0), InvalidArgumentType, "frame count must be an integer"),
    (lambda fa, p: fa.reserve(BASE + 4 * FRAME, -1), InvalidArgument, "frame count -1 must be at least 1"),
    (lambda fa, p: fa.reserve(BASE + 4 * FRAME, 0), InvalidArgument, "must be at least 1"),
    (lambda fa, p: fa.reserve(BASE + 14 * FRAME, 4), NoMemory, "out of range"),
    (lambda fa, p: fa.alloc(0), InvalidArgument, "frame count 0 must be at least 1"),
    (lambda fa, p: fa.alloc(1, align=3 * FRAME), InvalidArgument, "power of two"),
    (lambda fa, p: fa.alloc(True), InvalidArgumentType, "not bool"),
    (lambda fa, p: fa.release_many(np.array([p, p], dtype=np.uint64)), PhysMemError,
     "2 times, but it has 1 reference"),                                 # left the count at -1
    (lambda fa, p: fa.release_many([p, -FRAME]), InvalidArgument, "is negative"),
    (lambda fa, p: fa.add_ref_many([p, p + 1]), PhysMemError, "not the start of a live allocation"),
    (lambda fa, p: fa.free(float(p)), InvalidArgumentType, "must be an integer"),
    (lambda fa, p: fa.release(p + 2 * FRAME), PhysMemError, "not the start of a live allocation"),
])
def test_bad_calls_raise_and_change_nothing(call: object, error: type[Exception], message: str) -> None:
    _, fa = make()
    p = fa.alloc()
    fa.alloc(2)
    before = _state(fa)
    with pytest.raises(error, match=message):
        call(fa, p)  # type: ignore[operator]
    assert _state(fa) == before
    assert fa.release(p) == 0          # the bookkeeping still works


def test_release_many_is_all_or_nothing_across_allocations() -> None:
    _, fa = make()
    a, b = fa.alloc(), fa.alloc()
    fa.add_ref(b)
    with pytest.raises(PhysMemError):
        fa.release_many(np.array([b, a, b, a], dtype=np.uint64))     # b could go twice, a cannot
    assert (fa.ref_count(a), fa.ref_count(b)) == (1, 2)
    fa.release_many(np.array([b, a, b], dtype=np.uint64))
    assert fa.live() == {}


def test_misaligned_allocator_base_names_the_base_and_the_frame_size() -> None:
    """Reading a vector set whose memory starts at 0x80000800 used to say "allocator range ... not
    frame-aligned"."""
    mem = PhysMem([(BASE + 0x800, 16 * FRAME)])
    with pytest.raises(PhysMemError, match="allocator base 0x80000800 is not a multiple of the 0x1000-byte frame"):
        FrameAllocator(mem)
    with pytest.raises(InvalidArgumentType, match="needs a PhysMem"):
        FrameAllocator("mem")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="not a power of two"):
        FrameAllocator(mem, frame_size=3000)


# ------------------------------------------- many allocations and frees in one call (issue 11)
@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["alloc", "free"]), st.integers(0, 100)), max_size=20),
       st.integers(0, 12), st.sampled_from([(1, FRAME), (1, 0x4000), (2, 0x2000), (3, FRAME)]))
def test_alloc_each_makes_the_allocations_that_as_many_alloc_calls_would(history: list[tuple[str, int]], n: int,
                                                                         shape: tuple[int, int]) -> None:
    """The same frames in the same order as n calls of alloc(), from any state of the allocator (the next-fit
    position included); the allocator ends in the same state; NoMemory changes nothing."""
    count, align = shape
    pairs = [make(24) for _ in range(2)]
    for mem, fa in pairs:
        mem.fill(BASE, 24 * FRAME, 0x5A)            # dirty: the allocations must be zeroed
        live: list[int] = []
        for op, k in history:                       # the same history on both
            if op == "alloc" and fa.in_use < fa.total:
                live.append(fa.alloc(zero=False))
            elif live:
                fa.free(live.pop(k % len(live)))
    (mem_a, fa_a), (_, fa_b) = pairs
    before = _state(fa_a)
    try:
        expected = [fa_b.alloc(count, align) for _ in range(n)]
    except NoMemory:
        with pytest.raises(NoMemory):
            fa_a.alloc_each(n, count, align)
        assert _state(fa_a) == before
        return
    got = fa_a.alloc_each(n, count, align)
    assert got.dtype == np.uint64 and got.tolist() == expected
    assert _state(fa_a) == _state(fa_b)
    if fa_a.in_use < fa_a.total:
        assert fa_a.alloc() == fa_b.alloc()        # the next-fit position moved alike
    for pa in expected:
        assert mem_a.read(pa, count * FRAME) == bytes(count * FRAME)


def test_free_many_is_all_or_nothing() -> None:
    _, fa = make()
    a, b, c = fa.alloc(), fa.alloc(2), fa.alloc()
    before = _state(fa)
    for bad, message in (([a, b + FRAME], "not the start of a live allocation"), ([a, c, a], f"free of {a:#x} twice"),
                         ([a, -FRAME], "is negative")):
        with pytest.raises((PhysMemError, InvalidArgument), match=message):
            fa.free_many(np.array(bad, dtype=np.int64))
        assert _state(fa) == before
    fa.free_many(np.array([b, a], dtype=np.uint64))
    assert fa.live() == {c: 1}
    assert fa.alloc(3) == a                        # a and both frames of b are free again
    fa.free_many(np.zeros(0, dtype=np.uint64))
    assert fa.live() == {c: 1, a: 3}


def test_is_live_np() -> None:
    _, fa = make()
    a, b = fa.alloc(), fa.alloc(2)
    fa.free(a)
    pas = np.array([[a, b], [b + FRAME, BASE + 64 * FRAME]], dtype=np.uint64)
    assert fa.is_live_np(pas).tolist() == [[False, True], [False, False]]
    assert fa.is_live_np(np.array([0, 1 << 63], dtype=np.uint64)).tolist() == [False, False]
