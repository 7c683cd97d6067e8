"""Fuzz `pagetable walk`: vector sets' images with their tables corrupted (cycles, self-maps, tables and leaves
outside RAM, reserved encodings, anything), registers changed, dropped or added, every format, random
`--range` text and `--stage`.

The property: the command answers (exit 0) or refuses with one line on stderr (exit 2), never a traceback or
a hang; what it answers is well formed (every json line an object, every csv row of the header's fields,
every ptdump line a marker or starting with a VA range)."""

from __future__ import annotations

import contextlib
import csv
import io
import json

from hypothesis import given
from hypothesis import strategies as st

from pagetable.cli import main
from pagetable.dump.walk import FORMATS

from .fuzzing import bounded, count, fuzz
from .test_fuzz_cli import _CLI_ARCH, A64_MODES, IMAGE_LIMIT, MODES, X86_MODES, mutated, vector_dir

RANGES = st.one_of(st.none(), st.tuples(st.integers(0, (1 << 64) - 1), st.integers(0, (1 << 64) - 1)).map(
    lambda t: f"{t[0]:#x}-{t[1]:#x}"), st.integers(0, 1 << 48).map(lambda s: f"{s:#x}+0x200000"),
    st.text("0x12af+-_ z", max_size=12))


def well_formed(fmt: str, lines: list[str]) -> None:
    if fmt == "json":
        assert all(isinstance(json.loads(line), dict) for line in lines)
    elif fmt == "csv":
        rows = list(csv.reader(io.StringIO("\n".join(lines))))
        assert rows[0][0] == "region" and all(len(r) == len(rows[0]) for r in rows)
    else:
        assert all(line.startswith(("0x", "---[ ")) for line in lines)


@fuzz(short=24, long=2_000)
@given(st.sampled_from(MODES + X86_MODES + A64_MODES), st.sampled_from(sorted(FORMATS)), RANGES,
       st.sampled_from([None, "1", "2"]), st.data())
def test_walk_of_mutated_images_and_registers(mode: str, fmt: str, span: str | None, stage: str | None,
                                              data: st.DataObject) -> None:
    _, arch, ram, regs, mem = mutated(mode, data, 2)
    argv = ["walk", "--arch", _CLI_ARCH[arch.name], *(f"--reg={k}={v:#x}" for k, v in regs.items()),
            "--format", fmt, *([f"--range={span}"] if span is not None else []),
            *(["--stage", stage] if stage is not None else [])]
    with vector_dir(mode) as t:
        (t / "mem.bin").unlink()
        (t / "mem.bin").write_bytes(bytes(mem))
        count(f"walk --format {fmt}")
        out, err = io.StringIO(), io.StringIO()
        with bounded(30, IMAGE_LIMIT), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main([argv[0], f"{t / 'mem.bin'}@{ram:#x}", *argv[1:]] if regs else [argv[0], str(t / "mem.bin"),
                                                                                    *argv[1:]])
    assert rc in (0, 2), (argv, rc, err.getvalue())
    if rc == 2:
        assert err.getvalue().startswith("pagetable: error: ") and err.getvalue().count("\n") == 1, err.getvalue()
    else:
        well_formed(fmt, out.getvalue().splitlines())
        assert all(line.startswith("pagetable: note: ") for line in err.getvalue().splitlines())
