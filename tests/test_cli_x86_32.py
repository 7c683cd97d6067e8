"""The dump commands over x86 32-bit and PAE paging (`--arch x86_64` with CR4.PAE=0, or CR4.PAE=1 and
IA32_EFER.LME=0): walk (Linux's 32-bit ptdump, QEMU's `info tlb` and `info mem`, json), translate, check,
diff and plot on images the library builds; PAE's PDPTE registers are the PDPT at CR3 as a MOV to CR3 loads
it (Intel SDM Vol. 3A 4.4.1), so a PDPT that would #GP, or lies outside RAM, is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pagetable.arch.x86_64 import PAGING32_PSE36, PAGING_PAE
from pagetable.cli import main
from pagetable.dump import open_images, write_elf_core
from pagetable.dump.notes import GPRS, QEMU_CPU_STATE, SEGMENTS
from pagetable.flags import MappingFlags as F
from pagetable.format import PagingFormat
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable

from .test_riscv_sv32_listing import refused, run

MiB = 1 << 20
RWX = F.READ | F.WRITE | F.EXECUTE
ROOT = 8 * MiB
PG_WP_PE = 0x8001_0001
REGS32 = ["--arch", "x86_64", "--reg", f"cr0={PG_WP_PE:#x}", "--reg", f"cr3={ROOT:#x}", "--reg", "cr4=0x10",
          "--reg", "efer=0"]                                              # CR4.PSE: 4 MiB pages
REGS_PAE = ["--arch", "x86_64", "--reg", f"cr0={PG_WP_PE:#x}", "--reg", f"cr3={ROOT:#x}", "--reg", "cr4=0x20",
            "--reg", "efer=0x800"]                                        # CR4.PAE, EFER.NXE


def _image(tmp_path: Path, fmt: PagingFormat, big: int) -> str:
    """16 MiB of RAM with `fmt`'s tables at 8 MiB: user pages 0x1000-0x3000 (RW) and 0x3000 (read-only),
    kernel pages of `big` bytes at 0xC0000000 onto PA 0 (RWX) and at 0xC0000000 + 2 * `big` onto PA 12 GiB
    (read-only, UC: a PSE-36 4 MiB page, or a PAE 2 MiB one). 32-bit paging has no XD: its pages are
    executable, PAE's but the kernel's first are not."""
    x = F.EXECUTE if fmt.entry_size == 4 else F(0)
    mem = PhysMem([(0, 16 * MiB)])
    pt = PageTable(fmt, mem, FrameAllocator(mem, ROOT, 8 * MiB))
    pt.map_region(0x1000, 0x10_1000, 0x2000, F.READ | F.WRITE | F.USER | x)
    pt.map(0x3000, 0x10_3000, 0x1000, F.READ | F.USER | x)
    pt.map(0xC000_0000, 0, big, RWX)
    pt.map(0xC000_0000 + 2 * big, 0x3_0000_0000, big, F.READ | F.DEVICE | x)
    assert pt.root_paddr == ROOT
    path = tmp_path / f"{fmt.name.replace(' ', '_')}.bin"
    path.write_bytes(bytes(mem.regions[0].data))
    return f"{path}@0"


@pytest.fixture
def p32(tmp_path: Path) -> str:
    return _image(tmp_path, PAGING32_PSE36, 4 * MiB)


@pytest.fixture
def pae(tmp_path: Path) -> str:
    return _image(tmp_path, PAGING_PAE, 2 * MiB)


def _core(tmp_path: Path, image: str, cr4s: list[int], elfclass: int = 32) -> str:
    """`image` as an EM_386 core of `elfclass` (QEMU's for a first CPU outside IA-32e mode) with a "QEMU"
    note (QEMUCPUState version 1) per CPU: CR0 PG|WP|PE, CR3 the root, CR4 from `cr4s`."""
    segment = {"selector": 0, "limit": 0, "flags": 0, "pad": 0, "base": 0}
    notes = [("QEMU", 0, QEMU_CPU_STATE.build({
        "version": 1, "size": QEMU_CPU_STATE.sizeof(), **dict.fromkeys(GPRS, 0), "rip": 0, "rflags": 2,
        **{name: segment for name in SEGMENTS}, "cr": [PG_WP_PE, 0, 0, ROOT, cr4]})) for cr4 in cr4s]
    path = tmp_path / "core.elf"
    write_elf_core(path, open_images([image]).mem, "i386", notes, elfclass)
    return str(path)


PTDUMP32 = [
    "---[ User Space ]---",
    "0x00000000-0x00001000           4K                               pte",
    "0x00001000-0x00003000           8K USR RW                     x  pte",
    "0x00003000-0x00004000           4K USR ro                     x  pte",
    "0x00004000-0x00400000        4080K                               pte",
    "0x00400000-0xc0000000        3068M                               pmd",
    "0xc0000000-0xc0400000           4M     RW         PSE         x  pmd",
    "0xc0400000-0xc0800000           4M                               pmd",
    "0xc0800000-0xc0c00000           4M     ro PWT PCD PSE         x  pmd",
    "0xc0c00000-0x00000000        1012M                               pmd"]
PTDUMP_PAE = [
    "---[ User Space ]---",
    "0x00000000-0x00001000           4K                               pte",
    "0x00001000-0x00003000           8K USR RW                     NX pte",
    "0x00003000-0x00004000           4K USR ro                     NX pte",
    "0x00004000-0x00200000        2032K                               pte",
    "0x00200000-0x40000000        1022M                               pmd",
    "0x40000000-0xc0000000           2G                               pud",      # PDPTEs 1 and 2: P=0
    "0xc0000000-0xc0200000           2M     RW         PSE         x  pmd",
    "0xc0200000-0xc0400000           2M                               pmd",
    "0xc0400000-0xc0600000           2M     ro PWT PCD PSE         NX pmd",
    "0xc0600000-0x00000000        1018M                               pmd"]


def test_walk_formats_of_32_bit_paging(p32: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Linux's 2-level ptdump (pmd and pte); QEMU's tlb_info_32 prints a 4 MiB PDE masked to bits 31:21,
    so the PSE-36 page's PA bits 39:32 (PDE bits 20:13) print as 0; mem_info_32 prints no PA."""
    assert run(capsys, ["walk", p32, *REGS32]) == PTDUMP32
    assert run(capsys, ["walk", p32, *REGS32, "--format", "qemu-info-tlb"]) == [
        "0000000000001000: 0000000000101000 -------UW",
        "0000000000002000: 0000000000102000 -------UW",
        "0000000000003000: 0000000000103000 -------U-",
        "00000000c0000000: 0000000000000000 --P-----W",
        "00000000c0800000: 0000000000000000 --P--CT--"]
    assert run(capsys, ["walk", p32, *REGS32, "--format", "qemu-info-mem"]) == [
        "0000000000001000-0000000000003000 0000000000002000 urw",
        "0000000000003000-0000000000004000 0000000000001000 ur-",
        "00000000c0000000-00000000c0400000 0000000000400000 -rw",
        "00000000c0800000-00000000c0c00000 0000000000400000 -r-"]
    assert run(capsys, ["walk", p32, *REGS32, "--range", "0xc0000000-0xc0400000"]) == [PTDUMP32[0], PTDUMP32[6]]


def test_walk_formats_of_pae_paging(pae: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Linux's 3-level PAE ptdump (pud, pmd, pte; NX shown); QEMU's tlb_info_pae32 with XD and the PA above
    4 GiB; one json row read back."""
    assert run(capsys, ["walk", pae, *REGS_PAE]) == PTDUMP_PAE
    assert run(capsys, ["walk", pae, *REGS_PAE, "--format", "qemu-info-tlb"]) == [
        "0000000000001000: 8000000000101000 X------UW",
        "0000000000002000: 8000000000102000 X------UW",
        "0000000000003000: 8000000000103000 X------U-",
        "00000000c0000000: 0000000000000000 --P-----W",
        "00000000c0400000: 8000000300000000 X-P--CT--"]
    assert run(capsys, ["walk", pae, *REGS_PAE, "--format", "qemu-info-mem"]) == [
        "0000000000001000-0000000000003000 0000000000002000 urw",
        "0000000000003000-0000000000004000 0000000000001000 ur-",
        "00000000c0000000-00000000c0200000 0000000000200000 -rw",
        "00000000c0400000-00000000c0600000 0000000000200000 -r-"]
    [row] = run(capsys, ["walk", pae, *REGS_PAE, "--format", "json", "--range", "0xc0400000-0xc0600000"])
    assert json.loads(row) == {"region": "cr3", "va": "0xc0400000", "end": "0xc0600000", "pa": "0x300000000",
                               "size": 2 << 20, "level": 2, "perms": "S:r-- U:---", "memtype": "uc",
                               "raw": "0x8000000300000099", "fault": None, "fault_stage": None}


VAS = ["0x1008", "0x3000", "0xc0000123", "0xc0800010", "0x5000"]


def test_translate(p32: str, pae: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, ["translate", p32, *REGS32, "--access", "any", *VAS]) == [
        "0x0000000000001008 -> 0x101008  S:rwx U:rwx  wb  (level 1)",
        "0x0000000000003000 -> 0x103000  S:r-x U:r-x  wb  (level 1)",
        "0x00000000c0000123 -> 0x123  S:rwx U:---  wb  (level 2)",
        "0x00000000c0800010 -> 0x300000010  S:r-x U:---  uc  (level 2)",          # PSE-36: PA bits 39:32
        "0x0000000000005000 -> page-fault (invalid) at level 1 stage 1 error_code=0x0 cr2=0x5000"]
    assert run(capsys, ["translate", pae, *REGS_PAE, "--access", "any", *VAS]) == [
        "0x0000000000001008 -> 0x101008  S:rw- U:rw-  wb  (level 1)",
        "0x0000000000003000 -> 0x103000  S:r-- U:r--  wb  (level 1)",
        "0x00000000c0000123 -> 0x123  S:rwx U:---  wb  (level 2)",
        "0x00000000c0800010 -> page-fault (invalid) at level 2 stage 1 error_code=0x0 cr2=0xc0800010",
        "0x0000000000005000 -> page-fault (invalid) at level 1 stage 1 error_code=0x0 cr2=0x5000"]
    assert run(capsys, ["translate", pae, *REGS_PAE, "--access", "write", "--privilege", "user", "0x3000"]) == [
        "0x0000000000003000 -> page-fault (permission) at level 1 stage 1 error_code=0x7 cr2=0x3000"]


def test_check(p32: str, pae: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, ["check", p32, *REGS32]) == [
        "warning wx cr3 0x1000-0x3000 level 1 entry 0x801004=0x0000000000101007 x2: writable and executable "
        "(S:rwx U:rwx)",
        "warning wx cr3 0xc0000000-0xc0400000 level 2 entry 0x800c00=0x0000000000000083: writable and executable "
        "(S:rwx U:---)",
        "info mmio cr3 0xc0800000-0xc0c00000 level 2 entry 0x800c08=0x0000000000006099: maps no RAM of the image, "
        "as device memory (MMIO, presumably) ([0x300000000, 0x300400000), uc)",
        "check: 3 findings: 0 errors, 2 warnings, 1 info"]
    assert run(capsys, ["check", pae, *REGS_PAE])[-1] == "check: 2 findings: 0 errors, 1 warning, 1 info"


def test_diff_of_the_two_modes(p32: str, pae: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The same mappings but for XD (PAE's user pages) and the page sizes of the kernel's."""
    assert main(["diff", p32, *REGS32, "--image2", pae, "--other-reg", "cr4=0x20", "--other-reg", "efer=0x800"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "~ 0x0000000000001000-0x0000000000003000         8K  pa 0x101000 4K pages S:rwx U:rwx wb  ->  pa 0x101000 "
        "4K pages S:rw- U:rw- wb  (perms)",
        "~ 0x0000000000003000-0x0000000000004000         4K  pa 0x103000 4K pages S:r-x U:r-x wb  ->  pa 0x103000 "
        "4K pages S:r-- U:r-- wb  (perms)",
        "- 0x00000000c0200000-0x00000000c0400000         2M  pa 0x200000 4M pages S:rwx U:--- wb",
        "+ 0x00000000c0400000-0x00000000c0600000         2M  pa 0x300000000 2M pages S:r-- U:--- uc",
        "- 0x00000000c0800000-0x00000000c0c00000         4M  pa 0x300000000 4M pages S:r-x U:--- uc",
        "1 added (2M), 2 removed (6M), 2 changed (12K)"]


def test_plot(pae: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, ["plot", pae, *REGS_PAE, "--out", str(tmp_path / "map.svg")]) == []
    svg = (tmp_path / "map.svg").read_text()
    assert svg.startswith("<?xml") and "CR3 0x800000 (PAE paging)" in svg


def _pae_with(tmp_path: Path, pdpte2: int) -> str:
    """The PAE image with PDPTE 2 replaced."""
    path = tmp_path / "pdpt.bin"
    data = bytearray(Path(_image(tmp_path, PAGING_PAE, 2 * MiB).split("@")[0]).read_bytes())
    data[ROOT + 16:ROOT + 24] = pdpte2.to_bytes(8, "little")
    path.write_bytes(bytes(data))
    return f"{path}@0"


def test_the_pdpte_registers_are_loaded_from_cr3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A present PDPTE with a reserved bit: the MOV to CR3 #GPs (SDM 4.4.1), so no walk; one not present
    with the same bit is ignored; a PDPT outside RAM; PAE under nested paging."""
    image = _pae_with(tmp_path, 0x5000 | 1 << 1 | 1)                  # bit 1 reserved
    assert refused(capsys, ["walk", image, *REGS_PAE]) == (
        "pagetable: error: registers: MOV to CR3 0x800000 would #GP: PDPTE2 0x0000000000005003 is present with "
        "reserved bits 0x2 set (SDM 4.4.1: bits 2:1, 8:5 and 52..63)\n")
    image = _pae_with(tmp_path, 0x5000 | 1 << 1)
    assert run(capsys, ["walk", image, *REGS_PAE]) == PTDUMP_PAE
    regs = [a.replace(f"cr3={ROOT:#x}", "cr3=0x1fff000") for a in REGS_PAE]
    assert refused(capsys, ["walk", image, *regs]) == (
        "pagetable: error: registers: cr3 0x1fff000: the PAE PDPT (the PDPTE registers' source, SDM 4.4.1) is "
        "outside RAM: physical range [0x1fff000, 0x1fff008) is not inside RAM ([0x0, 0x1000000))\n")
    assert refused(capsys, ["walk", image, *REGS_PAE, "--reg", "ncr3=0"]) == (
        "pagetable: error: registers: cr4 0x20, efer 0x800 select PAE paging: a PAE guest over nested paging "
        "(ncr3, eptp) is not supported (its PDPT is guest-physical)\n")


def test_em_386_cores_give_their_registers(p32: str, pae: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """--cpu N on an EM_386 core (ELFCLASS32, or ELFCLASS64 as QEMU writes one with RAM above 4 GiB): CR0, CR3
    and CR4 from the QEMU note; EFER assumed as 32-bit Linux runs (NXE with PAE paging), and said."""
    argv = ["--arch", "x86_64", "--cpu", "0", "--access", "any", "0x1008", "0xc0800010"]
    assert main(["translate", _core(tmp_path, p32, [0x10]), *argv]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines() == [
        "0x0000000000001008 -> 0x101008  S:rwx U:rwx  wb  (level 1)",
        "0x00000000c0800010 -> 0x300000010  S:r-x U:---  uc  (level 2)"]
    assert out.err == ("pagetable: note: assumed efer=0x0 (the EM_386 core records no EFER; CR4.PAE=0: 32-bit "
                       "paging reads none of its bits)\n")
    core = _core(tmp_path, pae, [0x10, 0x20], elfclass=64)
    assert main(["translate", core, *argv[:2], "--cpu", "1", "0x1008"]) == 0
    out = capsys.readouterr()
    assert out.out == "0x0000000000001008 -> 0x101008  S:rw- U:rw-  wb  (level 1)\n"           # XD: NXE=1
    assert out.err == ("pagetable: note: assumed efer=0x800 (NXE, as 32-bit Linux sets it for PAE paging: the "
                       "EM_386 core records no EFER; give --reg efer=0 if NXE was clear)\n")
    assert run(capsys, ["translate", core, *argv[:2], "--cpu", "1", "--reg", "efer=0", "0x1008"]) == [   # XD reserved
        "0x0000000000001008 -> page-fault (reserved) at level 2 stage 1 error_code=0x9 cr2=0x1008"]
    assert refused(capsys, ["translate", core, "--arch", "aarch64", "--cpu", "0", "0x1008"]) == \
        f"pagetable: error: {core} is an ELF core of EM_386, not aarch64\n"


def test_explain_names_the_paging_mode_of_an_entry(capsys: pytest.CaptureFixture[str]) -> None:
    """`explain --arch x86_64 --register pte32|pae_pte|cr3_32|cr3_pae`: 32-bit paging's 4-byte entries and
    PAE's 8-byte ones, by their own layouts (SDM Tables 4-4 to 4-11), and CR3 as each mode reads it."""
    lines = run(capsys, ["explain", "--arch", "x86_64", "--register", "pte32", "0x400060a3"])
    assert lines[0].startswith("x86 32-bit PDE (maps a 4-MByte page) 0x400060a3  (Intel SDM Vol. 3A, Table 4-4")
    assert "  [20:13] ADDR_HI  = 3 (00000011)   # physical address bits 39:32 (PSE-36: bits 20:M-19 reserved, M = " \
           "min(MAXPHYADDR, 40))" in lines
    assert lines[-3:-1] == ["  -> as a PDE: page, S:rwx U:---", "  -> as a PTE: page, S:rwx U:---"]
    lines = run(capsys, ["explain", "--arch", "x86_64", "--register", "pae_pte", "0x8000000000123063"])
    assert lines[0].startswith("x86 PAE PDPTE (references a page directory) 0x8000000000123063")
    assert "  -> as a PDPTE: MOV to CR3 would #GP (reserved bits 0x8000000000000062 set)" in lines
    assert lines[-3:-1] == ["  -> as a PDE: reference to the next table", "  -> as a PTE: page, S:rw- U:---"]
    assert run(capsys, ["explain", "--arch", "x86_64", "--register", "cr3_32", "0x12345018"]) == [
        "CR3 (32-bit paging) 0x12345018  (Intel SDM Vol. 3A, Table 4-3 (Use of CR3 with 32-Bit Paging))",
        "  [31:12] ADDR     = 0x12345   # physical address bits 31:12 of the page directory",
        "  [    4] PCD      = 1   # page-level cache disable of the page directory",
        "  [    3] PWT      = 1   # page-level write-through of the page directory",
        "  -> the page directory at PA 0x12345000"]
    assert run(capsys, ["explain", "--arch", "x86_64", "--register", "cr3_pae", "0x12345fe0"]) == [
        "CR3 (PAE paging) 0x12345fe0  (Intel SDM Vol. 3A, Table 4-7 (Use of CR3 with PAE Paging))",
        "  [ 31:5] ADDR     = 0x91a2ff   # physical address bits 31:5 of the 32-byte aligned page-directory-pointer "
        "table",
        "  -> the page-directory-pointer table (32-byte aligned) at PA 0x12345fe0"]
    assert refused(capsys, ["explain", "--arch", "x86_64", "--register", "pte32", "0x100000000"]) == \
        "pagetable: error: x86 32-bit PTE (maps a 4-KByte page) value 0x100000000 does not fit in 32 bits\n"
    assert refused(capsys, ["explain", "--arch", "x86_64", "--register", "cr3_pae", "0x100000000"]) == \
        "pagetable: error: CR3 (PAE paging) value 0x100000000 does not fit in 32 bits\n"
    assert refused(capsys, ["explain", "--arch", "riscv", "--register", "pae_pte", "1"]) == \
        "pagetable: error: riscv has no register 'pae_pte' to explain (pte, satp, vsatp, hgatp)\n"


def test_the_pdpte_registers_given(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--reg pdpte0=... to pdpte3: the PDPTE registers as the MOV to CR3 loaded them, whatever the PDPT in the
    image holds now (here PDPTE 3 with the reserved bit 5 QEMU sets: the load of it would #GP); all four or
    none, and only in PAE paging."""
    image = _pae_with(tmp_path, 0)
    data = bytearray(Path(image.split("@")[0]).read_bytes())
    pdptes = [int.from_bytes(data[ROOT + 8 * k:ROOT + 8 * k + 8], "little") for k in range(4)]
    data[ROOT + 24:ROOT + 32] = (pdptes[3] | 0x20).to_bytes(8, "little")
    Path(image.split("@")[0]).write_bytes(bytes(data))
    assert "PDPTE3" in refused(capsys, ["walk", image, *REGS_PAE])
    given = [a for k, v in enumerate(pdptes) for a in ("--reg", f"pdpte{k}={v:#x}")]
    assert run(capsys, ["walk", image, *REGS_PAE, *given]) == PTDUMP_PAE
    message = ("pagetable: error: register pdpte0: give the four PDPTE registers pdpte0 to pdpte3, and only with PAE "
               "paging (CR4.PAE=1, IA32_EFER.LME=0); without them they are loaded from CR3\n")
    assert refused(capsys, ["walk", image, *REGS_PAE, *given[:6]]) == message
    assert refused(capsys, ["walk", image, *REGS32, *given]) == message
