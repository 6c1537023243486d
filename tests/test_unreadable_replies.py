"""A reply the client cannot decode fails its call at once (review15 N1, helper-96).

A server may send a reply our strict decoder refuses: NaN (Python's json.dumps
writes it), an integer of 5,000 digits, a number that overflows a float, bytes
that are not UTF-8, a raw newline in a string. When its id can still be read
leniently (``_reply_id.named_id``), that call fails at once, however many are in
flight. When it cannot, it is as an error with id null: it goes to the call in
flight only when that call is alone and nothing else may still be unanswered
(tests/test_null_id_errors.py); otherwise the RPCTimeout of a call sent before it
quotes it. Before, it was only logged and the call waited for its timeout (which
did not say why), or for ever. The framing is intact, so the connection goes on.
Both drivers, both framings.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from _driver_helpers import WAIT, Peer
from _scripted_helpers import against_aio, against_sync

from jsonrpc_mini import ConnectionLost, RPCClient, RPCError, RPCTimeout, aio
from jsonrpc_mini._reply_id import named_id

pytestmark = pytest.mark.timeout(60)


def _bad(id_: Any, result: bytes) -> bytes:
    return b'{"jsonrpc":"2.0","id":%s,"result":%s}' % (json.dumps(id_).encode(), result)


# name -> (what the server sends for call id_, the parse error quoted)
CASES: dict[str, tuple[Callable[[Any], bytes], str]] = {
    "NaN": (lambda id_: _bad(id_, b"NaN"), "NaN is not valid JSON"),
    "5000-digit int": (lambda id_: _bad(id_, b"1" * 5000), "5000 digits"),
    "1e400": (lambda id_: _bad(id_, b"1e400"), "1e400"),
    "invalid UTF-8": (lambda id_: _bad(id_, b'"\xff"'), "not UTF-8"),
    # (newline framing: the line ends inside the string; its rest is another bad line)
    "raw newline in a string": (lambda id_: _bad(id_, b'"a\nb"'), "Parse error"),
}


# name -> (an unreadable reply for call id_ whose id cannot be read for certain, the parse error quoted)
UNCERTAIN: dict[str, tuple[Callable[[Any], bytes], str]] = {
    "id NaN": (lambda id_: b'{"jsonrpc":"2.0","id":NaN,"result":1}', "NaN is not valid JSON"),
    "id of 5000 digits": (lambda id_: b'{"jsonrpc":"2.0","id":%s,"result":1}' % (b"1" * 5000), "5000 digits"),
    "id not UTF-8": (lambda id_: b'{"jsonrpc":"2.0","id":"\xff","result":1}', "not UTF-8"),
    # (the line ends inside the string, before the id)
    "raw newline before the id": (lambda id_: b'{"jsonrpc":"2.0","result":"a\nb","id":%d}' % id_, "Parse error"),
}


def reply(id_: Any, result: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": id_, "result": result}).encode()


def read_message(peer: Peer, framing: str) -> Any:
    if framing == "newline":
        return peer.json_line()
    header = peer.until(b"\r\n\r\n")
    return json.loads(peer.exactly(int(header.split(b":")[1].split(b"\r\n")[0])))


def frame(data: bytes, framing: str) -> bytes:
    return data + b"\n" if framing == "newline" else b"Content-Length: %d\r\n\r\n%s" % (len(data), data)


def one_bad_then_good(case: str, framing: str) -> Callable[[Peer], None]:
    """The first call gets an unreadable reply, the second a good one; then the client's last word."""

    def script(peer: Peer) -> None:
        first = read_message(peer, framing)
        peer.sendall(frame(CASES[case][0](first["id"]), framing))
        second = read_message(peer, framing)
        peer.sendall(frame(reply(second["id"], "next"), framing))
        read_message(peer, framing)  # the notification "bye"

    return script


PAIRS = [(case, "newline") for case in CASES] + [("NaN", "content-length"), ("5000-digit int", "content-length")]


@pytest.mark.parametrize(("case", "framing"), PAIRS)
def test_sync_the_only_call_fails_at_once_and_the_connection_goes_on(case: str, framing: Any) -> None:
    # (Before, the call waited for its timeout: RPCTimeout after WAIT seconds.)
    def body(client: RPCClient) -> None:
        with pytest.raises(RPCError, match=r"^compute: the server's reply could not be read: Parse error") as info:
            client.compute()
        assert type(info.value) is RPCError and info.value.code is None
        assert CASES[case][1] in info.value.message
        assert client.again() == "next"

    against_sync(one_bad_then_good(case, framing), body, framing=framing)


