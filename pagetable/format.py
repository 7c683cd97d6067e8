"""`PagingFormat`: the shape of one translation mode, and the `EntryCodec` interface of its entries.

A format (page_table_multiarch's `PagingMetaData`, generalised) says how many levels a walk has, which VA
bits index each level (9 for 4K granules, 11 for an Sv39x4 root, 13 for 64K granules), which levels may
hold leaves and of what size, how wide VAs and PAs may be, and which rule makes a VA canonical. The entry
codec (page_table_multiarch's `GenericPTE`, vectorised) turns `MappingFlags` and PAs into raw entries and
back; a level whose entries have another format (x86 PAE's PDPTEs) names its own codec (`PagingFormat.codecs`
gives each depth's). The generic `PageTable` and the walker loop know an architecture only through these
objects.

Levels are stored root first; `depth` 0 is the root. Each `Level` also carries the manual's own number for
it (`arch_level`: RISC-V's i, AArch64's lookup level, x86's 4..1), which is what users see.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from . import args
from .errors import InvalidAddress, NotAligned
from .flags import MappingFlags, PageSize
from .lanes import Flag, Small, Word
from .layout import Layout

U64 = npt.NDArray[np.uint64]
Bool = npt.NDArray[np.bool_]


class EntryKind(enum.Enum):
    """What an entry is, which decides its bit layout on some architectures: x86's PDE with PS=1 has PAT at
    bit 12 where a 4 KiB PTE has it at bit 7; AArch64's table, block and page descriptors differ."""

    TABLE = "table"        # points at a next-level table
    BLOCK = "block"        # a leaf above the last level (superpage, huge page)
    PAGE = "page"          # a leaf at the last level


class EntryCodec(Protocol):
    """Encode and decode one architecture's table entries (scalar and numpy). A codec is built with the
    register context its decoding needs (RISC-V: Svpbmt on or off; AArch64: MAIR; x86: IA32_PAT). The
    decoding methods (`memory_type_np`, `is_*_np`, `paddr_np`, `flags_np`) take a column of raw entries or
    one raw entry as an int (`lanes`), so one entry costs no numpy call."""

    def layout_for(self, kind: EntryKind, span: int) -> Layout:
        """The declared bit layout of an entry of `kind` at a level whose entries each cover `span` bytes
        (`Level.span`: what a block or page there maps). x86's 1 GiB and 2 MiB pages, and AArch64's blocks
        of each level and granule, place their output address differently; the span names them whatever
        the number of levels above."""
        ...

    def memory_type_np(self, raw: Word, huge: bool) -> Small:
        """The `translation.MemoryType` value of each leaf entry, resolved through the codec's registers."""
        ...

    @property
    def supported_flags(self) -> MappingFlags:
        """The MappingFlags this encoding can express (others are not encoded and not decoded)."""
        ...

    def new_page(self, pa: int, flags: MappingFlags, huge: bool) -> int:
        """A leaf entry (page, or block/superpage when `huge`) mapping `pa` with `flags`."""
        ...

    def new_page_np(self, pa: U64, flags: MappingFlags, huge: bool) -> U64:
        """Vectorised `new_page` for one set of flags."""
        ...

    def new_table(self, pa: int) -> int:
        """A non-leaf entry pointing at the next-level table at `pa`."""
        ...

    @property
    def pointer_rights(self) -> bool:
        """Whether table entries carry access rights that the walk ANDs with the levels below (x86's R/W,
        U/S and XD, EPT's R/W/X): then `PageTable` gives each table entry the rights the entries of its
        table need and no more (`pointer_needs`, `fit_pointer`)."""
        ...

    def pointer_needs(self, raw: Word) -> Word:
        """What each entry (page or table entry; 0 if not present) needs from the table entry above it, as
        grants in the codec's own bits (`fit_pointer` reads them)."""
        ...

    def fit_pointer(self, pointer: Word, grants: Word) -> Word:
        """Table entries with exactly the rights `grants` (an OR of `pointer_needs`) ask for."""
        ...

    def is_present_np(self, raw: Word) -> Flag:
        """The architecture's valid/present bit."""
        ...

    def is_leaf_np(self, raw: Word, last: bool) -> Flag:
        """Present entries that map memory (page at the last level, block/superpage above it)."""
        ...

    def is_table_np(self, raw: Word, last: bool) -> Flag:
        """Present entries that point at a next-level table (never at the last level)."""
        ...

    def paddr_np(self, raw: Word, huge: bool) -> Word:
        """The output address field (table or leaf base)."""
        ...

    def flags_np(self, raw: Word, huge: bool) -> Word:
        """The `MappingFlags` value of each leaf entry (0 for non-present ones)."""
        ...

    def with_paddr_np(self, raw: U64, pa: U64, huge: bool) -> U64:
        """Entries equal to `raw` except for the output address."""
        ...

    def demote(self, raw: int, child_huge: bool) -> int:
        """A huge leaf's attributes re-expressed one level down (for splitting a huge page)."""
        ...

    def letters(self, raw: int, huge: bool) -> str:
        """The attribute bits as a short fixed-width string for listings."""
        ...


