"""The AArch64 walk rules case by case against the Arm ARM (DDI 0487 M.a.a, D8.2-D8.6 and the pseudocode
`AArch64.S1Walk`, `AArch64.S2Walk`, `AArch64.S1DirectBasePermissions`, `AArch64.S1CheckPermissions`,
`AArch64.S2CheckPermissions`, `AArch64.BlockDescSupported`; D24 ESR_ELx / HPFAR_EL2): every fault kind at
every level it can occur, for every granule and OA form, with the exact ESR, FAR and HPFAR; the EL2, EL2&0 and
stage 2 regimes, two stages, hardware AF/dirty updates, and `mappings` of both halves of EL1&0. The rules
come from register values (`regimes`); every case is walked by `translate` and `translate_many` alike."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pagetable.arch.aarch64 import TCR_EL1, TCR_EL2, VTCR_EL2, Granule, OAForm
from pagetable.arch.aarch64.codec import OutputAddress, S2Codec
from pagetable.arch.aarch64.modes import stage1_format, stage2_format
from pagetable.arch.aarch64.regimes import el1_rules, el2_rules, stage2_rules
from pagetable.arch.aarch64.walk import A64Options, A64Rules, S2Rules
from pagetable.errors import InvalidArgument
from pagetable.flags import MappingFlags as F
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.translation import ALL_PERMS, MemoryType, Reason, StepColumns, Translation
from pagetable.walker import Access, Privilege, Walker

from .fuzzing import assert_lanes_agree

K4, K16, K64 = Granule.K4, Granule.K16, Granule.K64
OA48, LPA, LPA2 = OAForm.OA48, OAForm.LPA, OAForm.LPA2
R, W, X = Access.READ, Access.WRITE, Access.EXECUTE
EL1, EL0 = Privilege.SUPERVISOR, Privilege.USER
MiB = 1 << 20
RAM = 0x4000_0000
TG0 = {K4: 0, K64: 1, K16: 2}
TG1 = {K16: 1, K4: 2, K64: 3}
CONFIGS = [(K4, OA48, 48), (K4, OA48, 39), (K16, OA48, 48), (K16, OA48, 47), (K64, OA48, 48), (K64, LPA, 52),
           (K4, LPA2, 52), (K16, LPA2, 52)]
IDS = [f"{g.label}-{f.name}-{b}" for g, f, b in CONFIGS]
FORMS = [(K4, OA48), (K16, OA48), (K64, OA48), (K64, LPA), (K4, LPA2), (K16, LPA2)]

# ESR_ELx (D24.2.40): EC in bits 31:26, IL bit 25; Data/Instruction Abort ISS: S1PTW bit 7, WnR bit 6,
# DFSC/IFSC bits 5:0 (0b0000LL address size, 0b0001LL translation, 0b0010LL access flag, 0b0011LL
# permission; level -1: 0b101001 address size, 0b101011 translation)
IABT_LOWER, IABT_SAME, DABT_LOWER, DABT_SAME = 0x20, 0x21, 0x24, 0x25
ADDRESS_SIZE, TRANSLATION, ACCESS_FLAG, PERMISSION = 0b000000, 0b000100, 0b001000, 0b001100


def fsc(kind: int, level: int) -> int:
    if level == -1:
        return {ADDRESS_SIZE: 0b101001, TRANSLATION: 0b101011}[kind]
    return kind | level


def esr(ec: int, status: int, *, wnr: bool = False, s1ptw: bool = False) -> int:
    return ec << 26 | 1 << 25 | int(s1ptw) << 7 | int(wnr) << 6 | status


def walk(walker: Walker, va: int, access: Access = R, privilege: Privilege = EL1) -> Translation:
    """One access by the one-lane walk, held to the bulk walk of the same lane (and of a second lane that
    reads the same tables at the next page), field by field."""
    t = walker.translate_many(np.array([va, va ^ 0x1000], dtype=np.uint64), access, privilege)
    assert_lanes_agree(walker, t, access, privilege)
    return walker.translate(va, access, privilege)


def fault(t: Translation) -> tuple[Reason, int, int]:
    return t.reason, t.level, t.syndrome.get("esr", -1)


class Space:
    """Both halves of an EL1&0 regime (or one EL2 region) of `granule`, OA `form` and `va_bits`: RAM at
    0x4000_0000 (64 MiB, tables from its upper half) and 1 MiB at 0; one page at `LO` (TTBR0) and one at
    `HI` (TTBR1), each `flags`, at `PA_LO` / `PA_HI`. `poke(half, depth, set, clear)` edits the entry on the
    path; `rules(...)` builds the rules from TCR_EL1 and SCTLR_EL1 values."""

    def __init__(self, granule: Granule = K4, form: OAForm = OA48, va_bits: int = 48,
                 flags: F = F.READ | F.WRITE, hi_flags: F | None = None) -> None:
        self.granule, self.form, self.va_bits = granule, form, va_bits
        self.mem = PhysMem([(0, MiB), (RAM, 64 * MiB)])
        self.frames = FrameAllocator(self.mem, RAM + 32 * MiB, 32 * MiB, frame_size=granule.size)
        self.fmt = stage1_format(granule, va_bits, form)
        self.fmt1 = stage1_format(granule, va_bits, form, upper=True)
        self.pt = [PageTable(self.fmt, self.mem, self.frames), PageTable(self.fmt1, self.mem, self.frames)]
        g = granule.size
        self.lo = (0x0000_1234_5678_9ABC_D000 >> (48 - va_bits + 16)) & ~(g - 1) | g   # several indices
        self.lo &= (1 << va_bits) - 1
        self.hi = ((1 << 64) - (1 << va_bits)) | (self.lo ^ (1 << (va_bits - 1)) ^ (1 << (va_bits - 2)))
        self.pa = [RAM + 4 * MiB, RAM + 8 * MiB]
        self.pt[0].map(self.lo, self.pa[0], g, flags)
        self.pt[1].map(self.hi, self.pa[1], g, flags if hi_flags is None else hi_flags)

    @property
    def levels(self) -> list[int]:
        return [lv.arch_level for lv in self.fmt.levels]

    def va(self, half: int) -> int:
        return self.hi if half else self.lo

    def entry(self, half: int, depth: int) -> tuple[int, int]:
        slot = self.pt[half].lookup(self.va(half), depth)
        assert slot.depth == depth
        return slot.pa, slot.raw

    def poke(self, half: int, depth: int, set_bits: int = 0, clear: int = 0) -> None:
        pa, raw = self.entry(half, depth)
        self.mem.write_u64(pa, (raw & ~clear) | set_bits)

    def tcr(self, **fields: int) -> int:
        tsz = 64 - self.va_bits
        ips = 6 if self.form is not OA48 else 5
        values = {"T0SZ": tsz, "T1SZ": tsz, "TG0": TG0[self.granule], "TG1": TG1[self.granule], "IPS": ips,
                  "DS": int(self.form is LPA2)} | fields
        return TCR_EL1.build(**values)

    def rules(self, *, sctlr: int = 1 | 1 << 2, pan: bool = False, ttbr0: int | None = None,
              ttbr1: int | None = None, **tcr: int) -> A64Rules:
        wide = self.form is not OA48
        return el1_rules(self.tcr(**tcr), self.ttbr(0) if ttbr0 is None else ttbr0,
                         self.ttbr(1) if ttbr1 is None else ttbr1, sctlr_el1=sctlr, pan=pan,
                         pa_range=52 if wide else 48)

    def ttbr(self, half: int) -> int:
        root = self.pt[half].root_paddr
        return (root & ((1 << 48) - 1)) | (root >> 48) << 2 if self.form is not OA48 else root

    def walker(self, **kw: int | bool) -> Walker:
        return Walker(self.mem, self.rules(**kw))  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------- sanity
@pytest.mark.parametrize(("granule", "form", "va_bits"), CONFIGS, ids=IDS)
def test_both_halves_translate(granule: Granule, form: OAForm, va_bits: int) -> None:
    s = Space(granule, form, va_bits)
    w = s.walker()
    assert [r.fmt.levels[0].arch_level for r in w.rules.regime.regions] == [s.levels[0]] * 2
    for half in (0, 1):
        t = walk(w, s.va(half) + 0x18)
        assert (t.ok, t.pa, t.level, t.memtype) == (True, s.pa[half] + 0x18, 3, MemoryType.NORMAL_WB)
        assert t.perms == 0b000011                     # kernel RW: EL1 read/write only
        assert fault(walk(w, s.va(half), R, EL0)) == (Reason.PERMISSION, 3, esr(DABT_LOWER, fsc(PERMISSION, 3)))
        assert fault(walk(w, s.va(half), W)) == (Reason.OK, 3, -1)
        assert fault(walk(w, s.va(half), X)) == (Reason.PERMISSION, 3, esr(IABT_SAME, fsc(PERMISSION, 3)))
    assert walk(w, s.lo).syndrome == {} and walk(w, s.lo, X).syndrome["far"] == s.lo


# ------------------------------------------------------------------------------ translation faults
@pytest.mark.parametrize(("granule", "form", "va_bits"), CONFIGS, ids=IDS)
def test_invalid_descriptor_at_every_level(granule: Granule, form: OAForm, va_bits: int) -> None:
    s = Space(granule, form, va_bits)
    for half in (0, 1):
        for depth, level in enumerate(s.levels):
            _, raw = s.entry(half, depth)
            s.poke(half, depth, clear=1)
            for access, privilege, ec, wnr in ((R, EL1, DABT_SAME, False), (W, EL0, DABT_LOWER, True),
                                               (X, EL1, IABT_SAME, False), (X, EL0, IABT_LOWER, False)):
                t = walk(s.walker(), s.va(half) + 8, access, privilege)
                assert fault(t) == (Reason.INVALID, level, esr(ec, fsc(TRANSLATION, level), wnr=wnr))
                assert t.syndrome["far"] == s.va(half) + 8 and t.syndrome["hpfar"] == 0
                assert t.syndrome["el"] == 1 and t.pte == raw & ~1
            s.poke(half, depth, set_bits=1)


NO_BLOCKS = {(K4, OA48): (0,), (K16, OA48): (0, 1), (K64, OA48): (1,), (K64, LPA): (), (K4, LPA2): (-1,),
             (K16, LPA2): (0,)}


@pytest.mark.parametrize(("granule", "form", "va_bits"), CONFIGS, ids=IDS)
def test_blocks_where_the_granule_has_none_and_0b01_at_level_3(granule: Granule, form: OAForm,
                                                               va_bits: int) -> None:
    """`AArch64.BlockDescSupported`: a block at a level without blocks is a Translation fault there (QEMU 7.2
    accepts some: notes items 1, 14); bits 1:0 = 0b01 at level 3 is reserved, a Translation fault."""
    s = Space(granule, form, va_bits)
    for depth, level in enumerate(s.levels):
        if level != 3 and level not in NO_BLOCKS[granule, form]:
            continue
        s.poke(0, depth, clear=2)
        assert fault(walk(s.walker(), s.lo)) == (Reason.RESERVED, level, esr(DABT_SAME, fsc(TRANSLATION, level)))
        s.poke(0, depth, set_bits=2)


@pytest.mark.parametrize(("granule", "form", "va_bits"), CONFIGS, ids=IDS)
def test_va_out_of_range_for_tnsz_in_both_halves(granule: Granule, form: OAForm, va_bits: int) -> None:
    """A VA whose bits 55:(64-TnSZ) (63: without TBI) are not all equal to bit 55 is a level 0 Translation
    fault (`AArch64.VAIsOutOfRange`), also with FEAT_LPA2's level -1 start."""
    s = Space(granule, form, va_bits)
    w = s.walker()
    want = (Reason.NON_CANONICAL, 0, esr(DABT_SAME, fsc(TRANSLATION, 0)))
    for va in (s.lo | 1 << va_bits, s.hi ^ 1 << va_bits, s.lo | 1 << 63, s.hi & ~(1 << 60), s.lo | 1 << 56):
        assert fault(walk(w, va)) == want
        assert fault(walk(w, va, X, EL0)) == (Reason.NON_CANONICAL, 0, esr(IABT_LOWER, fsc(TRANSLATION, 0)))
    tbi = s.walker(TBI0=1, TBI1=1)                          # top byte ignored: bits 63:56 do not count
    assert walk(tbi, s.lo | 0xA5 << 56).pa == s.pa[0]
    assert walk(tbi, (s.hi & ~(0xFF << 56)) | 0x3C << 56).pa == s.pa[1]
    assert fault(walk(tbi, s.lo | 0xA5 << 56 | 1 << va_bits)) == want
    assert walk(tbi, s.lo | 0xA5 << 56, X).reason == Reason.PERMISSION     # fetches too (no TBID)
    tbid = s.walker(TBI0=1, TBID0=1)                       # TBID: data accesses only
    assert fault(walk(tbid, s.lo | 0xA5 << 56, X)) == (Reason.NON_CANONICAL, 0, esr(IABT_SAME, fsc(TRANSLATION, 0)))


