"""A sync client's batch is pending as one entry until something concerns single members.

The usual reply, an array answering the batch whole and in order, reaches the
core as one BatchAnswer and is stored in the members in one step
(ReplySettler._take_answer). Anything else (a member answered alone, an unusable
member, an error with id null) first puts the members in ``pending`` one by one
(ReplySettler._expand). These tests pin each way down by what the caller gets:
every member its own result or error (naming its method), nothing left pending.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from _driver_helpers import WAIT, FakeServer, Peer
from hypothesis import given
from hypothesis import strategies as st

from jsonrpc_mini import (
    ConnectionLost,
    InvalidRequest,
    MethodNotFound,
    RPCClient,
    RPCError,
    RPCTimeout,
    _client_settle,
    aio,
)
from jsonrpc_mini._client_protocol import BatchAnswer, ClientConnection
from jsonrpc_mini._codec import decoded_keys
from jsonrpc_mini._framing import encode_frame
from jsonrpc_mini._protocol import Violation

pytestmark = pytest.mark.timeout(60)

_FRAMINGS = ["newline", "content-length"]  # content-length: the framer's way (next_reply, _settle_answer)


def ok(id_: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "result": f"r{id_}"}


def missing(id_: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "error": {"code": -32601, "message": "Method not found"}}


def _read(peer: Peer, framing: str) -> Any:
    if framing == "content-length":
        header = peer.until(b"\r\n\r\n")
        return json.loads(peer.exactly(int(header.split(b":")[1].split(b"\r")[0])))
    return peer.json_line()


def _send(peer: Peer, framing: str, value: Any) -> None:
    data = json.dumps(value, separators=(",", ":")).encode()
    peer.sendall(encode_frame(data, "content-length") if framing == "content-length" else data + b"\n")


def _answer(reply: Any, framing: str = "newline") -> Any:
    """A script: read a batch, send ``reply(calls)`` (a value, or a tuple of values in turn), then answer a call."""

    def script(peer: Peer) -> None:
        calls = [member for member in _read(peer, framing) if "id" in member]
        replies = reply(calls)
        for value in replies if isinstance(replies, tuple) else (replies,):
            _send(peer, framing, value)
        single = _read(peer, framing)
        _send(peer, framing, {"jsonrpc": "2.0", "id": single["id"], "result": "next"})
        peer.to_eof()

    return script


def _batch(c: RPCClient) -> list[Any]:
    with c.batch() as b:
        results = [b.f(), b.g(), b.h()]
        b.notify("log", "x")
    return results


def _idle(c: RPCClient) -> None:
    link = c._link
    assert link is not None and not link.pending and not link.batch_waiters and not link.reading
    assert c.after() == "next"  # the connection stays usable


@pytest.mark.parametrize("framing", _FRAMINGS)
def test_a_whole_array_in_order_gives_each_member_its_result_or_error(framing: str) -> None:
    def reply(calls: list[Any]) -> Any:
        return [ok(calls[0]["id"]), missing(calls[1]["id"]), ok(calls[2]["id"])]

    with FakeServer(_answer(reply, framing)) as fake, RPCClient(*fake.address, timeout=WAIT, framing=framing) as c:  # type: ignore[arg-type]
        f, g, h = _batch(c)
        assert f.result() == f"r{f.id}" and h.result() == f"r{h.id}"
        with pytest.raises(MethodNotFound) as info:
            g.result()
        assert info.value.method == "g"
        _idle(c)
    assert not fake.errors


@pytest.mark.parametrize("framing", _FRAMINGS)
@pytest.mark.parametrize("bad", [0, 1, 2])
def test_an_unusable_member_in_an_array_in_order_fails_alone(framing: str, bad: int) -> None:
    def reply(calls: list[Any]) -> Any:
        members = [ok(call["id"]) for call in calls]
        members[bad]["jsonrpc"] = "1.0"  # no valid response: a Violation naming the member
        return members

    with FakeServer(_answer(reply, framing)) as fake, RPCClient(*fake.address, timeout=WAIT, framing=framing) as c:  # type: ignore[arg-type]
        results = _batch(c)
        for index, member in enumerate(results):
            if index == bad:
                with pytest.raises(RPCError, match=r"not a JSON-RPC 2\.0 response") as info:
                    member.result()
                assert info.value.code is None and info.value.method == member.method
            else:
                assert member.result() == f"r{member.id}"
        _idle(c)
    assert not fake.errors


@pytest.mark.parametrize("framing", _FRAMINGS)
@pytest.mark.parametrize("shape", ["reversed", "last two swapped", "an id twice", "an id of nobody's"])
def test_an_array_as_long_as_the_batch_not_in_its_order_goes_member_by_member(framing: str, shape: str) -> None:
    # The core hands such an array on whole without looking at its ids; the quick
    # loop stops at the first id that is not its member's (after storing the members
    # before it), and the rest goes the general way: each member gets its own reply,
    # a member the array leaves out fails at once.
    def reply(calls: list[Any]) -> Any:
        ids = [call["id"] for call in calls]
        if shape == "reversed":
            ids.reverse()
        elif shape == "last two swapped":
            ids[1], ids[2] = ids[2], ids[1]
        elif shape == "an id twice":
            ids[1] = ids[0]
        else:
            ids[1] = 999
        return [ok(id_) for id_ in ids]

    with FakeServer(_answer(reply, framing)) as fake, RPCClient(*fake.address, timeout=WAIT, framing=framing) as c:  # type: ignore[arg-type]
        f, g, h = _batch(c)
        assert f.result() == f"r{f.id}" and h.result() == f"r{h.id}"
        if shape in ("reversed", "last two swapped"):
            assert g.result() == f"r{g.id}"
        else:
            with pytest.raises(RPCError, match="has no response for this call") as info:
                g.result()
            assert info.value.method == "g"
        _idle(c)
    assert not fake.errors


@pytest.mark.parametrize("order", ["in order", "reversed", "last first"])
def test_members_answered_one_by_one_each_get_their_reply(order: str) -> None:
    # No array: each member's reply alone (the first's id is the batch entry's key).
    def reply(calls: list[Any]) -> Any:
        replies = [ok(call["id"]) for call in calls]
        if order == "reversed":
            replies.reverse()
        elif order == "last first":
            replies.insert(0, replies.pop())
        return tuple(replies)

    with FakeServer(_answer(reply)) as fake, RPCClient(*fake.address, timeout=WAIT) as c:
        results = _batch(c)
        assert [r.result() for r in results] == [f"r{r.id}" for r in results]
        _idle(c)
    assert not fake.errors


class _Scripted:
    """A transport that answers what is sent with ``reply(calls)``: one read per line it gives."""

    def __init__(self, reply: Any) -> None:
        self.reply = reply
        self.reads: list[bytes] = []

    def send(self, data: bytes) -> None:
        calls = [member for member in json.loads(data) if "id" in member]
        self.reads += [json.dumps(value).encode() + b"\n" for value in self.reply(calls)]

    def recv(self, size: int, timeout: float | None) -> bytes:
        return self.reads.pop(0) if self.reads else b""

    def close(self) -> None:
        pass


@pytest.mark.parametrize("order", [[0, 1, 2], [2, 1, 0], [1, 0, 2]])
def test_members_answered_in_reads_of_their_own_each_get_their_reply(order: list[int]) -> None:
    # A read holding one member's reply alone is decoded as a lone reply (decode_line):
    # the first member's id is the batch entry's key, yet only that member gets it.
    c = RPCClient(transport=_Scripted(lambda calls: [ok(calls[index]["id"]) for index in order]))  # type: ignore[arg-type]
    results = _batch(c)
    assert [r.result() for r in results] == [f"r{r.id}" for r in results]
    link = c._link
    assert link is not None and not link.pending and not link.batch_waiters and not link.reading


@pytest.mark.parametrize("answer", ["whole", "cut short", "one by one", "nothing"])
def test_each_member_ends_with_the_id_its_request_carried(answer: str) -> None:
    # A member's id is set as the whole array's reply is stored, or else for all members
    # at once (_BatchWaiter.number: the batch expanded, or its caller returning).
    sent: list[Any] = []

    def reply(calls: list[Any]) -> list[Any]:
        sent.extend(call["id"] for call in calls)
        if answer == "whole":
            return [[ok(call["id"]) for call in calls]]
        if answer == "cut short":  # the quick loop stops at the error; the general one goes on
            return [[ok(calls[0]["id"]), missing(calls[1]["id"]), ok(calls[2]["id"])]]
        if answer == "one by one":  # the batch is expanded
            return [ok(call["id"]) for call in calls]
        return []  # the connection closes: every member fails

    c = RPCClient(transport=_Scripted(reply))  # type: ignore[arg-type]
    results = _batch(c)
    assert len(sent) == 3 and [r.id for r in results] == sent
    if answer == "nothing":
        with pytest.raises(ConnectionLost):
            results[0].result()
    else:
        assert results[0].result() == f"r{sent[0]}"


def test_an_error_without_id_before_the_array_is_no_members() -> None:
    # Two calls pending: an error with id null can be neither's (it is logged), and the array answers both.
    def reply(calls: list[Any]) -> Any:
        error = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Invalid Request"}}
        return error, [ok(call["id"]) for call in calls]

    with FakeServer(_answer(reply)) as fake, RPCClient(*fake.address, timeout=WAIT) as c:
        with c.batch() as b:
            first, second = b.f(), b.g()
        assert [first.result(), second.result()] == [f"r{first.id}", f"r{second.id}"]
        _idle(c)
    assert not fake.errors


def test_an_error_without_id_answering_a_batch_of_one_is_its_member() -> None:
    def reply(calls: list[Any]) -> Any:
        return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Invalid Request"}}

    with FakeServer(_answer(reply)) as fake, RPCClient(*fake.address, timeout=WAIT) as c:
        with c.batch() as b:
            only = b.f()
        with pytest.raises(InvalidRequest) as info:
            only.result()
        assert info.value.method == "f"
        _idle(c)
    assert not fake.errors


def test_a_lost_connection_fails_every_member_naming_its_method() -> None:
    def script(peer: Peer) -> None:
        peer.json_line()
        peer.close()

    with FakeServer(script) as fake, RPCClient(*fake.address, timeout=WAIT) as c:
        results = _batch(c)
        for member in results:
            with pytest.raises(ConnectionLost) as info:
                member.result()
            assert info.value.method == member.method and str(info.value).startswith(f"{member.method}: ")
        link = c._link
        assert link is not None and not link.pending and not link.batch_waiters
    assert not fake.errors


def test_a_timeout_fails_every_member_naming_its_method() -> None:
    gate = threading.Event()

    def script(peer: Peer) -> None:
        peer.json_line()
        gate.wait(WAIT)

    with FakeServer(script) as fake, RPCClient(*fake.address, timeout=0.2) as c:
        try:
            results = _batch(c)
            for member in results:
                with pytest.raises(RPCTimeout) as info:
                    member.result()
                assert info.value.method == member.method
                assert str(info.value) == f"{member.method}: no reply within 0.2 s; a late reply will be dropped"
            link = c._link
            assert link is not None and not link.pending and not link.batch_waiters
        finally:
            gate.set()
    assert not fake.errors


class _Interrupting:
    """A transport whose read is cut by KeyboardInterrupt (as Ctrl-C in a blocking recv)."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def recv(self, size: int, timeout: float | None) -> bytes:
        raise KeyboardInterrupt

    def close(self) -> None:
        self.closed = True


