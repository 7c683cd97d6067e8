"""The hardware view of a whole address space, every region of the regime at once, as `pagetable diff` and
`pagetable plot` read it (`address_space`).

`Walker.mappings` lists one region of a regime at a time (AArch64's TTBR0_EL1 and TTBR1_EL1 halves; one for
satp and CR3), each with its own paging format. `Space` puts the regions' leaves end to end in VA order (the
regions' VA ranges do not overlap) and keeps only what the hardware makes of each leaf: the VA range it
covers, the PA at its first byte, the size of the leaf, the effective permissions of the whole walk, the
memory type, and for an entry every access faults on (a rejected entry), the reason. Ranges are kept as
first and *last* byte (inclusive), so that a leaf ending at the top of the 64-bit space needs no 65th bit.

The VA ranges each region translates (`RegionSpan`) follow from its format's width and extension: a format
whose upper bits copy the top bit has two spans, the lower and upper halves (by Linux's use the user and the
kernel half): RISC-V Sv39/48/57, whose VA bits 63 down to the width must equal its top bit (RISC-V
privileged spec, "Sv39: Page-Based 39-bit Virtual-Memory System" and its Sv48/Sv57 successors), and x86
4-/5-level paging's canonical addresses (Intel SDM Vol. 1 §3.3.7.1). AArch64's TTBR0_EL1 range (upper bits
zero) and TTBR1_EL1 range (upper bits one) have one each, as TCR_EL1.T0SZ and T1SZ size them (Arm ARM,
chapter D8, the VMSAv8-64 translation regimes' VA ranges).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import PagetableError
from ..format import Extension
from ..walker import Walker

U64 = npt.NDArray[np.uint64]
U8 = npt.NDArray[np.uint8]
TOP = (1 << 64) - 1
"""The last byte of the 64-bit VA space."""


@dataclass(frozen=True)
class RegionSpan:
    """One VA range a region translates: its label (the register, and for a sign-extended format which
    half), first and last byte."""

    label: str
    first: int
    last: int


@dataclass(frozen=True)
class Space:
    """Leaves of every region, sorted by VA, as parallel arrays: `first`/`last` byte of each (clipped to the
    range asked for), `pa` at `first`, the leaf's `size` (the page size, unclipped), `perms`
    (`walker.perm_bit` mask), `memtype` (`translation.MemoryType`), `verdict` (0, or the `Reason` every
    access faults with) and `verdict_stage`; `spans` the VA ranges of the regions; `problems` what the walks
    could not follow, each prefixed with its region's name."""

    first: U64
    last: U64
    pa: U64
    size: U64
    perms: U8
    memtype: U8
    verdict: U8
    verdict_stage: U8
    spans: tuple[RegionSpan, ...]
    problems: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.first.shape[0])


def region_spans(walker: Walker) -> tuple[RegionSpan, ...]:
    """The VA ranges of each region of `walker`'s regime, in VA order."""
    spans: list[RegionSpan] = []
    for region in walker.rules.regime.regions:
        bits = region.fmt.va_bits
        if region.fmt.extension is Extension.SIGN:
            spans += [RegionSpan(f"{region.name} lower half", 0, (1 << bits - 1) - 1),
                      RegionSpan(f"{region.name} upper half", TOP + 1 - (1 << bits - 1), TOP)]
        elif region.fmt.extension is Extension.ZERO:
            spans.append(RegionSpan(region.name, 0, (1 << bits) - 1))
        else:
            spans.append(RegionSpan(region.name, TOP + 1 - (1 << bits), TOP))
    return tuple(sorted(spans, key=lambda s: s.first))


def address_space(walker: Walker, start: int = 0, end: int = TOP + 1) -> Space:
    """Every region of `walker` (its stage-1 tables, judged through stage 2 where there is one) listed with
    `Walker.mappings` over [start, end), leaves clipped to that range. PagetableError when translation is
    off (Bare: no table to list)."""
    if not walker.rules.regime.translates:
        raise PagetableError("translation is off (Bare): there is no table to list")
    names = ("first", "last", "pa", "size", "perms", "memtype", "verdict", "verdict_stage")
    cols: dict[str, list[npt.NDArray[Any]]] = {n: [] for n in names}
    problems: list[str] = []
    for k, region in enumerate(walker.rules.regime.regions):
        m = walker.mappings(start, end, region=k)
        assert m.perms is not None and m.memtype is not None and m.verdict is not None
        problems += [f"{region.name}: {p}" for p in m.problems]
        first = np.maximum(m.va, np.uint64(start))
        last = np.minimum(m.va + (m.size - np.uint64(1)), np.uint64(end - 1))   # no overflow: va + size - 1
        keep = first <= last
        cols["first"].append(first[keep])
        cols["last"].append(last[keep])
        cols["pa"].append((m.pa + (first - m.va))[keep])
        cols["size"].append(m.size[keep])
        cols["perms"].append(m.perms[keep])
        cols["memtype"].append(m.memtype[keep])
        cols["verdict"].append(m.verdict[keep])
        stage = m.verdict_stage if m.verdict_stage is not None else np.ones(m.verdict.shape, dtype=np.uint8)
        cols["verdict_stage"].append(stage[keep])
    joined: dict[str, npt.NDArray[Any]] = {n: np.concatenate(c) for n, c in cols.items()}
    order = np.argsort(joined["first"], kind="stable")
    if np.any(order != np.arange(order.shape[0])):
        joined = {n: c[order] for n, c in joined.items()}
    return Space(joined["first"], joined["last"], joined["pa"], joined["size"], joined["perms"], joined["memtype"],
                 joined["verdict"], joined["verdict_stage"], region_spans(walker), tuple(problems))


__all__ = ["TOP", "RegionSpan", "Space", "address_space", "region_spans"]
