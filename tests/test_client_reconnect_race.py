"""Two threads reconnecting one closed sync client at once: one connects, the other gets RPCError.

Both used to pass connect()'s "still connected?" check before either had
connected; the second to finish replaced the first's connection, which stayed
open with nothing to close it (API.md: one client is safe to share between threads).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

import jsonrpc_mini._client as client_module
from jsonrpc_mini import RPCClient, RPCError, RPCServer
from jsonrpc_mini._transport import SocketTransport

pytestmark = pytest.mark.timeout(30)

WAIT = 10.0


def test_two_threads_reconnecting_at_once_leave_one_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    server = RPCServer()
    server.register_function(lambda a, b: a + b, name="add")
    host, port = server.start("127.0.0.1", 0)
    try:
        c = RPCClient(host, port, timeout=WAIT)
        c.close()
        both_connected = threading.Barrier(2, timeout=WAIT)
        opened: list[Any] = []
        real_open = client_module.open_connection

        def open_together(*args: Any, **kwargs: Any) -> Any:
            transport = real_open(*args, **kwargs)
            opened.append(transport)
            both_connected.wait()  # both threads are past the first check, each with a connection
            return transport

        monkeypatch.setattr(client_module, "open_connection", open_together)
        outcomes: list[object] = []

        def reconnect() -> None:
            try:
                outcomes.append(c.connect(host, port))
            except (RPCError, threading.BrokenBarrierError) as exc:  # (broken: one never got there)
                outcomes.append(exc)

        threads = [threading.Thread(target=reconnect) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        try:
            assert sum(outcome is c for outcome in outcomes) == 1, outcomes
            (refused,) = [outcome for outcome in outcomes if outcome is not c]
            assert type(refused) is RPCError and "already connected" in str(refused)
            assert c.add(1, 2) == 3
            assert len(opened) == 2 and all(isinstance(t, SocketTransport) for t in opened)
            assert sorted(t.sock.fileno() == -1 for t in opened) == [False, True]  # the loser's is closed
        finally:
            c.close()
            for transport in opened:  # (a failed run may leave the loser's open)
                transport.close()
    finally:
        server.shutdown()
