"""A vector set's image in other formats, all from the same `PhysMem` and registers (docs/vectors.md,
"Output formats"): `mem.hex` (Verilog `$readmemh`), `tables.S` (GNU as), `tables.h` (C) and `mem.elf`.

Every writer writes every byte of every RAM region, so each reads back byte for byte as the `mem*.bin`
files. The page tables in them are the tables the hardware walk reads (`tables`: the software view's
bounded descent, `descent.Descent`, from each region root of the regime, and of the stage-2 regime of a
two-stage mode). The `.S` file is relocatable: an entry of such a table whose output address (the codec's
`paddr_np` field) lies inside the image is written as an expression of its region's base symbol, so
assembling it for another base moves those addresses with the image; addresses outside the image (MMIO,
holes) and every other word are numbers. The words of `.S` and `.h` are the tables' entries (8 bytes, or 4
for Sv32), so an entry is one word. Stage-1 tables of a two-stage mode hold guest-physical
addresses, which do not move with the host image: they are not labelled and not relocated.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

import construct as cs
import numpy as np
import numpy.typing as npt

from ..descent import Descent, PhysicalReader
from ..dump.images import _EHDR, _PHDR, ELF_MACHINES, PT_LOAD
from ..format import EntryCodec, PagingFormat
from ..physmem import PhysMem
from ..walker import Walker
from .schema import VectorsError, VectorSet

U64 = npt.NDArray[np.uint64]
FORMATS = ("bin", "hex", "S", "h", "elf", "json")
DEFAULT_FORMATS = ("bin", "json")
"""What `vectors generate` writes without `--formats`: mem*.bin, vectors.json and README.txt."""
FILES = {"hex": "mem.hex", "S": "tables.S", "h": "tables.h", "elf": "mem.elf"}
"""The file each format beyond bin and json writes."""
HEX_WIDTHS = (8, 32, 64)
DATA_DIRECTIVE = {"riscv64": {8: ".dword", 4: ".word"}, "x86_64": {8: ".quad", 4: ".long"},
                  "aarch64": {8: ".quad", 4: ".word"}}
"""The 8-byte and 4-byte data directives of each architecture's GNU as (riscv as spells them `.dword` and
`.word`)."""
_PER_LINE = 8
_HEX_DIGITS = np.frombuffer("".join(f"{n:02x}" for n in range(256)).encode(), np.uint8).reshape(256, 2)
"""The two lower-case hex digits of each byte value, as ASCII codes."""


@dataclass(frozen=True)
class Table:
    """A page table the walk reads: its physical address, size in bytes, the manual's level number and
    the register region (`satp`, `TTBR1_EL1`, `hgatp`) whose tree holds it; `name` is its symbol."""

    pa: int
    size: int
    level: int
    region: str

    @property
    def name(self) -> str:
        return f"pt_{symbol_part(self.region)}_l{self.level}_{self.pa:x}"


def symbol_part(text: str) -> str:
    """`text` lower-cased, with every character that cannot be in a C or assembler symbol as `_`."""
    return "".join(ch if ch.isascii() and ch.isalnum() else "_" for ch in text.lower())


def physical_regions(walker: Walker) -> list[tuple[str, PagingFormat, int]]:
    """(name, format, root) of each region whose tables are at physical addresses: the regime's, or for a
    two-stage walker its stage 2's (stage 1's tables are guest-physical)."""
    physical = walker if walker.stage2 is None else walker.stage2
    return [(r.name, r.fmt, r.root) for r in physical.rules.regime.regions]


def entry_size(walker: Walker) -> int:
    """The width in bytes of the entries of `physical_regions` (8, or 4 for Sv32): the word of `.S` and
    `.h`."""
    sizes = {fmt.entry_size for _, fmt, _ in physical_regions(walker)} or {8}
    if len(sizes) != 1:
        raise VectorsError(f"tables of {sorted(sizes)}-byte entries in one image: no one word width")
    return sizes.pop()


def tables(walker: Walker) -> tuple[list[Table], list[tuple[EntryCodec, U64, U64, U64]]]:
    """The tables of `physical_regions` inside RAM (each once, at the level it is first reached), and per
    level of each tree its entries' (codec, slot, raw, huge): table pointers and leaves, for relocation."""
    mem = walker.mem
    found: dict[int, Table] = {}
    entries: list[tuple[EntryCodec, U64, U64, U64]] = []
    for name, fmt, root in physical_regions(walker):
        levels = fmt.levels
        descent = Descent(fmt, root, PhysicalReader(mem, fmt.entry_size))
        level_tables = np.array([root], dtype=np.uint64)
        for e in descent:
            size = levels[e.depth].entries * fmt.entry_size
            for pa in level_tables[mem.contains_np(level_tables, size)].tolist():
                found.setdefault(pa, Table(pa, size, levels[e.depth].arch_level, name))
            last, codec = e.depth == len(levels) - 1, fmt.codecs[e.depth]
            tab = codec.is_table_np(e.raw, last)
            leaf = codec.is_leaf_np(e.raw, last) & levels[e.depth].leaf
            entries.append((codec, e.slot[tab | leaf], e.raw[tab | leaf], tab[tab | leaf] | (not last)))
            level_tables = codec.paddr_np(e.raw[tab], True)
            descent.descend(tab, level_tables)
    return sorted(found.values(), key=lambda t: t.pa), entries


