"""Real kernels: Debian's Linux 6.1 cloud kernels (x86-64 on -M pc, arm64 on -M virt) booted in QEMU (TCG)
until they panic for want of a root file system, stopped and dumped (pagetable.vectors.linux, one boot per
architecture for the module); the dump commands on each ELF core against what QEMU said about the same
stopped CPU 0: the registers (x86 CR0, CR3, CR4, EFER of `info registers`; arm64 TTBR0/1_EL1, TCR_EL1,
MAIR_EL1, SCTLR_EL1 through the gdbstub), `gva2gpa` for a sample of VAs, and (x86) `info mem` and `info tlb`
line for line; `check`, `walk` and `find-roots` on a healthy kernel's tables. Then fetching the kernel, on
.debs built here. docs/dump-linux.md says what they found."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from pagetable import registry
from pagetable.cli import main
from pagetable.dump import open_image, open_target
from pagetable.dump.check import check
from pagetable.dump.qemu_monitor import info_mem_lines, info_tlb_lines
from pagetable.dump.roots import find_roots
from pagetable.vectors import linux as linux_module
from pagetable.vectors.linux import ARM64_PACKAGE, ARM64_URL, Monitor, boot_and_dump, boot_and_dump_arm64

from .conftest import require_linux_kernel, require_qemu_aarch64_binary, require_qemu_x86_binary

TEXT = 0xFFFF_FFFF_8100_0000           # nokaslr: the kernel's link address (__START_KERNEL_map + 16 MiB)
DIRECT_MAP = 0xFFFF_8880_0000_0000     # page_offset_base without KASLR (Documentation/x86/x86_64/mm.rst)
VMALLOC = 0xFFFF_C900_0000_0000
SAMPLE = [TEXT, TEXT + 0x3_CFE3, 0xFFFF_FFFF_8200_0000, DIRECT_MAP, DIRECT_MAP + 0x1234,
          DIRECT_MAP + 0x1FFD_F000, DIRECT_MAP + 0x1FFE_0000,       # the direct map's last page and the one after
          VMALLOC, VMALLOC + 0x4000,                               # a vmalloc'ed stack and its guard page
          0xFFFF_FE00_0000_1000,                                   # the cpu_entry_area (the GDT)
          0xFFFF_FFFF_FF5F_C000,                                   # a fixmap (IO-APIC)
          0, 0x7FFF_FFFF_F000, 0x8000_0000_0000, 0xFFFF_8000_0000_0000]


@dataclass(frozen=True)
class Booted:
    core: Path
    monitor: Monitor

    @property
    def vas(self) -> list[int]:
        """The VAs asked of gva2gpa: CPU 0's PC and SP, then the sample."""
        return list(self.monitor.gva2gpa)


@pytest.fixture(scope="module")
def linux(tmp_path_factory: pytest.TempPathFactory) -> Booted:
    qemu = require_qemu_x86_binary()
    kernel = require_linux_kernel()
    core = tmp_path_factory.mktemp("linux") / "core.elf"
    return Booted(core, boot_and_dump(qemu, kernel, core, SAMPLE, timeout=90))


