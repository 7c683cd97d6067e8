"""The VMSAv8-64 translation rules: stage 1 (the EL1&0, EL2 and EL2&0 regimes) and stage 2, with the faults
and syndromes the hardware reports.

Arm ARM DDI 0487 M.a.a, D8.2 (the walk; the pseudocode `AArch64.S1Walk`, `AArch64.S2Walk`), D8.3
(descriptors, `AArch64.BlockDescSupported`), D8.4 (permissions: `AArch64.S1DirectBasePermissions`,
`AArch64.S1CheckPermissions`, `AArch64.S2CheckPermissions`), D8.5 (hardware Access flag and dirty state,
FEAT_HAFDBS), D8.6 (memory attributes, `S2CombineS1MemAttrs`) and D8.15 / D24 (fault status codes, ESR_ELx,
FAR_ELx, HPFAR_EL2).

Before a walk (`Region`, which `regimes` builds from the registers): a stage 1 VA selects TTBR0 or TTBR1
by bit 55 (in the two-range regimes), its top byte is ignored with TBI (data accesses only with TBID), and
it must be in range for its TnSZ; otherwise a Translation fault at level 0. EPDn refuses every walk and
E0PDn every EL0 walk (Translation fault, level 0); a TTBR base beyond the output size is an Address size
fault at level 0.

Per lookup level, in the manual's order (the first that holds is the fault):
1. bit 0 = 0 → Translation fault (`INVALID`);
2. bits 1:0 = 0b01 at level 3, or a block at a level without blocks for the granule and OA form
   (`AArch64.BlockDescSupported`) → Translation fault (`RESERVED`);
3. a table or output address with bits at or above the output size (TCR_ELx.IPS/PS or VTCR_EL2.PS, at
   most the implemented PA size `pa_range`) → Address size fault (`ADDRESS_SIZE`);
4. at a leaf, AF=0 without hardware Access flag update (HA) → Access flag fault (`ACCESSED_DIRTY`);
5. at a leaf, the access not permitted → Permission fault (`PERMISSION`).

Stage 1 permissions (`perm_bit` layout: EL1 or EL2 in the supervisor bits, EL0 in the user bits): the table
attributes narrow every lookup below them unless HPDn (APTable[0] no EL0 data access, APTable[1] no writes,
PXNTable no privileged and UXNTable no unprivileged execution; in EL2 APTable[1] and XNTable only); at the
leaf AP[2:1] (Table D8-60: 0b00 EL1 read/write, 0b01 both read/write, 0b10 EL1 read-only, 0b11 both
read-only; in EL2 AP[2] alone, and EL0 has no access at all), PXN and UXN (XN in EL2). Then, as
`AArch64.S1DirectBasePermissions`: a location EL0 can write is never privileged-executable; with
SCTLR_ELx.WXN a writable location is not executable at that privilege; with PSTATE.PAN (`pan`) EL1 loses
data access to locations EL0 can read or write (or execute, with SCTLR_EL1.EPAN, FEAT_PAN3); an
instruction fetch from Device memory is a Permission fault (`AArch64.S1CheckPermissions`). With HD and DBM=1
a write to a read-only (AP[2]=1) location is permitted and makes it writable. The memory type is MAIR's
attribute at AttrIndx (Normal becomes Non-cacheable with SCTLR_ELx.C=0).

Stage 2 (`S2Rules`): S2AP[0] read, S2AP[1] write, XN[1:0] (Table D8-78, FEAT_XNX: 0b00 executable, 0b01
not at EL1, 0b10 not at all, 0b11 not at EL0; without FEAT_XNX XN[1] alone), no table attributes, AF and
DBM as at stage 1 (VTCR_EL2.HA/HD). The memory type is MemAttr (with HCR_EL2.FWB, FEAT_S2FWB's forms), and
two stages combine to the more restrictive type of the two (`S2CombineS1MemAttrs`: Device wins, then the
lower of Non-cacheable, Write-Through and Write-Back; with FWB, the stage 2 forms that force or keep a
type). With HCR_EL2.PTW a stage 1 table read that stage 2 maps to Device memory is a stage 2 Permission
fault. Stage 1 table reads are stage 2 reads (S1PTW=1); a hardware update of a stage 1 descriptor is a stage
2 write.

Hardware updates (`written`): with HA the leaf's AF is set on first use; with HD a write to a DBM=1 leaf
clears AP[2] (stage 1) or sets S2AP[1] (stage 2). Table descriptors' AF (FEAT_HAFT) is not modelled.

What a fault reports (`syndrome`): `esr` (EC: 0x24/0x25 Data Abort from a lower / the same EL, 0x20/0x21
Instruction Abort; IL=1; ISS with the DFSC/IFSC of the fault kind and level (for S1PTW=1 the level of the
stage 2 walk: D24.2.46, "the level refers the level of the stage2 translation that is translating a stage 1
translation walk"), WnR (the instruction's access, S1PTW or not: the pseudocode's fault.write), S1PTW; ISV=0 — the
instruction syndrome of a stage 2 Data Abort is the instruction's, not the tables'), `far` (the VA),
`hpfar` (HPFAR_EL2 of a stage 2 fault: FIPA = IPA[51:12] in bits 43:4) and `el`, the Exception level that
takes it (the regime's for stage 1, EL2 for stage 2; an External abort on the final access, where stage 2
translated it to a PA without memory, is not a stage 2 fault: the regime's EL, with HCR_EL2.TEA=0).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from ... import args
from ...errors import InvalidArgument
from ...lanes import Flag, Small, Word, bit, first, not_, take, u64, where
from ...translation import (
    ALL_PERMS,
    Access,
    FaultKind,
    MemoryType,
    Outcome,
    Privilege,
    Reason,
    Regime,
    Region,
    Step,
    perm_bit,
)
from .codec import (
    AF,
    AP_EL0,
    AP_RO,
    AP_TABLE_NO_EL0,
    AP_TABLE_NO_WRITE,
    DBM,
    MEMATTR,
    PXN,
    PXN_TABLE,
    S2AP_R,
    S2AP_W,
    TYPE,
    UXN,
    UXN_TABLE,
    VALID,
    XN_SHIFT,
    A64Codec,
    S2Codec,
    s2_memattr_type,
)
from .regs import DEVICE_TYPES

ARCH = "aarch64"
TRANSLATION = FaultKind.register(ARCH, "translation", "Translation fault")
ADDRESS_SIZE = FaultKind.register(ARCH, "address-size", "Address size fault")
ACCESS_FLAG = FaultKind.register(ARCH, "access-flag", "Access flag fault")
PERMISSION = FaultKind.register(ARCH, "permission", "Permission fault")
EXTERNAL_ABORT = FaultKind.register(ARCH, "external-abort",
                                    "Synchronous External abort: the walk or the access reached no memory "
                                    "(platform-defined)")

_SUP, _USER = Privilege.SUPERVISOR, Privilege.USER
_PR, _PW, _PX = (perm_bit(a, _SUP) for a in Access)
_UR, _UW, _UX = (perm_bit(a, _USER) for a in Access)
_READS, _WRITES, _FETCHES = _PR | _UR, _PW | _UW, _PX | _UX
_USER_DATA = _UR | _UW
_ALL = ALL_PERMS
_ONES = (1 << 64) - 1
_IS_DEVICE = np.zeros(max(MemoryType) + 1, dtype=np.uint64)
_IS_DEVICE[list(DEVICE_TYPES)] = 1

# Fault status codes (ESR_ELx.ISS DFSC/IFSC, PAR_EL1.FST; D24, "ISS encoding for an exception from a Data
# Abort"): the kind's code with the level in bits 1:0; level -1 (FEAT_LPA2) has codes of its own.
FSC_ADDRESS_SIZE, FSC_TRANSLATION, FSC_ACCESS_FLAG, FSC_PERMISSION = 0b000000, 0b000100, 0b001000, 0b001100
FSC_EXTERNAL, FSC_EXTERNAL_WALK = 0b010000, 0b010100
_FSC_LEVEL_MINUS_1 = {FSC_ADDRESS_SIZE: 0b101001, FSC_TRANSLATION: 0b101011, FSC_EXTERNAL_WALK: 0b010011}
_FSC = np.zeros(max(Reason) + 1, dtype=np.uint64)
_FSC_MINUS_1 = np.zeros(max(Reason) + 1, dtype=np.uint64)
_LEVELLED = np.zeros(max(Reason) + 1, dtype=np.uint64)      # 1 where the code carries the level
for _reason, _code in ((Reason.INVALID, FSC_TRANSLATION), (Reason.RESERVED, FSC_TRANSLATION),
                       (Reason.NON_CANONICAL, FSC_TRANSLATION), (Reason.ADDRESS_SIZE, FSC_ADDRESS_SIZE),
                       (Reason.ACCESSED_DIRTY, FSC_ACCESS_FLAG), (Reason.PERMISSION, FSC_PERMISSION),
                       (Reason.TABLE_OUTSIDE_MEMORY, FSC_EXTERNAL_WALK), (Reason.PA_OUTSIDE_MEMORY, FSC_EXTERNAL)):
    _FSC[_reason], _FSC_MINUS_1[_reason] = _code, _FSC_LEVEL_MINUS_1.get(_code, _code)
    _LEVELLED[_reason] = int(_reason != Reason.PA_OUTSIDE_MEMORY)
EC_IABT_LOWER, EC_IABT_SAME, EC_DABT_LOWER, EC_DABT_SAME = 0x20, 0x21, 0x24, 0x25
ESR_IL, ESR_WNR, ESR_S1PTW = 1 << 25, 1 << 6, 1 << 7


def fault_status(reason: Small, level: Small) -> Word:
    """The fault status code (DFSC/IFSC) of each fault: its kind's code, with the level (0-3) in bits 1:0, or
    the level -1 code."""
    low = u64(level & 1 != 0) | u64(level & 2 != 0) * 2             # the level's bits 1:0, as uint64
    return where(level < 0, take(_FSC_MINUS_1, reason), take(_FSC, reason) | low * take(_LEVELLED, reason))


_KINDS = {Reason.INVALID: TRANSLATION, Reason.RESERVED: TRANSLATION, Reason.NON_CANONICAL: TRANSLATION,
          Reason.ADDRESS_SIZE: ADDRESS_SIZE, Reason.ACCESSED_DIRTY: ACCESS_FLAG, Reason.PERMISSION: PERMISSION,
          Reason.TABLE_OUTSIDE_MEMORY: EXTERNAL_ABORT, Reason.PA_OUTSIDE_MEMORY: EXTERNAL_ABORT}


def fault_kind(reason: Reason) -> FaultKind:
    return _KINDS[reason]


def _judged(codec: A64Codec | S2Codec, oa_bits: int) -> int:
    """Every descriptor bit but the address bits below the output size (which the walk reads only as an
    address)."""
    g = codec.address.granule.size
    return ((1 << 64) - 1) ^ int(codec.address.encode(((1 << oa_bits) - 1) & ~(g - 1)))


class _Switches:
    """What the option sets share: every field a bool, HD only with HA (D8.5), and their JSON form."""

    ha: bool
    hd: bool

    def __post_init__(self) -> None:
        for f in dataclasses.fields(cast(Any, self)):
            args.boolean(getattr(self, f.name), f.name)
        if self.hd and not self.ha:
            raise InvalidArgument("HD=1 with HA=0: hardware dirty state management needs HA (D8.5)")

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(cast(Any, self))


def _is_leaf(pte: Word, level: int) -> Flag:
    """Descriptors that map memory by bits 1:0 (Table D8-48): a page at level 3 (0b11), a block above it
    (0b01; valid or not, which `_step` checks first)."""
    return bit(pte, TYPE) if level == 3 else not_(bit(pte, TYPE))


def _step(region: Region, depth: int, pte: Word, leaf: Flag, blocks: frozenset[int], oa_bits: int, ha: bool,
          rights: Word, memtype: Small, lane_bit: Small) -> Step:
    """A lookup's verdict at either stage, the faults in the manual's order (module docstring): invalid;
    0b01 at level 3 or a block where the granule has none; an address at or above the output size; AF=0
    without HA; the access not in `rights`."""
    level = region.fmt.levels[depth].arch_level
    address = cast(A64Codec | S2Codec, region.fmt.codec).address
    bad_type = not_(leaf) if level == 3 else (False if level in blocks else leaf)
    too_wide = (address.paddr(pte) >> oa_bits) != 0 if oa_bits < address.oa_bits else False
    reason = first(pte, (not_(bit(pte, VALID)), Reason.INVALID), (bad_type, Reason.RESERVED),
                   (too_wide, Reason.ADDRESS_SIZE),
                   (leaf & not_(bit(pte, AF)) if not ha else False, Reason.ACCESSED_DIRTY),
                   (leaf & ((rights >> lane_bit) & 1 == 0), Reason.PERMISSION))
    return Step(reason, leaf, region.fmt.levels[depth].span - 1, rights, memtype)


def _updated(pte: Word, leaf: Flag, access: Small, o: _Switches, clear: int, dirty: int) -> Word:
    """The hardware's update of leaves it uses (D8.5): AF set with HA; with HD, a write to a DBM=1 leaf makes
    it writable (`clear`/`dirty`: the bits that say so, AP[2] at stage 1, S2AP[1] at stage 2)."""
    if not o.ha:
        return pte
    out = where(leaf, pte | AF, pte)
    if o.hd:
        out = where(leaf & (access == Access.WRITE) & bit(pte, DBM), (out & (_ONES ^ clear)) | dirty, out)
    return out


@dataclass(frozen=True)
class A64Options(_Switches):
    """The PSTATE and SCTLR/TCR bits that change a stage 1 walk beyond the formats: PSTATE.PAN (for the
    accesses PAN applies to: EL1 loads and stores other than LDTR/STTR), SCTLR_ELx.EPAN (FEAT_PAN3),
    SCTLR_ELx.WXN, TCR_ELx.HA and HD (FEAT_HAFDBS). SCTLR_ELx.C is the codec's (`A64Codec.cacheable`)."""

    pan: bool = False
    epan: bool = False
    wxn: bool = False
    ha: bool = False
    hd: bool = False


