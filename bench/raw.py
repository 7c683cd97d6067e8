"""The raw numpy work each benchmark cannot avoid, written with plain numpy and no library code (issue 11:
every bulk path is measured beside it in the same run).

Each function gets the same memory (one uint64 array per RAM region, as `PhysMem` holds it) and does only
what the operation must: scatter or gather the entries it touches and write the output columns it must
produce. The formats (`RawFormat`): RISC-V Sv39/Sv39x4 PTEs (V=bit 0, R/W/X/U bits 1-4, A/D bits 6-7, PPN
bits 53:10; `SV39`, `SV39X4`), x86-64 4-level paging (P=bit 0, R/W 1, U/S 2, address bits 51:12, XD 63;
`X86`) and VMSAv8-64 descriptors (valid bit 0, table/page bit 1, AP[2:1] bits 7:6, address bits 47:12 or
47:16, PXN 53, UXN 54; stage 1 `A64_4K`, `A64_64K`, stage 2 `A64_S2_4K`, `A64_S2_64K`), each with its levels'
index shifts and widths (512-entry tables, a 1024-entry concatenated stage 2 root, 8192-entry 64 KiB tables).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar, cast

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
PPN_MASK = np.uint64(((1 << 44) - 1) << 10)
TEN, TWELVE = np.uint64(10), np.uint64(12)


def _word(words: U64, base: int, pa: U64) -> U64:
    """The u64 at each physical address (one region starting at `base`)."""
    out: U64 = words[((pa - np.uint64(base)) >> np.uint64(3)).astype(np.intp)]
    return out


def _next(entry: U64) -> U64:
    out: U64 = ((entry & PPN_MASK) >> TEN) << TWELVE
    return out


X86_ADDR = np.uint64(((1 << 52) - 1) & ~0xFFF)


# Effective permissions (bit 3 * privilege + access: supervisor r w x in bits 0-2, user in bits 3-5) of a
# valid leaf with A and D set, indexed by its R W X U bits (PTE bits 1-4), with SUM=0 and MXR=0: the
# supervisor gets R/W/X of a page without U, the user of a page with U. (W without R is reserved: such a
# leaf faults for every access, so it gets no permissions.)
PERMS_OF_RWXU = np.array([0 if (f & 3) == 2 else (f & 7) << (3 if f & 8 else 0) for f in range(16)], dtype=np.uint8)


def _sv39_perms(raw: U64) -> npt.NDArray[np.uint8]:
    out: npt.NDArray[np.uint8] = PERMS_OF_RWXU[((raw >> np.uint64(1)) & np.uint64(0xF)).astype(np.intp)]
    return out


def _sv39_flags(raw: U64) -> U64:
    out: U64 = (raw >> np.uint64(1)) & np.uint64(0xF)
    return out


# x86 (CR0.WP=1, EFER.NXE=1, no SMEP/SMAP/keys), under table entries that grant everything (P|R/W|U/S): a
# present page's rights by its R/W, U/S and XD bits, packed as bits 0-2 (`_x86_rights`). Reads always;
# writes with R/W; fetches without XD; all of them for the user only with U/S, and for the supervisor
# always. The walk's flags: READ, WRITE (R/W), EXECUTE (no XD), USER (U/S), memory type WB (PAT index 0).
PERMS_OF_X86 = np.array([(1 | (f & 1) << 1 | (0 if f & 4 else 4)) * (9 if f & 2 else 1) for f in range(8)],
                        dtype=np.uint8)
FLAGS_OF_X86 = np.array([1 | (f & 1) << 1 | (0 if f & 4 else 4) | (f & 2) << 2 for f in range(8)], dtype=np.uint64)


def _x86_rights(raw: U64) -> npt.NDArray[np.intp]:
    """R/W and U/S (bits 1-2) as bits 0-1, XD (bit 63) as bit 2."""
    out: npt.NDArray[np.intp] = (((raw >> np.uint64(1)) & np.uint64(3)) | (raw >> np.uint64(61) & np.uint64(4))
                                 ).astype(np.intp)
    return out


G = TypeVar("G", bound=np.generic)


def _looked_up(table: npt.NDArray[G], rights: Callable[[U64], npt.NDArray[np.intp]]) -> Callable[[U64], npt.NDArray[G]]:
    """A column of `table`'s values, one per entry, at the index `rights` packs from its bits."""
    def column(raw: U64) -> npt.NDArray[G]:
        out: npt.NDArray[G] = table[rights(raw)]
        return out
    return column


