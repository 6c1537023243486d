"""The asyncio server answers a handler raising what is not an ``Exception``, alone and in batches.

A plain handler raising ``SystemExit``, ``KeyboardInterrupt``, ``GeneratorExit`` or
``CancelledError`` itself gets -32603 and the connection stays (README, Errors), on
the thread pool and inline (``run_sync_in_thread=False``), as a call alone and as a
batch member, where the rest of the batch is answered. An ``async def`` handler (or an
awaitable a handler returns) raising ``GeneratorExit`` or ``CancelledError`` itself
too. Before (review16 P12, P13): inline, SystemExit and KeyboardInterrupt left the
event loop (``asyncio.run`` died) and the other two closed the connection; in a
batch, the pool's SystemExit or KeyboardInterrupt left the loop too, and a member's
GeneratorExit or CancelledError left the batch unanswered.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import types
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import pytest
from _aio_support import run, until
from _aio_support import serving as aio_serving
from _driver_helpers import WAIT, LeakCheck

from jsonrpc_mini import ConnectionLost, InternalError, aio
from jsonrpc_mini._aio_execute import settled
from jsonrpc_mini._codec import ErrorResponse, Request

pytestmark = pytest.mark.timeout(120)

_PLAIN = [SystemExit(3), KeyboardInterrupt(), GeneratorExit(), asyncio.CancelledError()]
_AWAITED = [GeneratorExit(), asyncio.CancelledError()]  # (an async def's SystemExit stops the loop: README)


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


def _survive(main: Callable[[], Awaitable[None]]) -> None:
    """``run(main)``; the server's loop dying of what a handler raised is a test failure, not the session's end."""
    try:
        run(main)
    except (SystemExit, KeyboardInterrupt) as exc:
        pytest.fail(f"the event loop died: {exc!r}")


def _raiser(exc: BaseException) -> Callable[..., Any]:
    def boom(*args: Any) -> None:
        raise exc

    return boom


class _Later:
    """A plain handler returning an awaitable (an async ``__call__``): what it awaits raises ``exc``."""

    def __init__(self, exc: BaseException, pause: bool) -> None:
        self.exc, self.pause = exc, pause

    async def __call__(self) -> None:
        if self.pause:
            await asyncio.sleep(0)
        raise self.exc


def _async_raiser(exc: BaseException, pause: bool) -> Callable[..., Any]:
    async def boom(*args: Any) -> None:
        if pause:
            await asyncio.sleep(0)  # raised after the call first waited
        raise exc

    return boom


async def _check(srv: aio.RPCServer, shapes: tuple[str, ...]) -> None:
    """``boom`` is answered -32603 alone and in a batch (whose other members are answered); the connection stays."""
    srv.register_function(lambda a: a, name="same")

    @srv.register
    async def slow() -> str:
        await asyncio.sleep(0.05)
        return "slow"

    async with aio_serving(srv) as (host, port), await aio.connect(host, port, timeout=WAIT) as c:
        other = c.slow()  # a call in flight on the same connection meanwhile
        for shape in shapes:
            if shape == "alone":
                with pytest.raises(InternalError) as caught:
                    await c.boom()
                assert caught.value.code == -32603
            else:
                async with c.batch() as b:
                    first, bad, last = b.same(1), b.boom(), b.same(2)
                with pytest.raises(InternalError) as caught:
                    bad.result()
                assert caught.value.code == -32603
                assert (first.result(), last.result()) == (1, 2)
        assert await other == "slow"
        assert await c.same(5) == 5
        assert srv.total_busy == 0


@pytest.mark.parametrize("exc", _PLAIN, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("pooled", [True, False], ids=["pool", "inline"])
@pytest.mark.parametrize("limit", [1, 32], ids=["one-worker", "workers"])
def test_a_plain_handler_raising_a_base_exception_is_answered(exc: BaseException, pooled: bool, limit: int) -> None:
    # limit: a batch run by one worker (in the batch's own task) or by several (a task each).
    async def main() -> None:
        srv = aio.RPCServer(run_sync_in_thread=pooled, max_concurrent_calls=limit)
        srv.register_function(_raiser(exc), name="boom")
        await _check(srv, ("batch", "alone"))  # (the batch first: it killed the loop, or hung)

    _survive(main)


@pytest.mark.parametrize("exc", _PLAIN, ids=lambda e: type(e).__name__)
def test_an_inline_handler_raising_a_base_exception_alone_keeps_the_connection(exc: BaseException) -> None:
    async def main() -> None:
        srv = aio.RPCServer(run_sync_in_thread=False)
        srv.register_function(_raiser(exc), name="boom")
        await _check(srv, ("alone", "batch"))

    _survive(main)


@pytest.mark.parametrize("exc", _AWAITED, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("pause", [False, True], ids=["at-once", "after-waiting"])
@pytest.mark.parametrize("kind", ["async-def", "awaitable-pool", "awaitable-inline"])
@pytest.mark.parametrize("limit", [1, 32], ids=["one-worker", "workers"])
def test_an_awaited_handler_raising_generator_exit_or_cancelled_error_is_answered(
    exc: BaseException, pause: bool, kind: str, limit: int
) -> None:
    async def main() -> None:
        srv = aio.RPCServer(run_sync_in_thread=kind != "awaitable-inline", max_concurrent_calls=limit)
        if kind == "async-def":
            srv.register_function(_async_raiser(exc, pause), name="boom")
        else:
            srv.register_function(_Later(exc, pause), name="boom")
        await _check(srv, ("batch", "alone"))

    _survive(main)


@pytest.mark.parametrize("kind", ["async-def", "pool"])
@pytest.mark.parametrize("limit", [1, 32], ids=["one-worker", "workers"])
def test_a_batch_member_cancelled_by_shutdown_is_not_answered_as_its_own_error(
    kind: str, limit: int, caplog: pytest.LogCaptureFixture
) -> None:
    # A CancelledError from the batch's task being cancelled (shutdown past its grace) is
    # no handler's own (nor the executor's doing): the member is not answered -32603 and
    # the batch's task ends, running no further member.
    release = threading.Event()

    async def main() -> None:
        srv = aio.RPCServer(shutdown_grace=0, max_concurrent_calls=limit)
        started = threading.Event()
        seen: list[BaseException] = []
        ran: list[str] = []

        async def forever() -> None:
            started.set()
            try:
                await asyncio.Event().wait()
            except BaseException as exc:
                seen.append(exc)
                raise

        def blocks() -> None:
            started.set()
            release.wait(WAIT)

        srv.register_function(forever if kind == "async-def" else blocks, name="forever")

        @srv.register
        async def after() -> None:
            ran.append("after")

        address = await srv.start("127.0.0.1", 0)
        assert isinstance(address, tuple)
        c = await aio.connect(*address, timeout=WAIT)
        try:

            async def send() -> list[Any]:
                async with c.batch() as b:
                    results = [b.forever(), b.after()]
                return results

            sending = asyncio.ensure_future(send())
            await until(started.is_set)
            await srv.shutdown()
            for result in await sending:
                with pytest.raises(ConnectionLost):  # not InternalError: no reply at all
                    result.result()
            if kind == "async-def":
                assert seen and all(isinstance(e, asyncio.CancelledError) for e in seen)
            assert ran == ([] if limit == 1 else ["after"])  # (two workers: it ran at once)
            assert srv.total_busy == 0
        finally:
            release.set()
            await c.close()

    try:
        run(main)
    finally:
        release.set()
    assert not [r for r in caplog.records if "refused" in r.getMessage()]


# -- a handler's own GeneratorExit told apart from closing (await_result) ----------------


@types.coroutine
def _pause() -> Generator[str, None, None]:
    yield "waiting"


class _Awaits:
    """An awaitable object (not a coroutine) that waits once, then gives what ``then`` gives."""

    def __init__(self, then: Callable[[], Any]) -> None:
        self.then = then

    def __await__(self) -> Generator[str, None, Any]:
        yield "waiting"
        return self.then()


def _raise_exit() -> None:
    raise GeneratorExit


async def _mid(awaitable: Awaitable[Any]) -> Any:
    return await awaitable  # (one more frame between)


def test_await_result_answers_a_generator_exit_the_awaited_code_raised() -> None:
    srv = aio.RPCServer()

    async def raises() -> None:
        await _pause()
        raise GeneratorExit

    async def gives_a_raiser() -> Any:
        return raises()  # an awaitable result (again=True awaits it)

    for awaitable, again in (
        (raises(), False),
        (_mid(raises()), False),
        (_Awaits(_raise_exit), False),
        (gives_a_raiser(), True),
    ):
        steps = srv.await_result(Request("boom", [], 7), awaitable, again=again)
        assert steps.send(None) == "waiting"
        with pytest.raises(StopIteration) as stop:
            steps.send(None)
        reply = stop.value.value
        assert isinstance(reply, ErrorResponse) and reply.id == 7 and reply.error.code == -32603


def test_await_result_closed_is_no_handler_error(caplog: pytest.LogCaptureFixture) -> None:
    # Closing a batch worker that awaits await_result (its task destroyed with its loop)
    # closes it: no reply is built and no "raised GeneratorExit" error logged for a
    # handler that raised nothing; the handler is closed, no RuntimeError.
    srv = aio.RPCServer()
    closed: list[str] = []

    async def waits() -> None:
        try:
            await _pause()
        finally:
            closed.append("handler")

    async def worker(awaitable: Awaitable[Any]) -> None:
        await srv.await_result(Request("wait", [], 1), awaitable)
        await _pause()  # the next member

    with caplog.at_level(logging.ERROR, logger="jsonrpc_mini"):
        for awaitable in (waits(), _mid(waits()), _Awaits(lambda: 1), _pause()):
            steps = worker(awaitable)
            assert steps.send(None) == "waiting"
            steps.close()
    assert closed == ["handler", "handler"]
    assert not caplog.records, [r.getMessage() for r in caplog.records]


# -- a future a handler awaited failing with GeneratorExit --------------------------------
# A task throws a future's exception into its outermost coroutine, and a thrown
# GeneratorExit closes every coroutine on the way (PEP 380). Before, such a call was
# never answered (the call runner's task died of it: "Task exception was never retrieved").


def _failing_future(later: bool) -> asyncio.Future[Any]:
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    if later:
        loop.call_soon(future.set_exception, GeneratorExit())  # (after the handler's call waited)
    else:
        future.set_exception(GeneratorExit())
    return future


@pytest.mark.parametrize("later", [False, True], ids=["failed", "fails-later"])
@pytest.mark.parametrize("limit", [1, 32], ids=["one-worker", "workers"])
def test_a_plain_handler_returning_a_future_failing_with_generator_exit_is_answered(later: bool, limit: int) -> None:
    async def main() -> None:
        srv = aio.RPCServer(run_sync_in_thread=False, max_concurrent_calls=limit)
        srv.register_function(lambda: _failing_future(later), name="boom")
        await _check(srv, ("alone", "batch"))

    _survive(main)


async def _awaits_a_failing_future() -> Any:
    return await _failing_future(True)


class _AwaitsAFailingFuture:
    async def __call__(self) -> Any:
        return await _failing_future(True)


@pytest.mark.parametrize("pooled", [True, False], ids=["pool", "inline"])
@pytest.mark.parametrize("kind", ["coroutine", "async-call"])
@pytest.mark.parametrize("limit", [1, 32], ids=["one-worker", "workers"])
def test_a_plain_handler_returning_a_coroutine_awaiting_such_a_future_is_answered(
    pooled: bool, kind: str, limit: int
) -> None:
    # Its coroutine runs in a reply-building one (await_result), which the thrown
    # GeneratorExit closes: the runner still knows the call (Replying) and answers it.
    # A batch with one worker is the documented lost case: only "workers" checks it.
    def boom() -> Any:
        return _awaits_a_failing_future() if kind == "coroutine" else _AwaitsAFailingFuture()()

    async def main() -> None:
        srv = aio.RPCServer(run_sync_in_thread=pooled, max_concurrent_calls=limit)
        srv.register_function(boom)
        await _check(srv, ("alone", "batch") if limit > 1 else ("alone",))

    logging.disable(logging.ERROR)  # (see the next test)
    try:
        _survive(main)
    finally:
        logging.disable(logging.NOTSET)


@pytest.mark.parametrize("catches", [False, True], ids=["raises", "catches"])
@pytest.mark.parametrize("limit", [1, 32], ids=["one-worker", "workers"])
def test_an_async_handler_awaiting_a_future_failing_with_generator_exit_is_answered(catches: bool, limit: int) -> None:
    # Answered -32603 even by a handler that catches it: the GeneratorExit closed the
    # handler's coroutine on its way (README, Errors). A batch with one worker runs in
    # the call runner's task, where the whole batch is closed: only "workers" checks it.
    async def boom() -> str:
        try:
            return await _failing_future(True)  # type: ignore[no-any-return]
        except GeneratorExit:
            if catches:
                return "caught"
            raise

    async def main() -> None:
        srv = aio.RPCServer(max_concurrent_calls=limit)
        srv.register_function(boom)
        await _check(srv, ("alone", "batch") if limit > 1 else ("alone",))

    # run() fails on a task that died of it ("exception was never retrieved", reported
    # when the task is collected); the error records would keep it alive past run().
    logging.disable(logging.ERROR)
    try:
        _survive(main)
    finally:
        logging.disable(logging.NOTSET)


def test_settled_gives_the_result_or_raises_and_passes_a_cancel_on() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        for outcome in (5, ValueError("no"), GeneratorExit()):
            future = loop.create_future()
            waiter = loop.create_task(settled(future))
            await asyncio.sleep(0)
            assert not waiter.done()  # it waits for the future
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
                with pytest.raises(type(outcome)) as raised:
                    await waiter
                assert raised.value is outcome
            else:
                future.set_result(outcome)
                assert await waiter == 5
        future = loop.create_future()
        waiter = loop.create_task(settled(future))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert future.cancelled()  # as awaiting the future itself would
        other = asyncio.new_event_loop()
        try:
            with pytest.raises(RuntimeError):  # another loop's future, as awaiting it gives
                await settled(other.create_future())
        finally:
            other.close()

    asyncio.run(main())
