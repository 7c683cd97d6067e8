"""RISC-V Sv32x4, the RV32 G-stage (privileged spec, hypervisor extension, "Guest Physical Address
Translation"), and two-stage RV32 walks (Sv32 over Sv32x4, "Two-Stage Address Translation"): the RV32 hgatp
and a G-stage leaf bit for bit, a walker case per G-stage rule with its syndrome (guest-page faults 20/21/23,
htval = GPA >> 2, htinst 0x2000/0x2020 for the implicit 32-bit PTE accesses), a hypothesis round trip, and
agreement with qemu-system-riscv32 -cpu rv32,h=true on every case apart from QEMU 7.2's named deviations
(pagetable/vectors/riscv/hypervisor_deviations.py)."""

from __future__ import annotations

import collections

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pagetable.arch.riscv_sv39 import SV32, SV32X4, SV39, SV39X4, Hgatp, Hgatp32, Satp32, Vsatp, Vsatp32, faults
from pagetable.arch.riscv_sv39.entry import A, D, R, U, V, W, X
from pagetable.arch.riscv_sv39.walk import HypervisorOptions, RiscvOptions, RiscvRules, two_stage_rules
from pagetable.errors import InvalidAddress, InvalidArgument
from pagetable.flags import MappingFlags as F
from pagetable.format import Extension
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.vectors.riscv import hypervisor_deviations as h
from pagetable.vectors.riscv import qemu32
from pagetable.vectors.riscv.deviations import (
    QEMU_AD,
    QEMU_IMPLICIT_TABLE_OUTSIDE,
    QEMU_TABLE_OUTSIDE,
    QEMU_VS_PTE_OUTSIDE,
)
from pagetable.vectors.schema import Case, VectorSet
from pagetable.walker import Reason, Walker

from .conftest import require_qemu_riscv32

HOST = qemu32.RAM_BASE               # host RAM: 8 MiB, the image QEMU gets
MiB = 1 << 20
DATA = HOST + 2 * MiB                # data pages of the G-stage-alone cases
GUEST = 0x8000_0000                  # guest RAM: 4 MiB of GPAs, backed by the host's top 4 MiB
BACKING = HOST + 4 * MiB
NO_RAM = 0xC000_0000                 # a host PA with no RAM (and no device) on QEMU's virt machine
LOAD_GPF, STORE_GPF, FETCH_GPF = 21, 23, 20
PTE_READ32, PTE_WRITE32 = 0x2000, 0x2020    # htinst: an implicit 32-bit PTE read / write (RV32)


def _tagged() -> PhysMem:
    """Host RAM whose every word holds the RV32 harness's tag of its PA (tables are written over it)."""
    mem = PhysMem([(HOST, 8 * MiB)])
    pas = np.arange(HOST, HOST + 8 * MiB, 4, dtype=np.uint64)
    mem.regions[0].words32[:] = (((pas >> np.uint64(2)) << np.uint64(7)) | np.uint64(qemu32.TAG_OPCODE)).astype(
        np.uint32)
    return mem


def _gstage(mem: PhysMem) -> PageTable:
    return PageTable(SV32X4, mem, FrameAllocator(mem, HOST, 2 * MiB))


# -- registers and entries -----------------------------------------------------------------------------


def test_sv32x4_format() -> None:
    """VPN[1] widened by 2 bits: 4096 root entries of 4 bytes (16 KiB), GPAs of 34 bits zero-extended."""
    assert (SV32X4.va_bits, SV32X4.pa_bits, SV32X4.entry_size, SV32X4.extension) == (34, 34, 4, Extension.ZERO)
    assert [(lv.index_lsb, lv.entries) for lv in SV32X4.levels] == [(22, 4096), (12, 1024)]
    assert SV32X4.root_size == 16384 and SV32X4.table_size(1) == 4096
    assert [int(s) for s in SV32X4.page_sizes()] == [4096, 4 * MiB]
    assert SV32X4.is_canonical((1 << 34) - 1) and not SV32X4.is_canonical(1 << 34)


