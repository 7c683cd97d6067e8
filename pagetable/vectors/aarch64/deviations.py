"""An AArch64 vector set run on QEMU 7.2 (`-M virt,virtualization=on -cpu max`): every case by AT (reads
and writes: PAR_EL1) and, with stage 1 on, by a real access (ESR_ELx, FAR_ELx, HPFAR_EL2), compared with
the walker, and QEMU's known departures from the Arm ARM named where they are predicted (docs/qemu.md's
numbered notes). Shared by `pagetable vectors verify --qemu` and tests/test_qemu_aarch64_diff.py."""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from ...arch.aarch64 import SCTLR_EL1
from ...translation import Translation
from ...walker import Access, Reason, Walker
from ..schema import VectorSet
from . import qemu as q
from .layout import RAM_BASE, VIRT_RAM_BASE, tag
from .modes import walker_for
from .qemu import ProbeCase, ProbeResult, Registers

BLOCK_LEVEL = "QEMU 7.2 accepts a block at a level without blocks (notes 1, 14)"
DEVICE_FETCH = "QEMU 7.2 executes from Device memory (note 20)"
LEVEL_MINUS_1_BLOCK = ("QEMU 7.2 accepts a level -1 block and aborts on a fault there (note 15): "
                       "such cases are not sent")
S1PTW_LEVEL = ("QEMU 7.2 reports a stage 2 fault on a stage 1 table read with the stage 1 lookup level; the "
               "manual (ESR_EL2.DFSC, D24.2.46; AArch64.S1Walk returns the stage 2 fault record) gives the stage 2 "
               "walk's level, as the walker does")
NO_RAM = ("QEMU virt has PCIe MMIO at 512 GiB, where the sets put their 'outside RAM' tables and pages: a page there "
          "reads without a fault, a table there is refused (an Address size fault at its level); the walker's "
          "outcome for an address with no RAM is platform-defined (external-abort)")
NOT_RUN = "not run on QEMU: an EL0 case in the EL2 regime, or a fetch from a page that holds no tag"
DEVICE = ("real access not run on QEMU (AT is): the PA is in QEMU virt's device space (below RAM at 0x4000_0000), "
          "where a device (the PL011 UART, the GIC, ...) answers; the image has no RAM there (an External abort)")


def expect(w: Walker, vas: list[int], access: str, el: int) -> list[tuple[Translation, int]]:
    """The walker's translation of each VA, and the PA it computed (also where that PA is not RAM). EL0 is
    the user privilege, EL1 and EL2 the supervisor one."""
    privilege = "user" if el == 0 else "supervisor"
    many = w.translate_many(np.array(vas, dtype=np.uint64), access, privilege)
    return [(w.translate(va, access, privilege), int(many.pa[k])) for k, va in enumerate(vas)]


def compare_at(t: Translation, pa: int, got: ProbeResult, stage2_alone: bool = False) -> str | None:
    """A disagreement between the walker and AT's PAR_EL1, or None (`stage2_alone`: `t` is a stage 2
    walker's, whose faults AT S12E1R/W reports as stage 2's)."""
    if t.ok or (t.reason == Reason.PA_OUTSIDE_MEMORY and not t.implicit):    # AT translates; only the access aborts
        if not got.ok:
            return f"walker translates, AT faults (PAR {got.par:#x})"
        want = pa & ~0xFFF
        return None if got.pa == want else f"PA {got.pa:#x}, walker {want:#x}"
    if got.ok:
        return f"walker faults ({t.reason.label} level {t.level}), AT gives PA {got.pa:#x}"
    fsc = t.syndrome["esr"] & 0x3F
    s2, ptw = bool(got.par is not None and got.par >> 9 & 1), bool(got.par is not None and got.par >> 8 & 1)
    expected = (fsc, t.stage == 2 or stage2_alone, bool(t.syndrome["esr"] >> 7 & 1))
    return None if (got.fsc, s2, ptw) == expected else f"FST/S/PTW {(got.fsc, s2, ptw)}, walker {expected}"


