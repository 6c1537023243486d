"""Framing: how bytes arrive (split, glued, garbled) never changes which messages come out."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from jsonrpc_mini._framing import (
    AutoFramer,
    ContentLengthFramer,
    FrameError,
    JsonStreamFramer,
    Message,
    make_framer,
)
from jsonrpc_mini._json import JsonCodec
from jsonrpc_mini._protocol import Reply, ServerConnection
from jsonrpc_mini.testing import strategies as rst

from ._budget import scaled

CODECS = {"stdlib": JsonCodec(use_orjson=False), "orjson": JsonCodec(use_orjson=True)}
BIG = 16 * 2**20

containers = st.one_of(
    st.lists(rst.json_values(max_leaves=8), max_size=4),
    st.dictionaries(rst.json_strings(max_size=6), rst.json_values(max_leaves=8), max_size=4),
)
values = st.one_of(rst.json_values(max_leaves=12), rst.deeply_nested(max_depth=20))

# Byte soup that looks enough like JSON and headers to reach every branch of the readers.
TOKENS = [b"{", b"}", b"[", b"]", b'"', b"\\", b"\\n", b"\n", b"\r\n", b" ", b"\t", b",", b":", b"1", b"-", b"e9"]
TOKENS += [b"null", b"tru", b"NaN", b"\xff", b"\xc3\xa9", b"\xf0\x9f\x98", b'{"a":', b"Content-Length: 3\r\n\r\n"]
soup = st.lists(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=6)), max_size=40).map(b"".join)


def framer(kind: str, codec: str = "orjson", max_size: int = BIG, max_depth: int = 64) -> Any:
    return make_framer(kind, CODECS[codec].loads, max_message_size=max_size, max_depth=max_depth)  # type: ignore[arg-type]


def drain(reader: Any) -> list[Any]:
    out = []
    for _ in range(100_000):  # bounded: each event consumes bytes
        event = reader.next_event()
        if event is None:
            return out
        out.append(event)
    raise AssertionError("reader produced events without end")


def events(reader: Any, chunks: list[bytes], eof: bool = True) -> list[tuple[Any, ...]]:
    """Feed ``chunks`` (then EOF) and return the events in a comparable form."""
    seen: list[Any] = []
    for chunk in chunks:
        reader.feed(chunk)
        seen += drain(reader)
    if eof:
        reader.feed(b"")
        seen += drain(reader)
    out: list[tuple[Any, ...]] = []
    for event in seen:
        if isinstance(event, Message):
            out.append(("message", event.value))
        else:
            assert isinstance(event, FrameError)
            assert event.message, "an error must say what was wrong"
            out.append(("error", event.code, event.fatal))
    return out


def same_events(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> bool:
    if len(a) != len(b):
        return False
    return all(x[0] == y[0] and rst.same_json(list(x[1:]), list(y[1:])) for x, y in zip(a, b, strict=True))


def encode_newline(value: Any, style: str) -> bytes:
    compact = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    if style == "pretty":
        return json.dumps(value, ensure_ascii=False, indent=2).encode() + b"\n"
    if style == "ascii":
        return json.dumps(value).encode() + b"\r\n"
    if style == "bare" and isinstance(value, (list, dict)):
        return compact  # complete at its closing bracket: no newline needed
    if style == "padded":
        return b" \t\r\n" + compact + b" \n"
    return compact + b"\n"


def encode_content_length(value: Any, header: str) -> bytes:
    body = json.dumps(value, ensure_ascii=False).encode()
    return header.replace("{n}", str(len(body))).encode() + body


NEWLINE_STYLES = st.sampled_from(["compact", "pretty", "ascii", "bare", "padded"])
CL_HEADERS = st.sampled_from(
    [
        "Content-Length: {n}\r\n\r\n",
        "content-length:{n}\r\n\r\n",
        "Content-Type: application/vscode-jsonrpc; charset=utf-8\r\nContent-Length: {n}\r\n\r\n",
        "CONTENT-LENGTH:   {n}  \r\nX-Other: y\r\n\r\n",
        "\r\n Content-Length: {n}\r\n\r\n",
        "Content-Length: {n}\n\n",  # bare LF line ends are accepted too
        "Content-Type: x\nContent-Length: {n}\r\n\n",
    ]
)


# Invariant: for newline/concatenated/pretty-printed JSON, every split of any sequence
# of valid frames yields exactly the values sent, in order, with no error.
@given(st.lists(st.tuples(values, NEWLINE_STYLES), min_size=1, max_size=6), st.sampled_from(sorted(CODECS)), st.data())
def test_any_split_of_valid_newline_frames_yields_the_same_messages(frames, codec, data):
    wire = b"".join(encode_newline(value, style) for value, style in frames)
    chunks = data.draw(rst.chunkings(wire), label="chunks")
    expected = [("message", value) for value, _ in frames]
    got = events(framer("newline", codec), chunks)
    assert same_events(got, expected), (got, expected)


# Invariant: Content-Length framing, with any header spelling and extra headers, yields
# exactly the values sent under every split.
@given(st.lists(st.tuples(values, CL_HEADERS), min_size=1, max_size=6), st.data())
def test_any_split_of_valid_content_length_frames_yields_the_same_messages(frames, data):
    wire = b"".join(encode_content_length(value, header) for value, header in frames)
    chunks = data.draw(rst.chunkings(wire), label="chunks")
    expected = [("message", value) for value, _ in frames]
    assert same_events(events(framer("content-length"), chunks), expected)


# Invariant: the auto-detecting reader picks the framing from the first bytes and then
# behaves exactly like the framer it picked, whatever the split.
@given(st.lists(values, min_size=1, max_size=4), st.booleans(), st.data())
def test_auto_framing_detects_either_framing_under_any_split(frames, content_length, data):
    if content_length:
        wire = b"".join(encode_content_length(v, "Content-Length: {n}\r\n\r\n") for v in frames)
    else:
        wire = b"".join(encode_newline(v, "compact") for v in frames)
    auto = framer("auto")
    got = events(auto, data.draw(rst.chunkings(wire), label="chunks"))
    assert same_events(got, [("message", v) for v in frames])
    assert isinstance(auto, AutoFramer)
    assert auto.name == ("content-length" if content_length else "newline")


# Invariant: for ANY bytes the readers never raise, and the events (values, error codes,
# fatality) do not depend on how the bytes were split: work whole == work byte by byte.
@pytest.mark.parametrize("kind", ["newline", "content-length", "auto"])
@given(wire=soup, data=st.data())
def test_arbitrary_bytes_give_the_same_events_under_any_split(kind, wire, data):
    whole = events(framer(kind, max_depth=8), [wire])
    chunks = data.draw(rst.chunkings(wire), label="chunks")
    assert same_events(events(framer(kind, max_depth=8), chunks), whole)
    for event in whole:
        if event[0] == "error":
            assert event[1] in (-32700, -32600)


# Invariant: garbage on a line of its own never costs a later valid frame; the only
# exception is garbage that opens a bracket it never closes, which the contract treats
# as the start of a multi-line value (and which EOF then reports as -32700).
@given(garbage=soup.map(lambda b: b.replace(b"\n", b" ")), frames=st.lists(containers, min_size=1, max_size=3))
def test_garbage_line_never_hides_the_frames_after_it(garbage, frames):
    probe = framer("newline")
    probe.feed(garbage + b"\n")
    drain(probe)
    if probe.in_message:
        # Assert the reason rather than assume it: an unclosed bracket outside strings.
        assert any(ch in garbage for ch in b"[{")
        probe.feed(b"")
        assert [(e.code, e.fatal) for e in drain(probe)] == [(-32700, False)]
        return
    wire = garbage + b"\n" + b"".join(encode_newline(v, "compact") for v in frames)
    got = events(framer("newline"), [wire])
    tail = got[len(got) - len(frames) :]
    assert same_events(tail, [("message", v) for v in frames]), (got, frames)


# Invariant: a line that is not JSON earns exactly one -32700 and the frames around it
# are delivered untouched.
@given(
    before=st.lists(containers, max_size=2),
    bad=rst.malformed_lines(),
    after=st.lists(containers, min_size=1, max_size=2),
    data=st.data(),
)
def test_malformed_line_earns_one_parse_error_between_good_frames(before, bad, after, data):
    wire = b"".join(encode_newline(v, "compact") for v in before) + bad
    wire += b"".join(encode_newline(v, "compact") for v in after)
    got = events(framer("newline"), data.draw(rst.chunkings(wire)))
    expected = [("message", v) for v in before] + [("error", -32700, False)] + [("message", v) for v in after]
    assert same_events(got, expected), (bad, got)


# Invariant: with Content-Length, a body that is not JSON is one -32700 and the next
# frame is still delivered (the length keeps the reader in sync).
@given(bad_body=st.binary(max_size=40), after=st.lists(values, min_size=1, max_size=3), data=st.data())
def test_content_length_bad_body_does_not_lose_the_next_frame(bad_body, after, data):
    try:
        CODECS["stdlib"].loads(bad_body)
    except Exception:
        pass
    else:
        assume(False)  # the body happens to be valid JSON
    wire = b"Content-Length: %d\r\n\r\n" % len(bad_body) + bad_body
    wire += b"".join(encode_content_length(v, "Content-Length: {n}\r\n\r\n") for v in after)
    got = events(ContentLengthFramer(CODECS["orjson"].loads, max_message_size=BIG), data.draw(rst.chunkings(wire)))
    assert same_events(got, [("error", -32700, False)] + [("message", v) for v in after])


# Invariant: a value longer than max_message_size gets one fatal -32600 and nothing after
# it is read, while every value up to the limit is delivered; and the reader never holds
# more than the limit in its buffer, however the bytes arrive.
@given(
    frames=st.lists(st.tuples(containers, st.sampled_from(["compact", "pretty", "bare"])), min_size=1, max_size=5),
    limit=st.integers(min_value=2, max_value=120),
    data=st.data(),
)
def test_message_size_limit_is_exact_and_never_buffered_past(frames, limit, data):
    encoded = [encode_newline(value, style) for value, style in frames]
    wire = b"".join(encoded)
    reader = JsonStreamFramer(CODECS["orjson"].loads, max_message_size=limit, max_depth=64)
    seen: list[Any] = []
    for chunk in data.draw(rst.chunkings(wire)):
        reader.feed(chunk)
        seen += drain(reader)
        assert reader.buffered <= limit
    expected: list[Any] = []
    for frame in encoded:
        if len(frame.strip()) > limit:
            expected.append((-32600, True))
            break
        expected.append("message")
    got = [(e.code, e.fatal) if isinstance(e, FrameError) else "message" for e in seen]
    assert got == expected, (limit, encoded)


# Invariant: whatever bytes a client sends, the server-side core answers only with
# well-formed JSON-RPC error responses (-32700 or -32600), each ending in "\n",
# and never raises.
@scaled(1.0)
@given(wire=soup, data=st.data())
def test_server_core_answers_any_bytes_with_well_formed_errors(wire, data):
    conn = ServerConnection(framing="newline", max_depth=8)
    for chunk in [*data.draw(rst.chunkings(wire)), b""]:
        conn.receive_data(chunk)
        for event in drain(conn):
            if isinstance(event, Reply):
                assert event.data.endswith(b"\n")
                for reply in json.loads(event.data) if event.data.startswith(b"[") else [json.loads(event.data)]:
                    assert reply["jsonrpc"] == "2.0"
                    assert reply["error"]["code"] in (-32700, -32600)
                    assert isinstance(reply["error"]["message"], str)
