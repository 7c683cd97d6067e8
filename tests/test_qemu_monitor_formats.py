"""QEMU 7.2's monitor listings (pagetable.dump.qemu_monitor): `info mem` (x86 4/5-level, RISC-V Sv39/48/57) and
`info tlb` (x86) for small hand-built tables, with the expected lines written by hand from
target/i386/monitor.c and target/riscv/monitor.c; and the cross-check against QEMU itself.

The cross-check boots QEMU with a generated vector set's tables in RAM and its translation registers loaded
(x86: the probe stub of pagetable/vectors/x86_64/qemu.py, run for one case and left halted under the set's
CR3, without the isa-debug-exit device; RISC-V: a few instructions that write satp, set mstatus.MPRV with
MPP=S and wait), stops it, asks the monitor (`info mem`, `info tlb`, `gva2gpa VA`) and dumps guest memory to
an ELF core. Then (a) the listings made from the core are the monitor's text, line for line; (b) `pagetable
translate CORE --access any --privilege supervisor` agrees with `gva2gpa` for every case VA of the set (and
8 bytes on, and a few unmapped VAs), but for the differences named below (NO_RAM_CHECK, X86_RESERVED,
RISCV_SUM, RISCV_LOAD, AARCH64_AF, AARCH64_L0_BLOCK), each required exactly where the library's own answers
predict it and counted. (b) covers aarch64-4k-48 too (an EL1 program that turns its MMU on), where QEMU has
no `info mem`.
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from pagetable import registry
from pagetable.arch.x86_64 import rules_from_registers
from pagetable.cli import main
from pagetable.dump.qemu_monitor import RISCV_BARE, RISCV_HEADER, info_mem_lines, info_tlb_lines
from pagetable.dump.target import open_target
from pagetable.dump.translate import ANY, translate_vas
from pagetable.errors import PagetableError
from pagetable.physmem import PhysMem
from pagetable.translation import Reason
from pagetable.vectors import VectorSet, generate_aarch64, generate_riscv, generate_x86
from pagetable.vectors import qemu as runner
from pagetable.vectors.aarch64 import qemu as aq
from pagetable.vectors.qmp import Qmp, run_qmp
from pagetable.vectors.riscv import qemu as rq
from pagetable.vectors.x86_64 import qemu as xq
from pagetable.vectors.x86_64.layout import RAM_BASE as X86_RAM
from pagetable.walker import Access, Privilege, Walker

from .conftest import require_qemu, require_qemu_aarch64, require_qemu_x86

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
U64 = npt.NDArray[np.uint64]


# ------------------------------------------------------------------------------------------ hand-built tables
class Tables:
    """Tables written entry by entry into RAM at `base` (one 4 KiB table per `table(n)`)."""

    def __init__(self, base: int, count: int) -> None:
        self.base = base
        self.mem = PhysMem([(base, count * 4 * KIB)])

    def table(self, n: int) -> int:
        return self.base + n * 4 * KIB

    def set(self, table: int, index: int, value: int) -> None:
        self.mem.write_u64(self.table(table) + 8 * index, value)


def x86_walker(t: Tables, la57: bool = False) -> Walker:
    cr4 = 0x20 | (1 << 12 if la57 else 0)
    return Walker(t.mem, rules_from_registers(0x8000_0011, t.table(0), cr4, 0xD00, maxphyaddr=40, gbpages=True))


P, RW, US, PWT, PCD, A, D, PS, G, NX = 1, 2, 4, 8, 0x10, 0x20, 0x40, 0x80, 0x100, 1 << 63


def x86_4level() -> Tables:
    """PML4 0 -> PDPT 1: slot 0 -> PD 2 (2 MiB pages at 0 and 2 MiB, then a PT 3 of 4 KiB pages), slot 1 a 1 GiB
    page; PML4 511 (kernel half, supervisor) -> PDPT 4 with a 1 GiB page at its last slot; and a PML4E that
    points at a table outside the image."""
    t = Tables(0x10_0000, 5)
    t.set(0, 0, t.table(1) | P | RW | US)
    t.set(1, 0, t.table(2) | P | RW | US)
    t.set(1, 1, 0x4000_0000 | P | RW | US | PS | A | D | (1 << 12))     # bit 12: the 1 GiB page's PAT
    t.set(2, 0, 0x20_0000 | P | RW | US | PS | G)
    t.set(2, 1, 0x40_0000 | P | RW | US | PS | PCD | PWT)                # the next PA, same U/W: one range
    t.set(2, 2, t.table(3) | P | US)                                    # R/W=0 above the PTs
    t.set(3, 0, 0x8000_0000 | P | RW | US | PS)                         # a PTE's bit 7 is PAT, not PS
    t.set(3, 1, 0x8000_2000 | P | RW | NX)                              # U/S=0: a supervisor page
    t.set(3, 3, 0x8000_3000 | P | US | (1 << 51) | (1 << 45))           # reserved bit 51; bit 45 >= MAXPHYADDR
    t.set(0, 511, t.table(4) | P | RW)
    t.set(4, 511, 0xC000_0000 | P | RW | PS | NX)
    t.set(0, 5, 0x7_0000_0000 | P)                                       # a PDPT outside the image
    return t


def test_x86_4level_info_tlb_by_hand() -> None:
    problems: list[str] = []
    assert list(info_tlb_lines(x86_walker(x86_4level()), problems=problems)) == [
        "0000000000000000: 0000000000200000 -GP----UW",
        "0000000000200000: 0000000000400000 --P--CTUW",
        "0000000000400000: 0000000080000000 -------UW",
        "0000000000401000: 0000000080002000 X-------W",
        "0000000000403000: 0000200080003000 -------U-",          # bits 12-49 of the entry: 45 kept, 51 not
        "0000000040000000: 0000000040000000 --PDA--UW",          # PAT (bit 12) is not in the 1 GiB frame
        "ffffffffc0000000: 00000000c0000000 X-P-----W",
    ]
    assert problems == ["the level-3 table at 0x700000000 (VA 0x28000000000) is outside the image: read as "
                        "zeros, as QEMU reads unassigned memory"]


def test_x86_4level_info_mem_by_hand() -> None:
    assert list(info_mem_lines(x86_walker(x86_4level()))) == [
        "0000000000000000-0000000000400000 0000000000400000 urw",   # two 2 MiB pages merge: same U and W
        "0000000000400000-0000000000401000 0000000000001000 ur-",   # the PD entry's R/W=0 is ANDed in
        "0000000000401000-0000000000402000 0000000000001000 -r-",
        "0000000000403000-0000000000404000 0000000000001000 ur-",   # reserved bits: listed all the same
        "0000000040000000-0000000080000000 0000000040000000 urw",
        # the last range ends at 2**48, which mem_print prints unextended
        "ffffffffc0000000-0001000000000000 0000000040000000 -rw",
    ]


def test_x86_range_selects_lines_merged_over_the_whole_space() -> None:
    w = x86_walker(x86_4level())
    assert list(info_mem_lines(w, 0x30_0000, 0x40_1000)) == [
        "0000000000000000-0000000000400000 0000000000400000 urw",
        "0000000000400000-0000000000401000 0000000000001000 ur-"]
    assert list(info_tlb_lines(w, 0x40_1000, 0x40_3001)) == [
        "0000000000401000: 0000000080002000 X-------W", "0000000000403000: 0000200080003000 -------U-"]


def test_x86_size_of_half_the_space_prints_sign_extended() -> None:
    """mem_print passes the size through addr_canonical too: the whole lower half (256 PML4Es sharing one PDPT
    of 1 GiB pages) is one range of 2**47 bytes, printed sign-extended; `info tlb` lists the shared PDPT's
    pages under each of the 256 entries."""
    t = Tables(0x10_0000, 2)
    for i in range(256):
        t.set(0, i, t.table(1) | P | RW)
    for i in range(512):
        t.set(1, i, (i << 30) | P | RW | PS)
    assert list(info_mem_lines(x86_walker(t))) == ["0000000000000000-ffff800000000000 ffff800000000000 -rw"]
    tlb = list(info_tlb_lines(x86_walker(t)))
    assert len(tlb) == 256 * 512
    assert tlb[512] == "0000008000000000: 0000000000000000 --P-----W"


def test_x86_5level_by_hand() -> None:
    """LA57: VAs sign-extended from bit 56; `info tlb` walks as 4-level paging does below the PML5.
    `info mem` (mem_info_la57) tests the PDPTE's and PDE's P the wrong way round: the present 2 MiB page
    under PDPTE 0 is a hole; PDPTE 1, not present with U/S, R/W and PS, is a "1 GiB page"; PDPTE 2, not
    present, is followed as a pointer, and its non-present PDE 3 too, to a "PT" whose entries are not present
    (prot 0): nothing more."""
    t = Tables(0x10_0000, 5)
    t.set(0, 511, t.table(1) | P | RW | US)
    t.set(1, 511, t.table(2) | P | RW | US)
    t.set(2, 0, t.table(3) | P | RW | US)
    t.set(3, 0, 0x20_0000 | P | RW | US | PS)
    t.set(2, 1, US | RW | PS)
    t.set(2, 2, RW | US | t.table(4))
    t.set(4, 3, RW | t.table(4))
    w = x86_walker(t, la57=True)
    assert list(info_tlb_lines(w)) == ["ffffff8000000000: 0000000000200000 --P----UW"]
    assert list(info_mem_lines(w)) == ["ffffff8040000000-ffffff8080000000 0000000040000000 urw"]


def sv_walker(t: Tables, levels: int) -> Walker:
    arch = registry.by_name("riscv64")
    assert arch.walker_from_registers is not None
    return arch.walker_from_registers(t.mem, {"satp": (levels + 5) << 60 | t.table(0) >> 12}, None)


V, R, W, X, U, G_, A_, D_ = 1, 2, 4, 8, 16, 32, 64, 128


def pte(pa: int, bits: int) -> int:
    return (pa >> 12) << 10 | bits


def test_sv39_info_mem_by_hand() -> None:
    t = Tables(0x8000_0000, 3)
    t.set(0, 0, pte(t.table(1), V))
    t.set(1, 0, pte(t.table(2), V))
    t.set(2, 0, pte(0x8010_0000, V | R | W | A_ | D_))
    t.set(2, 1, pte(0x8010_1000, V | R | W | A_ | D_))              # contiguous VA and PA, same bits: one line
    t.set(2, 2, pte(0x8010_3000, V | R | W | A_ | D_))              # PA jumps: a new line
    t.set(2, 3, pte(0x8010_4000, V | W))                            # W without R: listed, as QEMU does
    t.set(1, 1, pte(0x8020_0000, V | R | X | G_ | A_))               # a 2 MiB page
    t.set(1, 2, pte(0x8040_0000, V | R | X | G_ | A_))               # next PA, same table: continues the line
    t.set(1, 3, pte(0x8060_1000, V | R | U | A_))                    # misaligned superpage: listed as is
    t.set(0, 1, pte(0x4000_0000, V | R | (1 << 54) | (1 << 61)))     # reserved bit 54, PBMT bit 61
    t.set(0, 256, pte(0x8000_0000, V | R | W | X | G_ | A_ | D_))    # kernel half: sign-extended VA
    t.set(0, 257, pte(0x4000_0000, V | R | W | X | G_ | A_ | D_))
    lines = list(info_mem_lines(sv_walker(t, 3)))
    assert lines == [
        *RISCV_HEADER,
        "0000000000000000 0000000080100000 0000000000002000 rw---ad",
        "0000000000002000 0000000080103000 0000000000001000 rw---ad",
        "0000000000003000 0000000080104000 0000000000001000 -w-----",
        "0000000000200000 0000000080200000 0000000000400000 r-x-ga-",
        "0000000000600000 0000000080601000 0000000000200000 r--u-a-",
        # (pte >> 10) << 12: bit 54 lands in PA bit 56, PBMT's bit 61 in PA bit 63
        "0000000040000000 8100000040000000 0000000040000000 r------",
        "ffffffc000000000 0000000080000000 0000000040000000 rwx-gad",
        "ffffffc040000000 0000000040000000 0000000040000000 rwx-gad",
    ]


def test_sv48_a_leaf_that_starts_a_table_starts_a_line() -> None:
    """walk_pte's last_start is per table: a 1 GiB page (level-2 entry 0) and the 2 MiB page that starts the
    table of entry 1 are VA- and PA-contiguous with equal bits, and still two lines; the next 2 MiB page, in
    the same table, continues the second. An empty root lists only the header."""
    t = Tables(0x8000_0000, 3)
    t.set(0, 0, pte(t.table(1), V))
    t.set(1, 0, pte(0x4000_0000, V | R | W))
    t.set(1, 1, pte(t.table(2), V))
    t.set(2, 0, pte(0x8000_0000, V | R | W))
    t.set(2, 1, pte(0x8020_0000, V | R | W))
    assert list(info_mem_lines(sv_walker(t, 4))) == [
        *RISCV_HEADER,
        "0000000000000000 0000000040000000 0000000040000000 rw-----",
        "0000000040000000 0000000080000000 0000000000400000 rw-----",
    ]
    assert list(info_mem_lines(sv_walker(Tables(0x8000_0000, 1), 4))) == list(RISCV_HEADER)


def bare_walker() -> Walker:
    arch = registry.by_name("riscv64")
    assert arch.walker_from_registers is not None
    return arch.walker_from_registers(Tables(0x8000_0000, 1).mem, {"satp": 0}, None)


def test_riscv_bare_is_no_translation() -> None:
    bare = bare_walker()
    assert list(info_mem_lines(bare)) == [RISCV_BARE]
    with pytest.raises(PagetableError, match="'info tlb' for x86 only, not for no translation"):
        list(info_tlb_lines(bare))


def test_other_walkers_are_refused() -> None:
    vs = generate_aarch64("aarch64-4k-48", 3, None)
    arch = registry.by_name(vs.arch)
    assert arch.walker_from_registers is not None
    walker = arch.walker_from_registers(vs.mem, dict(vs.registers), None)
    with pytest.raises(PagetableError, match="QEMU's monitor has 'info mem' for x86"):
        list(info_mem_lines(walker))
    t = Tables(0x8000_0000, 1)
    with pytest.raises(PagetableError, match="'info tlb' for x86 only, not for Sv39"):
        list(info_tlb_lines(sv_walker(t, 3)))


def test_self_reference_is_bounded() -> None:
    """A PML4 whose every entry points at itself is, to the monitor, 512 PDPTs, 512**2 PDs, 512**3 PTs: refused
    with one message before the PDs are read."""
    t = Tables(0x10_0000, 1)
    for i in range(512):
        t.set(0, i, t.table(0) | P | RW)
    with pytest.raises(PagetableError, match="the level-2 tables number 262144 when every reference is followed"):
        list(info_tlb_lines(x86_walker(t)))


# ------------------------------------------------------------------------------------------ against QEMU
@dataclass(frozen=True)
class Monitor:
    """What the stopped QEMU said, and the core it dumped."""

    info_mem: list[str]
    info_tlb: list[str]
    gva2gpa: dict[int, int | None]
    core: Path


def _lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").splitlines()


_GPA = re.compile(r"gpa: (0x[0-9a-f]+)")


def _ask(qmp: Qmp, vas: list[int], core: Path, tlb: bool) -> Monitor:
    """`info mem` (and `info tlb`), `gva2gpa` of each VA, then the core, from a stopped QEMU (7.2: the
    formats and the differences counted are its)."""
    version = qmp.execute("query-version")["qemu"]
    assert (version["major"], version["minor"]) == (7, 2), f"QEMU {version}: the listings follow QEMU 7.2's monitor"
    qmp.execute("stop")
    answers: dict[int, int | None] = {}
    for va in vas:
        reply = qmp.hmp(f"gva2gpa {va:#x}").strip()
        found = _GPA.fullmatch(reply)
        assert found is not None or reply == "Unmapped", reply
        answers[va] = None if found is None else int(found.group(1), 16)
    mem = _lines(qmp.hmp("info mem"))
    tlbs = _lines(qmp.hmp("info tlb")) if tlb else []
    qmp.execute("dump-guest-memory", {"paging": False, "protocol": f"file:{core}", "format": "elf"})
    return Monitor(mem, tlbs, answers, core)


def _boot(command: Callable[[str], list[str]], files: dict[str, bytes], ready: Callable[[Qmp], bool], what: str,
          vas: list[int], core: Path, tlb: bool) -> Monitor:
    """Run QEMU on `command` until `ready`, then stop it and `_ask`."""
    found: list[Monitor] = []

    def session(qmp: Qmp, _d: str) -> None:
        qmp.poll(lambda: ready(qmp), what)
        found.append(_ask(qmp, vas, core, tlb))

    run_qmp(command, files, session, timeout=60)
    return found[0]


def sample_vas(vs: VectorSet) -> list[int]:
    """Every case VA of the set and the VA 8 bytes on, and VAs no set maps: the top page of each half, a
    non-canonical VA and page 1."""
    vas = {c.va for c in vs.cases}
    return sorted(vas | {(va + 8) & (2**64 - 1) for va in vas} | {0x1000, 0x7FFF_FFFF_F000, 0xFFFF_FFFF_FFFF_F000,
                                                                  0x8000_0000_0000_0000})


PRESENT_PAGE = "present.bin"


def x86_monitor(mode: str, workdir: Path) -> tuple[VectorSet, dict[str, int], Monitor]:
    """The x86 set's image at RAM_BASE under the probe stub (one read of the first case VA), halted with CR3
    the set's and CR4/EFER xq.Registers' (IA32_EFER.NXE on)."""
    qemu = require_qemu_x86()
    vs = generate_x86(mode, 3, None)
    la57 = mode == "x86_64-5level"
    (region,) = vs.mem.regions
    assert region.base == X86_RAM
    image = bytes(region.data)
    cr3 = vs.registers["cr3"]
    regs = xq.Registers.of(la57=la57)
    case = xq.ProbeCase(vs.cases[0].va & ~7, "read", "supervisor", regs)
    layout = xq.plan_layout(len(image), 1)
    vas = sample_vas(vs)
    slot = xq.choose_slot(image, cr3 & ~0xFFF, vas, la57)
    stub = xq.build_stub(layout, cr3, [case], slot, la57)
    loaded = bytearray(image)
    loaded[cr3 - X86_RAM + 8 * slot:cr3 - X86_RAM + 8 * slot + 8] = stub.root_entry.to_bytes(8, "little")

    def command(d: str) -> list[str]:
        argv = xq.qemu_command(qemu, layout, "tcg", xq.TCG_CPU, d)
        k = next(n for n, a in enumerate(argv) if a.startswith("isa-debug-exit"))
        argv = argv[:k - 1] + argv[k + 1:]        # no exit device: the stub's last HLT keeps it there
        # mem_info_la57 follows every non-present PDPTE and PDE: a zero one to a table at PA 0, each of
        # whose non-present entries is a table at PA 0 again -- 512**3 reads per PML4E, minutes of them.
        # With every entry of the page at PA 0 present, those tables are holes to it, and the walk is quick.
        return [*argv, "-device", f"loader,file={d}/{PRESENT_PAGE},addr=0,force-raw=on"] if la57 else argv

    def halted(qmp: Qmp) -> bool:
        text = qmp.hmp("info registers")
        return "HLT=1" in text and re.search(rf"\bCR3=0*{cr3:x}\b", text) is not None

    files = {xq._IMAGE_FILE: bytes(loaded), xq._STUB_FILE: stub.blob, xq._ROM_FILE: xq.rom_program().code,
             PRESENT_PAGE: np.ones(512, dtype="<u8").tobytes()}
    mon = _boot(command, files, halted, "the stub to halt under the set's CR3", vas, workdir / f"{mode}.elf", True)
    return vs, {"cr0": regs.cr0, "cr3": cr3, "cr4": regs.cr4, "efer": regs.efer}, mon


# RISC-V: PMP entry 0 over all memory (S-mode accesses need one, Privileged spec 3.7), satp, then
# mstatus.MPRV with MPP=S, so that QEMU's debug translation (riscv_cpu_get_phys_page_debug: the hart's
# mmu_idx, a load) is an S-mode load's; then WFI for ever, in M-mode.
RISCV_PROGRAM = """
        .option norvc
        .text
        .globl _start
