"""aio.RPCClient call timeouts: one timer per connection over a FIFO of deadlines per timeout value.

Invariant: a call fails with RPCTimeout once its own timeout has passed and never
before, whatever other timeouts, answers, cancellations and late replies happen
around it; answered calls leave at most a bounded number of deadline entries behind.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from _aio_support import WAIT, run, serving, spin_until
from hypothesis import example, given, settings
from hypothesis import strategies as st

from jsonrpc_mini import aio
from jsonrpc_mini._aio_link import _SWEEP_EVERY, Link
from jsonrpc_mini._client_protocol import ClientConnection

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
            with pytest.raises(aio.RPCTimeout, match=r"wait_gate: no reply within 0\.1 s") as timed_out:
                await short
            # README: .method names the remote method (as the sync client's), the text says it once.
            assert timed_out.value.method == "wait_gate"
            assert timed_out.value.message == "no reply within 0.1 s; a late reply will be dropped"
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
            assert len(c._link._deadlines) <= 2 * 100 + 1
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
            await spin_until(lambda: c._link._deadlines.queues)  # the call is made, its deadline counted
            assert c._link._deadlines.timer is not None
            await c.close()
            with pytest.raises(aio.ConnectionLost):
                await waiting
            assert c._link._deadlines.timer is None and c._link._deadlines.queues == {}
            gate.set()

    run(main)


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock moves only when the test says so."""

    now = 1000.0

    def time(self) -> float:
        return self.now


class Sink(asyncio.Transport):
    def write(self, data: Any) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


TIMEOUTS = (0.25, 1.0, 2.0, None)
LONGEST = 2.5
# A few shared timeouts (a FIFO with many calls each) and many distinct ones (budget-derived
# timeouts: a FIFO per call), in 1/128 s steps so the clock can land on any deadline exactly.
shared = st.sampled_from(TIMEOUTS)
timeout_st = st.one_of(shared, shared, st.integers(1, int(LONGEST * 128)).map(lambda k: k / 128))
call_step = st.tuples(st.just("call"), timeout_st)
step = st.one_of(
    call_step,
    call_step,  # (twice: calls pile up in flight)
    st.tuples(st.just("answer"), st.integers(0, 30)),
    st.tuples(st.just("cancel"), st.integers(0, 30)),
    st.tuples(st.just("wait"), st.sampled_from((0.0, 1 / 128, 3 / 64, 0.25, 0.5, 0.75, 1.5))),
    st.tuples(st.just("sweep"), st.just(0)),  # what every _SWEEP_EVERY calls does
)


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(step, min_size=5, max_size=80))
@example(steps=[("call", 1.0)] * 6 + [("answer", 1), ("wait", 0.5), ("call", 0.25), ("call", 1.0), ("wait", 0.75)])
# (A FIFO whose head expires while later calls wait in it: its next head arms the timer.)
@example(steps=[("call", 1.0), ("wait", 0.25)] * 3 + [("wait", 0.25)] * 3)
def test_every_call_times_out_at_its_own_deadline_and_not_before(steps: list[tuple[str, Any]]) -> None:
    loop = VirtualClockLoop()

    async def main() -> None:
        link = Link(ClientConnection())
        link.connection_made(Sink())
        made: list[tuple[int, float | None, float, aio.Call]] = []  # id, timeout, made at, call
        replied: dict[int, int] = {}
        for action, arg in steps:
            if action == "call":
                call = link.request("m", [len(made)], arg)
                made.append((len(made) + 1, arg, loop.now, call))
            elif action == "sweep":
                link._sweep()
            elif action in ("answer", "cancel") and made:
                id_, _, _, call = made[arg % len(made)]
                if action == "cancel":
                    call.cancel()
                else:  # a reply, possibly late (the call timed out or was cancelled): then dropped
                    link.data_received(json.dumps({"jsonrpc": "2.0", "id": id_, "result": id_}).encode() + b"\n")
                    replied.setdefault(id_, id_)
            elif action == "wait":
                loop.now += arg
                for _ in range(3):
                    await asyncio.sleep(0)  # let the timer run
            for id_, timeout, made_at, call in made:
                due = timeout is not None and loop.now >= made_at + timeout
                if not call.done():
                    assert not due or action != "wait", f"call {id_} outlived its timeout {timeout}"
                elif call.cancelled():
                    continue
                elif isinstance(call.exception(), aio.RPCTimeout):
                    assert timeout is not None and loop.now >= made_at + timeout, f"call {id_} timed out early"
                    assert id_ not in link.pending
                else:
                    assert call.result() == replied[id_]
            entries = len(link._deadlines)
            assert entries <= len([c for c in made if c[1] is not None]), "more deadlines than calls"
            if link._deadlines.queues:
                # The one timer is armed no later than the earliest deadline.
                assert link._deadlines.timer is not None
                assert link._deadlines.timer.when() <= min(queue[0][0] for queue in link._deadlines.queues.values())
        loop.now += LONGEST  # every deadline has passed
        for _ in range(3):
            await asyncio.sleep(0)
        for id_, timeout, _, call in made:
            assert call.done() == (timeout is not None or id_ in replied or call.cancelled()), f"call {id_}"
        link.fail_all("test over")
        assert link._deadlines.queues == {} and link._deadlines.timer is None
        for *_, call in made:
            if call.done() and not call.cancelled():
                call.exception()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


