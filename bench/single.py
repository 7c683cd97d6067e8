"""Single calls (issue 11: under 5 us each): `Walker.translate` of one VA (one stage, and two), `PageTable.query`
and `PageTable.map` of one 4 KiB page, in microseconds per call over distinct addresses of the 1 GiB/4K table.

Beside each, the raw Python work one call cannot avoid, measured in the same run: the same number of
dependent entry loads (`PhysMem.fetch_u64`, plain ints, no checks, no rules) through the same table. On a
slow or busy machine both grow together; the ratio says how much the library adds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from workload import PA0, RW, VA0, GiB, fresh, mapped, two_stage

from pagetable.arch.riscv_sv39 import SV39, Satp
from pagetable.arch.riscv_sv39.walk import RiscvRules
from pagetable.physmem import PhysMem
from pagetable.walker import Walker

TARGET_US = 5.0
CALLS = 20_000


def per_call(fn: Callable[[int], object], values: list[int], repeat: int = 3) -> float:
    """Microseconds per `fn(v)`, the best of `repeat` passes over `values`."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        for v in values:
            fn(v)
        times.append(time.perf_counter() - t)
    return min(times) / len(values) * 1e6


def raw_loads(mem: PhysMem, root: int, shifts: tuple[int, ...]) -> Callable[[int], int]:
    """The loads one walk makes, on ints: for each level, the entry at table + index, then its PPN's table."""
    fetch = mem.fetch_u64

    def walk(va: int) -> int:
        table = root
        for shift in shifts:
            table = (fetch(table + ((va >> shift) & 511) * 8) or 0) >> 10 << 12
        return table | (va & 0xFFF)
    return walk


def report() -> None:
    mem, pt = mapped()
    rng = np.random.default_rng(2)
    pages = (VA0 + rng.permutation(GiB >> 12)[:CALLS] * 4096).tolist()        # distinct pages, random order
    vas = [p + int(off) for p, off in zip(pages, rng.integers(0, 512, CALLS) * 8, strict=True)]
    walker = Walker(mem, RiscvRules(Satp.for_table(SV39, pt.root_paddr)))
    one = raw_loads(mem, pt.root_paddr, (30, 21, 12))
    assert all(walker.translate(v).pa == one(v) for v in vas[:1000])
    rows = [("translate (Sv39)", per_call(walker.translate, vas), per_call(one, vas), 3),
            ("query (Sv39)", per_call(pt.query, pages), per_call(one, pages), 3)]
    _, empty = fresh()
    pas = [PA0 + (v - VA0) for v in pages]
    order = iter(range(len(pages)))

    def map_one(va: int) -> None:
        empty.map(va, pas[next(order)], 4096, RW)
    rows.append(("map one 4K page (Sv39)", per_call(map_one, pages, 1), per_call(one, pages), 3))
    nested, host_one = _two_stage()
    rows.append(("translate (Sv39 over Sv39x4)", per_call(nested.translate, vas), per_call(host_one, vas), 15))
    print(f"single calls, us per call over {CALLS:,} distinct addresses (target < {TARGET_US:g} us)")
    print(f"{'call':<30} {'library':>9} {'raw loads':>10} {'loads':>6} {'x raw':>6} {'target':>7}")
    for name, lib, floor, loads in rows:
        print(f"{name:<30} {lib:>8.1f}u {floor:>9.1f}u {loads:>6} {lib / floor:>5.1f}x "
              f"{'ok' if lib < TARGET_US else 'SLOW':>7}")


def _two_stage() -> tuple[Walker, Callable[[int], int]]:
    """An Sv39 guest table over an Sv39x4 G-stage, both 1 GiB of 4 KiB pages (as bench_two_stage), and its
    15 raw loads per VA."""
    w = two_stage()
    host, g, vs = w.host, w.g, w.vs
    fetch = host.fetch_u64

    def g_stage(gpa: int) -> int:
        table = g.root_paddr
        for shift, bits in ((30, 2047), (21, 511), (12, 511)):
            table = (fetch(table + ((gpa >> shift) & bits) * 8) or 0) >> 10 << 12
        return table | (gpa & 0xFFF)

    def walk(va: int) -> int:
        table = vs.root_paddr
        for shift in (30, 21, 12):
            table = (fetch(g_stage(table + ((va >> shift) & 511) * 8)) or 0) >> 10 << 12
        return g_stage(table | (va & 0xFFF))
    return w.walker, walk
