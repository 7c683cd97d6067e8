"""The RISC-V vector modes: which tables a vector set has, which registers select them, which walker options
apply, and the walker that computes the expected results (docs/vectors.md).

  sv39, sv48, sv57            one stage: `satp`; options sum, mxr (sstatus), ad, svnapot, svpbmt
  sv32                        one stage on an RV32 hart: `satp` in RV32's layout (MODE[31], ASID[30:22],
                              PPN[21:0]); options sum, mxr, ad (Svnapot and Svpbmt are RV64's: false)
  sv39x4, sv48x4, sv57x4      the G-stage alone: `hgatp`, with `vsatp` = 0 (Bare), so a case's VA is a
                              guest-physical address; options hs_mxr (sstatus.MXR), ad, svnapot, svpbmt
  sv39+sv39x4, sv48+sv48x4,   both stages (hypervisor extension, "Two-Stage Address Translation"):
  sv57+sv57x4                 `vsatp` and `hgatp`; options vs_sum, vs_mxr (vsstatus), hs_mxr, ad, svnapot,
                              svpbmt
  sv32x4, sv32+sv32x4         the same on an RV32 hart: Sv32x4 (16 KiB root, 34-bit GPAs) alone or under
                              Sv32, `vsatp` (satp's RV32 layout) and `hgatp` in RV32's (MODE[31],
                              VMID[28:22], PPN[21:0]); Svnapot and Svpbmt refused

In the hypervisor modes every case is an access with V=1: privilege "supervisor" is VS-mode and "user" is
VU-mode.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from ... import args
from ...arch.riscv_sv39 import G_MODES, MODES, RV32_G_MODES, RV32_MODES, Hgatp, Hgatp32, Satp, Satp32, Vsatp, Vsatp32
from ...arch.riscv_sv39.walk import HypervisorOptions, RiscvOptions, RiscvRules, two_stage_rules
from ...errors import InvalidArgument, PagetableError
from ...format import PagingFormat
from ...physmem import PhysMem
from ...walker import Walker
from ..architecture import check_register_names, pa_bits_in, register_error
from ..schema import VectorsError, VectorSet, check_keys, check_one_stage, check_registers

Options = RiscvOptions | HypervisorOptions


def xlen(fmt: PagingFormat) -> int:
    """The XLEN of the harts that translate with `fmt`: 32 for Sv32, whose PTEs are 4 bytes (privileged
    spec, "Sv32": the RV32 mode), 64 for every other mode."""
    return 32 if fmt.entry_size == 4 else 64


@dataclass(frozen=True)
class VectorMode:
    """A vector mode: the stage-1 format (None: Bare) and the G-stage format (None: no hypervisor)."""

    name: str
    stage1: PagingFormat | None
    gstage: PagingFormat | None

    @property
    def registers(self) -> tuple[str, ...]:
        return ("satp",) if self.gstage is None else ("vsatp", "hgatp")

    @property
    def xlen(self) -> int:
        """The XLEN of the hart that runs this mode: 32 for Sv32 and Sv32x4, 64 otherwise."""
        fmt = self.stage1 or self.gstage
        assert fmt is not None
        return xlen(fmt)

    @property
    def satp(self) -> type[Satp]:
        """satp's layout on the hart that runs this mode: RV32's (`Satp32`) for Sv32, RV64's otherwise."""
        return Satp32 if self.xlen == 32 else Satp

    @property
    def vsatp(self) -> type[Vsatp]:
        """vsatp's layout on the hart that runs this mode: RV32's (`Vsatp32`, satp's) for Sv32x4, RV64's
        otherwise."""
        return Vsatp32 if self.xlen == 32 else Vsatp

    @property
    def hgatp(self) -> type[Hgatp]:
        """hgatp's layout on the hart that runs this mode: RV32's (`Hgatp32`: MODE[31], VMID[28:22],
        PPN[21:0]) for Sv32x4, RV64's otherwise."""
        return Hgatp32 if self.xlen == 32 else Hgatp

    @property
    def options_type(self) -> type[Options]:
        return RiscvOptions if self.gstage is None else HypervisorOptions

    def options(self, *, sum: bool = False, mxr: bool = False, hs_mxr: bool = False,
                ad: Literal["svade", "svadu"] = "svade", svnapot: bool = False,
                svpbmt: bool = False) -> Options:
        """The options for this mode from the status bits a user asks for: `sum`/`mxr` are the stage-1
        bits (sstatus, or vsstatus in the hypervisor modes), `hs_mxr` the HS-level sstatus.MXR that the
        G-stage honours. A bit this mode has no use for is a ValueError, not silently dropped."""
        if (svnapot or svpbmt) and any(f is not None and f.entry_size == 4 for f in (self.stage1, self.gstage)):
            raise InvalidArgument(f"{self.name}: Sv32 PTEs have no PBMT or N field (Svpbmt and Svnapot are RV64 "
                                  "extensions)")
        if self.gstage is None:
            if hs_mxr:
                raise InvalidArgument(f"{self.name} has no G-stage: hs_mxr (sstatus.MXR of a hypervisor) does not "
                                 "apply; use mxr")
            return RiscvOptions(sum=sum, mxr=mxr, ad=ad, svnapot=svnapot, svpbmt=svpbmt)
        if self.stage1 is None and (sum or mxr):
            raise InvalidArgument(f"{self.name} has no VS-stage (vsatp is Bare): vsstatus.SUM/MXR do not apply; "
                             "use hs_mxr")
        return HypervisorOptions(vs_sum=sum, vs_mxr=mxr, hs_mxr=hs_mxr, ad=ad, svnapot=svnapot, svpbmt=svpbmt)

    def registers_for(self, stage1_root: int | None, gstage_root: int | None, asid: int = 0) -> dict[str, int]:
        """The register values selecting this mode's tables at these roots (`asid`: satp's or vsatp's ASID)."""
        if self.gstage is None:
            assert self.stage1 is not None and stage1_root is not None
            return {"satp": self.satp.for_table(self.stage1, stage1_root, asid).encode()}
        assert gstage_root is not None
        vsatp = 0 if self.stage1 is None else self.vsatp.for_table(self.stage1, stage1_root or 0, asid).encode()
        return {"vsatp": vsatp, "hgatp": self.hgatp.for_table(self.gstage, gstage_root).encode()}


