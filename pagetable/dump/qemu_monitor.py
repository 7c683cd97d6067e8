"""QEMU 7.2's monitor listings of a guest's page tables, byte for byte: `info mem` (x86 32-bit, PAE, 4- and
5-level paging, RISC-V Sv32/39/48/57) and `info tlb` (x86), as `pagetable walk --format
qemu-info-mem|qemu-info-tlb` prints them.

The format's point is to match the monitor, so it walks as QEMU's monitor walks (QEMU 7.2,
target/i386/monitor.c: `tlb_info_32`/`tlb_info_pae32`/`tlb_info_la48`/`tlb_info_la57`/`print_pte`,
`mem_info_32`/`mem_info_pae32`/`mem_info_la48`/`mem_info_la57`/`mem_print`; target/riscv/monitor.c:
`mem_info_svxx`/`walk_pte`/`print_pte`), not as the hardware does, and never reads `Walker.mappings`.
Where the monitor differs from the architecture it is followed, and the differences are these
(docs/dump-qemu-formats.md):

x86 (both commands):
- Only P and PS are read. No entry is checked for reserved bits (an address bit at or above MAXPHYADDR, PS
  in a PML4E or PML5E, bits 13-29 of a 1 GiB page ...): a PML4E or PML5E is always a table pointer, PS in a
  PDPTE is a 1 GiB page even on a CPU without them, and a faulting leaf is listed like any other.
- Table and page addresses are the entry's bits 12-49 (QEMU's 0x3fffffffff000 mask), not MAXPHYADDR's.
- `info tlb`: one line per present leaf, `%016llx: %016llx XGPDACTUW` -- the VA sign-extended from bit 47
  (56 with CR4.LA57), the entry masked to its frame (bits 30-49, 21-49 or 12-49), and the leaf's own X (XD
  *set*), G, P (PS; a 4 KiB PTE's bit 7 is PAT and shows '-'), D, A, C (PCD), T (PWT), U and W bits, not the
  walk's: XD is shown whatever IA32_EFER.NXE says, U/W of the tables above are ignored.
- `info mem`: `%016llx-%016llx %016llx urw` ranges (start, end, size, each passed through QEMU's
  sign-extension, so a size of 2**47 or more prints sign-extended and 4-level paging's last end prints as
  0001000000000000) of equal protection, the AND of U/S and R/W down the walk; 'r' is always printed, XD and
  the PA are not shown, and CR0.WP, SMEP/SMAP and protection keys play no part.
- 32-bit paging (`tlb_info_32`, `mem_info_32`): 4-byte entries; a PDE with PS is a 4 MiB page only with
  CR4.PSE (the format's), else a table. `info tlb` masks a 4 MiB page's PDE with ~(2**21 - 1): bit 21
  (reserved) shows as an address bit and PSE-36's PA bits 39:32 (PDE bits 20:13) are not shown; a PTE is
  masked with ~0xfff. The VA is never sign-extended (QEMU extends from bit 47), so the last end prints as
  0000000100000000.
- PAE paging (`tlb_info_pae32`, `mem_info_pae32`): the PDPT at CR3 bits 31:5, read from memory (not the
  PDPTE registers); a present PDPTE is a table whatever its bits. `info tlb` masks a 2 MiB page with
  ~(2**20 - 1) and a PTE with ~0xfff in 64 bits: bit 20 (reserved) and bits 63:52 -- XD included -- show as
  address bits. `info mem`'s AND leaves the PDPTE out (it has no U/S or R/W): a 2 MiB page's protection is
  its own, a PTE's is ANDed with its PDE's.
- 5-level `info mem` (`mem_info_la57`) tests P of the PDPTE and the PDE the wrong way round: a present PDPTE
  or PDE is a hole, a non-present one is followed (its PS bit makes a "page" of its U/S and R/W bits, else
  its address bits are a table: a zero entry's is the page at PA 0) and the pages under it have P clear in
  their AND, so a range prints only where non-present entries carry U/S or R/W. Followed as written, but
  for the subtrees whose AND is already zero, which cannot make a range and are not read (QEMU reads them:
  512**3 entries per present PML4E when the page at PA 0 is zero).
RISC-V (`info mem`):
- Two header lines, then `%016lx %016lx %016lx rwxugad` lines: VA (sign-extended), PA, size. Sv32 (RV32's
  qemu-system-riscv32, whose target_ulong has 32 bits): its own header (`RISCV32_HEADER`) and
  `%08x %016llx %08x rwxugad` lines (TARGET_FMT_lx, TARGET_FMT_plx, TARGET_FMT_lx), the VA not extended,
  the size a 32-bit target_ulong: a run of 4 GiB has size 0 and, as any size of 0, is not printed.
- Every entry with V set is followed: R|W|X non-zero is a leaf (at any level, with any alignment, W without R
  included), else a pointer (at the last level: ignored). Nothing is checked: reserved bits, PBMT and N,
  misaligned superpages, A/D.
- The PA (and a pointer's table address) is `(pte >> 10) << 12` in 64 bits: bits 54-61 of the entry
  (reserved, PBMT) become PA bits 56-63.
- A line continues while the next leaf has the same low 8 bits (V R W X U G A D), the next PA and the next
  VA *and is in the same table*: QEMU's `last_start` is per table, so a leaf that starts a table always
  starts a line.

Both walks follow every reference: a table pointed at by several entries is listed under each (QEMU has no
notion of a shared table), and a table outside the image is read as all zeros, as QEMU reads unassigned
memory, and reported in `problems`. The entries read level by level are bounded (`ENTRY_LIMIT`): tables
that refer to themselves multiply without end, as they do for the monitor, which then prints for hours.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from ..arch.riscv_sv39.modes import SV32, SV39, SV48, SV57
from ..arch.riscv_sv39.walk import RiscvRules
from ..arch.x86_64.modes import PAGING4, PAGING5, PAGING32, PAGING32_PSE, PAGING32_PSE36, PAGING_PAE
from ..descent import read_tables
from ..errors import PagetableError
from ..format import PagingFormat
from ..physmem import PhysMem
from ..walker import Walker
from .output import Column, chunked_lines, fixed, hexadecimal, text

__all__ = ["ENTRY_LIMIT", "RISCV32_HEADER", "RISCV_BARE", "RISCV_HEADER", "info_mem_lines", "info_tlb_lines"]

U64 = npt.NDArray[np.uint64]
Bool = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.intp]

ENTRY_LIMIT: Final = 1 << 24
"""The most entries one level of the walk may read (16 Mi: 32768 tables, 64 GiB of 4 KiB pages)."""

RISCV_HEADER: Final = ("vaddr            paddr            size             attr",
                       "---------------- ---------------- ---------------- -------")
"""target/riscv/monitor.c's PTE_HEADER_FIELDS and PTE_HEADER_DELIMITER (RV64)."""
RISCV32_HEADER: Final = ("vaddr    paddr            size     attr",
                         "-------- ---------------- -------- -------")
