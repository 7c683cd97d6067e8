"""RISC-V two-stage translation (VS-stage over G-stage): every VS-stage table fetch and the final GPA go
through the G-stage; faults name their stage, level and GPA."""

from __future__ import annotations

import numpy as np

from pagetable.arch.riscv_sv39 import PTE, SV39, SV39X4, Hgatp, Vsatp, faults
from pagetable.arch.riscv_sv39.entry import pte_paddr
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
# exception codes (privileged spec, the mcause table): page faults, then guest-page faults
LOAD_PF, STORE_PF, FETCH_PF = 13, 15, 12
LOAD_GPF, STORE_GPF, FETCH_GPF = 21, 23, 20
CAUSE = {"read": (LOAD_PF, LOAD_GPF), "write": (STORE_PF, STORE_GPF), "execute": (FETCH_PF, FETCH_GPF)}
PTE_READ, PTE_WRITE = 0x3000, 0x3020     # htinst's pseudoinstructions for an implicit 64-bit PTE read / write


def pf(cause: int, va: int) -> dict[str, int]:
    """A VS-stage page fault's syndrome: scause, stval = the guest VA; htval and htinst 0."""
    return {"scause": cause, "stval": va, "htval": 0, "htinst": 0}


def gpf(cause: int, va: int, gpa: int, htinst: int = 0) -> dict[str, int]:
    """A guest-page fault's syndrome: stval = the guest VA, htval = the faulting GPA >> 2, htinst the
    pseudoinstruction of an implicit VS-stage table access (0 for the explicit access)."""
    return {"scause": cause, "stval": va, "htval": gpa >> 2, "htinst": htinst}



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
    """The G-stage maps guest RAM RWX (GSTAGE: U=1, A=D=1) in 4 KiB pages, so a two-stage translation's perms
    are the VS-stage leaf's (U=0 RW: supervisor r and w; A=D=1)."""
    m = Machine()
    data = m.vs.frames.alloc()
    assert data == GUEST + 0x1000                                # the VS root is at GUEST
    m.vs.map(0x1000, data, 0x1000, F.READ | F.WRITE)
    m.vs.map(0x2000, GUEST + GSIZE, 0x1000, F.READ)             # a GPA the G-stage does not map
    w = _nested(m)
    t = w.translate(0x1234, "write", "supervisor")
    assert (t.pa, t.gpa, t.stage, t.perms, t.syndrome) == (BACKING + 0x1234, GUEST + 0x1234, 1, 0b000_011, {})
    t = w.translate(0x3000, "read")                              # VS-stage hole: an ordinary page fault
    assert (t.reason, t.fault, t.stage, t.level) == (Reason.INVALID, faults.PAGE_FAULT, 1, 0)
    assert (t.pa, t.perms, t.syndrome) == (None, 0, pf(LOAD_PF, 0x3000))
    t = w.translate(0x2008, "read")                              # final GPA unmapped in the G-stage
    assert (t.reason, t.fault, t.stage, t.gpa) == (Reason.INVALID, faults.GUEST_PAGE_FAULT, 2, GUEST + GSIZE + 8)
    assert not t.implicit                                        # the final GPA, not a table access
    assert t.level == 1                                          # the G-stage level where it stopped
    assert (t.perms, t.syndrome) == (0, gpf(LOAD_GPF, 0x2008, GUEST + GSIZE + 8))


