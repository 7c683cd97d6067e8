"""The generator's output is fixed by the mode, seed and options: the same inputs give the same bytes on
every machine. These digests (SHA-256, first 16 hex digits) pin it. The images have not changed since
version 1 of the format; vectors.json changed three times: when version 2 added syndromes, when the cases
came to be drawn with numpy (`np.random.default_rng(seed)`, not `random.Random`): the same seed now picks
other VAs, and with --cases other targets, kept in target order (docs/vectors.md), and when each image's
entry gained its `sha256` (with those lines removed, each file has its earlier digest). A change here must be
deliberate: a user's stored vector set would no longer be reproducible. numpy promises the same draws
only from the same numpy release; a numpy that changed `Generator.integers` or `choice` would show here."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pagetable.cli import main

GOLDEN = {  # (mode, options): (mem.bin, vectors.json)
    ("sv39", ""): ("0303be7dfca3b894", "62ad5f57d5c5a438"),
    ("sv39", "svadu"): ("0303be7dfca3b894", "3b6a807d58096e7e"),
    ("sv48", ""): ("bc36f4835e466551", "89edbc5c7f56cdb8"),
    ("sv57", ""): ("a308817a3cba3921", "279c2900ec69b75d"),
    ("sv39x4", ""): ("f703ad1620f9a16a", "e9eb022cc5f33de2"),
    ("sv48x4", "svadu"): ("2385605946133734", "937a83257aff162a"),
    ("sv39+sv39x4", ""): ("28140874535b35d7", "dbf4be31c51cc0d1"),
    ("sv48+sv48x4", ""): ("53cb47234c16764e", "9964670f969fc298"),
    ("sv48+sv48x4", "svadu"): ("53cb47234c16764e", "ca09c3d5a73cb59e"),
}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


@pytest.mark.parametrize(("mode", "ad"), list(GOLDEN))
def test_the_same_seed_gives_the_same_bytes(tmp_path: Path, mode: str, ad: str) -> None:
    argv = ["vectors", "generate", "--mode", mode, "--seed", "7", "--out", str(tmp_path)]
    assert main(argv + (["--ad", ad] if ad else [])) == 0
    assert (_digest(tmp_path / "mem.bin"), _digest(tmp_path / "vectors.json")) == GOLDEN[(mode, ad)]


GOLDEN_CASES = {  # (mode, --cases): (mem.bin, vectors.json), seed 7: the cases sampled from, or added to,
    ("sv39", 5): ("0303be7dfca3b894", "d5463e336b13b569"),              # every target x access x privilege
    ("sv39x4", 20): ("f703ad1620f9a16a", "1905d1191bb26d0d"),
    ("sv39", 3000): ("0303be7dfca3b894", "ffd2a6b7897c4b42"),
    ("sv48+sv48x4", 3000): ("53cb47234c16764e", "0b537ba188a77f3a"),
}


@pytest.mark.parametrize(("mode", "cases"), list(GOLDEN_CASES))
def test_the_same_seed_gives_the_same_cases(tmp_path: Path, mode: str, cases: int) -> None:
    argv = ["vectors", "generate", "--mode", mode, "--seed", "7", "--cases", str(cases), "--out", str(tmp_path)]
    assert main(argv) == 0
    assert (_digest(tmp_path / "mem.bin"), _digest(tmp_path / "vectors.json")) == GOLDEN_CASES[(mode, cases)]
