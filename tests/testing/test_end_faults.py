"""What a fault does to one end (``_end_faults``), checked against real sockets.

Half-close and reset of a ``SocketTransport`` must look to the peer as a socket's own
``shutdown`` / SO_LINGER 0 close does; a transport with no such thing falls back to
a plain close, and ``was_reset`` answers False where it cannot ask the kernel.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import sys
from collections.abc import Iterator

import pytest

from jsonrpc_mini import SocketTransport
from jsonrpc_mini.testing import _end_faults

pytestmark = pytest.mark.timeout(30)
WAIT = 10.0


@contextlib.contextmanager
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """Two connected TCP sockets on 127.0.0.1 (blocking, bounded by WAIT), closed on exit."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        a = socket.create_connection(listener.getsockname(), timeout=WAIT)
        b, _ = listener.accept()
    b.settimeout(WAIT)
    with a, b:
        yield a, b


class Closable:
    """A transport with only the seam's three methods: no half-close, no abort."""

    def __init__(self) -> None:
        self.closed = 0

    def send(self, data: bytes) -> None:
        raise AssertionError("not used")

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        raise AssertionError("not used")

    def close(self) -> None:
        self.closed += 1


def test_shutdown_read_gives_our_reads_eof_and_leaves_our_writes_flowing() -> None:
    with tcp_pair() as (a, b):
        transport = SocketTransport(a)
        _end_faults.shutdown_read(transport)
        assert transport.recv(10, WAIT) == b""  # as after the peer's close
        transport.send(b"still open")
        assert b.recv(100) == b"still open"


def test_shutdown_write_gives_the_peer_eof_and_leaves_our_reads_flowing() -> None:
    with tcp_pair() as (a, b):
        transport = SocketTransport(a)
        _end_faults.shutdown_write(transport)
        assert b.recv(10) == b""
        b.sendall(b"reply")
        assert transport.recv(10, WAIT) == b"reply"


def test_abort_transport_resets_the_peer_of_a_tcp_socket() -> None:
    with tcp_pair() as (a, b):
        _end_faults.abort_transport(SocketTransport(a))
        with pytest.raises(ConnectionResetError):
            b.recv(10)
        assert a.fileno() == -1  # closed


def test_a_transport_without_half_close_or_abort_is_closed_instead() -> None:
    for fault in (_end_faults.shutdown_write, _end_faults.abort_transport):
        transport = Closable()
        fault(transport)  # type: ignore[arg-type]
        assert transport.closed == 1, fault
    transport = Closable()
    _end_faults.shutdown_read(transport)  # type: ignore[arg-type]
    assert transport.closed == 0  # nothing to stop: reading goes on


def test_was_reset_tells_a_reset_from_a_close_and_answers_false_off_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("the kernel tells a reset only on Linux")
    with tcp_pair() as (a, b):
        a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        a.close()
        with contextlib.suppress(ConnectionResetError):
            b.recv(10)
        assert _end_faults.was_reset(b)
        monkeypatch.setattr("sys.platform", "darwin")
        assert not _end_faults.was_reset(b)
    with tcp_pair() as (a, b):
        a.close()
        assert b.recv(10) == b""
        monkeypatch.undo()
        assert not _end_faults.was_reset(b)  # a plain close: CLOSE_WAIT
