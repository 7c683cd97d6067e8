"""Generate RISC-V test vectors: a deliberate random address space, its memory image and expected walks.

The image is 8 MiB of RAM at 0x8000_0000 (where QEMU's riscv64 `virt` machine has RAM). Every u64 of memory
that is not a page table holds the tag `PA << 16`: a load reveals the physical address it reached, and an
instruction fetch meets the halfword 0x0000, a defined illegal instruction, so a successful fetch traps
at once on hardware and in QEMU. The address space has, in both halves of the VA space:
- 4 KiB pages with every permission combination (user and supervisor; RW, RO, RX, X-only, RWX), G and RSW;
- one superpage of every size the mode has (2 MiB, 1 GiB, 512 GiB, 256 TiB), the large ones mapping PA 0
  or 0x8000_0000 as a kernel linear map would, with cases inside RAM and beyond it;
- holes at every level, non-canonical VAs, and raw encodings for each fault rule of the spec: V=0,
  W without R, reserved bits 60:54, PBMT (NC, IO, reserved), Svnapot (valid 64 KiB and malformed),
  misaligned superpages, non-leaf PTEs with A/D/U set, a pointer at the last level, A=0 and D=0 leaves,
  leaves and tables outside RAM, and a read-only alias of the root table.
The image does not depend on the walker options; the expected results do. The same seed gives the same
bytes.
"""

from __future__ import annotations

import random

from ...arch.riscv_sv39 import PTE
from ...arch.riscv_sv39.entry import PBMT_IO, PBMT_NC, PBMT_RESERVED, A, D, G, R, U, V, W, X
from ...arch.riscv_sv39.entry import ppn_field as ppn
from ...errors import InvalidArgument
from ...flags import MappingFlags as F
from ...format import Extension, PagingFormat
from ...frames import FrameAllocator
from ...physmem import PhysMem
from ...table import PageTable
from ..generation import MAX_CASES, Places, TableBuilder, Target, checked_request, clear_leaf_bits, vector_set
from ..schema import VectorSet
from ..tagging import fill_tags
from .modes import VECTOR_MODES, Options, VectorMode, vector_mode, walker_for

RAM_BASE = 0x8000_0000
RAM_SIZE = 8 << 20
OUTSIDE_RAM = 0x100_0000_0000          # no RAM and no device here on QEMU's virt machine
BEYOND_RAM = 0x9000_0000               # above RAM (and QEMU's), inside the 1 GiB superpage, no device
GUEST_RAM = RAM_BASE                   # two-stage modes: guest RAM's guest-physical base ...
GUEST_BACKING = RAM_BASE + RAM_SIZE    # ... and the host RAM behind it (host RAM is 16 MiB there)
SPECIAL_GPA = 0x4000_0000              # guest pages the G-stage maps one by one for the two-stage targets
MiB, GiB = 1 << 20, 1 << 30
__all__ = ["GUEST_BACKING", "GUEST_RAM", "MAX_CASES", "RAM_BASE", "RAM_SIZE", "VECTOR_MODES", "generate_riscv",
           "tag_memory"]


def tag_memory(mem: PhysMem) -> None:
    """Fill every u64 of RAM with its own physical address shifted left by 16."""
    fill_tags(mem, 16)


class _Builder(TableBuilder):
    """Builds one table (in `mem`, with frames from `frames`) and records its targets. `gstage`: a G-stage
    table, whose leaves need U=1 (raw entries get it too)."""

    def __init__(self, fmt: PagingFormat, rng: random.Random, mem: PhysMem, frames: FrameAllocator,
                 gstage: bool = False) -> None:
        super().__init__(fmt, rng, mem, frames, V, ppn)
        self.user_bit = U if gstage else 0

    @classmethod
    def on_ram(cls, fmt: PagingFormat, rng: random.Random, gstage: bool = False) -> _Builder:
        """A builder over a fresh tagged 8 MiB RAM at RAM_BASE."""
        mem = PhysMem([(RAM_BASE, RAM_SIZE)])
        tag_memory(mem)
        return cls(fmt, rng, mem, FrameAllocator(mem), gstage)


def _build(b: _Builder) -> None:
    """The address space of one mode, phase by phase (the order of the phases fixes the random choices and
    frame numbers, so it is part of the output: tests/test_vectors_golden.py pins it)."""
    at = _places(b)
    _pages_4k(b, at)
    _raw_leaves(b)
    _superpages(b, at)
    _raw_upper_entries(b, at)
    _address_edges(b, at)


