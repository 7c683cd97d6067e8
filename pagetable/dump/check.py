"""`pagetable check`: findings about the page tables of a memory image, as the hardware reads them.

Every rule works on the columns of `Walker.mappings` (the hardware view: effective permissions of the whole
walk, the verdict of each entry, the memory type) and on its structured table events (`descent.TableEvent`),
vectorised over the rows; findings on contiguous rows that say the same thing are merged into one finding
with the VA range they cover (a 1 GiB W+X direct map is one finding). The rules (docs/dump-check.md says
why each has its severity and what it cannot know):

- `wx` (warning): a leaf some privilege can write and some privilege can execute (Linux's
  CONFIG_DEBUG_WX check, arch/x86/mm/dump_pagetables.c `note_wx`, arm64's `ptdump_check_wx`);
- `user-kernel-half` (error): a leaf user mode can access in the kernel half (VA bit 63 set: x86's upper
  canonical half, RISC-V's upper half, AArch64's TTBR1 region);
- `rejected-entry` (error): an entry every access faults on with a reason of the entry itself (reserved
  bits, misaligned huge page, W without R, a non-leaf at the last level, ...: `Reason`);
- `outside-memory` (error): a leaf whose output is not in the image's RAM and whose memory type does not say
  device memory; `table-outside-memory` (error): a table pointer to no RAM (or that stage 2 refuses);
- `mmio` (info) / `mmio-normal` (warning): a leaf outside the image's RAM mapped as device or uncached
  memory (a device's registers, presumably) / as normal cacheable memory (Intel SDM vol. 3A 11.3: WB, WT and
  WP allow speculative reads; Arm ARM B2.7: Normal memory allows speculative accesses);
- `shared-table` (info; warning when some aliases are past the descent's bound and not listed),
  `table-at-two-levels` (warning), `table-loop` (error): from the descent's events;
- `unreachable` (warning): a listed leaf the regime never translates (its VA is not canonical for its
  region, or the region refuses every access: AArch64 TCR_EL1.EPDn).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from ..descent import TableEvent
from ..listing import permissions
from ..mappings import Mappings
from ..translation import PERMS, Access, MemoryType, Privilege, Reason, StepColumns, perm_bit
from ..walker import Walker
from .target import Target

__all__ = ["RULES", "SEVERITIES", "Finding", "check", "finding_json", "finding_line", "summary_line"]

U64 = npt.NDArray[np.uint64]
Bool = npt.NDArray[np.bool_]

SEVERITIES: Final = ("error", "warning", "info")
RULES: Final = {
    "wx": "warning", "user-kernel-half": "error", "rejected-entry": "error", "outside-memory": "warning",
    "table-outside-memory": "error", "mmio": "info", "mmio-normal": "warning", "shared-table": "info",
    "table-at-two-levels": "warning", "table-loop": "error", "unreachable": "warning",
}
"""Every rule and its severity (`shared-table` is a warning where aliases are left out)."""

_WRITE = perm_bit(Access.WRITE, Privilege.SUPERVISOR) | perm_bit(Access.WRITE, Privilege.USER)
_EXECUTE = perm_bit(Access.EXECUTE, Privilege.SUPERVISOR) | perm_bit(Access.EXECUTE, Privilege.USER)
_USER = sum(perm_bit(a, Privilege.USER) for a in Access)
_CACHEABLE = np.array([MemoryType.WB, MemoryType.WT, MemoryType.WP, MemoryType.NORMAL_WB, MemoryType.NORMAL_WT,
                       MemoryType.NORMAL_MIXED], dtype=np.uint8)
_DEVICE = np.array([MemoryType.UC, MemoryType.UC_MINUS, MemoryType.WC, MemoryType.DEVICE_NGNRNE,
                    MemoryType.DEVICE_NGNRE, MemoryType.DEVICE_NGRE, MemoryType.DEVICE_GRE, MemoryType.NORMAL_NC,
                    MemoryType.RISCV_IO, MemoryType.RISCV_NC], dtype=np.uint8)
_EVENT_RULES: Final = {"shared": "shared-table", "other-level": "table-at-two-levels", "loop": "table-loop",
                       "unreadable": "table-outside-memory"}


@dataclass(frozen=True)
class Finding:
    """One finding: `rule` (a key of `RULES`) at `severity`, in region `region` (the register that names
    its root, lower case), for the VAs [start, end) (`count` entries, merged where contiguous), at the
    manual's `level` with the first entry's address `slot` and raw value `raw` (None where not one entry's:
    a table event has no raw value)."""

    severity: str
    rule: str
    region: str
    start: int
    end: int
    level: int | None
    slot: int | None
    raw: int | None
    message: str
    count: int = 1


def check(target: Target | Walker) -> list[Finding]:
    """The findings of every region of the target's (or walker's) regime, sorted by VA; with two stages,
    the stage-1 regions (as the whole walk reads them) and then stage 2's own table (its VAs are the guest's
    physical addresses)."""
    walker = target.walker if isinstance(target, Target) else target
    found: list[Finding] = []
    for w in (walker, walker.stage2) if walker.stage2 is not None else (walker,):
        if not w.rules.regime.translates:           # Bare: no table to check
            continue
        for k, region in enumerate(w.rules.regime.regions):
            m = w.mappings(region=k)
            found.extend(_rows_findings(w, k, m))
            found.extend(_event_finding(region.name.lower(), e) for e in m.events)
    rank = {s: n for n, s in enumerate(SEVERITIES)}
    return sorted(found, key=lambda f: (f.start, rank[f.severity], f.rule, f.end))


def _rows_findings(walker: Walker, k: int, m: Mappings) -> Iterator[Finding]:
    """The findings of the listed rows of region `k`: judged per run of rows that every rule reads alike
    (`_Units.runs`), so a uniformly mapped range costs a few passes over its columns."""
    assert m.perms is not None and m.verdict is not None
    region = walker.rules.regime.regions[k]
    name, u = region.name.lower(), _Units.runs(m)
    _, first = walker.rules.regime.partition_np(u.va)
    _, last = walker.rules.regime.partition_np(u.end - np.uint64(1))
    reached = np.zeros(u.va.shape, dtype=bool)
    if region.allowed:                                  # a canonical range is an interval: both ends tell
        reached[np.intersect1d(first[k], last[k])] = True
    why = "the region refuses every access" if not region.allowed else "not canonical"
    mapped = (u.verdict == 0) | (u.verdict == Reason.PA_OUTSIDE_MEMORY)      # leaves the entries let through
    yield from _merged(m, u, mapped & ~reached, np.zeros(u.va.shape, dtype=np.uint64), "unreachable",
                       name, lambda r: f"mapped, but the regime never translates these VAs ({why})")
    usable = (u.verdict == 0) & reached                 # what an access can use
    wx = usable & ((u.perms & _WRITE) != 0) & ((u.perms & _EXECUTE) != 0)
    yield from _merged(m, u, wx, u.perms, "wx", name, lambda r: f"writable and executable ({permissions(r.perms)})")
    user = usable & ((u.perms & _USER) != 0) & ((u.va >> np.uint64(63)) != 0)
    yield from _merged(m, u, user, u.perms, "user-kernel-half", name,
                       lambda r: f"user-accessible in the kernel half ({permissions(r.perms)})")
    entry = (u.verdict != 0) & (u.verdict != Reason.PA_OUTSIDE_MEMORY)
    yield from _merged(m, u, entry, u.verdict.astype(np.uint64) << np.uint64(8) | u.depth.astype(np.uint64),
                       "rejected-entry", name,
                       lambda r: f"the hardware rejects the entry: {Reason(r.verdict).label} (every access faults)")
    rows = _outside_rows(walker, m, u, reached)
    if rows.size:                                       # judged per row
        assert m.memtype is not None
        memtype = (_leaf_memtypes(walker, k, m, rows) if walker.ram_only else m.memtype[rows]).astype(np.uint64)
        kind = np.where(np.isin(memtype, _CACHEABLE), 3, np.where(np.isin(memtype, _DEVICE), 2, 1))
        v = _Units.rows(m, rows)
        for n, rule, what in ((1, "outside-memory", "maps no RAM of the image"),
                              (2, "mmio", "maps no RAM of the image, as device memory (MMIO, presumably)"),
                              (3, "mmio-normal", "maps no RAM of the image (MMIO?) as normal cacheable memory")):
            yield from _merged(m, v, kind == n, memtype, rule, name, _outside_message(what, memtype))


def _outside_rows(walker: Walker, m: Mappings, u: _Units, reached: Bool) -> npt.NDArray[np.intp]:
    """The rows of reachable leaves that map no RAM of the image: refused for it (a walker whose final
    access must be RAM), or translated to a hole (`Walker.beyond_ram`, as the dump commands walk)."""
    unit_rows = u.last - u.first + 1                     # the units cover every row
    refused = np.flatnonzero(np.repeat((u.verdict == Reason.PA_OUTSIDE_MEMORY) & reached, unit_rows))
    if walker.ram_only:
        return refused
    rows = np.flatnonzero(np.repeat((u.verdict == 0) & reached, unit_rows))
    hole = np.zeros(rows.shape, dtype=bool)
    for size in np.unique(m.size[rows]).tolist():       # a few page sizes
        pick = m.size[rows] == size
        hole[pick] = ~walker.mem.touches_np(m.pa[rows[pick]], int(size))
    return np.union1d(refused, rows[hole]).astype(np.intp)


@dataclass(frozen=True)
class _Units:
    """Listed rows in units the rules judge: rows [first, last] of the listing, contiguous in VA, covering
    [va, end), with the permissions, verdict and depth of each unit's first row."""

    first: npt.NDArray[np.intp]
    last: npt.NDArray[np.intp]
    va: U64
    end: U64
    perms: npt.NDArray[np.uint8]
    verdict: npt.NDArray[np.uint8]
    depth: npt.NDArray[np.int8]

    @classmethod
    def runs(cls, m: Mappings) -> _Units:
        """The runs of rows contiguous in VA and equal in permissions, verdict, depth and memory type, not
        crossing VA bit 63: every rule says the same of each of their rows."""
        assert m.perms is not None and m.verdict is not None and m.memtype is not None
        if not len(m):
            return cls.rows(m, np.zeros(0, dtype=np.intp))
        breaks = m.va[1:] != m.va[:-1] + m.size[:-1]
        for column in (m.perms, m.verdict, m.depth, m.memtype, m.va >> np.uint64(63)):
            breaks |= column[1:] != column[:-1]
        first = np.flatnonzero(np.concatenate(([True], breaks)))
        last = np.concatenate((first[1:], [len(m)])) - 1
        return cls(first, last, m.va[first], m.va[last] + m.size[last], m.perms[first], m.verdict[first],
                   m.depth[first])

    @classmethod
    def rows(cls, m: Mappings, rows: npt.NDArray[np.intp]) -> _Units:
        """The rows `rows`, one unit each."""
        assert m.perms is not None and m.verdict is not None
        return cls(rows, rows, m.va[rows], m.va[rows] + m.size[rows], m.perms[rows], m.verdict[rows], m.depth[rows])


