"""The asyncio client's fast path for replies settles calls exactly as the general path does.

``Link.data_received`` gives a read to the core line by line through
``ClientConnection.receive_reply`` (one compact reply decoded in one step) and
only the rest to the framer. Invariant: whatever the server sends and however it
is chunked, every call ends the same way (result, error, or still pending), the
same warnings are logged, and the connection is closed in the same cases as when
the whole stream goes through the framer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from _aio_support import run
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from jsonrpc_mini._aio_link import Link
from jsonrpc_mini._protocol import ClientConnection
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


async def settle(chunks: list[bytes] | None, stream: bytes, eof: bool) -> Any:
    """How the calls end when ``chunks`` arrive (None: ``stream`` through the framer only)."""
    link = Link(ClientConnection(framing="newline", max_message_size=MAX_SIZE))
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


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=fed())
@example(case=(LINE + b'{"jsonrpc":"2.0","id":3,"res', [LINE, b'{"jsonrpc":"2.0","id":3,"res'], True))
@example(case=(LINE + PRETTY + LINE, [LINE + PRETTY + LINE], False))
@example(case=(LINE + PRETTY[:20], [LINE + PRETTY[:20]], True))
def test_calls_end_as_on_the_general_path(case: Any) -> None:
    stream, chunks, eof = case

    async def both() -> tuple[Any, Any]:
        return await settle(None, stream, eof), await settle(chunks, stream, eof)

    expected, got = run(both)
    assert got == expected


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
