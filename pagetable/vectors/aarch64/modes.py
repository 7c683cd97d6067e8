"""The AArch64 vector modes: which translation a vector set has, the System register values that select
and configure it, the PE property recorded as an option, and the walker that computes the expected results
from those registers (docs/vectors.md).

  aarch64-4k-48           EL1&0 stage 1, 4KB granule, 48-bit VAs in both halves (TTBR0 user, TTBR1 kernel)
  aarch64-4k-39           ... 39-bit VAs (the walk starts at level 1)
  aarch64-16k-47          ... 16KB granule, 47-bit VAs
  aarch64-64k-48          ... 64KB granule, 48-bit VAs
  aarch64-64k-52          ... 64KB granule, 52-bit VAs and OAs (FEAT_LPA, FEAT_LVA; OA[51:48] in bits 15:12)
  aarch64-4k-52-lpa2      ... 4KB granule, 52-bit VAs and OAs (FEAT_LPA2, TCR_EL1.DS=1: a level -1)
  aarch64-el2-4k-48       the EL2 regime (HCR_EL2.E2H=0: TTBR0_EL2 alone, no EL0), 4KB, 48-bit VAs
  aarch64-s2-4k-40        stage 2 alone (case VAs are IPAs): 4KB granule, 40-bit IPAs from level 1 with
                          two concatenated level 1 tables
  aarch64-s2-64k-42       stage 2 alone: 64KB granule, 42-bit IPAs from level 2 (one table of 8192 entries)
  aarch64-s2-16k-40       stage 2 alone: 16KB granule, 40-bit IPAs from level 2 with 16 concatenated level 2
                          tables
  aarch64-4k-48+s2-4k-40  both stages: the EL1&0 4KB 48-bit stage 1 (its tables in IPA space) over that
                          stage 2
  aarch64-64k-48+s2-64k-42  both stages: the EL1&0 64KB 48-bit stage 1 over the 64KB 42-bit stage 2
  aarch64-16k-47+s2-16k-40  both stages: the EL1&0 16KB 47-bit stage 1 over the 16KB 40-bit stage 2

Registers (hex in vectors.json, as a harness loads them): EL1&0 `ttbr0_el1`, `ttbr1_el1`, `tcr_el1`,
`mair_el1`, `sctlr_el1`; EL2 `ttbr0_el2`, `tcr_el2`, `mair_el2`, `sctlr_el2`; stage 2 `vttbr_el2`,
`vtcr_el2`, `hcr_el2`. Option: `pa_range`, the implemented PA size (ID_AA64MMFR0_EL1.PARange: 48, or 52 in
the 52-bit modes), with the informative `seed`. The walker is rebuilt from the registers by
`regimes.el1_rules`, `el2_rules` and `stage2_rules`, so `vectors check` tests their decoding too; a value that
selects another granule, size, initial level or form than the mode's is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ... import args
from ...arch.aarch64 import Granule, OAForm, regs
from ...arch.aarch64.modes import stage1_format, stage2_format
from ...arch.aarch64.regimes import el1_rules, el2_rules, stage2_rules
from ...errors import InvalidArgument, PagetableError
from ...format import PagingFormat
from ...physmem import PhysMem
from ...translation import WalkRules
from ...walker import Walker
from ..architecture import check_register_names, pa_bits_in
from ..schema import VectorsError, VectorSet, check_keys, check_one_stage, check_registers

ARCH = "aarch64"
EL1_REGISTERS = ("ttbr0_el1", "ttbr1_el1", "tcr_el1", "mair_el1", "sctlr_el1")
EL2_REGISTERS = ("ttbr0_el2", "tcr_el2", "mair_el2", "sctlr_el2")
STAGE2_REGISTERS = ("vttbr_el2", "vtcr_el2", "hcr_el2")
S2_IPA_BITS, S2_START, S2_PS_BITS = 40, 1, 40
"""Stage 2 of the 4KB stage 2 modes (the defaults of `A64VectorMode`): a 40-bit IPA space
(VTCR_EL2.T0SZ=24) from level 1 (SL0=0b01: two concatenated level 1 tables), output size 40 bits
(PS=0b010). The 42-bit IPA modes have a 42-bit output size (PS=0b011): the manual bounds the IPA size by
the PA size alone (AArch64.S2TxSZFaults, S2MinTxSZ: PAMax), but QEMU 7.2 faults every stage 2 access
whose IPA space is wider than PS (check_s2_mmu_setup's "inputsize > outputsize", CONSTRAINED UNPREDICTABLE
in its reading; later QEMU drops it), so no mode relies on either."""
_PA_CODES = {bits: code for code, bits in regs.PA_BITS.items()}


@dataclass(frozen=True)
class A64VectorMode:
    """A vector mode: the stage 1 regime (`regime` "el1" or "el2", None in the stage 2 mode alone) with its
    granule, VA size and OA form, the output size its TCR gives (`ips_bits`, below the form's so that
    Address size faults exist, except in the 52-bit modes), whether stage 2 applies (`stage2`), and stage 2's
    granule, IPA size, initial lookup level and output size (`s2_granule`, `s2_ipa_bits`, `s2_start`,
    `s2_ps_bits`: VTCR_EL2.TG0, T0SZ, SL0 and PS)."""

    name: str
    regime: str | None
    granule: Granule = Granule.K4
    va_bits: int = 48
    form: OAForm = OAForm.OA48
    ips_bits: int = 40
    stage2: bool = False
    s2_granule: Granule = Granule.K4
    s2_ipa_bits: int = S2_IPA_BITS
    s2_start: int = S2_START
    s2_ps_bits: int = S2_PS_BITS

    @property
    def registers(self) -> tuple[str, ...]:
        stage1 = {"el1": EL1_REGISTERS, "el2": EL2_REGISTERS, None: ()}[self.regime]
        return stage1 + (STAGE2_REGISTERS if self.stage2 else ())

    @property
    def pa_range(self) -> int:
        """The implemented PA size the mode assumes: 52 bits for the 52-bit forms, else 48."""
        return self.form.oa_bits

    def stage1_formats(self) -> tuple[PagingFormat, ...]:
        """The stage 1 formats: TTBR0's and (EL1&0) TTBR1's."""
        if self.regime is None:
            return ()
        halves = (False, True) if self.regime == "el1" else (False,)
        return tuple(stage1_format(self.granule, self.va_bits, self.form, upper=u) for u in halves)

    @property
    def stage2_format(self) -> PagingFormat | None:
        return stage2_format(self.s2_granule, self.s2_ipa_bits, self.s2_start) if self.stage2 else None


VECTOR_MODES: dict[str, A64VectorMode] = {m.name: m for m in (
    A64VectorMode("aarch64-4k-48", "el1"),
    A64VectorMode("aarch64-4k-39", "el1", va_bits=39),
    A64VectorMode("aarch64-16k-47", "el1", Granule.K16, 47),
    A64VectorMode("aarch64-64k-48", "el1", Granule.K64, 48),
    A64VectorMode("aarch64-64k-52", "el1", Granule.K64, 52, OAForm.LPA, 52),
    A64VectorMode("aarch64-4k-52-lpa2", "el1", Granule.K4, 52, OAForm.LPA2, 52),
    A64VectorMode("aarch64-el2-4k-48", "el2"),
    A64VectorMode("aarch64-s2-4k-40", None, stage2=True),
    A64VectorMode("aarch64-s2-64k-42", None, stage2=True, s2_granule=Granule.K64, s2_ipa_bits=42, s2_start=2,
                  s2_ps_bits=42),
    A64VectorMode("aarch64-s2-16k-40", None, stage2=True, s2_granule=Granule.K16, s2_ipa_bits=40, s2_start=2),
    A64VectorMode("aarch64-4k-48+s2-4k-40", "el1", stage2=True),
    A64VectorMode("aarch64-64k-48+s2-64k-42", "el1", Granule.K64, 48, stage2=True, s2_granule=Granule.K64,
                  s2_ipa_bits=42, s2_start=2, s2_ps_bits=42),
    A64VectorMode("aarch64-16k-47+s2-16k-40", "el1", Granule.K16, 47, stage2=True, s2_granule=Granule.K16,
                  s2_ipa_bits=40, s2_start=2),
)}


def vector_mode(name: str) -> A64VectorMode:
    """The vector mode called `name` (InvalidArgument, listing the modes, for anything else)."""
    mode: A64VectorMode = args.choice(name, "AArch64 vector mode", VECTOR_MODES)
    return mode


def _code(table: dict[int, Granule], granule: Granule) -> int:
    return next(code for code, g in table.items() if g is granule)


def registers_for(mode: A64VectorMode, roots: tuple[int, ...], s2_root: int | None) -> dict[str, int]:
    """The register values selecting `mode`'s tables at `roots` (TTBR0's, TTBR1's) and `s2_root`: TnSZ, the
    granules, IPS/PS, DS in the LPA2 mode, Inner Shareable Write-Back walks, EPD0=EPD1=0 and TBI=0 (every
    VA bit translated), HA=HD=0 (AF=0 faults); SCTLR_ELx M, C, I with WXN=0; Linux's MAIR; HCR_EL2.VM and
    RW for stage 2 (D24.2.194, D24.2.195, D24.2.224, D24.2.62)."""
    out: dict[str, int] = {}
    tsz, ips = 64 - mode.va_bits, _PA_CODES[mode.ips_bits]
    ds = int(mode.form is OAForm.LPA2)
    walks = {"IRGN0": 1, "ORGN0": 1, "SH0": 3}
    if mode.regime == "el1":
        out["ttbr0_el1"], out["ttbr1_el1"] = (_ttbr(r, mode) for r in roots)
        out["tcr_el1"] = regs.TCR_EL1.build(T0SZ=tsz, T1SZ=tsz, TG0=_code(regs.TG0_GRANULE, mode.granule),
                                            TG1=_code(regs.TG1_GRANULE, mode.granule), IPS=ips, DS=ds, IRGN1=1,
                                            ORGN1=1, SH1=3, **walks)
        out["mair_el1"], out["sctlr_el1"] = regs.LINUX_MAIR_EL1, regs.SCTLR_EL1.build(M=1, C=1, I=1)
    elif mode.regime == "el2":
        out["ttbr0_el2"] = _ttbr(roots[0], mode)
        out["tcr_el2"] = regs.TCR_EL2.build(T0SZ=tsz, TG0=_code(regs.TG0_GRANULE, mode.granule), PS=ips, DS=ds,
                                            RES1_23=1, RES1_31=1, **walks)
        out["mair_el2"], out["sctlr_el2"] = regs.LINUX_MAIR_EL1, regs.SCTLR_EL2.build(M=1, C=1, I=1)
    if mode.stage2:
        assert s2_root is not None
        out["vttbr_el2"] = s2_root | 1 << 48                      # VMID 1
        out["vtcr_el2"] = regs.VTCR_EL2.build(T0SZ=64 - mode.s2_ipa_bits, SL0=_sl0(mode.s2_granule, mode.s2_start),
                                              TG0=_code(regs.TG0_GRANULE, mode.s2_granule),
                                              PS=_PA_CODES[mode.s2_ps_bits], RES1_31=1, **walks)
        out["hcr_el2"] = regs.HCR_EL2.build(VM=1, RW=1)
    return out


def _sl0(granule: Granule, start: int) -> int:
    """VTCR_EL2.SL0 for a stage 2 walk from level `start` (0 to 3; the inverse of `regs.stage2_start_level`)."""
    sl0 = {2: 0, 1: 1, 0: 2, 3: 3}[start] if granule is Granule.K4 else 3 - start
    assert regs.stage2_start_level(granule, sl0) == start
    return sl0


def _ttbr(root: int, mode: A64VectorMode) -> int:
    """A TTBR of `root` (ASID 0); a 52-bit output size holds BADDR[51:48] in bits 5:2 (D24.2.209)."""
    if mode.ips_bits == 52:
        return regs.TTBR0_EL1.check((root & 0xFFFF_FFFF_FFC0) | (root >> 48) << 2)
    return regs.TTBR0_EL1.check(root)


def options_from_json(doc: dict[str, Any], mode: A64VectorMode) -> int:
    """A vector set's `options`: `pa_range` (32 to 52: the implemented PA size) and the informative `seed`."""
    check_keys(doc, ["pa_range", "seed"], "options", f"for mode {mode.name}")
    for key in ("pa_range", "seed"):
        if key in doc and type(doc[key]) is not int:
            raise VectorsError(f"options.{key} must be an integer, not {args.describe(doc[key])}")
    pa_range: int = doc.get("pa_range", mode.pa_range)
    if pa_range not in regs.PA_BITS.values() or not 32 <= pa_range <= 52:
        raise VectorsError(f"options.pa_range must be a PARange size (32, 36, 40, 42, 44, 48 or 52), not {pa_range}")
    return pa_range


