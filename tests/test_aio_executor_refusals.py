"""An executor that will not run a plain handler's call costs that call only (review16 P4).

``aio.RPCServer(executor=ex)`` whose ``ex.submit()`` raises (shut down, or a bounded
executor that is full) answers the call -32603 and logs why; the connection, the other
calls on it and the server's call slots are not affected. Before: the exception left
``buffer_updated`` (asyncio: "Fatal error ... call failed") and closed the connection,
and the call slots taken before ``submit()`` raised were never given back: after
``max_total_calls`` such calls the server read no connection any more. A given
executor that cancels a queued call (``shutdown(cancel_futures=True)``) gets it
answered -32603 too, instead of never. Options that cannot work are refused at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest
from _aio_support import run, until
from _aio_support import serving as aio_serving
from _driver_helpers import WAIT, LeakCheck

from jsonrpc_mini import InternalError, RPCServer, aio

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


class _Full(concurrent.futures.Executor):
    """A bounded executor that is full: it refuses every call."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        raise RuntimeError("the executor is full")


def _shut_down() -> concurrent.futures.Executor:
    ex = concurrent.futures.ThreadPoolExecutor(1)
    ex.shutdown()
    return ex


@pytest.mark.parametrize("make", [_shut_down, _Full], ids=["shut-down", "full"])
@pytest.mark.parametrize("shape", ["alone", "batch"])
def test_a_call_the_executor_refuses_is_answered_and_costs_nothing_else(
    make: Callable[[], concurrent.futures.Executor], shape: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        srv = aio.RPCServer(executor=make(), max_total_calls=2, max_concurrent_calls=2)
        srv.register_function(lambda: 1, name="plain")
        gate = asyncio.Event()

        @srv.register
        async def slow() -> str:
            await gate.wait()
            return "slow"

        @srv.register
        async def hello() -> str:
            return "hello"

        async with aio_serving(srv) as (host, port):
            for _ in range(3):  # more than max_total_calls: no slot is kept by a refused call
                async with await aio.connect(host, port, timeout=WAIT) as c:
                    other = c.slow()  # in flight on the same connection meanwhile
                    await until(lambda: srv.total_busy == 1)
                    if shape == "alone":
                        with pytest.raises(InternalError) as caught:
                            await c.plain()
                    else:
                        async with c.batch() as b:
                            refused, fine = b.plain(), b.hello()
                        assert fine.result() == "hello"
                        with pytest.raises(InternalError) as caught:
                            refused.result()
                    assert caught.value.code == -32603 and caught.value.method == "plain"
                    gate.set()
                    assert await other == "slow"
                    gate.clear()
                    assert await c.hello() == "hello"  # the connection stays
                assert srv.total_busy == 0
            async with await aio.connect(host, port, timeout=WAIT) as c:
                assert await c.hello() == "hello"

    with caplog.at_level(logging.ERROR, logger="jsonrpc_mini"):
        run(main)
    refusals = [r for r in caplog.records if "executor refused" in r.getMessage()]
    assert len(refusals) == 3 and all("'plain'" in r.getMessage() for r in refusals)


class _Counting(concurrent.futures.ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(1)
        self.submitted = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future = super().submit(fn, *args, **kwargs)
        self.submitted += 1
        return future


@pytest.mark.parametrize("shape", ["alone", "batch"])
def test_a_call_a_given_executor_cancels_is_answered(shape: str) -> None:
    async def main() -> None:
        ex = _Counting()
        release = threading.Event()
        srv = aio.RPCServer(executor=ex)
        srv.register_function(lambda: release.wait(WAIT), name="block")
        srv.register_function(lambda: 1, name="queued")
        try:
            async with aio_serving(srv) as (host, port), await aio.connect(host, port, timeout=WAIT) as c:
                if shape == "alone":
                    calls = [c.block(), c.queued()]
                    await until(lambda: ex.submitted == 2)  # the second waits for the one worker
                    ex.shutdown(wait=False, cancel_futures=True)
                    release.set()
                    assert await calls[0] is True
                    with pytest.raises(InternalError) as caught:
                        await calls[1]
                else:

                    async def send() -> list[Any]:
                        async with c.batch() as b:
                            results = [b.block(), b.queued()]
                        return results

                    sending = asyncio.ensure_future(send())
                    await until(lambda: ex.submitted == 2)
                    ex.shutdown(wait=False, cancel_futures=True)
                    release.set()
                    blocked, queued = await sending
                    assert blocked.result() is True
                    with pytest.raises(InternalError) as caught:
                        queued.result()
                assert caught.value.code == -32603
                assert srv.total_busy == 0
        finally:
            release.set()
            ex.shutdown()

    run(main)


@pytest.mark.parametrize("value", ["yes", 1, None, 0.0])
def test_flags_must_be_true_or_false(value: Any) -> None:
    for make in (RPCServer, aio.RPCServer):
        with pytest.raises(ValueError, match="debug must be True or False"):
            make(debug=value)
    with pytest.raises(ValueError, match="run_sync_in_thread must be True or False"):
        aio.RPCServer(run_sync_in_thread=value)


@pytest.mark.parametrize("value", [1, "pool", object(), concurrent.futures.Future()])
def test_an_executor_without_submit_is_refused(value: Any) -> None:
    with pytest.raises(TypeError, match="executor must be"):
        aio.RPCServer(executor=value)


@pytest.mark.parametrize("value", [0, True, 2.5, "8"])
def test_max_total_calls_must_be_a_count(value: Any) -> None:
    with pytest.raises(ValueError, match="max_total_calls must be an integer of at least 1"):
        aio.RPCServer(max_total_calls=value)


def test_an_executor_like_object_with_submit_is_taken() -> None:
    class Inline:
        def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
            future: concurrent.futures.Future[Any] = concurrent.futures.Future()
            future.set_result(fn(*args, **kwargs))
            return future

    async def main() -> None:
        srv = aio.RPCServer(executor=Inline())  # type: ignore[arg-type]
        srv.register_function(lambda: 1, name="plain")
        async with aio_serving(srv) as (host, port), await aio.connect(host, port, timeout=WAIT) as c:
            assert await c.plain() == 1

    run(main)
