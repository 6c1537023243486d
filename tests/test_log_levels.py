"""README, Logging: each event is logged at the level its table gives, by both servers.

An operator sets the "jsonrpc_mini" logger's level from that table: a handler's
failure is an ERROR (with its traceback), a reply that could not be encoded a
WARNING, a connection closed by ``idle_timeout`` only INFO. A line moving to
another level would hide failures, or fill a log kept at WARNING with routine
closes. (What the lines say is tested beside the features: test_log_peers.py.)
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from _driver_helpers import WAIT

from jsonrpc_mini import InternalError, RPCClient, RPCServer, aio
from jsonrpc_mini.testing import LoopbackServer

pytestmark = pytest.mark.timeout(60)


def _levels(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.levelname for r in caplog.records if r.name == "jsonrpc_mini" and text in r.getMessage()]


def _boom() -> None:
    raise ValueError("bad")


@pytest.mark.parametrize("kind", ["sync", "aio"])
def test_each_event_is_logged_at_the_tables_level(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="jsonrpc_mini")
    server: Any = RPCServer(idle_timeout=0.2) if kind == "sync" else aio.RPCServer(idle_timeout=0.2)
    server.register_function(_boom, name="boom")
    server.register_function(lambda: float("nan"), name="nan")
    with LoopbackServer(server) as kit, RPCClient(*kit.direct_address, timeout=WAIT) as client:
        for method in ("boom", "nan"):
            with pytest.raises(InternalError):
                client.call(method)
        deadline = time.monotonic() + WAIT
        while not _levels(caplog, "idle for idle_timeout") and time.monotonic() < deadline:
            time.sleep(0.01)
    (failed,) = [r for r in caplog.records if "method 'boom' raised ValueError" in r.getMessage()]
    assert failed.levelname == "ERROR"
    assert failed.exc_info is not None and failed.exc_info[0] is ValueError  # its traceback
    assert _levels(caplog, "could not be encoded as JSON") == ["WARNING"]
    assert _levels(caplog, "idle for idle_timeout; closing") == ["INFO"]
