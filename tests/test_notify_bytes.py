"""A notification goes out with no id (API.md: ``c.notify("log", "x")``: no id, no reply), from both clients.

Before this file, a notify() that sent an id failed only an interoperability test
against a Node server (sync client; skipped where Node is missing) and, for the
aio client, a TLS close test; no test looked at the bytes.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from jsonrpc_mini import RPCClient, aio

pytestmark = pytest.mark.timeout(30)

WAIT = 10.0
EXPECTED = (
    b'{"jsonrpc":"2.0","method":"log","params":["x"]}\n{"jsonrpc":"2.0","method":"log","params":{"0":"x","k":1}}\n'
)


@contextmanager
def listening() -> Iterator[tuple[tuple[str, int], Callable[[], bytes]]]:
    """A raw 127.0.0.1 listener; ``read()`` takes the one client and returns what it sent up to its close."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(WAIT)

        def read() -> bytes:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(WAIT)
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
                return data

        yield listener.getsockname()[:2], read


def test_the_sync_client_sends_notifications_without_an_id() -> None:
    with listening() as (address, read):
        with RPCClient(*address, timeout=WAIT) as c:
            c.notify("log", "x")
            c.notify("log", "x", k=1)
        assert read() == EXPECTED


def test_the_aio_client_sends_notifications_without_an_id() -> None:
    async def main(address: tuple[str, int]) -> None:
        async with await aio.connect(*address, timeout=WAIT) as c:
            await c.notify("log", "x")
            await c.notify("log", "x", k=1)

    with listening() as (address, read):
        asyncio.run(main(address))
        assert read() == EXPECTED
