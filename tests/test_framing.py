"""Framers: every case is fed whole, split in two at every byte, and byte by byte.

The events must be identical however the bytes are chunked (the h11 habit).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from jsonrpc_mini._framing import (
    MAX_HEADER_SIZE,
    AutoFramer,
    ContentLengthFramer,
    FrameError,
    JsonStreamFramer,
    Message,
    encode_frame,
    make_framer,
)
from jsonrpc_mini._json import HAVE_ORJSON, JsonCodec

PARSE, INVALID = -32700, -32600
BIG = 1 << 20

AnyFramer = JsonStreamFramer | ContentLengthFramer | AutoFramer


def new(kind: str = "newline", *, max_size: int = BIG, max_depth: int = 32, codec: JsonCodec | None = None) -> Any:
    loads = (codec or JsonCodec()).loads
    return make_framer(kind, loads, max_message_size=max_size, max_depth=max_depth)  # type: ignore[arg-type]


def drain(framer: AnyFramer) -> list[Any]:
    out = []
    for _ in range(100_000):
        event = framer.next_event()
        if event is None:
            return out
        out.append(event)
    raise AssertionError("the framer never stops producing events")


def run(chunks: list[bytes], kind: str = "newline", *, eof: bool = True, **opts: Any) -> list[Any]:
    framer = new(kind, **opts)
    events: list[Any] = []
    for chunk in chunks:
        framer.feed(chunk)
        events += drain(framer)
    if eof:
        framer.feed(b"")
        events += drain(framer)
        assert drain(framer) == [], "events after EOF was fully drained"
    return events


def splits(data: bytes) -> Iterator[list[bytes]]:
    """Whole, in two at every byte (every n-th byte past 400 bytes), and byte by byte."""
    yield [data]
    for i in range(1, len(data), max(1, len(data) // 400)):
        yield [data[:i], data[i:]]
    yield [data[i : i + 1] for i in range(len(data))]


def every_split(data: bytes, kind: str = "newline", *, eof: bool = True, **opts: Any) -> list[Any]:
    """Events for ``data``; asserts they are the same for every chunking."""
    expected = run([data], kind, eof=eof, **opts)
    for chunks in splits(data):
        got = run(chunks, kind, eof=eof, **opts)
        assert got == expected, f"chunks {[len(c) for c in chunks]} of {data!r}"
    return expected


def values(events: list[Any]) -> list[Any]:
    assert all(isinstance(e, Message) for e in events), events
    return [e.value for e in events]


def codes(events: list[Any]) -> list[Any]:
    return [e.value if isinstance(e, Message) else (e.code, e.fatal) for e in events]


OK = {"ok": 1}
OK_LINE = b'{"ok":1}\n'

# -- newline / concatenated JSON -------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{"a":1}\n', [{"a": 1}]),
        (b'{"a":1}\r\n[2]\n', [{"a": 1}, [2]]),
        (b'{"a":1}{"b":2}[3][]{}', [{"a": 1}, {"b": 2}, [3], [], {}]),
        (b' \t{"a":1} \r\n\n  [2]\t{"c":3}  \n', [{"a": 1}, [2], {"c": 3}]),
        (b'{"s":"}]\\"{[","t":"\\\\"}\n', [{"s": '}]"{[', "t": "\\"}]),
        ('{"u":"测试项 é"}'.encode(), [{"u": "测试项 é"}]),
        (b'{"a":"x"} [1] \n', [{"a": "x"}, [1]]),
        (b'[[[[{"d":[]}]]]]\n', [[[[[{"d": []}]]]]]),
        (b'{"a":1}\n\n\n{"b":2}', [{"a": 1}, {"b": 2}]),
    ],
)
def test_values_are_complete_at_their_closing_bracket(data: bytes, expected: list[Any]) -> None:
    # No EOF: nothing may wait for a newline that some peers never send.
    assert values(every_split(data, eof=False)) == expected
    assert values(every_split(data)) == expected


def test_pretty_printed_values_over_several_lines() -> None:
    one = {"jsonrpc": "2.0", "method": "m", "params": {"x": [1, {"y": "a\\b"}], "z": None}, "id": 7}
    two = [{"k": "v"}, [], {}]
    data = (json.dumps(one, indent=2) + "\n" + json.dumps(two, indent=4)).encode()
    assert values(every_split(data, eof=False)) == [one, two]


def test_scalars_are_read_to_the_end_of_the_line() -> None:
    assert values(every_split(b'12\n"s"\ntrue\nnull\n', eof=False)) == [12, "s", True, None]
    # At EOF the last line needs no newline.
    assert values(every_split(b"42")) == [42]
    assert run([b"42"], eof=False) == []


def test_raw_newline_in_string_is_one_error_then_resync() -> None:
    events = every_split(b'{"a":"x\n{"ok":1}\n')
    assert codes(events) == [(PARSE, False), OK]
    assert "raw newline" in events[0].message


def test_raw_newline_later_lines_of_the_broken_message_may_error_too() -> None:
    events = every_split(b'{"a":"x\ny"}\n{"ok":1}\n')
    assert codes(events)[0] == (PARSE, False)
    assert codes(events)[-1] == OK
    assert all(c == (PARSE, False) for c in codes(events)[:-1])
    assert len(events) == 3  # the first line, then the line 'y"}'


def test_an_unclosed_value_does_not_swallow_the_next_requests() -> None:
    # A line missing its closing bracket, then good lines: the next value opening where
    # a ',' is due is a definite error, and reading resumes at the line after the break.
    data = b'{"jsonrpc":"2.0","method":"m","id":1\n' + OK_LINE + b'[1,2\n  {"a":1}\n' + OK_LINE
    assert codes(every_split(data, eof=False)) == [(PARSE, False), OK, (PARSE, False), {"a": 1}, OK]
    events = every_split(b'{"a":1 "b":2}\n' + OK_LINE)
    assert codes(events) == [(PARSE, False), OK]
    assert "missing ','" in events[0].message


def test_pretty_printed_values_are_not_mistaken_for_missing_commas() -> None:
    value = {"a": [{"b": "c"}, [], [[]], {}, "d", 1, True, None], "e": {"f": [{"g": ""}]}}
    for text in (
        json.dumps(value, indent=1),
        json.dumps(value, indent="\t"),
        json.dumps(value, separators=(" , ", " : ")),
    ):
        assert values(every_split(text.encode() + b"\n" + OK_LINE)) == [value, OK]


def test_escaped_newline_in_string_is_an_error() -> None:
    events = every_split(b'{"a":"x\\\n[1]\n')
    assert codes(events) == [(PARSE, False), [1]]


@pytest.mark.parametrize("length", [1, 63, 64, 65, 130, 300])
def test_long_strings_with_escapes_anywhere(length: int) -> None:
    for at in sorted({0, length // 2, length - 1, length}):
        text = "x" * at + '\\"\n' + "y" * (length - at)
        tab = "x" * at + "\t" + "y" * length  # an escape, then a long clean run before the quote
        value = {"a": text, "b": ["z" * length, text], "c": tab}
        line = json.dumps(value).encode()
        chunked = [line[i : i + 7] for i in range(0, len(line), 7)]
        assert values(run([line])) == values(run(chunked)) == [value]
        # A raw newline at the same place is an error however it is chunked.
        broken = line.replace(b"\\n", b"\n", 1)
        assert codes(run([broken + b"\n" + OK_LINE])) == codes(
            run([broken[:length], broken[length:] + b"\n" + OK_LINE])
        )
        assert codes(run([broken + b"\n" + OK_LINE]))[0] == (PARSE, False)
        assert codes(run([broken + b"\n" + OK_LINE]))[-1] == OK


def test_escapes_across_chunks() -> None:
    data = b'{"a":"\\"\\\\","b":"\\u00e9\\n"}\n'
    assert values(every_split(data)) == [{"a": '"\\', "b": "é\n"}]


@pytest.mark.parametrize(
    "bad",
    [
        b'{"a":[1,2}',
        b"[1,2}",
        b'{"a":1]',
        b'{"a":\n [1,\n 2}',
        b"]",
        b"}",
        b"hello",
        b'{"a":tru}',
        b"{'a':1}",
        b'{"a":1,}',
        b'{"a":NaN}',
        b'{"a":Infinity}',
        b'{"a":-Infinity}',
        b"[1e999]",
        b"[-1e999]",
        b'{"a":"\xff"}',
        b'{"a":"\xed\xa0\x80"}',
        b"\xef\xbb\xbf{}",
        b'{"a":"tab\there"}',
    ],
)
def test_parse_errors_give_one_32700_and_the_connection_continues(bad: bytes) -> None:
    events = every_split(bad + b"\n" + OK_LINE)
    assert codes(events) == [(PARSE, False), OK]
    assert events[0].message.startswith("Parse error")


def test_non_utf8_error_says_so() -> None:
    (event, _) = every_split(b'{"a":"\xc3("}\n' + OK_LINE)
    assert "UTF-8" in event.message


def test_a_byte_no_value_starts_with_is_answered_at_once() -> None:
    # A TLS ClientHello on a plaintext port: answered without waiting for a newline.
    events = every_split(b"\x16\x03\x01\x02\x00\x01", eof=False)
    assert codes(events) == [(PARSE, False)]
    assert codes(every_split(b"\x16\x03\x01junk\n" + OK_LINE)) == [(PARSE, False), OK]


def test_garbage_after_a_value_on_the_same_line() -> None:
    assert codes(every_split(b'{"a":1} junk\n' + OK_LINE)) == [{"a": 1}, (PARSE, False), OK]


@pytest.mark.parametrize("use_orjson", [False, True])
def test_integers_longer_than_the_digit_limit(use_orjson: bool) -> None:
    codec = JsonCodec(max_int_digits=10, use_orjson=use_orjson)
    data = b'{"a":1234567890}\n{"a":12345678901}\n{"a":-12345678901}\n' + OK_LINE
    events = every_split(data, codec=codec)
    assert codes(events) == [{"a": 1234567890}, (PARSE, False), (PARSE, False), OK]
    assert "digits" in events[1].message


def test_partial_value_at_eof() -> None:
    assert codes(every_split(b'{"a":1')) == [(PARSE, False)]
    assert codes(every_split(b'{"a":1}\n{"b":"x')) == [{"a": 1}, (PARSE, False)]
    assert codes(every_split(b'{"a":"x\\')) == [(PARSE, False)]
    assert codes(every_split(b"tru")) == [(PARSE, False)]
    (event,) = run([b"[1,"])
    assert "end of stream" in event.message


def test_only_whitespace_or_nothing_gives_no_event() -> None:
    assert every_split(b" \r\n\t \n") == []
    assert run([]) == []


def test_eof_while_skipping_a_broken_line() -> None:
    assert codes(every_split(b'{"a":1]  more junk')) == [(PARSE, False)]


def test_nesting_beyond_max_depth_is_32600_and_the_connection_continues() -> None:
    ok = b"[[[[1]]]]\n"
    deep = b'[[{"a":[[1]]}]]\n'
    events = every_split(ok + deep + OK_LINE, max_depth=4)
    assert codes(events) == [[[[[1]]]], (INVALID, False), OK]
    assert "nesting" in events[1].message


def test_deep_nesting_below_the_limit_but_many_brackets_on_the_line() -> None:
    # Many brackets, little depth: the fast path must not mistake it for deep nesting.
    data = b"[" + b",".join([b"[1]"] * 20) + b"]\n"
    assert values(every_split(data, max_depth=3)) == [[[1]] * 20]


def test_deep_nesting_with_stdlib_recursion_limit() -> None:
    depth = sys.getrecursionlimit() + 500  # past what the stdlib decoder can recurse into
    data = b"[" * depth + b"]" * depth + b"\n" + OK_LINE
    events = every_split(data, max_depth=depth + 1)
    assert codes(events) == [(PARSE, False), OK]
    assert "too deep" in events[0].message


# -- size limit -----------------------------------------------------------------


def test_message_at_the_size_limit_passes_and_one_byte_more_is_fatal() -> None:
    limit = 20
    exact = b'{"a":"' + b"x" * (limit - 8) + b'"}'
    assert len(exact) == limit
    assert values(every_split(exact + b"\n" + exact, max_size=limit, eof=False)) == [json.loads(exact)] * 2
    over = b'{"a":"' + b"x" * (limit - 7) + b'"}'
    events = every_split(exact + over + b"\n" + OK_LINE, max_size=limit)
    assert codes(events) == [json.loads(exact), (INVALID, True)]
    assert "message too large" in events[1].message


def test_content_length_limit_is_on_the_json_text_as_with_newlines() -> None:
    # What we write with a header ends with a counted newline: a JSON text of exactly
    # the limit is accepted in both framings; one byte more, or a body whose extra
    # byte is not whitespace, is the fatal "too large".
    limit = 20
    exact = b'{"a":"' + b"x" * (limit - 8) + b'"}'
    assert (
        values(every_split(encode_frame(exact, "content-length") * 2, "content-length", max_size=limit))
        == [json.loads(exact)] * 2
    )
    for body in (exact + b"1", b'{"a":"' + b"x" * (limit - 7) + b'"}', exact + b"\n\n"):
        frame = b"Content-Length: %d\r\n\r\n" % len(body) + body
        events = every_split(frame + encode_frame(b"[1]", "content-length"), "content-length", max_size=limit)
        assert codes(events) == [(INVALID, True)], body


@pytest.mark.parametrize(
    "over",
    [
        b'{"a":1,' + b" " * 40 + b'"b":2}',  # the scanner must not jump past the limit
        b"[" + b"\n" * 40 + b"1]",
        b'"' + b"x" * 40 + b'"',  # a scalar line
        b"1" * 40,
        b'{"a":"' + b"\\n" * 20 + b'"}',
    ],
)
def test_too_large_whatever_its_shape(over: bytes) -> None:
    events = every_split(over + b"\n" + OK_LINE, max_size=30)
    assert codes(events) == [(INVALID, True)]


def test_nothing_is_read_after_a_fatal_error() -> None:
    framer = new(max_size=10)
    framer.feed(b'{"a":"' + b"x" * 20)
    assert codes(drain(framer)) == [(INVALID, True)]
    framer.feed(b'"}\n' + OK_LINE)
    assert drain(framer) == []
    assert framer.buffered == 0
    framer.feed(b"")
    assert drain(framer) == []


CHUNK = 64 * 1024
TOO_LARGE = [(INVALID, True)]


@pytest.mark.parametrize(
    ("kind", "head", "filler", "expected"),
    [
        ("newline", b'{"a":"', b"x" * CHUNK, TOO_LARGE),
        ("newline", b"[", b"1," * (CHUNK // 2), TOO_LARGE),
        ("newline", b'"', b"x" * CHUNK, TOO_LARGE),
        ("newline", b"1", b"1" * CHUNK, TOO_LARGE),
        ("newline", b' {"k":', b"1" * CHUNK, TOO_LARGE),
        ("newline", b"[[[[", b"\n" * CHUNK, TOO_LARGE),
        ("auto", b'\r\n[{"a":"', b"x" * CHUNK, TOO_LARGE),
        ("content-length", b"Content-Length: %d\r\n\r\n" % (50 << 20), b"x" * CHUNK, TOO_LARGE),
        ("auto", b"Content-Length: %d\r\n\r\n" % (50 << 20), b"x" * CHUNK, TOO_LARGE),
        ("content-length", b"X-Junk: ", b"x" * CHUNK, [(PARSE, True)]),
        # Not a message at all: a broken line is skipped, whitespace is dropped.
        ("newline", b"]", b"x" * CHUNK, [(PARSE, False)]),
        ("newline", b"", b" \r\n\t" * (CHUNK // 4), []),
    ],
    ids=[
        "string-in-object",
        "array",
        "scalar-string",
        "scalar-number",
        "object-key",
        "newlines-in-array",
        "auto-newline",
        "content-length",
        "auto-content-length",
        "endless-header",
        "skipped-line",
        "whitespace",
    ],
)
def test_a_huge_message_is_never_buffered_whole(kind: str, head: bytes, filler: bytes, expected: list[Any]) -> None:
    limit = 1 << 20
    framer = new(kind, max_size=limit)
    framer.feed(head)
    events: list[Any] = drain(framer)
    peak = 0
    for _ in range(50 * 16):  # 50 MiB in 64 KiB chunks
        framer.feed(filler)
        events += drain(framer)
        peak = max(peak, framer.buffered)
    assert codes(events) == expected
    assert peak <= limit + CHUNK
    if expected == TOO_LARGE:
        assert "message too large" in events[0].message
        assert framer.buffered == 0


def test_many_small_messages_do_not_accumulate() -> None:
    framer = new(max_size=100)
    line = b'{"jsonrpc":"2.0","method":"m","id":1}\n'
    peak = 0
    for _ in range(5000):
        framer.feed(line * 3)
        assert len(drain(framer)) == 3
        peak = max(peak, framer.buffered)
    assert peak == 0


def test_in_message_tracks_partial_values() -> None:
    framer = new()
    assert not framer.in_message
    framer.feed(b"  \n")
    assert drain(framer) == []
    assert not framer.in_message
    framer.feed(b'{"a":')
    assert drain(framer) == []
    assert framer.in_message
    framer.feed(b"1}")
    assert values(drain(framer)) == [{"a": 1}]
    assert not framer.in_message
    framer.feed(b"12")
    assert drain(framer) == []
    assert framer.in_message
    framer.feed(b"\n")
    assert values(drain(framer)) == [12]
    assert not framer.in_message


def test_resync_after_an_error_in_a_large_value() -> None:
    # Regression: the bytes after a broken value that needed compacting the buffer
    # were skipped from the wrong offset, dropping the next valid line.
    broken = b'{"a":"' + b"x" * 100_000 + b'","b":tru}'
    assert codes(every_split(broken + b"\n" + OK_LINE)) == [(PARSE, False), OK]
    assert codes(every_split(broken + b"  junk\n" + OK_LINE + OK_LINE)) == [(PARSE, False), OK, OK]


def test_large_values_after_compaction() -> None:
    big = json.dumps({"a": "y" * 70_000}).encode()
    data = big + b"\n" + big + big + b"\n" + OK_LINE
    assert values(every_split(data)) == [json.loads(big)] * 3 + [OK]
    assert values(run([data[i : i + 4096] for i in range(0, len(data), 4096)])) == [json.loads(big)] * 3 + [OK]


# -- linear cost ----------------------------------------------------------------


class CountingLoads:
    """Wraps a codec's loads; counts calls and the bytes passed in."""

    def __init__(self) -> None:
        self.calls = 0
        self.bytes = 0
        self._loads = JsonCodec().loads

    def __call__(self, data: bytes) -> Any:
        self.calls += 1
        self.bytes += len(data)
        return self._loads(data)


