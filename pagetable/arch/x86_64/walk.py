"""The x86 linear-address translation rules: 32-bit paging, 4-level and 5-level paging.

Intel SDM Vol. 3A, sections 4.3 (32-bit paging), 4.5 (4-level and 5-level paging), 4.6 "Access Rights" and
4.7 "Page-Fault Exceptions"; AMD APM Vol. 2, sections 5.3 and 5.6. Per level (the generic walker fetches the
entry; a VA that is not canonical, or in 32-bit paging not below 2**32, never starts a walk: #GP):
- P=0 → #PF, not present.
- A reserved bit set → #PF with RSVD: an address bit at or above MAXPHYADDR (`maxphyaddr`), XD while
  EFER.NXE=0, PS in a PML5E or PML4E, PS in a PDPTE where the CPU has no 1-GByte pages (`gbpages`), and
  the bits between PAT and the address of a 1 GiB (29:13) or 2 MiB (20:13) page. In 32-bit paging only a
  4 MiB page has reserved bits: bit 21 and PA bits 39:M in PDE bits 20:(M-19) (M = min(MAXPHYADDR, 40) with
  PSE-36, 32 without: all of 20:13); no entry has an XD bit.
- PS=1 in a PDPTE or PDE (32-bit paging: a PDE with CR4.PSE=1, else PS is ignored), or any PTE: a page, of
  1 GiB, 2 MiB, 4 MiB or 4 KiB.
Access rights are the AND of every level's (SDM 4.6): U/S=0 anywhere makes the address a supervisor-mode
address (no user access); R/W=0 anywhere takes away user writes, and supervisor writes when CR0.WP=1
(`wp`); XD=1 anywhere (with EFER.NXE) takes away instruction fetches. At the page, for supervisor accesses
to a user-mode address (U/S=1 at every level): CR4.SMEP forbids fetches; CR4.SMAP forbids reads and
writes unless RFLAGS.AC=1 (`ac`), which implicit supervisor accesses ignore (`implicit`). The carry holds
these rights (`perm_bit` layout) as the walk goes down;
the page's verdict is the carry's. Protection keys (SDM 4.6.2), at the page: with CR4.PKE (`pke`) a
user-mode address's key i reads PKRU (`pkru`): AD_i=1 forbids every data access, WD_i=1 user writes, and
supervisor writes when CR0.WP=1; with CR4.PKS (`pks`) a supervisor-mode address's key reads IA32_PKRS
(`pkrs`) the same way. Fetches are never key-checked. A data access a key forbids is a `PROTECTION_KEY`
fault (whatever the other rights say), else a forbidden access is a `PERMISSION` fault. The memory type is
the page's PAT entry (`X86Codec`; MTRRs are not modelled). The hardware sets A in every entry it uses and D
in the page on a write (`written`); the walk itself writes nothing.

A #PF reports an error code (SDM 4.7): P (bit 0) = 0 for a not-present page, 1 for a protection
violation or a reserved bit; W/R (1) a write; U/S (2) a user-mode access; RSVD (3); I/D (4) an instruction
fetch, when CR4.SMEP=1 or EFER.NXE=1 (outside 32-bit paging); PK (5) a protection-key violation; and CR2 =
the linear address. A #GP reports no error code for a non-canonical address. Shadow-stack accesses are not modelled yet.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, cast, runtime_checkable

import numpy as np
import numpy.typing as npt

from ... import args
from ...errors import InvalidArgument, InvalidArgumentType
from ...format import PagingFormat
from ...lanes import Flag, Small, Word, bit, first, not_, take, u64, where
from ...translation import ALL_PERMS, Access, FaultKind, Outcome, Privilege, Reason, Regime, Region, Step, perm_bit
from .entry import ADDR, PAT_RESET, PS, PTE_4K, RW, SPEC, US, XD, A, D, P, X86Codec
from .modes import PAGING4, PAGING5, PAGING_PAE, paging32
from .pae import CR3_PAE, PAE, PaeCodec, pdpte_reserved
from .paging32 import CR3_32, PDE_4M, SPEC32, X86Codec32

ARCH = "x86_64"
PAGE_FAULT = FaultKind.register(ARCH, "page-fault", "#PF: page-fault exception (vector 14)")
GENERAL_PROTECTION = FaultKind.register(ARCH, "general-protection",
                                        "#GP: general-protection exception (a non-canonical linear address)")
NO_MEMORY = FaultKind.register(ARCH, "no-memory", "the walk or the access reached no RAM (platform-defined on x86)")

_SUP, _USER = Privilege.SUPERVISOR, Privilege.USER
_USER_READ = perm_bit(Access.READ, _USER)         # set in the carry iff U/S=1 at every level so far
_SUP_WRITE, _USER_WRITE = perm_bit(Access.WRITE, _SUP), perm_bit(Access.WRITE, _USER)
_SUP_FETCH = perm_bit(Access.EXECUTE, _SUP)
_SUP_DATA = perm_bit(Access.READ, _SUP) | _SUP_WRITE
_USER_DATA = _USER_READ | _USER_WRITE
_USER_BITS = _USER_DATA | perm_bit(Access.EXECUTE, _USER)
_WRITES = _SUP_WRITE | _USER_WRITE
_FETCHES = _SUP_FETCH | perm_bit(Access.EXECUTE, _USER)
_SUPERVISOR_ADDRESS = 1 << 8                      # carry state: U/S=0 at some level so far (SDM 4.6)
_CARRIED = ALL_PERMS | _SUPERVISOR_ADDRESS
_RSVD_HUGE = {3: ((1 << 30) - 1) & ~((1 << 13) - 1), 2: ((1 << 21) - 1) & ~((1 << 13) - 1)}
"""The reserved bits of a 1 GiB page (level 3: bits 29:13) and a 2 MiB page (level 2: bits 20:13)."""

ERROR_P, ERROR_W, ERROR_U, ERROR_RSVD, ERROR_ID, ERROR_PK = 1, 2, 4, 8, 16, 32


def _key_rights(register: int, access_disable: int, write_disable: int) -> npt.NDArray[np.uint64]:
    """Per protection key 0-15, the rights (`perm_bit` mask) PKRU or IA32_PKRS `register` leaves: AD_i=1
    takes away `access_disable`, WD_i=1 `write_disable`."""
    out = np.full(16, _CARRIED, dtype=np.uint64)
    for i in range(16):
        if register >> (2 * i) & 1:
            out[i] &= np.uint64(_CARRIED & ~access_disable)
        if register >> (2 * i + 1) & 1:
            out[i] &= np.uint64(_CARRIED & ~write_disable)
    return out


def judged_bits(region: Region, depth: int, maxphyaddr: int, low: int | None = None) -> int:
    """The entry bits the x86 and EPT rules read: every bit but the address field's below MAXPHYADDR, and of
    those the ones a page at this level keeps as flags or reserved bits: a PTE's from bit 12, a 2 MiB page's
    bits 20:12, a 1 GiB page's bits 29:12 (or from `low`: a 4 MiB page's bits 21:12 in 32-bit paging)."""
    n = region.fmt.levels[depth].arch_level
    low = {3: 30, 2: 21}.get(n, 12) if low is None else low
    address = ((1 << maxphyaddr) - 1) & ~((1 << low) - 1)
    return ((1 << 64) - 1) & ~address


@runtime_checkable
class NestedRules(Protocol):
    """The rules of a nested walk under x86 paging (EPT, NPT): what its VM exit reports."""

    def nested_syndrome(self, t: Outcome, access: Small, linear: bool) -> dict[str, Word]:
        """Per lane, the exit's fields for the faults this walk decided (`t.implicit` says whether the
        access was the guest's table access, its entry update or the final one; `linear`: the walk came from
        a guest linear address)."""
        ...


def no_memory(reason: Small) -> Flag:
    """The reasons of a walk or an access that reached no RAM (`NO_MEMORY`: platform-defined on x86)."""
    out: Flag = (reason == Reason.TABLE_OUTSIDE_MEMORY) | (reason == Reason.PA_OUTSIDE_MEMORY)
    return out


def page_fault(reason: Small) -> Flag:
    """The reasons x86 paging reports as a page fault (#PF, or a nested page fault)."""
    out: Flag = (reason == Reason.INVALID) | (reason == Reason.RESERVED) | (reason == Reason.PERMISSION) | \
        (reason == Reason.PROTECTION_KEY)
    return out


def _error_code(reason: Small, access: Small, priv: Small, o: X86Options) -> Word:
    """The page-fault error code (SDM 4.7) of each faulting lane: P, W/R, U/S, RSVD, I/D (with CR4.SMEP, or
    EFER.NXE outside 32-bit paging) and PK."""
    error = (u64(reason != Reason.INVALID) * ERROR_P | u64(access == Access.WRITE) * ERROR_W
             | u64(priv == Privilege.USER) * ERROR_U | u64(reason == Reason.RESERVED) * ERROR_RSVD
             | u64(reason == Reason.PROTECTION_KEY) * ERROR_PK)
    if o.smep or o.xd:
        error = error | u64(access == Access.EXECUTE) * ERROR_ID
    return error


PAGING_MODES = ("32-bit", "pae", "ia32e")
"""`X86Options.paging`: 32-bit paging (CR0.PG=1, CR4.PAE=0; SDM 4.3), PAE paging (CR4.PAE=1,
IA32_EFER.LME=0; SDM 4.4) or IA-32e paging, 4-level or 5-level by CR4.LA57 (SDM 4.5)."""


@dataclass(frozen=True)
class X86Options:
    """The control-register bits and CPU properties that change a walk: the paging mode (`paging`,
    `PAGING_MODES`), CR0.WP, CR4.SMEP, CR4.SMAP, RFLAGS.AC, EFER.NXE, CR4.LA57 (5-level paging), CR4.PSE (4 MiB
    pages in 32-bit paging), MAXPHYADDR, PSE-36 and 1-GByte page support, and protection keys (CR4.PKE with
    PKRU, CR4.PKS with IA32_PKRS). `implicit`: the walk is of implicit supervisor accesses (the CPU's own
    accesses to the GDT, IDT, TSS and the like, supervisor accesses whatever the CPL; translate them with the
    supervisor privilege), which SMAP stops at user-mode addresses whatever RFLAGS.AC says. 32-bit paging has
    no XD bit (EFER.NXE changes nothing there: `xd`); neither it nor PAE paging has 5-level paging or
    protection keys (IA-32e mode only: refused); CR4.PSE only matters to 32-bit paging (refused with the
    others, which ignore it)."""

    wp: bool = True
    smep: bool = False
    smap: bool = False
    ac: bool = False
    nxe: bool = True
    la57: bool = False
    maxphyaddr: int = 52
    gbpages: bool = True
    pke: bool = False
    pks: bool = False
    pkru: int = 0
    pkrs: int = 0
    implicit: bool = False                # the accesses are implicit supervisor accesses (SDM 4.6)
    paging: str = "ia32e"
    pse: bool = False
    pse36: bool = True

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name in ("pkru", "pkrs"):
                args.integer(getattr(self, f.name), f.name.upper(), 0, 1 << 32)
            elif f.name == "paging":
                args.choice(self.paging, "paging mode", {m: m for m in PAGING_MODES})
            elif f.name != "maxphyaddr":
                args.boolean(getattr(self, f.name), f.name)
        args.integer(self.maxphyaddr, "maxphyaddr", 32, 53)
        if self.paging != "32-bit" and self.pse:
            raise InvalidArgument("CR4.PSE selects 4 MiB pages in 32-bit paging only: PAE and IA-32e paging ignore "
                                  "it")
        if self.paging != "ia32e" and (self.la57 or self.pke or self.pks):
            raise InvalidArgument(f"{self.paging} paging has no 5-level paging or protection keys (CR4.LA57, "
                                  "CR4.PKE and CR4.PKS need IA-32e mode)")

    @property
    def xd(self) -> bool:
        """Whether entries have an XD bit: EFER.NXE=1 outside 32-bit paging (SDM 4.1.1, Table 4-1)."""
        return self.nxe and self.paging != "32-bit"

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class _LevelChecks:
    """What the rules check at one level (the manual's number) of one paging mode: the reserved bits of
    every entry (`always`) and of one with PS=1 (`large`), whether PS is reserved there and whether PS=1
    maps a page there; `address_lsb`, where a page's address starts there (`judged_bits`); `rights`, whether
    its entries have R/W, U/S and XD, and `accessed` whether they have the A bit the walk sets (a PAE PDPTE
    has neither)."""

    always: int
    large: int
    ps_reserved: bool
    ps_maps: bool
    address_lsb: int
    rights: bool = True
    accessed: bool = True


def _checks(o: X86Options) -> dict[int, _LevelChecks]:
    """Per level, the checks of the entry-format tables of `o`'s paging mode (SDM Tables 4-4 to 4-6 for
    32-bit paging, 4-8 to 4-11 for PAE paging, 4-15 to 4-20 for IA-32e paging). A PAE PDPTE's reserved bits
    are checked when CR3 is loaded (`X86Rules`), not by the walk."""
    if o.paging == "32-bit":
        m = min(o.maxphyaddr, 40) if o.pse36 else 32          # a 4 MiB page's PA width (SDM 4.3)
        large = PDE_4M.mask("RSVD") | (PDE_4M.mask("ADDR_HI") & ~(((1 << (m - 32)) - 1) << PDE_4M["ADDR_HI"].lsb))
        return {2: _LevelChecks(0, large if o.pse else 0, False, o.pse, 22), 1: _LevelChecks(0, 0, False, False, 12)}
    top = 63 if o.paging == "pae" else 52                    # PAE: bits 62:52 are reserved too
    always = (((1 << top) - 1) & ~((1 << o.maxphyaddr) - 1)) | (0 if o.xd else XD)  # address bits 51:M; XD
    if o.paging == "pae":
        return {3: _LevelChecks(0, 0, False, False, 12, rights=False, accessed=False),
                2: _LevelChecks(always, _RSVD_HUGE[2], False, True, 21),
                1: _LevelChecks(always, 0, False, False, 12)}
    return {n: _LevelChecks(always, _RSVD_HUGE.get(n, 0), n >= 4 or (n == 3 and not o.gbpages), n in (2, 3),
                            {3: 30, 2: 21}.get(n, 12)) for n in range(1, 6)}


def _loaded(pdptes: Sequence[int], cr3: int, maxphyaddr: int) -> tuple[int, ...]:
    """The PDPTE registers a MOV to CR3 loads with `pdptes`: InvalidArgument where it would #GP (a present
    PDPTE with a reserved bit set: SDM 4.4.1)."""
    if isinstance(pdptes, str | bytes) or len(pdptes) != 4:
        raise InvalidArgument(f"pdptes: give the four PDPTEs PDPTE0-3, not {args.describe(pdptes)}")
    out = tuple(args.address(v, f"PDPTE{k}") for k, v in enumerate(pdptes))
    for k, raw in enumerate(out):
        bad = int(pdpte_reserved(raw, maxphyaddr))
        if bad:
            raise InvalidArgument(f"MOV to CR3 {cr3:#x} would #GP: PDPTE{k} {raw:#018x} is present with reserved "
                                  f"bits {bad:#x} set (SDM 4.4.1: bits 2:1, 8:5 and {maxphyaddr}..63)")
    return out


class X86Rules:
    """`WalkRules` for 32-bit, PAE, 4-level or 5-level paging (`options.paging`, `options.la57`) from a CR3
    value, with IA32_PAT `pat`.

    PAE paging (SDM 4.4.1) translates through the PDPTE registers, which a MOV to CR3 loads from the PDPT:
    the rules are built with those four values (`pdptes`, e.g. `pae.load_pdptes(mem, cr3)`), and refuse
    (InvalidArgument) a present one with a reserved bit set, which makes that MOV #GP, where a walk never
    gets to start. The walk takes the PDPTEs from those registers (`Region.root_entries`), not from memory:
    a store to the PDPT after the MOV to CR3 changes no translation until CR3 is loaded again (build the rules
    again). A PDPTE with P=0 is a #PF at level 3; the PDPTEs carry no rights and are never written."""

    def __init__(self, cr3: int, options: X86Options | None = None, pat: int | None = None, *,
                 fmt: PagingFormat | None = None, codec: X86Codec | X86Codec32 | None = None,
                 root_name: str = "CR3", pdptes: Sequence[int] | None = None) -> None:
        """`fmt`, `codec`, `root_name`: the tables' format (default by the paging mode, CR4.LA57 and CR4.PSE),
        the codec whose choices the walk decodes with (its PAT, NXE, PSE and MAXPHYADDR come from `pat` and
        `options`) and the register naming the root (nested paging: `NptRules`); `pdptes`: PAE paging's
        PDPTE registers (PDPTE0-3), required there and nowhere else."""
        if options is not None and not isinstance(options, X86Options):
            raise InvalidArgumentType(f"x86 walk options are X86Options, not {type(options).__name__}")
        self.options = o = options or X86Options()
        cr3 = args.address(cr3, root_name)
        pat = PAT_RESET if pat is None else pat
        defaults: dict[str, X86Codec | X86Codec32] = {"32-bit": SPEC32, "pae": PAE, "ia32e": SPEC}
        base = codec or defaults[o.paging]
        if isinstance(base, X86Codec32) != (o.paging == "32-bit") or isinstance(base, PaeCodec) != (o.paging == "pae"):
            raise InvalidArgumentType(f"{o.paging} paging's entries have no {type(base).__name__}")
        if (pdptes is None) == (o.paging == "pae"):
            raise InvalidArgument("PAE paging's rules need the PDPTE registers (pdptes: the four PDPTEs the MOV to "
                                  "CR3 loaded), and no other mode has them")
        self.pdptes = None if pdptes is None else _loaded(pdptes, cr3, o.maxphyaddr)
        if isinstance(base, X86Codec32):
            cr3 = args.integer(cr3, f"{root_name} (32-bit paging)", 0, 1 << 32)
            root = CR3_32.get(cr3, "ADDR") << CR3_32["ADDR"].lsb
            base = dataclasses.replace(base, pat=pat, pse=o.pse, maxphyaddr=o.maxphyaddr if o.pse36 else 32)
            fmt = (fmt or paging32(o.pse, o.pse36)).with_codec(base)
        elif isinstance(base, PaeCodec):
            cr3 = args.integer(cr3, f"{root_name} (PAE paging)", 0, 1 << 32)
            root = CR3_PAE.get(cr3, "ADDR") << CR3_PAE["ADDR"].lsb
            fmt = (fmt or PAGING_PAE).with_codec(dataclasses.replace(base, pat=pat, nxe=o.nxe))
        else:
            root = cr3 & ADDR & ((1 << o.maxphyaddr) - 1)
            if cr3 & ADDR != root:
                raise InvalidArgument(f"{root_name} {cr3:#x} has address bits at or above MAXPHYADDR "
                                      f"({o.maxphyaddr}): loading it would #GP")
            fmt = (fmt or (PAGING5 if o.la57 else PAGING4)).with_codec(dataclasses.replace(base, pat=pat, nxe=o.nxe))
        self.regime = Regime(fmt.name, (Region(root_name, fmt, root, root_entries=self.pdptes),))
        self._checks = _checks(o)
        self._user_keys = _key_rights(o.pkru, _SUP_DATA | _USER_DATA, _USER_WRITE | (_SUP_WRITE if o.wp else 0))
        self._supervisor_keys = _key_rights(o.pkrs, _SUP_DATA, _SUP_WRITE if o.wp else 0)

    def step(self, region: Region, depth: int, pte: Word, access: Small, priv: Small, carry: Word) -> Step:
        o = self.options
        n = region.fmt.levels[depth].arch_level
        c = self._checks[n]
        ps = bit(pte, PS)
        leaf = (ps & c.ps_maps) | (n == 1)
        # reserved bits (the entry-format tables: SDM 4.3, 4.5)
        reserved = bit(pte, c.always)
        if c.ps_reserved:
            reserved |= ps
        if c.large:
            reserved |= ps & bit(pte, c.large)
        # access rights (SDM 4.6): every level narrows the carry; U/S=0 makes a supervisor-mode address
        rights = carry                                    # a PAE PDPTE has none: the levels below decide
        if c.rights:
            us = bit(pte, US)
            rights = (carry & where(us, _CARRIED, _CARRIED & ~_USER_BITS)) | where(us, 0, _SUPERVISOR_ADDRESS)
            rights = rights & where(bit(pte, RW), _CARRIED, _CARRIED & ~(_WRITES if o.wp else _WRITES & _USER_BITS))
            if o.xd:
                rights = rights & where(bit(pte, XD), _CARRIED & ~_FETCHES, _CARRIED)
        user_address = leaf & not_(bit(rights, _SUPERVISOR_ADDRESS))
        if o.smep:
            rights = rights & where(user_address, _CARRIED & ~_SUP_FETCH, _CARRIED)
        if o.smap and (o.implicit or not o.ac):          # RFLAGS.AC lets explicit accesses through only
            rights = rights & where(user_address, _CARRIED & ~_SUP_DATA, _CARRIED)
        keys: Word = _CARRIED                             # what the page's protection key allows
        if o.pke:
            keys = where(user_address, take(self._user_keys, PTE_4K.extract(pte, "PK")), keys)
        if o.pks:
            keys = where(leaf & not_(user_address), take(self._supervisor_keys, PTE_4K.extract(pte, "PK")), keys)
        lane_bit = priv * 3 + access
        reason = first(pte, (not_(bit(pte, P)), Reason.INVALID), (reserved, Reason.RESERVED),
                       (leaf & ((keys >> lane_bit) & 1 == 0) if o.pke or o.pks else False, Reason.PROTECTION_KEY),
                       (leaf & ((rights >> lane_bit) & 1 == 0), Reason.PERMISSION))
        rights = rights & keys
        return Step(reason, leaf, region.fmt.levels[depth].span - 1, rights,   # only PDPTEs and PDEs map
                    region.fmt.codec.memory_type_np(pte, n in (2, 3)))          # large pages (PAT at 12)

    def judged_bits(self, region: Region, depth: int) -> int:
        return judged_bits(region, depth, self.options.maxphyaddr, self._checks[region.fmt.levels[depth].arch_level]
                           .address_lsb)

    def written(self, region: Region, depth: int, pte: Word, leaf: Flag, access: Small) -> Word:
        """The hardware sets A in every entry it uses and D in the page on a write (SDM 4.8); a PAE PDPTE has
        no A bit (its bit 5 is reserved: SDM Table 4-8), so it is never written."""
        if not self._checks[region.fmt.levels[depth].arch_level].accessed:
            return pte
        return pte | A | where(leaf & (access == Access.WRITE), D, 0)

    def implicit(self) -> X86Rules:
        return self

    def fault_kind(self, reason: Reason) -> FaultKind:
        if reason == Reason.NON_CANONICAL:
            return GENERAL_PROTECTION
        if no_memory(reason):
            return NO_MEMORY
        return PAGE_FAULT

    def syndrome(self, t: Outcome, access: Small, priv: Small, stage2: object | None) -> dict[str, Word]:
        """The #PF error code (P, W/R, U/S, RSVD, I/D, PK) and CR2 of each page fault (0 for the other
        faults); in a two-stage walk, also what the nested walk's rules report for the faults it decided
        (EPT: `EptRules.nested_syndrome`; NPT: `NptRules.nested_syndrome`), 0 in the lanes stage 1 decided."""
        pf = page_fault(t.reason) & (t.stage == 1)
        out = {"error_code": _error_code(t.reason, access, priv, self.options) * u64(pf), "cr2": t.va * u64(pf)}
        if isinstance(stage2, NestedRules):
            nested = u64(t.stage == 2)
            out |= {name: value * nested for name, value in stage2.nested_syndrome(t, access, True).items()}
        return out

    def combine(self, stage1: Small, stage2: Small, leaf2: Word) -> Small:
        """x86 paging is no nested walk (nested paging's rules are `NptRules`): the first stage's type."""
        return stage1

    def stage2_privilege(self, priv: Small, carry: Word) -> Small:
        """Whether each linear address is a user-mode address (U/S=1 at every level: USER) or a
        supervisor-mode one, as EPT's mode-based execute control distinguishes them (SDM 29.3.3.2)."""
        return cast(Small, where(bit(carry, _SUPERVISOR_ADDRESS), Privilege.SUPERVISOR, Privilege.USER))
