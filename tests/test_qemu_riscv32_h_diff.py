"""Differential test: our two-stage RV32 walker (Sv32x4 alone, and Sv32 over Sv32x4) against QEMU 7.2's
`qemu-system-riscv32 -cpu rv32,h=true`, on generated vector sets.

As tests/test_qemu_riscv_h_diff.py (`agreement`) for RV64: loads and stores are HLV.W/HSV.W from M-mode as
VS- or VU-mode, fetches `mret` with MPV=1, under all eight combinations of vsstatus.SUM, vsstatus.MXR and
sstatus.MXR; every case must agree with the walker or differ by the named deviations of
pagetable/vectors/riscv/hypervisor_deviations.py and do what they predict. On RV32 those include the
Sv32x4 ones: the G-stage walks GPA bits 31:0 only while mtval2 reports all 34 (GPA_TRUNCATED), and a G-stage
leaf loses PA bits 33:32 (PA_TRUNCATED). An sv32x4 set's GPAs above 4 GiB (vsatp Bare: an RV32 VA holds
none) are the walker's alone and not run; `vectors verify --qemu` counts them under QEMU_RV32_WIDE_VA.
"""

from __future__ import annotations

import pytest

from pagetable.vectors import generate_riscv
from pagetable.vectors.riscv import hypervisor_deviations as h
from pagetable.vectors.riscv.deviations import QEMU_AD, QEMU_RV32_WIDE_VA, QEMU_TABLE_OUTSIDE
from pagetable.vectors.riscv.modes import walker_for
from pagetable.vectors.verify import verify_qemu_set

from .conftest import require_qemu_riscv32
from .test_qemu_riscv_h_diff import agreement


@pytest.mark.parametrize("seed", [1, 2])
def test_gstage_alone_agrees_with_qemu(seed: int) -> None:
    require_qemu_riscv32()
    excluded = agreement("sv32x4", seed)
    assert excluded[QEMU_AD] > 0 and excluded[QEMU_TABLE_OUTSIDE] > 0 and excluded[h.PA_TRUNCATED] > 0


@pytest.mark.parametrize("seed", [1, 2])
def test_two_stages_agree_with_qemu(seed: int) -> None:
    require_qemu_riscv32()
    excluded = agreement("sv32+sv32x4", seed)
    assert excluded[h.GPA_TRUNCATED] > 0 and excluded[h.PA_TRUNCATED] > 0


def test_verify_qemu_runs_the_sets() -> None:
    """`vectors verify --qemu` on both modes' files (Svade, every status bit clear): no disagreement, the
    sv32x4 GPAs above 4 GiB counted as not run."""
    require_qemu_riscv32()
    for mode in ("sv32x4", "sv32+sv32x4"):
        vs = generate_riscv(mode, 3)
        report = verify_qemu_set(vs, walker_for(vs))
        assert not report.failed and sum(report.disagree.values()) == 0, report.lines(10)
        wide = sum(c.va >> 32 != 0 for c in vs.cases)
        assert report.deviations.get(QEMU_RV32_WIDE_VA, 0) == wide and (wide > 0) == (mode == "sv32x4")
        assert sum(report.agree.values()) == len(vs.cases) - wide
