"""aio.RPCServer's thread pool for plain handlers: slow calls never hold back a fast one.

The private pool has a thread for each call the server lets run at once
(``max_total_calls``), not Python's default of ``min(32, cpus + 4)``: with more
slow plain calls in flight than that default, a fast plain call sent after them is
still answered while they all run. Its threads end once the server is shut down.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading

import pytest
from _aio_support import WAIT, run, serving, until

from jsonrpc_mini import aio

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.timeout(60),
]

SLOW = (os.cpu_count() or 1) + 5  # more than the default pool's min(32, cpus + 4) workers


def pool_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    """The aio servers' pool threads alive now that were not alive ``before``."""
    return [t for t in threading.enumerate() if t.name.startswith("jsonrpc_mini-aio") and t not in before]


def test_a_fast_plain_call_is_answered_while_more_slow_ones_run_than_the_default_pool_has() -> None:
    release = threading.Event()
    lock = threading.Lock()
    counts = {"started": 0, "ended": 0}

    def slow() -> str:
        with lock:
            counts["started"] += 1
        release.wait(WAIT)
        with lock:
            counts["ended"] += 1
        return "slow"

    def add(a: int, b: int) -> int:
        return a + b

    before = set(threading.enumerate())
    srv = aio.RPCServer(max_concurrent_calls=SLOW + 1)  # (alive to the end: its pool is not let go by chance)
    srv.register_function(slow)
    srv.register_function(add)

    async def main() -> None:
        try:
            async with serving(srv) as address, await aio.connect(*address, timeout=WAIT) as c:
                slows = [asyncio.create_task(c.slow()) for _ in range(SLOW)]
                try:
                    await until(lambda: counts["started"] == SLOW)  # all of them hold a pool thread
                    assert await asyncio.wait_for(c.add(1, 2), WAIT) == 3
                    assert counts["ended"] == 0  # answered before any slow call ended
                finally:
                    release.set()
                assert await asyncio.gather(*slows) == ["slow"] * SLOW
        finally:
            release.set()

    run(main)
    for _ in range(int(WAIT / 0.01)):  # shutdown() let the pool go: its threads end
        if not pool_threads(before):
            break
        threading.Event().wait(0.01)
    assert not pool_threads(before)


def test_a_given_executor_is_used_and_left_running() -> None:
    pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="mine")

    async def main() -> str:
        srv = aio.RPCServer(executor=pool)
        srv.register_function(lambda: threading.current_thread().name, name="name")
        async with serving(srv) as address, await aio.connect(*address, timeout=WAIT) as c:
            return str(await c.name())

    try:
        assert run(main).startswith("mine")
        assert pool.submit(lambda: 5).result(WAIT) == 5  # shutdown() did not shut it down
    finally:
        pool.shutdown()
