"""Shared pieces of the fuzz tests (tests/test_fuzz_*.py).

Two profiles: the short one runs in `make test`; `make fuzz` sets PAGETABLE_FUZZ=long for the long one.
Every fuzz example counts itself under its entry point (`count`), and the run prints the totals
(conftest.py), so `make fuzz` shows how many cases each entry point took. `bounded` turns a hang into a
failure and checks the memory an example allocated (numpy arrays included) against a limit; tracing
allocations makes a call about four times slower, so the long profile measures every `MEASURE_EVERY`-th
call (the short one every call).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import signal
import time
import tracemalloc
from collections.abc import Iterator
from types import FrameType
from typing import Any

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from pagetable.arch.riscv_sv39 import PTE
from pagetable.mappings import Mappings
from pagetable.walker import Access, Privilege, Reason, Translations, Walker, perm_bit

LONG = os.environ.get("PAGETABLE_FUZZ") == "long"
MEASURE_EVERY = 8 if LONG else 1
COUNTS: collections.Counter[str] = collections.Counter()
_calls = itertools.count()
STARTED = time.monotonic()


def fuzz(short: int, long: int) -> settings:
    """Hypothesis settings for a fuzz test: `short` examples in `make test`, `long` in `make fuzz`."""
    return settings(max_examples=long if LONG else short, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])


def count(entry_point: str) -> None:
    COUNTS[entry_point] += 1


class Hang(Exception):
    """An example ran past its time limit."""


@contextlib.contextmanager
def bounded(seconds: float, memory: int) -> Iterator[None]:
    """Fail if the body runs longer than `seconds` or allocates more than `memory` bytes at its peak."""
    def alarm(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"no answer after {seconds} s")
    previous = signal.signal(signal.SIGALRM, alarm)
    measure = next(_calls) % MEASURE_EVERY == 0
    started = measure and not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        peak = tracemalloc.get_traced_memory()[1] - base
        if started:
            tracemalloc.stop()
    assert not measure or peak <= memory, f"allocated {peak:,} bytes, more than {memory:,}"


# Values of every kind a caller might pass by mistake.
JUNK: st.SearchStrategy[Any] = st.one_of(
    st.integers(-(1 << 70), 1 << 70), st.sampled_from([-1, -8, 0, 1, 7, 1 << 63, (1 << 64) - 1, 1 << 64]),
    st.floats(allow_nan=True), st.none(), st.booleans(), st.text(max_size=4), st.binary(max_size=8),
    st.builds(np.int64, st.integers(-(1 << 63), (1 << 63) - 1)), st.builds(np.uint64, st.integers(0, (1 << 64) - 1)),
    st.lists(st.integers(-4, 1 << 65), max_size=3), st.just(np.array([1.5])), st.just(np.array([-1])),
    st.just(object()),
)


def table_entries(ram: int, frames: int) -> st.SearchStrategy[int]:
    """RISC-V PTEs an adversary writes into tables of the `frames` frames at `ram`: pointers back into them
    (cycles, self-maps), pointers and leaves outside RAM, every flag and reserved-bit combination, and
    anything at all."""
    frame = st.integers(0, frames - 1).map(lambda f: ram + f * 4096)
    ppn = PTE["PPN"].lsb
    return st.one_of(
        frame.map(lambda pa: pa >> 12 << ppn | 1),                                          # table pointer
        st.tuples(frame, st.integers(0, 0xFF)).map(lambda t: t[0] >> 12 << ppn | t[1] | 1),  # leaf, any flags
        st.tuples(st.integers(0, (1 << 44) - 1), st.integers(0, 0x3FF)).map(lambda t: t[0] << ppn | t[1]),
        st.tuples(frame, st.integers(0, 0x3FF), st.integers(0, 0x3FF)).map(                 # bits 63:54 set
            lambda t: t[2] << 54 | t[0] >> 12 << ppn | t[1]),
        st.integers(0, (1 << 64) - 1),
        st.just(0),
    )


def assert_listing_agrees(listed: Walker, walker: Walker, m: Mappings) -> None:
    """`m` = `listed.mappings()`; `walker` translates the same table (the stage alone, or both stages). At
    each row's VA, an access translates exactly when the row's `perms` allow it (to the row's PA, or GPA
    for a stage-1 table of two stages), but where the listing cannot judge the whole row by its first byte:
    a leaf only partly RAM, a stage-1 leaf larger than stage 2's pages. Every rejected row faults for every
    access."""
    assert m.perms is not None and m.verdict is not None
    regions = walker.stage2.rules.regime.regions if walker.stage2 is not None else ()
    page = regions[0].fmt.page_size if regions else 1 << 64
    for access in Access:
        for privilege in Privilege:
            t = walker.translate_many(m.va, access, privilege)
            allowed = (m.perms & np.uint8(perm_bit(access, privilege))) != 0
            fine = t.reason == 0
            partly = (t.reason == Reason.PA_OUTSIDE_MEMORY) | ((t.stage == 2) & (t.gpa != m.slot) & (m.size > page))
            assert np.all(~fine | allowed) and np.all(~allowed | fine | partly), (access, privilege)
            out = t.gpa if walker.stage2 is not None else t.pa
            assert np.array_equal(out[fine], m.pa[fine])
            assert np.all(~fine[m.verdict != 0])


def assert_listing_covers(m: Mappings, t: Translations) -> None:
    """Every VA that `t` reached a leaf for lies in a row of the listing `m` (a shared table is listed under
    each of its aliases; not where the listing says some VAs are not: past the alias bound, a loop, a table
    used at two levels)."""
    if any(e.kind != "unreadable" and not e.listed.all() for e in m.events):
        return
    final = t.implicit == 0                       # not a fault of a stage-1 table access
    reached = (t.reason == 0) | ((t.reason == Reason.PA_OUTSIDE_MEMORY) | (t.stage == 2)) & final
    if not len(m):
        assert not np.any(reached)
        return
    order = np.argsort(m.va)
    va, end = m.va[order], m.va[order] + (m.size[order] - np.uint64(1))
    k = np.searchsorted(va, t.va, side="right") - 1
    inside = (k >= 0) & (t.va <= end[np.clip(k, 0, None)])
    assert np.all(inside[reached]), [hex(int(v)) for v in t.va[reached & ~inside][:4]]


def assert_lanes_agree(walker: Walker, t: Translations, access: Access, privilege: Privilege) -> None:
    """Each lane of `t` (= `walker.translate_many(..., access, privilege)`) translated alone
    (`Walker.translate`, the one-lane walk with its remembered verdicts) gives the same outcome, field by
    field: the PA where it translates, else the fault, with level, entry, stage, GPA, implicit access,
    permissions, memory type and syndrome."""
    for n in range(len(t)):
        one = walker.translate(int(t.va[n]), access, privilege)
        lane = (one.reason, one.level, one.pte, one.stage, one.implicit, one.perms, one.memtype)
        batch = (t.reason[n], t.level[n], t.pte[n], t.stage[n], t.implicit[n] != 0, t.perms[n], t.memtype[n])
        assert lane == batch, (hex(int(t.va[n])), lane, batch)
        assert one.pa == (int(t.pa[n]) if t.reason[n] == Reason.OK else None)
        assert one.gpa == (int(t.gpa[n]) if walker.stage2 is not None else None)
        assert dict(one.syndrome) == ({k: int(v[n]) for k, v in t.syndrome.items()} if one.reason else {})
