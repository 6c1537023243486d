"""``shutdown()`` called by a signal handler while ``loop()`` runs on that thread (the main one).

``signal.signal(signal.SIGTERM, lambda *a: s.shutdown())`` then ``s.loop(...)``: the
handler runs on the thread that runs ``loop()``, which cannot go on until it
returns. ``shutdown()`` there used to wait for the loop to close its listener (5 s,
in vain) and then for the calls in flight, inside the handler, and could hang for
good if the signal landed while the loop held the server's lock (accepting a
connection). It now stops the loop and returns at once; ``loop()`` finishes the
shutdown (calls in flight end, their replies go out) before it returns, so no
connection is served after it.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

import pytest
from _driver_helpers import WAIT, LeakCheck, wait_for

from jsonrpc_mini import RPCClient, RPCServer

pytestmark = [
    pytest.mark.timeout(40),
    pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs signal.pthread_kill (POSIX)"),
]


def test_shutdown_from_a_signal_handler_on_the_loops_thread_returns_and_loop_finishes_it() -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers run on the main thread only")
    # A grace longer than the test's timeout: a shutdown() that waited inside the
    # handler for the call below (released only once it returns) fails the test.
    srv = RPCServer(shutdown_grace=120)
    running, release = threading.Event(), threading.Event()

    @srv.register
    def slow() -> str:
        running.set()
        return "done" if release.wait(WAIT * 3) else "not released"

    main = threading.get_ident()
    outcome: dict[str, Any] = {}

    def client() -> None:
        try:
            wait_for(lambda: srv.address is not None, "loop() to listen")
            address = srv.address
            assert isinstance(address, tuple)
            with RPCClient(*address, timeout=WAIT * 3) as c:
                caller = threading.Thread(target=lambda: outcome.setdefault("slow", c.slow()))
                caller.start()
                assert running.wait(WAIT)
                signal.pthread_kill(main, signal.SIGUSR1)  # SIGTERM, as the loop's thread sees it
                caller.join(WAIT * 3)
        except BaseException as exc:  # reported by the main thread
            outcome["error"] = exc
            release.set()
            signal.pthread_kill(main, signal.SIGUSR1)

    def on_signal(signum: int, frame: object) -> None:
        srv.shutdown()
        # Returned while the call still runs: the loop shuts down once this handler returns.
        outcome["in flight at return"] = not release.is_set() and srv.connection_count == 1
        release.set()

    previous = signal.signal(signal.SIGUSR1, on_signal)
    thread = threading.Thread(target=client, daemon=True)
    try:
        with LeakCheck():
            thread.start()
            srv.loop("127.0.0.1", 0)
            # loop() returned with the server down: the call in flight answered, nothing left.
            assert srv.address is None
            assert srv.connection_count == 0
            thread.join(WAIT * 3)
            assert not thread.is_alive()
    finally:
        signal.signal(signal.SIGUSR1, previous)
        release.set()
        srv.shutdown()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["in flight at return"] is True
    assert outcome["slow"] == "done"
