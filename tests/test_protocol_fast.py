"""The server's one-step path (receive_request, encode_result) gives what the general path gives."""

from __future__ import annotations

import json
from typing import Any

import pytest
from _driver_helpers import CODECS
from hypothesis import example, given
from hypothesis import strategies as st
from test_protocol import drain

from jsonrpc_mini._client_protocol import ClientConnection
from jsonrpc_mini._codec import ErrorObject, ErrorResponse, Request, Response, parse_request, parse_response
from jsonrpc_mini._json import JsonCodec
from jsonrpc_mini._protocol import Call, ServerConnection
from jsonrpc_mini.testing import strategies as rpc_st


def typed(events: list[Any]) -> list[str]:
    """A type-preserving form of ``events`` (``==`` holds for 1e20 and 10**20, True and 1)."""
    return [repr(event) for event in events]


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
    assert typed(events) == typed(general(chunks, codec, framing=framing))


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


batch_members = st.one_of(
    st.builds(
        Response, rpc_st.request_ids(), st.one_of(st.none(), st.integers(), st.text(), st.floats(), st.just({1}))
    ),
    st.builds(
        lambda i, c, m: ErrorResponse(i, ErrorObject(c, m)),
        rpc_st.request_ids(allow_null=True),
        st.integers(-33000, 1000),
        st.text(),
    ),
)


@pytest.mark.parametrize("use_orjson", CODECS)
@pytest.mark.parametrize("framing", ["newline", "content-length"])
@given(members=st.lists(batch_members, max_size=6), as_objects=st.lists(st.booleans(), min_size=6, max_size=6))
def test_encode_replies_matches_encode_batch(
    use_orjson: bool, framing: str, members: list[Any], as_objects: list[bool]
) -> None:
    # Successes given as their JSON objects encode to the same bytes as Response
    # objects, a NaN or a set among them included (that member becomes -32603).
    conn = ServerConnection(framing=framing, codec=JsonCodec(use_orjson=use_orjson))  # type: ignore[arg-type]
    mixed = [
        {"jsonrpc": "2.0", "id": m.id, "result": m.result} if isinstance(m, Response) and as_object else m
        for m, as_object in zip(members, as_objects, strict=False)
    ]
    assert conn.encode_replies(mixed) == conn.encode_batch(members)
    assert conn.encode_replies([]) is None


# -- the client side -------------------------------------------------------------------

replies = st.one_of(
    st.builds(lambda i, r: {"jsonrpc": "2.0", "id": i, "result": r}, rpc_st.request_ids(), rpc_st.params()),
    st.builds(
        lambda i, c, m: {"jsonrpc": "2.0", "id": i, "error": {"code": c, "message": m}},
        rpc_st.request_ids(allow_null=True),
        st.integers(-33000, 1000),
        st.text(max_size=10),
    ),
    rpc_st.requests(),  # not a reply: a violation
)
reply_chunks = st.lists(
    st.one_of(replies.map(line), st.lists(replies, max_size=3).map(line), st.binary(max_size=30)),
    min_size=1,
    max_size=6,
)


def client_general(chunks: list[bytes], codec: JsonCodec) -> list[Any]:
    conn = ClientConnection(codec=codec)
    events: list[Any] = []
    for chunk in chunks:
        conn.receive_data(chunk)
        events += drain(conn)
    return events


@pytest.mark.parametrize("use_orjson", CODECS)
@given(chunks=reply_chunks)
def test_client_same_events_as_the_general_path(use_orjson: bool, chunks: list[bytes]) -> None:
    codec = JsonCodec(use_orjson=use_orjson)
    conn = ClientConnection(codec=codec)
    events: list[Any] = []
    for chunk in chunks:
        values, end = conn.decode_lines(chunk, 64)
        events += [conn.parse_reply(value) for value in values]
        if end < len(chunk) or not chunk:  # what it leaves, and the end of the stream, go to the framer
            conn.receive_data(chunk[end:])
        events += drain(conn)
    assert typed(events) == typed(client_general(chunks, codec))


def test_client_takes_a_whole_reply_line_in_one_step() -> None:
    conn = ClientConnection()
    line = b'{"jsonrpc":"2.0","id":3,"result":[1]}\n'
    assert conn.decode_lines(line, 64) == ([{"jsonrpc": "2.0", "id": 3, "result": [1]}], len(line))
    assert drain(conn) == []
    # A reply still queued from an earlier read comes first: the next read waits its turn.
    conn.receive_data(b'{"jsonrpc":"2.0","id":1,"result":1}\n{"jsonrpc":"2.0","id":2,"result":2}\n')
    assert conn.next_event() == Response(1, 1)
    assert conn.decode_lines(b'{"jsonrpc":"2.0","id":3,"result":3}\n', 64) == ([], 0)
    conn.receive_data(b'{"jsonrpc":"2.0","id":3,"result":3}\n')
    assert drain(conn) == [Response(2, 2), Response(3, 3)]