def test_an_interrupted_wait_fails_every_member_naming_its_method() -> None:
    transport = _Interrupting()
    c = RPCClient(transport=transport)  # type: ignore[arg-type]
    with pytest.raises(KeyboardInterrupt), c.batch() as b:
        results = [b.f(), b.g()]
    assert len(transport.sent) == 1
    for member in results:
        with pytest.raises(RPCError, match="interrupted before its reply came") as info:
            member.result()
        assert info.value.method == member.method
    link = c._link
    assert link is not None and not link.pending and not link.batch_waiters and not link.reading


def test_a_single_call_s_reader_hands_the_batch_its_array() -> None:
    # Another thread's call is in flight while the batch waits: whichever reads gets both replies right.
    def script(peer: Peer) -> None:
        first, second = peer.json_line(), peer.json_line()
        batch, single = (first, second) if isinstance(first, list) else (second, first)
        peer.sendall(json.dumps([ok(call["id"]) for call in batch]).encode() + b"\n")
        peer.sendall(json.dumps({"jsonrpc": "2.0", "id": single["id"], "result": "single"}).encode() + b"\n")
        peer.to_eof()

    with FakeServer(script) as fake, RPCClient(*fake.address, timeout=WAIT) as c:
        got: dict[str, Any] = {}
        started = threading.Barrier(2, timeout=WAIT)

        def single() -> None:
            started.wait()
            got["single"] = c.s()

        thread = threading.Thread(target=single, daemon=True)
        thread.start()
        started.wait()
        with c.batch() as b:
            results = [b.f(i) for i in range(5)]
        thread.join(WAIT)
        assert not thread.is_alive() and got["single"] == "single"
        assert [r.result() for r in results] == [f"r{r.id}" for r in results]
        link = c._link
        assert link is not None and not link.pending and not link.batch_waiters
    assert not fake.errors