def _places(b: _Builder) -> Places:
    top = b.fmt.va_bits - 1
    # the "kernel" part: the upper half of a sign-extended space; bit top-1 of a (zero-extended) G-stage
    # space, whose upper half QEMU 7.2 cannot use (docs/qemu.md)
    return Places.draw(b.rng, b.fmt.extend(1 << top) if b.fmt.extension is Extension.SIGN else 1 << (top - 1))


def _pages_4k(b: _Builder, at: Places) -> None:
    """4 KiB pages, every permission, both halves (a one-page hole follows each group); a G-stage table has
    U=0 leaves (a guest-page fault for every access) where a sign-extended one has kernel pages."""
    gstage = b.user_bit != 0
    va = at.ubase
    for label, flags, n in (("user-rw", F.READ | F.WRITE | F.USER, 3), ("user-ro", F.READ | F.USER, 1),
                            ("user-rx", F.READ | F.EXECUTE | F.USER, 1), ("user-xo", F.EXECUTE | F.USER, 1),
                            ("user-rwx", F.READ | F.WRITE | F.EXECUTE | F.USER, 1)):
        b.map4k(label, va, flags, n)
        va += (n + 1) * 4096
    b.target("unmapped-4k-user", va - 4096)
    va = at.kwin
    kernel = "no-user" if gstage else "kernel"
    for label, flags, n in (("rw", F.READ | F.WRITE, 3), ("ro", F.READ, 1), ("rx", F.READ | F.EXECUTE, 1),
                            ("xo", F.EXECUTE, 1), ("rwx", F.READ | F.WRITE | F.EXECUTE, 1)):
        b.map4k(f"{kernel}-{label}", va, flags, n)
        if gstage:
            b.clear_bits(va, n, U)
        va += (n + 1) * 4096
    b.target(f"unmapped-4k-{kernel}", va - 4096)
    b.cursor = va


def _raw_leaves(b: _Builder) -> None:
    """Raw leaf encodings in free slots of the kernel 4K table, then a Svnapot 64 KiB page."""
    rng = b.rng
    rw = V | R | W | A | D | b.user_bit
    b.raw_leaf("global-rw", rw | G)
    b.raw_leaf("rsw-set", rw | PTE.set(0, "RSW", rng.randrange(1, 4)))
    b.raw_leaf("invalid-v0", rw & ~V)
    b.raw_leaf("w-without-r", V | W | A | D | b.user_bit)
    b.raw_leaf("wx-without-r", V | W | X | A | D | b.user_bit)
    b.raw_leaf("reserved-bit", rw | 1 << rng.randrange(54, 61))
    b.raw_leaf("pbmt-nc", rw | PTE.set(0, "PBMT", PBMT_NC))
    b.raw_leaf("pbmt-io", rw | PTE.set(0, "PBMT", PBMT_IO))
    b.raw_leaf("pbmt-reserved", rw | PTE.set(0, "PBMT", PBMT_RESERVED))
    bad_napot = b.frame()
    if (bad_napot >> 12) & 0xF == 8:
        bad_napot = b.frame()
    b.raw_leaf("napot-bad-ppn", rw | PTE.mask("N"), bad_napot)
    b.raw_leaf("accessed-clear", (V | R | W | b.user_bit))
    b.raw_leaf("dirty-clear", V | R | W | A | b.user_bit)
    b.raw_leaf("leaf-outside-ram", rw, OUTSIDE_RAM)
    b.raw_leaf("root-table-alias", V | R | A | b.user_bit, b.pt.root_paddr)
    b.raw_leaf("nonleaf-at-last-level", V)
    # Svnapot 64 KiB: 16 identical PTEs at a 16-aligned index, PPN[3:0] = 1000
    napot_va = (b.cursor + 0xFFFF) & ~0xFFFF
    block = b.frames.alloc(16, align=0x10000, zero=False)
    for k in range(16):
        slot = b.pt.lookup(napot_va + k * 4096)
        b.mem.write_u64(slot.pa, rw | PTE.mask("N") | ppn(block + 0x8000))   # PPN[3:0] = 1000
    b.target("napot-64k", napot_va, 0x10000)
    b.cursor = napot_va + 0x10000


