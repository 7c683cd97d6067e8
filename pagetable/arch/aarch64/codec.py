"""MappingFlags ⇄ VMSAv8-64 descriptors: the stage 1 codec (`A64Codec`, with the `ARCEOS` profile) and the
stage 2 codec (`S2Codec`), for any granule and output-address form.

Arm ARM DDI 0487 M.a.a, D8.3.1 (the descriptor formats, `descriptors`), D8.4 "Memory access control"
(Table D8-60, stage 1 data access permissions AP[2:1]; D8.4.1.2, execute-never; Table D8-78, stage 2
XN[1:0]) and D8.6 "Memory region attributes" (MAIR_ELx AttrIndx; stage 2 MemAttr, D8.6.5).

Every bit position is taken from the descriptor layouts of `descriptors` (one declaration); the address
field is placed by the granule and the OA form (`OutputAddress`).

Stage 1 encoding choices (`A64Codec`, documented in docs/aarch64.md):
- EL1 can read every valid page, so a non-USER page needs READ; EL0 may have no access, read, read/write
  or execute only: USER|EXECUTE without READ is AP[2:1]=0b10 (EL1 read-only, EL0 none) with UXN=0, an
  EL0 execute-only page. Write-only pages have no encoding (InvalidFlags), as neither EL has one; nor has a
  USER page without READ or EXECUTE (it would be an EL1 read-only page, and lose USER).
- AP[2:1]: USER read/write 0b01, USER read-only 0b11, USER execute-only 0b10, kernel read/write 0b00,
  kernel read-only 0b10. USER pages have PXN=1 (EL1 never executes them) and UXN unless EXECUTE; kernel
  pages have UXN=1 and PXN unless EXECUTE. In a one-privilege regime (EL2, `el2=True`) AP[1] is RES1
  (set), nG, PXN and USER do not exist and UXN is XN.
- nG=1 for USER pages (their translations belong to the ASID), AF=1 (an access does not fault on it),
  SH=0b11 (Inner Shareable) for Normal memory and 0b00 for Device memory, except with FEAT_LPA2's form,
  whose bits 9:8 are OA[51:50].
- Memory types through MAIR (`mair`, default Linux's `LINUX_MAIR_EL1`): DEVICE → the lowest AttrIndx
  holding Device-nGnRE (else Device-nGnRnE, else any Device type), UNCACHED → Normal Non-cacheable, neither →
  Normal Write-Back; InvalidFlags when MAIR has none. Decoding gives the memory type of the AttrIndx, so
  DEVICE and UNCACHED survive a round trip.
- Empty flags give 0 (an invalid placeholder that keeps the address). Table descriptors carry no table
  attributes (APTable, PXNTable, UXNTable are 0: the leaves decide).
`ARCEOS` reproduces page_table_multiarch 0.6.1's `A64PTE` bytes: MAIR 0x44_ff_04 (Device-nGnRE,
Normal WB, Normal NC), VALID only with READ, AF always, bit 1 on pages and tables even for empty flags.

Stage 2 (`S2Codec`): S2AP[0] = READ, S2AP[1] = WRITE (write-only and execute-only pages exist), XN[1:0] =
0b00 with EXECUTE else 0b10, AF=1, SH Inner Shareable for Normal memory; MemAttr: with HCR_EL2.FWB=0
(`fwb=False`) Normal WB 0b1111, Normal NC 0b0101, Device-nGnRE 0b0001; with FWB=1 forced WB 0b0110, NC
0b0101, Device-nGnRE 0b0001. USER is not a stage 2 flag (stage 2 applies to EL1 and EL0 alike).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ... import args, lanes
from ...errors import InvalidAddress, InvalidFlags, NotAligned
from ...flags import MappingFlags
from ...format import EntryKind, NoPointerRights, RememberedLeaves
from ...lanes import Flag, Small, Word
from ...layout import Layout
from ...translation import MemoryType, memory_type_flags
from .descriptors import Granule, OAForm, Stage, block_levels, check_form, descriptor_layout, output_shift
from .regs import DEVICE_TYPES, LINUX_MAIR_EL1, mair_attrs

U64 = npt.NDArray[np.uint64]

_S1_PAGE = descriptor_layout(Stage.STAGE1, EntryKind.PAGE, Granule.K4, 3)
_S1_TABLE = descriptor_layout(Stage.STAGE1, EntryKind.TABLE, Granule.K4, 0)
_S2_PAGE = descriptor_layout(Stage.STAGE2, EntryKind.PAGE, Granule.K4, 3)

VALID, TYPE = _S1_PAGE.mask("VALID"), _S1_PAGE.mask("TYPE")
ATTRINDX, AP, SH, AF, NG = (_S1_PAGE.mask(n) for n in ("AttrIndx", "AP", "SH", "AF", "nG"))
AP_EL0, AP_RO = 1 << _S1_PAGE["AP"].lsb, 2 << _S1_PAGE["AP"].lsb         # AP[1], AP[2]
DBM, CONTIGUOUS, PXN, UXN = (_S1_PAGE.mask(n) for n in ("DBM", "Contiguous", "PXN", "UXN"))
PXN_TABLE, UXN_TABLE, AP_TABLE = (_S1_TABLE.mask(n) for n in ("PXNTable", "UXNTable", "APTable"))
AP_TABLE_NO_EL0, AP_TABLE_NO_WRITE = 1 << _S1_TABLE["APTable"].lsb, 2 << _S1_TABLE["APTable"].lsb
MEMATTR, S2AP, XN = (_S2_PAGE.mask(n) for n in ("MemAttr", "S2AP"      , "XN"))
S2AP_R, S2AP_W = 1 << _S2_PAGE["S2AP"].lsb, 2 << _S2_PAGE["S2AP"].lsb
XN_SHIFT = _S2_PAGE["XN"].lsb
SH_INNER = 3 << _S1_PAGE["SH"].lsb
_ALL = (1 << 64) - 1

ARCEOS_MAIR = 0x44_FF_04
"""page_table_multiarch's `MemAttr::MAIR_VALUE`: Attr0 Device-nGnRE, Attr1 Normal WB, Attr2 Normal NC."""

