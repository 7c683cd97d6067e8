"""EPT and AMD nested paging against the manuals, case by case: the EPT walk alone (violations with their
exit qualification, every misconfiguration, mode-based execute control, EPTP), nested paging alone
(EXITINFO1/2), and two-stage walks over both (guest paging-structure accesses and their A/D updates
translated by the nested walk, the final access, memory types combined), with the bulk and one-lane walks
held to the same outcome; and GuestAddrSpace over EPT and nested tables. QEMU does not emulate EPT: these
cases are the SDM's (Vol. 3C 29.3), and nested paging's are the APM's (Vol. 2 15.25)."""

from __future__ import annotations

import numpy as np
import pytest

from pagetable.arch.x86_64 import EPT4, EPTP, NPT4, PAGING4, EptCodec, EptOptions, EptRules, NptRules, X86Rules
from pagetable.arch.x86_64.entry import PCD, PWT, RW, US, A, D
from pagetable.arch.x86_64.ept import IPAT, MT_SHIFT, XU, R, W, X
from pagetable.arch.x86_64.ept import A as A_EPT
from pagetable.arch.x86_64.ept import D as D_EPT
from pagetable.arch.x86_64.ept_walk import (
    EPT_MISCONFIGURATION,
    EPT_VIOLATION,
    QUAL_FETCH,
    QUAL_FINAL,
    QUAL_LINEAR_VALID,
    QUAL_READ,
    QUAL_READABLE,
    QUAL_USER_EXECUTABLE,
    QUAL_WRITABLE,
    QUAL_WRITE,
)
from pagetable.arch.x86_64.npt import EXITINFO1_FINAL, EXITINFO1_TABLE, NESTED_PAGE_FAULT
from pagetable.arch.x86_64.walk import PAGE_FAULT, X86Options
from pagetable.errors import InvalidArgument, InvalidFlags
from pagetable.flags import MappingFlags as F
from pagetable.format import PagingFormat
from pagetable.frames import FrameAllocator
from pagetable.mm import GuestAddrSpace
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.translation import MemoryType, Reason
from pagetable.walker import Access, Privilege, Walker

from .fuzzing import assert_lanes_agree, assert_listing_agrees

MiB = 1 << 20
READ, WRITE, FETCH = Access.READ, Access.WRITE, Access.EXECUTE
SUP, USER = Privilege.SUPERVISOR, Privilege.USER
RWX = F.READ | F.WRITE | F.EXECUTE
GPA = 0x40_3000                                     # EPT/NPT PML4 0, PDPT 0, PD 2, PT 3
GUEST_RAM = 16 * MiB                                 # guest-physical [0, 16 MiB) is host-physical [0, 16 MiB)


def eptp(root: int, ad: bool = False, walk: int = 3) -> int:
    return EPTP.build(MT=6, WALK=walk, AD=int(ad)) | root


class Nested:
    """Host RAM of 64 MiB; nested tables (from 32 MiB up) over `fmt` mapping guest-physical [0, 16 MiB)
    to the same host-physical addresses with 4 KiB pages of `flags`; `poke(gpa, depth, set, clear)` edits
    the nested entry on a GPA's path."""

    def __init__(self, fmt: PagingFormat, flags: F = RWX) -> None:
        self.mem = PhysMem([(0, 64 * MiB)])
        self.frames = FrameAllocator(self.mem, 32 * MiB, 32 * MiB)
        self.pt = PageTable(fmt, self.mem, self.frames)
        self.pt.map_region(0, 0, GUEST_RAM, flags)

    def poke(self, gpa: int, depth: int, set_bits: int = 0, clear: int = 0) -> None:
        slot = self.pt.lookup(gpa, depth)
        self.mem.write_u64(slot.pa, (slot.raw & ~clear) | set_bits)


def ept(flags: F = RWX, mbec: bool = False) -> Nested:
    return Nested(EPT4.with_codec(EptCodec(mbec=mbec)), flags)


def ept_walker(n: Nested, ad: bool = False, **options: bool | int) -> Walker:
    return Walker(n.mem, EptRules(eptp(n.pt.root_paddr, ad), EptOptions(**options)))  # type: ignore[arg-type]


def exit_of(w: Walker, va: int, access: Access, priv: Privilege = SUP) -> tuple[str, int, int, int]:
    """(fault kind, level, exit qualification, GPA) of one access."""
    t = w.translate(va, access, priv)
    assert not t.ok and t.fault is not None
    return t.fault.value, t.level, t.syndrome["exit_qualification"], t.syndrome["gpa"]