class CountingBuffer(bytearray):
    """A buffer that counts the bytes its ``find`` looks at."""

    scanned = 0

    def find(self, sub: Any, start: Any = 0, end: Any = None) -> int:  # type: ignore[override]
        found = super().find(sub, start, end)
        stop = len(self) if end is None else end
        CountingBuffer.scanned += (found + len(sub) if found >= 0 else stop) - start
        return found


def counting_framer(loads: CountingLoads, kind: str = "newline") -> Any:
    if kind == "newline":
        cls: Any = type("F", (JsonStreamFramer,), {"_buffer_type": CountingBuffer})
        return cls(loads, max_message_size=64 * BIG, max_depth=64)
    cls = type("F", (ContentLengthFramer,), {"_buffer_type": CountingBuffer})
    return cls(loads, max_message_size=64 * BIG)


def feed_in_chunks(framer: Any, data: bytes, size: int) -> list[Any]:
    events = []
    for i in range(0, len(data), size):
        framer.feed(data[i : i + size])
        events += drain(framer)
    return events


@pytest.mark.parametrize("newline", [b"", b"\n"])
def test_one_big_value_in_small_chunks_is_decoded_once(newline: bytes) -> None:
    value = {"k": ["v" * 100] * 11_000}
    data = json.dumps(value).encode() + newline
    assert len(data) > BIG
    loads = CountingLoads()
    CountingBuffer.scanned = 0
    assert values(feed_in_chunks(counting_framer(loads), data, 1024)) == [value]
    assert loads.calls == 1
    assert loads.bytes <= 2 * len(data)
    assert CountingBuffer.scanned <= 2 * len(data)


