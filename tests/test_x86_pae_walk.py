"""x86 PAE paging (Intel SDM Vol. 3A, section 4.4) through PageTable and the walker: the format (a 32-byte PDPT
of four PDPTEs with their own codec, 8-byte PDEs and PTEs, 2 MiB pages), exact bytes, the PDPTE registers a MOV
to CR3 loads and the #GP their reserved bits make there (SDM 4.4.1), a walker case per rule with its #PF error
code and CR2 (XD with EFER.NXE, I/D with NXE or SMEP, bits 62:52 and MAXPHYADDR..51 reserved, 2 MiB pages'
bits 20:13), the registers that select PAE paging, and hypothesis round trips."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pagetable.arch.x86_64 import (
    PAE,
    PAGING_PAE,
    PDPT,
    SPEC,
    X86Options,
    X86Rules,
    load_pdptes,
    paging_mode,
    rules_from_registers,
)
from pagetable.arch.x86_64.walk import PAGE_FAULT
from pagetable.errors import InvalidArgument, InvalidArgumentType, InvalidFlags, NotAligned
from pagetable.flags import MappingFlags as F
from pagetable.format import Extension
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.translation import Access, Privilege
from pagetable.walker import Reason, Walker

MiB, GiB = 1 << 20, 1 << 30
RW_, RX, RWX = F.READ | F.WRITE, F.READ | F.EXECUTE, F.READ | F.WRITE | F.EXECUTE
P, RW, US, PS, A, D, XD = 1, 2, 4, 0x80, 0x20, 0x40, 1 << 63


def _space() -> tuple[PhysMem, PageTable]:
    mem = PhysMem([(0, 16 * MiB)])
    return mem, PageTable(PAGING_PAE, mem, FrameAllocator(mem, 8 * MiB, 8 * MiB))


def _walker(pt: PageTable, **options: object) -> Walker:
    """PAE paging (EFER.NXE=1, MAXPHYADDR 36 unless `options` say otherwise), the PDPTEs loaded from the PDPT
    with CR3 (its bits 4:0 from `cr3_low`)."""
    cr3 = pt.root_paddr | int(options.pop("cr3_low", 0))  # type: ignore[call-overload]
    o = X86Options(**{"paging": "pae", "maxphyaddr": 36, **options})  # type: ignore[arg-type]
    return Walker(pt.mem, X86Rules(cr3, o, pdptes=load_pdptes(pt.mem, cr3)))


def test_the_format() -> None:
    assert [(lv.name, lv.arch_level, lv.index_lsb, lv.index_bits, lv.leaf) for lv in PAGING_PAE.levels] == [
        ("PGD", 3, 30, 2, False), ("PMD", 2, 21, 9, True), ("PTE", 1, 12, 9, True)]
    assert (PAGING_PAE.va_bits, PAGING_PAE.pa_bits, PAGING_PAE.entry_size, PAGING_PAE.extension) == (
        32, 52, 8, Extension.ZERO)
    assert PAGING_PAE.root_size == 32 and PAGING_PAE.table_size(1) == 4096
    assert PAGING_PAE.codecs == (PDPT, PAE, PAE)
    assert [s.label() for s in PAGING_PAE.page_sizes()] == ["4K", "2M"]


def test_exact_bytes() -> None:
    """A PDPTE is P | the page directory's address (no R/W, U/S, XD: they are reserved there); the PDE below
    gets the rights its table needs; a kernel RW 4 KiB page has XD; a 2 MiB page above 4 GiB keeps bit 12
    for PAT."""
    mem, pt = _space()
    pt.map(0xC000_1000, 0x12_3000, 4096, RW_)
    pt.map(0x4020_0000, 0xF_0000_0000 | 0x20_0000, 2 * MiB, RX | F.USER)
    e, root = mem.entries(8), pt.root_paddr
    assert root % 32 == 0 and root < 1 << 32
    pd3, pd1 = e.read(root + 24) & ~0xFFF, e.read(root + 8) & ~0xFFF
    assert e.read(root + 24) == pd3 | P and e.read(root + 8) == pd1 | P
    assert e.read(root) == e.read(root + 16) == 0
    table = e.read(pd3) & 0xF_FFFF_FFFF_F000
    assert e.read(pd3) == XD | table | RW | P                                 # fitted: RW, not executable
    assert mem.read(table + 8, 8) == (XD | 0x12_3000 | RW | P).to_bytes(8, "little")
    assert e.read(pd1 + 8 * 1) == 0xF_0020_0000 | PS | US | P                # 2 MiB, user, executable
    assert pt.query(0x4021_2345) == (0xF_0021_2345, RX | F.USER, 2 * MiB)
    with pytest.raises(NotAligned, match=r"PAE paging has no 0x40000000-byte pages \(it maps 4K, 2M\)"):
        pt.map(0, 0, GiB, RWX)
    with pytest.raises(InvalidFlags, match="PAE paging has no 1 GiB pages"):
        PDPT.new_page(0, RWX, True)


def _scene() -> tuple[PhysMem, PageTable, dict[str, int]]:
    mem, pt = _space()
    pt.map(0x1000, 0x10_1000, 4096, RW_)                                      # kernel RW, XD
    pt.map(0x2000, 0x10_2000, 4096, RX | F.USER)                              # user RO, executable
    pt.map(0x3000, 0x10_3000, 4096, RWX | F.USER)                             # user RWX
    pt.map(0x40_0000, 0x40_0000, 2 * MiB, RWX)                                # a 2 MiB kernel page
    e = mem.entries(8)
    pd = e.read(pt.root_paddr) & ~0xFFF
    table = e.read(pd) & 0xF_FFFF_FFFF_F000
    e.write(table + 8 * 4, 1 << 52 | 0x10_4000 | RW | P)                      # 0x4000: bit 52 (62:52 reserved)
    e.write(table + 8 * 5, 1 << 36 | 0x10_5000 | RW | P)                      # 0x5000: PA bit 36 >= MAXPHYADDR
    e.write(pd + 8 * 3, 0x60_0000 | 1 << 13 | PS | RW | P)                     # 0x60_0000: 2 MiB with bit 13
    return mem, pt, {"kernel": 0x1008, "user-ro": 0x2010, "user-rwx": 0x3018, "big": 0x41_2345, "bit52": 0x4000,
                     "pa36": 0x5000, "bit13": 0x60_0000, "absent": 0x6000, "no-pdpte": 0x4000_0000}


# label, VA key, access, privilege, options, reason, PA or #PF error code (P 1, W/R 2, U/S 4, RSVD 8, I/D 16)
CASES: list[tuple[str, str, str, str, dict[str, object], Reason, int]] = [
    ("kernel-write", "kernel", "write", "supervisor", {}, Reason.OK, 0x10_1008),
    ("kernel-user-read", "kernel", "read", "user", {}, Reason.PERMISSION, 5),
    ("xd-fetch", "kernel", "execute", "supervisor", {}, Reason.PERMISSION, 0x11),
    ("xd-reserved-without-nxe", "kernel", "read", "supervisor", {"nxe": False}, Reason.RESERVED, 9),
    ("user-fetch", "user-ro", "execute", "user", {}, Reason.OK, 0x10_2010),
    ("user-ro-write", "user-ro", "write", "user", {}, Reason.PERMISSION, 7),
    ("wp", "user-ro", "write", "supervisor", {}, Reason.PERMISSION, 3),
    ("no-wp", "user-ro", "write", "supervisor", {"wp": False}, Reason.OK, 0x10_2010),
    ("smep", "user-rwx", "execute", "supervisor", {"smep": True}, Reason.PERMISSION, 0x11),
    ("smap", "user-rwx", "read", "supervisor", {"smap": True}, Reason.PERMISSION, 1),
    ("smap-ac", "user-rwx", "read", "supervisor", {"smap": True, "ac": True}, Reason.OK, 0x10_3018),
    ("2m", "big", "write", "supervisor", {}, Reason.OK, 0x41_2345),
    ("rsvd-62-52", "bit52", "read", "supervisor", {}, Reason.RESERVED, 9),
    ("rsvd-62-52-maxphyaddr52", "bit52", "write", "user", {"maxphyaddr": 52}, Reason.RESERVED, 0xF),
    ("rsvd-maxphyaddr", "pa36", "read", "supervisor", {}, Reason.RESERVED, 9),
    ("pa36-maxphyaddr40", "pa36", "read", "supervisor", {"maxphyaddr": 40}, Reason.PA_OUTSIDE_MEMORY, 0),
    ("rsvd-2m-bit13", "bit13", "read", "supervisor", {}, Reason.RESERVED, 9),
    ("absent", "absent", "write", "user", {}, Reason.INVALID, 6),
    ("absent-fetch-nxe", "absent", "execute", "supervisor", {}, Reason.INVALID, 0x10),     # I/D with NXE
    ("absent-fetch-no-nxe", "absent", "execute", "supervisor", {"nxe": False}, Reason.INVALID, 0),
    ("pdpte-not-present", "no-pdpte", "read", "supervisor", {}, Reason.INVALID, 0),
    ("pdpte-not-present-user-write", "no-pdpte", "write", "user", {}, Reason.INVALID, 6),
]


@pytest.mark.parametrize(("label", "key", "access", "privilege", "options", "reason", "expect"), CASES,
                         ids=[c[0] for c in CASES])
def test_a_walker_case_per_rule(label: str, key: str, access: str, privilege: str, options: dict[str, object],
                                reason: Reason, expect: int) -> None:
    _, pt, vas = _scene()
    w = _walker(pt, **options)
    va = vas[key]
    t = w.translate(va, access, privilege)
    assert t.reason == reason, label
    if reason == Reason.OK:
        assert t.pa == expect
    elif reason == Reason.PA_OUTSIDE_MEMORY:
        assert dict(t.syndrome) == {"error_code": 0, "cr2": 0}
    else:
        assert t.fault == PAGE_FAULT and dict(t.syndrome) == {"error_code": expect, "cr2": va}
    if key == "no-pdpte":
        assert t.level == 3
    many = w.translate_many(np.array([va, va], dtype=np.uint64), access, privilege)
    assert [Reason(int(r)) for r in many.reason] == [reason, reason]


def test_the_pdptes_are_loaded_with_cr3() -> None:
    """CR3 bits 31:5 name the PDPT (bits 4:0 are ignored); a present PDPTE with a reserved bit (2:1, 8:5,
    MAXPHYADDR..63) makes the MOV to CR3 #GP: the rules refuse to be built; a not-present one may hold
    anything."""
    mem, pt, _ = _scene()
    root = pt.root_paddr
    assert _walker(pt, cr3_low=0x18).rules.regime.regions[0].root == root
    e = mem.entries(8)
    good = e.read(root)
    for bad, bits in ((RW, 0x2), (A, 0x20), (PS, 0x80), (1 << 40, 1 << 40), (XD, XD)):
        e.write(root + 8, good | bad)
        with pytest.raises(InvalidArgument, match=f"MOV to CR3 {root:#x} would #GP: PDPTE1 .* reserved bits "
                                                  f"{bits:#x} set"):
            _walker(pt)
    e.write(root + 8, 0xFFFF_FFFF_FFFF_FFFE)                                  # P=0: not checked
    assert _walker(pt).translate(0x4000_0000).reason == Reason.INVALID
    e.write(root + 8, good | 1 << 40)
    assert _walker(pt, maxphyaddr=41).translate(0x4000_0000).reason == Reason.TABLE_OUTSIDE_MEMORY
    with pytest.raises(InvalidArgument, match="need the PDPTE registers"):
        X86Rules(root, X86Options(paging="pae"))
    with pytest.raises(InvalidArgument, match="need the PDPTE registers"):
        X86Rules(root, X86Options(), pdptes=(0, 0, 0, 0))
    with pytest.raises(InvalidArgument, match="give the four PDPTEs"):
        X86Rules(root, X86Options(paging="pae"), pdptes=(0, 0))
    with pytest.raises(InvalidArgument, match=r"CR3 \(PAE paging\) 0x100000000 does not fit in 32 bits"):
        X86Rules(1 << 32, X86Options(paging="pae"), pdptes=(0, 0, 0, 0))
    with pytest.raises(InvalidArgumentType, match="pae paging's entries have no X86Codec"):
        X86Rules(root, X86Options(paging="pae"), codec=SPEC, pdptes=(0, 0, 0, 0))
    with pytest.raises(InvalidArgument, match="no 5-level paging or protection keys"):
        X86Options(paging="pae", pke=True)


def test_entry_updates_of_pdes_and_ptes() -> None:
    """A in the PDE and PTE, D in the PTE on a write (SDM 4.8), 8 bytes each; never in the PDPTE, whose bit 5
    is reserved (Table 4-8): applying the updates leaves the PDPT as the MOV to CR3 loaded it."""
    mem, pt, vas = _scene()
    e = mem.entries(8)
    pdpte = e.read(pt.root_paddr)
    pd = pdpte & ~0xFFF
    table = e.read(pd) & 0xF_FFFF_FFFF_F000
    updates = _walker(pt).entry_updates(vas["kernel"], "write", apply=True)
    assert [(u.pa, u.old, u.new) for u in updates] == [(pd, e.read(pd) & ~A, e.read(pd)),
                                                       (table + 8, XD | 0x10_1003, XD | 0x10_1063)]
    assert e.read(pt.root_paddr) == pdpte == pd | P


def test_the_walk_uses_the_pdpte_registers_not_the_pdpt_in_memory() -> None:
    """The PDPTEs are loaded at the MOV to CR3 (SDM 4.4.1): a later store to the PDPT changes no
    translation, one lane or many, until CR3 is loaded again."""
    mem, pt, vas = _scene()
    e, root = mem.entries(8), pt.root_paddr
    before = _walker(pt)
    pdpte0 = e.read(root)
    e.write(root, 0)                                      # PDPTE0 cleared in memory, not in the registers
    e.write(root + 8, pdpte0)                             # and PDPTE1 pointed at the same page directory
    for va, reason in ((vas["kernel"], Reason.OK), (vas["no-pdpte"], Reason.INVALID)):
        assert before.translate(va, "read").reason == reason
        assert before.translate_many(np.array([va], dtype=np.uint64)).reason.tolist() == [reason]
    after = _walker(pt)                                   # CR3 written again
    assert after.translate(vas["kernel"], "read").reason == Reason.INVALID
    assert after.translate(vas["no-pdpte"] + vas["kernel"], "read").pa == 0x10_1008      # through PDPTE1


def test_the_registers_select_pae_paging() -> None:
    """CR0.PG=1, CR4.PAE=1, IA32_EFER.LME=0: PAE paging with the given PDPTEs; NXE from IA32_EFER; CR4.PSE,
    CR4.PKE and CR4.LA57 ignored."""
    mem, pt, vas = _scene()
    cr3 = pt.root_paddr | 0x18
    assert paging_mode(0x8000_0001, 0x20, 0x800) == "pae"
    rules = rules_from_registers(0x8001_0033, cr3, 0x0040_10B0, 0x800, pdptes=load_pdptes(mem, cr3), maxphyaddr=36)
    assert rules.options == X86Options(paging="pae", wp=True, nxe=True, maxphyaddr=36)
    assert rules.pdptes == load_pdptes(mem, cr3) and rules.regime.regions[0].root == pt.root_paddr
    assert Walker(mem, rules).translate(vas["kernel"], "execute").syndrome["error_code"] == 0x11
    no_nxe = rules_from_registers(0x8000_0001, cr3, 0x20, 0, pdptes=load_pdptes(mem, cr3))
    assert Walker(mem, no_nxe).translate(vas["kernel"], "read").reason == Reason.RESERVED   # XD without NXE
    with pytest.raises(InvalidArgument, match="need the PDPTE registers"):
        rules_from_registers(0x8000_0001, cr3, 0x20, 0)


@settings(max_examples=60, deadline=None)
@given(vpn=st.integers(0, (1 << 20) - 1), pfn=st.integers(0, (1 << 40) - 1), huge=st.booleans(),
       maxphyaddr=st.integers(32, 52), flags=st.sampled_from([F.READ, RW_, RX, RWX | F.USER, F.READ | F.DEVICE]))
def test_pages_round_trip(vpn: int, pfn: int, huge: bool, maxphyaddr: int, flags: F) -> None:
    """map, query, the walker and unmap agree for 4 KiB and 2 MiB pages at any 52-bit PA: the walker finds
    the PA where it fits MAXPHYADDR, RSVD where it does not."""
    mem, pt = _space()
    size = 2 * MiB if huge else 4096
    va, pa = (vpn << 12) & ~(size - 1), (pfn << 12) & ~(size - 1)
    pt.map(va, pa, size, flags)
    assert pt.query(va | 0xFF8) == (pa | 0xFF8, flags, size)
    t = _walker(pt, maxphyaddr=maxphyaddr).translate(va | 0xFF8, "read", "user" if flags & F.USER else "supervisor")
    if pa >> maxphyaddr:
        assert (t.reason, t.syndrome["error_code"]) == (Reason.RESERVED, 9 | (4 if flags & F.USER else 0))
    else:
        assert t.reason == (Reason.OK if mem.contains(pa) else Reason.PA_OUTSIDE_MEMORY)
        assert not t.ok or t.pa == pa | 0xFF8
    assert pt.unmap(va) == (pa, flags, size)
    assert _walker(pt).translate(va, "read").reason == Reason.INVALID


RULES_PAE = st.builds(lambda m, nxe, smep, smap, wp: X86Rules(0, X86Options(
    paging="pae", maxphyaddr=m, nxe=nxe, smep=smep, smap=smap, wp=wp), pdptes=(0, 0, 0, 0)),
    st.integers(32, 52), st.booleans(), st.booleans(), st.booleans(), st.booleans())


@settings(max_examples=200, deadline=None)
@given(RULES_PAE, st.integers(0, 2), st.integers(0, (1 << 64) - 1), st.integers(0, (1 << 64) - 1),
       st.sampled_from(list(Access)), st.sampled_from(list(Privilege)), st.integers(0, (1 << 9) - 1))
def test_entries_equal_in_the_judged_bits_get_one_verdict(rules: X86Rules, depth: int, pte: int, noise: int,
                                                          access: Access, privilege: Privilege, carry: int) -> None:
    """The one-lane walk's memory of verdicts is sound for PAE paging (a PDPTE's rights are not read)."""
    region = rules.regime.regions[0]
    other = pte ^ (noise & ~rules.judged_bits(region, depth))
    assert rules.step(region, depth, pte, access, privilege, carry) == rules.step(region, depth, other, access,
                                                                                 privilege, carry)
