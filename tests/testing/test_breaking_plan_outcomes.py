"""What a breaking plan may give a correct client and server, as the docs list it.

A user's property test over ``rst.fault_plans()`` accepted ConnectionLost and
RPCTimeout, as the strategy's docstring said, and failed on a ParseError: a
half-close of the client's direction cuts a request short, and the server answers
the partial value with -32700 (id null), which fails the one call in flight.
"""

from __future__ import annotations

import pytest

from jsonrpc_mini import ParseError, RPCServer
from jsonrpc_mini.testing import DirectionFaults, FaultPlan, loopback
from jsonrpc_mini.testing import strategies as rst

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("cut", [1, 5, 30])
def test_a_request_cut_by_the_clients_half_close_raises_the_servers_parse_error(cut: int) -> None:
    server = RPCServer()
    server.register_function(lambda value: value, name="echo")
    plan = FaultPlan(seed=0, client_to_server=DirectionFaults(half_close_after=cut))
    with loopback(server, plan, timeout=5) as client, pytest.raises(ParseError, match="incomplete JSON value"):
        client.echo("x" * 40)


def test_the_strategy_names_every_outcome_of_a_breaking_plan() -> None:
    doc = " ".join((rst.fault_plans.__doc__ or "").split())
    for outcome in ("ConnectionLost", "RPCTimeout", "ParseError"):
        assert f"``{outcome}``" in doc
    assert "half-close of the client's direction" in doc
