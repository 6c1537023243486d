"""asyncio benchmarks: ``jsonrpc_mini.aio`` against a raw asyncio newline-JSON server.

Run ``python benchmarks/aio_bench.py [--quick]``. Three scenarios (issue 7):

1. 16 concurrent clients on one event loop, each making sequential calls of
   ``add(i, 1)``.
2. 1,000 calls pipelined on one connection.
3. 10,000 idle connections held by the aio server (and, for scale, by the raw
   server): the server process's resident memory before and after.

The raw server is ``asyncio.start_server`` with ``readline``, JSON decode, add,
JSON encode, ``write``. For 1 and 2 two ratios are printed:

- *server*: the same raw client drives aio.RPCServer and the raw server, so the
  ratio is the aio server's throughput over the raw server's (the issue's metric);
- *end to end*: aio.RPCClient -> aio.RPCServer over raw client -> raw server. The
  raw pipelining client writes 1,000 lines and reads 1,000 lines with no per-call
  object at all; aio.RPCClient pays for ids, futures and reply matching.

Servers run in a separate process (this file with ``--serve KIND``); the clients
run here. Both sides use the same JSON codec (orjson when installed, else json).
Rounds run the contenders in a new (seeded) order each, so machine noise and the
client process's state hit all alike; a ratio is the median of per-round ratios.
Server CPU per call (the server's own process_time, per scenario) is printed as
well: it is steadier than wall time on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

if __package__ in (None, ""):  # run as a script: make the checkout's benchmarks importable (appended)
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._child import stop_child

try:
    import orjson

    def dumps(value: Any) -> bytes:
        return orjson.dumps(value)

    loads = orjson.loads
    CODEC = "orjson"
except ImportError:  # pragma: no cover - orjson is the fast extra
    import json

    def dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()

    loads = json.loads
    CODEC = "json"

CLIENTS = 16
PIPELINE = 1_000
IDLE = 10_000


def settle_allocator() -> None:
    """Put this process's allocator in the state a long-running process soon reaches.

    glibc serves blocks over its mmap threshold (128 KiB at start) with mmap and
    raises the threshold when such a block is freed. asyncio's streams allocate
    256 KiB per read: until some larger block has been freed, every read costs an
    mmap, an mremap and a munmap; afterwards none. So the raw side's speed depended
    on its allocation history (the raw server's "fast state", and a raw client got
    twice as fast in the concurrent scenario once an aio round had freed a large
    decode buffer in the same process). Freeing a 4 MiB block at start puts every
    process of the benchmark in the fast state from the beginning.
    """
    block = bytearray(4 * 2**20)
    del block


# -- servers (run in a child process) ---------------------------------------------


async def _raw_handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while line := await reader.readline():
            req = loads(line)
            params = req["params"]
            writer.write(dumps({"jsonrpc": "2.0", "id": req["id"], "result": params[0] + params[1]}) + b"\n")
    except (ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def _serve(kind: str) -> None:
    settle_allocator()
    if kind == "raw":
        server = await asyncio.start_server(_raw_handle, "127.0.0.1", 0, backlog=4096)
        port = server.sockets[0].getsockname()[1]
    else:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        from jsonrpc_mini import aio

        srv = aio.RPCServer(max_connections=IDLE + 100, backlog=4096, run_sync_in_thread=kind != "aio-inline")

        if kind == "aio-thread":

            def add(a: int, b: int) -> int:
                return a + b

            srv.register_function(add)
        elif kind == "aio-inline":
            srv.register_function(lambda a, b: a + b, name="add")
        else:

            @srv.register
            async def add(a: int, b: int) -> int:
                return a + b

        _, port = await srv.start("127.0.0.1", 0)  # type: ignore[misc]
    print(f"PORT {port}", flush=True)
    loop = asyncio.get_running_loop()
    # Serve until the parent closes stdin; a "cpu" line asks for the CPU time used so far
    # (process_time is exact; /proc's tick-sampled counters are too coarse for short rounds).
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        if line.strip() == "cpu":
            print(f"CPU {time.process_time()!r}", flush=True)


class Server:
    """A benchmark server in a child process; ``.port``, ``.rss()``, ``.stop()``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve", kind],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"{kind} server did not start: {line!r}")
        self.port = int(line.split()[1])

    def rss(self) -> int:
        """Resident memory of the server process, in bytes."""
        with open(f"/proc/{self.proc.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")  # pragma: no cover

    def cpu(self) -> float:
        """CPU seconds (user + system) the server process has used so far."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("cpu\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer.startswith("CPU "):
            raise RuntimeError(f"{self.kind} server did not report its CPU time: {answer!r}")
        return float(answer.split()[1])

    def stop(self) -> None:
        """Stop the child process (bounded)."""
        stop_child(self.proc, 10)


# -- clients -----------------------------------------------------------------------


class RawClient:
    """The raw asyncio client: streams, one line per call, ids counted by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.next_id = reader, writer, 0

    @classmethod
    async def open(cls, port: int) -> RawClient:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def add(self, a: int, b: int) -> Any:
        self.next_id += 1
        self.writer.write(dumps({"jsonrpc": "2.0", "method": "add", "params": [a, b], "id": self.next_id}) + b"\n")
        return loads(await self.reader.readline())["result"]

    async def pipeline(self, n: int) -> list[Any]:
        lines = []
        for i in range(n):
            self.next_id += 1
            lines.append(dumps({"jsonrpc": "2.0", "method": "add", "params": [i, 1], "id": self.next_id}) + b"\n")
        self.writer.write(b"".join(lines))
        return [loads(await self.reader.readline())["result"] for _ in range(n)]

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def _open(kind: str, port: int) -> Any:
    if kind == "raw":
        return await RawClient.open(port)
    from jsonrpc_mini import aio

    return await aio.connect("127.0.0.1", port, timeout=60.0)


