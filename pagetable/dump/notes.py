"""CPU state from the notes of QEMU's ELF cores.

QEMU's x86 `dump-guest-memory` writes, after each CPU's NT_PRSTATUS note, a note named "QEMU" of type 0 whose
descriptor is `QEMUCPUState` (QEMU 7.2 target/i386/arch_dump.c, version 1): version and size (u32 each), the
16 general registers, RIP and RFLAGS, ten segments (CS, DS, ES, FS, GS, SS, LDT, TR, GDT, IDT; each
selector, limit, flags, padding as u32 and base as u64), CR0 to CR4 and, in cores whose `size` includes it,
KERNEL_GS_BASE. It carries no EFER. `qemu_cpu_states(image.notes)` decodes them in CPU order, so the
translation registers of CPU N are `qemu_cpu_states(notes)[N].control_registers()`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import construct as cs

from .images import ImageError

__all__ = ["QEMU_CPU_STATE", "QemuCpuState", "QemuSegment", "qemu_cpu_states"]

GPRS: Final = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp",
               "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
SEGMENTS: Final = ("cs", "ds", "es", "fs", "gs", "ss", "ldt", "tr", "gdt", "idt")
_SEGMENT = cs.Struct("selector" / cs.Int32ul, "limit" / cs.Int32ul, "flags" / cs.Int32ul, "pad" / cs.Int32ul,
                     "base" / cs.Int64ul)
QEMU_CPU_STATE = cs.Struct(
    "version" / cs.Int32ul,
    "size" / cs.Int32ul,
    *(name / cs.Int64ul for name in GPRS),
    "rip" / cs.Int64ul,
    "rflags" / cs.Int64ul,
    *(name / _SEGMENT for name in SEGMENTS),
    "cr" / cs.Array(5, cs.Int64ul),
)
"""`QEMUCPUState` up to CR4 (version 1's fixed part); KERNEL_GS_BASE follows when `size` says so."""
_KERNEL_GS_BASE: Final = QEMU_CPU_STATE.sizeof()


@dataclass(frozen=True)
class QemuSegment:
    """One segment register (or GDTR/IDTR) as QEMU records it: selector, limit, QEMU's flags word, base."""

    selector: int
    limit: int
    flags: int
    base: int


@dataclass(frozen=True)
class QemuCpuState:
    """One CPU's "QEMU" note: general registers by name, RIP, RFLAGS, segments by name, CR0..CR4 (`cr[1]` is
    reserved and QEMU writes 0 there), KERNEL_GS_BASE when present."""

    version: int
    gprs: Mapping[str, int]
    rip: int
    rflags: int
    segments: Mapping[str, QemuSegment]
    cr: tuple[int, int, int, int, int]
    kernel_gs_base: int | None

    def control_registers(self) -> dict[str, int]:
        """`cr0`, `cr2`, `cr3`, `cr4`, named as the x86_64 commands name registers."""
        return {"cr0": self.cr[0], "cr2": self.cr[2], "cr3": self.cr[3], "cr4": self.cr[4]}


def _decode(desc: bytes, cpu: int) -> QemuCpuState:
    if len(desc) < QEMU_CPU_STATE.sizeof():
        raise ImageError(f"the QEMU note of CPU {cpu} has {len(desc)} bytes, QEMUCPUState needs "
                         f"{QEMU_CPU_STATE.sizeof()}")
    s = QEMU_CPU_STATE.parse(desc)
    if s.version != 1:
        raise ImageError(f"the QEMU note of CPU {cpu} is QEMUCPUState version {s.version}; only version 1 is known")
    if not QEMU_CPU_STATE.sizeof() <= s.size <= len(desc):
        raise ImageError(f"the QEMU note of CPU {cpu} says it has {s.size} bytes; its descriptor has {len(desc)}")
    gs_base = int.from_bytes(desc[_KERNEL_GS_BASE:_KERNEL_GS_BASE + 8], "little") \
        if s.size >= _KERNEL_GS_BASE + 8 else None
    return QemuCpuState(
        version=s.version, gprs=MappingProxyType({name: s[name] for name in GPRS}), rip=s.rip, rflags=s.rflags,
        segments=MappingProxyType({name: QemuSegment(s[name].selector, s[name].limit, s[name].flags,
                                                     s[name].base) for name in SEGMENTS}),
        cr=(s.cr[0], s.cr[1], s.cr[2], s.cr[3], s.cr[4]), kernel_gs_base=gs_base)


def qemu_cpu_states(notes: Iterable[tuple[str, str, bytes]]) -> list[QemuCpuState]:
    """The "QEMU" notes (type 0) among an image's notes (`Image.notes`), decoded, in CPU order; empty for a
    core without them (QEMU writes them for x86 only). `ImageError` for a note too short or of another
    version."""
    found = [desc for name, kind, desc in notes if name == "QEMU" and kind == "0"]
    return [_decode(desc, cpu) for cpu, desc in enumerate(found)]
