"""The hardware walker: translate addresses the way the MMU does, faults included.

The walker owns the loop that every architecture shares — check the VA, fetch the entry of each level from
physical memory (a fetch outside RAM is the architecture's access/abort fault), let the architecture's
`WalkRules` judge the entry (fault, next table, or leaf with its output address), and finally check that
the output address is RAM. It runs on many addresses at once with numpy: `translate_many` is the real
implementation and `translate` is one lane of it, so there is one code path for every rule.

Two-stage translation (a hypervisor's guest): give the first-stage walker a `stage2` walker. Then every
first-stage table fetch is itself translated by stage 2 (as an implicit read, with the rules
`stage2.rules.implicit()` gives), and so is the final
guest-physical address (with the original access); a stage-2 fault stops the walk with `stage == 2`, the
stage-2 level and reason, and the guest-physical address that faulted in `gpa`. Where the first stage's
hardware would write an entry back (`WalkRules.writes_back`: RISC-V Svadu A/D updates), that entry's
guest-physical address is also checked by stage 2 as an implicit write, before the final address.

Translation is side-effect free: where hardware would set A/D bits (RISC-V Svadu) the walker succeeds
without writing them.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from typing import Any, Protocol, Self, cast

import numpy as np
import numpy.typing as npt

from . import args
from .descent import Descent, PhysicalReader, table_slots
from .errors import InvalidArgument, InvalidArgumentType
from .flags import human_size
from .format import PagingFormat
from .mappings import Mappings
from .physmem import PhysMem

U64 = npt.NDArray[np.uint64]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]


class _Named(enum.IntEnum):
    """An enum whose members are also named by the manuals' synonyms (`SYNONYMS`), case-insensitively."""

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | int) -> Self:
        """The member named `value` (its name or a synonym, any case), or the member itself."""
        if isinstance(value, cls):
            return value
        return cast(Self, args.choice(value, cls.__name__.lower(), _names(cls)))

    @classmethod
    def _synonyms(cls) -> dict[str, str]:
        return {}


@functools.cache
def _names(kind: type[_Named]) -> dict[str, _Named]:
    """Every name (labels and synonyms) of a `_Named` enum's members."""
    return {m.label: m for m in kind} | {k: kind[v] for k, v in kind._synonyms().items()}


class Access(_Named):
    """The kind of memory access being translated: "read" (also "load", "r"), "write" ("store", "w") or
    "execute" ("fetch", "instruction", "x")."""

    READ = 0
    WRITE = 1
    EXECUTE = 2

    @classmethod
    def _synonyms(cls) -> dict[str, str]:
        return {"load": "READ", "r": "READ", "store": "WRITE", "w": "WRITE", "fetch": "EXECUTE",
                "instruction": "EXECUTE", "x": "EXECUTE"}


class Privilege(_Named):
    """The privilege of the access (RISC-V S/U, x86 CPL 0/3, AArch64 EL1/EL0): "supervisor" (also "s") or
    "user" ("u")."""

    SUPERVISOR = 0
    USER = 1

    @classmethod
    def _synonyms(cls) -> dict[str, str]:
        return {"s": "SUPERVISOR", "u": "USER"}


def perm_bit(access: Access, privilege: Privilege) -> int:
    """The bit of an effective-permissions mask (`Mappings.perms`) that says `access` at `privilege`
    translates: bit 3 * privilege + access (supervisor r w x in bits 0-2, user r w x in bits 3-5)."""
    return 1 << (3 * int(privilege) + int(access))


class Reason(enum.IntEnum):
    """Why a walk stopped (OK for a translation). Each architecture uses a subset."""

    OK = 0
    NON_CANONICAL = 1          # VA outside the format's canonical range
    TABLE_OUTSIDE_MEMORY = 2   # an entry fetch hit no RAM
    INVALID = 3                # entry not valid/present
    W_WITHOUT_R = 4            # RISC-V R=0 W=1 encoding
    RESERVED = 5               # reserved bits or encodings set
    NON_LEAF_AT_LAST_LEVEL = 6
    PERMISSION = 7
    MISALIGNED_SUPERPAGE = 8
    ACCESSED_DIRTY = 9         # A=0, or D=0 on a write, where hardware faults instead of updating
    PA_OUTSIDE_MEMORY = 10     # the final access hits no RAM

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