def _field_shift(codec: EntryCodec, huge: bool) -> tuple[int, int] | None:
    """(s, t) with `with_paddr_np(0, pa) == (pa >> s) << t` for an entry (huge: a table pointer or a
    superpage/block), from the lowest PA bit the field holds; None if the codec's field is empty."""
    zero = np.zeros(1, dtype=np.uint64)
    for s in range(12, 52):
        word = int(codec.with_paddr_np(zero, np.array([1 << s], dtype=np.uint64), huge)[0])
        if word:
            return s, word.bit_length() - 1
    return None


def relocations(walker: Walker, regions: Sequence[tuple[int, int]]) -> dict[int, str]:
    """For each table entry (pointer or leaf) whose output address is inside RAM region k of `regions`
    ((base, size) pairs): its physical address -> the expression `ATTRS | (((pt_memK_base + OFF) >> s) << t)`
    that equals it (ATTRS: the entry with the address field cleared). Entries whose field is not a shifted
    copy of the PA (a 52-bit-PA format that splits it) stay numbers."""
    out: dict[int, str] = {}
    _, levels = tables(walker)
    for codec, slots, raws, huge in levels:
        for is_huge in (False, True):
            sel = huge == is_huge
            shift = _field_shift(codec, is_huge)
            if shift is None or not sel.any():
                continue
            s, t = shift
            raw, slot = raws[sel], slots[sel]
            pa = codec.paddr_np(raw, is_huge)
            attrs = codec.with_paddr_np(raw, np.zeros_like(raw), is_huge)
            exact = (attrs | ((pa >> np.uint64(s)) << np.uint64(t))) == raw
            for k, (base, size) in enumerate(regions):
                inside = exact & (pa >= np.uint64(base)) & (pa < np.uint64(base + size))
                field = f"(pt_mem{k}_base + {{:#x}})"
                if s != t:
                    field = f"(({field} >> {s}) << {t})"
                for at, a, p in zip(slot[inside].tolist(), attrs[inside].tolist(), pa[inside].tolist(), strict=True):
                    out[at] = f"{a:#x} | {field.format(p - base)}"
    return out


def _regions(mem: PhysMem, size: int) -> list[tuple[int, npt.NDArray[np.unsignedinteger]]]:
    """Each region's base and little-endian words of `size` bytes (a region is whole words: `.S` and `.h`
    write words)."""
    out = []
    for r in mem.regions:
        if r.size % size:
            raise VectorsError(f"the region at {r.base:#x} is {r.size} bytes, not whole {size}-byte words")
        out.append((r.base, r.words_of(size)))
    return out


