"""A lone call's own reply, told by what decode_line found (ClientConnection.plain_reply).

decode_line marks the usual success reply it has tested (exactly "jsonrpc": "2.0", an
int or string id and result) and the lone call (``_Link._alone``) then looks only at
its id: these tests pin that a marked reply of another call, and every reply that is
not marked, go on as before.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from jsonrpc_mini import RPCClient, RPCError
from jsonrpc_mini._client_protocol import ClientConnection
from jsonrpc_mini._json import HAVE_ORJSON, JsonCodec

pytestmark = pytest.mark.timeout(60)


def _line(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode() + b"\n"


class _Scripted:
    """A transport whose reads give, for the last request sent, what ``script`` makes of its id."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.last_id: Any = None

    def send(self, data: bytes) -> None:
        self.last_id = json.loads(data)["id"]

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        return self.script.pop(0)(self.last_id) if self.script else b""

    def close(self) -> None:
        self.script = []


def _own(result: Any) -> Any:
    return lambda id_: _line({"jsonrpc": "2.0", "id": id_, "result": result})


def test_a_plain_reply_of_another_call_is_not_taken_for_its_own() -> None:
    # A late reply (of a call no longer waiting) comes first: dropped; the call's own follows.
    late = lambda id_: _line({"jsonrpc": "2.0", "id": id_ + 100, "result": "late"})  # noqa: E731
    with RPCClient(transport=_Scripted(_own(1), late, _own("own"))) as client:
        assert client.call("m") == 1
        assert client.call("m") == "own"


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [
        (lambda id_: _line({"jsonrpc": "2.0", "id": id_, "result": 1.5}), 1.5),
        (lambda id_: _line({"jsonrpc": "2.0", "id": id_, "result": [1]}), [1]),
        (lambda id_: _line({"jsonrpc": "2.0", "id": id_, "result": None}), None),
        (lambda id_: _line({"jsonrpc": "2.0", "id": id_, "error": {"code": 1, "message": "no"}}), RPCError),
        (lambda id_: _line({"jsonrpc": "1.0", "id": id_, "result": 1}), RPCError),
        (lambda id_: _line({"jsonrpc": "2.0", "id": str(id_), "result": 1}), RPCError),
        (lambda id_: _line({"jsonrpc": "2.0", "id": id_, "result": 1, "x": 2}), 1),
    ],
)
def test_replies_not_marked_read_as_before(reply: Any, outcome: Any) -> None:
    with RPCClient(transport=_Scripted(_own(1), reply)) as client:
        assert client.call("m") == 1
        if outcome is RPCError:
            with pytest.raises(RPCError):
                client.call("m")
        else:
            assert client.call("m") == outcome


@pytest.mark.skipif(not HAVE_ORJSON, reason="orjson is not installed")
@pytest.mark.parametrize(
    ("reply", "marked"),
    [
        ({"jsonrpc": "2.0", "id": 2, "result": 3}, True),
        ({"jsonrpc": "2.0", "id": "x", "result": "y"}, True),
        ({"jsonrpc": "2.0", "id": 2, "result": 1.5}, False),
        ({"jsonrpc": "2.0", "id": 2, "result": None}, False),
        ({"jsonrpc": "2.0", "id": None, "result": 3}, False),
        ({"jsonrpc": "2.0", "id": 2, "result": 3, "x": 1}, False),
        ({"jsonrpc": "1.0", "id": 2, "result": 3}, False),
        ({"jsonrpc": "2.0", "id": 2, "error": 3}, False),
        ({"jsonrpc": "2.0", "id": 2, "result": 10**20}, False),  # (orjson reads a float)
    ],
)
def test_decode_line_marks_only_a_plain_success_reply(reply: dict[str, Any], marked: bool) -> None:
    conn = ClientConnection(codec=JsonCodec(use_orjson=True))
    assert conn.decode_line(_line({"jsonrpc": "2.0", "id": 1, "result": 1})) is not None  # (between values now)
    value = conn.decode_line(_line(reply))
    assert repr(value) == repr(reply)
    assert (conn.plain_reply is value) is marked


def test_nothing_is_marked_without_orjson() -> None:
    conn = ClientConnection(codec=JsonCodec(use_orjson=False))
    for _ in range(2):
        assert conn.decode_line(_line({"jsonrpc": "2.0", "id": 1, "result": 1})) is not None
    assert conn.plain_reply is None