@pytest.mark.parametrize("newline", [b"", b"\n"])
def test_many_values_on_one_line_stay_linear(newline: bytes) -> None:
    one = b'{"jsonrpc":"2.0","method":"m","params":[1,2],"id":1}'
    count = 20_000
    data = one * count + newline
    loads = CountingLoads()
    CountingBuffer.scanned = 0
    events = feed_in_chunks(counting_framer(loads), data, 1024)
    assert len(events) == count
    assert loads.bytes <= 2 * len(data)
    assert loads.calls <= count + len(data) // 1024 + 1
    assert CountingBuffer.scanned <= 2 * len(data)


def test_pretty_printed_stream_stays_linear() -> None:
    one = json.dumps({"a": [1, 2, {"b": "c"}], "d": "e" * 50}, indent=2).encode()
    data = one * 5000
    loads = CountingLoads()
    CountingBuffer.scanned = 0
    events = feed_in_chunks(counting_framer(loads), data, 1000)
    assert len(events) == 5000
    assert loads.bytes <= 2 * len(data)
    assert CountingBuffer.scanned <= 2 * len(data)


def test_content_length_body_in_small_chunks_stays_linear() -> None:
    body = json.dumps({"k": "v" * BIG}).encode()
    data = encode_frame(body, "content-length") * 2
    loads = CountingLoads()
    CountingBuffer.scanned = 0
    framer = counting_framer(loads, "content-length")
    events = []
    for i in range(0, len(data), 1024):
        framer.feed(data[i : i + 1024])
        events += drain(framer)
        assert framer.in_message is (i + 1024 < len(data))
    assert len(events) == 2
    assert loads.calls == 2
    assert loads.bytes == 2 * (len(body) + 1)  # each body ends with the newline we write
    assert CountingBuffer.scanned <= len(data)