def test_hgatp32_bits() -> None:
    """RV32 hgatp: MODE bit 31 (1: Sv32x4), bits 30:29 zero, VMID 28:22, PPN 21:0; the root 16 KiB aligned,
    PPN[1:0] read as zero. vsatp on RV32 is satp's layout."""
    hg = Hgatp32.for_table(SV32X4, 0x2_8040_4000, vmid=0x55)
    assert hg.encode() == 1 << 31 | 0x55 << 22 | 0x28_0404 == 0x9568_0404 and hg.xlen == 32
    assert Hgatp32.decode(hg.encode()) == hg and hg.format is SV32X4 and hg.root == 0x2_8040_4000
    assert Hgatp32.decode(0x8000_0003 | 0x3F << 22).root == 0 and Hgatp32.decode(0x8000_0003).vmid == 0
    assert Hgatp32.decode(0x7FFF_FFFF).format is None                            # MODE 0: Bare
    with pytest.raises(InvalidAddress, match="16 KiB"):
        Hgatp32.for_table(SV32X4, HOST + 0x1000)
    with pytest.raises(InvalidArgument, match="7 bits wide"):
        Hgatp32.for_table(SV32X4, HOST, vmid=0x80).encode()
    with pytest.raises(InvalidArgument, match="does not fit in 32 bits"):
        Hgatp32.decode(1 << 32)
    with pytest.raises(InvalidArgument, match="not a hgatp \\(RV32\\) mode"):
        Hgatp32.for_table(SV39X4, HOST)
    vs = Vsatp32.for_table(SV32, HOST + 0x1000, asid=0x1FF)
    assert vs.encode() == Satp32.for_table(SV32, HOST + 0x1000, asid=0x1FF).encode() == 0xFFC8_0001
    assert isinstance(vs, Vsatp) and Vsatp32.decode(vs.encode()) == vs and vs.format is SV32


def test_gstage_leaf_bytes() -> None:
    """An Sv32x4 leaf is a 4-byte Sv32 PTE with U=1 (every G-stage access is a U-mode access): GPA bits
    33:22 index the root (GPA 0x3_0040_0000: entry 0xC01), the neighbouring words untouched."""
    mem = _tagged()
    g = _gstage(mem)
    assert g.root_paddr % 16384 == 0 and g.frames.frames_of(g.root_paddr) == 4
    g.map(0x3_0040_0000, 0x3_FFC0_0000, 4 * MiB, F.READ | F.WRITE)             # a megapage, PA bits 33:32 set
    g.map(0x1000, DATA, 4096, F.EXECUTE)
    e = mem.entries(4)
    assert e.read(g.root_paddr + 4 * 0xC01) == 0xFFF0_00D7 == 0x3_FFC0_0 << 10 | V | R | W | U | A | D
    assert e.read(g.root_paddr + 4 * 0xC00) == e.read(g.root_paddr + 4 * 0xC02) == 0
    table = (e.read(g.root_paddr) >> 10) << 12
    assert e.read(table + 4) == (DATA >> 12) << 10 | V | X | U | A == 0x2008_0059
    with pytest.raises(InvalidAddress):
        g.map(1 << 34, DATA, 4096, F.READ)


# -- the G-stage alone ---------------------------------------------------------------------------------

GCase = tuple[str, int, str, str, Reason, int | None]