"""The same without TARGET_RISCV64 (qemu-system-riscv32: Sv32)."""

RISCV_BARE: Final = "No translation or protection"
"""hmp_info_mem's answer for satp.MODE = Bare."""

_ALL: Final = (1 << 64) - 1
# x86 entry bits (Intel SDM Vol. 3A, Tables 4-15 to 4-20) as QEMU's target/i386/cpu.h names them
_P, _RW, _US, _PWT, _PCD, _A, _D, _PS, _G = (1 << b for b in (0, 1, 2, 3, 4, 5, 6, 7, 8))
_NX: Final = 1 << 63
_X86_ADDRESS: Final = 0x3FFFFFFFFF000                   # QEMU's table/page address mask, bits 12-49
_X86_TLB_FLAGS: Final = ((_NX, "X"), (_G, "G"), (_PS, "P"), (_D, "D"), (_A, "A"), (_PCD, "C"), (_PWT, "T"),
                         (_US, "U"), (_RW, "W"))
# RISC-V PTE bits (Privileged spec, Section 4.4.1, Figure 4.21)
_V, _R, _W, _X = 1, 2, 4, 8
_RISCV_ATTRS: Final = ((_R, "r"), (_W, "w"), (_X, "x"), (16, "u"), (32, "g"), (64, "a"), (128, "d"))
_RISCV_PPN_SHIFT: Final = 10
_RISCV_ATTR_TEXT: Final = np.array([[ord(c if n & bit else "-") for bit, c in _RISCV_ATTRS] for n in range(256)],
                                   dtype=np.uint8)
