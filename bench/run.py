"""Benchmarks (run by `make bench`, issue 11): every bulk path beside the raw numpy work it cannot avoid
(bench/raw.py: plain numpy, checked to give the same answers) and against a plain per-page loop over the
same API; then how the bulk paths grow with the table, what memory they take, and a walk of a 16 GiB sparse
memory image.

Workload (issue 2): Sv39, 1 GiB of VA mapped as 262,144 4 KiB pages; enumerate those leaves; translate
1,000,000 random VAs in one vectorised call. Issue 5 adds the same translation through two stages: an Sv39
guest table over an Sv39x4 G-stage, both mapping 1 GiB as 4 KiB pages (12 entry fetches per address).
Issue 11 adds unmap_region and protect_region of the 1 GiB, its hardware listing (Walker.mappings and the
ptdump runs) and a vector set of `--cases` cases; issue 12 the same 1 GiB rows on x86-64 4-level paging
(map_region, walk, translate, unmap_region, protect_region, the listing: the same functions, given the
format, beside the same raw work, given its `raw.RawFormat`), issue 13 on AArch64 with the 4KB and the 64KB
granule (48-bit VAs, TTBR0_EL1; the 1 GiB as 262,144 or 16,384 pages), with their two-stage rows over
stage 2 (40-bit IPAs, or 42 with 64KB pages), and volatility3 side by side on peers.md's
W-4K-scatter image (bench/volatility.py: volatility3 in its own venv, `VOL3_PYTHON`, set up by `make bench`).
Issue 14 adds a 4 GiB Linux-like x86-64 image (bench/linux_image.py): Walker.mappings of its million PTEs, the
dump commands end to end, and volatility3's mapping() of the same image. `--only` runs some of the parts.
Each figure is the best of `--repeat` runs (more for a short one: `workload.MIN_TIMED`). The per-page loop
is timed on `--loop` items and scaled to the full count (say `--loop 0` to run it whole: about half an hour
with the two-stage loop). A row is "ok" when the bulk path takes at most 4x its raw work. The process keeps
the memory it frees for reuse (`workload.keep_freed_memory`; `--glibc-defaults` does not), so that a figure
is the work and not the page faults of a heap that glibc happened to trim between runs.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import growth
import linux_image
import memuse
import numpy as np
import numpy.typing as npt
import raw
import single
import sparse_image
import volatility
from workload import (
    A64_4K,
    A64_64K,
    PA0,
    RAW_ROOT,
    RW,
    STAGE2,
    VA0,
    GiB,
    adopt,
    best,
    best_after,
    fresh,
    keep_freed_memory,
    leaf_bits,
    leaf_memtype,
    mapped,
    pages,
    raw_format,
    raw_leaf_tables,
    raw_mapped,
    rules,
    two_stage,
    words_of,
)

from pagetable import listing
from pagetable.arch.riscv_sv39 import SV39
from pagetable.arch.x86_64 import PAGING4
from pagetable.flags import MappingFlags, human_size
from pagetable.format import PagingFormat
from pagetable.mappings import Mappings
from pagetable.vectors import Cases
from pagetable.vectors.riscv.gen import MAX_CASES, RAM_BASE, RAM_SIZE, _build_mode, generate_riscv
from pagetable.vectors.riscv.modes import vector_mode
from pagetable.walker import Walker

RAW_FACTOR = 4.0                      # issue 11's target: each bulk path within 4x its raw work
N_VAS = 1_000_000


@dataclass(frozen=True)
class Row:
    """One line of the table: `bulk` and `raw` seconds for `items`; the per-page loop's time scaled to
    `items` (timed on `looped` of them), and issue 2's absolute target, where there are."""

    name: str
    items: int
    bulk: float
    raw: float
    loop: float | None = None
    looped: int = 0
    target: float | None = None


def loop_time(run_items: int, total: int, fn: Callable[[int], object]) -> float:
    """Seconds the per-page loop `fn(n)` takes on `run_items` items, scaled to `total`."""
    t = time.perf_counter()
    fn(run_items)
    return (time.perf_counter() - t) * total / run_items


def same_columns(m: Mappings, cols: dict[str, npt.NDArray[np.generic]], names: tuple[str, ...]) -> bool:
    return all(np.array_equal(getattr(m, k), cols[k]) for k in names)


