"""A 16 GiB sparse memory image: a small Sv39 table written at scattered places of a sparse file, loaded with
PhysMem.load (memory-mapped), walked and translated; the process's RSS grows by the table pages only.

Layout (RAM [BASE, BASE + 16 GiB), all of it the file): the root at the start; four level-1 tables in the
last pages (root entries 1-4: VA 1-5 GiB); under each, four leaf tables (indices 0, 100, 300, 511) spread
over the whole file, each full of 512 leaves whose PAs step by 2 MiB over the whole 16 GiB; plus a 2 MiB
leaf (level-1 table 0, index 200) and a 1 GiB leaf (root entry 5) in the last 2 MiB and 1 GiB. The tables
are written with os.pwrite, PTE by PTE in plain numpy: no library code builds them.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from workload import GiB, MiB

from pagetable.arch.riscv_sv39 import SV39, Satp
from pagetable.arch.riscv_sv39.walk import RiscvRules
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.walker import Reason, Walker

U64 = npt.NDArray[np.uint64]
BASE, SIZE = 0x8000_0000, 16 * GiB
LEAF = 0xC7                          # V R W A D
POINTER = 0x1                        # V


def pte(pa: int | U64, bits: int) -> U64:
    """Sv39 entries with PPN pa >> 12 and `bits` (one per PA)."""
    return (np.asarray(pa, dtype=np.uint64).reshape(-1) >> np.uint64(12) << np.uint64(10)) | np.uint64(bits)


@dataclass(frozen=True)
class Image:
    """The image file and the leaves its table maps (VA, PA, size), sorted by VA."""

    path: str
    va: U64
    pa: U64
    size: U64
    table_pages: int


def write_image(directory: str) -> Image | None:
    """Write the sparse image in `directory`; None if its filesystem allocates blocks for holes."""
    probe = os.path.join(directory, "probe.bin")
    with open(probe, "wb") as f:
        f.truncate(64 * MiB)
    sparse = os.stat(probe).st_blocks * 512 < MiB
    os.remove(probe)
    if not sparse:
        return None
    path = os.path.join(directory, "mem.bin")
    with open(path, "wb") as f:
        f.truncate(SIZE)
    fd = os.open(path, os.O_WRONLY)
    vas, pas, sizes = [], [], []
    root = np.zeros(512, dtype=np.uint64)
    stride = SIZE // (16 * 512)                               # leaf PAs step over the whole image
    for k in range(4):                                        # root entries 1-4: VA (k + 1) GiB
        l1_off = SIZE - (k + 1) * 4096
        root[k + 1] = pte(BASE + l1_off, POINTER)[0]
        l1 = np.zeros(512, dtype=np.uint64)
        for j, index in enumerate((0, 100, 300, 511)):
            t = 4 * k + j
            leaf_off = t * (SIZE // 16) + (t + 1) * 4096
            l1[index] = pte(BASE + leaf_off, POINTER)[0]
            leaf_pa = np.uint64(BASE) + (np.arange(512, dtype=np.uint64) + np.uint64(t * 512)) * np.uint64(stride)
            os.pwrite(fd, pte(leaf_pa, LEAF).tobytes(), leaf_off)
            va0 = ((k + 1) << 30) + (index << 21)
            vas.append(np.uint64(va0) + np.arange(512, dtype=np.uint64) * np.uint64(4096))
            pas.append(leaf_pa)
            sizes.append(np.full(512, 4096, dtype=np.uint64))
        if k == 0:
            l1[200] = pte(BASE + SIZE - 2 * MiB, LEAF)[0]
            vas.append(np.array([(1 << 30) + (200 << 21)], dtype=np.uint64))
            pas.append(np.array([BASE + SIZE - 2 * MiB], dtype=np.uint64))
            sizes.append(np.array([2 * MiB], dtype=np.uint64))
        os.pwrite(fd, l1.tobytes(), l1_off)
    root[5] = pte(BASE + SIZE - GiB, LEAF)[0]
    vas.append(np.array([5 << 30], dtype=np.uint64))
    pas.append(np.array([BASE + SIZE - GiB], dtype=np.uint64))
    sizes.append(np.array([GiB], dtype=np.uint64))
    os.pwrite(fd, root.tobytes(), 0)
    os.close(fd)
    va, pa, size = np.concatenate(vas), np.concatenate(pas), np.concatenate(sizes)
    order = np.argsort(va)
    return Image(path, va[order], pa[order], size[order], 1 + 4 + 16)


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmRSS in /proc/self/status")


def report() -> None:
    print(f"sparse image: {SIZE >> 30} GiB file, an Sv39 table written at scattered places, PhysMem.load, walk, "
          "translate")
    with tempfile.TemporaryDirectory() as directory:
        img = write_image(directory)
        if img is None:
            print(f"  skipped: the filesystem of {directory} allocates blocks for holes (no sparse files)")
            return
        on_disk = os.stat(img.path).st_blocks * 512
        before = rss()
        t0 = time.perf_counter()
        mem = PhysMem.load([(img.path, BASE)])
        loaded = rss()
        m = PageTable(SV39, mem, FrameAllocator(mem, BASE, 4096), root=BASE).walk()
        t1 = time.perf_counter()
        offsets = np.random.default_rng(5).integers(0, img.size // np.uint64(8), dtype=np.uint64) * np.uint64(8)
        t = Walker(mem, RiscvRules(Satp.for_table(SV39, BASE))).translate_many(img.va + offsets)
        t2 = time.perf_counter()
        after = rss()
        assert np.array_equal(m.va, img.va) and np.array_equal(m.pa, img.pa) and np.array_equal(m.size, img.size)
        assert (t.reason == Reason.OK).all() and np.array_equal(t.pa, img.pa + offsets)
        print(f"  file {os.path.getsize(img.path) >> 30} GiB, {on_disk >> 10} KiB on disk ({img.table_pages} table "
              f"pages); {len(m):,} leaves mapping PAs {int(img.pa[0]):#x}-{int(img.pa[-1] + img.size[-1]):#x}")
        print(f"  walk {t1 - t0:.3f} s (load included), translate {len(t.pa):,} VAs {t2 - t1:.3f} s, all right")
        print(f"  RSS {before / MiB:.1f} MiB before, +{(loaded - before) / MiB:.2f} MiB after load, "
              f"+{(after - before) / MiB:.2f} MiB after walk and translate (not {SIZE >> 30} GiB)")
        del mem, m, t
