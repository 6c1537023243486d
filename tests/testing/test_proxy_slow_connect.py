"""LoopbackServer's client() and close() do not wait at the kit's lock for the proxy's connect to the server.

The proxy connects to the server for each connection it accepts (up to 5 s where
the server's backlog is full). It did that holding the kit's lock, which client()
and close() take: client() waited for the connect, and close() did before it began
(then it joins the accept thread, at most 5 s). Now the connect is made outside
the lock; a relay made after close() began is closed by the proxy itself, not left
running. The connect is held here at a gate (a full backlog, without the wait).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from _driver_helpers import WAIT, wait_for

from jsonrpc_mini import RPCServer
from jsonrpc_mini.testing import LoopbackServer, _relay

pytestmark = pytest.mark.timeout(90)

ACCEPTER = "jsonrpc_mini-proxy-accept"


class Gate:
    """Holds the proxy's connects to the server (its accept thread's only) until :meth:`open`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered = threading.Event()  # a connect reached the gate
        self.left = threading.Event()  # a connect went through it (opened, or its wait ran out)
        self._open = threading.Event()
        real = socket.create_connection

        def connect(address: tuple[str, int], timeout: float | None = None) -> socket.socket:
            if threading.current_thread().name == ACCEPTER:
                self.entered.set()
                self._open.wait(WAIT * 3)  # (longer than any wait below: held until opened)
                self.left.set()
            return real(address, timeout)

        monkeypatch.setattr(_relay.socket, "create_connection", connect)

    def open(self) -> None:
        """Let the connects through."""
        self._open.set()


@contextmanager
def connecting(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LoopbackServer, socket.socket, Gate]]:
    """The kit, a raw client connection and the gate, the proxy's connect for that client held at the gate."""
    gate = Gate(monkeypatch)
    server = RPCServer()
    server.register_function(lambda a, b: a + b, name="add")
    try:
        with LoopbackServer(server) as kit, socket.create_connection(kit.address, timeout=WAIT) as raw:
            try:
                assert gate.entered.wait(WAIT), "the proxy connecting to the server"
                yield kit, raw, gate
            finally:
                gate.open()
    finally:
        server.shutdown()


def test_client_does_not_wait_for_the_proxys_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    with connecting(monkeypatch) as (kit, _, gate):
        client = kit.client()  # (its own connection is relayed once the gate opens)
        assert not gate.left.is_set()  # (the old code: client() returned only after the connect)
        gate.open()
        assert client.add(1, 2) == 3


def test_close_begins_during_the_connect_and_closes_the_relay_made_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    before = set(threading.enumerate())
    with connecting(monkeypatch) as (kit, raw, gate):
        closer = threading.Thread(target=kit.close, name="closing the kit")
        closer.start()
        try:
            # (the old code: close() waited at the lock for the connect)
            wait_for(lambda: kit._closed, "close() to begin while the proxy connects")
            assert not gate.left.is_set()
        finally:
            gate.open()
            closer.join(WAIT * 2)
        assert not closer.is_alive()
        # The relay made after close() began is closed: the client reads EOF, its threads end.
        assert raw.recv(100) == b""
        wait_for(
            lambda: (
                not [t for t in threading.enumerate() if t not in before and t.name.startswith("jsonrpc_mini-proxy")]
            ),
            "the proxy's threads to end",
        )
