"""aio.RPCClient's attribute calls call exactly what ``call`` calls.

Invariant: an attribute call, the first time or any later time, sends the same
request as ``client.call(name, ...)``; the client's own names and private names are
never remote methods; a view made by ``with_timeout`` calls with its own timeout;
what is kept on the client (attribute methods, a bounded number) never refers to the
client (that would tie the client into a reference cycle, and a dropped client would
hold its connection until the garbage collector ran); a subclass's own ``call`` sees
every attribute call.
"""

from __future__ import annotations

import asyncio
import gc
import json
import weakref
from typing import Any

import pytest
from _aio_support import OneLoop, Writes, run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jsonrpc_mini import aio
from jsonrpc_mini._aio_link import Link
from jsonrpc_mini._client_protocol import ClientConnection
from jsonrpc_mini._codec import build_params
from jsonrpc_mini.testing import strategies as rpc_st

pytestmark = [pytest.mark.timeout(120)]

OWN = ("call", "notify", "batch", "connect", "close", "with_timeout")


class Closes(Writes):
    """A Writes whose close() ends the connection an iteration later, as a real transport's does.

    (With Writes, ``RPCClient.close`` waits out its 5 s flush bound for a
    ``connection_lost`` that never comes.)
    """

    def __init__(self) -> None:
        super().__init__()
        self.protocol: Link | None = None

    def close(self) -> None:
        if not self.closing and self.protocol is not None:
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)
        super().close()


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


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(dotted, min_size=1, max_size=6), args=rpc_st.arguments(max_args=3))
def test_attribute_calls_send_what_call_sends(
    one_loop: OneLoop, names: list[list[str]], args: rpc_st.Arguments
) -> None:
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

    one_loop.run(main)


def test_attribute_methods_call_through_their_own_client_and_keep_no_reference_to_it() -> None:
    async def main() -> None:
        transport = Writes()
        client = client_on(transport)
        view = client.with_timeout(0.5)
        calls = [view.add(1), client.add(2), view.add(3), client.add(4)]
        assert [call.timeout for call in calls] == [0.5, None, 0.5, None]
        assert client.add is client.add and view.add is view.add  # kept after the first lookup
        assert client.add is not view.add
        kept = [value for name, value in vars(client).items() if not name.startswith("_")]
        assert kept == [client.add]
        assert not any(referent is client for value in kept for referent in gc.get_referents(value))
        with pytest.raises(AttributeError):
            _ = client._private
        with pytest.raises(AttributeError):
            _ = client.add._private
        assert repr(client.add.sub) == "<remote method 'add.sub'>"
        await asyncio.sleep(0)
        assert [m["method"] for m in sent(transport)] == ["add", "add", "add", "add"]
        settle_all(client, calls)

    run(main)


def test_kept_methods_are_bounded_and_fail_once_the_client_is_closed() -> None:
    async def main() -> None:
        transport = Closes()
        client = client_on(transport)
        transport.protocol = client._link
        methods = [getattr(client, f"m{i}") for i in range(200)]
        assert len(vars(client)) <= 64
        assert client.m199 is not methods[199]  # not kept: a fresh one, same target
        calls = [methods[0](1), methods[199](2)]
        await asyncio.sleep(0)
        assert [m["method"] for m in sent(transport)] == ["m0", "m199"]
        settle_all(client, calls)
        await client.close()
        with pytest.raises(aio.ConnectionLost):
            client.m0(1)
        with pytest.raises(aio.ConnectionLost):
            methods[0](1)

    run(main)


def test_a_subclass_call_sees_attribute_calls() -> None:
    class Logged(aio.RPCClient):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.seen: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

        def call(self, method: str, /, *args: Any, **kwargs: Any) -> aio.Call:
            self.seen.append((method, args, kwargs))
            return super().call(method, *args, **kwargs)

    async def main() -> None:
        transport = Writes()
        link = Link(ClientConnection(framing="newline"))
        link.connection_made(transport)
        client = Logged(link)
        calls = [client.add(1, 2), client.add(3, k=4), client.a.b()]
        assert client.seen == [("add", (1, 2), {}), ("add", (3,), {"k": 4}), ("a.b", (), {})]
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


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    calls=st.lists(st.tuples(rpc_st.method_names(), rpc_st.arguments(max_args=3)), min_size=1, max_size=5),
    framing=st.sampled_from(["newline", "content-length"]),
)
def test_requests_are_the_bytes_the_core_encodes(
    one_loop: OneLoop, calls: list[tuple[str, rpc_st.Arguments]], framing: str
) -> None:
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

    one_loop.run(main)


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


def test_a_call_made_by_the_caller_works_as_a_coroutine() -> None:
    # aio.Call is public: one not made by the client has no coroutine state yet.
    async def main() -> None:
        call = aio.Call()
        task = asyncio.create_task(call)  # type: ignore[arg-type]
        await asyncio.sleep(0)
        call.set_result(5)
        assert await task == 5
        aio.Call().close()  # nothing to close: no error

    run(main)
