"""The harness of the fault-injection suite: one workload, checked against the invariants.

Invariants (issue 5, item 6) checked for every scenario:
1. every call either returns exactly its own argument, or raises ConnectionLost /
   RPCTimeout; nothing else, never another call's result;
2. once a call lost the connection, every later call on that client fails fast with
   ConnectionLost too;
3. the server runs each request at most once, and exactly once when it answered;
4. the server keeps serving another client while (and after) the faulty one misbehaves;
5. nothing is left behind: no thread, no file descriptor (``/proc/self/fd``).
"""

from __future__ import annotations

import collections
import contextlib
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from jsonrpc_mini import ConnectionLost, ParseError, RPCClient, RPCServer, RPCTimeout
from jsonrpc_mini.testing import DirectionFaults as D
from jsonrpc_mini.testing import FaultPlan, LoopbackServer, Resources, loopback

Expect = Literal["ok", "lost", "timeout", "refused", "either"]
Kind = Literal["memory", "tcp"]

BLOB = 'é€🎉\\"x\r\n'  # multi-byte UTF-8, escapes and CR LF inside one string


@dataclass
class Outcome:
    """What happened to the calls of one workload."""

    results: list[str] = field(default_factory=list)  # "ok" / "lost" / "timeout" per call
    refused: bool = False


class Recorder:
    """The server's handler: returns its argument and counts executions per token."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()

    def record(self, value: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.counts[value["token"]] += 1
        return value


def make_server() -> tuple[RPCServer, Recorder]:
    server = RPCServer()
    recorder = Recorder()
    server.register_function(recorder.record, name="record")
    return server, recorder


def value_for(token: str, payload: int) -> dict[str, Any]:
    blob = (BLOB * (payload // len(BLOB.encode()) + 1))[: max(payload // 2, 0)] if payload else ""
    return {"token": token, "n": len(token), "blob": blob}


def run_calls(
    client: RPCClient, plan: FaultPlan, prefix: str, calls: int, payload: int, out: Outcome, recorder: Recorder
) -> None:
    """Make the calls; check invariants 1-3 as they come."""
    lost = False
    for i in range(calls):
        token = f"{prefix}-{i}"
        sent = value_for(token, payload)
        try:
            got = client.call("record", sent)
        except ConnectionLost:
            lost = True
            out.results.append("lost")
            continue
        except ParseError:
            # Only when the plan half-closes client->server inside a request: the server
            # then truthfully answers -32700 (id null) for the truncated value, and the
            # client gives that answer to its one pending call.
            assert plan.direction("client_to_server").half_close_after is not None, f"{token}: unexpected ParseError"
            out.results.append("rejected")
            continue
        except RPCTimeout:
            assert not lost, f"{token}: a call after ConnectionLost timed out instead of failing fast"
            out.results.append("timeout")
            break  # a stalled link: every further call would only time out too
        assert not lost, f"{token}: a call succeeded after an earlier one lost the connection"
        assert got == sent, f"{token}: wrong result {str(got)[:200]}"
        with recorder.lock:
            assert recorder.counts[token] == 1, f"{token}: answered but run {recorder.counts[token]} times"
        out.results.append("ok")


@contextlib.contextmanager
def faulty_client(kind: Kind, server: RPCServer, plan: FaultPlan, timeout: float, out: Outcome) -> Iterator[Any]:
    """Yield ``(client or None, healthy-client factory)`` for one transport kind."""
    if kind == "memory":
        healthy = lambda: loopback(server, timeout=5.0)  # noqa: E731
        if plan.refuse_connect:
            with contextlib.suppress(ConnectionLost), loopback(server, plan, timeout=timeout):
                raise AssertionError(f"{plan!r}: loopback did not refuse")
            out.refused = True
            yield None, healthy
            return
        with loopback(server, plan, timeout=timeout) as client:
            yield client, healthy
        return
    with LoopbackServer(server, plan, timeout=timeout) as srv:
        try:
            client = srv.client()
        except ConnectionLost:
            out.refused = True
            client = None
        yield client, lambda: RPCClient(*srv.direct_address, timeout=5.0)


def run_scenario(
    kind: Kind,
    plan: FaultPlan,
    expect: Expect,
    *,
    calls: int = 5,
    payload: int = 0,
    timeout: float = 5.0,
    threads: int = 1,
) -> Outcome:
    """Run one scenario and check all five invariants; return what happened."""
    before = Resources()
    server, recorder = make_server()
    out = Outcome()
    with faulty_client(kind, server, plan, timeout, out) as (client, healthy):
        if client is not None:
            if threads == 1:
                run_calls(client, plan, f"s{plan.seed}", calls, payload, out, recorder)
            else:
                run_threads(client, plan, calls, payload, out, recorder, threads)
        with healthy() as other:  # invariant 4, while the faulty client is still open
            assert other.call("record", value_for("healthy", payload)) == value_for("healthy", payload)
    server.shutdown()
    assert all(count <= 1 for count in recorder.counts.values()), f"a request ran twice: {recorder.counts}"
    check_expectation(expect, out, plan)
    before.assert_no_leaks()  # invariant 5
    return out


def run_threads(
    client: RPCClient, plan: FaultPlan, calls: int, payload: int, out: Outcome, recorder: Recorder, threads: int
) -> None:
    outcomes = [Outcome() for _ in range(threads)]
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            run_calls(client, plan, f"s{plan.seed}-t{index}", calls, payload, outcomes[index], recorder)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert not any(worker.is_alive() for worker in workers), "a calling thread hung"
    if errors:
        raise errors[0]
    for outcome in outcomes:
        out.results.extend(outcome.results)


def check_expectation(expect: Expect, out: Outcome, plan: FaultPlan) -> None:
    results = set(out.results)
    where = f"{plan!r}: {out.results}"
    if expect == "refused":
        assert out.refused and not out.results, where
        return
    assert not out.refused, where
    if expect == "ok":
        assert results == {"ok"}, where
    elif expect == "lost":
        assert "lost" in results and "timeout" not in results, where
    elif expect == "timeout":
        assert out.results[-1] == "timeout" and "lost" not in results, where
    else:
        assert results <= {"ok", "lost", "timeout", "rejected"} and out.results, where


# -- scenarios both drivers' suites run --------------------------------------------

CALLS = 5
# One request of the workload, to aim byte-count faults inside it.
REQUEST = len(b'{"jsonrpc":"2.0","method":"record","params":[{"token":"s0-0","n":4,"blob":""}],"id":1}\n')

Build = Callable[[random.Random, int], tuple[FaultPlan, Expect, dict[str, Any]]]


def in_run(rng: random.Random) -> int:
    """A byte position certainly inside the workload's traffic (both directions: ~2*CALLS*REQUEST)."""
    return rng.randint(0, CALLS * REQUEST)


