"""aio.RPCServer: notifications a gone client sent while the server was not reading run.

API.md: "A notification is executed even when its sender closes the connection right
after." At ``max_concurrent_calls`` the server pauses reading: notifications sent
behind the calls running wait in the socket. When the client resets (or closes, and
the first reply draws the reset), the reply's write fails and asyncio closes the
socket after ``connection_lost``; the server used to drop what was still in it (60 of
60 notifications lost after a reset at limits 1-3). Now it reads them first
(``_aio_ending.unread_bytes``) and runs them, skipping requests, as the ones it had
read (``test_aio_gone_peer_notify``). The sync server does the same
(``test_session_notes_at_limit``).
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest
from _aio_support import run, serving, until
from test_aio_gone_peer import raw_client, reset

from jsonrpc_mini import aio
from jsonrpc_mini._aio_ending import unread_bytes

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.timeout(60),
]

CLIENTS = 5
NOTES = 3


def _line(method: str, i: int, id_: int | None = None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": [i]}
    if id_ is not None:
        message["id"] = id_
    return json.dumps(message).encode() + b"\n"


@pytest.mark.parametrize("ending", ["reset", "close"])
@pytest.mark.parametrize("limit", [1, 2, 3])
def test_notifications_sent_behind_calls_at_the_limit_run_when_the_client_goes(limit: int, ending: str) -> None:
    async def main() -> None:
        srv = aio.RPCServer(max_concurrent_calls=limit)
        gate = asyncio.Event()
        started: list[int] = []
        noted: list[int] = []
        later: list[int] = []

        @srv.register
        async def hold(i: int) -> int:
            started.append(i)
            await gate.wait()
            return i

        @srv.register
        def note(i: int) -> None:
            noted.append(i)

        @srv.register
        def late(i: int) -> int:
            later.append(i)
            return i

        loop = asyncio.get_running_loop()
        async with serving(srv) as address:
            for client in range(CLIENTS):
                gate.clear()
                started.clear()
                sock = await raw_client(address)
                await loop.sock_sendall(sock, b"".join(_line("hold", i, i) for i in range(limit)))
                await until(lambda: len(started) == limit)  # at the limit: reading paused
                notes = b"".join(_line("note", client * NOTES + k) for k in range(NOTES))
                await loop.sock_sendall(sock, notes + _line("late", client, 99))
                for _ in range(20):  # (the server reads nothing meanwhile)
                    await asyncio.sleep(0)
                assert len(noted) == client * NOTES, "the server read past its call limit"
                if ending == "reset":
                    reset(sock)
                else:
                    sock.close()
                gate.set()  # the replies now meet a gone client
                want = (client + 1) * NOTES
                await until(lambda: len(noted) == want)  # noqa: B023 (awaited here, in this round)
                await until(lambda: srv.connection_count == 0 and srv.total_busy == 0 and not srv._orphans)
        assert sorted(noted) == list(range(CLIENTS * NOTES)), "a notification ran twice, or was lost"
        if ending == "reset":  # (after a close the first reply goes out and draws the reset: reading resumes)
            assert later == [], "a request of a gone client ran"

    run(main)


class _Transport(asyncio.Transport):
    def __init__(self, extra: dict[str, Any]) -> None:
        super().__init__(extra)


def test_unread_bytes_reads_only_a_plain_socket_and_never_waits() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        b.sendall(b"x" * 10_000)
        assert unread_bytes(_Transport({"socket": a, "sslcontext": object()}), 1 << 20) == b""  # TLS: records
        assert unread_bytes(_Transport({}), 1 << 20) == b""  # no socket (a memory link)
        assert unread_bytes(None, 1 << 20) == b""
        assert unread_bytes(_Transport({"socket": a}), 4096) == b"x" * 10_000  # (whole reads, past the limit)
        assert unread_bytes(_Transport({"socket": a}), 1 << 20) == b""  # nothing left: no wait
        b.sendall(b"y" * 5)
        b.close()
        assert unread_bytes(_Transport({"socket": a}), 1 << 20) == b"y" * 5  # then the end
