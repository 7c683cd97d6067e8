"""Every mapping of a walker's regime, as `pagetable walk` prints it (`FORMATS`: name -> `WalkFormat`).

All formats list each region of the regime (AArch64 TTBR0 and TTBR1, RISC-V satp, x86 CR3) as the hardware
reads it (`Walker.mappings`: effective permissions of the whole walk, both stages of a two-stage walker, and
the entries every access faults on); what the walk could not follow (`Mappings.problems`) goes to `note`
(default: `pagetable: note: ...` on stderr), or in-band as `{"note": ...}` lines for `json`.

- `ptdump`: Linux's per-architecture debugfs page-table dump, line for line: x86
  arch/x86/mm/dump_pagetables.c (`/sys/kernel/debug/page_tables/*`), arm64 arch/arm64/mm/ptdump.c and riscv
  arch/riscv/mm/ptdump.c (`/sys/kernel/debug/kernel_page_tables`), with the generic walk of mm/ptdump.c. A
  run continues while the entries are contiguous in VA, at one level, with equal protection bits (the bits
  each note_page() compares) and equal effective permissions, and no address marker is crossed; x86 and
  arm64 print the unmapped runs too, riscv only the mapped ones (with the start PA). The permission columns
  (x86 USR/RW/NX, arm64 USR/ro/NX/UXN, riscv U/X/W/R) show the *effective* permissions of the walk, where
  Linux prints the leaf's bits (the same on tables whose upper levels restrict nothing); an entry every
  access faults on shows its own bits and ends with `  ! faults: <reason>` (`listing.fault_note`).
- `json`: one object a line per row of `Walker.mappings` (leaf, or rejected entry).
- `csv`: a header line, then the same fields, one row a line.
- `qemu-info-mem`, `qemu-info-tlb`: QEMU 7.2's monitor commands, byte for byte (`qemu_monitor`: x86 and
  RISC-V `info mem`, x86 `info tlb`), which walk the tables as the monitor does, not as the hardware does.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .. import progress
from ..arch.aarch64.codec import A64Codec
from ..arch.riscv_sv39.entry import RiscvCodec
from ..arch.x86_64.entry import X86Codec
from ..arch.x86_64.paging32 import X86Codec32
from ..errors import PagetableError
from ..format import Extension, PagingFormat
from ..listing import address_digits, fault_note, linux_size, permissions
from ..mappings import Mappings
from ..translation import Access, MemoryType, Privilege, Reason, Region, perm_bit
from ..walker import Walker
from .output import Column, chunked_lines, hexadecimal, named, text
from .qemu_monitor import info_mem_lines, info_tlb_lines

__all__ = ["FORMATS", "WalkFormat", "csv_lines", "json_lines", "note_stderr", "ptdump_lines", "walk_regions"]

U64 = npt.NDArray[np.uint64]
Note = Callable[[str], None]
WalkFormat = Callable[[Walker, int | None, int | None], Iterator[str]]
"""A walk format: (walker, start VA or None, end VA (exclusive) or None) -> the output lines."""
_ALL = (1 << 64) - 1


def note_stderr(message: str) -> None:
    """Say what a walk could not follow, on stderr."""
    print(f"pagetable: note: {message}", file=sys.stderr)


def walk_regions(walker: Walker, start: int | None = None, end: int | None = None) -> Iterator[tuple[Region,
                                                                                                    Mappings]]:
    """Each region of the walker's regime with its rows (`Walker.mappings` limited to [start, end)), with
    a progress bar per region on a terminal (`progress.bar`: nothing when stderr is not a terminal)."""
    regions = walker.rules.regime.regions
    if not regions:
        raise PagetableError("translation is off (Bare): there is no table to walk")
    with progress.bar(len(regions), "walk", unit="region") as bar:
        for k, region in enumerate(regions):
            bar.set_postfix_str(region.name)
            rows = walker.mappings(start, end, region=k)
            bar.update(1)
            yield region, rows


# --- addresses as indexes of a region's VA space ----------------------------------------------------------

def _index(fmt: PagingFormat, va: U64) -> U64:
    """Each VA's offset in the region's space of 2**va_bits bytes (a sign-extended upper half follows the
    lower half, as Linux's x86 walk numbers the PGD entries)."""
    return va & np.uint64((1 << fmt.va_bits) - 1)


def _va(fmt: PagingFormat, index: int) -> int:
    """The VA at `index` of the region's space, as Linux prints it: sign- or one-extended, so that the end of
    the space reads 0 (the flush at address 0 of mm/ptdump.c's walk, x86's normalize_addr)."""
    top = 1 << fmt.va_bits
    if fmt.extension is Extension.ZERO:
        return index
    if index >= top:
        return 0
    if fmt.extension is Extension.ONES or index >= top >> 1:
        return index | (_ALL ^ (top - 1))
    return index


def _bounds(fmt: PagingFormat, start: int | None, end: int | None) -> tuple[int, int]:
    """[start, end) as indexes of the region's space (VAs the region does not translate are left out)."""
    top = 1 << fmt.va_bits

    def at(va: int) -> int:                    # the first index whose VA is at or above `va`
        if fmt.extension is Extension.ZERO:
            return min(va, top)
        if fmt.extension is Extension.ONES:
            return 0 if va <= _ALL ^ (top - 1) else va - (_ALL ^ (top - 1))
        half = top >> 1
        return va if va < half else half if va <= _ALL ^ (half - 1) else va - (_ALL ^ (top - 1))
    return (0 if start is None else at(start)), (top if end is None or end > _ALL else at(end))


# --- ptdump --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Style:
    """One architecture's ptdump: its level names (Linux levels 0-4: pgd p4d pud pmd pte), the bits its
    note_page() compares, whether unmapped runs are printed, and the text after the level name."""

    names: tuple[str, ...]
    prot: int                                          # 0: every bit but the address field
    holes: bool
    units: str                                         # of the size: from bytes (B...) or KiB (K...)
    line: Callable[[Mappings, int, int, str, str, str], str]   # rows, row, Linux level, head, size, name


def _effective(perms: int) -> tuple[bool, bool, bool, bool]:
    """The effective permissions as one set of U/R/W/X columns: whether the user may access the page, and
    read, write and execute at that privilege (the user's for a user page, else the supervisor's)."""
    user = any(perms & perm_bit(a, Privilege.USER) for a in Access)
    p = Privilege.USER if user else Privilege.SUPERVISOR
    r, w, x = (bool(perms & perm_bit(a, p)) for a in Access)
    return user, r, w, x


def _perms(m: Mappings, i: int) -> int | None:
    """Row `i`'s effective permissions; None where every access faults on it (its own bits are shown)."""
    if m.perms is None or (m.verdict is not None and m.verdict[i]):
        return None
    return int(m.perms[i])


def _x86_line(m: Mappings, i: int, level: int, head: str, size: str, name: str) -> str:
    """dump_pagetables.c's printk_prot(): USR RW PWT PCD PSE PAT GLB NX, each column or its blanks, then
    the level; PSE at pgd to pmd, PAT from bit 7 at pte and bit 12 at pud and pmd."""
    if i < 0:
        return f"{head}{size} {' ' * 30}{name}"
    raw = int(m.raw[i])
    perms = _perms(m, i)
    if perms is None:
        usr, rw, nx = bool(raw & 4), bool(raw & 2), bool(raw >> 63)
    else:
        usr, _, rw, x = _effective(perms)
        nx = not x
    pat = raw & 0x80 if level == 4 else raw & 0x1000 if level in (2, 3) else 0
    cols = ("USR " if usr else "    ", "RW " if rw else "ro ", "PWT " if raw & 8 else "    ",
            "PCD " if raw & 0x10 else "    ", "PSE " if level <= 3 and raw & 0x80 else "    ",
            "PAT " if pat else "    ", "GLB " if raw & 0x100 else "    ", "NX " if nx else "x  ")
    return f"{head}{size} {''.join(cols)}{name}{fault_note(m, i)}"


_ARM64_MEMTYPES = {MemoryType.DEVICE_NGNRNE: "DEVICE/nGnRnE", MemoryType.DEVICE_NGNRE: "DEVICE/nGnRE",
                   MemoryType.NORMAL_NC: "MEM/NORMAL-NC", MemoryType.NORMAL_WB: "MEM/NORMAL"}
"""arm64 ptdump.c's memory-type names, for the memory types of Linux's MAIR_EL1 attributes (Device-nGnRnE
0x00, Device-nGnRE 0x04, Normal Non-cacheable 0x44, Normal Write-Back 0xff), known here from MAIR itself."""


def _arm64_line(m: Mappings, i: int, level: int, head: str, size: str, name: str) -> str:
    """arm64 ptdump.c's dump_prot(): ` %s` for valid (" "/F), USR, ro/RW, NX (PXN), SHD, AF, NG, CON,
    BLK (table bit clear), UXN, GP, then the memory type where it is one ptdump.c names; nothing after the
    level name for an unmapped run."""
    if i < 0:
        return f"{head}{size} {name}"
    raw = int(m.raw[i])
    perms = _perms(m, i)
    if perms is None:
        usr, rw, pxn, uxn = bool(raw >> 6 & 1), not raw >> 7 & 1, bool(raw >> 53 & 1), bool(raw >> 54 & 1)
        memtype = ""
    else:
        usr = bool(perms & (perm_bit(Access.READ, Privilege.USER) | perm_bit(Access.WRITE, Privilege.USER)))
        rw = bool(perms & perm_bit(Access.WRITE, Privilege.SUPERVISOR))
        pxn = not perms & perm_bit(Access.EXECUTE, Privilege.SUPERVISOR)
        uxn = not perms & perm_bit(Access.EXECUTE, Privilege.USER)
        memtype = "" if m.memtype is None else _ARM64_MEMTYPES.get(MemoryType(int(m.memtype[i])), "")
    cols = (" " if raw & 1 else "F", "USR" if usr else "   ", "RW" if rw else "ro", "NX" if pxn else "x ",
            "SHD" if raw >> 8 & 3 == 3 else "   ", "AF" if raw >> 10 & 1 else "  ", "NG" if raw >> 11 & 1 else "  ",
            "CON" if raw >> 52 & 1 else "   ", "   " if raw & 2 else "BLK", "UXN" if uxn else "   ",
            "GP" if raw >> 50 & 1 else "  ") + ((memtype,) if memtype else ())
    return f"{head}{size} {name}{''.join(' ' + c for c in cols)}{fault_note(m, i)}"


def _riscv_line(m: Mappings, i: int, level: int, head: str, size: str, name: str) -> str:
    """riscv ptdump.c's dump_addr() and dump_prot(): the start PA, then ` %s` for N, MT(NC/IO/??), RSW(n),
    D A G U X W R V, each letter or `.`; for 4-byte PTEs (Sv32, whose PTE has no N or PBMT: RV32 Linux has
    no such columns, they are CONFIG_64BIT's) from RSW(n) on."""
    raw = int(m.raw[i])
    perms = _perms(m, i)
    if perms is None:
        u, r, w, x = (bool(raw >> b & 1) for b in (4, 1, 2, 3))
    else:
        u, r, w, x = _effective(perms)
    mt, rsw = raw >> 61 & 3, raw >> 8 & 3
    rv64 = ("N" if raw >> 63 else ".", f"MT({('NC', 'IO', '??')[mt - 1]})" if mt else "  ..  ")
    cols = (*(rv64 if m.fmt.entry_size == 8 else ()),
            f"RSW({rsw})" if rsw else "  ..  ", "D" if raw & 0x80 else ".", "A" if raw & 0x40 else ".",
            "G" if raw & 0x20 else ".", "U" if u else ".", "X" if x else ".", "W" if w else ".",
            "R" if r else ".", "V" if raw & 1 else ".")
    pa = f"0x{int(m.pa[i]):0{address_digits(m.fmt)}x}"
    return f"{head} {pa} {size} {name}{''.join(' ' + c for c in cols)}{fault_note(m, i)}"


_X86 = _Style(("pgd", "p4d", "pud", "pmd", "pte"), 0, True, "BKMGTPE", _x86_line)
_RISCV = _Style(("PGD", "P4D", "PUD", "PMD", "PTE"), (0b111 << 61) | 0x3FF, False, "KMGTPE", _riscv_line)
_ARM64_PROT = (1 | 1 << 6 | 1 << 7 | 1 << 53 | 3 << 8 | 1 << 10 | 1 << 11 | 1 << 52 | 1 << 1 | 1 << 54 | 1 << 50
               | 7 << 2)
"""The bits of arm64 ptdump.c's pte_bits[] masks: valid, AP[1] (USR), AP[2] (RDONLY), PXN, SH, AF, nG, Contiguous,
the table bit, UXN, GP, AttrIndx."""


def _style(fmt: PagingFormat) -> _Style:
    """The ptdump of `fmt`'s architecture. arm64's level names follow CONFIG_PGTABLE_LEVELS (the format's
    levels): folded levels take the name PGD; riscv64 kernels have five levels, folded at run time."""
    codec = fmt.codec
    if isinstance(codec, X86Codec | X86Codec32):
        return _X86
    if isinstance(codec, RiscvCodec):
        return _RISCV
    if isinstance(codec, A64Codec):
        n = len(fmt.levels)
        return _Style(("PGD", "P4D", "PUD" if n > 3 else "PGD", "PMD" if n > 2 else "PGD", "PTE"), _ARM64_PROT,
                      True, "KMGTPE", _arm64_line)
    raise PagetableError(f"ptdump: Linux has no page-table dump of {fmt.name} tables (use --format json or csv)")


def _prot(fmt: PagingFormat, m: Mappings, mask: int) -> U64:
    """The bits note_page() compares of each row: `mask`'s, or (0) every bit but the entry's address."""
    if mask:
        return m.raw & np.uint64(mask)
    prot = m.raw.copy()
    last = len(fmt.levels) - 1
    for d in np.unique(m.depth).tolist():
        sel = m.depth == d
        prot[sel] = fmt.codecs[d].with_paddr_np(m.raw[sel], np.zeros(int(sel.sum()), dtype=np.uint64), d != last)
    return prot


def _markers(region: Region, regions: int) -> dict[int, str]:
    """The address markers that are architectural, by index of the region's space: x86's User Space and
    Kernel Space (the canonical halves: dump_pagetables.c's markers at 0 and 1 << 63); for a regime of
    several regions (AArch64 TTBR0/TTBR1), the region's register at its start; a 32-bit x86 kernel's (32-bit
    and PAE paging) User Space at 0. Linux's other markers (vmalloc, modules, fixmap, linear map, a 32-bit
    kernel's Kernel Mapping at PAGE_OFFSET, ...) are where one kernel build put them: not knowable here."""
    if isinstance(region.fmt.codec, X86Codec) and region.fmt.extension is Extension.SIGN:
        return {0: "User Space", 1 << (region.fmt.va_bits - 1): "Kernel Space"}
    if isinstance(region.fmt.codec, X86Codec | X86Codec32) and address_digits(region.fmt) == 8:
        return {0: "User Space"}
    return {0: region.name} if regions > 1 else {}


def _runs(m: Mappings, index: U64, prot: U64, cuts: list[int]) -> tuple[npt.NDArray[np.intp],
                                                                         npt.NDArray[np.intp]]:
    """The first and last row of each run note_page() merges: contiguous in VA, one level, equal `prot`,
    equal effective permissions and verdict, and no marker (`cuts`) at a row's start."""
    ends = index + m.size
    joins = (index[1:] == ends[:-1]) & (m.depth[1:] == m.depth[:-1]) & (prot[1:] == prot[:-1]) & \
        ~np.isin(index[1:], np.array(cuts, dtype=np.uint64))
    for column in (m.perms, m.verdict, m.verdict_stage):
        if column is not None:
            joins &= column[1:] == column[:-1]
    if not len(m):
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    starts = np.concatenate(([0], np.flatnonzero(~joins) + 1)).astype(np.intp)
    return starts, np.concatenate((starts[1:] - 1, [len(m) - 1])).astype(np.intp)


def _holes(a: int, b: int, spans: list[int]) -> Iterator[tuple[int, int, int]]:
    """The unmapped entries of [a, b) (no table entry maps or points below them), merged by level as
    note_page() merges empty entries: (start, end, depth) runs; each entry is the largest aligned one that
    fits (tables exist only above the entries that are listed)."""
    x, run = a, None
    while x < b:
        d = next(d for d, s in enumerate(spans) if x % s == 0 and x + s <= b)
        stop = b - b % spans[d]
        if d:
            stop = min(stop, (x // spans[d - 1] + 1) * spans[d - 1])
        if run is not None and run[2] == d:
            run = (run[0], stop, d)
        else:
            if run is not None:
                yield run
            run = (x, stop, d)
        x = stop
    if run is not None:
        yield run


def _region_ptdump(region: Region, m: Mappings, regions: int, start: int | None, end: int | None) -> Iterator[str]:
    """The ptdump lines of one region."""
    fmt = region.fmt
    style = _style(fmt)
    digits = address_digits(fmt)                      # an unsigned long's: 8 digits where VAs have 32 bits
    wrap = (1 << 4 * digits) - 1                      # the end of the space wraps to 0, as an unsigned long
    n = len(fmt.levels)
    base = 5 - n                                      # the Linux level of the root: the levels below are kept
    index = _index(fmt, m.va)
    marks = _markers(region, regions)
    cuts = sorted(marks)                              # root-aligned: no row crosses a marker
    firsts, lasts = _runs(m, index, _prot(fmt, m, style.prot), cuts)
    run_start = index[firsts].tolist()
    run_end = (index[lasts] + m.size[lasts]).tolist()
    depth = m.depth[firsts].tolist()
    pieces: list[tuple[int, int, int, int]] = [(s, e, d, int(a)) for s, e, d, a in
                                               zip(run_start, run_end, depth, firsts.tolist(), strict=True)]
    if style.holes:
        lo, hi = _bounds(fmt, start, end)
        spans = [lv.span for lv in fmt.levels]
        edges = [lo, *(x for x in cuts if lo < x < hi), hi]
        gaps: list[tuple[int, int]] = []
        x = lo
        for s, e in zip(run_start, run_end, strict=True):
            if s > x:
                gaps.append((x, min(s, hi)))
            x = max(x, e)
        if x < hi:
            gaps.append((x, hi))
        for a, b in gaps:
            for u, v in itertools.pairwise(edges):
                if max(a, u) < min(b, v):
                    pieces.extend((s, e, d, -1) for s, e, d in _holes(max(a, u), min(b, v), spans))
        pieces.sort()
    shown = -1                                        # the last marker printed (none yet)
    for s, e, d, a in pieces:
        k = bisect.bisect_right(cuts, s) - 1          # the marker this run is after: it and those crossed
        if k > shown:
            yield from (f"---[ {marks[cuts[j]]} ]---" for j in range(k if shown < 0 else shown + 1, k + 1))
            shown = k
        sva, eva = _va(fmt, s) & wrap, _va(fmt, e) & wrap
        head = f"0x{sva:0{digits}x}-0x{eva:0{digits}x}   "
        yield style.line(m, a, base + d, head, linux_size((eva - sva) & wrap, style.units), style.names[base + d])


def ptdump_lines(walker: Walker, start: int | None = None, end: int | None = None, *,
                 note: Note = note_stderr) -> Iterator[str]:
    """Linux's ptdump of every region (module docstring); the walk's problems go to `note`."""
    regions = len(walker.rules.regime.regions)
    for region, m in walk_regions(walker, start, end):
        yield from _region_ptdump(region, m, regions, start, end)
        for problem in m.problems:
            note(problem)


# --- json and csv ----------------------------------------------------------------------------------------

FIELDS = ("region", "va", "end", "pa", "size", "level", "perms", "memtype", "raw", "fault", "fault_stage")
"""The fields of a `json` object and a `csv` row: the region's register, the VA and the end (exclusive) of
the row, the PA, the size in bytes, the manual's level number, the effective permissions (`S:rwx U:r-x`;
null for a rejected entry), the memory type (null: none), the raw entry, the reason every access faults
(null: some access translates) and who decided it (1 the stage-1 walk, 2 stage 2 on the output address, 3
stage 2 on the entry's update)."""


def _fields(m: Mappings, null: str, quote: Callable[[str], str]) -> Callable[[slice], dict[str, Column]]:
    """The columns of `FIELDS` but the region's name, for a slice of the rows (`dump.output`: null for a
    null field, strings passed through `quote`)."""
    assert m.perms is not None and m.verdict is not None and m.memtype is not None and m.verdict_stage is not None
    perms, verdict, memtype, stage = m.perms, m.verdict, m.memtype, m.verdict_stage
    end, level = m.va + m.size, m.level
    reasons = {r.value: quote(r.label) for r in Reason if r}
    memtypes = {t.value: quote(t.label) for t in MemoryType if t}

    def columns(k: slice) -> dict[str, Column]:
        usable = verdict[k] == 0
        return {
            "va": hexadecimal(m.va[k]), "end": hexadecimal(end[k]), "pa": hexadecimal(m.pa[k]),
            "size": named(m.size[k], str), "level": named(level[k], str),
            "perms": named(np.where(usable, perms[k], 64), lambda b: quote(permissions(b)) if b < 64 else null),
            "memtype": named(memtype[k], lambda t: memtypes.get(t, null)), "raw": hexadecimal(m.raw[k]),
            "fault": named(verdict[k], lambda r: reasons.get(r, null)),
            "fault_stage": named(np.where(usable, 0, stage[k]), lambda s: str(s) if s else null)}
    return columns


def _json_row(region: str, fields: Callable[[slice], dict[str, Column]], k: slice) -> list[Column]:
    """The pieces of the json objects of rows `k` of `region` (addresses as strings, the rest as is)."""
    parts = [text(f'{{"region": {json.dumps(region)}')]
    for field, column in fields(k).items():
        parts += [text(f', "{field}": "'), column, text('"')] if field in _HEXES else [text(f', "{field}": '), column]
    return [*parts, text("}")]


def _csv_row(region: str, fields: Callable[[slice], dict[str, Column]], k: slice) -> list[Column]:
    """The pieces of the csv rows `k` of `region`."""
    return [text(region), *(piece for column in fields(k).values() for piece in (text(","), column))]


_HEXES = {"va", "end", "pa", "raw"}


def json_lines(walker: Walker, start: int | None = None, end: int | None = None) -> Iterator[str]:
    """One JSON object a line per row of every region (`FIELDS`; addresses and the raw entry as "0x.."
    strings, the size and level as numbers); the walk's problems in-band, as `{"note": "..."}` lines after
    their region's rows."""
    for region, m in walk_regions(walker, start, end):
        yield from chunked_lines(len(m), functools.partial(_json_row, region.name.lower(),
                                                           _fields(m, "null", lambda t: f'"{t}"')))
        for problem in m.problems:
            yield json.dumps({"note": problem})


def csv_lines(walker: Walker, start: int | None = None, end: int | None = None, *,
              note: Note = note_stderr) -> Iterator[str]:
    """A header line of `FIELDS`, then one row a line per row of every region (addresses as 0x..; empty for
    null; no field needs quoting); the walk's problems go to `note`."""
    yield ",".join(FIELDS)
    for region, m in walk_regions(walker, start, end):
        yield from chunked_lines(len(m), functools.partial(_csv_row, region.name.lower(), _fields(m, "", str)))
        for problem in m.problems:
            note(problem)


def _noted(lines: Callable[[Walker, int | None, int | None, list[str]], Iterator[str]]) -> WalkFormat:
    """A QEMU monitor format (`qemu_monitor`), its problems said on stderr after its lines."""
    def walk(walker: Walker, start: int | None = None, end: int | None = None) -> Iterator[str]:
        problems: list[str] = []
        yield from lines(walker, start, end, problems)
        for problem in problems:
            note_stderr(problem)
    return walk


FORMATS: dict[str, WalkFormat] = {"ptdump": ptdump_lines, "json": json_lines, "csv": csv_lines,
                                  "qemu-info-mem": _noted(info_mem_lines), "qemu-info-tlb": _noted(info_tlb_lines)}
"""The `pagetable walk --format` choices."""
