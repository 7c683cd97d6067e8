"""Differential test on generated vector sets of x86 32-bit and PAE paging: `vectors verify --qemu`
(verify_qemu_set: the 32-bit harness, pagetable/vectors/x86_64/qemu32.py, on -cpu max,phys-bits=MAXPHYADDR)
agrees with the walker on every case of a few seeds per mode, apart from the deviations the library
predicts (pagetable/vectors/x86_64/deviations.py, probes.py), each counted exactly where predicted: P=0 in a
reserved-bit #PF's error code (TCG_RSVD_P0), a 4 MiB page's PDE bits 20:13 taken as PA bits whatever
PSE-36 and MAXPHYADDR say (PSE36_BITS), no RAM reading as 0 (NO_RAM) and fetches from no RAM not run."""

from __future__ import annotations

import pytest

from pagetable.vectors.verify import verify_qemu_set
from pagetable.vectors.x86_64 import deviations as x86
from pagetable.vectors.x86_64.gen import RegisterChoices, generate_x86
from pagetable.vectors.x86_64.modes import CpuOptions, walker_for
from pagetable.vectors.x86_64.probes import PSE36_BITS

from .conftest import require_qemu_x86_32

RUNS = [("x86-32", 1, RegisterChoices(), 40), ("x86-32", 2, RegisterChoices(ac=True, wp=False), 40),
        ("x86-32-pse36", 3, RegisterChoices(), 40), ("x86-32-pse36", 4, RegisterChoices(), 36),
        ("x86-pae", 5, RegisterChoices(), 40), ("x86-pae", 6, RegisterChoices(nxe=False), 40),
        ("x86-pae", 4, RegisterChoices(ac=True), 36)]


@pytest.mark.parametrize(("mode", "seed", "choice", "maxphyaddr"), RUNS)
def test_qemu_agrees_on_generated_sets(mode: str, seed: int, choice: RegisterChoices, maxphyaddr: int) -> None:
    require_qemu_x86_32()
    vs = generate_x86(mode, seed, choice=choice, cpu=CpuOptions(maxphyaddr=maxphyaddr))
    report = verify_qemu_set(vs, walker_for(vs))
    assert report.details == [] and not report.disagree
    assert sum(report.agree.values()) + report.deviations[x86.FETCH_NO_RAM] == len(vs.cases)
    rsvd = [c for c in vs.cases if c.reason == "reserved"]
    pse36 = [c for c in rsvd if c.label.startswith("rsvd-4M-bits-")]      # QEMU: PA bits, a page with no RAM
    # ... a supervisor page: its user fetch faults for U/S on QEMU, its supervisor fetch would run no RAM
    assert report.deviations[PSE36_BITS] == sum((c.access, c.privilege) != ("execute", "supervisor") for c in pse36)
    assert report.deviations[x86.TCG_RSVD_P0] == len(rsvd) - len(pse36)
    assert report.deviations[x86.NO_RAM] == sum(c.fault == "no-memory" and not (
        c.access == "execute" and c.reason == "pa-outside-memory") for c in vs.cases)
    assert (PSE36_BITS in report.deviations) == (mode == "x86-32" or (maxphyaddr < 40 and mode != "x86-pae"))