def test_vs_table_fetch_is_an_implicit_g_stage_read() -> None:
    m = Machine()
    page = m.vs.frames.alloc()
    m.vs.map(0x1000, page, 0x1000, F.READ)                      # VS leaf: R, A=1, D=0
    leaf_table = m.vs.lookup(0x1000).table                      # GPA of the VS last-level table
    pte = leaf_table + 8                                         # ... and of the PTE for VA 0x1000
    w = _nested(m)
    t = w.translate(0x1000, "read")
    assert (t.pa, t.gpa, t.perms, t.syndrome) == (m.hpa(page), page, 0b000_001, {})   # supervisor read only
    m.g.protect_region(leaf_table, 0x1000, F.EXECUTE)            # G-stage: that table page is execute-only
    t = w.translate(0x1000, "execute")                           # even a fetch reads the VS PTE
    assert (t.reason, t.fault, t.stage) == (Reason.PERMISSION, faults.GUEST_PAGE_FAULT, 2)
    assert t.gpa == pte and t.level == 0                         # the VS PTE address, at G-stage level 0
    assert t.implicit
    assert (t.perms, t.syndrome) == (0, gpf(FETCH_GPF, 0x1000, pte, PTE_READ))   # reported for the fetch
    t = _nested(m, HypervisorOptions(hs_mxr=True)).translate(0x1000, "read")
    assert (t.reason, t.stage, t.implicit) == (Reason.PERMISSION, 2, True)    # MXR: explicit loads only
    assert (t.gpa, t.level, t.perms, t.syndrome) == (pte, 0, 0, gpf(LOAD_GPF, 0x1000, pte, PTE_READ))
    m.g.unmap_region(leaf_table, 0x1000)
    t = w.translate(0x1000, "read")
    assert (t.reason, t.stage, t.gpa) == (Reason.INVALID, 2, pte)
    assert (t.implicit, t.level, t.perms, t.syndrome) == (True, 0, 0, gpf(LOAD_GPF, 0x1000, pte, PTE_READ))


def test_status_bits_of_each_stage() -> None:
    """VS leaves: 0x1000 R|U, 0x2000 X-only (A=1, D=0: no write bits either way). A U page gives VS-mode
    read/write only with vsstatus.SUM and never execute; MXR makes X pages readable."""
    m = Machine()
    user = m.vs.frames.alloc()
    xonly = m.vs.frames.alloc()
    m.vs.map(0x1000, user, 0x1000, F.READ | F.USER)
    m.vs.map(0x2000, xonly, 0x1000, F.EXECUTE)
    plain = _nested(m)
    t = plain.translate(0x1000, "read", "supervisor")                                     # vsstatus.SUM=0
    assert (t.reason, t.stage, t.perms, t.syndrome) == (Reason.PERMISSION, 1, 0, pf(LOAD_PF, 0x1000))
    t = _nested(m, HypervisorOptions(vs_sum=True)).translate(0x1000, "read")
    assert (t.pa, t.perms, t.syndrome) == (m.hpa(user), 0b001_001, {})                  # S and U read
    t = plain.translate(0x1000, "read", "user")
    assert (t.pa, t.perms, t.syndrome) == (m.hpa(user), 0b001_000, {})                  # U read only
    t = plain.translate(0x2000, "read")
    assert (t.reason, t.stage, t.perms, t.syndrome) == (Reason.PERMISSION, 1, 0, pf(LOAD_PF, 0x2000))
    for options in (HypervisorOptions(vs_mxr=True), HypervisorOptions(hs_mxr=True)):
        t = _nested(m, options).translate(0x2000, "read")
        assert (t.pa, t.perms, t.syndrome) == (m.hpa(xonly), 0b000_101, {}), options     # S read, S execute
    # G-stage X-only page: vsstatus.MXR does not help, sstatus.MXR does
    m.g.protect_region(xonly, 0x1000, F.EXECUTE)
    m.vs.protect(0x2000, F.READ | F.EXECUTE)
    t = _nested(m, HypervisorOptions(vs_mxr=True)).translate(0x2000, "read")
    assert (t.stage, t.fault, t.reason, t.gpa, t.implicit, t.level) == (2, faults.GUEST_PAGE_FAULT,
                                                                        Reason.PERMISSION, xonly, False, 0)
    assert (t.perms, t.syndrome) == (0, gpf(LOAD_GPF, 0x2000, xonly))
    t = _nested(m, HypervisorOptions(hs_mxr=True)).translate(0x2000, "read")
    assert (t.pa, t.perms, t.syndrome) == (m.hpa(xonly), 0b000_101, {})    # VS r-x & G-stage r-x (MXR), both S


