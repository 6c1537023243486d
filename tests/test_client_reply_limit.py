"""A reply over the client's max_message_size: the calls are told the client closed the connection, and why.

Before, every pending call got ConnectionLost "connection closed by the server",
although the client had closed it; the cause was only in a log warning (review p33).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from _aio_support import run, serving
from _driver_helpers import WAIT, wait_for

from jsonrpc_mini import ConnectionLost, RPCClient, RPCServer, aio

pytestmark = pytest.mark.timeout(60)

LIMIT = 1000
WHY = f"a reply exceeded this client's max_message_size ({LIMIT} bytes), so the client closed the connection"


@pytest.mark.parametrize("framing", ["newline", "content-length"])
def test_sync_calls_are_told_a_reply_was_over_the_client_limit(framing: str) -> None:
    server = RPCServer()
    gate = threading.Event()
    server.register_function(lambda n: "x" * n, name="big")
    server.register_function(lambda: gate.wait(WAIT) and "late", name="late")
    address = server.start("127.0.0.1", 0)
    try:
        with RPCClient(*address, timeout=WAIT, max_message_size=LIMIT, framing=framing) as c:
            outcome: dict[str, Any] = {}

            def other() -> None:
                try:
                    outcome["late"] = c.late()
                except ConnectionLost as exc:
                    outcome["late"] = exc

            waiting = threading.Thread(target=other, daemon=True)
            waiting.start()
            link = c._link
            assert link is not None
            wait_for(lambda: len(link.pending) == 1, "the other call to wait")
            with pytest.raises(ConnectionLost) as info:
                c.big(2 * LIMIT)
            gate.set()
            waiting.join(WAIT)
            assert WHY in str(info.value) and "raise its max_message_size option" in str(info.value)
            assert isinstance(outcome["late"], ConnectionLost) and WHY in str(outcome["late"])
            with pytest.raises(ConnectionLost, match="max_message_size"):
                c.big(1)
    finally:
        server.shutdown()


def test_aio_calls_are_told_a_reply_was_over_the_client_limit() -> None:
    async def main() -> None:
        server = aio.RPCServer()
        gate, running = asyncio.Event(), asyncio.Event()

        async def late() -> str:
            running.set()
            await gate.wait()
            return "late"

        server.register_function(lambda n: "x" * n, name="big")
        server.register_function(late, name="late")
        async with serving(server) as (host, port):
            c = await aio.connect(host, port, timeout=WAIT, max_message_size=LIMIT)
            pending = asyncio.create_task(c.late())
            await asyncio.wait_for(running.wait(), WAIT)  # late is pending when the big reply comes
            with pytest.raises(ConnectionLost) as info:
                await c.big(2 * LIMIT)
            assert WHY in str(info.value)
            with pytest.raises(ConnectionLost) as other:
                await pending
            assert WHY in str(other.value)
            gate.set()
            await c.close()

    run(main)