@dataclass(frozen=True)
class _RegionRules:
    """What a stage 1 region's walk needs beyond its format: the output size in bits, HPDn, the block
    levels of its granule and OA form, and the descriptor bits the rules read."""

    oa_bits: int
    hpd: bool
    blocks: frozenset[int]
    judged: int


class A64Rules:
    """`WalkRules` for a stage 1 regime: `regime` holds its regions (built by `regimes`), `two_ranges`
    whether it has EL0 (EL1&0, EL2&0) or not (EL2), `el` the Exception level it belongs to (1 or 2), and
    per region the output size and HPDn (`outputs`, `hpd`, by region name)."""

    def __init__(self, regime: Regime, *, el: int, two_ranges: bool, outputs: dict[str, int],
                 hpd: dict[str, bool] | None = None, options: A64Options | None = None) -> None:
        self.regime = regime
        self.el = args.integer(el, "Exception level", 1, 3)
        self.two_ranges = args.boolean(two_ranges, "two_ranges")
        self.options = options or A64Options()
        hpd = hpd or {}
        self._regions = {}
        for r in regime.regions:
            codec = cast(A64Codec, r.fmt.codec)
            self._regions[r.name] = _RegionRules(outputs[r.name], bool(hpd.get(r.name, False)),
                                                 frozenset(codec.block_levels()), _judged(codec, outputs[r.name]))

    # ----------------------------------------------------------------------------------- the walk
    def step(self, region: Region, depth: int, pte: Word, access: Small, priv: Small, carry: Word) -> Step:
        p = self._regions[region.name]
        codec = cast(A64Codec, region.fmt.codec)
        level = region.fmt.levels[depth].arch_level
        leaf = _is_leaf(pte, level)
        memtype = codec.memory_type_np(pte, level != 3)
        if level == 3:
            rights = self._leaf_rights(pte, carry, memtype)
        elif level in p.blocks:
            rights = where(leaf, self._leaf_rights(pte, carry, memtype), self._table_rights(pte, carry, p.hpd))
        else:
            rights = self._table_rights(pte, carry, p.hpd)
        return _step(region, depth, pte, leaf, p.blocks, p.oa_bits, self.options.ha, rights, memtype,
                     priv * 3 + access)

    def _table_rights(self, pte: Word, carry: Word, hpd: bool) -> Word:
        """The carry a table descriptor passes down: narrowed by its table attributes unless HPDn."""
        if hpd:
            return carry
        if not self.two_ranges:                       # EL2: APTable[1] and XNTable (bit 60) only
            return carry & where(bit(pte, AP_TABLE_NO_WRITE), _ALL & ~_WRITES, _ALL) & \
                where(bit(pte, UXN_TABLE), _ALL & ~_FETCHES, _ALL)
        keep = where(bit(pte, AP_TABLE_NO_EL0), _ALL & ~_USER_DATA, _ALL) & \
            where(bit(pte, AP_TABLE_NO_WRITE), _ALL & ~_WRITES, _ALL) & \
            where(bit(pte, PXN_TABLE), _ALL & ~_PX, _ALL) & where(bit(pte, UXN_TABLE), _ALL & ~_UX, _ALL)
        return carry & keep

    def _leaf_rights(self, pte: Word, carry: Word, memtype: Small) -> Word:
        """The effective permissions at a leaf (module docstring): its own, within the carry, with the
        rules of `AArch64.S1DirectBasePermissions`; with HD, a DBM=1 leaf's writes as if AP[2]=0."""
        rights = self._rights(pte, carry, memtype)
        if self.options.hd:
            dirty = self._rights(pte & (_ONES ^ AP_RO), carry, memtype)
            rights = where(bit(pte, DBM), rights | (dirty & _WRITES), rights)
        return rights

    def _rights(self, pte: Word, carry: Word, memtype: Small) -> Word:
        o = self.options
        if not self.two_ranges:                       # EL2: AP[2] and XN; no EL0
            own = _PR | where(bit(pte, AP_RO), 0, _PW) | where(bit(pte, UXN), 0, _PX)
            rights = carry & own
            if o.wxn:
                rights = rights & where(bit(rights, _PW), _ALL & ~_PX, _ALL)
        else:
            el0, ro = bit(pte, AP_EL0), bit(pte, AP_RO)
            own = _PR | where(ro, 0, _PW) | where(el0, _UR | where(ro, 0, _UW), 0)
            own = own | where(bit(pte, PXN), 0, _PX) | where(bit(pte, UXN), 0, _UX)
            rights = carry & own
            rights = rights & where(bit(rights, _UW), _ALL & ~_PX, _ALL)      # EL0-writable: never PX
            if o.wxn:
                rights = rights & where(bit(rights, _PW), _ALL & ~_PX, _ALL) & \
                    where(bit(rights, _UW), _ALL & ~_UX, _ALL)
            if o.pan:
                el0_access = _UR | _UW | (_UX if o.epan else 0)
                rights = rights & where(bit(rights, el0_access), _ALL & ~(_PR | _PW), _ALL)
        return rights & where(take(_IS_DEVICE, memtype) != 0, _ALL & ~_FETCHES, _ALL)

    def judged_bits(self, region: Region, depth: int) -> int:
        return self._regions[region.name].judged

    def written(self, region: Region, depth: int, pte: Word, leaf: Flag, access: Small) -> Word:
        """With HA the leaf's AF is set; with HD a write to a DBM=1 leaf clears AP[2] (D8.5)."""
        return _updated(pte, leaf, access, self.options, AP_RO, 0)

    def implicit(self) -> A64Rules:
        return self

    def fault_kind(self, reason: Reason) -> FaultKind:
        return fault_kind(reason)

    def combine(self, stage1: Small, stage2: Small, leaf2: Word) -> Small:
        """Stage 1 alone: its own memory type (a second stage's rules are `S2Rules`)."""
        return stage1

    def stage2_privilege(self, priv: Small, carry: Word) -> Small:
        return priv

    def syndrome(self, t: Outcome, access: Small, priv: Small, stage2: object | None) -> dict[str, Word]:
        """ESR_ELx, FAR_ELx, HPFAR_EL2 and the Exception level that takes each fault (module docstring)."""
        # an External abort on the final access, after stage 2 translated it, is no stage 2 fault: it is taken
        # to EL1 (HCR_EL2.TEA=0, which the model assumes; D17.2.40) as DFSC 0b010000, without S1PTW or HPFAR
        s2 = (t.stage == 2) & not_((t.reason == Reason.PA_OUTSIDE_MEMORY) & (t.implicit == 0))
        s1ptw = s2 & (t.implicit != 0)
        fetch = access == Access.EXECUTE
        write = u64(access == Access.WRITE)           # the instruction's, S1PTW or not (`NoFault`: fault.write)
        target = where(s2, 2, self.el)
        lower = where(priv == Privilege.USER, 0, self.el) < target
        ec = where(fetch, where(lower, EC_IABT_LOWER, EC_IABT_SAME), where(lower, EC_DABT_LOWER, EC_DABT_SAME))
        esr = ec << 26 | ESR_IL | u64(s1ptw) * ESR_S1PTW | where(fetch, 0, write) * ESR_WNR | \
            fault_status(t.reason, t.level)
        hpfar = where(s2, (t.gpa >> 12) << 4, 0)
        return {"esr": esr, "far": t.va, "hpfar": hpfar, "el": target}


