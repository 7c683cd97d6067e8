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
    stage1_start_level,
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
                 at: int = TABLES) -> None:
        self.mem, self.stage, self.granule, self.start, self.bits = mem, stage, granule, start, bits
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
                layout = descriptor_layout(self.stage, EntryKind.TABLE, self.granule, lvl)
                self.mem.write_u64(slot, with_output_address(layout, layout.build(VALID=1, TYPE=1), child))
                entry = self.mem.read_u64(slot)
            table = entry & 0x0000_FFFF_FFFF_F000 & ~(self.granule.size - 1)
        return table

    def map(self, va: int, pa: int, level: int = 3, **attrs: int) -> int:
        """Map `va` to `pa` with a block (level < 3) or page; returns the descriptor's PA."""
        kind = EntryKind.PAGE if level == 3 else EntryKind.BLOCK
        layout = descriptor_layout(self.stage, kind, self.granule, level)
        fields = {"VALID": 1, "TYPE": int(level == 3), "AF": 1, "SH": 3}
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
    ("hcr_el2", HCR_EL2.mask("RW", "E2H")),                           # the EL2&0 regime
    ("hcr_el2", HCR_EL2.mask("RW") | 1 << 3),                         # FMO: routing
    ("tcr_el1", 1 << 64),
    ("pan", 1),
])
def test_registers_the_stub_cannot_run_are_refused(name: str, value: int) -> None:
    with pytest.raises(ValueError, match=name.upper() if name != "pan" else "pan"):
        Registers(**{name: value})


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
    """ID_AA64MMFR0_EL1 of -cpu max (QEMU 7.2): 52-bit PAs (FEAT_LPA), all three granules with 52-bit
    support (TGran4 0b0001, TGran16 0b0010: FEAT_LPA2), hardware AF and dirty state (HAFDBS 0b0010),
    FEAT_PAN3 (PAN 0b0011), FEAT_XNX."""
    require_qemu_aarch64()
    f = q.cpu_features()
    assert f.current_el == 2
    assert f.pa_bits == 52
    assert (f.field("TGran4"), f.field("TGran16"), f.field("TGran64")) == (1, 2, 0)
    assert f.field("HAFDBS") == 2 and f.field("PAN") >= 2 and f.field("XNX") == 1
