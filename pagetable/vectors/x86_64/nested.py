"""The nested stage of the x86-64 vector modes: EPT's own targets when it walks alone, the targets where
the nested walk decides a two-stage translation, and the nested registers.

EPT alone (Intel SDM Vol. 3C 29.3.3, rule by rule; case VAs are guest-physical addresses): 4 KiB pages of
every R/W/X combination EPT allows (execute-only included: the CPU the sets assume has execute-only pages),
each EPT memory type and ignore-PAT, 2 MiB and 1 GiB pages; every misconfiguration (W without R, W+X
without R, memory types 2, 3 and 7, an address bit at or above MAXPHYADDR at each level, bits 7:3 of a
PML4E, bits 6:3 of a PDE that references a table, PS in a PML4E, the reserved bits of 2 MiB and 1 GiB
pages); violations (not present at each level; R/W/X taken away by an upper level; a GPA beyond the
tables); a table and a page outside RAM. The seed draws the order and sizes of the 4 KiB groups and the
memory type of each page whose label names no type, the rights and memory types of the 2 MiB and 1 GiB
pages, and the levels of the table outside RAM (PML4E, PDPTE or PDE) and of the page outside RAM (4 KiB,
2 MiB or 1 GiB). Nested paging alone uses the linear-address targets over `NPT4`
(`gen._build`): every nested access is a user access, so the supervisor ones fault.

Two stages: guest pages whose guest-physical address the nested tables map read-only, read/execute,
read/write without execute, execute-only (EPT), not at all (a hole at the nested PTE, PDE and PDPTE
levels, and at the PML4E for the guest's addresses outside RAM), or with U/S=0 (nested paging); guest page
tables in nested pages that are not mapped or read-only — reads of a table are fine for EPT without A/D,
but the guest's A/D update of an entry with A=0 is a write, and nested paging (and EPT with EPTP's A/D
enable, which the seed chooses) makes every guest table access a write.
"""

from __future__ import annotations

import random

from ...arch.x86_64 import CR3, EPT4, EPTP, EptCodec
from ...arch.x86_64.entry import RW, US, A, D, P, page_address
from ...arch.x86_64.ept import EPT_MEMORY_TYPES, IPAT, MT_SHIFT, PS, R, W, X
from ...flags import MappingFlags as F
from ...frames import FrameAllocator
from ...physmem import PhysMem
from ..generation import TableBuilder
from .layout import RAM_BASE, RAM_SIZE
from .modes import PAT_VALUE, CpuOptions, X86VectorMode

MiB, GiB = 1 << 20, 1 << 30
OUTSIDE_RAM = 0x80_0000_0000           # no RAM in the image (below a 40-bit MAXPHYADDR)
SPECIAL_GPA = 0x4000_0000              # guest pages the nested tables map one by one
RWX = R | W | X
WB = 6 << MT_SHIFT

__all__ = ["EptBuilder", "build_alone", "registers", "targets"]


class EptBuilder(TableBuilder):
    """A 4-level EPT in `mem` (frames from `frames`, default all of it); table entries R|W|X."""

    def __init__(self, rng: random.Random, cpu: CpuOptions, mem: PhysMem, frames: FrameAllocator | None = None) -> None:
        super().__init__(EPT4.with_codec(EptCodec()), rng, mem, frames or FrameAllocator(mem), RWX,
                         lambda pa: page_address(pa, False))
        self.cpu = cpu


_RIGHTS = (("r", F.READ), ("rw", F.READ | F.WRITE), ("rx", F.READ | F.EXECUTE), ("rwx", F.READ | F.WRITE | F.EXECUTE),
           ("x", F.EXECUTE))
"""The R/W/X combinations of an EPT page (execute-only included; W without R is a misconfiguration)."""
_MT_MASK = 7 << MT_SHIFT


def _draw_memtype(b: EptBuilder, gpa: int) -> None:
    """Give the EPT leaf that maps `gpa` a memory type the seed draws (UC, WC, WT, WP or WB; SDM Vol. 3C
    29.3.7.1)."""
    slot = b.pt.lookup(gpa)
    b.mem.write_u64(slot.pa, (slot.raw & ~_MT_MASK) | b.rng.choice(sorted(EPT_MEMORY_TYPES)) << MT_SHIFT)


