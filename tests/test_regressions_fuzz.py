"""Bugs the fuzz suite (fuzz/) found, pinned with the minimal example Hypothesis printed."""

from __future__ import annotations

import json
import threading

import pytest
from hypothesis import given

from jsonrpc_mini import RPCServer
from jsonrpc_mini.testing import loopback
from jsonrpc_mini.testing import strategies as rst
from jsonrpc_mini.testing.strategies import _awkward_cuts, _copies_for

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


def test_chunkings_never_yield_an_empty_chunk_after_a_final_backslash() -> None:
    # fuzz/test_fuzz_strategies.py::test_chunkings_join_back (deep profile), minimal
    # example data_bytes=b"\x00\\" -> chunks [b"\x00\\", b""]: the "after a backslash"
    # cut point matched at the very end of the data.
    assert _awkward_cuts(b"\x00\\") == []
    assert _awkward_cuts(b"ab\r\n\r\n") == [3, 5]  # inside CRLF; the end is no cut point

    @given(rst.chunkings(b"\x00\\"))
    def check(chunks: list[bytes]) -> None:
        assert all(chunks) and b"".join(chunks) == b"\x00\\"

    check()


def test_large_values_reach_their_size_with_big_integers() -> None:
    # fuzz/test_fuzz_strategies.py::test_depth_and_size_bounds (deep profile), minimal
    # example: a dict of copies of a 400-digit integer for a 1000-byte target came out at
    # 682 bytes (the copy count came from repr() and rounded down).
    big = int("1" + "4" * 399)
    for target in (1000, 1024, 5000):
        count = _copies_for(target, big)
        assert len(json.dumps([big] * count)) >= target
        assert len(json.dumps({f"k{i}": big for i in range(count)})) >= target
