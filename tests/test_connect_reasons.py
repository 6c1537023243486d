"""A failed connect names a reason, even where the exception has no words of its own.

asyncio reports a server that closes during the TLS handshake as a bare
``ConnectionResetError()``: the aio client said "cannot connect to HOST:PORT: "
with nothing after it. It now says the server closed the connection during the
TLS handshake, and any other OSError without words is named by its type.
"""

from __future__ import annotations

import socket
import ssl
import threading

import pytest
from _aio_support import run

from jsonrpc_mini import ConnectionLost, aio
from jsonrpc_mini._connect import connect_errors

pytestmark = pytest.mark.timeout(60)

WAIT = 10.0


def test_an_oserror_without_words_is_named_by_its_type() -> None:
    with pytest.raises(ConnectionLost) as info, connect_errors("127.0.0.1:9", WAIT):
        raise ConnectionResetError()
    assert info.value.message == "cannot connect to 127.0.0.1:9: ConnectionResetError"
    with pytest.raises(ConnectionLost) as info, connect_errors("127.0.0.1:9", WAIT):
        raise ConnectionRefusedError(111, "Connection refused")
    assert info.value.message == "cannot connect to 127.0.0.1:9: [Errno 111] Connection refused"


def test_aio_client_says_the_server_closed_during_the_tls_handshake() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(WAIT)
    host, port = listener.getsockname()[:2]
    hello: list[bytes] = []

    def close_after_the_client_hello() -> None:  # a server that gives up on TLS (a clean close)
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(WAIT)
            hello.append(conn.recv(65536))

    thread = threading.Thread(target=close_after_the_client_hello, daemon=True)
    thread.start()

    async def main() -> ConnectionLost:
        with pytest.raises(ConnectionLost) as info:
            await aio.connect(host, port, ssl=ssl.create_default_context(), timeout=WAIT)
        return info.value

    try:
        error = run(main)
    finally:
        listener.close()
        thread.join(WAIT)
    assert not thread.is_alive()
    assert hello and hello[0][:1] == b"\x16"  # the handshake had begun: a TLS record
    closed = "the server closed the connection during the TLS handshake"
    assert error.message == f"cannot connect to {host}:{port}: {closed}"
    assert isinstance(error.__cause__, ConnectionResetError)