def build_alone(b: EptBuilder) -> None:
    """EPT's own targets (module docstring), at a random 1 GiB slot of guest-physical space; the seed draws
    the order and sizes of the 4 KiB groups and each page's memory type, the rights and memory types of the
    2 MiB and 1 GiB pages, and the level of the table and of the page outside RAM."""
    rng = b.rng
    base = rng.randrange(1, 64) << 30
    va = base
    groups = [(f"ept-{name}", flags, True) for name, flags in _RIGHTS]
    groups += [("ept-device-uc", F.READ | F.WRITE | F.DEVICE, False), ("ept-uncached-wc", F.READ | F.UNCACHED, False)]
    rng.shuffle(groups)
    for label, flags, drawn in groups:
        n = rng.randint(1, 3)
        b.map4k(label, va, flags, n)
        for k in range(n if drawn else 0):
            _draw_memtype(b, va + 4096 * k)
        va += (n + 1) * 4096
    b.target("ept-unmapped-L1", va - 4096)
    b.cursor = va
    for label, bits in (("ept-w-only", W), ("ept-wx-no-r", W | X), ("ept-mt2", R | W | 2 << MT_SHIFT),
                        ("ept-mt3", R | W | 3 << MT_SHIFT), ("ept-mt7", R | W | 7 << MT_SHIFT),
                        ("ept-wt", R | W | 4 << MT_SHIFT), ("ept-wp", R | 5 << MT_SHIFT),
                        ("ept-ipat-uc", R | W | IPAT), ("ept-rsvd-maxphyaddr-L1",
                                                        RWX | WB | 1 << rng.randrange(b.cpu.maxphyaddr, 52))):
        b.raw_leaf(label, bits)
    pd, pdpt, pml4 = 2, 1, 0
    name, flags = rng.choice(_RIGHTS)
    b.pt.map(base + 64 * MiB, b.frames.alloc(512, align=2 * MiB, zero=False), 2 * MiB, flags)
    _draw_memtype(b, base + 64 * MiB)
    b.target(f"ept-2M-{name}", base + 64 * MiB, 2 * MiB)
    name, flags = rng.choice(_RIGHTS)
    b.pt.map(base + GiB, 0, GiB, flags)                                 # a 1 GiB page: guest RAM at its place
    _draw_memtype(b, base + GiB)
    b.target(f"ept-1G-{name}", base + GiB + RAM_BASE, RAM_SIZE)
    block = b.pt.lookup(base + 64 * MiB).raw & ~((1 << 21) - 1) & ((1 << 52) - 1)
    free = {depth: b.free_slots(base + 64 * MiB, depth) for depth in (pml4, pdpt, pd)}
    b.poke("ept-rsvd-2M-bits", free[pd].pop(), pd, RWX | WB | PS | 1 << rng.randrange(12, 21) | block)
    b.poke("ept-rsvd-pde-table-bits", free[pd].pop(), pd, RWX | 1 << rng.randrange(3, 7) | b.frame())
    level = rng.randint(2, 4)
    b.poke(f"ept-table-outside-ram-L{level}", free[4 - level].pop(), 4 - level, RWX | OUTSIDE_RAM)
    level = rng.randint(1, 3)
    if level == 1:
        b.raw_leaf("ept-page-outside-ram-L1", RWX | WB, OUTSIDE_RAM)
    else:                                # a 2 MiB or 1 GiB page there: its cases in the first 2 MiB
        gpa = free[4 - level].pop()
        b.poke(None, gpa, 4 - level, RWX | WB | PS | OUTSIDE_RAM)
        b.target(f"ept-page-outside-ram-L{level}", gpa, 2 * MiB)
    b.poke("ept-rsvd-1G-bits", free[pdpt].pop(), pdpt, RWX | WB | PS | 1 << rng.randrange(12, 30))
    b.poke("ept-rsvd-pml4e-bits", free[pml4].pop(), pml4, RWX | 1 << rng.randrange(3, 7) | b.frame())
    b.poke("ept-ps-in-pml4e", free[pml4].pop(), pml4, RWX | PS | b.frame())
    for depth in (pml4, pdpt, pd):
        level = 4 - depth
        b.target(f"ept-unmapped-L{level}", free[depth].pop(), 4096)
        b.poke(f"ept-rsvd-maxphyaddr-L{level}", free[depth].pop(), depth, RWX | 1 << rng.randrange(b.cpu.maxphyaddr, 52)
               | b.frame())
    _upper_rights(b, free[pd])
    b.target("ept-gpa-too-wide", (1 << 48) + (rng.randrange(1, 512) << 12), 1 << 20)


