"""Registry.prepare's positional fast path agrees with inspect.Signature.bind."""

from __future__ import annotations

import functools
import inspect
from typing import Any

import pytest

from jsonrpc_mini import InvalidParams, RPCServer
from jsonrpc_mini._codec import Request


def f0() -> None: ...
def f1(a: Any) -> None: ...
def f2(a: Any, b: Any = 1) -> None: ...
def f3(a: Any, /, b: Any, *rest: Any) -> None: ...
def f4(a: Any, *, k: Any) -> None: ...
def f5(a: Any, *, k: Any = 2, **more: Any) -> None: ...
def f6(*args: Any, **kwargs: Any) -> None: ...
def f7(a: Any, b: Any, c: Any = 3, /, d: Any = 4) -> None: ...


class Obj:
    def method(self, a: Any, b: Any = 2) -> None: ...


FUNCTIONS = [f0, f1, f2, f3, f4, f5, f6, f7, Obj().method, functools.partial(f7, 1), len, print]


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda fn: getattr(fn, "__name__", type(fn).__name__))
@pytest.mark.parametrize("count", range(6))
def test_positional_calls_bind_exactly_when_the_signature_says_so(fn: Any, count: int) -> None:
    server = RPCServer()
    server.register_function(fn, name="m")
    args = list(range(count))
    try:
        inspect.signature(fn).bind(*args)
        expected = True
    except TypeError:
        expected = False
    except ValueError:  # no signature: the call itself decides, prepare lets it through
        expected = True
    try:
        prepared = server.prepare(Request("m", args, 1))
    except InvalidParams:
        assert not expected, f"{count} arguments bind to {fn} but prepare refused them"
    else:
        assert expected, f"{count} arguments do not bind to {fn} but prepare accepted them"
        assert prepared.args == args
        assert prepared.kwargs == {}


def test_keywords_still_go_through_signature_bind() -> None:
    server = RPCServer()
    server.register_function(f2, name="m")
    assert server.prepare(Request("m", {"a": 1}, 1)).kwargs == {"a": 1}
    with pytest.raises(InvalidParams):
        server.prepare(Request("m", {"zz": 1}, 1))


def test_reregistering_a_name_replaces_its_arity() -> None:
    server = RPCServer()
    server.register_function(f1, name="m")
    server.register_function(f0, name="m")
    with pytest.raises(InvalidParams):
        server.prepare(Request("m", [1], 1))
    server.register_function(len, name="m")
    server.register_function(f6, name="m")
    assert server.prepare(Request("m", [1, 2, 3], 1)).args == [1, 2, 3]


@pytest.mark.parametrize("replacement", [f4, len], ids=["keyword-only required", "no signature"])
def test_a_name_reregistered_without_a_positional_arity_calls_the_new_function(replacement: Any) -> None:
    # The old function's arity must not outlive it: f4 needs a keyword, len has no signature.
    server = RPCServer()
    server.register_function(f1, name="m")
    server.register_function(replacement, name="m")
    if replacement is f4:
        with pytest.raises(InvalidParams):
            server.prepare(Request("m", [1], 1))
        assert server.prepare(Request("m", {"a": 1, "k": 2}, 1)).function is f4
    else:
        assert server.prepare(Request("m", ["abc"], 1)).function is len
