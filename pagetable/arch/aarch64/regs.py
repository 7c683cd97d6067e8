"""The AArch64 System registers that control VMSAv8-64 translation, each declared once as a layout:
TTBR0_EL1, TTBR1_EL1, TTBR0_EL2, TTBR1_EL2, VTTBR_EL2, TCR_EL1, TCR_EL2 (HCR_EL2.E2H=0), VTCR_EL2, MAIR_EL1,
MAIR_EL2, SCTLR_EL1, SCTLR_EL2 (E2H=0), HCR_EL2 and ID_AA64MMFR0_EL1, with the decodings translation needs:
the TG0/TG1 granule encodings, PARange/IPS/PS to a PA width, and a MAIR Attr byte to a memory type.

Arm Architecture Reference Manual for A-profile architecture (DDI 0487 M.a.a), chapter D24.2 "General
system control registers": D24.2.209 TTBR0_EL1, D24.2.210 TTBR0_EL2, D24.2.212 TTBR1_EL1, D24.2.213 TTBR1_EL2, D24.2.225
VTTBR_EL2, D24.2.194 TCR_EL1, D24.2.195 TCR_EL2, D24.2.224 VTCR_EL2, D24.2.127 MAIR_EL1 (and MAIR_EL2),
D24.2.175 SCTLR_EL1, D24.2.176 SCTLR_EL2, D24.2.62 HCR_EL2, D24.2.88 ID_AA64MMFR0_EL1. Only the VMSAv8-64
(64-bit descriptor) forms are declared; the FEAT_D128 forms (TTBRs with BADDR in bits 87:80) are not.
With HCR_EL2.E2H=1, TCR_EL2 and SCTLR_EL2 take TCR_EL1's and SCTLR_EL1's layouts, which this module does not
restate.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ...errors import InvalidArgument
from ...layout import Field, Layout
from ...translation import MemoryType
from .descriptors import Granule

_ARM = "Arm ARM DDI 0487 M.a.a"

# ------------------------------------------------------------------------------- shared encodings
PA_BITS = {0: 32, 1: 36, 2: 40, 3: 42, 4: 44, 5: 48, 6: 52, 7: 56}
"""PARange (ID_AA64MMFR0_EL1), IPS (TCR_EL1) and PS (TCR_EL2, VTCR_EL2) -> physical address bits (0b0110:
52 bits, FEAT_LPA/LPA2; 0b0111: 56 bits, FEAT_D128)."""
_PA_NAMES = {code: f"{bits} bits" for code, bits in PA_BITS.items()}
TG0_GRANULE = {0: Granule.K4, 1: Granule.K64, 2: Granule.K16}
"""TCR_ELx.TG0 / VTCR_EL2.TG0 -> granule (0b11 reserved)."""
TG1_GRANULE = {1: Granule.K16, 2: Granule.K4, 3: Granule.K64}
"""TCR_EL1.TG1 -> granule (0b00 reserved): not TG0's encoding."""
_CACHE = {0: "Non-cacheable", 1: "Write-Back Read-Allocate Write-Allocate",
          2: "Write-Through Read-Allocate No Write-Allocate", 3: "Write-Back Read-Allocate No Write-Allocate"}
_SHARE = {0: "Non-shareable", 1: "reserved", 2: "Outer Shareable", 3: "Inner Shareable"}


def _walk_fields(n: str, lsb: int, tg: dict[int, Granule], what: str) -> list[Field]:
    """The walk attributes of one translation table region: TnSZ, IRGNn, ORGNn, SHn and TGn, at `lsb` (0 for
    TTBR0's region, 16 for TTBR1's). The cacheability, shareability and granule fields sit at the same
    offsets in both regions of TCR_EL1 and in TCR_EL2 and VTCR_EL2."""
    return [
        Field(f"T{n}SZ", lsb, 6, f"{what} size offset: the region is 2**(64-T{n}SZ) bytes"),
        Field(f"IRGN{n}", lsb + 8, 2, f"inner cacheability of {what} table walks", _CACHE),
        Field(f"ORGN{n}", lsb + 10, 2, f"outer cacheability of {what} table walks", _CACHE),
        Field(f"SH{n}", lsb + 12, 2, f"shareability of {what} table walks", _SHARE),
        Field(f"TG{n}", lsb + 14, 2, f"{what} granule size", {k: g.label for k, g in tg.items()}),
    ]


def _pa_field(name: str, lsb: int, doc: str) -> Field:
    return Field(name, lsb, 3, doc, _PA_NAMES)


