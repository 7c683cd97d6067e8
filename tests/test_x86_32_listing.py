"""Listings and explain of x86 32-bit and PAE paging, exact strings: Linux's ptdump as a 32-bit kernel prints it
(arch/x86/mm/dump_pagetables.c: 8-digit addresses, the end of the space as 0x00000000, a 2-level table's levels
pmd and pte, PAE's pud, pmd and pte), QEMU 7.2's `info tlb` and `info mem` (target/i386/monitor.c: tlb_info_32,
tlb_info_pae32, mem_info_32, mem_info_pae32, with their masks), the project's listing and `explain`."""

from __future__ import annotations

from pagetable.arch.x86_64 import (
    PAGING32_PSE36,
    PAGING_PAE,
    X86Options,
    X86Rules,
    explain_entry32,
    explain_pae,
    load_pdptes,
)
from pagetable.dump.qemu_monitor import info_mem_lines, info_tlb_lines
from pagetable.dump.walk import ptdump_lines
from pagetable.flags import MappingFlags as F
from pagetable.frames import FrameAllocator
from pagetable.listing import ptdump
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.walker import Walker

MiB = 1 << 20
RWX = F.READ | F.WRITE | F.EXECUTE


def _paging32() -> tuple[PageTable, Walker]:
    """User pages, two 4 MiB kernel pages, a UC one above 4 GiB (PSE-36: PA 0x3_4000_0000) and, in the last
    PDE, a 4 MiB page with reserved bit 21 set."""
    mem = PhysMem([(0, 16 * MiB)])
    pt = PageTable(PAGING32_PSE36, mem, FrameAllocator(mem, 8 * MiB, 8 * MiB))
    pt.map_region(0x1000, 0x10_1000, 0x2000, RWX | F.USER)
    pt.map(0x3000, 0x10_3000, 0x1000, F.READ | F.EXECUTE | F.USER)
    pt.map(0xC000_0000, 0, 4 * MiB, RWX)
    pt.map(0xC040_0000, 0x40_0000, 4 * MiB, RWX)
    pt.map(0xC080_0000, 0x3_4000_0000, 4 * MiB, RWX | F.DEVICE)
    mem.entries(4).write(pt.root_paddr + 4 * 0x3FF, 0xFFC0_0000 | 1 << 21 | 0x83)
    return pt, Walker(mem, X86Rules(pt.root_paddr, X86Options(paging="32-bit", pse=True, maxphyaddr=36)))


def _pae() -> tuple[PageTable, Walker]:
    """User pages (RW ones not executable: XD), two 2 MiB kernel pages and one above 4 GiB, XD."""
    mem = PhysMem([(0, 16 * MiB)])
    pt = PageTable(PAGING_PAE, mem, FrameAllocator(mem, 8 * MiB, 8 * MiB))
    pt.map_region(0x1000, 0x10_1000, 0x2000, F.READ | F.WRITE | F.USER)
    pt.map(0x3000, 0x10_3000, 0x1000, F.READ | F.EXECUTE | F.USER)
    pt.map(0xC000_0000, 0, 2 * MiB, RWX)
    pt.map(0xC020_0000, 0x20_0000, 2 * MiB, RWX)
    pt.map(0xC040_0000, 0xF_0000_0000, 2 * MiB, F.READ | F.WRITE)
    rules = X86Rules(pt.root_paddr, X86Options(paging="pae"), pdptes=load_pdptes(mem, pt.root_paddr))
    return pt, Walker(mem, rules)


def test_linux_ptdump_of_32_bit_paging() -> None:
    """The PDEs are Linux's pmd level (pud, p4d and pgd folded), 4 MiB pages PSE at pmd; no NX column ever."""
    _, w = _paging32()
    notes: list[str] = []
    assert list(ptdump_lines(w, note=notes.append)) == [
        "---[ User Space ]---",
        "0x00000000-0x00001000           4K                               pte",
        "0x00001000-0x00003000           8K USR RW                     x  pte",
        "0x00003000-0x00004000           4K USR ro                     x  pte",
        "0x00004000-0x00400000        4080K                               pte",
        "0x00400000-0xc0000000        3068M                               pmd",
        "0xc0000000-0xc0800000           8M     RW         PSE         x  pmd",
        "0xc0800000-0xc0c00000           4M     RW PWT PCD PSE         x  pmd  ! faults: pa-outside-memory",
        "0xc0c00000-0xffc00000        1008M                               pmd",
        "0xffc00000-0x00000000           4M     RW         PSE         x  pmd  ! faults: reserved",
    ]
    assert notes == []
    assert list(ptdump_lines(w, 0xC000_0000, 0xC080_0000)) == [
        "---[ User Space ]---", "0xc0000000-0xc0800000           8M     RW         PSE         x  pmd"]


def test_linux_ptdump_of_pae_paging() -> None:
    """The PDPTEs are Linux's pud level (p4d and pgd folded): two not present make one 2G hole; NX from XD."""
    _, w = _pae()
    assert list(ptdump_lines(w)) == [
        "---[ User Space ]---",
        "0x00000000-0x00001000           4K                               pte",
        "0x00001000-0x00003000           8K USR RW                     NX pte",
        "0x00003000-0x00004000           4K USR ro                     x  pte",
        "0x00004000-0x00200000        2032K                               pte",
        "0x00200000-0x40000000        1022M                               pmd",
        "0x40000000-0xc0000000           2G                               pud",
        "0xc0000000-0xc0400000           4M     RW         PSE         x  pmd",
        "0xc0400000-0xc0600000           2M     RW         PSE         NX pmd  ! faults: pa-outside-memory",
        "0xc0600000-0x00000000        1018M                               pmd",
    ]


