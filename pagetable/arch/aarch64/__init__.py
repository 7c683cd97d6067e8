"""AArch64 (VMSAv8-64): the first foundation stone, layouts and `explain` only.

What exists:
- `descriptors`: the invalid, table, block and page descriptor layouts of stage 1 and stage 2 for the 4KB,
  16KB and 64KB granules, per lookup level, with the 48-bit OA and the 52-bit forms (FEAT_LPA with 64KB,
  FEAT_LPA2 with DS=1 for 4KB/16KB), all built by `descriptor_layout` from one declaration of the shared
  fields; the output address read and written (`output_address`, `with_output_address`) and a descriptor's
  type at a level (`descriptor_kind`, Table D8-48).
- `regs`: TTBR0/1_EL1, TTBR0/1_EL2, VTTBR_EL2, TCR_EL1, TCR_EL2 (E2H=0), VTCR_EL2, MAIR_EL1/EL2 (with
  `mair_attr` decoding an Attr byte to a `MemoryType`), SCTLR_EL1/EL2, HCR_EL2, ID_AA64MMFR0_EL1; the
  TG0/TG1 granule, PARange/IPS/PS, start-level and table-base decodings; Linux's MAIR_EL1 value as `LINUX_MAIR_EL1`.
- `explain`: every field of a register or descriptor named, and what translation makes of it.

What does not exist yet: an `EntryCodec` (MappingFlags to descriptors), the walk rules (permissions,
faults, hardware AF/dirty updates), `PagingFormat`s and a `PageTable` on AArch64, stage 2 and nested walks,
an `Architecture` for the vector generator and the command line, QEMU harnesses, the VMSAv9-128 (FEAT_D128)
descriptors. See docs/aarch64.md. Arm Architecture Reference Manual for A-profile architecture, DDI 0487
M.a.a, chapters D8 and D24.
"""

from .descriptors import (
    INVALID,
    Granule,
    OAForm,
    Stage,
    block_levels,
    check_form,
    descriptor_kind,
    descriptor_layout,
    output_address,
    output_shift,
    table_levels,
    with_output_address,
)
from .explain import explain, explain_descriptor
from .regs import (
    HCR_EL2,
    ID_AA64MMFR0_EL1,
    LINUX_MAIR_EL1,
    MAIR_EL1,
    MAIR_EL2,
    SCTLR_EL1,
    SCTLR_EL2,
    TCR_EL1,
    TCR_EL2,
    TTBR0_EL1,
    TTBR0_EL2,
    TTBR1_EL1,
    TTBR1_EL2,
    VTCR_EL2,
    VTTBR_EL2,
    MairAttr,
    mair_attr,
    mair_attrs,
    pa_bits,
    pa_range,
    stage1_start_level,
    stage2_start_level,
    table_base,
    tg0_granule,
    tg1_granule,
)

__all__ = [
    "HCR_EL2", "ID_AA64MMFR0_EL1", "INVALID", "LINUX_MAIR_EL1", "MAIR_EL1", "MAIR_EL2", "SCTLR_EL1", "SCTLR_EL2",
    "TCR_EL1", "TCR_EL2", "TTBR0_EL1", "TTBR0_EL2", "TTBR1_EL1", "TTBR1_EL2", "VTCR_EL2", "VTTBR_EL2", "Granule",
    "MairAttr", "OAForm", "Stage", "block_levels", "check_form", "descriptor_kind", "descriptor_layout",
    "explain", "explain_descriptor", "mair_attr", "mair_attrs", "output_address", "output_shift", "pa_bits",
    "pa_range", "stage1_start_level", "stage2_start_level", "table_base", "table_levels", "tg0_granule", "tg1_granule",
    "with_output_address",
]
