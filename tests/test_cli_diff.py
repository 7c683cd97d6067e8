"""`pagetable diff`: exact lines on x86-64 tables built by hand (a page added, one removed, a PA, the
permissions and the memory type changed, a 2 MiB page split into 4 KiB pages of the same translation, a
direct map that moved), a PTI-like pair of roots in one image, two vector sets checked against the walker's
translations, exit status, and bad input."""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from pathlib import Path

import numpy as np
import pytest

from pagetable import FrameAllocator, PageTable, PhysMem
from pagetable import MappingFlags as F
from pagetable.arch.x86_64 import PAGING4
from pagetable.cli import main
from pagetable.dump import write_elf_core
from pagetable.dump.notes import GPRS, QEMU_CPU_STATE, SEGMENTS
from pagetable.dump.space import address_space
from pagetable.vectors import generate_aarch64, generate_x86
from pagetable.walker import Access, Privilege, Reason, Walker

from .test_cli_translate import image, pa_bits, registers, walker

RW, R, RX = F.READ | F.WRITE, F.READ, F.READ | F.EXECUTE
Maps = list[tuple[int, int, int, F, bool]]
KERNEL, DIRECT = 0xFFFF_8000_0020_0000, 0xFFFF_8880_0000_0000
A: Maps = [(0x1000_0000, 0x10_0000, 0x1000, RW, False),           # removed in b
           (0x1000_1000, 0x11_0000, 0x1000, RW, False),           # its PA changes
           (0x1000_2000, 0x13_0000, 0x1000, RW, False),           # its permissions change
           (0x1000_3000, 0x14_0000, 0x1000, RW, False),           # its memory type changes
           (0x1000_6000, 0x16_0000, 0x1000, RX | F.USER, False),  # the same in b
           (KERNEL, 0x20_0000, 0x20_0000, RW, True),              # one 2 MiB page; 512 4 KiB pages in b
           (DIRECT, 0, 16 << 20, RW, True),                       # a direct map of 2 MiB pages that moves
           (0xFFFF_C900_0000_0000, 0x40_0000, 4 << 20, R, False)]  # 4 MiB of 4 KiB pages that move
B: Maps = [(0x1000_1000, 0x12_0000, 0x1000, RW, False),
           (0x1000_2000, 0x13_0000, 0x1000, R, False),
           (0x1000_3000, 0x14_0000, 0x1000, RW | F.UNCACHED, False),
           (0x1000_5000, 0x15_0000, 0x1000, RX, False),           # added
           (0x1000_6000, 0x16_0000, 0x1000, RX | F.USER, False),
           (KERNEL, 0x20_0000, 0x20_0000, RW, False),
           (DIRECT, 0x100_0000, 16 << 20, RW, True),
           (0xFFFF_C900_0000_0000, 0x80_0000, 4 << 20, R, False)]
X86 = ["--arch", "x86_64", "--reg", "cr0=0x80010001", "--reg", "cr4=0x20", "--reg", "efer=0xd00"]

LINES = [
    "- 0x0000000010000000-0x0000000010001000         4K  pa 0x100000 4K pages S:rw- U:--- wb",
    "~ 0x0000000010001000-0x0000000010002000         4K  pa 0x110000 4K pages S:rw- U:--- wb  ->  "
    "pa 0x120000 4K pages S:rw- U:--- wb  (pa)",
    "~ 0x0000000010002000-0x0000000010003000         4K  pa 0x130000 4K pages S:rw- U:--- wb  ->  "
    "pa 0x130000 4K pages S:r-- U:--- wb  (perms)",
    "~ 0x0000000010003000-0x0000000010004000         4K  pa 0x140000 4K pages S:rw- U:--- wb  ->  "
    "pa 0x140000 4K pages S:rw- U:--- uc-minus  (memtype)",
    "+ 0x0000000010005000-0x0000000010006000         4K  pa 0x150000 4K pages S:r-x U:--- wb",
    "~ 0xffff888000000000-0xffff888001000000        16M  pa 0x0 2M pages S:rw- U:--- wb  ->  "
    "pa 0x1000000 2M pages S:rw- U:--- wb  (pa)",
    "~ 0xffffc90000000000-0xffffc90000400000         4M  pa 0x400000 4K pages S:r-- U:--- wb  ->  "
    "pa 0x800000 4K pages S:r-- U:--- wb  (pa)",
]
SPLIT = ("~ 0xffff800000200000-0xffff800000400000         2M  pa 0x200000 2M pages S:rw- U:--- wb  ->  "
         "pa 0x200000 4K pages S:rw- U:--- wb  (page size)")


