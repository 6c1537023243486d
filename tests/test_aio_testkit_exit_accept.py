"""AioLoopbackServer: a client() whose connection the proxy accepts while the block is left.

297eaaf closed such a client and raised RuntimeError, but the proxy's side stayed:
an accept run after ``_close`` took the list of links made a link nobody closed,
and its setup task waited for ever for a connection asyncio never made (the
proxy's server closed meanwhile). Review27 (session 29): 3 of 3 runs left the task
and a link; closing the proxy's server between an accept and its transport also left
that socket to the garbage collector (a ResourceWarning in a later test). Now a
connection accepted once the block is being left is closed at once, and the proxy
closes once the accepts under way have made their transports.
Which loop step the accept falls on varies, so the exit comes after 0..9 steps.
"""

from __future__ import annotations

import asyncio

import pytest
from _aio_support import run

from jsonrpc_mini import aio
from jsonrpc_mini.testing import AioLoopbackServer

pytestmark = [pytest.mark.timeout(60)]


def test_nothing_of_the_kit_is_left_when_a_client_connects_during_the_exit() -> None:
    async def main() -> None:
        server = aio.RPCServer()
        server.register_function(lambda a, b: a + b, name="add")
        try:
            for steps in range(10):
                lb = AioLoopbackServer(server)
                async with lb:
                    late = asyncio.create_task(lb.client())
                    for _ in range(steps):
                        await asyncio.sleep(0)
                try:
                    client = await asyncio.wait_for(late, 10)
                except RuntimeError as exc:  # (refused: outside the block; not ConnectionLost, which blames the server)
                    assert "async with" in str(exc), exc
                else:
                    await client.close()  # (connected before the exit began: an ordinary client)
                left: list[asyncio.Task[object]] = []
                for _ in range(100):  # bounded: up to ~1 s for the kit's tasks to end
                    left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                    if not left:
                        break
                    await asyncio.sleep(0.01)
                assert not left, f"exit after {steps} loop steps left {left}"
                assert lb._links == [], f"exit after {steps} loop steps left a link"
        finally:
            await server.shutdown()

    run(main)
