"""The asyncio client's fast paths settle calls exactly as the general path does.

``Link.data_received`` has the core decode a read's whole reply lines in one step
where that is exact (``ClientConnection.decode_lines``: one line, or a run of them
at once), settles plain success replies itself, and gives every other line to the
framer one by one (once the framer holds part of a value, the rest of the read).
Invariant: whatever the server sends and however it is chunked, every call ends
the same way (result, error, or still pending), the same warnings are logged, and
the connection is closed in the same cases as when the whole stream goes through
the framer.

Sending: requests made in one loop iteration are joined into few writes (at most
``_FLUSH_EVERY`` each, the first going out before the iteration ends). Invariant:
the bytes written are the requests in the order they were made.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from _aio_support import OneLoop, run
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from jsonrpc_mini import _aio_link, aio
from jsonrpc_mini._aio_link import Link
from jsonrpc_mini._client_protocol import ClientConnection
from jsonrpc_mini._codec import ErrorResponse, parse_response
from jsonrpc_mini._protocol import Violation
from jsonrpc_mini.testing import strategies as rpc_st
from jsonrpc_mini.testing._json_strategies import json_values

pytestmark = [pytest.mark.timeout(120)]

CALLS = 6  # ids 1..6 are pending when the bytes arrive
MAX_SIZE = 300


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def outcome(future: asyncio.Future[Any]) -> Any:
    if not future.done():
        return "pending"
    exc = future.exception()
    if exc is None:
        return ["result", future.result()]
    return [type(exc).__name__, getattr(exc, "code", None), str(exc), getattr(exc, "data", None)]


async def settle(
    chunks: list[bytes] | None, stream: bytes, eof: bool, max_size: int = MAX_SIZE, via_buffer: bool = False
) -> Any:
    """How the calls end when ``chunks`` arrive (None: ``stream`` through the framer only).

    ``via_buffer``: each chunk is read as a socket transport reads it, into the
    link's buffer and then ``buffer_updated`` (with its one-line path), instead of
    ``data_received``.
    """
    link = Link(ClientConnection(framing="newline", max_message_size=max_size))
    transport = Transport()
    link.connection_made(transport)
    futures = {id_: link.expect(id_, f"m{id_}", None) for id_ in range(1, CALLS + 1)}
    recorder = Recorder()
    logger = logging.getLogger("jsonrpc_mini")
    logger.addHandler(recorder)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        if chunks is None:
            link.proto.receive_data(stream)
            link._drain()  # the general path: every byte through the framer
        elif via_buffer:
            for chunk in chunks:
                link.get_buffer(-1)[: len(chunk)] = chunk
                link.buffer_updated(len(chunk))
        else:
            for chunk in chunks:
                link.data_received(chunk)
        if eof:
            assert link.eof_received() is False
    finally:
        logger.removeHandler(recorder)
        logger.setLevel(old_level)
    ended = {id_: outcome(future) for id_, future in futures.items()}
    link.fail_all("test over")
    for future in futures.values():
        future.exception()  # retrieved: nobody awaits them
    return ended, recorder.messages, transport.closing, link.lost


ids = st.one_of(st.integers(1, CALLS + 2), st.integers(1, CALLS + 2).map(str), st.none())
results = st.fixed_dictionaries({"jsonrpc": st.just("2.0"), "id": ids, "result": json_values(max_leaves=5)})
error_objects = st.fixed_dictionaries(
    {"code": st.integers(-32800, -31990), "message": st.text(max_size=10)}, optional={"data": json_values(max_leaves=3)}
)
errors = st.fixed_dictionaries({"jsonrpc": st.just("2.0"), "id": ids, "error": error_objects})
replies = st.one_of(results, results, errors)
odd = st.one_of(
    st.fixed_dictionaries({"jsonrpc": st.just("2.0"), "method": st.just("x"), "id": ids}),  # not a response
    st.fixed_dictionaries({"jsonrpc": st.just("1.0"), "id": ids, "result": st.integers()}),
    st.fixed_dictionaries({"id": ids}),
)
values = st.one_of(replies, replies, st.lists(replies, min_size=1, max_size=3), odd, st.just([]))


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


pieces = st.one_of(
    values.map(compact),
    values.map(compact),
    values.map(compact),
    values.map(lambda v: json.dumps(v, indent=1).encode() + b"\n"),
    values.map(lambda v: json.dumps(v).encode()),
    rpc_st.malformed_lines(),
    st.sampled_from([b"\n", b'{"jsonrpc":"2.0","id":1,"result":"', b"]", b"x" * (MAX_SIZE + 10) + b"\n"]),
)


@st.composite
def fed(draw: st.DrawFn) -> tuple[bytes, list[bytes], bool]:
    stream = b"".join(draw(st.lists(pieces, min_size=1, max_size=10)))
    chunks = draw(st.one_of(st.just([stream]), rpc_st.chunkings(stream, max_chunks=6)))
    return stream, chunks, draw(st.booleans())


PRETTY = json.dumps({"jsonrpc": "2.0", "id": 2, "result": [1, 2]}, indent=1).encode() + b"\n"
LINE = compact({"jsonrpc": "2.0", "id": 1, "result": "one"})


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(case=fed())
@example(case=(LINE + b'{"jsonrpc":"2.0","id":3,"res', [LINE, b'{"jsonrpc":"2.0","id":3,"res'], True))
@example(case=(LINE + PRETTY + LINE, [LINE + PRETTY + LINE], False))
@example(case=(LINE + PRETTY[:20], [LINE + PRETTY[:20]], True))
def test_calls_end_as_on_the_general_path(one_loop: OneLoop, case: Any) -> None:
    stream, chunks, eof = case

    async def both() -> tuple[Any, Any, Any]:
        return (
            await settle(None, stream, eof),
            await settle(chunks, stream, eof),
            await settle(chunks, stream, eof, via_buffer=True),
        )

    expected, got, got_via_buffer = one_loop.run(both)
    assert got == expected
    assert got_via_buffer == expected


def test_many_replies_in_one_read_settle_their_calls_in_order() -> None:
    async def main() -> None:
        link = Link(ClientConnection(framing="newline"))
        link.connection_made(Transport())
        order: list[int] = []
        futures = [link.expect(i, "m", None) for i in range(1, 6)]
        for i, future in enumerate(futures, 1):
            future.add_done_callback(lambda _, i=i: order.append(i))
        data = b"".join(compact({"jsonrpc": "2.0", "id": i, "result": i * 10}) for i in (3, 1, 5, 2, 4))
        link.data_received(data)
        assert [f.result() for f in futures] == [10, 20, 30, 40, 50]
        await asyncio.sleep(0)
        assert order == [3, 1, 5, 2, 4]
        assert link.pending == {}
        link.fail_all("done")

    run(main)


# Runs of compact lines, mostly replies (decoded at once where they qualify), with
# odd lines among them (errors, unknown ids, non-responses, garbage, long lines).
both = st.fixed_dictionaries(  # "result" with "error" or "method": not a success reply
    {"jsonrpc": st.just("2.0"), "id": ids, "result": st.integers()},
    optional={"error": error_objects, "method": st.just("m")},
)
BOTH = compact({"jsonrpc": "2.0", "id": 1, "result": 1, "error": {"code": -1, "message": "x"}})
batch_replies = st.lists(st.one_of(replies, both, values), max_size=4)  # an array line: a batch's replies
line_runs = st.lists(
    st.one_of(
        replies.map(compact),
        replies.map(compact),
        values.map(compact),
        both.map(compact),
        batch_replies.map(compact),
        pieces,
    ),
    min_size=2,
    max_size=12,
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    runs=st.lists(line_runs, min_size=1, max_size=3),
    max_size=st.sampled_from([MAX_SIZE, 45, 60]),
    split=st.booleans(),
    eof=st.booleans(),
)
@example(
    runs=[[LINE, compact({"jsonrpc": "2.0", "id": 2, "error": {"code": -1, "message": "x"}}), LINE]],
    max_size=MAX_SIZE,
    split=False,
    eof=False,
)
@example(runs=[[LINE, b"[1,\n", LINE, LINE]], max_size=MAX_SIZE, split=False, eof=False)
@example(
    runs=[[LINE, compact({"jsonrpc": "2.0", "id": 3, "result": "x" * 10}), LINE]], max_size=46, split=False, eof=True
)
@example(
    runs=[[BOTH, LINE, compact({"jsonrpc": "2.0", "id": 2, "result": 1, "method": "m"}), LINE]],
    max_size=MAX_SIZE,
    split=False,
    eof=False,
)
def test_runs_of_reply_lines_end_as_on_the_general_path(
    one_loop: OneLoop, runs: list[list[bytes]], max_size: int, split: bool, eof: bool
) -> None:
    """Reads of many lines: the grouped decode settles calls as the framer alone would."""
    reads = [b"".join(run_) for run_ in runs]
    stream = b"".join(reads)
    if split:  # a read may end inside a line: the group stops at the last whole one
        reads = [stream[: len(stream) // 2], stream[len(stream) // 2 :]]

    async def both() -> tuple[Any, Any, Any]:
        return (
            await settle(None, stream, eof, max_size),
            await settle(reads, stream, eof, max_size),
            await settle(reads, stream, eof, max_size, via_buffer=True),
        )

    expected, got, got_via_buffer = one_loop.run(both)
    assert got == expected
    assert got_via_buffer == expected


def test_a_read_of_many_replies_is_decoded_at_once() -> None:
    """Speed: 200 reply lines in one read cost one decode, not 200."""

    async def main() -> None:
        link = Link(ClientConnection(framing="newline"))
        link.connection_made(Transport())
        futures = [link.expect(i, "m", None) for i in range(1, 201)]
        decodes: list[int] = []
        loads = link.proto.codec.loads
        link.proto.codec = type("Counting", (), {"loads": lambda self, data: decodes.append(1) or loads(data)})()
        link.data_received(b"".join(compact({"jsonrpc": "2.0", "id": i, "result": -i}) for i in range(1, 201)))
        assert [f.result() for f in futures] == [-i for i in range(1, 201)]
        assert len(decodes) == 1
        assert link.pending == {}
        link.fail_all("done")

    run(main)


def test_lines_that_cannot_be_decoded_as_a_group_go_to_the_framer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Results holding an escape or a bracket: the rest of the read goes to the framer, not line by line."""
    asked: list[int] = []
    real = ClientConnection.decode_lines

    def counting(self: Any, data: bytes, limit: int, start: int = 0) -> Any:
        asked.append(start)
        return real(self, data, limit, start)

    monkeypatch.setattr(ClientConnection, "decode_lines", counting)
    results = ["a\nb", "[x]", {"k": "}"}]

    async def main() -> None:
        link = Link(ClientConnection(framing="newline"))
        link.connection_made(Transport())
        futures = [link.expect(i, "m", None) for i in range(1, 301)]
        link.data_received(
            b"".join(compact({"jsonrpc": "2.0", "id": i, "result": results[i % 3]}) for i in range(1, 301))
        )
        assert [f.result() for f in futures] == [results[i % 3] for i in range(1, 301)]
        assert link.pending == {}
        link.fail_all("done")

    run(main)
    assert len(asked) <= 2, len(asked)