SHARED_SCENARIOS: dict[str, Build] = {
    "chunk-1": lambda r, s: (FaultPlan(seed=s, max_chunk=1), "ok", {"calls": 3, "payload": 1100}),
    "chunk-7-awkward-large": lambda r, s: (
        FaultPlan(seed=s, max_chunk=7, awkward_splits=True),
        "ok",
        {"calls": 3, "payload": 4000},
    ),
    "latency-jitter": lambda r, s: (FaultPlan(seed=s, latency=0.002, jitter=0.003), "ok", {}),
    "bandwidth": lambda r, s: (FaultPlan(seed=s, bandwidth=400_000.0, max_chunk=512), "ok", {"payload": 3000}),
    "disconnect-after": lambda r, s: (FaultPlan(seed=s, disconnect_after=in_run(r)), "lost", {}),
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
        FaultPlan(seed=s, server_to_client=D(half_close_after=in_run(r) // 2)),
        "lost",
        {},
    ),
    "reset-c2s": lambda r, s: (FaultPlan(seed=s, client_to_server=D(reset_after=in_run(r) // 2)), "lost", {}),
    "reset-s2c": lambda r, s: (
        FaultPlan(seed=s, server_to_client=D(reset_after=in_run(r) // 2, max_chunk=5)),
        "lost",
        {},
    ),
    "refused": lambda r, s: (FaultPlan(seed=s, refuse_connect=True), "refused", {}),
    "stall-c2s": lambda r, s: (
        FaultPlan(seed=s, client_to_server=D(stall_after=in_run(r) // 2)),
        "timeout",
        {"timeout": 0.3},
    ),
    "stall-s2c": lambda r, s: (
        FaultPlan(seed=s, server_to_client=D(stall_after=in_run(r) // 2)),
        "timeout",
        {"timeout": 0.3},
    ),
}


def random_plan(rng: random.Random, seed: int) -> FaultPlan:
    """A plan mixing faults at random (from the seed)."""

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
