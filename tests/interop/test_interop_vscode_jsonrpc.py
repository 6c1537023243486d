"""vscode-jsonrpc (Node.js), current and previous major, over a plain TCP socket.

vscode-jsonrpc frames every message as ``Content-Length: N\\r\\n\\r\\n<body>`` and writes
the header and the body in two separate writes. Our server detects that framing per
connection; our client speaks it with ``RPCClient(framing="content-length")``.
vscode-jsonrpc numbers its requests from 0 and has no batches.
"""

from __future__ import annotations

import asyncio

import pytest
from _interop import (
    APP_ERROR,
    CUSTOM_ERROR,
    SERVER_KINDS,
    WAIT,
    Methods,
    check_fail_and_app_fail,
    describe,
    node_server,
    run_node,
    serving,
    slow_calls_from_threads,
    unicode_payload,
    wait_until,
)

from jsonrpc_mini import (
    InternalError,
    MethodNotFound,
    RPCClient,
    RPCTimeout,
    aio,
)

pytestmark = pytest.mark.timeout(120)

VSCODES = ["vscode-jsonrpc9", "vscode-jsonrpc10"]
PAYLOAD_SIZE = 300_000


def check_vscode_client_run(out, methods: Methods) -> None:
    o = out["outcomes"]
    assert o["add"] == {"result": 3}
    assert o["named"] == {"result": 7}
    assert o["no_params"] == {"result": None}
    assert o["single_null"] == {"result": None}
    assert o["not_found"] == {"error": {"code": -32601, "message": "Method not found: 'nope'", "data": None}}
    assert o["bad_params"]["error"]["code"] == -32602
    assert o["custom_error"] == {"error": CUSTOM_ERROR}
    assert o["app_error"] == {"error": APP_ERROR}
    assert o["internal_error"] == {"error": {"code": -32603, "message": "Internal error in 'boom'", "data": None}}
    assert o["unicode_echo_ok"] == {"result": True}
    assert out["local"]["payload"] == describe(unicode_payload(PAYLOAD_SIZE)), "JS built another payload"
    assert o["unicode_describe"] == {"result": describe(unicode_payload(PAYLOAD_SIZE))}
    assert o["cancelled"] == {"result": "cancelled-but-answered"}  # $/cancelRequest is ignored, the call completes
    assert o["parallel"] == [{"result": i + 1000} for i in range(20)]
    # Exactly one reply per request, ids 0..n-1 echoed as sent; nothing for the
    # notifications (including the unknown "$/cancelRequest").
    received = out["received"]
    assert sorted(message["id"] for message in received) == list(range(len(received)))
    assert len(received) == 9 + 2 + 1 + 20
    assert all(message["jsonrpc"] == "2.0" for message in received)
    assert received[0] == {"jsonrpc": "2.0", "id": 0, "result": 3}
    # Our server may run the two notifications concurrently: their order is not promised.
    assert sorted(methods.wait_records(2)) == ["note-1", "note-2"]


@pytest.mark.parametrize("vscode", VSCODES)
def test_vscode_client_to_our_server_autodetected(node, rpc_server, our_server, methods, vscode):
    out = run_node(node, "vscode_client.js", vscode, our_server[1], PAYLOAD_SIZE)
    check_vscode_client_run(out, methods)
    wait_until(lambda: rpc_server.connection_count == 0, "our server to close the connection vscode-jsonrpc ended")


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_vscode_client_to_our_content_length_server(node, methods, kind):
    with serving(kind, methods, framing="content-length") as server:
        out = run_node(node, "vscode_client.js", VSCODES[-1], server.address[1], PAYLOAD_SIZE)
    check_vscode_client_run(out, methods)


@pytest.fixture(params=VSCODES)
def vscode_server(request, node):
    with node_server(node, "vscode_server.js", request.param) as address:
        yield address


def client(address, timeout=10.0):
    return RPCClient(*address, timeout=timeout, framing="content-length")


