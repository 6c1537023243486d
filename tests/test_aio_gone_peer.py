"""aio.RPCServer: the calls of a client that has gone are not run, its notifications are.

Once nothing can reach the peer (a reply could not be written: it reset the
connection, or it closed and a reply drew its reset), the server takes no more
of its input, and its requests that have not started are skipped, batch members
included; notifications still run. As on the sync server, a client that sends
many calls and hangs up does not keep the server busy with them. A batch holds
a call slot for each member it runs at once, so a connection's batches run a
few at a time, not all together.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from typing import Any

import pytest
from _aio_support import WAIT, request, run, serving, until
from test_aio_runner import CountingTransport

from jsonrpc_mini import aio

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.timeout(60),
]


def line(message: Any) -> bytes:
    return json.dumps(message).encode() + b"\n"


async def raw_client(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=WAIT)
    sock.setblocking(False)
    return sock


async def counted_raw_client(srv: aio.RPCServer, address: tuple[str, int]) -> socket.socket:
    """A ``raw_client``, returned once ``srv`` counts it (its only connection)."""
    sock = await raw_client(address)
    await until(lambda: srv.connection_count == 1)
    return sock


def reset(sock: socket.socket) -> None:
    """Close ``sock`` with a reset (SO_LINGER 0), as a killed client's kernel may."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


async def batch_then_reset(
    srv: aio.RPCServer, address: tuple[str, int], started: list[int], first_gate: asyncio.Event
) -> None:
    """A raw client sends ``first`` and a batch of 50 (``member`` calls and ``note`` notifications), then resets.

    It resets once four members have started (``started``); ``first_gate`` is then set,
    so that ``first``'s reply cannot be written: the peer is gone. Returns once
    ``srv`` has dropped the connection.
    """
    sock = await counted_raw_client(srv, address)
    # 40 requests, each fifth member a notification.
    batch = [request("member", [i], i) if i % 5 else request("note", [i], None) for i in range(1, 51)]
    await asyncio.get_running_loop().sock_sendall(sock, line(request("first", id_=0)) + line(batch))
    await until(lambda: len(started) == 4)  # four workers, each waiting in a member
    reset(sock)
    first_gate.set()  # its reply cannot be written: the peer is gone
    await until(lambda: srv.connection_count == 0)


def test_batches_of_a_client_that_hung_up_stop_once_a_reply_fails() -> None:
    """10 batches of 300 calls, then close: the server runs about two of them (the sync server too)."""
    batches, members = 10, 300

    async def main() -> None:
        srv = aio.RPCServer(max_concurrent_calls=8)
        ran = 0

        @srv.register
        async def count(i: int) -> int:
            nonlocal ran
            ran += 1
            return i

        @srv.register
        async def add(a: int, b: int) -> int:
            return a + b

        async with serving(srv) as address:
            loop = asyncio.get_running_loop()
            sock = await raw_client(address)
            batch = line([request("count", [i], i) for i in range(members)])
            await loop.sock_sendall(sock, batch * batches)
            sock.close()  # a FIN: the first reply written draws the client's reset
            other = await aio.connect(*address, timeout=WAIT)
            assert await other.add(1, 2) == 3  # another client is served
            await until(lambda: srv.connection_count == 1 and srv.total_busy == 0)
            assert await other.add(2, 3) == 5
            await other.close()
            # The first batch's reply goes out; the second's fails, and nothing more is
            # taken (the old server ran all of them, every batch at once).
            assert members <= ran < batches * members // 2, ran

    run(main)


def test_a_batch_skips_its_requests_once_the_peer_is_gone_but_runs_its_notifications() -> None:
    async def main() -> None:
        srv = aio.RPCServer(max_concurrent_calls=4)
        first_gate, member_gate = asyncio.Event(), asyncio.Event()
        started: list[int] = []
        noted: list[int] = []

        @srv.register
        async def first() -> int:
            await first_gate.wait()
            return 1

        @srv.register
        async def member(i: int) -> int:
            started.append(i)
            await member_gate.wait()
            return i

        @srv.register
        async def note(i: int) -> None:
            noted.append(i)

        @srv.register
        async def add(a: int, b: int) -> int:
            return a + b

        async with serving(srv) as address:
            await batch_then_reset(srv, address, started, first_gate)
            other = await aio.connect(*address, timeout=WAIT)
            assert await other.add(1, 2) == 3  # another client is served
            member_gate.set()
            await until(lambda: srv.total_busy == 0)
            assert started == [1, 2, 3, 4]  # the requests after them were skipped
            assert noted == list(range(5, 51, 5))  # every notification ran
            assert await other.add(2, 3) == 5
            await other.close()

    run(main)


