"""What a generated RISC-V vector set covers, mode by mode and seed by seed: an invalid entry at every level
(the root included), a misaligned superpage at every superpage level, executable and user superpages at
every superpage level, reserved encodings on non-leaf entries and on superpages, every reserved Svnapot
PPN[3:0] the seed picks, A/D-clear, execute-only and W-without-R superpages, the two-stage access faults, the
G-stage fault on the VS root table and the G-stage superpages; Sv32's leaves above 4 GiB and the encodings
its 4-byte PTEs cannot hold left out; and that the seed draws the structure (two seeds give different
labels, levels or counts), while one seed gives the same bytes."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from pagetable.arch.riscv_sv39.faults import HTINST_PTE
from pagetable.errors import InvalidArgument
from pagetable.flags import human_size
from pagetable.format import PagingFormat
from pagetable.vectors import Case, VectorSet, generate_riscv
from pagetable.vectors.riscv import qemu32
from pagetable.vectors.riscv.modes import VECTOR_MODES, vector_mode

MODES = list(VECTOR_MODES)
RV64_MODES = [mode for mode in MODES if VECTOR_MODES[mode].xlen == 64]
SEEDS = (1, 2, 3)


def _format(mode: str) -> PagingFormat:
    """The format the set's own targets are built in: the VS-stage, or the G-stage alone."""
    fmt = VECTOR_MODES[mode].stage1 or VECTOR_MODES[mode].gstage
    assert fmt is not None
    return fmt


def _levels(fmt: PagingFormat) -> dict[str, int]:
    """Size label → the manual's level number, for every level (4K last)."""
    return {human_size(lv.span): lv.arch_level for lv in fmt.levels}


def _by_label(vs: VectorSet) -> dict[str, list[Case]]:
    out: dict[str, list[Case]] = collections.defaultdict(list)
    for c in vs.cases:
        out[c.label].append(c)
    return out


def _tagged(vs: VectorSet, pa: int) -> bool:
    """Whether the word at `pa` is its tag: PA << 16 in a u64, or on RV32 the harness's u32 tag."""
    if VECTOR_MODES[vs.mode].xlen == 32:
        return vs.mem.read_u32(pa & ~3) == qemu32.tag(pa & ~3)
    return vs.mem.read_u64(pa & ~7) == (pa & ~7) << 16


def _faults(cases: list[Case]) -> set[tuple[str, int | None]]:
    return {(c.reason, c.level) for c in cases if c.fault is not None}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mode", MODES)
def test_every_level_has_an_invalid_entry_and_every_superpage_level_the_rest(mode: str, seed: int) -> None:
    vs = generate_riscv(mode, seed)
    by = _by_label(vs)
    levels = _levels(_format(mode))
    for size, i in levels.items():
        assert _faults(by[f"invalid-v0-{size}"]) == {("invalid", i)}, size
        if i == 0:
            continue
        assert ("misaligned-superpage", i) in _faults(by[f"misaligned-superpage-{size}"]), size
        assert _faults(by[f"unmapped-{size}"]) == {("invalid", i)}, size
        executable = [label for label in by if label.startswith(f"superpage-{size}-")
                      and label.split("-")[-1] in ("rx", "xo", "rwx")]
        user = [label for label in by if label.startswith(f"user-superpage-{size}-")]
        assert len(executable) == len(user) == 1, (size, executable, user)
        # a fetch from the executable superpage translates, to a tag (an illegal instruction)
        fetch = next(c for c in by[executable[0]] if c.access == "execute" and c.privilege == "supervisor")
        assert fetch.pa is not None and _tagged(vs, fetch.pa), fetch
        assert any(c.pa is not None for c in by[user[0]] if c.privilege == "user"), user[0]
        for c in by[executable[0]] + by[user[0]]:
            assert c.fault is None or c.level == i or c.stage == 2, c


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mode", RV64_MODES)
def test_reserved_encodings_on_pointers_superpages_and_napot(mode: str, seed: int) -> None:
    vm = vector_mode(mode)
    vs = generate_riscv(mode, seed, options=vm.options(svnapot=True, svpbmt=True))
    by = _by_label(vs)
    levels = _levels(_format(mode))
    pointer_kinds = ("nonleaf-accessed", "nonleaf-dirty", "nonleaf-user", "nonleaf-reserved-bit", "nonleaf-pbmt",
                     "nonleaf-napot")
    for kind in (*pointer_kinds, "napot-superpage"):
        found = [label for label in by if label.startswith(kind + "-")]
        assert found, kind
        for label in found:                 # labelled with their level's size: reserved there, above level 0
            i = levels[label.rsplit("-", 1)[1]]
            assert i > 0 and _faults(by[label]) == {("reserved", i)}, label
    bad = [label for label in by if label.startswith("napot-ppn-")]
    assert 1 <= len(bad) <= 3 and "napot-ppn-1000" not in bad
    for label in bad:
        assert _faults(by[label]) == {("reserved", 0)}, label
    assert {(c.pa is not None) for c in by["napot-64k"] if c.privilege == "supervisor" and c.access == "read"} \
        == {True}


