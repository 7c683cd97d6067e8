"""The multi-architecture walk contract: regimes with several regions, the effective permissions and memory
types a walk returns, and the codec's memory types. RISC-V is the only architecture so far, so regions other
than satp's are built here by hand from Sv39-shaped formats: the walker must pick the region by the select
bit, check the rest of the VA against that region's format, honour an ignored top byte and a disabled
region, and list each region on its own."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pagetable.arch.riscv_sv39 import SV39, SV39X4, Hgatp, RiscvCodec, Satp, Vsatp
from pagetable.arch.riscv_sv39.entry import PTE
from pagetable.arch.riscv_sv39.walk import HypervisorOptions, RiscvOptions, RiscvRules, two_stage_rules
from pagetable.errors import InvalidArgument
from pagetable.flags import MappingFlags as F
from pagetable.format import EntryKind, Extension
from pagetable.frames import FrameAllocator
from pagetable.lanes import Small, Word
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.translation import ALL_PERMS, MemoryType, Reason, Regime, Region, memory_type_flags, perm_bit
from pagetable.walker import Access, Privilege, Walker

RAM = 0x8000_0000
LOW = dataclasses.replace(SV39, name="low half", extension=Extension.ZERO)     # TTBR0-like: upper bits 0
HIGH = dataclasses.replace(SV39, name="high half", extension=Extension.ONES)   # TTBR1-like: upper bits 1


def _two_regions(ignore_top: int = 0, high_enabled: bool = True) -> tuple[Walker, PageTable, PageTable]:
    mem = PhysMem([(RAM, 4 << 20)])
    frames = FrameAllocator(mem)
    lo, hi = PageTable(LOW, mem, frames), PageTable(HIGH, mem, frames)
    lo.map(0x1000, RAM + 0x10_0000, 0x1000, F.READ | F.WRITE)
    hi.map((1 << 64) - 0x2000, RAM + 0x20_0000, 0x1000, F.READ | F.EXECUTE)
    rules = RiscvRules(Satp.for_table(SV39, lo.root_paddr))
    rules.regime = Regime("two roots", (
        Region("root0", LOW, lo.root_paddr, select_bit=55, ignore_top=ignore_top),
        Region("root1", HIGH, hi.root_paddr, select_bit=55, ignore_top=ignore_top,
               allowed=ALL_PERMS if high_enabled else 0)))
    return Walker(mem, rules), lo, hi


def test_the_select_bit_chooses_the_region_and_its_format_checks_the_rest() -> None:
    w, _, _ = _two_regions()
    t = w.translate_many([0x1008, (1 << 64) - 0x2000 + 8, 0x0080_0000_0000_1008, 0xFF00_0000_0000_1008])
    assert t.reason.tolist() == [Reason.OK, Reason.OK, Reason.NON_CANONICAL, Reason.NON_CANONICAL]
    assert t.pa[:2].tolist() == [RAM + 0x10_0008, RAM + 0x20_0008]
    # bit 55 set selects root1, whose format wants every bit above 38 set: 0x0080_... is not canonical
    assert w.rules.regime.select_np(np.array([0x1000, (1 << 64) - 1], dtype=np.uint64)
                                    ).tolist() == [0, 1]


def test_an_ignored_top_byte_is_not_translated() -> None:
    w, _, _ = _two_regions(ignore_top=8)
    t = w.translate_many([0xAB00_0000_0000_1008, 0x12FF_FFFF_FFFF_E008])
    assert t.reason.tolist() == [Reason.OK, Reason.OK]
    assert t.pa.tolist() == [RAM + 0x10_0008, RAM + 0x20_0008]


def test_a_disabled_region_faults_without_a_walk() -> None:
    w, _, _ = _two_regions(high_enabled=False)
    t = w.translate((1 << 64) - 0x2000)
    assert (t.reason, t.pte, t.level, t.syndrome) == (Reason.INVALID, 0, 2, {"scause": 13, "stval": t.va})
    low = w.translate(0x1008)
    assert (low.pa, low.perms) == (RAM + 0x10_0008, 0b000_011)


def test_each_region_is_listed_on_its_own() -> None:
    w, _, _ = _two_regions()
    with pytest.raises(InvalidArgument, match="2 regions, not one"):
        w.mappings()
    low, high = w.mappings(region=0), w.mappings(region=1)
    assert low.va.tolist() == [0x1000] and high.va.tolist() == [(1 << 64) - 0x2000]
    assert high.perms is not None and high.perms.tolist() == [perm_bit(Access.READ, Privilege.SUPERVISOR) |
                                                               perm_bit(Access.EXECUTE, Privilege.SUPERVISOR)]


def test_a_regime_of_several_regions_needs_select_bits() -> None:
    with pytest.raises(InvalidArgument, match="needs a select bit"):
        Regime("bad", (Region("a", LOW, 0), Region("b", HIGH, 0)))


# ------------------------------------------------------------------ effective permissions (perm_bit layout)
def _one_leaf(raw_flags: int, **options: object) -> Walker:
    mem = PhysMem([(RAM, 1 << 20)])
    pt = PageTable(SV39, mem, FrameAllocator(mem))
    pt.map(0x1000, RAM + 0x8_0000, 0x1000, F.READ)
    mem.write_u64(pt.lookup(0x1000).pa, (RAM + 0x8_0000) >> 12 << 10 | raw_flags)
    return Walker(mem, RiscvRules(Satp.for_table(SV39, pt.root_paddr), RiscvOptions(**options)))  # type: ignore


V, R, W, X, U, A, D = 0x1, 0x2, 0x4, 0x8, 0x10, 0x40, 0x80


@pytest.mark.parametrize(("bits", "options", "perms"), [
    (V | R | W | A | D, {}, 0b000_011),                    # supervisor r w
    (V | R | W | X | U | A | D, {}, 0b111_000),            # a U page: user r w x, supervisor nothing (no SUM)
    (V | R | W | X | U | A | D, {"sum": True}, 0b111_011),  # SUM: supervisor r w, never x
    (V | X | A, {}, 0b000_100),                            # execute-only
    (V | X | A, {"mxr": True}, 0b000_101),                 # MXR: X pages readable
    (V | R | W | A, {}, 0b000_001),                        # Svade, D=0: writes fault, so no w
    (V | R | W | A, {"ad": "svadu"}, 0b000_011),           # Svadu: hardware sets D
    (V | R | W | D, {}, 0),                                # Svade, A=0: every access faults
])
def test_effective_permissions_are_those_of_the_whole_walk(bits: int, options: dict[str, object],
                                                          perms: int) -> None:
    w = _one_leaf(bits, **options)
    for access in Access:
        for privilege in Privilege:
            t = w.translate(0x1000, access, privilege)
            allowed = bool(perms & perm_bit(access, privilege))
            assert t.ok == allowed, (access, privilege)
            assert t.perms == (perms if allowed else 0)            # 0 where the access faulted
    m = w.mappings()
    assert m.perms is not None and m.perms.tolist() == [perms]


def test_bare_translates_everything_with_all_permissions() -> None:
    mem = PhysMem([(RAM, 1 << 20)])
    t = Walker(mem, RiscvRules(0)).translate(RAM + 8, "execute", "user")
    assert (t.pa, t.perms, t.memtype, t.syndrome) == (RAM + 8, ALL_PERMS, MemoryType.DEFAULT, {})


# ---------------------------------------------------------------------------------------------- memory types
def test_the_codec_decodes_memory_types_through_its_context() -> None:
    raw = np.array([PTE.set(V | R, "PBMT", p) for p in range(4)], dtype=np.uint64)
    assert RiscvCodec(svpbmt=True).memory_type_np(raw, False).tolist() == [
        MemoryType.DEFAULT, MemoryType.RISCV_NC, MemoryType.RISCV_IO, MemoryType.NONE]
    assert RiscvCodec().memory_type_np(raw, False).tolist() == [MemoryType.DEFAULT] * 4
    assert memory_type_flags(np.array([MemoryType.RISCV_IO, MemoryType.RISCV_NC, MemoryType.DEFAULT],
                                      dtype=np.uint8)).tolist() == [F.DEVICE, F.UNCACHED, 0]
    for kind in EntryKind:
        for level in SV39.levels:
            assert RiscvCodec().layout_for(kind, level.span) is PTE


def test_memory_types_of_one_and_two_stages() -> None:
    """Svpbmt: a leaf's PBMT is its memory type; with two stages, a VS-stage PBMT other than PMA overrides
    the G-stage's (Svpbmt chapter, with the hypervisor extension)."""
    mem = PhysMem([(RAM, 4 << 20)])                               # host RAM: guest RAM, then G-stage tables
    g = PageTable(SV39X4.with_codec(RiscvCodec(svpbmt=True, gstage=True)), mem,
                  FrameAllocator(mem, base=RAM + (3 << 20), size=1 << 20))
    g.map(0, RAM, 2 << 20, F.READ | F.WRITE | F.EXECUTE)                               # guest RAM at GPA 0
    g.map(2 << 20, RAM + (2 << 20), 0x1000, F.READ | F.WRITE | F.DEVICE)             # an IO page at 2 MiB
    guest = PhysMem([(0, 2 << 20)])                                  # the guest's view of its RAM
    vs = PageTable(SV39.with_codec(RiscvCodec(svpbmt=True)), guest, FrameAllocator(guest, base=1 << 20,
                                                                                     size=1 << 20))
    vs.map(0x4000, 2 << 20, 0x1000, F.READ)                          # PMA over the G-stage's IO page
    vs.map(0x5000, 2 << 20, 0x1000, F.READ | F.UNCACHED)             # NC overrides IO
    vs.map(0x6000, 0x1000, 0x1000, F.READ | F.DEVICE)                # IO over the G-stage's PMA
    mem.write(RAM, guest.read(0, 2 << 20))
    w = Walker.nested(mem, two_stage_rules(Vsatp.for_table(SV39, vs.root_paddr),
                                           Hgatp.for_table(SV39X4, g.root_paddr), HypervisorOptions(svpbmt=True)))
    t = w.translate_many([0x4000, 0x5000, 0x6000])
    assert t.reason.tolist() == [0, 0, 0]
    assert t.memtype.tolist() == [MemoryType.RISCV_IO, MemoryType.RISCV_NC, MemoryType.RISCV_IO]
    assert w.translate(0x5000).memtype is MemoryType.RISCV_NC
    one = Walker(mem, RiscvRules(Hgatp.for_table(SV39X4, g.root_paddr), RiscvOptions(svpbmt=True)))
    assert one.translate(2 << 20).memtype is MemoryType.RISCV_IO and one.translate(0).memtype is MemoryType.DEFAULT
    m = w.mappings()
    assert m.memtype is not None and m.memtype.tolist() == [MemoryType.RISCV_IO, MemoryType.RISCV_NC,
                                                            MemoryType.RISCV_IO]
    # the flags decode the VS-stage PTEs with the walk's Svpbmt (PMA, NC, IO), whatever codec satp implies
    assert m.flags.tolist() == [F.READ, F.READ | F.UNCACHED, F.READ | F.DEVICE]


