"""x86-64 paging-structure entries (4-level and 5-level paging).

Intel SDM Vol. 3A, section 4.5 "4-Level Paging and 5-Level Paging", Tables 4-15 to 4-20 (the formats of a
PML5E, PML4E, PDPTE, PDE and PTE), and section 4.9.2 "Paging and Memory Typing When the PAT is Supported";
AMD APM Vol. 2, section 5.3 "Long-Mode Page Translation" and 7.8 "Page-Attribute Table Mechanism".

Four layouts cover the five entry kinds, each declared once:
- `TABLE_ENTRY`: an entry that references the next paging structure — every PML5E and PML4E, and a PDPTE or
  PDE with PS=0. Bit 7 is PS: it must be 0 here (in a PML5E/PML4E it is reserved: #PF with RSVD).
- `PDPTE_1G` and `PDE_2M`: an entry with PS=1 that maps a 1 GiB or 2 MiB page (PAT at bit 12; the bits
  between PAT and the address are reserved).
- `PTE_4K`: an entry that maps a 4 KiB page (PAT at bit 7, where the others have PS).
Every layout's address field runs to bit 51; the bits from MAXPHYADDR up to 51 are reserved, which the walk
rules check (the CPU's MAXPHYADDR is a walk parameter, not an entry property). The builders
(`table_layout`, `large_page_layout`, `pte_layout`, `page_fields`, `COMMON_FIELDS`) also declare PAE
paging's entries (`pae`) and the fields 32-bit paging's share (`paging32`).

Encoding choices (`X86Codec`), documented in docs/x86_64.md:
- A present page is always readable (x86 paging has no write-only or execute-only page): flags without
  READ have no encoding (`InvalidFlags`), except empty flags, which give a not-present (P=0) placeholder
  that keeps the address, as page_table_multiarch does.
- WRITE → R/W=1, USER → U/S=1, no EXECUTE → XD=1 (which needs EFER.NXE=1: a codec with `nxe=False` refuses
  non-executable flags, since XD is then a reserved bit).
- Memory types through the PAT: the entry's PAT, PCD and PWT bits index IA32_PAT (`pat`, default the reset
  value 0x0007040600070406: WB, WT, UC-, UC, WB, WT, UC-, UC). DEVICE → UC (strong uncacheable), UNCACHED →
  UC-, neither → WB, each at the lowest PAT index that holds it; decoding gives the memory type of the
  index, so DEVICE and UNCACHED survive a round trip and WC/WT/WP pages decode to their own memory types.
- G is set on non-USER leaves with `global_kernel=True`; A and D are left for the hardware to set.
- A table entry has the rights the entries of its table need and no more (the walk ANDs every level's):
  R/W where one of them is writable, U/S where one is user, XD=1 (with EFER.NXE) unless one is
  executable; `PageTable` keeps them so as pages come and go (`pointer_needs`, `fit_pointer`). The ArceOS
  profile keeps the crate's P|R/W|U/S tables.
- AMD nested paging (`nested=True`, `NESTED`): every nested access is a user access (APM Vol. 2, 15.25.5),
  so every entry has U/S=1 and USER is not a flag of its own.
`ARCEOS` reproduces page_table_multiarch 0.6.1's `X64PTE` bytes exactly: READ implied, DEVICE and UNCACHED
both PCD|PWT (which the crate decodes as UNCACHED only).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ... import args, lanes
from ...errors import InvalidAddress, InvalidArgument, InvalidFlags, NotAligned
from ...flags import MappingFlags
from ...format import EntryKind, RememberedLeaves
from ...lanes import Flag, Small, Word
from ...layout import Field, Layout
from ...translation import MemoryType, memory_type_flags

U64 = npt.NDArray[np.uint64]

COMMON_FIELDS = (
    Field("P", 0, 1, "present"),
    Field("R/W", 1, 1, "read/write: writes allowed (supervisor writes with CR0.WP=0 regardless)"),
    Field("U/S", 2, 1, "user/supervisor: user-mode accesses allowed"),
    Field("PWT", 3, 1, "page-level write-through (a PAT index bit for a page)"),
    Field("PCD", 4, 1, "page-level cache disable (a PAT index bit for a page)"),
    Field("A", 5, 1, "accessed"),
)
"""Bits 5:0, the same in every x86 paging entry that references a table or maps a page (32-bit, PAE,
4-level and 5-level paging)."""
_XD = Field("XD", 63, 1, "execute-disable (with EFER.NXE=1; reserved otherwise)")
_PK = Field("PK", 59, 4, "protection key (with CR4.PKE for user pages, CR4.PKS for supervisor pages)")


def address_field(lsb: int) -> Field:
    """The address field of an x86 paging or EPT entry whose address starts at bit `lsb`."""
    return Field("ADDR", lsb, 52 - lsb, f"physical address bits 51:{lsb} (bits MAXPHYADDR..51 reserved)")


def page_fields(large: bool) -> list[Field]:
    """The fields of an entry that maps a page between A and the address: D, G and PAT — at bit 12 in an
    entry with PS=1 (`large`: a 4M/2M/1G page), at bit 7 in a PTE (where the others have PS)."""
    dirty, global_ = Field("D", 6, 1, "dirty"), Field("G", 8, 1, "global (with CR4.PGE)")
    if large:
        return [dirty, Field("PS", 7, 1, "page size: 1"), global_, Field("PAT", 12, 1, "PAT index bit 2")]
    return [dirty, Field("PAT", 7, 1, "PAT index bit 2"), global_]


def table_layout(entries: str, ps: str, high: list[Field], source: str) -> Layout:
    """A 64-bit entry that references the next paging structure: PS (bit 7, documented by `ps`) is 0, the
    address runs from bit 12, `high` declares bits 62:52, XD is bit 63."""
    return Layout(f"x86 {entries} (references a table)", 64, [*COMMON_FIELDS, Field("PS", 7, 1, ps),
                                                             address_field(12), *high, _XD], source)


def large_page_layout(entry: str, size: str, address_lsb: int, high: list[Field], table: str) -> Layout:
    """The 64-bit entry with PS=1 that maps a page of `size` (PAT at bit 12, reserved bits up to the address
    at `address_lsb`; `high` declares bits 62:52)."""
    return Layout(f"x86 {entry} (maps a {size} page)", 64, [
        *COMMON_FIELDS,
        *page_fields(True),
        Field("RSVD", 13, address_lsb - 13, "reserved (must be 0)"),
        address_field(address_lsb),
        *high,
        _XD,
    ], f"Intel SDM Vol. 3A, {table} ({entry} that maps a {size} page)")


def pte_layout(entry: str, high: list[Field], table: str) -> Layout:
    """The 64-bit PTE that maps a 4 KiB page (PAT at bit 7; `high` declares bits 62:52)."""
    return Layout(f"x86 {entry} (maps a 4-KByte page)", 64, [*COMMON_FIELDS, *page_fields(False), address_field(12),
                                                             *high, _XD],
                  f"Intel SDM Vol. 3A, {table} ({entry} that maps a 4-KByte page)")


TABLE_ENTRY = table_layout("PML5E/PML4E/PDPTE/PDE", "page size: 0 here (reserved in a PML5E or PML4E)", [],
                           "Intel SDM Vol. 3A, Tables 4-15 to 4-19 (entries that reference a paging structure)")
PDPTE_1G = large_page_layout("PDPTE", "1-GByte", 30, [_PK], "Table 4-17")
PDE_2M = large_page_layout("PDE", "2-MByte", 21, [_PK], "Table 4-18")
PTE_4K = pte_layout("PTE", [_PK], "Table 4-20")

P, RW, US, PWT, PCD, A = (PTE_4K.mask(n) for n in ("P", "R/W", "U/S", "PWT", "PCD", "A"))
D, G, XD = PTE_4K.mask("D"), PTE_4K.mask("G"), PTE_4K.mask("XD")
PS = TABLE_ENTRY.mask("PS")
PAT_4K, PAT_HUGE = PTE_4K.mask("PAT"), PDE_2M.mask("PAT")
ADDR = TABLE_ENTRY.mask("ADDR")                        # bits 51:12
_RIGHTS = RW | US | XD                                  # what a table entry narrows (SDM 4.6)
_ALL_BITS = (1 << 64) - 1
HUGE_ADDR = ADDR & ~PAT_HUGE                           # bits 51:13: a 2M/1G page's (bit 12 is its PAT)
PAGE_SHIFT = 12
_PA_LIMIT = 1 << 52

PAT_RESET = 0x0007_0406_0007_0406
"""IA32_PAT at reset (SDM Vol. 3A, Table 12-12): PA0..PA7 = WB, WT, UC-, UC, WB, WT, UC-, UC."""
PAT_TYPES = {0: MemoryType.UC, 1: MemoryType.WC, 4: MemoryType.WT, 5: MemoryType.WP, 6: MemoryType.WB,
             7: MemoryType.UC_MINUS}
"""An IA32_PAT entry's encoding -> its memory type (2 and 3 are reserved)."""


