"""Finding page-table roots in a memory image whose translation registers are unknown (`find_roots`), as
volatility3's DTB scanners do, but judged by the library's own walk rules.

Every frame of RAM aligned as a root table must be (its size: 4 KiB on x86 and RISC-V, read as 512 8-byte
entries or, in 32-bit paging and Sv32, 1024 4-byte ones (`PagingFormat.entry_size`); 32 bytes for x86 PAE
paging's PDPT of four PDPTEs, Intel SDM Vol. 3A Table 4-7, whose reserved bits are judged as the MOV to CR3
that loads them judges them (4.4.1); on AArch64 the
TTBR's BADDR is aligned to the initial table's size, Arm ARM D24.2.209: a granule, or 512 bytes for the 64
entries of a 64 KiB-granule, 48-bit root, which Linux allocates from a slab, pgd_cache in
arch/arm64/mm/pgd.c) is read as the root table of each paging mode tried (`shapes`):
the mode the given registers select (x86 CR4.PAE, EFER.LME and CR4.LA57, RISC-V satp.MODE, AArch64 TCR_EL1's
granule and size), or, where they are not given, every mode Linux uses (`DEFAULT_REGISTERS`; in an EM_386
core a 32-bit kernel's, `LEGACY_REGISTERS`). The image is read from its files
`CHUNK_BYTES` at a time, once for all the modes of one alignment, skipping the holes of sparse files, and
each chunk is judged with numpy: the frames with a valid entry, then (`_sift`) those whose present entries
mostly hold addresses in RAM (tested on every 16th entry first: random data fails there), then the walk
rules on what is left.

A frame's score (0 to 1) is a weighted mean of (`WEIGHTS`):
- form: the fraction of its present entries (the codec's valid bit: x86 P, RISC-V V, AArch64 bit 0) that
  the walk rules accept at the root level (`WalkRules.step`, for a supervisor read, whatever the permissions
  say: no reserved bit or encoding, which covers x86's PS in a PML5E or PML4E (Intel SDM Vol. 3A 4.5),
  RISC-V's A, D and U of a non-leaf PTE (privileged spec, "Virtual Address Translation Process", step 3)
  and AArch64's block descriptor at level 0 (Arm ARM D8.3)), that on AArch64 set no bit the descriptor's
  layout leaves undeclared, which are RES0 (`RES0_UNDECLARED`: with a 64 KiB granule and the 48-bit OA
  form NLTA and OA start at bit 16 and bits 15:12 are RES0, D8.3.1, so a 4 KiB table's entries, pointing
  at 4 KiB frames, do not read as a 64 KiB table's, nor its 512-byte slices as 64-entry roots), and whose
  next-level table (or a leaf's first byte) lies in the image's RAM. A frame below `MIN_FORM` is no
  candidate;
- below: the same fraction for the tables under it, sampled: `SAMPLES` of its table entries, evenly spread,
  then one table entry of each table reached, down to the last level; the mean over the levels reached
  (an empty table counts 0; a root of leaves alone scores `NO_TABLES`). A lower-level table read as a root
  reaches the data pages one level too early, which rarely read as tables;
- unreferenced: 1 unless a table entry of another candidate points at the frame (a Linux root is in no
  table: it is only ever in the register);
- shared: x86 and RISC-V only, whose one root maps both halves: the fraction of its well-formed entries
  in the kernel's part (the upper half; from 0xC000_0000 in a 32-bit space: `kernel_index`) that another
  candidate holds too, at the same index (Linux copies the kernel's part into every process's PGD:
  pgd_alloc in arch/x86/mm/pgtable.c, arch/riscv/include/asm/pgalloc.h).
  AArch64's kernel half has a table of its own (TTBR1_EL1), so the term is left out there;
- sparse: 1 for at most half the entries present, falling to 0 for a full table (a Linux root is never
  full). Left out for a root the processor loads into registers (x86 PAE's four PDPTEs, `Region.root_entries`),
  which Linux fills: pgd_alloc preallocates every PMD (PREALLOCATED_PMDS, arch/x86/mm/pgtable.c).

AArch64's root tables do not say which TTBR points at them, so each candidate is labelled with the region
its leaves look like (`Candidate.region`): of the well-formed leaves in the tables sampled below it, the
user pages (EL0 data access, AP[1]=1 as the walk rules read it, or not global, nG=1: Linux's user pages are
both, its kernel pages neither, arch/arm64/include/asm/pgtable-prot.h) and the others; more user pages
make it a TTBR0_EL1 (lower range) table, else a TTBR1_EL1 (upper range) one. The score does not depend
on the label.

Candidates are ranked by score, then by the order of the modes tried (`DEFAULT_REGISTERS`: the more common
first, as a table of one mode can read as well as one of another), then by present entries (more first),
then by address. On x86-64 a
candidate at an 8 KiB boundary whose next frame is a candidate holding one of its upper-half entries is
noted as a PTI pair (the kernel PGD and the user PGD 4 KiB above it: arch/x86/mm/pti.c,
kernel_to_user_pgdp).
"""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from .. import progress
from ..arch.aarch64.regs import TTBR0_EL1, TTBR1_EL1
from ..arch.riscv_sv39.regs import SATP, SATP32
from ..arch.x86_64.pae import pdpte_reserved
from ..arch.x86_64.regs import CR3, CR4
from ..arch.x86_64.walk import X86Rules
from ..descent import read_tables
from ..errors import InvalidArgument, PagetableError
from ..format import EntryCodec, EntryKind, PagingFormat
from ..physmem import PhysMem
from ..translation import PERMS, Access, Privilege, Reason, Region, StepColumns, perm_bit
from ..vectors.architecture import Architecture
from ..walker import Walker
from .images import Image, ImageError
from .target import LINUX_EFER

