"""The walk rules a PE's register values select: the EL1&0 regime (`el1_rules`), the EL2 and EL2&0 regimes
(`el2_rules`) and stage 2 (`stage2_rules`).

Arm ARM DDI 0487 M.a.a: D8.1.2 and D8.2 (translation regimes, TTBR selection by VA bit 55, TnSZ and the
initial lookup level, TBI/TBID, EPDn, E0PDn, HPDn), D8.2.2 / D24.2.194 (the effective output size: the
smaller of TCR_ELx.IPS/PS and the implemented PA size; 52 bits only with the 52-bit descriptor forms),
D24.2.209 (TTBRn BADDR, with BADDR[51:48] in bits 5:2 for a 52-bit output size), D24.2.224 (VTCR_EL2),
and the pseudocode `AArch64.S1TxSZFaults`, `AArch64.S2TxSZFaults`, `AArch64.S2InvalidSL` and
`AArch64.S2InconsistentSL`.

Register values that make every walk CONSTRAINED UNPREDICTABLE or fault (a TnSZ out of range, a reserved
granule encoding, an invalid or inconsistent stage 2 starting level, DS=1 without FEAT_LPA2) are refused
with InvalidArgument naming the field. Table base bits below the initial table's size are RES0 and read as
0 (one of the behaviours the manual permits); BADDR holds a 52-bit address (A[51:48] in bits 5:2, the table
64-byte aligned) with DS=1, or with FEAT_LPA's 64KB form and a 52-bit IPS/PS. `pa_range` is the
implemented PA size (PAMax, ID_AA64MMFR0_EL1.PARange), default 48 bits; 52-bit descriptor forms need 52.
With SCTLR_ELx.M=0 stage 1 is off (a regime without regions: PA = VA).
"""

from __future__ import annotations

from dataclasses import dataclass

from ... import args
from ...errors import InvalidArgument
from ...layout import Layout
from ...translation import ALL_PERMS, Access, Privilege, Reason, Regime, Region, perm_bit
from .codec import A64Codec, OutputAddress, S2Codec
from .descriptors import Granule, OAForm
from .modes import stage1_format, stage2_format
from .regs import (
    HCR_EL2,
    LINUX_MAIR_EL1,
    SCTLR_EL1,
    SCTLR_EL2,
    TCR_EL1,
    TCR_EL2,
    VTCR_EL2,
    pa_bits,
    stage2_start_level,
    table_base,
    tg0_granule,
    tg1_granule,
)
from .walk import A64Options, A64Rules, S2Options, S2Rules

DEFAULT_PA_RANGE = 48
_DATA = perm_bit(Access.READ, Privilege.SUPERVISOR) | perm_bit(Access.WRITE, Privilege.SUPERVISOR) | \
    perm_bit(Access.READ, Privilege.USER) | perm_bit(Access.WRITE, Privilege.USER)
_EL1_ONLY = sum(perm_bit(a, Privilege.SUPERVISOR) for a in Access)


@dataclass(frozen=True)
class Half:
    """One translation table region of a regime as its TCR describes it: the TTBR value and name, TnSZ,
    the granule, TBIn, TBIDn, EPDn, E0PDn and HPDn, and whether it is the upper range (TTBR1)."""

    name: str
    ttbr: int
    tsz: int
    granule: Granule
    upper: bool = False
    tbi: bool = False
    tbid: bool = False
    epd: bool = False
    e0pd: bool = False
    hpd: bool = False


def _form(granule: Granule, ds: bool, pa_range: int) -> OAForm:
    """The descriptors' OA form: FEAT_LPA2's with DS=1 (4KB, 16KB), FEAT_LPA's with the 64KB granule on a PE
    with 52-bit PAs, else 48-bit. DS is RES0 for a 64KB granule (D24.2.194): it changes nothing there."""
    if ds and granule is not Granule.K64:
        if pa_range < 52:
            raise InvalidArgument(f"DS=1 needs FEAT_LPA2 (52-bit PAs); this PE has {pa_range}-bit PAs")
        return OAForm.LPA2
    return OAForm.LPA if granule is Granule.K64 and pa_range >= 52 else OAForm.OA48


def _output_bits(code: int, form: OAForm, pa_range: int) -> int:
    """The effective output size: {I}PS, at most the PA size and the form's width (D8.2.2)."""
    return min(pa_bits(code), pa_range, form.oa_bits)


