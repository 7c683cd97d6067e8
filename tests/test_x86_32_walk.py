"""x86 32-bit paging (Intel SDM Vol. 3A, section 4.3) through PageTable and the walker: the formats of CR4.PSE=0,
CR4.PSE=1 and PSE-36, exact bytes of the 4-byte entries, a walker case per rule with its #PF error code and CR2
(SDM 4.6, 4.7: no XD, so I/D only with CR4.SMEP; the reserved bits of a 4 MiB PDE), the A/D updates (SDM 4.8),
the registers that select the mode, and hypothesis round trips (4 KiB pages, 4 MiB pages, PSE-36 above 4 GiB)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pagetable.arch.x86_64 import (
    PAGING32,
    PAGING32_PSE,
    PAGING32_PSE36,
    PDE_4M,
    SPEC,
    X86Codec32,
    X86Options,
    X86Rules,
    paging_mode,
    rules_from_registers,
)
from pagetable.arch.x86_64.walk import GENERAL_PROTECTION, NO_MEMORY, PAGE_FAULT
from pagetable.errors import InvalidAddress, InvalidArgument, InvalidArgumentType, InvalidFlags, NotAligned
from pagetable.flags import MappingFlags as F
from pagetable.format import Extension, PagingFormat
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.translation import Access, Privilege
from pagetable.walker import Reason, Walker

MiB, GiB = 1 << 20, 1 << 30
HIGH = 0x3_4000_0000                          # 4 MiB of RAM above 4 GiB: a PSE-36 page (PA bits 33:32 = 3)
RWX, RX = F.READ | F.WRITE | F.EXECUTE, F.READ | F.EXECUTE
P, RW, US, PS, A, D = 1, 2, 4, 0x80, 0x20, 0x40


def _space(fmt: PagingFormat = PAGING32_PSE36) -> tuple[PhysMem, PageTable]:
    mem = PhysMem([(0, 16 * MiB), (HIGH, 4 * MiB)])
    return mem, PageTable(fmt, mem, FrameAllocator(mem, 8 * MiB, 8 * MiB))


def test_the_formats() -> None:
    """Two levels of 10 bits over 32-bit linear addresses (zero-extended), 4-byte entries; a PDE maps 4 MiB
    only with CR4.PSE=1; PAs of 40 bits with PSE-36, else 32."""
    for fmt, leaf, pa_bits in ((PAGING32, False, 32), (PAGING32_PSE, True, 32), (PAGING32_PSE36, True, 40)):
        pgd, pte = fmt.levels
        assert (pgd.name, pgd.arch_level, pgd.index_lsb, pgd.index_bits, pgd.leaf) == ("PGD", 2, 22, 10, leaf)
        assert (pte.name, pte.arch_level, pte.index_lsb, pte.index_bits, pte.leaf) == ("PTE", 1, 12, 10, True)
        assert (fmt.va_bits, fmt.pa_bits, fmt.entry_size, fmt.extension, fmt.root_size) == (
            32, pa_bits, 4, Extension.ZERO, 4096)
    assert PAGING32_PSE36.codec == X86Codec32(pse=True, maxphyaddr=40)
    assert PAGING32_PSE.codec == X86Codec32(pse=True, maxphyaddr=32)
    assert [s.label() for s in PAGING32_PSE.page_sizes()] == ["4K", "4M"]
    assert [s.label() for s in PAGING32.page_sizes()] == ["4K"]


def test_exact_bytes() -> None:
    """A user 4 KiB page: PDE P|R/W|U/S with the table's address, PTE the page's; a 4 MiB page at PA
    0x3_4000_0000: PA bits 31:22 in place, 39:32 (= 3) in PDE bits 20:13, PS; the neighbours untouched."""
    mem, pt = _space()
    pt.map(0x0040_1000, 0x0012_3000, 4096, RWX | F.USER)
    pt.map(0x8000_0000, HIGH, 4 * MiB, RWX)
    e, root = mem.entries(4), pt.root_paddr
    table = e.read(root + 4 * 1) & 0xFFFF_F000
    assert e.read(root + 4 * 1) == table | P | RW | US
    assert mem.read(table + 4, 4) == bytes.fromhex("07301200")               # 0x0012_3007, little-endian
    assert mem.read(root + 4 * 0x200, 4) == (0x4000_0000 | 3 << 13 | PS | RW | P).to_bytes(4, "little")
    assert e.read(root + 4 * 0x200) == 0x4000_6083
    assert e.read(root) == e.read(root + 4 * 2) == e.read(root + 4 * 0x201) == e.read(table) == 0
    assert pt.query(0x8012_3456) == (HIGH + 0x12_3456, RWX, 4 * MiB)
    assert pt.walk().slot.tolist() == [table + 4, root + 4 * 0x200]


def test_refusals() -> None:
    _, pt = _space()
    with pytest.raises(InvalidFlags, match="no XD bit"):
        pt.map(0x1000, 0x1000, 4096, F.READ | F.WRITE)
    with pytest.raises(InvalidAddress, match="32-bit physical address"):
        pt.map(0x1000, 1 << 32, 4096, RWX)
    with pytest.raises(InvalidAddress):
        pt.map(0x4000_0000, 1 << 40, 4 * MiB, RWX)                             # beyond PSE-36's 40 bits
    with pytest.raises(InvalidAddress, match=r"wider than 32-bit paging \(CR4.PSE=1\)'s 32-bit physical"):
        _space(PAGING32_PSE)[1].map(0x4000_0000, HIGH, 4 * MiB, RWX)          # no PSE-36
    with pytest.raises(NotAligned, match="32-bit paging has no 0x400000-byte pages"):
        _space(PAGING32)[1].map(0x4000_0000, 0, 4 * MiB, RWX)                 # CR4.PSE=0: no 4 MiB pages
    with pytest.raises(InvalidAddress):
        pt.map(1 << 32, 0x1000, 4096, RWX)                                    # a linear address above 32 bits
    pt.map(0x8000_0000, HIGH, 4 * MiB, RWX)
    with pytest.raises(InvalidAddress, match="cannot be split"):
        pt.unmap_region(0x8000_0000, 4096)                                    # PTEs hold 32-bit PAs


def _scene() -> tuple[PhysMem, PageTable, dict[str, int]]:
    """Pages of every kind, and raw PDEs for the reserved-bit rules; the VA of each."""
    mem, pt = _space()
    pt.map(0x1000, 0x10_1000, 4096, RWX)                                      # kernel RW
    pt.map(0x2000, 0x10_2000, 4096, RX | F.USER)                              # user RO
    pt.map(0x3000, 0x10_3000, 4096, RWX | F.USER)                             # user RW
    pt.map(0x40_0000, 0x40_0000, 4 * MiB, RWX)                                # a 4 MiB kernel page
    pt.map(0x80_0000, HIGH, 4 * MiB, RWX | F.USER)                            # PSE-36: PA 0x3_4000_0000
    e, root = mem.entries(4), pt.root_paddr
    e.write(root + 4 * 3, 0x40_0000 | 1 << 21 | PS | RW | P)                  # 0xC0_0000: bit 21 set
    e.write(root + 4 * 4, 0x40_0000 | 1 << 17 | PS | RW | P)                  # 0x100_0000: PA bit 36
    e.write(root + 4 * 5, 0x40_0000 | 1 << 20 | PS | RW | P)                  # 0x140_0000: PA bit 39
    e.write(root + 4 * 6, 0xF000_0000 | RW | P)                               # 0x180_0000: table outside RAM
    return mem, pt, {"kernel": 0x1008, "user-ro": 0x2010, "user-rw": 0x3018, "big": 0x41_2345, "high": 0x81_2344,
                     "bit21": 0xC0_0000, "pa36": 0x100_0000, "pa39": 0x140_0000, "no-table": 0x180_0000,
                     "absent": 0x5000}


def _rules(pt: PageTable, **options: object) -> Walker:
    """32-bit paging with CR4.PSE, PSE-36 and MAXPHYADDR 36 unless `options` say otherwise; CR3 with PWT, PCD."""
    o = X86Options(**{"paging": "32-bit", "pse": True, "maxphyaddr": 36, **options})  # type: ignore[arg-type]
    return Walker(pt.mem, X86Rules(pt.root_paddr | 0x18, o))


# label, VA key, access, privilege, options, reason, PA or #PF error code (P 1, W/R 2, U/S 4, RSVD 8, I/D 16)
CASES: list[tuple[str, str, str, str, dict[str, object], Reason, int]] = [
    ("kernel-write", "kernel", "write", "supervisor", {}, Reason.OK, 0x10_1008),
    ("kernel-user-read", "kernel", "read", "user", {}, Reason.PERMISSION, 5),
    ("user-ro-read", "user-ro", "read", "user", {}, Reason.OK, 0x10_2010),
    ("user-ro-write", "user-ro", "write", "user", {}, Reason.PERMISSION, 7),
    ("wp-supervisor-write", "user-ro", "write", "supervisor", {}, Reason.PERMISSION, 3),
    ("no-wp-supervisor-write", "user-ro", "write", "supervisor", {"wp": False}, Reason.OK, 0x10_2010),
    ("no-wp-user-write", "user-ro", "write", "user", {"wp": False}, Reason.PERMISSION, 7),
    ("user-fetch-kernel", "kernel", "execute", "user", {}, Reason.PERMISSION, 5),     # no I/D: no NXE here
    ("user-fetch", "user-rw", "execute", "user", {}, Reason.OK, 0x10_3018),           # no XD bit
    ("supervisor-fetch-user", "user-rw", "execute", "supervisor", {}, Reason.OK, 0x10_3018),
    ("smep", "user-rw", "execute", "supervisor", {"smep": True}, Reason.PERMISSION, 0x11),
    ("smep-user-fetch-kernel", "kernel", "execute", "user", {"smep": True}, Reason.PERMISSION, 0x15),
    ("smap-read", "user-rw", "read", "supervisor", {"smap": True}, Reason.PERMISSION, 1),
    ("smap-write", "user-rw", "write", "supervisor", {"smap": True}, Reason.PERMISSION, 3),
    ("smap-ac", "user-rw", "write", "supervisor", {"smap": True, "ac": True}, Reason.OK, 0x10_3018),
    ("smap-ac-implicit", "user-rw", "read", "supervisor", {"smap": True, "ac": True, "implicit": True},
     Reason.PERMISSION, 1),
    ("4m", "big", "write", "supervisor", {}, Reason.OK, 0x41_2345),
    ("4m-user", "big", "read", "user", {}, Reason.PERMISSION, 5),
    ("pse36", "high", "write", "user", {}, Reason.OK, HIGH + 0x1_2344),
    ("absent-read", "absent", "read", "supervisor", {}, Reason.INVALID, 0),
    ("absent-user-write", "absent", "write", "user", {}, Reason.INVALID, 6),
    ("absent-fetch-smep", "absent", "execute", "supervisor", {"smep": True}, Reason.INVALID, 0x10),
    ("rsvd-bit21", "bit21", "read", "supervisor", {}, Reason.RESERVED, 9),
    ("rsvd-pa36", "pa36", "write", "user", {}, Reason.RESERVED, 0xF),
    ("pa36-maxphyaddr40", "pa36", "read", "supervisor", {"maxphyaddr": 40}, Reason.PA_OUTSIDE_MEMORY, 0),
    ("rsvd-pa39-maxphyaddr39", "pa39", "read", "supervisor", {"maxphyaddr": 39}, Reason.RESERVED, 9),
    ("pa39-maxphyaddr52", "pa39", "read", "supervisor", {"maxphyaddr": 52}, Reason.PA_OUTSIDE_MEMORY, 0),
    ("no-pse36", "high", "read", "supervisor", {"pse36": False}, Reason.RESERVED, 9),
    ("table-outside-ram", "no-table", "read", "supervisor", {}, Reason.TABLE_OUTSIDE_MEMORY, 0),
]


@pytest.mark.parametrize(("label", "key", "access", "privilege", "options", "reason", "expect"), CASES,
                         ids=[c[0] for c in CASES])
def test_a_walker_case_per_rule(label: str, key: str, access: str, privilege: str, options: dict[str, object],
                                reason: Reason, expect: int) -> None:
    """The walker's reason, PA, fault kind and syndrome (#PF: error code and CR2 = the VA; no RAM: none),
    one lane and a column of lanes alike."""
    _, pt, vas = _scene()
    w = _rules(pt, **options)
    va = vas[key]
    t = w.translate(va, access, privilege)
    assert t.reason == reason, label
    if reason == Reason.OK:
        assert t.pa == expect
    elif reason in (Reason.PA_OUTSIDE_MEMORY, Reason.TABLE_OUTSIDE_MEMORY):
        assert t.fault == NO_MEMORY and dict(t.syndrome) == {"error_code": 0, "cr2": 0}
    else:
        assert t.fault == PAGE_FAULT and dict(t.syndrome) == {"error_code": expect, "cr2": va}
    many = w.translate_many(np.array([va, va], dtype=np.uint64), access, privilege)
    assert [Reason(int(r)) for r in many.reason] == [reason, reason]


def test_cr4_pse_off_makes_every_pde_a_table() -> None:
    """With CR4.PSE=0 the PDE's PS is ignored: the 4 MiB PDE's bits 31:12 name a page table (here the first
    4 KiB of RAM at 0x40_0000, all zero: not present), and bit 21 is an address bit, not reserved."""
    mem, pt, vas = _scene()
    w = Walker(mem, X86Rules(pt.root_paddr, X86Options(paging="32-bit")))
    assert w.rules.regime.regions[0].fmt.levels[0].leaf is False
    t = w.translate(vas["big"], "read")
    assert (t.reason, t.level) == (Reason.INVALID, 1)
    mem.entries(4).write(0x40_0000 + 4 * 0x12, 0x77_7000 | RW | P)          # PTE 0x12 of that "table"
    assert w.translate(vas["big"], "read").pa == 0x77_7345
    assert w.translate(vas["bit21"], "read").reason == Reason.INVALID   # bit 21 addresses: 0x60_0000


def test_a_linear_address_above_32_bits_is_gp() -> None:
    _, pt, _ = _scene()
    t = _rules(pt).translate(1 << 32 | 0x1008, "read")
    assert (t.reason, t.fault) == (Reason.NON_CANONICAL, GENERAL_PROTECTION)
    assert dict(t.syndrome) == {"error_code": 0, "cr2": 0}


def test_accessed_and_dirty_updates_write_4_bytes() -> None:
    """A in the PDE and the PTE, D in the PTE on a write (SDM 4.8); a 4 MiB page's PDE gets both; the
    bytes beside each are untouched."""
    mem, pt, vas = _scene()
    w = _rules(pt)
    root = pt.root_paddr
    table = mem.entries(4).read(root) & 0xFFFF_F000
    before = mem.read(table, 16)
    updates = w.entry_updates(vas["kernel"], "write", apply=True)
    assert [(u.pa, u.old, u.new) for u in updates] == [(root, table | RW | US | P, table | A | RW | US | P),
                                                       (table + 4, 0x10_1003, 0x10_1063)]
    assert mem.read(table, 16) == before[:4] + bytes.fromhex("63101000") + before[8:]
    (big,) = w.entry_updates(vas["big"], "read", apply=True)
    assert (big.pa, big.old, big.new) == (root + 4, 0x40_0083, 0x40_00A3)
    assert w.entry_updates(vas["absent"], "write") == ()


def test_options_and_codec() -> None:
    with pytest.raises(InvalidArgument, match="protection keys"):
        X86Options(paging="32-bit", pke=True)
    with pytest.raises(InvalidArgument, match="5-level paging"):
        X86Options(paging="32-bit", la57=True)
    with pytest.raises(InvalidArgument, match="PAE and IA-32e paging ignore it"):
        X86Options(pse=True)
    with pytest.raises(InvalidArgument, match="paging mode"):
        X86Options(paging="16-bit")
    assert not X86Options(paging="32-bit", nxe=True).xd and X86Options(nxe=True).xd
    rules = X86Rules(0x1000, X86Options(paging="32-bit", pse=True, maxphyaddr=36), pat=0x0007_0406_0007_0401)
    assert rules.regime.regions[0].fmt.codec == X86Codec32(pat=0x0007_0406_0007_0401, pse=True, maxphyaddr=36)
    assert rules.regime.regions[0].fmt.name == "32-bit paging (PSE-36)"
    assert X86Rules(0, X86Options(paging="32-bit", pse=True, pse36=False)).regime.regions[0].fmt.pa_bits == 32
    with pytest.raises(InvalidArgumentType, match="32-bit paging's entries have no X86Codec"):
        X86Rules(0, X86Options(paging="32-bit"), codec=SPEC)
    with pytest.raises(InvalidArgument, match="CR3 \\(32-bit paging\\)"):
        X86Rules(1 << 32, X86Options(paging="32-bit"))


def test_the_registers_select_32_bit_paging() -> None:
    """CR0.PG=1 with CR4.PAE=0: 32-bit paging, CR4.PSE for 4 MiB pages, CR3 as Table 4-3 (PWT, PCD, bits
    31:12); EFER.NXE and CR4.PKE change nothing there; LME=1 without PAE cannot be (#GP)."""
    rules = rules_from_registers(cr0=0x8001_0033, cr3=0x0123_4018, cr4=0x0040_0090, efer=0x800)
    assert rules.options == X86Options(paging="32-bit", pse=True, wp=True, nxe=True)
    assert rules.regime.regions[0].root == 0x0123_4000
    assert rules.regime.regions[0].fmt.levels[0].leaf
    plain = rules_from_registers(0x8000_0001, 0x5000, 0x0030_0000, 0, maxphyaddr=36, pse36=False)
    assert plain.options == X86Options(paging="32-bit", wp=False, nxe=False, smep=True, smap=True, maxphyaddr=36,
                                       pse36=False)
    assert rules_from_registers(0x8000_0001, 0, 0x30, 0x500).options.paging == "ia32e"   # PAE + LME
    assert paging_mode(0x8000_0001, 0x10, 0) == "32-bit" and paging_mode(0x8000_0001, 0x20, 0x100) == "ia32e"
    with pytest.raises(InvalidArgument, match=r"IA32_EFER.LME=1 needs CR4.PAE=1"):
        rules_from_registers(0x8000_0001, 0, 0x10, 0x100)
    with pytest.raises(InvalidArgument, match=r"paging is off \(CR0.PG=0\)"):
        rules_from_registers(0x11, 0, 0x10, 0)
    with pytest.raises(InvalidArgument, match=r"CR3 \(32-bit paging\) 0x100000000 does not fit in 32 bits"):
        rules_from_registers(0x8000_0001, 1 << 32, 0x10, 0)


VPN = st.integers(0, (1 << 20) - 1)


@settings(max_examples=60, deadline=None)
@given(vpns=st.lists(VPN, min_size=1, max_size=6, unique=True), pfn=st.integers(0, (1 << 20) - 1),
       flags=st.sampled_from([RX, RWX, RX | F.USER, RWX | F.USER, RWX | F.DEVICE, RX | F.UNCACHED]))
def test_4k_pages_round_trip(vpns: list[int], pfn: int, flags: F) -> None:
    """map, query, the walker and unmap agree for 4 KiB pages anywhere below 4 GiB."""
    mem, pt = _space()
    w = _rules(pt)
    for k, vpn in enumerate(vpns):
        pt.map(vpn << 12, ((pfn + k) % (1 << 20)) << 12, 4096, flags)
    for k, vpn in enumerate(vpns):
        pa = ((pfn + k) % (1 << 20)) << 12
        assert pt.query(vpn << 12 | 0xABC) == (pa | 0xABC, flags, 4096)
        t = w.translate(vpn << 12 | 0xABC, "read", "user" if flags & F.USER else "supervisor")
        assert t.reason == (Reason.OK if mem.contains(pa) else Reason.PA_OUTSIDE_MEMORY)
        assert not t.ok or t.pa == pa | 0xABC
    assert pt.unmap(vpns[0] << 12) == (pfn << 12, flags, 4096)
    assert w.translate(vpns[0] << 12, "read").reason == Reason.INVALID


@settings(max_examples=60, deadline=None)
@given(vpn=st.integers(0, (1 << 10) - 1), pfn=st.integers(0, (1 << 18) - 1), maxphyaddr=st.integers(32, 52),
       flags=st.sampled_from([RX, RWX, RWX | F.USER]))
def test_4m_pages_round_trip_with_pse36(vpn: int, pfn: int, maxphyaddr: int, flags: F) -> None:
    """A 4 MiB page at any 40-bit PA: the PDE holds PA bits 39:32 in 20:13 exactly; the walker finds the PA
    where it fits M = min(MAXPHYADDR, 40) bits, and RSVD where it does not."""
    mem, pt = _space()
    pa = pfn << 22
    pt.map(vpn << 22, pa, 4 * MiB, flags)
    pde = mem.entries(4).read(pt.root_paddr + 4 * vpn)
    assert PDE_4M.get(pde, "ADDR") << 22 | PDE_4M.get(pde, "ADDR_HI") << 32 == pa
    assert pt.query(vpn << 22 | 0x2F_FFFF) == (pa | 0x2F_FFFF, flags, 4 * MiB)
    t = _rules(pt, maxphyaddr=maxphyaddr).translate(vpn << 22 | 0x2F_FFFF, "read")
    if pa >> min(maxphyaddr, 40):
        assert (t.reason, dict(t.syndrome)) == (Reason.RESERVED, {"error_code": 9, "cr2": vpn << 22 | 0x2F_FFFF})
    else:
        assert t.reason == (Reason.OK if mem.contains(pa) else Reason.PA_OUTSIDE_MEMORY)
        assert not t.ok or t.pa == pa | 0x2F_FFFF
    pt.unmap(vpn << 22)
    assert mem.entries(4).read(pt.root_paddr + 4 * vpn) == 0


RULES32 = st.builds(lambda pse, pse36, m, smep, smap, wp: X86Rules(0, X86Options(
    paging="32-bit", pse=pse, pse36=pse36, maxphyaddr=m, smep=smep, smap=smap, wp=wp)),
    st.booleans(), st.booleans(), st.integers(32, 52), st.booleans(), st.booleans(), st.booleans())


@settings(max_examples=200, deadline=None)
@given(RULES32, st.integers(0, 1), st.integers(0, (1 << 32) - 1), st.integers(0, (1 << 32) - 1),
       st.sampled_from(["read", "write", "execute"]), st.sampled_from(["supervisor", "user"]),
       st.integers(0, (1 << 9) - 1))
def test_entries_equal_in_the_judged_bits_get_one_verdict(rules: X86Rules, depth: int, pde: int, noise: int,
                                                          access: str, privilege: str, carry: int) -> None:
    """The one-lane walk's memory of verdicts is sound for 32-bit paging: a 4 MiB PDE's bits 21:13 are judged
    (reserved, or PSE-36 address bits), only bits 31:22 (a PTE's 31:12) are not."""
    region = rules.regime.regions[0]
    judged = rules.judged_bits(region, depth)
    assert judged & 0xFFFF_F000 == (0x003F_F000 if depth == 0 else 0)
    other = pde ^ (noise & ~judged & 0xFFFF_FFFF)
    a, p = Access[access.upper()], Privilege[privilege.upper()]
    assert rules.step(region, depth, pde, a, p, carry) == rules.step(region, depth, other, a, p, carry)
