"""aio.RPCServer: a batch's plain-handler members go through the thread pool in runs.

A batch worker whose member has a plain handler hands it to one pool job, which
goes on taking the batch's next plain members itself (up to ``PLAIN_RUN``): one
trip through the pool for a run of members, not one each. Each worker still runs
one member at a time, from the one sequence, so a batch's members run as
concurrently as before; members with an ``async def`` handler, or whose plain
handler returns an awaitable, are run on the loop; once the peer is gone, the
jobs take no more requests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any

import pytest
from _aio_support import WAIT, RawConn, request, run, serving, until
from test_aio_gone_peer import batch_then_reset

from jsonrpc_mini import aio
from jsonrpc_mini._aio_members import PLAIN_RUN

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.timeout(60),
]


class CountingExecutor(concurrent.futures.ThreadPoolExecutor):
    """A thread pool that counts the jobs submitted to it."""

    def __init__(self) -> None:
        super().__init__(max_workers=64)
        self.jobs = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        self.jobs += 1
        return super().submit(fn, *args, **kwargs)


def _pool_jobs_for_a_batch(members: int, **options: Any) -> int:
    """How many pool jobs a batch of ``members`` plain ``add`` calls takes (its results checked)."""

    async def main() -> int:
        pool = CountingExecutor()
        srv = aio.RPCServer(executor=pool, **options)

        @srv.register
        def add(a: int, b: int) -> int:
            return a + b

        try:
            async with serving(srv) as address:
                c = await aio.connect(*address, timeout=WAIT)
                async with c.batch() as b:
                    results = [b.add(i, 1) for i in range(members)]
                assert [r.result() for r in results] == [i + 1 for i in range(members)]
                await c.close()
        finally:
            pool.shutdown()
        return pool.jobs

    return run(main)


def test_a_batch_of_plain_members_takes_a_pool_job_per_run_not_per_member() -> None:
    members = 1000
    jobs = _pool_jobs_for_a_batch(members)
    # 32 workers, each a job of up to PLAIN_RUN members at a time (was: one job a member).
    assert jobs <= 32 + members // PLAIN_RUN + 32, jobs


def test_a_pool_job_runs_at_most_plain_run_members() -> None:
    """A job gives its thread back after PLAIN_RUN members (a call waiting for a thread waits less)."""
    members = 200
    # One worker: its jobs one after another.
    assert _pool_jobs_for_a_batch(members, max_concurrent_calls=1) == -(-members // PLAIN_RUN)


def test_slow_plain_members_of_a_batch_still_run_at_once() -> None:
    """8 members that each wait for the 8 others run together (not chained in one job)."""

    async def main() -> None:
        srv = aio.RPCServer(max_concurrent_calls=8)
        barrier = threading.Barrier(8, timeout=WAIT)

        @srv.register
        def meet(i: int) -> int:
            barrier.wait()  # (BrokenBarrierError, answered as an error, if fewer run at once)
            return i

        async with serving(srv) as address:
            c = await aio.connect(*address, timeout=WAIT)
            async with c.batch() as b:
                results = [b.meet(i) for i in range(16)]  # two rounds of 8
            assert [r.result() for r in results] == list(range(16))
            await c.close()

    run(main)


def test_a_batch_mixing_plain_and_async_members_is_answered_in_order() -> None:
    async def main() -> None:
        srv = aio.RPCServer(max_concurrent_calls=2)
        noted: list[int] = []

        @srv.register
        def plain(i: int) -> int:
            return i

        @srv.register
        async def later(i: int) -> int:
            await asyncio.sleep(0)
            return -i

        async def twice(i: int) -> int:
            return 2 * i

        @srv.register
        def awaitable(i: int) -> Any:  # a plain handler returning a coroutine: awaited on the loop
            return twice(i)

        @srv.register
        def fails(i: int) -> int:
            raise ValueError(f"no {i}")

        @srv.register
        def note(i: int) -> None:
            noted.append(i)

        kinds = ["plain", "later", "awaitable", "fails", "note", "missing", "plain", "plain"]
        batch: list[Any] = []
        for i in range(40):
            kind = kinds[i % len(kinds)]
            batch.append(request(kind, [i], None if kind == "note" else i))
        batch.insert(5, 7)  # not a request: an Invalid Request reply
        async with serving(srv) as address:
            conn = await RawConn.open(address)
            await conn.send(batch)
            replies = await conn.recv()
            await conn.close()
        (invalid,) = [r for r in replies if r["id"] is None]
        assert invalid["error"]["code"] == -32600
        got = {r["id"]: r.get("result", r.get("error", {}).get("code")) for r in replies if r["id"] is not None}
        want: dict[int, Any] = {}
        for i in range(40):
            kind = kinds[i % len(kinds)]
            if kind != "note":
                want[i] = {"plain": i, "later": -i, "awaitable": 2 * i, "fails": -32603, "missing": -32601}[kind]
        assert got == want
        # In the batch's order (the notifications have none).
        answered = [m for m in batch if not isinstance(m, dict) or "id" in m]
        assert [r["id"] for r in replies] == [m["id"] if isinstance(m, dict) else None for m in answered]
        assert sorted(noted) == [i for i in range(40) if kinds[i % len(kinds)] == "note"]

    run(main)


def test_pool_jobs_take_no_more_requests_once_the_peer_is_gone() -> None:
    """As with async members (test_aio_gone_peer), with plain ones: a job stops taking requests."""

    async def main() -> None:
        srv = aio.RPCServer(max_concurrent_calls=4)
        first_gate, member_gate = asyncio.Event(), threading.Event()
        started: list[int] = []
        noted: list[int] = []

        @srv.register
        async def first() -> int:
            await first_gate.wait()
            return 1

        @srv.register
        def member(i: int) -> int:
            started.append(i)
            member_gate.wait(WAIT)
            return i

        @srv.register
        def note(i: int) -> None:
            noted.append(i)

        @srv.register
        async def add(a: int, b: int) -> int:
            return a + b

        async with serving(srv) as address:
            await batch_then_reset(srv, address, started, first_gate)  # (four workers' jobs wait in a member)
            member_gate.set()
            await until(lambda: srv.total_busy == 0)
            assert sorted(started) == [1, 2, 3, 4]  # the requests after them were skipped
            assert sorted(noted) == list(range(5, 51, 5))  # every notification ran
            other = await aio.connect(*address, timeout=WAIT)
            assert await other.add(2, 3) == 5
            await other.close()

    run(main)
