"""`pagetable walk`: Linux's ptdump text of small tables built by hand entry by entry, one per architecture
(the expected lines written from the ptdump.c formats, not produced by the command); json and csv read
back and compared field by field with `Walker.mappings` on generated vector sets written as ELF, LiME and
raw images; `--range`; `--stage 2`; the walk's notes; bad input refused with one line and exit status 2."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from pagetable import registry
from pagetable.cli import main
from pagetable.dump.walk import FORMATS, ptdump_lines
from pagetable.listing import permissions
from pagetable.mappings import Mappings
from pagetable.physmem import PhysMem
from pagetable.translation import MemoryType, Reason
from pagetable.vectors import generate_aarch64

from .test_cli_translate import MODES, image, pa_bits, registers, vector_set, walker

MiB = 1 << 20


def raw_image(tmp_path: Path, base: int, entries: dict[int, int]) -> str:
    """4 MiB of RAM at `base` holding `entries` (PA: value), written as a raw image: its FILE@BASE."""
    mem = PhysMem([(base, 4 * MiB)])
    for pa, value in entries.items():
        mem.write_u64(pa, value)
    (tmp_path / "ram.bin").write_bytes(bytes(mem.regions[0].data))
    return f"{tmp_path / 'ram.bin'}@{base:#x}"


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[list[str], list[str]]:
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr()
    return out.out.splitlines(), out.err.splitlines()


# --- x86_64: 4-level paging, CR3 = 0x1000 ---------------------------------------------------------------
NX = 1 << 63
X86_TABLES = {
    0x1000: 0x2000 | 0x7,                # PML4[0] -> PDPT (P RW US)
    0x1000 + 511 * 8: 0x9000 | 0x3,      # PML4[511] -> PDPT (P RW)
    0x2000: 0x3000 | 0x7,                # PDPT[0] -> PD
    0x3000: 0x4000 | 0x7,                # PD[0] -> PT
    0x3000 + 8: 0x200000 | 0x183 | NX,   # PD[1]: 2M page, P RW PS G NX
    0x3000 + 16: 0xB000 | 0x3,           # PD[2] -> PT, supervisor only: its user page is not the user's
    0x4000 + 8: 0x5000 | 0x5,            # PT[1]: P US (read-only, executable)
    0x4000 + 16: 0x6000 | 0x7 | NX,      # PT[2], PT[3]: P RW US NX (one run of 8K)
    0x4000 + 24: 0x7000 | 0x7 | NX,
    0x4000 + 32: 0x8000 | 0xF | NX,      # PT[4]: also PWT
    0x4000 + 40: 0xD000 | 0x7 | 1 << 45,  # PT[5]: a reserved bit (MAXPHYADDR 40)
    0xB000: 0xC000 | 0x7,                # PT'[0]: P RW US under a supervisor PDE
    0x9000 + 510 * 8: 0xA000 | 0x3,      # PDPT'[510] -> PD
    0xA000: 0x0 | 0x181,                 # PD'[0]: 2M page, P PS G: read-only, executable kernel text
}
X86_ARGS = ["--arch", "x86_64", "--reg", "cr3=0x1000", "--reg", "cr0=0x80010001", "--reg", "cr4=0x20", "--reg",
            "efer=0xd00", "--pa-bits", "40"]
X86_PTDUMP = """\
---[ User Space ]---
0x0000000000000000-0x0000000000001000           4K                               pte
0x0000000000001000-0x0000000000002000           4K USR ro                     x  pte
0x0000000000002000-0x0000000000004000           8K USR RW                     NX pte
0x0000000000004000-0x0000000000005000           4K USR RW PWT                 NX pte
0x0000000000005000-0x0000000000006000           4K USR RW                     x  pte  ! faults: reserved
0x0000000000006000-0x0000000000200000        2024K                               pte
0x0000000000200000-0x0000000000400000           2M     RW         PSE     GLB NX pmd
0x0000000000400000-0x0000000000401000           4K     RW                     x  pte
0x0000000000401000-0x0000000000600000        2044K                               pte
0x0000000000600000-0x0000000040000000        1018M                               pmd
0x0000000040000000-0x0000008000000000         511G                               pud
0x0000008000000000-0xffff800000000000   17179737600G                               p4d
---[ Kernel Space ]---
0xffff800000000000-0xffffff8000000000      130560G                               p4d
0xffffff8000000000-0xffffffff80000000         510G                               pud
0xffffffff80000000-0xffffffff80200000           2M     ro         PSE     GLB x  pmd
0xffffffff80200000-0xffffffffc0000000        1022M                               pmd
0xffffffffc0000000-0x0000000000000000           1G                               pud
""".splitlines()


def test_x86_ptdump_is_linux_dump_pagetables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, err = run(capsys, ["walk", raw_image(tmp_path, 0, X86_TABLES), *X86_ARGS])
    assert out == X86_PTDUMP and err == []


def test_x86_range(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = raw_image(tmp_path, 0, X86_TABLES)
    expected = [X86_PTDUMP[0], X86_PTDUMP[3], X86_PTDUMP[4]]
    assert run(capsys, ["walk", img, *X86_ARGS, "--range", "0x2000-0x5000"])[0] == expected
    assert run(capsys, ["walk", img, *X86_ARGS, "--range", "8192+12288"])[0] == expected
    assert run(capsys, ["walk", img, *X86_ARGS, "--range", "0xffffffff80000000-0x10000000000000000"])[0] == [
        "---[ Kernel Space ]---", X86_PTDUMP[16], X86_PTDUMP[17], X86_PTDUMP[18]]
    rows = run(capsys, ["walk", img, *X86_ARGS, "--range", "0x1000-0x3000", "--format", "csv"])[0]
    assert rows == ["region,va,end,pa,size,level,perms,memtype,raw,fault,fault_stage",
                    "cr3,0x1000,0x2000,0x5000,4096,1,S:r-x U:r-x,wb,0x5005,,",
                    "cr3,0x2000,0x3000,0x6000,4096,1,S:rw- U:rw-,wb,0x8000000000006007,,"]


# --- riscv: Sv39, RAM at 0x8000_0000, root at 0x8000_1000 ------------------------------------------------
def _pte(pa: int, bits: int) -> int:
    return (pa >> 12) << 10 | bits


RISCV_TABLES = {
    0x8000_1000: _pte(0x8000_2000, 0x1),                 # root[0] -> L1
    0x8000_1000 + 511 * 8: _pte(0x8000_0000, 0xE7),      # root[511]: 1G leaf D A G W R V (RAM: only 4 MiB)
    0x8000_1000 + 2 * 8: _pte(0x1000_0000, 0x1),         # root[2] -> a table outside RAM
    0x8000_2000: _pte(0x8000_3000, 0x1),                 # L1[0] -> L0
    0x8000_3000 + 8: _pte(0x8001_0000, 0xD7),            # L0[1], L0[2]: D A U W R V, one run (PAs apart)
    0x8000_3000 + 16: _pte(0x8002_0000, 0xD7),
    0x8000_3000 + 24: _pte(0x8001_1000, 0x14B),          # L0[3]: RSW=1 A X R V
    0x8000_3000 + 40: _pte(0x8001_2000, 0xC5),           # L0[5]: D A W V, W without R
}
RISCV_ARGS = ["--arch", "riscv", "--reg", f"satp={8 << 60 | 0x8_0001:#x}"]
RISCV_PTDUMP = [
    "0x0000000000001000-0x0000000000003000    0x0000000080010000         8K PTE .   ..     ..   D A . U . W R V",
    "0x0000000000003000-0x0000000000004000    0x0000000080011000         4K PTE .   ..   RSW(1) . A . . X . R V",
    "0x0000000000005000-0x0000000000006000    0x0000000080012000         4K PTE .   ..     ..   D A . . . W . V"
    "  ! faults: w-without-r",
    "0xffffffffc0000000-0x0000000000000000    0x0000000080000000         1G PUD .   ..     ..   D A G . . W R V",
]
RISCV_NOTE = "the level-1 table for VA 0x80000000 is at 0x10000000, outside RAM: not walked"


def test_riscv_ptdump_is_linux_ptdump(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, err = run(capsys, ["walk", raw_image(tmp_path, 0x8000_0000, RISCV_TABLES), *RISCV_ARGS])
    assert out == RISCV_PTDUMP
    assert err == [f"pagetable: note: {RISCV_NOTE}"]


def test_notes_in_band_for_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, err = run(capsys, ["walk", raw_image(tmp_path, 0x8000_0000, RISCV_TABLES), *RISCV_ARGS, "--format", "json"])
    assert err == [] and json.loads(out[-1]) == {"note": RISCV_NOTE}
    assert json.loads(out[3]) == {"region": "satp", "va": "0x5000", "end": "0x6000", "pa": "0x80012000", "size": 4096,
                                  "level": 0, "perms": None, "memtype": None, "raw": "0x200048c5",
                                  "fault": "w-without-r", "fault_stage": 1}
    assert len(out) == 6


# --- aarch64: 4KB granule, 48-bit VAs, TTBR0 and TTBR1, RAM at 0x4000_0000 ----------------------------------
AF, SHD, NG, PXN, UXN = 1 << 10, 3 << 8, 1 << 11, 1 << 53, 1 << 54
A64_TABLES = {
    0x4000_1000: 0x4000_2003,                                          # TTBR0 L0[0] -> L1
    0x4000_2000: 0x4000_3003,                                          # L1[0] -> L2
    0x4000_3000: 0x4000_4003,                                          # L2[0] -> L3
    0x4000_3008: 0x4020_0001 | AF | SHD | 1 << 7,                      # L2[1]: 2M block, AP=10 (EL1 ro)
    0x4000_4008: 0x4001_0003 | AF | SHD | NG | PXN | UXN | 1 << 6,      # L3[1]: page, AP=01 (EL0 and EL1 RW)
    0x4000_4010: 0x4001_1003 | AF | PXN | UXN | 4 << 2,                # L3[2]: page, AttrIndx 4 (Device-nGnRE)
    0x4000_5000 + 511 * 8: 0x4000_6003,                                # TTBR1 L0[511] -> L1
    0x4000_6000 + 510 * 8: 0x4000_7003,                                # L1[510] -> L2
    0x4000_7000: 0x4000_0001 | AF | SHD | UXN,                         # L2[0]: 2M block, EL1 RW
    0x4000_7008: 0x4020_0001 | SHD | UXN,                              # L2[1]: AF=0, an Access flag fault
}
A64_ARGS = ["--arch", "aarch64", "--reg", "ttbr0_el1=0x40001000", "--reg", "ttbr1_el1=0x40005000", "--reg",
            "tcr_el1=0x2b5103510", "--reg", "mair_el1=0x40044ffff", "--reg", "sctlr_el1=0x1005"]
A64_PTDUMP = """\
---[ TTBR0_EL1 ]---
0x0000000000000000-0x0000000000001000           4K PTE
0x0000000000001000-0x0000000000002000           4K PTE   USR RW NX SHD AF NG         UXN    MEM/NORMAL
0x0000000000002000-0x0000000000003000           4K PTE       RW NX     AF            UXN    DEVICE/nGnRE
0x0000000000003000-0x0000000000200000        2036K PTE
0x0000000000200000-0x0000000000400000           2M PMD       ro x  SHD AF        BLK        MEM/NORMAL
0x0000000000400000-0x0000000040000000        1020M PMD
0x0000000040000000-0x0000008000000000         511G PUD
0x0000008000000000-0x0001000000000000      261632G P4D
---[ TTBR1_EL1 ]---
0xffff000000000000-0xffffff8000000000      261632G P4D
0xffffff8000000000-0xffffffff80000000         510G PUD
0xffffffff80000000-0xffffffff80200000           2M PMD       RW x  SHD AF        BLK UXN    MEM/NORMAL
0xffffffff80200000-0xffffffff80400000           2M PMD       RW x  SHD           BLK UXN     ! faults: accessed-dirty
0xffffffff80400000-0xffffffffc0000000        1020M PMD
0xffffffffc0000000-0x0000000000000000           1G PUD
""".splitlines()


def test_aarch64_ptdump_is_linux_ptdump(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, err = run(capsys, ["walk", raw_image(tmp_path, 0x4000_0000, A64_TABLES), *A64_ARGS])
    assert out == A64_PTDUMP and err == []


# --- json and csv against Walker.mappings, on generated vector sets ----------------------------------------
def expected_rows(m: Mappings, region: str) -> list[dict[str, object]]:
    """`FIELDS` of every row, computed from the columns (as the docs describe them)."""
    assert m.perms is not None and m.verdict is not None and m.memtype is not None and m.verdict_stage is not None
    rows = []
    for i in range(len(m)):
        ok = m.verdict[i] == 0
        memtype = MemoryType(int(m.memtype[i]))
        end = (int(m.va[i]) + int(m.size[i])) % (1 << 64)
        rows.append({"region": region, "va": f"{int(m.va[i]):#x}", "end": f"{end:#x}",
                     "pa": f"{int(m.pa[i]):#x}", "size": int(m.size[i]), "level": int(m.level[i]),
                     "perms": permissions(int(m.perms[i])) if ok else None,
                     "memtype": memtype.label if memtype else None, "raw": f"{int(m.raw[i]):#x}",
                     "fault": None if ok else Reason(int(m.verdict[i])).label,
                     "fault_stage": None if ok else int(m.verdict_stage[i])})
    return rows


def all_rows(mode: str, stage: int = 1) -> tuple[list[dict[str, object]], list[str], list[dict[str, object]]]:
    """Every region's rows, the walk's notes, and the json lines: each region's rows, then its notes."""
    one = walker(vector_set(mode))
    w = one if stage == 1 else one.stage2
    assert w is not None
    rows: list[dict[str, object]] = []
    notes: list[str] = []
    lines: list[dict[str, object]] = []
    for k, region in enumerate(w.rules.regime.regions):
        m = w.mappings(region=k)
        rows += expected_rows(m, region.name.lower())
        notes += m.problems
        lines += expected_rows(m, region.name.lower()) + [{"note": n} for n in m.problems]
    return rows, notes, lines


