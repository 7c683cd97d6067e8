"""The RISC-V address-translation registers: `satp` and `vsatp` (privileged spec, "Supervisor Address
Translation and Protection (satp) Register", RV64: MODE[63:60], ASID[59:44], PPN[43:0]; vsatp has the same
layout, hypervisor extension "Virtual Supervisor Address Translation and Protection Register") and `hgatp`
(hypervisor extension, "Hypervisor Guest Address Translation and Protection Register", RV64: MODE[63:60],
VMID[57:44], PPN[43:0]; the root is 16 KiB aligned, so PPN[1:0] are zero); and RV32's satp and vsatp
(`Satp32`, `Vsatp32`: MODE[31], ASID[30:22], PPN[21:0]) and hgatp (`Hgatp32`: MODE[31], bits 30:29 zero,
VMID[28:22], PPN[21:0]). `xlen` (the layout's width) tells the two apart where it matters: htinst's
pseudoinstructions name a 32- or 64-bit PTE access (`faults`), and the two stages of a walk are one XLEN."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from ... import args
from ...errors import InvalidAddress, InvalidArgument
from ...format import PagingFormat
from ...layout import Field, Layout
from .modes import SV32, SV32X4, SV39, SV39X4, SV48, SV48X4, SV57, SV57X4

MODE_BARE, MODE_SV39, MODE_SV48, MODE_SV57 = 0, 8, 9, 10
MODE_SV32 = 1                     # RV32 satp.MODE Sv32, and hgatp.MODE Sv32x4

SATP = Layout("satp", 64, [
    Field("PPN", 0, 44, "physical page number of the root page table"),
    Field("ASID", 44, 16, "address-space identifier"),
    Field("MODE", 60, 4, "translation mode",
          {MODE_BARE: "Bare", MODE_SV39: "Sv39", MODE_SV48: "Sv48", MODE_SV57: "Sv57",
           11: "Sv64 (reserved for future use)"}),
], "RISC-V privileged spec, satp register (RV64)")

SATP32 = Layout("satp (RV32)", 32, [
    Field("PPN", 0, 22, "physical page number of the root page table"),
    Field("ASID", 22, 9, "address-space identifier"),
    Field("MODE", 31, 1, "translation mode", {MODE_BARE: "Bare", MODE_SV32: "Sv32"}),
], "RISC-V privileged spec, satp register (RV32)")

HGATP = Layout("hgatp", 64, [
    Field("PPN", 0, 44, "physical page number of the 16 KiB G-stage root table"),
    Field("VMID", 44, 14, "virtual-machine identifier"),
    Field("MODE", 60, 4, "G-stage translation mode",
          {MODE_BARE: "Bare", MODE_SV39: "Sv39x4", MODE_SV48: "Sv48x4", MODE_SV57: "Sv57x4"}),
], "RISC-V privileged spec, hypervisor extension, hgatp register (RV64)")

HGATP32 = Layout("hgatp (RV32)", 32, [
    Field("PPN", 0, 22, "physical page number of the 16 KiB G-stage root table"),
    Field("VMID", 22, 7, "virtual-machine identifier"),
    Field("MODE", 31, 1, "G-stage translation mode", {MODE_BARE: "Bare", MODE_SV32: "Sv32x4"}),
], "RISC-V privileged spec, hypervisor extension, hgatp register (RV32)")


@dataclass(frozen=True)
class _Atp:
    """An address-translation-and-protection register value: mode, an address-space tag, root PPN."""

    mode: int
    tag: int                 # ASID (satp, vsatp) or VMID (hgatp)
    ppn: int

    LAYOUT: ClassVar[Layout]
    TAG: ClassVar[str]
    FORMATS: ClassVar[dict[int, PagingFormat]]

    @property
    def root(self) -> int:
        """Physical address of the root page table."""
        return self.ppn << 12

    @property
    def xlen(self) -> int:
        """The register's width: 64 on RV64, 32 on RV32."""
        return self.LAYOUT.width

    @property
    def format(self) -> PagingFormat | None:
        """The translation mode's format, or None for Bare."""
        return self.FORMATS.get(self.mode)

    def encode(self) -> int:
        return self.LAYOUT.build(MODE=self.mode, PPN=self.ppn, **{self.TAG: self.tag})

    @classmethod
    def decode(cls, raw: int) -> Self:
        raw = cls.LAYOUT.check(raw)                  # a 64-bit register value: never truncated
        mode = cls.LAYOUT.get(raw, "MODE")
        if mode != MODE_BARE and mode not in cls.FORMATS:
            names = ", ".join(["Bare", *(f.name for f in cls.FORMATS.values())])
            raise InvalidAddress(f"{cls.LAYOUT.name} {raw:#x}: MODE {mode} is not {names}")
        return cls(mode, cls.LAYOUT.get(raw, cls.TAG), cls.LAYOUT.get(raw, "PPN"))

    @classmethod
    def _for_table(cls, fmt: PagingFormat, root: int, tag: int) -> Self:
        """The register value that selects `fmt` with its root table at `root`."""
        modes = {f.name: m for m, f in cls.FORMATS.items()}
        if getattr(fmt, "name", None) not in modes:
            raise InvalidArgument(f"{getattr(fmt, 'name', fmt)!r} is not a {cls.LAYOUT.name} mode "
                                  f"({', '.join(modes)})")
        root = args.address(root, "root table address")
        if root % fmt.root_size:
            raise InvalidAddress(f"root table {root:#x} is not {fmt.root_size // 1024} KiB aligned")
        return cls(modes[fmt.name], tag, root >> 12)