def _superpages(b: _Builder, at: Places) -> None:
    """2 MiB of data, then 1 GiB / 512 GiB / 256 TiB kernel linear maps."""
    fmt, kbase, kwin, ubase = b.fmt, at.kbase, at.kwin, at.ubase
    two_m = kwin + 2 * MiB
    b.pt.map(two_m, b.frames.alloc(512, align=2 * MiB, zero=False), 2 * MiB, F.READ | F.WRITE)
    b.target("superpage-2M", two_m, 2 * MiB)
    b.pt.map(ubase + 2 * MiB, b.frames.alloc(512, align=2 * MiB, zero=False), 2 * MiB,
             F.READ | F.WRITE | F.USER)
    b.target("user-superpage-2M", ubase + 2 * MiB, 2 * MiB)
    for depth in range(fmt.depth_count - 3, -1, -1):     # 1 GiB and up
        span = fmt.levels[depth].span
        pa = RAM_BASE if span == GiB else 0
        va_leaf = kbase + 2 * span
        b.pt.map(va_leaf, pa, span, F.READ | F.WRITE)
        label = f"superpage-{span >> 30}G" if span < 1 << 40 else f"superpage-{span >> 40}T"
        b.target(label, va_leaf + (RAM_BASE - pa), RAM_SIZE)
        b.target(label + "-beyond-ram", va_leaf + (BEYOND_RAM - pa), 16 * MiB)


def _raw_upper_entries(b: _Builder, at: Places) -> None:
    """Raw entries above the last level, in free slots next to existing tables."""
    rw = V | R | W | A | D | b.user_bit
    kbase = at.kbase
    lvl1 = b.fmt.depth_count - 2
    free1 = b.free_slots(at.kwin, lvl1)
    b.poke("misaligned-superpage-2M", free1.pop(), lvl1, rw | ppn(RAM_BASE + 2 * MiB + 0x1000))
    b.poke("table-outside-ram", free1.pop(), lvl1, V | ppn(OUTSIDE_RAM))
    for label, bit in (("nonleaf-accessed", A), ("nonleaf-dirty", D), ("nonleaf-user", U)):
        b.pointer_to_table(free1.pop(), lvl1, b.frames.alloc(), {0: (label, rw | ppn(b.frame()))}, bit)
    b.target("unmapped-2M", free1.pop(), 2 * MiB)
    gig = kbase + 3 * GiB
    b.table_at(gig, lvl1 - 1)
    b.poke("misaligned-superpage-1G", gig, lvl1 - 1, rw | ppn(RAM_BASE + 2 * MiB))
    b.target("unmapped-1G", kbase + 5 * GiB, GiB)


def _address_edges(b: _Builder, at: Places) -> None:
    """Just outside the translated space: non-canonical VAs, or GPAs too wide for the G-stage."""
    fmt, top, rng = b.fmt, b.fmt.va_bits - 1, b.rng
    if fmt.extension is Extension.SIGN:
        b.target("non-canonical-low", 1 << top, 1 << 20)
        b.target("non-canonical-high", at.kbase - (1 << 20), 1 << 20)
    else:                                               # guest-physical addresses: zero-extended
        b.map4k("gpa-upper-half", (1 << top) + (rng.randrange(1, 512) << 12), F.READ | F.WRITE | F.EXECUTE)
        b.target("gpa-too-wide", 1 << fmt.va_bits, 1 << 20)


