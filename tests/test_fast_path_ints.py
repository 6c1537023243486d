"""The fast paths that look at orjson's value give the general path's events, types included.

``ServerConnection.receive_plain_call`` and ``ClientConnection.decode_line`` read
the usual line with ``JsonCodec.unchecked_loads``. Their risk is an integer past
64 bits that orjson reads as a float (1e20 where the general path gives 10**20),
or one past the codec's digit limit, perhaps hidden by a repeated key. The lines
here are built by hand in the usual shapes and sent after a warm-up line, so the
fast path is reached (the framer is between values); results are compared by
``repr`` (``1e20 == 10**20`` and ``True == 1`` would hide a difference).
"""

from __future__ import annotations

from typing import Any

import pytest
from _driver_helpers import CODECS
from hypothesis import given, settings
from hypothesis import strategies as st
from test_protocol import drain
from test_protocol_fast import client_general, general, typed

from jsonrpc_mini._client_protocol import ClientConnection
from jsonrpc_mini._codec import parse_request
from jsonrpc_mini._json import JsonCodec
from jsonrpc_mini._protocol import Batch, Call, ServerConnection

# Codec digit limits: the default, just at and below the gate (309), and small ones
# (the default and 309 let the fast paths look at orjson's value, 5 catches a gate that
# does not look at the limit: these come up more often).
LIMITS = [4300, 4300, 309, 309, 308, 20, 19, 5, 5, 5]
EDGE_INTS = [
    str(n) for n in (2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, 10**19, -(10**19), 10**20, 10**25)
] + ["9" * 19, "9" * 20, "-0", "12345", "123456", *("1" * n for n in (5, 6, 19, 20, 21, 308, 309, 310, 4300, 4301))]
ints = st.one_of(st.sampled_from(EDGE_INTS), st.integers(-(2**70), 2**70).map(str), st.integers(0, 99).map(str))
scalars = st.one_of(ints, st.sampled_from(['"s"', '""', "1.5", "1e2", "true", "null", "[1]", "{}"]))
# Mostly the usual member, so that the whole line has the usual shape often enough.
jsonrpc = st.sampled_from(['"2.0"'] * 7 + ['"1.0"', "2.0", "null"])
method = st.sampled_from(['"m"'] * 7 + ["5", "null", '["m"]'])
ids = st.one_of(ints, ints, ints, scalars)


@st.composite
def members(draw: st.DrawFn, shape: dict[str, st.SearchStrategy[str]]) -> str:
    """An object in ``shape``'s members, maybe one dropped, one extra, one repeated (hiding a value)."""
    pairs = [(f'"{key}"', draw(values)) for key, values in shape.items()]
    if draw(st.integers(0, 19)) == 0:
        del pairs[draw(st.integers(0, len(pairs) - 1))]
    if pairs and draw(st.booleans()):  # a repeated key: the first value is hidden by the last
        at = draw(st.integers(0, len(pairs) - 1))
        pairs.insert(at, (pairs[at][0], draw(ints)))
    if draw(st.integers(0, 3)) == 0:  # an extra member, ignored by the general path, but in the value
        pairs.insert(draw(st.integers(0, len(pairs))), ('"x"', draw(st.one_of(ints, scalars))))
    if draw(st.integers(0, 4)) == 0:
        pairs = draw(st.permutations(pairs))
    return "{" + ",".join(f"{key}:{value}" for key, value in pairs) + "}"


params = st.one_of(
    st.lists(ints, max_size=4).map(lambda items: "[" + ",".join(items) + "]"),
    st.lists(st.one_of(ints, ints, scalars), max_size=6).map(lambda items: "[" + ",".join(items) + "]"),
    st.sampled_from(['{"a":1}', "null", "1"]),
)
request_lines = members({"jsonrpc": jsonrpc, "method": method, "params": params, "id": ids})
reply_lines = members({"jsonrpc": jsonrpc, "id": ids, "result": st.one_of(ints, scalars, params)})

WARM_REQUEST = b'{"jsonrpc":"2.0","method":"w","params":[0],"id":0}\n'
WARM_REPLY = b'{"jsonrpc":"2.0","id":0,"result":0}\n'


def codec(use_orjson: bool, digits: int) -> JsonCodec:
    return JsonCodec(use_orjson=use_orjson, max_int_digits=digits)


@pytest.mark.parametrize("use_orjson", CODECS)
@settings(max_examples=400, deadline=None)
@given(text=request_lines, digits=st.sampled_from(LIMITS), batches=st.booleans())
def test_plain_call_after_a_warm_up_gives_the_general_events(
    use_orjson: bool, text: str, digits: int, batches: bool
) -> None:
    data = text.encode() + b"\n"
    conn = ServerConnection(framing="newline", codec=codec(use_orjson, digits))
    assert conn.receive_plain_call(WARM_REQUEST, len(WARM_REQUEST) - 1, batches) is not None  # (between values)
    taken = conn.receive_plain_call(data, data.find(b"\n"), batches)
    events: list[Any] = []
    if isinstance(taken, dict):
        # The object itself is what the stdlib reads from the line, types included.
        assert repr(taken) == repr(codec(False, digits).loads(data))
        taken = parse_request(taken)
    if isinstance(taken, Batch):
        events.append(taken)
    elif taken is not None:
        events.append(Call(taken))
    events += drain(conn)
    assert typed(events) == typed(general([WARM_REQUEST, data], codec(False, digits), framing="newline"))[1:]


@pytest.mark.parametrize("use_orjson", CODECS)
@settings(max_examples=400, deadline=None)
@given(text=reply_lines, digits=st.sampled_from(LIMITS))
def test_decode_line_after_a_warm_up_gives_the_general_events(use_orjson: bool, text: str, digits: int) -> None:
    data = text.encode() + b"\n"
    conn = ClientConnection(codec=codec(use_orjson, digits))
    assert conn.decode_line(WARM_REPLY) is not None  # (taken whole: between values)
    value = conn.decode_line(data)
    if value is None:
        conn.receive_data(data)
        events = drain(conn)
    else:
        # The value is what the stdlib reads from the line, types included.
        assert repr(value) == repr(codec(False, digits).loads(data))
        events = [conn.parse_reply(value)]
        assert drain(conn) == []
    assert typed(events) == typed(client_general([WARM_REPLY, data], codec(False, digits)))[1:]
