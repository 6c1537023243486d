"""An error with id null goes to the one call in flight only when it can be nobody else's.

A server answers a message it could not read (too large, cut short, not JSON) with
an error whose id is null. With a single call outstanding the clients take it as
that call's (tests/test_client.py). Once a notification has gone out on the
connection, the error may be the notification's: then the call must not raise it
but get its own reply (review10 r3: a 5 KB notification to a server with a 2 KB
limit made an unrelated call raise "message too large"). Both drivers, a
notification alone or in a batch. The same holds after a call given up on, and the
doubt ends once a call sent afterwards is answered (review11 f1, f3: below).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _driver_helpers import Peer
from _scripted_helpers import against_aio, against_sync

from jsonrpc_mini import ConnectionLost, RPCClient, RPCError, RPCTimeout, aio

pytestmark = pytest.mark.timeout(60)

TOO_LARGE = {"code": -32600, "message": "Invalid Request: message too large"}
NULL_ERROR = json.dumps({"jsonrpc": "2.0", "id": None, "error": TOO_LARGE}).encode() + b"\n"


def reply(id_: Any, result: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": id_, "result": result}).encode() + b"\n"


def notify_sync(client: RPCClient, how: str) -> None:
    if how == "alone":
        client.notify("log", "x")
    else:
        with client.batch() as batch:
            batch.notify("log", "x")


async def notify_aio(client: aio.RPCClient, how: str) -> None:
    if how == "alone":
        await client.notify("log", "x")
    else:
        async with client.batch() as batch:
            batch.notify("log", "x")


@contextlib.contextmanager
def raises_too_large() -> Iterator[None]:
    """The block raises the id-null error as an RPCError (code -32600, "message too large")."""
    with pytest.raises(RPCError, match="message too large") as info:
        yield
    assert info.value.code == -32600


@contextlib.contextmanager
def lost_without_a_quote() -> Iterator[None]:
    """The block raises ConnectionLost quoting nothing the server said."""
    with pytest.raises(ConnectionLost) as lost:
        yield
    assert "the server said" not in str(lost.value)


HOW = pytest.mark.parametrize("how", ["alone", "in a batch"])


def notification_then_call(peer: Peer) -> None:
    """The script: a notification (or a batch of them), then a call; the null-id error first."""
    peer.json_line()
    request = peer.json_line()
    peer.sendall(NULL_ERROR)
    peer.sendall(reply(request["id"], "mine"))
    peer.until(b"\n")


@HOW
def test_sync_after_a_notification_a_null_id_error_is_not_the_calls(how: str) -> None:
    def body(client: RPCClient) -> Any:
        notify_sync(client, how)
        return client.anything()

    assert against_sync(notification_then_call, body) == "mine"


@HOW
def test_aio_after_a_notification_a_null_id_error_is_not_the_calls(how: str) -> None:
    async def body(client: aio.RPCClient) -> Any:
        await notify_aio(client, how)
        return await client.anything()

    assert against_aio(notification_then_call, body) == "mine"


def calls_only(peer: Peer) -> None:
    request = peer.json_line()
    peer.sendall(reply(request["id"], "first"))
    peer.json_line()
    peer.sendall(NULL_ERROR)
    peer.until(b"\n")


def test_sync_without_a_notification_the_only_call_still_takes_it() -> None:
    def body(client: RPCClient) -> None:
        assert client.first() == "first"
        with raises_too_large():
            client.second()

    against_sync(calls_only, body)


def test_aio_without_a_notification_the_only_call_still_takes_it() -> None:
    async def body(client: aio.RPCClient) -> None:
        assert await client.first() == "first"
        with raises_too_large():
            await client.second()

    against_aio(calls_only, body)


# -- review11 f3/f1: what makes an id-null error ambiguous, and what ends that ----------
#
# The server reads a connection's messages in order and answers one it cannot read as
# it reads it. So once a call sent after a notification (or after a call given up on)
# has its reply, an id-null error can no longer be that message's: the one call in
# flight takes it again (f3: before, one notification early in a connection's life made
# every later such error only logged, and the call that caused it waited for ever with
# the default timeout). A call given up on (timed out, cancelled) after it went out is
# such a message too (f1: its error was raised by the next call alone in flight).


def notification_answered_call_then_bad_call(peer: Peer) -> None:
    peer.json_line()  # the notification (or a batch of them)
    first = peer.json_line()
    peer.sendall(reply(first["id"], "first"))
    peer.json_line()  # the call the server cannot read
    peer.sendall(NULL_ERROR)
    peer.until(b"\n")


@HOW
def test_sync_a_reply_after_the_notification_makes_the_error_the_calls_again(how: str) -> None:
    def body(client: RPCClient) -> None:
        notify_sync(client, how)
        assert client.first() == "first"
        with raises_too_large():
            client.second()

    against_sync(notification_answered_call_then_bad_call, body)


@HOW
def test_aio_a_reply_after_the_notification_makes_the_error_the_calls_again(how: str) -> None:
    async def body(client: aio.RPCClient) -> None:
        await notify_aio(client, how)
        assert await client.first() == "first"
        with raises_too_large():
            await client.second()

    against_aio(notification_answered_call_then_bad_call, body)


def earlier_call_answered_after_the_notification(peer: Peer) -> None:
    first = peer.json_line()  # sent before the notification
    peer.json_line()  # the notification
    peer.sendall(reply(first["id"], "first"))
    second = peer.json_line()
    peer.sendall(NULL_ERROR)
    peer.sendall(reply(second["id"], "mine"))
    peer.until(b"\n")


def test_aio_only_a_call_sent_after_the_notification_can_end_the_doubt() -> None:
    # The first call's reply says nothing about the notification sent after it.
    async def body(client: aio.RPCClient) -> Any:
        first = asyncio.ensure_future(client.first())
        await asyncio.sleep(0)  # the first call goes out
        await client.notify("log", "x")
        assert await first == "first"
        return await client.second()

    assert against_aio(earlier_call_answered_after_the_notification, body) == "mine"


def given_up_call_then_call(peer: Peer) -> None:
    peer.json_line()  # the call given up on: never answered
    second = peer.json_line()
    peer.sendall(NULL_ERROR)
    peer.sendall(reply(second["id"], "mine"))
    peer.until(b"\n")


def test_sync_after_a_timed_out_call_a_null_id_error_is_not_the_next_calls() -> None:
    def body(client: RPCClient) -> Any:
        with pytest.raises(RPCTimeout):
            client.with_timeout(0.2).first()
        return client.second()

    assert against_sync(given_up_call_then_call, body) == "mine"


def test_aio_after_a_cancelled_call_a_null_id_error_is_not_the_next_calls() -> None:
    async def body(client: aio.RPCClient) -> Any:
        first = asyncio.ensure_future(client.first())
        second = asyncio.ensure_future(client.second())
        await asyncio.sleep(0)  # both go out
        first.cancel()
        return await second

    assert against_aio(given_up_call_then_call, body) == "mine"


def test_aio_after_a_timed_out_call_a_null_id_error_is_not_the_next_calls() -> None:
    async def body(client: aio.RPCClient) -> Any:
        with pytest.raises(RPCTimeout):
            await client.with_timeout(0.2).first()
        return await client.second()

    assert against_aio(given_up_call_then_call, body) == "mine"


def given_up_call_answered_call_then_bad_call(peer: Peer) -> None:
    peer.json_line()  # the call given up on: still running on the server, never answered
    second = peer.json_line()
    peer.sendall(reply(second["id"], "second"))
    peer.json_line()
    peer.sendall(NULL_ERROR)
    peer.until(b"\n")


def test_sync_after_a_timed_out_call_a_later_reply_ends_the_doubt() -> None:
    def body(client: RPCClient) -> None:
        with pytest.raises(RPCTimeout):
            client.with_timeout(0.2).first()
        assert client.second() == "second"
        with raises_too_large():
            client.third()

    against_sync(given_up_call_answered_call_then_bad_call, body)


def test_aio_after_a_cancelled_call_a_later_reply_ends_the_doubt() -> None:
    # review11 M0: the cancelled call's entry stays in the pending map until its reply
    # or a sweep; that alone must not keep the next bad call from getting its error.
    async def body(client: aio.RPCClient) -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.first(), 0.1)
        assert await client.second() == "second"
        with raises_too_large():
            await client.third()

    against_aio(given_up_call_answered_call_then_bad_call, body)


def second_notification_while_the_witness_runs(peer: Peer) -> None:
    peer.json_line()  # the first notification
    first = peer.json_line()  # sent after it
    peer.json_line()  # a second notification, sent while the first call runs
    peer.sendall(reply(first["id"], "first"))
    second = peer.json_line()
    peer.sendall(NULL_ERROR)
    peer.sendall(reply(second["id"], "mine"))
    peer.until(b"\n")


def test_aio_a_reply_ends_the_doubt_only_for_what_was_sent_before_its_call() -> None:
    # The first call's reply proves the first notification read, not the second.
    async def body(client: aio.RPCClient) -> Any:
        await client.notify("log", "x")
        first = asyncio.ensure_future(client.first())
        await asyncio.sleep(0)  # the first call goes out
        await client.notify("log", "y")
        assert await first == "first"
        return await client.second()

    assert against_aio(second_notification_while_the_witness_runs, body) == "mine"


# -- the aio client quotes the server's last word, as the sync client does ----------


def notification_then_error_and_close(peer: Peer) -> None:
    peer.json_line()  # the notification
    peer.json_line()  # the call
    peer.sendall(NULL_ERROR)  # (could be either's: the client cannot tell)
    peer.close()


def notification_error_then_more(peer: Peer) -> None:
    peer.json_line()  # the notification
    request = peer.json_line()
    peer.sendall(NULL_ERROR)
    peer.sendall(reply(request["id"], "mine"))
    peer.json_line()  # the next call
    peer.close()


def test_aio_a_connection_lost_quotes_the_error_the_server_closed_after() -> None:
    async def body(client: aio.RPCClient) -> None:
        await client.notify("log", "x")
        with pytest.raises(ConnectionLost, match=r"\(the server said: .*message too large\)"):
            await client.anything()

    against_aio(notification_then_error_and_close, body, bye=False)


def test_aio_a_connection_lost_does_not_quote_an_error_followed_by_more() -> None:
    async def body(client: aio.RPCClient) -> None:
        await client.notify("log", "x")
        assert await client.anything() == "mine"
        with lost_without_a_quote():
            await client.anything()

    against_aio(notification_error_then_more, body, bye=False)


# -- helper-44's note: within one read, a message after the error ends its quote --------


def error_and_reply_in_one_write(result: Any) -> Callable[[Peer], None]:
    def script(peer: Peer) -> None:
        peer.json_line()  # the notification
        request = peer.json_line()
        peer.sendall(NULL_ERROR + reply(request["id"], result))  # one read for the client
        peer.json_line()  # the next call
        peer.close()

    return script


# A plain result goes the client's one-step way for whole lines; one with an escape in a
# string makes the lines go through the framer (another place replies are stored).
RESULTS = pytest.mark.parametrize("result", ["mine", "mi\nne"], ids=["lines", "framer"])


def reply_and_error_in_one_write_then_close(peer: Peer) -> None:
    request = peer.json_line()
    peer.sendall(reply(request["id"], "mine") + NULL_ERROR)  # the error is the last word
    peer.json_line()  # the next call
    peer.close()


@RESULTS
def test_sync_an_error_followed_by_a_reply_in_the_same_read_is_not_quoted(result: str) -> None:
    def body(client: RPCClient) -> None:
        client.notify("log", "x")
        assert client.anything() == result
        with lost_without_a_quote():
            client.anything()

    against_sync(error_and_reply_in_one_write(result), body, bye=False)


def test_sync_an_error_after_a_reply_in_the_same_read_is_quoted() -> None:
    def body(client: RPCClient) -> None:
        assert client.anything() == "mine"
        with pytest.raises(ConnectionLost, match=r"\(the server said: .*message too large\)"):
            client.anything()

    against_sync(reply_and_error_in_one_write_then_close, body, bye=False)


@RESULTS
def test_aio_an_error_followed_by_a_reply_in_the_same_read_is_not_quoted(result: str) -> None:
    async def body(client: aio.RPCClient) -> None:
        await client.notify("log", "x")
        assert await client.anything() == result
        with lost_without_a_quote():
            await client.anything()

    against_aio(error_and_reply_in_one_write(result), body, bye=False)
