"""The vocabulary of a walk, below every architecture: accesses, privileges, why a walk stopped, the fault
kinds architectures register, memory types, translation regimes, and the results.

An architecture (`pagetable/arch/<name>/`) builds on these and nothing above them: its walk rules
(`WalkRules`) judge the entries of each level for many lanes at once, its fault kinds and syndromes say
what the hardware reports, and its regime says which roots translate which addresses. The generic walker
(`pagetable.walker`) runs the loop.

Effective permissions are a 6-bit mask per lane (`perm_bit`): supervisor read/write/execute in bits 0-2,
user read/write/execute in bits 3-5. The walk carries this mask down the levels (`Step.carry`, starting at
`ALL_PERMS`); each level may only narrow it (AArch64's APTable/PXNTable/UXNTable, x86's R/W, U/S and XD
at every level, EPT's R/W/X intersection); the leaf's verdict is decided from it. Bits 8 and up of the
carry are the architecture's own state carried down the walk (restrictions, so 0 at the root).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar, NamedTuple, Protocol, Self, TypeAlias, cast

import numpy as np
import numpy.typing as npt

from . import args, lanes
from .errors import InvalidArgument
from .flags import MappingFlags
from .format import Extension, PagingFormat
from .lanes import Flag, Small, Word

U64 = npt.NDArray[np.uint64]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]


class _Named(enum.IntEnum):
    """An enum whose members are also named by the manuals' synonyms (`_synonyms`), case-insensitively."""

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
    """The bit of an effective-permissions mask that says `access` at `privilege` translates: bit
    3 * privilege + access (supervisor r w x in bits 0-2, user r w x in bits 3-5)."""
    return 1 << (3 * int(privilege) + int(access))


IMPLICIT_TABLE_READ, IMPLICIT_ENTRY_UPDATE = 1, 2   # `Translations.implicit`: which implicit access faulted
ALL_PERMS = 0x3F          # every access at every privilege: the carry a walk starts with
PERMS = np.uint64(ALL_PERMS)


class Reason(enum.IntEnum):
    """Why a walk stopped (OK for a translation): the architecture-neutral core. Each architecture uses a
    subset and names the exception each raises with its own `FaultKind`s."""

    OK = 0
    NON_CANONICAL = 1          # VA outside every region of the regime
    TABLE_OUTSIDE_MEMORY = 2   # an entry fetch hit no RAM
    INVALID = 3                # entry not valid/present
    W_WITHOUT_R = 4            # RISC-V R=0 W=1 encoding
    RESERVED = 5               # reserved bits or encodings set
    NON_LEAF_AT_LAST_LEVEL = 6
    PERMISSION = 7
    MISALIGNED_SUPERPAGE = 8
    ACCESSED_DIRTY = 9         # A=0, or D=0 on a write, where hardware faults instead of updating
    PA_OUTSIDE_MEMORY = 10     # the final access hits no RAM
    PROTECTION_KEY = 11        # the page's protection key forbids the access (x86 PKRU/IA32_PKRS)
    ADDRESS_SIZE = 12          # an output or table address wider than the configured output size (AArch64)

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


@dataclass(frozen=True)
class FaultKind:
    """A class of exception one architecture raises (RISC-V's page fault, AArch64's permission fault, x86's
    #PF), registered once by that architecture (`register`). `value` is the name vectors.json and the
    listings use."""

    arch: str
    value: str
    description: str = field(compare=False)
    _registry: ClassVar[dict[tuple[str, str], FaultKind]] = {}

    @classmethod
    def register(cls, arch: str, value: str, description: str) -> FaultKind:
        kind = cls(arch, value, description)
        if cls._registry.setdefault((arch, value), kind) is not kind:
            raise ValueError(f"fault kind {arch}/{value} is registered twice")
        return kind

    @classmethod
    def registered(cls) -> tuple[tuple[str, str], ...]:
        """(architecture, name) of every registered kind."""
        return tuple(cls._registry)

    @classmethod
    def values(cls, arch: str) -> tuple[str, ...]:
        """The names of the kinds `arch` registered."""
        return tuple(v for a, v in cls._registry if a == arch)

    def __str__(self) -> str:
        return self.value


