"""`pagetable find-roots` and `--root auto`: images built from generated vector sets and from hand-built
Linux-like address spaces (process roots sharing one kernel half, or on AArch64 TTBR0 tables beside one
TTBR1 table, among decoy frames of random data and of zeros) for x86-64 4-level, RISC-V Sv39 and AArch64
4K/48. The true roots are found and ranked first, decoys below them; `translate --root auto` answers as the
true registers do; bad input is refused with one line."""

from __future__ import annotations

import functools
import io
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from pagetable import registry
from pagetable.cli import main
from pagetable.dump import write_elf_core, write_lime
from pagetable.dump.notes import GPRS, QEMU_CPU_STATE, SEGMENTS
from pagetable.dump.roots import auto_root, find_roots, kernel_index
from pagetable.flags import MappingFlags
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.vectors import VectorSet, generate_aarch64, generate_riscv, generate_x86

RW, RX = MappingFlags.READ | MappingFlags.WRITE, MappingFlags.READ | MappingFlags.EXECUTE
MiB = 1 << 20


@dataclass(frozen=True)
class Space:
    """A Linux-like image: its memory, the registers other than the roots, the process roots (x86, RISC-V:
    each with the kernel half; AArch64: TTBR0 tables), the kernel's root, and VAs of both halves."""

    arch: str
    mem: PhysMem
    registers: dict[str, int]
    processes: tuple[int, ...]
    kernel: int
    kernel_vas: tuple[int, ...]
    user_vas: tuple[int, ...]


LINUX_LIKE = {
    # arch, RAM base, registers but the roots, kernel VAs (text, direct map, vmalloc), user VAs
    "x86_64": (0x100_0000, {"cr0": 0x8001_0001, "cr4": 0x20, "efer": 0xD01},
               (0xFFFF_FFFF_8100_0000, 0xFFFF_8880_0000_0000, 0xFFFF_C900_0000_0000), (0x40_0000, 0x7FFF_FFFF_E000)),
    "riscv": (0x8000_0000, {"satp": 8 << 60},
              (0xFFFF_FFFF_8000_0000, 0xFFFF_FFD8_0000_0000, 0xFFFF_FFC4_0000_0000), (0x1_0000, 0x3F_FFFF_F000)),
    "aarch64": (0x4000_0000, {"tcr_el1": 16 | 16 << 16 | 2 << 30 | 5 << 32},
                (0xFFFF_8000_8000_0000, 0xFFFF_0000_0000_0000, 0xFFFF_8000_0000_0000), (0x40_0000, 0xFFFF_FFFF_E000)),
    # 32-bit kernels (a 3G/1G split): x86 32-bit paging and PAE paging, RV32 Sv32
    # (i386: libraries and the stack just below 0xC000_0000; RV32: vmalloc below PAGE_OFFSET, the stack below it)
    "x86-32": (0x100_0000, {"cr0": 0x8001_0001, "cr4": 0x10, "efer": 0},
               (0xC100_0000, 0xC000_0000, 0xF800_0000), (0x804_8000, 0xB7F0_0000, 0xBFFF_F000)),
    "x86-pae": (0x100_0000, {"cr0": 0x8001_0001, "cr4": 0x30, "efer": 0x800},
                (0xC100_0000, 0xC000_0000, 0xF800_0000), (0x804_8000, 0xB7F0_0000, 0xBFFF_F000)),
    "riscv32": (0x8000_0000, {"satp": 1 << 31}, (0xC000_0000, 0xC080_0000, 0xA000_0000), (0x1_0000, 0x9DBF_F000)),
}
ARCH = {"x86-32": "x86_64", "x86-pae": "x86_64"}
"""The `--arch` of each Linux-like space not named after its architecture."""
ROOT = {"x86_64": "cr3", "riscv": "satp", "aarch64": "ttbr1_el1", "riscv32": "satp"}


