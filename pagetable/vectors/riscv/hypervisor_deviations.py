"""What QEMU 7.2's RISC-V hart reports for a two-stage access (the hypervisor extension: VS-stage through
vsatp, G-stage through hgatp; RISC-V Privileged spec 20211203, chapter 8), predicted from the walker with
each departure from the spec a named step (docs/qemu.md). Shared by `pagetable vectors verify --qemu` and
the differential test (tests/test_qemu_riscv_h_diff.py).

The harness (pagetable/vectors/riscv/qemu.py) probes loads and stores by HLV.D/HSV.D (RV32, qemu32:
HLV.W/HSV.W) from M-mode as VS- or VU-mode (hstatus.SPVP) and fetches by `mret` with MPV=1; a trap into
M-mode writes the syndrome the spec gives for HS-mode (scause, stval, htval, htinst) into mcause, mtval,
mtval2 and mtinst. The steps, applied
in this order, each turn the previous expectation into QEMU's (`predict`); a case that some of them change
is counted under those steps' names, and QEMU must then do exactly what they predict:

- A and D are updated by hardware (Svadu), never an A/D page fault (the one-stage deviation QEMU_AD);
- vsstatus.SUM is ignored for HLV/HSV (QEMU forces SUM);
- QEMU swaps the MXR bits: for HLV/HSV its VS-stage uses only sstatus.MXR and its G-stage only
  vsstatus.MXR, where the spec (8.2.3) has VS-stage vsstatus.MXR | sstatus.MXR and G-stage sstatus.MXR;
- the G-stage MXR (vsstatus.MXR, by the swap) also makes execute-only G-stage pages readable for the
  implicit reads of VS-stage tables, which MXR never affects in the spec (it applies to explicit loads);
  the step only adds vsstatus.MXR to those reads' MXR as the walker sets it (the spec: off), so a walker
  that let sstatus.MXR through to them would disagree with QEMU where vsstatus.MXR = 0 and sstatus.MXR = 1;
- setting A/D in a VS-stage PTE is not checked by the G-stage as an implicit store (8.5.1);
- a guest-physical address with bit 40 (Sv39x4), 49 (Sv48x4) or 58 (Sv57x4) set always faults (also one
  whose host-physical address has no RAM: QEMU faults before it gets there); on RV32 (Sv32x4) the G-stage
  instead walks the GPA's low 32 bits (a VS-stage table or page at a GPA with bits 33:32 set is found where
  those bits are clear), while mtval2 reports the whole GPA, and drops bits 33:32 of the final PA (a G-stage
  leaf's output), as it does for an Sv32 leaf's;
- a G-stage fault on a VS-stage table access is always a load guest-page fault (21), whatever the
  original access (the spec, 8.6.4: the original access type, 20/21/23);
- a table fetch from a physical address with no memory is a page fault (a guest-page fault in the
  G-stage), not an access fault (the one-stage deviation QEMU_TABLE_OUTSIDE);
- when that G-stage table fetch is for an implicit access (a VS-stage PTE's guest page), mtinst holds
  0x3000 (RV32: 0x2000), as for every implicit guest-page fault (QEMU_IMPLICIT_TABLE_OUTSIDE);
- a VS-stage PTE whose guest page the G-stage maps to no host memory is a VS-stage page fault (mtval2 =
  mtinst = 0), not an access fault (QEMU_VS_PTE_OUTSIDE).

QEMU 7.2 misbehaviours the harness avoids rather than predicts: its HLV/HSV TLB ignores hstatus.SPVP (the
stub runs hfence.gvma after every hstatus write), MPRV with MPV (the stub uses HLV/HSV), and VS-stage faults
of HLV/HSV reported as access faults under a Bare HS satp (`HS_SATP` is not Bare).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Literal

from ...arch.riscv_sv39 import PTE, SV32, SV32X4, SV39, Hgatp, Hgatp32, Satp, Satp32, Vsatp, Vsatp32, faults
from ...arch.riscv_sv39.walk import U8, U64, Bool, RiscvOptions, RiscvRules
from ...physmem import PhysMem
from ...translation import Region
from ...walker import Access, Reason, Translations, Walker
from ..schema import Case, VectorSet
from .deviations import QEMU_AD, QEMU_IMPLICIT_TABLE_OUTSIDE, QEMU_TABLE_OUTSIDE, QEMU_VS_PTE_OUTSIDE
from .qemu import RAM_BASE, ProbeCase, ProbeResult, plan_layout, run_probes
from .qemu32 import run_probes_rv32

CPU = "rv64,h=true"
"""QEMU's hart for the two-stage modes: RV64GC with the hypervisor extension."""
HS_SATP = Satp.for_table(SV39, RAM_BASE).encode()
"""The HS-level satp: never walked (the stub runs in M-mode), but not Bare (module docstring)."""
HS_SATP32 = Satp32.for_table(SV32, RAM_BASE).encode()
"""`HS_SATP` for an RV32 hart (qemu32.CPU_H, "rv32,h=true")."""
SUM_FORCED = "QEMU 7.2 ignores vsstatus.SUM for HLV/HSV (SUM forced) (docs/qemu.md)"
MXR_SWAPPED = ("QEMU 7.2 swaps the MXR bits: VS-stage sstatus.MXR only, G-stage vsstatus.MXR only "
               "(docs/qemu.md)")