@dataclass(frozen=True)
class S2Options(_Switches):
    """The HCR_EL2 and VTCR_EL2 bits that change a stage 2 walk: HCR_EL2.FWB (FEAT_S2FWB) and PTW,
    VTCR_EL2.HA and HD (FEAT_HAFDBS), and whether the PE implements FEAT_XNX (stage 2 XN[0])."""

    fwb: bool = False
    ptw: bool = False
    ha: bool = False
    hd: bool = False
    xnx: bool = True


_XN_RIGHTS = {True: (_FETCHES, _UX, 0, _PX), False: (_FETCHES, _FETCHES, 0, 0)}
"""Stage 2 XN[1:0] -> the fetches it permits (FEAT_XNX: Table D8-78; without it XN[1] alone)."""


class S2Rules:
    """`WalkRules` for stage 2 from VTTBR_EL2/VTCR_EL2 (`regimes.stage2_rules`): `fmt`'s tables at `root`,
    the output size `oa_bits` (VTCR_EL2.PS, at most the implemented PA size)."""

    def __init__(self, region: Region, oa_bits: int, options: S2Options | None = None, *,
                 table_walk: bool = False) -> None:
        """`table_walk`: these are the rules of stage 1's table reads through stage 2 (`implicit`), which
        HCR_EL2.PTW faults at Device memory."""
        self.regime = Regime(region.fmt.name, (region,))
        self.options = options or S2Options()
        self.oa_bits = args.integer(oa_bits, "output size", 32, 53)
        self._table_walk = table_walk
        codec = cast(S2Codec, region.fmt.codec)
        self._blocks = frozenset(codec.block_levels())
        self._judged = _judged(codec, oa_bits)
        self._xn = np.array(_XN_RIGHTS[self.options.xnx], dtype=np.uint64)

    def step(self, region: Region, depth: int, pte: Word, access: Small, priv: Small, carry: Word) -> Step:
        codec = cast(S2Codec, region.fmt.codec)
        level = region.fmt.levels[depth].arch_level
        leaf = _is_leaf(pte, level)
        memtype = codec.memory_type_np(pte, level != 3)
        own = where(bit(pte, S2AP_R), _READS, 0) | where(bit(pte, S2AP_W), _WRITES, 0) | \
            take(self._xn, (pte >> XN_SHIFT) & 3)
        if self.options.hd:
            own = own | where(bit(pte, DBM), _WRITES, 0)
        if self._table_walk and self.options.ptw:     # HCR_EL2.PTW: a table read from Device memory
            own = own & where(take(_IS_DEVICE, memtype) != 0, 0, _ALL)
        rights = where(leaf, carry & own, carry)
        return _step(region, depth, pte, leaf, self._blocks, self.oa_bits, self.options.ha, rights, memtype,
                     priv * 3 + access)

    def judged_bits(self, region: Region, depth: int) -> int:
        return self._judged

    def written(self, region: Region, depth: int, pte: Word, leaf: Flag, access: Small) -> Word:
        """With VTCR_EL2.HA the leaf's AF is set; with HD a write to a DBM=1 leaf sets S2AP[1] (D8.5)."""
        return _updated(pte, leaf, access, self.options, 0, S2AP_W)

    def implicit(self) -> S2Rules:
        return S2Rules(self.regime.single, self.oa_bits, self.options, table_walk=True) if self.options.ptw \
            else self

    def fault_kind(self, reason: Reason) -> FaultKind:
        return fault_kind(reason)

    def combine(self, stage1: Small, stage2: Small, leaf2: Word) -> Small:
        """The memory type of a two-stage translation (module docstring): by `_combined[stage1, stage2]`, or
        with FWB by `_forced[stage1, MemAttr]` (MemAttr from the stage 2 leaf `leaf2`)."""
        if self.options.fwb:
            return take(self._forced.reshape(-1), _wide(stage1) * 16 + ((leaf2 & MEMATTR) >> 2))
        return take(self._combined.reshape(-1), _wide(stage1) * _TYPES + stage2)

    @functools.cached_property
    def _combined(self) -> npt.NDArray[np.uint8]:
        return np.array([[_more_restrictive(a, b) for b in range(_TYPES)] for a in range(_TYPES)], dtype=np.uint8)

    @functools.cached_property
    def _forced(self) -> npt.NDArray[np.uint8]:
        out = np.zeros((_TYPES, 16), dtype=np.uint8)
        for a in range(_TYPES):
            for m in range(16):
                s2 = s2_memattr_type(m, True)
                if m & 7 == 0b111 or s2 is None:               # keep stage 1's (0b111; reserved forms)
                    out[a, m] = a
                elif m & 7 == 0b101:                             # NC, unless stage 1 is Device
                    out[a, m] = a if _is_device(a) else MemoryType.NORMAL_NC
                elif s2 in DEVICE_TYPES:
                    out[a, m] = _more_restrictive(a, s2)
                else:                                            # 0b110: forced Write-Back
                    out[a, m] = s2
        return out

    def stage2_privilege(self, priv: Small, carry: Word) -> Small:
        return priv

    def syndrome(self, t: Outcome, access: Small, priv: Small, stage2: object | None) -> dict[str, Word]:
        """The stage 2 walk alone (an IPA translated for EL1 or EL0): the fault as the two-stage walk would
        report it at stage 2, with S1PTW=0."""
        fetch = access == Access.EXECUTE
        ec = where(fetch, EC_IABT_LOWER, EC_DABT_LOWER)
        esr = ec << 26 | ESR_IL | where(fetch, 0, u64(access == Access.WRITE)) * ESR_WNR | \
            fault_status(t.reason, t.level)
        return {"esr": esr, "hpfar": (t.va >> 12) << 4}