def _outside_message(what: str, types: U64) -> Callable[[_Run], str]:
    """The message of a run of leaves outside RAM: `what`, the PA range and the memory type."""
    labels = {t.value: t.label for t in MemoryType}
    return lambda r: f"{what} ([{r.pa:#x}, {r.pa_end:#x}), {labels[int(types[r.unit])]})"


@dataclass(frozen=True)
class _Run:
    """What the message of a merged finding may say: its first unit, that unit's permissions and
    verdict, and the PA range of the run."""

    unit: int
    perms: int
    verdict: int
    pa: int
    pa_end: int


def _merged(m: Mappings, u: _Units, mask: Bool, key: U64 | npt.NDArray[np.uint8], rule: str, region: str,
            message: Callable[[_Run], str]) -> Iterator[Finding]:
    """One finding per run of units where `mask` holds that are contiguous in VA and equal in `key`."""
    units = np.flatnonzero(mask)
    if not units.size:
        return
    keys = key[units]
    joins = (u.va[units][1:] == u.end[units][:-1]) & (keys[1:] == keys[:-1])
    heads = np.flatnonzero(np.concatenate(([True], ~joins)))
    tails = np.concatenate((heads[1:], [units.size])) - 1
    rows = u.last - u.first + 1
    for a, b in zip(heads.tolist(), tails.tolist(), strict=True):
        x, y = int(units[a]), int(units[b])
        i, j = int(u.first[x]), int(u.last[y])
        run = _Run(x, int(u.perms[x]), int(u.verdict[x]), int(m.pa[i]), int(m.pa[j]) + int(m.size[j]))
        depths = u.depth[units[a:b + 1]]
        level = m.fmt.levels[int(depths[0])].arch_level if np.all(depths == depths[0]) else None
        yield Finding(RULES[rule], rule, region, int(u.va[x]), int(u.end[y]), level, int(m.slot[i]),
                      int(m.raw[i]), message(run), int(rows[units[a:b + 1]].sum()))


