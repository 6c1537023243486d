"""``python -m benchmarks [--quick]``: ratio benchmarks, every contender in one run.

Servers run in separate processes; the clients run here, one scenario at a time, in
interleaved rounds (every contender once per round, in a shuffled order), so machine
noise hits all contenders alike. Ratios are medians of per-round ratios against the
raw baseline with the same JSON codec.

Each contender has ``--pairs`` server processes, each with its own client, and round
``r`` uses pair ``r % pairs`` of every contender. Two identical pairs can differ in
speed by 6 % (sequential calls) to a third (8 threads) for as long as they live (where
the scheduler puts them, how their memory lies), so with a single pair per contender
one run's ratios carried that bias whole; over several pairs it averages out.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import random
import statistics
import subprocess
import sys
from typing import Any

from benchmarks import _codecs, _reader
from benchmarks._child import stop_child
from benchmarks._clients import CLIENTS, pyro5_serializer
from benchmarks._scenarios import SCENARIOS
from benchmarks._servers import SERVER_CPU_ENV

PEERS = ["xmlrpc", "pyro5", "jsonrpclib", "rpyc"]


def installed(kind: str) -> bool:
    module = {"xmlrpc": "xmlrpc", "pyro5": "Pyro5", "jsonrpclib": "jsonrpclib", "rpyc": "rpyc"}.get(kind)
    if module is None:
        return True
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def label(kind: str, codec: str) -> str:
    if kind in ("raw", "jsonrpc_mini"):
        return f"{kind} [{codec}]"
    if kind == "pyro5":
        return f"pyro5 [{pyro5_serializer()}]"
    return kind


class Contender:
    """A server process of one kind and the client connected to it."""

    def __init__(self, kind: str, codec: str) -> None:
        self.kind = kind
        self.codec = codec
        self.label = label(kind, codec)
        self.baseline = f"raw [{codec}]"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._servers", kind, codec],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if len(line) != 2:
            self.stop()
            raise RuntimeError(f"{kind} server did not start")
        self.client = CLIENTS[kind](line[0], int(line[1]), codec)
        self.skip: dict[str, str] = {}

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            if hasattr(self, "client"):
                self.client.close()
        stop_child(self.proc, 5)


def fmt_time(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def spread(values: list[float]) -> str:
    """Interquartile range as a percentage of the median."""
    if len(values) < 4:
        return "  n/a"
    q = statistics.quantiles(values, n=4)
    return f"{(q[2] - q[0]) / statistics.median(values) * 100:4.0f}%"


def paired_ratio(base: list[float], other: list[float]) -> float:
    """Median over rounds of base/other: >1 means faster than the baseline."""
    return statistics.median(b / o for b, o in zip(base, other, strict=True))


def run_network(args: argparse.Namespace, codecs: list[str]) -> dict[str, dict[str, list[float]]]:
    kinds = [(kind, codec) for codec in codecs for kind in ("raw", "jsonrpc_mini")]
    kinds += [(peer, codecs[0]) for peer in args.peers if installed(peer)]
    pairs: list[list[Contender]] = []  # per contender, its server processes with their clients
    results: dict[str, dict[str, list[float]]] = {s.key: {} for s in SCENARIOS}
    scenarios = [s for s in SCENARIOS if s.key in args.scenarios]
    try:
        for kind, codec in kinds:
            pairs.append([])
            for _ in range(args.pairs):
                pairs[-1].append(Contender(kind, codec))
        for scenario in scenarios:
            for group in pairs:
                for c in group:
                    try:
                        scenario.check(c.client)
                    except Exception as exc:  # a peer that cannot do this scenario
                        group[0].skip[scenario.key] = f"{type(exc).__name__}: {exc}"[:70]
        rng = random.Random(args.seed)
        for round_ in range(args.rounds + 1):  # round 0 warms up and is not counted
            for scenario in scenarios:
                n = scenario.per_sample_quick if args.quick else scenario.per_sample
                # The warm-up round runs every pair; a counted round one of each contender.
                order = [
                    c
                    for group in pairs
                    if scenario.key not in group[0].skip
                    for c in (group if not round_ else [group[round_ % args.pairs]])
                ]
                rng.shuffle(order)
                for c in order:
                    elapsed = scenario.run(c.client, n)
                    if round_:
                        results[scenario.key].setdefault(c.label, []).append(elapsed)
            print(f"  round {round_}/{args.rounds} done", file=sys.stderr, flush=True)
    finally:
        for group in pairs:
            for c in group:
                c.stop()
    print_network(scenarios, [group[0] for group in pairs], results)
    return results


def print_network(
    scenarios: list[Any], contenders: list[Contender], results: dict[str, dict[str, list[float]]]
) -> None:
    for scenario in scenarios:
        print(f"\n## {scenario.title} (time per {scenario.unit})\n")
        print(f"| {'contender':<22} | {'median':>10} | {'IQR':>5} | {'vs raw':>7} |")
        print(f"|{'-' * 24}|{'-' * 12}|{'-' * 7}|{'-' * 9}|")
        times = results[scenario.key]
        for c in contenders:
            if c.label not in times:
                print(f"| {c.label:<22} | {'n/a':>10} | {'':>5} | {'':>7} |  {c.skip.get(scenario.key, '')}")
                continue
            ratio = paired_ratio(times[c.baseline], times[c.label])
            print(
                f"| {c.label:<22} | {fmt_time(statistics.median(times[c.label])):>10} | "
                f"{spread(times[c.label]):>5} | {ratio:6.2f}x |"
            )


def run_reader(args: argparse.Namespace, codecs: list[str]) -> dict[tuple[str, str, int], list[float]]:
    frames = _reader.frames()
    cases = [(codec, name, chunk) for codec in codecs for name in frames for chunk in _reader.CHUNKS]
    results: dict[tuple[str, str, int], list[float]] = {case: [] for case in cases}
    rng = random.Random(args.seed)
    rounds = max(5, args.rounds)
    for round_ in range(rounds + 1):
        order = list(cases)
        rng.shuffle(order)
        for codec, name, chunk in order:
            if chunk == 1 and round_ > 2:
                continue  # a 1-byte feed of 1 MiB is slow and steady: three samples do
            per_byte = _reader.feed_once(frames[name], chunk, codec)
            if round_:
                results[(codec, name, chunk)].append(per_byte)
    print("\n## reader: JsonStreamFramer fed a 1 MiB frame (time per byte; ratio = chunked / one buffer)\n")
    print(f"| {'frame':<16} | {'chunks':>8} | {'ns/byte':>8} | {'IQR':>5} | {'cost vs one buffer':>18} |")
    print(f"|{'-' * 18}|{'-' * 10}|{'-' * 10}|{'-' * 7}|{'-' * 20}|")
    for codec, name, chunk in cases:
        times = results[(codec, name, chunk)]
        whole = results[(codec, name, 0)][: len(times)]
        ratio = statistics.median(t / w for t, w in zip(times, whole, strict=True))
        label = "one buffer" if chunk == 0 else f"{chunk:,} B"
        print(
            f"| {name + ' [' + codec + ']':<16} | {label:>8} | {statistics.median(times) * 1e9:8.2f} | "
            f"{spread(times):>5} | {ratio:17.2f}x |"
        )
    return results


def run_aio(args: argparse.Namespace) -> float | None:
    """The asyncio driver's own benchmark (benchmarks/aio_bench.py, owned by the aio work)."""
    print("\n## asyncio driver: benchmarks/aio_bench.py (16 clients on one loop vs raw asyncio)\n")
    try:
        from benchmarks import aio_bench
    except ImportError as exc:
        print(f"benchmarks/aio_bench.py is not usable: {exc}")
        return None
    # Its idle-connections memory check is its own target; a quick run holds fewer.
    idle = 1000 if args.quick else aio_bench.IDLE
    try:
        lines = aio_bench.report(quick=args.quick, idle=idle)
    except Exception as exc:  # the aio driver is another's work in progress: report, go on
        print(f"benchmarks/aio_bench.py failed: {type(exc).__name__}: {exc}")
        return None
    print("```")
    print("\n".join(lines))
    print("```")
    # The ratio of "aio client -> aio server" in its 16-clients section.
    section = False
    for line in lines:
        if not line.startswith(" "):
            section = line.startswith(f"{16} concurrent clients")
        elif section and "aio client -> aio server" in line and line.rstrip().endswith("x"):
            return float(line.split()[-1].rstrip("x"))
    return None