def _check_tsz(half: Half, form: OAForm, pa_range: int, ttst: bool) -> None:
    """`AArch64.S1TxSZFaults`: TnSZ from 16 (12 with a 52-bit VA: FEAT_LPA2's DS=1, or FEAT_LVA with the 64KB
    granule) to 39 (48 with FEAT_TTST)."""
    low = 12 if form is OAForm.LPA2 or (half.granule is Granule.K64 and pa_range >= 52) else 16
    high = 48 if ttst else 39
    if not low <= half.tsz <= high:
        raise InvalidArgument(f"{half.name}'s region: T{'1' if half.upper else '0'}SZ={half.tsz} is outside "
                              f"{low}..{high} for the {half.granule.label} granule (a walk would fault or be "
                              "CONSTRAINED UNPREDICTABLE)")


def _wide_baddr(form: OAForm, ps: int) -> bool:
    """Whether a TTBR's or VTTBR_EL2's BADDR holds a 52-bit address (D24.2.209, `AArch64.S1TTBaseAddress`):
    with DS=1 (FEAT_LPA2's form) whatever the output size, or with FEAT_LPA's 64KB form and a 52-bit
    IPS/PS."""
    return form is OAForm.LPA2 or (form is OAForm.LPA and pa_bits(ps) >= 52)


def _table_root(ttbr: int, root_size: int, wide: bool) -> int:
    """The initial table's address in a TTBR value: bits below the table's size are RES0 (read as 0), and a
    52-bit BADDR's table is at least 64-byte aligned (its bits 5:2 are A[51:48])."""
    return table_base(ttbr, wide=wide) & ~(max(root_size, 64 if wide else 1) - 1)


def _region(half: Half, codec: A64Codec, form: OAForm, oa_bits: int, two_ranges: bool, wide: bool) -> Region:
    fmt = stage1_format(half.granule, 64 - half.tsz, form, upper=half.upper, codec=codec)
    root = _table_root(half.ttbr, fmt.root_size, wide)
    allowed, refused = ALL_PERMS, Reason.INVALID
    if half.epd:
        allowed = 0
    elif root >> oa_bits:
        allowed, refused = 0, Reason.ADDRESS_SIZE
    elif half.e0pd:
        allowed = _EL1_ONLY
    return Region(half.name, fmt, root, select_bit=55 if two_ranges else None, ignore_top=8 if half.tbi else 0,
                  ignore_top_for=_DATA if half.tbid else ALL_PERMS, allowed=allowed, fault_level=0,
                  refused_with=refused)


def stage1_rules(halves: list[Half], regime: str, *, el: int, ips: int, ds: bool, mair: int, options: A64Options,
                 cacheable: bool = True, pa_range: int = DEFAULT_PA_RANGE, ttst: bool = True) -> A64Rules:
    """The rules of a stage 1 regime of one or two `halves` (two: TTBR0's and TTBR1's, selected by VA bit
    55), named `regime`, at Exception level `el`, with output size encoding `ips`, TCR_ELx.DS, the MAIR value
    and the walk options."""
    pa_range = args.integer(pa_range, "PA size", 32, 53)
    two_ranges = len(halves) == 2 or el == 1
    regions, outputs, hpd = [], {}, {}
    for half in halves:
        form = _form(half.granule, ds, pa_range)
        _check_tsz(half, form, pa_range, ttst)
        oa_bits = _output_bits(ips, form, pa_range)
        codec = A64Codec(OutputAddress(half.granule, form), mair, el2=not two_ranges, cacheable=cacheable)
        regions.append(_region(half, codec, form, oa_bits, len(halves) == 2, _wide_baddr(form, ips)))
        outputs[half.name], hpd[half.name] = oa_bits, half.hpd
    return A64Rules(Regime(regime, tuple(regions)), el=el, two_ranges=two_ranges, outputs=outputs, hpd=hpd,
                    options=options)


def _off(regime: str, el: int, two_ranges: bool, pa_range: int) -> A64Rules:
    """Stage 1 disabled (SCTLR_ELx.M=0, or HCR_EL2.TGE/DC for EL1&0): PA = VA, and a VA at or above the PA
    size is an Address size fault at level 0 (D8.2.11, "The effect of disabling stage 1 translation")."""
    return A64Rules(Regime(regime, (), flat_bits=args.integer(pa_range, "PA size", 32, 53)), el=el,
                    two_ranges=two_ranges, outputs={})


