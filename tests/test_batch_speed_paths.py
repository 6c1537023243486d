"""The fast paths of batches behave exactly as the general ones.

Client: methods a builder hands out (``b.add``) are kept on it and queue directly.
Server: a batch's valid calls run straight from their JSON objects
(``_batch_serve``); every member's reply must be the one it gets on its own.
Client over sockets: numbering, one array out, replies matched by id whatever
the server sends back (any order, split, missing, unknown, duplicate ids).
"""

from __future__ import annotations

import gc
import json
import threading
import weakref
from collections.abc import Callable
from typing import Any

import pytest
from _driver_helpers import CODECS, WAIT, FakeServer, LeakCheck, Peer, raw_connect, serving

from jsonrpc_mini import ConnectionLost, InvalidParams, MethodNotFound, RPCClient, RPCServer, RPCTimeout, ServerError
from jsonrpc_mini._batch import BatchBuilder
from jsonrpc_mini._codec import Params
from jsonrpc_mini._errors import RPCError
from jsonrpc_mini._json import JsonCodec
from jsonrpc_mini._session import current_session

pytestmark = pytest.mark.timeout(60)

Calls = list[tuple[str, Params, bool]]


class Recorder:
    """A batch sender that records the calls and answers each request with its name and params."""

    def __init__(self) -> None:
        self.sent: list[Calls] = []

    def __call__(self, calls: Calls) -> list[Callable[[], Any]]:
        self.sent.append(list(calls))
        return [lambda n=n, p=p: (n, p) for n, p, notify in calls if not notify]


# -- client: queueing ---------------------------------------------------------------

SHAPES: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((), {}),
    ((1, 2), {}),
    ((None,), {}),
    (([1], {"a": 1}), {}),
    ((), {"a": 1, "method": "x", "self": "y"}),
    (("测试项",), {"kw1": "1"}),
    ((1, 2), {"x": 3}),
]


