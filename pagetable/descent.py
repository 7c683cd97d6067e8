"""Level-by-level descent of a table tree, bounded whatever the tables contain.

Both views of a tree go through it: `PageTable.walk` (the software view: what the entry codec says) and
`Walker.mappings` (the hardware view: what the architecture's walk rules say). Per level, the descent reads
every entry of every table it has reached (vectorised), yields the entries, and goes down into the tables
the caller names with `descend`. Tables are told apart by where their bytes are (`TableReader.locate`): for
a stage-1 table of a two-stage walk that is the host-physical address stage 2 gives, so guest-physical
aliases of one host page are one table.

A table that several entries of one level point at (a shared table: Linux's KASAN zero shadow, an alias)
is translated by the hardware under every one of them, each with the rights its own path carries (Intel
SDM vol. 3A 4.6, Arm ARM D8.4.2 hierarchical permissions, RISC-V privileged spec 12.3.2: the walk does not
know which entry led it there), so the descent reads it under each reference, with that reference's VA and
carried state, and reports the sharing. Those repeated reads are bounded: beyond the first reference of
each table, the entries read for aliases (in VA order, level by level) are at most `ALIAS_FLOOR` plus
`ALIAS_FACTOR` times the distinct tables' entries; the aliases past that are not listed, and the report
says which table's aliases those are and how much VA they cover. A pointer back to a table on the path to
the entry (a loop), or to a table first reached at another level, is not followed at all (the hardware
would read the table's entries with another level's meaning): reported. So the work and the memory are
the distinct tables' entries times 1 + `ALIAS_FACTOR`, plus `ALIAS_FLOOR`: a self-referencing root is one
table, not 512**levels of them, and a tree in which every entry of every level points at the same next
table lists what the bound allows.

Every such event is recorded twice: as a sentence in `problems`, and as a `TableEvent` in `events` (kind,
table, level, the referring entries and their VAs, which of them are listed), for tools that report on it
without parsing sentences (`pagetable check`).

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
from .flags import human_size
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


def read_tables(mem: PhysMem, tables: U64, count: int, entry_size: int = 8) -> U64:
    """The `count` entries of `entry_size` bytes of each table (each wholly inside RAM), row-major, as a u64
    column. Tables that follow each other in one region, as an allocator hands them out, are read as one view
    (`EntryMemory.words`), so the cost is per run of adjacent tables, not per entry."""
    size = count * entry_size
    words = mem.entries(entry_size).words
    region = np.searchsorted(np.array([r.base for r in mem.regions], dtype=np.uint64), tables, side="right")
    joined = (np.diff(tables) == np.uint64(size)) & (np.diff(region) == 0)    # continues the run before it
    runs = np.split(tables, np.flatnonzero(~joined) + 1) if tables.size else []
    out: U64 = np.concatenate([words(int(run[0]), run.size * count) for run in runs] or [np.zeros(0, np.uint64)],
                              dtype=np.uint64)
    return out


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
        return np.ones(tables.shape, dtype=bool), read_tables(self.mem, tables, count, self.entry_size), []


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


ALIAS_FLOOR = 1 << 16
ALIAS_FACTOR = 4
"""The bound on the entries a descent reads for the aliases of shared tables (references beyond each
table's first at a level): `ALIAS_FLOOR` plus `ALIAS_FACTOR` times the entries of the distinct tables it
reads (those of the level about to be read included). So a listing's rows and memory stay a small multiple
of the tables' own size, as for a tree without sharing, and any tree gets 65,536 alias entries (128 tables
of 512): every alias of the few tables real kernels share (PTI's and EFI's trees share whole top-level
entries across roots, not tables within one tree), and a whole 1 GiB of 4 KiB pages mapped twice, while a
hostile or KASAN-like tree (Linux's early shadow points every entry of every level at one next table:
512**4 aliases) lists what the bound allows and reports the rest."""

KINDS = ("shared", "other-level", "loop", "unreadable")


@dataclass(frozen=True, eq=False)
class TableEvent:
    """A table the descent did not walk as a plain tree: one `kind` of
    - "shared": several entries of one level point at it (listed under each, within `ALIAS_FLOOR`);
    - "other-level": it was first reached at another level (`first_level`): not walked again;
    - "loop": it is on the path to the entry that points at it: not walked again;
    - "unreadable": it is outside RAM or stage 2 does not let the walk read it (`reason`): not walked.
    `table` is its address as the entries give it, `level` the manual's level number it has here; per
    referring entry, `slots` is where the entry is (empty for an unreadable root) and `vas` the first VA it
    covers (`span` bytes each), and `listed` whether the VAs behind it are listed."""

    kind: str
    table: int
    level: int
    slots: U64
    vas: U64
    span: int
    listed: Bool
    first_level: int | None = None
    reason: str = ""

    @property
    def unlisted_bytes(self) -> int:
        """The VA bytes behind the references whose VAs are not listed."""
        return int(np.count_nonzero(~self.listed)) * self.span


class Descent:
    """Iterate over the levels of the tree rooted at `root` (entries overlapping [start, end)); after each
    level, `descend(mask, tables, carry)` names the entries that point at next-level tables (and the state
    each brings down: a walk's carry, `WalkRules.step`; a shared table's entries get each reference's)."""

    def __init__(self, fmt: PagingFormat, root: int, reader: TableReader, start: int | None = None,
                 end: int | None = None) -> None:
        self.fmt = fmt
        self.reader = reader
        self.lo = 0 if start is None else args.address(start, "walk start")
        self.hi = args.ADDR_LIMIT if end is None else args.size(end, "walk end")
        self.problems: list[str] = []
        self.events: list[TableEvent] = []
        self.distinct = fmt.levels[0].entries             # entries of distinct tables read (the root's) ...
        self.aliased = 0                                  # ... and of aliases
        self._seen: dict[int, int] = {}                   # where a table is -> the depth it was first read at
        self._pending: Entries | None = None
        self._read_path = np.zeros((0, 1), dtype=np.uint64)   # per table of the level just read: where the
        self._kept = np.zeros(0, dtype=bool)              # tables from the root to it are; which entries were yielded
        ok, where, why = reader.locate(np.array([root], dtype=np.uint64), fmt.levels[0].entries)
        self._tables = np.array([root], dtype=np.uint64)[ok]
        self._bases = np.zeros(self._tables.shape, dtype=np.uint64)   # VA of each table's entry 0 (extended)
        self._carry = np.full(self._tables.shape, PERMS)              # the state each table's entries get
        self._where = where
        self._path = where[:, None]
        if ok[0]:
            self._seen[int(where[0])] = 0
        else:
            lv = fmt.levels[0]
            self._unreadable(0, root, np.zeros(0, dtype=np.uint64), np.zeros(1, dtype=np.uint64),
                             lv.span * lv.entries, why[0])

    def _unreadable(self, depth: int, table: int, slots: U64, bases: U64, span: int, reason: str) -> None:
        more = f" ({slots.size} entries point at it)" if slots.size > 1 else ""
        self.problems.append(f"the level-{self.fmt.levels[depth].arch_level} table for VA "
                             f"{self.fmt.extend(int(bases[0])):#x} is {reason}{more}: not walked")
        self.events.append(TableEvent("unreadable", table, self.fmt.levels[depth].arch_level, slots,
                                      self._extended(bases), span, np.zeros(bases.shape, dtype=bool),
                                      reason=reason))

    def _extended(self, bases: U64) -> U64:
        return self.fmt.extend_np(bases.astype(np.uint64))

    def __iter__(self) -> Iterator[Entries]:
        fmt = self.fmt
        for depth, lv in enumerate(fmt.levels):
            if self._tables.size == 0 or self.lo >= self.hi:
                return
            slots = table_slots(self._tables, lv.entries, fmt.entry_size)
            ok, raw, why = self.reader.read(self._tables, self._where, slots, lv.entries)
            for table, base, reason in zip(self._tables[~ok].tolist(), self._bases[~ok].tolist(), why, strict=True):
                self._unreadable(depth, table, np.zeros(0, dtype=np.uint64), np.array([base], dtype=np.uint64),
                                 lv.span * lv.entries, reason)
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
            self._read_path, self._kept = self._path[ok], keep
            carry = self._carry[ok]                     # each table's, for its entries (a read-only view
            carry = np.broadcast_to(carry[:1], (raw.size,)) if carry.size and (carry == carry[0]).all() \
                else np.repeat(carry, lv.entries)       # where every table brings the same: a walk's usual)
            self._pending = entries = Entries(depth, slots, vas, raw, carry).select(keep)
            self._tables = np.zeros(0, dtype=np.uint64)
            yield entries

    def descend(self, mask: Bool, tables: U64, carry: U64 | None = None) -> None:
        """The entries of the level just yielded that point at tables (`mask`), those tables' addresses and
        the state each brings down (one per true lane; default: the state the entry itself got). A table
        several of them point at is read under each (within `ALIAS_FLOOR` and `ALIAS_FACTOR`); one reached at
        another level, or on the path to the entry (a loop), is reported, not read again."""
        entries, self._pending = self._pending, None
        assert entries is not None, "descend() belongs after a level was yielded"
        depth = entries.depth + 1
        if depth == self.fmt.depth_count or not np.any(mask):
            return
        lv, span = self.fmt.levels[depth], self.fmt.levels[entries.depth].span
        slots, bases = entries.slot[mask], entries.va[mask]
        carry = entries.carry[mask] if carry is None else carry
        row = np.flatnonzero(self._kept)[mask] // self.fmt.levels[entries.depth].entries
        paths = self._read_path[row]                     # where the tables on each entry's path are
        distinct, inverse = np.unique(tables, return_inverse=True)
        inverse = inverse.reshape(-1)
        ok, found, why = self.reader.locate(distinct, lv.entries)      # each distinct table once
        if not ok.all():                                 # the references of each unreadable table, in VA order
            bad, order = np.flatnonzero(~ok), np.argsort(inverse, kind="stable")
            lo, hi = (np.searchsorted(inverse[order], bad, side=side).tolist() for side in ("left", "right"))
            for k, a, b, reason in zip(bad.tolist(), lo, hi, why, strict=True):
                refs = order[a:b]
                self._unreadable(depth, int(distinct[k]), slots[refs], bases[refs], span, reason)
        where = np.zeros(distinct.shape, dtype=np.uint64)
        where[ok] = found
        ok, where = ok[inverse], where[inverse]
        tables, slots, bases, paths, where, carry = tables[ok], slots[ok], bases[ok], paths[ok], where[ok], carry[ok]
        if not tables.size:
            return
        by_place = np.argsort(where, kind="stable")      # references grouped by table, each group in VA order
        uniq, start, counts = np.unique(where[by_place], return_index=True, return_counts=True)
        group = np.empty(where.shape, dtype=np.intp)     # each reference's table (index into uniq)
        group[by_place] = np.repeat(np.arange(uniq.size), counts)
        walk = np.zeros(where.shape, dtype=bool)
        walk[by_place[start]] = True                     # each table's first (lowest-VA) reference
        again = np.array([w in self._seen for w in uniq.tolist()], dtype=bool)   # one test per distinct table
        if again.any():
            walk &= ~again[group]
            self._reached_again(again[group], tables, slots, bases, paths, where, span, depth)
        aliases = np.flatnonzero(~walk & ~again[group])  # further references of tables new at this level
        self.distinct += int(np.count_nonzero(~again)) * lv.entries
        room = max(0, ALIAS_FLOOR + ALIAS_FACTOR * self.distinct - self.aliased) // lv.entries
        taken = aliases[:room]
        walk[taken] = True
        self.aliased += taken.size * lv.entries
        if aliases.size:
            self._report_shared((counts > 1) & ~again, start, counts, by_place, tables, slots, bases, walk, span, depth)
        for w in uniq[~again].tolist():
            self._seen[w] = depth
        walked = np.flatnonzero(walk)                    # in VA order
        self._tables, self._bases, self._where, self._carry = tables[walked], bases[walked], where[walked], \
            carry[walked]
        self._path = np.concatenate([paths[walked], where[walked][:, None]], axis=1)

    def _report_shared(self, several: Bool, start: npt.NDArray[np.intp], counts: npt.NDArray[np.intp],
                       by_place: npt.NDArray[np.intp], tables: U64, slots: U64, bases: U64, walk: Bool, span: int,
                       depth: int) -> None:
        """Report the tables that several references of this level reach (`several`), in VA order: a table
        several entries point at is shared; one entry read under several aliases of a table above it is not
        news, unless some of its aliases are not listed (the budget is spent)."""
        level = self.fmt.levels[depth].arch_level
        firsts = by_place[start[several]]
        for k in np.flatnonzero(several)[np.argsort(firsts)].tolist():
            refs = by_place[start[k]:start[k] + counts[k]]
            n, listed = np.unique(slots[refs]).size, walk[refs]
            unlisted = int(np.count_nonzero(~listed))
            if n == 1 and not unlisted:
                continue
            table = int(tables[refs[0]])
            if n > 1:
                shown = ", ".join(f"{self.fmt.extend(int(b)):#x}" for b in bases[refs[:4]])
                head = f"is shared by {n} entries (VAs {shown}{', ...' if refs.size > 4 else ''})"
            else:
                head = f"is reached {refs.size} times through aliases of a shared table above it"
            if unlisted:
                gone = refs[~listed]
                tail = (f"{unlisted} of its {refs.size} references (VAs {self.fmt.extend(int(bases[gone[0]])):#x} "
                        f"on, {human_size(unlisted * span)} of VA in all) are not listed: the descent reads at most "
                        f"{ALIAS_FLOOR} + {ALIAS_FACTOR} x {self.distinct} entries of aliases")
            else:
                tail = "its entries are listed under each"
            self.problems.append(f"the level-{level} table {table:#x} {head}: {tail}")
            self.events.append(TableEvent("shared", table, level, slots[refs], self._extended(bases[refs]), span,
                                          listed))

    def _reached_again(self, again: Bool, tables: U64, slots: U64, bases: U64, paths: U64, where: U64,
                       span: int, depth: int) -> None:
        """Report the references (`again`) to tables first reached at another level: grouped by table and
        by whether the table is on the reference's own path (a loop), one report per group."""
        idx = np.flatnonzero(again)
        loop = (paths[idx] == where[idx, None]).any(axis=1)
        key = np.lexsort((loop, where[idx]))
        idx, loop = idx[key], loop[key]
        heads = np.flatnonzero(np.concatenate(([True], (np.diff(where[idx]) != 0) | (np.diff(loop) != 0))))
        level = self.fmt.levels[depth].arch_level
        for a, b in sorted(zip(heads.tolist(), [*heads[1:].tolist(), idx.size], strict=True),
                           key=lambda ab: int(idx[ab[0]:ab[1]].min())):
            refs = np.sort(idx[a:b])
            first, table = int(refs[0]), int(tables[refs[0]])
            first_level = self.fmt.levels[self._seen[int(where[first])]].arch_level
            what = ("a loop: it points back at a table on its own path" if loop[a] else
                    f"the table is also used at level {first_level}")
            n = np.unique(slots[refs]).size              # an entry may be reached through aliases above it
            more = f" (and {n - 1} more entries)" if n > 1 else ""
            self.problems.append(f"the entry at {int(slots[first]):#x}{more} makes table {table:#x} the "
                                 f"level-{level} table for VA {self.fmt.extend(int(bases[first])):#x}; {what}: "
                                 "not walked again")
            self.events.append(TableEvent("loop" if loop[a] else "other-level", table, level, slots[refs],
                                          self._extended(bases[refs]), span, np.zeros(refs.shape, dtype=bool),
                                          first_level=first_level))
