"""Benchmarks (run by `make bench`): the bulk paths beside the raw numpy work they cannot avoid (bench/raw.py,
plain numpy, checked to give the same answers) and against a plain per-page loop over the same API.

Workload (issue 2): Sv39, 1 GiB of VA mapped as 262,144 4 KiB pages; enumerate those leaves; translate
1,000,000 random VAs in one vectorised call. Issue 5 adds the same translation through two stages: an Sv39
guest table over an Sv39x4 G-stage, both mapping 1 GiB as 4 KiB pages (12 entry fetches per address).
Each figure is the best of `--repeat` runs. The per-page loop is timed on `--loop` items and scaled to the
full count (say `--loop 0` to run it whole: about half an hour with the two-stage loop).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import raw

from pagetable.arch.riscv_sv39 import SV39, SV39X4, Hgatp, Satp, Vsatp
from pagetable.arch.riscv_sv39.walk import RiscvRules, two_stage_rules
from pagetable.flags import MappingFlags
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.walker import Walker

GiB = 1 << 30
VA0, PA0 = 0x4000_0000, 0x8000_0000
PAGES = GiB // 4096
RW = MappingFlags.READ | MappingFlags.WRITE


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def words_of(mem: PhysMem) -> npt.NDArray[np.uint64]:
    """The u64 words of the one RAM region."""
    return mem.regions[0].words


def fresh() -> tuple[PhysMem, PageTable]:
    mem = PhysMem([(PA0, GiB + (8 << 20))])          # 1 GiB of data frames, then the tables
    frames = FrameAllocator(mem, PA0 + GiB, 8 << 20)
    return mem, PageTable(SV39, mem, frames)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--loop", type=int, default=8192, help="items the per-page loop runs (0 = all)")
    ns = ap.parse_args()
    rows: list[tuple[str, int, float, float, float, int, float]] = []

    # map_region: 262,144 4K leaves
    def bulk_map() -> None:
        _, pt = fresh()
        pt.map_region(VA0, PA0, GiB, RW)
    t_bulk = best(bulk_map, ns.repeat)
    n_loop = ns.loop or PAGES

    def loop_map() -> None:
        _, pt = fresh()
        for i in range(n_loop):
            pt.map(VA0 + i * 4096, PA0 + i * 4096, 4096, RW)
    t_loop = best(loop_map, 1) * PAGES / n_loop
    # raw: the leaves, 512 pointers and a root pointer scattered into tables at the top of the same memory
    raw_mem, _ = fresh()
    root, leaf_tables = PA0 + GiB, PA0 + GiB + 4096
    t_raw = best(lambda: raw.map_4k(words_of(raw_mem), PA0, root, VA0, PA0, PAGES, leaf_tables,
                                    int(fresh()[1].fmt.codec.new_page(0, RW, False))), ns.repeat)
    rows.append(("map_region 1 GiB as 4K pages", PAGES, t_bulk, t_raw, t_loop, n_loop, 0.1))

    # walk: enumerate the 262,144 leaves
    mem, pt = fresh()
    pt.map_region(VA0, PA0, GiB, RW)
    t_bulk = best(lambda: pt.walk(), ns.repeat)

    def loop_walk() -> None:
        for i in range(n_loop):
            pt.query(VA0 + i * 4096)
    t_loop = best(loop_walk, 1) * PAGES / n_loop
    # raw: gather the leaf entries of the raw-mapped table and write the columns; the library's walk of
    # that same table must give the same columns
    t_raw = best(lambda: raw.walk_leaves(words_of(raw_mem), PA0, root, VA0), ns.repeat)
    cols = raw.walk_leaves(words_of(raw_mem), PA0, root, VA0)
    lib = PageTable(SV39, raw_mem, FrameAllocator(raw_mem, PA0 + GiB, 8 << 20), root=root).walk()
    assert all(np.array_equal(getattr(lib, k), v) for k, v in cols.items() if k != "flags")
    mapped = pt.walk()                          # the library's map wrote the same leaves (elsewhere)
    assert all(np.array_equal(getattr(mapped, k), cols[k]) for k in ("va", "pa", "size", "raw"))
    rows.append(("walk: enumerate 262,144 leaves", PAGES, t_bulk, t_raw, t_loop, n_loop, 0.1))

    # translate 1,000,000 random VAs through the hardware walker
    walker = Walker(mem, RiscvRules(Satp.for_table(SV39, pt.root_paddr)))
    n = 1_000_000
    vas = np.random.default_rng(1).integers(VA0, VA0 + GiB, n, dtype=np.uint64) & ~np.uint64(7)
    t_bulk = best(lambda: walker.translate_many(vas, "read", "supervisor"), ns.repeat)
    n_t = min(ns.loop or n, n)

    def loop_translate() -> None:
        for v in vas[:n_t].tolist():
            walker.translate(v, "read", "supervisor")
    t_loop = best(loop_translate, 1) * n / n_t
    t_raw = best(lambda: raw.translate(words_of(mem), PA0, pt.root_paddr, vas), ns.repeat)
    assert np.array_equal(raw.translate(words_of(mem), PA0, pt.root_paddr, vas)[0],
                          walker.translate_many(vas, "read", "supervisor").pa)
    rows.append(("translate 1,000,000 random VAs", n, t_bulk, t_raw, t_loop, n_t, 0.5))

    # the same through two stages: guest RAM at GPA_G, backed by the same host bytes
    gpa0 = 0x1_0000_0000
    host = PhysMem([(PA0, GiB + (16 << 20))])
    g = PageTable(SV39X4, host, FrameAllocator(host, PA0 + GiB + (8 << 20), 8 << 20))
    g.map_region(gpa0, PA0, GiB + (8 << 20), RW | MappingFlags.USER)
    guest = PhysMem([(gpa0, host.view(PA0, GiB + (8 << 20)))])
    vs = PageTable(SV39, guest, FrameAllocator(guest, gpa0 + GiB, 8 << 20))
    vs.map_region(VA0, gpa0, GiB, RW)
    nested = Walker.nested(host, two_stage_rules(Vsatp.for_table(SV39, vs.root_paddr).encode(),
                              Hgatp.for_table(SV39X4, g.root_paddr).encode()))
    t_bulk = best(lambda: nested.translate_many(vas, "read", "supervisor"), ns.repeat)

    def loop_nested() -> None:
        for v in vas[:n_t].tolist():
            nested.translate(v, "read", "supervisor")
    t_loop = best(loop_nested, 1) * n / n_t
    t_raw = best(lambda: raw.translate_two_stage(words_of(host), PA0, vs.root_paddr, g.root_paddr, vas), ns.repeat)
    assert np.array_equal(raw.translate_two_stage(words_of(host), PA0, vs.root_paddr, g.root_paddr, vas)[0],
                          nested.translate_many(vas, "read", "supervisor").pa)
    rows.append(("two-stage translate 1,000,000 VAs", n, t_bulk, t_raw, t_loop, n_t, 2.0))

    print(f"{'benchmark':<34} {'items':>9} {'bulk':>9} {'raw numpy':>10} {'x raw':>6} {'target':>8} "
          f"{'per-page loop':>15} {'ratio':>7}")
    for name, items, bulk, t_raw, loop, looped, target in rows:
        note = "" if looped == items else f"  (loop timed on {looped:,}, scaled)"
        flag = "ok" if bulk < target else "SLOW"
        print(f"{name:<34} {items:>9,} {bulk:>8.3f}s {t_raw:>9.3f}s {bulk / t_raw:>5.1f}x "
              f"{f'<{target}s {flag}':>8} {loop:>14.2f}s {loop / bulk:>6.0f}x{note}")


if __name__ == "__main__":
    main()
