"""SocketTransport's gathering reads: a read that fills its buffer goes on with what has arrived.

With ``gather`` set (the server's connections, a client that connects itself), a
plain socket's read that fills the bytes asked for reads on without waiting, into a
larger buffer lent by a pool, up to ``gather`` bytes in all: a large message that
has arrived is one bytes object. Every byte must come out once, in order, however
the socket hands them over; an error met while gathering is the next read's;
Ctrl-C while gathering marks the transport (the bytes read are lost).
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import struct
import termios
import time
from typing import Any

import pytest
from _driver_helpers import LeakCheck, serving

from jsonrpc_mini import RPCClient, RPCServer, SocketTransport
from jsonrpc_mini import _large_reads as pool
from jsonrpc_mini._large_reads import GATHER_MAX, gather_limit
from jsonrpc_mini._session import current_session

pytestmark = pytest.mark.timeout(60)

MiB = 2**20


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


class _Script:
    """Stands in for the transport's socket: hands out ``data`` in the chunk sizes given, then would block.

    A chunk is what the kernel has at one moment: a read takes at most what is
    asked and at most the rest of the current chunk (the rest of it stays for the
    next read, as a socket's queue would). ``fail`` is raised by the read after
    the last chunk, instead of blocking.
    """

    def __init__(self, data: bytes, sizes: list[int], fail: BaseException | None = None) -> None:
        self.rest = data
        self.sizes = sizes
        self.fail = fail
        self.reads: list[int] = []  # the size each read asked for

    def recv_into(self, view: memoryview, size: int = 0, flags: int = 0) -> int:
        size = size or len(view)  # (as a socket's: 0 or left out, the view's length)
        self.reads.append(size)
        if not self.sizes:
            if self.fail is not None:
                fail, self.fail = self.fail, None
                raise fail
            if flags & socket.MSG_DONTWAIT:
                raise BlockingIOError
            return 0  # (end of stream: nothing more will come)
        take = min(size, self.sizes[0])
        view[:take] = self.rest[:take]
        self.rest = self.rest[take:]
        if take == self.sizes[0]:
            self.sizes.pop(0)
        else:
            self.sizes[0] -= take
        return take


@pytest.fixture
def scripted() -> Any:
    # A real socket makes the transport take its usual read (the checks of
    # __init__), then the script stands in for it.
    a, b = socket.socketpair()
    transport = SocketTransport(a, gather=10 * 1024)
    real = transport.sock
    yield transport
    transport.sock = real
    transport.close()
    b.close()


def _read_all(transport: SocketTransport, max_bytes: int, total: int) -> list[bytes]:
    reads = []
    while sum(map(len, reads)) < total:
        data = transport.recv(max_bytes, None)
        assert data, "end of stream before every byte came"
        reads.append(data)
    return reads


def test_a_read_that_fills_its_buffer_takes_what_has_arrived_since(scripted: SocketTransport) -> None:
    data = os.urandom(5000)
    scripted.sock = script = _Script(data, [1000, 4000])  # type: ignore[assignment]
    assert scripted.recv(1000, None) == data  # 1000 asked, filled: what had arrived after them too
    # The second read asked for all the room left and got less: nothing more was asked.
    assert script.reads == [1000, 10 * 1024 - 1000]
    scripted.sock = _Script(data, [1000, 1500, 2500])  # type: ignore[assignment]
    assert scripted.recv(1000, None) == data[:2500]  # 1,500 more had arrived, the rest later
    assert scripted.recv(1000, None) == data[2500:]


def test_a_read_that_does_not_fill_its_buffer_takes_nothing_more(scripted: SocketTransport) -> None:
    data = os.urandom(1500)
    scripted.sock = script = _Script(data, [999, 501])  # type: ignore[assignment]
    assert scripted.recv(1000, None) == data[:999]
    assert scripted.recv(1000, None) == data[999:]
    assert script.reads == [1000, 1000]


def test_a_read_gathers_at_most_gather_bytes(scripted: SocketTransport) -> None:
    data = os.urandom(25 * 1024)
    scripted.sock = _Script(data, [len(data)])  # type: ignore[assignment]
    reads = _read_all(scripted, 1024, len(data))
    assert [len(read) for read in reads] == [10 * 1024, 10 * 1024, 5 * 1024]
    assert b"".join(reads) == data


def test_a_gather_over_the_larger_buffers_length_gathers_that_length() -> None:
    # gather is the constructor's keyword: a user may ask for more than the larger
    # buffers hold (e.g. max_message_size + 1 of the default 16 MiB limit). The read
    # must not fail (its bytes would be lost): it gathers GATHER_MAX at most.
    a, b = socket.socketpair()
    transport = SocketTransport(a, gather=4 * GATHER_MAX)
    real = transport.sock
    data = os.urandom(GATHER_MAX + 100_000)
    transport.sock = _Script(data, [len(data)])  # type: ignore[assignment]
    try:
        reads = _read_all(transport, 1024, len(data))
        assert [len(read) for read in reads] == [GATHER_MAX, 100_000]
        assert b"".join(reads) == data
        assert not transport.interrupted_read
    finally:
        transport.sock = real
        transport.close()
        b.close()


@pytest.mark.parametrize("seed", range(40))
def test_every_byte_comes_once_in_order_however_it_arrives(scripted: SocketTransport, seed: int) -> None:
    rng = random.Random(seed)
    data = os.urandom(rng.randrange(1, 40_000))
    sizes: list[int] = []
    while sum(sizes) < len(data):
        sizes.append(min(rng.choice([1, 2, 7, 100, 1023, 1024, 1025, 4096, 9000, 20_000]), len(data) - sum(sizes)))
    scripted.gather = rng.choice([0, 1024, 1025, 3000, 10 * 1024, 64 * 1024])
    max_bytes = rng.choice([1, 8, 1000, 1024])
    scripted.sock = _Script(data, sizes)  # type: ignore[assignment]
    reads = _read_all(scripted, max_bytes, len(data))
    assert b"".join(reads) == data
    for read in reads:
        assert len(read) <= max(max_bytes, scripted.gather)
        if len(read) > max_bytes:
            assert scripted.gather > max_bytes  # only a read allowed to gather takes more


class _GatherTurnedOff(SocketTransport):
    """``gather`` as the server's drain() leaves it when it lands inside a read: set at the check, 0 after it."""

    def __init__(self, sock: Any) -> None:
        self.seen: list[int] = [10 * 1024, 0]  # what each look at gather finds
        super().__init__(sock, gather=10 * 1024)

    @property  # type: ignore[override]
    def gather(self) -> int:
        return self.seen.pop(0) if len(self.seen) > 1 else self.seen[0]

    @gather.setter
    def gather(self, value: int) -> None:
        pass  # (the constructor's: the looks are scripted)


def test_gathering_turned_off_inside_a_read_returns_what_it_read() -> None:
    # The sync server's drain() (shutdown() beginning) turns gathering off from another
    # thread. Landing between a full read's look at gather and _gather's own, the read
    # asked the socket for a negative length: ValueError, the bytes read lost (the
    # connection ended with a logged traceback). It returns what it read now.
    a, b = socket.socketpair()
    transport = _GatherTurnedOff(a)
    real = transport.sock
    data = os.urandom(3000)
    transport.sock = _Script(data, [len(data)])  # type: ignore[assignment]
    try:
        assert transport.recv(1000, None) == data[:1000]
        assert not transport.interrupted_read
        assert transport.recv(1000, None) == data[1000:2000]  # (and no gathering from then on)
    finally:
        transport.sock = real
        transport.close()
        b.close()


def test_without_gather_a_read_takes_what_it_asked_for_at_most(scripted: SocketTransport) -> None:
    scripted.gather = 0
    data = os.urandom(3000)
    scripted.sock = _Script(data, [3000])  # type: ignore[assignment]
    assert [len(read) for read in _read_all(scripted, 1000, 3000)] == [1000, 1000, 1000]


def test_an_error_met_while_gathering_is_the_next_reads(scripted: SocketTransport) -> None:
    data = os.urandom(1000)
    scripted.sock = _Script(data, [1000], fail=ConnectionResetError(104, "reset"))  # type: ignore[assignment]
    assert scripted.recv(1000, None) == data  # the bytes before the reset come first
    with pytest.raises(ConnectionResetError):
        scripted.recv(1000, None)
    assert not scripted.interrupted_read
    scripted.sock = _Script(b"[]\n", [3])  # type: ignore[assignment]
    assert scripted.recv(1000, None) == b"[]\n"  # raised once: later reads go on (as a socket's do)


def test_end_of_stream_while_gathering_ends_the_gathering(scripted: SocketTransport) -> None:
    data = os.urandom(1500)
    scripted.sock = script = _Script(data, [1000, 500])  # type: ignore[assignment]
    assert scripted.recv(1000, None) == data
    assert scripted.recv(1000, None) == b""  # (the script's end of stream, read the usual way)
    assert script.reads[-1] == 1000


def test_ctrl_c_while_gathering_marks_the_transport(scripted: SocketTransport) -> None:
    scripted.sock = _Script(os.urandom(1500), [1000, 500], fail=KeyboardInterrupt())  # type: ignore[assignment]
    assert scripted.recv(1000, None)  # (1500 bytes, then the next read would block)
    assert not scripted.interrupted_read
    scripted.sock = _Script(os.urandom(1000), [1000], fail=KeyboardInterrupt())  # type: ignore[assignment]
    with pytest.raises(KeyboardInterrupt):
        scripted.recv(1000, None)  # the 1000 bytes read are lost with it
    assert scripted.interrupted_read
    assert len(pool._kept) <= pool._KEPT  # the buffer lent was given back


def test_the_larger_buffers_are_kept_for_later_reads_a_few_at_most(scripted: SocketTransport) -> None:
    taken = [pool.take_large() for _ in range(pool._KEPT + 2)]
    for large in taken:
        pool.give_back(large)
    assert len(pool._kept) == pool._KEPT
    data = os.urandom(3000)
    scripted.sock = _Script(data, [1000, 2000])  # type: ignore[assignment]
    kept = list(pool._kept)
    assert scripted.recv(1000, None) == data
    assert sorted(map(id, pool._kept)) == sorted(map(id, kept))  # one of them lent and given back


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() here")
def test_a_forked_child_reads_into_its_own_copy_of_a_kept_buffer() -> None:
    pool._kept.clear()  # (a cache: emptied, so that ``large`` is surely kept)
    large = pool.take_large()
    large[:6] = b"parent"
    pool.give_back(large)  # kept: the next take_large (the child's too) hands it out
    pid = os.fork()
    if pid == 0:  # the child: write into what it is lent, and leave at once
        code = 1
        try:
            mine = pool.take_large()
            mine[:6] = b"child!"
            code = 0 if mine[:6] == b"child!" else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert large[:6] == b"parent"  # the child's write stayed in the child


def test_a_forked_child_reads_into_its_own_copy_of_a_transports_buffer() -> None:
    a, b = socket.socketpair()
    transport = SocketTransport(a)
    try:
        b.sendall(b"parent")
        assert transport.recv(4096, None) == b"parent"  # (the read buffer is made by the first read)
        pid = os.fork()
        if pid == 0:  # the child: read into the buffer it inherited, and leave at once
            code = 1
            try:
                b.sendall(b"child!")
                code = 0 if transport.recv(4096, None) == b"child!" else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert transport._buffer[:6] == b"parent"  # the child's read stayed in the child
    finally:
        transport.close()
        b.close()


def _waiting(sock: socket.socket) -> int:
    return int(struct.unpack("i", fcntl.ioctl(sock, termios.FIONREAD, b"\0\0\0\0"))[0])


def test_a_message_that_has_arrived_is_one_read() -> None:
    # (Far less than 1 MiB: without reads a socket's queue holds a few hundred KiB at most.)
    listener = socket.create_server(("127.0.0.1", 0))
    peer = socket.create_connection(listener.getsockname())
    conn, _ = listener.accept()
    listener.close()
    transport = SocketTransport(conn, gather=gather_limit(16 * MiB))
    try:
        message = os.urandom(60_000) + b"\n"
        peer.sendall(message)
        deadline = time.monotonic() + 30
        while _waiting(conn) < len(message) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert transport.recv(4096, None) == message
        # The same through the other ways a socket is read: with a timeout of its
        # own, and without waiting (recv_ready, as feed_ready reads).
        for read in (lambda: transport.recv(4096, 30.0), lambda: transport.recv_ready(4096)):
            peer.sendall(message)
            while _waiting(conn) < len(message) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert read() == message
        peer.sendall(b"[]\n")
        assert transport.recv(4096, None) == b"[]\n"
    finally:
        transport.close()
        peer.close()


def test_gather_limit_is_one_message_and_its_newline_up_to_a_bound() -> None:
    assert gather_limit(MiB) == MiB + 1
    assert gather_limit(16 * MiB) == GATHER_MAX


def _own_gather() -> int:
    session = current_session()
    assert session is not None
    transport = session._transport
    assert isinstance(transport, SocketTransport)
    return transport.gather


def test_server_and_client_connections_gather_and_echo_large_strings() -> None:
    server = RPCServer(max_message_size=2 * MiB)
    server.register_function(lambda s: s, "echo")
    server.register_function(_own_gather, "gather")
    # Multi-byte characters, escapes and newlines in strings: any of them may fall
    # where a read or a gathering ends.
    payload = "".join(random.Random(1).choices('abc\u00e9\u4e2d\U0001f600 "\\\n\t', k=200_000))
    with serving(server) as (host, port), RPCClient(host, port, max_message_size=3 * MiB) as client:
        link = client._link
        assert link is not None and isinstance(link.transport, SocketTransport)
        assert link.transport.gather == gather_limit(3 * MiB)
        assert client.call("gather") == gather_limit(2 * MiB)
        for _ in range(3):
            assert client.call("echo", payload) == payload
            assert client.call("echo", "x") == "x"
