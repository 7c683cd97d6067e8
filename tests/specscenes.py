"""Specs for `vectors build` that use everything a mode has: a mapping with the largest page of every level
that has leaves, a forced-4K mapping with a memory type, every fault kind of every stage at every level it
may sit at, and in two-stage modes stage 2 faults that stage 1 mappings lead to. Each item has a root-table
slot of its own (so none collides with another), never the QEMU harness's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pagetable import registry
from pagetable.errors import InvalidFlags
from pagetable.flags import MappingFlags as F
from pagetable.format import PagingFormat
from pagetable.vectors.build import GENERIC_RULES, FaultRule, Scaffold, SpecArch, address_limit, fault_depths
from pagetable.vectors.generation import TableBuilder
from pagetable.vectors.spec import parse_spec

# what a mode's scene leaves out, and why: kinds that need registers the scene does not give
EXCLUDED = {"xd-without-nxe": "needs EFER.NXE=0", "protection-key": "needs PKRU: given to stage 1 of x86 only"}
REGISTERS = {"x86_64": {"pkru": 0x4}}               # PKRU.AD1: protection key 1 denies user data accesses
STAGE1_OUTPUT_BITS = {"riscv64": 56, "x86_64": 40, "aarch64": 40}   # the scaffolds' (PPN; MAXPHYADDR; IPS)
MEMTYPE = {"riscv64": None, "x86_64": "wc", "aarch64": "normal-nc"}


class Slots:
    """VAs for a scene's items in one table: `root()` a root-table slot of its own (from the top), `sub()` a
    level-1 slot of its own (from the bottom, filling one root slot after another); none in [avoid) or at or
    above `limit`, never the harness's. `first`: the first root slot used."""

    def __init__(self, b: TableBuilder, avoid: tuple[int, int] = (0, 0), limit: int = 1 << 64, first: int = 1) -> None:
        fmt = self.fmt = b.fmt
        self.span, self.avoid = fmt.levels[0].span, avoid
        self.roots = [va for k in range(first, fmt.levels[0].entries)
                      if fmt.index(va := fmt.extend(k * self.span), 0) == k and fmt.is_canonical(va)
                      and not b.reserved(va) and va + self.span <= limit]
        self._sub: Iterator[int] = iter(())

    def _clear(self, va: int, size: int) -> bool:
        return va + size <= self.avoid[0] or va >= self.avoid[1]

    def root(self) -> int:
        va = next(va for va in reversed(self.roots) if self._clear(va, self.span))
        self.roots.remove(va)
        return va

    def sub(self) -> int:
        for va in self._sub:
            return va
        base, step = self.roots.pop(0), self.fmt.levels[1].span
        self._sub = (va for va in range(base, base + self.span, step) if self._clear(va, step))
        return self.sub()


def _full_width(b: TableBuilder) -> bool:
    """An AArch64 table whose output size is its form's whole width: no address-size fault exists."""
    return bool(getattr(b, "oa_bits", 0) >= getattr(b, "form_bits", 1))


def _ram(b: TableBuilder) -> int:
    return b.mem.regions[0].base


