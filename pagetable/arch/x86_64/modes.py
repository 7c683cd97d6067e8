"""x86-64 4-level and 5-level paging (IA-32e paging; with CR4.LA57, 5-level).

Intel SDM Vol. 3A, section 4.5 "4-Level Paging and 5-Level Paging": 4 KiB pages, 9 bits of the linear
address per level (PML5 bits 56:48, PML4 47:39, PDPT 38:30, PD 29:21, PT 20:12), 8-byte entries, pages of
1 GiB (a PDPTE with PS=1), 2 MiB (a PDE with PS=1) and 4 KiB; a PML5E or PML4E never maps a page. Linear
addresses are canonical: bits 63:47 (63:56 with LA57) all equal. Physical addresses have MAXPHYADDR bits,
at most 52 (the formats allow 52; a CPU's narrower MAXPHYADDR is a walk parameter). Level numbers are
the manual's 5..1 (PML5 = 5, PT = 1); level names follow Linux's x86 ptdump (PGD, P4D, PUD, PMD, PTE).
EPT (`EPT4`, `EPT5`) has the same levels over guest-physical addresses, with its own entries (`ept`);
AMD nested paging (`NPT4`, `NPT5`) the same levels and entries over guest-physical addresses.

32-bit paging (SDM 4.3; `PAGING32`, `PAGING32_PSE`, `PAGING32_PSE36`): two levels of 10 bits over 32-bit
linear addresses (none above: zero-extended), 4-byte entries (`paging32`); the PDE maps a 4 MiB page only
with CR4.PSE=1, whose PA has 40 bits with PSE-36 (32 without; every other PA has 32 bits). PAE paging
(SDM 4.4; `PAGING_PAE`): a 4-entry PDPT (level 3: bits 31:30, 32 bytes, `pae.PDPT`'s entries: no rights,
never a page), then a PD (2: bits 29:21, 2 MiB pages) and a PT (1: bits 20:12) of 8-byte entries (`pae.PAE`),
over the same 32-bit linear addresses; PAs up to 52 bits (MAXPHYADDR).
"""

from __future__ import annotations

import dataclasses

from ...format import Extension, Level, PagingFormat
from .entry import NESTED, SPEC
from .ept import SPEC as EPT
from .pae import PAE, PDPT
from .paging32 import X86Codec32

_NAMES = {4: ("PGD", "PUD", "PMD", "PTE"), 5: ("PGD", "P4D", "PUD", "PMD", "PTE")}


def _paging(levels: int) -> PagingFormat:
    """4- or 5-level paging: the manual's level n indexes bits 12 + 9n - 1 down to 12 + 9(n - 1)."""
    lv = tuple(Level(_NAMES[levels][levels - n], n, 12 + 9 * (n - 1), 9, n <= 3) for n in range(levels, 0, -1))
    return PagingFormat(name=f"{levels}-level paging", levels=lv, va_bits=12 + 9 * levels, pa_bits=52, codec=SPEC)


def _ept(levels: int) -> PagingFormat:
    """4- or 5-level EPT (SDM Vol. 3C 29.3.2): the same levels, translating 48- or 57-bit guest-physical
    addresses, which are zero-extended (a wider GPA is an EPT violation, never an alias)."""
    return dataclasses.replace(_paging(levels), name=f"{levels}-level EPT", codec=EPT, extension=Extension.ZERO)


def _npt(levels: int) -> PagingFormat:
    """AMD nested paging (APM Vol. 2, 15.25): the host's long-mode paging over zero-extended guest-physical
    addresses, U/S=1 in every entry."""
    return dataclasses.replace(_paging(levels), name=f"{levels}-level nested paging", codec=NESTED,
                               extension=Extension.ZERO)


def _paging32(pse: bool, pse36: bool) -> PagingFormat:
    """32-bit paging (SDM 4.3): the PD (level 2) indexes linear-address bits 31:22 and maps 4 MiB pages with
    CR4.PSE=1 (`pse`), of 40-bit PAs with PSE-36 (`pse36`: the codec's MAXPHYADDR 40, else 32); the PT (level
    1) bits 21:12."""
    name = "32-bit paging" + (" (PSE-36)" if pse36 else " (CR4.PSE=1)" if pse else "")
    lv = (Level("PGD", 2, 22, 10, pse), Level("PTE", 1, 12, 10, True))
    return PagingFormat(name=name, levels=lv, va_bits=32, pa_bits=40 if pse36 else 32,
                        codec=X86Codec32(pse=pse, maxphyaddr=40 if pse36 else 32), extension=Extension.ZERO,
                        entry_size=4)


def paging32(pse: bool, pse36: bool) -> PagingFormat:
    """The 32-bit paging format of CR4.PSE `pse` on a CPU with (`pse36`) or without PSE-36: PSE-36 widens
    only 4 MiB pages, so without CR4.PSE it changes nothing."""
    return PAGING32_PSE36 if pse and pse36 else PAGING32_PSE if pse else PAGING32


PAGING32 = _paging32(False, False)
PAGING32_PSE = _paging32(True, False)
PAGING32_PSE36 = _paging32(True, True)
PAGING_PAE = PagingFormat(name="PAE paging", levels=(Level("PGD", 3, 30, 2, False, PDPT), Level("PMD", 2, 21, 9, True),
                                                     Level("PTE", 1, 12, 9, True)),
                          va_bits=32, pa_bits=52, codec=PAE, extension=Extension.ZERO)
PAGING4 = _paging(4)
PAGING5 = _paging(5)
EPT4 = _ept(4)
EPT5 = _ept(5)
NPT4 = _npt(4)
NPT5 = _npt(5)
MODES: dict[str, PagingFormat] = {"4level": PAGING4, "5level": PAGING5}
EPT_MODES: dict[str, PagingFormat] = {"ept4": EPT4, "ept5": EPT5}
NPT_MODES: dict[str, PagingFormat] = {"npt4": NPT4, "npt5": NPT5}
