"""The sync client's request is written as the general path (``encode_request``) writes it.

``_Link.request`` does ``encode_request``'s work in line (its request object, then
the codec's ``dumps_line``), and ``dumps_line``'s own when the codec is JsonCodec
itself writing with orjson (orjson called directly, its output then looked at for
NaN and Infinity as dumps_line looks). These tests send requests through a link on
a transport that keeps what it is given, and compare the bytes (or the error) with
``ClientConnection.encode_request``'s for the same call, with and without params,
over the values where orjson and the checks matter (``_written_values``: bools,
big integers, NaN and infinities, every code point, long outputs, subclasses of
int, str, float, list and dict, Enum members)."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import pytest
from _driver_helpers import CODEC_IDS, CODECS
from _written_values import SUBCLASSED, WriterSubclass, ints, texts, values
from hypothesis import given, settings
from hypothesis import strategies as st

from jsonrpc_mini._client_link import _Link
from jsonrpc_mini._client_protocol import ClientConnection
from jsonrpc_mini._json import JsonCodec

pytestmark = pytest.mark.timeout(60)

params = st.one_of(
    st.lists(st.one_of(ints, texts), max_size=5),  # the usual arguments
    st.lists(values, max_size=4),
    st.dictionaries(texts, values, max_size=3),
    st.none(),  # no arguments: no "params" member
)
methods = st.one_of(st.just("add"), texts)
request_ids = st.one_of(st.integers(1, 99), st.sampled_from([2**63 - 1, 2**63, 2**64, 10**25]))


class _Keeper:
    """A transport that keeps what is sent and answers every request with result 0."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def send_within(self, data: bytes, timeout: float) -> None:
        self.send(data)

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        id_ = json.loads(self.sent[-1])["id"]
        return json.dumps({"jsonrpc": "2.0", "id": id_, "result": 0}).encode() + b"\n"

    def close(self) -> None:
        pass


def _outcome(function: Any, *args: Any) -> Any:
    try:
        return function(*args)
    except Exception as exc:  # (the error is the outcome compared)
        return type(exc), str(exc)


def _sent(codec: JsonCodec, method: Any, params: Any, id_: int) -> Any:
    """What one request through a link writes: its bytes, or the error raised instead."""
    transport = _Keeper()
    link = _Link(transport, ClientConnection(codec=codec))  # type: ignore[arg-type]
    link.proto.ids = itertools.count(id_)
    outcome = _outcome(link.request, method, params, None)
    if transport.sent:
        assert outcome == 0
        return transport.sent[0]
    return outcome


CODEC_KINDS = [*CODECS, "subclass"]


def _codec(kind: bool | str) -> JsonCodec:
    return WriterSubclass() if kind == "subclass" else JsonCodec(use_orjson=bool(kind))


@pytest.mark.parametrize("kind", CODEC_KINDS, ids=[*CODEC_IDS, "subclass"])
@settings(max_examples=150, deadline=None)
@given(method=methods, params=params, id_=request_ids)
def test_a_request_is_written_as_encode_request_writes_it(kind: bool | str, method: Any, params: Any, id_: int) -> None:
    codec = _codec(kind)
    expected = _outcome(ClientConnection(codec=codec).encode_request, method, params, id_)
    assert _sent(codec, method, params, id_) == expected


@pytest.mark.parametrize("kind", CODEC_KINDS, ids=[*CODEC_IDS, "subclass"])
@pytest.mark.parametrize(
    "params",
    [
        *([1, 2], [True, False], [2**63], [2**64], [10**4300], [math.nan], [[math.inf]], [{"a": -math.inf}]),
        *(["\udc80"], ["null"], [None], ["x" * 5000], ["é\n\x00"], [1.0], None, [], {}),
        *([value] for value in SUBCLASSED),
        *([value, math.nan] for value in SUBCLASSED),
    ],
)
def test_the_edge_values_are_written_as_encode_request_writes_them(kind: bool | str, params: Any) -> None:
    codec = _codec(kind)
    expected = _outcome(ClientConnection(codec=codec).encode_request, "m", params, 1)
    assert _sent(codec, "m", params, 1) == expected
