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


def test_gstage_walk() -> None:
    mem, _, pt = make()
    pt.map(0x2000, RAM + 0x30_0000, 0x1000, F.READ | F.WRITE)
    pt.map(0x3000, RAM + 0x31_0000, 0x1000, F.EXECUTE)
    pt.map((1 << 40) | 0x20_0000, RAM + 0x40_0000, 0x20_0000, F.READ)      # a 2 MiB G-stage superpage
    slot = pt.lookup(0x2000).pa
    hgatp = Hgatp.for_table(SV39X4, pt.root_paddr).encode()
    g = Walker(mem, RiscvRules.gstage(hgatp))
    ok = g.translate(0x2010, "write", "supervisor")
    assert ok.pa == RAM + 0x30_0010 and ok.level == 0
    assert g.translate((1 << 40) | 0x21_2345, "read").pa == RAM + 0x41_2345
    for gpa, access, reason, level in [
        (0x3010, "read", Reason.PERMISSION, 0),                 # X-only without MXR
        (0x4000, "read", Reason.INVALID, 0),
        (1 << 41, "read", Reason.NON_CANONICAL, 2),             # GPA too wide: never aliased
        ((1 << 40) | 0x21_0000, "write", Reason.PERMISSION, 1),
    ]:
        t = g.translate(gpa, access, "user")
        assert (t.reason, t.level, t.fault) == (reason, level, faults.GUEST_PAGE_FAULT), gpa
    assert Walker(mem, RiscvRules.gstage(hgatp, RiscvOptions(mxr=True))).translate(0x3010, "read").ok
    # every G-stage access is a U-mode access: a leaf with U=0 faults even for supervisor-level guests
    mem.write_u64(slot, mem.read_u64(slot) & ~U)
    for privilege in ("supervisor", "user"):
        t = g.translate(0x2010, "read", privilege)
        assert (t.reason, t.fault) == (Reason.PERMISSION, faults.GUEST_PAGE_FAULT)
    # ... and SUM does not change that
    assert not Walker(mem, RiscvRules.gstage(hgatp, RiscvOptions(sum=True))).translate(0x2010, "read").ok
    # a G-stage table outside RAM is an access fault, not a guest-page fault
    mem.write_u64(pt.root_paddr + 8 * 5, PTE.build(V=1, PPN=0x100_0000_0000 >> 12))
    t = g.translate(5 << 30, "read")
    assert (t.reason, t.fault, t.level) == (Reason.TABLE_OUTSIDE_MEMORY, faults.ACCESS_FAULT, 1)
