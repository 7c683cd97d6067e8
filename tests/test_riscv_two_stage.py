"""RISC-V two-stage translation (VS-stage over G-stage): every VS-stage table fetch and the final GPA go
through the G-stage; faults name their stage, level and GPA."""

from __future__ import annotations

import numpy as np

from pagetable.arch.riscv_sv39 import PTE, SV39, SV39X4, Hgatp, Vsatp, faults
from pagetable.arch.riscv_sv39.walk import HypervisorOptions, two_stage_rules
from pagetable.flags import MappingFlags as F
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.walker import Access, Privilege, Reason, Walker

HOST = 0x8000_0000            # host RAM: 16 MiB
GUEST = 0x8000_0000           # guest RAM GPA base, backed by host RAM at HOST + 8 MiB
BACKING = HOST + (8 << 20)
GSIZE = 4 << 20


def _nested(m: Machine, options: HypervisorOptions | None = None) -> Walker:
    return Walker.nested(m.mem, two_stage_rules(m.vsatp, m.hgatp, options))


class Machine:
    """Host memory with a G-stage table (Sv39x4) mapping guest RAM, and a guest VS-stage table (Sv39)
    built in guest-physical memory, which is a view of the host RAM that backs it."""

    def __init__(self) -> None:
        self.mem = PhysMem([(HOST, 16 << 20)])
        self.g = PageTable(SV39X4, self.mem, FrameAllocator(self.mem, HOST, 8 << 20))
        self.g.map_region(GUEST, BACKING, GSIZE, F.READ | F.WRITE | F.EXECUTE)
        view = self.mem.view(BACKING, GSIZE)
        self.guest_mem = PhysMem([(GUEST, view)])              # the same bytes, at guest-physical addresses
        self.vs = PageTable(SV39, self.guest_mem, FrameAllocator(self.guest_mem))
        self.hgatp = Hgatp.for_table(SV39X4, self.g.root_paddr).encode()
        self.vsatp = Vsatp.for_table(SV39, self.vs.root_paddr).encode()

    def hpa(self, gpa: int) -> int:
        return gpa - GUEST + BACKING


def test_two_stage_translation_and_stage_of_each_fault() -> None:
    m = Machine()
    data = m.vs.frames.alloc()
    m.vs.map(0x1000, data, 0x1000, F.READ | F.WRITE)
    m.vs.map(0x2000, GUEST + GSIZE, 0x1000, F.READ)             # a GPA the G-stage does not map
    w = _nested(m)
    t = w.translate(0x1234, "write", "supervisor")
    assert t.ok and t.pa == m.hpa(data) + 0x234 and t.gpa == data + 0x234 and t.stage == 1
    t = w.translate(0x3000, "read")                              # VS-stage hole: an ordinary page fault
    assert (t.reason, t.fault, t.stage, t.level) == (Reason.INVALID, faults.PAGE_FAULT, 1, 0)
    t = w.translate(0x2008, "read")                              # final GPA unmapped in the G-stage
    assert (t.reason, t.fault, t.stage, t.gpa) == (Reason.INVALID, faults.GUEST_PAGE_FAULT, 2, GUEST + GSIZE + 8)
    assert not t.implicit                                        # the final GPA, not a table access
    assert t.level == 1                                          # the G-stage level where it stopped


def test_vs_table_fetch_is_an_implicit_g_stage_read() -> None:
    m = Machine()
    m.vs.map(0x1000, m.vs.frames.alloc(), 0x1000, F.READ)
    leaf_table = m.vs.lookup(0x1000).table                      # GPA of the VS last-level table
    w = _nested(m)
    assert w.translate(0x1000, "read").ok
    m.g.protect_region(leaf_table, 0x1000, F.EXECUTE)            # G-stage: that table page is execute-only
    t = w.translate(0x1000, "execute")                           # even a fetch reads the VS PTE
    assert (t.reason, t.fault, t.stage) == (Reason.PERMISSION, faults.GUEST_PAGE_FAULT, 2)
    assert t.gpa == leaf_table + 8 and t.level == 0              # the VS PTE address, at G-stage level 0
    assert t.implicit
    t = _nested(m, HypervisorOptions(hs_mxr=True)).translate(0x1000, "read")
    assert (t.reason, t.stage, t.implicit) == (Reason.PERMISSION, 2, True)    # MXR: explicit loads only
    m.g.unmap_region(leaf_table, 0x1000)
    t = w.translate(0x1000, "read")
    assert (t.reason, t.stage, t.gpa) == (Reason.INVALID, 2, leaf_table + 8)