CONTIGUOUS_ENTRIES = {(Granule.K4, 1): 16, (Granule.K4, 2): 16, (Granule.K4, 3): 16, (Granule.K16, 2): 32,
                      (Granule.K16, 3): 128, (Granule.K64, 2): 32, (Granule.K64, 3): 32}
"""Entries in one contiguous set, by granule and level (D8.7.1 "The Contiguous bit")."""


@dataclass(frozen=True)
class OutputAddress:
    """Where a descriptor holds its output address (or next-level table address) for one granule and OA
    form (D8.3.1): bits 47:m (49:m with LPA2) in place, and OA[51:48] in bits 15:12 (LPA) or OA[51:50] in
    bits 9:8 (LPA2)."""

    granule: Granule = Granule.K4
    form: OAForm = OAForm.OA48

    def __post_init__(self) -> None:
        check_form(self.granule, self.form)

    @functools.cached_property
    def _low(self) -> int:
        """The address bits held in place: 47:m, or 49:m with LPA2."""
        top = 50 if self.form is OAForm.LPA2 else 48
        return ((1 << top) - 1) & ~((1 << self.granule.value) - 1)

    @functools.cached_property
    def field(self) -> int:
        """Every descriptor bit of the address field."""
        high = {OAForm.OA48: 0, OAForm.LPA: 0xF << 12, OAForm.LPA2: 3 << 8}[self.form]
        return self._low | high

    @functools.cached_property
    def block_field(self) -> int:
        """A block's address field: `field` less the bits below the smallest block (level 2: 2MB, 32MB or
        512MB), which every block holds as RES0 or as nT (bit 16, FEAT_BBML1) (Figure D8-14)."""
        return self.field & ~(self._low & ((1 << output_shift(self.granule, 2)) - 1))

    @property
    def oa_bits(self) -> int:
        return self.form.oa_bits

    def paddr(self, raw: Word) -> Word:
        """The address a descriptor (or column of them) holds."""
        if self.form is OAForm.OA48:
            return raw & self._low
        if self.form is OAForm.LPA:
            return (raw & self._low) | ((raw >> 12) & 0xF) << 48
        return (raw & self._low) | ((raw >> 8) & 3) << 50

    def encode(self, pa: Word) -> Word:
        """The descriptor bits holding address `pa` (checked by the caller)."""
        if self.form is OAForm.OA48:
            return pa & self._low
        if self.form is OAForm.LPA:
            return (pa & self._low) | ((pa >> 48) & 0xF) << 12
        return (pa & self._low) | ((pa >> 50) & 3) << 8

    def check(self, pa: int, align: int) -> int:
        """`pa` as an int, or InvalidAddress / NotAligned where the field cannot hold it."""
        if type(pa) is not int:
            pa = args.integer(pa, "physical address")
        if not 0 <= pa < 1 << self.oa_bits:
            raise InvalidAddress(f"{pa:#x} does not fit a {self.granule.label} descriptor's {self.form.value}")
        if pa % align:
            raise NotAligned(f"PA {pa:#x} is not {align:#x}-aligned")
        return pa

    def level_of(self, span: int) -> int:
        """The lookup level whose entries each cover `span` bytes."""
        return 3 - (span.bit_length() - 1 - self.granule.value) // self.granule.stride


