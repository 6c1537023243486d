"""The ``one_loop`` fixture (``_aio_support.OneLoop``) checks each example as ``run`` does.

Property tests run all their examples on one event loop; each example must still
fail on a task left running or an error the loop reports (a future's exception
never retrieved, even one held in a reference cycle), and a failed example must
leave nothing that would fail the next one instead (hypothesis shrinks by rerunning).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from _aio_support import OneLoop


async def leaves_a_task() -> None:
    asyncio.get_running_loop().create_task(asyncio.sleep(10))


async def drops_an_exception(cycle: bool = False) -> None:
    future: Any = asyncio.get_running_loop().create_future()
    future.set_exception(ValueError("nobody looks"))
    if cycle:
        future.me = future  # freed only by a collection


async def fine() -> int:
    await asyncio.sleep(0)
    return 7


@pytest.mark.parametrize("bad", [leaves_a_task, drops_an_exception, lambda: drops_an_exception(cycle=True)])
def test_a_bad_example_fails_and_the_next_one_passes(bad: Any) -> None:
    runner = OneLoop()
    try:
        assert runner.run(fine) == 7
        with pytest.raises(AssertionError, match=r"tasks left running|event loop reported errors"):
            runner.run(bad)
        assert runner.run(fine) == 7
    finally:
        runner.close()


def test_an_example_that_raises_leaves_nothing_to_the_next() -> None:
    async def raises() -> None:
        await leaves_a_task()
        await drops_an_exception(cycle=True)
        raise KeyError("the example's own failure")

    runner = OneLoop()
    try:
        with pytest.raises(KeyError):
            runner.run(raises)
        assert runner.run(fine) == 7
    finally:
        runner.close()


def test_what_only_the_last_collection_finds_fails_the_test() -> None:
    kept: list[Any] = []

    async def keeps_a_cycle() -> None:
        future: Any = asyncio.get_running_loop().create_future()
        future.set_exception(ValueError("nobody looks"))
        future.me = future
        kept.append(future)

    runner = OneLoop()
    runner.run(keeps_a_cycle)  # still referenced: nothing to report yet
    kept.clear()
    with pytest.raises(AssertionError, match="event loop reported errors"):
        runner.close()


def test_the_fixture_gives_a_debug_loop_that_runs_examples(one_loop: OneLoop) -> None:
    assert one_loop.loop.get_debug()
    assert [one_loop.run(fine) for _ in range(3)] == [7, 7, 7]
