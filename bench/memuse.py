"""What memory the 1 GiB / 4 KiB table and its bulk paths take, and the largest table this machine holds.

Four measurements per operation, each in a run of its own:
- tracemalloc's peak above the start (numpy reports its buffers to tracemalloc, so this is every array the
  operation allocates, its result included) and the blocks still allocated after it (with its result held),
  split into numpy buffers and Python objects;
- the most Python object blocks alive at once above the start: `sys.getallocatedblocks()` sampled at every
  function call and return (`sys.setprofile`), so a Python object per page would show as ~262,144;
- the peak RSS above the start: VmHWM after the operation minus VmRSS before it, with the high-water mark
  reset first (`/proc/self/clear_refs`) and free heap memory returned to the system (`malloc_trim`). The
  RAM's pages are np.zeros (calloc): a table page counts once the operation first writes it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import resource
import sys
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

import numpy as np
from workload import PA0, PAGES, RW, VA0, GiB, MiB, fresh, mapped

from pagetable.mappings import Mappings

NUMPY_DOMAIN = int(np.lib.tracemalloc_domain)
SV39_PAGES = 1 << 27                  # all of Sv39's 512 GiB of VA as 4 KiB pages


@dataclass(frozen=True)
class Use:
    """The memory one operation takes (bytes and block counts above its start)."""

    traced_peak: int
    numpy_blocks: int       # numpy buffers still allocated after the operation (its result held)
    python_blocks: int      # Python objects still allocated after it
    peak_blocks: int        # most Python object blocks alive at once during it
    rss_peak: int
    rss_exact: bool         # False: ru_maxrss (a lower bound), as VmHWM could not be reset


def _status(key: str) -> int | None:
    """A field of /proc/self/status in bytes (None where there is none)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _trim() -> None:
    """Collect garbage and give free heap memory back to the system (glibc's malloc_trim), so that the RSS
    an operation reaches is memory it uses."""
    gc.collect()
    name = ctypes.util.find_library("c")
    if name:
        trim = getattr(ctypes.CDLL(name), "malloc_trim", None)
        if trim is not None:
            trim(0)


def rss_peak(fn: Callable[[], object]) -> tuple[int, bool]:
    """The peak RSS `fn()` reaches above the RSS before it, and whether that is exact (VmHWM reset)."""
    _trim()
    before = _status("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                              # reset VmHWM to the current RSS
        exact = before is not None
    except OSError:
        exact = False
    max_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result = fn()
    if exact:
        peak = _status("VmHWM")
        assert peak is not None and before is not None
        used = peak - before
    else:
        used = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - max_before
    del result
    return max(0, used), exact


def traced(fn: Callable[[], object]) -> tuple[int, int, int]:
    """tracemalloc's peak during `fn()` above its start, and the numpy buffers and Python objects allocated
    during it that are still alive after it (its result held)."""
    _trim()
    tracemalloc.start()                               # traces only what is allocated from here on
    try:
        start, _ = tracemalloc.get_traced_memory()
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
        after = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    finally:
        tracemalloc.stop()
    blocks = [len(after.filter_traces([tracemalloc.DomainFilter(True, d)]).traces) for d in (NUMPY_DOMAIN, 0)]
    del result
    return peak - start, blocks[0], blocks[1]


def peak_blocks(fn: Callable[[], object]) -> int:
    """The most Python object blocks alive at once during `fn()` above its start, sampled at every function
    call and return."""
    _trim()
    start = sys.getallocatedblocks()
    top = [start]

    def sample(frame: FrameType, event: str, arg: Any) -> None:
        blocks = sys.getallocatedblocks()
        if blocks > top[0]:
            top[0] = blocks
    sys.setprofile(sample)
    try:
        result = fn()
    finally:
        sys.setprofile(None)
    del result
    return top[0] - start


def use_of(setup: Callable[[], Callable[[], object]]) -> Use:
    """The memory the operation `setup()` returns takes, each measurement on a fresh setup."""
    traced_peak, numpy_blocks, python_blocks = traced(setup())
    blocks = peak_blocks(setup())
    rss, exact = rss_peak(setup())
    return Use(traced_peak, numpy_blocks, python_blocks, blocks, rss, exact)


@dataclass(frozen=True)
class Figures:
    """The 1 GiB / 4 KiB table's memory: its tables, the walk's columns, and its bulk paths' use."""

    tables: int
    table_count: int
    columns: int
    map_use: Use
    walk_use: Use


def column_bytes(m: Mappings) -> int:
    return sum(getattr(m, k).nbytes for k in ("va", "pa", "size", "flags", "depth", "raw", "slot"))


def _map_op() -> Callable[[], object]:
    _, pt = fresh()
    return lambda: pt.map_region(VA0, PA0, GiB, RW)


def _walk_op() -> Callable[[], object]:
    _, pt = mapped()
    return pt.walk


def _mib(n: int) -> str:
    return f"{n / MiB:8.2f} MiB ({n / PAGES:6.1f} B/page)"


def report() -> Figures:
    _, pt = mapped()
    tables = pt.frames.in_use * pt.frames.frame_size
    columns = column_bytes(pt.walk())
    fig = Figures(tables, pt.frames.in_use, columns, use_of(_map_op), use_of(_walk_op))
    print(f"memory: the 1 GiB / 4K table ({PAGES:,} pages)")
    print(f"  tables                        {_mib(tables)}: {fig.table_count} tables of 4 KiB")
    print(f"  walk's output columns         {_mib(columns)}: va pa size flags raw slot (u64), depth (i8)")
    for name, use in (("map_region", fig.map_use), ("walk", fig.walk_use)):
        rss = "" if use.rss_exact else " (ru_maxrss: a lower bound)"
        print(f"  {name:<10} tracemalloc peak  {_mib(use.traced_peak)}")
        print(f"  {name:<10} peak RSS          {_mib(use.rss_peak)}{rss}")
        print(f"  {name:<10} Python blocks     {use.peak_blocks:>8,} alive at most at once; after it "
              f"{use.python_blocks:,} Python blocks (free lists included) and {use.numpy_blocks:,} numpy "
              f"buffers remain")
    return fig


def largest(fig: Figures) -> None:
    """The most 4 KiB pages this machine's memory holds as tables plus a walk's columns, and the most one
    map_region and one walk of the whole can take (their measured tracemalloc peaks), from the 1 GiB
    table's bytes per page."""
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    per_table, per_col = fig.tables / PAGES, fig.columns / PAGES
    per_map, per_walk = fig.map_use.traced_peak / PAGES, fig.walk_use.traced_peak / PAGES
    print(f"largest structure in this machine's {total / GiB:.1f} GiB (os.sysconf), 4 KiB pages:")
    for what, per in (("tables + the walk's columns held", per_table + per_col),
                      ("tables + one map_region's peak", per_table + per_map),
                      ("tables + one walk's peak", per_table + per_walk)):
        pages = int(total // per)
        print(f"  {what:<34} {per:6.1f} B/page -> {pages:>13,} pages ({pages * 4096 / (1 << 40):6.2f} TiB of VA)")
    print(f"  (Sv39's whole 512 GiB of VA is {SV39_PAGES:,} pages: beyond it, Sv48 or Sv57)")
