"""x86 PAE paging (CR0.PG=1, CR4.PAE=1, IA32_EFER.LME=0): its CR3, the PDPTE and the 8-byte PDE and PTE
layouts, and the codecs of the PDPT (`PdpteCodec`) and of the page directories and tables (`PaeCodec`).

Intel SDM Vol. 3A, section 4.4 "PAE Paging": Table 4-7 (CR3: the 32-byte aligned PDPT's address, bits
31:5), Table 4-8 (a PDPTE), Tables 4-9 to 4-11 (a PDE that maps a 2-MByte page, a PDE that references a
page table, a PTE that maps a 4-KByte page). The PDPT's four entries are loaded into the PDPTE registers
when CR3 is loaded (section 4.4.1): a present PDPTE with a reserved bit set (2:1, 8:5, MAXPHYADDR..63)
makes that MOV to CR3 #GP (`pdpte_reserved`), not a later access #PF. A PDPTE has no R/W, U/S or XD and
never maps a page (PAE has no 1 GiB pages). The PDEs and PTEs are 4-level paging's (`entry`), except that
bits 62:52, ignored there (or the protection key), are reserved: declared `RSVD_62_52`.

Encoding choices: `PaeCodec` is `entry.X86Codec` (the same bits, so the same choices) with PAE's layouts;
`PdpteCodec` makes a present PDPTE P=1 with its address (PWT=PCD=0: the page directory is WB through the
reset PAT) and carries no access rights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ... import args, lanes
from ...errors import InvalidArgument, InvalidFlags
from ...flags import MappingFlags
from ...format import EntryKind, NoPointerRights
from ...lanes import Flag, Small, Word
from ...layout import Field, Layout
from ...physmem import PhysMem
from ...translation import MemoryType
from .entry import TABLE_ENTRY, X86Codec, address_field, large_page_layout, page_address, pte_layout, table_layout

U64 = npt.NDArray[np.uint64]

CR3_PAE = Layout("CR3 (PAE paging)", 32, [
    Field("IGN_4_0", 0, 5, "ignored"),
    Field("ADDR", 5, 27, "physical address bits 31:5 of the 32-byte aligned page-directory-pointer table"),
], "Intel SDM Vol. 3A, Table 4-7 (Use of CR3 with PAE Paging)")

PDPTE = Layout("x86 PAE PDPTE (references a page directory)", 64, [
    TABLE_ENTRY["P"],
    Field("RSVD_2_1", 1, 2, "reserved (must be 0)"),
    TABLE_ENTRY["PWT"],
    TABLE_ENTRY["PCD"],
    Field("RSVD_8_5", 5, 4, "reserved (must be 0)"),
    address_field(12),
    Field("RSVD_63_52", 52, 12, "reserved (must be 0)"),
], "Intel SDM Vol. 3A, Table 4-8 (PAE PDPTE; reserved bits set in a present one: #GP at MOV to CR3)")

_HIGH = [Field("RSVD_62_52", 52, 11, "reserved (must be 0)")]
PAE_TABLE = table_layout("PAE PDE", "page size: 0 here", _HIGH, "Intel SDM Vol. 3A, Table 4-10 (PAE PDE that "
                         "references a page table)")
PAE_PDE_2M = large_page_layout("PAE PDE", "2-MByte", 21, _HIGH, "Table 4-9")
PAE_PTE = pte_layout("PAE PTE", _HIGH, "Table 4-11")

P = PDPTE.mask("P")
ADDR = PDPTE.mask("ADDR")
_RESERVED = PDPTE.mask("RSVD_2_1", "RSVD_8_5", "RSVD_63_52")


def load_pdptes(mem: PhysMem, cr3: int) -> tuple[int, int, int, int]:
    """The four PDPTEs a MOV to CR3 (`cr3`, `CR3_PAE`) loads into the PDPTE registers (SDM 4.4.1): the 32
    bytes at CR3 bits 31:5 (PhysMemError where that is no RAM)."""
    cr3 = args.integer(cr3, "CR3 (PAE paging)", 0, 1 << 32)
    pdpt = CR3_PAE.get(cr3, "ADDR") << CR3_PAE["ADDR"].lsb
    e = mem.entries(8)
    return e.read(pdpt), e.read(pdpt + 8), e.read(pdpt + 16), e.read(pdpt + 24)


def pdpte_reserved(raw: Word, maxphyaddr: int) -> Word:
    """The reserved bits set in each present PDPTE (bits 2:1, 8:5 and MAXPHYADDR..63; 0 for a PDPTE with
    P=0): loading CR3 with a PDPT that holds one #GPs (SDM Vol. 3A, 4.4.1)."""
    maxphyaddr = args.integer(maxphyaddr, "maxphyaddr", 32, 53)
    reserved = _RESERVED | (ADDR & ~((1 << maxphyaddr) - 1))
    return (raw & reserved) * (raw & P)                          # P is bit 0: 0 or 1