__all__ = ["CHUNK_BYTES", "DEFAULT_REGISTERS", "LEGACY_REGISTERS", "RES0_UNDECLARED", "ROOT_REGISTERS",
           "SCAN_REGISTERS", "TIE", "Candidate", "Shape", "auto_root", "find_roots", "kernel_index", "shapes",
           "with_root"]

U64 = npt.NDArray[np.uint64]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]

CHUNK_BYTES: Final = 64 << 20
"""The bytes of the image judged at once (a bound on the scan's working memory, a few times this)."""
MIN_FORM: Final = 0.5
_SIEVE: Final = 16           # the scan tests every 16th entry of a frame first: random data fails there
SAMPLES: Final = 4
_BATCH: Final = 4096         # candidates whose tables below are sampled at once (a bound on the memory)
NO_TABLES: Final = 0.5
TIE: Final = 0.02          # `auto_root` says a pick is uncertain when another scores within this of it
WEIGHTS: Final = {"form": 0.25, "below": 0.25, "unreferenced": 0.25, "shared": 0.15, "sparse": 0.1}

DEFAULT_REGISTERS: Final[Mapping[str, tuple[dict[str, int], ...]]] = {
    # CR0.PG|WP|PE, CR4.PAE (and LA57), Linux's EFER: 4-level and 5-level paging
    "x86_64": tuple({"cr0": 0x8001_0001, "cr4": 0x20 | la57, "efer": LINUX_EFER} for la57 in (0, CR4.mask("LA57"))),
    "riscv64": tuple({"satp": mode << SATP["MODE"].lsb} for mode in (8, 9, 10)),        # Sv39, Sv48, Sv57
    "riscv32": ({"satp": 1 << SATP32["MODE"].lsb},),                                     # Sv32
    # Linux's arm64 configurations (TCR_EL1 T0SZ, TG0, T1SZ, TG1; IPS 48 bits): 4 KiB and 64 KiB granules with
    # 48-bit VAs, 16 KiB with 47-bit VAs
    "aarch64": tuple({"tcr_el1": tsz | tg0 << 14 | tsz << 16 | tg1 << 30 | 5 << 32}
                     for tsz, tg0, tg1 in ((16, 0, 2), (16, 1, 3), (17, 2, 1))),
}
"""Per architecture, the registers (other than the root's) of each mode tried where none is given."""

LEGACY_REGISTERS: Final[Mapping[str, tuple[dict[str, int], ...]]] = {
    # CR0.PG|WP|PE; 32-bit paging with CR4.PSE (Linux's 2-level tables), PAE paging with CR4.PAE|PSE and NXE
    "x86_64": ({"cr0": 0x8001_0001, "cr4": 0x10, "efer": 0}, {"cr0": 0x8001_0001, "cr4": 0x30, "efer": 0x800})}
"""The modes tried instead of `DEFAULT_REGISTERS` in an EM_386 core (QEMU's when its first CPU is outside
IA-32e mode, target/i386/arch_dump.c): 32-bit paging, then PAE paging (a 32-bit Linux kernel's tables)."""

ROOT_REGISTERS: Final[Mapping[str, tuple[str, ...]]] = {
    "x86_64": ("cr3",), "riscv64": ("satp",), "riscv32": ("satp",), "aarch64": ("ttbr1_el1", "ttbr0_el1")}
"""The registers holding a root's address, the kernel's first (AArch64: TTBR1_EL1 translates the upper,
kernel, half; Linux's TTBR0_EL1 holds the running process's tables, or an empty table between them)."""

SCAN_REGISTERS: Final[Mapping[str, tuple[str, ...]]] = {
    "x86_64": ("cr0", "cr4", "efer", "pat", "pkru", "pkrs", "rflags"), "riscv64": ("satp",), "riscv32": ("satp",),
    "aarch64": ("tcr_el1", "mair_el1", "sctlr_el1")}
"""The registers a scan takes (besides the roots): those of one-stage translation (RISC-V's satp for its
MODE; AArch64's EL1&0 regime: not stage 2, not EL2)."""

RES0_UNDECLARED: Final = frozenset({"aarch64"})
"""The architectures whose descriptor layouts declare every bit but the RES0 ones (AArch64's name its
IGNORED and software bits, Arm ARM D8.3); x86's leave the Ignored bits undeclared, which Linux sets
(_PAGE_DIRTY in _KERNPG_TABLE, arch/x86/include/asm/pgtable_types.h), and RISC-V's declare all 64."""

_ADDRESS_FIELDS: Final = {"x86_64": {"cr3": CR3.mask("ADDR")}, "riscv64": {"satp": SATP.mask("PPN")},
                          "riscv32": {"satp": SATP32.mask("PPN")},
                          "aarch64": {"ttbr0_el1": TTBR0_EL1.mask("BADDR"), "ttbr1_el1": TTBR1_EL1.mask("BADDR")}}
