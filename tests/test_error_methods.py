"""``.method`` on the client's own errors: the remote method, when one is concerned.

README: every exception carries ``.method`` (the remote method, when known) and
``str(e)`` names it; an error of a batch as a whole names none. These are the
errors the client makes itself (no reply involved), on both drivers.
"""

from __future__ import annotations

import pytest
from _aio_support import run
from test_client import _InterruptedRead

from jsonrpc_mini import BatchResult, ConnectionLost, RPCClient, RPCError, RPCServer, aio
from jsonrpc_mini.testing import aio_loopback, loopback

pytestmark = pytest.mark.timeout(60)

WAIT = 10.0


def _server() -> RPCServer:
    s = RPCServer()
    s.register_function(lambda a, b: a + b, name="add")
    return s


def _aio_server() -> aio.RPCServer:
    s = aio.RPCServer()
    s.register_function(lambda a, b: a + b, name="add")
    return s


def _names(exc: RPCError, method: str | None, text: str) -> None:
    assert exc.method == method
    assert str(exc) == (f"{method}: {text}" if method else text)
    assert exc.message == text  # the method is not in the message twice


# -- a batch member asked for its result before the batch was sent -----------------


def test_a_sync_members_result_before_the_send_names_its_method() -> None:
    with loopback(_server()) as c, c.batch() as b:
        member = b.add(1, 2)
        with pytest.raises(RPCError) as info:
            member.result()
        _names(info.value, "add", "the batch has not been sent yet (leave the with block first)")


def test_an_aio_members_result_before_the_send_names_its_method() -> None:
    async def main() -> RPCError:
        async with aio_loopback(_aio_server()) as c, c.batch() as b:
            member = b.add(1, 2)
            with pytest.raises(RPCError) as info:
                member.result()
            return info.value

    _names(run(main), "add", "the batch has not been sent yet (leave the with block first)")


# -- a member of a batch whose block raised: never sent ------------------------------


DISCARDED = "the batch was not sent: its with block raised KeyError"


def test_a_sync_members_result_after_its_block_raised_says_the_batch_was_not_sent() -> None:
    # Before: "the batch has not been sent yet (leave the with block first)", with the block left.
    with loopback(_server()) as c:
        with pytest.raises(KeyError), c.batch() as b:
            member, other = b.add(1, 2), b.call("add", 3, 4)
            b.notify("add", 5, 6)
            raise KeyError("abandon")
        for result in (member, other):
            with pytest.raises(RPCError) as info:
                result.result()
            _names(info.value, "add", DISCARDED)
        assert c.add(1, 2) == 3  # the client goes on


def test_an_aio_members_result_after_its_block_raised_says_the_batch_was_not_sent() -> None:
    async def main() -> list[RPCError]:
        async with aio_loopback(_aio_server()) as c:
            with pytest.raises(KeyError):
                async with c.batch() as b:
                    members = [b.add(1, 2), b.call("add", 3, 4)]
                    b.notify("add", 5, 6)
                    raise KeyError("abandon")
            errors = []
            for member in members:
                with pytest.raises(RPCError) as info:
                    member.result()
                errors.append(info.value)
            assert await c.add(1, 2) == 3
            return errors

    for error in run(main):
        _names(error, "add", DISCARDED)


def test_a_batch_sent_inside_its_block_keeps_its_results_when_the_block_raises() -> None:
    with loopback(_server()) as c:
        with pytest.raises(KeyError), c.batch() as b:
            member = b.add(1, 2)
            b.send()
            raise KeyError("after the send")
        assert member.result() == 3

    async def main() -> int:
        async with aio_loopback(_aio_server()) as c:
            with pytest.raises(KeyError):
                async with c.batch() as b:
                    member = b.add(1, 2)
                    await b.send()
                    raise KeyError("after the send")
            return member.result()  # type: ignore[no-any-return]

    assert run(main) == 3


REFUSED = "this batch was discarded: its with block raised KeyError; start a new one with client.batch()"


def test_a_discarded_sync_batch_refuses_a_later_send_and_sends_nothing() -> None:
    # Before: b.send() after the block raised sent the calls, while their results said "not sent".
    seen: list[int] = []

    def add(a: int, b: int) -> int:
        seen.append(a)
        return a + b

    server = RPCServer()
    server.register_function(add)
    with loopback(server) as c:
        with pytest.raises(KeyError), c.batch() as b:
            member = b.add(1, 2)
            raise KeyError("abandon")
        for attempt in (b.send, lambda: b.add(3, 4), lambda: b.notify("add", 5, 6)):
            with pytest.raises(RPCError) as info:
                attempt()
            assert str(info.value) == REFUSED
        with pytest.raises(RPCError, match=DISCARDED):
            member.result()
        assert c.add(7, 8) == 15
    assert seen == [7]  # only the call after the batch reached the server


def test_a_discarded_aio_batch_refuses_a_later_send_and_sends_nothing() -> None:
    seen: list[int] = []

    def add(a: int, b: int) -> int:
        seen.append(a)
        return a + b

    server = aio.RPCServer()
    server.register_function(add)

    async def main() -> list[str]:
        refusals = []
        async with aio_loopback(server) as c:
            with pytest.raises(KeyError):
                async with c.batch() as b:
                    member = b.add(1, 2)
                    raise KeyError("abandon")
            with pytest.raises(RPCError) as info:
                await b.send()
            refusals.append(str(info.value))
            with pytest.raises(RPCError) as info:
                b.add(3, 4)
            refusals.append(str(info.value))
            with pytest.raises(RPCError, match=DISCARDED):
                member.result()
            assert await c.add(7, 8) == 15
        return refusals

    assert run(main) == [REFUSED, REFUSED]
    assert seen == [7]


# -- a batch member whose caller was interrupted while it waited -------------------


def test_an_interrupted_batch_members_error_names_its_method() -> None:
    c = RPCClient(transport=_InterruptedRead(), timeout=WAIT)
    members: list[BatchResult] = []
    with pytest.raises(KeyboardInterrupt), c.batch() as b:
        members += [b.echo(1), b.call("other.name", 2)]
    for member, method in zip(members, ["echo", "other.name"], strict=True):
        with pytest.raises(RPCError) as info:
            member.result()
        _names(info.value, method, "interrupted before its reply came")
    assert c.echo(3) == 3  # the client goes on
    c.close()


# -- a sync client that is not connected -------------------------------------------

_NOT_CONNECTED = "not connected: call connect(host, port) first"


def test_a_call_on_a_client_never_connected_names_its_method() -> None:
    c = RPCClient()
    calls = [("add", lambda: c.call("add", 1, 2)), ("add", lambda: c.add(1, 2)), ("math.add", lambda: c.math.add(1))]
    for method, make in calls:
        with pytest.raises(ConnectionLost) as info:
            make()
        _names(info.value, method, _NOT_CONNECTED)
    with pytest.raises(ConnectionLost) as info:
        c.notify("log", "x")
    _names(info.value, "log", _NOT_CONNECTED)


def test_a_batch_on_a_client_never_connected_names_no_method() -> None:
    c = RPCClient()
    with pytest.raises(ConnectionLost) as info, c.batch() as b:
        b.add(1, 2)
    _names(info.value, None, _NOT_CONNECTED)