@pytest.mark.parametrize(("args", "kwargs"), SHAPES)
def test_an_attribute_call_queues_what_call_queues(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    by_attribute, by_call = Recorder(), Recorder()
    with BatchBuilder(by_attribute) as b:
        first = b.m(*args, **kwargs)
        second = b.m(*args, **kwargs)  # the method kept from the first lookup
        dotted = b.calc.m(*args, **kwargs)
        b.notify("n", *args, **kwargs)
    with BatchBuilder(by_call) as b:
        b.call("m", *args, **kwargs)
        b.call("m", *args, **kwargs)
        b.call("calc.m", *args, **kwargs)
        b.notify("n", *args, **kwargs)
    assert by_attribute.sent == by_call.sent
    assert [r.method for r in (first, second, dotted)] == ["m", "m", "calc.m"]
    assert first.result() == second.result() == by_call.sent[0][0][:2]
    assert first is not second


def test_a_collision_queues_nothing_from_a_kept_method() -> None:
    b = BatchBuilder(Recorder())
    b.m(1)
    with pytest.raises(TypeError, match="collides"):
        b.m(1, **{"0": 2})
    assert len(b) == 1


def test_a_kept_method_refuses_once_the_batch_is_sent() -> None:
    sender = Recorder()
    b = BatchBuilder(sender)
    add = b.add
    add(1, 2)
    dotted = b.calc.add
    b.send()
    for late in (lambda: add(3, 4), lambda: b.add(5), lambda: dotted(1), lambda: b.other(1)):
        with pytest.raises(RPCError, match="already sent; start a new one"):
            late()
    assert len(b) == 1
    assert sender.sent == [[("add", [1, 2], False)]]


@pytest.mark.parametrize("name", ["func", "args", "keywords"])
def test_a_kept_method_s_attributes_are_remote_methods_whatever_their_name(name: str) -> None:
    # b.add is a functools.partial (speed); partial's own attributes must not hide
    # the remote methods of the same names.
    sender = Recorder()
    with BatchBuilder(sender) as b:
        b.calc(0)  # b.calc kept (the partial) before its attribute is asked
        result = getattr(b.calc, name)(1, 2)
        getattr(b, name)(3)
    assert sender.sent == [[("calc", [0], False), (f"calc.{name}", [1, 2], False), (name, [3], False)]]
    assert result.method == f"calc.{name}"
    assert result.result() == (f"calc.{name}", [1, 2])


def test_a_kept_method_passes_every_keyword_through_and_shows_its_name() -> None:
    sender = Recorder()
    with BatchBuilder(sender) as b:
        b.m(queued=1, method=2, self=3)
        b.m(4, queued=5)
    assert sender.sent == [[("m", {"queued": 1, "method": 2, "self": 3}, False), ("m", {"0": 4, "queued": 5}, False)]]
    assert repr(b.m) == "<remote method 'm'>"
    assert repr(b.m.x) == "<remote method 'm.x'>"


def test_private_names_are_never_kept_or_queued() -> None:
    b = BatchBuilder(Recorder())
    for name in ("_x", "__deepcopy__", "_queued_"):
        with pytest.raises(AttributeError):
            getattr(b, name)
    with pytest.raises(AttributeError):
        b.add._private  # noqa: B018
    assert len(b) == 0
    assert not {"_x", "__deepcopy__", "_queued_"} & set(vars(b))


class Settled:
    """An outcome object (as the sync client's waiters are): ``outcome()`` gives the result or raises."""

    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value, self.error, self.asked = value, error, 0

    def outcome(self) -> Any:
        self.asked += 1
        if self.error is not None:
            raise self.error
        return self.value


def test_a_sender_may_answer_with_outcome_objects() -> None:
    boom = InvalidParams("bad")
    answers = [Settled(1), Settled(error=boom), Settled([2])]
    b = BatchBuilder(lambda calls: answers)
    one, bad, two = b.a(), b.b(), b.c()
    b.notify("n")
    assert b.send() == [one, bad, two]
    assert (one.result(), two.result(), one.result()) == (1, [2], 1)
    with pytest.raises(InvalidParams) as info:
        bad.result()
    assert info.value is boom
    assert [a.asked for a in answers] == [2, 1, 1]
    short = BatchBuilder(lambda calls: answers[:1])
    short.a()
    short.b()
    with pytest.raises(ValueError):  # one answer per request, as with callables
        short.send()


def test_a_builder_with_kept_methods_is_freed_without_the_garbage_collector() -> None:
    # A method kept on the builder must not refer back to it: a cycle would keep the
    # builder, and through its sender the client and its connection, until gc runs.
    gc.disable()
    try:
        b = BatchBuilder(Recorder())
        b.add(1, 2)
        b.calc.mul(3)
        b.add(2, 3)
        alive = weakref.ref(b)
        del b
        assert alive() is None
    finally:
        gc.enable()


# -- server: members run from their JSON objects ---------------------------------------


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


def call(method: Any, params: Any = None, id_: Any = 1) -> dict[str, Any]:
    member: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": id_}
    if params is not None:
        member["params"] = params
    return member


def note(method: Any, params: Any = None) -> dict[str, Any]:
    member: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        member["params"] = params
    return member


async def twice(x: int) -> int:
    return 2 * x


def make_server(use_orjson: bool) -> tuple[RPCServer, list[Any]]:
    noted: list[Any] = []
    # One call at a time per connection: the oracle (``alone``) pipelines each member
    # with a marker call and reads replies up to the marker's, so the two must be
    # answered in order. With calls run concurrently a slow member (the async one,
    # on a loaded machine) could be answered after the marker and be taken for the
    # next member's reply (a batch counts as one call: this does not touch it).
    s = RPCServer(max_concurrent_calls=1)
    s.codec = JsonCodec(use_orjson=use_orjson)
    s.register_function(lambda a, b: a + b, name="add")
    s.register_function(lambda *args, **kwargs: [list(args), kwargs], name="echo")
    s.register_function(noted.append, name="note")
    s.register_function(lambda: list(noted), name="seen")
    s.register_function(twice, name="twice")
    s.register_function(lambda: {1, 2}, name="aset")

    def fails() -> None:
        raise InvalidParams("no good", {"why": [1]})

    def crash() -> None:
        raise ValueError("secret detail")

    s.register_function(fails)
    s.register_function(crash)
    return s, noted


# Every kind of member: valid calls with every kind of id (duplicates too), params
# of every shape, bad argument counts between good ones, handlers raising, an async
# handler, a result JSON cannot hold, notifications, and invalid members of each kind.
MEMBERS: list[Any] = [
    call("add", [1, 2], 1),
    call("add", [1], 2),
    call("add", [1, 2, 3], 3),
    call("add", [5, 6], 4),
    call("add", {"a": 1, "b": 2}, "s"),
    call("echo", {"0": 1, "b": 2}, 5),
    call("echo", {"1": 1, "b": 2}, 6),
    call("echo", None, 0),
    {"jsonrpc": "2.0", "method": "echo", "params": None, "id": 7},
    call("echo", [1], 2**70),
    call("echo", [1.5], 1.5),
    call("echo", [2], 1.0),
    call("echo", [], None),
    call("echo", ["first"], 9),
    call("echo", ["second"], 9),
    call("echo", ["x"], ""),
    note("note", ["n1"]),
    call("missing", None, 10),
    call("fails", None, 11),
    call("crash", None, 12),
    call("twice", [3], 13),
    call("aset", None, 14),
    call("add", [7, 8], 15),
    {"jsonrpc": "1.0", "method": "echo", "id": 16},
    {"method": "echo", "id": 17},
    call(5, None, 18),
    call("echo", "x", 19),
    call("echo", None, True),
    call("echo", None, {"a": 1}),
    note("echo", 3),
    1,
    "x",
    None,
    {},
    note("missing"),
    note("crash"),
    note("note", {"0": "n2"}),
    {"jsonrpc": "2.0", "id": 20, "method": "echo", "params": [[1]], "extra": 1},
    # Invalid in one field only, with array params (as the fast path's members have):
    {"jsonrpc": "1.0", "method": "echo", "params": [1], "id": 21},
    {"jsonrpc": 2.0, "method": "echo", "params": [1], "id": 22},
    call(5, [1], 23),
    call("echo", [1], True),
    call("echo", [1], [24]),
    call("echo", [1], 25.5),
]


def alone(peer: Peer, member: Any, n: int) -> list[Any]:
    """What the server answers ``member`` sent on its own (zero or one reply)."""
    peer.sendall(json.dumps(member).encode() + b"\n" + json.dumps(call("echo", None, f"sync{n}")).encode() + b"\n")
    replies = []
    while (reply := peer.json_line()).get("id") != f"sync{n}":
        replies.append(reply)
    return replies


@pytest.mark.parametrize("use_orjson", CODECS, ids=["stdlib", "orjson"][: len(CODECS)])
def test_each_member_of_a_batch_gets_the_reply_it_gets_alone(use_orjson: bool) -> None:
    s, noted = make_server(use_orjson)
    with serving(s) as address, raw_connect(address) as peer:
        expected = [reply for n, member in enumerate(MEMBERS) for reply in alone(peer, member, n)]
        assert noted == ["n1", "n2"]
        peer.sendall(json.dumps(MEMBERS).encode() + b"\n")
        got = peer.json_line()
        assert noted == ["n1", "n2", "n1", "n2"]
    assert got == expected
    # Spot checks that the oracle itself is what the specification asks for.
    by_id = [(r["id"], r.get("result", r.get("error", {}).get("code"))) for r in got]
    assert by_id[:5] == [(1, 3), (2, -32602), (3, -32602), (4, 11), ("s", 3)]
    assert (2**70, [[1], {}]) in by_id and (1.5, [[1.5], {}]) in by_id and (0, [[], {}]) in by_id
    assert [r for r in by_id if r[0] == 9] == [(9, [["first"], {}]), (9, [["second"], {}])]
    assert (13, 6) in by_id and (14, -32603) in by_id and (12, -32603) in by_id
    assert sum(1 for r in got if r["id"] is None and r.get("error", {}).get("code") == -32600) == 9
    assert [r for r in by_id if r[0] in (21, 22, 23)] == [(21, -32600), (22, -32600), (23, -32600)]
    assert (25.5, [[1], {}]) in by_id
    assert next(r for r in got if r["id"] == 11)["error"] == {
        "code": -32602,
        "message": "no good",
        "data": {"why": [1]},
    }
    assert "secret" not in json.dumps(got)
    assert len(got) == len(MEMBERS) - 4  # the four valid notifications get nothing


def test_members_run_in_order_and_an_array_member_is_invalid() -> None:
    s, _ = make_server(False)
    batch = [note("note", ["a"]), call("seen", None, 1), note("note", ["b"]), call("seen", [], 2), [call("seen")]]
    with serving(s) as address, raw_connect(address) as peer:
        peer.sendall(json.dumps(batch).encode() + b"\n")
        got = peer.json_line()
    assert got == [
        {"jsonrpc": "2.0", "id": 1, "result": ["a"]},
        {"jsonrpc": "2.0", "id": 2, "result": ["a", "b"]},
        {
            "jsonrpc": "2.0",
            "id": None,
            "error": {"code": -32600, "message": "Invalid Request: expected an object, got an array"},
        },
    ]


def test_a_method_registered_again_during_a_batch_is_used_from_then_on() -> None:
    s, _ = make_server(False)

    def swap() -> str:
        s.register_function(lambda a, b: a * b, name="add")
        return "swapped"

    s.register_function(swap)
    batch = [call("add", [3, 4], 1), call("swap", None, 2), call("add", [3, 4], 3), call("add", [3], 4)]
    with serving(s) as address, raw_connect(address) as peer:
        peer.sendall(json.dumps(batch).encode() + b"\n")
        got = peer.json_line()
    assert [r.get("result", r.get("error", {}).get("code")) for r in got] == [7, "swapped", 12, -32602]


def test_members_after_a_drain_get_the_shutting_down_error() -> None:
    # Draining is looked at for each member: the calls after it are refused, the
    # notifications still run (as for calls that arrive on their own).
    s, noted = make_server(False)
    drained = threading.Event()

    def drain() -> str:
        session = current_session()
        assert session is not None
        session.drain()
        drained.set()
        return "draining"

    s.register_function(drain)
    batch = [call("add", [1, 2], 1), call("drain", None, 2), call("add", [1, 2], 3), note("note", ["late"])]
    with serving(s) as address, raw_connect(address) as peer:
        peer.sendall(json.dumps(batch).encode() + b"\n")
        got = peer.json_line()
    assert drained.wait(WAIT)
    assert got[:2] == [{"jsonrpc": "2.0", "id": 1, "result": 3}, {"jsonrpc": "2.0", "id": 2, "result": "draining"}]
    assert got[2]["id"] == 3 and got[2]["error"]["code"] == -32000
    assert len(got) == 3
    assert noted == ["late"]


# -- client: a batch against a scripted server --------------------------------------


def answer(member: dict[str, Any]) -> dict[str, Any]:
    """The reply a scripted server gives: add's sum, or an error for anything else."""
    if member["method"] == "add":
        return {"jsonrpc": "2.0", "id": member["id"], "result": sum(member["params"])}
    return {
        "jsonrpc": "2.0",
        "id": member["id"],
        "error": {"code": -32001, "message": "nope", "data": member["method"]},
    }


def outcome(result: Any) -> Any:
    try:
        return result.result()
    except Exception as exc:
        return exc


def run_batch(script: Any, timeout: float = WAIT) -> tuple[list[Any], list[Any]]:
    """Send the standard batch to ``script``; the results' outcomes and what the script read."""
    seen: list[Any] = []

    def serve(peer: Peer) -> None:
        batch = peer.json_line()
        seen.append(batch)
        script(peer, [m for m in batch if "id" in m])

    with FakeServer(serve) as fake, RPCClient(*fake.address, timeout=timeout) as c:
        with c.batch() as b:
            results = [b.add(1, 2), b.other(), b.add(3, 4)]
            b.notify("note", "x")
            results.append(b.add(5, 6))
        outcomes = [outcome(r) for r in results]
    assert not fake.errors
    return outcomes, seen


def test_the_batch_on_the_wire_numbers_only_its_requests() -> None:
    outcomes, seen = run_batch(
        lambda peer, calls: peer.sendall(json.dumps([answer(m) for m in calls]).encode() + b"\n")
    )
    (batch,) = seen
    assert [m.get("id") for m in batch] == [1, 2, 3, None, 4]
    assert batch[3] == {"jsonrpc": "2.0", "method": "note", "params": ["x"]}
    assert batch[1] == {"jsonrpc": "2.0", "method": "other", "id": 2}
    assert outcomes[0] == 3 and outcomes[2] == 7 and outcomes[3] == 11
    assert isinstance(outcomes[1], ServerError)
    assert (outcomes[1].code, outcomes[1].data, outcomes[1].method) == (-32001, "other", "other")


@pytest.mark.parametrize("how", ["reversed", "one line each", "split arrays", "byte by byte"])
def test_replies_in_any_order_and_shape_reach_their_members(how: str) -> None:
    def script(peer: Peer, calls: list[Any]) -> None:
        replies = [answer(m) for m in reversed(calls)]
        if how == "reversed":
            peer.sendall(json.dumps(replies).encode() + b"\n")
        elif how == "one line each":
            peer.sendall(b"".join(json.dumps(r).encode() + b"\n" for r in replies))
        elif how == "split arrays":
            peer.sendall(json.dumps(replies[:1]).encode() + b"\n" + json.dumps(replies[1:]).encode() + b"\n")
        else:
            for byte in json.dumps(replies).encode() + b"\n":
                peer.sendall(bytes([byte]))

    outcomes, _ = run_batch(script)
    if how == "split arrays":  # one array answers a whole batch: the members the first one leaves out fail at once
        assert outcomes[3] == 11
        assert all(type(o) is RPCError and "no response for this call" in str(o) for o in outcomes[:3]), outcomes
        return
    assert [outcomes[0], outcomes[2], outcomes[3]] == [3, 7, 11]
    assert isinstance(outcomes[1], ServerError)


def test_a_member_missing_from_the_reply_fails_alone_and_unknown_ids_are_dropped() -> None:
    def script(peer: Peer, calls: list[Any]) -> None:
        replies = [answer(m) for m in calls if m["id"] != 3]
        replies.insert(1, {"jsonrpc": "2.0", "id": 99, "result": "for nobody"})
        peer.sendall(json.dumps(replies).encode() + b"\n")
        peer.to_eof()

    outcomes, _ = run_batch(script)  # (member 3 fails once the array is in, long before the timeout)
    assert outcomes[0] == 3 and outcomes[3] == 11
    assert isinstance(outcomes[1], ServerError)
    assert type(outcomes[2]) is RPCError and "no response for this call (id 3)" in str(outcomes[2])


def test_duplicate_reply_ids_settle_the_member_once() -> None:
    def script(peer: Peer, calls: list[Any]) -> None:
        replies = [answer(m) for m in calls]
        replies.insert(1, {"jsonrpc": "2.0", "id": 1, "result": "second answer"})
        peer.sendall(json.dumps(replies).encode() + b"\n")

    outcomes, _ = run_batch(script)
    assert [outcomes[0], outcomes[2], outcomes[3]] == [3, 7, 11]


def test_the_connection_lost_mid_batch_fails_the_unanswered_members() -> None:
    def script(peer: Peer, calls: list[Any]) -> None:
        first = json.dumps(answer(calls[0])).encode() + b"\n"
        peer.sendall(first + json.dumps(answer(calls[1])).encode()[:10])
        peer.close()

    outcomes, _ = run_batch(script)
    assert outcomes[0] == 3
    assert all(isinstance(o, ConnectionLost) for o in outcomes[1:]), outcomes
    assert [o.method for o in outcomes[1:]] == ["other", "add", "add"]


def test_an_error_for_the_whole_batch_with_id_null_reaches_nobody() -> None:
    # The server could not read the batch: an error with id null matches no member
    # (several are pending), so each times out.
    def script(peer: Peer, calls: list[Any]) -> None:
        peer.sendall(b'{"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "Parse error"}}\n')
        peer.to_eof()

    outcomes, _ = run_batch(script, timeout=0.3)
    assert all(isinstance(o, RPCTimeout) for o in outcomes), outcomes


def test_a_batch_against_a_real_server_with_errors_between_successes() -> None:
    s, noted = make_server(True)
    with serving(s) as address, RPCClient(*address, timeout=WAIT) as c:
        with c.batch() as b:
            results = [b.add(i, 1) for i in range(300)]
            bad = b.add(1)
            b.notify("note", "n")
            missing = b.nope()
            results.append(b.add(a=1, b=2))
            results.append(b.twice(21))
        assert [r.result() for r in results] == [*range(1, 301), 3, 42]
        with pytest.raises(InvalidParams):
            bad.result()
        with pytest.raises(MethodNotFound, match="nope"):
            missing.result()
        assert noted == ["n"]
        with c.batch() as b:
            b.notify("note", "only notifications: nothing to wait for")
        assert c.add(1, 1) == 2
