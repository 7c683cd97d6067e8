"""Memory images: ELF cores, LiME dumps and raw files, read (detected by content) into a `PhysMem` whose
regions are the image's, memory-mapped, and written back out.

Formats:
- ELF cores as QEMU's `dump-guest-memory` and kdump (/proc/vmcore) write them (System V ABI gABI, "Program
  Header"): every PT_LOAD segment with file contents is RAM at its `p_paddr` (QEMU's cores set `p_vaddr` to
  the same address without paging, to a guest VA with it; `p_paddr` is the physical address); PT_NOTE
  segments are kept as raw notes. Read with pyelftools, which ignores e_ehsize (QEMU 7.2 writes 8 there).
- LiME (https://github.com/504ensicsLabs/LiME, doc/README.md "LiME Memory Range Header Version 1"): a sequence
  of ranges, each a 32-byte header (magic 0x4C694D45, version 1, start address, inclusive end address, 8
  reserved bytes) followed by the range's bytes.
- Raw files, given as `FILE@BASE` (a raw file has no header to say where it belongs).
gzip, xz, bzip2 and zstd files are recognised by their magic numbers and decompressed once into a cache file
(`cache_path`; `PAGETABLE_CACHE` or ~/.cache/pagetable), which later opens reuse while the source is
unchanged (same size and modification time).

Holes between segments stay holes (the `PhysMem` has no RAM there: a walk that reaches one says so). A
truncated file, segments that overlap or do not fit the file, an unknown format, or sizes that are not
8-byte multiples are refused with `ImageError` naming the file and what is wrong.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import itertools
import lzma
import mmap
import os
import re
import shutil
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

import construct as cs
import numpy as np
import numpy.typing as npt
import zstandard

from .. import args, progress
from ..errors import PagetableError
from ..physmem import PhysMem

U8 = npt.NDArray[np.uint8]

__all__ = ["ELF_MACHINES", "Image", "ImageError", "Segment", "cache_path", "open_image", "open_images",
           "write_elf_core", "write_lime"]


class ImageError(PagetableError):
    """A memory image that cannot be read: missing, truncated, malformed or of an unknown format."""


@dataclass(frozen=True)
class Segment:
    """One RAM range of an image: `size` bytes at physical `base`, from byte `offset` of `path`."""

    base: int
    size: int
    path: str
    offset: int


@dataclass(frozen=True)
class Image:
    """An opened memory image: its format (``elf-core``, ``lime``, ``raw``), its RAM ranges, the physical
    memory they make (memory-mapped, copy-on-write), and an ELF core's notes (name, type as pyelftools names it:
    NT_PRSTATUS, or the number for a type it does not know, descriptor bytes)."""

    kind: str
    segments: tuple[Segment, ...]
    mem: PhysMem
    notes: tuple[tuple[str, str, bytes], ...] = ()
    machine: str | None = None          # an ELF core's e_machine, as pyelftools names it (EM_X86_64, ...)
    elfclass: int | None = None         # an ELF core's class: 32 (ELFCLASS32) or 64


# --------------------------------------------------------------------------------------------- LiME
LIME_MAGIC: Final = 0x4C694D45
LIME_HEADER = cs.Struct(
    "magic" / cs.Const(LIME_MAGIC, cs.Int32ul),
    "version" / cs.Const(1, cs.Int32ul),
    "s_addr" / cs.Int64ul,
    "e_addr" / cs.Int64ul,            # inclusive
    "reserved" / cs.Const(bytes(8)),
)
"""LiME's range header (lime.h, `lime_mem_range_header`)."""

# ---------------------------------------------------------------------------------------------- ELF
ELF_MACHINES: Final = {"x86_64": 62, "aarch64": 183, "riscv64": 243, "i386": 3, "riscv32": 243}
"""e_machine of each architecture (System V ABI gABI; EM_X86_64, EM_AARCH64, EM_RISCV, EM_386; RV32's is
EM_RISCV too, in an ELFCLASS32 file)."""


