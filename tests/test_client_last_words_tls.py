"""The sync client hears a refusing server's last words over TLS too.

Invariant: when the server answers a request it refuses (too large, too many
connections) and closes while the request is still going out, the call raises the
server's error over TLS as over TCP, not ConnectionLost. (Reading them without
blocking, TLS included, is test_client_tls_transport.py's.)
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
from _aio_support import aio_server_in_thread
from _driver_helpers import WAIT, serving

from jsonrpc_mini import ConnectionLost, InvalidRequest, RPCClient, RPCServer, ServerError, aio

pytestmark = pytest.mark.timeout(60)


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
