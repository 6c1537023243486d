"""The tutorial's ``s.loop(host, port)`` ended by Ctrl-C (review15 N7).

An exception that ends ``loop()`` shuts the server down before it propagates:
before, the connections already open went on being served after ``loop()`` had
raised, by a server the program believed stopped.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

import pytest
from _driver_helpers import WAIT, LeakCheck, wait_for

from jsonrpc_mini import ConnectionLost, RPCClient, RPCServer

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs signal.pthread_kill (POSIX)"),
]


def test_ctrl_c_in_loop_shuts_the_server_down_before_it_propagates() -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers run on the main thread only")
    srv = RPCServer()
    srv.register_function(lambda a, b: a + b, name="add")
    main = threading.get_ident()
    outcome: dict[str, Any] = {}
    interrupted = threading.Event()

    def client() -> None:
        try:
            wait_for(lambda: srv.address is not None, "loop() to listen")
            address = srv.address
            assert isinstance(address, tuple)
            with RPCClient(*address, timeout=WAIT) as c:
                outcome["first"] = c.add(1, 2)
                signal.pthread_kill(main, signal.SIGUSR1)  # Ctrl-C, as the loop's thread sees it
                if interrupted.wait(WAIT):
                    try:
                        outcome["after"] = c.add(2, 3)
                    except ConnectionLost as exc:
                        outcome["after"] = exc
        except BaseException as exc:  # reported by the main thread
            outcome["error"] = exc
            signal.pthread_kill(main, signal.SIGUSR1)

    def ctrl_c(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGUSR1, ctrl_c)
    thread = threading.Thread(target=client, daemon=True)
    try:
        with LeakCheck():
            thread.start()
            with pytest.raises(KeyboardInterrupt):
                srv.loop("127.0.0.1", 0)
            # When loop() has raised, the server is down: nothing listens, no connection is left.
            assert srv.address is None
            assert srv.connection_count == 0
            interrupted.set()
            thread.join(WAIT)
            assert not thread.is_alive()
    finally:
        signal.signal(signal.SIGUSR1, previous)
        srv.shutdown()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["first"] == 3
    assert isinstance(outcome["after"], ConnectionLost)  # before: 5, served after loop() raised