def pat_entries(pat: int) -> tuple[MemoryType, ...]:
    """The memory types of IA32_PAT's eight entries PA0..PA7 (InvalidArgument for a reserved encoding, which
    the CPU refuses to load: WRMSR #GP)."""
    pat = args.address(pat, "IA32_PAT")
    out = []
    for k in range(8):
        code = (pat >> (8 * k)) & 0xFF
        if code not in PAT_TYPES:
            raise InvalidArgument(f"IA32_PAT {pat:#018x}: PA{k} = {code:#x} is a reserved memory type")
        out.append(PAT_TYPES[code])
    return tuple(out)


def _pat_index(raw: Word, huge: bool) -> Word:
    """An entry's PAT index: PAT·4 + PCD·2 + PWT (PAT at bit 12 in a 2M/1G page, bit 7 in a PTE)."""
    return ((raw >> 3) & 3) | ((raw >> (10 if huge else 5)) & 4)


def _flag_bits(raw: Word, huge: bool) -> Word:
    """The bits an entry's MappingFlags depend on, packed into 7: P, R/W, U/S, PWT, PCD (bits 4:0, in place),
    PAT (bit 5) and XD (bit 6)."""
    return (raw & 0x1F) | ((raw >> (7 if huge else 2)) & 0x20) | ((raw >> 57) & 0x40)