# -- Content-Length -------------------------------------------------------------


def cl(body: bytes, name: bytes = b"Content-Length", extra: bytes = b"") -> bytes:
    return extra + name + b": " + str(len(body)).encode() + b"\r\n\r\n" + body


def test_content_length_messages() -> None:
    body = '{"jsonrpc":"2.0","method":"测试","id":0}'.encode()
    data = cl(body) + b"\r\n" + cl(b"[1,2]", b"content-length") + cl(b'"x"', b"CONTENT-LENGTH")
    expected = [json.loads(body), [1, 2], "x"]
    assert values(every_split(data, "content-length", eof=False)) == expected
    assert values(every_split(data, "content-length")) == expected


def test_content_length_extra_headers_and_spacing() -> None:
    data = (
        b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n"
        b"content-length:7\r\n"
        b"X-Other:   whatever: with colon\r\n\r\n"
        b'{"a":1}'
        b"Content-Length:  3 \r\nContent-Length: 3\r\n\r\n[2]"
    )
    assert values(every_split(data, "content-length")) == [{"a": 1}, [2]]


@pytest.mark.parametrize("end", [b"\n\n", b"\r\n\n", b"\n\r\n"])
def test_content_length_headers_may_end_lines_in_a_bare_lf(end: bytes) -> None:
    # Some hand-written clients send LF only; the reader accepts it like CRLF.
    body = b'{"jsonrpc":"2.0","method":"a","id":1}'
    data = b"Content-Type: x\nContent-Length: %d" % len(body) + end + body + cl(b"[1]")
    data += b"Content-Length: 3" + end + b"[2]"
    assert values(every_split(data, "content-length")) == [json.loads(body), [1], [2]]
    assert values(every_split(data, "auto")) == [json.loads(body), [1], [2]]
    # a body holding a blank line is still taken by its length
    assert values(every_split(b"Content-Length: 8\n\n[1,\n\n 2]", "content-length")) == [[1, 2]]


