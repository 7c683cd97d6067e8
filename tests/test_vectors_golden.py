"""The generator's output is fixed by the mode, seed and options: the same inputs give the same bytes on
every machine. These digests (SHA-256, first 16 hex digits) pin it. vectors.json changed three times with
the images unchanged: when version 2 added syndromes, when the cases came to be drawn with numpy
(`np.random.default_rng(seed)`, not `random.Random`): the same seed now picks other VAs, and with --cases
other targets, kept in target order (docs/vectors.md), and when each image's entry gained its `sha256`
(with those lines removed, each file has its earlier digest). Then the images and vectors.json changed on
purpose, when the seed came to draw the structure of the address space (levels, subtrees, permissions,
group sizes and order) and every level gained its invalid, misaligned and malformed entries. A change here
must be deliberate: a user's stored vector set would no longer be reproducible. numpy promises the same
draws only from the same numpy release; a numpy that changed `Generator.integers` or `choice` would show
here."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pagetable.cli import main

GOLDEN = {  # (mode, options): (mem.bin, vectors.json)
    ("sv39", ""): ("5c157aa20571b960", "642af6058c803ef6"),
    ("sv39", "svadu"): ("5c157aa20571b960", "dce18286958d2995"),
    ("sv48", ""): ("88733d159719649d", "57cf2145f2ec0b00"),
    ("sv57", ""): ("c26ce21eab7f1a76", "36ded1d69af3f137"),
    ("sv32", ""): ("03d29766fa29a045", "ce6b169eb8555e3c"),         # RV32: 4-byte PTEs, u32 tags
    ("sv32", "svadu"): ("03d29766fa29a045", "6c1a0ae34d0959e1"),
    ("sv39x4", ""): ("6408f7dc1020d402", "ad2c7347090c4968"),
    ("sv48x4", "svadu"): ("0bf5e4da43e2d8a3", "3b7f8469af5a40e0"),
    ("sv39+sv39x4", ""): ("0eed7618cabbb15a", "0256ca5fcb9c78db"),
    ("sv48+sv48x4", ""): ("88eccf160573d615", "a6282fbb3676c762"),
    ("sv48+sv48x4", "svadu"): ("88eccf160573d615", "cc7e25de2bf5633e"),
    ("sv32x4", ""): ("c355507a4a9439ef", "9390afe7c1050a9d"),       # RV32 G-stage: 4-byte PTEs, 16 KiB root
    ("sv32x4", "svadu"): ("c355507a4a9439ef", "5b5d92f844c496c7"),
    ("sv32+sv32x4", ""): ("1b2a4619f773df13", "6da5f7e5ecc1cdd1"),
    ("sv32+sv32x4", "svadu"): ("1b2a4619f773df13", "ea074f96fc8e9e6b"),
    ("x86-32", ""): ("d7cda735c237ac44", "bc698acf51e62c42"),       # x86 32-bit paging: 4-byte entries
    ("x86-32-pse36", ""): ("49cd3b3818f93cea", "d5fe7c0ba2680fc9"),
    ("x86-pae", ""): ("5b836cdd3fe749e3", "d4edaac3e9639f58"),
}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


@pytest.mark.parametrize(("mode", "ad"), list(GOLDEN))
def test_the_same_seed_gives_the_same_bytes(tmp_path: Path, mode: str, ad: str) -> None:
    argv = ["vectors", "generate", "--mode", mode, "--seed", "7", "--out", str(tmp_path)]
    assert main(argv + (["--ad", ad] if ad else [])) == 0
    assert (_digest(tmp_path / "mem.bin"), _digest(tmp_path / "vectors.json")) == GOLDEN[(mode, ad)]


GOLDEN_CASES = {  # (mode, --cases): (mem.bin, vectors.json), seed 7: the cases sampled from, or added to,
    ("sv39", 5): ("5c157aa20571b960", "0041a807f65f45be"),              # every target x access x privilege
    ("sv39x4", 20): ("6408f7dc1020d402", "0f575f4b13cfb965"),
    ("sv39", 3000): ("5c157aa20571b960", "93277a524cfc0d81"),
    ("sv32", 3000): ("03d29766fa29a045", "2c5af3d20ca6367e"),
    ("sv48+sv48x4", 3000): ("88eccf160573d615", "f016e5d86b606bb9"),
    ("sv32+sv32x4", 3000): ("1b2a4619f773df13", "95c3d3af7688c0c4"),
    ("x86-pae", 3000): ("5b836cdd3fe749e3", "f2feaafe64225058"),
}


@pytest.mark.parametrize(("mode", "cases"), list(GOLDEN_CASES))
def test_the_same_seed_gives_the_same_cases(tmp_path: Path, mode: str, cases: int) -> None:
    argv = ["vectors", "generate", "--mode", mode, "--seed", "7", "--cases", str(cases), "--out", str(tmp_path)]
    assert main(argv) == 0
    assert (_digest(tmp_path / "mem.bin"), _digest(tmp_path / "vectors.json")) == GOLDEN_CASES[(mode, cases)]