def test_qemu_info_tlb_of_32_bit_paging() -> None:
    """tlb_info_32: a 4 MiB page masked with ~(2**21 - 1), so PSE-36's PA bits 39:32 vanish and reserved bit
    21 shows; never an X (no bit 63 in a 4-byte entry)."""
    _, w = _paging32()
    assert list(info_tlb_lines(w)) == [
        "0000000000001000: 0000000000101000 -------UW",
        "0000000000002000: 0000000000102000 -------UW",
        "0000000000003000: 0000000000103000 -------U-",
        "00000000c0000000: 0000000000000000 --P-----W",
        "00000000c0400000: 0000000000400000 --P-----W",
        "00000000c0800000: 0000000040000000 --P--CT-W",
        "00000000ffc00000: 00000000ffe00000 --P-----W",
    ]
    assert list(info_tlb_lines(w, 0x2000, 0x3000)) == ["0000000000002000: 0000000000102000 -------UW"]


def test_qemu_info_mem_of_32_bit_paging() -> None:
    """mem_info_32: ranges of equal U/S, R/W (a PTE's ANDed with its PDE's), the last ending at 2**32."""
    _, w = _paging32()
    assert list(info_mem_lines(w)) == [
        "0000000000001000-0000000000003000 0000000000002000 urw",
        "0000000000003000-0000000000004000 0000000000001000 ur-",
        "00000000c0000000-00000000c0c00000 0000000000c00000 -rw",
        "00000000ffc00000-0000000100000000 0000000000400000 -rw",
    ]


def test_qemu_info_tlb_and_mem_of_pae_paging() -> None:
    """tlb_info_pae32 masks in 64 bits, XD (bit 63) included; mem_info_pae32 leaves the PDPTE out of its AND."""
    _, w = _pae()
    assert list(info_tlb_lines(w)) == [
        "0000000000001000: 8000000000101000 X------UW",
        "0000000000002000: 8000000000102000 X------UW",
        "0000000000003000: 0000000000103000 -------U-",
        "00000000c0000000: 0000000000000000 --P-----W",
        "00000000c0200000: 0000000000200000 --P-----W",
        "00000000c0400000: 8000000f00000000 X-P-----W",
    ]
    assert list(info_mem_lines(w)) == [
        "0000000000001000-0000000000003000 0000000000002000 urw",
        "0000000000003000-0000000000004000 0000000000001000 ur-",
        "00000000c0000000-00000000c0600000 0000000000600000 -rw",
    ]


def test_the_listing() -> None:
    pt, _ = _paging32()
    assert ptdump(pt.walk(0, 0xFFC0_0000)) == [                   # 32-bit VAs: 8 digits; a wider PA its own
        "0x00001000-0x00003000   0x00101000         8K PTE USR RW                     x ",
        "0x00003000-0x00004000   0x00103000         4K PTE USR ro                     x ",
        "0xc0000000-0xc0800000   0x00000000         8M PGD     RW         PSE         x ",
        "0xc0800000-0xc0c00000   0x340000000         4M PGD     RW PWT PCD PSE         x ",
    ]
    pt, _ = _pae()
    assert ptdump(pt.walk())[-1] == "0xc0400000-0xc0600000   0xf00000000         2M PMD     RW         PSE         NX"


def test_explain_a_32_bit_entry() -> None:
    """A 4 MiB page at PA 0x3_4000_0000 (PSE-36) and a user PTE, field by field and level by level."""
    lines = explain_entry32(0x4000_60A3)
    assert lines[0] == ("x86 32-bit PDE (maps a 4-MByte page) 0x400060a3  (Intel SDM Vol. 3A, Table 4-4 (32-bit PDE "
                        "that maps a 4-MByte page; CR4.PSE=1))")
    assert lines[3].startswith("  [20:13] ADDR_HI  = 3 (00000011)   # physical address bits 39:32")
    assert lines[-3:] == ["  -> as a PDE: page, S:rwx U:---", "  -> as a PTE: page, S:rwx U:---",
                          "     (CR4.PSE=1, PSE-36 with MAXPHYADDR 40, CR0.WP=1, no SMEP/SMAP; the address is not "
                          "checked against memory)"]
    assert explain_entry32(0x0060_0083)[-3] == "  -> as a PDE: page fault (reserved)"     # bit 21
    user = explain_entry32(0x0012_3067)
    assert user[0].startswith("x86 32-bit PTE (maps a 4-KByte page) 0x00123067")
    assert user[-3:-1] == ["  -> as a PDE: reference to the next table", "  -> as a PTE: page, S:rwx U:rwx"]


def test_explain_a_pae_entry() -> None:
    """As a PDPTE (R/W and A are reserved there: the MOV to CR3 would #GP) and as a PTE with XD."""
    lines = explain_pae(0x8000_0000_0012_3063)
    assert lines[0].startswith("x86 PAE PDPTE (references a page directory) 0x8000000000123063")
    assert "  -> as a PDPTE: MOV to CR3 would #GP (reserved bits 0x8000000000000062 set)" in lines
    assert lines[-3:-1] == ["  -> as a PDE: reference to the next table", "  -> as a PTE: page, S:rw- U:---"]
    assert "  -> as a PDPTE: reference to the page directory" in explain_pae(0x1001)
    assert explain_pae(0x1000)[8] == ("  -> as a PDPTE: not present (P=0: the hardware reads no other bit; an access "
                                      "under it is a #PF)")
    huge = explain_pae(0x0020_2083)
    assert "  (PS=1: a 2 MiB page in a PDE; in a PTE bit 7 is PAT; x86 PAE PDE (references a table) has PS=0)" in huge
    assert "  -> as a PDE: page fault (reserved)" in huge                                   # bit 13
