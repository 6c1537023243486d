"""A batch reply array that leaves members out fails those members at once (review8 F7).

JSON-RPC 2.0 answers a batch with one array. Once that array has arrived, a
member it does not answer will get no answer: its call fails with an RPCError
(code None) saying so, instead of waiting for its timeout (for ever without
one), and the connection stays usable. Which batch an array answers is told by
its ids, so pipelined batches each end by their own array.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from _aio_support import run
from _driver_helpers import WAIT, FakeServer, LeakCheck, Peer

from jsonrpc_mini import InvalidRequest, RPCClient, RPCError, aio
from jsonrpc_mini._client_protocol import ClientConnection
from jsonrpc_mini._codec import ErrorResponse, Response
from jsonrpc_mini._framing import encode_frame
from jsonrpc_mini._protocol import Violation

pytestmark = pytest.mark.timeout(60)


def ok(id_: Any, result: Any = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "result": f"r{id_}" if result is None else result}


def array(*members: Any) -> bytes:
    return json.dumps(list(members), separators=(",", ":")).encode() + b"\n"


# -- the sans-IO core ------------------------------------------------------------


def _events(conn: ClientConnection, data: bytes, *, pieces: int = 0) -> list[Any]:
    """Feed ``data`` whole (or ``pieces`` bytes at a time) through receive_data; all events."""
    if pieces:
        for at in range(0, len(data), pieces):
            conn.receive_data(data[at : at + pieces])
    else:
        conn.receive_data(data)
    out = []
    while (event := conn.next_event()) is not None:
        out.append(event)
    return out


def _lines(conn: ClientConnection, data: bytes) -> list[Any]:
    """What the drivers' fast path makes of ``data`` (decode_lines, then parse_reply)."""
    values, end = conn.decode_lines(data, 64)
    assert end == len(data), "the line was not taken in one step"
    return [conn.parse_reply(value) for value in values]


def _cl(data: bytes) -> bytes:
    return encode_frame(data.rstrip(b"\n"), "content-length")


# (how to feed, framing): every path by which an array reply reaches the core
_WAYS = [("events", "newline"), ("bytes", "newline"), ("lines", "newline"), ("events", "content-length")]


def _read(way: str, framing: str, conn: ClientConnection, line: bytes) -> list[Any]:
    if way == "lines":
        return _lines(conn, line)
    data = _cl(line) if framing == "content-length" else line
    return _events(conn, data, pieces=1 if way == "bytes" else 0)


def _batch(conn: ClientConnection, size: int) -> list[int]:
    """The ids of a batch of ``size`` members that ``conn`` now expects."""
    ids = conn.next_ids(size)
    conn.expect_batch(ids)
    return ids


def _reply(id_: Any) -> Response:
    """The event for ``ok(id_)``: a Response with result "r<id_>"."""
    return Response(id_, f"r{id_}")


def _missing(event: Any, id_: int) -> None:
    assert type(event) is Violation and event.id == id_ and event.error is None
    assert f"no response for this call (id {id_})" in event.reason


@pytest.mark.parametrize(("way", "framing"), _WAYS)
def test_members_the_array_leaves_out_come_after_its_replies(way: str, framing: str) -> None:
    conn = ClientConnection(framing=framing)  # type: ignore[arg-type]
    ids = _batch(conn, 4)
    events = _read(way, framing, conn, array(ok(ids[2]), ok(ids[0])))
    assert events[:2] == [_reply(ids[2]), _reply(ids[0])]
    assert len(events) == 4
    _missing(events[2], ids[1])
    _missing(events[3], ids[3])
    # The batch is forgotten: a late array for it ends nothing more.
    assert _read(way, framing, conn, array(ok(ids[1]))) == [_reply(ids[1])]


@pytest.mark.parametrize(("way", "framing"), _WAYS)
def test_a_complete_array_and_replies_outside_batches_add_nothing(way: str, framing: str) -> None:
    conn = ClientConnection(framing=framing)  # type: ignore[arg-type]
    ids = _batch(conn, 3)
    # An array answering a single call (not a batch member) ends no batch.
    assert _read(way, framing, conn, array(ok(99))) == [_reply(99)]
    events = _read(way, framing, conn, array(*(ok(id_) for id_ in reversed(ids))))
    assert events == [_reply(id_) for id_ in reversed(ids)]