def _data_only_tbi_and_e0pd() -> Walker:
    """TTBR1-like region: TBI for data accesses only (AArch64 TBID) and EL1 accesses only (E0PD), its
    refusals reported at level 0."""
    w, lo, hi = _two_regions()
    data = perm_bit(Access.READ, Privilege.SUPERVISOR) | perm_bit(Access.WRITE, Privilege.SUPERVISOR) | \
        perm_bit(Access.READ, Privilege.USER) | perm_bit(Access.WRITE, Privilege.USER)
    supervisor = sum(perm_bit(a, Privilege.SUPERVISOR) for a in Access)
    w.rules.regime = Regime("tbid", (
        Region("root0", LOW, lo.root_paddr, select_bit=55, ignore_top=8, ignore_top_for=data),
        Region("root1", HIGH, hi.root_paddr, select_bit=55, ignore_top=8, ignore_top_for=data,
               allowed=supervisor, fault_level=0)))
    return w


def test_the_top_byte_can_be_ignored_for_data_accesses_only() -> None:
    w = _data_only_tbi_and_e0pd()
    tagged = 0xAB00_0000_0000_1008
    assert w.translate(tagged, "read").pa == RAM + 0x10_0008
    fetch = w.translate(tagged, "execute")                  # TBID: a fetch's top byte is translated
    assert (fetch.reason, fetch.level) == (Reason.NON_CANONICAL, 2)