@pytest.mark.parametrize(("case", "framing"), PAIRS)
def test_aio_the_only_call_fails_at_once_and_the_connection_goes_on(case: str, framing: Any) -> None:
    async def body(client: aio.RPCClient) -> None:
        with pytest.raises(RPCError, match=r"^compute: the server's reply could not be read: Parse error") as info:
            await client.compute()
        assert type(info.value) is RPCError and info.value.code is None
        assert CASES[case][1] in info.value.message
        assert await client.again() == "next"

    against_aio(one_bad_then_good(case, framing), body, framing=framing)


# -- when the unreadable message may be another's, no call takes it -----------------


def two_in_flight(peer: Peer) -> None:
    """Two calls read; an unreadable line whose id is unknown, then both replies; the client's last word."""
    ids = [peer.json_line()["id"], peer.json_line()["id"]]
    peer.sendall(UNCERTAIN["id NaN"][0](ids[0]) + b"\n")
    peer.sendall(reply(ids[1], ids[1]) + b"\n")
    peer.sendall(reply(ids[0], ids[0]) + b"\n")
    peer.json_line()  # "bye"


def test_sync_with_two_calls_in_flight_neither_takes_it() -> None:
    results = against_sync(two_in_flight, lambda client: sync_calls(client, 2))
    assert sorted(results, key=repr) == [1, 2], results  # (key: an RPCError among them sorts too)


def test_aio_with_two_calls_in_flight_neither_takes_it() -> None:
    async def body(client: aio.RPCClient) -> list[Any]:
        return await asyncio.gather(client.call("echo_id"), client.call("echo_id"))

    assert sorted(against_aio(two_in_flight, body)) == [1, 2]


def after_a_notification(peer: Peer) -> None:
    """A notification, then a call: an unreadable line (it may answer anything before), then the reply."""
    peer.json_line()  # the notification
    request = peer.json_line()
    peer.sendall(UNCERTAIN["id NaN"][0](request["id"]) + b"\n")
    peer.sendall(reply(request["id"], "mine") + b"\n")
    peer.json_line()  # "bye"


def test_sync_after_a_notification_the_call_does_not_take_it() -> None:
    def body(client: RPCClient) -> Any:
        client.notify("log")
        return client.anything()

    assert against_sync(after_a_notification, body) == "mine"


def test_aio_after_a_notification_the_call_does_not_take_it() -> None:
    async def body(client: aio.RPCClient) -> Any:
        await client.notify("log")
        return await client.anything()

    assert against_aio(after_a_notification, body) == "mine"


def not_a_value_then_reply(peer: Peer) -> None:
    """A line that opens no object or array (a stray print, say), then the call's reply."""
    request = peer.json_line()
    peer.sendall(b"this is not json\n")  # (t may start a value: the line is decoded)
    peer.sendall(b"Traceback: NaN\n")  # (T starts none: refused as it is scanned)
    peer.sendall(reply(request["id"], "mine") + b"\n")
    peer.json_line()  # "bye"


def test_aio_a_line_that_opens_no_object_is_nobodys() -> None:
    # (The sync client: test_client.test_garbage_and_stray_messages_from_the_server_are_survived.)
    async def body(client: aio.RPCClient) -> Any:
        return await client.anything()

    assert against_aio(not_a_value_then_reply, body) == "mine"


def notification_then_bad_and_close(peer: Peer) -> None:
    peer.json_line()  # the notification
    request = peer.json_line()
    peer.sendall(UNCERTAIN["id NaN"][0](request["id"]) + b"\n")
    peer.close()


QUOTED_NAN = r"a reply that could not be read, Parse error: NaN is not valid"


def test_sync_a_connection_lost_quotes_an_unreadable_reply_no_call_took() -> None:
    def body(client: RPCClient) -> None:
        client.notify("log")
        with pytest.raises(ConnectionLost, match=QUOTED_NAN):
            client.anything()

    against_sync(notification_then_bad_and_close, body, bye=False)


def test_aio_a_connection_lost_quotes_an_unreadable_reply_no_call_took() -> None:
    async def body(client: aio.RPCClient) -> None:
        await client.notify("log")
        with pytest.raises(ConnectionLost, match=QUOTED_NAN):
            await client.anything()

    against_aio(notification_then_bad_and_close, body, bye=False)


# -- several calls in flight: the id read leniently names the call -------------------

MANY = [(case, framing, n) for case, framing in PAIRS for n in (2, 3)]


def named_among(count: int, case: str, framing: str, bad: list[Any]) -> Callable[[Peer], None]:
    """``count`` calls read; an unreadable reply naming one (the second last), then the others' replies."""

    def script(peer: Peer) -> None:
        ids = [read_message(peer, framing)["id"] for _ in range(count)]
        bad.append(ids[-2])
        peer.sendall(frame(CASES[case][0](ids[-2]), framing))
        for id_ in reversed([id_ for id_ in ids if id_ != ids[-2]]):
            peer.sendall(frame(reply(id_, id_), framing))
        read_message(peer, framing)  # the notification "bye"

    return script


