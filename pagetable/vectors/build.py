"""`pagetable vectors build SPEC.toml`: the vector set of a described address space (docs/vectors-spec.md).

Each architecture gives a `SpecArch`: the scaffold of a mode (the memory image, tagged as `vectors generate`
tags it, the table builders of each stage, the registers once the tables are built), the named faults its
manual defines (`FaultRule`), and where a leaf's global bit and memory-type field are. This module does
the rest for every architecture:

- the mappings, through `PageTable` (the largest page that fits, or a forced size), with the global bit
  and memory type set as asked; explicit PAs are reserved before any table is allocated, so no table lands
  on them;
- the faults: tables made down to the fault's level, the faulty entry written into its empty slot;
- the cases: explicit accesses, and generated ones (both sides of every page boundary of every mapping,
  every access at every fault, N random ones per mapping), walked by the set's own walker;
- a check of the result against the spec, so a spec never builds a set that says something else than it
  asked: each mapping must translate its first VA to its PA (with its memory type), and each fault's VA must
  fault for the reason its kind names. A spec the address space cannot hold (an overlap, no room, a level the
  format lacks, a fault the walker reads otherwise) is a `SpecError` naming the file, line and key.
"""

from __future__ import annotations

import enum
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import PagetableError
from ..flags import MappingFlags as F
from ..format import Extension, PagingFormat
from ..frames import FrameAllocator
from ..physmem import PhysMem
from ..translation import MemoryType
from ..walker import Reason, Walker
from .architecture import Architecture
from .expected import expected_cases
from .generation import MAX_CASES, TableBuilder
from .schema import ACCESS_CODES, ACCESSES, PRIVILEGE_CODES, PRIVILEGES, U64, VectorSet
from .spec import FaultSpec, MapSpec, Place, Spec, SpecError, parse_spec

OWN_STAGE2 = ("the build maps it itself: guest RAM, or the window without RAM at 4 GiB (docs/vectors-spec.md, "
              "Layouts)")
MAX_FORCED = 1 << 16
"""The most pages a mapping of a forced size above the smallest has (each is mapped on its own)."""


class Where(enum.Enum):
    """Which levels a fault kind's entry may sit at, and its default (the manual's level numbers)."""

    ANY = "any level"                       # default: the last level
    LAST = "the last level"
    LEAF = "a level with leaves"            # default: the last level
    SUPERPAGE = "a level with leaves above the last"   # default: the lowest such
    TABLE = "a level above the last"        # default: the one just above the last
    NO_BLOCKS = "the last level, or a level without blocks"   # default: the last level
    NONE = "no entry (the address alone)"