def check(name: str, value: float | None, ok: bool | None) -> None:
    verdict = "n/a " if ok is None else ("PASS" if ok else "FAIL")
    shown = "" if value is None else f"{value:.2f}x"
    print(f"| {verdict} | {name:<58} | {shown:>7} |")


def print_targets(
    codecs: list[str],
    network: dict[str, dict[str, list[float]]] | None,
    reader: dict[tuple[str, str, int], list[float]] | None,
    aio: float | None,
) -> None:
    print("\n## targets (issue 8; ratios from this run)\n")
    print(f"| {'':4} | {'target':<58} | {'ratio':>7} |")
    print(f"|{'-' * 6}|{'-' * 60}|{'-' * 9}|")
    if network:
        for key, times in network.items():
            for codec in codecs:
                mini, raw = times.get(f"jsonrpc_mini [{codec}]"), times.get(f"raw [{codec}]")
                if mini and raw:
                    r = paired_ratio(raw, mini)
                    check(f"{key}: jsonrpc_mini [{codec}] >= 0.85x raw [{codec}]", r, r >= 0.85)
        for key in ("seq", "threads"):
            times = network.get(key, {})
            for peer in ("xmlrpc", label("pyro5", "")):
                for codec in codecs:
                    mini = times.get(f"jsonrpc_mini [{codec}]")
                    if mini and peer in times:
                        r = paired_ratio(times[peer], mini)
                        check(f"{key}: jsonrpc_mini [{codec}] ahead of {peer}", r, r > 1.0)
        times = network.get("echo_mib", {})
        pyro = label("pyro5", "")
        if "jsonrpc_mini [orjson]" in times and pyro in times:
            r = paired_ratio(times[pyro], times["jsonrpc_mini [orjson]"])
            check(f"echo_mib: jsonrpc_mini [orjson] >= 1.0x {pyro}", r, r >= 1.0)
    if aio is not None:
        check("aio: 16 concurrent clients, aio client+server >= 0.85x raw asyncio", aio, aio >= 0.85)
    if reader:
        for (codec, name, chunk), times in reader.items():
            if chunk in (1024, 65536):
                whole = reader[(codec, name, 0)][: len(times)]
                r = statistics.median(t / w for t, w in zip(times, whole, strict=True))
                check(f"reader {name} [{codec}], {chunk:,} B chunks: per-byte cost <= 2x one buffer", r, r <= 2.0)


