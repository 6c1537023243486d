"""Codec: JSON values <-> JSON-RPC 2.0 message objects, validated by the spec's rules."""

from __future__ import annotations

import datetime
import enum
import json
import logging
import math
import uuid
from typing import Any

import pytest

from jsonrpc_mini._codec import (
    ErrorObject,
    ErrorResponse,
    Notification,
    Request,
    Response,
    build_params,
    encode_message,
    parse_request,
    parse_response,
    split_params,
    valid_id,
)
from jsonrpc_mini._json import JsonCodec

INVALID = -32600
UUID = str(uuid.UUID(int=0x1234_5678_9ABC_DEF0_1234_5678_9ABC_DEF0))
LEGAL_IDS = [0, -1, 1, 2**64, -(2**100), 1.5, 0.0, -2.5e-300, 1e300, UUID, "", "é 测", None]


def req(**members: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "m", **members}


def assert_invalid(result: Any, id_: Any, *words: str) -> None:
    assert isinstance(result, ErrorResponse), result
    assert result.error.code == INVALID
    assert result.id == id_ and type(result.id) is type(id_)
    assert result.error.message.startswith("Invalid Request")
    for word in words:
        assert word in result.error.message


# -- parse_request ---------------------------------------------------------------


@pytest.mark.parametrize("id_", LEGAL_IDS, ids=repr)
def test_legal_ids_are_echoed_exactly(id_: Any) -> None:
    parsed = parse_request(req(id=id_, params=[1]))
    assert parsed == Request("m", [1], id_)
    assert type(parsed.id) is type(id_)  # type: ignore[union-attr]
    # The same through real JSON text (big ints, floats and strings intact).
    text = json.dumps(req(id=id_))
    assert parse_request(JsonCodec().loads(text.encode())).id == id_  # type: ignore[union-attr]


@pytest.mark.parametrize("bad_id", [True, False, [], [1], {}, {"a": 1}], ids=repr)
def test_invalid_id_is_32600_with_id_null(bad_id: Any) -> None:
    assert_invalid(parse_request(req(id=bad_id)), None, "id must be")
    # Even when other members are wrong too: the id is never echoed.
    assert_invalid(parse_request({"id": bad_id}), None)


def test_valid_id_helper() -> None:
    assert all(valid_id(i) for i in LEGAL_IDS)
    assert not any(valid_id(i) for i in (True, False, [], {}, b"x", object()))


@pytest.mark.parametrize("value", [[], [1], 1, "x", None, True, 1.5], ids=repr)
def test_non_objects_are_invalid(value: Any) -> None:
    assert_invalid(parse_request(value), None, "expected an object")


@pytest.mark.parametrize("version", [None, "1.0", 2.0, 2, "2", "2.0 ", " 2.0", ["2.0"]], ids=repr)
def test_jsonrpc_member_must_be_exactly_2_0(version: Any) -> None:
    assert_invalid(parse_request({"jsonrpc": version, "method": "m", "id": 5}), 5, '"jsonrpc"')
    assert_invalid(parse_request({"method": "m", "id": "x"}), "x", '"jsonrpc"')


@pytest.mark.parametrize("method", [1, None, [], {}, True, 1.5], ids=repr)
def test_method_must_be_a_string(method: Any) -> None:
    assert_invalid(parse_request({"jsonrpc": "2.0", "method": method, "id": 0}), 0, '"method" must be a string')


def test_method_missing() -> None:
    assert_invalid(parse_request({"jsonrpc": "2.0", "id": 0}), 0, '"method" is missing')


@pytest.mark.parametrize("params", ["s", "", 0, 1.5, True, False], ids=repr)
def test_params_must_be_array_object_or_null(params: Any) -> None:
    assert_invalid(parse_request(req(params=params, id=3)), 3, '"params" must be an array or an object')
    # A notification with bad params is still an invalid request (answered with id null).
    assert_invalid(parse_request(req(params=params)), None)


@pytest.mark.parametrize("params", [[], [1, "a"], {}, {"a": [1]}, None], ids=repr)
def test_params_shapes_accepted(params: Any) -> None:
    assert parse_request(req(params=params, id=1)) == Request("m", params, 1)