class Writes(Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))


@pytest.mark.parametrize(
    "count", [1, 2, _aio_link._FLUSH_EVERY, _aio_link._FLUSH_EVERY + 1, 3 * _aio_link._FLUSH_EVERY + 5]
)
def test_calls_of_one_iteration_go_out_in_order_in_few_writes(count: int) -> None:
    """Pipelined requests: written in order, at most _FLUSH_EVERY per write, the first before the iteration ends."""

    async def main() -> None:
        link = Link(ClientConnection(framing="newline"))
        transport = Writes()
        link.connection_made(transport)
        client = aio.RPCClient(link)
        calls = [client.add(i, 1) for i in range(count)]
        written_at_once = len(transport.writes)
        await asyncio.sleep(0)  # the loop iteration ends: the rest is flushed
        sent = [json.loads(line) for data in transport.writes for line in data.splitlines()]
        assert sent == [{"jsonrpc": "2.0", "method": "add", "params": [i, 1], "id": i + 1} for i in range(count)]
        assert all(len(data.splitlines()) <= _aio_link._FLUSH_EVERY for data in transport.writes)
        # one write for the first call, then one per _FLUSH_EVERY calls, then the rest
        assert written_at_once == 1 + (count - 1) // _aio_link._FLUSH_EVERY
        assert len(transport.writes) == written_at_once + (1 if (count - 1) % _aio_link._FLUSH_EVERY else 0)
        link.data_received(b"".join(compact({"jsonrpc": "2.0", "id": i + 1, "result": i + 1}) for i in range(count)))
        assert await asyncio.gather(*calls) == [i + 1 for i in range(count)]
        link.fail_all("done")

    run(main)


