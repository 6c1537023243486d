"""The asyncio kits' fault plans leave the event loop to the other connections.

A ``Direction`` (``_aio_direction``) cut everything written into chunks, and
delivered the chunks that were due, in one event-loop step. With ``max_chunk=1`` a
message of 1.2 MB is 1.2 million chunks: a soak probe saw the loop held 3.4 s, and
clean clients beside the faulty connection (same loop) raise ``RPCTimeout``. Now a
direction runs the loop's other tasks every 256 chunks cut or delivered. A ticker
task counts its turns while a large message crosses in one-byte chunks: it must get
turns before the handler sees the message (loop turns, not time, are counted).
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from _aio_support import run

from jsonrpc_mini import aio
from jsonrpc_mini.testing import AioLoopbackServer, FaultPlan, aio_loopback

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.timeout(60),
]

_SIZE = 100_000  # one-byte chunks: 100,000 to cut and as many to deliver
_PLAN = FaultPlan(seed=5, max_chunk=1)
# The calls' timeout: ~1.7 s alone, but two full suites at once on a slow 2-CPU machine
# took the 1-byte crossing past the kit's 10 s; this test counts loop turns, not time.
_TIMEOUT = 50.0


class _Kit:
    """Either kit, entered the same way: ``client()`` gives an aio client through the plan."""

    def __init__(self, kind: str, server: aio.RPCServer) -> None:
        self.kind, self.server = kind, server
        self._cm: AbstractAsyncContextManager[Any] | None = None

    async def __aenter__(self) -> Any:
        if self.kind == "memory":
            self._cm = aio_loopback(self.server, faults=_PLAN, timeout=_TIMEOUT)
            return await self._cm.__aenter__()
        self._cm = AioLoopbackServer(self.server, _PLAN)
        kit = await self._cm.__aenter__()
        return await kit.client(timeout=_TIMEOUT)

    async def __aexit__(self, *exc: Any) -> None:
        assert self._cm is not None
        await self._cm.__aexit__(*exc)


@pytest.mark.parametrize("kind", ["memory", "proxy"])
def test_one_byte_chunks_leave_the_loop_to_others(kind: str) -> None:
    async def scenario() -> tuple[int, int]:
        server = aio.RPCServer()
        ticks = 0
        seen: list[int] = []

        @server.register
        async def size(text: str) -> int:
            seen.append(ticks)
            return len(text)

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        async with _Kit(kind, server) as client:
            assert await client.size("") == 0  # connected, the first call served
            start = ticks
            counting = asyncio.create_task(ticker())
            try:
                assert await client.size("x" * _SIZE) == _SIZE
            finally:
                counting.cancel()
        await server.shutdown()
        return seen[1] - start, _SIZE

    turns, size = run(scenario)
    # Cutting and delivering each give the loop up once per 256 chunks: about
    # 2 * size / 256 turns (782 here); cutting all at once, about half; unbounded, 5.
    assert turns > size // 256 * 3 // 2, f"the loop ran other tasks {turns} times while {size} chunks crossed"
