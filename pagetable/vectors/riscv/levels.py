"""The levels above 4 KiB of a RISC-V vector set: at every level (the root included) an invalid entry and a
hole; at every superpage level (i > 0: 4 MiB in Sv32; 2 MiB, 1 GiB, 512 GiB, 256 TiB as the other modes have
them) a linear-map superpage, an executable and a user superpage with permissions the seed draws, and a
misaligned one; and at a level the seed draws (one per kind), malformed superpages and malformed non-leaf
entries. Sv32's PTEs have no bits 63:32, so no encodings with bits 60:54, PBMT or N; its 34-bit PAs reach
above 4 GiB (`above_4g`).

Privileged spec, "Virtual Address Translation Process": step 3 (V=0, R=0 with W=1, reserved bits 60:54,
PBMT without Svpbmt or PBMT=3, N without Svnapot; D, A, U, N and PBMT on a non-leaf PTE are reserved),
step 4 (a pointer), step 5 (permissions), step 6 (PPN[i-1:0] of a level-i superpage must be zero) and step 7
(A/D); "Svnapot": N is only defined for 4 KiB leaves, so N on a superpage or a non-leaf PTE is reserved."""

from __future__ import annotations

from ...arch.riscv_sv39 import PTE
from ...arch.riscv_sv39.entry import A, D, R, U, V, W, X
from ...arch.riscv_sv39.entry import ppn_field as ppn
from ...flags import MappingFlags as F
from .builder import BEYOND_RAM, DATA_SIZE, RAM_BASE, RAM_SIZE, Builder, GiB, aligned_below
from .pages import PERMISSIONS

EXECUTABLE = ("rx", "xo", "rwx")


def invalid_and_holes(b: Builder) -> None:
    """At every level above 4 KiB: an entry with V=0 and the seed's garbage in every other bit (the hardware
    reads no other bit), and an empty slot (`unmapped-*`). The 4 KiB level has both already."""
    for depth in range(b.last):
        b.poke(f"invalid-v0-{b.size(depth)}", b.slot(depth), depth, b.rng.getrandbits(64) & ~V & b.entry_mask)
        b.target(f"unmapped-{b.size(depth)}", b.slot(depth), b.span(depth))


def superpages(b: Builder) -> None:
    """At every superpage level: a kernel linear map of RAM (read/write; the large ones map PA 0 as a kernel
    linear map would, with cases in RAM and beyond it), a kernel superpage with an executable permission
    set and a user one with any set (both drawn by the seed, their cases in the data block)."""
    for depth in range(b.last):
        size, span = b.size(depth), b.span(depth)
        va, pa = b.slot(depth), aligned_below(RAM_BASE, span)
        b.pt.map(va, pa, span, F.READ | F.WRITE)
        b.target(f"superpage-{size}", va + RAM_BASE - pa, min(RAM_SIZE, span))
        if span >= GiB:
            b.target(f"superpage-{size}-beyond-ram", va + BEYOND_RAM - pa, 16 << 20)
        for user, names in ((False, EXECUTABLE), (True, tuple(PERMISSIONS))):
            name = b.rng.choice(names)
            va = b.slot(depth, user)
            b.pt.map(va, b.landing(va, depth)[0], span, PERMISSIONS[name] | (F.USER if user else F(0)))
            b.land(f"{'user-' if user else ''}superpage-{size}-{name}", va, depth)


def malformed_superpages(b: Builder) -> None:
    """Misaligned superpages at every superpage level (PPN[i-1:0] the seed's nonzero value); at a level the
    seed draws (one per kind), superpages with A clear, with D clear, execute-only, with W but not R, and
    with N set (those whose bits the format's entries have)."""
    rng, rw, u = b.rng, b.rw, b.user_bit
    for depth in range(b.last):
        va = b.slot(depth)
        pa, low = b.landing(va, depth)[0], rng.randrange(1, b.span(depth) >> 12) << 12
        b.poke(f"misaligned-superpage-{b.size(depth)}", va, depth, rw | ppn(pa + low))
    kinds = (("accessed-clear", V | R | W | u), ("dirty-clear", V | R | W | A | u), ("xo-superpage", V | X | A | u),
             ("w-without-r", V | W | A | D | u), ("napot-superpage", rw | PTE.mask("N")))
    for label, bits in ((label, bits) for label, bits in kinds if b.fits(bits)):
        depth = b.level()
        va = b.slot(depth)
        b.poke(None, va, depth, bits | ppn(b.landing(va, depth)[0]))
        b.land(f"{label}-{b.size(depth)}", va, depth)


def malformed_pointers(b: Builder) -> None:
    """At a level the seed draws (one per kind), pointers with bits the spec reserves on a non-leaf PTE (A,
    D, U, one of bits 60:54, a PBMT value, N), each over a table whose first entry is a well-formed leaf
    landing in the data block (so only the pointer is wrong), and a pointer to a table outside RAM (the
    next level's fetch faults). The bits the format's entries lack are left out (Sv32: 60:54, PBMT, N)."""
    rng = b.rng
    pbmt = rng.randrange(1, 4)
    kinds = (("nonleaf-accessed", A), ("nonleaf-dirty", D), ("nonleaf-user", U),
             ("nonleaf-reserved-bit", 1 << rng.randrange(54, 61)),
             (f"nonleaf-pbmt-{PTE['PBMT'].encodings[pbmt].lower()}", PTE.set(0, "PBMT", pbmt)),
             ("nonleaf-napot", PTE.mask("N")))
    for label, bits in ((label, bits) for label, bits in kinds if b.fits(bits)):
        depth = b.level()
        va, table = b.slot(depth), b.frames.alloc()
        b.poke(None, va, depth, V | bits | ppn(table))
        b.entries.write(table, b.rw | ppn(b.landing(va, depth + 1)[0]))
        b.land(f"{label}-{b.size(depth)}", va, depth + 1)
    depth = b.level()
    b.poke(f"table-outside-ram-{b.size(depth)}", b.slot(depth), depth, V | ppn(b.outside))


def above_4g(b: Builder) -> None:
    """Sv32 (privileged spec, "Sv32": PPN[1] is 12 bits, so PAs have 34): a leaf at a level the seed draws (a
    4 MiB megapage or a 4 KiB page, in a fresh root slot) over PAs with bits 33:32 set, where there is no RAM
    (an access fault), with a permission set the seed draws; its cases where the leaf maps `b.outside` (the
    data block's PA with those bits set), `above-4g-<size>-<perm>`."""
    name, depth = b.rng.choice(tuple(PERMISSIONS)), b.rng.choice(range(b.last + 1))
    va, span = b.slot(0), b.span(depth)
    base = aligned_below(b.outside, span)
    b.pt.map(va, base, span, PERMISSIONS[name])
    b.target(f"above-4g-{b.size(depth)}-{name}", va + b.outside - base, min(DATA_SIZE, span))
