"""What QEMU 7.2's RISC-V hart reports where it departs from the privileged spec, named (docs/qemu.md).
Shared by `pagetable vectors verify --qemu` and the differential tests (tests/test_qemu_riscv_diff.py).

- A and D: QEMU 7.2 updates them in hardware (Svadu behaviour), so an access the spec's Svade faults on
  (A=0, or D=0 on a store) succeeds there.
- A PTE fetch from an address with no RAM or device: the spec makes it an access fault (the translation
  process, step 2: a PMA violation); QEMU 7.2 raises a page fault (its walker, get_physical_address in
  target/riscv/cpu_helper.c, turns the failed load into TRANSLATE_FAIL).
- Devices: QEMU's virt machine has its devices below RAM; an access that translates to a PA there reaches
  the device, which answers as it will (a store to the UART prints), so such cases are not run."""

from __future__ import annotations

from ...arch.riscv_sv39 import faults
from ...walker import Access, Reason

QEMU_AD = "QEMU 7.2 updates A/D in hardware where Svade faults (docs/qemu.md)"
QEMU_DEVICE = ("not run on QEMU: the PA is in QEMU virt's device space (below RAM at 0x8000_0000), where a "
               "device (the UART, the PLIC, ...) answers; the image has no RAM there (an access fault)")
DEVICE_SPACE_END = 0x8000_0000
QEMU_TABLE_OUTSIDE = ("QEMU 7.2 raises a page fault for a PTE fetch outside RAM, where the spec says access "
                      "fault (docs/qemu.md)")


def qemu_cause(reason: Reason, access: str, cause: int) -> tuple[int, str | None]:
    """The mcause QEMU 7.2 reports for a fault whose walk stopped for `reason`, where the spec reports
    `cause`, with the deviation that makes them differ (None when they do not)."""
    if reason == Reason.TABLE_OUTSIDE_MEMORY:
        return faults.cause(faults.PAGE_FAULT, Access.parse(access)), QEMU_TABLE_OUTSIDE
    return cause, None

QEMU_VS_PTE_OUTSIDE = (
    "QEMU 7.2 raises a VS-stage page fault (mtval2 = mtinst = 0) for a VS-stage PTE whose guest page the G-stage "
    "maps to a host address with no memory, where the spec says access fault: get_physical_address "
    "(target/riscv/cpu_helper.c) translates the PTE's address through the G-stage, then turns the failed "
    "address_space_ldq of the VS-stage walk into TRANSLATE_FAIL (docs/qemu.md)")
QEMU_IMPLICIT_TABLE_OUTSIDE = (
    "QEMU 7.2 reports a G-stage table fetch with no memory during the implicit access to a VS-stage PTE as a "
    "guest-page fault with the PTE read's pseudoinstruction in mtinst (0x3000), like every implicit guest-page "
    "fault: the nested get_physical_address returns TRANSLATE_G_STAGE_FAIL, which sets "
    "two_stage_indirect_lookup (docs/qemu.md)")