_start:
        li      t0, -1
        csrw    pmpaddr0, t0
        li      t0, 0x1f
        csrw    pmpcfg0, t0
        lla     t0, values
        ld      t1, 0(t0)
        csrw    satp, t1
        sfence.vma
        ld      t1, 8(t0)
        csrs    mstatus, t1
1:      wfi
        j       1b
        .balign 8
values:
        .dword  SATP
        .dword  MSTATUS
"""
MSTATUS_MPRV_MPP_S = (1 << 17) | (1 << 11)


def riscv_monitor(mode: str, workdir: Path) -> tuple[VectorSet, dict[str, int], Monitor]:
    """The RISC-V set's image at RAM_BASE, the program after it, halted in WFI with the set's satp."""
    qemu = require_qemu()
    vs = generate_riscv(mode, 3, None)
    (region,) = vs.mem.regions
    assert region.base == rq.RAM_BASE
    satp = vs.registers["satp"]
    at = rq.RAM_BASE + region.size
    program = runner.assemble(RISCV_PROGRAM, "program.S", prefix=rq.TOOLCHAIN_PREFIX, package=rq.TOOLCHAIN_PACKAGE,
                              as_flags=("-march=rv64gc_zicsr_zifencei",),
                              defsyms={"SATP": satp, "MSTATUS": MSTATUS_MPRV_MPP_S}, address=at)

    def command(d: str) -> list[str]:
        return [qemu, "-M", "virt", "-bios", "none", "-display", "none", "-nodefaults", "-m",
                f"{(region.size + 2 * MIB) // MIB}M", "-smp", "1", "-cpu", "rv64",
                "-device", f"loader,file={d}/image.bin,addr={rq.RAM_BASE:#x},force-raw=on",
                "-device", f"loader,file={d}/program.bin,addr={at:#x},force-raw=on,cpu-num=0"]

    def ready(qmp: Qmp) -> bool:
        regs = dict(line.split() for line in _lines(qmp.hmp("info registers")) if len(line.split()) == 2)
        return int(regs.get("mstatus", "0"), 16) & MSTATUS_MPRV_MPP_S == MSTATUS_MPRV_MPP_S and \
            int(regs.get("satp", "0"), 16) == satp

    files = {"image.bin": bytes(region.data), "program.bin": program.code}
    mon = _boot(command, files, ready, "the hart to load satp and mstatus", sample_vas(vs), workdir / f"{mode}.elf",
                False)
    return vs, {"satp": satp}, mon


# AArch64 at EL1 (-M virt without EL2 and EL3 resets there): MAIR, TCR, TTBR0, TTBR1, then SCTLR_EL1 with
# M=1 from the words after the code. The next fetch, at the program's PA taken as a VA, faults, and so does
# every exception vector's (VBAR_EL1 is 0): the PE loops taking exceptions, its translation registers set,
# which is all gva2gpa reads. SCTLR_EL1.SPAN=1, so that taking them leaves PSTATE.PAN clear.
AARCH64_PROGRAM = """
        .text
        .globl _start
