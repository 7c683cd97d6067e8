"""The x86-64 vector modes: which tables a vector set has, the registers that select them and configure the
walk, the CPU properties recorded as options, and the walker that computes the expected results
(docs/vectors.md).

  x86_64-4level       4-level paging (IA-32e, CR4.LA57=0): registers cr0, cr3, cr4, efer, pat, pkru, rflags
  x86_64-5level       5-level paging (CR4.LA57=1): the same registers
  x86_64-npt          AMD nested paging alone (guest paging off: case VAs are guest-physical): ncr3,
                      host_pat (the host's IA32_PAT, which nested entries index)
  x86_64-4level+npt   a 4-level guest over nested paging: the guest's registers (pat is its gPAT), ncr3,
                      host_pat
  x86_64-ept4         4-level EPT alone (case VAs are guest-physical): eptp
  x86_64-4level+ept4  a 4-level guest over 4-level EPT: the guest's registers and eptp
  x86-32              32-bit paging with CR4.PSE=1 (4 MiB pages) on a CPU without PSE-36, so PDE bits 20:13
                      of a 4 MiB page are reserved (SDM 4.3, Table 4-4): registers cr0, cr3, cr4, efer, pat,
                      rflags (no pkru: protection keys need IA-32e mode)
  x86-32-pse36        the same with PSE-36: PDE bits 20:13 are PA bits 39:32, the low M-32 of them with
                      M = min(MAXPHYADDR, 40), the others reserved
  x86-pae             PAE paging (CR4.PAE=1, IA32_EFER.LME=0; 4.4): the same registers; the PDPTE registers
                      are not recorded: they are what a MOV to CR3 loads from the 32 bytes at CR3
                      (`pae.load_pdptes`), and a set whose PDPT has a present entry with a reserved bit is
                      rejected (that MOV #GPs, SDM 4.4.1: no access is made, so no case can be judged)

Options: `maxphyaddr` (the CPU's physical-address width, CPUID.80000008H:EAX[7:0]; 40 as QEMU's default
CPUs) and `gbpages` (1-GByte pages, CPUID.80000001H:EDX[26]), with the informative `seed`. Everything else
that changes a walk (CR0.WP, CR4.SMEP/SMAP/PKE, EFER.NXE, RFLAGS.AC, PKRU, IA32_PAT) is read from the
registers, as the CPU reads it (`rules_from_registers`; Intel SDM Vol. 3A 4.1.3, 4.6).

A mode is a record of its stages (`X86VectorMode`): the linear-address paging format (none in the nested
modes alone), and a nested stage (NPT or EPT) whose registers follow the stage-1 ones. The nested walk runs
with the host's CR0.WP=1 and EFER.NXE=1 (NPT), and the CPU has execute-only EPT pages and no mode-based
execute control (EPT); MAXPHYADDR and 1-GByte pages (`options`) are the same for both stages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ... import args
from ...arch.x86_64 import (
    CR4,
    EPT4,
    EPTP,
    NPT4,
    PAGING4,
    PAGING5,
    PAGING32_PSE,
    PAGING32_PSE36,
    PAGING_PAE,
    PAT,
    EptOptions,
    EptRules,
    NptRules,
    X86Options,
    rules_from_registers,
)
from ...arch.x86_64.entry import PAT_TYPES
from ...arch.x86_64.pae import load_pdptes
from ...arch.x86_64.regs import paging_mode
from ...errors import InvalidArgument, PagetableError, PhysMemError
from ...format import PagingFormat
from ...physmem import PhysMem
from ...translation import MemoryType, WalkRules
from ...walker import Walker
from ..architecture import check_register_names, pa_bits_in
from ..schema import VectorsError, VectorSet, check_keys, check_one_stage, check_registers

ARCH = "x86_64"
PAGING_REGISTERS = ("cr0", "cr3", "cr4", "efer", "pat", "pkru", "rflags")
LEGACY_REGISTERS = ("cr0", "cr3", "cr4", "efer", "pat", "rflags")
"""The registers of 32-bit and PAE paging: those of 4-level paging but PKRU (protection keys need IA-32e mode,
SDM Vol. 3A 4.6.2)."""
_CODES = {t: code for code, t in PAT_TYPES.items()}
PAT_VALUE = PAT.build(**{f"PA{k}": _CODES[t] for k, t in enumerate((
    MemoryType.WB, MemoryType.WC, MemoryType.UC_MINUS, MemoryType.UC,
    MemoryType.WB, MemoryType.WP, MemoryType.UC_MINUS, MemoryType.WT))})
"""IA32_PAT as Linux programs it (arch/x86/mm/pat/memtype.c): WB, WC, UC-, UC, WB, WP, UC-, WT, so that pages
can have every memory type the PAT knows (SDM Vol. 3A 12.12.2); the reset value has no WC or WP entry."""

MAXPHYADDR = 40
"""The physical-address width of QEMU's default x86-64 CPUs (qemu64), which the generator records."""


