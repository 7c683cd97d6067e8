"""Differential test: our Sv32 walker against QEMU 7.2's RV32 hart, on generated vector sets.

For several seeds an Sv32 vector set is generated, its image is loaded into qemu-system-riscv32 with the
project's stub (pagetable/vectors/riscv/qemu32.py, `run_probes_rv32`), which performs every case's access
for real — loads and stores with MPRV from M-mode, instruction fetches by mret into S/U-mode — under each of
the four SUM/MXR combinations. Every case must agree with the walker run as QEMU implements the spec, apart
from the named deviations of pagetable/vectors/riscv/deviations.py, each predicted case by case:
- A/D: QEMU 7.2 updates them in hardware, so the walker runs with Svadu (QEMU_AD);
- a leaf above 4 GiB (PA bits 33:32 set, no RAM): QEMU drops those bits and accesses the RAM at the PA
  modulo 2**32 (QEMU_SV32_PA), where the load must find that word (the RV32 tag) and a fetch reach mepc;
- a PTE fetch with no RAM: a page fault (QEMU_TABLE_OUTSIDE), except from PA 0x3_0000_0000 up in U-mode
  and for S-mode loads and stores with SUM=1, where QEMU 7.2 raises the spec's access fault
  (`sv32_table_fetch_as_spec`); both are asserted to occur, as often as predicted.
A QEMU that fixes a deviation makes this test fail. The vector files' own expectations (Svade, SUM=MXR=0)
must pass `vectors verify --qemu` (`verify_qemu_set`) with no disagreement.
"""

from __future__ import annotations

import collections

import pytest

from pagetable import registry
from pagetable.arch.riscv_sv39 import PTE, SV32, Satp32
from pagetable.arch.riscv_sv39.entry import pte_paddr
from pagetable.arch.riscv_sv39.walk import RiscvOptions, RiscvRules
from pagetable.physmem import PhysMem
from pagetable.vectors import generate_riscv
from pagetable.vectors.build import build
from pagetable.vectors.riscv.deviations import (
    QEMU_AD,
    QEMU_DEVICE,
    QEMU_RV32_WIDE_VA,
    QEMU_SV32_PA,
    QEMU_SV32_PA_ELSEWHERE,
    QEMU_TABLE_OUTSIDE,
    SV32_PA_MASK,
    qemu_cause,
    sv32_table_fetch_as_spec,
)
from pagetable.vectors.riscv.qemu import RAM_BASE, ProbeCase, ProbeResult, plan_layout
from pagetable.vectors.riscv.qemu32 import run_probes_rv32
from pagetable.vectors.spec import parse_spec
from pagetable.vectors.verify import verify_qemu_set
from pagetable.walker import Reason, Translations, Walker

from .conftest import require_qemu_riscv32

AD_BITS = PTE.mask("A", "D")
COMBOS = [(s, m) for s in (False, True) for m in (False, True)]
SEEDS = (1, 2, 3, 4)
AS_SPEC = "a PTE fetch from 0x3_0000_0000 up, in U-mode or a load or store with SUM=1: the spec's access fault"


def _mismatch(access: str, privilege: str, sum_: bool, t: Translations, n: int, got: ProbeResult,
              mem: PhysMem) -> tuple[str | None, str | None]:
    """(what differs or None, the named deviation or note that lane `n` showed) between QEMU's result and
    the walker's lane `n`, as QEMU 7.2 is predicted to answer."""
    pa, va, reason = int(t.pa[n]), int(t.va[n]), Reason(int(t.reason[n]))
    name = None
    if reason == Reason.PA_OUTSIDE_MEMORY and pa >> 32:            # QEMU_SV32_PA: the PA modulo 2**32
        pa, reason, name = pa & SV32_PA_MASK, Reason.OK, QEMU_SV32_PA
        assert mem.contains(pa), f"{pa:#x}: the generator's PAs above 4 GiB are the image's modulo 2**32"
    if reason != Reason.OK:
        as_spec = sv32_table_fetch_as_spec(privilege, access, sum_, pte_paddr(int(t.pte[n])))
        cause, name = qemu_cause(reason, access, int(t.syndrome["scause"][n]), as_spec)
        if reason == Reason.TABLE_OUTSIDE_MEMORY and as_spec:
            name = AS_SPEC
        want = (cause, int(t.syndrome["stval"][n]))
        return (None if (got.cause, got.tval) == want else
                f"walker: cause {want[0]} tval {want[1]:#x} ({reason.label}), QEMU: {got.cause} tval {got.tval:#x}",
                name)
    if got.cause is not None:
        return f"walker: PA {pa:#x}, QEMU: cause {got.cause} (tval {got.tval:#x})", name
    if access == "execute":
        return (None if got.value == va else f"fetch reached mepc {got.value:#x}"), name
    want_value = mem.read_u32(pa)           # QEMU sets A/D in the PTEs it walks: bits 7:6 aside
    return (None if got.value & ~AD_BITS == want_value & ~AD_BITS else
            f"walker: PA {pa:#x} holding {want_value:#x}, QEMU loaded {got.value:#x}"), name


