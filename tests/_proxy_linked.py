"""A client socket and a plain "server" socket joined by a ``LoopbackServer``'s proxy, its reads watched.

For the close_delay tests of the blocking kits: the proxy's ``FaultyTransport`` is
replaced by a subclass that notes in :data:`HOLDING` (by thread name, e.g.
``jsonrpc_mini-proxy-0-c2s``) when one of its reads timed out holding a close.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from _driver_helpers import WAIT

from jsonrpc_mini import RPCServer
from jsonrpc_mini.testing import FaultPlan, LoopbackServer, _proxy, _relay

HOLDING: dict[str, threading.Event] = {}  # by thread name: a read of it timed out holding a close


def note_holding() -> None:
    """Record that the calling relay thread's read timed out holding a close."""
    HOLDING.setdefault(threading.current_thread().name, threading.Event()).set()


@contextmanager
def linked(
    monkeypatch: pytest.MonkeyPatch,
    plan: FaultPlan,
    watched: type[_relay.FaultyTransport],
    close_wait: float | None = None,
) -> Iterator[tuple[dict[str, socket.socket], LoopbackServer]]:
    """The two ends (``"client"``, ``"server"``) and the kit; the proxy reads through ``watched``.

    ``close_wait``: the kit's ``_CLOSE_WAIT`` while linked (None: as it is).
    """
    HOLDING.clear()
    monkeypatch.setattr(_relay, "FaultyTransport", watched)
    monkeypatch.setattr(_relay, "_POLL", 0.01)  # (how often a direction's read times out)
    if close_wait is not None:
        monkeypatch.setattr(_proxy, "_CLOSE_WAIT", close_wait)
    server = RPCServer()
    try:
        with socket.create_server(("127.0.0.1", 0)) as listener, LoopbackServer(server, faults=plan) as kit:
            kit.direct_address = listener.getsockname()[:2]
            listener.settimeout(WAIT)
            with socket.create_connection(kit.address, timeout=WAIT) as client:
                far, _ = listener.accept()
                with far:
                    far.settimeout(WAIT)
                    yield {"client": client, "server": far}, kit
    finally:
        server.shutdown()