# ---------------------------------------------------------------------------------------------- EPT alone


def test_an_ept_page_translates_with_its_rights_and_memory_type() -> None:
    n = ept(F.READ | F.EXECUTE)
    t = ept_walker(n).translate(GPA + 0x10, READ)
    assert (t.ok, t.pa, t.level, t.memtype) == (True, GPA + 0x10, 1, MemoryType.WB)
    assert t.allows("read", "user") and t.allows("execute", "supervisor") and not t.allows("write", "user")


def test_ept_violations_report_the_access_and_the_rights_of_the_entries_read() -> None:
    n = ept(F.READ)
    w = ept_walker(n)
    # a write to a read-only page: bit 1 (write), bit 3 (readable); no linear address (guest paging off)
    assert exit_of(w, GPA, WRITE) == ("ept-violation", 1, QUAL_WRITE | QUAL_READABLE, GPA)
    assert exit_of(w, GPA, FETCH) == ("ept-violation", 1, QUAL_FETCH | QUAL_READABLE, GPA)
    # W=0 in the PD entry takes writes away whatever the page says
    n2 = ept()
    n2.poke(GPA, 2, clear=W)
    assert exit_of(ept_walker(n2), GPA, WRITE) == ("ept-violation", 1, QUAL_WRITE | QUAL_READABLE | 32, GPA)
    # not present at each level: the rights of every entry read, the not-present one included, are 0
    for depth, level in ((0, 4), (1, 3), (2, 2), (3, 1)):
        n3 = ept()
        n3.poke(GPA, depth, clear=R | W | X)
        assert exit_of(ept_walker(n3), GPA, READ) == ("ept-violation", level, QUAL_READ, GPA)


@pytest.mark.parametrize("depth,set_bits,clear,why", [
    (3, W, R, Reason.W_WITHOUT_R),               # W without R
    (0, W, R, Reason.W_WITHOUT_R),               # ... at any level
    (3, 2 << MT_SHIFT, 7 << MT_SHIFT, Reason.RESERVED),   # memory type 2
    (3, 3 << MT_SHIFT, 7 << MT_SHIFT, Reason.RESERVED),   # 3
    (3, 7 << MT_SHIFT, 7 << MT_SHIFT, Reason.RESERVED),   # 7
    (0, 1 << 3, 0, Reason.RESERVED),             # PML4E bits 7:3
    (0, 1 << 7, 0, Reason.RESERVED),             # PS in a PML4E
    (1, 1 << 6, 0, Reason.RESERVED),             # PDPTE that references a table: bits 6:3
    (2, 1 << 4, 0, Reason.RESERVED),             # PDE: bits 6:3
    (3, 1 << 45, 0, Reason.RESERVED),            # an address bit at or above MAXPHYADDR (40)
])
def test_ept_misconfigurations_are_not_violations(depth: int, set_bits: int, clear: int, why: Reason) -> None:
    n = ept()
    n.poke(GPA, depth, set_bits, clear)
    t = ept_walker(n, maxphyaddr=40).translate(GPA, READ)
    assert (t.reason, t.fault, t.level) == (why, EPT_MISCONFIGURATION, 4 - depth)
    assert t.syndrome == {"exit_qualification": 0, "gpa": GPA, "guest_linear": 0}


def test_large_ept_pages_and_their_reserved_bits() -> None:
    n = Nested(EPT4)
    n.pt.map(0x4000_0000, 0x20_0000 * 0, 1 << 30, RWX)                  # a 1 GiB page at GPA 1 GiB
    n.pt.map(0x8020_0000, 0x20_0000, 0x20_0000, F.READ)                 # a 2 MiB page
    w = ept_walker(n)
    assert w.translate(0x4123_4567).pa == 0x123_4567 and w.translate(0x4123_4567).level == 3
    assert w.translate(0x8021_0000).pa == 0x21_0000
    n.poke(0x8020_0000, 2, 1 << 12)                                     # bits 20:12 of a 2 MiB page
    assert w.translate(0x8020_0000).fault == EPT_MISCONFIGURATION
    assert ept_walker(n, gbpages=False).translate(0x4000_0000).fault == EPT_MISCONFIGURATION