@functools.cache
def linux_like(name: str, processes: int = 5) -> Space:
    """`processes` process address spaces over one kernel's in 16 MiB of RAM: tables from the first 2 MiB,
    the pages they map from the next 6 MiB, filled with random data (decoys that read as tables of random
    entries), and 8 MiB of zero frames after them."""
    base, regs, kvas, uvas = LINUX_LIKE[name]
    arch = ARCH.get(name, name)
    mem = PhysMem([(base, 16 * MiB)])
    rng = np.random.default_rng(14)
    mem.words(base + 2 * MiB, 6 * MiB // 8)[:] = rng.integers(0, 1 << 64, 6 * MiB // 8, dtype=np.uint64)
    a = registry.by_cli_name(arch)
    assert a.walker_from_registers is not None
    roots = {"x86_64": {"cr3": 0}, "riscv": {}, "riscv32": {}, "aarch64": {"ttbr0_el1": 0, "ttbr1_el1": 0}}[arch]
    regions = a.walker_from_registers(PhysMem([(0, 4096)]), {**regs, **roots}, None).rules.regime.regions
    frames = FrameAllocator(mem, base, 2 * MiB)
    pages = iter(range(base + 2 * MiB, base + 8 * MiB, 4096))
    kernel = PageTable(regions[-1].fmt, mem, frames)
    x = MappingFlags.EXECUTE if regions[0].fmt.entry_size == 4 and arch == "x86_64" else MappingFlags(0)  # no XD
    for n, va in enumerate(kvas):
        for k in range(4 + 8 * n):
            kernel.map(va + k * 4096, next(pages), 4096, RX if n == 0 else RW | x)
    owned = []
    for _ in range(processes):
        user = PageTable(regions[0].fmt, mem, frames)
        for va in uvas:
            user.map(va, next(pages), 4096, RW | MappingFlags.USER | x)
        if len(regions) == 1:                       # Linux's pgd_alloc: the kernel's entries copied in
            fmt = regions[0].fmt
            start = ((min(kvas) & ((1 << fmt.va_bits) - 1)) >> fmt.levels[0].index_lsb) * fmt.entry_size
            mem.write(user.root_paddr + start, mem.read(kernel.root_paddr + start, fmt.root_size - start))
        owned.append(user.root_paddr)
    return Space(arch, mem, regs, tuple(owned), kernel.root_paddr, kvas, uvas)


def satp(root: int) -> int:
    """Sv39's satp for the root table at `root`."""
    return 8 << 60 | root >> 12


def regs_args(regs: dict[str, int]) -> list[str]:
    return [a for k, v in regs.items() for a in ("--reg", f"{k}={v:#x}")]


def run(capsys: pytest.CaptureFixture[str], argv: list[str], rc: int = 0) -> tuple[list[str], str]:
    assert main(argv) == rc
    out = capsys.readouterr()
    return out.out.splitlines(), out.err


# ------------------------------------------------------------------------------------ Linux-like images
@pytest.mark.parametrize("name", ["x86_64", "riscv", "aarch64", "x86-32", "x86-pae", "riscv32"])
def test_linux_like_roots_ranked_first(name: str) -> None:
    """32-bit kernels too: x86 32-bit paging's 4-byte PDEs (one 4 KiB root each), PAE's 32-byte PDPTs (four
    PDPTEs: the kernel's three VAs share PDPTE 3), RV32's Sv32; no candidate in the random data."""
    s = linux_like(name)
    a = registry.by_cli_name(s.arch)
    found = find_roots(s.mem, a, s.registers)
    true = {*s.processes, s.kernel}
    top = found[:len(true)]
    assert {c.pa for c in top} == true                     # every root first, no decoy above any of them
    assert all(c.score > found[len(true)].score for c in top)
    assert all(c.shape is top[0].shape for c in top)
    if s.arch != "aarch64":                               # each shares all its kernel entries with the others
        fmt = top[0].shape.region.fmt
        root = fmt.levels[0]
        indexes = {va >> root.index_lsb & (1 << root.index_bits) - 1 for va in s.kernel_vas}
        kernel = len({i for i in indexes if i >= kernel_index(fmt)})   # RV32's vmalloc, below 0xC000_0000: not
        assert {(c.kernel, c.shared, c.sharers) for c in top} == {(kernel, kernel, len(true))}
        assert all(c.score == pytest.approx(1.0) for c in top)
    tables_end = s.mem.regions[0].base + 2 * MiB            # random data and zeros beyond: no candidate
    assert max(c.pa for c in found) < tables_end


def test_linux_like_x86_mode_without_cr4() -> None:
    """With CR4 not given, 4- and 5-level paging are both tried: the roots read best as 4-level tables."""
    s = linux_like("x86_64")
    found = find_roots(s.mem, registry.by_cli_name("x86_64"), {})
    assert {c.pa for c in found[:6]} == {*s.processes, s.kernel}
    assert {c.shape.name for c in found[:6]} == {"4-level paging"}


def test_linux_like_aarch64_granule_without_tcr() -> None:
    """With TCR_EL1 not given, each granule is tried: 4 KiB tables also read well as 64 KiB and 16 KiB ones
    (their first entries), and the ties go to the 4 KiB reading, tried first."""
    s = linux_like("aarch64")
    found = find_roots(s.mem, registry.by_cli_name("aarch64"), {})
    assert [(c.pa, c.shape.name) for c in found[:6]] == \
        [(pa, "VMSAv8-64 stage 1 4KB granule, 48-bit upper-range VA") for pa in sorted((s.kernel, *s.processes))]
    assert found[6].shape.name == "VMSAv8-64 stage 1 64KB granule, 48-bit upper-range VA"


def test_find_roots_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = linux_like("x86_64")
    write_lime(tmp_path / "mem.lime", s.mem)
    lines, err = run(capsys, ["find-roots", str(tmp_path / "mem.lime"), "--arch", "x86_64", "--reg", "cr4=0x20",
                              "--top", "2"])
    assert err == ""
    assert lines == [f"{pa:#x}  score 1.00  4-level paging  present 5 of 512 (well-formed 5; kernel half 3, 3 "
                     "shared by up to 6 candidates)  below 1.00 over 12 tables" for pa in s.processes[:2]]
    docs, _ = run(capsys, ["find-roots", str(tmp_path / "mem.lime"), "--arch", "x86_64", "--top", "1", "--json"])
    first = f"{s.processes[0]:#x}"
    assert [json.loads(d) for d in docs] == [
        {"pa": first, "score": 1.0, "mode": "4-level paging", "entries": 512, "present": 5, "well_formed": 5,
         "kernel_half": 3, "shared": 3, "sharers": 6, "below_tables": 12, "below": 1.0, "pti_user": None,
         "user_leaves": None, "kernel_leaves": None,
         "registers": {"cr3": first, "cr0": "0x80010001", "cr4": "0x20", "efer": "0xd01"}}]
    docs, _ = run(capsys, ["find-roots", str(tmp_path / "mem.lime"), "--arch", "aarch64", "--top", "1", "--json"])
    assert json.loads(docs[0])["kernel_half"] is None


@pytest.mark.parametrize("name", ["x86_64", "riscv", "aarch64", "x86-32", "x86-pae", "riscv32"])
def test_linux_like_translate_root_auto(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--root auto` takes one of the roots: the kernel half translates as through the kernel's own (x86
    32-bit and PAE paging from an EM_386 core, whose CR3 the PDPT's address is with PAE)."""
    s = linux_like(name)
    arch = s.arch
    machine = {"x86-32": "i386", "x86-pae": "i386"}.get(name, registry.by_cli_name(arch).name)
    write_elf_core(tmp_path / "core.elf", s.mem, machine)
    vas = [f"{va + k * 4096:#x}" for va in s.kernel_vas for k in range(3)]
    true = {"x86_64": {"cr3": s.kernel}, "riscv": {"satp": satp(s.kernel)},
            "riscv32": {"satp": 1 << 31 | s.kernel >> 12},
            "aarch64": {"ttbr0_el1": s.processes[0], "ttbr1_el1": s.kernel}}[arch]
    base = ["translate", str(tmp_path / "core.elf"), "--arch", arch, *vas, "--access", "any"]
    want, _ = run(capsys, [*base, *regs_args({**s.registers, **true})])
    given = {"ttbr0_el1": s.processes[0]} if arch == "aarch64" else {}
    got, err = run(capsys, [*base, "--root", "auto", *regs_args({**s.registers, **given})])
    assert got == want
    assert len([x for x in got if " -> 0x" in x]) == len(vas)
    name = ROOT[arch]
    note, *tie = err.splitlines()
    assert note.startswith(f"pagetable: note: assumed {name}=0x") and "(--root auto: root candidate" in note
    if arch != "aarch64":          # the processes' roots tie (the TTBR0 one is given on AArch64): it is said
        first, second = s.processes[:2]
        assert tie == [f"pagetable: note: assumed {name} holds {first:#x}, not {second:#x}, near-tied (--root auto: "
                       f"they score 1.00 and 1.00; give {name} with --reg)"]
    else:
        assert tie == []


# ------------------------------------------------------------------------------------ vector sets
VECTOR_MODES: dict[str, tuple[Callable[..., VectorSet], str, str]] = {
    "x86_64-4level": (generate_x86, "x86_64", "cr3"), "sv39": (generate_riscv, "riscv", "satp"),
                "aarch64-4k-48": (generate_aarch64, "aarch64", "ttbr1_el1")}


@functools.cache
def vector_set(mode: str) -> VectorSet:
    return VECTOR_MODES[mode][0](mode, 5, None)


@pytest.mark.parametrize("mode", list(VECTOR_MODES))
def test_vector_set_root_first(mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A vector set's root (AArch64: both TTBRs' tables) ranks first, although the generator puts faulting
    entries in it; `translate --root auto` answers its cases as the true registers do."""
    vs = vector_set(mode)
    _, arch, name = VECTOR_MODES[mode]
    a = registry.by_cli_name(arch)
    root_names = ("ttbr0_el1", "ttbr1_el1") if arch == "aarch64" else (name,)
    others = {k: v for k, v in vs.registers.items() if k not in root_names}
    if arch == "riscv":
        others["satp"] = vs.registers["satp"] & ~((1 << 44) - 1)
    found = find_roots(vs.mem, a, others, vs.options.get("maxphyaddr"), 2)
    roots = {(vs.registers["satp"] & (1 << 44) - 1) << 12} if arch == "riscv" else \
        {vs.registers[n] for n in root_names}
    assert {c.pa for c in found[:len(roots)]} == roots
    write_elf_core(tmp_path / "core.elf", vs.mem, vs.arch)
    vas = [f"{c.va:#x}" for c in vs.cases][:200]
    bits = ["--pa-bits", str(vs.options["maxphyaddr"])] if "maxphyaddr" in vs.options else []
    base = ["translate", str(tmp_path / "core.elf"), "--arch", arch, *vas, *bits, "--access", "any"]
    want, _ = run(capsys, [*base, *regs_args(dict(vs.registers))])
    given = {k: v for k, v in vs.registers.items() if k != name}
    if arch == "riscv":
        given["satp"] = others["satp"]
    got, err = run(capsys, [*base, "--root", "auto", *regs_args(given)])
    assert got == want
    assert len([x for x in want if " -> 0x" in x]) > 20
    assert re.fullmatch(rf"pagetable: note: assumed {name}={vs.registers[name]:#x} \(--root auto: root candidate "
                        r"[12] of \d+, score 0\.\d\d\)\n", err), err


# ------------------------------------------------------------------------------------ bad input
def test_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = linux_like("riscv", 2)
    zeros = tmp_path / "zeros.bin"
    zeros.write_bytes(bytes(1 << 16))
    image = tmp_path / "ram.bin"
    image.write_bytes(bytes(s.mem.regions[0].data))
    spec = f"{image}@{s.mem.regions[0].base:#x}"
    cases = [
        (["find-roots", f"{zeros}@0x0", "--arch", "x86_64"], 1,
         "pagetable: note: no x86_64 page-table root candidate in the image"),
        (["find-roots", spec, "--arch", "riscv", "--reg", "hgatp=0x8000000000000000"], 2,
         "pagetable: error: register 'hgatp': find-roots looks for one-stage roots (riscv: give satp)"),
        (["find-roots", spec, "--arch", "x86_64", "--reg", "cr3=0x1000"], 2,
         "pagetable: error: register cr3 holds the root the scan finds: give the other registers only"),
        (["find-roots", spec, "--arch", "riscv", "--reg", "satp=0xf000000000000000"], 2,
         "pagetable: error: satp 0xf000000000000000: MODE 15 is not Bare, Sv39, Sv48, Sv57"),
        (["find-roots", spec, "--arch", "riscv", "--top", "0"], 2, "pagetable: error: --top 0: give at least 1"),
        (["find-roots", spec, "--arch", "riscv", "--reg", "satp=0"], 2,
         "pagetable: error: the registers turn translation off: there is no root to find"),
        (["find-roots", str(tmp_path / "missing.elf"), "--arch", "riscv"], 2, None),
        (["translate", f"{zeros}@0x0", "--arch", "x86_64", "--root", "auto", "0x0"], 2,
         "pagetable: error: --root auto: the image holds no x86_64 page-table root candidate"),
        (["translate", spec, "--arch", "x86_64", "--root", "auto", "--reg", "cr3=0x1000", "0x0"], 2,
         "pagetable: error: --root auto: cr3 given, so there is no root to find"),
        (["translate", spec, "--arch", "aarch64", "--root", "auto", "--reg", "ttbr0_el1=0x0", "--reg",
          "ttbr1_el1=0x0", "0x0"], 2,
         "pagetable: error: --root auto: ttbr1_el1 and ttbr0_el1 given, so there is no root to find"),
    ]
    for argv, rc, line in cases:
        _, err = run(capsys, argv, rc)
        assert len(err.splitlines()) == 1, (argv, err)
        assert err.startswith("pagetable: ")
        if line is not None:
            assert err.strip() == line, argv


def test_pti_pair() -> None:
    """An 8 KiB-aligned kernel PGD with a user PGD 4 KiB above it holding the user entries and one kernel
    entry (Linux's PTI) is noted as a pair; other neighbours are not."""
    s = linux_like("x86_64")
    base = s.mem.regions[0].base
    mem = PhysMem([(base, s.mem.regions[0].data.copy())])
    kernel_pgd, user_pgd = base + MiB, base + MiB + 4096          # frames the tables never reached
    assert not mem.words(kernel_pgd, 1024).any()
    process = mem.words(s.processes[0], 512)
    mem.words(kernel_pgd, 512)[:] = process
    mem.words(user_pgd, 512)[:256] = process[:256]
    mem.words(user_pgd, 512)[511] = process[511]                  # the kernel text's PML4E: entry code
    found = find_roots(mem, registry.by_cli_name("x86_64"), s.registers)
    noted = {c.pa: c.pti_user for c in found if c.pti_user is not None}
    assert noted == {kernel_pgd: user_pgd}
    line = next(c.describe() for c in found if c.pa == kernel_pgd)
    assert line == f"{kernel_pgd:#x}  score 1.00  4-level paging  present 5 of 512 (well-formed 5; kernel half 3, 3 " \
        f"shared by up to 8 candidates)  below 1.00 over 12 tables  PTI pair: user PGD {user_pgd:#x}"


def test_root_auto_over_a_cpus_registers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With `--cpu N`, the root the core records (here a stale CR3) gives way to the scan's; CR0 and CR4 are
    the core's, EFER assumed as for `--cpu` alone."""
    s = linux_like("x86_64")
    zero = {"selector": 0, "limit": 0, "flags": 0, "pad": 0, "base": 0}
    state = QEMU_CPU_STATE.build({"version": 1, "size": QEMU_CPU_STATE.sizeof(), **{r: 0 for r in GPRS},
                                  "rip": 0, "rflags": 2, **{g: zero for g in SEGMENTS},
                                  "cr": [0x8001_0001, 0, 0, 0x7000, 0x20]})
    write_elf_core(tmp_path / "core.elf", s.mem, "x86_64", notes=[("QEMU", 0, state)])
    base = ["translate", str(tmp_path / "core.elf"), "--arch", "x86_64", "0xffffffff81001000"]
    lines, err = run(capsys, [*base, "--cpu", "0", "--root", "auto"])
    assert lines == ["0xffffffff81001000 -> 0x1201000  S:r-x U:---  wb  (level 1)"]
    assert err.splitlines() == [
        "pagetable: note: assumed efer=0xd01 (SCE, LME, LMA, NXE: the core records no EFER; give --reg efer=... "
        "if NXE was clear)",
        f"pagetable: note: assumed cr3={s.processes[0]:#x} (--root auto: root candidate 1 of 45, score 1.00)",
        f"pagetable: note: assumed cr3 holds {s.processes[0]:#x}, not {s.processes[1]:#x}, near-tied (--root auto: "
        "they score 1.00 and 1.00; give cr3 with --reg)"]
    stale, _ = run(capsys, [*base, "--cpu", "0"])                 # the recorded CR3 is no RAM
    assert stale == ["0xffffffff81001000 -> no-memory (table-outside-memory) at level 4 stage 1 error_code=0x0 cr2=0x0"]


def test_direct_map_of_small_pages() -> None:
    """A direct map of 4 KiB pages points at every frame, the roots too: they lose the `unreferenced` term
    (0.25) but, sharing the kernel half, still rank first, above the direct map's 32 page tables."""
    base, size = 0x100_0000, 64 * MiB
    mem = PhysMem([(base, size)])
    regs = {"cr0": 0x8001_0001, "cr4": 0x20, "efer": 0xD01}
    a = registry.by_cli_name("x86_64")
    assert a.walker_from_registers is not None
    fmt = a.walker_from_registers(mem, {**regs, "cr3": 0}, None).rules.regime.single.fmt
    frames = FrameAllocator(mem, base, 2 * MiB)
    kernel = PageTable(fmt, mem, frames)
    kernel.map_region(0xFFFF_8880_0000_0000, base, size, RW, allow_huge=False)
    roots = [kernel.root_paddr]
    for p in range(4):
        user = PageTable(fmt, mem, frames)
        user.map_region(0x40_0000, base + 4 * MiB + p * MiB, MiB, RW | MappingFlags.USER)
        mem.words(user.root_paddr, 512)[256:] = mem.words(kernel.root_paddr, 512)[256:]
        roots.append(user.root_paddr)
    found = find_roots(mem, a, regs)
    assert {c.pa for c in found[:5]} == set(roots)
    assert [round(c.score, 4) for c in found[:5]] == [0.75] * 5
    assert found[5].score < 0.75


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scan shows a bar of frames on a terminal's stderr (and nothing when piped: the tests above)."""
    s = linux_like("riscv", 2)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    find_roots(s.mem, registry.by_cli_name("riscv"), s.registers)
    shown = terminal.getvalue()
    assert shown.startswith("\rfind-roots:   0%|") and " 0/4096 [" in shown, shown        # 16 MiB of frames


# ------------------------------------------------------------------------------------ AArch64: granule, TTBRs
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_aarch64_vector_set_roots_and_ttbrs(seed: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An aarch64-4k-48 set: with TCR_EL1 not given, no 64 KiB- or 16 KiB-granule reading of its 4 KiB
    tables (their entries' bits 15:12, RES0 in a 64 KiB descriptor, are set) ranks above the true roots;
    each true root ranks first for its own TTBR, told apart by its leaves (the TTBR0 table's user pages,
    the TTBR1 table's kernel ones), and `--root auto` answers every case as the true registers do, with and
    without TCR_EL1 given (MAIR_EL1 and SCTLR_EL1 given: the memory types), and with no doubt to note."""
    vs = generate_aarch64("aarch64-4k-48", seed, None)
    a = registry.by_cli_name("aarch64")
    found = find_roots(vs.mem, a, {})
    ttbr0, ttbr1 = vs.registers["ttbr0_el1"], vs.registers["ttbr1_el1"]
    top = {c.pa: (n, c) for n, c in enumerate(found[:2], 1)}      # the two, in an order the seed's tables give
    assert set(top) == {ttbr0, ttbr1}
    (rank0, root0), (rank1, root1) = top[ttbr0], top[ttbr1]
    assert (root0.mode, root1.mode) == ("VMSAv8-64 stage 1 4KB granule, 48-bit VA",
                                        "VMSAv8-64 stage 1 4KB granule, 48-bit upper-range VA")
    assert root0.user_leaves > root0.kernel_leaves and root1.kernel_leaves > root1.user_leaves
    assert all(c.score < found[1].score for c in found[2:])
    write_elf_core(tmp_path / "core.elf", vs.mem, vs.arch)
    vas = [f"{c.va:#x}" for c in vs.cases][:200]
    base = ["translate", str(tmp_path / "core.elf"), "--arch", "aarch64", *vas, "--access", "any"]
    want, _ = run(capsys, [*base, *regs_args(dict(vs.registers))])
    assert len([x for x in want if " -> 0x" in x]) > 20
    memory = {k: vs.registers[k] for k in ("mair_el1", "sctlr_el1")}      # the memory types: no root's business
    for given in (memory, {**memory, "tcr_el1": vs.registers["tcr_el1"]}):
        got, err = run(capsys, [*base, "--root", "auto", *regs_args(given)])
        if "tcr_el1" in given:
            assert got == want
        else:     # Linux's TCR_EL1.IPS (48 bits) assumed, not the set's 40: its address-size cases go on, past
            differ = [(w, g) for w, g in zip(want, got, strict=True) if w != g]   # RAM (a table: a fault; a leaf:
            assert differ and all(" -> address-size (address-size) at level" in w and                   # a PA)
                                  re.search(r" -> (\S+ \(table-outside-memory\) at level|0x[0-9a-f]+  S:)", g)
                                  for w, g in differ)
        ranked = find_roots(vs.mem, a, given)
        assert err.splitlines()[-2:] == [
            f"pagetable: note: assumed ttbr1_el1={ttbr1:#x} (--root auto: root candidate {rank1} of {len(ranked)}, "
            f"score {root1.score:.2f})",
            f"pagetable: note: assumed ttbr0_el1={ttbr0:#x} (--root auto: root candidate {rank0} of {len(ranked)}, "
            f"score {root0.score:.2f})"]


def test_linux_like_aarch64_ttbrs_and_ties(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With neither TTBR given, the kernel's table (kernel leaves) goes to TTBR1_EL1 and a process's (user
    leaves) to TTBR0_EL1; the five processes' tables tie, which `--root auto` says."""
    s = linux_like("aarch64")
    found = find_roots(s.mem, registry.by_cli_name("aarch64"), s.registers)
    kernel = next(c for c in found if c.pa == s.kernel)
    assert kernel.describe() == (f"{s.kernel:#x}  score 1.00  VMSAv8-64 stage 1 4KB granule, 48-bit upper-range VA  "
                                 "present 2 of 512 (well-formed 2; leaves below: 0 user, 32 kernel)  below 1.00 over "
                                 "6 tables")
    assert {c.mode for c in found if c.pa in s.processes} == {"VMSAv8-64 stage 1 4KB granule, 48-bit VA"}
    write_elf_core(tmp_path / "core.elf", s.mem, "aarch64")
    vas = [f"{va:#x}" for va in (*s.kernel_vas, *s.user_vas)]
    base = ["translate", str(tmp_path / "core.elf"), "--arch", "aarch64", *vas, *regs_args(s.registers)]
    want, _ = run(capsys, [*base, *regs_args({"ttbr0_el1": s.processes[0], "ttbr1_el1": s.kernel})])
    got, err = run(capsys, [*base, "--root", "auto"])
    assert got == want
    first, second = s.processes[:2]
    n = len(found)
    assert err.splitlines() == [
        f"pagetable: note: assumed ttbr1_el1={s.kernel:#x} (--root auto: root candidate 1 of {n}, score 1.00)",
        f"pagetable: note: assumed ttbr0_el1={first:#x} (--root auto: root candidate 2 of {n}, score 1.00)",
        f"pagetable: note: assumed ttbr0_el1 holds {first:#x}, not {second:#x}, near-tied (--root auto: they score "
        "1.00 and 1.00; give ttbr0_el1 with --reg)"]


def test_aarch64_root_auto_says_its_doubts() -> None:
    """A 4 KiB-granule kernel table chain whose tables all sit at 64 KiB boundaries reads as well with a 64
    KiB (and a 16 KiB) granule: the RES0 rule cannot tell them apart, so `--root auto` takes the 4 KiB
    reading and says the near-tie; its one leaf is a kernel page (AP[1]=0, global), so the root goes to
    TTBR1_EL1, and TTBR0_EL1 gets a lower-level table with no leaf below it, which is said too."""
    mem = PhysMem([(0x4000_0000, 1 * MiB)])
    for table, entry in ((0x4000_0000, 0x4001_0003), (0x4001_0000, 0x4002_0003), (0x4002_0000, 0x4003_0003),
                         (0x4003_0000, 0x4004_0703)):          # tables, then a page: AF, SH inner, AP=0b00, nG=0
        mem.words(table, 1)[0] = entry
    regs, notes = auto_root(mem, registry.by_cli_name("aarch64"), {})
    four = "VMSAv8-64 stage 1 4KB granule, 48-bit upper-range VA"
    assert (regs["ttbr1_el1"], regs["ttbr0_el1"]) == (0x4000_0000, 0x4001_0000)
    assert notes == [
        f"tcr_el1=0x580100010 (--root auto: the mode of the best root candidate, {four})",
        "ttbr1_el1=0x40000000 (--root auto: root candidate 1 of 12, score 1.00)",
        "ttbr0_el1=0x40010000 (--root auto: root candidate 6 of 12, score 0.61)",
        f"{four}, not VMSAv8-64 stage 1 64KB granule, 48-bit upper-range VA, near-tied (--root auto: their best "
        "candidates score 1.00 and 1.00; give tcr_el1 with --reg)",
        "ttbr0_el1 holds 0x40010000 without evidence (--root auto: the leaves below it, 0 user and 0 kernel, do not "
        "say it is ttbr0_el1's table; give ttbr0_el1 with --reg)"]


@pytest.mark.parametrize(("name", "mode"), [("x86-32", "32-bit paging (PSE-36)"), ("x86-pae", "PAE paging"),
                                            ("riscv32", "Sv32")])
def test_32_bit_cores_without_registers(name: str, mode: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """With no register given, an EM_386 core is scanned for 32-bit paging and PAE paging roots (a 32-bit
    kernel's; `LEGACY_REGISTERS`), not IA-32e ones; an RV32 core for Sv32 ones. The roots come first."""
    s = linux_like(name)
    machine = "riscv32" if name == "riscv32" else "i386"
    write_elf_core(tmp_path / "core.elf", s.mem, machine)
    lines, err = run(capsys, ["find-roots", str(tmp_path / "core.elf"), "--arch", s.arch, "--top", "6", "--json"])
    assert err == ""
    found = [json.loads(line) for line in lines]
    assert {int(c["pa"], 16) for c in found} == {*s.processes, s.kernel}
    assert {c["mode"] for c in found} == {mode}
    assert all(c["score"] == 1.0 for c in found)


def test_a_pdpt_whose_load_would_gp_is_no_candidate() -> None:
    """PAE's PDPTEs are checked when the MOV to CR3 loads them (SDM 4.4.1), not by the walk: a 32-byte PDPT
    whose present PDPTE has R/W=1 (bit 1, reserved there; a PDE's bit) would #GP, so it is no candidate,
    though the page directory under it is well formed. The same PDPT with R/W=0 is."""
    s = linux_like("x86-pae")
    mem = PhysMem([(s.mem.regions[0].base, 16 * MiB)])
    mem.write(mem.regions[0].base, s.mem.read(mem.regions[0].base, 16 * MiB))
    x86 = registry.by_cli_name("x86_64")
    assert s.kernel in {c.pa for c in find_roots(mem, x86, s.registers)}
    pdpte3 = s.kernel + 24
    mem.entries(8).write(pdpte3, mem.entries(8).read(pdpte3) | 2)
    assert s.kernel not in {c.pa for c in find_roots(mem, x86, s.registers)}
