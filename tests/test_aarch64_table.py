"""PageTable on every VMSAv8-64 format: the 4KB, 16KB and 64KB granules, the 52-bit forms (FEAT_LPA with
64KB, FEAT_LPA2's level -1 with 4KB), TTBR1's upper range and stage 2 with concatenated initial tables;
map/unmap/query/protect, blocks at every block level, splitting, freeing, and what the hardware makes of the
result: a `Walker` built from real register values (TCR_EL1/TTBRn_EL1, VTCR_EL2/VTTBR_EL2) agrees with
`PageTable.query` on every PA and permission.

Arm ARM DDI 0487 M.a.a: D8.2 (levels, concatenation), D8.3 (descriptors), D8.4 (permissions)."""

from __future__ import annotations

from collections import Counter
from typing import cast

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pagetable.arch.aarch64 import Granule, OAForm, modes
from pagetable.arch.aarch64.codec import A64Codec, S2Codec
from pagetable.arch.aarch64.config import tcr_el1, vtcr_el2
from pagetable.arch.aarch64.regimes import el1_rules, stage2_rules
from pagetable.errors import AlreadyMapped, InvalidArgument, MappedToHugePage, NoMemory, NotMapped
from pagetable.flags import MappingFlags
from pagetable.format import Extension, PagingFormat
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.translation import ALL_PERMS, Access, Privilege, Reason, perm_bit
from pagetable.walker import Walker

from .fuzzing import count, fuzz

R, W, X, U = MappingFlags.READ, MappingFlags.WRITE, MappingFlags.EXECUTE, MappingFlags.USER
RW = R | W
RAM, RAM_SIZE = 0x4000_0000, 64 << 20            # tables (and the small pages' data)
DATA48, DATA52 = 1 << 47, 1 << 51                # a little RAM where the blocks point: below 2**48, above it
DATA_SIZE = 1 << 20
TB = 1 << 40

FORMATS: dict[str, PagingFormat] = {
    "4k48": modes.S1_4K_48, "4k39": modes.S1_4K_39, "16k47": modes.S1_16K_47, "64k48": modes.S1_64K_48,
    "64k52-lpa": modes.S1_64K_52,
    "4k52-lpa2": modes.S1_4K_52, "4k48-ttbr1": modes.stage1_format(Granule.K4, 48, upper=True),
    "64k52-ttbr1": modes.stage1_format(Granule.K64, 52, OAForm.LPA, upper=True),
    "s2-4k40": modes.S2_4K_40, "s2-64k42": modes.stage2_format(Granule.K64, 42, 2),
}
IDS = list(FORMATS)
BLOCKS = {                                       # every block size the granule (and OA form) allows
    "4k48": [1 << 30, 1 << 21], "4k39": [1 << 30, 1 << 21], "16k47": [1 << 25], "64k48": [1 << 29],
    "64k52-lpa": [4 * TB, 1 << 29], "4k52-lpa2": [1 << 39, 1 << 30, 1 << 21], "4k48-ttbr1": [1 << 30, 1 << 21],
    "64k52-ttbr1": [4 * TB, 1 << 29], "s2-4k40": [1 << 30, 1 << 21], "s2-64k42": [1 << 29],
}
STAGE1_FLAGS = [R, RW, R | X, R | U, RW | U, R | X | U, X | U]
STAGE2_FLAGS = [R, RW, R | X, RW | X, W, X]


def stage2(fmt: PagingFormat) -> bool:
    return isinstance(fmt.codec, S2Codec)


def wide(fmt: PagingFormat) -> bool:
    return cast(A64Codec | S2Codec, fmt.codec).address.form is not OAForm.OA48


def lowest(fmt: PagingFormat) -> int:
    """The first VA of the format's range (TTBR1's start at 2**64 - 2**va_bits)."""
    return (1 << 64) - (1 << fmt.va_bits) if fmt.extension is Extension.ONES else 0


def machine(fmt: PagingFormat) -> tuple[PhysMem, FrameAllocator, PageTable]:
    mem = PhysMem([(RAM, RAM_SIZE), (DATA48, DATA_SIZE), (DATA52, DATA_SIZE)])
    frames = FrameAllocator(mem, RAM, RAM_SIZE, frame_size=fmt.page_size)
    return mem, frames, PageTable(fmt, mem, frames)