def _two_stage_targets(vs: _Builder, g: PageTable, host_frames: FrameAllocator) -> None:
    """Targets where the G-stage decides a two-stage walk: the final guest-physical address, and the guest
    page of a VS-stage table (an implicit read; with Svadu, an implicit write to set A/D)."""
    rng = vs.rng
    pages = iter(range(SPECIAL_GPA + (rng.randrange(0, 256) << 21), 1 << 62, 2 * 4096))

    def g_page(flags: F, clear: int = 0) -> tuple[int, int]:
        """A guest page the G-stage maps to a fresh host frame with `flags` (and bits `clear` cleared)."""
        gpa, hpa = next(pages), host_frames.alloc(zero=False)
        g.map(gpa, hpa, 4096, flags)
        clear_leaf_bits(g, gpa, clear)
        return gpa, hpa

    rwx = V | R | W | X | A | D                          # VS leaves without U: VS-mode reaches the G-stage
    for label, flags, clear in (("gstage-ro", F.READ | F.USER, 0), ("gstage-xo", F.EXECUTE | F.USER, 0),
                                ("gstage-rwx", F.READ | F.WRITE | F.EXECUTE | F.USER, 0),
                                ("gstage-no-user", F.READ | F.WRITE | F.EXECUTE, U)):
        vs.raw_leaf(label, rwx, g_page(flags, clear)[0])
    vs.raw_leaf("gstage-hole", rwx, next(pages))
    gbits = g.fmt.va_bits
    vs.raw_leaf("gstage-gpa-too-wide", rwx, (1 << gbits) + (rng.randrange(1, 512) << 12))
    upper = (1 << (gbits - 1)) + (rng.randrange(1, 512) << 12)
    g.map(upper, host_frames.alloc(zero=False), 4096, F.READ | F.WRITE | F.EXECUTE | F.USER)
    vs.raw_leaf("gstage-upper-half", rwx, upper)

    lvl1 = vs.fmt.depth_count - 2
    free1 = vs.free_slots(vs.cursor, lvl1)
    vs.poke("vs-table-gstage-hole", free1.pop(), lvl1, V | ppn(next(pages)))
    for label, flags, clear in (("vs-table-gstage-xo", F.EXECUTE | F.USER, 0),
                                ("vs-table-gstage-no-user", F.READ | F.WRITE | F.EXECUTE, U)):
        gpa, hpa = g_page(flags, clear)
        vs.pointer_to_table(free1.pop(), lvl1, gpa, {0: (label, rwx | ppn(vs.frame()))}, seen_at=(g.mem, hpa))
    gpa, hpa = g_page(F.READ | F.USER)                   # a read-only table: reads fine, A/D updates are not
    vs.pointer_to_table(free1.pop(), lvl1, gpa, {0: ("vs-table-gstage-ro", rwx | ppn(vs.frame())),
                                                 2: ("vs-table-gstage-ro-a-clear", (rwx & ~A & ~D) | ppn(vs.frame())),
                                                 4: ("vs-table-gstage-ro-d-clear", (rwx & ~D) | ppn(vs.frame()))},
                        seen_at=(g.mem, hpa))


def _build_mode(mode: VectorMode, seed: int) -> tuple[PhysMem, dict[str, int], list[Target]]:
    """Build `mode`'s tables from `seed`: the host memory image, the registers, and the targets."""
    rng = random.Random(seed)
    if mode.gstage is None:
        assert mode.stage1 is not None
        b = _Builder.on_ram(mode.stage1, rng)
        _build(b)
        return b.mem, mode.registers_for(b.pt.root_paddr, None), b.targets
    if mode.stage1 is None:                              # the G-stage alone: case VAs are GPAs
        b = _Builder.on_ram(mode.gstage, rng, gstage=True)
        _build(b)
        return b.mem, mode.registers_for(None, b.pt.root_paddr), b.targets
    host = PhysMem([(RAM_BASE, 2 * RAM_SIZE)])
    tag_memory(host)
    host_frames = FrameAllocator(host, RAM_BASE, RAM_SIZE)
    g = PageTable(mode.gstage, host, host_frames)
    g.map_region(GUEST_RAM, GUEST_BACKING, RAM_SIZE, F.READ | F.WRITE | F.EXECUTE | F.USER, allow_huge=True)
    guest = PhysMem([(GUEST_RAM, host.view(GUEST_BACKING, RAM_SIZE))])   # the same bytes, at their GPAs
    vs = _Builder(mode.stage1, rng, guest, FrameAllocator(guest))
    _build(vs)
    _two_stage_targets(vs, g, host_frames)
    return host, mode.registers_for(vs.pt.root_paddr, g.root_paddr), vs.targets


def generate_riscv(mode: str, seed: int, cases: int | None = None, options: Options | None = None) -> VectorSet:
    """Build the address space for `mode` (a key of VECTOR_MODES: "sv39", "sv48", "sv57", "sv39x4",
    "sv48x4", "sv57x4", "sv39+sv39x4", "sv48+sv48x4", "sv57+sv57x4") from `seed` and compute every case's
    expected outcome with the walker under `options` (RiscvOptions, or HypervisorOptions for the hypervisor
    modes). `cases=None` gives each target x access x privilege once; a number samples (or extends) that
    list."""
    vm = vector_mode(mode)
    seed, cases = checked_request(seed, cases)
    options = options or vm.options_type()
    if not isinstance(options, vm.options_type):
        raise InvalidArgument(f"{mode} takes {vm.options_type.__name__}, not {type(options).__name__}")
    mem, registers, targets = _build_mode(vm, seed)
    return vector_set("riscv64", vm.name, mem, registers, options.to_json(), targets, seed, cases, walker_for)
