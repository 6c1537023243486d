"""aio.RPCServer: held batches take their turns one per loop iteration, calls between them.

Taking a batch on its turn decodes it on the loop and starts its workers. When
several slots free at once (a batch's workers end together), each used to wake a
held batch, all started in the next loop iteration: under a flood of large
batches every iteration decoded a dozen of them, and a call from another client
(a few loop iterations from read to reply) waited for each. Now a message that
weighs more than one call gets one turn per loop iteration at most; a slot it
would have taken goes to a lighter held call first.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from _aio_support import RawConn, request, run, serving, until

from jsonrpc_mini import aio
from jsonrpc_mini._aio_conn import ServerProtocol

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.timeout(60),
]

SLOTS = 6  # max_total_calls (and max_concurrent_calls): held by a batch's members until the gate opens
BATCHES = 3
MEMBERS = 2  # each batch takes 2 slots: the slots that free together would start two at once


def _batch(tag: str) -> bytes:
    return json.dumps([request("step", [tag], i) for i in range(MEMBERS)]).encode() + b"\n"


def _watch(monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], list[str], dict[str, int]]:
    """Loop iterations counted by a callback that runs once in each; what started in which.

    Returns (the iteration in which each batch started, the iteration in which
    the call tagged "late" was taken, the counter: "now" is the current iteration).
    """
    started: list[int] = []
    clock = {"now": 0}
    taken: list[str] = []
    start_batch = ServerProtocol._start_batch
    call = ServerProtocol._call

    def recording_start(self: ServerProtocol, batch: Any) -> None:
        started.append(clock["now"])
        start_batch(self, batch)

    def recording_call(self: ServerProtocol, message: Any) -> None:
        params = message["params"] if type(message) is dict else message.params
        if params == ["late"]:
            taken.append(f"late@{clock['now']}")
        call(self, message)

    monkeypatch.setattr(ServerProtocol, "_start_batch", recording_start)
    monkeypatch.setattr(ServerProtocol, "_call", recording_call)
    return started, taken, clock


def test_held_batches_start_one_per_loop_iteration(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slots that free together start one held batch per loop iteration, not all in one."""
    started, taken, clock = _watch(monkeypatch)

    async def main() -> None:
        srv = aio.RPCServer(max_total_calls=SLOTS, max_concurrent_calls=SLOTS, read_timeout=60)
        gate = asyncio.Event()

        @srv.register
        async def hold(i: int) -> int:
            await gate.wait()
            return i

        @srv.register
        async def step(tag: str) -> str:
            return tag

        loop = asyncio.get_running_loop()
        ticking = True

        def tick() -> None:
            clock["now"] += 1
            if ticking:
                loop.call_soon(tick)

        async with serving(srv) as address:
            conns: list[RawConn] = []
            try:
                holder = await RawConn.open(address)  # every slot held by a member waiting for the gate
                conns.append(holder)
                await holder.send([request("hold", [i], i) for i in range(SLOTS)])
                await until(lambda: srv.total_busy == SLOTS)
                held = len(srv._blocked)  # (the holder may be held too, with nothing to take)
                for k in range(BATCHES):
                    conns.append(await RawConn.open(address))
                    await conns[-1].send(_batch(f"b{k}"))
                    await until(lambda k=k: len(srv._blocked) == held + k + 1)
                late = await RawConn.open(address)  # a call held after the batches
                conns.append(late)
                await late.send(request("step", ["late"], 9))
                await until(lambda: len(srv._blocked) == held + BATCHES + 1)
                tick()
                gate.set()  # the holding members end in one loop iteration: their slots free together
                assert await holder.recv() == [{"jsonrpc": "2.0", "id": i, "result": i} for i in range(SLOTS)]
                for k in range(BATCHES):
                    replies = await conns[1 + k].recv()
                    assert replies == [{"jsonrpc": "2.0", "id": i, "result": f"b{k}"} for i in range(MEMBERS)]
                assert await late.recv() == {"jsonrpc": "2.0", "id": 9, "result": "late"}
            finally:
                ticking = False
                gate.set()
                for conn in conns:
                    await conn.close()

    run(main)
    assert started[0] == 0, started  # the holder's batch, before the loop iterations were counted
    held = started[1:]
    assert len(held) == BATCHES, started
    # One held batch per loop iteration (two started in one iteration before).
    assert len(set(held)) == BATCHES, started
    assert held == sorted(held), started
    # The call held after the batches took one of the slots that freed together,
    # not one after the batches (it weighs 1: its tag is the lowest anyway).
    assert len(taken) == 1 and int(taken[0].split("@")[1]) <= held[0], (taken, started)


def test_batches_put_off_to_later_iterations_all_start_though_no_call_ends() -> None:
    """Held batches whose turns were put off start in later iterations, with nothing else waking them.

    Each batch's first member waits until the first members of all three run, so
    the second and third must start while every call running still waits.
    """

    async def main() -> None:
        srv = aio.RPCServer(max_total_calls=SLOTS, max_concurrent_calls=1, read_timeout=60)
        gate, later = asyncio.Event(), asyncio.Event()
        waiting: list[str] = []

        @srv.register
        async def hold(tag: str) -> str:
            waiting.append(tag)
            await (gate if tag == "h" else later).wait()  # the batches' members wait until every one ran
            return tag

        async with serving(srv) as address:
            conns: list[RawConn] = []
            try:
                for i in range(SLOTS):  # a call on each of SLOTS connections holds every slot
                    conns.append(await RawConn.open(address))
                    await conns[-1].send(request("hold", ["h"], i))
                await until(lambda: srv.total_busy == SLOTS)
                held = len(srv._blocked)
                for k in range(BATCHES):
                    conns.append(await RawConn.open(address))
                    await conns[-1].send([request("hold", [f"b{k}"], i) for i in range(MEMBERS)])
                    await until(lambda k=k: len(srv._blocked) == held + k + 1)
                gate.set()
                # Each batch takes one slot (one member at a time): the first members of all
                # three wait together, none ending before all began.
                await until(lambda: len(waiting) == SLOTS + BATCHES)
                later.set()
                for i in range(SLOTS):
                    assert await conns[i].recv() == {"jsonrpc": "2.0", "id": i, "result": "h"}
                for k in range(BATCHES):
                    replies = await conns[SLOTS + k].recv()
                    assert replies == [{"jsonrpc": "2.0", "id": i, "result": f"b{k}"} for i in range(MEMBERS)]
            finally:
                gate.set()
                later.set()
                for conn in conns:
                    await conn.close()

    run(main)