def _gstage_scene() -> tuple[PhysMem, PageTable, list[GCase]]:
    """A G-stage with one page or entry per rule, and for each the walker's (reason, PA) of an access with
    vsatp Bare (the guest VA is the GPA)."""
    mem = _tagged()
    g = _gstage(mem)
    page = {n: DATA + n * 0x1000 for n in range(16)}
    g.map(0x1000, page[1], 4096, F.READ | F.WRITE)
    g.map(0x2000, page[2], 4096, F.EXECUTE)
    g.map(0x3000, page[3], 4096, F.READ)
    g.map(0x80_0000, BACKING, 4 * MiB, F.READ | F.WRITE | F.EXECUTE)          # a G-stage megapage
    e = mem.entries(4)
    table = (e.read(g.root_paddr) >> 10) << 12                                 # the level-0 table of [0, 4 MiB)
    e.write(table + 4 * 4, (page[4] >> 12) << 10 | V | R | W | A | D)          # U=0
    e.write(table + 4 * 5, (page[5] >> 12) << 10 | V | W | U | A | D)          # W without R
    e.write(table + 4 * 6, (page[6] >> 12) << 10 | V | R | W | U)              # A=D=0 (Svade)
    e.write(table + 4 * 8, (NO_RAM >> 12) << 10 | V | R | W | U | A | D)       # a PA with no RAM
    e.write(table + 4 * 9, (page[9] >> 12) << 10 | V)                          # a pointer at level 0
    e.write(table + 4 * 10, (page[10] | 3 << 32) >> 12 << 10 | V | R | U | A)  # PA bits 33:32 set: no RAM
    root = g.root_paddr
    e.write(root + 4 * 1, (DATA >> 12) << 10 | V | R | W | U | A | D)          # megapage, PPN[0] = 0x200
    e.write(root + 4 * 3, (page[12] >> 12) << 10 | V | A)                      # pointer with A: reserved
    e.write(root + 4 * 4, (NO_RAM >> 12) << 10 | V)                            # a table with no RAM
    e.write(root + 4 * 5, (page[11] >> 12) << 10 | V | W)                      # pointer with W, R=0
    ok, perm = Reason.OK, Reason.PERMISSION
    cases: list[GCase] = [
        ("rw-read", 0x1010, "read", "supervisor", ok, page[1] + 0x10),
        ("rw-write", 0x1FFC, "write", "user", ok, page[1] + 0xFFC),
        ("rw-fetch", 0x1010, "execute", "supervisor", perm, None),
        ("x-fetch", 0x2040, "execute", "user", ok, page[2] + 0x40),
        ("x-read", 0x2040, "read", "supervisor", perm, None),
        ("r-write", 0x3000, "write", "supervisor", perm, None),
        ("u0-read-vs", 0x4000, "read", "supervisor", perm, None),
        ("u0-read-vu", 0x4000, "read", "user", perm, None),
        ("w-without-r", 0x5000, "read", "supervisor", Reason.W_WITHOUT_R, None),
        ("a-clear", 0x6000, "read", "supervisor", Reason.ACCESSED_DIRTY, None),
        ("invalid", 0x7000, "write", "supervisor", Reason.INVALID, None),
        ("no-ram", 0x8000, "read", "supervisor", Reason.PA_OUTSIDE_MEMORY, None),
        ("pointer-at-level-0", 0x9000, "read", "supervisor", Reason.NON_LEAF_AT_LAST_LEVEL, None),
        ("pa-34-bit", 0xA008, "read", "user", Reason.PA_OUTSIDE_MEMORY, None),
        ("misaligned-megapage", 0x40_0000, "read", "supervisor", Reason.MISALIGNED_SUPERPAGE, None),
        ("megapage", 0x80_1234 & ~3, "execute", "supervisor", ok, BACKING + 0x1234),
        ("megapage-write", 0xBF_FFFC, "write", "user", ok, BACKING + 0x3F_FFFC),
        ("pointer-with-a", 0xC0_0000, "read", "supervisor", Reason.RESERVED, None),
        ("table-no-ram", 0x100_0000, "read", "supervisor", Reason.TABLE_OUTSIDE_MEMORY, None),
        ("pointer-w-without-r", 0x140_0000, "execute", "supervisor", Reason.W_WITHOUT_R, None),
        ("unmapped-root", 0xFFFF_F000, "read", "user", Reason.INVALID, None),
    ]
    return mem, g, cases


def _gpf(cause: int, va: int, gpa: int, htinst: int = 0) -> dict[str, int]:
    """A guest-page fault's syndrome: stval the guest VA, htval the faulting GPA >> 2, htinst the implicit
    access's pseudoinstruction (0 for the explicit one)."""
    return {"scause": cause, "stval": va, "htval": gpa >> 2, "htinst": htinst}