def check_named(case: str, outcomes: list[Any], bad: list[Any]) -> None:
    errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    assert len(errors) == 1, outcomes
    assert type(errors[0]) is RPCError and errors[0].code is None  # (not an RPCTimeout: at once)
    assert str(errors[0]).startswith("echo_id: the server's reply could not be read: Parse error"), errors[0]
    assert CASES[case][1] in str(errors[0])
    assert sorted(outcome for outcome in outcomes if outcome is not errors[0]) == sorted(
        id_ for id_ in range(1, len(outcomes) + 1) if id_ not in bad
    )


def sync_calls(client: RPCClient, count: int) -> list[Any]:
    """``count`` calls of echo_id from threads at once: each one's result or error."""
    outcomes: list[Any] = [None] * count

    def call(index: int) -> None:
        try:
            outcomes[index] = client.call("echo_id")
        except RPCError as exc:  # (checked by the caller)
            outcomes[index] = exc

    threads = [threading.Thread(target=call, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


@pytest.mark.parametrize(("case", "framing", "count"), MANY)
def test_sync_the_call_an_unreadable_reply_names_fails_at_once(case: str, framing: Any, count: int) -> None:
    # (Before, it waited for its timeout: RPCTimeout after WAIT seconds.)
    bad: list[Any] = []
    outcomes = against_sync(
        named_among(count, case, framing, bad), lambda client: sync_calls(client, count), framing=framing
    )
    check_named(case, outcomes, bad)


@pytest.mark.parametrize(("case", "framing", "count"), MANY)
def test_aio_the_call_an_unreadable_reply_names_fails_at_once(case: str, framing: Any, count: int) -> None:
    async def body(client: aio.RPCClient) -> list[Any]:
        return await asyncio.gather(*(client.call("echo_id") for _ in range(count)), return_exceptions=True)

    bad: list[Any] = []
    check_named(case, against_aio(named_among(count, case, framing, bad), body, framing=framing), bad)


# -- its id unknown: the timeout of a call sent before it says so ---------------------

SHORT = 1.0  # the client's timeout where a call is meant to time out
# The timeout of ``late``, which nothing answers (the peer reads it and never replies):
# it only has to run out, so it need not leave the answered calls SHORT's margin.
LATE = 0.2
UNSURE = [(case, n) for case in UNCERTAIN for n in (2, 3)]


def unknown_among(count: int, case: str, left: list[Any]) -> Callable[[Peer], None]:
    """``count`` calls read; an unreadable reply whose id is unknown, replies to all but the last; then calls after."""

    def script(peer: Peer) -> None:
        ids = [peer.json_line()["id"] for _ in range(count)]
        left.append(ids[-1])  # (the last on the wire: with threads, not always the last id)
        peer.sendall(UNCERTAIN[case][0](ids[-1]) + b"\n")
        for id_ in ids[:-1]:
            peer.sendall(reply(id_, id_) + b"\n")
        later = peer.json_line()  # a call sent after it: answered
        peer.sendall(reply(later["id"], "later") + b"\n")
        peer.json_line()  # another, not answered
        peer.json_line()  # "bye"

    return script


def check_quoted(case: str, outcomes: list[Any], left: list[Any]) -> None:
    timeouts = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    assert len(timeouts) == 1, outcomes
    timeout = timeouts[0]
    assert type(timeout) is RPCTimeout, outcomes
    expected = [id_ for id_ in range(1, len(outcomes) + 1) if id_ not in left]
    assert sorted(outcome for outcome in outcomes if outcome is not timeout) == expected, outcomes
    quoted = (
        f"echo_id: no reply within {SHORT} s; a late reply will be dropped"
        " (meanwhile the server sent a reply that could not be read: Parse error"
    )
    assert str(timeout).startswith(quoted), timeout
    assert str(timeout).endswith(")") and UNCERTAIN[case][1] in str(timeout)


def later_says_nothing_extra(timeout: RPCError) -> None:
    # A call sent after the unreadable reply came: its timeout does not quote it.
    assert type(timeout) is RPCTimeout
    assert str(timeout) == f"late: no reply within {LATE} s; a late reply will be dropped"


@pytest.mark.parametrize(("case", "count"), UNSURE)
def test_sync_a_timeout_quotes_an_unreadable_reply_no_call_took(case: str, count: int) -> None:
    def body(client: RPCClient) -> None:
        check_quoted(case, sync_calls(client, count), left)
        assert client.later() == "later"  # (a readable reply after it still arrives)
        with pytest.raises(RPCTimeout) as info:
            client.with_timeout(LATE).late()
        later_says_nothing_extra(info.value)

    left: list[Any] = []
    against_sync(unknown_among(count, case, left), body, timeout=SHORT)


@pytest.mark.parametrize(("case", "count"), UNSURE)
def test_aio_a_timeout_quotes_an_unreadable_reply_no_call_took(case: str, count: int) -> None:
    async def body(client: aio.RPCClient) -> None:
        calls = [client.call("echo_id") for _ in range(count)]
        check_quoted(case, await asyncio.gather(*calls, return_exceptions=True), left)
        assert await client.later() == "later"
        with pytest.raises(RPCTimeout) as info:
            await client.with_timeout(LATE).late()
        later_says_nothing_extra(info.value)

    left: list[Any] = []
    against_aio(unknown_among(count, case, left), body, timeout=SHORT)


def batch_then_unknown(peer: Peer) -> None:
    """A batch of two read; an unreadable reply whose id is unknown, no reply; the client's last word."""
    peer.json_line()
    peer.sendall(UNCERTAIN["id NaN"][0](None) + b"\n")
    peer.json_line()  # "bye"


def check_batch_quoted(first: Any, second: Any) -> None:
    """The batch's members ``add`` and ``sub`` timed out, each quoting the unreadable reply."""
    for result, method in ((first, "add"), (second, "sub")):
        with pytest.raises(RPCTimeout) as info:
            result.result()
        assert str(info.value) == (
            f"{method}: no reply within {SHORT} s; a late reply will be dropped"
            " (meanwhile the server sent a reply that could not be read: Parse error: NaN is not valid JSON)"
        )


def test_sync_a_batch_timeout_quotes_an_unreadable_reply() -> None:
    def body(client: RPCClient) -> None:
        with client.batch() as batch:
            first = batch.add(1, 2)
            second = batch.sub(3, 1)
        check_batch_quoted(first, second)

    against_sync(batch_then_unknown, body, timeout=SHORT)


def test_aio_a_batch_timeout_quotes_an_unreadable_reply() -> None:
    async def body(client: aio.RPCClient) -> None:
        async with client.batch() as batch:
            first = batch.add(1, 2)
            second = batch.sub(3, 1)
        check_batch_quoted(first, second)

    against_aio(batch_then_unknown, body, timeout=SHORT)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b' {"jsonrpc":"2.0","id":7,"result":NaN}', 7),
        (b'{"result":1e400,"error":[NaN],"id":"a"}', "a"),  # (read leniently, in any order)
        (b'{"jsonrpc":"2.0","id":7,"result":"a', 7),  # (cut short after the id)
        (b'{"jsonrpc":"2.0","result":"a', None),  # (cut short before it)
        (b'{"id":7,"result":NaN,"id":8}', None),  # two ids: which?
        (b'{"result":{"id":7},"x":NaN}', None),  # not the top level's
        (b'{"id":true,"result":NaN}', None),
        (b'{"id":7.0,"result":NaN}', None),
        (b'{"id":"\xff","result":1}', None),  # (a replaced byte: not the id sent)
        (b'[{"id":7,"result":NaN}]', None),
        (b'{"jsonrpc":"2.0","id":7,"method":"m","params":[NaN]}', None),  # the server's request
    ],
)
def test_the_id_of_an_unreadable_message_is_read_only_when_certain(data: bytes, named: Any) -> None:
    assert named_id(data) == named