def test_a_region_can_refuse_some_privileges_without_a_walk() -> None:
    w = _data_only_tbi_and_e0pd()
    va = (1 << 64) - 0x2000 + 8
    assert w.translate(va, "execute", "supervisor").pa == RAM + 0x20_0008
    user = w.translate(va, "read", "user")                  # E0PD: EL0 faults, at the region's fault level
    assert (user.reason, user.level, user.pte) == (Reason.INVALID, 0, 0)


def test_stage_2_is_walked_with_the_privilege_the_stage_1_rules_choose() -> None:
    """`WalkRules.stage2_privilege` gets each lane's privilege and its carry after the stage-1 leaf."""
    seen: list[tuple[list[int], list[int]]] = []

    class Recording(RiscvRules):
        def stage2_privilege(self, priv: Small, carry: Word) -> Small:
            seen.append((np.atleast_1d(priv).tolist(), np.atleast_1d(carry).tolist()))
            return priv

    mem = PhysMem([(RAM, 4 << 20)])
    g = PageTable(SV39X4.with_codec(RiscvCodec(gstage=True)), mem, FrameAllocator(mem, base=RAM + (3 << 20),
                                                                                   size=1 << 20))
    g.map(0, RAM, 2 << 20, F.READ | F.WRITE | F.EXECUTE)
    guest = PhysMem([(0, 2 << 20)])
    vs = PageTable(SV39, guest, FrameAllocator(guest, base=1 << 20, size=1 << 20))
    vs.map(0x4000, 0x1000, 0x1000, F.READ | F.USER)
    mem.write(RAM, guest.read(0, 2 << 20))
    stage1 = Recording(Vsatp.for_table(SV39, vs.root_paddr))
    w = Walker(mem, stage1, stage2=Walker(mem, RiscvRules.gstage(Hgatp.for_table(SV39X4, g.root_paddr))))
    assert w.translate(0x4008, "read", "user").pa == RAM + 0x1008
    assert w.translate_many([0x4008], "read", "user").pa.tolist() == [RAM + 0x1008]
    assert seen == [([Privilege.USER], [0b001_000])] * 2    # user read only: the VU page's rights
