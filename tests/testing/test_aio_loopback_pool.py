"""aio_loopback() never starts its server, so the server's thread pool stays until shutdown().

A user's jsonrpc_no_leaks reported "left behind: thread jsonrpc_mini-aio_0" after an
aio_loopback() block whose plain handler ran; the README said nothing of it.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from jsonrpc_mini import aio
from jsonrpc_mini.testing import aio_loopback

pytestmark = pytest.mark.timeout(60)

README = Path(__file__).resolve().parents[2] / "README.md"


def pool_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("jsonrpc_mini-aio_")}


def test_the_pool_outlives_the_block_and_the_loop_until_shutdown() -> None:
    before = pool_threads()
    server = aio.RPCServer()
    server.register_function(lambda a, b: a + b, name="add")  # a plain handler: the pool runs it

    async def use() -> None:
        async with aio_loopback(server) as client:
            assert await client.add(1, 2) == 3

    asyncio.run(use())
    assert pool_threads() - before, "the pool ended with the block: update README's aio_loopback note"
    asyncio.run(server.shutdown())
    for thread in pool_threads() - before:
        thread.join(5)
        assert not thread.is_alive()


def test_the_readme_says_so() -> None:
    text = " ".join(README.read_text(encoding="utf-8").split())
    assert "`aio_loopback()` alone never starts the server, so it never shuts it down" in text
    assert "until `await server.shutdown()`" in text