LABELS = {SV39: "", PAGING4: "x86 4-level: ", A64_4K: "AArch64 4K: ", A64_64K: "AArch64 64K: "}


def label(fmt: PagingFormat, name: str) -> str:
    """A row's name: the Sv39 rows by their operation, the other formats' with the format first."""
    return LABELS[fmt] + name


def page_label(fmt: PagingFormat) -> str:
    """The format's pages, as the rows name them: "4K", "64K"."""
    return human_size(fmt.page_size)


def bench_map(ns: argparse.Namespace, fmt: PagingFormat) -> Row:
    """map_region: 262,144 4K leaves (16,384 64K ones). Raw: the leaves, a pointer per leaf table and the
    pointers above them scattered into tables at the top of the same memory."""
    t_bulk = best_after(lambda: fresh(fmt), lambda s: s[1].map_region(VA0, PA0, GiB, RW), ns.repeat)
    n, page = pages(fmt), fmt.page_size
    n_loop = min(ns.loop or n, n)
    _, pt = fresh(fmt)

    def loop(k: int) -> None:
        for i in range(k):
            pt.map(VA0 + i * page, PA0 + i * page, page, RW)
    attrs, f, leaf_tables = leaf_bits(RW, fmt), raw_format(fmt), raw_leaf_tables(fmt)
    t_raw = best_after(lambda: fresh(fmt), lambda s: raw.map_4k(words_of(s[0]), PA0, RAW_ROOT, VA0, PA0, n,
                                                                leaf_tables, attrs, f), ns.repeat)
    return Row(label(fmt, f"map_region 1 GiB as {page_label(fmt)} pages"), n, t_bulk, t_raw,
               loop_time(n_loop, n, loop), n_loop, 0.1)


def bench_walk(ns: argparse.Namespace, fmt: PagingFormat) -> Row:
    """walk: enumerate the 262,144 leaves. Raw: gather the leaf entries of the raw-mapped table and write the
    columns; the library's walk of that same table must give the same columns."""
    _, pt = mapped(fmt)
    t_bulk = best(pt.walk, ns.repeat)
    n, page = pages(fmt), fmt.page_size
    n_loop = min(ns.loop or n, n)

    def loop(k: int) -> None:
        for i in range(k):
            pt.query(VA0 + i * page)
    raw_mem, f = raw_mapped(fmt), raw_format(fmt)
    t_raw = best(lambda: raw.walk_leaves(words_of(raw_mem), PA0, RAW_ROOT, VA0, 1, f), ns.repeat)
    cols = raw.walk_leaves(words_of(raw_mem), PA0, RAW_ROOT, VA0, 1, f)
    assert same_columns(adopt(raw_mem, fmt).walk(), dict(cols), ("va", "pa", "size", "flags", "depth", "raw", "slot"))
    assert same_columns(pt.walk(), dict(cols), ("va", "pa", "size", "flags", "raw"))   # the library's map: same leaves
    return Row(label(fmt, f"walk: enumerate {n:,} leaves"), n, t_bulk, t_raw, loop_time(n_loop, n, loop),
               n_loop, 0.1)


def bench_translate(ns: argparse.Namespace, fmt: PagingFormat, vas: npt.NDArray[np.uint64]) -> Row:
    """translate 1,000,000 random VAs through the hardware walker. Raw: a dependent load per level per VA (3
    in Sv39 and AArch64 64K, 4 in x86-64 4-level paging and AArch64 4K)."""
    mem, pt = mapped(fmt)
    walker, f = Walker(mem, rules(fmt, pt.root_paddr)), raw_format(fmt)
    t_bulk = best(lambda: walker.translate_many(vas, "read", "supervisor"), ns.repeat)
    n_loop = min(ns.loop or N_VAS, N_VAS)

    def loop(n: int) -> None:
        for v in vas[:n].tolist():
            walker.translate(v, "read", "supervisor")
    t_raw = best(lambda: raw.translate(words_of(mem), PA0, pt.root_paddr, vas, f), ns.repeat)
    assert np.array_equal(raw.translate(words_of(mem), PA0, pt.root_paddr, vas, f)[0],
                          walker.translate_many(vas, "read", "supervisor").pa)
    name = "translate 1,000,000 random VAs" if fmt is SV39 else label(fmt, "translate 1M VAs")
    return Row(name, N_VAS, t_bulk, t_raw, loop_time(n_loop, N_VAS, loop), n_loop, 0.5)