IMPLICIT_MXR = ("QEMU 7.2's implicit G-stage reads of VS-stage tables honour vsstatus.MXR, which the spec "
                "applies to explicit loads only (docs/qemu.md)")
NO_GSTAGE_AD_CHECK = "QEMU 7.2 writes a VS-stage A/D update without the G-stage's store check (docs/qemu.md)"
IMPLICIT_LOAD = ("QEMU 7.2 reports a G-stage fault on a VS-stage table access as a load guest-page fault "
                 "(21), whatever the access (docs/qemu.md)")
GPA_BIT = {"Sv39x4": 40, "Sv48x4": 49, "Sv57x4": 58}
"""The guest-physical address bit, by G-stage format, that makes QEMU 7.2 fault (`gpa_bit_deviation`)."""
PA_TRUNCATED = ("QEMU 7.2 (RV32) drops bits 33:32 of a G-stage leaf's PA, as of an Sv32 leaf's (docs/qemu.md)")
GPA_TRUNCATED = ("QEMU 7.2 (RV32) walks the Sv32x4 G-stage on GPA bits 31:0 only, dropping bits 33:32, and reports "
                 "the whole GPA in mtval2 (docs/qemu.md)")

LOAD_GUEST_PAGE_FAULT = faults.cause(faults.GUEST_PAGE_FAULT, Access.READ)
GUEST_CAUSES = {faults.cause(faults.GUEST_PAGE_FAULT, a) for a in Access}
AD_BITS = PTE.mask("A", "D")

Outcome = tuple[object, ...]
"""A case's outcome as QEMU's trap shows it: ("ok", pa) or ("fault", mcause, mtval, mtval2, mtinst)."""


def gpa_bit_deviation(bit: int) -> str:
    """The name of the deviation that makes a guest-physical address with `bit` set fault."""
    return f"QEMU 7.2 always faults on a guest-physical address with bit {bit} set (docs/qemu.md)"


@dataclasses.dataclass(frozen=True)
class Status:
    """The status bits an access runs with: vsstatus.SUM, vsstatus.MXR and the HS-level sstatus.MXR."""

    vs_sum: bool = False
    vs_mxr: bool = False
    hs_mxr: bool = False

    @classmethod
    def of(cls, vs: VectorSet) -> Status:
        """The status bits a vector set assumes (its options `vs_sum`, `vs_mxr`, `hs_mxr`)."""
        o = vs.options
        return cls(bool(o.get("vs_sum")), bool(o.get("vs_mxr")), bool(o.get("hs_mxr")))


