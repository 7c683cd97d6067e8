"""The hardware walker with the RISC-V rules, one test per step of the privileged spec's "Virtual Address
Translation Process" (Sv39; Sv48/Sv57 add levels), with Svnapot, Svpbmt, Svade and Svadu.

Levels are the spec's i: 2 at the Sv39 root, 0 at the 4 KiB level. Raw PTEs are written out from the spec's
bit table (V=0, R=1, W=2, X=3, U=4, G=5, A=6, D=7, PPN=53:10, reserved 60:54, PBMT=62:61, N=63).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pagetable.arch.riscv_sv39 import SV39, SV48, SV57, RiscvCodec, Satp, faults
from pagetable.arch.riscv_sv39.walk import RiscvOptions, RiscvRules
from pagetable.errors import InvalidArgument, InvalidArgumentType
from pagetable.flags import MappingFlags
from pagetable.format import PagingFormat
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.walker import Access, FaultKind, MemoryType, Privilege, Reason, Translation, Walker

V, R, W, X, U, G, A, D = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80
N = 1 << 63
K4, M2, G1 = 1 << 12, 1 << 21, 1 << 30
RAM = 0x8000_0000
DATA = 0x8080_0000                     # data pages: the upper 8 MiB of RAM (tables use the lower 8 MiB)
OUTSIDE = 0x1_0000_0000                # no RAM here

FR, FW, FX, FU = MappingFlags.READ, MappingFlags.WRITE, MappingFlags.EXECUTE, MappingFlags.USER
READ, WRITE, EXEC = Access.READ, Access.WRITE, Access.EXECUTE
S, USR = Privilege.SUPERVISOR, Privilege.USER
PF, AF = faults.PAGE_FAULT, faults.ACCESS_FAULT

MODES = [SV39, SV48, SV57]
MODE_IDS = ["sv39", "sv48", "sv57"]
ROOT_LEVEL = {"Sv39": 2, "Sv48": 3, "Sv57": 4}


def ppn(pa: int) -> int:
    """The PPN field in place (bits 53:10)."""
    return (pa >> 12) << 10


class Setup:
    """16 MiB of RAM at 0x8000_0000, a table built with PageTable, and a walker over it."""

    def __init__(self, fmt: PagingFormat = SV39, codec: RiscvCodec | None = None,
                 extra: list[tuple[int, int]] | None = None) -> None:
        self.mem = PhysMem([(RAM, 16 << 20), *(extra or [])])
        self.frames = FrameAllocator(self.mem, size=8 << 20)
        self.fmt = fmt if codec is None else fmt.with_codec(codec)
        self.pt = PageTable(self.fmt, self.mem, self.frames)

    def walker(self, **options: object) -> Walker:
        satp = Satp.for_table(self.fmt, self.pt.root_paddr)
        return Walker(self.mem, RiscvRules(satp, RiscvOptions(**options)))  # type: ignore[arg-type]

    def poke(self, va: int, raw: int) -> int:
        """Overwrite the entry that decides `va` (leaf, or first non-table entry); returns its PA."""
        slot = self.pt.lookup(va)
        self.mem.write_u64(slot.pa, raw)
        return slot.pa

    def poke_entry(self, va: int, depth: int, raw: int) -> None:
        """Overwrite the entry for `va` at `depth` (following the table entries above it by hand)."""
        table = self.pt.root_paddr
        for d in range(depth):
            entry = self.mem.read_u64(table + self.fmt.index(va, d) * 8)
            assert entry & (V | R | W | X) == V, "not a pointer on the way"
            table = ((entry >> 10) & ((1 << 44) - 1)) << 12
        self.mem.write_u64(table + self.fmt.index(va, depth) * 8, raw)

    def pointer_to(self, va: int, depth: int) -> int:
        """The raw pointer entry at `depth` on the way to `va`."""
        table = self.pt.root_paddr
        for d in range(depth):
            table = ((self.mem.read_u64(table + self.fmt.index(va, d) * 8) >> 10) & ((1 << 44) - 1)) << 12
        return self.mem.read_u64(table + self.fmt.index(va, depth) * 8)


def assert_fault(t: Translation, reason: Reason, level: int, kind: FaultKind = PF, pte: int | None = None) -> None:
    assert (t.reason, t.level, t.fault, t.pa, t.ok) == (reason, level, kind, None, False)
    if pte is not None:
        assert t.pte == pte


def assert_ok(t: Translation, pa: int, level: int, pte: int | None = None) -> None:
    assert (t.reason, t.pa, t.level, t.fault, t.ok) == (Reason.OK, pa, level, None, True)
    if pte is not None:
        assert t.pte == pte


# --------------------------------------------------------------------------- success and API


@pytest.mark.parametrize("fmt", MODES, ids=MODE_IDS)
def test_a_4k_translation(fmt: PagingFormat) -> None:
    s = Setup(fmt)
    s.pt.map(0x1000, DATA, K4, FR | FW)
    t = s.walker().translate(0x1ABC, "write", "supervisor")
    assert t == Translation(0x1ABC, WRITE, S, DATA + 0xABC, Reason.OK, 0, None, ppn(DATA) | V | R | W | A | D,
                            perms=0b000011, memtype=MemoryType.DEFAULT)    # supervisor r and w, nothing else
    upper = (1 << 64) - (1 << (fmt.va_bits - 1))
    s.pt.map(upper, DATA + K4, K4, FR)
    assert_ok(s.walker().translate(upper + 0x10), DATA + K4 + 0x10, 0)
    assert_ok(s.walker().translate(upper + 0xFFF, READ), DATA + K4 + 0xFFF, 0)


def test_translate_rejects_bad_arguments() -> None:
    w = Setup().walker()
    with pytest.raises(InvalidArgument, match="does not fit in 64 bits"):
        w.translate(1 << 64)
    with pytest.raises(InvalidArgument, match="-1 is negative"):
        w.translate(-1)
    with pytest.raises(InvalidArgument, match=r"access lanes must be 0 \(read\), 1 \(write\), 2 \(execute\), not 3"):
        w.translate_many([0], access=3)
    with pytest.raises(InvalidArgument, match="privilege lanes must be"):
        w.translate_many([0], privilege=[2])
    with pytest.raises(InvalidArgument, match=r"access must be one of read, write, execute, load, .*not str 'fetchh'"):
        w.translate(0, "fetchh")
    with pytest.raises(InvalidArgumentType, match=r"must be an integer, not float 4096\.7"):
        w.translate_many([4096.7])
    with pytest.raises(InvalidArgumentType, match="must be integers, not floats"):
        w.translate_many(np.array([4096.7]))
    with pytest.raises(InvalidArgumentType, match="virtual address must be an integer, not float"):
        w.translate(4096.0)      # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="virtual addresses: -1 is negative"):
        w.translate_many(np.array([4096, -1]))
    with pytest.raises(InvalidArgument, match="2 access lanes for 3 addresses"):
        w.translate_many([0, 1, 2], access=[0, 1])


@pytest.mark.parametrize(("name", "access"), [("fetch", Access.EXECUTE), ("instruction", Access.EXECUTE),
                                              ("X", Access.EXECUTE), ("Load", Access.READ), ("store", Access.WRITE),
                                              ("r", Access.READ), ("WRITE", Access.WRITE)])
def test_access_names_accept_the_manuals_synonyms(name: str, access: Access) -> None:
    w = Setup().walker()
    for va in (0x1000, 0x5000, 1 << 60):
        assert w.translate(va, name).reason == w.translate(va, access).reason
        assert w.translate(va, name).access == access
    assert w.translate(0x1000, "read", "u").privilege == Privilege.USER
    assert w.translate(0x1000, "read", "S").privilege == Privilege.SUPERVISOR


def test_labels() -> None:
    assert [r.label for r in (Reason.OK, Reason.W_WITHOUT_R, Reason.PA_OUTSIDE_MEMORY)] == \
        ["ok", "w-without-r", "pa-outside-memory"]
    assert (Access.EXECUTE.label, Privilege.USER.label) == ("execute", "user")
    assert (PF.value, AF.value) == ("page-fault", "access-fault")


# --------------------------------------------------------------------------- addresses and fetches


@pytest.mark.parametrize("fmt", MODES, ids=MODE_IDS)
def test_non_canonical_va_is_a_page_fault_at_the_root(fmt: PagingFormat) -> None:
    s = Setup(fmt)
    s.pt.map(0, DATA, K4, FR)
    w = s.walker()
    bad = 1 << (fmt.va_bits - 1)                   # 0x40_0000_0000 for Sv39
    for va in (bad, bad | 0x123, 0x8000_0000_0000_0000, (1 << 64) - (1 << (fmt.va_bits - 1)) - K4):
        for access in (READ, WRITE, EXEC):
            assert_fault(w.translate(va, access), Reason.NON_CANONICAL, ROOT_LEVEL[fmt.name], pte=0)
    assert_ok(w.translate(0), DATA, 0)


def test_non_canonical_sv39_example() -> None:
    assert_fault(Setup().walker().translate(0x0000_0040_0000_0000), Reason.NON_CANONICAL, 2)


@pytest.mark.parametrize("fmt", MODES, ids=MODE_IDS)
def test_root_outside_ram_is_an_access_fault_at_the_root(fmt: PagingFormat) -> None:
    mem = PhysMem([(RAM, 1 << 20)])
    mode = {"Sv39": 8, "Sv48": 9, "Sv57": 10}[fmt.name]
    w = Walker(mem, RiscvRules(Satp(mode, 0, OUTSIDE >> 12)))
    assert_fault(w.translate(0x1000), Reason.TABLE_OUTSIDE_MEMORY, ROOT_LEVEL[fmt.name], AF, pte=0)


@pytest.mark.parametrize("depth", [0, 1])
def test_table_fetch_outside_ram_is_an_access_fault_at_that_level(depth: int) -> None:
    s = Setup()
    s.pt.map(0x1000, DATA, K4, FR)
    s.poke_entry(0x1000, depth, ppn(OUTSIDE) | V)
    # the pointer at `depth` is fine; the fetch one level down (i = 1 - depth) hits no RAM
    # the last entry read is the pointer that leads outside RAM
    assert_fault(s.walker().translate(0x1000), Reason.TABLE_OUTSIDE_MEMORY, 1 - depth, AF, ppn(OUTSIDE) | V)


def test_fetch_across_the_end_of_ram_is_an_access_fault() -> None:
    s = Setup()
    s.pt.map(0x1000, DATA, K4, FR)
    s.poke_entry(0x1000, 1, ppn(RAM + (16 << 20) - K4) | V)      # last page of RAM: index 1 is still in it
    assert_fault(s.walker().translate(0x1000), Reason.INVALID, 0)
    s.poke_entry(0x1000, 1, ppn(RAM + (16 << 20)) | V)           # first page after RAM
    assert_fault(s.walker().translate(0x1000), Reason.TABLE_OUTSIDE_MEMORY, 0, AF)


# --------------------------------------------------------------------------- step 3: V, R/W, reserved


def test_invalid_entries_at_each_level() -> None:
    s = Setup()
    w = s.walker()
    assert_fault(w.translate(0x1000), Reason.INVALID, 2, pte=0)   # empty root
    s.pt.map(0x1000, DATA, K4, FR)
    assert_fault(w.translate(0x2000), Reason.INVALID, 0)
    assert_fault(w.translate(0x20_0000), Reason.INVALID, 1)
    assert_fault(w.translate(0x4000_0000), Reason.INVALID, 2)
    s.pt.map(0x3000, DATA, K4, MappingFlags(0))                   # placeholder: PPN, V=0
    assert_fault(w.translate(0x3000), Reason.INVALID, 0)
    s.poke(0x1000, ppn(DATA) | R | W | X | U | A | D)             # everything but V
    assert_fault(w.translate(0x1000), Reason.INVALID, 0)


@pytest.mark.parametrize("bits", [V | W, V | W | X, V | W | A | D, V | W | X | U | A | D])
def test_w_without_r_at_a_leaf(bits: int) -> None:
    s = Setup()
    s.pt.map(0x1000, DATA, K4, FR | FW)
    s.poke(0x1000, ppn(DATA) | bits)
    for access in (READ, WRITE, EXEC):
        assert_fault(s.walker(ad="svadu").translate(0x1000, access), Reason.W_WITHOUT_R, 0, pte=ppn(DATA) | bits)


def test_w_without_r_in_a_pointer() -> None:
    s = Setup()
    s.pt.map(0x1000, DATA, K4, FR)
    s.poke_entry(0x1000, 0, s.pointer_to(0x1000, 0) | W)
    assert_fault(s.walker().translate(0x1000), Reason.W_WITHOUT_R, 2)


@pytest.mark.parametrize("bit", range(54, 61))
def test_reserved_bits_60_54(bit: int) -> None:
    s = Setup()
    s.pt.map(0x1000, DATA, K4, FR)
    s.pt.map(0x4000_0000, DATA + K4, K4, FR)
    leaf = s.mem.read_u64(s.pt.lookup(0x1000).pa)
    s.poke(0x1000, leaf | 1 << bit)
    s.poke_entry(0x4000_0000, 1, s.pointer_to(0x4000_0000, 1) | 1 << bit)
    for options in ({}, {"svpbmt": True, "svnapot": True}):
        w = s.walker(**options)
        assert_fault(w.translate(0x1000), Reason.RESERVED, 0)
        assert_fault(w.translate(0x4000_0000), Reason.RESERVED, 1)


@pytest.mark.parametrize(("pbmt", "svpbmt", "reason"), [
    (1, False, Reason.RESERVED), (2, False, Reason.RESERVED), (3, False, Reason.RESERVED),
    (0, True, Reason.OK), (1, True, Reason.OK), (2, True, Reason.OK), (3, True, Reason.RESERVED),
])
def test_pbmt(pbmt: int, svpbmt: bool, reason: Reason) -> None:
    s = Setup()
    s.pt.map(0x1000, DATA, K4, FR)
    s.poke(0x1000, pbmt << 61 | ppn(DATA) | V | R | A)
    t = s.walker(svpbmt=svpbmt).translate(0x1008)
    if reason == Reason.OK:
        assert_ok(t, DATA + 8, 0)
    else:
        assert_fault(t, reason, 0)


@pytest.mark.parametrize("pbmt", [1, 2, 3])
def test_pbmt_in_a_pointer_is_reserved_even_with_svpbmt(pbmt: int) -> None:
    s = Setup()
    s.pt.map(0x1000, DATA, K4, FR)
    s.poke_entry(0x1000, 1, s.pointer_to(0x1000, 1) | pbmt << 61)
    assert_fault(s.walker(svpbmt=True).translate(0x1000), Reason.RESERVED, 1)


def test_pages_mapped_with_svpbmt_translate_under_svpbmt_only() -> None:
    s = Setup(codec=RiscvCodec(svpbmt=True))
    s.pt.map(0x1000, DATA, K4, FR | FW | MappingFlags.DEVICE)
    assert s.pt.lookup(0x1000).raw == 2 << 61 | ppn(DATA) | V | R | W | A | D
    assert_ok(s.walker(svpbmt=True).translate(0x1004, WRITE), DATA + 4, 0)
    assert_fault(s.walker().translate(0x1004, WRITE), Reason.RESERVED, 0)


# --------------------------------------------------------------------------- Svnapot


NAPOT_VA = 0x1_0000                    # a 64 KiB-aligned VA range: L0 indices 16..31


def napot_setup() -> Setup:
    s = Setup()
    s.pt.map_region(NAPOT_VA, DATA, 16 * K4, FR | FW)
    return s


def test_napot_without_svnapot_is_reserved() -> None:
    s = napot_setup()
    s.poke(NAPOT_VA + 5 * K4, N | ppn(DATA) | 8 << 10 | V | R | W | A | D)
    assert_fault(s.walker().translate(NAPOT_VA + 5 * K4), Reason.RESERVED, 0)


@pytest.mark.parametrize("index", [0, 5, 15])
def test_napot_64k_page_takes_va_bits_15_12(index: int) -> None:
    s = napot_setup()
    other = DATA + 0x3_0000            # the PTE's own PPN[3:0] are 1000, not the VA's index
    raw = N | ppn(other) | 8 << 10 | V | R | W | A | D
    for i in range(16):                # Svnapot: all 16 PTEs of the range hold the same value
        s.poke(NAPOT_VA + i * K4, raw)
    t = s.walker(svnapot=True).translate(NAPOT_VA + index * K4 + 0x678, WRITE)
    assert_ok(t, other + index * K4 + 0x678, 0, pte=raw)


@pytest.mark.parametrize("low", [0b0000, 0b0100, 0b1001, 0b1111, 0b0001])
def test_napot_with_other_ppn_low_bits_is_reserved(low: int) -> None:
    s = napot_setup()
    s.poke(NAPOT_VA, N | ppn(DATA) | low << 10 | V | R | W | A | D)
    assert_fault(s.walker(svnapot=True).translate(NAPOT_VA), Reason.RESERVED, 0)


def test_napot_above_level_0_is_reserved() -> None:
    s = Setup()
    s.pt.map(0x20_0000, RAM + 0x20_0000, M2, FR)
    s.poke(0x20_0000, N | ppn(RAM + 0x20_0000) | 8 << 10 | V | R | A)
    assert_fault(s.walker(svnapot=True).translate(0x20_0000), Reason.RESERVED, 1)
    s.poke(0x20_0000, N | ppn(RAM + 0x20_0000) | V | R | A)
    assert_fault(s.walker(svnapot=True).translate(0x20_0000), Reason.RESERVED, 1)


def test_napot_in_a_pointer_is_reserved() -> None:
    s = napot_setup()
    s.poke_entry(NAPOT_VA, 1, s.pointer_to(NAPOT_VA, 1) | N)
    assert_fault(s.walker(svnapot=True).translate(NAPOT_VA), Reason.RESERVED, 1)


# --------------------------------------------------------------------------- pointers (step 4)


@pytest.mark.parametrize(("bit", "reason"), [(D, Reason.RESERVED), (A, Reason.RESERVED), (U, Reason.RESERVED),
                                             (G, Reason.OK), (0x300, Reason.OK)])
@pytest.mark.parametrize("depth", [0, 1])
def test_pointer_with_d_a_u_is_reserved_but_g_and_rsw_are_fine(bit: int, reason: Reason, depth: int) -> None:
    s = Setup()
    s.pt.map(0x1000, DATA, K4, FR)
    s.poke_entry(0x1000, depth, s.pointer_to(0x1000, depth) | bit)
    t = s.walker().translate(0x1010)
    if reason == Reason.OK:
        assert_ok(t, DATA + 0x10, 0)
    else:
        assert_fault(t, reason, 2 - depth)


def test_pointer_at_level_0_is_a_page_fault() -> None:
    s = Setup()
    s.pt.map(0x1000, DATA, K4, FR)
    table = s.pt.lookup(0x1000).table
    s.poke(0x1000, ppn(table) | V)
    for access in (READ, WRITE, EXEC):
        assert_fault(s.walker().translate(0x1000, access), Reason.NON_LEAF_AT_LAST_LEVEL, 0, pte=ppn(table) | V)


def test_leaf_rsw_and_g_bits_are_ignored() -> None:
    s = Setup()
    s.pt.map(0x1000, DATA, K4, FR)
    s.poke(0x1000, ppn(DATA) | 0x300 | G | V | R | A)
    assert_ok(s.walker().translate(0x1000), DATA, 0)


# --------------------------------------------------------------------------- permissions (step 5)


PERMISSIONS = [
    # page flags, access, privilege, SUM, MXR, expected
    (FR | FW | FU, READ, S, False, False, Reason.PERMISSION),
    (FR | FW | FU, WRITE, S, False, False, Reason.PERMISSION),
    (FR | FW | FU, READ, S, True, False, Reason.OK),
    (FR | FW | FU, WRITE, S, True, False, Reason.OK),
    (FR | FX | FU, EXEC, S, True, False, Reason.PERMISSION),          # SUM never allows fetches
    (FR | FX | FU, EXEC, S, False, False, Reason.PERMISSION),
    (FR | FX | FU, EXEC, USR, False, False, Reason.OK),
    (FR | FW | FU, WRITE, USR, False, False, Reason.OK),
    (FR, READ, USR, False, False, Reason.PERMISSION),                 # S page from U
    (FR, READ, USR, True, False, Reason.PERMISSION),                  # ... SUM does not help U
    (FR | FW | FX, EXEC, USR, False, False, Reason.PERMISSION),
    (FR, WRITE, S, False, False, Reason.PERMISSION),                  # write to read-only
    (FR | FU, WRITE, USR, False, False, Reason.PERMISSION),
    (FR, EXEC, S, False, False, Reason.PERMISSION),                   # execute non-X
    (FR | FW, EXEC, S, False, False, Reason.PERMISSION),
    (FX, READ, S, False, False, Reason.PERMISSION),                   # X-only is not readable ...
    (FX, READ, S, False, True, Reason.OK),                            # ... unless MXR
    (FX, WRITE, S, False, True, Reason.PERMISSION),                   # MXR is about loads only
    (FX, EXEC, S, False, False, Reason.OK),
    (FX | FU, READ, USR, False, True, Reason.OK),
    (FX | FU, READ, USR, False, False, Reason.PERMISSION),
    (FX | FU, READ, S, True, True, Reason.OK),                        # SUM and MXR together
    (FX | FU, READ, S, False, True, Reason.PERMISSION),
    (FR | FW | FX, READ, S, False, False, Reason.OK),
    (FR | FW | FX, WRITE, S, False, False, Reason.OK),
    (FR | FW | FX, EXEC, S, False, False, Reason.OK),
]


@pytest.mark.parametrize(("flags", "access", "priv", "sum_", "mxr", "reason"), PERMISSIONS)
def test_permissions(flags: MappingFlags, access: Access, priv: Privilege, sum_: bool, mxr: bool,
                     reason: Reason) -> None:
    s = Setup()
    s.pt.map(0x5000, DATA, K4, flags)
    s.pt.map(0x20_0000, RAM + 0x20_0000, M2, flags)
    w = s.walker(sum=sum_, mxr=mxr)
    for va, pa, level in ((0x5123, DATA + 0x123, 0), (0x21_2345, RAM + 0x21_2345, 1)):
        t = w.translate(va, access, priv)
        assert (t.va, t.access, t.privilege) == (va, access, priv)
        if reason == Reason.OK:
            assert_ok(t, pa, level)
        else:
            assert_fault(t, reason, level)


# --------------------------------------------------------------------------- superpages (step 6, 8)


@pytest.mark.parametrize(("va", "depth", "pa", "level"), [
    (0x4000_0000, 0, RAM + 0x20_0000, 2),         # 1G leaf, PPN[17:0] != 0 (2M-aligned only)
    (0x4000_0000, 0, RAM + K4, 2),                # 1G leaf, PPN[0] = 1
    (0x4000_0000, 0, RAM + (1 << 29), 2),         # 1G leaf, PPN[17] = 1
    (0x20_0000, 1, RAM + K4, 1),                  # 2M leaf, PPN[8:0] = 1
    (0x20_0000, 1, RAM + 0x10_0000, 1),           # 2M leaf, PPN[8] = 1
])
def test_misaligned_superpage(va: int, depth: int, pa: int, level: int) -> None:
    s = Setup()
    s.pt.map(0x1000, DATA, K4, FR)                # make sure the L1 table exists for the 2M case
    s.poke_entry(va, depth, ppn(pa) | V | R | W | A | D)
    for access in (READ, WRITE):
        assert_fault(s.walker().translate(va + 0x10, access), Reason.MISALIGNED_SUPERPAGE, level)


@pytest.mark.parametrize(("fmt", "size", "level", "region"), [
    (SV39, M2, 1, RAM), (SV39, G1, 2, RAM), (SV48, G1, 2, RAM),
    (SV48, 1 << 39, 3, 1 << 39), (SV57, 1 << 39, 3, 1 << 39), (SV57, 1 << 48, 4, 1 << 48),
])
def test_superpage_pa_takes_the_va_bits_below_the_leaf_level(fmt: PagingFormat, size: int, level: int,
                                                             region: int) -> None:
    extra = [] if region == RAM else [(region, 1 << 20)]
    s = Setup(fmt, extra=extra)
    va = 3 * size
    s.pt.map(va, region, size, FR | FW)
    w = s.walker()
    for off in (0, 0x123, 0xA_BCDE, 0xF_FFFF):
        assert_ok(w.translate(va + off, WRITE), region + off, level)
    if size > 16 << 20:
        # beyond the RAM behind the leaf: the final access faults, at the leaf's level
        assert_fault(w.translate(va + (16 << 20)), Reason.PA_OUTSIDE_MEMORY, level, AF)
        assert_fault(w.translate(va + size - 1), Reason.PA_OUTSIDE_MEMORY, level, AF)
    else:
        assert_ok(w.translate(va + size - 1), region + size - 1, level)


def test_superpage_upper_half() -> None:
    s = Setup()
    s.pt.map(0xFFFF_FFC0_0000_0000, RAM, G1, FR)
    s.pt.map(0xFFFF_FFFF_FFE0_0000, RAM + 0x20_0000, M2, FR | FX)
    w = s.walker()
    assert_ok(w.translate(0xFFFF_FFC0_00AB_CDEF), RAM + 0xAB_CDEF, 2)
    assert_ok(w.translate(0xFFFF_FFFF_FFFF_FFFF, EXEC), RAM + 0x3F_FFFF, 1)


# --------------------------------------------------------------------------- A/D (step 7)


def test_svade_a_clear_faults_every_access() -> None:
    s = Setup(codec=RiscvCodec(ad="hardware"))
    s.pt.map(0x1000, DATA, K4, FR | FW | FX)
    s.pt.map(0x20_0000, RAM + 0x20_0000, M2, FR | FW | FX)
    assert s.pt.lookup(0x1000).raw == ppn(DATA) | V | R | W | X            # A = D = 0
    w = s.walker()
    for access in (READ, WRITE, EXEC):
        assert_fault(w.translate(0x1000, access), Reason.ACCESSED_DIRTY, 0)
        assert_fault(w.translate(0x20_0000, access), Reason.ACCESSED_DIRTY, 1)
    svadu = s.walker(ad="svadu")
    for access in (READ, WRITE, EXEC):
        assert_ok(svadu.translate(0x1008, access), DATA + 8, 0)
        assert_ok(svadu.translate(0x20_0008, access), RAM + 0x20_0008, 1)


def test_svade_d_clear_faults_a_write_only() -> None:
    s = Setup()
    s.pt.map(0x1000, DATA, K4, FR | FW | FX)
    s.poke(0x1000, ppn(DATA) | V | R | W | X | A)                          # A = 1, D = 0
    w = s.walker()
    assert_ok(w.translate(0x1000, READ), DATA, 0)
    assert_ok(w.translate(0x1000, EXEC), DATA, 0)
    assert_fault(w.translate(0x1000, WRITE), Reason.ACCESSED_DIRTY, 0)
    assert_ok(s.walker(ad="svadu").translate(0x1000, WRITE), DATA, 0)
    assert s.mem.read_u64(s.pt.lookup(0x1000).pa) == ppn(DATA) | V | R | W | X | A   # the walk wrote nothing


def test_permission_is_checked_before_a_d() -> None:
    s = Setup(codec=RiscvCodec(ad="hardware"))
    s.pt.map(0x1000, DATA, K4, FR)
    assert_fault(s.walker().translate(0x1000, WRITE), Reason.PERMISSION, 0)


def test_preset_a_d_never_fault_what_the_flags_allow() -> None:
    s = Setup()
    s.pt.map(0x1000, DATA, K4, FR)
    s.pt.map(0x2000, DATA + K4, K4, FR | FW)
    assert s.pt.lookup(0x1000).raw == ppn(DATA) | V | R | A                # read-only page stays clean
    w = s.walker()
    assert_ok(w.translate(0x1000), DATA, 0)
    assert_ok(w.translate(0x2000, WRITE), DATA + K4, 0)


# --------------------------------------------------------------------------- final PA, Bare


def test_leaf_pa_outside_ram_is_an_access_fault() -> None:
    s = Setup()
    s.pt.map(0x1000, OUTSIDE, K4, FR)
    s.pt.map(0x20_0000, OUTSIDE, M2, FR)
    s.pt.map(0x3000, RAM - K4, K4, FR)
    w = s.walker()
    assert_fault(w.translate(0x1000), Reason.PA_OUTSIDE_MEMORY, 0, AF, ppn(OUTSIDE) | V | R | A)
    assert_fault(w.translate(0x20_0000), Reason.PA_OUTSIDE_MEMORY, 1, AF, ppn(OUTSIDE) | V | R | A)
    assert_fault(w.translate(0x3FFF), Reason.PA_OUTSIDE_MEMORY, 0, AF)
    # a page fault takes precedence: the final access never happens
    assert_fault(w.translate(0x1000, WRITE), Reason.PERMISSION, 0)


def test_bare_is_the_identity() -> None:
    mem = PhysMem([(RAM, 1 << 20)])
    w = Walker(mem, RiscvRules(0))
    assert_ok(w.translate(RAM + 0x1234, WRITE, USR), RAM + 0x1234, 0, pte=0)
    assert_ok(w.translate(RAM + 0xF_FFFF, EXEC), RAM + 0xF_FFFF, 0)
    assert_fault(w.translate(0x1234), Reason.PA_OUTSIDE_MEMORY, 0, AF)
    # no canonical check without translation
    assert_fault(w.translate(0xFFFF_FFFF_FFFF_F000), Reason.PA_OUTSIDE_MEMORY, 0, AF)
    many = w.translate_many([RAM, 0x10, RAM + 8])
    assert many.pa.tolist()[::2] == [RAM, RAM + 8]
    assert many.reason.tolist() == [Reason.OK, Reason.PA_OUTSIDE_MEMORY, Reason.OK]


def test_rules_accept_a_raw_satp() -> None:
    s = Setup()
    s.pt.map(0x1000, DATA, K4, FR)
    raw = 8 << 60 | 0x42 << 44 | s.pt.root_paddr >> 12
    assert_ok(Walker(s.mem, RiscvRules(raw)).translate(0x1000), DATA, 0)


# --------------------------------------------------------------------------- translate_many


@functools.cache
def rich() -> Setup:
    """One table with a bit of everything (built once; the walker never writes)."""
    s = Setup()
    pt = s.pt
    pt.map(0x1000, DATA, K4, FR)
    pt.map(0x2000, DATA + K4, K4, FR | FW)
    pt.map(0x3000, DATA + 2 * K4, K4, FX)
    pt.map(0x4000, DATA + 3 * K4, K4, FR | FW | FU)
    pt.map(0x5000, DATA + 4 * K4, K4, FR | FX | FU)
    pt.map(0x6000, DATA + 5 * K4, K4, FX | FU)
    pt.map(0x7000, OUTSIDE, K4, FR | FW)
    pt.map(0x8000, DATA, K4, MappingFlags(0))
    pt.map(0x9000, DATA, K4, FR | FW)
    s.poke(0x9000, ppn(DATA) | V | R | W | A)                    # D = 0
    pt.map(0xA000, DATA, K4, FR)
    s.poke(0xA000, ppn(DATA) | V | W)                            # W without R
    pt.map(0xB000, DATA, K4, FR)
    s.poke(0xB000, 1 << 61 | ppn(DATA) | V | R | A)              # PBMT = NC
    pt.map(0x20_0000, RAM + 0x20_0000, M2, FR | FW | FX)
    pt.map(0x4000_0000, RAM, G1, FR | FU)
    pt.map(0x8000_0000, RAM, G1, FR)
    s.poke(0x8000_0000, ppn(RAM + M2) | V | R | A)               # misaligned 1G
    pt.map(0xFFFF_FFC0_0000_0000, DATA, K4, FR | FW | FX)
    return s


RICH_VAS = [0x1000, 0x2000, 0x3000, 0x4000, 0x5000, 0x6000, 0x7000, 0x8000, 0x9000, 0xA000, 0xB000, 0xC000,
            0x20_0000, 0x3F_F000, 0x4000_0000, 0x40F0_0000, 0x4100_0000, 0x8000_0000, 0x1_0000_0000,
            0x40_0000_0000, 0xFFFF_FFC0_0000_0000, 0xFFFF_FFC0_0000_1000, 0xFFFF_FFFF_FFFF_F000]
OPTIONS = [RiscvOptions(), RiscvOptions(sum=True), RiscvOptions(mxr=True), RiscvOptions(sum=True, mxr=True),
           RiscvOptions(ad="svadu", svpbmt=True)]

lane = st.tuples(st.sampled_from(RICH_VAS), st.integers(0, 0xFFF), st.sampled_from(list(Access)),
                 st.sampled_from(list(Privilege)))


@settings(max_examples=60, deadline=None)
@given(st.lists(lane, min_size=1, max_size=24), st.sampled_from(OPTIONS))
def test_translate_many_agrees_with_translate(lanes: list[tuple[int, int, Access, Privilege]],
                                              options: RiscvOptions) -> None:
    s = rich()
    w = Walker(s.mem, RiscvRules(Satp.for_table(SV39, s.pt.root_paddr), options))
    vas = [va + off for va, off, _, _ in lanes]
    many = w.translate_many(np.array(vas, dtype=np.uint64), np.array([a for _, _, a, _ in lanes]),
                            np.array([p for _, _, _, p in lanes]))
    assert len(many) == len(lanes)
    assert many.va.tolist() == vas
    for i, (va0, off, access, priv) in enumerate(lanes):
        one = w.translate(va0 + off, access, priv)
        assert int(many.reason[i]) == one.reason
        assert int(many.level[i]) == one.level
        assert int(many.pte[i]) == one.pte
        assert bool(many.ok[i]) == one.ok
        if one.ok:
            assert int(many.pa[i]) == one.pa


def test_translate_many_expected_answers() -> None:
    s = rich()
    w = s.walker()
    vas = [0x1010, 0x2020, 0x3030, 0x4040, 0x7000, 0x8000, 0x9000, 0xA000, 0xB000, 0xC000, 0x20_1234,
           0x4000_0010, 0x8000_0000, 0x1_0000_0000, 0x40_0000_0000]
    acc = [READ, WRITE, EXEC, READ, READ, READ, WRITE, READ, READ, READ, EXEC, READ, READ, READ, READ]
    priv = [S, S, S, USR, S, S, S, S, S, S, S, USR, S, S, S]
    t = w.translate_many(vas, acc, priv)
    assert t.reason.tolist() == [Reason.OK, Reason.OK, Reason.OK, Reason.OK, Reason.PA_OUTSIDE_MEMORY,
                                 Reason.INVALID, Reason.ACCESSED_DIRTY, Reason.W_WITHOUT_R, Reason.RESERVED,
                                 Reason.INVALID, Reason.OK, Reason.OK, Reason.MISALIGNED_SUPERPAGE,
                                 Reason.INVALID, Reason.NON_CANONICAL]
    assert t.level.tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 2, 2, 2]
    ok = t.ok
    assert t.pa[ok].tolist() == [DATA + 0x10, DATA + K4 + 0x20, DATA + 2 * K4 + 0x30, DATA + 3 * K4 + 0x40,
                                 RAM + 0x20_1234, RAM + 0x10]
    # scalar access/privilege broadcast to every lane, strings accepted
    both = w.translate_many(np.array([0x1000, 0x4000], dtype=np.uint64), "read", "user")
    assert both.reason.tolist() == [Reason.PERMISSION, Reason.OK]


def test_walk_options_and_register_values_are_checked() -> None:
    """RiscvOptions(ad="Svade") (or any typo) walked as Svadu; a 65-bit satp was truncated (1 << 64 became
    Bare, an identity map); a numpy satp failed with AttributeError."""
    for bad in ({"ad": "Svade"}, {"ad": "bogus"}):
        with pytest.raises(InvalidArgument, match="ad must be 'svade' or 'svadu'"):
            RiscvOptions(**bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentType, match="sum must be True or False"):
        RiscvOptions(sum=1)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="does not fit in 64 bits"):
        RiscvRules(1 << 64)
    with pytest.raises(InvalidArgument, match="does not fit in 64 bits"):
        RiscvRules((1 << 64) | 0x8000_0000_0008_0000)
    with pytest.raises(InvalidArgumentType):
        RiscvRules("0x8000000000080000")  # type: ignore[arg-type]
    assert RiscvRules(np.uint64(0x8000_0000_0008_0000)).regime.single.root == 0x8000_0000  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentType, match="RiscvOptions"):
        RiscvRules(0, object())  # type: ignore[arg-type]


def test_hgatp_ppn_1_0_read_as_zero() -> None:
    """The hypervisor extension: for Sv39x4/Sv48x4/Sv57x4 hgatp.PPN[1:0] always read as zero; the walker
    started the G-stage walk at 0x80001000 for PPN 0x80001."""
    assert RiscvRules.gstage(0x8000_0000_0008_0001).regime.single.root == 0x8000_0000
    assert RiscvRules.gstage(0x8000_0000_0008_0003).regime.single.root == 0x8000_0000


def test_entry_updates_are_svadu_leaf_a_d_and_nothing_with_svade() -> None:
    s = Setup(codec=RiscvCodec(ad="hardware"))                       # leaves with A=D=0
    s.pt.map(0x4000_0000, RAM + 0x10_0000, 4096, MappingFlags.READ | MappingFlags.WRITE)
    leaf = s.pt.lookup(0x4000_0000)
    w = s.walker(ad="svadu")
    assert [tuple(u) for u in w.entry_updates(0x4000_0008, "read")] == [(leaf.pa, leaf.raw, leaf.raw | A)]
    assert [u.new for u in w.entry_updates(0x4000_0008, "write")] == [leaf.raw | A | D]
    assert s.walker(ad="svade").entry_updates(0x4000_0008, "read") == ()   # Svade faults instead
    w.entry_updates(0x4000_0008, "write", apply=True)
    assert s.mem.read_u64(leaf.pa) == leaf.raw | A | D and w.entry_updates(0x4000_0008, "write") == ()
