"""`pagetable vectors verify`: check a vector set against the walker, its images against their recorded
digests, and (every RISC-V mode without Svpbmt/Svnapot, x86-64 4- and 5-level paging and a 4-level guest
over AMD nested paging, every AArch64 mode) every case against QEMU 7.2's MMU (docs/vectors.md, "Verifying
a vector set").

Without QEMU, every case is walked again on the set's own image (`expected_cases`) and compared field by
field, as `vectors check` does; the report counts agreements and disagreements by the expected outcome
(`ok` or the fault kind) and shows the first disagreements. A bit flipped in a table entry a case walks
through changes that case; one flipped where no case looks (a data word) changes none, so the image's
SHA-256 (recorded in `memory[].sha256` when the set was written) is checked too.

With QEMU, each case's access is performed for real by the harnesses (pagetable/vectors/riscv/qemu.py, and
riscv/qemu32.py for Sv32 on qemu-system-riscv32: loads and stores with MPRV from M-mode, fetches by mret,
and in the two-stage modes HLV/HSV and mret with
MPV=1 on `-cpu rv64,h=true`; pagetable/vectors/x86_64/qemu.py: accesses at CPL 0 and 3 under the set's
registers, on TCG, and x86_64/qemu32.py for 32-bit and PAE paging; pagetable/vectors/x86_64/svm.py: guest
accesses under SVM with nested paging;
pagetable/vectors/aarch64/deviations.py: AT and real accesses) and its trap or value compared; QEMU 7.2's
known deviations from the manuals are named and counted, not failures, and only where predicted
(pagetable/vectors/riscv/deviations.py, riscv/hypervisor_deviations.py, x86_64/deviations.py,
x86_64/npt_deviations.py, aarch64/deviations.py). `qemu_refusal` names what QEMU lacks for the modes it
cannot run: EPT (TCG has no VMX) and nested paging alone (a guest with paging off reaches 4 GiB).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ..arch.riscv_sv39 import PTE, faults
from ..arch.riscv_sv39.entry import pte_paddr
from ..arch.x86_64 import CR3
from ..errors import PagetableError
from ..walker import Access, Reason, Translations, Walker
from .aarch64 import deviations as a64
from .aarch64.modes import VECTOR_MODES as AARCH64_MODES
from .expected import expected_cases
from .riscv import hypervisor_deviations as rvh
from .riscv.deviations import (
    DEVICE_SPACE_END,
    QEMU_AD,
    QEMU_DEVICE,
    QEMU_RV32_WIDE_VA,
    QEMU_SV32_PA,
    QEMU_SV32_PA_ELSEWHERE,
    SV32_PA_MASK,
    qemu_cause,
    sv32_table_fetch_as_spec,
)
from .riscv.modes import VECTOR_MODES as RISCV_MODES
from .riscv.modes import walker_for as riscv_walker_for
from .riscv.qemu import RAM_BASE as RISCV_RAM_BASE
from .riscv.qemu import ProbeCase, run_probes
from .riscv.qemu32 import run_probes_rv32
from .schema import Case, VectorSet
from .x86_64 import deviations as x86
from .x86_64 import npt_deviations as npt
from .x86_64 import probes as x86_probes
from .x86_64 import svm
from .x86_64.layout import RAM_BASE as X86_RAM_BASE
from .x86_64.layout import RAM_SIZE as X86_RAM_SIZE
from .x86_64.modes import VECTOR_MODES as X86_MODES
from .x86_64.modes import CpuOptions, nested_rules, paging_rules

AD_BITS = PTE.mask("A", "D")
QEMU_MODES = (*RISCV_MODES, "x86_64-4level", "x86_64-5level", "x86_64-4level+npt", "x86-32", "x86-32-pse36",
              "x86-pae", *AARCH64_MODES)
"""The modes `--qemu` runs: every RISC-V mode without Svpbmt and Svnapot (the harness runs the hart as
QEMU's `-cpu rv64`, with `h=true` for the two-stage modes; Sv32 as qemu-system-riscv32's `-cpu rv32`),
x86-64 4- and 5-level paging and a 4-level
guest over AMD nested paging (TCG), and every AArch64 mode."""
QEMU_LACKS = {
    "x86_64-ept4": "EPT needs VMX (Intel VT-x), which QEMU 7.2's TCG does not emulate (it has SVM only)",
    "x86_64-4level+ept4": "EPT needs VMX (Intel VT-x), which QEMU 7.2's TCG does not emulate (it has SVM only)",
    "x86_64-npt": ("nested paging alone needs a guest with paging off, which runs in 32-bit mode (long mode needs "
                   "CR0.PG) and reaches only 4 GiB of the set's guest-physical addresses"),
}
"""The modes `--qemu` refuses, with what QEMU's machine lacks to run them."""
_REASONS = {r.label: r for r in Reason}          # a case's (informative) reason, by its label
DIFFERS = "differs from the sha256 in vectors.json"


