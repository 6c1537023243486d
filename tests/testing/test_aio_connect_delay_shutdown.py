"""aio server on aio_loopback(): shutdown() does not wait for bytes a plan's connect_delay holds.

README: bytes a fault plan still delays are in flight, as on a network, and
shutdown() does not wait for them. The memory link counted the bytes written
during the plan's ``connect_delay`` as arrived (FIONREAD's count), so shutdown()
waited for them until the delay ended: 2.96 s of a 3 s connect_delay (Review29,
session 30), the whole delay or grace in general. The bound below is a hang check:
with a delay and a grace of an hour, a correct shutdown() returns at once.
"""

from __future__ import annotations

import asyncio

import pytest
from _aio_support import run

from jsonrpc_mini import aio
from jsonrpc_mini.testing import FaultPlan, aio_loopback

pytestmark = pytest.mark.timeout(60)


def test_shutdown_does_not_wait_for_bytes_the_connect_delay_holds() -> None:
    async def main() -> None:
        server = aio.RPCServer(shutdown_grace=3600.0)
        ran: list[int] = []
        server.register_function(ran.append, name="note")
        async with aio_loopback(server, faults=FaultPlan(seed=1, connect_delay=3600.0), timeout=30) as client:
            await client.notify("note", 1)  # (held by the connect delay: not arrived)
            await asyncio.sleep(0)
            try:
                await asyncio.wait_for(server.shutdown(), 20)
            except TimeoutError:
                pytest.fail("shutdown() waits for bytes a connect_delay holds (in flight)")
        assert ran == []  # (never arrived: nothing ran)

    run(main)
