"""A usual batch's requests written without request objects (``ClientConnection.encode_calls``).

Whatever the arguments, the bytes are those the general way writes
(``encode_values(call_values(...))``), or None, and then the client writes them
that way; the usual batch takes the woven way.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from _driver_helpers import WAIT, serving

from jsonrpc_mini import RPCClient, RPCServer
from jsonrpc_mini._batch import BatchBuilder, BatchResult, QueuedCalls, call_values
from jsonrpc_mini._client_protocol import ClientConnection
from jsonrpc_mini._json import HAVE_ORJSON, JsonCodec

pytestmark = [pytest.mark.timeout(60), pytest.mark.skipif(not HAVE_ORJSON, reason="the woven way needs orjson")]


def _queued(*calls: tuple[Any, tuple[Any, ...]]) -> QueuedCalls:
    """The queued calls of a batch of ``(method, args)`` calls, as a builder queues them."""
    builder = BatchBuilder(lambda queued: queued.answered())
    for method, args in calls:
        builder.call(method, *args)
    return builder._take_queued()


def _both(proto: ClientConnection, calls: QueuedCalls) -> tuple[bytes | None, bytes]:
    """(the woven bytes or None, the general way's bytes) for ``calls``, numbered from 7."""
    ids = list(range(7, 7 + len(calls)))
    usual = calls.one_method()
    assert usual is not None
    return proto.encode_calls(usual[0], usual[1], ids), proto.encode_values(call_values(calls, ids))


# Arguments the woven way writes itself: the bytes must be the general way's.
WOVEN: list[tuple[Any, ...]] = [
    (1, 2),
    (-5, 2**63 - 1, 0),
    ("s", "测试项", 'quote " and \\ backslash'),
    (1.5, 1e-7, -0.0, 1e300),
    (True, False),
    ({"a": 1, "b": {"c": "d"}},),
    ("]", "[", "},{", "] , ["),  # brackets, but neither "]," nor ",["
    ([[1]],),  # nested arrays, but neither "]," nor ",["
    ({"b": 1, "a": [[2]]},),
    ((),),
]

# Arguments whose text the woven way cannot split surely: None, then the general way.
NOT_WOVEN: list[tuple[Any, ...]] = [
    ("a],b",),  # "]," inside a string
    ("a,[b",),  # ",[" inside a string
    ([1, 2], 3),  # a nested array followed by more
    (1, [2]),  # ",[" before a nested array
    ((), 1),  # an empty nested array followed by more
    (None,),  # null
    (float("nan"),),  # written as null by orjson: the general way refuses it
    (2**64,),  # orjson cannot write it: the standard library does
]


@pytest.mark.parametrize("framing", ["newline", "content-length"])
@pytest.mark.parametrize("args", WOVEN)
@pytest.mark.parametrize("count", [1, 2, 5])
def test_the_woven_batch_is_the_general_way_s_bytes(framing: Any, args: tuple[Any, ...], count: int) -> None:
    proto = ClientConnection(framing=framing)
    calls = _queued(*[("m", args)] * count)
    woven, general = _both(proto, calls)
    assert woven == general


@pytest.mark.parametrize("args", NOT_WOVEN)
@pytest.mark.parametrize("position", [0, 1, 2])
def test_arguments_it_cannot_split_surely_go_the_general_way(args: tuple[Any, ...], position: int) -> None:
    proto = ClientConnection()
    entries = [("m", (1, 2))] * 3
    entries[position] = ("m", args)
    calls = _queued(*entries)
    ids = [7, 8, 9]
    usual = calls.one_method()
    assert usual is not None
    assert proto.encode_calls(usual[0], usual[1], ids) is None
    if isinstance(args[0], float) and math.isnan(args[0]):
        with pytest.raises(ValueError, match="NaN"):
            proto.encode_values(call_values(calls, ids))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"a": "],"},  # (its "]," and the array's ",[" after it: as many as arrays would give)
        {"a": 1},
        {},  # (no arguments at all: null)
    ],
)
def test_params_given_as_an_object_go_the_general_way(kwargs: dict[str, Any]) -> None:
    builder = BatchBuilder(lambda queued: queued.answered())
    builder.call("m", **kwargs)
    builder.call("m", 1)
    calls = builder._take_queued()
    usual = calls.one_method()
    assert usual is not None
    proto = ClientConnection()
    assert proto.encode_calls(usual[0], usual[1], [7, 8]) is None


