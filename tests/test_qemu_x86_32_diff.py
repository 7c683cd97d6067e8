"""Differential test: the walker against QEMU's TCG walk of x86 32-bit paging and PAE paging.

Tables are built with `PageTable` (PAGING32_PSE36, PAGING_PAE) in an image of tags ((PA << 8) | 0xCC,
pagetable/vectors/x86_64/layout.py), with RAM at 4 GiB too (the harness's `high`), and raw entries poked on
the paths of their own slots for every #PF cause of SDM Vol. 3A 4.3, 4.4, 4.6 and 4.7 (P, U/S and R/W at each
level, CR0.WP, SMEP, SMAP with and without EFLAGS.AC, XD with EFER.NXE and as a reserved bit without, a 4
MiB page's bit 21, 2 MiB pages' bit 13, address bits at MAXPHYADDR and 62:52 in PAE entries, PS ignored with
CR4.PSE=0, 4 MiB pages above 4 GiB with PSE-36, 2 MiB pages above 4 GiB). Each is probed at CPL 0 and 3 for
read, write and fetch under several register sets (pagetable/vectors/x86_64/qemu32.py) and compared with
`translate_many` on the same memory: a success by the PA its tag names (the EIP, for a fetch; A/D bits
aside), a fault by vector, error code and CR2. TCG's one departure on these probes, P=0 in a reserved-bit
#PF's error code (TCG_RSVD_P0), is named and counted; the harness test names the others
(tests/test_qemu_x86_32_harness.py).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from pagetable.arch.x86_64 import PAGING32_PSE36, PAGING_PAE, rules_from_registers
from pagetable.arch.x86_64.pae import load_pdptes
from pagetable.flags import MappingFlags as F
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.vectors.x86_64 import qemu32 as q
from pagetable.vectors.x86_64.deviations import TCG_RSVD_P0, agrees, expected, tcg_deviation
from pagetable.vectors.x86_64.layout import RAM_BASE, RAM_SIZE
from pagetable.vectors.x86_64.qemu32 import ProbeCase32, Registers32
from pagetable.walker import Access, Privilege, Reason, Walker

from .conftest import require_qemu_x86_32

MiB = 1 << 20
P, RW, US, PS = 1 << 0, 1 << 1, 1 << 2, 1 << 7
XD = 1 << 63
TABLES = RAM_BASE + 6 * MiB                 # 2 MiB of tables; the pages are below
HIGH, HIGH_SIZE = q.HIGH_BASE, 4 * MiB
MAXPHYADDR = 40
USER_RWX = F.READ | F.WRITE | F.EXECUTE | F.USER
ACCESSES = [(a, p) for a in ("read", "write", "execute") for p in ("supervisor", "user")]


def tagged(mem: PhysMem, base: int, size: int) -> None:
    mem.write(base, ((base + 8 * np.arange(size // 8, dtype=np.uint64)) << np.uint64(8) | np.uint64(0xCC)).tobytes())


class Scene:
    """An image with one slot per configuration (a PDE's 4 MiB in 32-bit paging, a PDE's 2 MiB under PDPTE 1
    in PAE); `probes` are the VAs to try, by configuration name."""

    def __init__(self, paging: str) -> None:
        self.paging = paging
        # QEMU's RAM below the stub (zeros: a PS-ignored PDE may point there) and no RAM at 2**39 (reads 0)
        self.mem = PhysMem([(0, 2 * MiB), (RAM_BASE, RAM_SIZE), (HIGH, HIGH_SIZE), (1 << 39, 4 * MiB)])
        tagged(self.mem, RAM_BASE, RAM_SIZE)
        tagged(self.mem, HIGH, HIGH_SIZE)
        self.mem.fill(TABLES, 2 * MiB)
        fmt = PAGING32_PSE36 if paging == "32" else PAGING_PAE
        self.pt = PageTable(fmt, self.mem, FrameAllocator(self.mem, TABLES, 2 * MiB))
        self.step = 4 * MiB if paging == "32" else 2 * MiB
        self.base = 0x4000_0000
        self.slot = 1
        self.probes: list[tuple[str, int]] = []
        self.large = 4 * MiB if paging == "32" else 2 * MiB

    def add(self, name: str, flags: F, large: bool = False, pokes: tuple[tuple[int, int, int], ...] = (),
            pa: int | None = None) -> None:
        """Map a page (4 KiB, or the large size) with `flags` in the next slot, poke (depth, set, clear) into the
        entries on its path and probe one word of it."""
        va = self.base + self.slot * self.step
        self.slot += 1
        size = self.large if large else 4096
        if pa is None:
            pa = RAM_BASE + 4 * MiB if large and self.paging == "32" else \
                RAM_BASE + 2 * MiB if large else RAM_BASE + 0x1000 * self.slot
        self.pt.map(va, pa, size, flags)
        for depth, set_bits, clear in pokes:
            slot = self.pt.lookup(va, depth)
            self.pt.entries.write(slot.pa, (slot.raw | set_bits) & ~clear)
        self.probes.append((name, va + (0x1_2348 if large else 0x7F8)))

    def build(self) -> None:
        pae = self.paging == "pae"
        leaf, pde = (2, 1) if pae else (1, 0)
        self.add("user rwx", USER_RWX)
        self.add("user read-only", F.READ | F.EXECUTE | F.USER)
        self.add("supervisor rwx", F.READ | F.WRITE | F.EXECUTE)
        self.add("supervisor read-only", F.READ | F.EXECUTE)
        for depth in (pde, leaf):
            self.add(f"P=0 at depth {depth}", USER_RWX, pokes=((depth, 0, P),))
            self.add(f"U/S=0 at depth {depth}", USER_RWX, pokes=((depth, 0, US),))
            self.add(f"R/W=0 at depth {depth}", USER_RWX, pokes=((depth, 0, RW),))
        self.add("large user page", USER_RWX, large=True)
        self.add("large supervisor read-only page", F.READ | F.EXECUTE, large=True)
        self.add("large page above 4 GiB", USER_RWX, large=True, pa=HIGH)
        if pae:
            self.add("user no-exec", F.READ | F.WRITE | F.USER)
            self.add("XD in the PDE", USER_RWX, pokes=((pde, XD, 0),))
            self.add("address bit MAXPHYADDR in the PTE", USER_RWX, pokes=((leaf, 1 << MAXPHYADDR, 0),))
            self.add("address bit MAXPHYADDR in the PDE", USER_RWX, pokes=((pde, 1 << MAXPHYADDR, 0),))
            self.add("bit 52 in the PTE", USER_RWX, pokes=((leaf, 1 << 52, 0),))
            self.add("bit 62 in the PDE", USER_RWX, pokes=((pde, 1 << 62, 0),))
            self.add("2 MiB page with bit 13", USER_RWX, large=True, pokes=((pde, 1 << 13, 0),))
            self.add("2 MiB page with bit 20", USER_RWX, large=True, pokes=((pde, 1 << 20, 0),))
            self.probes.append(("PDPTE not present", 0x1000))
        else:
            self.add("4 MiB page with bit 21", USER_RWX, large=True, pokes=((pde, 1 << 21, 0),))
            self.add("4 MiB page with PSE-36 bit 20 (PA bit 39: no RAM)", F.READ | F.EXECUTE, large=True,
                     pa=1 << 39)
            self.probes.append(("PDE not present", 0xF000_0000))


def register_sets(paging: str) -> list[Registers32]:
    sets: list[dict[str, bool]] = [{}, {"wp": False}, {"smep": True, "smap": True}, {"smap": True, "ac": True},
                                   {"nxe": True}, {"pse": False}]
    if paging == "pae":
        sets += [{"nxe": False}, {"nxe": False, "smep": True}]
        return [Registers32.of("pae", **{"nxe": True, **s}) for s in sets]
    return [Registers32.of("32", **s) for s in sets]


@pytest.mark.parametrize("paging", ["32", "pae"])
def test_walker_agrees_with_qemu(paging: str) -> None:
    exe = require_qemu_x86_32()
    scene = Scene(paging)
    scene.build()
    cr3 = scene.pt.root_paddr
    image = scene.mem.read(RAM_BASE, RAM_SIZE)
    high = scene.mem.read(HIGH, HIGH_SIZE)
    cases, wants = [], []
    named, reasons = Counter[str](), Counter[str]()
    for r in register_sets(paging):
        rules = rules_from_registers(r.cr0, cr3, r.cr4, r.efer, rflags=r.rflags, maxphyaddr=MAXPHYADDR, pse36=True,
                                     pdptes=load_pdptes(scene.mem, cr3) if paging == "pae" else None)
        chunk = [(name, ProbeCase32(va, a, p, r)) for name, va in scene.probes for a, p in ACCESSES]
        t = Walker(scene.mem, rules).translate_many([c.va for _, c in chunk],
                                                    [Access.parse(c.access) for _, c in chunk],
                                                    [Privilege.parse(c.privilege) for _, c in chunk])
        for n, (name, case) in enumerate(chunk):
            reason = Reason(int(t.reason[n]))
            if "no RAM" in name and case.access == "execute" and reason == Reason.OK:
                continue                        # runs the zeros QEMU reads there: never comes back
            sdm = expected(t, n, case.access, rules.fault_kind)
            assert sdm is not None, name
            want, why = tcg_deviation(sdm, reason)
            if why:
                named[why] += 1
            reasons[reason.label] += 1
            cases.append(case)
            wants.append((name, want, int(t.pa[n]) if reason == Reason.OK else 0))
    run = q.run_probes_32(image, cr3, cases, paging=paging, high=high, qemu=exe)
    bad = [(name, case, want, got) for (name, want, pa), case, got in zip(wants, cases, run.results, strict=True)
           if not agrees(want, got, case.access, scene.mem, pa)]
    assert bad == [], bad[:5]
    print(paging, len(cases), dict(reasons), dict(named))
    assert named[TCG_RSVD_P0] == sum(1 for _, w, _ in wants if w.vector == 14 and w.error_code & 8)
