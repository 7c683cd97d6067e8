"""Generate AArch64 test vectors: a deliberate random address space, its memory image and expected walks.

The image is `RAM_SIZE` (8 MiB) of RAM at `RAM_BASE` (0x4100_0000, inside QEMU's virt RAM); every u64 of RAM
that is not a translation table holds `tag(PA)` = (PA << 32) | 0xD4214C80, so a load reveals the PA it
reached and a fetch executes BRK #0xA64 (the low word; `layout`). The last entry of every root table (TTBR0, TTBR1,
TTBR0_EL2, VTTBR_EL2) is left to a harness: no case VA selects it. The address space follows Arm ARM DDI
0487 M.a.a chapter D8 rule by rule, in each half of the EL1&0 regime (TTBR0: EL0 pages, TTBR1: EL1 pages) or
in the EL2 regime's one range:
- pages of every AP[2:1]/PXN/UXN combination the codec writes (EL0 read/write, read-only, read/execute,
  execute-only, read/write/execute; EL1 read/write, read-only, read/execute, read/write/execute), a Device
  page (fetches fault) and a Normal Non-cacheable one, probed at EL1 and EL0 with reads, writes and fetches;
  an EL0-writable page with PXN=0 (never executable at EL1); a page at every AttrIndx of MAIR_EL1 (D8.6.1);
  a run of Contiguous pages (D8.7.1), read-only;
- at every level that has blocks: a block, one with AF=0 and one at or above the output size, mapping an
  aligned region around RAM when they are larger than a few MiB (cases in RAM and beyond it); a read-only
  block with DBM=1 (TCR_ELx.HD=0: writes fault, D8.5);
- every fault kind the rules give: Translation faults (invalid at each level, an invalid descriptor with
  other bits set, bits 1:0 = 0b01 at level 3 and at each level without blocks, VAs out of range of TnSZ in
  both halves and with a non-zero top byte while TBI=0), Address size faults (a table and a leaf address,
  and a block's, at or above the output size TCR_ELx.IPS/PS of 40 bits), Access flag faults (AF=0 in a page
  and a block), Permission faults (AP, PXN, UXN; APTable, PXNTable and UXNTable — in EL2 APTable[1] and
  XNTable — over fresh tables from each table level), and External aborts (a table and a page or block
  outside RAM; in the 52-bit modes, above 2**48, which only the 52-bit forms can hold).
The seed chooses the structure, not only the addresses: the order and sizes of the page groups and each
rights page's AttrIndx (one of MAIR's Normal ones), each block's rights, the DBM block's level, the
levels of the table outside RAM (and above 2**48) and of the page or block outside RAM, the Contiguous run's
rights and output, and the order of the hierarchical attributes; labels name what it chose
(`ttbr1-block-L1-rx`, `ttbr0-table-outside-ram-L0`), so two seeds cover different things.
Stage 2 (`aarch64-s2-4k-40`, `aarch64-s2-64k-42`, `aarch64-s2-16k-40`, case VAs are IPAs; tables and
frames one stage 2 granule each): S2AP none/read-only/write-only/read-write, XN[1:0] (each value,
FEAT_XNX), AF=0, Device and Non-cacheable MemAttr, blocks of drawn S2AP/XN, a Contiguous run, and the same
Translation, Address size and External abort targets. Two stages (`aarch64-4k-48+s2-4k-40`,
`aarch64-64k-48+s2-64k-42`, `aarch64-16k-47+s2-16k-40`): the stage 1 address space in guest RAM (IPA
`RAM_BASE`, backed by host `GUEST_BACKING`), plus stage 1 leaves whose IPA stage 2 maps read-only,
write-only, without access, not executable, with AF=0 or not at all, and stage 1 tables in IPA pages stage 2
leaves unmapped (at each table level), maps with S2AP none, write-only, AF=0 or read-only: stage 2 faults of
the table reads (S1PTW=1).
The same seed gives the same bytes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from ...arch.aarch64 import contiguous
from ...arch.aarch64.codec import (
    AF,
    AP_TABLE_NO_EL0,
    AP_TABLE_NO_WRITE,
    ATTRINDX,
    CONTIGUOUS_ENTRIES,
    DBM,
    PXN,
    PXN_TABLE,
    S2AP,
    TYPE,
    UXN_TABLE,
    VALID,
    XN_SHIFT,
    A64Codec,
    OutputAddress,
    S2Codec,
)
from ...arch.aarch64.regs import LINUX_MAIR_EL1, mair_attrs
from ...flags import MappingFlags as F
from ...format import PagingFormat
from ...frames import FrameAllocator
from ...physmem import PhysMem
from ..generation import Places, TableBuilder, Target, checked_request, vector_set
from ..schema import VectorSet
from .layout import RAM_BASE, RAM_SIZE, reserved_slot, tag, tag_memory
from .modes import ARCH, A64VectorMode, registers_for, vector_mode, walker_for

GUEST_BACKING = RAM_BASE + RAM_SIZE    # two stages: the host RAM behind guest RAM (IPA RAM_BASE)


MiB, GiB = 1 << 20, 1 << 30
OUTSIDE_RAM = 0x80_0000_0000           # 2**39: below every output size here, no RAM in the image
SPECIAL_IPA = 0x8000_0000              # two stages: IPA pages stage 2 maps one by one
R, W, X, U = F.READ, F.WRITE, F.EXECUTE, F.USER
__all__ = ["GUEST_BACKING", "OUTSIDE_RAM", "RAM_BASE", "RAM_SIZE", "Builder", "generate_aarch64", "reserved_slot",
           "stage1_builder", "stage2_builder", "tag", "tag_memory", "tagged_ram"]


def tagged_ram(size: int = RAM_SIZE) -> PhysMem:
    """`size` bytes of RAM at RAM_BASE, every u64 holding its tag."""
    mem = PhysMem([(RAM_BASE, size)])
    tag_memory(mem)
    return mem


class Builder(TableBuilder):
    """One stage 1 region's (or stage 2's) tables, its targets labelled `prefix`-..., with the output size
    `oa_bits` its registers give. Frames are one granule each."""

    def __init__(self, fmt: PagingFormat, rng: random.Random, mem: PhysMem, frames: FrameAllocator, prefix: str,
                 oa_bits: int) -> None:
        codec = fmt.codec
        assert isinstance(codec, (A64Codec, S2Codec))
        address = codec.address
        super().__init__(fmt, rng, mem, frames, VALID | TYPE,
                         lambda pa: int(address.encode(address.check(pa, address.granule.size))))
        self.prefix = prefix
        self.oa_bits = oa_bits
        self.form_bits = address.oa_bits
        self.codec: A64Codec | S2Codec = codec
        self.stage2 = isinstance(codec, S2Codec)
        self.el2 = isinstance(codec, A64Codec) and codec.el2

    def reserved(self, va: int) -> bool:
        return reserved_slot(self.fmt, va)

    def label(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def bits(self, flags: F, huge: bool = False) -> int:
        """A leaf's attribute bits for `flags` (a block's with `huge`)."""
        return self.codec.attributes(flags, huge)

    def level(self, depth: int) -> int:
        return self.fmt.levels[depth].arch_level

    def high_bit(self) -> int:
        """An address bit at or above the output size, below the form's width (an Address size fault)."""
        return 1 << self.rng.randrange(self.oa_bits, self.form_bits)


