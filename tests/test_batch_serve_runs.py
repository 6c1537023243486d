"""The sync server's batch path (``_batch_serve``): runs of the usual member, and what breaks them.

A member that is a valid call of a method with a fixed number of positional
arguments runs straight from its JSON object; a batch whose members all succeed
with integer results is written without reply objects
(``ServerConnection.encode_int_results``). Whatever sits between such members
(notifications, invalid members, errors, other ids, other methods) must get the
reply it gets on its own, and the written bytes must be those of the replies'
JSON objects.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from _driver_helpers import CODEC_IDS, CODECS, LeakCheck, Peer, raw_connect, serving

from jsonrpc_mini import InvalidParams, RPCServer, _batch_serve
from jsonrpc_mini._codec import decoded_keys
from jsonrpc_mini._framing import encode_frame
from jsonrpc_mini._json import JsonCodec
from jsonrpc_mini._protocol import ServerConnection
from jsonrpc_mini._session import Session

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


def call(method: str, params: Any, id_: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params, "id": id_}


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def make_server(use_orjson: bool) -> tuple[RPCServer, list[Any]]:
    noted: list[Any] = []
    # One call at a time: the oracle (``alone``) reads replies up to its marker's.
    s = RPCServer(max_concurrent_calls=1)
    s.codec = JsonCodec(use_orjson=use_orjson)
    s.register_function(lambda a, b: a + b, name="add")
    s.register_function(lambda x: x, name="echo")
    s.register_function(noted.append, name="note")
    s.register_function(lambda: 10**5000, name="huge")  # an int no codec may write (4,300 digits at most)

    def fails(x: Any) -> None:
        raise InvalidParams("no good", {"x": x})

    def crash(x: Any) -> None:
        raise ValueError("secret detail")

    s.register_function(fails)
    s.register_function(crash)
    return s, noted


def alone(peer: Peer, member: Any, n: int) -> list[Any]:
    """What the server answers ``member`` sent on its own (zero or one reply)."""
    marker = {"jsonrpc": "2.0", "method": "echo", "params": [0], "id": f"sync{n}"}
    peer.sendall(compact(member) + b"\n" + compact(marker) + b"\n")
    replies = []
    while (reply := peer.json_line()).get("id") != f"sync{n}":
        replies.append(reply)
    return replies


def success(id_: Any, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "result": result}


@pytest.mark.parametrize("framing", ["newline", "content-length"])
@pytest.mark.parametrize("use_orjson", CODECS, ids=CODEC_IDS)
def test_integer_results_are_written_as_their_json_objects(use_orjson: bool, framing: str) -> None:
    s, _ = make_server(use_orjson)
    # Ids and results of every size: zero, negative, past 64 bits (orjson hands those
    # to the standard library), duplicates; string ids that need escapes; a float id
    # (its member takes the general path, its reply is kept as the others). Then the
    # same with a string id holding a comma (not split out: the replies' objects are
    # written instead).
    pairs: list[tuple[Any, tuple[int, int]]] = [(1, (2, 3)), (0, (-7, 2)), (-4, (2**70, 1)), (2**65, (0, 0))]
    pairs += [(1, (-(2**64), -1)), ("a", (1, 1)), ('q"\\\n\u2028é测', (2, 2)), ("", (3, 3)), (2.5, (5, 5))]
    pairs += [(i, (i, 1)) for i in range(10, 310)]
    with serving(s) as address, raw_connect(address) as peer:  # (the framing detected from the first bytes)
        for comma in (False, True):
            some = [*pairs, ("a,b", (4, 4))] if comma else pairs
            batch = compact([call("add", list(args), id_) for id_, args in some])
            expected = compact([success(id_, a + b) for id_, (a, b) in some])
            if framing == "content-length":
                peer.sendall(encode_frame(batch, "content-length"))
                frame = encode_frame(expected, "content-length")  # (the body ends with a newline: counted)
                assert peer.exactly(len(frame)) == frame
                continue
            for n in range(2):  # the first batch line is the framer's; the next one is read whole (_single_line)
                peer.sendall(batch + b"\n")
                assert peer.until(b"\n") == expected + b"\n", (comma, n)


@pytest.mark.parametrize("use_orjson", CODECS, ids=CODEC_IDS)
@pytest.mark.parametrize("general", [False, True], ids=["usual", "general"])
def test_a_success_that_is_no_int_keeps_the_batch_from_the_int_writer(use_orjson: bool, general: bool) -> None:
    s, _ = make_server(use_orjson)
    # A string with a comma could not be woven into the int writer's text. Object
    # params take the general path (_other_member), array params the usual one.
    odd = call("echo", {"x": "a,b"}, 2) if general else call("add", ["a,", "b"], 2)
    batch = [call("add", [1, 2], 1), odd, call("add", [3, 4], 3)]
    with serving(s) as address, raw_connect(address) as peer:
        peer.sendall(compact(batch) + b"\n")
        assert peer.until(b"\n") == compact([success(1, 3), success(2, "a,b"), success(3, 7)]) + b"\n"


@pytest.mark.parametrize("framing", ["newline", "content-length"])
def test_the_int_writer_writes_what_encode_replies_writes(framing: str) -> None:
    proto = ServerConnection(framing=framing)  # type: ignore[arg-type]
    cases: list[tuple[list[Any], list[int]]] = [
        ([5], [6]),
        ([1, 2, 3], [-1, 0, 2**64]),
        ([2**80, 7], [3, 2**90]),
        (["x", 1, ""], [1, 2, 3]),
        (["a,b", "c"], [1, 2]),  # a comma in an id: not split out
        ([1.5, None, 1e300, -0.0], [1, 2, 3, 4]),  # ids the general path answers
        (["\ud800", "é"], [1, 2]),  # a lone surrogate: the standard library writes every id, escaped
        ([1, 2], [3, 10**5000]),  # no codec writes that: -32603
    ]
    for ids, results in cases:
        replies = [success(i, r) for i, r in zip(ids, results, strict=True)]
        assert proto.encode_int_results(ids, results) == proto.encode_replies(replies), (ids, results)


@pytest.mark.parametrize("use_orjson", CODECS, ids=CODEC_IDS)
def test_an_integer_too_long_to_write_fails_its_own_member_only(use_orjson: bool) -> None:
    s, _ = make_server(use_orjson)
    batch = [call("add", [1, 2], 1), call("huge", [], 2), call("add", [3, 4], 3)]
    with serving(s) as address, raw_connect(address) as peer:
        peer.sendall(compact(batch) + b"\n")
        got = peer.json_line()
        assert alone(peer, batch[1], 0) == [got[1]]
    assert got[0] == success(1, 3) and got[2] == success(3, 7)
    assert got[1]["id"] == 2 and got[1]["error"]["code"] == -32603


def run_of(method: str, first: int, count: int) -> list[Any]:
    return [call(method, [i, 1], i) for i in range(first, first + count)]


# Runs of the usual member (add with two arguments, integer ids) broken by members of
# every other kind: each must get what it gets alone, and the run on both sides too.
BETWEEN: list[Any] = [
    {"jsonrpc": "2.0", "method": "note", "params": ["n1"]},  # a notification of a usual method
    {"jsonrpc": "1.0", "method": "add", "params": [1, 2], "id": 901},  # invalid in one field only
    {"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": True},
    {"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": [902]},
    {"jsonrpc": "2.0", "method": 5, "params": [1, 2], "id": 903},
    {"jsonrpc": "2.0", "method": ["add"], "params": [1, 2], "id": 904},
    {"jsonrpc": "2.0", "method": "add", "params": "12", "id": 905},
    call("add", [1], 906),  # too few arguments: -32602
    call("add", [1, 2, 3], 907),  # too many
    call("add", {"a": 1, "b": 2}, 908),  # object params
    call("missing", [1, 2], 909),
    call("fails", [1], 910),  # the handler's own InvalidParams
    call("crash", [1], 911),  # -32603, no detail
    call("add", [1.5, 1], 912),  # a float result
    call("add", ["a", "b"], 913),  # a string result
    call("add", [1, 2], "s"),  # a string id
    call("add", [1, 2], 2.5),  # a float id: the general path's
    call("add", [1, 2], None),
    call("add", [1, 2], 21),  # an id a run uses too (the run before the member at index 2)
    {"jsonrpc": "2.0", "method": "add", "id": 915},  # no params
    {"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": 916, "extra": [1]},
    1,
    None,
]


@pytest.mark.parametrize("use_orjson", CODECS, ids=CODEC_IDS)
def test_members_between_runs_get_the_reply_they_get_alone(use_orjson: bool) -> None:
    s, noted = make_server(use_orjson)
    batch: list[Any] = []
    for n, member in enumerate(BETWEEN):
        batch += run_of("add", 10 * n, 3)
        batch.append(member)
    batch += run_of("add", 1000, 3)
    with serving(s) as address, raw_connect(address) as peer:
        expected = [reply for n, member in enumerate(batch) for reply in alone(peer, member, n)]
        assert noted == ["n1"]
        peer.sendall(compact(batch) + b"\n")
        got = peer.json_line()
    assert noted == ["n1", "n1"]
    assert got == expected
    # Spot checks of the oracle itself.
    by_id = {(r["id"] if not isinstance(r["id"], list) else None): r for r in got}
    assert by_id[906]["error"]["code"] == by_id[907]["error"]["code"] == -32602
    assert by_id[910]["error"] == {"code": -32602, "message": "no good", "data": {"x": 1}}
    assert by_id[911]["error"]["code"] == -32603 and "secret" not in json.dumps(got)
    assert by_id[901]["error"]["code"] == -32600
    assert (by_id[912]["result"], by_id[913]["result"], by_id["s"]["result"], by_id[2.5]["result"]) == (2.5, "ab", 3, 3)
    assert [r["result"] for r in got if r["id"] == 21] == [22, 3]
    assert len(got) == len(batch) - 1  # the notification gets nothing


@pytest.mark.parametrize("use_orjson", CODECS, ids=CODEC_IDS)
def test_a_run_that_is_all_notifications_or_errors_answers_as_it_should(use_orjson: bool) -> None:
    s, noted = make_server(use_orjson)
    notes = [{"jsonrpc": "2.0", "method": "note", "params": [i]} for i in range(5)]
    crashes = [call("crash", [i], i) for i in range(5)]
    with serving(s) as address, raw_connect(address) as peer:
        peer.sendall(compact(notes) + b"\n" + compact(crashes) + b"\n")
        got = peer.json_line()
        assert alone(peer, call("add", [1, 2], 0), 0) == [success(0, 3)]  # nothing came for the notifications
    assert noted == [0, 1, 2, 3, 4]
    assert [(r["id"], r["error"]["code"]) for r in got] == [(i, -32603) for i in range(5)]


def test_every_count_of_arguments_reaches_its_parameters_in_order() -> None:
    # The usual member's call passes one or two arguments one by one, any other count
    # as *params (see batch_reply): each must bind exactly as the general path binds
    # it, in order, defaults and *args included; results of every kind, and ints
    # only (the int writer's batch).
    s = RPCServer(max_concurrent_calls=1)
    s.register_function(lambda x: x, name="echo")  # (the oracle's marker)
    s.register_function(lambda: "none", name="none")
    s.register_function(lambda x: ["one", x], name="one")
    s.register_function(lambda a, b: a - b, name="sub")  # (not symmetric: the order shows)
    s.register_function(lambda a, b=10: ["pair", a, b], name="pair")
    s.register_function(lambda a, b, c: [a, b, c], name="three")
    s.register_function(lambda *args: list(args), name="many")
    mixed = [
        call("none", [], 1),
        call("one", [7], 2),
        call("sub", [10, 3], 3),
        call("pair", [5], 4),
        call("pair", [5, 6], 5),
        call("three", [1, 2, 3], 6),
        call("many", [], 7),
        call("many", [1], 8),
        call("many", [1, 2], 9),
        call("many", [1, 2, 3, 4, 5], 10),
        call("sub", [1, 2, 3], 11),  # too many: the general path's -32602
        call("one", [], 12),  # too few
    ]
    ints = [call("sub", [i, 2 * i + 1], i) for i in range(50)]
    with serving(s) as address, raw_connect(address) as peer:
        expected = [reply for n, member in enumerate(mixed) for reply in alone(peer, member, n)]
        peer.sendall(compact(mixed) + b"\n")
        assert peer.json_line() == expected
        peer.sendall(compact(ints) + b"\n")
        assert peer.json_line() == [success(i, -i - 1) for i in range(50)]
    assert [r.get("result") for r in expected[:10]] == [
        "none",
        ["one", 7],
        7,
        ["pair", 5, 10],
        ["pair", 5, 6],
        [1, 2, 3],
        [],
        [1],
        [1, 2],
        [1, 2, 3, 4, 5],
    ]
    assert [r["error"]["code"] for r in expected[10:]] == [-32602, -32602]


# -- the members' keys --------------------------------------------------------------

FIRSTS: list[Any] = [
    1,
    None,
    "params",
    [call("add", [1, 2], 0)],
    {},
    {"jsonrpc": "2.0", "method": "note", "params": ["n"]},  # no id
    {"jsonrpc": "2.0", "method": "add", "id": 0},  # no params
    {"id": 0, "params": [1, 2]},  # neither jsonrpc nor method
    call("add", [1, 2], 0) | {"extra": {"params": 1}},  # a usual member itself: runs directly too
]


@pytest.mark.parametrize("use_orjson", CODECS, ids=CODEC_IDS)
@pytest.mark.parametrize("first", FIRSTS)
def test_usual_members_run_directly_whatever_the_first_member_holds(
    use_orjson: bool, first: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # batch_reply looks the usual member's keys up with the first member's own key
    # objects (decoded_keys): a first member that is no object, or lacks some keys,
    # must leave the literals for those, so the other members still run directly.
    s, _ = make_server(use_orjson)
    session = Session(s, None, lambda _: None, "keys")  # type: ignore[arg-type]  # (never serves: no transport)
    others: list[Any] = []
    general = _batch_serve._other_member

    def counted(session: Any, value: Any, debug: bool) -> Any:
        others.append(value)
        return general(session, value, debug)

    monkeypatch.setattr(_batch_serve, "_other_member", counted)
    values = s.codec.loads(compact([first, *run_of("add", 1, 5)]))
    reply = json.loads(_batch_serve.batch_reply(session, values) or b"null")
    assert others == ([] if first is FIRSTS[-1] else [values[0]])
    assert reply[-5:] == [success(i, i + 1) for i in range(1, 6)]
    assert _batch_serve.batch_reply(session, []) is None  # (no first member: nothing to take keys from)


@pytest.mark.parametrize("use_orjson", CODECS, ids=CODEC_IDS)
def test_the_member_keys_are_the_decoded_objects_themselves(use_orjson: bool) -> None:
    first = JsonCodec(use_orjson=use_orjson).loads(compact(call("add", [1, 2], 3)))
    keys = decoded_keys(first, _batch_serve._KEYS)
    assert keys == ("params", "id", "jsonrpc", "method")
    assert [next(own for own in first if own is key) for key in keys] == list(keys)  # (StopIteration: a copy)
    partial = decoded_keys({"id": 1}, _batch_serve._KEYS)
    assert partial == ("params", "id", "jsonrpc", "method") and partial[1] is next(iter({"id": 1}))