def compare_access(t: Translation, got: ProbeResult, image: bytes, access: str) -> str | None:
    """A disagreement between the walker and a real access (the value loaded, the RIP reached, or the
    exception's EL, ESR's EC/IL/ISS[7:0], FAR and, for a stage 2 fault, HPFAR), or None."""
    if t.ok:
        if not got.ok:
            return f"walker translates, QEMU faults (EL{got.el} ESR {got.esr:#x})"
        assert t.pa is not None
        if access == "write":                             # the store completed (its load may not have)
            return None
        want = t.va if access == "execute" else int.from_bytes(image[t.pa - RAM_BASE:t.pa - RAM_BASE + 8], "little")
        return None if got.value == want else f"value {got.value:#x}, walker {want:#x}"
    if got.ok:
        return f"walker faults ({t.reason.label} level {t.level}), QEMU succeeds"
    esr = t.syndrome["esr"]
    mask = 0xFE00_00FF                                   # EC, IL, ISS[7:0]: DFSC/IFSC, WnR, S1PTW
    expected = (t.syndrome["el"], esr & mask, t.va, t.syndrome["hpfar"] if t.stage == 2 else 0)
    have = (got.el or 0, got.esr & mask, got.far, got.hpfar if t.stage == 2 else 0)
    return None if expected == have else f"(EL, ESR, FAR, HPFAR) {[hex(v) for v in have]}, walker " \
        f"{[hex(v) for v in expected]}"


def vector_registers(vs: VectorSet) -> Registers:
    """The harness's registers from a vector set's (stage 2 alone: stage 1 off)."""
    chosen = {k: v for k, v in vs.registers.items() if k in {f.name for f in dataclasses.fields(Registers)}}
    if "sctlr_el1" not in chosen and "sctlr_el2" not in chosen:
        chosen["sctlr_el1"] = Registers().sctlr_el1 & ~SCTLR_EL1.mask("M")
    return dataclasses.replace(Registers(), **cast(dict[str, Any], chosen))


def predicted(t: Translation, normal: Translation) -> str | None:
    """The named QEMU difference a generated case shows, if any (`normal`: the same case with every MAIR
    attribute Normal memory)."""
    if t.reason == Reason.RESERVED and t.level < 3:
        return BLOCK_LEVEL
    if t.reason == Reason.PERMISSION and t.access == Access.EXECUTE and normal.ok:
        return DEVICE_FETCH
    return None


def level_only(t: Translation, got: ProbeResult) -> bool:
    """Whether QEMU's fault differs from a stage 2 fault on a stage 1 table read in the level bits alone."""
    have = got.fsc if got.par is not None else got.esr & 0xFF
    want = t.syndrome["esr"] & (0x3F if got.par is not None else 0xFF)
    return have & ~3 == want & ~3 and have != want


def _table_without_ram(t: Translation) -> bool:
    """A walk that read a table where there is no RAM (directly, or at the host PA stage 2 gave the table's
    IPA): what the platform answers there is its own (NO_RAM), for AT as for an access."""
    return t.reason == Reason.TABLE_OUTSIDE_MEMORY or (t.reason == Reason.PA_OUTSIDE_MEMORY and t.implicit)


def tagged(image: bytes, pa: int) -> bool:
    """Whether the word at `pa` is RAM holding its tag (a fetch there executes BRK #0xA64 and comes back)."""
    offset = pa - RAM_BASE
    return 0 <= offset < len(image) - 8 and int.from_bytes(image[offset:offset + 8], "little") == tag(pa)


@dataclass
class SetRun:
    """A vector set's probes on QEMU: `probes` (case index, method) in order; `failures` (case index, what
    differs) outside the named deviations; `predicted` and `differed` count each named deviation where it
    was predicted and where QEMU then differed (equal when QEMU does what is known of it); `platform` the
    real accesses to addresses with no RAM that differed (NO_RAM) of `outside` such accesses; `skipped`
    cases not sent, by why; `unseen` (case index, deviation) where a predicted deviation did not occur."""

    probes: list[tuple[int, str]] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)
    predicted: Counter[str] = field(default_factory=Counter)
    differed: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    unseen: list[tuple[int, str]] = field(default_factory=list)
    platform: int = 0
    outside: int = 0


