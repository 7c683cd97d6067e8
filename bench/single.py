"""Single calls (issue 11: under 5 us each): `Walker.translate` of one VA (one stage, and two), `PageTable.query`
and `PageTable.map` of one 4 KiB page, in microseconds per call over distinct addresses of the 1 GiB/4K table;
`Walker.translate` on AArch64 too (4KB and 64KB granules, one stage and over stage 2: issue 13).

Beside each, the raw Python work one call cannot avoid, measured in the same run: the same number of
dependent entry loads (`PhysMem.fetch_u64`, plain ints, no checks, no rules) through the same table. On a
slow or busy machine both grow together; the ratio says how much the library adds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import raw
from workload import A64_4K, A64_64K, PA0, RW, STAGE2, VA0, GiB, fresh, mapped, raw_format, rules, two_stage

from pagetable.arch.riscv_sv39 import SV39
from pagetable.format import PagingFormat
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


def raw_loads(mem: PhysMem, root: int, f: raw.RawFormat = raw.SV39,
              through: Callable[[int], int] | None = None) -> Callable[[int], int]:
    """The loads one walk makes, on ints: for each level, the entry at table + index, then the table its
    address bits name (`f`); then the page with the VA's offset. With `through` (a second stage's loads),
    each entry address and the final address go through it first."""
    fetch, addr, up = mem.fetch_u64, int(f.addr_bits), f.up
    plan = [(shift, f.entries(d) - 1) for d, shift in enumerate(f.shifts)]
    offset = (1 << f.shifts[-1]) - 1

    def walk(va: int) -> int:
        table = root
        for shift, mask in plan:
            table = ((fetch(table + ((va >> shift) & mask) * 8) or 0) & addr) << up
        return table | (va & offset)

    def nested(va: int) -> int:
        assert through is not None
        table = root
        for shift, mask in plan:
            table = ((fetch(through(table + ((va >> shift) & mask) * 8)) or 0) & addr) << up
        return through(table | (va & offset))
    return walk if through is None else nested


def report() -> None:
    rng = np.random.default_rng(2)
    pages = (VA0 + rng.permutation(GiB >> 12)[:CALLS] * 4096).tolist()        # distinct pages, random order
    vas = [p + int(off) for p, off in zip(pages, rng.integers(0, 512, CALLS) * 8, strict=True)]
    mem, pt = mapped()
    walker = Walker(mem, rules(SV39, pt.root_paddr))
    one = raw_loads(mem, pt.root_paddr)
    assert all(walker.translate(v).pa == one(v) for v in vas[:1000])
    rows = [("translate (Sv39)", per_call(walker.translate, vas), per_call(one, vas), 3),
            ("query (Sv39)", per_call(pt.query, pages), per_call(one, pages), 3)]
    _, empty = fresh()
    pas = [PA0 + (v - VA0) for v in pages]
    order = iter(range(len(pages)))

    def map_one(va: int) -> None:
        empty.map(va, pas[next(order)], 4096, RW)
    rows.append(("map one 4K page (Sv39)", per_call(map_one, pages, 1), per_call(one, pages), 3))
    nested, host_one, loads = _two_stage(SV39)
    rows.append(("translate (Sv39 over Sv39x4)", per_call(nested.translate, vas), per_call(host_one, vas), loads))
    for fmt, name in ((A64_4K, "AArch64 4K"), (A64_64K, "AArch64 64K")):
        mem, pt = mapped(fmt)
        walker = Walker(mem, rules(fmt, pt.root_paddr))
        one = raw_loads(mem, pt.root_paddr, raw_format(fmt))
        assert all(walker.translate(v).pa == one(v) for v in vas[:1000])
        rows.append((f"translate ({name})", per_call(walker.translate, vas), per_call(one, vas), len(fmt.levels)))
        nested, host_one, loads = _two_stage(fmt)
        rows.append((f"translate ({name}, two stages)", per_call(nested.translate, vas), per_call(host_one, vas),
                     loads))
    print(f"single calls, us per call over {CALLS:,} distinct addresses (target < {TARGET_US:g} us)")
    print(f"{'call':<36} {'library':>9} {'raw loads':>10} {'loads':>6} {'x raw':>6} {'target':>7}")
    for name, lib, floor, loads in rows:
        print(f"{name:<36} {lib:>8.1f}u {floor:>9.1f}u {loads:>6} {lib / floor:>5.1f}x "
              f"{'ok' if lib < TARGET_US else 'SLOW':>7}")


def _two_stage(fmt: PagingFormat) -> tuple[Walker, Callable[[int], int], int]:
    """A guest table of `fmt` over its stage 2 (`workload.STAGE2`), both 1 GiB of their pages (as
    bench_two_stage), its raw loads per VA and how many they are."""
    w = two_stage(fmt)
    f1, f2 = raw_format(fmt), raw_format(STAGE2[fmt])
    walk = raw_loads(w.host, w.vs.root_paddr, f1, raw_loads(w.host, w.g.root_paddr, f2))
    assert all(w.walker.translate(v).pa == walk(v) for v in range(VA0, VA0 + GiB, GiB // 1000))
    return w.walker, walk, len(f1.shifts) * (len(f2.shifts) + 1) + len(f2.shifts)
