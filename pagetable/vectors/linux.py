"""A real Linux kernel's page tables: Debian's x86-64 cloud kernel, booted in QEMU until it panics, dumped.

:func:`fetch_kernel` finds or fetches the kernel: the Debian package (``KERNEL_PACKAGE``) is taken from a
cache directory, from apt's own cache (/var/cache/apt/archives) or with ``apt-get download`` into the cache
(never installed), and its ``/boot/vmlinuz-*`` extracted there with ``dpkg-deb -x``; later runs reuse it.
``python -m pagetable.vectors.linux`` does the same (the Makefile's ``kernel`` target).

:func:`boot_and_dump` boots it with ``-kernel`` and neither initrd nor root device, on ``-M pc -smp 2``
under TCG: the kernel sets up its page tables, fails to mount a root file system and panics with paging on
(``panic=0``: it then spins forever, Linux's init/do_mounts.c ``mount_block_root`` -> ``panic("VFS: Unable
to mount root fs ...")``). The serial console is watched for "Kernel panic"; then, over QMP, the VM is
stopped, the human monitor asked ``info registers``, ``info mem``, ``info tlb`` and ``gva2gpa VA`` (QEMU 7.2
target/i386/monitor.c and monitor/misc.c, on the monitor's current CPU, CPU 0) for CPU 0's RIP and RSP and
the caller's VAs, and all
guest RAM written as an ELF core by ``dump-guest-memory`` (:mod:`pagetable.vectors.qmp`).

The panic comes from ``kernel_init_freeable`` -> ``prepare_namespace``, before ``kernel_init`` calls
``mark_readonly`` (init/main.c): the kernel image is still mapped writable and executable, as it is during
all of boot, and CONFIG_DEBUG_WX has not run yet.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from .qemu import QemuFailed, tail
from .qmp import Qmp, run_qmp

__all__ = ["KERNEL_PACKAGE", "KernelUnavailable", "Monitor", "boot_and_dump", "cache_dir", "fetch_kernel",
           "monitor_registers"]

KERNEL_PACKAGE: Final = "linux-image-6.1.0-53-cloud-amd64"
"""Debian bookworm's x86-64 cloud kernel (Linux 6.1.187): small, with everything a bare ``-M pc`` needs
built in."""

APT_ARCHIVES: Final = Path("/var/cache/apt/archives")
COMMAND_LINE: Final = "console=ttyS0 panic=0 nokaslr"
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


def fetch_kernel(package: str = KERNEL_PACKAGE, cache: Path | None = None) -> Path:
    """The path of ``package``'s vmlinuz in ``cache`` (default :func:`cache_dir`), extracted there from the
    package's .deb — the one in ``cache``, else apt's, else one ``apt-get download`` fetches into ``cache``.
    :class:`KernelUnavailable` says what to install when none of that works."""
    cache = cache_dir() if cache is None else cache
    version = package.removeprefix("linux-image-")
    vmlinuz = cache / f"vmlinuz-{version}"
    if vmlinuz.is_file():
        return vmlinuz
    cache.mkdir(parents=True, exist_ok=True)
    debs = sorted(cache.glob(f"{package}_*.deb")) or sorted(APT_ARCHIVES.glob(f"{package}_*.deb"))
    hint = f"it needs apt-get and dpkg-deb (Debian) with a reachable mirror, or {package}'s .deb put into {cache} " \
           "(`make kernel` fetches it)"
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
    """What QEMU's human monitor said about the stopped guest, before the dump: ``info registers`` (CPU 0)
    and its RIP and RSP, ``info mem`` and ``info tlb`` as lists of lines, ``gva2gpa`` per VA (RIP, RSP and
    the caller's; the PA, or None for QEMU's "Unmapped"), and the serial console's text up to then."""

    registers: str
    rip: int
    rsp: int
    info_mem: list[str]
    info_tlb: list[str]
    gva2gpa: dict[int, int | None]
    serial: str


def monitor_registers(info_registers: str) -> dict[str, int]:
    """CR0, CR3, CR4 and EFER from ``info registers`` (x86_cpu_dump_state, QEMU 7.2 target/i386/cpu-dump.c)
    as ``--reg`` names: cr0, cr3, cr4, efer."""
    return {name.lower(): _register(info_registers, name) for name in ("CR0", "CR3", "CR4", "EFER")}


def _register(info_registers: str, name: str) -> int:
    found = re.search(rf"\b{name}=([0-9a-f]+)", info_registers)
    if found is None:
        raise QemuFailed(f"info registers lacks {name}: {info_registers[:300]!r}")
    return int(found.group(1), 16)


def _gva2gpa(answer: str) -> int | None:
    """hmp_gva2gpa's answer: "gpa: %#" PRIx64 (0 prints as "0") or "Unmapped" (QEMU 7.2 monitor/misc.c)."""
    text = answer.strip()
    if text == "Unmapped":
        return None
    found = re.fullmatch(r"gpa: (0|0x[0-9a-f]+)", text)
    if found is None:
        raise QemuFailed(f"unexpected gva2gpa answer {answer!r}")
    return int(found.group(1), 0)


def boot_and_dump(qemu: str, kernel: Path, core: Path, vas: Sequence[int], *, timeout: float = 60.0) -> Monitor:
    """Boot ``kernel`` in ``qemu`` (qemu-system-x86_64) until it panics, stop it, ask the monitor (with
    ``gva2gpa`` for each of ``vas``) and dump its RAM to ``core`` (module docstring), all within ``timeout``
    seconds; :class:`~pagetable.vectors.qemu.QemuFailed` if it never panics by then."""
    target = core.resolve()
    answers: list[Monitor] = []

    def command(workdir: str) -> list[str]:
        return [qemu, "-M", "pc", "-accel", "tcg", "-m", "512M", "-smp", "2", "-nodefaults", "-display", "none",
                "-serial", f"file:{workdir}/{_SERIAL}", "-kernel", str(kernel.resolve()), "-append", COMMAND_LINE,
                "-no-reboot"]

    def session(qmp: Qmp, workdir: str) -> None:
        serial = Path(workdir) / _SERIAL

        def panicked() -> bool:
            return serial.is_file() and _PANIC in serial.read_bytes()

        qmp.poll(panicked, "the kernel to panic (\"Kernel panic\" on its serial console)")
        time.sleep(0.5)        # the panic message's end, and the other CPU stopped by smp_send_stop()
        qmp.execute("stop")
        registers = qmp.hmp("info registers")
        rip, rsp = _register(registers, "RIP"), _register(registers, "RSP")
        answers.append(Monitor(registers, rip, rsp, qmp.hmp("info mem").splitlines(), qmp.hmp("info tlb").splitlines(),
                               {va: _gva2gpa(qmp.hmp(f"gva2gpa {va:#x}")) for va in (rip, rsp, *vas)},
                               serial.read_text(errors="replace")))
        qmp.execute("dump-guest-memory", {"paging": False, "protocol": f"file:{target}", "format": "elf"})

    run_qmp(command, {}, session, timeout=timeout)
    return answers[0]


def main() -> int:
    """``python -m pagetable.vectors.linux``: fetch the kernel into the cache; print its path, or why not."""
    try:
        print(fetch_kernel())
    except KernelUnavailable as exc:
        print(f"the Linux kernel for tests/test_dump_linux.py is unavailable: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