def test_deadline_entries_stay_bounded_by_the_calls_in_flight() -> None:
    """Answered calls leave few entries (one is dropped per call), even behind a slow call."""
    loop = VirtualClockLoop()

    async def main() -> None:
        link = Link(ClientConnection())
        link.connection_made(Sink())
        slow = link.request("slow", None, 60.0)  # never answered: stays at the head of its queue
        for i in range(3 * _SWEEP_EVERY):
            call = link.request("m", None, 60.0)
            link.data_received(b'{"jsonrpc":"2.0","id":%d,"result":%d}\n' % (i + 2, i))
            assert call.result() == i
            entries = len(link._deadlines)
            assert entries <= _SWEEP_EVERY + 2
        quick = [link.request("m", None, 1.0) for _ in range(10)]
        for i, call in enumerate(quick):
            link.data_received(b'{"jsonrpc":"2.0","id":%d,"result":0}\n' % (3 * _SWEEP_EVERY + 2 + i))
            assert call.result() == 0
        for _ in range(20):  # answered one by one: the queue of a caller waiting for each reply stays short
            call = link.request("m", None, 1.0)
            link.data_received(b'{"jsonrpc":"2.0","id":%d,"result":0}\n' % list(link.pending)[-1])
            assert call.result() == 0
            assert len(link._deadlines.queues[1.0]) <= 1
        assert not slow.done()
        loop.now += 60.0  # the slow call's deadline, kept through every sweep, still fires
        for _ in range(3):
            await asyncio.sleep(0)
        with pytest.raises(aio.RPCTimeout, match=r"slow: no reply within 60\.0 s"):
            slow.result()
        assert link.pending == {} and link._deadlines.queues == {} and link._deadlines.timer is None
        link.fail_all("test over")

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


class Reading(float):
    """A clock reading that counts comparisons between the deadlines derived from it."""

    compared = 0

    def __add__(self, other: object) -> Reading:
        return Reading(float.__add__(self, other))  # type: ignore[arg-type]

    __radd__ = __add__

    def __lt__(self, other: object) -> bool:
        Reading.compared += 1
        return float.__lt__(self, other)  # type: ignore[arg-type]

    def __le__(self, other: object) -> bool:
        Reading.compared += 1
        return float.__le__(self, other)  # type: ignore[arg-type]

    def __gt__(self, other: object) -> bool:
        Reading.compared += 1
        return float.__gt__(self, other)  # type: ignore[arg-type]

    def __ge__(self, other: object) -> bool:
        Reading.compared += 1
        return float.__ge__(self, other)  # type: ignore[arg-type]


class CountingClockLoop(VirtualClockLoop):
    def time(self) -> float:
        return Reading(self.now)


def test_an_expiry_looks_at_the_due_deadlines_only_with_thousands_of_distinct_timeouts() -> None:
    """Calls whose timeouts all differ (deadline-derived): work per expiry grows like log n, not n.

    The work is counted, not timed: every comparison of two deadlines (all derive
    from the loop's clock readings). Looking at every timeout's queue whenever the
    timer fires costs n**2 / 2 comparisons for n expiries one after another (2,000,000
    here); keeping the queues' heads in a heap costs O(n log n) (about 60,000).
    """
    loop = CountingClockLoop()
    n = 2000

    async def main() -> None:
        link = Link(ClientConnection())
        link.connection_made(Sink())
        calls = [link.request("m", [i], 1.0 + i / 1024) for i in range(n)]  # deadlines 1/1024 s apart
        for i in range(0, n, 2):  # half are answered (their entries stay until due)
            link.data_received(b'{"jsonrpc":"2.0","id":%d,"result":%d}\n' % (i + 1, i))
        Reading.compared = 0
        loop.now += 1.0 - 1 / 1024
        for i in range(n):  # the clock reaches each deadline in turn
            loop.now += 1 / 1024
            for _ in range(2):
                await asyncio.sleep(0)
            call = calls[i]
            assert call.done(), f"call {i} outlived its timeout"
            if i % 2:
                with pytest.raises(aio.RPCTimeout):
                    call.result()
            else:
                assert call.result() == i
            if i + 1 < n and (i + 1) % 2:
                assert not calls[i + 1].done(), f"call {i + 1} timed out early"
        assert link.pending == {} and link._deadlines.queues == {} and link._deadlines.timer is None
        assert Reading.compared <= 50 * n, f"{Reading.compared} deadline comparisons for {n} expiries"
        link.fail_all("test over")

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