def build(maps: Maps, mem: PhysMem | None = None, frames: FrameAllocator | None = None) -> tuple[PhysMem, int]:
    """Tables mapping `maps` (VA, PA, size, flags, huge pages allowed) in 64 MiB of RAM at 0: the memory and
    the root (CR3)."""
    mem = mem or PhysMem([(0, 64 << 20)])
    pt = PageTable(PAGING4, mem, frames or FrameAllocator(mem))
    for va, pa, size, flags, huge in maps:
        pt.map_region(va, pa, size, flags, allow_huge=huge)
    return mem, pt.root_paddr


@functools.cache
def pair(d: Path) -> tuple[str, str, int]:
    """`A` and `B` written as two ELF cores whose roots are at the same address."""
    (mem_a, root_a), (mem_b, root_b) = build(A), build(B)
    assert root_a == root_b
    write_elf_core(d / "a.elf", mem_a, "x86_64")
    write_elf_core(d / "b.elf", mem_b, "x86_64")
    return str(d / "a.elf"), str(d / "b.elf"), root_a


def diff(capsys: pytest.CaptureFixture[str], argv: list[str], rc: int) -> list[str]:
    assert main(["diff", *argv]) == rc, capsys.readouterr().err
    out = capsys.readouterr()
    assert out.err == ""
    return out.out.splitlines()


def test_changes_of_every_kind_exact_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b, root = pair(tmp_path)
    argv = [a, *X86, "--reg", f"cr3={root:#x}", "--image2", b]
    assert diff(capsys, argv, 1) == [*LINES, "1 added (4K), 1 removed (4K), 5 changed (20492K)"]
    by_entry = diff(capsys, [*argv, "--by-entry"], 1)
    assert by_entry == [*LINES[:5], SPLIT, *LINES[5:], "1 added (4K), 1 removed (4K), 6 changed (22540K)"]
    reverse = diff(capsys, [b, *X86, "--reg", f"cr3={root:#x}", "--image2", a], 1)
    assert reverse[0] == "+ " + LINES[0][2:] and reverse[4] == "- " + LINES[4][2:]
    assert reverse[1] == ("~ 0x0000000010001000-0x0000000010002000         4K  pa 0x120000 4K pages S:rw- U:--- wb"
                          "  ->  pa 0x110000 4K pages S:rw- U:--- wb  (pa)")
    window = diff(capsys, [*argv, "--range", "0x10001000-0x10003000"], 1)
    assert window == [*LINES[1:3], "0 added (0K), 0 removed (0K), 2 changed (8K)"]
    assert diff(capsys, [*argv, "--range", "0x10004000-0x10005000"], 0) == ["no differences"]


def test_json_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b, root = pair(tmp_path)
    docs = [json.loads(line) for line in diff(capsys, [a, *X86, "--reg", f"cr3={root:#x}", "--image2", b, "--json"], 1)]
    assert len(docs) == len(LINES) + 1
    assert docs[0] == {"change": "removed", "va": "0x10000000", "end": "0x10001000", "size": "0x1000",
                       "a": {"pa": "0x100000", "page_size": "0x1000", "perms": "S:rw- U:---", "memtype": "wb",
                             "fault": None}, "b": None, "fields": []}
    assert docs[3]["fields"] == ["memtype"] and docs[3]["b"]["memtype"] == "uc-minus"
    assert docs[5]["size"] == "0x1000000" and docs[5]["a"]["page_size"] == "0x200000"
    assert docs[-1] == {"summary": {"added": 1, "added_bytes": "0x1000", "removed": 1, "removed_bytes": "0x1000",
                                    "changed": 5, "changed_bytes": "0x1403000"}}


def test_same_tables_no_difference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, _, root = pair(tmp_path)
    assert diff(capsys, [a, *X86, "--reg", f"cr3={root:#x}", "--image2", a], 0) == ["no differences"]
    assert diff(capsys, [a, *X86, "--reg", f"cr3={root:#x}", "--other-reg", f"cr3={root:#x}", "--json"], 0) == [
        '{"summary": {"added": 0, "added_bytes": "0x0", "removed": 0, "removed_bytes": "0x0", "changed": 0, '
        '"changed_bytes": "0x0"}}']


def _qemu_note(cr3: int) -> tuple[str, int, bytes]:
    """A "QEMU" note (QEMUCPUState version 1) of a CPU in IA-32e paging with CR3 = `cr3`."""
    segment = {"selector": 0, "limit": 0, "flags": 0, "pad": 0, "base": 0}
    state = {"version": 1, "size": QEMU_CPU_STATE.sizeof(), **dict.fromkeys(GPRS, 0), "rip": 0, "rflags": 2,
             **{name: segment for name in SEGMENTS}, "cr": [0x80010001, 0, 0, cr3, 0x20]}
    return "QEMU", 0, QEMU_CPU_STATE.build(state)


