"""Intel EPT (extended page tables): the entry formats, the EPTP register and the codec of the 4-level and
5-level EPT formats (`modes.EPT4`, `modes.EPT5`) that translate guest-physical addresses.

Intel SDM Vol. 3C, section 29.3.2 "EPT Translation Mechanism" (Tables 29-1 to 29-6: the formats of an EPT
PML5E, PML4E, PDPTE, PDE and PTE) and 25.6.11 "Extended-Page-Table Pointer (EPTP)" (Table 25-9). An EPT
entry is present when any of R, W, X (and, with mode-based execute control, the user-execute bit) is set.
Three layouts cover the entry kinds, each declared once: `EPT_TABLE` (every PML5E/PML4E, and a PDPTE/PDE
with bit 7 = 0), `EPT_PDPTE_1G`/`EPT_PDE_2M` (bit 7 = 1: a 1 GiB or 2 MiB page; the bits between the flags
and the address are reserved) and `EPT_PTE_4K`. A page's memory type is its bits 5:3 (combined with the
guest's PAT type unless "ignore PAT", bit 6, is set); A and D exist when EPTP enables them.

Encoding choices (`EptCodec`), documented in docs/x86_64.md:
- READ, WRITE, EXECUTE → R, W, X. WRITE without READ is an EPT misconfiguration (`InvalidFlags`), and so
  is EXECUTE alone where the CPU cannot do execute-only pages (`execute_only=False`).
- With mode-based execute control (`mbec=True`) EXECUTE sets X (supervisor-mode execute) and EXECUTE|USER
  sets the user-mode execute bit instead; without it USER has no EPT meaning and is not encoded.
- Memory type: DEVICE → UC, UNCACHED → WC, otherwise WB (ignore-PAT clear, so the guest's PAT combines).
- Empty flags give a not-present entry (R=W=X=0) that keeps the address; a table entry has the R/W/X
  (and user-execute) bits some entry of its table has, and R with any of them (`fit_pointer`).
- A and D are left clear (the CPU sets them when EPTP enables them).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ... import lanes
from ...errors import InvalidFlags
from ...flags import MappingFlags
from ...format import EntryKind, RememberedLeaves
from ...lanes import Flag, Small, Word
from ...layout import Field, Layout
from ...translation import MemoryType, memory_type_flags
from .entry import address_field, page_address

U64 = npt.NDArray[np.uint64]

_RIGHTS = [
    Field("R", 0, 1, "read access"),
    Field("W", 1, 1, "write access"),
    Field("X", 2, 1, "execute access (supervisor-mode linear addresses, with mode-based execute control)"),
]
_A = Field("A", 8, 1, "accessed (with EPTP bit 6)")
_XU = Field("XU", 10, 1, "execute access for user-mode linear addresses (with mode-based execute control)")
_SVE = Field("SVE", 63, 1, "suppress #VE (with the EPT-violation #VE control)")
EPT_MEMORY_TYPES = {0: MemoryType.UC, 1: MemoryType.WC, 4: MemoryType.WT, 5: MemoryType.WP, 6: MemoryType.WB}
"""EPT memory types (bits 5:3 of a page; EPTP bits 2:0 for the paging structures); 2, 3 and 7 are
reserved (an EPT misconfiguration)."""
_TYPE_NAMES = {code: t.name for code, t in EPT_MEMORY_TYPES.items()}


EPT_TABLE = Layout("EPT PML5E/PML4E/PDPTE/PDE (references a table)", 64, [
    *_RIGHTS,
    Field("RSVD", 3, 5, "reserved (must be 0; in a PDPTE/PDE bit 7 is the page size: 0)"),
    _A,
    _XU,
    address_field(12),
], "Intel SDM Vol. 3C, Tables 29-1 to 29-5 (EPT entries that reference a paging structure)")


def _page(entry: str, size: str, address_lsb: int, table: str) -> Layout:
    """The EPT entry that maps a page of `size` (`address_lsb` 12: a PTE; else bit 7 = 1 and the bits from
    12 to the address are reserved)."""
    return Layout(f"EPT {entry} (maps a {size} page)", 64, [
        *_RIGHTS,
        Field("MT", 3, 3, "memory type", _TYPE_NAMES),
        Field("IPAT", 6, 1, "ignore PAT: the memory type is MT alone"),
        *([Field("PS", 7, 1, "page size: 1")] if address_lsb > 12 else []),
        _A,
        Field("D", 9, 1, "dirty (with EPTP bit 6)"),
        _XU,
        *([Field("RSVD", 12, address_lsb - 12, "reserved (must be 0)")] if address_lsb > 12 else []),
        address_field(address_lsb),
        _SVE,
    ], f"Intel SDM Vol. 3C, {table} (EPT {entry} that maps a {size} page)")


EPT_PDPTE_1G = _page("PDPTE", "1-GByte", 30, "Table 29-3")
EPT_PDE_2M = _page("PDE", "2-MByte", 21, "Table 29-5")
EPT_PTE_4K = _page("PTE", "4-KByte", 12, "Table 29-6")

EPTP = Layout("EPTP", 64, [
    Field("MT", 0, 3, "memory type of the EPT paging structures", {0: "UC", 6: "WB"}),
    Field("WALK", 3, 3, "page-walk length minus 1 (3: 4-level EPT, 4: 5-level EPT)"),
    Field("AD", 6, 1, "enable accessed and dirty flags"),
    Field("SSS", 7, 1, "enforce supervisor shadow-stack access rights"),
    address_field(12),
], "Intel SDM Vol. 3C, Table 25-9 (Format of Extended-Page-Table Pointer)")

R, W, X = (EPT_PTE_4K.mask(n) for n in ("R", "W", "X"))
XU, A, D, IPAT = EPT_PTE_4K.mask("XU"), EPT_PTE_4K.mask("A"), EPT_PTE_4K.mask("D"), EPT_PTE_4K.mask("IPAT")
PS = EPT_PDE_2M.mask("PS")
MT_SHIFT = EPT_PTE_4K["MT"].lsb
ADDR = EPT_TABLE.mask("ADDR")
_CODE_OF = {t: code for code, t in EPT_MEMORY_TYPES.items()}


@dataclass(frozen=True)
class EptCodec(RememberedLeaves):
    """MappingFlags ⇄ EPT entry bits, with the encoding choices in the module docstring, for a CPU with or
    without execute-only pages and mode-based execute control."""

    execute_only: bool = True
    mbec: bool = False

    def layout_for(self, kind: EntryKind, span: int) -> Layout:
        """`EPT_TABLE` for a table reference; a page's layout by the size it maps."""
        if kind is EntryKind.TABLE:
            return EPT_TABLE
        return {1 << 30: EPT_PDPTE_1G, 1 << 21: EPT_PDE_2M}.get(span, EPT_PTE_4K)

    @functools.cached_property
    def _types(self) -> npt.NDArray[np.uint8]:
        """The memory type of each MT value 0-7 (NONE for the reserved ones)."""
        out = np.full(8, MemoryType.NONE, dtype=np.uint8)
        for code, t in EPT_MEMORY_TYPES.items():
            out[code] = t
        return out

    def memory_type_np(self, raw: Word, huge: bool) -> Small:
        """The EPT memory type of each page (MT, bits 5:3); the combination with the guest's PAT type is the
        walk's."""
        return lanes.take(self._types, (raw >> MT_SHIFT) & 7)

    @property
    def supported_flags(self) -> MappingFlags:
        base = MappingFlags.READ | MappingFlags.WRITE | MappingFlags.EXECUTE | MappingFlags.DEVICE | \
            MappingFlags.UNCACHED
        return base | MappingFlags.USER if self.mbec else base

    def _encode(self, flags: MappingFlags, huge: bool) -> int:
        """The non-address bits of a page with `flags` (bit 7 set when `huge`)."""
        if not flags & (MappingFlags.READ | MappingFlags.WRITE | MappingFlags.EXECUTE):
            return 0
        if flags & MappingFlags.WRITE and not flags & MappingFlags.READ:
            raise InvalidFlags(f"EPT cannot encode {flags!r}: W=1 with R=0 is an EPT misconfiguration")
        if flags & MappingFlags.EXECUTE and not flags & MappingFlags.READ and not self.execute_only:
            raise InvalidFlags(f"EPT cannot encode {flags!r}: this CPU has no execute-only pages "
                               "(an EPT misconfiguration)")
        bits = (R if flags & MappingFlags.READ else 0) | (W if flags & MappingFlags.WRITE else 0)
        if flags & MappingFlags.EXECUTE:
            bits |= XU if self.mbec and flags & MappingFlags.USER else X
        memtype = MemoryType.UC if flags & MappingFlags.DEVICE else \
            MemoryType.WC if flags & MappingFlags.UNCACHED else MemoryType.WB
        return bits | _CODE_OF[memtype] << MT_SHIFT | (PS if huge else 0)

    def new_page(self, pa: int, flags: MappingFlags, huge: bool) -> int:
        return self.attributes(flags, huge) | page_address(pa, huge)

    def new_page_np(self, pa: U64, flags: MappingFlags, huge: bool) -> U64:
        out: U64 = pa & np.uint64(ADDR)
        out |= np.uint64(self.attributes(flags, huge))           # in place: one new column, not two
        return out

    def new_table(self, pa: int) -> int:
        return R | W | X | (XU if self.mbec else 0) | page_address(pa, False)

    pointer_rights = True

    def pointer_needs(self, raw: Word) -> Word:
        """The entry's R, W, X (and the user-execute bit with MBEC)."""
        return raw & (R | W | X | (XU if self.mbec else 0))

    def fit_pointer(self, pointer: Word, grants: Word) -> Word:
        """R/W/X (and XU) where an entry below has them, and R with any of them: a table entry with W or
        X but not R would be an EPT misconfiguration (without execute-only pages), and R adds nothing the
        pages below do not allow, the rights being the AND of every level's."""
        rights = grants & (R | W | X | (XU if self.mbec else 0))
        out = (pointer & (((1 << 64) - 1) ^ (R | W | X | XU))) | rights | lanes.u64(rights != 0) * R
        return out

    def is_present_np(self, raw: Word) -> Flag:
        out: Flag = (raw & (R | W | X | (XU if self.mbec else 0))) != 0
        return out

    def is_leaf_np(self, raw: Word, last: bool) -> Flag:
        out: Flag = self.is_present_np(raw) & (last | ((raw & PS) != 0))
        return out

    def is_table_np(self, raw: Word, last: bool) -> Flag:
        out: Flag = self.is_present_np(raw) & ((raw & PS) == 0) & (not last)
        return out

    def paddr_np(self, raw: Word, huge: bool) -> Word:
        return raw & ADDR

    def flags_np(self, raw: Word, huge: bool) -> Word:
        """READ, WRITE, EXECUTE from R, W and X (or, with MBEC, EXECUTE|USER from the user-execute bit);
        DEVICE/UNCACHED from the memory type; nothing for a not-present entry."""
        out = (lanes.u64(lanes.bit(raw, R)) * MappingFlags.READ.value | lanes.u64(lanes.bit(raw, W))
               * MappingFlags.WRITE.value | lanes.u64(lanes.bit(raw, X)) * MappingFlags.EXECUTE.value)
        if self.mbec:
            out = out | lanes.u64(lanes.bit(raw, XU)) * (MappingFlags.EXECUTE.value | MappingFlags.USER.value)
        out = out | memory_type_flags(self.memory_type_np(raw, huge))
        return out * lanes.u64(self.is_present_np(raw))

    def with_paddr_np(self, raw: U64, pa: U64, huge: bool) -> U64:
        out: U64 = (raw & np.uint64(~ADDR & ((1 << 64) - 1))) | (pa & np.uint64(ADDR))
        return out

    def demote(self, raw: int, child_huge: bool) -> int:
        """A 1G/2M page's bits as a 2M page (the same) or a 4 KiB PTE (bit 7 cleared)."""
        return raw if child_huge else raw & ~PS

    def letters(self, raw: int, huge: bool) -> str:
        """R/W/X (and the user-execute bit), the memory type, IPAT, A, D."""
        mt = EPT_MEMORY_TYPES.get((raw >> MT_SHIFT) & 7)
        return "".join(("r" if raw & R else "-", "w" if raw & W else "-", "x" if raw & X else "-",
                        "u" if raw & XU else "-")) + f" {mt.name if mt else 'RSVD':<2} " + \
            " ".join(("IPAT" if raw & IPAT else "    ", "A" if raw & A else " ", "D" if raw & D else " "))


SPEC = EptCodec()