@dataclass(frozen=True)
class X86VectorMode:
    """A vector mode: the paging format of linear addresses (`stage1`), and the nested stage's format with
    the registers that select it (`stage2`, `stage2_registers`; None and () in the one-stage modes)."""

    name: str
    stage1: PagingFormat | None
    stage2: PagingFormat | None = None
    stage2_registers: tuple[str, ...] = ()

    @property
    def registers(self) -> tuple[str, ...]:
        stage1 = () if self.stage1 is None else PAGING_REGISTERS if self.paging == "ia32e" else LEGACY_REGISTERS
        return stage1 + self.stage2_registers

    @property
    def gbpages(self) -> bool:
        """Whether the mode's walks can meet a 1-GByte page (CPUID.80000001H:EDX[26]): IA-32e paging and the
        nested stages, not 32-bit or PAE paging."""
        return self.paging == "ia32e"

    @property
    def paging(self) -> str:
        """The paging mode CR0.PG, CR4.PAE and IA32_EFER.LME select for the linear-address stage
        (`regs.paging_mode`): "32-bit", "pae" or "ia32e" (also the nested stage alone, whose host is in
        IA-32e mode)."""
        if self.stage1 is PAGING_PAE:
            return "pae"
        return "32-bit" if self.stage1 is not None and self.stage1.entry_size == 4 else "ia32e"

    @property
    def pse36(self) -> bool:
        """Whether the CPU has PSE-36 (32-bit paging's 4 MiB pages above 4 GiB; SDM 4.1.4)."""
        return self.stage1 is PAGING32_PSE36

    @property
    def la57(self) -> bool:
        return self.stage1 is not None and self.stage1.depth_count == 5

    @property
    def ept(self) -> bool:
        """Whether the nested stage is EPT (else AMD nested paging, when there is one)."""
        return self.stage2 is EPT4


VECTOR_MODES: dict[str, X86VectorMode] = {
    "x86_64-4level": X86VectorMode("x86_64-4level", PAGING4),
    "x86_64-5level": X86VectorMode("x86_64-5level", PAGING5),
    "x86_64-npt": X86VectorMode("x86_64-npt", None, NPT4, ("ncr3", "host_pat")),
    "x86_64-4level+npt": X86VectorMode("x86_64-4level+npt", PAGING4, NPT4, ("ncr3", "host_pat")),
    "x86_64-ept4": X86VectorMode("x86_64-ept4", None, EPT4, ("eptp",)),
    "x86_64-4level+ept4": X86VectorMode("x86_64-4level+ept4", PAGING4, EPT4, ("eptp",)),
    "x86-32": X86VectorMode("x86-32", PAGING32_PSE),
    "x86-32-pse36": X86VectorMode("x86-32-pse36", PAGING32_PSE36),
    "x86-pae": X86VectorMode("x86-pae", PAGING_PAE),
}


def vector_mode(name: str) -> X86VectorMode:
    """The vector mode called `name` (InvalidArgument, listing the modes, for anything else)."""
    mode: X86VectorMode = args.choice(name, "x86-64 vector mode", VECTOR_MODES)
    return mode