@pytest.mark.parametrize(("way", "framing"), _WAYS)
def test_a_whole_array_in_any_order_adds_nothing(way: str, framing: str) -> None:
    conn = ClientConnection(framing=framing)  # type: ignore[arg-type]
    first, second = _batch(conn, 4), _batch(conn, 3)
    order = [second[2], second[0], second[1]]
    assert _read(way, framing, conn, array(*(ok(id_) for id_ in order))) == [_reply(i) for i in order]
    order = [first[1], first[3], first[0], first[2]]
    assert _read(way, framing, conn, array(*(ok(id_) for id_ in order))) == [_reply(i) for i in order]
    assert conn._batches == {}


# Members that are no reply (or an unusable one) beside replies to the rest of a batch of 3:
# whatever they are, the member they stand in place of is left out (ids[1]).
_ODD_MEMBERS = [
    5,
    "x",
    None,
    [1, 2],
    {"jsonrpc": "2.0", "result": 1},  # no id
    {"jsonrpc": "2.0", "id": [1], "result": 1},  # unhashable id
    {"jsonrpc": "2.0", "id": {"a": 1}, "result": 1},
    {"jsonrpc": "2.0", "id": True, "result": 1},  # (not the id 1 of a batch numbered from 1: see below)
    {"jsonrpc": "2.0", "id": "2", "result": 1},  # a string is not the integer id
]


@pytest.mark.parametrize("odd", _ODD_MEMBERS, ids=repr)
@pytest.mark.parametrize(("way", "framing"), _WAYS)
def test_odd_members_do_not_stand_for_the_member_left_out(way: str, framing: str, odd: Any) -> None:
    conn = ClientConnection(framing=framing)  # type: ignore[arg-type]
    conn.next_ids(5)  # (ids from 6: an id true or 1 would not name a member)
    ids = _batch(conn, 3)
    events = _read(way, framing, conn, array(ok(ids[2]), odd, ok(ids[0])))
    assert events[0] == _reply(ids[2]) and events[2] == _reply(ids[0])
    assert len(events) == 4
    assert getattr(events[1], "id", None) in (None, "2")  # (what parse_reply makes of it, not a member's)
    _missing(events[3], ids[1])


@pytest.mark.parametrize(("way", "framing"), _WAYS)
def test_a_float_id_answers_its_member_as_the_drivers_match_it(way: str, framing: str) -> None:
    conn = ClientConnection(framing=framing)  # type: ignore[arg-type]
    ids = _batch(conn, 2)
    events = _read(way, framing, conn, array(ok(ids[1]), ok(float(ids[0]))))
    assert events == [_reply(ids[1]), _reply(float(ids[0]))]
    ids = _batch(conn, 3)
    events = _read(way, framing, conn, array(ok(float(ids[0])), ok(ids[2])))
    assert len(events) == 3
    _missing(events[2], ids[1])


@pytest.mark.parametrize(("way", "framing"), _WAYS)
def test_a_member_answered_twice_does_not_stand_for_another(way: str, framing: str) -> None:
    conn = ClientConnection(framing=framing)  # type: ignore[arg-type]
    ids = _batch(conn, 3)
    events = _read(way, framing, conn, array(ok(ids[0]), ok(ids[0], "again"), ok(ids[1])))
    assert events[:3] == [_reply(ids[0]), Response(ids[0], "again"), _reply(ids[1])]
    assert len(events) == 4
    _missing(events[3], ids[2])


@pytest.mark.parametrize(("way", "framing"), _WAYS)
def test_pipelined_batches_each_end_by_their_own_array(way: str, framing: str) -> None:
    conn = ClientConnection(framing=framing)  # type: ignore[arg-type]
    first, second, third = _batch(conn, 3), _batch(conn, 2), _batch(conn, 2)
    # The second batch's array comes first and lacks a member: only that member fails.
    events = _read(way, framing, conn, array(ok(second[1])))
    assert events[0] == _reply(second[1]) and len(events) == 2
    _missing(events[1], second[0])
    # An array answering two batches at once (not what the spec allows) ends both.
    events = _read(way, framing, conn, array(ok(first[0]), ok(third[1]), ok(first[2])))
    assert [type(event) for event in events] == [Response] * 3 + [Violation] * 2
    _missing(events[3], first[1])
    _missing(events[4], third[0])


