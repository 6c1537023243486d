"""Closing a TLS connection does not wait long for the peer's close_notify (review13 F2).

Invariant: when a server closes a TLS connection (idle timeout, shutdown, a refusal
at max_connections) it sends what it wrote, then (aio) its close_notify, waits at
most a second for the peer's (asyncio's TLS layer alone waited 30 s), and closes
the socket: the descriptor and the ``max_connections`` slot are freed, and
``shutdown()`` returns with every connection closed, as over plain TCP. The aio
client's ``close()`` likewise. A peer that never answers close_notify (this
library's own idle sync client never does: it reads only while a call waits) is
played here by :class:`MuteTls`, which reads everything but never writes after its
handshake. Nothing written before the close is lost: a peer that reads only after
the server closed still gets it all.

Every wait is bounded (``WAIT``, 10 s), which the old 30 s wait fails.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading
import time
from typing import Any

import pytest
from _aio_support import run, serving, until
from _driver_helpers import answered_within, in_time_rounds
from _hardening import WAIT, running

from jsonrpc_mini import ConnectionLost, RPCClient, ServerError, aio
from jsonrpc_mini import _aio_client as aio_client
from jsonrpc_mini import _aio_shutdown as aio_shutdown
from jsonrpc_mini._aio_conn import ServerProtocol

pytestmark = pytest.mark.timeout(90)


class MuteTls:
    """One end of a TLS connection over a plain socket: it reads, but never writes after its handshake.

    So it never answers the other end's close_notify. OpenSSL runs on memory
    buffers, so what was read is decrypted without ever writing.
    """

    def __init__(self, sock: socket.socket, ctx: ssl.SSLContext, *, server_side: bool) -> None:
        self.sock = sock
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        hostname = None if server_side else "127.0.0.1"
        self._tls = ctx.wrap_bio(self._incoming, self._outgoing, server_side=server_side, server_hostname=hostname)
        sock.settimeout(WAIT)
        for _ in range(20):  # a handshake takes two or three rounds
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                self._flush()
            else:
                self._flush()
                return
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed during the handshake")
            self._incoming.write(data)
        raise AssertionError("the TLS handshake did not finish")

    @classmethod
    def connect(cls, address: Any, ctx: ssl.SSLContext, *, rcvbuf: int | None = None) -> MuteTls:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # (before connecting: the window is set then)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(WAIT)
        sock.connect((address[0], address[1]))
        return cls(sock, ctx, server_side=False)

    def _flush(self) -> None:
        if data := self._outgoing.read():
            self.sock.sendall(data)

    def send(self, data: bytes) -> None:
        """Send ``data`` (before the other end closes: writing after that would answer it)."""
        self._tls.write(data)
        self._flush()

    def read_to_end(self, timeout: float = WAIT) -> tuple[bytes, bool, bool]:
        """Read until the other end closes the socket or ``timeout`` passes.

        Returns (the plain text received, whether the socket was closed, whether a
        close_notify came); nothing is written, so the close_notify is not answered.
        """
        deadline = time.monotonic() + timeout
        plain, closed, notified = bytearray(), False, False
        while True:
            try:
                while chunk := self._tls.read(65536):
                    plain += chunk
                notified = True  # (b"": the TLS end)
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                notified = True
            remaining = deadline - time.monotonic()
            if closed or remaining <= 0:
                return bytes(plain), closed, notified
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:  # reset: closed too
                closed = True
                continue
            if not data:
                closed = True
            else:
                self._incoming.write(data)

    def read_line(self, timeout: float = WAIT) -> bytes:
        """Read until the first newline of the plain text (the socket must stay open meanwhile)."""
        deadline = time.monotonic() + timeout
        plain = bytearray()
        while b"\n" not in plain:
            try:
                plain += self._tls.read(65536)
                continue
            except ssl.SSLWantReadError:
                pass
            self.sock.settimeout(max(deadline - time.monotonic(), 0.001))
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed before a whole line came")
            self._incoming.write(data)
        return bytes(plain)

    def close(self) -> None:
        self.sock.close()


def _lines(plain: bytes) -> list[Any]:
    return [json.loads(line) for line in plain.splitlines() if line.strip()]


# -- servers: both kinds -----------------------------------------------------------


def test_idle_timeout_closes_a_tls_peer_that_never_answers(kind: str, contexts: Any) -> None:
    server_ctx, client_ctx = contexts
    with running(kind, {"idle_timeout": 0.3}, ssl=server_ctx) as srv:
        peer = MuteTls.connect(srv.address, client_ctx)
        try:
            _, closed, notified = peer.read_to_end()
            assert closed, "the server kept the socket of an idle TLS peer that did not answer close_notify"
            assert notified or kind == "sync"  # (the sync server closes without close_notify)
        finally:
            peer.close()


IDLE = 0.3  # the server's idle_timeout for an idle TLS client


def test_an_idle_sync_tls_client_frees_its_max_connections_slot(kind: str, contexts: Any) -> None:
    server_ctx, client_ctx = contexts
    with running(kind, {"idle_timeout": IDLE, "max_connections": 1}, ssl=server_ctx) as srv:
        in_time_rounds(lambda: _idle_client_frees_its_slot(srv, client_ctx), "idle_timeout")


def _idle_client_frees_its_slot(srv: Any, client_ctx: ssl.SSLContext) -> bool:
    """One round; False if this thread stalled past idle_timeout before a call was answered.

    Each client must connect (TLS handshake included) and call within idle_timeout:
    the server's idle time starts after the client begins to connect, and a call
    failing idle_timeout or more after that proves nothing (see ``kept``).
    """
    host, port = srv.address
    clients: list[RPCClient] = []

    def call(text: str) -> None:
        clients.append(RPCClient(host, port, ssl=client_ctx, timeout=WAIT))
        assert clients[-1].echo(text) == text

    try:
        if not answered_within(lambda: call("first"), time.monotonic(), IDLE):
            return False
        # Then idle: it reads only while a call waits.
        deadline = time.monotonic() + WAIT
        while srv.server.connection_count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert srv.server.connection_count == 0, "an idle TLS client still holds its slot"
        return answered_within(lambda: call("second"), time.monotonic(), IDLE)
    finally:
        for client in clients:
            client.close()


def test_shutdown_returns_with_a_tls_peer_that_never_answers_closed(kind: str, contexts: Any) -> None:
    server_ctx, client_ctx = contexts
    with running(kind, {"shutdown_grace": 5.0}, ssl=server_ctx) as srv:
        peer = MuteTls.connect(srv.address, client_ctx)
        try:
            deadline = time.monotonic() + WAIT
            while srv.server.connection_count != 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert srv.server.connection_count == 1
            srv.stop()  # no call in flight: nothing to wait for
            assert srv.server.connection_count == 0, "shutdown() returned with the connection still open"
            _, closed, _ = peer.read_to_end()
            assert closed
        finally:
            peer.close()


def test_shutdown_drops_a_reply_a_tls_peer_never_reads(kind: str, contexts: Any) -> None:
    # review14 F8 over TLS: the peer asks for an 8 MB reply and reads none of it.
    # Once the grace is over the server drops what the peer did not take: shutdown()
    # returns with the connection closed, and the peer sees its end at once. (The aio
    # server gave up after a fixed 5 s and left the connection open, with the rest of
    # the reply stuck in its TLS layer: the peer, reading, saw no end at all.)
    server_ctx, client_ctx = contexts
    size = 8 << 20
    called = threading.Event()

    def big() -> str:
        called.set()
        return "b" * size

    with running(kind, {"shutdown_grace": 0.5}, ssl=server_ctx) as srv:
        srv.server.register_function(big)
        peer = MuteTls.connect(srv.address, client_ctx, rcvbuf=4096)
        try:
            peer.send(b'{"jsonrpc": "2.0", "method": "big", "id": 1}\n')
            assert called.wait(WAIT)  # read before the shutdown: the reply is due
            srv.stop()
            assert srv.server.connection_count == 0, "shutdown() returned with the connection still open"
            plain, closed, _ = peer.read_to_end()
            assert closed, "the peer saw no end of the connection"
            assert len(plain) < size  # what it did not take was dropped
            if kind == "aio":  # by a reset: what the kernel held for it too (the sync server leaves that)
                assert len(plain) < 1 << 20
        finally:
            peer.close()


def test_shutdown_drops_a_connection_closed_before_whose_reply_waits(kind: str, contexts: Any) -> None:
    # As above, but the server had closed the connection already (a message over
    # max_message_size, answered): its TLS transport, closed a second time by
    # shutdown(), forgets its layer and cannot abort any more; the plain transport
    # under it is dropped instead.
    server_ctx, client_ctx = contexts
    size = 8 << 20
    called, go = threading.Event(), threading.Event()

    def big() -> str:
        called.set()
        go.wait(WAIT)
        return "b" * size

    options = {"shutdown_grace": 0.5, "max_message_size": 1000, "idle_timeout": 60.0}
    with running(kind, options, ssl=server_ctx) as srv:
        srv.server.register_function(big)
        peer = MuteTls.connect(srv.address, client_ctx, rcvbuf=4096)
        try:
            peer.send(b'{"jsonrpc": "2.0", "method": "big", "id": 1}\n')
            assert called.wait(WAIT)
            peer.send(b'{"jsonrpc": "2.0", "method": "big", "params": ["' + b"x" * 2000 + b'"], "id": 2}\n')
            assert _lines(peer.read_line())[0]["error"]["code"] == -32600  # the server closes once big returns
            go.set()
            srv.stop()
            assert srv.server.connection_count == 0, "shutdown() returned with the connection still open"
            plain, closed, _ = peer.read_to_end()
            assert closed, "the peer saw no end of the connection"
            assert len(plain) < size
        finally:
            go.set()
            peer.close()


# -- the aio server ----------------------------------------------------------------


def test_a_tls_client_refused_at_max_connections_reads_why_and_is_closed(
    contexts: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A peer that never answers close_notify is closed all the same; one that
    # answers (the aio client) ends the wait at once, and its answer brings no
    # "returning true from eof_received() has no effect when using ssl" from asyncio.
    server_ctx, client_ctx = contexts
    eofs: list[bool] = []  # what the server's connections answered to an EOF (a close_notify, over TLS)
    eof_received = ServerProtocol.eof_received

    def recorded(protocol: ServerProtocol) -> bool:
        keep_open = eof_received(protocol)
        eofs.append(keep_open)
        return keep_open

    monkeypatch.setattr(ServerProtocol, "eof_received", recorded)

    async def main() -> None:
        srv = aio.RPCServer(max_connections=1)
        srv.register_function(lambda x: x, name="echo")
        async with (
            serving(srv, ssl=server_ctx) as address,
            await aio.connect(*address, ssl=client_ctx, timeout=WAIT) as first,
        ):
            assert await first.echo(1) == 1
            peer = await asyncio.to_thread(MuteTls.connect, address, client_ctx)
            try:
                plain, closed, notified = await asyncio.to_thread(peer.read_to_end)
            finally:
                peer.close()
            assert _lines(plain)[0]["error"]["message"].endswith("too many connections, try again later")
            assert closed and notified
            before = len(eofs)
            with pytest.raises((ServerError, ConnectionLost), match="too many connections"):
                async with await aio.connect(*address, ssl=client_ctx, timeout=WAIT) as second:
                    await second.echo(3)
            await until(lambda: len(eofs) > before)  # the server read the second client's close_notify
            assert await first.echo(2) == 2
        assert not [r for r in caplog.records if "eof_received" in r.getMessage()]

    run(main)


def test_replies_written_before_the_close_reach_a_peer_that_reads_after_it(
    contexts: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Three 3 MiB replies, written one by one while the peer reads nothing (small
    # receive window): at the close most of them wait in the TLS layer and in the
    # transport under it. The plain transport is closed at once here (no wait for
    # the peer's close_notify at all), yet the socket closes only once they are
    # sent, then the close_notify: the peer, reading only now, gets every byte.
    monkeypatch.setattr(aio_shutdown, "LINGER", 0.0)
    server_ctx, client_ctx = contexts
    size = 3 << 20

    async def main() -> None:
        gates = [asyncio.Event() for _ in range(3)]
        started: list[int] = []

        async def big(i: int) -> str:
            started.append(i)
            await gates[i].wait()
            return str(i) * size

        srv = aio.RPCServer(shutdown_grace=WAIT)
        srv.register_function(big)
        async with serving(srv, ssl=server_ctx) as address:
            peer = await asyncio.to_thread(MuteTls.connect, address, client_ctx, rcvbuf=32768)
            try:
                for i in range(3):
                    request = {"jsonrpc": "2.0", "method": "big", "params": [i], "id": i}
                    await asyncio.to_thread(peer.send, json.dumps(request).encode() + b"\n")
                await until(lambda: len(started) == 3)
                (conn,) = srv._conns
                transport = conn._transport
                assert transport is not None
                stopping = asyncio.create_task(srv.shutdown())
                for gate in gates:  # one write each
                    gate.set()
                    await asyncio.sleep(0.01)
                await until(transport.is_closing)  # closed by shutdown(), the replies unread
                plain, closed, notified = await asyncio.to_thread(peer.read_to_end)
                await stopping
            finally:
                peer.close()
        assert closed and notified
        replies = _lines(plain)
        assert [reply["id"] for reply in replies] == [0, 1, 2]
        assert [reply["result"] for reply in replies] == [str(i) * size for i in range(3)]

    run(main)


def test_idle_timeout_drops_a_reply_a_tls_peer_never_takes(contexts: Any) -> None:
    # A reply the peer does not take waits in the plain transport under TLS, below
    # its high-water mark, so the TLS layer holds none of it (nor the close_notify
    # after it). At idle_timeout the connection is dropped, not kept while the
    # reply waits to go out (asyncio's TLS layer gave up only after 30 s).
    server_ctx, client_ctx = contexts

    async def main() -> None:
        srv = aio.RPCServer(idle_timeout=0.3)
        srv.register_function(lambda: "x" * (48 << 10), name="big")
        async with serving(srv, ssl=server_ctx) as address:
            peer = await asyncio.to_thread(MuteTls.connect, address, client_ctx, rcvbuf=4096)
            try:
                await until(lambda: srv.connection_count == 1)
                (conn,) = srv._conns
                assert conn.under is not None
                conn.under.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
                request = {"jsonrpc": "2.0", "method": "big", "id": 1}
                await asyncio.to_thread(peer.send, json.dumps(request).encode() + b"\n")
                await until(lambda: conn.under is not None and conn.under.get_write_buffer_size() > 0)
                await until(lambda: srv.connection_count == 0)
            finally:
                peer.close()

    run(main)


# -- the aio client ----------------------------------------------------------------


def test_aio_client_close_does_not_wait_for_the_servers_close_notify(
    contexts: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server that reads everything and never answers close_notify. close() waits
    # for what is written to go out (up to a bound meant for a server that reads
    # nothing, raised here past the test's deadline), and not long for that answer;
    # the large notification written just before it arrives whole, then the
    # close_notify.
    server_ctx, client_ctx = contexts
    monkeypatch.setattr(aio_client, "_CLOSE_FLUSH", 60.0)
    note = "n" * (1 << 20)
    listener = socket.create_server(("127.0.0.1", 0))
    got: list[tuple[bytes, bool, bool]] = []

    def mute_server() -> None:
        sock, _ = listener.accept()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
        peer = MuteTls(sock, server_ctx, server_side=True)
        try:
            got.append(peer.read_to_end())
        finally:
            peer.close()

    thread = threading.Thread(target=mute_server, name="mute-tls-server")
    thread.start()

    async def main() -> None:
        client = await aio.connect(*listener.getsockname(), ssl=client_ctx)
        await client.notify("note", note)
        async with asyncio.timeout(WAIT):  # (else: the 60 s bound, waiting for the answer)
            await client.close()

    try:
        run(main)
    finally:
        thread.join(WAIT)
        listener.close()
    assert got, "the mute server did not finish"
    plain, closed, notified = got[0]
    assert closed and notified
    assert _lines(plain) == [{"jsonrpc": "2.0", "method": "note", "params": [note]}]


def test_aio_client_over_tls_checks_server_hostname_as_before(contexts: Any) -> None:
    _, client_ctx = contexts

    async def main() -> None:
        with pytest.raises(ValueError, match="server_hostname"):
            await aio.connect(path="/nonexistent.sock", ssl=client_ctx)
        with pytest.raises(ValueError, match="server_hostname"):
            await aio.connect("", 1, ssl=client_ctx)
        with pytest.raises(ValueError, match="only meaningful with ssl"):
            await aio.connect("127.0.0.1", 1, server_hostname="localhost")

    run(main)


def test_aio_client_over_tls_names_the_server_hostname_it_checks(contexts: Any) -> None:
    server_ctx, client_ctx = contexts

    async def main() -> None:
        srv = aio.RPCServer()
        srv.register_function(lambda x: x, name="echo")
        async with serving(srv, ssl=server_ctx) as address:
            async with await aio.connect(*address, ssl=client_ctx, server_hostname="localhost") as c:
                assert await c.echo(1) == 1
            with pytest.raises(ConnectionLost, match=r"certificate|hostname"):
                await aio.connect(*address, ssl=client_ctx, server_hostname="elsewhere.example", timeout=WAIT)

    run(main)
