"""SocketTransport's usual read (a blocking socket, the timeout in force): its buffer and interruptions.

``recv`` reads a plain socket into one reused buffer, in line when the timeout asked
is the one in force. A read that an interruption (Ctrl-C) cuts after it took bytes
must mark the transport (``interrupted_read``): those bytes are lost. One cut before
any byte arrived must not.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest
from _driver_helpers import LeakCheck

from jsonrpc_mini import SocketTransport

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


@pytest.fixture
def pair() -> Any:
    a, b = socket.socketpair()
    transport = SocketTransport(a)
    yield transport, b
    transport.close()
    b.close()


class _CutRead:
    """Stands in for the transport's socket: its next read is cut by Ctrl-C, after taking ``taken``."""

    def __init__(self, sock: socket.socket, taken: bytes) -> None:
        self.sock = sock
        self.taken = taken

    def recv_into(self, view: memoryview, size: int = 0, flags: int = 0) -> int:
        view[: len(self.taken)] = self.taken
        raise KeyboardInterrupt


def _usual_read(transport: SocketTransport) -> bool:
    # The read recv takes in line: a plain socket, no timeout asked and none in force.
    return transport._same is None and transport._rcvtimeo == 0.0


def test_reads_grow_the_buffer_when_asked_for_more(pair: Any) -> None:
    transport, peer = pair
    assert _usual_read(transport)
    peer.sendall(b"abcdefgh")
    assert transport.recv(4, None) == b"abcd"
    assert transport.recv(4, None) == b"efgh"
    peer.sendall(bytes(range(1, 201)))
    got = b""
    while len(got) < 200:  # (a stream: it may come in parts)
        chunk = transport.recv(1000, None)
        assert chunk
        got += chunk
    assert got == bytes(range(1, 201))
    peer.sendall(b"{}\n")
    assert transport.recv(2, None) == b"{}"  # a smaller read after a larger one


def test_a_read_cut_after_taking_bytes_marks_the_transport(pair: Any) -> None:
    transport, _ = pair
    assert _usual_read(transport)
    real = transport.sock
    transport.sock = _CutRead(real, b'{"jsonrpc"')  # type: ignore[assignment]
    try:
        with pytest.raises(KeyboardInterrupt):
            transport.recv(1024, None)
    finally:
        transport.sock = real
    assert transport.interrupted_read


def test_a_read_cut_before_any_byte_leaves_the_transport_trusted(pair: Any) -> None:
    transport, peer = pair
    assert _usual_read(transport)
    peer.sendall(b'{"x": 1}\n')
    assert transport.recv(1024, None) == b'{"x": 1}\n'  # the buffer's first byte is "{" now
    real = transport.sock
    transport.sock = _CutRead(real, b"")
    try:
        with pytest.raises(KeyboardInterrupt):
            transport.recv(1024, None)
    finally:
        transport.sock = real
    assert not transport.interrupted_read
    peer.sendall(b"[]\n")
    assert transport.recv(1024, None) == b"[]\n"  # and it reads on


def test_a_usual_read_that_times_out_raises_timeout_error(pair: Any) -> None:
    transport, peer = pair
    with pytest.raises(TimeoutError):
        transport.recv(1024, 0.05)  # sets the kernel's receive timeout
    if transport._rcvtimeo == 0.0:
        pytest.skip("no SO_RCVTIMEO here: reads wait with poll()")
    assert transport._rcvtimeo >= 0.05
    with pytest.raises(TimeoutError, match="read timed out"):
        transport.recv(1024, transport._rcvtimeo)  # the timeout in force: the read in line
    assert not transport.interrupted_read
    peer.sendall(b"ok")
    assert transport.recv(1024, transport._rcvtimeo) == b"ok"


def test_a_timeout_asked_after_reads_without_one_bounds_the_read(pair: Any) -> None:
    transport, peer = pair
    peer.sendall(b"{}\n")
    assert transport.recv(1024, None) == b"{}\n"  # the buffer is there, no timeout in force
    # Bytes come late (so that a read ignoring the timeout returns them, not hangs).
    late = threading.Timer(2.0, peer.sendall, (b"late",))
    late.start()
    try:
        with pytest.raises(TimeoutError):
            transport.recv(1024, 0.05)
    finally:
        late.cancel()
        late.join()
    assert not transport.interrupted_read


class _SubSocket(socket.socket):
    """A socket subclass: not a plain socket, so its reads neither gather nor use SO_RCVTIMEO."""


def test_a_socket_subclass_read_does_not_gather() -> None:
    a, b = socket.socketpair()
    sub = _SubSocket(a.family, a.type, fileno=a.detach())
    transport = SocketTransport(sub, gather=100)
    try:
        b.sendall(bytes(range(1, 51)))
        assert transport.recv(10, None) == bytes(range(1, 11))
        assert transport.recv(10, None) == bytes(range(11, 21))  # the buffer there: no more than asked
    finally:
        transport.close()
        b.close()
