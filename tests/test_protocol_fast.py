"""The server's one-step path (receive_request, encode_result) gives what the general path gives."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_protocol import drain

from jsonrpc_mini._codec import Response
from jsonrpc_mini._json import HAVE_ORJSON, JsonCodec
from jsonrpc_mini._protocol import Call, ServerConnection
from jsonrpc_mini.testing import strategies as rpc_st

CODECS = [False, True] if HAVE_ORJSON else [False]


def general(chunks: list[bytes], codec: JsonCodec, **options: Any) -> list[Any]:
    conn = ServerConnection(codec=codec, **options)
    events: list[Any] = []
    for chunk in chunks:
        conn.receive_data(chunk)
        events += drain(conn)
    return events


def one_step(chunks: list[bytes], codec: JsonCodec, **options: Any) -> tuple[list[Any], int]:
    conn = ServerConnection(codec=codec, **options)
    events: list[Any] = []
    taken = 0
    for chunk in chunks:
        message = conn.receive_request(chunk)
        if message is not None:
            taken += 1
            events.append(Call(message))
            assert drain(conn) == []  # a chunk taken in one step leaves nothing behind
        events += drain(conn)
    return events, taken


def line(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode() + b"\n"


values = st.one_of(rpc_st.requests(), rpc_st.notifications(), rpc_st.batches(), rpc_st.invalid_requests())
chunk_lists = st.one_of(
    st.lists(values.map(line), min_size=1, max_size=6),
    st.lists(st.one_of(values.map(line), rpc_st.malformed_lines(), st.binary(max_size=40)), min_size=1, max_size=6),
)


@pytest.mark.parametrize("use_orjson", CODECS)
@given(chunks=chunk_lists, framing=st.sampled_from(["auto", "newline", "content-length"]))
def test_same_events_as_the_general_path(use_orjson: bool, chunks: list[bytes], framing: str) -> None:
    codec = JsonCodec(use_orjson=use_orjson)
    events, _ = one_step(chunks, codec, framing=framing)
    assert events == general(chunks, codec, framing=framing)


@pytest.mark.parametrize("use_orjson", CODECS)
@given(requests=st.lists(rpc_st.requests(), min_size=2, max_size=5))
def test_whole_request_lines_are_taken_in_one_step(use_orjson: bool, requests: list[dict[str, Any]]) -> None:
    chunks = [line(request) for request in requests]
    events, taken = one_step(chunks, JsonCodec(use_orjson=use_orjson), framing="newline")
    assert taken == len(requests)
    assert [(e.message.method, e.message.params, e.message.id) for e in events] == [
        (r["method"], r.get("params"), r["id"]) for r in requests
    ]


@pytest.mark.parametrize(
    "chunk",
    [
        b'{"jsonrpc":"2.0","method":"m","id":1}\n{"jsonrpc":"2.0","method":"m","id":2}\n',  # two lines
        b'{"jsonrpc":"2.0","method":"m","id":1}',  # no newline yet
        b' {"jsonrpc":"2.0","method":"m","id":1}\n',  # leading whitespace
        b'[{"jsonrpc":"2.0","method":"m","id":1}]\n',  # a batch
        b'{"jsonrpc":"2.0","method":"m","id":true}\n',  # invalid: answered by the general path
        b'{"jsonrpc":"2.0","method":"m","id":1\n',  # unclosed
    ],
)
def test_anything_else_goes_to_the_framer(chunk: bytes) -> None:
    conn = ServerConnection(framing="newline")
    assert conn.receive_request(chunk) is None
    assert conn.framing == "newline"
    assert drain(conn) == general([chunk], JsonCodec(), framing="newline")


def test_limits_still_apply_in_one_step() -> None:
    deep = b'{"jsonrpc":"2.0","method":"m","params":' + b"[" * 5 + b"]" * 5 + b',"id":1}\n'
    conn = ServerConnection(framing="newline", max_depth=3)
    assert conn.receive_request(deep) is None
    assert [event.data for event in drain(conn)] == [event.data for event in general([deep], JsonCodec(), max_depth=3)]
    big = b'{"jsonrpc":"2.0","method":"m","params":["' + b"x" * 100 + b'"],"id":1}\n'
    conn = ServerConnection(framing="newline", max_message_size=64)
    assert conn.receive_request(big) is None
    (reply,) = drain(conn)
    assert b"too large" in reply.data and reply.close


def test_bytes_already_buffered_keep_their_order() -> None:
    # A whole request line after an unfinished value belongs to that value (here: inside
    # its params), so it must not be taken on its own.
    chunks = [b'{"jsonrpc":"2.0","method":"a","params":[', b'{"jsonrpc":"2.0","method":"b","id":2}\n', b'],"id":1}\n']
    events, taken = one_step(chunks, JsonCodec(), framing="newline")
    assert taken == 0
    assert [event.message.method for event in events] == ["a"]
    assert events == general(chunks, JsonCodec(), framing="newline")


@pytest.mark.parametrize("use_orjson", CODECS)
@pytest.mark.parametrize("framing", ["newline", "content-length"])
@given(id_=rpc_st.request_ids(), result=st.one_of(st.from_type(type(None)), st.integers(), st.text(), st.floats()))
def test_encode_result_matches_encode(use_orjson: bool, framing: str, id_: Any, result: Any) -> None:
    conn = ServerConnection(framing=framing, codec=JsonCodec(use_orjson=use_orjson))  # type: ignore[arg-type]
    assert conn.encode_result(id_, result) == conn.encode(Response(id_, result))


def test_encode_result_of_something_not_json_is_an_internal_error() -> None:
    conn = ServerConnection(framing="newline")
    reply = json.loads(conn.encode_result(7, {1, 2}))
    assert reply["id"] == 7 and reply["error"]["code"] == -32603
