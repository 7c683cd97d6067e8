"""Fuzz the table readers with adversarial table images: random and hostile entries (cycles, self-maps,
tables shared at one level or used at two, tables and leaves outside RAM, every reserved encoding) in every
RISC-V mode, one stage and two, under random walker options, through `PageTable.walk` (the software view),
`Walker.mappings` and `ptdump` (the hardware's) and `translate_many`.

The property: an answer, never an exception, a hang, or memory beyond a small multiple of the image; the
listing bounded by the distinct tables (every table at most once per level); and the hardware listing in
agreement with the walker, entry by entry and access by access."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from pagetable.arch.riscv_sv39 import SV39, SV39X4, SV48, SV48X4, SV57, Hgatp, Satp, Vsatp
from pagetable.arch.riscv_sv39.walk import HypervisorOptions, RiscvOptions, RiscvRules, two_stage_rules
from pagetable.format import PagingFormat
from pagetable.frames import FrameAllocator
from pagetable.listing import ptdump
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.walker import Access, Privilege, Walker

from .fuzzing import (
    assert_lanes_agree,
    assert_listing_agrees,
    assert_listing_covers,
    bounded,
    count,
    fuzz,
    table_entries,
)

RAM, FRAMES = 0x8000_0000, 48
ONE_STAGE = {"sv39": SV39, "sv48": SV48, "sv57": SV57}
G_STAGE = {"sv39x4": SV39X4, "sv48x4": SV48X4}


@st.composite
def images(draw: st.DrawFn) -> PhysMem:
    """FRAMES frames of RAM at RAM: random entries, whole frames of one entry (a table of self-pointers is
    one draw away) or of entries naming consecutive pages (many aliases of few tables through a stage 2
    that maps many guest pages onto one), and a root somewhere."""
    mem = PhysMem([(RAM, FRAMES * 4096)])
    words = mem.regions[0].words
    entries = table_entries(RAM, FRAMES)
    for frame, value in draw(st.lists(st.tuples(st.integers(0, FRAMES - 1), entries), max_size=6)):
        words[frame * 512:(frame + 1) * 512] = value
    for frame, value in draw(st.lists(st.tuples(st.integers(0, FRAMES - 1), entries), max_size=3)):
        step = np.uint64(1 << 10)                            # 512 entries naming 512 consecutive pages
        words[frame * 512:(frame + 1) * 512] = np.uint64(value) + np.arange(512, dtype=np.uint64) * step
    for index, value in draw(st.lists(st.tuples(st.integers(0, FRAMES * 512 - 1), entries), max_size=120)):
        words[index] = value
    return mem


OPTIONS = st.builds(RiscvOptions, sum=st.booleans(), mxr=st.booleans(), ad=st.sampled_from(["svade", "svadu"]),
                    svnapot=st.booleans(), svpbmt=st.booleans())
VAS = st.lists(st.integers(0, (1 << 64) - 1) | st.integers(0, 1 << 40), max_size=40)


def _check(listed: Walker, walker: Walker, fmt: PagingFormat, root: int, mem: PhysMem, vas: list[int],
           entry: str) -> None:
    count(entry)
    with bounded(20, 48 << 20):
        soft = PageTable(fmt, mem, FrameAllocator(mem), root=root).walk(placeholders=True)
        assert len(soft) <= FRAMES * fmt.levels[0].entries * 4
        m = listed.mappings()
        assert len(m) <= FRAMES * fmt.levels[0].entries * 4
        assert len(ptdump(m)) <= len(m)
        assert_listing_agrees(listed, walker, m)
        probes = np.concatenate([np.array(vas, dtype=np.uint64), m.va, m.va + np.uint64(0x123)])
        for access in Access:
            for privilege in Privilege:
                t = walker.translate_many(probes, access, privilege)
                assert_listing_covers(m, t)
                assert_lanes_agree(walker, t, access, privilege)


@fuzz(short=80, long=5_000)
@given(images(), st.sampled_from(sorted(ONE_STAGE)), st.integers(0, FRAMES - 1), OPTIONS, VAS)
def test_one_stage_tables(mem: PhysMem, mode: str, root_frame: int, options: RiscvOptions,
                          vas: list[int]) -> None:
    fmt, root = ONE_STAGE[mode], RAM + root_frame * 4096
    walker = Walker(mem, RiscvRules(Satp.for_table(fmt, root), options))
    _check(walker, walker, fmt, root, mem, vas, f"tables: {mode}")


@fuzz(short=40, long=2_000)
@given(images(), st.sampled_from(sorted(G_STAGE)), st.integers(0, FRAMES // 4 - 1), OPTIONS, VAS)
def test_g_stage_tables(mem: PhysMem, mode: str, root_slot: int, options: RiscvOptions, vas: list[int]) -> None:
    fmt, root = G_STAGE[mode], RAM + root_slot * 0x4000
    walker = Walker(mem, RiscvRules.gstage(Hgatp.for_table(fmt, root), options))
    _check(walker, walker, fmt, root, mem, vas, f"tables: {mode} G-stage")


@fuzz(short=40, long=2_000)
@given(images(), st.integers(0, FRAMES - 1), st.integers(0, FRAMES // 4 - 1),
       st.builds(HypervisorOptions, vs_sum=st.booleans(), vs_mxr=st.booleans(), hs_mxr=st.booleans(),
                 ad=st.sampled_from(["svade", "svadu"]), svnapot=st.booleans()), VAS)
def test_two_stage_tables(mem: PhysMem, vs_frame: int, g_slot: int, options: HypervisorOptions,
                          vas: list[int]) -> None:
    """Both stages' tables in the same hostile RAM; the VS-stage's are read through the G-stage."""
    vs_root = RAM + vs_frame * 4096
    walker = Walker.nested(mem, two_stage_rules(Vsatp.for_table(SV39, vs_root),
                                                Hgatp.for_table(SV39X4, RAM + g_slot * 0x4000), options))
    count("tables: sv39+sv39x4")
    with bounded(20, 48 << 20):
        m = walker.mappings()
        assert_listing_agrees(walker, walker, m)
        assert len(ptdump(m)) <= len(m)
        for access in Access:
            for privilege in Privilege:
                t = walker.translate_many(np.concatenate([np.array(vas, dtype=np.uint64), m.va]), access, privilege)
                assert_listing_covers(m, t)
                assert_lanes_agree(walker, t, access, privilege)
