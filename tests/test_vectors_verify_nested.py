"""`pagetable vectors verify --qemu` on the two-stage modes: a RISC-V VS-stage over G-stage set (sv39+sv39x4,
with sstatus.MXR=1) and a G-stage-alone set (sv48x4) on qemu-system-riscv64 -cpu rv64,h=true, and an
x86_64-4level+npt set under SVM on qemu-system-x86_64 (TCG): exact reports with QEMU 7.2's deviations
counted as the differential tests (tests/test_qemu_riscv_h_diff.py, test_qemu_x86_npt_diff.py) count them;
a vectors.json whose expected PA was edited fails with that case shown; the modes QEMU cannot run are
refused in one line."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from pagetable import registry
from pagetable.arch.x86_64 import CR3
from pagetable.cli import main
from pagetable.vectors import VectorSet
from pagetable.vectors.build import build
from pagetable.vectors.riscv import hypervisor_deviations as h
from pagetable.vectors.riscv.deviations import (
    QEMU_AD,
    QEMU_IMPLICIT_TABLE_OUTSIDE,
    QEMU_TABLE_OUTSIDE,
    QEMU_VS_PTE_OUTSIDE,
)
from pagetable.vectors.spec import parse_spec
from pagetable.vectors.verify import verify_qemu_set
from pagetable.vectors.x86_64.deviations import FETCH_NO_TAG, TCG_RSVD_P0
from pagetable.vectors.x86_64.layout import tag

from .conftest import require_qemu, require_qemu_x86
from .test_vectors_verify import copy_set, edit_first_pa, verify

SETS = {"sv39+sv39x4": ["--seed", "1", "--hs-mxr"], "sv48x4": ["--seed", "1"],
        "x86_64-4level+npt": ["--seed", "1"]}


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for mode, argv in SETS.items():
        out[mode] = tmp_path_factory.mktemp(mode.replace("+", "_"))
        assert main(["vectors", "generate", "--mode", mode, *argv, "--out", str(out[mode])]) == 0
    return out


CLEAN = {
    "sv39+sv39x4": ["image mem.bin: matches",
                    "qemu access-fault: 21 agree, 0 disagree",
                    "qemu guest-page-fault: 40 agree, 0 disagree",
                    "qemu ok: 62 agree, 0 disagree",
                    "qemu page-fault: 345 agree, 0 disagree",
                    f"named deviation (3 cases): {h.gpa_bit_deviation(40)}",
                    f"named deviation (10 cases): {h.SUM_FORCED}",
                    f"named deviation (6 cases): {QEMU_VS_PTE_OUTSIDE}",
                    f"named deviation (9 cases): {QEMU_TABLE_OUTSIDE}",
                    f"named deviation (16 cases): {h.IMPLICIT_LOAD}",
                    f"named deviation (6 cases): {QEMU_IMPLICIT_TABLE_OUTSIDE}",
                    f"named deviation (1 cases): {h.MXR_SWAPPED}",
                    f"named deviation (14 cases): {QEMU_AD}",
                    f"named deviation (8 cases): {h.NO_GSTAGE_AD_CHECK}",
                    "468 agree, 0 disagree, 73 named deviations"],
    "sv48x4": ["image mem.bin: matches",
               "qemu access-fault: 18 agree, 0 disagree",
               "qemu guest-page-fault: 292 agree, 0 disagree",
               "qemu ok: 74 agree, 0 disagree",
               f"named deviation (6 cases): {h.gpa_bit_deviation(49)}",
               f"named deviation (6 cases): {QEMU_TABLE_OUTSIDE}",
               f"named deviation (12 cases): {QEMU_AD}",
               "384 agree, 0 disagree, 24 named deviations"],
    "x86_64-4level+npt": ["image mem.bin: matches",
                          "qemu general-protection: 12 agree, 0 disagree",
                          "qemu nested-page-fault: 47 agree, 0 disagree",
                          "qemu ok: 79 agree, 0 disagree",
                          "qemu page-fault: 252 agree, 0 disagree",
                          f"named deviation (42 cases): {TCG_RSVD_P0}",
                          "390 agree, 0 disagree, 42 named deviations"],
}


def test_riscv_two_stage_agrees_but_for_its_named_deviations(sets: dict[str, Path],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """With sstatus.MXR=1 (the set's hs_mxr) QEMU's swapped MXR bits show on one case; vsstatus.SUM=0, so
    the SUM QEMU forces for HLV/HSV shows too. The A/D count is the set's Svade A/D faults."""
    require_qemu()
    d = sets["sv39+sv39x4"]
    assert verify(capsys, str(d), "--qemu") == (0, CLEAN["sv39+sv39x4"])
    vs = VectorSet.read(d)
    assert vs.options["hs_mxr"] is True and vs.options["vs_sum"] is False
    assert collections.Counter(c.reason for c in vs.cases)["accessed-dirty"] == 14


def test_riscv_gstage_alone_agrees_but_for_its_named_deviations(sets: dict[str, Path],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Sv48x4 alone: the translations whose GPA has bit 49 set fault on QEMU 7.2, as do the PTE fetches
    outside RAM (a page fault there); the Svade A/D faults succeed."""
    require_qemu()
    d = sets["sv48x4"]
    assert verify(capsys, str(d), "--qemu") == (0, CLEAN["sv48x4"])
    cases = VectorSet.read(d).cases
    reasons = collections.Counter(c.reason for c in cases)
    assert reasons["table-outside-memory"] == 6 and reasons["accessed-dirty"] == 12
    assert sum(c.pa is not None and c.gpa is not None and c.gpa >> 49 & 1 for c in cases) == 6


def test_npt_agrees_but_for_its_named_deviations(sets: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Every case runs, under the set's guest registers (SMEP, SMAP, protection keys: 6 protection-key
    faults); every reserved-bit fault has P=0 on TCG, and nothing else departs from the APM."""
    require_qemu_x86()
    d = sets["x86_64-4level+npt"]
    assert verify(capsys, str(d), "--qemu") == (0, CLEAN["x86_64-4level+npt"])
    vs = VectorSet.read(d)
    reasons = collections.Counter(c.reason for c in vs.cases)
    assert reasons["reserved"] == 42 and reasons["protection-key"] == 10 and len(vs.cases) == 390


def test_npt_load_of_a_word_that_is_no_tag() -> None:
    """A guest 1 GiB page over guest RAM (a spec: the guest's direct map, the tables inside it), loads at the
    guest root table's words: QEMU reads the entries the walker reads (compared with the word in memory, not
    with a tag), and the fetches there are not run (FETCH_NO_TAG)."""
    require_qemu_x86()
    doc = {"mode": "x86_64-4level+npt", "map": [{"va": 0xFFFF_8880_0000_0000, "pa": 0, "size": "1G", "perms": "rwx"}],
           "access": [{"va": 0xFFFF_8880_0000_0000}], "generate": {"boundaries": False}}
    vs = build(parse_spec(doc))
    root = CR3.get(vs.registers["cr3"], "ADDR") << 12
    doc["access"] = [{"va": 0xFFFF_8880_0000_0000 + root + 8 * k, "privilege": "supervisor"} for k in range(2)]
    vs = build(parse_spec(doc))
    words = {c.gpa: (c.pa, vs.mem.read_u64(c.pa)) for c in vs.cases if c.access == "read" and c.pa is not None}
    assert set(words) == {root, root + 8} and all(value != tag(pa) for pa, value in words.values())
    report = verify_qemu_set(vs, registry.walker_for(vs))
    assert not report.failed and report.deviations[FETCH_NO_TAG] == 2, report.lines(5)
    assert sum(report.agree.values()) == 4


@pytest.mark.parametrize("mode", list(SETS))
def test_an_edited_pa_fails_with_that_case_shown(mode: str, sets: dict[str, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (require_qemu_x86 if mode.startswith("x86") else require_qemu)()
    n, case, pa = edit_first_pa(copy_set(sets[mode], tmp_path))
    status, lines = verify(capsys, str(tmp_path), "--qemu")
    # the clean report, with the case one disagreement of `ok` shown before the totals
    ok = next(k for k, line in enumerate(CLEAN[mode]) if line.startswith("qemu ok: "))
    agreed = int(CLEAN[mode][ok].split()[2])
    total = CLEAN[mode][-1].split(" agree, 0 disagree")
    assert status == 1
    assert lines[:ok] + lines[ok + 1:-2] == CLEAN[mode][:ok] + CLEAN[mode][ok + 1:-1]
    assert lines[ok] == f"qemu ok: {agreed - 1} agree, 1 disagree"
    assert lines[-1] == f"{int(total[0]) - 1} agree, 1 disagree{total[1]}"
    assert lines[-2].startswith(f"case {n}: {case['va']} {case['access']} {case['privilege']}: expected "
                                f"({pa + 0x1000:#x}, None, None, None, {case['gpa']}, False, None"), lines[-2]
    assert f"walker says ({pa:#x}, None, None, None, {case['gpa']}, False, None" in lines[-2]


@pytest.mark.parametrize("mode,reason", [
    ("x86_64-ept4", "EPT needs VMX (Intel VT-x), which QEMU 7.2's TCG does not emulate (it has SVM only)"),
    ("x86_64-4level+ept4", "EPT needs VMX (Intel VT-x), which QEMU 7.2's TCG does not emulate (it has SVM only)"),
    ("x86_64-npt", "nested paging alone needs a guest with paging off, which runs in 32-bit mode (long mode "
                   "needs CR0.PG) and reaches only 4 GiB of the set's guest-physical addresses")])
def test_modes_qemu_cannot_run_are_refused_in_one_line(mode: str, reason: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vectors", "generate", "--mode", mode, "--seed", "1", "--cases", "8", "--out", str(tmp_path)]) == 0
    assert verify(capsys, str(tmp_path), "--qemu") == (2, [f"pagetable: error: --qemu cannot run x86_64 {mode}: "
                                                            f"{reason}"])