class _Descriptors(RememberedLeaves, NoPointerRights):
    """What the stage 1 and stage 2 codecs share: descriptor kinds (Table D8-48), the address field, leaves
    from their remembered attributes, and SH."""

    stage: Stage
    address: OutputAddress

    def layout_for(self, kind: EntryKind, span: int) -> Layout:
        """The descriptor layout of `kind` at the level whose entries cover `span` bytes."""
        return descriptor_layout(self.stage, kind, self.address.granule, self.address.level_of(span),
                                 self.address.form)

    def is_present_np(self, raw: Word) -> Flag:
        out: Flag = (raw & VALID) != 0
        return out

    def is_leaf_np(self, raw: Word, last: bool) -> Flag:
        """Valid pages at level 3 (bits 1:0 = 0b11), valid blocks above it (0b01; at a level without blocks
        the walk faults on them)."""
        out: Flag = (raw & (VALID | TYPE)) == (VALID | TYPE if last else VALID)
        return out

    def is_table_np(self, raw: Word, last: bool) -> Flag:
        out: Flag = ((raw & (VALID | TYPE)) == (VALID | TYPE)) & (not last)
        return out

    def paddr_np(self, raw: Word, huge: bool) -> Word:
        """The NLTA of a table or the OA of a leaf; a block's without its RES0 and nT bits below the smallest
        block (`OutputAddress.block_field`)."""
        if not huge:
            return self.address.paddr(raw)
        return self.address.paddr(raw & lanes.where(lanes.bit(raw, TYPE), _ALL, self._block_keep))

    def with_paddr_np(self, raw: U64, pa: U64, huge: bool) -> U64:
        field = self.address.field
        keep = np.uint64(_ALL ^ field)
        if huge:                                      # a block keeps its nT and RES0 bits
            keep = lanes.where(lanes.bit(raw, TYPE), keep, _ALL ^ self.address.block_field)
        out: U64 = (raw & keep) | self.address.encode(pa)
        return out

    @functools.cached_property
    def _block_keep(self) -> int:
        return _ALL ^ (self.address.field ^ self.address.block_field)

    def new_page(self, pa: int, flags: MappingFlags, huge: bool) -> int:
        """A leaf mapping `pa` (aligned to the granule; the table checks the block's alignment)."""
        return self.attributes(flags, huge) | self._field(pa)

    def new_page_np(self, pa: U64, flags: MappingFlags, huge: bool) -> U64:
        out: U64 = self.address.encode(pa)
        out |= np.uint64(self.attributes(flags, huge))
        return out

    def _shareability(self, flags: MappingFlags) -> int:
        """SH=0b11 (Inner Shareable) for Normal memory; none for Device memory, nor with FEAT_LPA2's form,
        whose bits 9:8 are OA[51:50]."""
        return SH_INNER if self.address.form is not OAForm.LPA2 and not flags & MappingFlags.DEVICE else 0

    def new_table(self, pa: int) -> int:
        return VALID | TYPE | self._field(pa)

    def _field(self, pa: int) -> int:
        """The address field holding `pa`, checked to fit and be granule-aligned."""
        out: int = self.address.encode(self.address.check(pa, self.address.granule.size))
        return out

    def demote(self, raw: int, child_huge: bool) -> int:
        """A block's attributes one level down: a block (the same bits) or a page (bit 1 set); never part of
        a contiguous set."""
        return (raw & ~CONTIGUOUS) | (0 if child_huge else TYPE)

    def block_levels(self) -> tuple[int, ...]:
        return block_levels(self.address.granule, self.address.form)




