"""The raw numpy work each benchmark cannot avoid, written with plain numpy and no library code (issue 11:
every bulk path is measured beside it in the same run).

Each function gets the same memory (one uint64 array per RAM region, as `PhysMem` holds it) and does only
what the operation must: scatter or gather the entries it touches and write the output columns it must
produce. RISC-V Sv39/Sv39x4 PTEs: V=bit 0, R/W/X/U bits 1-4, A/D bits 6-7, PPN bits 53:10.
"""

from __future__ import annotations

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
    """Map `pages` 4 KiB pages at `va0` -> `pa0` (Sv39): each leaf entry scattered to its slot (table of its
    2 MiB block, index of its 4 KiB page) in leaf tables at `leaf_tables`, a pointer per leaf table in a
    level-1 table after them, one root pointer."""
    n_tables = pages // 512
    pmd = leaf_tables + n_tables * 4096
    va = np.uint64(va0) + np.arange(pages, dtype=np.uint64) * np.uint64(4096)
    table = np.uint64(leaf_tables) + ((va - np.uint64(va0)) >> np.uint64(21)) * np.uint64(4096)
    slot = table + ((va >> TWELVE) & np.uint64(511)) * np.uint64(8)
    leaf = ((np.uint64(pa0) + (va - np.uint64(va0))) >> TWELVE << TEN) | np.uint64(attrs)
    words[((slot - np.uint64(base)) >> np.uint64(3)).astype(np.intp)] = leaf
    tables = np.uint64(leaf_tables) + np.arange(n_tables, dtype=np.uint64) * np.uint64(4096)
    pmd_slots = np.uint64(pmd) + ((np.uint64(va0) >> np.uint64(21)) + np.arange(n_tables, dtype=np.uint64)
                                  & np.uint64(511)) * np.uint64(8)
    words[((pmd_slots - np.uint64(base)) >> np.uint64(3)).astype(np.intp)] = (tables >> TWELVE << TEN) | np.uint64(1)
    words[(root - base) // 8 + (va0 >> 30) % 512] = (pmd >> 12) << 10 | 1


def walk_leaves(words: U64, base: int, root: int, va0: int) -> dict[str, U64]:
    """Follow the root entry of `va0` to its level-1 table, gather every leaf table it points at, and write
    the columns a walk returns (va, pa, size, flags, depth, raw, slot) for the present entries."""
    pmd = _next(_word(words, base, np.array([root + ((va0 >> 30) & 511) * 8], dtype=np.uint64)))[0]
    pointers = _word(words, base, pmd + np.arange(512, dtype=np.uint64) * np.uint64(8))
    used = np.flatnonzero(pointers & np.uint64(1))
    tables = _next(pointers[used])
    slot = (tables[:, None] + np.arange(512, dtype=np.uint64)[None, :] * np.uint64(8)).reshape(-1)
    raw = _word(words, base, slot)
    present = (raw & np.uint64(1)) != 0
    raw, slot = raw[present], slot[present]
    block = np.uint64(va0 & ~((1 << 30) - 1)) + (used.astype(np.uint64) << np.uint64(21))
    va = (np.repeat(block, 512)[present] + ((slot & np.uint64(0xFFF)) >> np.uint64(3) << TWELVE))
    return {"va": va, "pa": _next(raw), "size": np.full(raw.shape, 4096, dtype=np.uint64),
            "flags": (raw >> np.uint64(1)) & np.uint64(0xF), "depth": np.full(raw.shape, 2, dtype=np.int8),
            "raw": raw, "slot": slot}


def translate(words: U64, base: int, root: int, va: U64) -> tuple[U64, npt.NDArray[np.uint8]]:
    """Three dependent loads per VA (Sv39), then the PA and a reason column."""
    table = np.full(va.shape, root, dtype=np.uint64)
    for shift in (30, 21, 12):
        entry = _word(words, base, table + ((va >> np.uint64(shift)) & np.uint64(511)) * np.uint64(8))
        table = _next(entry)
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