def test_content_length_bad_body_is_not_fatal() -> None:
    data = cl(b'{"a":') + cl(b"\xff\xfe") + cl(b"") + cl(b'{"ok":1}')
    assert codes(every_split(data, "content-length")) == [(PARSE, False)] * 3 + [OK]


def test_content_length_body_longer_than_declared_is_a_bad_header() -> None:
    data = b'Content-Length: 2\r\n\r\n{"a":1}' + cl(b"[1]")
    # '{"' is the body; 'a":1}Content-Length: 3' is then read as a header line.
    events = every_split(data, "content-length")
    assert codes(events) == [(PARSE, False), (PARSE, True)]


@pytest.mark.parametrize(
    "header",
    [
        b"Content-Length: -5",
        b"Content-Length: abc",
        b"Content-Length: 1e3",
        b"Content-Length: 0x10",
        b"Content-Length: +7",
        b"Content-Length: \xd9\xa7",  # a non-ASCII digit
        b"Content-Length: " + b"9" * 30,
        b"Content-Length: ",
        b"Content-Length: 7\r\nContent-Length: 8",
        b"Content-Type: x",
        b"Content-Length 7",
        b"Cont\x00ent-Length: 7\r\nnot a header",
    ],
)
def test_bogus_content_length_is_fatal(header: bytes) -> None:
    data = header + b'\r\n\r\n{"a":1}' + cl(b'{"ok":1}')
    events = every_split(data, "content-length")
    assert codes(events) == [(PARSE, True)]
    assert events[0].message.startswith("Parse error")


