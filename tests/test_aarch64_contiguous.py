"""The Contiguous hint (Arm ARM DDI 0487 M.a.a, D8.7.1): which aligned sets of descriptors may carry it,
`contiguous.mark` setting and clearing it, and `contiguous.misprogrammed` finding sets that carry it wrongly."""

from __future__ import annotations

import numpy as np
import pytest

from pagetable.arch.aarch64 import contiguous
from pagetable.arch.aarch64.codec import CONTIGUOUS
from pagetable.arch.aarch64.descriptors import Granule
from pagetable.arch.aarch64.modes import S1_4K_48, S1_16K_47, S1_64K_48, stage1_format
from pagetable.flags import MappingFlags as F
from pagetable.format import PagingFormat
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable

RAM = 0x4000_0000
RW = F.READ | F.WRITE


def _table(fmt: PagingFormat) -> PageTable:
    mem = PhysMem([(RAM, 128 << 20)])
    return PageTable(fmt, mem, FrameAllocator(mem, RAM, 16 << 20))


def _marked(pt: PageTable) -> set[int]:
    m = pt.walk()
    return {int(v) for v in m.va[(m.raw & np.uint64(CONTIGUOUS)) != 0]}


@pytest.mark.parametrize(("fmt", "n"), [(S1_4K_48, 16), (S1_16K_47, 128), (S1_64K_48, 32)])
def test_an_aligned_linear_run_of_pages_is_marked_and_nothing_else(fmt: PagingFormat, n: int) -> None:
    pt = _table(fmt)
    page = fmt.page_size
    span = n * page
    pt.map_region(span, RAM + (32 << 20), span, RW)                        # one whole aligned set
    pt.map_region(4 * span, RAM + (64 << 20), span - page, RW)              # a set missing its last page
    pt.map_region(6 * span, RAM + (96 << 20) + page, span, RW)              # output not aligned to the set
    assert contiguous.mark(pt, 0, 8 * span) == n
    assert _marked(pt) == {span + k * page for k in range(n)}
    assert contiguous.misprogrammed(pt.walk()).size == 0


def test_a_set_with_one_different_page_is_not_marked_and_a_stale_bit_is_found() -> None:
    pt = _table(S1_4K_48)
    pt.map_region(0x10_0000, RAM + (32 << 20), 0x1_0000, RW)
    assert contiguous.mark(pt, 0x10_0000, 0x1_0000) == 16
    pt.protect(0x10_3000, F.READ)                       # rewritten without the bit; its set no longer qualifies
    assert contiguous.misprogrammed(pt.walk()).tolist() == [0x10_0000 + k * 0x1000 for k in range(16) if k != 3]
    assert contiguous.mark(pt, 0x10_0000, 0x1_0000) == 0
    assert _marked(pt) == set()


def test_blocks_are_marked_per_level() -> None:
    """16 aligned 2 MiB blocks with the 4KB granule (32 MiB) form a set at level 2."""
    fmt = stage1_format(Granule.K4, 48)
    pt = _table(fmt)
    pt.map_region(0x4000_0000, RAM + (64 << 20), 32 << 20, RW, allow_huge=True)
    assert contiguous.mark(pt, 0x4000_0000, 32 << 20) == 16
    assert len(_marked(pt)) == 16
