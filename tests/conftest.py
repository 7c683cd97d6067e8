"""Shared test helpers."""

from __future__ import annotations

import os
import time

import pytest

from pagetable.vectors.aarch64 import qemu as qemu_aarch64
from pagetable.vectors.riscv import qemu as qemu_riscv
from pagetable.vectors.x86_64 import qemu as qemu_x86

from . import fuzzing


def _require(missing: list[str]) -> None:
    """Skip the test for what is missing, or fail when CI=true (CI must never skip it silently)."""
    if missing:
        message = "; ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}, and CI=true requires it")
        pytest.skip(message)


def _toolchain_missing(tools: list[str], package: str) -> list[str]:
    return [f"{', '.join(tools)} not found (Debian package {package})"] if tools else []


def _qemu_missing(path: str | None, binary: str, package: str, toolchain: list[str]) -> list[str]:
    return ([f"{binary} not found (Debian package {package})"] if path is None else []) + toolchain


def require_toolchain() -> None:
    """The GNU binutils that assemble the RISC-V QEMU stub; the test skips without them, or fails when
    CI=true."""
    _require(_toolchain_missing(qemu_riscv.missing_toolchain(), qemu_riscv.TOOLCHAIN_PACKAGE))


def require_qemu() -> str:
    """qemu-system-riscv64's path, with the binutils that assemble its stub; the test skips without either,
    or fails when CI=true."""
    path = qemu_riscv.find_qemu()
    _require(_qemu_missing(path, qemu_riscv.QEMU_BINARY, qemu_riscv.QEMU_PACKAGE,
                           _toolchain_missing(qemu_riscv.missing_toolchain(), qemu_riscv.TOOLCHAIN_PACKAGE)))
    assert path is not None  # else _require skipped or failed the test
    return path


def require_toolchain_x86() -> None:
    """The GNU binutils that assemble the x86 stubs; skip without them, or fail when CI=true."""
    _require(_toolchain_missing(qemu_x86.missing_toolchain(), qemu_x86.TOOLCHAIN_PACKAGE))


def require_qemu_x86() -> str:
    """qemu-system-x86_64's path, with the binutils that assemble its stubs; skip without either, or fail
    when CI=true."""
    path = qemu_x86.find_qemu()
    _require(_qemu_missing(path, qemu_x86.QEMU_BINARY, qemu_x86.QEMU_PACKAGE,
                           _toolchain_missing(qemu_x86.missing_toolchain(), qemu_x86.TOOLCHAIN_PACKAGE)))
    assert path is not None
    return path


def require_kvm() -> str:
    """As `require_qemu_x86`, and /dev/kvm usable: without it the test skips, even when CI=true (CI machines
    need not offer KVM)."""
    path = require_qemu_x86()
    if not qemu_x86.kvm_usable():
        pytest.skip("/dev/kvm is missing or not usable by this user")
    return path


def require_toolchain_aarch64() -> None:
    """The GNU binutils that assemble the AArch64 stub; skip without them, or fail when CI=true."""
    _require(_toolchain_missing(qemu_aarch64.missing_toolchain(), qemu_aarch64.TOOLCHAIN_PACKAGE))


def require_qemu_aarch64() -> str:
    """qemu-system-aarch64's path, with the binutils that assemble its stub; skip without either, or fail
    when CI=true."""
    path = qemu_aarch64.find_qemu()
    _require(_qemu_missing(path, qemu_aarch64.QEMU_BINARY, qemu_aarch64.QEMU_PACKAGE,
                           _toolchain_missing(qemu_aarch64.missing_toolchain(), qemu_aarch64.TOOLCHAIN_PACKAGE)))
    assert path is not None
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
