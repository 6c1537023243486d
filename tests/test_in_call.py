"""``in_call()`` of both servers, as README.md describes it (API.md does not).

Only the test kit's shutdown refusals used it (tests/testing/test_loopback_uses.py):
nothing checked its answers directly, nor the README's example.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from typing import Any

import pytest
from _aio_support import run
from _driver_helpers import WAIT, serving
from _readme_blocks import python_blocks

from jsonrpc_mini import RPCClient, RPCServer, aio

pytestmark = pytest.mark.timeout(60)


def test_the_readme_example_runs_as_written() -> None:
    blocks = [b for b in python_blocks("\n## Server\n") if "in_call()" in b]
    assert len(blocks) == 1
    namespace: dict[str, Any] = {}
    exec(compile(blocks[0], "README.md#server-in_call", "exec"), namespace)
    server = namespace["s"]
    assert isinstance(server, RPCServer) and server.address is None  # shut down by the example


def test_sync_server_in_call_where_readme_says() -> None:
    server, other = RPCServer(), RPCServer()
    kept: list[contextvars.Context] = []

    @server.register
    def probe() -> dict[str, bool]:
        seen = {"handler": server.in_call(), "other server": other.in_call()}
        ctx = contextvars.copy_context()
        kept.append(ctx)

        def record(name: str) -> None:
            seen[name] = server.in_call()

        plain = threading.Thread(target=record, args=("plain thread",))
        copied = threading.Thread(target=ctx.run, args=(record, "thread in ctx.run"))
        for thread in (plain, copied):
            thread.start()
            thread.join(WAIT)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(record, "executor task").result(WAIT)
            pool.submit(ctx.run, record, "executor ctx.run").result(WAIT)
        return seen

    with serving(server) as (host, port), RPCClient(host, port, timeout=WAIT) as client:
        assert client.probe() == {
            "handler": True,
            "other server": False,
            "plain thread": False,
            "thread in ctx.run": True,
            "executor task": False,
            "executor ctx.run": True,
        }
    assert server.in_call() is False
    assert kept[0].run(server.in_call) is True  # the call has ended: its context still says so
    assert kept[0].run(other.in_call) is False


def test_aio_server_in_call_where_readme_says() -> None:
    server, other = aio.RPCServer(), aio.RPCServer()
    inline = aio.RPCServer(run_sync_in_thread=False)
    kept: list[contextvars.Context] = []

    async def helper() -> bool:
        return server.in_call()

    @server.register
    async def probe() -> dict[str, Any]:
        kept.append(contextvars.copy_context())
        return {
            "handler": server.in_call(),
            "other server": other.in_call(),
            "created task": await asyncio.create_task(helper()),
            "gathered": await asyncio.gather(helper(), helper()),
        }

    @server.register
    def pooled() -> bool:
        return server.in_call()

    @inline.register
    def inline_plain() -> bool:
        return inline.in_call()

    async def main() -> None:
        host, port = await server.start("127.0.0.1", 0)
        inline_host, inline_port = await inline.start("127.0.0.1", 0)
        try:
            async with await aio.connect(host, port, timeout=WAIT) as client:
                assert await client.probe() == {
                    "handler": True,
                    "other server": False,
                    "created task": True,
                    "gathered": [True, True],
                }
                assert await client.pooled() is False  # a plain handler runs outside the call's context
            async with await aio.connect(inline_host, inline_port, timeout=WAIT) as client:
                assert await client.inline_plain() is False  # inline too
            assert server.in_call() is False
        finally:
            await server.shutdown()
            await inline.shutdown()

    run(main)
    assert kept[0].run(server.in_call) is True  # the call has ended: its context still says so
