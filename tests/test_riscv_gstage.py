"""RISC-V hypervisor G-stage: Sv39x4/Sv48x4/Sv57x4 formats, hgatp/vsatp, and the G-stage walk alone."""

from __future__ import annotations

import pytest

from pagetable.arch.riscv_sv39 import faults
from pagetable.arch.riscv_sv39.entry import GSTAGE, PTE
from pagetable.arch.riscv_sv39.modes import SV39, SV39X4, SV48X4, SV57X4
from pagetable.arch.riscv_sv39.regs import Hgatp, Satp, Vsatp
from pagetable.arch.riscv_sv39.walk import RiscvOptions, RiscvRules
from pagetable.errors import InvalidAddress
from pagetable.flags import MappingFlags as F
from pagetable.format import Extension, PagingFormat
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.walker import Reason, Walker

RAM = 0x8000_0000
U = PTE.mask("U")


@pytest.mark.parametrize(("fmt", "gpa_bits", "levels"), [(SV39X4, 41, 3), (SV48X4, 50, 4), (SV57X4, 59, 5)])
def test_x4_formats(fmt: PagingFormat, gpa_bits: int, levels: int) -> None:
    assert fmt.va_bits == gpa_bits and fmt.extension is Extension.ZERO and fmt.depth_count == levels
    assert fmt.levels[0].entries == 2048 and fmt.root_size == 16384
    assert all(lv.entries == 512 for lv in fmt.levels[1:])
    assert fmt.is_canonical((1 << gpa_bits) - 1) and not fmt.is_canonical(1 << gpa_bits)
    assert not fmt.is_canonical((1 << 64) - 1)                 # zero-extended: no upper half


def make() -> tuple[PhysMem, FrameAllocator, PageTable]:
    mem = PhysMem([(RAM, 8 << 20)])
    frames = FrameAllocator(mem)
    return mem, frames, PageTable(SV39X4, mem, frames)


def test_sv39x4_root_is_16k_and_gpa_bit_40_does_not_alias() -> None:
    _mem, frames, pt = make()
    assert pt.root_paddr % 16384 == 0 and frames.frames_of(pt.root_paddr) == 4
    pt.map(0x1000, RAM + 0x10_0000, 0x1000, F.READ)
    pt.map((1 << 40) | 0x1000, RAM + 0x20_0000, 0x1000, F.READ)
    assert pt.query(0x1000)[0] == RAM + 0x10_0000
    assert pt.query((1 << 40) | 0x1000)[0] == RAM + 0x20_0000   # root index 1024, not index 0
    with pytest.raises(InvalidAddress):
        pt.map(1 << 41, RAM, 0x1000, F.READ)
    leaves = pt.walk()
    assert leaves.va.tolist() == [0x1000, (1 << 40) | 0x1000]
    pt.unmap(0x1000)
    pt.unmap((1 << 40) | 0x1000)
    pt.destroy()
    assert frames.in_use == 0


def test_gstage_codec_forces_u() -> None:
    raw = GSTAGE.new_page(RAM, F.READ | F.WRITE, False)
    assert raw & U and raw == PTE.build(V=1, R=1, W=1, U=1, A=1, D=1, PPN=RAM >> 12)
    assert GSTAGE.new_page(RAM, F.EXECUTE, True) & U


def test_hgatp_and_vsatp_registers() -> None:
    h = Hgatp.for_table(SV48X4, RAM + 0x4000, vmid=0x3FFF)
    assert h.encode() == (9 << 60) | (0x3FFF << 44) | ((RAM + 0x4000) >> 12)
    assert Hgatp.decode(h.encode()) == h and h.format is SV48X4 and h.vmid == 0x3FFF
    with pytest.raises(InvalidAddress, match="16 KiB"):
        Hgatp.for_table(SV39X4, RAM + 0x1000)
    with pytest.raises(InvalidAddress):
        Hgatp.decode(11 << 60)
    with pytest.raises(ValueError):
        Hgatp.encode(Hgatp(8, 1 << 14, 0))                      # VMID is 14 bits
    with pytest.raises(ValueError):
        Hgatp.for_table(SV39, RAM)                              # not a G-stage mode
    v = Vsatp.for_table(SV39, RAM + 0x1000, asid=5)
    assert v.encode() == Satp.for_table(SV39, RAM + 0x1000, asid=5).encode() and v.format is SV39


