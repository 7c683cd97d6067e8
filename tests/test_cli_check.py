"""`pagetable check`: exact findings on tables built by hand (x86-64, RISC-V; AArch64's TTBR1 region), the
findings the vector generators plant (their reserved-bit, misaligned and W-without-R cases are errors at
their VAs, for every architecture), output formats, exit status, and the time against `Walker.mappings`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pagetable import registry
from pagetable.arch.riscv_sv39 import (
    SV39,
    Satp,
)
from pagetable.arch.riscv_sv39.walk import RiscvRules
from pagetable.arch.x86_64 import PAGING4
from pagetable.arch.x86_64.walk import X86Options, X86Rules
from pagetable.cli import main
from pagetable.dump.check import Finding, check, finding_line
from pagetable.flags import MappingFlags as F
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.walker import Walker

from .test_cli_translate import MODES, image, pa_bits, registers, vector_set, walker

K4, RAM = 4096, 0x100_0000


def x86_image() -> tuple[PhysMem, PageTable]:
    """4 MiB of RAM at 16 MiB: a W+X direct map of 2 MiB, a user page in the kernel half, low pages outside
    RAM as UC and WB, a PTE with a bit reserved under MAXPHYADDR 40, and a page table two PD entries share."""
    mem = PhysMem([(RAM, 1024 * K4)])
    pt = PageTable(PAGING4, mem, FrameAllocator(mem))
    pt.map_region(0xFFFF_8880_0000_0000, RAM, 1 << 21, F.READ | F.WRITE | F.EXECUTE)
    pt.map(0xFFFF_C900_0000_0000, RAM, K4, F.READ | F.WRITE | F.USER)
    pt.map(0x40_0000, RAM + K4, K4, F.READ | F.USER)
    pt.map(0x40_1000, 0xFEE0_0000, K4, F.READ | F.WRITE)
    s = pt.lookup(0x40_1000, 3)
    mem.write_u64(s.pa, s.raw | 0x18)                           # PCD|PWT: UC (Intel SDM vol. 3A 11.12.3)
    pt.map(0x40_2000, 0xFEE0_1000, K4, F.READ | F.WRITE)        # WB
    pt.map(0x40_3000, RAM + 2 * K4, K4, F.READ)
    s = pt.lookup(0x40_3000, 3)
    mem.write_u64(s.pa, s.raw | 1 << 45)                        # reserved: above MAXPHYADDR 40
    pde = pt.lookup(0x40_0000, 2)
    mem.write_u64(pde.table + 8 * 4, pde.raw)                   # PD entry 4 shares entry 2's page table
    return mem, pt


X86_LINES = [
    "info shared-table cr3 0x400000-0xa00000 level 1 entry {pd2:#x} x2: the level-1 table {ptab:#x} is shared by 2 "
    "entries (2 references), listed under each",
    "info mmio cr3 0x401000-0x402000 level 1 entry {pte1:#x}=0x80000000fee0001b: maps no RAM of the image, as "
    "device memory (MMIO, presumably) ([0xfee00000, 0xfee01000), uc)",
    "warning mmio-normal cr3 0x402000-0x403000 level 1 entry {pte2:#x}=0x80000000fee01003: maps no RAM of the "
    "image (MMIO?) as normal cacheable memory ([0xfee01000, 0xfee02000), wb)",
    "error rejected-entry cr3 0x403000-0x404000 level 1 entry {pte3:#x}={raw3:#018x}: the hardware rejects the "
    "entry: reserved (every access faults)",
    "info mmio cr3 0x801000-0x802000 level 1 entry {pte1:#x}=0x80000000fee0001b: maps no RAM of the image, as "
    "device memory (MMIO, presumably) ([0xfee00000, 0xfee01000), uc)",
    "warning mmio-normal cr3 0x802000-0x803000 level 1 entry {pte2:#x}=0x80000000fee01003: maps no RAM of the "
    "image (MMIO?) as normal cacheable memory ([0xfee01000, 0xfee02000), wb)",
    "error rejected-entry cr3 0x803000-0x804000 level 1 entry {pte3:#x}={raw3:#018x}: the hardware rejects the "
    "entry: reserved (every access faults)",
    "warning wx cr3 0xffff888000000000-0xffff888000200000 level 1 entry {dm:#x}=0x0000000001000003 x512: "
    "writable and executable (S:rwx U:---)",
    "error user-kernel-half cr3 0xffffc90000000000-0xffffc90000001000 level 1 entry {user:#x}=0x8000000001000007: "
    "user-accessible in the kernel half (S:rw- U:rw-)",
    "check: 9 findings: 3 errors, 3 warnings, 3 infos",
]


def x86_expected(pt: PageTable) -> list[str]:
    pte3 = pt.lookup(0x40_3000, 3)
    places = {"pd2": pt.lookup(0x40_0000, 2).pa, "ptab": pt.lookup(0x40_0000, 3).table,
              "pte1": pt.lookup(0x40_1000, 3).pa, "pte2": pt.lookup(0x40_2000, 3).pa, "pte3": pte3.pa,
              "raw3": pte3.raw, "dm": pt.lookup(0xFFFF_8880_0000_0000, 3).pa,
              "user": pt.lookup(0xFFFF_C900_0000_0000, 3).pa}
    return [line.format(**places) for line in X86_LINES]


def raw_args(mem: PhysMem, d: Path) -> list[str]:
    specs = []
    for n, r in enumerate(mem.regions):
        (d / f"ram{n}.bin").write_bytes(bytes(r.data))
        specs.append(f"{d / f'ram{n}.bin'}@{r.base:#x}")
    return specs


def run(capsys: pytest.CaptureFixture[str], argv: list[str], status: int) -> list[str]:
    assert main(argv) == status, capsys.readouterr().err
    out = capsys.readouterr()
    assert out.err == ""
    return out.out.splitlines()


def test_x86_findings_line_by_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mem, pt = x86_image()
    argv = ["check", *raw_args(mem, tmp_path), "--arch", "x86_64", "--reg", f"cr3={pt.root_paddr:#x}",
            "--reg", "cr0=0x80010001", "--reg", "cr4=0x20", "--reg", "efer=0xd01", "--pa-bits", "40"]
    assert run(capsys, argv, 1) == x86_expected(pt)
    objs = [json.loads(line) for line in run(capsys, [*argv, "--json"], 1)]
    assert len(objs) == 9 and objs[7] == {
        "severity": "warning", "rule": "wx", "region": "cr3", "start": "0xffff888000000000",
        "end": "0xffff888000200000", "level": 1, "slot": hex(pt.lookup(0xFFFF_8880_0000_0000, 3).pa),
        "raw": "0x1000003", "count": 512, "message": "writable and executable (S:rwx U:---)"}


def test_a_table_without_findings_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mem = PhysMem([(RAM, 64 * K4)])
    pt = PageTable(PAGING4, mem, FrameAllocator(mem))
    pt.map_region(0xFFFF_8880_0000_0000, RAM, 64 * K4, F.READ | F.WRITE)
    argv = ["check", *raw_args(mem, tmp_path), "--arch", "x86_64", "--reg", f"cr3={pt.root_paddr:#x}",
            "--reg", "cr0=0x80010001", "--reg", "cr4=0x20", "--reg", "efer=0xd01"]
    assert run(capsys, argv, 0) == ["check: 0 findings: 0 errors, 0 warnings, 0 infos"]
    assert run(capsys, [*argv, "--json"], 0) == []


def test_riscv_w_without_r_misaligned_superpage_user_upper_half_and_a_loop() -> None:
    mem = PhysMem([(0x8000_0000, 64 * K4)])
    pt = PageTable(SV39, mem, FrameAllocator(mem))
    pt.map(0x1000, 0x8000_0000, K4, F.READ)
    s = pt.lookup(0x1000, 2)
    mem.write_u64(s.pa, s.raw & ~0x2 | 0x4)                      # R=0 W=1
    pt.map(0x20_0000, 0x8000_0000, 1 << 21, F.READ)
    s = pt.lookup(0x20_0000, 1)
    mem.write_u64(s.pa, s.raw | 1 << 10)                         # a 2 MiB leaf at a 4 KiB-aligned PA
    pt.map(0xFFFF_FFC0_0000_0000, 0x8000_0000, K4, F.READ | F.USER)
    mem.write_u64(pt.root_paddr + 8 * 5, pt.root_paddr >> 12 << 10 | 1)     # root entry 5 -> the root
    got = [(f.severity, f.rule, f.start, f.end, f.level) for f in check(Walker(mem, RiscvRules(
        Satp.for_table(SV39, pt.root_paddr))))]
    assert got == [
        ("error", "rejected-entry", 0x1000, 0x2000, 0, ),
        ("error", "rejected-entry", 0x20_0000, 0x40_0000, 1),
        ("error", "table-loop", 5 << 30, 6 << 30, 1),
        ("error", "user-kernel-half", 0xFFFF_FFC0_0000_0000, 0xFFFF_FFC0_0000_1000, 0),
    ]
    messages = [f.message for f in check(Walker(mem, RiscvRules(Satp.for_table(SV39, pt.root_paddr))))]
    assert messages[:2] == ["the hardware rejects the entry: w-without-r (every access faults)",
                            "the hardware rejects the entry: misaligned-superpage (every access faults)"]


@pytest.mark.parametrize("mode", MODES)
def test_the_planted_faults_of_generated_vector_sets_are_errors_at_their_vas(mode: str) -> None:
    """Every case the generator made to fault for reserved bits, a misaligned superpage or W without R (at
    stage 1) lies in an error finding of that rule."""
    vs = vector_set(mode)
    findings = check(walker(vs))
    errors = [f for f in findings if f.rule == "rejected-entry"]
    planted = {c.va for c in vs.cases if c.reason in ("reserved", "misaligned-superpage", "w-without-r")
               and c.stage in (None, 1)}
    assert planted
    for va in planted:
        assert any(f.start <= va < f.end for f in errors), hex(va)
    assert all(f.severity == "error" for f in errors)


def test_aarch64_user_mappings_in_the_ttbr1_region_are_errors(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """The generated AArch64 set maps EL0-accessible pages through TTBR1_EL1; the command names that region."""
    vs = vector_set("aarch64-4k-48")
    argv = ["check", *image(vs, "elf", tmp_path), "--arch", "aarch64", *registers(vs), *pa_bits(vs)]
    assert main(argv) == 1
    lines = capsys.readouterr().out.splitlines()
    kernel = [f for f in check(walker(vs)) if f.rule == "user-kernel-half"]
    assert kernel and all(f.region == "ttbr1_el1" and f.start >= 1 << 63 for f in kernel)
    assert [finding_line(f) for f in check(walker(vs))] == lines[:-1]


def test_a_262144_leaf_wx_direct_map_is_one_finding() -> None:
    """Findings merge over runs: 1 GiB of W+X 4 KiB pages is one finding counting every page (how fast
    `check` is beside the listing is measured by bench/run.py)."""
    mem = PhysMem([(RAM, 1024 * K4 + (1 << 30))])
    pt = PageTable(PAGING4, mem, FrameAllocator(mem, RAM + (1 << 30)))
    pt.map_region(0xFFFF_8880_0000_0000, RAM, 1 << 30, F.READ | F.WRITE | F.EXECUTE)
    w = Walker(mem, X86Rules(pt.root_paddr, X86Options()))
    found: list[Finding] = check(w)
    assert [(f.rule, f.count, f.start, f.end) for f in found] == [
        ("wx", 1 << 18, 0xFFFF_8880_0000_0000, 0xFFFF_8880_4000_0000)]
    assert np.uint64(len(w.mappings())) == 1 << 18


def test_riscv_leaves_and_tables_outside_ram_and_a_table_at_two_levels() -> None:
    """Without Svpbmt (PBMT=0) the PMAs decide the memory type, so a leaf outside the image is an error, not
    MMIO; a table pointer outside RAM and a PMD reused as a PTE table are reported where they are."""
    mem = PhysMem([(0x8000_0000, 64 * K4)])
    pt = PageTable(SV39, mem, FrameAllocator(mem))
    pt.map(0x1000, 0x1000_0000, K4, F.READ | F.WRITE)
    pt.map(0x4000_0000, 0x8000_0000, K4, F.READ)
    pt.map(0x8000_0000, 0x8000_1000, K4, F.READ)
    mem.write_u64(pt.root_paddr + 8 * 3, 0x2000_0000 >> 12 << 10 | 1)      # root entry 3 -> no RAM
    pmd, pmd2 = pt.lookup(0x4000_0000, 1).table, pt.lookup(0x8000_0000, 1).table
    mem.write_u64(pmd2 + 8 * 9, pmd >> 12 << 10 | 1)                       # PMD2 entry 9 -> the PMD, as a PTE table
    leaf = pt.lookup(0x1000, 2)
    lines = [finding_line(f) for f in check(Walker(mem, RiscvRules(Satp.for_table(SV39, pt.root_paddr))))]
    assert lines == [
        f"warning outside-memory satp 0x1000-0x2000 level 0 entry {leaf.pa:#x}={leaf.raw:#018x}: maps no RAM of the "
        "image ([0x10000000, 0x10001000), default)",
        f"warning table-at-two-levels satp 0x81200000-0x81400000 level 0 entry {pmd2 + 72:#x}: 1 entry makes table "
        f"{pmd:#x} a level-0 table; first used at level 1: not walked again (0x200000 bytes of VA not listed)",
        f"error table-outside-memory satp 0xc0000000-0x100000000 level 1 entry {pt.root_paddr + 24:#x}: the "
        "level-1 table 0x20000000 is at 0x20000000, outside RAM: not walked (0x40000000 bytes of VA)",
    ]


def test_aliases_past_the_descents_bound_are_a_warning() -> None:
    """Every entry of every level points at one next table (descent's bound test): the sharing findings
    are warnings that say how much VA is not listed; the listed 4 KiB leaves (U, W, X) are one W+X run."""
    mem = PhysMem([(RAM, 4 * K4)])
    words = mem.regions[0].words
    for t in range(3):
        words[t * 512:(t + 1) * 512] = np.uint64(RAM + (t + 1) * K4 | 0x7)
    words[3 * 512:] = np.uint64(RAM | 0x7)
    got = [(f.severity, f.rule, f.start, f.end, f.count) for f in check(Walker(mem, X86Rules(RAM)))]
    assert got == [                             # by VA, then severity, rule and end
        ("warning", "shared-table", 0, 5 << 30, 5 * 512),              # the PT, under 5 PDs' 512 entries
        ("warning", "shared-table", 0, 137 << 39, 137 * 512),          # the PD, under 137 PDPTs
        ("warning", "shared-table", 0, 1 << 64, 512),                  # the PDPT, under every root entry
        ("warning", "wx", 0, 5 << 21, 5 * 512),
    ]
    shared = check(Walker(mem, X86Rules(RAM)))[2]
    assert shared.message == ("the level-3 table 0x1001000 is shared by 512 entries (512 references); 375 of them "
                              "(0xbb8000000000 bytes of VA) are past the alias bound, not listed")


def test_a_region_the_regime_refuses_has_unreachable_mappings_only() -> None:
    """TCR_EL1.EPD1 = 1: TTBR1_EL1 walks are refused (Arm ARM D8.2.11), so its mappings are unreachable and
    nothing else is said of them (no W+X, no user page in the kernel half)."""
    vs = vector_set("aarch64-4k-48")
    regs = dict(vs.registers)
    regs["tcr_el1"] |= 1 << 23
    arch = registry.by_name(vs.arch)
    assert arch.walker_from_registers is not None
    found = check(arch.walker_from_registers(vs.mem, regs, vs.options.get("maxphyaddr")))
    upper = [f for f in found if f.region == "ttbr1_el1" and f.rule not in ("rejected-entry", "table-outside-memory",
                                                                           "shared-table")]
    assert upper and {f.rule for f in upper} == {"unreachable"}
    assert all(f.message.endswith("(the region refuses every access)") for f in upper)
    assert {f.rule for f in check(walker(vs)) if f.region == "ttbr1_el1"} >= {"user-kernel-half", "wx"}