# ------------------------------------------------------------------------- registers
def hardware(pt: PageTable) -> Walker:
    """The walker the registers make of `pt`: EL1&0 stage 1 with TTBRn_EL1 = its root, or stage 2 with
    VTTBR_EL2 = its root."""
    fmt, root = pt.fmt, pt.root_paddr
    pa_range = 52 if wide(fmt) else 48
    if stage2(fmt):
        return Walker(pt.mem, stage2_rules(vtcr_el2(fmt), root, pa_range=pa_range))
    upper = fmt.extension is Extension.ONES
    return Walker(pt.mem, el1_rules(tcr_el1(fmt), 0 if upper else root, root if upper else 0, pa_range=pa_range))


def perms(fmt: PagingFormat, flags: MappingFlags) -> int:
    """The effective permissions (`perm_bit`) the hardware gives a leaf of `flags` (no PAN, no WXN): stage 2
    grants its R/W/X to both privileges; at stage 1 EL1 reads every page, writes where WRITE, executes
    kernel pages with EXECUTE; EL0 gets USER pages' R/W/X."""
    out = 0
    for access, flag in ((Access.READ, R), (Access.WRITE, W), (Access.EXECUTE, X)):
        if stage2(fmt):
            out |= sum(perm_bit(access, p) for p in Privilege) if flags & flag else 0
            continue
        if flags & U and flags & flag:
            out |= perm_bit(access, Privilege.USER)
        if access is Access.READ or (flags & flag and (access is Access.WRITE or not flags & U)):
            out |= perm_bit(access, Privilege.SUPERVISOR)
    return out


def assert_hardware_agrees(pt: PageTable, vas: list[int]) -> None:
    """At each VA, the walker translates (for every access and privilege the leaf allows) to the PA `query`
    gives (outside RAM: a fault on the access itself, after the walk), has a Permission fault for every
    other access, and faults where `query` finds nothing."""
    walker = hardware(pt)
    column = np.array(vas, dtype=np.uint64)
    got = {(a, p): walker.translate_many(column, a, p) for a in Access for p in Privilege}
    for n, va in enumerate(vas):
        try:
            pa, flags, _ = pt.query(va)
        except NotMapped:
            assert all(t.reason[n] != Reason.OK for t in got.values()), hex(va)
            continue
        want = perms(pt.fmt, flags)
        for (a, p), t in got.items():
            allowed, ram = bool(want & perm_bit(a, p)), pt.mem.contains(pa, 1)
            expected = (Reason.OK if ram else Reason.PA_OUTSIDE_MEMORY) if allowed else Reason.PERMISSION
            assert t.reason[n] == expected, (hex(va), flags, a, p, Reason(t.reason[n]))
            if allowed:
                assert int(t.pa[n]) == pa, (hex(va), hex(int(t.pa[n])), hex(pa))
                assert int(t.perms[n]) == (want & ALL_PERMS if ram else 0)
        a, p = next((a, p) for a in Access for p in Privilege if want & perm_bit(a, p))
        one = walker.translate(va, a, p)                # the one-lane walk too
        assert (one.pa, one.reason) == ((pa, Reason.OK) if pt.mem.contains(pa, 1) else
                                        (None, Reason.PA_OUTSIDE_MEMORY))


