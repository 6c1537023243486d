"""A request read as one compact line is answered as the framer's path answers it.

The asyncio server takes the usual request (``{"jsonrpc", "method", "params": [...],
"id"}`` on one line, read alone) as its JSON object, a *plain call*, and makes a
Request of it only where one is needed (``_aio_calls``). Invariant: for every way a
call can end (a result, an error raised, a result that is not JSON, an awaitable
returned, a missing method, bad params, a refusal while shutting down), with async,
inline and thread-pool handlers, the reply bytes are those the same request gets
when it goes through the framer (a leading space keeps it off the one-line path).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from _aio_support import run, until
from test_aio_runner import CountingTransport

from jsonrpc_mini import RPCError, aio
from jsonrpc_mini._aio_calls import CallingProtocol
from jsonrpc_mini._codec import Notification

pytestmark = [pytest.mark.filterwarnings("error::ResourceWarning"), pytest.mark.timeout(60)]

FIRST = b'{"jsonrpc":"2.0","method":"add","params":[1,2],"id":0}\n'  # picks the framing


def make_server(kind: str) -> aio.RPCServer:
    """``kind``: "async" handlers, plain ones run "inline" or in the thread "pool"."""
    srv = aio.RPCServer(run_sync_in_thread=kind == "pool")

    def add(a: int, b: int) -> int:
        return a + b

    def fail(code: int) -> Any:
        if code:
            raise RPCError(code, "custom", {"code": code})
        raise ValueError("boom")

    def opaque() -> Any:
        return object()  # not JSON: -32603

    async def add_async(a: int, b: int) -> int:
        return add(a, b)

    def later(a: int) -> Any:
        return add_async(a, 1)  # an awaitable result: awaited, then answered

    if kind == "async":

        async def fail_async(code: int) -> Any:
            return fail(code)

        async def opaque_async() -> Any:
            return opaque()

        async def later_async(a: int) -> Any:
            return later(a)

        srv.register_function(add_async, name="add")
        srv.register_function(fail_async, name="fail")
        srv.register_function(opaque_async, name="opaque")
        srv.register_function(later_async, name="later")
    else:
        srv.register_function(add)
        srv.register_function(fail)
        srv.register_function(opaque)
        srv.register_function(later)
    return srv


async def answer(srv: aio.RPCServer, line: bytes, draining: bool) -> list[bytes]:
    """The replies to ``line``, read alone by a connection that already took one call."""
    conn = srv.protocol()
    assert isinstance(conn, CallingProtocol)
    transport = CountingTransport()
    conn.connection_made(transport)
    try:
        conn.data_received(FIRST)
        await until(lambda: not conn.busy)
        await asyncio.sleep(0)
        assert transport.writes == [b'{"jsonrpc":"2.0","id":0,"result":3}\n']
        transport.writes.clear()
        if draining:
            conn.drain()  # (what shutdown() does to every connection first)
        conn.data_received(line)
        await until(lambda: not conn.busy)
        for _ in range(3):  # (replies joined for one write go out an iteration later)
            await asyncio.sleep(0)
        return transport.writes
    finally:
        conn.connection_lost(None)
        await srv.shutdown()  # (the thread pool, if one was made)


CASES = [
    b'{"jsonrpc":"2.0","method":"add","params":[2,3],"id":7}\n',
    b'{"jsonrpc":"2.0","method":"add","params":[2,3],"id":"x-1"}\n',
    b'{"jsonrpc":"2.0","method":"fail","params":[0],"id":8}\n',
    b'{"jsonrpc":"2.0","method":"fail","params":[-32050],"id":9}\n',
    b'{"jsonrpc":"2.0","method":"opaque","params":[],"id":10}\n',
    b'{"jsonrpc":"2.0","method":"later","params":[4],"id":11}\n',
    b'{"jsonrpc":"2.0","method":"missing","params":[],"id":12}\n',
    b'{"jsonrpc":"2.0","method":"add","params":[1],"id":13}\n',
    b'{"jsonrpc":"2.0","method":"add","params":[1,2]}\n',
]


@pytest.mark.parametrize("draining", [False, True])
@pytest.mark.parametrize("kind", ["async", "inline", "pool"])
@pytest.mark.parametrize("line", CASES)
def test_one_line_gets_the_framers_reply(kind: str, line: bytes, draining: bool, monkeypatch: Any) -> None:
    request = b'"id"' in line
    taken: list[type] = []
    call = CallingProtocol._call

    def spy(self: CallingProtocol, message: Any) -> None:
        taken.append(type(message))
        call(self, message)

    monkeypatch.setattr(CallingProtocol, "_call", spy)
    fast = run(lambda: answer(make_server(kind), line, draining))
    assert taken[-1] is (dict if request else Notification)  # the one-line path took it
    slow = run(lambda: answer(make_server(kind), b" " + line, draining))
    assert taken[-1] is not dict  # the framer's path took it
    assert fast == slow
    assert len(fast) == request  # a reply to every request, none to the notification
    if draining and request:
        assert b"shutting down" in fast[0]
    elif b"[2,3]" in line:
        assert fast == [b'{"jsonrpc":"2.0","id":%s,"result":5}\n' % line.split(b'"id":')[1][:-2]]