def test_status_bits_of_each_stage() -> None:
    m = Machine()
    user = m.vs.frames.alloc()
    xonly = m.vs.frames.alloc()
    m.vs.map(0x1000, user, 0x1000, F.READ | F.USER)
    m.vs.map(0x2000, xonly, 0x1000, F.EXECUTE)
    plain = _nested(m)
    assert plain.translate(0x1000, "read", "supervisor").reason == Reason.PERMISSION       # vsstatus.SUM=0
    assert _nested(m, HypervisorOptions(vs_sum=True)).translate(0x1000, "read").ok
    assert plain.translate(0x1000, "read", "user").ok
    assert plain.translate(0x2000, "read").reason == Reason.PERMISSION
    assert _nested(m, HypervisorOptions(vs_mxr=True)).translate(0x2000, "read").ok
    assert _nested(m, HypervisorOptions(hs_mxr=True)).translate(0x2000, "read").ok
    # G-stage X-only page: vsstatus.MXR does not help, sstatus.MXR does
    m.g.protect_region(xonly, 0x1000, F.EXECUTE)
    m.vs.protect(0x2000, F.READ | F.EXECUTE)
    t = _nested(m, HypervisorOptions(vs_mxr=True)).translate(0x2000, "read")
    assert (t.stage, t.fault) == (2, faults.GUEST_PAGE_FAULT)
    assert _nested(m, HypervisorOptions(hs_mxr=True)).translate(0x2000, "read").ok


def test_bare_vsatp_and_bulk_agrees_with_single() -> None:
    m = Machine()
    w = Walker.nested(m.mem, two_stage_rules(0, m.hgatp))                      # VS-stage Bare: GPA = VA
    assert w.translate(GUEST + 0x10, "read").pa == BACKING + 0x10
    m.vs.map_region(0x10_0000, GUEST + 0x20_0000, 0x20_0000, F.READ | F.WRITE | F.USER, allow_huge=True)
    w = _nested(m)
    rng = np.random.default_rng(3)
    vas = rng.integers(0x0F_0000, 0x40_0000, 300, dtype=np.uint64) & ~np.uint64(7)
    acc = rng.integers(0, 3, 300).astype(np.uint8)
    prv = rng.integers(0, 2, 300).astype(np.uint8)
    bulk = w.translate_many(vas, acc, prv)
    for i in range(300):
        one = w.translate(int(vas[i]), Access(int(acc[i])), Privilege(int(prv[i])))
        assert (one.reason, one.stage, one.level) == (bulk.reason[i], bulk.stage[i], bulk.level[i])
        if one.ok:
            assert one.pa == bulk.pa[i] == m.hpa(int(vas[i]) - 0x10_0000 + GUEST + 0x20_0000)
    assert PTE.get(m.mem.read_u64(m.g.root_paddr + 8 * 2), "V") == 1   # G-stage root entry for GUEST


