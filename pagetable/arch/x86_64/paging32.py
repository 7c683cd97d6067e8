"""x86 32-bit paging (CR0.PG=1, CR4.PAE=0): its CR3, entry layouts and the codec of its 4-byte entries.

Intel SDM Vol. 3A, section 4.3 "32-Bit Paging": Table 4-3 (CR3), Table 4-4 (a PDE that maps a 4-MByte
page, with CR4.PSE=1), Table 4-5 (a PDE that references a page table) and Table 4-6 (a PTE that maps a
4-KByte page); section 4.1.4 (MAXPHYADDR and PSE-36) and 4.9.2 (the PAT). Bits 5:0 and the page fields
(D, G, PAT) sit where 4-level paging has them (`entry.COMMON_FIELDS`, `entry.page_fields`); there is no
XD bit, so every present page is executable. A 4 MiB page's PA bits 39:32 are in PDE bits 20:13 (PSE-36):
the low M-32 of them, where M is min(MAXPHYADDR, 40) with PSE-36 and 32 without; the others and bit 21 are
reserved (`PDE_4M` declares all eight as `ADDR_HI`: how many are reserved is a CPU property, as
MAXPHYADDR is in 4-level paging). Entries are read into uint64 columns like 8-byte ones (zero-extended).

Encoding choices (`X86Codec32`): `entry.X86Codec`'s with EFER.NXE=0 (the same bits 12:0: R/W, U/S, G, the
PAT index in PAT/PCD/PWT) and these differences:
- Flags without EXECUTE have no encoding (`InvalidFlags`): there is no XD bit to clear execution with.
- 4 MiB pages need CR4.PSE (`pse=True`); with CR4.PSE=0 a PDE's PS is ignored: every present PDE
  references a page table, and a 4 MiB page has no encoding (`InvalidFlags`).
- Page tables and 4 KiB pages lie below 4 GiB; a 4 MiB page below 2**M (`maxphyaddr`, 32 for a CPU
  without PSE-36); a wider PA is refused (`InvalidAddress`), never truncated.
- A 4 MiB not-present placeholder keeps PS=1 (ignored with P=0) so that bits 20:13 stay address bits.
- Splitting a 4 MiB page above 4 GiB is refused (`InvalidAddress`): PTEs hold 32-bit addresses.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ... import args
from ...errors import InvalidAddress, InvalidFlags, NotAligned
from ...flags import MappingFlags
from ...format import EntryKind, RememberedLeaves
from ...lanes import Flag, Small, Word
from ...layout import Field, Layout
from .entry import COMMON_FIELDS, PAT_RESET, X86Codec, page_fields

U64 = npt.NDArray[np.uint64]

CR3_32 = Layout("CR3 (32-bit paging)", 32, [
    Field("IGN_2_0", 0, 3, "ignored"),
    Field("PWT", 3, 1, "page-level write-through of the page directory"),
    Field("PCD", 4, 1, "page-level cache disable of the page directory"),
    Field("IGN_11_5", 5, 7, "ignored"),
    Field("ADDR", 12, 20, "physical address bits 31:12 of the page directory"),
], "Intel SDM Vol. 3A, Table 4-3 (Use of CR3 with 32-Bit Paging)")

_ADDR = Field("ADDR", 12, 20, "physical address bits 31:12")

PDE_TABLE32 = Layout("x86 32-bit PDE (references a page table)", 32, [
    *COMMON_FIELDS,
    Field("PS", 7, 1, "page size: 0 here with CR4.PSE=1 (ignored with CR4.PSE=0)"),
    _ADDR,
], "Intel SDM Vol. 3A, Table 4-5 (32-bit PDE that references a page table)")

PDE_4M = Layout("x86 32-bit PDE (maps a 4-MByte page)", 32, [
    *COMMON_FIELDS,
    *page_fields(True),
    Field("ADDR_HI", 13, 8, "physical address bits 39:32 (PSE-36: bits 20:M-19 reserved, M = min(MAXPHYADDR, 40))"),
    Field("RSVD", 21, 1, "reserved (must be 0)"),
    Field("ADDR", 22, 10, "physical address bits 31:22"),
], "Intel SDM Vol. 3A, Table 4-4 (32-bit PDE that maps a 4-MByte page; CR4.PSE=1)")

PTE32 = Layout("x86 32-bit PTE (maps a 4-KByte page)", 32, [*COMMON_FIELDS, *page_fields(False), _ADDR],
               "Intel SDM Vol. 3A, Table 4-6 (32-bit PTE that maps a 4-KByte page)")

P, RW, US = PTE32.mask("P"), PTE32.mask("R/W"), PTE32.mask("U/S")
PS = PDE_4M.mask("PS")
ADDR = PTE32.mask("ADDR")                               # bits 31:12: a table's or a 4 KiB page's
ADDR_4M = PDE_4M.mask("ADDR")                           # bits 31:22
ADDR_HI = PDE_4M.mask("ADDR_HI")                        # bits 20:13: PA bits 39:32
_HI_SHIFT = 32 - PDE_4M["ADDR_HI"].lsb                  # PA bit 32 is PDE bit 13
_WORD = (1 << 32) - 1
_LOW_ONLY = ADDR ^ ADDR_4M                              # bits 21:12: address bits in a PTE, not in a 4M PDE


def _scatter(pa: Word) -> Word:
    """A 4 MiB page's PA as PDE bits: 31:22 in place, 39:32 in 20:13."""
    return (pa & ADDR_4M) | ((pa >> _HI_SHIFT) & ADDR_HI)


