"""A real Linux kernel's page tables: Debian's x86-64 and arm64 cloud kernels, booted in QEMU until they
panic, dumped.

:func:`fetch_kernel` finds or fetches the kernel: the Debian package (``KERNEL_PACKAGE``) is taken from a
cache directory, from apt's own cache (/var/cache/apt/archives) or with ``apt-get download`` into the cache
(never installed), and its ``/boot/vmlinuz-*`` extracted there with ``dpkg-deb -x``; later runs reuse it.
The arm64 package (``ARM64_PACKAGE``) is downloaded from ``ARM64_URL`` instead: apt knows another
architecture's packages only after ``dpkg --add-architecture``. ``python -m pagetable.vectors.linux``
fetches both (the Makefile's ``kernel`` target).

:func:`boot_and_dump` boots it with ``-kernel`` and neither initrd nor root device, on ``-M pc -smp 2``
under TCG: the kernel sets up its page tables, fails to mount a root file system and panics with paging on
(``panic=0``: it then spins forever, Linux's init/do_mounts.c ``mount_block_root`` -> ``panic("VFS: Unable
to mount root fs ...")``). The serial console is watched for "Kernel panic"; then, over QMP, the VM is
stopped, the human monitor asked ``info registers``, ``info mem``, ``info tlb`` and ``gva2gpa VA`` (QEMU 7.2
target/i386/monitor.c and monitor/misc.c, on the monitor's current CPU, CPU 0) for CPU 0's RIP and RSP and
the caller's VAs, and all guest RAM written as an ELF core by ``dump-guest-memory``
(:mod:`pagetable.vectors.qmp`).

The panic comes from ``kernel_init_freeable`` -> ``prepare_namespace``, before ``kernel_init`` calls
``mark_readonly`` (init/main.c): on x86 the kernel image is still mapped writable and executable, as it is
during all of boot, and CONFIG_DEBUG_WX has not run yet (arm64 maps it with its segments' permissions from
the start).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from .gdbstub import GdbStub
from .qemu import QemuFailed, tail
from .qmp import Qmp, run_qmp

__all__ = ["ARM64_PACKAGE", "ARM64_SYSTEM_REGISTERS", "ARM64_URL", "KERNEL_PACKAGE", "KernelUnavailable", "Monitor",
           "boot_and_dump", "boot_and_dump_arm64", "cache_dir", "fetch_kernel", "monitor_registers"]

KERNEL_PACKAGE: Final = "linux-image-6.1.0-53-cloud-amd64"
"""Debian bookworm's x86-64 cloud kernel (Linux 6.1.187): small, with everything a bare ``-M pc`` needs
built in."""

ARM64_PACKAGE: Final = "linux-image-6.1.0-53-cloud-arm64"
"""Its arm64 twin (4 KiB pages, 48-bit VAs), fetched from ``ARM64_URL``."""
ARM64_URL: Final = ("http://deb.debian.org/debian-security/pool/updates/main/l/linux-signed-arm64/"
                    f"{ARM64_PACKAGE}_6.1.187-1_arm64.deb")

APT_ARCHIVES: Final = Path("/var/cache/apt/archives")
COMMAND_LINE: Final = "panic=0 nokaslr"
"""``nokaslr``: the kernel at its link address (text at 0xffffffff81000000, the direct map at
0xffff888000000000), so a run's addresses are the same every time."""

_PANIC: Final = b"Kernel panic"
_SERIAL: Final = "serial.log"
_APT_TIMEOUT: Final = 600.0


class KernelUnavailable(RuntimeError):
    """The kernel package is neither cached nor obtainable here (no apt-get or dpkg-deb, no network)."""


def cache_dir() -> Path:
    """Where the kernel is kept: ``$PAGETABLE_CACHE/linux``, else ``build/linux`` (relative to the current
    directory, the repository's root for the Makefile and the tests)."""
    return Path(os.environ.get("PAGETABLE_CACHE", "build")) / "linux"


def _run(argv: Sequence[str], cwd: Path) -> None:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, timeout=_APT_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KernelUnavailable(f"{argv[0]} failed: {exc}") from None
    if done.returncode != 0:
        why = "; ".join(tail(done.stderr, 500).splitlines())
        raise KernelUnavailable(f"{' '.join(argv)} exited with status {done.returncode}: {why}")


def _download(url: str, cache: Path) -> None:
    """``url`` into ``cache`` under its own name (via a temporary file: never a partial .deb)."""
    name = cache / url.rsplit("/", 1)[-1]
    partial = name.with_suffix(".part")
    try:
        with urllib.request.urlopen(url, timeout=_APT_TIMEOUT) as answer, open(partial, "wb") as out:
            shutil.copyfileobj(answer, out)
    except (OSError, ValueError) as exc:
        partial.unlink(missing_ok=True)
        raise KernelUnavailable(f"cannot download {url}: {exc}") from None
    partial.replace(name)


