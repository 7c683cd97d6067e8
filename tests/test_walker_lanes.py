"""The one-lane walk (`Walker.translate`: the rules on Python ints, verdicts remembered by the entry bits the
rules read) against the bulk walk (`translate_many`: the same rules on numpy columns).

The fuzz suites compare the two lane by lane on hostile tables (tests/fuzzing.py, `assert_lanes_agree`);
here: the promise the one-lane walk's memory rests on (`WalkRules.judged_bits`: entries equal in those bits
get the same verdict) checked against `step` itself, and the rules giving the same verdict on ints as on
columns."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pagetable import walker as walker_module
from pagetable.arch.riscv_sv39 import SV39, SV39X4, SV48, SV48X4, SV57, Hgatp, Satp
from pagetable.arch.riscv_sv39.walk import RiscvOptions, RiscvRules
from pagetable.flags import MappingFlags as F
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.translation import ALL_PERMS, StepColumns
from pagetable.walker import Access, Privilege, Walker

from .fuzzing import assert_lanes_agree

OPTIONS = st.builds(RiscvOptions, sum=st.booleans(), mxr=st.booleans(), ad=st.sampled_from(["svade", "svadu"]),
                    svnapot=st.booleans(), svpbmt=st.booleans())
RULES = st.one_of(
    st.builds(lambda fmt, o: RiscvRules(Satp.for_table(fmt, 0x8000_0000), o), st.sampled_from([SV39, SV48, SV57]),
              OPTIONS),
    st.builds(lambda fmt, o: RiscvRules.gstage(Hgatp.for_table(fmt, 0x8000_0000), o),
              st.sampled_from([SV39X4, SV48X4]), OPTIONS))
# any bits; or an entry without reserved bits 60:54, whose PPN is aligned to some level's superpages (or not),
# perhaps a Svnapot 64 KiB one (PPN[3:0] = 1000), with N and PBMT values
ENTRIES = st.integers(0, (1 << 64) - 1) | st.builds(
    lambda ppn, align, napot, high, low: high | ((ppn << (9 * align) & ((1 << 44) - 1)) | napot) << 10 | low,
    st.integers(0, (1 << 44) - 1), st.integers(0, 4), st.sampled_from([0, 8]),
    st.sampled_from([0, 1 << 63, 1 << 61, 2 << 61, 3 << 61, 1 << 63 | 1 << 61]), st.integers(0, 0xFF))


RULES_SV39 = RiscvRules(Satp.for_table(SV39, 0x8000_0000))
NAPOT = RiscvRules(Satp.for_table(SV39, 0x8000_0000), RiscvOptions(svnapot=True))   # 64 KiB pages


@settings(max_examples=500, deadline=None)
@given(RULES, st.integers(0, 4), ENTRIES, st.integers(0, (1 << 64) - 1), st.sampled_from(list(Access)),
       st.sampled_from(list(Privilege)), st.integers(0, ALL_PERMS))
@example(RULES_SV39, 1, 0x200 << 10 | 0xCF, 0x1F0 << 10, Access.READ, Privilege.SUPERVISOR, ALL_PERMS)  # step 6
@example(NAPOT, 2, 1 << 63 | 0x1238 << 10 | 0xCF, 0x7 << 10, Access.READ, Privilege.SUPERVISOR, ALL_PERMS)
def test_entries_equal_in_the_judged_bits_get_one_verdict(rules: RiscvRules, level: int, pte: int, noise: int,
                                                          access: Access, privilege: Privilege, carry: int) -> None:
    region = rules.regime.single
    depth = level % region.fmt.depth_count
    judged = rules.judged_bits(region, depth)
    other = (pte & judged) | (noise & ~judged)                # differs from pte only where the rules don't look
    one = rules.step(region, depth, pte, access, privilege, carry)
    assert rules.step(region, depth, other, access, privilege, carry) == one
    columns = StepColumns.of(rules.step(region, depth, np.array([pte, other], dtype=np.uint64),
                                        np.full(2, access, dtype=np.uint8), np.full(2, privilege, dtype=np.uint8),
                                        np.full(2, carry, dtype=np.uint64)))
    for n in range(2):                                        # the same rules on columns give the same verdict
        assert tuple(int(np.broadcast_to(c, (2,))[n]) for c in columns) == tuple(int(v) for v in one)


def test_one_lane_reuses_verdicts_and_still_reads_each_entry() -> None:
    """Two leaves with the same attributes share a remembered verdict, yet each lane gets its own PA; a
    leaf rewritten between calls is read again."""
    mem = PhysMem([(0x8000_0000, 4 << 20)])
    pt = PageTable(SV39, mem, FrameAllocator(mem, 0x8000_0000 + (2 << 20), 2 << 20))
    pt.map(0x1000, 0x8000_0000, 0x1000, F.READ | F.WRITE)
    pt.map(0x2000, 0x8000_5000, 0x1000, F.READ | F.WRITE)
    w = Walker(mem, RiscvRules(Satp.for_table(SV39, pt.root_paddr)))
    assert w.translate(0x1008).pa == 0x8000_0008
    assert w.translate(0x2010).pa == 0x8000_5010
    pt.protect(0x2000, F.READ)
    assert w.translate(0x2010, "write").fault is not None
    assert w.translate(0x2010, "read").pa == 0x8000_5010
    pt.unmap(0x1000)
    assert w.translate(0x1008).pa is None


def test_bare_one_lane_agrees_with_the_batch() -> None:
    mem = PhysMem([(0x8000_0000, 1 << 20)])
    w = Walker(mem, RiscvRules(0))
    vas = np.array([0, 0x8000_0000, 0x8000_0000 + (1 << 20) - 1, 0x8000_0000 + (1 << 20), (1 << 64) - 1],
                   dtype=np.uint64)
    for access in Access:
        for privilege in Privilege:
            assert_lanes_agree(w, w.translate_many(vas, access, privilege), access, privilege)


def _mixed_tables(rng: np.random.Generator) -> Walker:
    """Three tables (one per Sv39 level, each the next one's parent) of random mixed entries: pointers,
    leaves of each level and permission, and entries that fault in every way."""
    ram = 0x8000_0000
    mem = PhysMem([(ram, 64 << 12)])
    words = mem.regions[0].words
    root, mid, last = 0, 1, 2                               # frames: one table per level
    kinds = np.array([0, 0x1, 0xCF, 0x4F, 0xC3, 0x05, 0xDF, 0xC7 | (1 << 54), 0xC9, 0x0D], dtype=np.uint64)
    for frame, target in ((root, mid), (mid, last), (last, 3)):
        bits = kinds[rng.integers(0, len(kinds), 512)]
        pointer = (bits & np.uint64(0xE)) == 0              # V=1 with R=W=X=0 points at the next table
        ppn = np.where(pointer, np.uint64((ram >> 12) + target), rng.integers(0, 1 << 20, 512, dtype=np.uint64))
        words[frame * 512:(frame + 1) * 512] = (ppn << np.uint64(10)) | bits
    return Walker(mem, RiscvRules(Satp.for_table(SV39, ram + root * 4096), RiscvOptions(sum=True)))


def test_lanes_that_read_one_table_take_its_entries_verdicts() -> None:
    """A bulk walk whose lanes all read one table judges that table's entries once (`_step_columns`): with
    thousands of lanes through tables of mixed entries (pointers, leaves of each level, every kind of
    fault), every lane still gets what it gets alone."""
    rng = np.random.default_rng(11)
    w = _mixed_tables(rng)
    vas = rng.integers(0, 1 << 38, 6000, dtype=np.uint64)
    for access in Access:
        for privilege in Privilege:
            t = w.translate_many(vas, access, privilege)
            assert len(np.unique(t.reason)) > 3                 # the table's mix reached the lanes
            assert_lanes_agree(w, t, access, privilege)


def test_runs_of_alike_lanes_take_their_first_lanes_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lanes grouped by access and privilege (as a vector set's cases come: 50 sorted VAs in 4 MiB for each
    access and privilege in turn, then the next 50) are judged a run of alike lanes at a time (`_step_columns`);
    through tables of mixed entries every lane still gets what it gets alone, and the runs were really
    taken. Neighbouring groups differ in the access or in the privilege alone, so a run that ignored either
    would give some lanes the wrong verdict."""
    rng = np.random.default_rng(12)
    w = _mixed_tables(rng)
    blocks = [(a, p) for p in Privilege for a in (Access if p == Privilege.SUPERVISOR else reversed(Access))]
    bases = rng.integers(0, 1 << 38, (40, 1, 1), dtype=np.uint64)          # 50 VAs within 4 MiB: a group
    chunks = bases + np.sort(rng.integers(0, 4 << 20, (40, 1, 50), dtype=np.uint64))   # shares upper entries
    vas = np.broadcast_to(chunks, (40, len(blocks), 50)).reshape(-1)
    which = np.broadcast_to(np.arange(len(blocks)).reshape(1, -1, 1), (40, len(blocks), 50)).reshape(-1)
    access = np.array([a for a, _ in blocks], dtype=np.uint8)[which]
    privilege = np.array([p for _, p in blocks], dtype=np.uint8)[which]
    judged_in_runs = []
    run_heads = walker_module._run_heads

    def spy(most: int, *columns: npt.NDArray[Any]) -> npt.NDArray[np.intp] | None:
        heads = run_heads(most, *columns)
        judged_in_runs.append(heads is not None)
        return heads
    monkeypatch.setattr(walker_module, "_run_heads", spy)
    t = w.translate_many(vas, access, privilege)
    assert any(judged_in_runs)
    assert len(np.unique(t.reason)) > 3
    for n, (a, p) in enumerate(blocks):
        assert_lanes_agree(w, t.take(np.flatnonzero(which == n)), a, p)


@pytest.mark.parametrize("two_stage", [False, True], ids=["one stage", "two stages"])
def test_beyond_ram_translates_to_holes_but_reads_tables_from_ram(two_stage: bool) -> None:
    """A walker's final access must hit RAM (`pa-outside-memory` otherwise); `beyond_ram()` takes any output
    address as a target, in the bulk walk, the one-lane walk and the listing alike, while a table in a hole
    still faults."""
    mem = PhysMem([(0x8000_0000, 1 << 20)])
    pt = PageTable(SV39, mem, FrameAllocator(mem))
    pt.map(0x1000, 0x1000_0000, 4096, F.READ | F.WRITE)            # a device page, outside RAM
    pt.map(0x2000, 0x8008_0000, 4096, F.READ)                      # RAM
    root = mem.read_u64(pt.root_paddr)
    mem.write_u64(pt.root_paddr + 8, 0x0400_0001)                   # root[1] -> a table at 0x1000_0000: a hole
    s1 = RiscvRules(Satp.for_table(SV39, pt.root_paddr))
    if two_stage:                                                   # stage 2: the identity over RAM and the device
        g = PageTable(SV39X4, mem, FrameAllocator(mem, 0x8004_0000))
        g.map_region(0x8000_0000, 0x8000_0000, 1 << 20, F.READ | F.WRITE | F.EXECUTE | F.USER)
        g.map(0x1000_0000, 0x1000_0000, 4096, F.READ | F.WRITE | F.USER)
        ram_only = Walker(mem, s1, stage2=Walker(mem, RiscvRules.gstage(Hgatp.for_table(SV39X4, g.root_paddr))))
    else:
        ram_only = Walker(mem, s1)
    assert root and ram_only.ram_only
    anywhere = ram_only.beyond_ram()
    assert not anywhere.ram_only and (anywhere.stage2 is None or not anywhere.stage2.ram_only)
    vas = np.array([0x1000, 0x2000, 0x4000_0000], dtype=np.uint64)
    for w, device in ((ram_only, "pa-outside-memory"), (anywhere, "ok")):
        bulk = w.translate_many(vas, "read", "supervisor")
        one = [w.translate(int(va), "read", "supervisor") for va in vas]
        # a table in a hole: no RAM to read (through stage 2: its implicit read hits no RAM)
        assert [t.reason.label for t in one] == [device, "ok", "pa-outside-memory" if two_stage else
                                                 "table-outside-memory"]
        assert one[2].stage == (2 if two_stage else 1)
        assert bulk.reason.tolist() == [int(t.reason) for t in one]
        if device == "ok":
            assert int(bulk.pa[0]) == one[0].pa == 0x1000_0000
        listed = w.mappings()
        assert listed.verdict is not None
        assert {int(va): int(v) for va, v in zip(listed.va, listed.verdict, strict=True)}[0x1000] == \
            int(one[0].reason)