def pin(parser: argparse.ArgumentParser, cpu: int) -> None:
    """Keep this process, and so every process it starts later, on one CPU.

    Where client and server sit on two CPUs, each round trip also pays two cross-CPU
    wake-ups, whose cost depends on where the scheduler puts them and how deeply the
    other CPU sleeps: the same raw sequential call measured 16 us or 60-74 us on this
    machine. On one CPU a round trip costs the work of both sides, which is what a
    library adds to; ratios then vary far less between runs.
    """
    if not hasattr(os, "sched_setaffinity"):
        parser.error("--cpu needs os.sched_setaffinity (Linux)")
    if cpu not in os.sched_getaffinity(0):
        parser.error(f"--cpu {cpu}: not one of this process's CPUs {sorted(os.sched_getaffinity(0))}")
    os.sched_setaffinity(0, {cpu})  # threads and child processes started later inherit it


def apart(parser: argparse.ArgumentParser) -> tuple[int, int]:
    """Keep this process (the clients) on one CPU and every server it starts on another.

    Client and server then always pay the two cross-CPU wake-ups of a round trip,
    as two machines would: the placement that two unpinned runs only sometimes get
    (see :func:`pin`). Returns (client CPU, server CPU).
    """
    if not hasattr(os, "sched_setaffinity"):
        parser.error("--apart needs os.sched_setaffinity (Linux)")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        parser.error(f"--apart needs two CPUs; this process may use only {cpus}")
    os.sched_setaffinity(0, {cpus[0]})
    os.environ[SERVER_CPU_ENV] = str(cpus[1])  # each server moves there as it starts (_servers.main)
    return cpus[0], cpus[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and smaller samples (about a minute)")
    parser.add_argument("--rounds", type=int, help="counted rounds (default 15, quick 5)")
    parser.add_argument("--codec", choices=["stdlib", "orjson", "both"], default="both")
    parser.add_argument("--peers", nargs="*", default=PEERS, help=f"peer libraries (default: {' '.join(PEERS)})")
    parser.add_argument(
        "--scenarios",
        nargs="*",
        default=[s.key for s in SCENARIOS] + ["reader", "aio"],
        help="which to run (default: all): %(default)s",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--pairs", type=int, default=3, help="server processes (with a client each) per contender, used in turn"
    )
    placement = parser.add_mutually_exclusive_group()
    placement.add_argument(
        "--cpu",
        type=int,
        help="run this process and every server it starts on this one CPU (Linux): each round "
        "trip then costs the CPU time of both sides, without cross-CPU wake-ups",
    )
    placement.add_argument(
        "--apart",
        action="store_true",
        help="run this process (the clients) on one CPU and every server on another (Linux): "
        "each round trip then pays two cross-CPU wake-ups, as between two machines",
    )
    args = parser.parse_args(argv)
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    where = ""
    if args.cpu is not None:
        pin(parser, args.cpu)
        where = f", everything on CPU {args.cpu}"
    elif args.apart:
        client_cpu, server_cpu = apart(parser)
        where = f", clients on CPU {client_cpu}, servers on CPU {server_cpu}"
    if args.rounds is None:
        args.rounds = 5 if args.quick else 15
    codecs = _codecs.available() if args.codec == "both" else [args.codec]
    print(f"# python -m benchmarks {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, "
        f"{platform.machine()}, codecs {', '.join(codecs)}, {args.rounds} rounds, {args.pairs} pairs" + where
    )
    network = reader = aio = None
    if any(s.key in args.scenarios for s in SCENARIOS):
        network = run_network(args, codecs)
    if "reader" in args.scenarios:
        reader = run_reader(args, codecs)
    if "aio" in args.scenarios:
        aio = run_aio(args)
    print_targets(codecs, network, reader, aio)


if __name__ == "__main__":
    main()