def test_params_absent_means_none_and_no_id_means_notification() -> None:
    assert parse_request(req(id=1)) == Request("m", None, 1)
    assert parse_request(req()) == Notification("m", None)
    assert parse_request(req(params={"k": 1})) == Notification("m", {"k": 1})


def test_explicit_null_id_is_a_request_not_a_notification() -> None:
    parsed = parse_request(req(id=None))
    assert isinstance(parsed, Request)
    assert parsed.id is None


def test_unknown_members_are_ignored() -> None:
    assert parse_request(req(id=1, extra={"x": 1})) == Request("m", None, 1)


def test_error_messages_name_the_kind() -> None:
    assert "a boolean" in parse_request(req(id=1, params=True)).error.message  # type: ignore[union-attr]
    assert "a number" in parse_request(req(id=1, params=3)).error.message  # type: ignore[union-attr]
    assert "a string" in parse_request(req(id=1, params="x")).error.message  # type: ignore[union-attr]
    assert "an array" in parse_request([1]).error.message  # type: ignore[union-attr]
    assert "null" in parse_request(None).error.message  # type: ignore[union-attr]
    assert "an object" in parse_request(req(id={})).error.message  # type: ignore[union-attr]


# -- parse_response --------------------------------------------------------------


@pytest.mark.parametrize("id_", [i for i in LEGAL_IDS if i is not None], ids=repr)
def test_parse_response_result(id_: Any) -> None:
    got = parse_response({"jsonrpc": "2.0", "id": id_, "result": [1, {"a": None}]})
    assert got == Response(id_, [1, {"a": None}])
    assert parse_response({"jsonrpc": "2.0", "id": id_, "result": None}) == Response(id_, None)


def test_parse_response_errors() -> None:
    full = {"jsonrpc": "2.0", "id": 7, "error": {"code": -32000, "message": "boom", "data": {"x": 1}}}
    assert parse_response(full) == ErrorResponse(7, ErrorObject(-32000, "boom", {"x": 1}))
    bare = {"jsonrpc": "2.0", "id": None, "error": {"code": 5, "message": "m"}}
    assert parse_response(bare) == ErrorResponse(None, ErrorObject(5, "m", None))
    odd = {"jsonrpc": "2.0", "id": 1, "error": {"code": 5, "message": 42}}
    assert parse_response(odd) == ErrorResponse(1, ErrorObject(5, "42", None))


@pytest.mark.parametrize(
    "value",
    [
        [],
        "x",
        {"id": 1, "result": 1},
        {"jsonrpc": "1.0", "id": 1, "result": 1},
        {"jsonrpc": "2.0", "result": 1},
        {"jsonrpc": "2.0", "id": True, "result": 1},
        {"jsonrpc": "2.0", "id": [1], "result": 1},
        {"jsonrpc": "2.0", "id": 1},
        {"jsonrpc": "2.0", "id": 1, "method": "m", "result": 1},
        {"jsonrpc": "2.0", "id": 1, "error": "boom"},
        {"jsonrpc": "2.0", "id": 1, "error": {"message": "no code"}},
        {"jsonrpc": "2.0", "id": 1, "error": {"code": True, "message": "bool"}},
        {"jsonrpc": "2.0", "id": 1, "error": {"code": 1.5, "message": "float"}},
    ],
    ids=repr,
)
def test_parse_response_rejects(value: Any) -> None:
    assert parse_response(value) is None


# -- params ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "params"),
    [
        ((), {}, None),
        ((1, "a"), {}, [1, "a"]),
        ((), {"k": 1}, {"k": 1}),
        (("测试项",), {"kw1": "1"}, {"0": "测试项", "kw1": "1"}),
        ((None, [1]), {"method": "m", "self": 2}, {"0": None, "1": [1], "method": "m", "self": 2}),
        (tuple(range(12)), {"z": 0}, {**{str(i): i for i in range(12)}, "z": 0}),
    ],
)
def test_build_and_split_params_round_trip(args: tuple[Any, ...], kwargs: dict[str, Any], params: Any) -> None:
    built = build_params(args, kwargs)
    assert built == params
    assert split_params(built) == (list(args), kwargs)
    # Through JSON text too (key order is irrelevant to the split).
    assert split_params(json.loads(json.dumps(built))) == (list(args), kwargs)


