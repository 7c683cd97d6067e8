"""What every architecture's vector generator shares: the targets (VA ranges that each exercise one
feature), the table builder that writes them (`TableBuilder`: pages through `PageTable`, raw entries into
free slots), the checks on `seed` and `--cases`, and the drawing of the cases from the targets (`pick`,
`vector_set`). Each architecture's generator (`riscv.gen`, `x86_64.gen`) decides what to build."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import args
from ..errors import InvalidArgument
from ..flags import MappingFlags as F
from ..format import PagingFormat
from ..frames import FrameAllocator
from ..physmem import PhysMem
from ..table import PageTable
from ..walker import Walker
from .expected import expected_cases
from .schema import ACCESS_CODES, ACCESSES, PRIVILEGE_CODES, PRIVILEGES, U8, U64, VectorSet

MiB = 1 << 20
MAX_CASES = 1_000_000
"""The most cases one vector set may have: every case is held in memory (as columns, about 100 bytes) and
written to vectors.json (250 to 300 bytes each), so a million cases take about 25 s and 0.25 GB (`vectors
generate`; writing the JSON takes nearly all of the time)."""


@dataclass(frozen=True)
class Target:
    """A VA range whose cases exercise one feature."""

    label: str
    va: int
    span: int


def clear_leaf_bits(pt: PageTable, va: int, bits: int) -> None:
    """Clear `bits` in the entry that decides `va` (for encodings the codec never writes, e.g. a G-stage
    leaf without U)."""
    slot = pt.lookup(va)
    pt.entries.write(slot.pa, slot.raw & ~bits)


@dataclass(frozen=True)
class Places:
    """Where a generator puts things: the kernel base, a user 1 GiB slot and a kernel 2 MiB window for 4K
    pages."""

    kbase: int
    ubase: int
    kwin: int

    @classmethod
    def draw(cls, rng: random.Random, kbase: int, user_top: int = 64 << 30) -> Places:
        """A random 1 GiB slot from 1 GiB up to `user_top` (default 64 GiB; a 32-bit space has less) for the
        user pages, and a random 2 MiB window 64 to 80 MiB above `kbase` for the kernel's 4 KiB pages."""
        ubase = rng.randrange(1, user_top >> 30) << 30
        return cls(kbase, ubase, kbase + (rng.randrange(0, 8) << 21) + 64 * MiB)


