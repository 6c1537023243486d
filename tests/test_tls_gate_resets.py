"""Both servers' TLS ports when the peer resets the connection at each stage.

Invariant (aio.RPCServer's gate, then the sync RPCServer): a peer that resets
(SO_LINGER 0) before its first byte, right after plain text (before the server
could answer), while the server drains it after the answer, or in the middle of a
TLS handshake leaves nothing behind: its gate is gone, nothing is logged above INFO
(nor a traceback by the library), the loop reports nothing, and the next TLS
client is served; the sync server's threads raise nothing. Health checks and port
scanners do exactly this.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import struct
from collections.abc import Callable
from typing import Any

import pytest
from _aio_support import WAIT, run, until

from jsonrpc_mini import RPCClient, RPCServer, aio
from jsonrpc_mini._refuse import TLS_REQUIRED, refusal_line

pytestmark = [
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning"),
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.timeout(60),
]

ADD = b'{"jsonrpc":"2.0","method":"add","params":[1,2],"id":1}\n'


def reset(sock: socket.socket) -> None:
    """Close ``sock`` with an RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def before_the_first_byte(address: tuple[str, int]) -> None:
    # Connected and reset in one go, before the loop could even accept it.
    sock = socket.create_connection(address, timeout=WAIT)
    reset(sock)


def right_after_plain_text(address: tuple[str, int]) -> None:
    # The RST lands before the server peeks: the answer it then writes meets the reset.
    sock = socket.create_connection(address, timeout=WAIT)
    sock.sendall(ADD)
    reset(sock)


def while_drained(address: tuple[str, int]) -> None:
    # The answer is read; the server is draining what the client sent when the RST comes.
    sock = socket.create_connection(address, timeout=WAIT)
    sock.sendall(ADD)
    line = refusal_line(TLS_REQUIRED)
    got = b""
    while len(got) < len(line):
        chunk = sock.recv(65536)
        assert chunk, "the server closed before its answer"
        got += chunk
    assert got == line
    reset(sock)


def in_the_handshake(address: tuple[str, int]) -> None:
    # A ClientHello sent, the server's reply read, then the RST.
    client = ssl.create_default_context()
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client.wrap_bio(incoming, outgoing)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    sock = socket.create_connection(address, timeout=WAIT)
    sock.sendall(outgoing.read())
    assert sock.recv(65536), "the server closed instead of answering the ClientHello"
    reset(sock)


def loud(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    """The library's records above INFO or with a traceback.

    Only the library's: asyncio in debug mode (``run``) logs the reset it met at
    DEBUG with its traceback, and a slow step under load ("Executing ... took") as
    a warning; errors of the loop itself fail ``run``.
    """
    return [r for r in records if r.name.startswith("jsonrpc_mini") and (r.levelno > logging.INFO or r.exc_info)]


PEERS: dict[str, Callable[[tuple[str, int]], None]] = {
    "before the first byte": before_the_first_byte,
    "right after plain text": right_after_plain_text,
    "while drained": while_drained,
    "in the handshake": in_the_handshake,
}


@pytest.mark.parametrize("peer", PEERS)
def test_a_peer_resetting_leaves_no_gate_no_noise_and_the_port_serving(
    contexts: Any, peer: str, caplog: pytest.LogCaptureFixture
) -> None:
    server_ctx, client_ctx = contexts
    caplog.set_level(logging.DEBUG)

    async def main() -> None:
        srv = aio.RPCServer()
        srv.register_function(lambda a, b: a + b, name="add")
        address = await srv.start("127.0.0.1", 0, ssl=server_ctx)
        assert isinstance(address, tuple)
        try:
            for _ in range(3):
                await asyncio.to_thread(PEERS[peer], address)
            await until(lambda: not srv._gates)
            async with await aio.connect(*address, ssl=client_ctx, timeout=WAIT) as c:
                assert await c.add(1, 2) == 3
            assert srv.connection_count <= 1
        finally:
            await srv.shutdown()

    run(main, allow=("SSL handshake failed",))
    assert not loud(caplog.records), [r.getMessage() for r in loud(caplog.records)]


@pytest.mark.parametrize("peer", PEERS)
def test_the_sync_server_takes_the_same_resets_as_quietly(
    contexts: Any, peer: str, caplog: pytest.LogCaptureFixture
) -> None:
    server_ctx, client_ctx = contexts
    caplog.set_level(logging.DEBUG)
    srv = RPCServer()
    srv.register_function(lambda a, b: a + b, name="add")
    address = srv.start("127.0.0.1", 0, ssl=server_ctx)
    assert isinstance(address, tuple)
    try:
        for _ in range(3):
            PEERS[peer](address)
        with RPCClient(*address, ssl=client_ctx, timeout=WAIT) as c:
            assert c.add(1, 2) == 3
    finally:
        srv.shutdown()
    assert not loud(caplog.records), [r.getMessage() for r in loud(caplog.records)]