def stage1_builder(fmt: PagingFormat, mode: A64VectorMode, rng: random.Random, mem: PhysMem,
                    frames: FrameAllocator, prefix: str) -> Builder:
    codec = A64Codec(OutputAddress(mode.granule, mode.form), LINUX_MAIR_EL1, el2=mode.regime == "el2")
    return Builder(fmt.with_codec(codec), rng, mem, frames, prefix, mode.ips_bits)


_USER_PAGES = (("user-rw", R | W | U), ("user-ro", R | U), ("user-rx", R | X | U), ("user-xo", X | U),
               ("user-rwx", R | W | X | U))
_KERNEL_PAGES = (("rw", R | W), ("ro", R), ("rx", R | X), ("rwx", R | W | X))
_S2_PAGES = (("rw", R | W), ("ro", R), ("wo", W), ("rx", R | X), ("xo", X), ("rwx", R | W | X))
_TYPED_PAGES = (("device", R | W | X | F.DEVICE), ("nc", R | W | F.UNCACHED))
"""Every AP[2:1]/PXN/UXN (stage 2: S2AP/XN) combination the codecs write, by region, and the pages named
by their memory type."""
_ATTR_SHIFT = (ATTRINDX & -ATTRINDX).bit_length() - 1
_NORMAL_ATTRS = tuple(k for k, a in enumerate(mair_attrs(LINUX_MAIR_EL1))
                      if a.memory_type is not None and not a.memory_type.is_device)
