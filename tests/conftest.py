"""Shared test helpers."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Protocol, cast

import pytest

from pagetable.vectors import linux
from pagetable.vectors.aarch64 import qemu as qemu_aarch64
from pagetable.vectors.riscv import qemu as qemu_riscv
from pagetable.vectors.riscv import qemu32 as qemu_riscv32
from pagetable.vectors.x86_64 import qemu as qemu_x86
from pagetable.vectors.x86_64 import qemu32 as qemu_x86_32

from . import fuzzing


def _require(missing: list[str]) -> None:
    """Skip the test for what is missing, or fail when CI=true (CI must never skip it silently)."""
    if missing:
        message = "; ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}, and CI=true requires it")
        pytest.skip(message)


class _Harness(Protocol):
    """What a QEMU harness module (pagetable.vectors.*.qemu) says about its tools."""

    QEMU_BINARY: str
    QEMU_PACKAGE: str
    TOOLCHAIN_PACKAGE: str

    def find_qemu(self) -> str | None: ...

    def missing_toolchain(self) -> list[str]: ...


def _toolchain_missing(harness: _Harness) -> list[str]:
    tools = harness.missing_toolchain()
    return [f"{', '.join(tools)} not found (Debian package {harness.TOOLCHAIN_PACKAGE})"] if tools else []


def _require_qemu(harness: _Harness) -> str:
    """The harness's QEMU binary, with the binutils that assemble its stubs: the test skips without either,
    or fails when CI=true."""
    path = harness.find_qemu()
    _require(([f"{harness.QEMU_BINARY} not found (Debian package {harness.QEMU_PACKAGE})"] if path is None else [])
             + _toolchain_missing(harness))
    assert path is not None  # else _require skipped or failed the test
    return path


def require_toolchain() -> None:
    """The GNU binutils that assemble the RISC-V QEMU stub (skip without them, or fail when CI=true)."""
    _require(_toolchain_missing(cast(_Harness, qemu_riscv)))


def require_qemu() -> str:
    """qemu-system-riscv64's path, with the binutils that assemble its stub (`_require_qemu`)."""
    return _require_qemu(cast(_Harness, qemu_riscv))


def require_qemu_riscv32() -> str:
    """qemu-system-riscv32's path, with the binutils that assemble its stub (`_require_qemu`)."""
    return _require_qemu(cast(_Harness, qemu_riscv32))


def require_toolchain_x86() -> None:
    """The GNU binutils that assemble the x86 stubs (skip without them, or fail when CI=true)."""
    _require(_toolchain_missing(cast(_Harness, qemu_x86)))


def require_qemu_x86() -> str:
    """qemu-system-x86_64's path, with the binutils that assemble its stubs (`_require_qemu`)."""
    return _require_qemu(cast(_Harness, qemu_x86))


def require_qemu_x86_32() -> str:
    """qemu-system-x86_64's path, with the binutils that assemble the 32-bit stub (`_require_qemu`)."""
    return _require_qemu(cast(_Harness, qemu_x86_32))


def require_kvm() -> str:
    """As `require_qemu_x86`, and /dev/kvm usable: without it the test skips, even when CI=true (CI machines
    need not offer KVM)."""
    path = require_qemu_x86()
    if not qemu_x86.kvm_usable():
        pytest.skip("/dev/kvm is missing or not usable by this user")
    return path


def require_toolchain_aarch64() -> None:
    """The GNU binutils that assemble the AArch64 stub (skip without them, or fail when CI=true)."""
    _require(_toolchain_missing(cast(_Harness, qemu_aarch64)))


def require_qemu_aarch64() -> str:
    """qemu-system-aarch64's path, with the binutils that assemble its stub (`_require_qemu`)."""
    return _require_qemu(cast(_Harness, qemu_aarch64))


def _require_qemu_binary(harness: _Harness) -> str:
    """The harness's QEMU binary alone (a kernel needs no stub assembled): skip without it, or fail when
    CI=true."""
    path = harness.find_qemu()
    _require([] if path is not None else [f"{harness.QEMU_BINARY} not found (Debian package {harness.QEMU_PACKAGE})"])
    assert path is not None  # else _require skipped or failed the test
    return path


def require_qemu_x86_binary() -> str:
    """qemu-system-x86_64's path (`_require_qemu_binary`)."""
    return _require_qemu_binary(cast(_Harness, qemu_x86))


def require_qemu_aarch64_binary() -> str:
    """qemu-system-aarch64's path (`_require_qemu_binary`)."""
    return _require_qemu_binary(cast(_Harness, qemu_aarch64))


def require_linux_kernel(package: str = linux.KERNEL_PACKAGE, url: str | None = None) -> Path:
    """Debian's kernel `package` (pagetable.vectors.linux.fetch_kernel: cached, or fetched with apt-get
    download or from `url`): skip with what to install when it cannot be had, or fail when CI=true."""
    try:
        return linux.fetch_kernel(package, url=url)
    except linux.KernelUnavailable as exc:
        _require([f"the Linux kernel {package} is unavailable: {exc}"])
        raise AssertionError("unreachable: _require skipped or failed the test") from exc


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How many fuzz cases each entry point took (tests/fuzzing.py)."""
    if fuzzing.COUNTS:
        total = sum(fuzzing.COUNTS.values())
        profile = "long" if fuzzing.LONG else "short"
        terminalreporter.write_line(f"fuzz ({profile} profile): {total:,} cases (this run took "
                                    f"{time.monotonic() - fuzzing.STARTED:.0f} s)")
        for name, n in sorted(fuzzing.COUNTS.items()):
            terminalreporter.write_line(f"  {n:>9,}  {name}")