def test_execute_only_pages_need_the_capability() -> None:
    n = ept()
    n.poke(GPA, 3, clear=R | W)                                         # X only
    assert ept_walker(n).translate(GPA, FETCH).ok
    assert exit_of(ept_walker(n), GPA, READ) == ("ept-violation", 1, QUAL_READ | 32, GPA)
    assert ept_walker(n, execute_only=False).translate(GPA, FETCH).fault == EPT_MISCONFIGURATION
    with pytest.raises(InvalidFlags):
        PageTable(EPT4.with_codec(EptCodec(execute_only=False)), n.mem, n.frames).map(0, 0, 4096, F.EXECUTE)


def test_mode_based_execute_control_splits_supervisor_and_user_fetches() -> None:
    n = ept(F.READ | F.EXECUTE | F.USER, mbec=True)                     # EXECUTE|USER: the user-execute bit
    raw = n.pt.lookup(GPA).raw
    assert raw & XU and not raw & X
    w = ept_walker(n, mbec=True)
    assert w.translate(GPA, FETCH, USER).ok
    kind, _, qual, _ = exit_of(w, GPA, FETCH, SUP)
    assert (kind, qual) == ("ept-violation", QUAL_FETCH | QUAL_READABLE | QUAL_USER_EXECUTABLE)
    # without MBEC the user-execute bit means nothing: the entry is not executable at all
    assert not ept_walker(n).translate(GPA, FETCH, USER).ok


@pytest.mark.parametrize("value", [EPTP.build(MT=1, WALK=3), EPTP.build(MT=6, WALK=2),
                                   EPTP.build(MT=6, WALK=3) | 1 << 8, EPTP.build(MT=6, WALK=3) | 1 << 45])
def test_eptp_values_vm_entry_refuses(value: int) -> None:
    with pytest.raises(InvalidArgument, match="EPTP"):
        EptRules(value, EptOptions(maxphyaddr=40))


def test_ept_a_d_updates_are_reported_only_when_eptp_enables_them() -> None:
    n = ept()
    raw = n.pt.lookup(GPA).raw
    on, off = EptRules(eptp(n.pt.root_paddr, ad=True)), EptRules(eptp(n.pt.root_paddr))
    region, leaf = on.regime.single, n.pt.fmt.depth_count - 1
    assert on.written(region, leaf, raw, True, Access.READ) == raw | A_EPT
    assert off.written(region, leaf, raw, True, Access.WRITE) == raw
    assert on.written(region, 0, raw, False, Access.WRITE) == raw | A_EPT                # D in pages only
    assert on.written(region, leaf, raw, True, Access.WRITE) == raw | A_EPT | D_EPT


# ---------------------------------------------------------------------------------------------- NPT alone


def test_nested_entries_are_user_and_every_nested_access_is_a_user_access() -> None:
    n = Nested(NPT4)
    raw = n.pt.lookup(GPA).raw
    assert raw & US and n.pt.lookup(GPA, 0).raw & US                  # U/S=1 at every level
    assert n.pt.query(GPA)[1] == RWX                                   # USER is no flag of its own
    w = Walker(n.mem, NptRules(n.pt.root_paddr))
    assert w.translate(GPA, WRITE, SUP).ok
    n.poke(GPA, 1, clear=US)                                           # a supervisor PDPTE: faults
    t = w.translate(GPA + 8, READ, SUP)
    assert (t.fault, t.level) == (NESTED_PAGE_FAULT, 1)                # found at the page
    assert t.syndrome == {"exitinfo1": 0x5 | EXITINFO1_FINAL, "exitinfo2": GPA + 8}       # P, U


def test_nested_paging_refuses_supervisor_only_controls() -> None:
    with pytest.raises(InvalidArgument, match="user access"):
        NptRules(0x10_0000, X86Options(smep=True))


# ------------------------------------------------------------------------------------------- two stages


class Guest:
    """A guest 4-level table (from guest-physical 8 MiB up, which the nested tables map 1:1) mapping VA
    0x4020_3000 to GPA `GPA` with `flags`; walked through `nested` (EPT or NPT)."""

    VA = 0x4020_3000

    def __init__(self, nested: Nested, flags: F = F.READ | F.WRITE | F.EXECUTE | F.USER) -> None:
        self.n = nested
        self.pt = PageTable(PAGING4, nested.mem, FrameAllocator(nested.mem, 8 * MiB, 8 * MiB))
        self.pt.map(self.VA, GPA, 4096, flags)

    def table_gpa(self, depth: int) -> int:
        """The guest-physical address of the guest entry at `depth` on VA's path."""
        return self.pt.lookup(self.VA, depth).pa

    def walker(self, stage2: EptRules | NptRules, **options: bool | int) -> Walker:
        rules = X86Rules(self.pt.root_paddr, X86Options(**options))  # type: ignore[arg-type]
        return Walker(self.n.mem, rules, stage2=Walker(self.n.mem, stage2))

    def set_accessed(self) -> None:
        """A=1 in every guest entry and D=1 in the page: the guest walk needs no entry update."""
        for depth in range(4):
            slot = self.pt.lookup(self.VA, depth)
            self.n.mem.write_u64(slot.pa, slot.raw | A | (D if depth == 3 else 0))