def file_digest(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file, as lowercase hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def outcome_kind(case: Case) -> str:
    """What a case expects, for counting: `ok` or its fault kind."""
    return "ok" if case.pa is not None else str(case.fault)


@dataclass
class Report:
    """What `verify` found: per expected outcome, the cases that agree and disagree; `details` the
    disagreeing cases (index, one line each), `deviations` QEMU's named deviations by name, `images` each
    image file with `matches`, DIFFERS or `not recorded` (its SHA-256 against vectors.json)."""

    judge: str
    agree: collections.Counter[str] = field(default_factory=collections.Counter)
    disagree: collections.Counter[str] = field(default_factory=collections.Counter)
    details: list[tuple[int, str]] = field(default_factory=list)
    deviations: collections.Counter[str] = field(default_factory=collections.Counter)
    images: list[tuple[str, str]] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """A disagreement that is not a named deviation, or an image that differs from its digest."""
        return bool(self.details) or any(state == DIFFERS for _, state in self.images)

    def to_json(self, shown: int) -> dict[str, object]:
        """The report as one JSON object (`--json`): images, counts by outcome, named deviations and the
        first `shown` disagreements."""
        return {"judge": self.judge, "images": [{"file": f, "sha256": state} for f, state in self.images],
                "agree": dict(sorted(self.agree.items())), "disagree": dict(sorted(self.disagree.items())),
                "deviations": dict(sorted(self.deviations.items())),
                "disagreements": [{"case": n, "detail": text} for n, text in self.details[:shown]],
                "failed": self.failed}

    def lines(self, shown: int) -> list[str]:
        """The report as printed: images, counts by outcome, named deviations, the first `shown`
        disagreements, and a last line `N agree, M disagree`."""
        out = [f"image {name}: {state}" for name, state in self.images]
        for kind in sorted(set(self.agree) | set(self.disagree)):
            out.append(f"{self.judge} {kind}: {self.agree[kind]} agree, {self.disagree[kind]} disagree")
        out += [f"named deviation ({n} cases): {name}" for name, n in sorted(self.deviations.items())]
        out += [f"case {n}: {text}" for n, text in self.details[:shown]]
        if len(self.details) > shown:
            out.append(f"... and {len(self.details) - shown} more disagreements")
        out.append(f"{sum(self.agree.values())} agree, {sum(self.disagree.values())} disagree"
                   + (f", {sum(self.deviations.values())} named deviations" if self.deviations else ""))
        return out


def check_images(directory: str | os.PathLike[str], images: Sequence[tuple[str, str | None]]) -> list[tuple[str, str]]:
    """Each (file, recorded SHA-256 or None) of a vector set with `matches`, DIFFERS or `not recorded`."""
    return [(name, "not recorded" if digest is None else
             "matches" if file_digest(os.path.join(directory, name)) == digest else
             DIFFERS) for name, digest in images]


def show(values: tuple[object, ...]) -> str:
    """An outcome tuple as `vectors check` prints it (integers above 9 in hex)."""
    def one(v: object) -> str:
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} {one(x)}" for k, x in v.items()) + "}"
        return hex(v) if type(v) is int and v > 9 else str(v)
    return "(" + ", ".join(one(v) for v in values) + ")"


