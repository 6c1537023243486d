"""The server's one-step line with orjson: values read exactly, the codec's checks where they matter.

``ServerConnection.receive_plain_call`` reads the usual request line with orjson and
looks at the value instead of the text for long digit runs (orjson reads an integer
past 64 bits as a float). Whatever it takes or leaves, the values must be those the
standard library's reading gives: ``repr`` is compared, since ``1e20 == 10**20``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from _driver_helpers import CODECS
from test_protocol import drain

from jsonrpc_mini._client_protocol import ClientConnection
from jsonrpc_mini._codec import parse_request
from jsonrpc_mini._events import Call, Reply
from jsonrpc_mini._json import HAVE_ORJSON, JsonCodec
from jsonrpc_mini._protocol import ServerConnection

WARM = b'{"jsonrpc":"2.0","method":"m","params":[0],"id":0}\n'  # the first line makes the framing known
BIG = 10**20  # past 64 bits: orjson reads it as a float
BELOW_I64 = -(2**63) - 1  # 19 digits, below orjson's smallest integer


def warm(**options: Any) -> ServerConnection:
    conn = ServerConnection(framing="newline", **options)
    assert conn.receive_plain_call(WARM, len(WARM) - 1, True) is not None
    assert drain(conn) == []
    return conn


def line(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode() + b"\n"


def request(params: Any = None, id_: Any = 1, **extra: Any) -> dict[str, Any]:
    value: dict[str, Any] = {"jsonrpc": "2.0", "method": "m"}
    if params is not None:
        value["params"] = params
    if id_ is not None:
        value["id"] = id_
    return value | extra


LINES = [
    line(request([1, 2])),
    line(request([BIG, 2])),
    line(request([1, BELOW_I64])),
    line(request(["12345678901234567890123", "x"])),  # a digit run in a string only
    line(request([1, 2], BIG)),
    line(request([1, 2], 1, extra=BIG)),  # a member the request ignores
    line(request([1, 2, 3, 4, BIG])),
    line(request([[BIG]])),
    line(request([1.5, 2])),
    line(request({"a": BIG})),
    line(request([BIG], None)),  # a notification
    line(request([True, None])),
    b'{"jsonrpc":"2.0","method":"m","params":["\\ud800"],"id":1}\n',  # orjson refuses a lone surrogate
]


@pytest.mark.parametrize("use_orjson", CODECS)
@pytest.mark.parametrize("data", LINES)
def test_values_are_the_standard_readings(use_orjson: bool, data: bytes) -> None:
    conn = warm(codec=JsonCodec(use_orjson=use_orjson))
    taken = conn.receive_plain_call(data, data.find(b"\n"), True)
    expected = JsonCodec(use_orjson=False).loads(data)
    if isinstance(taken, dict):
        assert repr(taken) == repr(expected)
    else:
        assert taken is not None
        assert repr(taken) == repr(parse_request(expected))
    assert drain(conn) == []


def test_a_repeated_key_cannot_hide_an_integer_past_the_digit_limit() -> None:
    # orjson reads the first id (25 digits) as a float, and the second replaces it;
    # the standard library refuses the text at once with a limit of 20 digits.
    data = b'{"jsonrpc":"2.0","method":"m","params":[1],"id":1234567890123456789012345,"id":2}\n'
    limited = warm(codec=JsonCodec(max_int_digits=20))
    assert limited.receive_plain_call(data, data.find(b"\n"), True) is None
    (reply,) = drain(limited)
    assert isinstance(reply, Reply) and b"-32700" in reply.data and b"exceeds the limit" in reply.data
    assert warm().receive_plain_call(data, data.find(b"\n"), True) == request([1], 2)


@pytest.mark.skipif(not HAVE_ORJSON, reason="orjson only")
def test_only_a_codec_limit_of_309_digits_lets_the_value_be_looked_at() -> None:
    # orjson reads integers of up to 309 digits (as floats past 64 bits).
    assert JsonCodec(max_int_digits=309).unchecked_loads is not None
    assert JsonCodec(max_int_digits=308).unchecked_loads is None
    assert JsonCodec(use_orjson=False).unchecked_loads is None


class _Counting(JsonCodec):
    __slots__ = ("count",)
    count: int

    def loads(self, data: bytes | bytearray | memoryview) -> Any:
        self.count += 1
        return super().loads(data)


@pytest.mark.parametrize("use_orjson", CODECS)
def test_a_codec_that_reads_otherwise_is_asked_for_every_line(use_orjson: bool) -> None:
    codec = _Counting(use_orjson=use_orjson)
    codec.count = 0
    assert codec.unchecked_loads is None
    conn = warm(codec=codec)
    data = line(request([1, 2]))
    assert conn.receive_plain_call(data, data.find(b"\n"), True) == request([1, 2])
    assert codec.count == 2


class _SafeIntegers(JsonCodec):
    """Refuses integers past 2**53 (as for a JavaScript peer) through the number hook, not ``loads``."""

    __slots__ = ()

    def _parse_int(self, text: str) -> int:
        value = super()._parse_int(text)
        if abs(value) > 2**53:
            raise ValueError("integer past 2**53")
        return value


@pytest.mark.parametrize("use_orjson", CODECS)
def test_a_codec_with_its_own_number_hook_reads_every_line_its_way(use_orjson: bool) -> None:
    # 2**64 - 1: a 20-digit run (the codec's own reading, with its hook), which orjson
    # reads as an int: a look at orjson's value would let it through.
    codec = _SafeIntegers(use_orjson=use_orjson)
    assert codec.unchecked_loads is None
    conn = warm(codec=codec)
    data = line(request([2**64 - 1]))
    assert conn.receive_plain_call(data, data.find(b"\n"), True) is None
    (reply,) = drain(conn)
    assert isinstance(reply, Reply) and json.loads(reply.data)["error"]["code"] == -32700
    client = ClientConnection(framing="newline", codec=_SafeIntegers(use_orjson=use_orjson))
    assert client.decode_line(b'{"jsonrpc":"2.0","id":0,"result":0}\n') == {"jsonrpc": "2.0", "id": 0, "result": 0}
    assert client.decode_line(b'{"jsonrpc":"2.0","id":1,"result":18446744073709551615}\n') is None


def spied(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of _single_line and JsonCodec.orjson_exact, each time either is called."""
    seen: list[str] = []
    single, exact = ServerConnection._single_line, JsonCodec.orjson_exact

    def single_line(self: ServerConnection, *args: Any) -> Any:
        seen.append("single_line")
        return single(self, *args)

    def orjson_exact(self: JsonCodec, data: bytes) -> bool:
        seen.append("orjson_exact")
        return exact(self, data)

    monkeypatch.setattr(ServerConnection, "_single_line", single_line)
    monkeypatch.setattr(JsonCodec, "orjson_exact", orjson_exact)
    return seen