class _Rules(RiscvRules):
    """RiscvRules with QEMU 7.2's hypervisor deviations switched in: a VS-stage A/D update not checked by the
    G-stage (`write_back=False`), given rules for the G-stage's implicit accesses, and an Sv32x4 G-stage
    walked on the GPA's low 32 bits (`gpa32`: its root indexed by GPA bits 31:22 alone, the GPA itself, and
    so mtval2, left whole)."""

    def __init__(self, atp: Hgatp | Vsatp, options: RiscvOptions, write_back: bool = True,
                 implicit_rules: RiscvRules | None = None, gpa32: bool = False) -> None:
        super().__init__(atp, options)
        self.write_back = write_back
        self.implicit_rules = implicit_rules
        if gpa32:
            (region,) = self.regime.regions
            root, *rest = region.fmt.levels
            fmt = dataclasses.replace(region.fmt, levels=(dataclasses.replace(root, index_bits=root.index_bits - 2),
                                                          *rest))
            self.regime = dataclasses.replace(self.regime, regions=(dataclasses.replace(region, fmt=fmt),))

    def written(self, region: Region, depth: int, pte: U64, leaf: Bool, access: U8) -> U64:
        return super().written(region, depth, pte, leaf, access) if self.write_back else pte

    def implicit(self) -> RiscvRules:
        return self.implicit_rules or super().implicit()


@dataclasses.dataclass(frozen=True)
class Model:
    """How to compute one expectation: the walker's rules (the spec's with `Model()`, and the set's A/D
    scheme), and which of QEMU's departures (module docstring, in `steps` order) are switched in."""

    ad: Literal["svade", "svadu"] = "svade"
    force_sum: bool = False
    swap_mxr: bool = False
    implicit_mxr: bool = False
    no_write_back: bool = False
    gpa_bit: int | None = None
    gpa32: bool = False
    pa32: bool = False
    implicit_load: bool = False
    table_page_fault: bool = False
    implicit_table_htinst: bool = False
    vs_pte_page_fault: bool = False


def steps(gstage: str) -> list[tuple[str, Callable[[Model], Model]]]:
    """QEMU 7.2's departures for a G-stage format (`Sv32x4`, `Sv39x4`, ...), in order: each its name and the change it
    makes to a Model."""
    def step(**changes: object) -> Callable[[Model], Model]:
        return lambda m: dataclasses.replace(m, **changes)  # type: ignore[arg-type]
    rv32 = gstage == SV32X4.name
    gpa = [(GPA_TRUNCATED, step(gpa32=True)), (PA_TRUNCATED, step(pa32=True))] if rv32 else \
        [(gpa_bit_deviation(GPA_BIT[gstage]), step(gpa_bit=GPA_BIT[gstage]))]
    return [(QEMU_AD, step(ad="svadu")), (SUM_FORCED, step(force_sum=True)), (MXR_SWAPPED, step(swap_mxr=True)),
            (IMPLICIT_MXR, step(implicit_mxr=True)), (NO_GSTAGE_AD_CHECK, step(no_write_back=True)), *gpa,
            (IMPLICIT_LOAD, step(implicit_load=True)), (QEMU_TABLE_OUTSIDE, step(table_page_fault=True)),
            (QEMU_IMPLICIT_TABLE_OUTSIDE, step(implicit_table_htinst=True)),
            (QEMU_VS_PTE_OUTSIDE, step(vs_pte_page_fault=True))]


def registers(vs: VectorSet) -> tuple[Vsatp, Hgatp]:
    """A two-stage set's vsatp and hgatp, decoded as RV32's (`Vsatp32`, `Hgatp32`) in the RV32 modes (those
    over Sv32x4: `sv32x4`, `sv32+sv32x4`), else as RV64's."""
    if vs.mode.startswith("sv32"):
        return Vsatp32.decode(vs.registers["vsatp"]), Hgatp32.decode(vs.registers["hgatp"])
    return Vsatp.decode(vs.registers["vsatp"]), Hgatp.decode(vs.registers["hgatp"])


