"""aio.RPCServer runs calls without a task per call: each call must still behave as if it had one.

The requests of each test arrive in one write, so the server reads them together
and one runner task takes them in turn (see jsonrpc_mini/_aio_runner.py).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading

import pytest
from _aio_support import RawConn, request, run, serving, until

from jsonrpc_mini import aio

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.timeout(60),
]


def lines(*messages: dict[str, object]) -> bytes:
    return b"".join(json.dumps(m).encode() + b"\n" for m in messages)


async def replies(raw: RawConn, count: int) -> dict[object, object]:
    """The next ``count`` replies by id (result or error code)."""
    out: dict[object, object] = {}
    for _ in range(count):
        reply = await raw.recv()
        out[reply["id"]] = reply["result"] if "result" in reply else reply["error"]["code"]
    return out


def test_a_handler_runs_in_one_task_from_start_to_end() -> None:
    async def main() -> None:
        srv = aio.RPCServer()

        @srv.register
        async def same_task() -> bool:
            before = asyncio.current_task()
            await asyncio.sleep(0)
            return before is not None and before is asyncio.current_task()

        @srv.register
        async def guarded(seconds: float) -> str:
            try:
                async with asyncio.timeout(0.05):  # needs a current task, in the first step too
                    await asyncio.sleep(seconds)
            except TimeoutError:
                return "timed out"
            return "in time"

        @srv.register
        async def quick() -> bool:
            return asyncio.current_task() is not None

        async with serving(srv) as address:
            raw = await RawConn.open(address)
            calls = [request("quick", id_=1), request("same_task", id_=2)]
            calls += [request("guarded", [5], id_=3), request("guarded", [0], id_=4), request("quick", id_=5)]
            await raw.send(lines(*calls))
            assert await replies(raw, 5) == {1: True, 2: True, 3: "timed out", 4: "in time", 5: True}
            await raw.close()

    run(main)


def test_each_call_has_its_own_context() -> None:
    async def main() -> None:
        srv = aio.RPCServer()
        var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

        @srv.register
        async def swap(value: str) -> str:
            old = var.get()
            var.set(value)
            return old

        @srv.register
        async def swap_later(value: str) -> list[str]:
            old = var.get()
            var.set(value)
            await asyncio.sleep(0.01)
            return [old, var.get()]

        async with serving(srv) as address:
            raw = await RawConn.open(address)
            calls = [request("swap", ["a"], id_=1), request("swap_later", ["b"], id_=2), request("swap", ["c"], id_=3)]
            await raw.send(lines(*calls))
            assert await replies(raw, 3) == {1: "unset", 2: ["unset", "b"], 3: "unset"}
            await raw.close()

    run(main)


def test_calls_read_together_do_not_wait_for_one_that_waits() -> None:
    async def main() -> None:
        srv = aio.RPCServer()
        gate = asyncio.Event()

        @srv.register
        async def slow() -> str:
            await gate.wait()
            return "slow"

        @srv.register
        async def fast(n: int) -> int:
            return n

        async with serving(srv) as address:
            raw = await RawConn.open(address)
            await raw.send(lines(request("slow", id_=0), *(request("fast", [i], id_=i) for i in range(1, 6))))
            assert await replies(raw, 5) == {i: i for i in range(1, 6)}
            gate.set()
            assert await replies(raw, 1) == {0: "slow"}
            await raw.close()

    run(main)


def test_a_handler_cancelling_itself_affects_only_its_own_call() -> None:
    async def main() -> None:
        srv = aio.RPCServer()

        @srv.register
        async def cancel_me() -> int:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            return 1  # returned before the cancellation lands: the reply is still sent

        @srv.register
        async def raise_cancelled() -> int:
            # Its task was not cancelled: the handler raised it itself, and its caller
            # still gets an answer (-32603), not silence (review8 F11).
            raise asyncio.CancelledError

        @srv.register
        async def nap() -> str:
            await asyncio.sleep(0.01)
            return "slept"

        async with serving(srv) as address:
            raw = await RawConn.open(address)
            calls = [request("cancel_me", id_=1), request("nap", id_=2), request("raise_cancelled", id_=3)]
            await raw.send(lines(*calls, request("nap", id_=4)))
            assert await replies(raw, 4) == {1: 1, 2: "slept", 3: -32603, 4: "slept"}
            await raw.send(lines(request("nap", id_=5)))
            assert await replies(raw, 1) == {5: "slept"}
            await raw.close()

    run(main)


def test_shutdown_waits_for_calls_read_before_it() -> None:
    async def main() -> None:
        srv = aio.RPCServer(shutdown_grace=5)

        @srv.register
        async def stop() -> str:
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(srv.shutdown()))
            return "stopping"

        @srv.register
        async def nap(n: int) -> int:
            for _ in range(n):
                await asyncio.sleep(0.01)
            return n

        address = await srv.start("127.0.0.1", 0)
        raw = await RawConn.open(address)  # type: ignore[arg-type]
        await raw.send(lines(request("stop", id_=0), *(request("nap", [i], id_=i) for i in range(1, 8))))
        assert await replies(raw, 8) == {0: "stopping", **{i: i for i in range(1, 8)}}
        assert await raw.recv() is None
        await raw.close()
        async with asyncio.timeout(5):
            while srv.address is not None or srv.connection_count:
                await asyncio.sleep(0.01)

    run(main)


class CountingTransport(asyncio.Transport):
    """Records each write (one write is one system call on a real socket)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


