"""The G-stage of a two-stage RISC-V vector set and the targets where it decides (hypervisor extension,
"Two-Stage Address Translation" and "Guest Physical Address Translation"): guest RAM mapped by 2 MiB
G-stage superpages, but the 2 MiB holding the VS root table by 4 KiB pages with the root's page read-only;
G-stage superpages of every size above 2 MiB the G-stage mode has; final guest-physical addresses the
G-stage maps read-only, execute-only, without U, to no memory, through a table outside RAM, not at all, too
wide or in the upper half; VS-stage tables on such guest pages (implicit accesses); and VS root-level leaves
with A or D clear, whose Svadu update is an implicit store to the read-only root page."""

from __future__ import annotations

from collections.abc import Iterator

from ...arch.riscv_sv39.entry import A, D, R, U, V, W, X
from ...arch.riscv_sv39.entry import ppn_field as ppn
from ...flags import MappingFlags as F
from ...flags import human_size
from ...frames import FrameAllocator
from ...table import PageTable
from ..generation import clear_leaf_bits
from .builder import (
    BEYOND_RAM,
    GSTAGE_ABOVE_4G,
    GUEST_BACKING,
    GUEST_RAM,
    RAM_BASE,
    RAM_SIZE,
    Builder,
    MiB,
    aligned_below,
    outside_ram,
)

SPECIAL_GPA = 0x4000_0000              # guest pages the G-stage maps one by one for the two-stage targets
RWXU = F.READ | F.WRITE | F.EXECUTE | F.USER
VS_RWX = V | R | W | X | A | D          # VS leaves without U: VS-mode reaches the G-stage


def map_guest_ram(g: PageTable, root: int) -> None:
    """Guest RAM → its host backing by 2 MiB G-stage superpages, but the 2 MiB holding the VS root table (at
    the guest-physical `root`) by 4 KiB pages, the root's read-only."""
    chunk = aligned_below(root, 2 * MiB)
    for start, end in ((GUEST_RAM, chunk), (chunk + 2 * MiB, GUEST_RAM + RAM_SIZE)):
        if end > start:
            g.map_region(start, GUEST_BACKING + start - GUEST_RAM, end - start, RWXU, allow_huge=True)
    g.map_region(chunk, GUEST_BACKING + chunk - GUEST_RAM, 2 * MiB, RWXU, allow_huge=False)
    g.protect(root, F.READ | F.USER)


class _GuestPages:
    """Guest pages for the two-stage targets, each on its own 8 KiB step from a random 2 MiB above
    SPECIAL_GPA, mapped by the G-stage to fresh host frames."""

    def __init__(self, vs: Builder, g: PageTable, host_frames: FrameAllocator) -> None:
        self.g, self.host_frames = g, host_frames
        self.chunk = SPECIAL_GPA + (vs.rng.randrange(0, 256) << 21)
        self._next: Iterator[int] = iter(range(self.chunk, self.chunk + 2 * MiB, 2 * 4096))
        self._outside = 0
        self.outside = outside_ram(g.fmt, high=GSTAGE_ABOVE_4G)
        """The host PA with no RAM of the G-stage's leaves and pointers outside RAM (Sv32x4: PA bit 32 set)."""

    def hole(self) -> int:
        return next(self._next)

    def mapped(self, flags: F, clear: int = 0, hpa: int | None = None) -> tuple[int, int]:
        """A guest page the G-stage maps with `flags` (and bits `clear` cleared) to `hpa` (None: a fresh
        host frame of tags)."""
        gpa, hpa = next(self._next), self.host_frames.alloc(zero=False) if hpa is None else hpa
        self.g.map(gpa, hpa, 4096, flags)
        clear_leaf_bits(self.g, gpa, clear)
        return gpa, hpa

    def under_outside_table(self) -> int:
        """A guest page under a G-stage pointer (the last-level table's slot next to the pages' own: 2 MiB,
        Sv32x4's 4 MiB) to a table outside RAM: the G-stage's next fetch has no memory."""
        depth = self.g.fmt.depth_count - 2
        span = self.g.fmt.levels[depth].span
        outside = aligned_below(self.chunk, span) + span
        slot = self.g.lookup(outside, depth)
        assert slot.depth == depth, "generator bug: the guest pages' G-stage table is not there yet"
        if slot.raw == 0:
            self.g.entries.write(slot.pa, V | ppn(self.outside))
        self._outside += 1
        return outside + (self._outside << 12)


def two_stage_targets(vs: Builder, g: PageTable, host_frames: FrameAllocator) -> None:
    """Map guest RAM (`map_guest_ram`), then the targets where the G-stage decides."""
    map_guest_ram(g, vs.pt.root_paddr)
    pages = _GuestPages(vs, g, host_frames)
    _final_gpas(vs, g, pages)
    _gstage_superpages(vs, g, host_frames)
    _vs_tables(vs, pages)
    _vs_root(vs)