class TableBuilder:
    """Builds one table (in `mem`, with frames from `frames`, each one page of the format) and records its
    targets. `table_bits`: the bits of an entry that references a table (besides its address); `address`:
    a PA as an entry's address field (checked). The free slots handed out (`free`) are never `reserved`.
    Entries are written through the table's entry access (`PageTable.entries`: 8 or 4 bytes, the format's
    `entry_size`)."""

    def __init__(self, fmt: PagingFormat, rng: random.Random, mem: PhysMem, frames: FrameAllocator,
                 table_bits: int, address: Callable[[int], int]) -> None:
        self.fmt = fmt
        self.rng = rng
        self.mem = mem
        self.frames = frames
        self.pt = PageTable(fmt, mem, frames)
        self.targets: list[Target] = []
        self.table_bits = table_bits
        self.address = address
        self.cursor = 0                                  # next free VA for raw leaves (see raw_leaf)
        self.page = fmt.page_size
        self.entries = self.pt.entries
        self.entry_mask = (1 << 8 * fmt.entry_size) - 1
        """The bits an entry has (random garbage for an entry is drawn as 64 bits and cut to them)."""
        self._free: dict[tuple[int, int], Iterator[int]] = {}

    def target(self, label: str, va: int, span: int | None = None) -> None:
        self.targets.append(Target(label, va, self.page if span is None else span))

    def frame(self) -> int:
        return self.frames.alloc(zero=False)

    def map4k(self, label: str, va: int, flags: F, count: int = 1) -> None:
        """`count` pages of the format's smallest size (4 KiB but on AArch64's 16KB and 64KB granules)."""
        for k in range(count):
            self.pt.map(va + k * self.page, self.frame(), self.page, flags)
        self.target(label, va, count * self.page)

    def clear_bits(self, va: int, count: int, bits: int) -> None:
        """Clear `bits` in the leaves of `count` pages from `va`."""
        for k in range(count):
            clear_leaf_bits(self.pt, va + k * self.page, bits)

    def poke(self, label: str | None, va: int, depth: int, raw: int) -> None:
        """Write a raw entry into the (existing, empty) slot for `va` at `depth`, widening the table entries
        above it to what it needs (x86: `PageTable.widen`); `label` names the target it makes (None: no
        target)."""
        slot = self.pt.lookup(va)
        if slot.depth != depth or slot.raw != 0:
            raise AssertionError(f"generator bug: no empty depth-{depth} slot for {va:#x} ({slot})")
        self.entries.write(slot.pa, raw)
        self.pt.widen(va, depth)                         # the table entries above let it through
        if label is not None:
            self.target(label, va, self.fmt.levels[depth].span if depth < self.fmt.depth_count - 1 else self.page)

    def raw_leaf(self, label: str, bits: int, pa: int | None = None) -> None:
        """A raw last-level entry at the cursor (a free slot of an existing table), then skip a slot."""
        self.poke(label, self.cursor, self.fmt.depth_count - 1, bits | self.address(self.frame() if pa is None else pa))
        self.cursor += 2 * self.page

    def free_slots(self, va: int, depth: int) -> list[int]:
        """The VAs of the empty depth-`depth` slots in the table that holds `va`'s entry, shuffled."""
        slot = self.pt.lookup(va, depth)
        assert slot.depth == depth
        span = self.fmt.levels[depth].span
        base = va & ~(span * self.fmt.levels[depth].entries - 1)
        raws = self.entries.words(slot.table, self.fmt.levels[depth].entries)
        out = [base + int(k) * span for k in np.flatnonzero(raws == 0)]
        self.rng.shuffle(out)
        return out

    def reserved(self, va: int) -> bool:
        """Whether `va` is in a slot left to a harness (none here; each architecture's builder says)."""
        return False

    def free(self, va: int, depth: int) -> int:
        """An empty depth-`depth` slot of the table on `va`'s path (its VA), never a `reserved` one; the
        slots of each table handed out in turn, in an order the seed shuffles."""
        key = (self.pt.lookup(va, depth).table, depth)
        if key not in self._free:
            slots = (self.fmt.extend(v) for v in self.free_slots(va, depth))      # the root's upper half too
            self._free[key] = iter([v for v in slots if not self.reserved(v)])
        return next(self._free[key])

    def chain(self, label: str, va: int, depth: int, pointer: int, leaf: int) -> None:
        """A depth-`depth` table entry `pointer` (its address filled in) at the empty slot `va`, over fresh
        tables (entries `table_bits`) down to the page `leaf` (its address filled in) at `va`, a target."""
        table = self.frames.alloc()
        self.poke(None, va, depth, pointer | self.address(table))
        for _ in range(depth + 1, self.fmt.depth_count - 1):
            below = self.frames.alloc()
            self.entries.write(table, self.table_bits | self.address(below))
            table = below
        self.entries.write(table, leaf | self.address(self.frame()))
        self.target(label, va)

    def pointer_to_table(self, va: int, depth: int, table: int, entries: dict[int, tuple[str, int]],
                         bits: int = 0, seen_at: tuple[PhysMem, int] | None = None) -> None:
        """A depth-`depth` pointer (with extra `bits`) at `va` to the next-level table at `table`, whose
        entries `entries` gives (index → (label, raw)), each a target. `seen_at`: the memory and address
        where the table's bytes are written when `table` is not an address of `self.mem` (a guest table
        page written through the host)."""
        mem, at = seen_at or (self.mem, table)
        self.poke(None, va, depth, self.table_bits | bits | self.address(table))
        span, size = self.fmt.levels[depth + 1].span, self.fmt.entry_size
        for index, (label, raw) in entries.items():
            mem.entries(size).write(at + size * index, raw)
            self.target(label, va + index * span)

    def table_at(self, va: int, depth: int) -> None:
        """Make sure the table holding `va`'s depth-`depth` entry exists (map and unmap a page below)."""
        size = self.fmt.levels[depth].span
        probe = va & ~(size - 1)
        self.pt.map(probe, 0, size, F.READ)
        slot = self.pt.lookup(probe)
        self.entries.write(slot.pa, 0)


