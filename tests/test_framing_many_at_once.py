"""Many values read at once, without newlines: the look ahead stays linear.

A peer may send many values back to back with no newline (concatenated JSON), and
a reader that fell behind takes them in one read (the sync server's reads take up
to max_message_size of what has arrived). The look at the bytes after the
scanner's place (``LookAhead._may_close``) then has every later value ahead of it.
It used to look at all of them for each value: 200 echo requests of 64 KiB took
21 s of CPU, 10,000 small ones 42 s (the sync server's test of a TLS peer that
never reads its replies timed out that way under load). Its look now starts short
and grows, so each value costs about its own bytes.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_framing_lazy import assert_answered_as_by_scanning_every_read, damaged_streams

from jsonrpc_mini import _frames, _json_lazy
from jsonrpc_mini._framing import JsonStreamFramer, Message
from jsonrpc_mini._json import JsonCodec
from jsonrpc_mini.testing.strategies import chunkings


def request(i: int, param: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "echo", "params": [param], "id": i}


@pytest.fixture
def looked_at(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the bytes the look ahead passes to its two C-speed looks (a one-item list)."""
    count = [0]
    real_unclosed = _frames.unclosed
    real_kinds = _json_lazy.LookAhead._opens_after_a_value

    def unclosed(text: bytes, rounds: int) -> bytes | None:
        count[0] += len(text)
        return real_unclosed(text, rounds)

    def opens_after_a_value(self: _json_lazy.LookAhead, end: int) -> bool:
        count[0] += end - self._kinds_to
        return real_kinds(self, end)

    monkeypatch.setattr(_json_lazy, "unclosed", unclosed)
    monkeypatch.setattr(_json_lazy.LookAhead, "_opens_after_a_value", opens_after_a_value)
    return count


def read_at_once(values: list[Any], *, newline: bytes = b"") -> list[Any]:
    """Feed ``values`` concatenated in one read; the events it gives."""
    framer = JsonStreamFramer(JsonCodec().loads, max_message_size=16 << 20, max_depth=64)
    framer.feed(b"".join(json.dumps(value).encode() + newline for value in values))
    return list(iter(framer.next_event, None))


@pytest.mark.parametrize(
    ("count", "param"),
    [(5000, 1), (60, "r" * 65536), (300, {"k": ["v" * 30] * 200})],
    ids=["small", "long-strings", "structured"],
)
def test_values_read_at_once_are_each_looked_at_about_once(looked_at: list[int], count: int, param: Any) -> None:
    values = [request(i, param) for i in range(count)]
    size = sum(len(json.dumps(value)) for value in values)
    assert read_at_once(values) == [Message(value) for value in values]
    # Each value's look ends within a few times its own bytes (plus the first look,
    # 4 KiB): the old look reached the buffer's end every time, ~count/2 times the size.
    assert looked_at[0] <= 4 * size + 2 * count * _json_lazy._FIRST_LOOK, (looked_at[0], size)


def test_a_value_in_many_reads_is_still_looked_at_once_per_byte(
    looked_at: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the look is for: a large value arriving read by read (no newline yet) is
    # not scanned token by token; each read's bytes are looked at once by each of
    # the two looks, the first read's in a few growing steps.
    scans = 0
    real = JsonStreamFramer._scan_value

    def counting(self: JsonStreamFramer) -> Any:
        nonlocal scans
        scans += 1
        return real(self)

    monkeypatch.setattr(JsonStreamFramer, "_scan_value", counting)
    value = request(1, [{"k": "v" * 20, "n": [1, 2, 3]}] * 20_000)
    text = json.dumps(value).encode()
    framer = JsonStreamFramer(JsonCodec().loads, max_message_size=16 << 20, max_depth=64)
    events: list[Any] = []
    for start in range(0, len(text), 65536):
        framer.feed(text[start : start + 65536])
        events += iter(framer.next_event, None)
    assert events == [Message(value)]
    assert scans == 1  # at the closing bracket only
    assert looked_at[0] <= 2 * len(text) + 2 * _json_lazy._FIRST_LOOK


@settings(max_examples=300, deadline=None)
@given(stream=damaged_streams(), first=st.integers(1, 64), data=st.data())
def test_a_short_first_look_gives_the_events_of_scanning_every_read(
    stream: bytes, first: int, data: st.DataObject
) -> None:
    # The look's steps fall anywhere in the values (the first one a few bytes long):
    # broken values, wrong brackets, strings holding brackets are answered as
    # scanning every read answers them, never earlier, never differently.
    saved = _json_lazy._FIRST_LOOK
    _json_lazy._FIRST_LOOK = first  # type: ignore[misc]
    try:
        assert_answered_as_by_scanning_every_read(data.draw(chunkings(stream, max_chunks=4)))
    finally:
        _json_lazy._FIRST_LOOK = saved  # type: ignore[misc]
