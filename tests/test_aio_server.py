"""aio.RPCServer: flow control, limits, timeouts, wire-level errors and graceful shutdown."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

import pytest
from _aio_support import WAIT, RawConn, StoppedClock, request, run, serving, spin_until, until
from _driver_helpers import in_time_rounds_async

from jsonrpc_mini import ConnectionLost, RPCServer, ServerOptions, aio

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.timeout(60),
]


class Gauge:
    """Counts handlers running at once (and records their values); they wait until released."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.values: list[Any] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    def settled(self, srv: aio.RPCServer) -> bool:
        """Whether every call the server counts has started here (the runner may start one later)."""
        return self.now == srv.total_busy

    async def hold(self, value: object = None) -> object:
        self.values.append(value)
        self.now += 1
        self.peak = max(self.peak, self.now)
        self.started.set()
        try:
            await self.release.wait()
        finally:
            self.now -= 1
        return value


def test_options_and_defaults_match_the_sync_server() -> None:
    async def main() -> None:
        srv = aio.RPCServer()
        assert srv.options == ServerOptions() == RPCServer().options
        assert srv.max_total_calls == 1024
        with pytest.raises(ValueError):
            aio.RPCServer(max_concurrent_calls=0)
        with pytest.raises(ValueError):
            aio.RPCServer(max_total_calls=0)
        with pytest.raises(ValueError):
            aio.RPCServer(framing="xml")  # type: ignore[arg-type]

    run(main)


def test_per_connection_limit_applies_back_pressure() -> None:
    async def main() -> None:
        gauge = Gauge()
        srv = aio.RPCServer(max_concurrent_calls=3)
        srv.register_function(gauge.hold, name="hold")
        async with serving(srv) as address, await aio.connect(*address, timeout=WAIT) as c:
            calls = [asyncio.create_task(c.hold(i)) for i in range(10)]
            # The server stops reading the connection when it may start no more calls
            # (the one loop runs both sides: nothing starts until a call ends). Not
            # a sleep: without the limit it never stops.
            await until(lambda: any(conn._read_paused for conn in srv._conns) and gauge.settled(srv))
            assert gauge.now == 3
            gauge.release.set()
            assert await asyncio.gather(*calls) == list(range(10))
            assert gauge.peak == 3

    run(main)


