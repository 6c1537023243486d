"""The sync server's reply to the usual request is written as ``encode_result`` writes it.

``SessionCalls._plain_reply`` formats an int result with an int id itself, and
does the codec's ``dumps_line`` work in line for any other result when the codec
is JsonCodec itself writing with orjson (orjson called directly, its output then
looked at for NaN and Infinity as dumps_line looks). These tests run handlers,
plain and async, returning the values where that matters (``_written_values``:
bools, big integers, NaN and infinities, every code point, long outputs,
subclasses of int, str, float, list and dict, Enum members) under int and string
ids, and compare the reply's bytes with ``ServerConnection.encode_result``'s for
the same id and result."""

from __future__ import annotations

import math
from typing import Any

import pytest
from _driver_helpers import CODEC_IDS, CODECS
from _written_values import SUBCLASSED, WriterSubclass, ints, texts, values
from hypothesis import given, settings
from hypothesis import strategies as st

from jsonrpc_mini import RPCServer
from jsonrpc_mini._json import JsonCodec
from jsonrpc_mini._session import Session

pytestmark = pytest.mark.timeout(60)

request_ids = st.one_of(ints, texts)
CODEC_KINDS = [*CODECS, "subclass"]


def _session(kind: bool | str, box: list[Any], awaited: bool = False) -> Session:
    """A session (never started: no socket) whose method ``give`` returns ``box[0]``.

    ``awaited``: ``give`` is a coroutine function (its result is awaited first, and
    looked at afresh: a coroutine is not an int, its result may be one, or a bool).
    """
    server = RPCServer()
    server.codec = WriterSubclass() if kind == "subclass" else JsonCodec(use_orjson=bool(kind))
    if awaited:

        async def give() -> Any:
            return box[0]

        server.register_function(give)
    else:
        server.register_function(lambda: box[0], name="give")
    return Session(server, None, lambda session: None, "test")  # type: ignore[arg-type]


def _outcome(function: Any, *args: Any) -> Any:
    try:
        return function(*args)
    except Exception as exc:  # (the error is the outcome compared: an id too long to write, say)
        return type(exc), str(exc)


def _both(session: Session, result: Any, id_: Any) -> tuple[Any, Any]:
    """(``_plain_reply``'s bytes or error, ``encode_result``'s) for ``give`` returning ``result``, with ``id_``."""
    reply = _outcome(session._plain_reply, {"jsonrpc": "2.0", "method": "give", "params": [], "id": id_})
    return reply, _outcome(session._proto.encode_result, id_, result)


@pytest.mark.parametrize("kind", CODEC_KINDS, ids=[*CODEC_IDS, "subclass"])
@pytest.mark.parametrize("awaited", [False, True], ids=["plain", "async"])
@settings(max_examples=100, deadline=None)
@given(result=values, id_=request_ids)
def test_a_reply_is_written_as_encode_result_writes_it(kind: bool | str, awaited: bool, result: Any, id_: Any) -> None:
    reply, expected = _both(_session(kind, [result], awaited), result, id_)
    assert reply == expected


@pytest.mark.parametrize("kind", CODEC_KINDS, ids=[*CODEC_IDS, "subclass"])
@pytest.mark.parametrize(
    "result",
    [
        *(3, True, 2**63, 2**64, pytest.param(10**4300, id="10**4300"), math.nan, [math.inf], {"a": -math.inf}),
        "\udc80",
        *("null", None, "x" * 5000, "é\n\x00", 1.0, [1, "a"]),
        *SUBCLASSED,
        *([value, math.nan] for value in SUBCLASSED),
    ],
)
@pytest.mark.parametrize("id_", [7, 2**64, "é", "\ud800"])
@pytest.mark.parametrize("awaited", [False, True], ids=["plain", "async"])
def test_the_edge_results_are_written_as_encode_result_writes_them(
    kind: bool | str, result: Any, id_: Any, awaited: bool
) -> None:
    reply, expected = _both(_session(kind, [result], awaited), result, id_)
    assert reply == expected
