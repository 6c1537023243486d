"""AioLoopbackServer.client() awaited in another task while the block exits.

The kit closes the clients it listed when its block ends. A client() still
connecting then (in another task) was listed after that close had taken the
list, and returned to its caller as if the block were open: a client whose
proxy was gone (its first call failed "connection closed by the server"). Now
client() closes it and raises RuntimeError, as it does outside the block.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from _aio_support import WAIT, run

from jsonrpc_mini import ConnectionLost, aio
from jsonrpc_mini.testing import AioLoopbackServer, _aio_loopback_server

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.timeout(60),
]


def test_a_client_connecting_as_the_block_exits_is_closed_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    connected, go_on = asyncio.Event(), asyncio.Event()
    made: list[aio.RPCClient] = []
    real_connect = _aio_loopback_server.connect

    async def slow_connect(*args: Any, **kwargs: Any) -> aio.RPCClient:
        client = await real_connect(*args, **kwargs)
        made.append(client)
        connected.set()
        await go_on.wait()  # (the block exits meanwhile)
        return client

    monkeypatch.setattr(_aio_loopback_server, "connect", slow_connect)

    async def main() -> None:
        server = aio.RPCServer()
        server.register_function(lambda a, b: a + b, name="add")
        async with AioLoopbackServer(server) as lb:
            late = asyncio.create_task(lb.client())
            await asyncio.wait_for(connected.wait(), WAIT)
        go_on.set()
        with pytest.raises(RuntimeError, match="works inside"):
            await asyncio.wait_for(late, WAIT)
        assert len(made) == 1
        with pytest.raises(ConnectionLost):  # (closed: nothing is left connected)
            await made[0].add(1, 2)

    run(main)
