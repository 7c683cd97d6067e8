"""Sv32's own PTE layout in listings, `explain` and the dump commands (`--arch riscv32`): the Sv32 PTE of the
privileged spec's Figure "Sv32 page table entry" (RSW 9:8, PPN[0] 19:10, PPN[1] 31:20; no N, PBMT or
reserved bits), Linux's RV32 ptdump (arch/riscv/mm/ptdump.c without CONFIG_64BIT: "0x%08lx" addresses, no N
or MT column), QEMU 7.2's qemu-system-riscv32 `info mem` (target/riscv/monitor.c without TARGET_RISCV64),
checked against QEMU's own monitor; exact strings throughout, and bad input refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from pagetable import registry
from pagetable.arch.riscv_sv39 import PTE, PTE32, SPEC, SV32, SV32X4, SV39, Hgatp32, Satp32, Vsatp32
from pagetable.arch.riscv_sv39.entry import RiscvCodec
from pagetable.arch.riscv_sv39.walk import RiscvRules
from pagetable.cli import main
from pagetable.dump.qemu_monitor import RISCV32_HEADER, info_mem_lines
from pagetable.errors import InvalidAddress, InvalidArgument
from pagetable.flags import MappingFlags as F
from pagetable.format import EntryKind
from pagetable.frames import FrameAllocator
from pagetable.listing import ptdump
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.vectors import qemu as runner
from pagetable.vectors.qmp import Qmp
from pagetable.vectors.riscv import qemu as rq
from pagetable.vectors.riscv import qemu32
from pagetable.walker import Walker

from .conftest import require_qemu_riscv32
from .test_qemu_monitor_formats import _boot, _lines

RAM = 0x8000_0000
MiB = 1 << 20
V, R, W, X, U, G, A, D = 1, 2, 4, 8, 16, 32, 64, 128
SATP = 1 << 31 | RAM >> 12                           # Sv32, ASID 0, root at RAM


def pte(pa: int, bits: int) -> int:
    """An Sv32 PTE (Figure "Sv32 page table entry"): PPN[1] = PA[33:22] in 31:20, PPN[0] = PA[21:12] in 19:10."""
    return (pa >> 22) << 20 | ((pa >> 12) & 0x3FF) << 10 | bits


TABLES = {                                           # root at RAM, its level-0 table at RAM + 0x1000
    RAM + 4 * 0: pte(RAM + 0x1000, V),
    RAM + 0x1000 + 4 * 1: pte(RAM + 0x10_0000, V | R | W | A | D),          # 0x1000, 0x2000: one 8K run
    RAM + 0x1000 + 4 * 2: pte(RAM + 0x10_1000, V | R | W | A | D),
    RAM + 0x1000 + 4 * 3: pte(0x3_0000_3000, V | R | U | A) | 2 << 8,      # PA bits 33:32 set, RSW = 2
    RAM + 0x1000 + 4 * 4: pte(RAM + 0x10_4000, V | R | X | U | A),
    RAM + 4 * 0x300: pte(RAM, V | R | W | X | G | A | D),                  # 0xc000_0000: a 4 MiB megapage
    RAM + 4 * 0x301: pte(RAM + 0x20_0000, V | R | W | A | D),              # PPN[0] = 0x200: misaligned
    RAM + 4 * 0x3FF: pte(RAM + 0x40_0000, V | R | A),                      # the last 4 MiB: its end is 0
}


def memory() -> PhysMem:
    mem = PhysMem([(RAM, 8 * MiB)])
    for pa, value in TABLES.items():
        mem.entries(4).write(pa, value)
    return mem


def walker() -> Walker:
    return Walker(memory(), RiscvRules(Satp32.decode(SATP)))


def raw_image(tmp_path: Path) -> str:
    (tmp_path / "ram.bin").write_bytes(bytes(memory().regions[0].data))
    return f"{tmp_path / 'ram.bin'}@{RAM:#x}"


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> list[str]:
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr()
    assert out.err == ""
    return out.out.splitlines()


def refused(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    out = capsys.readouterr()
    assert out.out == ""
    return out.err


# -- the layout --------------------------------------------------------------------------------------------


def test_the_sv32_pte_layout() -> None:
    """PTE32 keeps PTE's declarations of the low ten bits and splits the 22-bit PPN as the spec's figure;
    the Sv32 and Sv32x4 codecs (and the walk rules' copies of them) list and explain by it."""
    assert [(f.name, f.bits) for f in reversed(PTE32.fields)] == [
        ("PPN[1]", "31:20"), ("PPN[0]", "19:10"), ("RSW", "9:8"), ("D", "7"), ("A", "6"), ("G", "5"), ("U", "4"),
        ("X", "3"), ("W", "2"), ("R", "1"), ("V", "0")]
    assert all(PTE32[n] is PTE[n] for n in ("V", "R", "W", "X", "U", "G", "A", "D", "RSW"))
    assert PTE32.width == 32 and PTE32.unknown_bits((1 << 32) - 1) == 0
    assert PTE32.mask("PPN[1]", "PPN[0]") == PTE.mask("PPN") & 0xFFFF_FFFF
    for fmt in (SV32, SV32X4, *(r.fmt for r in RiscvRules(Satp32.decode(SATP)).regime.regions),
                *(r.fmt for r in RiscvRules.gstage(Hgatp32.for_table(SV32X4, RAM)).regime.regions)):
        assert fmt.codec.layout_for(EntryKind.BLOCK, 4 * MiB) is PTE32
    assert SV39.codec.layout_for(EntryKind.PAGE, 4096) is PTE
    assert SV32.codec.letters(pte(0x3_0000_3000, V | R | U | A) | 2 << 8, False) == "RSW(2) . A . U . . R V"
    assert SPEC.letters(pte(0x3_0000_3000, V | R | U | A) | 2 << 8, False) == ".   ..   RSW(2) . A . U . . R V"
    with pytest.raises(InvalidArgument, match="Svpbmt is an RV64 extension"):
        RiscvCodec(svpbmt=True, pte=PTE32)


def test_a_pa_beyond_34_bits_does_not_fit() -> None:
    with pytest.raises(InvalidAddress, match="22-bit PPN"):
        SV32.codec.new_page(1 << 34, F.READ, False)
    mem = PhysMem([(RAM, 4 * MiB)])
    pt = PageTable(SV32, mem, FrameAllocator(mem))
    pt.map(0x1000, 0x3_FFFF_F000, 4096, F.READ)
    assert pt.query(0x1000) == (0x3_FFFF_F000, F.READ, 4096)


# -- listings ----------------------------------------------------------------------------------------------


def test_the_hardware_listing() -> None:
    """`listing.ptdump`: 8-digit addresses (a 34-bit PA shows its 9), RSW then D A G U X W R V."""
    assert ptdump(walker().mappings()) == [
        "0x00001000-0x00003000   0x80100000         8K PTE   ..   D A . . . W R V  S:rw- U:---",
        "0x00003000-0x00004000   0x300003000         4K PTE RSW(2) . A . U . . R V  ! faults: pa-outside-memory",
        "0x00004000-0x00005000   0x80104000         4K PTE   ..   . A . U X . R V  S:--- U:r-x",
        "0xc0000000-0xc0400000   0x80000000         4M PGD   ..   D A G . X W R V  S:rwx U:---",
        "0xc0400000-0xc0800000   0x80200000         4M PGD   ..   D A . . . W R V  ! faults: misaligned-superpage",
        "0xffc00000-0x00000000   0x80400000         4M PGD   ..   . A . . . . R V  S:r-- U:---"]


PTDUMP = [                              # riscv ptdump.c, RV32: levels PMD (the folded PGD entry) and PTE
    "0x00001000-0x00003000    0x80100000         8K PTE   ..   D A . . . W R V",
    "0x00003000-0x00004000    0x300003000         4K PTE RSW(2) . A . U . . R V",
    "0x00004000-0x00005000    0x80104000         4K PTE   ..   . A . U X . R V",
    "0xc0000000-0xc0400000    0x80000000         4M PMD   ..   D A G . X W R V",
    "0xc0400000-0xc0800000    0x80200000         4M PMD   ..   D A . . . W R V  ! faults: misaligned-superpage",
    "0xffc00000-0x00000000    0x80400000         4M PMD   ..   . A . . . . R V"]
INFO_MEM = [*RISCV32_HEADER,
            "00001000 0000000080100000 00002000 rw---ad",
            "00003000 0000000300003000 00001000 r--u-a-",
            "00004000 0000000080104000 00001000 r-xu-a-",
            "c0000000 0000000080000000 00400000 rwx-gad",
            "c0400000 0000000080200000 00400000 rw---ad",
            "ffc00000 0000000080400000 00400000 r----a-"]
ARGS = ["--arch", "riscv32", "--reg", f"satp={SATP:#x}"]


def test_walk_ptdump_and_info_mem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`pagetable walk --arch riscv32`: Linux's RV32 ptdump and qemu-system-riscv32's `info mem`."""
    image = raw_image(tmp_path)
    assert run(capsys, ["walk", image, *ARGS]) == PTDUMP
    assert run(capsys, ["walk", image, *ARGS, "--format", "qemu-info-mem"]) == INFO_MEM
    assert run(capsys, ["walk", image, *ARGS, "--range", "0xc0000000-0xc0800000"]) == PTDUMP[3:5]


def test_info_mem_of_a_4_gib_run_prints_nothing() -> None:
    """print_pte's size is a 32-bit target_ulong on RV32: one run over the whole 4 GiB has size 0, which
    print_pte skips; a run one page short prints."""
    mem = PhysMem([(RAM, 4096)])
    for k in range(1024):
        mem.entries(4).write(RAM + 4 * k, pte(k << 22, V | R | W | X | A | D))
    w = Walker(mem, RiscvRules(Satp32.decode(SATP)))
    assert list(info_mem_lines(w)) == list(RISCV32_HEADER)
    mem.entries(4).write(RAM + 4 * 1023, 0)
    assert list(info_mem_lines(w)) == [*RISCV32_HEADER, "00000000 0000000000000000 ffc00000 rwx--ad"]


def test_explain(capsys: pytest.CaptureFixture[str]) -> None:
    """`pagetable explain --arch riscv32`: the Sv32 PTE by its own fields, the RV32 registers."""
    assert run(capsys, ["explain", "--arch", "riscv32", "0xc0000e53"]) == [
        "RISC-V Sv32 PTE 0xc0000e53  (RISC-V privileged spec, Sv32 page table entry)",
        "  [31:20] PPN[1]   = 0xc00   # physical page number, bits 21:10 (PA bits 33:22)",
        "  [19:10] PPN[0]   = 0x3   # physical page number, bits 9:0 (PA bits 21:12)",
        "  [  9:8] RSW      = 2 (10)   # reserved for supervisor software",
        "  [    7] D        = 0   # dirty",
        "  [    6] A        = 1   # accessed",
        "  [    5] G        = 0   # global mapping",
        "  [    4] U        = 1   # accessible to U-mode",
        "  [    3] X        = 0   # executable",
        "  [    2] W        = 0   # writable",
        "  [    1] R        = 1   # readable",
        "  [    0] V        = 1   # valid",
        "  PA 0x300003000; letters: RSW(2) . A . U . . R V",
        "  -> at Sv32 level 1: page fault (misaligned-superpage)",
        "  -> at Sv32 level 0: leaf, S:--- U:r--",
        "     (Svade, SUM=MXR=0; a leaf's PA is not checked against memory)"]
    assert run(capsys, ["explain", "--arch", "riscv32", "--register", "hgatp", "0x9fc80003"]) == [
        "hgatp (RV32) 0x9fc80003  (RISC-V privileged spec, hypervisor extension, hgatp register (RV32))",
        "  [   31] MODE     = 1  Sv32x4   # G-stage translation mode",
        "  [28:22] VMID     = 127 (1111111)   # virtual-machine identifier",
        "  [ 21:0] PPN      = 0x80003   # physical page number of the 16 KiB G-stage root table",
        "  -> Sv32x4, root table at PA 0x80000000 (PPN[1:0] read as zero); VMID 127"]
    assert run(capsys, ["explain", "--arch", "riscv32", "--register", "vsatp", "0x7fffffff"])[-1] == \
        "  -> translation off (Bare); ASID 511"
    assert refused(capsys, ["explain", "--arch", "riscv32", "0x100000000"]) == \
        "pagetable: error: RISC-V Sv32 PTE value 0x100000000 does not fit in 32 bits\n"


# -- the dump commands -----------------------------------------------------------------------------------


def test_translate_and_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = raw_image(tmp_path)
    assert run(capsys, ["translate", image, *ARGS, "0x1008", "0xc0400000", "0xffc00010", "0x100000000"]) == [
        "0x0000000000001008 -> 0x80100008  S:rw- U:---  default  (level 0)",
        "0x00000000c0400000 -> page-fault (misaligned-superpage) at level 1 stage 1 scause=0xd stval=0xc0400000",
        "0x00000000ffc00010 -> 0x80400010  S:r-- U:---  default  (level 1)",
        "0x0000000100000000 -> page-fault (non-canonical) at level 1 stage 1 scause=0xd stval=0x100000000"]
    assert main(["check", image, *ARGS]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "check: 3 findings: 1 error, 2 warnings, 0 infos"


def test_two_stage_translate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Sv32 over Sv32x4 from the RV32 vsatp and hgatp: the G-stage maps guest RAM at GPA 0x8000_0000 onto
    host RAM at 0x8040_0000; the guest's Sv32 table maps VA 0x1000 to GPA 0x8000_5000."""
    mem = PhysMem([(RAM, 8 * MiB)])
    g = PageTable(SV32X4, mem, FrameAllocator(mem, RAM, 4 * MiB))
    g.map(RAM, RAM + 4 * MiB, 4 * MiB, F.READ | F.WRITE | F.EXECUTE)
    guest = PhysMem([(RAM, mem.view(RAM + 4 * MiB, 4 * MiB))])
    vs = PageTable(SV32, guest, FrameAllocator(guest, RAM, 16 * 4096))
    vs.map(0x1000, RAM + 0x5_0000, 4096, F.READ | F.USER)
    (tmp_path / "ram.bin").write_bytes(bytes(mem.regions[0].data))
    hgatp, vsatp = Hgatp32.for_table(SV32X4, g.root_paddr).encode(), Vsatp32.for_table(SV32, vs.root_paddr).encode()
    argv = ["translate", f"{tmp_path / 'ram.bin'}@{RAM:#x}", "--arch", "riscv32", "--reg", f"hgatp={hgatp:#x}",
            "--reg", f"vsatp={vsatp:#x}", "--privilege", "user", "0x1008", "0x2000"]
    out = run(capsys, argv)
    assert out[0] == "0x0000000000001008 -> 0x80450008 gpa 0x80050008  S:--- U:r--  default  (level 0)"
    assert out[1] == ("0x0000000000002000 -> page-fault (invalid) at level 0 stage 1 gpa 0x80001008 scause=0xd "
                      "stval=0x2000 htval=0x0 htinst=0x0")


@pytest.mark.parametrize(("regs", "message"), [
    (["satp=0x180080000"], "satp (RV32) value 0x180080000 does not fit in 32 bits"),
    (["satp=0x80080000", "hgatp=0x80000000"], "give satp (one stage) or vsatp and hgatp (two stages), not both"),
    (["satp=0x80080000", "menvcfg=0"], "unknown register 'menvcfg' for RV32 translation (registers: satp, vsatp, "
                                       "hgatp, sstatus, vsstatus, menvcfgh)"),
    (["vsatp=0x80080000"], "register hgatp is missing (RV32 two-stage translation needs hgatp)"),
])
def test_bad_registers_are_refused(regs: list[str], message: str, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["translate", raw_image(tmp_path), "--arch", "riscv32", *(a for r in regs for a in ("--reg", r)), "0x1000"]
    assert refused(capsys, argv) == f"pagetable: error: {message}\n"


def test_a_pa_width_beyond_34_bits_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert refused(capsys, ["walk", raw_image(tmp_path), *ARGS, "--pa-bits", "56"]) == \
        "pagetable: error: PA width 56 bits: not an RV32 PA width (32, 33, 34)\n"
    assert registry.by_cli_name("riscv32").default_pa_bits == 34


# -- QEMU's own monitor ----------------------------------------------------------------------------------

# PMP entry 0 over all memory (S-mode accesses need one), satp, mstatus.MPRV with MPP=S, then WFI: the RV32
# twin of test_qemu_monitor_formats.RISCV_PROGRAM (lw for ld, .word for .dword).
RISCV32_PROGRAM = """
        .option norvc
        .text
        .globl _start
_start:
        li      t0, -1
        csrw    pmpaddr0, t0
        li      t0, 0x1f
        csrw    pmpcfg0, t0
        lla     t0, values
        lw      t1, 0(t0)
        csrw    satp, t1
        sfence.vma
        lw      t1, 4(t0)
        csrs    mstatus, t1
1:      wfi
        j       1b
        .balign 4
values:
        .word   SATP
        .word   MSTATUS
"""
MSTATUS_MPRV_MPP_S = (1 << 17) | (1 << 11)


def test_info_mem_is_qemus(tmp_path: Path) -> None:
    """qemu-system-riscv32 with the tables in RAM and satp loaded: its `info mem` is `INFO_MEM`, line for
    line, and so is the listing made from the ELF core QEMU dumps."""
    qemu = require_qemu_riscv32()
    at = RAM + 8 * MiB
    program = runner.assemble(RISCV32_PROGRAM, "program.S", prefix=rq.TOOLCHAIN_PREFIX, package=rq.TOOLCHAIN_PACKAGE,
                              as_flags=("-march=rv32gc_zicsr_zifencei", "-mabi=ilp32"), ld_flags=("-m", "elf32lriscv"),
                              defsyms={"SATP": SATP, "MSTATUS": MSTATUS_MPRV_MPP_S}, address=at)

    def command(d: str) -> list[str]:
        return [qemu, "-M", "virt", "-bios", "none", "-display", "none", "-nodefaults", "-m", "16M", "-smp", "1",
                "-cpu", qemu32.CPU, "-device", f"loader,file={d}/image.bin,addr={RAM:#x},force-raw=on",
                "-device", f"loader,file={d}/program.bin,addr={at:#x},force-raw=on,cpu-num=0"]

    def ready(qmp: Qmp) -> bool:
        regs = dict(line.split() for line in _lines(qmp.hmp("info registers")) if len(line.split()) == 2)
        return int(regs.get("satp", "0"), 16) == SATP

    files = {"image.bin": bytes(memory().regions[0].data), "program.bin": program.code}
    mon = _boot(command, files, ready, "the hart to load satp", [], tmp_path / "core.elf", False)
    assert mon.info_mem == INFO_MEM
