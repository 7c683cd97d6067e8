"""The Contiguous hint: marking aligned sets of equal descriptors, and finding misprogrammed ones.

Arm ARM DDI 0487 M.a.a, D8.7.1 "The Contiguous bit": a set of adjacent descriptors (16 with the 4KB
granule at every level; with 16KB, 128 at level 3 and 32 at level 2; with 64KB, 32 at levels 3 and 2:
`CONTIGUOUS_ENTRIES`) may be marked as one TLB entry when the set is aligned to its size in both the input
and the output address space, every entry is a valid leaf of the same level with the same attributes and
permissions, and the output addresses follow each other. If the bit is set on an entry of a set that does
not meet those conditions, the translation is CONSTRAINED UNPREDICTABLE: a TLB conflict abort, or an
output address and attributes from any entry of the set. The walker translates each entry on its own (one
of the permitted outcomes: every lookup a TLB miss); `misprogrammed` finds the sets where hardware may do
otherwise, for a dump check to report.

`mark(table, start, size)` sets the bit on every qualifying set in [start, start + size) and clears it on
every other leaf there (a model of the descriptors' final values: live tables change them with
break-before-make, D8.16).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ...mappings import Mappings
from ...table import PageTable
from .codec import CONTIGUOUS, CONTIGUOUS_ENTRIES, A64Codec, S2Codec

U64 = npt.NDArray[np.uint64]
Bool = npt.NDArray[np.bool_]


def _codec(leaves: Mappings) -> A64Codec | S2Codec:
    codec = leaves.fmt.codec
    if not isinstance(codec, A64Codec | S2Codec):
        raise TypeError(f"{leaves.fmt.name} has no VMSAv8-64 descriptors")
    return codec


def qualifying(leaves: Mappings) -> Bool:
    """Per leaf (sorted by VA, as `PageTable.walk` and `Walker.mappings` list them), whether it belongs to a
    set that may carry the Contiguous bit: all of its aligned set's entries listed at its level, valid,
    equal apart from the address and the bit itself, and mapping one aligned output range in order."""
    codec = _codec(leaves)
    out = np.zeros(leaves.va.shape, dtype=bool)
    attrs = leaves.raw & np.uint64(((1 << 64) - 1) ^ (codec.address.field | CONTIGUOUS))
    for depth in np.unique(leaves.depth).tolist():
        level = leaves.fmt.levels[depth].arch_level
        n = CONTIGUOUS_ENTRIES.get((codec.address.granule, level))
        if n is None:
            continue
        rows = np.flatnonzero((leaves.depth == depth) & codec.is_present_np(leaves.raw))
        span = np.uint64(n * leaves.fmt.levels[depth].span)
        va, pa, attr = leaves.va[rows], leaves.pa[rows], attrs[rows]
        group = va // span
        head = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        count = np.diff(np.r_[head, rows.size])
        first = np.repeat(head, count)
        good = (attr == attr[first]) & (pa - va == pa[first] - va[first]) & (pa[first] % span == va[first] % span)
        whole = np.repeat((count == n) & np.logical_and.reduceat(good, head) if head.size else np.zeros(0, bool),
                          count)
        out[rows[whole]] = True
    return out


def misprogrammed(leaves: Mappings) -> U64:
    """The VAs of the leaves that carry the Contiguous bit but whose set does not qualify."""
    marked = (leaves.raw & np.uint64(CONTIGUOUS)) != 0
    bad: U64 = leaves.va[marked & ~qualifying(leaves)]
    return bad


def mark(table: PageTable, start: int, size: int) -> int:
    """Set the Contiguous bit on every qualifying set of leaves in [start, start + size) and clear it on the
    other leaves there; returns how many leaves carry it."""
    leaves = table.walk(start, start + size)
    want = qualifying(leaves)
    raw = np.where(want, leaves.raw | np.uint64(CONTIGUOUS), leaves.raw & np.uint64(((1 << 64) - 1) ^ CONTIGUOUS))
    changed = raw != leaves.raw
    table.mem.write_u64_np(leaves.slot[changed], raw[changed])
    return int(want.sum())
