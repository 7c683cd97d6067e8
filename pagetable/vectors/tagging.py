"""Tagged RAM: every word of a vector set's RAM that is not a page table holds a tag naming its own physical
address, so a load on hardware (or in QEMU) reveals the PA it reached. Each architecture picks a tag whose
bytes also trap when fetched (RISC-V: PA << 16 in each u64, low halfword 0 = a defined illegal instruction;
RV32: PA[26:2] over a reserved major opcode in each u32, `riscv.qemu32.tag`; x86: PA << 8 | 0xCC, low byte
INT3)."""

from __future__ import annotations

import numpy as np

from ..physmem import PhysMem


def fill_tags(mem: PhysMem, shift: int, low: int = 0, size: int = 8, drop: int = 0) -> None:
    """Fill every `size`-byte word (8 or 4) of `mem` with `((PA >> drop) << shift) | low`, cut to the word's
    width, PA that word's own physical address."""
    for r in mem.regions:                 # shifted into place (computed apart and copied in, it took twice as long)
        if size == 8 and not drop:
            np.left_shift(np.arange(r.base, r.base + r.size, 8, dtype=np.uint64), np.uint64(shift), out=r.words)
            if low:
                np.bitwise_or(r.words, np.uint64(low), out=r.words)
            continue
        pas = np.arange(r.base, r.base + r.size, size, dtype=np.uint64) >> np.uint64(drop)
        words = r.words_of(size)
        words[:] = ((pas << np.uint64(shift)) | np.uint64(low)).astype(words.dtype)
