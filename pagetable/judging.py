"""What the hardware makes of every entry of a table: `Walker.mappings`, the hardware listing, and
`entry_verdicts` for one raw entry.

Each entry is judged by the walk rules for every access and privilege (`_COMBOS`), level by level through
`descent` (tables read as the walk reads them: through stage 2 when there is one, `_StageTwoReader`). A
level whose entries all read the same to the rules (`WalkRules.judged_bits`, one stage: a uniformly mapped
table) has its six verdicts judged once, for the whole level at once; other levels are judged in chunks of
`_CHUNK` entries, each entry once per access and privilege (which bounds the working memory).
"""

from __future__ import annotations

from typing import TypeVar, cast

import numpy as np
import numpy.typing as npt

from . import args
from .descent import Descent, PhysicalReader, table_slots
from .errors import InvalidArgument
from .flags import human_size
from .format import PagingFormat
from .mappings import Mappings
from .translation import PERMS, Access, Privilege, Reason, Region, StepColumns, WalkRules
from .walker import Walker, _address, _page_size, _uniform

U64 = npt.NDArray[np.uint64]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]

_COMBOS = [(p, a) for p in Privilege for a in Access]    # the order of the bits of an effective-permissions mask
_COMBO_ACCESS = np.array([a for _, a in _COMBOS], dtype=np.uint8)
_COMBO_PRIVILEGE = np.array([p for p, _ in _COMBOS], dtype=np.uint8)
_CHUNK = 1 << 14                                       # entries `Walker.mappings` judges at once


def _summary(why: U8, stage: U8) -> tuple[U8, U8, U8]:
    """Per entry, from the reasons (and deciders) of its `_COMBOS` lanes (combo-major): the effective-
    permissions mask, the verdict (0 if some access translates; else the reason, one beyond permissions
    where there is one) and who decided it."""
    why, stage = why.reshape(len(_COMBOS), -1), stage.reshape(len(_COMBOS), -1)
    ok = why == Reason.OK
    bits: U8 = (ok.astype(np.uint8) << np.arange(len(_COMBOS), dtype=np.uint8)[:, None]).sum(axis=0, dtype=np.uint8)
    pick = np.where(why == Reason.PERMISSION, 255, why).argmin(axis=0)
    cols = np.arange(why.shape[1])
    usable = ok.any(axis=0)
    verdict: U8 = np.where(usable, 0, why[pick, cols]).astype(np.uint8)
    by: U8 = np.where(usable, 0, stage[pick, cols]).astype(np.uint8)
    return bits, verdict, by


def entry_verdicts(rules: WalkRules, raw: int, region: Region | None = None) -> list[tuple[int, bool, int,
                                                                                            Reason]]:
    """What the walk rules make of one raw entry at each level of a region's format (default: the regime's
    only region): (the manual's level number, whether it is a leaf there, its effective-permissions mask,
    and the reason every access faults, or OK). No memory is read: the output address is not checked, and
    the levels above are taken to restrict nothing."""
    if not rules.regime.translates:
        raise InvalidArgument("translation is off (Bare): there are no entries")
    region = region or rules.regime.single
    n = len(_COMBOS)
    out = []
    for depth, lv in enumerate(region.fmt.levels):
        st = StepColumns.of(rules.step(region, depth, np.full(n, args.address(raw, "entry"), dtype=np.uint64),
                                       _COMBO_ACCESS, _COMBO_PRIVILEGE, np.full(n, PERMS)))
        bits, verdict, _ = _summary(st.reason, np.ones(n, dtype=np.uint8))
        out.append((lv.arch_level, bool(st.leaf[0]), int(bits[0]), Reason(int(verdict[0]))))
    return out