def walker(mem: PhysMem, atps: tuple[Vsatp, Hgatp], model: Model, status: Status, data: bool) -> Walker:
    """The two-stage walker (vsatp over hgatp: `atps`) that predicts an access under `status` by `model`: for
    a load or store with `data`, else for a fetch."""
    vs_sum = status.vs_sum or (data and model.force_sum)
    vs_stage_mxr, g_stage_mxr = status.vs_mxr or status.hs_mxr, status.hs_mxr
    if model.swap_mxr:
        vs_stage_mxr, g_stage_mxr = status.hs_mxr, status.vs_mxr
    vsatp, hgatp = atps
    # the implicit accesses' rules start from the spec's G-stage (sstatus.MXR), whatever the swap did to the
    # explicit ones, so that a walker applying MXR to them is caught, not excused by the swap
    implicit_options = RiscvRules.gstage(hgatp, RiscvOptions(mxr=status.hs_mxr, ad=model.ad)).implicit().options
    if model.implicit_mxr:
        implicit_options = dataclasses.replace(implicit_options, mxr=implicit_options.mxr or status.vs_mxr)
    implicit = _Rules(hgatp, implicit_options, gpa32=model.gpa32)
    g = Walker(mem, _Rules(hgatp, RiscvOptions(mxr=g_stage_mxr, ad=model.ad), implicit_rules=implicit,
                           gpa32=model.gpa32))
    stage1 = _Rules(vsatp, RiscvOptions(sum=vs_sum, mxr=vs_stage_mxr, ad=model.ad),
                    write_back=not model.no_write_back)
    return Walker(mem, stage1, stage2=g)


def outcome(t: Translations, n: int, access: str, model: Model, mem: PhysMem, xlen: int = 64) -> Outcome:
    """Lane `n` as QEMU should report it: the walker's syndrome (scause, stval, htval, htinst, as a trap
    into M-mode writes them into mcause, mtval, mtval2 and mtinst), with the model's reporting quirks (the
    pseudoinstructions those of an RV`xlen` hart; `mem` the machine's, for a final PA QEMU truncates)."""
    reason, stage, gpa = Reason(int(t.reason[n])), int(t.stage[n]), int(t.gpa[n])
    final = reason == Reason.OK or (reason == Reason.PA_OUTSIDE_MEMORY and not t.implicit[n])   # the final GPA
    if final and model.gpa_bit is not None and gpa >> model.gpa_bit & 1:
        return ("fault", faults.cause(faults.GUEST_PAGE_FAULT, Access.parse(access)), int(t.va[n]), gpa >> 2, 0)
    if model.pa32 and final and int(t.pa[n]) >> 32 and mem.contains(int(t.pa[n]) & 0xFFFF_FFFF):
        return ("ok", int(t.pa[n]) & 0xFFFF_FFFF)
    if reason == Reason.OK:
        return ("ok", int(t.pa[n]))
    cause, tval, htval, htinst = (int(t.syndrome[k][n]) for k in ("scause", "stval", "htval", "htinst"))
    if model.table_page_fault and reason == Reason.TABLE_OUTSIDE_MEMORY:
        kind = faults.GUEST_PAGE_FAULT if stage == 2 else faults.PAGE_FAULT
        cause, htval = faults.cause(kind, Access.parse(access)), gpa >> 2 if stage == 2 else 0
        if model.implicit_table_htinst and stage == 2 and t.implicit[n]:
            htinst = faults.HTINST_PTE[xlen][0]
    if model.vs_pte_page_fault and reason == Reason.PA_OUTSIDE_MEMORY and stage == 2 and t.implicit[n]:
        cause, htval, htinst = faults.cause(faults.PAGE_FAULT, Access.parse(access)), 0, 0
    if model.implicit_load and cause in GUEST_CAUSES and t.implicit[n]:
        cause = LOAD_GUEST_PAGE_FAULT
    return ("fault", cause, tval, htval, htinst)


def expectations(mem: PhysMem, vs: VectorSet, model: Model, status: Status) -> list[Outcome]:
    """Every case of `vs` as `model` predicts it under `status`."""
    lanes = vs.lanes()
    atps = registers(vs)
    runs = {data: (walker(mem, atps, model, status, data).translate_many(*lanes)) for data in (False, True)}
    return [outcome(runs[c.access != "execute"], n, c.access, model, mem, atps[1].xlen)
            for n, c in enumerate(vs.cases)]


@dataclasses.dataclass(frozen=True)
class Prediction:
    """A set's cases under one Status: as the spec says (`manual`), as QEMU 7.2 should report them (`qemu`),
    and the names of the departures that make each case's two differ (`names`, in `steps` order)."""

    manual: list[Outcome]
    qemu: list[Outcome]
    names: list[list[str]]