def verify_walker(vs: VectorSet, walker: Walker, attributes: bool) -> Report:
    """Walk every case again on the set's image and compare (pa, fault, level, stage, gpa, implicit,
    syndrome, and with `attributes` perms and memtype)."""
    report = Report("walker")
    walked = expected_cases(walker, *vs.lanes(), attributes=attributes)
    for n, (c, w) in enumerate(zip(vs.cases, walked, strict=True)):
        with_syndrome = c.syndrome is not None              # a version 1 file records none
        want, got = c.outcome(with_syndrome, attributes), w.outcome(with_syndrome, attributes)
        if want == got:
            report.agree[outcome_kind(c)] += 1
            continue
        report.disagree[outcome_kind(c)] += 1
        report.details.append((n, f"{c.va:#x} {c.access} {c.privilege}: expected {show(want)}, walker says "
                                  f"{show(got)} ({w.reason})"))
    return report


def _count(report: Report, n: int, c: Case, disagreement: str | None, deviations: Sequence[str] = ()) -> None:
    """Count case `n` under its expected outcome: as agreeing, with the named deviations that explain it,
    or (with a `disagreement`) as disagreeing, with that shown."""
    if disagreement is not None:
        report.disagree[outcome_kind(c)] += 1
        report.details.append((n, f"{c.va:#x} {c.access} {c.privilege}: {disagreement}"))
        return
    report.agree[outcome_kind(c)] += 1
    report.deviations.update(deviations)


def _x86_names(c: Case, why: str | None) -> list[str]:
    """The named deviations of an x86 case QEMU agreed on: NO_RAM for a `no-memory` case, and TCG's `why`."""
    return ([x86.NO_RAM] if c.fault == "no-memory" else []) + ([why] if why else [])


def _reached(vs: VectorSet, c: Case, cause: int | None, tval: int, value: int, pa: int) -> str | None:
    """None when QEMU's access of case `c` went to `pa`: no trap and the XLEN word at `pa` loaded (A/D
    aside), or for a fetch mepc = the VA (the tag there traps); else what QEMU did instead."""
    if cause is not None:
        return f"expected pa {pa:#x}, QEMU: cause {cause} tval {tval:#x}"
    if c.access == "execute":
        return None if value == c.va else f"expected pa {pa:#x}, QEMU's fetch reached mepc {value:#x}"
    # QEMU sets A/D in the PTEs it walks; a data word's bits 7:6 (RV64: PA << 16, zero; RV32: opcode bit 6
    # and PA bit 2, fixed by the case's VA) cannot tell two PAs apart
    held = vs.mem.read_u32(pa) if RISCV_MODES[vs.mode].xlen == 32 else vs.mem.read_u64(pa)
    return None if value & ~AD_BITS == held & ~AD_BITS else f"expected pa {pa:#x} holding {held:#x}, QEMU loaded " \
        f"{value:#x}"


def qemu_mismatch(vs: VectorSet, n: int, cause: int | None, tval: int, value: int,
                  updated_cause: dict[int, int | None] | None = None,
                  truncated: int | None = None, table: int = 0) -> tuple[str | None, str | None]:
    """Compare case `n` with what QEMU's hart did (mcause or None, mtval, the value loaded or mepc):
    (a disagreement or None, the named deviation that explains a difference or None). `updated_cause`: for
    the cases Svade faults on for A/D, what the access gives once QEMU has set A/D (`svadu_causes`).
    `truncated`: for an Sv32 case whose leaf's PA is above 4 GiB, the PA QEMU 7.2 reaches instead (bits
    33:32 dropped: QEMU_SV32_PA); `table`: the PA of the table a PTE fetch outside RAM was for (Sv32:
    `sv32_table_fetch_as_spec`)."""
    c = vs.cases[n]
    if c.reason == Reason.ACCESSED_DIRTY.label and cause == (updated_cause or {}).get(n) and \
            (cause is None or tval == c.va):
        return None, QEMU_AD
    if truncated is not None and c.reason == Reason.PA_OUTSIDE_MEMORY.label:
        diff = _reached(vs, c, cause, tval, value, truncated)
        return (None, QEMU_SV32_PA) if diff is None else (f"{diff} ({QEMU_SV32_PA})", None)
    if c.pa is not None:
        return _reached(vs, c, cause, tval, value, c.pa), None
    assert c.syndrome is not None
    as_spec = RISCV_MODES[vs.mode].xlen == 32 and sv32_table_fetch_as_spec(c.privilege, c.access,
                                                                          bool(vs.options.get("sum")), table)
    qemu, deviation = qemu_cause(_REASONS.get(c.reason, Reason.OK), c.access, c.syndrome["scause"], as_spec)
    want = (qemu, c.syndrome["stval"])
    if (cause, tval) == want:
        return None, deviation
    shown = "success" if cause is None else f"cause {cause} tval {tval:#x}"
    return f"expected {c.fault} (cause {want[0]} tval {want[1]:#x}), QEMU: {shown}", None


