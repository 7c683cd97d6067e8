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
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..arch.riscv_sv39 import MODES as RISCV_MODES
from ..arch.riscv_sv39 import PTE, SPEC, Satp
from ..arch.riscv_sv39.entry import PBMT_IO, PBMT_NC, PBMT_RESERVED, A, D, G, R, U, V, W, X
from ..arch.riscv_sv39.entry import ppn_field as ppn
from ..arch.riscv_sv39.walk import RiscvOptions, RiscvRules
from ..flags import MappingFlags as F
from ..format import PagingFormat
from ..frames import FrameAllocator
from ..physmem import PhysMem
from ..table import PageTable
from ..walker import Reason, Walker
from .schema import Case, VectorSet, lanes

RAM_BASE = 0x8000_0000
RAM_SIZE = 8 << 20
OUTSIDE_RAM = 0x100_0000_0000          # no RAM and no device here on QEMU's virt machine
BEYOND_RAM = 0x9000_0000               # above RAM (and QEMU's), inside the 1 GiB superpage, no device
MiB, GiB = 1 << 20, 1 << 30

__all__ = ["RAM_BASE", "RAM_SIZE", "RISCV_MODES", "generate_riscv", "tag_memory"]


@dataclass(frozen=True)
class Target:
    """A VA range whose cases exercise one feature."""

    label: str
    va: int
    span: int