def test_content_length_nesting_beyond_max_depth_is_32600_not_fatal() -> None:
    data = cl(b"[[[[1]]]]") + cl(b'[{"a":[[[1]]]}]') + cl(b'{"ok":1}') + cl(b"[" + b",".join([b"[1]"] * 9) + b"]")
    events = every_split(data, "content-length", max_depth=4)
    assert codes(events) == [[[[[1]]]], (INVALID, False), OK, [[1]] * 9]
    assert "nesting deeper than 4" in events[1].message


def test_content_length_over_the_limit_is_fatal_before_the_body_arrives() -> None:
    framer = new("content-length", max_size=100)
    framer.feed(b"Content-Length: 102\r\n\r\n")  # 101 may be the limit and a newline
    (event,) = drain(framer)
    assert (event.code, event.fatal) == (INVALID, True)
    assert "message too large" in event.message
    framer.feed(b"x" * 102 + cl(b"[1]"))
    assert drain(framer) == []
    assert framer.buffered == 0
    assert values(every_split(cl(b"[" + b"1" * 98 + b"]"), "content-length", max_size=100)) == [[int("1" * 98)]]


def test_content_length_header_block_too_long() -> None:
    framer = new("content-length")
    framer.feed(b"X-Junk: " + b"a" * MAX_HEADER_SIZE)
    (event,) = drain(framer)
    assert (event.code, event.fatal) == (PARSE, True)
    assert "too long" in event.message


