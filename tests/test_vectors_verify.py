"""`pagetable vectors verify`: exact reports and exit status on a clean Sv39 set, one with a bit flipped in a
root entry that cases walk through, one with a bit flipped in a data word no case reads (only the image's
SHA-256 shows it), a hand-edited vectors.json, a file without digests; and with --qemu, the Sv39 set run on
qemu-system-riscv64, an x86_64-4level set on qemu-system-x86_64 (TCG) and an aarch64-4k-48 set on
qemu-system-aarch64, with QEMU 7.2's deviations counted as the differential tests count them (the two-stage
modes: tests/test_vectors_verify_nested.py)."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

from pagetable.cli import main
from pagetable.vectors import VectorSet
from pagetable.vectors.aarch64.deviations import BLOCK_LEVEL, DEVICE_FETCH
from pagetable.vectors.aarch64.deviations import NO_RAM as A64_NO_RAM
from pagetable.vectors.x86_64.deviations import FETCH_NO_RAM, NO_RAM, TCG_RSVD_P0

from .conftest import require_qemu, require_qemu_aarch64, require_qemu_x86

ROOT_ENTRY_9 = 9 * 8            # mem.bin offset of the Sv39 root table's entry 9 (satp's PPN is the image base)
DATA_WORD = 0x7F_FFF8           # the image's last word: its own tag, in a page no case translates to
CLEAN = ["image mem.bin: matches",
         "walker access-fault: 10 agree, 0 disagree",
         "walker ok: 39 agree, 0 disagree",
         "walker page-fault: 293 agree, 0 disagree",
         "342 agree, 0 disagree"]


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sv39")
    assert main(["vectors", "generate", "--mode", "sv39", "--seed", "1", "--out", str(out)]) == 0
    return out


def copy_set(src: Path, dst: Path) -> Path:
    for name in ("mem.bin", "vectors.json"):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def _flip(path: Path, offset: int, bit: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1 << bit
    path.write_bytes(bytes(data))


def verify(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    capsys.readouterr()
    status = main(["vectors", "verify", *argv])
    out = capsys.readouterr()
    return status, (out.out + out.err).splitlines()


def test_a_clean_set_verifies(clean: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert verify(capsys, str(clean)) == (0, CLEAN)


def test_a_flipped_bit_in_a_root_entry_is_caught(clean: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    d = copy_set(clean, tmp_path)
    assert VectorSet.read(d).mem.read_u64(0x8000_0000 + ROOT_ENTRY_9) == 0x2000_0801    # V=1, a pointer
    _flip(d / "mem.bin", ROOT_ENTRY_9, 0)                                             # V=0
    status, lines = verify(capsys, str(d), "--shown", "2")
    assert status == 1
    assert lines[0] == "image mem.bin: differs from the sha256 in vectors.json"
    assert lines[1:4] == ["walker access-fault: 10 agree, 0 disagree",
                          "walker ok: 28 agree, 11 disagree",
                          "walker page-fault: 262 agree, 31 disagree"]
    details = [line for line in lines if line.startswith("case ")]
    assert len(details) == 2 and lines[-2:] == ["... and 40 more disagreements", "300 agree, 42 disagree"]
    # the 42 are the cases that walk through root entry 9 (VA bits 38:30), and now fault there
    vs = VectorSet.read(d)
    assert sum((c.va >> 30) & 0x1FF == 9 for c in vs.cases) == 42
    for line in details:
        va = vs.cases[int(line.split(":")[0].split()[1])].va
        assert (va >> 30) & 0x1FF == 9 and "walker says (None, page-fault, 2," in line, line


def test_json_report(clean: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = copy_set(clean, tmp_path)
    _flip(d / "mem.bin", ROOT_ENTRY_9, 0)
    status, lines = verify(capsys, str(d), "--json", "--shown", "1")
    doc = json.loads(lines[0])
    assert status == 1 and len(lines) == 1
    assert {k: v for k, v in doc.items() if k != "disagreements"} == {
        "judge": "walker", "images": [{"file": "mem.bin", "sha256": "differs from the sha256 in vectors.json"}],
        "agree": {"access-fault": 10, "ok": 28, "page-fault": 262}, "disagree": {"ok": 11, "page-fault": 31},
        "deviations": {}, "failed": True}
    assert [x["case"] for x in doc["disagreements"]] == [0]


def test_a_flipped_data_bit_changes_no_case_but_the_digest(clean: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    d = copy_set(clean, tmp_path)
    _flip(d / "mem.bin", DATA_WORD + 3, 5)
    assert verify(capsys, str(d)) == (1, ["image mem.bin: differs from the sha256 in vectors.json", *CLEAN[1:]])


def edit_first_pa(d: Path) -> tuple[int, dict[str, str], int]:
    """Add 0x1000 to the expected pa of the first translation in `d`'s vectors.json: (its index, the case as
    now written, the pa it had)."""
    doc = json.loads((d / "vectors.json").read_text())
    n = next(k for k, c in enumerate(doc["cases"]) if "pa" in c)
    case = doc["cases"][n]
    pa = int(case["pa"], 16)
    case["pa"] = f"{pa + 0x1000:#x}"
    (d / "vectors.json").write_text(json.dumps(doc))
    return n, case, pa


def test_a_hand_edited_case_is_caught(clean: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = copy_set(clean, tmp_path)
    n, case, pa = edit_first_pa(d)
    status, lines = verify(capsys, str(d))
    assert status == 1
    assert lines[2] == "walker ok: 38 agree, 1 disagree"
    assert lines[4:] == [f"case {n}: {case['va']} {case['access']} {case['privilege']}: expected ({pa + 0x1000:#x}, "
                         f"None, None, None, None, False, None), walker says ({pa:#x}, None, None, None, None, "
                         "False, None) (ok)", "341 agree, 1 disagree"]


def test_a_set_without_digests_is_read_and_says_so(clean: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    d = copy_set(clean, tmp_path)
    doc = json.loads((d / "vectors.json").read_text())
    del doc["memory"][0]["sha256"]
    (d / "vectors.json").write_text(json.dumps(doc))
    assert verify(capsys, str(d)) == (0, ["image mem.bin: not recorded", *CLEAN[1:]])
    doc["memory"][0]["sha256"] = "ABC"
    (d / "vectors.json").write_text(json.dumps(doc))
    status, lines = verify(capsys, str(d))
    assert status == 2 and lines == [f"pagetable: error: {d / 'vectors.json'}: memory[0].sha256 must be 64 "
                                     "lowercase hex digits, not str 'ABC'"]


QEMU_CLEAN = [
    "image mem.bin: matches",
    "qemu access-fault: 10 agree, 0 disagree",
    "qemu ok: 39 agree, 0 disagree",
    "qemu page-fault: 293 agree, 0 disagree",
    "named deviation (6 cases): QEMU 7.2 raises a page fault for a PTE fetch outside RAM, where the spec "
    "says access fault (docs/qemu.md)",
    "named deviation (6 cases): QEMU 7.2 updates A/D in hardware where Svade faults (docs/qemu.md)",
    "342 agree, 0 disagree, 12 named deviations"]


def test_qemu_agrees_but_for_its_named_deviations(clean: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The counts tests/test_qemu_riscv_diff.py's test_vector_file_expectations_match_qemu implies for this
    set: 6 Svade A/D faults QEMU does not raise, 6 PTE fetches outside RAM it reports as page faults."""
    require_qemu()
    assert verify(capsys, str(clean), "--qemu") == (0, QEMU_CLEAN)


