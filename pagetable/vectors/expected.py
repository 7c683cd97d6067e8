"""The expected outcome of each case of a vector set, as a walker computes it (every architecture)."""

from __future__ import annotations

from collections.abc import Sequence

from ..walker import Reason, Walker
from .schema import Case, lanes


def expected_cases(walker: Walker, rows: Sequence[tuple[int, str, str, str]]) -> list[Case]:
    """Walk every (va, access, privilege, label) row at once and describe each outcome as a Case: the PA,
    or the fault kind, level and syndrome, with stage, GPA and `implicit` in the two-stage modes."""
    res = walker.translate_many(*lanes((r[0] for r in rows), (r[1] for r in rows), (r[2] for r in rows)))
    two_stage = walker.stage2 is not None
    # the columns as Python lists (indexing a numpy array per case costs more than the walk); the names of
    # each reason and fault kind looked up once
    reasons, stages, levels = res.reason.tolist(), res.stage.tolist(), res.level.tolist()
    pas, gpas, implicit = res.pa.tolist(), res.gpa.tolist(), res.implicit.tolist()
    syndrome = {k: v.tolist() for k, v in res.syndrome.items()}
    labels = {int(r): r.label for r in Reason}
    kinds = {(r, s): walker.fault_kind(Reason(r), s).value for r, s in set(zip(reasons, stages, strict=True))
             if r != Reason.OK}
    out = []
    for n, (va, a, p, label) in enumerate(rows):
        reason, stage = reasons[n], stages[n]
        gpa = gpas[n] if two_stage and (reason == Reason.OK or stage == 2) else None
        if reason == Reason.OK:
            out.append(Case(va, a, p, pa=pas[n], gpa=gpa, label=label, reason=labels[reason]))
        else:
            out.append(Case(va, a, p, fault=kinds[reason, stage], level=levels[n],
                            stage=stage if two_stage else None, gpa=gpa, implicit=bool(implicit[n]),
                            label=label, reason=labels[reason],
                            syndrome={k: v[n] for k, v in syndrome.items()}))
    return out
