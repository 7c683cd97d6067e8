"""The 4 KiB level of a RISC-V vector set: groups of pages with every permission, and raw leaf encodings for
each fault rule of the privileged spec's "Virtual Address Translation Process" that a 4 KiB leaf can break
(steps 3, 4 and 7; "Svnapot" and "Svpbmt", whose fields an Sv32 PTE does not have)."""

from __future__ import annotations

from ...arch.riscv_sv39 import PTE
from ...arch.riscv_sv39.entry import PBMT_IO, PBMT_NC, PBMT_RESERVED, A, D, G, R, U, V, W, X
from ...arch.riscv_sv39.entry import ppn_field as ppn
from ...flags import MappingFlags as F
from .builder import Builder

PERMISSIONS = {"rw": F.READ | F.WRITE, "ro": F.READ, "rx": F.READ | F.EXECUTE, "xo": F.EXECUTE,
               "rwx": F.READ | F.WRITE | F.EXECUTE}
"""The leaf permission sets RISC-V can encode (R=0 with W=1 is reserved), by the names labels use."""
NAPOT_64K = 0b1000
"""PPN[3:0] of a Svnapot 64 KiB page; the other fifteen values are reserved ("Svnapot", Table "Page table
entry encodings when pte.N=1")."""


def pages_4k(b: Builder) -> None:
    """4 KiB pages, every permission, in both halves, each group 1 to 4 pages in an order the seed draws (a
    one-page hole follows each group); a G-stage table has U=0 leaves (a guest-page fault for every access)
    where a sign-extended one has kernel pages. Leaves the cursor after the kernel groups."""
    rng = b.rng
    kernel = "no-user" if b.gstage else "kernel"
    for user, va in ((True, b.at.ubase), (False, b.at.kwin)):
        names = list(PERMISSIONS)
        rng.shuffle(names)
        for name in names:
            n = rng.randint(1, 4)
            b.map4k(f"user-{name}" if user else f"{kernel}-{name}", va, PERMISSIONS[name] | (F.USER if user else F(0)),
                    n)
            if b.gstage and not user:
                b.clear_bits(va, n, U)
            va += (n + 1) * 4096
        b.target(f"unmapped-4k-{'user' if user else kernel}", va - 4096)
    b.cursor = va


def raw_leaves(b: Builder) -> None:
    """Raw leaf encodings in free slots of the kernel 4K table, in an order the seed draws, then a Svnapot
    64 KiB page. The malformed Svnapot leaves take reserved PPN[3:0] values the seed picks (one to three of
    the fifteen). The encodings with bits the format's entries lack (Sv32: bits 60:54, PBMT, N) are left
    out."""
    rng, u = b.rng, b.user_bit
    rw = b.rw
    leaves = [("global-rw", rw | G, None), ("rsw-set", rw | PTE.set(0, "RSW", rng.randrange(1, 4)), None),
              ("invalid-v0-4K", rng.getrandbits(64) & ~V & b.entry_mask, None),
              ("w-without-r", V | W | A | D | u, None),
              ("wx-without-r", V | W | X | A | D | u, None), ("reserved-bit", rw | 1 << rng.randrange(54, 61), None),
              ("pbmt-nc", rw | PTE.set(0, "PBMT", PBMT_NC), None), ("pbmt-io", rw | PTE.set(0, "PBMT", PBMT_IO), None),
              ("pbmt-reserved", rw | PTE.set(0, "PBMT", PBMT_RESERVED), None),
              ("accessed-clear", V | R | W | u, None), ("dirty-clear", V | R | W | A | u, None),
              ("leaf-outside-ram", rw, b.outside), ("root-table-alias", V | R | A | u, b.pt.root_paddr),
              ("nonleaf-at-last-level", V, None)]
    reserved_napot = [k for k in range(16) if k != NAPOT_64K]
    for low in rng.sample(reserved_napot, rng.randint(1, 3)):
        leaves.append((f"napot-ppn-{low:04b}", rw | PTE.mask("N"), b.data + (low << 12)))
    leaves = [leaf for leaf in leaves if b.fits(leaf[1])]
    rng.shuffle(leaves)
    for label, bits, pa in leaves:
        b.raw_leaf(label, bits & ~PTE.mask("PPN"), pa)
    if not b.fits(PTE.mask("N")):
        return
    # Svnapot 64 KiB: 16 identical PTEs at a 16-aligned index, PPN[3:0] = 1000
    napot_va = (b.cursor + 0xFFFF) & ~0xFFFF
    block = b.frames.alloc(16, align=0x10000, zero=False)
    for k in range(16):
        slot = b.pt.lookup(napot_va + k * 4096)
        b.entries.write(slot.pa, rw | PTE.mask("N") | ppn(block + (NAPOT_64K << 12)))
    b.target("napot-64k", napot_va, 0x10000)
    b.cursor = napot_va + 0x10000
