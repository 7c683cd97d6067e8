"""RISC-V Sv39/Sv48/Sv57 and the hypervisor G-stage (Sv39x4/Sv48x4/Sv57x4): PTE layout and codecs, modes,
satp/vsatp/hgatp, and the architectural walk rules."""

from . import faults
from .entry import ARCEOS, GSTAGE, PTE, SPEC, RiscvCodec
from .modes import G_MODES, MODES, SV39, SV39X4, SV48, SV48X4, SV57, SV57X4
from .regs import HGATP, SATP, Hgatp, Satp, Vsatp

__all__ = [
           "ARCEOS",
           "GSTAGE",
           "G_MODES",
           "HGATP",
           "MODES",
           "PTE",
           "SATP",
           "SPEC",
           "SV39",
           "SV39X4",
           "SV48",
           "SV48X4",
           "SV57",
           "SV57X4",
           "Hgatp",
           "RiscvCodec",
           "Satp",
           "Vsatp",
           "faults",
]
