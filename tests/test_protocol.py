"""The sans-IO connections: bytes in, events out, fed whole and split at every byte."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest

from jsonrpc_mini._client_protocol import ClientConnection
from jsonrpc_mini._codec import ErrorObject, ErrorResponse, Notification, Request, Response
from jsonrpc_mini._json import JsonCodec
from jsonrpc_mini._protocol import Batch, Call, Closed, Reply, ServerConnection, Violation

PARSE, INVALID = -32700, -32600


def drain(conn: ServerConnection | ClientConnection) -> list[Any]:
    out = []
    for _ in range(100_000):
        event = conn.next_event()
        if event is None:
            return out
        out.append(event)
    raise AssertionError("the connection never stops producing events")


def run(make: Any, chunks: list[bytes], eof: bool) -> list[Any]:
    conn = make()
    events: list[Any] = []
    for chunk in chunks:
        conn.receive_data(chunk)
        events += drain(conn)
    if eof:
        conn.receive_data(b"")
        events += drain(conn)
        assert drain(conn) == []
    return events


def splits(data: bytes) -> Iterator[list[bytes]]:
    yield [data]
    for i in range(1, len(data)):
        yield [data[:i], data[i:]]
    yield [data[i : i + 1] for i in range(len(data))]


def server_events(data: bytes, *, eof: bool = True, **opts: Any) -> list[Any]:
    """Events of a ServerConnection; the same for every chunking of ``data``."""
    expected = run(lambda: ServerConnection(**opts), [data], eof)
    for chunks in splits(data):
        assert run(lambda: ServerConnection(**opts), chunks, eof) == expected, [len(c) for c in chunks]
    return expected


def client_events(data: bytes, *, eof: bool = True, **opts: Any) -> list[Any]:
    expected = run(lambda: ClientConnection(**opts), [data], eof)
    for chunks in splits(data):
        assert run(lambda: ClientConnection(**opts), chunks, eof) == expected, [len(c) for c in chunks]
    return expected


def reply_json(event: Any) -> Any:
    assert isinstance(event, Reply), event
    assert event.data.endswith(b"\n")
    return json.loads(event.data)


def cl(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def wire(**members: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", **members}).encode() + b"\n"


# -- server ----------------------------------------------------------------------


def test_single_call_and_notification() -> None:
    data = wire(method="add", params=[1, 2], id=0) + wire(method="log", params={"m": "x"})
    events = server_events(data)
    assert events == [Call(Request("add", [1, 2], 0)), Call(Notification("log", {"m": "x"})), Closed()]


def test_a_value_without_newline_is_delivered_before_eof() -> None:
    events = server_events(b'{"jsonrpc":"2.0","method":"m","id":"u"}', eof=False)
    assert events == [Call(Request("m", None, "u"))]


def test_batch_with_valid_and_invalid_members() -> None:
    batch = [
        {"jsonrpc": "2.0", "method": "a", "id": 1},
        1,
        {"jsonrpc": "2.0", "method": "n"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": 5, "id": 9},
        [],
    ]
    (event, closed) = server_events(json.dumps(batch).encode() + b"\n")
    assert closed == Closed()
    assert isinstance(event, Batch)
    items = event.items
    assert items[0] == Request("a", None, 1)
    assert items[2] == Notification("n", None)
    for i in (1, 3, 5):
        assert isinstance(items[i], ErrorResponse)
        assert (items[i].id, items[i].error.code) == (None, INVALID)  # type: ignore[union-attr]
    assert isinstance(items[4], ErrorResponse)
    assert (items[4].id, items[4].error.code) == (9, INVALID)  # the id was valid: echoed


def test_empty_batch_is_one_32600_not_an_array() -> None:
    (event, _) = server_events(b"[]\n")
    body = reply_json(event)
    assert body == {"jsonrpc": "2.0", "id": None, "error": {"code": INVALID, "message": "Invalid Request: empty batch"}}
    assert event.close is False


def test_batch_replies_and_all_notification_batches() -> None:
    conn = ServerConnection()
    assert conn.encode_batch([None, None]) is None
    out = conn.encode_batch([Response(1, "a"), None, ErrorResponse(None, ErrorObject(INVALID, "x"))])
    assert out is not None
    assert out.endswith(b"\n")
    assert json.loads(out) == [
        {"jsonrpc": "2.0", "id": 1, "result": "a"},
        {"jsonrpc": "2.0", "id": None, "error": {"code": INVALID, "message": "x"}},
    ]


@pytest.mark.parametrize(
    "bad",
    [b'{"jsonrpc":"2.0","method":"m","id":1]', b'{"a":"x\n', b"[1,2}", b"junk", b'{"a":NaN}', b'{"a":"\xff"}'],
)
def test_parse_error_reply_with_id_null_then_the_connection_continues(bad: bytes) -> None:
    events = server_events(bad + b"\n" + wire(method="m", id=2))
    assert events[-2:] == [Call(Request("m", None, 2)), Closed()]
    assert events[:-2]
    for event in events[:-2]:
        body = reply_json(event)
        assert body["id"] is None
        assert body["error"]["code"] == PARSE
        assert event.close is False


def test_invalid_request_reply_echoes_a_valid_id() -> None:
    events = server_events(wire(method=1, id=4) + wire(method="m", id=True) + wire(method="m", params="s", id="k"))
    assert [reply_json(e)["id"] for e in events[:-1]] == [4, None, "k"]
    assert {reply_json(e)["error"]["code"] for e in events[:-1]} == {INVALID}


def test_too_large_is_one_fatal_32600() -> None:
    data = wire(method="m", params=["x" * 100], id=1) + wire(method="m", id=2)
    events = server_events(data, max_message_size=64)
    (event, closed) = events
    body = reply_json(event)
    assert body["id"] is None
    assert body["error"]["code"] == INVALID
    assert "message too large" in body["error"]["message"]
    assert event.close is True
    assert closed == Closed()


def test_nesting_too_deep_is_32600_and_not_fatal() -> None:
    deep = b'{"jsonrpc":"2.0","method":"m","params":[[[[1]]]],"id":1}\n'
    events = server_events(deep + wire(method="m", params=[[1]], id=2), max_depth=3)
    assert reply_json(events[0])["error"]["code"] == INVALID
    assert events[0].close is False
    assert events[1] == Call(Request("m", [[1]], 2))


def test_partial_message_at_eof_and_in_message() -> None:
    conn = ServerConnection()
    assert not conn.in_message
    conn.receive_data(b'{"jsonrpc":"2.0",')
    assert drain(conn) == []
    assert conn.in_message
    conn.receive_data(b"")
    (reply, closed) = drain(conn)
    assert reply_json(reply)["error"]["code"] == PARSE
    assert closed == Closed()
    assert not conn.in_message


def test_closed_is_reported_once_and_only_at_eof() -> None:
    conn = ServerConnection()
    conn.receive_data(wire(method="m", id=1))
    assert drain(conn) == [Call(Request("m", None, 1))]
    assert conn.next_event() is None
    conn.receive_data(b"")
    assert conn.next_event() == Closed()
    assert conn.next_event() is None


def test_content_length_detected_and_replies_framed_the_same_way() -> None:
    body = b'{"jsonrpc":"2.0","method":"m","params":{"a":"\xc3\xa9"},"id":0}'
    events = server_events(cl(body) + cl(b"{bad") + cl(b"[]"))
    assert events[0] == Call(Request("m", {"a": "é"}, 0))
    assert events[-1] == Closed()
    conn = ServerConnection()
    conn.receive_data(cl(body) + cl(b"{bad"))
    assert conn.framing == "content-length"
    drain(conn)
    out = conn.encode(Response(0, "é"))
    assert out == cl('{"jsonrpc":"2.0","id":0,"result":"é"}\n'.encode())  # the body ends with our newline
    for event in events[1:3]:
        assert isinstance(event, Reply)
        head, _, rest = event.data.partition(b"\r\n\r\n")
        assert head == b"Content-Length: %d" % len(rest)
        assert rest.endswith(b"}\n")
        assert json.loads(rest)["error"]["code"] in (PARSE, INVALID)


def test_framing_before_detection_and_explicit_framings() -> None:
    conn = ServerConnection()
    assert conn.framing == "auto"
    assert conn.encode(Response(1, 1)) == b'{"jsonrpc":"2.0","id":1,"result":1}\n'
    conn.receive_data(b"  [")
    assert conn.framing == "newline"
    explicit = ServerConnection(framing="content-length")
    assert explicit.framing == "content-length"
    explicit.receive_data(wire(method="m", id=1))
    assert drain(explicit) == []  # still looking for the end of the header block
    explicit.receive_data(b"")
    (event, closed) = drain(explicit)
    head, _, rest = event.data.partition(b"\r\n\r\n")
    assert head == b"Content-Length: %d" % len(rest)
    assert json.loads(rest)["error"]["code"] == PARSE
    assert closed == Closed()
    newline = ServerConnection(framing="newline")
    newline.receive_data(cl(b"[1]"))
    assert reply_json(drain(newline)[0])["error"]["code"] == PARSE


def test_unencodable_reply_is_32603() -> None:
    for use in (False, True):
        conn = ServerConnection(codec=JsonCodec(use_orjson=use))
        body = json.loads(conn.encode(Response(3, math.nan)))
        assert (body["id"], body["error"]["code"]) == (3, -32603)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_message_size"):
        ServerConnection(max_message_size=0)
    with pytest.raises(ValueError, match="max_depth"):
        ClientConnection(max_depth=0)


# -- client ----------------------------------------------------------------------


def test_client_must_choose_a_framing() -> None:
    with pytest.raises(ValueError, match="must choose its framing"):
        ClientConnection(framing="auto")


def test_client_ids_and_encoding() -> None:
    conn = ClientConnection()
    assert [conn.next_id() for _ in range(3)] == [1, 2, 3]
    assert conn.framing == "newline"
    assert conn.encode(Request("add", [1, 2], 7)) == b'{"jsonrpc":"2.0","method":"add","params":[1,2],"id":7}\n'
    batch = conn.encode([Request("a", None, 1), Notification("n", ["x"])])
    assert json.loads(batch) == [
        {"jsonrpc": "2.0", "method": "a", "id": 1},
        {"jsonrpc": "2.0", "method": "n", "params": ["x"]},
    ]
    assert batch.endswith(b"]\n")
    lsp = ClientConnection(framing="content-length")
    assert lsp.encode(Notification("n", None)) == cl(b'{"jsonrpc":"2.0","method":"n"}\n')


def test_client_responses_with_and_without_newline() -> None:
    data = (
        b'{"jsonrpc":"2.0","id":1,"result":[1]}'
        b'{"jsonrpc":"2.0","id":123456789012345678901234567890,"result":null}'
        b'{"jsonrpc":"2.0","id":1.5,"error":{"code":-32601,"message":"nf","data":"d"}}'
    )
    events = client_events(data, eof=False)
    assert events == [
        Response(1, [1]),
        Response(123456789012345678901234567890, None),
        ErrorResponse(1.5, ErrorObject(-32601, "nf", "d")),
    ]


def test_client_batch_response_is_expanded_in_order() -> None:
    batch = [
        {"jsonrpc": "2.0", "id": 2, "result": "b"},
        {"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "x"}},
        {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "bad member"}},
        "junk",
    ]
    events = client_events(json.dumps(batch).encode() + b"\n")
    assert events[:2] == [Response(2, "b"), ErrorResponse(1, ErrorObject(-32000, "x"))]
    assert isinstance(events[2], Violation)
    assert events[2].error == ErrorObject(-32600, "bad member")
    assert isinstance(events[3], Violation)
    assert "not a JSON-RPC 2.0 response" in events[3].reason
    assert events[4:] == [Closed()]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"garbage\n", "unreadable data"),
        (b'{"a":"x\n', "unreadable data"),
        (b"[]\n", "not a JSON-RPC 2.0 response"),
        (b'{"jsonrpc":"2.0","method":"ping","id":1}\n', "not a JSON-RPC 2.0 response"),
        (b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}\n', "error without id"),
    ],
)
def test_client_violations(data: bytes, words: str) -> None:
    events = client_events(data + b'{"jsonrpc":"2.0","id":9,"result":0}\n')
    assert isinstance(events[0], Violation)
    assert words in events[0].reason
    assert events[-2:] == [Response(9, 0), Closed()]


@pytest.mark.parametrize("framing", ["newline", "content-length"])
def test_a_reply_nested_too_deep_names_its_call_in_every_chunking(framing: str) -> None:
    # A client decodes a reply whole before judging its depth, so the refusal keeps
    # the id (the call can fail at once) however the bytes arrive.
    deep = b'{"jsonrpc":"2.0","id":7,"result":[[[[1]]]]}'
    data = cl(deep) if framing == "content-length" else deep + b"\n"
    events = client_events(
        data
        + (
            cl(b'{"jsonrpc":"2.0","id":8,"result":0}')
            if framing == "content-length"
            else b'{"jsonrpc":"2.0","id":8,"result":0}\n'
        ),
        framing=framing,
        max_depth=3,
    )
    (violation, *rest) = events
    assert isinstance(violation, Violation)
    assert violation.id == 7 and violation.error is None
    assert "max_depth (3 levels)" in violation.reason
    assert rest == [Response(8, 0), Closed()]
    # Within the limit (the reply object is a level too) it is an ordinary reply.
    assert client_events(data, framing=framing, max_depth=5)[0] == Response(7, [[[[1]]]])


def test_a_too_deep_reply_sent_without_a_newline_still_names_its_call() -> None:
    # Concatenated replies: the value ends at its closing bracket, not at a newline.
    events = client_events(
        b'{"jsonrpc":"2.0","id":"a","result":[[[[[1]]]]]}{"jsonrpc":"2.0","id":2,"result":1}', max_depth=3
    )
    assert isinstance(events[0], Violation) and events[0].id == "a"
    assert events[1:] == [Response(2, 1), Closed()]


@pytest.mark.parametrize(
    "reply",
    [
        {"jsonrpc": "2.0", "id": 5, "result": 1, "error": None},  # lenient peers write both
        {"id": 5, "result": 1},  # no "jsonrpc"
        {"jsonrpc": "2.0", "id": 5, "error": {"code": "-1", "message": "x"}},
        {"jsonrpc": "2.0", "id": 5, "error": "it broke"},
        {"jsonrpc": "2.0", "id": 5},
    ],
)
def test_an_invalid_reply_with_a_readable_id_names_its_call(reply: dict[str, Any]) -> None:
    events = client_events(json.dumps(reply).encode() + b"\n")
    assert isinstance(events[0], Violation)
    assert events[0].id == 5 and "not a JSON-RPC 2.0 response" in events[0].reason


@pytest.mark.parametrize(
    "value",
    [
        {"jsonrpc": "2.0", "method": "ping", "id": 5},  # a request from the server: not an answer
        {"jsonrpc": "2.0", "id": [5], "result": 1},  # not a valid id
        {"jsonrpc": "2.0", "id": True, "result": 1},
        [1, 2],
    ],
)
def test_an_invalid_reply_without_a_usable_id_names_no_call(value: Any) -> None:
    events = client_events(json.dumps(value).encode() + b"\n")
    assert all(isinstance(event, Violation) and event.id is None for event in events[:-1])


def test_client_fatal_error_then_closed() -> None:
    data = b'{"jsonrpc":"2.0","id":1,"result":"' + b"x" * 100 + b'"}\n{"jsonrpc":"2.0","id":2,"result":0}\n'
    events = client_events(data, max_message_size=50)
    (violation, closed) = events
    assert isinstance(violation, Violation)
    assert "message too large" in violation.reason
    assert closed == Closed()
    # Even without EOF, the connection reports itself closed once after a fatal error.
    assert run(lambda: ClientConnection(max_message_size=50), [data], eof=False) == events


def test_client_content_length_replies() -> None:
    data = cl(b'{"jsonrpc":"2.0","id":1,"result":"a"}') + cl(b'{"jsonrpc":"2.0","id":2,"result":"b"}')
    events = client_events(data, framing="content-length")
    assert events == [Response(1, "a"), Response(2, "b"), Closed()]


def test_client_partial_reply_at_eof() -> None:
    events = client_events(b'{"jsonrpc":"2.0","id":1,"res')
    assert isinstance(events[0], Violation)
    assert events[1:] == [Closed()]


def test_client_in_message() -> None:
    conn = ClientConnection()
    conn.receive_data(b'{"jsonrpc"')
    assert conn.next_event() is None
    assert conn.in_message
    conn.receive_data(b':"2.0","id":1,"result":1}')
    assert conn.next_event() == Response(1, 1)
    assert not conn.in_message