class MemoryType(enum.IntEnum):
    """The memory type a translation gives its accesses, named as each architecture's manual names it. A
    value belongs to one architecture; `DEFAULT` is the platform's attributes for the address (RISC-V PMAs,
    or translation off); `NONE` is a lane that did not translate."""

    NONE = 0
    DEFAULT = 1
    # RISC-V Svpbmt (PBMT=0 is DEFAULT: the PMAs decide)
    RISCV_NC = 2               # non-cacheable, idempotent, weakly ordered main memory
    RISCV_IO = 3               # non-cacheable, non-idempotent, strongly ordered I/O
    # AArch64 MAIR attributes (Normal memory: inner and outer both as named; NORMAL_MIXED otherwise)
    DEVICE_NGNRNE = 16
    DEVICE_NGNRE = 17
    DEVICE_NGRE = 18
    DEVICE_GRE = 19
    NORMAL_NC = 20
    NORMAL_WT = 21
    NORMAL_WB = 22
    NORMAL_MIXED = 23
    # x86 PAT memory types
    UC = 32
    WC = 33
    WT = 34
    WP = 35
    WB = 36
    UC_MINUS = 37

    @property
    def label(self) -> str:
        return self.name.lower().replace("riscv_", "").replace("_", "-")

    @property
    def is_device(self) -> bool:
        """Strongly ordered, non-idempotent memory: MappingFlags.DEVICE."""
        return self in (MemoryType.RISCV_IO, MemoryType.DEVICE_NGNRNE, MemoryType.DEVICE_NGNRE,
                        MemoryType.DEVICE_NGRE, MemoryType.DEVICE_GRE, MemoryType.UC)

    @property
    def is_uncached(self) -> bool:
        """Non-cacheable memory that is not Device memory: MappingFlags.UNCACHED."""
        return self in (MemoryType.RISCV_NC, MemoryType.NORMAL_NC, MemoryType.WC, MemoryType.UC_MINUS)


_TYPE_FLAGS = np.zeros(max(MemoryType) + 1, dtype=np.uint64)     # MappingFlags per MemoryType value
_TYPE_FLAGS[[m for m in MemoryType if m.is_device]] = MappingFlags.DEVICE.value
_TYPE_FLAGS[[m for m in MemoryType if m.is_uncached]] = MappingFlags.UNCACHED.value


def memory_type_flags(memtype: Small) -> Word:
    """The MappingFlags of memory types: DEVICE for Device/IO memory, UNCACHED for the other non-cacheable
    ones, 0 for cacheable and platform-decided memory."""
    return lanes.take(_TYPE_FLAGS, memtype)