@pytest.mark.parametrize("use_orjson", CODECS)
@pytest.mark.parametrize("framing", ["newline", "content-length"])
@given(method=rpc_st.method_names(), params=rpc_st.params(), id_=rpc_st.request_ids())
def test_encode_request_matches_encode(use_orjson: bool, framing: str, method: str, params: Any, id_: Any) -> None:
    conn = ClientConnection(framing=framing, codec=JsonCodec(use_orjson=use_orjson))  # type: ignore[arg-type]
    assert conn.encode_request(method, params, id_) == conn.encode(Request(method, params, id_))


def test_encode_request_refuses_what_is_not_json() -> None:
    with pytest.raises(TypeError):
        ClientConnection().encode_request("m", [{1, 2}], 1)


@pytest.mark.parametrize(
    ("before", "dropped"),
    [
        (b"\x00", True),  # garbage without a newline: the rest of its line is skipped
        (b'{"jsonrpc":"2.0","method":"m","params":["' + b"x" * 200 + b'"],"id":1}\n', True),  # too large: fatal
        (b'{"jsonrpc":"2.0","method":"m","id":1}\n', False),
    ],
)
def test_one_step_only_between_values(before: bytes, dropped: bool) -> None:
    request = b'{"jsonrpc":"2.0","method":"m","id":2}\n'
    server = ServerConnection(framing="newline", max_message_size=100)
    server.receive_data(before)
    drain(server)
    assert (server.receive_request(request) is None) is dropped
    reply = b'{"jsonrpc":"2.0","id":2,"result":2}\n'
    client = ClientConnection(max_message_size=100)
    client.receive_data(before)
    drain(client)
    assert (client.decode_lines(reply, 64) == ([], 0)) is dropped
    assert drain(server) == [] and drain(client) == []


class _PlainDict(dict):  # type: ignore[type-arg]
    """A dict subclass: parse_request/parse_response skip their common-case shortcut for it."""


@given(value=st.one_of(rpc_st.requests(), rpc_st.notifications(), rpc_st.invalid_requests(), replies))
def test_shortcuts_agree_with_the_full_checks(value: Any) -> None:
    if isinstance(value, dict):
        assert parse_request(value) == parse_request(_PlainDict(value))
        assert parse_response(value) == parse_response(_PlainDict(value))


# -- many request lines in one decode (receive_requests) ----------------------------------

ADVERSARIAL = [
    # Lines that are not one value each but could join into the right number of values.
    [b'{"a":[{}', b'{"x":1}]},{"jsonrpc":"2.0","method":"b","id":2}'],
    [b'{"jsonrpc":"2.0","method":"m","id":1,"a":"}', b'{","x":1},{"jsonrpc":"2.0","method":"n","id":2}'],
    [b'{"jsonrpc":"2.0","method":"m","id":1}{"jsonrpc":"2.0","method":"n","id":2}', b'{"a":1}'],
    [b'{"jsonrpc":"2.0","method":"m","id":1},{"jsonrpc":"2.0","method":"n","id":2}', b'{"jsonrpc":"2.0","method":"o"}'],
    [b'{"jsonrpc":"2.0","method":"m","params":["]"],"id":1}', b'{"jsonrpc":"2.0","method":"n","id":2}'],
    [b'{"jsonrpc":"2.0","method":"m","params":["\\"["],"id":1}', b'{"jsonrpc":"2.0","method":"n","id":2}'],
]


def group_then_general(data: bytes, limit: int, codec: JsonCodec) -> tuple[list[Any], int]:
    conn = ServerConnection(codec=codec, framing="newline")
    junk = b"junk\n" * (limit % 3)  # a start offset: the bytes before it are not looked at
    messages, used = conn.receive_requests(junk + data, limit, len(junk))
    used -= len(junk)
    assert 0 <= used <= len(data)
    assert (used == 0) == (not messages)
    events: list[Any] = [Call(message) for message in messages]
    if data[used:]:  # (b"" would mean end of stream)
        conn.receive_data(data[used:])
    events += drain(conn)
    return events, len(messages)


