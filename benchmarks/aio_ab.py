"""Interleaved A/B of source trees on ``aio_bench``'s 16-clients scenario (a tool for changes).

``python benchmarks/aio_ab.py ROUNDS CALLS TREE...``: each TREE is a directory
holding ``jsonrpc_mini/`` and ``benchmarks/`` (copy the tree before a change to
``/tmp/before``, say). Per tree: an aio server process from that tree and a
client process importing that tree (``PYTHONPATH``); one raw asyncio server for
all. Each round runs, in a new seeded order, the raw client and the aio client of
every tree (``aio_bench.concurrent_round``, CALLS sequential calls per client), so
noise on this shared machine hits all alike. A tree's ratio is its aio client ->
aio server rate over the raw client -> raw server rate measured by the same
client process in the same round; the last tree is compared with the first per
round. Printed: per-round ratios, medians with quartiles, and each client
process's CPU per call (steadier than rates on a busy machine). ``SEED`` in the
environment changes the order.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys

if __package__ in (None, ""):  # run as a script: make the checkout's benchmarks importable (appended)
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._child import stop_child

WORKER = r"""
import asyncio, sys, time
from benchmarks import aio_bench
aio_bench.settle_allocator()
loop = asyncio.new_event_loop()
for line in sys.stdin:
    kind, port, calls = line.split()
    start = time.process_time()
    rate = loop.run_until_complete(aio_bench.concurrent_round(kind, int(port), int(calls)))
    print(rate, time.process_time() - start, flush=True)
"""


def _spawn(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)


def _server(tree: str, kind: str) -> tuple[subprocess.Popen[str], int]:
    proc = _spawn([sys.executable, os.path.join(tree, "benchmarks", "aio_bench.py"), "--serve", kind])
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        raise RuntimeError(f"{kind} server of {tree} did not start: {line!r}")
    return proc, int(line.split()[1])


def _quartiles(values: list[float]) -> str:
    low, mid, high = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
    return f"median {mid:.3f} IQR [{low:.3f}..{high:.3f}] range [{min(values):.3f}..{max(values):.3f}]"


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__)
        return 2
    rounds, calls, trees = int(argv[0]), int(argv[1]), [os.path.abspath(tree) for tree in argv[2:]]
    procs: list[subprocess.Popen[str]] = []
    try:
        raw, raw_port = _server(trees[0], "raw")
        procs.append(raw)
        ports, clients = {}, {}
        for tree in trees:
            server, ports[tree] = _server(tree, "aio")
            clients[tree] = _spawn([sys.executable, "-c", WORKER], env=dict(os.environ, PYTHONPATH=tree))
            procs += [server, clients[tree]]

        def run(tree: str, kind: str) -> tuple[float, float]:
            client = clients[tree]
            assert client.stdin is not None and client.stdout is not None
            client.stdin.write(f"{kind} {raw_port if kind == 'raw' else ports[tree]} {calls}\n")
            client.stdin.flush()
            rate, cpu = client.stdout.readline().split()
            return float(rate), float(cpu) / (16 * calls) * 1e6

        for tree in trees:  # warm up every process once
            run(tree, "raw")
            run(tree, "aio")
        rates: dict[tuple[str, str], list[float]] = {(t, k): [] for t in trees for k in ("raw", "aio")}
        cpus: dict[tuple[str, str], list[float]] = {key: [] for key in rates}
        shuffler = random.Random(int(os.environ.get("SEED", "1")))
        first, last = trees[0], trees[-1]
        for number in range(rounds):
            jobs = list(rates)
            shuffler.shuffle(jobs)
            for job in jobs:
                rate, cpu = run(*job)
                rates[job].append(rate)
                cpus[job].append(cpu)
            ratios = [rates[t, "aio"][-1] / rates[t, "raw"][-1] for t in trees]
            line = "  ".join(f"{os.path.basename(t)} {r:.3f}" for t, r in zip(trees, ratios, strict=True))
            print(f"round {number}: {line}  last/first {ratios[-1] / ratios[0]:.3f}", flush=True)
        for tree in trees:
            ratios = [a / r for a, r in zip(rates[tree, "aio"], rates[tree, "raw"], strict=True)]
            print(
                f"{tree}: aio/raw {_quartiles(ratios)}; client CPU per call: raw"
                f" {statistics.median(cpus[tree, 'raw']):.2f} us, aio {statistics.median(cpus[tree, 'aio']):.2f} us"
            )
        if len(trees) > 1:
            per_round = [
                (rates[last, "aio"][i] / rates[last, "raw"][i]) / (rates[first, "aio"][i] / rates[first, "raw"][i])
                for i in range(rounds)
            ]
            print(f"last / first, ratio vs raw per round: {_quartiles(per_round)}")
    finally:
        for proc in procs:
            stop_child(proc, 10)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