def mappings(walker: Walker, start: int | None = None, end: int | None = None,
             region: int | None = None) -> Mappings:
    """`Walker.mappings` (which see) of `walker`."""
    regime = walker.rules.regime
    if not regime.translates:
        raise InvalidArgument("translation is off (Bare): there is no table to list")
    chosen = regime.single if region is None else regime.regions[args.integer(region, "region", 0,
                                                                               len(regime.regions))]
    fmt = chosen.fmt
    reader = PhysicalReader(walker.mem, fmt.entry_size) if walker._implicit is None else \
        _StageTwoReader(walker._implicit, fmt.entry_size)
    descent = Descent(fmt, chosen.root, reader, start, end)
    parts: list[Mappings] = []
    k = regime.regions.index(chosen)
    for e in descent:
        alike = _alike(walker, k, e.depth, e.raw, e.carry)
        chunk = max(e.raw.shape[0], 1) if alike else _CHUNK
        pointers: list[Bool] = []              # per chunk: which entries point at tables, their tables and the
        targets: list[U64] = []                # carry each brings down (only the pointers' are kept: a level
        downs: list[U64] = []                  # of leaves keeps nothing)
        for lo in range(0, e.raw.shape[0], chunk):
            part = slice(lo, lo + chunk)
            rows, pointer, target, down = _judge(walker, k, e.depth, e.raw[part], e.va[part], e.slot[part],
                                                 e.carry[part], alike, descent.problems)
            if rows is not None:
                parts.append(rows)
            pointers.append(pointer)
            targets.append(target[pointer])
            downs.append(down[pointer])
        descent.descend(_joined(pointers, np.bool_), _joined(targets, np.uint64), _joined(downs, np.uint64))
    return Mappings.concat(fmt, parts, descent.problems, hardware=True, events=descent.events)


A = TypeVar("A", bound=np.generic)


def _joined(chunks: list[npt.NDArray[A]], dtype: type[A]) -> npt.NDArray[A]:
    """The chunks' columns end to end (the one chunk itself, uncopied)."""
    if len(chunks) == 1:
        return chunks[0]
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=dtype)


def _judge(walker: Walker, k: int, depth: int, raw: U64, va: U64, slot: U64, carry: U64, alike: bool,
           notes: list[str]) -> tuple[Mappings | None, Bool, U64, U64]:
    """`mappings` for some entries of one level of region `k`, each with the `carry` the walk brings to its
    table (`alike`: the whole level is known to read alike): the rows to list, which entries point at
    tables, the addresses they point at, and the carry each passes down (what `step` makes of it: the same
    for every access and privilege, as a table entry's rights do not depend on the access)."""
    fmt = walker.rules.regime.regions[k].fmt
    n, span = raw.shape[0], fmt.levels[depth].span
    uniform = _judge_uniform(walker, k, depth, raw, va, carry, alike, notes)
    if uniform is not None:
        leaf, addr, present, bits, verdict, where, memtype, down = uniform
        return (*_rows(fmt, depth, raw, va, slot, leaf, addr, present, bits, verdict, where, memtype, True), down)
    acc, prv = np.repeat(_COMBO_ACCESS, n), np.repeat(_COMBO_PRIVILEGE, n)
    pte, lane_va = np.tile(raw, len(_COMBOS)), np.tile(va, len(_COMBOS))
    parts = [walker._step_columns(k, depth, raw, np.full(n, a, dtype=np.uint8), np.full(n, p, dtype=np.uint8),
                                carry) for p, a in _COMBOS]      # each access alone: a uniform table is
    st = StepColumns(*(np.concatenate(fields) for fields in zip(*(StepColumns.filled(part, (n,))  # judged
                                                                 for part in parts), strict=True)))  # once
    why, leaf, memtype = st.reason, st.leaf, st.memtype.copy()
    addr = cast(U64, _address(fmt, depth, pte, leaf, st.offset, lane_va))
    present = why[:n] != Reason.INVALID                 # V=1: listed whatever later checks say
    stage: U8 = np.ones(why.shape, dtype=np.uint8)
    if walker._implicit is not None:              # an entry update must pass stage 2 as an implicit write
        _, update, t2, own = walker._update_check(walker.rules.regime.regions[k], depth, why == Reason.OK, leaf, pte,
                                                  acc, prv, np.tile(slot, len(_COMBOS)))
        refused = t2.reason[own]
        why[update[own]], stage[update[own]] = refused, np.where(refused != Reason.OK, 3, 1)
    final = np.flatnonzero((why == Reason.OK) & leaf)   # the output address, as the access makes it
    if walker.stage2 is None:
        if walker.ram_only:
            why[final[~_in_ram(walker, addr[final], va[final % n], span, notes)]] = Reason.PA_OUTSIDE_MEMORY
    else:                                       # stage 2 judges the output address at its first byte
        t2 = walker.stage2._walk(addr[final], acc[final], walker.rules.stage2_privilege(prv[final], st.carry[final]))
        why[final], stage[final] = t2.reason, np.where(t2.reason != Reason.OK, 2, 1)
        memtype[final] = walker.stage2.rules.combine(memtype[final], t2.memtype, t2.pte)
        if span > _page_size(walker.stage2):
            for e in np.unique(final % n).tolist():
                notes.append(f"the {human_size(span)} leaf at VA {int(va[e]):#x} spans many stage-2 pages: "
                             "it is judged at its first byte")
    bits, verdict, where = _summary(why, stage)
    ok = (why == Reason.OK).reshape(len(_COMBOS), n)
    mt = np.where(ok, memtype.reshape(len(_COMBOS), n), 0).max(axis=0).astype(np.uint8)
    return (*_rows(fmt, depth, raw, va, slot, leaf[:n], addr[:n], present, bits, verdict, where, mt), st.carry[:n])