def _device_index(types: tuple[MemoryType | None, ...]) -> int | None:
    """The AttrIndx DEVICE maps to: the lowest holding Device-nGnRE, else nGnRnE, else any Device type."""
    for want in (MemoryType.DEVICE_NGNRE, MemoryType.DEVICE_NGNRNE, MemoryType.DEVICE_NGRE, MemoryType.DEVICE_GRE):
        if want in types:
            return types.index(want)
    return None


@dataclass(frozen=True)
class A64Codec(_Descriptors):
    """MappingFlags ⇄ stage 1 descriptors (module docstring), for MAIR value `mair`, a granule and OA form
    (`address`), and a two-privilege regime (EL1&0, EL2&0) or a one-privilege one (`el2`: EL2)."""

    address: OutputAddress = OutputAddress()
    mair: int = LINUX_MAIR_EL1
    el2: bool = False
    arceos: bool = False
    cacheable: bool = True              # SCTLR_ELx.C: 0 makes stage 1 Normal memory Non-cacheable
    stage = Stage.STAGE1

    @functools.cached_property
    def _types(self) -> tuple[MemoryType | None, ...]:
        """The memory type of each AttrIndx (None for an UNPREDICTABLE MAIR encoding)."""
        return tuple(a.memory_type for a in mair_attrs(self.mair))

    @functools.cached_property
    def _type_table(self) -> npt.NDArray[np.uint8]:
        """`_types` as numbers, NORMAL_MIXED standing for an UNPREDICTABLE encoding; with SCTLR_ELx.C=0
        (`cacheable`), Normal memory as Non-cacheable."""
        types = [MemoryType.NORMAL_MIXED if t is None else t for t in self._types]
        if not self.cacheable:
            types = [t if t in DEVICE_TYPES else MemoryType.NORMAL_NC for t in types]
        return np.array(types, dtype=np.uint8)

    def memory_type_np(self, raw: Word, huge: bool) -> Small:
        """The MAIR attribute AttrIndx selects."""
        return lanes.take(self._type_table, (raw >> 2) & 7)

    @property
    def supported_flags(self) -> MappingFlags:
        flags = MappingFlags.READ | MappingFlags.WRITE | MappingFlags.EXECUTE | MappingFlags.DEVICE | \
            MappingFlags.UNCACHED
        return flags if self.el2 else flags | MappingFlags.USER

    def _index(self, flags: MappingFlags) -> int:
        """The AttrIndx of `flags`' memory type (InvalidFlags when MAIR holds none)."""
        if flags & MappingFlags.DEVICE:
            index, what = _device_index(self._types), "Device"
        else:
            want = MemoryType.NORMAL_NC if flags & MappingFlags.UNCACHED else MemoryType.NORMAL_WB
            index, what = (self._types.index(want) if want in self._types else None), want.label
        if index is None:
            raise InvalidFlags(f"MAIR {self.mair:#x} has no {what} attribute for {flags!r}")
        return index

    def _encode(self, flags: MappingFlags, huge: bool) -> int:
        if self.arceos:
            return _arceos_bits(flags, huge, self.el2)
        if not flags:
            return 0
        read, write, execute = (bool(flags & f) for f in (MappingFlags.READ, MappingFlags.WRITE,
                                                           MappingFlags.EXECUTE))
        user = bool(flags & MappingFlags.USER) and not self.el2
        if write and not read:
            raise InvalidFlags(f"VMSAv8-64 stage 1 cannot encode {flags!r}: no AP[2:1] value is write-only")
        if not read and not user:
            raise InvalidFlags(f"VMSAv8-64 stage 1 cannot encode {flags!r}: a valid page is always readable "
                               "at EL1 (only EL0 pages may be execute-only)")
        if user and not read and not execute:
            raise InvalidFlags(f"VMSAv8-64 stage 1 cannot encode {flags!r}: a USER page EL0 can neither read nor "
                               "execute is an EL1 read-only page (AP[2:1]=0b10, UXN=1), which decodes without USER")
        bits = VALID | (0 if huge else TYPE) | AF | (self._index(flags) << 2)
        if user:
            bits |= NG | PXN | (0 if execute else UXN)
            bits |= (AP_EL0 | (0 if write else AP_RO)) if read else AP_RO
        elif self.el2:                                # one privilege: AP[1] RES1, UXN is XN
            bits |= AP_EL0 | (0 if write else AP_RO) | (0 if execute else UXN)
        else:                                         # EL0 never executes a kernel page
            bits |= (0 if write else AP_RO) | UXN | (0 if execute else PXN)
        return bits | self._shareability(flags)

    def flags_np(self, raw: Word, huge: bool) -> Word:
        """The flags of valid descriptors by one lookup of the bits that decide them (`_flag_bits`)."""
        return lanes.take(self._flag_table, _flag_bits(raw))

    @functools.cached_property
    def _flag_table(self) -> U64:
        """The MappingFlags of each value of `_flag_bits`: VALID (bit 0), AttrIndx (3:1), AP[2:1] (5:4), PXN
        (6), UXN (7)."""
        out = np.zeros(256, dtype=np.uint64)
        for k in range(256):
            if k & 1:
                out[k] = self._decode(ap=(k >> 4) & 3, pxn=bool(k & 0x40), uxn=bool(k & 0x80), index=(k >> 1) & 7)
        return out

    def _decode(self, ap: int, pxn: bool, uxn: bool, index: int) -> int:
        """A valid descriptor's flags: in a two-privilege regime, EL0's view where EL0 has some access (USER
        with its read, write and execute), else EL1's; in EL2 the one privilege's."""
        if self.arceos:
            return _arceos_flags(ap, pxn, uxn, index, self.el2)
        write = 0 if ap & 2 else MappingFlags.WRITE.value
        if self.el2:
            out = MappingFlags.READ.value | write | (0 if uxn else MappingFlags.EXECUTE.value)
        elif ap & 1 or not uxn:                      # EL0 reads (AP[1]=1) or executes (UXN=0)
            out = MappingFlags.USER.value | (0 if uxn else MappingFlags.EXECUTE.value)
            out |= (MappingFlags.READ.value | write) if ap & 1 else 0
        else:
            out = MappingFlags.READ.value | write | (0 if pxn else MappingFlags.EXECUTE.value)
        memtype = self._types[index]
        return out | (int(memory_type_flags(int(memtype))) if memtype is not None else 0)

    def letters(self, raw: int, huge: bool) -> str:
        """Linux's arm64 ptdump attributes (arch/arm64/mm/ptdump.c, pte_bits): USR, ro/RW, NX/x, SHD, AF,
        NG, CON, BLK, UXN, GP, then the memory type."""
        attrs = " ".join(("USR" if raw & AP_EL0 and not self.el2 else "   ", "ro" if raw & AP_RO else "RW",
                          "NX" if raw & PXN else "x ", "SHD" if raw & SH == SH_INNER and self.address.form
                          is not OAForm.LPA2 else "   ", "AF" if raw & AF else "  ", "NG" if raw & NG else "  ",
                          "CON" if raw & CONTIGUOUS else "   ", "BLK" if huge and not raw & TYPE else "   ",
                          "UXN" if raw & UXN else "   ", "GP" if raw & _S1_PAGE.mask("GP") else "  "))
        return f"{attrs} {_ptdump_type(self._types[(raw >> 2) & 7], (raw >> 2) & 7)}"


