"""Comparing two address spaces as the hardware sees them, as `pagetable diff` does (`diff_spaces`): two
images walked with the same registers, or one image walked with two register sets (the user and kernel
PGDs of Linux's x86 page-table isolation, two processes' CR3 or TTBR0_EL1).

What is compared is the translation of every byte of the VA space (`space.address_space`: the hardware
view `Walker.mappings` gives, all regions): whether it translates, to which PA, with which effective
permissions of the whole walk and which memory type; or, for an entry the hardware rejects for every
access, with which fault. The entries that produce a translation are not compared by default: a 2 MiB
page and the 512 4 KiB pages of the same PA, permissions and memory type translate alike, so they are no
difference (`by_entry` compares the page size too, as the entries differ).

The comparison is vectorised: the two sorted lists of leaves are cut at every leaf boundary of either
side (`np.unique` of the boundaries), each elementary range looks up the leaf of each side that covers it
(`np.searchsorted`), and consecutive ranges whose change continues (the same kind, the same attributes on
each side, VAs and PAs contiguous) merge into one run: a 1 GiB direct map that moved is one change, whether
it is made of 1 GiB, 2 MiB or 4 KiB pages. Only the printed runs are visited one at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from ..listing import linux_size, permissions
from ..translation import MemoryType, Reason
from .space import TOP, Space

U64 = npt.NDArray[np.uint64]

ADDED, REMOVED, CHANGED = "added", "removed", "changed"
MARKS: Final = {ADDED: "+", REMOVED: "-", CHANGED: "~"}
"""The mark each kind of change starts its line with (diff(1)'s - and +)."""

_BY_STAGE: Final = {2: "stage 2: ", 3: "stage 2 refuses the entry's update: "}


@dataclass(frozen=True)
class Side:
    """What one address space makes of a run: the PA at its first byte, the page size of its leaves, the
    effective permissions and memory type; for a rejected entry, `verdict` (the `Reason` every access
    faults with) and `verdict_stage` (1 stage 1, 2 stage 2 on the output, 3 stage 2 on the entry update)."""

    pa: int
    page_size: int
    perms: int
    memtype: int
    verdict: int
    verdict_stage: int

    @property
    def fault(self) -> str | None:
        """The fault every access gets, named as listings name it, or None for a translation."""
        if not self.verdict:
            return None
        return _BY_STAGE.get(self.verdict_stage, "") + Reason(self.verdict).label

    def text(self) -> str:
        """`pa 0x80000000 4K pages S:rw- U:--- wb`, or `! faults: REASON (4K entries)`."""
        size = linux_size(self.page_size).strip()
        if self.fault is not None:
            return f"! faults: {self.fault} ({size} entries)"
        return f"pa {self.pa:#x} {size} pages {permissions(self.perms)} {MemoryType(self.memtype).label}"

    def json(self) -> str:
        if self.fault is not None:
            return (f'{{"pa": null, "page_size": "{self.page_size:#x}", "perms": null, "memtype": null, '
                    f'"fault": "{self.fault}"}}')
        return (f'{{"pa": "{self.pa:#x}", "page_size": "{self.page_size:#x}", "perms": "{permissions(self.perms)}", '
                f'"memtype": "{MemoryType(self.memtype).label}", "fault": null}}')


@dataclass(frozen=True)
class Change:
    """One run of VAs [first, last] that address space `a` and `b` translate differently: `kind` is ADDED
    (only `b` maps it), REMOVED (only `a`) or CHANGED (both, differently: `fields` names what differs, of
    "fault", "pa", "perms", "memtype", "page size")."""

    kind: str
    first: int
    last: int
    a: Side | None
    b: Side | None
    fields: tuple[str, ...]

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def text(self) -> str:
        """`+ 0xSTART-0xEND  SIZE  SIDE`, with `SIDE_A  ->  SIDE_B  (fields)` for a change."""
        head = f"{MARKS[self.kind]} 0x{self.first:016x}-0x{self.last + 1 & TOP:016x} {linux_size(self.size)}  "
        if self.a is None or self.b is None:
            side = self.a or self.b
            assert side is not None
            return head + side.text()
        return f"{head}{self.a.text()}  ->  {self.b.text()}  ({', '.join(self.fields)})"

    def json(self) -> str:
        """One JSON object (every string is a name or a hex number: nothing to escape)."""
        a = "null" if self.a is None else self.a.json()
        b = "null" if self.b is None else self.b.json()
        fields = ", ".join(f'"{f}"' for f in self.fields)
        return (f'{{"change": "{self.kind}", "va": "{self.first:#x}", "end": "{self.last + 1:#x}", '
                f'"size": "{self.size:#x}", "a": {a}, "b": {b}, "fields": [{fields}]}}')


@dataclass(frozen=True)
class _Cover:
    """For each elementary range: whether one side maps it, and that side's leaf attributes there."""

    mapped: npt.NDArray[np.bool_]
    pa: U64            # the PA at the range's first byte (its VA for a rejected entry: PA is meaningless)
    key: U64           # perms | memtype << 8 | verdict << 16 | verdict_stage << 24
    size: U64          # the leaf's page size


def _cover(s: Space, lo: U64) -> _Cover:
    """Which leaf of `s` covers each range starting at `lo` (the ranges end before the next leaf boundary)."""
    if not len(s):
        none = np.zeros(lo.shape, dtype=np.uint64)
        return _Cover(np.zeros(lo.shape, dtype=np.bool_), none, none, none)
    idx = np.searchsorted(s.first, lo, side="right").astype(np.intp) - 1
    mapped = idx >= 0
    idx = np.maximum(idx, 0)
    mapped &= s.last[idx] >= lo
    verdict = s.verdict[idx].astype(np.uint64)
    key = (s.perms[idx].astype(np.uint64) | s.memtype[idx].astype(np.uint64) << np.uint64(8)
           | verdict << np.uint64(16) | s.verdict_stage[idx].astype(np.uint64) << np.uint64(24))
    pa = np.where(verdict == 0, s.pa[idx] + (lo - s.first[idx]), lo)
    return _Cover(mapped, pa, np.where(mapped, key, 0), np.where(mapped, s.size[idx], 0))


def _runs(s: Space) -> Space:
    """`s` with the leaves that continue one another (contiguous in VA and PA, the same page size and
    attributes) merged: what `diff_spaces` would merge anyway, so a direct map of a million 4 KiB pages is
    compared as one range."""
    if len(s) < 2:
        return s
    f, n = slice(1, None), slice(None, -1)
    same = ((s.first[f] == s.last[n] + np.uint64(1)) & (s.size[f] == s.size[n]) & (s.perms[f] == s.perms[n])
            & (s.memtype[f] == s.memtype[n]) & (s.verdict[f] == s.verdict[n])
            & (s.verdict_stage[f] == s.verdict_stage[n]))
    joins = same & ((s.verdict[f] != 0) | (s.pa[f] == s.pa[n] + (s.first[f] - s.first[n])))
    if not joins.any():
        return s
    starts = np.concatenate(([0], np.flatnonzero(~joins) + 1))
    ends = np.concatenate((starts[1:] - 1, [len(s) - 1]))
    return Space(s.first[starts], s.last[ends], s.pa[starts], s.size[starts], s.perms[starts], s.memtype[starts],
                 s.verdict[starts], s.verdict_stage[starts], s.spans, s.problems)


def _bounds(s: Space) -> U64:
    """Where `s`'s leaves start and where they end (the byte after each; none for a leaf ending at the top of
    the space), in order: the leaves are sorted and do not overlap, so starts and ends alternate."""
    both = np.stack([s.first, s.last + np.uint64(1)], axis=1).reshape(-1)
    return both[:-1] if len(s) and int(s.last[-1]) == TOP else both


def _side(c: _Cover, k: int) -> Side:
    key = int(c.key[k])
    return Side(int(c.pa[k]), int(c.size[k]), key & 0xFF, key >> 8 & 0xFF, key >> 16 & 0xFF, key >> 24 & 0xFF)


def _fields(a: Side, b: Side) -> tuple[str, ...]:
    if a.verdict or b.verdict:
        out = ["fault"]
    else:
        out = [name for name, x, y in (("pa", a.pa, b.pa), ("perms", a.perms, b.perms),
                                       ("memtype", a.memtype, b.memtype)) if x != y]
    return (*out, "page size") if a.page_size != b.page_size else tuple(out)


def diff_spaces(a: Space, b: Space, by_entry: bool = False) -> Iterator[Change]:
    """The runs where `a` and `b` translate differently, in VA order; with `by_entry`, a different page
    size (the same translation by other entries) is a change too."""
    a, b = _runs(a), _runs(b)
    lo = np.concatenate([_bounds(a), _bounds(b)])
    lo.sort(kind="stable")                             # two sorted runs: timsort merges them in one pass
    if not lo.shape[0]:
        return
    lo = lo[np.concatenate(([True], lo[1:] != lo[:-1]))]
    hi = np.concatenate((lo[1:] - np.uint64(1), np.array([TOP], dtype=np.uint64)))
    ca, cb = _cover(a, lo), _cover(b, lo)
    same = (ca.key == cb.key) & (ca.pa == cb.pa)
    if by_entry:
        same &= ca.size == cb.size
    kind = np.where(ca.mapped & cb.mapped, np.where(same, 0, 3), ca.mapped * 1 + cb.mapped * 2)
    rows = np.flatnonzero(kind)
    if not rows.shape[0]:
        return
    length = hi - lo + np.uint64(1)
    r, n = rows[1:], rows[:-1]

    def continues(c: _Cover) -> npt.NDArray[np.bool_]:
        alike: npt.NDArray[np.bool_] = (c.key[r] == c.key[n]) & (c.size[r] == c.size[n]) & \
            (c.pa[r] == c.pa[n] + length[n])
        return ~c.mapped[r] | alike

    joins = (lo[r] == hi[n] + np.uint64(1)) & (kind[r] == kind[n]) & continues(ca) & continues(cb)
    starts = np.concatenate(([0], np.flatnonzero(~joins) + 1))
    lasts = np.concatenate((starts[1:] - 1, [rows.shape[0] - 1]))
    names = {1: REMOVED, 2: ADDED, 3: CHANGED}
    for s, e in zip(rows[starts].tolist(), rows[lasts].tolist(), strict=True):
        side_a = _side(ca, s) if ca.mapped[s] else None
        side_b = _side(cb, s) if cb.mapped[s] else None
        fields = _fields(side_a, side_b) if side_a is not None and side_b is not None else ()
        yield Change(names[int(kind[s])], int(lo[s]), int(hi[e]), side_a, side_b, fields)


@dataclass
class Summary:
    """How many changes of each kind, and how many bytes of VA they cover."""

    count: dict[str, int]
    size: dict[str, int]

    @classmethod
    def of(cls, changes: list[Change]) -> Summary:
        count = dict.fromkeys(MARKS, 0)
        size = dict.fromkeys(MARKS, 0)
        for c in changes:
            count[c.kind] += 1
            size[c.kind] += c.size
        return cls(count, size)

    def text(self) -> str:
        """`1 added (4K), 0 removed (0K), 2 changed (2M)`, or `no differences`."""
        if not any(self.count.values()):
            return "no differences"
        return ", ".join(f"{self.count[k]} {k} ({linux_size(self.size[k]).strip()})" for k in MARKS)

    def json(self) -> str:
        return ('{"summary": {' + ", ".join(f'"{k}": {self.count[k]}, "{k}_bytes": "{self.size[k]:#x}"'
                                            for k in MARKS) + "}}")


__all__ = ["ADDED", "CHANGED", "MARKS", "REMOVED", "Change", "Side", "Summary", "diff_spaces"]
