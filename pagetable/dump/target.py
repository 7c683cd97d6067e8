"""What every dump command starts from: a memory image, the registers that select its tables, and the walker
they make (`open_target`).

The registers are given by name, as the architecture names them (`Architecture.register_names`), or read from
the CPU state an ELF core records (`cpu_registers`): QEMU's x86 cores carry CR0-CR4 per CPU in their "QEMU"
notes. Registers given by name override or complete the recorded ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from ..errors import PagetableError
from ..vectors.architecture import Architecture
from ..walker import Walker
from .images import Image, open_images
from .notes import qemu_cpu_states

__all__ = ["ELF_MACHINE_NAMES", "LINUX_EFER", "Target", "cpu_registers", "open_arch_images", "open_target"]

ELF_MACHINE_NAMES: Final = {"x86_64": "EM_X86_64", "aarch64": "EM_AARCH64", "riscv64": "EM_RISCV",
                            "riscv32": "EM_RISCV"}
"""The e_machine (as pyelftools names it) of each architecture's ELF cores (64-bit ones; RV32's, EM_RISCV
too: the ELF class tells RV32 from RV64, the machine does not)."""

LINUX_EFER: Final = 0xD01
"""IA32_EFER as 64-bit Linux runs (SCE, LME, LMA, NXE): assumed for a core in IA-32e mode, whose notes
record no EFER (Intel SDM Vol. 3A §2.2.1: EFER.LMA = 1 in IA-32e mode; Linux sets NXE where the CPU has it)."""


@dataclass(frozen=True)
class Target:
    """An opened image, the registers in force (given and recorded) and the walker they make; `assumed`
    says what was taken for granted (a register the image does not record), for the user to see."""

    image: Image
    arch: Architecture
    registers: Mapping[str, int]
    pa_bits: int | None
    walker: Walker
    assumed: tuple[str, ...] = field(default=())


def cpu_registers(image: Image, arch: Architecture, cpu: int) -> tuple[dict[str, int], list[str]]:
    """The translation registers CPU `cpu` had when the image was taken, as far as the image records them,
    and what had to be assumed. PagetableError when the image records none (LiME and raw images, aarch64
    and riscv cores: their notes hold the general registers only) or has no such CPU."""
    if image.kind != "elf-core":
        raise PagetableError(f"--cpu: a {image.kind} image records no CPU state; give the registers with --reg")
    if arch.name != "x86_64":
        raise PagetableError(f"--cpu: {arch.cli_name} cores record no translation registers (their notes hold "
                             "the general registers only); give them with --reg")
    states = qemu_cpu_states(image.notes)
    if not states:
        raise PagetableError("--cpu: the core has no QEMU CPU-state notes (QEMU's dump-guest-memory writes them); "
                             "give the registers with --reg")
    if not 0 <= cpu < len(states):
        raise PagetableError(f"--cpu {cpu}: the core records CPUs 0 to {len(states) - 1}")
    regs = states[cpu].control_registers()
    del regs["cr2"]                                 # the fault address: no translation register
    if image.machine != "EM_X86_64":
        raise PagetableError(f"--cpu {cpu}: the core is {image.machine}, which QEMU writes for a CPU outside IA-32e "
                             "mode; only IA-32e (4- and 5-level) paging is supported")
    regs["efer"] = LINUX_EFER
    return regs, [f"efer={LINUX_EFER:#x} (SCE, LME, LMA, NXE: the core records no EFER; give --reg efer=... "
                  "if NXE was clear)"]


def open_arch_images(images: Sequence[str], arch: Architecture) -> Image:
    """`open_images`, refusing an ELF core of another architecture than `arch`."""
    image = open_images(images)
    machine = ELF_MACHINE_NAMES.get(arch.name)
    if image.machine in ELF_MACHINE_NAMES.values() and image.machine != machine:
        raise PagetableError(f"{images[0]} is an ELF core of {image.machine}, not {arch.cli_name}")
    return image


def open_target(images: Sequence[str], arch: Architecture, registers: Mapping[str, int],
                pa_bits: int | None = None, cpu: int | None = None, root: str | None = None) -> Target:
    """Open `images` (`open_images`) and build the walker of `arch` from `registers` (with `cpu`, over the
    registers the image records for that CPU). `root="auto"`: the root registers not in `registers` come
    from a scan of the image (`roots.auto_root`), not from the CPU's. PagetableError for an image of another
    architecture, unknown or missing registers, values that select a reserved mode, or no root found."""
    if arch.walker_from_registers is None:
        raise PagetableError(f"{arch.cli_name} has no walker from registers")
    image = open_arch_images(images, arch)
    regs: dict[str, int] = {}
    assumed: list[str] = []
    if cpu is not None:
        regs, assumed = cpu_registers(image, arch, cpu)
        assumed = [a for a in assumed if a.split("=", 1)[0] not in registers]
    regs.update(registers)
    if root is not None:
        from .roots import ROOT_REGISTERS, auto_root  # imported here: roots builds on this module

        if root != "auto":
            raise PagetableError(f"--root {root[:40]!r}: the only choice is 'auto'")
        regs = {k: v for k, v in regs.items() if k in registers or k not in ROOT_REGISTERS.get(arch.name, ())}
        regs, found = auto_root(image, arch, regs, pa_bits)
        assumed += found
    walker = arch.walker_from_registers(image.mem, regs, pa_bits).beyond_ram()   # the image's holes: devices
    return Target(image, arch, regs, pa_bits, walker, tuple(assumed))
