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
and a small user half: an ELF's text at 0x400000 (16 pages, P|US), data at 0x600000 (16 pages, P|RW|US|NX)
and a 132 KiB stack below 0x7ffffffff000 (P|RW|US|NX).
Table entries are Linux's _KERNPG_TABLE (P|RW|A|D) and, above user pages, _PAGE_TABLE (P|RW|US|A|D): the
library writes the rights its entries need (`X86Codec.fit_pointer`: R/W only above a writable page, XD
above no executable one), so R/W is set and XD cleared in every table entry to give Linux's; A and D are
set in every present entry, leaves too, as a running kernel's CPU has set them.

The registers are a Linux x86-64 CPU's (`REGISTERS`): CR0 PE|MP|ET|NE|WP|AM|PG, CR4 PAE|PGE|PSE|OSFXSR|
OSXMMEXCPT|FSGSBASE|OSXSAVE|SMEP|SMAP, IA32_EFER SCE|LME|LMA|NXE. `expected` gives the leaves the layout
defines (computed from it, not read back), and `raw_leaves` the raw numpy work of listing them: every table
page read and its present entries gathered, with no library code.

The rows (`report`, run by bench/run.py, issue 14's Speed): `Walker.mappings` of the whole image beside
`raw_leaves`; each command of `COMMANDS` run end to end through `pagetable.cli.main` in this process (argument
parsing, opening the image, the walk, every output line written to /dev/null), beside the raw numpy work of
its answer; and volatility3's `mapping()` of the same image (bench/volatility.py: its own venv,
`VOL3_PYTHON`). Every figure is checked first: the library's leaves against the layout and the raw gather,
each command's output against the layout, volatility3's runs against the library's.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import raw
import volatility
from workload import best

from pagetable.arch.x86_64 import CR0, CR3, CR4, EFER, PAGING4, X86Codec, rules_from_registers
from pagetable.cli import main
from pagetable.flags import MappingFlags
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.walker import Walker

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
RW, XD = np.uint64(0x2), np.uint64(1 << 63)
VERSION = 3                                         # of the layout: a cached image of another is rebuilt

LEAVES = RAM // 4096 + TEXT // (2 * MiB) + (RODATA + DATA) // 4096 + VMALLOC_PAGES + sum(n for _, n, _ in USER)
"""The image's leaves: 1,055,815."""

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
    pointer = (words & np.uint64(1)) != 0
    pointer[((pt.walk().slot - np.uint64(TABLES)) >> np.uint64(3)).astype(np.intp)] = False
    words[pointer] = (words[pointer] | RW) & ~XD
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


N_VAS = 100_000
IMAGE, VA_FILE = "{image}", "{va-file}"
"""In a command's arguments: the image with its --arch and --reg arguments (`cli_arguments`); the file of
`N_VAS` random direct-map VAs."""


@dataclass(frozen=True)
class Workload:
    """What the rows run on: the image (memory-mapped), its walker, the VAs of the VA file and the leaves
    the layout defines."""

    path: str
    mem: PhysMem
    walker: Walker
    vas: U64
    va_file: str
    leaves: Leaves

    @property
    def words(self) -> U64:
        out: U64 = self.mem.regions[0].words
        return out


def raw_translate(w: Workload) -> object:
    """The raw work of translating the VAs: four dependent loads per VA (bench/raw.py)."""
    return raw.translate(w.words, 0, TABLES, w.vas, raw.X86)


def raw_walk(w: Workload) -> object:
    return raw_leaves(w.words, TABLES)


def translated(w: Workload, out: list[str]) -> None:
    """`translate`'s lines give each VA its direct-map PA, supervisor read-write, write-back, at level 1."""
    assert len(out) == N_VAS
    words = [line.split() for line in out]
    assert [int(x[0], 16) for x in words] == w.vas.tolist()
    assert [int(x[2], 16) for x in words] == (w.vas - np.uint64(PAGE_OFFSET)).tolist()
    assert {" ".join(x[3:]) for x in words} == {"S:rw- U:--- wb (level 1)"}


@dataclass(frozen=True)
class Command:
    """A `pagetable` command line run end to end (`IMAGE` and `VA_FILE` stand for the image's arguments and
    the VA file), the raw work beside it, its items (the count the row shows), issue 14's target in seconds,
    and the check of its output lines."""

    name: str
    argv: tuple[str, ...]
    items: int
    raw: Callable[[Workload], object]
    target: float
    check: Callable[[Workload, list[str]], None] | None = None


def clean(w: Workload, out: list[str]) -> None:
    """`check` finds nothing wrong in Linux's layout."""
    assert out == ["check: 0 findings: 0 errors, 0 warnings, 0 infos"], out[:5]


def direct_map_listed(w: Workload, out: list[str]) -> None:
    """`walk`'s ptdump merges the direct map's million PTEs into one line of 4 GiB (Linux's x86 format)."""
    assert f"0x{PAGE_OFFSET:016x}-0x{PAGE_OFFSET + (4 << 30):016x}           4G     RW                 GLB NX pte" \
        in out, out[:20]


COMMANDS = (
    Command(f"pagetable translate {N_VAS:,} VAs", ("translate", IMAGE, "--va-file", VA_FILE), N_VAS,
            raw_translate, 0.2, translated),
    Command("pagetable walk --format ptdump", ("walk", IMAGE, "--format", "ptdump"), LEAVES, raw_walk, 1.0,
            direct_map_listed),
    Command("pagetable check", ("check", IMAGE), LEAVES, raw_walk, 2.0, clean),
)
"""The command rows, one line each (issue 14's targets: translate 0.2 s, walk 1 s, check within 2x of walk)."""


