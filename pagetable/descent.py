"""Level-by-level descent of a table tree that reads each distinct table once, whatever the tables contain.

Both views of a tree go through it: `PageTable.walk` (the software view: what the entry codec says) and
`Walker.mappings` (the hardware view: what the architecture's walk rules say). Per level, the descent reads
every entry of every table it has reached (vectorised), yields the entries, and goes down into the tables
the caller names with `descend`. A table it has already read is not read again: a pointer back to a table
on the way down (a loop), a table used at two levels, or a table shared by several entries of one level is
followed once, at its first (lowest-VA) reference, and reported in `problems`. So the work and the memory
are bounded by the number of distinct tables times their entries: a self-referencing root is one table,
not 512**levels of them.

Tables are read through a `TableReader`: from physical memory (`physical_reader`), or through stage 2
when a stage-1 table lives in guest-physical memory (`Walker.mappings`). A table the reader cannot read
(outside RAM, or a stage-2 fault) is not followed; the reader says why and the descent reports it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from . import args
from .format import PagingFormat
from .physmem import PhysMem

U64 = npt.NDArray[np.uint64]
Bool = npt.NDArray[np.bool_]


class TableReader(Protocol):
    def __call__(self, tables: U64, count: int) -> tuple[Bool, U64, list[str]]:
        """For tables at these addresses with `count` entries each: which can be read, the entries of the
        readable ones (row-major, `count` per table), and for each unreadable one why not."""
        ...


def physical_reader(mem: PhysMem, entry_size: int) -> TableReader:
    """Read tables from physical memory; a table not wholly inside RAM is unreadable."""
    def read(tables: U64, count: int) -> tuple[Bool, U64, list[str]]:
        ok = mem.contains_np(tables, count * entry_size)
        slots = (tables[ok][:, None] + np.arange(count, dtype=np.uint64)[None, :] * np.uint64(entry_size))
        why = [f"at {int(t):#x}, outside RAM" for t in tables[~ok]]
        return ok, mem.read_u64_np(slots.reshape(-1)), why
    return read


@dataclass(frozen=True)
class Entries:
    """The non-zero entries of one level that overlap the descent's VA range."""

    depth: int
    slot: U64          # where each entry is (the address space the tables live in)
    va: U64            # the sign-extended VA of the first byte each entry maps
    raw: U64


class Descent:
    """Iterate over the levels of the tree rooted at `root` (entries overlapping [start, end)); after each
    level, `descend(mask, tables)` names the entries that point at next-level tables."""

    def __init__(self, fmt: PagingFormat, root: int, read: TableReader, start: int | None = None,
                 end: int | None = None) -> None:
        self.fmt = fmt
        self.read = read
        self.lo = 0 if start is None else args.address(start, "walk start")
        self.hi = args.ADDR_LIMIT if end is None else args.size(end, "walk end")
        self.problems: list[str] = []
        self._tables = np.array([root], dtype=np.uint64)
        self._bases = np.array([0], dtype=np.uint64)        # truncated VA of each table's first entry
        self._seen: dict[int, tuple[int, int]] = {root: (0, -1)}   # table -> (depth, parent table)
        self._pending: tuple[Entries, U64, U64] | None = None    # the level yielded: entries, bases, parents

    def __iter__(self) -> Iterator[Entries]:
        fmt = self.fmt
        for depth, lv in enumerate(fmt.levels):
            if self._tables.size == 0 or self.lo >= self.hi:
                return
            ok, raw, why = self.read(self._tables, lv.entries)
            for base, reason in zip(self._bases[~ok].tolist(), why, strict=True):
                self.problems.append(f"the level-{lv.arch_level} table for VA {fmt.extend(base):#x} is "
                                     f"{reason}: not walked")
            tables, bases = self._tables[ok], self._bases[ok]
            offs = np.arange(lv.entries, dtype=np.uint64)
            slots = (tables[:, None] + offs[None, :] * np.uint64(fmt.entry_size)).reshape(-1)
            vas_t = (bases[:, None] + (offs[None, :] << np.uint64(lv.index_lsb))).reshape(-1)
            vas = fmt.extend_np(vas_t)
            keep = (raw != 0) & (vas + np.uint64(lv.span - 1) >= np.uint64(self.lo))
            if self.hi < args.ADDR_LIMIT:
                keep &= vas < np.uint64(self.hi)
            entries = Entries(depth, slots[keep], vas[keep], raw[keep])
            self._tables = np.zeros(0, dtype=np.uint64)
            self._pending = entries, vas_t[keep], np.repeat(tables, lv.entries)[keep]
            yield entries

    def descend(self, mask: Bool, tables: U64) -> None:
        """The entries of the level just yielded that point at tables (`mask`), and those tables' addresses
        (one per true lane). Tables already read are reported, not read again."""
        assert self._pending is not None, "descend() belongs after a level was yielded"
        entries, bases, parents = self._pending
        self._pending = None
        depth = entries.depth + 1
        tables = args.u64_array(tables, "table addresses").reshape(-1)
        if not tables.size:
            return
        slots, bases, parents = entries.slot[mask], bases[mask], parents[mask]
        by_table = np.argsort(tables, kind="stable")      # references grouped by table, in VA order
        uniq, start, counts = np.unique(tables[by_table], return_index=True, return_counts=True)
        first = by_table[start]                           # each table's first (lowest-VA) reference
        order = np.argsort(first)
        uniq, start, counts, first = uniq[order], start[order], counts[order], first[order]
        again = np.isin(uniq, np.fromiter(self._seen, dtype=np.uint64, count=len(self._seen)))
        for t, i, n in zip(uniq[again].tolist(), first[again].tolist(), counts[again].tolist(), strict=True):
            self._reached_again(t, depth, int(slots[i]), int(bases[i]), int(parents[i]), n)
        shared = ~again & (counts > 1)
        for t, k, n in zip(uniq[shared].tolist(), start[shared].tolist(), counts[shared].tolist(), strict=True):
            vas = ", ".join(f"{self.fmt.extend(int(b)):#x}" for b in bases[by_table[k:k + min(n, 4)]])
            self.problems.append(f"the level-{self.fmt.levels[depth].arch_level} table {t:#x} is shared by {n} "
                                 f"entries (VAs {vas}{', ...' if n > 4 else ''}): its entries are listed "
                                 "once, under the first")
        new = ~again
        for t, i in zip(uniq[new].tolist(), first[new].tolist(), strict=True):
            self._seen[t] = (depth, int(parents[i]))
        self._tables = uniq[new]
        self._bases = bases[first[new]]

    def _reached_again(self, table: int, depth: int, slot: int, base: int, parent: int, count: int) -> None:
        first_depth, _ = self._seen[table]
        level = self.fmt.levels[depth].arch_level
        ancestor, at = False, parent
        while at >= 0:                                  # is `table` on the way down to the referring entry?
            if at == table:
                ancestor = True
                break
            at = self._seen[at][1]
        what = ("a loop: it points back at a table on its own path" if ancestor else
                f"the table is also used at level {self.fmt.levels[first_depth].arch_level}")
        more = f" (and {count - 1} more entries)" if count > 1 else ""
        self.problems.append(f"the entry at {slot:#x}{more} makes table {table:#x} the level-{level} table "
                             f"for VA {self.fmt.extend(base):#x}; {what}: not walked again")