VECTOR_MODES: dict[str, VectorMode] = {
    **{name: VectorMode(name, fmt, None) for name, fmt in MODES.items()},
    **{name: VectorMode(name, fmt, None) for name, fmt in RV32_MODES.items()},
    "sv39x4": VectorMode("sv39x4", None, G_MODES["sv39x4"]),
    "sv48x4": VectorMode("sv48x4", None, G_MODES["sv48x4"]),
    "sv57x4": VectorMode("sv57x4", None, G_MODES["sv57x4"]),
    "sv39+sv39x4": VectorMode("sv39+sv39x4", MODES["sv39"], G_MODES["sv39x4"]),
    "sv48+sv48x4": VectorMode("sv48+sv48x4", MODES["sv48"], G_MODES["sv48x4"]),
    "sv57+sv57x4": VectorMode("sv57+sv57x4", MODES["sv57"], G_MODES["sv57x4"]),
    "sv32x4": VectorMode("sv32x4", None, RV32_G_MODES["sv32x4"]),
    "sv32+sv32x4": VectorMode("sv32+sv32x4", RV32_MODES["sv32"], RV32_G_MODES["sv32x4"]),
}


def vector_mode(name: str) -> VectorMode:
    """The vector mode called `name` (InvalidArgument, listing the modes, for anything else)."""
    mode: VectorMode = args.choice(name, "RISC-V vector mode", VECTOR_MODES)
    return mode


def options_from_json(mode: VectorMode, doc: dict[str, Any]) -> Options:
    """Read a vector set's `options` for `mode`: the mode's option fields and the informative `seed` (an
    integer); any other key (a misspelt `SUM`, an option of another mode) is an error."""
    fields = dataclasses.fields(mode.options_type)
    check_keys(doc, [f.name for f in fields] + ["seed"], "options", f"for mode {mode.name}")
    if "seed" in doc and type(doc["seed"]) is not int:
        raise VectorsError(f"options.seed must be an integer, not {doc['seed']!r}")
    values: dict[str, Any] = {}
    for f in fields:
        value = doc.get(f.name, f.default)
        if f.name == "ad":
            if value not in ("svade", "svadu"):
                raise VectorsError(f"options.ad must be 'svade' or 'svadu', not {value!r}")
        elif not isinstance(value, bool):
            raise VectorsError(f"options.{f.name} must be true or false, not {value!r}")
        values[f.name] = value
    return mode.options_type(**values)