# -- the quick loop of _take_answer and the general loop it leaves members to ----------


def _outcomes(results: list[Any]) -> list[Any]:
    """What each member gives: its result, or its error's type, code, method and message."""
    got: list[Any] = []
    for member in results:
        try:
            got.append(("result", member.result()))
        except RPCError as exc:
            got.append((type(exc).__name__, exc.code, exc.method, str(exc)))
    return got


def _scripted_batch(reply: Any, count: int = 4) -> tuple[RPCClient, list[Any]]:
    c = RPCClient(transport=_Scripted(reply))  # type: ignore[arg-type]
    with c.batch() as b:
        results = [b.f(index) for index in range(count)]
    return c, results


# Members a plain success's quick test must not take, and what the general way makes of
# each: an error (an error wins over a result beside it), a violation failing that
# member alone (RPCError), or a success after all (a name more is tolerated).
_NOT_PLAIN: dict[str, tuple[Any, type[RPCError] | None]] = {
    "result and error": (lambda id_: {**ok(id_), "error": {"code": -32601, "message": "nope"}}, MethodNotFound),
    "a fourth name": (lambda id_: {**ok(id_), "extra": 1}, None),
    "no jsonrpc, three names": (lambda id_: {"id": id_, "result": 1, "extra": 1}, RPCError),
    "jsonrpc 2 as a number": (lambda id_: {"jsonrpc": 2.0, "id": id_, "result": 1}, RPCError),
    "jsonrpc 1.0": (lambda id_: {"jsonrpc": "1.0", "id": id_, "result": 1}, RPCError),
    "no result, three names": (lambda id_: {"jsonrpc": "2.0", "id": id_, "extra": 1}, RPCError),
    "an error": (missing, MethodNotFound),
    "two names": (lambda id_: {"jsonrpc": "2.0", "id": id_}, RPCError),
}