def _alike(walker: Walker, k: int, depth: int, raw: U64, carry: U64) -> bool:
    """Whether entries (of region `k`, at `depth`, each with its `carry`) all read the same to the rules,
    in a one-stage walk (with two stages, each entry's addresses are judged through stage 2)."""
    return walker.stage2 is None and raw.size > 0 and _uniform(carry) and \
        _uniform(raw & np.uint64(walker._plans[k][depth][3]))


def _judge_uniform(walker: Walker, k: int, depth: int, raw: U64, va: U64, carry: U64, alike: bool,
                   notes: list[str]) -> tuple[Bool, U64, Bool, U8, U8, U8, U8, U64] | None:
    """`_judge`'s verdicts where every entry reads the same to the rules (`WalkRules.judged_bits`: a
    uniformly mapped table) and there is one stage: the six accesses' verdicts are the rules' for one
    entry, and only the output address and its RAM check are per entry. None where that does not hold
    (`alike`: known to hold; otherwise these entries are tested)."""
    fmt = walker.rules.regime.regions[k].fmt
    if not alike and not _alike(walker, k, depth, raw, carry):
        return None
    n, first, c = raw.shape[0], int(raw[0]), int(carry[0])
    judged = first & walker._plans[k][depth][3]
    steps = [walker._verdict((k, depth, judged, a, p, c), walker.rules.regime.regions[k], depth, first)
             for p, a in _COMBOS]
    if any((s.leaf, s.offset) != (steps[0].leaf, steps[0].offset) for s in steps):
        return None
    leaf, why = bool(steps[0].leaf), np.array([s.reason for s in steps], dtype=np.uint8)
    offset, span = steps[0].offset, fmt.levels[depth].span
    if leaf and offset < span:          # each entry's VA is span-aligned: its offset bits are 0, so the output
        addr = cast(U64, fmt.codecs[depth].paddr_np(raw, depth != fmt.depth_count - 1))  # address is the field's
        keep = np.uint64(~offset & (1 << 64) - 1)                                    # above the offset
        if addr.base is None and addr is not raw:     # a column of its own (as decoders make): cleared in place
            np.bitwise_and(addr, keep, out=addr)
        else:
            addr = addr & keep
    else:
        addr = cast(U64, _address(fmt, depth, raw, np.full(n, leaf), offset, va))
    ram: Bool | None = None                             # None: every output address is RAM
    if leaf and walker.ram_only and np.any(why == Reason.OK):
        ram = _in_ram(walker, addr, va, span, notes)
        ram = None if ram.all() else ram
    # the verdicts of an entry whose output address is RAM, and of one whose address is not
    cases = np.stack([why, np.where(why == Reason.OK, Reason.PA_OUTSIDE_MEMORY, why)], axis=1)
    bits, verdict, where = _summary(cases.reshape(-1), np.ones(cases.size, dtype=np.uint8))
    memtypes = np.array([max((s.memtype for s in steps if s.reason == Reason.OK), default=0), 0], dtype=np.uint8)
    if ram is None:                                     # one case for every entry: the columns are filled
        bits, verdict, where, memtype = (np.full(n, c[0]) for c in (bits, verdict, where, memtypes))
    else:
        pick = (~ram).astype(np.intp)
        bits, verdict, where, memtype = bits[pick], verdict[pick], where[pick], memtypes[pick]
    present = np.full(n, why[0] != Reason.INVALID)
    down = np.broadcast_to(np.array(steps[0].carry, dtype=np.uint64), (n,))   # the same for every entry
    return np.full(n, leaf), addr, present, bits, verdict, where, memtype, down


