"""The expected outcome of each case of a vector set, as a walker computes it (every architecture)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..walker import Reason, Walker
from .schema import U8, U64, Cases


def expected_cases(walker: Walker, va: U64, access: U8, privilege: U8, label: npt.NDArray[np.intp] | None = None,
                   labels: tuple[str, ...] = ("",), attributes: bool = False) -> Cases:
    """Walk every case at once (VAs, access codes and privilege codes: `VectorSet.lanes`) and keep the
    outcomes as Cases: the PA, or the fault kind, level and syndrome, with stage, GPA and `implicit` in the
    two-stage modes, and with `attributes` a translation's permissions and memory type. `label` indexes
    `labels` for each case (without it, every case's label is empty)."""
    res = walker.translate_many(va, access, privilege)
    # the fault kind of each (reason, stage) that occurs, found with bincount (stage is 1 or 2), not per case
    seen = np.flatnonzero(np.bincount(res.reason.astype(np.intp) * 3 + res.stage))
    pairs = [divmod(int(k), 3) for k in seen]
    kinds = {(r, s): walker.fault_kind(Reason(r), s).value for r, s in pairs if r != Reason.OK}
    return Cases(access, privilege, np.zeros(len(res), np.intp) if label is None else label, labels, res, kinds,
                 walker.stage2 is not None, attributes)
