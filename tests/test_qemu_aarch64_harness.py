"""Tests of the QEMU AArch64 probe harness (pagetable/vectors/aarch64/qemu.py) and its stub (stub.S).

Translation tables are built by hand here, from the descriptor layouts of pagetable/arch/aarch64
(`descriptor_layout`, `with_output_address`; Arm ARM DDI 0487 M.a.a D8.3), never with the library's walker,
and every answer QEMU gives is checked against literal values from the Arm ARM: PAR_EL1 (D24.2.118: F, FST,
PA), ESR_ELx (D24.2.47: EC 0x20/0x21 Instruction Abort, 0x24/0x25 Data Abort; the DFSC/IFSC fault status
codes 0b0001LL translation, 0b0010LL access flag, 0b0011LL permission fault at level LL; WnR), FAR_ELx and
HPFAR_EL2 (D24.2.64).  The tests that need ``qemu-system-aarch64`` (Debian ``qemu-system-arm``) or the
binutils that assemble the stub (``binutils-aarch64-linux-gnu``) skip without them, or fail when
``CI=true``.
"""

from __future__ import annotations

import dataclasses
import stat
import time
from pathlib import Path

import pytest

from pagetable.arch.aarch64 import (
    HCR_EL2,
    SCTLR_EL1,
    SCTLR_EL2,
    TCR_EL1,
    TCR_EL2,
    VTCR_EL2,
    Granule,
    OAForm,
    Stage,
    descriptor_layout,
    output_shift,
    with_output_address,
)
from pagetable.format import EntryKind
from pagetable.physmem import PhysMem
from pagetable.vectors.aarch64 import layout as lay
from pagetable.vectors.aarch64 import qemu as q
from pagetable.vectors.aarch64.layout import RAM_BASE, tag
from pagetable.vectors.aarch64.qemu import ProbeCase, ProbeResult, Registers

from .conftest import require_qemu_aarch64, require_toolchain_aarch64

MiB = 1 << 20
IMAGE_SIZE = 4 * MiB
TABLES = RAM_BASE + 3 * MiB          # the hand-built tables: the last MiB of the image


