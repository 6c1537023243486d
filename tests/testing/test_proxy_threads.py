"""LoopbackServer's proxy stops every thread it started, also when a connection cannot be relayed.

A relay that could not start all its threads (here: its reader of the server's end,
as when Python cannot start a new thread) left the reader of the client's end
running and the client's connection open, and the exception ended the proxy's
accept thread, so later connections were never relayed. Now the relay stops and
joins what it started and closes both sockets; the proxy logs it and goes on.
(The reader holding its bound when the kit closes: test_proxy_back_pressure.py.)
"""

from __future__ import annotations

import logging
import socket
import threading

import pytest
from _driver_helpers import WAIT

from jsonrpc_mini import RPCServer
from jsonrpc_mini.testing import FaultPlan, LoopbackServer, _relay

pytestmark = pytest.mark.timeout(60)


def test_a_connection_whose_relay_cannot_start_is_closed_and_its_threads_stopped(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_reader = _relay.EagerReader

    def reader(inner: _relay.SocketTransport, name: str) -> _relay.EagerReader:
        if name == "jsonrpc_mini-proxy-0-server-reader":
            raise RuntimeError("can't start new thread")
        return real_reader(inner, name)

    monkeypatch.setattr(_relay, "EagerReader", reader)
    server = RPCServer()
    server.register_function(lambda a, b: a + b, name="add")
    before = set(threading.enumerate())
    with caplog.at_level(logging.ERROR, "jsonrpc_mini.testing"):
        with LoopbackServer(server, faults=FaultPlan(seed=1, max_chunk=64)) as kit:
            with socket.create_connection(kit.address, timeout=WAIT) as first:
                assert first.recv(1) == b""  # closed by the proxy (the old code left it open)
            # The proxy goes on: the next connection (number 1) is relayed.
            assert kit.client().add(1, 2) == 3
        proxy = [t.name for t in threading.enumerate() if t not in before and t.name.startswith("jsonrpc_mini-proxy")]
        assert not proxy, f"threads of the proxy still running after close(): {proxy}"
    assert "cannot relay connection 0" in caplog.text
