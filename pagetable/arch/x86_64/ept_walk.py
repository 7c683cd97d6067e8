"""The EPT walk: guest-physical to host-physical addresses, EPT violations and EPT misconfigurations.

Intel SDM Vol. 3C, section 29.3.3 "EPT-Induced VM Exits". The walk reads the EPT entries of `EPT4`/`EPT5`
(EPTP.WALK) from EPTP's root. Per level (the generic walker fetches the entry):
- R, W and X all 0 (and, with mode-based execute control, the user-execute bit): not present, an EPT
  violation (`INVALID`) that ends the walk.
- An EPT misconfiguration (29.3.3.1) for an entry that is present: W=1 with R=0 (`W_WITHOUT_R`); R=0 with X=1
  (or the user-execute bit) where the CPU has no execute-only pages; a reserved bit (`RESERVED`): an address
  bit at or above MAXPHYADDR, bits 7:3 of a PML5E/PML4E, bits 6:3 of a PDPTE/PDE that references a table,
  bit 7 of a PDPTE where the CPU has no 1-GByte EPT pages, bits 29:12 of a 1 GiB page or 20:12 of a 2 MiB
  page, or a page's memory type 2, 3 or 7.
- The access rights are the AND of every level's R, W and X (29.3.3.2); with mode-based execute control an
  instruction fetch from a supervisor-mode linear address needs X and one from a user-mode linear address
  the user-execute bit (the privilege the walk is given: `X86Rules.stage2_privilege`). A disallowed access
  is an EPT violation (`PERMISSION`), decided only when no entry of the walk is misconfigured.
With EPTP's A/D enable, the CPU sets A in every entry it uses and D in the page on a write (29.3.5), and
treats every access to a guest paging structure as a write (29.3.3.2: `implicit`). The memory type is the
page's EPT type, combined with the guest's PAT type unless its ignore-PAT bit is set (29.3.7.2:
`memtype.combined_type`).

An EPT violation reports an exit qualification (Table 29-7, "Exit Qualification for EPT Violations"): bits
0-2 the access (a data read, a data write, an instruction fetch; both 0 and 1 for a guest paging-structure
access treated as a write), bits 3-5 the AND of the R, W and X bits of the entries the walk read up to and
including the one it stopped at (with mode-based execute control, bit 6 that of the user-execute bits),
bit 7 that the guest-linear address is valid (the walk came from a guest linear address), and bit 8 that the
access was to the translated address rather than to a guest paging-structure entry. Bits 9-11 (advanced
VM-exit information) and 12 (NMI unblocking) are not modelled and read 0. Both exits report the
guest-physical address and, when valid, the guest-linear address; a misconfiguration has no exit
qualification (0).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ... import args
from ...errors import InvalidArgument, InvalidArgumentType
from ...lanes import Flag, Small, Word, bit, first, not_, u64, where
from ...translation import (
    ALL_PERMS,
    IMPLICIT_ENTRY_UPDATE,
    IMPLICIT_TABLE_READ,
    Access,
    FaultKind,
    Outcome,
    Privilege,
    Reason,
    Regime,
    Region,
    Step,
    perm_bit,
)
from .ept import EPTP, IPAT, MT_SHIFT, PS, XU, A, D, EptCodec, R, W, X
from .memtype import combined_type
from .modes import EPT4, EPT5
from .walk import ARCH, NO_MEMORY, judged_bits, no_memory

EPT_VIOLATION = FaultKind.register(ARCH, "ept-violation", "EPT violation (VM exit reason 48)")
EPT_MISCONFIGURATION = FaultKind.register(ARCH, "ept-misconfiguration", "EPT misconfiguration (VM exit reason 49)")

_SUP, _USER = Privilege.SUPERVISOR, Privilege.USER
_READS = perm_bit(Access.READ, _SUP) | perm_bit(Access.READ, _USER)
_WRITES = perm_bit(Access.WRITE, _SUP) | perm_bit(Access.WRITE, _USER)
_SUP_FETCH, _USER_FETCH = perm_bit(Access.EXECUTE, _SUP), perm_bit(Access.EXECUTE, _USER)
_TABLE_RESERVED = {5: 0xF8, 4: 0xF8, 3: 0x78, 2: 0x78}
"""Reserved bits of an entry that references a table: 7:3 in a PML5E/PML4E, 6:3 in a PDPTE/PDE (bit 7 is
then the page size, 0)."""
_PAGE_RESERVED = {3: ((1 << 30) - 1) & ~0xFFF, 2: ((1 << 21) - 1) & ~0xFFF}
"""Reserved bits of a 1 GiB page (29:12) and a 2 MiB page (20:12)."""
_RESERVED_TYPES = (2, 3, 7)
QUAL_READ, QUAL_WRITE, QUAL_FETCH = 1, 2, 4
QUAL_READABLE, QUAL_WRITABLE, QUAL_EXECUTABLE, QUAL_USER_EXECUTABLE = 8, 16, 32, 64
QUAL_LINEAR_VALID, QUAL_FINAL = 128, 256


@dataclass(frozen=True)
class EptOptions:
    """What the CPU and the VM-execution controls let EPT do: execute-only pages (IA32_VMX_EPT_VPID_CAP bit
    0), mode-based execute control (`mbec`), MAXPHYADDR and 1-GByte EPT pages (bit 17)."""

    execute_only: bool = True
    mbec: bool = False
    maxphyaddr: int = 52
    gbpages: bool = True

    def __post_init__(self) -> None:
        for name in ("execute_only", "mbec", "gbpages"):
            args.boolean(getattr(self, name), name)
        args.integer(self.maxphyaddr, "maxphyaddr", 32, 53)

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


class EptRules:
    """`WalkRules` for the EPT that EPTP `eptp` names (memory type UC or WB, page-walk length 4 or 5, A/D
    enable); `as_writes`: the rules for guest paging-structure accesses with A/D enabled (`implicit`)."""

    def __init__(self, eptp: int, options: EptOptions | None = None, *, as_writes: bool = False) -> None:
        if options is not None and not isinstance(options, EptOptions):
            raise InvalidArgumentType(f"EPT options are EptOptions, not {type(options).__name__}")
        self.options = o = options or EptOptions()
        self.eptp = eptp = args.address(eptp, "EPTP")
        mt, walk = EPTP.get(eptp, "MT"), EPTP.get(eptp, "WALK")
        if mt not in (0, 6):
            raise InvalidArgument(f"EPTP {eptp:#x}: memory type {mt} is not UC (0) or WB (6): VM entry fails")
        if walk not in (3, 4):
            raise InvalidArgument(f"EPTP {eptp:#x}: page-walk length {walk + 1} is not 4 or 5: VM entry fails")
        root = eptp & EPTP.mask("ADDR")
        if root >> o.maxphyaddr or EPTP.unknown_bits(eptp):
            raise InvalidArgument(f"EPTP {eptp:#x} sets reserved bits (or bits at or above MAXPHYADDR "
                                  f"{o.maxphyaddr}): VM entry fails")
        self.ad = bool(EPTP.get(eptp, "AD"))
        self.as_writes = as_writes
        codec = EptCodec(execute_only=o.execute_only, mbec=o.mbec)
        fmt = (EPT5 if walk == 4 else EPT4).with_codec(codec)
        self.regime = Regime(fmt.name, (Region("EPTP", fmt, root),))
        self._reserved = ((1 << 52) - 1) & ~((1 << o.maxphyaddr) - 1)      # address bits 51:MAXPHYADDR

    def step(self, region: Region, depth: int, pte: Word, access: Small, priv: Small, carry: Word) -> Step:
        o = self.options
        n = region.fmt.levels[depth].arch_level
        r, w, x = bit(pte, R), bit(pte, W), bit(pte, X)
        xu = bit(pte, XU) if o.mbec else False
        ps = bit(pte, PS)
        leaf = (ps & (n in (2, 3))) | (n == 1)
        # EPT misconfigurations (29.3.3.1)
        reserved = bit(pte, self._reserved) | (not_(leaf) & bit(pte, _TABLE_RESERVED.get(n, 0)))
        if n == 3 and not o.gbpages:
            reserved |= ps
        if n in _PAGE_RESERVED:
            reserved |= ps & bit(pte, _PAGE_RESERVED[n])
        mt = (pte >> MT_SHIFT) & 7
        reserved |= leaf & ((mt == 2) | (mt == 3) | (mt == 7))
        if not o.execute_only:
            reserved |= not_(r) & (x | xu)
        # the rights, the AND of every level's (29.3.3.2)
        rights = carry & where(r, ALL_PERMS, ALL_PERMS & ~_READS) & where(w, ALL_PERMS, ALL_PERMS & ~_WRITES)
        if o.mbec:
            rights = rights & where(x, ALL_PERMS, ALL_PERMS & ~_SUP_FETCH) & \
                where(xu, ALL_PERMS, ALL_PERMS & ~_USER_FETCH)
        else:
            rights = rights & where(x, ALL_PERMS, ALL_PERMS & ~(_SUP_FETCH | _USER_FETCH))
        if self.as_writes:                       # a guest paging-structure read counts as a write
            access = where(access == Access.READ, Access.WRITE, access)
        lane_bit = priv * 3 + access
        reason = first(pte, (not_(r | w | x | xu), Reason.INVALID), (w & not_(r), Reason.W_WITHOUT_R),
                       (reserved, Reason.RESERVED), (leaf & ((rights >> lane_bit) & 1 == 0), Reason.PERMISSION))
        memtype = region.fmt.codec.memory_type_np(pte, False)
        return Step(reason, leaf, region.fmt.levels[depth].span - 1, rights, memtype)

    def judged_bits(self, region: Region, depth: int) -> int:
        return judged_bits(region, depth, self.options.maxphyaddr)

    def written(self, region: Region, depth: int, pte: Word, leaf: Flag, access: Small) -> Word:
        """With EPTP's A/D enable, A in every entry used and D in the page on a write (29.3.5)."""
        if not self.ad:
            return pte
        write = (access == Access.WRITE) | self.as_writes
        return pte | A | where(leaf & write, D, 0)

    def implicit(self) -> EptRules:
        """The rules for guest paging-structure accesses: with A/D enabled, each is a write (29.3.3.2)."""
        return EptRules(self.eptp, self.options, as_writes=True) if self.ad and not self.as_writes else self

    def fault_kind(self, reason: Reason) -> FaultKind:
        if reason in (Reason.RESERVED, Reason.W_WITHOUT_R):
            return EPT_MISCONFIGURATION
        if no_memory(reason):
            return NO_MEMORY
        return EPT_VIOLATION

    def nested_syndrome(self, t: Outcome, access: Small, linear: bool) -> dict[str, Word]:
        """What an EPT-induced VM exit reports for each lane: the exit qualification of a violation (module
        docstring), the guest-physical address and the guest-linear address (`linear`: the walk came from
        one; a stage-2 walk alone translates guest-physical addresses with guest paging off)."""
        misconfigured = (t.reason == Reason.RESERVED) | (t.reason == Reason.W_WITHOUT_R)
        violation = not_(misconfigured | no_memory(t.reason))    # not present, not allowed, or too wide a GPA
        final, table, update = t.implicit == 0, t.implicit == IMPLICIT_TABLE_READ, t.implicit == IMPLICIT_ENTRY_UPDATE
        read = (final & (access == Access.READ)) | table
        write = (final & (access == Access.WRITE)) | update | (table & self.ad)
        qual = (u64(read) * QUAL_READ | u64(write) * QUAL_WRITE | u64(final & (access == Access.EXECUTE)) * QUAL_FETCH
                | u64(bit(t.rights, _READS)) * QUAL_READABLE | u64(bit(t.rights, _WRITES)) * QUAL_WRITABLE)
        if self.options.mbec:
            qual = qual | u64(bit(t.rights, _SUP_FETCH)) * QUAL_EXECUTABLE \
                | u64(bit(t.rights, _USER_FETCH)) * QUAL_USER_EXECUTABLE
        else:
            qual = qual | u64(bit(t.rights, _SUP_FETCH)) * QUAL_EXECUTABLE
        if linear:
            qual = qual | QUAL_LINEAR_VALID | u64(final) * QUAL_FINAL
        gpa = t.gpa if linear else t.va
        exits = u64(violation | misconfigured)
        return {"exit_qualification": qual * u64(violation), "gpa": gpa * exits,
                "guest_linear": t.va * exits * int(linear)}

    def syndrome(self, t: Outcome, access: Small, priv: Small, stage2: object | None) -> dict[str, Word]:
        """A stage-2 walk alone (guest paging off): the exit's fields, guest-linear address not valid."""
        return self.nested_syndrome(t, access, False)

    def combine(self, stage1: Small, stage2: Small, leaf2: Word) -> Small:
        """The guest's PAT type and the EPT memory type (29.3.7.2): the EPT type alone where the page's
        ignore-PAT bit is set, else both combined as the SDM's MTRR/PAT table says with the EPT type in the
        MTRR's role."""
        return where(bit(leaf2, IPAT), stage2, combined_type(stage2, stage1))

    def stage2_privilege(self, priv: Small, carry: Word) -> Small:
        return priv
