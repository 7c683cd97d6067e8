"""Human-readable listings of an address space.

`ptdump` prints leaves the way Linux's riscv ptdump (`/sys/kernel/debug/kernel_page_tables`) does: one line
per run of leaves at the same level with the same attribute bits, contiguous in VA *and* PA (Linux only
requires VA contiguity; requiring PA contiguity keeps the printed start PA meaningful for the whole run):
`0xVSTART-0xVEND   0xPSTART      SIZE LEVEL attribute letters`.
"""

from __future__ import annotations

import numpy as np

from .mappings import Mappings


def _size(n: int) -> str:
    """Linux's `%9lu%c` size with units K M G T P E (divide by 1024 while exact)."""
    value, unit = n >> 10, 0
    while value and value % 1024 == 0 and unit < 5:
        value >>= 10
        unit += 1
    return f"{value:9d}{'KMGTPE'[unit]}"


def runs(m: Mappings) -> list[tuple[int, int]]:
    """[first, last] index pairs of the runs `ptdump` merges."""
    if not len(m):
        return []
    codec = m.fmt.codec
    attrs = m.raw.copy()
    for d in np.unique(m.depth):
        sel = m.depth == d
        attrs[sel] = codec.with_paddr_np(m.raw[sel], np.zeros(int(sel.sum()), dtype=np.uint64),
                                         d != len(m.fmt.levels) - 1)
    end_va, end_pa = m.va + m.size, m.pa + m.size
    joins = ((m.va[1:] == end_va[:-1]) & (m.pa[1:] == end_pa[:-1]) & (m.depth[1:] == m.depth[:-1])
             & (attrs[1:] == attrs[:-1]))
    starts = np.concatenate(([0], np.flatnonzero(~joins) + 1))
    ends = np.concatenate((starts[1:] - 1, [len(m) - 1]))
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


def ptdump(m: Mappings) -> list[str]:
    """The listing lines for every leaf in `m`."""
    lines = []
    for a, b in runs(m):
        start, end = int(m.va[a]), int(m.va[b]) + int(m.size[b])
        depth = int(m.depth[a])
        last = depth == len(m.fmt.levels) - 1
        lines.append(f"0x{start:016x}-0x{end & (1 << 64) - 1:016x}   0x{int(m.pa[a]):016x} "
                     f"{_size(end - start)} {m.fmt.levels[depth].name} "
                     f"{m.fmt.codec.letters(int(m.raw[a]), not last)}")
    return lines
