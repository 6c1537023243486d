"""A sync server's shutdown() called again on the thread already inside it (a signal handler) returns.

A handler ``lambda *a: s.shutdown()`` runs on the main thread whenever the signal
comes: also while that thread is inside shutdown() already (loop() shuts down after
the first signal; a second SIGTERM or Ctrl-C comes meanwhile). There the inner
call waited for the server's or a connection's lock its own thread held (for
ever), and a burst of signals nested one shutdown() in the next until
RecursionError. The outer call finishes the shutdown; the inner one returns.
"""

from __future__ import annotations

import threading
from types import TracebackType

import pytest
from _driver_helpers import WAIT

from jsonrpc_mini import RPCClient, RPCServer

pytestmark = pytest.mark.timeout(60)


class _InterruptedLock:
    """The server's lock, with a "signal handler" calling shutdown() once just after it is taken."""

    def __init__(self, server: RPCServer, lock: threading.Lock) -> None:
        self.server = server
        self.lock = lock
        self.inner: list[str] = []

    def __enter__(self) -> bool:
        self.lock.acquire()
        if not self.inner and threading.current_thread().name == "outer-shutdown":
            self.inner.append("entered")
            self.server.shutdown()  # the handler, on the thread holding the lock
            self.inner.append("returned")
        return True

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.lock.release()


def test_shutdown_inside_shutdown_on_one_thread_returns_and_the_outer_one_finishes() -> None:
    server = RPCServer()
    server.register_function(lambda a, b: a + b, name="add")
    host, port = server.start("127.0.0.1", 0)
    real = server._lock
    interrupted = _InterruptedLock(server, real)
    try:
        with RPCClient(host, port, timeout=WAIT) as client:
            assert client.add(1, 2) == 3
            server._lock = interrupted  # type: ignore[assignment]
            outer = threading.Thread(target=server.shutdown, name="outer-shutdown", daemon=True)
            outer.start()
            outer.join(WAIT)
            assert not outer.is_alive(), "the inner shutdown() waited for the lock its own thread held"
            assert interrupted.inner == ["entered", "returned"]
            assert server.address is None  # the outer call did the shutdown
            assert server.connection_count == 0
    finally:
        server._lock = real  # type: ignore[assignment]
        if real.acquire(timeout=WAIT):  # (not held for ever by a stuck outer call: the old code's failure)
            real.release()
            server.shutdown()