@dataclass(frozen=True)
class X86Codec32(RememberedLeaves):
    """MappingFlags ⇄ 32-bit paging entries, with the encoding choices in the module docstring, for the
    IA32_PAT value `pat`, CR4.PSE `pse` and the CPU's MAXPHYADDR `maxphyaddr` (32 for a CPU without
    PSE-36)."""

    pat: int = PAT_RESET
    global_kernel: bool = False
    pse: bool = True
    maxphyaddr: int = 40

    def __post_init__(self) -> None:
        args.integer(self.maxphyaddr, "maxphyaddr", 32, 53)

    @property
    def pa_bits(self) -> int:
        """M of Table 4-4: the width of a 4 MiB page's PA, min(MAXPHYADDR, 40)."""
        return min(self.maxphyaddr, 40)

    @functools.cached_property
    def _x86(self) -> X86Codec:
        """The bits 12:0 this codec shares with 4-level paging's: `X86Codec` without XD."""
        return X86Codec(pat=self.pat, nxe=False, global_kernel=self.global_kernel)

    @property
    def _ps(self) -> int:
        """PS where it selects a 4 MiB page (CR4.PSE=1); nothing where it is ignored."""
        return PS if self.pse else 0

    def layout_for(self, kind: EntryKind, span: int) -> Layout:
        if kind is EntryKind.TABLE:
            return PDE_TABLE32
        return PDE_4M if span == 1 << 22 else PTE32

    def memory_type_np(self, raw: Word, huge: bool) -> Small:
        """IA32_PAT's entry at the index (PAT, PCD, PWT), PAT at bit 12 in a 4 MiB page, 7 in a PTE."""
        return self._x86.memory_type_np(raw, huge)

    @property
    def supported_flags(self) -> MappingFlags:
        return self._x86.supported_flags

    def _encode(self, flags: MappingFlags, huge: bool) -> int:
        """The non-address bits of a page with `flags` (a 4 MiB page when `huge`: PS=1, also in a
        not-present placeholder)."""
        if flags and not flags & MappingFlags.EXECUTE:
            raise InvalidFlags(f"32-bit paging cannot encode {flags!r}: it has no XD bit (every present page is "
                               "executable)")
        if huge and not self.pse:
            raise InvalidFlags("32-bit paging with CR4.PSE=0 has no 4 MiB pages (a PDE's PS is ignored)")
        return self._x86.attributes(flags, huge) | (PS if huge else 0)

    def _too_wide(self, pa: int, huge: bool) -> InvalidAddress:
        if not huge:
            return InvalidAddress(f"{pa:#x} does not fit a 32-bit paging entry's 32-bit physical address (only a "
                                  "4 MiB page may lie above 4 GiB, with PSE-36)")
        if self.pa_bits == 32:
            return InvalidAddress(f"{pa:#x} is not below 4 GiB: a 4 MiB page above needs PSE-36 (MAXPHYADDR 32)")
        return InvalidAddress(f"{pa:#x} does not fit a 4 MiB page's {self.pa_bits}-bit physical address (PSE-36 "
                              f"with MAXPHYADDR {self.maxphyaddr}: M = min(MAXPHYADDR, 40))")

    def _address(self, pa: int, huge: bool) -> int:
        """`pa` as entry bits, checked to fit (below 4 GiB, or 2**M for a 4 MiB page) and be aligned."""
        if type(pa) is not int:
            pa = args.integer(pa, "physical address")
        if not 0 <= pa < 1 << (self.pa_bits if huge else 32):
            raise self._too_wide(pa, huge)
        if pa % (1 << (22 if huge else 12)):
            raise NotAligned(f"PA {pa:#x} is not {'4 MiB' if huge else '4 KiB'} aligned")
        out: int = _scatter(pa) if huge else pa
        return out

    def _check_np(self, pa: U64, large: Word) -> None:
        """InvalidAddress unless each PA fits its entry: below 4 GiB, or 2**M where `large` is 1 (a 4 MiB
        page)."""
        if not pa.size or not int(pa.max()) >> 32:                      # the common case: one reduction
            return
        over = np.flatnonzero((pa >> np.uint64(32)) & ~(large * np.uint64((1 << (self.pa_bits - 32)) - 1)))
        if over.size:
            raise self._too_wide(int(pa[over[0]]), bool(np.broadcast_to(large, pa.shape)[over[0]]))

    def new_page(self, pa: int, flags: MappingFlags, huge: bool) -> int:
        """A page mapping `pa` (4 KiB aligned below 4 GiB; 4 MiB aligned below 2**M when `huge`)."""
        return self.attributes(flags, huge) | self._address(pa, huge)

    def new_page_np(self, pa: U64, flags: MappingFlags, huge: bool) -> U64:
        attributes = self.attributes(flags, huge)
        self._check_np(pa, np.uint64(huge))
        out: U64 = _scatter(pa) if huge else pa & np.uint64(ADDR)
        out |= np.uint64(attributes)
        return out

    def new_table(self, pa: int) -> int:
        return P | RW | US | self._address(pa, False)

    pointer_rights = True
    """R/W and U/S in a PDE narrow its page table's pages (SDM 4.6), as in 4-level paging."""

    def pointer_needs(self, raw: Word) -> Word:
        """R/W and U/S as the entry has them (0 if not present); there is no XD to ask for."""
        return (raw & (RW | US)) * (raw & P)                           # P is bit 0: 0 or 1

    def fit_pointer(self, pointer: Word, grants: Word) -> Word:
        """R/W and U/S where some entry below needs them, the other bits of the 4-byte PDE kept."""
        return (pointer & (_WORD ^ (RW | US))) | (grants & (RW | US))

    def is_present_np(self, raw: Word) -> Flag:
        return self._x86.is_present_np(raw)

    def is_leaf_np(self, raw: Word, last: bool) -> Flag:
        present: Flag = (raw & P) != 0
        if last:
            return present
        out: Flag = present & ((raw & self._ps) != 0)
        return out

    def is_table_np(self, raw: Word, last: bool) -> Flag:
        out: Flag = ((raw & P) != 0) & ((raw & self._ps) == 0) & (not last)
        return out

    def _large(self, raw: Word) -> Word:
        """1 for each PDE with PS=1 that maps a 4 MiB page (CR4.PSE=1), else 0."""
        return (raw & self._ps) >> 7

    def paddr_np(self, raw: Word, huge: bool) -> Word:
        """Bits 31:12; above the last level, for a PDE with PS=1 (and CR4.PSE=1), bits 31:22 with PA bits
        39:32 from bits 20:13."""
        if not huge:
            return raw & ADDR
        large = self._large(raw)
        return (raw & (ADDR ^ large * _LOW_ONLY)) | ((raw & large * ADDR_HI) << _HI_SHIFT)

    def flags_np(self, raw: Word, huge: bool) -> Word:
        """READ and EXECUTE for every present page; WRITE and USER from R/W and U/S; DEVICE/UNCACHED from
        the memory type."""
        return self._x86.flags_np(raw, huge)

    def with_paddr_np(self, raw: U64, pa: U64, huge: bool) -> U64:
        large: Word = self._large(raw) if huge else np.uint64(0)
        self._check_np(pa, large)
        low = np.uint64(ADDR) ^ large * np.uint64(_LOW_ONLY)            # bits 31:12, or 31:22 in a 4M PDE
        hi = large * np.uint64(ADDR_HI)
        out: U64 = (raw & ~(low | hi)) | (pa & low) | ((pa >> np.uint64(_HI_SHIFT)) & hi)
        return out

    def demote(self, raw: int, child_huge: bool) -> int:
        """A 4 MiB page's attributes as a PTE (PS cleared, PAT moved from bit 12 to bit 7); InvalidAddress
        for a page above 4 GiB, whose 4 KiB pages no PTE can address."""
        if raw & ADDR_HI:
            raise InvalidAddress(f"the 4 MiB page at PA {int(self.paddr_np(raw, True)):#x} is above 4 GiB: PTEs "
                                 "hold 32-bit addresses, so it cannot be split into 4 KiB pages")
        return self._x86.demote(raw, child_huge)

    def letters(self, raw: int, huge: bool) -> str:
        """Linux's x86 ptdump attributes (`entry.X86Codec.letters`); "x " always: there is no NX."""
        return self._x86.letters(raw, huge)


SPEC32 = X86Codec32()
