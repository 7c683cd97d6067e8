"""The physical layout every x86-64 vector set shares, and the QEMU harness relies on (docs/vectors.md):

- RAM: `RAM_SIZE` (8 MiB) at physical `RAM_BASE` (16 MiB), the memory image `mem.bin`;
- every u64 of RAM that is not a page table holds `tag(pa)` = (PA << 8) | 0xCC: a load reveals the PA it
  reached, an instruction fetch executes INT3 (opcode 0xCC) at once;
- PML4 index `STUB_SLOT` (255, the highest slot of the user half; with 5-level paging also PML5 index 255)
  is never used by a case VA, so a harness can map its own code and data there.
"""

from __future__ import annotations

from ...physmem import PhysMem
from ..tagging import fill_tags

RAM_BASE = 0x100_0000
RAM_SIZE = 8 << 20
STUB_SLOT = 255
_TAG_SHIFT, _INT3 = 8, 0xCC


def tag(pa: int) -> int:
    """The tag RAM holds at physical address `pa` (8-byte aligned): (PA << 8) | 0xCC."""
    return (pa << _TAG_SHIFT) | _INT3


def tag_memory(mem: PhysMem) -> None:
    """Fill every u64 of `mem` with `tag` of its own physical address."""
    fill_tags(mem, _TAG_SHIFT, _INT3)


__all__ = ["RAM_BASE", "RAM_SIZE", "STUB_SLOT", "tag", "tag_memory"]
