"""Bugs the fuzz suite (fuzz/) found, pinned with the minimal example Hypothesis printed."""

from __future__ import annotations

import json
import threading

import pytest
from hypothesis import find, given
from hypothesis import strategies as st

from jsonrpc_mini import RPCServer
from jsonrpc_mini.testing import _loopback, loopback
from jsonrpc_mini.testing import strategies as rst
from jsonrpc_mini.testing._json_strategies import _copies_for, _large_string
from jsonrpc_mini.testing.strategies import _awkward_cuts

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
    # 682 bytes (the copy count came from repr() and rounded down); and then a dict of
    # nulls for a 20000-byte target at 40005 bytes (the keys were not counted).
    for item in (int("1" + "4" * 399), None):
        for target in (1000, 1024, 5000, 20_000):
            as_list = len(json.dumps([item] * _copies_for(target, item), separators=(",", ":")))
            keyed = {f"k{i}": item for i in range(_copies_for(target, item, keyed=True))}
            as_dict = len(json.dumps(keyed, separators=(",", ":")))
            slack = len(json.dumps(item)) + 12  # at most one copy too many
            assert target <= as_list <= target + slack
            assert target <= as_dict <= target + slack


def test_large_strings_count_escapes_in_their_size() -> None:
    # The deep run again: a string of "\x1f" for a 20000-byte target was 40004 bytes of
    # JSON (each control character is 1 byte of UTF-8 but 6 of JSON).
    sizes = st.just(20_000)

    @given(_large_string(sizes))
    def check(text: str) -> None:
        assert 20_000 - 50 <= len(json.dumps(text, ensure_ascii=False).encode()) <= 20_000

    check()
    escaped = find(_large_string(sizes), lambda text: text[0] == "\x1f")  # the minimal example's kind
    assert 20_000 - 50 <= len(json.dumps(escaped, ensure_ascii=False).encode()) <= 20_000


def test_loopback_exit_still_forces_a_stuck_server_side_closed(monkeypatch, caplog) -> None:
    # The other side of the fix above: when the server side does not finish by itself
    # (a handler is still running), leaving the block closes it after a bounded wait.
    monkeypatch.setattr(_loopback, "_JOIN", 0.2)
    release, started = threading.Event(), threading.Event()

    def block() -> None:
        started.set()
        release.wait(10.0)

    server = RPCServer()
    server.register_function(block)
    try:
        with caplog.at_level("WARNING", logger="jsonrpc_mini.testing"), loopback(server) as client:
            client.notify("block")
            assert started.wait(5.0)
        assert "still running" in caplog.text
    finally:
        release.set()
        server.shutdown()