@pytest.mark.parametrize(("granule", "form", "va_bits"), CONFIGS, ids=IDS)
def test_epd_and_e0pd(granule: Granule, form: OAForm, va_bits: int) -> None:
    """EPDn: no walk through TTBRn, a level 0 Translation fault for every access; E0PDn (FEAT_E0PD): the same
    for EL0 accesses only."""
    s = Space(granule, form, va_bits, flags=F.READ | F.USER)
    for half, name in ((0, "0"), (1, "1")):
        epd = s.walker(**{f"EPD{name}": 1})
        for access, privilege, ec in ((R, EL1, DABT_SAME), (R, EL0, DABT_LOWER), (X, EL0, IABT_LOWER)):
            assert fault(walk(epd, s.va(half), access, privilege)) == (Reason.INVALID, 0,
                                                                       esr(ec, fsc(TRANSLATION, 0)))
        assert walk(epd, s.va(1 - half)).ok
        e0pd = s.walker(**{f"E0PD{name}": 1})
        assert walk(e0pd, s.va(half)).ok
        assert fault(walk(e0pd, s.va(half), R, EL0)) == (Reason.INVALID, 0, esr(DABT_LOWER, fsc(TRANSLATION, 0)))
        assert walk(e0pd, s.va(1 - half), R, EL0).ok


# ---------------------------------------------------------------------------- address size faults
@pytest.mark.parametrize(("granule", "form", "va_bits"), CONFIGS, ids=IDS)
def test_table_and_leaf_addresses_above_ips(granule: Granule, form: OAForm, va_bits: int) -> None:
    """With TCR_EL1.IPS = 40 bits, an NLTA or OA with a bit at or above 40 is an Address size fault at that
    descriptor's level (`AArch64.OAOutOfRange` in `AArch64.S1Walk`), a TTBR base with one at level 0."""
    s = Space(granule, form, va_bits)
    for depth, level in enumerate(s.levels):
        s.poke(0, depth, set_bits=1 << 44)
        assert fault(walk(s.walker(IPS=2), s.lo)) == (Reason.ADDRESS_SIZE, level,
                                                      esr(DABT_SAME, fsc(ADDRESS_SIZE, level)))
        assert fault(walk(s.walker(IPS=2), s.lo, W, EL0)) == (Reason.ADDRESS_SIZE, level,
                                                              esr(DABT_LOWER, fsc(ADDRESS_SIZE, level), wnr=True))
        s.poke(0, depth, clear=1 << 44)
    assert walk(s.walker(IPS=2), s.lo).ok
    for half in (0, 1):
        bad = {f"ttbr{half}": s.ttbr(half) | 1 << 44}
        assert fault(walk(s.walker(IPS=2, **bad), s.va(half))) == (Reason.ADDRESS_SIZE, 0,
                                                                  esr(DABT_SAME, fsc(ADDRESS_SIZE, 0)))
        assert walk(s.walker(IPS=2, **bad), s.va(1 - half)).ok


@pytest.mark.parametrize(("granule", "form", "va_bits", "bits"), [
    (K64, LPA, 52, 0xF << 12), (K64, LPA, 52, 1 << 12), (K4, LPA2, 52, 1 << 8), (K4, LPA2, 52, 1 << 48),
    (K16, LPA2, 52, 2 << 8)])
def test_52_bit_address_bits_with_a_48_bit_ips(granule: Granule, form: OAForm, va_bits: int, bits: int) -> None:
    """OA[51:48] (bits 15:12 with FEAT_LPA; 49:48 and 9:8 with FEAT_LPA2) are address bits whatever IPS: with
    IPS = 48 bits, set they are an Address size fault (QEMU 7.2 drops them: notes item 16)."""
    s = Space(granule, form, va_bits)
    for depth, level in enumerate(s.levels):
        s.poke(0, depth, set_bits=bits)
        expect = fsc(ADDRESS_SIZE, level)
        assert fault(walk(s.walker(IPS=5), s.lo)) == (Reason.ADDRESS_SIZE, level, esr(DABT_SAME, expect))
        s.poke(0, depth, clear=bits)
    assert walk(s.walker(IPS=5), s.lo).ok


def test_tables_above_2_to_the_48_through_a_52_bit_ttbr() -> None:
    """With a 52-bit output size, TTBRn_EL1.BADDR[51:48] is in register bits 5:2 (D24.2.209); tables and
    pages above 2**48 translate with FEAT_LPA2 (NLTA[51:50] in bits 9:8) and FEAT_LPA (bits 15:12)."""
    for granule, form in ((K4, LPA2), (K64, LPA), (K16, LPA2)):
        high = 0x000B_0000_0000_0000
        mem = PhysMem([(high, 32 * MiB)])
        frames = FrameAllocator(mem, high, 16 * MiB, frame_size=granule.size)
        fmt, fmt1 = stage1_format(granule, 52, form), stage1_format(granule, 52, form, upper=True)
        pt0, pt1 = PageTable(fmt, mem, frames), PageTable(fmt1, mem, frames)
        pt0.map(0x000A_0000_0000_0000, high + 16 * MiB, granule.size, F.READ)
        ttbr = [(pt.root_paddr & ((1 << 48) - 1)) | (pt.root_paddr >> 48) << 2 for pt in (pt0, pt1)]
        tcr = TCR_EL1.build(T0SZ=12, T1SZ=12, TG0=TG0[granule], TG1=TG1[granule], IPS=6,
                            DS=int(form is LPA2))
        w = Walker(mem, el1_rules(tcr, ttbr[0], ttbr[1], pa_range=52))
        assert walk(w, 0x000A_0000_0000_0010).pa == high + 16 * MiB + 0x10
        top = fmt.levels[0].arch_level
        assert fault(walk(w, 0x000A_0000_0000_0000 + (1 << 40))) == (Reason.INVALID, top + 1,
                                                                     esr(DABT_SAME, fsc(TRANSLATION, top + 1)))
        assert fault(walk(w, (1 << 64) - 4096)) == (Reason.INVALID, top, esr(DABT_SAME, fsc(TRANSLATION, top)))


def test_level_minus_1_codes() -> None:
    """FEAT_LPA2 level -1 faults have their own codes: Translation 0b101011, Address size 0b101001."""
    s = Space(K4, LPA2, 52)
    s.poke(0, 0, clear=1)
    assert fault(walk(s.walker(), s.lo)) == (Reason.INVALID, -1, esr(DABT_SAME, 0b101011))
    assert fault(walk(s.walker(), s.lo, X, EL0)) == (Reason.INVALID, -1, esr(IABT_LOWER, 0b101011))
    s.poke(0, 0, set_bits=1 | 1 << 9)                         # NLTA[51] with a 48-bit IPS
    assert fault(walk(s.walker(IPS=5), s.lo)) == (Reason.ADDRESS_SIZE, -1, esr(DABT_SAME, 0b101001))
    assert fault(walk(s.walker(IPS=5), s.lo, W)) == (Reason.ADDRESS_SIZE, -1, esr(DABT_SAME, 0b101001, wnr=True))


