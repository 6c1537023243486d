"""LoopbackServer / AioLoopbackServer: ``faults=[plan0, plan1, ...]``, one plan per connection.

A plain plan applies to every connection, so "the first connection breaks, the retry
succeeds" could not be written: every retry broke the same way. Connection k (accept
order, from 0) now gets item k; None items and connections past the end get none.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from jsonrpc_mini import ConnectionLost, RPCClient, RPCServer, aio
from jsonrpc_mini.testing import (
    AioLoopbackServer,
    DirectionFaults,
    FaultPlan,
    LinkState,
    LoopbackServer,
    aio_loopback,
    loopback,
)
from jsonrpc_mini.testing._pytest_plugin import _GIVEN_PLANS_KEY

pytestmark = [pytest.mark.timeout(60), pytest.mark.filterwarnings("error::ResourceWarning")]

BREAK = FaultPlan(seed=5, disconnect_after=10)  # breaks inside the first request
REQUEST = b'{"jsonrpc":"2.0","id":1,"method":"echo","params":["' + b"x" * 60 + b'"]}\n'
# The reply is cut 1..24 bytes into its first frame (seeded by seed, connection, direction).
CUT = DirectionFaults(disconnect_in_frame=1)


@pytest.fixture
def server() -> Iterator[RPCServer]:
    srv = RPCServer()
    srv.register_function(lambda a, b: a + b, name="add")
    srv.register_function(lambda value: value, name="echo")
    yield srv
    srv.shutdown()


@pytest.fixture
def aserver() -> aio.RPCServer:
    srv = aio.RPCServer()
    srv.register_function(lambda a, b: a + b, name="add")
    srv.register_function(lambda value: value, name="echo")
    return srv


def outcomes(srv: LoopbackServer, n: int) -> list[Any]:
    """add(1, 2) on ``n`` successive new connections: 3, or "lost" for ConnectionLost."""
    results: list[Any] = []
    for _ in range(n):
        with RPCClient(*srv.address, timeout=5) as client:
            try:
                results.append(client.add(1, 2))
            except ConnectionLost:
                results.append("lost")
    return results


async def aio_outcomes(lb: AioLoopbackServer, n: int) -> list[Any]:
    results: list[Any] = []
    for _ in range(n):
        client = await lb.client(timeout=5)
        try:
            results.append(await client.add(1, 2))
        except ConnectionLost:
            results.append("lost")
        await client.close()
    return results


def test_first_connection_breaks_the_retry_succeeds(server: RPCServer) -> None:
    with LoopbackServer(server, faults=[BREAK, None]) as srv:
        assert outcomes(srv, 3) == ["lost", 3, 3]  # item 1 is None, connection 2 is past the end
        assert srv.connections == 3
        assert srv.faults == (BREAK, None)


def test_a_none_item_then_a_plan(server: RPCServer) -> None:
    with LoopbackServer(server, faults=(None, BREAK)) as srv:
        assert outcomes(srv, 3) == [3, "lost", 3]


def test_an_empty_sequence_is_no_faults(server: RPCServer) -> None:
    with LoopbackServer(server, faults=[]) as srv:
        assert outcomes(srv, 2) == [3, 3]


def test_disconnect_after_0_breaks_a_connection_before_its_first_byte(server: RPCServer) -> None:
    # (what the refusal of a refuse_connect item suggests instead)
    with LoopbackServer(server, faults=[FaultPlan(disconnect_after=0)]) as srv:
        assert outcomes(srv, 2) == ["lost", 3]


def test_a_plain_plan_still_applies_to_every_connection(server: RPCServer) -> None:
    with LoopbackServer(server, faults=BREAK) as srv:
        assert outcomes(srv, 3) == ["lost", "lost", "lost"]


def test_the_retry_example_as_a_user_writes_it(server: RPCServer) -> None:
    def call_with_retry(address: tuple[str, int], attempts: int) -> tuple[int, int]:
        for attempt in range(attempts):
            try:
                with RPCClient(*address, timeout=5) as client:
                    return client.add(1, 2), attempt
            except ConnectionLost:
                continue
        raise AssertionError("no attempt succeeded")

    with LoopbackServer(server, faults=[BREAK, BREAK]) as srv:
        assert call_with_retry(srv.address, 5) == (3, 2)


def test_aio_first_connection_breaks_the_retry_succeeds(aserver: aio.RPCServer) -> None:
    async def main() -> None:
        async with AioLoopbackServer(aserver, faults=[BREAK, None]) as lb:
            assert await aio_outcomes(lb, 3) == ["lost", 3, 3]
            assert lb.faults == (BREAK, None)
        async with AioLoopbackServer(aserver, faults=(None, BREAK)) as lb:
            assert await aio_outcomes(lb, 3) == [3, "lost", 3]
        async with AioLoopbackServer(aserver, faults=[]) as lb:
            assert await aio_outcomes(lb, 2) == [3, 3]
        async with AioLoopbackServer(aserver, faults=[FaultPlan(disconnect_after=0)]) as lb:
            assert await aio_outcomes(lb, 2) == ["lost", 3]
        async with AioLoopbackServer(aserver, faults=BREAK) as lb:
            assert await aio_outcomes(lb, 2) == ["lost", "lost"]

    asyncio.run(main())


# -- determinism: item k is connection k of its plan -------------------------------


def cut_reply(address: tuple[str, int]) -> bytes:
    """Send REQUEST on a raw socket; what arrives up to EOF or the reply's newline."""
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(REQUEST)
        got = b""
        while not got.endswith(b"\n") and (chunk := sock.recv(4096)):
            got += chunk
        return got