@dataclass(frozen=True)
class CpuOptions:
    """The CPU properties a vector set assumes that no register holds (its `options`)."""

    maxphyaddr: int = MAXPHYADDR
    gbpages: bool = True

    def __post_init__(self) -> None:
        args.integer(self.maxphyaddr, "maxphyaddr", 32, 53)
        args.boolean(self.gbpages, "gbpages")

    def to_json(self, mode: X86VectorMode) -> dict[str, Any]:
        """The options of a set of `mode`: `gbpages` only where a 1-GByte page can exist (IA-32e paging and
        nested paging; 32-bit and PAE paging have no such page, SDM Vol. 3A 4.3, 4.4)."""
        return {"maxphyaddr": self.maxphyaddr, **({"gbpages": self.gbpages} if mode.gbpages else {})}

    @classmethod
    def from_json(cls, doc: dict[str, Any], mode: X86VectorMode) -> CpuOptions:
        """A vector set's `options`: `maxphyaddr` (32 to 52), `gbpages` (where `mode` has 1-GByte pages) and
        the informative `seed`."""
        check_keys(doc, ["maxphyaddr", *(["gbpages"] if mode.gbpages else []), "seed"], "options",
                   f"for mode {mode.name}")
        for key, kind in (("maxphyaddr", int), ("gbpages", bool), ("seed", int)):
            if key in doc and type(doc[key]) is not kind:
                raise VectorsError(f"options.{key} must be {'an integer' if kind is int else 'true or false'}, "
                                   f"not {args.describe(doc[key])}")
        maxphyaddr = doc.get("maxphyaddr", MAXPHYADDR)
        if not 32 <= maxphyaddr <= 52:
            raise VectorsError(f"options.maxphyaddr must be from 32 to 52, not {maxphyaddr}")
        return cls(maxphyaddr, doc.get("gbpages", True))


def walker_for(vs: VectorSet) -> Walker:
    """The walker that computes a vector set's expected results from its registers, after checking that
    they select its mode's paging (CR0.PG, CR4.PAE, IA32_EFER.LME; CR4.LA57; CR4.PSE for 32-bit paging;
    EPTP's walk length) and a mode the walker has (no CR4.PKS: IA32_PKRS is not recorded). PAE paging walks
    through the PDPTE registers loaded from the set's memory at CR3 (a PDPT that would #GP at the load is an
    error)."""
    if vs.arch != ARCH or vs.mode not in VECTOR_MODES:
        raise VectorsError(f"arch {vs.arch!r} mode {vs.mode!r} is not supported ({ARCH}: {', '.join(VECTOR_MODES)})")
    mode = VECTOR_MODES[vs.mode]
    check_registers(vs, mode.registers, mode.name)
    if mode.stage2 is None:
        check_one_stage(vs, mode.name)
    cpu = CpuOptions.from_json(vs.options, mode)
    r = vs.registers
    try:
        nested = None if mode.stage2 is None else Walker(vs.mem, nested_rules(r, cpu))
        if mode.stage1 is None:
            assert nested is not None
            return nested
        selected = paging_mode(r["cr0"], r["cr4"], r["efer"])
        if selected != mode.paging:
            raise VectorsError(f"registers cr0 {r['cr0']:#x}, cr4 {r['cr4']:#x}, efer {r['efer']:#x} select "
                               f"{selected} paging, not {mode.name}'s "
                               f"{mode.paging} (CR4.PAE, IA32_EFER.LME: SDM Vol. 3A Table 4-1)")
        if mode.paging == "32-bit" and not CR4.get(r["cr4"], "PSE"):
            raise VectorsError(f"registers.cr4 {r['cr4']:#x} has PSE=0: {mode.name} has 4 MiB pages (CR4.PSE=1)")
        if mode.paging != "ia32e":
            return Walker(vs.mem, paging_rules(r, cpu, mode, vs.mem))
        if bool(CR4.get(r["cr4"], "LA57")) != mode.la57:
            raise VectorsError(f"registers.cr4 {r['cr4']:#x} has LA57={int(not mode.la57)}: "
                               f"{'4' if mode.la57 else '5'}-level paging, not {mode.name}")
        if r["cr4"] & CR4.mask("PKS"):
            raise VectorsError(f"registers.cr4 {r['cr4']:#x} has PKS=1: x86 vector sets record no IA32_PKRS")
        rules = paging_rules(r, cpu)
    except PagetableError as exc:
        raise VectorsError(f"registers: {exc}") from None
    return Walker(vs.mem, rules, stage2=nested)


