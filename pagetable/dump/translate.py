"""Translating many addresses of a memory image at once, as `pagetable translate` does: one vectorised walk
per access kind (`Walker.translate_many`), and `any`, the debugger's question (does any access at this
privilege translate, and with which permissions)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..translation import Access, Privilege, Reason, Translations
from ..walker import Walker

U64 = npt.NDArray[np.uint64]

ANY = "any"
"""The access that asks whether any of read, write and execute translates (`translate_vas`)."""


@dataclass(frozen=True)
class Answers:
    """The outcome of each address: `t` (its columns; where `access` was `any`, the lanes of the first
    access kind that translated, else read's fault), and the fault kind of each (reason, stage) that occurs
    (`kinds`, the names vectors.json uses)."""

    t: Translations
    kinds: dict[tuple[int, int], str]


def translate_vas(walker: Walker, vas: U64, access: str, privilege: str) -> Answers:
    """Translate every address in `vas` for `access` (read, write, execute, or `ANY`) at `privilege`."""
    prv = Privilege.parse(privilege)
    if access != ANY:
        t = walker.translate_many(vas, Access.parse(access), prv)
    else:
        each = [walker.translate_many(vas, a, prv) for a in Access]
        ok = np.stack([e.reason == Reason.OK for e in each])
        # the first access that translates (read, write, execute), else 0: read's fault
        which = np.where(ok.any(axis=0), ok.argmax(axis=0), 0)
        first = each[0]
        cols = {name: np.choose(which, [getattr(e, name) for e in each])
                for name in ("pa", "reason", "level", "pte", "stage", "gpa", "implicit", "perms", "memtype",
                             "rights")}
        t = Translations(first.va, **cols, syndrome=first.syndrome)
    seen = np.flatnonzero(np.bincount(t.reason.astype(np.intp) * 3 + t.stage, minlength=3))
    kinds = {divmod(int(k), 3): "" for k in seen}
    kinds = {(r, s): walker.fault_kind(Reason(r), s).value for r, s in kinds if r != Reason.OK}
    return Answers(t, kinds)


__all__ = ["ANY", "Answers", "translate_vas"]
