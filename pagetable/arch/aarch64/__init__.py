"""AArch64 (VMSAv8-64): descriptors, registers, codecs, formats, the walk rules and their registers.

Modules (Arm Architecture Reference Manual for A-profile architecture, DDI 0487 M.a.a, chapters D8 and D24):
- `descriptors`: the invalid, table, block and page descriptor layouts of stage 1 and stage 2 for the 4KB,
  16KB and 64KB granules and the 48-bit, FEAT_LPA and FEAT_LPA2 output-address forms, from one declaration
  of the shared fields; `descriptor_kind` (Table D8-48).
- `regs`: the translation registers' layouts (TTBRn_ELx, VTTBR_EL2, TCR_EL1/EL2, VTCR_EL2, MAIR_ELx,
  SCTLR_ELx, HCR_EL2, ID_AA64MMFR0_EL1) and their decodings; `LINUX_MAIR_EL1`.
- `codec`: MappingFlags to descriptors and back (`A64Codec` with the `ARCEOS` profile, `S2Codec`).
- `modes`: formats built from a granule, an input-address size and an OA form (`stage1_format`,
  `stage2_format`).
- `walk`: the stage 1 and stage 2 walk rules (`A64Rules`, `S2Rules`), fault kinds and syndromes.
- `regimes`: the rules register values select (`el1_rules`, `el2_rules`, `stage2_rules`).
- `config`: the register values that select given formats (`tcr_el1`, `vtcr_el2`).
- `contiguous`: the Contiguous hint.
- `explain`: every field of a register or descriptor named, and what translation makes of it.
See docs/aarch64.md.
"""

from .codec import ARCEOS, SPEC, STAGE2, A64Codec, OutputAddress, S2Codec
from .config import tcr_el1, vtcr_el2
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
from .modes import stage1_format, stage2_format
from .regimes import el1_rules, el2_rules, stage2_rules
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
from .walk import A64Options, A64Rules, S2Options, S2Rules

__all__ = [
    "ARCEOS",
    "HCR_EL2",
    "ID_AA64MMFR0_EL1",
    "INVALID",
    "LINUX_MAIR_EL1",
    "MAIR_EL1",
    "MAIR_EL2",
    "SCTLR_EL1",
    "SCTLR_EL2",
    "SPEC",
    "STAGE2",
    "TCR_EL1",
    "TCR_EL2",
    "TTBR0_EL1",
    "TTBR0_EL2",
    "TTBR1_EL1",
    "TTBR1_EL2",
    "VTCR_EL2",
    "VTTBR_EL2",
    "A64Codec",
    "A64Options",
    "A64Rules",
    "Granule",
    "MairAttr",
    "OAForm",
    "OutputAddress",
    "S2Codec",
    "S2Options",
    "S2Rules",
    "Stage",
    "block_levels",
    "check_form",
    "descriptor_kind",
    "descriptor_layout",
    "el1_rules",
    "el2_rules",
    "explain",
    "explain_descriptor",
    "mair_attr",
    "mair_attrs",
    "output_address",
    "output_shift",
    "pa_bits",
    "pa_range",
    "stage1_format",
    "stage1_start_level",
    "stage2_format",
    "stage2_rules",
    "stage2_start_level",
    "table_base",
    "table_levels",
    "tcr_el1",
    "tg0_granule",
    "tg1_granule",
    "vtcr_el2",
    "with_output_address",
]