def late_unreadable_then_close(peer: Peer) -> None:
    """A call left unanswered; the next read, an unreadable reply naming the first (late), then the close."""
    first = peer.json_line()
    peer.json_line()  # the next call, sent once the first timed out
    peer.sendall(CASES["NaN"][0](first["id"]) + b"\n")
    peer.close()


def test_sync_a_late_unreadable_reply_is_not_the_servers_last_word() -> None:
    # Its id names a call given up on: it explains nothing of the next call's ConnectionLost.
    def body(client: RPCClient) -> None:
        with pytest.raises(RPCTimeout):
            client.first()
        with pytest.raises(ConnectionLost) as info:
            client.with_timeout(WAIT).second()
        assert "could not be read" not in str(info.value) and "said" not in str(info.value), info.value

    against_sync(late_unreadable_then_close, body, bye=False, timeout=SHORT)


def test_aio_a_late_unreadable_reply_is_not_the_servers_last_word() -> None:
    async def body(client: aio.RPCClient) -> None:
        with pytest.raises(RPCTimeout):
            await client.first()
        with pytest.raises(ConnectionLost) as info:
            await client.with_timeout(WAIT).second()
        assert "could not be read" not in str(info.value) and "said" not in str(info.value), info.value

    against_aio(late_unreadable_then_close, body, bye=False, timeout=SHORT)
