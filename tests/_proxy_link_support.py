"""The ends of one LoopbackServer proxy link, for the tests of how the proxy ends a link.

A client socket and a plain "server" socket (the proxy is pointed at it) joined by a
kit's proxy (``linked``), what the tests send and read, and looks at the relay's
internals where nothing the sockets see tells what the proxy is doing. Used by
test_proxy_link_ends.py, test_proxy_reset_met_by_writing.py and test_proxy_write_cut_short.py.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from _driver_helpers import WAIT, wait_for

from jsonrpc_mini import RPCServer
from jsonrpc_mini.testing import DirectionFaults, FaultPlan, LoopbackServer, _eager, _relay

__all__ = [
    "EARLY",
    "FROM",
    "GIVEN",
    "HELLO",
    "HOLD",
    "OTHER",
    "SIDES",
    "gate_client_reads",
    "linked",
    "proxy_threads",
    "read_all",
    "read_until_reset",
    "reader_full",
    "reset",
    "waits",
    "write_fails",
]

HELLO = b"0123456789"
EARLY = b"early"
# A direction holding a chunk (EARLY) this long does not look at its source meanwhile.
HOLD = DirectionFaults(latency=WAIT * 3)
SIDES = ("client", "server")
OTHER = {"client": "server", "server": "client"}
FROM = {"client": "client_to_server", "server": "server_to_client"}  # the direction an end's bytes take
GIVEN = {"client": "c2s", "server": "s2c"}  # the relay's direction carrying an end's bytes


def proxy_threads() -> set[str]:
    """The names of the kit's proxy threads running now (connection 0's: the tests make one)."""
    return {thread.name for thread in threading.enumerate() if thread.name.startswith("jsonrpc_mini-proxy-0-")}


@contextmanager
def linked(plan: FaultPlan | None) -> Iterator[tuple[dict[str, socket.socket], LoopbackServer]]:
    """The client's socket and the server's (``"client"``, ``"server"``) joined by a kit's proxy with ``plan``."""
    server = RPCServer()
    try:
        with socket.create_server(("127.0.0.1", 0)) as listener, LoopbackServer(server, faults=plan) as kit:
            kit.direct_address = listener.getsockname()[:2]  # the proxy relays to the plain socket
            listener.settimeout(WAIT)
            with socket.create_connection(kit.address, timeout=WAIT) as client:
                far, _ = listener.accept()
                with far:
                    far.settimeout(WAIT)
                    running = {"jsonrpc_mini-proxy-0-c2s", "jsonrpc_mini-proxy-0-s2c"}
                    wait_for(lambda: running <= proxy_threads(), "the proxy's relay")
                    yield {"client": client, "server": far}, kit
    finally:
        server.shutdown()


def waits(kit: LoopbackServer, side: str) -> bool:
    """Whether the proxy's direction reading ``side`` holds a chunk or is stalled.

    Nothing the sockets see tells it: this reads the relay's internals.
    """
    if not kit._relays:  # (its threads run before the kit lists it)
        return False
    relay = kit._relays[0]
    source = relay.down if side == "client" else relay.up_in
    assert isinstance(source, _relay.FaultyTransport)
    return source._held is not None or source._in.ended is not None


def reader_full(kit: LoopbackServer, side: str) -> bool:
    """Whether the proxy's reader of ``side``'s socket holds its bound and reads no more (internals too)."""
    if not kit._relays:
        return False
    reader = next(reader for reader in kit._relays[0].readers if reader.thread.name.endswith(f"-{side}-reader"))
    return reader._held >= _eager._HOLD


def reset(sock: socket.socket) -> None:
    """Close ``sock`` with a reset (RST)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def read_all(sock: socket.socket) -> bytes:
    """Everything ``sock`` reads until EOF."""
    got = b""
    while chunk := sock.recv(4096):
        got += chunk
    return got


def write_fails(sock: socket.socket) -> None:
    """After reading EOF from a closed link: one write is answered with a reset, the next fails."""
    sock.send(b"x")  # (taken by the kernel; a closed peer answers it with RST, a half-closed one reads it)
    poller = select.poll()
    poller.register(sock, select.POLLPRI)  # (POLLERR and POLLHUP are always reported)
    events = poller.poll(WAIT * 1000)
    assert events and events[0][1] & (select.POLLERR | select.POLLHUP), "the far end took the write: not closed"
    with pytest.raises(ConnectionError):
        sock.send(b"y")


def read_until_reset(sock: socket.socket) -> bytes:
    """What ``sock`` reads before a reset; fails if it reads EOF instead."""
    got = b""
    with pytest.raises(ConnectionResetError):
        while chunk := sock.recv(4096):
            got += chunk
    return got


def gate_client_reads(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """Hold the relay's reads of the client's end until the first event is set.

    The second is set when a write of the relay fails with a ConnectionError (a reset
    or broken pipe met by writing).
    """
    gate, failed = threading.Event(), threading.Event()
    made: list[_relay.SocketTransport] = []

    real_send = _relay._Relay._send

    class Gated(_relay.SocketTransport):
        def recv(self, max_bytes: int, timeout: float | None) -> bytes:
            if self is made[0]:  # (the client's end: the first the relay makes)
                gate.wait(WAIT)
            return super().recv(max_bytes, timeout)

    def made_one(sock: socket.socket) -> _relay.SocketTransport:
        transport = Gated(sock)
        made.append(transport)
        return transport

    def send(relay: _relay._Relay, sock: socket.socket, data: bytes) -> None:
        try:
            real_send(relay, sock, data)
        except ConnectionError:
            failed.set()
            raise

    monkeypatch.setattr(_relay, "SocketTransport", made_one)
    monkeypatch.setattr(_relay._Relay, "_send", send)
    return gate, failed
