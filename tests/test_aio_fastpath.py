"""The asyncio server's fast paths answer exactly what the general path answers.

aio.RPCServer takes whole request lines through ``ServerConnection.receive_request``
one at a time (a read holding one line at once, a read holding many line by line)
and gives the core's framer only what it does not take. Invariant: whatever the
bytes and however they are chunked, the replies (byte for byte) and the calls run
are those of the general path: the whole stream fed to a ServerConnection, every
event answered in order by the same handlers.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from typing import Any

import pytest
from _aio_support import WAIT, OneLoop, RawConn, request, run, serving
from _driver_helpers import in_time_rounds_async, kept
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_aio_runner import CountingTransport

from jsonrpc_mini import RPCError, aio
from jsonrpc_mini._codec import ErrorResponse
from jsonrpc_mini._dispatch import Registry, outcome_response
from jsonrpc_mini._protocol import Batch, Call, Closed, Reply, ServerConnection
from jsonrpc_mini.testing import strategies as rpc_st

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.timeout(120),
]

MAX_SIZE = 400
MAX_DEPTH = 6


# -- the handlers, and their plain twins for the reference -----------------------


def echo_plain(*args: Any, **kwargs: Any) -> Any:
    return [list(args), kwargs]


def boom_plain(code: int | None = None) -> Any:
    if code is None:
        raise ValueError("boom")
    raise RPCError(-32000 - abs(code) % 100, "custom", {"code": code})


def nap_plain(*args: Any) -> int:
    return len(args)


def reference_registry() -> Registry:
    registry = Registry()
    registry.register_function(echo_plain, name="echo")
    registry.register_function(boom_plain, name="boom")
    registry.register_function(nap_plain, name="nap")
    return registry


def aio_server(kind: str, ran: list[Any], **options: Any) -> aio.RPCServer:
    """``kind``: "async" (async def handlers) or "inline" (plain handlers run on the loop)."""
    srv = aio.RPCServer(run_sync_in_thread=False, max_message_size=MAX_SIZE, max_depth=MAX_DEPTH, **options)

    async def echo_async(*args: Any, **kwargs: Any) -> Any:
        ran.append(("echo", args, kwargs))
        return echo_plain(*args, **kwargs)

    def echo_inline(*args: Any, **kwargs: Any) -> Any:
        ran.append(("echo", args, kwargs))
        return echo_plain(*args, **kwargs)

    async def boom_async(code: int | None = None) -> Any:
        ran.append(("boom", (code,), {}))
        return boom_plain(code)

    def boom_inline(code: int | None = None) -> Any:
        ran.append(("boom", (code,), {}))
        return boom_plain(code)

    async def nap(*args: Any) -> int:  # waits: the call outlives the read that brought it
        ran.append(("nap", args, {}))
        await asyncio.sleep(0)
        return nap_plain(*args)

    srv.register_function(echo_async if kind == "async" else echo_inline, name="echo")
    srv.register_function(boom_async if kind == "async" else boom_inline, name="boom")
    srv.register_function(nap)
    return srv


def general_path(stream: bytes, ran: list[Any], eof: bool = False) -> list[bytes]:
    """The replies the general path gives: the whole stream fed at once, each event answered in order."""
    conn = ServerConnection(max_message_size=MAX_SIZE, max_depth=MAX_DEPTH)
    registry = reference_registry()

    def answer(message: Any) -> Any:
        try:
            prepared = registry.prepare(message)
        except RPCError as exc:
            return outcome_response(message, exc=exc)
        ran.append((message.method, tuple(prepared.args) or (None,) * (message.method == "boom"), prepared.kwargs))
        try:
            result = prepared.run()
        except Exception as exc:
            return outcome_response(message, exc=exc)
        return outcome_response(message, result)

    conn.receive_data(stream)
    if eof:
        conn.receive_data(b"")
    replies: list[bytes] = []
    for _ in range(10_000):
        event = conn.next_event()
        if event is None or isinstance(event, Closed):
            break
        if isinstance(event, Reply):
            replies.append(event.data)
            if event.close:
                break
        elif isinstance(event, Call):
            reply = answer(event.message)
            if reply is not None:
                replies.append(conn.encode(reply))
        else:
            assert isinstance(event, Batch)
            members = [item if isinstance(item, ErrorResponse) else answer(item) for item in event.items]
            data = conn.encode_batch(members)
            if data is not None:
                replies.append(data)
    return replies


async def serve_chunks(srv: aio.RPCServer, chunks: list[bytes], pauses: list[int], eof: bool = False) -> list[bytes]:
    """Feed ``chunks`` to one connection of ``srv`` (letting the loop run ``pauses[i]`` times after each).

    The transport ignores pause_reading: bytes keep arriving while calls are held back.
    """
    conn = srv.protocol()
    transport = CountingTransport()
    conn.connection_made(transport)
    for chunk, pause in zip(chunks, pauses, strict=True):
        if transport.closing:
            break
        conn.data_received(chunk)
        for _ in range(pause):
            await asyncio.sleep(0)
    if eof and not transport.closing:
        assert conn.eof_received()
    for _ in range(10_000):  # until every call has been answered
        if not conn.busy and not srv.total_busy:
            break
        await asyncio.sleep(0)
    assert not conn.busy
    for _ in range(3):  # replies joined for one write go out an iteration later
        await asyncio.sleep(0)
    conn.connection_lost(None)
    return b"".join(transport.writes).splitlines(keepends=True)


# -- the streams ---------------------------------------------------------------------

methods = st.sampled_from(["echo", "echo", "boom", "nap", "missing"])
ids = rpc_st.request_ids()


def message(with_id: bool) -> st.SearchStrategy[dict[str, Any]]:
    fields: dict[str, st.SearchStrategy[Any]] = {"jsonrpc": st.just("2.0"), "method": methods}
    if with_id:
        fields["id"] = ids
    return st.fixed_dictionaries(fields, optional={"params": rpc_st.params().filter(lambda p: p is not None)})


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


values = st.one_of(
    message(with_id=True),
    message(with_id=True),
    message(with_id=False),
    st.lists(st.one_of(message(with_id=True), message(with_id=False)), min_size=1, max_size=4),
    rpc_st.invalid_requests(),
)
pieces = st.one_of(
    values.map(compact),
    values.map(compact),
    values.map(lambda v: json.dumps(v, indent=1).encode() + b"\n"),  # pretty-printed: many lines
    values.map(lambda v: json.dumps(v).encode()),  # no newline: complete at its bracket
    rpc_st.malformed_lines(),
    st.sampled_from([b"\n", b"  \n", b'{"jsonrpc":"2.0","method":"echo","params":["', b"]"]),
)


@st.composite
def line_groups(draw: st.DrawFn, stream: bytes) -> list[bytes]:
    """``stream`` cut after some of its newlines: reads of whole lines, several at a time."""
    ends = [i + 1 for i, byte in enumerate(stream) if byte == ord("\n")]
    cuts = sorted(draw(st.sets(st.sampled_from(ends), max_size=4))) if ends else []
    bounds = [0, *(cut for cut in cuts if cut < len(stream)), len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


# Mostly whole compact lines: reads hold many, and calls held back by the limit stay unread.
compact_pieces = st.one_of(values.map(compact), message(with_id=True).map(compact), rpc_st.malformed_lines())


@st.composite
def fed(draw: st.DrawFn) -> tuple[bytes, list[bytes], list[int], bool]:
    stream = b"".join(draw(st.lists(draw(st.sampled_from([pieces, compact_pieces])), min_size=1, max_size=12)))
    chunks = draw(st.one_of(st.just([stream]), rpc_st.chunkings(stream, max_chunks=8), line_groups(stream)))
    if draw(st.booleans()):
        # The first read picks the framing (the framer takes it whole); after one
        # whole line has, later reads take the line-by-line path.
        first = compact(draw(message(with_id=True)))
        stream, chunks = first + stream, [first, *chunks]
    pauses = draw(st.lists(st.integers(0, 2), min_size=len(chunks), max_size=len(chunks)))
    return stream, chunks, pauses, draw(st.booleans())


def normal(ran: list[Any]) -> Counter[str]:
    return Counter(json.dumps([method, list(args), kwargs], sort_keys=True) for method, args, kwargs in ran)


@pytest.mark.parametrize("limit", [32, 2])
@pytest.mark.parametrize("kind", ["async", "inline"])
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(case=fed())
def test_same_replies_and_calls_as_the_general_path(one_loop: OneLoop, kind: str, limit: int, case: Any) -> None:
    stream, chunks, pauses, eof = case
    expected_ran: list[Any] = []
    expected = general_path(stream, expected_ran, eof)
    ran: list[Any] = []
    srv = aio_server(kind, ran, max_concurrent_calls=limit)
    got = one_loop.run(lambda: serve_chunks(srv, chunks, pauses, eof))
    assert sorted(got) == sorted(expected)
    assert normal(ran) == normal(expected_ran)


@pytest.mark.parametrize("eof", [False, True])
def test_reads_arriving_while_calls_are_held_back_keep_their_order(eof: bool) -> None:
    # Limit 2 and calls that wait: most lines of the first read are held back, and the
    # next read (and the end of input) arrive before any of them is taken.
    # (The first read only picks the framing: it goes to the framer whole.)
    calls = [{"jsonrpc": "2.0", "method": "nap", "params": [i] * (i % 3), "id": i} for i in range(9)]
    chunks = [compact(calls[0]), b"".join(map(compact, calls[1:6])), b"".join(map(compact, calls[6:]))]
    chunks.append(b'{"jsonrpc":"2.0"')
    expected_ran: list[Any] = []
    expected = general_path(b"".join(chunks), expected_ran, eof)
    ran: list[Any] = []
    srv = aio_server("async", ran, max_concurrent_calls=2)
    got = run(lambda: serve_chunks(srv, chunks, [3, 0, 0, 0], eof))
    assert sorted(got) == sorted(expected) and len(got) == 9 + eof
    assert normal(ran) == normal(expected_ran)


def test_same_replies_for_content_length_reads_holding_many_messages() -> None:
    bodies = [json.dumps(request("echo", [i], id_=i)).encode() for i in range(5)] + [b'{"bad"']
    stream = b"".join(b"Content-Length: %d\r\n\r\n%s" % (len(body), body) for body in bodies)
    expected_ran: list[Any] = []
    expected = general_path(stream, expected_ran)
    ran: list[Any] = []
    written = b"".join(run(lambda: serve_chunks(aio_server("async", ran), [stream], [0])))
    got = [b"Content-Length: " + frame for frame in written.split(b"Content-Length: ")[1:]]
    assert sorted(got) == sorted(expected) and len(got) == 6
    assert normal(ran) == normal(expected_ran)


# -- limits with many lines in one read ----------------------------------------------


def echo_server(**options: Any) -> aio.RPCServer:
    srv = aio.RPCServer(**options)

    @srv.register
    async def echo(x: Any) -> Any:
        return x

    return srv


def lines(*messages: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(m).encode() + b"\n" for m in messages)


class HeldCalls:
    """A server whose ``hold`` calls wait for ``release`` (counting those running and the peak)."""

    def __init__(self, max_concurrent_calls: int) -> None:
        self.srv = aio.RPCServer(max_concurrent_calls=max_concurrent_calls)
        self.srv.register_function(self.hold)
        self.srv.register_function(self.quick)
        self.running = self.peak = 0
        self.release = asyncio.Event()

    async def hold(self, i: int) -> int:
        self.running += 1
        self.peak = max(self.peak, self.running)
        await self.release.wait()
        self.running -= 1
        return i

    async def quick(self, i: int) -> int:
        return i

    async def until_running(self, count: int) -> None:
        async with asyncio.timeout(WAIT):
            while self.running < count:
                await asyncio.sleep(0.01)

    async def until_stopped(self) -> None:
        """Until the server has stopped reading the connection and every call it counts has started.

        The server runs on the test's loop: from then on no call starts until one
        ends. Not a sleep: a server that ignores the limit never stops reading.
        """
        async with asyncio.timeout(WAIT):
            while not (any(conn._read_paused for conn in self.srv._conns) and self.running == self.srv.total_busy):
                await asyncio.sleep(0.01)


def test_one_read_of_many_calls_respects_the_connection_limit() -> None:
    async def main() -> None:
        held = HeldCalls(max_concurrent_calls=3)
        async with serving(held.srv) as address:
            raw = await RawConn.open(address)
            await raw.send(lines(*(request("hold", [i], id_=i) for i in range(10))))
            await held.until_stopped()
            assert held.running == 3 and held.peak == 3  # the other seven wait, unread
            held.release.set()
            got = {(await raw.recv())["id"] for _ in range(10)}
            assert got == set(range(10)) and held.peak == 3
            # Calls that never wait take no slot for long: a read of 200 goes through.
            await raw.send(lines(*(request("quick", [i], id_=i) for i in range(200))))
            assert [(await raw.recv())["result"] for _ in range(200)] == list(range(200))
            await raw.close()

    run(main)


def test_many_lines_decoded_at_once_still_respect_the_connection_limit() -> None:
    # After the first read the framing is known and a read of many lines is decoded in
    # one step (receive_requests); it must start no more calls than the limit allows.
    async def main() -> None:
        held = HeldCalls(max_concurrent_calls=3)
        async with serving(held.srv) as address:
            raw = await RawConn.open(address)
            await raw.send(lines(request("hold", [0], id_=0)))
            await held.until_running(1)
            await raw.send(lines(*(request("hold", [i], id_=i) for i in range(1, 11))))
            await held.until_stopped()
            assert held.running == 3 and held.peak == 3
            held.release.set()
            got = {(await raw.recv())["id"] for _ in range(11)}
            assert got == set(range(11)) and held.peak == 3
            await raw.close()

    run(main)


@pytest.mark.timeout(30)
def test_many_lines_arriving_with_one_slot_left_are_taken_one_by_one() -> None:
    # One slot left (limit 2, one call held): no group can be taken; the lines must still
    # be read one at a time (this once spun for ever without taking any).
    async def main() -> None:
        held = HeldCalls(max_concurrent_calls=2)
        async with serving(held.srv) as address:
            raw = await RawConn.open(address)
            await raw.send(lines(request("hold", [0], id_=0)))
            await held.until_running(1)
            await raw.send(lines(*(request("quick", [i], id_=i) for i in range(1, 6))))
            got = [(await raw.recv())["id"] for _ in range(5)]
            assert sorted(got) == [1, 2, 3, 4, 5]
            held.release.set()
            assert (await raw.recv())["id"] == 0
            await raw.close()

    run(main)


def test_an_oversized_line_among_many_answers_those_before_then_closes() -> None:
    async def main() -> None:
        srv = echo_server(max_message_size=200)

        async with serving(srv) as address:
            raw = await RawConn.open(address)
            big = request("echo", ["x" * 300], id_=99)
            await raw.send(lines(request("echo", [1], id_=1), request("echo", [2], id_=2), big, request("echo", [3])))
            replies = {r["id"]: r for r in [await raw.recv() for _ in range(3)]}  # the id 1 after it never runs
            assert [replies[1]["result"], replies[2]["result"]] == [1, 2]
            assert replies[None]["error"]["code"] == -32600 and "too large" in replies[None]["error"]["message"]
            assert await raw.recv() is None  # closed: the request after it is never run
            await raw.close()

    run(main)


def test_a_partial_line_after_whole_ones_still_meets_read_timeout() -> None:
    async def main() -> None:
        srv = echo_server(read_timeout=0.2, idle_timeout=None)

        async with serving(srv) as address:
            raw = await RawConn.open(address)
            await raw.send(lines(request("echo", [1], id_=1), request("echo", [2], id_=2)) + b'{"jsonrpc":"2.0",')
            assert [(await raw.recv())["id"] for _ in range(2)] == [1, 2]
            assert await raw.recv(timeout=5) is None  # the unfinished message timed out: closed
            await raw.close()

    run(main)


IDLE = 1.0  # the server's idle_timeout in test_idle_timeout_counts_from_the_last_of_many_calls


def test_idle_timeout_counts_from_the_last_of_many_calls() -> None:
    async def main() -> None:
        srv = echo_server(idle_timeout=IDLE)

        async with serving(srv) as address:
            await in_time_rounds_async(lambda: _calls_kept_it_open(address), "idle_timeout")

    run(main)


async def _calls_kept_it_open(address: Any) -> bool:
    """Four rounds of 20 calls 0.4 s apart are answered, then the idle close; False: the round stalled.

    The server's idle time starts after ``since`` (before connecting, then before
    the last round was sent): a round sent idle_timeout or more after that (the
    process stalled, timers and all) may rightly find the connection closed.
    """
    since = time.monotonic()
    raw = await RawConn.open(address)
    try:
        for round_ in range(4):  # 1.6 s in all: without the calls resetting it, idle_timeout would cut in
            sending = time.monotonic()
            try:
                await raw.send(lines(*(request("echo", [i], id_=i) for i in range(20))))
            except OSError:
                if kept(since, IDLE):
                    raise
                return False
            if not kept(since, IDLE):
                return False
            since = sending
            assert [(await raw.recv())["id"] for _ in range(20)] == list(range(20)), round_
            await asyncio.sleep(0.4)
        assert await raw.recv(timeout=5) is None  # then, idle, the connection is closed
        return True
    finally:
        await raw.close()


def test_lines_followed_by_end_of_input_are_all_run_and_answered() -> None:
    async def main() -> None:
        srv = aio.RPCServer(max_concurrent_calls=2)
        notes: list[int] = []

        @srv.register
        async def note(i: int) -> None:
            notes.append(i)

        @srv.register
        async def echo(x: Any) -> Any:
            await asyncio.sleep(0)
            return x

        async with serving(srv) as address:
            raw = await RawConn.open(address)
            calls = [request("echo", [i], id_=i) for i in range(6)] + [request("note", [i], id_=None) for i in range(6)]
            raw.writer.write(lines(*calls))
            raw.writer.write_eof()
            assert sorted([(await raw.recv())["id"] for _ in range(6)]) == list(range(6))
            assert await raw.recv() is None
            assert sorted(notes) == list(range(6))
            await raw.close()

    run(main)


def test_requests_read_together_during_shutdown_are_refused_in_order() -> None:
    async def main() -> None:
        srv = echo_server()

        conn = srv.protocol()
        transport = CountingTransport()
        conn.connection_made(transport)
        conn.drain()  # type: ignore[attr-defined]
        conn.data_received(lines(request("echo", [1], id_=1), request("echo", [2], id_=2)))
        replies = [json.loads(line) for line in b"".join(transport.writes).splitlines()]
        assert [(r["id"], r["error"]["code"]) for r in replies] == [(1, -32000), (2, -32000)]
        conn.connection_lost(None)

    run(main)


def test_connections_of_one_thread_share_the_read_buffer_without_mixing_their_bytes() -> None:
    async def main() -> None:
        srv = echo_server()

        conns, transports = [srv.protocol(), srv.protocol()], [CountingTransport(), CountingTransport()]
        for conn, transport in zip(conns, transports, strict=True):
            conn.connection_made(transport)
        assert all(isinstance(conn, asyncio.BufferedProtocol) for conn in conns)  # asyncio reads into the buffer
        buffers = [conn.get_buffer(-1) for conn in conns]  # type: ignore[attr-defined]
        assert buffers[0].obj is buffers[1].obj
        for i in range(6):  # each read lands in the same buffer, as asyncio's transports do it
            conn = conns[i % 2]
            data = lines(request("echo", [f"{i % 2}-{i}"], id_=i))
            buffers[i % 2][: len(data)] = data
            conn.buffer_updated(len(data))  # type: ignore[attr-defined]
        for _ in range(5):
            await asyncio.sleep(0)
        for side, transport in enumerate(transports):
            got = [json.loads(line)["result"] for line in b"".join(transport.writes).splitlines()]
            assert got == [f"{side}-{i}" for i in range(side, 6, 2)]
        for conn in conns:
            conn.connection_lost(None)

    run(main)