def test_total_limit_spans_connections() -> None:
    async def main() -> None:
        gauge = Gauge()
        srv = aio.RPCServer(max_total_calls=4)
        srv.register_function(gauge.hold, name="hold")
        async with serving(srv) as address:
            clients = [await aio.connect(*address, timeout=WAIT) for _ in range(3)]
            calls = [asyncio.create_task(c.hold(3 * k + i)) for i in range(3) for k, c in enumerate(clients)]

            def held_back() -> bool:
                # Every connection with a call not started is held at the gate (the one
                # loop runs both sides: none of them starts one until a call ends). Not
                # a sleep: without the limit none is held.
                left = sum(sum(v // 3 == k for v in gauge.values) < 3 for k in range(3))
                return bool(gauge.values) and len(srv._blocked) == left and gauge.settled(srv)

            await until(held_back)
            assert gauge.now == 4 and srv.total_busy == 4 and len(gauge.values) == 4
            gauge.release.set()
            assert sorted(await asyncio.gather(*calls)) == list(range(9))
            assert gauge.peak == 4 and srv.total_busy == 0
            for c in clients:
                await c.close()

    run(main)


def test_a_request_read_alone_at_a_limit_waits() -> None:
    # A read of one whole request line takes a short way (no pump), which checks the
    # limits itself: each request here is sent once the one before has started (or
    # been stopped), so that each is read alone, on a connection whose first call
    # (which tells its framing) has been answered.
    async def main() -> None:
        gauge = Gauge()
        srv = aio.RPCServer(max_concurrent_calls=2, max_total_calls=3)
        srv.register_function(gauge.hold, name="hold")
        srv.register_function(lambda: 1, name="one")
        async with serving(srv) as address:
            first, second = await RawConn.open(address), await RawConn.open(address)
            for conn in (first, second):
                await conn.send(request("one", id_=0))
                assert (await conn.recv())["result"] == 1
            for n in (1, 2):
                await first.send(request("hold", [n], id_=n))
                await until(lambda: gauge.now == n)  # noqa: B023 (awaited here)
            await first.send(request("hold", [3], id_=3))  # over the connection's limit (not the total)
            await until(lambda: any(conn._read_paused for conn in srv._conns) and gauge.settled(srv))
            assert gauge.now == 2
            await second.send(request("hold", [4], id_=4))
            await until(lambda: gauge.now == 3)
            assert not srv._blocked
            await second.send(request("hold", [5], id_=5))  # over the total limit
            await until(lambda: len(srv._blocked) == 1 and gauge.settled(srv))
            assert gauge.now == 3 and gauge.values == [1, 2, 4]
            gauge.release.set()
            assert sorted([(await first.recv())["id"] for _ in range(3)]) == [1, 2, 3]
            assert sorted([(await second.recv())["id"] for _ in range(2)]) == [4, 5]
            for conn in (first, second):
                await conn.close()

    run(main)


def test_max_connections_refuses_with_an_error() -> None:
    async def main() -> None:
        srv = aio.RPCServer(max_connections=2)
        srv.register_function(lambda: 1, name="one")
        async with serving(srv) as address:
            held = [await RawConn.open(address) for _ in range(2)]
            for conn in held:
                await conn.send(request("one"))
                assert (await conn.recv())["result"] == 1
            extra = await RawConn.open(address)
            refusal = await extra.recv()
            assert refusal["id"] is None and refusal["error"]["code"] == -32000
            assert "too many connections" in refusal["error"]["message"]
            assert await extra.recv() is None  # and closed
            await extra.close()
            await held[0].close()
            await until(lambda: srv.connection_count == 1)  # a slot freed
            again = await RawConn.open(address)
            await again.send(request("one"))
            assert (await again.recv())["result"] == 1
            for conn in (held[1], again):
                await conn.close()

    run(main)


IDLE = 0.3  # the server's idle_timeout in test_idle_timeout_closes_idle_connections_but_not_busy_ones


def test_idle_timeout_closes_idle_connections_but_not_busy_ones() -> None:
    async def main() -> None:
        srv = aio.RPCServer(idle_timeout=IDLE)
        entered: list[float] = []  # when each nap began

        @srv.register
        async def nap(seconds: float) -> str:
            entered.append(time.monotonic())
            await asyncio.sleep(seconds)
            return "awake"

        async with serving(srv) as address:
            await in_time_rounds_async(lambda: _a_nap_outlasts_idle_timeout(address, entered), "idle_timeout")
            idle = await RawConn.open(address)
            assert await idle.recv() is None  # closed by the server after 0.3 s
            await idle.close()

    run(main)


async def _a_nap_outlasts_idle_timeout(address: tuple[str, int], entered: list[float]) -> bool:
    """A call of 0.8 s (> idle_timeout) is answered; False if it began idle_timeout or more after connecting.

    The server's idle time starts after ``since``: a call it took that late (this
    process stalled) may rightly find the connection closed (see ``kept``).
    """
    entered.clear()
    since = time.monotonic()
    async with await aio.connect(*address, timeout=WAIT) as busy:
        try:
            assert await busy.nap(0.8) == "awake"
        except ConnectionLost:
            if entered and entered[0] - since < IDLE:
                raise
            return False
    return True


def test_read_timeout_closes_a_connection_stuck_mid_message() -> None:
    async def main() -> None:
        srv = aio.RPCServer(read_timeout=0.3)
        async with serving(srv) as address:
            raw = await RawConn.open(address)
            await raw.send(b'{"jsonrpc":"2.0","method":"x",')
            assert await raw.recv() is None
            await raw.close()

    run(main)


def test_wire_errors_keep_the_connection() -> None:
    async def main() -> None:
        srv = aio.RPCServer()
        srv.register_function(lambda a, b: a + b, name="add")
        async with serving(srv) as address:
            raw = await RawConn.open(address)
            await raw.send(b'{"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": 1]\n')
            assert (await raw.recv())["error"]["code"] == -32700
            await raw.send({"jsonrpc": "2.0", "method": "add", "params": "x", "id": 5})
            reply = await raw.recv()
            assert (reply["id"], reply["error"]["code"]) == (5, -32600)
            await raw.send(b"[]\n")
            assert (await raw.recv())["error"]["code"] == -32600
            # pretty-printed, no trailing newline: complete at the closing bracket
            await raw.send(b'{\n "jsonrpc": "2.0",\n "method": "add",\n "params": [2, 2],\n "id": 0\n}')
            assert await raw.recv() == {"jsonrpc": "2.0", "id": 0, "result": 4}
            await raw.close()

    run(main)


def test_oversized_message_gets_one_error_and_a_close() -> None:
    async def main() -> None:
        srv = aio.RPCServer(max_message_size=1000)
        srv.register_function(len, name="size")
        async with serving(srv) as address:
            raw = await RawConn.open(address)
            await raw.send(request("size", ["x" * 100]))
            assert (await raw.recv())["result"] == 100
            await raw.send(request("size", ["x" * 5000]))
            reply = await raw.recv()
            assert reply["id"] is None and reply["error"]["code"] == -32600
            assert "too large" in reply["error"]["message"]
            assert await raw.recv() is None
            await raw.close()

    run(main)


def test_half_close_still_answers_and_runs_notifications() -> None:
    async def main() -> None:
        srv = aio.RPCServer(max_concurrent_calls=2)
        ran: list[int] = []

        @srv.register
        async def work(i: int) -> int:
            await asyncio.sleep(0.01)
            ran.append(i)
            return i

        async with serving(srv) as address:
            raw = await RawConn.open(address)
            for i in range(10):
                raw.writer.write(json.dumps(request("work", [i], id_=i if i % 2 else None)).encode() + b"\n")
            raw.writer.write_eof()
            replies = []
            while (reply := await raw.recv()) is not None:
                replies.append(reply)
            assert sorted(r["id"] for r in replies) == [1, 3, 5, 7, 9]
            assert sorted(ran) == list(range(10))  # the notifications ran too
            await raw.close()

    run(main)


def test_graceful_shutdown_finishes_short_calls_and_cuts_long_ones() -> None:
    # The grace period is the loop's time: stopped (StoppedClock), it ends only when the
    # test moves the clock on, so the short call ends within it and the long one
    # outlasts it however slow this machine is (a 0.2 s call against a 0.5 s grace did not).
    async def main() -> None:
        srv = aio.RPCServer(shutdown_grace=0.5)
        entered: list[str] = []
        cut: list[str] = []
        finish = asyncio.Event()

        @srv.register
        async def nap(kind: str) -> str:
            entered.append(kind)
            try:
                await (finish if kind == "short" else asyncio.Event()).wait()  # (the long one: for ever)
            except asyncio.CancelledError:
                cut.append(kind)
                raise
            return kind

        address = await srv.start("127.0.0.1", 0)
        c = await aio.connect(*address, timeout=WAIT)  # type: ignore[misc]
        short = asyncio.create_task(c.nap("short"))
        long = asyncio.create_task(c.nap("long"))
        await until(lambda: len(entered) == 2)  # both running (a fixed 0.05 s assumed it)
        clock = StoppedClock()
        stopping = asyncio.create_task(srv.shutdown())
        await spin_until(lambda: srv.address is None)  # shutdown() has begun
        finish.set()
        assert await short == "short"  # finished within the grace period
        clock.advance(0.45)  # not the whole grace period: nothing is cut
        for _ in range(20):  # loop turns enough for a timer that is due to cut the call (3)
            await asyncio.sleep(0)
        assert cut == [] and not long.done() and not stopping.done()
        clock.advance(0.05)
        clock.run_on()
        await stopping
        assert cut == ["long"]
        with pytest.raises(aio.ConnectionLost):
            await long
        assert srv.connection_count == 0 and srv.address is None
        with pytest.raises(aio.ConnectionLost):
            await aio.connect(*address)  # type: ignore[misc]
        await srv.shutdown()  # idempotent
        await c.close()

    run(main)


def test_requests_during_shutdown_get_shutting_down_errors() -> None:
    async def main() -> None:
        srv = aio.RPCServer(shutdown_grace=5)
        gauge = Gauge()
        srv.register_function(gauge.hold, name="hold")
        srv.register_function(lambda: 1, name="one")
        address = await srv.start("127.0.0.1", 0)
        raw = await RawConn.open(address)  # type: ignore[arg-type]
        await raw.send(request("hold", ["done"], id_=1))
        await gauge.started.wait()
        stopping = asyncio.create_task(srv.shutdown())
        await until(lambda: srv.address is None)  # shutdown() has begun (a fixed 0.05 s assumed it)
        await raw.send(request("one", id_=2))
        assert await raw.recv() == {
            "jsonrpc": "2.0",
            "id": 2,
            "error": {"code": -32000, "message": "Server error: the server is shutting down"},
        }
        gauge.release.set()
        assert await raw.recv() == {"jsonrpc": "2.0", "id": 1, "result": "done"}
        await stopping
        assert await raw.recv() is None
        await raw.close()

    run(main)


def test_restart_serve_forever_and_async_with() -> None:
    async def main() -> None:
        srv = aio.RPCServer()
        srv.register_function(lambda: "pong", name="ping")
        for _ in range(2):  # can start again after shutdown
            async with srv:
                address = await srv.start("127.0.0.1", 0)
                with pytest.raises(RuntimeError, match="already listening"):
                    await srv.start("127.0.0.1", 0)
                async with await aio.connect(*address) as c:  # type: ignore[misc]
                    assert await c.ping() == "pong"
            assert srv.address is None
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        task = asyncio.create_task(srv.serve_forever("127.0.0.1", port))
        async with asyncio.timeout(WAIT):
            while srv.address is None:
                await asyncio.sleep(0.01)
        async with await aio.connect("127.0.0.1", port) as c:
            assert await c.ping() == "pong"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert srv.address is None
        # serve_forever also returns when shutdown() is called elsewhere
        task = asyncio.create_task(srv.serve_forever("127.0.0.1", 0))
        async with asyncio.timeout(WAIT):
            while srv.address is None:
                await asyncio.sleep(0.01)
        await srv.shutdown()
        await asyncio.wait_for(task, WAIT)

    run(main)


def test_shutdown_from_a_handler() -> None:
    async def main() -> None:
        srv = aio.RPCServer(shutdown_grace=2)

        @srv.register
        async def stop() -> str:
            await srv.shutdown()
            return "stopping"

        address = await srv.start("127.0.0.1", 0)
        async with await aio.connect(*address, timeout=WAIT) as c:  # type: ignore[misc]
            assert await c.stop() == "stopping"  # its connection closes once the reply is out (as sync)
            with pytest.raises(aio.ConnectionLost):
                await c.stop()
        assert srv.address is None
        async with asyncio.timeout(WAIT):
            while srv.connection_count:
                await asyncio.sleep(0.01)

    run(main)


@pytest.mark.parametrize("members", [1, 3])
def test_shutdown_from_a_batch_member(members: int) -> None:
    """As from a lone call: the batch is answered whole, then its connection closes."""

    async def main() -> None:
        srv = aio.RPCServer(shutdown_grace=2)

        @srv.register
        async def stop() -> str:
            await srv.shutdown()
            return "stopping"

        @srv.register
        async def add(a: int, b: int) -> int:
            return a + b

        address = await srv.start("127.0.0.1", 0)
        conn = await RawConn.open(address)
        try:
            await conn.send([request("stop", id_=0)] + [request("add", [i, 1], i) for i in range(1, members)])
            replies = await conn.recv()  # (was: the connection closed, no reply)
            assert replies == [{"jsonrpc": "2.0", "id": 0, "result": "stopping"}] + [
                {"jsonrpc": "2.0", "id": i, "result": i + 1} for i in range(1, members)
            ]
            assert await conn.recv() is None  # then it closes
        finally:
            await conn.close()
        assert srv.address is None
        async with asyncio.timeout(WAIT):
            while srv.connection_count:
                await asyncio.sleep(0.01)
        assert not srv._batch_tasks  # (each batch forgets its workers)

    run(main)


def test_server_stops_taking_calls_while_the_client_does_not_read() -> None:
    async def main() -> None:
        srv = aio.RPCServer()
        ran = []

        @srv.register
        async def big(i: int) -> str:
            ran.append(i)
            return "y" * 2**20

        async with serving(srv) as address:
            raw = await RawConn.open(address)
            raw.reader._limit = 2**22  # allow 1 MiB lines
            for i in range(64):
                raw.writer.write(json.dumps(request("big", [i], id_=i)).encode() + b"\n")
            await raw.writer.drain()
            # The server stops: writing paused (the client reads no more), so reading too,
            # and no call in flight. Nothing starts until the client reads (a fixed 0.5 s
            # assumed the server had got that far).
            await until(
                lambda: srv.total_busy == 0 and any(conn._write_paused and conn._read_paused for conn in srv._conns)
            )
            assert len(ran) < 64  # 64 MiB of replies: the server paused instead of buffering them
            ids = [(await raw.recv())["id"] for _ in range(64)]
            assert sorted(ids) == list(range(64)) and sorted(ran) == list(range(64))
            await raw.close()

    run(main)
