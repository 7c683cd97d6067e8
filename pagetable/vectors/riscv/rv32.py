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

from ...arch.riscv_sv39 import Hgatp32, Satp32, Vsatp32
from ...physmem import PhysMem
from ...walker import Walker
from .modes import MENVCFG_ADUE, Hart, hart_walker

PA_BITS = 34
"""Sv32's and Sv32x4's PA width (a PTE's 22-bit PPN)."""
MENVCFGH_ADUE = MENVCFG_ADUE >> 32
"""menvcfg.ADUE as RV32's menvcfgh holds it (bit 29)."""
RV32 = Hart("RV32", "an RV32 PA width", PA_BITS, "menvcfgh", MENVCFGH_ADUE, 0, Satp32, Vsatp32, Hgatp32)
REGISTER_NAMES = RV32.register_names


def walker_from_registers(mem: PhysMem, regs: dict[str, int], pa_bits: int | None = None) -> Walker:
    """The walker of an RV32 hart whose CSRs hold `regs`: `satp` (one stage: Sv32), or `hgatp` with `vsatp`
    (default 0, Bare: the G-stage alone) for a V=1 access (Sv32 over Sv32x4). A reserved MODE, or a value
    wider than 32 bits, is an error naming the register. `sstatus` SUM and MXR (with two stages the HS-level
    MXR), `vsstatus` SUM and MXR (two stages) and `menvcfgh` ADUE (Svadu; else Svade) are optional."""
    return hart_walker(RV32, mem, regs, pa_bits)
