"""aio.RPCServer's speed tricks keep its limits and its bytes.

- A read of many calls is taken ``max_concurrent_calls`` at a time within one
  runner step; the replies so far are written before each next batch.
  Invariant: a pipelining peer that never reads makes the server stop taking
  calls after a bounded amount of buffered replies (the transport's high-water
  mark plus one batch), not after its whole read; a peer that reads gets the
  first replies in writes of their own.
- Success replies framed by newlines are encoded by the connection itself.
  Invariant: the bytes are those of ``ServerConnection.encode_result``, and a
  result that is not JSON still becomes the general path's -32603.
- While the server listens and has connections, the runner task waits for the
  next call instead of ending. Invariant: calls behave as with a runner per read
  (a call that waits keeps its task), and the waiting runner is gone once the
  last connection closes or the server shuts down, without the grace period.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from _aio_support import WAIT, OneLoop, request, run, serving, spin_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jsonrpc_mini import aio
from jsonrpc_mini._protocol import ServerConnection
from jsonrpc_mini.testing._json_strategies import big_integers, json_values

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.timeout(120),
]

HIGH_WATER = 64 * 1024


class StuckTransport(asyncio.Transport):
    """A transport whose peer never reads: writes pile up; over HIGH_WATER it pauses writing."""

    def __init__(self) -> None:
        super().__init__()
        self.protocol: Any = None
        self.data = bytearray()
        self.writes = 0
        self.closing = False
        self.reading = True
        self.paused = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.data += data
        self.writes += 1
        if not self.paused and len(self.data) > HIGH_WATER:
            self.paused = True
            self.protocol.pause_writing()

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def get_write_buffer_size(self) -> int:
        return len(self.data)


def lines(count: int, method: str) -> bytes:
    return b"".join(json.dumps(request(method, [i], id_=i)).encode() + b"\n" for i in range(count))


@pytest.mark.parametrize("size", [10, 4000])
def test_a_peer_that_never_reads_stops_the_calls_after_bounded_replies(size: int) -> None:
    async def main() -> None:
        srv = aio.RPCServer()
        ran: list[int] = []

        @srv.register
        async def big(i: int) -> str:
            ran.append(i)
            return "x" * size

        conn = srv.protocol()
        transport = StuckTransport()
        transport.protocol = conn
        conn.connection_made(transport)
        count = 4 * HIGH_WATER // size + 200
        conn.data_received(lines(count, "big"))
        for _ in range(20):
            await asyncio.sleep(0)
        reply = len(json.dumps({"jsonrpc": "2.0", "id": count, "result": "x" * size})) + 1
        # Taking calls stops once the buffer is over the mark: at most one more
        # pump's calls (max_concurrent_calls) after it.
        bound = HIGH_WATER + 2 * 32 * reply
        assert transport.paused and not transport.reading
        assert len(ran) < count
        assert len(transport.data) <= bound
        replies = [json.loads(line) for line in bytes(transport.data).splitlines()]
        assert [r["id"] for r in replies] == ran[: len(replies)]
        assert len(ran) <= len(replies) + 2 * 32  # run but not yet written: at most two batches
        conn.connection_lost(None)

    run(main)


def test_calls_read_together_are_answered_in_order_a_batch_per_write() -> None:
    """1,000 calls of one read, taken 32 at a time: every reply, in order, 32 per write."""

    async def main() -> None:
        srv = aio.RPCServer()

        @srv.register
        async def add(a: int, b: int) -> int:
            return a + b

        conn = srv.protocol()
        transport = StuckTransport()
        transport.protocol = conn
        conn.connection_made(transport)
        conn.data_received(b"".join(json.dumps(request("add", [i, 1], id_=i)).encode() + b"\n" for i in range(1000)))
        for _ in range(20):
            await asyncio.sleep(0)
        replies = [json.loads(line) for line in bytes(transport.data).splitlines()]
        assert [(r["id"], r["result"]) for r in replies] == [(i, i + 1) for i in range(1000)]
        assert transport.writes == -(-1000 // 32)
        conn.connection_lost(None)

    run(main)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    results=st.lists(
        st.one_of(json_values(max_leaves=6), big_integers(), st.just(10**5000), st.just(float("nan")), st.just({1, 2})),
        max_size=6,
    )
)
def test_success_replies_are_the_bytes_of_encode_result(one_loop: OneLoop, results: list[Any]) -> None:
    async def main() -> None:
        srv = aio.RPCServer()
        values = iter(results)

        @srv.register
        async def give() -> Any:
            return next(values)

        conn = srv.protocol()
        transport = StuckTransport()
        transport.protocol = conn
        conn.connection_made(transport)
        reference = ServerConnection(framing="newline")
        expected = b""
        for i, result in enumerate(results):
            conn.data_received(json.dumps(request("give", id_=i)).encode() + b"\n")
            for _ in range(3):
                await asyncio.sleep(0)
            expected += reference.encode_result(i, result)
        assert bytes(transport.data) == expected
        conn.connection_lost(None)

    one_loop.run(main)


# -- the runner waits for the next call instead of ending ------------------------------


def make_pinging_server(running: asyncio.Event | None = None, gate: asyncio.Event | None = None) -> aio.RPCServer:
    srv = aio.RPCServer(shutdown_grace=60.0)

    @srv.register
    async def where() -> int:
        return id(asyncio.current_task())

    @srv.register
    async def hold() -> int:
        assert running is not None and gate is not None
        running.set()
        await gate.wait()  # (it waits, whatever the machine's speed, until the test is done with it)
        return id(asyncio.current_task())

    return srv


def test_calls_read_at_different_times_run_in_one_waiting_runner() -> None:
    async def main() -> None:
        running, gate = asyncio.Event(), asyncio.Event()
        srv = make_pinging_server(running, gate)
        async with serving(srv) as address, await aio.connect(*address, timeout=WAIT) as c:
            first = await c.where()
            # The runner has nothing to do meanwhile: it waits (the loop turns until it does).
            await spin_until(lambda: srv._runner is not None and srv._runner._wake is not None)
            assert await c.where() == first  # woken, not replaced
            # A call that waits keeps that runner; the next call gets another one.
            holding = asyncio.ensure_future(c.hold())
            await asyncio.wait_for(running.wait(), WAIT)
            assert await c.where() != first
            gate.set()
            assert await holding == first

    run(main)


def test_a_waiting_runner_ends_with_the_last_connection_and_at_shutdown() -> None:
    async def main() -> None:
        srv = make_pinging_server()
        address = await srv.start("127.0.0.1", 0)
        assert isinstance(address, tuple)
        try:
            one = await aio.connect(*address, timeout=WAIT)
            two = await aio.connect(*address, timeout=WAIT)
            await one.where()
            await two.where()
            runner = srv._runner
            assert runner is not None and runner.task is not None
            await one.close()
            await spin_until(lambda: srv.connection_count == 1)  # the server saw one go
            assert runner.task is not None  # a connection is left: still waiting
            await two.close()
            async with asyncio.timeout(WAIT):
                while runner.task is not None:
                    await asyncio.sleep(0.01)
            three = await aio.connect(*address, timeout=WAIT)
            assert await three.where()
            assert runner.task is not None and runner._wake is not None
        finally:
            # A runner waiting for calls is not a call in flight: shutdown does not
            # wait the grace period (60 s) for it.
            async with asyncio.timeout(WAIT):
                await srv.shutdown()
        await three.close()
        assert srv._runner is not None and srv._runner.task is None

    run(main)
