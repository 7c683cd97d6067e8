"""README.md's examples run as pasted and print what they say.

Every ```python block runs, in order, in one namespace (later blocks use names from earlier ones). A line
`print(...)  # text` must print exactly `text` (surrounding blanks aside). Every `pagetable ...` line of a
```sh block runs through the command line and must succeed."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
from pathlib import Path

import pytest

from pagetable.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def _blocks(kind: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(README.read_text()) if lang == kind]


def test_the_python_examples_print_what_they_say() -> None:
    blocks = _blocks("python")
    assert len(blocks) >= 3
    namespace: dict[str, object] = {}
    for n, body in enumerate(blocks):
        expected = [line.split("#", 1)[1].strip() for line in body.splitlines()
                    if line.lstrip().startswith("print(") and "#" in line]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(body, f"README.md python block {n + 1}", "exec"), namespace)
        printed = [line.strip() for line in out.getvalue().splitlines()]
        assert printed == expected, f"README python block {n + 1}"


def test_the_command_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(ROOT / "docs" / "specs", tmp_path / "docs" / "specs")      # the specs the examples build
    monkeypatch.chdir(tmp_path)
    commands = [line.split("#", 1)[0].strip() for body in _blocks("sh") for line in body.splitlines()
                if line.startswith("pagetable ")]
    assert len(commands) >= 5
    for command in commands:
        argv = shlex.split(command)[1:]
        argv = [a for a in argv if a not in ("[--cases]",)]          # an optional flag written in brackets
        planted = argv[0] == "check"                  # the vector set's planted faults: error-level findings
        assert main(argv) == (1 if planted else 0), command
    capsys.readouterr()
    assert os.path.isfile(tmp_path / "vec" / "vectors.json")
