"""The plugin's fixtures used directly in this suite (the separate-process run is test_plugin.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from jsonrpc_mini import ConnectionLost, RPCServer
from jsonrpc_mini.testing import FakeSocket, FaultPlan, LoopbackServer, Resources

pytestmark = pytest.mark.timeout(60)


def make_server() -> RPCServer:
    server = RPCServer()
    server.register_function(lambda a, b: a + b, name="add")
    return server


def test_seed_comes_from_the_option(jsonrpc_seed, pytestconfig):
    assert jsonrpc_seed == pytestconfig.getoption("--jsonrpc-seed")


def test_plan_without_marker_is_inactive(jsonrpc_faults, jsonrpc_seed):
    assert jsonrpc_faults == FaultPlan(seed=jsonrpc_seed)


@pytest.mark.jsonrpc_faults(seed=3, max_chunk=1)
def test_marker_applies_to_loopback_and_server(jsonrpc_no_leaks, jsonrpc_loopback, jsonrpc_server, jsonrpc_faults):
    assert isinstance(jsonrpc_no_leaks, Resources)
    assert jsonrpc_faults == FaultPlan(seed=3, max_chunk=1)
    server = make_server()
    assert jsonrpc_loopback(server).add(1, 2) == 3
    srv = jsonrpc_server(server)
    assert isinstance(srv, LoopbackServer) and srv.faults == jsonrpc_faults
    assert srv.client().add(2, 2) == 4


@pytest.mark.jsonrpc_faults(disconnect_after=5)
def test_faults_argument_overrides_the_marker(jsonrpc_loopback):
    server = make_server()
    with pytest.raises(ConnectionLost):
        jsonrpc_loopback(server).add(1, 2)
    assert jsonrpc_loopback(server, faults=None).add(1, 2) == 3


@pytest.mark.jsonrpc_faults(1)
def test_marker_rejects_positional_arguments(request):
    with pytest.raises(TypeError, match="keyword arguments only"):
        request.getfixturevalue("jsonrpc_faults")


def test_fake_socket_factory_closes_at_teardown(jsonrpc_fake_socket):
    sock = jsonrpc_fake_socket([b"x"], eof=True)
    assert isinstance(sock, FakeSocket) and sock.recv(5) == b"x"


def test_nothing_left_running_by_earlier_fixture_tests():
    assert not [t for t in threading.enumerate() if t.name.startswith("jsonrpc_mini-proxy")]


@pytest.mark.jsonrpc_faults(max_chunk=1, latency=0.001)
class TestMarkersCombine:
    """README: the module's, class's and test's markers combine field by field, the closest winning."""

    @pytest.mark.jsonrpc_faults(max_chunk=3, awkward_splits=True)
    def test_the_closest_marker_wins_field_by_field(self, jsonrpc_faults, jsonrpc_seed):
        assert jsonrpc_faults == FaultPlan(seed=jsonrpc_seed, max_chunk=3, awkward_splits=True, latency=0.001)

    def test_the_readme_says_so(self):
        readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
        assert "class and test combined field by field, the closest one's value\nwinning" in readme
