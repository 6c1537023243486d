"""jsonrpcclient (message building and parsing) and jsonrpcserver (dispatch), over raw sockets.

Neither package moves bytes itself: jsonrpcclient builds request text and parses
response text, jsonrpcserver turns request text into response text. The tests carry
their text over plain TCP sockets. jsonrpcclient writes ``json.dumps`` output (spaces
after separators, every non-ASCII character escaped, ``"params": []`` when there are
no arguments) and no newline at the end.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from _interop import (
    APP_ERROR,
    CUSTOM_ERROR,
    WAIT,
    check_fail_and_app_fail,
    describe,
    notes_around_a_batch,
    unicode_payload,
)
from jsonrpcclient import Error, Ok, notification_json, parse, parse_json, request, request_json, request_json_uuid

with warnings.catch_warnings():
    # jsonrpcserver 5.0.9 reads its schema with importlib.resources' deprecated API on import.
    warnings.simplefilter("ignore", DeprecationWarning)
    import jsonrpcserver

from jsonrpc_mini import InvalidParams, MethodNotFound, RPCClient

pytestmark = pytest.mark.timeout(60)

PAYLOAD_SIZE = 300_000


class Line:
    """A raw socket that sends text as given and reads replies one line at a time."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=WAIT)
        self.file = self.sock.makefile("rb")

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode("utf-8"))  # no newline: the JSON value ends at its brace

    def reply(self) -> str:
        line = self.file.readline()
        assert line.endswith(b"\n"), f"no complete reply: {line[:200]!r}"
        return line.decode("utf-8")

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def line(our_server) -> Iterator[Line]:
    conn = Line(our_server)
    try:
        yield conn
    finally:
        conn.close()


def test_jsonrpcclient_calls(line):
    line.send(request_json("add", params=(1, 2), id=1))
    assert parse_json(line.reply()) == Ok(3, 1)
    line.send(request_json("subtract", params={"minuend": 10, "subtrahend": 3}, id="s"))
    assert parse_json(line.reply()) == Ok(7, "s")
    line.send(request_json("nothing", id=0))  # "params": [] - no arguments
    assert parse_json(line.reply()) == Ok(None, 0)
    text = request_json_uuid("echo", params=("u",))
    line.send(text)
    assert parse_json(line.reply()) == Ok("u", json.loads(text)["id"])


def test_jsonrpcclient_errors(line):
    line.send(request_json("nope", id=1))
    assert parse_json(line.reply()) == Error(-32601, "Method not found: 'nope'", None, 1)
    line.send(request_json("fail", id=2))
    assert parse_json(line.reply()) == Error(CUSTOM_ERROR["code"], CUSTOM_ERROR["message"], CUSTOM_ERROR["data"], 2)
    line.send(request_json("app_fail", id=3))
    assert parse_json(line.reply()) == Error(APP_ERROR["code"], APP_ERROR["message"], None, 3)
    line.send(request_json("add", params=(1,), id=4))
    bad = parse_json(line.reply())
    assert isinstance(bad, Error)
    assert (bad.code, bad.id) == (-32602, 4)
    # Our parse-error reply (id null) is something jsonrpcclient can read too.
    line.send('{"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": 5,]\n')
    broken = parse_json(line.reply())
    assert isinstance(broken, Error)
    assert (broken.code, broken.id) == (-32700, None)
    line.send(request_json("add", params=(2, 2), id=6))
    assert parse_json(line.reply()) == Ok(4, 6)


def test_jsonrpcclient_batch_and_notifications(line, methods):
    line.send(notification_json("record", params=("plain",)))
    batch = [
        request("add", params=(1, 2), id=10),
        json.loads(notification_json("record", params=("in-batch",))),
        request("nope", id=11),
        request("subtract", params={"minuend": 1, "subtrahend": 5}, id=12),
    ]
    line.send(json.dumps(batch))
    replies = sorted(parse(json.loads(line.reply())), key=lambda r: r.id)
    assert replies == [Ok(3, 10), Error(-32601, "Method not found: 'nope'", None, 11), Ok(-4, 12)]
    assert sorted(methods.wait_records(2)) == ["in-batch", "plain"]


def test_jsonrpcclient_unicode(line):
    payload = unicode_payload(PAYLOAD_SIZE)
    text = request_json("echo", params=(payload,), id=1)
    assert text.isascii()  # jsonrpcclient escapes everything, astral characters as surrogate pairs
    line.send(text)
    assert parse_json(line.reply()) == Ok(payload, 1)
    line.send(request_json("describe", params=(payload,), id=2))
    assert parse_json(line.reply()) == Ok(describe(payload), 2)
    line.send(request_json("echo", params=("a\ud800b",), id=3))
    assert parse_json(line.reply()) == Ok("a\ud800b", 3)


# --- our client -> a jsonrpcserver dispatcher on a line-based socket server -------

_records: list[Any] = []


def _add(a: int, b: int) -> Any:
    return jsonrpcserver.Success(a + b)


def _subtract(minuend: int, subtrahend: int) -> Any:
    return jsonrpcserver.Success(minuend - subtrahend)


def _echo(value: Any) -> Any:
    return jsonrpcserver.Success(value)


def _fail() -> Any:
    return jsonrpcserver.Error(CUSTOM_ERROR["code"], CUSTOM_ERROR["message"], CUSTOM_ERROR["data"])


def _record(value: Any) -> Any:
    _records.append(value)
    return jsonrpcserver.Success(None)


def _get_records() -> Any:
    return jsonrpcserver.Success(list(_records))


def _app_fail() -> Any:
    return jsonrpcserver.Error(APP_ERROR["code"], APP_ERROR["message"])


METHODS = {
    "app_fail": _app_fail,
    "add": _add,
    "subtract": _subtract,
    "echo": _echo,
    "fail": _fail,
    "record": _record,
    "records": _get_records,
}


class _LineHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for raw in self.rfile:
            reply = jsonrpcserver.dispatch(raw.decode("utf-8"), methods=METHODS)
            if reply:
                self.wfile.write(reply.encode("utf-8") + b"\n")


@pytest.fixture
def dispatch_server() -> Iterator[tuple[str, int]]:
    _records.clear()
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _LineHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_address[:2]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(WAIT)


def test_our_client_to_jsonrpcserver(dispatch_server):
    payload = unicode_payload(PAYLOAD_SIZE)
    with RPCClient(*dispatch_server, timeout=WAIT) as c:
        assert c.add(1, 2) == 3
        assert c.subtract(minuend=10, subtrahend=3) == 7
        assert c.echo(payload) == payload
        with pytest.raises(MethodNotFound) as not_found:
            c.nope()
        assert (not_found.value.code, not_found.value.message, not_found.value.data) == (
            -32601,
            "Method not found",
            "nope",
        )
        check_fail_and_app_fail(c)
        with pytest.raises(InvalidParams) as bad:
            c.add(1)
        assert bad.value.code == -32602
        assert notes_around_a_batch(c) == ["one", "two"]
