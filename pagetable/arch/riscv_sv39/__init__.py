"""Every RISC-V translation mode, despite the package's name (the design's `arch/riscv_sv39/`): Sv39, Sv48,
Sv57 and the hypervisor G-stage (Sv39x4/Sv48x4/Sv57x4). Modules: `entry` (PTE layout and codecs), `modes`
(formats), `regs` (satp/vsatp/hgatp), `csr` (status-register bits), `walk` (the architectural walk rules)
and `faults` (exception codes and the syndrome a trap reports)."""

from . import faults
from .entry import ARCEOS, GSTAGE, PTE, SPEC, RiscvCodec
from .modes import G_MODES, MODES, RV32_MODES, SV32, SV39, SV39X4, SV48, SV48X4, SV57, SV57X4
from .regs import HGATP, SATP, SATP32, Hgatp, Satp, Satp32, Vsatp

__all__ = [
           "ARCEOS",
           "GSTAGE",
           "G_MODES",
           "HGATP",
           "MODES",
           "PTE",
           "RV32_MODES",
           "SATP",
           "SATP32",
           "SPEC",
           "SV32",
           "SV39",
           "SV39X4",
           "SV48",
           "SV48X4",
           "SV57",
           "SV57X4",
           "Hgatp",
           "RiscvCodec",
           "Satp",
           "Satp32",
           "Vsatp",
           "faults",
]
