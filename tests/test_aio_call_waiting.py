"""What README says of waiting on an ``aio.RPCClient`` call with asyncio's functions (review16 P7).

A ``Call`` is a future that ``asyncio.create_task`` takes, so ``asyncio.iscoroutine``
is true of it, and ``asyncio.wait`` refuses it ("Passing coroutines is forbidden"):
the one cannot work without the other (both ask ``asyncio.iscoroutine``). README
gives the ways that work: tasks for ``asyncio.wait`` (cancelling a pending task
cancels its call), and ``gather``, ``as_completed``, ``wait_for`` and ``shield`` on
calls as they are.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from _aio_support import run
from _aio_support import serving as aio_serving
from _driver_helpers import WAIT, LeakCheck

from jsonrpc_mini import aio
from jsonrpc_mini._aio_call_future import Call

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


def _server() -> tuple[aio.RPCServer, asyncio.Event]:
    srv = aio.RPCServer()
    gate = asyncio.Event()

    @srv.register
    async def now(x: int) -> int:
        return x

    @srv.register
    async def held() -> str:
        await gate.wait()
        return "held"

    return srv, gate


def test_asyncio_wait_refuses_a_call_as_readme_says() -> None:
    async def main() -> None:
        srv, _ = _server()
        async with aio_serving(srv) as (host, port), await aio.connect(host, port, timeout=WAIT) as c:
            call = c.now(1)
            assert isinstance(call, asyncio.Future) and asyncio.iscoroutine(call)
            with pytest.raises(TypeError, match="Passing coroutines is forbidden"):
                await asyncio.wait([call])
            assert await call == 1  # the call itself went on

    run(main)


def test_asyncio_wait_takes_tasks_of_calls_and_a_cancelled_task_cancels_its_call() -> None:
    async def main() -> None:
        srv, gate = _server()
        async with aio_serving(srv) as (host, port), await aio.connect(host, port, timeout=WAIT) as c:
            calls: list[Any] = [c.now(1), c.held()]
            quick, slow = (asyncio.create_task(call) for call in calls)
            done, pending = await asyncio.wait([quick, slow], return_when=asyncio.FIRST_COMPLETED)
            assert done == {quick} and pending == {slow} and quick.result() == 1
            slow.cancel()
            with pytest.raises(asyncio.CancelledError):
                await slow
            assert isinstance(calls[1], Call) and calls[1].cancelled()
            gate.set()
            assert await c.now(2) == 2  # the connection goes on (the late reply is dropped)

    run(main)


def test_gather_as_completed_wait_for_and_shield_take_calls_as_they_are() -> None:
    async def main() -> None:
        srv, _ = _server()
        async with aio_serving(srv) as (host, port), await aio.connect(host, port, timeout=WAIT) as c:
            assert await asyncio.gather(c.now(1), c.now(2)) == [1, 2]
            assert sorted([await f for f in asyncio.as_completed([c.now(3), c.now(4)], timeout=WAIT)]) == [3, 4]
            assert await asyncio.wait_for(c.now(5), WAIT) == 5
            assert await asyncio.shield(c.now(6)) == 6
            assert await asyncio.create_task(c.now(7)) == 7

    run(main)


def test_a_calls_repr_names_its_method_also_in_asyncios_never_retrieved_report() -> None:
    # A call never awaited that then fails is reported by asyncio with the future's repr.
    reports: list[str] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, context: reports.append(repr(context["future"])))
        srv, gate = _server()
        async with aio_serving(srv) as (host, port):
            c = await aio.connect(host, port, timeout=WAIT)
            call = c.held()
            assert repr(call).startswith("<Call 'held' pending")
            await c.close()  # fails the call, which nobody awaits
            assert call.done()  # (not asked for its exception: asyncio would not report it)
            assert repr(call).startswith("<Call 'held' finished exception=ConnectionLost(")
            del call
            gate.set()  # (the server's handler ends: its shutdown does not wait for it)
        assert repr(Call()).startswith("<Call pending")  # (one not made by a client: asyncio's own)

    run(main)
    assert reports and reports[0].startswith("<Call 'held' finished exception=ConnectionLost("), reports
