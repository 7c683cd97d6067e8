"""How the bulk paths grow: map_region, walk and translate of 2**12 ... 2**N 4 KiB pages (Sv39), in ns per
page beside the same raw numpy work as the 1 GiB rows (raw.map_4k, raw.walk_leaves, raw.translate), so
linear growth shows as a flat column, and growth the raw work shares (caches) as a flat "x raw".

Each size is the 1 GiB workload scaled: the pages at VA0 map PA0 onwards, and RAM is the data frames then
the tables. The data frames are np.zeros that nothing touches (calloc: no RSS), so 2**22 pages (16 GiB)
cost only their 32 MiB of tables and the walk's columns, and every translation succeeds as in the 1 GiB
rows. (The library also maps PAs that are not RAM at all; the walker then reports the output address
outside memory.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import raw
from workload import PA0, RW, VA0, best, best_after, leaf_bits

from pagetable.arch.riscv_sv39 import SV39, Satp
from pagetable.arch.riscv_sv39.walk import RiscvRules
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.walker import Reason, Walker


def tables_for(pages: int) -> int:
    """Bytes of Sv39 tables `pages` 4 KiB pages need: a leaf table per 512 pages, a level-1 table per 1 GiB,
    a root (and a spare frame)."""
    return (-(-pages // 512) + -(-pages // (1 << 18)) + 2) * 4096


def fresh(pages: int) -> PageTable:
    """An empty table over RAM for `pages` data frames at PA0 and their tables after them."""
    data, tables = pages * 4096, tables_for(pages)
    mem = PhysMem([(PA0, data + tables)])
    return PageTable(SV39, mem, FrameAllocator(mem, PA0 + data, tables))


def repeats(pages: int) -> int:
    """Fewer runs for the big sizes (the whole bench stays within a few minutes)."""
    return 5 if pages <= 1 << 18 else 3


@dataclass(frozen=True)
class Size:
    """Best seconds at one size: the library's and the raw work's."""

    pages: int
    tables: int                       # bytes of tables the library's map made
    map: tuple[float, float]
    walk: tuple[float, float]
    translate: tuple[float, float]


def measure(pages: int) -> Size:
    """map_region, walk and translate (of `pages` random VAs) at `pages` pages, library and raw; checked:
    both walks list the same pages, both translations give every VA its PA."""
    size, n = pages * 4096, repeats(pages)
    gigs = -(-pages // (1 << 18))
    attrs = leaf_bits(RW)

    def raw_map(pt: PageTable) -> None:
        root = pt.root_paddr                   # the fresh table's (zeroed) root, tables after it
        raw.map_4k(pt.mem.regions[0].words, PA0, root, VA0, PA0, pages, root + 4096, attrs)
    t_map = best_after(lambda: fresh(pages), lambda pt: pt.map_region(VA0, PA0, size, RW), n)
    t_raw_map = best_after(lambda: fresh(pages), raw_map, n)
    pt, raw_pt = fresh(pages), fresh(pages)
    pt.map_region(VA0, PA0, size, RW)
    raw_map(raw_pt)
    raw_words = raw_pt.mem.regions[0].words
    t_walk = best(pt.walk, n)
    t_raw_walk = best(lambda: raw.walk_leaves(raw_words, PA0, raw_pt.root_paddr, VA0, gigs), n)
    walker = Walker(pt.mem, RiscvRules(Satp.for_table(SV39, pt.root_paddr)))
    vas = np.random.default_rng(pages).integers(VA0, VA0 + size, pages, dtype=np.uint64) & ~np.uint64(7)
    words = pt.mem.regions[0].words
    t_tr = best(lambda: walker.translate_many(vas, "read", "supervisor"), n)
    t_raw_tr = best(lambda: raw.translate(words, PA0, pt.root_paddr, vas), n)
    m, cols = pt.walk(), raw.walk_leaves(raw_words, PA0, raw_pt.root_paddr, VA0, gigs)
    assert len(m) == pages and all(np.array_equal(getattr(m, k), cols[k]) for k in ("va", "pa", "size", "raw"))
    t = walker.translate_many(vas, "read", "supervisor")
    assert (t.reason == Reason.OK).all() and np.array_equal(t.pa, vas - np.uint64(VA0) + np.uint64(PA0))
    assert np.array_equal(raw.translate(words, PA0, pt.root_paddr, vas)[0], t.pa)
    return Size(pages, pt.frames.in_use * 4096, (t_map, t_raw_map), (t_walk, t_raw_walk), (t_tr, t_raw_tr))


def report(max_log2: int) -> None:
    print("growth: Sv39, 4 KiB pages; ns per page (translate: per VA, as many random VAs as pages), library "
          "and raw numpy")
    print(f"{'pages':>14} {'VA':>7} {'tables':>9}   {'map_region':^19}   {'walk':^19}   {'translate':^19}")
    print(f"{'':>32}" + "   {:>6} {:>5} {:>6}".format("lib", "raw", "x raw") * 3)
    for k in range(12, max_log2 + 1):
        s = measure(1 << k)
        va = s.pages * 4096
        label = f"{va >> 30} GiB" if va >= 1 << 30 else f"{va >> 20} MiB"
        cells = "".join(f"   {lib / s.pages * 1e9:>6.0f} {r / s.pages * 1e9:>5.0f} {lib / r:>5.1f}x"
                        for lib, r in (s.map, s.walk, s.translate))
        print(f"2^{k:<2} {s.pages:>9,} {label:>7} {s.tables / (1 << 20):>5.2f} MiB{cells}")