def predict(mem: PhysMem, vs: VectorSet, status: Status) -> Prediction:
    """Apply `steps` one by one from the spec's walk (with the set's A/D scheme), noting each case a step
    changes."""
    model = Model(ad="svadu" if vs.options.get("ad") == "svadu" else "svade")
    manual = current = expectations(mem, vs, model, status)
    names: list[list[str]] = [[] for _ in vs.cases]
    for name, change in steps(gstage(vs)):
        model = change(model)
        nxt = expectations(mem, vs, model, status)
        for n, (before, after) in enumerate(zip(current, nxt, strict=True)):
            if before != after:
                names[n].append(name)
        current = nxt
    return Prediction(manual, current, names)


def gstage(vs: VectorSet) -> str:
    """The name of a two-stage set's G-stage format (hgatp.MODE: `Sv39x4`, `Sv48x4`, `Sv57x4`)."""
    fmt = registers(vs)[1].format
    assert fmt is not None, "a two-stage set's hgatp is never Bare"
    return fmt.name


def platform(image: bytes, n_probes: int, xlen: int = 64) -> PhysMem:
    """The memory QEMU's `virt` machine gives a run of `n_probes` over `image` on an RV`xlen` hart: RAM from
    RAM_BASE, the image at its start (the stub's region after it, which no case's tables reach)."""
    mem = PhysMem([(RAM_BASE, plan_layout(len(image), n_probes, xlen).ram_size)])
    mem.write(RAM_BASE, image)
    return mem


def probe_cases(cases: Sequence[Case], status: Status) -> list[ProbeCase]:
    """The harness's probes of `cases` with V=1 under `status`."""
    return [ProbeCase(c.va, c.access, c.privilege, mxr=status.hs_mxr, virt=True, vs_sum=status.vs_sum,
                      vs_mxr=status.vs_mxr) for c in cases]


def xlen(vs: VectorSet) -> int:
    """The XLEN of the hart a two-stage set runs on: 32 over Sv32x4, else 64."""
    return registers(vs)[1].xlen


def run(vs: VectorSet, image: bytes, probes: Sequence[ProbeCase]) -> list[ProbeResult]:
    """Run `probes` over `image` with the set's vsatp and hgatp on its XLEN's hart with the hypervisor
    extension: qemu-system-riscv64 `CPU`, or qemu-system-riscv32 `qemu32.CPU_H` (HS satp not Bare)."""
    hgatp, vsatp = vs.registers["hgatp"], vs.registers["vsatp"]
    if xlen(vs) == 32:
        return run_probes_rv32(image, HS_SATP32, probes, hgatp=hgatp, vsatp=vsatp)
    return run_probes(image, HS_SATP, probes, hgatp=hgatp, vsatp=vsatp, cpu=CPU)


def case_outcome(c: Case) -> Outcome:
    """What a vectors.json case says the spec's hart reports, as an Outcome."""
    if c.pa is not None:
        return ("ok", c.pa)
    assert c.syndrome is not None
    return ("fault", c.syndrome["scause"], c.syndrome["stval"], c.syndrome["htval"], c.syndrome["htinst"])


def observed(got: ProbeResult, access: str, va: int, want: Outcome, mem: PhysMem, xlen: int = 64) -> str | None:
    """None when QEMU did what `want` says (a load by the XLEN-bit word at the PA in `mem`, bits 7:6 of both
    aside: QEMU sets A/D in the PTEs it walks, and a tag, PA << 16 or RV32's `qemu32.tag`, names its PA
    without them); else what differs."""
    if want[0] == "ok":
        pa = int(want[1])  # type: ignore[call-overload]
        if got.cause is not None:
            return f"expected PA {pa:#x}, QEMU: cause {got.cause} (mtval2 {got.tval2:#x})"
        if access == "execute":
            return None if got.value == va else f"fetch reached mepc {got.value:#x}"
        value = mem.entries(xlen // 8).read(pa)
        return None if got.value & ~AD_BITS == value & ~AD_BITS else \
            f"expected PA {pa:#x} holding {value:#x}, QEMU loaded {got.value:#x}"
    _, cause, tval, tval2, tinst = want
    if (got.cause, got.tval, got.tval2, got.tinst) == (cause, tval, tval2, tinst):
        return None
    return (f"expected cause {cause} mtval {tval:#x} mtval2 {tval2:#x} mtinst {tinst:#x}, QEMU: {got.cause} "
            f"{got.tval:#x} {got.tval2:#x} {got.tinst:#x}")