def test_pti_like_pair_of_roots_in_one_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Linux's page-table isolation: the kernel PGD maps the user pages and the kernel; the user PGD the user
    pages, the entry trampoline and the first 4 KiB of the kernel's text. One image, two CR3 values: that 4 KiB
    translates alike (a 2 MiB page in one, a 4 KiB page in the other), a change only by entry. The same from
    the core's two CPUs' recorded registers (--cpu 0 --other-cpu 1)."""
    mem = PhysMem([(0, 64 << 20)])
    frames = FrameAllocator(mem)
    user = [(0x40_0000, 0x30_0000, 0x2000, RX | F.USER, False),
            (0x7FFF_F000_0000, 0x31_0000, 0x1000, RW | F.USER, False)]
    trampoline = (0xFFFF_FE00_0000_0000, 0x32_0000, 0x1000, RX, False)
    _, kernel_root = build([*user, trampoline, (DIRECT, 0, 32 << 20, RW, True),
                            (0xFFFF_FFFF_8100_0000, 0x100_0000, 4 << 20, RX, True)], mem, frames)
    _, user_root = build([*user, trampoline, (0xFFFF_FFFF_8100_0000, 0x100_0000, 0x1000, RX, False)], mem, frames)
    write_elf_core(tmp_path / "pti.elf", mem, "x86_64", [_qemu_note(kernel_root), _qemu_note(user_root)])
    argv = [str(tmp_path / "pti.elf"), *X86, "--reg", f"cr3={kernel_root:#x}", "--other-reg", f"cr3={user_root:#x}"]
    removed = ["- 0xffff888000000000-0xffff888002000000        32M  pa 0x0 2M pages S:rw- U:--- wb",
               "- 0xffffffff81001000-0xffffffff81400000      4092K  pa 0x1001000 2M pages S:r-x U:--- wb"]
    assert diff(capsys, argv, 1) == [*removed, "0 added (0K), 2 removed (36860K), 0 changed (0K)"]
    assert diff(capsys, [*argv, "--by-entry"], 1) == [      # the entry text: a 2 MiB page, and a 4 KiB page
        removed[0], "~ 0xffffffff81000000-0xffffffff81001000         4K  pa 0x1000000 2M pages S:r-x U:--- wb  ->  "
                    "pa 0x1000000 4K pages S:r-x U:--- wb  (page size)",
        removed[1], "0 added (0K), 2 removed (36860K), 1 changed (4K)"]
    assert main(["diff", str(tmp_path / "pti.elf"), "--arch", "x86_64", "--cpu", "0", "--other-cpu", "1"]) == 1
    out = capsys.readouterr()
    assert out.out.splitlines() == [*removed, "0 added (0K), 2 removed (36860K), 0 changed (0K)"]
    assert out.err.splitlines() == [f"pagetable: note: {side}assumed efer=0xd01 (SCE, LME, LMA, NXE: the core "
                                    "records no EFER; give --reg efer=... if NXE was clear)" for side in ("", "b: ")]


def _states(w: Walker, vas: np.ndarray) -> list[np.ndarray]:
    """Per (access, privilege): whether each VA translates, and its PA and memory type (0 for a fault)."""
    out = []
    for acc in Access:
        for prv in Privilege:
            t = w.translate_many(vas, acc, prv)
            ok = t.reason == Reason.OK
            out += [ok, np.where(ok, t.pa, 0), np.where(ok, t.memtype, 0)]
    return out


@pytest.mark.parametrize("mode", ["x86_64-4level", "aarch64-4k-48"])
def test_two_vector_sets_against_the_walker(mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two seeds' tables: every VA outside the changes listed translates alike in both (every access and
    privilege: whether it translates, to which PA, with which memory type); the first VA of each change
    translates differently, but where both fault with a different reason (a rejected entry), or where a leaf
    is only partly RAM (the listing gives it the permissions its RAM has)."""
    generate = generate_x86 if mode.startswith("x86") else generate_aarch64
    one, two = generate(mode, 3, None), generate(mode, 4, None)
    assert one.registers.keys() == two.registers.keys()
    (tmp_path / "1").mkdir()
    (tmp_path / "2").mkdir()
    argv = [*image(one, "elf", tmp_path / "1"), "--arch", mode.split("-")[0], *registers(one), *pa_bits(one),
            "--image2", *image(two, "lime", tmp_path / "2")]
    main(["diff", *argv, "--json"])
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    changes = docs[:-1]
    assert changes and docs[-1]["summary"]["changed"] == sum(c["change"] == "changed" for c in changes)
    wa, wb = walker(one), walker(dataclasses.replace(two, registers=one.registers))   # b: a's registers
    firsts = np.array([int(c["va"], 16) for c in changes], dtype=np.uint64)
    lasts = np.array([int(c["end"], 16) - 1 & (1 << 64) - 1 for c in changes], dtype=np.uint64)
    vas = np.unique(np.array(sorted({c.va for c in one.cases} | {c.va for c in two.cases}), dtype=np.uint64))
    k = np.searchsorted(firsts, vas, side="right") - 1
    inside = (k >= 0) & (lasts[np.maximum(k, 0)] >= vas)
    outside = vas[~inside]
    assert outside.shape[0] > 10
    for x, y in zip(_states(wa, outside), _states(wb, outside), strict=True):
        assert (x == y).all()
    partly_ram = {int(va, 16) for w in (wa, wb) for p in address_space(w).problems
                  for va in re.findall(r"leaf at VA (0x[0-9a-f]+) maps .* of which only part is RAM", p)}
    faults = [(c["a"] or c["b"])["fault"] is not None if c["change"] != "changed" else "fault" in c["fields"]
              for c in changes]
    differ = np.array([f or int(c["va"], 16) in partly_ram for f, c in zip(faults, changes, strict=True)])
    for x, y in zip(_states(wa, firsts), _states(wb, firsts), strict=True):
        differ |= x != y
    assert differ.all(), [c for c, d in zip(changes, differ, strict=True) if not d][:3]


