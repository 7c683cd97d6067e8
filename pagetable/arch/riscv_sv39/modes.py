"""The RISC-V translation modes Sv39, Sv48 and Sv57.

RISC-V privileged spec, "Sv39", "Sv48" and "Sv57": 4 KiB pages, 9-bit VPN fields, 8-byte PTEs, leaves
allowed at every level (superpages of 2 MiB, 1 GiB, 512 GiB, 256 TiB), VAs sign-extended from bit 38/47/56,
56-bit physical addresses (44-bit PPN). Level numbers are the spec's i (i = LEVELS-1 at the root, 0 at the
last level); level names follow Linux's riscv ptdump (PGD, P4D, PUD, PMD, PTE).
"""

from __future__ import annotations

from ...format import Level, PagingFormat
from .entry import SPEC

_NAMES = {3: ("PGD", "PMD", "PTE"), 4: ("PGD", "PUD", "PMD", "PTE"), 5: ("PGD", "P4D", "PUD", "PMD", "PTE")}


def _sv(levels: int) -> PagingFormat:
    lv = tuple(Level(_NAMES[levels][levels - 1 - i], i, 12 + 9 * i, 9, True) for i in reversed(range(levels)))
    return PagingFormat(name=f"Sv{12 + 9 * levels}", levels=lv, va_bits=12 + 9 * levels, pa_bits=56, codec=SPEC)


SV39 = _sv(3)
SV48 = _sv(4)
SV57 = _sv(5)

MODES: dict[str, PagingFormat] = {"sv39": SV39, "sv48": SV48, "sv57": SV57}
