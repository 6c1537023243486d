"""The exception tree: classes, codes, constructors, str(), pickling."""

from __future__ import annotations

import asyncio
import copy
import inspect
import pickle
from typing import Any

import pytest

import jsonrpc_mini
from jsonrpc_mini import RPCClient, RPCServer, _errors, aio
from jsonrpc_mini._errors import (
    ConnectionLost,
    InternalError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    ParseError,
    RemoteError,
    RPCError,
    RPCTimeout,
    ServerError,
    error_class_for,
    error_from_response,
)

FIXED = [
    (ParseError, -32700, "Parse error"),
    (InvalidRequest, -32600, "Invalid Request"),
    (MethodNotFound, -32601, "Method not found"),
    (InvalidParams, -32602, "Invalid params"),
    (InternalError, -32603, "Internal error"),
]
ALL = [cls for cls, _, _ in FIXED] + [ServerError, RemoteError, ConnectionLost, RPCTimeout]


def test_every_class_is_an_rpc_error_and_exported() -> None:
    for cls in ALL:
        assert issubclass(cls, RPCError)
        assert getattr(jsonrpc_mini, cls.__name__) is cls
    assert jsonrpc_mini.RPCError is RPCError
    assert issubclass(RPCError, Exception)
    assert issubclass(ConnectionLost, ConnectionError)
    assert issubclass(RPCTimeout, TimeoutError)
    # Error responses never look like OS errors, and vice versa.
    for cls, _, _ in FIXED:
        assert not issubclass(cls, OSError)


@pytest.mark.parametrize(("cls", "code", "text"), FIXED)
def test_fixed_code_classes(cls: type[RPCError], code: int, text: str) -> None:
    exc = cls()  # type: ignore[call-arg]
    assert (exc.code, exc.message, exc.data, exc.method) == (code, text, None, None)
    exc = cls("custom", {"d": 1})  # type: ignore[call-arg]
    assert (exc.code, exc.message, exc.data) == (code, "custom", {"d": 1})
    exc = cls(message="kw", data=[2])  # type: ignore[call-arg]
    assert (exc.code, exc.message, exc.data) == (code, "kw", [2])
    assert list(inspect.signature(cls).parameters) == ["message", "data"]
    assert str(exc) == f"[{code}] kw"


@pytest.mark.parametrize("cls", [ServerError, RemoteError, RPCError])
def test_classes_that_take_a_code(cls: type[RPCError]) -> None:
    exc = cls(-32001, "busy")
    assert (exc.code, exc.message, exc.data) == (-32001, "busy", None)
    exc = cls(code=7, message="m", data={"x": [1]})
    assert (exc.code, exc.message, exc.data) == (7, "m", {"x": [1]})
    assert list(inspect.signature(cls).parameters) == ["code", "message", "data"]


@pytest.mark.parametrize(
    ("cls", "base", "default"),
    [(ConnectionLost, ConnectionError, "connection lost"), (RPCTimeout, TimeoutError, "call timed out")],
)
def test_local_failures_have_no_code(cls: type[RPCError], base: type[BaseException], default: str) -> None:
    exc = cls()  # type: ignore[call-arg]
    assert isinstance(exc, base)
    assert (exc.code, exc.message, exc.data) == (None, default, None)
    exc = cls("link reset by peer")  # type: ignore[call-arg]
    assert exc.message == "link reset by peer"
    assert str(exc) == "link reset by peer"
    exc.method = "add"
    assert str(exc) == "add: link reset by peer"
    with pytest.raises(base):
        raise exc


def test_str_names_the_method_and_the_code() -> None:
    exc = error_from_response(-32601, "Method not found", None, "calc.add")
    assert isinstance(exc, MethodNotFound)
    assert str(exc) == "calc.add: [-32601] Method not found"
    exc = error_from_response(-32050, "overloaded", {"retry": 1}, "slow")
    assert type(exc) is ServerError
    assert (exc.code, exc.data, str(exc)) == (-32050, {"retry": 1}, "slow: [-32050] overloaded")
    exc = error_from_response(12, "app", None, None)
    assert type(exc) is RemoteError
    assert str(exc) == "[12] app"


def test_repr() -> None:
    assert repr(InvalidParams("x", 1)) == "InvalidParams(code=-32602, message='x', data=1)"
    assert repr(ConnectionLost()) == "ConnectionLost(code=None, message='connection lost', data=None)"


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (-32700, ParseError),
        (-32600, InvalidRequest),
        (-32601, MethodNotFound),
        (-32602, InvalidParams),
        (-32603, InternalError),
        (-32000, ServerError),
        (-32099, ServerError),
        (-32042, ServerError),
        (-31999, RemoteError),
        (-32100, RemoteError),
        (-32604, RemoteError),
        (0, RemoteError),
        (1, RemoteError),
        (2**70, RemoteError),
    ],
)
def test_error_class_for(code: int, cls: type[RPCError]) -> None:
    assert error_class_for(code) is cls
    exc = error_from_response(code, "msg", [1], "m")
    assert type(exc) is cls
    assert (exc.code, exc.message, exc.data, exc.method) == (code, "msg", [1], "m")


class AppError(ServerError):
    """A user's own subclass."""


def _cases() -> list[RPCError]:
    cases: list[RPCError] = [
        RPCError(1, "base", {"a": 1}),
        ServerError(-32001, "s", [1]),
        RemoteError(99, "r"),
        AppError(-32002, "app", "d"),
        ConnectionLost("gone"),
        RPCTimeout("late"),
    ]
    cases += [cls("m", {"x": None}) for cls, _, _ in FIXED]  # type: ignore[call-arg]
    for i, exc in enumerate(cases):
        if i % 2:
            exc.method = f"method{i}"
    return cases


@pytest.mark.parametrize("exc", _cases(), ids=lambda e: type(e).__name__)
def test_pickle_and_copy_round_trip(exc: RPCError) -> None:
    for clone in (pickle.loads(pickle.dumps(exc)), copy.copy(exc), copy.deepcopy(exc)):
        assert type(clone) is type(exc)
        assert (clone.code, clone.message, clone.data, clone.method) == (exc.code, exc.message, exc.data, exc.method)
        assert str(clone) == str(exc)
        assert isinstance(clone, RPCError)


def test_module_docstring_draws_the_tree() -> None:
    doc = _errors.__doc__ or ""
    for cls in ALL:
        assert cls.__name__ in doc


def test_handler_style_raise_and_catch() -> None:
    def handler() -> Any:
        raise InvalidParams("x must be positive", {"x": -1})

    with pytest.raises(RPCError) as info:
        handler()
    assert info.value.code == -32602
    assert info.value.data == {"x": -1}


def test_an_unknown_method_reads_as_the_readme_shows_from_both_servers() -> None:
    # README (Errors): str(e) reads "add: [-32601] Method not found: 'add'".
    srv = RPCServer()
    address = srv.start("127.0.0.1", 0)
    try:
        with RPCClient(*address, timeout=10) as c, pytest.raises(MethodNotFound) as sync_info:
            c.add(1, 2)
    finally:
        srv.shutdown()

    async def main() -> str:
        server = aio.RPCServer()
        where = await server.start("127.0.0.1", 0)
        assert isinstance(where, tuple)
        try:
            async with await aio.connect(*where, timeout=10) as ac:
                with pytest.raises(MethodNotFound) as aio_info:
                    await ac.add(1, 2)
            return str(aio_info.value)
        finally:
            await server.shutdown()

    assert str(sync_info.value) == asyncio.run(main()) == "add: [-32601] Method not found: 'add'"