def svadu_causes(vs: VectorSet) -> dict[int, int | None]:
    """For each case of a RISC-V set that faults for A/D under Svade: the mcause of the same access once the
    hardware has set A/D, as QEMU 7.2 does (QEMU_AD): None when it then succeeds, an access fault when its
    PA has no RAM."""
    lanes = [n for n, c in enumerate(vs.cases) if c.reason == Reason.ACCESSED_DIRTY.label]
    if not lanes:
        return {}
    walker = riscv_walker_for(dataclasses.replace(vs, options={**vs.options, "ad": "svadu"}))
    va, access, privilege = (column[lanes] for column in vs.lanes())
    t = walker.translate_many(va, access, privilege)
    return {n: None if t.reason[k] == Reason.OK else
            faults.cause(walker.fault_kind(Reason(int(t.reason[k]))), Access(int(access[k])))
            for k, n in enumerate(lanes)}


@dataclass(frozen=True)
class RiscvReach:
    """Where a RISC-V set's accesses go on QEMU and which it cannot be asked (`riscv_unprobed`)."""

    not_run: dict[str, int]             # the count of cases not run, by name
    probed: list[int]                   # the cases to run
    reached: Translations               # the walk of every case, any output address a target
    pa: NDArray[np.uint64]              # each case's PA as QEMU reaches it
    truncated: NDArray[np.bool_]        # the cases whose PA QEMU truncated


def riscv_unprobed(vs: VectorSet, walker: Walker) -> RiscvReach:
    """Where a RISC-V set's accesses go on QEMU and which it cannot be asked: the cases not run (a PA in
    virt's device space; on RV32, a leaf above 4 GiB whose PA modulo 2**32, where QEMU 7.2 goes, is not the
    image's, and a VA above 32 bits: a non-canonical one, or Sv32x4 alone a GPA above 4 GiB), and each case's
    PA as QEMU reaches it (RV32: PA bits 33:32 dropped, QEMU_SV32_PA, or of a G-stage leaf's,
    hypervisor_deviations.PA_TRUNCATED)."""
    rv32 = RISCV_MODES[vs.mode].xlen == 32
    va = vs.lanes()[0]
    reached = walker.beyond_ram().translate_many(*vs.lanes())
    ok = reached.reason == Reason.OK
    pa = reached.pa & np.uint64(SV32_PA_MASK) if rv32 else reached.pa        # where QEMU's access goes
    truncated = ok & (pa != reached.pa)
    lanes_by_name = {QEMU_DEVICE: ok & (pa < DEVICE_SPACE_END),
                     QEMU_SV32_PA_ELSEWHERE: truncated & ~vs.mem.contains_np(pa, 4),
                     QEMU_RV32_WIDE_VA: va >> np.uint64(32) != 0 if rv32 else np.zeros(len(va), dtype=bool)}
    skipped = np.zeros(len(va), dtype=bool)
    counts: dict[str, int] = {}
    for name, lanes in lanes_by_name.items():
        if (lanes & ~skipped).any():
            counts[name] = int((lanes & ~skipped).sum())
        skipped |= lanes
    return RiscvReach(counts, np.flatnonzero(~skipped).tolist(), reached, pa, truncated)