def framer_values(conn: ClientConnection, data: bytes) -> list[Any]:
    """What ``conn``'s framer alone reads from ``data``: its replies, and "violation" for the rest."""
    conn.receive_data(data)
    events: list[Any] = []
    while (event := conn.next_event()) is not None:
        events.append("violation" if isinstance(event, Violation) else event)
    return events


def as_event(value: Any) -> Any:
    """The event the client's core makes of one JSON value from the server (as ``framer_values``)."""
    reply = parse_response(value)
    if reply is None or (isinstance(reply, ErrorResponse) and reply.id is None):
        return "violation"
    return reply


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    head=st.sampled_from([b"", LINE, b'{"jsonrpc":"2.0","id":1,', b"x\n"]),
    runs=line_runs,
    limit=st.sampled_from([1, 2, 3, 1024]),
    max_size=st.sampled_from([MAX_SIZE, 45, 60]),
    max_depth=st.sampled_from([128, 2]),
)
@example(head=b"", runs=[LINE, LINE], limit=1024, max_size=MAX_SIZE, max_depth=128)
@example(head=b"", runs=[compact({"jsonrpc": "2.0", "id": 1, "result": [[[1]]]})], limit=1, max_size=300, max_depth=2)
def test_decode_lines_reads_what_the_framer_reads(
    head: bytes, runs: list[bytes], limit: int, max_size: int, max_depth: int
) -> None:
    """Invariant: the values decode_lines takes are the framer's, line for line; what it leaves is untouched."""
    data = b"".join(runs)
    options: dict[str, Any] = {"max_message_size": max_size, "max_depth": max_depth}
    conn, reference = ClientConnection(**options), ClientConnection(**options)
    assert framer_values(conn, head) == framer_values(reference, head)  # maybe mid-value, mid-skip, or a queue
    start = len(head)
    values, end = conn.decode_lines(head + data, limit, start)
    if not values:
        assert end == start
    else:
        assert start < end <= len(head) + len(data) and (head + data)[end - 1 : end] == b"\n"
        assert (head + data)[start:end].count(b"\n") <= limit  # lines; a batch line gives its members
        assert [as_event(value) for value in values] == framer_values(reference, data[: end - start])
        data = data[end - start :]
    # Whatever was not taken reads as it would have without decode_lines.
    assert framer_values(conn, data + b"\n") == framer_values(reference, data + b"\n")


