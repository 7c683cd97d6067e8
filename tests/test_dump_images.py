"""Memory images (pagetable.dump.images): ELF cores and LiME files written by the library and read back,
byte for byte and hole for hole; ELF cores read by pyelftools as well; raw FILE@BASE images; compressed
images decompressed once into the cache; and every kind of bad image refused with ImageError."""

from __future__ import annotations

import bz2
import gzip
import lzma
from pathlib import Path

import numpy as np
import pytest
import zstandard
from elftools.elf.elffile import ELFFile

from pagetable.dump import ImageError, open_image, open_images, write_elf_core, write_lime
from pagetable.errors import PhysMemError
from pagetable.physmem import PhysMem

REGIONS = [(0x4000_0000, 64 << 10), (0x4010_0000, 8 << 10), (0x1_0000_0000, 4 << 10)]


def _mem() -> PhysMem:
    """Three regions with holes between them, each word its own address."""
    mem = PhysMem([(b, n) for b, n in REGIONS])
    for r in mem.regions:
        r.words[:] = r.base + 8 * np.arange(r.size // 8, dtype=np.uint64)
    return mem


def _same(a: PhysMem, b: PhysMem) -> None:
    assert [(r.base, r.size) for r in a.regions] == [(r.base, r.size) for r in b.regions]
    for x, y in zip(a.regions, b.regions, strict=True):
        assert np.array_equal(x.data, y.data)


@pytest.mark.parametrize("machine", ["x86_64", "aarch64", "riscv64"])
def test_elf_core_round_trip(tmp_path: Path, machine: str) -> None:
    path = tmp_path / "core.elf"
    write_elf_core(path, _mem(), machine, notes=[("CORE", 1, b"\x01" * 12), ("QEMU", 0, b"regs")])
    image = open_image(path)
    assert image.kind == "elf-core"
    _same(image.mem, _mem())
    assert image.notes[0][0] == "CORE" and image.notes[1] == ("QEMU", "0", b"regs")
    assert not image.mem.contains(0x4001_0000, 8)                  # the hole after the first region
    with open(path, "rb") as f:                                     # an ordinary ELF core to pyelftools
        elf = ELFFile(f)
        assert elf["e_type"] == "ET_CORE"
        loads = [s.header for s in elf.iter_segments() if s.header.p_type == "PT_LOAD"]
        assert [(h.p_paddr, h.p_filesz) for h in loads] == REGIONS
        assert all(h.p_vaddr == h.p_paddr for h in loads)               # as QEMU writes without paging
        assert all(h.p_offset % 4096 == 0 for h in loads)


@pytest.mark.parametrize(("machine", "e_machine"), [("i386", "EM_386"), ("riscv32", "EM_RISCV")])
def test_elf32_core_round_trip(tmp_path: Path, machine: str, e_machine: str) -> None:
    """An ELFCLASS32 core (qemu-system-i386's with RAM below 4 GiB, qemu-system-riscv32's): 52-byte header,
    32-byte program headers (p_flags after p_memsz), read back with its class; RAM above 4 GiB does not fit."""
    path = tmp_path / "core.elf"
    low = PhysMem([(b, n) for b, n in REGIONS[:2]])
    for r in low.regions:
        r.words[:] = r.base + 8 * np.arange(r.size // 8, dtype=np.uint64)
    write_elf_core(path, low, machine, notes=[("QEMU", 0, b"regs")])
    raw = path.read_bytes()
    assert raw[4] == 1 and int.from_bytes(raw[40:42], "little") == 52 and int.from_bytes(raw[42:44], "little") == 32
    image = open_image(path)
    assert (image.machine, image.elfclass, image.notes) == (e_machine, 32, (("QEMU", "0", b"regs"),))
    _same(image.mem, low)
    with open(path, "rb") as f:
        loads = [s.header for s in ELFFile(f).iter_segments() if s.header.p_type == "PT_LOAD"]
        assert [(h.p_paddr, h.p_filesz, h.p_flags) for h in loads] == [(b, n, 7) for b, n in REGIONS[:2]]
    with pytest.raises(ImageError, match=r"^an ELFCLASS32 core holds RAM below 4 GiB only"):
        write_elf_core(path, _mem(), machine)
    write_elf_core(path, _mem(), "i386", elfclass=64)                 # as QEMU writes one with RAM above 4 GiB
    assert (open_image(path).machine, open_image(path).elfclass) == ("EM_386", 64)


def test_lime_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "mem.lime"
    write_lime(path, _mem())
    raw = path.read_bytes()
    assert raw[:4] == b"EMiL" and int.from_bytes(raw[16:24], "little") == 0x4000_0000 + (64 << 10) - 1
    image = open_image(path)
    assert image.kind == "lime"
    _same(image.mem, _mem())


def test_raw_images_at_their_bases(tmp_path: Path) -> None:
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(np.arange(512, dtype="<u8").tobytes())
    b.write_bytes(bytes(4096))
    image = open_images([f"{a}@0x8000_0000", f"{b}@0x9000_0000"])
    assert image.kind == "raw" and image.mem.read_u64(0x8000_0008) == 1 and image.mem.read_u64(0x9000_0000) == 0
    image.mem.write_u64(0x8000_0008, 7)                             # copy-on-write: the file is unchanged
    assert a.read_bytes()[8:16] == (1).to_bytes(8, "little")


@pytest.mark.parametrize(("suffix", "compress"), [(".gz", gzip.compress), (".xz", lzma.compress),
                                                  (".bz2", bz2.compress),
                                                  (".zst", lambda d: zstandard.ZstdCompressor().compress(d))])
def test_compressed_images_are_decompressed_once_into_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                suffix: str, compress: object) -> None:
    monkeypatch.setenv("PAGETABLE_CACHE", str(tmp_path / "cache"))
    core = tmp_path / "core.elf"
    write_elf_core(core, _mem(), "x86_64")
    packed = tmp_path / f"core.elf{suffix}"
    packed.write_bytes(compress(core.read_bytes()))                 # type: ignore[operator]
    _same(open_image(packed).mem, _mem())
    cached = list((tmp_path / "cache").iterdir())
    assert len(cached) == 1 and cached[0].read_bytes() == core.read_bytes()
    _same(open_image(packed).mem, _mem())                          # the cache file is reused
    assert list((tmp_path / "cache").iterdir()) == cached


def test_bad_images_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGETABLE_CACHE", str(tmp_path / "cache"))
    core = tmp_path / "core.elf"
    write_elf_core(core, _mem(), "aarch64")
    truncated = tmp_path / "short.elf"
    truncated.write_bytes(core.read_bytes()[:-100])
    lime = tmp_path / "mem.lime"
    write_lime(lime, _mem())
    short_lime = tmp_path / "short.lime"
    short_lime.write_bytes(lime.read_bytes()[:-8])
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not an image" * 10)
    bad_gzip = tmp_path / "bad.gz"
    bad_gzip.write_bytes(b"\x1f\x8b" + bytes(30))
    header_only = tmp_path / "header.elf"
    header_only.write_bytes(core.read_bytes()[:64])
    cases = {truncated: "truncated", short_lime: "truncated", junk: "not an ELF core or a LiME image",
             header_only: "truncated ELF file: a header or table runs past its end of 0x40 bytes",
             tmp_path / "missing.elf": "missing", tmp_path: "a directory", bad_gzip: "cannot decompress"}
    for path, message in cases.items():
        with pytest.raises(ImageError, match=message):
            open_image(path)
    monkeypatch.setenv("PAGETABLE_CACHE", "/proc/none")
    with pytest.raises(ImageError, match=r"cannot take its decompressed copy: .*set PAGETABLE_CACHE"):
        open_image(bad_gzip)
    with pytest.raises(ImageError, match="must be a number"):
        open_images([f"{junk}@zz"])
    with pytest.raises(ImageError, match="cannot be mixed"):
        open_images([f"{junk}@0x1000", str(core)])
    with pytest.raises(ImageError, match="no memory image"):
        open_images([])
    odd = tmp_path / "odd.bin"
    odd.write_bytes(bytes(12))
    with pytest.raises(ImageError, match="8-byte"):
        open_images([f"{odd}@0x1000"])
    overlap = tmp_path / "overlap.lime"
    overlap.write_bytes(lime.read_bytes() + lime.read_bytes())     # every range twice
    with pytest.raises(ImageError, match="overlap"):
        open_image(overlap)
    with pytest.raises(ImageError, match="no ELF machine"):
        write_elf_core(tmp_path / "x.elf", _mem(), "mips")
    assert issubclass(ImageError, Exception) and not issubclass(ImageError, PhysMemError)


class _Terminal:
    """A stderr that says it is a terminal, keeping what is written."""

    def __init__(self) -> None:
        self.text: list[str] = []

    def write(self, s: str) -> int:
        self.text.append(s)
        return len(s)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "piped"])
