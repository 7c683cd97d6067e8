"""Real QEMU 7.2 `dump-guest-memory` ELF cores (pagetable.vectors.qmp) read by pagetable.dump: for x86_64
(-M pc), aarch64 and riscv64 (-M virt), a tagged image loaded at a known PA with the generic loader, the VM
stopped (-S), dumped through QMP without paging; the pattern at its PA, every PT_LOAD a range of the
machine's memory map with holes between them, the notes per CPU. For x86, a 64 KiB ROM sets CR3 and CR4 in
real mode and halts, and the "QEMU" notes (QEMUCPUState) give those values back. Plus the helper's errors."""

from __future__ import annotations

import itertools
import re
import struct
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pagetable.arch.x86_64.walk import X86Rules
from pagetable.cli import main
from pagetable.dump import Image, ImageError, open_image, qemu_cpu_states
from pagetable.dump.notes import QEMU_CPU_STATE
from pagetable.physmem import PhysMem
from pagetable.vectors.qemu import QemuFailed, QemuUnavailable
from pagetable.vectors.qmp import Qmp, dump_guest_memory, run_qmp
from pagetable.vectors.tagging import fill_tags
from pagetable.walker import Walker

from .conftest import require_qemu, require_qemu_aarch64, require_qemu_x86

MIB = 1 << 20
RAM = 16 * MIB
SMP = 2
TAGGED = 64 << 10
FOUR_G = 1 << 32
X86_LOW = 8 * MIB                # -M pc,max-ram-below-4g: RAM [0, 8 MiB) and [4 GiB, 4 GiB + 8 MiB)


def _tagged(pa: int) -> bytes:
    """TAGGED bytes whose every u64 is its own PA, as they will sit at `pa`."""
    mem = PhysMem([(pa, TAGGED)])
    fill_tags(mem, 0)
    return mem.read(pa, TAGGED)


def _command(argv: list[str], pa: int) -> Callable[[str], list[str]]:
    return lambda workdir: [*argv, "-m", f"{RAM // MIB}M", "-smp", str(SMP), "-nodefaults", "-display", "none",
                            "-device", f"loader,file={workdir}/image.bin,addr={pa:#x},force-raw=on"]


def _dump(tmp_path: Path, argv: list[str], pa: int, files: dict[str, bytes] | None = None,
          prepare: Callable[[Qmp], None] | None = None) -> Image:
    core = tmp_path / "core.elf"
    dump_guest_memory(_command(argv, pa), {"image.bin": _tagged(pa), **(files or {})}, core, timeout=30,
                      prepare=prepare)
    return open_image(core)


def _ranges(image: Image) -> list[tuple[int, int]]:
    """The image's segments as [start, end) ranges, contiguous ones merged."""
    out: list[list[int]] = []
    for s in sorted(image.segments, key=lambda s: s.base):
        if out and out[-1][1] == s.base:
            out[-1][1] = s.base + s.size
        else:
            out.append([s.base, s.base + s.size])
    return [(a, b) for a, b in out]


def _check(image: Image, machine: str, pa: int, ranges: list[tuple[int, int]]) -> None:
    assert image.kind == "elf-core" and image.machine == machine
    assert image.mem.read(pa, TAGGED) == _tagged(pa)
    assert _ranges(image) == ranges
    for (_, end), (start, _) in itertools.pairwise(ranges):    # the holes between the ranges
        assert not image.mem.contains(end) and not image.mem.contains(start - 8)
    assert not image.mem.contains(ranges[-1][1]) and (ranges[0][0] == 0 or not image.mem.contains(ranges[0][0] - 8))


def _pids(image: Image, offset: int) -> list[int]:
    """pr_pid of each NT_PRSTATUS note (QEMU writes the CPU's index + 1)."""
    return [struct.unpack_from("<I", desc, offset)[0] for _, kind, desc in image.notes if kind == "NT_PRSTATUS"]


