"""Translating many addresses of a memory image at once, as `pagetable translate` does: one vectorised walk
per access kind (`Walker.translate_many`), and `any`, the debugger's question (does any access at this
privilege translate, and with which permissions); the command's input (`va_column`: the VAs of a file) and
its output lines, text or JSON (`text_lines`, `json_lines`: built a column at a time, `dump.output`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..listing import permissions
from ..translation import Access, MemoryType, Privilege, Reason, Translations
from ..walker import Walker
from . import output
from .output import Column, hexadecimal, named, only, text

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


CHUNK = 16_384
"""Lanes formatted at a time: the output is written in pieces of this many lines (about 1 MiB), so a long
answer streams, and the formatting's working arrays (a few MiB) stay in the heap and the caches instead of
being faulted in afresh for every piece (measured: 16,384 lanes a piece is about twice as fast as 65,536)."""


def _chunks(a: Answers) -> Iterator[tuple[Translations, npt.NDArray[np.bool_]]]:
    """The answers `CHUNK` lanes at a time, with the lanes that translated."""
    for start in range(0, len(a.t), CHUNK):
        t = a.t.take(np.arange(start, min(start + CHUNK, len(a.t))))
        yield t, t.reason == Reason.OK


def _kind(a: Answers, t: Translations, fault: npt.NDArray[np.bool_]) -> Column:
    """The fault kind of each faulting lane (the names vectors.json uses)."""
    return named(t.reason.astype(np.intp) * 3 + t.stage, lambda k: a.kinds[divmod(k, 3)], fault)


def _reason(t: Translations) -> Column:
    return named(t.reason, lambda r: Reason(r).label)


def _memtype(t: Translations, ok: npt.NDArray[np.bool_]) -> Column:
    return named(t.memtype, lambda m: MemoryType(m).label, ok)


def _when(where: npt.NDArray[np.bool_], *columns: Column) -> list[Column]:
    """Each of `columns`, its text in the lanes `where` selects only."""
    return [only(where, c) for c in columns]


def text_lines(a: Answers, two_stage: bool) -> Iterator[str]:
    """The command's text output, a chunk of lines at a time. A translation:
    `0xffff888000001234 -> 0x1234  S:rw- U:---  wb  (level 1)`; a fault:
    `0x0000000000001000 -> page-fault (invalid) at level 2 stage 1 error_code=0x0 cr2=0x1000`; with two
    stages, ` gpa 0x...` after the PA (or after the stage). The VA has 16 digits, every other number as
    few as it needs. The columns of translations are built only for chunks that have one, and those of
    faults only for chunks that have one."""
    for t, ok in _chunks(a):
        fault = ~ok
        level = named(t.level, str)
        via = [text(" gpa "), hexadecimal(t.gpa)] if two_stage else []
        columns = [hexadecimal(t.va, 16), text(" -> ")]
        if ok.any():
            columns += _when(ok, hexadecimal(t.pa), *via, text("  "), named(t.perms, permissions, ok), text("  "),
                             _memtype(t, ok), text("  (level "), level, text(")"))
        if fault.any():
            columns += _when(fault, _kind(a, t, fault), text(" ("), _reason(t), text(") at level "), level,
                             text(" stage "), named(t.stage, str), *via,
                             *(c for k, v in t.syndrome.items() for c in (text(f" {k}="), hexadecimal(v))))
        yield output.lines(columns, len(t))


def json_lines(a: Answers, two_stage: bool) -> Iterator[str]:
    """The command's `--json` output, a chunk of lines at a time: one object a line, keys va, pa, fault,
    reason, level, stage, perms, memtype, syndrome (and gpa with two stages), numbers as hex strings, null
    where a fault has no PA, permissions or memory type (every string is an ASCII name or a hex number:
    nothing to escape)."""
    for t, ok in _chunks(a):
        fault = ~ok
        columns = [text('{"va": "'), hexadecimal(t.va), text('", "pa": ')]
        if ok.any():
            columns += _when(ok, text('"'), hexadecimal(t.pa), text('", "fault": null, "reason": "ok"'))
        if fault.any():
            columns += _when(fault, text('null, "fault": "'), _kind(a, t, fault), text('", "reason": "'), _reason(t),
                             text('"'))
        columns += [text(', "level": '), named(t.level, str), text(', "stage": '), named(t.stage, str),
                    text(', "perms": ')]
        if ok.any():
            columns += _when(ok, text('"'), named(t.perms, permissions, ok), text('", "memtype": "'), _memtype(t, ok),
                             text('", "syndrome": {}'))
        if fault.any():
            regs = [c for n, (k, v) in enumerate(t.syndrome.items())
                    for c in (text(f'{", " if n else ""}"{k}": "'), hexadecimal(v), text('"'))]
            columns += _when(fault, text('null, "memtype": null, "syndrome": {'), *regs, text("}"))
        columns += [text(', "gpa": "'), hexadecimal(t.gpa), text('"}')] if two_stage else [text("}")]
        yield output.lines(columns, len(t))


def va_column(data: bytes) -> U64 | None:
    """The numbers of a VA file in the usual form, read with numpy: every word (split at ASCII spaces, tabs,
    newlines, CR, VT, FF) "0x" (or "0X") and 1 to 16 hex digits. None when any word is not (decimal, octal,
    binary, `_` separators, comments, more digits, other bytes): the caller then reads the file line by line
    and says which line is wrong. The digits of each word are copied into a row of 16, right-aligned after
    "0" padding (words of one length, evenly spaced, as in a file of zero-padded addresses, in one strided
    copy; others gathered), and their values computed with arithmetic, not a lookup."""
    b = np.frombuffer(data, dtype=np.uint8)
    space = np.ones(b.shape[0] + 2, dtype=bool)
    space[1:-1] = (b == 32) | ((b - np.uint8(9)) < 5)            # " ", or "\t\n\v\f\r"
    edge = np.flatnonzero(space[1:] != space[:-1])
    starts, ends = edge[0::2], edge[1::2]              # each word: [start, end)
    if starts.size == 0:
        return np.zeros(0, dtype=np.uint64)
    lengths = ends - starts
    if lengths.min() < 3 or lengths.max() > 18 or (b[starts] != ord("0")).any() or \
            ((b[starts + 1] | 0x20) != ord("x")).any():
        return None
    digits = int(lengths[0]) - 2
    chars = np.full((starts.size, 16), ord("0"), dtype=np.uint8)
    if (lengths == digits + 2).all() and (starts.size == 1 or (np.diff(starts) == starts[1] - starts[0]).all()):
        stride = int(starts[1] - starts[0]) if starts.size > 1 else 0
        chars[:, 16 - digits:] = np.lib.stride_tricks.as_strided(b[int(starts[0]) + 2:], (starts.size, digits),
                                                                 (stride, 1))
    else:
        at = ends[:, None] + np.arange(-16, 0)         # the 16 bytes before each word's end
        lead = at < (starts + 2)[:, None]              # before the word's digits
        chars[~lead] = b[at[~lead]]
    decimal = (chars - np.uint8(ord("0"))) < 10
    letter = ((chars | np.uint8(0x20)) - np.uint8(ord("a"))) < 6     # "a"-"f" or "A"-"F"
    if not (decimal | letter).all():
        return None
    nibbles = (chars & np.uint8(0xF)) + np.uint8(9) * (chars >> np.uint8(6))     # "a"-"f", "A"-"F": 10-15
    pairs = (nibbles[:, 0::2] << 4 | nibbles[:, 1::2])[:, ::-1]    # the bytes, least significant first
    out: U64 = np.ascontiguousarray(pairs).view("<u8").reshape(-1).astype(np.uint64)
    return out


__all__ = ["ANY", "CHUNK", "Answers", "json_lines", "text_lines", "translate_vas", "va_column"]
