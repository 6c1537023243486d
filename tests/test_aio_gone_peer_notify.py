"""aio.RPCServer: the notifications of a client gone while the server was not reading from it.

API.md: "A notification is executed even when its sender closes the connection
right after." At ``max_concurrent_calls`` the server stops reading; the bytes it
had received but not taken (its backlog) wait. Once a reply cannot reach the
client (the write fails, or the connection is lost), the requests among them are
skipped (``test_aio_gone_peer_paused``), but the notifications still run, once
each, within the connection's call limit; a batch runs its notification members.
The old server dropped them with the requests (the sync server ran them).
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from typing import Any

import pytest
from _aio_support import request, run, serving, until
from _driver_helpers import tls_contexts
from test_aio_gone_peer import raw_client, reset

from jsonrpc_mini import aio

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.timeout(60),
]

CALLS = 20


def line(message: Any) -> bytes:
    return json.dumps(message).encode() + b"\n"


async def gone_after(
    srv: aio.RPCServer, address: tuple[str, int], payload: bytes, limit: int, ending: str, reads: int
) -> None:
    """Send ``payload`` (slow calls first, held by ``srv.gate``), end the connection, let the calls end.

    ``reads`` 1: the payload is sent in one write, well under one read (loopback):
    the server gives the whole first read to the core (it learns the framing from
    it), so what it holds at its call limit waits there as events. 2: its first
    line alone first, then the rest: what the server holds of the second read
    waits unparsed (its backlog); ``limit`` must be 2 then (at limit 1 the server
    may stop reading before the second write arrives: those bytes are never read).
    Either way it holds all of it when it stops reading at its call limit.
    """
    loop = asyncio.get_running_loop()
    sock = await raw_client(address)
    started: list[int] = srv.started  # type: ignore[attr-defined]
    if reads == 2:
        first = payload.index(b"\n") + 1
        await loop.sock_sendall(sock, payload[:first])
        await until(lambda: started)
        payload = payload[first:]
    await loop.sock_sendall(sock, payload)
    await until(lambda: len(started) == limit)  # the rest is read and held: reading paused
    for _ in range(20):
        await asyncio.sleep(0)
    assert started == list(range(limit))
    if ending == "reset":
        reset(sock)
    else:
        sock.close()
    for _ in range(20):
        await asyncio.sleep(0)
    assert srv.connection_count == 1  # not reading: the server cannot tell yet
    srv.gate.set()  # type: ignore[attr-defined]  # the calls end; their replies cannot reach the client


def slow_server(limit: int, **options: Any) -> tuple[aio.RPCServer, list[str], list[int]]:
    """A server with ``slow`` (waits for ``srv.gate``), ``mark`` (a notification's) and ``late`` calls."""
    srv = aio.RPCServer(max_concurrent_calls=limit, **options)
    gate = asyncio.Event()
    started: list[int] = []
    marks: list[str] = []
    late: list[int] = []
    srv.gate = gate  # type: ignore[attr-defined]
    srv.started = started  # type: ignore[attr-defined]

    @srv.register
    async def slow(i: int) -> int:
        started.append(i)
        await gate.wait()
        return i

    @srv.register
    def mark(x: str) -> None:
        marks.append(x)

    @srv.register
    async def later(i: int) -> int:
        late.append(i)
        return i

    return srv, marks, late


async def settled(srv: aio.RPCServer) -> None:
    """Wait until the connection has ended and nothing of it runs; the server keeps nothing of it."""
    await until(lambda: srv.connection_count == 0 and srv.total_busy == 0 and not srv._orphans)
    for _ in range(20):
        await asyncio.sleep(0)


@pytest.mark.parametrize(("limit", "reads"), [(1, 1), (2, 1), (2, 2)])
@pytest.mark.parametrize("ending", ["reset", "close"])
def test_a_notification_after_held_requests_runs_once_for_a_client_that_has_gone(
    ending: str, limit: int, reads: int
) -> None:
    async def main() -> None:
        srv, marks, late = slow_server(limit)
        payload = b"".join(line(request("slow", [i], id_=i)) for i in range(CALLS))
        payload += line(request("mark", ["x"], id_=None))
        payload += b"".join(line(request("later", [i], id_=i)) for i in range(5))  # requests after it
        async with serving(srv) as address:
            await gone_after(srv, address, payload, limit, ending, reads)
            await until(lambda: marks)
            await settled(srv)
            assert marks == ["x"]
            assert late == []  # requests after the failed write are skipped
            assert len(srv.started) < CALLS // 2, srv.started  # type: ignore[attr-defined]
        assert marks == ["x"]

    run(main)


@pytest.mark.parametrize("reads", [1, 2])
@pytest.mark.parametrize("ending", ["reset", "close"])
def test_a_batch_runs_its_notification_members_for_a_client_that_has_gone(ending: str, reads: int) -> None:
    async def main() -> None:
        srv, marks, late = slow_server(2)
        payload = b"".join(line(request("slow", [i], id_=i)) for i in range(CALLS))
        batch = [request("mark", ["a"], id_=None), request("later", [1], id_=1), request("mark", ["b"], id_=None)]
        payload += line(batch) + line(request("mark", ["c"], id_=None))
        async with serving(srv) as address:
            await gone_after(srv, address, payload, 2, ending, reads)
            await until(lambda: len(marks) == 3)
            await settled(srv)
            assert sorted(marks) == ["a", "b", "c"]
            assert late == []  # the batch's request member is skipped
            assert len(srv.started) < CALLS // 2, srv.started  # type: ignore[attr-defined]

    run(main)


@pytest.mark.parametrize(("limit", "reads"), [(1, 1), (2, 1), (2, 2)])
@pytest.mark.parametrize("ending", ["reset", "close"])
def test_many_notifications_of_a_client_that_has_gone_run_within_the_call_limit(
    ending: str, limit: int, reads: int
) -> None:
    """300 notifications after the held calls: each runs once, never more than ``limit`` calls at once."""
    notes = 300

    async def main() -> None:
        srv = aio.RPCServer(max_concurrent_calls=limit)
        gate = asyncio.Event()
        started: list[int] = []
        noted: list[int] = []
        running = peak = 0
        srv.gate = gate  # type: ignore[attr-defined]
        srv.started = started  # type: ignore[attr-defined]

        @srv.register
        async def slow(i: int) -> int:
            nonlocal running, peak
            started.append(i)
            running += 1
            peak = max(peak, running)
            try:
                await gate.wait()
            finally:
                running -= 1
            return i

        @srv.register
        async def note(i: int) -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            try:
                for _ in range(3):
                    await asyncio.sleep(0)
            finally:
                running -= 1
            noted.append(i)

        payload = b"".join(line(request("slow", [i], id_=i)) for i in range(CALLS))
        payload += b"".join(line(request("note", [i], id_=None)) for i in range(notes))
        assert len(payload) < 32 * 1024  # (one read)
        async with serving(srv) as address:
            await gone_after(srv, address, payload, limit, ending, reads)
            await until(lambda: len(noted) == notes)
            await settled(srv)
            assert sorted(noted) == list(range(notes))
            assert peak <= limit
            assert len(started) < CALLS // 2, started

    run(main)


def test_shutdown_ends_what_a_client_that_has_gone_left_to_run() -> None:
    """shutdown() waits for (then cancels) the notifications running; those not started never start."""

    async def main() -> None:
        srv, _, _ = slow_server(2, shutdown_grace=0.05)
        never = asyncio.Event()
        noted: list[int] = []

        @srv.register
        async def note(i: int) -> None:
            noted.append(i)
            await never.wait()

        payload = b"".join(line(request("slow", [i], id_=i)) for i in range(CALLS))
        payload += b"".join(line(request("note", [i], id_=None)) for i in range(10))
        async with serving(srv) as address:
            await gone_after(srv, address, payload, 2, "close", 1)
            await until(lambda: len(noted) == 2)  # the two slots: the rest wait
            await srv.shutdown()
            for _ in range(20):
                await asyncio.sleep(0)
            assert noted == [0, 1]
            assert srv.total_busy == 0
            assert not srv._orphans

    run(main)


@pytest.mark.parametrize("stop", ["shutdown", "gate"])
def test_a_gone_tls_client_held_at_the_server_wide_limit_keeps_its_notifications_until_shutdown(stop: str) -> None:
    """Its notifications wait for a slot of ``max_total_calls`` when the client resets.

    Over TLS the server learns of the reset while the client is held (asyncio's TLS
    layer goes on reading beneath a paused transport), so nothing of that client
    runs then, yet it has notifications to run: the server keeps the connection
    until they have run ("gate": the slot frees), and ``shutdown()`` ends it with
    the others, so none of them starts after ``shutdown()`` has returned
    ("shutdown").
    """
    server_ctx, client_ctx = tls_contexts()

    async def main() -> None:
        srv, marks, _ = slow_server(4, max_total_calls=1, shutdown_grace=0.05)
        async with serving(srv, ssl=server_ctx) as address:
            _, holder = await asyncio.open_connection(*address, ssl=client_ctx)
            holder.write(line(request("slow", [0], id_=0)))
            await until(lambda: srv.started == [0])  # type: ignore[attr-defined]
            _, gone = await asyncio.open_connection(*address, ssl=client_ctx)
            gone.write(b"".join(line(request("mark", [str(i)], id_=None)) for i in range(3)))
            await gone.drain()
            await until(lambda: srv.connection_count == 2)
            for _ in range(20):  # the notifications are read and wait for the slot
                await asyncio.sleep(0)
            gone.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            gone.transport.abort()
            await until(lambda: srv.connection_count == 1)  # the server has seen the reset
            assert marks == []
            if stop == "gate":
                srv.gate.set()  # type: ignore[attr-defined]
                await until(lambda: len(marks) == 3)
                assert sorted(marks) == ["0", "1", "2"]
            else:
                await srv.shutdown()  # the slow call is cancelled after the grace: its slot frees
                for _ in range(20):
                    await asyncio.sleep(0)
                assert marks == []  # held when shutdown began: never started, not even after it
                assert not srv._orphans
            holder.transport.abort()

    run(main)
