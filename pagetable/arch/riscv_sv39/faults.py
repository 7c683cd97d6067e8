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
  Svadu); 0 otherwise, which the spec allows for every explicit access (the library does not model the
  transformed trapping instruction). QEMU 7.2 writes the same 0x3000 (tests/test_qemu_riscv_h_diff.py).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ...translation import IMPLICIT_ENTRY_UPDATE, Access, FaultKind, Reason, Translations

U64 = npt.NDArray[np.uint64]
U8 = npt.NDArray[np.uint8]

ARCH = "riscv64"
ACCESS_FAULT = FaultKind.register(ARCH, "access-fault", "instruction/load/store access fault (PMA/PMP)")
PAGE_FAULT = FaultKind.register(ARCH, "page-fault", "instruction/load/store page fault")
GUEST_PAGE_FAULT = FaultKind.register(ARCH, "guest-page-fault",
                                      "instruction/load/store guest-page fault (the G-stage of the H extension)")
KINDS = (ACCESS_FAULT, PAGE_FAULT, GUEST_PAGE_FAULT)

# exception codes by (kind, access): rows ACCESS_FAULT, PAGE_FAULT, GUEST_PAGE_FAULT; columns read, write, execute
CAUSES = np.array([[5, 7, 1], [13, 15, 12], [21, 23, 20]], dtype=np.uint64)
ACCESS_FAULT_REASONS = (Reason.TABLE_OUTSIDE_MEMORY, Reason.PA_OUTSIDE_MEMORY)

HTINST_PTE_READ, HTINST_PTE_WRITE = 0x3000, 0x3020


def cause(kind: FaultKind, access: Access) -> int:
    """The exception code of a fault of `kind` on `access`."""
    return int(CAUSES[KINDS.index(kind), int(access)])


def syndrome(t: Translations, access: U8, guest: bool, hypervisor: bool) -> dict[str, U64]:
    """scause and stval per lane (0 where the access translated), and with the hypervisor extension (a
    two-stage walk, or the G-stage alone: `guest`) htval and htinst."""
    names = ("scause", "stval", "htval", "htinst") if hypervisor else ("scause", "stval")
    out = {name: np.zeros(len(t), dtype=np.uint64) for name in names}
    f = np.flatnonzero(t.reason != Reason.OK)             # the work is per faulting lane
    reason, stage = t.reason[f], t.stage[f]
    pma = np.isin(reason, ACCESS_FAULT_REASONS)
    by_g = ~pma & ((stage == 2) | np.bool_(guest))
    out["scause"][f] = CAUSES[np.where(pma, 0, np.where(by_g, 2, 1)), access[f]]
    out["stval"][f] = t.va[f]
    if hypervisor:
        g = f[by_g]
        gpa = np.where(t.stage[g] == 2, t.gpa[g], t.va[g])  # the G-stage alone translates the VA itself
        out["htval"][g] = gpa >> np.uint64(2)
        implicit = t.implicit[g]
        out["htinst"][g] = np.where(implicit == IMPLICIT_ENTRY_UPDATE, HTINST_PTE_WRITE,
                                    np.where(implicit != 0, HTINST_PTE_READ, 0))
    return out