def fetch_kernel(package: str = KERNEL_PACKAGE, cache: Path | None = None, url: str | None = None) -> Path:
    """The path of ``package``'s vmlinuz in ``cache`` (default :func:`cache_dir`), extracted there from the
    package's .deb — the one in ``cache``, else apt's, else one ``apt-get download`` fetches into ``cache``
    (or, given ``url``, the .deb downloaded from there: a package of another architecture, which apt knows
    only after ``dpkg --add-architecture``). :class:`KernelUnavailable` says what to install when none of
    that works."""
    cache = cache_dir() if cache is None else cache
    version = package.removeprefix("linux-image-")
    vmlinuz = cache / f"vmlinuz-{version}"
    if vmlinuz.is_file():
        return vmlinuz
    cache.mkdir(parents=True, exist_ok=True)
    debs = sorted(cache.glob(f"{package}_*.deb")) or sorted(APT_ARCHIVES.glob(f"{package}_*.deb"))
    hint = f"it needs apt-get and dpkg-deb (Debian) with a reachable mirror, or {package}'s .deb put into {cache} " \
           "(`make kernel` fetches it)"
    if not debs and url is not None:
        _download(url, cache)
        debs = sorted(cache.glob(f"{package}_*.deb"))
    if not debs:
        if shutil.which("apt-get") is None:
            raise KernelUnavailable(f"{package} is not cached and apt-get is missing: {hint}")
        try:
            _run(["apt-get", "download", "-q", package], cache)
        except KernelUnavailable as exc:
            raise KernelUnavailable(f"{exc}; {hint}") from None
        debs = sorted(cache.glob(f"{package}_*.deb"))
        if not debs:
            raise KernelUnavailable(f"apt-get download {package} left no .deb in {cache}; {hint}")
    if shutil.which("dpkg-deb") is None:
        raise KernelUnavailable(f"dpkg-deb is missing (Debian package dpkg): {hint}")
    with tempfile.TemporaryDirectory(dir=cache) as tree:
        _run(["dpkg-deb", "-x", str(debs[-1].resolve()), str(Path(tree).resolve())], cache)
        extracted = Path(tree) / "boot" / vmlinuz.name
        if not extracted.is_file():
            raise KernelUnavailable(f"{debs[-1]} has no /boot/{vmlinuz.name}")
        extracted.replace(vmlinuz)
    return vmlinuz


@dataclass(frozen=True)
class Monitor:
    """What QEMU said about the stopped guest's CPU 0 before the dump: its translation registers (as
    ``--reg`` names), PC (RIP) and SP (RSP), the monitor's ``info mem`` and ``info tlb`` as lists of lines
    (x86; None on AArch64, where QEMU 7.2 has neither), ``gva2gpa`` per VA (PC, SP and the caller's; the PA,
    or None for QEMU's "Unmapped"), and the serial console's text up to then."""

    registers: dict[str, int]
    pc: int
    sp: int
    info_mem: list[str] | None
    info_tlb: list[str] | None
    gva2gpa: dict[int, int | None]
    serial: str


def _register(info_registers: str, name: str) -> int:
    found = re.search(rf"\b{name}=([0-9a-f]+)", info_registers)
    if found is None:
        raise QemuFailed(f"info registers lacks {name}: {info_registers[:300]!r}")
    return int(found.group(1), 16)


def monitor_registers(info_registers: str) -> dict[str, int]:
    """CR0, CR3, CR4 and EFER from ``info registers`` (x86_cpu_dump_state, QEMU 7.2 target/i386/cpu-dump.c)
    as ``--reg`` names: cr0, cr3, cr4, efer."""
    return {name.lower(): _register(info_registers, name) for name in ("CR0", "CR3", "CR4", "EFER")}


def _gva2gpa(answer: str) -> int | None:
    """hmp_gva2gpa's answer: "gpa: %#" PRIx64 (0 prints as "0") or "Unmapped" (QEMU 7.2 monitor/misc.c)."""
    text = answer.strip()
    if text == "Unmapped":
        return None
    found = re.fullmatch(r"gpa: (0|0x[0-9a-f]+)", text)
    if found is None:
        raise QemuFailed(f"unexpected gva2gpa answer {answer!r}")
    return int(found.group(1), 0)


_Ask = Callable[[Qmp, str], tuple[dict[str, int], int, int, list[str] | None, list[str] | None]]