@dataclass(frozen=True)
class PaeCodec(X86Codec):
    """`X86Codec` for PAE paging's PDEs and PTEs: the same bits (4-level paging's PD and PT entries), with
    PAE's layouts (bits 62:52 reserved)."""

    def layout_for(self, kind: EntryKind, span: int) -> Layout:
        if kind is EntryKind.TABLE:
            return PAE_TABLE
        return PAE_PDE_2M if span == 1 << 21 else PAE_PTE


@dataclass(frozen=True)
class PdpteCodec(NoPointerRights):
    """The PDPT's entries: each present one references a page directory (P and the address); none maps
    a page or carries access rights, so none has flags or a memory type of a page."""

    def layout_for(self, kind: EntryKind, span: int) -> Layout:
        return PDPTE

    def memory_type_np(self, raw: Word, huge: bool) -> Small:
        """`MemoryType.NONE`: a PDPTE maps no page."""
        return lanes.full(raw, MemoryType.NONE, np.uint8)

    @property
    def supported_flags(self) -> MappingFlags:
        return MappingFlags(0)

    def new_page(self, pa: int, flags: MappingFlags, huge: bool) -> int:
        raise InvalidFlags("PAE paging has no 1 GiB pages: a PDPTE references a page directory (bit 7 is reserved)")

    def new_page_np(self, pa: U64, flags: MappingFlags, huge: bool) -> U64:
        return np.full(pa.shape, self.new_page(0, flags, huge), dtype=np.uint64)

    def new_table(self, pa: int) -> int:
        """P=1 and the page directory's address (4 KiB aligned, below 2**52)."""
        return P | page_address(pa, False)

    def is_present_np(self, raw: Word) -> Flag:
        out: Flag = (raw & P) != 0
        return out

    def is_leaf_np(self, raw: Word, last: bool) -> Flag:
        out: Flag = (raw & 0) != 0
        return out

    def is_table_np(self, raw: Word, last: bool) -> Flag:
        out: Flag = ((raw & P) != 0) & (not last)
        return out

    def paddr_np(self, raw: Word, huge: bool) -> Word:
        return raw & ADDR

    def flags_np(self, raw: Word, huge: bool) -> Word:
        return raw & 0

    def with_paddr_np(self, raw: U64, pa: U64, huge: bool) -> U64:
        out: U64 = (raw & np.uint64(~ADDR & (1 << 64) - 1)) | (pa & np.uint64(ADDR))
        return out

    def demote(self, raw: int, child_huge: bool) -> int:
        raise InvalidArgument(f"PDPTE {raw:#x} maps no page to split")

    def letters(self, raw: int, huge: bool) -> str:
        """PWT and PCD, the only attributes a PDPTE has (Linux's x86 ptdump spelling)."""
        return " ".join(("PWT" if raw & PDPTE.mask("PWT") else "   ", "PCD" if raw & PDPTE.mask("PCD") else "   "))


PAE = PaeCodec()
PDPT = PdpteCodec()