def gpf(cause: int, gpa: int) -> dict[str, int]:
    """The syndrome of a guest-page fault of the G-stage alone on an explicit access: the guest VA is the
    GPA (vsatp Bare), htval = GPA >> 2, htinst 0."""
    return {"scause": cause, "stval": gpa, "htval": gpa >> 2, "htinst": 0}


LOAD_GPF, STORE_GPF = 21, 23


def test_gstage_walk() -> None:
    """Leaves (GSTAGE codec: U=1 forced, A=1, D=1 only with WRITE): 0x2000 RW, 0x3000 X-only, a 2 MiB R at
    GPA bit 40. A G-stage leaf checks every access as U-mode, so its perms have the same bits for both
    privileges (perm_bit: supervisor r/w/x in bits 0-2, user in bits 3-5); a fault has perms 0."""
    mem, _, pt = make()
    pt.map(0x2000, RAM + 0x30_0000, 0x1000, F.READ | F.WRITE)
    pt.map(0x3000, RAM + 0x31_0000, 0x1000, F.EXECUTE)
    pt.map((1 << 40) | 0x20_0000, RAM + 0x40_0000, 0x20_0000, F.READ)      # a 2 MiB G-stage superpage
    slot = pt.lookup(0x2000).pa
    hgatp = Hgatp.for_table(SV39X4, pt.root_paddr).encode()
    g = Walker(mem, RiscvRules.gstage(hgatp))
    ok = g.translate(0x2010, "write", "supervisor")
    assert (ok.pa, ok.level, ok.perms, ok.syndrome) == (RAM + 0x30_0010, 0, 0b011_011, {})
    ok = g.translate((1 << 40) | 0x21_2345, "read")
    assert (ok.pa, ok.level, ok.perms, ok.syndrome) == (RAM + 0x41_2345, 1, 0b001_001, {})
    for gpa, access, reason, level, cause in [
        (0x3010, "read", Reason.PERMISSION, 0, LOAD_GPF),       # X-only without MXR
        (0x4000, "read", Reason.INVALID, 0, LOAD_GPF),
        (1 << 41, "read", Reason.NON_CANONICAL, 2, LOAD_GPF),   # GPA too wide: never aliased
        ((1 << 40) | 0x21_0000, "write", Reason.PERMISSION, 1, STORE_GPF),
    ]:
        t = g.translate(gpa, access, "user")
        assert (t.reason, t.level, t.fault, t.pa, t.perms) == (reason, level, faults.GUEST_PAGE_FAULT, None, 0), gpa
        assert t.syndrome == gpf(cause, gpa), gpa
    t = Walker(mem, RiscvRules.gstage(hgatp, RiscvOptions(mxr=True))).translate(0x3010, "read")
    assert (t.pa, t.perms, t.syndrome) == (RAM + 0x31_0010, 0b101_101, {})      # MXR: X pages readable
    # every G-stage access is a U-mode access: a leaf with U=0 faults even for supervisor-level guests
    mem.write_u64(slot, mem.read_u64(slot) & ~U)
    for privilege in ("supervisor", "user"):
        t = g.translate(0x2010, "read", privilege)
        assert (t.reason, t.fault, t.level, t.perms) == (Reason.PERMISSION, faults.GUEST_PAGE_FAULT, 0, 0)
        assert t.syndrome == gpf(LOAD_GPF, 0x2010)
    # ... and SUM does not change that
    t = Walker(mem, RiscvRules.gstage(hgatp, RiscvOptions(sum=True))).translate(0x2010, "read")
    assert (t.reason, t.perms, t.syndrome) == (Reason.PERMISSION, 0, gpf(LOAD_GPF, 0x2010))
    # a G-stage table outside RAM is an access fault, not a guest-page fault: no htval, no htinst
    mem.write_u64(pt.root_paddr + 8 * 5, PTE.build(V=1, PPN=0x100_0000_0000 >> 12))
    t = g.translate(5 << 30, "read")
    assert (t.reason, t.fault, t.level, t.perms) == (Reason.TABLE_OUTSIDE_MEMORY, faults.ACCESS_FAULT, 1, 0)
    assert t.syndrome == {"scause": 5, "stval": 5 << 30, "htval": 0, "htinst": 0}