def _hafdbs(lsb: int, what: str = "") -> list[Field]:
    """HA and HD (FEAT_HAFDBS), adjacent from `lsb` in every TCR and VTCR_EL2."""
    return [Field("HA", lsb, 1, f"hardware Access flag update{what} (FEAT_HAFDBS)"),
            Field("HD", lsb + 1, 1, f"hardware dirty state management{what} (FEAT_HAFDBS, with HA)")]


def _hwu(lsb: int, prefix: str = "", what: str = "") -> list[Field]:
    """HWU<prefix>59..62 (FEAT_HPDS2): descriptor bits 59-62 may be used by hardware, from `lsb`."""
    return [Field(f"HWU{prefix}{b}", lsb + b - 59, 1, f"descriptor bit {b} may be hardware-used{what} (FEAT_HPDS2)")
            for b in (59, 60, 61, 62)]


def _el2_controls(what: str) -> list[Field]:
    """The fields TCR_EL2 (E2H=0) and VTCR_EL2 share, at the same places: HA, HD, HWU59-62, RES1 bit 31, DS."""
    return [*_hafdbs(21, what), *_hwu(25, what=what), Field("RES1_31", 31, 1, "RES1"),
            Field("DS", 32, 1, "52-bit OA and input address with the 4KB and 16KB granules (FEAT_LPA2)")]


# ------------------------------------------------------------------------------------------- TTBRs
def _ttbr(name: str, tag: str, tag_doc: str, source: str) -> Layout:
    """A translation table base register: CnP, BADDR[47:1], and an ASID or VMID in bits 63:48."""
    return Layout(name, 64, [
        Field("CnP", 0, 1, "common not private: the tables are shared with other PEs of the inner shareable domain"),
        Field("BADDR", 1, 47, "table base address bits 47:1 (aligned to the table's size; with a 52-bit OA, "
                              "bits 5:2 hold BADDR[51:48] and bits 47:6 BADDR[47:6])"),
        Field(tag, 48, 16, tag_doc),
    ], f"{_ARM}, {source}")


_ASID = "address space identifier (ASID[15:8] RES0 with 8-bit ASIDs, TCR_ELx.AS=0)"
TTBR0_EL1 = _ttbr("TTBR0_EL1", "ASID", _ASID + "; the ASID when TCR_EL1.A1=0", "D24.2.209")
TTBR1_EL1 = _ttbr("TTBR1_EL1", "ASID", _ASID + "; the ASID when TCR_EL1.A1=1", "D24.2.212")
TTBR0_EL2 = _ttbr("TTBR0_EL2", "ASID", _ASID + "; used with HCR_EL2.E2H=1 only", "D24.2.210")
TTBR1_EL2 = _ttbr("TTBR1_EL2", "ASID", _ASID + "; FEAT_VHE, used with HCR_EL2.E2H=1", "D24.2.213")
VTTBR_EL2 = _ttbr("VTTBR_EL2", "VMID", "virtual machine identifier (VMID[15:8] RES0 unless VTCR_EL2.VS=1)",
                  "D24.2.225")