class RememberedLeaves:
    """A codec's `attributes(flags, huge)`, the non-address bits of a leaf with `flags`, made by its
    `_encode(flags, huge)` once per flag set and size: they are few, and encoding them is most of the cost
    of mapping one page. (A mixin for frozen dataclass codecs: the memory is a cached per-codec dict.)"""

    def _encode(self, flags: MappingFlags, huge: bool) -> int:
        raise NotImplementedError

    def attributes(self, flags: MappingFlags, huge: bool) -> int:
        """The non-address bits of a leaf with `flags` (a block/superpage when `huge`)."""
        flags = args.flags(flags)
        bits = self._attributes.get((flags, huge))
        if bits is None:
            bits = self._attributes[flags, huge] = self._encode(flags, huge)
        return bits

    @functools.cached_property
    def _attributes(self) -> dict[tuple[MappingFlags, bool], int]:
        return {}


class NoPointerRights:
    """The pointer-rights part of a codec whose table entries carry no access rights (RISC-V: a pointer is
    V=1 with R=W=X=0; the leaf alone decides)."""

    pointer_rights = False

    def pointer_needs(self, raw: Word) -> Word:
        return 0

    def fit_pointer(self, pointer: Word, grants: Word) -> Word:
        return pointer


class Extension(enum.Enum):
    """What the VA bits above a format's width must be: copies of its top bit (RISC-V satp, x86), zero
    (guest-physical addresses, AArch64 TTBR0) or one (AArch64 TTBR1)."""

    SIGN = "sign"
    ZERO = "zero"
    ONES = "ones"


@dataclass(frozen=True)
class Level:
    """One lookup level: which VA bits index it and what a leaf there maps."""

    name: str               # Linux's name for this level in ptdump listings (PGD, P4D, PUD, PMD, PTE)
    arch_level: int         # the manual's number for this level
    index_lsb: int          # VA bit where this level's index starts
    index_bits: int         # width of the index (9, or wider at a concatenated/x4 root)
    leaf: bool              # whether a leaf (page/superpage/block) may sit here
    codec: EntryCodec | None = None     # this level's own entry codec, where its entries are not the
                                        # format's (x86 PAE's PDPTEs: no rights, never a page); None: the format's

    @property
    def span(self) -> int:
        """Bytes of VA space one entry at this level covers."""
        return 1 << self.index_lsb

    @property
    def entries(self) -> int:
        return 1 << self.index_bits


