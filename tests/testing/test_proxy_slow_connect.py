"""LoopbackServer's client() and close() do not wait for the proxy's connect to the server.

The proxy connects to the server for each connection it accepts (up to 5 s where
the server's backlog is full). It did that holding the kit's lock, which client()
and close() take: client() waited for the connect, and close() did before it began;
close() then joined the accept thread, still connecting, at most 5 s. Now the
connect is made outside the lock, and close() ends it (``_upstream``: it waits for
the kit's wake-up socket too); a relay made after close() began is closed by the
proxy itself, not left running. The connect is held here at a gate (a full backlog,
without the wait), and once at a real full backlog.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from _driver_helpers import WAIT, wait_for

from jsonrpc_mini import RPCServer
from jsonrpc_mini.testing import LoopbackServer, _relay, _upstream

pytestmark = pytest.mark.timeout(90)


class Gate:
    """Holds the proxy's connects to the server until :meth:`open`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered = threading.Event()  # a connect reached the gate
        self.left = threading.Event()  # a connect went through it (opened, or its wait ran out)
        self._open = threading.Event()
        real = _relay.connect

        def connect(upstream: tuple[str, int], timeout: float, wake: socket.socket | None) -> socket.socket:
            self.entered.set()
            self._open.wait(WAIT * 3)  # (longer than any wait below: held until opened)
            self.left.set()
            return real(upstream, timeout, wake)

        monkeypatch.setattr(_relay, "connect", connect)

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


def test_close_ends_a_connect_the_full_backlog_holds(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A real full backlog (listen(0) and one connection queued: the proxy's SYNs are
    # dropped), its connect's timeout made longer than close()'s wait for the accept
    # thread (5 s): close() ends the connect, joins the thread, logs no failed connect
    # and closes the client's connection (the old code waited 5 s, left the thread
    # connecting, and later logged "cannot reach the server" and reset the client).
    entered = threading.Event()
    real = _relay.connect

    def connect(upstream: tuple[str, int], timeout: float, wake: socket.socket | None) -> socket.socket:
        entered.set()
        return real(upstream, timeout, wake)

    monkeypatch.setattr(_relay, "connect", connect)
    monkeypatch.setattr(_relay, "_JOIN", WAIT * 3)
    server = RPCServer()
    try:
        with (
            caplog.at_level(logging.WARNING, "jsonrpc_mini.testing"),
            socket.create_server(("127.0.0.1", 0), backlog=0) as full,
            socket.create_connection(full.getsockname()[:2], timeout=WAIT),  # (queued: the backlog is full)
            LoopbackServer(server) as kit,
        ):
            kit.direct_address = full.getsockname()[:2]
            with socket.create_connection(kit.address, timeout=WAIT) as raw:
                assert entered.wait(WAIT), "the proxy connecting to the server"
                kit.close()
                assert kit._accepter is not None
                assert not kit._accepter.is_alive()
                assert raw.recv(100) == b""
        assert not [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    finally:
        server.shutdown()


@pytest.mark.parametrize("woken", [False, True], ids=["times out", "woken"])
def test_the_proxys_connect_to_a_full_backlog_times_out_or_is_woken(woken: bool) -> None:
    # As socket.create_connection where the time runs out (TimeoutError "timed out"),
    # and Woken, not a failed connect, once the kit's wake-up socket is readable.
    wake, waker = socket.socketpair()
    with (
        wake,
        waker,
        socket.create_server(("127.0.0.1", 0), backlog=0) as full,
        socket.create_connection(full.getsockname()[:2], timeout=WAIT),  # (queued: the backlog is full)
    ):
        if woken:
            waker.send(b"x")
        with pytest.raises(_upstream.Woken if woken else TimeoutError):
            _upstream.connect(full.getsockname()[:2], 0.2 if not woken else WAIT * 3, wake).close()
