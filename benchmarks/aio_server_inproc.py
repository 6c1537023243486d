"""In-process cost per call of the asyncio server's ordinary path (a tool for changes).

``python benchmarks/aio_server_inproc.py [ROUNDS] [CALLS] [KIND...]``: 16 connections
of one ``aio.RPCServer`` (``async`` handler, plain one ``inline``) or of the raw
asyncio streams server of ``aio_bench`` (``raw``), each on a fake transport whose
peer sends its next ``add`` request line ``HOPS`` loop iterations (default 3) after
the reply to the last one, so about four connections are read per iteration, as in
the real 16-client scenario. No sockets: what is measured is the Python work per call
(the peer's part is the same for every kind). Prints CPU per call per kind, the
kinds alternated round by round.

On this shared machine wall and CPU times wander by more than small changes save;
instruction counts do not. Under ``valgrind --tool=callgrind``, run it twice with
different CALLS (one round, one kind) and divide the difference of the "Collected"
totals by 16 x the difference of CALLS: instructions per call, repeatable to a few
dozen (set ``PYTHONHASHSEED=0``). Session 9: aio server 92.0k before 2bc6446, 87.1k after; raw 76.8k.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from typing import Any

if __package__ in (None, ""):  # (appended: a tree on PYTHONPATH comes first, for A/B runs)
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import aio_bench
from jsonrpc_mini import aio

CONNECTIONS = 16
HOPS = int(os.environ.get("HOPS", "3"))


class PeerTransport(asyncio.Transport):
    """A transport whose peer sends the next request line a few iterations after each reply."""

    def __init__(self, protocol: Any, calls: int, buffered: bool) -> None:
        super().__init__()
        self.loop = asyncio.get_running_loop()
        self.protocol, self.left, self.sent, self.buffered = protocol, calls, 0, buffered
        self.closing = False
        self.done: asyncio.Future[None] = self.loop.create_future()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.left -= 1  # one reply per request
        if self.left <= 0:
            if not self.done.done():
                self.done.set_result(None)
        else:
            self.loop.call_soon(self.hop, HOPS)

    def hop(self, more: int) -> None:
        if more:
            self.loop.call_soon(self.hop, more - 1)
            return
        self.sent += 1
        line = b'{"jsonrpc":"2.0","method":"add","params":[%d,1],"id":%d}\n' % (self.sent, self.sent)
        if self.buffered:  # as asyncio's socket transports feed a BufferedProtocol
            buffer = self.protocol.get_buffer(-1)
            buffer[: len(line)] = line
            self.protocol.buffer_updated(len(line))
        else:
            self.protocol.data_received(line)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


def make_server(kind: str) -> aio.RPCServer:
    srv = aio.RPCServer(run_sync_in_thread=False)
    if kind == "inline":
        srv.register_function(lambda a, b: a + b, name="add")
    else:

        async def add(a: int, b: int) -> int:
            return a + b

        srv.register_function(add)
    return srv


async def run_calls(kind: str, srv: aio.RPCServer | None, calls: int) -> float:
    """CPU seconds per call of CONNECTIONS connections making ``calls`` calls each."""
    handlers: list[asyncio.Task[None]] = []
    transports = []
    for _ in range(CONNECTIONS):
        if srv is None:
            reader = asyncio.StreamReader()
            protocol: Any = asyncio.StreamReaderProtocol(
                reader, lambda r, w: handlers.append(asyncio.ensure_future(aio_bench._raw_handle(r, w)))
            )
        else:
            srv._listener = srv._listener or object()  # as if listening: the runner waits for calls
            protocol = srv.protocol()
        transport = PeerTransport(protocol, calls, buffered=srv is not None)
        protocol.connection_made(transport)
        transports.append(transport)
    await asyncio.sleep(0)
    start = time.process_time()
    for number, transport in enumerate(transports):  # in HOPS + 1 phases
        transport.hop(number % (HOPS + 1))
    await asyncio.gather(*(transport.done for transport in transports))
    cpu = time.process_time() - start
    for transport in transports:
        transport.protocol.connection_lost(None)
    if srv is not None:
        srv._listener = None
        if srv._runner is not None:
            srv._runner.release()
    for task in handlers:
        task.cancel()
    await asyncio.gather(*handlers, return_exceptions=True)
    return cpu / (CONNECTIONS * calls)


async def main(rounds: int, calls: int, kinds: list[str]) -> None:
    servers = {kind: None if kind == "raw" else make_server(kind) for kind in kinds}
    for kind in kinds:  # warm up
        await run_calls(kind, servers[kind], 100)
    cpu: dict[str, list[float]] = {kind: [] for kind in kinds}
    for number in range(rounds):
        for kind in kinds if number % 2 == 0 else kinds[::-1]:
            cpu[kind].append(await run_calls(kind, servers[kind], calls))
    for kind, values in cpu.items():
        print(
            f"{kind:8} CPU per call: median {statistics.median(values) * 1e6:.3f} us"
            f" [{min(values) * 1e6:.3f}..{max(values) * 1e6:.3f}]"
        )


if __name__ == "__main__":
    aio_bench.settle_allocator()
    args = sys.argv[1:]
    asyncio.run(
        main(int(args[0]) if args else 10, int(args[1]) if len(args) > 1 else 2000, args[2:] or ["raw", "async"])
    )
