"""Architecture-independent mapping flags, page sizes and address types.

`MappingFlags` has exactly the bits of page_table_entry's `MappingFlags` (the page_table_multiarch crates:
docs/design.md, "Where the Rust crates differ"), so flag values read from Rust kernels' logs mean the same
here. `PageSize` lists every leaf size any supported format can map; each `PagingFormat` says which of them it
allows at which level.
"""

from __future__ import annotations

import enum
from typing import NewType

VirtAddr = NewType("VirtAddr", int)
PhysAddr = NewType("PhysAddr", int)


class MappingFlags(enum.IntFlag):
    """Generic permission and memory-type flags of a mapping (page_table_multiarch bit values)."""

    READ = 1 << 0
    WRITE = 1 << 1
    EXECUTE = 1 << 2
    USER = 1 << 3
    DEVICE = 1 << 4
    UNCACHED = 1 << 5

    @classmethod
    def parse(cls, text: str) -> MappingFlags:
        """Parse "rwx", "rw-u", "READ|WRITE" or "" (no flags) into flags; raises ValueError on junk."""
        text = text.strip()
        if not text or text == "-":
            return cls(0)
        if "|" in text or text.upper() in cls.__members__:
            out = cls(0)
            for name in text.split("|"):
                try:
                    out |= cls[name.strip().upper()]
                except KeyError:
                    raise ValueError(f"unknown mapping flag {name.strip()!r}") from None
            return out
        letters = {"r": cls.READ, "w": cls.WRITE, "x": cls.EXECUTE, "u": cls.USER, "d": cls.DEVICE,
                   "c": cls.UNCACHED}
        out = cls(0)
        for ch in text.lower():
            if ch == "-":
                continue
            if ch not in letters:
                raise ValueError(f"unknown mapping flag letter {ch!r} in {text!r} (use r w x u d c)")
            out |= letters[ch]
        return out

    def short(self) -> str:
        """Render as a fixed-width "rwxudc" string with '-' for clear bits."""
        return "".join(ch if self & bit else "-" for ch, bit in zip("rwxudc", _ORDER, strict=True))


_ORDER = (MappingFlags.READ, MappingFlags.WRITE, MappingFlags.EXECUTE, MappingFlags.USER, MappingFlags.DEVICE,
          MappingFlags.UNCACHED)


class PageSize(enum.IntEnum):
    """Leaf sizes of all supported formats (a format allows a subset, per level)."""

    SIZE_4K = 1 << 12
    SIZE_16K = 1 << 14
    SIZE_64K = 1 << 16
    SIZE_2M = 1 << 21
    SIZE_4M = 1 << 22          # RISC-V Sv32 megapages, x86 32-bit paging's 4 MiB pages
    SIZE_32M = 1 << 25
    SIZE_512M = 1 << 29
    SIZE_1G = 1 << 30
    SIZE_64G = 1 << 36
    SIZE_512G = 1 << 39
    SIZE_4T = 1 << 42
    SIZE_256T = 1 << 48

    def label(self) -> str:
        """Human size: "4K", "2M", "1G", "512G", "256T"."""
        return human_size(int(self))


def human_size(n: int) -> str:
    """Render a byte count as the largest exact unit: 4096 → "4K", 3 << 20 → "3M", 1000 → "1000B"."""
    for unit in "PTGMK":
        shift = 10 * ("KMGTP".index(unit) + 1)
        if n and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return f"{n}B"


def align_up(value: int, align: int) -> int:
    """Round up to a multiple of the power-of-two `align`."""
    return (value + align - 1) & ~(align - 1)
