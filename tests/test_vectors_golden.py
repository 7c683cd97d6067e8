"""The generator's output is fixed by the mode, seed and options: the same inputs give the same bytes on
every machine and in every version. These digests (SHA-256, first 16 hex digits) pin it. The images have
not changed since version 1 of the format; vectors.json changed once, when version 2 added syndromes. A
change here must be deliberate: a user's stored vector set would no longer be reproducible."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pagetable.cli import main

GOLDEN = {  # (mode, options): (mem.bin, vectors.json)
    ("sv39", ""): ("0303be7dfca3b894", "bd44ea88ad1a1bd6"),
    ("sv39", "svadu"): ("0303be7dfca3b894", "cf031c25335c4505"),
    ("sv48", ""): ("bc36f4835e466551", "fddc363502530e74"),
    ("sv57", ""): ("a308817a3cba3921", "359a1110c5a9be64"),
    ("sv39x4", ""): ("f703ad1620f9a16a", "996edff22ce2da4e"),
    ("sv48x4", "svadu"): ("2385605946133734", "40552cdf0dce6b6b"),
    ("sv39+sv39x4", ""): ("28140874535b35d7", "0de0fdadcaa721a5"),
    ("sv48+sv48x4", ""): ("53cb47234c16764e", "193072d038ea4e86"),
    ("sv48+sv48x4", "svadu"): ("53cb47234c16764e", "a3871d872201e8db"),
}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


@pytest.mark.parametrize(("mode", "ad"), list(GOLDEN))
def test_the_same_seed_gives_the_same_bytes(tmp_path: Path, mode: str, ad: str) -> None:
    argv = ["vectors", "generate", "--mode", mode, "--seed", "7", "--out", str(tmp_path)]
    assert main(argv + (["--ad", ad] if ad else [])) == 0
    assert (_digest(tmp_path / "mem.bin"), _digest(tmp_path / "vectors.json")) == GOLDEN[(mode, ad)]


GOLDEN_CASES = {  # (mode, --cases): (mem.bin, vectors.json), seed 7: the cases sampled from, or added to,
    ("sv39", 5): ("0303be7dfca3b894", "6d08c8a07b8d211e"),              # every target x access x privilege
    ("sv39x4", 20): ("f703ad1620f9a16a", "3607bc25bb7c311a"),
    ("sv39", 3000): ("0303be7dfca3b894", "bb1e5a0eba299dbd"),
    ("sv48+sv48x4", 3000): ("53cb47234c16764e", "eb8bdec696d0b230"),
}


@pytest.mark.parametrize(("mode", "cases"), list(GOLDEN_CASES))
def test_the_same_seed_gives_the_same_cases(tmp_path: Path, mode: str, cases: int) -> None:
    argv = ["vectors", "generate", "--mode", mode, "--seed", "7", "--cases", str(cases), "--out", str(tmp_path)]
    assert main(argv) == 0
    assert (_digest(tmp_path / "mem.bin"), _digest(tmp_path / "vectors.json")) == GOLDEN_CASES[(mode, cases)]
