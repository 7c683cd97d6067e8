"""Differential test: the library's AArch64 walker against QEMU 7.2's (``qemu-system-aarch64 -M
virt,virtualization=on -cpu max``), through the probe harness (pagetable/vectors/aarch64/qemu.py).

Stage 1 tables for TTBR0_EL1 and TTBR1_EL1 are built with `PageTable` in a tagged image at RAM_BASE, one
case per root-table entry, and raw bits are poked on each case's path to make every fault the walker
implements (Arm ARM DDI 0487 M.a.a, D8.2-D8.4): invalid at each level, 0b01 at level 3, a block at a level
without blocks, table and output addresses beyond the output size (TCR_EL1.IPS of 40 bits) or beyond RAM,
AF=0, AP, PXN/UXN, APTable/PXNTable/UXNTable, HPDn, EL0-writable ⇒ not privileged-executable, WXN, PAN,
fetches from Device memory, VAs out of range in both halves, blocks at every block level. Each case is
asked of QEMU by AT (S1E1R/W, S1E1RP/WP under PAN, S1E0R/W: PAR_EL1) and by real loads, stores and fetches
at EL1 and EL0 (ESR_EL1/FAR_EL1), for the 4KB (48- and 39-bit), 16KB (47-bit), 64KB (48-bit, and 52-bit
with FEAT_LPA) and 4KB FEAT_LPA2 (52-bit, DS=1) formats; a two-stage scene (stage 2 4KB, 40-bit IPA, two
concatenated level-1 tables) asks AT S12E1R/W, S12E0R/W and real accesses, whose stage 2 faults are taken
to EL2 (ESR_EL2, HPFAR_EL2, S1PTW).

Compared: for AT, PAR_EL1.F, the PA (PAR_EL1.PA) or FST, S (stage 2) and PTW (S1PTW); for an access,
success (the loaded word is the image's at the PA; a fetch reaches the VA) or the EL that took the
exception, ESR_ELx.EC, IL and ISS[7:0] (DFSC/IFSC, WnR, S1PTW), FAR_ELx and HPFAR_EL2. The differences
allowed are QEMU 7.2's, named (shared notes items 1/14, 16 and 20: docs/qemu.md), counted and required to
occur exactly where predicted:
- `BLOCK_LEVEL`: a block at a level the granule has no blocks at is accepted (the manual:
  `AArch64.BlockDescSupported`, a Translation fault);
- `DEVICE_FETCH`: an instruction fetch from Device memory executes (the manual: a Permission fault,
  `AArch64.S1CheckPermissions`);
- `HIGH_OA`: OA bits above a 48-bit output size held in the 52-bit forms' extra bits are dropped (the
  manual: an Address size fault);
and where the walker says an access reaches no RAM (`external-abort`, platform-defined), AT succeeds with
that PA (AT does not access it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest

from pagetable.arch.aarch64 import (
    HCR_EL2,
    SCTLR_EL1,
    SCTLR_EL2,
    TCR_EL1,
    TCR_EL2,
    VTCR_EL2,
    A64Codec,
    Granule,
    OAForm,
    OutputAddress,
    el1_rules,
    el2_rules,
    stage1_format,
)
from pagetable.arch.aarch64.codec import (
    AF,
    AP_EL0,
    AP_TABLE_NO_EL0,
    AP_TABLE_NO_WRITE,
    PXN,
    PXN_TABLE,
    S2AP_R,
    S2AP_W,
    TYPE,
    UXN_TABLE,
    VALID,
    XN_SHIFT,
)
from pagetable.arch.aarch64.modes import stage2_format
from pagetable.arch.aarch64.regimes import stage2_rules
from pagetable.arch.aarch64.regs import LINUX_MAIR_EL1
from pagetable.flags import MappingFlags as F
from pagetable.format import PagingFormat
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.translation import Translation
from pagetable.vectors import generate_aarch64
from pagetable.vectors.aarch64 import qemu as q
from pagetable.vectors.aarch64.deviations import (
    BLOCK_LEVEL,
    DEVICE_FETCH,
    NO_RAM,
    compare_access,
    compare_at,
    expect,
    run_vector_set,
    vector_registers,
)
from pagetable.vectors.aarch64.layout import RAM_BASE, tag_memory
from pagetable.vectors.aarch64.modes import walker_for
from pagetable.vectors.aarch64.qemu import ProbeCase, Registers
from pagetable.vectors.verify import verify_walker
from pagetable.walker import Reason, Walker

from .conftest import require_qemu_aarch64

MiB = 1 << 20
IMAGE = 32 * MiB
TABLES = RAM_BASE + 8 * MiB                   # stage 1 tables: 20 MiB from here (64KB tables are large)
S1_TABLES = 20 * MiB
S2_TABLES = TABLES + S1_TABLES                # stage 2 tables: the image's last 4 MiB
PA_RANGE = 52                                 # -cpu max: ID_AA64MMFR0_EL1.PARange = 52 bits
SCTLR = q.Registers().sctlr_el1               # M, C, I and the RES1 bits
KERNEL = 0xFFFF_0000_0000_0000
HIGH_OA = "QEMU 7.2 drops OA bits above a 48-bit output size (note 16)"
ACCESSES = [("read", 1), ("read", 0), ("execute", 1), ("execute", 0), ("write", 1), ("write", 0)]
"""Writes last: the harness's store writes back what its load read, 0 where the load faulted (a write-only
stage 2 page), which a later fetch of that word would see."""
_ONES = (1 << 64) - 1


@dataclass
class Case:
    va: int
    deviation: str | None = None            # the named QEMU difference this case shows, if any


@dataclass
class Scene:
    """A tagged image with TTBR0_EL1 and TTBR1_EL1 tables of `granule` and sizes `bits0`/`bits1`. Each case
    owns one entry at its half's first level of at least 64 entries (`own`), in the first root entry (the
    last TTBR1 root entry is the harness's), so that pokes at that level and below touch that case alone."""

    granule: Granule
    bits0: int
    bits1: int
    form: OAForm = OAForm.OA48
    cases: list[Case] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.mem = PhysMem([(RAM_BASE, IMAGE)])
        tag_memory(self.mem)
        self.mem.fill(TABLES, IMAGE - (TABLES - RAM_BASE))
        frames = FrameAllocator(self.mem, TABLES, S1_TABLES)
        self.fmt0 = stage1_format(self.granule, self.bits0, self.form)
        self.fmt1 = stage1_format(self.granule, self.bits1, self.form, upper=True)
        self.pt0, self.pt1 = PageTable(self.fmt0, self.mem, frames), PageTable(self.fmt1, self.mem, frames)
        self.next = {0: 1, 1: 0}
        self.own = {h: next(d for d, lv in enumerate(f.levels) if lv.entries >= 64)
                    for h, f in ((0, self.fmt0), (1, self.fmt1))}
        self.data = RAM_BASE + MiB                # page-aligned data frames follow, one per case

    def fmt(self, half: int) -> PagingFormat:
        return self.fmt1 if half else self.fmt0

    def levels(self, half: int) -> list[int]:
        """The levels a case of `half` may poke: its own entry's and those below."""
        return [lv.arch_level for lv in self.fmt(half).levels[self.own[half]:]]

    def tcr(self, ips: int = 5, **fields: int) -> int:
        tg0 = {Granule.K4: 0, Granule.K64: 1, Granule.K16: 2}[self.granule]
        tg1 = {Granule.K4: 2, Granule.K16: 1, Granule.K64: 3}[self.granule]
        ds = int(self.form is OAForm.LPA2)
        return TCR_EL1.build(T0SZ=64 - self.bits0, T1SZ=64 - self.bits1, TG0=tg0, TG1=tg1, IPS=ips, DS=ds, IRGN0=1,
                             ORGN0=1, SH0=3, IRGN1=1, ORGN1=1, SH1=3, **fields)

    def slot_va(self, half: int) -> int:
        """The first VA of the next free entry at `half`'s own level (TTBR1's last root entry stays free)."""
        fmt = self.fmt(half)
        own = fmt.levels[self.own[half]]
        k = self.next[half]
        self.next[half] += 1
        assert k < own.entries - 1, "out of entries"
        base = k << own.index_lsb
        return fmt.extend(base) if half else base

    def add(self, half: int, flags: F, *, level: int = 3, pokes: tuple[tuple[int, int, int], ...] = (),
            deviation: str | None = None, pa: int | None = None) -> int:
        """Map a leaf of `level` with `flags` in the next root entry of `half`, poke (level, set, clear) into
        the entries on its path, and add a case for a word in it; returns the case's VA."""
        pt, fmt = (self.pt1, self.fmt1) if half else (self.pt0, self.fmt0)
        depth = next(d for d, lv in enumerate(fmt.levels) if lv.arch_level == level)
        size = fmt.levels[depth].span
        va = self.slot_va(half) + (size * 3 if depth > self.own[half] else 0)
        if pa is None:
            if size == fmt.page_size:
                pa, self.data = self.data, self.data + fmt.page_size
            else:
                pa = (RAM_BASE // size) * size               # a block around the image's RAM
        pt.map(va, pa, size, flags)
        for lv, set_bits, clear in pokes:
            d = next(d for d, x in enumerate(fmt.levels) if x.arch_level == lv)
            slot = pt.lookup(va, d)
            self.mem.write_u64(slot.pa, (slot.raw | set_bits) & (_ONES ^ clear))
        probe = va + (RAM_BASE + 0x1238 - pa if size > fmt.page_size else 0x238)   # a tagged word of the image
        self.cases.append(Case(probe, deviation))
        return probe

    def raw_case(self, va: int, deviation: str | None = None) -> None:
        self.cases.append(Case(va, deviation))

    def image(self) -> bytes:
        return self.mem.read(RAM_BASE, IMAGE)


def _stage1_scene(granule: Granule, bits0: int, bits1: int, form: OAForm = OAForm.OA48) -> Scene:
    s = Scene(granule, bits0, bits1, form)
    user_rw, user_ro, user_x = F.READ | F.WRITE | F.USER, F.READ | F.USER, F.EXECUTE | F.USER
    kern_rw, kern_rx, kern_ro = F.READ | F.WRITE, F.READ | F.EXECUTE, F.READ
    for half in (0, 1):
        levels = s.levels(half)
        leaves = {lv.arch_level for lv in s.fmt(half).levels if lv.leaf}
        blocks = [lv for lv in levels[:-1] if lv in leaves]
        no_blocks = [lv for lv in levels[:-1] if lv not in leaves]
        for flags in (user_rw, user_ro, user_x, user_rw | F.EXECUTE, user_ro | F.EXECUTE, kern_rw, kern_rx, kern_ro,
                      kern_rw | F.EXECUTE):
            s.add(half, flags)
        for lv in levels:                                     # invalid at each level
            s.add(half, user_rw, pokes=((lv, 0, VALID),))
        s.add(half, user_rw, pokes=((3, 0, TYPE),))           # 0b01 at level 3
        s.add(half, kern_rw, pokes=((3, 0, AF),))             # Access flag fault
        for lv in blocks:                                     # a block at every block level
            s.add(half, user_rw | F.EXECUTE, level=lv)
        for lv in no_blocks:                                  # a block where the granule has none
            s.add(half, user_rw, pokes=((lv, 0, TYPE),), deviation=BLOCK_LEVEL)
        for bits in (AP_TABLE_NO_EL0, AP_TABLE_NO_WRITE, PXN_TABLE, UXN_TABLE):   # table attributes
            s.add(half, F.READ | F.WRITE | F.EXECUTE | F.USER, pokes=((levels[0], bits, 0),))
            s.add(half, kern_rw | F.EXECUTE, pokes=((levels[-2], bits, 0),))
        s.add(half, user_rw, pokes=((3, 0, PXN),))            # EL0-writable: never privileged-executable
        s.add(half, kern_rw | F.EXECUTE | F.DEVICE, deviation=DEVICE_FETCH)        # Device memory: no fetch
        # an output address beyond IPS=40 bits (RAM otherwise: bit 44), and a table address
        s.add(half, kern_rw, pokes=((3, 1 << 44, 0),))
        s.add(half, kern_rw, pokes=((levels[-2], 1 << 44, 0),))
        if form is not OAForm.OA48:                           # OA[51:48] in the 52-bit forms' extra bits
            hi = 1 << (12 if form is OAForm.LPA else 8)
            s.add(half, kern_rw, pokes=((3, hi, 0),), deviation=HIGH_OA)
    s.raw_case(1 << s.bits0)                                  # out of range below, above, and in the gap
    s.raw_case(s.fmt1.extend(0) - (1 << s.bits1) + 0x1000)
    s.raw_case(1 << 55)
    return s


SCENES: dict[str, Callable[[], Scene]] = {
    "4k-48": lambda: _stage1_scene(Granule.K4, 48, 48),
    "4k-39": lambda: _stage1_scene(Granule.K4, 39, 39),
    "16k-47": lambda: _stage1_scene(Granule.K16, 47, 47),
    "64k-48": lambda: _stage1_scene(Granule.K64, 48, 42, OAForm.LPA),          # FEAT_LPA: 52-bit PAs
    "64k-52": lambda: _stage1_scene(Granule.K64, 52, 52, OAForm.LPA),
    "4k-52-lpa2": lambda: _stage1_scene(Granule.K4, 52, 48, OAForm.LPA2),
}


@dataclass(frozen=True)
class Config:
    name: str
    ips: int = 5               # TCR_EL1.IPS: 0b101 48 bits, 0b010 40 bits, 0b110 52 bits
    wxn: bool = False
    pan: bool = False
    hpd: bool = False


CONFIGS = [Config("default"), Config("ips40", ips=2), Config("wxn", wxn=True), Config("pan", pan=True),
           Config("hpd", hpd=True)]


def _registers(s: Scene, c: Config, ips: int) -> Registers:
    tcr = s.tcr(ips=ips, HPD0=int(c.hpd), HPD1=int(c.hpd))
    sctlr = SCTLR | (SCTLR_EL1.mask("WXN") if c.wxn else 0)
    return Registers(sctlr_el1=sctlr, tcr_el1=tcr, ttbr0_el1=s.pt0.root_paddr, ttbr1_el1=s.pt1.root_paddr,
                     mair_el1=LINUX_MAIR_EL1, pan=c.pan)


def _run(scene: Scene, configs: list[Config], walker: Callable[[Config, int], Walker],
         regs: Callable[[Config, int], Registers], ips_of: Callable[[Config], int],
         els: tuple[int, ...] = (1, 0)) -> tuple[list[str], Counter[str], Counter[Reason]]:
    """Probe every case under every config by AT and by real accesses; returns the disagreements not named,
    the named deviations seen, and the walker reasons compared."""
    probes: list[tuple[Config, Case, str, int, str]] = []
    expected: dict[tuple[Config, int, str, int], tuple[Translation, int]] = {}
    accesses = [(a, el) for a in ("read", "execute", "write") for el in els] if els != (1, 0) else ACCESSES
    for c in configs:
        w = walker(c, ips_of(c))
        for access, el in accesses:
            vas = [case.va for case in scene.cases]
            expected |= {(c, va, access, el): e for va, e in zip(vas, expect(w, vas, access, el), strict=True)}
    for c in configs:
        for case in scene.cases:
            for access, el in accesses:
                # an external abort on the walk is taken as an exception, not reported in PAR_EL1 (C5.5)
                walk_abort = expected[c, case.va, access, el][0].reason == Reason.TABLE_OUTSIDE_MEMORY
                if access != "execute" and not (c.pan and el == 0) and not walk_abort:
                    probes.append((c, case, access, el, "at"))
                if not (c.pan and el == 0):
                    probes.append((c, case, access, el, "access"))
    cases = [ProbeCase(case.va, access, el, method, regs(c, ips_of(c))) for c, case, access, el, method in probes]
    run = q.run_probes(scene.image(), cases, qemu=require_qemu_aarch64(), timeout=300)
    image = run.image
    failures: list[str] = []
    named: Counter[str] = Counter()
    seen: Counter[Reason] = Counter()
    for (c, case, access, el, method), got in zip(probes, run.results, strict=True):
        t, pa = expected[c, case.va, access, el]
        diff = compare_at(t, pa, got) if method == "at" else compare_access(t, got, image, access)
        seen[t.reason] += 1
        if diff is None:
            continue
        if case.deviation is not None and not t.ok:
            named[case.deviation] += 1
            continue
        failures.append(f"[{c.name}] {case.va:#x} {access} EL{el} {method}: {diff}")
    return failures, named, seen


@pytest.mark.parametrize("name", list(SCENES))
def test_stage1_agrees_with_qemu(name: str) -> None:
    require_qemu_aarch64()
    s = SCENES[name]()
    ips_of: Callable[[Config], int] = lambda c: c.ips if c.ips != 5 or s.form is OAForm.OA48 else 6  # noqa: E731

    def walker(c: Config, ips: int) -> Walker:
        r = _registers(s, c, ips)
        return Walker(s.mem, el1_rules(r.tcr_el1, r.ttbr0_el1, r.ttbr1_el1, r.mair_el1, r.sctlr_el1, pan=c.pan,
                                       pa_range=PA_RANGE))
    failures, named, seen = _run(s, CONFIGS, walker, lambda c, ips: _registers(s, c, ips), ips_of)
    assert not failures, f"{len(failures)} disagreements:\n" + "\n".join(failures[:40])
    assert named[BLOCK_LEVEL] > 0 or not any(c.deviation == BLOCK_LEVEL for c in s.cases)
    assert named[DEVICE_FETCH] > 0
    assert (named[HIGH_OA] > 0) == (s.form is not OAForm.OA48)
    assert set(named) <= {BLOCK_LEVEL, DEVICE_FETCH, HIGH_OA}
    assert {Reason.OK, Reason.INVALID, Reason.RESERVED, Reason.ADDRESS_SIZE, Reason.ACCESSED_DIRTY,
            Reason.PERMISSION, Reason.NON_CANONICAL} <= set(seen), f"reasons never compared: {seen}"


# ------------------------------------------------------------------------------------------ the EL2 regime
def _el2_scene(granule: Granule, bits: int) -> Scene:
    """TTBR0_EL2 tables (HCR_EL2.E2H=0: one range, no EL0; AP[1] RES1, XN for UXN): pages of each
    permission, invalid entries at each level, AF=0, XNTable and APTable[1], a block at each block level and
    out-of-range VAs. (Scene's TTBR1 tables go unused.)"""
    s = Scene(granule, bits, bits)
    el2 = stage1_format(granule, bits, codec=A64Codec(OutputAddress(granule), el2=True))
    s.fmt0, s.pt0 = el2, PageTable(el2, s.mem, FrameAllocator(s.mem, S2_TABLES, IMAGE - (S2_TABLES - RAM_BASE)))
    s.own[0] = next(d for d, lv in enumerate(el2.levels) if lv.entries >= 64)
    rw, rx, ro, rwx = F.READ | F.WRITE, F.READ | F.EXECUTE, F.READ, F.READ | F.WRITE | F.EXECUTE
    for flags in (rw, rx, ro, rwx):
        s.add(0, flags)
    levels = s.levels(0)
    for lv in levels:
        s.add(0, rw, pokes=((lv, 0, VALID),))
    s.add(0, rw, pokes=((3, 0, AF),))
    s.add(0, rwx, pokes=((3, 0, AP_EL0),))                    # AP[1] is RES1 here: ignored
    for bits_ in (AP_TABLE_NO_WRITE, UXN_TABLE, PXN_TABLE, AP_TABLE_NO_EL0):   # PXNTable and APTable[0]: RES0
        s.add(0, rwx, pokes=((levels[0], bits_, 0),))
    for lv in levels[:-1]:
        if el2.levels[el2.depth_count - 4 + lv].leaf:
            s.add(0, rwx, level=lv)
    s.raw_case(1 << bits)
    s.raw_case(1 << 55)
    return s


@pytest.mark.parametrize(("granule", "bits"), [(Granule.K4, 48), (Granule.K64, 42)])
def test_el2_regime_agrees_with_qemu(granule: Granule, bits: int) -> None:
    require_qemu_aarch64()
    s = _el2_scene(granule, bits)
    tg0 = {Granule.K4: 0, Granule.K64: 1, Granule.K16: 2}[granule]
    sctlr = Registers().sctlr_el2 | SCTLR_EL2.mask("M")

    def regs(c: Config, ips: int) -> Registers:
        tcr = TCR_EL2.build(T0SZ=64 - bits, TG0=tg0, PS=ips, IRGN0=1, ORGN0=1, SH0=3, RES1_23=1, RES1_31=1)
        return Registers(sctlr_el2=sctlr | (SCTLR_EL2.mask("WXN") if c.wxn else 0), tcr_el2=tcr,
                         ttbr0_el2=s.pt0.root_paddr, mair_el2=LINUX_MAIR_EL1)

    def walker(c: Config, ips: int) -> Walker:
        r = regs(c, ips)
        return Walker(s.mem, el2_rules(r.tcr_el2, r.ttbr0_el2, r.mair_el2, r.sctlr_el2, pa_range=PA_RANGE))
    configs = [Config("default"), Config("wxn", wxn=True)]
    failures, named, seen = _run(s, configs, walker, regs, lambda c: 5, els=(2,))
    assert not failures, f"{len(failures)} disagreements:\n" + "\n".join(failures[:40])
    assert not named
    assert {Reason.OK, Reason.INVALID, Reason.ACCESSED_DIRTY, Reason.PERMISSION, Reason.NON_CANONICAL} <= set(seen)


def test_el2_host_regime_agrees_with_qemu() -> None:
    """The EL2&0 regime (HCR_EL2.E2H=1, FEAT_VHE; TGE=1 so that EL0 runs in it): TCR_EL2 in TCR_EL1's layout,
    TTBR0_EL2 and TTBR1_EL2, the same cases as the EL1&0 4KB/48 scene, probed at EL2 and EL0."""
    require_qemu_aarch64()
    s = SCENES["4k-48"]()
    hcr = Registers().hcr_el2 | HCR_EL2.mask("E2H", "TGE")
    sctlr = SCTLR                                     # SCTLR_EL2 in SCTLR_EL1's layout: M, C, I, RES1

    def regs(c: Config, ips: int) -> Registers:
        return Registers(sctlr_el2=sctlr | (SCTLR_EL1.mask("WXN") if c.wxn else 0), tcr_el2=s.tcr(ips=ips),
                         ttbr0_el2=s.pt0.root_paddr, ttbr1_el2=s.pt1.root_paddr, mair_el2=LINUX_MAIR_EL1,
                         hcr_el2=hcr)

    def walker(c: Config, ips: int) -> Walker:
        r = regs(c, ips)
        return Walker(s.mem, el2_rules(r.tcr_el2, r.ttbr0_el2, r.mair_el2, r.sctlr_el2, hcr_el2=hcr,
                                       ttbr1_el2=r.ttbr1_el2, pa_range=PA_RANGE))
    configs = [Config("default"), Config("ips40", ips=2), Config("wxn", wxn=True)]
    failures, named, seen = _run(s, configs, walker, regs, lambda c: c.ips, els=(2, 0))
    assert not failures, f"{len(failures)} disagreements:\n" + "\n".join(failures[:40])
    assert set(named) <= {BLOCK_LEVEL, DEVICE_FETCH} and named[DEVICE_FETCH] > 0
    assert {Reason.OK, Reason.INVALID, Reason.ADDRESS_SIZE, Reason.ACCESSED_DIRTY, Reason.PERMISSION,
            Reason.NON_CANONICAL} <= set(seen)


# ------------------------------------------------------------------------------------------ two stages
S2_IPA_BITS = 40


def _two_stage_scene() -> tuple[Scene, PageTable, list[Case]]:
    """Stage 1 4KB/48 tables over an identity stage 2 (IPA = PA for the image) whose entries for chosen
    pages are poked: a stage 1 leaf table in a page stage 2 does not map, maps read-only or with AF=0, and
    final IPAs stage 2 maps read-only, write-only, without access, not executable or with AF=0."""
    s = Scene(Granule.K4, 48, 48)
    fmt2: PagingFormat = stage2_format(Granule.K4, S2_IPA_BITS, 1)
    frames = FrameAllocator(s.mem, S2_TABLES, IMAGE - (S2_TABLES - RAM_BASE))
    s2 = PageTable(fmt2, s.mem, frames)
    s2.map_region(RAM_BASE, RAM_BASE, IMAGE, F.READ | F.WRITE | F.EXECUTE)
    user = F.READ | F.WRITE | F.EXECUTE | F.USER
    for flags in (user, F.READ | F.WRITE | F.EXECUTE):
        s.add(0, flags)
        s.add(1, flags)
    for set_bits, clear in ((0, VALID), (0, S2AP_R | S2AP_W), (0, S2AP_W), (0, AF), (0, S2AP_R), (2 << XN_SHIFT, 0),
                            (1 << XN_SHIFT, 0), (3 << XN_SHIFT, 0)):
        va = s.add(0, user)                                   # the final IPA's stage 2 entry
        pa = s.pt0.query(va)[0]
        leaf = s2.lookup(pa, fmt2.depth_count - 1)
        s.mem.write_u64(leaf.pa, (leaf.raw | set_bits) & (_ONES ^ clear))
    for clear in (VALID, S2AP_R, AF):                         # the stage 1 leaf table's page
        va = s.add(0, user)
        table = s.pt0.lookup(va, s.fmt0.depth_count - 1).pa & ~0xFFF
        leaf = s2.lookup(table, fmt2.depth_count - 1)
        s.mem.write_u64(leaf.pa, leaf.raw & (_ONES ^ clear))
    return s, s2, s.cases


def test_two_stages_agree_with_qemu() -> None:
    require_qemu_aarch64()
    s, s2, _ = _two_stage_scene()
    vtcr = VTCR_EL2.build(T0SZ=64 - S2_IPA_BITS, SL0=1, IRGN0=1, ORGN0=1, SH0=3, TG0=0, PS=5, RES1_31=1)
    hcr = Registers().hcr_el2 | HCR_EL2.mask("VM")

    def regs(c: Config, ips: int) -> Registers:
        return Registers(sctlr_el1=SCTLR, tcr_el1=s.tcr(ips=ips), ttbr0_el1=s.pt0.root_paddr,
                         ttbr1_el1=s.pt1.root_paddr, mair_el1=LINUX_MAIR_EL1, hcr_el2=hcr, vtcr_el2=vtcr,
                         vttbr_el2=s2.root_paddr)

    def walker(c: Config, ips: int) -> Walker:
        r = regs(c, ips)
        stage2 = Walker(s.mem, stage2_rules(vtcr, s2.root_paddr, hcr_el2=hcr, pa_range=PA_RANGE))
        return Walker(s.mem, el1_rules(r.tcr_el1, r.ttbr0_el1, r.ttbr1_el1, r.mair_el1, r.sctlr_el1,
                                       pa_range=PA_RANGE), stage2=stage2)
    failures, named, seen = _run(s, [Config("default")], walker, regs, lambda c: 5)
    assert not failures, f"{len(failures)} disagreements:\n" + "\n".join(failures[:40])
    assert not named
    assert Reason.PERMISSION in seen and Reason.INVALID in seen and Reason.ACCESSED_DIRTY in seen


def test_the_walker_sees_stage2_faults_on_table_reads() -> None:
    """The two-stage scene really makes stage 1 table reads fault at stage 2 (S1PTW) and final IPAs fault
    there too, so the comparison above covers both (without QEMU)."""
    s, s2, cases = _two_stage_scene()
    vtcr = VTCR_EL2.build(T0SZ=64 - S2_IPA_BITS, SL0=1, TG0=0, PS=5, RES1_31=1)
    stage2 = Walker(s.mem, stage2_rules(vtcr, s2.root_paddr, pa_range=PA_RANGE))
    w = Walker(s.mem, el1_rules(s.tcr(), s.pt0.root_paddr, s.pt1.root_paddr, pa_range=PA_RANGE), stage2=stage2)
    got = [w.translate(c.va, "read", "user") for c in cases]
    assert sum(t.stage == 2 and t.implicit for t in got) == 3
    assert sum(t.stage == 2 and not t.implicit for t in got) >= 4
    assert all(t.syndrome["el"] == 2 and t.syndrome["esr"] >> 7 & 1 for t in got if t.implicit)
    assert np.all(np.array([t.syndrome["hpfar"] for t in got if t.stage == 2]) != 0)


# ------------------------------------------------------------------------------------ generated vector sets
@pytest.mark.parametrize(("mode", "seed"), [("aarch64-4k-48", 1), ("aarch64-4k-39", 2), ("aarch64-16k-47", 3),
                                            ("aarch64-64k-48", 4), ("aarch64-64k-52", 5),
                                            ("aarch64-4k-52-lpa2", 6), ("aarch64-el2-4k-48", 7),
                                            ("aarch64-s2-4k-40", 8), ("aarch64-4k-48+s2-4k-40", 9),
                                            ("aarch64-s2-64k-42", 10), ("aarch64-s2-16k-40", 11),
                                            ("aarch64-64k-48+s2-64k-42", 12), ("aarch64-16k-47+s2-16k-40", 13)])
def test_vector_sets_match_qemu(mode: str, seed: int) -> None:
    """Every case of a generated vector set, by AT (reads and writes) and by a real access (stage 1 on),
    agrees with QEMU apart from the named deviations, which occur exactly where predicted; the set's
    recorded outcomes are the walker's."""
    require_qemu_aarch64()
    vs = generate_aarch64(mode, seed)
    assert verify_walker(vs, walker_for(vs), attributes=True).details == []     # the recorded outcomes
    run = run_vector_set(vs, qemu=require_qemu_aarch64())
    failures = [text for _, text in run.failures]
    assert not failures, f"{len(failures)} of {len(run.probes)} probes disagree:\n" + "\n".join(failures[:40])
    assert run.predicted == run.differed, f"named deviations predicted {dict(run.predicted)}, seen {dict(run.differed)}"
    stage1 = SCTLR_EL1.get(vector_registers(vs).sctlr_el1, "M") or "sctlr_el2" in vs.registers
    assert run.platform <= run.outside and (run.platform > 0) == (run.outside > 0 and stage1 and "+s2" not in mode), \
        NO_RAM
    assert len(run.probes) >= 100