def test_queued_requests_of_a_client_that_reset_are_not_run() -> None:
    """Calls that wait are started one per loop iteration: the reset, read meanwhile, drops the rest."""
    calls = 40

    async def main() -> None:
        srv = aio.RPCServer(max_concurrent_calls=64)  # not at its limit: the server reads on
        gate = asyncio.Event()
        started = 0

        @srv.register
        async def slow() -> int:
            nonlocal started
            started += 1
            await gate.wait()
            return 1

        @srv.register
        async def add(a: int, b: int) -> int:
            return a + b

        async with serving(srv) as address:
            sock = await counted_raw_client(srv, address)
            await asyncio.get_running_loop().sock_sendall(
                sock, b"".join(line(request("slow", id_=i)) for i in range(calls))
            )
            reset(sock)
            await until(lambda: srv.connection_count == 0)
            other = await aio.connect(*address, timeout=WAIT)
            assert await other.add(1, 2) == 3
            gate.set()
            await until(lambda: srv.total_busy == 0)
            assert started < calls // 2, started  # (the old server started all 40)
            await other.close()

    run(main)


def test_a_slow_last_member_does_not_hold_back_a_call_sent_after_the_batch() -> None:
    """A batch gives back the slot of each worker that finds no member left."""

    async def main() -> None:
        srv = aio.RPCServer(max_concurrent_calls=4)
        gate = asyncio.Event()

        @srv.register
        async def slow() -> str:
            await gate.wait()
            return "slow"

        @srv.register
        async def add(a: int, b: int) -> int:
            return a + b

        async with serving(srv) as address:
            sock = await raw_client(address)
            reader, writer = await asyncio.open_connection(sock=sock)
            batch = [request("add", [i, 1], i) for i in range(7)] + [request("slow", id_=7)]
            writer.write(line(batch) + line(request("add", [1, 2], 99)))
            async with asyncio.timeout(WAIT):
                reply = json.loads(await reader.readline())
            assert reply == {"jsonrpc": "2.0", "id": 99, "result": 3}  # while the slow member runs
            gate.set()
            async with asyncio.timeout(WAIT):
                replies = json.loads(await reader.readline())
            assert sorted(r["id"] for r in replies) == list(range(8))
            writer.close()
            await writer.wait_closed()
            await until(lambda: srv.total_busy == 0)

    run(main)


def test_shutdown_during_a_batch_gives_back_its_slots() -> None:
    async def main() -> None:
        srv = aio.RPCServer(max_concurrent_calls=4, shutdown_grace=0.1)
        started: list[int] = []

        @srv.register
        async def wait(i: int) -> int:
            started.append(i)
            await asyncio.sleep(WAIT * 10)
            return i

        async with serving(srv) as address:
            client = await aio.connect(*address, timeout=WAIT)

            async def send() -> list[Any]:
                async with client.batch() as b:
                    results = [b.wait(i) for i in range(10)]
                return results

            sent = asyncio.create_task(send())
            await until(lambda: len(started) == 4)
            assert srv.total_busy == 4
        assert srv.total_busy == 0  # (shutdown cancelled the members)
        results = await sent
        with pytest.raises(aio.ConnectionLost):
            results[0].result()
        await client.close()

    run(main)


def test_a_batch_dropped_before_it_began_gives_back_all_its_slots() -> None:
    """The call runner cancelled before its first step (as shutdown may) drops the batch it was to run."""

    async def main() -> None:
        srv = aio.RPCServer(max_concurrent_calls=4)

        @srv.register
        async def add(a: int, b: int) -> int:
            return a + b

        conn = srv.protocol()
        conn.connection_made(CountingTransport())
        conn.data_received(line([request("add", [i, 1], i) for i in range(10)]))
        assert srv.total_busy == 4  # a slot for each of its four workers
        runner = srv._runner
        assert runner is not None and runner.task is not None
        runner.task.cancel()
        await until(lambda: runner.task is None)
        assert srv.total_busy == 0
        conn.connection_lost(None)

    run(main)