def test_build_params_copies_its_inputs() -> None:
    args, kwargs = [1], {"a": 2}
    assert build_params(args, {}) is not args
    assert build_params((), kwargs) is not kwargs


def test_build_params_keyword_colliding_with_a_position() -> None:
    with pytest.raises(TypeError, match="'0' collides"):
        build_params((1,), {"0": 2})
    # A digit keyword alone is just a keyword.
    assert build_params((), {"0": 2}) == {"0": 2}


def test_split_params_mixed_digit_keys_in_any_order() -> None:
    assert split_params({"k": 1, "1": "b", "0": "a"}) == (["a", "b"], {"k": 1})
    assert split_params({"0": "a"}) == (["a"], {})


@pytest.mark.parametrize(
    "params",
    [{"0": 1, "2": 2}, {"1": 1}, {"00": 1}, {"0": 1, "01": 2}, {"0": 1, "1": 2, "3": 4, "k": 0}],
    ids=repr,
)
def test_split_params_gaps_are_value_errors(params: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="without gaps or leading zeros"):
        split_params(params)


def test_split_params_non_ascii_digits_are_keywords() -> None:
    assert split_params({"\u0661": 1, "½": 2}) == ([], {"\u0661": 1, "½": 2})


def test_split_params_list_and_none() -> None:
    assert split_params([1, 2]) == ([1, 2], {})
    assert split_params(None) == ([], {})
    assert split_params({}) == ([], {})


# -- encode_message --------------------------------------------------------------

BOTH = pytest.mark.parametrize("use_orjson", [False, True], ids=["stdlib", "orjson"])


def decode(data: bytes) -> Any:
    return JsonCodec(use_orjson=False).loads(data)


@BOTH
def test_encode_each_kind(use_orjson: bool) -> None:
    dumps = JsonCodec(use_orjson=use_orjson).dumps
    assert decode(encode_message(Response(1, {"a": [1]}), dumps)) == {"jsonrpc": "2.0", "id": 1, "result": {"a": [1]}}
    assert decode(encode_message(Response(2, None), dumps)) == {"jsonrpc": "2.0", "id": 2, "result": None}
    err = ErrorResponse(None, ErrorObject(-32600, "bad"))
    assert decode(encode_message(err, dumps)) == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32600, "message": "bad"},
    }
    err = ErrorResponse("x", ErrorObject(-32000, "e", [1]))
    got = decode(encode_message(err, dumps))
    assert got == {"jsonrpc": "2.0", "id": "x", "error": {"code": -32000, "message": "e", "data": [1]}}
    assert decode(encode_message(Request("m", None, 0), dumps)) == {"jsonrpc": "2.0", "method": "m", "id": 0}
    assert decode(encode_message(Request("m", [1], 3), dumps)) == {
        "jsonrpc": "2.0",
        "method": "m",
        "params": [1],
        "id": 3,
    }
    assert decode(encode_message(Notification("n", {"k": 1}), dumps)) == {
        "jsonrpc": "2.0",
        "method": "n",
        "params": {"k": 1},
    }
    assert b"\n" not in encode_message(Response(1, "a\nb"), dumps)


@BOTH
@pytest.mark.parametrize("id_", [i for i in LEGAL_IDS if i is not None], ids=repr)
def test_encoded_ids_are_exact(use_orjson: bool, id_: Any) -> None:
    out = decode(encode_message(Response(id_, 1), JsonCodec(use_orjson=use_orjson).dumps))
    assert out["id"] == id_
    assert type(out["id"]) is type(id_)


@BOTH
def test_encode_batch(use_orjson: bool) -> None:
    dumps = JsonCodec(use_orjson=use_orjson).dumps
    out = encode_message([Response(1, 1), ErrorResponse(2, ErrorObject(-32601, "nf"))], dumps)
    assert decode(out) == [
        {"jsonrpc": "2.0", "id": 1, "result": 1},
        {"jsonrpc": "2.0", "id": 2, "error": {"code": -32601, "message": "nf"}},
    ]
    assert decode(encode_message([Request("a", None, 1), Notification("b", [])], dumps)) == [
        {"jsonrpc": "2.0", "method": "a", "id": 1},
        {"jsonrpc": "2.0", "method": "b", "params": []},
    ]


