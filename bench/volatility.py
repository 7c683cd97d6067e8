"""Side by side with volatility3 (/work/shared/peers.md §0.1, §1.5-1.6): the W-4K-scatter workload exactly,
built by the library into a raw image, enumerated by volatility3's Intel32e layer and listed by pagetable.

The image: 2 GiB of physical memory at PA 0 (a sparse file: zeros but for the tables), x86-64 4-level
paging with the PML4 at 0 (CR3 = 0), the PDPT at 0x1000, the PD at 0x2000 and its 512 PTs at 0x3000 onwards
(table entries P|RW|US, as the library writes them); VA [0, 1 GiB) mapped as 262,144 4 KiB pages
(P|RW|US|NX) to the 262,144 data frames of [1 GiB, 2 GiB) in a numpy shuffle's order (seed 1). The library
builds it (`PageTable.map_pages`, tables from a frame allocator at PA 0), and the layout is checked against
§0.1 before the image is written.

volatility3 runs in its own venv (`VOL3_PYTHON`, default .venv-bench/bin/python, which `make bench` sets
up), in a subprocess (bench/vol3_mapping.py), so the project never imports it: `mapping(0, 1 GiB)`, best
of `repeat` runs, each on a fresh layer. pagetable's figure is `Walker.mappings(0, 1 GiB)` of the same
image (`PhysMem.load`: memory-mapped), every row with VA, PA, size, effective permissions and memory type
(and the entry, its slot, flags and verdict); beside it the raw numpy work those columns need
(raw.hardware_columns). Before any timing is printed, the three must agree: the library's rows equal the raw
columns, and volatility3's runs (merged where VA and PA both continue) expanded to 4 KiB pages give the
library's VA -> PA row for row.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import raw
from workload import RW, GiB, best, keep_freed_memory

from pagetable.arch.x86_64 import ARCEOS, PAGING4, X86Rules
from pagetable.flags import MappingFlags
from pagetable.frames import FrameAllocator
from pagetable.mappings import Mappings
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.translation import MemoryType
from pagetable.walker import Walker

U64 = npt.NDArray[np.uint64]
PAGES = GiB >> 12
IMAGE_SIZE = 2 * GiB
TABLE_BYTES = 0x203000                     # PML4, PDPT, PD and 512 PTs from PA 0
POINTER, LEAF = 0x7, 0x8000_0000_0000_0007  # P|RW|US; P|RW|US|NX
TARGET = 300.0                             # pagetable at least this many times faster
RAW_FACTOR = 4.0
REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv-bench"
INSTALL = (f"python3 -m venv {VENV.name} && {VENV.name}/bin/pip install 'volatility3==2.28.2' "
           "(what `make bench` does; or point VOL3_PYTHON at a Python that has volatility3)")


def frames() -> U64:
    """The data frames' PAs in VA order: the 262,144 frames of [1 GiB, 2 GiB) shuffled (numpy, seed 1)."""
    order = np.arange(PAGES, dtype=np.uint64)
    np.random.default_rng(1).shuffle(order)
    out: U64 = np.uint64(GiB) + order * np.uint64(4096)
    return out


