"""Every output format of `pagetable.vectors.writers` read back byte for byte as mem.bin: the .S assembled
and linked by GNU binutils at two addresses, the .h compiled by gcc, the .hex parsed here, the .elf read by
pyelftools; one mode per architecture, a two-stage one and Sv32 (4-byte entries: 32-bit words, 34-bit PAs)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from pagetable import registry
from pagetable.cli import main
from pagetable.physmem import PhysMem
from pagetable.vectors import VectorSet, generate_aarch64, generate_riscv, generate_x86, writers
from pagetable.walker import Walker

from .conftest import _require

MODES: dict[str, Callable[[str, int, None], VectorSet]] = {
    "sv39": generate_riscv, "sv39+sv39x4": generate_riscv, "sv32": generate_riscv, "sv32+sv32x4": generate_riscv,
    "x86_64-4level": generate_x86, "x86-32-pse36": generate_x86, "x86-pae": generate_x86,
    "aarch64-4k-48": generate_aarch64}
PREFIX = {"riscv64": "riscv64-linux-gnu-", "x86_64": "x86_64-linux-gnu-", "aarch64": "aarch64-linux-gnu-"}
DELTA = 1 << 30
"""How far the .S is moved: a multiple of the largest page (1 GiB) the generated tables map."""


def _small(mode: str) -> tuple[VectorSet, Walker]:
    """The mode's vector set (seed 1) with only its page tables and the first page of each region kept
    (the rest zeroed), so the text formats stay small; and its walker."""
    vs = MODES[mode](mode, 1, None)
    walker = registry.walker_for(vs)
    keep = [(t.pa, t.size) for t in writers.tables(walker)[0]] + [(r.base, 4096) for r in vs.mem.regions]
    mem = PhysMem([(r.base, r.size) for r in vs.mem.regions])
    for pa, size in keep:
        mem.write(pa, vs.mem.read(pa, size))
    small = dataclasses.replace(vs, mem=mem)
    return small, registry.walker_for(small)


@pytest.fixture(scope="module", params=list(MODES))
def written(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[VectorSet, Walker, Path]:
    vs, walker = _small(request.param)
    out = tmp_path_factory.mktemp(request.param.replace("+", "_"))
    writers.write_formats(vs, walker, str(out), writers.FORMATS, "test\n")
    return vs, walker, out


def _images(vs: VectorSet) -> list[tuple[int, bytes]]:
    return [(r.base, r.data.tobytes()) for r in vs.mem.regions]


def test_tables_found(written: tuple[VectorSet, Walker, Path]) -> None:
    walker = written[1]
    found = writers.tables(walker)[0]
    roots = {root for _, _, root in writers.physical_regions(walker)}
    assert roots and roots <= {t.pa for t in found}
    assert all(t.size == 4096 or t.pa in roots for t in found)        # the G-stage root is 16 KiB
    assert len(found) >= len(roots) + 2


@pytest.mark.parametrize("width", writers.HEX_WIDTHS)
def test_hex_round_trip(written: tuple[VectorSet, Walker, Path], width: int, tmp_path: Path) -> None:
    vs, _, _ = written
    offset = vs.mem.regions[0].base
    path = tmp_path / "mem.hex"
    writers.write_hex(path, vs.mem, width, offset)
    step, got = width // 8, []
    for block in path.read_bytes().split(b"@")[1:]:
        at, first, _ = block.split(b"\n", 2)
        assert [len(w) for w in first.split()] == [width // 4] * 8
        digits = block[len(at):].translate(None, b" \n").decode()
        data = np.frombuffer(bytes.fromhex(digits), np.uint8).reshape(-1, step)[:, ::-1]
        got.append((offset + int(at, 16) * step, data.tobytes()))
    assert got == _images(vs)


def test_elf_round_trip(written: tuple[VectorSet, Walker, Path]) -> None:
    vs, walker, out = written
    with open(out / "mem.elf", "rb") as fh:
        elf = ELFFile(fh)
        assert elf["e_type"] == "ET_EXEC" and elf["e_machine"] == {"riscv64": "EM_RISCV", "x86_64": "EM_X86_64",
                                                                    "aarch64": "EM_AARCH64"}[vs.arch]
        sections = [(s["sh_addr"], s.data()) for s in elf.iter_sections() if s.name.startswith(".pt_mem")]
        assert sections == _images(vs)
        assert [(p["p_paddr"], p.data()) for p in elf.iter_segments()] == _images(vs)
        symtab = elf.get_section_by_name(".symtab")
        assert isinstance(symtab, SymbolTableSection)
        symbols = {s.name: (s["st_value"], s["st_size"]) for s in symtab.iter_symbols() if s.name}
    expected = {t.name: (t.pa, t.size) for t in writers.tables(walker)[0]}
    expected |= {f"pt_reg_{k}": (v, 0) for k, v in vs.registers.items()}
    expected |= {f"pt_mem{k}": (r.base, r.size) for k, r in enumerate(vs.mem.regions)}
    assert symbols == expected


def _tool(vs: VectorSet, name: str) -> str:
    tool = PREFIX[vs.arch] + name
    _require([] if shutil.which(tool) else [f"{tool} not found (Debian package binutils-{tool[:-len(name) - 1]})"])
    return tool


def _assemble(vs: VectorSet, source: Path, delta: int, tmp: Path) -> tuple[list[bytes], dict[str, int]]:
    """tables.S assembled with every region's base moved by `delta`, linked there, each section's bytes
    (objcopy -O binary) and the linked symbols."""
    regions = vs.mem.regions
    defsyms = [a for k, r in enumerate(regions) for a in ("--defsym", f"pt_mem{k}_base={r.base + delta:#x}")]
    obj, exe = tmp / f"t{delta}.o", tmp / f"t{delta}.elf"
    subprocess.run([_tool(vs, "as"), *defsyms, "-o", str(obj), str(source)], check=True)
    starts = [f"--section-start=.pt_mem{k}={r.base + delta:#x}" for k, r in enumerate(regions)]
    subprocess.run([_tool(vs, "ld"), "-e", "0", *starts, "-o", str(exe), str(obj)], check=True)
    out = []
    for k in range(len(regions)):
        binary = tmp / f"t{delta}-{k}.bin"
        subprocess.run([_tool(vs, "objcopy"), "-O", "binary", "-j", f".pt_mem{k}", str(exe), str(binary)], check=True)
        out.append(binary.read_bytes())
    with open(exe, "rb") as fh:
        symtab = ELFFile(fh).get_section_by_name(".symtab")
        assert isinstance(symtab, SymbolTableSection)
        symbols = {s.name: s["st_value"] for s in symtab.iter_symbols() if s.name.startswith("pt_")}
    return out, symbols


def _moved(vs: VectorSet, walker: Walker) -> tuple[list[bytes], int]:
    """The images with every table entry whose output address is inside them moved by DELTA (the codec's
    own address field), and how many entries moved."""
    mem = PhysMem([(r.base, r.data.copy()) for r in vs.mem.regions])
    moved = 0
    for codec, slots, raws, huge in writers.tables(walker)[1]:
        for is_huge in (False, True):
            sel = huge == is_huge
            raw, slot = raws[sel], slots[sel]
            pa = codec.paddr_np(raw, is_huge)
            inside = vs.mem.contains_np(pa, 1)
            mem.entries(writers.entry_size(walker)).write_np(slot[inside], codec.with_paddr_np(raw[inside], pa[inside] +
                                                                                           np.uint64(DELTA), is_huge))
            moved += int(np.count_nonzero(inside))
    return [r.data.tobytes() for r in mem.regions], moved


def test_asm_round_trip_at_two_addresses(written: tuple[VectorSet, Walker, Path], tmp_path: Path) -> None:
    vs, walker, out = written
    at_base, symbols = _assemble(vs, out / "tables.S", 0, tmp_path)
    assert at_base == [data for _, data in _images(vs)]
    found = writers.tables(walker)[0]
    assert {t.name: t.pa for t in found}.items() <= symbols.items()
    assert {f"pt_reg_{k}": v for k, v in vs.registers.items()}.items() <= symbols.items()
    moved_images, symbols = _assemble(vs, out / "tables.S", DELTA, tmp_path)
    expected, moved = _moved(vs, walker)
    assert moved >= len(found) - len(writers.physical_regions(walker))    # at least a pointer per non-root table
    assert moved_images == expected and moved_images != at_base
    assert {t.name: t.pa + DELTA for t in found}.items() <= symbols.items()


def test_header_compiled(written: tuple[VectorSet, Walker, Path], tmp_path: Path) -> None:
    vs, walker, out = written
    _require([] if shutil.which("gcc") else ["gcc not found (Debian package gcc)"])
    n = len(vs.mem.regions)
    program = tmp_path / "dump.c"
    program.write_text("#include <stdio.h>\n#include \"tables.h\"\nint main(void) {\n" + "".join(
        f" fwrite(pt_mem{k}, sizeof pt_mem{k}[0], PT_MEM{k}_WORDS, stdout);\n" for k in range(n)) +
        " printf(\"%llx %llx\", (unsigned long long)PT_MEM0_BASE, (unsigned long long)" +
        f"{writers.tables(walker)[0][0].name.upper()});\n return 0;\n}}\n")
    exe = tmp_path / "dump"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Werror", "-I", str(out), "-o", str(exe), str(program)], check=True)
    got = subprocess.run([str(exe)], check=True, capture_output=True).stdout
    images = b"".join(data for _, data in _images(vs))
    assert got[:len(images)] == images
    assert got[len(images):].decode() == f"{vs.mem.regions[0].base:x} {writers.tables(walker)[0][0].pa:x}"


def test_sv32_words_are_its_4_byte_entries(tmp_path: Path) -> None:
    """Sv32's .S and .h write 4-byte words, one a PTE (riscv as `.word`, `uint32_t`): the root's first
    pointer is `V | ((pt_mem0_base + OFF) >> 12) << 10` at its index; a PTE above 4 GiB stays a number."""
    vs, walker = _small("sv32")
    out = tmp_path
    writers.write_formats(vs, walker, str(out), ("S", "h"), "test\n")
    root = writers.tables(walker)[0][0]
    assert writers.entry_size(walker) == 4 and root.size == 4096 and root.name == f"pt_satp_l1_{root.pa:x}"
    raws = vs.mem.words32(root.pa, 1024)
    index = next(int(k) for k in np.flatnonzero(raws) if raws[k] & 0xF == 1)      # a pointer: V alone
    table = (int(raws[index]) >> 10) << 12
    text = (out / "tables.S").read_text()
    assert ".dword" not in text and f"0x1 | (((pt_mem0_base + {table - 0x8000_0000:#x}) >> 12) << 10)" in text
    header = (out / "tables.h").read_text()
    assert "static const uint32_t pt_mem0[PT_MEM0_WORDS]" in header
    assert "#define PT_MEM0_WORDS 2097152" in header              # 8 MiB of u32
    assert f"[{(root.pa - 0x8000_0000) // 4 + index}] = {int(raws[index]):#x}u" in header
    high = [int(w) for w in raws if int(w) & 1 and (int(w) >> 10) << 12 >= 1 << 32]
    assert high and all(f"{w:#x}" in text for w in high)          # 34-bit PAs: outside the image, numbers


def test_cli_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "v"
    assert main(["vectors", "generate", "--mode", "sv39", "--seed", "1", "--out", str(out), "--cases", "4",
                 "--formats", "hex,elf", "--hex-width", "32", "--hex-offset", "0x80000000"]) == 0
    assert sorted(os.listdir(out)) == ["README.txt", "mem.elf", "mem.hex"]
    assert (out / "mem.hex").read_text().splitlines()[:4] == ["@0"] + ["00000000 " * 7 + "00000000"] * 2 + [
        "00000000 00000000 20000801 00000000 00000000 00000000 00000000 00000000"]   # root entry 9 -> 0x80002000
    assert (out / "README.txt").read_text().splitlines()[-1] == (
        "The same image and registers as mem.hex, mem.elf (--formats hex,elf; docs/vectors.md, Output formats).")
    capsys.readouterr()
    assert main(["vectors", "generate", "--mode", "sv39", "--seed", "1", "--out", str(out), "--formats",
                 "bin,pdf"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == ("pagetable: error: --formats: unknown format "
                                                               "'pdf' (expected all, or a comma list of bin, hex, "
                                                               "S, h, elf, json)")
