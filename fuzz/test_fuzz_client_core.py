"""The sans-IO client core reads any reply stream the same way however it is split.

fuzz/test_fuzz_framing.py proves this of the framers' events, but a FrameError's
``opened`` flag is not part of their equality; the client turns it into a
Violation's ``unreadable`` and ``id``, which decide whether a pending call fails.
Here the client's own events are compared, every field that decides a call's fate.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from jsonrpc_mini._client_protocol import ClientConnection
from jsonrpc_mini._codec import Request
from jsonrpc_mini._events import Closed, Violation
from jsonrpc_mini.testing import strategies as rst

from ._budget import scaled

PENDING = 4  # ids 1..4 are pending calls


def reply(draw: st.DrawFn) -> bytes:
    """One message a server might write: a reply, an error, junk, a log line..."""
    id_ = draw(st.sampled_from([1, 2, 3, 4, 99, "x", None]))
    kind = draw(
        st.sampled_from(["result", "error", "nan", "log", "malformed", "scalar", "array", "notification", "blank"])
    )
    if kind == "result":
        # (Large values: long strings take the framer's long-string and catch-up paths.)
        value = draw(st.one_of(rst.json_values(max_leaves=4), rst.large_values(max_bytes=3000)))
        body = json.dumps({"jsonrpc": "2.0", "id": id_, "result": value}, ensure_ascii=draw(st.booleans()))
    elif kind == "error":
        body = json.dumps({"jsonrpc": "2.0", "id": id_, "error": {"code": -32000, "message": "no"}})
    elif kind == "nan":
        body = '{"jsonrpc": "2.0", "id": ' + json.dumps(id_) + ', "result": NaN}'
    elif kind == "log":
        body = draw(st.sampled_from(["server says hello", "hello", "x=1", "-", "+", "*** ok"]))
    elif kind == "malformed":
        return draw(rst.malformed_lines())
    elif kind == "scalar":
        body = json.dumps(draw(rst.json_scalars()))
    elif kind == "array":
        members = draw(st.lists(st.sampled_from([1, 2, 3, 4, 99]), max_size=3))
        body = json.dumps([{"jsonrpc": "2.0", "id": m, "result": m} for m in members])
    elif kind == "notification":
        body = json.dumps({"jsonrpc": "2.0", "method": "log", "params": [1]})
    else:
        body = ""
    style = draw(st.sampled_from(["line", "pretty", "bare"]))
    if style == "pretty" and kind in ("result", "error", "array"):
        body = json.dumps(json.loads(body), indent=1)
    elif style == "bare" and kind in ("result", "error", "array", "notification"):
        return body.encode()
    return body.encode() + b"\n"


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    return b"".join(reply(draw) for _ in range(draw(st.integers(1, 8))))


def events(chunks: list[bytes], framing: str) -> list[Any]:
    client = ClientConnection(framing=framing)  # type: ignore[arg-type]
    for number in range(PENDING):
        client.encode(Request("echo", [number], client.next_id()))
    out: list[Any] = []
    for chunk in [*chunks, b""]:
        client.receive_data(chunk)
        while (event := client.next_event()) is not None:
            if isinstance(event, Violation):  # (at_eof is not part of its equality)
                out.append(("violation", event.reason, event.error, event.id, event.unreadable, event.at_eof))
            else:
                out.append(event)
            if isinstance(event, Closed):
                return out
    return out


def content_length(stream: bytes) -> bytes:
    return b"".join(b"Content-Length: %d\r\n\r\n%s" % (len(line), line) for line in stream.split(b"\n") if line)


# Invariant: the client core gives the same events, every field that decides a pending
# call's fate included (a Violation's id, unreadable text, error), whatever the chunking.
@scaled(1.0)
@given(stream=streams(), framing=st.sampled_from(["newline", "content-length"]), data=st.data())
def test_client_core_events_do_not_depend_on_the_chunking(stream, framing, data):
    wire = stream if framing == "newline" else content_length(stream)
    whole = events([wire], framing)
    chunks = data.draw(rst.chunkings(wire), label="chunks")
    assert events(chunks, framing) == whole
