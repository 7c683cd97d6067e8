"""A 16 GiB sparse memory image (issue 11): PhysMem.load maps it, and walking and translating a small Sv39
table written at scattered places in it (the root at the start, level-1 tables at the end, leaf tables all
over, leaves pointing across the whole 16 GiB) touches only the table pages: the process's RSS grows by a
few MiB, not by 16 GiB. The table is written PTE by PTE with os.pwrite, without the library."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from pagetable.arch.riscv_sv39 import SV39, Satp
from pagetable.arch.riscv_sv39.walk import RiscvRules
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.walker import Reason, Walker

U64 = npt.NDArray[np.uint64]
MiB, GiB = 1 << 20, 1 << 30
BASE, SIZE = 0x8000_0000, 16 * GiB
LEAF, POINTER = 0xC7, 0x1              # V R W A D; V
LEAF_TABLES = 16                       # 4 level-1 tables x 4 leaf tables, 512 leaves each


def _pte(pa: int | U64, bits: int) -> U64:
    return (np.asarray(pa, dtype=np.uint64).reshape(-1) >> np.uint64(12) << np.uint64(10)) | np.uint64(bits)


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def _sparse_file(path: Path, size: int) -> None:
    """A file of `size` bytes with no data written (skip the test where holes take disk blocks)."""
    probe = path.with_suffix(".probe")
    with open(probe, "wb") as f:
        f.truncate(64 * MiB)                   # a small probe first: a filesystem without holes writes zeros
    allocated = os.stat(probe).st_blocks * 512
    probe.unlink()
    if allocated >= MiB:
        pytest.skip(f"the filesystem of {path.parent} cannot make sparse files: a 64 MiB hole took "
                    f"{allocated:,} bytes of disk")
    with open(path, "wb") as f:
        f.truncate(size)


def _write_table(fd: int) -> tuple[U64, U64, U64, U64]:
    """Write the table; returns the leaves' VA, PA and size (sorted by VA) and each leaf table's PA."""
    vas, pas, sizes, tables = [], [], [], []
    root = np.zeros(512, dtype=np.uint64)
    stride = SIZE // (LEAF_TABLES * 512)                         # 2 MiB: the leaves span all 16 GiB
    for k in range(4):
        l1_pa = BASE + SIZE - (k + 1) * 4096                     # level-1 tables: the last pages
        root[k + 1] = _pte(l1_pa, POINTER)[0]                    # VA (k + 1) GiB
        l1 = np.zeros(512, dtype=np.uint64)
        for j, index in enumerate((0, 100, 300, 511)):
            t = 4 * k + j
            table_pa = BASE + t * (SIZE // LEAF_TABLES) + (t + 1) * 4096
            l1[index] = _pte(table_pa, POINTER)[0]
            leaf_pa = np.uint64(BASE) + (np.arange(512, dtype=np.uint64) + np.uint64(t * 512)) * np.uint64(stride)
            os.pwrite(fd, _pte(leaf_pa, LEAF).tobytes(), table_pa - BASE)
            vas.append(np.uint64(((k + 1) << 30) + (index << 21)) + np.arange(512, dtype=np.uint64) * np.uint64(4096))
            pas.append(leaf_pa)
            sizes.append(np.full(512, 4096, dtype=np.uint64))
            tables.append(table_pa)
        if k == 0:                                               # a 2 MiB leaf in the last 2 MiB
            l1[200] = _pte(BASE + SIZE - 2 * MiB, LEAF)[0]
            vas.append(np.array([(1 << 30) + (200 << 21)], dtype=np.uint64))
            pas.append(np.array([BASE + SIZE - 2 * MiB], dtype=np.uint64))
            sizes.append(np.array([2 * MiB], dtype=np.uint64))
        os.pwrite(fd, l1.tobytes(), l1_pa - BASE)
    root[5] = _pte(BASE + SIZE - GiB, LEAF)[0]                   # a 1 GiB leaf: the last GiB
    vas.append(np.array([5 << 30], dtype=np.uint64))
    pas.append(np.array([BASE + SIZE - GiB], dtype=np.uint64))
    sizes.append(np.array([GiB], dtype=np.uint64))
    os.pwrite(fd, root.tobytes(), 0)
    va, pa, size = np.concatenate(vas), np.concatenate(pas), np.concatenate(sizes)
    order = np.argsort(va)
    return va[order], pa[order], size[order], np.array(tables, dtype=np.uint64)


def test_walk_of_a_16_gib_sparse_image_touches_only_its_tables(tmp_path: Path) -> None:
    if not os.path.exists("/proc/self/status"):
        pytest.skip("the RSS is read from /proc/self/status (Linux)")
    path = tmp_path / "mem.bin"
    _sparse_file(path, SIZE)
    fd = os.open(path, os.O_WRONLY)
    try:
        va, pa, size, tables = _write_table(fd)
    finally:
        os.close(fd)
    assert os.path.getsize(path) == SIZE and os.stat(path).st_blocks * 512 < 4 * MiB

    before = _rss()
    mem = PhysMem.load([(path, BASE)])
    assert [(r.base, r.size) for r in mem.regions] == [(BASE, SIZE)]
    m = PageTable(SV39, mem, FrameAllocator(mem, BASE, 4096), root=BASE).walk()
    offsets = np.random.default_rng(11).integers(0, size // np.uint64(8), dtype=np.uint64) * np.uint64(8)
    t = Walker(mem, RiscvRules(Satp.for_table(SV39, BASE))).translate_many(np.concatenate((va + offsets, va)))
    grown = _rss() - before

    assert not m.problems
    assert np.array_equal(m.va, va) and np.array_equal(m.pa, pa) and np.array_equal(m.size, size)
    assert np.array_equal(m.slot[m.size == 4096][::512], np.sort(tables))   # each leaf table where it was put
    assert int(m.pa.max()) + int(m.size[m.pa.argmax()]) == BASE + SIZE       # the leaves reach the image's end
    assert (t.reason == Reason.OK).all()
    assert np.array_equal(t.pa, np.concatenate((pa + offsets, pa)))
    assert grown < 64 * MiB, f"RSS grew by {grown / MiB:.1f} MiB walking a 16 GiB sparse image"