@pytest.mark.parametrize("seed", SEEDS)
def test_sv32_has_only_what_a_4_byte_pte_encodes(seed: int) -> None:
    """Sv32 (privileged spec, "Sv32"): no target built on bits 60:54, PBMT or N (a 4-byte PTE has no bits
    63:32), no non-canonical VAs (every 32-bit VA translates), Svnapot and Svpbmt refused; the non-leaf rules
    it has (A, D, U on a pointer) at the root; a leaf above 4 GiB (PA bits 33:32) and the 4 KiB leaf outside
    RAM fault as access faults at their level, their PAs 34 bits; every VA, PA and satp a u32 / u34."""
    vs = generate_riscv("sv32", seed)
    by = _by_label(vs)
    assert not [label for label in by if "reserved-bit" in label or "pbmt" in label or "napot" in label
                or "canonical" in label]
    for kind in ("nonleaf-accessed", "nonleaf-dirty", "nonleaf-user"):
        assert _faults(by[f"{kind}-4M"]) == {("reserved", 1)}, kind
    high = [label for label in by if label.startswith("above-4g-")]
    assert len(high) == 1
    level = {"4M": 1, "4K": 0}[high[0].split("-")[2]]
    assert ("pa-outside-memory", level) in _faults(by[high[0]])
    outside = [c for c in by[high[0]] + by["leaf-outside-ram"] if c.reason == "pa-outside-memory"]
    assert outside and all(c.fault == "access-fault" and c.syndrome is not None and
                           c.syndrome["scause"] in (1, 5, 7) for c in outside)
    assert all(c.va < 1 << 32 for c in vs.cases) and vs.registers["satp"] >> 31 == 1
    assert vs.registers["satp"] < 1 << 32 and all(c.pa < 1 << 34 for c in vs.cases if c.pa is not None)
    with pytest.raises(InvalidArgument, match="Sv32 PTEs have no PBMT or N field"):
        vector_mode("sv32").options(svnapot=True)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mode", MODES)
def test_malformed_superpages(mode: str, seed: int) -> None:
    vs = generate_riscv(mode, seed)
    by = _by_label(vs)
    levels = _levels(_format(mode))
    for kind, reason in (("accessed-clear", "accessed-dirty"), ("dirty-clear", "accessed-dirty"),
                         ("w-without-r", "w-without-r"), ("xo-superpage", "permission")):
        found = [label for label in by if label.startswith(kind + "-")]
        assert found, kind
        for label in found:
            i = levels[label.rsplit("-", 1)[1]]
            assert i > 0 and (reason, i) in _faults(by[label]), label
    for label in (label for label in by if label.startswith("xo-superpage-")):
        if VECTOR_MODES[mode].gstage is None:
            assert any(c.pa is not None for c in by[label] if c.access == "execute"), label


@pytest.mark.parametrize("mode", ["sv39+sv39x4", "sv48+sv48x4", "sv57+sv57x4", "sv32+sv32x4"])
def test_two_stage_access_faults_root_and_gstage_superpages(mode: str) -> None:
    vm = vector_mode(mode)
    vs = generate_riscv(mode, 5, options=vm.options(ad="svadu"))
    by = _by_label(vs)
    for label in ("gstage-leaf-outside-ram", "vs-table-host-outside-ram"):
        faults = {(c.fault, c.stage, c.implicit) for c in by[label] if c.privilege == "supervisor"}
        assert faults == {("access-fault", 2, label.startswith("vs-table"))}, label
    assert {(c.fault, c.reason, c.stage) for c in by["gstage-table-outside-ram"] if c.privilege == "supervisor"} \
        == {("access-fault", "table-outside-memory", 2)}
    root = vm.vsatp.decode(vs.registers["vsatp"]).root
    for label in ("vs-root-gstage-ro-a-clear", "vs-root-gstage-ro-d-clear"):
        stores = [c for c in by[label] if c.access == "write" and c.privilege == "supervisor"]
        assert stores and all(c.fault == "guest-page-fault" and c.implicit and c.gpa is not None
                              and c.gpa >> 12 == root >> 12 and c.syndrome is not None      # RV32: 0x2020
                              and c.syndrome["htinst"] == HTINST_PTE[vm.xlen][1] for c in stores), stores
    g = VECTOR_MODES[mode].gstage
    assert g is not None
    sizes = [human_size(lv.span) for lv in g.levels[:-2]]          # 1 GiB and up
    assert sizes == {"sv39+sv39x4": ["1G"], "sv48+sv48x4": ["512G", "1G"],
                     "sv57+sv57x4": ["256T", "512G", "1G"], "sv32+sv32x4": []}[mode]
    for size, lv in zip(sizes, g.levels, strict=False):
        ok = [c.pa for c in by[f"gstage-superpage-{size}"] if c.pa is not None]
        assert ok and all(0x8000_0000 <= pa < 0x8080_0000 for pa in ok), size       # host RAM, not guest RAM
        beyond = {(c.fault, c.reason, c.level, c.stage) for c in by[f"gstage-superpage-{size}-beyond-ram"]
                  if c.privilege == "supervisor"}
        assert beyond == {("access-fault", "pa-outside-memory", lv.arch_level, 2)}, size


