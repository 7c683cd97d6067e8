"""A real kernel: Debian's Linux 6.1 cloud kernel booted in QEMU (TCG) until it panics for want of a root file
system, stopped and dumped (pagetable.vectors.linux.boot_and_dump, once for the module); the dump commands
on its ELF core against what QEMU's monitor said about the same stopped CPU 0: the registers (CR0, CR3,
CR4, EFER of `info registers`), `gva2gpa` for a sample of VAs, `info mem` and `info tlb` line for line;
and `check` and `find-roots` on a healthy kernel's tables. docs/dump-linux.md says what they found."""

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
from pagetable.vectors.linux import Monitor, boot_and_dump, monitor_registers

from .conftest import require_linux_kernel, require_qemu_x86_binary

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
        """The VAs asked of gva2gpa: CPU 0's RIP and RSP, then SAMPLE."""
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
    regs = monitor_registers(linux.monitor.registers)
    assert regs["efer"] == 0xD01                           # SCE | LME | LMA | NXE: what translate assumes
    assert regs["cr0"] & 0x8001_0001 == 0x8001_0001        # PG, WP, PE
    assert regs["cr4"] & 0x20 and not regs["cr4"] & 0x1000  # PAE, not LA57: 4-level paging
    assert regs["cr3"] == 0x2A1_0000                       # init_top_pgt


def test_translate_cpu_and_registers_agree_with_gva2gpa(linux: Booted, capsys: pytest.CaptureFixture[str]) -> None:
    vas = [f"{va:#x}" for va in linux.vas]
    out, err = _translate(capsys, str(linux.core), "--arch", "x86_64", "--cpu", "0", "--access", "any", *vas)
    assert err == "pagetable: note: assumed efer=0xd01 (SCE, LME, LMA, NXE: the core records no EFER; give " \
                  "--reg efer=... if NXE was clear)\n"
    regs = [a for name, value in monitor_registers(linux.monitor.registers).items()
            for a in ("--reg", f"{name}={value:#x}")]
    assert _translate(capsys, str(linux.core), "--arch", "x86_64", *regs, "--access", "any", *vas) \
        == (out, "")                                       # the monitor's registers: the same answers
    lines = out.splitlines()
    assert len(lines) == len(vas)
    image = open_image(linux.core)
    outside = []
    for va, line in zip(linux.vas, lines, strict=True):
        pa = linux.monitor.gva2gpa[va]
        if pa is None:
            assert re.fullmatch(rf"{va:#018x} -> page-fault \(invalid\) at level [1-4] stage 1 error_code=0x0 "
                                rf"cr2={va:#x}|{va:#018x} -> general-protection \(non-canonical\) .*", line), line
        elif " -> no-memory (pa-outside-memory) " in line:
            # gva2gpa does not check that the PA is RAM (docs/dump-qemu-formats.md): device memory
            assert not image.mem.contains(pa)
            outside.append((va, pa))
        else:
            assert line.startswith(f"{va:#018x} -> {pa:#x}  S:"), line
    assert outside == [(0xFFFF_FFFF_FF5F_C000, 0xFEC0_0000)]          # the IO-APIC's fixmap page
    print(out)


def test_info_mem_and_info_tlb_agree_with_the_monitor(linux: Booted) -> None:
    target = open_target([str(linux.core)], registry.by_cli_name("x86_64"), monitor_registers(linux.monitor.registers))
    assert list(info_mem_lines(target.walker)) == linux.monitor.info_mem
    assert list(info_tlb_lines(target.walker)) == linux.monitor.info_tlb
    # about 110 and 4640 lines, a few more or less from run to run (what the boot had allocated by then)
    assert linux.monitor.info_mem[0] == "ffff888000000000-ffff888000098000 0000000000098000 -rw"
    assert len(linux.monitor.info_mem) > 100 and len(linux.monitor.info_tlb) > 4000


def test_check_finds_boot_time_wx_and_mmio(linux: Booted, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(linux.core), "--arch", "x86_64", "--cpu", "0"]) == 0           # no error
    out = capsys.readouterr().out
    print(out)
    assert out.splitlines()[-1] == "check: 6 findings: 0 errors, 3 warnings, 3 infos"
    findings = check(open_target([str(linux.core)], registry.by_cli_name("x86_64"),
                                 monitor_registers(linux.monitor.registers)))
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


def test_find_roots_ranks_cr3_behind_early_top_pgt(linux: Booted) -> None:
    image = open_image(linux.core)
    cr3 = monitor_registers(linux.monitor.registers)["cr3"]
    found = [(c.pa, c.shape.name) for c in find_roots(image, registry.by_cli_name("x86_64"), top=3)]
    # first: a table whose one entry (511) is init_top_pgt's entry 511 (level3_kernel_pgt), arch/x86/kernel/
    # head_64.S's early_top_pgt, the root of the early boot, left in the kernel's .data; CR3 comes second
    assert found[:2] == [(0x2A1_4000, "4-level paging"), (cr3, "4-level paging")]
    assert image.mem.read(0x2A1_4000 + 511 * 8, 8) == image.mem.read(cr3 + 511 * 8, 8)


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
    assert linux_module.main() == 1
    assert capsys.readouterr() == ("", f"the Linux kernel for tests/test_dump_linux.py is unavailable: {message}\n")