@pytest.mark.parametrize("kind", ["inline", "async"])
def test_replies_to_calls_read_together_go_out_in_one_write(kind: str) -> None:
    async def main() -> None:
        srv = aio.RPCServer(run_sync_in_thread=False)
        if kind == "inline":
            srv.register_function(lambda a, b: a + b, name="add")
        else:

            @srv.register
            async def add(a: int, b: int) -> int:
                return a + b

        conn = srv.protocol()
        transport = CountingTransport()
        conn.connection_made(transport)
        conn.data_received(lines(*(request("add", [i, 1], id_=i) for i in range(5))) + b"{bad json}\n")
        for _ in range(5):
            await asyncio.sleep(0)
        # Inline calls answer while the read is processed, with the error: one write.
        # Async calls answer from the runner, one loop iteration after the error.
        assert len(transport.writes) == (1 if kind == "inline" else 2)
        got = [json.loads(line) for line in b"".join(transport.writes).splitlines()]
        if kind == "async":
            assert json.loads(transport.writes[0])["id"] is None
        assert sorted((r["id"], r.get("result")) for r in got if r["id"] is not None) == [(i, i + 1) for i in range(5)]
        assert [r["error"]["code"] for r in got if r["id"] is None] == [-32700]
        conn.connection_lost(None)

    run(main)


def test_thread_pool_calls_answer_fail_and_finish_before_shutdown() -> None:
    async def main() -> None:
        srv = aio.RPCServer(shutdown_grace=5)
        entered, release = threading.Event(), threading.Event()

        def add(a: int, b: int) -> int:
            return a + b

        def boom() -> None:
            raise ValueError("no")

        def hold() -> str:
            entered.set()
            assert release.wait(10)
            return "held"

        for function in (add, boom, hold):
            srv.register_function(function)
        address = await srv.start("127.0.0.1", 0)
        raw = await RawConn.open(address)  # type: ignore[arg-type]
        await raw.send(lines(*(request("add", [i, 1], id_=i) for i in range(20)), request("boom", id_=20)))
        assert await replies(raw, 21) == {**{i: i + 1 for i in range(20)}, 20: -32603}
        await raw.send(lines(request("hold", id_=21)))
        await until(entered.is_set)  # running in a thread (a fixed 0.05 s assumed it)
        stopping = asyncio.ensure_future(srv.shutdown())
        await until(lambda: srv.address is None)  # shutdown() has begun
        assert not stopping.done()
        release.set()
        assert await replies(raw, 1) == {21: "held"}  # shutdown() waited for the call, and its reply
        await stopping
        assert await raw.recv() is None
        await raw.close()

    run(main)


def test_shutdown_gives_up_on_a_thread_pool_call_after_the_grace_period() -> None:
    async def main() -> None:
        srv = aio.RPCServer(shutdown_grace=0.1)
        entered, release = threading.Event(), threading.Event()

        def hold() -> str:
            entered.set()
            release.wait(10)
            return "held"

        srv.register_function(hold)
        address = await srv.start("127.0.0.1", 0)
        async with await aio.connect(*address, timeout=10) as c:  # type: ignore[misc]
            call = asyncio.ensure_future(c.hold())
            await until(entered.is_set)  # running in a thread (a fixed 0.05 s assumed it)
            await srv.shutdown()
            with pytest.raises(aio.ConnectionLost):
                await call
        release.set()

    run(main)