# ------------------------------------------------------------------------- access flag, HA and HD
@pytest.mark.parametrize(("granule", "form", "va_bits"), CONFIGS, ids=IDS)
def test_access_flag(granule: Granule, form: OAForm, va_bits: int) -> None:
    s = Space(granule, form, va_bits)
    leaf = len(s.levels) - 1
    s.poke(0, leaf, clear=1 << 10)
    for access, privilege, ec, wnr in ((R, EL1, DABT_SAME, False), (W, EL1, DABT_SAME, True),
                                       (X, EL1, IABT_SAME, False), (R, EL0, DABT_LOWER, False)):
        # the Access flag fault comes before the Permission fault of the same descriptor
        assert fault(walk(s.walker(), s.lo, access, privilege)) == (Reason.ACCESSED_DIRTY, 3,
                                                                    esr(ec, fsc(ACCESS_FLAG, 3), wnr=wnr))
    ha = s.walker(HA=1)
    assert walk(ha, s.lo).ok
    slot, raw = s.entry(0, leaf)
    assert ha.entry_updates(s.lo) == ((slot, raw, raw | 1 << 10),)
    assert ha.entry_updates(s.lo, X) == ()                    # a fault (PXN): no update reported
    ha.entry_updates(s.lo, apply=True)
    assert walk(s.walker(), s.lo).ok


def test_access_flag_on_blocks_and_dirty_state() -> None:
    s = Space(K4, OA48, 48)
    s.pt[0].map(0x4000_0000, 0, 1 << 30, F.READ | F.WRITE)                  # a level 1 block (1 GB)
    s.pt[0].map(0x8020_0000, RAM, 1 << 21, F.READ)                          # a level 2 block
    for va, depth, level in ((0x4000_0000, 1, 1), (0x8020_0000, 2, 2)):
        block = s.pt[0].lookup(va, depth)
        s.mem.write_u64(block.pa, block.raw & ~(1 << 10))
        assert fault(walk(s.walker(), va + 8)) == (Reason.ACCESSED_DIRTY, level,
                                                   esr(DABT_SAME, fsc(ACCESS_FLAG, level)))
        assert walk(s.walker(HA=1), va + 8).ok
    # DBM with HD: a write to an AP[2]=1 DBM=1 page is permitted and clears AP[2] (AF set too)
    s.poke(0, 3, set_bits=1 << 7 | 1 << 51, clear=1 << 10)
    slot, raw = s.entry(0, 3)
    assert fault(walk(s.walker(HA=1), s.lo, W)) == (Reason.PERMISSION, 3, esr(DABT_SAME, fsc(PERMISSION, 3), wnr=True))
    hd = s.walker(HA=1, HD=1)
    t = walk(hd, s.lo, W)
    assert t.ok and t.perms & 0b10
    assert hd.entry_updates(s.lo, W) == ((slot, raw, (raw | 1 << 10) & ~(1 << 7)),)
    assert hd.entry_updates(s.lo, R) == ((slot, raw, raw | 1 << 10),)      # reads: AF only, AP[2] kept
    s.poke(0, 3, clear=1 << 51)                                            # DBM=0: HD does nothing
    assert walk(s.walker(HA=1, HD=1), s.lo, W).reason == Reason.PERMISSION
    with pytest.raises(InvalidArgument):
        A64Options(hd=True)


# ---------------------------------------------------------------------------------- permissions
USER_RW = F.READ | F.WRITE | F.USER


def test_leaf_ap_pxn_uxn() -> None:
    """Table D8-60 (AP[2:1]) and PXN/UXN, for each EL and access."""
    cases = [  # flags, then the accesses allowed: EL1 r w x, EL0 r w x
        (F.READ | F.WRITE, "rw-", "---"), (F.READ, "r--", "---"), (F.READ | F.EXECUTE, "r-x", "---"),
        (USER_RW, "rw-", "rw-"), (F.READ | F.USER, "r--", "r--"), (F.READ | F.EXECUTE | F.USER, "r--", "r-x"),
        (F.EXECUTE | F.USER, "r--", "--x"), (USER_RW | F.EXECUTE, "rw-", "rwx")]
    for flags, el1, el0 in cases:
        s = Space(flags=flags)
        w = s.walker()
        for privilege, allowed in ((EL1, el1), (EL0, el0)):
            for access, letter in zip((R, W, X), allowed, strict=True):
                t = walk(w, s.lo, access, privilege)
                if letter != "-":
                    assert t.ok, (flags, privilege, access)
                    continue
                lower = privilege is EL0
                ec = (IABT_LOWER if lower else IABT_SAME) if access is X else (DABT_LOWER if lower else DABT_SAME)
                assert fault(t) == (Reason.PERMISSION, 3, esr(ec, fsc(PERMISSION, 3), wnr=access is W)), \
                    (flags, privilege, access)


def test_el0_writable_is_never_el1_executable() -> None:
    """`px = NOT(PXN OR PXNTable OR uw)`: AP[2:1]=0b01 with PXN=0 is still not EL1-executable; AP=0b11 is."""
    s = Space(flags=USER_RW)
    s.poke(0, 3, clear=1 << 53)
    assert walk(s.walker(), s.lo, X).reason == Reason.PERMISSION
    s.poke(0, 3, set_bits=1 << 7)                                          # AP=0b11: EL0 read-only
    assert walk(s.walker(), s.lo, X).ok
    # uw is the hierarchical one: APTable[1] (no writes) at level 0 makes the page EL1-executable again
    s.poke(0, 3, clear=1 << 7)
    s.poke(0, 0, set_bits=2 << 61)
    assert walk(s.walker(), s.lo, X).ok


def test_table_attributes_and_hpd() -> None:
    """APTable, PXNTable and UXNTable narrow every lookup below (each table level), unless TCR_EL1.HPDn;
    the Permission fault is reported at the leaf's level."""
    for depth in range(3):
        for bits, denied in ((1 << 61, [(R, EL0), (W, EL0)]), (2 << 61, [(W, EL1), (W, EL0)]),
                             (3 << 61, [(R, EL0), (W, EL0), (W, EL1)]), (1 << 59, [(X, EL1)]), (1 << 60, [(X, EL0)])):
            s = Space(flags=USER_RW | F.EXECUTE)
            for half in (0, 1):
                s.poke(half, 3, clear=1 << 53, set_bits=1 << 7)           # PXN=0, AP=0b11: read-only
                s.poke(half, depth, set_bits=bits)
            base = {(R, EL1), (X, EL1), (R, EL0), (X, EL0)}
            for half in (0, 1):
                w = s.walker()
                for access, privilege in base | {(W, EL1), (W, EL0)}:
                    t = walk(w, s.va(half), access, privilege)
                    want = (access, privilege) in base and (access, privilege) not in denied
                    assert t.ok is want, (depth, hex(bits), access, privilege)
                    if not want:
                        assert (t.reason, t.level) == (Reason.PERMISSION, 3)
                hpd = s.walker(**{f"HPD{half}": 1})
                assert all(walk(hpd, s.va(half), a, p).ok for a, p in base)
                assert walk(s.walker(**{f"HPD{1 - half}": 1}), s.va(half), *next(iter(denied))).reason == \
                    Reason.PERMISSION


def test_wxn() -> None:
    """SCTLR_EL1.WXN: a location writable at an EL is not executable at that EL."""
    wxn = 1 | 1 << 2 | 1 << 19
    s = Space(flags=F.READ | F.WRITE | F.EXECUTE)
    assert walk(s.walker(), s.lo, X).ok
    assert fault(walk(s.walker(sctlr=wxn), s.lo, X)) == (Reason.PERMISSION, 3, esr(IABT_SAME, fsc(PERMISSION, 3)))
    assert walk(s.walker(sctlr=wxn), s.lo, W).ok
    s = Space(flags=USER_RW | F.EXECUTE)
    assert walk(s.walker(), s.lo, X, EL0).ok
    assert walk(s.walker(sctlr=wxn), s.lo, X, EL0).reason == Reason.PERMISSION
    s = Space(flags=F.READ | F.EXECUTE)
    assert walk(s.walker(sctlr=wxn), s.lo, X).ok                           # read-only: still executable


def test_pan_and_epan() -> None:
    """PSTATE.PAN: EL1 data accesses fault on locations EL0 can read or write; with SCTLR_EL1.EPAN
    (FEAT_PAN3) also on locations EL0 can execute. Fetches are not PAN's."""
    epan = 1 | 1 << 2 | 1 << 57
    s = Space(flags=USER_RW)
    assert fault(walk(s.walker(pan=True), s.lo)) == (Reason.PERMISSION, 3, esr(DABT_SAME, fsc(PERMISSION, 3)))
    assert walk(s.walker(pan=True), s.lo, W).reason == Reason.PERMISSION
    assert walk(s.walker(pan=True), s.lo, R, EL0).ok
    s.poke(0, 3, set_bits=1 << 61 | 1 << 62, clear=0)                      # (SW bits: ignored)
    s.poke(0, 0, set_bits=1 << 61)                                         # APTable: no EL0 access below
    assert walk(s.walker(pan=True), s.lo).ok                               # EL0 cannot read: PAN allows
    xo = Space(flags=F.EXECUTE | F.USER)                                   # EL0 execute-only
    assert walk(xo.walker(pan=True), xo.lo).ok
    assert walk(xo.walker(pan=True, sctlr=epan), xo.lo).reason == Reason.PERMISSION
    assert walk(xo.walker(pan=False, sctlr=epan), xo.lo).ok
    xo.poke(0, 1, set_bits=1 << 60)                                        # UXNTable: EL0 cannot execute
    assert walk(xo.walker(pan=True, sctlr=epan), xo.lo).ok


