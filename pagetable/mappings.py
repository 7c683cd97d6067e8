"""`Mappings`: a column-oriented list of leaf entries (numpy arrays), as `PageTable.walk` (the software view)
and `Walker.mappings` (the hardware view) return them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .descent import TableEvent
from .flags import MappingFlags, PageSize
from .format import PagingFormat
from .physmem import PhysMem

U64 = npt.NDArray[np.uint64]
U8 = npt.NDArray[np.uint8]
_COLUMNS = ("va", "pa", "size", "flags", "depth", "raw", "slot")
_OPTIONAL = ("perms", "verdict", "verdict_stage", "memtype")


@dataclass(frozen=True)
class Mapping:
    """One leaf: `size` bytes at `va` map `pa` with `flags`; `level` is the manual's level number."""

    va: int
    pa: int
    size: PageSize
    flags: MappingFlags
    level: int
    raw: int

    def __str__(self) -> str:
        return (f"{self.va:#018x} -> {self.pa:#x} {self.size.label():>4} {self.flags.short()} "
                f"level {self.level} pte {self.raw:#018x}")


@dataclass(frozen=True)
class Mappings:
    """Leaves as parallel numpy arrays, sorted by VA (as unsigned 64-bit values, so a sign-extended upper
    half follows the lower half). The hardware view (`Walker.mappings`) also lists the table entries the
    walk rejects, and has the `perms`/`verdict` columns; its `slot` is where the entry is in the address
    space the tables live in (a guest-physical address for a stage-1 table of two stages)."""

    fmt: PagingFormat
    va: U64
    pa: U64
    size: U64
    flags: U64
    depth: npt.NDArray[np.int8]
    raw: U64
    slot: U64          # address of each entry (physical; guest-physical for a two-stage stage-1 table)
    problems: tuple[str, ...] = ()   # what the walk could not follow (e.g. a table pointer outside RAM)
    events: tuple[TableEvent, ...] = ()   # the same, structured (`descent.TableEvent`; `Walker.mappings`)
    # the hardware view only (`Walker.mappings`; None from `PageTable.walk`):
    perms: U8 | None = None          # effective permissions: bit 3 * privilege + access (`walker.perm_bit`)
    verdict: U8 | None = None        # 0 where some access translates, else the `Reason` every access gets
    verdict_stage: U8 | None = None  # where `verdict` is not 0, who decided: 1 stage 1, 2 stage 2 on the
                                     # output address, 3 stage 2 on the implicit write of the entry's update
    memtype: U8 | None = None        # the `translation.MemoryType` of the leaf's accesses (NONE: no access)

    @classmethod
    def empty(cls, fmt: PagingFormat, hardware: bool = False) -> Mappings:
        """No leaves (with the hardware view's columns, empty, when `hardware`)."""
        z = np.zeros(0, dtype=np.uint64)
        u8 = np.zeros(0, dtype=np.uint8) if hardware else None
        return cls(fmt, z, z, z, z, np.zeros(0, dtype=np.int8), z, z, perms=u8, verdict=u8, verdict_stage=u8,
                   memtype=u8)

    @classmethod
    def concat(cls, fmt: PagingFormat, parts: list[Mappings], problems: list[str] | None = None,
               hardware: bool = False, events: list[TableEvent] | None = None) -> Mappings:
        """The parts' leaves sorted by VA, with the descent's `problems` and `events`; `hardware`: the parts
        are of the hardware view. The columns of a single part already sorted are kept, not copied."""
        notes, table_events = tuple(problems or ()), tuple(events or ())
        if not parts:
            return dataclasses.replace(cls.empty(fmt, hardware), problems=notes, events=table_events)
        names = _COLUMNS + tuple(n for n in _OPTIONAL if all(getattr(p, n) is not None for p in parts))
        if len(parts) == 1:
            cols = {name: getattr(parts[0], name) for name in names}
        else:
            cols = {name: np.concatenate([getattr(p, name) for p in parts]) for name in names}
        va = cols["va"]
        if np.any(va[1:] < va[:-1]):
            order = np.argsort(va, kind="stable")
            cols = {k: v[order] for k, v in cols.items()}
        return cls(fmt, **cols, problems=notes, events=table_events)

    def select(self, mask: npt.NDArray[np.bool_]) -> Mappings:
        """The leaves where `mask` is true."""
        picked = {n: getattr(self, n)[mask] for n in _COLUMNS + _OPTIONAL if getattr(self, n) is not None}
        return Mappings(self.fmt, **picked, problems=self.problems, events=self.events)

    def __len__(self) -> int:
        return int(self.va.shape[0])

    @property
    def level(self) -> npt.NDArray[np.int8]:
        """The manual's level number of each leaf."""
        table = np.array([lv.arch_level for lv in self.fmt.levels], dtype=np.int8)
        return table[self.depth]

    def __getitem__(self, i: int) -> Mapping:
        return Mapping(int(self.va[i]), int(self.pa[i]), PageSize(int(self.size[i])),
                       MappingFlags(int(self.flags[i])), self.fmt.levels[int(self.depth[i])].arch_level,
                       int(self.raw[i]))

    def __iter__(self) -> Iterator[Mapping]:
        for i in range(len(self)):
            yield self[i]

    def total_size(self) -> int:
        return int(self.size.sum(dtype=np.uint64))

    def memory(self, mem: PhysMem) -> PhysMem | None:
        """The RAM of `mem` these leaves map, seen at their VAs: views of the same bytes, not copies. For
        a stage-2 (G-stage) table this is the guest-physical memory it gives the guest. None when no leaf
        reaches RAM."""
        if not len(self):
            return None
        joins = (self.va[1:] == self.va[:-1] + self.size[:-1]) & (self.pa[1:] == self.pa[:-1] + self.size[:-1])
        starts = np.concatenate(([0], np.flatnonzero(~joins) + 1))
        ends = np.concatenate((starts[1:], [len(self)])) - 1
        regions: list[tuple[int, npt.NDArray[np.uint8]]] = []
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            va, pa, end = int(self.va[a]), int(self.pa[a]), int(self.pa[b]) + int(self.size[b])
            for r in mem.regions:
                lo, hi = max(pa, r.base), min(end, r.end)
                if lo < hi:
                    regions.append((va + lo - pa, mem.view(lo, hi - lo)))
        return PhysMem(regions) if regions else None
