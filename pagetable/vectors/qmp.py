"""Drive QEMU through QMP (the QEMU Machine Protocol, docs/interop/qmp-spec.rst): start it with a QMP socket,
run commands, quit — standard library only (socket, json).

:func:`dump_guest_memory` is what the image tests need: QEMU started on a caller's command line (usually with
``-S``, so the CPUs never run, and ``-device loader`` files already in RAM), then ``qmp_capabilities`` and
``dump-guest-memory`` with ``paging: false``, ``protocol: "file:PATH"`` and ``format: "elf"`` (synchronous
without ``detach``: the reply comes when the core is written), then ``quit``.

Errors: QEMU missing or not startable -> :class:`~pagetable.vectors.qemu.QemuUnavailable`; QEMU exiting
early, a QMP error reply (its ``desc``), a malformed reply or the deadline passing ->
:class:`~pagetable.vectors.qemu.QemuFailed` with QEMU's stderr.  Every wait is bounded by one deadline, and
the process is killed if it is still alive when the helper returns.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from .qemu import QemuFailed, QemuUnavailable, tail

__all__ = ["Qmp", "dump_guest_memory", "run_qmp"]

_SOCKET: Final = "qmp.sock"
_STDERR: Final = "qemu.stderr"
_POLL: Final = 0.02
_SUN_PATH: Final = 108           # sizeof(sockaddr_un.sun_path) on Linux


class Qmp:
    """A QMP connection to a running QEMU ``proc`` over the Unix socket ``path``, every wait ending at
    ``deadline`` (time.monotonic())."""

    def __init__(self, proc: subprocess.Popen[bytes], path: str, deadline: float, stderr: Callable[[], str]):
        self.proc, self.deadline, self._stderr = proc, deadline, stderr
        self._buffer = b""
        self.sock = self._connect(path)
        greeting = self._receive()
        if "QMP" not in greeting:
            raise self._failed(f"no QMP greeting (got {greeting!r})")

    def _failed(self, why: str) -> QemuFailed:
        return QemuFailed(f"QMP: {why}; QEMU stderr: {self._stderr()!r}")

    def _remaining(self, what: str) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self._failed(f"timed out {what}")
        return left

    def _connect(self, path: str) -> socket.socket:
        """Connect once QEMU has made the socket (it does so before the machine starts)."""
        while True:
            status = self.proc.poll()
            if status is not None:
                raise self._failed(f"QEMU exited with status {status} before its QMP socket opened")
            self._remaining("waiting for the QMP socket")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(path)
                return sock
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                time.sleep(_POLL)
            except OSError as exc:
                sock.close()
                raise self._failed(f"cannot connect to {path}: {exc}") from None

    def _receive(self) -> dict[str, Any]:
        """The next JSON object QEMU sends (one per line)."""
        while b"\n" not in self._buffer:
            self.sock.settimeout(self._remaining("waiting for a QMP reply"))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                raise self._failed("timed out waiting for a QMP reply") from None
            except OSError as exc:
                raise self._failed(f"connection lost: {exc}") from None
            if not chunk:
                raise self._failed(f"QEMU closed the QMP connection (exit status {self.proc.poll()})")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            message = json.loads(line)
        except ValueError:
            raise self._failed(f"malformed QMP message {line[:200]!r}") from None
        if not isinstance(message, dict):
            raise self._failed(f"QMP message is not an object: {line[:200]!r}")
        return message

    def execute(self, command: str, arguments: Mapping[str, Any] | None = None) -> Any:
        """Run ``command``: its ``return`` value, or :class:`QemuFailed` with the error's class and ``desc``.
        Asynchronous events that arrive meanwhile are skipped."""
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = dict(arguments)
        try:
            self.sock.sendall(json.dumps(request).encode() + b"\n")
        except OSError as exc:
            raise self._failed(f"cannot send {command}: {exc}") from None
        while True:
            reply = self._receive()
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                error = reply["error"]
                raise QemuFailed(f"QMP {command} failed: {error.get('class', '?')}: {error.get('desc', error)}")
            # an event ({"event": ...}): not the reply

    def hmp(self, command_line: str) -> str:
        """The output of a human monitor command (``human-monitor-command``), such as ``info registers``."""
        return str(self.execute("human-monitor-command", {"command-line": command_line}))

    def poll(self, ready: Callable[[], bool], what: str) -> None:
        """Call ``ready()`` until it is true, or :class:`QemuFailed` at the deadline (``what`` says what was
        awaited)."""
        while not ready():
            self._remaining(f"waiting for {what}")
            time.sleep(_POLL)

    def close(self) -> None:
        self.sock.close()


def run_qmp(command: Callable[[str], list[str]], files: Mapping[str, bytes],
            session: Callable[[Qmp, str], None], *, timeout: float = 60.0) -> None:
    """Write ``files`` into a fresh temporary directory, start QEMU on ``command(directory)`` with a QMP
    socket there (``-qmp unix:...,server=on,wait=off``), negotiate capabilities, call
    ``session(qmp, directory)``, then ``quit`` and wait for QEMU to exit — all within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    with tempfile.TemporaryDirectory(prefix="pagetable-qmp-") as workdir:
        for name, data in files.items():
            with open(os.path.join(workdir, name), "wb") as f:
                f.write(data)
        sock_path = os.path.join(workdir, _SOCKET)
        if len(os.fsencode(sock_path)) >= _SUN_PATH:
            raise QemuFailed(f"the QMP socket path {sock_path!r} is longer than a Unix socket address allows "
                             f"({_SUN_PATH - 1} bytes): set TMPDIR to a shorter directory")
        argv = [*command(workdir), "-qmp", f"unix:{sock_path},server=on,wait=off"]
        err_path = os.path.join(workdir, _STDERR)

        def stderr() -> str:
            try:
                with open(err_path, "rb") as f:
                    return tail(f.read())
            except OSError:
                return ""

        with open(err_path, "wb") as err:
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err, cwd=workdir)
            except OSError as exc:
                raise QemuUnavailable(f"cannot run {argv[0]}: {exc}") from exc
        try:
            qmp = Qmp(proc, sock_path, deadline, stderr)
            try:
                qmp.execute("qmp_capabilities")
                session(qmp, workdir)
                qmp.execute("quit")
            finally:
                qmp.close()
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                raise QemuFailed(f"QEMU did not exit after quit within {timeout} s; stderr: {stderr()!r}") from None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def dump_guest_memory(command: Callable[[str], list[str]], files: Mapping[str, bytes], core: str | os.PathLike[str],
                      *, timeout: float = 60.0, prepare: Callable[[Qmp], None] | None = None) -> None:
    """Run QEMU on ``command(directory)`` (``files`` written there first; add ``-S`` to keep the CPUs
    stopped), call ``prepare(qmp)`` if given (to let a guest run until it is ready, then ``stop`` it, say),
    then ``dump-guest-memory`` of all guest RAM without paging as an ELF core to ``core``, and quit
    (:func:`run_qmp`)."""
    target = os.path.abspath(os.fspath(core))

    def session(qmp: Qmp, _workdir: str) -> None:
        if prepare is not None:
            prepare(qmp)
        qmp.execute("dump-guest-memory", {"paging": False, "protocol": f"file:{target}", "format": "elf"})

    run_qmp(command, files, session, timeout=timeout)
