"""What a vector set covers (`pagetable vectors show --coverage`): every case walked again, counted by its
outcome (a translation, or the fault's reason), the level the walk ended at and the stage that decided, so
that a set's gaps (a level no case faults at, a reason no case reaches) are visible before it is used."""

from __future__ import annotations

import collections
from collections.abc import Iterator

from ..translation import Reason
from ..walker import Walker
from .schema import VectorSet

__all__ = ["coverage_lines"]


def _levels(walker: Walker) -> dict[int, bool]:
    """The manual's level numbers of a walker's regime, root first (every region's, once), and whether a
    leaf may sit there."""
    seen: dict[int, bool] = {}
    for region in walker.rules.regime.regions:
        for lv in region.fmt.levels:
            seen[lv.arch_level] = seen.get(lv.arch_level, False) or lv.leaf
    return seen


def coverage_lines(walker: Walker, vs: VectorSet) -> Iterator[str]:
    """Per stage, a table of outcome x level (how many cases end there), then what no case reaches: the
    levels that may hold a leaf without a translation, the levels without a fault, and the
    access/privilege pairs not asked."""
    t = walker.translate_many(*vs.lanes())
    stages = [(1, walker)] + ([] if walker.stage2 is None else [(2, walker.stage2)])
    counts = collections.Counter(zip(t.stage.tolist(), t.reason.tolist(), t.level.tolist(), strict=True))
    yield f"coverage: {len(vs.cases)} cases walked again"
    gaps: list[str] = []
    for stage, w in stages:
        levels = _levels(w)
        names = ", ".join(dict.fromkeys(r.fmt.name for r in w.rules.regime.regions)) or "translation off"
        yield f"  stage {stage} ({names}), cases ending at level:{''.join(f'{lv:>7}' for lv in levels)}"
        reasons = sorted({r for s, r, _ in counts if s == stage})
        for reason in reasons:
            label = "ok (translation)" if reason == Reason.OK else Reason(reason).label
            yield f"    {label:<34}" + "".join(f"{counts[stage, reason, lv] or '-':>7}" for lv in levels)
        ok = {lv for s, r, lv in counts if s == stage and r == Reason.OK}
        faulted = {lv for s, r, lv in counts if s == stage and r != Reason.OK}
        if stage == 1 or walker.stage2 is None:
            gaps += [f"a translation at stage {stage} level {lv}" for lv, leaf in levels.items()
                     if leaf and lv not in ok]
        gaps += [f"a fault at stage {stage} level {lv}" for lv in levels if lv not in faulted]
    asked = set(zip(vs.lanes()[1].tolist(), vs.lanes()[2].tolist(), strict=True))
    if len(asked) < 6:
        gaps.append(f"{6 - len(asked)} of the 6 access/privilege pairs")
    yield f"  no case reaches: {'; '.join(gaps)}" if gaps else \
        "  every level has a translation (where a leaf may be) and a fault"
