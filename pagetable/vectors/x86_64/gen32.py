"""Generate vector sets of x86 32-bit paging and PAE paging (modes `x86-32`, `x86-32-pse36`, `x86-pae`): a
deliberate random address space over 32-bit linear addresses, rule by rule from Intel SDM Vol. 3A 4.3
(32-bit paging), 4.4 (PAE paging), 4.6 (access rights) and 4.7 (#PF causes).

The image is the 4-level sets' (`layout`: 8 MiB of tagged RAM at 16 MiB). No case VA is in root slot
`gen.STUB_SLOT_32` (PDE 768 of 32-bit paging, PDPTE 2 of PAE paging): a harness maps its code there.
- 4 KiB pages of each permission (32-bit paging: read/write or read-only, every page executable; PAE: also
  XD) at user and supervisor (global), in a user window and a kernel window near 4 GiB (the top 64 MiB, and
  the last page, 0xFFFF_F000), each page at a PAT index the seed draws; every target is probed at CPL 3 and
  CPL 0, so supervisor accesses to user pages meet SMEP and SMAP (CR4.SMEP=SMAP=1; RFLAGS.AC `--ac`);
- a user and a supervisor large page (4 MiB with CR4.PSE; PAE 2 MiB) with rights and a PAT index the seed
  draws, one at a PAT index 4 to 7 through the PAT bit (12); with PSE-36 and in PAE, a large page above 4
  GiB (PSE-36: PA bits 39:32 in PDE bits 20:13, SDM Table 4-4);
- every #PF cause: not present at each level (PAE: the PDPTE too, or it references a directory outside RAM:
  the seed draws which), and with other bits set; R/W=0 in the PDE over a writable page (CR0.WP, `--no-wp`);
  U/S=0 in the PDE over a user page; PAE: XD in the PDE, and XD=1 leaves (reserved with `--no-nxe`);
  RSVD: PDE bit 21 of a 4 MiB page, bits 20:13 of a 4 MiB page without PSE-36 (or those at and above
  MAXPHYADDR - 19 with PSE-36 and MAXPHYADDR < 40), PAE: bits 20:13 of a 2 MiB page, address bits at or
  above MAXPHYADDR in a PDE and a PTE, bits 62:52 in a PDE and a PTE;
- every IA32_PAT entry's memory type (4.9.2) at 4 KiB, a table and a page outside RAM (at 1 GiB, below 4
  GiB: a 32-bit entry can name it; QEMU's `-M pc` has no RAM or device there).
PAE's PDPTEs are loaded from the PDPT at CR3 (4.4.1); the generator writes none with a reserved bit (a set
with one is rejected: the MOV to CR3 would #GP). The same seed gives the same bytes.
"""

from __future__ import annotations

from ...arch.x86_64 import pat_entries
from ...arch.x86_64.entry import PS, RW, US, XD, G, P, pat_index_bits
from ...arch.x86_64.pae import PDPTE
from ...flags import MappingFlags as F
from ..generation import Places
from .gen import TABLE, Builder, pages_4k
from .modes import PAT_VALUE, X86VectorMode

MiB, GiB = 1 << 20, 1 << 30
NO_RAM = GiB
"""A PA below 4 GiB with no RAM in the image nor on QEMU's `-M pc` (its RAM below 4 GiB ends where the image
does) and no device: the table and the page outside RAM."""
LAST_PAGE = 0xFFFF_F000
__all__ = ["LAST_PAGE", "NO_RAM", "build_legacy"]


def build_legacy(b: Builder, mode: X86VectorMode) -> None:
    """The address space of 32-bit or PAE paging (`mode`), phase by phase (the order fixes the random choices
    and frame numbers: tests/test_vectors_x86_32.py pins it)."""
    rng, pae = b.rng, mode.paging == "pae"
    if pae:                                  # PDPTE 3 the kernel's, 2 the harness's; the seed draws the user's
        user_root = rng.randrange(2)
        at = Places(3 * GiB, user_root << 30 | rng.randrange(1, 256) << 21, 3 * GiB + (rng.randrange(480, 511) << 21))
    else:
        user_root = -1
        at = Places(3 * GiB, rng.randrange(1, 256) << 22, rng.randrange(1008, 1023) << 22)
    pages_4k(b, at)
    kernel = F.READ | F.WRITE | F.EXECUTE
    b.map4k("kernel-last-page", LAST_PAGE, kernel)
    anchors = (at.ubase, at.kwin)
    block = _large_pages(b, mode, anchors)
    _raw_leaves(b, pae)
    _raw_directory_entries(b, mode, anchors, block)
    if pae:
        _spare_pdpte(b, 1 - user_root)


