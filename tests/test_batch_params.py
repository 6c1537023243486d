"""A batch keeps a call's positional arguments as the tuple the call received.

``b.add(1, 2)`` queues ``(1, 2)``, not a list made from it (speed: fewer objects
for the garbage collector, see ``QueuedCalls``). What goes on the wire, what a
sender sees when it iterates the queued calls, and what the codec refuses must
all be exactly what a list gives.
"""

from __future__ import annotations

import gc
import json
import math
from typing import Any

import pytest
from _driver_helpers import CODEC_IDS, CODECS

from jsonrpc_mini import RPCClient
from jsonrpc_mini._batch import BatchBuilder, QueuedCalls
from jsonrpc_mini._client_protocol import ClientConnection
from jsonrpc_mini._codec import Notification, Request
from jsonrpc_mini._json import JsonCodec

pytestmark = pytest.mark.timeout(60)


class Answering:
    """A transport that records what the client sends and answers each request with its params."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self._inbox: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sent.append(data)
        members = json.loads(data)
        replies = [{"jsonrpc": "2.0", "id": m["id"], "result": m.get("params")} for m in members if "id" in m]
        self._inbox.append(json.dumps(replies).encode() + b"\n")

    def recv(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if not self._inbox:
            raise TimeoutError("nothing to answer")
        return self._inbox.pop(0)

    def close(self) -> None:
        pass


# Calls of every shape: positional only (the tuple kept), keywords, both, none;
# values only the stdlib can write (integers past 64 bits), nested tuples and lists,
# text that is not ASCII, floats, None as an argument.
CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("add", (1, 2), {}),
    ("big", (2**70, -(2**65)), {}),
    ("nested", ((1, (2, [3, (4,)])), [(), {"k": (5, 6)}]), {}),
    ("text", ("测试项", "\u00e9", ""), {}),
    ("floats", (1.5, -0.0, 1e300), {}),
    ("none", (None,), {}),
    ("kw", (), {"a": 1, "method": "x", "self": (1, 2)}),
    ("both", (1, 2), {"x": (3,)}),
    ("empty", (), {}),
]


def expected_params(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if kwargs:
        params = {str(i): arg for i, arg in enumerate(args)}
        params.update(kwargs)
        return params
    return list(args) if args else None


@pytest.mark.parametrize("use_orjson", CODECS, ids=CODEC_IDS)
def test_a_batch_writes_the_bytes_of_the_same_calls_made_with_lists(use_orjson: bool) -> None:
    codec = JsonCodec(use_orjson=use_orjson)
    transport = Answering()
    client = RPCClient(transport=transport)
    client._current.link.proto.codec = codec  # type: ignore[union-attr]
    with client.batch() as b:
        by_attribute = [getattr(b, name)(*args, **kwargs) for name, args, kwargs in CALLS]
        b.notify("note", 1, (2, 3))
        by_call = [b.call(name, *args, **kwargs) for name, args, kwargs in CALLS]
    (sent,) = transport.sent
    messages: list[Request | Notification] = [
        Request(name, expected_params(args, kwargs), i + 1) for i, (name, args, kwargs) in enumerate(CALLS)
    ]
    messages.append(Notification("note", [1, [2, 3]]))
    messages += [
        Request(name, expected_params(args, kwargs), len(CALLS) + i + 1) for i, (name, args, kwargs) in enumerate(CALLS)
    ]
    assert sent == ClientConnection(codec=codec).encode(messages)
    # Each member got its own params back (the answer is the params it sent).
    answers = [json.loads(json.dumps(expected_params(a, k))) for _, a, k in CALLS]
    assert [r.result() for r in by_attribute] == answers
    assert [r.result() for r in by_call] == answers


@pytest.mark.parametrize("use_orjson", CODECS, ids=CODEC_IDS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_float_among_positional_arguments_is_refused_and_nothing_is_sent(
    use_orjson: bool, bad: float
) -> None:
    transport = Answering()
    client = RPCClient(transport=transport)
    client._current.link.proto.codec = JsonCodec(use_orjson=use_orjson)  # type: ignore[union-attr]
    for args in [(bad,), (1, (2, [bad])), ((bad, 1),)]:
        with pytest.raises(ValueError), client.batch() as b:
            b.add(1, 2)
            b.add(*args)
        assert transport.sent == []
    with client.batch() as b:  # the connection is still usable
        ok = b.add(1, 2)
    assert ok.result() == [1, 2]


def test_iterating_the_queued_calls_gives_lists_for_positional_arguments() -> None:
    # What a sender (the asyncio client's, a custom one) sees: params as JSON has them.
    seen: list[Any] = []

    def sender(calls: QueuedCalls) -> list[Any]:
        seen.extend(calls)
        return [lambda: None for _, _, notify in seen if not notify]

    with BatchBuilder(sender) as b:
        b.add(1, 2)
        b.call("add", 3, (4, 5))
        b.add(x=1)
        b.ping()
        b.notify("log", "x")
    assert seen == [
        ("add", [1, 2], False),
        ("add", [3, (4, 5)], False),  # the arguments themselves are left as they were
        ("add", {"x": 1}, False),
        ("ping", None, False),
        ("log", ["x"], True),
    ]
    assert [type(params) for _, params, _ in seen] == [list, list, dict, type(None), list]


def test_queued_positional_arguments_of_plain_values_leave_the_garbage_collectors_care() -> None:
    # The reason for keeping the tuple: once collected, a tuple of plain values is
    # no longer tracked (a list always is), so later collections do not walk it.
    b = BatchBuilder(lambda calls: [])
    for i in range(100):
        b.add(i, "x")
        b.call("add", i, 1.5)
    queued = [entry._params for entry in b._queued.entries]
    gc.collect()
    assert len(queued) == 200
    assert not any(gc.is_tracked(params) for params in queued)
