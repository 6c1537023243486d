"""The asyncio test kit used without ``async with``: closed, warned about, nothing left to report.

Invariant: an ``aio_loopback()`` or ``AioLoopbackServer`` entered by hand and never
exited is closed when its event loop closes its async generators (``asyncio.run``)
or when its context manager is dropped, with one ``ResourceWarning`` naming it and
no other warning or loop error; a loop closed by hand reports none of the kit's
tasks; ``client()`` outside the block and entering twice are clear errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import warnings
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from _aio_support import WAIT, run, unraisable

from jsonrpc_mini import ConnectionLost, aio
from jsonrpc_mini.testing import AioLoopbackServer, FaultPlan, aio_loopback

pytestmark = pytest.mark.timeout(60)


def make_server() -> aio.RPCServer:
    srv = aio.RPCServer()
    srv.register_function(lambda a, b: a + b, name="add")
    return srv


@contextlib.contextmanager
def watched() -> Iterator[tuple[list[str], list[str], list[Any]]]:
    """(loop errors, warning texts, unraisables) seen while the block runs (loop errors via ``handler``)."""
    errors: list[str] = []
    with unraisable() as lost, warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        texts: list[str] = []
        yield errors, texts, lost
        gc.collect()
        texts.extend(f"{w.category.__name__}: {w.message}" for w in seen)


def run_left_open(main: Callable[[], Awaitable[None]], *, by_hand: bool) -> tuple[list[str], list[str], list[Any]]:
    """Run ``main`` with asyncio.run (debug) or on a loop closed by hand; return what was reported."""
    with watched() as (errors, texts, lost):

        async def wrapper() -> None:
            asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(str(ctx["message"])))
            await main()

        if by_hand:
            loop = asyncio.new_event_loop()
            loop.set_debug(True)
            try:
                loop.run_until_complete(wrapper())
            finally:
                loop.close()  # no cancelling, no shutdown_asyncgens
        else:
            asyncio.run(wrapper(), debug=True)
        KEEP.clear()  # what the "user" held goes now: anything left open is collected and reported
        gc.collect()
    return errors, texts, lost


KEEP: list[Any] = []  # context managers a "user" holds on to without exiting them


@pytest.fixture(autouse=True)
def _release() -> Iterator[None]:
    yield
    KEEP.clear()
    gc.collect()


def test_an_aio_loopback_left_open_is_closed_when_asyncio_run_ends() -> None:
    srv = make_server()
    clients: list[aio.RPCClient] = []

    async def main() -> None:
        manager = aio_loopback(srv)
        KEEP.append(manager)
        client = await manager.__aenter__()
        clients.append(client)
        assert await client.add(1, 2) == 3
        assert srv.connection_count == 1

    errors, texts, lost = run_left_open(main, by_hand=False)
    assert not errors and not lost
    assert len(texts) == 1 and texts[0].startswith("ResourceWarning: aio_loopback() was left open"), texts
    assert srv.connection_count == 0  # the server's side of the connection ended


def test_a_dropped_aio_loopback_closes_its_client_and_says_why() -> None:
    srv = make_server()
    raised: list[BaseException] = []

    async def main() -> None:
        client = await aio_loopback(srv).__aenter__()  # the context manager is dropped at once
        for _ in range(100):
            await asyncio.sleep(0)
        try:
            await client.add(1, 2)
        except ConnectionLost as exc:
            raised.append(exc)

    errors, texts, lost = run_left_open(main, by_hand=False)
    assert raised, "the client of a dropped aio_loopback still worked"
    assert not errors and not lost
    assert len(texts) == 1 and "aio_loopback() was left open" in texts[0], texts


def test_an_aio_loopback_dropped_as_the_coroutine_returns_warns() -> None:
    # Dropped when main returns: its finalizer's task is cancelled by asyncio.run before
    # it ran, and that CancelledError used to count as leaving the block (no warning).
    srv = make_server()
    clients: list[aio.RPCClient] = []

    async def main() -> None:
        manager = aio_loopback(srv)
        client = await manager.__aenter__()
        clients.append(client)
        assert await client.add(1, 2) == 3

    errors, texts, lost = run_left_open(main, by_hand=False)
    assert not errors and not lost
    assert len(texts) == 1 and texts[0].startswith("ResourceWarning: aio_loopback() was left open"), texts

    async def after() -> None:
        with pytest.raises(ConnectionLost):
            await clients[0].add(1, 2)

    run(after)


def test_a_block_cancelled_in_its_own_task_is_left_without_a_warning() -> None:
    srv = make_server()

    async def main() -> None:
        inside = asyncio.Event()

        async def body() -> None:
            async with aio_loopback(srv) as client:
                assert await client.add(1, 2) == 3
                inside.set()
                await asyncio.Event().wait()  # until cancelled

        task = asyncio.ensure_future(body())
        await asyncio.wait_for(inside.wait(), WAIT)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, WAIT)
        assert srv.connection_count == 0

    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        run(main)


@pytest.mark.parametrize("drop", [False, True])
def test_a_loop_closed_by_hand_reports_no_task_of_an_aio_loopback(drop: bool) -> None:
    async def main() -> None:
        srv = make_server()  # (it holds its connection, and through it the link's tasks, until collected)
        KEEP.append(srv)
        if drop:  # dropped at once: its closing starts, and the loop is closed under it
            client = await aio_loopback(srv, faults=FaultPlan(seed=2, max_chunk=3)).__aenter__()
            await asyncio.sleep(0)
        else:
            manager = aio_loopback(srv, faults=FaultPlan(seed=2, max_chunk=3))
            KEEP.append(manager)
            client = await manager.__aenter__()
        with contextlib.suppress(ConnectionLost):
            assert await client.add(1, 2) == 3

    errors, _, lost = run_left_open(main, by_hand=True)
    assert not errors, errors
    assert not lost


def test_an_aio_loopback_server_left_open_is_closed_when_asyncio_run_ends() -> None:
    srv = make_server()

    async def main() -> None:
        lb = AioLoopbackServer(srv, FaultPlan(seed=1, max_chunk=3))
        KEEP.append(lb)
        await lb.__aenter__()
        client = await lb.client()
        assert await client.add(1, 2) == 3
        # The test "fails" here: no __aexit__.

    errors, texts, lost = run_left_open(main, by_hand=False)
    assert not errors and not lost
    # Only the kit's own warning: no unclosed socket or transport.
    assert len(texts) == 1 and texts[0].startswith("ResourceWarning: AioLoopbackServer was left open"), texts
    assert srv.address is None and srv.connection_count == 0


def test_a_loop_closed_by_hand_reports_no_task_of_an_aio_loopback_server() -> None:
    srv = make_server()

    async def main() -> None:
        lb = AioLoopbackServer(srv)
        KEEP.append(lb)
        await lb.__aenter__()
        client = await lb.client()
        assert await client.add(1, 2) == 3

    errors, _, lost = run_left_open(main, by_hand=True)
    assert not errors, errors  # (its sockets are reported unclosed by Python: nothing closed them)
    assert not lost


def test_client_outside_the_block_and_entering_twice_are_clear_errors() -> None:
    srv = make_server()

    async def main() -> None:
        lb = AioLoopbackServer(srv)
        with pytest.raises(RuntimeError, match="inside `async with AioLoopbackServer"):
            await lb.client()
        async with lb:
            with pytest.raises(RuntimeError, match="running already"):
                await lb.__aenter__()
            client = await lb.client()
            assert await client.add(1, 1) == 2
        with pytest.raises(RuntimeError, match="inside `async with AioLoopbackServer"):
            await lb.client()
        async with lb:  # entered again after leaving: works
            client = await lb.client()
            assert await client.add(2, 2) == 4
        with pytest.raises(ConnectionLost):
            await client.add(3, 3)  # closed on exit

    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        run(main, timeout=WAIT * 3)


def test_a_block_left_by_an_exception_closes_without_a_warning() -> None:
    srv = make_server()

    async def main() -> None:
        with pytest.raises(ValueError, match="the test failed"):
            async with aio_loopback(srv, faults=FaultPlan(seed=5)) as client:
                assert await client.add(1, 2) == 3
                raise ValueError("the test failed")
        with pytest.raises(ValueError, match="the test failed"):
            async with AioLoopbackServer(srv, FaultPlan(seed=5)) as lb:
                client = await lb.client()
                assert await client.add(1, 2) == 3
                raise ValueError("the test failed")
        assert srv.connection_count == 0

    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        run(main)


def test_leaving_the_block_keeps_the_servers_calls_for_its_shutdown() -> None:
    # Leaving an aio_loopback block (here by an exception) while a handler runs,
    # or right after a notification, ends the client; the server's side must still
    # count its calls, so that shutdown() waits for them (review q10/q11: a forced
    # close of the server's side made shutdown() return at once, the handler
    # running on and the notification not yet run).
    async def main() -> None:
        srv = aio.RPCServer(shutdown_grace=WAIT)
        done: list[str] = []
        started = asyncio.Event()

        @srv.register
        async def slow() -> str:
            started.set()
            await asyncio.sleep(0.3)
            done.append("slow")
            return "slow"

        @srv.register
        async def note() -> None:
            await asyncio.sleep(0.05)
            done.append("note")

        pending: asyncio.Future[Any] | None = None
        with contextlib.suppress(KeyError):
            async with aio_loopback(srv) as c:
                pending = asyncio.ensure_future(c.slow())
                await asyncio.wait_for(started.wait(), WAIT)  # the call is running
                await c.notify("note")
                raise KeyError
        assert pending is not None
        with contextlib.suppress(ConnectionLost):
            await pending
        await srv.shutdown()
        assert sorted(done) == ["note", "slow"], "shutdown() returned before the calls it had ended"

    run(main)
