"""Which QEMU harness runs an x86 vector set's cases, and the walk rules that predict what QEMU does there
(`vectors verify --qemu`, docs/qemu.md).

IA-32e sets (4- and 5-level paging) run on the 64-bit harness (`qemu.run_probes`) with the set's registers;
QEMU walks as the SDM says, so the prediction is the set's own rules. 32-bit and PAE sets run on the
protected-mode harness (`qemu32.run_probes_32`) on `-cpu max,phys-bits=M`, M the set's MAXPHYADDR (so PAE's
reserved address bits are the set's), with the set's CR0, CR4, IA32_EFER and EFLAGS. There QEMU 7.2 takes
the PDE bits 20:13 of a 4 MiB page as PA bits 39:32 whatever CPUID.PSE-36 and MAXPHYADDR say (`PSE36_BITS`),
so its walk of 32-bit paging is the SDM's on a CPU with PSE-36 and MAXPHYADDR 40 (`Harness.qemu_rules`);
the cases where that walk and the set's part are that deviation's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ...errors import PagetableError
from ...translation import WalkRules
from ..schema import Case, VectorSet
from . import qemu, qemu32
from .modes import VECTOR_MODES, CpuOptions, paging_rules

PSE36_BITS = ("QEMU 7.2 TCG: PDE bits 20:13 of a 4 MiB page are PA bits 39:32 whatever CPUID.PSE-36 and MAXPHYADDR "
              "say (mmu_translate reserves bit 21 alone), where the SDM reserves those above min(MAXPHYADDR, 40) "
              "(Table 4-4)")
CHUNK = 10_000
"""The most cases one run of a harness takes (its stub's 2 MiB hold the cases and results)."""


@dataclass(frozen=True)
class Harness:
    """How a set's cases run on QEMU: `rules` the set's (the SDM's), `qemu_rules` those QEMU's walk follows
    (the same object when QEMU departs from none), `deviation` the name of a departure between the two,
    and the set's registers and CPU for `run`."""

    vs: VectorSet
    rules: WalkRules
    qemu_rules: WalkRules
    deviation: str | None

    def run(self, image: bytes, cases: Sequence[Case]) -> list[qemu.ProbeResult]:
        """QEMU's result of each case (the image at RAM_BASE), `CHUNK` cases a run; PagetableError for
        registers the stub cannot run."""
        try:
            return [result for k in range(0, len(cases), CHUNK) for result in self._run(image, cases[k:k + CHUNK])]
        except ValueError as exc:
            raise PagetableError(f"--qemu: the probe stub cannot run this set: {exc}") from None

    def _run(self, image: bytes, cases: Sequence[Case]) -> list[qemu.ProbeResult]:
        """One run of the mode's harness (ValueError for what its stub cannot run)."""
        r, mode = self.vs.registers, VECTOR_MODES[self.vs.mode]
        if mode.paging == "ia32e":
            regs = qemu.Registers(cr0=r["cr0"], cr4=r["cr4"], efer=r["efer"], rflags=r["rflags"], pkru=r["pkru"])
            return qemu.run_probes(image, r["cr3"], [qemu.ProbeCase(c.va, c.access, c.privilege, regs)
                                                     for c in cases]).results
        regs32 = qemu32.Registers32(cr0=r["cr0"], cr4=r["cr4"], efer=r["efer"], rflags=r["rflags"])
        return qemu32.run_probes_32(image, r["cr3"], [qemu32.ProbeCase32(c.va, c.access, c.privilege, regs32)
                                                      for c in cases], paging="pae" if mode.paging == "pae" else "32",
                                    cpu=f"max,phys-bits={self.vs.options['maxphyaddr']}").results


def harness(vs: VectorSet) -> Harness:
    """The harness of an x86 one-stage set (`vectors verify --qemu`), with the rules that predict QEMU."""
    mode = VECTOR_MODES[vs.mode]
    needed = ("cr0", "cr3", "cr4", "efer", "rflags") + (("pkru",) if mode.paging == "ia32e" else ())
    missing = [k for k in needed if k not in vs.registers]
    if missing:
        raise PagetableError(f"--qemu needs the registers {', '.join(missing)}")
    cpu = CpuOptions.from_json(vs.options, mode)
    rules = paging_rules(vs.registers, cpu, mode, vs.mem)
    if mode.paging != "32-bit" or (mode.pse36 and cpu.maxphyaddr >= 40):
        return Harness(vs, rules, rules, None)
    model = paging_rules(vs.registers, CpuOptions(maxphyaddr=40), VECTOR_MODES["x86-32-pse36"], vs.mem)
    return Harness(vs, rules, model, PSE36_BITS)


__all__ = ["CHUNK", "PSE36_BITS", "Harness", "harness"]
