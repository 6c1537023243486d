"""The asyncio client's ``connect``: one of the client's own names (API.md), reconnecting as the sync client's.

API.md lists ``connect`` among the client's own names, which are no remote calls.
The asyncio client used to send ``c.connect(...)`` to the server as a remote call.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from _aio_support import run, serving, until

import jsonrpc_mini._aio_client as aio_client
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
            add = c.add  # kept by the client, and saved here: both follow the reconnect
            assert await add(1, 2) == 3
            await c.close()
            with pytest.raises(ConnectionLost):
                await c.add(1, 2)
            assert await c.connect(host, port) is c
            try:
                assert await c.add(2, 3) == 5
                # (The saved one called the closed connection until session 29: ConnectionLost.)
                assert await add(4, 5) == 9
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


def test_a_later_connect_is_kept_when_the_other_task_s_connection_is_gone_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two tasks reconnect at once; the first finishes and its connection is closed before
    # the second's is open. The client is not connected then: the second keeps its own
    # connection, as the sync client's would. It threw it away and raised "already
    # connected", the client left unconnected (Review27, session 29).
    async def main() -> None:
        async with serving(make_server()) as (host, port):
            c = await aio.connect(host, port, timeout=10)
            await c.close()
            real_opened = aio_client._opened
            second_open, go_on = asyncio.Event(), asyncio.Event()
            opened_count = 0

            async def opened(*args: Any, **kwargs: Any) -> Any:
                nonlocal opened_count
                opened_count += 1
                mine = opened_count
                link = await real_opened(*args, **kwargs)
                if mine == 2:
                    second_open.set()
                    await go_on.wait()  # (held until the first task's connection is closed)
                return link

            monkeypatch.setattr(aio_client, "_opened", opened)
            first = asyncio.create_task(c.connect(host, port))
            second = asyncio.create_task(c.connect(host, port))
            await asyncio.wait_for(second_open.wait(), 10)
            assert await asyncio.wait_for(first, 10) is c
            await c.close()
            go_on.set()
            try:
                assert await asyncio.wait_for(second, 10) is c
                assert await c.add(1, 2) == 3
            finally:
                await c.close()

    run(main)