def test_fetch_from_device_memory() -> None:
    """`AArch64.S1CheckPermissions`: an instruction fetch from Device memory is a Permission fault, even from
    an executable page (QEMU 7.2 executes it: notes item 20)."""
    s = Space(flags=F.READ | F.EXECUTE | F.DEVICE)
    assert walk(s.walker(), s.lo).memtype == MemoryType.DEVICE_NGNRE
    assert fault(walk(s.walker(), s.lo, X)) == (Reason.PERMISSION, 3, esr(IABT_SAME, fsc(PERMISSION, 3)))
    s = Space(flags=F.READ | F.EXECUTE | F.UNCACHED)
    assert walk(s.walker(), s.lo, X).ok
    assert walk(s.walker(), s.lo, X).memtype == MemoryType.NORMAL_NC
    assert walk(s.walker(sctlr=1), s.lo).memtype == MemoryType.NORMAL_NC   # SCTLR_EL1.C=0
    assert walk(Space(flags=F.READ).walker(sctlr=1), Space().lo).memtype == MemoryType.NORMAL_NC


# ------------------------------------------------------------------------------ EL2 and EL2&0
E2H = 1 << 34


def _el2_space(flags: F) -> tuple[PhysMem, PageTable]:
    from pagetable.arch.aarch64.codec import A64Codec

    mem = PhysMem([(RAM, 64 * MiB)])
    pt = PageTable(stage1_format(K4, 48, codec=A64Codec(el2=True)), mem, FrameAllocator(mem, RAM + 32 * MiB, 32 * MiB))
    pt.map(0x1234_5000, RAM + 0x5000, 4096, flags)
    return mem, pt


def test_el2_regime() -> None:
    """EL2 (E2H=0): TTBR0_EL2 alone, one privilege: AP[1] ignored (RES1), PXN ignored (RES0), UXN is XN,
    XNTable (bit 60) and APTable[1] the only table attributes; faults taken to EL2 from EL2 (EC 0x25/0x21)."""
    mem, pt = _el2_space(F.READ | F.WRITE | F.EXECUTE)
    tcr = TCR_EL2.build(T0SZ=16, TG0=0, PS=5, RES1_23=1, RES1_31=1)
    rules = el2_rules(tcr, pt.root_paddr)
    assert len(rules.regime.regions) == 1 and rules.regime.regions[0].select_bit is None
    w = Walker(mem, rules)
    va = 0x1234_5008
    for access in (R, W, X):                                 # AP=0b01 (AP[1] RES1) and XN=0: all of them
        assert walk(w, va, access).ok
    leaf = pt.lookup(va, 3).pa

    def poke(depth: int, set_bits: int = 0, clear: int = 0) -> None:
        slot = pt.lookup(va, depth)
        mem.write_u64(slot.pa, (slot.raw & ~clear) | set_bits)

    poke(3, clear=1 << 6)                                    # AP[1]=0: no difference
    assert all(walk(Walker(mem, el2_rules(tcr, pt.root_paddr)), va, a).ok for a in (R, W, X))
    poke(3, set_bits=1 << 53)                                # PXN: RES0, ignored
    assert walk(Walker(mem, el2_rules(tcr, pt.root_paddr)), va, X).ok
    poke(3, set_bits=1 << 54)                                # XN
    t = walk(Walker(mem, el2_rules(tcr, pt.root_paddr)), va, X)
    assert fault(t) == (Reason.PERMISSION, 3, esr(IABT_SAME, fsc(PERMISSION, 3))) and t.syndrome["el"] == 2
    poke(3, set_bits=1 << 7, clear=1 << 54)                  # AP[2]: read-only
    assert fault(walk(Walker(mem, el2_rules(tcr, pt.root_paddr)), va, W)) == (
        Reason.PERMISSION, 3, esr(DABT_SAME, fsc(PERMISSION, 3), wnr=True))
    poke(3, clear=1 << 7)
    for bits, denied in ((1 << 59, None), (1 << 61, None), (1 << 60, X), (2 << 61, W)):
        poke(1, set_bits=bits)
        w = Walker(mem, el2_rules(tcr, pt.root_paddr))
        for access in (R, W, X):
            assert walk(w, va, access).ok is (access is not denied), (hex(bits), access)
        assert all(walk(Walker(mem, el2_rules(tcr | 1 << 24, pt.root_paddr)), va, a).ok for a in (R, W, X))   # HPD
        poke(1, clear=bits)
    # a writable EL2 page is executable (no EL0, so no "EL0-writable" rule), unless SCTLR_EL2.WXN
    assert walk(Walker(mem, el2_rules(tcr, pt.root_paddr)), va, X).ok
    assert walk(Walker(mem, el2_rules(tcr, pt.root_paddr, sctlr_el2=1 | 1 << 19)), va, X).reason == Reason.PERMISSION
    # the one range: bit 55 does not select another table
    assert fault(walk(w, 0xFFFF_0000_1234_5000)) == (Reason.NON_CANONICAL, 0, esr(DABT_SAME, fsc(TRANSLATION, 0)))
    assert walk(Walker(mem, el2_rules(tcr, pt.root_paddr, sctlr_el2=0)), RAM + 8).pa == RAM + 8   # M=0
    assert leaf


def test_el2_and_0_regime() -> None:
    """EL2&0 (HCR_EL2.E2H=1): TCR_EL2 in TCR_EL1's layout, TTBR0_EL2 and TTBR1_EL2, EL0 exists; all faults are
    taken to EL2 (EL0's as from a lower EL)."""
    s = Space(flags=USER_RW)
    w = Walker(s.mem, el2_rules(s.tcr(), s.ttbr(0), sctlr_el2=1 | 1 << 2, hcr_el2=E2H, ttbr1_el2=s.ttbr(1)))
    assert [r.name for r in w.rules.regime.regions] == ["TTBR0_EL2", "TTBR1_EL2"]
    for half in (0, 1):
        assert walk(w, s.va(half), W, EL0).ok and walk(w, s.va(half), W, EL1).ok
        t = walk(w, s.va(half), X, EL0)
        assert fault(t) == (Reason.PERMISSION, 3, esr(IABT_LOWER, fsc(PERMISSION, 3))) and t.syndrome["el"] == 2
        t = walk(w, s.va(half), X, EL1)                      # EL0-writable: never EL2-executable
        assert fault(t) == (Reason.PERMISSION, 3, esr(IABT_SAME, fsc(PERMISSION, 3))) and t.syndrome["el"] == 2
    pan = Walker(s.mem, el2_rules(s.tcr(), s.ttbr(0), hcr_el2=E2H, ttbr1_el2=s.ttbr(1), pan=True))
    assert walk(pan, s.lo).reason == Reason.PERMISSION and walk(pan, s.lo, R, EL0).ok


# --------------------------------------------------------------------------------------- stage 2
S2_RAM = 0x8000_0000


class Stage2:
    """A stage 2 table of `granule` (T0SZ, SL0) over RAM at 0x4000_0000, mapping IPA `IPA` to `PA` with
    `flags` (a page), and the rules of VTCR_EL2 values."""

    def __init__(self, granule: Granule = K4, t0sz: int = 24, sl0: int = 1, flags: F = F.READ | F.WRITE,
                 **codec: bool) -> None:
        self.granule, self.t0sz, self.sl0 = granule, t0sz, sl0
        self.mem = PhysMem([(RAM, 64 * MiB), (S2_RAM, 64 * MiB)])
        self.frames = FrameAllocator(self.mem, RAM + 32 * MiB, 32 * MiB, frame_size=granule.size)
        start = {K4: {0: 2, 1: 1, 2: 0, 3: 3}, K16: {0: 3, 1: 2, 2: 1}, K64: {0: 3, 1: 2, 2: 1}}[granule][sl0]
        self.fmt = stage2_format(granule, 64 - t0sz, start, codec=S2Codec(OutputAddress(granule), **codec))
        self.pt = PageTable(self.fmt, self.mem, self.frames)
        self.ipa = 0x12_3456_0000 & ((1 << (64 - t0sz)) - 1) & ~(granule.size - 1)
        self.pa = S2_RAM + granule.size * 3
        self.pt.map(self.ipa, self.pa, granule.size, flags)

    def vtcr(self, **fields: int) -> int:
        return VTCR_EL2.build(**({"T0SZ": self.t0sz, "SL0": self.sl0, "TG0": TG0[self.granule], "PS": 5,
                                  "RES1_31": 1} | fields))

    def walker(self, hcr: int = 0, vttbr: int | None = None, xnx: bool = True, **fields: int) -> Walker:
        return Walker(self.mem, stage2_rules(self.vtcr(**fields), self.pt.root_paddr if vttbr is None else vttbr,
                                             hcr_el2=hcr, xnx=xnx))

    def poke(self, depth: int, set_bits: int = 0, clear: int = 0, ipa: int | None = None) -> None:
        slot = self.pt.lookup(self.ipa if ipa is None else ipa, depth)
        self.mem.write_u64(slot.pa, (slot.raw & ~clear) | set_bits)


def s2fault(t: Translation) -> tuple[Reason, int, int, int]:
    return t.reason, t.level, t.syndrome.get("esr", -1), t.syndrome.get("hpfar", -1)


