"""Fuzz `pagetable vectors verify` with vector sets of every architecture whose image has table entries
overwritten and whose vectors.json has cases, digests and memory entries mutated.

The property, for every input (`--qemu` too, in sv39x4, on qemu-system-riscv64): verify answers (exit 0,
or 1 exactly when a case disagrees or the image differs from its digest; the last line `N agree, M
disagree`; `--json`: one object whose `failed` is the exit status) or refuses with one line on stderr and
exit 2; never a traceback or a hang."""

from __future__ import annotations

import contextlib
import io
import json
import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pagetable.cli import main
from pagetable.vectors.riscv import qemu as qemu_riscv

from .fuzzing import bounded, count, fuzz, table_entries
from .test_fuzz_cli import A64_ENTRIES, A64_MODES, IMAGE_LIMIT, MODES, RAM, X86_ENTRIES, X86_MODES, base, vector_dir

_LAST = re.compile(r"\d+ agree, \d+ disagree(, \d+ named deviations)?")
_CASE_KEYS = ("pa", "fault", "level", "va", "access", "privilege", "syndrome", "perms", "memtype", "stage")


def _verify(argv: list[str]) -> int:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), bounded(30, IMAGE_LIMIT):
        rc = main(argv)
    lines = out.getvalue().splitlines()
    assert rc in (0, 1, 2), (argv, rc, err.getvalue())
    if rc == 2:
        assert err.getvalue().startswith("pagetable: error: ") and err.getvalue().count("\n") == 1, err.getvalue()
        return rc
    assert err.getvalue() == ""
    if "--json" in argv:
        assert len(lines) == 1 and json.loads(lines[0])["failed"] == (rc == 1)
    else:
        assert _LAST.fullmatch(lines[-1]), lines[-1:]
        disagree = int(lines[-1].split(", ")[1].split()[0])
        assert rc == (1 if disagree or any(line.startswith("image ") and "differs" in line for line in lines) else 0)
    return rc


def _mutate(doc: dict[str, Any], data: st.DataObject) -> None:
    """Change a case's field, the image's digest or its memory entry, or nothing."""
    what = data.draw(st.sampled_from(["case", "sha256", "memory", "none"]))
    if what == "case" and doc["cases"]:
        case = data.draw(st.sampled_from(doc["cases"]))
        key = data.draw(st.sampled_from(_CASE_KEYS))
        case[key] = data.draw(st.one_of(st.none(), st.booleans(), st.integers(-9, 1 << 65), st.text(max_size=8),
                                        st.integers(0, (1 << 64) - 1).map(hex), st.just({"scause": "0x1"})))
    elif what == "sha256":
        doc["memory"][0]["sha256"] = data.draw(st.one_of(st.text(alphabet="0123456789abcdefX", max_size=66),
                                                         st.none(), st.integers()))
    elif what == "memory":
        doc["memory"][0]["base"] = data.draw(st.integers(0, (1 << 64) - 1).map(hex))


@fuzz(short=20, long=2_000)
@given(st.sampled_from(MODES + X86_MODES + A64_MODES), st.data())
def test_verify_of_corrupted_sets(mode: str, data: st.DataObject) -> None:
    _, original, image = base(mode)
    doc = json.loads(json.dumps(original))
    entries = X86_ENTRIES if mode in X86_MODES else A64_ENTRIES if mode in A64_MODES else table_entries(RAM, 128)
    mem = bytearray(image)
    for index, value in data.draw(st.lists(st.tuples(st.integers(0, 96 * 512 - 1), entries), max_size=16)):
        mem[index * 8:index * 8 + 8] = value.to_bytes(8, "little")
    _mutate(doc, data)
    extra = data.draw(st.sampled_from([[], ["--json"], ["--shown", "0"], ["--shown", "3"], ["--qemu"]]))
    if "--qemu" in extra and mode != "sv39x4":
        extra = []              # a QEMU boot per example is too slow for the fuzzer but in one mode (sv39x4)
    with vector_dir(mode) as t:
        if mem != image:
            (t / "mem.bin").unlink()
            (t / "mem.bin").write_bytes(bytes(mem))
        (t / "vectors.json").write_text(json.dumps(doc))
        count("vectors verify")
        rc = _verify(["vectors", "verify", str(t), *extra])
    # as text: a level mutated to true is == 1; QEMU's deviations are named, so a clean set agrees there too
    if mem == image and json.dumps(doc) == json.dumps(original):
        assert rc == (2 if extra == ["--qemu"] and (qemu_riscv.find_qemu() is None or qemu_riscv.missing_toolchain())
                      else 0)
