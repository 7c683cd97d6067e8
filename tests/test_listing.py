"""The hardware listing (`Walker.mappings` and `listing.ptdump`): what the walk makes of every entry, bounded
on cyclic tables, and in agreement with `translate_many`."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from pagetable.arch.riscv_sv39 import PTE, SV39, SV39X4, SV48, Hgatp, Satp, Vsatp
from pagetable.arch.riscv_sv39.walk import HypervisorOptions, RiscvOptions, RiscvRules, two_stage_rules
from pagetable.arch.x86_64 import PAGING4, X86Rules
from pagetable.cli import main
from pagetable.flags import MappingFlags as F
from pagetable.format import PagingFormat
from pagetable.frames import FrameAllocator
from pagetable.listing import permissions, ptdump
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.vectors import generate_riscv, walker_for
from pagetable.vectors.riscv.modes import VECTOR_MODES, vector_mode
from pagetable.walker import Access, Privilege, Reason, Walker, perm_bit

from .fuzzing import assert_listing_agrees

RAM = 0x8000_0000
V, R, W, X, U, A, D, N = (PTE.mask(n) for n in ("V", "R", "W", "X", "U", "A", "D", "N"))


def table(options: RiscvOptions | None = None) -> tuple[PhysMem, PageTable, Walker]:
    mem = PhysMem([(RAM, 4 << 20)])
    pt = PageTable(SV39, mem, FrameAllocator(mem))
    return mem, pt, Walker(mem, RiscvRules(Satp.for_table(SV39, pt.root_paddr), options))


def test_permissions_text() -> None:
    assert permissions(0) == "S:--- U:---"
    assert permissions(perm_bit(Access.READ, Privilege.SUPERVISOR) | perm_bit(Access.EXECUTE, Privilege.USER)) == \
        "S:r-- U:--x"


def test_a_napot_leaf_lists_the_64k_it_maps() -> None:
    """vectors show listed a Svnapot leaf with its encoded PPN (...8000) instead of the 64 KiB range it maps."""
    mem, pt, walker = table(RiscvOptions(svnapot=True))
    pt.map(0x10000, RAM + 0x10_0000, 0x1000, F.READ)      # makes the PTE table
    block = RAM + 0x20_0000
    for k in range(16):
        mem.write_u64(pt.lookup(0x10000 + k * 0x1000).pa, V | R | W | A | D | N | ((block + 0x8000) >> 12) << 10)
    m = walker.mappings()
    assert len(m) == 16 and m.pa.tolist() == [block + k * 0x1000 for k in range(16)]
    assert ptdump(m) == ["0x0000000000010000-0x0000000000020000   0x0000000080200000        64K PTE N   ..     ..   "
                         "D A . . . W R V  S:rw- U:---"]
    software = pt.walk()                                    # the codec's view keeps the encoded PPN
    assert software.pa[0] == block + 0x8000
    assert walker.translate(0x1A123).pa == block + 0xA123


def test_reserved_bits_are_shown_and_marked() -> None:
    mem, pt, walker = table()
    pt.map(0x1000, RAM + 0x10_0000, 0x1000, F.READ)
    slot = pt.lookup(0x1000)
    mem.write_u64(slot.pa, slot.raw | 1 << 57)
    [line] = ptdump(walker.mappings())
    assert "RES(08) . A . . . . R V  ! faults: reserved" in line


@pytest.mark.parametrize("bit", [A, D, U])
def test_a_non_leaf_entry_the_hardware_rejects_is_marked_and_not_followed(bit: int) -> None:
    """The listing used to go through non-leaf PTEs with A, D or U set as if the hardware used them."""
    mem, pt, walker = table()
    pt.map(0x20_0000, RAM + 0x10_0000, 0x1000, F.READ | F.WRITE)
    slot = pt.lookup(0x20_0000, 1)
    mem.write_u64(slot.pa, slot.raw | bit)
    m = walker.mappings()
    assert m.va.tolist() == [0x20_0000] and m.size.tolist() == [1 << 21]
    assert m.verdict is not None and m.verdict.tolist() == [Reason.RESERVED]
    assert ptdump(m)[0].endswith("! faults: reserved")
    assert len(pt.walk()) == 1 and pt.walk().size.tolist() == [0x1000]   # the software view still follows it


def test_listing_a_self_referencing_root_is_bounded() -> None:
    mem, pt, walker = table()
    mem.words(pt.root_paddr, 512)[:] = V | (pt.root_paddr >> 12) << 10
    m = walker.mappings()
    assert len(m) == 0 and len(m.problems) == 1 and "a loop" in m.problems[0]


def test_vectors_show_of_a_self_referencing_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A root of 512 pointers to itself made `vectors show` build a 1 GiB array (MemoryError under a 4 GB
    limit) and print an empty listing with no note."""
    generate_riscv("sv48", 1, cases=20).write(tmp_path, "x\n")
    image = bytearray((tmp_path / "mem.bin").read_bytes())
    self_ptr = (V | (RAM >> 12) << 10).to_bytes(8, "little")
    image[:4096] = self_ptr * 512                           # the root table is at RAM
    (tmp_path / "mem.bin").write_bytes(bytes(image))
    tracemalloc.start()
    assert main(["vectors", "show", str(tmp_path)]) == 0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    out = capsys.readouterr().out
    assert "note: the entry at 0x80000000 (and 511 more entries) makes table 0x80000000 the level-2 table" in out
    assert "a loop" in out
    assert peak < 64 << 20


