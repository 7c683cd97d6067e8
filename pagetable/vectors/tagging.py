"""Tagged RAM: every u64 of a vector set's RAM that is not a page table holds a tag naming its own physical
address, so a load on hardware (or in QEMU) reveals the PA it reached. Each architecture picks a tag whose
bytes also trap when fetched (RISC-V: PA << 16, low halfword 0 = a defined illegal instruction; x86: PA << 8
| 0xCC, low byte INT3)."""

from __future__ import annotations

import numpy as np

from ..physmem import PhysMem


def fill_tags(mem: PhysMem, shift: int, low: int = 0) -> None:
    """Fill every u64 of `mem` with `(PA << shift) | low`, PA that u64's own physical address."""
    for r in mem.regions:                 # shifted into place (computed apart and copied in, it took twice as long)
        np.left_shift(np.arange(r.base, r.base + r.size, 8, dtype=np.uint64), np.uint64(shift), out=r.words)
        if low:
            np.bitwise_or(r.words, np.uint64(low), out=r.words)
