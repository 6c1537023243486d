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
from _fault_harness import Expect, Outcome, check_expectation, value_for

from jsonrpc_mini import RPCServer, aio
from jsonrpc_mini.testing import DirectionFaults as D
from jsonrpc_mini.testing import FaultPlan, LoopbackServer
from jsonrpc_mini.testing._aio_loopback import AioLoopbackServer, aio_loopback

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
CALLS = 5
REQUEST = len(b'{"jsonrpc":"2.0","method":"record","params":[{"token":"s0-0","n":4,"blob":""}],"id":1}\n')


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


def _in_run(rng: random.Random) -> int:
    return rng.randint(0, CALLS * REQUEST)


Build = Callable[[random.Random, int], tuple[FaultPlan, Expect, dict[str, Any]]]
SCENARIOS: dict[str, Build] = {
    "chunk-1": lambda r, s: (FaultPlan(seed=s, max_chunk=1), "ok", {"calls": 3, "payload": 1100}),
    "chunk-7-awkward-large": lambda r, s: (
        FaultPlan(seed=s, max_chunk=7, awkward_splits=True),
        "ok",
        {"calls": 3, "payload": 4000},
    ),
    "latency-jitter": lambda r, s: (FaultPlan(seed=s, latency=0.002, jitter=0.003), "ok", {}),
    "bandwidth": lambda r, s: (FaultPlan(seed=s, bandwidth=400_000.0, max_chunk=512), "ok", {"payload": 3000}),
    "slow-connect-close": lambda r, s: (FaultPlan(seed=s, connect_delay=0.05, close_delay=0.05), "ok", {}),
    "disconnect-after": lambda r, s: (FaultPlan(seed=s, disconnect_after=_in_run(r)), "lost", {}),
    "disconnect-in-frame-c2s": lambda r, s: (
        FaultPlan(seed=s, client_to_server=D(disconnect_in_frame=r.randint(1, 3))),
        "lost",
        {},
    ),
    "disconnect-in-frame-s2c": lambda r, s: (
        FaultPlan(seed=s, server_to_client=D(disconnect_in_frame=r.randint(1, 3), max_chunk=9)),
        "lost",
        {},
    ),
    "half-close-c2s": lambda r, s: (
        FaultPlan(seed=s, client_to_server=D(half_close_after=r.randint(1, 3) * REQUEST)),
        "lost",
        {},
    ),
    "half-close-s2c": lambda r, s: (
        FaultPlan(seed=s, server_to_client=D(half_close_after=_in_run(r) // 2)),
        "lost",
        {},
    ),
    "reset-c2s": lambda r, s: (FaultPlan(seed=s, client_to_server=D(reset_after=_in_run(r) // 2)), "lost", {}),
    "reset-s2c": lambda r, s: (
        FaultPlan(seed=s, server_to_client=D(reset_after=_in_run(r) // 2, max_chunk=5)),
        "lost",
        {},
    ),
    "refused": lambda r, s: (FaultPlan(seed=s, refuse_connect=True), "refused", {}),
    "stall-c2s": lambda r, s: (
        FaultPlan(seed=s, client_to_server=D(stall_after=_in_run(r) // 2)),
        "timeout",
        {"timeout": 0.3},
    ),
    "stall-s2c": lambda r, s: (
        FaultPlan(seed=s, server_to_client=D(stall_after=_in_run(r) // 2)),
        "timeout",
        {"timeout": 0.3},
    ),
    "tasks-chunked": lambda r, s: (FaultPlan(seed=s, max_chunk=11, latency=0.0005), "ok", {"tasks": 4, "calls": 4}),
    "tasks-disconnect": lambda r, s: (
        FaultPlan(seed=s, max_chunk=23, disconnect_after=_in_run(r) * 2),
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


def random_plan(rng: random.Random, seed: int) -> FaultPlan:
    def direction() -> D:
        return D(
            max_chunk=rng.choice([None, 1, 3, 64]),
            awkward_splits=rng.random() < 0.5,
            disconnect_in_frame=rng.choice([None, None, 2, 4]),
            reset_after=rng.choice([None, None, rng.randint(0, 600)]),
            half_close_after=rng.choice([None, None, rng.randint(0, 600)]),
            stall_after=rng.choice([None, None, None, rng.randint(0, 600)]),
        )

    return FaultPlan(
        seed=seed,
        disconnect_after=rng.choice([None, rng.randint(0, 1200)]),
        client_to_server=direction(),
        server_to_client=direction(),
    )


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
