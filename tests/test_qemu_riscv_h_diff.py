"""Differential test: our two-stage RISC-V walker against QEMU 7.2's (hypervisor extension).

For Sv39x4 and Sv48x4 alone (vsatp Bare) and for Sv39+Sv39x4 and Sv48+Sv48x4, a vector set is generated and
loaded into `qemu-system-riscv64 -cpu rv64,h=true` with our stub (pagetable/vectors/riscv/qemu.py): loads and
stores are HLV.D/HSV.D from M-mode as VS- or VU-mode (hstatus.SPVP), fetches are `mret` with MPV=1 into
VS/VU-mode, under all eight combinations of vsstatus.SUM, vsstatus.MXR and the HS-level sstatus.MXR. QEMU's
cause, mtval (the VA), mtval2 (the GPA >> 2 of a guest-page fault) and mtinst (the pseudoinstruction of a
guest-page fault on an implicit VS-stage access) are compared, and for a success the
value loaded (which reveals the host PA: every data word holds PA << 16) or the fetch's mepc.

Every case must agree with the vector file's expectation (the manual: Svade, as vectors.json says; for each
combination, the file `vectors generate` writes with those status bits, `--hs-mxr` included), except
where a QEMU 7.2 deviation changes the outcome. The deviations and the order they are applied in are the
library's (pagetable/vectors/riscv/hypervisor_deviations.py, which `vectors verify --qemu` uses too): each
turns the previous expectation into QEMU's; a case that some of them change is excluded from the manual's
comparison and counted under those deviations' names, and QEMU must then do exactly what the deviation says
(so an exclusion is never a blanket one, and a QEMU that fixes a deviation fails this test).
"""

from __future__ import annotations

import collections

import pytest

from pagetable.vectors import generate_riscv
from pagetable.vectors.riscv import hypervisor_deviations as h
from pagetable.vectors.riscv.deviations import QEMU_IMPLICIT_TABLE_OUTSIDE, QEMU_VS_PTE_OUTSIDE
from pagetable.vectors.riscv.modes import vector_mode, walker_for
from pagetable.vectors.verify import riscv_unprobed

from .conftest import require_qemu

COMBOS = [h.Status(s, vm, hm) for s in (False, True) for vm in (False, True) for hm in (False, True)]


def agreement(mode: str, seed: int) -> collections.Counter[str]:
    """Generate `mode`'s set for `seed`, run every case QEMU can be asked (`riscv_unprobed`) under every status
    combination on QEMU (`h.run`: qemu-system-riscv64, or qemu-system-riscv32 for Sv32x4), and assert each
    agrees with the walker, or differs by the named deviations and does what they predict. Returns how
    often each deviation changed a case."""
    vs = generate_riscv(mode, seed)
    image = vs.mem.regions[0].data.tobytes()
    runnable = riscv_unprobed(vs, walker_for(vs)).probed
    cases = [vs.cases[n] for n in runnable]
    probes = [p for status in COMBOS for p in h.probe_cases(cases, status)]
    results = h.run(vs, image, probes)
    mem = h.platform(image, len(probes), h.xlen(vs))
    excluded: collections.Counter[str] = collections.Counter()
    failures: list[str] = []
    compared = 0
    for k, status in enumerate(COMBOS):
        p = h.predict(mem, vs, status)
        if "+" in mode or not (status.vs_sum or status.vs_mxr):  # `vectors generate` with these status bits
            options = vector_mode(mode).options(sum=status.vs_sum, mxr=status.vs_mxr, hs_mxr=status.hs_mxr)
            assert p.manual == [h.case_outcome(c) for c in generate_riscv(mode, seed, options=options).cases]
        for i, (n, c) in enumerate(zip(runnable, cases, strict=True)):
            diff = h.observed(results[k * len(cases) + i], c.access, c.va, p.qemu[n], mem, h.xlen(vs))
            excluded.update(p.names[n])
            if not p.names[n]:
                compared += 1
                assert p.qemu[n] == p.manual[n]
            if diff:
                where = f"[{'; '.join(p.names[n])}] " if p.names[n] else ""
                failures.append(f"{c.va:#x} {c.access} {c.privilege} {status} [{c.label}] {where}{diff}")
    assert not failures, f"{len(failures)} cases disagree:\n" + "\n".join(failures[:40])
    assert compared > 0.8 * len(probes), (compared, excluded)
    if "+" in mode:
        assert excluded[h.SUM_FORCED] > 0
        assert excluded[h.IMPLICIT_LOAD] > 0
        assert excluded[h.NO_GSTAGE_AD_CHECK] > 0
        assert excluded[QEMU_VS_PTE_OUTSIDE] > 0 and excluded[QEMU_IMPLICIT_TABLE_OUTSIDE] > 0
    assert set(excluded) <= {name for name, _ in h.steps(h.gstage(vs))}
    return excluded


@pytest.mark.parametrize("mode,seed", [("sv39x4", 41), ("sv48x4", 50), ("sv57x4", 52), ("sv39+sv39x4", 39),
                                       ("sv48+sv48x4", 48), ("sv57+sv57x4", 57)])
def test_two_stage_walker_agrees_with_qemu(mode: str, seed: int) -> None:
    require_qemu()
    excluded = agreement(mode, seed)
    bit = h.GPA_BIT[mode.split("+")[-1].capitalize()]
    if bit < 58:        # Sv57x4's cases reach no GPA with bit 58 set: the deviation cannot show there
        assert excluded[h.gpa_bit_deviation(bit)] > 0