def verify_qemu(vs: VectorSet, walker: Walker) -> Report:
    """Run every case of a RISC-V one-stage set on QEMU and compare: Sv39/48/57 on qemu-system-riscv64, Sv32
    on qemu-system-riscv32 (`run_probes_rv32`; a leaf above 4 GiB reaches the PA modulo 2**32 there,
    QEMU_SV32_PA). `walker`: the set's, which also says where each access lands. The cases QEMU cannot be
    asked (a PA in virt's device space, an Sv32 leaf whose PA modulo 2**32 is not the image's, an RV32 VA
    above 32 bits) are counted under their names, not run. Raises the harness's QemuUnavailable/
    ToolchainUnavailable when QEMU or binutils are missing."""
    image = _one_image(vs, RISCV_RAM_BASE)
    report = Report("qemu")
    rv32 = RISCV_MODES[vs.mode].xlen == 32
    sum_, mxr = bool(vs.options.get("sum")), bool(vs.options.get("mxr"))      # mstatus as the set assumes
    reach = riscv_unprobed(vs, walker)
    report.deviations.update(reach.not_run)
    cases = [ProbeCase(vs.cases[n].va, vs.cases[n].access, vs.cases[n].privilege, sum_, mxr) for n in reach.probed]
    satp = vs.registers["satp"]
    results = run_probes_rv32(image, satp, cases) if rv32 else run_probes(image, satp, cases)
    updated = svadu_causes(vs)
    for n, got in zip(reach.probed, results, strict=True):
        diff, deviation = qemu_mismatch(vs, n, got.cause, got.tval, got.value, updated,
                                        int(reach.pa[n]) if reach.truncated[n] else None,
                                        pte_paddr(int(reach.reached.pte[n])))
        _count(report, n, vs.cases[n], diff, [deviation] if deviation is not None else [])
    return report


def qemu_refusal(vs: VectorSet) -> str | None:
    """Why `--qemu` cannot run a vector set, in one line (None when it can)."""
    if vs.mode in QEMU_LACKS:
        return f"--qemu cannot run {vs.arch} {vs.mode}: {QEMU_LACKS[vs.mode]}"
    if vs.options.get("svpbmt") or vs.options.get("svnapot"):
        return (f"--qemu cannot run this {vs.mode} set: it assumes Svpbmt or Svnapot, which the harness's QEMU hart "
                "(-cpu rv64) is not run with; build or generate it without them")
    if vs.mode not in QEMU_MODES:
        return f"--qemu runs {', '.join(QEMU_MODES)} sets, not {vs.arch} {vs.mode}"
    return None


def verify_qemu_set(vs: VectorSet, walker: Walker) -> Report:
    """Run a vector set of a mode `--qemu` runs (`qemu_refusal` says None) on its architecture's QEMU, with
    the walker that computes its expectations."""
    if vs.arch == "riscv64":
        return verify_qemu_riscv_h(vs, walker) if "hgatp" in vs.registers else verify_qemu(vs, walker)
    if vs.arch == "x86_64":
        return verify_qemu_npt(vs, walker) if "ncr3" in vs.registers else verify_qemu_x86(vs, walker)
    return verify_qemu_aarch64(vs, walker)


def _one_image(vs: VectorSet, base: int) -> bytes:
    """The set's image, which the harness loads at `base` (its machine's RAM)."""
    if len(vs.mem.regions) != 1 or vs.mem.regions[0].base != base:
        raise PagetableError(f"--qemu loads one image at {base:#x}, QEMU's RAM, not {vs.mem.describe()}")
    return vs.mem.regions[0].data.tobytes()