def _final_gpas(vs: Builder, g: PageTable, pages: _GuestPages) -> None:
    """VS leaves whose guest-physical address the G-stage refuses, or sends to no memory (an access fault)."""
    rng = vs.rng
    for label, flags, clear in (("gstage-ro", F.READ | F.USER, 0), ("gstage-xo", F.EXECUTE | F.USER, 0),
                                ("gstage-rwx", RWXU, 0), ("gstage-no-user", F.READ | F.WRITE | F.EXECUTE, U)):
        vs.raw_leaf(label, VS_RWX, pages.mapped(flags, clear)[0])
    vs.raw_leaf("gstage-leaf-outside-ram", VS_RWX, pages.mapped(RWXU, hpa=pages.outside)[0])
    vs.raw_leaf("gstage-hole", VS_RWX, pages.hole())
    vs.raw_leaf("gstage-table-outside-ram", VS_RWX, pages.under_outside_table())
    gbits = g.fmt.va_bits
    if gbits < vs.fmt.pa_bits:          # Sv32's 34-bit PA is Sv32x4's GPA: no VS leaf holds a wider one
        vs.raw_leaf("gstage-gpa-too-wide", VS_RWX, (1 << gbits) + (rng.randrange(1, 512) << 12))
    upper = (1 << (gbits - 1)) + (rng.randrange(1, 512) << 12)
    g.map(upper, pages.host_frames.alloc(zero=False), 4096, RWXU)
    vs.raw_leaf("gstage-upper-half", VS_RWX, upper)


def _gstage_superpages(vs: Builder, g: PageTable, host_frames: FrameAllocator) -> None:
    """A G-stage superpage of every size above 2 MiB the G-stage mode has (1 GiB, 512 GiB, 256 TiB), at a
    guest-physical slot the seed draws below the upper half (and clear of guest RAM, the guest pages and
    the VS-stage's outside-RAM addresses); a VS leaf into host RAM through each, and one beyond host RAM
    (the final access is an access fault)."""
    rng, fmt = vs.rng, g.fmt
    data = host_frames.alloc(zero=False)
    for depth in range(fmt.depth_count - 3, -1, -1):
        span = fmt.levels[depth].span
        first, stop = (3, 256) if span < 1 << 48 else (1, 256)     # 256 TiB slots: GPAs below 2**56 (a PPN)
        gpa, hpa = rng.randrange(first, stop) * span, aligned_below(RAM_BASE, span)
        g.map(gpa, hpa, span, RWXU)
        size = human_size(span)
        vs.raw_leaf(f"gstage-superpage-{size}", VS_RWX, gpa + data - hpa)
        vs.raw_leaf(f"gstage-superpage-{size}-beyond-ram", VS_RWX, gpa + BEYOND_RAM - hpa)


def _vs_tables(vs: Builder, pages: _GuestPages) -> None:
    """VS-stage level-1 pointers to tables on guest pages the G-stage leaves unmapped, maps execute-only,
    without U, to no memory, through a table outside RAM, or read-only (the last with leaves whose A or D is
    clear, which Svadu must write through the G-stage)."""
    lvl1 = vs.last - 1
    vs.poke("vs-table-gstage-hole", vs.slot(lvl1), lvl1, V | ppn(pages.hole()))
    vs.poke("vs-table-host-outside-ram", vs.slot(lvl1), lvl1, V | ppn(pages.mapped(RWXU, hpa=pages.outside)[0]))
    vs.poke("vs-table-gstage-table-outside-ram", vs.slot(lvl1), lvl1, V | ppn(pages.under_outside_table()))
    for label, flags, clear in (("vs-table-gstage-xo", F.EXECUTE | F.USER, 0),
                                ("vs-table-gstage-no-user", F.READ | F.WRITE | F.EXECUTE, U)):
        gpa, hpa = pages.mapped(flags, clear)
        vs.pointer_to_table(vs.slot(lvl1), lvl1, gpa, {0: (label, VS_RWX | ppn(vs.frame()))},
                            seen_at=(pages.g.mem, hpa))
    gpa, hpa = pages.mapped(F.READ | F.USER)             # a read-only table: reads fine, A/D updates are not
    entries = {0: ("vs-table-gstage-ro", VS_RWX), 2: ("vs-table-gstage-ro-a-clear", VS_RWX & ~A & ~D),
               4: ("vs-table-gstage-ro-d-clear", VS_RWX & ~D)}
    vs.pointer_to_table(vs.slot(lvl1), lvl1, gpa, {k: (label, bits | ppn(vs.frame())) for k, (label, bits) in
                                                   entries.items()}, seen_at=(pages.g.mem, hpa))


def _vs_root(vs: Builder) -> None:
    """Root-level VS leaves with A clear and with D clear: with Svadu, setting them is an implicit store to
    the VS root table, whose guest page the G-stage maps read-only (`map_guest_ram`); with Svade, an A/D
    page fault."""
    for label, bits in (("vs-root-gstage-ro-a-clear", VS_RWX & ~A & ~D), ("vs-root-gstage-ro-d-clear", VS_RWX & ~D)):
        va = vs.slot(0)
        vs.poke(None, va, 0, bits | ppn(vs.landing(va, 0)[0]))
        vs.land(label, va, 0)