def walker_for(vs: VectorSet) -> Walker:
    """The walker that computes a vector set's expected results, after checking that its registers select
    its mode's formats."""
    if vs.arch != "riscv64" or vs.mode not in VECTOR_MODES:
        raise VectorsError(f"arch {vs.arch!r} mode {vs.mode!r} is not supported "
                           f"(riscv64: {', '.join(VECTOR_MODES)})")
    mode = VECTOR_MODES[vs.mode]
    check_registers(vs, mode.registers, mode.name)
    if mode.gstage is None:                            # the hypervisor-only keys of a case
        check_one_stage(vs, mode.name)
    options = options_from_json(mode, vs.options)
    try:
        walker, decoded = _walker(vs.mem, vs.registers, options, RV64_ON_RV32 if mode.xlen == 32 else RV64)
    except PagetableError as exc:
        raise VectorsError(str(exc)) from None
    for reg, want in (("satp", mode.stage1), ("vsatp", mode.stage1), ("hgatp", mode.gstage)):
        if reg in decoded:
            _expect(reg, vs.registers[reg], decoded[reg].format, want)
    return walker


PA_BITS = 56
"""The PA width of Sv39, Sv48 and Sv57 (a PTE's 44-bit PPN): a narrower hart's PMAs make the addresses beyond
its width inaccessible, which an image without RAM there says already (the walker checks no width)."""


SSTATUS_SUM, SSTATUS_MXR = 1 << 18, 1 << 19
"""sstatus (and vsstatus) bits 18 and 19 (privileged spec, "Supervisor Status (sstatus) Register")."""
MENVCFG_ADUE, MENVCFG_PBMTE = 1 << 61, 1 << 62
"""menvcfg.ADUE (Svadu: hardware A/D updates) and menvcfg.PBMTE (Svpbmt) (privileged spec, "Machine
Environment Configuration (menvcfg) Register")."""


@dataclass(frozen=True)
class Hart:
    """What the translation CSRs of one XLEN's hart are for the dump commands: the names used in messages,
    the env-config register holding ADUE (and PBMTE: 0 where no PTE has PBMT) at which bits, the PA width,
    and the layouts of satp, vsatp and hgatp."""

    label: str                          # "RISC-V", "RV32"
    pa_name: str                        # "a RISC-V PA width"
    pa_bits: int
    envcfg: str                         # menvcfg, or RV32's menvcfgh (its bits 63:32)
    adue: int
    pbmte: int
    satp: type[Satp]
    vsatp: type[Vsatp]
    hgatp: type[Hgatp]

    @property
    def status_registers(self) -> tuple[str, str, str]:
        return ("sstatus", "vsstatus", self.envcfg)

    @property
    def register_names(self) -> tuple[str, ...]:
        return ("satp", "vsatp", "hgatp", *self.status_registers)


RV64 = Hart("RISC-V", "a RISC-V PA width", PA_BITS, "menvcfg", MENVCFG_ADUE, MENVCFG_PBMTE, Satp, Vsatp, Hgatp)
REGISTER_NAMES = RV64.register_names
RV64_ON_RV32 = dataclasses.replace(RV64, satp=Satp32, vsatp=Vsatp32, hgatp=Hgatp32)
"""The riscv64 tools' CSR names and PA width with RV32's satp, vsatp and hgatp layouts: the Sv32, Sv32x4 and
Sv32+Sv32x4 vector modes, and RV32 register values given to those tools (`rv32_satp`)."""


def walker_from_registers(mem: PhysMem, regs: dict[str, int], pa_bits: int | None = None) -> Walker:
    """The walker of a hart whose CSRs hold `regs`: `satp` (one stage, as S-mode translates), or `hgatp` with
    `vsatp` (default 0, Bare: the G-stage alone) for a V=1 access (two stages). The mode follows from each
    register's MODE; a reserved MODE is an error naming the register. The status registers are optional
    (default 0): `sstatus` SUM and MXR (with two stages the HS-level MXR), `vsstatus` SUM and MXR (two
    stages), `menvcfg` PBMTE (Svpbmt) and ADUE (Svadu; else Svade) for every stage. Svnapot is off.
    A `satp` (two stages: an `hgatp`) below 2**32 with bit 31 set is RV32's, selecting Sv32 (Sv32x4, with
    vsatp in RV32's layout too: `rv32_satp`)."""
    atp = regs.get("hgatp") if "hgatp" in regs or "vsatp" in regs else regs.get("satp")
    return hart_walker(RV64_ON_RV32 if rv32_satp(atp) else RV64, mem, regs, pa_bits)