def bench_two_stage(ns: argparse.Namespace, vas: npt.NDArray[np.uint64], fmt: PagingFormat = SV39) -> Row:
    """The same through two stages: guest RAM at gpa0, backed by the same host bytes. Raw: each stage 1 entry
    address through stage 2's loads, then the entry, then the final address through stage 2: 15 dependent
    loads per VA for Sv39 over Sv39x4 (3 x 4 + 3), 19 for AArch64 4K over 40-bit IPAs (4 x 4 + 3), 11 for
    AArch64 64K over 42-bit IPAs (3 x 3 + 2)."""
    w = two_stage(fmt)
    f1, f2 = raw_format(fmt), raw_format(STAGE2[fmt])
    host, g, vs, nested = w.host, w.g, w.vs, w.walker
    t_bulk = best(lambda: nested.translate_many(vas, "read", "supervisor"), ns.repeat)
    n_loop = min(ns.loop or N_VAS, N_VAS)

    def loop(n: int) -> None:
        for v in vas[:n].tolist():
            nested.translate(v, "read", "supervisor")
    t_raw = best(lambda: raw.translate_two_stage(words_of(host), PA0, vs.root_paddr, g.root_paddr, vas, f1, f2),
                 ns.repeat)
    assert np.array_equal(raw.translate_two_stage(words_of(host), PA0, vs.root_paddr, g.root_paddr, vas, f1, f2)[0],
                          nested.translate_many(vas, "read", "supervisor").pa)
    name = "two-stage translate 1,000,000 VAs" if fmt is SV39 else label(fmt, "two-stage translate 1M VAs")
    return Row(name, N_VAS, t_bulk, t_raw, loop_time(n_loop, N_VAS, loop), n_loop, 2.0)


def bench_unmap(ns: argparse.Namespace, fmt: PagingFormat) -> Row:
    """unmap_region of the 1 GiB (it returns the 262,144 removed leaves and frees the tables below the root).
    Raw: gather the leaves into columns, scatter zeros into their slots, clear the pointers to their tables
    and the pointers above; the library's unmap of the raw-mapped table must return the same columns and
    leave the same memory."""
    t_bulk = best_after(lambda: mapped(fmt), lambda s: s[1].unmap_region(VA0, GiB), ns.repeat)
    n, page = pages(fmt), fmt.page_size
    n_loop = min(ns.loop or n, n)
    _, pt = mapped(fmt)

    def loop(k: int) -> None:
        for i in range(k):
            pt.unmap(VA0 + i * page)
    f = raw_format(fmt)
    t_raw = best_after(lambda: raw_mapped(fmt), lambda m: raw.unmap_4k(words_of(m), PA0, RAW_ROOT, VA0, f), ns.repeat)
    lib_mem, raw_mem = raw_mapped(fmt), raw_mapped(fmt)
    removed = adopt(lib_mem, fmt).unmap_region(VA0, GiB)
    cols = raw.unmap_4k(words_of(raw_mem), PA0, RAW_ROOT, VA0, f)
    assert same_columns(removed, dict(cols), ("va", "pa", "size", "flags", "depth", "raw", "slot"))
    assert np.array_equal(words_of(lib_mem), words_of(raw_mem))
    _, own = mapped(fmt)
    assert same_columns(own.unmap_region(VA0, GiB), dict(cols), ("va", "pa", "size", "flags", "raw"))
    assert len(own.walk()) == 0 and own.frames.in_use == 1          # only the root is left
    return Row(label(fmt, f"unmap_region 1 GiB of {page_label(fmt)} pages"), n, t_bulk, t_raw,
               loop_time(n_loop, n, loop), n_loop)


