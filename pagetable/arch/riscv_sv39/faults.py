"""RISC-V's address-translation exceptions and what a trap reports about them.

Privileged spec, "Machine Cause Register (mcause)" (the exception-code table) and "Supervisor Trap Value
(stval) Register"; hypervisor extension, "Hypervisor Trap Value Register (htval)" and "Hypervisor Trap
Instruction Register (htinst)". A trap taken into S/HS-mode writes scause, stval, htval and htinst; one
taken into M-mode writes the same values into mcause, mtval, mtval2 and mtinst.

- scause: instruction/load/store access fault 1/5/7 (a PMA or PMP check failed: here an entry fetch or the
  final access hit no RAM), page fault 12/13/15, guest-page fault 20/21/23 (the G-stage refused).
- stval: the faulting virtual address (for an access with V=1, the guest virtual address).
- htval: for a guest-page fault, the guest-physical address that faulted shifted right by 2 (the address
  of the VS-stage PTE for a fault on the walk's implicit access, else the final GPA); 0 otherwise.
- htinst: for a guest-page fault on an implicit access of the VS-stage walk, the pseudoinstruction the
  extension defines for it (0x3000: a 64-bit read of a PTE; 0x3020: a 64-bit write, the A/D update of
  Svadu; on RV32, 0x2000 and 0x2020: the 32-bit read and write); 0 otherwise, which the spec allows for
  every explicit access (the library does not model the transformed trapping instruction). QEMU 7.2 writes
  the same 0x3000, and 0x2000 on RV32 (tests/test_qemu_riscv_h_diff.py, tests/test_riscv_sv32x4.py).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ...lanes import Small, Word, not_, take, u64, where
from ...translation import IMPLICIT_ENTRY_UPDATE, Access, FaultKind, Outcome, Reason

U64 = npt.NDArray[np.uint64]
U8 = npt.NDArray[np.uint8]

ARCH = "riscv64"
ACCESS_FAULT = FaultKind.register(ARCH, "access-fault", "instruction/load/store access fault (PMA/PMP)")
PAGE_FAULT = FaultKind.register(ARCH, "page-fault", "instruction/load/store page fault")
GUEST_PAGE_FAULT = FaultKind.register(ARCH, "guest-page-fault",
                                      "instruction/load/store guest-page fault (the G-stage of the H extension)")
KINDS = (ACCESS_FAULT, PAGE_FAULT, GUEST_PAGE_FAULT)

# exception codes at 3 * kind + access: ACCESS_FAULT, PAGE_FAULT, GUEST_PAGE_FAULT, each for read, write, execute
CAUSES = np.array([5, 7, 1, 13, 15, 12, 21, 23, 20], dtype=np.uint64)
ACCESS_FAULT_REASONS = (Reason.TABLE_OUTSIDE_MEMORY, Reason.PA_OUTSIDE_MEMORY)

HTINST_PTE_READ, HTINST_PTE_WRITE = 0x3000, 0x3020
HTINST_PTE = {64: (HTINST_PTE_READ, HTINST_PTE_WRITE), 32: (0x2000, 0x2020)}
"""htinst's (read, write) pseudoinstructions for an implicit PTE access, by XLEN (the PTE's width)."""


def cause(kind: FaultKind, access: Access) -> int:
    """The exception code of a fault of `kind` on `access`."""
    return int(CAUSES[3 * KINDS.index(kind) + int(access)])


def syndrome(t: Outcome, access: Small, guest: bool, hypervisor: bool, xlen: int = 64) -> dict[str, Word]:
    """scause and stval of each faulting lane, and with the hypervisor extension (a two-stage walk, or the
    G-stage alone: `guest`) htval and htinst (its pseudoinstructions those of an RV`xlen` hart)."""
    pma = (t.reason == Reason.TABLE_OUTSIDE_MEMORY) | (t.reason == Reason.PA_OUTSIDE_MEMORY)
    by_g = not_(pma) & ((t.stage == 2) | guest)
    kind = where(pma, 0, where(by_g, 2, 1))
    out = {"scause": take(CAUSES, kind * 3 + access), "stval": t.va}
    if hypervisor:                     # the G-stage alone translates the VA itself
        out["htval"] = (where(t.stage == 2, t.gpa, t.va) >> 2) * u64(by_g)
        read, write = HTINST_PTE[xlen]
        htinst = where(t.implicit == IMPLICIT_ENTRY_UPDATE, write, read)
        out["htinst"] = htinst * u64(by_g & (t.implicit != 0))
    return out
