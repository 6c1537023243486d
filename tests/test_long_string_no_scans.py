"""A message made of one long string is not scanned whole by the safety checks.

The digit-run check (``JsonCodec._no_long_run``, ``_risky``), the ``null`` search
behind the NaN/Infinity refusal (``_has_null``) and the depth proof by bracket
counting (``surely_within``) each cost 0.3-15 ms per MiB when they look at every
byte, more than orjson's own decoding of a long string (~0.2-0.4 ms per MiB). For a
large text of few elements they are settled by looking at the decoded value instead
(``_WALK_FROM``), which is what keeps echoing a 1 MiB string near the codec's cost
(issue #8, benchmarks ``echo_mib``). These tests hold every step of such a round
trip, as the drivers run it (reads arriving in parts, a request and a reply line,
both codecs), to that: no check sees more than a read's worth of the message, and
the values are still read exactly. The limits themselves are held by
tests/test_json.py (large texts keep the digit limit, refuse NaN) and
tests/test_depth_bound.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from jsonrpc_mini import _frames, _json, _json_lazy, _json_write
from jsonrpc_mini._client_protocol import ClientConnection
from jsonrpc_mini._json import JsonCodec
from jsonrpc_mini._protocol import Call, ServerConnection

MIB = 1 << 20
READ = 64 * 1024
# Strings that would set each whole-text check off if it ran: runs of 20 digits
# (past orjson's 64-bit integers), the word null, and the benchmark's own text.
STRINGS = {
    "digits-and-null": ("12345678901234567890 null " * (MIB // 26 + 1))[:MIB],
    "echo_mib": ("0123456789abcdefghijklmnopqrstuvwxyz" * 29128)[:MIB],
}
BOTH = pytest.mark.parametrize("use_orjson", [False, True], ids=["stdlib", "orjson"])
TEXTS = pytest.mark.parametrize("text", list(STRINGS.values()), ids=list(STRINGS))


@pytest.fixture
def largest_scan(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """The largest text each whole-text check was given while the test ran, by name."""
    seen: dict[str, int] = {}

    def spy(name: str, check: Callable[..., Any], arg: int) -> Callable[..., Any]:
        def counting(*args: Any) -> Any:
            seen[name] = max(seen.get(name, 0), len(args[arg]))
            return check(*args)

        return counting

    if _json.HAVE_ORJSON:
        monkeypatch.setattr(JsonCodec, "_no_long_run", spy("_no_long_run", JsonCodec._no_long_run, 1))
    monkeypatch.setattr(JsonCodec, "_risky", spy("_risky", JsonCodec._risky, 1))
    monkeypatch.setattr(_frames, "surely_within", spy("surely_within", _frames.surely_within, 0))
    monkeypatch.setattr(_json_write, "_has_null", spy("_has_null", _json_write._has_null, 0))
    monkeypatch.setattr(_json_lazy, "unclosed", spy("unclosed", _frames.unclosed, 0))  # (the name it calls)
    yield seen


def assert_no_whole_scan(seen: dict[str, int]) -> None:
    # ``unclosed`` may look at the first read, before the framer knows it is in a
    # long string; nothing may look at (nearly) the whole message.
    assert {name: size for name, size in seen.items() if size > 2 * READ} == {}


def in_reads(data: bytes) -> list[bytes]:
    return [data[i : i + READ] for i in range(0, len(data), READ)]


@BOTH
@TEXTS
def test_a_request_holding_a_long_string_is_written_and_read_without_whole_scans(
    use_orjson: bool, text: str, largest_scan: dict[str, int]
) -> None:
    codec = JsonCodec(use_orjson=use_orjson)
    request = {"jsonrpc": "2.0", "method": "echo", "params": [text], "id": 7}
    line = codec.dumps_line(request)
    assert json.loads(line) == request
    # In one read (as a whole request line, the core may hand it to the framer) ...
    whole = ServerConnection(codec=codec)
    taken = whole.receive_plain_call(line, line.find(b"\n"), True)
    if taken is None:
        event = whole.next_event()
        assert isinstance(event, Call)
        taken = event.message
    assert taken == request or getattr(taken, "params", None) == [text]
    # ... and in many, each read handed over as the sync server does.
    server = ServerConnection(codec=codec)
    reads = in_reads(line)
    assert server.receive_plain_call(reads[0], reads[0].find(b"\n"), True) is None
    events = [server.next_event()]
    for data in reads[1:]:
        server.receive_data(data)
        events.append(server.next_event())
    assert events[:-1] == [None] * (len(reads) - 1)
    assert isinstance(events[-1], Call) and events[-1].message.params == [text]
    assert_no_whole_scan(largest_scan)


@BOTH
@TEXTS
def test_a_reply_holding_a_long_string_is_written_and_read_without_whole_scans(
    use_orjson: bool, text: str, largest_scan: dict[str, int]
) -> None:
    codec = JsonCodec(use_orjson=use_orjson)
    reply = {"jsonrpc": "2.0", "id": 7, "result": text}
    line = codec.dumps_line(reply)
    assert json.loads(line) == reply
    assert ClientConnection(codec=codec).decode_line(line) == reply
    client = ClientConnection(codec=codec)
    results = []
    for data in in_reads(line):
        client.receive_data(data)
        results.append(client.next_reply())
    assert results[:-1] == [None] * (len(results) - 1)
    assert getattr(results[-1], "result", None) == text
    assert_no_whole_scan(largest_scan)


def test_the_spies_see_a_whole_scan(largest_scan: dict[str, int]) -> None:
    """The fixture does catch a check that looks at the whole text (a text of many elements)."""
    numbers = list(range(200_000))
    codec = JsonCodec()
    assert codec.loads(codec.dumps_line(numbers)) == numbers
    assert max(largest_scan.values()) > 2 * READ
