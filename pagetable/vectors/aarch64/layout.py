"""The physical layout AArch64 vector sets share and the QEMU harness relies on (``qemu-system-aarch64 -M virt``):

- RAM starts at physical 0x4000_0000 (`VIRT_RAM_BASE`); QEMU puts its flattened device tree at the start of
  RAM when no kernel is loaded, so the first 2 MiB are left to it;
- the probe stub, its data and the harness's own translation tables live in [`STUB_BASE`, `RAM_BASE`)
  (0x4020_0000, 14 MiB);
- the memory image (page tables and tagged RAM) is loaded at `RAM_BASE` (0x4100_0000), RAM ending at its
  end (rounded up to 1 MiB); every PA of the image is below 2**32;
- every u64 of RAM that is not a translation table holds `tag(pa)` = (PA << 32) | BRK #0xA64: a load
  reveals the PA it reached, and an instruction fetch of the low word executes BRK #0xA64 (`TAG_BRK_IMM`)
  at once, which the harness recognises (ESR_ELx.EC = 0x3C, ISS = 0xA64, ELR = the VA);
- reserved root-table slots, which vector sets must leave empty and no case VA or IPA may use: for stage 1
  the harness takes, per root table its access cases use, the highest slot of the TTBR1 region no case VA
  indexes (else the TTBR0 region's; TTBR0_EL2's for the EL2 regime, TTBR1_EL2's then TTBR0_EL2's for the
  EL2&0 regime) -- `STUB_SLOT` = "the last one" is
  the convention; for stage 2 the highest entry of VTTBR_EL2's (concatenated) root table that is 0 and
  lies below the stage 1 IPS (`S2_STUB_SLOT` = "the last one").  ``qemu.choose_slot`` documents the
  choice exactly.  AT-method cases need no slot (the stub runs them at EL2 with its MMU off), except
  AT S1E2R/W with SCTLR_EL2.M=1 (and AT S1E0R/W with HCR_EL2.{E2H,TGE} = {1,1});
- EL2 regime cases with SCTLR_EL2.M=1 must leave the stub's PAs [`STUB_BASE`, `RAM_BASE`) unmapped as VAs
  (or map them to the stub): the stub turns its EL2 MMU on while executing there.
"""

from __future__ import annotations

from typing import Final

from ...format import PagingFormat
from ...physmem import PhysMem
from ..tagging import fill_tags

VIRT_RAM_BASE: Final = 0x4000_0000
STUB_BASE: Final = 0x4020_0000
RAM_BASE: Final = 0x4100_0000
RAM_SIZE: Final = 8 << 20
"""The RAM of a vector set's image (stage 1 alone; two-stage sets add the host RAM behind it)."""
STUB_SLOT: Final = -1
"""The stage 1 root-table slot vector sets leave to the harness: the last one (index -1) of the TTBR1
region (TTBR0_EL2 for the EL2 regime), else the highest one no case uses."""
S2_STUB_SLOT: Final = -1
"""The stage 2 root-table slot left to the harness: the last entry of VTTBR_EL2's root (concatenated tables
counted together), else the highest empty one below the IPS."""
TAG_BRK_IMM: Final = 0xA64
_BRK: Final = 0xD420_0000               # BRK #imm16: 0xD4200000 | imm16 << 5 (C6.2.40)
TAG_LOW: Final = _BRK | TAG_BRK_IMM << 5
_TAG_SHIFT: Final = 32


def brk(imm: int) -> int:
    """The A64 encoding of BRK #imm (Arm ARM DDI 0487 C6.2.40)."""
    if not 0 <= imm < 1 << 16:
        raise ValueError(f"BRK takes a 16-bit immediate, not {imm!r}")
    return _BRK | imm << 5


def tag(pa: int) -> int:
    """The tag RAM holds at physical address `pa` (8-byte aligned): (PA << 32) | BRK #0xA64."""
    return (pa << _TAG_SHIFT) | TAG_LOW


def reserved_slot(fmt: PagingFormat, va: int) -> bool:
    """Whether `va` selects the last entry of its root table (`STUB_SLOT`, `S2_STUB_SLOT`: the harness's,
    never a case VA or IPA)."""
    return fmt.index(va, 0) == fmt.levels[0].entries - 1


def tag_memory(mem: PhysMem) -> None:
    """Fill every u64 of `mem` with `tag` of its own physical address."""
    fill_tags(mem, _TAG_SHIFT, TAG_LOW)


__all__ = ["RAM_BASE", "RAM_SIZE", "S2_STUB_SLOT", "STUB_BASE", "STUB_SLOT", "TAG_BRK_IMM", "TAG_LOW", "VIRT_RAM_BASE",
           "brk", "reserved_slot", "tag", "tag_memory"]
