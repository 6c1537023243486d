"""Both servers over TLS: a client that half-closes after its requests gets every reply.

README, Half-close: a client that ends its sending side (``shutdown(SHUT_WR)``)
still gets every reply, then the server closes. Over TLS that failed (found by
fuzzing, session 32). A TCP FIN under TLS (no close_notify): the sync server handed
the end to OpenSSL, which takes it as a fatal error, queues a ``decode_error`` alert
and refuses every later write, so the replies still owed were lost (every probe) or
followed by that alert; asyncio's TLS layer, under the aio server, closes at the
client's end and drops later writes, so the replies of calls still running were
lost. A close_notify (TLS 1.3 makes it a half-close) was answered by the sync server
only. The client here works on memory buffers: Python's ``SSLSocket`` can neither
send a FIN under TLS nor read after its own close_notify.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _aio_support import aio_server_in_thread
from _driver_helpers import WAIT, request, tls_contexts, wait_for

from jsonrpc_mini import RPCServer, aio

pytestmark = pytest.mark.timeout(60)


class _Client:
    """A TLS client over a plain socket (memory buffers), which can end its sending side either way."""

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext) -> None:
        self.sock = socket.create_connection(address, timeout=WAIT)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname="127.0.0.1")
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
        self._flush()

    def _flush(self) -> None:
        if out := self.outgoing.read():
            self.sock.sendall(out)

    def _fill(self) -> bool:
        data = self.sock.recv(65536)  # (TimeoutError after WAIT: the server never closed)
        if data:
            self.incoming.write(data)
        return bool(data)

    def send(self, data: bytes) -> None:
        """Send ``data`` as one record."""
        self.tls.write(data)
        self._flush()

    def end(self, how: str) -> None:
        """End the sending side: ``fin``, a TCP half-close under TLS, or ``close_notify``."""
        if how == "fin":
            self.sock.shutdown(socket.SHUT_WR)
            return
        with contextlib.suppress(ssl.SSLWantReadError):  # (sent; the server's is not waited for here)
            self.tls.unwrap()
        self._flush()

    def replies(self) -> dict[Any, Any]:
        """Every reply until the server closes, by id; an alert (an SSLError) fails the test."""
        plain = b""
        ended = False
        while self._fill():
            try:
                while not ended and (chunk := self.tls.read(65536)):
                    plain += chunk
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:  # the server's close_notify
                ended = True
        self.sock.close()
        return {reply["id"]: reply.get("result", reply.get("error")) for reply in map(json.loads, plain.splitlines())}


@contextlib.contextmanager
def _serving(
    driver: str, server_ctx: ssl.SSLContext, **options: Any
) -> Iterator[tuple[tuple[str, int], threading.Event, Callable[[], Any]]]:
    """A TLS server of ``driver`` with ``hold`` (waits for the event yielded) and ``echo``.

    Yields its address, the event, and a function giving its one connection (the
    sync server's session, the aio server's protocol) once ``hold`` runs.
    """
    release, started = threading.Event(), threading.Event()

    def hold() -> str:
        started.set()
        release.wait(WAIT)
        return "held"

    def echo(value: int) -> int:
        return value

    def connection() -> Any:
        assert started.wait(WAIT), "hold never ran"
        conns = list(server._sessions if isinstance(server, RPCServer) else server._conns)
        assert len(conns) == 1
        return conns[0]

    server: RPCServer | aio.RPCServer
    try:
        if driver == "sync":
            server = RPCServer(**options)
            server.register_function(hold)
            server.register_function(echo)
            address = server.start("127.0.0.1", 0, ssl=server_ctx)
            assert isinstance(address, tuple)
            try:
                yield address, release, connection
            finally:
                release.set()
                server.shutdown()
        else:
            server = aio.RPCServer(**options)
            server.register_function(hold)
            server.register_function(echo)
            with aio_server_in_thread(server, ssl=server_ctx) as address:
                try:
                    yield address, release, connection
                finally:
                    release.set()
    finally:
        release.set()


def _contexts(version: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts; the client's speaks at most TLS ``version``."""
    server_ctx, client_ctx = tls_contexts()
    if version == "1.2":
        client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return server_ctx, client_ctx


@pytest.mark.parametrize("version", ["1.3", "1.2"])
@pytest.mark.parametrize("how", ["fin", "close_notify"])
@pytest.mark.parametrize("driver", ["sync", "aio"])
def test_a_client_that_half_closes_gets_every_reply(driver: str, how: str, version: str) -> None:
    # The end reaches the server while a call runs (and before the others' replies,
    # maybe): every reply still goes out, then the server closes. The old code lost
    # them all (sync: fin; aio: fin and close_notify).
    server_ctx, client_ctx = _contexts(version)
    with _serving(driver, server_ctx) as (address, release, connection):
        client = _Client(address, client_ctx)
        client.send(request("hold", id_=1) + request("echo", [2], id_=2) + request("echo", [3], id_=3))
        conn = connection()
        client.end(how)
        wait_for(lambda: conn._proto._eof, "the server to read the client's end")
        release.set()
        assert client.replies() == {1: "held", 2: 2, 3: 3}


@pytest.mark.parametrize("driver", ["sync", "aio"])
def test_a_client_that_half_closes_while_the_server_does_not_read_gets_every_reply(driver: str) -> None:
    # At max_concurrent_calls the server does not read; the aio server's TLS layer
    # still reads the records, and the FIN, ahead. It hands them on once a call ends:
    # the old code then closed and dropped the replies of the requests behind the FIN.
    server_ctx, client_ctx = _contexts("1.3")
    with _serving(driver, server_ctx, max_concurrent_calls=1) as (address, release, connection):
        client = _Client(address, client_ctx)
        client.send(request("hold", id_=1))
        conn = connection()
        client.send(request("echo", [2], id_=2) + request("echo", [3], id_=3))
        client.end("fin")
        if driver == "aio":  # (the sync server reads nothing meanwhile: the FIN waits in the socket)
            wait_for(lambda: conn._transport._ssl_protocol._eof_received, "the TLS layer to read the FIN")
        release.set()
        assert client.replies() == {1: "held", 2: 2, 3: 3}
