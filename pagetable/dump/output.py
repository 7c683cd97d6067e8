"""Text lines for many lanes at once: the dump commands' output built with numpy, a column of text at a time,
not formatted lane by lane in Python (a million f-strings take seconds; these columns take milliseconds).

A line is a sequence of `Column`s, each holding one piece of text per lane: a constant (`text`), a number in
hex as Python's `f"{v:#x}"` or `f"{v:#018x}"` (or C's `%016llx`) writes it (`hexadecimal`), a name chosen per
lane from a few distinct values (`named`: permissions, memory types, fault kinds, small decimals), or rows
of bytes made elsewhere (`fixed`). A piece can be left out
of some lanes (`only`: its text is empty there), so lanes whose lines have different shapes (a translation
and a fault) are written by one list of columns, each lane keeping the pieces of its own shape. `lines`
joins the pieces of every lane and ends each line with a newline: the bytes are exactly what the per-lane
f-strings would print. Everything written is ASCII.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
Lengths = npt.NDArray[np.intp]

_PAIRS = np.frombuffer(b"".join(f"{k:02x}".encode() for k in range(256)), dtype=np.uint16)   # a byte's 2 digits
_PREFIX = np.frombuffer(b"0x", dtype=np.uint16)[0]
_POWERS = np.array([16 ** k for k in range(1, 16)], dtype=np.uint64)   # the least values of 2 to 16 digits
_FEW = 4096                        # `named`: codes spanning fewer values than this are looked up, not sorted


@dataclass(frozen=True)
class Column:
    """One piece of text per lane: lane i's text is the last `lengths[i]` bytes of `chars[i]` (ASCII,
    right-aligned: a shorter text is padded on the left, and the padding is never written). `chars` may
    have a single row, shared by every lane (a constant), and `lengths` a single value."""

    chars: U8                # (lanes or 1, width)
    lengths: Lengths         # (lanes,) or (1,)


def text(s: str) -> Column:
    """The same ASCII text `s` in every lane."""
    data = np.frombuffer(s.encode("ascii"), dtype=np.uint8).reshape(1, -1)
    return Column(data, np.array([len(s)], dtype=np.intp))


def hexadecimal(values: npt.NDArray[np.unsignedinteger], digits: int | None = None, prefix: bool = True) -> Column:
    """Each value as Python's `f"{v:#x}"` writes it ("0x" and its digits, no leading zeros: 0 is "0x0"),
    or, given `digits` (1 to 16), zero-padded to that many digits (`f"{v:#0{digits + 2}x}"`: 16 digits is
    `f"{v:#018x}"`, which every u64 fits; ValueError for a value with more digits); without `prefix`, the
    digits alone (`f"{v:x}"`, `f"{v:0{digits}x}"`: C's `%016llx` with 16). Lower-case digits, from a table
    of each byte's two."""
    v = np.asarray(values, dtype=np.uint64).reshape(-1)
    lanes = v.shape[0]
    pairs = np.empty((lanes, 9), dtype=np.uint16)                   # "0x", then 2 digits per byte
    pairs[:, 0] = _PREFIX
    np.take(_PAIRS, v.astype(">u8").view(np.uint8).reshape(lanes, 8), out=pairs[:, 1:])
    chars = pairs.view(np.uint8)
    if digits is not None:
        if not 1 <= digits <= 16:
            raise ValueError(f"{digits} hex digits: a u64 has 1 to 16")
        if digits < 16 and lanes and int(v.max()) >> 4 * digits:
            raise ValueError(f"{int(v.max()):#x} has more than {digits} hex digits")
        return _last_digits(chars, digits, prefix)
    significant = 1 + np.searchsorted(_POWERS, v, side="right")      # digits without leading zeros
    if lanes and significant.min() == significant.max():           # one length: said once (`lines` is faster)
        return _last_digits(chars, int(significant[0]), prefix)
    if not prefix:
        return Column(chars, significant.astype(np.intp))
    lane = np.arange(lanes)
    chars[lane, 16 - significant] = ord("0")
    chars[lane, 17 - significant] = ord("x")
    return Column(chars, (significant + 2).astype(np.intp))


def _last_digits(chars: U8, digits: int, prefix: bool) -> Column:
    """The last `digits` of each lane's 16 hex digits (`chars`: "0x" and 16 digits a lane), after "0x" when
    `prefix`."""
    if not prefix:
        return Column(chars[:, 18 - digits:], np.array([digits], dtype=np.intp))
    if digits < 16:
        chars = chars[:, 16 - digits:]
        chars[:, 0], chars[:, 1] = ord("0"), ord("x")      # over the digits left out
    return Column(chars, np.array([2 + digits], dtype=np.intp))


def fixed(chars: U8) -> Column:
    """A row of ASCII bytes per lane (or one row for all), every byte of it written."""
    return Column(chars, np.array([chars.shape[1]], dtype=np.intp))


def named(codes: npt.NDArray[np.integer], name: Callable[[int], str],
          where: npt.NDArray[np.bool_] | None = None) -> Column:
    """`name(code)` in each lane, `name` called once per distinct code: for columns of few distinct values
    (permission masks, memory types, fault kinds, levels). Given `where`, only those lanes' codes are named
    and the other lanes' text is empty."""
    c = np.asarray(codes).reshape(-1).astype(np.int64)
    chosen = c if where is None else c[np.asarray(where, dtype=bool).reshape(-1)]
    if chosen.size and int(chosen.max()) - int(chosen.min()) < _FEW:       # small codes: a lookup, no sort
        low = int(chosen.min())
        distinct = np.flatnonzero(np.bincount(chosen - low)) + low
    else:
        distinct = np.unique(chosen)
    words = [name(int(k)).encode("ascii") for k in distinct]
    width = max((len(w) for w in words), default=0)
    table = np.zeros((len(words) + 1, width), dtype=np.uint8)     # the last row: empty, for lanes left out
    lengths = np.zeros(len(words) + 1, dtype=np.intp)
    for k, w in enumerate(words):
        table[k, width - len(w):] = np.frombuffer(w, dtype=np.uint8)
        lengths[k] = len(w)
    every = where is None or bool(np.all(where))
    if every and len(words) == 1:                                 # one text for all: a constant
        return Column(table[:1], lengths[:1])
    index = np.searchsorted(distinct, c)
    if not every:
        index[~np.asarray(where, dtype=bool).reshape(-1)] = len(words)
    elif len({len(w) for w in words}) == 1:                       # one length: said once (`lines` is faster)
        return Column(table[index], lengths[:1])
    return Column(table[index], lengths[index])


def only(where: npt.NDArray[np.bool_], column: Column) -> Column:
    """`column`'s text in the lanes `where` selects; empty text in the others."""
    keep = np.asarray(where, dtype=bool).reshape(-1)
    if keep.all():
        return column
    return Column(column.chars, np.where(keep, np.broadcast_to(column.lengths, keep.shape), 0).astype(np.intp))


def lines(columns: Sequence[Column], lanes: int) -> str:
    """Every lane's pieces joined in order, each lane's line ended by a newline: `lanes` lines ("" for
    none). The pieces are laid side by side in one (lanes, total width) array — the constants once, in a
    row copied to every lane — with a mask of the bytes each lane writes (only where some piece's length
    varies by lane), and the masked bytes taken in order."""
    used = [c for c in columns if c.chars.shape[1] and c.lengths.any()]     # pieces no lane writes: dropped
    width = sum(c.chars.shape[1] for c in used) + 1
    row, row_keep = np.empty(width, dtype=np.uint8), np.ones(width, dtype=bool)
    each: list[tuple[int, Column]] = []               # the pieces with text of their own in each lane
    varied: list[tuple[int, Column]] = []             # the pieces whose length differs from lane to lane
    at = 0
    for c in used:
        w = c.chars.shape[1]
        if c.chars.shape[0] == 1:
            row[at:at + w] = c.chars[0]
        else:
            each.append((at, c))
        if c.lengths.shape[0] == 1:
            row_keep[at:at + w - int(c.lengths[0])] = False
        else:
            varied.append((at, c))
        at += w
    row[at] = ord("\n")
    out = np.empty((lanes, width), dtype=np.uint8)
    out[:] = row
    for at, c in each:
        out[:, at:at + c.chars.shape[1]] = c.chars
    if not varied:
        return _ascii(out if row_keep.all() else out[:, row_keep])
    keep = np.empty((lanes, width), dtype=bool)
    keep[:] = row_keep
    for at, c in varied:
        w = c.chars.shape[1]
        keep[:, at:at + w] = np.arange(w) >= (w - c.lengths)[:, None]
    return _ascii(out[keep])


CHUNK = 1 << 16
"""Lines `chunked_lines` formats at a time."""


def chunked_lines(n: int, row: Callable[[slice], Sequence[Column]]) -> Iterator[str]:
    """`n` lines (without their newlines), `row(chunk)` giving the columns of a slice of them: formatted
    `CHUNK` at a time, so that the text of a few million lines is never held at once."""
    for at in range(0, n, CHUNK):
        k = slice(at, min(at + CHUNK, n))
        yield from lines(row(k), k.stop - k.start).split("\n")[:-1]


def _ascii(chars: U8) -> str:
    """The text of ASCII bytes, decoded from the array's own memory (not copied to a bytes first)."""
    return str(np.ascontiguousarray(chars).data, "ascii")


__all__ = ["CHUNK", "Column", "chunked_lines", "fixed", "hexadecimal", "lines", "named", "only", "text"]