@pytest.mark.parametrize("shape", sorted(_NOT_PLAIN))
@pytest.mark.parametrize("bad", [0, 2, 3])
def test_a_member_that_is_no_plain_success_fails_alone_wherever_it_is(shape: str, bad: int) -> None:
    make, expected = _NOT_PLAIN[shape]

    def reply(calls: list[Any]) -> list[Any]:
        members = [ok(call["id"]) for call in calls]
        members[bad] = make(calls[bad]["id"])
        return [members]

    c, results = _scripted_batch(reply)
    for index, member in enumerate(results):
        if index != bad or expected is None:
            assert member.result() == f"r{member.id}"  # before and after it: the quick loop's and the general one's
            continue
        with pytest.raises(expected) as info:
            member.result()
        if expected is RPCError:
            assert info.value.code is None and "not a JSON-RPC 2.0 response" in str(info.value)
        assert info.value.method == "f"
    link = c._link
    assert link is not None and not link.pending and not link.batch_waiters and not link.reading


def test_plain_successes_of_any_result_are_taken_as_they_are() -> None:
    values: list[Any] = [None, False, 0, "", [1, [2]], {"result": {"error": 1}}, 1.5, "x" * 300]

    def reply(calls: list[Any]) -> list[Any]:
        return [[{**ok(call["id"]), "result": value} for call, value in zip(calls, values, strict=True)]]

    _, results = _scripted_batch(reply, len(values))
    got = [member.result() for member in results]
    assert got == values and [type(value) for value in got] == [type(value) for value in values]


_members = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2.0]),
        "result": st.one_of(st.none(), st.integers(), st.text(max_size=3), st.lists(st.booleans(), max_size=2)),
        "error": st.sampled_from([{"code": -32601, "message": "nope"}, {"code": 7, "message": "x", "data": [1]}, {}]),
        "extra": st.just(0),
    },
)


@given(st.lists(_members, min_size=1, max_size=5))
def test_a_whole_array_gives_each_member_what_its_reply_alone_gives(members: list[dict[str, Any]]) -> None:
    # The quick loop, then the general one from where it stops, against the general
    # way alone: each member sent as a reply line of its own (read one by one).
    def whole(calls: list[Any]) -> list[Any]:
        return [[{**member, "id": call["id"]} for call, member in zip(calls, members, strict=True)]]

    def alone(calls: list[Any]) -> list[Any]:
        return [{**member, "id": call["id"]} for call, member in zip(calls, members, strict=True)]

    outcomes = [_outcomes(_scripted_batch(reply, len(members))[1]) for reply in (whole, alone)]
    assert outcomes[0] == outcomes[1]


# -- the core --------------------------------------------------------------------------