def walker_for(vs: VectorSet) -> Walker:
    """The walker that computes a vector set's expected results from its registers (`regimes`), after
    checking that they select the mode's translation (granule, size, OA form; stage 1 on)."""
    if vs.arch != ARCH or vs.mode not in VECTOR_MODES:
        raise VectorsError(f"arch {vs.arch!r} mode {vs.mode!r} is not supported ({ARCH}: {', '.join(VECTOR_MODES)})")
    mode = VECTOR_MODES[vs.mode]
    check_registers(vs, mode.registers, mode.name)
    if not mode.stage2 or mode.regime is None:
        check_one_stage(vs, mode.name)
    pa_range = options_from_json(vs.options, mode)
    r = vs.registers
    try:
        if mode.stage2 and not regs.HCR_EL2.get(r["hcr_el2"], "VM"):
            raise VectorsError(f"registers.hcr_el2 {r['hcr_el2']:#x} has VM=0: stage 2 is off, not {mode.name}")
        rules, s2 = regime_rules(r, mode.regime, mode.stage2, pa_range)
        if s2 is not None:
            _expect("vtcr_el2", r["vtcr_el2"], s2, (mode.stage2_format,))
        if rules is not None:
            reg = "tcr_el1" if mode.regime == "el1" else "tcr_el2"
            _expect(reg, r[reg], rules, mode.stage1_formats())
    except VectorsError:
        raise
    except PagetableError as exc:
        raise VectorsError(f"registers: {exc}") from None
    return _walker(vs.mem, rules, s2)


