"""Human-readable listings of an address space.

`ptdump` prints leaves the way Linux's riscv ptdump (`/sys/kernel/debug/kernel_page_tables`) does: one line
per run of leaves at the same level with the same attribute bits, contiguous in VA *and* PA (Linux only
requires VA contiguity; requiring PA contiguity keeps the printed start PA meaningful for the whole run):
`0xVSTART-0xVEND   0xPSTART      SIZE LEVEL attribute letters`, the addresses of 16 hex digits, or of 8 for a
32-bit VA space (RV32 Linux's ADDR_FORMAT, "0x%08lx": `address_digits`).

A hardware listing (`Walker.mappings`) adds what the walk makes of each run: the effective permissions
(`S:rwx U:r-x`, for the supervisor and the user) and, for entries the hardware rejects for every access,
`! faults: <reason>` (a reserved encoding, a misaligned superpage, a non-leaf PTE with A/D/U, ...).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from .format import PagingFormat
from .mappings import Mappings
from .walker import Access, Privilege, Reason, perm_bit


def linux_size(n: int, units: str = "KMGTPE") -> str:
    """Linux ptdump's `%9lu%c` size of `n` bytes: in KiB divided by 1024 while the low ten bits are clear,
    up to the last unit (arm64 and riscv ptdump.c); with `units` "BKMGTPE", counted from bytes (x86
    dump_pagetables.c). (Linux would print 0 of the last unit for 0: here it is "0K".)"""
    value, unit = n >> (0 if units[0] == "B" else 10), 0
    while value and not value & 1023 and unit < len(units) - 1:
        value >>= 10
        unit += 1
    return f"{value:9d}{units[unit]}"


def address_digits(fmt: PagingFormat) -> int:
    """The hex digits of Linux ptdump's addresses for `fmt`: 8 where VAs have 32 bits (arch/riscv/mm/ptdump.c's
    ADDR_FORMAT "0x%08lx" without CONFIG_64BIT, an unsigned long's width: the end of the space prints as 0),
    else 16 ("0x%016lx"). A PA wider than that prints with its own digits."""
    return 8 if fmt.va_bits <= 32 else 16


def runs(m: Mappings) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """The first and last index of each run `ptdump` merges, as two arrays."""
    if not len(m):
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    codecs, last = m.fmt.codecs, len(m.fmt.levels) - 1
    attrs = m.raw                                     # every bit but the address, per leaf's own layout
    for d, codec in enumerate(codecs):
        sel = m.depth == d
        if sel.all():                                 # one size of leaf (the usual listing): no selection
            attrs = codec.with_paddr_np(m.raw, np.zeros(m.raw.shape, dtype=np.uint64), d != last)
        elif sel.any():
            attrs = attrs.copy() if attrs is m.raw else attrs
            attrs[sel] = codec.with_paddr_np(m.raw[sel], np.zeros(int(sel.sum()), dtype=np.uint64), d != last)
    end_va, end_pa = m.va + m.size, m.pa + m.size
    joins = ((m.va[1:] == end_va[:-1]) & (m.pa[1:] == end_pa[:-1]) & (m.depth[1:] == m.depth[:-1])
             & (attrs[1:] == attrs[:-1]))
    for column in (m.perms, m.verdict, m.verdict_stage):
        if column is not None:
            joins &= column[1:] == column[:-1]
    starts = np.concatenate(([0], np.flatnonzero(~joins) + 1)).astype(np.intp)
    ends = np.concatenate((starts[1:] - 1, [len(m) - 1])).astype(np.intp)
    return starts, ends


def permissions(bits: int) -> str:
    """An effective-permissions mask as `S:rwx U:r-x`."""
    return " ".join(f"{p.label[0].upper()}:" + "".join(ch if bits & perm_bit(a, p) else "-"
                                                        for a, ch in zip(Access, "rwx", strict=True))
                    for p in Privilege)


def fault_note(m: Mappings, i: int) -> str:
    """`  ! faults: <reason>` for row `i` of a hardware listing whose entry every access faults on (saying
    where stage 2 decided), else ""."""
    if m.verdict is None or not m.verdict[i]:
        return ""
    by = 1 if m.verdict_stage is None else int(m.verdict_stage[i])
    where = {2: "stage 2: ", 3: "stage 2 refuses the entry's update: "}.get(by, "")
    return f"  ! faults: {where}{Reason(int(m.verdict[i])).label}"


def ptdump(m: Mappings) -> list[str]:
    """The listing lines for every leaf in `m` (with the hardware's verdict when `m` has one)."""
    return list(ptdump_lines(m))


def ptdump_lines(m: Mappings) -> Iterator[str]:
    """`ptdump`, one line at a time (a listing of a large dump need not be held as text)."""
    starts, ends = runs(m)
    for k in range(starts.shape[0]):
        a, b = int(starts[k]), int(ends[k])
        start, end = int(m.va[a]), int(m.va[b]) + int(m.size[b])
        depth = int(m.depth[a])
        last = depth == len(m.fmt.levels) - 1
        digits = address_digits(m.fmt)
        line = (f"0x{start:0{digits}x}-0x{end & (1 << 4 * digits) - 1:0{digits}x}   0x{int(m.pa[a]):0{digits}x} "
                f"{linux_size(end - start)} {m.fmt.levels[depth].name} "
                f"{m.fmt.codecs[depth].letters(int(m.raw[a]), not last)}")
        if m.verdict is not None and m.verdict[a]:
            line += fault_note(m, a)
        elif m.perms is not None:
            line += f"  {permissions(int(m.perms[a]))}"
        yield line