class FaultKind(enum.Enum):
    """The class of exception a fault raises, named as the vectors schema writes it."""

    PAGE_FAULT = "page-fault"
    ACCESS_FAULT = "access-fault"
    GUEST_PAGE_FAULT = "guest-page-fault"      # a page fault of the hypervisor's G-stage (RISC-V H)


class WalkRules(Protocol):
    """What an architecture contributes to a walk (see arch/*/walk.py)."""

    fmt: PagingFormat | None       # None: translation off (RISC-V Bare), PA = VA
    root: int

    def step(self, depth: int, pte: U64, va: U64, access: U8, priv: U8) -> tuple[U8, Bool, U64]:
        """Judge the entries fetched at `depth` for these lanes: (reason, is_leaf, address) where address
        is the next table for non-leaf lanes and the final PA for leaf lanes; reason != OK stops the walk."""
        ...

    def fault_kind(self, reason: Reason) -> FaultKind:
        ...

    def writes_back(self, pte: U64, leaf: Bool, access: U8) -> Bool:
        """The lanes (whose entries `step` accepted) where hardware updates the entry in memory during
        the walk, e.g. setting Accessed/Dirty bits."""
        ...

    def implicit(self) -> WalkRules:
        """The rules for the implicit accesses another stage's walk makes through this one (a stage-1 table
        read, or its entry update): for RISC-V, the G-stage without MXR, which affects explicit loads only."""
        ...


@dataclass(frozen=True)
class Translation:
    """The outcome of one translation: `pa` when `reason` is OK, else the fault and the level it hit."""

    va: int
    access: Access
    privilege: Privilege
    pa: int | None
    reason: Reason
    level: int
    fault: FaultKind | None
    pte: int
    stage: int = 1           # which stage decided (2: the stage-2 walk of a two-stage translation)
    gpa: int | None = None   # two-stage only: the guest-physical address stage 2 translated last
    implicit: bool = False   # a stage-2 fault on a stage-1 table access, not on the final address

    @property
    def ok(self) -> bool:
        return self.reason == Reason.OK


@dataclass(frozen=True)
class Translations:
    """Many translations as columns: `pa` is meaningful where `reason == 0`; `pte` is the last entry the
    walk read (the leaf, or the entry it stopped at; 0 where no entry was read)."""

    va: U64
    pa: U64
    reason: U8
    level: npt.NDArray[np.int8]
    pte: U64
    stage: U8                # 1, or 2 where the stage-2 walk decided
    gpa: U64                 # two-stage: the GPA stage 2 translated last (the PTE address or the final GPA)
    implicit: Bool           # stage-2 faults on a stage-1 table access (RISC-V's implicit access, AArch64's
                             # S1PTW, the EPT exit qualification's bit 8 = 0), not on the final address

    @property
    def ok(self) -> Bool:
        out: Bool = self.reason == Reason.OK
        return out

    def __len__(self) -> int:
        return int(self.va.shape[0])


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
    return walker.rules.fmt.page_size if walker.rules.fmt is not None else args.ADDR_LIMIT


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


def entry_verdicts(rules: WalkRules, raw: int) -> list[tuple[int, bool, int, Reason]]:
    """What the walk rules make of one raw entry at each level of their format: (the manual's level number,
    whether it is a leaf there, its effective-permissions mask, and the reason every access faults, or OK).
    No memory is read: the output address is not checked."""
    fmt = rules.fmt
    if fmt is None:
        raise InvalidArgument("translation is off (Bare): there are no entries")
    n = len(_COMBOS)
    out = []
    for depth, lv in enumerate(fmt.levels):
        why, leaf, _ = rules.step(depth, np.full(n, args.address(raw, "entry"), dtype=np.uint64),
                                  np.zeros(n, dtype=np.uint64), _COMBO_ACCESS, _COMBO_PRIVILEGE)
        bits, verdict, _ = _summary(why, np.ones(n, dtype=np.uint8))
        out.append((lv.arch_level, bool(leaf[0]), int(bits[0]), Reason(int(verdict[0]))))
    return out


def _record(out: Translations, lanes: npt.NDArray[np.intp], gpas: U64, t2: Translations, implicit: bool) -> None:
    """Note stage 2's faults (`t2`, one per lane) in `out`, and the GPA each lane's stage 2 translated."""
    bad = t2.reason != Reason.OK
    hit = lanes[bad]
    out.reason[hit], out.level[hit], out.pte[hit] = t2.reason[bad], t2.level[bad], t2.pte[bad]
    out.stage[hit] = 2
    out.implicit[hit] = implicit
    out.gpa[lanes] = gpas