async def _pipeline(client: Any, n: int) -> list[Any]:
    if isinstance(client, RawClient):
        return await client.pipeline(n)
    return list(await asyncio.gather(*(client.add(i, 1) for i in range(n))))


async def concurrent_round(kind: str, port: int, calls: int) -> float:
    """calls/s of CLIENTS clients on one loop, each making ``calls`` sequential calls."""
    clients = [await _open(kind, port) for _ in range(CLIENTS)]

    async def work(client: Any) -> None:
        for i in range(calls):
            if await client.add(i, 1) != i + 1:
                raise AssertionError("wrong result")

    try:
        start = time.perf_counter()
        await asyncio.gather(*(work(c) for c in clients))
        elapsed = time.perf_counter() - start
    finally:
        for client in clients:
            await client.close()
    return CLIENTS * calls / elapsed


async def pipeline_round(kind: str, port: int, repeats: int) -> float:
    """calls/s of PIPELINE calls in flight at once on one connection (best of ``repeats``)."""
    client = await _open(kind, port)
    try:
        best = 0.0
        for _ in range(repeats):
            start = time.perf_counter()
            results = await _pipeline(client, PIPELINE)
            best = max(best, PIPELINE / (time.perf_counter() - start))
            if results != [i + 1 for i in range(PIPELINE)]:
                raise AssertionError("wrong results")
    finally:
        await client.close()
    return best


def idle_memory(kind: str, count: int) -> tuple[int, int]:
    """(bytes per idle connection, connections held) for a fresh server of ``kind``."""
    server = Server(kind)
    socks: list[socket.socket] = []
    try:
        # Let the interpreter settle, then measure the baseline.
        time.sleep(0.3)
        before = server.rss()
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            socks.append(sock)
        # An accepted, idle connection: make sure the server has accepted them all
        # by waiting until one more call on a fresh connection is answered.
        probe = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        probe.sendall(b'{"jsonrpc":"2.0","method":"add","params":[1,2],"id":1}\n')
        probe.settimeout(60)
        reply = probe.recv(4096)
        probe.close()
        if b'"result":3' not in reply:
            raise AssertionError(f"probe failed: {reply!r}")
        deadline = time.monotonic() + 30
        after = server.rss()
        while time.monotonic() < deadline:  # accepting can lag the probe; settle the RSS
            time.sleep(0.2)
            now = server.rss()
            if now == after:
                break
            after = now
        return (after - before) // count, count
    finally:
        for sock in socks:
            sock.close()
        server.stop()


