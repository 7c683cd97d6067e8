"""Run a bare-metal program in QEMU and read what it wrote to its serial port; build it with GNU binutils.

Architecture independent: an architecture's harness (:mod:`pagetable.vectors.riscv.qemu`,
:mod:`pagetable.vectors.x86_64.qemu`) supplies the assembly source, the binutils target prefix and flags,
the QEMU command line and the meaning of the output.  :func:`assemble` assembles and links a source (at
address 0, say) and returns the flat binary with its symbols; :func:`run_qemu` writes the run's files into
a fresh temporary directory, runs QEMU there with a timeout and returns the serial output.  Neither is
needed at import time, so importing the package needs neither QEMU nor binutils.

The stubs share their data with the harness as records of little-endian u64 fields (:class:`Record`):
the harness packs case records and the stub's state block, the stub sends back header and result records,
and the assembler learns every field's offset as ``--defsym PREFIX_FIELD=offset`` (:func:`defsyms`), so
each layout is declared once, in Python.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType

__all__ = [
    "Program",
    "QemuFailed",
    "QemuRun",
    "QemuUnavailable",
    "Record",
    "ToolchainFailed",
    "ToolchainUnavailable",
    "assemble",
    "defsyms",
    "find_qemu",
    "missing_tools",
    "package_text",
    "require_qemu",
    "round_up",
    "run_qemu",
    "tail",
]

TOOLS = ("as", "ld", "objcopy", "nm")
_TOOL_TIMEOUT = 60.0


class QemuUnavailable(RuntimeError):
    """The QEMU binary could not be found or run."""


class QemuFailed(RuntimeError):
    """QEMU exited badly, timed out, or its output was truncated or malformed."""


class ToolchainUnavailable(RuntimeError):
    """A GNU binutils program needed to build the stub could not be found or run."""


class ToolchainFailed(RuntimeError):
    """Binutils refused the stub's source, or produced something the harness cannot use."""


def find_qemu(binary: str) -> str | None:
    """Return the path of ``binary`` (a name looked up on PATH, or a path), or ``None``."""
    return shutil.which(binary)


def require_qemu(binary: str, package: str, qemu: str | None = None) -> str:
    """The path of ``qemu`` (a name or path; default ``binary``), or :class:`QemuUnavailable` naming the
    Debian ``package`` that has it."""
    exe = find_qemu(binary if qemu is None else qemu)
    if exe is None:
        where = "on PATH" if qemu is None else "or not executable"
        raise QemuUnavailable(f"{qemu or binary} not found {where} (Debian package {package})")
    return exe


def tail(text: bytes, limit: int = 2000) -> str:
    """The last ``limit`` bytes of a program's output, decoded for an error message."""
    return text[-limit:].decode("utf-8", "replace").strip()