@pytest.mark.parametrize(("way", "framing"), _WAYS)
def test_a_batch_split_over_two_arrays_ends_with_the_first(way: str, framing: str) -> None:
    conn = ClientConnection(framing=framing)  # type: ignore[arg-type]
    ids = _batch(conn, 3)
    events = _read(way, framing, conn, array(ok(ids[0])))
    assert [type(event) for event in events] == [Response, Violation, Violation]
    _missing(events[1], ids[1])
    _missing(events[2], ids[2])
    # The second array is read as replies (the drivers drop them: nobody waits any more).
    assert _read(way, framing, conn, array(ok(ids[1]), ok(ids[2]))) == [_reply(ids[1]), _reply(ids[2])]


@pytest.mark.parametrize(("way", "framing"), _WAYS)
def test_arrays_answering_no_member_end_nothing(way: str, framing: str) -> None:
    conn = ClientConnection(framing=framing)  # type: ignore[arg-type]
    ids = _batch(conn, 2)
    (empty,) = _read(way, framing, conn, b"[]\n")
    assert type(empty) is Violation and empty.id is None and "[]" in empty.reason
    # What a server might wrongly send for notifications: replies with id null.
    (nulls,) = _read(way, framing, conn, array({"jsonrpc": "2.0", "id": None, "result": 1}))
    assert nulls.id is None  # (a Response with id None: the drivers drop it)
    # A server->client request carrying a member's id answers nothing either.
    request = {"jsonrpc": "2.0", "method": "ping", "id": ids[0]}
    (req,) = _read(way, framing, conn, array(request))
    assert type(req) is Violation and req.id is None
    # The batch is still expected: its own array, short of a member, still ends it.
    events = _read(way, framing, conn, array(ok(ids[1])))
    assert events[0] == _reply(ids[1]) and len(events) == 2
    _missing(events[1], ids[0])


@pytest.mark.parametrize(("way", "framing"), _WAYS)
def test_the_one_error_without_id_goes_to_the_one_member_left_out(way: str, framing: str) -> None:
    conn = ClientConnection(framing=framing)  # type: ignore[arg-type]
    ids = _batch(conn, 3)
    error = {"code": -32600, "message": "Invalid Request"}
    line = array(ok(ids[0]), {"jsonrpc": "2.0", "id": None, "error": error}, ok(ids[2]))
    events = _read(way, framing, conn, line)
    assert events[:2] == [_reply(ids[0]), _reply(ids[2])]
    assert len(events) == 3
    assert type(events[2]) is ErrorResponse and events[2].id == ids[1]
    assert events[2].error.code == -32600 and events[2].error.message == "Invalid Request"
    # Two left out, one such error: it cannot be told whose; each member fails on its own.
    ids = _batch(conn, 3)
    events = _read(way, framing, conn, array({"jsonrpc": "2.0", "id": None, "error": error}, ok(ids[2])))
    assert [type(event) for event in events] == [Violation, Response, Violation, Violation]
    assert events[0].id is None and events[0].error is not None
    _missing(events[2], ids[0])
    _missing(events[3], ids[1])


@pytest.mark.parametrize(("way", "framing"), _WAYS)
def test_a_forgotten_batch_is_not_ended_by_a_late_array(way: str, framing: str) -> None:
    conn = ClientConnection(framing=framing)  # type: ignore[arg-type]
    ids = _batch(conn, 2)
    conn.forget_batch(ids)
    assert _read(way, framing, conn, array(ok(ids[0]))) == [_reply(ids[0])]


@pytest.mark.parametrize("framing", ["newline", "content-length"])
def test_a_member_too_deep_counts_as_answered(framing: str) -> None:
    conn = ClientConnection(framing=framing, max_depth=5)  # type: ignore[arg-type]
    ids = _batch(conn, 3)
    deep: Any = 0
    for _ in range(8):
        deep = [deep]
    line = array(ok(ids[0], deep), ok(ids[1]))
    events = _events(conn, _cl(line) if framing == "content-length" else line)
    assert [type(event) for event in events] == [Violation, Response, Violation]
    assert events[0].id == ids[0] and "max_depth" in events[0].reason
    _missing(events[2], ids[2])


