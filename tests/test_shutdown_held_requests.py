"""Requests a server received but had not started when ``shutdown()`` began.

README ("Shutdown"): the calls in flight finish; a request the server
starts after the shutdown began, also one pipelined behind a running call and
already received, is answered with -32000 "the server is shutting down", not run.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from _aio_support import RawConn, run, until
from _aio_support import request as aio_request
from _driver_helpers import WAIT, raw_connect, request, serving, start_thread, wait_for

from jsonrpc_mini import RPCServer, aio


def _lines(*values: Any) -> bytes:
    """The values as newline JSON, in one piece (sent by one write)."""
    return b"".join(json.dumps(value).encode() + b"\n" for value in values)


SHUTTING_DOWN = {"code": -32000, "message": "Server error: the server is shutting down"}


def test_sync_server_refuses_a_request_held_behind_the_running_call() -> None:
    entered, release = threading.Event(), threading.Event()
    ran: list[str] = []
    s = RPCServer(max_concurrent_calls=1)

    @s.register
    def slow() -> str:
        entered.set()
        release.wait(WAIT)
        return "done"

    @s.register
    def later() -> str:
        ran.append("later")
        return "ran"

    with serving(s) as address:
        sock = raw_connect(address)
        # Both requests in one write: the second waits behind the first (limit 1).
        sock.sendall(request("slow", id_=1) + request("later", id_=2))
        assert entered.wait(WAIT)
        stopper = start_thread(s.shutdown)
        wait_for(lambda: s.address is None, "the shutdown to begin")
        release.set()
        assert sock.json_line() == {"jsonrpc": "2.0", "id": 1, "result": "done"}
        assert sock.json_line() == {"jsonrpc": "2.0", "id": 2, "error": SHUTTING_DOWN}
        stopper.join(WAIT)
        assert not stopper.is_alive()
        assert ran == []
        sock.close()


def test_aio_server_refuses_a_request_held_behind_the_running_call() -> None:
    async def main() -> None:
        srv = aio.RPCServer(max_concurrent_calls=1, shutdown_grace=WAIT)
        entered, release = asyncio.Event(), asyncio.Event()
        ran: list[str] = []

        async def slow() -> str:
            entered.set()
            await release.wait()
            return "done"

        def later() -> str:
            ran.append("later")
            return "ran"

        srv.register_function(slow, name="slow")
        srv.register_function(later, name="later")
        address = await srv.start("127.0.0.1", 0)
        raw = await RawConn.open(address)  # type: ignore[arg-type]
        await raw.send(_lines(aio_request("slow", id_=1), aio_request("later", id_=2)))
        await asyncio.wait_for(entered.wait(), WAIT)
        stopping = asyncio.create_task(srv.shutdown())
        await until(lambda: srv.address is None)
        release.set()
        assert await raw.recv() == {"jsonrpc": "2.0", "id": 1, "result": "done"}
        assert await raw.recv() == {"jsonrpc": "2.0", "id": 2, "error": SHUTTING_DOWN}
        await asyncio.wait_for(stopping, WAIT)
        assert ran == []
        await raw.close()

    run(main)
