"""The asyncio server answers a handler raising what is not an ``Exception``.

A plain handler run inline (``run_sync_in_thread=False``) raising ``SystemExit``,
``KeyboardInterrupt``, ``GeneratorExit`` or ``CancelledError`` itself gets -32603
and the connection stays (README, Errors), as in the thread pool. Before (review16
P12): SystemExit and KeyboardInterrupt left the event loop (``asyncio.run`` died)
and the other two closed the connection (asyncio: "Fatal error:
protocol.buffer_updated() call failed"), with the calls in flight on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from _aio_support import run
from _aio_support import serving as aio_serving
from _driver_helpers import WAIT, LeakCheck

from jsonrpc_mini import InternalError, aio

pytestmark = pytest.mark.timeout(120)

_PLAIN = [SystemExit(3), KeyboardInterrupt(), GeneratorExit(), asyncio.CancelledError()]


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
def test_an_inline_handler_raising_a_base_exception_alone_keeps_the_connection(exc: BaseException) -> None:
    async def main() -> None:
        srv = aio.RPCServer(run_sync_in_thread=False)
        srv.register_function(_raiser(exc), name="boom")
        await _check(srv, ("alone",))

    _survive(main)
