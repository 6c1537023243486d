"""An error with id null goes to the one call in flight only when it can be nobody else's.

A server answers a message it could not read (too large, cut short, not JSON) with
an error whose id is null. With a single call outstanding the clients take it as
that call's (tests/test_client.py). Once a notification has gone out on the
connection, the error may be the notification's: then the call must not raise it
but get its own reply (review10 r3: a 5 KB notification to a server with a 2 KB
limit made an unrelated call raise "message too large"). Both drivers, a
notification alone or in a batch.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from _aio_support import run
from _driver_helpers import WAIT, FakeServer, Peer

from jsonrpc_mini import RPCClient, RPCError, aio

pytestmark = pytest.mark.timeout(60)

TOO_LARGE = {"code": -32600, "message": "Invalid Request: message too large"}
NULL_ERROR = json.dumps({"jsonrpc": "2.0", "id": None, "error": TOO_LARGE}).encode() + b"\n"


def reply(id_: Any, result: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": id_, "result": result}).encode() + b"\n"


def notification_then_call(peer: Peer) -> None:
    """The script: a notification (or a batch of them), then a call; the null-id error first."""
    peer.json_line()
    request = peer.json_line()
    peer.sendall(NULL_ERROR)
    peer.sendall(reply(request["id"], "mine"))
    peer.until(b"\n")


@pytest.mark.parametrize("how", ["alone", "in a batch"])
def test_sync_after_a_notification_a_null_id_error_is_not_the_calls(how: str) -> None:
    with FakeServer(notification_then_call) as fake, RPCClient(*fake.address, timeout=WAIT) as client:
        if how == "alone":
            client.notify("log", "x")
        else:
            with client.batch() as batch:
                batch.notify("log", "x")
        assert client.anything() == "mine"
        client.notify("bye")
    assert not fake.errors


@pytest.mark.parametrize("how", ["alone", "in a batch"])
def test_aio_after_a_notification_a_null_id_error_is_not_the_calls(how: str) -> None:
    async def main() -> Any:
        client = await aio.connect(*fake.address, timeout=WAIT)
        async with client:
            if how == "alone":
                await client.notify("log", "x")
            else:
                async with client.batch() as batch:
                    batch.notify("log", "x")
            result = await client.anything()
            await client.notify("bye")
        return result

    with FakeServer(notification_then_call) as fake:
        assert run(main) == "mine"
    assert not fake.errors


def calls_only(peer: Peer) -> None:
    request = peer.json_line()
    peer.sendall(reply(request["id"], "first"))
    peer.json_line()
    peer.sendall(NULL_ERROR)
    peer.until(b"\n")


def test_sync_without_a_notification_the_only_call_still_takes_it() -> None:
    with FakeServer(calls_only) as fake, RPCClient(*fake.address, timeout=WAIT) as client:
        assert client.first() == "first"
        with pytest.raises(RPCError, match="message too large") as info:
            client.second()
        assert info.value.code == -32600
        client.notify("bye")
    assert not fake.errors


def test_aio_without_a_notification_the_only_call_still_takes_it() -> None:
    async def main() -> None:
        client = await aio.connect(*fake.address, timeout=WAIT)
        async with client:
            assert await client.first() == "first"
            with pytest.raises(RPCError, match="message too large") as info:
                await client.second()
            assert info.value.code == -32600
            await client.notify("bye")

    with FakeServer(calls_only) as fake:
        run(main)
    assert not fake.errors