def _upper_rights(b: EptBuilder, free_pd: list[int]) -> None:
    """PDEs over a fresh page table holding one read/write/execute page, each taking rights away: W=0, X=0,
    R=0 with X=1 (execute-only above), and W without R (a misconfiguration in the PDE)."""
    for label, pointer in (("ept-upper-no-w", R | X), ("ept-upper-no-x", R | W), ("ept-upper-x-only", X),
                           ("ept-upper-w-only", W)):
        va, table = free_pd.pop(), b.frames.alloc()
        b.poke(None, va, 2, pointer | b.address(table))
        b.mem.write_u64(table, RWX | WB | b.address(b.frame()))
        b.target(label, va)


def targets(g: TableBuilder, n: TableBuilder, ept: bool) -> None:
    """The targets where the nested walk decides a two-stage translation (module docstring): guest leaves
    (in the guest builder `g`'s free last-level slots) pointing at guest-physical pages the nested builder
    `n` maps specially, and guest page tables in such pages."""
    rng = g.rng
    pages = iter(range(SPECIAL_GPA + (rng.randrange(0, 256) << 21), 1 << 40, 2 * 4096))

    def nested_page(flags: F, set_bits: int = 0, clear: int = 0) -> tuple[int, int]:
        """A guest page the nested tables map to a fresh host frame with `flags` (bits changed after)."""
        gpa, hpa = next(pages), n.frame()
        n.pt.map(gpa, hpa, 4096, flags)
        slot = n.pt.lookup(gpa)
        n.mem.write_u64(slot.pa, (slot.raw & ~clear) | set_bits)
        return gpa, hpa

    leaf = P | RW | A | D                               # a guest supervisor page, read/write/execute, A/D set
    kinds: list[tuple[str, F, int, int]] = [("nested-ro", F.READ, 0, 0), ("nested-rx", F.READ | F.EXECUTE, 0, 0),
                                            ("nested-rw", F.READ | F.WRITE, 0, 0)]
    kinds += [("nested-x-only", F.EXECUTE, 0, 0)] if ept else [("nested-supervisor", F.READ | F.WRITE, 0, US)]
    for label, flags, set_bits, clear in kinds:
        g.raw_leaf(label, leaf, nested_page(flags, set_bits, clear)[0])
    g.raw_leaf("nested-hole-L1", leaf, next(pages))
    pd = g.fmt.depth_count - 2
    free = g.free_slots(g.cursor, pd)
    g.poke("guest-table-nested-hole", free.pop(), pd, P | RW | next(pages))
    gpa, hpa = nested_page(F.READ | F.EXECUTE)          # a guest page table the nested tables map read-only
    g.pointer_to_table(free.pop(), pd, gpa, {0: ("guest-table-nested-ro", leaf | g.frame()),
                                             2: ("guest-table-nested-ro-a-clear", (leaf & ~A & ~D) | g.frame())},
                       seen_at=(n.mem, hpa))
    gpa, hpa = nested_page(F.READ | F.WRITE)            # ... and read/write: the guest walk may update it
    g.pointer_to_table(free.pop(), pd, gpa, {0: ("guest-table-nested-rw-a-clear", (leaf & ~A & ~D) | g.frame())},
                       seen_at=(n.mem, hpa))
    for depth in (2, 1):                     # a guest page whose nested PDE (PDPTE) is not present
        g.raw_leaf(f"nested-hole-L{4 - depth}", leaf, n.free(SPECIAL_GPA, depth))


def registers(vm: X86VectorMode, root: int, rng: random.Random) -> dict[str, int]:
    """The nested registers: EPTP (memory type WB, 4-level walk, A/D enabled as the seed chooses; SDM Vol.
    3C Table 25-9), or nCR3 and the host's IA32_PAT (nested paging: the guest's value)."""
    if vm.ept:
        return {"eptp": EPTP.build(MT=6, WALK=3, AD=rng.randrange(2)) | root}
    return {"ncr3": CR3.build(ADDR=root >> 12), "host_pat": PAT_VALUE}