@dataclass(frozen=True)
class Region:
    """One root of a translation regime: the register that names it, its format (which says how the bits
    above its VA width must look: `PagingFormat.extension`) and its root table, and which VAs select it.

    A region with `select_bit` is chosen by that VA bit (1 for a format whose VAs extend with ones, 0
    otherwise: AArch64's bit 55 between TTBR1 and TTBR0); without one, it is the regime's only region. The
    top `ignore_top` bits of a VA are not translated (AArch64 TBI: 8) for the accesses in `ignore_top_for`
    (a `perm_bit` mask; AArch64 TBID: data accesses only). Only the accesses in `allowed` may use the region:
    the others fault without a walk (AArch64 EPDn: none; E0PDn: EL1's only). Such faults, and VAs no region
    accepts, are reported at `fault_level` (the manual's level number; default the root's), with the
    reason `refused_with` (AArch64: a Translation fault for EPDn/E0PDn, an Address size fault for a TTBR whose
    table base is wider than the output size).

    `root_entries`, when given, are the root table's entries as the processor holds them in registers, which
    the walk takes instead of reading the root table (x86 PAE paging's PDPTE registers, loaded when CR3 is
    written: SDM Vol. 3A 4.4.1; a later store to the PDPT changes nothing until CR3 is written again)."""

    name: str
    fmt: PagingFormat
    root: int
    select_bit: int | None = None
    ignore_top: int = 0
    ignore_top_for: int = ALL_PERMS
    allowed: int = ALL_PERMS
    fault_level: int | None = None
    refused_with: Reason = Reason.INVALID
    root_entries: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.root_entries is not None and len(self.root_entries) != self.fmt.levels[0].entries:
            raise InvalidArgument(f"region {self.name}: its root table has {self.fmt.levels[0].entries} entries, "
                                  f"not the {len(self.root_entries)} root_entries given")

    @property
    def refusal_level(self) -> int:
        """The level reported for an access the region refuses without a walk."""
        return self.fmt.levels[0].arch_level if self.fault_level is None else self.fault_level

    def canonical_np(self, va: Word, lane_bit: Small | None = None) -> Flag:
        """VAs this region translates: selected, and the translated upper bits as its format requires.
        `lane_bit` (3 * privilege + access per lane) says which lanes' top bits are ignored; without it,
        every lane's are, as for an access in `ignore_top_for`. Columns, or one VA (`lanes`)."""
        if self.ignore_top:                       # the ignored bits read as copies of the next one down
            keep = 64 - self.ignore_top
            low = va & ((1 << keep) - 1)
            stripped = lanes.where(lanes.bit(va, 1 << (keep - 1)), low | (((1 << 64) - 1) ^ ((1 << keep) - 1)), low)
            if lane_bit is None or self.ignore_top_for == ALL_PERMS:
                va = stripped
            else:
                va = lanes.where((self.ignore_top_for >> lane_bit) & 1 != 0, stripped, va)
        ok = self.fmt.canonical_np(va)
        if self.select_bit is None:
            return ok
        out: Flag = ok & ((va >> self.select_bit) & 1 == int(self.fmt.extension is Extension.ONES))
        return out


@dataclass(frozen=True)
class Regime:
    """A translation regime: the regions (roots) that translate its VAs, or none when translation is off
    (RISC-V Bare: PA = VA). RISC-V and x86 have one region; AArch64 EL1&0 has two. With translation off,
    `flat_bits` (if set) is the width of the addresses that pass: a wider one stops with `flat_refusal` at
    level 0 (AArch64 with stage 1 disabled: an Address size fault for a VA at or above the PA size)."""

    name: str
    regions: tuple[Region, ...]
    flat_bits: int | None = None
    flat_refusal: Reason = Reason.ADDRESS_SIZE

    def __post_init__(self) -> None:
        if len(self.regions) > 1 and any(r.select_bit is None for r in self.regions):
            raise InvalidArgument(f"regime {self.name}: every region of several needs a select bit")

    @property
    def translates(self) -> bool:
        return bool(self.regions)

    @property
    def single(self) -> Region:
        """The only region (for code that works on one root: a `PageTable`, a one-root listing)."""
        if len(self.regions) != 1:
            raise InvalidArgument(f"regime {self.name} has {len(self.regions)} regions, not one")
        return self.regions[0]

    def partition_np(self, va: U64, lane_bit: U8 | None = None) -> tuple[Bool, list[npt.NDArray[np.intp]]]:
        """Which VAs some region translates, and per region the lanes it translates (`lane_bit` as in
        `Region.canonical_np`); a regime of one region needs no selection."""
        if len(self.regions) == 1:
            ok = self.regions[0].canonical_np(va, lane_bit)
            return ok, [np.flatnonzero(ok)]
        which = self.select_np(va, lane_bit)
        return which >= 0, [np.flatnonzero(which == k) for k in range(len(self.regions))]

    def select(self, va: int, lane_bit: int) -> int:
        """`select_np` for one VA (an int, unchecked)."""
        plain = self._plain_format
        if plain is not None:
            return 0 if plain.canonical_np(va) else -1
        if len(self.regions) == 1:
            return 0 if self.regions[0].canonical_np(va, lane_bit) else -1
        for k, region in enumerate(self.regions):
            if region.canonical_np(va, lane_bit):
                return k
        return -1

    @functools.cached_property
    def _plain_format(self) -> PagingFormat | None:
        """The format of a regime's only region when that region's canonical rule is its format's (no
        select bit, no ignored top bits): `select` asks the format directly."""
        if len(self.regions) == 1 and self.regions[0].select_bit is None and not self.regions[0].ignore_top:
            return self.regions[0].fmt
        return None

    def select_np(self, va: U64, lane_bit: U8 | None = None) -> npt.NDArray[np.int8]:
        """Per VA, the index of the region that translates it, or -1 where no region does (non-canonical);
        `lane_bit` as in `Region.canonical_np`."""
        out = np.full(va.shape, -1, dtype=np.int8)
        for k, region in enumerate(self.regions):
            out[(out < 0) & region.canonical_np(va, lane_bit)] = k
        return out