def round_up(value: int, granule: int) -> int:
    """``value`` rounded up to a multiple of ``granule``."""
    return -(-value // granule) * granule


# ---------------------------------------------------------------------------
# Records shared with a stub
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """A record of little-endian u64 fields, in order; the assembler knows field ``F`` as ``{prefix}_F``
    (its byte offset) and the record's size as ``{prefix}_SIZE``."""

    prefix: str
    fields: tuple[str, ...]

    @property
    def size(self) -> int:
        return 8 * len(self.fields)

    def offsets(self) -> dict[str, int]:
        """``{prefix}_{field}`` -> byte offset, and ``{prefix}_SIZE``."""
        out = {f"{self.prefix}_{name}": 8 * i for i, name in enumerate(self.fields)}
        out[f"{self.prefix}_SIZE"] = self.size
        return out

    def offset(self, name: str) -> int:
        """The byte offset of field ``name``."""
        return 8 * self.fields.index(name)

    def pack(self, values: Mapping[str, int]) -> bytes:
        """The record with these field values (every field named once, each a u64)."""
        if set(values) != set(self.fields):
            raise ValueError(f"{self.prefix} record: fields {sorted(set(values) ^ set(self.fields))} missing or "
                             "unknown")
        return struct.pack(f"<{len(self.fields)}Q", *(values[name] for name in self.fields))

    def unpack(self, raw: bytes, offset: int = 0) -> dict[str, int]:
        """The field values of the record at ``offset`` in ``raw``."""
        return dict(zip(self.fields, struct.unpack_from(f"<{len(self.fields)}Q", raw, offset), strict=True))


def defsyms(*records: Record, **numbers: int) -> dict[str, int]:
    """The ``--defsym`` values of ``records``' offsets and sizes, with ``numbers`` (names must not clash)."""
    out: dict[str, int] = {}
    for record in records:
        out.update(record.offsets())
    clash = set(out) & set(numbers)
    if clash:
        raise ValueError(f"symbols defined twice: {sorted(clash)}")
    return {**out, **numbers}


def package_text(module: str, name: str) -> str:
    """The text of the file ``name`` beside the module ``module`` (a stub's source, read from the package)."""
    return resources.files(module.rpartition(".")[0]).joinpath(name).read_text(encoding="utf-8")


# ---------------------------------------------------------------------------
# Building the stub
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Program:
    """An assembled program: its bytes and every symbol ``nm`` lists, by name (addresses as linked)."""

    code: bytes
    symbols: Mapping[str, int]


def missing_tools(prefix: str) -> list[str]:
    """The binutils programs (``{prefix}as``, ``ld``, ``objcopy``, ``nm``) not found on PATH."""
    return [prefix + tool for tool in TOOLS if shutil.which(prefix + tool) is None]


def _run(argv: Sequence[str], cwd: str, timeout: float, unavailable: type[RuntimeError],
         failed: type[RuntimeError], name: str, hint: str = "", ok_status: int = 0,
         explain: Callable[[int], str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run `argv` in `cwd`: `unavailable` when it cannot be started, `failed` when it times out or exits
    with a status other than `ok_status` (with the tail of what it wrote, and `explain(status)`)."""
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, cwd=cwd,
                              check=False)
    except FileNotFoundError as exc:
        raise unavailable(f"cannot run {argv[0]}: {exc}{hint}") from exc
    except subprocess.TimeoutExpired as exc:
        raise failed(f"{name} timed out after {timeout} s; stderr: {tail(exc.stderr or b'')!r}") from exc
    if proc.returncode != ok_status:
        why = f" ({explain(proc.returncode)})" if explain is not None else ""
        raise failed(f"{name} exited with status {proc.returncode}{why}; output: "
                     f"{tail(proc.stderr + proc.stdout)!r}")
    return proc


def _run_tool(argv: Sequence[str], package: str, cwd: str) -> bytes:
    return _run(argv, cwd, _TOOL_TIMEOUT, ToolchainUnavailable, ToolchainFailed, " ".join(argv),
                f" (Debian package {package})").stdout


def _parse_nm(listing: bytes) -> dict[str, int]:
    symbols: dict[str, int] = {}
    for line in listing.decode("ascii", "replace").splitlines():
        fields = line.split()
        if len(fields) == 3:
            symbols[fields[2]] = int(fields[0], 16)
    return symbols


def assemble(source: str, name: str, *, prefix: str, package: str, as_flags: Sequence[str] = (),
             ld_flags: Sequence[str] = (), defsyms: Mapping[str, int] | None = None, address: int = 0) -> Program:
    """Assemble ``source`` (the text of the file ``name``) with ``{prefix}as``, link it at ``address`` with
    ``{prefix}ld -Ttext=address`` and return its ``.text`` as a flat binary (``objcopy -O binary``), with
    the symbols ``nm`` lists.

    ``defsyms`` become ``--defsym NAME=VALUE`` (negative values allowed).  Raises
    :class:`ToolchainUnavailable`, naming the Debian ``package``, when a program is missing, and
    :class:`ToolchainFailed` when one fails.
    """
    missing = missing_tools(prefix)
    if missing:
        raise ToolchainUnavailable(f"{', '.join(missing)} not found on PATH: install the Debian/Ubuntu package "
                                   f"{package} (sudo apt-get install {package})")
    defs = [arg for key, value in (defsyms or {}).items() for arg in ("--defsym", f"{key}={value:#x}")]
    with tempfile.TemporaryDirectory(prefix="pagetable-as-") as workdir:
        with open(os.path.join(workdir, name), "w", encoding="utf-8") as src:
            src.write(source)

        def run(tool: str, *args: str) -> bytes:
            return _run_tool([prefix + tool, *args], package, workdir)

        run("as", *as_flags, *defs, "-o", "program.o", name)
        run("ld", f"-Ttext={address:#x}", *ld_flags, "-o", "program.elf", "program.o")
        run("objcopy", "-O", "binary", "-j", ".text", "program.elf", "program.bin")
        symbols = _parse_nm(run("nm", "program.elf"))
        with open(os.path.join(workdir, "program.bin"), "rb") as binary:
            code = binary.read()
    return Program(code, MappingProxyType(symbols))


# ---------------------------------------------------------------------------
# Running QEMU
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class QemuRun:
    """What a QEMU run left: the bytes its serial port wrote to the file, and its stderr."""

    serial: bytes
    stderr: bytes


def run_qemu(command: Callable[[str], list[str]], files: Mapping[str, bytes], serial: str, *,
             timeout: float, ok_status: int = 0, explain: Callable[[int], str] | None = None) -> QemuRun:
    """Write ``files`` (name -> bytes) into a fresh temporary directory, run ``command(directory)`` there
    with ``timeout`` seconds and return the contents of the file ``serial`` the guest's serial port was
    connected to (empty if QEMU never created it).

    Raises :class:`QemuUnavailable` when the program cannot be run and :class:`QemuFailed` when it times
    out or exits with a status other than ``ok_status`` (a guest that ends through a device such as x86's
    isa-debug-exit cannot exit with 0); ``explain(status)`` adds what a bad status means to the message.
    """
    with tempfile.TemporaryDirectory(prefix="pagetable-qemu-") as workdir:
        for name, data in files.items():
            with open(os.path.join(workdir, name), "wb") as f:
                f.write(data)
        proc = _run(command(workdir), workdir, timeout, QemuUnavailable, QemuFailed, "QEMU", ok_status=ok_status,
                    explain=explain)
        try:
            with open(os.path.join(workdir, serial), "rb") as f:
                output = f.read()
        except FileNotFoundError:
            output = b""
    return QemuRun(output, proc.stderr)
