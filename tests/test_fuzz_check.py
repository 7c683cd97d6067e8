"""Fuzz `pagetable check` with what users and attackers hand it: vector-set images of every architecture
with their tables corrupted (cycles, self-maps, shared tables, tables and leaves outside RAM, every flag),
registers changed, dropped, added or misnamed, and either output format.

The property, for every input: `check` answers (exit 0, or 1 exactly when a line is an error finding; every
line a finding, then the summary; `--json`: every line an object) or refuses with one line on stderr and
exit 2; never a traceback, a hang, or memory beyond a small multiple of the image."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from pagetable import registry
from pagetable.cli import main
from pagetable.dump.check import RULES, SEVERITIES
from pagetable.vectors import VectorSet

from .fuzzing import bounded, count, fuzz, table_entries
from .test_fuzz_cli import A64_ENTRIES, A64_MODES, IMAGE_LIMIT, MODES, RAM, X86_ENTRIES, X86_MODES, base, vector_dir

_CLI_ARCH = {"riscv64": "riscv", "x86_64": "x86_64", "aarch64": "aarch64"}
_LINE = re.compile(rf"({'|'.join(SEVERITIES)}) ({'|'.join(RULES)}) [a-z0-9_]+ 0x[0-9a-f]+-0x[0-9a-f]+( .*)?: .+")
_SUMMARY = re.compile(r"check: \d+ findings?: \d+ errors?, \d+ warnings?, \d+ infos?")


def _check(argv: list[str], json_lines: bool, status: int | None = None) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), bounded(30, IMAGE_LIMIT):
        rc = main(argv)
    lines = out.getvalue().splitlines()
    assert rc in (0, 1, 2) and rc == (status if status is not None else rc), (argv, rc, err.getvalue())
    if rc == 2:
        assert err.getvalue().startswith("pagetable: error: ") and err.getvalue().count("\n") == 1, err.getvalue()
        return
    assert err.getvalue() == ""
    if json_lines:
        severities = [json.loads(line)["severity"] for line in lines]
    else:
        assert lines and _SUMMARY.fullmatch(lines[-1]), lines[-1:]
        assert all(_LINE.fullmatch(line) for line in lines[:-1]), [x for x in lines[:-1] if not _LINE.fullmatch(x)][:1]
        severities = [line.split(" ", 1)[0] for line in lines[:-1]]
    assert rc == (1 if "error" in severities else 0)


@fuzz(short=24, long=3_000)
@given(st.sampled_from(MODES + X86_MODES + A64_MODES), st.data())
def test_check_of_corrupted_images_with_mutated_registers(mode: str, data: st.DataObject) -> None:
    d, doc, image = base(mode)
    ram = VectorSet.read(d).mem.regions[0].base
    arch = registry.by_name(doc["arch"])
    regs = {k: int(v, 16) for k, v in doc["registers"].items()}
    if data.draw(st.integers(0, 3)) == 0:
        name = data.draw(st.sampled_from([*arch.register_names, "bogus", *regs]))
        if data.draw(st.booleans()) and name in regs:
            del regs[name]
        else:
            regs[name] = data.draw(st.one_of(st.integers(0, (1 << 64) - 1), st.sampled_from([0, 1, 1 << 63])))
    entries = X86_ENTRIES if mode in X86_MODES else A64_ENTRIES if mode in A64_MODES else table_entries(RAM, 128)
    mem = bytearray(image)
    for index, value in data.draw(st.lists(st.tuples(st.integers(0, 96 * 512 - 1), entries), max_size=48)):
        mem[index * 8:index * 8 + 8] = value.to_bytes(8, "little")
    extra = data.draw(st.sampled_from([[], ["--json"], ["--pa-bits", "40"], ["--pa-bits", "9999"]]))
    with vector_dir(mode) as t:
        (t / "mem.bin").unlink()
        (t / "mem.bin").write_bytes(bytes(mem))
        count("check")
        _check(["check", f"{t / 'mem.bin'}@{ram:#x}", "--arch", _CLI_ARCH[arch.name],
                *(f"--reg={k}={v:#x}" for k, v in regs.items()), *extra], "--json" in extra)


def test_a_root_of_self_pointers_and_a_tree_of_one_table_per_level(tmp_path: Path) -> None:
    """The adversarial classics, in every run: an Sv39 root whose every entry points at itself (a loop: an
    error), and x86 tables whose every entry points at the next table (the descent's alias bound)."""
    (tmp_path / "loop.bin").write_bytes((RAM >> 12 << 10 | 1).to_bytes(8, "little") * 512)
    _check(["check", f"{tmp_path / 'loop.bin'}@{RAM:#x}", "--arch", "riscv", f"--reg=satp={8 << 60 | RAM >> 12:#x}"],
           False, 1)
    words = [RAM + (t + 1) * 4096 | 0x7 for t in range(3)] + [RAM | 0x7]
    (tmp_path / "alias.bin").write_bytes(b"".join(w.to_bytes(8, "little") * 512 for w in words))
    _check(["check", f"{tmp_path / 'alias.bin'}@{RAM:#x}", "--arch", "x86_64", f"--reg=cr3={RAM:#x}",
            "--reg=cr0=0x80010001", "--reg=cr4=0x20", "--reg=efer=0xd01"], False, 0)