def _large_pages(b: Builder, mode: X86VectorMode, anchors: tuple[int, int]) -> int:
    """A user and a supervisor large page over one fresh block of frames (returned), in the order, page
    directories (user or kernel window's), rights and PAT indices the seed draws; with PSE-36 and in PAE one
    more above 4 GiB (PA bits 32 up to MAXPHYADDR or 40, the low 32 bits the block's)."""
    rng, pd = b.rng, b.depth(2)
    size = b.fmt.levels[pd].span
    name = f"{size >> 20}M"
    block = b.frames.alloc(size // 4096, align=size, zero=False)
    owners, halves = [F.USER, F(0)], list(anchors)
    rng.shuffle(owners)
    rng.shuffle(halves)
    for user, anchor in zip(owners, halves, strict=True):
        flags = F.READ | F.EXECUTE | user | rng.choice((F(0), F.WRITE))
        if mode.paging == "pae":
            flags &= ~rng.choice((F(0), F.EXECUTE))
        va = b.free(anchor, pd)
        b.pt.map(va, block, size, flags)
        b.draw_memtype(va, True)
        b.target(f"superpage-{name}-{'user' if user else 'kernel'}-{_rights(flags)}", va, size)
    if mode.pse36 or mode.paging == "pae":
        width = min(b.cpu.maxphyaddr, 40) if mode.pse36 else b.cpu.maxphyaddr
        high = rng.randrange(1, 1 << (width - 32)) << 32 | block
        b.poke(f"superpage-{name}-above-4g", b.free(rng.choice(anchors), pd), pd,
               b.fmt.codec.new_page(high, F.READ | F.WRITE | F.EXECUTE | F.USER, True))
    return block


def _rights(flags: F) -> str:
    """A large page's rights as a label: rw, ro, rwx or rx (32-bit paging: always x)."""
    return ("rw" if flags & F.WRITE else "r" if flags & F.EXECUTE else "ro") + ("x" if flags & F.EXECUTE else "")


def _raw_leaves(b: Builder, pae: bool) -> None:
    """Raw PTEs in free slots of the kernel window's page table: every PAT index, a page outside RAM or a
    not-present PTE with other bits (the seed draws which, and so the level of the other), and in PAE an
    address bit at or above MAXPHYADDR and one of bits 62:52."""
    xd = XD if pae else 0
    for k, memtype in enumerate(pat_entries(PAT_VALUE)):
        b.raw_leaf(f"pat{k}-{memtype.label}", P | RW | G | xd | pat_index_bits(k, False))
    b.raw_leaf("leaf-outside-ram-L1", P | RW | xd, NO_RAM)
    b.raw_leaf("not-present-bits-L1", RW | US | G | xd)
    if pae:
        b.raw_leaf("rsvd-maxphyaddr-L1", P | RW | XD | 1 << b.rng.randrange(b.cpu.maxphyaddr, 52))
        b.raw_leaf("rsvd-62-52-L1", P | RW | 1 << b.rng.randrange(52, 63))


def _raw_directory_entries(b: Builder, mode: X86VectorMode, anchors: tuple[int, int], block: int) -> None:
    """Raw PDEs, each in a page directory (the user or kernel window's) the seed draws: a large page at PAT
    index 4 to 7 (the PAT bit), large pages with reserved bits, a page and a table outside RAM, a not-present
    PDE (and one with other bits), and over a user read/write/executable page a PDE with U/S=0, R/W=0 and (PAE)
    XD=1, in the seed's order; PAE: a PDE with an address bit at or above MAXPHYADDR and one of bits 62:52."""
    rng, pd, codec = b.rng, b.depth(2), b.fmt.codec
    size = b.fmt.levels[pd].span
    name, pae = f"{size >> 20}M", mode.paging == "pae"

    def slot() -> int:
        return b.free(rng.choice(anchors), pd)

    def page(pa: int, extra: int = 0, flags: F = F.READ | F.WRITE | F.EXECUTE) -> int:
        return codec.new_page(pa, flags, True) | extra

    k = rng.randrange(4, 8)
    b.poke(f"superpage-{name}-pat{k}-{pat_entries(PAT_VALUE)[k].label}", slot(), pd,
           page(block) & ~pat_index_bits(7, True) | pat_index_bits(k, True))
    if pae:
        b.poke("rsvd-2M-bits", slot(), pd, page(block, 1 << rng.randrange(13, 21)))
        b.poke("rsvd-maxphyaddr-L2", slot(), pd, TABLE | b.frame() | 1 << rng.randrange(b.cpu.maxphyaddr, 52))
        b.poke("rsvd-62-52-L2", slot(), pd, TABLE | b.frame() | 1 << rng.randrange(52, 63))
    else:
        b.poke("rsvd-4M-bit21", slot(), pd, page(block, 1 << 21))
        width = min(b.cpu.maxphyaddr, 40) if mode.pse36 else 32
        if width < 40:                       # PDE bits 20:(M-19) are reserved (Table 4-4)
            b.poke(f"rsvd-4M-bits-20-{width - 19}", slot(), pd, page(block, 1 << rng.randrange(width - 19, 21)))
    b.poke(f"leaf-outside-ram-L2-{name}", slot(), pd, page(NO_RAM))
    b.poke("table-outside-ram-L2", slot(), pd, TABLE | NO_RAM)
    b.poke("unmapped-L2", slot(), pd, 0)
    b.poke("not-present-bits-L2", slot(), pd, RW | US | PS | b.frame() | (XD if pae else 0))
    kinds = [("us0", TABLE & ~US), ("rw0", TABLE & ~RW)] + ([("xd", TABLE | XD)] if pae else [])
    rng.shuffle(kinds)
    for label, pointer in kinds:
        b.chain(f"upper-{label}-L2", slot(), pd, pointer, P | RW | US)


def _spare_pdpte(b: Builder, index: int) -> None:
    """PAE's PDPTE `index` (neither the user's nor the kernel's nor the harness's), as the seed draws: not
    present, not present with other bits set (ignored: only a present PDPTE's reserved bits #GP at the load,
    SDM 4.4.1), or referencing a page directory outside RAM."""
    kind = b.rng.randrange(3)
    label, raw = (("unmapped-L3", 0), ("not-present-bits-L3", PDPTE.mask("RSVD_2_1", "RSVD_8_5") | b.frame()),
                  ("table-outside-ram-L3", P | NO_RAM))[kind]
    b.poke(label, index << 30, 0, raw)