def run_vector_set(vs: VectorSet, qemu: str | None = None, timeout: float = 300) -> SetRun:
    """Probe every case of an AArch64 vector set on QEMU and compare with the walker (module docstring)."""
    w = walker_for(vs)
    all_normal: dict[str, int] = {k: 0xFFFF_FFFF_FFFF_FFFF for k in ("mair_el1", "mair_el2") if k in vs.registers}
    normal = walker_for(dataclasses.replace(vs, registers={**vs.registers, **all_normal}))
    regs = vector_registers(vs)
    stage1 = bool(SCTLR_EL1.get(regs.sctlr_el1, "M")) or "sctlr_el2" in vs.registers
    el2 = "sctlr_el2" in vs.registers
    image = vs.mem.read(RAM_BASE, vs.mem.regions[0].size)
    out = SetRun()
    probes: list[tuple[int, Translation, int, str]] = []           # case, expectation, PA, method
    for n, c in enumerate(vs.cases):
        el = 2 if el2 else 0 if c.privilege == "user" else 1
        if el2 and c.privilege == "user":
            out.skipped[NOT_RUN] += 1                            # no EL0 in the EL2 regime: the walker's fiction
            continue
        t, pa = expect(w, [c.va], c.access, el)[0]
        if t.reason == Reason.RESERVED and t.level == -1:
            out.skipped[LEVEL_MINUS_1_BLOCK] += 1
            continue
        if c.access == "execute" and t.ok and not tagged(image, pa):
            out.skipped[NOT_RUN] += 1                            # a fetch there would run whatever is there
            continue
        device = t.reason == Reason.PA_OUTSIDE_MEMORY and not t.implicit and pa < VIRT_RAM_BASE
        if device and stage1:                                    # a device answers a real access (the UART prints)
            out.skipped[DEVICE] += 1
        if c.access != "execute" and not _table_without_ram(t):
            probes.append((n, t, pa, "at"))
        if stage1 and not device:
            probes.append((n, t, pa, "access"))
    cases = [ProbeCase(vs.cases[n].va, vs.cases[n].access, 2 if el2 else 0 if vs.cases[n].privilege == "user"
                       else 1, method, regs) for n, _, _, method in probes]
    order = sorted(range(len(cases)), key=lambda k: cases[k].access == "write")   # writes last (ACCESSES)
    run = q.run_probes(image, [cases[k] for k in order], qemu=qemu, timeout=timeout)
    results: dict[int, ProbeResult] = dict(zip(order, run.results, strict=True))
    for k, (n, t, pa, method) in enumerate(probes):
        c, got = vs.cases[n], results[k]
        out.probes.append((n, method))
        diff = compare_at(t, pa, got, not stage1) if method == "at" else compare_access(t, got, run.image, c.access)
        el = 0 if c.privilege == "user" else 1
        why = predicted(t, normal.translate(c.va, c.access, "user" if el == 0 else "supervisor")) \
            if method == "access" or c.access != "execute" else None
        if (_table_without_ram(t) or t.reason == Reason.PA_OUTSIDE_MEMORY) and method == "access":
            out.outside += 1
            out.platform += diff is not None                  # NO_RAM: allowed, counted
        elif diff is not None and t.implicit and level_only(t, got):
            out.predicted[S1PTW_LEVEL] += 1
            out.differed[S1PTW_LEVEL] += 1
        elif why is not None:
            out.predicted[why] += 1
            out.differed[why] += diff is not None
            if diff is None:
                out.unseen.append((n, why))
        elif diff is not None:
            out.failures.append((n, f"{c.va:#x} {c.access} {c.privilege} {method} [{c.label}]: {diff}"))
    return out
