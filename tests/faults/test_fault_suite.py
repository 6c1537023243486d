"""Every fault class of FaultPlan against the sync client and server, in memory and over TCP.

Invariant: a call either returns exactly its own result, once, or raises
ConnectionLost / RPCTimeout; never a wrong or duplicated result; the server runs a
request at most once, keeps serving other clients, and nothing (thread, socket) is
left behind. See ``_fault_harness`` for how each is checked.

Run alone with ``pytest tests/faults``; replay a failure with the ``--jsonrpc-seed``
printed in its report (each scenario uses the run's seed plus its variant number).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from _fault_harness import BLOB, Expect, run_scenario, value_for

from jsonrpc_mini.testing import DirectionFaults as D
from jsonrpc_mini.testing import FaultPlan

pytestmark = pytest.mark.timeout(60)

SEEDS = (0, 1, 2)
MIX_SEEDS = tuple(range(12))
KINDS = ("memory", "tcp")
CALLS = 5
# One request of the workload, to aim byte-count faults inside it.
REQUEST = len(b'{"jsonrpc":"2.0","method":"record","params":[{"token":"s0-0","n":4,"blob":""}],"id":1}\n')

Build = Callable[[random.Random, int], tuple[FaultPlan, Expect, dict[str, Any]]]


def _in_run(rng: random.Random) -> int:
    """A byte position certainly inside the workload's traffic (both directions: ~2*CALLS*REQUEST)."""
    return rng.randint(0, CALLS * REQUEST)


SCENARIOS: dict[str, Build] = {
    # partial reads and writes, large payloads, awkward splits
    "chunk-1": lambda r, s: (FaultPlan(seed=s, max_chunk=1), "ok", {"calls": 3, "payload": 1100}),
    "chunk-7-awkward-large": lambda r, s: (
        FaultPlan(seed=s, max_chunk=7, awkward_splits=True),
        "ok",
        {"calls": 3, "payload": 4000},
    ),
    "chunks-one-direction": lambda r, s: (
        FaultPlan(seed=s, server_to_client=D(max_chunk=2), client_to_server=D(max_chunk=300)),
        "ok",
        {"payload": 1500},
    ),
    # time
    "latency-jitter": lambda r, s: (FaultPlan(seed=s, latency=0.002, jitter=0.003), "ok", {}),
    "bandwidth": lambda r, s: (FaultPlan(seed=s, bandwidth=400_000.0, max_chunk=512), "ok", {"payload": 3000}),
    "slow-connect": lambda r, s: (FaultPlan(seed=s, connect_delay=0.05), "ok", {}),
    "slow-close": lambda r, s: (FaultPlan(seed=s, close_delay=0.05), "ok", {}),
    # the link breaks
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
    # the link stalls: no bytes, no close
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
    # several threads share one faulty client: replies must still reach the right caller
    "threads-chunked": lambda r, s: (
        FaultPlan(seed=s, max_chunk=11, latency=0.0005),
        "ok",
        {"threads": 4, "calls": 4},
    ),
    "threads-disconnect": lambda r, s: (
        FaultPlan(seed=s, max_chunk=23, disconnect_after=_in_run(r) * 2),
        "lost",
        {"threads": 4, "calls": 4},
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


@pytest.mark.parametrize("variant", SEEDS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_fault(name, kind, variant, jsonrpc_seed):
    seed = jsonrpc_seed + variant
    plan, expect, options = SCENARIOS[name](random.Random(f"{seed}/{name}"), seed)
    outcome = run_scenario(kind, plan, expect, **options)
    if expect == "lost":
        assert outcome.results.count("lost") >= 1


@pytest.mark.parametrize("variant", MIX_SEEDS)
@pytest.mark.parametrize("kind", KINDS)
def test_random_mix(kind, variant, jsonrpc_seed):
    """A seeded random mix of every fault, both directions at once."""
    seed = jsonrpc_seed + variant
    rng = random.Random(f"{seed}/mix")
    run_scenario(kind, random_plan(rng, seed), "either", timeout=0.5, payload=rng.choice([0, 2000]))


def test_same_seed_same_failure_point():
    """Replaying a seed reproduces the failure point exactly (which call broke)."""
    for name in ("disconnect-after", "disconnect-in-frame-c2s", "reset-s2c"):
        first = SCENARIOS[name](random.Random(f"5/{name}"), 5)
        again = SCENARIOS[name](random.Random(f"5/{name}"), 5)
        assert first[0] == again[0]
        assert run_scenario("memory", first[0], "lost").results == run_scenario("memory", again[0], "lost").results


def test_blob_is_awkward():
    """The payload really contains what the awkward splits aim at."""
    data = str(value_for("t", 200)).encode()
    assert any(byte >= 0x80 for byte in data)
    assert "\\" in BLOB and "\r\n" in BLOB
