"""'(the server said: ...)' follows messages, not reads (review12 F6 b).

README: an error with id null that no call could take is logged, "and if the server
then closes, the pending calls' ConnectionLost quotes it". The quote ends when a
reply follows the error; part of a reply is not one (it is no message, and says
nothing). Both clients, whether the error and the part came in one read or two:
how the bytes were split must not change what a lost connection says. (The sync
client used to drop the quote when a later read brought any byte: with the part in
a read of its own, a lost connection did not quote the error; in the same read as
the error, it did. The aio client quoted it in both.)
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from _aio_support import run
from _driver_helpers import WAIT, FakeServer, Peer

from jsonrpc_mini import ConnectionLost, RPCClient, RPCError, SocketTransport, aio
from jsonrpc_mini.testing import FakeSocket

pytestmark = pytest.mark.timeout(60)

TOO_LARGE = {"code": -32600, "message": "Invalid Request: message too large"}
NULL_ERROR = json.dumps({"jsonrpc": "2.0", "id": None, "error": TOO_LARGE}).encode() + b"\n"
QUOTED = r"^a: connection closed by the server \(the server said: Invalid Request: message too large\)$"


def half_reply(id_: Any) -> bytes:
    line = json.dumps({"jsonrpc": "2.0", "id": id_, "result": "a done"}).encode()
    return line[: len(line) // 2]


SPLITS = pytest.mark.parametrize("split", ["one read", "two reads"])


@SPLITS
def test_sync_half_a_reply_after_the_error_keeps_its_quote(split: str) -> None:
    # The notification goes out first: the error may be its, so call a cannot take it.
    pieces = [NULL_ERROR + half_reply(1)] if split == "one read" else [NULL_ERROR, half_reply(1)]
    sock = FakeSocket(pieces)  # each piece is one read; then the server's EOF
    with RPCClient(transport=SocketTransport(sock), timeout=WAIT) as client:
        client.notify("log", "x")
        with pytest.raises(ConnectionLost, match=QUOTED):
            client.a()


def reply(id_: Any, result: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": id_, "result": result}).encode() + b"\n"


# How the client takes the reply that follows the error (in reads of its own): one
# line decoded in one step, lines decoded together (a stale reply first), or the
# framer (the reply split over two reads: whole only with its second part).
A_REPLY = reply(1, "a done")
AFTER = {
    "line": [A_REPLY],
    "lines": [reply(99, "stale") + A_REPLY],
    "framer": [A_REPLY[:20], A_REPLY[20:]],
}


@pytest.mark.parametrize("how", list(AFTER))
@pytest.mark.parametrize("timeout", [None, WAIT])
def test_sync_a_whole_reply_after_the_error_ends_the_quote(how: str, timeout: float | None) -> None:
    sock = FakeSocket([NULL_ERROR, *AFTER[how]])
    with RPCClient(transport=SocketTransport(sock), timeout=timeout) as client:
        client.notify("log", "x")
        assert client.a() == "a done"
        with pytest.raises(ConnectionLost) as lost:
            client.b()
    assert str(lost.value) == "b: connection closed by the server"


def error_then_half_a_reply(split: str) -> Any:
    def script(peer: Peer) -> None:
        peer.json_line()  # the notification
        request = peer.json_line()
        if split == "one read":
            peer.sendall(NULL_ERROR + half_reply(request["id"]))
        else:
            peer.sendall(NULL_ERROR)
            peer.sendall(half_reply(request["id"]))
        peer.close()

    return script


@SPLITS
def test_aio_half_a_reply_after_the_error_keeps_its_quote(split: str) -> None:
    async def main() -> None:
        client = await aio.connect(*fake.address, timeout=WAIT)
        async with client:
            await client.notify("log", "x")
            with pytest.raises(ConnectionLost, match=QUOTED):
                await client.a()

    with FakeServer(error_then_half_a_reply(split)) as fake:
        run(main)
    assert not fake.errors


# A reply that names a call but cannot be used ("error": null beside "result") is a
# whole message from the server after the error, as a usable reply is: the error was
# not its last word, so the quote ends, whether the reply names a pending call (which
# fails with the unusable reply's RPCError) or one the client no longer knows. So does
# a later id-null error that the one call in flight takes. Both clients.
def unusable(id_: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": id_, "result": "a done", "error": None}).encode() + b"\n"


UNUSABLE_FOR = {"the pending call": 1, "an unknown call": 99}
CLOSED = "connection closed by the server"


def check_unusable_for(exc: BaseException, named: str) -> None:
    if named == "the pending call":
        assert type(exc) is RPCError and "reply cannot be used" in str(exc), repr(exc)
    else:  # a still waits: the close fails it, and nothing is quoted
        assert str(exc) == f"a: {CLOSED}", repr(exc)


@pytest.mark.parametrize("named", list(UNUSABLE_FOR))
def test_sync_an_unusable_reply_after_the_error_ends_the_quote(named: str) -> None:
    sock = FakeSocket([NULL_ERROR, unusable(UNUSABLE_FOR[named])])
    with RPCClient(transport=SocketTransport(sock), timeout=WAIT) as client:
        client.notify("log", "x")  # the error may be its: call a cannot take it
        with pytest.raises(RPCError) as a_failed:
            client.a()
        check_unusable_for(a_failed.value, named)
        with pytest.raises(ConnectionLost) as lost:
            client.b()
    assert str(lost.value) == f"b: {CLOSED}"


def test_sync_an_id_null_error_a_call_takes_ends_the_quote_before_it() -> None:
    other = json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}}).encode()
    # After a's reply the error is no call's (none is pending): quoted, until b takes the next one.
    sock = FakeSocket([reply(1, "a done") + NULL_ERROR, other + b"\n"])
    with RPCClient(transport=SocketTransport(sock), timeout=WAIT) as client:
        assert client.a() == "a done"
        with pytest.raises(RPCError, match=r"^b: \[-32700\] Parse error$"):
            client.b()
        with pytest.raises(ConnectionLost) as lost:
            client.c()
    assert str(lost.value) == f"c: {CLOSED}"


def error_then_unusable(id_: Any) -> Any:
    def script(peer: Peer) -> None:
        peer.json_line()  # the notification
        request = peer.json_line()
        peer.sendall(NULL_ERROR)
        peer.sendall(unusable(request["id"] if id_ == 1 else id_))
        peer.json_line()  # call b
        peer.close()

    return script


@pytest.mark.parametrize("named", list(UNUSABLE_FOR))
def test_aio_an_unusable_reply_after_the_error_ends_the_quote(named: str) -> None:
    async def main() -> None:
        client = await aio.connect(*fake.address, timeout=WAIT)
        async with client:
            await client.notify("log", "x")
            a = client.a()
            if named == "the pending call":
                with pytest.raises(RPCError) as a_failed:
                    await a
                check_unusable_for(a_failed.value, named)
            with pytest.raises(ConnectionLost) as lost:
                await client.b()
            assert str(lost.value) == f"b: {CLOSED}"
            if named == "an unknown call":
                with pytest.raises(ConnectionLost) as a_lost:
                    await a
                check_unusable_for(a_lost.value, named)

    with FakeServer(error_then_unusable(UNUSABLE_FOR[named])) as fake:
        run(main)
    assert not fake.errors