# -------------------------------------------------------------------------------------------- TCRs
TCR_EL1 = Layout("TCR_EL1", 64, [
    *_walk_fields("0", 0, TG0_GRANULE, "TTBR0_EL1"),
    Field("EPD0", 7, 1, "no table walks through TTBR0_EL1 (a TLB miss is a Translation fault)"),
    *_walk_fields("1", 16, TG1_GRANULE, "TTBR1_EL1"),
    Field("A1", 22, 1, "the ASID is TTBR1_EL1.ASID (0: TTBR0_EL1.ASID)"),
    Field("EPD1", 23, 1, "no table walks through TTBR1_EL1"),
    _pa_field("IPS", 32, "intermediate physical address size"),
    Field("AS", 36, 1, "ASID size", {0: "8 bits", 1: "16 bits"}),
    Field("TBI0", 37, 1, "top byte ignored for TTBR0_EL1 addresses"),
    Field("TBI1", 38, 1, "top byte ignored for TTBR1_EL1 addresses"),
    *_hafdbs(39),
    Field("HPD0", 41, 1, "hierarchical permissions disabled below TTBR0_EL1 (FEAT_HPDS)"),
    Field("HPD1", 42, 1, "hierarchical permissions disabled below TTBR1_EL1 (FEAT_HPDS)"),
    *_hwu(43, "0", " below TTBR0_EL1"),
    *_hwu(47, "1", " below TTBR1_EL1"),
    Field("TBID0", 51, 1, "TBI0 for data accesses only (FEAT_PAuth)"),
    Field("TBID1", 52, 1, "TBI1 for data accesses only (FEAT_PAuth)"),
    Field("NFD0", 53, 1, "non-fault translations through TTBR0_EL1 disabled (FEAT_SVE)"),
    Field("NFD1", 54, 1, "non-fault translations through TTBR1_EL1 disabled (FEAT_SVE)"),
    Field("E0PD0", 55, 1, "EL0 accesses to TTBR0_EL1's region fault (FEAT_E0PD)"),
    Field("E0PD1", 56, 1, "EL0 accesses to TTBR1_EL1's region fault (FEAT_E0PD)"),
    Field("TCMA0", 57, 1, "unchecked accesses for tag 0b0000 (FEAT_MTE2)"),
    Field("TCMA1", 58, 1, "unchecked accesses for tag 0b1111 (FEAT_MTE2)"),
    Field("DS", 59, 1, "52-bit OA and VA with the 4KB and 16KB granules (FEAT_LPA2): descriptor bits 9:8 are "
                       "OA[51:50], shareability from SH0/SH1"),
    Field("MTX0", 60, 1, "logical address tagging of TTBR0_EL1 addresses (FEAT_MTE_NO_ADDRESS_TAGS)"),
    Field("MTX1", 61, 1, "logical address tagging of TTBR1_EL1 addresses (FEAT_MTE_NO_ADDRESS_TAGS)"),
], f"{_ARM}, D24.2.194 (TCR_EL1)")

TCR_EL2 = Layout("TCR_EL2", 64, [
    *_walk_fields("0", 0, TG0_GRANULE, "TTBR0_EL2"),
    _pa_field("PS", 16, "physical address size"),
    Field("TBI", 20, 1, "top byte ignored"),
    *_el2_controls(""),
    Field("RES1_23", 23, 1, "RES1"),
    Field("HPD", 24, 1, "hierarchical permissions disabled (FEAT_HPDS)"),
    Field("TBID", 29, 1, "TBI for data accesses only (FEAT_PAuth)"),
    Field("TCMA", 30, 1, "unchecked accesses for tag 0b0000 (FEAT_MTE2)"),
    Field("MTX", 33, 1, "logical address tagging (FEAT_MTE_NO_ADDRESS_TAGS)"),
], f"{_ARM}, D24.2.195 (TCR_EL2, when HCR_EL2.E2H=0)")

VTCR_EL2 = Layout("VTCR_EL2", 64, [
    *_walk_fields("0", 0, TG0_GRANULE, "stage 2 (VTTBR_EL2)"),
    Field("SL0", 6, 2, "stage 2 starting level (its meaning depends on TG0 and SL2; `stage2_start_level`)"),
    _pa_field("PS", 16, "physical address size of the stage 2 output"),
    Field("VS", 19, 1, "VMID size", {0: "8 bits", 1: "16 bits"}),
    *_el2_controls(" in stage 2"),
    Field("NSW", 29, 1, "Non-secure stage 2 walks for Secure EL1&0 (FEAT_SEL2; RES0 otherwise)"),
    Field("NSA", 30, 1, "Non-secure stage 2 output for Secure EL1&0 (FEAT_SEL2; RES0 otherwise)"),
    Field("SL2", 33, 1, "with DS=1, 4KB granule and SL0=0b00: start at level -1 (FEAT_LPA2)"),
], f"{_ARM}, D24.2.224 (VTCR_EL2)")


# ------------------------------------------------------------------------------------ MAIR_ELx
def _mair(name: str) -> Layout:
    return Layout(name, 64, [Field(f"Attr{n}", 8 * n, 8, f"memory attributes of AttrIndx {n} (`mair_attr`)")
                             for n in range(8)], f"{_ARM}, D24.2.127 ({name}: MAIR_EL1 and MAIR_EL2 alike)")


MAIR_EL1 = _mair("MAIR_EL1")
MAIR_EL2 = _mair("MAIR_EL2")

