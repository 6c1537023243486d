"""A large line that fills the reader's buffer is decoded from the buffer itself.

JsonStreamFramer._fast_path hands such a line (256 KiB or more, starting at the
buffer's first byte, its newline the buffer's last byte) to the codec without
copying it; any other line is copied out as before. These tests pin down which
lines are handed over, and that the events stay those of the copy: the same
value, the same errors, the rest of the stream read as before.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from _framer_support import RecordingLoads, events

from jsonrpc_mini import _json_stream
from jsonrpc_mini._framing import FrameError, JsonStreamFramer, Message
from jsonrpc_mini._json import JsonCodec

BIG = json.dumps({"jsonrpc": "2.0", "result": "x" * (300 * 1024), "id": 7}).encode()


def framer_with(loads: RecordingLoads, max_depth: int = 64, after_decoding: bool = False) -> JsonStreamFramer:
    return JsonStreamFramer(loads, max_message_size=1 << 21, max_depth=max_depth, depth_after_decoding=after_decoding)


def copied_events(text: bytes, after_decoding: bool = False) -> list[Any]:
    """The events of ``text`` read the way that copies it (a line before it in the buffer)."""
    framer = JsonStreamFramer(
        JsonCodec().loads, max_message_size=1 << 21, max_depth=64, depth_after_decoding=after_decoding
    )
    framer.feed(b'{"id": 0}\n' + text + b"\n")
    got = events(framer)
    assert got[0].value == {"id": 0}
    return got[1:]


def test_a_large_line_filling_the_buffer_is_decoded_in_place() -> None:
    loads = RecordingLoads()
    framer = framer_with(loads)
    framer.feed(BIG[:100_000])
    framer.feed(BIG[100_000:] + b"\n")
    got = events(framer)
    assert [type(e) for e in got] == [Message]
    assert got[0].value == json.loads(BIG)
    assert loads.seen == [(bytearray, BIG + b"\n")]  # the buffer itself, newline included
    # The next message starts in a fresh buffer, as after a copy.
    framer.feed(b'{"id": 8}\n')
    assert [e.value for e in events(framer)] == [{"id": 8}]
    assert loads.seen[-1] == (bytes, b'{"id": 8}')


def test_a_large_line_after_a_consumed_one_is_copied() -> None:
    # The small line's bytes stay in the buffer before the large one (no compaction
    # for so few): handing the whole buffer over would decode both.
    loads = RecordingLoads()
    framer = framer_with(loads)
    framer.feed(b'{"id": 1}\n' + BIG + b"\n")
    got = events(framer)
    assert [e.value for e in got] == [{"id": 1}, json.loads(BIG)]
    assert loads.seen == [(bytes, b'{"id": 1}'), (bytes, BIG)]


def test_a_large_line_followed_by_more_is_copied() -> None:
    loads = RecordingLoads()
    framer = framer_with(loads)
    framer.feed(BIG + b'\n{"id": 2}\n')
    got = events(framer)
    assert [e.value for e in got] == [json.loads(BIG), {"id": 2}]
    assert loads.seen == [(bytes, BIG), (bytes, b'{"id": 2}')]


def test_a_line_just_under_the_size_is_copied() -> None:
    text = json.dumps({"a": "y" * (_json_stream._HAND_OVER - 10)}).encode()
    assert len(text) == _json_stream._HAND_OVER - 1
    loads = RecordingLoads()
    framer = framer_with(loads)
    framer.feed(text + b"\n")
    assert [e.value for e in events(framer)] == [json.loads(text)]
    assert loads.seen == [(bytes, text)]
    bigger = json.dumps({"a": "y" * (_json_stream._HAND_OVER - 9)}).encode()
    framer.feed(bigger + b"\n")
    assert [e.value for e in events(framer)] == [json.loads(bigger)]
    assert loads.seen[-1] == (bytearray, bigger + b"\n")


def test_an_invalid_large_line_is_reported_as_the_scanner_finds_it() -> None:
    # The failed try must leave the buffer as it was: the scanner reads it next.
    bad = BIG[:-1] + b",}"  # a trailing comma: invalid at the very end
    expected = copied_events(bad)
    loads = RecordingLoads()
    framer = framer_with(loads)
    framer.feed(bad + b"\n")
    got = events(framer)
    assert len(got) == 1 and isinstance(got[0], FrameError)
    assert [(type(e), e.code, e.message) for e in got] == [(type(e), e.code, e.message) for e in expected]
    assert loads.seen[0] == (bytearray, bad + b"\n")
    framer.feed(b'{"id": 3}\n')
    assert [e.value for e in events(framer)] == [{"id": 3}]


@pytest.mark.parametrize("after_decoding", [False, True])
def test_a_too_deep_large_line_is_refused_as_before(after_decoding: bool) -> None:
    # Deep nesting then a long string: decoded whole (in place), then refused by depth,
    # by the scanner or (a client's replies) from the decoded value.
    deep = b'{"a":' * 70 + json.dumps("z" * (300 * 1024)).encode() + b"}" * 70
    loads = RecordingLoads()
    framer = framer_with(loads, max_depth=64, after_decoding=after_decoding)
    framer.feed(deep + b"\n")
    got = events(framer)
    expected = copied_events(deep, after_decoding)
    assert len(got) == 1 and isinstance(got[0], FrameError)
    assert [(e.code, e.message, e.value) for e in got] == [(e.code, e.message, e.value) for e in expected]
    assert (got[0].value is not None) == after_decoding
    assert loads.seen[0] == (bytearray, deep + b"\n")


@pytest.mark.parametrize("levels", [60, 70])
def test_a_large_line_of_many_elements_is_judged_by_its_bytes(levels: int) -> None:
    # More elements than too_deep walks: the depth is judged from the text, here the
    # buffer itself (a bytearray), within the limit (a message) or past it (an error).
    many = b"[" + b",".join(b"[1]" for _ in range(1000)) + b"]"
    text = b'{"a":' * levels + json.dumps("z" * (300 * 1024)).encode() + b',"b":' + many + b"}" * levels
    loads = RecordingLoads()
    framer = framer_with(loads, max_depth=64)
    framer.feed(text + b"\n")
    got = events(framer)
    expected = copied_events(text)
    assert loads.seen[0] == (bytearray, text + b"\n")
    assert [type(e) for e in got] == [Message if levels < 64 else FrameError]
    if levels < 64:
        assert got[0].value == expected[0].value == json.loads(text)
    else:
        assert [(e.code, e.message) for e in got] == [(e.code, e.message) for e in expected]