def pat_index_bits(index: int, huge: bool) -> int:
    """An entry's PWT, PCD and PAT bits for PAT index `index` (PAT at bit 12 in a 2M/1G page, 7 in a PTE)."""
    return (PWT if index & 1 else 0) | (PCD if index & 2 else 0) | ((PAT_HUGE if huge else PAT_4K) if index & 4 else 0)


@dataclass(frozen=True)
class X86Codec(RememberedLeaves):
    """MappingFlags ⇄ x86-64 paging-entry bits, with the encoding choices in the module docstring, for the
    IA32_PAT value `pat` and EFER.NXE `nxe`."""

    pat: int = PAT_RESET
    nxe: bool = True
    global_kernel: bool = False
    arceos: bool = False
    nested: bool = False                # AMD nested paging's tables: U/S=1 in every entry (`NESTED`)

    def layout_for(self, kind: EntryKind, span: int) -> Layout:
        """`TABLE_ENTRY` for a table reference; a page's layout by the size it maps (a PDPTE's 1 GiB, a
        PDE's 2 MiB, a PTE's 4 KiB)."""
        if kind is EntryKind.TABLE:
            return TABLE_ENTRY
        return {1 << 30: PDPTE_1G, 1 << 21: PDE_2M}.get(span, PTE_4K)

    @functools.cached_property
    def _types(self) -> npt.NDArray[np.uint8]:
        """The memory type of each PAT index, 0-7."""
        return np.array(pat_entries(self.pat), dtype=np.uint8)

    def memory_type_np(self, raw: Word, huge: bool) -> Small:
        """The memory type of each page: IA32_PAT's entry at the index (PAT, PCD, PWT)."""
        return lanes.take(self._types, _pat_index(raw, huge))

    def _index_of(self, memtype: MemoryType) -> int:
        """The lowest PAT index whose entry is `memtype` (InvalidFlags when IA32_PAT has none)."""
        types = pat_entries(self.pat)
        if memtype not in types:
            raise InvalidFlags(f"IA32_PAT {self.pat:#018x} has no {memtype.label} entry")
        return types.index(memtype)

    @property
    def supported_flags(self) -> MappingFlags:
        flags = MappingFlags.READ | MappingFlags.WRITE | MappingFlags.EXECUTE | MappingFlags.DEVICE | \
            MappingFlags.UNCACHED
        return flags if self.nested else flags | MappingFlags.USER

    def _encode(self, flags: MappingFlags, huge: bool) -> int:
        """The non-address bits of a page with `flags` (a 2M/1G page when `huge`: PS=1, PAT at bit 12)."""
        if not flags:
            return 0
        if not flags & MappingFlags.READ and not self.arceos:
            raise InvalidFlags(f"x86 paging cannot encode {flags!r}: a present page is always readable")
        bits = P | (PS if huge else 0)
        bits |= RW if flags & MappingFlags.WRITE else 0
        bits |= US if flags & MappingFlags.USER or self.nested else 0
        if not flags & MappingFlags.EXECUTE:
            if not self.nxe:
                raise InvalidFlags(f"x86 paging cannot encode {flags!r} with EFER.NXE=0: XD is then reserved")
            bits |= XD
        if self.arceos:
            return bits | (PWT | PCD if flags & (MappingFlags.DEVICE | MappingFlags.UNCACHED) else 0)
        if self.global_kernel and not flags & MappingFlags.USER:
            bits |= G
        memtype = MemoryType.UC if flags & MappingFlags.DEVICE else \
            MemoryType.UC_MINUS if flags & MappingFlags.UNCACHED else MemoryType.WB
        return bits | pat_index_bits(self._index_of(memtype), huge)

    def new_page(self, pa: int, flags: MappingFlags, huge: bool) -> int:
        """A page mapping `pa` (4 KiB aligned; 2 MiB aligned when `huge`, so bit 12 stays the PAT bit)."""
        return self.attributes(flags, huge) | page_address(pa, huge)

    def new_page_np(self, pa: U64, flags: MappingFlags, huge: bool) -> U64:
        out: U64 = pa & np.uint64(HUGE_ADDR if huge else ADDR)
        out |= np.uint64(self.attributes(flags, huge))           # in place: one new column, not two
        return out

    def new_table(self, pa: int) -> int:
        return P | RW | US | page_address(pa, False)

    @property
    def pointer_rights(self) -> bool:
        """R/W, U/S and XD in a table entry narrow the levels below (SDM 4.6); the ArceOS profile keeps the
        crate's permissive P|R/W|U/S tables."""
        return not self.arceos

    def pointer_needs(self, raw: Word) -> Word:
        """R/W and U/S as the entry has them, and XD's position set where it is executable (XD=0)."""
        return ((raw & (RW | US)) | (~raw & XD)) * (raw & P)          # P is bit 0: 0 or 1

    def fit_pointer(self, pointer: Word, grants: Word) -> Word:
        """R/W and U/S where some entry below needs them (U/S always in nested paging), XD=1 (with EFER.NXE)
        unless one is executable."""
        out = (pointer & (_ALL_BITS ^ _RIGHTS)) | (grants & (RW | US)) | (US if self.nested else 0)
        if self.nxe:
            out = out | lanes.u64(lanes.not_(lanes.bit(grants, XD))) * XD
        return out

    def is_present_np(self, raw: Word) -> Flag:
        out: Flag = (raw & P) != 0
        return out

    def is_leaf_np(self, raw: Word, last: bool) -> Flag:
        present: Flag = (raw & P) != 0
        if last:                                         # every present PTE maps a page: PS is not read
            return present
        out: Flag = present & ((raw & PS) != 0)
        return out

    def is_table_np(self, raw: Word, last: bool) -> Flag:
        out: Flag = ((raw & P) != 0) & ((raw & PS) == 0) & (not last)
        return out

    def paddr_np(self, raw: Word, huge: bool) -> Word:
        """The address field: bits 51:12; above the last level, for an entry with PS=1 (a 2M/1G page), bits
        51:13 (its bit 12 is the PAT bit)."""
        return raw & self._address_mask(raw, huge)

    def _address_mask(self, raw: Word, huge: bool) -> Word:
        """The address bits of each entry (`paddr_np`)."""
        if not huge:
            return ADDR
        return ADDR ^ ((raw & PS) << 5)                  # PS=1 (bit 7): not bit 12, the PAT bit

    def flags_np(self, raw: Word, huge: bool) -> Word:
        """READ for every present page; WRITE, USER and EXECUTE from R/W, U/S and XD (EXECUTE always with
        EFER.NXE=0); DEVICE/UNCACHED from the memory type: one lookup of the bits that decide them
        (`_flag_bits`) in the table of their 128 values (`_flag_tables`)."""
        return lanes.take(self._flag_tables[huge], _flag_bits(raw, huge))

    @functools.cached_property
    def _flag_tables(self) -> tuple[U64, U64]:
        """For a PTE and for a 2M/1G page, the MappingFlags of each value of `_flag_bits` (P, R/W, U/S, PWT
        and PCD in bits 4:0, PAT in bit 5, XD in bit 6)."""
        tables = np.zeros((2, 128), dtype=np.uint64)
        for index in range(128):
            if not index & P:
                continue
            out = MappingFlags.READ | (MappingFlags.WRITE if index & RW else 0) | \
                (MappingFlags.USER if index & US and not self.nested else 0)
            if not self.nxe or not index & 0x40:
                out |= MappingFlags.EXECUTE
            if self.arceos:                          # the crate reads PCD as UNCACHED, nothing else
                out |= MappingFlags.UNCACHED if index & PCD else 0
            else:
                out |= memory_type_flags(int(self._types[(index >> 3) & 3 | (index & 0x20) >> 3]))
            tables[:, index] = out                   # the same bits, wherever the page keeps its PAT bit
        return tables[0], tables[1]

    def with_paddr_np(self, raw: U64, pa: U64, huge: bool) -> U64:
        field = np.asarray(self._address_mask(raw, huge), dtype=np.uint64)
        out: U64 = (raw & ~field) | (pa & field)
        return out

    def demote(self, raw: int, child_huge: bool) -> int:
        """A 1G/2M page's attributes as a 2M page (`child_huge`: the same bits) or a 4 KiB PTE (PS cleared,
        the PAT bit moved from bit 12 to bit 7)."""
        if child_huge:
            return raw
        return (raw & ~(PS | PAT_HUGE)) | (PAT_4K if raw & PAT_HUGE else 0)

    def letters(self, raw: int, huge: bool) -> str:
        """Linux's x86 ptdump attributes (arch/x86/mm/dump_pagetables.c, printk_prot): USR, RW/ro, PWT, PCD,
        PSE, PAT, GLB, NX/x."""
        pat = raw & (PAT_HUGE if huge else PAT_4K)
        return " ".join(("USR" if raw & US else "   ", "RW" if raw & RW else "ro", "PWT" if raw & PWT else "   ",
                         "PCD" if raw & PCD else "   ", "PSE" if huge and raw & PS else "   ",
                         "PAT" if pat else "   ", "GLB" if raw & G else "   ", "NX" if raw & XD else "x "))


def page_address(pa: int, huge: bool) -> int:
    """`pa` checked to be what an x86 paging or EPT entry's address field can name: below 2**52, 4 KiB
    aligned (2 MiB for a huge page: bit 12 is its PAT bit, or in EPT a reserved bit)."""
    if type(pa) is not int:
        pa = args.integer(pa, "physical address")
    if not 0 <= pa < _PA_LIMIT:
        raise InvalidAddress(f"{pa:#x} does not fit an x86 entry's 52-bit physical address field")
    align = 1 << (21 if huge else PAGE_SHIFT)
    if pa % align:
        raise NotAligned(f"PA {pa:#x} is not {'2 MiB' if huge else '4 KiB'} aligned")
    return pa


SPEC = X86Codec()
ARCEOS = X86Codec(arceos=True)
NESTED = X86Codec(nested=True)
