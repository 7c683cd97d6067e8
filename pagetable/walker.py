"""The hardware walker: translate addresses the way the MMU does, faults included.

The walker owns the loop that every architecture shares — pick the region of the regime that translates
each VA (`Regime.partition_np`; none: non-canonical), fetch the entry of each level from physical memory (a
fetch outside RAM is the architecture's access/abort fault), let the architecture's `WalkRules` judge the
entry with the state carried down from the levels above (fault, next table, or leaf with the VA bits its
output address keeps, effective permissions and memory type: `Step`; addresses come from the entry's
address field), and finally check that the output address is RAM. The architecture then computes what the
hardware reports (`WalkRules.syndrome`). The rules are written once (`lanes`): `translate_many` runs them
on numpy columns of lanes, which shrink as lanes leave the walk, judging each distinct entry once where
that is cheap to see (`_step_columns`); `translate` runs them on one lane's Python ints (`_walk_one`),
remembering verdicts by the entry bits the rules read (`WalkRules.judged_bits`). tests/test_walker_lanes.py
and the fuzz suites hold the two to the same outcome, field by field.

Two-stage translation (a hypervisor's guest): give the first-stage walker a `stage2` walker. Then every
first-stage table fetch is itself translated by stage 2 (as an implicit read, with the rules
`stage2.rules.implicit()` gives), and so is the final
guest-physical address (with the original access and privilege: stage 2's rules decide what the privilege
means to them; RISC-V's G-stage checks every access as U-mode); a stage-2 fault stops the walk with `stage == 2`, the
stage-2 level and reason, and the guest-physical address that faulted in `gpa`. Where the first stage's
hardware would write an entry back (`WalkRules.written`: RISC-V Svadu's or x86's A/D updates), that entry's
guest-physical address is also checked by stage 2 as an implicit write, before the final address. The
effective permissions are both stages' (bitwise and) and the memory type is what the stage-1 rules make of
both (`WalkRules.combine`).

Translation is side-effect free: where hardware would set A/D bits (RISC-V Svadu, x86, EPT) the walker
succeeds without writing them; `Walker.entry_updates` says which entries hardware writes, and how, and
writes them when asked.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, NamedTuple, cast

import numpy as np
import numpy.typing as npt

from . import args, lanes
from .errors import InvalidArgument, InvalidArgumentType
from .format import PagingFormat
from .lanes import Flag, Word
from .mappings import Mappings
from .physmem import PhysMem
from .translation import (
    ALL_PERMS,
    IMPLICIT_ENTRY_UPDATE,
    IMPLICIT_TABLE_READ,
    PERMS,
    Access,
    FaultKind,
    Lane,
    MemoryType,
    Privilege,
    Reason,
    Regime,
    Region,
    Step,
    StepColumns,
    Translation,
    Translations,
    WalkRules,
    _Named,
    perm_bit,
)

U64 = npt.NDArray[np.uint64]
_ALL_ONES = (1 << 64) - 1
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]

__all__ = [
    "Access",
    "EntryUpdate",
    "FaultKind",
    "MemoryType",
    "Privilege",
    "Reason",
    "Regime",
    "Region",
    "Translation",
    "Translations",
    "WalkRules",
    "Walker",
    "perm_bit",
]


def _lanes(value: int | str | Access | Privilege | npt.ArrayLike, kind: type[_Named], n: int) -> U8:
    """One `kind` value per lane: a name (or member) for every lane, or an integer array of members."""
    if isinstance(value, str | enum.Enum):
        return np.full(n, kind.parse(value), dtype=np.uint8)
    arr = args.u64_array(value, f"{kind.__name__.lower()} lanes").reshape(-1)     # flattened, as VAs are
    if np.any(arr >= len(kind)):
        names = ", ".join(f"{m.value} ({m.label})" for m in kind)
        raise InvalidArgument(f"{kind.__name__.lower()} lanes must be {names}, not {int(arr[arr >= len(kind)][0])}")
    try:
        return np.broadcast_to(arr, (n,)).astype(np.uint8)
    except ValueError:
        raise InvalidArgument(f"{arr.size} {kind.__name__.lower()} lanes for {n} addresses") from None


def _page_size(walker: Walker) -> int:
    """The smallest page `walker` maps (translation off: one page of everything)."""
    regions = walker.rules.regime.regions
    return min(r.fmt.page_size for r in regions) if regions else args.ADDR_LIMIT


_EITHER_PRIVILEGE = [perm_bit(a, Privilege.SUPERVISOR) | perm_bit(a, Privilege.USER) for a in Access]
"""Per access kind, its bits of an effective-permissions mask at both privileges (a refused entry update
takes the access away from both)."""
_REASONS = tuple(Reason)                               # by value (one lane's results, without enum calls)
_MEMORY_TYPES = {m.value: m for m in MemoryType}
_NO_SYNDROME = Translation._field_defaults["syndrome"]
# For one-lane walks, which take microseconds: in Python 3.11 an enum member by attribute (`Reason.OK`)
# costs as much as a function call, so the walk takes the members it uses from module constants, and
# `_named(Kind, fields)` makes a named tuple of its fields without `Kind._make`'s extra Python call.
_OK, _READ, _WRITE = Reason.OK, Access.READ, Access.WRITE
_named = tuple.__new__
_VERDICTS = 1 << 16                                    # verdicts a walker remembers for one-lane walks


def _address(fmt: PagingFormat, depth: int, pte: Word, leaf: Flag, offset: Word, va: Word) -> Word:
    """The address an entry at `depth` leads to: the next table's (a pointer), or the output address (a
    leaf: its address field with the VA's bits in `Step.offset`)."""
    base = fmt.codecs[depth].paddr_np(pte, depth != fmt.depth_count - 1)
    if isinstance(leaf, np.ndarray):
        if not leaf.any():                            # a level of pointers (bulk walks mostly reach few
            return base                               # leaves above the last level)
        if leaf.all():                                # a level of leaves (a listing's last level)
            return _with_offset(base, offset, va)
    return lanes.where(leaf, _with_offset(base, offset, va), base)