def test_stage2_permissions_and_syndromes() -> None:
    """S2AP[0] read, S2AP[1] write; a stage 2 fault is taken to EL2 from EL1/EL0 (EC 0x24 / 0x20), with
    HPFAR_EL2.FIPA = IPA[51:12] in bits 43:4."""
    s = Stage2()
    hpfar = (s.ipa >> 12) << 4
    for s2ap, allowed in ((0b00, ""), (0b01, "r"), (0b10, "w"), (0b11, "rw")):
        s.poke(len(s.fmt.levels) - 1, clear=3 << 6)
        s.poke(len(s.fmt.levels) - 1, set_bits=s2ap << 6)
        w = s.walker()
        for access, letter, ec in ((R, "r", DABT_LOWER), (W, "w", DABT_LOWER)):
            for privilege in (EL1, EL0):
                t = walk(w, s.ipa + 0x10, access, privilege)
                if letter in allowed:
                    assert t.pa == s.pa + 0x10
                else:
                    assert s2fault(t) == (Reason.PERMISSION, 3, esr(ec, fsc(PERMISSION, 3), wnr=access is W), hpfar)
    assert s2fault(walk(w, s.ipa, X)) == (Reason.PERMISSION, 3, esr(IABT_LOWER, fsc(PERMISSION, 3)), hpfar)


def test_stage2_xn_with_and_without_feat_xnx() -> None:
    """Table D8-78: XN[1:0] 0b00 executable, 0b01 not at EL1, 0b10 not at all, 0b11 not at EL0; without
    FEAT_XNX, XN[0] is RES0 (XN[1] alone decides)."""
    s = Stage2(flags=F.READ | F.EXECUTE)
    for xn, xnx_ok, plain_ok in ((0, (True, True), (True, True)), (1, (False, True), (True, True)),
                                 (2, (False, False), (False, False)), (3, (True, False), (False, False))):
        s.poke(len(s.fmt.levels) - 1, clear=3 << 53)
        s.poke(len(s.fmt.levels) - 1, set_bits=xn << 53)
        for xnx, ok in ((True, xnx_ok), (False, plain_ok)):
            for privilege, want in zip((EL1, EL0), ok, strict=True):
                assert walk(s.walker(xnx=xnx), s.ipa, X, privilege).ok is want, (xn, xnx, privilege)


def test_stage2_access_flag_and_dirty_state() -> None:
    s = Stage2(flags=F.READ)
    leaf = len(s.fmt.levels) - 1
    s.poke(leaf, clear=1 << 10)
    assert s2fault(walk(s.walker(), s.ipa)) == (Reason.ACCESSED_DIRTY, 3, esr(DABT_LOWER, fsc(ACCESS_FLAG, 3)),
                                                (s.ipa >> 12) << 4)
    slot = s.pt.lookup(s.ipa, leaf)
    ha = s.walker(HA=1)
    assert walk(ha, s.ipa).ok and ha.entry_updates(s.ipa) == ((slot.pa, slot.raw, slot.raw | 1 << 10),)
    s.poke(leaf, set_bits=1 << 51)                                        # DBM
    slot = s.pt.lookup(s.ipa, leaf)
    assert walk(s.walker(HA=1), s.ipa, W).reason == Reason.PERMISSION
    hd = s.walker(HA=1, HD=1)
    assert walk(hd, s.ipa, W).ok
    assert hd.entry_updates(s.ipa, W) == ((slot.pa, slot.raw, slot.raw | 1 << 10 | 1 << 7),)   # S2AP[1] set


@pytest.mark.parametrize(("granule", "t0sz", "sl0", "start", "tables"), [
    (K4, 24, 1, 1, 2), (K4, 21, 1, 1, 16), (K4, 32, 0, 2, 4), (K4, 16, 2, 0, 1), (K4, 33, 1, 1, 1),
    (K4, 44, 3, 3, 1), (K16, 16, 2, 1, 2), (K16, 27, 1, 2, 2), (K16, 39, 0, 3, 1), (K16, 24, 1, 2, 16),
    (K64, 20, 2, 1, 1), (K64, 21, 1, 2, 2), (K64, 34, 0, 3, 2), (K64, 38, 0, 3, 1)])
