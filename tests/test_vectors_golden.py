"""The generator's output is fixed by the mode, seed and options: the same inputs give the same bytes on
every machine. These digests (SHA-256, first 16 hex digits) pin it. The images have not changed since
version 1 of the format; vectors.json changed twice: when version 2 added syndromes, and when the cases
came to be drawn with numpy (`np.random.default_rng(seed)`, not `random.Random`): the same seed now picks
other VAs, and with --cases other targets, kept in target order (docs/vectors.md). A change here must be
deliberate: a user's stored vector set would no longer be reproducible. numpy promises the same draws
only from the same numpy release; a numpy that changed `Generator.integers` or `choice` would show here."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pagetable.cli import main

GOLDEN = {  # (mode, options): (mem.bin, vectors.json)
    ("sv39", ""): ("0303be7dfca3b894", "8f90f20314d75bca"),
    ("sv39", "svadu"): ("0303be7dfca3b894", "2a7014a8f6fb4939"),
    ("sv48", ""): ("bc36f4835e466551", "5a09cda13e16e03c"),
    ("sv57", ""): ("a308817a3cba3921", "70e4856112a18b5d"),
    ("sv39x4", ""): ("f703ad1620f9a16a", "718dc1477484c5a5"),
    ("sv48x4", "svadu"): ("2385605946133734", "f24b9f3b274b3a3d"),
    ("sv39+sv39x4", ""): ("28140874535b35d7", "368effd44992a1b9"),
    ("sv48+sv48x4", ""): ("53cb47234c16764e", "8009a284e4fb034d"),
    ("sv48+sv48x4", "svadu"): ("53cb47234c16764e", "ebf888ca81c8d0dd"),
}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


@pytest.mark.parametrize(("mode", "ad"), list(GOLDEN))
def test_the_same_seed_gives_the_same_bytes(tmp_path: Path, mode: str, ad: str) -> None:
    argv = ["vectors", "generate", "--mode", mode, "--seed", "7", "--out", str(tmp_path)]
    assert main(argv + (["--ad", ad] if ad else [])) == 0
    assert (_digest(tmp_path / "mem.bin"), _digest(tmp_path / "vectors.json")) == GOLDEN[(mode, ad)]


GOLDEN_CASES = {  # (mode, --cases): (mem.bin, vectors.json), seed 7: the cases sampled from, or added to,
    ("sv39", 5): ("0303be7dfca3b894", "a94a95afdef46565"),              # every target x access x privilege
    ("sv39x4", 20): ("f703ad1620f9a16a", "1e2975dd17d9e0fa"),
    ("sv39", 3000): ("0303be7dfca3b894", "d87ee7d72e079927"),
    ("sv48+sv48x4", 3000): ("53cb47234c16764e", "6d10a304c42693c8"),
}


@pytest.mark.parametrize(("mode", "cases"), list(GOLDEN_CASES))
def test_the_same_seed_gives_the_same_cases(tmp_path: Path, mode: str, cases: int) -> None:
    argv = ["vectors", "generate", "--mode", mode, "--seed", "7", "--cases", str(cases), "--out", str(tmp_path)]
    assert main(argv) == 0
    assert (_digest(tmp_path / "mem.bin"), _digest(tmp_path / "vectors.json")) == GOLDEN_CASES[(mode, cases)]