# -- the sync client -------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


def _answer_short(peer: Peer, framing: str = "newline") -> None:
    """Answer the first batch without its last member, then one single call; wait for the client to go."""
    if framing == "content-length":
        header = peer.until(b"\r\n\r\n")
        batch = json.loads(peer.exactly(int(header.split(b":")[1].split(b"\r")[0])))
    else:
        batch = peer.json_line()
    calls = [member for member in batch if "id" in member]
    reply = array(*(ok(member["id"]) for member in calls[:-1]))
    peer.sendall(_cl(reply) if framing == "content-length" else reply)
    if framing == "content-length":
        header = peer.until(b"\r\n\r\n")
        single = json.loads(peer.exactly(int(header.split(b":")[1].split(b"\r")[0])))
        peer.sendall(_cl(json.dumps(ok(single["id"], "next")).encode()))
    else:
        single = peer.json_line()
        peer.sendall(json.dumps(ok(single["id"], "next")).encode() + b"\n")
    peer.to_eof()


def _check_short_batch(results: list[Any]) -> None:
    with pytest.raises(RPCError) as info:
        results[-1].result()
    exc = info.value
    assert type(exc) is RPCError and exc.code is None and exc.method == "f"
    assert "the batch's reply array has no response for this call" in str(exc)


@pytest.mark.parametrize("framing", ["newline", "content-length"])
def test_sync_batch_without_timeout_fails_the_member_left_out(framing: str) -> None:
    with FakeServer(lambda peer: _answer_short(peer, framing)) as fake:
        c = RPCClient(*fake.address, timeout=None, framing=framing)  # type: ignore[arg-type]
        done: list[Any] = []

        def batch() -> None:
            with c.batch() as b:
                results = [b.f(i) for i in range(3)]
                b.notify("log", "x")
            done.append(results)

        thread = threading.Thread(target=batch, daemon=True)
        thread.start()
        thread.join(WAIT)
        try:
            assert not thread.is_alive(), "the batch still waits for the member its reply array left out"
            (results,) = done
            assert [r.result() for r in results[:2]] == [f"r{results[0].id}", f"r{results[1].id}"]
            _check_short_batch(results)
            assert c.g() == "next"  # the connection stays usable
        finally:
            c.close()
            thread.join(WAIT)
    assert not fake.errors


