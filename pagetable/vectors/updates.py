"""The memory a vector set's accesses leave behind: the entry writes hardware makes as it translates (A/D
bits: RISC-V Svadu, AArch64 FEAT_HAFDBS with TCR.HA/HD and DBM, x86's Accessed and Dirty flags, EPT's when
EPTP.AD), so that RTL or a simulator that updates entries can be checked byte for byte.

`after_accesses(vs)` replays the cases in their order on a copy of the image: each case that translates
makes the writes `Walker.entry_updates` says (an entry used twice, once), and later cases see them, as a
core running the accesses one after another would. Cases that fault write nothing (hardware may set A in
the entries above a fault, but need not: the architectures leave it open, so the expected image does not).
"""

from __future__ import annotations

from ..physmem import PhysMem
from ..walker import Walker
from .schema import VectorSet

__all__ = ["after_accesses"]


def _over(walker: Walker, mem: PhysMem) -> Walker:
    """`walker`'s rules (and its stage 2's) over `mem`."""
    stage2 = None if walker.stage2 is None else _over(walker.stage2, mem)
    return Walker(mem, walker.rules, stage2, ram_only=walker.ram_only)


def after_accesses(vs: VectorSet, walker: Walker) -> tuple[PhysMem, int]:
    """A copy of `vs`'s memory after its cases ran in order through `walker` (the set's walker: its rules
    over `vs.mem`), and how many entry writes that took."""
    mem = PhysMem([(r.base, r.data.copy()) for r in vs.mem.regions])
    replay = _over(walker, mem)
    writes = 0
    for c in vs.cases:
        if c.pa is not None:
            writes += len(replay.entry_updates(c.va, c.access, c.privilege, apply=True))
    return mem, writes