def test_the_gstage_walker_applies_every_rule() -> None:
    """Each G-stage rule (vsatp Bare: the VA is the GPA) with its syndrome: guest-page faults with htval =
    GPA >> 2, access faults (no RAM for the PA or the table) with htval 0."""
    _, g, cases = _gstage_scene()
    w = Walker(g.mem, RiscvRules.gstage(Hgatp32.for_table(SV32X4, g.root_paddr)))
    for label, gpa, access, privilege, reason, pa in cases:
        t = w.translate(gpa, access, privilege)
        assert (t.reason, t.pa if t.ok else None) == (reason, pa), label
        if t.ok:
            assert t.syndrome == {}, label
        elif reason in (Reason.PA_OUTSIDE_MEMORY, Reason.TABLE_OUTSIDE_MEMORY):
            assert t.fault is faults.ACCESS_FAULT, label
            assert t.syndrome == {"scause": {"read": 5, "write": 7, "execute": 1}[access], "stval": gpa,
                                  "htval": 0, "htinst": 0}, label
        else:
            assert t.fault is faults.GUEST_PAGE_FAULT, label
            cause = {"read": LOAD_GPF, "write": STORE_GPF, "execute": FETCH_GPF}[access]
            assert t.syndrome == _gpf(cause, gpa, gpa), label
    x_read = Walker(g.mem, RiscvRules.gstage(Hgatp32.for_table(SV32X4, g.root_paddr), RiscvOptions(mxr=True)))
    assert x_read.translate(0x2040, "read").pa == DATA + 0x2040                  # sstatus.MXR
    assert w.translate(1 << 34, "read").reason == Reason.NON_CANONICAL           # a 35-bit GPA never aliases


def test_a_megapage_needs_ppn0_all_clear() -> None:
    """Sv32's PPN[0] has 10 bits: a 4 MiB leaf whose PPN has bit 9 set (a 2 MiB-aligned PA) is misaligned,
    in Sv32 and in Sv32x4 (the walker once checked 9 bits, as for Sv39)."""
    mem = _tagged()
    e = mem.entries(4)
    e.write(HOST + 4 * 1, (DATA >> 12) << 10 | V | R | W | X | U | A | D)
    for rules in (RiscvRules(Satp32.for_table(SV32, HOST)), RiscvRules.gstage(Hgatp32.for_table(SV32X4, HOST))):
        t = Walker(mem, rules).translate(0x40_0000, "read", "user")
        assert (t.reason, t.level) == (Reason.MISALIGNED_SUPERPAGE, 1)


@settings(max_examples=60, deadline=None)
@given(gpn=st.integers(0, (1 << 22) - 1), ppn=st.integers(0, (1 << 22) - 1),
       flags=st.sampled_from([F.READ, F.READ | F.WRITE, F.EXECUTE, F.READ | F.WRITE | F.EXECUTE]))
def test_a_gstage_page_translates_back(gpn: int, ppn: int, flags: F) -> None:
    mem = PhysMem([(HOST, 4 * MiB)])
    g = PageTable(SV32X4, mem, FrameAllocator(mem))
    g.map(gpn << 12, ppn << 12, 4096, flags)
    assert g.query(gpn << 12) == (ppn << 12, flags | F.USER, 4096)             # G-stage leaves are U=1
    access = "read" if flags & F.READ else "execute"
    t = Walker(mem, RiscvRules.gstage(Hgatp32.for_table(SV32X4, g.root_paddr))).translate((gpn << 12) | 0x7FC,
                                                                                          access)
    outside = not mem.contains(ppn << 12)
    assert t.reason == (Reason.PA_OUTSIDE_MEMORY if outside else Reason.OK)
    assert outside or t.pa == (ppn << 12) | 0x7FC


# -- two stages ----------------------------------------------------------------------------------------


