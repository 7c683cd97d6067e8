"""What every dump command starts from: a memory image, the registers that select its tables, and the walker
they make (`open_target`).

The registers are given by name, as the architecture names them (`Architecture.register_names`), or read from
the CPU state an ELF core records (`cpu_registers`): QEMU's x86 cores, EM_X86_64 and EM_386 (ELFCLASS32, or
ELFCLASS64 with RAM above 4 GiB), carry CR0-CR4 per CPU in their "QEMU" notes (QEMUCPUState, the same in
both: target/i386/arch_dump.c). Registers given by name override or complete the recorded ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from ..arch.x86_64.pae import load_pdptes, pdpte_reserved
from ..arch.x86_64.regs import CR4
from ..errors import PagetableError
from ..vectors.architecture import Architecture
from ..walker import Walker
from .images import Image, open_images
from .notes import qemu_cpu_states

__all__ = ["ELF_MACHINE_NAMES", "LINUX_EFER", "LINUX_EFER_PAE", "QEMU_PDPTE_A", "RV32_CLASS", "Target",
           "cpu_registers", "open_arch_images", "open_target"]

ELF_MACHINE_NAMES: Final = {"x86_64": ("EM_X86_64", "EM_386"), "aarch64": ("EM_AARCH64",),
                            "riscv64": ("EM_RISCV",), "riscv32": ("EM_RISCV",)}
"""The e_machines (as pyelftools names them) of each architecture's ELF cores: x86's EM_X86_64, or EM_386
where QEMU's first CPU was outside IA-32e mode (target/i386/arch_dump.c, cpu_get_dump_info: EFER.LMA picks
the machine); RISC-V's EM_RISCV, whose ELF class tells RV32 from RV64 (`RV32_CLASS`)."""

RV32_CLASS: Final = 32
"""The ELF class of qemu-system-riscv32's cores (target/riscv/arch_dump.c: ELFCLASS32 without TARGET_RISCV64):
such a core is an RV32 hart's, never RV64's. (qemu-system-riscv64 writes ELFCLASS64 for every hart.)"""

LINUX_EFER: Final = 0xD01
"""IA32_EFER as 64-bit Linux runs (SCE, LME, LMA, NXE): assumed for a core in IA-32e mode, whose notes
record no EFER (Intel SDM Vol. 3A §2.2.1: EFER.LMA = 1 in IA-32e mode; Linux sets NXE where the CPU has it)."""

LINUX_EFER_PAE: Final = 0x800
"""IA32_EFER as 32-bit Linux runs with PAE paging (NXE: arch/x86/kernel/head_32.S sets it where CPUID says
the CPU has XD), assumed for an EM_386 core's CPU with CR4.PAE=1; with CR4.PAE=0 (32-bit paging, which has
no XD bit and reads no EFER bit) 0 is assumed."""


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


QEMU_PDPTE_A: Final = 1 << 5
"""The bit QEMU 7.2's PAE walk sets in every PDPTE it walks (the accessed flag's place in a PDE; reserved in a
PDPTE, SDM Table 4-8): a QEMU deviation (docs/qemu.md) that `cpu_registers` undoes in the PDPTE registers."""


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
    if image.machine == "EM_X86_64":
        regs["efer"] = LINUX_EFER
        return regs, [f"efer={LINUX_EFER:#x} (SCE, LME, LMA, NXE: the core records no EFER; give --reg efer=... "
                      "if NXE was clear)"]
    if CR4.get(regs["cr4"], "PAE"):                 # EM_386: the first CPU was outside IA-32e mode
        regs["efer"] = LINUX_EFER_PAE
        return regs, [f"efer={LINUX_EFER_PAE:#x} (NXE, as 32-bit Linux sets it for PAE paging: the {image.machine} "
                      "core records no EFER; give --reg efer=0 if NXE was clear)", *_qemu_pdptes(image, regs)]
    regs["efer"] = 0
    return regs, [f"efer=0x0 (the {image.machine} core records no EFER; CR4.PAE=0: 32-bit paging reads none of "
                  "its bits)"]


def _qemu_pdptes(image: Image, regs: dict[str, int]) -> list[str]:
    """The PDPTE registers of a PAE CPU whose PDPT at CR3 QEMU's walk has marked accessed: QEMU 7.2 sets bit
    5 of each PDPTE it walks (`mmu_translate`, target/i386/tcg/sysemu/excp_helper.c; docs/qemu.md), where a
    processor writes none and bit 5 is reserved, so the registers the MOV to CR3 loaded had it clear (the
    load would have #GP'd, SDM 4.4.1). They are put in `regs` without it, and said; nothing when no present
    PDPTE has bit 5 as its only reserved bit, or the PDPT is outside RAM (the walker says so)."""
    try:
        loaded = load_pdptes(image.mem, regs["cr3"])
    except PagetableError:
        return []
    if not any(int(pdpte_reserved(e, 52)) == QEMU_PDPTE_A for e in loaded):
        return []
    values = [e & ~QEMU_PDPTE_A if int(pdpte_reserved(e, 52)) == QEMU_PDPTE_A else e for e in loaded]
    regs.update({f"pdpte{k}": v for k, v in enumerate(values)})
    return [", ".join(f"pdpte{k}={v:#x}" for k, v in enumerate(values)) + " (the PDPT at CR3 has bit 5 set in a "
            "present PDPTE: QEMU's walk sets it, a reserved bit a processor never writes; the PDPTE registers the "
            "MOV to CR3 loaded had it clear)"]


def open_arch_images(images: Sequence[str], arch: Architecture) -> Image:
    """`open_images`, refusing an ELF core of another architecture than `arch`."""
    image = open_images(images)
    known = {m for names in ELF_MACHINE_NAMES.values() for m in names}
    if image.machine in known and image.machine not in ELF_MACHINE_NAMES.get(arch.name, ()):
        raise PagetableError(f"{images[0]} is an ELF core of {image.machine}, not {arch.cli_name}")
    if image.machine == "EM_RISCV" and image.elfclass == RV32_CLASS and arch.name != "riscv32":
        raise PagetableError(f"{images[0]} is an ELFCLASS32 EM_RISCV core, an RV32 hart's: give --arch riscv32")
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
