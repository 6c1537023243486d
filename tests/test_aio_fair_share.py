"""aio.RPCServer: a large batch and the server's own back-pressure do not cost other clients.

A batch's members run through ``max_concurrent_calls`` workers that let the loop
run others every few members: a batch costs that many tasks, not one per member,
and another client is served while it runs. A connection whose request the server
does not read yet (``max_total_calls`` reached) is not idle: ``idle_timeout`` does
not close it, and it is answered once a slot frees.
"""

from __future__ import annotations

import asyncio

import pytest
from _aio_support import WAIT, run, serving

from jsonrpc_mini import aio

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.timeout(120),
]

MEMBERS = 3_000
LIMIT = 8


def test_a_large_batch_runs_in_few_tasks_and_another_client_is_served_meanwhile() -> None:
    async def main() -> None:
        srv = aio.RPCServer(max_concurrent_calls=LIMIT)
        ran = 0
        most_tasks = 0
        batch_begun = asyncio.Event()

        @srv.register
        async def add(a: int, b: int) -> int:
            nonlocal ran, most_tasks
            ran += 1
            most_tasks = max(most_tasks, len(asyncio.all_tasks()))
            if ran == 100:
                batch_begun.set()
            return a + b

        @srv.register
        async def members_run() -> int:
            return ran

        async with serving(srv) as address:
            batcher = await aio.connect(*address, timeout=60)
            other = await aio.connect(*address, timeout=WAIT)
            tasks_before = len(asyncio.all_tasks())

            async def send_batch() -> list[int]:
                async with batcher.batch() as b:
                    results = [b.add(i, 1) for i in range(MEMBERS)]
                    b.notify("add", 0, 0)  # a notification: no reply entry
                    b.call("no_such_method")  # an error in its place
                return [r.result() for r in results]

            batch = asyncio.create_task(send_batch())
            async with asyncio.timeout(60):
                await batch_begun.wait()
            during = await other.members_run()  # another client's call while the batch runs
            assert await batch == [i + 1 for i in range(MEMBERS)]
            assert ran == MEMBERS + 1
            # One call per member at once made one task per member (3,000).
            assert most_tasks <= tasks_before + LIMIT + 4, most_tasks
            # Answered while the batch still ran (all members used to run in one loop step).
            assert during < MEMBERS, during
            await batcher.close()
            await other.close()

    run(main, timeout=110)


def _holding_server(**options: float) -> tuple[aio.RPCServer, asyncio.Event]:
    """An aio server (read_timeout 60 s) with ``hold()`` (returns "held" once the event is set) and ``add``."""
    srv = aio.RPCServer(read_timeout=60, **options)
    release = asyncio.Event()

    @srv.register
    async def hold() -> str:
        await release.wait()
        return "held"

    @srv.register
    def add(a: int, b: int) -> int:
        return a + b

    return srv, release


def test_a_connection_held_at_max_total_calls_is_not_closed_as_idle() -> None:
    async def main() -> None:
        idle = 0.3
        srv, release = _holding_server(max_total_calls=2, idle_timeout=idle)

        async with serving(srv) as address:
            hogs = [await aio.connect(*address, timeout=WAIT) for _ in range(2)]
            holds = [asyncio.create_task(c.hold()) for c in hogs]
            async with asyncio.timeout(WAIT):
                while srv.total_busy < 2:
                    await asyncio.sleep(0.01)
            good = await aio.connect(*address, timeout=WAIT)
            call = asyncio.ensure_future(good.add(1, 2))
            async with asyncio.timeout(WAIT):
                while not srv._blocked:  # its request read, not taken: the server holds it
                    await asyncio.sleep(0.01)
            await asyncio.sleep(4 * idle)  # idle_timeout passes while it is held
            assert not call.done()
            release.set()
            assert await call == 3  # was: ConnectionLost "connection closed by the server"
            assert await asyncio.gather(*holds) == ["held", "held"]
            for c in (*hogs, good):
                await c.close()

    run(main)


def test_a_held_connection_is_idle_again_once_it_may_read() -> None:
    async def main() -> None:
        idle = 0.3
        srv, release = _holding_server(max_total_calls=1, idle_timeout=idle)

        async with serving(srv) as address:
            hog = await aio.connect(*address, timeout=WAIT)
            held = asyncio.create_task(hog.hold())
            async with asyncio.timeout(WAIT):
                while srv.total_busy < 1:
                    await asyncio.sleep(0.01)
            good = await aio.connect(*address, timeout=WAIT)
            call = asyncio.ensure_future(good.add(1, 2))
            async with asyncio.timeout(WAIT):
                while not srv._blocked:
                    await asyncio.sleep(0.01)
            release.set()
            assert await call == 3
            assert await held == "held"
            async with asyncio.timeout(WAIT):  # both idle now: idle_timeout closes them
                while srv.connection_count:
                    await asyncio.sleep(0.01)
            for c in (hog, good):
                await c.close()

    run(main)