def test_bare_vsatp_and_bulk_agrees_with_single() -> None:
    m = Machine()
    w = Walker.nested(m.mem, two_stage_rules(0, m.hgatp))                      # VS-stage Bare: GPA = VA
    t = w.translate(GUEST + 0x10, "read")
    assert (t.pa, t.gpa, t.perms, t.syndrome) == (BACKING + 0x10, GUEST + 0x10, 0b111_111, {})  # the G-stage's
    m.vs.map_region(0x10_0000, GUEST + 0x20_0000, 0x20_0000, F.READ | F.WRITE | F.USER, allow_huge=True)
    w = _nested(m)
    rng = np.random.default_rng(3)
    vas = rng.integers(0x0F_0000, 0x40_0000, 300, dtype=np.uint64) & ~np.uint64(7)
    acc = rng.integers(0, 3, 300).astype(np.uint8)
    prv = rng.integers(0, 2, 300).astype(np.uint8)
    bulk = w.translate_many(vas, acc, prv)
    for i in range(300):
        va, access, privilege = int(vas[i]), Access(int(acc[i])), Privilege(int(prv[i]))
        one = w.translate(va, access, privilege)
        assert (one.reason, one.stage, one.level) == (bulk.reason[i], bulk.stage[i], bulk.level[i])
        assert one.perms == bulk.perms[i]
        assert one.syndrome == ({} if one.ok else {k: int(v[i]) for k, v in bulk.syndrome.items()})
        if one.ok:
            assert all(v[i] == 0 for v in bulk.syndrome.values())   # bulk syndromes are 0 where a lane translated
        # [0x10_0000, 0x30_0000) is 4 KiB VS pages (VA 0x10_0000 is not 2 MiB aligned), U RW, A=D=1: VU-mode
        # reads and writes; VS-mode (SUM=0) and every fetch fault; around it the VS last-level tables are empty
        mapped = 0x10_0000 <= va < 0x30_0000
        if mapped and privilege == Privilege.USER and access != Access.EXECUTE:
            assert one.pa == bulk.pa[i] == m.hpa(va - 0x10_0000 + GUEST + 0x20_0000)
            assert (one.perms, one.syndrome) == (0b011_000, {})
        else:
            assert (one.reason, one.stage, one.level, one.perms) == (
                Reason.PERMISSION if mapped else Reason.INVALID, 1, 0, 0)
            assert one.syndrome == pf(CAUSE[access.label][0], va)
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
    data = m.hpa(pte_paddr(slot.raw)) + 8
    for access in ("read", "execute"):                           # no update needed: the G-stage is not asked
        t = svadu.translate(0x1008, access)
        assert (t.pa, t.syndrome) == (data, {}), access        # perms: test_svadu_perms_leave_out_a_refused_update
    t = svadu.translate(0x1008, "write")                         # D must be set: G-stage write check
    assert (t.reason, t.fault, t.stage, t.gpa, t.level) == (Reason.PERMISSION, faults.GUEST_PAGE_FAULT, 2,
                                                            slot.pa, 0)
    assert t.implicit
    assert (t.perms, t.syndrome) == (0, gpf(STORE_GPF, 0x1008, slot.pa, PTE_WRITE))
    t = svade.translate(0x1008, "write")                         # Svade: a VS-stage page fault instead
    assert (t.reason, t.stage, t.perms, t.syndrome) == (Reason.ACCESSED_DIRTY, 1, 0, pf(STORE_PF, 0x1008))
    m.guest_mem.write_u64(slot.pa, PTE.set(slot.raw, "A", 0))    # A=0: every access updates it
    for access in ("read", "write", "execute"):
        t = svadu.translate(0x1008, access)
        assert (t.gpa, t.stage, t.implicit, t.perms) == (slot.pa, 2, True, 0), access
        assert t.syndrome == gpf(CAUSE[access][1], 0x1008, slot.pa, PTE_WRITE), access   # the original access
    m.g.protect_region(slot.table, 0x1000, F.READ | F.WRITE)
    t = svadu.translate(0x1008, "write")
    assert (t.pa, t.perms, t.syndrome) == (data, 0b000_111, {})   # VS RWX (A/D set by hardware) & G RWX