def bench_protect(ns: argparse.Namespace, fmt: PagingFormat) -> Row:
    """protect_region of the 1 GiB to read-only. Raw: gather the 262,144 leaves, rewrite their attribute bits,
    scatter them back; the library's protect of the raw-mapped table must leave the same memory."""
    ro = MappingFlags.READ
    t_bulk = best_after(lambda: mapped(fmt), lambda s: s[1].protect_region(VA0, GiB, ro), ns.repeat)
    n, page = pages(fmt), fmt.page_size
    n_loop = min(ns.loop or n, n)
    _, pt = mapped(fmt)

    def loop(k: int) -> None:
        for i in range(k):
            pt.protect(VA0 + i * page, ro)
    attrs, f = leaf_bits(ro, fmt), raw_format(fmt)
    t_raw = best_after(lambda: raw_mapped(fmt), lambda m: raw.protect_4k(words_of(m), PA0, RAW_ROOT, VA0, attrs, f),
                       ns.repeat)
    lib_mem, raw_mem = raw_mapped(fmt), raw_mapped(fmt)
    adopt(lib_mem, fmt).protect_region(VA0, GiB, ro)
    raw.protect_4k(words_of(raw_mem), PA0, RAW_ROOT, VA0, attrs, f)
    assert np.array_equal(words_of(lib_mem), words_of(raw_mem))
    return Row(label(fmt, f"protect_region 1 GiB of {page_label(fmt)} pages"), n, t_bulk, t_raw,
               loop_time(n_loop, n, loop), n_loop)


HARDWARE_COLUMNS = ("va", "pa", "size", "flags", "depth", "raw", "slot", "perms", "verdict", "verdict_stage",
                    "memtype")


def bench_listing(ns: argparse.Namespace, fmt: PagingFormat) -> Row:
    """The hardware listing of the 1 GiB: Walker.mappings (every leaf judged for every access and privilege)
    then listing.runs (ptdump's merging of contiguous leaves). Raw: gather the leaves, write the columns and
    merge the runs with np.diff/np.flatnonzero; the library's listing of the raw-mapped table must give the
    same columns and runs."""
    raw_mem, f = raw_mapped(fmt), raw_format(fmt)
    walker = Walker(raw_mem, rules(fmt, RAW_ROOT))
    memtype = leaf_memtype(fmt)
    t_bulk = best(lambda: listing.runs(walker.mappings(region=0)), ns.repeat)     # AArch64: TTBR0_EL1's
    t_raw = best(lambda: raw.listing(words_of(raw_mem), PA0, RAW_ROOT, VA0, memtype, f), ns.repeat)
    m = walker.mappings(region=0)
    starts, ends = listing.runs(m)
    cols, raw_starts, raw_ends = raw.listing(words_of(raw_mem), PA0, RAW_ROOT, VA0, memtype, f)
    assert same_columns(m, cols, HARDWARE_COLUMNS)
    assert np.array_equal(starts, raw_starts) and np.array_equal(ends, raw_ends)
    return Row(label(fmt, "listing: mappings + ptdump runs"), pages(fmt), t_bulk, t_raw)