@dataclass(frozen=True)
class PagingFormat:
    """One translation mode: levels, address widths, canonical rule and entry codec."""

    name: str
    levels: tuple[Level, ...]
    va_bits: int
    pa_bits: int
    codec: EntryCodec
    extension: Extension = Extension.SIGN   # what the VA bits above va_bits must be
    entry_size: int = 8

    # ---------------------------------------------------------------- shape
    @property
    def page_shift(self) -> int:
        return self.levels[-1].index_lsb

    @property
    def page_size(self) -> int:
        return 1 << self.page_shift

    @property
    def root_size(self) -> int:
        """Bytes of the root table (also its required alignment)."""
        return self.levels[0].entries * self.entry_size

    def table_size(self, depth: int) -> int:
        return self.levels[depth].entries * self.entry_size

    @property
    def depth_count(self) -> int:
        return len(self.levels)

    def page_sizes(self) -> tuple[PageSize, ...]:
        """Leaf sizes this format can map, smallest first."""
        return tuple(sorted(PageSize(lv.span) for lv in self.levels if lv.leaf))

    def depth_for_size(self, size: int) -> int:
        """The depth whose leaves have `size` bytes; raises NotAligned for a size the format cannot map."""
        depth = self._leaf_depths.get(size) if type(size) is int else None    # a float never matches
        if depth is not None:
            return depth
        size = args.integer(size, "page size")
        if size in self._leaf_depths:
            return self._leaf_depths[size]
        sizes = ", ".join(s.label() for s in self.page_sizes())
        raise NotAligned(f"{self.name} has no {size:#x}-byte pages (it maps {sizes})")

    @functools.cached_property
    def _leaf_depths(self) -> dict[int, int]:
        """Leaf size -> the depth that maps it."""
        return {lv.span: depth for depth, lv in enumerate(self.levels) if lv.leaf}

    @functools.cached_property
    def codecs(self) -> tuple[EntryCodec, ...]:
        """The entry codec of each depth: the level's own (`Level.codec`) or else the format's `codec`."""
        return tuple(lv.codec or self.codec for lv in self.levels)

    @functools.cached_property
    def pointer_rights(self) -> bool:
        """Whether the table entries of some level carry access rights (`EntryCodec.pointer_rights`)."""
        return any(c.pointer_rights for c in self.codecs[:-1])

    def with_codec(self, codec: EntryCodec) -> PagingFormat:
        """The same mode with another entry encoding (e.g. Svpbmt on, or the ArceOS profile); levels with a
        codec of their own keep it."""
        return dataclasses.replace(self, codec=codec)

    # ------------------------------------------------------------ addresses
    @property
    def va_mask(self) -> int:
        return (1 << self.va_bits) - 1

    @property
    def _high(self) -> int:
        return ((1 << 64) - 1) ^ self.va_mask

    def is_canonical(self, va: int) -> bool:
        """True for a VA this format translates (InvalidArgumentType for a VA that is not an integer)."""
        va = args.integer(va, "virtual address")
        return 0 <= va < 1 << 64 and bool(self.canonical_np(va))

    def canonical_np(self, va: Word) -> Flag:
        """`is_canonical` for a column of VAs, or unchecked for one (`lanes`)."""
        shift, low, high = self._tops
        top = va >> shift
        ok: Flag = (top == low) | (top == high)
        return ok

    @functools.cached_property
    def _tops(self) -> tuple[int, int, int]:
        """The canonical rule as data: a VA is canonical when the bits from `shift` up equal `low` or `high`
        (SIGN: bits 63..va_bits-1 all 0 or all 1; ZERO: bits 63..va_bits all 0; ONES: all 1)."""
        if self.extension is Extension.SIGN:
            return self.va_bits - 1, 0, (1 << (65 - self.va_bits)) - 1
        want = 0 if self.extension is Extension.ZERO else (1 << (64 - self.va_bits)) - 1
        return self.va_bits, want, want

    def check_va(self, va: int) -> int:
        """`va` as an int, or InvalidAddress if this format cannot translate it."""
        if type(va) is int and 0 <= va < args.ADDR_LIMIT and self.canonical_np(va):   # the common case
            return va
        if not self.is_canonical(va):
            rule = {Extension.SIGN: f"bits 63..{self.va_bits - 1} must all equal bit {self.va_bits - 1}",
                    Extension.ZERO: f"it must be below 2**{self.va_bits}",
                    Extension.ONES: f"bits 63..{self.va_bits} must all be 1"}[self.extension]
            raise InvalidAddress(f"{int(va):#x} is not a valid {self.name} virtual address ({rule})")
        return int(va)

    def check_pa(self, pa: int) -> int:
        """`pa` as an int, or InvalidAddress if it is negative or wider than the format's PAs."""
        if type(pa) is not int:
            pa = args.integer(pa, "physical address")
        if not 0 <= pa < 1 << self.pa_bits:
            raise InvalidAddress(f"{pa:#x} is wider than {self.name}'s {self.pa_bits}-bit physical addresses")
        return pa

    def extend(self, va: int) -> int:
        """A VA truncated to `va_bits`, with the bits above as the format requires (`extension`)."""
        va &= self.va_mask
        if self.extension is Extension.ONES or (self.extension is Extension.SIGN and va >> (self.va_bits - 1)):
            va |= self._high
        return va

    def extend_np(self, va: U64) -> U64:
        va = va & np.uint64(self.va_mask)
        if self.extension is Extension.ONES:
            return va | np.uint64(self._high)
        if self.extension is Extension.SIGN:
            neg = (va >> np.uint64(self.va_bits - 1)) != 0
            va = np.where(neg, va | np.uint64(self._high), va)
        return va

    def index(self, va: int, depth: int) -> int:
        lv = self.levels[depth]
        return (va >> lv.index_lsb) & (lv.entries - 1)

    def index_np(self, va: U64, depth: int) -> U64:
        lv = self.levels[depth]
        return (va >> np.uint64(lv.index_lsb)) & np.uint64(lv.entries - 1)