def test_item_k_is_seeded_as_connection_k(server: RPCServer) -> None:
    plan = FaultPlan(seed=11, server_to_client=CUT)
    # The test can fail only if connections 0 and 1 of this plan cut in different places.
    cuts = [len(_first_reply_cut(plan, k)) for k in (0, 1)]
    assert cuts[0] != cuts[1]
    with LoopbackServer(server, faults=plan) as srv:
        plain = [cut_reply(srv.address) for _ in range(2)]
    with LoopbackServer(server, faults=[None, plan]) as srv:
        seq = [cut_reply(srv.address) for _ in range(2)]
    with LoopbackServer(server, faults=[None, plan]) as srv:
        again = [cut_reply(srv.address) for _ in range(2)]
    assert [len(b) for b in plain] == cuts
    assert len(seq[0]) > 30 and seq[0].endswith(b"\n")  # connection 0: the whole reply
    assert seq[1] == plain[1] == again[1]


def test_aio_item_k_is_seeded_as_connection_k(aserver: aio.RPCServer) -> None:
    plan = FaultPlan(seed=11, server_to_client=CUT)
    cuts = [len(_first_reply_cut(plan, k)) for k in (0, 1)]

    async def raw(address: tuple[str, int]) -> bytes:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(REQUEST)
        got = b""
        while not got.endswith(b"\n") and (chunk := await asyncio.wait_for(reader.read(4096), 5)):
            got += chunk
        writer.close()
        await writer.wait_closed()
        return got

    async def main() -> list[list[bytes]]:
        runs = []
        for faults in (plan, [None, plan], [None, plan]):
            async with AioLoopbackServer(aserver, faults=faults) as lb:
                runs.append([await raw(lb.address) for _ in range(2)])
        return runs

    plain, seq, again = asyncio.run(main())
    assert [len(b) for b in plain] == cuts
    assert seq[0].endswith(b"\n")
    assert seq[1] == plain[1] == again[1]


def _first_reply_cut(plan: FaultPlan, connection: int) -> bytes:
    """The bytes of a reply to REQUEST that connection ``connection`` of ``plan`` lets through."""
    reply = b'{"jsonrpc":"2.0","id":1,"result":"' + b"x" * 60 + b'"}\n'
    step = LinkState(plan, connection).server_to_client.next_step(reply)
    assert step.fault == "close"
    return reply[: step.size]


# -- argument checks and failure notes ------------------------------------------------


@pytest.mark.parametrize("kit", ["LoopbackServer", "AioLoopbackServer"])
def test_bad_items_are_refused(kit: str, server: RPCServer, aserver: aio.RPCServer) -> None:
    make: Any = LoopbackServer if kit == "LoopbackServer" else AioLoopbackServer
    srv = server if kit == "LoopbackServer" else aserver
    with pytest.raises(TypeError) as info:
        make(srv, faults=[None, {"max_chunk": 1}])
    assert str(info.value) == (
        f"{kit}() takes FaultPlan or None items in a faults list, not dict (item 1): "
        "write FaultPlan(**{'max_chunk': 1})"
    )
    with pytest.raises(TypeError, match=r"items in a faults tuple, not str \(item 0\)$"):
        make(srv, faults=("max_chunk=1",))
    with pytest.raises(ValueError, match=r"refuse_connect=True refuses the kit's whole port.*item 1"):
        make(srv, faults=[None, FaultPlan(refuse_connect=True)])
    assert srv.address is None  # refused before anything started


def test_in_memory_kits_refuse_a_sequence(server: RPCServer, aserver: aio.RPCServer) -> None:
    refused = pytest.raises(TypeError, match=r"^loopback\(\) takes a FaultPlan .* not list: .* LoopbackServer\(\)")
    with refused, loopback(server, faults=[BREAK]):  # type: ignore[arg-type]
        pass

    async def main() -> None:
        with pytest.raises(TypeError, match=r"^aio_loopback\(\) takes a FaultPlan .* not tuple"):
            async with aio_loopback(aserver, faults=(BREAK,)):  # type: ignore[arg-type]
                pass

    asyncio.run(main())


def test_a_failure_names_the_plans_per_connection(server: RPCServer, aserver: aio.RPCServer) -> None:
    note = f"jsonrpc_mini fault plans per connection (#0: {BREAK!r}, #1: None; later connections: none)"
    with pytest.raises(ConnectionLost) as info, LoopbackServer(server, faults=[BREAK, None]) as srv:
        srv.client(timeout=5).add(1, 2)
    assert any(line.startswith(note) for line in info.value.__notes__)

    async def main() -> None:
        async with AioLoopbackServer(aserver, faults=[BREAK, None]) as lb:
            await (await lb.client(timeout=5)).add(1, 2)

    with pytest.raises(ConnectionLost) as info:
        asyncio.run(main())
    assert any(line.startswith(note) for line in info.value.__notes__)


def test_plugin_server_fixture_passes_a_sequence_on(
    server: RPCServer, jsonrpc_server: Any, request: pytest.FixtureRequest
) -> None:
    srv = jsonrpc_server(server, faults=[BREAK, None])
    assert outcomes(srv, 2) == ["lost", 3]
    assert request.node.stash[_GIVEN_PLANS_KEY] == [BREAK]  # named in a failing test's report