def test_decompressing_shows_progress_on_a_terminal_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str], terminal: bool) -> None:
    monkeypatch.setenv("PAGETABLE_CACHE", str(tmp_path / "cache"))
    core = tmp_path / "core.elf"
    write_elf_core(core, _mem(), "x86_64")
    packed = tmp_path / "core.elf.gz"
    packed.write_bytes(gzip.compress(core.read_bytes()))
    stderr = _Terminal()
    if terminal:
        monkeypatch.setattr("sys.stderr", stderr)
    _same(open_image(packed).mem, _mem())
    shown = "".join(stderr.text)
    if terminal:        # a bar of the compressed bytes read, cleared when done
        assert shown.startswith("\rdecompressing core.elf.gz:   0%") and "/11.4k [" in shown and shown.endswith("\r")
    else:
        assert shown == ""
    assert capsys.readouterr() == ("", "")


def test_a_one_tib_sparse_raw_image_maps_without_memory(tmp_path: Path) -> None:
    """A sparse 1 TiB raw file maps (MAP_NORESERVE: no swap is reserved for it) and reads as zeros, but
    for the bytes written into it, without touching the rest."""
    big = tmp_path / "big.raw"
    with open(big, "wb") as f:
        f.truncate(1 << 40)
        f.seek((1 << 39) + 0x1000)
        f.write((0x1234).to_bytes(8, "little"))
    image = open_images([f"{big}@0x1_0000_0000"])
    assert [(r.base, r.size) for r in image.mem.regions] == [(1 << 32, 1 << 40)]
    assert image.mem.read_u64((1 << 32) + (1 << 39) + 0x1000) == 0x1234
    assert image.mem.read_u64((1 << 32) + (1 << 40) - 8) == 0
