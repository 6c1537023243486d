"""A client's positional arguments go to the link as their tuple (CallParams), written as a list's array.

``RPCClient.call`` and ``client.name(...)`` (a KeptMethod, the aio client's too)
hand the arguments' tuple on instead of making a list per call; the bytes written
(or the error raised instead) must be the ones ``encode_request`` writes for the
list, in both framings and with both codecs, and a call without arguments has no
``params``.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import pytest
from _aio_support import Writes, run
from _driver_helpers import CODEC_IDS, CODECS

import jsonrpc_mini._json as json_module
from jsonrpc_mini import RPCClient, aio
from jsonrpc_mini._aio_link import Link
from jsonrpc_mini._client_protocol import ClientConnection

pytestmark = pytest.mark.timeout(60)


class _Keeper:
    """A transport that keeps what is sent and answers every request with result 0."""

    def __init__(self, framing: str) -> None:
        self.framing = framing
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        reply = json.dumps({"jsonrpc": "2.0", "id": _id(self.sent[-1]), "result": 0}).encode()
        if self.framing == "newline":
            return reply + b"\n"
        return b"Content-Length: %d\r\n\r\n" % len(reply) + reply

    def close(self) -> None:
        pass


def _id(data: bytes) -> int:
    return int(json.loads(data.split(b"\r\n\r\n")[-1])["id"])


ARGS = [(), (1, 2), ("x", [1, (2, 3)], {"a": None}), (math.nan,), (1.5, [math.inf]), (2**64,), ("\udc80",), (object(),)]


@pytest.mark.parametrize("use_orjson", CODECS, ids=CODEC_IDS)
@pytest.mark.parametrize("framing", ["newline", "content-length"])
@pytest.mark.parametrize("how", ["call", "attribute"])
@pytest.mark.parametrize("args", ARGS, ids=range(len(ARGS)))
def test_positional_arguments_are_written_as_their_list(
    monkeypatch: pytest.MonkeyPatch, use_orjson: bool, framing: Any, how: str, args: tuple[Any, ...]
) -> None:
    monkeypatch.setattr(json_module, "HAVE_ORJSON", use_orjson)
    transport = _Keeper(framing)
    c = RPCClient(transport=transport, framing=framing)
    link = c._link
    assert link is not None and (link.proto.codec.orjson_dumps is not None) == use_orjson
    try:
        outcome: Any = c.call("m", *args) if how == "call" else c.m(*args)
    except Exception as exc:  # (the error is the outcome compared)
        outcome = type(exc), str(exc)
    proto = ClientConnection(framing=framing)
    params = list(args) if args else None
    if transport.sent:
        assert outcome == 0
        (data,) = transport.sent
        assert data == proto.encode_request("m", params, _id(data))
        assert (b'"params"' in data) == bool(args)
    else:
        with pytest.raises(outcome[0]) as expected:
            proto.encode_request("m", params, 1)
        assert str(expected.value) == outcome[1]


@pytest.mark.parametrize("use_orjson", CODECS, ids=CODEC_IDS)
@pytest.mark.parametrize("framing", ["newline", "content-length"])
@pytest.mark.parametrize("how", ["call", "attribute"])
@pytest.mark.parametrize("args", ARGS, ids=range(len(ARGS)))
def test_aio_positional_arguments_are_written_as_their_list(
    monkeypatch: pytest.MonkeyPatch, use_orjson: bool, framing: Any, how: str, args: tuple[Any, ...]
) -> None:
    monkeypatch.setattr(json_module, "HAVE_ORJSON", use_orjson)

    async def main() -> None:
        transport = Writes()
        link = Link(ClientConnection(framing=framing))
        link.connection_made(transport)
        assert (link.proto.codec.orjson_dumps is not None) == use_orjson
        client = aio.RPCClient(link)
        outcome: Any = None
        try:
            call = client.call("m", *args) if how == "call" else client.m(*args)
        except Exception as exc:  # (the error is the outcome compared)
            outcome = type(exc), str(exc)
        await asyncio.sleep(0)
        proto = ClientConnection(framing=framing)
        params = list(args) if args else None
        if outcome is None:
            link.fail_all("test over")
            assert isinstance(call.exception(), Exception)  # (retrieved: nobody awaits it)
            assert transport.data == proto.encode_request("m", params, _id(transport.data))
            assert (b'"params"' in transport.data) == bool(args)
        else:
            assert transport.data == b""
            with pytest.raises(outcome[0]) as expected:
                proto.encode_request("m", params, 1)
            assert str(expected.value) == outcome[1]

    run(main)
