"""The strict JSON codec: same answers with the standard library and with orjson."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import math
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jsonrpc_mini import _json, _json_write
from jsonrpc_mini._errors import ParseError
from jsonrpc_mini._json import HAVE_ORJSON, JsonCodec

BOTH = pytest.mark.parametrize("use_orjson", [False, True], ids=["stdlib", "orjson"])


@BOTH
@pytest.mark.parametrize(
    "text",
    [
        b'{"a":[1,2.5,-0.0,true,false,null],"b":{"c":"d"}}',
        '{"u":"测试项 é \\u00e9"}'.encode(),
        b" [1, 2] \r\n",
        b'"\\ud83d\\ude00"',
        b"18446744073709551615",
        b"-9223372036854775808",
        b"123456789012345678901234567890",
        b"-9223372036854775809",
        b"1.7976931348623157e308",
        b"1e-400",
        b'{"a":1,"a":2}',
    ],
)
def test_loads_agrees_with_the_stdlib(use_orjson: bool, text: bytes) -> None:
    codec = JsonCodec(use_orjson=use_orjson)
    got = codec.loads(text)
    assert got == json.loads(text)
    assert type(got) is type(json.loads(text))
    assert codec.loads(bytearray(text)) == got
    assert codec.loads(memoryview(text)) == got


@BOTH
def test_big_integers_stay_exact_integers(use_orjson: bool) -> None:
    # Regression: orjson reads integers past 64 bits as floats, losing digits.
    codec = JsonCodec(use_orjson=use_orjson)
    value = codec.loads(b'{"id":123456789012345678901234567891,"n":-9223372036854775809}')
    assert value == {"id": 123456789012345678901234567891, "n": -9223372036854775809}
    assert all(type(v) is int for v in value.values())


@BOTH
@pytest.mark.parametrize(
    ("text", "why"),
    [
        (b"NaN", "NaN"),
        (b"[Infinity]", "Infinity"),
        (b"[-Infinity]", "-Infinity"),
        (b"1e999", "overflows"),
        (b"[-1E400]", "overflows"),
        (b'"\xff"', "not UTF-8"),
        (b'"\xed\xa0\x80"', "not UTF-8"),
        (b"[1,]", ""),
        (b"", ""),
        (b"\xef\xbb\xbf[]", ""),
        (b"[1] [2]", "Extra data"),
    ],
)
def test_loads_rejects(use_orjson: bool, text: bytes, why: str) -> None:
    with pytest.raises(ParseError) as info:
        JsonCodec(use_orjson=use_orjson).loads(text)
    assert info.value.code == -32700
    assert info.value.message.startswith("Parse error")
    assert why in info.value.message


@BOTH
def test_integer_digit_limit(use_orjson: bool) -> None:
    codec = JsonCodec(max_int_digits=5, use_orjson=use_orjson)
    assert codec.loads(b"[12345,-12345]") == [12345, -12345]
    for text in (b"123456", b"-123456", b'{"a":[0,999999]}'):
        with pytest.raises(ParseError, match="6 digits exceeds the limit of 5"):
            codec.loads(text)
    # Digits in a string or a float are not an integer.
    assert codec.loads(b'["1234567890",1234567.5]') == ["1234567890", 1234567.5]


def test_default_digit_limit() -> None:
    codec = JsonCodec()
    assert codec.loads(b"9" * 4300) == int("9" * 4300)
    with pytest.raises(ParseError, match="4301 digits"):
        codec.loads(b"9" * 4301)


def test_digit_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        JsonCodec(max_int_digits=0)


@BOTH
def test_nesting_too_deep_for_the_decoder(use_orjson: bool) -> None:
    with pytest.raises(ParseError, match="nesting too deep"):
        JsonCodec(use_orjson=use_orjson).loads(b"[" * 100_000 + b"]" * 100_000)


def test_long_error_messages_are_shortened() -> None:
    with pytest.raises(ParseError) as info:
        JsonCodec(max_int_digits=1).loads(b"1" * 1000)
    assert len(info.value.message) < 300
    # The decoder's own messages are short; the helper caps any that is not.
    assert _json._short(ValueError("x" * 300)) == "x" * 200 + "..."
    assert _json._short(ValueError("short")) == "short"


def test_use_orjson_follows_availability() -> None:
    assert JsonCodec(use_orjson=False).use_orjson is False
    assert JsonCodec(use_orjson=True).use_orjson is HAVE_ORJSON
    assert JsonCodec().use_orjson is HAVE_ORJSON


class Color(str):
    pass


class Count(int):
    pass


@dataclasses.dataclass
class Point:
    x: int


@BOTH
@pytest.mark.parametrize(
    "value",
    [
        {"jsonrpc": "2.0", "id": 0, "result": [1, 2.5, None, True, "测试"]},
        {"big": 123456789012345678901234567890, "neg": -(2**70)},
        [1e300, -0.0, 1.5, 0.1],
        {1: "int key", "s": ("tuple", "too")},
        {"sub": Color("red"), "n": Count(3)},
        "",
        [[[[[]]]]],
    ],
)
def test_dumps_is_compact_utf8_and_round_trips(use_orjson: bool, value: Any) -> None:
    out = JsonCodec(use_orjson=use_orjson).dumps(value)
    assert isinstance(out, bytes)
    assert b": " not in out
    assert b", " not in out
    expected = json.loads(json.dumps(value))
    assert json.loads(out) == expected
    if not use_orjson:  # orjson spells some floats differently (1e300 vs 1e+300): same values
        assert out == json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


@BOTH
def test_dumps_writes_unicode_unescaped(use_orjson: bool) -> None:
    assert JsonCodec(use_orjson=use_orjson).dumps({"k": "测试é"}) == '{"k":"测试é"}'.encode()


@BOTH
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(
    "wrap",
    [
        lambda x: x,
        lambda x: [1, {"a": x}],
        lambda x: {"t": (None, x)},
        lambda x: [2**70, x],  # (orjson refuses the big int: the stdlib writes it all)
    ],
)
def test_dumps_refuses_non_finite_floats(use_orjson: bool, bad: float, wrap: Any) -> None:
    # The same words whichever encoder met it.
    codec = JsonCodec(use_orjson=use_orjson)
    for dumps in (codec.dumps, codec.dumps_line):
        with pytest.raises(ValueError, match=r"^NaN and Infinity are not valid JSON$"):
            dumps(wrap(bad))


@BOTH
def test_dumps_null_without_non_finite_floats(use_orjson: bool) -> None:
    assert JsonCodec(use_orjson=use_orjson).dumps([None, 1.5, {"a": None}]) == b'[null,1.5,{"a":null}]'


@BOTH
@pytest.mark.parametrize(
    "bad", [{1, 2}, object(), Point(1), datetime.datetime(2020, 1, 1), {(1, 2): "tuple key"}, b"bytes"]
)
def test_dumps_refuses_what_is_not_json(use_orjson: bool, bad: Any) -> None:
    with pytest.raises(TypeError):
        JsonCodec(use_orjson=use_orjson).dumps({"v": bad})


class Level(enum.Enum):
    LOW = 1
    NAME = "n"
    NESTED = (1, "x")
    OPAQUE = Point(1)
    NAN = math.nan


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (uuid.UUID(int=1), b'"00000000-0000-0000-0000-000000000001"'),
        ({"lvl": Level.LOW, "ids": [uuid.UUID(int=2)]}, b'{"lvl":1,"ids":["00000000-0000-0000-0000-000000000002"]}'),
        (Level.NAME, b'"n"'),
        (Level.NESTED, b'[1,"x"]'),
    ],
)
def test_uuid_and_enum_encode_the_same_with_or_without_orjson(value: Any, text: bytes) -> None:
    # Regression: orjson writes these natively, the stdlib refused them.
    assert JsonCodec(use_orjson=False).dumps(value) == text
    assert JsonCodec(use_orjson=True).dumps(value) == text


@BOTH
def test_enum_with_an_unencodable_value_is_refused(use_orjson: bool) -> None:
    with pytest.raises(TypeError):
        JsonCodec(use_orjson=use_orjson).dumps([Level.OPAQUE])
    with pytest.raises(ValueError):
        JsonCodec(use_orjson=use_orjson).dumps({"a": [None, Level.NAN]})


@BOTH
def test_lone_surrogates_survive_a_round_trip(use_orjson: bool) -> None:
    codec = JsonCodec(use_orjson=use_orjson)
    value = codec.loads(b'{"s":"a\\ud800b","\\udfff":1}')
    assert value == {"s": "a\ud800b", "\udfff": 1}
    out = codec.dumps(value)
    out.decode("ascii")  # escaped, so the bytes are valid UTF-8 (ASCII even)
    assert codec.loads(out) == value


def test_module_level_helpers_use_the_default_codec() -> None:
    assert _json.loads(b'{"a":[1]}') == {"a": [1]}
    assert _json.dumps({"a": [1]}) == b'{"a":[1]}'
    with pytest.raises(ParseError):
        _json.loads(b"NaN")


# -- large texts: orjson's result is checked by looking at a small value's numbers ------

PAD = "x" * (300 * 1024)  # past the size from which the value's numbers are looked at


@BOTH
@pytest.mark.parametrize(
    "numbers",
    [
        [1, 2.5, -3],
        [2**64, -(2**63) - 1, 10**30],  # orjson would read these as floats
        [123456789012345678901234567890.5],  # a float with many digits: still a float
        list(range(300)),  # more elements than are looked at: the text is checked instead
        [2**70, *range(300)],
    ],
)
def test_large_texts_read_like_the_stdlib(use_orjson: bool, numbers: list[Any]) -> None:
    text = json.dumps({"pad": PAD, "n": numbers}).encode()
    assert len(text) > 256 * 1024
    assert JsonCodec(use_orjson=use_orjson).loads(text) == json.loads(text)


@BOTH
def test_large_texts_keep_the_digit_limit(use_orjson: bool) -> None:
    codec = JsonCodec(use_orjson=use_orjson, max_int_digits=5)
    assert codec.loads(json.dumps([PAD, 12345]).encode()) == [PAD, 12345]
    with pytest.raises(ParseError, match="exceeds the limit"):
        codec.loads(json.dumps([PAD, 123456]).encode())
    with pytest.raises(ParseError, match="exceeds the limit"):
        codec.loads(json.dumps([PAD, -123456]).encode())


@BOTH
@pytest.mark.parametrize("bad", [math.nan, math.inf])
@pytest.mark.parametrize("many", [False, True], ids=["few-elements", "many-elements"])
def test_large_outputs_still_refuse_non_finite_floats(use_orjson: bool, bad: float, many: bool) -> None:
    codec = JsonCodec(use_orjson=use_orjson)
    fillers = list(range(500)) if many else []
    assert codec.loads(codec.dumps([PAD, 1.5, None, *fillers])) == [PAD, 1.5, None, *fillers]
    with pytest.raises(ValueError):
        codec.dumps([PAD, {"x": [bad]}, *fillers])


# -- the standard library reads numbers without hooks when that cannot change the result --

number_texts = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.integers(min_value=1, max_value=400).map(lambda n: "9" * n),  # around the digit limits
    st.builds(
        lambda m, e, sign: f"{m}e{sign}{e}",
        st.floats(min_value=0.1, max_value=9.9).map(lambda f: f"{f:.3f}"),
        st.integers(0, 400),
        st.sampled_from(["", "+", "-"]),
    ),  # exponents past 308 overflow
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)


@pytest.mark.parametrize("pad", [600, 300 * 1024], ids=["medium", "large"])
@pytest.mark.parametrize("max_int_digits", [5, 4300])
@given(numbers=st.lists(number_texts, min_size=1, max_size=8))
def test_stdlib_reads_numbers_exactly_as_the_hooks_do(pad: int, max_int_digits: int, numbers: list[str]) -> None:
    codec = JsonCodec(use_orjson=False, max_int_digits=max_int_digits)
    text = ('["' + "x" * pad + '",' + ",".join(numbers) + "]").encode()
    try:
        expected = codec._decoder.decode(text.decode())  # the hooked reading: the reference
    except ValueError:
        with pytest.raises(ParseError):
            codec.loads(text)
        return
    assert codec.loads(text) == expected


@BOTH
@pytest.mark.parametrize(
    "value",
    [
        {"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": 7},
        [None, 1.5, {"a": None}],  # null, but no NaN
        {"big": 2**70, 1: "int key", "t": ("x",)},  # orjson refuses: the stdlib writes it
        {"sub": Color("red"), "u": uuid.UUID(int=1)},
        [PAD, 1.5, None],  # large output
        [PAD, None, *range(500)],  # large output, many elements
        [math.nan],
        {"a": [1, {"b": math.inf}]},
        [PAD, {"x": [-math.inf]}],
        [PAD, math.nan, *range(500)],
        {"v": {1, 2}},
        {"v": b"bytes"},
    ],
)
def test_dumps_line_is_dumps_and_a_newline(use_orjson: bool, value: Any) -> None:
    codec = JsonCodec(use_orjson=use_orjson)
    try:
        expected = codec.dumps(value) + b"\n"
    except (TypeError, ValueError) as exc:
        with pytest.raises(type(exc)):
            codec.dumps_line(value)
    else:
        assert codec.dumps_line(value) == expected


class _Color(enum.Enum):
    RED = "red"


def _circular() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


def _outcome(encode: Any, value: Any) -> tuple[str, Any]:
    try:
        return "ok", encode(value)
    except Exception as exc:  # the kind and message of the refusal are part of the contract
        return type(exc).__name__, str(exc)


def _json_dumps(value: Any) -> bytes:
    # What _stdlib_dumps (_json_write) stood for before it called the C encoder itself.
    options: dict[str, Any] = {"separators": (",", ":"), "allow_nan": False, "default": _json_write._default}
    try:
        return json.dumps(value, ensure_ascii=False, **options).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, ensure_ascii=True, **options).encode()


_SHARED = [1]


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        'é\u2028\x00\x1f"\\',
        "\ud800",
        10**30,
        -0.0,
        1e300,
        [math.nan],
        {"k": math.inf},
        {1: 2, False: 3, None: 4, 1.5: 5},
        {(1,): 2},
        _circular(),
        [_SHARED, _SHARED],  # the same list twice is no cycle
        uuid.UUID(int=5),
        [_Color.RED],
        {"a": object()},
        (1, [2, (3,)]),
        {1, 2},
        {"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": 7},
    ],
)
def test_stdlib_dumps_writes_what_json_dumps_writes(value: Any) -> None:
    # _stdlib_dumps calls json's C encoder itself (speed): the same bytes, and the same
    # errors (circular reference, keys and objects JSON cannot hold), as json.dumps;
    # a NaN's in the words of orjson's path (_finite).
    expected = _outcome(_json_dumps, value)
    # (From Python 3.12 on, json's message ends with the value: ": nan".)
    if expected[0] == "ValueError" and expected[1].startswith("Out of range float values are not JSON compliant"):
        expected = ("ValueError", _json_write.NONFINITE)
    assert _outcome(_json_write._stdlib_dumps, value) == expected
    # A refusal leaves nothing behind: the next message is encoded afresh.
    assert _json_write._stdlib_dumps([_SHARED, _SHARED]) == b"[[1],[1]]"


@pytest.mark.parametrize(
    "text",
    [
        b'{"jsonrpc":"2.0","id":1,"result":3}\n',
        b'{"a":1}',
        b'{"a":1} \t\r\n',
        b'  {"a":1}',
        b"\n",
        b"",
        b'{"a":1}\n{"b":2}\n',
        b'{"a":1}x',
        b'{"a":1}\x0c',
        '{"a":1}\u00a0'.encode(),  # not JSON whitespace
        b"[1,2",
        b'{"a":NaN}',
        b"1" * 5000,
        b'"\\ud800"',
        b"[" * 100_000,
    ],
)
def test_stdlib_loads_reads_what_the_decoder_reads(text: bytes) -> None:
    # The stdlib path calls the decoder's scanner itself (speed): the same value, or
    # the same error, as JSONDecoder.decode with the codec's hooks.
    codec = JsonCodec(use_orjson=False)

    def reference(data: bytes) -> Any:
        try:
            return codec._decoder.decode(data.decode())
        except RecursionError:
            raise ParseError("Parse error: nesting too deep") from None
        except ValueError as exc:
            raise ParseError(f"Parse error: {_json._short(exc)}") from None

    assert _outcome(codec.loads, text) == _outcome(reference, text)