"""print_pte's seven attribute characters (ASCII) for each value of a PTE's low 8 bits."""
_TLB_FLAG_TEXT: Final = np.array([[ord(c if n >> k & 1 else "-") for k, (_, c) in enumerate(_X86_TLB_FLAGS)]
                                  for n in range(1 << len(_X86_TLB_FLAGS))], dtype=np.uint8)
"""print_pte's nine flag characters (ASCII) for each combination of the bits (bit k: the k-th flag set)."""


_X86_32: Final = (PAGING32.name, PAGING32_PSE.name, PAGING32_PSE36.name)
_X86: Final = (PAGING4.name, PAGING5.name, PAGING_PAE.name, *_X86_32)
_TLB_MASKS: Final = {PAGING_PAE.name: (_ALL, _ALL ^ ((1 << 20) - 1), _ALL ^ 0xFFF),
                     **{name: ((1 << 32) - (1 << 21), (1 << 32) - (1 << 12)) for name in _X86_32}}
"""Per depth, the mask print_pte applies to the leaf of tlb_info_pae32 and tlb_info_32 (the others mask the
address bits 12-49 above the page's offset)."""
_RISCV: Final = (SV32.name, SV39.name, SV48.name, SV57.name)


@dataclass(frozen=True)
class _Leaves:
    """The leaves a walk reached, in VA order: the VA QEMU composes from the indices (not sign-extended), the
    entry, its level (0 = root), the AND of the entries above it, and which table (its reading's number) it
    is in."""

    va: U64
    raw: U64
    depth: Ints
    above: U64
    table: Ints


def _walk(mem: PhysMem, fmt: PagingFormat, root: int, leaf: Callable[[int, U64], Bool],
          follow: Callable[[int, U64, U64], Bool], address: Callable[[U64], U64],
          problems: list[str] | None, anded: int = 0) -> _Leaves:
    """Every leaf under `root`, QEMU's way: per level, every entry of every table reached (each reference
    read anew), `leaf(depth, raw)` listed, `follow(depth, raw, above)` (`above`: the AND of the entries over
    each from depth `anded` down) followed to `address(raw)`."""
    tables = np.array([root], dtype=np.uint64)
    bases = np.zeros(1, dtype=np.uint64)
    above = np.full(1, _ALL, dtype=np.uint64)
    numbers = np.zeros(1, dtype=np.intp)
    serial = 1
    out: list[tuple[U64, U64, Ints, U64, Ints]] = []
    for depth, lv in enumerate(fmt.levels):
        if not tables.size:
            break
        count = lv.entries
        if tables.size * count > ENTRY_LIMIT:
            raise PagetableError(f"the level-{lv.arch_level} tables number {tables.size} when every reference is "
                                 f"followed, as QEMU's monitor does: more than {ENTRY_LIMIT // count} (a table that "
                                 "refers to itself, or one shared by many entries)")
        inside = mem.contains_np(tables, count * fmt.entry_size)
        if problems is not None:
            problems.extend(f"the level-{lv.arch_level} table at {int(t):#x} (VA {_extend(int(b), fmt.va_bits):#x}) "
                            "is outside the image: read as zeros, as QEMU reads unassigned memory"
                            for t, b in zip(tables[~inside].tolist(), bases[~inside].tolist(), strict=True))
        tables, bases, above, numbers = tables[inside], bases[inside], above[inside], numbers[inside]
        raw = read_tables(mem, tables, count, fmt.entry_size)
        offsets = np.arange(count, dtype=np.uint64) << np.uint64(lv.index_lsb)
        va = (bases[:, None] + offsets[None, :]).reshape(-1)
        carry = np.repeat(above, count)
        number = np.repeat(numbers, count)
        is_leaf = leaf(depth, raw)
        out.append((va[is_leaf], raw[is_leaf], np.full(int(is_leaf.sum()), depth, dtype=np.intp), carry[is_leaf],
                    number[is_leaf]))
        down = follow(depth, raw, carry) & ~is_leaf if depth + 1 < fmt.depth_count else np.zeros(raw.shape, dtype=bool)
        tables, bases = address(raw[down]), va[down]
        above = carry[down] & raw[down] if depth >= anded else carry[down]
        numbers = np.arange(serial, serial + tables.size, dtype=np.intp)
        serial += tables.size
    cols = [np.concatenate(c) for c in zip(*out, strict=True)]
    order = np.argsort(cols[0], kind="stable")
    return _Leaves(*(c[order] for c in cols))