"""The AttrIndx values whose MAIR attribute is Normal memory (the rights pages draw from them: a Device
type would forbid their fetches)."""


def _rights(b: Builder, user: bool) -> tuple[tuple[str, F], ...]:
    """The page rights a region's leaves may have."""
    return _S2_PAGES if b.stage2 else _USER_PAGES if user else _KERNEL_PAGES


def _draw_attr(b: Builder, va: int) -> None:
    """Give the stage 1 leaf that maps `va` an AttrIndx of Normal memory the seed draws (D8.6.1)."""
    slot = b.pt.lookup(va)
    b.mem.write_u64(slot.pa, (slot.raw & ~ATTRINDX) | b.rng.choice(_NORMAL_ATTRS) << _ATTR_SHIFT)


def _build_region(b: Builder, base: int, user: bool) -> None:
    """One region's address space at `base` (module docstring), phase by phase: the order fixes the random
    choices and frame numbers, so it is part of the output. The seed draws the order and sizes of the page
    groups and each page's AttrIndx (Normal memory) as well as what `_blocks`, `_upper_entries` and
    `_hierarchical` say."""
    groups = [(name, flags, True) for name, flags in _rights(b, user)] + [(n, f, False) for n, f in _TYPED_PAGES]
    b.rng.shuffle(groups)
    va = base
    for name, flags, drawn in groups:
        n = b.rng.randint(1, 3)
        b.map4k(b.label(name), va, flags, n)
        for k in range(n if drawn and not b.stage2 else 0):
            _draw_attr(b, va + k * b.page)
        va += (n + 1) * b.page
    b.target(b.label("invalid-L3"), va - b.page)
    b.cursor = va
    _raw_leaves(b, R | W | U if user else R | W)
    _contiguous_run(b, user)
    if user:
        b.raw_leaf(b.label("user-rw-pxn0"), b.bits(R | W | U) & ~PXN)     # EL0-writable: never EL1-executable
    if b.stage2:
        rwx = b.bits(R | W | X)
        for name, xn in (("xn-el1", 1), ("xn", 2), ("xn-el0", 3)):
            b.raw_leaf(b.label(name), rwx | xn << XN_SHIFT)
        b.raw_leaf(b.label("none"), rwx & ~S2AP)
    _blocks(b, base, user)
    _upper_entries(b, base)
    if not b.stage2:
        _hierarchical(b, base)


def _raw_leaves(b: Builder, flags: F) -> None:
    """Raw page descriptors at the cursor: AF=0, bits 1:0 = 0b01, invalid with other bits, an address
    at or above the output size, (stage 1) every AttrIndx, (in the 52-bit forms) a page above 2**48."""
    rw = b.bits(flags)
    b.raw_leaf(b.label("af0-L3"), rw & ~AF)
    b.raw_leaf(b.label("reserved-L3"), rw & ~TYPE)
    b.raw_leaf(b.label("invalid-bits-L3"), rw & ~VALID)
    if b.oa_bits < b.form_bits:
        b.raw_leaf(b.label("addr-size-L3"), rw, b.frame() | b.high_bit())
    if not b.stage2:
        for k, attr in enumerate(mair_attrs(LINUX_MAIR_EL1)):
            assert attr.memory_type is not None
            b.raw_leaf(b.label(f"attr{k}-{attr.memory_type.label}"), (rw & ~ATTRINDX) | k << _ATTR_SHIFT)
    if b.form_bits > 48:
        b.raw_leaf(b.label("leaf-above-48-bits"), rw, (1 << b.rng.randrange(48, 52)) | b.frame())