def test_qemu_with_a_flipped_data_bit_in_a_page_cases_read(clean: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """QEMU loads the word from the same (changed) image the expectation is read from, so the cases agree:
    the image's digest is what reports the change."""
    require_qemu()
    d = copy_set(clean, tmp_path)
    pa = next(c.pa for c in VectorSet.read(d).cases if c.pa is not None and c.access == "read")
    _flip(d / "mem.bin", pa - 0x8000_0000 + 2, 0)                                         # bit 16: not A/D
    assert verify(capsys, str(d), "--qemu") == (1, ["image mem.bin: differs from the sha256 in vectors.json",
                                                     *QEMU_CLEAN[1:]])


def test_qemu_missing_is_one_line(clean: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    status, lines = verify(capsys, str(clean), "--qemu")
    assert status == 2 and len(lines) == 1 and lines[0].startswith("pagetable: error: --qemu: qemu-system-riscv64 "
                                                                   "not found"), lines
    assert "Debian package" in lines[0]


def test_qemu_x86_agrees_but_for_its_named_deviations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """tests/test_qemu_x86_diff.py's test_vector_sets_match_qemu counts for this set: NO_RAM = the cases
    outside RAM (13) less the unprobed fetch, TCG_RSVD_P0 = every reserved-bit fault."""
    require_qemu_x86()
    assert main(["vectors", "generate", "--mode", "x86_64-4level", "--seed", "1", "--out", str(tmp_path)]) == 0
    assert verify(capsys, str(tmp_path), "--qemu") == (0, [
        "image mem.bin: matches",
        "qemu general-protection: 12 agree, 0 disagree",
        "qemu no-memory: 12 agree, 0 disagree",
        "qemu ok: 71 agree, 0 disagree",
        "qemu page-fault: 228 agree, 0 disagree",
        f"named deviation (12 cases): {NO_RAM}",
        f"named deviation (42 cases): {TCG_RSVD_P0}",
        f"named deviation (1 cases): {FETCH_NO_RAM}",
        "323 agree, 0 disagree, 55 named deviations"])
    reasons = collections.Counter(c.reason for c in VectorSet.read(tmp_path).cases)
    assert reasons["reserved"] == 42 and reasons["table-outside-memory"] + reasons["pa-outside-memory"] == 13


def test_qemu_aarch64_agrees_but_for_its_named_deviations(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """As tests/test_qemu_aarch64_diff.py's test_vector_sets_match_qemu counts them (by probe: AT and a real
    access per case): blocks at a level without blocks, a fetch from Device memory, and the PCIe MMIO where
    the set puts its 'outside RAM' addresses."""
    require_qemu_aarch64()
    assert main(["vectors", "generate", "--mode", "aarch64-4k-48", "--seed", "1", "--out", str(tmp_path)]) == 0
    assert verify(capsys, str(tmp_path), "--qemu") == (0, [
        "image mem.bin: matches",
        "qemu access-flag: 36 agree, 0 disagree",
        "qemu address-size: 72 agree, 0 disagree",
        "qemu external-abort: 27 agree, 0 disagree",
        "qemu ok: 176 agree, 0 disagree",
        "qemu permission: 217 agree, 0 disagree",
        "qemu translation: 108 agree, 0 disagree",
        f"named deviation (20 cases): {BLOCK_LEVEL}",
        f"named deviation (2 cases): {DEVICE_FETCH}",
        f"named deviation (18 cases): {A64_NO_RAM}",
        "636 agree, 0 disagree, 40 named deviations"])


def test_qemu_on_a_set_it_does_not_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Svpbmt: the harness's hart is QEMU's `-cpu rv64`, without it (the modes QEMU lacks something for are
    tests/test_vectors_verify_nested.py's)."""
    assert main(["vectors", "generate", "--mode", "sv39", "--svpbmt", "--seed", "1", "--out", str(tmp_path)]) == 0
    status, lines = verify(capsys, str(tmp_path), "--qemu")
    assert (status, lines) == (2, ["pagetable: error: --qemu cannot run this sv39 set: it assumes Svpbmt or "
                                   "Svnapot, which the harness's QEMU hart (-cpu rv64) is not run with; build or "
                                   "generate it without them"])