def test_svadu_perms_leave_out_a_refused_update() -> None:
    """A VS leaf RWX (U=0) with A=1, D=0 in a VS table the G-stage maps read-only, under Svadu: a load or
    fetch translates without an update; a store needs D set, an implicit G-stage write of the PTE that the
    read-only page refuses (a store guest-page fault). So no supervisor write bit: perm_bit says a set bit
    means that access at that privilege translates, and `Walker.mappings` of the same leaf says 0b000101."""
    m = Machine()
    m.vs.map(0x1000, m.vs.frames.alloc(), 0x1000, F.READ | F.WRITE | F.EXECUTE)
    slot = m.vs.lookup(0x1000)
    m.g.protect_region(slot.table, 0x1000, F.READ)
    m.guest_mem.write_u64(slot.pa, PTE.set(slot.raw, "D", 0))
    svadu = _nested(m, HypervisorOptions(ad="svadu"))
    assert svadu.translate(0x1008, "write").reason == Reason.PERMISSION
    listed = svadu.mappings(0x1000, 0x2000).perms
    assert listed is not None and listed.tolist() == [0b000_101]
    for access in ("read", "execute"):
        t = svadu.translate(0x1008, access)
        assert t.perms == 0b000_101 and not t.allows("write", "supervisor"), access


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
        assert (t.level, t.perms, t.syndrome) == (0, 0, gpf(CAUSE[access.label][1], 0x20_0000, table_gpa,
                                                            PTE_READ)), access
    t = w.translate(0x4000, "read")                        # the explicit load of an X-only page: MXR applies
    # VS RWX (U=0: supervisor) & G-stage X with MXR (r-x for both privileges, D=0 takes no more)
    assert (t.pa, t.gpa, t.perms, t.syndrome) == (HOST + (4 << 20) + 0x1000, data_gpa, 0b000_101, {})
    t = _nested(m).translate(0x4000, "read")
    assert (t.reason, t.stage, t.gpa, t.implicit, t.level) == (Reason.PERMISSION, 2, data_gpa, False, 0)
    assert (t.perms, t.syndrome) == (0, gpf(LOAD_GPF, 0x4000, data_gpa))


def test_a_vs_table_that_stage_2_maps_outside_ram() -> None:
    """The G-stage maps the VS-stage root's GPA to a host address with no RAM: the walk's implicit read is an
    access fault (stage 2, implicit, at the PTE's GPA), and the listing says it cannot read the table. (The
    long fuzz run took this for a leaf the listing missed: the fuzz helper now knows it is a table access.)"""
    mem = PhysMem([(HOST, 1 << 20)])
    g_root = HOST + 0x8000
    mem.write_u64(g_root + 2 * 8, (0x1_0000_0000 >> 12) << 10 | 0xDF)   # GPA 2 GiB.. -> HPA 4 GiB.., RWXU AD
    w = Walker.nested(mem, two_stage_rules(Vsatp.for_table(SV39, 0x8000_0000), Hgatp.for_table(SV39X4, g_root)))
    t = w.translate(0x1000)
    assert (t.reason, t.stage, t.implicit, t.level, t.gpa) == (Reason.PA_OUTSIDE_MEMORY, 2, True, 2, 0x8000_0000)
    assert t.syndrome == {"scause": 5, "stval": 0x1000, "htval": 0, "htinst": 0}   # a load access fault
    m = w.mappings()
    assert len(m) == 0 and m.problems == ("the level-2 table for VA 0x0 is at GPA 0x80000000, which stage 2 does "
                                          "not let the walk read (access-fault: pa-outside-memory at stage-2 "
                                          "level 2): not walked",)
