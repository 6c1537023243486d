"""MemoryTransport vs asyncio TCP (127.0.0.1): what follows the end of a connection.

As in test_memory_transport_vs_tcp.py, each scenario runs over both and the
observations must agree, plus the TCP values pinned.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from _aio_support import WAIT, run, spin_until
from _memory_tcp_support import Events, Warned, both, connected, ends

from jsonrpc_mini._aio_linger import drop
from jsonrpc_mini.testing._aio_links import memory_link

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.timeout(60),
]


async def _writes_logged(transport: asyncio.Transport, count: int) -> list[int]:
    """Write ``count`` times (a few loop rounds apart): the warnings logged so far after each."""
    warned = Warned()
    logging.getLogger("asyncio").addHandler(warned)
    try:
        seen = []
        for _ in range(count):
            transport.write(b"w" * 10)
            seen.append(len(warned.messages))
            for _ in range(2):
                await asyncio.sleep(0)
    finally:
        logging.getLogger("asyncio").removeHandler(warned)
    assert set(warned.messages) <= {"socket.send() raised exception."}
    return seen


@pytest.mark.parametrize("ending", ["close", "abort", "reset by the peer", "closed on the peer's EOF"])
def test_writes_after_the_end_are_counted_and_logged_from_the_fifth(ending: str) -> None:
    # asyncio's TCP transport counts the connection lost as soon as it is closed with
    # nothing buffered, aborted, or lost to an error (_conn_lost), and from then on
    # drops writes and logs each from the fifth. MemoryTransport dropped them all
    # silently (this test failed: no warning at all).
    async def scenario(kind: str) -> list[Any]:
        a, b = Events(keep_open=ending != "closed on the peer's EOF"), Events(keep_open=False)
        async with connected(kind, a, b):
            ta, tb = ends(a, b)
            if ending == "close":
                ta.close()
            elif ending == "abort":
                ta.abort()
            elif ending == "reset by the peer":
                drop(tb)  # SO_LINGER 0 then abort(): a reset (MemoryTransport's abort() is one)
                await asyncio.wait_for(a.lost, WAIT)
            else:
                tb.close()
                await asyncio.wait_for(a.lost, WAIT)
            seen: list[Any] = [await _writes_logged(ta, 7)]
            seen.append(type(await asyncio.wait_for(a.lost, WAIT)).__name__)
        return seen

    seen = both(scenario)
    assert seen["memory"] == seen["tcp"]
    lost = "ConnectionResetError" if ending == "reset by the peer" else "NoneType"
    assert seen["tcp"] == [[0, 0, 0, 0, 1, 2, 3], lost]


@pytest.mark.parametrize("before", ["nothing", "a reply"])
def test_closing_with_unread_bytes_resets_the_peer(before: str) -> None:
    # A TCP socket closed with bytes it has not read sends a reset, not a FIN: the
    # peer reads what was sent before, then ECONNRESET (no EOF). MemoryTransport's
    # peer read an EOF, and only its second write after it failed (BrokenPipeError):
    # this test failed.
    async def scenario(kind: str) -> list[Any]:
        a, b = Events(), Events()
        async with connected(kind, a, b):
            ta, tb = ends(a, b)
            tb.pause_reading()  # b does not read what a sends
            ta.write(b"unread")
            for _ in range(10):  # (over TCP the bytes reach b's socket meanwhile)
                await asyncio.sleep(0)
            if before == "a reply":
                tb.write(b"reply")
            tb.close()
            seen: list[Any] = [type(await asyncio.wait_for(a.lost, WAIT)).__name__]
            await asyncio.wait_for(b.lost, WAIT)
            seen += [a.events, b.events, bytes(a.data), bytes(b.data)]
        return seen

    seen = both(scenario)
    assert seen["memory"] == seen["tcp"]
    replied = before == "a reply"
    assert seen["tcp"] == [
        "ConnectionResetError",
        [("data", 5), ("lost", "ConnectionResetError")] if replied else [("lost", "ConnectionResetError")],
        [("lost", None)],
        b"reply" if replied else b"",
        b"",
    ]


def test_closing_after_reading_everything_sends_an_eof() -> None:
    """The control: nothing unread, so a plain close (FIN) and the peer reads EOF."""

    async def scenario(kind: str) -> list[Any]:
        a, b = Events(), Events()
        async with connected(kind, a, b):
            ta, tb = ends(a, b)
            ta.write(b"read")
            await spin_until(lambda: b.data == b"read")
            tb.close()
            await asyncio.wait_for(a.got_eof.wait(), WAIT)
            await asyncio.wait_for(b.lost, WAIT)
            return [list(a.events), b.events]

    seen = both(scenario)
    assert seen["memory"] == seen["tcp"] == [[("eof",)], [("data", 4), ("lost", None)]]


@pytest.mark.parametrize("ending", ["close", "reset", "close with unread bytes"])
@pytest.mark.parametrize("then", ["resume", "write"])
def test_a_protocol_not_reading_hears_the_end_when_it_resumes_or_writes(ending: str, then: str) -> None:
    # Over TCP a protocol that paused reading is not told of the peer's close or
    # reset until it reads again (resume_reading) or a write of its meets the reset.
    # MemoryTransport told it at once (eof_received, connection_lost): this test failed.
    async def scenario(kind: str) -> list[Any]:
        a, b = Events(), Events()
        async with connected(kind, a, b):
            ta, tb = ends(a, b)
            tb.pause_reading()
            if ending == "reset":
                drop(ta)  # (MemoryTransport's abort() is one)
            elif ending == "close":
                ta.close()
            else:
                ta.pause_reading()
                tb.write(b"unread")
                for _ in range(10):
                    await asyncio.sleep(0)
                ta.close()
            await asyncio.wait_for(a.lost, WAIT)
            await asyncio.sleep(0.05)  # (time for the FIN or RST to arrive; no outcome depends on it)
            seen: list[Any] = [list(b.events), tb.is_closing()]
            if then == "resume":
                tb.resume_reading()
            else:
                for _ in range(2):  # (after a close: the first goes into the void, the second fails)
                    tb.write(b"w")
                    for _ in range(3):
                        await asyncio.sleep(0)
                seen.append(tb.is_closing())
            if ending == "close" and then == "resume":
                await asyncio.wait_for(b.got_eof.wait(), WAIT)
                tb.close()
            seen.append(type(await asyncio.wait_for(b.lost, WAIT)).__name__)
            seen.append(b.events)
        return seen

    seen = both(scenario)
    assert seen["memory"] == seen["tcp"]
    assert seen["tcp"][:2] == [[], False]
    lost = "ConnectionResetError" if ending != "close" else "NoneType" if then == "resume" else "BrokenPipeError"
    assert seen["tcp"][-2] == lost


# -- the memory link alone -----------------------------------------------------------


@pytest.mark.parametrize("first", ["write", "write, close"])
def test_abort_drops_every_byte_not_delivered_yet(first: str) -> None:
    """A deliberate difference: ``abort()`` drops all the peer has not taken, then resets it.

    Over TCP the bytes written before in the same loop round are in the peer's
    kernel already: with ``drop()`` (SO_LINGER 0) the peer reads them, then
    ECONNRESET; a plain ``abort()`` right after a ``close()`` that left nothing in
    asyncio's buffer does nothing (the peer reads them and an EOF), as it does one
    round later here too (``connection_lost`` has come: the last case).
    """

    async def main() -> list[Any]:
        a, b = Events(), Events(keep_open=False)
        async with connected("memory", a, b):
            ta, _ = ends(a, b)
            ta.write(b"hello")
            if first == "write, close":
                ta.close()
            ta.abort()
            await asyncio.wait_for(asyncio.gather(a.lost, b.lost), WAIT)
            return [a.events, b.events, bytes(b.data)]

    assert run(main) == [[("lost", None)], [("lost", "ConnectionResetError")], b""]


def test_abort_once_the_close_is_done_does_nothing() -> None:
    async def main() -> list[Any]:
        a, b = Events(), Events(keep_open=True)
        async with connected("memory", a, b):
            ta, tb = ends(a, b)
            ta.write(b"hello")
            ta.close()
            await asyncio.wait_for(asyncio.gather(a.lost, b.got_eof.wait()), WAIT)
            ta.abort()  # (a reset would reach b before its own close below)
            tb.close()
            await asyncio.wait_for(b.lost, WAIT)
            return [a.events, b.events]

    assert run(main) == [[("lost", None)], [("data", 5), ("eof",), ("lost", None)]]


def test_a_reset_held_for_a_protocol_not_reading_ends_the_link_tasks() -> None:
    """The direction waiting for the paused end to read ends with the reset (not at its close)."""

    async def main() -> None:
        a, b = Events(), Events()
        ta, tb, link = memory_link(a, b)
        tb.pause_reading()
        ta.write(b"queued")  # the client->server direction waits for b to read
        for _ in range(5):
            await asyncio.sleep(0)
        ta.abort()
        await asyncio.wait_for(a.lost, WAIT)
        await link.wait_closed(WAIT)  # (cancels what is still running at the bound)
        assert [task.cancelled() for task in link.tasks] == [False, False]
        assert b.events == []  # the reset is held: b has not read or written since
        tb.close()
        assert await asyncio.wait_for(b.lost, WAIT) is None

    run(main)
