"""A sync client's call after a quiet spell quotes what the server said before it closed.

A lone call made after a quiet spell first looks whether the server closed the
connection meanwhile (a peek at the socket), and if so is refused before sending:
"connection closed by the server". But a server's last words (an error with id
null) that arrived with the previous reply and were not yet taken in stayed where
they were: over TLS a second record read with the reply's waits in the TLS layer
(one record is decrypted per read), and the peek, which looks at the socket under
it, found only the end. The error then said nothing of why (Check32's P4). What has
arrived is now taken in first: "... (the server said: ...)".
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from _driver_helpers import WAIT

from jsonrpc_mini import ConnectionLost, RPCClient

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not hasattr(socket, "TCP_CORK"), reason="needs TCP_CORK (Linux)"),
]

LAST = b'{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Server error: going away"}}\n'
QUIET = 0.1  # past the client's 50 ms: its next lone call looks first


@contextlib.contextmanager
def answering_then_leaving(server_ctx: ssl.SSLContext | None) -> Iterator[tuple[Any, threading.Event]]:
    """A server that answers one call, then says LAST and closes (no close_notify), on 127.0.0.1.

    The reply and LAST go out as two writes (over TLS, two records) in one TCP
    segment (TCP_CORK), so the client reads both at once.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(WAIT)
    closed = threading.Event()

    def serve() -> None:
        with contextlib.suppress(OSError):
            raw, _ = listener.accept()
            raw.settimeout(WAIT)
            # (wrap_socket takes the descriptor over: raw is then detached)
            conn = raw if server_ctx is None else server_ctx.wrap_socket(raw, server_side=True)
            with conn:
                data = b""
                while b"\n" not in data:
                    data += conn.recv(4096)
                request = json.loads(data.split(b"\n")[0])
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
                conn.sendall(b'{"jsonrpc":"2.0","id":%d,"result":3}\n' % request["id"])
                conn.sendall(LAST)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
                socket.socket.shutdown(conn, socket.SHUT_WR)  # (the plain socket's: no close_notify)
                closed.set()
                while socket.socket.recv(conn, 4096):  # until the client closes (its end: no reset)
                    pass

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield listener.getsockname(), closed
    finally:
        listener.close()
        thread.join(WAIT)


@pytest.mark.parametrize("tls", [False, True])
def test_the_servers_last_words_are_quoted_by_the_quiet_look(tls: bool, contexts: Any) -> None:
    server_ctx, client_ctx = contexts if tls else (None, None)
    with (
        answering_then_leaving(server_ctx) as (address, closed),
        RPCClient(*address[:2], ssl=client_ctx, timeout=WAIT) as client,
    ):
        assert client.add(1, 2) == 3
        assert closed.wait(WAIT)
        time.sleep(QUIET)  # (a quiet spell: the end has arrived too)
        with pytest.raises(ConnectionLost) as info:
            client.add(5, 5)
    assert str(info.value) == "add: connection closed by the server (the server said: Server error: going away)"
    assert info.value.request_sent is False