def check_hex(mem: PhysMem, width: int, offset: int) -> int:
    """The bytes per `$readmemh` word of `width` bits; VectorsError unless every region of `mem` is whole
    words at and above `offset`."""
    if width not in HEX_WIDTHS:
        raise VectorsError(f"a $readmemh word is 8, 32 or 64 bits, not {width}")
    step = width // 8
    for r in mem.regions:
        if (r.base - offset) % step or r.size % step or r.base < offset:
            raise VectorsError(f"mem.hex: the region at {r.base:#x} ({r.size} bytes) is not whole {width}-bit "
                               f"words from offset {offset:#x}")
    return step


def write_hex(path: str | os.PathLike[str], mem: PhysMem, width: int = 64, offset: int = 0) -> None:
    """`mem` for Verilog `$readmemh` (IEEE 1364-2005 17.2.9): hex words of `width` bits (8, 32 or 64), each
    the little-endian value of its `width // 8` bytes, whitespace separated (8 to a line), each region
    starting with an `@ADDR` line, ADDR the hex word address `(base - offset) / (width / 8)`; so the holes
    between regions are not written. Every word of every region is written, zeros too."""
    step = check_hex(mem, width, offset)
    parts = []
    for r in mem.regions:
        parts.append(f"@{(r.base - offset) // step:x}\n".encode())
        if r.size:
            # a word's digits: its bytes from the most significant (the last, little-endian) down
            digits = _HEX_DIGITS[r.data.reshape(-1, step)[:, ::-1]].reshape(-1, 2 * step)
            sep = np.full((len(digits), 1), ord(" "), dtype=np.uint8)
            sep[_PER_LINE - 1::_PER_LINE] = sep[-1] = ord("\n")
            parts.append(np.hstack([digits, sep]).tobytes())
    try:
        with open(path, "wb") as fh:
            fh.writelines(parts)
    except OSError as exc:
        raise VectorsError(f"cannot write {os.fspath(path)!r}: {exc.strerror}") from None