def _leaf_memtypes(walker: Walker, k: int, m: Mappings, rows: npt.NDArray[np.intp]) -> npt.NDArray[np.uint8]:
    """The memory type the walk rules give the leaves `rows` (whose output is not RAM, so the listing has
    none): each leaf judged for a supervisor read, and then each other access until one is allowed, with
    the rights of no level above taken away (the memory type does not depend on them)."""
    region = walker.rules.regime.regions[k]
    out = np.zeros(rows.size, dtype=np.uint8)
    for depth in np.unique(m.depth[rows]).tolist():
        at = np.flatnonzero(m.depth[rows] == depth)
        raw = m.raw[rows[at]]
        for privilege in (Privilege.SUPERVISOR, Privilege.USER):
            for access in Access:
                st = StepColumns.of(walker.rules.step(
                    region, depth, raw, np.full(raw.shape, access, dtype=np.uint8),
                    np.full(raw.shape, privilege, dtype=np.uint8), np.full(raw.shape, PERMS)))
                fill = (out[at] == 0) & (np.asarray(st.reason) == Reason.OK)
                out[at[fill]] = np.asarray(st.memtype)[fill]
    return out


def _event_finding(region: str, e: TableEvent) -> Finding:
    """The finding of one descent event."""
    rule = _EVENT_RULES[e.kind]
    n, unlisted = e.vas.size, int(np.count_nonzero(~e.listed))
    start, end = (int(e.vas[0]), int(e.vas[-1]) + e.span) if n else (0, e.span)
    slot = int(e.slots[0]) if e.slots.size else None
    severity = RULES[rule]
    if e.kind == "shared":
        distinct = np.unique(e.slots).size
        message = f"the level-{e.level} table {e.table:#x} is shared by {distinct} entries ({n} references)"
        if unlisted:
            severity = "warning"
            message += f"; {unlisted} of them ({unlisted * e.span:#x} bytes of VA) are past the alias bound, not listed"
        else:
            message += ", listed under each"
    elif e.kind == "unreadable":
        message = f"the level-{e.level} table {e.table:#x} is {e.reason}: not walked ({n * e.span:#x} bytes of VA)"
    else:
        what = "a loop: on its own path" if e.kind == "loop" else f"first used at level {e.first_level}"
        message = (f"{n} entr{'y makes' if n == 1 else 'ies make'} table {e.table:#x} a level-{e.level} table; "
                   f"{what}: not walked again "
                   f"({n * e.span:#x} bytes of VA not listed)")
    return Finding(severity, rule, region, start, end, e.level, slot, None, message, n)