def _with_offset(base: Word, offset: Word, va: Word) -> Word:
    """A leaf's output address: its address field `base` with the VA's bits in `offset` (for a column with
    one offset, built in the column it returns: one temporary, not three)."""
    if isinstance(base, np.ndarray) and not isinstance(offset, np.ndarray):
        out: U64 = base & np.uint64(~offset & _ALL_ONES)
        out |= va & offset
        return out
    return (base - (base & offset)) | (va & offset)


def _uniform(column: npt.NDArray[Any]) -> bool:
    """Whether every lane of a non-empty column holds the same value."""
    return bool(column.min() == column.max())


_RUN = 8
"""The mean run length of alike lanes from which `_step_columns` judges each run once."""


def _run_heads(most: int, *columns: npt.NDArray[Any]) -> npt.NDArray[np.intp] | None:
    """The first lane of each run of neighbouring lanes equal in every column, if there are at most `most`
    runs (else None: the lanes are better judged each, and the search stops at the first column that shows
    it)."""
    if most < 1:
        return None
    new = np.zeros(columns[0].shape, dtype=bool)
    new[0] = True
    for column in columns:
        np.logical_or(new[1:], column[1:] != column[:-1], out=new[1:])
        if np.count_nonzero(new) > most:
            return None
    return np.flatnonzero(new)


def _keep(mask: Bool, *columns: npt.NDArray[Any]) -> list[npt.NDArray[Any]]:
    """The lanes of each column that `mask` keeps (the columns themselves when it keeps all)."""
    if mask.all():
        return list(columns)
    lanes = np.flatnonzero(mask)                  # found once, not once per column
    return [c.take(lanes) for c in columns]


def _leave(out: Translations, lanes: npt.NDArray[np.intp] | slice, reason: U8 | int, level: int, pte: U64,
           carry: U64) -> None:
    """Record how `lanes` left the walk: their reason, the level they left at, the entry they read last and
    the rights their carry held."""
    out.reason[lanes], out.level[lanes], out.pte[lanes] = reason, level, pte
    out.rights[lanes] = carry & PERMS


def _record(out: Translations, lanes: npt.NDArray[np.intp], gpas: U64, t2: Translations, implicit: int) -> None:
    """Note stage 2's faults (`t2`, one per lane) in `out`, and the GPA each lane's stage 2 translated."""
    bad = t2.reason != Reason.OK
    hit = lanes[bad]
    out.reason[hit], out.level[hit], out.pte[hit] = t2.reason[bad], t2.level[bad], t2.pte[bad]
    out.rights[hit] = t2.rights[bad]
    out.stage[hit] = 2
    out.implicit[hit] = implicit
    out.gpa[lanes] = gpas


class EntryUpdate(NamedTuple):
    """One entry write of the hardware's (`Walker.entry_updates`): where, the entry before and after."""

    pa: int
    old: int
    new: int


