"""Shared test helpers."""

from __future__ import annotations

import os

import pytest

from pagetable.vectors import qemu_riscv


def require_qemu() -> str:
    """QEMU's path; the test skips without it, or fails when CI=true (CI must never skip it silently)."""
    path = qemu_riscv.find_qemu()
    if path is None:
        message = f"{qemu_riscv.QEMU_BINARY} not found (Debian package qemu-system-misc)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}, and CI=true requires it")
        pytest.skip(message)
    return path
