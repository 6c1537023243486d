"""ClientConnection.decode_line's usual case (a short object line, the framer between values).

decode_line decodes such a line itself, without _single_line; every other line takes
_single_line's way and reads as before: these tests pin both sides of each test it makes.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from _driver_helpers import CODECS
from test_protocol import drain

from jsonrpc_mini._client_protocol import ClientConnection
from jsonrpc_mini._json import HAVE_ORJSON, JsonCodec
from jsonrpc_mini._protocol import Violation

REPLY_1 = b'{"jsonrpc":"2.0","id":1,"result":1}\n'
REPLY_2 = b'{"jsonrpc":"2.0","id":2,"result":2}\n'
VALUE_2 = {"jsonrpc": "2.0", "id": 2, "result": 2}


def _between(use_orjson: bool, **options: Any) -> ClientConnection:
    """A connection whose framer is known to be between values (a line was taken in one step)."""
    conn = ClientConnection(codec=JsonCodec(use_orjson=use_orjson), **options)
    assert conn.decode_line(REPLY_1) == {"jsonrpc": "2.0", "id": 1, "result": 1}
    return conn


def _count_single_line(conn: ClientConnection) -> list[bytes]:
    """The lines decode_line hands to _single_line from now on."""
    seen: list[bytes] = []
    single_line = conn._single_line

    def counted(data: bytes, arrays: bool = False, newline: int | None = None) -> Any:
        seen.append(data)
        return single_line(data, arrays, newline)

    conn._single_line = counted  # type: ignore[method-assign]
    return seen


@pytest.mark.parametrize("use_orjson", CODECS)
def test_a_usual_reply_line_is_decoded_without_single_line(use_orjson: bool) -> None:
    conn = _between(use_orjson)
    seen = _count_single_line(conn)
    assert conn.decode_line(REPLY_2) == VALUE_2
    assert seen == []
    assert drain(conn) == []  # nothing consumed


@pytest.mark.parametrize("use_orjson", CODECS)
def test_the_first_line_asks_the_framer(use_orjson: bool) -> None:
    # Not known to be between values yet: _single_line asks the framer (then remembers).
    conn = ClientConnection(codec=JsonCodec(use_orjson=use_orjson))
    seen = _count_single_line(conn)
    assert conn.decode_line(REPLY_2) == VALUE_2
    assert seen == [REPLY_2]


@pytest.mark.parametrize("use_orjson", CODECS)
def test_a_line_after_bytes_fed_is_the_framers(use_orjson: bool) -> None:
    conn = _between(use_orjson)
    conn.receive_data(b'{"jsonrpc":"2.0","id":3,"result":"abc')
    assert drain(conn) == []
    assert conn.decode_line(REPLY_2) is None  # the rest of the cut reply, not reply 2


@pytest.mark.parametrize("use_orjson", CODECS)
def test_a_line_over_the_depth_bound_is_not_taken(use_orjson: bool) -> None:
    # max_depth 2: a line longer than 5 bytes could be too deep, so _single_line checks it.
    conn = _between(use_orjson, max_depth=2)
    deep = b'{"jsonrpc":"2.0","id":2,"result":[[1]]}\n'
    seen = _count_single_line(conn)
    assert conn.decode_line(deep) is None
    assert seen == [deep]


@pytest.mark.parametrize("use_orjson", CODECS)
@pytest.mark.parametrize(
    "line",
    [
        b'[{"jsonrpc":"2.0","id":2,"result":2}]\n',  # an array: decode_line takes objects only
        b'{"jsonrpc":"2.0",\n"id":2,"result":2}\n',  # an object over two lines
        b'{"jsonrpc":"2.0","id":2,"result":2}',  # no newline yet
        b'{"jsonrpc":"2.0","id":2,"result":2}\n\n',  # an empty line after it
    ],
)
def test_a_line_that_is_not_one_object_line_is_not_taken(use_orjson: bool, line: bytes) -> None:
    conn = _between(use_orjson)
    assert conn.decode_line(line) is None


@pytest.mark.parametrize("use_orjson", CODECS)
def test_a_short_line_that_does_not_decode_is_left_to_the_framer(use_orjson: bool) -> None:
    conn = _between(use_orjson)
    bad = b'{"jsonrpc":"2.0","id":2,"result":}\n'
    told: list[int] = []
    framer: Any = conn._framer
    tried_next_line = framer.tried_next_line
    framer.tried_next_line = lambda newline: told.append(newline) or tried_next_line(newline)
    assert conn.decode_line(bad) is None
    assert told == [len(bad) - 1]  # (through _single_line: the framer does not decode it again)
    conn.receive_data(bad)
    events = drain(conn)
    assert len(events) == 1 and isinstance(events[0], Violation), events


# -- with orjson: the value looked at instead of the codec's digit-run check -----------

BIG = 10**20  # past 64 bits: orjson reads it as a float
BELOW_I64 = -(2**63) - 1


def _line(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode() + b"\n"


def _reply(result: Any = 1, id_: Any = 2, **extra: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "result": result} | extra


REPLIES = [
    _line(_reply()),
    _line(_reply("12345678901234567890123", "x")),  # a digit run in strings only
    _line(_reply(BIG)),
    _line(_reply(BELOW_I64)),
    _line(_reply(1, BIG)),
    _line(_reply(1, 2, extra=BIG)),  # a member the client ignores
    _line({"jsonrpc": BIG, "id": 2, "result": 1}),
    _line(_reply([[BIG]])),
    _line(_reply({"a": BIG})),
    _line(_reply(1.5)),
    _line(_reply(1e20)),
    _line(_reply(True)),
    _line(_reply(None)),
    _line({"jsonrpc": "2.0", "id": 2, "error": {"code": -32000, "message": "m", "data": BIG}}),
    b'{"jsonrpc":"2.0","id":2,"result":"\\ud800"}\n',  # orjson refuses a lone surrogate
]


@pytest.mark.parametrize("use_orjson", CODECS)
@pytest.mark.parametrize("line", REPLIES)
def test_a_reply_line_reads_as_the_standard_library_reads_it(use_orjson: bool, line: bytes) -> None:
    # repr: 1e20 == 10**20, but a float where an integer was sent is a wrong value.
    conn = _between(use_orjson)
    assert repr(conn.decode_line(line)) == repr(json.loads(line))
    assert drain(conn) == []


@pytest.mark.skipif(not HAVE_ORJSON, reason="orjson is not installed")
@pytest.mark.parametrize(
    ("reply", "checks", "single_line"),
    [
        (_reply(3, 2), 0, 0),  # the usual reply: orjson's value as it is
        (_reply("x", "y"), 0, 0),
        (_reply(1.5), 1, 0),  # a float: the text checked, the same value kept
        (_reply(True), 1, 0),
        (_reply(1, 2, extra=3), 1, 0),
        ({"jsonrpc": "1.0", "id": 2, "result": 1}, 1, 0),
        (_reply(BIG), 1, 1),  # a long digit run: the codec's way
    ],
)
def test_which_check_a_reply_line_takes(
    reply: dict[str, Any], checks: int, single_line: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = ClientConnection(codec=JsonCodec(use_orjson=True))
    assert conn.codec.unchecked_loads is not None
    assert conn.decode_line(REPLY_1) is not None
    counted: list[bytes] = []
    exact = JsonCodec.orjson_exact

    def orjson_exact(self: JsonCodec, data: bytes) -> bool:  # (a subclass would get no unchecked_loads)
        counted.append(data)
        return exact(self, data)

    monkeypatch.setattr(JsonCodec, "orjson_exact", orjson_exact)
    seen = _count_single_line(conn)
    assert repr(conn.decode_line(_line(reply))) == repr(reply)
    assert (len(counted), len(seen)) == (checks, single_line)


@pytest.mark.parametrize("use_orjson", CODECS)
def test_an_empty_read_is_no_line(use_orjson: bool) -> None:
    assert _between(use_orjson).decode_line(b"") is None


@pytest.mark.parametrize("use_orjson", CODECS)
def test_a_line_over_the_size_limit_is_not_taken(use_orjson: bool) -> None:
    conn = ClientConnection(codec=JsonCodec(use_orjson=use_orjson), max_message_size=10)
    assert conn.decode_line(b'{"a":1}\n') == {"a": 1}
    assert conn.decode_line(b'{"a":123}\n') == {"a": 123}  # 10 bytes: the limit
    assert conn.decode_line(b'{"a":1234}\n') is None  # 11: the framer reports it
