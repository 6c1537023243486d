"""The exception classes name the public package, not their private module."""

from __future__ import annotations

import pickle
import traceback

import pytest

import jsonrpc_mini
from jsonrpc_mini import aio

ERRORS = [
    jsonrpc_mini.RPCError(-32000, "x", {"a": 1}),
    jsonrpc_mini.ParseError(),
    jsonrpc_mini.InvalidRequest(),
    jsonrpc_mini.MethodNotFound("Method not found: 'add'"),
    jsonrpc_mini.InvalidParams(),
    jsonrpc_mini.InternalError(data=[1]),
    jsonrpc_mini.ServerError(-32001, "busy"),
    jsonrpc_mini.RemoteError(7, "odd", "d"),
    jsonrpc_mini.ConnectionLost("gone"),
    jsonrpc_mini.RPCTimeout("late"),
]


@pytest.mark.parametrize("exc", ERRORS, ids=lambda e: type(e).__name__)
def test_class_names_the_public_package(exc: jsonrpc_mini.RPCError) -> None:
    cls = type(exc)
    assert cls.__module__ == "jsonrpc_mini"
    assert getattr(jsonrpc_mini, cls.__qualname__) is cls
    assert getattr(aio, cls.__qualname__) is cls  # (re-exported there too)


@pytest.mark.parametrize("exc", ERRORS, ids=lambda e: type(e).__name__)
def test_pickle_and_repr_still_work(exc: jsonrpc_mini.RPCError) -> None:
    exc.method = "add"
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc)
    assert (back.code, back.message, back.data, back.method) == (exc.code, exc.message, exc.data, "add")
    assert str(back) == str(exc)
    assert repr(back) == repr(exc)
    assert repr(exc).startswith(f"{type(exc).__name__}(code=")


def test_traceback_names_the_public_package() -> None:
    try:
        raise jsonrpc_mini.ConnectionLost("cannot connect to 127.0.0.1:1: refused")
    except jsonrpc_mini.ConnectionLost as exc:
        last = traceback.format_exception(exc)[-1]
    assert last == "jsonrpc_mini.ConnectionLost: cannot connect to 127.0.0.1:1: refused\n"
    assert "_errors" not in last
