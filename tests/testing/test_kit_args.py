"""review15 N6: the test kits refuse the other driver's server and a plan that is not a FaultPlan.

They used to fail deep inside (AttributeError, an empty AssertionError with a
never-awaited coroutine, "object tuple can't be used in 'await' expression"), and
AioLoopbackServer given a sync server left that server listening.
"""

from __future__ import annotations

import asyncio
import warnings

import pytest

from jsonrpc_mini import RPCServer, aio
from jsonrpc_mini.testing import AioLoopbackServer, FaultPlan, LoopbackServer, aio_loopback, loopback
from jsonrpc_mini.testing._leaks import Resources

pytestmark = pytest.mark.timeout(60)


def test_loopback_refuses_an_aio_server() -> None:
    # (LoopbackServer takes one: tests/testing/test_loopback_server_aio.py)
    server = aio.RPCServer()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (no "coroutine was never awaited" either)
        with pytest.raises(TypeError) as info, loopback(server):  # type: ignore[arg-type]
            pass
        assert str(info.value) == (
            "loopback() takes a jsonrpc_mini.RPCServer, not a jsonrpc_mini.aio.RPCServer: "
            "for a jsonrpc_mini.aio.RPCServer use aio_loopback()"
        )


def test_aio_kits_refuse_a_sync_server_and_leave_it_alone() -> None:
    server = RPCServer()
    server.register_function(lambda a, b: a + b, name="add")
    before = Resources()

    async def main() -> None:
        with pytest.raises(TypeError) as info:
            async with aio_loopback(server):  # type: ignore[arg-type]
                pass
        assert str(info.value) == (
            "aio_loopback() takes a jsonrpc_mini.aio.RPCServer, not a jsonrpc_mini.RPCServer: "
            "for a jsonrpc_mini.RPCServer use loopback()"
        )
        with pytest.raises(
            TypeError,
            match=r"^AioLoopbackServer\(\) takes .*, not a jsonrpc_mini.RPCServer: .* use LoopbackServer\(\)$",
        ):
            async with AioLoopbackServer(server):  # type: ignore[arg-type]
                pass

    try:
        asyncio.run(main())
        assert server.address is None  # it used to be left listening
    finally:
        server.shutdown()
    before.assert_no_leaks()


@pytest.mark.parametrize("kit", ["loopback", "LoopbackServer", "aio_loopback", "AioLoopbackServer"])
def test_kits_refuse_other_objects_as_the_server(kit: str) -> None:
    either = " or a jsonrpc_mini.aio.RPCServer" if kit == "LoopbackServer" else ""
    with pytest.raises(TypeError, match=rf"^{kit}\(\) takes a jsonrpc_mini.(aio.)?RPCServer{either}, not object$"):
        run_kit(kit, object(), None)


@pytest.mark.parametrize("kit", ["loopback", "LoopbackServer", "aio_loopback", "AioLoopbackServer"])
def test_kits_refuse_a_dict_as_the_plan(kit: str) -> None:
    server: object = aio.RPCServer() if kit.startswith(("aio", "Aio")) else RPCServer()
    with pytest.raises(TypeError) as info:
        run_kit(kit, server, {"max_chunk": 1})
    assert str(info.value) == (
        f"{kit}() takes a FaultPlan (or None) as faults, not dict: write faults=FaultPlan(**{{'max_chunk': 1}})"
    )
    with pytest.raises(TypeError, match=r"as faults, not str$"):
        run_kit(kit, server, "max_chunk=1")


def test_kits_still_take_their_server_and_a_plan() -> None:
    server = RPCServer()
    server.register_function(lambda a, b: a + b, name="add")
    assert run_kit("loopback", server, FaultPlan(seed=1, max_chunk=1)) == 3
    assert run_kit("LoopbackServer", server, FaultPlan(seed=1, max_chunk=1)) == 3
    aserver = aio.RPCServer()
    aserver.register_function(lambda a, b: a + b, name="add")
    assert run_kit("aio_loopback", aserver, FaultPlan(seed=1, max_chunk=1)) == 3
    assert run_kit("AioLoopbackServer", aserver, None) == 3


def run_kit(kit: str, server: object, faults: object) -> object:
    """Enter ``kit`` with ``server`` and ``faults``; return add(1, 2) through it."""
    if kit == "loopback":
        with loopback(server, faults) as client:  # type: ignore[arg-type]
            return client.add(1, 2)
    if kit == "LoopbackServer":
        with LoopbackServer(server, faults) as srv, srv.client() as client:  # type: ignore[arg-type]
            return client.add(1, 2)

    async def main() -> object:
        if kit == "aio_loopback":
            async with aio_loopback(server, faults) as client:  # type: ignore[arg-type]
                return await client.add(1, 2)
        async with AioLoopbackServer(server, faults) as srv:  # type: ignore[arg-type]
            return await (await srv.client()).add(1, 2)

    return asyncio.run(main())
