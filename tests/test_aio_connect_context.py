"""``async with aio.connect(host, port) as c:`` works without the ``await``.

The documented spelling is ``async with await aio.connect(...) as c:``; the one a
user writes first leaves the ``await`` out, and it failed with Python's "'coroutine'
object does not support the asynchronous context manager protocol" (and a "never
awaited" warning). ``aio.connect()`` now returns an object that is awaitable, an
async context manager, and a coroutine as far as asyncio is concerned.
"""

from __future__ import annotations

import asyncio
import warnings

import pytest

from jsonrpc_mini import ConnectionLost, aio

pytestmark = pytest.mark.timeout(60)


def _server() -> aio.RPCServer:
    server = aio.RPCServer()

    @server.register
    async def echo(value: object) -> object:
        return value

    return server


def test_async_with_connect_without_await_connects_and_closes() -> None:
    async def main() -> None:
        server = _server()
        host, port = await server.start("127.0.0.1", 0)
        try:
            async with aio.connect(host, port, timeout=5) as client:
                assert isinstance(client, aio.RPCClient)
                assert await client.echo("x") == "x"
            with pytest.raises(ConnectionLost, match="the client was closed"):
                await client.echo("after")
        finally:
            await server.shutdown()

    asyncio.run(main())


def test_the_other_spellings_still_work() -> None:
    async def main() -> None:
        server = _server()
        host, port = await server.start("127.0.0.1", 0)
        try:
            async with await aio.connect(host, port, timeout=5) as first:
                assert await first.echo(1) == 1
            second = await asyncio.wait_for(aio.connect(host, port, timeout=5), 5)
            third = await asyncio.create_task(aio.connect(host, port, timeout=5))
            for client in (second, third):
                assert await client.echo(2) == 2
                await client.close()
        finally:
            await server.shutdown()

    asyncio.run(main())


def test_a_failed_connect_raises_from_async_with() -> None:
    async def main() -> None:
        server = _server()
        host, port = await server.start("127.0.0.1", 0)
        await server.shutdown()  # nothing listens there now
        with pytest.raises(ConnectionLost, match=r"^cannot connect to 127\.0\.0\.1:\d+: "):
            async with aio.connect(host, port, timeout=5):
                raise AssertionError("not reached")

    asyncio.run(main())


def test_a_forgotten_await_is_named() -> None:
    async def main() -> None:
        pending = aio.connect("127.0.0.1", 1, timeout=5)
        with pytest.raises(AttributeError, match=r"^'add': aio\.connect\(\) returns a connection being made"):
            pending.add(1, 2)  # type: ignore[attr-defined]
        with warnings.catch_warnings():  # (the one left unawaited: Python's own warning, as before)
            warnings.simplefilter("ignore", RuntimeWarning)
            pending.close()

    asyncio.run(main())


def test_a_plain_with_says_async_with() -> None:
    # `with c:` said "'RPCClient' object does not support the context manager protocol",
    # where the batch's `with` already said "needs 'async with ...'".
    async def main() -> None:
        server = _server()
        host, port = await server.start("127.0.0.1", 0)
        try:
            client = await aio.connect(host, port, timeout=5)
            says = r"^an asyncio client needs 'async with' \(`async with aio\.connect"
            with pytest.raises(TypeError, match=says), client:
                raise AssertionError("not reached")
            assert await client.echo("still usable") == "still usable"
            await client.close()
            with warnings.catch_warnings():
                warnings.simplefilter("error", RuntimeWarning)  # (no "never awaited" on top of the TypeError)
                with pytest.raises(TypeError, match=r"^aio\.connect\(\) needs 'async with'"), aio.connect(host, port):
                    raise AssertionError("not reached")
        finally:
            await server.shutdown()

    asyncio.run(main())