def _one(kind: type[_Named], value: object) -> Any:
    """One `kind` member from a name, a member or its integer value."""
    if type(value) is kind:
        return value
    if isinstance(value, str | enum.Enum):
        return kind.parse(value)  # type: ignore[arg-type]
    number = args.integer(value, kind.__name__.lower(), 0, len(kind))
    return kind(number)


_RULES = ("step", "judged_bits", "fault_kind", "written", "implicit", "combine", "syndrome", "stage2_privilege")


class Walker:
    """Translates virtual addresses through `rules` over the physical memory `mem`."""

    def __init__(self, mem: PhysMem, rules: WalkRules, stage2: Walker | None = None, *, ram_only: bool = True) -> None:
        if not isinstance(mem, PhysMem) or not (stage2 is None or isinstance(stage2, Walker)):
            raise InvalidArgumentType("a walker needs a PhysMem (and, for two stages, a stage-2 Walker)")
        if not all(callable(getattr(rules, m, None)) for m in _RULES) or \
                not isinstance(getattr(rules, "regime", None), Regime):
            raise InvalidArgumentType(f"{type(rules).__name__} is not a WalkRules (regime, step, fault_kind, ...)")
        self.mem = mem
        self.rules = rules
        self.stage2 = stage2
        # the final access must hit RAM of `mem` (a machine `mem` models whole); False: any output address is
        # a target (a memory image, which holds the RAM it captured and none of the devices)
        self.ram_only = ram_only
        self._implicit = None if stage2 is None else Walker(stage2.mem, stage2.rules.implicit())  # tables: RAM
        # a one-lane walk's plan per region and level (index shift and mask, entry size, the entry bits the
        # rules read, whether a leaf there is huge, the level's number, its codec's address decoder), and the
        # verdicts it remembers
        self._plans = [[(lv.index_lsb, lv.entries - 1, r.fmt.entry_size, rules.judged_bits(r, d),
                         d != r.fmt.depth_count - 1, lv.arch_level, r.fmt.codecs[d].paddr_np)
                        for d, lv in enumerate(r.fmt.levels)]
                       for r in rules.regime.regions]
        self._verdicts: dict[tuple[int, int, int, int, int, int], Step] = {}
        self._entries = [mem.entries(r.fmt.entry_size) for r in rules.regime.regions]   # each region's width
        self._root_entries = [None if r.root_entries is None else np.array(r.root_entries, dtype=np.uint64)
                              for r in rules.regime.regions]                # a root held in registers (PAE)

    def beyond_ram(self) -> Walker:
        """This walker (and its stage 2) with any output address a valid target, RAM or not, as the
        hardware sees it: for a memory image, whose holes are devices or memory it did not capture. Tables
        must still be read from RAM (a walk into a hole faults)."""
        stage2 = None if self.stage2 is None else self.stage2.beyond_ram()
        return Walker(self.mem, self.rules, stage2, ram_only=False)

    @classmethod
    def nested(cls, mem: PhysMem, rules: tuple[WalkRules, WalkRules]) -> Walker:
        """A two-stage walker over one memory: stage-1 rules over stage-2 rules."""
        return cls(mem, rules[0], stage2=cls(mem, rules[1]))

    def fault_kind(self, reason: Reason, stage: int = 1) -> FaultKind:
        """The exception class of a fault that `stage` (1, or 2 for the stage-2 walk) stopped with."""
        if stage == 2 and self.stage2 is not None:
            return self.stage2.rules.fault_kind(reason)
        return self.rules.fault_kind(reason)

    def _stage2(self, lanes: npt.NDArray[np.intp], gpas: U64, acc: U8, prv: U8, out: Translations,
                implicit: int) -> Translations:
        """Translate `gpas` (for `lanes`) through stage 2; record its faults in `out` (`implicit`: these are
        stage-1 table reads, IMPLICIT_TABLE_READ, or 0); return stage 2's translations."""
        stage2 = self._implicit if implicit else self.stage2
        assert stage2 is not None
        t2 = stage2._walk(gpas, acc, prv)
        _record(out, lanes, gpas, t2, implicit)
        return t2

    def _update_check(self, region: Region, depth: int, accepted: Bool, leaf: Bool, pte: U64, acc: U8, prv: U8,
                      slot: U64) -> tuple[list[Bool], npt.NDArray[np.intp], Translations, Bool]:
        """The entry updates hardware makes (`WalkRules.written`) for the entries `step` accepted: per
        access kind, the lanes whose entry it would update; the lanes that need some update, stage 2's
        verdict on each (one implicit write of the entry at `slot`), and which of them need it for their
        own access."""
        assert self._implicit is not None
        needs = [accepted & (self.rules.written(region, depth, pte, leaf, np.broadcast_to(np.uint8(a), pte.shape))
                             != pte) for a in Access]
        update = np.flatnonzero(needs[0] | needs[1] | needs[2])
        if not update.size:                           # Svade, or nothing to update: no stage-2 walk
            return needs, update, Translations.empty(slot[update]), np.zeros(0, dtype=bool)
        t2 = self._implicit._walk(slot[update], np.full(update.shape, Access.WRITE, dtype=np.uint8), prv[update])
        own: Bool = np.choose(acc, needs)[update]
        return needs, update, t2, own

    def _check_updates(self, region: Region, depth: int, accepted: Bool, st: StepColumns, pte: U64, acc: U8,
                       prv: U8, slot: U64, live: npt.NDArray[np.intp], out: Translations) -> tuple[U64, Bool]:
        """`_update_check` in a walk: a lane whose own access needs a refused update faults (recorded in
        `out`; these lanes are returned), and the carry returned loses every access whose update stage 2
        refuses (RISC-V Svadu: a store that must set D where the G-stage does not let the walk write the
        VS-stage PTE)."""
        needs, update, t2, own = self._update_check(region, depth, accepted, st.leaf, pte, acc, prv, slot)
        carry: U64 = st.carry
        refused = np.zeros(pte.shape, dtype=bool)
        if not update.size:
            return carry, refused
        carry = carry.copy()
        refused[update] = t2.reason != Reason.OK
        for a in Access:
            carry[needs[a] & refused] &= np.uint64(((1 << 64) - 1) ^ _EITHER_PRIVILEGE[a])
        _record(out, live[update[own]], slot[update[own]], t2.take(own), IMPLICIT_ENTRY_UPDATE)
        faulted = np.zeros(pte.shape, dtype=bool)
        faulted[update[own]] = refused[update[own]]
        return carry, faulted

    def translate_many(self, vas: npt.ArrayLike, access: Access | str | npt.ArrayLike = Access.READ,
                       privilege: Privilege | str | npt.ArrayLike = Privilege.SUPERVISOR) -> Translations:
        """Translate every VA (with one access/privilege, or one per lane). VAs are integers (an integer
        array or a list of ints); floats and negative values are refused, never truncated. The result
        carries each lane's syndrome (`WalkRules.syndrome`)."""
        va = np.ascontiguousarray(args.u64_array(vas, "virtual addresses").reshape(-1))
        n = va.shape[0]
        return self._translate(va, _lanes(access, Access, n), _lanes(privilege, Privilege, n))

    def _translate(self, va: U64, acc: U8, prv: U8) -> Translations:
        """`_walk`, with the syndromes (0 where a lane translated)."""
        t = self._walk(va, acc, prv)
        f = np.flatnonzero(t.reason != Reason.OK)
        syndrome = {}
        for name, value in self.rules.syndrome(t.take(f), acc[f], prv[f],
                                               None if self.stage2 is None else self.stage2.rules).items():
            syndrome[name] = np.zeros(va.shape, dtype=np.uint64)
            syndrome[name][f] = value
        return dataclasses.replace(t, syndrome=syndrome)

    def _walk(self, va: U64, acc: U8, prv: U8) -> Translations:
        """`translate_many` on arrays the walker has already checked (or built itself), without syndromes."""
        out = Translations.empty(va)
        # each lane's carry after its leaf, for the privilege stage 2 is told (one stage: not needed)
        final = None if self.stage2 is None else np.full(va.shape, PERMS)
        regime = self.rules.regime
        if not regime.translates:
            out.pa[:] = va
            out.perms[:] = PERMS
            out.memtype[:] = MemoryType.DEFAULT
            if regime.flat_bits is not None:            # a flat address wider than the regime's
                out.reason[(va >> np.uint64(regime.flat_bits)) != 0] = regime.flat_refusal
        else:
            out.level[:] = regime.regions[0].refusal_level
            lane_bit = prv * np.uint8(3) + acc
            canonical, chosen = regime.partition_np(va, lane_bit)
            out.reason[~canonical] = Reason.NON_CANONICAL
            for k, (region, lanes) in enumerate(zip(regime.regions, chosen, strict=True)):
                if region.allowed != ALL_PERMS:       # accesses the region refuses without a walk
                    refused = (np.uint8(region.allowed) >> lane_bit[lanes]) & np.uint8(1) == 0
                    out.level[lanes[refused]] = region.refusal_level
                    out.reason[lanes[refused]] = region.refused_with
                    lanes = lanes[~refused]
                if lanes.size:
                    self._descend(k, lanes, acc, prv, out, final)
        ok = np.flatnonzero(out.reason == Reason.OK)
        if final is not None and self.stage2 is not None:     # two stages: the final GPA, with the access
            t2 = self._stage2(ok, out.pa[ok].copy(), acc[ok], self.rules.stage2_privilege(prv[ok], final[ok]), out,
                              0)
            out.pa[ok], out.perms[ok] = t2.pa, out.perms[ok] & t2.perms
            out.memtype[ok] = self.stage2.rules.combine(out.memtype[ok], t2.memtype, t2.pte)
            both = ok[t2.reason == Reason.OK]
            out.rights[both] = out.perms[both]
        elif not self.ram_only:                       # any output address is a target
            pass
        elif ok.size == len(out):                     # the final access must be RAM
            out.reason[~self.mem.contains_np(out.pa, 1)] = Reason.PA_OUTSIDE_MEMORY
        else:
            out.reason[ok[~self.mem.contains_np(out.pa[ok], 1)]] = Reason.PA_OUTSIDE_MEMORY
        failed = out.reason != Reason.OK
        out.perms[failed], out.memtype[failed] = 0, MemoryType.NONE
        return out

    def _descend(self, k: int, live: npt.NDArray[np.intp], acc: U8, prv: U8, out: Translations,
                 final: U64 | None) -> None:
        """Walk region `k`'s tables for the lanes `live`, level by level. Each lane's state is a column that
        shrinks as lanes leave the walk; a lane's outcome is written to `out` when it leaves (with its
        carry after the leaf in `final`, when there is one)."""
        region = self.rules.regime.regions[k]
        fmt = region.fmt
        every = live.size == len(out)                 # `live` is sorted: every lane, in order, or fewer
        va, acc, prv = (out.va, acc, prv) if every else (out.va[live], acc[live], prv[live])
        table = np.full(live.shape, region.root, dtype=np.uint64)
        carry = np.full(live.shape, PERMS)
        pte = np.zeros(live.shape, dtype=np.uint64)                  # the last entry each lane read
        for depth, lv in enumerate(fmt.levels):
            index = fmt.index_np(va, depth)
            slot = table + index * np.uint64(fmt.entry_size)
            fetch = slot
            registers = self._root_entries[k] if depth == 0 else None     # not read from memory
            if self.stage2 is not None and registers is None:     # the table fetch is an implicit stage-2 read
                t2 = self._stage2(live, slot, np.broadcast_to(np.uint8(Access.READ), live.shape), prv, out,
                                  IMPLICIT_TABLE_READ)
                live, va, acc, prv, table, index, slot, carry, pte, fetch = _keep(
                    t2.reason == Reason.OK, live, va, acc, prv, table, index, slot, carry, pte, t2.pa)
            if registers is None:
                inram, entries = self._entries[k].gather_np(fetch)
            else:
                inram, entries = np.ones(live.shape, dtype=bool), registers[index]
            if not inram.all():
                _leave(out, live[~inram], Reason.TABLE_OUTSIDE_MEMORY, lv.arch_level, pte[~inram], carry[~inram])
                live, va, acc, prv, table, index, slot, carry = _keep(inram, live, va, acc, prv, table, index, slot,
                                                                      carry)
            pte = entries
            st = self._step_columns(k, depth, pte, acc, prv, carry, table, index)
            good = st.reason == Reason.OK
            if not good.all():
                _leave(out, live[~good], st.reason[~good], lv.arch_level, pte[~good], st.carry[~good])
            carry_out = st.carry
            if self.stage2 is not None:           # an entry update is an implicit stage-2 write
                carry_out, refused = self._check_updates(region, depth, good, st, pte, acc, prv, slot, live, out)
                good &= ~refused
            address = cast(U64, _address(fmt, depth, pte, st.leaf, st.offset, va))
            ends = good & st.leaf
            if ends.any():
                pick = slice(None) if ends.all() else ends        # every lane ends here: no selection
                done = slice(None) if ends.all() and live.size == len(out) else live[pick]
                _leave(out, done, Reason.OK, lv.arch_level, pte[pick], carry_out[pick])
                out.pa[done] = address[pick]
                out.perms[done] = out.rights[done]
                if final is not None:
                    final[done] = carry_out[pick]
                out.memtype[done] = st.memtype[pick]
            cont = good & ~st.leaf
            table, carry = address, st.carry
            live, va, acc, prv, table, carry, pte = _keep(cont, live, va, acc, prv, table, carry, pte)
            if not live.size:
                return
        raise AssertionError("walk rules let a lane continue past the last level")

    def _step_columns(self, k: int, depth: int, pte: U64, acc: U8, prv: U8, carry: U64,
                      table: U64 | None = None, index: U64 | None = None) -> StepColumns:
        """`rules.step` on columns, judging each distinct entry once where that is cheap to see: lanes of one
        access, privilege and carry whose entries all agree in the judged bits (`WalkRules.judged_bits`: the
        leaves of a uniformly mapped range) share one verdict; lanes that all read one `table` (at `index`)
        take the verdicts of that table's entries (the upper levels of a bulk walk); and runs of neighbouring
        lanes alike in all four share their first lane's verdict (sorted or grouped addresses, such as a
        vector set's cases)."""
        region = self.rules.regime.regions[k]
        judged = pte & np.uint64(self._plans[k][depth][3])
        if pte.size and _uniform(acc) and _uniform(prv) and _uniform(carry):
            a, p, c = int(acc[0]), int(prv[0]), int(carry[0])
            if _uniform(judged):
                one = self._verdict((k, depth, int(judged[0]), a, p, c), region, depth, int(pte[0]))
                return StepColumns.filled(one, pte.shape)
            if table is not None and index is not None and _uniform(table) and \
                    region.fmt.levels[depth].entries * 8 <= pte.size:
                return self._table_verdicts(region, depth, pte, index, a, p, c)
        heads = _run_heads(pte.size // _RUN, judged, acc, prv, carry)
        if heads is not None:
            st = StepColumns.filled(self.rules.step(region, depth, pte[heads], acc[heads], prv[heads], carry[heads]),
                                    heads.shape)
            lengths = np.diff(heads, append=pte.size)
            return StepColumns(*(np.repeat(f, lengths) for f in st))
        return StepColumns.of(self.rules.step(region, depth, pte, acc, prv, carry))

    def _table_verdicts(self, region: Region, depth: int, pte: U64, index: U64, acc: int, prv: int,
                        carry: int) -> StepColumns:
        """`_step_columns` for lanes that all read one table at depth `depth`, at `index`: the rules judge
        each entry read once, and each lane takes its entry's verdict (every lane the same one, where the
        entries read all get the same)."""
        entries = region.fmt.levels[depth].entries
        used = np.zeros(entries, dtype=bool)
        used[index] = True
        read = np.zeros(entries, dtype=np.uint64)
        read[index] = pte
        n = int(used.sum())
        st = self.rules.step(region, depth, read[used], np.full(n, acc, dtype=np.uint8),
                             np.full(n, prv, dtype=np.uint8), np.full(n, carry, dtype=np.uint64))
        fields = [np.asarray(f) for f in StepColumns.filled(st, (n,))]
        if all(_uniform(f) for f in fields):
            return StepColumns(*(np.broadcast_to(f[0], pte.shape) for f in fields))
        by_entry = [np.zeros(entries, dtype=f.dtype) for f in fields]
        for column, f in zip(by_entry, fields, strict=True):
            column[used] = f
        return StepColumns(*(column[index] for column in by_entry))

    def mappings(self, start: int | None = None, end: int | None = None, region: int | None = None) -> Mappings:
        """The table as this walker's hardware reads it (the stage-1 table; `stage2.mappings()` lists stage
        2 alone): every leaf the rules accept for at least one access and privilege, and every leaf or
        table entry they reject for every access. Per row:
        - `perms`: the accesses that translate (`perm_bit`), the whole walk considered: an entry update
          hardware makes (`WalkRules.written`) must pass stage 2 as an implicit write, and the output
          address must be RAM (one stage: any byte of the leaf; a leaf only partly RAM is noted in
          `problems`) or pass stage 2 for that access (two stages: at the leaf's first byte; a leaf larger
          than a stage-2 page is noted);
        - `pa`: the address the walk computes at the leaf's own VA (a Svnapot PTE gives its 4 KiB within its
          64 KiB block, not its encoded PPN); for a rejected entry, the encoded address;
        - `memtype`: the memory type of the leaf's accesses (both stages'; NONE where no access translates);
        - `verdict`: 0, or the reason every access faults with; `verdict_stage` says who decided: 1 the
          stage-1 walk (or the RAM check of its output), 2 stage 2 on the output address, 3 stage 2 on the
          implicit write of the entry's update.
        Invalid entries (V=0) are not listed and rejected table entries are not followed. Tables are read
        as the walk reads them (through stage 2, as implicit reads, when there is one); a table that cannot
        be read, is reached again (a loop, another level) or is shared is reported in `problems` and `events`
        (`descent`; a shared table is listed under each of its entries). Entries that do not all read
        alike to the rules are judged in chunks, so the working memory beyond the result (about 50 bytes a
        row) is bounded. A regime with several regions lists the region numbered `region` (default: the only
        one)."""
        from . import judging  # judging builds on the walker: imported when first listed

        return judging.mappings(self, start, end, region)

    def translate(self, va: int, access: Access | str = Access.READ,
                  privilege: Privilege | str = Privilege.SUPERVISOR) -> Translation:
        """Translate one VA; the result names the PA or the exact fault and level, the effective permissions,
        the memory type and the syndrome."""
        va = args.address(va, "virtual address")
        acc = access if type(access) is Access else _one(Access, access)
        prv = privilege if type(privilege) is Privilege else _one(Privilege, privilege)
        t = self._walk_one(va, acc, prv)
        reason = _REASONS[t.reason]
        gpa = t.gpa if self.stage2 is not None else None
        if not reason:
            return _named(Translation, (va, acc, prv, t.pa, reason, t.level, None, t.pte, t.stage, gpa, False,
                                        t.perms, _MEMORY_TYPES[t.memtype], _NO_SYNDROME))
        syndrome = self.rules.syndrome(t, acc, prv, None if self.stage2 is None else self.stage2.rules)
        return Translation(va, acc, prv, None, reason, t.level, self.fault_kind(reason, t.stage), t.pte, t.stage,
                           gpa, bool(t.implicit), 0, MemoryType.NONE, {k: int(v) for k, v in syndrome.items()})

    def _walk_one(self, va: int, acc: int, prv: int, record: list[tuple[int, int, int, int]] | None = None) -> Lane:
        """`_walk` for one lane, on Python ints (`lanes`): the same rules, the same outcome column for
        column (tests/test_walker_lanes.py holds the two to each other), in microseconds. `record` collects
        (PA, entry, entry as hardware updates it) for each entry the walk uses that hardware writes back
        (`WalkRules.written`), stage 2's included."""
        regime, stage2 = self.rules.regime, self.stage2
        gpa = 0
        if not regime.regions:                                # translation off
            if regime.flat_bits is not None and va >> regime.flat_bits:
                return Lane(va, 0, regime.flat_refusal, 0, 0, 1, 0, 0, 0, 0, 0)
            pa, level, pte, carry, memtype = va, 0, 0, ALL_PERMS, int(MemoryType.DEFAULT)
        else:
            lane_bit = 3 * prv + acc
            k = regime.select(va, lane_bit)
            if k < 0:
                return Lane(va, 0, Reason.NON_CANONICAL, regime.regions[0].refusal_level, 0, 1, 0, 0, 0, 0, 0)
            region = regime.regions[k]
            if not (region.allowed >> lane_bit) & 1:          # an access the region refuses without a walk
                return Lane(va, 0, region.refused_with, region.refusal_level, 0, 1, 0, 0, 0, 0, 0)
            table, carry, pte = region.root, ALL_PERMS, 0
            implicit, verdicts = self._implicit, self._verdicts
            entry, registers = self._entries[k].fetch, region.root_entries
            for depth, (shift, mask, size, judged, huge, level, paddr) in enumerate(self._plans[k]):
                slot = fetch = table + ((va >> shift) & mask) * size
                if depth == 0 and registers is not None:      # the root's entries are registers (PAE)
                    raw: int | None = registers[(va >> shift) & mask]
                else:
                    if implicit is not None:                  # the table fetch is an implicit stage-2 read
                        gpa = slot
                        t2 = implicit._walk_one(slot, _READ, prv, record)
                        if t2.reason:
                            return Lane(va, 0, t2.reason, t2.level, t2.pte, 2, gpa, IMPLICIT_TABLE_READ, 0, 0,
                                        t2.rights)
                        fetch = t2.pa
                    raw = entry(fetch)
                if raw is None:
                    return Lane(va, 0, Reason.TABLE_OUTSIDE_MEMORY, level, pte, 1, gpa, 0, 0, 0, carry & ALL_PERMS)
                pte = raw
                key = (k, depth, pte & judged, acc, prv, carry)        # the rules' verdict, remembered
                st = verdicts.get(key) or self._verdict(key, region, depth, pte)
                if st.reason:
                    return Lane(va, 0, st.reason, level, pte, 1, gpa, 0, 0, 0, st.carry & ALL_PERMS)
                carry = st.carry
                if record is not None and self.rules.written(region, depth, pte, st.leaf, acc) != pte:
                    record.append((fetch, pte, self.rules.written(region, depth, pte, st.leaf, acc), size))
                if implicit is not None:                      # an entry update is an implicit stage-2 write
                    needs = [self.rules.written(region, depth, pte, st.leaf, a) != pte for a in Access]
                    if any(needs):
                        t2 = implicit._walk_one(slot, _WRITE, prv, record)
                        if t2.reason and needs[acc]:
                            return Lane(va, 0, t2.reason, t2.level, t2.pte, 2, slot, IMPLICIT_ENTRY_UPDATE, 0, 0,
                                        t2.rights)
                        if t2.reason:
                            for a in Access:
                                if needs[a]:
                                    carry &= ~_EITHER_PRIVILEGE[a]
                table = paddr(pte, huge)
                if st.leaf:
                    pa, memtype = _with_offset(table, st.offset, va), st.memtype
                    break
            else:
                raise AssertionError("walk rules let a lane continue past the last level")
        if stage2 is not None:                        # two stages: the final GPA, with the original access
            t2 = stage2._walk_one(pa, acc, self.rules.stage2_privilege(prv, carry), record)
            if t2.reason:
                return Lane(va, t2.pa, t2.reason, t2.level, t2.pte, 2, pa, 0, 0, 0, t2.rights)
            rights = carry & t2.perms & ALL_PERMS
            return _named(Lane, (va, t2.pa, _OK, level, pte, 1, pa, 0, rights,
                                 stage2.rules.combine(memtype, t2.memtype, t2.pte), rights))
        if self.ram_only and not self.mem.holds(pa, 1):
            return Lane(va, pa, Reason.PA_OUTSIDE_MEMORY, level, pte, 1, gpa, 0, 0, 0, carry & ALL_PERMS)
        return _named(Lane, (va, pa, _OK, level, pte, 1, gpa, 0, carry & ALL_PERMS, memtype, carry & ALL_PERMS))

    def entry_updates(self, va: int, access: Access | str = Access.READ,
                      privilege: Privilege | str = Privilege.SUPERVISOR, *, apply: bool = False) -> tuple[
            EntryUpdate, ...]:
        """The entry writes hardware makes when it translates this access (`WalkRules.written`: x86's A in
        every entry used and D in the page on a write, RISC-V Svadu's, EPT's with EPTP's A/D enable), stage
        2's included: one per entry, in the order the walk first uses them, with the entry before and after.
        A translation that faults reports none (hardware may set A in the entries above a fault, but need
        not). The walk itself never writes; with `apply`, the updates are written to physical memory."""
        va = args.address(va, "virtual address")
        record: list[tuple[int, int, int, int]] = []
        t = self._walk_one(va, _one(Access, access), _one(Privilege, privilege), record)
        if t.reason:
            return ()
        merged: dict[int, EntryUpdate] = {}
        sizes: dict[int, int] = {}                    # each entry's width (`PagingFormat.entry_size`)
        for pa, old, new, size in record:             # an entry used twice (stage 2): one write of both
            first = merged.get(pa)
            merged[pa] = EntryUpdate(pa, old, new) if first is None else first._replace(new=first.new | new)
            sizes[pa] = size
        for update in merged.values() if apply else ():
            self.mem.entries(sizes[update.pa]).write(update.pa, update.new)
        return tuple(merged.values())

    def _verdict(self, key: tuple[int, int, int, int, int, int], region: Region, depth: int, pte: int) -> Step:
        """`rules.step` for one lane, remembered under `key`: (region number, depth, the entry bits the rules
        read (`WalkRules.judged_bits`), access, privilege, carry). The entries of a table mostly share
        those bits, so walks mostly reuse verdicts; the memory is bounded (`_VERDICTS`)."""
        st = self._verdicts.get(key)
        if st is None:
            if len(self._verdicts) >= _VERDICTS:
                self._verdicts.clear()
            _, _, _, acc, prv, carry = key
            st = self._verdicts[key] = self.rules.step(region, depth, pte, acc, prv, carry)
        return st
