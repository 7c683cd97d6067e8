"""What QEMU 7.2 (TCG, `-M pc`) reports for an x86-64 access, predicted from the walker: the SDM's answer
(Intel SDM Vol. 3A 4.7, the page-fault error code; Table 6-1, the vectors) turned into what QEMU is known
to do, with each departure named (docs/qemu.md). Shared by `pagetable vectors verify --qemu` and the
differential tests (tests/test_qemu_x86_diff.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from ...arch.x86_64 import PTE_4K
from ...arch.x86_64.entry import ADDR
from ...arch.x86_64.walk import ERROR_P, ERROR_RSVD, GENERAL_PROTECTION, PAGE_FAULT
from ...physmem import PhysMem
from ...walker import Reason, Translations, Walker
from ..schema import Case, Lanes
from .gen import BEYOND_RAM, OUTSIDE_RAM
from .layout import RAM_BASE, RAM_SIZE, tag
from .qemu import ProbeResult

MiB = 1 << 20
TCG_RSVD_P0 = "QEMU 7.2 TCG: a reserved-bit #PF has P=0 (do_fault_rsvd, target/i386/tcg/sysemu/excp_helper.c)"
NO_RAM = ("QEMU -M pc: a physical address with no RAM or device reads as 0 and drops writes, so a page there "
          "translates (a load reads 0) and a table there holds not-present entries; the walker's outcome is "
          "platform-defined (no-memory)")
FETCH_NO_RAM = "a fetch from a page with no RAM runs the zeros QEMU reads there and never comes back: not probed"
DEVICE_SPACE = ((0xA_0000, 0x10_0000), (0xFEC0_0000, 0x1_0000_0000))
"""`-M pc`'s device and ROM windows below 4 GiB: the legacy VGA and BIOS area, and the IOAPIC, LAPIC, HPET and
BIOS flash (QEMU hw/i386/pc.c)."""
DEVICE = ("not run on QEMU: the PA is in -M pc's device space (the legacy VGA/BIOS area, the IOAPIC, LAPIC or BIOS "
          "flash), where a device or ROM answers; the image has no RAM there")
FETCH_NO_TAG = ("a fetch from a word that is not its own tag (a page table a mapping covers, say) runs whatever "
                "is there: not probed")


def unprobed(mem: PhysMem, c: Case, reached: int | None) -> str | None:
    """Why an x86 harness cannot run case `c` of a set over `mem` (None: it can), `reached` the PA its access
    reaches on QEMU, RAM or not (None: the walk faults first): an access to `-M pc`'s device space (DEVICE),
    a fetch from no RAM (FETCH_NO_RAM), or from a word whose INT3 tag is not there (FETCH_NO_TAG)."""
    if reached is not None and not mem.contains(reached, 8) and any(lo <= reached < hi for lo, hi in DEVICE_SPACE):
        return DEVICE
    if c.access != "execute" or reached is None:
        return None
    if not mem.contains(reached, 8):
        return FETCH_NO_RAM
    word = reached & ~7
    return FETCH_NO_TAG if mem.read_u64(word) != tag(word) else None


def departs(qemu: Translations, sdm: Translations, n: int) -> bool:
    """Whether lane `n` of QEMU's walk (the rules of `probes.Harness.qemu_rules`) ends otherwise than the
    SDM's walk of the same memory: another reason or PA (then the harness's deviation explains the case)."""
    return bool(qemu.reason[n] != sdm.reason[n] or qemu.pa[n] != sdm.pa[n])


def expected(t: Translations, n: int, access: str, rules_fault: Callable[[Reason], object]) -> ProbeResult | None:
    """What the SDM says the processor reports for lane `n`: the vector with the error code and CR2, or
    success (value = the tag of the PA; the VA for a fetch); None for a walk whose outcome is
    platform-defined (a table or page outside memory), which no probe can predict."""
    reason = Reason(int(t.reason[n]))
    if reason == Reason.OK:
        pa = int(t.pa[n])
        return ProbeResult(None, 0, 0, int(t.va[n]) if access == "execute" else tag(pa))
    kind = rules_fault(reason)
    if kind == GENERAL_PROTECTION:
        return ProbeResult(13, 0, 0, 0)
    if kind != PAGE_FAULT:
        return None
    return ProbeResult(14, int(t.syndrome["error_code"][n]), int(t.syndrome["cr2"][n]), 0)


def tcg_deviation(want: ProbeResult, reason: Reason) -> tuple[ProbeResult, str | None]:
    """QEMU 7.2 TCG's one known departure from the SDM: P=0 in the error code of a reserved-bit #PF (the
    SDM: an entry with a reserved bit set is present, so P=1)."""
    if reason == Reason.RESERVED and want.error_code & (ERROR_P | ERROR_RSVD) == ERROR_P | ERROR_RSVD:
        return ProbeResult(want.vector, want.error_code & ~ERROR_P, want.cr2, want.value), TCG_RSVD_P0
    return want, None


def platform(image: bytes, outside: Iterable[int] = ()) -> PhysMem:
    """The memory QEMU's `-M pc` machine shows a vector set's tables: the image at RAM_BASE (RAM_SIZE, or all
    of a larger image: the nested modes' host RAM), and zeros where the generator put tables and pages
    outside RAM (BEYOND_RAM, OUTSIDE_RAM) and the image does not reach, and in each 4 KiB page of `outside`
    (the pages and tables a set's cases reach where the image has no RAM: `outside_pages`)."""
    size = max(RAM_SIZE, len(image))
    regions = [(RAM_BASE, size), *((base, n) for base, n in ((BEYOND_RAM, 16 * MiB), (OUTSIDE_RAM, 2 * MiB))
                                   if base >= RAM_BASE + size)]
    fixed = len(regions)
    for page in sorted({pa & ~0xFFF for pa in outside}):
        if any(b <= page < b + n for b, n in regions[:fixed]):
            continue
        if len(regions) > fixed and sum(regions[-1]) == page:       # runs of pages, one region each
            regions[-1] = (regions[-1][0], regions[-1][1] + 0x1000)
        else:
            regions.append((page, 0x1000))
    mem = PhysMem(regions)
    mem.write(RAM_BASE, image[:size])
    return mem


def outside_pages(walker: Walker, lanes: Lanes) -> list[int]:
    """The PAs outside `walker`'s memory that the cases reach: each translation's PA (the walk beyond RAM)
    and each table a walk found outside RAM."""
    beyond = walker.beyond_ram().translate_many(*lanes)
    ok = beyond.reason == Reason.OK
    pages = beyond.pa[ok][~walker.mem.contains_np(beyond.pa[ok])]
    tables = beyond.pte[beyond.reason == Reason.TABLE_OUTSIDE_MEMORY] & np.uint64(ADDR)
    return [int(pa) for pa in np.unique(np.concatenate((pages, tables)))]


def agrees(want: ProbeResult, got: ProbeResult, access: str, mem: PhysMem, pa: int) -> bool:
    """Whether QEMU's result is the prediction: a load or store by the word at `pa` in `mem` (A/D bits
    aside: QEMU sets them in the tables it walks, and two tags, (PA << 8) | 0xCC, never differ only
    there), else by vector, error code, CR2 and, for a fetch that succeeds, the RIP reached."""
    if want.vector is None and access != "execute":
        ad = PTE_4K.mask("A", "D")
        return got.vector is None and got.value & ~ad == mem.read_u64(pa) & ~ad
    return (got.vector, got.error_code, got.cr2, got.value if want.vector is None else 0) == \
        (want.vector, want.error_code, want.cr2, want.value)