def _contiguous_run(b: Builder, user: bool) -> None:
    """At the cursor (aligned up), one aligned set of level 3 pages with the Contiguous bit (D8.7.1: 16,
    128 or 32 entries by granule), read-only (executable or not, as the seed draws) over an aligned range of
    RAM the seed draws (tables in it included: nothing writes through it)."""
    run = CONTIGUOUS_ENTRIES[b.codec.address.granule, 3]
    size = run * b.page
    name, flags = b.rng.choice((("user-ro", R | U), ("user-rx", R | X | U)) if user else (("ro", R), ("rx", R | X)))
    va, out = -(-b.cursor // size) * size, RAM_BASE + b.rng.randrange(RAM_SIZE // size) * size
    for k in range(run):
        b.pt.map(va + k * b.page, out + k * b.page, b.page, flags)
    assert contiguous.mark(b.pt, va, size) == run
    b.target(b.label(f"contiguous-{name}-run"), va, size)
    b.cursor = va + size + b.page


def _block_at(b: Builder, va: int, depth: int, flags: F, label: str, pa: int | None = None) -> int:
    """A block of `flags` at the empty slot `va` of `depth`, a target: up to 2 MiB from fresh frames (or
    from `pa`), larger ones over the aligned region that holds RAM (cases in RAM, and beyond it). Returns
    its output address."""
    size = b.fmt.levels[depth].span
    if pa is None:
        pa = b.frames.alloc(size // b.frames.frame_size, align=size, zero=False) if size <= 2 * MiB else \
            RAM_BASE & ~(size - 1)
    b.pt.map(va, pa, size, flags)
    if size <= 2 * MiB:
        b.target(label, va, size)
    else:
        b.target(label, va + RAM_BASE - pa, RAM_SIZE)
        if pa + size > RAM_BASE + RAM_SIZE:
            beyond = RAM_BASE + RAM_SIZE - pa
            b.target(label + "-beyond-ram", va + beyond, min(16 * MiB, size - beyond))
    return pa


def _blocks(b: Builder, anchor: int, user: bool) -> None:
    """At every level with blocks, in free slots on `anchor`'s path: a block of rights the seed draws
    (stage 1: AttrIndx too), one with AF=0 and, below the form's width, one at or above the output size;
    at one block level the seed draws (stage 1), a read-only block with DBM=1 (TCR_ELx.HD=0: DBM is
    ignored, so writes fault; D8.5.3), over the same output as that level's block."""
    last = b.fmt.depth_count - 1
    depths = [d for d in range(last - 1, -1, -1) if b.fmt.levels[d].leaf]
    outputs = {}
    for depth in depths:
        level = b.level(depth)
        name, flags = b.rng.choice(_rights(b, user))
        va = b.free(anchor, depth)
        outputs[depth] = pa = _block_at(b, va, depth, flags, b.label(f"block-L{level}-{name}"))
        if not b.stage2:
            _draw_attr(b, va)
        block = b.bits(flags, huge=True) | b.address(pa)
        b.poke(b.label(f"af0-block-L{level}"), b.free(anchor, depth), depth, block & ~AF)
        if b.oa_bits < b.form_bits:
            b.poke(b.label(f"addr-size-block-L{level}"), b.free(anchor, depth), depth, block | b.address(b.high_bit()))
    if not b.stage2 and depths:
        depth = b.rng.choice(depths)
        va = b.free(anchor, depth)
        _block_at(b, va, depth, R | U if user else R, b.label(f"dbm-ro-block-L{b.level(depth)}"), outputs[depth])
        slot = b.pt.lookup(va)
        b.mem.write_u64(slot.pa, slot.raw | DBM)


def _upper_entries(b: Builder, anchor: int) -> None:
    """At each table level on `anchor`'s path: an invalid entry, a block where the level has none
    (bits 1:0 = 0b01), a table address at or above the output size; a table outside RAM (and above 2**48
    in the 52-bit forms) at a table level the seed draws, and a page or block outside RAM at a level the
    seed draws (a block: its cases in the first 2 MiB)."""
    rng, last = b.rng, b.fmt.depth_count - 1
    for depth in range(last):
        level = b.level(depth)
        b.poke(b.label(f"invalid-L{level}"), b.free(anchor, depth), depth, 0)
        if not b.fmt.levels[depth].leaf:
            b.poke(b.label(f"reserved-block-L{level}"), b.free(anchor, depth), depth, VALID | AF)
        if b.oa_bits < b.form_bits:
            b.poke(b.label(f"addr-size-table-L{level}"), b.free(anchor, depth), depth,
                   VALID | TYPE | b.address(b.frame() | b.high_bit()))
    depth = rng.randrange(last)
    b.poke(b.label(f"table-outside-ram-L{b.level(depth)}"), b.free(anchor, depth), depth, VALID | TYPE | OUTSIDE_RAM)
    if b.form_bits > 48:
        depth = rng.randrange(last)
        b.poke(b.label(f"table-above-48-bits-L{b.level(depth)}"), b.free(anchor, depth), depth,
               VALID | TYPE | b.address(1 << rng.randrange(48, 52)))
    leaf = rng.choice([d for d in range(last + 1) if b.fmt.levels[d].leaf and OUTSIDE_RAM % b.fmt.levels[d].span == 0])
    label, rwx = b.label(f"leaf-outside-ram-L{b.level(leaf)}"), b.bits(R | W | X, huge=leaf < last)
    if leaf == last:                         # at the cursor: later raw leaves (two stages) go there
        b.raw_leaf(label, rwx, OUTSIDE_RAM)
    else:
        va = b.free(anchor, leaf)
        b.poke(None, va, leaf, rwx | b.address(OUTSIDE_RAM))
        b.target(label, va, 2 * MiB)


def _hierarchical(b: Builder, anchor: int) -> None:
    """From each table level, in an order the seed draws, a table descriptor with one hierarchical
    attribute over fresh tables down to one page: APTable=0b01 (no EL0), 0b10 (no writes), UXNTable over an
    EL0 read/write/execute page, PXNTable over an EL1 read/write/execute one; in EL2 APTable[1] and XNTable
    over a read/write/execute page."""
    kinds: list[tuple[str, int, int]]
    if b.el2:
        rwx = b.bits(R | W | X)
        kinds = [("aptable-ro", AP_TABLE_NO_WRITE, rwx), ("xntable", UXN_TABLE, rwx)]
    else:
        user, kernel = b.bits(R | W | X | U), b.bits(R | W | X)
        kinds = [("aptable-no-el0", AP_TABLE_NO_EL0, user), ("aptable-ro", AP_TABLE_NO_WRITE, user),
                 ("uxntable", UXN_TABLE, user), ("pxntable", PXN_TABLE, kernel)]
    for depth in range(b.fmt.depth_count - 1):
        b.rng.shuffle(kinds)
        for name, attr, leaf in kinds:
            b.chain(b.label(f"{name}-L{b.level(depth)}"), b.free(anchor, depth), depth, VALID | TYPE | attr, leaf)


def _out_of_range(b: Builder, inside: int) -> None:
    """VAs no region translates: above the region's size (TTBR0's, EL2's, an IPA beyond stage 2's), below
    TTBR1's, and (stage 1, TBI=0) `inside` with its top byte changed, bit 55 kept."""
    rng, bits = b.rng, b.fmt.va_bits
    slot = rng.randrange(1, 512) << 21
    upper = b.fmt.extend(0) != 0
    b.target(b.label("out-of-range"), b.fmt.extend(0) - slot if upper else (1 << bits) + slot, MiB)
    if not b.stage2:
        top = rng.choice([t for t in range(256) if t != (inside >> 56)])
        b.target(b.label("top-byte"), (inside & ((1 << 56) - 1)) | top << 56, b.page)


def _two_stage_targets(g: Builder, n: Builder) -> None:
    """Where stage 2 decides a two-stage walk (module docstring): stage 1 EL1 pages (in `g`'s free page
    slots) at IPAs stage 2 (`n`) maps specially, and stage 1 tables in such IPA pages (S1PTW)."""
    rng = g.rng
    pages: Iterator[int] = iter(range(SPECIAL_IPA + (rng.randrange(0, 256) << 21), 1 << 40, 2 * n.page))

    def s2_page(flags: F, clear: int = 0) -> tuple[int, int]:
        """An IPA page stage 2 maps to a fresh host frame with `flags` (and descriptor bits `clear` clear)."""
        ipa, hpa = next(pages), n.frame()
        n.pt.map(ipa, hpa, n.page, flags)
        slot = n.pt.lookup(ipa)
        n.mem.write_u64(slot.pa, slot.raw & ~clear)
        return ipa, hpa

    leaf = g.bits(R | W | X)
    for name, flags, clear in (("s2-ro", R | X, 0), ("s2-wo", W | X, 0), ("s2-none", R | W | X, S2AP),
                               ("s2-rw-xn", R | W, 0), ("s2-af0", R | W | X, AF)):
        g.raw_leaf(g.label(name), leaf, s2_page(flags, clear)[0])
    g.raw_leaf(g.label("s2-hole"), leaf, next(pages))
    last = g.fmt.depth_count - 1
    for depth in range(last):
        g.poke(g.label(f"table-s2-hole-L{g.level(depth)}"), g.free(g.cursor, depth), depth,
               VALID | TYPE | g.address(next(pages)))
    for name, flags, clear in (("table-s2-none", R | W, S2AP), ("table-s2-wo", W, 0), ("table-s2-af0", R | W, AF),
                               ("table-s2-ro", R, 0)):
        ipa, hpa = s2_page(flags, clear)
        g.pointer_to_table(g.free(g.cursor, last - 1), last - 1, ipa,
                           {0: (g.label(name), leaf | g.address(g.frame()))}, seen_at=(n.mem, hpa))


def stage2_builder(mode: A64VectorMode, rng: random.Random, mem: PhysMem, frames: FrameAllocator) -> Builder:
    fmt = mode.stage2_format
    assert fmt is not None
    return Builder(fmt, rng, mem, frames, "s2", mode.s2_ps_bits)


def _build_mode(mode: A64VectorMode, rng: random.Random) -> tuple[PhysMem, dict[str, int], list[Target]]:
    """Build `mode`'s tables: the (host) memory image, the registers and the targets."""
    if mode.regime is None:                              # stage 2 alone: case VAs are IPAs
        mem = tagged_ram()
        s2 = stage2_builder(mode, rng, mem, FrameAllocator(mem, frame_size=mode.s2_granule.size))
        base = rng.randrange(1, 64) << 30
        _build_region(s2, base, False)
        _out_of_range(s2, base)
        return mem, registers_for(mode, (), s2.pt.root_paddr), s2.targets
    n: Builder | None = None
    if mode.stage2:
        host = tagged_ram(2 * RAM_SIZE)
        n = stage2_builder(mode, rng, host, FrameAllocator(host, RAM_BASE, RAM_SIZE, mode.s2_granule.size))
        n.pt.map_region(RAM_BASE, GUEST_BACKING, RAM_SIZE, R | W | X, allow_huge=True)
        mem = PhysMem([(RAM_BASE, host.view(GUEST_BACKING, RAM_SIZE))])      # guest RAM at its IPAs
    else:
        host = mem = tagged_ram()
    frames = FrameAllocator(mem, frame_size=mode.granule.size)
    formats = mode.stage1_formats()
    at = Places.draw(rng, formats[-1].extend(0) if len(formats) == 2 else 0)
    builders = []
    for fmt, (prefix, base, user) in zip(formats, (("ttbr0", at.ubase, True), ("ttbr1", at.kwin, False))
                                         if len(formats) == 2 else (("el2", at.ubase, False),), strict=True):
        b = stage1_builder(fmt, mode, rng, mem, frames, prefix)
        _build_region(b, base, user)
        _out_of_range(b, base)
        builders.append(b)
    if n is not None:
        _two_stage_targets(builders[-1], n)
    roots = tuple(b.pt.root_paddr for b in builders)
    return host, registers_for(mode, roots, None if n is None else n.pt.root_paddr), \
        [t for b in builders for t in b.targets]


def generate_aarch64(mode: str, seed: int, cases: int | None = None) -> VectorSet:
    """Build the address space for `mode` (a key of `modes.VECTOR_MODES`) from `seed` and compute every
    case's expected outcome with the walker its registers configure. `cases=None` gives each target x access x
    privilege once; a number samples (or extends) that list."""
    vm = vector_mode(mode)
    seed, cases = checked_request(seed, cases)
    mem, registers, targets = _build_mode(vm, random.Random(seed))
    return vector_set(ARCH, vm.name, mem, registers, {"pa_range": vm.pa_range}, targets, seed, cases, walker_for,
                      attributes=True)

