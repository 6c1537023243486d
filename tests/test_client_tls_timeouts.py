"""The sync client's timeout bounds TLS reads and sends as it bounds plain ones.

Over TLS, a readable socket may hold only a session ticket (every TLS 1.3
connection's first call) or part of a record; the SSL read then waits for the
rest. And an SSLSocket's send cannot be bounded per call. Each case below waited
until the server moved (for ever, against a server that never does) while the
client's TLS was an SSLSocket; it is now OpenSSL over memory buffers above a plain
socket, whose reads and sends keep their deadlines (jsonrpc_mini/_tls_transport.py).
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from _driver_helpers import WAIT, start_thread, tls_contexts

from jsonrpc_mini import RPCClient, RPCServer, RPCTimeout

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    return tls_contexts()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    lst = socket.create_server(("127.0.0.1", 0))
    yield lst
    lst.close()


def test_the_first_call_over_tls_times_out_while_the_handler_runs(contexts: Any) -> None:
    server_ctx, client_ctx = contexts
    gate = threading.Event()
    server = RPCServer(shutdown_grace=WAIT)
    server.register_function(lambda: gate.wait(WAIT), name="held")
    host, port = server.start("127.0.0.1", 0, ssl=server_ctx)
    try:
        with RPCClient(host, port, ssl=client_ctx, timeout=0.3) as client:
            # The server's TLS 1.3 session tickets make the socket readable at once.
            with pytest.raises(RPCTimeout, match=r"no reply within 0\.3 s"):
                client.held()
            assert not gate.is_set()  # the handler still runs: the timeout ended the call
    finally:
        gate.set()
        server.shutdown()


class _TlsPeer:
    """A TLS server over a raw socket (MemoryBIO), so a test chooses how its records leave."""

    def __init__(self, raw: socket.socket, ctx: ssl.SSLContext) -> None:
        self.raw = raw
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.incoming, self.outgoing, server_side=True)
        raw.settimeout(WAIT)
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
                self.incoming.write(raw.recv(65536))
        self.flush()
        self.buffer = b""

    def flush(self) -> None:
        if data := self.outgoing.read():
            self.raw.sendall(data)

    def request(self) -> Any:
        while b"\n" not in self.buffer:
            try:
                self.buffer += self.tls.read(65536)
            except ssl.SSLWantReadError:
                self.flush()
                self.incoming.write(self.raw.recv(65536))
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def reply_record(self, request: Any) -> bytes:
        self.tls.write(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": "done"}).encode() + b"\n")
        return self.outgoing.read()


def test_a_reply_record_cut_short_times_out_and_the_connection_reads_on(contexts: Any, listener: Any) -> None:
    server_ctx, client_ctx = contexts
    release = threading.Event()
    outcome: list[Any] = []

    def serve() -> None:
        raw, _ = listener.accept()
        with raw:
            peer = _TlsPeer(raw, server_ctx)
            raw.sendall(peer.reply_record(peer.request()))  # the first call: whole
            record = peer.reply_record(peer.request())
            raw.sendall(record[: len(record) // 2])  # half a record, then nothing until released
            release.wait(WAIT)
            raw.sendall(record[len(record) // 2 :])
            outcome.append(peer.request())  # the client goes on on this connection
            raw.sendall(peer.reply_record(outcome[0]))

    thread = start_thread(serve)
    try:
        with RPCClient(*listener.getsockname()[:2], ssl=client_ctx, timeout=0.3) as client:
            assert client.first() == "done"
            with pytest.raises(RPCTimeout, match=r"no reply within 0\.3 s"):
                client.second()
            assert not release.is_set()
            release.set()
            assert client.third() == "done"  # the late reply is dropped; the record was not lost
    finally:
        release.set()
        thread.join(WAIT)
    assert not thread.is_alive()
    assert outcome[0]["method"] == "third"


def test_a_send_to_a_tls_server_that_reads_nothing_times_out(contexts: Any, listener: Any) -> None:
    server_ctx, client_ctx = contexts
    held: list[socket.socket] = []
    release = threading.Event()

    def accept() -> None:
        raw, _ = listener.accept()
        held.append(server_ctx.wrap_socket(raw, server_side=True))  # handshakes, then reads nothing
        release.wait(WAIT)
        held[0].close()

    thread = start_thread(accept)
    try:
        with RPCClient(*listener.getsockname()[:2], ssl=client_ctx, timeout=0.5) as client:
            with pytest.raises(RPCTimeout, match=r"could not send within 0\.5 s; the connection is closed"):
                client.echo("x" * 20_000_000)  # far more than the socket buffers hold
            assert not release.is_set()  # the server side is still open: the timeout ended it
    finally:
        release.set()
        thread.join(WAIT)
    assert not thread.is_alive()
