"""The RISC-V translation modes Sv32, Sv39, Sv48 and Sv57, and the hypervisor G-stage modes Sv32x4, Sv39x4,
Sv48x4, Sv57x4.

RISC-V privileged spec, "Sv39", "Sv48" and "Sv57": 4 KiB pages, 9-bit VPN fields, 8-byte PTEs, leaves
allowed at every level (superpages of 2 MiB, 1 GiB, 512 GiB, 256 TiB), VAs sign-extended from bit 38/47/56,
56-bit physical addresses (44-bit PPN). Level numbers are the spec's i (i = LEVELS-1 at the root, 0 at the
last level); level names follow Linux's riscv ptdump (PGD, P4D, PUD, PMD, PTE).

G-stage (privileged spec, hypervisor extension, "Guest Physical Address Translation"): the same levels with
the root widened by two bits — 2048 entries (Sv32x4: 4096 4-byte ones), a 16 KiB root aligned to 16 KiB —
translating 34/41/50/59-bit guest-physical addresses, which are zero-extended: a GPA with any higher bit set
is a guest-page fault, never an alias. G-stage leaves are always U=1 (every G-stage access counts as a U-mode
access), which the `GSTAGE` codec enforces.
"""

from __future__ import annotations

from ...format import Extension, Level, PagingFormat
from .entry import GSTAGE, GSTAGE32, SPEC, SPEC32, RiscvCodec

_NAMES = {3: ("PGD", "PMD", "PTE"), 4: ("PGD", "PUD", "PMD", "PTE"), 5: ("PGD", "P4D", "PUD", "PMD", "PTE")}


def _sv(levels: int) -> PagingFormat:
    lv = tuple(Level(_NAMES[levels][levels - 1 - i], i, 12 + 9 * i, 9, True) for i in reversed(range(levels)))
    return PagingFormat(name=f"Sv{12 + 9 * levels}", levels=lv, va_bits=12 + 9 * levels, pa_bits=56, codec=SPEC)


def _x4(base: PagingFormat, codec: RiscvCodec) -> PagingFormat:
    """The G-stage mode over `base`'s levels with the G-stage `codec`: the root widened by two bits, GPAs
    two bits wider than `base`'s VAs and zero-extended, the same PTE width and PA width."""
    root = base.levels[0]
    wide = Level(root.name, root.arch_level, root.index_lsb, root.index_bits + 2, root.leaf)
    return PagingFormat(name=f"{base.name}x4", levels=(wide, *base.levels[1:]), va_bits=base.va_bits + 2,
                        pa_bits=base.pa_bits, codec=codec, extension=Extension.ZERO, entry_size=base.entry_size)


SV32 = PagingFormat(name="Sv32", levels=(Level("PGD", 1, 22, 10, True), Level("PTE", 0, 12, 10, True)), va_bits=32,
                    pa_bits=34, codec=SPEC32, extension=Extension.ZERO, entry_size=4)
"""Sv32 (privileged spec, "Sv32: Page-Based 32-bit Virtual-Memory Systems"): 4-byte PTEs with the same low
bits (V R W X U G A D, RSW) and a 22-bit PPN at bits 31:10 (PPN[1] 12 bits, PPN[0] 10 bits: 34-bit PAs), two
levels of 10-bit VPNs, 4 MiB megapages, 32-bit VAs (none above). The one RISC-V codec serves it with the
Sv32 PTE layout (`SPEC32`: `PTE32`, which has none of the 64-bit PTE's fields above bit 31: the reserved
bits, PBMT, N), and the walk rules are the 64-bit PTE's (a PA below 2**34 gives a PPN field below 2**32)."""
SV39 = _sv(3)
SV48 = _sv(4)
SV57 = _sv(5)
SV39X4 = _x4(SV39, GSTAGE)
SV48X4 = _x4(SV48, GSTAGE)
SV57X4 = _x4(SV57, GSTAGE)
SV32X4 = _x4(SV32, GSTAGE32)
"""Sv32x4 (hypervisor extension, "Guest Physical Address Translation"): Sv32's two levels with VPN[1]
widened to 12 bits (GPA bits 33:22) — a 4096-entry, 16 KiB root aligned to 16 KiB — translating 34-bit
guest-physical addresses (zero-extended) to 34-bit PAs through 4-byte PTEs, leaves always U=1."""
G_MODES: dict[str, PagingFormat] = {"sv39x4": SV39X4, "sv48x4": SV48X4, "sv57x4": SV57X4}

MODES: dict[str, PagingFormat] = {"sv39": SV39, "sv48": SV48, "sv57": SV57}
RV32_MODES: dict[str, PagingFormat] = {"sv32": SV32}
RV32_G_MODES: dict[str, PagingFormat] = {"sv32x4": SV32X4}