def test_sync_pipelined_batches_from_two_threads_each_end_by_their_own_array() -> None:
    got: dict[str, Any] = {}

    def script(peer: Peer) -> None:
        first, second = peer.json_line(), peer.json_line()
        by_size = sorted([first, second], key=len)
        small, large = by_size
        # The larger batch's array first, short of its first member, then the smaller one's whole.
        peer.sendall(array(*(ok(m["id"]) for m in large[1:])))
        peer.sendall(array(*(ok(m["id"]) for m in small)))
        peer.to_eof()

    with FakeServer(script) as fake, RPCClient(*fake.address, timeout=WAIT) as c:
        started = threading.Barrier(2, timeout=WAIT)

        def batch(name: str, size: int) -> None:
            started.wait()
            with c.batch() as b:
                results = [b.f(i) for i in range(size)]
            got[name] = results

        threads = [threading.Thread(target=batch, args=(n, k), daemon=True) for n, k in (("small", 2), ("large", 4))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        assert not any(thread.is_alive() for thread in threads)
        assert [r.result() for r in got["small"]] == [f"r{r.id}" for r in got["small"]]
        large = got["large"]
        assert [r.result() for r in large[1:]] == [f"r{r.id}" for r in large[1:]]
        with pytest.raises(RPCError, match=rf"no response for this call \(id {large[0].id}\)") as info:
            large[0].result()
        assert info.value.code is None
    assert not fake.errors


def test_sync_error_without_id_in_a_short_array_is_the_member_left_out() -> None:
    def script(peer: Peer) -> None:
        batch = peer.json_line()
        error = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Invalid Request"}}
        peer.sendall(array(ok(batch[0]["id"]), error))
        peer.to_eof()

    with FakeServer(script) as fake, RPCClient(*fake.address, timeout=WAIT) as c:
        with c.batch() as b:
            first, second = b.f(), b.f()
        assert first.result() == f"r{first.id}"
        with pytest.raises(InvalidRequest):
            second.result()
    assert not fake.errors


# -- the asyncio client -----------------------------------------------------------------


@pytest.mark.parametrize("framing", ["newline", "content-length"])
def test_aio_batch_without_timeout_fails_the_member_left_out(framing: str) -> None:
    async def main() -> None:
        async with await aio.connect(*fake.address, timeout=None, framing=framing) as c:  # type: ignore[arg-type]
            async with c.batch() as b:
                results = [b.f(i) for i in range(3)]
                b.notify("log", "x")
            assert [r.result() for r in results[:2]] == ["r1", "r2"]  # (the aio client numbers from 1)
            with pytest.raises(RPCError) as info:
                results[2].result()
            exc = info.value
            assert type(exc) is RPCError and exc.code is None and exc.method == "f"
            assert "the batch's reply array has no response for this call (id 3)" in str(exc)
            assert await c.g() == "next"
            assert c._link.proto._batches == {}  # nothing kept once the batch ended

    with FakeServer(lambda peer: _answer_short(peer, framing)) as fake:
        run(lambda: asyncio.wait_for(main(), WAIT))
    assert not fake.errors


def test_aio_pipelined_batches_each_end_by_their_own_array() -> None:
    def script(peer: Peer) -> None:
        first, second = peer.json_line(), peer.json_line()
        peer.sendall(array(*(ok(m["id"]) for m in second[1:])))  # the later batch's, short of a member
        peer.sendall(array(*(ok(m["id"]) for m in first)))
        peer.to_eof()

    async def main() -> None:
        async with await aio.connect(*fake.address, timeout=WAIT) as c:

            async def batch(size: int) -> list[Any]:
                async with c.batch() as b:
                    results = [b.f(i) for i in range(size)]
                return results

            first, second = await asyncio.gather(batch(2), batch(3))
            assert [r.result() for r in first] == ["r1", "r2"]
            assert [r.result() for r in second[1:]] == ["r4", "r5"]
            with pytest.raises(RPCError, match=r"no response for this call \(id 3\)") as info:
                second[0].result()
            assert info.value.code is None

    with FakeServer(script) as fake:
        run(lambda: asyncio.wait_for(main(), WAIT))
    assert not fake.errors


# -- a batch that ends without its array is forgotten (no record left behind) -------------


def _answer_late(peer: Peer) -> None:
    """Read the batch, answer nothing until the client's next call, then send a short array and that reply."""
    batch = peer.json_line()
    single = peer.json_line()
    peer.sendall(array(ok(batch[0]["id"])))
    peer.sendall(json.dumps(ok(single["id"], "next")).encode() + b"\n")
    peer.to_eof()


def test_sync_batch_that_timed_out_leaves_nothing_expected() -> None:
    with FakeServer(_answer_late) as fake, RPCClient(*fake.address, timeout=WAIT) as c:
        with c.with_timeout(0.2).batch() as b:
            results = [b.f(), b.f()]
        for r in results:
            with pytest.raises(RPCError, match="no reply within"):
                r.result()
        link = c._link
        assert link is not None and link.proto._batches == {}
        assert c.g() == "next"  # the late short array fails nobody
    assert not fake.errors


def test_aio_batch_that_timed_out_leaves_nothing_expected() -> None:
    async def main() -> None:
        async with await aio.connect(*fake.address, timeout=WAIT) as c:
            async with c.with_timeout(0.2).batch() as b:
                results = [b.f(), b.f()]
            for r in results:
                with pytest.raises(RPCError, match="no reply within"):
                    r.result()
            assert c._link.proto._batches == {}
            assert await c.g() == "next"

    with FakeServer(_answer_late) as fake:
        run(lambda: asyncio.wait_for(main(), WAIT))
    assert not fake.errors