_x86_perms, _x86_flags = _looked_up(PERMS_OF_X86, _x86_rights), _looked_up(FLAGS_OF_X86, _x86_rights)


def _x86_fit(children: U64) -> U64:
    """The bits of the table entry above each row of 512 x86 entries: P, R/W and U/S where some present
    entry has them, XD unless some present entry is executable (as the library keeps table entries: no
    more permissive than their pages need)."""
    present = (children & np.uint64(1)) != 0
    grants = np.where(present, (children & np.uint64(0x6)) | (~children & np.uint64(1 << 63)), np.uint64(0))
    needs = np.bitwise_or.reduce(grants, axis=1)
    out: U64 = np.uint64(1) | (needs & np.uint64(0x6)) | (~needs & np.uint64(1 << 63))
    return out


# AArch64 stage 1 (EL1&0, Linux's MAIR: AttrIndx 0 Normal WB), under table descriptors without table
# attributes: a valid leaf's rights by AP[2:1] (bits 7:6), PXN (53) and UXN (54), packed as bits 0-3
# (`_a64_rights`). EL1 always reads; writes unless AP[2]; executes unless PXN, and never where EL0 can
# write. EL0 reads with AP[1], writes with AP[1] and not AP[2], executes unless UXN. The walk's flags (as the
# codec decodes them): where EL0 has some access, USER with EL0's R/W/X; else EL1's R/W/X.
def _a64_bits(f: int) -> tuple[bool, bool, bool, bool]:
    """(AP[1], AP[2], PXN, UXN) of a packed `_a64_rights` value."""
    return bool(f & 1), bool(f & 2), bool(f & 4), bool(f & 8)


def _a64_perms_of(f: int) -> int:
    el0, ro, pxn, uxn = _a64_bits(f)
    user = (1 if el0 else 0) | (2 if el0 and not ro else 0) | (0 if uxn else 4)
    return 1 | (0 if ro else 2) | (0 if pxn or user & 2 else 4) | user << 3


def _a64_flags_of(f: int) -> int:
    el0, ro, pxn, uxn = _a64_bits(f)
    if el0 or not uxn:
        return 8 | (0 if uxn else 4) | ((1 | (0 if ro else 2)) if el0 else 0)
    return 1 | (0 if ro else 2) | (0 if pxn else 4)


PERMS_OF_A64 = np.array([_a64_perms_of(f) for f in range(16)], dtype=np.uint8)
FLAGS_OF_A64 = np.array([_a64_flags_of(f) for f in range(16)], dtype=np.uint64)


def _a64_rights(raw: U64) -> npt.NDArray[np.intp]:
    """AP[2:1] (bits 7:6) as bits 0-1, PXN and UXN (bits 54:53) as bits 2-3."""
    out: npt.NDArray[np.intp] = (((raw >> np.uint64(6)) & np.uint64(3)) | ((raw >> np.uint64(51)) & np.uint64(0xC))
                                 ).astype(np.intp)
    return out


_a64_perms, _a64_flags = _looked_up(PERMS_OF_A64, _a64_rights), _looked_up(FLAGS_OF_A64, _a64_rights)


