"""aio.RPCServer: a client gone while the server is not reading from it (at its call limit).

At ``max_concurrent_calls`` the server stops reading the connection, so it cannot
see the peer's close or reset until it writes a reply; requests it had already
read wait, unstarted. When the calls running end, their replies go out in one
write: that write fails (a reset peer), or draws the reset (a closed one) so
that the next fails. From then on the waiting requests are skipped, as README
promises ("once a reply cannot reach it ... requests read but not yet started
are skipped"), not run for nobody: the old server ran them all, because it took
the next ones (the room the ended calls made) before the failed write's
``connection_lost`` arrived. The calls already running finish, and the
connection is released when they have.
"""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from _aio_support import WAIT, request, run, serving, until
from test_aio_gone_peer import raw_client
from test_aio_gone_peer_notify import CALLS, gone_after, line, slow_server

from jsonrpc_mini import aio

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.timeout(60),
]


@pytest.mark.parametrize("limit", [1, 2])  # 1: each reply written alone; 2: the two ended together in one write
@pytest.mark.parametrize("ending", ["reset", "close"])
def test_requests_held_at_the_call_limit_do_not_run_for_a_client_that_has_gone(ending: str, limit: int) -> None:
    async def main() -> None:
        srv, _, _ = slow_server(limit)

        @srv.register
        async def add(a: int, b: int) -> int:
            return a + b

        async with serving(srv) as address:
            payload = b"".join(line(request("slow", [i], id_=i)) for i in range(CALLS))
            await gone_after(srv, address, payload, limit, ending, 1)  # (the calls then end, unread)
            await until(lambda: srv.connection_count == 0 and srv.total_busy == 0)
            started = srv.started  # type: ignore[attr-defined]
            assert len(started) < CALLS // 2, started  # (the old server ran all 20)
            other = await aio.connect(*address, timeout=WAIT)  # the server still serves others
            assert await other.add(1, 2) == 3
            await other.close()

    run(main)


def test_a_client_that_only_half_closed_still_gets_every_reply() -> None:
    """The server cannot tell a half-close from a close until a reply fails: it answers all."""

    async def main() -> None:
        srv, _, _ = slow_server(2)
        gate: asyncio.Event = srv.gate  # type: ignore[attr-defined]
        started: list[int] = srv.started  # type: ignore[attr-defined]

        async with serving(srv) as address:
            loop = asyncio.get_running_loop()
            sock = await raw_client(address)
            await loop.sock_sendall(sock, b"".join(line(request("slow", [i], id_=i)) for i in range(CALLS)))
            await until(lambda: len(started) == 2)
            sock.shutdown(socket.SHUT_WR)
            gate.set()
            data = b""
            async with asyncio.timeout(WAIT):
                while chunk := await loop.sock_recv(sock, 1 << 16):
                    data += chunk
            sock.close()
            assert sorted(json.loads(reply)["result"] for reply in data.splitlines()) == list(range(CALLS))
            assert sorted(started) == list(range(CALLS))
            await until(lambda: srv.connection_count == 0)

    run(main)
