"""A float id comes back as the same value, whatever its spelling (README: Wire format).

The reply is written by our encoder (orjson or the standard library), so the id's
text is the encoder's spelling of the value (``1E2`` -> ``100.0``), never the
request's text; what a peer matches by (the number) is the same, ``-0.0`` keeping
its sign. Both servers, both codecs, the plain-call path (``add`` with two ints)
and the general one (``echo``).
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from _aio_support import aio_server_in_thread
from _driver_helpers import CODEC_IDS, CODECS, raw_connect, serving

from jsonrpc_mini import RPCServer, aio
from jsonrpc_mini._json import JsonCodec

SPELLINGS = [b"1E2", b"1e-07", b"0.10", b"-0.0", b"2.50000", b"12345678901234567890.0", b"5e-324"]


def _ask(address: Any) -> list[tuple[bytes, Any, Any]]:
    """Each spelling sent as the id of a plain call and of a general one: (spelling, id read, result)."""
    answers = []
    with raw_connect(address) as peer:
        for spelling in SPELLINGS:
            for body in (b'"method":"add","params":[1,2]', b'"method":"echo","params":["x"]'):
                peer.sendall(b'{"jsonrpc":"2.0",' + body + b',"id":' + spelling + b"}\n")
                reply = peer.json_line()
                answers.append((spelling, reply["id"], reply["result"]))
    return answers


def _check(answers: list[tuple[bytes, Any, Any]]) -> None:
    assert len(answers) == 2 * len(SPELLINGS)
    for spelling, id_, result in answers:
        sent = json.loads(spelling)
        assert type(id_) is float and id_ == sent, (spelling, id_)
        assert math.copysign(1.0, id_) == math.copysign(1.0, sent), (spelling, id_)
        assert result in (3, "x")


@pytest.mark.parametrize("use_orjson", CODECS, ids=CODEC_IDS)
def test_sync_server_echoes_a_float_id_as_the_same_value(use_orjson: bool) -> None:
    server = RPCServer()
    server.codec = JsonCodec(use_orjson=use_orjson)
    server.register_function(lambda a, b: a + b, name="add")
    server.register_function(lambda x: x, name="echo")
    with serving(server) as address:
        _check(_ask(address))


@pytest.mark.parametrize("use_orjson", CODECS, ids=CODEC_IDS)
def test_aio_server_echoes_a_float_id_as_the_same_value(use_orjson: bool) -> None:
    server = aio.RPCServer()
    server.codec = JsonCodec(use_orjson=use_orjson)
    server.register_function(lambda a, b: a + b, name="add")
    server.register_function(lambda x: x, name="echo")
    with aio_server_in_thread(server) as address:
        _check(_ask(address))