_S_FORMATS = {MODE_SV39: SV39, MODE_SV48: SV48, MODE_SV57: SV57}


@dataclass(frozen=True)
class Satp(_Atp):
    """A decoded satp value (`tag` is the ASID)."""

    LAYOUT: ClassVar[Layout] = SATP
    TAG: ClassVar[str] = "ASID"
    FORMATS: ClassVar[dict[int, PagingFormat]] = _S_FORMATS

    @property
    def asid(self) -> int:
        return self.tag

    @classmethod
    def for_table(cls, fmt: PagingFormat, root: int, asid: int = 0) -> Self:
        """The value that selects `fmt` with its root table at `root`."""
        return cls._for_table(fmt, root, asid)


@dataclass(frozen=True)
class Satp32(Satp):
    """A decoded RV32 satp value (MODE bit 31: Bare or Sv32; a 9-bit ASID; a 22-bit PPN)."""

    LAYOUT: ClassVar[Layout] = SATP32
    FORMATS: ClassVar[dict[int, PagingFormat]] = {MODE_SV32: SV32}


@dataclass(frozen=True)
class Vsatp(Satp):
    """A decoded vsatp value: the guest's satp, same layout and modes."""


@dataclass(frozen=True)
class Vsatp32(Satp32, Vsatp):
    """A decoded RV32 vsatp value: RV32 satp's layout and modes."""


@dataclass(frozen=True)
class Hgatp(_Atp):
    """A decoded hgatp value (`tag` is the VMID); selects the G-stage format."""

    LAYOUT: ClassVar[Layout] = HGATP
    TAG: ClassVar[str] = "VMID"
    FORMATS: ClassVar[dict[int, PagingFormat]] = {MODE_SV39: SV39X4, MODE_SV48: SV48X4, MODE_SV57: SV57X4}

    @property
    def root(self) -> int:
        """The 16 KiB root: for Sv39x4/Sv48x4/Sv57x4 PPN[1:0] always read as zero (hypervisor extension,
        hgatp), so a value with them set still selects the root at the 16 KiB boundary below."""
        return (self.ppn & ~3) << 12

    @property
    def vmid(self) -> int:
        return self.tag

    @classmethod
    def for_table(cls, fmt: PagingFormat, root: int, vmid: int = 0) -> Self:
        """The value that selects the G-stage `fmt` with its 16 KiB root at `root`."""
        return cls._for_table(fmt, root, vmid)


@dataclass(frozen=True)
class Hgatp32(Hgatp):
    """A decoded RV32 hgatp value (MODE bit 31: Bare or Sv32x4; a 7-bit VMID; a 22-bit PPN whose bits 1:0
    read as zero, as for every x4 mode)."""

    LAYOUT: ClassVar[Layout] = HGATP32
    FORMATS: ClassVar[dict[int, PagingFormat]] = {MODE_SV32: SV32X4}
