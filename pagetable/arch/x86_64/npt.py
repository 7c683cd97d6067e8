"""AMD nested paging (NPT): guest-physical to host-physical addresses through long-mode tables under nCR3.

AMD APM Vol. 2, section 15.25 "Nested Paging". The nested tables have the format of the host's long-mode
paging (`NPT4`/`NPT5`: 4-level and 5-level paging, guest-physical addresses zero-extended), walked with the
host's paging controls (EFER.NXE, CR0.WP, MAXPHYADDR) and the same rules as `X86Rules`, with two
differences the APM states (15.25.5, 15.25.6):
- every nested access is a user-mode access (so every nested entry needs U/S=1; SMEP, SMAP and protection
  keys do not apply, and this model refuses options that ask for them);
- an access to a guest paging structure, which the guest's walker may update (A/D), is a user write, so a
  nested page that holds guest tables must be writable.
A fault is a #VMEXIT(NPF) (`NESTED_PAGE_FAULT`), reporting EXITINFO1: the page-fault error code of the
nested walk (P, W/R, U/S = 1, RSVD, I/D) with bit 32 set when the fault was on the final guest-physical
address and bit 33 when it was on a guest paging-structure access; and EXITINFO2: the guest-physical
address. (QEMU's and Bochs' SVM models report the same bits.)

The memory type: the APM combines the guest's PAT type with the nested walk's (15.25.8); this model uses the
SDM's MTRR/PAT table (`memtype.combined_type`) with the nested type in the MTRR's role and a nested UC- read
as UC. That is not checked against the APM's own table (docs/x86_64.md says so).
"""

from __future__ import annotations

from ...errors import InvalidArgument
from ...lanes import Flag, Small, Word, not_, u64, where
from ...translation import Access, FaultKind, MemoryType, Outcome, Privilege, Reason, Region, Step
from .entry import NESTED
from .memtype import combined_type
from .modes import NPT4, NPT5
from .walk import ARCH, NO_MEMORY, X86Options, X86Rules, _error_code, no_memory

NESTED_PAGE_FAULT = FaultKind.register(ARCH, "nested-page-fault", "#VMEXIT(NPF): nested page fault (exit code 0x400)")
EXITINFO1_FINAL, EXITINFO1_TABLE = 1 << 32, 1 << 33


class NptRules(X86Rules):
    """`WalkRules` for the nested tables at nCR3 `ncr3` (`options`: the host's paging controls; `pat`: the
    host's IA32_PAT, which the nested entries index). `as_writes`: the rules for guest paging-structure
    accesses (`implicit`)."""

    def __init__(self, ncr3: int, options: X86Options | None = None, pat: int | None = None, *,
                 as_writes: bool = False) -> None:
        o = options or X86Options()
        if isinstance(o, X86Options) and (o.smep or o.smap or o.pke or o.pks or o.implicit):
            raise InvalidArgument("nested paging makes every access a user access: SMEP, SMAP, protection keys "
                                  "and implicit supervisor accesses do not apply to it")
        super().__init__(ncr3, o, pat, fmt=NPT5 if o.la57 else NPT4, codec=NESTED, root_name="nCR3")
        self.ncr3, self.pat, self.as_writes = ncr3, pat, as_writes

    def _access(self, access: Small) -> Small:
        """The access the nested walk checks: a guest paging-structure read is a write where `as_writes`."""
        return where(access == Access.READ, Access.WRITE, access) if self.as_writes else access

    def step(self, region: Region, depth: int, pte: Word, access: Small, priv: Small, carry: Word) -> Step:
        return super().step(region, depth, pte, self._access(access), Privilege.USER, carry)

    def written(self, region: Region, depth: int, pte: Word, leaf: Flag, access: Small) -> Word:
        return super().written(region, depth, pte, leaf, self._access(access))

    def implicit(self) -> NptRules:
        """The rules for guest paging-structure accesses: user writes."""
        return self if self.as_writes else NptRules(self.ncr3, self.options, self.pat, as_writes=True)

    def fault_kind(self, reason: Reason) -> FaultKind:
        if no_memory(reason):
            return NO_MEMORY
        return NESTED_PAGE_FAULT

    def nested_syndrome(self, t: Outcome, access: Small, linear: bool) -> dict[str, Word]:
        """EXITINFO1 and EXITINFO2 of each nested page fault (module docstring); 0 for the other faults."""
        final = t.implicit == 0
        seen = where(final, access, Access.WRITE)              # a guest table access is a user write
        npf = u64(not_(no_memory(t.reason)))
        reason = where(t.reason == Reason.NON_CANONICAL, Reason.INVALID, t.reason)   # a GPA beyond the tables
        error = _error_code(reason, seen, Privilege.USER, self.options)
        info1 = error | u64(final) * EXITINFO1_FINAL | u64(t.implicit != 0) * EXITINFO1_TABLE
        return {"exitinfo1": info1 * npf, "exitinfo2": (t.gpa if linear else t.va) * npf}

    def syndrome(self, t: Outcome, access: Small, priv: Small, stage2: object | None) -> dict[str, Word]:
        """The nested walk alone (guest paging off): EXITINFO1/2, the fault on the final address."""
        return self.nested_syndrome(t, access, False)

    def combine(self, stage1: Small, stage2: Small, leaf2: Word) -> Small:
        """The guest's PAT type with the nested type (module docstring)."""
        nested = where(stage2 == MemoryType.UC_MINUS, MemoryType.UC, stage2)
        return combined_type(nested, stage1)

    def stage2_privilege(self, priv: Small, carry: Word) -> Small:
        return priv

