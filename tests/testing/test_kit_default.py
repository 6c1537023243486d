"""The test kit's clients take ``default=``, the encoder hook of ``RPCClient`` and ``aio.connect``.

``loopback()``, ``aio_loopback()``, the ``client()`` of ``LoopbackServer`` and
``AioLoopbackServer`` and the ``jsonrpc_loopback`` fixture made their clients without
it: code that passes a ``datetime`` argument could not be tested through the kit. The
hook means what it means on the clients, and a bad one is the clients' TypeError.
"""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path
from typing import Any

import pytest
from _aio_support import run

from jsonrpc_mini import RPCServer, aio
from jsonrpc_mini.testing import (
    AioLoopbackServer,
    FaultPlan,
    LoopbackFactory,
    LoopbackServer,
    LoopbackServerFactory,
    aio_loopback,
    loopback,
)

pytestmark = pytest.mark.timeout(60)

DAY = datetime.date(2020, 1, 2)
PLAN = FaultPlan(seed=5, max_chunk=3, awkward_splits=True)  # (the hook's bytes cut and rejoined too)
NOT_CALLABLE = "default must be a callable taking one object .or None., not 3"


def iso(obj: object) -> object:
    if isinstance(obj, datetime.date):
        return obj.isoformat()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def echo(value: Any) -> Any:
    return value


def sync_server() -> RPCServer:
    server = RPCServer()
    server.register_function(echo)
    return server


def aio_server() -> aio.RPCServer:
    server = aio.RPCServer()
    server.register_function(echo)
    return server


def shown_files(excinfo: pytest.ExceptionInfo[BaseException]) -> list[str]:
    return [Path(str(entry.path)).name for entry in excinfo.traceback.filter(excinfo)]


@pytest.mark.parametrize("faults", [None, PLAN], ids=["plain", "plan"])
def test_loopback_writes_arguments_with_the_hook(faults: FaultPlan | None) -> None:
    server = sync_server()
    with loopback(server, faults, default=iso) as client:
        assert client.echo(DAY) == "2020-01-02"
        assert client.echo({"when": [DAY]}) == {"when": ["2020-01-02"]}
        with pytest.raises(TypeError, match="Object of type object"):
            client.echo(object())  # (the hook's own refusal, as on RPCClient)
        assert client.echo(1) == 1  # (nothing was sent for the refused call)
    with loopback(server, faults) as client, pytest.raises(TypeError, match="date is not JSON serializable"):
        client.echo(DAY)  # (without it, as before)


def test_loopback_server_client_writes_arguments_with_the_hook() -> None:
    with LoopbackServer(sync_server(), PLAN) as srv:
        assert srv.client(default=iso).echo(DAY) == "2020-01-02"
        with pytest.raises(TypeError, match="date is not JSON serializable"):
            srv.client().echo(DAY)


@pytest.mark.parametrize("faults", [None, PLAN], ids=["plain", "plan"])
def test_aio_loopback_writes_arguments_with_the_hook(faults: FaultPlan | None) -> None:
    server = aio_server()

    async def main() -> None:
        async with aio_loopback(server, faults, default=iso) as client:
            assert await client.echo(DAY) == "2020-01-02"
            with pytest.raises(TypeError, match="Object of type object"):
                await client.echo(object())
            assert await client.echo(1) == 1
        async with aio_loopback(server, faults) as client:
            with pytest.raises(TypeError, match="date is not JSON serializable"):
                await client.echo(DAY)

    run(main)


def test_aio_loopback_server_client_writes_arguments_with_the_hook() -> None:
    async def main() -> None:
        async with AioLoopbackServer(aio_server(), PLAN) as lb:
            client = await lb.client(default=iso)
            assert await client.echo(DAY) == "2020-01-02"
            plain = await lb.client()
            with pytest.raises(TypeError, match="date is not JSON serializable"):
                await plain.echo(DAY)

    run(main)


def test_the_fixtures_pass_the_hook_on(
    jsonrpc_loopback: LoopbackFactory, jsonrpc_server: LoopbackServerFactory
) -> None:
    server = sync_server()
    assert jsonrpc_loopback(server, default=iso).echo(DAY) == "2020-01-02"
    assert jsonrpc_server(server).client(default=iso).echo(DAY) == "2020-01-02"


def test_loopback_refuses_a_hook_that_is_not_callable_on_the_users_line() -> None:
    server = RPCServer()
    with pytest.raises(TypeError, match=NOT_CALLABLE) as caught:
        loopback(server, default=3)  # type: ignore[arg-type]
    assert shown_files(caught) == [Path(__file__).name]
    with loopback(server, default=None) as client:  # (None: no hook, and the server is still free)
        assert repr(client)


def test_aio_loopback_refuses_a_hook_that_is_not_callable_on_the_users_line() -> None:
    async def main() -> pytest.ExceptionInfo[TypeError]:
        with pytest.raises(TypeError, match=NOT_CALLABLE) as caught:
            aio_loopback(aio_server(), default=3)  # type: ignore[arg-type]
        return caught

    assert shown_files(asyncio.run(main())) == [Path(__file__).name]


def test_the_loopback_servers_refuse_a_hook_that_is_not_callable() -> None:
    with LoopbackServer(sync_server()) as srv:
        with pytest.raises(TypeError, match=NOT_CALLABLE):
            srv.client(default=3)  # type: ignore[arg-type]
        assert srv.connections == 0  # (refused before connecting)

    async def main() -> None:
        async with AioLoopbackServer(aio_server()) as lb:
            with pytest.raises(TypeError, match=NOT_CALLABLE):
                await lb.client(default=3)  # type: ignore[arg-type]
            assert await (await lb.client()).echo(1) == 1

    run(main)