def regime_rules(r: dict[str, int], regime: str | None, stage2: bool,
                 pa_range: int) -> tuple[WalkRules | None, WalkRules | None]:
    """The stage 1 rules of `regime` ("el1", "el2" or None: none) and, with `stage2`, stage 2's, from the
    registers named in `r` (`EL1_REGISTERS`, `EL2_REGIME_REGISTERS`, `STAGE2_REGISTERS`; MAIR defaults to
    Linux's, SCTLR to M=1, HCR_EL2 and TTBR1_EL2 to 0)."""
    hcr = r.get("hcr_el2", 0)
    s2 = (stage2_rules(r["vtcr_el2"], r["vttbr_el2"], hcr_el2=hcr, pa_range=pa_range) if stage2 else None)
    rules: WalkRules | None = None
    if regime == "el1":
        rules = el1_rules(r["tcr_el1"], r["ttbr0_el1"], r["ttbr1_el1"], r.get("mair_el1", regs.LINUX_MAIR_EL1),
                          r.get("sctlr_el1", 1), hcr_el2=hcr, pa_range=pa_range)
    elif regime == "el2":
        rules = el2_rules(r["tcr_el2"], r["ttbr0_el2"], r.get("mair_el2", regs.LINUX_MAIR_EL1), r.get("sctlr_el2", 1),
                          hcr_el2=hcr, ttbr1_el2=r.get("ttbr1_el2", 0), pa_range=pa_range)
    return rules, s2


