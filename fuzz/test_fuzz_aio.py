"""asyncio: the same round trip through jsonrpc_mini.aio, against both servers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jsonrpc_mini import RPCServer, aio
from jsonrpc_mini.testing import strategies as rst

from ._budget import scaled

values = st.one_of(rst.json_values(max_leaves=12), rst.large_values(max_bytes=20_000), rst.deeply_nested(max_depth=60))


def echo(*args: Any, **kwargs: Any) -> Any:
    return {"args": list(args), "kwargs": kwargs}


async def aecho(*args: Any, **kwargs: Any) -> Any:
    await asyncio.sleep(0)
    return {"args": list(args), "kwargs": kwargs}


def expected(arguments: rst.Arguments) -> Any:
    return {"args": list(arguments.args), "kwargs": arguments.kwargs}


@pytest.fixture(scope="module")
def sync_address() -> Iterator[tuple[str, int]]:
    server = RPCServer(shutdown_grace=2.0)
    server.register_function(echo)
    host, port = server.start("127.0.0.1", 0)  # type: ignore[misc]
    yield host, port
    server.shutdown()


async def pipelined(host: str, port: int, calls: list[rst.Arguments]) -> list[Any]:
    async with await aio.connect(host, port, timeout=60.0) as client:
        return list(await asyncio.gather(*(client.echo(*a.args, **a.kwargs) for a in calls)))


# Invariant: pipelined asyncio calls to the threaded server each get exactly their own
# echo back (replies matched by id, whatever order they finish in).
@scaled(0.25)
@given(calls=st.lists(rst.arguments(values), min_size=1, max_size=6))
def test_aio_client_to_sync_server(sync_address, calls):
    results = asyncio.run(pipelined(*sync_address, calls))
    for result, arguments in zip(results, calls, strict=True):
        assert rst.same_json(result, expected(arguments))


# Invariant: an asyncio server with async and plain handlers echoes exactly, to pipelined
# calls and to a batch, and shuts down cleanly.
@scaled(0.25)
@given(calls=st.lists(rst.arguments(values), min_size=1, max_size=4), use_async=st.booleans())
def test_aio_client_to_aio_server(calls, use_async):
    async def main() -> tuple[list[Any], list[Any]]:
        server = aio.RPCServer()
        server.register_function(aecho if use_async else echo, name="echo")
        host, port = await server.start("127.0.0.1", 0)
        try:
            async with await aio.connect(host, port, timeout=60.0) as client:
                results = list(await asyncio.gather(*(client.echo(*a.args, **a.kwargs) for a in calls)))
                async with client.batch() as batch:
                    pending = [batch.echo(*a.args, **a.kwargs) for a in calls]
                return results, [p.result() for p in pending]
        finally:
            await server.shutdown()

    results, batched = asyncio.run(main())
    for result, from_batch, arguments in zip(results, batched, calls, strict=True):
        assert rst.same_json(result, expected(arguments))
        assert rst.same_json(from_batch, expected(arguments))