def _single_stage(walker: Walker) -> tuple[PagingFormat, int]:
    """The one region's format and root, or PagetableError for what QEMU's monitor has no listing of."""
    if walker.stage2 is not None:
        raise PagetableError("QEMU's monitor lists one stage of translation: a two-stage walker has no "
                             "qemu-info-mem/qemu-info-tlb listing")
    regions = walker.rules.regime.regions
    if len(regions) != 1 or regions[0].fmt.name not in _X86 + _RISCV:
        names = ", ".join(r.fmt.name for r in regions) or "no translation"
        raise PagetableError(f"QEMU's monitor has 'info mem' for x86 32-bit, PAE and 4/5-level paging and RISC-V "
                             f"Sv32/39/48/57 and 'info tlb' for x86 only, not for {names}")
    return regions[0].fmt, regions[0].root


def _canonical_bits(fmt: PagingFormat) -> int:
    """The bit QEMU's addr_canonical extends from, less one: 57 with CR4.LA57, else 48 (so 32-bit and PAE
    paging's addresses pass unchanged)."""
    return 57 if fmt.name == PAGING5.name else 48


def _extend(va: int, bits: int) -> int:
    """QEMU's addr_canonical: bit `bits - 1` copied upwards (in 64 bits)."""
    return va | (_ALL ^ ((1 << bits) - 1)) if va >> (bits - 1) & 1 else va & _ALL


def _extend_np(va: U64, bits: int) -> U64:
    """`_extend` of a column."""
    out: U64 = np.where((va >> np.uint64(bits - 1)) & np.uint64(1) != 0, va | np.uint64(_ALL ^ ((1 << bits) - 1)), va)
    return out


def _overlaps_np(start: int | None, end: int | None, lo: U64, hi: U64) -> Bool:
    """Which printed ranges [lo, hi) meet [start, end) (no bound, or an end of 2**64: every one). `hi` may
    have wrapped to 0 at the top of the space."""
    keep = np.ones(lo.shape, dtype=bool)
    if start is not None:
        keep &= (hi > np.uint64(start)) | (hi <= lo)
    if end is not None and end < 1 << 64:
        keep &= lo < np.uint64(end)
    return keep


def _x86_leaves(walker: Walker, fmt: PagingFormat, root: int, problems: list[str] | None,
                inverted: bool = False) -> _Leaves:
    """target/i386/monitor.c's walk: the PML5E (LA57) and PML4E always point at tables, a PDPTE or PDE with PS is
    a page (32-bit paging: a PDE with CR4.PSE; PAE paging: a PDE only, the PDPTE is a table); with `inverted`,
    mem_info_la57's walk, whose PDPTE and PDE tests of P are the wrong way round."""
    top = fmt.depth_count - 1

    def present(depth: int, raw: U64) -> Bool:
        p: Bool = (raw & np.uint64(_P)) != 0
        return ~p if inverted and depth in (top - 2, top - 1) else p

    def follow(depth: int, raw: U64, above: U64) -> Bool:
        if inverted and depth in (top - 2, top - 1):    # P is clear in every AND below: only U/S, R/W can
            out: Bool = present(depth, raw) & ((raw & above & np.uint64(_US | _RW)) != 0)   # make a range
            return out
        return present(depth, raw)

    def leaf(depth: int, raw: U64) -> Bool:
        if depth == top:
            return present(depth, raw)
        huge = present(depth, raw) & ((raw & np.uint64(_PS)) != 0)
        return huge if fmt.levels[depth].leaf else np.zeros(raw.shape, dtype=bool)

    pae = fmt.name == PAGING_PAE.name
    legacy = pae or fmt.name in _X86_32                 # CR3 & ~0x1f, & ~0xfff: the region's root as it is
    return _walk(walker.mem, fmt, root if legacy else root & _X86_ADDRESS, leaf, follow,
                 lambda raw: raw & np.uint64(_X86_ADDRESS), problems, anded=1 if pae else 0)