# ------------------------------------------------------------------------- single leaves
@pytest.mark.parametrize("name", IDS)
def test_map_query_protect_unmap_of_pages_and_blocks(name: str) -> None:
    fmt = FORMATS[name]
    mem, frames, pt = machine(fmt)
    base, page = lowest(fmt), fmt.page_size
    flags = STAGE2_FLAGS if stage2(fmt) else STAGE1_FLAGS
    assert fmt.root_size == fmt.levels[0].entries * 8
    assert list(frames.live().values()) == [max(1, fmt.root_size // page)]       # a root smaller than a page
    for k, size in enumerate([page, *BLOCKS[name]]):
        va = base + (3 + k) * size
        data = DATA52 if wide(fmt) and size > page else DATA48 if size > page else RAM + RAM_SIZE - (k + 1) * page
        pa = data - data % size
        off = size // 2 + 0x238
        pt.map(va, pa, size, flags[k % len(flags)])
        assert pt.query(va + off) == (pa + off, flags[k % len(flags)], size)
        slot = pt.lookup(va)
        assert fmt.levels[slot.depth].span == size
        assert (slot.raw & 3) == (3 if size == page else 1)                     # page, or block descriptor
        assert mem.read_u64(slot.pa) == slot.raw
        assert_hardware_agrees(pt, [va, va + off, va + size - 8, va + size])
        new = flags[(k + 1) % len(flags)]
        assert pt.protect(va + size // 2, new) == size
        assert pt.query(va + 8) == (pa + 8, new, size)
        assert_hardware_agrees(pt, [va + 8])
    before = frames.in_use
    for k, size in enumerate([page, *BLOCKS[name]]):
        va = base + (3 + k) * size
        assert pt.unmap(va + size - 1)[2] == size
        with pytest.raises(NotMapped):
            pt.query(va)
    assert frames.in_use < before and frames.in_use == max(1, fmt.root_size // page)   # every table freed
    pt.destroy()
    assert frames.in_use == 0


@pytest.mark.parametrize("name", ["4k52-lpa2", "64k52-lpa", "64k52-ttbr1", "s2-4k40"])
def test_wide_addresses_and_concatenated_roots(name: str) -> None:
    """52-bit PAs land in the descriptors' OA[51:48] (bits 15:12, LPA) or OA[51:50] (bits 9:8, LPA2) and
    read back; stage 2's 40-bit IPA space with the 4KB granule starts at level 1 with two concatenated
    tables, whose second one holds IPAs from 2**39."""
    fmt = FORMATS[name]
    _, _, pt = machine(fmt)
    page, base = fmt.page_size, lowest(fmt)
    if stage2(fmt):
        assert modes.concatenated(fmt, Granule.K4) == 2 and fmt.root_size == 8192
        pt.map(1 << 39, RAM, page, RW)
        assert pt.lookup(1 << 39).depth == 2 and pt.lookup(1 << 39, 0).pa == pt.root_paddr + 512 * 8
        assert_hardware_agrees(pt, [1 << 39, (1 << 39) - page])
        return
    pa = DATA52 + 5 * page
    pt.map(base + page, pa, page, RW)
    raw = pt.lookup(base + page).raw
    if cast(A64Codec, fmt.codec).address.form is OAForm.LPA:
        assert (raw >> 12) & 0xF == pa >> 48
    else:
        assert (raw >> 8) & 3 == (pa >> 50) & 3 and raw & (1 << 49) == pa & (1 << 49)
    assert pt.query(base + page + 16)[0] == pa + 16
    assert_hardware_agrees(pt, [base + page + 16])
    top = base + (1 << fmt.va_bits) - page                  # the last page of the 52-bit range
    pt.map(top, RAM, page, R)
    assert pt.walk().va.tolist() == [base + page, top]
    assert_hardware_agrees(pt, [top, top + page - 8])


# ------------------------------------------------------------------------- regions
@pytest.mark.parametrize("name", IDS)
def test_map_region_allow_huge_uses_every_block_level_and_splits(name: str) -> None:
    """A region from one page below the largest block to one page past two of them, mapped linearly with
    allow_huge: the largest blocks where both addresses align, each smaller size on the way in and out.
    Then a partial unmap and a partial protect split the blocks around them, and unmapping the rest frees
    every table."""
    fmt = FORMATS[name]
    _, frames, pt = machine(fmt)
    page, sizes = fmt.page_size, BLOCKS[name]
    big, edge = sizes[0], sum(sizes[1:]) + page      # one leaf of each smaller size on the way in and out
    va = lowest(fmt) + 4 * big - edge
    pa = (DATA52 if wide(fmt) else DATA48) - edge
    length = 2 * big + 2 * edge
    pt.map_region(va, pa, length, RW, allow_huge=True)
    got = pt.walk()
    assert Counter(got.size.tolist()) == {s: 2 for s in [page, *sizes]}
    assert np.array_equal(got.pa - got.va, np.full(len(got), (pa - va) % (1 << 64), dtype=np.uint64))
    assert int(got.size.sum()) == length
    probes = [va, va + page, va + edge, va + edge + 0x10, va + length - 8, va + length, va - page]
    assert_hardware_agrees(pt, probes)
    second = lowest(fmt) + 5 * big                       # the second largest block
    centre = second + big // 2
    removed = pt.unmap_region(centre + page, page)
    assert removed.size.tolist() == [page]
    assert pt.query(centre)[2] == page and pt.query(second)[2] == [*sizes[1:], page][0]
    protected = second + 3 * page
    pt.protect_region(protected, page, R)
    assert pt.query(protected) == (protected - va + pa, R, page)
    assert pt.query(protected + page)[1] == RW
    assert_hardware_agrees(pt, [*probes, centre, centre + page, centre + 2 * page, protected, protected + page])
    assert pt.walk().size.sum() == length - page
    pt.unmap_region(va, length, missing_ok=True)
    assert len(pt.walk()) == 0 and frames.in_use == max(1, fmt.root_size // page)
    pt.destroy()
    assert frames.in_use == 0


# ------------------------------------------------------------------------- the table and the hardware agree
FUZZ_FORMATS = ["4k48", "16k47", "64k52-lpa", "4k52-lpa2", "4k48-ttbr1", "s2-4k40", "s2-64k42"]
SPOTS = 6                                                # VA/PA slots, in units of the largest block


@st.composite
def sequences(draw: st.DrawFn) -> tuple[str, list[tuple[str, int, int, int, int]]]:
    """A format and operations on it: (op, slot, offset in pages, size in pages or a block size index,
    flags index)."""
    name = draw(st.sampled_from(FUZZ_FORMATS))
    op = st.tuples(st.sampled_from(["map", "region", "unmap", "protect"]), st.integers(0, SPOTS - 1),
                   st.integers(0, 40), st.integers(0, 40), st.integers(0, 5))
    return name, draw(st.lists(op, min_size=1, max_size=10))


@fuzz(short=60, long=1_000)
@given(sequences())
def test_random_operations_keep_query_and_the_walker_in_agreement(case: tuple[str, list[tuple[str, int, int,
                                                                                               int, int]]]) -> None:
    count("aarch64 PageTable vs Walker")
    name, ops = case
    fmt = FORMATS[name]
    _, frames, pt = machine(fmt)
    page, sizes = fmt.page_size, [fmt.page_size, *BLOCKS[name]]
    flags = STAGE2_FLAGS if stage2(fmt) else STAGE1_FLAGS
    unit = sizes[-1] * 2                                 # a few small blocks' worth per slot
    probes: list[int] = []
    for op, slot, offset, size, f in ops:
        va = lowest(fmt) + (slot + 1) * unit + offset * page
        pa = RAM + (slot * unit + offset * page) % RAM_SIZE
        try:
            if op == "map":
                s = sizes[size % len(sizes)]
                pt.map(va - va % s, pa - pa % s, s, flags[f])
            elif op == "region":
                pt.map_region(va, pa, (size + 1) * page * 4, flags[f], allow_huge=True)
            elif op == "unmap":
                pt.unmap_region(va, (size + 1) * page, missing_ok=True)
            else:
                pt.protect_region(va, (size + 1) * page, flags[f], missing_ok=True)
        except (AlreadyMapped, MappedToHugePage):        # a taken slot: nothing changed
            assert op in ("map", "region")
        probes += [va, va + page - 8, va + (size + 1) * page, va + (size + 1) * 2 * page]
    assert_hardware_agrees(pt, probes)
    leaves = pt.walk()
    assert_hardware_agrees(pt, leaves.va.tolist()[:64])
    big = sizes[1]                                       # a map of the largest block aligns down to it
    pt.unmap_region(lowest(fmt), -(-(SPOTS + 2) * unit // big) * big, missing_ok=True)
    assert frames.in_use == max(1, fmt.root_size // page)


def test_register_values_for_formats() -> None:
    """`config.tcr_el1`/`vtcr_el2` give the values `regimes` reads back as the same formats, and refuse
    what no register value selects."""
    both = el1_rules(tcr_el1(modes.S1_4K_39, FORMATS["4k48-ttbr1"]), 0x1000, 0x2000)
    assert [(r.fmt.va_bits, r.fmt.extension, r.root) for r in both.regime.regions] == \
        [(39, Extension.ZERO, 0x1000), (48, Extension.ONES, 0x2000)]
    for name in ("s2-4k40", "s2-64k42"):
        fmt = FORMATS[name]
        assert stage2_rules(vtcr_el2(fmt), 0).regime.single.fmt.levels == fmt.levels
    with pytest.raises(InvalidArgument):
        tcr_el1(modes.S1_4K_48, modes.S1_4K_39)          # two TTBR0 formats
    with pytest.raises(InvalidArgument):
        tcr_el1(modes.S1_4K_52, FORMATS["4k48-ttbr1"])   # DS differs
    with pytest.raises(InvalidArgument):
        vtcr_el2(modes.S1_4K_48)                         # not stage 2


def test_tables_larger_than_a_frame_are_counted_in_frames() -> None:
    """64 KiB tables from a 4 KiB-frame allocator take 16 frames each: a map that needs more frames than are
    free fails before it is planned, and changes nothing."""
    mem = PhysMem([(RAM, 1 << 20)])
    frames = FrameAllocator(mem, RAM, 64 * 4096)                         # 64 frames: the root takes one
    pt = PageTable(modes.S1_64K_48, mem, frames)
    with pytest.raises(NoMemory, match="needs at least 80 frames"):       # a level 2 and four level 3 tables
        pt.map_region(0, RAM, 4 << 29, RW)
    assert frames.in_use == 1
    pt.map_region(0, RAM, 1 << 29, RW)                                    # two tables: 32 frames
    assert frames.in_use == 33 and len(pt.walk()) == 8192