LINUX_MT_NORMAL, LINUX_MT_NORMAL_TAGGED, LINUX_MT_NORMAL_NC, LINUX_MT_DEVICE_NGNRNE, LINUX_MT_DEVICE_NGNRE = range(5)
LINUX_MAIR_EL1 = 0x0000_0004_0044_FFFF
"""Linux's MAIR_EL1_SET (arch/arm64/mm/proc.S, with the MT_* indices of arch/arm64/include/asm/memory.h,
Linux 5.10 and later): Attr0 = 0xff (MT_NORMAL: Normal Inner/Outer Write-Back Non-transient RA/WA),
Attr1 = 0xff (MT_NORMAL_TAGGED, which the kernel rewrites to 0xf0, Tagged Normal, when the CPU has MTE),
Attr2 = 0x44 (MT_NORMAL_NC: Normal Inner/Outer Non-cacheable), Attr3 = 0x00 (MT_DEVICE_nGnRnE),
Attr4 = 0x04 (MT_DEVICE_nGnRE); Attr5-7 are 0 (unused, Device-nGnRnE)."""

DEVICE_TYPES = (MemoryType.DEVICE_NGNRNE, MemoryType.DEVICE_NGNRE, MemoryType.DEVICE_NGRE, MemoryType.DEVICE_GRE)
"""The Device memory types in the order of MAIR's dd field and of stage 2 MemAttr[1:0]."""
_DEVICE_NAMES = ("Device-nGnRnE", "Device-nGnRE", "Device-nGRE", "Device-GRE")


@dataclass(frozen=True)
class MairAttr:
    """One MAIR_ELx Attr<n> byte decoded. `memory_type` is None for an UNPREDICTABLE encoding; `feature`
    names the architecture feature an encoding needs (UNPREDICTABLE without it)."""

    code: int
    memory_type: MemoryType | None
    description: str
    feature: str | None = None


class _Cache(enum.Enum):
    NC = "Non-cacheable"
    WT = "Write-Through"
    WB = "Write-Back"


def _normal_half(nibble: int, which: str) -> tuple[_Cache, str]:
    """One half (oooo or iiii, nonzero) of a Normal memory Attr: 0b00RW (RW != 00) Write-Through Transient,
    0b0100 Non-cacheable, 0b01RW (RW != 00) Write-Back Transient, 0b10RW Write-Through Non-transient,
    0b11RW Write-Back Non-transient; R and W the Read- and Write-Allocate policies."""
    if nibble == 0b0100:
        return _Cache.NC, f"{which} Non-cacheable"
    cache = _Cache.WB if nibble & 0b0100 else _Cache.WT
    transient = "Non-transient" if nibble & 0b1000 else "Transient"
    alloc = f"{'R' if nibble & 2 else 'No-R'}A {'W' if nibble & 1 else 'No-W'}A"
    return cache, f"{which} {cache.value} {transient} {alloc}"


def mair_attr(code: int) -> MairAttr:
    """Decode one MAIR_ELx Attr<n> byte (D24.2.127, the Attr, dd, oooo and iiii encoding tables)."""
    if not 0 <= code <= 0xFF:
        raise InvalidArgument(f"a MAIR Attr field is 8 bits; {code:#x} is not")
    outer, inner = code >> 4, code & 0xF
    if outer == 0:
        dd, low = inner >> 2, inner & 3
        if low == 0:
            return MairAttr(code, DEVICE_TYPES[dd], _DEVICE_NAMES[dd])
        if low == 1:
            return MairAttr(code, DEVICE_TYPES[dd], f"{_DEVICE_NAMES[dd]} with XS=0", "FEAT_XS")
        return MairAttr(code, None, "UNPREDICTABLE (0b0000dd1x)")
    if inner == 0:
        special = {0x40: (MemoryType.NORMAL_NC, "Normal Inner/Outer Non-cacheable with XS=0", "FEAT_XS"),
                   0xA0: (MemoryType.NORMAL_WT, "Normal Inner/Outer Write-Through Non-transient RA No-WA with "
                                                "XS=0", "FEAT_XS"),
                   0xF0: (MemoryType.NORMAL_WB, "Tagged Normal Inner/Outer Write-Back Non-transient RA WA",
                          "FEAT_MTE2")}
        if code in special:
            t, text, feature = special[code]
            return MairAttr(code, t, text, feature)
        return MairAttr(code, None, "UNPREDICTABLE (0bxxxx0000)")
    (oc, otext), (ic, itext) = _normal_half(outer, "Outer"), _normal_half(inner, "Inner")
    kind = {_Cache.NC: MemoryType.NORMAL_NC, _Cache.WT: MemoryType.NORMAL_WT,
            _Cache.WB: MemoryType.NORMAL_WB}[oc] if oc is ic else MemoryType.NORMAL_MIXED
    return MairAttr(code, kind, f"Normal, {otext}, {itext}")