@dataclass(frozen=True)
class RawFormat:
    """What the raw work knows of a format of u64 entries: each level's VA index shift and width (root
    first; the last shift is the page's), where an entry keeps its address (`addr_bits`, the address being
    those bits shifted up by `up`: Sv39's PPN sits 2 bits lower than the address), a table pointer's other
    bits, and a leaf's `flags` column (the walk's) and effective permissions (the listing's), both from its
    raw bits. Bit 0 is the present bit in every format. A table at a level has 2**width entries and is
    aligned to its size."""

    shifts: tuple[int, ...]
    widths: tuple[int, ...]
    addr_bits: np.uint64
    up: int
    pointer: int
    flags: Callable[[U64], U64]
    perms: Callable[[U64], npt.NDArray[np.uint8]]
    fit: Callable[[U64], U64] | None = None      # x86: a table entry's bits from its table's entries

    @property
    def leaf_depth(self) -> int:
        return len(self.shifts) - 1

    def entries(self, depth: int) -> int:
        return 1 << self.widths[depth]

    def table_size(self, depth: int) -> int:
        return 8 << self.widths[depth]

    def index(self, va: U64, depth: int) -> U64:
        """The entry index of each VA at `depth`."""
        out: U64 = (va >> np.uint64(self.shifts[depth])) & np.uint64(self.entries(depth) - 1)
        return out

    def index_of(self, va: int, depth: int) -> int:
        """`index` of one VA."""
        return (va >> self.shifts[depth]) & (self.entries(depth) - 1)

    def next_table(self, entry: U64) -> U64:
        """The table or page each entry names."""
        out: U64 = (entry & self.addr_bits) << np.uint64(self.up)
        return out

    def entry_of(self, pa: U64) -> U64:
        """A page-aligned address's bits in an entry."""
        out: U64 = pa >> np.uint64(self.up)
        return out


SV39 = RawFormat((30, 21, 12), (9, 9, 9), PPN_MASK, 2, 1, _sv39_flags, _sv39_perms)
SV39X4 = RawFormat((30, 21, 12), (11, 9, 9), PPN_MASK, 2, 1, _sv39_flags, _sv39_perms)
X86 = RawFormat((39, 30, 21, 12), (9, 9, 9, 9), X86_ADDR, 0, 0x7, _x86_flags, _x86_perms, _x86_fit)
A64_4K = RawFormat((39, 30, 21, 12), (9, 9, 9, 9), np.uint64(((1 << 48) - 1) & ~0xFFF), 0, 0x3, _a64_flags,
                   _a64_perms)
"""VMSAv8-64 stage 1, 4KB granule, 48-bit VA (levels 0-3); table descriptors bits 1:0 = 0b11."""
A64_64K = RawFormat((42, 29, 16), (6, 13, 13), np.uint64(((1 << 48) - 1) & ~0xFFFF), 0, 0x3, _a64_flags,
                    _a64_perms)
"""The 64KB granule, 48-bit VA (levels 1-3: a 64-entry root, 8192-entry tables)."""
A64_S2_4K = RawFormat((30, 21, 12), (10, 9, 9), A64_4K.addr_bits, 0, 0x3, _a64_flags, _a64_perms)
"""Stage 2, 4KB granule, 40-bit IPA: two concatenated level 1 tables (a 1024-entry root)."""
A64_S2_64K = RawFormat((29, 16), (13, 13), A64_64K.addr_bits, 0, 0x3, _a64_flags, _a64_perms)
"""Stage 2, 64KB granule, 42-bit IPA: levels 2-3."""


def _scalar(fn: Callable[[U64], U64], value: int) -> int:
    return int(fn(np.array([value], dtype=np.uint64))[0])


