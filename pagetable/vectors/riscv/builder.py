"""The RISC-V generator's table builder and memory plan: where RAM is, the tagged data block where every
superpage's cases land, and the seed's choices of levels and places (privileged spec, "Sv32", "Sv39",
"Sv48", "Sv57"; hypervisor extension, "Guest Physical Address Translation" for the G-stage's U=1 leaves)."""

from __future__ import annotations

import random

from ...arch.riscv_sv39.entry import A, D, R, U, V, W
from ...arch.riscv_sv39.entry import ppn_field as ppn
from ...flags import human_size
from ...format import Extension, PagingFormat
from ...frames import FrameAllocator
from ...physmem import PhysMem
from ..generation import Places, TableBuilder
from ..tagging import fill_tags
from . import qemu32
from .modes import xlen

RAM_BASE = 0x8000_0000
RAM_SIZE = 8 << 20
OUTSIDE_RAM = 0x100_0000_0000          # no RAM and no device here on QEMU's virt machine
ABOVE_4G = 3 << 32
"""PA bits 33:32, the top of Sv32's 34-bit PAs: no RAM above 4 GiB (OUTSIDE_RAM does not fit in 34 bits)."""
GSTAGE_ABOVE_4G = 1 << 32
"""PA bit 32 alone: the host PAs with no RAM of an Sv32x4 G-stage's leaves and pointers (alone or under Sv32).
QEMU 7.2 is erratic for G-stage PTE fetches and VS-stage PTE reads from host PAs at or above 0x3_0000_0000
(an access fault where its other G-stage faults are guest-page faults, mtval2 holding no GPA: docs/qemu.md),
so the sets stay below them."""
BEYOND_RAM = 0x9000_0000               # above RAM (and QEMU's), inside the 1 GiB superpage, no device
GUEST_RAM = RAM_BASE                   # two-stage modes: guest RAM's guest-physical base ...
GUEST_BACKING = RAM_BASE + RAM_SIZE    # ... and the host RAM behind it (host RAM is 16 MiB there)
MiB, GiB = 1 << 20, 1 << 30
DATA_SIZE = 2 * MiB                    # the data block: tags only, 2 MiB aligned


def tag_memory(mem: PhysMem, width: int = 64) -> None:
    """Tag every word of RAM for an RV`width` hart: each u64 holds its own physical address shifted left by
    16; RV32 (`width` 32): each u32 the RV32 harness's tag (`qemu32.tag`: PA[26:2] over a reserved major
    opcode), as XLEN-wide loads and 4-byte fetches see them."""
    if width == 32:
        qemu32.tag_memory(mem)
    else:
        fill_tags(mem, 16)


def outside_ram(fmt: PagingFormat, ram: int = RAM_BASE, high: int = ABOVE_4G) -> int:
    """A PA with no RAM (and no device on QEMU's virt machine) that `fmt`'s entries can hold: OUTSIDE_RAM, or
    for Sv32 and Sv32x4 the RAM address `ram` with PA bits 33:32 `high` (default both set), so that QEMU 7.2,
    which drops those bits of a leaf's PA (deviations.QEMU_SV32_PA), reads the image at `ram` there."""
    return high | ram if xlen(fmt) == 32 else OUTSIDE_RAM


def aligned_below(pa: int, span: int) -> int:
    """The base of the naturally aligned `span` that holds `pa` (what a superpage of that span maps)."""
    return pa & ~(span - 1)