@pytest.mark.parametrize("seed", SEEDS)
def test_sv32x4_alone_reaches_the_16k_root_and_32_bit_vas(seed: int) -> None:
    """Sv32x4 alone (vsatp Bare: the VA is the GPA; hypervisor extension, "Guest Physical Address
    Translation"): RV32 registers (hgatp MODE bit 31, a u32; vsatp 0); the cases an RV32 hart can make (VAs
    below 2**32) for every target but two: a page mapped through the 16 KiB root's upper half (GPA bit 33, root
    index >= 2048), which translates, and a GPA of 35 bits, beyond the G-stage's 34 (a guest-page fault at the
    root, htval its GPA >> 2)."""
    vm = vector_mode("sv32x4")
    vs = generate_riscv("sv32x4", seed)
    by = _by_label(vs)
    assert vs.registers["vsatp"] == 0 and vs.registers["hgatp"] >> 31 == 1 and vs.registers["hgatp"] < 1 << 32
    hgatp = vm.hgatp.decode(vs.registers["hgatp"])
    assert hgatp.format is not None and hgatp.format.levels[0].entries == 4096
    assert {c.label for c in vs.cases if c.va >> 32} == {"gpa-upper-half", "gpa-too-wide"}
    assert all(c.pa is not None and c.va >> 33 == 1 for c in by["gpa-upper-half"])
    wide = {(c.fault, c.reason, c.level, c.stage) for c in by["gpa-too-wide"]}
    assert wide == {("guest-page-fault", "non-canonical", 1, 2)}
    assert all(c.syndrome is not None and c.syndrome["htval"] == c.va >> 2 for c in by["gpa-too-wide"])
    high = [label for label in by if label.startswith("above-4g-")]
    assert len(high) == 1 and any(c.fault == "access-fault" for c in by[high[0]])
    with pytest.raises(InvalidArgument, match="Sv32 PTEs have no PBMT or N field"):
        vm.options(svpbmt=True)


def test_sv32_two_stages_reach_gpas_above_4g() -> None:
    """Sv32 over Sv32x4: a VS-stage PTE holds a 34-bit GPA, the G-stage's whole width (no GPA too wide to
    make), and the VS leaves and tables above 4 GiB reach the G-stage, whose guest-page faults report the
    34-bit GPA in htval (>> 2: htval is 32 bits on RV32) and, for implicit VS-stage reads, htinst 0x2000."""
    vs = generate_riscv("sv32+sv32x4", 1)
    by = _by_label(vs)
    assert "gstage-gpa-too-wide" not in by and vs.registers["vsatp"] >> 31 == vs.registers["hgatp"] >> 31 == 1
    high = [c for c in vs.cases if c.fault == "guest-page-fault" and c.gpa is not None and c.gpa >> 32]
    assert high and all(c.syndrome is not None and c.syndrome["htval"] == (c.gpa or 0) >> 2 < 1 << 32 for c in high)
    implicit = [c for c in high if c.implicit]
    assert implicit and {c.syndrome["htinst"] for c in implicit if c.syndrome is not None} == {0x2000}
    assert all(c.va < 1 << 32 for c in vs.cases)


def _fault_counts(vs: VectorSet) -> collections.Counter[tuple[str, int | None]]:
    return collections.Counter((c.reason, c.level) for c in vs.cases if c.fault is not None)


@pytest.mark.parametrize("mode", MODES)
def test_seeds_draw_the_structure_and_one_seed_gives_the_same_bytes(mode: str) -> None:
    """Six seeds: six different sets of labels and six different counts of faults by reason and level, and
    the groups in a different order; seed 1 again: the same image, registers and cases."""
    sets = [generate_riscv(mode, seed) for seed in range(1, 7)]
    assert len({frozenset(c.label for c in vs.cases) for vs in sets}) == 6
    assert len({frozenset(_fault_counts(vs).items()) for vs in sets}) == 6
    order = [list(dict.fromkeys(c.label for c in vs.cases)) for vs in sets[:2]]
    common = set(order[0]) & set(order[1])
    assert [x for x in order[0] if x in common] != [x for x in order[1] if x in common]
    again = generate_riscv(mode, 1)
    assert again.cases == sets[0].cases and again.registers == sets[0].registers
    assert all(np.array_equal(a.data, b.data) for a, b in zip(again.mem.regions, sets[0].mem.regions, strict=True))
