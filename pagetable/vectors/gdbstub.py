"""Read registers of a stopped QEMU guest through its gdbstub (the GDB Remote Serial Protocol, GDB manual
appendix E "GDB Remote Serial Protocol") — for what the human monitor does not print, such as AArch64's
TTBR0_EL1, TTBR1_EL1, TCR_EL1 (QEMU 7.2's `info registers` has none of them).

A packet is ``$data#cs`` (cs: the sum of the data bytes modulo 256, two hex digits), acknowledged by ``+``.
The register set is the target description (``qXfer:features:read:target.xml``) and the files it includes
(QEMU 7.2 gdbstub.c, target/arm/gdbstub.c: aarch64-core.xml, the SVE registers and a generated
system-registers.xml of every coprocessor register with its ``regnum``); ``p N`` reads register N, its
bytes in target order (little-endian here). Every wait ends at one deadline.
"""

from __future__ import annotations

import re
import socket
import time
from typing import Final

from .qemu import QemuFailed

__all__ = ["GdbStub"]

_PACKET: Final = re.compile(rb"\$([^#$]*)#([0-9a-fA-F]{2})")
_STOP_REPLY: Final = re.compile(r"[ST][0-9a-fA-F]{2}.*")
_XFER_CHUNK: Final = 0xFFB


class GdbStub:
    """A connection to QEMU's gdbstub on the Unix socket ``path`` (``-chardev socket,path=...,server=on
    -gdb chardev:ID``), every wait ending at ``deadline`` (time.monotonic()). Connecting stops the guest."""

    def __init__(self, path: str, deadline: float):
        self.deadline = deadline
        self._buffer = b""
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.connect(path)
        except OSError as exc:
            self.sock.close()
            raise QemuFailed(f"gdbstub: cannot connect to {path}: {exc}") from None
        self._numbers: dict[str, tuple[int, int]] | None = None

    def _recv(self) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise QemuFailed("gdbstub: timed out waiting for a reply")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except (TimeoutError, OSError) as exc:
            raise QemuFailed(f"gdbstub: no reply: {exc}") from None
        if not chunk:
            raise QemuFailed("gdbstub: QEMU closed the connection")
        self._buffer += chunk

    def command(self, data: str) -> str:
        """Send the packet ``data`` and return the reply's data (stop replies that arrive first skipped)."""
        body = data.encode()
        self.sock.sendall(b"$" + body + b"#%02x" % (sum(body) & 0xFF))
        while True:
            found = _PACKET.search(self._buffer)
            if found is None:
                self._recv()
                continue
            self._buffer = self._buffer[found.end():]
            self.sock.sendall(b"+")
            reply = found.group(1).decode("ascii", "replace")
            if not _STOP_REPLY.fullmatch(reply):
                return reply

    def _xfer(self, annex: str) -> str:
        """The target-description file ``annex`` (qXfer:features:read, read in chunks: 'm' more, 'l' last)."""
        text = ""
        while True:
            reply = self.command(f"qXfer:features:read:{annex}:{len(text):x},{_XFER_CHUNK:x}")
            if not reply or reply[0] not in "ml":
                raise QemuFailed(f"gdbstub: qXfer of {annex} answered {reply[:100]!r}")
            text += reply[1:]
            if reply[0] == "l":
                return text

    def _register_numbers(self) -> dict[str, tuple[int, int]]:
        """Every register's name -> (number, size in bits), from the target description: numbers run on
        from the last ``regnum`` given (GDB manual, "Target Description Format", the reg element)."""
        if self._numbers is None:
            numbers: dict[str, tuple[int, int]] = {}
            number = 0
            for annex in re.findall(r'<xi:include href="([^"]+)"', self._xfer("target.xml")):
                for attributes in re.findall(r"<reg\s([^>]*)/?>", self._xfer(annex)):
                    fields = dict(re.findall(r'(\w+)="([^"]*)"', attributes))
                    number = int(fields.get("regnum", number))
                    numbers[fields["name"]] = (number, int(fields.get("bitsize", "64")))
                    number += 1
            self._numbers = numbers
        return self._numbers

    def read_register(self, name: str) -> int:
        """Register ``name`` (as the target description names it, such as ``TTBR1_EL1``) of the current
        thread (CPU 0 after connecting), little-endian."""
        numbers = self._register_numbers()
        if name not in numbers:
            raise QemuFailed(f"gdbstub: the target has no register {name}")
        number, bits = numbers[name]
        reply = self.command(f"p{number:x}")
        if not re.fullmatch(r"([0-9a-f]{2})+", reply) or len(reply) * 4 != bits:
            raise QemuFailed(f"gdbstub: register {name} read as {reply[:40]!r}")
        return int.from_bytes(bytes.fromhex(reply), "little")

    def close(self) -> None:
        self.sock.close()
