"""Bugs the fuzz suite (fuzz/) found, pinned with the minimal example Hypothesis printed."""

from __future__ import annotations

import asyncio
import json
import socket
import threading

import pytest
from _aio_support import aio_server_in_thread
from _driver_helpers import tls_contexts
from hypothesis import find, given
from hypothesis import strategies as st

from jsonrpc_mini import RPCServer, aio
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


@pytest.mark.parametrize("driver", ["sync", "aio"])
def test_a_tls_client_that_half_closes_gets_what_a_tcp_one_gets(driver: str) -> None:
    # fuzz/test_fuzz_server_streams.py[tls] (session 32): a call and a message over
    # max_message_size in one piece, then the client's TCP FIN under TLS (no
    # close_notify). Over TCP both servers answer both; over TLS the aio server (its
    # handler awaits) answered nothing (2 runs of 2 on the old code). The sync server
    # answered this one (its reply went before it read the FIN) and lost others: the
    # deterministic tests of both are tests/test_tls_half_close.py.
    async def aecho(value: int) -> int:
        await asyncio.sleep(0)
        return value

    def echo(value: int) -> int:
        return value

    call = b'{"jsonrpc":"2.0","method":"echo","params":[1],"id":1}'
    big = b'{"jsonrpc":"2.0","method":"echo","params":["' + b"x" * 16001 + b'"],"id":0}'
    stream = b"".join(b"Content-Length: %d\r\n\r\n%s" % (len(m), m) for m in (call, big))
    server_ctx, client_ctx = tls_contexts()

    def answer(address: tuple[str, int], tls: bool) -> bytes:
        with socket.create_connection(address, timeout=10) as raw:
            sock = client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") if tls else raw
            sock.sendall(stream)
            socket.socket.shutdown(sock, socket.SHUT_WR)
            out = b""
            while data := sock.recv(65536):
                out += data
            return out

    answers = []
    for tls in (False, True):
        ssl = server_ctx if tls else None
        if driver == "sync":
            sync = RPCServer(max_message_size=16000)
            sync.register_function(echo)
            address = sync.start("127.0.0.1", 0, ssl=ssl)
            assert isinstance(address, tuple)
            try:
                answers.append(answer(address, tls))
            finally:
                sync.shutdown()
        else:
            server = aio.RPCServer(max_message_size=16000)
            server.register_function(aecho, name="echo")
            with aio_server_in_thread(server, ssl=ssl) as address:
                answers.append(answer(address, tls))
    # (The two replies in either order: a thread or a task answers the call.)
    tcp, tls = (sorted(answer.split(b"Content-Length: ")) for answer in answers)
    assert any(b'"id":1,"result":1' in frame for frame in tcp) and any(b"message too large" in frame for frame in tcp)
    assert tls == tcp
