"""Generate x86-64 test vectors: a deliberate random address space, its memory image and expected walks
(32-bit and PAE paging's address spaces: `gen32`, on this module's `Builder`).

The image is `layout.RAM_SIZE` (8 MiB) of RAM at `layout.RAM_BASE` (16 MiB); every u64 of RAM that is not a
page table holds `layout.tag(PA)` = (PA << 8) | 0xCC, so a load reveals the PA it reached and a fetch
executes INT3. No case VA has PML4 index `layout.STUB_SLOT` (255; with 5-level paging, PML5 index 255 too):
a harness maps its own code there. The address space follows Intel SDM Vol. 3A chapter 4 rule by rule:
- 4 KiB pages with every permission x86 paging has (read-only, read/write, each executable or XD) at user
  and supervisor (U/S), the supervisor ones global (G, with CR4.PGE); every target is probed at CPL 3 and
  at CPL 0, so supervisor accesses to user pages meet SMEP and SMAP (4.6);
- a user and a supervisor 2 MiB page, and a user and a supervisor 1 GiB page mapping PA 0 like a kernel
  linear map (cases inside RAM and beyond it), of each size one in each half of the address space, each
  read/write or read-only, executable or XD;
- every #PF cause of 4.7: not present at each level (the root's in both halves of the address space), and
  with other bits set; R/W=0 (CR0.WP); U/S=0 at each level, also in an upper level over a user page; XD
  (EFER.NXE), also in an upper level; RSVD: address bits at or above MAXPHYADDR at each level, PS in a
  PML4E (and PML5E), bits 20:13 of a 2 MiB page and 29:13 of a 1 GiB page (and every XD while EFER.NXE=0,
  `--no-nxe`); protection keys (4.6.2): pages with keys whose PKRU bits deny access, deny writes, or allow,
  and a 2 MiB page with a denying key;
- non-canonical addresses (#GP), a table and a page outside RAM, and every IA32_PAT entry's memory type
  (4.9.2) through PWT/PCD/PAT, at 4 KiB and 2 MiB.
The seed chooses the structure, not only the addresses: the order and sizes of the 4 KiB groups and each
page's PAT index; the owner order, rights, half and PAT index of the 2 MiB and 1 GiB pages; the half (user
or kernel) of every upper-level target; the level of the table outside RAM (PML5E/PML4E/PDPTE/PDE), of the
page outside RAM (PTE, 2 MiB or 1 GiB page) and of the not-present entry with other bits (any level); the
protection keys and the 2 MiB page's key; the reserved bits set. Labels name what the seed chose
(`superpage-2M-user-rwx`, `table-outside-ram-L3`), so two seeds cover different things.
The image does not depend on the register choices (`--ac`, `--no-nxe`, `--no-wp`); the expected results
do. The same seed gives the same bytes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import cast

from ...arch.x86_64 import CR0, CR3, CR4, EFER, NESTED, PAGING_PAE, PKRU, PTE_4K, RFLAGS, X86Codec, pat_entries
from ...arch.x86_64.entry import PS, RW, US, XD, G, P, page_address, pat_index_bits
from ...arch.x86_64.pae import PaeCodec
from ...arch.x86_64.paging32 import X86Codec32
from ...errors import InvalidArgument
from ...flags import MappingFlags as F
from ...format import EntryCodec, Extension, PagingFormat
from ...frames import FrameAllocator
from ...physmem import PhysMem
from ..generation import Places, TableBuilder, Target, checked_request, vector_set
from ..schema import VectorSet
from . import nested
from .layout import RAM_BASE, RAM_SIZE, STUB_SLOT, tag_memory
from .modes import ARCH, PAT_VALUE, CpuOptions, X86VectorMode, vector_mode, walker_for

MiB, GiB = 1 << 20, 1 << 30
GUEST_BACKING = RAM_BASE + RAM_SIZE    # two-stage modes: the host RAM behind guest RAM (guest-physical RAM_BASE)
OUTSIDE_RAM = 0x80_0000_0000           # 512 GiB: below a 40-bit MAXPHYADDR, no RAM in the image
BEYOND_RAM = RAM_BASE + RAM_SIZE + 8 * MiB   # inside the 1 GiB pages (which map PA 0), above RAM
TABLE = P | RW | US                    # a table reference that restricts nothing: the leaves decide
__all__ = ["BEYOND_RAM", "GUEST_BACKING", "OUTSIDE_RAM", "PAT_VALUE", "STUB_SLOT_32", "TABLE", "Builder",
           "RegisterChoices", "builder_codec", "generate_x86", "pages_4k", "registers_for", "reserved32", "tagged_ram"]


@dataclass(frozen=True)
class RegisterChoices:
    """The register choices of a vector set beyond its mode: RFLAGS.AC, EFER.NXE and CR0.WP."""

    ac: bool = False
    nxe: bool = True
    wp: bool = True


def registers_for(mode: X86VectorMode, root: int, pkru: int, choice: RegisterChoices) -> dict[str, int]:
    """The register values that select `mode`'s paging at `root` and configure the walk: CR0.PE/PG (and WP),
    CR4.PAE/PGE/SMEP/SMAP/PKE (and LA57), IA32_EFER.LME/LMA (and NXE), `PAT_VALUE`, `pkru`, RFLAGS bit 1
    (and AC); SDM Vol. 3A 4.1.1 (the paging-mode bits) and 2.5. 32-bit paging: CR4.PSE/PGE/SMEP/SMAP, no
    IA32_EFER bit and no PKRU; PAE paging: CR4.PAE/PGE/SMEP/SMAP and IA32_EFER.NXE; CR3 is the root's PA
    (Tables 4-3 and 4-7: PWT=PCD=0)."""
    if mode.paging != "ia32e":
        pae = mode.paging == "pae"
        return {"cr0": CR0.build(PE=1, PG=1, WP=int(choice.wp)), "cr3": root,
                "cr4": CR4.build(PSE=int(not pae), PAE=int(pae), PGE=1, SMEP=1, SMAP=1),
                "efer": EFER.build(NXE=int(pae and choice.nxe)), "pat": PAT_VALUE,
                "rflags": RFLAGS.build(FIXED1=1, AC=int(choice.ac))}
    return {"cr0": CR0.build(PE=1, PG=1, WP=int(choice.wp)), "cr3": CR3.build(ADDR=root >> 12),
            "cr4": CR4.build(PAE=1, PGE=1, SMEP=1, SMAP=1, PKE=1, LA57=int(mode.la57)),
            "efer": EFER.build(LME=1, LMA=1, NXE=int(choice.nxe)), "pat": PAT_VALUE, "pkru": pkru,
            "rflags": RFLAGS.build(FIXED1=1, AC=int(choice.ac))}


def tagged_ram(size: int = RAM_SIZE) -> PhysMem:
    """`size` bytes of RAM at RAM_BASE, every u64 holding its tag."""
    mem = PhysMem([(RAM_BASE, size)])
    tag_memory(mem)
    return mem


def builder_codec(fmt: PagingFormat, pat: int, nxe: bool) -> EntryCodec:
    """The codec a generator writes `fmt`'s entries with: IA32_PAT `pat`, EFER.NXE `nxe`, supervisor pages
    global (none in nested paging); 32-bit paging's with CR4.PSE=1 and the format's 4 MiB PA width."""
    if fmt.entry_size == 4:
        return X86Codec32(pat=pat, global_kernel=True, pse=True, maxphyaddr=fmt.pa_bits)
    if fmt is PAGING_PAE:
        return PaeCodec(pat=pat, nxe=nxe, global_kernel=True)
    nest = fmt.codec == NESTED
    return X86Codec(pat=pat, nxe=nxe, global_kernel=not nest, nested=nest)


class Builder(TableBuilder):
    """A 4- or 5-level table (or nested paging's, or 32-bit or PAE paging's, `fmt`) in `mem` (default: fresh
    tagged RAM), with the free slots of each level handed out in turn (never in the harness's slot)."""

    def __init__(self, fmt: PagingFormat, rng: random.Random, cpu: CpuOptions, mem: PhysMem | None = None,
                 frames: FrameAllocator | None = None, pat: int = PAT_VALUE, nxe: bool = True) -> None:
        mem = mem or tagged_ram()
        super().__init__(fmt.with_codec(builder_codec(fmt, pat, nxe)), rng, mem, frames or FrameAllocator(mem),
                         TABLE, lambda pa: page_address(pa, False))
        self.cpu = cpu
        self._spare_roots: list[int] = []

    def depth(self, level: int) -> int:
        """The depth of the manual's level `level` (1: the PT, 4: the PML4, 5: the PML5)."""
        return self.fmt.depth_count - level

    def reserved(self, va: int) -> bool:
        return reserved32(va, self.fmt) if self.fmt.va_bits == 32 else reserved(va)

    def free_root(self, high: bool) -> int:
        """An empty root slot (its VA) in the upper (`high`: index 256 and up) or lower half of the root
        table, in the seed's order (`free`)."""
        half = 1 << (self.fmt.va_bits - 1)
        for k, va in enumerate(self._spare_roots):
            if bool(va & half) == high:
                return self._spare_roots.pop(k)
        while bool((va := self.free(0, 0)) & half) != high:
            self._spare_roots.append(va)
        return va

    def draw_memtype(self, va: int, huge: bool) -> None:
        """Give the page that maps `va` a PAT index the seed draws (PWT, PCD and PAT; SDM Vol. 3A 4.9.2)."""
        slot = self.pt.lookup(va)
        cleared = slot.raw & ~pat_index_bits(7, huge)
        self.entries.write(slot.pa, cleared | pat_index_bits(self.rng.randrange(8), huge))


def reserved(va: int) -> bool:
    """Whether `va` is in a slot left to a harness: PML4 index 255 (bits 47:39) or PML5 index 255 (bits 56:48;
    never set in a canonical 4-level address), whatever the mode."""
    return (va >> 39) & 511 == STUB_SLOT or (va >> 48) & 511 == STUB_SLOT


STUB_SLOT_32 = {4: 768, 8: 2}
"""The root slot no case VA of a 32-bit linear-address space uses, left to a harness (by entry size): PDE
768 (VA 0xC000_0000, 4 MiB) of 32-bit paging, PDPTE 2 (VA 0x8000_0000, 1 GiB) of PAE paging."""


def reserved32(va: int, fmt: PagingFormat) -> bool:
    """Whether the 32-bit `va` is in the root slot `STUB_SLOT_32` of `fmt` (32-bit or PAE paging)."""
    return va >> fmt.levels[0].index_lsb == STUB_SLOT_32[fmt.entry_size]


def _rights(flags: F) -> str:
    """A page's rights as a label: rw, ro, rwx or rx."""
    return ("rw" if flags & F.WRITE else "ro" if not flags & F.EXECUTE else "r") + ("x" if flags & F.EXECUTE else "")


def _build(b: Builder) -> int:
    """The address space, phase by phase (the order fixes the random choices and frame numbers, so it is
    part of the output: tests/test_vectors_x86.py pins it); returns PKRU. `anchors`: a user-half and a
    kernel-half VA whose paths have a table at every level, between which the seed places each target."""
    at = Places.draw(b.rng, b.fmt.extend(1 << (b.fmt.va_bits - 1)))      # the upper half's first address
    pages_4k(b, at)
    anchors = (at.ubase, at.kwin)
    block = _superpages(b, anchors)
    pkru = _raw_leaves(b, block)
    _raw_upper_entries(b, anchors, block)
    _upper_rights(b, anchors)
    _address_edges(b, at)
    return pkru


def pages_4k(b: Builder, at: Places) -> None:
    """4 KiB pages with each permission, user and supervisor (global), a not-present PTE after each half's
    groups; the seed draws each group's size (1 to 3 pages), the groups' order and each page's PAT index.
    32-bit paging (4-byte entries) has no XD: its groups are the executable ones."""
    for base, user, prefix in ((at.ubase, F.USER, "user"), (at.kwin, F(0), "kernel")):
        va = base
        groups = [(label, flags) for label, flags in (("rw", F.READ | F.WRITE), ("ro", F.READ),
                                                      ("rx", F.READ | F.EXECUTE), ("rwx", F.READ | F.WRITE | F.EXECUTE))
                  if b.fmt.entry_size == 8 or flags & F.EXECUTE]
        b.rng.shuffle(groups)
        for label, flags in groups:
            n = b.rng.randint(1, 3)
            b.map4k(f"{prefix}-{label}", va, flags | user, n)
            for k in range(n):
                b.draw_memtype(va + k * 4096, False)
            va += (n + 1) * 4096
        b.target(f"unmapped-4k-{prefix}", va - 4096)
        b.cursor = va


def _superpages(b: Builder, anchors: tuple[int, int]) -> int:
    """A user and a supervisor page of each size, one in each half of the address space (`anchors`), with
    the order, halves, rights (read/write or read-only, executable or XD) and PAT indices the seed draws:
    2 MiB pages of fresh frames and 1 GiB pages mapping PA 0 like a kernel linear map, whose cases lie in
    RAM (over the first 2 MiB page's frames: every word a tag, never a table) and beyond it. Returns the
    first 2 MiB page's frames."""
    rng, frames = b.rng, []
    for size, name in ((2 * MiB, "2M"), (GiB, "1G")):
        owners, halves = [F.USER, F(0)], list(anchors)
        rng.shuffle(owners)
        rng.shuffle(halves)
        for user, anchor in zip(owners, halves, strict=True):
            flags = F.READ | user | rng.choice((F(0), F.WRITE)) | rng.choice((F(0), F.EXECUTE))
            va = b.free(anchor, b.depth(2 if size == 2 * MiB else 3))
            pa = b.frames.alloc(512, align=2 * MiB, zero=False) if size == 2 * MiB else 0
            b.pt.map(va, pa, size, flags)
            b.draw_memtype(va, True)
            label = f"superpage-{name}-{'user' if user else 'kernel'}-{_rights(flags)}"
            if size == 2 * MiB:
                frames.append(pa)
                b.target(label, va, size)
            else:                            # in RAM: over the first 2 MiB page, which holds no table
                b.target(label, va + frames[0], 2 * MiB)
                b.target(label + "-beyond-ram", va + BEYOND_RAM, 16 * MiB)
    return frames[0]


def _raw_leaves(b: Builder, block: int) -> int:
    """Raw PTEs in free slots of the supervisor 4K table: every PAT index, protection keys (a key PKRU
    denies access, one it denies writes, one it allows: returns that PKRU; one of the two denied also on
    a 2 MiB page of `block`), reserved address bits, and a page outside RAM at a leaf level the seed draws."""
    rng = b.rng
    for k, memtype in enumerate(pat_entries(PAT_VALUE)):
        b.raw_leaf(f"pat{k}-{memtype.label}", P | RW | XD | G | pat_index_bits(k, False))
    denied, read_only, allowed = rng.sample(range(1, 16), 3)
    keys = (("pkey-access-disabled", denied), ("pkey-write-disabled", read_only), ("pkey-allowed", allowed))
    for label, key in keys:
        b.raw_leaf(label, P | RW | US | PTE_4K.set(0, "PK", key))
    label, key = rng.choice(keys[:2])
    pd = b.depth(2)
    b.poke(f"{label}-2M", b.free(b.cursor, pd), pd, P | RW | US | PS | PTE_4K.set(0, "PK", key) | block)
    b.raw_leaf("rsvd-maxphyaddr-L1", P | RW | XD | 1 << rng.randrange(b.cpu.maxphyaddr, 52))
    level = rng.randint(1, 3)
    if level == 1:
        b.raw_leaf("leaf-outside-ram-L1", P | RW | XD, OUTSIDE_RAM)
    else:                                    # a 2 MiB or 1 GiB page there: its cases in the first 2 MiB
        d = b.depth(level)
        va = b.free(b.cursor, d)
        b.poke(None, va, d, P | RW | XD | PS | OUTSIDE_RAM)
        b.target(f"leaf-outside-ram-L{level}", va, 2 * MiB)
    return PKRU.build(**{f"AD{denied}": 1, f"WD{read_only}": 1})


def _raw_upper_entries(b: Builder, anchors: tuple[int, int], block: int) -> None:
    """Raw entries above the PTEs, each in a half the seed draws: a 2 MiB page of `block` at a PAT index
    with the PAT bit (12), 2 MiB and 1 GiB pages with a reserved bit, a table outside RAM and a not-present
    entry with other bits set (each at a level the seed draws), not-present entries at each level (the
    root's in both halves), PS in the PML4E (and PML5E), an address bit at or above MAXPHYADDR at each
    level."""
    rng, pd, pdpt, top = b.rng, b.depth(2), b.depth(3), b.fmt.depth_count

    def slot(depth: int) -> int:
        return b.free(rng.choice(anchors), depth)

    k = rng.randrange(4, 8)
    b.poke(f"superpage-2M-pat{k}-{pat_entries(PAT_VALUE)[k].label}", slot(pd), pd,
           P | RW | PS | XD | G | pat_index_bits(k, True) | block)
    b.poke("rsvd-2M-bits", slot(pd), pd, P | RW | PS | XD | 1 << rng.randrange(13, 21) | block)
    b.poke("rsvd-1G-bits", slot(pdpt), pdpt, P | RW | PS | 1 << rng.randrange(13, 30))
    level = rng.randint(2, top)
    b.poke(f"table-outside-ram-L{level}", slot(b.depth(level)), b.depth(level), TABLE | OUTSIDE_RAM)
    level = rng.randint(1, top)
    if level == 1:                           # at the cursor: later raw leaves (two-stage modes) go there
        b.raw_leaf("not-present-bits-L1", RW | US | XD | G)
    else:
        b.poke(f"not-present-bits-L{level}", slot(b.depth(level)), b.depth(level), RW | US | XD | PS | b.frame())
    for half in ("low", "high"):
        b.poke(f"unmapped-L{top}-{half}", b.free_root(half == "high"), 0, 0)
    for level in range(2, top + 1):
        d = b.depth(level)
        if level < top:
            b.poke(f"unmapped-L{level}", slot(d), d, 0)
        b.poke(f"rsvd-maxphyaddr-L{level}", slot(d), d, TABLE | 1 << rng.randrange(b.cpu.maxphyaddr, 52) | b.frame())
        if level >= 4:
            b.poke(f"rsvd-ps-L{level}", slot(d), d, TABLE | PS | b.frame())


def _upper_rights(b: Builder, anchors: tuple[int, int]) -> None:
    """At each level above the PTEs, over a user read/write/executable page, in a half and an order the
    seed draws: U/S=0 (a supervisor-mode address: no user access, and no SMEP/SMAP), R/W=0 (no writes) and
    XD=1 (no fetches)."""
    leaf = P | RW | US
    for level in range(2, b.fmt.depth_count + 1):
        d = b.depth(level)
        kinds = [("us0", TABLE & ~US), ("rw0", TABLE & ~RW), ("xd", TABLE | XD)]
        b.rng.shuffle(kinds)
        for label, pointer in kinds:
            b.chain(f"upper-{label}-L{level}", b.free(b.rng.choice(anchors), d), d, pointer, leaf)


def _address_edges(b: Builder, at: Places) -> None:
    """Non-canonical addresses (#GP, SDM 4.5): bit 47 (56) set with the bits above clear, and the bits above
    set with it clear, at a random slot below the harness's; for nested paging's zero-extended guest-physical
    addresses, one too wide for its tables."""
    top = b.fmt.va_bits - 1
    if b.fmt.extension is Extension.ZERO:
        b.target("gpa-too-wide", (1 << (top + 1)) + (b.rng.randrange(1, 512) << 12), 1 << 20)
        return
    b.target("non-canonical-low", (1 << top) + (b.rng.randrange(0, STUB_SLOT) << (top - 8)), 1 << 20)
    high = ((1 << 64) - 1) & ~((1 << (top + 1)) - 1)
    b.target("non-canonical-high", high + (b.rng.randrange(0, STUB_SLOT) << (top - 8)), 1 << 20)


def generate_x86(mode: str, seed: int, cases: int | None = None, choice: RegisterChoices | None = None,
                 cpu: CpuOptions | None = None) -> VectorSet:
    """Build the address space for `mode` (a key of `modes.VECTOR_MODES`) from `seed` and compute every
    case's expected outcome with the walker the registers configure (`choice`: RFLAGS.AC, EFER.NXE, CR0.WP of
    the linear-address paging; `cpu`: MAXPHYADDR and 1-GByte pages, default 40 and yes). `cases=None` gives
    each target x access x privilege once; a number samples (or extends) that list."""
    vm = vector_mode(mode)
    seed, cases = checked_request(seed, cases)
    cpu = cpu or CpuOptions()
    low = 33 if vm.paging != "ia32e" else OUTSIDE_RAM.bit_length()
    if not isinstance(cpu, CpuOptions) or not low <= cpu.maxphyaddr < 52:
        raise InvalidArgument(f"the generator needs a MAXPHYADDR from {low} to 51 for {mode} (its targets outside "
                              "RAM or above 4 GiB lie below it, its RSVD targets above it), not "
                              f"{getattr(cpu, 'maxphyaddr', cpu)!r}")
    if choice is not None and vm.paging == "32-bit" and not choice.nxe:
        raise InvalidArgument(f"{mode} has no XD bit (32-bit paging ignores IA32_EFER.NXE): --no-nxe does not apply")
    if vm.stage1 is None and choice not in (None, RegisterChoices()):
        raise InvalidArgument(f"{mode} has no linear-address paging: --ac, --no-nxe and --no-wp do not apply")
    rng = random.Random(seed)
    if vm.stage2 is None:
        assert vm.stage1 is not None
        b = Builder(vm.stage1, rng, cpu)
        mem, targets = b.mem, b.targets
        if vm.paging == "ia32e":
            pkru = _build(b)
        else:
            from .gen32 import build_legacy  # gen32 builds on this module's Builder
            build_legacy(b, vm)
            pkru = 0
        registers = registers_for(vm, b.pt.root_paddr, pkru, choice or RegisterChoices())
    else:
        mem, registers, targets = _nested_mode(vm, rng, cpu, choice or RegisterChoices())
    return vector_set(ARCH, vm.name, mem, registers, cpu.to_json(vm), targets, seed, cases, walker_for,
                      attributes=True)


def _nested_builder(vm: X86VectorMode, rng: random.Random, cpu: CpuOptions, mem: PhysMem,
                    frames: FrameAllocator | None = None) -> TableBuilder:
    """A builder of the mode's nested tables: EPT's, or nested paging's (the linear-address builder over
    `NPT4`, whose every entry is U/S=1)."""
    assert vm.stage2 is not None
    return nested.EptBuilder(rng, cpu, mem, frames) if vm.ept else Builder(vm.stage2, rng, cpu, mem, frames)


def _nested_mode(vm: X86VectorMode, rng: random.Random, cpu: CpuOptions, choice: RegisterChoices) -> tuple[
        PhysMem, dict[str, int], list[Target]]:
    """A mode with a nested stage: the memory image, the registers and the targets. The nested walk alone
    gets the targets of its own rules (case VAs are guest-physical); a two-stage mode gets a guest whose
    RAM (guest-physical RAM_BASE, RAM_SIZE bytes) the nested tables map to the second half of 16 MiB of host
    RAM, the linear-address targets in it, and the nested targets (`nested.targets`)."""
    if vm.stage1 is None:
        n = _nested_builder(vm, rng, cpu, tagged_ram())
        if isinstance(n, nested.EptBuilder):
            nested.build_alone(n)
        else:
            _build(cast(Builder, n))
        return n.mem, nested.registers(vm, n.pt.root_paddr, rng), n.targets
    host = tagged_ram(2 * RAM_SIZE)
    n = _nested_builder(vm, rng, cpu, host, FrameAllocator(host, RAM_BASE, RAM_SIZE))
    n.pt.map_region(RAM_BASE, GUEST_BACKING, RAM_SIZE, F.READ | F.WRITE | F.EXECUTE, allow_huge=True)
    guest = PhysMem([(RAM_BASE, host.view(GUEST_BACKING, RAM_SIZE))])    # the same bytes, at their GPAs
    g = Builder(vm.stage1, rng, cpu, guest)
    pkru = _build(g)
    nested.targets(g, n, vm.ept)
    return host, registers_for(vm, g.pt.root_paddr, pkru, choice) | nested.registers(vm, n.pt.root_paddr, rng), \
        g.targets
