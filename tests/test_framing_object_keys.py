"""In an object, a container must follow a ':': a line that left an object open costs only itself.

review10 r12: a line "{" (or "{{", "[{") then a newline, then good requests: the
scanner took the next line's "{" as a value inside the open object and noticed
the error only at the line after it ("missing ','"), so the first good request
got no reply and its caller waited for its timeout. Now the "{" right after "{"
(or after "," in an object) is the error, placed after the broken line's last
token, and reading resumes with the next line: every good request is answered.
"""

from __future__ import annotations

from typing import Any

import pytest

from jsonrpc_mini._frames import FrameError, Message
from jsonrpc_mini._json import JsonCodec
from jsonrpc_mini._json_stream import JsonStreamFramer

CODEC = JsonCodec(use_orjson=False)


def request(i: int) -> bytes:
    return b'{"jsonrpc":"2.0","method":"echo","params":[%d],"id":%d}\n' % (i, i)


def events(data: bytes, chunk: int) -> list[Any]:
    framer = JsonStreamFramer(CODEC.loads, max_message_size=1 << 20, max_depth=128)
    out: list[Any] = []
    for start in range(0, len(data), chunk):
        framer.feed(data[start : start + chunk])
        while (event := framer.next_event()) is not None:
            out.append(event)
    return out


BROKEN = [b"{\n", b"{{\n", b"[{\n", b'{"params":{\n', b'{"a":1,{\n', b'{"a":1,{"b":2}}\n', b"{\t[\n"]


@pytest.mark.parametrize("bad", BROKEN)
@pytest.mark.parametrize("chunk", [1, 2, 7, 1 << 20], ids=["1", "2", "7", "whole"])
def test_a_line_that_left_an_object_open_costs_only_itself(bad: bytes, chunk: int) -> None:
    got = events(bad + request(1) + request(2), chunk)
    assert len(got) == 3, got
    assert isinstance(got[0], FrameError) and got[0].code == -32700
    assert "needs a key" in got[0].message
    assert [event.value["id"] for event in got[1:] if isinstance(event, Message)] == [1, 2]


@pytest.mark.parametrize(
    "valid",
    [
        b'{"a":{"b":[{"c":{}}]},"d":[[],{}]}',
        b'[{"a":1},{"b":[{}, {"c" : [ {} ]}]}]',
        b'{"a" :\n {"b": [\n{ }\n]}}',
    ],
)
@pytest.mark.parametrize("chunk", [1, 3, 1 << 20], ids=["1", "3", "whole"])
def test_containers_after_a_colon_or_in_arrays_are_read_as_before(valid: bytes, chunk: int) -> None:
    got = events(valid + b"\n" + request(1), chunk)
    assert [type(event) for event in got] == [Message, Message]
    assert got[0].value == CODEC.loads(valid)