@pytest.mark.parametrize("seed", SEEDS)
def test_walker_agrees_with_qemu(seed: int) -> None:
    exe = require_qemu_riscv32()
    vs = generate_riscv("sv32", seed)
    satp = vs.registers["satp"]
    image = vs.mem.regions[0].data.tobytes()
    probes = [ProbeCase(c.va, c.access, c.privilege, s, m) for s, m in COMBOS for c in vs.cases]
    results = run_probes_rv32(image, satp, probes, qemu=exe)

    # the walker sees the RAM QEMU has: the image, then zeros up to QEMU's RAM size
    mem = PhysMem([(RAM_BASE, plan_layout(len(image), len(probes), xlen=32).ram_size)])
    mem.write(RAM_BASE, image)
    lanes = vs.lanes()
    seen: set[Reason] = set()
    named: collections.Counter[str] = collections.Counter()
    failures = []
    for k, (s, m) in enumerate(COMBOS):
        rules = RiscvRules(Satp32.decode(satp), RiscvOptions(sum=s, mxr=m, ad="svadu"))
        res = Walker(mem, rules).translate_many(*lanes)
        for n, c in enumerate(vs.cases):
            diff, name = _mismatch(c.access, c.privilege, s, res, n, results[k * len(vs.cases) + n], mem)
            seen.add(Reason(int(res.reason[n])))
            named.update([name] if name else [])
            if diff:
                failures.append(f"{c.va:#x} {c.access} {c.privilege} sum={s} mxr={m} [{c.label}]: {diff}")
    assert not failures, f"{len(failures)} of {len(probes)} cases disagree:\n" + "\n".join(failures[:40])
    # every rule Sv32 has was compared (none on A/D: Svadu; no VA is non-canonical in 32 bits) ...
    assert seen == set(Reason) - {Reason.ACCESSED_DIRTY, Reason.NON_CANONICAL, Reason.PROTECTION_KEY,
                                  Reason.ADDRESS_SIZE}, seen
    # ... and each deviation, and the exception to QEMU_TABLE_OUTSIDE, on cases the walker predicted
    # (the table outside RAM's six cases: S-mode, its fetch and with SUM=0 its load and store, QEMU_TABLE_OUTSIDE)
    assert named[QEMU_SV32_PA] >= 4 and named[QEMU_TABLE_OUTSIDE] == 8 and named[AS_SPEC] == 16, named


@pytest.mark.parametrize("seed", SEEDS)
def test_vector_file_expectations_match_qemu(seed: int) -> None:
    """The expectations written to vectors.json (Svade, SUM=MXR=0) are what QEMU does but for the named
    deviations: `vectors verify --qemu` reports no disagreement, and names A/D, PA bits 33:32 dropped and the
    S-mode PTE fetches outside RAM."""
    require_qemu_riscv32()
    vs = generate_riscv("sv32", seed)
    report = verify_qemu_set(vs, registry.walker_for(vs))
    assert not report.failed and not report.disagree, report.lines(5)
    assert sum(report.agree.values()) == len(vs.cases)
    assert {QEMU_AD, QEMU_SV32_PA, QEMU_TABLE_OUTSIDE} <= set(report.deviations), report.deviations
    assert report.deviations[QEMU_TABLE_OUTSIDE] == 3                  # the S-mode read, write and fetch
    assert SV32.name == "Sv32" and vs.registers["satp"] >> 31 == 1


def test_what_qemu_is_not_asked() -> None:
    """`verify --qemu` on an Sv32 spec: a VA above 32 bits (a non-canonical fault), a leaf above 4 GiB whose
    PA modulo 2**32 is in virt's device space (the UART at 0x1000_0000) or past the image are counted by
    name and not run; one whose PA modulo 2**32 is the image's is QEMU_SV32_PA; the rest agree."""
    require_qemu_riscv32()
    spec = parse_spec({"mode": "sv32", "seed": 1, "generate": {"boundaries": False},
                       "map": [{"va": 0x40_0000, "pa": 0x1_1000_0000, "size": "4K", "perms": "rw", "label": "uart"},
                               {"va": 0x80_0000, "pa": 0x1_9000_0000, "size": "4K", "perms": "rw", "label": "past"},
                               {"va": 0xC0_0000, "pa": 0x1_8010_0000, "size": "4K", "perms": "rw", "label": "image"}],
                       "access": [{"va": va + 8} for va in (0x40_0000, 0x80_0000, 0xC0_0000)],
                       "fault": [{"kind": "non-canonical", "va": 1 << 32}]})
    vs = build(spec)
    report = verify_qemu_set(vs, registry.walker_for(vs))
    assert not report.failed, report.lines(5)
    # each mapping's cases: read/write/execute x S/U; the reads and writes in S-mode reach the PA
    assert report.deviations == {QEMU_RV32_WIDE_VA: 6, QEMU_DEVICE: 2, QEMU_SV32_PA_ELSEWHERE: 2, QEMU_SV32_PA: 2}
    assert sum(report.agree.values()) == len(vs.cases) - 10
