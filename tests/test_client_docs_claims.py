"""Two README claims about the clients (review15 N3, N12), checked on both clients.

- Arguments that are not JSON raise the encoder's TypeError / ValueError /
  RecursionError; nothing is sent and the connection stays usable.
- A connection the server closed for idleness stays closed: the next call and every
  one after raise ConnectionLost; close() then connect() gives a working client, and
  a with_timeout() view made before belongs to the old connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from _aio_support import run
from _driver_helpers import (
    LeakCheck,
    answered_within,
    answered_within_async,
    in_time_rounds,
    in_time_rounds_async,
    serving,
    wait_for,
)

from jsonrpc_mini import ConnectionLost, RPCClient, RPCServer, aio

pytestmark = pytest.mark.timeout(60)


def _deep(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


# (argument, the exception the encoder raises for it)
UNENCODABLE: list[tuple[str, Callable[[], Any], type[BaseException] | tuple[type[BaseException], ...]]] = [
    ("set", lambda: {1, 2}, TypeError),
    ("nan", lambda: float("nan"), ValueError),
    ("tuple-keys", lambda: {(1, 2): 3}, TypeError),
    ("too-deep", lambda: _deep(100_000), (RecursionError, ValueError)),  # (orjson: ValueError)
]


def _counting_server(**options: Any) -> tuple[RPCServer, list[Any]]:
    srv = RPCServer(**options)
    seen: list[Any] = []

    def echo(value: Any = None) -> Any:
        seen.append(value)
        return value

    srv.register_function(echo)
    return srv, seen


@pytest.mark.parametrize(("name", "make", "error"), UNENCODABLE, ids=[case[0] for case in UNENCODABLE])
def test_sync_client_unencodable_arguments_raise_and_send_nothing(
    name: str, make: Callable[[], Any], error: Any
) -> None:
    srv, seen = _counting_server()
    with LeakCheck(), serving(srv) as address, RPCClient(*address, timeout=10) as c:
        with pytest.raises(error):
            c.echo(make())
        with pytest.raises(error):
            c.notify("echo", make())
        with pytest.raises(error):
            c.call("echo", value=make())
        assert c.echo("after") == "after"  # the connection is usable
        assert seen == ["after"]  # nothing of the refused calls reached the server


@pytest.mark.parametrize(("name", "make", "error"), UNENCODABLE, ids=[case[0] for case in UNENCODABLE])
def test_aio_client_unencodable_arguments_raise_and_send_nothing(
    name: str, make: Callable[[], Any], error: Any
) -> None:
    async def main() -> None:
        srv = aio.RPCServer()
        seen: list[Any] = []

        @srv.register
        async def echo(value: Any = None) -> Any:
            seen.append(value)
            return value

        host, port = await srv.start("127.0.0.1", 0)
        try:
            async with await aio.connect(host, port, timeout=10) as c:
                with pytest.raises(error):
                    await c.echo(make())
                with pytest.raises(error):
                    await c.notify("echo", make())
                assert await c.echo("after") == "after"
                assert seen == ["after"]
        finally:
            await srv.shutdown()

    run(main)


IDLE = 0.3  # the server's idle_timeout in the idle-close tests


def test_sync_client_after_an_idle_close_fails_until_reconnected() -> None:
    srv, seen = _counting_server(idle_timeout=IDLE)
    with LeakCheck(), serving(srv) as address:
        in_time_rounds(lambda: _idle_close_then_reconnect(srv, seen, address), "idle_timeout")


def _idle_close_then_reconnect(srv: RPCServer, seen: list[Any], address: Any) -> bool:
    """The claim checked on one round; False if it stalled past idle_timeout (run it again).

    The server's idle time starts after ``since`` (before connecting): a call failing
    idle_timeout or more after it proves nothing (see ``kept``).
    """
    seen.clear()
    since = time.monotonic()
    c = RPCClient(*address, timeout=10)
    try:
        view = c.with_timeout(5)
        if not answered_within(lambda: _expect(c.echo(1), 1), since, IDLE):
            return False
        wait_for(lambda: srv.connection_count == 0, "the server to close the idle connection")
        for _ in range(2):  # the next call and every one after
            with pytest.raises(ConnectionLost, match="closed by the server"):
                c.echo(2)
        c.close()
        since = time.monotonic()
        c.connect(*address)
        if not answered_within(lambda: _expect(c.echo(3), 3), since, IDLE):
            return False
        with pytest.raises(ConnectionLost):
            view.echo(4)  # made before: the old connection
        if not answered_within(lambda: _expect(c.with_timeout(5).echo(5), 5), since, IDLE):
            return False
        assert seen == [1, 3, 5]
        return True
    finally:
        c.close()


def _expect(got: Any, expected: Any) -> None:
    assert got == expected


def test_aio_client_after_an_idle_close_fails_until_reconnected() -> None:
    async def main() -> None:
        srv = aio.RPCServer(idle_timeout=IDLE)

        @srv.register
        async def echo(value: Any) -> Any:
            return value

        host, port = await srv.start("127.0.0.1", 0)
        try:
            await in_time_rounds_async(lambda: _aio_idle_close_then_reconnect(srv, host, port), "idle_timeout")
        finally:
            await srv.shutdown()

    run(main)


async def _aio_idle_close_then_reconnect(srv: aio.RPCServer, host: str, port: int) -> bool:
    """The claim on the aio client, one round; False if it stalled past idle_timeout (see ``kept``)."""
    since = time.monotonic()  # the server's idle time starts after this
    async with await aio.connect(host, port, timeout=10) as c:
        if not await answered_within_async(lambda: _expect_aio(c.echo(1), 1), since, IDLE):
            return False
        async with asyncio.timeout(10):
            while srv.connection_count:
                await asyncio.sleep(0.01)
        for _ in range(2):
            with pytest.raises(ConnectionLost):
                await c.echo(2)
    since = time.monotonic()
    async with await aio.connect(host, port, timeout=10) as again:
        return await answered_within_async(lambda: _expect_aio(again.echo(3), 3), since, IDLE)


async def _expect_aio(got: Awaitable[Any], expected: Any) -> None:
    assert await got == expected