# (label, client kind, server kind); the first is the baseline of the ones after it.
PAIRS = [
    ("raw client -> raw server", "raw", "raw"),
    ("raw client -> aio server", "raw", "aio"),
    ("aio client -> aio server", "aio", "aio"),
]
EXTRA = [
    ("raw client -> aio, plain handler in thread pool", "raw", "aio-thread"),
    ("raw client -> aio, plain handler inline", "raw", "aio-inline"),
]


async def run_throughput(quick: bool, extra: bool) -> list[str]:
    pairs = PAIRS + (EXTRA if extra else [])
    servers = {kind: Server(kind) for kind in dict.fromkeys(server for _, _, server in pairs)}
    rounds = 3 if quick else 7
    calls = 150 if quick else 1500
    repeats = 3 if quick else 10
    conc: dict[str, list[float]] = {label: [] for label, _, _ in pairs}
    pipe: dict[str, list[float]] = {label: [] for label, _, _ in pairs}
    # server kind -> scenario -> [CPU seconds, calls served], with the raw client only
    # (the same client for every server, so the CPU is comparable)
    cpu = {kind: {"concurrent": [0.0, 0], "pipelined": [0.0, 0]} for kind in servers}
    # Each round runs the pairs in a new order (seeded): in a fixed order, the pair
    # after the raw client paid 3-4 us more CPU per call (the process's state).
    shuffler = random.Random(8)
    try:
        for _ in range(rounds):
            order = list(pairs)
            shuffler.shuffle(order)
            for label, client, kind in order:
                server = servers[kind]
                before = server.cpu()
                conc[label].append(await concurrent_round(client, server.port, calls))
                middle = server.cpu()
                pipe[label].append(await pipeline_round(client, server.port, repeats))
                if client == "raw":
                    for scenario, seconds, count in (
                        ("concurrent", middle - before, CLIENTS * calls),
                        ("pipelined", server.cpu() - middle, PIPELINE * repeats),
                    ):
                        cpu[kind][scenario][0] += seconds
                        cpu[kind][scenario][1] += count
    finally:
        for server in servers.values():
            server.stop()
    base = pairs[0][0]
    lines = []
    for title, data in ((f"{CLIENTS} concurrent clients, one loop", conc), (f"{PIPELINE} calls pipelined", pipe)):
        lines.append(f"{title}:")
        for label, _, _ in pairs:
            rate = statistics.median(data[label])
            ratio = statistics.median(a / r for a, r in zip(data[label], data[base], strict=True))
            lines.append(f"  {label:<48} {rate:>9.0f} calls/s  {ratio:.2f}x")
    lines.append("server CPU per call, same raw client:    concurrent   pipelined")
    for kind, by_scenario in cpu.items():
        per_call = [seconds / count * 1e6 if count else 0.0 for seconds, count in by_scenario.values()]
        lines.append(f"  {kind:<38} {per_call[0]:>7.1f} us  {per_call[1]:>7.1f} us")
    return lines


def report(quick: bool = False, extra: bool = False, idle: int = IDLE) -> list[str]:
    """Run every scenario and return the report lines (``python -m benchmarks`` can call this)."""
    settle_allocator()
    lines = [f"jsonrpc_mini.aio vs raw asyncio ({CODEC}, Python {sys.version.split()[0]})"]
    lines += asyncio.run(run_throughput(quick, extra))
    if idle <= 0:  # --idle 0: throughput only
        return lines
    lines.append(f"{idle} idle connections (server RSS growth):")
    limit = 100 * 2**20
    for kind in ("aio", "raw"):
        per_conn, count = idle_memory(kind, idle)
        total = per_conn * count
        verdict = "" if kind != "aio" else ("  (< 100 MiB: ok)" if total < limit else "  (OVER 100 MiB)")
        lines.append(f"  {kind:<11} {total / 2**20:>7.1f} MiB   {per_conn / 1024:.1f} KiB per connection{verdict}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (about 20 s)")
    parser.add_argument("--extra", action="store_true", help="also plain handlers: thread pool and inline")
    parser.add_argument("--idle", type=int, default=IDLE, help="idle connections to hold")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        # ``python -m benchmarks --apart``: this server's CPU (see benchmarks/_servers.py).
        if (cpu := os.environ.get("JSONRPC_MINI_BENCH_SERVER_CPU")) is not None:
            os.sched_setaffinity(0, {int(cpu)})
        asyncio.run(_serve(args.serve))
        return 0
    for line in report(args.quick, args.extra, args.idle):
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
