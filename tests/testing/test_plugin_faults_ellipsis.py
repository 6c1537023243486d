"""``faults=...`` asks the plugin's factory fixtures for the test's plan (the marker's).

A fixture of a user's that wraps ``jsonrpc_server`` or ``jsonrpc_loopback`` could not
pass "faults not given" on (the plugin's sentinel was private): ``faults=None`` turns
the marker's plan off. Now its own default can be ``...`` and be passed on as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from types import EllipsisType
from typing import Any

import pytest

from jsonrpc_mini import ConnectionLost, RPCServer
from jsonrpc_mini.testing import FaultPlan, KitFaults, LoopbackFactory, LoopbackServer, LoopbackServerFactory

pytestmark = pytest.mark.timeout(60)


def _server() -> RPCServer:
    server = RPCServer()
    server.register_function(lambda a, b: a + b, name="add")
    return server


@pytest.fixture
def my_server(jsonrpc_server: LoopbackServerFactory) -> Callable[..., LoopbackServer]:
    """A user's wrapper, as README shows: ``faults`` not given is passed on as ``...``."""

    def make(faults: KitFaults | EllipsisType = ..., **kw: Any) -> LoopbackServer:
        return jsonrpc_server(_server(), faults, **kw)

    return make


@pytest.mark.jsonrpc_faults(seed=3, max_chunk=1)
def test_a_wrapper_passing_ellipsis_gets_the_markers_plan(
    my_server: Callable[..., LoopbackServer], jsonrpc_faults: FaultPlan
) -> None:
    srv = my_server()
    assert srv.faults == jsonrpc_faults == FaultPlan(seed=3, max_chunk=1)
    assert srv.client().add(2, 2) == 4
    assert my_server(None).faults is None  # (None still turns the plan off)


@pytest.mark.jsonrpc_faults(disconnect_after=5)
def test_loopback_with_ellipsis_goes_through_the_markers_plan(jsonrpc_loopback: LoopbackFactory) -> None:
    with pytest.raises(ConnectionLost):
        jsonrpc_loopback(_server(), faults=...).add(1, 2)
    assert jsonrpc_loopback(_server(), faults=None).add(1, 2) == 3