def el1_rules(tcr_el1: int, ttbr0_el1: int, ttbr1_el1: int, mair_el1: int = LINUX_MAIR_EL1,
              sctlr_el1: int = 1, *, pan: bool = False, hcr_el2: int = 0,
              pa_range: int = DEFAULT_PA_RANGE) -> A64Rules:
    """The EL1&0 regime's stage 1 rules from TCR_EL1, TTBR0_EL1, TTBR1_EL1, MAIR_EL1 and SCTLR_EL1 (M, C,
    WXN, EPAN), with PSTATE.PAN; HCR_EL2.TGE=1 (or DC=1) turns it off."""
    tcr, sctlr = TCR_EL1.check(tcr_el1), SCTLR_EL1.check(sctlr_el1)
    hcr = HCR_EL2.check(hcr_el2)
    if not SCTLR_EL1.get(sctlr, "M") or HCR_EL2.get(hcr, "TGE") or HCR_EL2.get(hcr, "DC"):
        return _off("EL1&0 (stage 1 off)", 1, True, pa_range)
    halves = [_half(tcr, "0", "TTBR0_EL1", ttbr0_el1, upper=False),
              _half(tcr, "1", "TTBR1_EL1", ttbr1_el1, upper=True)]
    return stage1_rules(halves, "EL1&0", el=1, ips=TCR_EL1.get(tcr, "IPS"), ds=bool(TCR_EL1.get(tcr, "DS")),
                        mair=mair_el1, options=_options(tcr, TCR_EL1, sctlr, SCTLR_EL1, pan),
                        cacheable=bool(SCTLR_EL1.get(sctlr, "C")), pa_range=pa_range)


def _half(tcr: int, n: str, name: str, ttbr: int, *, upper: bool) -> Half:
    """Region n (0 or 1) of a TCR_EL1-layout value (TCR_EL1, or TCR_EL2 with E2H=1)."""
    get = TCR_EL1.get
    granule = tg1_granule(get(tcr, "TG1")) if upper else tg0_granule(get(tcr, "TG0"))
    return Half(name, args.address(ttbr, name), get(tcr, f"T{n}SZ"), granule, upper, bool(get(tcr, f"TBI{n}")),
                bool(get(tcr, f"TBID{n}")), bool(get(tcr, f"EPD{n}")), bool(get(tcr, f"E0PD{n}")),
                bool(get(tcr, f"HPD{n}")))


def _options(tcr: int, tcr_layout: Layout, sctlr: int, sctlr_layout: Layout, pan: bool) -> A64Options:
    """PSTATE.PAN, SCTLR_ELx.EPAN and WXN, TCR_ELx.HA and HD."""
    epan = bool(sctlr_layout.get(sctlr, "EPAN")) if "EPAN" in {f.name for f in sctlr_layout.fields} else False
    return A64Options(pan=args.boolean(pan, "PSTATE.PAN"), epan=epan, wxn=bool(sctlr_layout.get(sctlr, "WXN")),
                      ha=bool(tcr_layout.get(tcr, "HA")),
                      hd=bool(tcr_layout.get(tcr, "HA") and tcr_layout.get(tcr, "HD")))   # HD needs HA


def el2_rules(tcr_el2: int, ttbr0_el2: int, mair_el2: int = LINUX_MAIR_EL1, sctlr_el2: int = 1, *,
              hcr_el2: int = 0, ttbr1_el2: int = 0, pan: bool = False,
              pa_range: int = DEFAULT_PA_RANGE) -> A64Rules:
    """The EL2 regime (HCR_EL2.E2H=0: TTBR0_EL2 alone, TCR_EL2 in its own layout, no EL0) or, with
    HCR_EL2.E2H=1 (FEAT_VHE), the EL2&0 regime (TTBR0_EL2 and TTBR1_EL2, TCR_EL2 in TCR_EL1's layout)."""
    hcr, sctlr = HCR_EL2.check(hcr_el2), SCTLR_EL2.check(sctlr_el2)
    vhe = bool(HCR_EL2.get(hcr, "E2H"))
    if not SCTLR_EL2.get(sctlr, "M"):
        return _off("EL2&0 (stage 1 off)" if vhe else "EL2 (stage 1 off)", 2, vhe, pa_range)
    if vhe:
        tcr = TCR_EL1.check(tcr_el2)
        halves = [_half(tcr, "0", "TTBR0_EL2", ttbr0_el2, upper=False),
                  _half(tcr, "1", "TTBR1_EL2", ttbr1_el2, upper=True)]
        return stage1_rules(halves, "EL2&0", el=2, ips=TCR_EL1.get(tcr, "IPS"), ds=bool(TCR_EL1.get(tcr, "DS")),
                            mair=mair_el2, options=_options(tcr, TCR_EL1, sctlr, SCTLR_EL1, pan),
                            cacheable=bool(SCTLR_EL2.get(sctlr, "C")), pa_range=pa_range)
    tcr = TCR_EL2.check(tcr_el2)
    get = TCR_EL2.get
    half = Half("TTBR0_EL2", args.address(ttbr0_el2, "TTBR0_EL2"), get(tcr, "T0SZ"), tg0_granule(get(tcr, "TG0")),
                tbi=bool(get(tcr, "TBI")), tbid=bool(get(tcr, "TBID")), hpd=bool(get(tcr, "HPD")))
    return stage1_rules([half], "EL2", el=2, ips=get(tcr, "PS"), ds=bool(get(tcr, "DS")), mair=mair_el2,
                        options=_options(tcr, TCR_EL2, sctlr, SCTLR_EL2, False),
                        cacheable=bool(SCTLR_EL2.get(sctlr, "C")), pa_range=pa_range)