def _ptdump_type(memtype: MemoryType | None, index: int) -> str:
    """Linux ptdump's name for a memory type."""
    return {MemoryType.DEVICE_NGNRNE: "DEVICE/nGnRnE", MemoryType.DEVICE_NGNRE: "DEVICE/nGnRE",
            MemoryType.NORMAL_NC: "MEM/NORMAL-NC", MemoryType.NORMAL_WB: "MEM/NORMAL"}.get(
                memtype, f"ATTR{index}") if memtype is not None else f"ATTR{index}"


def _flag_bits(raw: Word) -> Word:
    """The bits a stage 1 descriptor's flags depend on, packed into 8: VALID (0), AttrIndx (3:1), AP[2:1] (5:4),
    PXN (6), UXN (7)."""
    return (raw & 1) | ((raw >> 1) & 0xE) | ((raw >> 2) & 0x30) | ((raw >> 47) & 0xC0)


def _arceos_bits(flags: MappingFlags, huge: bool, el2: bool = False) -> int:
    """page_table_multiarch 0.6.1's `A64PTE::new_page` attribute bits (its `DescriptorAttr::from(flags)`, then
    AF, and bit 1 unless huge), with its MAIR indices: Device 0 (SH=0), Normal 1 and Normal NC 2 (SH=0b11).
    `el2`: the crate's `arm-el2` feature (USER ignored, no AP[1], no PXN, UXN as XN unless EXECUTE)."""
    bits = AF | (0 if huge else TYPE)
    if not flags:
        return bits
    if flags & MappingFlags.DEVICE:
        bits |= 0 << 2
    else:
        bits |= (2 if flags & MappingFlags.UNCACHED else 1) << 2 | SH_INNER
    bits |= VALID if flags & MappingFlags.READ else 0
    bits |= 0 if flags & MappingFlags.WRITE else AP_RO
    if el2:
        bits |= 0 if flags & MappingFlags.EXECUTE else UXN
    elif flags & MappingFlags.USER:
        bits |= AP_EL0 | PXN | (0 if flags & MappingFlags.EXECUTE else UXN)
    else:
        bits |= UXN | (0 if flags & MappingFlags.EXECUTE else PXN)
    return bits


