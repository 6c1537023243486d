"""A reply the client cannot decode fails the one call in flight at once (review15 N1).

A server may send a reply our strict decoder refuses: NaN (Python's json.dumps
writes it), an integer of 5,000 digits, a number that overflows a float, bytes
that are not UTF-8, a raw newline in a string. Its id cannot be read, so, as an
error with id null, it goes to the call in flight only when that call is alone
and nothing else may still be unanswered (tests/test_null_id_errors.py); before,
it was only logged and the call waited for its timeout, or for ever. The framing
is intact, so the connection goes on. Both drivers, both framings.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from _aio_support import run
from _driver_helpers import WAIT, FakeServer, Peer

from jsonrpc_mini import ConnectionLost, RPCClient, RPCError, aio

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
    script = one_bad_then_good(case, framing)
    with FakeServer(script) as fake, RPCClient(*fake.address, framing=framing, timeout=WAIT) as client:
        with pytest.raises(RPCError, match=r"^compute: the server's reply could not be read: Parse error") as info:
            client.compute()
        assert type(info.value) is RPCError and info.value.code is None
        assert CASES[case][1] in info.value.message
        assert client.again() == "next"
        client.notify("bye")
    assert not fake.errors


@pytest.mark.parametrize(("case", "framing"), PAIRS)
def test_aio_the_only_call_fails_at_once_and_the_connection_goes_on(case: str, framing: Any) -> None:
    async def main() -> None:
        client = await aio.connect(*fake.address, framing=framing, timeout=WAIT)
        async with client:
            with pytest.raises(RPCError, match=r"^compute: the server's reply could not be read: Parse error") as info:
                await client.compute()
            assert type(info.value) is RPCError and info.value.code is None
            assert CASES[case][1] in info.value.message
            assert await client.again() == "next"
            await client.notify("bye")

    with FakeServer(one_bad_then_good(case, framing)) as fake:
        run(main)
    assert not fake.errors


# -- when the unreadable message may be another's, no call takes it -----------------


def two_in_flight(peer: Peer) -> None:
    """Two calls read; an unreadable line naming the first, then both replies; the client's last word."""
    ids = [peer.json_line()["id"], peer.json_line()["id"]]
    peer.sendall(CASES["NaN"][0](ids[0]) + b"\n")
    peer.sendall(reply(ids[1], ids[1]) + b"\n")
    peer.sendall(reply(ids[0], ids[0]) + b"\n")
    peer.json_line()  # "bye"


def test_sync_with_two_calls_in_flight_neither_takes_it() -> None:
    with FakeServer(two_in_flight) as fake, RPCClient(*fake.address, timeout=WAIT) as client:
        results: dict[str, Any] = {}

        def call(name: str) -> None:
            try:
                results[name] = client.call("echo_id")
            except RPCError as exc:  # (reported below)
                results[name] = exc

        threads = [threading.Thread(target=call, args=(name,)) for name in "ab"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        assert sorted(results.values()) == [1, 2], results
        client.notify("bye")
    assert not fake.errors


def test_aio_with_two_calls_in_flight_neither_takes_it() -> None:
    async def main() -> list[Any]:
        client = await aio.connect(*fake.address, timeout=WAIT)
        async with client:
            results = await asyncio.gather(client.call("echo_id"), client.call("echo_id"))
            await client.notify("bye")
        return results

    with FakeServer(two_in_flight) as fake:
        assert sorted(run(main)) == [1, 2]
    assert not fake.errors


def after_a_notification(peer: Peer) -> None:
    """A notification, then a call: an unreadable line (it may answer anything before), then the reply."""
    peer.json_line()  # the notification
    request = peer.json_line()
    peer.sendall(CASES["NaN"][0](request["id"]) + b"\n")
    peer.sendall(reply(request["id"], "mine") + b"\n")
    peer.json_line()  # "bye"


def test_sync_after_a_notification_the_call_does_not_take_it() -> None:
    with FakeServer(after_a_notification) as fake, RPCClient(*fake.address, timeout=WAIT) as client:
        client.notify("log")
        assert client.anything() == "mine"
        client.notify("bye")
    assert not fake.errors


def test_aio_after_a_notification_the_call_does_not_take_it() -> None:
    async def main() -> Any:
        client = await aio.connect(*fake.address, timeout=WAIT)
        async with client:
            await client.notify("log")
            result = await client.anything()
            await client.notify("bye")
        return result

    with FakeServer(after_a_notification) as fake:
        assert run(main) == "mine"
    assert not fake.errors


def not_a_value_then_reply(peer: Peer) -> None:
    """A line that opens no object or array (a stray print, say), then the call's reply."""
    request = peer.json_line()
    peer.sendall(b"this is not json\n")  # (t may start a value: the line is decoded)
    peer.sendall(b"Traceback: NaN\n")  # (T starts none: refused as it is scanned)
    peer.sendall(reply(request["id"], "mine") + b"\n")
    peer.json_line()  # "bye"


def test_aio_a_line_that_opens_no_object_is_nobodys() -> None:
    # (The sync client: test_client.test_garbage_and_stray_messages_from_the_server_are_survived.)
    async def main() -> Any:
        client = await aio.connect(*fake.address, timeout=WAIT)
        async with client:
            result = await client.anything()
            await client.notify("bye")
        return result

    with FakeServer(not_a_value_then_reply) as fake:
        assert run(main) == "mine"
    assert not fake.errors


def notification_then_bad_and_close(peer: Peer) -> None:
    peer.json_line()  # the notification
    request = peer.json_line()
    peer.sendall(CASES["NaN"][0](request["id"]) + b"\n")
    peer.close()


def test_sync_a_connection_lost_quotes_an_unreadable_reply_no_call_took() -> None:
    with FakeServer(notification_then_bad_and_close) as fake, RPCClient(*fake.address, timeout=WAIT) as client:
        client.notify("log")
        with pytest.raises(ConnectionLost, match=r"a reply that could not be read, Parse error: NaN is not valid"):
            client.anything()
    assert not fake.errors


def test_aio_a_connection_lost_quotes_an_unreadable_reply_no_call_took() -> None:
    async def main() -> None:
        client = await aio.connect(*fake.address, timeout=WAIT)
        async with client:
            await client.notify("log")
            with pytest.raises(ConnectionLost, match=r"a reply that could not be read, Parse error: NaN is not valid"):
                await client.anything()

    with FakeServer(notification_then_bad_and_close) as fake:
        run(main)
    assert not fake.errors
