"""The x86-64 walk rules case by case against the SDM (Vol. 3A 4.5-4.7): each #PF cause with its error code
and CR2, #GP for a non-canonical address, access rights combined across levels, CR0.WP, SMEP, SMAP with
RFLAGS.AC, EFER.NXE, MAXPHYADDR and 1-GByte page support; the bulk walk and the one-lane walk agree, and the
judged-bits promise holds against `step` itself."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pagetable.arch.x86_64 import CR0, CR4, EFER, PAGING4, PAGING5, PAT, PKRU, RFLAGS, X86Codec, rules_from_registers
from pagetable.arch.x86_64.walk import GENERAL_PROTECTION, PAGE_FAULT, X86Options, X86Rules
from pagetable.errors import InvalidArgument
from pagetable.flags import MappingFlags as F
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.translation import ALL_PERMS, MemoryType, Reason
from pagetable.walker import Access, Privilege, Walker

from .fuzzing import assert_lanes_agree, assert_listing_agrees

MiB, GiB = 1 << 20, 1 << 30
R, W, X = Access.READ, Access.WRITE, Access.EXECUTE
SUP, USER = Privilege.SUPERVISOR, Privilege.USER
VA = 0x4020_3000                                   # PML4 0, PDPT 1, PD 1, PT 3


class Space:
    """A 4-level table in 64 MiB of RAM with one page of `size` at `VA` (4 KiB at 0x123000, 2 MiB at 0x200000
    or 1 GiB at 0; by default user, writable, executable); `poke(depth, set, clear)` edits the entry on VA's
    path, `walk(**options)` walks it with those `X86Options`."""

    def __init__(self, flags: F = F.READ | F.WRITE | F.EXECUTE | F.USER, size: int = 4096) -> None:
        self.mem = PhysMem([(0, 64 * MiB)])
        self.pt = PageTable(PAGING4, self.mem, FrameAllocator(self.mem, 32 * MiB, 32 * MiB))
        self.pt.map(VA & ~(size - 1), {4096: 0x12_3000, 2 * MiB: 0x20_0000, GiB: 0}[size], size, flags)

    def poke(self, depth: int, set_bits: int = 0, clear: int = 0) -> None:
        slot = self.pt.lookup(VA, depth)
        self.mem.write_u64(slot.pa, (slot.raw | set_bits) & ~clear)

    def walk(self, **options: bool | int) -> Walker:
        return Walker(self.mem, X86Rules(self.pt.root_paddr, X86Options(**options)))  # type: ignore[arg-type]

    def error(self, access: Access, privilege: Privilege, va: int = VA, **options: bool | int) -> tuple[
            Reason, int, int]:
        """(reason, level, #PF error code) of one access."""
        t = self.walk(**options).translate(va, access, privilege)
        return t.reason, t.level, t.syndrome.get("error_code", -1) if t.syndrome else -1


def test_a_page_translates_with_its_rights_and_pat_memory_type() -> None:
    s = Space()
    t = s.walk().translate(VA + 0x45, W, USER)
    assert (t.ok, t.pa, t.level, t.memtype) == (True, 0x12_3045, 1, MemoryType.WB)
    assert t.perms == ALL_PERMS and t.syndrome == {}


def test_not_present_at_each_level_is_a_pf_with_p_clear() -> None:
    for depth, level in enumerate((4, 3, 2, 1)):
        s = Space()
        s.poke(depth, clear=1)
        assert s.error(R, SUP) == (Reason.INVALID, level, 0)
        assert s.error(W, USER) == (Reason.INVALID, level, 0b110)              # W/R and U/S set, P clear
        t = s.walk().translate(VA + 8, X, SUP)
        assert t.fault == PAGE_FAULT and t.syndrome == {"error_code": 0b1_0000, "cr2": VA + 8}   # I/D (NXE)


def test_rights_are_combined_across_levels() -> None:
    s = Space()
    s.poke(1, clear=0b100)                           # PDPTE U/S=0: a supervisor-mode address
    assert s.error(R, USER) == (Reason.PERMISSION, 1, 0b101)
    assert s.walk().translate(VA, R, SUP).ok
    s = Space()
    s.poke(2, clear=0b10)                            # PDE R/W=0 over a writable PTE
    assert s.error(W, USER) == (Reason.PERMISSION, 1, 0b111)
    assert s.error(W, SUP) == (Reason.PERMISSION, 1, 0b011)                    # CR0.WP=1
    assert s.walk(wp=False).translate(VA, W, SUP).ok                           # CR0.WP=0: supervisor writes
    assert s.error(W, USER, wp=False) == (Reason.PERMISSION, 1, 0b111)         # but never user writes
    s = Space()
    s.poke(0, set_bits=1 << 63)                      # PML4E XD=1
    assert s.error(X, USER) == (Reason.PERMISSION, 1, 0b1_0101)
    t = s.walk().translate(VA, R, USER)
    assert t.ok and t.perms == ALL_PERMS & ~0b100100                            # no fetch at either privilege


def test_smep_and_smap_guard_user_mode_addresses() -> None:
    s = Space()
    assert s.walk().translate(VA, X, SUP).ok
    assert s.error(X, SUP, smep=True) == (Reason.PERMISSION, 1, 0b1_0001)
    assert s.walk(smep=True).translate(VA, R, SUP).ok
    assert s.error(R, SUP, smap=True) == (Reason.PERMISSION, 1, 0b0001)
    assert s.error(W, SUP, smap=True) == (Reason.PERMISSION, 1, 0b0011)
    assert s.walk(smap=True, ac=True).translate(VA, W, SUP).ok                # RFLAGS.AC=1 lets them through
    assert s.error(R, SUP, smap=True, ac=True, implicit=True) == (Reason.PERMISSION, 1, 0b0001)  # not implicit
    assert s.walk(smap=True).translate(VA, R, USER).ok
    kernel = Space(F.READ | F.WRITE | F.EXECUTE)     # U/S=0 in the PTE: not a user-mode address
    assert kernel.walk(smep=True, smap=True).translate(VA, X, SUP).ok


def test_reserved_bits_are_rsvd_faults_with_p_set() -> None:
    s = Space()
    s.poke(0, set_bits=1 << 7)                       # PS in a PML4E
    assert s.error(R, SUP) == (Reason.RESERVED, 4, 0b1001)
    s = Space()
    s.poke(3, set_bits=1 << 45)                      # an address bit above MAXPHYADDR 40 (QEMU's)
    assert s.error(R, USER, maxphyaddr=40) == (Reason.RESERVED, 1, 0b1101)
    t = s.walk().translate(VA, R, USER)              # below MAXPHYADDR 52 it is an address bit: no RAM there
    assert (t.reason, t.pa, t.syndrome) == (Reason.PA_OUTSIDE_MEMORY, None, {"error_code": 0, "cr2": 0})
    s = Space(F.READ | F.EXECUTE)
    s.poke(3, set_bits=1 << 63)                      # XD with EFER.NXE=0
    assert s.error(X, SUP, nxe=False) == (Reason.RESERVED, 1, 0b1001)         # no I/D without NXE or SMEP
    assert s.error(X, SUP, nxe=False, smep=True) == (Reason.RESERVED, 1, 0b1_1001)
    big = Space(F.READ | F.WRITE, 2 * MiB)
    big.poke(2, set_bits=1 << 13)                    # a 2 MiB page's reserved bit 13
    assert big.error(R, SUP) == (Reason.RESERVED, 2, 0b1001)


def test_pages_of_every_size_and_1gib_pages_only_where_the_cpu_has_them() -> None:
    s = Space(F.READ | F.WRITE, GiB)
    t = s.walk().translate(VA, R, SUP)
    assert (t.ok, t.pa, t.level) == (True, VA & (GiB - 1), 3)
    assert s.error(R, SUP, gbpages=False) == (Reason.RESERVED, 3, 0b1001)
    big = Space(F.READ | F.WRITE | F.DEVICE, 2 * MiB)
    t = big.walk().translate(VA + 1, W, SUP)
    assert (t.pa, t.level, t.memtype) == (0x20_0000 + (VA & (2 * MiB - 1)) + 1, 2, MemoryType.UC)


def test_a_non_canonical_address_is_a_gp_without_error_code() -> None:
    t = Space().walk().translate(0x0000_8000_0000_0000, R, USER)
    assert (t.reason, t.fault, t.syndrome) == (Reason.NON_CANONICAL, GENERAL_PROTECTION,
                                               {"error_code": 0, "cr2": 0})


def test_5_level_paging_walks_five_levels() -> None:
    mem = PhysMem([(0, 64 * MiB)])
    pt = PageTable(PAGING5, mem, FrameAllocator(mem, 32 * MiB, 32 * MiB))
    va = 0x00AB_0000_0000_0000
    pt.map(va, 0x40_0000, 4096, F.READ)
    w = Walker(mem, X86Rules(pt.root_paddr, X86Options(la57=True)))
    assert w.translate(va + 5).pa == 0x40_0005
    assert w.translate(va, W).syndrome == {"error_code": 0b011, "cr2": va}
    assert Walker(mem, X86Rules(pt.root_paddr)).translate(va).reason == Reason.NON_CANONICAL   # 4-level


@pytest.mark.parametrize("options", [X86Options(), X86Options(wp=False, smep=True, smap=True),
                                     X86Options(nxe=False, maxphyaddr=40, gbpages=False),
                                     X86Options(pke=True, pks=True, pkru=0x5A5A_1234, pkrs=0x0F0F_A5A5)])
def test_bulk_and_one_lane_walks_agree_on_mixed_tables(options: X86Options) -> None:
    """Tables of random entries (present or not, every right, PS, reserved bits): each lane of a bulk walk
    gets what it gets alone, field by field."""
    rng = np.random.default_rng(3)
    mem = PhysMem([(0, 16 << 12)])
    words = mem.regions[0].words
    noise = np.array([0, 1, 1 << 7, 1 << 13, 1 << 45, 1 << 63, 0x7, 0x3, 0x5, 0x87], dtype=np.uint64)
    for frame in range(4):                          # frames 0-3: PML4, PDPT, PD, PT; entries point onward
        bits = noise[rng.integers(0, len(noise), 512)] | rng.integers(0, 8, 512, dtype=np.uint64)
        words[frame * 512:(frame + 1) * 512] = bits | np.uint64((frame + 1) << 12)
    w = Walker(mem, X86Rules(0, options))
    vas = rng.integers(0, 1 << 47, 3000, dtype=np.uint64)
    for access in Access:
        for privilege in Privilege:
            t = w.translate_many(vas, access, privilege)
            assert len(np.unique(t.reason)) > 2
            assert_lanes_agree(w, t, access, privilege)


RULES = st.builds(lambda o, pat: X86Rules(0, o, pat),
                  st.builds(X86Options, wp=st.booleans(), smep=st.booleans(), smap=st.booleans(), ac=st.booleans(),
                            nxe=st.booleans(), maxphyaddr=st.sampled_from([36, 40, 46, 52]), gbpages=st.booleans(),
                            pke=st.booleans(), pks=st.booleans(), pkru=st.integers(0, (1 << 32) - 1),
                            pkrs=st.integers(0, (1 << 32) - 1)),
                  st.sampled_from([None, 0x0001_0406_0700_0406]))     # the reset PAT, or one with 8 types


@settings(max_examples=300, deadline=None)
@given(RULES, st.integers(0, 3), st.integers(0, (1 << 64) - 1), st.integers(0, (1 << 64) - 1),
       st.sampled_from(list(Access)), st.sampled_from(list(Privilege)), st.integers(0, ALL_PERMS))
def test_entries_equal_in_the_judged_bits_get_one_verdict(rules: X86Rules, depth: int, pte: int, noise: int,
                                                          access: Access, privilege: Privilege, carry: int) -> None:
    region = rules.regime.regions[0]
    other = pte ^ (noise & ~rules.judged_bits(region, depth))
    a = rules.step(region, depth, pte, access, privilege, carry)
    b = rules.step(region, depth, other, access, privilege, carry)
    assert a == b


def test_x86_codec_is_the_rules_codec() -> None:
    rules = X86Rules(0, X86Options(nxe=False), pat=0x0007_0406_0007_0406)
    assert rules.regime.regions[0].fmt.codec == X86Codec(nxe=False)


def test_the_registers_select_the_rules() -> None:
    """Linux-like values: CR0 with PG, WP, NE, ET, MP, PE; CR4 with PAE, PGE, OSFXSR, OSXMMEXCPT, SMEP, SMAP;
    IA32_EFER with SCE, LME, LMA, NXE; CR3 with a PCID in bits 11:0."""
    rules = rules_from_registers(cr0=0x8005_0033, cr3=0x1234_5000 | 0x7, cr4=0x0030_06A0, efer=0xD01)
    assert rules.options == X86Options(wp=True, smep=True, smap=True, ac=False, nxe=True, la57=False)
    assert rules.regime.regions[0].root == 0x1234_5000
    assert rules_from_registers(0x8001_0001, 0, 0x1020, 0x500, rflags=1 << 18).options.ac
    assert rules_from_registers(0x8001_0001, 0, 0x1020, 0x500).options.la57
    with pytest.raises(InvalidArgument, match=r"paging is off \(CR0.PG=0\)"):
        rules_from_registers(0x0001_0001, 0, 0x20, 0x500)             # CR0.PG=0
    keyed = rules_from_registers(0x8001_0001, 0, 0x140_0020, 0x500, pkru=0b1100, pkrs=1)   # CR4.PKE, CR4.PKS
    assert (keyed.options.pke, keyed.options.pks, keyed.options.pkru, keyed.options.pkrs) == (True, True, 0b1100, 1)
    with pytest.raises(InvalidArgument, match="MAXPHYADDR"):
        rules_from_registers(0x8001_0001, 1 << 45, 0x20, 0x500, maxphyaddr=40)
    assert "SMAP     = 1" in CR4.format(0x0030_06A0) and "belong to no field" not in CR4.format(0x0030_06A0)
    assert "PA2      = 7 (111)  UC-" in PAT.format(0x0007_0406_0007_0406)
    assert CR0.get(0x8005_0033, "WP") == 1 and EFER.get(0xD01, "NXE") == 1 and RFLAGS.get(0x40202, "AC") == 1
    assert PKRU.get(0b1000, "WD1") == 1 and PKRU.mask("AD15") == 1 << 30


def test_protection_keys_forbid_data_accesses_with_the_pk_error_bit() -> None:
    """PKRU for a user page's key (CR4.PKE), IA32_PKRS for a supervisor page's (CR4.PKS), SDM 4.6.2: AD
    forbids reads and writes at both privileges, WD writes (supervisor writes only with CR0.WP=1); fetches
    are never key-checked; the error code has PK (bit 5) whatever the other rights say."""
    key = 5 << 59
    s = Space()
    s.poke(3, set_bits=key)
    ad, wd = 1 << 10, 1 << 11                         # AD5, WD5
    assert s.error(R, USER, pke=True, pkru=ad) == (Reason.PROTECTION_KEY, 1, 0b10_0101)
    assert s.error(R, SUP, pke=True, pkru=ad) == (Reason.PROTECTION_KEY, 1, 0b10_0001)
    assert s.walk(pke=True, pkru=ad).translate(VA, X, USER).ok
    assert s.walk(pke=True, pkru=wd).translate(VA, R, USER).ok
    assert s.error(W, USER, pke=True, pkru=wd) == (Reason.PROTECTION_KEY, 1, 0b10_0111)
    assert s.error(W, SUP, pke=True, pkru=wd) == (Reason.PROTECTION_KEY, 1, 0b10_0011)
    assert s.walk(pke=True, pkru=wd, wp=False).translate(VA, W, SUP).ok
    assert s.walk(pke=False, pkru=ad).translate(VA, R, USER).ok          # CR4.PKE=0: keys ignored
    assert s.walk(pks=True, pkrs=ad).translate(VA, R, SUP).ok            # PKRS: not for user pages
    t = s.walk(pke=True, pkru=wd).translate(VA, R, USER)
    assert t.perms == ALL_PERMS & ~0b010010                               # no writes at either privilege
    kernel = Space(F.READ | F.WRITE | F.EXECUTE)
    kernel.poke(3, set_bits=key)
    assert kernel.error(W, SUP, pks=True, pkrs=wd) == (Reason.PROTECTION_KEY, 1, 0b10_0011)
    assert kernel.walk(pks=True, pkrs=wd).translate(VA, R, SUP).ok
    assert kernel.walk(pke=True, pkru=ad).translate(VA, R, SUP).ok       # PKRU: not for supervisor pages
    readonly = Space(F.READ | F.USER)
    readonly.poke(3, set_bits=key)                    # both the rights and the key forbid the write
    assert readonly.error(W, USER, pke=True, pkru=wd) == (Reason.PROTECTION_KEY, 1, 0b10_0111)


def test_the_hardware_listing_combines_rights_across_levels() -> None:
    """`Walker.mappings` carries each table's rights down the descent (`Descent.descend`), as the walk
    does: a writable user PTE under a PDE with R/W=0 and a PDPTE with XD=1 is listed read-only and not
    executable, and every access the listing allows translates."""
    s = Space()
    s.poke(2, clear=0b10)
    s.poke(1, set_bits=1 << 63)
    m = s.walk().mappings()
    assert m.perms is not None and m.perms.tolist() == [ALL_PERMS & ~0b110110]
    assert_listing_agrees(s.walk(), s.walk(), m)