def mair_attrs(mair: int) -> tuple[MairAttr, ...]:
    """The eight Attr<n> of a MAIR_ELx value, decoded."""
    mair = MAIR_EL1.check(mair)
    return tuple(mair_attr((mair >> (8 * n)) & 0xFF) for n in range(8))


# ------------------------------------------------------------------------------ SCTLR, HCR, ID regs
_SCTLR_COMMON = [
    Field("M", 0, 1, "stage 1 address translation enable"),
    Field("A", 1, 1, "alignment check enable"),
    Field("C", 2, 1, "data accesses cacheable (0: stage 1 Normal memory is Non-cacheable)"),
    Field("SA", 3, 1, "SP alignment check"),
    Field("I", 12, 1, "instruction accesses cacheable"),
    Field("WXN", 19, 1, "write permission implies XN: writable memory is never executable"),
    Field("EE", 25, 1, "big-endian data accesses and translation table walks at this EL"),
]
SCTLR_EL1 = Layout("SCTLR_EL1", 64, [
    *_SCTLR_COMMON,
    Field("SA0", 4, 1, "SP alignment check at EL0"),
    Field("SPAN", 23, 1, "PSTATE.PAN left unchanged on exception entry to EL1 (0: set to 1; FEAT_PAN)"),
    Field("E0E", 24, 1, "big-endian data accesses at EL0"),
    Field("EPAN", 57, 1, "enhanced PAN: PAN also denies privileged access to EL0-executable pages (FEAT_PAN3)"),
], f"{_ARM}, D24.2.175 (SCTLR_EL1)")
SCTLR_EL2 = Layout("SCTLR_EL2", 64, _SCTLR_COMMON,
                   f"{_ARM}, D24.2.176 (SCTLR_EL2, when HCR_EL2.{{E2H, TGE}} is not {{1, 1}})")

HCR_EL2 = Layout("HCR_EL2", 64, [
    Field("VM", 0, 1, "stage 2 translation of EL1&0 accesses"),
    Field("PTW", 2, 1, "protected table walk: a stage 1 walk reaching stage 2 Device memory faults"),
    Field("DC", 12, 1, "default cacheability: stage 1 off at EL1&0 gives Normal Write-Back memory"),
    Field("TVM", 26, 1, "trap writes to the EL1 virtual memory control registers"),
    Field("TGE", 27, 1, "trap general exceptions: EL0 runs in the EL2 (or EL2&0) regime"),
    Field("TRVM", 30, 1, "trap reads of the EL1 virtual memory control registers"),
    Field("RW", 31, 1, "EL1 is AArch64"),
    Field("CD", 32, 1, "stage 2 data accesses and walks Non-cacheable"),
    Field("ID", 33, 1, "stage 2 instruction accesses Non-cacheable"),
    Field("E2H", 34, 1, "EL2 host (FEAT_VHE): the EL2&0 regime, TTBR1_EL2, TCR_EL2 in TCR_EL1's layout"),
    Field("NV", 42, 1, "nested virtualization (FEAT_NV)"),
    Field("NV1", 43, 1, "nested virtualization, EL1 registers (FEAT_NV)"),
    Field("FWB", 46, 1, "forced write-back: stage 2 MemAttr combines by FEAT_S2FWB's rules"),
], f"{_ARM}, D24.2.62 (HCR_EL2, the fields translation reads)")

ID_AA64MMFR0_EL1 = Layout("ID_AA64MMFR0_EL1", 64, [
    Field("PARange", 0, 4, "physical address range supported", _PA_NAMES),
    Field("ASIDBits", 4, 4, "ASID bits", {0: "8 bits", 2: "16 bits"}),
    Field("BigEnd", 8, 4, "mixed-endian support"),
    Field("SNSMem", 12, 4, "Secure versus Non-secure memory distinction"),
    Field("BigEndEL0", 16, 4, "mixed-endian support at EL0"),
    Field("TGran16", 20, 4, "16KB granule at stage 1", {0: "not supported", 1: "supported",
                                                          2: "supported with 52-bit (FEAT_LPA2)"}),
    Field("TGran64", 24, 4, "64KB granule at stage 1", {0: "supported", 15: "not supported"}),
    Field("TGran4", 28, 4, "4KB granule at stage 1", {0: "supported", 1: "supported with 52-bit (FEAT_LPA2)",
                                                        15: "not supported"}),
    Field("TGran16_2", 32, 4, "16KB granule at stage 2 (0: as TGran16)"),
    Field("TGran64_2", 36, 4, "64KB granule at stage 2 (0: as TGran64)"),
    Field("TGran4_2", 40, 4, "4KB granule at stage 2 (0: as TGran4)"),
    Field("ExS", 44, 4, "non-context-synchronizing exception entry and exit"),
    Field("FGT", 56, 4, "fine-grained traps"),
    Field("ECV", 60, 4, "enhanced counter virtualization"),
], f"{_ARM}, D24.2.88 (ID_AA64MMFR0_EL1)")