@pytest.mark.skipif(not HAVE_ORJSON, reason="orjson only")
@pytest.mark.parametrize(
    ("params", "ways"),
    [
        ([1, "2", 3, 4], []),  # looked at one by one
        ([1, 2, 3, 4, 5], ["orjson_exact"]),  # more: the codec's check costs less
        ([1, 2.5], ["orjson_exact"]),
        ([{"a": 1}], ["orjson_exact"]),
        ([1, BIG], ["orjson_exact", "single_line"]),  # a digit run: the codec reads it again
    ],
)
def test_which_checks_the_usual_line_takes(params: list[Any], ways: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    conn = warm()
    seen = spied(monkeypatch)
    data = line(request(params))
    assert repr(conn.receive_plain_call(data, data.find(b"\n"), True)) == repr(JsonCodec(use_orjson=False).loads(data))
    assert seen == ways


def sized(size: int) -> bytes:
    """A request line of ``size`` bytes, the newline included."""
    data = line(request([""]))
    return data.replace(b'[""]', b'["' + b"x" * (size - len(data)) + b'"]')


@pytest.mark.skipif(not HAVE_ORJSON, reason="orjson only")
def test_a_line_at_the_size_limit_is_taken_in_one_step(monkeypatch: pytest.MonkeyPatch) -> None:
    # The framer's limit counts the line without its newline: a line one byte longer
    # is still served, by the general way (it checks the size exactly).
    conn = warm(max_message_size=60)
    seen = spied(monkeypatch)
    at = sized(60)
    assert len(at) == 60 and conn.receive_plain_call(at, 59, True) == json.loads(at)
    assert seen == []
    past = sized(61)
    assert conn.receive_plain_call(past, 60, True) is None
    assert seen == ["single_line"]
    assert drain(conn) == [Call(parse_request(json.loads(past)))]  # type: ignore[arg-type]
    too_large = sized(62)
    assert conn.receive_plain_call(too_large, 61, True) is None
    (reply,) = drain(conn)
    assert isinstance(reply, Reply) and b"too large" in reply.data


def test_a_line_with_a_leading_space_is_left_to_the_framer() -> None:
    conn = warm()
    data = b" " + line(request([1]))
    assert conn.receive_plain_call(data, data.find(b"\n"), True) is None
    assert drain(conn) == [Call(parse_request(json.loads(data)))]  # type: ignore[arg-type]


def test_a_line_without_its_newline_goes_to_the_framer() -> None:
    conn = warm()
    data = line(request([1]))
    assert conn.receive_plain_call(data[:-1], -1, True) is None
    assert drain(conn) == [Call(parse_request(json.loads(data)))]  # type: ignore[arg-type]
    assert conn.receive_plain_call(b"\n", 0, True) is None
    assert drain(conn) == []


@pytest.mark.parametrize("use_orjson", CODECS)
def test_an_empty_read_ends_the_stream(use_orjson: bool) -> None:
    conn = warm(codec=JsonCodec(use_orjson=use_orjson))
    assert conn.receive_plain_call(b"", -1, True) is None
    assert [type(event).__name__ for event in drain(conn)] == ["Closed"]


@pytest.mark.parametrize("use_orjson", CODECS)
@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b'{"jsonrpc":"1.0","method":"m","params":[1],"id":1}\n', b"must be exactly"),
        (b'{"jsonrpc":"2.0","method":5,"params":[1],"id":1}\n', b"must be a string"),
        (b'{"jsonrpc":"2.0","method":["m"],"params":[1],"id":1}\n', b"must be a string"),
        (b'{"jsonrpc":"2.0","method":"m","params":[1],"id":true}\n', b"Invalid Request"),
    ],
)
def test_the_usual_shape_with_a_wrong_member_gets_32600(use_orjson: bool, data: bytes, words: bytes) -> None:
    # After a line taken in one step (the framer between values: the one-step way is
    # open), four members of the usual names but a wrong value: not run, answered.
    conn = warm(codec=JsonCodec(use_orjson=use_orjson))
    assert conn.receive_plain_call(data, data.find(b"\n"), True) is None
    (reply,) = drain(conn)
    assert isinstance(reply, Reply)
    error = json.loads(reply.data)["error"]
    assert error["code"] == -32600 and words in reply.data