_ACCEPTED: Final = np.array([Reason.OK, Reason.PERMISSION, Reason.ACCESSED_DIRTY, Reason.PROTECTION_KEY],
                            dtype=np.uint8)      # verdicts of a well-formed entry that this access may not use
_ALL_ONES: Final = (1 << 64) - 1
# a user leaf's: EL0 data access (AArch64 AP[1]); not execute, which EL0 has wherever UXN is clear
_USER_PERMS: Final = np.uint64(perm_bit(Access.READ, Privilege.USER) | perm_bit(Access.WRITE, Privilege.USER))


def with_root(arch: str, name: str, value: int, pa: int) -> int:
    """Register `name`'s `value` with its root address field (x86 CR3.ADDR, RISC-V satp.PPN as RV64 or, for
    `arch` riscv32, RV32 lays it out, AArch64 TTBRn_EL1.BADDR) holding `pa`, the other fields kept (a PAE
    PDPT's 32-byte aligned address in CR3 bits 31:5: `CR3_PAE`)."""
    encoded = pa >> 12 if name == "satp" else pa
    return value & ~_ADDRESS_FIELDS[arch][name] | encoded


@dataclass(frozen=True)
class Shape:
    """One paging mode to scan for: its registers (every one but the roots, which are 0), the walker they
    make, the region whose root tables are looked for (AArch64: TTBR1_EL1's; both have one shape), and
    whether a descriptor bit its layouts leave undeclared is RES0 (`RES0_UNDECLARED`)."""

    registers: dict[str, int]
    walker: Walker
    region: Region
    undeclared_res0: bool = False

    @property
    def name(self) -> str:
        return self.region.fmt.name


@dataclass(frozen=True)
class Candidate:
    """A frame that reads as a root table of `shape`, with its score and the evidence for it."""

    pa: int
    shape: Shape
    score: float
    entries: int                # the root table's entries
    present: int
    well_formed: int            # present entries the rules accept, pointing at RAM
    below_tables: int           # tables sampled below it
    below: float                # their well-formed fraction (the mean over the levels reached)
    kernel: int = 0             # well-formed entries in the upper (kernel) half (x86-64, RISC-V)
    shared: int = 0             # of those, held by another candidate too
    sharers: int = 0            # the most candidates holding one of them (this one included)
    pti_user: int | None = None  # x86-64: the user PGD 4 KiB above, a PTI pair
    registers: dict[str, int] = field(default_factory=dict)   # the shape's registers with this root
    user_leaves: int = 0        # well-formed leaves sampled below it that are user pages (`_judge`)
    kernel_leaves: int = 0      # and those that are not

    @property
    def region(self) -> Region:
        """The region the candidate looks like the root of: the shape's one region (x86-64, RISC-V), or on
        AArch64 TTBR0_EL1's (the lower, user, range) where more of the leaves sampled below it are user pages
        (EL0 data access, AP[1]=1, or not global, nG=1: Linux's user pages are both, its kernel pages
        neither, arch/arm64/include/asm/pgtable-prot.h) than not, else TTBR1_EL1's (the upper, kernel,
        range; the guess too when the leaves say nothing: `region_known`)."""
        regions = self.shape.walker.rules.regime.regions
        return regions[0] if self.user_leaves > self.kernel_leaves else regions[-1]

    @property
    def region_known(self) -> bool:
        """Whether the leaves below decide `region` (always, for a shape of one region)."""
        return self.shape.region.select_bit is None or self.user_leaves != self.kernel_leaves

    @property
    def mode(self) -> str:
        """The candidate's paging mode as the format of its `region` names it."""
        return self.region.fmt.name

    def describe(self) -> str:
        """The candidate as one line of `pagetable find-roots`."""
        half = ""
        if self.shape.region.select_bit is None:
            half = f"; kernel half {self.kernel}, " + (
                f"{self.shared} shared by up to {self.sharers} candidates" if self.shared else "none shared")
        else:
            half = f"; leaves below: {self.user_leaves} user, {self.kernel_leaves} kernel"
        pti = f"  PTI pair: user PGD {self.pti_user:#x}" if self.pti_user is not None else ""
        return (f"{self.pa:#x}  score {self.score:.2f}  {self.mode}  present {self.present} of {self.entries} "
                f"(well-formed {self.well_formed}{half})  below {self.below:.2f} over {self.below_tables} "
                f"tables{pti}")

    def as_json(self) -> dict[str, object]:
        """The candidate as one JSON object of `pagetable find-roots --json` (the halves' counts null on
        AArch64, whose root tables map one half each)."""
        one_root = self.shape.region.select_bit is None
        return {"pa": f"{self.pa:#x}", "score": round(self.score, 4), "mode": self.mode,
                "entries": self.entries, "present": self.present, "well_formed": self.well_formed,
                **{k: v if one_root else None for k, v in (("kernel_half", self.kernel), ("shared", self.shared),
                                                            ("sharers", self.sharers))},
                "below_tables": self.below_tables, "below": round(self.below, 4),
                "pti_user": None if self.pti_user is None else f"{self.pti_user:#x}",
                **{k: None if one_root else v for k, v in (("user_leaves", self.user_leaves),
                                                            ("kernel_leaves", self.kernel_leaves))},
                "registers": {k: f"{v:#x}" for k, v in self.registers.items()}}