# --------------------------------------------------------------------------------------- decodings
def table_base(ttbr: int, wide: bool = False) -> int:
    """The initial lookup table's address in a TTBR or VTTBR_EL2 value (D24.2.209, BADDR). `wide`: BADDR
    holds a 52-bit address (TCR_ELx.IPS/PS of 52 bits, or DS=1), whose bits 51:48 are register bits 5:2
    (bit 1 RES0; the table at least 64-byte aligned); otherwise the address is register bits 47:1."""
    ttbr = TTBR0_EL1.check(ttbr)
    if wide:
        return (ttbr & 0x0000_FFFF_FFFF_FFC0) | ((ttbr >> 2) & 0xF) << 48
    return ttbr & 0x0000_FFFF_FFFF_FFFE


def pa_bits(code: int) -> int:
    """A PARange, IPS or PS encoding's physical address width (InvalidArgument for a reserved one)."""
    if code not in PA_BITS:
        raise InvalidArgument(f"physical address size encoding {code:#06b} is reserved")
    return PA_BITS[code]


def pa_range(mmfr0: int) -> int:
    """ID_AA64MMFR0_EL1.PARange as a PA width in bits."""
    return pa_bits(ID_AA64MMFR0_EL1.get(mmfr0, "PARange"))


def tg0_granule(code: int) -> Granule:
    """TCR_ELx.TG0 / VTCR_EL2.TG0 -> granule: 0b00 4KB, 0b01 64KB, 0b10 16KB (0b11 reserved)."""
    if code not in TG0_GRANULE:
        raise InvalidArgument(f"TG0 {code:#04b} is reserved (the PE then uses an IMPLEMENTATION DEFINED granule)")
    return TG0_GRANULE[code]


def tg1_granule(code: int) -> Granule:
    """TCR_EL1.TG1 -> granule: 0b01 16KB, 0b10 4KB, 0b11 64KB (0b00 reserved)."""
    if code not in TG1_GRANULE:
        raise InvalidArgument(f"TG1 {code:#04b} is reserved (the PE then uses an IMPLEMENTATION DEFINED granule)")
    return TG1_GRANULE[code]


def stage1_start_level(granule: Granule, va_bits: int) -> int:
    """The initial lookup level of a stage 1 walk of a 2**va_bits region (D8.2, the initial lookup level
    follows from TnSZ): the level whose table resolves the top VA bits, each level resolving `stride` bits
    above the page offset. 4KB with 48 bits: level 0; with 39 bits: level 1; with 52 bits (DS=1): level -1."""
    if va_bits <= granule.value:
        raise InvalidArgument(f"a {va_bits}-bit region is not larger than one {granule.label} page")
    levels = -(-(va_bits - granule.value) // granule.stride)
    return 4 - levels


def stage2_start_level(granule: Granule, sl0: int, sl2: int = 0) -> int:
    """VTCR_EL2.SL0 (with SL2 for the 4KB granule, FEAT_LPA2) -> the stage 2 initial lookup level
    (D24.2.224, SL0): 4KB 0b00 level 2, 0b01 level 1, 0b10 level 0, 0b11 level 3 (FEAT_TTST), SL2=1 with
    0b00 level -1; 16KB and 64KB 0b00 level 3, 0b01 level 2, 0b10 level 1, 0b11 level 0 (16KB with FEAT_LPA2;
    reserved with 64KB). InvalidArgument for a reserved combination."""
    if sl2:
        if granule is Granule.K4 and sl0 == 0:
            return -1
        raise InvalidArgument(f"VTCR_EL2.SL2=1 with SL0={sl0:#04b} and the {granule.label} granule is reserved")
    if granule is Granule.K4:
        return {0: 2, 1: 1, 2: 0, 3: 3}[sl0]
    if granule is Granule.K64 and sl0 == 3:
        raise InvalidArgument("VTCR_EL2.SL0=0b11 is reserved with the 64KB granule")
    return 3 - sl0
