"""Scanning in bounded steps: one peer's costly value cannot hold an asyncio server's loop.

``JsonStreamFramer(scan_steps=N)`` stops its scanner after N steps and sets
``scan_pending``; calling ``next_event`` again goes on where it stopped. The
asyncio server scans that way, one slice per loop iteration with reading paused,
so the other connections are served while a large deeply nested value sent
without a newline is scanned (review8 F5: 8 MiB of such a value held the loop
about 20 s).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from _aio_support import RawConn, StoppedClock, request, run, serving
from hypothesis import given, settings
from hypothesis import strategies as st
from test_framing_lazy import damaged_streams, long_string_values

from jsonrpc_mini import _aio_conn, aio
from jsonrpc_mini._framing import JsonStreamFramer
from jsonrpc_mini._json import JsonCodec
from jsonrpc_mini._protocol import Call, Closed, Reply, ServerConnection
from jsonrpc_mini.testing.strategies import chunkings

pytestmark = pytest.mark.timeout(120)
T = TypeVar("T")

# 3,000 elements nested 5 deep: the patterns that pass over runs of elements cover
# two levels, so the scanner walks these token by token (tens of thousands of steps).
DEEP_ELEMENTS = b"[" + b"[[[[[1]]]]]," * 3000 + b"1]"
DEEP_REQUEST = b'{"jsonrpc":"2.0","id":7,"method":"size","params":[' + DEEP_ELEMENTS + b"]}"


def events(chunks: list[bytes], scan_steps: int | None, eof: bool) -> list[list[Any]]:
    """The events of each read; with ``scan_steps``, next_event is called again while scan_pending."""
    framer = JsonStreamFramer(JsonCodec().loads, max_message_size=1 << 16, max_depth=16, scan_steps=scan_steps)
    out = []
    for chunk in [*chunks, b""] if eof else chunks:
        framer.feed(chunk)
        got = []
        for _ in range(100_000):
            event = framer.next_event()
            if event is not None:
                got.append(event)
            elif not framer.scan_pending:
                break
        else:
            raise AssertionError("next_event never stopped")
        out.append(got)
    assert not framer.scan_pending
    return out


any_streams = st.one_of(damaged_streams(), damaged_streams(long_string_values))


@settings(max_examples=300, deadline=None)
@given(stream=any_streams, steps=st.integers(1, 8), data=st.data())
def test_bounded_scanning_gives_the_events_of_unbounded_scanning_read_by_read(
    stream: bytes, steps: int, data: st.DataObject
) -> None:
    chunks = data.draw(chunkings(stream))
    eof = data.draw(st.booleans())
    assert events(chunks, steps, eof) == events(chunks, None, eof)


def test_a_deep_value_is_scanned_in_many_slices_each_going_on_where_the_last_stopped() -> None:
    framer = JsonStreamFramer(JsonCodec().loads, max_message_size=1 << 20, max_depth=16, scan_steps=100)
    framer.feed(DEEP_ELEMENTS)
    calls = 0
    event = None
    while event is None:
        calls += 1
        assert calls < 10_000, "the scan does not advance"
        event = framer.next_event()
        assert framer.scan_pending == (event is None)
    # Tens of thousands of tokens, at most 100 per call: many calls, each one advancing.
    assert calls > 100
    assert len(event.value) == 3001  # type: ignore[attr-defined]


def test_without_scan_steps_the_scan_is_never_cut() -> None:
    framer = JsonStreamFramer(JsonCodec().loads, max_message_size=1 << 20, max_depth=16)
    framer.feed(DEEP_ELEMENTS)
    assert framer.next_event() is not None
    assert not framer.scan_pending


def events_until_bytes_needed(proto: ServerConnection) -> list[Any]:
    """Every event ``proto`` has, calling next_event again while a scan is pending."""
    seen: list[Any] = []
    for _ in range(100_000):
        event = proto.next_event()
        if event is not None:
            seen.append(event)
        elif not proto.scan_pending:
            return seen
    raise AssertionError("next_event never stopped")


def test_end_of_stream_while_a_scan_is_pending_comes_after_the_value() -> None:
    proto = ServerConnection(scan_steps=50)
    proto.receive_data(DEEP_REQUEST)
    proto.receive_data(b"")  # the peer sent its value, then finished
    seen = events_until_bytes_needed(proto)
    assert [type(e) for e in seen] == [Call, Closed]
    assert seen[0].message.id == 7


def test_an_incomplete_value_at_end_of_stream_is_reported_after_a_pending_scan() -> None:
    proto = ServerConnection(scan_steps=50)
    proto.receive_data(DEEP_REQUEST[:-5])
    proto.receive_data(b"")
    seen = events_until_bytes_needed(proto)
    assert [type(e) for e in seen] == [Reply, Closed]
    assert b"incomplete JSON value at end of stream" in seen[0].data


def test_aio_server_answers_others_while_it_scans_a_deep_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_aio_conn, "SCAN_STEPS", 10)  # thousands of slices for DEEP_REQUEST

    async def main() -> None:
        server = aio.RPCServer()
        server.register_function(len, name="size")
        async with serving(server) as address:
            big, small = await RawConn.open(address), await RawConn.open(address)
            try:
                await big.send(DEEP_REQUEST)  # no newline: the scanner must find its end
                scanning = None
                for _ in range(100_000):  # one loop iteration each
                    scanning = next((c for c in server._conns if c._scan_soon), None)
                    if scanning is not None:
                        break
                    await asyncio.sleep(0)
                assert scanning is not None, "the value was not scanned in slices"
                # Reading waits for the scan: the bytes held stay bounded.
                assert scanning._transport is not None and not scanning._transport.is_reading()
                await small.send(request("size", [[1, 2]], id_=2))
                assert await small.recv() == {"jsonrpc": "2.0", "id": 2, "result": 2}
                assert scanning._scan_soon, "the other client waited for the whole scan"
                assert await big.recv() == {"jsonrpc": "2.0", "id": 7, "result": 3001}
                # Reading resumed: the same connection serves its next request.
                await big.send(request("size", ["ab"], id_=8))
                assert await big.recv() == {"jsonrpc": "2.0", "id": 8, "result": 2}
            finally:
                await big.close()
                await small.close()

    run(main)


READ_TIMEOUT = 0.3  # the server's read_timeout in the test below
SCAN_TIME = 1.0  # the loop's time the first slice of the scan takes: over READ_TIMEOUT


@pytest.mark.parametrize(
    ("together", "before", "after", "answered"),
    [
        pytest.param(False, 0.1, 0.1, True, id="pauses-within-read_timeout"),
        pytest.param(False, 0.15, 0.2, False, id="pauses-past-read_timeout"),
        pytest.param(True, 0.0, 0.25, True, id="scan-in-first-read-pause-within"),
        pytest.param(True, 0.0, 0.35, False, id="scan-in-first-read-pause-past"),
    ],
)
def test_the_time_spent_scanning_does_not_count_against_read_timeout(
    monkeypatch: pytest.MonkeyPatch, together: bool, before: float, after: float, answered: bool
) -> None:
    # The value takes three reads: the head, a middle part the server scans in
    # slices, then the end (``together``: head and middle in one read, so the scan
    # begins with the message). The scan takes SCAN_TIME (> read_timeout), all of it
    # the server's doing: it does not count. The pauses before and after it (the
    # peer's doing) do: within read_timeout in all, the value is answered; over it,
    # the connection is closed. The loop's clock is stopped and moved by the test
    # (see StoppedClock): no step depends on how fast this machine runs.
    monkeypatch.setattr(_aio_conn, "SCAN_STEPS", 100)  # hundreds of slices for the middle part
    head = b'{"jsonrpc":"2.0","id":7,"method":"size","params":['
    # Brackets nested 40 deep: the framer cannot tell cheaply that the value is
    # still open after it, so the whole middle part is scanned as it arrives.
    middle = DEEP_ELEMENTS[:-2] + b"[" * 40 + b"1" + b"]" * 40 + b"]"
    scan_more = _aio_conn.ServerProtocol._scan_more
    slow: list[_aio_conn.ServerProtocol] = []  # the connection whose first slice took SCAN_TIME
    started_at_scan: list[float | None] = []  # its message's start when the scan began

    async def main() -> None:
        server = aio.RPCServer(read_timeout=READ_TIMEOUT)
        server.register_function(len, name="size")
        async with serving(server) as address:
            clock = StoppedClock()

            def costly_first_slice(conn: _aio_conn.ServerProtocol) -> None:
                if not slow:
                    slow.append(conn)
                    started_at_scan.append(conn._started)
                    clock.advance(SCAN_TIME)
                scan_more(conn)

            monkeypatch.setattr(_aio_conn.ServerProtocol, "_scan_more", costly_first_slice)
            conn = await RawConn.open(address)
            try:
                if together:
                    await conn.send(head + middle)  # (36 KB, one write: one read on loopback)
                    served = await _first(lambda: slow[0] if slow else None, "the scan's start")
                    assert started_at_scan == [None], "the scan did not begin with the message"
                else:
                    await conn.send(head)
                    served = await _first(
                        lambda: next((c for c in server._conns if c._started is not None), None), "the head read"
                    )
                    clock.advance(before)  # after the server read the head: the message's time runs
                    await conn.send(middle)
                await _first(lambda: slow and served._scan_from is None, "the scan's end")
                assert slow == [served], "the value was not scanned in slices"
                assert not served._input_done  # the value still open
                clock.advance(after)
                if answered:  # the server reads the end, the clock still stopped
                    await conn.send(b"]}\n")
                    await _first(lambda: served._started is None or served.closed.done(), "the end read")
                else:
                    await _first(served.closed.done, "the close at read_timeout")
                clock.run_on()
                try:
                    reply = await conn.recv()
                except ConnectionResetError:  # (closed with the end unread)
                    reply = None
                assert reply == ({"jsonrpc": "2.0", "id": 7, "result": 3001} if answered else None)
            finally:
                clock.run_on()
                await conn.close()

    run(main)


async def _first(get: Callable[[], T], what: str) -> T:
    """The first true value of ``get()``, tried once per loop iteration; fails naming ``what`` after 100,000."""
    for _ in range(100_000):
        if value := get():
            return value
        await asyncio.sleep(0)
    raise AssertionError(f"{what}: not reached in 100,000 loop iterations")


class CountingCodec(JsonCodec):
    """Counts the values decoded, by size."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def loads(self, data: bytes | bytearray | memoryview | str) -> Any:
        self.sizes.append(len(data))
        return super().loads(data)


def test_a_line_the_one_step_path_failed_to_decode_is_not_decoded_whole_again() -> None:
    # Two requests on one line (no newline between): one loads of the whole line
    # fails; the framer then reads the two values. Decoding that line again would
    # double the cost of the attack in review9 S1 (an 8 MiB value with requests
    # after it on its line: seconds per decode).
    first = b'{"jsonrpc":"2.0","id":1,"method":"f","params":[' + b"[1]," * 1000 + b"1]}"
    second = b'{"jsonrpc":"2.0","id":2,"method":"f"}'
    line = first + b" " + second + b"\n"
    codec = CountingCodec()
    proto = ServerConnection(codec=codec)
    proto.receive_data(b'{"jsonrpc":"2.0","id":0,"method":"f"}\n')  # the framing is known from here on
    assert [e.message.id for e in events_until_bytes_needed(proto)] == [0]
    codec.sizes.clear()
    assert proto.receive_request(line) is None
    seen = events_until_bytes_needed(proto)
    assert [e.message.id for e in seen] == [1, 2]
    assert sorted(codec.sizes) == sorted([len(line), len(first), len(second)])
