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

import pytest
from _fault_harness import BLOB, SHARED_SCENARIOS, Build, in_run, random_plan, run_scenario, value_for

from jsonrpc_mini.testing import DirectionFaults as D
from jsonrpc_mini.testing import FaultPlan

pytestmark = pytest.mark.timeout(60)

SEEDS = (0, 1, 2)
MIX_SEEDS = tuple(range(12))
KINDS = ("memory", "tcp")

SCENARIOS: dict[str, Build] = {
    **SHARED_SCENARIOS,
    # partial reads and writes, large payloads, awkward splits
    "chunks-one-direction": lambda r, s: (
        FaultPlan(seed=s, server_to_client=D(max_chunk=2), client_to_server=D(max_chunk=300)),
        "ok",
        {"payload": 1500},
    ),
    # time
    "slow-connect": lambda r, s: (FaultPlan(seed=s, connect_delay=0.05), "ok", {}),
    "slow-close": lambda r, s: (FaultPlan(seed=s, close_delay=0.05), "ok", {}),
    # the link breaks
    # the link stalls: no bytes, no close
    # several threads share one faulty client: replies must still reach the right caller
    "threads-chunked": lambda r, s: (
        FaultPlan(seed=s, max_chunk=11, latency=0.0005),
        "ok",
        {"threads": 4, "calls": 4},
    ),
    "threads-disconnect": lambda r, s: (
        FaultPlan(seed=s, max_chunk=23, disconnect_after=in_run(r) * 2),
        "lost",
        {"threads": 4, "calls": 4},
    ),
}


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