def test_two_stage_ept_walk_translates_and_faults_on_the_final_address() -> None:
    n = ept(F.READ | F.WRITE)
    g = Guest(n)
    w = g.walker(EptRules(eptp(n.pt.root_paddr)))
    t = w.translate(g.VA + 0x18, READ, USER)
    assert (t.ok, t.pa, t.gpa, t.stage) == (True, GPA + 0x18, GPA + 0x18, 1)
    t = w.translate(g.VA + 0x18, FETCH, USER)                          # the final GPA is not executable
    assert (t.fault, t.stage, t.implicit) == (EPT_VIOLATION, 2, False)
    assert t.syndrome == {"error_code": 0, "cr2": 0, "gpa": GPA + 0x18, "guest_linear": g.VA + 0x18,
                          "exit_qualification": QUAL_FETCH | QUAL_READABLE | QUAL_WRITABLE | QUAL_LINEAR_VALID
                          | QUAL_FINAL}
    t = w.translate(0x5000_0000, READ, SUP)                           # a guest #PF: nothing mapped there
    assert (t.fault, t.stage) == (PAGE_FAULT, 1)
    assert t.syndrome["cr2"] == 0x5000_0000 and t.syndrome["exit_qualification"] == 0


@pytest.mark.parametrize("depth", [0, 1, 2, 3])
def test_ept_violation_on_a_guest_paging_structure_read(depth: int) -> None:
    n = ept()
    g = Guest(n)
    entry = g.table_gpa(depth)
    n.poke(entry, 3, clear=R | W | X)                                  # the guest table page: not present
    t = g.walker(EptRules(eptp(n.pt.root_paddr))).translate(g.VA, READ, USER)
    assert (t.fault, t.stage, t.implicit, t.gpa) == (EPT_VIOLATION, 2, True, entry)
    assert t.syndrome["exit_qualification"] == QUAL_READ | QUAL_LINEAR_VALID       # bit 8 = 0: a table access
    assert t.syndrome["gpa"] == entry and t.syndrome["guest_linear"] == g.VA


def test_ept_a_d_makes_guest_paging_structure_accesses_writes() -> None:
    n = ept()
    g = Guest(n)
    g.set_accessed()
    page = g.table_gpa(2)
    n.poke(page, 3, clear=W)                                           # the guest PD's page: read-only
    assert g.walker(EptRules(eptp(n.pt.root_paddr))).translate(g.VA, READ).ok
    t = g.walker(EptRules(eptp(n.pt.root_paddr, ad=True))).translate(g.VA, READ)
    assert (t.fault, t.implicit, t.gpa) == (EPT_VIOLATION, True, page)
    assert t.syndrome["exit_qualification"] == QUAL_READ | QUAL_WRITE | QUAL_READABLE | 32 | QUAL_LINEAR_VALID


def test_guest_a_d_updates_go_through_ept_as_writes() -> None:
    n = ept()
    g = Guest(n)
    page = g.table_gpa(1)
    n.poke(page, 3, clear=W)                                           # the guest PDPT's page: read-only
    rules = EptRules(eptp(n.pt.root_paddr))
    t = g.walker(rules).translate(g.VA, READ)                          # its entry has A=0: the CPU must write it
    assert (t.fault, t.implicit, t.gpa) == (EPT_VIOLATION, True, page)
    assert t.syndrome["exit_qualification"] == QUAL_WRITE | QUAL_READABLE | 32 | QUAL_LINEAR_VALID
    g.set_accessed()
    assert g.walker(rules).translate(g.VA, READ).ok