def paging_rules(r: dict[str, int], cpu: CpuOptions, mode: X86VectorMode | None = None,
                 mem: PhysMem | None = None) -> WalkRules:
    """The linear-address paging's rules from the registers named in `r` (`PAGING_REGISTERS`: cr0, cr3,
    cr4, efer; pat, rflags, pkru and pkrs optional: IA32_PAT's power-up value, 0, 0, 0): 4-level or 5-level
    paging, or the 32-bit or PAE paging they select, on a CPU with PSE-36 as `mode` says (default: with)
    and, for PAE paging, the PDPTE registers: `pdpte0` to `pdpte3` of `r` where given, else loaded from `mem`
    at CR3 as a MOV to CR3 loads them (`pae.load_pdptes`, SDM 4.4.1)."""
    pdptes = None
    if mem is not None and paging_mode(r["cr0"], r["cr4"], r["efer"]) == "pae":
        given = [r[n] for n in PDPTE_REGISTERS if n in r]
        pdptes = tuple(given) if given else load_pdptes(mem, r["cr3"])
    return rules_from_registers(r["cr0"], r["cr3"], r["cr4"], r["efer"], r.get("pat"),
                                r.get("rflags", 0), r.get("pkru", 0), r.get("pkrs", 0),
                                maxphyaddr=cpu.maxphyaddr, gbpages=cpu.gbpages,
                                pse36=True if mode is None else mode.pse36, pdptes=pdptes)


GUEST_REGISTERS = ("cr0", "cr3", "cr4", "efer", "pat", "pkru", "pkrs", "rflags")
PDPTE_REGISTERS = ("pdpte0", "pdpte1", "pdpte2", "pdpte3")
"""PAE paging's PDPTE registers (SDM Vol. 3A 4.4.1; the VMCS's guest PDPTE0-3), when given rather than loaded
from the PDPT at CR3."""
NESTED_REGISTERS = ("ncr3", "host_pat", "eptp")
REGISTER_NAMES = GUEST_REGISTERS + PDPTE_REGISTERS + NESTED_REGISTERS
PA_BITS = 52
"""MAXPHYADDR when none is given: the architectural maximum (SDM Vol. 3A 4.1.4)."""


