"""The benchmarks' shared workload (issue 2): Sv39, 1 GiB of VA at VA0 mapped as 262,144 4 KiB pages to PA0,
with 8 MiB for the tables right after the 1 GiB of data frames (the same on x86-64 4-level paging, issue 12,
and on AArch64 with the 4KB and the 64KB granule, issue 13, in pages of the format: every builder takes the
format); and the timing helpers (best of N runs)."""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import raw

from pagetable.arch.aarch64 import SCTLR_EL1, Granule
from pagetable.arch.aarch64.config import tcr_el1, vtcr_el2
from pagetable.arch.aarch64.modes import S1_4K_48, S1_64K_48, S2_4K_40, stage2_format
from pagetable.arch.aarch64.regimes import el1_rules, stage2_rules
from pagetable.arch.riscv_sv39 import SV39, SV39X4, Hgatp, Satp, Vsatp
from pagetable.arch.riscv_sv39.walk import RiscvRules, two_stage_rules
from pagetable.arch.x86_64 import PAGING4, X86Rules
from pagetable.flags import MappingFlags
from pagetable.format import PagingFormat
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.translation import MemoryType, WalkRules
from pagetable.walker import Walker

GiB, MiB = 1 << 30, 1 << 20
VA0, PA0 = 0x4000_0000, 0x8000_0000
PAGES = GiB // 4096                  # the 4 KiB formats' leaves (`pages`)
TABLES = PA0 + GiB                   # where the tables go: 8 MiB after the 1 GiB of data frames
RW = MappingFlags.READ | MappingFlags.WRITE
T = TypeVar("T")


MIN_TIMED = 0.3
"""Seconds of timed runs each figure takes at least: a run of a few milliseconds is repeated until then
(at most `MAX_RUNS` times), so a short measurement is the best of many runs, not of `repeat` (on a busy
machine, one slow run in three would decide it). The library's figure and its raw reference get the same
rule."""
MAX_RUNS = 100


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep what it frees for the next allocation: columns up to 32 MiB come from the
    heap (M_MMAP_THRESHOLD) and the heap is not trimmed (M_TRIM_THRESHOLD), for the bench's whole process.
    On this project's VM a page fault costs about 8 us, so a fresh 2 MiB column costs ~1.3 ms before any
    work; with glibc's defaults whether a run's temporaries land on pages the heap kept or on pages it gave
    back and must fault in again depends on what ran before and how much the call held at its peak, and the
    best of many runs measures that luck as much as the work (a raw function was seen at 3 ms in one run
    and 17 ms in the next). With memory kept, each figure is the work, library and raw alike; every output
    column is still written in full. False where the C library has no mallopt (not glibc)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, 1 << 30))


def best(fn: Callable[[], object], repeat: int, clock: Callable[[], float] = time.perf_counter) -> float:
    """The shortest of at least `repeat` runs of `fn` (and `MIN_TIMED` seconds of them), in seconds (of
    `clock`: wall time, or time.process_time for the CPU time of this process)."""
    return best_after(lambda: None, lambda _: fn(), repeat, clock)


def best_after(setup: Callable[[], T], fn: Callable[[T], object], repeat: int,
               clock: Callable[[], float] = time.perf_counter) -> float:
    """The shortest of at least `repeat` runs of `fn(setup())` (and `MIN_TIMED` seconds of them), timing
    `fn` only (`setup` builds what it consumes, e.g. a freshly mapped table for an unmap)."""
    times: list[float] = []
    while len(times) < repeat or (sum(times) < MIN_TIMED and len(times) < MAX_RUNS):
        state = setup()
        t = clock()
        fn(state)
        times.append(clock() - t)
    return min(times)


def words_of(mem: PhysMem) -> npt.NDArray[np.uint64]:
    """The u64 words of the one RAM region."""
    return mem.regions[0].words


def fresh(fmt: PagingFormat = SV39) -> tuple[PhysMem, PageTable]:
    """1 GiB of data frames then 8 MiB of tables (np.zeros: untouched pages cost no RSS), and an empty table
    of `fmt` (its tables from 4 KiB frames: a 64 KiB table takes 16 of them)."""
    mem = PhysMem([(PA0, GiB + (8 << 20))])
    frames = FrameAllocator(mem, TABLES, 8 << 20)
    return mem, PageTable(fmt, mem, frames)


def pages(fmt: PagingFormat = SV39) -> int:
    """The workload's leaves in `fmt`: 1 GiB of its pages."""
    return GiB // fmt.page_size


def mapped(fmt: PagingFormat = SV39) -> tuple[PhysMem, PageTable]:
    """`fresh`, with the 1 GiB mapped by the library as pages of the format."""
    mem, pt = fresh(fmt)
    pt.map_region(VA0, PA0, GiB, RW)
    return mem, pt