def test_ept_memory_type_combines_with_the_guest_pat_type() -> None:
    n = ept()
    g = Guest(n, F.READ)                                               # guest PAT index 0: WB
    rules = EptRules(eptp(n.pt.root_paddr))
    leaf = g.pt.lookup(g.VA)

    def memtype(guest_bits: int) -> MemoryType:
        n.mem.write_u64(leaf.pa, leaf.raw | guest_bits)
        return g.walker(rules).translate(g.VA).memtype

    assert memtype(0) == MemoryType.WB
    assert memtype(PCD | PWT) == MemoryType.UC                         # UC (PAT index 3) with WB (EPT)
    n.poke(GPA, 3, 1 << MT_SHIFT, 7 << MT_SHIFT)                       # EPT: WC
    assert memtype(0) == MemoryType.WC                                 # WB with WC: WC
    assert memtype(PCD) == MemoryType.WC                               # UC- (index 2) with WC: WC
    assert memtype(PCD | PWT) == MemoryType.UC
    assert memtype(PWT) == MemoryType.UC                               # WT (index 1) with WC: UC
    n.poke(GPA, 3, IPAT)                                               # ignore PAT: the EPT type alone
    assert memtype(PCD | PWT) == MemoryType.WC


def test_mode_based_execute_control_asks_whether_the_linear_address_is_a_user_one() -> None:
    n = ept(mbec=True)
    n.pt.protect(GPA, F.READ | F.WRITE | F.EXECUTE | F.USER)           # the page: user-executable only
    rules = EptRules(eptp(n.pt.root_paddr), EptOptions(mbec=True))
    g = Guest(n)
    supervisor_va = g.VA + 0x1000
    g.pt.map(supervisor_va, GPA, 4096, F.READ | F.EXECUTE)            # U/S=0: a supervisor-mode address
    assert g.walker(rules).translate(g.VA, FETCH, USER).ok
    assert g.walker(rules).translate(g.VA, FETCH, SUP).ok             # CPL 0 fetching a user-mode address
    t = g.walker(rules).translate(supervisor_va, FETCH, SUP)
    assert t.fault == EPT_VIOLATION and t.syndrome["exit_qualification"] & QUAL_USER_EXECUTABLE
    assert not t.syndrome["exit_qualification"] & 32


def test_two_stage_npt_walk_guest_table_accesses_are_user_writes() -> None:
    n = Nested(NPT4)
    g = Guest(n)
    g.set_accessed()
    rules = NptRules(n.pt.root_paddr)
    w = g.walker(rules)
    assert w.translate(g.VA, READ, SUP).pa == GPA
    page = g.table_gpa(3)
    n.poke(page, 3, clear=RW)                                          # the guest PT's page: read-only
    t = w.translate(g.VA + 8, READ, SUP)
    assert (t.fault, t.stage, t.implicit, t.gpa) == (NESTED_PAGE_FAULT, 2, True, page)
    assert t.syndrome == {"error_code": 0, "cr2": 0, "exitinfo1": 0x7 | EXITINFO1_TABLE, "exitinfo2": page}
    n2 = Nested(NPT4, F.READ | F.EXECUTE)                              # the final GPA: read-only
    g2 = Guest(n2)
    g2.set_accessed()
    for depth in range(4):                                             # guest tables stay writable
        n2.pt.protect(g2.table_gpa(depth) & ~0xFFF, RWX)
    t = g2.walker(NptRules(n2.pt.root_paddr)).translate(g2.VA, WRITE, USER)
    assert (t.fault, t.implicit) == (NESTED_PAGE_FAULT, False)
    assert t.syndrome["exitinfo1"] == 0x7 | EXITINFO1_FINAL and t.syndrome["exitinfo2"] == GPA
    assert t.syndrome["error_code"] == 0


