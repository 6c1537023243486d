"""aio notifications and batches made while the client's writing is paused keep to the timeout.

A call made while the write buffer is full is held and its timer runs; but a
notification or a batch waited for the buffer to drain before its timeout began,
so with a server that stopped reading (or the test kit's slow fault plan) it
waited for ever whatever the timeout. Now: RPCTimeout when the timeout passes
first (nothing of it was written; the connection goes on), and a batch's members
get what is left of the timeout. A waiter cancelled or timed out no longer
cancels the shared "writable" future: writing stays paused for the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from _aio_support import WAIT, run

from jsonrpc_mini import RPCTimeout, aio

pytestmark = pytest.mark.timeout(60)

SHORT = 0.3
BIG = "x" * 1_000_000


class SlowReader:
    """A raw server that reads nothing until ``go`` is set; then answers requests (and batches) with 0.

    ``seen`` lists the first param of every ``tag`` request or notification it read.
    """

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(WAIT)
        self.address = self.listener.getsockname()
        self.go = threading.Event()
        self.seen: list[Any] = []
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            conn, _ = self.listener.accept()
            self.conns.append(conn)
            conn.settimeout(WAIT)
            if not self.go.wait(WAIT):
                return
            buffer = b""
            while chunk := conn.recv(1 << 20):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    message = json.loads(line)
                    replies = [self._answer(m) for m in (message if isinstance(message, list) else [message])]
                    replies = [reply for reply in replies if reply is not None]
                    if replies:
                        body = replies if isinstance(message, list) else replies[0]
                        conn.sendall(json.dumps(body).encode() + b"\n")

    def _answer(self, request: dict[str, Any]) -> dict[str, Any] | None:
        if request["method"] == "tag":
            self.seen.append(request["params"][0])
        return None if "id" not in request else {"jsonrpc": "2.0", "id": request["id"], "result": 0}

    def close(self) -> None:
        self.go.set()
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self.listener.close()
        self.thread.join(WAIT)


@contextlib.contextmanager
def slow_reader() -> Iterator[SlowReader]:
    server = SlowReader()
    server.thread.start()
    try:
        yield server
    finally:
        server.close()


async def fill(client: aio.RPCClient) -> list[Any]:
    """Make large calls until the client's writing is paused; return them."""
    calls: list[Any] = []
    for _ in range(200):
        if client._link.paused:
            return calls
        calls.append(client.echo(BIG))
        await asyncio.sleep(0)
    raise AssertionError("the client's writing never paused")


def test_a_notification_waits_for_a_full_buffer_no_longer_than_the_timeout() -> None:
    with slow_reader() as server:

        async def main() -> None:
            async with await aio.connect(*server.address, timeout=WAIT) as c:
                big = await fill(c)
                with pytest.raises(RPCTimeout, match="nothing was sent"):
                    await c.with_timeout(SHORT).notify("tag", "never")
                assert c._link.paused  # still waiting for the server to read
                server.go.set()
                await asyncio.gather(*big)
                await c.tag("after")  # the connection goes on
                assert "never" not in server.seen and server.seen[-1] == "after"

        run(main)


def test_a_batch_waits_for_a_full_buffer_no_longer_than_the_timeout() -> None:
    with slow_reader() as server:

        async def main() -> None:
            async with await aio.connect(*server.address, timeout=WAIT) as c:
                big = await fill(c)
                with pytest.raises(RPCTimeout, match="batch: could not send"):
                    async with c.with_timeout(SHORT).batch() as batch:
                        batch.tag("never")
                server.go.set()
                await asyncio.gather(*big)
                await c.tag("after")
                assert "never" not in server.seen and server.seen[-1] == "after"

        run(main)


def test_a_batch_that_waited_to_be_written_gets_the_rest_of_its_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    with slow_reader() as server:

        async def main() -> None:
            async with await aio.connect(*server.address, timeout=WAIT) as c:
                big = await fill(c)
                link = c._link
                given: list[float | None] = []
                expect = link.expect

                def recording(id_, method, timeout):  # type: ignore[no-untyped-def]
                    given.append(timeout)
                    return expect(id_, method, timeout)

                monkeypatch.setattr(link, "expect", recording)

                async def send_batch() -> list[object]:
                    async with c.batch() as batch:
                        results = [batch.tag("b1"), batch.tag("b2")]
                    return [result.result() for result in results]

                task = asyncio.ensure_future(send_batch())
                await asyncio.sleep(0.05)  # the batch waits for the buffer (no assertion on time)
                assert not task.done() and given == []
                server.go.set()
                await asyncio.gather(*big)
                assert len(await task) == 2
                assert len(given) == 2
                assert all(timeout is not None and 0 < timeout < WAIT for timeout in given), given

        run(main)


@pytest.mark.parametrize("timeout", [None, WAIT])
def test_a_wait_cut_short_by_the_caller_leaves_writing_paused_for_the_others(timeout: float | None) -> None:
    with slow_reader() as server:

        async def main() -> None:
            async with await aio.connect(*server.address, timeout=timeout) as c:
                big = await fill(c)
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.05):
                        await c.notify("tag", "cut")
                assert c._link.paused  # the shared wait was not cancelled with it
                held = c.tag("held")  # so a new call is held, not written into the full buffer
                assert len(c._link._held) == 1
                server.go.set()
                await asyncio.gather(*big, held)
                assert server.seen[-1] == "held"

        run(main)
