"""Differential test: the library's two-stage walk (4-level and 5-level guest paging over AMD nested paging,
`NPT4`) against QEMU 7.2's TCG, which runs the guest under SVM with nested paging
(pagetable/vectors/x86_64/svm.py), four times: 4-level, 5-level, 4-level with guest CR0.WP=0, and 4-level
with the host's EFER.NXE=0 (which the nested walk follows: XD is then a reserved bit of nested entries).

Guest tables (`PAGING4`, or `PAGING5` with guest CR4.LA57) and nested tables (`NPT4`) are built with
`PageTable` in one image at RAM_BASE (every data word holds its tag, pagetable/vectors/x86_64/layout.py;
the guest tables' GPAs are their host-physical addresses, each in a 4 KiB nested page of its own). Each
configuration has its own guest root slot and its own final GPA (in a nested PDPT slot of its own, so that
nested pokes at any level below the root touch nothing else), and raw entries are poked to make (AMD APM
Vol. 2 15.25; Intel SDM Vol. 3A 4.7 for the guest #PF):
- guest #PFs: not present at each level, a write to a read-only page, a user access to a supervisor page,
  a fetch from an XD page, a reserved bit;
- nested page faults on the final GPA: not present at each level, a read-only nested page written, U/S=0
  in a nested entry, an XD nested page fetched, a reserved bit in a nested entry (MAXPHYADDR, bit 51; bit
  13 of a 1 GiB page, bit 20 of a 2 MiB page);
- nested page faults on guest table accesses: the nested page holding the guest (PML4,) PDPT, PD or PT
  not present, read-only (a fault even for a read: a guest table access is a user write, 15.25.5), U/S=0;
- successes through 4 KiB, 2 MiB and 1 GiB pages of either stage.
Every configuration is probed with loads, stores and fetches at guest CPL 0 and 3 and compared with
`translate_many` on the same memory: a success by the PA its tag names (the VA reached, for a fetch), a
guest #PF by #VMEXIT 0x4E with EXITINFO1 = `error_code` and EXITINFO2 = `cr2`, a nested fault by #VMEXIT
0x400 with EXITINFO1/EXITINFO2 = `exitinfo1`/`exitinfo2`.

The only differences allowed are named, counted and must occur exactly where predicted (the predictions are
the library's, pagetable/vectors/x86_64/npt_deviations.py, which `vectors verify --qemu` uses too):
- TCG_RSVD_P0: a reserved-bit fault has P=0 in its error code (guest #PF and nested EXITINFO1 alike),
  where the SDM (4.7, Table 4-24) and the APM (8.4.2, the page-fault error code: P=0 only for a
  not-present page, and an entry with a reserved bit set is present) set P=1: `do_fault_rsvd` in
  target/i386/tcg/sysemu/excp_helper.c builds the code without PG_ERROR_P_MASK, in the nested walk too
  (it is the same `mmu_translate`).  docs/qemu.md.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pytest

from pagetable import registry
from pagetable.arch.x86_64 import CR4, NPT4, PAGING4, PAGING5, PTE_4K, NptRules, X86Rules
from pagetable.arch.x86_64.npt import EXITINFO1_FINAL, EXITINFO1_TABLE
from pagetable.arch.x86_64.walk import ERROR_P, ERROR_RSVD, X86Options
from pagetable.flags import MappingFlags as F
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.vectors.x86_64 import svm
from pagetable.vectors.x86_64.deviations import TCG_RSVD_P0
from pagetable.vectors.x86_64.layout import RAM_BASE, RAM_SIZE, tag_memory
from pagetable.vectors.x86_64.npt_deviations import EXIT_GP, comparable, expected, guest_mode, tcg_deviation
from pagetable.vectors.x86_64.svm import GuestMode, NptProbeCase, NptProbeResult
from pagetable.walker import Access, Privilege, Reason, Walker

from .conftest import require_qemu_x86

MiB, GiB = 1 << 20, 1 << 30
MAXPHYADDR = 40                                  # TCG_CPU's phys-bits
GUEST_TABLES = RAM_BASE + 4 * MiB                # HPA = GPA; each guest table frame a nested 4 KiB page
NESTED_TABLES = RAM_BASE + 6 * MiB
LARGE_PA = RAM_BASE + 2 * MiB                    # the frame of every 2 MiB page of either stage
GUEST_FRAMES = 192                               # guest table frames the nested tables map
P, RW, US, XD = (PTE_4K.mask(n) for n in ("P", "R/W", "U/S", "XD"))
RWX, USER_RWX = F.READ | F.WRITE | F.EXECUTE, F.READ | F.WRITE | F.EXECUTE | F.USER
ACCESSES = [(a, p) for a in ("read", "write", "execute") for p in ("supervisor", "user")]

# The outcomes the configurations make (the walker's, which QEMU must match): 5-level paging has one more
# guest level to be not present, and one more guest table (the PML4) whose nested page is poked.
# With CR0.WP=0 supervisor writes to read-only guest pages succeed, unless the nested page is read-only:
# nested accesses are user accesses, which WP does not concern.
# With the host's EFER.NXE=0, XD is a reserved bit of nested entries (the nested walk has the host's paging
# controls): the nested XD page, the nested XD PDE and the nested page of a guest PD with XD fault at every
# access.
OUTCOMES = {(GuestMode(), True): Counter({"ok": 94, "NPF final": 66, "#PF": 50, "NPF table": 42, "#GP": 6}),
            (GuestMode(la57=True), True): Counter({"ok": 94, "NPF final": 66, "#PF": 56, "NPF table": 54,
                                                   "#GP": 6}),
            (GuestMode(wp=False), True): Counter({"ok": 96, "NPF final": 67, "#PF": 47, "NPF table": 42,
                                                  "#GP": 6}),
            (GuestMode(), False): Counter({"ok": 80, "NPF final": 74, "#PF": 50, "NPF table": 48, "#GP": 6})}
RESERVED = {(GuestMode(), False): 8 * len(ACCESSES)}          # else 5 configurations' worth

Poke = tuple[int, int, int]                      # (depth, bits to set, bits to clear)


@dataclass
class Scene:
    """The image, its guest tables (`levels`: 4-level paging, or 5-level with CR4.LA57) and nested tables
    (`NPT4`), and the probe VAs by configuration name."""

    mode: GuestMode
    host_nxe: bool = True                        # the host's EFER.NXE, which the nested walk follows
    mem: PhysMem = field(init=False)
    probes: list[tuple[str, int]] = field(default_factory=list)
    gpas: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.levels = 5 if self.mode.la57 else 4
        self.mem = PhysMem([(RAM_BASE, RAM_SIZE)])
        tag_memory(self.mem)
        self.mem.fill(GUEST_TABLES, 4 * MiB)
        self.nested = PageTable(NPT4, self.mem, FrameAllocator(self.mem, NESTED_TABLES, 2 * MiB))
        fmt = PAGING5 if self.levels == 5 else PAGING4
        self.guest = PageTable(fmt, self.mem, FrameAllocator(self.mem, GUEST_TABLES, 2 * MiB))
        self.shift = 12 + 9 * (self.levels - 1)       # a guest root entry's span
        for k in range(GUEST_FRAMES):
            self.nested.map(GUEST_TABLES + k * 4096, GUEST_TABLES + k * 4096, 4096, RWX)
        self.slot = 0

    def _poke(self, table: PageTable, addr: int, pokes: tuple[Poke, ...]) -> None:
        for depth, set_bits, clear in pokes:
            slot = table.lookup(addr, depth)
            self.mem.write_u64(slot.pa, (slot.raw | set_bits) & ~clear)

    def add(self, name: str, guest: F = USER_RWX, nested: F = RWX, *, guest_pokes: tuple[Poke, ...] = (),
            nested_pokes: tuple[Poke, ...] = (), table_pokes: tuple[Poke, ...] = (), guest_size: int = 4096,
            nested_size: int = 4096) -> None:
        """A configuration in the next guest root slot: a guest page of `guest_size` with `guest` flags at a
        GPA of its own, which a nested page of `nested_size` with `nested` flags maps (a 1 GiB one to
        host-physical 0, so that the GPA's offset in it is in the image); pokes in the guest entries on the
        VA's path, in the nested entries on the GPA's path, and (`table_pokes`, by guest depth) in the nested
        PTE of the page that holds the guest entry at that depth."""
        self.slot += 1
        va = self.slot << self.shift | 0x4020_3000
        gpa = self.slot * GiB | (0x20_3000 if nested_size < GiB else LARGE_PA + 0x3000)
        frame = {4096: RAM_BASE + 0x1000 * self.slot, 2 * MiB: LARGE_PA, GiB: 0}[nested_size]
        self.nested.map(gpa & -nested_size, frame, nested_size, nested)
        self.guest.map(va & -guest_size, gpa & -guest_size, guest_size, guest)
        self._poke(self.guest, va, guest_pokes)
        self._poke(self.nested, gpa, nested_pokes)
        for depth, set_bits, clear in table_pokes:
            page = self.guest.lookup(va, depth).pa & ~0xFFF
            self._poke(self.nested, page, ((3, set_bits, clear),))
        self.probes.append((name, va + 0x7F8))
        self.gpas.append(gpa)

    def build(self) -> None:
        pte, pde, pdpte = self.levels - 1, self.levels - 2, self.levels - 3        # guest depths
        self.add("user page over a nested page")
        self.add("supervisor page over a nested page", RWX)
        self.add("guest 2 MiB page over a nested 4 KiB page", guest_size=2 * MiB)
        self.add("guest 1 GiB page over a nested 4 KiB page", guest_size=GiB)
        self.add("guest 4 KiB page over a nested 2 MiB page", nested_size=2 * MiB)
        self.add("guest 2 MiB page over a nested 2 MiB page", guest_size=2 * MiB, nested_size=2 * MiB)
        self.add("guest 4 KiB page over a nested 1 GiB page", nested_size=GiB)
        self.add("guest 2 MiB page over a nested 1 GiB page", guest_size=2 * MiB, nested_size=GiB)
        # guest #PF
        for depth in range(self.levels):
            self.add(f"guest P=0 at depth {depth}", guest_pokes=((depth, 0, P),))
        self.add("guest read-only page", F.READ | F.EXECUTE | F.USER)
        self.add("guest read-only page over a read-only nested page", F.READ | F.EXECUTE | F.USER,
                 F.READ | F.EXECUTE)
        self.add("guest R/W=0 in the PDE", guest_pokes=((pde, 0, RW),))
        self.add("guest U/S=0 in the PDPTE", guest_pokes=((pdpte, 0, US),))
        self.add("guest XD page", F.READ | F.WRITE | F.USER)
        self.add("guest reserved bit MAXPHYADDR in the PTE", guest_pokes=((pte, 1 << MAXPHYADDR, 0),))
        # nested faults on the final GPA
        for depth in range(1, 4):             # the nested PML4E of every GPA here is shared
            self.add(f"nested P=0 at depth {depth}", nested_pokes=((depth, 0, P),))
        self.add("nested read-only page", nested=F.READ | F.EXECUTE)
        self.add("nested R/W=0 in the PDPTE", nested_pokes=((1, 0, RW),))
        self.add("nested U/S=0 in the PTE", nested_pokes=((3, 0, US),))
        self.add("nested U/S=0 in the PDPTE", nested_pokes=((1, 0, US),))
        self.add("nested XD page", nested=F.READ | F.WRITE)
        self.add("nested XD in the PDE", nested_pokes=((2, XD, 0),))
        self.add("nested reserved bit MAXPHYADDR in the PTE", nested_pokes=((3, 1 << MAXPHYADDR, 0),))
        self.add("nested reserved bit 51 in the PDE", nested_pokes=((2, 1 << 51, 0),))
        self.add("nested read-only 2 MiB page", nested=F.READ | F.EXECUTE, nested_size=2 * MiB)
        self.add("nested read-only 1 GiB page", nested=F.READ | F.EXECUTE, nested_size=GiB)
        self.add("nested 1 GiB page with bit 13 (reserved)", nested_size=GiB, nested_pokes=((1, 1 << 13, 0),))
        self.add("nested 2 MiB page with bit 20 (reserved)", nested_size=2 * MiB, nested_pokes=((2, 1 << 20, 0),))
        # nested faults on the guest's table accesses
        # the guest tables below the root (which every probe shares), by depth
        for depth, name in enumerate(["PML4", "PDPT", "PD", "PT"][5 - self.levels:], start=1):
            self.add(f"nested page of the guest {name} not present", table_pokes=((depth, 0, P),))
            self.add(f"nested page of the guest {name} read-only", table_pokes=((depth, 0, RW),))
        self.add("nested page of the guest PT supervisor", table_pokes=((pte, 0, US),))
        self.add("nested page of the guest PD with XD", table_pokes=((pde, XD, 0),))
        self.probes.append(("empty guest root slot", (self.slot + 3) << self.shift))
        self.probes.append(("non-canonical", 1 << (47 if self.levels == 4 else 56)))

    def walker(self) -> Walker:
        return Walker(self.mem, X86Rules(self.guest.root_paddr, self.mode.options(MAXPHYADDR)),
                      stage2=Walker(self.mem, NptRules(self.nested.root_paddr,
                                                       X86Options(maxphyaddr=MAXPHYADDR, nxe=self.host_nxe))))


@pytest.fixture(scope="module", params=list(OUTCOMES),
                ids=["4-level", "5-level", "4-level, CR0.WP=0", "4-level, host EFER.NXE=0"])
def npt_run(request: pytest.FixtureRequest) -> tuple[Scene, list[tuple[str, NptProbeCase]], list[NptProbeResult]]:
    """One QEMU run per guest paging mode (4-level, 5-level, 4-level with CR0.WP=0) over 4-level nested
    tables."""
    require_qemu_x86()
    scene = Scene(*request.param)
    scene.build()
    chunk = [(name, NptProbeCase(va, a, p)) for name, va in scene.probes for a, p in ACCESSES]
    image = scene.mem.read(RAM_BASE, RAM_SIZE)
    run = svm.run_npt_probes(image, scene.guest.root_paddr, scene.nested.root_paddr, [c for _, c in chunk],
                             maxphyaddr=MAXPHYADDR, gpas=scene.gpas, guest=scene.mode,
                             host_nxe=scene.host_nxe)
    assert run.features.maxphyaddr == MAXPHYADDR
    # The harness wrote its two root entries, in slots no probe uses, and nothing else.
    given = np.frombuffer(image, dtype=np.uint64)
    changed = np.flatnonzero(np.frombuffer(run.image, dtype=np.uint64) != given) * 8 + RAM_BASE
    assert changed.tolist() == sorted([scene.guest.root_paddr + 8 * run.guest_slot,
                                       scene.nested.root_paddr + 8 * run.nested_slot])
    return scene, chunk, run.results


def test_two_stage_walks_agree_with_qemu_tcg_under_svm(
        npt_run: tuple[Scene, list[tuple[str, NptProbeCase]], list[NptProbeResult]]) -> None:
    scene, chunk, results = npt_run
    t = scene.walker().translate_many([c.va for _, c in chunk], [Access.parse(c.access) for _, c in chunk],
                                      [Privilege.parse(c.privilege) for _, c in chunk])
    named = Counter[str]()
    kinds = Counter[str]()
    mismatches = []
    for n, ((name, case), got) in enumerate(zip(chunk, results, strict=True)):
        reason = Reason(int(t.reason[n]))
        apm = expected(t, n, case.access, scene.mem)
        assert apm is not None, reason.label            # every scene's table and page is in RAM
        want, why = tcg_deviation(apm, reason)
        if why is not None:
            named[why] += 1
        kinds[_kind(want)] += 1
        if comparable(got, case.access) != comparable(want, case.access):
            mismatches.append(f"{name}: {case.access} {case.privilege} at {case.va:#x}: walker {want}, "
                              f"QEMU {got} ({reason.label})")
    assert not mismatches, f"{len(mismatches)} of {len(chunk)} differ:\n" + "\n".join(mismatches[:40])
    # Every kind of outcome, as many as the configurations make, and the named deviation exactly where
    # predicted: the five reserved-bit configurations (guest PTE; nested PTE, PDE, 1 GiB and 2 MiB pages),
    # and with the host's NXE=0 the three with a nested XD, at every access.
    assert kinds == OUTCOMES[scene.mode, scene.host_nxe], kinds
    rsvd = sum(1 for n in range(len(chunk)) if Reason(int(t.reason[n])) == Reason.RESERVED)
    assert named == Counter({TCG_RSVD_P0: rsvd})
    assert rsvd == RESERVED.get((scene.mode, scene.host_nxe), 5 * len(ACCESSES))


def _kind(r: NptProbeResult) -> str:
    if r.exit_code is None:
        return "ok"
    if r.exit_code == svm.EXIT_NPF:
        return "NPF table" if r.exitinfo1 & EXITINFO1_TABLE else "NPF final"
    return {svm.EXIT_PF: "#PF", EXIT_GP: "#GP"}[r.exit_code]


def test_nested_faults_on_guest_tables_are_user_writes_even_for_reads(
        npt_run: tuple[Scene, list[tuple[str, NptProbeCase]], list[NptProbeResult]]) -> None:
    """APM 15.25.5, as QEMU 7.2 does it (ptw_translate probes guest table pages with MMU_DATA_STORE): a
    read through a guest PD in a read-only nested page is a #VMEXIT(NPF) with EXITINFO1 = P|W|U|bit 33."""
    _, chunk, results = npt_run
    for (name, case), got in zip(chunk, results, strict=True):
        if name == "nested page of the guest PD read-only" and case.access == "read":
            assert got.exit_code == svm.EXIT_NPF and got.exitinfo1 == ERROR_P | 2 | 4 | EXITINFO1_TABLE
        if name == "nested read-only page" and case.access == "read":
            assert got.exit_code is None
        if name == "nested P=0 at depth 3" and case.access == "read":
            assert (got.exit_code, got.exitinfo1) == (svm.EXIT_NPF, 4 | EXITINFO1_FINAL)
        if name == "nested reserved bit 51 in the PDE":
            assert got.exitinfo1 & ERROR_RSVD


@pytest.mark.parametrize("seed", [1, 2])
def test_generated_npt_vector_sets_agree_with_qemu(seed: int) -> None:
    """Every case of a generated `x86_64-4level+npt` set, run as a guest access under SVM with the set's
    guest registers (CR0.WP, CR4.SMEP/SMAP/PKE, EFER.NXE, RFLAGS.AC, PKRU: `guest_mode`) and nested
    registers, and compared with the set's own walker: both stages' outcomes, protection keys included."""
    from pagetable.vectors.x86_64.gen import generate_x86

    require_qemu_x86()
    vs = generate_x86("x86_64-4level+npt", seed)
    (region,) = vs.mem.regions
    assert region.base == RAM_BASE
    r = vs.registers
    cases = [NptProbeCase(c.va, c.access, c.privilege) for c in vs.cases]
    run = svm.run_npt_probes(region.data.tobytes(), r["cr3"] & ~0xFFF, r["ncr3"] & ~0xFFF, cases,
                             maxphyaddr=MAXPHYADDR, guest=guest_mode(r))
    t = registry.walker_for(vs).translate_many(*vs.lanes())
    kinds, mismatches = Counter[str](), []
    for n, (case, got) in enumerate(zip(cases, run.results, strict=True)):
        apm = expected(t, n, case.access, vs.mem)
        assert apm is not None, Reason(int(t.reason[n])).label
        want, _ = tcg_deviation(apm, Reason(int(t.reason[n])))
        kinds[_kind(want)] += 1
        if comparable(got, case.access) != comparable(want, case.access):
            mismatches.append(f"{case.access} {case.privilege} at {case.va:#x}: walker {want}, QEMU {got} "
                              f"({Reason(int(t.reason[n])).label})")
    assert not mismatches, f"{len(mismatches)} of {len(cases)} differ:\n" + "\n".join(mismatches[:40])
    assert {"ok", "#PF", "NPF final", "NPF table", "#GP"} <= set(kinds), kinds
    reasons = Counter(c.reason for c in vs.cases)
    assert reasons["protection-key"] > 0 and r["cr4"] & CR4.mask("SMEP", "SMAP", "PKE") == CR4.mask("SMEP", "SMAP",
                                                                                                     "PKE")