def tag_memory(mem: PhysMem) -> None:
    """Fill every u64 of RAM with its own physical address shifted left by 16."""
    for r in mem.regions:
        r.words[:] = (np.uint64(r.base) + np.arange(r.size // 8, dtype=np.uint64) * np.uint64(8)) << np.uint64(16)


class _Builder:
    """Builds the address space for one mode and records its targets."""

    def __init__(self, fmt: PagingFormat, rng: random.Random) -> None:
        self.fmt = fmt
        self.rng = rng
        self.mem = PhysMem([(RAM_BASE, RAM_SIZE)])
        tag_memory(self.mem)
        self.frames = FrameAllocator(self.mem)
        self.pt = PageTable(fmt, self.mem, self.frames)
        self.targets: list[Target] = []

    def target(self, label: str, va: int, span: int = 4096) -> None:
        self.targets.append(Target(label, va, span))

    def frame(self) -> int:
        return self.frames.alloc(zero=False)

    def map4k(self, label: str, va: int, flags: F, count: int = 1) -> None:
        for k in range(count):
            self.pt.map(va + k * 4096, self.frame(), 4096, flags)
        self.target(label, va, count * 4096)

    def poke(self, label: str, va: int, depth: int, raw: int) -> None:
        """Write a raw entry into the (existing, empty) slot for `va` at `depth`."""
        slot = self.pt.lookup(va)
        if slot.depth != depth or slot.raw != 0:
            raise AssertionError(f"generator bug: no empty depth-{depth} slot for {va:#x} ({slot})")
        self.mem.write_u64(slot.pa, raw)
        self.target(label, va, self.fmt.levels[depth].span if depth < self.fmt.depth_count - 1 else 4096)

    def table_at(self, va: int, depth: int) -> None:
        """Make sure the table holding `va`'s depth-`depth` entry exists (map and unmap a page below)."""
        size = self.fmt.levels[depth].span
        probe = va & ~(size - 1)
        self.pt.map(probe, 0, size, F.READ)
        slot = self.pt.lookup(probe)
        self.mem.write_u64(slot.pa, 0)


def _build(fmt: PagingFormat, seed: int) -> _Builder:
    rng = random.Random(seed)
    b = _Builder(fmt, rng)
    top = fmt.va_bits - 1
    kbase = fmt.extend(1 << top)                       # lowest kernel (upper-half) address
    ubase = rng.randrange(1, 64) << 30                 # a random 1 GiB slot in the user half
    kwin = kbase + (rng.randrange(0, 8) << 21) + 64 * MiB  # a random 2 MiB window for kernel 4K pages
    leaf_depth = fmt.depth_count - 1

    # 4 KiB pages, every permission, both halves (a one-page hole follows each group)
    va = ubase
    for label, flags, n in (("user-rw", F.READ | F.WRITE | F.USER, 3), ("user-ro", F.READ | F.USER, 1),
                            ("user-rx", F.READ | F.EXECUTE | F.USER, 1), ("user-xo", F.EXECUTE | F.USER, 1),
                            ("user-rwx", F.READ | F.WRITE | F.EXECUTE | F.USER, 1)):
        b.map4k(label, va, flags, n)
        va += (n + 1) * 4096
    b.target("unmapped-4k-user", va - 4096)
    va = kwin
    for label, flags, n in (("kernel-rw", F.READ | F.WRITE, 3), ("kernel-ro", F.READ, 1),
                            ("kernel-rx", F.READ | F.EXECUTE, 1), ("kernel-xo", F.EXECUTE, 1),
                            ("kernel-rwx", F.READ | F.WRITE | F.EXECUTE, 1)):
        b.map4k(label, va, flags, n)
        va += (n + 1) * 4096
    b.target("unmapped-4k-kernel", va - 4096)

    # raw leaf encodings in free slots of the kernel 4K table
    def leaf(label: str, bits: int, pa: int | None = None) -> None:
        nonlocal va
        b.poke(label, va, leaf_depth, bits | ppn(b.frame() if pa is None else pa))
        va += 2 * 4096
    rw = V | R | W | A | D
    leaf("global-rw", rw | G)
    leaf("rsw-set", rw | PTE.set(0, "RSW", rng.randrange(1, 4)))
    leaf("invalid-v0", rw & ~V)
    leaf("w-without-r", V | W | A | D)
    leaf("wx-without-r", V | W | X | A | D)
    leaf("reserved-bit", rw | 1 << rng.randrange(54, 61))
    leaf("pbmt-nc", rw | PTE.set(0, "PBMT", PBMT_NC))
    leaf("pbmt-io", rw | PTE.set(0, "PBMT", PBMT_IO))
    leaf("pbmt-reserved", rw | PTE.set(0, "PBMT", PBMT_RESERVED))
    bad_napot = b.frame()
    if (bad_napot >> 12) & 0xF == 8:
        bad_napot = b.frame()
    leaf("napot-bad-ppn", rw | PTE.mask("N"), bad_napot)
    leaf("accessed-clear", V | R | W)
    leaf("dirty-clear", V | R | W | A)
    leaf("leaf-outside-ram", rw, OUTSIDE_RAM)
    leaf("root-table-alias", V | R | A, b.pt.root_paddr)
    leaf("nonleaf-at-last-level", V)
    # Svnapot 64 KiB: 16 identical PTEs at a 16-aligned index, PPN[3:0] = 1000
    napot_va = (va + 0xFFFF) & ~0xFFFF
    block = b.frames.alloc(16, align=0x10000, zero=False)
    for k in range(16):
        slot = b.pt.lookup(napot_va + k * 4096)
        b.mem.write_u64(slot.pa, rw | PTE.mask("N") | ppn(block + 0x8000))   # PPN[3:0] = 1000
    b.target("napot-64k", napot_va, 0x10000)

    # superpages: 2 MiB of data, then 1 GiB / 512 GiB / 256 TiB kernel linear maps
    two_m = kwin + 2 * MiB
    b.pt.map(two_m, b.frames.alloc(512, align=2 * MiB, zero=False), 2 * MiB, F.READ | F.WRITE)
    b.target("superpage-2M", two_m, 2 * MiB)
    b.pt.map(ubase + 2 * MiB, b.frames.alloc(512, align=2 * MiB, zero=False), 2 * MiB,
             F.READ | F.WRITE | F.USER)
    b.target("user-superpage-2M", ubase + 2 * MiB, 2 * MiB)
    for depth in range(leaf_depth - 2, -1, -1):          # 1 GiB and up
        span = fmt.levels[depth].span
        pa = RAM_BASE if span == GiB else 0
        va_leaf = kbase + 2 * span
        b.pt.map(va_leaf, pa, span, F.READ | F.WRITE)
        label = f"superpage-{span >> 30}G" if span < 1 << 40 else f"superpage-{span >> 40}T"
        b.target(label, va_leaf + (RAM_BASE - pa), RAM_SIZE)
        b.target(label + "-beyond-ram", va_leaf + (BEYOND_RAM - pa), 16 * MiB)

    # raw entries above the last level, in free slots next to existing tables
    lvl1 = leaf_depth - 1
    base1 = kwin & ~(fmt.levels[lvl1].span * fmt.levels[lvl1].entries - 1)
    free1 = [base1 + k * 2 * MiB for k in range(512)
             if b.pt.lookup(base1 + k * 2 * MiB).raw == 0 and b.pt.lookup(base1 + k * 2 * MiB).depth == lvl1]
    rng.shuffle(free1)
    b.poke("misaligned-superpage-2M", free1.pop(), lvl1, rw | ppn(RAM_BASE + 2 * MiB + 0x1000))
    b.poke("table-outside-ram", free1.pop(), lvl1, V | ppn(OUTSIDE_RAM))
    for label, bit in (("nonleaf-accessed", A), ("nonleaf-dirty", D), ("nonleaf-user", U)):
        child = b.frames.alloc()                      # a table whose first entry is a good leaf
        b.mem.write_u64(child, rw | ppn(b.frame()))
        vaddr = free1.pop()
        b.poke(label, vaddr, lvl1, V | bit | ppn(child))
        b.targets[-1] = Target(label, vaddr, 4096)
    b.target("unmapped-2M", free1.pop(), 2 * MiB)
    gig = kbase + 3 * GiB
    b.table_at(gig, lvl1 - 1)
    b.poke("misaligned-superpage-1G", gig, lvl1 - 1, rw | ppn(RAM_BASE + 2 * MiB))
    b.target("unmapped-1G", kbase + 5 * GiB, GiB)
    b.target("non-canonical-low", 1 << top, 1 << 20)
    b.target("non-canonical-high", kbase - (1 << 20), 1 << 20)
    return b


def _pick(targets: list[Target], count: int | None, rng: random.Random) -> Iterator[tuple[Target, int, str, str]]:
    combos = [(t, a, p) for t in targets for a in ("read", "write", "execute") for p in ("supervisor", "user")]
    if count is not None and count < len(combos):
        combos = [combos[i] for i in sorted(rng.sample(range(len(combos)), count))]
    extra = 0 if count is None else max(0, count - len(combos))
    for _ in range(extra):
        combos.append((rng.choice(targets), rng.choice(("read", "write", "execute")),
                       rng.choice(("supervisor", "user"))))
    for t, a, p in combos:
        yield t, t.va + rng.randrange(0, t.span, 8), a, p


def generate_riscv(mode: str, seed: int, cases: int | None = None,
                   options: RiscvOptions | None = None) -> VectorSet:
    """Build the address space for `mode` ("sv39", "sv48", "sv57") from `seed` and compute every case's
    expected outcome with the walker under `options`. `cases=None` gives each target x access x privilege
    once; a number samples (or extends) that list."""
    if mode not in RISCV_MODES:
        raise ValueError(f"unknown RISC-V mode {mode!r} (expected {', '.join(RISCV_MODES)})")
    fmt = RISCV_MODES[mode].with_codec(SPEC)
    options = options or RiscvOptions()
    b = _build(fmt, seed)
    satp = Satp.for_table(fmt, b.pt.root_paddr).encode()
    rng = random.Random(seed ^ 0x5EED)
    picked = list(_pick(b.targets, cases, rng))
    rules = RiscvRules(satp, options)
    res = Walker(b.mem, rules).translate_many(*lanes((va, a, p) for _, va, a, p in picked))
    out: list[Case] = []
    for n, (t, va, a, p) in enumerate(picked):
        reason = Reason(int(res.reason[n]))
        if reason == Reason.OK:
            out.append(Case(va, a, p, pa=int(res.pa[n]), label=t.label, reason=reason.label))
        else:
            out.append(Case(va, a, p, fault=rules.fault_kind(reason).value, level=int(res.level[n]),
                            label=t.label, reason=reason.label))
    return VectorSet("riscv64", mode, b.mem, {"satp": satp}, {**options.to_json(), "seed": seed}, out)
