"""loopback() and LoopbackServer: in memory and through the fault proxy, with clean shutdown."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time

import pytest

from jsonrpc_mini import ConnectionLost, MethodNotFound, RPCClient, RPCServer, RPCTimeout, aio
from jsonrpc_mini.testing import (
    AioLoopbackServer,
    DirectionFaults,
    FaultPlan,
    LoopbackServer,
    Resources,
    aio_loopback,
    loopback,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def server():
    srv = RPCServer()

    @srv.register
    def add(a, b):
        return a + b

    @srv.register
    def echo(value):
        return value

    yield srv
    srv.shutdown()


def test_loopback_calls_without_any_socket(server, monkeypatch):
    def no_sockets(*args, **kwargs):
        raise AssertionError("loopback must not open a socket")

    monkeypatch.setattr(socket, "socket", no_sockets)
    before = Resources()
    with loopback(server) as client:
        assert client.add(1, 2) == 3
        assert client.echo("é" * 3000) == "é" * 3000
        with pytest.raises(MethodNotFound):
            client.nope()
        with client.batch() as batch:
            r = batch.add(2, 3)
        assert r.result() == 5
    assert not client._connected
    before.assert_no_leaks()
    assert server.connection_count == 0


def test_loopback_thousands_of_calls_are_quick(server):
    with loopback(server) as client:
        assert [client.add(i, 1) for i in range(2000)] == list(range(1, 2001))


def test_loopback_content_length_framing(server):
    with loopback(server, framing="content-length") as client:
        assert client.echo({"a": [1, 2]}) == {"a": [1, 2]}


def test_loopback_with_faults_still_correct(server):
    plan = FaultPlan(seed=2, max_chunk=3, awkward_splits=True)
    with loopback(server, plan) as client:
        assert client.echo("é€🎉\\\r\n" * 300) == "é€🎉\\\r\n" * 300


def test_loopback_failure_gets_a_note_with_the_seed(server):
    plan = FaultPlan(seed=77, disconnect_after=30)
    with pytest.raises(ConnectionLost) as info, loopback(server, plan) as client:
        client.add(1, 2)
    assert any("seed=77" in note for note in info.value.__notes__)


def test_loopback_refused(server):
    with pytest.raises(ConnectionLost, match="seed=4"), loopback(server, FaultPlan(seed=4, refuse_connect=True)):
        pass


def test_loopback_stall_times_out_and_cleans_up(server):
    before = Resources()
    plan = FaultPlan(server_to_client=DirectionFaults(stall_after=0))
    with loopback(server, plan, timeout=0.2) as client, pytest.raises(RPCTimeout):
        client.add(1, 2)
    before.assert_no_leaks()


def test_one_server_backs_many_loopbacks_at_once(server):
    with loopback(server) as a, loopback(server) as b:
        assert (a.add(1, 1), b.add(2, 2)) == (2, 4)
        assert server.connection_count == 2


def test_every_kits_client_waits_10_s_by_default(server, jsonrpc_loopback, jsonrpc_server):
    # README, Test kit: "with loopback(server) as client:  # an RPCClient, timeout 10 s";
    # the client() of LoopbackServer and AioLoopbackServer and the fixtures take "the
    # kit's own, 10 s unless set". (The plugin keeps its own copy of the number.)
    with loopback(server) as client:
        assert repr(client) == "<RPCClient connected timeout=10.0>"
    with LoopbackServer(server) as srv:
        assert repr(srv.client()).endswith(" timeout=10.0>")
    assert repr(jsonrpc_loopback(server)) == "<RPCClient connected timeout=10.0>"
    assert repr(jsonrpc_server(server).client()).endswith(" timeout=10.0>")

    async def aio_kits() -> list[str]:
        aio_server = aio.RPCServer()
        async with aio_loopback(aio_server) as in_memory, AioLoopbackServer(aio_server) as kit:
            shown = [repr(in_memory), repr(await kit.client())]
        await aio_server.shutdown()
        return shown

    in_memory, proxied = asyncio.run(aio_kits())
    assert in_memory == "<aio.RPCClient connected timeout=10.0>"
    assert proxied.endswith(" timeout=10.0>")


# -- LoopbackServer --------------------------------------------------------------


def test_loopback_server_real_port_and_clean_shutdown(server):
    before = Resources()
    with LoopbackServer(server) as srv:
        host, port = srv.address
        assert host == "127.0.0.1" and port > 0
        assert srv.address != srv.direct_address
        assert srv.client().add(2, 3) == 5
        with RPCClient(host, port, timeout=5) as own:
            assert own.echo([1, "x"]) == [1, "x"]
        assert srv.connections == 2
    assert server.address is None  # it started the server, so it shut it down
    before.assert_no_leaks()


def test_loopback_server_clients_take_its_timeout_unless_given_one(server):
    with LoopbackServer(server, timeout=3.5) as srv:
        # None means no timeout, as for RPCClient (it used to mean "the server's").
        timeouts = [c._timeout for c in (srv.client(), srv.client(timeout=None), srv.client(timeout=0.25))]
        assert timeouts == [3.5, None, 0.25]
        assert srv.client(timeout=None).add(1, 1) == 2


def test_loopback_server_with_faults(server):
    before = Resources()
    plan = FaultPlan(seed=6, max_chunk=2, server_to_client=DirectionFaults(max_chunk=500, latency=0.001))
    with LoopbackServer(server, plan) as srv:
        client = srv.client()
        assert client.echo("é" * 2000) == "é" * 2000
        assert client.add(1, 2) == 3
    before.assert_no_leaks()


def test_loopback_server_reset_and_the_server_keeps_serving(server):
    before = Resources()
    with LoopbackServer(server, FaultPlan(seed=1, reset_after=20)) as srv:
        with pytest.raises(ConnectionLost):
            srv.client().add(1, 2)
        with RPCClient(*srv.direct_address, timeout=5) as healthy:
            assert healthy.add(3, 4) == 7
    before.assert_no_leaks()


def test_loopback_server_refuses_connections(server):
    with LoopbackServer(server, FaultPlan(seed=9, refuse_connect=True)) as srv:
        with pytest.raises(ConnectionLost, match="refused"):
            srv.client()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(srv.address, timeout=2).close()


def test_loopback_server_exception_note(server):
    with pytest.raises(ConnectionLost) as info, LoopbackServer(server, FaultPlan(seed=13, disconnect_after=5)) as srv:
        srv.client().add(1, 2)
    assert any("seed=13" in note for note in info.value.__notes__)


def test_two_loopback_servers_share_one_server_and_it_restarts(server):
    with LoopbackServer(server) as first:
        with LoopbackServer(server, FaultPlan(max_chunk=1)) as second:
            assert first.direct_address == second.direct_address
            assert first.client().add(1, 1) == 2
            assert second.client().add(2, 2) == 4
        assert first.client().add(3, 3) == 6  # closing the second did not stop the server
    assert server.address is None
    with LoopbackServer(server) as again:
        assert again.client().add(4, 4) == 8


def test_loopback_server_leaves_an_already_started_server_running(server):
    address = server.start("127.0.0.1", 0)
    with LoopbackServer(server) as srv:
        assert srv.direct_address == address
        assert srv.client().add(1, 2) == 3
    assert server.address == address
    with RPCClient(*address, timeout=5) as client:
        assert client.add(1, 1) == 2


def test_close_is_idempotent_and_joins_proxy_threads(server):
    srv = LoopbackServer(server, FaultPlan(latency=0.001))
    clients = [srv.client() for _ in range(3)]
    for i, client in enumerate(clients):
        assert client.add(i, i) == 2 * i
    srv.close()
    srv.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("jsonrpc_mini-proxy")]
    assert all(not c._connected for c in clients)


def test_client_of_a_closed_loopback_server_is_a_runtime_error(server):
    # It tried the closed port: ConnectionLost "cannot connect ... Connection refused",
    # as if the server had died (AioLoopbackServer.client() says RuntimeError).
    with LoopbackServer(server) as srv:
        assert srv.client().add(1, 2) == 3
    with pytest.raises(RuntimeError, match=r"^this LoopbackServer is closed: call client\(\) inside `with"):
        srv.client()


def test_a_client_made_while_the_kit_closes_is_closed_too(server, monkeypatch):
    made = []

    def closing_meanwhile(*args, **kwargs):
        client = RPCClient(*args, **kwargs)
        made.append(client)
        srv.close()  # close() runs between the connect and the kit's record of the client
        return client

    srv = LoopbackServer(server)
    monkeypatch.setattr("jsonrpc_mini.testing._proxy.RPCClient", closing_meanwhile)
    with pytest.raises(RuntimeError, match="this LoopbackServer is closed"):
        srv.client()
    assert len(made) == 1 and not made[0]._connected


def _proxy_sockets(srv: LoopbackServer) -> list[str]:
    """Open TCP sockets of the proxy's connections: accepted on its port, or connected to the server."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            sock = socket.socket(fileno=os.dup(int(name)))
        except OSError:
            continue
        with sock:
            try:
                if sock.type != socket.SOCK_STREAM:
                    continue
                local, peer = sock.getsockname(), sock.getpeername()
            except (OSError, TypeError):
                continue
            if local == srv.address or peer == srv.direct_address:
                found.append(f"fd {name}: {local} -> {peer}")
    return found


def _relay_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.endswith(("-c2s", "-s2c"))]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to list descriptors")
def test_proxy_releases_a_connection_as_soon_as_it_ends(server):
    with LoopbackServer(server, FaultPlan(max_chunk=5)) as srv:
        for i in range(3):
            client = srv.client()
            assert client.add(i, 1) == i + 1
            client.close()
        deadline = time.monotonic() + 5
        # A relay thread closes its sockets and then ends: wait for both (bounded).
        while (_proxy_sockets(srv) or _relay_threads()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _proxy_sockets(srv) == []  # while the LoopbackServer is still open
        assert not _relay_threads()
