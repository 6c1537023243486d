"""MemoryTransport: a write fails on the peer's close only once that close has reached this end.

8162760 made the second write to an end whose peer closed fail (``connection_lost``
with ``BrokenPipeError``), as over TCP once the writer has read the EOF. It looked
at the peer's own flag, set as the peer called ``close()``: with the plan's
``close_delay`` the writer's connection was lost at its second write, before the
close had reached it (no EOF yet), where README says a close reaches the other end
``close_delay`` after it was made (probe: close_delay 0.5 s, ``connection_lost`` at
0.02 s and no EOF ever). The delay is an hour here: no test outlasts it.
"""

from __future__ import annotations

import asyncio

import pytest
from _aio_support import WAIT, run

from jsonrpc_mini.testing import FaultPlan
from jsonrpc_mini.testing._aio_links import memory_link

pytestmark = pytest.mark.timeout(60)

HOUR = 3600.0


class Events(asyncio.Protocol):
    """What the transport tells its protocol, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []
        self.got_eof = asyncio.Event()
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def eof_received(self) -> bool:
        self.events.append(("eof",))
        self.got_eof.set()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append(("lost", "None" if exc is None else type(exc).__name__))
        self.lost.set_result(exc)


async def _write_rounds(transport: asyncio.Transport, count: int) -> None:
    for _ in range(count):
        transport.write(b"x" * 10)
        for _ in range(3):  # (the loop runs what each write scheduled)
            await asyncio.sleep(0)


def test_writes_before_a_held_close_reaches_the_writer_do_not_fail() -> None:
    async def main() -> None:
        a, b = Events(), Events()
        ta, tb, link = memory_link(a, b, FaultPlan(seed=1, close_delay=HOUR))
        try:
            tb.close()
            await asyncio.wait_for(b.lost, WAIT)
            await _write_rounds(ta, 8)
            # The close is still on its way: nothing has reached this end.
            assert a.events == []
            assert not ta.is_closing()
        finally:
            ta.abort()
            await asyncio.wait_for(a.lost, WAIT)
            await link.wait_closed(0)

    run(main)


def test_once_the_held_close_arrives_the_second_write_fails() -> None:
    async def main() -> None:
        a, b = Events(), Events()
        ta, tb, link = memory_link(a, b, FaultPlan(seed=1, close_delay=0.01))
        try:
            tb.close()
            await asyncio.wait_for(a.got_eof.wait(), WAIT)
            await _write_rounds(ta, 2)
            assert isinstance(await asyncio.wait_for(a.lost, WAIT), BrokenPipeError)
            assert a.events == [("eof",), ("lost", "BrokenPipeError")]
        finally:
            ta.abort()
            await link.wait_closed(WAIT)

    run(main)