def write_asm(path: str | os.PathLike[str], vs: VectorSet, walker: Walker) -> None:
    """`tables.S` for GNU as: per RAM region k a section `.pt_memK` ("aw", `.balign 4096` when the base
    is page aligned) starting at label `pt_memK`, its words (the entries' width, `entry_size`) in `.quad`
    (RISC-V: `.dword`; 4-byte words: `.long`, RISC-V `.word`), runs of zero lines as `.zero`; a global
    label at every page table (`tables`), `pt_<region>_l<level>_<pa>`; the absolute symbols
    `pt_memK_base` (the region's base, unless given with `--defsym`) and `pt_reg_<register>` (the register
    values as generated). Table entries pointing inside the image are
    `relocations` expressions of `pt_memK_base`: assemble with `--defsym pt_memK_base=ADDR` and place
    `.pt_memK` at ADDR (`ld --section-start=.pt_memK=ADDR`) to move the image; ADDR - base must be a
    multiple of the largest page the tables map into it. Register values do not move."""
    size = entry_size(walker)
    regions = _regions(vs.mem, size)
    directive = DATA_DIRECTIVE[vs.arch][size]
    table_list, _ = tables(walker)
    exprs = relocations(walker, [(b, len(w) * size) for b, w in regions])
    out = [f"/* pagetable test vectors: {vs.arch} {vs.mode} (docs/vectors.md, Output formats) */"]
    out += [f".set pt_reg_{symbol_part(k)}, {v:#x}" for k, v in vs.registers.items()]
    for k, (base, words) in enumerate(regions):
        end = base + len(words) * size
        out += [f".ifndef pt_mem{k}_base", f".set pt_mem{k}_base, {base:#x}", ".endif",
                f'.section .pt_mem{k}, "aw"']
        if base % 4096 == 0:
            out.append(".balign 4096")
        out += [f".globl pt_mem{k}", f"pt_mem{k}:"]
        labels = {(t.pa - base) // size: t.name for t in table_list if base <= t.pa < end}
        text = [format(w, "#x") for w in words.tolist()]
        for at, expr in exprs.items():
            if base <= at < end:
                text[(at - base) // size] = expr
        cuts = sorted({0, len(words), *labels})
        zeros = 0
        for a, b in itertools.pairwise(cuts):
            if a in labels:
                if zeros:
                    out.append(f".zero {zeros}")
                    zeros = 0
                out += [f".globl {labels[a]}", f"{labels[a]}:"]
            for n in range(a, b, _PER_LINE):
                chunk = text[n:min(n + _PER_LINE, b)]
                if all(w == "0x0" for w in chunk):
                    zeros += size * len(chunk)
                    continue
                if zeros:
                    out.append(f".zero {zeros}")
                    zeros = 0
                out.append(f"{directive} {', '.join(chunk)}")
        if zeros:
            out.append(f".zero {zeros}")
    _text(path, "\n".join(out) + "\n")


def write_header(path: str | os.PathLike[str], vs: VectorSet, walker: Walker) -> None:
    """`tables.h` for C: include guard `PAGETABLE_TABLES_H`, `#define PT_REG_<REGISTER>` per register and
    `PT_MEMK_BASE`/`PT_MEMK_WORDS` per RAM region, `PT_<TABLE>` (each table's PA, `tables`), and per region
    `static const uintN_t pt_memK[PT_MEMK_WORDS]`: its little-endian words of the entries' width
    (`entry_size`: uint64_t, or uint32_t for Sv32), the non-zero ones as C99 designated initialisers
    (`[index] = value`), the rest zero."""
    size = entry_size(walker)
    out = ["/* pagetable test vectors: " f"{vs.arch} {vs.mode} (docs/vectors.md, Output formats) */",
           "#ifndef PAGETABLE_TABLES_H", "#define PAGETABLE_TABLES_H", "#include <stdint.h>", ""]
    out += [f"#define PT_REG_{symbol_part(k).upper()} UINT64_C({v:#x})" for k, v in vs.registers.items()]
    out += [f"#define {t.name.upper()} UINT64_C({t.pa:#x})" for t in tables(walker)[0]]
    for k, (base, words) in enumerate(_regions(vs.mem, size)):
        out += [f"#define PT_MEM{k}_BASE UINT64_C({base:#x})", f"#define PT_MEM{k}_WORDS {len(words)}",
                f"static const uint{8 * size}_t pt_mem{k}[PT_MEM{k}_WORDS] = {{"]
        nonzero = np.flatnonzero(words)
        items = [f"[{i}] = {w:#x}u" for i, w in zip(nonzero.tolist(), words[nonzero].tolist(), strict=True)]
        out += [" " + ", ".join(items[n:n + 4]) + "," for n in range(0, len(items), 4)]
        out.append("};")
    out += ["", "#endif /* PAGETABLE_TABLES_H */"]
    _text(path, "\n".join(out) + "\n")


_SHDR = cs.Struct(
    "sh_name" / cs.Int32ul, "sh_type" / cs.Int32ul, "sh_flags" / cs.Int64ul, "sh_addr" / cs.Int64ul,
    "sh_offset" / cs.Int64ul, "sh_size" / cs.Int64ul, "sh_link" / cs.Int32ul, "sh_info" / cs.Int32ul,
    "sh_addralign" / cs.Int64ul, "sh_entsize" / cs.Int64ul,
)
_SYM = cs.Struct("st_name" / cs.Int32ul, "st_info" / cs.Int8ul, "st_other" / cs.Int8ul, "st_shndx" / cs.Int16ul,
                 "st_value" / cs.Int64ul, "st_size" / cs.Int64ul)
ET_EXEC, SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB = 2, 1, 2, 3
SHF_WRITE_ALLOC, SHN_ABS, STB_GLOBAL, STT_OBJECT = 3, 0xFFF1, 1, 1


class _Strings:
    """An ELF string table (gABI "String Table"): NUL first, then each name NUL-terminated."""

    def __init__(self) -> None:
        self.data = bytearray(1)

    def add(self, name: str) -> int:
        at = len(self.data)
        self.data += name.encode() + b"\0"
        return at


def write_elf(path: str | os.PathLike[str], vs: VectorSet, walker: Walker) -> None:
    """`mem.elf`: an ELF64 little-endian ET_EXEC file (System V gABI) for the vector set's machine, with
    one PT_LOAD segment (p_paddr = p_vaddr = base) and one SHT_PROGBITS section `.pt_memK` (sh_addr = base)
    per RAM region, its data page-aligned in the file; `.symtab` has, all global, an STT_OBJECT symbol per
    page table (`tables`, in its region's section, st_size the table's size) and per region (`pt_memK`),
    and an absolute (SHN_ABS) symbol `pt_reg_<register>` per register value. No relocations: the
    addresses are the image's. ELF64 for Sv32 too: its tables and pages may be at 34-bit PAs. (pyelftools
    reads ELF but cannot write it: this is built with construct.)"""
    regions = [(r.base, r.data) for r in vs.mem.regions]
    names, strings = _Strings(), _Strings()
    symbols = [dict(st_name=0, st_info=0, st_other=0, st_shndx=0, st_value=0, st_size=0)]
    for k, (base, data) in enumerate(regions):
        symbols.append(dict(st_name=strings.add(f"pt_mem{k}"), st_info=STB_GLOBAL << 4 | STT_OBJECT, st_other=0,
                            st_shndx=1 + k, st_value=base, st_size=len(data)))
    for t in tables(walker)[0]:
        k = next(n for n, (b, d) in enumerate(regions) if b <= t.pa < b + len(d))
        symbols.append(dict(st_name=strings.add(t.name), st_info=STB_GLOBAL << 4 | STT_OBJECT, st_other=0,
                            st_shndx=1 + k, st_value=t.pa, st_size=t.size))
    for reg, value in vs.registers.items():
        symbols.append(dict(st_name=strings.add(f"pt_reg_{symbol_part(reg)}"), st_info=STB_GLOBAL << 4,
                            st_other=0, st_shndx=SHN_ABS, st_value=value, st_size=0))
    symtab = b"".join(_SYM.build(s) for s in symbols)
    offset = _EHDR.sizeof() + len(regions) * _PHDR.sizeof()
    phdrs, sections, placed = [], [dict(sh_name=0, sh_type=0, sh_flags=0, sh_addr=0, sh_offset=0, sh_size=0,
                                        sh_link=0, sh_info=0, sh_addralign=0, sh_entsize=0)], []
    for k, (base, data) in enumerate(regions):
        offset = -(-offset // 4096) * 4096
        phdrs.append(dict(p_type=PT_LOAD, p_flags=6, p_offset=offset, p_vaddr=base, p_paddr=base,
                          p_filesz=len(data), p_memsz=len(data), p_align=4096))
        sections.append(dict(sh_name=names.add(f".pt_mem{k}"), sh_type=SHT_PROGBITS, sh_flags=SHF_WRITE_ALLOC,
                             sh_addr=base, sh_offset=offset, sh_size=len(data), sh_link=0, sh_info=0,
                             sh_addralign=4096 if base % 4096 == 0 else 8, sh_entsize=0))
        placed.append((offset, data.tobytes()))
        offset += len(data)
    symtab_name, strtab_name, shstrtab_name = names.add(".symtab"), names.add(".strtab"), names.add(".shstrtab")
    for name, kind, blob, link, entsize in ((symtab_name, SHT_SYMTAB, symtab, len(sections) + 1, _SYM.sizeof()),
                                            (strtab_name, SHT_STRTAB, bytes(strings.data), 0, 0),
                                            (shstrtab_name, SHT_STRTAB, bytes(names.data), 0, 0)):
        offset = -(-offset // 8) * 8
        sections.append(dict(sh_name=name, sh_type=kind, sh_flags=0, sh_addr=0, sh_offset=offset,
                             sh_size=len(blob), sh_link=link, sh_info=1 if kind == SHT_SYMTAB else 0,
                             sh_addralign=8 if kind == SHT_SYMTAB else 1, sh_entsize=entsize))
        placed.append((offset, blob))
        offset += len(blob)
    shoff = -(-offset // 8) * 8
    try:
        with open(path, "wb") as fh:
            fh.write(_EHDR.build(dict(e_type=ET_EXEC, e_machine=ELF_MACHINES[vs.arch], e_version=1, e_entry=0,
                                      e_phoff=_EHDR.sizeof(), e_shoff=shoff, e_flags=0, e_ehsize=_EHDR.sizeof(),
                                      e_phentsize=_PHDR.sizeof(), e_phnum=len(phdrs),
                                      e_shentsize=_SHDR.sizeof(), e_shnum=len(sections),
                                      e_shstrndx=len(sections) - 1)))
            for p in phdrs:
                fh.write(_PHDR.build(p))
            for at, blob in placed:
                fh.seek(at)
                fh.write(blob)
            fh.seek(shoff)
            for s in sections:
                fh.write(_SHDR.build(s))
    except OSError as exc:
        raise VectorsError(f"cannot write {os.fspath(path)!r}: {exc.strerror}") from None


def _text(path: str | os.PathLike[str], text: str) -> None:
    try:
        with open(path, "w", encoding="ascii") as fh:
            fh.write(text)
    except OSError as exc:
        raise VectorsError(f"cannot write {os.fspath(path)!r}: {exc.strerror}") from None


def parse_formats(text: str) -> tuple[str, ...]:
    """`--formats`: `all`, or a comma list of FORMATS (json implies bin: the manifest names the images)."""
    chosen = FORMATS if text == "all" else tuple(f.strip() for f in text.split(","))
    for f in chosen:
        if f not in FORMATS:
            raise VectorsError(f"--formats: unknown format {f!r} (expected all, or a comma list of "
                               f"{', '.join(FORMATS)})")
    return chosen


_OUTPUT = re.compile(r"mem(-after)?(-\d+)?\.bin|vectors\.json|README\.txt|spec\.toml|" +
                     "|".join(re.escape(name) for name in FILES.values()))
"""The names of the files a vector set's directory holds (its images, mem-after images, the formats)."""


def remove_outputs(out_dir: str) -> None:
    """Remove the files an earlier vector set left in `out_dir` (nothing else), so that a set written there
    is never mixed with another's images or formats."""
    try:
        names = os.listdir(out_dir)
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        raise VectorsError(f"cannot write vectors to {out_dir!r}: {exc.strerror}") from None
    for name in names:
        if _OUTPUT.fullmatch(name) and os.path.isfile(os.path.join(out_dir, name)):
            try:
                os.remove(os.path.join(out_dir, name))
            except OSError as exc:
                raise VectorsError(f"cannot replace {name!r} in {out_dir!r}: {exc.strerror}") from None


def write_spec(text: bytes, out_dir: str) -> None:
    """The spec a set was built from (its bytes), as `spec.toml` in its directory: the set says how it was
    made."""
    try:
        with open(os.path.join(out_dir, "spec.toml"), "wb") as fh:
            fh.write(text)
    except OSError as exc:
        raise VectorsError(f"cannot write vectors to {out_dir!r}: {exc.strerror}") from None


def write_formats(vs: VectorSet, walker: Walker, out_dir: str, formats: Sequence[str], readme: str,
                  hex_width: int = 64, hex_offset: int = 0) -> None:
    """Write the chosen `formats` of `vs` into `out_dir`: bin and json through `VectorSet.write` (with
    README.txt; bin alone: the images and README.txt), then mem.hex, tables.S, tables.h and mem.elf. The
    mem.hex options are checked before anything is written."""
    if "hex" in formats:
        check_hex(vs.mem, hex_width, hex_offset)
    remove_outputs(out_dir)
    if "json" in formats:
        vs.write(out_dir, readme)
    else:
        try:
            os.makedirs(out_dir, exist_ok=True)
        except OSError as exc:
            raise VectorsError(f"cannot write vectors to {out_dir!r}: {exc.strerror}") from None
        if "bin" in formats:
            vs.mem.save(out_dir)
        _text(os.path.join(out_dir, "README.txt"), readme)
    writers = {"hex": lambda p: write_hex(p, vs.mem, hex_width, hex_offset), "S": lambda p: write_asm(p, vs, walker),
               "h": lambda p: write_header(p, vs, walker), "elf": lambda p: write_elf(p, vs, walker)}
    for f in formats:
        if f in writers:
            writers[f](os.path.join(out_dir, FILES[f]))