def test_riscv64_virt(tmp_path: Path) -> None:
    qemu = require_qemu()
    pa = 0x8010_0000
    image = _dump(tmp_path, [qemu, "-M", "virt", "-bios", "none", "-S"], pa)
    # the 60 KiB mask ROM at 0x1000 (reset vector) is dumped too; RAM at 0x8000_0000
    _check(image, "EM_RISCV", pa, [(0x1000, 0x10000), (0x8000_0000, 0x8000_0000 + RAM)])
    assert [(name, kind) for name, kind, _ in image.notes] == [("CORE", "NT_PRSTATUS")] * SMP
    assert _pids(image, 32) == [1, 2]
    assert [struct.unpack_from("<Q", d, 112)[0] for _, _, d in image.notes] == [0x1000] * SMP   # pc at reset


def test_aarch64_virt(tmp_path: Path) -> None:
    qemu = require_qemu_aarch64()
    pa = 0x4010_0000
    image = _dump(tmp_path, [qemu, "-M", "virt", "-cpu", "max", "-S"], pa)
    _check(image, "EM_AARCH64", pa, [(0x4000_0000, 0x4000_0000 + RAM)])
    # per CPU: prstatus, FP/SIMD registers and (-cpu max has SVE) NT_ARM_SVE (0x405, unknown to pyelftools)
    assert [(name, kind) for name, kind, _ in image.notes] == \
        [("CORE", "NT_PRSTATUS"), ("CORE", "NT_FPREGSET"), ("LINUX", "1029")] * SMP
    assert _pids(image, 32) == [1, 2]


ROM_CODE = 0xFF80
# real mode: CR3 = 0x1000 and CR4 = PAE, then hlt
SET_CR3_CR4 = bytes.fromhex("66b800100000" "0f22d8"        # mov eax, 0x1000; mov cr3, eax
                            "66b820000000" "0f22e0")       # mov eax, 0x20;   mov cr4, eax
# and on to IA-32e mode (compatibility mode, CS still the reset one): EFER.LME, then CR0 = PG | ET | PE
TO_LONG_MODE = bytes.fromhex("66b9800000c0" "0f32"         # mov ecx, IA32_EFER; rdmsr
                             "660d00010000" "0f30"         # or eax, LME; wrmsr
                             "66b811000080" "0f22c0")      # mov eax, 0x8000_0011; mov cr0, eax
HALT = bytes.fromhex("f4" "ebfd")                          # hlt; jmp back to the hlt


def _x86_rom(code: bytes) -> bytes:
    """A 64 KiB BIOS: at the reset vector (ROM offset 0xfff0) a jump to `code` at ROM_CODE."""
    rom = bytearray(b"\xf4" * 0x10000)
    rom[ROM_CODE:ROM_CODE + len(code)] = code
    rom[0xfff0:0xfff2] = bytes([0xEB, (ROM_CODE - 0xfff2) & 0xFF])
    return bytes(rom)


def _x86_tables() -> bytes:
    """4-level tables at 0x1000 (PML4), 0x2000 (PDPT), 0x3000 (PD) mapping the 2 MiB below 4 GiB (the ROM)
    to itself, so fetching goes on once CR0.PG is set."""
    tables = np.zeros(3 * 512, dtype="<u8")
    tables[0] = 0x2000 | 3
    tables[512 + 3] = 0x3000 | 3
    tables[1024 + 511] = 0xFFE0_0000 | 0x83              # P | RW | PS
    return tables.tobytes()


X86_ARGV = ["-M", f"pc,max-ram-below-4g={X86_LOW // MIB}M", "-accel", "tcg"]


def _x86_ranges(bios: int) -> list[tuple[int, int]]:
    """pc RAM below 4 GiB, the BIOS ROM mapped to end at 4 GiB (dumped: ROM counts as RAM to QEMU) and the
    rest of RAM above 4 GiB."""
    return [(0, X86_LOW), (FOUR_G - bios, FOUR_G), (FOUR_G, FOUR_G + RAM - X86_LOW)]


