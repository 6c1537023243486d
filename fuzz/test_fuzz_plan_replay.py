"""The test kit's fault plans replay: the same plan (same seed) gives the same run.

README (Test kit): "Every random choice comes from a seed: the same seed gives the
same chunk boundaries and failure points", and ``repr(plan)`` is the constructor call
that replays it. Sequential calls through a plan that cuts, closes, resets,
half-closes or stalls the link must end the same way each time: the same values, the
same exceptions with the same messages (which name the byte where the plan struck).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jsonrpc_mini import RPCError, RPCServer, aio
from jsonrpc_mini.testing import AioLoopbackServer, DirectionFaults, FaultPlan, LoopbackServer, aio_loopback, loopback
from jsonrpc_mini.testing import strategies as rst

from ._budget import scaled

pytestmark = pytest.mark.timeout(600)

TIMEOUT = 0.5  # a stalled link's calls end by it

Outcome = tuple[str, Any]


def echo(*args: Any) -> Any:
    return list(args)


@pytest.fixture(scope="module")
def server() -> Iterator[RPCServer]:
    srv = RPCServer(shutdown_grace=2.0)
    srv.register_function(echo)
    yield srv
    srv.shutdown()


def outcome_of(exc: BaseException) -> Outcome:
    return (type(exc).__name__, str(exc))


def sync_run(server: RPCServer, kit: str, plan: FaultPlan, calls: list[list[Any]]) -> list[Outcome]:
    """Each call's value or exception through the kit with the plan, in order; then how the kit ended."""
    outcomes: list[Outcome] = []
    try:
        if kit == "loopback":
            with loopback(server, faults=plan, timeout=TIMEOUT) as client:
                outcomes += [call(client.echo, args) for args in calls]
        else:
            with LoopbackServer(server, faults=plan, timeout=TIMEOUT) as proxy:
                try:
                    client = proxy.client()
                except RPCError as exc:
                    return [outcome_of(exc)]
                with client:
                    outcomes += [call(client.echo, args) for args in calls]
    except RPCError as exc:  # (leaving the block: the kit's own end)
        outcomes.append(("kit: " + type(exc).__name__, str(exc)))
    return outcomes


def call(function: Any, args: list[Any]) -> Outcome:
    try:
        return ("value", function(*args))
    except RPCError as exc:
        return outcome_of(exc)


async def aio_run(kit: str, plan: FaultPlan, calls: list[list[Any]]) -> list[Outcome]:
    srv = aio.RPCServer(shutdown_grace=2.0)
    srv.register_function(echo)
    outcomes: list[Outcome] = []
    try:
        if kit == "aio_loopback":
            async with aio_loopback(srv, faults=plan, timeout=TIMEOUT) as client:
                outcomes += [await acall(client.echo, args) for args in calls]
        else:
            async with AioLoopbackServer(srv, faults=plan, timeout=TIMEOUT) as proxy:
                try:
                    client = await proxy.client()
                except RPCError as exc:
                    return [outcome_of(exc)]
                async with client:
                    outcomes += [await acall(client.echo, args) for args in calls]
    except RPCError as exc:
        outcomes.append(("kit: " + type(exc).__name__, str(exc)))
    finally:
        await srv.shutdown()
    return outcomes


async def acall(function: Any, args: list[Any]) -> Outcome:
    try:
        return ("value", await function(*args))
    except RPCError as exc:
        return outcome_of(exc)


def run(server: RPCServer, kit: str, plan: FaultPlan, calls: list[list[Any]]) -> list[Outcome]:
    if kit.startswith("aio"):
        return asyncio.run(aio_run(kit, plan, calls))
    return sync_run(server, kit, plan, calls)


small = st.lists(st.one_of(rst.json_values(max_leaves=6), rst.large_values(max_bytes=2000)), max_size=3)


# Invariant: a fault plan replays. The same plan, and the plan rebuilt from its repr,
# give each of a run's sequential calls the same value or the same exception and
# message, through each of the four kits (in-memory and TCP proxy, sync and asyncio).
@scaled(0.1)
@given(
    plan=rst.fault_plans(breaking=True),
    calls=st.lists(small, min_size=1, max_size=3),
    kit=st.sampled_from(["loopback", "tcp", "aio_loopback", "aio_tcp"]),
)
def test_the_same_plan_gives_the_same_run(server, plan, calls, kit):
    first = run(server, kit, plan, calls)
    again = run(server, kit, plan, calls)
    assert again == first, plan
    replayed = eval(repr(plan), {"FaultPlan": FaultPlan, "DirectionFaults": DirectionFaults})
    assert run(server, kit, replayed, calls) == first, plan
