"""aio.RPCClient call timeouts: one timer per connection over a heap of deadlines."""

from __future__ import annotations

import asyncio

import pytest
from _aio_support import WAIT, run, serving

from jsonrpc_mini import aio

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.timeout(60),
]


def make_server(gate: asyncio.Event) -> aio.RPCServer:
    srv = aio.RPCServer()

    @srv.register
    async def add(a: int, b: int) -> int:
        return a + b

    @srv.register
    async def wait_gate(value: object) -> object:
        await gate.wait()
        return value

    return srv


def test_a_shorter_timeout_made_later_expires_first() -> None:
    async def main() -> None:
        gate = asyncio.Event()
        async with serving(make_server(gate)) as address, await aio.connect(*address, timeout=WAIT) as c:
            long = asyncio.ensure_future(c.wait_gate("long"))
            short = asyncio.ensure_future(c.with_timeout(0.1).wait_gate("short"))
            with pytest.raises(aio.RPCTimeout, match=r"wait_gate: no reply within 0\.1 s"):
                await short
            assert not long.done()
            gate.set()
            assert await long == "long"
            assert c._link.pending == {}

    run(main)


def test_answered_calls_leave_no_deadlines_behind_and_timeouts_still_fire() -> None:
    async def main() -> None:
        gate = asyncio.Event()
        async with serving(make_server(gate)) as address, await aio.connect(*address, timeout=WAIT) as c:
            for _ in range(30):
                assert await asyncio.gather(*(c.add(i, 1) for i in range(100))) == list(range(1, 101))
            # Answered entries are dropped as calls go on: bounded by the calls in flight.
            assert len(c._link._deadlines) <= 2 * 100 + 64 + 1
            with pytest.raises(aio.RPCTimeout):
                await c.with_timeout(0.1).wait_gate("late")
            gate.set()
            assert await c.add(2, 2) == 4

    run(main)


def test_closing_fails_calls_with_timeouts_and_stops_the_timer() -> None:
    async def main() -> None:
        gate = asyncio.Event()
        async with serving(make_server(gate)) as address:
            c = await aio.connect(*address, timeout=WAIT)
            waiting = asyncio.ensure_future(c.wait_gate("never"))
            await asyncio.sleep(0.05)
            assert c._link._timer is not None
            await c.close()
            with pytest.raises(aio.ConnectionLost):
                await waiting
            assert c._link._timer is None and c._link._deadlines == []
            gate.set()

    run(main)
