"""aiorpcX (Python, asyncio, newline framing), both directions.

aiorpcX numbers requests from 0, writes ASCII-only JSON (every non-ASCII character as
a ``\\u`` escape), sends error objects without ``data``, needs a newline after every
message and drops messages over 1,000,000 bytes (its NewlineFramer's default).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import aiorpcx
import pytest
from _interop import WAIT, describe, notes_around_a_batch, slow_calls_from_threads, unicode_payload

from jsonrpc_mini import InvalidParams, MethodNotFound, RPCClient, ServerError, aio

pytestmark = pytest.mark.timeout(60)

# aiorpcX escapes non-ASCII (up to 12 bytes for an astral character): stay under its 1 MB frame limit.
PAYLOAD_SIZE = 50_000


def record_raw(session: aiorpcx.RPCSession) -> list[Any]:
    """Keep every message the session receives, decoded, to check ids exactly."""
    seen: list[Any] = []
    receive = session.connection.receive_message

    def spy(message: bytes) -> Any:
        seen.append(json.loads(message))
        return receive(message)

    session.connection.receive_message = spy
    return seen


def test_aiorpcx_client_to_our_server(our_server, methods):
    host, port = our_server
    payload = unicode_payload(PAYLOAD_SIZE)

    async def main() -> list[Any]:
        async with aiorpcx.connect_rs(host, port) as session:
            session.sent_request_timeout = WAIT
            seen = record_raw(session)
            assert await session.send_request("add", [1, 2]) == 3
            assert await session.send_request("subtract", {"minuend": 10, "subtrahend": 3}) == 7
            assert await session.send_request("nothing") is None
            with pytest.raises(aiorpcx.RPCError) as not_found:
                await session.send_request("nope")
            assert (not_found.value.code, not_found.value.message) == (-32601, "Method not found: 'nope'")
            with pytest.raises(aiorpcx.RPCError) as custom:
                await session.send_request("fail")
            assert (custom.value.code, custom.value.message) == (-32001, "custom failure")
            with pytest.raises(aiorpcx.RPCError) as bad:
                await session.send_request("add", [1])
            assert bad.value.code == -32602
            await session.send_notification("record", ["note"])
            async with session.send_batch() as batch:
                batch.add_request("add", [5, 6])
                batch.add_notification("record", ["batch-note"])
                batch.add_request("nope")
                batch.add_request("echo", {"value": "named"})
            assert batch.results[0] == 11
            assert isinstance(batch.results[1], aiorpcx.RPCError)
            assert batch.results[1].code == -32601
            assert batch.results[2] == "named"
            assert await session.send_request("echo", [payload]) == payload
            assert await session.send_request("describe", [payload]) == describe(payload)
            results = await asyncio.gather(*(session.send_request("add", [i, 1000]) for i in range(20)))
            assert results == [i + 1000 for i in range(20)]
            return seen

    seen = asyncio.run(main())
    # aiorpcX numbers requests 0, 1, 2, ...; every reply carries its request's id.
    singles = [m for m in seen if isinstance(m, dict)]
    batches = [m for m in seen if isinstance(m, list)]
    assert [m["id"] for m in singles[:6]] == [0, 1, 2, 3, 4, 5]
    assert singles[0] == {"jsonrpc": "2.0", "id": 0, "result": 3}
    assert singles[3] == {"jsonrpc": "2.0", "id": 3, "error": {"code": -32601, "message": "Method not found: 'nope'"}}
    assert len(batches) == 1
    assert sorted(m["id"] for m in batches[0]) == [6, 7, 8]
    assert sorted(m["id"] for m in singles[6:]) == list(range(9, 9 + 2 + 20))
    assert sorted(methods.wait_records(2)) == ["batch-note", "note"]


# --- our client -> an aiorpcX server --------------------------------------------


async def _add(a: int, b: int) -> int:
    return a + b


async def _subtract(minuend: int, subtrahend: int) -> int:
    return minuend - subtrahend


async def _echo(value: Any) -> Any:
    return value


async def _describe(value: str) -> list[Any]:
    return describe(value)


async def _fail() -> None:
    raise aiorpcx.RPCError(-32001, "custom failure")


async def _slow(value: Any, ms: int) -> Any:
    await asyncio.sleep(ms / 1000)
    return value


class _Session(aiorpcx.RPCSession):
    records: list[Any]

    async def handle_request(self, request: Any) -> Any:
        handlers = {
            "add": _add,
            "subtract": _subtract,
            "echo": _echo,
            "describe": _describe,
            "fail": _fail,
            "slow": _slow,
            "record": self._record,
            "records": self._records,
        }
        return await aiorpcx.handler_invocation(handlers.get(request.method), request)()

    async def _record(self, value: Any) -> None:
        self.records.append(value)

    async def _records(self) -> list[Any]:
        return list(self.records)


@pytest.fixture
def aiorpcx_server() -> Iterator[tuple[str, int]]:
    """An aiorpcX server on its own event loop thread; stopped and joined after."""
    loop = asyncio.new_event_loop()
    records: list[Any] = []

    def factory(*args: Any, **kwargs: Any) -> _Session:
        session = _Session(*args, **kwargs)
        session.records = records
        return session

    server = loop.run_until_complete(aiorpcx.serve_rs(factory, "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, name="aiorpcx-server", daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", port
    finally:

        async def stop() -> None:
            server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 5)

        asyncio.run_coroutine_threadsafe(stop(), loop).result(WAIT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT)
        assert not thread.is_alive(), "the aiorpcX event loop did not stop"
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()


def test_our_client_to_aiorpcx_server(aiorpcx_server):
    payload = unicode_payload(PAYLOAD_SIZE)
    with RPCClient(*aiorpcx_server, timeout=WAIT) as c:
        assert c.add(1, 2) == 3
        assert c.subtract(minuend=10, subtrahend=3) == 7
        assert c.echo(None) is None
        with pytest.raises(MethodNotFound) as not_found:
            c.nope()
        assert (not_found.value.code, not_found.value.message) == (-32601, 'unknown method "nope"')
        with pytest.raises(ServerError) as custom:
            c.fail()
        assert (custom.value.code, custom.value.message, custom.value.data) == (-32001, "custom failure", None)
        with pytest.raises(InvalidParams) as bad:
            c.add(1)
        assert bad.value.code == -32602
        # aiorpcX does not know the digit-key convention for mixed arguments.
        with pytest.raises(InvalidParams):
            c.echo("x", extra=1)
        assert sorted(notes_around_a_batch(c)) == ["one", "two"]
        assert c.echo(payload) == payload
        assert c.describe(payload) == describe(payload)
        assert slow_calls_from_threads(c, 60, 3) == {i: i for i in range(16)}


def test_aio_client_to_aiorpcx_server(aiorpcx_server):
    payload = unicode_payload(PAYLOAD_SIZE)

    async def main() -> None:
        async with await aio.connect(*aiorpcx_server, timeout=WAIT) as c:
            assert await c.add(1, 2) == 3
            assert await c.subtract(minuend=10, subtrahend=3) == 7
            with pytest.raises(MethodNotFound) as not_found:
                await c.nope()
            assert not_found.value.message == 'unknown method "nope"'
            with pytest.raises(ServerError) as custom:
                await c.fail()
            assert (custom.value.code, custom.value.data) == (-32001, None)
            async with c.batch() as b:
                first = b.add(3, 4)
                b.notify("record", "in-batch")
            assert first.result() == 7
            await c.notify("record", "plain")
            assert sorted(await c.records()) == ["in-batch", "plain"]
            assert await c.echo(payload) == payload
            assert await asyncio.gather(*(c.slow(i, 60 - 3 * i) for i in range(16))) == list(range(16))

    asyncio.run(main())