def _arceos_flags(ap: int, pxn: bool, uxn: bool, index: int, el2: bool = False) -> int:
    """The crate's `From<DescriptorAttr> for MappingFlags`: READ always; WRITE unless AP[2]; with AP[1], USER
    and EXECUTE unless UXN, else EXECUTE unless PXN (`arm-el2`: EXECUTE unless UXN); AttrIndx 0 DEVICE, 2
    UNCACHED."""
    out = MappingFlags.READ.value | (0 if ap & 2 else MappingFlags.WRITE.value)
    if el2:
        out |= 0 if uxn else MappingFlags.EXECUTE.value
    elif ap & 1:
        out |= MappingFlags.USER.value | (0 if uxn else MappingFlags.EXECUTE.value)
    else:
        out |= 0 if pxn else MappingFlags.EXECUTE.value
    return out | {0: MappingFlags.DEVICE.value, 2: MappingFlags.UNCACHED.value}.get(index, 0)


# ----------------------------------------------------------------------------------------- stage 2
_S2_CACHE = {1: MemoryType.NORMAL_NC, 2: MemoryType.NORMAL_WT, 3: MemoryType.NORMAL_WB}


def s2_memattr_type(memattr: int, fwb: bool) -> MemoryType | None:
    """The memory type stage 2 MemAttr[3:0] gives (D8.6.5; None where it defers to stage 1 or is reserved):
    with FWB=0, MemAttr[3:2]=0 is Device (MemAttr[1:0] nGnRnE, nGnRE, nGRE, GRE), else Normal with outer
    MemAttr[3:2] and inner MemAttr[1:0] (0b01 NC, 0b10 WT, 0b11 WB); with FWB=1 (FEAT_S2FWB), MemAttr[2]=0
    is Device (MemAttr[1:0]), 0b110 forces Normal WB, 0b101 Normal NC, 0b111 keeps stage 1's type."""
    if fwb:
        if not memattr & 4:
            return DEVICE_TYPES[memattr & 3]
        return {6: MemoryType.NORMAL_WB, 5: MemoryType.NORMAL_NC}.get(memattr & 7)
    outer, inner = memattr >> 2, memattr & 3
    if outer == 0:
        return DEVICE_TYPES[inner]
    if inner == 0:
        return None                                   # 0bxx00 with xx != 00: reserved
    a, b = _S2_CACHE[outer], _S2_CACHE[inner]
    return a if a is b else MemoryType.NORMAL_MIXED


