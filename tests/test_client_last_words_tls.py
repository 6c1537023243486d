"""The sync client hears a refusing server's last words over TLS too.

Invariant: when the server answers a request it refuses (too large, too many
connections) and closes while the request is still going out, the call raises the
server's error over TLS as over TCP, not ConnectionLost; reading those words never
blocks (nothing there: None at once) and leaves the socket's timeout as it was.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from _aio_support import aio_server_in_thread
from _driver_helpers import WAIT, serving, tls_contexts

from jsonrpc_mini import ConnectionLost, InvalidRequest, RPCClient, RPCServer, ServerError, aio
from jsonrpc_mini._transport import SocketTransport, feed_ready

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    return tls_contexts()


def echo(x: Any) -> Any:
    return x


@contextlib.contextmanager
def tls_server(kind: str, server_ctx: ssl.SSLContext, **options: Any) -> Iterator[tuple[str, int]]:
    """A sync or aio server with ``echo`` on TLS, port 0, stopped afterwards."""
    if kind == "sync":
        srv = RPCServer(**options)
        srv.register_function(echo)
        with serving(srv, ssl=server_ctx) as address:
            yield address
    else:
        asrv = aio.RPCServer(**options)
        asrv.register_function(echo)
        with aio_server_in_thread(asrv, ssl=server_ctx) as address:
            yield address


@pytest.mark.parametrize("kind", ["sync", "aio"])
def test_a_refused_large_request_over_tls_raises_the_servers_answer(kind: str, contexts: Any) -> None:
    server_ctx, client_ctx = contexts
    with tls_server(kind, server_ctx, max_message_size=100_000) as address:
        with RPCClient(*address, ssl=client_ctx, timeout=WAIT) as c:
            with pytest.raises(InvalidRequest, match="message too large"):
                c.echo("x" * 20_000_000)
            with pytest.raises(ConnectionLost):
                c.echo("small")
        with RPCClient(*address, ssl=client_ctx, timeout=WAIT) as again:
            assert again.echo("small") == "small"  # the socket's timeout and the server are fine


def test_a_refused_large_notification_over_tls_says_what_the_server_said(contexts: Any) -> None:
    server_ctx, client_ctx = contexts
    said = r"while sending: .*\(the server said: .*message too large"
    with (
        tls_server("sync", server_ctx, max_message_size=100_000) as address,
        RPCClient(*address, ssl=client_ctx, timeout=WAIT) as c,
        pytest.raises(ConnectionLost, match=said),
    ):
        c.notify("echo", "x" * 20_000_000)


def test_a_large_request_to_a_full_aio_tls_server_gets_too_many_connections(contexts: Any) -> None:
    # (The sync server refuses a connection beyond max_connections before its TLS
    # handshake, in plain text: the TLS client's connect fails instead.)
    server_ctx, client_ctx = contexts
    with (
        tls_server("aio", server_ctx, max_connections=1) as address,
        RPCClient(*address, ssl=client_ctx, timeout=WAIT) as first,
    ):
        assert first.echo(1) == 1
        with (
            RPCClient(*address, ssl=client_ctx, timeout=WAIT) as second,
            pytest.raises(ServerError, match="too many connections"),
        ):
            second.echo("x" * 20_000_000)
        assert first.echo(2) == 2


@pytest.fixture
def tls_pair(contexts: Any) -> Iterator[tuple[SocketTransport, ssl.SSLSocket]]:
    """(client transport, server-side SSLSocket) joined over 127.0.0.1."""
    server_ctx, client_ctx = contexts
    with socket.create_server(("127.0.0.1", 0)) as listener:
        accepted: list[ssl.SSLSocket] = []

        def accept() -> None:
            conn, _ = listener.accept()
            conn.settimeout(WAIT)
            accepted.append(server_ctx.wrap_socket(conn, server_side=True))

        thread = threading.Thread(target=accept)
        thread.start()
        raw = socket.create_connection(listener.getsockname(), timeout=WAIT)
        tls = client_ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        thread.join(WAIT)
        transport = SocketTransport(tls, send_timeout=7.5)
        try:
            yield transport, accepted[0]
        finally:
            transport.close()
            accepted[0].close()


def test_recv_ready_alone_reads_tls_without_blocking(tls_pair: Any) -> None:
    transport, peer = tls_pair
    started = time.monotonic()
    assert transport.recv_ready_alone(1024) is None  # nothing there: no wait
    assert time.monotonic() - started < WAIT
    assert transport.recv_ready(1024) is None  # the shared-use read never touches TLS
    peer.sendall(b"last words\n")
    got = b""
    deadline = time.monotonic() + WAIT
    while not got.endswith(b"\n") and time.monotonic() < deadline:
        got += transport.recv_ready_alone(1024) or b""
        time.sleep(0.001)
    assert got == b"last words\n"
    assert transport.sock.gettimeout() == 7.5  # the send timeout is back in force
    peer.setblocking(False)
    with contextlib.suppress(ssl.SSLWantReadError):
        peer.unwrap()  # sends close_notify (and would wait for the reply): end of stream
    deadline = time.monotonic() + WAIT
    end = None
    while end is None and time.monotonic() < deadline:
        end = transport.recv_ready_alone(1024)
        time.sleep(0.001)
    assert end == b""


def test_feed_ready_alone_takes_what_a_tls_peer_sent_before_closing(tls_pair: Any) -> None:
    transport, peer = tls_pair
    peer.sendall(b'{"jsonrpc":"2.0","error":{"code":-32600,"message":"x"},"id":null}\n')
    peer.close()  # no close_notify: the TCP connection just ends
    got: list[bytes] = []
    deadline = time.monotonic() + WAIT
    while b"".join(got).count(b"\n") < 1 and time.monotonic() < deadline:
        feed_ready(transport, got.append, 1 << 20, alone=True)
        time.sleep(0.001)
    assert b"".join(got).startswith(b'{"jsonrpc":"2.0","error"')
    got.clear()
    assert feed_ready(transport, got.append, 1 << 20) is None and not got  # shared use: TLS untouched
