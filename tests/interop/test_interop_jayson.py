"""jayson (Node.js), current and previous major, both directions over newline-style TCP.

jayson's TCP client opens one connection per request, half-closes straight after a
notification, and with a custom delimiter sends requests that do not end in a
newline. jayson 4's TCP server replies with no delimiter at all; jayson 5's ends
replies with its delimiter.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time

import pytest
import trustme
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

from jsonrpc_mini import InvalidParams, MethodNotFound, RPCClient, ServerError, aio

pytestmark = pytest.mark.timeout(120)

JAYSONS = ["jayson4", "jayson5"]
PAYLOAD_SIZE = 300_000


def ok(id_, result):
    return {"jsonrpc": "2.0", "id": id_, "result": result}


def err(id_, code, message, data=None):
    error = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": id_, "error": error}


def check_jayson_client_run(out, methods: Methods) -> None:
    r = out["responses"]
    assert r["add"] == ok(1, 3)
    assert r["named"] == ok("str-id", 7)
    assert r["zero_id"] == ok(0, "zero")
    assert r["float_id"] == ok(2.5, None)
    assert r["no_params"] == ok(3, None)
    assert r["generated_id"]["result"] == 42
    assert out["local"]["generated_id_is_uuid"], r["generated_id"]
    assert r["not_found"] == err(10, -32601, "Method not found: 'nope'")
    assert r["bad_params"]["id"] == 11
    assert r["bad_params"]["error"]["code"] == -32602
    assert r["custom_error"] == err(12, **CUSTOM_ERROR)
    assert r["app_error"] == err(13, APP_ERROR["code"], APP_ERROR["message"])
    assert r["internal_error"] == err(14, -32603, "Internal error in 'boom'")
    assert "secret" not in str(r["internal_error"])
    batch = sorted(r["batch"], key=lambda item: item["id"])
    assert batch == [ok(20, 3), err(21, -32601, "Method not found: 'nope'"), ok(22, -3)]
    # jayson does not wait for a reply to a notification; it hangs up at once.
    assert r["notification"] == {"no_response": True}
    assert r["notification_id_null"] == {"no_response": True}
    assert r["unicode_echo"]["id"] == 30
    assert out["local"]["unicode_echo_equal"], "the large Unicode string did not come back intact"
    assert out["local"]["payload"] == describe(unicode_payload(PAYLOAD_SIZE)), "JS built another payload"
    assert r["unicode_describe"] == ok(31, describe(unicode_payload(PAYLOAD_SIZE)))
    assert r["lone_surrogate"] == ok(32, "a\ud800b\udfffc")
    assert out["local"]["lone_surrogate_equal"]
    assert r["parallel"] == [ok(100 + i, i + 1000) for i in range(20)]
    # Notifications are run even though the sender closed its connection right after.
    records = methods.wait_records(3)
    assert sorted(records) == ["batch-note", "note-1", "note-id-null"]


@pytest.mark.parametrize("jayson", JAYSONS)
def test_jayson_client_to_our_server(node, rpc_server, our_server, methods, jayson):
    out = run_node(node, "jayson_client.js", jayson, our_server[1], '"\\n"', PAYLOAD_SIZE)
    check_jayson_client_run(out, methods)
    # jayson hangs up after each reply (or right after a notification): every one of
    # its ~40 one-shot connections must be closed on our side too, not left to idle out.
    wait_until(lambda: rpc_server.connection_count == 0, "our server to close jayson's connections")


def test_jayson4_client_without_newline_to_our_server(node, our_server, methods):
    # jayson 4 reads replies with a streaming parser, so its delimiter can be anything:
    # with " " no request ends in a newline. Our reader must answer at the closing brace.
    out = run_node(node, "jayson_client.js", "jayson4", our_server[1], '" "', PAYLOAD_SIZE)
    check_jayson_client_run(out, methods)


@pytest.fixture(params=JAYSONS)
def jayson_server(request, node):
    with node_server(node, "jayson_server.js", request.param) as address:
        yield address


def test_our_client_to_jayson_server_calls(jayson_server):
    with RPCClient(*jayson_server, timeout=10) as c:
        assert c.add(1, 2) == 3
        assert c.call("add", 40, 2) == 42
        assert c.subtract(minuend=10, subtrahend=3) == 7
        assert c.params() == "<absent>"  # no arguments: we leave "params" out
        assert c.params(1, "two", None) == [1, "two", None]
        assert c.params(k=[1, {"a": None}]) == {"k": [1, {"a": None}]}
        # Positional plus keyword: jayson just sees the object with digit keys.
        assert c.params(1, k=2) == {"0": 1, "k": 2}
        assert c.echo("") == ""
        # JavaScript numbers are doubles: an integer past 2**53 comes back rounded.
        assert c.echo(2**53 + 1) == 2**53
        assert c.echo(str(2**64)) == str(2**64)  # send big integers as strings instead
        assert c.echo({"nested": [1.5, -2, True, None]}) == {"nested": [1.5, -2, True, None]}


def test_our_client_to_jayson_server_errors(jayson_server):
    with RPCClient(*jayson_server, timeout=10) as c:
        with pytest.raises(MethodNotFound) as not_found:
            c.nope()
        assert not_found.value.code == -32601
        check_fail_and_app_fail(c)
        with pytest.raises(InvalidParams) as bad:
            c.subtract(1, 2)
        assert bad.value.code == -32602
        # The connection is still good after errors.
        assert c.add(2, 2) == 4


def test_our_client_to_jayson_server_batch_and_notifications(jayson_server):
    with RPCClient(*jayson_server, timeout=10) as c:
        with c.batch() as b:
            first = b.add(1, 2)
            b.notify("record", "in-batch")
            missing = b.nope()
            third = b.subtract(minuend=1, subtrahend=5)
        assert first.result() == 3
        assert third.result() == -4
        with pytest.raises(MethodNotFound):
            missing.result()
        c.notify("record", "plain")
        # jayson answers in arrival order on one connection, so this sees both notes.
        assert c.records() == ["in-batch", "plain"]


def test_our_client_to_jayson_server_unicode(jayson_server):
    payload = unicode_payload(PAYLOAD_SIZE)
    with RPCClient(*jayson_server, timeout=20) as c:
        assert c.echo(payload) == payload
        assert c.describe(payload) == describe(payload)
        assert c.echo("a\ud800b") == "a\ud800b"  # a lone surrogate travels as an escape


def test_our_client_to_jayson_server_concurrent_replies(jayson_server):
    # jayson 4 writes replies with no delimiter: replies that finish together arrive
    # glued in one chunk ("}{"), and must still be matched to their callers by id.
    with RPCClient(*jayson_server, timeout=10) as c:
        assert slow_calls_from_threads(c, 50, 2) == {i: i for i in range(16)}


@pytest.mark.parametrize(("jayson", "delimiter"), [("jayson4", b""), ("jayson5", b"\n")])
def test_jayson_server_reply_delimiter_quirk(node, jayson, delimiter):
    # Pins the quirk the README documents: jayson 4's server ends replies with nothing,
    # so two pipelined replies arrive as "}{"; jayson 5 ends each with a newline.
    requests = b"".join(b'{"jsonrpc":"2.0","method":"add","params":[%d,%d],"id":%d}\n' % (i, i, i) for i in (1, 2))
    expected = b'{"jsonrpc":"2.0","id":1,"result":2}' + delimiter + b'{"jsonrpc":"2.0","id":2,"result":4}' + delimiter
    with node_server(node, "jayson_server.js", jayson) as address:
        with socket.create_connection(address, timeout=WAIT) as sock:
            sock.sendall(requests)
            data = b""
            deadline = time.monotonic() + WAIT
            while len(data) < len(expected) and time.monotonic() < deadline:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        assert data == expected
        # And our client reads exactly these replies correctly, pipelined on one connection.
        with RPCClient(*address, timeout=WAIT) as c, c.batch() as b:
            pending = [b.add(i, i) for i in range(5)]
        assert [p.result() for p in pending] == [0, 2, 4, 6, 8]


def test_aio_client_to_jayson_server(jayson_server):
    payload = unicode_payload(PAYLOAD_SIZE)

    async def main() -> None:
        async with await aio.connect(*jayson_server, timeout=WAIT) as c:
            assert await c.add(1, 2) == 3
            assert await c.subtract(minuend=10, subtrahend=3) == 7
            with pytest.raises(MethodNotFound):
                await c.nope()
            with pytest.raises(ServerError) as custom:
                await c.fail()
            assert (custom.value.code, custom.value.message, custom.value.data) == (
                CUSTOM_ERROR["code"],
                CUSTOM_ERROR["message"],
                CUSTOM_ERROR["data"],
            )
            async with c.batch() as b:
                first = b.add(1, 2)
                b.notify("record", "in-batch")
                missing = b.nope()
            assert first.result() == 3
            with pytest.raises(MethodNotFound):
                missing.result()
            await c.notify("record", "plain")
            assert await c.records() == ["in-batch", "plain"]
            assert await c.echo(payload) == payload
            # Replies finish out of order and, from jayson 4, arrive glued without delimiters.
            assert await asyncio.gather(*(c.slow(i, 50 - 2 * i) for i in range(16))) == list(range(16))

    asyncio.run(main())


# --- TLS: jayson.client.tls -> our TLS servers, our clients -> jayson.server.tls ------


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A throwaway CA and a certificate for 127.0.0.1, as files for node and contexts for us."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    folder = tmp_path_factory.mktemp("tls")
    files = {"ca": folder / "ca.pem", "chain": folder / "chain.pem", "key": folder / "key.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    files["chain"].write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(files["key"]))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return {"files": files, "server": server_ctx, "client": client_ctx}


@pytest.mark.parametrize("kind", SERVER_KINDS)
@pytest.mark.parametrize("jayson", JAYSONS)
def test_jayson_tls_client_to_our_tls_server(node, methods, tls, kind, jayson):
    with serving(kind, methods, ssl=tls["server"]) as server:
        port = server.address[1]
        out = run_node(node, "jayson_client.js", jayson, port, '"\\n"', PAYLOAD_SIZE, tls["files"]["ca"])
        check_jayson_client_run(out, methods)
        wait_until(lambda: server.connection_count == 0, "our TLS server to close jayson's connections")


@pytest.mark.parametrize("jayson", JAYSONS)
def test_our_clients_to_jayson_tls_server(node, tls, jayson):
    files = tls["files"]
    payload = unicode_payload(PAYLOAD_SIZE)
    with node_server(node, "jayson_server.js", jayson, files["chain"], files["key"]) as address:
        with RPCClient(*address, timeout=WAIT, ssl=tls["client"]) as c:
            assert c.add(1, 2) == 3
            assert c.subtract(minuend=10, subtrahend=3) == 7
            with pytest.raises(ServerError) as custom:
                c.fail()
            assert custom.value.code == CUSTOM_ERROR["code"]
            c.notify("record", "over-tls")
            assert c.records() == ["over-tls"]
            assert c.echo(payload) == payload

        async def main() -> None:
            async with await aio.connect(*address, timeout=WAIT, ssl=tls["client"]) as ac:
                assert await ac.add(2, 3) == 5
                with pytest.raises(MethodNotFound):
                    await ac.nope()
                assert await asyncio.gather(*(ac.slow(i, 40 - 2 * i) for i in range(12))) == list(range(12))

        asyncio.run(main())