class Step(NamedTuple):
    """What an architecture's rules make of the entries one level fetched, per lane: `reason` (not OK stops
    the walk), whether it is a leaf, the VA bits a leaf's output address takes from the VA (`offset`: the
    (super)page's offset, or a contiguous/NAPOT block's; one int for every lane where they agree), the
    carry after this level (effective permissions in bits 0-5, `perm_bit`) and, at a leaf, the memory type.
    The walker takes the next table's address and the leaf's output address from the entry's address field
    (`EntryCodec.paddr_np`). Columns for a bulk walk, ints for one lane (`lanes`)."""

    reason: Small
    leaf: Flag
    offset: Word
    carry: Word
    memtype: Small


class StepColumns(NamedTuple):
    """A `Step` of a bulk walk: every field a column."""

    reason: U8
    leaf: Bool
    offset: U64 | int        # one int where every lane keeps the same VA bits
    carry: U64
    memtype: U8

    @classmethod
    def of(cls, step: Step) -> StepColumns:
        """`step`, which rules given columns return as columns."""
        return cast(StepColumns, step)

    @classmethod
    def filled(cls, step: Step | StepColumns, shape: tuple[int, ...]) -> StepColumns:
        """Columns of `shape` holding `step` in every lane (a verdict of one entry, or one value per field),
        as read-only broadcasts of each field's dtype."""
        return cls(*(np.broadcast_to(np.asarray(v, dtype=t), shape) for v, t in zip(step, _STEP_DTYPES, strict=True)))


_STEP_DTYPES = (np.uint8, np.bool_, np.uint64, np.uint64, np.uint8)       # StepColumns' fields


class WalkRules(Protocol):
    """What an architecture contributes to a walk (see arch/*/walk.py). `step`, `written` and
    `syndrome` are written once for both a bulk walk (numpy columns) and one lane (Python ints): `lanes`."""

    regime: Regime

    def step(self, region: Region, depth: int, pte: Word, access: Small, priv: Small, carry: Word) -> Step:
        """Judge the entries fetched at `depth` of `region` for these lanes."""
        ...

    def judged_bits(self, region: Region, depth: int) -> int:
        """The entry bits `step` reads at `depth`: entries equal in them get the same `Step` (a one-lane walk
        reuses verdicts on that promise; tests/test_walker_lanes.py checks it against `step`)."""
        ...

    def fault_kind(self, reason: Reason) -> FaultKind:
        ...

    def written(self, region: Region, depth: int, pte: Word, leaf: Flag, access: Small) -> Word:
        """The entries fetched at `depth` of `region` (which `step` accepted) as hardware leaves them after
        using them for these accesses: `pte` itself, or with Accessed/Dirty bits set where the hardware
        updates them during the walk (not at a level whose entries have no such bits: a PAE PDPTE)."""
        ...

    def implicit(self) -> WalkRules:
        """The rules for the implicit accesses another stage's walk makes through this one (a stage-1 table
        read, or its entry update): for RISC-V, the G-stage without MXR, which affects explicit loads only."""
        ...

    def combine(self, stage1: Small, stage2: Small, leaf2: Word) -> Small:
        """The memory type of a two-stage translation from each stage's, and stage 2's leaf entry `leaf2`
        (these are the stage-2 rules: EPT's ignore-PAT bit is in its leaf)."""
        ...

    def stage2_privilege(self, priv: Small, carry: Word) -> Small:
        """The privilege the final address's stage-2 walk is made with, from each lane's privilege and its
        stage-1 carry after the leaf (these are the stage-1 rules; x86 with EPT mode-based execute control:
        whether the linear address is a user-mode one, U/S=1 at every level)."""
        ...

    def syndrome(self, t: Outcome, access: Small, priv: Small, stage2: WalkRules | None) -> dict[str, Word]:
        """The numbers the hardware reports for each lane's fault (every lane of `t` faulted), by register
        name; `stage2` is the stage-2 rules of a two-stage walk."""
        ...