def _one(kind: type[_Named], value: object) -> Any:
    """One `kind` member from a name, a member or its integer value."""
    if isinstance(value, str | enum.Enum):
        return kind.parse(value)  # type: ignore[arg-type]
    number = args.integer(value, kind.__name__.lower(), 0, len(kind))
    return kind(number)


class Walker:
    """Translates virtual addresses through `rules` over the physical memory `mem`."""

    def __init__(self, mem: PhysMem, rules: WalkRules, stage2: Walker | None = None) -> None:
        if not isinstance(mem, PhysMem) or not (stage2 is None or isinstance(stage2, Walker)):
            raise InvalidArgumentType("a walker needs a PhysMem (and, for two stages, a stage-2 Walker)")
        if not all(callable(getattr(rules, m, None)) for m in ("step", "fault_kind", "writes_back", "implicit")):
            raise InvalidArgumentType(f"{type(rules).__name__} is not a WalkRules (step, fault_kind, ...)")
        self.mem = mem
        self.rules = rules
        self.stage2 = stage2
        self._implicit = None if stage2 is None else Walker(stage2.mem, stage2.rules.implicit())

    def fault_kind(self, reason: Reason, stage: int = 1) -> FaultKind:
        """The exception class of a fault that `stage` (1, or 2 for the stage-2 walk) stopped with."""
        if stage == 2 and self.stage2 is not None:
            return self.stage2.rules.fault_kind(reason)
        return self.rules.fault_kind(reason)

    def _stage2(self, lanes: npt.NDArray[np.intp], gpas: U64, acc: U8, out: Translations, implicit: bool) -> U64:
        """Translate `gpas` (for `lanes`) through stage 2; record its faults in `out` (`implicit`: these are
        stage-1 table accesses); return the HPAs (meaningful where the lane did not fault)."""
        stage2 = self._implicit if implicit else self.stage2
        assert stage2 is not None
        t2 = stage2._walk(gpas, acc, np.full(gpas.shape, Privilege.USER, dtype=np.uint8))
        _record(out, lanes, gpas, t2, implicit)
        return t2.pa

    def _updates(self, accepted: Bool, pte: U64, leaf: Bool, acc: U8, slot: U64) -> tuple[npt.NDArray[np.intp],
                                                                                       Translations]:
        """The lanes whose entry (accepted by `step`) hardware updates during the walk, and stage 2's
        outcome for that update: an implicit write of the entry at `slot` (`WalkRules.writes_back`)."""
        assert self._implicit is not None
        update = np.flatnonzero(accepted & self.rules.writes_back(pte, leaf, acc))
        return update, self._implicit._walk(slot[update], np.full(update.shape, Access.WRITE, dtype=np.uint8),
                                            np.full(update.shape, Privilege.USER, dtype=np.uint8))

    def translate_many(self, vas: npt.ArrayLike, access: Access | str | npt.ArrayLike = Access.READ,
                       privilege: Privilege | str | npt.ArrayLike = Privilege.SUPERVISOR) -> Translations:
        """Translate every VA (with one access/privilege, or one per lane). VAs are integers (an integer
        array or a list of ints); floats and negative values are refused, never truncated."""
        va = np.ascontiguousarray(args.u64_array(vas, "virtual addresses").reshape(-1))
        n = va.shape[0]
        return self._walk(va, _lanes(access, Access, n), _lanes(privilege, Privilege, n))

    def _walk(self, va: U64, acc: U8, prv: U8) -> Translations:
        """`translate_many` on arrays the walker has already checked (or built itself)."""
        n = va.shape[0]
        out = Translations(va, np.zeros(n, dtype=np.uint64), np.zeros(n, dtype=np.uint8),
                           np.zeros(n, dtype=np.int8), np.zeros(n, dtype=np.uint64), np.ones(n, dtype=np.uint8),
                           np.zeros(n, dtype=np.uint64), np.zeros(n, dtype=bool))
        reason, level, last_pte, pa = out.reason, out.level, out.pte, out.pa
        fmt = self.rules.fmt
        if fmt is None:
            pa[:] = va
        else:
            top = fmt.levels[0].arch_level
            level[:] = top
            reason[~fmt.canonical_np(va)] = Reason.NON_CANONICAL
            live = np.flatnonzero(reason == 0)
            table = np.full(live.shape, self.rules.root, dtype=np.uint64)
            for depth, lv in enumerate(fmt.levels):
                if live.size == 0:
                    break
                level[live] = lv.arch_level
                slot = table + fmt.index_np(va[live], depth) * np.uint64(fmt.entry_size)
                fetch = slot
                if self.stage2 is not None:           # the table fetch is an implicit stage-2 read
                    hpa = self._stage2(live, slot, np.full(live.shape, Access.READ, dtype=np.uint8), out,
                                       True)
                    fine = reason[live] == Reason.OK
                    live, slot, fetch = live[fine], slot[fine], hpa[fine]
                inmem = self.mem.contains_np(fetch, fmt.entry_size)
                reason[live[~inmem]] = Reason.TABLE_OUTSIDE_MEMORY
                live, slot, fetch = live[inmem], slot[inmem], fetch[inmem]
                pte = self.mem.read_u64_np(fetch)
                last_pte[live] = pte
                why, leaf, addr = self.rules.step(depth, pte, va[live], acc[live], prv[live])
                reason[live] = why
                good = why == Reason.OK
                if self.stage2 is not None:           # an entry update is an implicit stage-2 write
                    update, t2 = self._updates(good, pte, leaf, acc[live], slot)
                    if update.size:
                        _record(out, live[update], slot[update], t2, implicit=True)
                        good = reason[live] == Reason.OK
                done = good & leaf
                pa[live[done]] = addr[done]
                cont = good & ~leaf
                live, table = live[cont], addr[cont]
            if live.size:
                raise AssertionError("walk rules let a lane continue past the last level")
        if self.stage2 is not None:                   # the final GPA, with the original access
            lanes = np.flatnonzero(reason == Reason.OK)
            pa[lanes] = self._stage2(lanes, pa[lanes].copy(), acc[lanes], out, False)
        else:
            outside = (reason == Reason.OK) & ~self.mem.contains_np(pa, 1)
            reason[outside] = Reason.PA_OUTSIDE_MEMORY
        return out

    def mappings(self, start: int | None = None, end: int | None = None) -> Mappings:
        """The table as this walker's hardware reads it (the stage-1 table; `stage2.mappings()` lists stage
        2 alone): every leaf the rules accept for at least one access and privilege, and every leaf or
        table entry they reject for every access. Per row:
        - `perms`: the accesses that translate (`perm_bit`), the whole walk considered: an entry update
          hardware makes (`WalkRules.writes_back`) must pass stage 2 as an implicit write, and the output
          address must be RAM (one stage: any byte of the leaf; a leaf only partly RAM is noted in
          `problems`) or pass stage 2 for that access (two stages: at the leaf's first byte; a leaf larger
          than a stage-2 page is noted);
        - `pa`: the address the walk computes at the leaf's own VA (a Svnapot PTE gives its 4 KiB within its
          64 KiB block, not its encoded PPN); for a rejected entry, the encoded address;
        - `verdict`: 0, or the reason every access faults with; `verdict_stage` says who decided: 1 the
          stage-1 walk (or the RAM check of its output), 2 stage 2 on the output address, 3 stage 2 on the
          implicit write of the entry's update.
        Invalid entries (V=0) are not listed and rejected table entries are not followed. Tables are read
        as the walk reads them (through stage 2, as implicit reads, when there is one); a table that cannot
        be read, or is reached twice, is reported in `problems` (`descent`). Entries are judged in chunks of
        `_CHUNK`, so the working memory beyond the result (about 50 bytes a row) is bounded."""
        rules, fmt = self.rules, self.rules.fmt
        if fmt is None:
            raise InvalidArgument("translation is off (Bare): there is no table to list")
        reader = PhysicalReader(self.mem, fmt.entry_size) if self._implicit is None else \
            _StageTwoReader(self._implicit, fmt.entry_size)
        descent = Descent(fmt, rules.root, reader, start, end)
        parts: list[Mappings] = []
        for e in descent:
            pointer = np.zeros(e.raw.shape, dtype=bool)
            target = np.zeros(e.raw.shape, dtype=np.uint64)
            for lo in range(0, e.raw.shape[0], _CHUNK):
                part = slice(lo, lo + _CHUNK)
                rows, pointer[part], target[part] = self._judge(e.depth, e.raw[part], e.va[part], e.slot[part],
                                                                descent.problems)
                if rows is not None:
                    parts.append(rows)
            descent.descend(pointer, target[pointer])
        return Mappings.concat(fmt, parts, descent.problems, hardware=True)

    def _judge(self, depth: int, raw: U64, va: U64, slot: U64, notes: list[str]) -> tuple[Mappings | None, Bool,
                                                                                          U64]:
        """`mappings` for some entries of one level: the rows to list, which entries point at tables, and
        the addresses they point at."""
        rules, fmt = self.rules, self.rules.fmt
        assert fmt is not None
        n, huge, span = raw.shape[0], depth != fmt.depth_count - 1, fmt.levels[depth].span
        acc, prv = np.repeat(_COMBO_ACCESS, n), np.repeat(_COMBO_PRIVILEGE, n)
        pte, lane_va = np.tile(raw, len(_COMBOS)), np.tile(va, len(_COMBOS))
        why, leaf, addr = rules.step(depth, pte, lane_va, acc, prv)
        present = why[:n] != Reason.INVALID                 # V=1: listed whatever later checks say
        stage: U8 = np.ones(why.shape, dtype=np.uint8)
        if self._implicit is not None:              # an entry update must pass stage 2 as an implicit write
            update, t2 = self._updates(why == Reason.OK, pte, leaf, acc, np.tile(slot, len(_COMBOS)))
            why[update], stage[update] = t2.reason, np.where(t2.reason != Reason.OK, 3, 1)
        final = np.flatnonzero((why == Reason.OK) & leaf)   # the output address, as the access makes it
        if self.stage2 is None:
            ram = self.mem.touches_np(addr[final], span)
            why[final[~ram]] = Reason.PA_OUTSIDE_MEMORY
            whole = self.mem.contains_np(addr[final[ram]], span)
            for k in np.unique(final[ram][~whole] % n).tolist():
                notes.append(f"the {human_size(span)} leaf at VA {int(va[k]):#x} maps [{int(addr[k]):#x}, "
                             f"{int(addr[k]) + span:#x}), of which only part is RAM")
        else:                                       # stage 2 judges the output address at its first byte
            t2 = self.stage2._walk(addr[final], acc[final], np.full(final.shape, Privilege.USER, dtype=np.uint8))
            why[final], stage[final] = t2.reason, np.where(t2.reason != Reason.OK, 2, 1)
            if span > _page_size(self.stage2):
                for k in np.unique(final % n).tolist():
                    notes.append(f"the {human_size(span)} leaf at VA {int(va[k]):#x} spans many stage-2 pages: "
                                 "it is judged at its first byte")
        leaf, addr = leaf[:n], addr[:n]
        bits, verdict, where = _summary(why, stage)
        usable = verdict == 0
        listed = (leaf | ~usable) & present
        rows = None
        if np.any(listed):
            r = raw[listed]
            rows = Mappings(fmt, va[listed], np.where(usable[listed], addr[listed], fmt.codec.paddr_np(r, huge)),
                            np.full(r.shape, span, dtype=np.uint64), fmt.codec.flags_np(r, huge),
                            np.full(r.shape, depth, dtype=np.int8), r, slot[listed], perms=bits[listed],
                            verdict=verdict[listed], verdict_stage=where[listed])
        pointer = ~leaf & usable
        return rows, pointer, addr

    def translate(self, va: int, access: Access | str = Access.READ,
                  privilege: Privilege | str = Privilege.SUPERVISOR) -> Translation:
        """Translate one VA; the result names the PA or the exact fault and level."""
        va = args.address(va, "virtual address")
        acc, prv = _one(Access, access), _one(Privilege, privilege)
        t = self._walk(np.array([va], dtype=np.uint64), np.array([acc], dtype=np.uint8),
                       np.array([prv], dtype=np.uint8))
        reason = Reason(int(t.reason[0]))
        stage = int(t.stage[0])
        return Translation(va, acc, prv, int(t.pa[0]) if reason == Reason.OK else None, reason,
                           int(t.level[0]), None if reason == Reason.OK else self.fault_kind(reason, stage),
                           int(t.pte[0]), stage, int(t.gpa[0]) if self.stage2 is not None else None,
                           bool(t.implicit[0]))


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
        t = self.stage2.translate_many(gpas, Access.READ, Privilege.USER)
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
        return np.ones(tables.shape, dtype=bool), self.stage2.mem.read_u64_np(
            table_slots(where, count, self.entry_size)), []
