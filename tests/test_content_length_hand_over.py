"""A large Content-Length body that ends the reader's buffer is decoded from the buffer itself.

ContentLengthFramer.next_event hands such a body (256 KiB or more, its last byte the
buffer's last) to the codec without copying it: the header is deleted from the
buffer's front and a new buffer takes what comes next. Any other body is copied
out as before. These tests pin down which bodies are handed over, and that the
events stay those of the copy: the same value, the same errors, the rest of the
stream read as before.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from _framer_support import RecordingLoads, events

from jsonrpc_mini._framing import ContentLengthFramer, FrameError, Message, encode_frame
from jsonrpc_mini._json import JsonCodec

BIG = json.dumps({"jsonrpc": "2.0", "result": "x" * (300 * 1024), "id": 7}).encode()
LIMIT = 1 << 21


def copied_events(frame: bytes, max_depth: int = 64) -> list[Any]:
    """The events of ``frame`` read the way that copies it (the next frame's first bytes behind it)."""
    framer = ContentLengthFramer(JsonCodec().loads, max_message_size=LIMIT, max_depth=max_depth)
    framer.feed(frame + b"Content-")
    return events(framer)


def test_a_large_body_ending_the_buffer_is_decoded_in_place() -> None:
    loads = RecordingLoads()
    framer = ContentLengthFramer(loads, max_message_size=LIMIT, max_depth=64)
    frame = encode_frame(BIG, "content-length")
    framer.feed(frame[:100_000])
    assert events(framer) == []
    framer.feed(frame[100_000:])
    got = events(framer)
    assert [type(e) for e in got] == [Message]
    assert got[0].value == json.loads(BIG)
    assert loads.seen == [(bytearray, BIG + b"\n")]  # the buffer itself, the header gone
    assert framer.buffered == 0 and not framer.in_message
    # The next frame starts in a fresh buffer, as after a copy.
    framer.feed(encode_frame(b'{"id": 8}', "content-length"))
    assert [e.value for e in events(framer)] == [{"id": 8}]
    assert loads.seen[-1] == (bytes, b'{"id": 8}\n')


def test_a_large_body_with_bytes_behind_it_is_copied_and_they_are_read_next() -> None:
    loads = RecordingLoads()
    framer = ContentLengthFramer(loads, max_message_size=LIMIT, max_depth=64)
    framer.feed(encode_frame(BIG, "content-length") + encode_frame(b"[1]", "content-length"))
    got = events(framer)
    assert [e.value for e in got] == [json.loads(BIG), [1]]
    assert [kind for kind, _ in loads.seen] == [bytes, bytes]
    assert loads.seen[0][1] == BIG + b"\n"


def test_a_large_body_after_a_consumed_frame_is_handed_over_without_the_frame_before() -> None:
    loads = RecordingLoads()
    framer = ContentLengthFramer(loads, max_message_size=LIMIT, max_depth=64)
    framer.feed(encode_frame(b'{"id": 1}', "content-length") + encode_frame(BIG, "content-length"))
    got = events(framer)
    assert [e.value for e in got] == [{"id": 1}, json.loads(BIG)]
    assert loads.seen[1] == (bytearray, BIG + b"\n")


@pytest.mark.parametrize("size", [256 * 1024 - 1, 256 * 1024], ids=["below", "at"])
def test_bodies_from_256_kib_on_are_handed_over(size: int) -> None:
    loads = RecordingLoads()
    framer = ContentLengthFramer(loads, max_message_size=LIMIT, max_depth=64)
    body = b'"' + b"y" * (size - 3) + b'"\n'  # (the newline counted in the length, as we write)
    assert len(body) == size
    framer.feed(b"Content-Length: %d\r\n\r\n" % size + body)
    assert [e.value for e in events(framer)] == ["y" * (size - 3)]
    assert loads.seen == [(bytearray if size >= 256 * 1024 else bytes, body)]


@pytest.mark.parametrize(
    "body",
    [
        BIG[:-1] + b",}",  # not JSON, opens an object: the error keeps the text
        b"[" * 70 + BIG + b"]" * 70,  # deeper than max_depth: the error keeps the value
        b"[" + b" " * (300 * 1024) + b"1, 2",  # cut short
    ],
    ids=["parse-error", "too-deep", "unfinished"],
)
def test_errors_of_a_body_handed_over_are_those_of_the_copy(body: bytes) -> None:
    frame = b"Content-Length: %d\r\n\r\n" % len(body) + body
    loads = RecordingLoads()
    framer = ContentLengthFramer(loads, max_message_size=LIMIT, max_depth=64)
    framer.feed(frame)
    got = events(framer)
    assert loads.seen[0][0] is bytearray
    expected = copied_events(frame)
    assert len(got) == 1 and isinstance(got[0], FrameError)
    assert got == expected  # code, message, fatal and value
    assert (got[0].opened, got[0].text) == (expected[0].opened, expected[0].text)
    framer.feed(encode_frame(b"[2]", "content-length"))
    assert [e.value for e in events(framer)] == [[2]]  # read on from a fresh buffer


def test_a_large_frame_split_anywhere_reads_the_same() -> None:
    frame = encode_frame(BIG, "content-length") + encode_frame(b"[3]", "content-length")
    header = frame.index(b"\r\n\r\n") + 4
    body_end = header + len(BIG) + 1
    cuts = {1, header - 3, header - 1, header, header + 1, body_end - 1, body_end, body_end + 1, len(frame) - 1}
    for cut in sorted(cuts):
        framer = ContentLengthFramer(JsonCodec().loads, max_message_size=LIMIT, max_depth=64)
        framer.feed(frame[:cut])
        got = events(framer)
        framer.feed(frame[cut:])
        got += events(framer)
        assert [e.value for e in got] == [json.loads(BIG), [3]], cut
