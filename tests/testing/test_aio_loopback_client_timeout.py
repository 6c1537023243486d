"""AioLoopbackServer.client(timeout=...), as LoopbackServer.client has it.

It had no timeout argument: every client took the AioLoopbackServer's own (10 s
by default), and a test wanting another one had to build a second kit. Now
``timeout`` defaults to the kit's, ``None`` means none, and a value that is not a
positive number of seconds is refused as ``aio.connect`` refuses it.
"""

from __future__ import annotations

import asyncio

import pytest
from _aio_support import WAIT, run

from jsonrpc_mini import RPCTimeout, aio
from jsonrpc_mini.testing import AioLoopbackServer

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.timeout(60),
]


def make_server() -> tuple[aio.RPCServer, asyncio.Event]:
    server = aio.RPCServer()
    release = asyncio.Event()

    @server.register
    async def held() -> str:
        await asyncio.wait_for(release.wait(), WAIT)
        return "released"

    @server.register
    async def nap() -> str:
        await asyncio.sleep(0.5)
        return "rested"

    return server, release


def test_a_clients_own_timeout_bounds_its_calls() -> None:
    async def main() -> None:
        server, release = make_server()
        async with AioLoopbackServer(server) as lb:  # (the kit's timeout: 10 s)
            client = await lb.client(timeout=0.2)
            with pytest.raises(RPCTimeout, match=r"within 0\.2 s"):
                await client.held()
            release.set()

    run(main)


def test_by_default_a_client_takes_the_kits_timeout_and_none_means_none() -> None:
    async def main() -> None:
        server, release = make_server()
        async with AioLoopbackServer(server, timeout=0.2) as lb:
            inherited = await lb.client()
            with pytest.raises(RPCTimeout, match=r"within 0\.2 s"):
                await inherited.held()
            release.set()
            unbounded = await lb.client(timeout=None)
            assert await unbounded.nap() == "rested"  # 0.5 s: past the kit's 0.2 s

    run(main)


@pytest.mark.parametrize("timeout", [True, "1", 0, -1.0, float("nan")])
def test_a_timeout_that_is_not_a_positive_number_of_seconds_is_refused(timeout: object) -> None:
    async def main() -> None:
        server, _ = make_server()
        async with AioLoopbackServer(server) as lb:
            with pytest.raises(ValueError, match="timeout must be a positive number of seconds"):
                await lb.client(timeout=timeout)  # type: ignore[arg-type]
            assert lb._clients == []  # nothing opened

    run(main)
