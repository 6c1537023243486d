"""The fault-injection suite against the asyncio driver: aio client and aio server, in memory and over TCP.

Invariant: a call either returns exactly its own result, once, or raises
ConnectionLost / RPCTimeout; never a wrong or duplicated result; once a call lost
the connection every later call fails fast; the server runs a request at most once
(exactly once when it answered), keeps serving another client meanwhile, and no
task, transport or socket is left behind (the run fails on any loop error,
"Task was destroyed but it is pending" or ResourceWarning). The same seed gives
the same failure point.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import pytest
from _aio_support import run
from _fault_harness import (
    CALLS,
    SHARED_SCENARIOS,
    Build,
    Expect,
    Outcome,
    check_expectation,
    in_run,
    random_plan,
    value_for,
)

from jsonrpc_mini import RPCServer, aio
from jsonrpc_mini.testing import FaultPlan, LoopbackServer
from jsonrpc_mini.testing._aio_loopback import aio_loopback
from jsonrpc_mini.testing._aio_loopback_server import AioLoopbackServer

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.timeout(60),
]

# memory: aio_loopback; tcp: AioLoopbackServer's asyncio proxy; sync-server: the aio
# client through the blocking kit's LoopbackServer proxy to the sync RPCServer.
Kind = Literal["memory", "tcp", "sync-server"]
KINDS = ("memory", "tcp", "sync-server")
SEEDS = (0, 1)


class Recorder:
    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()

    async def record(self, value: dict[str, Any]) -> dict[str, Any]:
        return self.record_sync(value)

    def record_sync(self, value: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.counts[value["token"]] += 1
        return value


async def run_calls(
    client: aio.RPCClient, plan: FaultPlan, prefix: str, calls: int, payload: int, out: Outcome, rec: Recorder
) -> None:
    lost = False
    for i in range(calls):
        token = f"{prefix}-{i}"
        sent = value_for(token, payload)
        try:
            got = await client.call("record", sent)
        except aio.ConnectionLost:
            lost = True
            out.results.append("lost")
            continue
        except aio.ParseError:
            # a half-close inside a request: the server truthfully answers -32700 for the
            # truncated value, and the client gives it to its one pending call
            assert plan.direction("client_to_server").half_close_after is not None, f"{token}: unexpected ParseError"
            out.results.append("rejected")
            continue
        except aio.RPCTimeout:
            assert not lost, f"{token}: a call after ConnectionLost timed out instead of failing fast"
            out.results.append("timeout")
            break
        assert not lost, f"{token}: a call succeeded after an earlier one lost the connection"
        assert got == sent, f"{token}: wrong result {str(got)[:200]}"
        assert rec.counts[token] == 1, f"{token}: answered but run {rec.counts[token]} times"
        out.results.append("ok")


async def run_tasks(
    client: aio.RPCClient, plan: FaultPlan, calls: int, payload: int, out: Outcome, rec: Recorder, tasks: int
) -> None:
    """Several tasks share the faulty client at once: replies must reach the right caller."""
    outcomes = [Outcome() for _ in range(tasks)]
    await asyncio.gather(
        *(run_calls(client, plan, f"s{plan.seed}-t{i}", calls, payload, outcomes[i], rec) for i in range(tasks))
    )
    for outcome in outcomes:
        out.results.extend(outcome.results)


@contextlib.asynccontextmanager
async def faulty_client(
    kind: Kind, server: Any, plan: FaultPlan, timeout: float, out: Outcome
) -> AsyncIterator[tuple[aio.RPCClient | None, Callable[[], Any]]]:
    if kind == "memory":

        def healthy() -> Any:
            return aio_loopback(server, timeout=5.0)

        if plan.refuse_connect:
            with pytest.raises(aio.ConnectionLost, match="refused"):
                async with aio_loopback(server, plan, timeout=timeout):
                    pass
            out.refused = True
            yield None, healthy
            return
        async with aio_loopback(server, plan, timeout=timeout) as client:
            yield client, healthy
        return
    if kind == "sync-server":
        # the aio client through the blocking test kit's proxy to the sync server
        with LoopbackServer(server, plan, timeout=timeout) as srv:

            @contextlib.asynccontextmanager
            async def direct_sync() -> AsyncIterator[aio.RPCClient]:
                async with await aio.connect(*srv.direct_address, timeout=5.0) as c:
                    yield c

            try:
                client = await aio.connect(*srv.address, timeout=timeout)
            except aio.ConnectionLost:
                out.refused = True
                yield None, direct_sync
            else:
                try:
                    yield client, direct_sync
                finally:
                    await client.close()
        return
    async with AioLoopbackServer(server, plan, timeout=timeout) as lb:

        @contextlib.asynccontextmanager
        async def direct() -> AsyncIterator[aio.RPCClient]:
            async with await aio.connect(*lb.direct_address, timeout=5.0) as c:
                yield c

        try:
            client = await lb.client()
        except aio.ConnectionLost:
            out.refused = True
            client = None
        yield client, direct


async def run_scenario(
    kind: Kind,
    plan: FaultPlan,
    expect: Expect,
    *,
    calls: int = CALLS,
    payload: int = 0,
    timeout: float = 5.0,
    tasks: int = 1,
) -> Outcome:
    rec = Recorder()
    server: aio.RPCServer | RPCServer
    if kind == "sync-server":
        server = RPCServer(shutdown_grace=1.0)
        server.register_function(rec.record_sync, name="record")
    else:
        server = aio.RPCServer(shutdown_grace=1.0)
        server.register_function(rec.record, name="record")
    out = Outcome()
    try:
        async with faulty_client(kind, server, plan, timeout, out) as (client, healthy):
            if client is not None:
                if tasks == 1:
                    await run_calls(client, plan, f"s{plan.seed}", calls, payload, out, rec)
                else:
                    await run_tasks(client, plan, calls, payload, out, rec, tasks)
            async with healthy() as other:  # the server keeps serving others meanwhile
                assert await other.call("record", value_for("healthy", payload)) == value_for("healthy", payload)
    finally:
        if isinstance(server, RPCServer):
            await asyncio.to_thread(server.shutdown)
        else:
            await server.shutdown()
    assert all(count <= 1 for count in rec.counts.values()), f"a request ran twice: {rec.counts}"
    check_expectation(expect, out, plan)
    return out


SCENARIOS: dict[str, Build] = {
    **SHARED_SCENARIOS,
    "slow-connect-close": lambda r, s: (FaultPlan(seed=s, connect_delay=0.05, close_delay=0.05), "ok", {}),
    "tasks-chunked": lambda r, s: (FaultPlan(seed=s, max_chunk=11, latency=0.0005), "ok", {"tasks": 4, "calls": 4}),
    "tasks-disconnect": lambda r, s: (
        FaultPlan(seed=s, max_chunk=23, disconnect_after=in_run(r) * 2),
        "lost",
        {"tasks": 4, "calls": 4},
    ),
}


# Two seeds in memory (cheap), one over each kind of real socket: keeps the suite fast.
CASES = [(kind, variant) for kind in KINDS for variant in (SEEDS if kind == "memory" else SEEDS[:1])]


@pytest.mark.parametrize(("kind", "variant"), CASES)
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_fault(name: str, kind: Kind, variant: int, jsonrpc_seed: int) -> None:
    seed = jsonrpc_seed + variant
    plan, expect, options = SCENARIOS[name](random.Random(f"{seed}/{name}"), seed)
    outcome = run(lambda: run_scenario(kind, plan, expect, **options))
    if expect == "lost":
        assert outcome.results.count("lost") >= 1


@pytest.mark.parametrize("variant", range(6))
@pytest.mark.parametrize("kind", KINDS)
def test_random_mix(kind: Kind, variant: int, jsonrpc_seed: int) -> None:
    seed = jsonrpc_seed + variant
    rng = random.Random(f"{seed}/mix")
    plan = random_plan(rng, seed)
    run(lambda: run_scenario(kind, plan, "either", timeout=0.5, payload=rng.choice([0, 2000])))


def test_same_seed_same_failure_point() -> None:
    for name in ("disconnect-after", "disconnect-in-frame-c2s", "reset-s2c"):
        first = SCENARIOS[name](random.Random(f"5/{name}"), 5)
        again = SCENARIOS[name](random.Random(f"5/{name}"), 5)
        assert first[0] == again[0]
        a = run(lambda plan=first[0]: run_scenario("memory", plan, "lost"))
        b = run(lambda plan=again[0]: run_scenario("memory", plan, "lost"))
        assert a.results == b.results


def test_failures_name_the_seed() -> None:
    async def main() -> None:
        server = aio.RPCServer()
        server.register_function(lambda: 1, name="one")
        plan = FaultPlan(seed=4242, disconnect_after=10)
        with pytest.raises(aio.ConnectionLost) as err:
            async with aio_loopback(server, plan) as client:
                await client.one()
        assert any("seed=4242" in note for note in err.value.__notes__)
        await server.shutdown()

    run(main)
