"""Generate RISC-V test vectors: a deliberate random address space, its memory image and expected walks.

The image is 8 MiB of RAM at 0x8000_0000 (where QEMU's riscv64 and riscv32 `virt` machines have RAM). Every
u64 of memory that is not a page table holds the tag `PA << 16`: a load reveals the physical address it
reached, and an instruction fetch meets the halfword 0x0000, a defined illegal instruction, so a successful
fetch traps at once on hardware and in QEMU. Sv32 (an RV32 mode) tags each u32 instead, with the RV32
harness's tag (`qemu32.tag`: PA[26:2] over a reserved major opcode). The address space has (privileged
spec, "Virtual Address Translation Process", with Svnapot and Svpbmt; "Sv32" for its 4-byte PTEs, which
have no bits 60:54, PBMT or N, and its 34-bit PAs):
- 4 KiB pages with every permission set (RW, RO, RX, X-only, RWX) in both halves, user and supervisor, G
  and RSW, and raw 4 KiB leaves for each fault rule: V=0, W without R, a reserved bit 60:54, PBMT (NC, IO,
  reserved), a valid Svnapot 64 KiB page and malformed ones (reserved PPN[3:0] values), A=0 and D=0, a
  pointer at the last level, a leaf outside RAM and a read-only alias of the root table (`pages`);
- at every level above 4 KiB, the root included, an invalid entry (V=0, other bits random) and a hole; at
  every superpage level (2 MiB, 1 GiB, 512 GiB, 256 TiB as the mode has them) a linear map of RAM (with
  cases beyond RAM), an executable and a user superpage, and a misaligned one; at a level the seed draws,
  superpages with A or D clear, execute-only, W without R or N set, and non-leaf entries with A, D, U, a
  reserved bit, PBMT or N set, or pointing outside RAM (`levels`);
- Sv32: a leaf over PAs above 4 GiB, at a level the seed draws (`levels.above_4g`);
- non-canonical VAs (or, for a G-stage, guest-physical addresses too wide or in the upper half);
- with two stages, the targets where the G-stage decides (`stages`); Sv32x4 (RV32) as its G-stage: a
  VS-stage PTE's 34-bit GPA is the G-stage's whole width (no GPA too wide), and alone (vsatp Bare) the
  address space is built below 4 GiB, the GPAs an RV32 VA holds (`Builder.space`).
The seed draws the topology, not only the addresses: the places, the size and order of the 4 KiB groups,
the subtrees of the root the kernel-side entries spread over (`Builder.anchors`), the order of every group
of targets, the superpages' permissions, the level of each malformed entry and the reserved encodings
used, so two seeds give sets of different structure (labels, levels, counts); the same seed gives the same
bytes. The image does not depend on the walker options; the expected results do.
"""

from __future__ import annotations

import random

from ...errors import InvalidArgument
from ...flags import MappingFlags as F
from ...format import Extension
from ...frames import FrameAllocator
from ...physmem import PhysMem
from ...table import PageTable
from ..generation import MAX_CASES, Target, checked_request, vector_set
from ..schema import VectorSet
from . import levels, pages
from .builder import GUEST_BACKING, GUEST_RAM, OUTSIDE_RAM, RAM_BASE, RAM_SIZE, Builder, tag_memory, xlen
from .modes import VECTOR_MODES, Options, VectorMode, vector_mode, walker_for
from .stages import two_stage_targets

__all__ = ["GUEST_BACKING", "GUEST_RAM", "MAX_CASES", "OUTSIDE_RAM", "RAM_BASE", "RAM_SIZE", "VECTOR_MODES",
           "generate_riscv", "tag_memory"]


def _build(b: Builder) -> None:
    """The address space of one table: the 4 KiB groups first (they make the tables every other group finds
    free slots in), then the other groups in an order the seed draws (the order fixes the random choices
    and frame numbers, so it is part of the output: tests/test_vectors_golden.py pins it)."""
    pages.pages_4k(b)
    b.add_anchors()
    groups = [pages.raw_leaves, levels.invalid_and_holes, levels.superpages, levels.malformed_superpages,
              levels.malformed_pointers, _address_edges] + ([levels.above_4g] if xlen(b.fmt) == 32 else [])
    b.rng.shuffle(groups)
    for group in groups:
        group(b)


def _address_edges(b: Builder) -> None:
    """Just outside the translated space: non-canonical VAs, or GPAs too wide for the G-stage (Sv32 has
    neither: every 32-bit VA is translated)."""
    fmt, top, rng = b.fmt, b.fmt.va_bits - 1, b.rng
    if fmt.extension is Extension.SIGN:
        b.target("non-canonical-low", 1 << top, 1 << 20)
        b.target("non-canonical-high", b.at.kbase - (1 << 20), 1 << 20)
    elif b.gstage:                                      # guest-physical addresses: zero-extended
        b.map4k("gpa-upper-half", (1 << top) + (rng.randrange(1, 512) << 12), F.READ | F.WRITE | F.EXECUTE)
        b.target("gpa-too-wide", 1 << fmt.va_bits, 1 << 20)


def _build_mode(mode: VectorMode, seed: int) -> tuple[PhysMem, dict[str, int], list[Target]]:
    """Build `mode`'s tables from `seed`: the host memory image, the registers, and the targets."""
    rng = random.Random(seed)
    if mode.gstage is None:
        assert mode.stage1 is not None
        b = Builder.on_ram(mode.stage1, rng)             # Sv32 too: its tags and OUTSIDE_RAM are RV32's
        _build(b)
        return b.mem, mode.registers_for(b.pt.root_paddr, None), b.targets
    if mode.stage1 is None:                              # the G-stage alone: case VAs are GPAs
        b = Builder.on_ram(mode.gstage, rng, gstage=True)
        _build(b)
        return b.mem, mode.registers_for(None, b.pt.root_paddr), b.targets
    host = PhysMem([(RAM_BASE, 2 * RAM_SIZE)])
    tag_memory(host, mode.xlen)
    host_frames = FrameAllocator(host, RAM_BASE, RAM_SIZE)
    g = PageTable(mode.gstage, host, host_frames)
    guest = PhysMem([(GUEST_RAM, host.view(GUEST_BACKING, RAM_SIZE))])   # the same bytes, at their GPAs
    vs = Builder(mode.stage1, rng, guest, FrameAllocator(guest))
    _build(vs)
    two_stage_targets(vs, g, host_frames)
    return host, mode.registers_for(vs.pt.root_paddr, g.root_paddr), vs.targets


def generate_riscv(mode: str, seed: int, cases: int | None = None, options: Options | None = None) -> VectorSet:
    """Build the address space for `mode` (a key of VECTOR_MODES: "sv32", "sv39", "sv48", "sv57", "sv39x4",
    "sv48x4", "sv57x4", "sv39+sv39x4", "sv48+sv48x4", "sv57+sv57x4", "sv32x4", "sv32+sv32x4") from `seed` and
    compute every case's expected outcome with the walker under `options` (RiscvOptions, or HypervisorOptions
    for the hypervisor modes). `cases=None` gives each target x access x privilege once; a number samples (or
    extends) that list."""
    vm = vector_mode(mode)
    seed, cases = checked_request(seed, cases)
    options = options or vm.options_type()
    if not isinstance(options, vm.options_type):
        raise InvalidArgument(f"{mode} takes {vm.options_type.__name__}, not {type(options).__name__}")
    mem, registers, targets = _build_mode(vm, seed)
    return vector_set("riscv64", vm.name, mem, registers, options.to_json(), targets, seed, cases, walker_for)