class Lane(NamedTuple):
    """One lane's walk: the columns of `Translations` (which see) as ints."""

    va: int
    pa: int
    reason: int
    level: int
    pte: int
    stage: int
    gpa: int
    implicit: int
    perms: int
    memtype: int
    rights: int


Outcome: TypeAlias = "Translations | Lane"
"""What a walk found, per lane: columns, or one lane's ints (`WalkRules.syndrome` takes either)."""


class Translation(NamedTuple):
    """The outcome of one translation: `pa` when `reason` is OK, else the fault and the level it hit.
    `perms` is the effective-permissions mask of the whole walk (`perm_bit`; 0 where the walk faulted),
    `memtype` the memory type, `syndrome` what the hardware reports for the fault (empty when OK).
    Immutable (a named tuple: a single translation costs microseconds)."""

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
    perms: int = 0
    memtype: MemoryType = MemoryType.NONE
    syndrome: Mapping[str, int] = MappingProxyType({})

    @property
    def ok(self) -> bool:
        return self.reason == Reason.OK

    def allows(self, access: Access | str, privilege: Privilege | str) -> bool:
        """Whether the walk's effective permissions let `access` at `privilege` through."""
        return bool(self.perms & perm_bit(Access.parse(access), Privilege.parse(privilege)))


@dataclass(frozen=True)
class Translations:
    """Many translations as columns: `pa` is meaningful where `reason == 0`; `pte` is the last entry the
    walk read (the leaf, or the entry it stopped at; 0 where no entry was read); `perms`, `memtype` and
    `syndrome` as in `Translation`."""

    va: U64
    pa: U64
    reason: U8
    level: npt.NDArray[np.int8]
    pte: U64
    stage: U8                # 1, or 2 where the stage-2 walk decided
    gpa: U64                 # two-stage: the GPA stage 2 translated last (the PTE address or the final GPA)
    implicit: U8             # stage-2 faults on a stage-1 table access (RISC-V's implicit access, AArch64's
                             # S1PTW, the EPT exit qualification's bit 8 = 0), not on the final address:
                             # IMPLICIT_TABLE_READ, or IMPLICIT_ENTRY_UPDATE (the write of an A/D update)
    perms: U8
    memtype: U8
    rights: U8               # the rights of the entries read up to where the walk stopped (`perm_bit`
                             # layout): `perms` where it translated; where it faulted, what the levels read
                             # (the faulting one included) allowed, as EPT's exit qualification reports
    syndrome: dict[str, U64] = field(default_factory=dict)

    @classmethod
    def empty(cls, va: U64) -> Translations:
        n = va.shape[0]
        return cls(va, np.zeros(n, dtype=np.uint64), np.zeros(n, dtype=np.uint8), np.zeros(n, dtype=np.int8),
                   np.zeros(n, dtype=np.uint64), np.ones(n, dtype=np.uint8), np.zeros(n, dtype=np.uint64),
                   np.zeros(n, dtype=np.uint8), np.zeros(n, dtype=np.uint8), np.zeros(n, dtype=np.uint8),
                   np.zeros(n, dtype=np.uint8))

    @property
    def ok(self) -> Bool:
        out: Bool = self.reason == Reason.OK
        return out

    def take(self, index: npt.NDArray[np.intp] | Bool) -> Translations:
        """The lanes `index` selects (an index or a mask array), syndromes included."""
        cols = {f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self) if f.name != "syndrome"}
        return Translations(**cols, syndrome={k: v[index] for k, v in self.syndrome.items()})

    def __len__(self) -> int:
        return int(self.va.shape[0])
