"""loopback() counts as a user of the server.

A LoopbackServer that started the server shuts it down when the last user is
done. A loopback() was not counted: a LoopbackServer leaving while one was open
shut the server down under it (its connection closed).
"""

from __future__ import annotations

import threading

import pytest

from jsonrpc_mini import RPCServer
from jsonrpc_mini.testing import LoopbackServer, loopback

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def server():
    srv = RPCServer(shutdown_grace=0.2)
    srv.gate = threading.Event()
    srv.entered = threading.Event()

    @srv.register
    def add(a, b):
        return a + b

    @srv.register
    def held(value):
        srv.entered.set()
        srv.gate.wait(30)
        return value

    yield srv
    srv.gate.set()
    srv.shutdown()


def test_a_loopback_is_a_user_of_the_server(server):
    with loopback(server) as client:
        with LoopbackServer(server) as lb:  # starts the server, then leaves
            assert lb.client().add(1, 2) == 3
        assert server.address is not None
        assert client.add(2, 2) == 4  # its connection is still open
    assert server.address is None  # the last user out shut down what the kit started


def test_a_call_in_flight_on_a_loopback_outlives_the_loopback_server(server):
    results = []
    with loopback(server) as client:
        caller = threading.Thread(target=lambda: results.append(client.held("in flight")))
        with LoopbackServer(server):
            caller.start()
            assert server.entered.wait(30)  # the server runs the call
        server.gate.set()
        caller.join(30)
        assert results == ["in flight"]
    assert server.address is None


def test_loopback_leaves_a_server_it_did_not_start_alone(server):
    with loopback(server) as client:
        assert client.add(1, 1) == 2
    assert server.address is None  # never started by a loopback()
    address = server.start("127.0.0.1", 0)
    with loopback(server), LoopbackServer(server):
        pass
    assert server.address == address  # the test started it: left running