@dataclass(frozen=True)
class S2Codec(_Descriptors):
    """MappingFlags ⇄ stage 2 descriptors (module docstring), for HCR_EL2.FWB `fwb` and FEAT_XNX `xnx`."""

    address: OutputAddress = OutputAddress()
    fwb: bool = False
    xnx: bool = True
    stage = Stage.STAGE2

    @functools.cached_property
    def _type_table(self) -> npt.NDArray[np.uint8]:
        """The memory type of each MemAttr value (DEFAULT where stage 1's type stands, or reserved)."""
        return np.array([t if (t := s2_memattr_type(m, self.fwb)) is not None else MemoryType.DEFAULT
                         for m in range(16)], dtype=np.uint8)

    def memory_type_np(self, raw: Word, huge: bool) -> Small:
        return lanes.take(self._type_table, (raw >> 2) & 0xF)

    @property
    def supported_flags(self) -> MappingFlags:
        return MappingFlags.READ | MappingFlags.WRITE | MappingFlags.EXECUTE | MappingFlags.DEVICE | \
            MappingFlags.UNCACHED

    def _encode(self, flags: MappingFlags, huge: bool) -> int:
        if not flags:
            return 0
        memattr = 0b0001 if flags & MappingFlags.DEVICE else 0b0101 if flags & MappingFlags.UNCACHED else \
            (0b0110 if self.fwb else 0b1111)
        bits = VALID | (0 if huge else TYPE) | AF | memattr << 2
        bits |= (S2AP_R if flags & MappingFlags.READ else 0) | (S2AP_W if flags & MappingFlags.WRITE else 0)
        bits |= 0 if flags & MappingFlags.EXECUTE else 2 << XN_SHIFT
        return bits | self._shareability(flags)

    def flags_np(self, raw: Word, huge: bool) -> Word:
        """READ and WRITE from S2AP, EXECUTE where some privilege may execute (XN[1:0] other than 0b10;
        without FEAT_XNX, XN[1]=0), the memory type's flags; 0 for invalid descriptors."""
        return lanes.take(self._flag_table, (raw & 1) | ((raw >> 1) & 0x1E) | ((raw >> 1) & 0x60)
                          | ((raw >> 46) & 0x180))

    @functools.cached_property
    def _flag_table(self) -> U64:
        """Flags by VALID (bit 0), MemAttr (4:1), S2AP (6:5), XN (8:7)."""
        out = np.zeros(512, dtype=np.uint64)
        for k in range(512):
            if not k & 1:
                continue
            xn = k >> 7
            executable = xn != 2 if self.xnx else not xn & 2
            flags = (MappingFlags.READ.value if k & 0x20 else 0) | (MappingFlags.WRITE.value if k & 0x40 else 0)
            flags |= MappingFlags.EXECUTE.value if executable else 0
            out[k] = flags | int(memory_type_flags(int(self._type_table[(k >> 1) & 0xF])))
        return out

    def letters(self, raw: int, huge: bool) -> str:
        """S2AP (R, W), XN, AF, CON, BLK and MemAttr."""
        xn = (raw >> XN_SHIFT) & 3
        return " ".join(("R" if raw & S2AP_R else " ", "W" if raw & S2AP_W else " ",
                         ("x  ", "PXN", "XN ", "UXN")[xn], "AF" if raw & AF else "  ",
                         "CON" if raw & CONTIGUOUS else "   ", "BLK" if huge and not raw & TYPE else "   ",
                         f"MEMATTR({(raw >> 2) & 0xF:04b})"))


SPEC = A64Codec()
ARCEOS = A64Codec(mair=ARCEOS_MAIR, arceos=True)
STAGE2 = S2Codec()