@pytest.mark.parametrize("nested", ["ept", "ept-ad", "npt"])
def test_two_stage_bulk_and_one_lane_walks_agree(nested: str) -> None:
    n = Nested(NPT4) if nested == "npt" else ept()
    g = Guest(n)
    rng = np.random.default_rng(5)
    for _ in range(40):                                                # scattered guest pages and holes
        va = int(rng.integers(0, 1 << 30)) & ~0xFFF
        gpa = int(rng.integers(0, GUEST_RAM // 2)) & ~0xFFF
        if g.pt.walk(va, va + 1).va.size == 0:
            g.pt.map(va, gpa, 4096, F.READ | (F.WRITE if va & 0x1000 else F.READ) | F.USER)
    for gpa in rng.integers(0, GUEST_RAM // 4096, 300).tolist():     # nested holes and read-only pages
        n.poke(gpa * 4096, 3, clear=(R | W | X) if nested != "npt" and gpa % 3 == 0 else (W if nested != "npt"
                                                                                           else RW))
    stage2 = NptRules(n.pt.root_paddr) if nested == "npt" else EptRules(eptp(n.pt.root_paddr, nested == "ept-ad"))
    w = g.walker(stage2)
    vas = np.concatenate([g.pt.walk().va, rng.integers(0, 1 << 31, 200, dtype=np.uint64) & ~np.uint64(7)])
    for access in Access:
        for priv in Privilege:
            assert_lanes_agree(w, w.translate_many(vas, access, priv), access, priv)
    assert_listing_agrees(w, w, w.mappings())


# -------------------------------------------------------------------------------------- GuestAddrSpace


@pytest.mark.parametrize("fmt", [EPT4, NPT4], ids=["ept", "npt"])
def test_guest_address_space_over_nested_tables(fmt: PagingFormat) -> None:
    frames = FrameAllocator(PhysMem([(0, 4 * MiB)]), 2 * MiB, 2 * MiB)
    g = GuestAddrSpace.new_empty(fmt, 0x10000, 0x10000, frames)
    g.map_linear(0x18000, 0x10000, 0x8000, F.READ | F.WRITE)
    assert g.translate(0x18123) == 0x10123
    g.map_alloc(0x10000, 0x4000, F.READ | F.WRITE, False)              # lazy
    assert g.translate(0x10000) is None
    assert g.handle_page_fault(0x10010, F.WRITE) and g.translate(0x10000) is not None
    rules = EptRules(eptp(g.page_table_root)) if fmt is EPT4 else NptRules(g.page_table_root)
    t = Walker(frames.mem, rules).translate(0x18123, "write")
    assert t.pa == 0x10123
    assert not Walker(frames.mem, rules).translate(0x18123, "execute").ok


# ------------------------------------------------------------------------------------------ A/D updates


def test_entry_updates_set_accessed_in_every_entry_and_dirty_in_the_page() -> None:
    n = Nested(NPT4)                                                   # any x86 table: fresh entries, A=D=0
    g = Guest(n)
    w = Walker(n.mem, X86Rules(g.pt.root_paddr))
    slots = [g.pt.lookup(g.VA, depth) for depth in range(4)]
    reads = w.entry_updates(g.VA, READ)
    assert [(u.pa, u.old, u.new) for u in reads] == [(s.pa, s.raw, s.raw | A) for s in slots]
    assert [u.new for u in w.entry_updates(g.VA, WRITE)][-1] == slots[3].raw | A | D
    assert n.mem.read_u64(slots[3].pa) == slots[3].raw                 # reported, not written
    w.entry_updates(g.VA, READ, apply=True)
    assert w.entry_updates(g.VA, READ) == ()
    assert [(u.pa, u.new) for u in w.entry_updates(g.VA, WRITE)] == [(slots[3].pa, slots[3].raw | A | D)]
    assert w.entry_updates(0x5000_0000, READ) == ()                    # a fault: none reported


def test_entry_updates_of_two_stages_with_ept_a_d() -> None:
    n = ept()
    g = Guest(n)
    g.set_accessed()                                                   # the guest entries need no update
    w = g.walker(EptRules(eptp(n.pt.root_paddr, ad=True)))
    updates = w.entry_updates(g.VA, READ)
    # every EPT entry used gets A; the EPT pages holding guest tables also D (their accesses are writes);
    # the final GPA's EPT page is read: A only
    pages = {n.pt.lookup(g.table_gpa(d) & ~0xFFF, 3).pa for d in range(4)}
    final = n.pt.lookup(GPA, 3).pa
    got = {u.pa: u.new ^ u.old for u in updates}
    assert all(got[pa] == A_EPT | D_EPT for pa in pages) and got[final] == A_EPT
    assert len(updates) == len(got)                                    # one write per entry
    w.entry_updates(g.VA, WRITE, apply=True)
    assert w.entry_updates(g.VA, WRITE) == ()


def test_a_guest_physical_address_beyond_4_level_ept_is_a_violation() -> None:
    n = ept()
    t = ept_walker(n).translate(1 << 48, WRITE)
    assert (t.reason, t.fault) == (Reason.NON_CANONICAL, EPT_VIOLATION)
    assert t.syndrome == {"exit_qualification": QUAL_WRITE, "gpa": 1 << 48, "guest_linear": 0}
