"""Bugs the fuzz suite (fuzz/) found, pinned with the minimal example Hypothesis printed."""

from __future__ import annotations

import threading

import pytest

from jsonrpc_mini import RPCServer
from jsonrpc_mini.testing import loopback

pytestmark = pytest.mark.timeout(60)


def test_loopback_runs_a_notification_sent_right_before_the_block_ends() -> None:
    # fuzz/test_fuzz_stateful.py, minimal steps: connect(kind="loopback"), notify(0),
    # disconnect(0) -> "notifications not executed exactly once". Leaving the loopback
    # block closed the server end at once, dropping bytes the client had already sent;
    # over a socket the server reads them first (API.md: a notification is executed even
    # when its sender closes the connection right after).
    ran = threading.Event()
    server = RPCServer()
    server.register_function(ran.set, name="note")
    try:
        with loopback(server) as client:
            client.notify("note")
        assert ran.wait(5.0), "the notification was dropped when the loopback closed"
    finally:
        server.shutdown()