def walker_from_registers(mem: PhysMem, regs: dict[str, int], pa_bits: int | None = None) -> Walker:
    """The walker of a CPU whose registers hold `regs` (cr0, cr3, cr4, efer; pat, pkru, pkrs, rflags
    optional), with MAXPHYADDR `pa_bits` (32 to 52; default 52, the architectural maximum), 1-GByte pages
    and PSE-36, in the paging mode CR0.PG, CR4.PAE and IA32_EFER.LME select (Intel SDM Vol. 3A 4.1.1,
    Table 4-1; `regs.paging_mode`):
      32-bit paging  CR4.PAE=0 (CR4.PSE: 4 MiB pages, whose PA reaches bit min(MAXPHYADDR, 40) - 1, 4.3);
                     cr3 is CR3_32, a 32-bit value
      PAE paging     CR4.PAE=1, LME=0: the PDPTE registers are `pdpte0` to `pdpte3` (all four, or none),
                     else the four PDPTEs at CR3 bits 31:5 in `mem`, as a MOV to CR3 loads them (4.4.1); a
                     present one with a reserved bit (that MOV would #GP) is an error naming it, as is a PDPT
                     outside RAM
      IA-32e paging  CR4.PAE=1, LME=1: 4-level, or 5-level with CR4.LA57
    pkru and pkrs matter in IA-32e paging only (protection keys, 4.6.2). Registers that select no paging
    mode (CR0.PG=0; LME=1 without CR4.PAE) are an error naming them.

    With `ncr3` (AMD nested paging; `host_pat` optional, IA32_PAT's power-up value) or `eptp` (Intel EPT,
    4-level), the guest's walk goes through the nested tables (AMD APM Vol. 2 §15.25, SDM Vol. 3C §29.3);
    without any guest register the nested tables alone translate guest-physical addresses. A PAE guest
    over nested paging is refused: its CR3 is guest-physical, so its PDPTEs are not the bytes of `mem` there
    (and the walker has no PDPTE registers translated through the nested tables)."""
    check_register_names(regs, REGISTER_NAMES, (), "x86 paging")
    bits = pa_bits_in(pa_bits, PA_BITS, range(32, 53), "a MAXPHYADDR")
    cpu = CpuOptions(maxphyaddr=bits)
    nested_names = [n for n in ("ncr3", "eptp") if n in regs]
    if len(nested_names) > 1:
        raise InvalidArgument("registers ncr3 and eptp: give one nested-paging root, not both")
    if "host_pat" in regs and "ncr3" not in regs:
        raise InvalidArgument("register host_pat belongs to nested paging: give ncr3 with it")
    guest = nested_names == [] or any(n in regs for n in GUEST_REGISTERS)
    if guest:
        check_register_names(regs, REGISTER_NAMES, GUEST_REGISTERS[:4], "x86 paging")
    given = [n for n in PDPTE_REGISTERS if n in regs]
    if given and (len(given) < 4 or paging_mode(regs["cr0"], regs["cr4"], regs["efer"]) != "pae"):
        raise InvalidArgument(f"register {given[0]}: give the four PDPTE registers pdpte0 to pdpte3, and only with "
                              "PAE paging (CR4.PAE=1, IA32_EFER.LME=0); without them they are loaded from CR3")
    try:
        nested = None
        if nested_names:
            nested = Walker(mem, nested_rules(regs, cpu))
        if not guest:
            assert nested is not None
            return nested
        if nested is not None and paging_mode(regs["cr0"], regs["cr4"], regs["efer"]) == "pae":
            raise InvalidArgument(f"cr4 {regs['cr4']:#x}, efer {regs['efer']:#x} select PAE paging: a PAE guest over "
                                  "nested paging (ncr3, eptp) is not supported (its PDPT is guest-physical)")
        return Walker(mem, paging_rules(regs, cpu, mem=mem), stage2=nested)
    except PhysMemError as exc:
        raise InvalidArgument(f"registers: cr3 {regs['cr3']:#x}: the PAE PDPT (the PDPTE registers' source, "
                              f"SDM 4.4.1) is outside RAM: {exc}") from None
    except PagetableError as exc:
        raise InvalidArgument(f"registers: {exc}") from None


def nested_rules(r: dict[str, int], cpu: CpuOptions) -> WalkRules:
    """The nested walk's rules from `eptp` (4-level EPT), or from `ncr3` and `host_pat` (default: IA32_PAT at
    power-up), with the host's CR0.WP=1 and EFER.NXE=1."""
    if "eptp" in r:
        return _ept_rules(r["eptp"], cpu)
    return NptRules(r["ncr3"], X86Options(maxphyaddr=cpu.maxphyaddr, gbpages=cpu.gbpages), pat=r.get("host_pat"))


def _ept_rules(eptp: int, cpu: CpuOptions) -> WalkRules:
    if EPTP.get(eptp, "WALK") != 3:
        raise InvalidArgument(f"eptp {eptp:#x} does not select 4-level EPT (page-walk length "
                              f"{EPTP.get(eptp, 'WALK') + 1})")
    return EptRules(eptp, EptOptions(maxphyaddr=cpu.maxphyaddr, gbpages=cpu.gbpages))


__all__ = ["ARCH", "LEGACY_REGISTERS", "MAXPHYADDR", "PAGING_REGISTERS", "PAT_VALUE", "PA_BITS", "PDPTE_REGISTERS",
           "REGISTER_NAMES",
           "VECTOR_MODES", "CpuOptions", "X86VectorMode", "nested_rules", "paging_rules", "vector_mode", "walker_for",
           "walker_from_registers"]
