"""The asyncio side of review10 r4b (5a50bc3 fixed the blocking kit only).

The last AioLoopbackServer out shuts the server down holding the server's turn,
and that shutdown waits for calls in flight. A handler of that server entering
aio_loopback() (or an AioLoopbackServer) of it waited for the turn: the shutdown
waited out shutdown_grace, then cancelled the handler. Now the handler gets
ConnectionLost at once, as the blocking kit's handlers do; anyone else still waits
for the shutdown and is then served.

review12 F4: a handler entering from a helper task it awaits (create_task, gather)
was not recognised (the check looked for the call's own task), so the shutdown again
waited out the grace; the call's context (copied into such tasks) now tells.
"""

from __future__ import annotations

import asyncio

import pytest
from _aio_support import WAIT, run

from jsonrpc_mini import ConnectionLost, aio
from jsonrpc_mini.testing import AioLoopbackServer, aio_loopback

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.timeout(60),
]


async def enter_kit(server: aio.RPCServer, kit: str) -> object:
    try:
        if kit == "aio_loopback":
            async with aio_loopback(server) as client:
                return await client.add(1, 2)
        async with AioLoopbackServer(server) as inner:
            return await (await inner.client()).add(1, 2)
    except ConnectionLost as exc:
        return f"refused: {exc}"


async def shutdown_begun(server: aio.RPCServer) -> None:
    for _ in range(3000):  # bounded: until the shutdown has begun (the listener is gone)
        if server.address is None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the shutdown did not begin")


@pytest.mark.parametrize("via", ["its own task", "create_task", "gather"])
@pytest.mark.parametrize("kit", ["aio_loopback", "AioLoopbackServer"])
def test_a_handler_entering_the_kit_of_its_own_server_while_it_shuts_down_is_refused_at_once(
    kit: str, via: str
) -> None:
    async def main() -> object:
        gateway = aio.RPCServer(shutdown_grace=5)  # the old code: cancelled after 5 s
        gateway.register_function(lambda a, b: a + b, "add")
        entered, go = asyncio.Event(), asyncio.Event()

        @gateway.register
        async def fwd() -> object:
            entered.set()
            await asyncio.wait_for(go.wait(), WAIT)
            if via == "create_task":  # a helper task of the handler
                return await asyncio.create_task(enter_kit(gateway, kit))
            if via == "gather":
                return (await asyncio.gather(enter_kit(gateway, kit)))[0]
            return await enter_kit(gateway, kit)

        lb = AioLoopbackServer(gateway)
        await lb.__aenter__()  # starts it
        direct = await aio.connect(*lb.direct_address, timeout=WAIT)
        try:
            call = asyncio.ensure_future(direct.fwd())
            await asyncio.wait_for(entered.wait(), WAIT)
            closer = asyncio.ensure_future(lb.__aexit__(None, None, None))  # the last user: waits for fwd
            try:
                await shutdown_begun(gateway)
            finally:
                go.set()
                await asyncio.wait_for(closer, WAIT)
            return await asyncio.wait_for(call, WAIT)
        finally:
            await direct.close()

    name = "aio_loopback()" if kit == "aio_loopback" else "AioLoopbackServer"
    result = run(main)
    assert isinstance(result, str) and result.startswith(
        f"refused: {name}: the server is shutting down (its last kit user left)"
    ), result


async def call_enter(client: aio.RPCClient) -> object:
    return await client.enter()


@pytest.mark.parametrize("who", ["a task of the test", "a handler of another server"])
def test_others_entering_the_kit_of_a_server_shutting_down_wait_and_are_served(who: str) -> None:
    async def main() -> tuple[object, object]:
        gateway = aio.RPCServer(shutdown_grace=30)
        gateway.register_function(lambda a, b: a + b, "add")
        entered, go = asyncio.Event(), asyncio.Event()

        @gateway.register
        async def held() -> str:
            entered.set()
            await asyncio.wait_for(go.wait(), WAIT)
            return "done"

        other = aio.RPCServer()

        @other.register
        async def enter() -> object:
            return await enter_kit(gateway, "aio_loopback")

        lb = AioLoopbackServer(gateway)
        await lb.__aenter__()  # starts it
        direct = await aio.connect(*lb.direct_address, timeout=WAIT)
        try:
            async with aio_loopback(other) as via_other:
                call = asyncio.ensure_future(direct.held())
                await asyncio.wait_for(entered.wait(), WAIT)
                closer = asyncio.ensure_future(lb.__aexit__(None, None, None))  # waits for held
                try:
                    await shutdown_begun(gateway)
                    if who == "a task of the test":
                        entry = asyncio.ensure_future(enter_kit(gateway, "aio_loopback"))
                    else:
                        entry = asyncio.ensure_future(call_enter(via_other))
                    await asyncio.wait({entry}, timeout=0.3)  # (waits for the shutdown; not refused meanwhile)
                    assert not entry.done()
                finally:
                    go.set()
                    await asyncio.wait_for(closer, WAIT)
                return await asyncio.wait_for(call, WAIT), await asyncio.wait_for(entry, WAIT)
        finally:
            await direct.close()

    assert run(main) == ("done", 3)
