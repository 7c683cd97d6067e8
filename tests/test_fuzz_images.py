"""Fuzz the memory-image readers (pagetable.dump.images) with what a damaged or hostile file holds: ELF
cores whose headers, program headers and notes are overwritten with random and extreme values, LiME files
with mutated range headers, compressed images cut short or corrupted, and raw `FILE@BASE` specs of every
shape.

The property, for every input: `open_images` returns an Image whose RAM is exactly what the file describes
(every range inside the file, no overlap) or raises ImageError; never another exception, a hang, or memory
beyond a small multiple of the file (images are memory-mapped, so a header claiming terabytes costs
nothing)."""

from __future__ import annotations

import functools
import gzip
import itertools
import lzma
import os
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from pagetable.dump import Image, ImageError, open_images, write_elf_core, write_lime
from pagetable.physmem import PhysMem

from .fuzzing import bounded, count, fuzz

LIMIT = 32 << 20
WORDS = st.one_of(st.integers(0, (1 << 64) - 1), st.sampled_from([0, 1, 8, 0x1000, 1 << 63, (1 << 64) - 1,
                                                                  (1 << 32) - 1, 0x40, 0x38]))


@functools.cache
def _files() -> dict[str, bytes]:
    """A small ELF core (two PT_LOADs and a note) and a LiME file of the same RAM."""
    d = Path(tempfile.mkdtemp(prefix="fuzz-images-"))
    mem = PhysMem([(0x4000_0000, 16 << 10), (0x4010_0000, 8 << 10)])
    for r in mem.regions:
        r.words[:] = r.base + 8 * np.arange(r.size // 8, dtype=np.uint64)
    write_elf_core(d / "core.elf", mem, "aarch64", notes=[("CORE", 1, bytes(range(64)))])
    write_lime(d / "mem.lime", mem)
    _sound(open_images([str(d / "core.elf")]))          # the readers' first use (their imports) is not measured
    _sound(open_images([str(d / "mem.lime")]))
    return {"elf": (d / "core.elf").read_bytes(), "lime": (d / "mem.lime").read_bytes()}


def _open(tmp: Path, data: bytes, name: str = "image") -> None:
    path = tmp / name
    path.write_bytes(data)
    _open_specs([str(path)], data)


def _open_specs(specs: list[str], data: bytes) -> None:
    with bounded(20, LIMIT + 8 * len(data)):
        try:
            image = open_images(specs)
        except ImageError as exc:
            assert str(exc) and "\n" not in str(exc)
            return
    _sound(image)


def _sound(image: Image) -> None:
    """The RAM of an image that opened: ranges in order, not overlapping, each readable to its end."""
    regions = image.mem.regions
    for a, b in itertools.pairwise(regions):
        assert a.end <= b.base
    for r in regions:
        assert r.size > 0 and r.size % 8 == 0
        image.mem.read(r.end - 8, 8)


def _patched(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    out = bytearray(data)
    for offset, width, value in edits:
        offset %= max(1, len(out) - width)
        out[offset:offset + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
    return bytes(out)


# ELF64: header 64 bytes (e_phoff at 32, e_phentsize/e_phnum at 54/56), program headers of 56 bytes at 64
_HEADER_FIELDS = [(16, 2), (18, 2), (32, 8), (40, 8), (52, 2), (54, 2), (56, 2), (58, 2), (60, 2)]
_PHDR_FIELDS = [(0, 4), (4, 4), (8, 8), (16, 8), (24, 8), (32, 8), (40, 8), (48, 8)]


@fuzz(short=60, long=5_000)
@given(st.lists(st.tuples(st.sampled_from(["header", "phdr", "anywhere"]), st.integers(0, 3),
                          st.integers(0, 8), WORDS), min_size=1, max_size=6), st.integers(0, 1 << 16))
def test_mutated_elf_cores(edits: list[tuple[str, int, int, int]], cut: int) -> None:
    data = _files()["elf"]
    patches = []
    for where, phdr, field, value in edits:
        if where == "header":
            offset, width = _HEADER_FIELDS[field % len(_HEADER_FIELDS)]
        elif where == "phdr":
            offset, width = _PHDR_FIELDS[field % len(_PHDR_FIELDS)]
            offset += 64 + 56 * phdr
        else:
            offset, width = value % len(data), 1 + field % 8
        patches.append((offset, width, value))
    mutated = _patched(data, patches)
    if cut % 4 == 0:                                   # and sometimes truncated
        mutated = mutated[:cut % len(mutated)]
    count("open_images (ELF core)")
    with tempfile.TemporaryDirectory() as t:
        _open(Path(t), mutated)


@fuzz(short=40, long=3_000)
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from([(0, 4), (4, 4), (8, 8), (16, 8), (24, 8)]), WORDS),
                min_size=1, max_size=4), st.integers(0, 1 << 16))
def test_mutated_lime_files(edits: list[tuple[int, tuple[int, int], int]], cut: int) -> None:
    data = _files()["lime"]
    first = 32 + (16 << 10)                            # the second range's header follows the first range
    patches = [((0, first)[k % 2] + off, width, value) for k, (off, width), value in edits]
    mutated = _patched(data, patches)
    if cut % 3 == 0:
        mutated = mutated[:cut % len(mutated)]
    count("open_images (LiME)")
    with tempfile.TemporaryDirectory() as t:
        _open(Path(t), mutated)


@fuzz(short=30, long=2_000)
@given(st.sampled_from(["gzip", "xz", "zstd"]), st.integers(0, 1 << 20), st.binary(max_size=8), st.booleans())
def test_damaged_compressed_images(kind: str, at: int, junk: bytes, cut: bool) -> None:
    data = _files()["elf"]
    compress: dict[str, Callable[[bytes], bytes]] = {
        "gzip": gzip.compress, "xz": lzma.compress, "zstd": zstandard.ZstdCompressor().compress}
    packed = compress[kind](data)
    at %= len(packed)
    damaged = packed[:at] if cut else packed[:at] + junk + packed[at + len(junk):]
    count("open_images (compressed)")
    with tempfile.TemporaryDirectory() as t:
        os.environ["PAGETABLE_CACHE"] = str(Path(t) / "cache")
        try:
            _open(Path(t), damaged)
        finally:
            del os.environ["PAGETABLE_CACHE"]
        partial = list((Path(t) / "cache").glob("*.partial")) if (Path(t) / "cache").exists() else []
        assert partial == []                           # a failed decompression leaves no half-written file


@fuzz(short=40, long=2_000)
@given(st.lists(st.tuples(st.integers(0, 40_000), st.one_of(st.integers(-5, 1 << 66).map(hex),
                                                            st.text("0x1_@zq-", max_size=8))),
                min_size=1, max_size=4))
def test_raw_specs(specs: list[tuple[int, str]]) -> None:
    count("open_images (raw FILE@BASE)")
    with tempfile.TemporaryDirectory() as t:
        paths = []
        for n, (size, base) in enumerate(specs):
            p = Path(t) / f"raw{n}.bin"
            p.write_bytes(struct.pack("<Q", n) * (size // 8) + bytes(size % 8))
            paths.append(f"{p}@{base}")
        _open_specs(paths, b"")
