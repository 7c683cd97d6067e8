"""The expected outcome of each case of a vector set, as a walker computes it (every architecture)."""

from __future__ import annotations

from collections.abc import Sequence

from ..walker import Reason, Walker
from .schema import Case, lanes


def expected_cases(walker: Walker, rows: Sequence[tuple[int, str, str, str]]) -> list[Case]:
    """Walk every (va, access, privilege, label) row at once and describe each outcome as a Case: the PA,
    or the fault kind, level and syndrome, with stage, GPA and `implicit` in the two-stage modes."""
    res = walker.translate_many(*lanes((va, a, p) for va, a, p, _ in rows))
    two_stage = walker.stage2 is not None
    out = []
    for n, (va, a, p, label) in enumerate(rows):
        reason, stage = Reason(int(res.reason[n])), int(res.stage[n])
        gpa = int(res.gpa[n]) if two_stage and (reason == Reason.OK or stage == 2) else None
        if reason == Reason.OK:
            out.append(Case(va, a, p, pa=int(res.pa[n]), gpa=gpa, label=label, reason=reason.label))
        else:
            out.append(Case(va, a, p, fault=walker.fault_kind(reason, stage).value, level=int(res.level[n]),
                            stage=stage if two_stage else None, gpa=gpa, implicit=bool(res.implicit[n]),
                            label=label, reason=reason.label,
                            syndrome={k: int(v[n]) for k, v in res.syndrome.items()}))
    return out