def bench_vectors(ns: argparse.Namespace) -> Row:
    """generate_riscv("sv39", seed, cases=N). Raw (raw.vectors): the tagged 8 MiB image with the table words
    scattered in, N cases drawn over the generator's targets, their translations (up to 3 loads each) and
    their output columns (syndromes included); the image must be the library's byte for byte, and on the
    library's cases, every case the library translates must get the same PA from the raw walk."""
    n = min(ns.cases, MAX_CASES)
    t_bulk = best(lambda: generate_riscv("sv39", 1, cases=n), ns.repeat)
    vs = generate_riscv("sv39", 1, cases=n)
    image = words_of(vs.mem)
    tags = (np.uint64(RAM_BASE) + np.arange(RAM_SIZE // 8, dtype=np.uint64) * np.uint64(8)) << np.uint64(16)
    index = np.flatnonzero(image != tags)               # the generator's table words
    values = image[index]
    root = (vs.registers["satp"] & ((1 << 44) - 1)) << 12
    targets = _build_mode(vector_mode("sv39"), 1)[2]     # the generator's own targets (an internal of gen.py)
    starts = np.array([t.va for t in targets], dtype=np.uint64)
    spans = np.array([t.span for t in targets], dtype=np.uint64)
    t_raw = best(lambda: raw.vectors(RAM_BASE, RAM_SIZE, index, values, root, starts, spans, n, 1), ns.repeat)
    words, cols = raw.vectors(RAM_BASE, RAM_SIZE, index, values, root, starts, spans, n, 1)
    assert np.array_equal(words, image) and cols["va"].shape == (n,) and not cols["ok"].all()
    assert isinstance(vs.cases, Cases)                  # the cases' columns, as generated
    ok = vs.cases.outcome.ok
    walked = raw.vector_walk(words, RAM_BASE, RAM_SIZE, root, vs.cases.va)
    assert np.array_equal(walked["pa"][ok], vs.cases.outcome.pa[ok])
    assert walked["ok"][ok].all() and ok.sum() > n // 20
    return Row(f"vectors: sv39, {n:,} cases", n, t_bulk, t_raw)


def print_rows(rows: list[Row]) -> None:
    print(f"{'benchmark':<46} {'items':>9} {'bulk':>9} {'raw numpy':>10} {'x raw':>6} {'<=4x raw':>8} "
          f"{'issue 2':>11} {'per-page loop':>14} {'ratio':>6}")
    for r in rows:
        target = "" if r.target is None else f"<{r.target}s {'ok' if r.bulk < r.target else 'SLOW'}"
        loop = "" if r.loop is None else f"{r.loop:>13.2f}s {r.loop / r.bulk:>5.0f}x"
        note = "" if r.loop is None or r.looped == r.items else f"  (loop timed on {r.looped:,}, scaled)"
        print(f"{r.name:<46} {r.items:>9,} {r.bulk:>8.3f}s {r.raw:>9.4f}s {r.bulk / r.raw:>5.1f}x "
              f"{'ok' if r.bulk <= RAW_FACTOR * r.raw else 'SLOW':>8} {target:>11} {loop:>21}{note}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--loop", type=int, default=8192, help="items the per-page loop runs (0 = all)")
    ap.add_argument("--cases", type=int, default=100_000, help=f"vector cases (at most {MAX_CASES:,})")
    ap.add_argument("--growth-max", type=int, default=22, help="the growth table's largest size: 2**N pages")
    ap.add_argument("--glibc-defaults", action="store_true",
                    help="time with glibc malloc's defaults (freed memory given back and faulted in again)")
    ap.add_argument("--only", nargs="+", choices=SECTIONS, default=SECTIONS, metavar="SECTION",
                    help=f"run only these parts of the bench, in its order ({', '.join(SECTIONS)}; default all)")
    ns = ap.parse_args()
    started = time.perf_counter()
    kept = not ns.glibc_defaults and keep_freed_memory()
    print("allocator: " + ("freed memory kept for reuse (workload.keep_freed_memory)" if kept else
                           "glibc malloc's defaults (figures include re-faulting trimmed heap pages)"))
    for section in SECTIONS:
        if section in ns.only:
            run_section(section, ns)
            print()
    print(f"(bench run: {time.perf_counter() - started:.0f} s)")


SECTIONS = ("rows", "volatility", "single", "growth", "memuse", "sparse", "linux")
"""The bench's parts, in the order it runs them (`--only`): the 1 GiB rows of every format, volatility3 side
by side, the single-item calls, growth, memory use, the 16 GiB sparse image, issue 14's 4 GiB Linux-like
image (bench/linux_image.py)."""


def run_section(section: str, ns: argparse.Namespace) -> None:
    if section == "rows":
        vas = np.random.default_rng(1).integers(VA0, VA0 + GiB, N_VAS, dtype=np.uint64) & ~np.uint64(7)
        rows = [bench_map(ns, SV39), bench_walk(ns, SV39), bench_translate(ns, SV39, vas),
                bench_two_stage(ns, vas), bench_unmap(ns, SV39), bench_protect(ns, SV39), bench_listing(ns, SV39),
                bench_vectors(ns)]
        for fmt in (PAGING4, A64_4K, A64_64K):                # the same rows on the other formats
            rows += [bench_map(ns, fmt), bench_walk(ns, fmt), bench_translate(ns, fmt, vas)]
            rows += [bench_two_stage(ns, vas, fmt)] if fmt in STAGE2 else []
            rows += [bench(ns, fmt) for bench in (bench_unmap, bench_protect, bench_listing)]
        print_rows(rows)
    elif section == "volatility":
        volatility.report(ns.repeat)
    elif section == "single":
        single.report()
    elif section == "growth":
        growth.report(ns.growth_max)
    elif section == "memuse":
        use = memuse.report()
        print()
        memuse.largest(use)
    elif section == "sparse":
        sparse_image.report()
    else:
        linux_image.report(ns.repeat)


if __name__ == "__main__":
    main()
