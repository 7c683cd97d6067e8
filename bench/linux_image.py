"""Issue 14's speed workload: a 4 GiB x86-64 memory image whose 4-level page tables are laid out as Linux's
are (Documentation/arch/x86/x86_64/mm.rst; arch/x86/include/asm/pgtable_types.h for the entry bits), built
once with the library and cached as a sparse raw file (`image`).

Physical memory: 4 GiB of RAM at PA 0 (`RAM`), zeros but for the page tables, which take the 16 MiB at
`TABLES` (PML4 first: CR3 = `TABLES`). The kernel half, global (G) everywhere:
- the direct map at page_offset_base 0xffff888000000000 of ALL of RAM as 4 KiB pages: 1,048,576 PTEs,
  PAGE_KERNEL (P|RW|A|D|G|NX) — Linux maps it with 2M/1G pages where it can; this image has the 4 KiB
  pages a `rodata=full`/`debug_pagealloc` kernel (or one whose direct map was split) has, which are what
  make a walk slow;
- the kernel image at __START_KERNEL_map + 16 MiB (0xffffffff81000000, CONFIG_PHYSICAL_START 16 MiB):
  12 MiB of text as six 2 MiB pages (PAGE_KERNEL_LARGE_EXEC: P|A|D|G|PS, read-only, executable), 4 MiB of
  rodata as 4 KiB pages (P|A|D|G|NX) and 8 MiB of data and bss (P|RW|A|D|G|NX);
- 4,096 scattered 4 KiB vmalloc pages in the first GiB of VMALLOC_START (0xffffc90000000000), on random
  frames (PAGE_KERNEL);
and a small user half: an ELF's text at 0x400000 (16 pages, P|US|A), data at 0x600000 (16 pages,
P|RW|US|A|D|NX) and a 132 KiB stack below 0x7ffffffff000 (P|RW|US|A|D|NX).
Table entries are Linux's _KERNPG_TABLE (P|RW|A|D) and, above user pages, _PAGE_TABLE (P|RW|US|A|D): the
library writes the rights its entries need (`X86Codec.fit_pointer`); A and D are then set in every present
entry, as a running kernel's CPU has set them.

The registers are a Linux x86-64 CPU's (`REGISTERS`): CR0 PE|MP|ET|NE|WP|AM|PG, CR4 PAE|PGE|PSE|OSFXSR|
OSXMMEXCPT|FSGSBASE|OSXSAVE|SMEP|SMAP, IA32_EFER SCE|LME|LMA|NXE. `expected` gives the leaves the layout
defines (computed from it, not read back), and `raw_leaves` the raw numpy work of listing them: every table
page read and its present entries gathered, with no library code.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from pagetable.arch.x86_64 import CR0, CR3, CR4, EFER, PAGING4, X86Codec
from pagetable.flags import MappingFlags
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable

U64 = npt.NDArray[np.uint64]
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
RAM = 4 * GiB
TABLES, TABLES_SIZE = 0x400_0000, 16 * MiB          # at 64 MiB, after the kernel image
PAGE_OFFSET = 0xFFFF_8880_0000_0000                # page_offset_base (no KASLR)
VMALLOC_START = 0xFFFF_C900_0000_0000
KERNEL_VA, KERNEL_PA = 0xFFFF_FFFF_8100_0000, 0x100_0000
TEXT, RODATA, DATA = 12 * MiB, 4 * MiB, 8 * MiB
VMALLOC_PAGES = 4096
USER = ((0x40_0000, 16, "text"), (0x60_0000, 16, "data"), (0x7FFF_FFFF_F000 - 132 * KiB, 33, "stack"))
A_D = np.uint64(0x60)                               # accessed (bit 5) and dirty (bit 6)
VERSION = 1                                         # of the layout: a cached image of another is rebuilt

R, W, X, U = MappingFlags.READ, MappingFlags.WRITE, MappingFlags.EXECUTE, MappingFlags.USER
USER_FLAGS = {"text": R | X | U, "data": R | W | U, "stack": R | W | U}
REGISTERS = {
    "cr0": CR0.build(PE=1, MP=1, ET=1, NE=1, WP=1, AM=1, PG=1),
    "cr3": CR3.build(ADDR=TABLES >> 12),
    "cr4": CR4.build(PAE=1, PGE=1, PSE=1, OSFXSR=1, OSXMMEXCPT=1, FSGSBASE=1, OSXSAVE=1, SMEP=1, SMAP=1),
    "efer": EFER.build(SCE=1, LME=1, LMA=1, NXE=1),
}


@dataclass(frozen=True)
class Leaves:
    """Leaf columns, sorted by VA: VA, PA and size of each."""

    va: U64
    pa: U64
    size: U64


def _pages(va: int, pa: int | U64, count: int, size: int = 4096) -> Leaves:
    step = np.arange(count, dtype=np.uint64) * np.uint64(size)
    pas = np.uint64(pa) + step if isinstance(pa, int) else np.asarray(pa, dtype=np.uint64)
    return Leaves(np.uint64(va) + step, pas, np.full(count, size, dtype=np.uint64))


def _scattered() -> tuple[Leaves, list[Leaves]]:
    """The vmalloc pages and the user pages: distinct random VA pages (vmalloc) and random frames above the
    tables, numpy seed 14."""
    rng = np.random.default_rng(14)
    frames = rng.choice(np.arange((TABLES + TABLES_SIZE) >> 12, RAM >> 12, dtype=np.uint64),
                        VMALLOC_PAGES + sum(n for _, n, _ in USER), replace=False) << np.uint64(12)
    slots = np.sort(rng.choice(GiB >> 12, VMALLOC_PAGES, replace=False).astype(np.uint64))
    vmalloc = Leaves(np.uint64(VMALLOC_START) + slots * np.uint64(4096), frames[:VMALLOC_PAGES],
                     np.full(VMALLOC_PAGES, 4096, dtype=np.uint64))
    user, k = [], VMALLOC_PAGES
    for va, n, _ in USER:
        user.append(_pages(va, frames[k:k + n], n))
        k += n
    return vmalloc, user


def expected() -> Leaves:
    """Every leaf of the image's tables, from the layout alone, sorted by VA."""
    vmalloc, user = _scattered()
    kernel = [_pages(KERNEL_VA, KERNEL_PA, TEXT // (2 * MiB), 2 * MiB),
              _pages(KERNEL_VA + TEXT, KERNEL_PA + TEXT, (RODATA + DATA) // 4096)]
    parts = [*user, _pages(PAGE_OFFSET, 0, RAM // 4096), vmalloc, *kernel]
    return Leaves(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("va", "pa", "size")))


def build(path: Path) -> None:
    """Write the image to `path` (a sparse file: only the tables' 16 MiB are written)."""
    mem = PhysMem([(0, RAM)])
    pt = PageTable(PAGING4.with_codec(X86Codec(global_kernel=True)), mem, FrameAllocator(mem, TABLES, TABLES_SIZE))
    assert pt.root_paddr == TABLES
    pt.map_region(PAGE_OFFSET, 0, RAM, R | W)
    pt.map_region(KERNEL_VA, KERNEL_PA, TEXT, R | X, allow_huge=True)
    pt.map_region(KERNEL_VA + TEXT, KERNEL_PA + TEXT, RODATA, R)
    pt.map_region(KERNEL_VA + TEXT + RODATA, KERNEL_PA + TEXT + RODATA, DATA, R | W)
    vmalloc, user = _scattered()
    pt.map_pages(vmalloc.va, vmalloc.pa, R | W)
    for leaves, (_, _, name) in zip(user, USER, strict=True):
        pt.map_pages(leaves.va, leaves.pa, USER_FLAGS[name])
    words = mem.words(TABLES, TABLES_SIZE // 8)
    words[(words & np.uint64(1)) != 0] |= A_D
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.truncate(RAM)
        fh.seek(TABLES)
        words.tofile(fh)
    tmp.replace(path)


def cache_dir() -> Path:
    """$PAGETABLE_CACHE, else the repository's build/ directory."""
    return Path(os.environ.get("PAGETABLE_CACHE") or Path(__file__).resolve().parent.parent / "build")


def image() -> str:
    """The image's path (built on first use, and again when the layout's `VERSION` changed)."""
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path, stamp = directory / "linux-4g.raw", directory / "linux-4g.json"
    want = {"version": VERSION, "size": RAM, "registers": REGISTERS}
    try:
        have = json.loads(stamp.read_text())
    except (OSError, ValueError):
        have = None
    if have != want or not path.exists() or path.stat().st_size != RAM:
        build(path)
        stamp.write_text(json.dumps(want))
    return str(path)


def cli_arguments(path: str) -> list[str]:
    """The image and its registers as `pagetable translate` (and every dump command) takes them."""
    return [f"{path}@0", "--arch", "x86_64", *(f"--reg={k}={v:#x}" for k, v in REGISTERS.items())]


LEVELS = (39, 30, 21, 12)                           # PML4, PDPT, PD, PT: the index shifts
ADDR = np.uint64(((1 << 52) - 1) & ~0xFFF)
PS = np.uint64(0x80)


def raw_leaves(words: U64, root: int) -> Leaves:
    """The raw work of a walk: from the PML4 at `root`, read every table page and gather its present
    entries; an entry with PS=1 (PDPTE, PDE) or any present PTE is a leaf, another present entry points to
    the next table. Plain numpy (one region of RAM at PA 0): VA (canonical), PA, size, sorted by VA."""
    index = np.arange(512, dtype=np.uint64)
    tables, table_va = np.array([root], dtype=np.uint64), np.zeros(1, dtype=np.uint64)
    out: list[Leaves] = []
    for depth, shift in enumerate(LEVELS):
        slots = ((tables >> np.uint64(3))[:, None] + index).reshape(-1)
        entries = words[slots.astype(np.intp)]
        va = (table_va[:, None] + (index << np.uint64(shift))).reshape(-1)
        present = np.flatnonzero(entries & np.uint64(1))
        entries, va = entries[present], va[present]
        leaf = (entries & PS) != 0 if depth in (1, 2) else np.full(entries.shape, depth == 3)
        size = np.uint64(1 << shift)
        out.append(Leaves(va[leaf], entries[leaf] & ADDR & ~(size - np.uint64(1)),
                          np.full(int(leaf.sum()), size, dtype=np.uint64)))
        tables, table_va = entries[~leaf] & ADDR, va[~leaf]
    va = np.concatenate([o.va for o in out])
    order = np.argsort(va, kind="stable")
    canonical: U64 = va | (va >> np.uint64(47) & np.uint64(1)) * np.uint64(0xFFFF_0000_0000_0000)   # bit 47 up
    return Leaves(canonical[order], np.concatenate([o.pa for o in out])[order],
                  np.concatenate([o.size for o in out])[order])
