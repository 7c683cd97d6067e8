"""The raw numpy work each benchmark cannot avoid, written with plain numpy and no library code (issue 11:
every bulk path is measured beside it in the same run).

Each function gets the same memory (one uint64 array per RAM region, as `PhysMem` holds it) and does only
what the operation must: scatter or gather the entries it touches and write the output columns it must
produce. RISC-V Sv39/Sv39x4 PTEs: V=bit 0, R/W/X/U bits 1-4, A/D bits 6-7, PPN bits 53:10.
"""

from __future__ import annotations

from collections.abc import Callable

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


def map_4k(words: U64, base: int, root: int, va0: int, pa0: int, pages: int, leaf_tables: int,
           attrs: int) -> None:
    """Map `pages` 4 KiB pages at `va0` -> `pa0` (Sv39; `va0` 1 GiB-aligned, `pages` a multiple of 512): each
    leaf entry scattered to its slot (table of its 2 MiB block, index of its 4 KiB page) in leaf tables at
    `leaf_tables`, a pointer per leaf table in the level-1 tables after them (one per GiB), a root pointer
    per level-1 table."""
    assert va0 % (1 << 30) == 0 and pages % 512 == 0, "map_4k maps whole 2 MiB blocks from a 1 GiB boundary"
    n_tables = pages // 512
    pmd = leaf_tables + n_tables * 4096
    va = np.uint64(va0) + np.arange(pages, dtype=np.uint64) * np.uint64(4096)
    table = np.uint64(leaf_tables) + ((va - np.uint64(va0)) >> np.uint64(21)) * np.uint64(4096)
    slot = table + ((va >> TWELVE) & np.uint64(511)) * np.uint64(8)
    leaf = ((np.uint64(pa0) + (va - np.uint64(va0))) >> TWELVE << TEN) | np.uint64(attrs)
    words[((slot - np.uint64(base)) >> np.uint64(3)).astype(np.intp)] = leaf
    tables = np.uint64(leaf_tables) + np.arange(n_tables, dtype=np.uint64) * np.uint64(4096)
    words[(pmd - base) // 8:(pmd - base) // 8 + n_tables] = (tables >> TWELVE << TEN) | np.uint64(1)
    for g in range(-(-n_tables // 512)):
        words[(root - base) // 8 + ((va0 >> 30) + g) % 512] = ((pmd + g * 4096) >> 12) << 10 | 1


def _leaf_slots(words: U64, base: int, root: int, va0: int, gigs: int) -> tuple[U64, U64, U64]:
    """Follow the root entries of the `gigs` GiB from `va0` (1 GiB-aligned) to their level-1 tables and read
    their 512 pointers each: the level-1 tables' addresses, the indices of the present pointers (512 per
    GiB), and the slots of every entry of the leaf tables they point at (512 per table, in VA order). Reads
    the root entries and the pointers, writes the slot column."""
    index = ((va0 >> 30) + np.arange(gigs, dtype=np.uint64)) % np.uint64(512)
    pmds = _next(_word(words, base, np.uint64(root) + index * np.uint64(8)))
    pointers = _word(words, base, (pmds[:, None] + np.arange(512, dtype=np.uint64)[None, :] * np.uint64(8)).reshape(-1))
    used = np.flatnonzero(pointers & np.uint64(1)).astype(np.uint64)
    tables = _next(pointers[used.astype(np.intp)])
    slot: U64 = (tables[:, None] + np.arange(512, dtype=np.uint64)[None, :] * np.uint64(8)).reshape(-1)
    return pmds, used, slot


def _columns(words: U64, base: int, va0: int, used: U64, slot: U64) -> dict[str, U64]:
    """Gather the entries at `slot` (the leaf tables of the level-1 pointers `used`) and write the walk's
    columns (va, pa, size, flags, depth, raw, slot) for the present ones."""
    raw = _word(words, base, slot)
    present = (raw & np.uint64(1)) != 0
    raw, slot = raw[present], slot[present]
    block = np.uint64(va0 & ~((1 << 30) - 1)) + (used << np.uint64(21))
    va = (np.repeat(block, 512)[present] + ((slot & np.uint64(0xFFF)) >> np.uint64(3) << TWELVE))
    return {"va": va, "pa": _next(raw), "size": np.full(raw.shape, 4096, dtype=np.uint64),
            "flags": (raw >> np.uint64(1)) & np.uint64(0xF), "depth": np.full(raw.shape, 2, dtype=np.int8),
            "raw": raw, "slot": slot}


def walk_leaves(words: U64, base: int, root: int, va0: int, gigs: int = 1) -> dict[str, U64]:
    """Follow the root entries of the `gigs` GiB from `va0` to their level-1 tables, gather every leaf table
    they point at, and write the columns a walk returns (va, pa, size, flags, depth, raw, slot) for the
    present entries."""
    _, used, slot = _leaf_slots(words, base, root, va0, gigs)
    return _columns(words, base, va0, used, slot)


def unmap_4k(words: U64, base: int, root: int, va0: int) -> dict[str, U64]:
    """Unmap the 1 GiB block of 4 KiB leaves at `va0` (Sv39): gather the leaves into the walk's columns (the
    library returns what it removed), then scatter zeros into their slots, clear the 512 level-1 pointers
    and the root pointer (the library clears both when the tables empty; the memory then ends as the
    library leaves it). No table is freed and nothing else is written."""
    pmds, used, slot = _leaf_slots(words, base, root, va0, 1)
    cols = _columns(words, base, va0, used, slot)
    words[((cols["slot"] - np.uint64(base)) >> np.uint64(3)).astype(np.intp)] = 0
    pmd = int(pmds[0])
    words[(pmd - base) // 8:(pmd - base) // 8 + 512] = 0
    words[(root - base) // 8 + (va0 >> 30) % 512] = 0
    return cols


def protect_4k(words: U64, base: int, root: int, va0: int, attrs: int) -> None:
    """Give the 1 GiB block of 4 KiB leaves at `va0` new attribute bits `attrs` (Sv39): find the leaf slots
    (`_leaf_slots`), gather the entries, keep each present one's PPN with the new bits, scatter them back."""
    _, _, slot = _leaf_slots(words, base, root, va0, 1)
    index = ((slot - np.uint64(base)) >> np.uint64(3)).astype(np.intp)
    raw = words[index]
    present = (raw & np.uint64(1)) != 0
    words[index[present]] = (raw[present] & PPN_MASK) | np.uint64(attrs)


# Effective permissions (bit 3 * privilege + access: supervisor r w x in bits 0-2, user in bits 3-5) of a
# valid leaf with A and D set, indexed by its R W X U bits (PTE bits 1-4), with SUM=0 and MXR=0: the
# supervisor gets R/W/X of a page without U, the user of a page with U. (W without R is reserved: such a
# leaf faults for every access, so it gets no permissions.)
PERMS_OF_RWXU = np.array([0 if (f & 3) == 2 else (f & 7) << (3 if f & 8 else 0) for f in range(16)], dtype=np.uint8)


def listing(words: U64, base: int, root: int, va0: int, memtype: int) -> tuple[dict[str, npt.NDArray[np.generic]],
                                                                                npt.NDArray[np.intp],
                                                                                npt.NDArray[np.intp]]:
    """The hardware listing of the 1 GiB block of 4 KiB leaves at `va0` and its ptdump runs: the walk's
    columns (`walk_leaves`), the hardware view's four u8 columns (perms from the leaf bits by the table
    `PERMS_OF_RWXU`, which holds for this table's leaves: A and D set; verdict 0 and verdict_stage 0, as
    every leaf translates some access; memtype `memtype` everywhere, no PBMT), then the runs: a leaf joins
    the previous one when VA and PA both continue it (np.diff) and its attribute bits (all but the PPN) and
    perms are equal; the run starts are np.flatnonzero of the breaks."""
    leaves = walk_leaves(words, base, root, va0)
    raw = leaves["raw"]
    n = raw.shape[0]
    perms = PERMS_OF_RWXU[((raw >> np.uint64(1)) & np.uint64(0xF)).astype(np.intp)]
    cols: dict[str, npt.NDArray[np.generic]] = {
        **leaves, "perms": perms, "verdict": np.zeros(n, dtype=np.uint8),
        "verdict_stage": np.zeros(n, dtype=np.uint8), "memtype": np.full(n, memtype, dtype=np.uint8)}
    size = np.uint64(4096)
    joins = ((np.diff(leaves["va"]) == size) & (np.diff(leaves["pa"]) == size)
             & ((raw[1:] & ~PPN_MASK) == (raw[:-1] & ~PPN_MASK)) & (perms[1:] == perms[:-1]))
    starts = np.concatenate(([0], np.flatnonzero(~joins) + 1)).astype(np.intp)
    ends = np.concatenate((starts[1:] - 1, [n - 1])).astype(np.intp)
    return cols, starts, ends


SV39_LEVELS = (30, 21, 12)
X86_LEVELS = (39, 30, 21, 12)                       # 4-level paging: PML4, PDPT, PD, PT
X86_ADDR = np.uint64(((1 << 52) - 1) & ~0xFFF)


def x86_next(entry: U64) -> U64:
    """The table or page an x86 entry names (its bits 51:12)."""
    out: U64 = entry & X86_ADDR
    return out


def translate(words: U64, base: int, root: int, va: U64, shifts: tuple[int, ...] = SV39_LEVELS,
              next_table: Callable[[U64], U64] = _next) -> tuple[U64, npt.NDArray[np.uint8]]:
    """One dependent load per level per VA (Sv39's three by default; 4-level paging's four with
    `X86_LEVELS` and `x86_next`), then the PA and a reason column."""
    table = np.full(va.shape, root, dtype=np.uint64)
    for shift in shifts:
        entry = _word(words, base, table + ((va >> np.uint64(shift)) & np.uint64(511)) * np.uint64(8))
        table = next_table(entry)
    return table | (va & np.uint64(0xFFF)), np.zeros(va.shape, dtype=np.uint8)


def translate_two_stage(words: U64, base: int, vs_root: int, g_root: int, va: U64) -> tuple[U64,
                                                                                             npt.NDArray[np.uint8]]:
    """Sv39 over Sv39x4: each of the three VS-stage entry addresses and the final GPA through three G-stage
    loads (the root index is 11 bits), then the VS-stage entry itself: 15 dependent loads per VA."""
    def g_stage(gpa: U64) -> U64:
        table = np.full(gpa.shape, g_root, dtype=np.uint64)
        for shift, bits in ((30, 2047), (21, 511), (12, 511)):
            table = _next(_word(words, base, table + ((gpa >> np.uint64(shift)) & np.uint64(bits)) * np.uint64(8)))
        return table | (gpa & np.uint64(0xFFF))
    table = np.full(va.shape, vs_root, dtype=np.uint64)
    for shift in (30, 21, 12):
        entry = _word(words, base, g_stage(table + ((va >> np.uint64(shift)) & np.uint64(511)) * np.uint64(8)))
        table = _next(entry)
    return g_stage(table | (va & np.uint64(0xFFF))), np.zeros(va.shape, dtype=np.uint8)


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