A64_4K, A64_64K = S1_4K_48, S1_64K_48
FORMATS = (SV39, PAGING4, A64_4K, A64_64K)
"""The formats of the 1 GiB rows: each has its raw work (`raw_format`) and its walk rules (`rules`)."""
STAGE2 = {SV39: SV39X4, A64_4K: S2_4K_40, A64_64K: stage2_format(Granule.K64, 42, 2)}
"""The stage 2 format under each format's two-stage rows (Sv39x4; 40-bit IPAs, 42 with the 64KB granule)."""
_RAW = {SV39: raw.SV39, PAGING4: raw.X86, A64_4K: raw.A64_4K, A64_64K: raw.A64_64K, SV39X4: raw.SV39X4,
        STAGE2[A64_4K]: raw.A64_S2_4K, STAGE2[A64_64K]: raw.A64_S2_64K}


def raw_format(fmt: PagingFormat) -> raw.RawFormat:
    """What bench/raw.py knows of `fmt` (one of `FORMATS`, or a stage 2 format of `STAGE2`)."""
    return _RAW[fmt]


SCTLR_MMU_ON = SCTLR_EL1.build(M=1, C=1, I=1)
"""SCTLR_EL1 with the MMU and the caches on (with C=0, Normal memory would be Non-cacheable)."""


def rules(fmt: PagingFormat, root: int) -> WalkRules:
    """The hardware's walk rules for a table of `fmt` at `root`: satp, CR3 with the default options, or
    the EL1&0 regime with TTBR0_EL1 = root (TTBR1_EL1's walks off)."""
    if fmt is SV39:
        return RiscvRules(Satp.for_table(SV39, root))
    if fmt is PAGING4:
        return X86Rules(root)
    return el1_rules(tcr_el1(fmt), root, 0, sctlr_el1=SCTLR_MMU_ON)


def leaf_memtype(fmt: PagingFormat) -> int:
    """The memory type of the workload's leaves: the PMAs' (no PBMT), x86's PAT index 0 (WB), or AArch64's
    AttrIndx 0 (Linux's MAIR: Normal Write-Back)."""
    return int({SV39: MemoryType.DEFAULT, PAGING4: MemoryType.WB}.get(fmt, MemoryType.NORMAL_WB))


def leaf_bits(flags: MappingFlags, fmt: PagingFormat = SV39) -> int:
    """The attribute bits (address 0) of a smallest leaf with `flags`, as the library's codec writes them."""
    return int(fresh(fmt)[1].fmt.codec.new_page(0, flags, False))


RAW_ROOT = TABLES


def raw_leaf_tables(fmt: PagingFormat = SV39) -> int:
    """Where raw.map_4k puts the leaf tables: after the root, at the first multiple of a leaf table's size."""
    return TABLES + max(fmt.root_size, fmt.table_size(fmt.depth_count - 1))


def raw_mapped(fmt: PagingFormat = SV39) -> PhysMem:
    """The same 1 GiB mapping written by raw.map_4k (no library code): root at TABLES, then the leaf tables,
    then the tables of their pointers (and x86's PDPT, AArch64 4KB's level 1 table)."""
    mem, _ = fresh(fmt)
    raw.map_4k(words_of(mem), PA0, RAW_ROOT, VA0, PA0, pages(fmt), raw_leaf_tables(fmt), leaf_bits(RW, fmt),
               raw_format(fmt))
    return mem


def adopt(mem: PhysMem, fmt: PagingFormat = SV39) -> PageTable:
    """The library's view of the raw-mapped table in `mem` (an adopted root: its tables are never freed)."""
    return PageTable(fmt, mem, FrameAllocator(mem, TABLES, 8 << 20), root=RAW_ROOT)


@dataclass(frozen=True)
class TwoStage:
    """Issue 5's two-stage workload: a guest table (Sv39, or an AArch64 stage 1 format) mapping 1 GiB as its
    pages over a stage 2 table (`STAGE2`) mapping the guest's RAM (at GPA0, the same host bytes) as its
    pages, and its walker."""

    host: PhysMem
    g: PageTable
    vs: PageTable
    walker: Walker


GPA0 = 0x1_0000_0000


def two_stage(fmt: PagingFormat = SV39) -> TwoStage:
    host = PhysMem([(PA0, GiB + (16 << 20))])
    s2 = STAGE2[fmt]
    g = PageTable(s2, host, FrameAllocator(host, PA0 + GiB + (8 << 20), 8 << 20))
    g.map_region(GPA0, PA0, GiB + (8 << 20), RW | (MappingFlags.USER if fmt is SV39 else MappingFlags(0)))
    guest = PhysMem([(GPA0, host.view(PA0, GiB + (8 << 20)))])
    vs = PageTable(fmt, guest, FrameAllocator(guest, GPA0 + GiB, 8 << 20))
    vs.map_region(VA0, GPA0, GiB, RW)
    both: tuple[WalkRules, WalkRules]
    if fmt is SV39:
        both = two_stage_rules(Vsatp.for_table(SV39, vs.root_paddr), Hgatp.for_table(SV39X4, g.root_paddr))
    else:
        both = (el1_rules(tcr_el1(fmt), vs.root_paddr, 0, sctlr_el1=SCTLR_MMU_ON),
                stage2_rules(vtcr_el2(s2), g.root_paddr))
    return TwoStage(host, g, vs, Walker.nested(host, both))