def shapes(mem: PhysMem, arch: Architecture, registers: Mapping[str, int], pa_bits: int | None,
           legacy: bool = False) -> list[Shape]:
    """The modes to scan for: each of `DEFAULT_REGISTERS` (`LEGACY_REGISTERS` with `legacy`: an EM_386
    core's), with the given `registers` over it (a given register fixes the mode: every default that differs
    only in registers given is one shape). A root register among `registers` is an error (the scan finds
    it). Each shape's rules are made over a zero root table at PA 0 (`_ZERO_ROOT`): PAE paging's rules
    hold the PDPTE registers, which a zero PDPT loads as four not-present entries; the scan judges each
    frame's own entries."""
    if arch.name not in ROOT_REGISTERS or arch.walker_from_registers is None:
        raise PagetableError(f"find-roots does not support {arch.cli_name}")
    roots = ROOT_REGISTERS[arch.name]
    for name in registers:
        if name in roots and name != "satp":
            raise PagetableError(f"register {name} holds the root the scan finds: give the other registers only")
        if name not in SCAN_REGISTERS[arch.name]:
            raise PagetableError(f"register {name[:40]!r}: find-roots looks for one-stage roots "
                                 f"({arch.cli_name}: give {', '.join(SCAN_REGISTERS[arch.name])})")
    out: list[Shape] = []
    seen: set[tuple[tuple[str, int], ...]] = set()
    for default in (LEGACY_REGISTERS if legacy else DEFAULT_REGISTERS)[arch.name]:
        regs = {**{r: 0 for r in roots}, **default, **registers}
        if "satp" in registers:
            regs["satp"] = with_root(arch.name, "satp", registers["satp"], 0)
        key = tuple(sorted(regs.items()))
        if key in seen:
            continue
        seen.add(key)
        walker = Walker(mem, arch.walker_from_registers(_ZERO_ROOT, dict(regs), pa_bits).rules)
        regions = walker.rules.regime.regions
        if not regions:
            raise PagetableError("the registers turn translation off: there is no root to find")
        # AArch64: TTBR1_EL1's region (the kernel's); else the one
        out.append(Shape(regs, walker, regions[-1], arch.name in RES0_UNDECLARED))
    return out


_ZERO_ROOT: Final = PhysMem([(0, 4096)])
"""A zero root table at PA 0, for the rules `shapes` makes (PAE's four PDPTE registers: not present)."""


@dataclass
class _Found:
    """One shape's candidates as the scan finds them: addresses, root entries, and the root-level verdicts."""

    pa: list[U64] = field(default_factory=list)
    rows: list[U64] = field(default_factory=list)
    good: list[Bool] = field(default_factory=list)
    table: list[Bool] = field(default_factory=list)


@functools.cache
def _undeclared(fmt: PagingFormat, depth: int) -> tuple[int, int]:
    """The bits no field of the format's layout declares (RES0 as the format's own encoder writes them) in
    a table descriptor and in a leaf at `depth`: e.g. an AArch64 64 KiB-granule descriptor's bits 15:12
    with the 48-bit OA form, where NLTA and OA start at bit 16 (Arm ARM D8.3.1, Figures D8-12 to D8-16).
    0 for a kind the level does not have (the walk rules refuse it)."""
    level = fmt.levels[depth]
    out = []
    for kind in (EntryKind.TABLE, EntryKind.PAGE if depth + 1 == fmt.depth_count else EntryKind.BLOCK):
        try:
            out.append(fmt.codecs[depth].layout_for(kind, level.span).unknown_bits(_ALL_ONES))
        except InvalidArgument:
            out.append(0)
    return out[0], out[1]


def _global_bit(fmt: PagingFormat, depth: int) -> int:
    """The leaf's not-global bit at `depth` (AArch64 nG, D8.4.3: Linux sets it in every user page,
    PTE_NG in arch/arm64/include/asm/pgtable-prot.h), or 0 for a format without one."""
    kind = EntryKind.PAGE if depth + 1 == fmt.depth_count else EntryKind.BLOCK
    try:
        return fmt.codecs[depth].layout_for(kind, fmt.levels[depth].span).mask("nG")
    except (InvalidArgument, KeyError):
        return 0


