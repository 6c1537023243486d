"""Cross-driver: the sync RPCClient against aio.RPCServer, and aio.RPCClient against the sync RPCServer."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from _aio_support import WAIT, aio_server_in_thread, run

from jsonrpc_mini import ConnectionLost, InternalError, MethodNotFound, RPCClient, RPCServer, RPCTimeout, aio
from jsonrpc_mini.testing import check

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.timeout(60),
]


def fill(server: RPCServer | aio.RPCServer) -> list[str]:
    """The same handlers on either server; returns the notes notifications write."""
    notes: list[str] = []

    def add(a: int, b: int) -> int:
        return a + b

    def echo(*args: object, **kwargs: object) -> dict[str, object]:
        return {"args": list(args), "kwargs": kwargs}

    def fail() -> None:
        raise RuntimeError("hidden")

    def nap(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    for fn in (add, echo, fail, nap):
        server.register_function(fn)
    server.register_function(notes.append, name="note")
    return notes


def test_sync_client_against_aio_server() -> None:
    srv = aio.RPCServer()
    notes = fill(srv)

    @srv.register
    async def anap(seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds

    gate: list[asyncio.Event] = []

    @srv.register
    async def wait_gate() -> str:
        gate.append(asyncio.Event())
        await gate[-1].wait()
        return "open"

    @srv.register
    async def open_gate() -> None:
        async with asyncio.timeout(WAIT):
            while not gate:
                await asyncio.sleep(0.01)
        gate[-1].set()

    with aio_server_in_thread(srv) as (host, port), RPCClient(host, port, timeout=WAIT) as c:
        assert c.add(1, 2) == 3
        assert c.echo("测试项", kw1="1") == {"args": ["测试项"], "kwargs": {"kw1": "1"}}
        with pytest.raises(InternalError):
            c.fail()
        with pytest.raises(MethodNotFound):
            c.missing()
        with c.batch() as b:
            r1, r2 = b.add(2, 3), b.anap(0.05)
            b.note("batched")
        assert (r1.result(), r2.result()) == (5, 0.05)
        c.note("direct")
        # one client shared by threads: calls are multiplexed on one connection
        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(lambda i: c.add(i, i), range(64))) == [2 * i for i in range(64)]
        # a call blocked on the server does not delay others on the same connection
        slow = threading.Thread(target=c.wait_gate)
        slow.start()
        assert c.add(0, 0) == 0
        assert slow.is_alive()  # still waiting: only open_gate() below releases it
        c.open_gate()
        slow.join(WAIT)
        assert not slow.is_alive()
        with pytest.raises(RPCTimeout):
            c.with_timeout(0.1).anap(1.0)
        assert c.add(1, 1) == 2
        deadline = time.monotonic() + WAIT
        while len(notes) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sorted(notes) == ["batched", "direct"]
    with pytest.raises(ConnectionLost):
        RPCClient(host, port, timeout=1)  # the aio server is gone


def test_sync_content_length_client_against_aio_server() -> None:
    srv = aio.RPCServer()
    fill(srv)
    with aio_server_in_thread(srv) as (host, port), RPCClient(host, port, timeout=WAIT, framing="content-length") as c:
        assert [c.add(i, 1) for i in range(5)] == [1, 2, 3, 4, 5]


def test_aio_client_against_sync_server() -> None:
    srv = RPCServer(shutdown_grace=0.2)
    notes = fill(srv)
    napping = threading.Event()

    def long_nap(seconds: float) -> None:
        napping.set()  # (a request read but not started yet is refused by the shutdown: not this case)
        time.sleep(seconds)

    srv.register_function(long_nap)
    host, port = srv.start("127.0.0.1", 0)  # type: ignore[misc]

    async def main() -> None:
        async with await aio.connect(host, port, timeout=WAIT) as c:
            assert await c.add(1, 2) == 3
            assert await c.echo(1, k=2) == {"args": [1], "kwargs": {"k": 2}}
            with pytest.raises(aio.InternalError) as err:
                await c.fail()
            assert err.value.data is None
            # pipelined: the sync server runs them concurrently, replies match by id
            naps = [c.nap(0.3 - i * 0.05) for i in range(5)]
            assert await asyncio.gather(*naps) == pytest.approx([0.3 - i * 0.05 for i in range(5)])
            async with c.batch() as b:
                r = b.add(4, 4)
                b.notify("note", "x")
            assert r.result() == 8
            with pytest.raises(aio.RPCTimeout):
                await c.with_timeout(0.1).nap(0.5)
            assert await c.add(2, 2) == 4
            await c.notify("note", "y")
        async with await aio.connect(host, port, framing="content-length", timeout=WAIT) as c:
            assert await c.add(5, 5) == 10
        # the sync server shutting down fails the pending call with ConnectionLost
        c = await aio.connect(host, port, timeout=WAIT)
        pending = asyncio.create_task(c.long_nap(3))
        assert await asyncio.to_thread(napping.wait, WAIT)  # it runs (for 3 s: past the grace)
        await asyncio.to_thread(srv.shutdown)
        with pytest.raises(aio.ConnectionLost):
            await pending
        await c.close()

    try:
        run(main)
    finally:
        srv.shutdown()
    assert sorted(notes) == ["x", "y"]


def test_the_conformance_checker_passes_against_the_aio_server() -> None:
    srv = aio.RPCServer()
    srv.register_function(lambda value: value, name="echo")
    with aio_server_in_thread(srv) as (host, port):
        report = check(host, port, echo_method="echo", timeout=5)
    failed = [r for r in report.results if r.status != "pass"]
    assert not failed, report.render()
    assert len(report.results) >= 20
