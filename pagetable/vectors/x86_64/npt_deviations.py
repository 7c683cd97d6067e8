"""What QEMU 7.2's TCG reports for a guest access under AMD nested paging (the SVM harness,
pagetable/vectors/x86_64/svm.py), predicted from the walker: the APM's answer (AMD64 APM Vol. 2 15.25.6,
#VMEXIT(NPF) with EXITINFO1/EXITINFO2; 15.12 intercepted exceptions, 15.12.15 a guest #PF with EXITINFO1 =
the error code and EXITINFO2 = the faulting address) turned into what QEMU is known to do, with each
departure named (docs/qemu.md). Shared by `pagetable vectors verify --qemu` and the differential test
(tests/test_qemu_x86_npt_diff.py).

The one departure: a reserved-bit fault has P=0 in its error code, guest #PF and nested EXITINFO1 alike
(TCG_RSVD_P0: `do_fault_rsvd` of `mmu_translate` in target/i386/tcg/sysemu/excp_helper.c, which the nested
walk runs too), where the APM (8.4.2) and the SDM (Vol. 3A 4.7) set P=1: the entry was present."""

from __future__ import annotations

from ...arch.x86_64 import CR0, CR4, EFER, PTE_4K, RFLAGS, NptRules, X86Rules
from ...arch.x86_64.npt import NESTED_PAGE_FAULT
from ...arch.x86_64.walk import GENERAL_PROTECTION, PAGE_FAULT
from ...physmem import PhysMem
from ...walker import Reason, Translations
from . import svm
from .deviations import tcg_deviation as one_stage_deviation
from .layout import RAM_BASE
from .qemu import ProbeResult
from .svm import GuestMode, NptProbeResult

EXIT_GP = svm.EXIT_EXCP_BASE + 13


def expected(t: Translations, n: int, access: str, mem: PhysMem) -> NptProbeResult | None:
    """What the APM says lane `n` ends in: success (the word at the PA in `mem`, which a load reads; the VA
    for a fetch), or the #VMEXIT with its EXITINFO1 and EXITINFO2 (a nested page fault, or the guest's
    intercepted #PF or #GP); None for a walk whose outcome is platform-defined (a table or page outside
    memory), which no probe can predict."""
    reason = Reason(int(t.reason[n]))
    if reason == Reason.OK:
        return NptProbeResult(None, 0, 0, int(t.va[n]) if access == "execute" else mem.read_u64(int(t.pa[n])))
    if int(t.stage[n]) == 2:
        if NptRules(RAM_BASE).fault_kind(reason) != NESTED_PAGE_FAULT:
            return None
        return NptProbeResult(svm.EXIT_NPF, int(t.syndrome["exitinfo1"][n]), int(t.syndrome["exitinfo2"][n]), 0)
    kind = X86Rules(0).fault_kind(reason)
    if kind == GENERAL_PROTECTION:
        return NptProbeResult(EXIT_GP, 0, 0, 0)
    if kind != PAGE_FAULT:
        return None
    return NptProbeResult(svm.EXIT_PF, int(t.syndrome["error_code"][n]), int(t.syndrome["cr2"][n]), 0)


def tcg_deviation(want: NptProbeResult, reason: Reason) -> tuple[NptProbeResult, str | None]:
    """The QEMU 7.2 TCG answer for what the APM says, with the deviation's name (None when there is none):
    the one-stage TCG_RSVD_P0, on a guest #PF's error code or a nested page fault's EXITINFO1."""
    if want.exit_code not in (svm.EXIT_PF, svm.EXIT_NPF):
        return want, None
    tcg, why = one_stage_deviation(ProbeResult(14, want.exitinfo1, want.exitinfo2, 0), reason)
    return NptProbeResult(want.exit_code, tcg.error_code, want.exitinfo2, 0), why


def comparable(r: NptProbeResult, access: str) -> NptProbeResult:
    """A result as compared: A/D cleared in a loaded value (QEMU sets them in the tables it walks, and two
    tags, (PA << 8) | 0xCC, never differ only there); a failed access's value and RIP dropped."""
    if r.exit_code is None:
        value = r.value if access == "execute" else r.value & ~(PTE_4K.mask("A", "D"))
        return NptProbeResult(None, 0, 0, value)
    return NptProbeResult(r.exit_code, r.exitinfo1, r.exitinfo2, 0)


def guest_mode(registers: dict[str, int]) -> GuestMode:
    """The harness's guest for a set's guest registers: CR4.LA57, CR0.WP, CR4.SMEP/SMAP/PKE, EFER.NXE,
    RFLAGS.AC and PKRU as they are (the rest of the harness guest's registers is fixed: svm.GUEST_CR0,
    GUEST_CR4, GUEST_EFER; IA32_PAT, which no probe observes, is the reset one)."""
    r = registers
    return GuestMode(la57=bool(CR4.get(r["cr4"], "LA57")), wp=bool(CR0.get(r["cr0"], "WP")),
                     smep=bool(CR4.get(r["cr4"], "SMEP")), smap=bool(CR4.get(r["cr4"], "SMAP")),
                     pke=bool(CR4.get(r["cr4"], "PKE")), nxe=bool(EFER.get(r["efer"], "NXE")),
                     ac=bool(RFLAGS.get(r.get("rflags", 0), "AC")), pkru=r.get("pkru", 0))