def _walker(mem: PhysMem, rules: WalkRules | None, s2: WalkRules | None) -> Walker:
    if rules is None:
        assert s2 is not None
        return Walker(mem, s2)
    return Walker(mem, rules, stage2=None if s2 is None else Walker(mem, s2))


EL2_REGIME_REGISTERS = ("tcr_el2", "ttbr0_el2", "ttbr1_el2", "mair_el2", "sctlr_el2")
REGISTER_NAMES = EL1_REGISTERS + STAGE2_REGISTERS + EL2_REGIME_REGISTERS
PA_BITS = 48
"""The PA size (ID_AA64MMFR0_EL1.PARange) when none is given: 48 bits, without FEAT_LPA."""


def walker_from_registers(mem: PhysMem, r: dict[str, int], pa_bits: int | None = None) -> Walker:
    """The walker of a PE whose system registers hold `r`: the EL1&0 regime (tcr_el1, ttbr0_el1, ttbr1_el1;
    mair_el1, sctlr_el1 optional), over stage 2 when vtcr_el2 and vttbr_el2 are given (hcr_el2 optional:
    VM=1 when absent; with VM=0 stage 2 is off), stage 2 alone (vtcr_el2, vttbr_el2, hcr_el2), or the EL2
    regime (tcr_el2, ttbr0_el2; ttbr1_el2 with HCR_EL2.E2H=1, mair_el2, sctlr_el2, hcr_el2). MAIR defaults
    to Linux's value, SCTLR to M=1. `pa_bits`: PARange's size (32, 36, 40, 42, 44, 48 or 52; default 48)."""
    el1 = [n for n in EL1_REGISTERS if n in r]
    el2 = [n for n in EL2_REGIME_REGISTERS if n in r]
    s2 = "vtcr_el2" in r or "vttbr_el2" in r
    if el1 and el2:
        raise InvalidArgument(f"{el1[0]} and {el2[0]}: give the EL1&0 regime's registers or the EL2 regime's, "
                              "not both")
    if el2 and s2:
        raise InvalidArgument(f"{'vtcr_el2' if 'vtcr_el2' in r else 'vttbr_el2'}: stage 2 translates the EL1&0 "
                              "regime, not the EL2 regime")
    regime = "el2" if el2 else "el1" if el1 or not s2 else None
    required = {"el1": ("tcr_el1", "ttbr0_el1", "ttbr1_el1"), "el2": ("tcr_el2", "ttbr0_el2"), None: ()}[regime]
    what = {"el1": "the EL1&0 regime", "el2": "the EL2 regime", None: "stage 2"}[regime]
    check_register_names(r, REGISTER_NAMES, required + (("vtcr_el2", "vttbr_el2") if s2 else ()),
                         what + (" over stage 2" if s2 and regime else ""))
    pa_range = pa_bits_in(pa_bits, PA_BITS, [b for b in regs.PA_BITS.values() if b <= 52],
                          "a PARange size")
    if s2:
        r = {"hcr_el2": regs.HCR_EL2.mask("VM"), **r}
        if not regs.HCR_EL2.get(r["hcr_el2"], "VM"):
            if regime is None:
                raise InvalidArgument(f"hcr_el2 {r['hcr_el2']:#x} has VM=0: stage 2 is off, and no stage 1 "
                                      "registers are given")
            s2 = False
    try:
        rules, s2_rules = regime_rules(r, regime, s2, pa_range)
    except PagetableError as exc:
        raise InvalidArgument(f"registers: {exc}") from None
    return _walker(mem, rules, s2_rules)


def _expect(reg: str, value: int, rules: WalkRules, want: tuple[PagingFormat | None, ...]) -> None:
    """VectorsError unless the regions `rules` has are `want`'s formats (by name and initial lookup level, one
    per region: a stage 2 format's name does not say its level)."""
    got = tuple(_described(r.fmt) for r in rules.regime.regions)
    names = tuple(_described(f) for f in want if f is not None)
    if got != names:
        what = "; ".join(got) if got else "translation off"
        raise VectorsError(f"registers.{reg} {value:#x} selects {what}, not {'; '.join(names)}")


def _described(fmt: PagingFormat) -> str:
    return f"{fmt.name} from level {fmt.levels[0].arch_level}"


__all__ = ["ARCH", "EL1_REGISTERS", "EL2_REGIME_REGISTERS", "EL2_REGISTERS", "PA_BITS", "REGISTER_NAMES",
           "STAGE2_REGISTERS", "VECTOR_MODES", "A64VectorMode", "options_from_json", "regime_rules", "registers_for",
           "vector_mode", "walker_for", "walker_from_registers"]