def _judge(shape: Shape, depth: int, raw: U64) -> tuple[Bool, Bool, Bool, Bool]:
    """For entries at `depth`: which are present (the codec's valid bit), which of those are well formed (the
    rules accept them for a supervisor read, whatever the permissions say, no RES0 bit is set (where the
    shape's layouts leave only RES0 bits undeclared: `_undeclared`), and their next table, or a leaf's
    first byte, is RAM), which of those point at a table, and which of those are user leaves (readable or
    writable at EL0/U as the rules read them, or not global: `_global_bit`)."""
    fmt, mem = shape.region.fmt, shape.walker.mem
    n = raw.shape[0]
    present = np.asarray(fmt.codecs[depth].is_present_np(raw), dtype=bool)
    if n == 0:
        return present, present, present, present
    st = StepColumns.filled(shape.walker.rules.step(
        shape.region, depth, raw, np.full(n, Access.READ, dtype=np.uint8),
        np.full(n, Privilege.SUPERVISOR, dtype=np.uint8), np.full(n, PERMS)), (n,))
    leaf = np.asarray(st.leaf, dtype=bool)
    addr = np.asarray(fmt.codecs[depth].paddr_np(raw, depth != fmt.depth_count - 1), dtype=np.uint64)
    ok = present & np.isin(st.reason, _ACCEPTED)
    rules = shape.walker.rules
    if depth == 0 and isinstance(rules, X86Rules) and rules.pdptes is not None:   # PAE's PDPTEs: loaded by MOV
        ok &= np.asarray(pdpte_reserved(raw, rules.options.maxphyaddr), dtype=np.uint64) == 0   # to CR3, or #GP
    if shape.undeclared_res0:
        table_res0, leaf_res0 = _undeclared(fmt, depth)
        ok &= raw & np.where(leaf, np.uint64(leaf_res0), np.uint64(table_res0)) == 0
    last = depth + 1 == fmt.depth_count
    inram = mem.contains_np(addr, 8 if last else fmt.table_size(depth + 1))
    inram = np.where(leaf, mem.contains_np(addr, 8), inram)
    good = ok & inram
    user = good & leaf & ((np.asarray(st.carry, dtype=np.uint64) & _USER_PERMS != 0) |
                          (raw & np.uint64(_global_bit(fmt, depth)) != 0))
    return present, good, good & ~leaf, user


def _file_data(fd: int, start: int, end: int) -> Iterator[tuple[int, int]]:
    """The ranges of [start, end) of file `fd` that may hold data: all of it, less the holes of a sparse
    file (lseek SEEK_DATA/SEEK_HOLE, where the system has them), which read as zeros."""
    if not hasattr(os, "SEEK_DATA"):
        yield start, end
        return
    pos = start
    while pos < end:
        try:
            begin = os.lseek(fd, pos, os.SEEK_DATA)
            stop = os.lseek(fd, begin, os.SEEK_HOLE)
        except OSError as exc:                   # ENXIO: holes to the end; EINVAL: no hole support
            if exc.errno != errno.ENXIO:
                yield pos, end
            return
        if begin >= end:
            return
        yield begin, min(stop, end)
        pos = stop


