"""`pagetable plot`: PNG, SVG and PDF pictures of vector sets' address spaces, valid files (the PNG signature
and size, SVG that parses, with a legend naming exactly the permission and memory-type combinations the
hardware view has, and the regions' rows), the same bytes for the same input, `--range`, and refusals."""

from __future__ import annotations

import re
import struct
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pagetable.cli import main
from pagetable.dump.plot import FAULT, runs
from pagetable.dump.space import address_space
from pagetable.listing import permissions
from pagetable.translation import MemoryType

from .test_cli_translate import image, pa_bits, registers, vector_set, walker

LEGEND = re.compile(r"S:[r-][w-][x-] U:[r-][w-][x-] [a-z-]+")


def plot(capsys: pytest.CaptureFixture[str], mode: str, d: Path, out: str, *extra: str) -> Path:
    vs = vector_set(mode)
    argv = ["plot", *image(vs, "elf", d), "--arch", mode.split("-")[0].replace("sv39", "riscv"), *registers(vs),
            *pa_bits(vs), "--out", str(d / out), *extra]
    assert main(argv) == 0, capsys.readouterr().err
    capsys.readouterr()
    return d / out


def svg_texts(path: Path) -> list[str]:
    root = ET.parse(path).getroot()
    return [t.strip() for el in root.iter("{http://www.w3.org/2000/svg}text") for t in el.itertext() if t.strip()]


def expected_legend(mode: str) -> set[str]:
    space = address_space(walker(vector_set(mode)))
    ok = space.verdict == 0
    return {f"{permissions(p)} {MemoryType(m).label}" for p, m in zip(space.perms[ok].tolist(),
                                                                      space.memtype[ok].tolist(), strict=True)}


@pytest.mark.parametrize("mode", ["x86_64-4level", "aarch64-4k-48"])
def test_svg_legend_and_rows(mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    texts = svg_texts(plot(capsys, mode, tmp_path, "map.svg"))
    assert {t for t in texts if LEGEND.fullmatch(t)} == expected_legend(mode)
    assert "unmapped" in texts and "fault: an entry rejected for every access" in texts
    rows = [t for t in texts if re.fullmatch(r".*: 0x[0-9a-f]+-0x[0-9a-f]+ \(\d+[KMGTPE]\)", t)]
    if mode.startswith("x86"):
        assert rows == ["CR3 lower half: 0x0-0x800000000000 (128T)",
                        "CR3 upper half: 0xffff800000000000-0x10000000000000000 (128T)"]
    else:
        assert rows == ["TTBR0_EL1: 0x0-0x1000000000000 (256T)",
                        "TTBR1_EL1: 0xffff000000000000-0x10000000000000000 (256T)"]


def test_png_of_the_documented_size_and_the_same_bytes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = plot(capsys, "x86_64-4level", tmp_path, "map.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1540, round((1.25 * 2 + 1.6) * 110))      # 14 in x (two rows + legend) at 110 dpi
    assert plot(capsys, "x86_64-4level", tmp_path, "map.png").read_bytes() == data
    svg = plot(capsys, "x86_64-4level", tmp_path, "map.svg").read_bytes()
    assert plot(capsys, "x86_64-4level", tmp_path, "map.svg").read_bytes() == svg


def test_range_draws_the_regions_it_meets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Only TTBR1_EL1's range, clipped to the range asked for; the legend names what is mapped there."""
    start, end = 0xFFFF_0000_0000_0000, 0xFFFF_0001_0000_0000
    texts = svg_texts(plot(capsys, "aarch64-4k-48", tmp_path, "map.svg", "--range", f"{start:#x}-{end:#x}"))
    assert [t for t in texts if t.startswith(("TTBR0", "TTBR1"))] == [f"TTBR1_EL1: {start:#x}-{end:#x} (4G)"]
    space = address_space(walker(vector_set("aarch64-4k-48")), start, end)
    first, _, cls = runs(space)
    assert len(first) > 0
    shown = {f"{permissions(c & 0xFF)} {MemoryType(c >> 8).label}" for c in cls.tolist() if c != FAULT}
    assert {t for t in texts if LEGEND.fullmatch(t)} == shown
    pdf = plot(capsys, "aarch64-4k-48", tmp_path, "map.PDF", "--range", f"{start:#x}-{end:#x}").read_bytes()
    assert pdf.startswith(b"%PDF-") and b"CreationDate" not in pdf


def error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("pagetable: error: ") and err.count("\n") == 1, err
    return err


def test_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    vs = vector_set("sv39")
    base = ["plot", *image(vs, "elf", tmp_path), "--arch", "riscv", *registers(vs)]
    assert "--out map.jpg: the suffix must name the format: .png, .svg, .pdf" in error(
        capsys, [*base, "--out", "map.jpg"])
    assert "--range '0x0-0x0'" in error(capsys, [*base, "--out", str(tmp_path / "m.png"), "--range", "0x0-0x0"])
    assert "translation is off (Bare)" in error(capsys, ["plot", *image(vs, "elf", tmp_path), "--arch", "riscv",
                                                         "--reg", "satp=0", "--out", str(tmp_path / "m.png")])
    assert "none/m.png: No such file or directory" in error(capsys, [*base, "--out", str(tmp_path / "none" / "m.png")])
    monkeypatch.setitem(sys.modules, "matplotlib", None)               # not installed
    assert "pip install 'pagetable[plot]'" in error(capsys, [*base, "--out", str(tmp_path / "m.svg")])
    assert not (tmp_path / "m.svg").exists()