def _translate(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[str, str]:
    assert main(["translate", *argv]) == 0
    out = capsys.readouterr()
    return out.out, out.err


def test_registers_and_panic(linux: Booted) -> None:
    assert "Kernel panic - not syncing: VFS: Unable to mount root fs" in linux.monitor.serial
    regs = linux.monitor.registers
    assert regs["efer"] == 0xD01                           # SCE | LME | LMA | NXE: what translate assumes
    assert regs["cr0"] & 0x8001_0001 == 0x8001_0001        # PG, WP, PE
    assert regs["cr4"] & 0x20 and not regs["cr4"] & 0x1000  # PAE, not LA57: 4-level paging
    assert regs["cr3"] == 0x2A1_0000                       # init_top_pgt


def test_translate_cpu_and_registers_agree_with_gva2gpa(linux: Booted, capsys: pytest.CaptureFixture[str]) -> None:
    vas = [f"{va:#x}" for va in linux.vas]
    out, err = _translate(capsys, str(linux.core), "--arch", "x86_64", "--cpu", "0", "--access", "any", *vas)
    assert err == "pagetable: note: assumed efer=0xd01 (SCE, LME, LMA, NXE: the core records no EFER; give " \
                  "--reg efer=... if NXE was clear)\n"
    assert _translate(capsys, str(linux.core), "--arch", "x86_64", *_registers(linux), "--access", "any", *vas) \
        == (out, "")                                       # the monitor's registers: the same answers
    assert _outside_memory(linux, out, r"page-fault \(invalid\) at level [1-4] stage 1 error_code=0x0 cr2={va:#x}|"
                           r"general-protection \(non-canonical\) .*") \
        == [(0xFFFF_FFFF_FF5F_C000, 0xFEC0_0000)]          # the IO-APIC's fixmap page


def _registers(booted: Booted) -> list[str]:
    return [a for name, value in booted.monitor.registers.items() for a in ("--reg", f"{name}={value:#x}")]


def _outside_memory(booted: Booted, out: str, fault: str) -> list[tuple[int, int]]:
    """Check translate's `out` (a line per VA of `booted.vas`) against gva2gpa: the same PA, or a fault
    matching `fault` (formatted with the VA) where QEMU says "Unmapped". Returns the (VA, PA) of those
    translated to a PA outside the image's RAM (devices: the dump commands translate to them, as QEMU and
    the hardware do)."""
    print(out)
    lines = out.splitlines()
    assert len(lines) == len(booted.vas)
    image = open_image(booted.core)
    outside = []
    for va, line in zip(booted.vas, lines, strict=True):
        pa = booted.monitor.gva2gpa[va]
        if pa is None:
            assert re.fullmatch(f"{va:#018x} -> (?:{fault.format(va=va)})", line), line
        else:
            assert line.startswith(f"{va:#018x} -> {pa:#x}  S:"), line
            if not image.mem.contains(pa):
                outside.append((va, pa))
    return outside


def test_info_mem_and_info_tlb_agree_with_the_monitor(linux: Booted, capsys: pytest.CaptureFixture[str]) -> None:
    target = open_target([str(linux.core)], registry.by_cli_name("x86_64"), linux.monitor.registers)
    assert linux.monitor.info_mem is not None and linux.monitor.info_tlb is not None
    assert list(info_mem_lines(target.walker)) == linux.monitor.info_mem
    assert list(info_tlb_lines(target.walker)) == linux.monitor.info_tlb
    for fmt, expected in (("qemu-info-mem", linux.monitor.info_mem), ("qemu-info-tlb", linux.monitor.info_tlb)):
        assert main(["walk", str(linux.core), "--arch", "x86_64", *_registers(linux), "--format", fmt]) == 0
        assert capsys.readouterr() == ("".join(f"{line}\n" for line in expected), "")
    # about 110 and 4640 lines, a few more or less from run to run (what the boot had allocated by then)
    assert linux.monitor.info_mem[0] == "ffff888000000000-ffff888000098000 0000000000098000 -rw"
    assert len(linux.monitor.info_mem) > 100 and len(linux.monitor.info_tlb) > 4000


def test_check_finds_boot_time_wx_and_mmio(linux: Booted, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(linux.core), "--arch", "x86_64", "--cpu", "0"]) == 0           # no error
    out = capsys.readouterr().out
    print(out)
    assert out.splitlines()[-1] == "check: 6 findings: 0 errors, 3 warnings, 3 infos"
    findings = check(open_target([str(linux.core)], registry.by_cli_name("x86_64"),
                                 linux.monitor.registers))
    assert {(f.severity, f.rule) for f in findings} == {("warning", "wx"), ("info", "mmio")}
    # W+X: the kernel image, still writable before mark_readonly() (the panic comes first); not its
    # [0xffffffff832a4000, 0xffffffff832ad000), already NX, and [0xffffffff832b1000, 0xffffffff832b2000), read-only
    assert [(f.start, f.end) for f in findings if f.rule == "wx"] == \
        [(TEXT, 0xFFFF_FFFF_832A_4000), (0xFFFF_FFFF_832A_D000, 0xFFFF_FFFF_832B_1000),
         (0xFFFF_FFFF_832B_2000, 0xFFFF_FFFF_83A0_0000)]
    # MMIO: the HPET twice in vmalloc space (ioremap), the IO-APIC and local APIC pages in the fixmap
    assert [(f.start, f.end) for f in findings if f.rule == "mmio"] == \
        [(0xFFFF_C900_0000_B000, 0xFFFF_C900_0000_C000), (0xFFFF_C900_0002_D000, 0xFFFF_C900_0002_E000),
         (0xFFFF_FFFF_FF5F_C000, 0xFFFF_FFFF_FF5F_E000)]


