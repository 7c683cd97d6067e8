"""Level-by-level descent of a table tree that reads each distinct table once, whatever the tables contain.

Both views of a tree go through it: `PageTable.walk` (the software view: what the entry codec says) and
`Walker.mappings` (the hardware view: what the architecture's walk rules say). Per level, the descent reads
every entry of every table it has reached (vectorised), yields the entries, and goes down into the tables
the caller names with `descend`. A table it has already reached is not read again: a pointer back to a
table on the way down (a loop), a table used at two levels, or a table shared by several entries of one
level is followed once, at its first (lowest-VA) reference, and reported in `problems`. Tables are told
apart by where their bytes are (`TableReader.locate`): for a stage-1 table of a two-stage walk that is the
host-physical address stage 2 gives, so guest-physical aliases of one host page are one table. The work
and the memory are bounded by the number of distinct tables times their entries: a self-referencing root
is one table, not 512**levels of them.

A `TableReader` locates and reads tables: in physical memory (`PhysicalReader`), or through stage 2 when
a stage-1 table lives in guest-physical memory (`Walker.mappings`). A table the reader cannot read
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
from .translation import PERMS

U64 = npt.NDArray[np.uint64]
Bool = npt.NDArray[np.bool_]


def table_slots(tables: U64, count: int, entry_size: int) -> U64:
    """The addresses of the `count` entries of each table, row-major."""
    offsets = np.arange(count, dtype=np.uint64) * np.uint64(entry_size)
    out: U64 = (tables[:, None] + offsets[None, :]).reshape(-1)
    return out


def read_tables(mem: PhysMem, tables: U64, count: int) -> U64:
    """The `count` u64 entries of each table (each wholly inside RAM), row-major. Tables that follow each
    other in one region, as an allocator hands them out, are read as one view (`PhysMem.words`), so the
    cost is per run of adjacent tables, not per entry."""
    size = count * 8
    region = np.searchsorted(np.array([r.base for r in mem.regions], dtype=np.uint64), tables, side="right")
    joined = (np.diff(tables) == np.uint64(size)) & (np.diff(region) == 0)    # continues the run before it
    runs = np.split(tables, np.flatnonzero(~joined) + 1) if tables.size else []
    return np.concatenate([mem.words(int(run[0]), run.size * count) for run in runs] or [np.zeros(0, np.uint64)])


class TableReader(Protocol):
    """How a descent finds and reads tables of `count` entries at addresses `tables`."""

    def locate(self, tables: U64, count: int) -> tuple[Bool, U64, list[str]]:
        """Which tables can be reached, where their bytes are (one address per reachable table: tables at
        the same place are the same table), and for each unreachable one why not."""
        ...

    def read(self, tables: U64, where: U64, slots: U64, count: int) -> tuple[Bool, U64, list[str]]:
        """Which of these located tables (at `where`; their entries' addresses are `slots`) can be read, the
        entries of the readable ones (row-major, `count` per table), and for each unreadable one why not."""
        ...


@dataclass(frozen=True)
class PhysicalReader:
    """Tables in physical memory: a table is where its address says, readable when wholly in RAM."""

    mem: PhysMem
    entry_size: int

    def locate(self, tables: U64, count: int) -> tuple[Bool, U64, list[str]]:
        ok = self.mem.contains_np(tables, count * self.entry_size)
        return ok, tables[ok], [f"at {int(t):#x}, outside RAM" for t in tables[~ok]]

    def read(self, tables: U64, where: U64, slots: U64, count: int) -> tuple[Bool, U64, list[str]]:
        assert self.entry_size == 8, "PhysicalReader reads u64 entries"
        return np.ones(tables.shape, dtype=bool), read_tables(self.mem, tables, count), []


@dataclass(frozen=True)
class Entries:
    """The non-zero entries of one level that overlap the descent's VA range."""

    depth: int
    slot: U64          # where each entry is (the address space the tables live in)
    va: U64            # the sign-extended VA of the first byte each entry maps
    raw: U64
    carry: U64         # the state the walk brings to each entry's table (`descend`; the root's: PERMS); a
                       # read-only broadcast view where it is one value

    def select(self, mask: Bool) -> Entries:
        """The entries where `mask` is true (these very entries, nothing copied, where it is true everywhere)."""
        if mask.all():
            return self
        return Entries(self.depth, self.slot[mask], self.va[mask], self.raw[mask], self.carry[mask])


class Descent:
    """Iterate over the levels of the tree rooted at `root` (entries overlapping [start, end)); after each
    level, `descend(mask, tables, carry)` names the entries that point at next-level tables (and the state
    each brings down: a walk's carry, `WalkRules.step`; the entries of a table get its first reference's)."""

    def __init__(self, fmt: PagingFormat, root: int, reader: TableReader, start: int | None = None,
                 end: int | None = None) -> None:
        self.fmt = fmt
        self.reader = reader
        self.lo = 0 if start is None else args.address(start, "walk start")
        self.hi = args.ADDR_LIMIT if end is None else args.size(end, "walk end")
        self.problems: list[str] = []
        self._seen: dict[int, tuple[int, int]] = {}    # where a table is -> (depth, where its parent is)
        self._pending: Entries | None = None
        self._read_where = np.zeros(0, dtype=np.uint64)   # where each table of the level just read is ...
        self._kept = np.zeros(0, dtype=bool)              # ... and which of its entries were yielded
        ok, where, why = reader.locate(np.array([root], dtype=np.uint64), fmt.levels[0].entries)
        self._tables = np.array([root], dtype=np.uint64)[ok]
        self._bases = np.zeros(self._tables.shape, dtype=np.uint64)   # VA of each table's entry 0 (extended)
        self._carry = np.full(self._tables.shape, PERMS)              # the state each table's entries get
        self._where = where
        if ok[0]:
            self._seen[int(where[0])] = (0, -1)
        else:
            self._unreadable(0, 0, why[0])

    def _unreadable(self, depth: int, base: int, reason: str) -> None:
        self.problems.append(f"the level-{self.fmt.levels[depth].arch_level} table for VA "
                             f"{self.fmt.extend(base):#x} is {reason}: not walked")

    def __iter__(self) -> Iterator[Entries]:
        fmt = self.fmt
        for depth, lv in enumerate(fmt.levels):
            if self._tables.size == 0 or self.lo >= self.hi:
                return
            slots = table_slots(self._tables, lv.entries, fmt.entry_size)
            ok, raw, why = self.reader.read(self._tables, self._where, slots, lv.entries)
            for base, reason in zip(self._bases[~ok].tolist(), why, strict=True):
                self._unreadable(depth, base, reason)
            if not ok.all():
                slots = slots.reshape(-1, lv.entries)[ok].reshape(-1)
            # an entry's VA is its table's plus its offset; a table below the root lies within one root
            # entry, so only the root's entries differ in the bits above the VA width
            offsets = np.arange(lv.entries, dtype=np.uint64) << np.uint64(lv.index_lsb)
            vas = (self._bases[ok][:, None] + offsets[None, :]).reshape(-1)
            if depth == 0:
                vas = fmt.extend_np(vas)
            keep = raw != 0
            if self.lo > 0:                             # from the entry holding `lo` on
                keep &= vas >= np.uint64(self.lo & ~(lv.span - 1))
            if self.hi < args.ADDR_LIMIT:
                keep &= vas < np.uint64(self.hi)
            self._read_where, self._kept = self._where[ok], keep
            carry = self._carry[ok]                     # each table's, for its entries (a read-only view
            carry = np.broadcast_to(carry[:1], (raw.size,)) if carry.size and (carry == carry[0]).all() \
                else np.repeat(carry, lv.entries)       # where every table brings the same: a walk's usual)
            self._pending = entries = Entries(depth, slots, vas, raw, carry).select(keep)
            self._tables = np.zeros(0, dtype=np.uint64)
            yield entries

    def descend(self, mask: Bool, tables: U64, carry: U64 | None = None) -> None:
        """The entries of the level just yielded that point at tables (`mask`), those tables' addresses and
        the state each brings down (one per true lane; default: the state the entry itself got). Tables
        already reached are reported, not read again."""
        entries, self._pending = self._pending, None
        assert entries is not None, "descend() belongs after a level was yielded"
        depth = entries.depth + 1
        if depth == self.fmt.depth_count or not np.any(mask):
            return
        lv = self.fmt.levels[depth]
        slots, bases = entries.slot[mask], entries.va[mask]
        carry = entries.carry[mask] if carry is None else carry
        row = np.flatnonzero(self._kept)[mask] // self.fmt.levels[entries.depth].entries
        parents = self._read_where[row]                  # where the table of each entry is
        distinct, first, inverse, refs = np.unique(tables, return_index=True, return_inverse=True,
                                                   return_counts=True)
        ok, found, why = self.reader.locate(distinct, lv.entries)      # each distinct table once
        for k, reason in zip(np.flatnonzero(~ok).tolist(), why, strict=True):
            more = f" ({int(refs[k])} entries point at it)" if refs[k] > 1 else ""
            self._unreadable(depth, int(bases[first[k]]), reason + more)
        where = np.zeros(distinct.shape, dtype=np.uint64)
        where[ok] = found
        ok, where = ok[inverse.reshape(-1)], where[inverse.reshape(-1)]
        tables, slots, bases, parents, where = tables[ok], slots[ok], bases[ok], parents[ok], where[ok]
        carry = carry[ok]
        if not tables.size:
            return
        by_place = np.argsort(where, kind="stable")      # references grouped by table, in VA order
        uniq, start, counts = np.unique(where[by_place], return_index=True, return_counts=True)
        first = by_place[start]                          # each table's first (lowest-VA) reference
        order = np.argsort(first)
        uniq, start, counts, first = uniq[order], start[order], counts[order], first[order]
        again = np.array([w in self._seen for w in uniq.tolist()], dtype=bool)   # one test per distinct table
        for w, i, n in zip(uniq[again].tolist(), first[again].tolist(), counts[again].tolist(), strict=True):
            self._reached_again(w, int(tables[i]), depth, int(slots[i]), int(bases[i]), int(parents[i]), n)
        shared = ~again & (counts > 1)
        for i, k, n in zip(first[shared].tolist(), start[shared].tolist(), counts[shared].tolist(), strict=True):
            vas = ", ".join(f"{self.fmt.extend(int(b)):#x}" for b in bases[by_place[k:k + min(n, 4)]])
            self.problems.append(f"the level-{lv.arch_level} table {int(tables[i]):#x} is shared by {n} entries "
                                 f"(VAs {vas}{', ...' if n > 4 else ''}): its entries are listed once, under "
                                 "the first")
        new = first[~again]
        for w, p in zip(uniq[~again].tolist(), parents[new].tolist(), strict=True):
            self._seen[w] = (depth, p)
        self._tables, self._bases, self._where, self._carry = tables[new], bases[new], uniq[~again], carry[new]

    def _reached_again(self, where: int, table: int, depth: int, slot: int, base: int, parent: int,
                       count: int) -> None:
        first_depth, _ = self._seen[where]
        level = self.fmt.levels[depth].arch_level
        ancestor, at = False, parent
        while at >= 0:                                  # is the table on the way down to the referring entry?
            if at == where:
                ancestor = True
                break
            at = self._seen[at][1]
        what = ("a loop: it points back at a table on its own path" if ancestor else
                f"the table is also used at level {self.fmt.levels[first_depth].arch_level}")
        more = f" (and {count - 1} more entries)" if count > 1 else ""
        self.problems.append(f"the entry at {slot:#x}{more} makes table {table:#x} the level-{level} table "
                             f"for VA {self.fmt.extend(base):#x}; {what}: not walked again")
