"""Shared test helpers."""

from __future__ import annotations

import os
import time

import pytest

from pagetable.vectors.riscv import qemu as qemu_riscv

from . import fuzzing


def _require(missing: list[str]) -> None:
    """Skip the test for what is missing, or fail when CI=true (CI must never skip it silently)."""
    if missing:
        message = "; ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}, and CI=true requires it")
        pytest.skip(message)


def _toolchain_missing() -> list[str]:
    tools = qemu_riscv.missing_toolchain()
    return [f"{', '.join(tools)} not found (Debian package {qemu_riscv.TOOLCHAIN_PACKAGE})"] if tools else []


def require_toolchain() -> None:
    """The GNU binutils that assemble the QEMU stub; the test skips without them, or fails when CI=true."""
    _require(_toolchain_missing())


def require_qemu() -> str:
    """QEMU's path, with the binutils that assemble its stub; the test skips without either, or fails when
    CI=true."""
    path = qemu_riscv.find_qemu()
    missing = _toolchain_missing()
    if path is None:
        missing.insert(0, f"{qemu_riscv.QEMU_BINARY} not found (Debian package {qemu_riscv.QEMU_PACKAGE})")
    _require(missing)
    assert path is not None  # else _require skipped or failed the test
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
