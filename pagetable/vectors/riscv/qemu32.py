"""Ask QEMU how RV32 (Sv32) virtual addresses translate.

The RV32 face of :mod:`pagetable.vectors.riscv.qemu`: the same M-mode stub (``stub.S``, assembled with
XLEN=32 by the same GNU binutils, ``riscv64-linux-gnu-as -march=rv32gc_zicsr_zifencei -mabi=ilp32`` and
``riscv64-linux-gnu-ld -m elf32lriscv``), the same case and result records, layout plan and output parser,
run on ``qemu-system-riscv32 -M virt -cpu rv32`` (Debian package ``qemu-system-misc``) with the image at
:data:`RAM_BASE` = 0x8000_0000.  Loads and stores are ``lw``/``sw`` from M-mode with ``mstatus.MPRV=1`` and
``MPP`` = the probed privilege (Privileged spec, version 20211203, Section 3.1.6.3), fetches are ``mret``
into S/U-mode (Section 3.3.2); PMP entry 0 is a NAPOT region over the whole 34-bit physical address space
(Section 3.7.1: pmpaddr0 all ones holds PA[33:2]).  With ``hgatp`` (on :data:`CPU_H`, ``-cpu
rv32,h=true``), cases with ``virt`` are two-stage accesses: HLV.W/HSV.W from M-mode as VS/VU-mode, fetches
by ``mret`` with ``mstatush.MPV=1``, through the RV32 ``vsatp`` (satp's layout) and ``hgatp`` (hypervisor
extension, "hgatp": MODE bit 31, 1 = Sv32x4; VMID 28:22; PPN 21:0), mtval2 = the GPA >> 2 of a guest-page
fault.

``satp`` is written as is: Section 4.1.11, RV32 layout MODE (bit 31; 1 = Sv32), ASID (30:22), PPN (21:0);
the harness checks the value read back.  Section 4.3 "Sv32": 4-byte PTEs, a two-level walk from
satp.PPN x 4 KiB, 4 MiB megapages at level 1, 34-bit physical addresses (PPN[1] in PTE bits 31:20).

A case's ``va`` is a 4-byte aligned u32; a result's ``value`` is the 32-bit word loaded at the PA (0 if the
load faulted; a write probe stores back what it loaded), or mepc for an execute.  A fetch that succeeds
must trap at once on the word at the PA, an illegal instruction at mepc = va, which the stub counts as no
trap.  Images meant for fetches should therefore hold in every word that is not a page table its
:func:`tag`: ``(PA >> 2) << 7 | 0b1101011``, the PA's bits 26:2 over the major opcode 1101011, which the
Unprivileged spec (version 20191213, Table 24.1 "RISC-V base opcode map", inst[6:2] = 11010) leaves
reserved and QEMU 7.2 decodes as an illegal instruction (tests/test_qemu_riscv32_harness.py checks it).
The tag names the word's PA uniquely within any 128 MiB.

QEMU 7.2 sets A and D in the PTE itself (the Svadu behaviour: no page fault for A=0, or D=0 on a store),
as on RV64, and drops PA bits 33:32 of a leaf's translation (a page at PA 0x1_8040_0000 reads the RAM at
0x8040_0000), though not of a non-leaf PTE's pointer: docs/qemu.md, "Where QEMU 7.2 departs from the
RISC-V spec".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ...physmem import PhysMem
from .. import qemu as runner
from ..tagging import fill_tags
from . import qemu as rv
from .qemu import (
    QEMU_PACKAGE,
    RAM_BASE,
    TOOLCHAIN_PACKAGE,
    TOOLCHAIN_PREFIX,
    ProbeCase,
    ProbeResult,
    QemuFailed,
    QemuUnavailable,
    ToolchainFailed,
    ToolchainUnavailable,
    missing_toolchain,
)

__all__ = [
    "CPU",
    "CPU_H",
    "QEMU_BINARY",
    "QEMU_PACKAGE",
    "RAM_BASE",
    "TAG_OPCODE",
    "TOOLCHAIN_PACKAGE",
    "TOOLCHAIN_PREFIX",
    "XLEN",
    "ProbeCase",
    "ProbeResult",
    "QemuFailed",
    "QemuUnavailable",
    "ToolchainFailed",
    "ToolchainUnavailable",
    "find_qemu",
    "missing_toolchain",
    "run_probes_rv32",
    "tag",
    "tag_memory",
]

XLEN: Final = 32
QEMU_BINARY: Final = rv.QEMU_BINARY_RV32
CPU: Final = "rv32"
CPU_H: Final = "rv32,h=true"
"""The RV32 hart with the hypervisor extension, for two-stage probes."""
TAG_OPCODE: Final = 0b1101011  # a reserved major opcode (inst[1:0] = 11: a 32-bit instruction)
_TAG_SHIFT: Final = 7  # the opcode's width


def tag(pa: int) -> int:
    """The 32-bit word a tagged image holds at ``pa``: PA[26:2] in bits 31:7 over :data:`TAG_OPCODE`."""
    return ((pa >> 2) << _TAG_SHIFT | TAG_OPCODE) & 0xFFFF_FFFF


def tag_memory(mem: PhysMem) -> None:
    """Fill every u32 of ``mem`` with its :func:`tag` (a column at a time)."""
    fill_tags(mem, _TAG_SHIFT, TAG_OPCODE, size=4, drop=2)


def find_qemu() -> str | None:
    """Return the path of ``qemu-system-riscv32`` on PATH, or ``None``."""
    return runner.find_qemu(QEMU_BINARY)


def run_probes_rv32(image: bytes, satp: int, cases: Sequence[ProbeCase], *, hgatp: int | None = None,
                    vsatp: int = 0, cpu: str | None = None, timeout: float = 120.0,
                    qemu: str | None = None) -> list[ProbeResult]:
    """Run every case through QEMU's RV32 MMU and return one result per case, in order.

    ``image`` is placed at :data:`RAM_BASE`, ``satp`` (a u32) written as is; with ``hgatp`` (and ``vsatp``,
    u32s), on :data:`CPU_H` unless ``cpu`` says otherwise, cases may have ``virt`` (the HS ``satp`` should
    then be non-Bare, as on RV64: :func:`pagetable.vectors.riscv.qemu.run_probes`).  QEMU may set A/D bits
    in the image's PTEs; later cases see those updates.  Raises :class:`QemuUnavailable` (naming the Debian package
    ``qemu-system-misc``) when no ``qemu-system-riscv32`` is found, :class:`ToolchainUnavailable` when
    binutils are missing, :class:`QemuFailed` when QEMU exits badly, times out, its output is short or the
    hart did not keep ``satp``, and :class:`ValueError` for a case or ``satp`` RV32 cannot take.
    """
    hart = cpu or (CPU if hgatp is None else CPU_H)
    return rv.run_probes(image, satp, cases, hgatp=hgatp, vsatp=vsatp, cpu=hart, timeout=timeout, qemu=qemu,
                         xlen=XLEN)
