"""aio client calls made while its writing is paused: held in order, no task per call.

Invariant: calls made while the transport's write buffer is over its high-water
mark are written in the order they were made once it drains, and answered; when
the connection breaks they fail with ConnectionLost and nothing stays held; a loop
closed by hand with such calls still queued reports no destroyed task and no
coroutine that was never awaited.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
import warnings
from typing import Any

import pytest
from _aio_support import WAIT, run, slow_reader

import jsonrpc_mini._aio_client as aio_client_module
from jsonrpc_mini import ConnectionLost, aio

pytestmark = pytest.mark.timeout(60)

BIG = "x" * 1_000_000


async def fill(client: aio.RPCClient) -> list[Any]:
    """Make large calls until the client's writing is paused; return them."""
    link = client._link
    calls: list[Any] = []
    for _ in range(200):
        if link.paused:
            return calls
        calls.append(client.echo(BIG))
        await asyncio.sleep(0)
    raise AssertionError("the client's writing never paused")


def test_calls_made_while_paused_go_out_in_order_once_the_buffer_drains() -> None:
    with slow_reader() as server:

        async def main() -> None:
            async with await aio.connect(*server.address, timeout=WAIT) as c:
                big = await fill(c)
                tagged = [c.tag(i) for i in range(5)]
                assert len(c._link._held) == 5
                server.go.set()
                await asyncio.gather(*big, *tagged)
                assert server.seen == ["big"] * len(big) + list(range(5))
                assert not c._link._held

        run(main)


def test_held_calls_fail_with_connection_lost_when_the_connection_breaks() -> None:
    with slow_reader() as server:

        async def main() -> None:
            async with await aio.connect(*server.address, timeout=WAIT) as c:
                big = await fill(c)
                tagged = [c.tag(i) for i in range(3)]
                for _ in range(int(WAIT / 0.01)):  # (connected before the server thread's accept() returns)
                    if server.conns:
                        break
                    await asyncio.sleep(0.01)
                assert server.conns, "the server never accepted"
                for conn in server.conns:
                    conn.close()  # reset: unread data
                results = await asyncio.gather(*big, *tagged, return_exceptions=True)
                assert all(isinstance(r, ConnectionLost) for r in results), results
                assert not c._link._held

        run(main)


def test_a_loop_closed_by_hand_with_held_calls_reports_no_task_or_coroutine() -> None:
    errors: list[str] = []
    calls: list[Any] = []
    with slow_reader() as server, warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")

        async def main() -> None:
            asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(str(ctx["message"])))
            c = await aio.connect(*server.address, timeout=None)
            calls.extend(await fill(c))
            calls.extend(c.tag(i) for i in range(3))  # held: their writes wait for the buffer
            calls.append(c)

        loop = asyncio.new_event_loop()
        loop.set_debug(True)
        try:
            loop.run_until_complete(main())
        finally:
            loop.close()  # as some users do: no cancelling, nothing closed
        calls.clear()
        gc.collect()
        # (The client was never closed: Python reports its socket, which is the user's to close.)
        reported = [str(w.message) for w in seen if not issubclass(w.category, ResourceWarning)]
    assert not errors, errors
    assert not reported, reported


@pytest.mark.parametrize(("flush", "timeout"), [(0.2, WAIT), (3600.0, 0.2)])
def test_close_gives_up_on_a_peer_that_takes_nothing(
    monkeypatch: pytest.MonkeyPatch, flush: float, timeout: float
) -> None:
    # What is still buffered when the client closes goes out if the peer reads it;
    # a peer that reads nothing must not keep the socket open (review p18: the close
    # waited 5 s and then left the transport open, flushing for ever). The client's
    # timeout bounds that wait too (second case: close() would take an hour).
    monkeypatch.setattr(aio_client_module, "_CLOSE_FLUSH", flush)
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    acceptor = threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True)
    acceptor.start()

    async def main() -> None:
        c = await aio.connect(*listener.getsockname()[:2], timeout=timeout)
        await c.notify("echo", "x" * (16 << 20))  # far more than the socket buffers hold
        transport = c._link.transport
        assert transport is not None and transport.get_write_buffer_size() > 0
        await asyncio.wait_for(c.close(), WAIT)
        assert c._link.closed.done(), "close() returned with the connection still open"
        assert transport.is_closing()

    try:
        run(main)
    finally:
        acceptor.join(WAIT)
        for sock in (listener, *accepted):
            sock.close()