def test_x86_pc_stopped(tmp_path: Path) -> None:
    qemu = require_qemu_x86()
    pa = 0x10_0000
    image = _dump(tmp_path, [qemu, *X86_ARGV, "-S"], pa)
    bios = FOUR_G - max(s.base for s in image.segments if s.base < FOUR_G)      # Debian's SeaBIOS: 256 KiB
    # FOUR_G's ROM range and the high RAM range touch: merged into one by _ranges
    assert _ranges(image) == [(0, X86_LOW), (FOUR_G - bios, FOUR_G + RAM - X86_LOW)]
    _check(image, "EM_386", pa, _ranges(image))      # not in long mode: QEMU says EM_386 (in an ELF64 core)
    # every CPU's NT_PRSTATUS, then every CPU's "QEMU" note
    assert [(name, kind) for name, kind, _ in image.notes] == [("CORE", "NT_PRSTATUS")] * SMP + [("QEMU", "0")] * SMP
    assert _pids(image, 24) == [1, 2]                                   # i386 prstatus: pr_pid at 24
    states = qemu_cpu_states(image.notes)
    assert len(states) == SMP
    for state in states:                                                # the reset state (SDM Vol. 3A 9.1.1)
        assert state.control_registers() == {"cr0": 0x6000_0010, "cr2": 0, "cr3": 0, "cr4": 0}
        assert state.rip == 0xFFF0 and state.segments["cs"].selector == 0xF000
        assert state.segments["cs"].base == 0xFFFF_0000 and state.rflags == 2


@pytest.mark.parametrize("long_mode", [False, True], ids=["real-mode", "ia32e-mode"])
def test_x86_pc_registers_from_a_rom(tmp_path: Path, long_mode: bool, capsys: pytest.CaptureFixture[str]) -> None:
    qemu = require_qemu_x86()
    pa = 0x10_0000
    code = SET_CR3_CR4 + (TO_LONG_MODE if long_mode else b"") + HALT
    rom = _x86_rom(code)
    cr0 = 0x8000_0011 if long_mode else 0x6000_0010

    def ready(qmp: Qmp) -> bool:
        found = re.search(r"CR0=([0-9a-f]+) CR2=[0-9a-f]+ CR3=([0-9a-f]+) CR4=([0-9a-f]+)", qmp.hmp("info registers"))
        return found is not None and tuple(int(x, 16) for x in found.groups()) == (cr0, 0x1000, 0x20)

    def prepare(qmp: Qmp) -> None:
        qmp.poll(lambda: ready(qmp), "the ROM to set the control registers")
        qmp.execute("stop")

    files = {"rom.bin": rom, "tables.bin": _x86_tables()}
    argv = [qemu, *X86_ARGV, "-bios", "rom.bin", "-device", "loader,file=tables.bin,addr=0x1000,force-raw=on"]
    image = _dump(tmp_path, argv, pa, files, prepare)
    # QEMU maps the ROM's last 128 KiB (here all 64) below 1 MiB as well, and dumps it there
    ranges = _x86_ranges(len(rom))
    assert _ranges(image) == [ranges[0], (ranges[1][0], ranges[2][1])]
    assert image.mem.read(FOUR_G - len(rom), len(rom)) == rom
    assert image.mem.read(0x10_0000 - len(rom), len(rom)) == rom
    tables = np.frombuffer(_x86_tables(), dtype="<u8").copy()
    if long_mode:       # the fetch after CR0.PG set the entries' Accessed bits (not Dirty: nothing was written)
        tables[[0, 512 + 3, 1024 + 511]] |= 0x20
    assert image.mem.read(0x1000, 3 * 4096) == tables.tobytes()
    # the first CPU's EFER.LMA picks the ELF machine (and the prstatus layout: x86_64's, 336 bytes, or i386's)
    _check(image, "EM_X86_64" if long_mode else "EM_386", pa, _ranges(image))
    prstatus = [desc for _, kind, desc in image.notes if kind == "NT_PRSTATUS"]
    assert [len(d) for d in prstatus] == [336 if long_mode else 144] * SMP
    assert _pids(image, 32 if long_mode else 24) == [1, 2]
    boot, other = qemu_cpu_states(image.notes)     # the boot CPU ran the ROM; the other awaits its SIPI
    assert boot.control_registers() == {"cr0": cr0, "cr2": 0, "cr3": 0x1000, "cr4": 0x20}
    assert boot.rip == ROM_CODE + len(code) - 2                        # after the hlt
    assert other.control_registers() == {"cr0": 0x6000_0010, "cr2": 0, "cr3": 0, "cr4": 0}
    if long_mode:      # the core's own registers walk the core's own tables
        rip = struct.unpack_from("<Q", prstatus[0], 112 + 16 * 8)[0]      # x86_64 user_regs_struct.rip
        assert rip == boot.rip
        walker = Walker(image.mem, X86Rules(boot.cr[3]))
        va = boot.segments["cs"].base + boot.rip
        assert walker.translate(va, "execute").pa == va == 0xFFFF_0000 + boot.rip
    _translate_with_cpu(tmp_path / "core.elf", long_mode, boot.segments["cs"].base + boot.rip, capsys)


