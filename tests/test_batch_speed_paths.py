"""The fast paths of batches behave exactly as the general ones.

Client: methods a builder hands out (``b.add``) are kept on it and queue directly.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from typing import Any

import pytest

from jsonrpc_mini._batch import BatchBuilder
from jsonrpc_mini._codec import Params
from jsonrpc_mini._errors import RPCError

pytestmark = pytest.mark.timeout(60)

Calls = list[tuple[str, Params, bool]]


class Recorder:
    """A batch sender that records the calls and answers each request with its name and params."""

    def __init__(self) -> None:
        self.sent: list[Calls] = []

    def __call__(self, calls: Calls) -> list[Callable[[], Any]]:
        self.sent.append(list(calls))
        return [lambda n=n, p=p: (n, p) for n, p, notify in calls if not notify]


# -- client: queueing ---------------------------------------------------------------

SHAPES: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((), {}),
    ((1, 2), {}),
    ((None,), {}),
    (([1], {"a": 1}), {}),
    ((), {"a": 1, "method": "x", "self": "y"}),
    (("测试项",), {"kw1": "1"}),
    ((1, 2), {"x": 3}),
]


@pytest.mark.parametrize(("args", "kwargs"), SHAPES)
def test_an_attribute_call_queues_what_call_queues(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    by_attribute, by_call = Recorder(), Recorder()
    with BatchBuilder(by_attribute) as b:
        first = b.m(*args, **kwargs)
        second = b.m(*args, **kwargs)  # the method kept from the first lookup
        dotted = b.calc.m(*args, **kwargs)
        b.notify("n", *args, **kwargs)
    with BatchBuilder(by_call) as b:
        b.call("m", *args, **kwargs)
        b.call("m", *args, **kwargs)
        b.call("calc.m", *args, **kwargs)
        b.notify("n", *args, **kwargs)
    assert by_attribute.sent == by_call.sent
    assert [r.method for r in (first, second, dotted)] == ["m", "m", "calc.m"]
    assert first.result() == second.result() == by_call.sent[0][0][:2]
    assert first is not second


def test_a_collision_queues_nothing_from_a_kept_method() -> None:
    b = BatchBuilder(Recorder())
    b.m(1)
    with pytest.raises(TypeError, match="collides"):
        b.m(1, **{"0": 2})
    assert len(b) == 1


def test_a_kept_method_refuses_once_the_batch_is_sent() -> None:
    sender = Recorder()
    b = BatchBuilder(sender)
    add = b.add
    add(1, 2)
    dotted = b.calc.add
    b.send()
    for late in (lambda: add(3, 4), lambda: b.add(5), lambda: dotted(1), lambda: b.other(1)):
        with pytest.raises(RPCError, match="already sent; start a new one"):
            late()
    assert len(b) == 1
    assert sender.sent == [[("add", [1, 2], False)]]


def test_private_names_are_never_kept_or_queued() -> None:
    b = BatchBuilder(Recorder())
    for name in ("_x", "__deepcopy__", "_queued_"):
        with pytest.raises(AttributeError):
            getattr(b, name)
    with pytest.raises(AttributeError):
        b.add._private  # noqa: B018
    assert len(b) == 0
    assert not {"_x", "__deepcopy__", "_queued_"} & set(vars(b))


def test_a_builder_with_kept_methods_is_freed_without_the_garbage_collector() -> None:
    # A method kept on the builder must not refer back to it: a cycle would keep the
    # builder, and through its sender the client and its connection, until gc runs.
    gc.disable()
    try:
        b = BatchBuilder(Recorder())
        b.add(1, 2)
        b.calc.mul(3)
        b.add(2, 3)
        alive = weakref.ref(b)
        del b
        assert alive() is None
    finally:
        gc.enable()