@pytest.mark.parametrize("use_orjson", CODECS)
@given(
    lines=st.lists(
        st.one_of(values.map(line), rpc_st.malformed_lines(), st.sampled_from([b"{}\n", b'{"a":"[\\n"}\n', b"\n"])),
        min_size=1,
        max_size=8,
    ),
    limit=st.integers(0, 10),
)
def test_many_lines_give_what_the_framer_gives(use_orjson: bool, lines: list[bytes], limit: int) -> None:
    codec = JsonCodec(use_orjson=use_orjson)
    data = b"".join(lines)
    events, _ = group_then_general(data, limit, codec)
    assert events == general([data], codec, framing="newline")


@pytest.mark.parametrize("lines", ADVERSARIAL)
def test_lines_that_only_join_into_values_are_not_taken(lines: list[bytes]) -> None:
    data = b"\n".join(lines) + b"\n"
    events, taken = group_then_general(data, 10, JsonCodec())
    assert taken == 0
    assert events == general([data], JsonCodec(), framing="newline")


def strings_in(value: Any) -> list[str]:
    """Every string in ``value``: object keys, and strings at any depth."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in [key, *strings_in(item)]]
    if isinstance(value, list):
        return [s for item in value for s in strings_in(item)]
    return []


@pytest.mark.parametrize("use_orjson", CODECS)
@given(requests=st.lists(st.one_of(rpc_st.requests(), rpc_st.notifications()), min_size=2, max_size=12))
@example(requests=[{"jsonrpc": "2.0", "method": "m", "id": ""}, {"jsonrpc": "2.0", "method": "m", "id": "{"}])
def test_plain_request_lines_are_taken_up_to_the_limit(use_orjson: bool, requests: list[dict[str, Any]]) -> None:
    data = b"".join(line(request) for request in requests)
    codec = JsonCodec(use_orjson=use_orjson)
    events, taken = group_then_general(data, 5, codec)
    short = all(len(line(request)) <= 2 * 128 + 2 and b"\\" not in line(request) for request in requests[:5])
    # lines_balanced cannot vouch for a line with a bracket inside a string (in the
    # method, an id, a key or params alike): such lines may be left to the framer.
    brackets_in_strings = any(c in text for r in requests[:5] for text in strings_in(r) for c in "[]{}")
    if short and not brackets_in_strings:
        assert taken == min(5, len(requests))
    assert events == general([data], codec, framing="newline")


def plain_alone(message_line: bytes, codec: JsonCodec) -> bool:
    """Whether receive_plain_call gives ``message_line``, read on its own, as its JSON object."""
    conn = ServerConnection(codec=codec, framing="newline")
    return type(conn.receive_plain_call(message_line, message_line.find(b"\n"), True)) is dict


@pytest.mark.parametrize("use_orjson", CODECS)
@given(
    lines=st.lists(
        st.one_of(
            st.one_of(rpc_st.requests(), rpc_st.notifications()).map(line),
            values.map(line),
            st.sampled_from([b'{"jsonrpc":"2.0","method":"m","params":[1,2],"id":1,"x":1.5}\n']),
        ),
        min_size=2,
        max_size=8,
    )
)
def test_plain_calls_are_the_requests_taken_as_a_lone_line_is(use_orjson: bool, lines: list[bytes]) -> None:
    # receive_plain_calls takes what receive_requests takes; a usual request comes as
    # its JSON object exactly when receive_plain_call gives its line so on its own.
    codec = JsonCodec(use_orjson=use_orjson)
    data = b"".join(lines)
    messages, end = ServerConnection(codec=codec, framing="newline").receive_requests(data, 10)
    calls, plain_end = ServerConnection(codec=codec, framing="newline").receive_plain_calls(data, 10)
    assert plain_end == end
    assert len(calls) == len(messages)
    for call, message, message_line in zip(calls, messages, lines, strict=False):
        if type(call) is dict:
            assert plain_alone(message_line, codec)
            assert parse_request(call) == message
        else:
            assert not plain_alone(message_line, codec)
            assert call == message


def test_nothing_is_taken_unless_the_framer_is_between_values() -> None:
    conn = ServerConnection(framing="newline")
    conn.receive_data(b'{"jsonrpc":"2.0","method":"a",')
    two = b'{"jsonrpc":"2.0","method":"m","id":1}\n{"jsonrpc":"2.0","method":"n","id":2}\n'
    assert conn.receive_requests(two, 10) == ([], 0)
    assert ServerConnection(framing="content-length").receive_requests(two, 10, 3) == ([], 3)
    messages, end = ServerConnection(framing="newline").receive_requests(b"xx" + two, 10, 2)
    assert [m.method for m in messages] == ["m", "n"] and end == 2 + len(two)
