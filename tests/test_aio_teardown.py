"""aio.RPCServer when its event loop ends without shutdown(): no task of the library is left to log.

Invariant: a server left running when ``asyncio.run()`` returns is shut down with the
loop (every handler it started ends, the connection closes, nothing is reported);
a loop closed without cancelling anything reports no task of an idle server, and no
call is taken or task created on the closed loop.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import warnings
from typing import Any

import pytest
from _aio_support import WAIT, unraisable, until

from jsonrpc_mini import aio

pytestmark = [
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.timeout(60),
]


def requests(count: int) -> bytes:
    return b"".join(b'{"jsonrpc":"2.0","method":"slow","params":[%d],"id":%d}\n' % (i, i) for i in range(count))


def slow_server(started: list[int], ended: list[int], limit: int, grace: float = 10.0) -> aio.RPCServer:
    srv = aio.RPCServer(max_concurrent_calls=limit, shutdown_grace=grace)

    @srv.register
    async def slow(i: int) -> int:
        started.append(i)
        try:
            await asyncio.sleep(60)
        finally:
            ended.append(i)
        return i

    return srv


def test_a_server_left_running_when_asyncio_run_ends_is_shut_down_without_leftovers() -> None:
    started: list[int] = []
    ended: list[int] = []
    errors: list[dict[str, Any]] = []
    srv = slow_server(started, ended, limit=2)
    peer: list[socket.socket] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))
        address = await srv.start("127.0.0.1", 0)
        assert isinstance(address, tuple)
        peer.append(socket.create_connection(address, timeout=WAIT))
        peer[0].sendall(requests(6))  # two run, four wait behind max_concurrent_calls
        await until(lambda: len(started) == 2)
        # Returns with the server running: asyncio.run cancels the two calls, which
        # lets the connection take queued ones, as tasks its cancelling never saw.

    try:
        with unraisable() as lost, warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)
            asyncio.run(main(), debug=True)
            assert sorted(ended) == sorted(started), "a handler the server started was never ended"
            gc.collect()
        assert not errors, [context.get("message") for context in errors]
        assert not lost, [str(item.exc_value) for item in lost]
        assert srv.address is None and srv.connection_count == 0
        peer[0].settimeout(WAIT)
        while peer[0].recv(65536):  # the server closed the connection: no peer waits for ever
            pass
    finally:
        for sock in peer:
            sock.close()


def test_a_server_shut_down_before_asyncio_run_ends_is_left_alone() -> None:
    started: list[int] = []
    ended: list[int] = []
    srv = slow_server(started, ended, limit=2, grace=0.05)

    async def main() -> None:
        for _ in range(2):  # started again after shutdown: each start has its own watch on the loop
            address = await srv.start("127.0.0.1", 0)
            assert isinstance(address, tuple)
            async with await aio.connect(*address, timeout=WAIT) as c:
                with pytest.raises(aio.RPCTimeout):
                    await c.with_timeout(0.05).slow(1)
            await srv.shutdown()
            assert srv._guard is None

    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        asyncio.run(main(), debug=True)
        gc.collect()
    assert started == ended == [1, 1]


def _closed_without_cancelling(main: Any) -> tuple[list[dict[str, Any]], list[Any]]:
    """Run ``main`` on a loop, then close the loop as some users do: no cancelling, no shutdown_asyncgens."""
    errors: list[dict[str, Any]] = []
    loop = asyncio.new_event_loop()
    loop.set_debug(True)
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    with unraisable() as lost, warnings.catch_warnings():
        # asyncio's own report of the transports the caller never closed.
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            loop.run_until_complete(main())
        finally:
            loop.close()
        gc.collect()
    return errors, lost


def test_a_loop_closed_without_cancelling_reports_no_task_of_an_idle_server() -> None:
    async def add_once() -> None:
        # Made here: once the loop is closed nothing holds the server, so the garbage
        # collector destroys whatever task of it is still pending.
        srv = aio.RPCServer()

        @srv.register
        async def add(a: int, b: int) -> int:
            return a + b

        address = await srv.start("127.0.0.1", 0)
        assert isinstance(address, tuple)
        c = await aio.connect(*address, timeout=WAIT)
        assert await c.add(1, 2) == 3
        assert await c.call("add", 2, 2) == 4
        assert srv._runner is not None and srv._runner.task is not None  # waiting for the next call

    errors, lost = _closed_without_cancelling(add_once)
    assert not errors, [context.get("message") for context in errors]
    assert not lost, [str(item.exc_value) for item in lost]


def test_a_loop_closed_under_a_waiting_call_takes_no_further_call() -> None:
    started: list[int] = []
    ended: list[int] = []
    peer: list[socket.socket] = []

    async def one_running() -> None:
        srv = slow_server(started, ended, limit=1)  # (made here: see above)
        address = await srv.start("127.0.0.1", 0)
        assert isinstance(address, tuple)
        peer.append(socket.create_connection(address, timeout=WAIT))
        peer[0].sendall(requests(3))
        await until(lambda: started == [0])

    try:
        errors, lost = _closed_without_cancelling(one_running)
    finally:
        for sock in peer:
            sock.close()
    # The handler's task was destroyed while it waited: asyncio says so (as for any task),
    # and the handler saw its coroutine closed. Nothing else ran on the closed loop.
    assert [context.get("message") for context in errors] == ["Task was destroyed but it is pending!"]
    assert started == ended == [0]
    assert not lost, [str(item.exc_value) for item in lost]
