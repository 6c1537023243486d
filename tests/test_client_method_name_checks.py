"""A method name that is not a str is refused by the client before anything is sent.

``c.call(5)`` used to go out as ``"method": 5`` and come back as the server's -32600,
which names neither the call nor the mistake; ``c.notify(5)`` went out too and got no
answer at all (the server's error, without an id, was only logged by the client);
``c.call(b"add")`` failed inside the JSON encoder. Now every client entry that takes a
name (``call``, ``notify``, both batch builders, a ``with_timeout`` view; sync and
asyncio) raises TypeError naming the type, and the connection is left as it was.
A str subclass (an ``enum.StrEnum`` member, say) is a str and is sent as its value.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _aio_support import run
from _driver_helpers import wait_for

from jsonrpc_mini import RPCClient, RPCServer, SocketTransport, aio
from jsonrpc_mini.testing import FakeSocket, loopback

pytestmark = pytest.mark.timeout(60)

NOT_NAMES = [5, None, b"add", ["add"], 1.5, True]


class Names(enum.StrEnum):
    ADD = "add"


def message(bad: object) -> str:
    return rf"^the method name must be a str, not {type(bad).__name__}: {re.escape(repr(bad))}$"


@pytest.fixture
def served() -> Iterator[tuple[RPCServer, list[str]]]:
    """A server with ``add`` and ``log`` (records its argument), and what ``log`` got."""
    logged: list[str] = []
    server = RPCServer()
    server.register_function(lambda a, b: a + b, name="add")
    server.register_function(logged.append, name="log")
    yield server, logged


SYNC_ENTRIES: dict[str, Callable[[RPCClient, object], Any]] = {
    "call": lambda c, m: c.call(m, 1, 2),  # type: ignore[arg-type]
    "notify": lambda c, m: c.notify(m, "x"),  # type: ignore[arg-type]
    "view call": lambda c, m: c.with_timeout(5.0).call(m, 1, 2),  # type: ignore[arg-type]
    "view notify": lambda c, m: c.with_timeout(5.0).notify(m, "x"),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("entry", sorted(SYNC_ENTRIES))
@pytest.mark.parametrize("bad", NOT_NAMES, ids=repr)
def test_sync_client_refuses_the_name_and_keeps_the_connection(
    served: tuple[RPCServer, list[str]], entry: str, bad: object
) -> None:
    server, logged = served
    with loopback(server) as c:
        with pytest.raises(TypeError, match=message(bad)):
            SYNC_ENTRIES[entry](c, bad)
        # Nothing went out: the server answered nothing the client had to skip, and the
        # next call and notification are answered and run as the first ones.
        assert c.add(2, 3) == 5
        c.notify("log", "after")
        assert c.add(1, 1) == 2
        wait_for(lambda: logged == ["after"], "the notification after the refused one running alone")


@pytest.mark.parametrize("bad", NOT_NAMES, ids=repr)
def test_sync_batch_refuses_the_name_and_discards_the_batch(served: tuple[RPCServer, list[str]], bad: object) -> None:
    server, logged = served
    with loopback(server) as c:
        with pytest.raises(TypeError, match=message(bad)), c.batch() as b:
            b.notify("log", "never")
            b.call(bad, 1, 2)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=message(bad)), c.batch() as b:
            b.notify(bad, "x")  # type: ignore[arg-type]
        with c.batch() as b:
            r = b.add(1, 2)
        assert r.result() == 3
        c.notify("log", "last")
        wait_for(lambda: logged == ["last"], "only the notification sent after the refused batches running")


def test_a_str_subclass_is_a_name(served: tuple[RPCServer, list[str]]) -> None:
    server, _ = served
    with loopback(server) as c:
        assert c.call(Names.ADD, 1, 2) == 3
        with c.batch() as b:
            r = b.call(Names.ADD, 2, 2)
        assert r.result() == 4


@pytest.mark.parametrize("bad", NOT_NAMES, ids=repr)
def test_aio_client_refuses_the_name_and_keeps_the_connection(served: tuple[RPCServer, list[str]], bad: object) -> None:
    server, logged = served
    address = server.start("127.0.0.1", 0)
    assert isinstance(address, tuple)

    async def main() -> None:
        async with await aio.connect(*address, timeout=10.0) as c:
            with pytest.raises(TypeError, match=message(bad)):
                c.call(bad, 1, 2)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match=message(bad)):
                await c.notify(bad, "x")  # type: ignore[arg-type]
            with pytest.raises(TypeError, match=message(bad)):
                c.with_timeout(5.0).call(bad)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match=message(bad)):
                async with c.batch() as b:
                    b.call(bad, 1, 2)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match=message(bad)):
                async with c.batch() as b:
                    b.notify(bad)  # type: ignore[arg-type]
            assert await c.add(2, 3) == 5
            await c.notify("log", "after")
            assert await c.call(Names.ADD, 1, 1) == 2

    try:
        run(main)
    finally:
        server.shutdown()
    assert logged == ["after"]


# The tests above infer "nothing went out" from the later calls working: a client that
# sent ``"method": 5`` as a notification and raised afterwards passed them (Review28,
# session 29: such a mutant passed 35 of 37). Here the bytes written are checked.
@pytest.mark.parametrize("entry", ["call", "notify", "view call", "view notify", "batch call", "batch notify"])
@pytest.mark.parametrize("bad", NOT_NAMES, ids=repr)
def test_a_refused_name_writes_no_byte(entry: str, bad: Any) -> None:
    sock = FakeSocket([], eof=False)
    with RPCClient(transport=SocketTransport(sock), timeout=5.0) as client:
        target = client.with_timeout(5.0) if entry.startswith("view") else client
        with pytest.raises(TypeError, match=r"^the method name must be a str"):
            if entry.startswith("batch"):
                with client.batch() as b:
                    (b.call if entry.endswith("call") else b.notify)(bad)
            elif entry.endswith("call"):
                target.call(bad)
            else:
                target.notify(bad)
        assert sock.sent == b""
