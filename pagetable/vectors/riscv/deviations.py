"""What QEMU 7.2's RISC-V hart reports where it departs from the privileged spec, named (docs/qemu.md).
Shared by `pagetable vectors verify --qemu` and the differential tests (tests/test_qemu_riscv_diff.py).

- A and D: QEMU 7.2 updates them in hardware (Svadu behaviour), so an access the spec's Svade faults on
  (A=0, or D=0 on a store) succeeds there.
- A PTE fetch from an address with no RAM or device: the spec makes it an access fault (the translation
  process, step 2: a PMA violation); QEMU 7.2 raises a page fault (its walker, get_physical_address in
  target/riscv/cpu_helper.c, turns the failed load into TRANSLATE_FAIL).
- Devices: QEMU's virt machine has its devices below RAM; an access that translates to a PA there reaches
  the device, which answers as it will (a store to the UART prints), so such cases are not run.
- Sv32 (qemu-system-riscv32): a leaf's PA bits 33:32 are dropped. The spec's PA is 34 bits (PPN[1] is 12
  bits), so a leaf above 4 GiB with no RAM there is an access fault; QEMU 7.2 accesses the PA modulo 2**32
  (riscv_cpu_tlb_fill in target/riscv/cpu_helper.c hands the TLB `pa & ~(tlb_size - 1)`, `tlb_size` a
  32-bit target_ulong), which for the vector sets is tagged RAM: the access succeeds there. A non-leaf
  PTE's 34-bit PA is kept (its fetch finds no RAM: QEMU_TABLE_OUTSIDE). Where the PA modulo 2**32 is not
  the image's (a device, or QEMU's RAM past the image, where the harness's stub is), the case is not run.
  An RV32 VA has 32 bits: a case with a wider VA (a non-canonical one a spec may name, or in mode sv32x4,
  vsatp Bare, a GPA above 4 GiB, which only the walker is asked) is not run.
- Sv32 PTE fetches outside RAM (observed on QEMU 7.2, not traced to its source): from a PA at or above
  0x3_0000_0000 (PA bits 33:32 both set) a U-mode access, and an S-mode load or store with SUM=1, gets the
  spec's access fault; an S-mode fetch, or load or store with SUM=0, the page fault of QEMU_TABLE_OUTSIDE;
  below that PA every access gets the page fault (`sv32_table_fetch_as_spec`)."""

from __future__ import annotations

from ...arch.riscv_sv39 import faults
from ...walker import Access, Reason

QEMU_AD = "QEMU 7.2 updates A/D in hardware where Svade faults (docs/qemu.md)"
QEMU_DEVICE = ("not run on QEMU: the PA is in QEMU virt's device space (below RAM at 0x8000_0000), where a "
               "device (the UART, the PLIC, ...) answers; the image has no RAM there (an access fault)")
DEVICE_SPACE_END = 0x8000_0000
QEMU_TABLE_OUTSIDE = ("QEMU 7.2 raises a page fault for a PTE fetch outside RAM, where the spec says access "
                      "fault (docs/qemu.md)")


QEMU_SV32_PA = ("QEMU 7.2 drops PA bits 33:32 of an Sv32 leaf and accesses the RAM at the PA modulo 2**32, where "
                "the spec's 34-bit PA has no memory: an access fault (docs/qemu.md)")
QEMU_SV32_PA_ELSEWHERE = ("not run on QEMU: an Sv32 leaf above 4 GiB whose PA modulo 2**32 (QEMU 7.2 drops bits "
                          "33:32) is not in the image (a device, or QEMU's RAM where the harness's stub is)")
QEMU_RV32_WIDE_VA = ("not run on QEMU: an RV32 hart has no VA wider than 32 bits (the walker's non-canonical; "
                     "with vsatp Bare, an Sv32x4 GPA above 4 GiB)")
SV32_PA_MASK = (1 << 32) - 1
"""The PA bits QEMU 7.2 keeps of an Sv32 leaf (QEMU_SV32_PA)."""


SV32_U_TABLE_AS_SPEC = 3 << 32
"""From this PA up (bits 33:32 both set), qemu-system-riscv32 7.2 reports some PTE fetches with no RAM as the
spec's access fault (`sv32_table_fetch_as_spec`)."""


def sv32_table_fetch_as_spec(privilege: str, access: str, sum_: bool, table: int) -> bool:
    """Whether qemu-system-riscv32 7.2 reports the fetch of an Sv32 PTE from the table at PA `table`, where
    there is no RAM, as the spec's access fault (not QEMU_TABLE_OUTSIDE's page fault): from
    SV32_U_TABLE_AS_SPEC up, for a U-mode access and for an S-mode load or store with sstatus.SUM=1 (`sum_`)
    (observed; tests/test_qemu_riscv32_diff.py checks it both ways)."""
    return table >= SV32_U_TABLE_AS_SPEC and (privilege == "user" or (sum_ and access != "execute"))


def qemu_cause(reason: Reason, access: str, cause: int, as_spec: bool = False) -> tuple[int, str | None]:
    """The mcause QEMU 7.2 reports for a fault whose walk stopped for `reason`, where the spec reports
    `cause`, with the deviation that makes them differ (None when they do not). `as_spec`: a PTE fetch
    outside RAM that QEMU reports as the spec does (`sv32_table_fetch_as_spec`)."""
    if reason == Reason.TABLE_OUTSIDE_MEMORY and not as_spec:
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