def build_image(path: str) -> U64:
    """Write the W-4K-scatter image to `path` with the library; returns the frames in VA order."""
    mem = PhysMem([(0, IMAGE_SIZE)])
    # the workload's table entries are P|RW|US whatever the pages need, as page_table_multiarch writes them:
    # the ArceOS profile's tables (its leaves for these flags are the manual profile's bytes)
    pt = PageTable(PAGING4.with_codec(ARCEOS), mem, FrameAllocator(mem, 0, TABLE_BYTES))
    pas = frames()
    pt.map_pages(np.arange(PAGES, dtype=np.uint64) * np.uint64(4096), pas, RW | MappingFlags.USER)
    words = mem.words(0, TABLE_BYTES // 8)
    pts = np.uint64(0x3000) + np.arange(512, dtype=np.uint64) * np.uint64(4096)
    assert pt.root_paddr == 0 and words[0] == 0x1000 | POINTER and words[0x1000 // 8] == 0x2000 | POINTER
    assert np.array_equal(words[0x2000 // 8:0x3000 // 8], pts | np.uint64(POINTER)), "PD[i] -> PT i at 0x3000 + i*4K"
    assert np.array_equal(words[0x3000 // 8:], pas | np.uint64(LEAF)), "the PTs hold the shuffled frames, P|RW|US|NX"
    assert np.count_nonzero(words) == 2 + 512 + PAGES                  # nothing else in the tables
    with open(path, "wb") as fh:
        mem.view(0, TABLE_BYTES).tofile(fh)
        fh.truncate(IMAGE_SIZE)                                          # the data frames: a hole of zeros
    return pas


@dataclass(frozen=True)
class Vol3:
    """volatility3's result: its best time, its version, and its runs as (va, length, pa) columns."""

    best: float
    version: str
    va: U64
    length: U64
    pa: U64


def vol3_python() -> str | None:
    """The Python of volatility3's venv, if it has volatility3."""
    python = os.environ.get("VOL3_PYTHON") or str(VENV / "bin" / "python")
    if not os.path.exists(python):
        return None
    found = subprocess.run([python, "-c", "import volatility3.framework"], capture_output=True, check=False)
    return python if found.returncode == 0 else None


def run_vol3(python: str, image: str, repeat: int, cr3: int = 0, start: int = 0, length: int = GiB) -> Vol3:
    """volatility3's `mapping(start, length)` of `image` with the PML4 at `cr3` (bench/vol3_mapping.py), best
    of `repeat` runs; its runs are written next to `image`."""
    out = image + ".vol3"
    where = [hex(cr3), hex(start), hex(length)]
    done = subprocess.run([python, str(Path(__file__).with_name("vol3_mapping.py")), image, out, str(repeat), *where],
                          capture_output=True, text=True, check=False, timeout=1200)
    if done.returncode != 0:
        raise RuntimeError(f"volatility3 failed:\n{done.stderr}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    runs = np.fromfile(out, dtype=np.uint64).reshape(-1, 3)
    os.remove(out)
    return Vol3(min(report["times"]), report["version"], runs[:, 0].copy(), runs[:, 1].copy(), runs[:, 2].copy())


def expand(v: Vol3) -> tuple[U64, U64]:
    """volatility3's runs as 4 KiB pages: the VA and PA of each, in VA order."""
    pages = (v.length // np.uint64(4096)).astype(np.intp)
    first = np.repeat(np.cumsum(pages) - pages, pages)
    offset = (np.arange(int(pages.sum())) - first).astype(np.uint64) * np.uint64(4096)
    va: U64 = np.repeat(v.va, pages) + offset
    pa: U64 = np.repeat(v.pa, pages) + offset
    return va, pa


def check(m: Mappings, cols: raw.Columns, pas: U64, v: Vol3 | None) -> None:
    """The library's listing against the raw columns, the image's frames and volatility3's runs."""
    assert all(np.array_equal(getattr(m, k), cols[k]) for k in cols), "library and raw columns differ"
    assert len(m) == PAGES and np.array_equal(m.va, np.arange(PAGES, dtype=np.uint64) * np.uint64(4096))
    assert np.array_equal(m.pa, pas) and bool(np.all(m.size == 4096)) and not m.verdict.any()   # type: ignore[union-attr]
    assert bool(np.all(m.memtype == MemoryType.WB)) and bool(np.all(m.perms == 0b011011))      # S:rw- U:rw-
    if v is None:
        return
    va, pa = expand(v)
    assert np.array_equal(va, m.va) and np.array_equal(pa, m.pa), "volatility3 and pagetable map VAs differently"
    merged = 1 + np.count_nonzero((np.diff(m.pa) != 4096) | (np.diff(m.va) != 4096))   # runs on VA and PA
    assert merged == v.va.shape[0], f"volatility3 gives {v.va.shape[0]} runs, VA+PA contiguity {merged}"


def report(repeat: int) -> None:
    print("side by side with volatility3: peers.md §0.1 W-4K-scatter (x86-64 4-level paging, VA [0, 1 GiB) as "
          "262,144 4 KiB pages on shuffled frames, a 2 GiB raw image)")
    python = vol3_python()
    with tempfile.TemporaryDirectory(prefix="pagetable-vol3-") as tmp:
        image = os.path.join(tmp, "w4k-scatter.raw")
        pas = build_image(image)
        mem = PhysMem.load([(image, 0)])
        walker = Walker(mem, X86Rules(0))
        t_lib = best(lambda: walker.mappings(0, GiB), repeat)
        words = mem.regions[0].words
        wb = int(MemoryType.WB)
        t_raw = best(lambda: raw.hardware_columns(words, 0, 0, 0, wb, raw.X86), repeat)
        v = run_vol3(python, image, repeat) if python else None
        check(walker.mappings(0, GiB), raw.hardware_columns(words, 0, 0, 0, wb, raw.X86), pas, v)
    print(f"{'call':<48} {'rows':>14} {'time':>9} {'raw numpy':>10} {'x raw':>6} {'<=4x raw':>8}")
    if v is not None:
        print(f"{'volatility3 ' + v.version + ' Intel32e.mapping(0, 1 GiB)':<48} {f'{v.va.shape[0]:,} runs':>14} "
              f"{v.best:>8.2f}s")
    print(f"{'pagetable Walker.mappings(0, 1 GiB)':<48} {PAGES:>14,} {t_lib:>8.4f}s {t_raw:>9.4f}s "
          f"{t_lib / t_raw:>5.1f}x {'ok' if t_lib <= RAW_FACTOR * t_raw else 'SLOW':>8}")
    if v is None:
        print(f"volatility3 is not installed, so there is no side-by-side figure: {INSTALL}")
        return
    ratio = v.best / t_lib
    print(f"pagetable is {ratio:,.0f}x faster than volatility3 (target >= {TARGET:g}x: "
          f"{'ok' if ratio >= TARGET else 'SLOW'}); the two agree on every VA -> PA")


if __name__ == "__main__":
    keep_freed_memory()
    report(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