def verify_qemu_riscv_h(vs: VectorSet, walker: Walker) -> Report:
    """Run every case of a RISC-V two-stage set (G-stage alone, or VS-stage over G-stage) on
    qemu-system-riscv64 `-cpu rv64,h=true` with V=1 (pagetable/vectors/riscv/hypervisor_deviations.py:
    HLV.D/HSV.D, or mret with MPV=1, under the set's vsstatus.SUM/MXR and sstatus.MXR); Sv32x4 sets on
    qemu-system-riscv32 `-cpu rv32,h=true` (`run_probes_rv32`: HLV.W/HSV.W). A case agrees when its recorded
    outcome is the walker's and QEMU does what the steps from the spec to QEMU 7.2 predict; the steps that
    change a case are its named deviations. The cases QEMU cannot be asked (`riscv_unprobed`: a final PA in
    virt's device space; an Sv32x4 case whose VA, with vsatp Bare its GPA, is above 32 bits, which an RV32
    hart's HLV/HSV and mepc cannot hold) are counted under their names, not run."""
    report = verify_walker(vs, walker, attributes=False)
    report.judge = "qemu"
    wrong = {n for n, _ in report.details}
    image = _one_image(vs, RISCV_RAM_BASE)
    status = rvh.Status.of(vs)
    xlen = rvh.xlen(vs)
    reach = riscv_unprobed(vs, walker)
    report.deviations.update(reach.not_run)
    probed = reach.probed
    probes = rvh.probe_cases([vs.cases[n] for n in probed], status)
    results = rvh.run(vs, image, probes)
    mem = rvh.platform(image, len(probes), xlen)
    predicted = rvh.predict(mem, vs, status)
    report.agree.clear()
    for n, got in zip(probed, results, strict=True):
        c = vs.cases[n]
        if n in wrong:
            continue
        names = predicted.names[n]
        diff = rvh.observed(got, c.access, c.va, predicted.qemu[n], mem, xlen)
        _count(report, n, c, None if diff is None else diff + (f" (predicted by: {'; '.join(names)})" if names else ""),
               names)
    report.details.sort()
    return report


def verify_qemu_npt(vs: VectorSet, walker: Walker) -> Report:
    """Run every case of an `x86_64-4level+npt` set on qemu-system-x86_64 (TCG) as a guest access under SVM
    with nested paging (pagetable/vectors/x86_64/svm.py, with the set's nCR3, and its guest CR3, CR0.WP,
    CR4.LA57/SMEP/SMAP/PKE, EFER.NXE, RFLAGS.AC and PKRU). A case agrees when its recorded outcome is the
    walker's on the set's image and QEMU ends it as the walker predicts on QEMU's `-M pc` platform
    (npt_deviations.py: the #VMEXIT with EXITINFO1/EXITINFO2; TCG_RSVD_P0; an address with no RAM reads as 0:
    NO_RAM); a fetch from a page with no RAM is not probed (FETCH_NO_RAM). The harness's nested root entry
    goes in an empty nCR3 slot, where a case's GPA meets a not-present entry as the set expects (one level
    lower: the same EXITINFO1 and EXITINFO2), unless it is one of the stub's GPAs: then QEMU translates it
    and the case disagrees."""
    report = verify_walker(vs, walker, attributes=True)
    report.judge = "qemu"
    wrong = {n for n, _ in report.details}
    image = _one_image(vs, X86_RAM_BASE)
    r = vs.registers
    cpu = CpuOptions.from_json(vs.options, X86_MODES[vs.mode])
    mem = x86.platform(image)
    t = Walker(mem, paging_rules(r, cpu), stage2=Walker(mem, nested_rules(r, cpu))).translate_many(*vs.lanes())
    probed = _x86_probed(vs, walker, wrong, report)
    run = svm.run_npt_probes(image, CR3.get(r["cr3"], "ADDR") << 12, CR3.get(r["ncr3"], "ADDR") << 12,
                             [svm.NptProbeCase(vs.cases[n].va, vs.cases[n].access, vs.cases[n].privilege)
                              for n in probed], maxphyaddr=cpu.maxphyaddr, guest=npt.guest_mode(r))
    report.agree.clear()
    for n, got in zip(probed, run.results, strict=True):
        c, reason = vs.cases[n], Reason(int(t.reason[n]))
        apm = npt.expected(t, n, c.access, mem)
        want, why = (None, None) if apm is None else npt.tcg_deviation(apm, reason)
        agrees = want is not None and npt.comparable(got, c.access) == npt.comparable(want, c.access)
        _count(report, n, c, None if agrees else f"walker on QEMU's platform {reason.label} {want}, QEMU {got}",
               _x86_names(c, why))
    report.details.sort()
    return report