class Tables:
    """Hand-built VMSAv8-64 tables in a tagged image: `map` writes a leaf at `level` for `va`, creating the
    tables above it (from `start`), with the descriptor layouts of D8.3.1."""

    def __init__(self, mem: PhysMem, stage: Stage, granule: Granule, start: int, *, bits: int,
                 at: int = TABLES, form: OAForm = OAForm.OA48) -> None:
        self.mem, self.stage, self.granule, self.start, self.bits = mem, stage, granule, start, bits
        self.form = form
        self.next = at
        self.root = self.alloc(1 << max(bits - output_shift(granule, start) + 3, 3))

    def alloc(self, size: int | None = None) -> int:
        size = size or self.granule.size
        pa = -(-self.next // max(size, 64)) * max(size, 64)
        self.mem.fill(pa, size, 0)
        self.next = pa + size
        return pa

    def index(self, va: int, level: int) -> int:
        width = self.bits - output_shift(self.granule, level) if level == self.start else self.granule.stride
        return (va >> output_shift(self.granule, level)) & ((1 << width) - 1)

    def table_at(self, va: int, level: int) -> int:
        """The PA of the level `level` table on `va`'s path (created as needed)."""
        table = self.root
        for lvl in range(self.start, level):
            slot = table + 8 * self.index(va, lvl)
            entry = self.mem.read_u64(slot)
            if not entry & 1:
                child = self.alloc()
                layout = descriptor_layout(self.stage, EntryKind.TABLE, self.granule, lvl, self.form)
                self.mem.write_u64(slot, with_output_address(layout, layout.build(VALID=1, TYPE=1), child))
                entry = self.mem.read_u64(slot)
            table = entry & 0x0000_FFFF_FFFF_F000 & ~(self.granule.size - 1)
        return table

    def map(self, va: int, pa: int, level: int = 3, **attrs: int) -> int:
        """Map `va` to `pa` with a block (level < 3) or page; returns the descriptor's PA."""
        kind = EntryKind.PAGE if level == 3 else EntryKind.BLOCK
        layout = descriptor_layout(self.stage, kind, self.granule, level, self.form)
        fields = {"VALID": 1, "TYPE": int(level == 3), "AF": 1}
        if self.form is not OAForm.LPA2:
            fields["SH"] = 3
        fields.update(attrs)
        if self.stage is Stage.STAGE2:
            fields.setdefault("S2AP", 3)
            fields.setdefault("MemAttr", 0xF)
        slot = self.table_at(va, level) + 8 * self.index(va, level)
        self.mem.write_u64(slot, with_output_address(layout, layout.build(**fields), pa))
        return slot


def image() -> PhysMem:
    mem = PhysMem([(RAM_BASE, IMAGE_SIZE)])
    lay.tag_memory(mem)
    return mem


def tcr(granule: Granule = Granule.K4, bits: int = 48, **extra: int) -> int:
    """TCR_EL1 with both regions of `granule` and `bits` (TG0 and TG1 encode granules differently)."""
    tg0 = {Granule.K4: 0, Granule.K64: 1, Granule.K16: 2}[granule]
    tg1 = {Granule.K4: 2, Granule.K64: 3, Granule.K16: 1}[granule]
    values = {"T0SZ": 64 - bits, "T1SZ": 64 - bits, "TG0": tg0, "TG1": tg1, "IRGN0": 1, "ORGN0": 1, "SH0": 3,
              "IRGN1": 1, "ORGN1": 1, "SH1": 3, "IPS": 5}
    values.update(extra)
    return TCR_EL1.build(**values)


def page_of(pa: int) -> int:
    return pa & ~0xFFF


# -- no QEMU needed -------------------------------------------------------------------------------------------

def test_tags_are_brk_instructions() -> None:
    """The tag's low word is BRK #0xA64 (C6.2.40: 0xD4200000 | imm16 << 5), its high word the PA."""
    assert lay.TAG_LOW == 0xD421_4C80 == lay.brk(0xA64)
    assert tag(0x4100_1238) == 0x4100_1238_D421_4C80
    mem = PhysMem([(RAM_BASE, 64)])
    lay.tag_memory(mem)
    assert mem.read_u64(RAM_BASE + 8) == tag(RAM_BASE + 8)


def test_registers_defaults_are_real_values() -> None:
    r = Registers()
    assert SCTLR_EL1.get(r.sctlr_el1, "M") == 1 and SCTLR_EL2.get(r.sctlr_el2, "M") == 0
    assert r.hcr_el2 == HCR_EL2.mask("RW") and not r.two_stage
    assert TCR_EL1.get(r.tcr_el1, "TG1") == 2 and TCR_EL1.get(r.tcr_el1, "T0SZ") == 16
    assert VTCR_EL2.get(r.vtcr_el2, "SL0") == 1 and TCR_EL2.get(r.tcr_el2, "RES1_31") == 1


@pytest.mark.parametrize(("name", "value"), [
    ("sctlr_el1", Registers().sctlr_el1 | SCTLR_EL1.mask("EE")),      # big-endian walks and data
    ("sctlr_el1", Registers().sctlr_el1 | 1 << 24),                   # E0E
    ("sctlr_el2", Registers().sctlr_el2 | SCTLR_EL2.mask("EE")),
    ("hcr_el2", 0),                                                   # RW=0: EL1 would be AArch32
    ("hcr_el2", HCR_EL2.mask("RW", "TGE")),                           # EL0 exceptions to EL2
    ("hcr_el2", HCR_EL2.mask("RW", "TGE")),                           # TGE without E2H
    ("hcr_el2", HCR_EL2.mask("RW") | 1 << 3),                         # FMO: routing
    ("tcr_el1", 1 << 64),
    ("pan", 1),
])
def test_registers_the_stub_cannot_run_are_refused(name: str, value: int) -> None:
    with pytest.raises(ValueError, match=name.upper() if name != "pan" else "pan"):
        kwargs: dict[str, object] = {name: value}
        Registers(**kwargs)  # type: ignore[arg-type]


def test_cases_are_checked() -> None:
    require_qemu_aarch64()
    img = bytes(4096)
    for case, match in [
            (ProbeCase(0x1000, "execute", method="at"), "no AT instruction"),
            (ProbeCase(0x1004, "read"), "8-byte aligned"),
            (ProbeCase(0x1000, "read", el=3), "el must be"),
            (ProbeCase(0x1000, "load"), "access must be"),
            (ProbeCase(0x1000, "read", el=0, regs=Registers(pan=True)), "PAN"),
            (ProbeCase(0x1000, "read", method="access",
                       regs=Registers(sctlr_el1=Registers().sctlr_el1 & ~1)), "SCTLR_EL1.M=1"),
            (ProbeCase(0x1000, "read", method="access", regs=Registers(ttbr0_el1=0x1000, ttbr1_el1=0x1000)),
             "inside the image")]:
        with pytest.raises(ValueError, match=match):
            q.run_probes(img, [case])


def test_at_ops_follow_the_case() -> None:
    two = Registers(hcr_el2=HCR_EL2.mask("RW", "VM"))
    assert q.at_op(ProbeCase(0, "read")) == "s1e1r"
    assert q.at_op(ProbeCase(0, "write", el=0)) == "s1e0w"
    assert q.at_op(ProbeCase(0, "write", regs=Registers(pan=True))) == "s1e1wp"
    assert q.at_op(ProbeCase(0, "read", regs=two)) == "s12e1r"
    assert q.at_op(ProbeCase(0, "write", el=0, regs=two)) == "s12e0w"
    assert q.at_op(ProbeCase(0, "read", el=2)) == "s1e2r"


def test_stub_assembles_as_expected() -> None:
    require_toolchain_aarch64()
    sym = q.stub_program().symbols
    assert sym["probe_page"] % 0x10000 == 0 and sym["state"] % 0x10000 == 0 and sym["vectors_el2"] % 0x800 == 0


def test_missing_qemu_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(q.QemuUnavailable, match="qemu-system-arm"):
        q.run_probes(bytes(4096), [], qemu=str(tmp_path / "no-such-qemu"))
    fake = tmp_path / "qemu-system-aarch64"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    require_toolchain_aarch64()
    with pytest.raises(q.QemuFailed):
        q.run_probes(bytes(4096), [], qemu=str(fake))


def test_harness_maps_itself_as_normal_memory() -> None:
    """The harness's own pages use the first MAIR Attr that is Normal memory."""
    assert q._normal_attr(0x0000_0004_0044_FFFF) == 0
    assert q._normal_attr(0x0000_0000_0044_0004) == 2        # Attr0 Device-nGnRE, Attr1 Device-nGnRnE
    assert q._normal_attr(0x0) == 0


def test_result_helpers() -> None:
    r = ProbeResult(par=0x4100_5000 | 0xFF << 56)
    assert r.ok and r.pa == 0x4100_5000
    f = ProbeResult(par=0b0000111 << 1 | 1)
    assert not f.ok and f.fsc == 0b000111
    a = ProbeResult(par=None, el=2, esr=0x24 << 26 | 0b000101, hpfar=0x4_1234 << 4)
    assert a.ec == 0x24 and a.fsc == 0b000101 and a.fault_ipa == 0x4123_4000


# -- QEMU ---------------------------------------------------------------------------------------------------

VA = 0x0000_0012_3456_7000            # a 4K/48-bit user VA: L0 0, L1 0x48, L2 0x1A2, L3 0x167
PA = RAM_BASE + 0x4_5000


def test_cpu_max_features() -> None:
    """The ID registers of -cpu max (QEMU 7.2): ID_AA64MMFR0_EL1 52-bit PAs (PARange 0b0110, FEAT_LPA), all
    three granules at stage 1 with 52-bit support for 4K and 16K (TGran4 0b0001, TGran16 0b0010: FEAT_LPA2)
    and at stage 2 (TGran4_2 and TGran16_2 0b0011, TGran64_2 0b0010); ID_AA64MMFR1_EL1 hardware AF and dirty
    state (HAFDBS 0b0010), FEAT_PAN2 (PAN 0b0010; QEMU 7.2 has no FEAT_PAN3), FEAT_XNX; ID_AA64MMFR2_EL1
    VARange 0b0001 (FEAT_LVA)."""
    require_qemu_aarch64()
    f = q.cpu_features()
    assert f.current_el == 2
    assert f.pa_bits == 52
    assert (f.field("TGran4"), f.field("TGran16"), f.field("TGran64")) == (1, 2, 0)
    assert (f.field("TGran4_2"), f.field("TGran16_2"), f.field("TGran64_2")) == (3, 3, 2)   # stage 2, LPA2
    assert f.field("HAFDBS") == 2 and f.field("PAN") >= 2 and f.field("XNX") == 1
    assert f.field("VARange") == 1                                  # FEAT_LVA: 52-bit VAs with 64K


# One QEMU boot runs every case below (tests read their results by name): a 4K/48-bit EL1&0 stage 1 in
# TTBR0_EL1 (TTBR1_EL1's root empty: the harness's slot goes there), a 64K and a 16K one, an EL2 regime
# (TTBR0_EL2, SCTLR_EL2.M=1) and a two-stage EL1&0 translation (4K stage 2, 40-bit IPA, start level 1).
DFSC_TRANSLATION, DFSC_ACCESS_FLAG, DFSC_PERMISSION = 0b000100, 0b001000, 0b001100   # | level (D24.2.47.5)
EC_IABT_LOWER, EC_IABT_SAME, EC_DABT_LOWER, EC_DABT_SAME = 0x20, 0x21, 0x24, 0x25
VA64 = 0x0000_1234_5678_0000
VA16 = 0x0000_1234_5678_4000
IPA = 0x6000_0000                      # stage 2 maps it to PA2
PA2 = RAM_BASE + 0x20_0000
IPA_HOLE = 0x5000_0000                 # no stage 2 mapping: a level 2 translation fault


@pytest.fixture(scope="module")
def scene() -> tuple[dict[str, ProbeCase], dict[str, ProbeResult], q.ProbeRun]:
    require_qemu_aarch64()
    mem = image()
    t = Tables(mem, Stage.STAGE1, Granule.K4, 0, bits=48)
    t.map(VA, PA, AP=0b01)                                   # EL1 and EL0 read/write
    t.map(VA + 0x1000, PA + 0x1000, AP=0b10)                 # EL1 read-only, no EL0 access
    t.map(VA + 0x2000, PA + 0x2000, AP=0b00, AF=0)           # access flag clear
    t.map(VA + 0x3000, PA + 0x3000, AP=0b11, UXN=1)          # read-only at both, EL0 execute-never
    t.map(VA + 0x4000, PA + 0x4000, AP=0b11)                 # read-only at both, executable
    t.map(VA + 0x5000, PA + 0x5000, AP=0b00, AF=0)           # for hardware AF update (TCR_EL1.HA)
    t.map(VA + 0x6000, PA + 0x6000, AP=0b10, DBM=1)          # read-only, dirty bit modifier (TCR_EL1.HD)
    empty = t.alloc()
    el1 = Registers(tcr_el1=tcr(), ttbr0_el1=t.root, ttbr1_el1=empty)

    t64 = Tables(mem, Stage.STAGE1, Granule.K64, 1, bits=48, at=t.next)
    t64.map(VA64, RAM_BASE + 0x10_0000, AP=0b01)
    r64 = Registers(tcr_el1=tcr(Granule.K64), ttbr0_el1=t64.root, ttbr1_el1=t64.root)
    t16 = Tables(mem, Stage.STAGE1, Granule.K16, 0, bits=48, at=t64.next)
    t16.map(VA16, RAM_BASE + 0x20_4000, AP=0b01)
    r16 = Registers(tcr_el1=tcr(Granule.K16), ttbr0_el1=t16.root, ttbr1_el1=t16.root)

    te = Tables(mem, Stage.STAGE1, Granule.K4, 0, bits=48, at=t16.next)
    te.map(VA, PA, AP=0b01)                                  # EL2: AP[1] is RES1, read/write
    te.map(VA + 0x1000, PA + 0x1000, AP=0b11)                # read-only
    el2 = Registers(ttbr0_el2=te.root, sctlr_el2=Registers().sctlr_el2 | SCTLR_EL2.mask("M"))

    s2 = Tables(mem, Stage.STAGE2, Granule.K4, 1, bits=40, at=te.next)
    for off in range(0, IMAGE_SIZE, 2 * MiB):
        s2.map(RAM_BASE + off, RAM_BASE + off, level=2)      # the image's IPAs = PAs, 2 MiB blocks
    s2.map(IPA, PA2)
    s2.map(IPA + 0x1000, PA2 + 0x1000, S2AP=0b01)           # stage 2 read-only
    ts = Tables(mem, Stage.STAGE1, Granule.K4, 0, bits=48, at=s2.next)
    ts.map(VA, IPA, AP=0b01)
    ts.map(VA + 0x1000, IPA + 0x1000, AP=0b01)
    ts.map(VA + 0x2000, IPA_HOLE, AP=0b01)
    two = Registers(tcr_el1=tcr(), ttbr0_el1=ts.root, ttbr1_el1=ts.root, hcr_el2=HCR_EL2.mask("RW", "VM"),
                    vttbr_el2=s2.root)

    hw = dataclasses.replace(el1, tcr_el1=tcr(HA=1, HD=1))

    def at(va: int, access: str = "read", regs: Registers = el1, el: int = 1) -> ProbeCase:
        return ProbeCase(va, access, el=el, method="at", regs=regs)

    def acc(va: int, access: str = "read", regs: Registers = el1, el: int = 1) -> ProbeCase:
        return ProbeCase(va, access, el=el, method="access", regs=regs)

    cases = {
        "at_ok": at(VA + 0x18), "at_el0": at(VA + 0x18, el=0),
        "at_l0": at(1 << 39), "at_l1": at(1 << 30), "at_l2": at(VA ^ 1 << 21), "at_l3": at(VA + 0x7000),
        "at_af": at(VA + 0x2000), "at_ro_write": at(VA + 0x1000, "write"), "at_el0_none": at(VA + 0x1000, el=0),
        "at_pan": at(VA, regs=dataclasses.replace(el1, pan=True)),
        "load": acc(VA + 0x28), "load_el0": acc(VA + 0x30, el=0), "store": acc(VA + 0x38, "write"),
        "load_after_store": acc(VA + 0x38),
        "af": acc(VA + 0x2000), "ro_write": acc(VA + 0x1008, "write"), "el0_none": acc(VA + 0x1000, el=0),
        "pan": acc(VA + 0x40, regs=dataclasses.replace(el1, pan=True)), "l3": acc(VA + 0x7000),
        "uxn_el0": acc(VA + 0x3000, "execute", el=0), "fetch_el0": acc(VA + 0x4008, "execute", el=0),
        "fetch_el1": acc(VA + 0x4010, "execute"), "pxn_el0_writable": acc(VA + 0x18, "execute"),
        "at64": at(VA64 + 0x18, regs=r64), "load64": acc(VA64 + 0x18, el=0, regs=r64),
        "at16": at(VA16 + 0x20, regs=r16), "load16": acc(VA16 + 0x20, regs=r16),
        "at_s1e2r": at(VA + 0x48, regs=el2, el=2), "at_s1e2w_ro": at(VA + 0x1000, "write", regs=el2, el=2),
        "at_s1e2_off": at(VA + 0x48, regs=Registers(ttbr0_el2=te.root), el=2),
        "load_el2": acc(VA + 0x50, regs=el2, el=2), "ro_write_el2": acc(VA + 0x1010, "write", regs=el2, el=2),
        "at_s12": at(VA + 0x58, regs=two), "at_s12_el0": at(VA + 0x58, regs=two, el=0),
        "at_s12_hole": at(VA + 0x2000, regs=two), "at_s12_ro": at(VA + 0x1000, "write", regs=two),
        "load_s12": acc(VA + 0x60, regs=two), "s2_hole": acc(VA + 0x2068, regs=two),
        "s2_ro_el0": acc(VA + 0x1070, "write", regs=two, el=0),
        "no_ha": acc(VA + 0x5000), "no_hd": acc(VA + 0x6000, "write"),
        "ha": acc(VA + 0x5008, regs=hw), "hd": acc(VA + 0x6008, "write", regs=hw),
    }
    run = q.run_probes(mem.read(RAM_BASE, IMAGE_SIZE), list(cases.values()), timeout=30)
    return cases, dict(zip(cases, run.results, strict=True)), run


Scene = tuple[dict[str, ProbeCase], dict[str, ProbeResult], q.ProbeRun]


def test_at_s1e1r_gives_the_pa(scene: Scene) -> None:
    """PAR_EL1 with F=0 (D24.2.118): PA[47:12], ATTR (bits 63:56) MAIR Attr0 = 0xFF, SH (bits 8:7) Inner."""
    _, r, _ = scene
    for name in ("at_ok", "at_el0"):
        assert r[name].ok and r[name].pa == page_of(PA), name
        assert r[name].par >> 56 == 0xFF and (r[name].par >> 7) & 3 == 3      # type: ignore[operator]


@pytest.mark.parametrize(("name", "level"), [("at_l0", 0), ("at_l1", 1), ("at_l2", 2), ("at_l3", 3)])
def test_at_translation_fault_names_the_level(scene: Scene, name: str, level: int) -> None:
    """PAR_EL1.F=1 and FST = 0b0001LL, a Translation fault at level LL."""
    _, r, _ = scene
    assert not r[name].ok and r[name].fsc == DFSC_TRANSLATION | level


def test_at_access_flag_and_permission_faults(scene: Scene) -> None:
    _, r, _ = scene
    assert r["at_af"].fsc == DFSC_ACCESS_FLAG | 3
    assert r["at_ro_write"].fsc == DFSC_PERMISSION | 3          # AT S1E1W of an EL1 read-only page
    assert r["at_el0_none"].fsc == DFSC_PERMISSION | 3          # AT S1E0R, AP = 0b10: no EL0 access
    assert r["at_pan"].fsc == DFSC_PERMISSION | 3               # AT S1E1RP of an EL0-accessible page


def test_real_loads_return_the_tag(scene: Scene) -> None:
    _, r, _ = scene
    assert r["load"].ok and r["load"].value == tag(PA + 0x28)
    assert r["load_el0"].ok and r["load_el0"].value == tag(PA + 0x30)
    assert r["store"].ok and r["store"].value == tag(PA + 0x38)    # the write probe's load
    assert r["load_after_store"].value == tag(PA + 0x38)            # it stored back what it read


def test_data_aborts_at_el1(scene: Scene) -> None:
    """ESR_EL1 of a Data Abort from the same EL (EC 0x25), WnR (bit 6) for the write, DFSC; FAR_EL1 = VA."""
    c, r, _ = scene
    for name, dfsc, wnr in (("af", DFSC_ACCESS_FLAG | 3, 0), ("ro_write", DFSC_PERMISSION | 3, 1),
                            ("pan", DFSC_PERMISSION | 3, 0), ("l3", DFSC_TRANSLATION | 3, 0)):
        res = r[name]
        assert (res.el, res.ec, res.fsc, (res.esr >> 6) & 1, res.far) == (1, EC_DABT_SAME, dfsc, wnr, c[name].va), name
    el0 = r["el0_none"]                             # from EL0: EC 0x24, a lower EL
    assert (el0.el, el0.ec, el0.fsc, el0.far) == (1, EC_DABT_LOWER, DFSC_PERMISSION | 3, VA + 0x1000)


def test_fetches(scene: Scene) -> None:
    """A UXN page fetched at EL0: an Instruction Abort from a lower EL (EC 0x20), IFSC permission fault
    level 3, FAR_EL1 = ELR_EL1 = VA.  An EL0-writable page fetched at EL1 faults as well (implicit PXN:
    D8.4.x, "EL1 cannot execute pages EL0 can write").  A read-only executable page runs the tag's BRK."""
    c, r, _ = scene
    u = r["uxn_el0"]
    assert (u.el, u.ec, u.fsc, u.far, u.elr) == (1, EC_IABT_LOWER, DFSC_PERMISSION | 3, VA + 0x3000, VA + 0x3000)
    p = r["pxn_el0_writable"]
    assert (p.el, p.ec, p.fsc) == (1, EC_IABT_SAME, DFSC_PERMISSION | 3)
    for name in ("fetch_el0", "fetch_el1"):
        assert r[name].ok and r[name].value == c[name].va


def test_64k_and_16k_granules(scene: Scene) -> None:
    _, r, _ = scene
    assert r["at64"].pa == RAM_BASE + 0x10_0000 and r["load64"].value == tag(RAM_BASE + 0x10_0018)
    assert r["at16"].pa == RAM_BASE + 0x20_4000 and r["load16"].value == tag(RAM_BASE + 0x20_4020)


def test_el2_regime(scene: Scene) -> None:
    """AT S1E2R with SCTLR_EL2.M=1 translates through TTBR0_EL2; with M=0 it is flat (PA = VA); an EL2 store
    to a read-only page is a Data Abort taken to EL2 (EC 0x25)."""
    _, r, run = scene
    assert r["at_s1e2r"].ok and r["at_s1e2r"].pa == page_of(PA)
    assert r["at_s1e2w_ro"].fsc == DFSC_PERMISSION | 3
    assert r["at_s1e2_off"].pa == page_of(VA)
    assert r["load_el2"].ok and r["load_el2"].value == tag(PA + 0x50)
    w = r["ro_write_el2"]
    assert (w.el, w.ec, w.fsc, (w.esr >> 6) & 1, w.far) == (2, EC_DABT_SAME, DFSC_PERMISSION | 3, 1, VA + 0x1010)
    # TTBR1_EL1's 4K root (shared by the PAN cases), the 64K and 16K roots, TTBR0_EL2, the two-stage case's
    # stage 1 root and its stage 2 root
    assert len(run.slots) == 6


def test_two_stage(scene: Scene) -> None:
    """AT S12E1R/S12E0R give the PA of both stages; a stage 2 fault is PAR.S=1 (bit 9) for AT, and for a
    real access a Data Abort taken to EL2 (EC 0x24) with HPFAR_EL2.FIPA = the IPA's page and FAR_EL2 = VA."""
    c, r, _ = scene
    assert r["at_s12"].pa == PA2 and r["at_s12_el0"].pa == PA2
    hole = r["at_s12_hole"]
    assert hole.fsc == DFSC_TRANSLATION | 2 and hole.par is not None and hole.par >> 9 & 1
    assert r["at_s12_ro"].fsc == DFSC_PERMISSION | 3
    assert r["load_s12"].value == tag(PA2 + 0x60)
    h = r["s2_hole"]
    assert (h.el, h.ec, h.fsc, h.far, h.fault_ipa) == (2, EC_DABT_LOWER, DFSC_TRANSLATION | 2, c["s2_hole"].va,
                                                        IPA_HOLE)
    w = r["s2_ro_el0"]
    assert (w.el, w.ec, w.fsc, (w.esr >> 6) & 1, w.fault_ipa) == (2, EC_DABT_LOWER, DFSC_PERMISSION | 3, 1,
                                                                  IPA + 0x1000)


def test_hardware_access_flag_and_dirty_state(scene: Scene) -> None:
    """FEAT_HAFDBS (D8.4.x): with TCR_EL1.HA=1 an access to an AF=0 page sets AF instead of faulting; with
    HD=1 a write to a read-only page with DBM=1 makes it writable instead of faulting.  Without them, an
    Access flag fault and a Permission fault."""
    _, r, _ = scene
    assert (r["no_ha"].el, r["no_ha"].fsc) == (1, DFSC_ACCESS_FLAG | 3)
    assert (r["no_hd"].el, r["no_hd"].fsc) == (1, DFSC_PERMISSION | 3)
    assert r["ha"].ok and r["ha"].value == tag(PA + 0x5008)
    assert r["hd"].ok and r["hd"].value == tag(PA + 0x6008)


def test_image_changes_only_in_the_harness_slots(scene: Scene) -> None:
    _, _, run = scene
    mem = PhysMem([(RAM_BASE, IMAGE_SIZE)])
    mem.write(RAM_BASE, run.image)
    for root, slot, entry in run.slots:
        assert mem.read_u64(root + 8 * slot) == entry and entry & 3 == 3
    assert any(slot == 511 for _, slot, _ in run.slots)          # the last slot of TTBR1_EL1's 4K root


def test_a_thousand_cases_are_fast() -> None:
    require_qemu_aarch64()
    mem = image()
    t = Tables(mem, Stage.STAGE1, Granule.K4, 0, bits=48)
    for k in range(16):
        t.map(VA + k * 0x1000, PA + k * 0x1000, AP=0b01)
    regs = Registers(tcr_el1=tcr(), ttbr0_el1=t.root, ttbr1_el1=t.root)
    cases = [ProbeCase(VA + (k % 32) * 0x800 + 8 * (k % 7), ("read", "write", "execute")[k % 3] if k % 2 else "read",
                       el=k % 2, method="access" if k % 2 else "at", regs=regs) for k in range(1000)]
    start = time.monotonic()
    run = q.run_probes(mem.read(RAM_BASE, IMAGE_SIZE), cases, timeout=60)
    elapsed = time.monotonic() - start
    assert elapsed < 5, f"1000 cases took {elapsed:.1f} s"
    for case, res in zip(cases, run.results, strict=True):
        pa = PA + case.va - VA
        if case.method == "at":
            assert res.pa == page_of(pa)
        elif case.access == "execute":                  # EL1 cannot execute what EL0 may write
            assert (res.el, res.ec, res.fsc) == (1, EC_IABT_SAME, DFSC_PERMISSION | 3)
        else:
            assert res.ok and res.value == tag(pa)


def test_a_hung_run_times_out() -> None:
    require_qemu_aarch64()
    with pytest.raises(q.QemuFailed, match="timed out"):
        q.run_probes(bytes(4096), [ProbeCase(0, "read")] * 10, timeout=0.01)


def test_other_layouts_keep_the_stub_mapped() -> None:
    """The harness's slot where the cases leave room: a TTBR1_EL1 VA in the last slot (the harness takes
    510), a two-stage case whose stage 1 root sits at an IPA that is not its PA (the harness finds the PA
    through the image's stage 2), a 52-bit VA with TCR_EL1.DS=1 (FEAT_LPA2: 4K granule, a level -1 root of
    16 entries, descriptors without SH), and the EL2 regime with the 64K granule and SCTLR_EL2.WXN=1 (the
    stub's code is mapped read-only, so it stays executable; a writable page is not: a Permission fault)."""
    require_qemu_aarch64()
    mem = image()
    t = Tables(mem, Stage.STAGE1, Granule.K4, 0, bits=48)
    uva = 0xFFFF_FF80_0000_0000 | (VA & 0x7F_FFFF_FFFF)
    t.map(uva, PA, AP=0b00)
    r1 = Registers(tcr_el1=tcr(), ttbr0_el1=t.alloc(), ttbr1_el1=t.root)
    s2 = Tables(mem, Stage.STAGE2, Granule.K4, 1, bits=40, at=t.next)
    for off in range(0, IMAGE_SIZE, 2 * MiB):
        s2.map(RAM_BASE + off, RAM_BASE + off, level=2)
    s2.map(0x7000_0000, RAM_BASE + 2 * MiB, level=2)          # a second IPA of the image's upper half
    ts = Tables(mem, Stage.STAGE1, Granule.K4, 0, bits=48, at=s2.next)
    ts.map(VA, PA, AP=0b01)
    root_ipa = 0x7000_0000 + ts.root - (RAM_BASE + 2 * MiB)
    two = Registers(tcr_el1=tcr(), ttbr0_el1=root_ipa, ttbr1_el1=root_ipa, hcr_el2=HCR_EL2.mask("RW", "VM"),
                    vttbr_el2=s2.root)
    tl = Tables(mem, Stage.STAGE1, Granule.K4, -1, bits=52, at=ts.next, form=OAForm.LPA2)
    lva = 0x000F_1234_5678_9000
    tl.map(lva, PA + 0x5000, AP=0b01)
    rl = Registers(tcr_el1=tcr(bits=52, DS=1, IPS=6), ttbr0_el1=tl.root, ttbr1_el1=tl.root)
    te = Tables(mem, Stage.STAGE1, Granule.K64, 1, bits=48, at=tl.next)
    te.map(VA64, RAM_BASE + 0x10_0000, AP=0b01)
    e64 = Registers(ttbr0_el2=te.root, tcr_el2=TCR_EL2.build(T0SZ=16, TG0=1, PS=5, SH0=3, IRGN0=1, ORGN0=1,
                                                             RES1_23=1, RES1_31=1),
                    sctlr_el2=Registers().sctlr_el2 | SCTLR_EL2.mask("M", "WXN"))
    cases = [ProbeCase(uva + 8, "read", regs=r1), ProbeCase(uva + 8, "read", method="access", regs=r1),
             ProbeCase(VA + 8, "read", regs=two), ProbeCase(VA + 8, "read", method="access", el=0, regs=two),
             ProbeCase(lva + 8, "read", regs=rl), ProbeCase(lva + 8, "read", method="access", regs=rl),
             ProbeCase(VA64 + 8, "read", el=2, regs=e64), ProbeCase(VA64 + 8, "write", el=2, method="access", regs=e64),
             ProbeCase(VA64 + 8, "execute", el=2, method="access", regs=e64)]
    run = q.run_probes(mem.read(RAM_BASE, IMAGE_SIZE), cases, timeout=30)
    r = run.results
    assert r[0].pa == page_of(PA) and r[1].value == tag(PA + 8)
    assert r[2].pa == page_of(PA) and r[3].value == tag(PA + 8)
    assert r[4].pa == page_of(PA + 0x5000) and r[5].value == tag(PA + 0x5008)
    assert r[6].pa == RAM_BASE + 0x10_0000 and r[7].ok and r[7].value == tag(RAM_BASE + 0x10_0008)
    assert (r[8].el, r[8].ec, r[8].fsc, r[8].elr) == (2, EC_IABT_SAME, DFSC_PERMISSION | 3, VA64 + 8)
    slots = {(root, slot) for root, slot, _ in run.slots}
    assert (t.root, 510) in slots and (tl.root, 14) in slots and (te.root, 63) in slots
    assert any(root == ts.root and slot == 511 for root, slot in slots)     # found through stage 2


def test_a_qemu_crash_is_qemu_failed() -> None:
    """QEMU 7.2 aborts on an Access flag fault at a level -1 block (notes item 15: 4K, DS=1, 52-bit VAs;
    the block itself is accepted, item 14): the run ends in QemuFailed with QEMU's assertion message."""
    require_qemu_aarch64()
    mem = image()
    tl = Tables(mem, Stage.STAGE1, Granule.K4, -1, bits=52, form=OAForm.LPA2)
    mem.write_u64(tl.root, 0x1)                       # valid, bit 1 = 0: a block at level -1, AF=0
    regs = Registers(tcr_el1=tcr(bits=52, DS=1, IPS=6), ttbr0_el1=tl.root, ttbr1_el1=tl.root)
    with pytest.raises(q.QemuFailed, match="arm_fi_to_lfsc"):
        q.run_probes(mem.read(RAM_BASE, IMAGE_SIZE), [ProbeCase(0x1000, "read", regs=regs)], timeout=30)


def test_two_stage_access_needs_a_valid_vtcr() -> None:
    require_qemu_aarch64()
    mem = image()
    t = Tables(mem, Stage.STAGE1, Granule.K4, 0, bits=48)
    regs = Registers(tcr_el1=tcr(), ttbr0_el1=t.root, ttbr1_el1=t.root, hcr_el2=HCR_EL2.mask("RW", "VM"),
                     vtcr_el2=VTCR_EL2.build(T0SZ=24, TG0=3))               # TG0 0b11 is reserved
    with pytest.raises(ValueError, match="valid VTCR_EL2"):
        q.run_probes(mem.read(RAM_BASE, IMAGE_SIZE), [ProbeCase(VA, "read", method="access", regs=regs)])


def test_el2_host_regime_with_e2h() -> None:
    """HCR_EL2.E2H=1 (FEAT_VHE): the EL2&0 regime, TCR_EL2 in TCR_EL1's layout, SCTLR_EL2 in SCTLR_EL1's; the
    harness's slot goes in TTBR1_EL2's root.  Two privilege levels: PXN forbids EL2 fetches, AP[2] EL2
    writes.  EL1&0 cases run with E2H=1 too (the stub then reads ESR_EL1 as ESR_EL12)."""
    require_qemu_aarch64()
    mem = image()
    t = Tables(mem, Stage.STAGE1, Granule.K4, 0, bits=48)
    t.map(VA, PA, AP=0b00)                               # EL2 read/write, no EL0 access
    t.map(VA + 0x1000, PA + 0x1000, AP=0b01)
    t.map(VA + 0x2000, PA + 0x2000, AP=0b10, PXN=1)      # EL2 read-only, privileged execute-never
    upper = t.alloc()
    vhe = Registers(hcr_el2=HCR_EL2.mask("RW", "E2H"), tcr_el2=tcr(), ttbr0_el2=t.root, ttbr1_el2=upper,
                    sctlr_el2=Registers().sctlr_el1)
    el1 = Registers(tcr_el1=tcr(), ttbr0_el1=t.root, ttbr1_el1=t.root, hcr_el2=HCR_EL2.mask("RW", "E2H"))
    cases = [ProbeCase(VA + 8, "read", el=2, regs=vhe), ProbeCase(VA + 0x2000, "write", el=2, regs=vhe),
             ProbeCase(VA + 0x10, "write", el=2, method="access", regs=vhe),
             ProbeCase(VA + 0x2000, "execute", el=2, method="access", regs=vhe),
             ProbeCase(VA + 0x2008, "write", el=2, method="access", regs=vhe),
             ProbeCase(VA + 0x18, "read", el=0, method="access", regs=el1),
             ProbeCase(VA + 0x1018, "read", el=0, method="access", regs=el1)]
    run = q.run_probes(mem.read(RAM_BASE, IMAGE_SIZE), cases, timeout=30)
    r = run.results
    assert r[0].pa == page_of(PA) and r[1].fsc == DFSC_PERMISSION | 3
    assert r[2].ok and r[2].value == tag(PA + 0x10)
    assert (r[3].el, r[3].ec, r[3].fsc) == (2, EC_IABT_SAME, DFSC_PERMISSION | 3)
    assert (r[4].el, r[4].ec, r[4].fsc, r[4].far) == (2, EC_DABT_SAME, DFSC_PERMISSION | 3, VA + 0x2008)
    assert (r[5].el, r[5].ec, r[5].fsc, r[5].far) == (1, EC_DABT_LOWER, DFSC_PERMISSION | 3, VA + 0x18)
    assert r[6].ok and r[6].value == tag(PA + 0x1018)
    assert (upper, 511) in {(root, slot) for root, slot, _ in run.slots}


def test_el0_in_the_el2_host_regime_with_tge() -> None:
    """HCR_EL2.{E2H, TGE} = {1, 1}: EL0 runs in the EL2&0 regime and its exceptions go to EL2 (EC 0x24 and
    0x20, from a lower EL, in ESR_EL2); AT S1E0R/W translate in that regime too (run from the stub's alias:
    with SCTLR_EL2.M=0 they would be flat)."""
    require_qemu_aarch64()
    mem = image()
    t = Tables(mem, Stage.STAGE1, Granule.K4, 0, bits=48)
    t.map(VA, PA, AP=0b00)                               # EL2 only
    t.map(VA + 0x1000, PA + 0x1000, AP=0b01)             # EL0 read/write
    t.map(VA + 0x2000, PA + 0x2000, AP=0b11, UXN=1)
    t.map(VA + 0x3000, PA + 0x3000, AP=0b11)
    host = Registers(hcr_el2=HCR_EL2.mask("RW", "E2H", "TGE"), tcr_el2=tcr(), ttbr0_el2=t.root,
                     ttbr1_el2=t.alloc(), sctlr_el2=Registers().sctlr_el1)
    cases = [ProbeCase(VA + 8, "read", el=0, regs=host), ProbeCase(VA + 0x1008, "write", el=0, regs=host),
             ProbeCase(VA + 0x10, "read", el=0, method="access", regs=host),
             ProbeCase(VA + 0x1010, "write", el=0, method="access", regs=host),
             ProbeCase(VA + 0x2000, "execute", el=0, method="access", regs=host),
             ProbeCase(VA + 0x3008, "execute", el=0, method="access", regs=host),
             ProbeCase(VA + 0x18, "read", el=2, method="access", regs=host)]
    r = q.run_probes(mem.read(RAM_BASE, IMAGE_SIZE), cases, timeout=30).results
    assert r[0].fsc == DFSC_PERMISSION | 3 and r[1].pa == page_of(PA + 0x1000)
    assert (r[2].el, r[2].ec, r[2].fsc, r[2].far) == (2, EC_DABT_LOWER, DFSC_PERMISSION | 3, VA + 0x10)
    assert r[3].ok and r[3].value == tag(PA + 0x1010)
    assert (r[4].el, r[4].ec, r[4].fsc, r[4].elr) == (2, EC_IABT_LOWER, DFSC_PERMISSION | 3, VA + 0x2000)
    assert r[5].ok and r[5].value == VA + 0x3008
    assert r[6].ok and r[6].value == tag(PA + 0x18)
    with pytest.raises(ValueError, match="EL1 is not used"):
        q.run_probes(mem.read(RAM_BASE, IMAGE_SIZE), [ProbeCase(VA, "read", el=1, regs=host)])
