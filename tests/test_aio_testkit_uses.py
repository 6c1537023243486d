"""AioLoopbackServer and aio_loopback count as users of the server: the last one out stops it.

An AioLoopbackServer starts the server when it is not listening. It used to shut
the server down on its own exit, under every other user of the same server: a
second AioLoopbackServer (its clients, its calls in flight) or an aio_loopback()
connection. Now the server is shut down when the last of them is done (as the
sync LoopbackServer does), and only if the kit started it.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import tempfile
import warnings
import weakref

import pytest
from _aio_support import WAIT, run

from jsonrpc_mini import aio
from jsonrpc_mini.testing import AioLoopbackServer, _uses, aio_loopback

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.timeout(60),
]


def make_server() -> tuple[aio.RPCServer, asyncio.Event]:
    """A server whose ``held`` call returns only once the event is set (short grace, so old code fails fast)."""
    server = aio.RPCServer(shutdown_grace=0.2)
    gate = asyncio.Event()

    @server.register
    async def add(a: int, b: int) -> int:
        return a + b

    @server.register
    async def held(value: str) -> str:
        await gate.wait()
        return value

    return server, gate


async def started(call: asyncio.Future[object], server: aio.RPCServer) -> None:
    """Wait (bounded) until the server runs the call: it is in flight."""
    loop = asyncio.get_running_loop()
    end = loop.time() + WAIT
    while server.total_busy == 0 and not call.done() and loop.time() < end:
        await asyncio.sleep(0.005)
    assert server.total_busy == 1


def test_the_aio_loopback_server_that_started_the_server_leaving_first_leaves_it_to_the_other() -> None:
    async def main() -> None:
        server, gate = make_server()
        first = AioLoopbackServer(server)
        await first.__aenter__()  # starts the server
        second = AioLoopbackServer(server)
        await second.__aenter__()
        client = await second.client()
        call = asyncio.ensure_future(client.held("in flight"))
        await started(call, server)
        await first.__aexit__(None, None, None)
        assert server.address is not None  # the other still uses it
        gate.set()
        assert await call == "in flight"
        assert await (await second.client()).add(1, 2) == 3  # a new connection too
        await second.__aexit__(None, None, None)
        assert server.address is None  # the kit started it: the last user out shut it down

    run(main)


def test_an_aio_loopback_is_a_user_of_the_server() -> None:
    async def main() -> None:
        server, gate = make_server()
        async with aio_loopback(server) as client:
            call = asyncio.ensure_future(client.held("in flight"))
            await started(call, server)
            async with AioLoopbackServer(server) as lb:  # starts the server, then leaves
                assert await (await lb.client()).add(2, 2) == 4
            assert server.address is not None
            gate.set()
            assert await call == "in flight"
            assert await client.add(1, 1) == 2  # the in-memory connection is still open
        assert server.address is None  # the last user out shut down what the kit started

    run(main)


def test_concurrent_entries_start_the_server_once() -> None:
    async def main() -> None:
        server, _ = make_server()
        first, second = AioLoopbackServer(server), AioLoopbackServer(server)
        await asyncio.gather(first.__aenter__(), second.__aenter__())
        try:
            assert first.direct_address == second.direct_address == server.address
            assert await (await first.client()).add(1, 2) == 3
            assert await (await second.client()).add(3, 4) == 7
        finally:
            await asyncio.gather(first.__aexit__(None, None, None), second.__aexit__(None, None, None))
        assert server.address is None

    run(main)


def test_a_server_the_test_started_outlives_every_kit_user() -> None:
    async def main() -> None:
        server, _ = make_server()
        address = await server.start("127.0.0.1", 0)
        async with aio_loopback(server) as client, AioLoopbackServer(server) as lb:
            assert lb.direct_address == address
            assert await client.add(1, 2) == 3
        assert server.address == address
        async with await aio.connect(*address, timeout=WAIT) as direct:
            assert await direct.add(2, 3) == 5
        await server.shutdown()

    run(main)


def test_leaving_twice_counts_out_once() -> None:
    async def main() -> None:
        server, _ = make_server()
        outer = AioLoopbackServer(server)
        await outer.__aenter__()
        inner = AioLoopbackServer(server)
        await inner.__aenter__()
        await inner.__aexit__(None, None, None)
        await inner.__aexit__(None, None, None)  # a second exit must not count out the outer one
        assert server.address is not None
        assert await (await outer.client()).add(1, 1) == 2
        await outer.__aexit__(None, None, None)
        assert server.address is None

    run(main)


def test_a_failed_entry_is_not_counted() -> None:
    async def main() -> None:
        server, _ = make_server()
        async with AioLoopbackServer(server) as lb:
            broken = AioLoopbackServer(server, host="192.0.2.1")  # not ours: the proxy cannot bind
            with pytest.raises(OSError):
                await broken.__aenter__()
            assert await (await lb.client()).add(1, 1) == 2
        assert server.address is None  # shut down: the failed entry holds no use

    run(main)


def test_one_left_open_gives_up_its_use_when_the_loop_ends() -> None:
    server, _ = make_server()
    kept: list[AioLoopbackServer] = []

    async def left_open() -> None:
        lb = AioLoopbackServer(server)
        kept.append(lb)
        await lb.__aenter__()  # starts the server; never exited
        assert await (await lb.client()).add(1, 2) == 3

    with pytest.warns(ResourceWarning, match="AioLoopbackServer was left open"):
        asyncio.run(left_open())
    assert server.address is None  # shut down by its own end-of-loop hook

    async def again() -> None:
        async with AioLoopbackServer(server) as lb:  # starts it anew...
            assert await (await lb.client()).add(2, 2) == 4
        assert server.address is None  # ...and, its only user now, shuts it down

    run(again)


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="Unix sockets")
def test_a_unix_path_server_is_refused_without_taking_a_use() -> None:
    async def main() -> None:
        server, _ = make_server()
        with tempfile.TemporaryDirectory() as tmp:
            await server.start(path=os.path.join(tmp, "s.sock"))
            with pytest.raises(ValueError, match="Unix socket"):
                await AioLoopbackServer(server).__aenter__()
            async with aio_loopback(server) as client:  # in memory: fine on any server
                assert await client.add(1, 2) == 3
            assert server.address is not None  # not started by the kit: left running
            await server.shutdown()
        async with AioLoopbackServer(server) as lb:  # starts it on TCP...
            assert await (await lb.client()).add(2, 3) == 5
        assert server.address is None  # ...and, being its last user, shuts it down

    run(main)


def test_a_cancelled_exit_still_gives_back_its_use() -> None:
    # A test's timeout (wait_for, pytest-timeout's cancel) cutting the exit short used to
    # skip aio_release(): the server it started stayed listening, and every later
    # AioLoopbackServer over it was never the last user out.
    async def main() -> None:
        server, _ = make_server()
        lb = AioLoopbackServer(server)
        await lb.__aenter__()  # starts the server
        client = await lb.client()
        assert await client.add(1, 2) == 3
        leaving = asyncio.ensure_future(lb.__aexit__(None, None, None))
        await asyncio.sleep(0)  # the exit is under way (closing its client)
        leaving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(leaving, WAIT)
        try:
            assert server.address is None  # the last user out shut it down
            async with AioLoopbackServer(server) as later:  # and a later one starts it afresh
                assert await (await later.client()).add(2, 3) == 5
            assert server.address is None
        finally:
            await server.shutdown()

    run(main)


def test_a_use_left_on_a_loop_closed_by_hand_goes_with_its_server(monkeypatch: pytest.MonkeyPatch) -> None:
    # A loop closed by hand without shutdown_asyncgens (README: it should run it) leaves
    # an AioLoopbackServer's use counted, its server started by the kit. A new server
    # that Python puts at the same address (the same id(); forced here, the allocator
    # does it at random) must not inherit it: its own AioLoopbackServer starts it and,
    # its only user, shuts it down on leaving.
    monkeypatch.setattr(_uses, "id", lambda _obj: 1, raising=False)

    def left_open() -> weakref.ref[aio.RPCServer]:
        server, _ = make_server()
        loop = asyncio.new_event_loop()

        async def enter() -> None:
            await AioLoopbackServer(server).__aenter__()  # never exited

        loop.run_until_complete(enter())
        loop.close()
        return weakref.ref(server)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # its sockets, closed by the collector
        ref = left_open()
        gc.collect()
    assert ref() is None

    async def fresh() -> None:
        server, _ = make_server()
        async with AioLoopbackServer(server) as lb:
            assert await (await lb.client()).add(1, 2) == 3
        assert server.address is None

    run(fresh)