def test_stage2_start_levels_and_concatenated_roots(granule: Granule, t0sz: int, sl0: int, start: int,
                                                    tables: int) -> None:
    """VTCR_EL2.SL0 gives the start level (4KB: 0b00 L2, 0b01 L1, 0b10 L0, 0b11 L3; 16KB/64KB: 0b00 L3, 0b01
    L2, 0b10 L1); the initial lookup concatenates up to 16 tables. The last IPA translates through the last
    concatenated table."""
    s = Stage2(granule, t0sz, sl0)
    w = s.walker()
    region = w.rules.regime.single
    assert region.fmt.levels[0].arch_level == start
    assert max(1, region.fmt.root_size // granule.size) == tables
    assert walk(w, s.ipa + 8).pa == s.pa + 8
    top = (1 << (64 - t0sz)) - granule.size
    s.pt.map(top, S2_RAM, granule.size, F.READ)
    assert walk(s.walker(), top + 8).pa == S2_RAM + 8
    t = walk(w, 1 << (64 - t0sz))                                           # IPA out of range: level 0
    assert s2fault(t) == (Reason.NON_CANONICAL, 0, esr(DABT_LOWER, fsc(TRANSLATION, 0)), (1 << (52 - t0sz)) << 4)


@pytest.mark.parametrize(("granule", "t0sz", "sl0", "pa_range", "ds"), [
    (K64, 24, 3, 48, 0),                 # SL0=0b11 reserved with 64KB
    (K16, 16, 3, 48, 0),                 # 16KB level 0 needs DS=1
    (K4, 24, 2, 40, 0),                  # 4KB level 0 needs 44-bit PAs (AArch64.S2InvalidSL)
    (K16, 24, 2, 40, 0),                 # 16KB level 1 needs 42-bit PAs
    (K64, 22, 2, 42, 0),                 # 64KB level 1 needs 44-bit PAs
    (K4, 19, 1, 48, 0),                  # level 1 with a 45-bit IPA: 32 tables (AArch64.S2InconsistentSL)
    (K4, 34, 2, 48, 0),                  # level 0 with a 30-bit IPA: no table
    (K4, 16, 0, 48, 0),                  # level 2 with a 48-bit IPA
    (K64, 25, 0, 48, 0),                 # 64KB level 3 with a 39-bit IPA
])
def test_invalid_stage2_start_levels_are_refused(granule: Granule, t0sz: int, sl0: int, pa_range: int,
                                                 ds: int) -> None:
    vtcr = VTCR_EL2.build(T0SZ=t0sz, SL0=sl0, TG0=TG0[granule], PS=2, DS=ds)
    with pytest.raises(InvalidArgument):
        stage2_rules(vtcr, RAM, pa_range=pa_range)


def test_valid_sl0_combinations_with_small_pas() -> None:
    """A 4KB level 0 start is valid with 44-bit PAs whatever PS (QEMU 7.2 judges by PS: notes item 17)."""
    rules = stage2_rules(VTCR_EL2.build(T0SZ=20, SL0=2, TG0=0, PS=2), RAM, pa_range=44)
    assert rules.regime.single.fmt.levels[0].arch_level == 0
    lpa2 = stage2_rules(VTCR_EL2.build(T0SZ=12, SL0=0, SL2=1, TG0=0, PS=6, DS=1), RAM, pa_range=52)
    assert lpa2.regime.single.fmt.levels[0].arch_level == -1
    k16 = stage2_rules(VTCR_EL2.build(T0SZ=12, SL0=3, TG0=2, PS=6, DS=1), RAM, pa_range=52)
    assert k16.regime.single.fmt.levels[0].arch_level == 0


def test_stage2_address_size() -> None:
    s = Stage2()
    leaf = len(s.fmt.levels) - 1
    hpfar = (s.ipa >> 12) << 4
    assert s2fault(walk(s.walker(vttbr=s.pt.root_paddr | 1 << 44, PS=2), s.ipa)) == (
        Reason.ADDRESS_SIZE, 0, esr(DABT_LOWER, fsc(ADDRESS_SIZE, 0)), hpfar)
    for depth in range(leaf + 1):
        level = s.fmt.levels[depth].arch_level
        s.poke(depth, set_bits=1 << 41)
        assert s2fault(walk(s.walker(PS=2), s.ipa)) == (Reason.ADDRESS_SIZE, level,
                                                        esr(DABT_LOWER, fsc(ADDRESS_SIZE, level)), hpfar)
        s.poke(depth, clear=1 << 41)
    s.poke(0, clear=1)
    assert s2fault(walk(s.walker(), s.ipa, X, EL0)) == (Reason.INVALID, 1, esr(IABT_LOWER, fsc(TRANSLATION, 1)),
                                                        hpfar)


@pytest.mark.parametrize(("t0sz", "ds", "pa_range"), [(12, 0, 48), (15, 0, 48), (12, 0, 52), (20, 0, 40),
                                                      (23, 0, 40)])
def test_stage2_t0sz_below_the_minimum_is_refused(t0sz: int, ds: int, pa_range: int) -> None:
    """`AArch64.S2TxSZFaults` with `AArch64.S2MinTxSZ`: the IPA space is at most min(48, PAMax) bits (52 with
    FEAT_LPA's 64KB form or DS=1)."""
    vtcr = VTCR_EL2.build(T0SZ=t0sz, SL0=2, TG0=0, PS=2, DS=ds)
    with pytest.raises(InvalidArgument):
        stage2_rules(vtcr, RAM, pa_range=pa_range)
    assert stage2_rules(VTCR_EL2.build(T0SZ=24, SL0=1, TG0=0, PS=2), RAM, pa_range=40)


# ------------------------------------------------------------------------------------- two stages
class Nested:
    """Stage 1 (`Space`, 4KB, 48-bit VA, its tables and pages at IPAs in RAM) over a stage 2 table (4KB,
    40-bit IPA from level 1) mapping RAM to itself with 2 MB blocks; stage 2's own tables live at 0."""

    def __init__(self, flags: F = F.READ | F.WRITE, s2flags: F = F.READ | F.WRITE | F.EXECUTE) -> None:
        self.s1 = Space(flags=flags)
        self.mem = self.s1.mem
        self.s2 = PageTable(stage2_format(K4, 40, 1), self.mem, FrameAllocator(self.mem, 0, MiB))
        self.s2.map_region(RAM, RAM, 64 * MiB, s2flags, allow_huge=True)
        self.vtcr = VTCR_EL2.build(T0SZ=24, SL0=1, TG0=0, PS=5, RES1_31=1)

    def protect(self, ipa: int, flags: F) -> None:
        """Give the stage 2 page holding `ipa` its own flags (splitting its block)."""
        self.s2.protect_region(ipa & ~0xFFF, 0x1000, flags)

    def poke2(self, ipa: int, set_bits: int = 0, clear: int = 0) -> None:
        self.protect(ipa, F.READ | F.WRITE | F.EXECUTE)
        slot = self.s2.lookup(ipa, 2)
        self.mem.write_u64(slot.pa, (slot.raw & ~clear) | set_bits)

    def walker(self, hcr: int = 0, **tcr: int | bool) -> Walker:
        s1 = self.s1.rules(**tcr)  # type: ignore[arg-type]
        return Walker(self.mem, s1, stage2=Walker(self.mem, stage2_rules(self.vtcr, self.s2.root_paddr, hcr_el2=hcr)))


def test_two_stages_translate() -> None:
    n = Nested()
    w = n.walker()
    t = walk(w, n.s1.lo + 0x20, W)
    assert (t.ok, t.pa, t.gpa, t.memtype) == (True, n.s1.pa[0] + 0x20, n.s1.pa[0] + 0x20, MemoryType.NORMAL_WB)
    assert walk(w, n.s1.hi, R).pa == n.s1.pa[1]


@pytest.mark.parametrize("depth", range(4))
def test_stage2_faults_on_stage1_table_reads(depth: int) -> None:
    """A stage 2 fault on a stage 1 descriptor read: ESR S1PTW=1, WnR the instruction's access (the
    pseudocode's fault.write), the
    stage 2 fault's kind and level, HPFAR_EL2 the descriptor's IPA, FAR_EL2 the VA; taken to EL2."""
    n = Nested()
    slot, _ = n.s1.entry(0, depth)                    # the IPA of the stage 1 descriptor read at `depth`
    hpfar = (slot >> 12) << 4
    n.poke2(slot, clear=1)
    for access, privilege, ec in ((R, EL1, DABT_LOWER), (W, EL1, DABT_LOWER), (X, EL0, IABT_LOWER)):
        t = walk(n.walker(), n.s1.lo + 8, access, privilege)
        assert (t.reason, t.level, t.stage, t.implicit, t.gpa) == (Reason.INVALID, 3, 2, True, slot)
        assert t.syndrome == {"esr": esr(ec, fsc(TRANSLATION, 3), s1ptw=True, wnr=access is W), "far": n.s1.lo + 8,
                              "hpfar": hpfar, "el": 2}
    n.poke2(slot, set_bits=1, clear=1 << 6)           # S2AP[0]=0: stage 2 does not let the walk read
    t = walk(n.walker(), n.s1.lo, W)
    assert (t.reason, t.level, t.stage) == (Reason.PERMISSION, 3, 2)
    assert t.syndrome["esr"] == esr(DABT_LOWER, fsc(PERMISSION, 3), s1ptw=True, wnr=True)
    assert walk(n.walker(), n.s1.hi).ok                  # TTBR1's tables are elsewhere
    n.poke2(slot, set_bits=1 << 6 | 1 << 41)             # an OA above a 40-bit PS at stage 2: Address size
    n.vtcr = VTCR_EL2.build(T0SZ=24, SL0=1, TG0=0, PS=2, RES1_31=1)
    t = walk(n.walker(), n.s1.lo)
    assert (t.reason, t.level, t.stage, t.gpa) == (Reason.ADDRESS_SIZE, 3, 2, slot)
    assert t.syndrome["esr"] == esr(DABT_LOWER, fsc(ADDRESS_SIZE, 3), s1ptw=True)


def test_stage2_fault_on_the_final_ipa() -> None:
    n = Nested()
    ipa = n.s1.pa[0] + 0x30
    n.protect(ipa, F.READ)
    t = walk(n.walker(), n.s1.lo + 0x30, W)
    assert (t.reason, t.level, t.stage, t.implicit, t.gpa) == (Reason.PERMISSION, 3, 2, False, ipa)
    assert t.syndrome == {"esr": esr(DABT_LOWER, fsc(PERMISSION, 3), wnr=True), "far": n.s1.lo + 0x30,
                          "hpfar": (ipa >> 12) << 4, "el": 2}
    assert walk(n.walker(), n.s1.lo + 0x30, R).pa == ipa
    t = walk(n.walker(), n.s1.lo, X)                     # stage 1 decides first (PXN): a stage 1 fault
    assert (t.reason, t.stage, t.syndrome["el"], t.syndrome["hpfar"]) == (Reason.PERMISSION, 1, 1, 0)


def test_stage1_af_update_is_a_stage2_write() -> None:
    """With TCR_EL1.HA the stage 1 leaf's AF is written by the walk: a write through stage 2 (S1PTW=1), which
    faults where stage 2 maps that table read-only; WnR is the instruction's (a read: 0), as the pseudocode's
    fault.write is."""
    n = Nested()
    n.s1.poke(0, 3, clear=1 << 10)
    leaf, _ = n.s1.entry(0, 3)
    assert walk(n.walker(HA=1), n.s1.lo).ok
    n.protect(leaf, F.READ)
    t = walk(n.walker(HA=1), n.s1.lo)
    assert (t.reason, t.stage, t.implicit, t.gpa) == (Reason.PERMISSION, 2, True, leaf)
    assert t.syndrome["esr"] == esr(DABT_LOWER, fsc(PERMISSION, 3), s1ptw=True)
    assert t.syndrome["hpfar"] == (leaf >> 12) << 4
    assert fault(walk(n.walker(), n.s1.lo)) == (Reason.ACCESSED_DIRTY, 3, esr(DABT_SAME, fsc(ACCESS_FLAG, 3)))


def test_hcr_ptw_faults_walks_into_stage2_device_memory() -> None:
    """HCR_EL2.PTW: a stage 1 table in memory stage 2 maps as Device is a stage 2 Permission fault on the
    table read (S1PTW=1); without PTW it is read."""
    n = Nested()
    slot, _ = n.s1.entry(0, 2)
    n.protect(slot, F.READ | F.WRITE | F.DEVICE)
    assert walk(n.walker(), n.s1.lo).ok
    t = walk(n.walker(hcr=1 << 2), n.s1.lo)
    assert (t.reason, t.level, t.stage, t.implicit, t.gpa) == (Reason.PERMISSION, 3, 2, True, slot)
    assert t.syndrome["esr"] == esr(DABT_LOWER, fsc(PERMISSION, 3), s1ptw=True)
    # the final access to stage 2 Device memory is not a table walk: PTW does not apply
    n.protect(n.s1.pa[1], F.READ | F.WRITE | F.DEVICE)
    t = walk(n.walker(hcr=1 << 2), n.s1.hi)
    assert t.ok and t.memtype == MemoryType.DEVICE_NGNRE


@pytest.mark.parametrize(("s1flags", "s2memattr", "fwb", "want"), [
    (F.READ, 0b1111, False, MemoryType.NORMAL_WB),
    (F.READ, 0b0001, False, MemoryType.DEVICE_NGNRE),            # stage 2 Device wins
    (F.READ | F.DEVICE, 0b1111, False, MemoryType.DEVICE_NGNRE),  # stage 1 Device wins
    (F.READ | F.DEVICE, 0b0000, False, MemoryType.DEVICE_NGNRNE), # the stricter Device type
    (F.READ | F.UNCACHED, 0b1111, False, MemoryType.NORMAL_NC),
    (F.READ, 0b0101, False, MemoryType.NORMAL_NC),
    (F.READ, 0b1010, False, MemoryType.NORMAL_WT),               # WB and WT: WT
    (F.READ | F.UNCACHED, 0b1010, False, MemoryType.NORMAL_NC),
    (F.READ, 0b0110, True, MemoryType.NORMAL_WB),                # FWB: 0b110 forces Write-Back ...
    (F.READ | F.DEVICE, 0b0110, True, MemoryType.NORMAL_WB),     # ... even over stage 1 Device
    (F.READ | F.UNCACHED, 0b0110, True, MemoryType.NORMAL_WB),
    (F.READ | F.UNCACHED, 0b0111, True, MemoryType.NORMAL_NC),   # 0b111: stage 1's type
    (F.READ | F.DEVICE, 0b0111, True, MemoryType.DEVICE_NGNRE),
    (F.READ, 0b0101, True, MemoryType.NORMAL_NC),                # 0b101: NC unless stage 1 Device
    (F.READ | F.DEVICE, 0b0101, True, MemoryType.DEVICE_NGNRE),
    (F.READ, 0b0001, True, MemoryType.DEVICE_NGNRE),             # MemAttr[2]=0: Device, as with FWB=0
    (F.READ | F.DEVICE, 0b0000, True, MemoryType.DEVICE_NGNRNE),
])
def test_two_stage_memory_types(s1flags: F, s2memattr: int, fwb: bool, want: MemoryType) -> None:
    """`S2CombineS1MemAttrs` (FWB=0) and FEAT_S2FWB's combination (D8.6.6)."""
    n = Nested(flags=s1flags)
    n.poke2(n.s1.pa[0], set_bits=s2memattr << 2, clear=0xF << 2)
    t = walk(n.walker(hcr=1 << 46 if fwb else 0), n.s1.lo)
    assert t.ok and t.memtype == want


# -------------------------------------------------------- one verdict per judged bits; scalar = columns
def _s1_rules(granule: Granule, form: OAForm, va_bits: int, el2: bool, hpd: bool, options: int) -> A64Rules:
    s = _RULE_SPACES[granule, form, va_bits]
    tcr = s.tcr(HPD0=int(hpd), HPD1=int(hpd), HA=options & 1, HD=options & 1 & (options >> 1), IPS=options >> 2 & 7)
    sctlr = 1 | 1 << 2 | (1 << 19 if options & 32 else 0) | (1 << 57 if options & 64 else 0)
    wide = 52 if form is not OA48 else 48
    if el2:
        return el2_rules(tcr, s.ttbr(0), sctlr_el2=sctlr & ~(1 << 57), hcr_el2=E2H, ttbr1_el2=s.ttbr(1),
                         pan=bool(options & 128), pa_range=wide)
    return el1_rules(tcr, s.ttbr(0), s.ttbr(1), sctlr_el1=sctlr, pan=bool(options & 128), pa_range=wide)


_RULE_SPACES = {(g, f, b): Space(g, f, b) for g, f, b in CONFIGS}


@st.composite
def any_rules(draw: st.DrawFn) -> A64Rules | S2Rules:
    kind = draw(st.sampled_from(["s1", "el2", "s2", "el2-only"]))
    if kind == "el2-only":                               # E2H=0: one range, one privilege
        granule = draw(st.sampled_from([K4, K16, K64]))
        ha = draw(st.integers(0, 1))
        tcr = TCR_EL2.build(T0SZ=16, TG0=TG0[granule], PS=draw(st.sampled_from([2, 5])), HA=ha,
                            HD=draw(st.integers(0, 1)) & ha, HPD=draw(st.integers(0, 1)), RES1_23=1, RES1_31=1)
        return el2_rules(tcr, RAM, sctlr_el2=1 | draw(st.sampled_from([0, 1 << 19])))
    if kind == "s2":
        granule, form = draw(st.sampled_from(FORMS))
        t0sz = {K4: 24, K16: 28, K64: 24}[granule]
        vtcr = VTCR_EL2.build(T0SZ=t0sz, SL0=1, TG0=TG0[granule], PS=draw(st.sampled_from([2, 5, 6])),
                              HA=(ha := draw(st.integers(0, 1))), HD=ha & draw(st.integers(0, 1)),
                              DS=int(form is LPA2))
        return stage2_rules(vtcr, RAM, hcr_el2=draw(st.sampled_from([0, 1 << 2, 1 << 46])), xnx=draw(st.booleans()),
                            pa_range=48 if form is OA48 else 52)
    config = draw(st.sampled_from(CONFIGS))
    options = draw(st.integers(0, 255))
    if config[1] is not OA48 and (options >> 2 & 7) not in (5, 6):
        options = options & ~(7 << 2) | 6 << 2
    elif config[1] is OA48 and (options >> 2 & 7) > 5:
        options = options & ~(7 << 2) | 5 << 2
    return _s1_rules(*config, kind == "el2", draw(st.booleans()), options)


# any bits; or a descriptor of the right shape (valid, table/page bit, AF) with random attributes
DESCRIPTORS = st.integers(0, (1 << 64) - 1) | st.builds(
    lambda raw, low: (raw & ~0x7FF) | low, st.integers(0, (1 << 64) - 1),
    st.sampled_from([0x403, 0x401, 0x003, 0x443, 0x4C3, 0x483, 0x413, 0x7FF, 0x4C7, 0x7C3]))


@settings(max_examples=400, deadline=None)
@given(any_rules(), st.integers(0, 4), DESCRIPTORS, st.integers(0, (1 << 64) - 1), st.sampled_from(list(Access)),
       st.sampled_from(list(Privilege)), st.integers(0, ALL_PERMS))
def test_entries_equal_in_the_judged_bits_get_one_verdict(rules: A64Rules | S2Rules, level: int, pte: int,
                                                          noise: int, access: Access, privilege: Privilege,
                                                          carry: int) -> None:
    """`judged_bits`: descriptors equal in those bits get the same `step` (the one-lane walk's memory rests on
    it); and `step` on ints agrees with `step` on columns."""
    k = level % len(rules.regime.regions)
    region = rules.regime.regions[k]
    depth = level % region.fmt.depth_count
    judged = rules.judged_bits(region, depth)
    other = (pte & judged) | (noise & ~judged)
    one = rules.step(region, depth, pte, access, privilege, carry)
    assert rules.step(region, depth, other, access, privilege, carry) == one
    columns = StepColumns.of(rules.step(region, depth, np.array([pte, other], dtype=np.uint64),
                                        np.full(2, access, dtype=np.uint8), np.full(2, privilege, dtype=np.uint8),
                                        np.full(2, carry, dtype=np.uint64)))
    for n in range(2):
        assert tuple(int(np.broadcast_to(c, (2,))[n]) for c in columns) == tuple(int(v) for v in one)
    assert rules.written(region, depth, pte, one.leaf, access) == int(rules.written(
        region, depth, np.array([pte], dtype=np.uint64), np.array([bool(one.leaf)]),
        np.array([access], dtype=np.uint8))[0])


# ------------------------------------------------------------------------------- mappings, both halves
def test_mappings_list_both_halves_of_el1_and_0() -> None:
    s = Space(flags=F.READ | F.WRITE, hi_flags=F.READ | F.EXECUTE)
    s.pt[0].map(0x4000_0000, RAM, 1 << 30, F.READ | F.WRITE | F.USER)          # a 1 GB block (user)
    s.pt[1].map(0xFFFF_FFFF_FFE0_0000, RAM + (2 << 20), 1 << 21, F.READ)        # a 2 MB block at the top
    s.pt[1].map(s.hi + 0x1000, RAM + 0x9000, 0x1000, F.READ)
    s.poke(1, 3, clear=1)                                                     # an invalid page: not listed
    s.pt[0].map(0x1000, RAM, 0x1000, F.READ)
    slot = s.pt[0].lookup(0x1000, 3)
    s.mem.write_u64(slot.pa, slot.raw & ~(1 << 10))                           # AF=0: rejected for every access
    w = s.walker()
    lo, hi = w.mappings(region=0), w.mappings(region=1)
    assert lo.verdict is not None and lo.perms is not None and hi.perms is not None and hi.memtype is not None
    assert [int(v) for v in lo.va] == [0x1000, 0x4000_0000, s.lo]
    assert [int(v) for v in lo.size] == [0x1000, 1 << 30, 0x1000]
    assert [int(p) for p in lo.pa] == [RAM, RAM, s.pa[0]]
    assert list(lo.verdict) == [Reason.ACCESSED_DIRTY, 0, 0]
    assert [int(p) for p in lo.perms] == [0, 0b011011, 0b000011]
    assert [int(v) for v in hi.va] == [s.hi + 0x1000, 0xFFFF_FFFF_FFE0_0000]
    assert [int(p) for p in hi.pa] == [RAM + 0x9000, RAM + (2 << 20)]
    assert [int(p) for p in hi.perms] == [0b000001, 0b000001]
    assert all(int(m) == MemoryType.NORMAL_WB for m in hi.memtype)
    s.poke(1, 3, set_bits=1)
    hi = s.walker().mappings(region=1)
    assert hi.perms is not None and hi.verdict is not None
    assert [int(v) for v in hi.va] == [s.hi, s.hi + 0x1000, 0xFFFF_FFFF_FFE0_0000]
    assert [int(p) for p in hi.perms] == [0b000101, 0b000001, 0b000001]
    for m, half in ((lo, 0), (hi, 1)):
        assert m.verdict is not None
        for va, pa, verdict in zip(m.va, m.pa, m.verdict, strict=True):
            t = walk(s.walker(), int(va))
            assert (t.pa if t.ok else t.reason) == (verdict if verdict else int(pa)), (half, hex(int(va)))
    with pytest.raises(InvalidArgument):
        w.mappings()                                                          # two regions: name one


# ------------------------------------------------------------------------------------ TTBR BADDR
def test_ttbr_baddr_48_bit_format_keeps_bits_below_64() -> None:
    """D24.2.209: with a 48-bit BADDR, bits A[(x-1):0] are zero for x = log2(table size); a 16-byte initial
    table (16KB granule, 48-bit VA: level 0 has 2 entries) may sit at any 16-byte boundary. (Only the
    52-bit BADDR format needs 64-byte alignment.)"""
    mem = PhysMem([(RAM, 64 * MiB)])
    frames = FrameAllocator(mem, RAM + 32 * MiB, 32 * MiB, frame_size=K16.size)
    fmt, fmt1 = stage1_format(K16, 48), stage1_format(K16, 48, upper=True)
    assert fmt.root_size == 16
    base = frames.alloc(1)
    pt = PageTable(fmt, mem, frames, root=base + 0x30)
    pt.map(0x8000_0000_4000, RAM + 0x4000, K16.size, F.READ)
    other = PageTable(fmt1, mem, frames)
    w = Walker(mem, el1_rules(TCR_EL1.build(T0SZ=16, T1SZ=16, TG0=2, TG1=1, IPS=5), base + 0x30, other.root_paddr))
    assert walk(w, 0x8000_0000_4010).pa == RAM + 0x4010
    s2 = PageTable(stage2_format(K4, 31, 1), mem, FrameAllocator(mem, RAM + 48 * MiB, 16 * MiB), root=base + 0x50)
    s2.map(0x4000_0000, RAM, 1 << 30, F.READ)
    w2 = Walker(mem, stage2_rules(VTCR_EL2.build(T0SZ=33, SL0=1, TG0=0, PS=5), base + 0x50))
    assert walk(w2, 0x4000_0123).pa == RAM + 0x123


def test_ttbr_baddr_is_52_bit_with_ds_whatever_ips() -> None:
    """D24.2.209: BADDR represents a 52-bit address when IPS is 52 bits *or* DS=1 (`AArch64.S1TTBaseAddress`):
    with DS=1 and a 48-bit IPS, register bits 5:2 are A[51:48], so a nonzero A[48] is an Address size fault
    at level 0; likewise VTTBR_EL2 with VTCR_EL2.DS=1."""
    s = Space(K4, LPA2, 52)
    assert walk(s.walker(IPS=5), s.lo).ok
    bad = s.ttbr(0) | 1 << 2
    assert fault(walk(s.walker(IPS=5, ttbr0=bad), s.lo)) == (Reason.ADDRESS_SIZE, 0,
                                                              esr(DABT_SAME, fsc(ADDRESS_SIZE, 0)))
    vtcr = VTCR_EL2.build(T0SZ=24, SL0=1, TG0=0, PS=5, DS=1)
    rules = stage2_rules(vtcr, RAM | 1 << 2, pa_range=52)
    assert s2fault(walk(Walker(s.mem, rules), 0x1000)) == (Reason.ADDRESS_SIZE, 0,
                                                           esr(DABT_LOWER, fsc(ADDRESS_SIZE, 0)), 0x10)


@pytest.mark.parametrize(("granule", "form", "va_bits"), CONFIGS, ids=IDS)
def test_bulk_walks_agree_with_one_lane_walks(granule: Granule, form: OAForm, va_bits: int) -> None:
    """Many lanes at once (sorted runs, one table's entries, both halves, mixed accesses and privileges)
    against the one-lane walk, for a table with pages, a block, an invalid entry and an AF=0 page."""
    s = Space(granule, form, va_bits, flags=USER_RW)
    g = granule.size
    for k in range(1, 6):
        s.pt[0].map(s.lo + k * g, s.pa[0] + k * g, g, [F.READ, USER_RW | F.EXECUTE, F.READ | F.EXECUTE,
                                                         F.READ | F.USER, F.EXECUTE | F.USER][k - 1])
    s.mem.write_u64(s.pt[0].lookup(s.lo + 2 * g).pa, 0)
    slot = s.pt[0].lookup(s.lo + 3 * g)
    s.mem.write_u64(slot.pa, slot.raw & ~(1 << 10))
    rng = np.random.default_rng(7)
    vas = np.concatenate([s.lo + np.arange(0, 8 * g, 0x800, dtype=np.uint64),
                          s.hi + np.arange(0, 2 * g, 0x800, dtype=np.uint64),
                          rng.integers(0, 1 << 63, 16, dtype=np.uint64),
                          np.full(4, s.hi ^ 1 << 40, dtype=np.uint64)])
    for walker in (s.walker(), s.walker(HA=1, HD=1), s.walker(pan=True, sctlr=1 | 1 << 19)):
        for access in (R, W, X):
            for privilege in (EL1, EL0):
                assert_lanes_agree(walker, walker.translate_many(vas, access, privilege), access, privilege)
        acc = rng.integers(0, 3, vas.size).astype(np.uint8)
        prv = rng.integers(0, 2, vas.size).astype(np.uint8)
        t = walker.translate_many(vas, acc, prv)
        for n in range(vas.size):
            one = walker.translate(int(vas[n]), Access(int(acc[n])), Privilege(int(prv[n])))
            assert (one.reason, one.level, one.pa) == (t.reason[n], t.level[n], int(t.pa[n]) if one.ok else None)
            assert dict(one.syndrome) == ({k: int(v[n]) for k, v in t.syndrome.items()} if one.reason else {})


def test_hd_without_ha_is_no_dirty_management() -> None:
    """TCR_EL1.HD / VTCR_EL2.HD: 'hardware management of dirty state enabled, only if the HA bit is also set
    to 1' (D24.2.194, D24.2.224): HD=1 with HA=0 is a valid register value, HD taken as 0."""
    s = Space()
    s.poke(0, 3, set_bits=1 << 7 | 1 << 51)                               # AP[2]=1, DBM=1
    w = s.walker(HA=0, HD=1)
    assert fault(walk(w, s.lo, W)) == (Reason.PERMISSION, 3, esr(DABT_SAME, fsc(PERMISSION, 3), wnr=True))
    s.poke(0, 3, clear=1 << 10)
    assert walk(w, s.lo).reason == Reason.ACCESSED_DIRTY
    s2 = Stage2(flags=F.READ)
    s2.poke(len(s2.fmt.levels) - 1, set_bits=1 << 51)
    assert walk(s2.walker(HA=0, HD=1), s2.ipa, W).reason == Reason.PERMISSION


def test_ds_is_res0_for_a_64kb_granule() -> None:
    """TCR_EL1.DS 'is RES0 for a 64KB translation granule' (D24.2.194): with TG0=4KB and TG1=64KB, DS=1 gives
    TTBR0's region FEAT_LPA2's form and leaves TTBR1's 64KB region as it is (FEAT_LPA's form on a 52-bit PE)."""
    lo = Space(K4, LPA2, 52)
    hi = Space(K64, LPA, 52)
    tcr = TCR_EL1.build(T0SZ=12, T1SZ=12, TG0=TG0[K4], TG1=TG1[K64], IPS=6, DS=1)
    mem = PhysMem([(0, MiB), (RAM, 64 * MiB)])
    mem.write(RAM, lo.mem.read(RAM, 64 * MiB))
    w = Walker(mem, el1_rules(tcr, lo.ttbr(0), hi.ttbr(1), pa_range=52))
    assert [r.fmt.name for r in w.rules.regime.regions] == [lo.fmt.name, hi.fmt1.name]
    assert walk(w, lo.lo).pa == lo.pa[0]
    vtcr = VTCR_EL2.build(T0SZ=24, SL0=1, TG0=TG0[K64], PS=5, DS=1)
    assert stage2_rules(vtcr, RAM, pa_range=52).regime.single.fmt.levels[0].arch_level == 2


def test_walks_and_accesses_outside_memory_are_external_aborts() -> None:
    """A descriptor read or the final access reaching no memory: a synchronous External abort, on the walk
    (0b0101LL, level -1: 0b010011) or not (0b010000)."""
    for granule, form, va_bits in ((K4, OA48, 48), (K4, LPA2, 52), (K64, OA48, 48)):
        s = Space(granule, form, va_bits)
        top = s.levels[0]
        code = 0b010011 if top == -1 else 0b010100 | top
        w = s.walker(ttbr0=0x2000_0000)                                   # no RAM there
        assert fault(walk(w, s.lo)) == (Reason.TABLE_OUTSIDE_MEMORY, top, esr(DABT_SAME, code))
        kind = walk(w, s.lo).fault
        assert kind is not None and kind.value == "external-abort"
        s.poke(0, len(s.levels) - 1, clear=0x3FFF_FFFF << granule.value)
        s.poke(0, len(s.levels) - 1, set_bits=0x2000_0000)
        assert fault(walk(s.walker(), s.lo, W)) == (Reason.PA_OUTSIDE_MEMORY, 3, esr(DABT_SAME, 0b010000, wnr=True))


@pytest.mark.parametrize(("granule", "form", "va_bits"), CONFIGS, ids=IDS)
def test_faults_at_every_block_level(granule: Granule, form: OAForm, va_bits: int) -> None:
    """At each level with blocks: a block translates; AF=0 is an Access flag fault, an EL0 access to a kernel
    block a Permission fault, an OA above IPS an Address size fault, all at the block's level."""
    s = Space(granule, form, va_bits)
    for depth, lv in enumerate(s.fmt.levels):
        if not lv.leaf or lv.arch_level == 3:
            continue
        level, va = lv.arch_level, lv.span * 5
        s.pt[0].map(va, 0, lv.span, F.READ | F.WRITE)
        assert s.pt[0].lookup(va).depth == depth
        assert walk(s.walker(), va + 0x28, W).pa == 0x28
        perm = fsc(PERMISSION, level)
        assert fault(walk(s.walker(), va, R, EL0)) == (Reason.PERMISSION, level, esr(DABT_LOWER, perm))
        assert fault(walk(s.walker(), va, X)) == (Reason.PERMISSION, level, esr(IABT_SAME, perm))
        slot = s.pt[0].lookup(va)
        s.mem.write_u64(slot.pa, slot.raw & ~(1 << 10))
        assert fault(walk(s.walker(), va, W)) == (Reason.ACCESSED_DIRTY, level,
                                                  esr(DABT_SAME, fsc(ACCESS_FLAG, level), wnr=True))
        s.mem.write_u64(slot.pa, slot.raw | 1 << 44)
        assert fault(walk(s.walker(IPS=2), va)) == (Reason.ADDRESS_SIZE, level,
                                                    esr(DABT_SAME, fsc(ADDRESS_SIZE, level)))
        s.mem.write_u64(slot.pa, slot.raw)


def test_stage1_off_is_flat_up_to_the_pa_size() -> None:
    """SCTLR_EL1.M=0: PA = VA, and a VA at or above the implemented PA size is an Address size fault at
    level 0 (D8.2.11), reported as a Data or Instruction Abort like any stage 1 fault."""
    mem = PhysMem([(0x4000_0000, 1 << 16)])
    w = Walker(mem, el1_rules(0, 0, 0, sctlr_el1=0, pa_range=40))
    assert w.translate(0x4000_0010).pa == 0x4000_0010
    t = w.translate(1 << 40, "execute")
    assert (t.reason, t.level, t.syndrome["esr"] & 0x3F, t.syndrome["esr"] >> 26) == (Reason.ADDRESS_SIZE, 0, 0, 0x21)
    many = w.translate_many([0x4000_0010, 1 << 40, (1 << 40) - 8])
    assert many.reason.tolist() == [Reason.OK, Reason.ADDRESS_SIZE, Reason.PA_OUTSIDE_MEMORY]
