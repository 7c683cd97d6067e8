"""Shared test helpers."""

from __future__ import annotations

import os
import time

import pytest

from pagetable.vectors.riscv import qemu as qemu_riscv

from . import fuzzing


def require_qemu() -> str:
    """QEMU's path; the test skips without it, or fails when CI=true (CI must never skip it silently)."""
    path = qemu_riscv.find_qemu()
    if path is None:
        message = f"{qemu_riscv.QEMU_BINARY} not found (Debian package qemu-system-misc)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}, and CI=true requires it")
        pytest.skip(message)
    return path


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How many fuzz cases each entry point took (tests/fuzzing.py)."""
    if fuzzing.COUNTS:
        total = sum(fuzzing.COUNTS.values())
        profile = "long" if fuzzing.LONG else "short"
        terminalreporter.write_line(f"fuzz ({profile} profile): {total:,} cases (this run took "
                                    f"{time.monotonic() - fuzzing.STARTED:.0f} s)")
        for name, n in sorted(fuzzing.COUNTS.items()):
            terminalreporter.write_line(f"  {n:>9,}  {name}")