class Machine:
    """Host RAM with an Sv32x4 G-stage mapping guest RAM (4 MiB of GPAs at GUEST, by 4 KiB pages, RWX) and a
    guest Sv32 table built in guest-physical memory (a view of the host RAM that backs it)."""

    def __init__(self) -> None:
        self.mem = _tagged()
        self.g = _gstage(self.mem)
        self.g.map_region(GUEST, BACKING, 4 * MiB, F.READ | F.WRITE | F.EXECUTE)
        self.guest_mem = PhysMem([(GUEST, self.mem.view(BACKING, 4 * MiB))])
        self.vs = PageTable(SV32, self.guest_mem, FrameAllocator(self.guest_mem, GUEST, 1 * MiB))
        self.hgatp = Hgatp32.for_table(SV32X4, self.g.root_paddr)
        self.vsatp = Vsatp32.for_table(SV32, self.vs.root_paddr)

    def hpa(self, gpa: int) -> int:
        return gpa - GUEST + BACKING

    def walker(self, options: HypervisorOptions | None = None) -> Walker:
        return Walker.nested(self.mem, two_stage_rules(self.vsatp, self.hgatp, options))


TwoCase = tuple[str, int, str, str]


def _two_stage_scene() -> tuple[Machine, list[TwoCase]]:
    """VS-stage pages and tables for each two-stage rule (the G-stage's own rules are the scene above)."""
    m = Machine()
    e = m.guest_mem.entries(4)
    data = GUEST + 1 * MiB
    m.vs.map(0x1000, data + 0x1000, 4096, F.READ | F.WRITE)
    m.vs.map(0x2000, data + 0x2000, 4096, F.READ | F.USER)
    m.vs.map(0x3000, data + 0x3000, 4096, F.EXECUTE)
    m.vs.map(0x4000, 0x9000_0000, 4096, F.READ | F.WRITE)                  # a GPA the G-stage does not map
    m.vs.map(0x5000, 0x1_8010_5000, 4096, F.READ)                          # a 34-bit GPA (unmapped)
    m.vs.map(0x6000, data + 0x6000, 4096, F.READ | F.WRITE)
    m.vs.map(0x8000, 0x1_9000_0000, 4096, F.READ | F.WRITE | F.USER)      # 34-bit, and unmapped at 32 bits
    leaf6 = m.vs.lookup(0x6000)
    e.write(leaf6.pa, leaf6.raw & ~(A | D))                                # A=D=0
    m.vs.map(0x40_0000, GUEST, 4 * MiB, F.READ | F.WRITE | F.EXECUTE)      # a VS megapage over guest RAM
    m.vs.map(0x80_0000, data + 0x8000, 4096, F.READ | F.WRITE | F.EXECUTE)
    m.g.protect_region(m.vs.lookup(0x80_0000).table, 4096, F.EXECUTE)       # its VS table: G-stage X only
    m.vs.map(0xC0_0000, data + 0x9000, 4096, F.READ | F.WRITE)
    leaf = m.vs.lookup(0xC0_0000)
    e.write(leaf.pa, leaf.raw & ~(A | D))                                  # A=D=0 ...
    m.g.protect_region(leaf.table, 4096, F.READ)                           # ... in a VS table G-stage R only
    root = m.vs.root_paddr
    e.write(root + 4 * 4, (0x9000_0000 >> 12) << 10 | V)                   # a VS table the G-stage lacks
    m.g.map(0x9040_0000, NO_RAM, 4096, F.READ | F.WRITE)                   # a GPA the G-stage maps to no RAM
    e.write(root + 4 * 5, (0x9040_0000 >> 12) << 10 | V)                   # ... holding a VS table
    m.mem.entries(4).write(m.g.root_paddr + 4 * (0x9080_0000 >> 22), (NO_RAM >> 12) << 10 | V)
    e.write(root + 4 * 6, (0x9080_0000 >> 12) << 10 | V)                   # G-stage table of it: no RAM
    e.write(root + 4 * 7, (0x1_8010_C000 >> 12) << 10 | V)                 # a VS table at a 34-bit GPA ...
    e.write(data + 0xC000, (data + 0xD000) >> 12 << 10 | V | R | W | X | U | A | D)   # ... and at its low 32
    cases = [(label, va, access, privilege) for label, va in (
        ("rw", 0x1008), ("user-r", 0x2010), ("x-only", 0x3020), ("gpa-unmapped", 0x4000),
        ("gpa-34-bit", 0x5008), ("a-clear", 0x6000), ("megapage", 0x41_0008), ("vs-table-x-only", 0x80_0000),
        ("vs-leaf-ad-in-read-only-table", 0xC0_0000), ("vs-table-gpa-unmapped", 0x100_0000),
        ("vs-table-no-ram", 0x140_0000), ("g-table-no-ram", 0x180_0000), ("vs-unmapped", 0x7000),
        ("gpa-34-bit-unmapped", 0x8010), ("vs-table-34-bit", 0x1C0_0000))
        for access in ("read", "write", "execute") for privilege in ("supervisor", "user")]
    return m, cases