def _elf_header(elfclass: int, word: cs.Construct) -> cs.Struct:
    """The ELF header of class `elfclass` (32 or 64), whose addresses and offsets are `word`s (gABI "ELF
    Header")."""
    return cs.Struct(
        "e_ident" / cs.Const(b"\x7fELF" + bytes([elfclass // 32, 1, 1]) + bytes(9)),  # class, LSB, EV_CURRENT
        "e_type" / cs.Int16ul, "e_machine" / cs.Int16ul, "e_version" / cs.Int32ul, "e_entry" / word,
        "e_phoff" / word, "e_shoff" / word, "e_flags" / cs.Int32ul, "e_ehsize" / cs.Int16ul,
        "e_phentsize" / cs.Int16ul, "e_phnum" / cs.Int16ul, "e_shentsize" / cs.Int16ul, "e_shnum" / cs.Int16ul,
        "e_shstrndx" / cs.Int16ul,
    )


_EHDR = _elf_header(64, cs.Int64ul)
_PHDR = cs.Struct(
    "p_type" / cs.Int32ul, "p_flags" / cs.Int32ul, "p_offset" / cs.Int64ul, "p_vaddr" / cs.Int64ul,
    "p_paddr" / cs.Int64ul, "p_filesz" / cs.Int64ul, "p_memsz" / cs.Int64ul, "p_align" / cs.Int64ul,
)
_EHDR32 = _elf_header(32, cs.Int32ul)
_PHDR32 = cs.Struct(          # p_flags after p_memsz in ELF32 (gABI "Program Header")
    "p_type" / cs.Int32ul, "p_offset" / cs.Int32ul, "p_vaddr" / cs.Int32ul, "p_paddr" / cs.Int32ul,
    "p_filesz" / cs.Int32ul, "p_memsz" / cs.Int32ul, "p_flags" / cs.Int32ul, "p_align" / cs.Int32ul,
)
_HEADERS: Final = {64: (_EHDR, _PHDR), 32: (_EHDR32, _PHDR32)}
ELF_CLASSES: Final = {"x86_64": 64, "aarch64": 64, "riscv64": 64, "i386": 32, "riscv32": 32}
"""The ELF class `write_elf_core` writes for each machine by default (QEMU writes an i386 core with RAM above
4 GiB as ELFCLASS64: target/i386/arch_dump.c, cpu_get_dump_info)."""
ET_CORE, PT_LOAD, PT_NOTE = 4, 1, 4
_PF_RWX = 7

# ---------------------------------------------------------------------------------------- compression
_COMPRESSED: Final = ((b"\x1f\x8b", "gzip", gzip.open), (b"\xfd7zXZ\x00", "xz", lzma.open),
                      (b"BZh", "bzip2", bz2.open))
_ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
_CHUNK: Final = 16 << 20


def cache_path(source: str) -> Path:
    """Where the decompressed copy of `source` lives: the cache directory (`PAGETABLE_CACHE`, else
    ~/.cache/pagetable) and a name from the source's path, size and modification time."""
    st = os.stat(source)
    key = hashlib.sha256(f"{os.path.abspath(source)}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:24]
    root = Path(os.environ.get("PAGETABLE_CACHE") or Path.home() / ".cache" / "pagetable")
    return root / f"{Path(source).name}.{key}"


def _decompressed(path: str) -> str:
    """`path` itself, or the cache file holding its decompressed bytes (made on first use)."""
    with open(path, "rb") as f:
        head = f.read(6)
    opener = next(((name, op) for magic, name, op in _COMPRESSED if head.startswith(magic)), None)
    zstd = head.startswith(_ZSTD_MAGIC)
    if opener is None and not zstd:
        return path
    target = cache_path(path)
    if target.is_file():
        return str(target)
    partial = target.with_suffix(target.suffix + ".partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        open(partial, "wb").close()
    except OSError as exc:
        raise ImageError(f"{path}: compressed, and the cache directory {target.parent} (PAGETABLE_CACHE, else "
                         f"~/.cache/pagetable) cannot take its decompressed copy: {exc.strerror or exc}; set "
                         "PAGETABLE_CACHE to a writable directory") from None
    what = "zstd" if zstd else opener[0] if opener else ""
    try:
        with open(partial, "wb") as out, open(path, "rb") as raw, \
                progress.reading(raw, os.path.getsize(path), f"decompressing {Path(path).name}") as src:
            if zstd:
                with zstandard.ZstdDecompressor().stream_reader(src) as reader:
                    shutil.copyfileobj(reader, out, _CHUNK)
            else:
                assert opener is not None
                with opener[1](src, "rb") as reader:
                    shutil.copyfileobj(reader, out, _CHUNK)
        os.replace(partial, target)
    except (OSError, EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError) as exc:
        partial.unlink(missing_ok=True)
        raise ImageError(f"{path}: cannot decompress ({what}): {exc}") from None
    return str(target)


# ------------------------------------------------------------------------------------------- reading
def _check_file(path: str) -> int:
    if not os.path.isfile(path):
        what = "a directory" if os.path.isdir(path) else "not a regular file" if os.path.exists(path) else "missing"
        raise ImageError(f"memory image {path!r} is {what}")
    size = os.path.getsize(path)
    if size == 0:
        raise ImageError(f"memory image {path!r} is empty")
    return size


_MAP_NORESERVE: Final = getattr(mmap, "MAP_NORESERVE", 0x4000 if sys.platform == "linux" else 0)
"""Linux's MAP_NORESERVE (mman-common.h; Python 3.11's mmap module does not name it): no swap is reserved for
a private mapping, so a sparse multi-TiB image maps under the kernel's heuristic overcommit."""


def _map_file(path: str, offset: int, size: int) -> U8:
    """`size` bytes of `path` from `offset`, mapped copy-on-write (MAP_PRIVATE, MAP_NORESERVE) as a uint8
    array: reading costs only the pages touched, and writes stay in this process."""
    start = offset - offset % mmap.ALLOCATIONGRANULARITY          # mmap offsets are granule multiples
    try:
        with open(path, "rb") as f:
            m = mmap.mmap(f.fileno(), size + offset - start, flags=mmap.MAP_PRIVATE | _MAP_NORESERVE,
                          prot=mmap.PROT_READ | mmap.PROT_WRITE, offset=start)
    except (OSError, ValueError, OverflowError) as exc:
        raise ImageError(f"{path}: cannot map {size:#x} bytes at offset {offset:#x}: "
                         f"{getattr(exc, 'strerror', None) or exc}") from None
    return np.frombuffer(m, dtype=np.uint8, count=size, offset=offset - start)


def _mapped(segments: Sequence[Segment], what: str) -> PhysMem:
    """The segments as memory-mapped RAM (copy-on-write), refused where they overlap or are not 8-byte
    multiples."""
    ordered = sorted(segments, key=lambda s: s.base)
    for a, b in itertools.pairwise(ordered):
        if a.base + a.size > b.base:
            raise ImageError(f"{what}: ranges [{a.base:#x}, {a.base + a.size:#x}) and [{b.base:#x}, "
                             f"{b.base + b.size:#x}) overlap")
    regions: list[tuple[int, int | U8]] = []
    for s in ordered:
        if s.base % 8 or s.size % 8:
            raise ImageError(f"{what}: the range at {s.base:#x} of {s.size:#x} bytes is not 8-byte aligned")
        if s.base + s.size > args.ADDR_LIMIT:
            raise ImageError(f"{what}: the range at {s.base:#x} of {s.size:#x} bytes ends beyond 2**64")
        regions.append((s.base, _map_file(s.path, s.offset, s.size)))
    if not regions:
        raise ImageError(f"{what}: no RAM in the image")
    return PhysMem(regions)


_NOTE_HEADER = cs.Struct("namesz" / cs.Int32ul, "descsz" / cs.Int32ul, "type" / cs.Int32ul)


def _check_notes(path: str, f: BinaryIO, offset: int, length: int, size: int) -> None:
    """ImageError unless the PT_NOTE segment at `offset` lies in the file and each of its notes (a header,
    then name and descriptor, each padded to 4 bytes: System V gABI, "Note Section") fits in it."""
    if offset + length > size:
        raise ImageError(f"{path}: truncated: the note segment needs bytes up to {offset + length:#x}, the file has "
                         f"{size:#x}")
    f.seek(offset)
    data = f.read(length)
    at = 0
    while at + _NOTE_HEADER.sizeof() <= len(data):
        h = _NOTE_HEADER.parse(data[at:at + _NOTE_HEADER.sizeof()])
        at += _NOTE_HEADER.sizeof() + (h.namesz + 3) // 4 * 4 + (h.descsz + 3) // 4 * 4
        if at > len(data):
            raise ImageError(f"{path}: malformed ELF file: a note of {h.namesz}+{h.descsz} bytes runs past the end "
                             f"of its segment ({length:#x} bytes)")


def _read_elf(path: str, size: int) -> Image:
    from elftools.common.exceptions import ELFError
    from elftools.construct import ConstructError as ElfConstructError
    from elftools.elf.elffile import ELFFile
    from elftools.elf.segments import NoteSegment
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            if not elf.little_endian:
                raise ImageError(f"{path}: a {elf.elfclass}-bit big-endian ELF file; memory images are "
                                 "little-endian ELF cores")
            machine = str(elf["e_machine"])
            segments, notes = [], []
            for seg in elf.iter_segments():
                h = seg.header
                if h.p_type == "PT_LOAD" and h.p_filesz:
                    if h.p_offset + h.p_filesz > size:
                        raise ImageError(f"{path}: truncated: the segment at PA {h.p_paddr:#x} needs bytes up to "
                                         f"{h.p_offset + h.p_filesz:#x}, the file has {size:#x}")
                    segments.append(Segment(h.p_paddr, h.p_filesz, path, h.p_offset))
                elif isinstance(seg, NoteSegment):
                    _check_notes(path, f, h.p_offset, h.p_filesz, size)
                    notes += [(str(n["n_name"]), str(n["n_type"]), bytes(n["n_descdata"])) for n in seg.iter_notes()]
    except (ELFError, ElfConstructError, cs.ConstructError, ValueError, KeyError, OSError) as exc:
        short = re.search(r"expected \d+, found \d+", str(exc))       # a structure cut off by the end of file
        raise ImageError(f"{path}: truncated ELF file: a header or table runs past its end of {size:#x} bytes"
                         if short else f"{path}: malformed ELF file: {exc}") from None
    return Image("elf-core", tuple(segments), _mapped(segments, path), tuple(notes), machine, elf.elfclass)


def _read_lime(path: str, size: int) -> Image:
    segments, offset = [], 0
    with open(path, "rb") as f:
        while offset < size:
            raw = f.read(LIME_HEADER.sizeof())
            try:
                h = LIME_HEADER.parse(raw)
            except cs.ConstructError:
                raise ImageError(f"{path}: bad LiME range header at offset {offset:#x}") from None
            if h.e_addr < h.s_addr:
                raise ImageError(f"{path}: LiME range at offset {offset:#x} ends ({h.e_addr:#x}) before it starts "
                                 f"({h.s_addr:#x})")
            length = h.e_addr - h.s_addr + 1
            data = offset + LIME_HEADER.sizeof()
            if data + length > size:
                raise ImageError(f"{path}: truncated: the LiME range at PA {h.s_addr:#x} needs bytes up to "
                                 f"{data + length:#x}, the file has {size:#x}")
            segments.append(Segment(h.s_addr, length, path, data))
            offset = data + length
            f.seek(offset)
    return Image("lime", tuple(segments), _mapped(segments, path))


def _split_raw(spec: str) -> tuple[str, int] | None:
    """`FILE@BASE` as (file, base), or None for a spec without '@'."""
    if "@" not in spec:
        return None
    name, _, base = spec.rpartition("@")
    try:
        value = int(base, 0)
    except ValueError:
        raise ImageError(f"{spec!r}: the base after '@' must be a number (0x... for hex), not {base!r}") from None
    try:
        return name, args.address(value, f"base of {name!r}")
    except PagetableError as exc:
        raise ImageError(str(exc)) from None


def open_images(specs: Sequence[str | os.PathLike[str]]) -> Image:
    """The image made of `specs`: one ELF core or LiME file (detected by content, compressed or not), or raw
    files as `FILE@BASE`, one or more."""
    names = [os.fspath(s) for s in specs]
    if not names:
        raise ImageError("no memory image given")
    raws = [_split_raw(s) for s in names]
    if any(r is not None for r in raws):
        if not all(r is not None for r in raws):
            raise ImageError("raw images (FILE@BASE) cannot be mixed with ELF cores or LiME files")
        segments = []
        for name, base in (r for r in raws if r is not None):
            size = _check_file(name)
            data = _decompressed(name)
            segments.append(Segment(base, os.path.getsize(data) if data != name else size, data, 0))
        return Image("raw", tuple(segments), _mapped(segments, ", ".join(names)))
    if len(names) > 1:
        raise ImageError("give one ELF core or LiME file (several files are raw images: FILE@BASE each)")
    return open_image(names[0])


def open_image(path: str | os.PathLike[str]) -> Image:
    """One ELF core or LiME file (or its gzip/xz/bzip2/zstd compression), by its content."""
    name = os.fspath(path)
    _check_file(name)
    data = _decompressed(name)
    size = os.path.getsize(data)
    with open(data, "rb") as f:
        head = f.read(8)
    if head.startswith(b"\x7fELF"):
        return _read_elf(data, size)
    if len(head) >= 4 and int.from_bytes(head[:4], "little") == LIME_MAGIC:
        return _read_lime(data, size)
    raise ImageError(f"{name}: not an ELF core or a LiME image (first bytes {head[:8].hex()}); give a raw image "
                     "as FILE@BASE")


# ------------------------------------------------------------------------------------------- writing
def _regions(mem: PhysMem) -> list[tuple[int, bytes | U8]]:
    return [(r.base, r.data) for r in mem.regions]


def _write_data(out: BinaryIO, data: bytes | U8) -> None:
    view = memoryview(data if isinstance(data, bytes) else np.ascontiguousarray(data).data)
    for k in range(0, len(view), _CHUNK):
        out.write(view[k:k + _CHUNK])


def write_lime(path: str | os.PathLike[str], mem: PhysMem) -> None:
    """`mem`'s regions as a LiME file, one range each."""
    with open(path, "wb") as out:
        for base, data in _regions(mem):
            out.write(LIME_HEADER.build({"s_addr": base, "e_addr": base + len(data) - 1}))
            _write_data(out, data)


def write_elf_core(path: str | os.PathLike[str], mem: PhysMem, machine: str,
                   notes: Sequence[tuple[str, int, bytes]] = (), elfclass: int | None = None) -> None:
    """`mem` as a little-endian ELF core for `machine` (`ELF_MACHINES`) of class `elfclass` (32 or 64;
    default the machine's, `ELF_CLASSES`): a PT_NOTE segment with `notes` (name, type, descriptor), if any,
    then one PT_LOAD per region with `p_paddr` and `p_vaddr` its base (as QEMU's `dump-guest-memory`
    without paging writes), its data page-aligned in the file. An ELFCLASS32 file holds no RAM ending above
    4 GiB (ImageError)."""
    if machine not in ELF_MACHINES:
        raise ImageError(f"no ELF machine {machine!r} ({', '.join(ELF_MACHINES)})")
    bits = ELF_CLASSES[machine] if elfclass is None else elfclass
    if bits not in _HEADERS:
        raise ImageError(f"no ELF class {bits!r} (32 or 64)")
    ehdr, phdr = _HEADERS[bits]
    regions = _regions(mem)
    if bits == 32 and any(base + len(data) > 1 << 32 for base, data in regions):
        raise ImageError("an ELFCLASS32 core holds RAM below 4 GiB only: write this memory as ELFCLASS64")
    note = b"".join(_note(n, t, d) for n, t, d in notes)
    phnum = len(regions) + (1 if note else 0)
    offset = ehdr.sizeof() + phnum * phdr.sizeof()
    headers, placed = [], []
    if note:
        headers.append(dict(p_type=PT_NOTE, p_flags=0, p_offset=offset, p_vaddr=0, p_paddr=0, p_filesz=len(note),
                            p_memsz=0, p_align=4))
        offset += len(note)
    for base, data in regions:
        offset = -(-offset // 4096) * 4096
        headers.append(dict(p_type=PT_LOAD, p_flags=_PF_RWX, p_offset=offset, p_vaddr=base, p_paddr=base,
                            p_filesz=len(data), p_memsz=len(data), p_align=4096))
        placed.append((offset, data))
        offset += len(data)
    with open(path, "wb") as out:
        out.write(ehdr.build(dict(e_type=ET_CORE, e_machine=ELF_MACHINES[machine], e_version=1, e_entry=0,
                                   e_phoff=ehdr.sizeof(), e_shoff=0, e_flags=0, e_ehsize=ehdr.sizeof(),
                                   e_phentsize=phdr.sizeof(), e_phnum=phnum, e_shentsize=0, e_shnum=0,
                                   e_shstrndx=0)))
        for h in headers:
            out.write(phdr.build(h))
        out.write(note)
        for at, data in placed:
            out.seek(at)
            _write_data(out, data)


def _note(name: str, kind: int, desc: bytes) -> bytes:
    """One ELF note (gABI "Note Section"): namesz, descsz, type, the NUL-terminated name and the descriptor,
    each padded to 4 bytes."""
    raw = name.encode() + b"\0"
    sizes = np.array([len(raw), len(desc), kind], dtype="<u4").tobytes()
    return sizes + raw + bytes(-len(raw) % 4) + desc + bytes(-len(desc) % 4)