def test_our_client_to_vscode_server_calls(vscode_server):
    with client(vscode_server) as c:
        assert c.add(1, 2) == 3
        assert c.call("add", 40, 2) == 42
        # Keyword arguments become one params object: vscode-jsonrpc hands it over whole.
        assert c.subtract(minuend=10, subtrahend=3) == 7
        assert c.params() == 0
        assert c.params(1, None, "x") == 3
        assert c.echo({"nested": [1.5, -2, True, None]}) == {"nested": [1.5, -2, True, None]}


def test_our_client_to_vscode_server_errors(vscode_server):
    with client(vscode_server) as c:
        with pytest.raises(MethodNotFound) as not_found:
            c.nope()
        assert (not_found.value.code, not_found.value.message) == (-32601, "Unhandled method nope")
        check_fail_and_app_fail(c)
        with pytest.raises(InternalError) as internal:
            c.boom()
        assert (internal.value.code, internal.value.message) == (-32603, "Request boom failed with message: kaput")
        assert c.add(2, 2) == 4


def test_our_client_ignores_messages_from_vscode_server(vscode_server, caplog):
    # A language-server-style peer sends its own notification and request to the client
    # before replying. Our client serves nothing: it logs and drops them, and the
    # call's reply and the next calls are unaffected.
    with client(vscode_server) as c:
        assert c.chatty() == "done"
        assert c.add(1, 1) == 2
        assert c.chatty() == "done"
        assert c._connected
    dropped = [r.getMessage() for r in caplog.records if r.name == "jsonrpc_mini"]
    assert any("window/logMessage" in message for message in dropped), dropped

    async def main() -> None:
        async with await aio.connect(*vscode_server, timeout=WAIT, framing="content-length") as ac:
            assert await ac.chatty() == "done"
            assert await ac.add(2, 2) == 4

    asyncio.run(main())


def test_our_client_to_vscode_server_notifications(vscode_server):
    with client(vscode_server) as c:
        c.notify("record", "one")
        c.notify("record", {"two": 2})
        # vscode-jsonrpc handles messages of a connection in arrival order.
        assert c.records() == ["one", {"two": 2}]


def test_our_client_to_vscode_server_unicode(vscode_server):
    payload = unicode_payload(PAYLOAD_SIZE)
    with client(vscode_server, timeout=20) as c:
        assert c.echo(payload) == payload
        assert c.describe(payload) == describe(payload)


def test_our_client_to_vscode_server_out_of_order_replies(vscode_server):
    with client(vscode_server) as c:
        assert slow_calls_from_threads(c, 60, 3) == {i: i for i in range(16)}


def test_our_client_batch_to_vscode_server_times_out_cleanly(vscode_server):
    # vscode-jsonrpc has no batches: it logs the array as an unknown message and never
    # answers. Our batch calls must end in RPCTimeout and the connection stay usable.
    with client(vscode_server) as c:
        with c.with_timeout(1.0).batch() as b:
            first = b.add(1, 2)
            second = b.add(3, 4)
        for pending in (first, second):
            with pytest.raises(RPCTimeout):
                pending.result()
        assert c.add(5, 6) == 11


def test_aio_client_to_vscode_server(vscode_server):
    payload = unicode_payload(PAYLOAD_SIZE)

    async def main() -> None:
        async with await aio.connect(*vscode_server, timeout=WAIT, framing="content-length") as c:
            assert await c.add(1, 2) == 3
            assert await c.subtract(minuend=10, subtrahend=3) == 7
            with pytest.raises(MethodNotFound) as not_found:
                await c.nope()
            assert not_found.value.message == "Unhandled method nope"
            with pytest.raises(InternalError) as internal:
                await c.boom()
            assert internal.value.message == "Request boom failed with message: kaput"
            await c.notify("record", "one")
            assert await c.records() == ["one"]
            assert await c.echo(payload) == payload
            assert await asyncio.gather(*(c.slow(i, 60 - 3 * i) for i in range(16))) == list(range(16))
            # No batches in vscode-jsonrpc: the batch times out, the connection stays usable.
            async with c.with_timeout(1.0).batch() as b:
                lost = b.add(1, 2)
            with pytest.raises(RPCTimeout):
                lost.result()
            assert await c.add(5, 6) == 11

    asyncio.run(main())