def arguments(c: Command, w: Workload) -> list[str]:
    out: list[str] = []
    for a in c.argv:
        out += cli_arguments(w.path) if a == IMAGE else [w.va_file] if a == VA_FILE else [a]
    return out


def run_command(argv: list[str], out: io.TextIOBase) -> None:
    """`pagetable ARGV` in this process, its output to `out`; exit status 0 expected."""
    with contextlib.redirect_stdout(out):
        rc = main(argv)
    assert rc == 0, f"pagetable {' '.join(argv)}: exit status {rc}"


def merged(va: U64, pa: U64, size: U64) -> tuple[U64, U64, U64]:
    """Leaves merged where both VA and PA continue (volatility3's `mapping` merges so): VA, PA, length."""
    cut = np.flatnonzero((va[1:] != va[:-1] + size[:-1]) | (pa[1:] != pa[:-1] + size[:-1])) + 1
    starts = np.concatenate(([0], cut))
    ends = np.concatenate((cut, [va.shape[0]]))
    length: U64 = (va[ends - 1] + size[ends - 1]) - va[starts]
    return va[starts], pa[starts], length


def print_row(name: str, items: int, fn: Callable[[], object] | float, raw_fn: Callable[[], object] | None,
              target: float | None, repeat: int) -> float:
    """A row: best wall and CPU time of `fn` (or a time measured elsewhere), of the raw work `raw_fn` beside
    it, and the target (met by the wall time); returns the wall time."""
    t = fn if isinstance(fn, float) else best(fn, repeat)
    cpu = "" if isinstance(fn, float) else f"{best(fn, repeat, time.process_time):.3f}s"
    t_raw = None if raw_fn is None else best(raw_fn, repeat)
    ratio = "" if t_raw is None else f"{t_raw:>9.4f}s {t / t_raw:>5.1f}x"
    goal = "" if target is None else f"<{target:g}s {'ok' if t < target else 'SLOW'}"
    print(f"{name:<52} {items:>10,} {t:>8.3f}s {cpu:>8} {ratio:>17} {goal:>10}")
    return t


def report(repeat: int) -> None:
    print(f"issue 14: a 4 GiB Linux-like x86-64 image (direct map of all RAM as 4 KiB pages, kernel text, vmalloc, "
          f"user; {cache_dir()}), load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    path = image()
    mem = PhysMem.load([(path, 0)])
    regs = REGISTERS
    walker = Walker(mem, rules_from_registers(regs["cr0"], regs["cr3"], regs["cr4"], regs["efer"]))
    vas = np.uint64(PAGE_OFFSET) + np.random.default_rng(1).integers(0, RAM, N_VAS, dtype=np.uint64)
    with tempfile.TemporaryDirectory(prefix="pagetable-linux-") as tmp:
        va_file = os.path.join(tmp, "vas.txt")
        Path(va_file).write_text("".join(f"{v:#x}\n" for v in vas.tolist()))
        w = Workload(path, mem, walker, vas, va_file, expected())
        assert len(w.leaves.va) == LEAVES
        m, r = walker.mappings(), raw_leaves(w.words, TABLES)
        for k in ("va", "pa", "size"):
            assert np.array_equal(getattr(m, k), getattr(w.leaves, k)) and np.array_equal(getattr(r, k),
                                                                                          getattr(w.leaves, k))
        assert not m.verdict.any() and not m.problems                           # type: ignore[union-attr]
        print(f"{'':<52} {'items':>10} {'time':>9} {'cpu':>8} {'raw numpy':>10} {'x raw':>6} {'target':>10}")
        t_lib = print_row("Walker.mappings() of the whole image", len(m), walker.mappings, lambda: raw_walk(w), 1.0,
                          repeat)
        del m
        for c in COMMANDS:
            argv = arguments(c, w)
            if c.check is not None:
                text = io.StringIO()
                run_command(argv, text)
                c.check(w, text.getvalue().splitlines())
            with open(os.devnull, "w") as null:
                print_row(c.name, c.items, lambda: run_command(argv, null), lambda: c.raw(w), c.target,  # noqa: B023
                          repeat)
    python = volatility.vol3_python()
    if python is None:
        print(f"volatility3 is not installed, so there is no side-by-side figure: {volatility.INSTALL}")
        return
    v = volatility.run_vol3(python, path, 1, TABLES, 0, 1 << 48)
    high = (v.va >> np.uint64(47)) * np.uint64(0xFFFF_0000_0000_0000)             # volatility3's VAs: 48 bits
    lib = merged(w.leaves.va, w.leaves.pa, w.leaves.size)
    assert all(np.array_equal(a, b) for a, b in zip(lib, (v.va | high, v.pa, v.length), strict=True)), \
        "volatility3 and pagetable map VAs differently"
    print_row(f"volatility3 {v.version} Intel32e.mapping(0, 2**48), 1 run", v.va.shape[0], v.best, None, None,
              1)
    print(f"pagetable's Walker.mappings is {v.best / t_lib:,.0f}x faster than volatility3 on the same image "
          f"({v.va.shape[0]:,} runs of VA and PA alike, the same as pagetable's)")


if __name__ == "__main__":
    report(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