def test_svadu_update_of_a_vs_leaf_is_a_g_stage_write() -> None:
    """With Svadu, setting A (or D on a store) in a VS leaf is an implicit store: a G-stage read-only
    mapping of the VS table page makes it a guest-page fault for the original access, at the PTE's GPA."""
    m = Machine()
    m.vs.map(0x1000, m.vs.frames.alloc(), 0x1000, F.READ | F.WRITE | F.EXECUTE)
    slot = m.vs.lookup(0x1000)
    m.g.protect_region(slot.table, 0x1000, F.READ)               # the VS last-level table: read-only
    svadu = _nested(m, HypervisorOptions(ad="svadu"))
    svade = _nested(m, HypervisorOptions(ad="svade"))
    m.guest_mem.write_u64(slot.pa, PTE.set(slot.raw, "D", 0))    # A=1, D=0
    assert svadu.translate(0x1008, "read").ok and svadu.translate(0x1008, "execute").ok
    t = svadu.translate(0x1008, "write")                         # D must be set: G-stage write check
    assert (t.reason, t.fault, t.stage, t.gpa, t.level) == (Reason.PERMISSION, faults.GUEST_PAGE_FAULT, 2,
                                                            slot.pa, 0)
    assert t.implicit
    t = svade.translate(0x1008, "write")                         # Svade: a VS-stage page fault instead
    assert (t.reason, t.stage) == (Reason.ACCESSED_DIRTY, 1)
    m.guest_mem.write_u64(slot.pa, PTE.set(slot.raw, "A", 0))    # A=0: every access updates it
    for access in ("read", "write", "execute"):
        assert svadu.translate(0x1008, access).gpa == slot.pa
    m.g.protect_region(slot.table, 0x1000, F.READ | F.WRITE)
    assert svadu.translate(0x1008, "write").ok


def test_g_stage_leaves_give_the_guest_physical_memory_view() -> None:
    """Mappings.memory: the host RAM a G-stage maps, at its guest-physical addresses, as views."""
    m = Machine()
    extra = m.g.frames.alloc()
    m.g.map(0x4000_0000, extra, 0x1000, F.READ | F.USER)          # a lone page elsewhere
    m.g.map(0x5000_0000, 0x1_0000_0000, 0x1000, F.READ | F.USER)  # a page of no RAM: left out
    guest = m.g.walk().memory(m.mem)
    assert guest is not None
    assert [(r.base, r.size) for r in guest.regions] == [(0x4000_0000, 0x1000), (GUEST, GSIZE)]
    guest.write_u64(GUEST + 0x18, 0x1234)                          # the same bytes as the host's
    assert m.mem.read_u64(BACKING + 0x18) == 0x1234
    m.mem.write_u64(extra + 8, 0x5678)
    assert guest.read_u64(0x4000_0008) == 0x5678
    m.g.unmap_region(GUEST, GSIZE)
    m.g.unmap(0x4000_0000)
    assert m.g.walk().memory(m.mem) is None


def test_hs_mxr_never_makes_a_vs_table_readable_through_an_execute_only_gstage_page() -> None:
    """sstatus.MXR makes execute-only pages readable for explicit loads only. With --hs-mxr the walker used to
    apply it to the implicit reads of a VS-stage table too, and returned a PA where hardware (and QEMU) take
    a load guest-page fault at the table's GPA."""
    m = Machine()
    table_gpa = GUEST + GSIZE                              # a guest page outside guest RAM, mapped X-only
    m.g.map(table_gpa, HOST + (4 << 20), 0x1000, F.EXECUTE | F.USER)
    data_gpa = table_gpa + 0x1000                          # and an explicit X-only data page
    m.g.map(data_gpa, HOST + (4 << 20) + 0x1000, 0x1000, F.EXECUTE | F.USER)
    m.vs.map(0x4000, data_gpa, 0x1000, F.READ | F.WRITE | F.EXECUTE)
    slot = m.vs.lookup(0x20_0000, 1)                       # a PMD entry pointing at a VS table on that page
    m.guest_mem.write_u64(slot.table + 8 * 1, (table_gpa >> 12) << 10 | PTE.mask("V"))
    m.mem.write_u64(HOST + (4 << 20), PTE.mask("V", "R", "W", "X", "A", "D") | (data_gpa >> 12) << 10)
    w = _nested(m, HypervisorOptions(hs_mxr=True))
    for access in Access:
        t = w.translate(0x20_0000, access)
        assert (t.reason, t.stage, t.gpa, t.implicit, t.fault) == \
            (Reason.PERMISSION, 2, table_gpa, True, faults.GUEST_PAGE_FAULT), access
    t = w.translate(0x4000, "read")                        # the explicit load of an X-only page: MXR applies
    assert t.ok and t.pa == HOST + (4 << 20) + 0x1000
    assert not _nested(m).translate(0x4000, "read").ok