def test_the_core_gives_a_whole_array_in_order_as_one_batch_answer() -> None:
    conn = ClientConnection()
    conn.whole_batches = True
    members = [ok(1), ok(2)]
    line = json.dumps(members).encode() + b"\n"
    conn.expect_batch([1, 2])
    (answer,), end = conn.decode_lines(line, 64)
    assert type(answer) is BatchAnswer and answer.first == 1 and answer.members == members and end == len(line)
    conn.expect_batch([3, 4])
    conn.receive_data(json.dumps([ok(3), ok(4)]).encode() + b"\n")
    answer = conn.next_reply()
    assert type(answer) is BatchAnswer and answer.first == 3 and conn.next_reply() is None
    # Out of order, short: the members, as without whole_batches (and the one left out).
    conn.expect_batch([5, 6, 7])
    values, _ = conn.decode_lines(json.dumps([ok(6), ok(5)]).encode() + b"\n", 64)
    assert values[:2] == [ok(6), ok(5)] and type(values[2]) is Violation and values[2].id == 7
    # next_event (the aio client's) refuses a BatchAnswer rather than hand it on.
    conn.expect_batch([8])
    conn.receive_data(json.dumps([ok(8)]).encode() + b"\n")
    with pytest.raises(TypeError, match="whole_batches"):
        conn.next_event()


def test_without_whole_batches_the_core_gives_members() -> None:
    conn = ClientConnection()
    conn.expect_batch([1, 2])
    values, _ = conn.decode_lines(json.dumps([ok(1), ok(2)]).encode() + b"\n", 64)
    assert values == [ok(1), ok(2)]


def test_the_quick_loop_looks_members_up_with_the_first_member_s_own_key_objects() -> None:
    # Speed (see _codec.decoded_keys): a lookup with the very key object the
    # dict holds skips comparing the strings. A decoder makes its own key objects,
    # not the interned literals.
    first = json.loads('{"jsonrpc": "2.0", "id": 1, "result": 2}')
    keys = decoded_keys(first, _client_settle._KEYS)
    assert keys == ("jsonrpc", "id", "result")
    assert all(any(key is own for own in first) for key in keys)
    # A first member that lacks a key (an error) keeps the literal for it; one that
    # is no object, all three.
    error = json.loads('{"jsonrpc": "2.0", "id": 1, "error": {"code": 1, "message": "m"}}')
    keys = decoded_keys(error, _client_settle._KEYS)
    assert keys == ("jsonrpc", "id", "result") and keys[2] is _client_settle._KEYS[2]
    assert decoded_keys([1], _client_settle._KEYS) is _client_settle._KEYS


def _true_for_call_1(rest: str) -> Any:
    """A reply script's ``reply``: the batch's replies with the id true for call 1 (and 999 for call 3)."""

    def reply(calls: list[Any]) -> Any:
        ids = [call["id"] for call in calls]
        assert ids[0] == 1
        if rest != "in order":
            ids[2] = 999
        return [ok(True), *map(ok, ids[1:])]

    return reply


@pytest.mark.parametrize("framing", _FRAMINGS)
@pytest.mark.parametrize("rest", ["in order", "a later id of nobody's"])
def test_a_member_with_the_id_true_is_no_reply_to_call_1(framing: str, rest: str) -> None:
    # JSON true equals 1 in Python: the batch holding call 1 (the client's first
    # request) took a member with the id true as call 1's reply, or (f230169) counted
    # it as call 1's answer, so that call 1 waited for ever without a timeout. No
    # call has that id: call 1 fails at once, as a member the array leaves out.
    reply = _true_for_call_1(rest)
    with FakeServer(_answer(reply, framing)) as fake, RPCClient(*fake.address, framing=framing) as c:  # type: ignore[arg-type]
        f, g, h = _batch(c)
        with pytest.raises(RPCError, match="has no response for this call") as info:
            f.result()
        assert info.value.method == "f"
        assert g.result() == f"r{g.id}"
        if rest == "in order":
            assert h.result() == f"r{h.id}"
        else:
            with pytest.raises(RPCError, match="has no response for this call"):
                h.result()
        _idle(c)


@pytest.mark.parametrize("rest", ["in order", "a later id of nobody's"])
def test_a_member_with_the_id_true_is_no_reply_to_call_1_on_the_aio_client(rest: str) -> None:
    async def main() -> None:
        async with await aio.connect(*fake.address) as c:
            async with c.batch() as b:
                f, g, h = b.f(), b.g(), b.h()
                b.notify("log", "x")
            with pytest.raises(RPCError, match="has no response for this call"):
                f.result()
            assert g.result() == "r2"
            if rest == "in order":
                assert h.result() == "r3"
            else:
                with pytest.raises(RPCError, match="has no response for this call"):
                    h.result()
            assert await c.after() == "next"

    with FakeServer(_answer(_true_for_call_1(rest))) as fake:
        asyncio.run(asyncio.wait_for(main(), WAIT))