def _ptdump(booted: Booted, arch: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    assert main(["walk", str(booted.core), "--arch", arch, *_registers(booted)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out.splitlines()


def _device_runs(booted: Booted, arch: str, lines: list[str]) -> None:
    """check's `mmio` findings (device memory, outside the image's RAM) are mapped runs of the ptdump,
    listed with their attributes like any other (the hardware translates to devices), with no fault."""
    runs: list[tuple[int, int, str]] = []
    for line in lines:
        if line.startswith("0x"):
            lo, hi = line.split()[0].split("-")
            runs.append((int(lo, 16), int(hi, 16), line))
    target = open_target([str(booted.core)], registry.by_cli_name(arch), booted.monitor.registers)
    mmio = [(f.start, f.end) for f in check(target) if f.rule == "mmio"]
    assert mmio
    for start, _ in mmio:
        line = next(text for lo, hi, text in runs if lo <= start < (hi or 1 << 64))
        assert len(line.split()) > 3 and "faults" not in line, line        # a mapped run, not a hole


def test_walk_ptdump(linux: Booted, capsys: pytest.CaptureFixture[str]) -> None:
    lines = _ptdump(linux, "x86_64", capsys)
    assert lines[:3] == ["---[ User Space ]---",
                         "0x0000000000000000-0xffff800000000000    16777088T                               p4d",
                         "---[ Kernel Space ]---"]
    # the kernel image, as check's W+X findings and info mem say (only the markers the registers fix)
    start = lines.index("0xffffffff80000000-0xffffffff81000000          16M                               pmd")
    assert lines[start + 1:start + 9] == [
        "0xffffffff81000000-0xffffffff83200000          34M     RW         PSE     GLB x  pmd",
        "0xffffffff83200000-0xffffffff832a4000         656K     RW                 GLB x  pte",
        "0xffffffff832a4000-0xffffffff832ad000          36K     RW                 GLB NX pte",
        "0xffffffff832ad000-0xffffffff832b1000          16K     RW                 GLB x  pte",
        "0xffffffff832b1000-0xffffffff832b2000           4K     ro                 GLB x  pte",
        "0xffffffff832b2000-0xffffffff83400000        1336K     RW                 GLB x  pte",
        "0xffffffff83400000-0xffffffff83a00000           6M     RW         PSE     GLB x  pmd",
        "0xffffffff83a00000-0xffffffffc0000000         966M                               pmd"]
    _device_runs(linux, "x86_64", lines)


def test_find_roots_ranks_cr3_behind_early_top_pgt(linux: Booted) -> None:
    image = open_image(linux.core)
    cr3 = linux.monitor.registers["cr3"]
    found = [(c.pa, c.shape.name) for c in find_roots(image, registry.by_cli_name("x86_64"), top=3)]
    # first: a table whose one entry (511) is init_top_pgt's entry 511 (level3_kernel_pgt), arch/x86/kernel/
    # head_64.S's early_top_pgt, the root of the early boot, left in the kernel's .data; CR3 comes second
    assert found[:2] == [(0x2A1_4000, "4-level paging"), (cr3, "4-level paging")]
    assert image.mem.read(0x2A1_4000 + 511 * 8, 8) == image.mem.read(cr3 + 511 * 8, 8)


# ------------------------------------------------------------------------------- arm64
ARM64_TEXT = 0xFFFF_8000_0801_0000     # nokaslr: the image at KIMAGE_VADDR (0xffff800008000000), text 64 KiB on
LINEAR = 0xFFFF_0000_0000_0000         # PAGE_OFFSET for 48-bit VAs (Documentation/arm64/memory.rst)
ARM64_SAMPLE = [0xFFFF_8000_0800_0000,                               # VMALLOC_START's first page (not the image's)
                ARM64_TEXT, LINEAR, LINEAR + 0x123_4000,
                LINEAR + 0x1FFF_F000, LINEAR + 0x2000_0000,          # the linear map's last page, the one after
                0xFFFF_FC00_0000_0000,                               # vmemmap
                0xFFFF_8000_09AB_0000,                               # an ioremap (the GIC distributor)
                0, 0xFFFF_FFFF_0000, 0x1_0000_0000_0000, 0xFFFF_7FFF_0000_0000]


@pytest.fixture(scope="module")
def arm64(tmp_path_factory: pytest.TempPathFactory) -> Booted:
    qemu = require_qemu_aarch64_binary()
    kernel = require_linux_kernel(ARM64_PACKAGE, ARM64_URL)
    core = tmp_path_factory.mktemp("arm64") / "core.elf"
    return Booted(core, boot_and_dump_arm64(qemu, kernel, core, ARM64_SAMPLE, timeout=90))


def test_arm64_registers(arm64: Booted) -> None:
    assert "Kernel panic - not syncing: VFS: Unable to mount root fs" in arm64.monitor.serial
    regs = arm64.monitor.registers
    assert regs["sctlr_el1"] & 1                               # M: the MMU on
    tcr = regs["tcr_el1"]
    assert (tcr & 0x3F, (tcr >> 16) & 0x3F) == (16, 16)        # T0SZ, T1SZ: 48-bit VAs
    assert ((tcr >> 14) & 3, (tcr >> 30) & 3) == (0, 2)        # TG0, TG1: 4 KiB granules
    assert regs["ttbr1_el1"] & 1                               # CnP (the kernel's TTBR1: swapper_pg_dir)


def test_arm64_translate_agrees_with_gva2gpa(arm64: Booted, capsys: pytest.CaptureFixture[str]) -> None:
    out, err = _translate(capsys, str(arm64.core), "--arch", "aarch64", *_registers(arm64), "--access", "any",
                          *(f"{va:#x}" for va in arm64.vas))
    assert err == ""
    # the GIC distributor's ioremap: device memory, which gva2gpa translates and the walker does not
    fault = r"translation \((invalid|non-canonical)\) at level [0-3] stage 1 esr=0x9600000[4-7] " \
            r"far={va:#x} hpfar=0x0 el=0x1"
    assert _outside_memory(arm64, out, fault) == [(0xFFFF_8000_09AB_0000, 0x800_0000)]


def test_arm64_check_finds_only_mmio(arm64: Booted, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(arm64.core), "--arch", "aarch64", *_registers(arm64)]) == 0
    out = capsys.readouterr().out
    print(out)
    # arm64 maps its image with the segments' own permissions from the start (arch/arm64/mm/mmu.c
    # map_kernel): no W+X even before mark_rodata_ro(); the infos are the devices' ioremaps and PCI ECAM
    assert out.splitlines()[-1] == "check: 8 findings: 0 errors, 0 warnings, 8 infos"
    assert {line.split()[1] for line in out.splitlines()[:-1]} == {"mmio"}


def test_arm64_walk_ptdump(arm64: Booted, capsys: pytest.CaptureFixture[str]) -> None:
    lines = _ptdump(arm64, "aarch64", capsys)
    # TTBR0: reserved_pg_dir, empty; an empty top-level entry is Linux's P4D (pgd_none() is 0 with the P4D
    # folded, include/asm-generic/pgtable-nop4d.h, so mm/pagewalk.c reports the hole at depth 1)
    assert lines[:3] == ["---[ TTBR0_EL1 ]---", "0x0000000000000000-0x0001000000000000         256T P4D",
                         "---[ TTBR1_EL1 ]---"]
    # the image's text: read-only and executable from the start (contiguous 4 KiB pages, then 2 MiB blocks)
    assert "0xffff800008010000-0xffff800008200000        1984K PTE       ro x  SHD AF    CON     UXN    MEM/NORMAL" \
        in lines
    _device_runs(arm64, "aarch64", lines)


def test_arm64_find_roots_lists_ttbr1(arm64: Booted) -> None:
    ttbr1 = arm64.monitor.registers["ttbr1_el1"] & ~1
    found = find_roots(open_image(arm64.core), registry.by_cli_name("aarch64"),
                       {"tcr_el1": arm64.monitor.registers["tcr_el1"]})
    # 4th: tables of one entry (the early page tables Linux leaves behind) outrank swapper_pg_dir's four
    # (docs/dump-linux.md)
    assert [c.pa for c in found].index(ttbr1) == 3


# ------------------------------------------------------------------------------- fetching the kernel
def _deb(tmp_path: Path, package: str, files: dict[str, bytes]) -> Path:
    """A .deb of `package` holding `files` (paths under /), built with dpkg-deb -b."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb not found (Debian package dpkg)")
    tree = tmp_path / "tree"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(f"Package: {package}\nVersion: 1.0\nArchitecture: all\n"
                                             "Maintainer: test <test@example.org>\nDescription: test\n")
    for name, data in files.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(data)
    deb = tmp_path / "cache" / f"{package}_1.0_all.deb"
    deb.parent.mkdir(exist_ok=True)
    subprocess.run(["dpkg-deb", "-b", "-Zgzip", str(tree), str(deb)], check=True, capture_output=True)
    return deb


def test_fetch_extracts_a_cached_deb_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = "linux-image-9.9-test"
    deb = _deb(tmp_path, package, {"boot/vmlinuz-9.9-test": b"kernel", "boot/config-9.9-test": b"config"})
    monkeypatch.setattr(linux_module, "APT_ARCHIVES", tmp_path / "none")
    vmlinuz = linux_module.fetch_kernel(package, deb.parent)
    assert vmlinuz == deb.parent / "vmlinuz-9.9-test" and vmlinuz.read_bytes() == b"kernel"
    assert sorted(p.name for p in deb.parent.iterdir()) == [deb.name, vmlinuz.name]    # nothing else left
    deb.unlink()
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert linux_module.fetch_kernel(package, deb.parent) == vmlinuz                          # reused


def test_fetch_refuses_a_deb_without_the_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deb = _deb(tmp_path, "linux-image-9.9-test", {"boot/config-9.9-test": b"config"})
    monkeypatch.setattr(linux_module, "APT_ARCHIVES", tmp_path / "none")
    with pytest.raises(linux_module.KernelUnavailable, match=r"_1\.0_all\.deb has no /boot/vmlinuz-9\.9-test$"):
        linux_module.fetch_kernel("linux-image-9.9-test", deb.parent)


def test_fetch_without_apt_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(linux_module, "APT_ARCHIVES", tmp_path / "none")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("PAGETABLE_CACHE", str(tmp_path))
    message = f"{linux_module.KERNEL_PACKAGE} is not cached and apt-get is missing: it needs apt-get and dpkg-deb " \
              f"(Debian) with a reachable mirror, or {linux_module.KERNEL_PACKAGE}'s .deb put into {tmp_path}/linux " \
              "(`make kernel` fetches it)"
    with pytest.raises(linux_module.KernelUnavailable) as caught:
        linux_module.fetch_kernel()
    assert str(caught.value) == message
    monkeypatch.setattr(linux_module, "ARM64_URL", f"file://{tmp_path}/none/{linux_module.ARM64_PACKAGE}.deb")
    assert linux_module.main() == 1
    prefix = "the Linux kernel for tests/test_dump_linux.py is unavailable: "
    assert capsys.readouterr() == ("", f"{prefix}{message}\n{prefix}cannot download file://{tmp_path}/none/"
                                       f"{linux_module.ARM64_PACKAGE}.deb: <urlopen error [Errno 2] No such file or "
                                       f"directory: '{tmp_path}/none/{linux_module.ARM64_PACKAGE}.deb'>\n")


def test_fetch_downloads_from_a_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deb = _deb(tmp_path, "linux-image-9.9-test", {"boot/vmlinuz-9.9-test": b"kernel"})
    monkeypatch.setattr(linux_module, "APT_ARCHIVES", tmp_path / "none")
    cache = tmp_path / "elsewhere"
    vmlinuz = linux_module.fetch_kernel("linux-image-9.9-test", cache, url=f"file://{deb}")
    assert vmlinuz.read_bytes() == b"kernel" and sorted(p.name for p in cache.iterdir()) == [deb.name, vmlinuz.name]