def hart_walker(hart: Hart, mem: PhysMem, regs: dict[str, int], pa_bits: int | None) -> Walker:
    """`walker_from_registers` for `hart`'s CSRs (its names, layouts and PA width)."""
    two = "hgatp" in regs or "vsatp" in regs
    if two and "satp" in regs:
        raise InvalidArgument("give satp (one stage) or vsatp and hgatp (two stages), not both")
    if not two and "vsstatus" in regs:
        raise InvalidArgument("vsstatus belongs to two-stage translation (vsatp and hgatp), not to satp")
    check_register_names(regs, hart.register_names, ("hgatp",) if two else ("satp",),
                         f"{hart.label} two-stage translation" if two else f"{hart.label} translation")
    pa_bits_in(pa_bits, hart.pa_bits, range(32, hart.pa_bits + 1), hart.pa_name)
    status, vsstatus, envcfg = (regs.get(name, 0) for name in hart.status_registers)
    extensions: dict[str, Any] = {"ad": "svadu" if envcfg & hart.adue else "svade",
                                  "svpbmt": bool(envcfg & hart.pbmte)}
    options: Options = (HypervisorOptions(vs_sum=bool(vsstatus & SSTATUS_SUM), vs_mxr=bool(vsstatus & SSTATUS_MXR),
                                          hs_mxr=bool(status & SSTATUS_MXR), **extensions) if two else
                        RiscvOptions(sum=bool(status & SSTATUS_SUM), mxr=bool(status & SSTATUS_MXR), **extensions))
    tables = {k: v for k, v in regs.items() if k not in hart.status_registers}
    return _walker(mem, {"vsatp": 0, **tables} if two else tables, options, hart)[0]


def rv32_satp(value: int | None) -> bool:
    """Whether a satp (or hgatp) value is RV32's (MODE, bit 31, = Sv32 or Sv32x4), not RV64's: a u32 with bit
    31 set. As an RV64 satp it would be MODE Bare with PPN bit 31 set, and the privileged spec leaves Bare with
    nonzero fields UNSPECIFIED ("Supervisor Address Translation and Protection (satp) Register"; hgatp: "when
    MODE=Bare, software should set the remaining fields to zero", hypervisor extension, "hgatp")."""
    return type(value) is int and value >> 31 == 1


def _walker(mem: PhysMem, regs: dict[str, int], options: Options, hart: Hart = RV64) -> tuple[Walker, dict[str, Any]]:
    """The walker `regs` select (satp with `RiscvOptions`; vsatp and hgatp with `HypervisorOptions`; each in
    `hart`'s layout) and the decoded registers."""
    decoded: dict[str, Any] = {}
    for name, kind in (("satp", hart.satp), ("vsatp", hart.vsatp), ("hgatp", hart.hgatp)):
        if name in regs:
            try:
                decoded[name] = kind.decode(regs[name])
            except PagetableError as exc:
                raise register_error(name, exc) from None
    if isinstance(options, RiscvOptions):
        return Walker(mem, RiscvRules(decoded["satp"], options)), decoded
    return Walker.nested(mem, two_stage_rules(decoded["vsatp"], decoded["hgatp"], options)), decoded


def _expect(reg: str, value: int, got: PagingFormat | None, want: PagingFormat | None) -> None:
    if (got and got.name) != (want and want.name):
        raise VectorsError(f"registers.{reg} {value:#x} selects {got.name if got else 'Bare'}, not "
                           f"{want.name if want else 'Bare'}")


__all__ = ["PA_BITS", "REGISTER_NAMES", "VECTOR_MODES", "Options", "VectorMode", "options_from_json",
           "rv32_satp", "vector_mode", "walker_for", "walker_from_registers", "xlen"]