def _x86_probed(vs: VectorSet, walker: Walker, wrong: set[int], report: Report) -> list[int]:
    """The cases an x86 harness probes: all but those the walker disagrees with already and those it cannot
    run (`x86.unprobed`, by where `walker`, QEMU's walk, reaches: counted in `report` under their
    deviation)."""
    probed = []
    reached = walker.beyond_ram().translate_many(*vs.lanes())
    for n, c in enumerate(vs.cases):
        why = x86.unprobed(vs.mem, c, int(reached.pa[n]) if reached.reason[n] == Reason.OK else None)
        if why is not None and n not in wrong:
            report.deviations[why] += 1
        elif n not in wrong:
            probed.append(n)
    return probed


def verify_qemu_x86(vs: VectorSet, walker: Walker) -> Report:
    """Run every case of an x86 one-stage set (4/5-level paging; 32-bit and PAE paging) on qemu-system-x86_64
    (TCG) with the set's registers (pagetable/vectors/x86_64/probes.py: which harness, and the rules QEMU's
    walk follows). A case agrees when its recorded outcome is the walker's on the set's image and QEMU does
    what those rules predict on QEMU's platform (no RAM reads as 0: NO_RAM; a reserved-bit #PF with P=0:
    TCG_RSVD_P0; 32-bit paging's 4 MiB pages always PSE-36: PSE36_BITS); fetches from pages with no RAM, or
    from a word that is not its tag (a page table), are not probed (FETCH_NO_RAM, FETCH_NO_TAG): they count
    as those deviations alone."""
    report = verify_walker(vs, walker, attributes=True)
    report.judge = "qemu"
    wrong = {n for n, _ in report.details}
    h = x86_probes.harness(vs)
    image = vs.mem.read(X86_RAM_BASE, X86_RAM_SIZE)
    model = Walker(vs.mem, h.qemu_rules)
    mem = x86.platform(image, x86.outside_pages(model, vs.lanes()))
    t = Walker(mem, h.qemu_rules).translate_many(*vs.lanes())
    sdm = t if h.rules is h.qemu_rules else Walker(mem, h.rules).translate_many(*vs.lanes())
    probed = _x86_probed(vs, model, wrong, report)
    results = h.run(image, [vs.cases[n] for n in probed])
    report.agree.clear()
    for n, got in zip(probed, results, strict=True):
        c, reason = vs.cases[n], Reason(int(t.reason[n]))
        want = x86.expected(t, n, c.access, h.qemu_rules.fault_kind)
        why = None
        if want is not None:
            want, why = x86.tcg_deviation(want, reason)
        agrees = want is not None and x86.agrees(want, got, c.access, mem, int(t.pa[n]))
        departs = [h.deviation] if h.deviation and x86.departs(t, sdm, n) else []
        _count(report, n, c, None if agrees else f"walker on QEMU's platform {reason.label} {want}, QEMU {got}",
               _x86_names(c, why) + departs)
    report.details.sort()
    return report


def verify_qemu_aarch64(vs: VectorSet, walker: Walker) -> Report:
    """Run every case of an AArch64 set on qemu-system-aarch64 (pagetable/vectors/aarch64/deviations.py:
    AT and, with stage 1 on, a real access). A case agrees when its recorded outcome is the walker's and
    none of its probes differs from the walker outside a named deviation; a named deviation predicted where
    QEMU then agreed with the manual is a disagreement too (QEMU changed)."""
    report = verify_walker(vs, walker, attributes=True)
    report.judge = "qemu"
    wrong = {n for n, _ in report.details}
    run = a64.run_vector_set(vs)
    failed = dict(run.failures) | {n: f"QEMU did not show the predicted deviation: {why}" for n, why in run.unseen}
    report.agree.clear()
    for n in sorted({n for n, _ in run.probes} - wrong):
        c = vs.cases[n]
        if n in failed:
            report.disagree[outcome_kind(c)] += 1
            report.details.append((n, f"{c.va:#x} {c.access} {c.privilege}: {failed[n]}"))
        else:
            report.agree[outcome_kind(c)] += 1
    report.deviations.update({k: v for k, v in run.differed.items() if v})
    report.deviations.update(run.skipped)
    if run.platform:
        report.deviations[a64.NO_RAM] = run.platform
    report.details.sort()
    return report
