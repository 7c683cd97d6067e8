"""Fuzz cases for `pagetable vectors build SPEC.toml` (pagetable/vectors/spec.py, build.py): the documented
examples mutated line by line and byte by byte, and specs drawn from the keys, kinds, levels and addresses a
spec has, give exit 0 or 2 with one line `pagetable: error: ...`, within time and memory bounds: never a
traceback, a hang or an unbounded allocation."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pagetable import registry
from pagetable.vectors.build import build
from pagetable.vectors.spec import SpecError, parse_spec

from .fuzzing import bounded, count, fuzz
from .test_fuzz_cli import run

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "docs" / "specs").glob("*.toml"))
LIMIT = 600 << 20
VALUES = st.sampled_from(["0", "-1", "0x1_0000_0000_0000_0000", "1.5", "\"\"", "\"4K\"", "\"2M\"", "\"1G\"", "true",
                          "[]", "[1, 2]", "{}", "\"rwx\"", "\"all\"", "\"read\"", "2", "9", "\"largest\"",
                          "0xffff_ffff_ffff_f000", "0x8000_0000", "\"sv39\"", "\"x86_64-5level\"", "\"q\""])
MODES = st.sampled_from([m for a in registry.ARCHITECTURES for m in a.modes])
KINDS = st.sampled_from(["invalid", "table-outside-ram", "leaf-outside-ram", "non-canonical", "reserved-bit",
                         "misaligned-superpage", "w-without-r", "dirty-clear", "accessed-clear", "reserved-ps",
                         "misconfig-memtype", "address-size", "reserved-block", "napot-bad-ppn", "table-user", "nope"])
ADDRESSES = st.one_of(st.sampled_from([0, 0x1000, 0x8000_0000, 0x4100_0000, 0x100_0000, 1 << 32, 1 << 47,
                                       0xFFFF_8000_0000_0000, 0xFFFF_FFFF_8000_0000, (1 << 64) - 4096]),
                      st.integers(0, (1 << 64) - 1).map(lambda v: v & ~0xFFF))
SIZES = st.sampled_from([4096, 8192, 0x10000, 0x20_0000, 0x4000_0000, 1 << 39, 1 << 48, 3, "4K", "2M", "1G", "64K",
                         "512G", "0"])


def _build(text: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "spec.toml")
        with open(path, "wb") as fh:
            fh.write(text)
        out = os.path.join(d, "out")
        with bounded(60, LIMIT):
            code = run(["vectors", "build", path, "--out", out], (0, 2))
        assert (code == 0) == os.path.isdir(out)


@fuzz(short=12, long=400)
@given(example=st.sampled_from(EXAMPLES), edits=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 3), VALUES),
                                                         min_size=1, max_size=4))
def test_mutated_examples_fuzz(example: Path, edits: list[tuple[int, int, str]]) -> None:
    """Lines of a documented example deleted, duplicated, given another value, or their key renamed."""
    count("vectors build (mutated example)")
    lines = example.read_text().splitlines()
    for where, how, value in edits:
        k = where % len(lines)
        if how == 0:
            del lines[k]
        elif how == 1:
            lines.insert(k, lines[k])
        elif how == 2 and "=" in lines[k]:
            lines[k] = lines[k].split("=", 1)[0] + "= " + value
        else:
            lines[k] = lines[k].replace("a", "e", 1)
    _build("\n".join(lines).encode())


@fuzz(short=6, long=200)
@given(example=st.sampled_from(EXAMPLES), at=st.integers(0, 10_000), data=st.binary(min_size=1, max_size=8))
def test_corrupted_example_bytes_fuzz(example: Path, at: int, data: bytes) -> None:
    count("vectors build (corrupted bytes)")
    text = example.read_bytes()
    k = at % len(text)
    _build(text[:k] + data + text[k + len(data):])


def _doc(draw: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"mode": draw(MODES), "seed": draw(st.integers(0, 5))}
    perms = st.sampled_from(["r", "rw", "rx", "x", ""])
    doc["map"] = [{"va": draw(ADDRESSES), "size": draw(SIZES), "perms": draw(perms),
                   "user": draw(st.booleans()), "page": draw(st.sampled_from(["largest", "4K", "2M", "1G", "64K"])),
                   **({"pa": draw(ADDRESSES)} if draw(st.booleans()) else {}),
                   **({"memtype": draw(st.sampled_from(["wb", "wc", "nc", "io", "device", "normal-nc"]))}
                      if draw(st.booleans()) else {}),
                   **({"stage": draw(st.sampled_from([1, 2]))} if draw(st.booleans()) else {})}
                  for _ in range(draw(st.integers(0, 3)))]
    doc["fault"] = [{"kind": draw(KINDS), "va": draw(ADDRESSES),
                     **({"level": draw(st.integers(-1, 5))} if draw(st.booleans()) else {}),
                     **({"stage": draw(st.sampled_from([1, 2]))} if draw(st.booleans()) else {})}
                    for _ in range(draw(st.integers(0, 3)))]
    doc["access"] = [{"va": draw(ADDRESSES)} for _ in range(draw(st.integers(0, 2)))]
    doc["generate"] = {"random": draw(st.integers(0, 3)), "boundaries": draw(st.booleans())}
    return doc


@fuzz(short=25, long=1000)
@given(st.data())
def test_drawn_specs_fuzz(data: st.DataObject) -> None:
    """Specs with every key drawn (modes, addresses, sizes, kinds, levels, stages): a vector set whose every
    mapping and fault the build checked, or a SpecError."""
    count("vectors build (drawn spec)")
    doc = data.draw(st.composite(_doc)())
    with bounded(60, LIMIT):
        try:
            vs = build(parse_spec(doc, "<fuzz>"))
        except SpecError as exc:
            assert str(exc).startswith("<fuzz>") and "\n" not in str(exc), exc
            return
    assert vs.cases