def _gig_table(words: U64, base: int, root: int, va0: int, f: RawFormat, free: int | None = None) -> int:
    """The table of the entries that cover `va0` and point at the tables above its leaf tables (Sv39's
    1 GiB entries, in the root; x86's, in the PDPT the PML4 entry names; the 64KB granule's 4 TB entries, in
    the root): the table at depth leaf - 2, reached through the levels above it. Given `free`, the tables on
    the way are new, at `free` onwards, and the entries pointing at them are written."""
    table = root
    for depth in range(f.leaf_depth - 2):
        slot = table + f.index_of(va0, depth) * 8
        if free is None:
            table = _scalar(f.next_table, int(words[(slot - base) // 8]))
        else:
            words[(slot - base) // 8] = _scalar(f.entry_of, free) | f.pointer
            table, free = free, free + f.table_size(depth + 1)
    return table


def map_4k(words: U64, base: int, root: int, va0: int, pa0: int, pages: int, leaf_tables: int,
           attrs: int, f: RawFormat = SV39) -> None:
    """Map `pages` pages of the format at `va0` -> `pa0` (`va0` aligned to a leaf table's span, `pages` a
    multiple of a leaf table's entries, within one entry of the table above the tables of leaf-table
    pointers in x86): each leaf entry scattered to its slot (leaf table of its span, index of its page) in
    leaf tables at `leaf_tables`, a pointer per leaf table in the tables of leaf-table pointers after them
    (Sv39's and x86's tables of 2 MiB entries), then (x86) the PDPT after those, a pointer per such table in
    the root (Sv39) or the PDPT, and the PML4 entry pointing at the PDPT."""
    leaf, pmd_depth = f.leaf_depth, f.leaf_depth - 1
    span, per = 1 << f.shifts[pmd_depth], f.entries(leaf)            # a leaf table's VA span and entries
    assert va0 % span == 0 and pages % per == 0, "map_4k maps whole leaf tables from a leaf table's boundary"
    n_tables, size = pages // per, f.table_size(leaf)
    first = f.index_of(va0, pmd_depth)                   # the first leaf-table pointer's index
    pmd = leaf_tables + n_tables * size
    va = np.uint64(va0) + np.arange(pages, dtype=np.uint64) * np.uint64(1 << f.shifts[leaf])
    table = np.uint64(leaf_tables) + ((va - np.uint64(va0)) >> np.uint64(f.shifts[pmd_depth])) * np.uint64(size)
    slot = table + f.index(va, leaf) * np.uint64(8)
    entry = f.entry_of(np.uint64(pa0) + (va - np.uint64(va0))) | np.uint64(attrs)
    words[((slot - np.uint64(base)) >> np.uint64(3)).astype(np.intp)] = entry
    tables = np.uint64(leaf_tables) + np.arange(n_tables, dtype=np.uint64) * np.uint64(size)
    at = (pmd - base) // 8 + first
    words[at:at + n_tables] = f.entry_of(tables) | np.uint64(f.pointer)
    gigs, pmd_size = -(-(first + n_tables) // f.entries(pmd_depth)), f.table_size(pmd_depth)
    top = _gig_table(words, base, root, va0, f, free=pmd + gigs * pmd_size)
    top_index = f.index_of(va0, leaf - 2)
    for g in range(gigs):
        words[(top - base) // 8 + (top_index + g) % f.entries(leaf - 2)] = \
            _scalar(f.entry_of, pmd + g * pmd_size) | f.pointer


def _leaf_slots(words: U64, base: int, root: int, va0: int, gigs: int, f: RawFormat) -> tuple[U64, U64, U64]:
    """Follow the `gigs` entries from `va0`'s in the table above the tables of leaf-table pointers (Sv39's
    and x86's 1 GiB entries; `va0` aligned to their span, or inside the first) to those tables and read all
    their pointers: the tables' addresses, the indices of the present pointers (across the `gigs` tables),
    and the slots of every entry of the leaf tables they point at (in VA order). Reads the entries on the
    way and the pointers, writes the slot column."""
    leaf = f.leaf_depth
    per, n = f.entries(leaf - 1), f.entries(leaf)
    index = (np.arange(gigs, dtype=np.uint64) + np.uint64(f.index_of(va0, leaf - 2))) % np.uint64(f.entries(leaf - 2))
    top = _gig_table(words, base, root, va0, f)
    pmds = f.next_table(_word(words, base, np.uint64(top) + index * np.uint64(8)))
    pointers = _word(words, base, (pmds[:, None] + np.arange(per, dtype=np.uint64)[None, :] * np.uint64(8)).reshape(-1))
    used = np.flatnonzero(pointers & np.uint64(1)).astype(np.uint64)
    tables = f.next_table(pointers[used.astype(np.intp)])
    slot: U64 = (tables[:, None] + np.arange(n, dtype=np.uint64)[None, :] * np.uint64(8)).reshape(-1)
    return pmds, used, slot


def _columns(words: U64, base: int, va0: int, used: U64, slot: U64, f: RawFormat) -> dict[str, U64]:
    """Gather the entries at `slot` (the leaf tables of the leaf-table pointers `used`) and write the walk's
    columns (va, pa, size, flags, depth, raw, slot) for the present ones."""
    leaf = f.leaf_depth
    raw = _word(words, base, slot)
    present = (raw & np.uint64(1)) != 0
    raw, slot = raw[present], slot[present]
    page, top_span = 1 << f.shifts[leaf], 1 << f.shifts[leaf - 2]
    block = np.uint64(va0 & ~(top_span - 1)) + (used << np.uint64(f.shifts[leaf - 1]))
    va = (np.repeat(block, f.entries(leaf))[present]
          + ((slot & np.uint64(f.table_size(leaf) - 1)) >> np.uint64(3) << np.uint64(f.shifts[leaf])))
    return {"va": va, "pa": f.next_table(raw), "size": np.full(raw.shape, page, dtype=np.uint64),
            "flags": f.flags(raw), "depth": np.full(raw.shape, leaf, dtype=np.int8), "raw": raw, "slot": slot}


def walk_leaves(words: U64, base: int, root: int, va0: int, gigs: int = 1, f: RawFormat = SV39) -> dict[str, U64]:
    """Follow the `gigs` entries from `va0`'s above the tables of leaf-table pointers (`_leaf_slots`), gather
    every leaf table they point at, and write the columns a walk returns (va, pa, size, flags, depth, raw,
    slot) for the present entries."""
    _, used, slot = _leaf_slots(words, base, root, va0, gigs, f)
    return _columns(words, base, va0, used, slot, f)


def unmap_4k(words: U64, base: int, root: int, va0: int, f: RawFormat = SV39) -> dict[str, U64]:
    """Unmap the leaves under `va0`'s table of leaf-table pointers: gather them into the walk's columns (the
    library returns what it removed), then scatter zeros into their slots, clear the pointers to their
    tables, the entry pointing at that table and (x86, AArch64 4KB) the entries above it (the library clears
    each when the tables below empty; the memory then ends as the library leaves it). No table is freed and
    nothing else is written."""
    pmds, used, slot = _leaf_slots(words, base, root, va0, 1, f)
    cols = _columns(words, base, va0, used, slot, f)
    words[((cols["slot"] - np.uint64(base)) >> np.uint64(3)).astype(np.intp)] = 0
    words[(int(pmds[0]) - base) // 8 + used.astype(np.intp)] = 0
    top = f.leaf_depth - 2
    words[(_gig_table(words, base, root, va0, f) - base) // 8 + f.index_of(va0, top)] = 0
    table = root
    for depth in range(top):                          # x86, AArch64 4KB: the entries above the emptied table
        slot_pa = table + f.index_of(va0, depth) * 8
        table = _scalar(f.next_table, int(words[(slot_pa - base) // 8]))
        words[(slot_pa - base) // 8] = 0
    return cols


def protect_4k(words: U64, base: int, root: int, va0: int, attrs: int, f: RawFormat = SV39) -> None:
    """Give the leaves under `va0`'s table of leaf-table pointers new attribute bits `attrs`: find the leaf
    slots (`_leaf_slots`), gather the entries, keep each present one's address bits with the new bits,
    scatter them back."""
    pmds, used, slot = _leaf_slots(words, base, root, va0, 1, f)
    index = ((slot - np.uint64(base)) >> np.uint64(3)).astype(np.intp)
    raw = words[index]
    present = (raw & np.uint64(1)) != 0
    words[index[present]] = (raw[present] & f.addr_bits) | np.uint64(attrs)
    if f.fit is not None:                             # x86: the table entries above take the pages' rights
        pointers = (int(pmds[0]) - base) // 8 + used.astype(np.intp)
        words[pointers] = (words[pointers] & f.addr_bits) | f.fit(words[index].reshape(-1, f.entries(f.leaf_depth)))
        _fit_path(words, base, root, va0, f)


def _fit_path(words: U64, base: int, root: int, va0: int, f: RawFormat) -> None:
    """Refit the table entries on `va0`'s path above its leaf-table pointers, bottom-up: each from its
    table's entries (`f.fit`)."""
    assert f.fit is not None
    slots, table = [], root
    for depth in range(f.leaf_depth - 1):             # the entries above the tables of leaf-table pointers
        slot = (table - base) // 8 + f.index_of(va0, depth)
        slots.append((slot, depth + 1))
        table = _scalar(f.next_table, int(words[slot]))
    for slot, below_depth in reversed(slots):
        below, n = (_scalar(f.next_table, int(words[slot])) - base) // 8, f.entries(below_depth)
        words[slot] = (words[slot] & f.addr_bits) | f.fit(words[below:below + n].reshape(1, n))[0]


Columns = dict[str, npt.NDArray[np.generic]]


def hardware_columns(words: U64, base: int, root: int, va0: int, memtype: int, f: RawFormat = SV39) -> Columns:
    """The hardware listing of the leaves under `va0`'s table of leaf-table pointers: the walk's columns
    (`walk_leaves`) and the hardware view's four u8 columns: perms from the leaf bits by `f.perms`, which
    holds for this table's leaves (Sv39's with A and D set, x86's under table entries that grant what their
    pages need, AArch64's with AF set under table descriptors without table attributes); verdict 0 and
    verdict_stage 0, as every leaf translates some access; memtype `memtype` everywhere (no PBMT, x86's PAT
    index 0, or AArch64's AttrIndx 0)."""
    leaves = walk_leaves(words, base, root, va0, 1, f)
    n = leaves["raw"].shape[0]
    return {**leaves, "perms": f.perms(leaves["raw"]), "verdict": np.zeros(n, dtype=np.uint8),
            "verdict_stage": np.zeros(n, dtype=np.uint8), "memtype": np.full(n, memtype, dtype=np.uint8)}


def listing(words: U64, base: int, root: int, va0: int, memtype: int,
            f: RawFormat = SV39) -> tuple[Columns, npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """`hardware_columns` and their ptdump runs: a leaf joins the previous one when VA and PA both continue
    it (np.diff) and its attribute bits (all but the address) and perms are equal; the run starts are
    np.flatnonzero of the breaks."""
    cols = hardware_columns(words, base, root, va0, memtype, f)
    raw, perms = cast(U64, cols["raw"]), cols["perms"]
    size = np.uint64(1 << f.shifts[-1])
    attrs = raw & ~f.addr_bits
    joins = ((np.diff(cols["va"]) == size) & (np.diff(cols["pa"]) == size)
             & (attrs[1:] == attrs[:-1]) & (perms[1:] == perms[:-1]))
    starts = np.concatenate(([0], np.flatnonzero(~joins) + 1)).astype(np.intp)
    ends = np.concatenate((starts[1:] - 1, [raw.shape[0] - 1])).astype(np.intp)
    return cols, starts, ends


def _loads(words: U64, base: int, root: int, va: U64, f: RawFormat, load: Callable[[U64], U64]) -> U64:
    """One dependent load per level per VA, each entry address through `load` (the identity, or stage 2),
    then the PA: the leaf's page with the VA's offset in it."""
    table = np.full(va.shape, root, dtype=np.uint64)
    for depth in range(len(f.shifts)):
        table = f.next_table(_word(words, base, load(table + f.index(va, depth) * np.uint64(8))))
    out: U64 = table | (va & np.uint64((1 << f.shifts[-1]) - 1))
    return out


def translate(words: U64, base: int, root: int, va: U64, f: RawFormat = SV39) -> tuple[U64, npt.NDArray[np.uint8]]:
    """One dependent load per level per VA (Sv39's three by default; 4-level paging's four with `X86`),
    then the PA and a reason column."""
    return _loads(words, base, root, va, f, lambda pa: pa), np.zeros(va.shape, dtype=np.uint8)


def translate_two_stage(words: U64, base: int, vs_root: int, g_root: int, va: U64, f1: RawFormat = SV39,
                        f2: RawFormat = SV39X4) -> tuple[U64, npt.NDArray[np.uint8]]:
    """A stage 1 table (`f1`, Sv39 by default) over a stage 2 one (`f2`, Sv39x4): each stage 1 entry address
    and the final IPA through stage 2's loads, then the stage 1 entry itself (Sv39 over Sv39x4: 15 dependent
    loads per VA)."""
    def stage2(gpa: U64) -> U64:
        return _loads(words, base, g_root, gpa, f2, lambda pa: pa)
    return stage2(_loads(words, base, vs_root, va, f1, stage2)), np.zeros(va.shape, dtype=np.uint8)


def vectors(base: int, size: int, index: npt.NDArray[np.intp], values: U64, root: int, starts: U64, spans: U64,
            n: int, seed: int) -> tuple[U64, dict[str, npt.NDArray[np.generic]]]:
    """What a vector set of an Sv39 table cannot avoid: write its image, draw its cases and their answers.
    - the image: `size` bytes of RAM at `base`, every u64 tagged with its PA << 16 (written once), then the
      table scatter: the table words `values` at word `index` (the generator's entries, given);
    - the cases: `n` draws (numpy, from `seed`) of a target (its VA range `starts`/`spans`, given), an
      access and a privilege, and a VA that is a random multiple of 8 in the target;
    - their answers (`vector_walk`), and the syndrome columns a case records: scause (the page-fault code of
      its access) and stval (its VA) where it faults.
    Returns the image's words and the columns."""
    words = (np.uint64(base) + np.arange(size // 8, dtype=np.uint64) * np.uint64(8)) << np.uint64(16)
    words[index] = values
    rng = np.random.default_rng(seed)
    target, access, privilege = rng.integers(0, len(starts), n), rng.integers(0, 3, n), rng.integers(0, 2, n)
    eighths = (spans // np.uint64(8)).astype(np.int64)                   # the multiples of 8 in each target
    va = starts[target] + rng.integers(0, eighths[target]).astype(np.uint64) * np.uint64(8)
    cols = vector_walk(words, base, size, root, va)
    fault = cols["ok"] == 0
    cols.update(va=va, access=access, privilege=privilege,
                scause=np.where(fault, np.array([13, 15, 12], dtype=np.uint64)[access], np.uint64(0)),
                stval=np.where(fault, va, np.uint64(0)))
    return words, cols


def vector_walk(words: U64, base: int, size: int, root: int, va: U64) -> dict[str, npt.NDArray[np.generic]]:
    """The translation of vector cases (`vectors`): up to 3 dependent loads each, from `root`, stopping at a
    leaf (V=1 with R or X: its PA is the leaf's page plus the VA's offset in it) or an invalid entry (V=0);
    a load outside the image reads nothing. Permissions and the other fault rules are arithmetic on the
    loaded entries and are not judged here. The columns: pa, level (the manual's level where the walk
    stopped) and ok (a leaf was found)."""
    n = va.shape[0]
    table = np.full(n, root, dtype=np.uint64)
    pa = np.zeros(n, dtype=np.uint64)
    level = np.zeros(n, dtype=np.uint8)
    ok = np.zeros(n, dtype=bool)
    live = np.ones(n, dtype=bool)
    for depth, shift in enumerate((30, 21, 12)):
        off = table + ((va >> np.uint64(shift)) & np.uint64(511)) * np.uint64(8) - np.uint64(base)
        inside = live & (off < np.uint64(size))
        entry = np.where(inside, words[np.where(inside, off >> np.uint64(3), 0).astype(np.intp)], 0)
        valid = (entry & np.uint64(1)) != 0
        leaf = valid & ((entry & np.uint64(0b1010)) != 0)
        mask = np.uint64((1 << shift) - 1)
        pa = np.where(leaf, (_next(entry) & ~mask) | (va & mask), pa)
        level[live] = 2 - depth
        ok |= leaf
        live = valid & ~leaf
        table = _next(entry)
    return {"pa": pa, "level": level, "ok": ok}
