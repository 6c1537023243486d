"""The asyncio client's ``connect``: one of the client's own names (API.md), reconnecting as the sync client's.

API.md lists ``connect`` among the client's own names, which are no remote calls.
The asyncio client used to send ``c.connect(...)`` to the server as a remote call.
"""

from __future__ import annotations

import asyncio

import pytest
from _aio_support import run, serving, until

from jsonrpc_mini import ConnectionLost, RPCError, aio

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.timeout(60),
]


def make_server() -> aio.RPCServer:
    srv = aio.RPCServer()

    @srv.register
    async def add(a: int, b: int) -> int:
        return a + b

    @srv.register(name="connect")
    async def remote_connect(*args: object) -> str:
        return "the remote connect ran"

    return srv


def test_connect_is_the_client_s_own_name_and_call_reaches_the_remote_one() -> None:
    async def main() -> None:
        async with serving(make_server()) as (host, port), await aio.connect(host, port, timeout=10) as c:
            with pytest.raises(RPCError, match="already connected") as info:
                await c.connect(host, port)
            assert type(info.value) is RPCError and info.value.code is None
            assert await c.call("connect") == "the remote connect ran"
            assert await c.add(1, 2) == 3  # the same connection, still open

    run(main)


def test_after_close_connect_serves_calls_again_also_through_kept_methods() -> None:
    async def main() -> None:
        async with serving(make_server()) as (host, port):
            c = await aio.connect(host, port, timeout=10)
            add = c.add  # kept by the client: it holds the connection
            assert await add(1, 2) == 3
            await c.close()
            with pytest.raises(ConnectionLost):
                await c.add(1, 2)
            assert await c.connect(host, port) is c
            try:
                assert await c.add(2, 3) == 5
                assert await c.call("add", 3, 4) == 7
            finally:
                await c.close()

    run(main)


def test_after_the_server_went_away_connect_reaches_another_server() -> None:
    async def main() -> None:
        first = make_server()
        host, port = await first.start("127.0.0.1", 0)
        c = await aio.connect(host, port, timeout=10)
        try:
            assert await c.add(1, 1) == 2
            await first.shutdown()
            await until(lambda: "not connected" in repr(c))
            async with serving(make_server()) as (host2, port2):
                await c.connect(host2, port2)
                assert await c.add(2, 2) == 4
                assert "not connected" not in repr(c)
        finally:
            await c.close()

    run(main)


def test_two_tasks_reconnecting_at_once_leave_one_connection() -> None:
    async def main() -> None:
        srv = make_server()
        async with serving(srv) as (host, port):
            c = await aio.connect(host, port, timeout=10)
            await c.close()
            outcomes = await asyncio.gather(c.connect(host, port), c.connect(host, port), return_exceptions=True)
            try:
                assert sum(outcome is c for outcome in outcomes) == 1, outcomes
                (refused,) = [outcome for outcome in outcomes if outcome is not c]
                assert type(refused) is RPCError and "already connected" in str(refused)
                assert await c.add(1, 2) == 3
                await until(lambda: srv.connection_count == 1)
            finally:
                await c.close()

    run(main)
