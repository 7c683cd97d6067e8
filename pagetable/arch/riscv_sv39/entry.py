"""RISC-V page-table entries: the 64-bit PTE of Sv39/Sv48/Sv57 and the 32-bit PTE of Sv32.

The PTE layouts of the RISC-V privileged architecture, "Supervisor-Level ISA", sections "Sv39: Page-Based
39-bit Virtual-Memory System" (Figure "Sv39 page table entry"), "Svnapot" and "Svpbmt". Sv48 and Sv57 use the
same 64-bit PTE; they only add levels. "Sv32: Page-Based 32-bit Virtual-Memory Systems" (Figure "Sv32 page
table entry") has the same low ten bits and a 22-bit PPN, split as PPN[1] (31:20) and PPN[0] (19:10), and
nothing above (`PTE32`; the `SV32`/`SV32X4` codecs, `pte=PTE32`, list and explain their entries by it).

Encoding choices (`RiscvCodec`), all documented in docs/riscv.md:
- DEVICE → PBMT=IO and UNCACHED → PBMT=NC when Svpbmt is enabled (DEVICE wins); without Svpbmt both are
  left to the PMAs and not encoded (and so not decoded either).
- A/D: `ad="preset"` (default) sets A on every leaf and D on writable leaves, so Svade hardware never faults
  on an access the flags allow and read-only pages stay clean; `ad="all"` sets both on every leaf (ArceOS);
  `ad="hardware"` leaves both clear for Svadu hardware or a kernel that manages them through faults.
- G is set on non-USER leaves when `global_kernel=True`.
- `gstage=True` (the `GSTAGE` codec, for Sv39x4/Sv48x4/Sv57x4): every leaf gets U=1, because G-stage
  accesses are checked as U-mode accesses; USER is then implied, not a choice. G is never set there.
- Empty flags give an invalid (V=0) placeholder that still records the PPN, as page_table_multiarch does.
- WRITE without READ has no encoding (R=0, W=1 is reserved): `InvalidFlags`.
`ARCEOS` reproduces page_table_multiarch 0.6.1's `Rv64PTE` bytes exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from ... import args, lanes
from ...errors import InvalidAddress, InvalidArgument, InvalidFlags, NotAligned
from ...flags import MappingFlags
from ...format import EntryKind, NoPointerRights, RememberedLeaves
from ...lanes import Flag, Small, Word
from ...layout import Field, Layout
from ...translation import MemoryType, memory_type_flags

U64 = npt.NDArray[np.uint64]
Bool = npt.NDArray[np.bool_]

PBMT_PMA, PBMT_NC, PBMT_IO, PBMT_RESERVED = 0, 1, 2, 3

PTE = Layout("RISC-V PTE", 64, [
    Field("V", 0, 1, "valid"),
    Field("R", 1, 1, "readable"),
    Field("W", 2, 1, "writable"),
    Field("X", 3, 1, "executable"),
    Field("U", 4, 1, "accessible to U-mode"),
    Field("G", 5, 1, "global mapping"),
    Field("A", 6, 1, "accessed"),
    Field("D", 7, 1, "dirty"),
    Field("RSW", 8, 2, "reserved for supervisor software"),
    Field("PPN", 10, 44, "physical page number"),
    Field("Reserved", 54, 7, "reserved for future standard use; must be zero"),
    Field("PBMT", 61, 2, "Svpbmt page-based memory type",
          {PBMT_PMA: "PMA", PBMT_NC: "NC", PBMT_IO: "IO", PBMT_RESERVED: "reserved"}),
    Field("N", 63, 1, "Svnapot naturally aligned power-of-2 page"),
], "RISC-V privileged spec, Sv39 page table entry; Svpbmt; Svnapot")

PTE32 = Layout("RISC-V Sv32 PTE", 32, [*(f for f in PTE.fields if f.msb < PTE["PPN"].lsb),
                                      Field("PPN[0]", 10, 10, "physical page number, bits 9:0 (PA bits 21:12)"),
                                      Field("PPN[1]", 20, 12, "physical page number, bits 21:10 (PA bits 33:22)")],
               "RISC-V privileged spec, Sv32 page table entry")
"""The Sv32 PTE: V R W X U G A D and RSW as `PTE` declares them, PPN[0] and PPN[1] (the PPN field of `PTE`,
which the codec and the walk rules compute with, is their concatenation, bit for bit)."""

V, R, W, X, U, G, A, D = (PTE.mask(n) for n in ("V", "R", "W", "X", "U", "G", "A", "D"))
PBMT_MEMORY_TYPE = np.array([MemoryType.DEFAULT, MemoryType.RISCV_NC, MemoryType.RISCV_IO, MemoryType.NONE],
                            dtype=np.uint8)
"""Svpbmt: PBMT -> MemoryType (PMA: the platform's attributes decide; 3 is reserved, so no memory type)."""
PPN_MASK = PTE.mask("PPN")
PPN_SHIFT = PTE["PPN"].lsb
PAGE_SHIFT = 12


def ppn_field(pa: int) -> int:
    """The PPN field of a PTE pointing at `pa` (other bits clear)."""
    return (pa >> PAGE_SHIFT) << PPN_SHIFT & PPN_MASK


def _has(layout: Layout, name: str) -> bool:
    """Whether `layout` declares a field called `name` (Sv32's PTE has no N, PBMT or reserved bits)."""
    return any(f.name == name for f in layout.fields)


def _ppn_bits(layout: Layout) -> int:
    """The width of a PTE layout's PPN: 44 bits (Sv39's PTE), 22 (Sv32's PPN[1] and PPN[0])."""
    return sum(f.width for f in layout.fields if f.name.startswith("PPN"))


def _page_address(pa: int, layout: Layout) -> int:
    """`pa` checked to be what a PPN field of `layout` can name: 4 KiB aligned, below 2**56 (Sv32: 2**34);
    no silent truncation."""
    if type(pa) is not int:
        pa = args.integer(pa, "physical address")
    if not 0 <= pa < 1 << (_ppn_bits(layout) + PAGE_SHIFT):
        raise InvalidAddress(f"{pa:#x} does not fit a PTE's {_ppn_bits(layout)}-bit PPN")
    if pa % (1 << PAGE_SHIFT):
        raise NotAligned(f"PA {pa:#x} is not 4 KiB aligned")
    return pa


def pte_paddr(raw: int) -> int:
    """The physical address a PTE's PPN field names."""
    return (raw & PPN_MASK) >> PPN_SHIFT << PAGE_SHIFT

AdPolicy = Literal["preset", "all", "hardware"]
_FLAGS_OF_VRWXU = np.array([0 if not k & V else sum(f.value for bit, f in ((R, MappingFlags.READ),
                            (W, MappingFlags.WRITE), (X, MappingFlags.EXECUTE), (U, MappingFlags.USER)) if k & bit)
                            for k in range((V | R | W | X | U) + 1)], dtype=np.uint64)
"""The MappingFlags of a PTE's V, R, W, X, U bits (none when V=0)."""


@dataclass(frozen=True)
class RiscvCodec(RememberedLeaves, NoPointerRights):
    """MappingFlags ⇄ RISC-V PTE bits, with the encoding choices described in the module docstring."""

    svpbmt: bool = False
    ad: AdPolicy = "preset"
    global_kernel: bool = False
    gstage: bool = False
    pte: Layout = PTE                 # the entries' declared layout: PTE, or PTE32 for Sv32 and Sv32x4

    def __post_init__(self) -> None:
        if self.svpbmt and not _has(self.pte, "PBMT"):
            raise InvalidArgument(f"{self.pte.name}s have no PBMT field: Svpbmt is an RV64 extension")

    def layout_for(self, kind: EntryKind, span: int) -> Layout:
        """One PTE layout for every kind (a pointer is a PTE with R=W=X=0): `pte`."""
        return self.pte

    def memory_type_np(self, raw: Word, huge: bool) -> Small:
        """PBMT with Svpbmt (`PBMT_MEMORY_TYPE`); without it the PMAs decide (`MemoryType.DEFAULT`)."""
        if not self.svpbmt:
            return lanes.full(raw, MemoryType.DEFAULT, np.uint8)
        return lanes.take(PBMT_MEMORY_TYPE, PTE.extract(raw, "PBMT"))

    @property
    def supported_flags(self) -> MappingFlags:
        base = MappingFlags.READ | MappingFlags.WRITE | MappingFlags.EXECUTE | MappingFlags.USER
        return base | MappingFlags.DEVICE | MappingFlags.UNCACHED if self.svpbmt else base

    def _encode(self, flags: MappingFlags, huge: bool) -> int:
        """The non-address bits of a leaf with `flags` (the same at every level)."""
        return _leaf_bits(self, flags)

    def new_page(self, pa: int, flags: MappingFlags, huge: bool) -> int:
        """A leaf mapping the 4 KiB-aligned `pa` (below 2**56) with `flags`."""
        return self.attributes(flags, huge) | ppn_field(_page_address(pa, self.pte))

    def new_page_np(self, pa: U64, flags: MappingFlags, huge: bool) -> U64:
        out: U64 = pa >> np.uint64(PAGE_SHIFT)             # in place from here: one new column, not four
        out <<= np.uint64(PPN_SHIFT)
        out &= np.uint64(PPN_MASK)
        out |= np.uint64(self.attributes(flags, huge))
        return out

    def new_table(self, pa: int) -> int:
        return V | ppn_field(_page_address(pa, self.pte))

    def is_present_np(self, raw: Word) -> Flag:
        out: Flag = (raw & V) != 0
        return out

    def is_leaf_np(self, raw: Word, last: bool) -> Flag:
        out: Flag = ((raw & V) != 0) & ((raw & (R | X)) != 0)
        return out

    def is_table_np(self, raw: Word, last: bool) -> Flag:
        out: Flag = ((raw & V) != 0) & ((raw & (R | W | X)) == 0) & (not last)
        return out

    def paddr_np(self, raw: Word, huge: bool) -> Word:
        return (raw & PPN_MASK) >> PPN_SHIFT << PAGE_SHIFT

    def flags_np(self, raw: Word, huge: bool) -> Word:
        """R/W/X/U of valid entries by one lookup of the V, R, W, X, U bits, and the memory type's flags."""
        out = lanes.take(_FLAGS_OF_VRWXU, raw & (V | R | W | X | U))
        if self.svpbmt:
            out = out | memory_type_flags(self.memory_type_np(raw, huge)) * lanes.u64(lanes.bit(raw, V))
        return out

    def with_paddr_np(self, raw: U64, pa: U64, huge: bool) -> U64:
        return PTE.set_np(raw, "PPN", pa >> np.uint64(PAGE_SHIFT))

    def demote(self, raw: int, child_huge: bool) -> int:
        return raw  # the same PTE bits mean the same thing at every level

    def letters(self, raw: int, huge: bool) -> str:
        """Linux riscv ptdump order (arch/riscv/mm/ptdump.c, pte_bits[]): N, memory type, RSW, then D A G U
        X W R V (letter or '.'); before the letters, the reserved bits 60:54 as `RES(xx)` when any is set
        (Linux's ptdump does not show them). An Sv32 PTE has no N, PBMT or reserved bits, and RV32 Linux
        prints no N or MT column (they are CONFIG_64BIT's): RSW, then the letters."""
        rsw = PTE.get(raw, "RSW")
        flags = " ".join(ch if raw & PTE.mask(ch) else "." for ch in "DAGUXWRV")
        soft = f"RSW({rsw})" if rsw else "  ..  "
        if not _has(self.pte, "N"):
            return f"{soft} {flags}"
        mt = ("  ..  ", "MT(NC)", "MT(IO)", "MT(??)")[PTE.get(raw, "PBMT")]
        res = PTE.get(raw, "Reserved")
        return f"{'N' if raw & PTE.mask('N') else '.'} {mt} {soft} " + (f"RES({res:02x}) " if res else "") + flags


def _leaf_bits(codec: RiscvCodec, flags: MappingFlags) -> int:
    """`RiscvCodec.attributes` of checked flags."""
    if not flags:
        return 0
    if flags & MappingFlags.WRITE and not flags & MappingFlags.READ:
        raise InvalidFlags(f"RISC-V cannot encode {flags!r}: W=1 with R=0 is a reserved encoding")
    if not flags & (MappingFlags.READ | MappingFlags.EXECUTE):
        raise InvalidFlags(f"RISC-V cannot encode {flags!r} as a leaf: it needs R or X "
                           "(R=W=X=0 means a pointer to the next level)")
    bits = V
    bits |= R if flags & MappingFlags.READ else 0
    bits |= W if flags & MappingFlags.WRITE else 0
    bits |= X if flags & MappingFlags.EXECUTE else 0
    bits |= U if flags & MappingFlags.USER else 0
    if codec.gstage:
        bits |= U
    elif codec.global_kernel and not flags & MappingFlags.USER:
        bits |= G
    if codec.ad == "all":
        bits |= A | D
    elif codec.ad == "preset":
        bits |= A | (D if flags & MappingFlags.WRITE else 0)
    if codec.svpbmt:
        if flags & MappingFlags.DEVICE:
            bits = PTE.set(bits, "PBMT", PBMT_IO)
        elif flags & MappingFlags.UNCACHED:
            bits = PTE.set(bits, "PBMT", PBMT_NC)
    return bits


SPEC = RiscvCodec()
ARCEOS = RiscvCodec(ad="all")
GSTAGE = RiscvCodec(gstage=True)
SPEC32 = RiscvCodec(pte=PTE32)
GSTAGE32 = RiscvCodec(gstage=True, pte=PTE32)