@pytest.mark.parametrize(("extra", "newline"), [(0, b"\r\n"), (1, b"\r\n"), (0, b"\n"), (1, b"\n"), (200_000, b"\r\n")])
def test_content_length_header_limit_holds_however_the_block_arrives(extra: int, newline: bytes) -> None:
    # The block before its blank line may hold MAX_HEADER_SIZE bytes: one byte more is
    # refused whether or not the blank line came in the same read (it used to be
    # checked only while the blank line had not arrived).
    body = b'{"jsonrpc":"2.0","method":"m","id":1}'
    head = b"Content-Length: %d" % len(body) + newline
    head += b"X: " + b"a" * (MAX_HEADER_SIZE - len(head) - 3 + extra)
    data = head + newline * 2 + body
    assert len(head) == MAX_HEADER_SIZE + extra
    size = len(data)
    cuts = [
        [data],
        [data[i : i + 1024] for i in range(0, size, 1024)],
        [data[i : i + 1] for i in range(min(size, 9000))],
    ]
    cuts += [[data[:i], data[i:]] for i in range(MAX_HEADER_SIZE - 4, MAX_HEADER_SIZE + 8)]
    for cut in cuts:
        taken = sum(map(len, cut))
        chunks = cut if taken == size else [*cut, data[taken:]]
        events = run(chunks, "content-length")
        if extra:
            assert codes(events)[:1] == [(PARSE, True)], [len(c) for c in chunks]
            assert "too long" in events[0].message
        else:
            assert values(events) == [json.loads(body)], [len(c) for c in chunks]


@pytest.mark.parametrize("cut", [5, 20, 24, 30])
def test_content_length_partial_at_eof(cut: int) -> None:
    data = cl(b'{"jsonrpc":"2.0"}')
    events = every_split(data[:cut], "content-length")
    assert codes(events) == [(PARSE, False)]
    assert "end of stream" in events[0].message


def test_content_length_in_message() -> None:
    framer = new("content-length")
    assert not framer.in_message
    framer.feed(b"\r\n")
    assert drain(framer) == []
    assert not framer.in_message
    framer.feed(b"Content-Len")
    assert drain(framer) == []
    assert framer.in_message
    framer.feed(b"gth: 3\r\n\r\n[1")
    assert drain(framer) == []
    assert framer.in_message
    framer.feed(b"]Content-Length: 3\r\n\r\n[2]  ")
    assert values(drain(framer)) == [[1], [2]]
    assert not framer.in_message


# -- AutoFramer and helpers -----------------------------------------------------


@pytest.mark.parametrize(
    ("data", "name", "expected"),
    [
        (b'{"a":1}\n[2]', "newline", [{"a": 1}, [2]]),
        (b' \r\n {"a":1}', "newline", [{"a": 1}]),
        (b"[1]", "newline", [[1]]),
        (cl(b"[1]") + cl(b"{}"), "content-length", [[1], {}]),
        (b"\r\n" + cl(b"[1]", b"content-length"), "content-length", [[1]]),
    ],
)
def test_auto_framer_detects_from_the_first_bytes(data: bytes, name: str, expected: list[Any]) -> None:
    assert values(every_split(data, "auto", eof=False)) == expected
    for chunks in splits(data):
        framer = new("auto")
        assert framer.name == "auto"
        for chunk in chunks:
            framer.feed(chunk)
        assert framer.name == name
        assert values(drain(framer)) == expected


