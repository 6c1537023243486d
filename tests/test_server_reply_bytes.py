"""The sync server's reply to the usual request is written as ``encode_result`` writes it.

``SessionCalls._plain_reply`` formats an int result with an int id itself, and
does the codec's ``dumps_line`` work in line for any other result when the codec
is JsonCodec itself writing with orjson (orjson called directly, its output then
looked at for NaN and Infinity as dumps_line looks). These tests run handlers
returning the values where that matters (bools, integers at and past 64 bits and
past the digit limit of int-to-str conversion, NaN and infinities, nested too,
lone surrogates, control and non-ASCII characters, "null" in strings, outputs
past the small-output size) under int and string ids, and compare the reply's
bytes with ``ServerConnection.encode_result``'s for the same id and result.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from _driver_helpers import CODEC_IDS, CODECS
from hypothesis import given, settings
from hypothesis import strategies as st

from jsonrpc_mini import RPCServer
from jsonrpc_mini._json import JsonCodec
from jsonrpc_mini._session import Session

pytestmark = pytest.mark.timeout(60)

EDGE_INTS = [0, -1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, 10**30, -(10**30)]
# (Built, not listed: a strategy's repr writes its values, and these have too many digits for str().)
HUGE_INTS = st.integers(4299, 4300).map(lambda digits: 10**digits)
ints = st.one_of(st.sampled_from(EDGE_INTS), st.integers(), st.booleans(), HUGE_INTS)
texts = st.one_of(
    st.text(st.characters(blacklist_categories=()), max_size=8),  # lone surrogates included
    st.sampled_from(["null", "a\x00\x1f\x7f", "é€😀", "\ud800", "x" * 5000]),
)
floats = st.sampled_from([math.nan, math.inf, -math.inf, 1.5, -0.0])
scalars = st.one_of(ints, ints, texts, texts, floats, st.none())
results = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=2))
request_ids = st.one_of(ints, texts)


class _Subclass(JsonCodec):
    """Writes every non-ASCII character as an escape: a reply must not be written as JsonCodec does."""

    __slots__ = ()

    def dumps_line(self, value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode() + b"\n"


CODEC_KINDS = [*CODECS, "subclass"]


def _session(kind: bool | str, box: list[Any]) -> Session:
    """A session (never started: no socket) whose method ``give`` returns ``box[0]``."""
    server = RPCServer()
    server.codec = _Subclass() if kind == "subclass" else JsonCodec(use_orjson=bool(kind))
    server.register_function(lambda: box[0], name="give")
    return Session(server, None, lambda session: None, "test")  # type: ignore[arg-type]


def _outcome(function: Any, *args: Any) -> Any:
    try:
        return function(*args)
    except Exception as exc:  # (the error is the outcome compared: an id too long to write, say)
        return type(exc), str(exc)


def _both(session: Session, id_: Any) -> tuple[Any, Any]:
    """(``_plain_reply``'s bytes or error, ``encode_result``'s) for a call of ``give`` with ``id_``."""
    result = session.server.plain_handlers["give"][0]()
    reply = _outcome(session._plain_reply, {"jsonrpc": "2.0", "method": "give", "params": [], "id": id_})
    return reply, _outcome(session._proto.encode_result, id_, result)


@pytest.mark.parametrize("kind", CODEC_KINDS, ids=[*CODEC_IDS, "subclass"])
@settings(max_examples=150, deadline=None)
@given(result=results, id_=request_ids)
def test_a_reply_is_written_as_encode_result_writes_it(kind: bool | str, result: Any, id_: Any) -> None:
    box = [result]
    reply, expected = _both(_session(kind, box), id_)
    assert reply == expected


@pytest.mark.parametrize("kind", CODEC_KINDS, ids=[*CODEC_IDS, "subclass"])
@pytest.mark.parametrize(
    "result",
    [
        *(3, True, 2**63, 2**64, pytest.param(10**4300, id="10**4300"), math.nan, [math.inf], {"a": -math.inf}),
        "\udc80",
        *("null", None, "x" * 5000, "é\n\x00", 1.0, [1, "a"]),
    ],
)
@pytest.mark.parametrize("id_", [7, 2**64, "é", "\ud800"])
def test_the_edge_results_are_written_as_encode_result_writes_them(kind: bool | str, result: Any, id_: Any) -> None:
    reply, expected = _both(_session(kind, [result]), id_)
    assert reply == expected