def error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(["diff", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pagetable: error: ") and err.count("\n") == 1, err
    return err


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, _, root = pair(tmp_path)
    base = [a, *X86, "--reg", f"cr3={root:#x}"]
    (tmp_path / "regs.json").write_text("[1]")
    (tmp_path / "cr3.json").write_text('{"cr3": 0}')
    cases = {
        "nothing to compare: give the second image (--image2 IMAGE...)": base,
        "--other-reg NAME=VALUE ... or --other-regs FILE.json, not both": [*base, "--other-reg", "cr3=0",
                                                                          "--other-regs", "x.json"],
        "--other-reg cr3: not a number: '0xzz'": [*base, "--other-reg", "cr3=0xzz"],
        "--other-reg 'cr3': give NAME=VALUE": [*base, "--other-reg", "cr3"],
        f"--other-regs {tmp_path / 'regs.json'}: must hold an object": [*base, "--other-regs",
                                                                        str(tmp_path / "regs.json")],
        "--other-regs /nonexistent.json: cannot read it": [*base, "--other-regs", "/nonexistent.json"],
        "register cr0 is missing": [*base, "--other-regs", str(tmp_path / "cr3.json")],
        "not an ELF core or a LiME image": [*base, "--image2", str(tmp_path / "regs.json")],
        "none.elf": [*base, "--image2", str(tmp_path / "none.elf")],
        "--range '0x1000': give START-END": [*base, "--image2", a, "--range", "0x1000"],
        "--range '0x2000-0x1000': give START-END with START < END": [*base, "--image2", a, "--range", "0x2000-0x1000"],
        "--range '0x1001-0x2000': give START-END with START < END": [*base, "--image2", a, "--range", "0x1001-0x2000"],
        "--range 'x-0x2000': give START-END": [*base, "--image2", a, "--range", "x-0x2000"],
        "the second address space: --other-cpu: the core has no QEMU CPU-state notes": [*base, "--other-cpu", "0"],
        "IA32_EFER.LME=1 needs CR4.PAE=1": [*base, "--other-reg", "cr4=0"],
    }
    for expected, argv in cases.items():
        assert expected in error(capsys, argv), argv


def test_the_top_page_of_the_address_space(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A page ending at 2**64: its end printed as 0 (modulo 2**64, as ptdump prints it), in JSON in full."""
    mem = PhysMem([(0, 64 << 20)])
    frames = FrameAllocator(mem)
    _, a = build([(0xFFFF_FFFF_FFFF_E000, 0x10_0000, 0x1000, RW, False)], mem, frames)
    _, b = build([(0xFFFF_FFFF_FFFF_E000, 0x10_0000, 0x2000, RW, False)], mem, frames)
    write_elf_core(tmp_path / "top.elf", mem, "x86_64")
    argv = [str(tmp_path / "top.elf"), *X86, "--reg", f"cr3={a:#x}", "--other-reg", f"cr3={b:#x}"]
    assert diff(capsys, argv, 1) == [
        "+ 0xfffffffffffff000-0x0000000000000000         4K  pa 0x101000 4K pages S:rw- U:--- wb",
        "1 added (4K), 0 removed (0K), 0 changed (0K)"]
    assert json.loads(diff(capsys, [*argv, "--json"], 1)[0])["end"] == "0x10000000000000000"
    assert diff(capsys, [*argv, "--range", "0xfffffffffffff000-0x10000000000000000"], 1)[0].startswith("+ ")
    assert diff(capsys, [*argv, "--range", "0xffffffffffffe000-0xfffffffffffff000"], 0) == ["no differences"]
