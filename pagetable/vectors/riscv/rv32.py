"""RV32 harts on the command line (`--arch riscv32`): the dump commands' walker from RV32 CSR values.

An RV32 hart's satp, vsatp and hgatp have their RV32 layouts (privileged spec, "satp", RV32: MODE[31],
ASID[30:22], PPN[21:0]; hypervisor extension, "hgatp", RV32: MODE[31], VMID[28:22], PPN[21:0]), which an
RV64 value cannot be told apart from, so the XLEN is the architecture's name: `riscv32` decodes them as
`Satp32`, `Vsatp32` and `Hgatp32` (Sv32, Sv32x4, Sv32 over Sv32x4), `riscv` as RV64's. The status
registers are those of `modes.walker_from_registers`, but for menvcfg: RV32 keeps its bits 63:32 in
menvcfgh ("Machine Environment Configuration (menvcfg) Register"), whose ADUE (bit 29) turns on Svadu; an
Sv32 PTE has no PBMT, so PBMTE plays no part.
"""

from __future__ import annotations

from typing import Literal, TypeVar

from ...arch.riscv_sv39 import Hgatp32, Satp32, Vsatp32
from ...arch.riscv_sv39.walk import HypervisorOptions, RiscvOptions, RiscvRules, two_stage_rules
from ...errors import InvalidArgument, PagetableError
from ...physmem import PhysMem
from ...walker import Walker
from ..architecture import check_register_names, pa_bits_in, register_error
from .modes import MENVCFG_ADUE, SSTATUS_MXR, SSTATUS_SUM

REGISTER_NAMES = ("satp", "vsatp", "hgatp", "sstatus", "vsstatus", "menvcfgh")
PA_BITS = 34
"""Sv32's and Sv32x4's PA width (a PTE's 22-bit PPN)."""
MENVCFGH_ADUE = MENVCFG_ADUE >> 32
"""menvcfg.ADUE as RV32's menvcfgh holds it (bit 29)."""


def walker_from_registers(mem: PhysMem, regs: dict[str, int], pa_bits: int | None = None) -> Walker:
    """The walker of an RV32 hart whose CSRs hold `regs`: `satp` (one stage: Sv32), or `hgatp` with `vsatp`
    (default 0, Bare: the G-stage alone) for a V=1 access (Sv32 over Sv32x4). A reserved MODE, or a value
    wider than 32 bits, is an error naming the register. `sstatus` SUM and MXR (with two stages the HS-level
    MXR), `vsstatus` SUM and MXR (two stages) and `menvcfgh` ADUE (Svadu; else Svade) are optional."""
    two = "hgatp" in regs or "vsatp" in regs
    if two and "satp" in regs:
        raise InvalidArgument("give satp (one stage) or vsatp and hgatp (two stages), not both")
    if not two and "vsstatus" in regs:
        raise InvalidArgument("vsstatus belongs to two-stage translation (vsatp and hgatp), not to satp")
    check_register_names(regs, REGISTER_NAMES, ("hgatp",) if two else ("satp",),
                         "RV32 two-stage translation" if two else "RV32 translation")
    pa_bits_in(pa_bits, PA_BITS, range(32, PA_BITS + 1), "an RV32 PA width")
    status, vsstatus = regs.get("sstatus", 0), regs.get("vsstatus", 0)
    ad: Literal["svade", "svadu"] = "svadu" if regs.get("menvcfgh", 0) & MENVCFGH_ADUE else "svade"
    if not two:
        satp = _decode("satp", Satp32, regs["satp"])
        return Walker(mem, RiscvRules(satp, RiscvOptions(sum=bool(status & SSTATUS_SUM),
                                                         mxr=bool(status & SSTATUS_MXR), ad=ad)))
    vsatp, hgatp = _decode("vsatp", Vsatp32, regs.get("vsatp", 0)), _decode("hgatp", Hgatp32, regs["hgatp"])
    options = HypervisorOptions(vs_sum=bool(vsstatus & SSTATUS_SUM), vs_mxr=bool(vsstatus & SSTATUS_MXR),
                                hs_mxr=bool(status & SSTATUS_MXR), ad=ad)
    return Walker.nested(mem, two_stage_rules(vsatp, hgatp, options))


_Register = TypeVar("_Register", Satp32, Vsatp32, Hgatp32)


def _decode(name: str, kind: type[_Register], value: int) -> _Register:
    """`value` decoded as register `name`, or an error whose message names it."""
    try:
        return kind.decode(value)
    except PagetableError as exc:
        raise register_error(name, exc) from None
