"""pagetable.vectors.gdbstub against a scripted stub on a Unix socket: packets and acknowledgements, the
target description read in chunks across included files (register numbers running on from a regnum),
an unsolicited stop reply skipped, registers decoded little-endian, and its errors."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pagetable.vectors.gdbstub import GdbStub
from pagetable.vectors.qemu import QemuFailed

TARGET = '<target><xi:include href="core.xml"/><xi:include href="sys.xml"/></target>'
CORE = '<feature><reg name="x0" bitsize="64"/><reg name="pc" bitsize="64"/><reg name="cpsr" bitsize="32"/></feature>'
SYSTEM = '<feature><reg name="TTBR1_EL1" bitsize="64" regnum="100"/><reg name="TCR_EL1" bitsize="64"/></feature>'
REGISTERS = {"1": "efcdab8967452301", "2": "0100", "64": "0100000000000000", "65": "1035505b5f010015"}


def _packet(data: str) -> bytes:
    return b"$" + data.encode() + b"#%02x" % (sum(data.encode()) & 0xFF)


def _answer(request: str) -> str:
    if request.startswith("qXfer:features:read:"):
        annex, window = request.split(":")[3:5]
        text = {"target.xml": TARGET, "core.xml": CORE, "sys.xml": SYSTEM}[annex]
        offset, _ = (int(x, 16) for x in window.split(","))
        chunk = text[offset:offset + 40]                        # small chunks: 'm' then 'l'
        return ("l" if offset + 40 >= len(text) else "m") + chunk
    return REGISTERS.get(request[1:], "E01")


def _serve(server: socket.socket) -> None:
    conn, _ = server.accept()
    with conn:
        conn.sendall(_packet("T02thread:01;"))                  # QEMU's stop reply when a client stops the VM
        buffer = b""
        while True:
            while b"#" not in buffer or len(buffer) < buffer.index(b"#") + 3:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buffer += chunk
            buffer = buffer.lstrip(b"+")
            end = buffer.index(b"#") + 3
            request, buffer = buffer[1:end - 3].decode(), buffer[end:]
            conn.sendall(b"+" + _packet(_answer(request)))


@pytest.fixture
def stub(tmp_path: Path) -> Iterator[GdbStub]:
    path = str(tmp_path / "gdb.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    thread = threading.Thread(target=_serve, args=(server,), daemon=True)
    thread.start()
    gdb = GdbStub(path, time.monotonic() + 10)
    yield gdb
    gdb.close()
    thread.join(5)
    server.close()


def test_registers_by_name(stub: GdbStub) -> None:
    assert stub.read_register("pc") == 0x0123_4567_89AB_CDEF      # number 1, little-endian
    assert stub.read_register("TTBR1_EL1") == 1                   # regnum 100 = 0x64
    assert stub.read_register("TCR_EL1") == 0x1500_015F_5B50_3510  # 101 = 0x65: numbers run on


def test_errors(stub: GdbStub) -> None:
    with pytest.raises(QemuFailed, match="gdbstub: the target has no register SCTLR_EL1"):
        stub.read_register("SCTLR_EL1")
    with pytest.raises(QemuFailed, match=r"gdbstub: register cpsr read as '0100'"):     # 16 bits, not 32
        stub.read_register("cpsr")
    with pytest.raises(QemuFailed, match=r"gdbstub: register x0 read as 'E01'"):
        stub.read_register("x0")


def test_connect_and_timeout(tmp_path: Path) -> None:
    with pytest.raises(QemuFailed, match=r"gdbstub: cannot connect to .*nothing\.sock: \[Errno 2\]"):
        GdbStub(str(tmp_path / "nothing.sock"), time.monotonic() + 1)
    path = str(tmp_path / "mute.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    gdb = GdbStub(path, time.monotonic() + 0.2)                   # accepted by the kernel, never answered
    with pytest.raises(QemuFailed, match=r"^gdbstub: (timed out waiting for a reply|no reply: timed out)$"):
        gdb.read_register("pc")
    gdb.close()
    server.close()
