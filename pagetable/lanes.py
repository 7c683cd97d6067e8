"""Rules written once that run on many lanes (numpy arrays) or on one (Python ints).

An architecture's walk rules (`WalkRules.step`, `written`, `syndrome`) and the entry-codec tests the
generic table uses are written with Python's operators: `& | ^ >> << + * == != < >`. Those mean the same
for uint64/uint8 numpy arrays and for Python ints and bools (numpy 2 treats a Python int operand as a weak
scalar of the array's type, so `pte >> 12` stays uint64). A bulk walk passes arrays, one per column; a
single call passes ints and costs microseconds instead of the tens of microseconds numpy spends on each
operation of a one-element array. The few things operators cannot say the same way for both are here:
logical negation (`~` on a Python bool is an int), choosing per lane, the first fault that holds, turning
truth into numbers, narrowing flag bits to a byte (tests on a byte cost an eighth of tests on the u64),
and table lookups.

A value is a `Word` (entries, addresses, carries: uint64 or int), a `Small` (reasons, accesses,
privileges, permission masks: uint8 or int) or a `Flag` (bool array or bool). The three are typed `Any`:
numpy's type stubs cannot say "the same operators on an array or an int" (a union would make every array
caller cast the result back), so these names document what a value is, and the tests hold the two forms
to each other (tests/test_walker_lanes.py).
"""

from __future__ import annotations

import functools
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]

Word: TypeAlias = Any             # U64 | int
Small: TypeAlias = Any            # U8 | int
Flag: TypeAlias = Any             # Bool | bool


def bit(value: Word, mask: int) -> Flag:
    """Whether any bit of `mask` is set, per lane."""
    out: Flag = (value & mask) != 0
    return out


def narrow(value: Word, mask: int) -> Small:
    """The bits of `mask` (below bit 8) of each lane, as uint8: flag tests on a byte cost an eighth of
    tests on the u64."""
    if isinstance(value, np.ndarray):
        out: U8 = (value & mask).astype(np.uint8)
        return out
    return value & mask


def not_(flag: Flag) -> Flag:
    """Logical negation, per lane."""
    if isinstance(flag, np.ndarray):
        out: Bool = ~flag
        return out
    return not flag


def where(flag: Flag, yes: Word, no: Word) -> Word:
    """`yes` where `flag` holds, else `no`, per lane (both uint64 for arrays)."""
    if isinstance(flag, np.ndarray):
        out: U64 = np.asarray(np.where(flag, yes, no), dtype=np.uint64)
        return out
    return yes if flag else no


def u8(flag: Flag) -> Small:
    """1 where `flag` holds, else 0, as uint8 (an int for one lane)."""
    if isinstance(flag, np.ndarray):
        out: U8 = flag.view(np.uint8)
        return out
    return int(flag)


def u64(flag: Flag) -> Word:
    """1 where `flag` holds, else 0, as uint64 (an int for one lane)."""
    if isinstance(flag, np.ndarray):
        out: U64 = flag.astype(np.uint64)
        return out
    return int(flag)


def first(like: Word, *cases: tuple[Flag, int]) -> Small:
    """Per lane (lanes shaped like `like`), the value of the first case whose flag holds, or 0: the rules'
    checks in the manual's order, where the first failing check is the fault."""
    if isinstance(like, np.ndarray):
        out = np.zeros(like.shape, dtype=np.uint8)
        held = [flag for flag, _ in cases if isinstance(flag, np.ndarray) or flag]
        if not held:
            return out
        some = np.flatnonzero(functools.reduce(np.logical_or, held, np.zeros(like.shape, dtype=bool)))
        for flag, value in reversed(cases):               # only where some case holds (usually few lanes)
            out[some[flag[some] if isinstance(flag, np.ndarray) else flag]] = value
        return out
    for flag, value in cases:
        if flag:
            return value
    return 0


def take(table: npt.NDArray[Any], index: Word) -> Word:
    """`table[index]` per lane (a numpy table indexed by a column, or by one int)."""
    if isinstance(index, np.ndarray):
        out: U64 = table[index]
        return out
    return int(table[index])


def full(like: Word, value: int, dtype: type[np.generic]) -> Word:
    """`value` in every lane shaped like `like`."""
    if isinstance(like, np.ndarray):
        out: U64 = np.full(like.shape, value, dtype=dtype)
        return out
    return value
