"""A value arriving in many reads: the scan waits for the newline, but never past a closing bracket.

JsonStreamFramer decodes a compact value sent in many reads as one line when its
newline comes, and only scans token by token when ``unclosed`` (a C-speed look at
the new bytes) cannot rule out that a value ended. These tests pin down the two
things that must hold: ``unclosed`` never claims a value is still open when it is
not, and every value is delivered in the read that brings its last byte.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jsonrpc_mini import _frames
from jsonrpc_mini._frames import unclosed
from jsonrpc_mini._framing import FrameError, JsonStreamFramer, Message
from jsonrpc_mini._json import JsonCodec
from jsonrpc_mini.testing.strategies import chunkings, json_values

ROUNDS = 200

# Strings full of what matters to the bracket count: quotes, backslashes, brackets.
tricky_strings = st.text(alphabet='"\\[]{}/ :,ab\u00e9\u6d4b\n\t', max_size=12)
tricky_values = st.recursive(
    st.one_of(tricky_strings, st.integers(), st.none(), st.booleans()),
    lambda children: st.one_of(st.lists(children, max_size=5), st.dictionaries(tricky_strings, children, max_size=5)),
    max_leaves=25,
)
containers = st.one_of(
    st.lists(st.one_of(tricky_values, json_values(max_leaves=10)), max_size=5),
    st.dictionaries(tricky_strings, st.one_of(tricky_values, json_values(max_leaves=10)), max_size=5),
)


def dump(value: Any, style: int) -> bytes:
    if style == 0:
        return json.dumps(value, separators=(",", ":")).encode()
    if style == 1:
        return json.dumps(value, ensure_ascii=False).encode()
    return json.dumps(value, indent=2).encode()


@settings(max_examples=300, deadline=None)
@given(value=containers, style=st.integers(0, 2), data=st.data())
def test_unclosed_never_calls_a_prefix_closed(value: Any, style: int, data: st.DataObject) -> None:
    text = dump(value, style)
    assert unclosed(text, ROUNDS) in (b"", None)  # the whole value: nothing left open
    cut = data.draw(st.integers(1, len(text) - 1)) if len(text) > 1 else 1
    rest = unclosed(text[:cut], ROUNDS)
    if rest is not None and cut < len(text):
        # A value's proper prefix closes nothing it did not open, and leaves something open.
        assert not rest.startswith((b"]", b"}")), (text[:cut], rest)
        assert rest, (text[:cut], rest)


@settings(max_examples=300, deadline=None)
@given(value=containers, style=st.integers(0, 2), data=st.data())
def test_unclosed_chains_over_any_split(value: Any, style: int, data: st.DataObject) -> None:
    text = dump(value, style) + b" " + dump(value, 0)
    cut = data.draw(st.integers(0, len(text)))
    first = unclosed(text[:cut], ROUNDS)
    whole = unclosed(text, ROUNDS)
    if first is not None:
        chained = unclosed(first + text[cut:], ROUNDS)
        if chained is not None and whole is not None:
            assert chained == whole


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b'{"a":[1,2', b"{["),
        (b'{"a":"x', b'{"'),
        (b'"ab" ]}', b"]}"),  # a string continued from an earlier read, then closers
        (b'"\\"x"]', b"]"),
        (b'{"a":"x\\"', b'{"'),  # escaped quote: still inside the string
        (b'{"a":"x\\"]', None),  # a bracket in the string the text ends in: not known
        (b'{"a": x", "b": 1}', None),  # a stray quote: the bracket looks like string content
        (b'{"a":"x\\\\"]', b"{]"),  # escaped backslash: the quote closes the string
        (b'{"a":"x\\', None),  # an escape cut in two
        (b'{"a":"[x"}', None),  # a string holding a bracket: not known
        (b'{"a":{"b":[[{}]]}}', b""),
    ],
)
def test_unclosed_examples(text: bytes, expected: bytes | None) -> None:
    assert unclosed(text, ROUNDS) == expected


def decoded(value: Any) -> Any:
    return json.loads(json.dumps(value))


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(containers, min_size=1, max_size=4),
    styles=st.lists(st.integers(0, 2), min_size=4, max_size=4),
    gaps=st.lists(st.sampled_from([b"", b" ", b"\n", b"\r\n", b"\t"]), min_size=4, max_size=4),
    data=st.data(),
)
def test_each_value_is_delivered_by_the_read_that_ends_it(
    values: list[Any], styles: list[int], gaps: list[bytes], data: st.DataObject
) -> None:
    pieces = [dump(value, style) + gap for value, style, gap in zip(values, styles, gaps, strict=False)]
    stream = b"".join(pieces)
    ends = []  # offset just past each value's closing bracket
    offset = 0
    for value, style, piece in zip(values, styles, pieces, strict=False):
        ends.append(offset + len(dump(value, style)))
        offset += len(piece)
    framer = JsonStreamFramer(JsonCodec().loads, max_message_size=1 << 20, max_depth=64)
    got: list[Any] = []
    fed = 0
    for chunk in data.draw(chunkings(stream)):
        framer.feed(chunk)
        fed += len(chunk)
        for _ in range(100):
            event = framer.next_event()
            if event is None:
                break
            assert isinstance(event, Message), event
            got.append(event.value)
        due = sum(1 for end in ends if end <= fed)
        assert got == [decoded(v) for v in values[:due]], (stream, fed)


def test_a_compact_value_in_many_reads_is_decoded_at_its_newline() -> None:
    value = {"jsonrpc": "2.0", "method": "echo", "params": [[{"id": i, "tags": ["a", "b"]} for i in range(300)]]}
    text = json.dumps(value, separators=(",", ":")).encode() + b"\n"
    framer = JsonStreamFramer(JsonCodec().loads, max_message_size=1 << 20, max_depth=64)
    body, newline = text[:-5], text[-5:]  # the last piece: b"}]]}\n"
    for start in range(0, len(body), 1000):
        framer.feed(body[start : start + 1000])
        assert framer.next_event() is None
    # The scanner has not walked the value: it is still just past the opening bracket.
    assert framer._pos == 1
    framer.feed(newline)
    assert framer.next_event() == Message(value)
    assert framer.buffered == 0


def test_an_error_inside_a_value_still_arriving_may_come_with_its_line() -> None:
    framer = JsonStreamFramer(JsonCodec().loads, max_message_size=1 << 20, max_depth=64)
    framer.feed(b'{"a" "b"')
    assert framer.next_event() is None  # the missing comma is not looked for yet
    framer.feed(b' }\n{"b":2}\n')
    error = framer.next_event()
    assert isinstance(error, FrameError) and error.code == -32700 and "missing ','" in error.message
    assert framer.next_event() == Message({"b": 2})
    assert framer.next_event() is None


def test_a_mismatched_bracket_in_a_value_still_arriving_is_reported_at_once() -> None:
    framer = JsonStreamFramer(JsonCodec().loads, max_message_size=1 << 20, max_depth=64)
    framer.feed(b'{"a":[1}')
    error = framer.next_event()
    assert isinstance(error, FrameError) and "mismatched" in error.message


def test_deep_nesting_read_lazily_stays_linear(monkeypatch: pytest.MonkeyPatch) -> None:
    # max_depth may be lifted far past what the look at new bytes handles: its work
    # (pair-removal rounds over the text it is given) must stay bounded per byte.
    work = 0
    real = _frames._unmatched

    def counting(text: bytes, not_kept: bytes, rounds: int) -> bytes | None:
        nonlocal work
        work += len(text) * rounds
        return real(text, not_kept, rounds)

    monkeypatch.setattr(_frames, "_unmatched", counting)
    depth = 50_000
    data = b"[" * depth + b"]" * depth + b"\n"
    framer = JsonStreamFramer(JsonCodec().loads, max_message_size=1 << 20, max_depth=10 * depth)
    for start in range(0, len(data), 4096):
        framer.feed(data[start : start + 4096])
        event = framer.next_event()
    assert event is not None  # decoded (or a depth error from the decoder): not hung
    assert work <= 64 * len(data), work


class ScanEveryRead(JsonStreamFramer):
    """The reference: scans every read (what the framer did before reading lazily)."""

    def _read_value(self) -> Any:
        return self._scan_value()


# Strings long enough that whole reads fall inside them (the framer's long-string path).
long_strings = st.text(alphabet='"\\[]{}/ :,ab\u00e9\n', min_size=30, max_size=300)
long_string_values = st.one_of(
    st.lists(st.one_of(long_strings, tricky_values), min_size=1, max_size=4),
    st.dictionaries(tricky_strings, st.one_of(long_strings, tricky_values), min_size=1, max_size=4),
)


@st.composite
def damaged_streams(draw: st.DrawFn, values: st.SearchStrategy[Any] = containers) -> bytes:
    """Values with bytes inserted, dropped or replaced, as a broken peer sends them.

    Brackets are never added or dropped (a closing one may become the wrong kind):
    each value still ends with the bracket that closes it, so the peer then waits.
    """
    pieces = []
    for value, style in draw(st.lists(st.tuples(values, st.integers(0, 2)), min_size=1, max_size=3)):
        text = bytearray(dump(value, style))
        for _ in range(draw(st.integers(0, 2))):
            at = draw(st.integers(0, len(text) - 1))
            edit = draw(st.sampled_from(["insert", "drop", "replace"]))
            byte = draw(st.sampled_from(b'",: 1x\\\n'))
            if text[at] in b"[]{}":
                if edit == "replace" and text[at] in b"]}":
                    text[at] = ord("]") if text[at] == ord("}") else ord("}")
            elif edit == "insert":
                text[at:at] = bytes((byte,))
            else:
                text[at : at + 1] = b"" if edit == "drop" else bytes((byte,))
        pieces.append(bytes(text) + draw(st.sampled_from([b"", b" ", b"\n"])))
    return b"".join(pieces)


def events_per_read(cls: type[JsonStreamFramer], chunks: list[bytes]) -> list[list[Any]]:
    framer = cls(JsonCodec().loads, max_message_size=1 << 16, max_depth=16)
    out = []
    for chunk in chunks:
        framer.feed(chunk)
        got = []
        for _ in range(1000):
            event = framer.next_event()
            if event is None:
                break
            got.append(event)
        out.append(got)
    return out


@settings(max_examples=400, deadline=None)
@given(stream=damaged_streams(), data=st.data())
def test_a_peer_that_stops_after_a_broken_value_gets_every_answer(stream: bytes, data: st.DataObject) -> None:
    assert_answered_as_by_scanning_every_read(data.draw(chunkings(stream)))


def assert_answered_as_by_scanning_every_read(chunks: list[bytes]) -> None:
    """The same events as scanning every read, never earlier, never different.

    Later only while more bytes are to come: once the peer stops (no newline, no
    EOF), everything scanning would have answered is answered.
    """
    lazy, eager = events_per_read(JsonStreamFramer, chunks), events_per_read(ScanEveryRead, chunks)
    got: list[Any] = []
    due: list[Any] = []
    for now, then in zip(lazy, eager, strict=True):
        got += now
        due += then
        assert got == due[: len(got)], (chunks, got, due)
    assert got == due, (chunks, got, due)


@settings(max_examples=300, deadline=None)
@given(stream=damaged_streams(long_string_values), data=st.data())
def test_long_strings_in_many_reads_give_the_events_of_scanning_every_read(stream: bytes, data: st.DataObject) -> None:
    # The long-string path (a few memchr per read) against scanning every read, with
    # escapes, quotes and newlines cut across reads, and stray or missing quotes.
    assert_answered_as_by_scanning_every_read(data.draw(chunkings(stream, max_chunks=200)))


def long_string_framer() -> JsonStreamFramer:
    return JsonStreamFramer(JsonCodec().loads, max_message_size=1 << 20, max_depth=64)


def read_in_reads_of(size: int, text: bytes) -> list[Any]:
    """The events of a fresh framer fed ``text`` in reads of ``size`` bytes."""
    framer = long_string_framer()
    events: list[Any] = []
    for start in range(0, len(text), size):
        framer.feed(text[start : start + size])
        events += iter(framer.next_event, None)
    return events


def test_a_long_string_in_many_reads_is_not_scanned_read_by_read(monkeypatch: pytest.MonkeyPatch) -> None:
    scans = 0
    real = JsonStreamFramer._scan_value

    def counting(self: JsonStreamFramer) -> Any:
        nonlocal scans
        scans += 1
        return real(self)

    monkeypatch.setattr(JsonStreamFramer, "_scan_value", counting)
    value = {"jsonrpc": "2.0", "method": "echo", "params": ["x" * 200_000 + '\\"quoted\\"'], "id": 1}
    assert read_in_reads_of(1024, json.dumps(value).encode() + b"\n") == [Message(value)]
    assert scans <= 3, scans  # ~200 reads: the scanner caught up once, not once per read


def test_a_long_string_after_a_large_start_does_not_make_the_scanner_walk_that_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Catching up token by token with 200 KB of small objects would cost more than
    # the long string's cheap reads save: the scanner stays where it is.
    walked = 0
    real = JsonStreamFramer._scan_value

    def counting(self: JsonStreamFramer) -> Any:
        nonlocal walked
        before = self._pos
        event = real(self)
        walked += max(0, self._pos - before)
        return event

    monkeypatch.setattr(JsonStreamFramer, "_scan_value", counting)
    value = [[{"id": i, "tags": ["a", "b"]} for i in range(8000)], "x" * 100_000]
    assert read_in_reads_of(4096, json.dumps(value, separators=(",", ":")).encode() + b"\n") == [Message(value)]
    assert walked < 70_000, walked  # at most the catch-up bound, not the 200 KB start


@pytest.mark.parametrize("tail", [b"]}", b"x]}", b'"]}\n'])
def test_far_behind_a_stray_quote_then_long_reads_is_answered_at_the_closing_bracket(tail: bytes) -> None:
    # Over _CATCH_UP behind, reads that continue a string are let through with a few
    # memchr and no scan; a stray quote only looks like a string, so a read with a
    # closing bracket must still reach the scanner: the same events as scanning.
    chunks = [b'{"a":[' + b"1," * 40_000 + b'2"', *[b"x" * 2048] * 3, tail]

    def events(cls: type[JsonStreamFramer]) -> list[list[Any]]:
        framer = cls(JsonCodec().loads, max_message_size=1 << 20, max_depth=64)
        out = []
        for chunk in chunks:
            framer.feed(chunk)
            out.append(list(iter(framer.next_event, None)))
        return out

    lazy, eager = events(JsonStreamFramer), events(ScanEveryRead)
    flat = [[event for read in events_ for event in read] for events_ in (lazy, eager)]
    assert flat[0] == flat[1], (lazy, eager)  # later (allowed), never different
    assert lazy[-1] and "missing ','" in lazy[-1][0].message  # at the latest with the closing bracket


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        # An escape cut in two: the backslash ends one read, the quote starts the next.
        ([b"a\\", b'"b"]'], Message(["x" * 3000 + 'a"b'])),
        # A raw newline inside the string: an error, and the next line is read afresh.
        ([b"a\nb", b'"]\n[1]\n'], FrameError(-32700, "Parse error: raw newline inside a string")),
    ],
)
def test_the_read_that_ends_a_long_string_goes_the_usual_way(tail: list[bytes], expected: Any) -> None:
    framer = long_string_framer()
    framer.feed(b'["' + b"x" * 1000)
    assert framer.next_event() is None
    for _ in range(2):
        framer.feed(b"x" * 1000)
        assert framer.next_event() is None
    assert framer._in_long_string
    events = []
    for piece in tail:
        framer.feed(piece)
        events += [e for e in iter(framer.next_event, None)]
    assert events[0] == expected
    if isinstance(expected, FrameError):  # the rest of the broken value earns its own error
        assert events[1:] == [FrameError(-32700, "Parse error: no JSON value starts with this byte"), Message([1])]


def test_a_long_string_cut_by_the_end_of_stream_or_the_size_limit() -> None:
    framer = long_string_framer()
    for _ in range(4):
        framer.feed(b'["' if framer.buffered == 0 else b"x" * 1000)
        assert framer.next_event() is None
    framer.feed(b"")
    event = framer.next_event()
    assert isinstance(event, FrameError) and "end of stream" in event.message
    small = JsonStreamFramer(JsonCodec().loads, max_message_size=5000, max_depth=64)
    small.feed(b'["')
    events = []
    for _ in range(10):
        small.feed(b"x" * 1000)
        events += [e for e in iter(small.next_event, None)]
    assert events == [FrameError(-32600, "Invalid Request: message too large (limit 5000 bytes)", True)]


@pytest.mark.parametrize(
    ("chunks", "error"),
    [
        # A stray quote: bracket counting sees the closing bracket inside a string.
        ([b'{"jsonrpc": "2.0", "method": x", "id": 1', b"}"], "missing ','"),
        # The scanner has read the string holding a bracket; a wrong closing bracket follows.
        ([b'{"jsonrpc": "2.0", "method": "[", "params": [1', b"}"], "mismatched '}'"),
        # A value lost its closing bracket, the next one follows: every pair still matches.
        ([b'{"jsonrpc":"2.0","method":"a","id":1{"jsonrpc":"2.0","method":"b","id":2}'], "missing ','"),
        ([b'{"jsonrpc":"2.0","method":"a","id":1', b' {"jsonrpc":"2.0","method":"b","id":2}'], "missing ','"),
        # The same after many spaces, the scanner having read the first read (a bracket in a string).
        (
            [b'{"jsonrpc":"2.0","method":"[x]","id":1' + b" " * 40, b'{"jsonrpc":"2.0","method":"b","id":2}'],
            "missing ','",
        ),
        (
            [b'{"jsonrpc":"2.0","method":"[x]","id":1' + b" " * 5000, b'{"jsonrpc":"2.0","method":"b","id":2}'],
            "missing ','",
        ),
    ],
)
def test_a_broken_value_sent_without_a_newline_is_answered_when_its_last_byte_comes(
    chunks: list[bytes], error: str
) -> None:
    framer = JsonStreamFramer(JsonCodec().loads, max_message_size=1 << 20, max_depth=128)
    for chunk in chunks[:-1]:
        framer.feed(chunk)
        framer.next_event()
    framer.feed(chunks[-1])
    event = framer.next_event()
    assert isinstance(event, FrameError) and event.code == -32700 and error in event.message, event
