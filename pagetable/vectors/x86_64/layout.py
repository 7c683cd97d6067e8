"""Where x86-64 vector images live, and what their data words hold: the conventions every x86 vector
generator and the QEMU harness (:mod:`pagetable.vectors.x86_64.qemu`) share.

* An image is loaded at physical :data:`RAM_BASE` (16 MiB: QEMU's ``-M pc`` has RAM from 0, with the legacy
  hole at 0xA0000-0xFFFFF; the harness keeps its own code and tables below 16 MiB) and holds at most
  :data:`IMAGE_SIZE` (8 MiB) of tables and data.
* Every 8-byte word that is not a page-table entry holds :func:`tag` of its physical address,
  ``(PA << 8) | 0xCC``: a load reveals the PA it reached, and an instruction fetch from it executes the low
  byte 0xCC, INT3, which traps with #BP at RIP = VA + 1 (Intel SDM Vol. 2A, INT3; Vol. 3A 6.15, Interrupt
  3). The tag's bits 5 and 6 (A and D in a paging entry) are the same in every tag, so a comparison that
  ignores A/D in loaded values (the hardware sets them in the entries it walks) still tells any two PAs
  apart.
* Probe VAs are 8-byte aligned.
"""

from __future__ import annotations

from typing import Final

__all__ = ["IMAGE_SIZE", "RAM_BASE", "TAG_BYTE", "tag"]

RAM_BASE: Final = 0x100_0000
IMAGE_SIZE: Final = 0x80_0000
TAG_BYTE: Final = 0xCC


def tag(pa: int) -> int:
    """The u64 a data word at physical address ``pa`` holds: ``(pa << 8) | 0xCC`` (64-bit wrap-around)."""
    return ((pa << 8) | TAG_BYTE) & (2**64 - 1)
