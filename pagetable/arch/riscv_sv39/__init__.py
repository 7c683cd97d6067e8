"""RISC-V Sv39/Sv48/Sv57: PTE layout and codec, modes, satp, and the architectural walk rules."""

from .entry import ARCEOS, PTE, SPEC, RiscvCodec
from .modes import MODES, SV39, SV48, SV57
from .regs import SATP, Satp

__all__ = ["ARCEOS", "MODES", "PTE", "SATP", "SPEC", "SV39", "SV48", "SV57", "RiscvCodec", "Satp"]
