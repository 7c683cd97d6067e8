"""The benchmarks' shared workload (issue 2): Sv39, 1 GiB of VA at VA0 mapped as 262,144 4 KiB pages to PA0,
with 8 MiB for the tables right after the 1 GiB of data frames; and the timing helpers (best of N runs)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import raw

from pagetable.arch.riscv_sv39 import SV39, SV39X4, Hgatp, Vsatp
from pagetable.arch.riscv_sv39.walk import two_stage_rules
from pagetable.flags import MappingFlags
from pagetable.format import PagingFormat
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.walker import Walker

GiB, MiB = 1 << 30, 1 << 20
VA0, PA0 = 0x4000_0000, 0x8000_0000
PAGES = GiB // 4096
TABLES = PA0 + GiB                   # where the tables go: 8 MiB after the 1 GiB of data frames
RW = MappingFlags.READ | MappingFlags.WRITE
T = TypeVar("T")


MIN_TIMED = 0.3
"""Seconds of timed runs each figure takes at least: a run of a few milliseconds is repeated until then
(at most `MAX_RUNS` times), so a short measurement is the best of many runs, not of `repeat` (on a busy
machine, one slow run in three would decide it). The library's figure and its raw reference get the same
rule."""
MAX_RUNS = 100


def best(fn: Callable[[], object], repeat: int) -> float:
    """The shortest of at least `repeat` runs of `fn` (and `MIN_TIMED` seconds of them), in seconds."""
    return best_after(lambda: None, lambda _: fn(), repeat)


def best_after(setup: Callable[[], T], fn: Callable[[T], object], repeat: int) -> float:
    """The shortest of at least `repeat` runs of `fn(setup())` (and `MIN_TIMED` seconds of them), timing
    `fn` only (`setup` builds what it consumes, e.g. a freshly mapped table for an unmap)."""
    times: list[float] = []
    while len(times) < repeat or (sum(times) < MIN_TIMED and len(times) < MAX_RUNS):
        state = setup()
        t = time.perf_counter()
        fn(state)
        times.append(time.perf_counter() - t)
    return min(times)


def words_of(mem: PhysMem) -> npt.NDArray[np.uint64]:
    """The u64 words of the one RAM region."""
    return mem.regions[0].words


def fresh(fmt: PagingFormat = SV39) -> tuple[PhysMem, PageTable]:
    """1 GiB of data frames then 8 MiB of tables (np.zeros: untouched pages cost no RSS), and an empty table
    (Sv39, or another format with 4 KiB pages)."""
    mem = PhysMem([(PA0, GiB + (8 << 20))])
    frames = FrameAllocator(mem, TABLES, 8 << 20)
    return mem, PageTable(fmt, mem, frames)


def mapped(fmt: PagingFormat = SV39) -> tuple[PhysMem, PageTable]:
    """`fresh`, with the 1 GiB mapped by the library as 4 KiB pages."""
    mem, pt = fresh(fmt)
    pt.map_region(VA0, PA0, GiB, RW)
    return mem, pt


def leaf_bits(flags: MappingFlags) -> int:
    """The attribute bits (PPN 0) of a 4 KiB leaf with `flags`, as the library's codec writes them."""
    return int(fresh()[1].fmt.codec.new_page(0, flags, False))


RAW_ROOT, RAW_LEAF_TABLES = TABLES, TABLES + 4096


def raw_mapped() -> PhysMem:
    """The same 1 GiB mapping written by raw.map_4k (no library code): root at TABLES, then the 512 leaf
    tables, then the level-1 table."""
    mem, _ = fresh()
    raw.map_4k(words_of(mem), PA0, RAW_ROOT, VA0, PA0, PAGES, RAW_LEAF_TABLES, leaf_bits(RW))
    return mem


def adopt(mem: PhysMem) -> PageTable:
    """The library's view of the raw-mapped table in `mem` (an adopted root: its tables are never freed)."""
    return PageTable(SV39, mem, FrameAllocator(mem, TABLES, 8 << 20), root=RAW_ROOT)


@dataclass(frozen=True)
class TwoStage:
    """Issue 5's two-stage workload: an Sv39 guest table mapping 1 GiB as 4 KiB pages over an Sv39x4
    G-stage mapping the guest's RAM (at GPA0, the same host bytes) as 4 KiB pages, and its walker."""

    host: PhysMem
    g: PageTable
    vs: PageTable
    walker: Walker


GPA0 = 0x1_0000_0000


def two_stage() -> TwoStage:
    host = PhysMem([(PA0, GiB + (16 << 20))])
    g = PageTable(SV39X4, host, FrameAllocator(host, PA0 + GiB + (8 << 20), 8 << 20))
    g.map_region(GPA0, PA0, GiB + (8 << 20), RW | MappingFlags.USER)
    guest = PhysMem([(GPA0, host.view(PA0, GiB + (8 << 20)))])
    vs = PageTable(SV39, guest, FrameAllocator(guest, GPA0 + GiB, 8 << 20))
    vs.map_region(VA0, GPA0, GiB, RW)
    walker = Walker.nested(host, two_stage_rules(Vsatp.for_table(SV39, vs.root_paddr),
                                                 Hgatp.for_table(SV39X4, g.root_paddr)))
    return TwoStage(host, g, vs, walker)