def info_tlb_lines(walker: Walker, start: int | None = None, end: int | None = None,
                   problems: list[str] | None = None) -> Iterator[str]:
    """QEMU 7.2's x86 `info tlb` for the walker's tables (`tlb_info_32`/`tlb_info_pae32`/`tlb_info_la48`/
    `tlb_info_la57`, `print_pte`): one line per present leaf, in VA order; with `start`/`end`, the leaves
    whose page meets [start, end). Tables outside the image are reported in `problems` (module docstring)."""
    fmt, root = _single_stage(walker)
    if fmt.name not in _X86:
        raise PagetableError(f"QEMU's monitor has 'info tlb' for x86 only, not for {fmt.name}")
    leaves = _x86_leaves(walker, fmt, root, problems)
    shift = np.array([lv.index_lsb for lv in fmt.levels], dtype=np.uint64)[leaves.depth]
    va = _extend_np(leaves.va, _canonical_bits(fmt))
    keep = _overlaps_np(start, end, va, va + (np.uint64(1) << shift))
    raw, shift, va, depth = leaves.raw[keep], shift[keep], va[keep], leaves.depth[keep]
    raw = np.where(shift == 12, raw & np.uint64(_ALL ^ _PS), raw)   # a PTE's bit 7 is PAT: pte & ~PG_PSE_MASK
    masks = _TLB_MASKS.get(fmt.name)
    if masks is None:
        pa = raw & (np.uint64(_X86_ADDRESS) & ~((np.uint64(1) << shift) - np.uint64(1)))
    else:
        pa = raw & np.array(masks, dtype=np.uint64)[depth]
    index = np.zeros(raw.shape, dtype=np.intp)
    for k, (bit, _) in enumerate(_X86_TLB_FLAGS):
        index |= ((raw & np.uint64(bit)) != 0).astype(np.intp) << k
    flags = _TLB_FLAG_TEXT[index]
    yield from chunked_lines(va.size, lambda k: [_hex16(va[k]), text(": "), _hex16(pa[k]), text(" "), fixed(flags[k])])


def _hex16(col: U64) -> Column:
    """`%016llx` of each value."""
    return hexadecimal(col, 16, prefix=False)


def _hex8(col: U64) -> Column:
    """`%08x` of each value (below 2**32)."""
    return hexadecimal(col, 8, prefix=False)


def _runs(new: Bool) -> tuple[Ints, Ints]:
    """The first and last index of each run, where `new` marks the elements that start one."""
    first = np.flatnonzero(new)
    last = np.append(first[1:] - 1, new.size - 1).astype(np.intp)
    return first, last


def _x86_info_mem(walker: Walker, fmt: PagingFormat, root: int, start: int | None, end: int | None,
                  problems: list[str] | None) -> Iterator[str]:
    leaves = _x86_leaves(walker, fmt, root, problems, inverted=fmt.name == PAGING5.name)
    if not leaves.va.size:
        return
    sizes = np.array([1 << lv.index_lsb for lv in fmt.levels], dtype=np.uint64)[leaves.depth]
    prot = leaves.raw & leaves.above & np.uint64(_US | _RW | _P)
    ends = leaves.va + sizes
    live = prot != 0                                     # a prot of 0 is a hole to mem_print
    va, ends, prot = leaves.va[live], ends[live], prot[live]
    if not va.size:
        return
    new = np.ones(va.shape, dtype=bool)
    new[1:] = (prot[1:] != prot[:-1]) | (va[1:] != ends[:-1])
    first, last = _runs(new)
    lo, hi, prot = va[first], ends[last], prot[first]
    bits = _canonical_bits(fmt)
    keep = _overlaps_np(start, end, _extend_np(lo, bits), _extend_np(lo, bits) + (hi - lo))
    lo, hi, prot = lo[keep], hi[keep], prot[keep]
    cols = [_extend_np(c, bits) for c in (lo, hi, hi - lo)]
    urw = np.stack([np.where(prot & np.uint64(_US) != 0, ord("u"), ord("-")), np.full(prot.shape, ord("r")),
                    np.where(prot & np.uint64(_RW) != 0, ord("w"), ord("-"))], axis=1).astype(np.uint8)

    def row(k: slice) -> list[Column]:
        return [_hex16(cols[0][k]), text("-"), _hex16(cols[1][k]), text(" "), _hex16(cols[2][k]), text(" "),
                fixed(urw[k])]

    yield from chunked_lines(urw.shape[0], row)


