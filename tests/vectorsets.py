"""Shared pieces of the vector-set tests (tests/test_vectors_*.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pagetable.cli import main
from pagetable.vectors import VectorSet


def assert_edit_refused(vs: VectorSet, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                        edit: Callable[[dict[str, Any]], object], message: str) -> None:
    """Write `vs`, `edit` its vectors.json, and expect `vectors check` and `show` to refuse it with one line
    holding `message` (exit 2, no traceback)."""
    vs.write(tmp_path, "x\n")
    doc = json.loads((tmp_path / "vectors.json").read_text())
    edit(doc)
    (tmp_path / "vectors.json").write_text(json.dumps(doc))
    for command in ("check", "show"):
        assert main(["vectors", command, str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and err.count("\n") == 1, err


def assert_100k_cases_fast(make: Callable[[int], VectorSet]) -> None:
    """`make(cases)` builds and walks 100,000 cases well within a second or two (the columns are never a
    list), after a small set for the imports and caches."""
    make(1000)
    start = time.perf_counter()
    vs = make(100_000)
    assert time.perf_counter() - start < 2.0
    assert len(vs.cases) == 100_000
