"""A long string arriving in many reads: ``feed`` settles the reads that only continue it.

Once the scanner is inside a long string (``JsonStreamFramer._in_long_string``),
``feed`` looks at each read for a quote, a newline and a trailing backslash, and
``next_event`` has nothing to do for a read holding none of them. These tests hold
that path to the events of reading the bytes whole (or scanning every read) where
it is easiest to get wrong: escapes and runs of backslashes cut across reads,
several reads fed before ``next_event``, the end of stream, the size limit.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jsonrpc_mini._framing import FrameError, JsonStreamFramer, Message
from jsonrpc_mini._json import JsonCodec
from jsonrpc_mini.testing.strategies import chunkings

READ = 1000  # the first two reads: '["' and string bytes, then a read wholly inside the string


class ScanEveryRead(JsonStreamFramer):
    """The reference: scans every read (no look-ahead, no long-string path)."""

    def _read_value(self) -> Any:
        return self._scan_value()


def new(cls: type[JsonStreamFramer] = JsonStreamFramer, max_size: int = 1 << 20) -> JsonStreamFramer:
    return cls(JsonCodec().loads, max_message_size=max_size, max_depth=64)


def read_in_groups(framer: JsonStreamFramer, groups: list[list[bytes]]) -> list[list[Any]]:
    """The events after each group of reads: all its reads are fed, then next_event until None."""
    out = []
    for group in groups:
        for piece in group:
            framer.feed(piece)
        out.append(list(iter(framer.next_event, None)))
    return out


def flat(events: list[list[Any]]) -> list[Any]:
    return list(itertools.chain.from_iterable(events))


def in_long_string_after_two_reads(data: bytes) -> JsonStreamFramer:
    framer = new()
    assert read_in_groups(framer, [[data[:READ]], [data[READ : 2 * READ]]]) == [[], []]
    assert framer._in_long_string  # the path under test is taken
    return framer


# What follows 3,000 plain bytes of the string: escapes, quotes and runs of backslashes.
MIDDLES = ['"', "\\", '\\"', "\\\\", '\\\\"', '\\\\\\"', 'a\\"b\\\\c', "\\\\\\\\", "\n\t", "\u00e9\u6d4b"]


@pytest.mark.parametrize("middle", MIDDLES)
def test_a_long_string_cut_twice_anywhere_in_its_escapes_reads_as_one_buffer(middle: str) -> None:
    value = ["x" * 3000 + middle, "z"]
    data = json.dumps(value, ensure_ascii=False).encode() + b"\n"
    at = data.index(b"x" * 3000) + 3000  # where the middle starts
    window = range(at - 2, data.index(b'"z"') + 2)
    for first, second in itertools.combinations_with_replacement(window, 2):
        rest = [piece for piece in (data[2 * READ : first], data[first:second], data[second:]) if piece]
        framer = in_long_string_after_two_reads(data)
        # One read at a time, then all of them fed before one next_event.
        assert flat(read_in_groups(framer, [[piece] for piece in rest])) == [Message(value)], (first, second)
        framer = in_long_string_after_two_reads(data)
        assert read_in_groups(framer, [rest]) == [[Message(value)]], (first, second)


def one_buffer(data: bytes) -> list[Any]:
    framer = new()
    framer.feed(data)
    return list(iter(framer.next_event, None))


@pytest.mark.parametrize("run", range(1, 6))
@pytest.mark.parametrize("cut", range(6))
def test_a_run_of_backslashes_cut_between_reads_escapes_the_quote_only_when_odd(run: int, cut: int) -> None:
    # A run of backslashes, then a quote, cut inside the run (or around it): an even
    # run is escaped backslashes and the quote ends the string; an odd one escapes the
    # quote, the string goes on to the next one, and "y" after it is an error.
    data = b'["' + b"x" * 2500 + b"\\" * run + b'", "y"]\n'
    at = data.index(b"\\") + min(cut, run)
    framer = in_long_string_after_two_reads(data)
    events = flat(read_in_groups(framer, [[data[2 * READ : at]], [data[at:]]]))
    assert events == one_buffer(data)
    if run % 2:
        assert isinstance(events[0], FrameError) and "missing ','" in events[0].message, events
    else:
        assert events == [Message(["x" * 2500 + "\\" * (run // 2), "y"])]


def test_reads_fed_after_one_that_ends_the_string_are_read_the_usual_way() -> None:
    data = b'["' + b"x" * 2500
    framer = in_long_string_after_two_reads(data)
    # The second read ends the string and the value; the third (plain bytes, as a
    # string's would be) is no JSON value and must not be taken for the string's.
    groups = [[data[2 * READ :], b'"]', b"xxxx"]]
    assert read_in_groups(framer, groups) == [
        [Message(["x" * 2500]), FrameError(-32700, "Parse error: no JSON value starts with this byte")]
    ]


def test_the_end_of_stream_fed_after_plain_reads_ends_the_string() -> None:
    framer = in_long_string_after_two_reads(b'["' + b"x" * 3000)
    assert read_in_groups(framer, [[b"x" * 100, b""]]) == [
        [FrameError(-32700, "Parse error: incomplete JSON value at end of stream")]
    ]


def test_plain_reads_past_the_size_limit_are_refused() -> None:
    framer = new(max_size=5000)
    framer.feed(b'["' + b"x" * 998)
    assert framer.next_event() is None
    groups = [[b"x" * 1000] for _ in range(3)] + [[b"x" * 1000, b"x" * 1000]]
    assert flat(read_in_groups(framer, groups)) == [
        FrameError(-32600, "Invalid Request: message too large (limit 5000 bytes)", True)
    ]


class CountingBuffer(bytearray):
    """A buffer that counts the bytes its ``find`` looks at."""

    scanned = 0

    def find(self, sub: Any, start: Any = 0, end: Any = None) -> int:
        found = super().find(sub, start, end)
        stop = len(self) if end is None else end
        CountingBuffer.scanned += (found + 1 if found >= 0 else stop) - start
        return found


def test_plain_reads_are_not_searched_again_when_the_string_ends() -> None:
    # feed searched each plain read (in the bytes fed): the newline search that decodes
    # the line at the end starts where they end, not at the string's start.
    value = ["x" * (1 << 20)]
    data = json.dumps(value).encode() + b"\n"
    framer = type("Counting", (JsonStreamFramer,), {"_buffer_type": CountingBuffer})(
        JsonCodec().loads, max_message_size=2 << 20, max_depth=64
    )
    CountingBuffer.scanned = 0
    groups = [[data[start : start + 1024]] for start in range(0, len(data), 1024)]
    assert flat(read_in_groups(framer, groups)) == [Message(value)]
    assert CountingBuffer.scanned < len(data) // 10, CountingBuffer.scanned


@settings(max_examples=300, deadline=None)
@given(
    tail=st.lists(st.sampled_from([b"\\", b'"', b"x", b"\n", b"]", b"\xc3\xa9"]), max_size=12).map(b"".join),
    data=st.data(),
)
def test_broken_escapes_in_a_long_string_give_the_events_of_scanning_every_read(tail: bytes, data: Any) -> None:
    # Any bytes after a long string's plain start, then a line that closes it and a good
    # value: cut anywhere, fed in groups, the events are those of scanning every read:
    # never earlier, never different, and all of them by the end.
    stream = b'["' + b"x" * 2500 + tail + b'"]\n[1]\n'
    pieces = data.draw(chunkings(stream[2 * READ :], max_chunks=12))
    sizes = data.draw(st.lists(st.integers(1, 3), min_size=len(pieces), max_size=len(pieces)))
    groups: list[list[bytes]] = []
    while pieces:
        groups.append(pieces[: sizes[len(groups)]])
        pieces = pieces[len(groups[-1]) :]
    lazy = in_long_string_after_two_reads(stream)
    eager = new(ScanEveryRead)
    read_in_groups(eager, [[stream[:READ]], [stream[READ : 2 * READ]]])
    got: list[Any] = []
    due: list[Any] = []
    for now, then in zip(read_in_groups(lazy, groups), read_in_groups(eager, groups), strict=True):
        got += now
        due += then
        assert got == due[: len(got)], (groups, got, due)
    assert got == due, (groups, got, due)
    assert got[-1] == Message([1])


def test_a_raw_newline_in_a_read_fed_with_others_is_an_error_and_the_next_line_is_read() -> None:
    framer = in_long_string_after_two_reads(b'["' + b"x" * 3000)
    assert read_in_groups(framer, [[b"x" * 100, b"a\nb", b'"]\n[1]\n']]) == [
        [
            FrameError(-32700, "Parse error: raw newline inside a string"),
            FrameError(-32700, "Parse error: no JSON value starts with this byte"),
            Message([1]),
        ]
    ]