def test_vectors_show_names_a_vs_table_the_g_stage_does_not_let_the_walk_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vs = generate_riscv("sv39+sv39x4", 3, options=HypervisorOptions(hs_mxr=True))
    vs.write(tmp_path, "x\n")
    assert main(["vectors", "show", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "which stage 2 does not let the walk read (guest-page-fault: permission" in out


MODES = [(mode, options) for mode in VECTOR_MODES
         for options in ({}, {"sum": True, "mxr": True, "svnapot": True, "svpbmt": True, "ad": "svadu"},
                         {"hs_mxr": True})
         if "x4" in mode or "hs_mxr" not in options
         if not (mode.endswith("x4") and "+" not in mode and "sum" in options)
         if not (mode.startswith("sv32") and "svpbmt" in options)] + [
    ("sv32", {"sum": True, "mxr": True, "ad": "svadu"}), ("sv32+sv32x4", {"sum": True, "mxr": True, "ad": "svadu"})]


@pytest.mark.parametrize(("mode", "options"), MODES)
def test_the_listing_agrees_with_the_walker(mode: str, options: dict[str, object]) -> None:
    """Every listed usable leaf translates exactly for the accesses its `perms` name, to its PA; every
    rejected entry faults with its verdict for every access; and every VA the walker translates is listed."""
    vs = generate_riscv(mode, 11, options=vector_mode(mode).options(**options))  # type: ignore[arg-type]
    walker = walker_for(vs)
    stage1 = [walker] if walker.rules.regime.translates else []
    for w in ([walker.stage2] if walker.stage2 is not None else []) + stage1:
        assert w is not None
        m = w.mappings()
        assert_listing_agrees(w, Walker(w.mem, w.rules) if w is walker.stage2 else w, m)
        if w is walker:                        # the cases' VAs are this table's (not the G-stage's below it)
            t = w.translate_many(*vs.lanes())
            listed = np.zeros(t.va.shape, dtype=bool)
            for va, size in zip(m.va.tolist(), m.size.tolist(), strict=True):
                listed |= (t.va >= np.uint64(va)) & (t.va - np.uint64(va) < np.uint64(size))
            assert np.all(listed[t.reason == 0])


def test_mappings_of_bare_translation_is_an_error() -> None:
    mem = PhysMem([(RAM, 1 << 20)])
    w = Walker(mem, RiscvRules(0))
    with pytest.raises(ValueError, match="Bare"):
        w.mappings()


def test_sv48_listing_of_a_kernel_linear_map() -> None:
    """A linear map of 4 GiB of PA over 4 MiB of RAM: the leaves with no RAM fault on every access (an access
    fault), the one holding RAM is usable and noted as only partly RAM."""
    mem = PhysMem([(RAM, 4 << 20)])
    pt = PageTable(SV48, mem, FrameAllocator(mem))
    pt.map_region(0xFFFF_8000_0000_0000, 0, 4 << 30, F.READ | F.WRITE, allow_huge=True)
    walker = Walker(mem, RiscvRules(Satp.for_table(SV48, pt.root_paddr)))
    m = walker.mappings()
    letters = "PUD .   ..     ..   D A . . . W R V"
    assert ptdump(m) == [
        f"0xffff800000000000-0xffff800080000000   0x0000000000000000         2G {letters}  ! faults: pa-outside-memory",
        f"0xffff800080000000-0xffff8000c0000000   0x0000000080000000         1G {letters}  S:rw- U:---",
        f"0xffff8000c0000000-0xffff800100000000   0x00000000c0000000         1G {letters}  ! faults: pa-outside-memory"]
    assert m.problems == ("the 1G leaf at VA 0xffff800080000000 maps [0x80000000, 0xc0000000), of which only "
                          "part is RAM",)


def test_a_leaf_only_partly_ram_is_noted_once_whatever_its_neighbours() -> None:
    """The note is one per leaf, not one per access that reaches it, whether the leaf's table is judged as a
    whole (entries alike) or entry by entry (here a read-only neighbour makes the entries differ)."""
    mem = PhysMem([(RAM, 4 << 20)])
    pt = PageTable(SV48, mem, FrameAllocator(mem))
    pt.map_region(0xFFFF_8000_0000_0000, 0, 4 << 30, F.READ | F.WRITE | F.EXECUTE, allow_huge=True)
    pt.map(0xFFFF_8001_0000_0000, 0x1_0000_0000, 1 << 30, F.READ)
    m = Walker(mem, RiscvRules(Satp.for_table(SV48, pt.root_paddr))).mappings()
    assert m.problems == ("the 1G leaf at VA 0xffff800080000000 maps [0x80000000, 0xc0000000), of which only "
                          "part is RAM",)


def test_guest_physical_aliases_of_one_host_table_are_one_table() -> None:
    """The G-stage maps 512 guest pages onto K host frames whose VS entries point at 512 distinct GPAs each:
    the listing used to read every alias as a new table (1.8M rows and 1.2 GB for K=8)."""
    k = 8
    mem = PhysMem([(RAM, (6 + k) * 4096)])
    w = mem.regions[0].words

    def frame(n: int) -> int:
        return RAM + n * 4096
    w[0] = V | frame(4) >> 12 << 10                          # G-stage root entry 0 -> one level-1 table
    w[4 * 512:5 * 512] = V | frame(5) >> 12 << 10            # ... whose every entry -> one level-0 table
    for j in range(512):
        w[5 * 512 + j] = V | R | W | U | A | D | frame(6 + j % k) >> 12 << 10
    for f in range(k):
        w[(6 + f) * 512:(7 + f) * 512] = V | ((f * 512 + np.arange(512, dtype=np.uint64)) << np.uint64(10))
    walker = Walker.nested(mem, two_stage_rules(Vsatp.for_table(SV39, 0), Hgatp.for_table(SV39X4, RAM)))
    tracemalloc.start()
    m = walker.mappings()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(m) == 0 and peak < 16 << 20
    assert 0 < len(m.problems) <= 4 * k
    assert any("a loop" in p or "also used at level" in p or "shared by" in p for p in m.problems)


def test_a_stage_2_refusal_of_an_entry_update_is_named_as_such() -> None:
    """Svadu, an A=0 VS leaf whose tables are on read-only G-stage pages: every access must set A, which
    stage 2 refuses; the listing said "! faults: permission" as if the VS leaf's permissions were wrong."""
    mem = PhysMem([(RAM, 16 * 4096)])
    w = mem.regions[0].words

    def frame(n: int) -> int:
        return RAM + n * 4096
    w[0], w[4 * 512] = V | frame(4) >> 12 << 10, V | frame(5) >> 12 << 10
    for i in range(4):                                      # GPA page i -> host frame 8 + i; 0-2 read-only
        w[5 * 512 + i] = frame(8 + i) >> 12 << 10 | V | R | U | A | D | (W if i == 3 else 0)
    w[8 * 512], w[9 * 512] = V | 1 << 10, V | 2 << 10         # VS tables at GPAs 0, 0x1000, 0x2000
    w[10 * 512 + 5] = 3 << 10 | V | R | W | D                  # the A=0 leaf at VA 0x5000
    walker = Walker.nested(mem, two_stage_rules(Vsatp.for_table(SV39, 0), Hgatp.for_table(SV39X4, RAM),
                              HypervisorOptions(ad="svadu")))
    [line] = ptdump(walker.mappings())
    assert line.endswith("! faults: stage 2 refuses the entry's update: permission")
    t = walker.translate(0x5000, "read")
    assert (t.stage, t.implicit, t.gpa) == (2, True, 0x2028)


def test_leaves_whose_output_the_hardware_cannot_reach_fault_in_the_listing() -> None:
    """`vectors show` printed S:rw- for a leaf whose PA is outside RAM (an access fault for every access) and
    S:rwx for a VS leaf whose GPA the G-stage refuses."""
    from pagetable.vectors.riscv.gen import OUTSIDE_RAM
    one = walker_for(generate_riscv("sv39", 1)).mappings()
    assert one.verdict is not None
    row = np.flatnonzero(one.pa == OUTSIDE_RAM)
    assert row.size == 1 and one.verdict[row[0]] == Reason.PA_OUTSIDE_MEMORY
    two = walker_for(generate_riscv("sv39+sv39x4", 1)).mappings()
    assert two.verdict is not None and two.verdict_stage is not None
    wide = np.flatnonzero(two.pa >= np.uint64(1 << 41))
    assert wide.size == 1 and two.verdict_stage[wide[0]] == 2 and two.verdict[wide[0]] == Reason.NON_CANONICAL
    assert ptdump(two.select(two.pa >= np.uint64(1 << 41)))[0].endswith("! faults: stage 2: non-canonical")


@pytest.mark.parametrize("fmt", [SV39, PAGING4], ids=["sv39", "x86-4level"])
def test_a_uniform_level_lists_the_flags_of_each_entry(fmt: PagingFormat) -> None:
    """The listing decodes one entry's flags for a level whose entries are equal in the bits the rules judge
    (every bit but the address's): the rows' flags are each entry's own, for 4K and 2M leaves of several
    kinds, and entries equal in those bits decode to equal flags whatever their addresses."""
    mem = PhysMem([(0x8000_0000, 64 << 20)])
    pt = PageTable(fmt, mem, FrameAllocator(mem, 0x8000_0000 + (48 << 20), 16 << 20))
    kinds = [F.READ | F.WRITE, F.READ | F.EXECUTE | F.USER, F.READ | F.DEVICE, F.READ | F.WRITE | F.UNCACHED]
    for k, flags in enumerate(kinds):
        if fmt is SV39 and flags & (F.DEVICE | F.UNCACHED):
            flags &= ~(F.DEVICE | F.UNCACHED)                   # no Svpbmt in the default codec
        pt.map_region(0x4000_0000 + k * (8 << 20), 0x8000_0000 + k * (8 << 20), 4 << 20, flags)        # 4K
        pt.map_region(0x4000_0000 + k * (8 << 20) + (4 << 20), 0x8000_0000 + k * (8 << 20) + (4 << 20),
                      4 << 20, flags, allow_huge=True)                                                  # 2M
    rules = RiscvRules(Satp.for_table(SV39, pt.root_paddr)) if fmt is SV39 else X86Rules(pt.root_paddr)
    m = Walker(mem, rules).mappings()
    assert len(m) == 4 * (1024 + 2)
    last = fmt.depth_count - 1
    for d in np.unique(m.depth).tolist():
        sel = m.depth == d
        assert np.array_equal(m.flags[sel], fmt.codec.flags_np(m.raw[sel], d != last))
        assert np.array_equal(m.flags[sel], pt.walk().flags[sel])
        judged = rules.judged_bits(rules.regime.single, d)
        rng = np.random.default_rng(d)
        raws, noise = (np.frombuffer(rng.bytes(8 * 2048), dtype=np.uint64) for _ in range(2))
        other = (raws & np.uint64(judged)) | (noise & ~np.uint64(judged))
        assert np.array_equal(fmt.codec.flags_np(raws, d != last), fmt.codec.flags_np(other, d != last))