def test_two_stage_rv32_syndromes() -> None:
    """The RV32 two-stage faults and what they report: htval = GPA >> 2 of the final GPA or the VS-stage
    PTE's, htinst 0x2000 for an implicit 32-bit PTE read and 0x2020 for Svadu's implicit write."""
    m, _ = _two_stage_scene()
    w = m.walker()
    data = GUEST + 1 * MiB
    t = w.translate(0x1008, "write")
    assert (t.pa, t.gpa, t.stage, t.syndrome) == (m.hpa(data + 0x1008), data + 0x1008, 1, {})
    t = w.translate(0x4000, "read")
    assert (t.reason, t.stage, t.implicit, t.syndrome) == (Reason.INVALID, 2, False, _gpf(LOAD_GPF, 0x4000,
                                                                                           0x9000_0000))
    t = w.translate(0x5008, "execute")                                  # VS X=0: a VS-stage page fault
    assert t.syndrome == {"scause": 12, "stval": 0x5008, "htval": 0, "htinst": 0}
    t = w.translate(0x5008, "read")                                     # GPA bits 33:32 set: not aliased
    assert (t.reason, t.stage, t.gpa) == (Reason.INVALID, 2, 0x1_8010_5008)
    assert t.syndrome == _gpf(LOAD_GPF, 0x5008, 0x1_8010_5008) and t.syndrome["htval"] == 0x6004_1402
    table = m.vs.lookup(0x80_0000)
    t = w.translate(0x80_0000, "write")                                 # the VS PTE on a G-stage X-only page
    assert (t.reason, t.stage, t.implicit, t.gpa) == (Reason.PERMISSION, 2, True, table.pa)
    assert t.syndrome == _gpf(STORE_GPF, 0x80_0000, table.pa, PTE_READ32)
    leaf = m.vs.lookup(0xC0_0000)
    t = m.walker(HypervisorOptions(ad="svadu")).translate(0xC0_0000, "read")   # A=0 set through R-only G page
    assert (t.reason, t.stage, t.implicit, t.gpa) == (Reason.PERMISSION, 2, True, leaf.pa)
    assert t.syndrome == _gpf(LOAD_GPF, 0xC0_0000, leaf.pa, PTE_WRITE32)
    t = w.translate(0xC0_0000, "read")                                  # Svade: a VS-stage page fault
    assert (t.reason, t.stage, t.syndrome) == (Reason.ACCESSED_DIRTY, 1, {"scause": 13, "stval": 0xC0_0000,
                                                                          "htval": 0, "htinst": 0})
    t = w.translate(0x100_0000, "execute")                              # the VS table's GPA unmapped
    assert (t.reason, t.stage, t.implicit) == (Reason.INVALID, 2, True)
    assert t.syndrome == _gpf(FETCH_GPF, 0x100_0000, 0x9000_0000, PTE_READ32)
    t = w.translate(0x140_0000, "read")                                 # mapped to no host RAM: access fault
    assert (t.reason, t.stage, t.syndrome) == (Reason.PA_OUTSIDE_MEMORY, 2, {"scause": 5, "stval": 0x140_0000,
                                                                             "htval": 0, "htinst": 0})