# (Only str names: the builders refuse any other before queueing; test_client_method_name_checks.)
@pytest.mark.parametrize("method", ["add", "a.b", 'odd "name" ],[', "", "测试项", "\u2028"])
def test_any_method_is_written_as_the_general_way_writes_it(method: Any) -> None:
    proto = ClientConnection()
    woven, general = _both(proto, _queued(*[(method, (1, 2))] * 3))
    assert woven == general


@pytest.mark.parametrize("depth", range(250, 258))
def test_orjson_refuses_deep_arguments_alike_either_way(depth: int) -> None:
    # orjson refuses more than 255 nested containers; the general way then writes
    # with the standard library, which spells 1e-7 otherwise (1e-07): the woven
    # way must refuse exactly where the request objects are refused.
    deep: Any = 1e-7
    for _ in range(depth):
        deep = [deep]
    proto = ClientConnection()
    woven, general = _both(proto, _queued(("m", (deep,)), ("m", (1,))))
    assert woven is None or woven == general
    assert (woven is None) == (b"1e-07" in general)


def test_only_a_plain_codec_with_orjson_weaves() -> None:
    class Codec(JsonCodec):
        __slots__ = ()

    calls = _queued(*[("m", (1, 2))] * 3)
    for codec in (Codec(), JsonCodec(use_orjson=False)):
        woven, general = _both(ClientConnection(codec=codec), calls)
        assert woven is None
        assert general == _both(ClientConnection(), calls)[1]


def test_ids_and_params_must_pair_up() -> None:
    proto = ClientConnection()
    assert proto.encode_calls("m", [], []) is None
    assert proto.encode_calls("m", [(1,), (2,)], [7]) is None


def test_one_method_is_the_usual_batch_only() -> None:
    usual = _queued(("m", (1, 2)), ("m", ("x",)))
    assert usual.one_method() == ("m", [(1, 2), ("x",)])
    other = "".join(["m", "m"])  # an equal name, another object
    assert other == "mm"
    assert other is not "mm"  # noqa: F632
    assert _queued(("mm", (1,)), (other, (1,))).one_method() is None
    assert _queued(("m", (1,)), ("n", (1,))).one_method() is None
    assert _queued().one_method() is None
    builder = BatchBuilder(lambda queued: queued.answered())
    builder.call("m", 1)
    builder.call("m")
    builder.call("m", a=1)
    assert builder._take_queued().one_method() == ("m", [(1,), None, {"a": 1}])
    builder = BatchBuilder(lambda queued: queued.answered())
    builder.call("m", 1)
    builder.notify("m", 1)
    assert builder._take_queued().one_method() is None


@pytest.mark.parametrize("args", WOVEN + NOT_WOVEN[:5] + NOT_WOVEN[-1:])
def test_a_client_s_batch_reaches_the_server_whole_either_way(args: tuple[Any, ...]) -> None:
    server = RPCServer()
    server.register_function(lambda *args: list(args), "echo")
    with serving(server) as address, RPCClient(*address, timeout=WAIT) as client:
        with client.batch() as b:
            results: list[BatchResult] = [b.echo(*args), b.echo(1, 2), b.echo(*args)]
        expected = [list(args), [1, 2], list(args)]
    # (JSON has no tuples: an empty tuple comes back as a list)
    assert [r.result() for r in results] == [[list(a) if type(a) is tuple else a for a in e] for e in expected]


@pytest.mark.parametrize(("kwargs", "woven"), [({}, True), ({"k": 1}, False)])
def test_a_client_weaves_the_usual_batch(monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, Any], woven: bool) -> None:
    general: list[int] = []
    encode_values = ClientConnection.encode_values

    def counted(self: ClientConnection, values: list[dict[str, Any]]) -> bytes:
        general.append(len(values))
        return encode_values(self, values)

    monkeypatch.setattr(ClientConnection, "encode_values", counted)
    server = RPCServer()
    server.register_function(lambda *args, **kwargs: len(args) + len(kwargs), "count")
    with serving(server) as address, RPCClient(*address, timeout=WAIT) as client, client.batch() as b:
        results = [b.count(1, 2, **kwargs) for _ in range(3)]
    assert [r.result() for r in results] == [2 + len(kwargs)] * 3
    assert general == ([] if woven else [3])
