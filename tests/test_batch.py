"""Client-side batches: BatchBuilder with a fake sender, then over the sans-IO core."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from jsonrpc_mini._batch import BatchBuilder, BatchResult
from jsonrpc_mini._client_protocol import ClientConnection
from jsonrpc_mini._codec import ErrorResponse, Notification, Params, Request, Response
from jsonrpc_mini._dispatch import Registry, outcome_response
from jsonrpc_mini._errors import InvalidParams, MethodNotFound, RPCError, error_from_response
from jsonrpc_mini._protocol import Batch, Closed, ServerConnection

Calls = list[tuple[str, Params, bool]]


class FakeSender:
    """Records what would be sent; answers each request with a scripted outcome."""

    def __init__(self, answers: list[Callable[[], Any]] | None = None) -> None:
        self.sent: list[Calls] = []
        self.answers = answers

    def __call__(self, calls: Calls) -> list[Callable[[], Any]]:
        self.sent.append(list(calls))
        if self.answers is not None:
            return self.answers
        return [lambda name=name, params=params: (name, params) for name, params, notify in calls if not notify]


def raises(exc: BaseException) -> Callable[[], Any]:
    def outcome() -> Any:
        raise exc

    return outcome


def test_calls_and_notifications_are_sent_as_one_batch_on_exit() -> None:
    sender = FakeSender()
    with BatchBuilder(sender) as b:
        r1 = b.add(1, 2)
        b.notify("log", "x")
        r2 = b.call("test", "测试项", kw1="1")
        r3 = b.calc.mul(a=2, b=3)
        b.notify("ping")
        assert len(b) == 5
        assert sender.sent == []  # nothing goes out before the block ends
        with pytest.raises(RPCError, match="add: the batch has not been sent yet"):
            r1.result()
    assert sender.sent == [
        [
            ("add", [1, 2], False),
            ("log", ["x"], True),
            ("test", {"0": "测试项", "kw1": "1"}, False),
            ("calc.mul", {"a": 2, "b": 3}, False),
            ("ping", None, True),
        ]
    ]
    assert r1.result() == ("add", [1, 2])
    assert r2.result() == ("test", {"0": "测试项", "kw1": "1"})
    assert r3.result() == ("calc.mul", {"a": 2, "b": 3})
    assert (r1.method, r2.method, r3.method) == ("add", "test", "calc.mul")


def test_each_result_raises_its_own_error() -> None:
    boom = MethodNotFound("Method not found")
    sender = FakeSender([lambda: 1, raises(boom), lambda: None])
    with BatchBuilder(sender) as b:
        ok, bad, none = b.a(), b.missing(), b.c()
    assert ok.result() == 1
    with pytest.raises(MethodNotFound) as info:
        bad.result()
    assert info.value is boom
    assert none.result() is None
    # Calling result() again gives the same answer.
    assert ok.result() == 1
    with pytest.raises(MethodNotFound):
        bad.result()


def test_keyword_names_pass_through_and_method_is_positional_only() -> None:
    sender = FakeSender()
    with BatchBuilder(sender) as b:
        b.call("m", method="x", self="y")
        b.notify("n", method=1)
        b.call("call")
        b.close()
        b.notify("notify")
    assert sender.sent[0] == [
        ("m", {"method": "x", "self": "y"}, False),
        ("n", {"method": 1}, True),
        ("call", None, False),
        ("close", None, False),
        ("notify", None, True),
    ]


def test_private_names_are_not_remote_calls() -> None:
    b = BatchBuilder(FakeSender())
    with pytest.raises(AttributeError):
        b._secret  # noqa: B018
    with pytest.raises(AttributeError):
        b.calc._private  # noqa: B018
    assert len(b) == 0


def test_an_exception_in_the_block_sends_nothing() -> None:
    sender = FakeSender()
    with pytest.raises(ZeroDivisionError), BatchBuilder(sender) as b:
        r = b.add(1, 2)
        1 / 0  # noqa: B018
    assert sender.sent == []
    with pytest.raises(RPCError, match=r"^add: the batch was not sent: its with block raised ZeroDivisionError$"):
        r.result()


def test_an_empty_batch_sends_nothing() -> None:
    sender = FakeSender()
    with BatchBuilder(sender) as b:
        pass
    assert sender.sent == []
    with pytest.raises(RPCError, match="already sent"):
        b.send()


def test_a_sent_batch_is_closed() -> None:
    sender = FakeSender()
    b = BatchBuilder(sender)
    r = b.add(1)
    assert repr(r) == "<BatchResult 'add' pending>"
    assert b.send() == [r]
    assert repr(r) == "<BatchResult 'add' ready>"
    for late in (lambda: b.add(2), lambda: b.call("x"), lambda: b.notify("y"), b.send):
        with pytest.raises(RPCError, match="already sent; start a new one"):
            late()
    assert len(sender.sent) == 1


def test_argument_collisions_fail_when_queued() -> None:
    b = BatchBuilder(FakeSender())
    with pytest.raises(TypeError, match="collides"):
        b.call("m", 1, **{"0": 2})
    assert len(b) == 0


def test_a_sender_answering_the_wrong_number_of_calls_is_an_error() -> None:
    b = BatchBuilder(FakeSender([lambda: 1]))
    b.a()
    b.b()
    with pytest.raises(ValueError):
        b.send()


def test_result_type() -> None:
    assert isinstance(BatchBuilder(FakeSender()).x(), BatchResult)


# -- over the sans-IO core: client bytes -> server -> client events ---------------


def test_batch_over_the_core() -> None:
    registry = Registry()
    logged: list[Any] = []

    @registry.register
    def add(a: int, b: int) -> int:
        return a + b

    @registry.register
    def log(x: Any) -> None:
        logged.append(x)

    @registry.register
    def picky(x: int) -> int:
        if x < 0:
            raise InvalidParams("x must be >= 0", {"x": x})
        return x

    client = ClientConnection()
    wire: list[bytes] = []

    def send(calls: Calls) -> list[Callable[[], Any]]:
        messages: list[Request | Notification] = [
            Notification(m, p) if note else Request(m, p, client.next_id()) for m, p, note in calls
        ]
        server = ServerConnection()
        server.receive_data(client.encode(messages))
        event = server.next_event()
        assert isinstance(event, Batch)
        replies = []
        for item in event.items:
            assert not isinstance(item, ErrorResponse)
            try:
                result = registry.prepare(item).run()
            except Exception as exc:
                replies.append(outcome_response(item, exc=exc))
            else:
                replies.append(outcome_response(item, result))
        out = server.encode_batch(replies)
        by_id: dict[Any, Any] = {}
        if out is not None:
            wire.append(out)
            client.receive_data(out)
            while (reply := client.next_event()) is not None:
                assert not isinstance(reply, Closed)
                by_id[reply.id] = reply  # type: ignore[union-attr]
        outcomes: list[Callable[[], Any]] = []
        for message in messages:
            if isinstance(message, Request):
                reply = by_id[message.id]
                if isinstance(reply, Response):
                    outcomes.append(lambda r=reply: r.result)
                else:
                    err = error_from_response(reply.error.code, reply.error.message, reply.error.data, message.method)
                    outcomes.append(raises(err))
        return outcomes

    with BatchBuilder(send) as b:
        total = b.add(1, 2)
        b.notify("log", "x")
        bad = b.picky(-1)
        missing = b.nope()
        kw = b.add(a=1, b=5)
    assert total.result() == 3
    assert kw.result() == 6
    with pytest.raises(InvalidParams) as info:
        bad.result()
    assert (info.value.data, str(info.value)) == ({"x": -1}, "picky: [-32602] x must be >= 0")
    with pytest.raises(MethodNotFound, match=r"nope: \[-32601\]"):
        missing.result()
    assert logged == ["x"]
    assert len(wire) == 1

    # A batch of notifications only: they run, and no bytes come back at all.
    with BatchBuilder(send) as b:
        b.notify("log", "y")
        b.notify("log", "z")
        b.notify("nope")
    assert logged == ["x", "y", "z"]
    assert len(wire) == 1