def test_decode_lines_leaves_queued_replies_first() -> None:
    """Replies the framer already holds come before any line decoded in one step."""
    conn = ClientConnection()
    conn.receive_data(compact([{"jsonrpc": "2.0", "id": 1, "result": 1}, {"jsonrpc": "2.0", "id": 2, "result": 2}]))
    first = conn.next_event()
    assert first is not None and first.id == 1  # the second member is queued
    assert conn.decode_lines(LINE, 1024) == ([], 0)
    assert conn.decode_lines(LINE + LINE, 1024) == ([], 0)
    assert conn.decode_line(LINE) is None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    head=st.sampled_from([b"", LINE, b'{"jsonrpc":"2.0","id":1,', b"x\n", compact([{"id": 1}, {"id": 2}])]),
    data=st.one_of(values.map(compact), pieces, line_runs.map(b"".join)),
    max_size=st.sampled_from([MAX_SIZE, 45, 60]),
    max_depth=st.sampled_from([128, 2]),
)
@example(head=b"", data=LINE, max_size=MAX_SIZE, max_depth=128)
@example(head=b"", data=compact({"jsonrpc": "2.0", "id": 1, "result": [[[1]]]}), max_size=MAX_SIZE, max_depth=2)
def test_decode_line_takes_what_decode_lines_takes_of_one_object_line(
    head: bytes, data: bytes, max_size: int, max_depth: int
) -> None:
    """Invariant: decode_line gives the object decode_lines would take when ``data`` is that one line, else None;
    it consumes nothing either way (the one-line path of Link.buffer_updated)."""
    options: dict[str, Any] = {"max_message_size": max_size, "max_depth": max_depth}
    conn, reference = ClientConnection(**options), ClientConnection(**options)
    assert framer_values(conn, head) == framer_values(reference, head)  # maybe mid-value, mid-skip, or a queue
    values, end = conn.decode_lines(data, 1)  # consumes nothing either
    expected = values[0] if values and end == len(data) and data[:1] == b"{" else None
    assert conn.decode_line(data) == expected
    assert framer_values(conn, data + b"\n") == framer_values(reference, data + b"\n")