def test_two_stage_needs_one_xlen() -> None:
    m = Machine()
    with pytest.raises(InvalidArgument, match="RV64 vsatp with an RV32 hgatp"):
        two_stage_rules(Vsatp.for_table(SV39, GUEST), m.hgatp)
    with pytest.raises(InvalidArgument, match="RV32 vsatp with an RV64 hgatp"):
        two_stage_rules(m.vsatp, Hgatp.for_table(SV39X4, HOST))


# -- QEMU ------------------------------------------------------------------------------------------------

COMBOS = [h.Status(s, vm, hm) for s in (False, True) for vm in (False, True) for hm in (False, True)]


def _vector_set(mem: PhysMem, mode: str, vsatp: int, hgatp: int, cases: list[tuple[int, str, str]]) -> VectorSet:
    return VectorSet("riscv32", mode, mem, {"vsatp": vsatp, "hgatp": hgatp}, {},
                     [Case(va, access, privilege) for va, access, privilege in cases])


def _agree(vs: VectorSet, labels: list[str]) -> set[str]:
    """Run every case of `vs` under every status combination on qemu-system-riscv32 -cpu rv32,h=true: each
    agrees with the walker (the spec), or differs by the named deviations and does what they predict (most
    cases by none). Returns the deviations that changed some case."""
    exe = require_qemu_riscv32()
    image = vs.mem.read(HOST, 8 * MiB)
    probes = [p for status in COMBOS for p in h.probe_cases(vs.cases, status)]
    results = qemu32.run_probes_rv32(image, h.HS_SATP32, probes, hgatp=vs.registers["hgatp"],
                                     vsatp=vs.registers["vsatp"], qemu=exe)
    mem = h.platform(image, len(probes), 32)
    excluded: collections.Counter[str] = collections.Counter()
    failures = []
    compared = 0
    for k, status in enumerate(COMBOS):
        p = h.predict(mem, vs, status)
        for n, c in enumerate(vs.cases):
            excluded.update(p.names[n])
            compared += not p.names[n]
            diff = h.observed(results[k * len(vs.cases) + n], c.access, c.va, p.qemu[n], mem, 32)
            if diff:
                failures.append(f"{c.va:#x} {c.access} {c.privilege} {status} [{labels[n]}] "
                                f"[{'; '.join(p.names[n])}] {diff}")
    assert not failures, f"{len(failures)} cases disagree:\n" + "\n".join(failures[:40])
    assert set(excluded) <= {name for name, _ in h.steps(h.gstage(vs))}
    assert compared > 0.6 * len(probes), (compared, excluded)
    return set(excluded)


def test_gstage_agrees_with_qemu() -> None:
    """The G-stage scene (vsatp Bare) on QEMU: every case the spec's, but A/D set by hardware, a table with
    no RAM a guest-page fault, the MXR swap, and PA bits 33:32 of a G-stage leaf dropped."""
    mem, g, cases = _gstage_scene()
    vs = _vector_set(mem, "sv32x4", 0, Hgatp32.for_table(SV32X4, g.root_paddr).encode(),
                     [(gpa, access, privilege) for _, gpa, access, privilege, _, _ in cases])
    assert _agree(vs, [c[0] for c in cases]) == {QEMU_AD, QEMU_TABLE_OUTSIDE, h.MXR_SWAPPED, h.PA_TRUNCATED}


def test_two_stage_agrees_with_qemu() -> None:
    """The two-stage scene on QEMU: every RV64 hypervisor deviation, and the G-stage walk of GPA bits 31:0
    where the GPA has 34 (a VS leaf's and a VS table pointer's)."""
    m, cases = _two_stage_scene()
    vs = _vector_set(m.mem, "sv32+sv32x4", m.vsatp.encode(), m.hgatp.encode(), [c[1:] for c in cases])
    assert _agree(vs, [c[0] for c in cases]) == {
        QEMU_AD, QEMU_TABLE_OUTSIDE, QEMU_IMPLICIT_TABLE_OUTSIDE, QEMU_VS_PTE_OUTSIDE, h.SUM_FORCED, h.MXR_SWAPPED,
        h.IMPLICIT_MXR, h.NO_GSTAGE_AD_CHECK, h.IMPLICIT_LOAD, h.GPA_TRUNCATED}
