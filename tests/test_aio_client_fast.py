"""aio.RPCClient's attribute calls call exactly what ``call`` calls.

Invariant: an attribute call, the first time or any later time, sends the same
request as ``client.call(name, ...)``; the client's own names and private names are
never remote methods; a view made by ``with_timeout`` calls with its own timeout;
nothing is kept on the client (a kept method would tie the client into a reference
cycle, and a dropped client would hold its connection until the garbage collector ran).
"""

from __future__ import annotations

import asyncio
import gc
import json
import weakref
from typing import Any

import pytest
from _aio_support import run
from hypothesis import given, settings
from hypothesis import strategies as st

from jsonrpc_mini import aio
from jsonrpc_mini._aio_link import Link
from jsonrpc_mini._codec import build_params
from jsonrpc_mini._protocol import ClientConnection
from jsonrpc_mini.testing import strategies as rpc_st

pytestmark = [pytest.mark.timeout(120)]

OWN = ("call", "notify", "batch", "connect", "close", "with_timeout")


class Writes(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.data = b""
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.data += bytes(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True


def client_on(transport: Writes, timeout: float | None = None) -> aio.RPCClient:
    link = Link(ClientConnection(framing="newline"))
    link.connection_made(transport)
    return aio.RPCClient(link, timeout=timeout)


def sent(transport: Writes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in transport.data.splitlines()]


def settle_all(client: aio.RPCClient, calls: list[Any]) -> None:
    client._link.fail_all("test over")
    for call in calls:
        call.exception()  # retrieved: nobody awaits them


dotted = st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True), min_size=1, max_size=3).filter(
    lambda parts: parts[0] not in OWN
)


@settings(max_examples=60, deadline=None)
@given(names=st.lists(dotted, min_size=1, max_size=6), args=rpc_st.arguments(max_args=3))
def test_attribute_calls_send_what_call_sends(names: list[list[str]], args: rpc_st.Arguments) -> None:
    async def main() -> None:
        by_attribute, by_call = Writes(), Writes()
        a, b = client_on(by_attribute), client_on(by_call)
        calls = []
        for parts in names * 2:  # each name twice: made by __getattr__, then kept
            target: Any = a
            for part in parts:
                target = getattr(target, part)
            calls.append(target(*args.args, **args.kwargs))
            calls.append(b.call(".".join(parts), *args.args, **args.kwargs))
        await asyncio.sleep(0)
        assert by_attribute.data and by_attribute.data == by_call.data
        assert [m["method"] for m in sent(by_attribute)] == [".".join(parts) for parts in names * 2]
        settle_all(a, calls[::2])
        settle_all(b, calls[1::2])

    run(main)


def test_attribute_methods_call_through_their_own_client_and_are_not_kept() -> None:
    async def main() -> None:
        transport = Writes()
        client = client_on(transport)
        view = client.with_timeout(0.5)
        calls = [view.add(1), client.add(2), view.add(3)]
        assert [call.timeout for call in calls] == [0.5, None, 0.5]
        assert not [name for name in vars(client) if not name.startswith("_")]
        with pytest.raises(AttributeError):
            _ = client._private
        await asyncio.sleep(0)
        assert [m["method"] for m in sent(transport)] == ["add", "add", "add"]
        settle_all(client, calls)

    run(main)


def test_a_dropped_client_is_freed_without_the_garbage_collector() -> None:
    async def main() -> None:
        transport = Writes()
        client = client_on(transport)
        calls = [client.add(1), client.add(2)]
        settle_all(client, calls)
        freed = weakref.ref(client)
        del client, calls
        assert freed() is None, "a reference cycle keeps the client alive"

    gc.disable()
    try:
        run(main)
    finally:
        gc.enable()


@settings(max_examples=80, deadline=None)
@given(
    calls=st.lists(st.tuples(rpc_st.method_names(), rpc_st.arguments(max_args=3)), min_size=1, max_size=5),
    framing=st.sampled_from(["newline", "content-length"]),
)
def test_requests_are_the_bytes_the_core_encodes(calls: list[tuple[str, rpc_st.Arguments]], framing: str) -> None:
    """The client's own encoding of a request is byte for byte ``ClientConnection.encode_request``."""

    async def main() -> None:
        transport = Writes()
        link = Link(ClientConnection(framing=framing))  # type: ignore[arg-type]
        link.connection_made(transport)
        client = aio.RPCClient(link)
        reference = ClientConnection(framing=framing)  # type: ignore[arg-type]
        expected = b""
        futures = []
        for method, args in calls:
            futures.append(client.call(method, *args.args, **args.kwargs))
            expected += reference.encode_request(method, build_params(args.args, args.kwargs), reference.next_id())
        await asyncio.sleep(0)
        assert transport.data == expected
        settle_all(client, futures)

    run(main)


@pytest.mark.parametrize("bad", [float("nan"), {1, 2}, object()])
def test_arguments_that_are_not_json_raise_and_send_nothing(bad: Any) -> None:
    async def main() -> None:
        transport = Writes()
        client = client_on(transport)
        with pytest.raises((TypeError, ValueError)):
            client.add(bad)
        assert client._link.pending == {}
        good = client.add(1)  # the client is still usable
        await asyncio.sleep(0)
        assert sent(transport) == [{"jsonrpc": "2.0", "method": "add", "params": [1], "id": 2}]
        settle_all(client, [good])

    run(main)