@dataclass
class FaultSite:
    """What a fault rule builds with: the builder of the stage, the fault's VA and the entry's depth, the RNG,
    a PA with no RAM."""

    b: TableBuilder
    va: int
    depth: int
    rng: random.Random
    outside: int
    widen_as: int | None = None       # the entry the tables above must let through (`over_page`), if not `raw`

    @property
    def fmt(self) -> PagingFormat:
        return self.b.fmt

    @property
    def last(self) -> bool:
        return self.depth == self.fmt.depth_count - 1

    @property
    def span(self) -> int:
        return self.fmt.levels[self.depth].span

    def block_pa(self) -> int:
        """A PA for a leaf at this level: fresh frames up to 2 MiB, else the aligned region holding RAM."""
        span = self.span
        if span <= 2 << 20:
            try:
                return self.b.frames.alloc(span // self.b.frames.frame_size, align=span, zero=False)
            except PagetableError:
                pass
        return self.b.mem.regions[0].base & ~(span - 1)

    def outside_pa(self) -> int:
        """A PA with no RAM for a leaf at this level: the first one at or above `outside` it can map."""
        span = self.fmt.page_size if self.last else self.span
        return -(-self.outside // span) * span

    def leaf(self, flags: F = F.READ | F.WRITE, pa: int | None = None) -> int:
        """A well-formed leaf at this level with `flags` (the kind then spoils it)."""
        return self.fmt.codec.new_page(self.block_pa() if pa is None else pa, flags, not self.last)

    def table(self, pa: int | None = None) -> int:
        """A well-formed table entry pointing at a fresh (empty) table, or at `pa`; at a level with a codec of
        its own (x86 PAE's PDPTEs: P and the address alone), that codec's."""
        pa = self.b.frames.alloc() if pa is None else pa
        own = self.fmt.levels[self.depth].codec
        return own.new_table(pa) if own is not None else self.b.table_bits | self.b.address(pa)

    def over_page(self, pointer: int, flags: F) -> int:
        """The table entry `pointer` (its bits; the address filled in) over fresh tables down to a page with
        `flags` at this VA: a fault the table entry's own rights make (x86 U/S, R/W, XD; AArch64 APTable,
        UXNTable, PXNTable; EPT R/W/X)."""
        fmt, b = self.fmt, self.b
        top = table = b.frames.alloc()
        for d in range(self.depth + 1, fmt.depth_count):
            slot = table + fmt.index(self.va, d) * fmt.entry_size
            if d == fmt.depth_count - 1:
                b.pt.entries.write(slot, fmt.codec.new_page(b.frames.alloc(zero=False), flags, False))
            else:
                table = b.frames.alloc()
                b.pt.entries.write(slot, b.table_bits | b.address(table))
        self.widen_as = b.table_bits | b.address(top)       # the rights the page below needs, not the entry's
        return pointer | b.address(top)


@dataclass(frozen=True)
class FaultRule:
    """A named deliberate fault: `entry` makes the faulty entry at a site; the walk of the fault's VA with
    `access` at `privilege` must stop with one of `reasons`."""

    doc: str
    reasons: frozenset[Reason]
    entry: Callable[[FaultSite], int] | None
    where: Where
    access: str = "read"
    privilege: str = "supervisor"
    levels: tuple[int, ...] = ()          # the manual's levels it may sit at, of those `where` gives (): all)
    needs: str = ""                       # the walker option (extension) whose rule the kind tests, if any


def set_bits(raw: U64, mask: int, on: bool | None) -> U64:
    """`raw` with the bits of `mask` set (`on`), cleared (False) or as they are (None)."""
    if on is None:
        return raw
    return raw | np.uint64(mask) if on else raw & ~np.uint64(mask)


def _generic_rules() -> dict[str, FaultRule]:
    """The faults every architecture has, made with the codec alone."""
    return {
        "invalid": FaultRule("an empty (invalid, not present) entry at the level", frozenset({Reason.INVALID}),
                             lambda s: 0, Where.ANY),
        "table-outside-ram": FaultRule("a table entry whose table address has no RAM",
                                       frozenset({Reason.TABLE_OUTSIDE_MEMORY}),
                                       lambda s: s.table(s.outside), Where.TABLE),
        "leaf-outside-ram": FaultRule("a leaf whose output address has no RAM (an access fault)",
                                      frozenset({Reason.PA_OUTSIDE_MEMORY}), lambda s: s.leaf(pa=s.outside_pa()),
                                      Where.LEAF),
        "non-canonical": FaultRule("an address no region of the regime translates (non-canonical, out of range)",
                                   frozenset({Reason.NON_CANONICAL}), None, Where.NONE),
    }


GENERIC_RULES = _generic_rules()


@dataclass
class Scaffold:
    """A mode's empty address space: the image, the stage 1 builders (one per region of the regime; none
    when the mode translates with stage 2 alone), the stage 2 builder, and the registers once built."""

    mem: PhysMem
    stage1: list[TableBuilder]
    stage2: TableBuilder | None
    registers: Callable[[], dict[str, int]]
    options: dict[str, Any]
    outside: int
    stage1_outside: int | None = None     # two stages: a guest-physical address stage 2 leads to no RAM

    @property
    def two_stage(self) -> bool:
        return bool(self.stage1) and self.stage2 is not None

    def nested(self, b: TableBuilder) -> bool:
        """Whether `b` is the stage 2 of a two-stage mode: its VAs are GPAs cases reach through stage 1 alone."""
        return self.two_stage and b is self.stage2

    def guest(self, b: TableBuilder) -> bool:
        """Whether `b` is a stage 1 table of a two-stage mode (its PAs are guest-physical)."""
        return self.two_stage and b is not self.stage2

    def outside_for(self, b: TableBuilder) -> int:
        """An address with no RAM behind it, as `b`'s entries name addresses."""
        return self.stage1_outside if self.guest(b) and self.stage1_outside is not None else self.outside


@dataclass(frozen=True)
class SpecArch:
    """One architecture's part of `vectors build`."""

    scaffold: Callable[[Spec, Callable[[FrameAllocator, int], None]], Scaffold]   # (spec, reserve(frames, stage))
    has_stage1: Callable[[str], bool]                                              # the mode translates VAs first
    rules: Callable[[TableBuilder], Mapping[str, FaultRule]]
    global_field: Callable[[TableBuilder], tuple[int, int]]      # (mask, value when global) of a leaf
    memtype_field: Callable[[TableBuilder, bool], tuple[int, tuple[int, ...]]]   # (mask, candidate values)
    memtypes: tuple[MemoryType, ...]                              # the memory types a mapping may name
    memtype_hint: str                                             # what decides them (for errors)
    # leaves (raw, a column) with their accessed / dirty state set as asked (None: as encoded)
    accessed_dirty: Callable[[TableBuilder, U64, bool | None, bool | None], U64]


@dataclass
class _Cases:
    va: list[np.ndarray] = field(default_factory=list)
    access: list[np.ndarray] = field(default_factory=list)
    privilege: list[np.ndarray] = field(default_factory=list)
    label: list[np.ndarray] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    def add(self, vas: np.ndarray, label: str, accesses: tuple[str, ...] = ACCESSES,
            privileges: tuple[str, ...] = PRIVILEGES) -> None:
        """Every VA of `vas` with each access at each privilege."""
        combos = [(ACCESS_CODES[a], PRIVILEGE_CODES[p]) for a in accesses for p in privileges]
        n = len(vas)
        self.va.append(np.repeat(vas.astype(np.uint64), len(combos)))
        self.access.append(np.tile(np.array([a for a, _ in combos], dtype=np.uint8), n))
        self.privilege.append(np.tile(np.array([p for _, p in combos], dtype=np.uint8), n))
        self._label(label, n * len(combos))

    def add_random(self, vas: np.ndarray, label: str, rng: np.random.Generator) -> None:
        n = len(vas)
        self.va.append(vas.astype(np.uint64))
        self.access.append(np.array([ACCESS_CODES[a] for a in ACCESSES], dtype=np.uint8)[rng.integers(0, 3, n)])
        self.privilege.append(np.array([PRIVILEGE_CODES[p] for p in PRIVILEGES], dtype=np.uint8)[rng.integers(0, 2, n)])
        self._label(label, n)

    def _label(self, label: str, n: int) -> None:
        if label not in self.labels:
            self.labels.append(label)
        self.label.append(np.full(n, self.labels.index(label), dtype=np.intp))

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.va)


def _architecture(mode: str) -> Architecture:
    """The architecture whose vector modes include `mode`, if `vectors build` describes its address spaces."""
    from .. import registry  # the registry imports every architecture, and they import this module
    modes = [m for a in registry.ARCHITECTURES for m in a.modes]
    if mode.lower() not in modes:
        raise PagetableError(f"unknown mode {mode!r} (modes: {', '.join(modes)})")
    arch = registry.by_mode(mode)
    if arch.spec is None:
        raise PagetableError(f"vectors build does not describe {arch.name} address spaces yet")
    return arch


def build(spec: Spec) -> VectorSet:
    """The vector set `spec` describes, in the architecture whose mode it names."""
    try:
        arch = _architecture(spec.mode)
    except PagetableError as exc:
        raise spec.place("mode").error(str(exc)) from None
    return build_spec(spec, arch)


def fault_kinds(mode: str) -> list[tuple[int, PagingFormat, dict[str, FaultRule]]]:
    """The fault kinds of each table of `mode` (stage, format, kind → rule), as a spec may name them."""
    arch = _architecture(mode)
    assert isinstance(arch.spec, SpecArch)
    sc = arch.spec.scaffold(parse_spec({"mode": mode}), lambda frames, stage: None)
    tables = [(1, b) for b in sc.stage1] + ([(2, sc.stage2)] if sc.stage2 is not None else [])
    return [(stage, b.fmt, {**GENERIC_RULES, **arch.spec.rules(b)}) for stage, b in tables]


def build_spec(spec: Spec, arch: Architecture) -> VectorSet:
    """The vector set `spec` describes, in `arch` (SpecError for what the address space cannot hold)."""
    arch_spec = arch.spec
    assert isinstance(arch_spec, SpecArch)
    case_stage = 1 if arch_spec.has_stage1(spec.mode) else 2
    explicit = [(m.stage or case_stage, m.pa, m.pa + m.size) for m in spec.maps if m.pa is not None]

    def reserve(frames: FrameAllocator, stage: int) -> None:
        """Keep the explicit PAs of `stage`'s mappings out of a fresh allocator's hands, so no table lands on
        them; a mapping whose range would leave less than a quarter of the frames (a linear map over RAM, as
        a kernel's direct map) is not kept free: tables then sit inside it, as they do in a kernel."""
        lo, fs = frames.base, frames.frame_size
        hi = lo + frames.total * fs

        def clipped(start: int, end: int) -> tuple[int, int]:
            first = max(lo, start & ~(fs - 1))
            return first, max(0, -(-(min(hi, end) - first) // fs))

        kept = [(s, start, end) for s, start, end in explicit
                if s == stage and clipped(start, end)[1] <= frames.total - frames.total // 4]
        for _, start, end in _merged(kept):
            first, count = clipped(start, end)
            if count and frames.total - frames.in_use - count >= frames.total // 4:
                frames.reserve(first, count)

    try:
        sc = arch_spec.scaffold(spec, reserve)
    except PagetableError as exc:
        raise _options_error(spec, exc) from None
    rng = random.Random(spec.seed)
    built: list[tuple[MapSpec, TableBuilder, int]] = []
    for m in spec.maps:
        b = _builder(sc, m.stage, m.va, m.place)
        own = OWN_STAGE2 if sc.nested(b) else ""
        built.append((m, b, _map(b, m, arch_spec, [(e, eb) for e, eb, _ in built], own)))
    faults: list[tuple[FaultSpec, TableBuilder, FaultRule]] = []
    written: dict[tuple[int, int], str] = {}
    for f in spec.faults:
        b = _builder(sc, f.stage, f.va, f.place, strict=f.kind != "non-canonical")
        rules = {**GENERIC_RULES, **arch_spec.rules(b)}
        if f.kind not in rules:
            raise f.place.sub("kind").error(f"unknown fault kind {f.kind!r} for {b.fmt.name} (kinds: "
                                            f"{', '.join(sorted(rules))}; `pagetable vectors faults --mode "
                                            f"{spec.mode}` lists their levels)")
        rule = rules[f.kind]
        if rule.needs and not sc.options.get(rule.needs):
            raise f.place.sub("kind").error(f"{f.kind} tests a rule of the {rule.needs} extension: set {rule.needs} = "
                                            "true in [options] (without it the bits are reserved anyway)")
        _fault(b, f, rule, FaultSite(b, f.va, 0, rng, sc.outside_for(b)), [(m, mb) for m, mb, _ in built], written)
        faults.append((f, b, rule))
    registers = {**sc.registers(), **spec.registers}
    vs = VectorSet(arch.name, spec.mode, sc.mem, registers, {**sc.options, "seed": spec.seed}, [])
    try:
        walker = arch.walker_for(vs)
    except PagetableError as exc:
        raise _options_error(spec, exc, "registers" if spec.registers else "options") from None
    _check(walker, sc, built, faults)
    cases = _cases(spec, sc, built, faults)
    vs.cases = expected_cases(walker, np.concatenate(cases.va), np.concatenate(cases.access),
                              np.concatenate(cases.privilege), np.concatenate(cases.label), tuple(cases.labels),
                              arch.attributes)
    return vs


def _merged(ranges: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """(stage, start, end) ranges with the overlapping and touching ones of a stage merged."""
    out: list[tuple[int, int, int]] = []
    for stage, start, end in sorted(ranges):
        if out and out[-1][0] == stage and start <= out[-1][2]:
            out[-1] = (stage, out[-1][1], max(end, out[-1][2]))
        else:
            out.append((stage, start, end))
    return out


def _options_error(spec: Spec, exc: PagetableError, table: str = "options") -> SpecError:
    """An error of the scaffold or of the set's registers, at the key it names: `options.K`, `registers.K`,
    `memory` or `asid` (else `table`), without the key's name repeated in front of the message."""
    text = str(exc)
    for prefix in ("options: ", "registers: ", "memory: ", "asid: "):
        if text.startswith(prefix):
            text, table = text[len(prefix):], prefix[:-2]
    for key in (*spec.options, *spec.registers):
        quoted = f"'{key}'" in text or f"options.{key} " in text or f"registers.{key} " in text
        if quoted or text.startswith(f"{key} ") or text.startswith(f"{key}:"):
            where = f"options.{key}" if key in spec.options else f"registers.{key}"
            return spec.place(where).error(re.sub(rf"^(options|registers)\.{re.escape(key)}:? ", "", text))
    return spec.place(table).error(text)


def _builder(sc: Scaffold, stage: int | None, va: int, place: Place, strict: bool = True) -> TableBuilder:
    """The builder of `stage` (default: the stage case VAs translate with first) whose format takes `va` (not
    `strict`: the first one, for an address no format takes)."""
    if stage == 2 or not sc.stage1:
        if sc.stage2 is None:
            raise place.error("this mode has no stage 2")
        if stage == 1:
            raise place.error("this mode translates with stage 2 alone: leave `stage` out or give 2")
        candidates = [sc.stage2]
    else:
        candidates = sc.stage1
    if not strict:
        return candidates[0]
    for b in candidates:
        try:
            b.fmt.check_va(va)
        except PagetableError:
            continue
        if b.reserved(va):
            raise place.error(f"{va:#x} is in the root-table slot the QEMU harness keeps for itself "
                              "(docs/vectors.md)")
        return b
    names = " or ".join(f"{b.fmt.name}" for b in candidates)
    raise place.error(f"{va:#x} is not an address {names} translates")


def _flags_text(text: str) -> str:
    """A codec's message with its MappingFlags shown as a spec writes them (`perms = "rw"`, user)."""
    def letters(m: re.Match[str]) -> str:
        names = m.group(1).split("|")
        perms = "".join(ch for ch, name in (("r", "READ"), ("w", "WRITE"), ("x", "EXECUTE")) if name in names)
        return f'perms = "{perms}"' + (" with user = true" if "USER" in names else "")
    return re.sub(r"<MappingFlags\.([A-Z|]+): \d+>", letters, text)


def _map(b: TableBuilder, m: MapSpec, arch_spec: SpecArch, earlier: list[tuple[MapSpec, TableBuilder]],
         own: str = "") -> int:
    """Map `m` in `b`'s table (`earlier`: the mappings made before it; `own`: what the build itself maps
    there, for a conflict's message); returns its first PA."""
    fmt = b.fmt
    flags = m.perms | (F.USER if m.user else F(0))
    if m.user and not fmt.codec.supported_flags & F.USER:
        raise m.place.sub("user").error(f"{fmt.name} in this regime has no unprivileged (user) accesses: leave it out")
    wanted = None
    if m.memtype is not None:
        names = {t.label: t for t in arch_spec.memtypes}
        if m.memtype in ("device", "uncached"):
            flags |= F.DEVICE if m.memtype == "device" else F.UNCACHED
        elif m.memtype not in names:
            raise m.place.sub("memtype").error(f"unknown memory type {m.memtype!r} (device, uncached, or one of "
                                               f"{', '.join(names)})")
        else:
            wanted = names[m.memtype]
    sizes = fmt.page_sizes()
    if m.page and m.page not in sizes:
        raise m.place.sub("page").error(f"{m.page:#x} is not a page size {fmt.name} has "
                                        f"({', '.join(hex(s) for s in sizes)})")
    unit = m.page or fmt.page_size
    for key, value in (("va", m.va), ("pa", m.pa), ("size", m.size)):
        if value is not None and value % unit:
            raise m.place.sub(key).error(f"{value:#x} is not a multiple of the page size {unit:#x}")
    pa = m.pa
    if m.page and m.page != fmt.page_size and m.size // m.page > MAX_FORCED:
        raise m.place.sub("page").error(f"{m.size // m.page:,} pages of {m.page:#x} are more than a spec maps at a "
                                        f"forced size ({MAX_FORCED:,}): give page = \"largest\", or a smaller range")
    if pa is None:
        align = m.page or max(s for s in sizes if s <= m.size and m.va % s == 0)
        try:
            pa = b.frames.alloc(m.size // b.frames.frame_size, align=min(align, 2 << 20), zero=False)
        except PagetableError:
            free = (b.frames.total - b.frames.in_use) * b.frames.frame_size
            raise m.place.sub("size").error(f"{m.size:#x} bytes of fresh frames are more than RAM has free "
                                            f"({free:#x} of {b.mem.describe()}): give pa, or more [[memory]]") from None
    try:
        if m.page and m.page != fmt.page_size:
            for k in range(0, m.size, m.page):
                b.pt.map(m.va + k, pa + k, m.page, flags)
        else:
            b.pt.map_region(m.va, pa, m.size, flags, allow_huge=not m.page)
    except PagetableError as exc:
        other = next((f"{e.place.key} (line {e.place.line}) maps it" for e, eb in earlier
                      if eb is b and e.va < m.va + m.size and m.va < e.va + e.size), None)
        if other is None and own:
            other = own
        raise m.place.error(_flags_text(str(exc)) + (f": {other}" if other else "")) from None
    _set_fields(b, m, arch_spec, wanted)
    return pa


def _set_fields(b: TableBuilder, m: MapSpec, arch_spec: SpecArch, wanted: MemoryType | None) -> None:
    """Set the global bit as `m` asks, and the memory-type field to the value that decodes as `wanted`."""
    leaves = b.pt.walk(m.va, m.va + m.size - 1)
    raw = leaves.raw.copy()
    mask, on = arch_spec.global_field(b)
    if mask:
        raw = (raw & ~np.uint64(mask)) | np.uint64(on if m.global_ else mask ^ on)
    elif m.global_:
        raise m.place.error(f"{b.fmt.name} entries have no global bit")
    if wanted is not None:
        last = b.fmt.depth_count - 1
        for huge in (False, True):
            lanes = (leaves.depth != last) if huge else (leaves.depth == last)
            if not lanes.any():
                continue
            field_mask, candidates = arch_spec.memtype_field(b, huge)
            for value in candidates:
                trial = (int(raw[lanes][0]) & ~field_mask) | value
                if int(b.fmt.codec.memory_type_np(trial, huge)) == wanted:
                    raw[lanes] = (raw[lanes] & ~np.uint64(field_mask)) | np.uint64(value)
                    break
            else:
                raise m.place.sub("memtype").error(f"no encoding of {b.fmt.name} gives memory type {wanted.label} "
                                                   f"here ({arch_spec.memtype_hint})")
    if m.accessed is not None or m.dirty is not None:
        raw = arch_spec.accessed_dirty(b, raw, m.accessed, m.dirty)
    b.pt.entries.write_np(leaves.slot, raw)


def address_limit(fmt: PagingFormat) -> int:
    """The end of the addresses a case of `fmt` may have: 2**64, or 2**32 for a format of 32-bit VAs that are
    not sign-extended (Sv32: an RV32 hart's, whose registers hold no wider address)."""
    return 1 << 32 if fmt.va_bits == 32 and fmt.extension is Extension.ZERO else 1 << 64


def fault_depths(fmt: PagingFormat, rule: FaultRule) -> list[int]:
    """The depths of `fmt` where `rule`'s entry may sit (root first)."""
    last = fmt.depth_count - 1
    allowed = {Where.ANY: range(last + 1), Where.LAST: [last], Where.TABLE: range(last),
               Where.LEAF: [d for d in range(last + 1) if fmt.levels[d].leaf or d == last],
               Where.SUPERPAGE: [d for d in range(last) if fmt.levels[d].leaf],
               Where.NO_BLOCKS: [d for d in range(last + 1) if not fmt.levels[d].leaf or d == last],
               Where.NONE: []}[rule.where]
    return [d for d in allowed if not rule.levels or fmt.levels[d].arch_level in rule.levels]


def _level_depth(fmt: PagingFormat, level: int | None, rule: FaultRule, place: Place) -> int:
    """The depth of the manual's `level` (None: the rule's default, the lowest level it may sit at)."""
    levels = [lv.arch_level for lv in fmt.levels]
    allowed = fault_depths(fmt, rule)
    if not allowed:
        raise place.sub("kind").error(f"{fmt.name} has no {rule.where.value} for this fault")
    if level is None:
        return max(allowed)
    if level not in levels:
        raise place.sub("level").error(f"{fmt.name} has no level {level} (levels {', '.join(map(str, levels))})")
    depth = levels.index(level)
    if depth not in allowed:
        raise place.sub("level").error(f"this fault goes at {rule.where.value} (levels "
                                       f"{', '.join(str(levels[d]) for d in allowed)}), not level {level}")
    return depth


def _user(va: int, span: int, b: TableBuilder, maps: list[tuple[MapSpec, TableBuilder]],
          faults: dict[tuple[int, int], str], slot: int | None = None) -> str:
    """Which earlier mapping or fault of `b` covers [va, va + span) (or wrote `slot`), for a message."""
    if slot is not None and (id(b), slot) in faults:
        return faults[(id(b), slot)]
    for m, mb in maps:
        if mb is b and m.va < va + span and va < m.va + m.size:
            return f"{m.place.key} (line {m.place.line})"
    return next((what for (owner, _), what in faults.items() if owner == id(b)), "an earlier item")


def _fault(b: TableBuilder, f: FaultSpec, rule: FaultRule, site: FaultSite,
           maps: list[tuple[MapSpec, TableBuilder]], faults: dict[tuple[int, int], str]) -> None:
    """Write `f`'s faulty entry: tables down to its level, the entry in its (empty) slot, which `faults`
    records (slot → the fault, for the messages of later ones; `maps`: the mappings, made before)."""
    if rule.where is Where.NONE:
        if f.level is not None:
            raise f.place.sub("level").error("this fault has no entry, so no level")
        return
    depth = _level_depth(b.fmt, f.level, rule, f.place)
    site.depth = depth
    fmt = b.fmt
    span = fmt.levels[depth].span
    base = f.va & ~(span - 1)
    try:
        slot = b.pt.lookup(f.va, depth)
        while slot.depth < depth:                   # make the tables on the way
            if slot.raw != 0:
                raise f.place.error(f"{f.va:#x} is already mapped at level {fmt.levels[slot.depth].arch_level} "
                                    f"(by {_user(base, span, b, maps, faults)})")
            table = b.frames.alloc()
            b.pt.entries.write(slot.pa, b.table_bits | b.address(table))
            slot = b.pt.lookup(f.va, depth)
    except SpecError:
        raise
    except PagetableError as exc:                   # an earlier fault's entry on the way (a table outside RAM)
        raise f.place.error(f"cannot reach the level-{fmt.levels[depth].arch_level} entry of {f.va:#x} (through "
                            f"{_user(base, span, b, maps, faults)}): {exc}") from None
    if slot.raw != 0 or (id(b), slot.pa) in faults:
        raise f.place.error(f"the level-{fmt.levels[depth].arch_level} entry for {f.va:#x} is already used by "
                            f"{_user(base, span, b, maps, faults, slot.pa)}")
    assert rule.entry is not None
    try:
        raw = rule.entry(site)
    except PagetableError as exc:
        raise f.place.error(str(exc)) from None
    if depth and (raw or site.widen_as is not None):  # x86: the table entries above let the fault through
        b.pt.entries.write(slot.pa, raw if site.widen_as is None else site.widen_as)
        b.pt.widen(f.va, depth)
    b.pt.entries.write(slot.pa, raw)
    faults[(id(b), slot.pa)] = f"{f.place.key} (line {f.place.line})"


_WHY = {
    Reason.RESERVED: ("an entry these registers and options read as reserved: an address at or above the output "
                      "size (x86 MAXPHYADDR, AArch64 IPS), a 1 GiB page without gbpages, XD with EFER.NXE=0, "
                      "PBMT or N without svpbmt or svnapot"),
    Reason.PERMISSION: "the permissions on its path forbid that access (perms, user; SUM, MXR, SMEP, SMAP, WP, PAN)",
    Reason.ACCESSED_DIRTY: "A/D (AF) clear where the hardware faults instead of setting them",
    Reason.INVALID: "an entry on its path is not valid (a later fault?)",
    Reason.ADDRESS_SIZE: "an address at or above the output size (TCR_ELx.IPS/PS, VTCR_EL2.PS)",
    Reason.TABLE_OUTSIDE_MEMORY: "a table on its path is outside RAM (a later fault?)",
}
"""Why a mapping or a fault is not what it asked, by the reason the walk stopped (for the build's errors)."""


def _check(walker: Walker, sc: Scaffold, built: list[tuple[MapSpec, TableBuilder, int]],
           faults: list[tuple[FaultSpec, TableBuilder, FaultRule]]) -> None:
    """Each mapping translates its first VA to its PA; each fault's VA faults as its kind says."""
    def walker_of(b: TableBuilder) -> Walker:
        return walker.stage2 if sc.nested(b) and walker.stage2 is not None else walker

    for m, b, pa in built:
        access = next((a for a, bit in (("read", F.READ), ("execute", F.EXECUTE), ("write", F.WRITE))
                       if m.perms & bit), None)
        if access is None:
            continue
        t = walker_of(b).translate(m.va, access, "user" if m.user else "supervisor")
        if sc.guest(b) and not t.ok and t.stage == 2:
            continue                                # stage 1 did its part; stage 2 refuses the GPA, as asked
        if t.reason == Reason.PA_OUTSIDE_MEMORY:
            continue                                # it maps a PA the image has no RAM at: an access fault
        if t.reason == Reason.ACCESSED_DIRTY and False in (m.accessed, m.dirty):
            continue                                # A/D clear as asked, where the hardware faults on them
        got = t.gpa if sc.guest(b) else t.pa
        if not t.ok or got != pa:
            what = f"{t.reason.label} at level {t.level}" if not t.ok else f"PA {got:#x}"
            why = _WHY.get(t.reason, "a later fault or mapping changed its path")
            raise m.place.error(f"the walker's {access} of {m.va:#x} gives {what}, not PA {pa:#x}: {why}")
    for f, b, rule in faults:
        t = walker_of(b).translate(f.va, rule.access, rule.privilege)
        reasons = rule.reasons
        if Reason.TABLE_OUTSIDE_MEMORY in reasons and sc.guest(b):
            reasons |= {Reason.PA_OUTSIDE_MEMORY}   # two stages: the table's GPA leads stage 2 to no RAM
        if t.reason not in reasons:
            stage = f"stage {t.stage} " if sc.two_stage else ""
            if Reason.NON_CANONICAL in reasons:
                why = "an address the regime translates: give one no region of it translates"
            elif Reason.ACCESSED_DIRTY in reasons and t.ok:
                why = ("the hardware sets A/D (AF) here (ad = \"svadu\"; TCR_ELx.HA/HD): the kind needs ad = "
                       "\"svade\" (RISC-V) or HA=0")
            else:
                why = f"{rule.doc} is read otherwise here ({_WHY.get(t.reason, 'another entry on its path decides')})"
            raise f.place.error(f"the walker's {rule.access} of {f.va:#x} gives {stage}{t.reason.label} "
                                f"(level {t.level}), not {' or '.join(r.label for r in reasons)}: {why}")


def _cases(spec: Spec, sc: Scaffold, built: list[tuple[MapSpec, TableBuilder, int]],
           faults: list[tuple[FaultSpec, TableBuilder, FaultRule]]) -> _Cases:
    """The cases: explicit accesses, then page boundaries, faults and random ones, as the spec asks."""
    out = _Cases()
    case_space = [m for m in built if not sc.nested(m[1])]
    for a in spec.accesses:
        out.add(np.array([a.va], dtype=np.uint64), a.label or f"access-{a.va:#x}", a.accesses, a.privileges)
    if spec.boundaries:
        for m, b, _ in case_space:
            leaves = b.pt.walk(m.va, m.va + m.size - 1)
            outside = [v for v in (m.va - 8, m.va + m.size) if 0 <= v < address_limit(b.fmt)]   # past each end
            edges = np.unique(np.concatenate((leaves.va, leaves.va + leaves.size - np.uint64(8),
                                              np.array(outside, dtype=np.uint64))))
            out.add(edges, (m.label or f"map-{m.va:#x}") + "-boundary")
            if out.count > MAX_CASES:
                raise m.place.error(f"its page boundaries make more than {MAX_CASES:,} cases: map it with larger "
                                    "pages, or set generate.boundaries = false and list accesses")
    if spec.fault_cases:
        for f, b, _ in faults:
            if not sc.nested(b):
                out.add(np.array([f.va], dtype=np.uint64), f.label or f.kind)
    if spec.random:
        rng = np.random.default_rng(spec.seed)
        for m, _, _ in case_space:
            vas = np.uint64(m.va) + rng.integers(0, m.size // 8, spec.random).astype(np.uint64) * np.uint64(8)
            out.add_random(vas, (m.label or f"map-{m.va:#x}") + "-random", rng)
    if not out.count:
        raise spec.place("access").error("the spec makes no cases: add [[access]] sections, mappings or faults")
    if out.count > MAX_CASES:
        raise spec.place("generate").error(f"{out.count:,} cases are more than a vector set holds ({MAX_CASES:,})")
    return out


__all__ = ["GENERIC_RULES", "FaultRule", "FaultSite", "Scaffold", "SpecArch", "Where", "build", "build_spec",
           "fault_depths", "fault_kinds", "set_bits"]