# and on to PAE paging (CR4.PAE already set, EFER.LME clear): CR0 = PG | ET | PE
TO_PAE = bytes.fromhex("66b811000080" "0f22c0")             # mov eax, 0x8000_0011; mov cr0, eax


def _pae_tables() -> bytes:
    """A PAE PDPT at 0x1000 whose PDPTE 3 (P alone: R/W and U/S are reserved in a PDPTE, SDM Table 4-8)
    references the page directory at 0x3000, which maps the 2 MiB below 4 GiB (the ROM) to itself."""
    tables = np.zeros(3 * 512, dtype="<u8")
    tables[3] = 0x3000 | 1
    tables[1024 + 511] = 0xFFE0_0000 | 0x83              # P | RW | PS
    return tables.tobytes()


def test_x86_pc_pae_core(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A ROM that turns on PAE paging (not IA-32e mode) and halts: QEMU writes an EM_386 core (in ELF64: the
    BIOS ends at 4 GiB), whose QEMU note's CR0, CR3 and CR4 `translate --cpu 0` walks (the PDPTEs loaded
    from the core at CR3, EFER assumed as 32-bit Linux sets it) to where the CPU fetches its hlt."""
    qemu = require_qemu_x86()
    cr0 = 0x8000_0011

    def prepare(qmp: Qmp) -> None:
        qmp.poll(lambda: f"CR0={cr0:08x}" in qmp.hmp("info registers"), "the ROM to turn on PAE paging")
        qmp.execute("stop")

    files = {"rom.bin": _x86_rom(SET_CR3_CR4 + TO_PAE + HALT), "tables.bin": _pae_tables()}
    argv = [qemu, *X86_ARGV, "-bios", "rom.bin", "-device", "loader,file=tables.bin,addr=0x1000,force-raw=on"]
    image = _dump(tmp_path, argv, 0x10_0000, files, prepare)
    assert (image.machine, image.elfclass) == ("EM_386", 64)
    boot = qemu_cpu_states(image.notes)[0]
    assert boot.control_registers() == {"cr0": cr0, "cr2": 0, "cr3": 0x1000, "cr4": 0x20}
    va = boot.segments["cs"].base + boot.rip
    assert main(["translate", str(tmp_path / "core.elf"), "--arch", "x86_64", "--cpu", "0", "--access", "execute",
                 hex(va)]) == 0
    out = capsys.readouterr()
    assert out.out == f"{va:#018x} -> {va:#x}  S:rwx U:---  wb  (level 2)\n"
    assert out.err == (
        "pagetable: note: assumed efer=0x800 (NXE, as 32-bit Linux sets it for PAE paging: the EM_386 core records "
        "no EFER; give --reg efer=0 if NXE was clear)\n"
        "pagetable: note: assumed pdpte0=0x0, pdpte1=0x0, pdpte2=0x0, pdpte3=0x3001 (the PDPT at CR3 has bit 5 set "
        "in a present PDPTE: QEMU's walk sets it, a reserved bit a processor never writes; the PDPTE registers the "
        "MOV to CR3 loaded had it clear)\n")
    assert image.mem.entries(8).read(0x1000 + 24) == 0x3021        # QEMU's deviation: the A flag in PDPTE 3
    argv = ["translate", str(tmp_path / "core.elf"), "--arch", "x86_64", "--reg", f"cr0={cr0:#x}", "--reg",
            "cr3=0x1000", "--reg", "cr4=0x20", "--reg", "efer=0x800", hex(va)]
    assert main(argv) == 2              # from memory, that PDPT would #GP at the MOV to CR3
    assert "PDPTE3 0x0000000000003021 is present with reserved bits 0x20 set" in capsys.readouterr().err


def _translate_with_cpu(core: Path, long_mode: bool, va: int, capsys: pytest.CaptureFixture[str]) -> None:
    """`translate --cpu N` takes CPU N's registers from the core (assuming Linux's EFER, and saying so)."""
    argv = ["translate", str(core), "--arch", "x86_64", "--cpu", "0", "--access", "execute", hex(va)]
    if not long_mode:
        assert main(argv) == 2                   # EM_386: its registers are read, and say paging is off
        assert capsys.readouterr().err == "pagetable: error: registers: CR0 0x60000010: paging is off (CR0.PG=0)\n"
        return
    assert main(argv) == 0
    out = capsys.readouterr()
    assert out.out.startswith(f"{va:#018x} -> {va:#x}  ")
    assert out.err == "pagetable: note: assumed efer=0xd01 (SCE, LME, LMA, NXE: the core records no EFER; give " \
                      "--reg efer=... if NXE was clear)\n"
    assert main([*argv[:-1], "--reg", "efer=0x500", hex(va)]) == 0          # given: nothing assumed
    assert capsys.readouterr().err == ""
    assert main(["translate", str(core), "--arch", "x86_64", "--cpu", "1", hex(va)]) == 2
    assert "CR0.PG" in capsys.readouterr().err           # the other CPU has paging off
    assert main(["translate", str(core), "--arch", "x86_64", "--cpu", "2", hex(va)]) == 2
    assert capsys.readouterr().err == "pagetable: error: --cpu 2: the core records CPUs 0 to 1\n"
    assert main(["translate", str(core), "--arch", "riscv", "--cpu", "0", hex(va)]) == 2
    assert "ELF core of EM_X86_64, not riscv" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ helper errors
def test_qmp_error_is_reported(tmp_path: Path) -> None:
    qemu = require_qemu()
    with pytest.raises(QemuFailed, match=r"QMP dump-guest-memory failed: GenericError: .*No such file"):
        dump_guest_memory(lambda d: [qemu, "-M", "virt", "-bios", "none", "-S", "-display", "none"], {},
                          tmp_path / "missing" / "core.elf", timeout=30)


def test_qemu_missing(tmp_path: Path) -> None:
    with pytest.raises(QemuUnavailable, match="cannot run"):
        dump_guest_memory(lambda d: [str(tmp_path / "no-qemu")], {}, tmp_path / "core.elf", timeout=5)


def test_qemu_exits_early(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import sys; sys.stderr.write('bad option'); sys.exit(1)"]
    with pytest.raises(QemuFailed, match=r"exited with status 1 before its QMP socket opened.*bad option"):
        run_qmp(lambda d: argv, {}, lambda qmp, d: None, timeout=10)


def test_timeout_never_hangs(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    with pytest.raises(QemuFailed, match="timed out waiting for the QMP socket"):
        run_qmp(lambda d: argv, {}, lambda qmp, d: None, timeout=0.5)


def test_socket_path_too_long(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deep = tmp_path / ("d" * 120)
    deep.mkdir()
    monkeypatch.setenv("TMPDIR", str(deep))
    monkeypatch.setattr("tempfile.tempdir", None)
    with pytest.raises(QemuFailed, match="set TMPDIR to a shorter directory"):
        run_qmp(lambda d: [sys.executable, "-c", "pass"], {}, lambda qmp, d: None, timeout=5)


def test_tags_are_their_addresses() -> None:
    words = np.frombuffer(_tagged(0x8010_0000), dtype="<u8")
    assert words[0] == 0x8010_0000 and words[-1] == 0x8010_0000 + TAGGED - 8


def test_qemu_note_refused_when_short_or_of_another_version() -> None:
    size = QEMU_CPU_STATE.sizeof()
    good = struct.pack("<II", 1, size) + bytes(size - 8)
    assert qemu_cpu_states([("CORE", "NT_PRSTATUS", b""), ("QEMU", "0", good)])[0].kernel_gs_base is None
    with pytest.raises(ImageError, match="CPU 0 has 8 bytes"):
        qemu_cpu_states([("QEMU", "0", good[:8])])
    with pytest.raises(ImageError, match="version 2"):
        qemu_cpu_states([("QEMU", "0", struct.pack("<II", 2, size) + good[8:])])
    with pytest.raises(ImageError, match="says it has 999 bytes"):
        qemu_cpu_states([("QEMU", "0", struct.pack("<II", 1, 999) + good[8:])])