def _check_sl(granule: Granule, start: int, ds: bool, pa_range: int) -> None:
    """`AArch64.S2InvalidSL`: a starting level the PE cannot use with its PA size."""
    need = {(Granule.K4, -1): 52, (Granule.K4, 0): 44, (Granule.K16, 0): 52, (Granule.K16, 1): 42,
            (Granule.K64, 1): 44}.get((granule, start), 0)
    if (granule, start) == (Granule.K16, 0) and not ds:
        need = 99
    if pa_range < need:
        raise InvalidArgument(f"VTCR_EL2: a stage 2 walk with the {granule.label} granule cannot start at level "
                              f"{start} on a PE with {pa_range}-bit PAs (AArch64.S2InvalidSL: every stage 2 "
                              "access would fault)")


def stage2_rules(vtcr_el2: int, vttbr_el2: int, *, hcr_el2: int = 0, pa_range: int = DEFAULT_PA_RANGE,
                 xnx: bool = True) -> S2Rules:
    """Stage 2 rules from VTCR_EL2 (T0SZ, SL0, SL2, TG0, PS, HA, HD, DS) and VTTBR_EL2, with HCR_EL2.FWB and
    PTW; `xnx`: the PE implements FEAT_XNX."""
    pa_range = args.integer(pa_range, "PA size", 32, 53)
    vtcr, hcr = VTCR_EL2.check(vtcr_el2), HCR_EL2.check(hcr_el2)
    get = VTCR_EL2.get
    granule = tg0_granule(get(vtcr, "TG0"))
    ds = bool(get(vtcr, "DS"))
    form = _form(granule, ds, pa_range)
    start = stage2_start_level(granule, get(vtcr, "SL0"), get(vtcr, "SL2") if ds else 0)
    _check_sl(granule, start, ds, pa_range)
    oa_bits = _output_bits(get(vtcr, "PS"), form, pa_range)
    ia_bits = 64 - get(vtcr, "T0SZ")
    widest = min(form.oa_bits, pa_range)              # AArch64.S2MinTxSZ: the IPA is at most the PA size
    if ia_bits > widest:
        raise InvalidArgument(f"VTCR_EL2.T0SZ={64 - ia_bits}: a {ia_bits}-bit IPA space is wider than the "
                              f"{widest} bits stage 2 translates here (AArch64.S2TxSZFaults: T0SZ at least "
                              f"{64 - widest}; every stage 2 access would fault)")
    options = S2Options(fwb=bool(HCR_EL2.get(hcr, "FWB")), ptw=bool(HCR_EL2.get(hcr, "PTW")),
                        ha=bool(get(vtcr, "HA")), hd=bool(get(vtcr, "HA") and get(vtcr, "HD")),  # HD needs HA
                        xnx=args.boolean(xnx, "xnx"))
    fmt = stage2_format(granule, ia_bits, start, form, codec=S2Codec(OutputAddress(granule, form),
                                                                    fwb=options.fwb, xnx=options.xnx))
    root = _table_root(args.address(vttbr_el2, "VTTBR_EL2"), fmt.root_size, _wide_baddr(form, get(vtcr, "PS")))
    too_wide = bool(root >> oa_bits)
    region = Region("VTTBR_EL2", fmt, root, allowed=0 if too_wide else ALL_PERMS, fault_level=0,
                    refused_with=Reason.ADDRESS_SIZE)
    return S2Rules(region, oa_bits, options)