class Builder(TableBuilder):
    """Builds one table (in `mem`, with frames from `frames`) and records its targets. `gstage`: a G-stage
    table, whose leaves need U=1 (raw entries get it too) and whose upper half of guest-physical addresses is
    never handed out (QEMU 7.2 cannot use it: docs/qemu.md). `data`: a 2 MiB block of tags, the PA every
    superpage's cases reach, so that a load reads a tag and a fetch meets an illegal instruction."""

    def __init__(self, fmt: PagingFormat, rng: random.Random, mem: PhysMem, frames: FrameAllocator,
                 gstage: bool = False) -> None:
        super().__init__(fmt, rng, mem, frames, V, ppn)
        self.gstage = gstage
        self.user_bit = U if gstage else 0
        self.data = frames.alloc(DATA_SIZE // 4096, align=DATA_SIZE, zero=False)
        self.outside = outside_ram(fmt, self.data, GSTAGE_ABOVE_4G if gstage else ABOVE_4G)
        """The PA outside RAM of raw leaves and pointers (Sv32, Sv32x4: the data block's, above 4 GiB)."""
        self.space = min(fmt.va_bits, xlen(fmt))
        """The address bits a case reaches the table with: the format's, but 32 for Sv32x4 alone (with vsatp
        Bare a GPA is the VA, which an RV32 hart holds in 32 bits: privileged spec, "Guest Physical Address
        Translation")."""
        self.halved = gstage and self.space == fmt.va_bits
        """A G-stage whose upper half of guest-physical addresses is reachable, and so never handed out (QEMU
        7.2 cannot use it: docs/qemu.md)."""
        top = self.space - 1
        # the "kernel" part: the upper half of a sign-extended space (or of a 32-bit one); bit top-1 of a
        # halved G-stage space
        self.at = Places.draw(rng, 1 << (top - 1) if self.halved else fmt.extend(1 << top), min(64 * GiB, 1 << top))
        root = fmt.levels[0]
        first = (self.at.kwin >> root.index_lsb) % root.entries + 1       # the kernel slots above the 4K pages'
        stop = min(root.entries, 1 << (self.space - root.index_lsb)) // (2 if self.halved else 1)
        slots = rng.sample(range(first, stop), rng.randint(1, 3))
        self.anchors = [self.at.kwin] + [fmt.extend(k * root.span) for k in slots]
        """Where the kernel-side groups go: the kernel 4 KiB pages' path and one to three other subtrees of
        the root the seed draws (each group's entries in one of them), with tables down to 2 MiB."""

    @classmethod
    def on_ram(cls, fmt: PagingFormat, rng: random.Random, gstage: bool = False) -> Builder:
        """A builder over a fresh tagged 8 MiB RAM at RAM_BASE."""
        mem = PhysMem([(RAM_BASE, RAM_SIZE)])
        tag_memory(mem, xlen(fmt))
        return cls(fmt, rng, mem, FrameAllocator(mem), gstage)

    def fits(self, raw: int) -> bool:
        """Whether `raw` is an entry of this format: no bit above its width (Sv32's 4-byte PTE has no bits
        63:32, so none of the reserved bits 60:54, PBMT or N)."""
        return raw & ~self.entry_mask == 0

    @property
    def rw(self) -> int:
        """A well-formed read/write leaf's bits (A and D set; U in a G-stage table)."""
        return V | R | W | A | D | self.user_bit

    @property
    def last(self) -> int:
        """The depth of the 4 KiB level."""
        return self.fmt.depth_count - 1

    def span(self, depth: int) -> int:
        return self.fmt.levels[depth].span

    def size(self, depth: int) -> str:
        """The span of an entry at `depth` as labels name it: 4K, 2M, 1G, 512G, 256T."""
        return human_size(self.span(depth))

    def reserved(self, va: int) -> bool:
        """Not handed out: a halved G-stage's upper half of guest-physical addresses (bit va_bits-1 set), and
        a zero-extended address beyond `space` (Sv32x4's GPAs above 4 GiB)."""
        beyond = self.fmt.extension is Extension.ZERO and va >> self.space != 0
        return beyond or (self.halved and bool(va >> (self.fmt.va_bits - 1) & 1))

    def add_anchors(self) -> None:
        """Make the tables of every anchor but the first down to the 2 MiB level."""
        for va in self.anchors[1:]:
            self.table_at(va, self.last - 1)

    def slot(self, depth: int, user: bool = False) -> int:
        """A free depth-`depth` slot (its VA) of the table on the user 4 KiB pages' path (`user`), or on an
        anchor's the seed picks."""
        return self.free(self.at.ubase if user else self.rng.choice(self.anchors), depth)

    def level(self) -> int:
        """The depth (above 4 KiB) one kind of malformed entry goes to, drawn by the seed: one level a kind,
        so that no table is mostly malformed (a root finder, like the hardware's users, expects a root to be
        mostly well formed: pagetable.dump.roots, MIN_FORM)."""
        return self.rng.choice(range(self.last))

    def landing(self, va: int, depth: int) -> tuple[int, int]:
        """For a depth-`depth` leaf at `va` over the aligned span holding the data block: the leaf's PA
        and the VA of the data block through it (where its cases go)."""
        pa = aligned_below(self.data, self.span(depth))
        return pa, va + self.data - pa

    def land(self, label: str, va: int, depth: int) -> None:
        """The target of a leaf made by `landing`: the data block (or the whole leaf, if smaller)."""
        self.target(label, self.landing(va, depth)[1], min(DATA_SIZE, self.span(depth)))


__all__ = [
    "ABOVE_4G",
    "BEYOND_RAM",
    "DATA_SIZE",
    "GSTAGE_ABOVE_4G",
    "GUEST_BACKING",
    "GUEST_RAM",
    "OUTSIDE_RAM",
    "RAM_BASE",
    "RAM_SIZE",
    "Builder",
    "GiB",
    "MiB",
    "aligned_below",
    "outside_ram",
    "tag_memory",
    "xlen",
]