_TYPES = max(MemoryType) + 1


def _wide(value: Small) -> Word:
    """A uint8 column as uint64 (so that arithmetic on it cannot wrap), or an int as itself."""
    return value.astype(np.uint64) if isinstance(value, np.ndarray) else value
_NORMAL_ORDER = {MemoryType.NORMAL_NC: 0, MemoryType.NORMAL_WT: 1, MemoryType.NORMAL_MIXED: 2, MemoryType.NORMAL_WB: 3}


def _is_device(value: int) -> bool:
    return value in DEVICE_TYPES


def _more_restrictive(a: int, b: int) -> int:
    """Two memory types combined (`S2CombineS1MemAttrs`): Device beats Normal and the stricter Device type
    wins; Normal Non-cacheable beats Write-Through beats Write-Back; a mixed inner/outer type stays mixed
    except with Non-cacheable. DEFAULT (a stage without its own type: translation off, a reserved form)
    leaves the other's."""
    if a == MemoryType.DEFAULT or a == MemoryType.NONE:
        return b
    if b == MemoryType.DEFAULT or b == MemoryType.NONE:
        return a
    if _is_device(a) or _is_device(b):
        return min(x for x in (a, b) if _is_device(x))
    if a not in _NORMAL_ORDER or b not in _NORMAL_ORDER:
        return a
    return min(a, b, key=lambda x: _NORMAL_ORDER[MemoryType(x)])