def _chunks(source: Image | PhysMem, align: int) -> Iterator[tuple[int, U8]]:
    """The `align`-aligned frames of RAM, up to `CHUNK_BYTES` of them at a time, as (PA of the first, their
    bytes). An image's segments are read from their files into one buffer, skipping the holes of sparse
    files (zero frames, no candidates); a `PhysMem` is read through its views."""
    per_chunk = max(1, CHUNK_BYTES // align) * align
    if isinstance(source, PhysMem):
        for r in source.regions:
            first, end = -(-r.base // align) * align, (r.base + r.size) // align * align
            for pa in range(first, end, per_chunk):
                yield pa, source.words(pa, min(per_chunk, end - pa) // 8).view(np.uint8)
        return
    largest = max((-(-seg.size // align) * align for seg in source.segments), default=align)
    buffer = np.empty(min(per_chunk, largest), dtype=np.uint8)        # no bigger than the image needs
    for seg in source.segments:
        first, end = -(-seg.base // align) * align, (seg.base + seg.size) // align * align
        with open(seg.path, "rb", buffering=0) as f:
            for start, stop in _file_data(f.fileno(), seg.offset + first - seg.base, seg.offset + end - seg.base):
                lo = (start - seg.offset + seg.base) // align * align          # whole frames around the data
                hi = -(-(stop - seg.offset + seg.base) // align) * align
                for pa in range(max(lo, first), min(hi, end), per_chunk):
                    n = min(per_chunk, min(hi, end) - pa)
                    f.seek(seg.offset + pa - seg.base)
                    if f.readinto(buffer.data[:n]) != n:
                        raise ImageError(f"{seg.path}: truncated while reading it (it changed since it was opened?)")
                    yield pa, buffer[:n]


def _valid_bit(shape: Shape) -> int | None:
    """The one bit the codec's `is_present_np` reads (x86 P, RISC-V V, AArch64 descriptor bit 0), found by
    asking it, or None for a codec whose presence is not one bit."""
    probes = np.left_shift(np.uint64(1), np.arange(64, dtype=np.uint64))
    bits = np.flatnonzero(np.asarray(shape.region.fmt.codecs[0].is_present_np(probes), dtype=bool))
    return int(bits[0]) if bits.size == 1 else None


def _scan(group: list[Shape], source: Image | PhysMem) -> list[_Found]:
    """Every aligned frame of RAM read as the root table of each of `group` (shapes of one table alignment),
    a chunk at a time, read once for all of them: per shape, the frames whose present entries are at least
    `MIN_FORM` well formed."""
    align, mem = group[0].region.fmt.root_size, group[0].walker.mem
    found = [_Found() for _ in group]
    valid = [_valid_bit(shape) for shape in group]
    total = sum((r.base + r.size) // align - -(-r.base // align) for r in mem.regions)
    with progress.bar(total, "find-roots", unit="frame") as bar:
        for base, data in _chunks(source, align):
            frames: dict[int, U64] = {}                   # per entry size: the frames' entries, one row a frame
            sifted: dict[tuple[EntryCodec, int], tuple[U64, npt.NDArray[np.intp]]] = {}
            for shape, bit, out in zip(group, valid, found, strict=True):
                fmt = shape.region.fmt
                size = fmt.entry_size
                if size not in frames:
                    frames[size] = data.view(f"<u{size}").reshape(-1, align // size).astype(np.uint64, copy=False)
                key = (fmt.codecs[0], fmt.levels[0].entries)     # shapes alike in both sift alike (4- and 5-level)
                if key not in sifted:
                    sifted[key] = _sift(shape, frames[size][:, :fmt.levels[0].entries], bit)
                rows, live = sifted[key]
                if live.size:
                    _keep(shape, out, rows, np.uint64(base) + live.astype(np.uint64) * np.uint64(align))
            bar.update(min(data.size // align, total - bar.n))
    return found


def _near(shape: Shape, rows: U64) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Per row of entries: how many are present, and how many of those hold an address in RAM."""
    fmt = shape.region.fmt
    present = np.asarray(fmt.codecs[0].is_present_np(rows), dtype=bool)
    addr = np.asarray(fmt.codecs[0].paddr_np(rows.reshape(-1), fmt.depth_count > 1), dtype=np.uint64)
    near = present & shape.walker.mem.contains_np(addr, 8).reshape(rows.shape)
    return near.sum(axis=1), present.sum(axis=1)


def _sift(shape: Shape, block: U64, bit: int | None) -> tuple[U64, npt.NDArray[np.intp]]:
    """The frames of `block` (one row a frame) that may be root tables: with a valid entry (`bit`: the
    codec's valid bit, tested on all the entries' OR at once), and whose present entries at least `MIN_FORM`
    hold addresses in RAM, tested on every `_SIEVE`th entry first (random data fails there), then on every
    one. Their rows (a copy) and numbers."""
    if bit is None:
        any_valid = np.asarray(shape.region.fmt.codecs[0].is_present_np(block), dtype=bool).any(axis=1)
    else:
        any_valid = np.bitwise_or.reduce(block, axis=1) & np.uint64(1 << bit) != 0
    live = np.flatnonzero(any_valid)
    if live.size:
        near, present = _near(shape, block[live, ::_SIEVE])
        live = live[near >= MIN_FORM * present]
    rows = block[live]
    if live.size:
        near, present = _near(shape, rows)
        maybe = near >= MIN_FORM * present
        rows, live = rows[maybe], live[maybe]
    return rows, live


def _keep(shape: Shape, found: _Found, rows: U64, pas: U64) -> None:
    """Judge the root entries `rows` (`_sift`'s, of the frames at `pas`) by the walk rules, and keep the
    frames whose present entries are at least `MIN_FORM` well formed."""
    present, good, table, _ = (c.reshape(rows.shape) for c in _judge(shape, 0, rows.reshape(-1)))
    keep = good.sum(axis=1) >= MIN_FORM * present.sum(axis=1)
    found.pa.append(pas[keep])
    found.rows.append(rows[keep])
    found.good.append(good[keep])
    found.table.append(table[keep])


def _samples(table: Bool, most: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Up to `most` table entries per row, evenly spread: (row, entry index) of each."""
    count = table.sum(axis=1, keepdims=True)
    rank = np.cumsum(table, axis=1) - 1
    step = np.maximum(count // most, 1)
    pick = table & (rank % step == 0) & (rank // step < most)
    rows, index = np.nonzero(pick)
    return rows, index


def _below(shape: Shape, rows: U64, table: Bool) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64],
                                                         npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Per root: the tables sampled below it (`SAMPLES` of its table entries, then one table entry of each
    table reached, down to the last level), the mean, over the levels reached, of their mean well-formed
    fraction (an empty table counts 0), and the well-formed leaves in those tables that are user leaves
    (`_judge`) and that are not."""
    fmt = shape.region.fmt
    n = np.zeros(rows.shape[0], dtype=np.int64)
    levels = np.zeros(rows.shape[0], dtype=np.int64)
    total = np.zeros(rows.shape[0], dtype=np.float64)
    users = np.zeros(rows.shape[0], dtype=np.int64)
    kernels = np.zeros(rows.shape[0], dtype=np.int64)
    owner_of, cur = np.arange(rows.shape[0]), rows        # each row's root, and the rows (root tables first)
    row, index = _samples(table, SAMPLES)
    for depth in range(1, fmt.depth_count):
        if not row.size:
            break
        owner = owner_of[row]
        entries = fmt.levels[depth].entries
        pointers = np.asarray(fmt.codecs[depth - 1].paddr_np(cur[row, index], True), dtype=np.uint64)
        cur = read_tables(shape.walker.mem, pointers, entries, fmt.entry_size).reshape(-1, entries)
        present, good, table, user = (c.reshape(cur.shape) for c in _judge(shape, depth, cur.reshape(-1)))
        fraction = good.sum(axis=1) / np.maximum(present.sum(axis=1), 1)
        sampled = np.bincount(owner, minlength=n.size)
        n += sampled
        levels += sampled > 0
        total += np.bincount(owner, weights=fraction, minlength=n.size) / np.maximum(sampled, 1)
        users += np.bincount(owner, weights=user.sum(axis=1), minlength=n.size).astype(np.int64)
        kernels += np.bincount(owner, weights=(good & ~table & ~user).sum(axis=1), minlength=n.size).astype(np.int64)
        owner_of = owner
        row, index = _samples(table, 1)
    return n, total / np.maximum(levels, 1), users, kernels


def kernel_index(fmt: PagingFormat) -> int:
    """The first root entry counted as the kernel's in a Linux address space in `fmt`: the upper half of a
    64-bit space; of a 32-bit one, the entry of 0xC000_0000 (PDE 768 of 1024, PDPTE 3 of 4), Linux's
    PAGE_OFFSET in its default 3G/1G split (i386 CONFIG_VMSPLIT_3G; RV32's PAGE_OFFSET), below which an
    i386 process's libraries and stack sit. RV32's kernel starts lower (vmalloc and the fixmap below
    PAGE_OFFSET): its entries there are not counted, which the shared fraction does not need."""
    if fmt.va_bits == 32:
        return 0xC000_0000 >> fmt.levels[0].index_lsb
    return fmt.levels[0].entries // 2


def _sharing(rows: U64, good: Bool, half: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64],
                                                         npt.NDArray[np.int64]]:
    """Per root: its well-formed kernel entries (from index `half`: `kernel_index`), how many of them another
    root holds at the same index, and the most roots holding one of them."""
    roots, index = np.nonzero(good[:, half:])
    index = index + half
    kernel = np.bincount(roots, minlength=rows.shape[0]).astype(np.int64)
    shared = np.zeros(rows.shape[0], dtype=np.int64)
    sharers = np.zeros(rows.shape[0], dtype=np.int64)
    if roots.size:
        keys = np.stack([index.astype(np.uint64), rows[roots, index]], axis=1)
        _, inverse, holders = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
        held = holders[inverse.reshape(-1)]
        np.add.at(shared, roots, held > 1)
        np.maximum.at(sharers, roots, held)
    return kernel, shared, sharers


def _pti_pairs(pas: U64, rows: U64, good: Bool, half: int) -> set[int]:
    """The candidates at an 8 KiB boundary whose next frame is a candidate too, holding at least one of their
    kernel entries (from index `half`; x86 PTI: the user PGD maps the kernel's entry code,
    arch/x86/mm/pti.c)."""
    order = np.argsort(pas)
    kernel = pas % np.uint64(8192) == 0
    at = np.searchsorted(pas[order], pas + np.uint64(4096))
    at = np.minimum(at, pas.size - 1)
    user = order[at]
    paired = kernel & (pas[user] == pas + np.uint64(4096))
    k, u = np.flatnonzero(paired), user[paired]
    same = (rows[k, half:] == rows[u, half:]) & good[k, half:] & good[u, half:]
    return set(pas[k[same.any(axis=1)]].tolist())


def _candidates(shape: Shape, found: _Found, arch: str) -> list[Candidate]:
    """`found`'s frames scored (the module's description) as `Candidate`s."""
    if not found.pa:
        return []
    pas, rows = np.concatenate(found.pa), np.concatenate(found.rows)
    good, table = np.concatenate(found.good), np.concatenate(found.table)
    if not pas.size:
        return []
    fmt = shape.region.fmt
    entries = rows.shape[1]
    present = np.asarray(fmt.codecs[0].is_present_np(rows), dtype=bool).sum(axis=1)
    formed = good.sum(axis=1)
    parts = [_below(shape, rows[k:k + _BATCH], table[k:k + _BATCH]) for k in range(0, len(rows), _BATCH)]
    tables, below, users, kernels = (np.concatenate(column) for column in zip(*parts, strict=True))
    below = np.where(table.any(axis=1), below, NO_TABLES)
    sparse = np.clip(2 * (entries - present) / entries, 0, 1)
    one_root = shape.region.select_bit is None
    left_out = ({"shared"} if not one_root else set()) | \
        ({"sparse"} if shape.region.root_entries is not None else set())
    weights = {k: v for k, v in WEIGHTS.items() if k not in left_out}
    total = sum(weights.values())
    owner, index = np.nonzero(table)
    targets = np.asarray(fmt.codecs[0].paddr_np(rows[owner, index], True), dtype=np.uint64)
    targets = np.unique(targets[targets != pas[owner]])          # a root's entry pointing at itself is no parent
    referenced = np.isin(pas, targets)
    score = (weights["form"] * formed / present + weights["below"] * below + weights.get("sparse", 0) * sparse +
             weights["unreferenced"] * ~referenced)
    kernel = shared = sharers = np.zeros(pas.shape, dtype=np.int64)
    if one_root:
        kernel, shared, sharers = _sharing(rows, good, kernel_index(fmt))
        score = score + weights["shared"] * np.where(kernel > 0, shared / np.maximum(kernel, 1), 0)
    score = score / total
    pti = _pti_pairs(pas, rows, good, kernel_index(fmt)) if "cr4" in shape.registers else set()
    root_names = ROOT_REGISTERS[arch]
    out = []
    for n, pa in enumerate(pas.tolist()):
        user = pa + 4096 if pa in pti else None
        regs = {**shape.registers, **{r: with_root(arch, r, shape.registers[r], pa) for r in root_names}}
        out.append(Candidate(pa, shape, float(score[n]), entries, int(present[n]), int(formed[n]), int(tables[n]),
                             float(below[n]), int(kernel[n]), int(shared[n]), int(sharers[n]), user, regs,
                             int(users[n]), int(kernels[n])))
    return out


def find_roots(source: Image | PhysMem, arch: Architecture, registers: Mapping[str, int] | None = None,
               pa_bits: int | None = None, top: int | None = None) -> list[Candidate]:
    """The root-table candidates in the RAM of `source` (an image, whose files are read in chunks, or a
    `PhysMem`) for `arch`, best first (at most `top`), over the modes `shapes`
    makes of `registers` (the registers other than the roots: x86 cr0, cr4, efer; RISC-V satp's MODE;
    AArch64 tcr_el1). Each candidate's `registers` are its shape's with every root register
    (`ROOT_REGISTERS`) holding it. The scan's progress shows on a terminal (`pagetable.progress`)."""
    if top is not None and top < 1:
        raise PagetableError(f"--top {top}: give at least 1")
    found: list[Candidate] = []
    mem = source if isinstance(source, PhysMem) else source.mem
    legacy = not isinstance(source, PhysMem) and source.machine == "EM_386"
    tried = shapes(mem, arch, registers or {}, pa_bits, legacy)
    for align in sorted({shape.region.fmt.root_size for shape in tried}):
        group = [shape for shape in tried if shape.region.fmt.root_size == align]
        for shape, frames in zip(group, _scan(group, source), strict=True):
            found += _candidates(shape, frames, arch.name)
    order = {id(shape): n for n, shape in enumerate(tried)}        # ties: the more common mode first
    found.sort(key=lambda c: (-c.score, order[id(c.shape)], -c.present, c.pa))
    return found[:top] if top is not None else found


def _for_register(c: Candidate, name: str) -> bool:
    """Whether `c` looks like the root that register `name` holds: its `region`'s (AArch64 TTBR0_EL1 or
    TTBR1_EL1), or the one region's (x86 CR3, RISC-V satp)."""
    return c.shape.region.select_bit is None or c.region.name.lower() == name


def auto_root(source: Image | PhysMem, arch: Architecture, registers: Mapping[str, int],
              pa_bits: int | None = None) -> tuple[dict[str, int], list[str]]:
    """`registers` with the root registers they lack (`ROOT_REGISTERS`; RISC-V's satp: its PPN) taken
    from the best candidates (`find_roots` over the other registers), and one line per register filled
    in, saying why, then one per doubt (each, like the others, says what was assumed). The mode is the best
    candidate's; each root register gets the best candidate of that mode that looks like its root
    (`Candidate.region`: on AArch64, TTBR0_EL1 the one whose leaves are mostly user pages, TTBR1_EL1 the
    one whose leaves are mostly kernel pages) and that no given root register holds, or, where none does,
    the best one left. A doubt is said when another mode's best candidate scores within `TIE` of the best,
    when a register's runner-up of the same kind does, or when the leaves do not say which TTBR a pick
    belongs to. PagetableError when the image holds too few candidates."""
    names = ROOT_REGISTERS[arch.name]
    fill = [n for n in names if n not in registers or n == "satp"]
    if not fill:
        raise PagetableError(f"--root auto: {' and '.join(names)} given, so there is no root to find")
    given = {n: registers[n] for n in names if n in registers and n not in fill}
    ranked = find_roots(source, arch, {k: v for k, v in registers.items() if k not in given}, pa_bits)
    if not ranked:
        raise PagetableError(f"--root auto: the image holds no {arch.cli_name} page-table root candidate")
    best = ranked[0]
    taken = {v & _ADDRESS_FIELDS[arch.name][n] for n, v in given.items()}
    left = [c for c in ranked if c.shape is best.shape and c.pa not in taken]
    if len(left) < len(fill):
        raise PagetableError(f"--root auto: {len(left)} root candidate(s) for {', '.join(fill)}; give "
                             f"{fill[-1]} with --reg")
    regs = {**best.shape.registers, **given}
    notes = [f"{k}={v:#x} (--root auto: the mode of the best root candidate, {best.mode})"
             for k, v in best.shape.registers.items() if k not in registers and k not in names]
    doubts = []
    rival = next((c for c in ranked if c.shape is not best.shape), None)
    if rival is not None and best.score - rival.score < TIE:
        mode = ", ".join(k for k, v in best.shape.registers.items() if rival.shape.registers.get(k) != v)
        doubts.append(f"{best.mode}, not {rival.mode}, near-tied (--root auto: their best candidates "
                      f"score {best.score:.2f} and {rival.score:.2f}; give {mode} with --reg)")
    for name in fill:
        kind = [c for c in left if _for_register(c, name)]
        pick = (kind or left)[0]
        left.remove(pick)
        regs[name] = pick.registers[name]
        notes.append(f"{name}={regs[name]:#x} (--root auto: root candidate {ranked.index(pick) + 1} of "
                     f"{len(ranked)}, score {pick.score:.2f})")
        if not kind or not pick.region_known:
            doubts.append(f"{name} holds {pick.pa:#x} without evidence (--root auto: the leaves below it, "
                          f"{pick.user_leaves} user and {pick.kernel_leaves} kernel, do not say it is {name}'s "
                          f"table; give {name} with --reg)")
        runner = kind[1] if len(kind) > 1 else None
        if runner is not None and pick.score - runner.score < TIE:
            doubts.append(f"{name} holds {pick.pa:#x}, not {runner.pa:#x}, near-tied (--root auto: they score "
                          f"{pick.score:.2f} and {runner.score:.2f}; give {name} with --reg)")
    return regs, notes + doubts
