"""Per-level entry codecs (`Level.codec`, `PagingFormat.codecs`): a level whose entries have their own format
(x86 PAE's PDPTEs: P and an address, no access rights, never a page) is encoded, decoded and refitted by its
own codec, and the levels below by the format's. The double here is 4-level paging with PAE's PDPT codec at
the root: root entries must come out as P | address exactly, while the table entries below keep getting
the R/W and U/S their tables need (Intel SDM Vol. 3A, Table 4-8 for the PDPTE, 4.6 for the rights)."""

from __future__ import annotations

import dataclasses

import pytest

from pagetable.arch.x86_64 import PAGING4, PDPT, SPEC
from pagetable.arch.x86_64.entry import ARCEOS, RW, US, P
from pagetable.errors import InvalidFlags
from pagetable.flags import MappingFlags as F
from pagetable.flags import PageSize
from pagetable.format import PagingFormat
from pagetable.frames import FrameAllocator
from pagetable.listing import ptdump
from pagetable.physmem import PhysMem
from pagetable.table import PageTable

FMT = dataclasses.replace(PAGING4, name="4-level, PDPT-coded root",
                          levels=(dataclasses.replace(PAGING4.levels[0], codec=PDPT), *PAGING4.levels[1:]))
BASE, VA = 0x100_0000, 0x4000_0000_1000
USER_RW = F.READ | F.WRITE | F.USER


def _table(fmt: PagingFormat = FMT) -> tuple[PageTable, PhysMem]:
    mem = PhysMem([(BASE, 4 << 20)])
    return PageTable(fmt, mem, FrameAllocator(mem)), mem


def _path(pt: PageTable, va: int) -> list[int]:
    """The raw entries on `va`'s path, root first."""
    out, table = [], pt.root_paddr
    for d in range(FMT.depth_count):
        raw = pt.entries.read(table + FMT.index(va, d) * 8)
        out.append(raw)
        table = raw & 0x000F_FFFF_FFFF_F000
    return out


def test_codecs_per_depth() -> None:
    assert FMT.codecs == (PDPT, SPEC, SPEC, SPEC)
    assert PAGING4.codecs == (SPEC,) * 4 and FMT.pointer_rights
    other = FMT.with_codec(ARCEOS)                        # the level's own codec stays
    assert other.codecs == (PDPT, ARCEOS, ARCEOS, ARCEOS)


@pytest.mark.parametrize("bulk", [False, True])
def test_root_entries_carry_no_rights_and_the_others_are_fitted(bulk: bool) -> None:
    pt, _ = _table()
    if bulk:
        pt.map_region(VA, 0x30_0000, 0x2000, USER_RW)
    else:
        pt.map(VA, 0x30_0000, PageSize.SIZE_4K, USER_RW)
    root, pdpte, pde, pte = _path(pt, VA)
    assert root & 0xFFF == P and root >> 52 == 0                  # P and the address only: no R/W, U/S, XD
    assert pdpte & 0xFFF == P | RW | US and pde & 0xFFF == P | RW | US
    assert pte & 0x000F_FFFF_FFFF_F000 == 0x30_0000 and pte & (P | RW | US) == P | RW | US
    assert pt.query(VA + 8) == (0x30_0008, USER_RW, PageSize.SIZE_4K)
    assert len(pt.walk()) == (2 if bulk else 1)


def test_refit_and_unmap_leave_the_root_entry_alone() -> None:
    pt, _ = _table()
    pt.map(VA, 0x30_0000, PageSize.SIZE_4K, USER_RW)
    root = _path(pt, VA)[0]
    pt.protect(VA, F.READ)                                # no user, no write: the pointers below narrow
    assert [e & (P | RW | US) for e in _path(pt, VA)] == [P, P, P, P]
    assert _path(pt, VA)[0] == root
    pt.protect_region(VA, 0x1000, USER_RW)                # and widen again
    assert [e & (P | RW | US) for e in _path(pt, VA)] == [P, P | RW | US, P | RW | US, P | RW | US]
    pt.unmap(VA)
    assert pt.entries.read(pt.root_paddr + FMT.index(VA, 0) * 8) == 0 and not len(pt.walk())


def test_a_huge_page_split_below_the_root() -> None:
    pt, _ = _table()
    pt.map(VA & ~0x1F_FFFF, 0x20_0000, PageSize.SIZE_2M, USER_RW)
    pt.unmap_region(VA & ~0x1F_FFFF, 0x1000)              # splits the 2 MiB page into 511 4 KiB ones
    m = pt.walk()
    assert len(m) == 511 and int(m.pa[0]) == 0x20_1000 and _path(pt, VA)[0] & 0xFFF == P
    assert ptdump(m)[0].startswith("0x0000400000001000-0x0000400000200000   0x0000000000201000")


def test_the_leaves_codec_judges_flags() -> None:
    with pytest.raises(InvalidFlags, match="no 1 GiB pages"):
        PDPT.new_page(0, F.READ, True)                    # the root's codec encodes no leaf at all
    pt, _ = _table()
    assert pt.check_flags(F.READ) == F.READ