def scene(mode: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The spec document (as parsed TOML) of `mode`'s scene."""
    arch = registry.by_mode(mode)
    spec_arch = arch.spec
    assert isinstance(spec_arch, SpecArch)
    options = options or {}
    sc = spec_arch.scaffold(parse_spec({"mode": mode, "options": options}), lambda frames, stage: None)
    registers = {k: v for k, v in REGISTERS.get(arch.name, {}).items() if k in sc.registers()} if sc.stage1 else {}
    doc: dict[str, Any] = {"mode": mode, "seed": 1, "options": options, "registers": registers,
                           "map": [], "fault": [], "generate": {"random": 2}}
    tables = list(sc.stage1) if sc.stage1 else [sc.stage2] if sc.stage2 is not None else []
    slots = Slots(tables[0])
    for b in tables:
        slots = Slots(b, limit=_reach(sc, b), first=0 if b.fmt.levels[0].entries == 4 else 1)  # PAE: every PDPT slot
        doc["map"] += _maps(b, slots, MEMTYPE[arch.name])
        for kind, rule in {**GENERIC_RULES, **spec_arch.rules(b)}.items():
            doc["fault"] += _faults(b, slots, kind, rule, sc, b is tables[0], bool(registers))
    if sc.stage1 and sc.stage2 is not None:
        _stage2_faults(doc, slots, sc.stage2, spec_arch, STAGE1_OUTPUT_BITS[arch.name])
    return doc


def _reach(sc: Scaffold, b: TableBuilder) -> int:
    """The end of the addresses a case reaches `b`'s table with: 2**64, but 2**32 for a stage 2 alone of 4-byte
    entries (Sv32x4 with vsatp Bare: the GPA is an RV32 hart's 32-bit VA)."""
    return 1 << 32 if not sc.stage1 and b.fmt.entry_size == 4 else 1 << 64


def _maps(b: TableBuilder, slots: Slots, memtype: str | None) -> list[dict[str, Any]]:
    """A mapping with the page of each level that has leaves (up to 2 MiB from fresh frames, larger ones over
    RAM), and four forced small pages with the memory type."""
    fmt, last = b.fmt, b.fmt.depth_count - 1
    user = bool(fmt.codec.supported_flags & F.USER)
    rw = "rw" if _encodes(fmt, F.READ | F.WRITE) else "rwx"       # x86 32-bit paging: no XD, every page executable
    out: list[dict[str, Any]] = []
    for depth in (d for d in range(last + 1) if fmt.levels[d].leaf or d == last):
        span = fmt.levels[depth].span
        pa = {} if span <= 2 << 20 else {"pa": _ram(b) & ~(span - 1)}
        out.append({"va": slots.sub() if depth else slots.root(), "size": span, "page": span,
                    "perms": "rwx" if depth % 2 else rw, "user": user and depth % 2 == 0, **pa})
    out.append({"va": slots.root() if fmt.depth_count <= 2 else slots.sub(), "size": 4 * fmt.page_size,
                "page": fmt.page_size, "perms": rw, **({} if memtype is None else {"memtype": memtype})})
    return out


def _encodes(fmt: PagingFormat, flags: F) -> bool:
    """Whether `fmt`'s codec has an encoding of a page with `flags`."""
    try:
        fmt.codec.new_page(0, flags, False)
    except InvalidFlags:
        return False
    return True


def _faults(b: TableBuilder, slots: Slots, kind: str, rule: FaultRule, sc: Scaffold, first: bool,
            registers: bool) -> list[dict[str, Any]]:
    """Fault `kind` at every level it may sit at in `b`'s table (non-canonical once, in the first table)."""
    if (kind in EXCLUDED and not (kind == "protection-key" and registers)) or \
            (kind == "address-size" and _full_width(b)) or (rule.needs and not sc.options.get(rule.needs)):
        return []
    fmt = b.fmt
    stage = {} if sc.stage1 else {"stage": 2}
    if kind == "non-canonical":                  # (Sv32 has none: every 32-bit VA is translated)
        va = _non_canonical(b)
        return [{"kind": kind, "va": va, **stage}] if first and va < address_limit(fmt) else []
    depths = fault_depths(fmt, rule)
    if kind == "leaf-outside-ram" and sc.stage1 and sc.stage2 is not None:
        depths = [d for d in depths if fmt.levels[d].span <= 1 << 30]     # the window without RAM is 1 GiB
    return [{"kind": kind, "va": slots.sub() if d else slots.root(), "level": fmt.levels[d].arch_level, **stage}
            for d in depths]


def _non_canonical(b: TableBuilder) -> int:
    """An address the format does not translate: bit `va_bits` set, above every range."""
    va = 1 << b.fmt.va_bits
    assert not b.fmt.is_canonical(va)
    return va


def _stage2_faults(doc: dict[str, Any], s1: Slots, s2: TableBuilder, spec_arch: SpecArch, output_bits: int) -> None:
    """Stage 2 faults at the last level, each at an IPA a stage 1 page maps (in stage 1's free slots), away
    from guest RAM and the window of IPAs without RAM (4 GiB to 5 GiB)."""
    ram = _ram(s2)
    lo = min(ram - (1 << 16), 1 << 32)
    # IPAs the stage 1 output size can name
    slots = Slots(s2, (lo, max(ram + (8 << 20), (1 << 32) + (1 << 30))), 1 << output_bits, first=0)
    for kind, rule in {**GENERIC_RULES, **spec_arch.rules(s2)}.items():
        depths = fault_depths(s2.fmt, rule)
        if kind in EXCLUDED or not depths or (kind == "address-size" and _full_width(s2)) or rule.needs:
            continue
        if not max(depths) and len(slots.roots) <= 1:
            continue                             # the last root slot below the limit is the harness's (x86 NPT)
        ipa = slots.sub() if max(depths) else slots.root()
        doc["fault"].append({"kind": kind, "va": ipa, "level": s2.fmt.levels[max(depths)].arch_level, "stage": 2})
        doc["map"].append({"va": s1.sub(), "pa": ipa, "size": s1.fmt.page_size, "perms": "rw", "label": f"s2-{kind}"})
