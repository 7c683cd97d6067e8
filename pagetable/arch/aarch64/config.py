"""Register values that select given formats (the inverse of `regimes`): TCR_EL1 for a TTBR0 table, a
TTBR1 table or both, and VTCR_EL2 for a stage 2 table; RISC-V's `Satp.for_table` for AArch64.

The values set what the formats decide and nothing else: TnSZ = 64 - VA bits, TGn from the granule, IPS/PS
48 bits (52 for the 52-bit forms), DS=1 for FEAT_LPA2's form, the stage 2 starting level in SL0 (and SL2 for
level -1); a missing half is off (EPDn=1, with the other half's size and granule, which `regimes` checks
all the same). Table walks are Normal Non-cacheable, non-shareable (IRGNn, ORGNn, SHn = 0), hardware AF and
dirty updates off. Arm ARM DDI 0487 M.a.a, D24.2.194 (TCR_EL1) and D24.2.224 (VTCR_EL2).
"""

from __future__ import annotations

from ...errors import InvalidArgument
from ...format import Extension, PagingFormat
from .codec import A64Codec, S2Codec
from .descriptors import Granule, OAForm
from .regs import TCR_EL1, TG0_GRANULE, TG1_GRANULE, VTCR_EL2

_TG0 = {granule: code for code, granule in TG0_GRANULE.items()}
_TG1 = {granule: code for code, granule in TG1_GRANULE.items()}
_PS = {OAForm.OA48: 0b101, OAForm.LPA: 0b110, OAForm.LPA2: 0b110}       # 48 or 52 bits


def _address(fmt: PagingFormat, stage2: bool) -> tuple[Granule, OAForm]:
    codec = fmt.codec
    if not isinstance(codec, S2Codec if stage2 else A64Codec):
        raise InvalidArgument(f"{fmt.name} is not a VMSAv8-64 stage {2 if stage2 else 1} format")
    address = codec.address
    return address.granule, address.form


def tcr_el1(*halves: PagingFormat) -> int:
    """TCR_EL1 for tables of `halves`: a TTBR0 format (addresses from 0), a TTBR1 one (`upper`), or one of
    each (their OA forms must agree: DS and IPS are shared)."""
    lower = [f for f in halves if f.extension is not Extension.ONES]
    upper = [f for f in halves if f.extension is Extension.ONES]
    if not halves or len(lower) > 1 or len(upper) > 1:
        raise InvalidArgument("tcr_el1 takes one TTBR0 format, one TTBR1 format, or one of each")
    low, high = (lower or upper)[0], (upper or lower)[0]
    (g0, form), (g1, form1) = _address(low, False), _address(high, False)
    if form is not form1:
        raise InvalidArgument(f"TTBR0's {form.value} and TTBR1's {form1.value} cannot share TCR_EL1.DS and IPS")
    return TCR_EL1.build(T0SZ=64 - low.va_bits, T1SZ=64 - high.va_bits, TG0=_TG0[g0], TG1=_TG1[g1], IPS=_PS[form],
                         DS=int(form is OAForm.LPA2), EPD0=int(not lower), EPD1=int(not upper))


def vtcr_el2(fmt: PagingFormat) -> int:
    """VTCR_EL2 for a stage 2 table of `fmt` (`modes.stage2_format`): T0SZ, SL0 (and SL2) for its initial
    level, TG0, PS and DS."""
    granule, form = _address(fmt, True)
    start = fmt.levels[0].arch_level
    sl0 = {2: 0, 1: 1, 0: 2, 3: 3, -1: 0}[start] if granule is Granule.K4 else 3 - start
    return VTCR_EL2.build(T0SZ=64 - fmt.va_bits, SL0=sl0, SL2=int(start == -1), TG0=_TG0[granule], PS=_PS[form],
                          DS=int(form is OAForm.LPA2))