def _riscv_info_mem(walker: Walker, fmt: PagingFormat, root: int, start: int | None, end: int | None,
                    problems: list[str] | None) -> Iterator[str]:
    rwx = np.uint64(_R | _W | _X)

    def valid(depth: int, raw: U64, above: U64 | None = None) -> Bool:
        out: Bool = (raw & np.uint64(_V)) != 0
        return out

    def leaf(depth: int, raw: U64) -> Bool:
        out: Bool = valid(depth, raw) & ((raw & rwx) != 0)
        return out

    def address(raw: U64) -> U64:
        out: U64 = (raw >> np.uint64(_RISCV_PPN_SHIFT)) << np.uint64(12)
        return out

    leaves = _walk(walker.mem, fmt, root, leaf, valid, address, problems)
    rv32 = fmt.name == SV32.name                         # qemu-system-riscv32: 32-bit target_ulong
    yield from RISCV32_HEADER if rv32 else RISCV_HEADER
    if not leaves.va.size:
        return
    sizes = np.array([1 << lv.index_lsb for lv in fmt.levels], dtype=np.uint64)[leaves.depth]
    pa = address(leaves.raw)
    attr = leaves.raw & np.uint64(0xFF)
    new = np.ones(pa.shape, dtype=bool)
    va = leaves.va
    new[1:] = ((attr[1:] != attr[:-1]) | (pa[1:] != pa[:-1] + sizes[:-1]) | (va[1:] != va[:-1] + sizes[:-1])
               | (leaves.table[1:] != leaves.table[:-1]))
    first, last = _runs(new)
    span = pa[last] + sizes[last] - pa[first]            # print_pte's size: last_paddr + last_size - pbase
    if rv32:
        span &= np.uint64(0xFFFF_FFFF)                   # ... in a 32-bit target_ulong
    lo = va[first] if rv32 else _extend_np(va[first], fmt.va_bits)   # addr_canonical: RV64 only
    keep = (span != 0) & _overlaps_np(start, end, lo, lo + span)      # print_pte skips a size of 0
    lo, pa, span = lo[keep], pa[first][keep], span[keep]
    attrs = _RISCV_ATTR_TEXT[attr[first][keep].astype(np.intp)]

    word = _hex8 if rv32 else _hex16                     # TARGET_FMT_lx

    def row(k: slice) -> list[Column]:
        return [word(lo[k]), text(" "), _hex16(pa[k]), text(" "), word(span[k]), text(" "), fixed(attrs[k])]

    yield from chunked_lines(attrs.shape[0], row)


def info_mem_lines(walker: Walker, start: int | None = None, end: int | None = None,
                   problems: list[str] | None = None) -> Iterator[str]:
    """QEMU 7.2's `info mem` for the walker's tables: x86 32-bit, PAE, 4- and 5-level paging (`mem_info_32`,
    `mem_info_pae32`, `mem_info_la48`, `mem_info_la57`, `mem_print`) or RISC-V Sv32/39/48/57 (`mem_info_svxx`,
    `walk_pte`, the header first); with `start`/`end`, the lines whose range meets [start, end), merged as
    over the whole space. Tables outside the image are reported in `problems` (module docstring). A RISC-V
    walker with satp.MODE = Bare gets QEMU's one line for it (RISCV_BARE)."""
    if isinstance(walker.rules, RiscvRules) and not walker.rules.regime.translates and walker.stage2 is None:
        return iter([RISCV_BARE])
    fmt, root = _single_stage(walker)
    if fmt.name in _X86:
        return _x86_info_mem(walker, fmt, root, start, end, problems)
    return _riscv_info_mem(walker, fmt, root, start, end, problems)