@pytest.mark.parametrize("kind", ["elf", "lime", "raw"])
@pytest.mark.parametrize("mode", MODES)
def test_json_and_csv_agree_with_mappings(mode: str, kind: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    vs = vector_set(mode)
    argv = ["walk", *image(vs, kind, tmp_path), "--arch", MODES[mode][1], *registers(vs), *pa_bits(vs)]
    rows, notes, lines = all_rows(mode)
    assert len(rows) > 20 and notes
    out, err = run(capsys, [*argv, "--format", "json"])
    assert err == []
    assert [json.loads(line) for line in out] == lines
    out, err = run(capsys, [*argv, "--format", "csv"])
    assert err == [f"pagetable: note: {n}" for n in notes]
    parsed = list(csv.DictReader(io.StringIO("\n".join(out))))
    assert parsed == [{k: "" if v is None else str(v) for k, v in row.items()} for row in rows]


def test_stage_2_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vs = vector_set("sv39+sv39x4")
    argv = ["walk", *image(vs, "lime", tmp_path), "--arch", "riscv", *registers(vs), "--format", "json"]
    rows, _, lines = all_rows("sv39+sv39x4", stage=2)
    out, _ = run(capsys, [*argv, "--stage", "2"])
    assert [json.loads(line) for line in out] == lines
    assert {r["region"] for r in rows} == {"hgatp"} and len(rows) > 10


def test_json_range_is_the_rows_in_range(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vs = vector_set("x86_64-4level")
    lo, hi = 0x4_0000_0000, 0x4_0040_0000
    every, _, _ = all_rows("x86_64-4level")
    inside = [r for r in every if lo <= int(str(r["va"]), 16) < hi]
    out, _ = run(capsys, ["walk", *image(vs, "raw", tmp_path), "--arch", "x86_64", *registers(vs), *pa_bits(vs),
                          "--format", "json", "--range", f"{lo:#x}-{hi:#x}"])
    assert [json.loads(line) for line in out] == inside
    assert 5 <= len(inside) < len(every)


# --- bad input ------------------------------------------------------------------------------------------------
_ORDER = "give START-END with START < END <= 2**64, both multiples of 4 KiB"
_SHAPE = "give START-END (0xffff800000000000-0xffff900000000000): not a number"


@pytest.mark.parametrize(("extra", "message"), [
    (["--range", "0x5000-0x3000"], f"--range '0x5000-0x3000': {_ORDER}"),
    (["--range", "0x1000-0x1800"], f"--range '0x1000-0x1800': {_ORDER}"),
    (["--range", "0x1000"], f"--range '0x1000': {_SHAPE}: ''"),
    (["--range", "1-zz"], f"--range '1-zz': {_SHAPE}: 'zz'"),
    (["--range", "0x1000+0x10000000000000000"], f"--range '0x1000+0x10000000000000000': {_ORDER}"),
    (["--stage", "2"], "--stage 2: the registers select one stage of translation"),
])
def test_bad_input(extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["walk", raw_image(tmp_path, 0, X86_TABLES), *X86_ARGS, *extra]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err == f"pagetable: error: {message}\n"


def test_bad_image_and_registers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "junk").write_bytes(b"\x7fELF" + bytes(60))
    assert main(["walk", str(tmp_path / "junk"), *X86_ARGS]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["walk", raw_image(tmp_path, 0, X86_TABLES), "--arch", "x86_64"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pagetable: error: give the translation registers") and err.count("\n") == 1


def test_a_range_without_mappings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x86 = ["walk", raw_image(tmp_path, 0, X86_TABLES), *X86_ARGS, "--range", "0x600000-0x800000"]
    assert run(capsys, x86)[0] == [
        "---[ User Space ]---",
        "0x0000000000600000-0x0000000000800000           2M                               pmd"]
    assert run(capsys, [*x86, "--format", "json"]) == ([], [])
    assert run(capsys, [*x86, "--format", "csv"])[0] == [
        "region,va,end,pa,size,level,perms,memtype,raw,fault,fault_stage"]
    riscv = ["walk", raw_image(tmp_path, 0x8000_0000, RISCV_TABLES), *RISCV_ARGS, "--range", "0x6000-0x7000"]
    assert run(capsys, riscv) == ([], [])


def test_ptdump_of_a_stage_2_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """RISC-V's G-stage table has Linux's riscv ptdump (its rows are `--stage 2`'s json rows); AArch64's stage
    2 descriptors have no Linux ptdump: refused, pointing at json and csv."""
    vs = vector_set("sv39+sv39x4")
    argv = ["walk", *image(vs, "raw", tmp_path), "--arch", "riscv", *registers(vs), "--stage", "2"]
    lines = run(capsys, argv)[0]
    rows, _, _ = all_rows("sv39+sv39x4", stage=2)
    assert lines and all(line.startswith("0x") for line in lines)
    assert lines[0].startswith(f"0x{int(str(rows[0]['va']), 16):016x}-")
    a64 = generate_aarch64("aarch64-4k-48+s2-4k-40", 3, None)
    assert main(["walk", *image(a64, "lime", tmp_path), "--arch", "aarch64", *registers(a64), "--stage", "2"]) == 2
    assert capsys.readouterr().err == ("pagetable: error: ptdump: Linux has no page-table dump of VMSAv8-64 stage 2 "
                                       "4KB granule, 40-bit IPA tables (use --format json or csv)\n")


def test_library_formats_and_notes() -> None:
    """`pagetable.dump.walk.FORMATS` as a library: the same lines, the notes to a callback of one's own."""
    mem = PhysMem([(0x8000_0000, 4 * MiB)])
    for pa, value in RISCV_TABLES.items():
        mem.write_u64(pa, value)
    arch = registry.by_cli_name("riscv")
    assert arch.walker_from_registers is not None
    w = arch.walker_from_registers(mem, {"satp": 8 << 60 | 0x8_0001}, None)
    notes: list[str] = []
    assert list(ptdump_lines(w, note=notes.append)) == RISCV_PTDUMP        # a walker whose accesses must be RAM
    assert notes == ["the 1G leaf at VA 0xffffffffc0000000 maps [0x80000000, 0xc0000000), of which only part is RAM",
                     RISCV_NOTE]
    assert list(FORMATS) == ["ptdump", "json", "csv", "qemu-info-mem", "qemu-info-tlb"]
    assert len(list(FORMATS["json"](w, 0x1000, 0x3000))) == 2


@pytest.mark.parametrize("mode", ["x86_64-4level", "sv39"])
def test_qemu_formats_are_the_monitor_formats(mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--format qemu-info-mem` / `qemu-info-tlb` print `qemu_monitor`'s lines (checked against QEMU's own
    monitor in tests/test_qemu_monitor_formats.py) for the image's tables; `--range` keeps the lines that
    meet it; an architecture the monitor has no such command for is refused in one line."""
    from pagetable.dump.qemu_monitor import info_mem_lines, info_tlb_lines
    vs = vector_set(mode)
    argv = ["walk", *image(vs, "elf", tmp_path), "--arch", registry.by_name(vs.arch).cli_name, *registers(vs),
            *pa_bits(vs)]
    formats = {"qemu-info-mem": info_mem_lines} | ({"qemu-info-tlb": info_tlb_lines} if "x86" in mode else {})
    for name, lines in formats.items():
        out, _ = run(capsys, [*argv, "--format", name])
        assert out == list(lines(walker(vs))) and len(out) > 10
        top = 0x8000_0000_0000 if "x86" in mode else 0x40_0000_0000
        low, _ = run(capsys, [*argv, "--format", name, "--range", f"0-{top:#x}"])
        assert low == list(lines(walker(vs), 0, top)) and 0 < len(low) < len(out)
    if "x86" not in mode:
        assert main([*argv, "--format", "qemu-info-tlb"]) == 2
        assert capsys.readouterr().err == "pagetable: error: QEMU's monitor has 'info tlb' for x86 only, not for Sv39\n"
