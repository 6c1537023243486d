"""Helpers for client tests against a scripted fake server: one body, run on either driver's client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from _aio_support import run
from _driver_helpers import WAIT, FakeServer, Peer

from jsonrpc_mini import RPCClient, aio


def against_sync(
    script: Callable[[Peer], None], body: Callable[[RPCClient], Any], bye: bool = True, **options: Any
) -> Any:
    """``body(client)`` against a FakeServer playing ``script``; what it returns.

    The client (timeout WAIT unless ``options`` say otherwise) sends a notification
    "bye" as its last word (``bye=False``: the server closes first). Fails if the
    script raised.
    """
    options.setdefault("timeout", WAIT)
    with FakeServer(script) as fake, RPCClient(*fake.address, **options) as client:
        result = body(client)
        if bye:
            client.notify("bye")
    assert not fake.errors
    return result


def against_aio(
    script: Callable[[Peer], None],
    body: Callable[[aio.RPCClient], Awaitable[Any]],
    bye: bool = True,
    **options: Any,
) -> Any:
    """As :func:`against_sync`, for the aio client (run on a checked event loop: ``_aio_support.run``)."""
    options.setdefault("timeout", WAIT)

    async def main() -> Any:
        client = await aio.connect(*fake.address, **options)
        async with client:
            result = await body(client)
            if bye:
                await client.notify("bye")
        return result

    with FakeServer(script) as fake:
        result = run(main)
    assert not fake.errors
    return result
