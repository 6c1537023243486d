"""aio_loopback() never starts its server; its last kit user out ends the server's idle thread pool.

A user's jsonrpc_no_leaks reported "left behind: thread jsonrpc_mini-aio_0" after an
aio_loopback() block whose plain handler ran: the pool outlived the block and the
loop until ``server.shutdown()``. Now the last kit user of a server that is not
listening ends the pool when nothing can use it (a later call starts another).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from jsonrpc_mini import ConnectionLost, aio
from jsonrpc_mini.testing import AioLoopbackServer, aio_loopback

pytestmark = pytest.mark.timeout(60)

README = Path(__file__).resolve().parents[2] / "README.md"


def pool_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("jsonrpc_mini-aio_")}


def assert_ended(threads: set[threading.Thread]) -> None:
    for thread in threads:
        thread.join(5)
        assert not thread.is_alive(), f"{thread.name} outlived the kit's last user"


def adder(**options: Any) -> aio.RPCServer:
    server = aio.RPCServer(**options)
    server.register_function(lambda a, b: a + b, name="add")  # a plain handler: the pool runs it
    return server


def test_the_pool_ends_with_the_block_and_a_later_block_starts_another() -> None:
    before = pool_threads()
    server = adder()

    async def use() -> set[threading.Thread]:
        async with aio_loopback(server) as client:
            assert await client.add(1, 2) == 3
        first = pool_threads() - before
        assert first, "the plain handler ran in no pool thread"
        assert_ended(first)
        async with aio_loopback(server) as client:  # (a new pool)
            assert await client.add(2, 2) == 4
        return pool_threads() - before - first

    second = asyncio.run(use())
    assert second
    assert_ended(second)


def test_nested_blocks_keep_the_pool_until_the_last_leaves() -> None:
    before = pool_threads()
    server = adder()

    async def use() -> None:
        async with aio_loopback(server) as outer:
            async with aio_loopback(server) as inner:
                assert await inner.add(1, 2) == 3
            threads = pool_threads() - before
            assert threads and all(t.is_alive() for t in threads)
            assert await outer.add(2, 2) == 4
            assert pool_threads() - before == threads  # the same pool served the outer block
        assert_ended(threads)

    asyncio.run(use())


def notify_slow_and_leave(
    server: aio.RPCServer, ended: threading.Event | None = None, loop: asyncio.AbstractEventLoop | None = None
) -> set[threading.Thread]:
    """In an asyncio.run() of its own (or ``loop.run_until_complete``): notify a slow handler over
    aio_loopback() and leave the block while it runs; it returns once released (and ``ended`` is
    set). The pool threads started."""
    before = pool_threads()
    started, release = threading.Event(), threading.Event()

    def slow() -> None:
        started.set()
        release.wait(10)
        if ended is not None:
            ended.wait(10)

    server.register_function(slow, name="slow")

    async def use() -> set[threading.Thread]:
        try:
            async with aio_loopback(server) as client:
                await client.notify("slow")
                assert await asyncio.to_thread(started.wait, 10)
            assert server._executor is not None  # kept: ending it now would not end its thread
        finally:
            release.set()
        return pool_threads() - before

    return asyncio.run(use()) if loop is None else loop.run_until_complete(use())


def test_a_call_still_running_at_the_exit_keeps_the_pool_until_shutdown() -> None:
    server = adder()
    threads = notify_slow_and_leave(server)
    assert threads
    asyncio.run(server.shutdown())
    assert_ended(threads)


def test_shutdown_in_a_new_loop_forgets_a_connection_whose_loop_has_closed(caplog: pytest.LogCaptureFixture) -> None:
    # As above, but the handler is still running as asyncio.run() closes its loop:
    # shutdown() in the next loop raised "Event loop is closed" (closing that connection),
    # then spun for the whole grace on the pool's finished call, which the closed loop
    # could not forget (a grace past the test's timeout: a hang fails it).
    server = adder(shutdown_grace=3600)
    ended = threading.Event()
    try:
        threads = notify_slow_and_leave(server, ended)
    finally:
        ended.set()  # (the handler ends once the loop of the kit's connection has closed)
    assert threads and server.connection_count == 1
    asyncio.run(server.shutdown())  # (raised RuntimeError)
    assert server.connection_count == 0
    assert_ended(threads)
    assert not [r for r in caplog.records if r.levelno >= 30], [r.getMessage() for r in caplog.records]


def test_shutdown_in_another_loop_forgets_a_connection_whose_loop_is_left_open(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # As above, but the kit ran in a loop run by hand and left open (not closed, not
    # running): shutdown() in another loop spun on the pool's finished call, which that
    # loop could not hear of, for the whole grace, then waited 5 s more for the
    # connection to close there (a grace past the test's timeout: a hang fails it).
    server = adder(shutdown_grace=3600)
    loop = asyncio.new_event_loop()
    try:
        threads = notify_slow_and_leave(server, loop=loop)
        assert threads and server.connection_count == 1
        asyncio.run(server.shutdown())
        assert server.connection_count == 0
        assert_ended(threads)
    finally:
        loop.close()
    assert not [r for r in caplog.records if r.levelno >= 30], [r.getMessage() for r in caplog.records]


def test_a_kit_connection_on_a_loop_left_open_is_closed_by_shutdown_in_another_loop() -> None:
    # The loop is run again after the shutdown: its kit client must not be served on
    # by the server that shut down (forgotten without being closed, it was: 1).
    server = adder()
    loop = asyncio.new_event_loop()
    try:
        kit = aio_loopback(server)
        client = loop.run_until_complete(kit.__aenter__())
        assert loop.run_until_complete(client.add(1, 2)) == 3
        asyncio.run(server.shutdown())
        assert server.connection_count == 0

        async def call_again() -> None:
            with pytest.raises(ConnectionLost, match="closed by the server"):
                await asyncio.wait_for(client.add(2, 2), 10)
            await kit.__aexit__(None, None, None)

        loop.run_until_complete(call_again())
    finally:
        loop.close()


def test_a_server_that_listens_keeps_its_pool_until_shutdown() -> None:
    before = pool_threads()
    server = adder()

    async def use() -> set[threading.Thread]:
        await server.start("127.0.0.1", 0)
        async with aio_loopback(server) as client:
            assert await client.add(1, 2) == 3
        pool = server._executor
        async with AioLoopbackServer(server) as lb:  # (the test started it: left running)
            client = await lb.client()
            assert await client.add(2, 2) == 4
        assert pool is not None and server._executor is pool  # one pool throughout
        threads = pool_threads() - before
        assert threads and all(t.is_alive() for t in threads)
        await server.shutdown()
        return threads

    assert_ended(asyncio.run(use()))


def test_the_readme_says_so() -> None:
    text = " ".join(README.read_text(encoding="utf-8").split())
    assert "`aio_loopback()` alone never starts the server, so it never shuts it down" in text
    assert "the last kit user of a server that is not listening leaves, the server's own thread pool" in text
