"""The RISC-V `satp` register (RISC-V privileged spec, "Supervisor Address Translation and Protection
(satp) Register", RV64 layout: MODE[63:60], ASID[59:44], PPN[43:0])."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import InvalidAddress
from ...format import PagingFormat
from ...layout import Field, Layout
from .modes import SV39, SV48, SV57

MODE_BARE, MODE_SV39, MODE_SV48, MODE_SV57 = 0, 8, 9, 10

SATP = Layout("satp", 64, [
    Field("PPN", 0, 44, "physical page number of the root page table"),
    Field("ASID", 44, 16, "address-space identifier"),
    Field("MODE", 60, 4, "translation mode",
          {MODE_BARE: "Bare", MODE_SV39: "Sv39", MODE_SV48: "Sv48", MODE_SV57: "Sv57", 11: "Sv64"}),
], "RISC-V privileged spec, satp register (RV64)")

_FORMAT_OF_MODE: dict[int, PagingFormat] = {MODE_SV39: SV39, MODE_SV48: SV48, MODE_SV57: SV57}
_MODE_OF_NAME = {f.name: m for m, f in _FORMAT_OF_MODE.items()}


@dataclass(frozen=True)
class Satp:
    """A decoded satp value."""

    mode: int
    asid: int
    ppn: int

    @property
    def root(self) -> int:
        """Physical address of the root page table."""
        return self.ppn << 12

    @property
    def format(self) -> PagingFormat | None:
        """The translation mode's format, or None for Bare."""
        return _FORMAT_OF_MODE.get(self.mode)

    def encode(self) -> int:
        return SATP.build(MODE=self.mode, ASID=self.asid, PPN=self.ppn)

    @classmethod
    def decode(cls, raw: int) -> Satp:
        mode = SATP.get(raw, "MODE")
        if mode != MODE_BARE and mode not in _FORMAT_OF_MODE:
            raise InvalidAddress(f"satp {raw:#x}: MODE {mode} is not Bare, Sv39, Sv48 or Sv57")
        return cls(mode, SATP.get(raw, "ASID"), SATP.get(raw, "PPN"))

    @classmethod
    def for_table(cls, fmt: PagingFormat, root: int, asid: int = 0) -> Satp:
        """The satp that selects `fmt` with its root table at `root`."""
        if fmt.name not in _MODE_OF_NAME:
            raise ValueError(f"{fmt.name} is not a satp mode")
        if root % 4096:
            raise InvalidAddress(f"root table {root:#x} is not 4 KiB aligned")
        return cls(_MODE_OF_NAME[fmt.name], asid, root >> 12)