def _boot_and_dump(argv: list[str], core: Path, vas: Sequence[int], ask: _Ask, timeout: float) -> Monitor:
    """Run QEMU on ``argv`` with the serial console to a file, wait for the panic, ``stop``, ``ask(qmp,
    workdir)`` for the registers, PC, SP, ``info mem`` and ``info tlb``, ask ``gva2gpa`` for PC, SP and
    ``vas``, then dump to ``core`` (module docstring)."""
    target = core.resolve()
    answers: list[Monitor] = []

    def session(qmp: Qmp, workdir: str) -> None:
        serial = Path(workdir) / _SERIAL

        def panicked() -> bool:
            return serial.is_file() and _PANIC in serial.read_bytes()

        qmp.poll(panicked, "the kernel to panic (\"Kernel panic\" on its serial console)")
        time.sleep(0.5)        # the panic message's end, and the other CPU stopped by smp_send_stop()
        qmp.execute("stop")
        registers, pc, sp, info_mem, info_tlb = ask(qmp, workdir)
        answers.append(Monitor(registers, pc, sp, info_mem, info_tlb,
                               {va: _gva2gpa(qmp.hmp(f"gva2gpa {va:#x}")) for va in (pc, sp, *vas)},
                               serial.read_text(errors="replace")))
        qmp.execute("dump-guest-memory", {"paging": False, "protocol": f"file:{target}", "format": "elf"})

    run_qmp(lambda workdir: [*argv, "-serial", f"file:{workdir}/{_SERIAL}", "-no-reboot"], {}, session,
            timeout=timeout)
    return answers[0]


_MACHINE: Final = ["-accel", "tcg", "-m", "512M", "-smp", "2", "-nodefaults", "-display", "none"]


def boot_and_dump(qemu: str, kernel: Path, core: Path, vas: Sequence[int], *, timeout: float = 180.0) -> Monitor:
    """Boot the x86-64 ``kernel`` in ``qemu`` (qemu-system-x86_64 -M pc) until it panics, stop it, ask the
    monitor (``info registers``: CR0, CR3, CR4, EFER, RIP, RSP; ``info mem``, ``info tlb``; ``gva2gpa``
    for RIP, RSP and ``vas``) and dump its RAM to ``core`` (module docstring), all within ``timeout``
    seconds; :class:`~pagetable.vectors.qemu.QemuFailed` if it never panics by then."""

    def ask(qmp: Qmp, _workdir: str) -> tuple[dict[str, int], int, int, list[str], list[str]]:
        text = qmp.hmp("info registers")
        return (monitor_registers(text), _register(text, "RIP"), _register(text, "RSP"),
                qmp.hmp("info mem").splitlines(), qmp.hmp("info tlb").splitlines())

    argv = [qemu, "-M", "pc", *_MACHINE, "-kernel", str(kernel.resolve()), "-append", f"console=ttyS0 {COMMAND_LINE}"]
    return _boot_and_dump(argv, core, vas, ask, timeout)


ARM64_SYSTEM_REGISTERS: Final = {"ttbr0_el1": "TTBR0_EL1", "ttbr1_el1": "TTBR1_EL1", "tcr_el1": "TCR_EL1",
                                  "mair_el1": "MAIR_EL1", "sctlr_el1": "SCTLR"}
"""``--reg`` names -> QEMU 7.2's gdbstub names (its system-registers.xml names each register as its
ARMCPRegInfo does: SCTLR_EL1 is "SCTLR")."""
_GDB_SOCKET: Final = "gdb.sock"


def boot_and_dump_arm64(qemu: str, kernel: Path, core: Path, vas: Sequence[int], *,
                        timeout: float = 180.0) -> Monitor:
    """As :func:`boot_and_dump` for the arm64 ``kernel`` in ``qemu`` (qemu-system-aarch64 -M virt -cpu
    max,pauth-impdef=on: QEMU's own pointer-authentication hash, far faster under TCG than the
    architected QARMA): CPU 0's ``ARM64_SYSTEM_REGISTERS``, PC and SP come from the gdbstub
    (:class:`~pagetable.vectors.gdbstub.GdbStub`), which QEMU 7.2's ``info registers`` lacks, and there
    is no ``info mem`` or ``info tlb``."""

    def ask(_qmp: Qmp, workdir: str) -> tuple[dict[str, int], int, int, None, None]:
        gdb = GdbStub(os.path.join(workdir, _GDB_SOCKET), time.monotonic() + timeout)
        try:
            registers = {name: gdb.read_register(gdb_name) for name, gdb_name in ARM64_SYSTEM_REGISTERS.items()}
            return registers, gdb.read_register("pc"), gdb.read_register("sp"), None, None
        finally:
            gdb.close()

    argv = [qemu, "-M", "virt", "-cpu", "max,pauth-impdef=on", *_MACHINE, "-kernel", str(kernel.resolve()),
            "-append", f"console=ttyAMA0 {COMMAND_LINE}",
            "-chardev", f"socket,path={_GDB_SOCKET},server=on,wait=off,id=gdb", "-gdb", "chardev:gdb"]
    return _boot_and_dump(argv, core, vas, ask, timeout)


def main() -> int:
    """``python -m pagetable.vectors.linux``: fetch both kernels into the cache; print their paths, or why
    not (exit status 1)."""
    status = 0
    for package, url in ((KERNEL_PACKAGE, None), (ARM64_PACKAGE, ARM64_URL)):
        try:
            print(fetch_kernel(package, url=url))
        except KernelUnavailable as exc:
            print(f"the Linux kernel for tests/test_dump_linux.py is unavailable: {exc}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