def checked_request(seed: int, cases: int | None) -> tuple[int, int | None]:
    """`seed` (an integer ≥ 0) and `cases` (None, or 1 to MAX_CASES), checked (InvalidArgument)."""
    seed = args.integer(seed, "seed", 0)                # random.Random(-n) is random.Random(n): no aliases
    if cases is not None:
        cases = args.integer(cases, "the number of cases", 1)
        if cases > MAX_CASES:
            raise InvalidArgument(f"{cases:,} cases are more than a vector set holds ({MAX_CASES:,}: every case is "
                                  "kept in memory and written to vectors.json, about 300 bytes each); "
                                  "generate several sets with different seeds instead")
    return seed, cases


def pick(targets: list[Target], count: int | None, rng: np.random.Generator) -> tuple[
        U64, U8, U8, npt.NDArray[np.intp]]:
    """The cases as columns (VA, access code, privilege code, index of the target): every target x access x
    privilege once, or a sample of `count` of them, or every one and random ones besides; in target, access,
    privilege order, and the VA a random multiple of 8 in the target."""
    per_target = len(ACCESSES) * len(PRIVILEGES)
    combos = len(targets) * per_target       # combo k: target k // per_target, then access, then privilege
    if count is not None and count < combos:
        picked = rng.choice(combos, count, replace=False)
    else:                                    # every combo, and a random target, access and privilege per extra
        extra = 0 if count is None else count - combos
        picked = np.concatenate((np.arange(combos), rng.integers(0, combos, extra)))
    # sorted: a target's cases are together in vectors.json, and the walk judges runs of alike lanes faster
    # (a third less time for 100,000 cases than in the order drawn)
    target, rest = np.divmod(np.sort(picked), per_target)
    access, privilege = np.divmod(rest, len(PRIVILEGES))
    starts = np.array([t.va for t in targets], dtype=np.uint64)
    eighths = np.array([(t.span + 7) // 8 for t in targets], dtype=np.int64)   # the multiples of 8 in each
    va = starts[target] + rng.integers(0, eighths[target]).astype(np.uint64) * np.uint64(8)
    return (va, np.array([ACCESS_CODES[a] for a in ACCESSES], dtype=np.uint8)[access],
            np.array([PRIVILEGE_CODES[p] for p in PRIVILEGES], dtype=np.uint8)[privilege], target)



def vector_set(arch: str, mode: str, mem: PhysMem, registers: dict[str, int], options: dict[str, Any],
               targets: list[Target], seed: int, cases: int | None, walker_for: Callable[[VectorSet], Walker],
               attributes: bool = False) -> VectorSet:
    """The vector set of a built address space: `cases` cases drawn from `targets` (`pick`, with numpy's
    generator seeded by `seed`, which `options` records), each expected as `walker_for` the set walks it
    (`attributes`: translations record their permissions and memory type)."""
    vs = VectorSet(arch, mode, mem, registers, {**options, "seed": seed}, [])
    va, access, privilege, target = pick(targets, cases, np.random.default_rng(seed))
    vs.cases = expected_cases(walker_for(vs), va, access, privilege, target, tuple(t.label for t in targets),
                              attributes)
    return vs
