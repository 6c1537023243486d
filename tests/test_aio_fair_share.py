"""aio.RPCServer: a large batch and the server's own back-pressure do not cost other clients.

A batch's members run through ``max_concurrent_calls`` workers that let the loop
run others every few members: a batch costs that many tasks, not one per member,
and another client is served while it runs.
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