_start:
        adr     x0, values
        ldr     x1, [x0, #0]
        msr     mair_el1, x1
        ldr     x1, [x0, #8]
        msr     tcr_el1, x1
        ldr     x1, [x0, #16]
        msr     ttbr0_el1, x1
        ldr     x1, [x0, #24]
        msr     ttbr1_el1, x1
        isb
        tlbi    vmalle1
        dsb     sy
        isb
        ldr     x1, [x0, #32]
        msr     sctlr_el1, x1
        isb
1:      wfi
        b       1b
        .balign 8
values:
"""
AARCH64_REGISTERS = ("mair_el1", "tcr_el1", "ttbr0_el1", "ttbr1_el1", "sctlr_el1")
SCTLR_SPAN = 1 << 23


def aarch64_monitor(mode: str, workdir: Path) -> tuple[VectorSet, dict[str, int], Monitor]:
    """The AArch64 set's image in RAM, the program after it, stopped with the set's registers loaded; `info
    mem` there is QEMU's answer to a command it does not have."""
    qemu = require_qemu_aarch64()
    vs = generate_aarch64(mode, 3, None)
    (region,) = vs.mem.regions
    at = region.base + region.size
    regs = {**vs.registers, "sctlr_el1": vs.registers["sctlr_el1"] | SCTLR_SPAN}
    program = runner.assemble(AARCH64_PROGRAM, "program.S", prefix=aq.TOOLCHAIN_PREFIX,
                              package=aq.TOOLCHAIN_PACKAGE, address=at).code
    program += b"".join(regs[name].to_bytes(8, "little") for name in AARCH64_REGISTERS)

    def command(d: str) -> list[str]:
        return [qemu, "-M", "virt", "-cpu", "max", "-display", "none", "-nodefaults", "-m", "256M", "-smp", "1",
                "-device", f"loader,file={d}/image.bin,addr={region.base:#x},force-raw=on",
                "-device", f"loader,file={d}/program.bin,addr={at:#x},force-raw=on,cpu-num=0"]

    def ready(qmp: Qmp) -> bool:            # the PC at an exception vector: SCTLR_EL1 was written
        pc = re.search(r"PC=([0-9a-f]{16})", qmp.hmp("info registers"))
        return pc is not None and int(pc.group(1), 16) < 0x800

    files = {"image.bin": bytes(region.data), "program.bin": program}
    mon = _boot(command, files, ready, "the PE to turn its MMU on", sample_vas(vs), workdir / f"{mode}.elf", False)
    return vs, regs, mon


MODES = ["x86_64-4level", "x86_64-5level", "sv39", "sv48", "sv57"]
Boot = tuple[VectorSet, dict[str, int], Monitor]


@pytest.fixture(scope="module")
def monitor(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Boot]:
    """QEMU booted once per mode for the module's tests."""
    workdir = tmp_path_factory.mktemp("qemu-monitor")
    boots = {"x86": x86_monitor, "sv": riscv_monitor, "aarch64": aarch64_monitor}
    return functools.cache(lambda mode: next(f for k, f in boots.items() if mode.startswith(k))(mode, workdir))


# per mode: lines of `info mem` (RISC-V: with the header) and `info tlb`, and the tables outside RAM the
# sets' entries point at (read as zeros by QEMU and by the listings alike)
SIZES = {"x86_64-4level": (40, 52, 3), "x86_64-5level": (1, 55, 3), "sv39": (61, 0, 2), "sv48": (64, 0, 3),
         "sv57": (68, 0, 3)}


@pytest.mark.parametrize("mode", MODES)
def test_listings_are_the_monitors(mode: str, monitor: Callable[[str], Boot]) -> None:
    """(a) The listings made from the dumped core are the monitor's text, line for line."""
    vs, regs, mon = monitor(mode)
    walker = open_target([str(mon.core)], registry.by_name(vs.arch), regs, vs.options.get("maxphyaddr")).walker
    problems: list[str] = []
    assert list(info_mem_lines(walker, problems=problems)) == mon.info_mem
    if mode.startswith("x86"):
        assert list(info_tlb_lines(walker)) == mon.info_tlb
    assert (len(mon.info_mem), len(mon.info_tlb), len(problems)) == SIZES[mode]


def _translate(mon: Monitor, vs: VectorSet, regs: dict[str, int],
               capsys: pytest.CaptureFixture[str]) -> list[int | None]:
    """`pagetable translate CORE --access any --privilege supervisor --json` of every sample VA: PA or None."""
    argv = ["translate", str(mon.core), "--arch", registry.by_name(vs.arch).cli_name,
            *(a for k, v in regs.items() for a in ("--reg", f"{k}={v:#x}")),
            *(["--pa-bits", str(vs.options["maxphyaddr"])] if "maxphyaddr" in vs.options else []),
            "--access", "any", "--privilege", "supervisor", "--json", *(hex(va) for va in mon.gva2gpa)]
    assert main(argv) == 0
    out = capsys.readouterr()
    assert out.err == ""
    rows = [json.loads(line) for line in out.out.splitlines()]
    assert [int(r["va"], 16) for r in rows] == list(mon.gva2gpa)
    return [None if r["pa"] is None else int(r["pa"], 16) for r in rows]


X86_RESERVED = ("x86: QEMU's debug walk (x86_cpu_get_phys_page_attrs_debug) reads P and PS only: a leaf with a "
                "reserved bit translates (a table address beyond MAXPHYADDR reads as zeros, PS in a PML4E is a "
                "pointer: those agree)")
RISCV_SUM = "RISC-V: gva2gpa is an S-mode load with SUM forced on (get_physical_address, is_debug): a U page translates"
RISCV_LOAD = "RISC-V: gva2gpa is a load with MXR clear: a page S-mode may only execute does not translate"
AARCH64_AF = "AArch64: QEMU's debug walk raises no Access flag fault: a page or block with AF=0 translates"
AARCH64_L0_BLOCK = ("AArch64: QEMU 7.2 takes a block descriptor at level 0 of the 4 KiB granule (reserved, a "
                    "Translation fault) as a 512 GiB block")
# how many of each, per mode (the sample VAs of seed 3's sets)
# (a PA outside the image's RAM agrees: the dump commands translate to it, as gva2gpa does)
DEVIATIONS = {"x86_64-4level": {X86_RESERVED: 36},
              "x86_64-5level": {X86_RESERVED: 36},
              "sv39": {RISCV_SUM: 72, RISCV_LOAD: 24},
              "sv48": {RISCV_SUM: 72, RISCV_LOAD: 36},
              "sv57": {RISCV_SUM: 84, RISCV_LOAD: 36},
              "aarch64-4k-48": {AARCH64_AF: 72, AARCH64_L0_BLOCK: 24}}


def _predicted(walker: Walker, vas: U64, arch: str) -> dict[int, str]:
    """Where gva2gpa should differ from `translate --access any --privilege supervisor`, and why, from the
    library's own answers: its `any` reason and faulting entry, and (RISC-V) a user and a supervisor read."""
    x86, riscv = arch == "x86_64", arch == "riscv64"
    t = translate_vas(walker, vas, ANY, "supervisor").t
    user = walker.translate_many(vas, Access.READ, Privilege.USER)
    supervisor = walker.translate_many(vas, Access.READ, Privilege.SUPERVISOR)
    out: dict[int, str] = {}
    for k, va in enumerate(vas.tolist()):
        reason = Reason(int(t.reason[k]))
        level = int(t.level[k])                           # a PTE, or a PDE or PDPTE with PS: QEMU's leaves
        leaf = level == 1 or (level in (2, 3) and int(t.pte[k]) & PS != 0)
        if x86 and reason == Reason.RESERVED and leaf:
            out[va] = X86_RESERVED
        elif riscv and reason == Reason.PERMISSION and user.reason[k] == Reason.OK:
            out[va] = RISCV_SUM
        elif riscv and reason == Reason.OK and supervisor.reason[k] == Reason.PERMISSION:
            out[va] = RISCV_LOAD
        elif arch == "aarch64" and reason == Reason.ACCESSED_DIRTY:
            out[va] = AARCH64_AF
        elif arch == "aarch64" and reason == Reason.RESERVED and level == 0 and int(t.pte[k]) & 3 == 1:
            out[va] = AARCH64_L0_BLOCK
    return out


@pytest.mark.parametrize("mode", [*MODES, "aarch64-4k-48"])
def test_translate_agrees_with_gva2gpa(mode: str, monitor: Callable[[str], Boot],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """(b) `translate --access any --privilege supervisor` on the core against the monitor's `gva2gpa` for
    every sample VA: equal, but for the named differences, each where the library's own answers predict it
    (`_predicted`), with the PA QEMU should give, and counted."""
    vs, regs, mon = monitor(mode)
    if mode.startswith("aarch64"):
        assert mon.info_mem == ["unknown command: 'info mem'"]        # what the refusal of aarch64 follows
    walker = open_target([str(mon.core)], registry.by_name(vs.arch), regs, vs.options.get("maxphyaddr")).walker
    vas = np.array(list(mon.gva2gpa), dtype=np.uint64)
    predicted = _predicted(walker, vas, vs.arch)
    user = walker.translate_many(vas, Access.READ, Privilege.USER)
    found: dict[int, str] = {}
    for k, (va, ours) in enumerate(zip(mon.gva2gpa, _translate(mon, vs, regs, capsys), strict=True)):
        qemu = mon.gva2gpa[va]
        if qemu == ours:
            continue
        assert va in predicted, f"{va:#x}: QEMU says {qemu}, translate says {ours}"
        found[va] = why = predicted[va]
        if why == RISCV_SUM:
            assert qemu == int(user.pa[k])                    # the PA a user read gets
        elif why == RISCV_LOAD:
            assert qemu is None
        else:
            assert qemu is not None
    assert found == predicted
    assert Counter(found.values()) == DEVIATIONS[mode]
    agreeing = [va for va in mon.gva2gpa if va not in found]
    assert sum(mon.gva2gpa[va] is not None for va in agreeing) > len(agreeing) // 4     # not only "Unmapped"


def test_riscv_bare_is_what_qemu_says(tmp_path: Path) -> None:
    """At reset satp is 0 (Bare): QEMU's `info mem` says what the listing says."""
    qemu = require_qemu()
    said: list[list[str]] = []
    run_qmp(lambda d: [qemu, "-M", "virt", "-bios", "none", "-S", "-display", "none", "-nodefaults"], {},
            lambda qmp, d: said.append(_lines(qmp.hmp("info mem"))), timeout=30)
    assert said == [list(info_mem_lines(bare_walker()))]