class Opaque:
    pass


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


@BOTH
@pytest.mark.parametrize(
    "bad",
    [math.nan, math.inf, [1, -math.inf], {1, 2}, Opaque(), {"k": b"bytes"}, nested(100_000)],
    ids=["nan", "inf", "nested-inf", "set", "object", "bytes", "too-deep"],
)
def test_unencodable_result_is_32603_for_that_call_only(use_orjson: bool, bad: Any, caplog: Any) -> None:
    dumps = JsonCodec(use_orjson=use_orjson).dumps
    with caplog.at_level(logging.WARNING, logger="jsonrpc_mini"):
        single = decode(encode_message(Response(9, bad), dumps))
    assert single["id"] == 9
    assert single["error"]["code"] == -32603
    assert "not JSON-serialisable" in single["error"]["message"]
    assert "result" not in single
    assert "could not be encoded" in caplog.text
    batch = decode(encode_message([Response(1, "ok"), Response(2, bad), Response(3, [3])], dumps))
    assert [m.get("result") for m in batch] == ["ok", None, [3]]
    assert batch[1]["error"]["code"] == -32603
    assert batch[1]["id"] == 2


@BOTH
def test_unencodable_error_data_is_32603(use_orjson: bool) -> None:
    err = ErrorResponse("i", ErrorObject(-32000, "boom", {"obj": Opaque()}))
    out = decode(encode_message(err, JsonCodec(use_orjson=use_orjson).dumps))
    assert out["id"] == "i"
    assert out["error"]["code"] == -32603
    assert "data" not in out["error"]


@BOTH
def test_unencodable_request_raises_to_the_caller(use_orjson: bool) -> None:
    dumps = JsonCodec(use_orjson=use_orjson).dumps
    with pytest.raises(TypeError):
        encode_message(Request("m", [Opaque()], 1), dumps)
    with pytest.raises(ValueError):
        encode_message(Notification("m", [math.nan]), dumps)
    with pytest.raises(TypeError):
        encode_message([Request("ok", None, 1), Request("m", {"s": {1}}, 2)], dumps)


@BOTH
def test_lone_surrogates_survive_encoding(use_orjson: bool) -> None:
    codec = JsonCodec(use_orjson=use_orjson)
    out = encode_message(Response("\ud800", {"s": "x\udfffy"}), codec.dumps)
    out.decode("utf-8")  # what goes on the wire is valid UTF-8
    assert codec.loads(out) == {"jsonrpc": "2.0", "id": "\ud800", "result": {"s": "x\udfffy"}}


def test_messages_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Request("m", None, 1).id = 2  # type: ignore[misc]
    assert Request("m", None, 1) == Request("m", None, 1)
    assert Request("m", None, 1) != Notification("m", None)


class _Colour(enum.Enum):
    RED = 1

    @property
    def value(self) -> Any:  # (a value's own code raising: its words are not quoted)
        raise LookupError("private detail 42")


@pytest.mark.parametrize(
    ("bad", "quoted"),
    [
        (datetime.date(2020, 1, 1), "TypeError: Object of type date is not JSON serializable"),
        ([1, {2}], "TypeError: Object of type set is not JSON serializable"),
        ({(1, 2): 3}, "TypeError: keys must be str, int, float, bool or None, not tuple"),
        ([math.nan], "ValueError: NaN and Infinity are not valid JSON"),
    ],
    ids=["date", "set", "tuple-key", "nan"],
)
@BOTH
def test_an_unencodable_result_s_error_says_what_the_encoder_said(use_orjson: bool, bad: Any, quoted: str) -> None:
    # The handler's author needs the type to fix it: "(TypeError)" alone did not say which.
    out = decode(encode_message(Response(3, bad), JsonCodec(use_orjson=use_orjson).dumps))
    assert out["error"]["message"] == f"Internal error: result is not JSON-serialisable ({quoted})"


def test_what_a_value_s_own_code_raised_is_not_quoted() -> None:
    # (stdlib only: orjson 3.13.0 itself crashes the process, SIGSEGV, on such an Enum)
    out = decode(encode_message(Response(3, [_Colour.RED]), JsonCodec(use_orjson=False).dumps))
    assert out["error"]["message"] == "Internal error: result is not JSON-serialisable (LookupError)"