def _in_ram(walker: Walker, addr: U64, va: U64, span: int, notes: list[str]) -> Bool:
    """Whether each leaf's output (`span` bytes at `addr`) touches RAM; a leaf only partly RAM is noted,
    once (its lanes of several accesses are one leaf)."""
    inside = walker.mem.contains_np(addr, span)
    if inside.all():                                  # the usual case: every leaf wholly RAM
        return inside
    ram = walker.mem.touches_np(addr, span)
    partly = np.flatnonzero(ram & ~inside)
    _, first = np.unique(va[partly], return_index=True)
    for e in partly[np.sort(first)].tolist():
        notes.append(f"the {human_size(span)} leaf at VA {int(va[e]):#x} maps [{int(addr[e]):#x}, "
                     f"{int(addr[e]) + span:#x}), of which only part is RAM")
    return ram


def _rows(fmt: PagingFormat, depth: int, raw: U64, va: U64, slot: U64, leaf: Bool, addr: U64,
          present: Bool, bits: U8, verdict: U8, where: U8, memtype: U8,
          alike: bool = False) -> tuple[Mappings | None, Bool, U64]:
    """`_judge`'s result from the entries' verdicts: the rows to list (leaves, and entries every access
    faults on), which entries point at tables, and the addresses. `alike`: the entries are equal in every
    bit the rules judge (`WalkRules.judged_bits`: all but the address's), so their flags are one entry's."""
    huge, usable = depth != fmt.depth_count - 1, verdict == 0
    listed = (leaf | ~usable) & present
    rows = None
    if np.any(listed):
        pick = slice(None) if listed.all() else listed          # a table of leaves: every entry, no copies
        r = raw[pick]
        codec = fmt.codecs[depth]
        pa = addr[pick] if usable.all() else np.where(usable[pick], addr[pick], codec.paddr_np(r, huge))
        flags = np.full(r.shape, codec.flags_np(int(r[0]), huge), dtype=np.uint64) if alike else codec.flags_np(r, huge)
        rows = Mappings(fmt, va[pick], pa, np.full(r.shape, fmt.levels[depth].span, dtype=np.uint64),
                        flags, np.full(r.shape, depth, dtype=np.int8), r, slot[pick],
                        perms=bits[pick], verdict=verdict[pick], verdict_stage=where[pick], memtype=memtype[pick])
    return rows, ~leaf & usable, addr


class _StageTwoReader:
    """Stage-1 tables in guest-physical memory, located and read through stage 2 as the walk reads them
    (implicit reads): a table is where stage 2 maps it, so guest-physical aliases of one host page are one
    table; a table stage 2 faults on, or maps outside RAM, cannot be read."""

    def __init__(self, stage2: Walker, entry_size: int) -> None:
        self.stage2 = stage2
        self.entry_size = entry_size
        self.page = _page_size(stage2)

    def _reach(self, gpas: U64, size: int) -> tuple[Bool, U64, list[str]]:
        """For `size` bytes at each GPA (within one stage-2 page): whether the walk can read them, their
        host address, and why not for each lane it cannot."""
        t = self.stage2._walk(gpas, np.full(gpas.shape, Access.READ, dtype=np.uint8),   # the privilege
                              np.full(gpas.shape, Privilege.SUPERVISOR, dtype=np.uint8))  # of no access
        inram = self.stage2.mem.contains_np(t.pa, size)
        ok = (t.reason == Reason.OK) & inram
        why = []
        for k in np.flatnonzero(~ok).tolist():
            reason = Reason(int(t.reason[k]))
            why.append(f"at GPA {int(gpas[k]):#x}, which stage 2 maps to {int(t.pa[k]):#x}, outside RAM"
                       if reason == Reason.OK else
                       f"at GPA {int(gpas[k]):#x}, which stage 2 does not let the walk read "
                       f"({self.stage2.rules.fault_kind(reason).value}: {reason.label} at stage-2 level "
                       f"{int(t.level[k])})")
        return ok, t.pa, why

    def locate(self, tables: U64, count: int) -> tuple[Bool, U64, list[str]]:
        ok, hpa, why = self._reach(tables, min(count * self.entry_size, self.page))
        return ok, hpa[ok], why

    def read(self, tables: U64, where: U64, slots: U64, count: int) -> tuple[Bool, U64, list[str]]:
        """Stage-1 tables are no larger than stage 2's pages, so `locate` found all of each table."""
        assert count * self.entry_size <= self.page, "a stage-1 table larger than a stage-2 page"
        return np.ones(tables.shape, dtype=bool), self.stage2.mem.entries(self.entry_size).read_np(
            table_slots(where, count, self.entry_size)), []