def test_auto_framer_before_detection() -> None:
    framer = new("auto")
    framer.feed(b" \r\n")
    assert (framer.name, framer.buffered, framer.in_message) == ("auto", 3, False)
    assert framer.next_event() is None
    framer.feed(b" " * MAX_HEADER_SIZE)  # whitespace forever is dropped, not buffered
    assert framer.buffered == 0
    framer.feed(b"{")
    assert (framer.name, framer.in_message) == ("newline", True)
    framer.feed(b"}")
    assert values(drain(framer)) == [{}]


def test_auto_framer_eof_before_detection() -> None:
    framer = new("auto")
    framer.feed(b"  ")
    framer.feed(b"")
    assert framer.next_event() is None
    assert framer.name == "auto"


def test_auto_framer_garbage_is_newline_framing() -> None:
    assert codes(every_split(b"GET / HTTP/1.1\r\n" + OK_LINE, "auto")) == [(PARSE, False), OK]


def test_make_framer_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown framing 'lines'"):
        new("lines")
    assert isinstance(new("newline"), JsonStreamFramer)
    assert isinstance(new("content-length"), ContentLengthFramer)


def test_encode_frame() -> None:
    assert encode_frame(b'{"a":1}', "newline") == b'{"a":1}\n'
    # Everything written ends with a newline (API.md); with a header it is counted in the body.
    assert encode_frame("é".encode(), "content-length") == b"Content-Length: 3\r\n\r\n\xc3\xa9\n"


@pytest.mark.parametrize("kind", ["newline", "content-length", "auto"])
def test_round_trip_of_encoded_frames(kind: str) -> None:
    bodies = [b'{"a":1}', '{"é":"测"}'.encode(), b"[1,2,3]"]
    framing = "content-length" if kind == "content-length" else "newline"
    data = b"".join(encode_frame(b, framing) for b in bodies)
    assert values(every_split(data, kind)) == [json.loads(b) for b in bodies]


def test_frame_error_defaults() -> None:
    assert FrameError(PARSE, "x") == FrameError(PARSE, "x", False)
    assert Message([1]) != Message([2])


@pytest.mark.skipif(not HAVE_ORJSON, reason="orjson not installed")
def test_same_events_with_and_without_orjson() -> None:
    data = (
        b'{"a":123456789012345678901234567890}\n[1.5,-0.0,1e300]\n{"s":"\\ud800"}\n'
        b'{"a":"\xff"}\n[NaN]\n{"a":1,"a":2}\n' + OK_LINE
    )
    runs: list[list[Any]] = []
    for use in (False, True):
        runs.append(run([data], codec=JsonCodec(use_orjson=use)))
    assert runs[0] == runs[1]
    assert codes(runs[0])[0] == {"a": 123456789012345678901234567890}
    assert isinstance(runs[0][0].value["a"], int)


@pytest.mark.parametrize("where", [70, 200, 1500, 5000])
@pytest.mark.parametrize("what", [b"\n", b'\\"', b"\\\\"], ids=["raw-newline", "escaped-quote", "escaped-backslash"])
@pytest.mark.parametrize("size", [1, 7, 100, 1024, 4096])
def test_long_strings_read_the_same_in_any_chunks(where: int, what: bytes, size: int) -> None:
    # A long string is checked with memchr per chunk; the newline check reuses what the
    # fast path already searched. Whatever the chunking, the events are those of one buffer.
    text = b"a" * where + what + b"b" * 3000
    data = b'{"s":"' + text + b'"}\n{"next":1}\n'
    whole = JsonStreamFramer(JsonCodec().loads, max_message_size=BIG, max_depth=64)
    whole.feed(data)
    expected = drain(whole)
    framer = JsonStreamFramer(JsonCodec().loads, max_message_size=BIG, max_depth=64)
    assert feed_in_chunks(framer, data, size) == expected
    assert expected[-1] == Message({"next": 1})
    if what == b"\n":
        assert isinstance(expected[0], FrameError)
