"""``LoopbackServer`` takes an ``aio.RPCServer``: sync clients of an asyncio server, under faults.

It used to refuse one (TypeError: use AioLoopbackServer), which needs a running
event loop: a test of sync worker threads against an asyncio service had to run
a loop on a thread of its own and enter an ``AioLoopbackServer`` on it by hand.
The kit now runs such a server on a loop of its own, ended with the kit.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from jsonrpc_mini import ConnectionLost, RPCClient, aio
from jsonrpc_mini.testing import FaultPlan, LoopbackServer, LoopbackServerFactory, Resources

pytestmark = pytest.mark.timeout(60)


def make_server() -> aio.RPCServer:
    server = aio.RPCServer()

    @server.register
    async def add(a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    @server.register
    def mul(a: int, b: int) -> int:  # a plain handler: the server's thread pool
        return a * b

    return server


def test_sync_clients_in_threads_through_the_proxy() -> None:
    before = Resources()
    server = make_server()
    with LoopbackServer(server, faults=FaultPlan(seed=3, max_chunk=2)) as srv:
        assert server.address is not None  # started by the kit
        assert tuple(srv.direct_address) == server.address
        client = srv.client()
        with ThreadPoolExecutor(4) as pool:
            sums = list(pool.map(lambda i: client.add(i, 1), range(40)))
        assert sums == list(range(1, 41))
        assert client.mul(6, 7) == 42
        assert "jsonrpc_mini-kit-loop" in [thread.name for thread in threading.enumerate()]
    assert server.address is None  # shut down: the kit started it
    before.assert_no_leaks(timeout=5.0)  # the loop's thread and the server's pool ended


def test_one_plan_per_connection_for_a_retry() -> None:
    server = make_server()
    with LoopbackServer(server, faults=[FaultPlan(seed=1, disconnect_after=10)]) as srv:
        with pytest.raises(ConnectionLost), RPCClient(*srv.address, timeout=5) as first:
            first.add(1, 2)
        with RPCClient(*srv.address, timeout=5) as second:
            assert second.add(1, 2) == 3
        assert srv.connections == 2


def test_a_server_the_test_started_is_left_running() -> None:
    server = make_server()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    try:
        address = asyncio.run_coroutine_threadsafe(server.start("127.0.0.1", 0), loop).result(10)
        with LoopbackServer(server) as srv:
            assert srv.direct_address == address
            assert srv.client().add(2, 2) == 4
        assert server.address == address  # not ours to shut down
        with RPCClient(*address, timeout=5) as client:
            assert client.add(1, 1) == 2
    finally:
        asyncio.run_coroutine_threadsafe(server.shutdown(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_two_kits_share_it_and_the_last_one_out_shuts_it_down() -> None:
    server = make_server()
    with LoopbackServer(server) as first:
        with LoopbackServer(server) as second:
            assert second.direct_address == first.direct_address
            assert second.client().add(1, 2) == 3
        assert first.client().add(2, 3) == 5  # the second leaving shut nothing down
    assert server.address is None


def test_the_fixture_takes_it(jsonrpc_no_leaks: Resources, jsonrpc_server: LoopbackServerFactory) -> None:
    srv = jsonrpc_server(make_server(), faults=FaultPlan(seed=2, max_chunk=1))
    assert srv.client().mul(3, 4) == 12


class _StuckShutdown(aio.RPCServer):
    """An aio server whose shutdown never ends (a handler that will not stop, say)."""

    async def shutdown(self) -> None:
        await asyncio.sleep(3600)


def test_a_shutdown_that_never_ends_fails_the_close_in_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # The kit waited for the server's shutdown on its loop without a bound: a stuck one
    # hung LoopbackServer.close() (and the test) for ever. Now it waits shutdown_grace
    # plus RUN, then cancels it and says what did not end; the loop's thread still ends.
    monkeypatch.setattr("jsonrpc_mini.testing._proxy.RUN", 0.5)
    server = _StuckShutdown(shutdown_grace=0.5)
    server.register_function(lambda a, b: a + b, name="add")
    kit = LoopbackServer(server)
    try:
        with RPCClient(*kit.address, timeout=10) as client:
            assert client.add(1, 2) == 3
    finally:
        with pytest.raises(TimeoutError, match=r"the aio server's shutdown did not finish within 1 s"):
            kit.close()
    assert not [t for t in threading.enumerate() if t.name == "jsonrpc_mini-kit-loop"]
    asyncio.run(aio.RPCServer.shutdown(server))  # (the real shutdown, on a loop of its own)
