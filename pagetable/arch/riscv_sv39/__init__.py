"""Every RISC-V translation mode, despite the package's name (the design's `arch/riscv_sv39/`): Sv39, Sv48,
Sv57, RV32's Sv32, and the hypervisor G-stage (Sv39x4/Sv48x4/Sv57x4, RV32's Sv32x4). Modules: `entry` (PTE
layout and codecs), `modes` (formats), `regs` (satp/vsatp/hgatp), `csr` (status-register bits), `walk` (the
architectural walk rules) and `faults` (exception codes and the syndrome a trap reports)."""

from . import faults
from .entry import ARCEOS, GSTAGE, GSTAGE32, PTE, PTE32, SPEC, SPEC32, RiscvCodec
from .modes import G_MODES, MODES, RV32_G_MODES, RV32_MODES, SV32, SV32X4, SV39, SV39X4, SV48, SV48X4, SV57, SV57X4
from .regs import HGATP, HGATP32, SATP, SATP32, Hgatp, Hgatp32, Satp, Satp32, Vsatp, Vsatp32

__all__ = [
           "ARCEOS",
           "GSTAGE",
           "GSTAGE32",
           "G_MODES",
           "HGATP",
           "HGATP32",
           "MODES",
           "PTE",
           "PTE32",
           "RV32_G_MODES",
           "RV32_MODES",
           "SATP",
           "SATP32",
           "SPEC",
           "SPEC32",
           "SV32",
           "SV32X4",
           "SV39",
           "SV39X4",
           "SV48",
           "SV48X4",
           "SV57",
           "SV57X4",
           "Hgatp",
           "Hgatp32",
           "RiscvCodec",
           "Satp",
           "Satp32",
           "Vsatp",
           "Vsatp32",
           "faults",
]