def finding_line(f: Finding) -> str:
    """`SEVERITY rule location: message`: the region, the VA range, the level, the first entry's address
    and raw value."""
    where = [f.region, f"{f.start:#x}-{f.end:#x}"]
    if f.level is not None:
        where.append(f"level {f.level}")
    if f.slot is not None:
        where.append(f"entry {f.slot:#x}" + (f"={f.raw:#018x}" if f.raw is not None else ""))
    if f.count > 1:
        where.append(f"x{f.count}")
    return f"{f.severity} {f.rule} {' '.join(where)}: {f.message}"


def finding_json(f: Finding) -> str:
    """One finding as a JSON object (addresses as hex strings, as `translate --json` gives them)."""
    def hexed(v: int | None) -> str | None:
        return None if v is None else f"{v:#x}"
    return json.dumps({"severity": f.severity, "rule": f.rule, "region": f.region, "start": hexed(f.start),
                       "end": hexed(f.end), "level": f.level, "slot": hexed(f.slot), "raw": hexed(f.raw),
                       "count": f.count, "message": f.message})


def summary_line(findings: list[Finding]) -> str:
    """`check: N findings: E errors, W warnings, I infos`."""
    counts = {s: sum(f.severity == s for f in findings) for s in SEVERITIES}
    return (f"check: {len(findings)} finding{'s' * (len(findings) != 1)}: "
            + ", ".join(f"{counts[s]} {s}{'s' * (counts[s] != 1)}" for s in SEVERITIES))
