"""RISC-V control and status register bits that software outside the walker needs (the QEMU probe stub).

Privileged spec (version 20211203), "Machine Status Registers (mstatus and mstatush)": MPP[12:11] is the
privilege mode before the trap (0 = U, 1 = S, 3 = M) and what ``mret`` returns to; MPRV (bit 17) makes
M-mode loads and stores translate and check as the privilege in MPP ("Memory Privilege in mstatus
Register"); SUM (bit 18) lets S-mode access U pages; MXR (bit 19) makes execute-only pages readable.
The hypervisor extension adds to RV64 mstatus MPV (bit 39: the virtualisation mode before the trap, which
``mret`` enters with MPP) and GVA (bit 38: mtval holds a guest virtual address), and defines the
"Hypervisor Status Register (hstatus)", whose SPVP (bit 8) is the privilege HLV/HSV access as (0 = VU,
1 = VS).  vsstatus has sstatus's layout, so its SUM and MXR are the mstatus bit positions.  On RV32, mstatus
bits 63:32 are the separate CSR mstatush ("Machine Status Registers (mstatus and mstatush)"): MPV is its bit
7 and GVA its bit 6.

"Machine Cause Register (mcause)": exception code 2 is an illegal instruction.
"""

from __future__ import annotations

from typing import Final

MSTATUS_MPP_SHIFT: Final = 11
MSTATUS_MPP: Final = 3 << MSTATUS_MPP_SHIFT
MSTATUS_MPRV: Final = 1 << 17
MSTATUS_SUM: Final = 1 << 18
MSTATUS_MXR: Final = 1 << 19
MSTATUS_GVA: Final = 1 << 38
MSTATUS_MPV: Final = 1 << 39
MSTATUSH_SHIFT: Final = 32            # RV32: mstatus bits 63:32 are mstatush's 31:0

HSTATUS_SPVP: Final = 1 << 8

CAUSE_ILLEGAL_INSTRUCTION: Final = 2

__all__ = [
    "CAUSE_ILLEGAL_INSTRUCTION",
    "HSTATUS_SPVP",
    "MSTATUSH_SHIFT",
    "MSTATUS_GVA",
    "MSTATUS_MPP",
    "MSTATUS_MPP_SHIFT",
    "MSTATUS_MPRV",
    "MSTATUS_MPV",
    "MSTATUS_MXR",
    "MSTATUS_SUM",
]
