"""Round trip: whatever JSON a caller passes, an echo call gives exactly that back.

Through the sans-IO core alone, the in-memory loopback, real 127.0.0.1 TCP, and the
test kit's fault plans (re-chunking only: same results; breaking: the right value
or ConnectionLost/RPCTimeout, never a wrong value).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from jsonrpc_mini import ConnectionLost, ParseError, RPCClient, RPCServer, RPCTimeout
from jsonrpc_mini._client_protocol import ClientConnection
from jsonrpc_mini._codec import ErrorResponse, Request, Response, build_params
from jsonrpc_mini._dispatch import Registry, outcome_response
from jsonrpc_mini._protocol import Batch, Call, ServerConnection
from jsonrpc_mini.testing import FaultPlan, LoopbackServer, loopback
from jsonrpc_mini.testing import strategies as rst

from ._budget import scaled


def echo(*args: Any, **kwargs: Any) -> Any:
    return {"args": list(args), "kwargs": kwargs}


def expected(arguments: rst.Arguments) -> Any:
    return {"args": list(arguments.args), "kwargs": arguments.kwargs}


# Any JSON value: ordinary shapes, nesting up to 100 levels (a request adds 2 and a
# response 3 around an argument; the default limit is 128), and payloads around and
# far above 1024 bytes.
any_value = st.one_of(
    rst.json_values(),
    rst.deeply_nested(max_depth=100),
    rst.large_values(max_bytes=200_000),
)
# Fixed examples every run includes: far past 1024 bytes (astral characters straddle
# every read boundary), within a byte of 1024, and 100 levels of nesting.
BIG_ASTRAL = '\U0001f600\u00e9\\"\n\u2028' * 30_000
AROUND_1K = "x" * 1021 + "\U0001f600"
DEEP: Any = 0
for _level in range(50):
    DEEP = [{"d": DEEP}]
small_value = st.one_of(rst.json_values(max_leaves=10), rst.large_values(max_bytes=3000))


def call(client: RPCClient, arguments: rst.Arguments, attribute: bool) -> Any:
    if attribute:
        return client.echo(*arguments.args, **arguments.kwargs)
    return client.call("echo", *arguments.args, **arguments.kwargs)


def make_server() -> RPCServer:
    server = RPCServer(shutdown_grace=2.0)
    server.register_function(echo)
    return server


@pytest.fixture(scope="module")
def server() -> Iterator[RPCServer]:
    server = make_server()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def tcp_address() -> Iterator[tuple[str, int]]:
    server = make_server()
    host, port = server.start("127.0.0.1", 0)  # type: ignore[misc]
    yield host, port
    server.shutdown()


@pytest.fixture(scope="module")
def tcp_clients(tcp_address: tuple[str, int]) -> Iterator[dict[str, RPCClient]]:
    clients = {
        framing: RPCClient(*tcp_address, timeout=60.0, framing=framing) for framing in ("newline", "content-length")
    }
    yield clients
    for client in clients.values():
        client.close()


# --- the sans-IO core ------------------------------------------------------------


def serve_core(server: ServerConnection, registry: Registry) -> bytes:
    """Run every call the server core has ready; return the bytes it answers."""
    out = b""
    while (event := server.next_event()) is not None:
        if isinstance(event, Call):
            prepared = registry.prepare(event.message)
            reply = outcome_response(event.message, prepared.run())
            out += server.encode(reply) if reply is not None else b""
        elif isinstance(event, Batch):
            replies = [
                item if isinstance(item, ErrorResponse) else outcome_response(item, registry.prepare(item).run())
                for item in event.items
            ]
            out += server.encode_batch(replies) or b""
        else:
            raise AssertionError(f"unexpected server event {event!r}")
    return out


# Invariant: client core -> server core -> handler -> client core returns every echoed
# argument exactly (types, big ints, -0.0, astral text), for pipelined calls and batches,
# in either framing, however both byte streams are split.
@scaled(1.0)
@given(
    calls=st.lists(rst.arguments(small_value), min_size=1, max_size=4),
    as_batch=st.booleans(),
    framing=st.sampled_from(["newline", "content-length"]),
    data=st.data(),
)
def test_core_round_trip_under_any_chunking(calls, as_batch, framing, data):
    registry = Registry()
    registry.register_function(echo)
    client = ClientConnection(framing=framing)
    server = ServerConnection()
    requests = [Request("echo", build_params(a.args, a.kwargs), client.next_id()) for a in calls]
    wire = client.encode(requests) if as_batch else b"".join(client.encode(r) for r in requests)
    answer = b""
    for chunk in data.draw(rst.chunkings(wire), label="request chunks"):
        server.receive_data(chunk)
        answer += serve_core(server, registry)
    got: dict[Any, Any] = {}
    for chunk in data.draw(rst.chunkings(answer), label="reply chunks"):
        client.receive_data(chunk)
        while (event := client.next_event()) is not None:
            assert isinstance(event, Response), event
            assert event.id not in got
            got[event.id] = event.result
    assert sorted(got) == [r.id for r in requests]
    for request, arguments in zip(requests, calls, strict=True):
        assert rst.same_json(got[request.id], expected(arguments))


# --- real TCP --------------------------------------------------------------------------


# Invariant: over real 127.0.0.1 TCP, an echo call (attribute or call(), newline or
# Content-Length framing) returns exactly its arguments for any JSON values and any
# argument shape, payloads far past 1024 bytes and deep nesting included.
@scaled(0.5)
@given(
    arguments=rst.arguments(any_value), attribute=st.booleans(), framing=st.sampled_from(["newline", "content-length"])
)
@example(arguments=rst.Arguments((BIG_ASTRAL,), {"k": [1] * 40_000}), attribute=False, framing="newline")
@example(arguments=rst.Arguments((AROUND_1K, DEEP), {"method": 0, "self": 2**70}), attribute=True, framing="newline")
@example(arguments=rst.Arguments((BIG_ASTRAL,), {"k": AROUND_1K}), attribute=False, framing="content-length")
def test_tcp_echo_round_trip(tcp_clients, arguments, attribute, framing):
    result = call(tcp_clients[framing], arguments, attribute)
    assert rst.same_json(result, expected(arguments))


# Invariant: a batch over TCP returns each member's echo to its own BatchResult.
@scaled(0.25)
@given(batch=st.lists(rst.arguments(small_value), min_size=1, max_size=5))
def test_tcp_batch_round_trip(tcp_clients, batch):
    with tcp_clients["newline"].batch() as b:
        results = [b.echo(*a.args, **a.kwargs) for a in batch]
    for result, arguments in zip(results, batch, strict=True):
        assert rst.same_json(result.result(), expected(arguments))


# --- in-memory loopback -----------------------------------------------------------------


# Invariant: through the in-memory loopback the echo returns exactly its arguments.
@scaled(0.5)
@given(arguments=rst.arguments(any_value), attribute=st.booleans())
@example(arguments=rst.Arguments((BIG_ASTRAL, AROUND_1K), {"method": DEEP}), attribute=True)
def test_loopback_echo_round_trip(server, arguments, attribute):
    with loopback(server, timeout=60.0) as client:
        assert rst.same_json(call(client, arguments, attribute), expected(arguments))


# Invariant: a fault plan that only re-chunks the streams (1-byte pieces, cuts inside
# UTF-8 sequences and escapes, different per direction) changes no result.
@scaled(0.5)
@given(plan=rst.fault_plans(breaking=False), calls=st.lists(rst.arguments(small_value), min_size=1, max_size=3))
def test_loopback_rechunking_changes_nothing(server, plan, calls):
    with loopback(server, faults=plan, timeout=60.0) as client:
        for arguments in calls:
            assert rst.same_json(call(client, arguments, False), expected(arguments)), plan


# Invariant: the same holds through the TCP fault proxy of LoopbackServer.
@scaled(0.15)
@given(plan=rst.fault_plans(breaking=False), calls=st.lists(rst.arguments(small_value), min_size=1, max_size=3))
def test_tcp_proxy_rechunking_changes_nothing(plan, calls):
    srv = make_server()
    with LoopbackServer(srv, faults=plan, timeout=60.0) as proxy:
        client = proxy.client()
        for arguments in calls:
            assert rst.same_json(call(client, arguments, False), expected(arguments)), plan


def check_calls_under_faults(client: RPCClient, plan: FaultPlan, calls: list[rst.Arguments]) -> None:
    """Each call returns its own echo or raises ConnectionLost/RPCTimeout; never a wrong value."""
    for index, arguments in enumerate(calls):
        tagged = rst.Arguments((index, *arguments.args), arguments.kwargs)
        try:
            result = call(client, tagged, False)
        except (ConnectionLost, RPCTimeout):
            continue
        except ParseError as exc:
            # Only when client->server is half-closed inside a request: the server then
            # truthfully answers -32700 (id null) for the truncated value, and the client
            # gives that answer to its one pending call (tests/faults decides the same).
            assert plan.direction("client_to_server").half_close_after is not None, exc
            assert "end of stream" in exc.message, exc
            continue
        assert rst.same_json(result, expected(tagged)), json.dumps(result)[:200]


# Invariant: with faults that break the link (close, reset, half-close, stall, cut
# mid-frame), every call returns the right value or raises ConnectionLost/RPCTimeout.
@scaled(0.5)
@given(plan=rst.fault_plans(breaking=True), calls=st.lists(rst.arguments(small_value), min_size=1, max_size=4))
def test_loopback_breaking_faults_never_give_a_wrong_value(server, plan, calls):
    with loopback(server, faults=plan, timeout=0.5) as client:
        check_calls_under_faults(client, plan, calls)


# Invariant: the same through the TCP fault proxy (real sockets on both sides).
@scaled(0.15)
@given(plan=rst.fault_plans(breaking=True), calls=st.lists(rst.arguments(small_value), min_size=1, max_size=3))
def test_tcp_proxy_breaking_faults_never_give_a_wrong_value(plan, calls):
    srv = make_server()
    with LoopbackServer(srv, faults=plan, timeout=0.5) as proxy:
        try:
            client = proxy.client()
        except (ConnectionLost, RPCTimeout):
            return
        check_calls_under_faults(client, plan, calls)
