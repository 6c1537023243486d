"""A notification is marked unread where its bytes take their place in the output (review12 F7, R2).

An error with id null is raised by the one call in flight only if no message that
gets no reply may still be unread by the server; a call sent after such a message
ends that doubt once answered (tests/test_null_id_errors.py). A notification
encoded, then kept from writing (sync: its thread has not taken the send lock yet;
aio: the transport's writing is paused) must not count as sent before calls that
are written ahead of it: were it marked at its encoding, such a call would end the
doubt while the notification is still unsent, and the notification's id-null
error would then be raised by an unrelated call alone in flight.

The script: the call made while the notification waits (``echo``) goes out and is
answered first; then ``slow``; then the notification, which the server cannot read
(an id-null error), and only then ``slow``'s own reply. ``slow`` must get its reply.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from _aio_support import run
from _driver_helpers import WAIT, FakeServer, Peer, start_thread
from test_null_id_errors import HOW, notify_aio, notify_sync

from jsonrpc_mini import RPCClient, RPCError, aio

pytestmark = pytest.mark.timeout(60)

TOO_LARGE = {"code": -32600, "message": "Invalid Request: message too large"}
NULL_ERROR = json.dumps({"jsonrpc": "2.0", "id": None, "error": TOO_LARGE}).encode() + b"\n"


def reply(id_: Any, result: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": id_, "result": result}).encode() + b"\n"


class Script:
    """The server: echo answered, slow read (``slow_read`` set), the notification, then the error and slow's reply."""

    def __init__(self) -> None:
        self.slow_read = threading.Event()
        self.notification: Any = None

    def __call__(self, peer: Peer) -> None:
        echo = peer.json_line()
        assert echo["method"] == "echo"
        peer.sendall(reply(echo["id"], echo["params"][0]))
        slow = peer.json_line()
        assert slow["method"] == "slow"
        self.slow_read.set()
        self.notification = peer.json_line()  # sent last
        peer.sendall(NULL_ERROR)  # the notification's: the server could not read it
        peer.sendall(reply(slow["id"], "slow done"))
        peer.until(b"\n")  # the client's "bye"


def notified(message: Any) -> bool:
    """Whether ``message`` (a notification, or a batch array) is the test's notification."""
    members = message if isinstance(message, list) else [message]
    return [m["method"] for m in members] == ["log"] and "id" not in members[0]


@HOW
def test_sync_a_call_written_before_a_waiting_notification_does_not_end_the_doubt(how: str) -> None:
    script = Script()
    with FakeServer(script) as fake, RPCClient(*fake.address, timeout=WAIT) as client:
        link = client._current.link
        assert link is not None
        real_send = link.send
        waiting, go = threading.Event(), threading.Event()

        def send(data: bytes, *args: Any, **kwargs: Any) -> None:
            # The notifying thread is descheduled after encoding, before it sends.
            if b'"log"' in data:
                waiting.set()
                assert go.wait(WAIT)
            real_send(data, *args, **kwargs)

        link.send = send  # type: ignore[method-assign]
        notifier = start_thread(notify_sync, client, how)
        assert waiting.wait(WAIT)
        assert client.echo(1) == 1  # registered after the notification's encoding, written before it
        outcome: list[Any] = []

        def slow() -> None:
            try:
                outcome.append(client.slow())
            except RPCError as exc:
                outcome.append(exc)

        slow_thread = start_thread(slow)
        assert script.slow_read.wait(WAIT)  # slow is out, alone in flight
        go.set()
        notifier.join(WAIT)
        slow_thread.join(WAIT)
        assert not notifier.is_alive() and not slow_thread.is_alive()
        assert outcome == ["slow done"]
        client.notify("bye")
    assert not fake.errors
    assert notified(script.notification)


@HOW
def test_aio_a_call_written_before_a_notification_held_by_a_pause_does_not_end_the_doubt(how: str) -> None:
    script = Script()

    async def main() -> Any:
        client = await aio.connect(*fake.address, timeout=WAIT)
        async with client:
            link = client._link
            link.pause_writing()  # what the transport calls over its high-water mark
            notify = asyncio.ensure_future(notify_aio(client, how))
            for _ in range(5):  # (the notification task runs up to its wait for writing)
                await asyncio.sleep(0)
            assert not notify.done()
            echo = client.echo(1)  # registered after the notification's encoding: held
            link.resume_writing()  # the held call goes out at once
            slow = client.slow()  # then this one, before the notification task runs again
            await notify
            assert await echo == 1
            result = await slow
            await client.notify("bye")
        return result

    with FakeServer(script) as fake:
        assert run(main) == "slow done"
    assert not fake.errors
    assert notified(script.notification)


# A batch holding a notification and calls: its reply array proves the server read it
# (the batch's first call witnesses its notifications), so the doubt ends with it.


def batch_answered_then_bad_call(peer: Peer) -> None:
    batch = peer.json_line()
    assert [member.get("method") for member in batch] == ["log", "first"]
    peer.sendall(b"[" + reply(batch[1]["id"], "first").rstrip() + b"]\n")
    peer.json_line()  # the call the server cannot read
    peer.sendall(NULL_ERROR)
    peer.until(b"\n")  # the client's "bye"


def test_sync_a_batchs_reply_ends_the_doubt_of_its_own_notification() -> None:
    with FakeServer(batch_answered_then_bad_call) as fake, RPCClient(*fake.address, timeout=WAIT) as client:
        with client.batch() as batch:
            batch.notify("log", "x")
            first = batch.first()
        assert first.result() == "first"
        with pytest.raises(RPCError, match="message too large"):
            client.second()
        client.notify("bye")
    assert not fake.errors


def test_aio_a_batchs_reply_ends_the_doubt_of_its_own_notification() -> None:
    async def main() -> None:
        client = await aio.connect(*fake.address, timeout=WAIT)
        async with client:
            async with client.batch() as batch:
                batch.notify("log", "x")
                first = batch.first()
            assert first.result() == "first"
            with pytest.raises(RPCError, match="message too large"):
                await client.second()
            await client.notify("bye")

    with FakeServer(batch_answered_then_bad_call) as fake:
        run(main)
    assert not fake.errors
