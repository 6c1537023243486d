"""Helpers for the tests of calls made from a "signal handler" on a client its own thread is using."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from _driver_helpers import WAIT

from jsonrpc_mini import RPCClient


def bounded(call: Callable[[], Any], client: RPCClient) -> Any:
    """What ``call()`` returns or raises, run in a thread; fails (closing the client) if it runs over WAIT.

    Closing the client ends a call that waits for ever, so the thread is joined.
    """
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(call())
        except BaseException as exc:  # recorded for the test (RuntimeError too)
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(WAIT)
    if thread.is_alive():
        client.close()
        thread.join(WAIT)
        pytest.fail("a call made from the 'signal handler' waits for ever")
    return out[0]
