"""Codec: message objects survive encoding, and invalid input gets the spec's error code."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
from jsonrpc_mini._dispatch import Registry
from jsonrpc_mini._errors import InvalidParams, MethodNotFound
from jsonrpc_mini._json import JsonCodec
from jsonrpc_mini._protocol import Batch, Call, Reply, ServerConnection
from jsonrpc_mini.testing import strategies as rst

from ._budget import scaled

CODECS = [JsonCodec(use_orjson=False), JsonCodec(use_orjson=True)]
codecs = st.sampled_from(CODECS)

params = rst.params(st.one_of(rst.json_values(max_leaves=10), rst.large_values(max_bytes=5000)))
requests = st.builds(Request, rst.method_names(), params, rst.request_ids(allow_null=True))
notifications = st.builds(Notification, rst.method_names(), params)
error_objects = st.builds(
    ErrorObject,
    st.integers(min_value=-(2**63), max_value=2**63),
    rst.json_strings(max_size=30),
    st.one_of(st.none(), rst.json_values(max_leaves=6)),
)
responses = st.builds(Response, rst.request_ids(allow_null=True), rst.json_values())
error_responses = st.builds(ErrorResponse, rst.request_ids(allow_null=True), error_objects)


def same_message(a: Any, b: Any) -> bool:
    """Dataclass equality, but with JSON's exact types (1 is not 1.0 is not True)."""
    if type(a) is not type(b):
        return False
    fields = {
        Request: ("method", "params", "id"),
        Notification: ("method", "params"),
        Response: ("id", "result"),
        ErrorResponse: ("id",),
    }[type(a)]
    if isinstance(a, ErrorResponse):
        ea, eb = a.error, b.error
        if not rst.same_json([ea.code, ea.message, ea.data], [eb.code, eb.message, eb.data]):
            return False
    return rst.same_json([getattr(a, f) for f in fields], [getattr(b, f) for f in fields])


# Invariant: every request and notification encodes to JSON that a server decodes back
# to the very same message (method, params with exact types, id), with either JSON backend.
@given(st.one_of(requests, notifications), codecs)
def test_requests_round_trip(message, codec):
    decoded = parse_request(codec.loads(encode_message(message, codec.dumps)))
    assert same_message(decoded, message), (decoded, message)


# Invariant: every response and error response encodes to JSON that a client decodes
# back to the same message (ids echoed exactly: big ints, floats, unicode strings, 0).
@given(st.one_of(responses, error_responses), codecs)
def test_responses_round_trip(message, codec):
    decoded = parse_response(codec.loads(encode_message(message, codec.dumps)))
    assert same_message(decoded, message), (decoded, message)


# Invariant: a batch encodes as one JSON array whose items decode to the batch's
# messages in order; both JSON backends write identical bytes.
@given(st.lists(st.one_of(requests, notifications), min_size=1, max_size=5))
def test_batches_round_trip_and_backends_agree(batch):
    stdlib, fast = (encode_message(batch, codec.dumps) for codec in CODECS)
    assert json.loads(stdlib) == json.loads(fast)
    decoded = [parse_request(item) for item in CODECS[1].loads(fast)]
    assert all(same_message(d, m) for d, m in zip(decoded, batch, strict=True))


# Invariant: positional, keyword and mixed arguments become params that split back into
# exactly the same args and kwargs (the all-digit-keys convention for mixed calls).
@given(rst.arguments(rst.json_values(max_leaves=8)))
def test_arguments_survive_params(arguments):
    params = build_params(arguments.args, arguments.kwargs)
    wire = CODECS[1].loads(CODECS[1].dumps(params))
    args, kwargs = split_params(wire)
    assert rst.same_json([args, kwargs], [list(arguments.args), arguments.kwargs])
    expected_shape = {"none": type(None), "positional": list, "keyword": dict, "mixed": dict}[arguments.kind]
    assert isinstance(params, expected_shape)


def answers(wire: bytes) -> list[Any]:
    """Feed ``wire`` to a server core; return the JSON replies it makes by itself."""
    conn = ServerConnection(framing="newline")
    conn.receive_data(wire)
    replies: list[Any] = []
    for _ in range(1000):
        event = conn.next_event()
        if event is None:
            return replies
        if isinstance(event, Reply):
            replies.append(json.loads(event.data))
        elif isinstance(event, Batch):
            replies.append([item for item in event.items if isinstance(item, ErrorResponse)])
        else:
            assert isinstance(event, Call)
            replies.append(event.message)
    raise AssertionError("unbounded events")


def expected_id(value: Any) -> Any:
    if isinstance(value, dict) and "id" in value and valid_id(value["id"]):
        return value["id"]
    return None


# Invariant: every invalid request object gets exactly one -32600 reply that echoes
# the request's id when that id is valid and is null otherwise.
@scaled(0.5)
@given(rst.invalid_requests(), codecs)
def test_invalid_request_gets_invalid_request_error(value, codec):
    (reply,) = answers(codec.dumps(value) + b"\n")
    assert reply["error"]["code"] == -32600, (value, reply)
    assert rst.same_json(reply["id"], expected_id(value)), (value, reply)
    assert reply["jsonrpc"] == "2.0"


# Invariant: in a batch, each invalid member gets its own -32600 (id echoed when valid)
# and the valid members still run.
@scaled(0.5)
@given(st.lists(st.one_of(rst.invalid_requests().filter(lambda v: v != []), rst.requests()), min_size=1, max_size=6))
def test_batch_members_are_validated_one_by_one(items):
    (event,) = answers(json.dumps(items).encode() + b"\n")
    invalid = [item for item in items if isinstance(parse_request(item), ErrorResponse)]
    assert len(event) == len(invalid)
    for error, item in zip(event, invalid, strict=True):
        assert error.error.code == -32600
        assert rst.same_json(error.id, expected_id(item))


# Invariant: every line that is not JSON gets exactly one -32700 with id null, and the
# connection keeps serving: a valid request after it still arrives.
@given(rst.malformed_lines(), rst.requests())
def test_parse_error_gets_parse_error_and_reading_goes_on(line, request):
    reply, call = answers(line + json.dumps(request).encode() + b"\n")
    assert reply["error"]["code"] == -32700 and reply["id"] is None
    assert isinstance(call, Request)
    assert rst.same_json([call.method, call.id], [request["method"], request["id"]])


registry = Registry()


@registry.register
def two(a: Any, b: Any = None) -> Any:
    return a


# Invariant: an unknown method is -32601; arguments that do not bind to the signature
# are -32602; arguments that bind are accepted (dispatch never confuses the two).
@given(rst.method_names(), rst.arguments(rst.json_scalars(), max_args=3))
def test_dispatch_errors_have_the_spec_codes(method, arguments):
    params = build_params(arguments.args, arguments.kwargs)
    if method != "two":
        with pytest.raises(MethodNotFound) as info:
            registry.prepare(Request(method, params, 1))
        assert info.value.code == -32601
    by_position = {"a", "b"} if len(arguments.args) >= 2 else {"a"} if arguments.args else set()
    names = set(arguments.kwargs)
    binds = len(arguments.args) <= 2 and names <= {"a", "b"} and not names & by_position and "a" in names | by_position
    if binds:
        assert registry.prepare(Request("two", params, 1)).function is two
    else:
        with pytest.raises(InvalidParams) as info:
            registry.prepare(Request("two", params, 1))
        assert info.value.code == -32602
