"""functools.wraps wrappers: checked against what the wrapper accepts, as a local call is (review15 N2)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _aio_support import aio_server_in_thread
from _driver_helpers import serving

from jsonrpc_mini import InternalError, InvalidParams, RPCClient, RPCServer, aio

pytestmark = [pytest.mark.timeout(60)]

DB = {"name": "db"}


def inject_db(f: Callable[..., Any]) -> Callable[..., Any]:
    """Supplies the first argument: the signature it reports has one more than it takes."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return f(DB, *args, **kwargs)

    return wrapper


def verbose_default(f: Callable[..., Any]) -> Callable[..., Any]:
    """Fills in a required keyword-only argument."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("verbose", False)
        return f(*args, **kwargs)

    return wrapper


def pass_through(f: Callable[..., Any]) -> Callable[..., Any]:
    """Keeps the signature: its arguments are the inner function's."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return f(*args, **kwargs)

    return wrapper


def inject_db_async(f: Callable[..., Any]) -> Callable[..., Any]:
    """An async wrapper with a signature of its own, narrower than any call that binds."""

    @functools.wraps(f)
    async def wrapper(user_id: int) -> Any:
        return await f(DB, user_id)

    return wrapper


@inject_db_async
async def get_user_async(db: dict[str, str], user_id: int) -> list[Any]:
    return [db["name"], user_id]


@inject_db
def get_user(db: dict[str, str], user_id: int) -> list[Any]:
    return [db["name"], user_id]


@inject_db
def broken(db: dict[str, str], user_id: int) -> Any:
    return user_id + "x"  # type: ignore[operator]  # a TypeError inside the handler


@verbose_default
def report(x: int, *, verbose: bool) -> list[Any]:
    return [x, verbose]


@pass_through
def add(a: int, b: int) -> int:
    return a + b


@contextlib.contextmanager
def running(kind: str) -> Iterator[RPCClient]:
    server: Any = RPCServer() if kind == "sync" else aio.RPCServer()
    for fn in (get_user, get_user_async, broken, report, add):
        server.register_function(fn)
    started = serving(server) if kind == "sync" else aio_server_in_thread(server)
    with started as address, RPCClient(*address, timeout=10) as client:
        yield client


@pytest.mark.parametrize("kind", ["sync", "aio"])
def test_wrappers_that_supply_arguments_answer_as_a_local_call_does(kind: str) -> None:
    assert get_user(42) == ["db", 42] and report(1) == [1, False]  # locally
    with running(kind) as client:
        assert client.call("get_user", 42) == ["db", 42]
        assert client.call("get_user", user_id=7) == ["db", 7]
        assert client.call("report", 1) == [1, False]
        assert client.call("report", 1, verbose=True) == [1, True]
        assert client.call("add", 2, 3) == 5
        assert client.call("get_user_async", 9) == ["db", 9]
        batch = client.batch()
        first, second = batch.call("get_user", 5), batch.call("report", 2)
        batch.send()
        assert (first.result(), second.result()) == (["db", 5], [2, False])


@pytest.mark.parametrize("kind", ["sync", "aio"])
def test_arguments_that_do_not_fit_are_still_32602(kind: str) -> None:
    with running(kind) as client:
        with pytest.raises(InvalidParams, match="add"):
            client.call("add", 1)  # a pass-through wrapper: the inner function is never entered
        with pytest.raises(InvalidParams, match="get_user"):
            client.call("get_user")
        with pytest.raises(InvalidParams, match="report"):
            client.call("report", 1, bogus=2)  # binds to neither the inner function nor, through it, the call
        with pytest.raises(InvalidParams, match="get_user_async"):
            client.call("get_user_async", 1, 2, 3)  # binds to neither signature: never called
        assert client.call("add", 2, 2) == 4  # the connection still serves


@pytest.mark.parametrize("kind", ["sync", "aio"])
def test_a_type_error_inside_the_wrapped_handler_stays_32603(kind: str) -> None:
    with running(kind) as client:
        with pytest.raises(InternalError):
            client.call("broken", 1)  # binds only to the wrapper; raises inside the inner function
        with pytest.raises(InternalError):
            client.call("broken", user_id=1)
