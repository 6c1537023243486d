"""MemoryTransport (aio_loopback's in-memory link) answers as asyncio's TCP transport does.

Each scenario runs twice, over a real asyncio TCP connection on 127.0.0.1 and over
``memory_link``, and what the protocols observe (calls, their order, the bytes, the
exceptions, the transport's answers) must agree. The deliberate differences (see
``MemoryTransport``'s docstring) are tested on their own.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import pytest
from _aio_support import WAIT, run, spin_until
from _memory_tcp_support import BIG, KINDS, Events, Warned, both, connected, ends, small_send_buffer

from jsonrpc_mini._aio_linger import drop
from jsonrpc_mini.testing import FaultPlan
from jsonrpc_mini.testing._aio_links import memory_link

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.timeout(60),
]


def test_write_buffer_limits_are_computed_and_checked_as_asyncio_does() -> None:
    settings: list[dict[str, int]] = [{}, {"low": 100}, {"high": 100}, {"high": 50, "low": 10}, {"high": 0}]
    refused: list[dict[str, int]] = [{"high": 10, "low": 20}, {"low": -1}, {"high": -1}]

    async def scenario(kind: str) -> list[Any]:
        a, b = Events(), Events()
        seen: list[Any] = []
        async with connected(kind, a, b):
            ta, _ = ends(a, b)
            seen.append(ta.get_write_buffer_limits())
            for kwargs in settings:
                ta.set_write_buffer_limits(**kwargs)
                seen.append(ta.get_write_buffer_limits())
            for kwargs in refused:
                with pytest.raises(ValueError, match="must be >= low") as info:
                    ta.set_write_buffer_limits(**kwargs)
                seen.append((str(info.value), ta.get_write_buffer_limits()))  # the marks stay
        return seen

    seen = both(scenario)
    assert seen["memory"] == seen["tcp"]
    assert seen["tcp"][:6] == [(16384, 65536), (16384, 65536), (100, 400), (25, 100), (10, 50), (0, 0)]


def test_writing_pauses_above_the_high_mark_and_resumes_at_the_low_one() -> None:
    async def scenario(kind: str) -> list[Any]:
        a, b = Events(), Events()
        async with connected(kind, a, b):
            ta, tb = ends(a, b)
            small_send_buffer(ta)
            tb.pause_reading()  # a reader that does not read: the writer's bytes pile up
            ta.set_write_buffer_limits(high=64 * 1024, low=1024)
            ta.write(b"x" * BIG)
            at_write = list(a.events)  # pause_writing is called from inside write()
            tb.resume_reading()
            await asyncio.wait_for(a.resumed.wait(), WAIT)
            await spin_until(lambda: len(b.data) == BIG)
            return [at_write, list(a.events), bytes(b.data) == b"x" * BIG]

    seen = both(scenario)
    assert seen["memory"] == seen["tcp"] == [[("pause", True)], [("pause", True), ("resume", True)], True]


def test_lowering_the_high_mark_below_what_is_queued_pauses_writing_at_once() -> None:
    async def scenario(kind: str) -> list[Any]:
        a, b = Events(), Events()
        async with connected(kind, a, b):
            ta, tb = ends(a, b)
            small_send_buffer(ta)
            tb.pause_reading()
            ta.set_write_buffer_limits(high=2 * BIG)
            ta.write(b"y" * BIG)
            seen: list[Any] = [list(a.events)]
            ta.set_write_buffer_limits(high=1024)
            seen.append(list(a.events))
            tb.resume_reading()
            await asyncio.wait_for(a.resumed.wait(), WAIT)
            return seen

    seen = both(scenario)
    assert seen["memory"] == seen["tcp"] == [[], [("pause", True)]]


def test_abort_tells_its_own_protocol_none_later_and_drops_later_writes() -> None:
    async def scenario(kind: str) -> list[Any]:
        a, b = Events(), Events()
        async with connected(kind, a, b):
            ta, _ = ends(a, b)
            ta.write(b"before")
            await spin_until(lambda: b.data == b"before")
            drop(ta)  # SO_LINGER 0 where there is a socket, then abort(): what the drivers do
            seen: list[Any] = [list(a.events), ta.is_closing(), ta.is_reading()]  # nothing from inside abort()
            ta.write(b"after")  # dropped, no error
            ta.abort()  # again: nothing more
            seen.append(await asyncio.wait_for(a.lost, WAIT))
            exc = await asyncio.wait_for(b.lost, WAIT)
            seen += [type(exc), a.events, b.events, bytes(b.data)]
        return seen

    seen = both(scenario)
    assert seen["memory"] == seen["tcp"]
    assert seen["tcp"] == [
        [],
        True,
        False,
        None,
        ConnectionResetError,
        [("lost", None)],
        [("data", 6), ("lost", "ConnectionResetError")],
        b"before",
    ]


def test_write_eof_half_closes_and_the_peer_can_still_answer() -> None:
    async def scenario(kind: str) -> list[Any]:
        a, b = Events(keep_open=False), Events(keep_open=True)
        async with connected(kind, a, b):
            ta, tb = ends(a, b)
            b.on_eof = lambda: (tb.write(b"reply"), tb.write_eof())  # type: ignore[func-returns-value]
            ta.write(b"request")
            ta.write_eof()
            ta.write_eof()  # twice: nothing more
            seen: list[Any] = [ta.can_write_eof(), ta.is_closing()]
            for data in (b"more", b""):
                with pytest.raises(RuntimeError, match=r"write\(\) after write_eof\(\)"):
                    ta.write(data)
            await asyncio.wait_for(a.lost, WAIT)  # a reads the reply, then EOF, and closes
            await asyncio.wait_for(b.got_eof.wait(), WAIT)
            seen += [a.events, bytes(a.data), b.events[:2], bytes(b.data), tb.is_closing()]
        return seen

    seen = both(scenario)
    assert seen["memory"] == seen["tcp"]
    assert seen["tcp"] == [
        True,
        False,
        [("data", 5), ("eof",), ("lost", None)],
        b"reply",
        [("data", 7), ("eof",)],
        b"request",
        False,
    ]


def test_write_takes_bytes_like_objects_only() -> None:
    async def scenario(kind: str) -> list[Any]:
        a, b = Events(), Events()
        async with connected(kind, a, b):
            ta, _ = ends(a, b)
            seen: list[Any] = []
            for bad in ("text", 5, [1, 2]):
                with pytest.raises(TypeError) as info:
                    ta.write(bad)  # type: ignore[arg-type]
                seen.append(str(info.value))
            ta.write(bytearray(b"ab"))
            ta.write(memoryview(b"cd"))
            ta.write(b"")
            await spin_until(lambda: len(b.data) == 4)
            seen.append(bytes(b.data))
        return seen

    seen = both(scenario)
    assert seen["memory"] == seen["tcp"]
    assert seen["tcp"][0] == "data argument must be a bytes-like object, not 'str'"
    assert seen["tcp"][-1] == b"abcd"


def test_close_sends_what_was_written_and_drops_what_follows() -> None:
    async def scenario(kind: str) -> list[Any]:
        a, b = Events(), Events(keep_open=False)
        async with connected(kind, a, b):
            ta, _ = ends(a, b)
            ta.write(b"last words")
            ta.close()
            seen: list[Any] = [list(a.events), ta.is_closing(), ta.is_reading()]
            ta.write(b" and more")  # dropped, no error
            ta.write_eof()  # a no-op once closing
            ta.close()
            seen.append(await asyncio.wait_for(a.lost, WAIT))
            await asyncio.wait_for(b.lost, WAIT)
            seen += [a.events, b.events, bytes(b.data)]
        return seen

    seen = both(scenario)
    assert seen["memory"] == seen["tcp"]
    assert seen["tcp"] == [
        [],
        True,
        False,
        None,
        [("lost", None)],
        [("data", 10), ("eof",), ("lost", None)],
        b"last words",
    ]


def test_writing_to_an_end_that_closed_fails_at_the_second_write() -> None:
    # TCP: the first write after the peer closed is sent (the peer's kernel answers it
    # with a reset), the next fails: connection_lost(BrokenPipeError) from the loop,
    # is_closing(); later writes are counted and, from the fifth on, each logs
    # "socket.send() raised exception." on asyncio's logger. MemoryTransport dropped
    # them all: its protocol never heard that the peer was gone (this test failed:
    # no connection_lost), until it closed its own end.
    async def scenario(kind: str) -> list[Any]:
        a, b = Events(), Events()
        async with connected(kind, a, b):
            ta, tb = ends(a, b)
            tb.close()
            await asyncio.wait_for(a.got_eof.wait(), WAIT)
            await asyncio.wait_for(b.lost, WAIT)
            seen: list[Any] = []
            warned = Warned()
            logging.getLogger("asyncio").addHandler(warned)
            try:
                for _ in range(8):
                    ta.write(b"x" * 10)
                    seen.append((ta.is_closing(), len(warned.messages)))
                    for _ in range(3):  # (over TCP the reset comes back meanwhile)
                        await asyncio.sleep(0)
                lost = await asyncio.wait_for(a.lost, WAIT)
            finally:
                logging.getLogger("asyncio").removeHandler(warned)
            seen.append(repr(lost))
            seen += [list(a.events), sorted(set(warned.messages))]
        return seen

    seen = both(scenario)
    assert seen["memory"] == seen["tcp"]
    assert seen["tcp"][-3] == "BrokenPipeError(32, 'Broken pipe')"
    assert seen["tcp"][:-3] == [(False, 0), (True, 0), (True, 0), (True, 0), (True, 0), (True, 0), (True, 1), (True, 2)]
    assert seen["tcp"][-2:] == [[("eof",), ("lost", "BrokenPipeError")], ["socket.send() raised exception."]]


def test_pause_and_resume_reading_and_is_reading() -> None:
    async def scenario(kind: str) -> list[Any]:
        a, b = Events(), Events()
        async with connected(kind, a, b):
            ta, tb = ends(a, b)
            seen: list[Any] = [tb.is_reading()]
            tb.pause_reading()
            tb.pause_reading()
            seen.append(tb.is_reading())
            ta.write(b"held")
            ta.write_eof()
            for _ in range(20):  # every chance to arrive (over TCP they are in b's socket by now)
                await asyncio.sleep(0)
            seen.append(bytes(b.data))  # nothing while paused
            tb.resume_reading()
            seen.append(tb.is_reading())
            await asyncio.wait_for(b.got_eof.wait(), WAIT)
            seen.append(bytes(b.data))
            tb.close()
            tb.resume_reading()
            tb.pause_reading()
            seen.append(tb.is_reading())
        return seen

    seen = both(scenario)
    assert seen["memory"] == seen["tcp"] == [True, False, b"", True, b"held", False]


def test_addresses_name_the_other_end() -> None:
    async def scenario(kind: str) -> list[Any]:
        a, b = Events(), Events()
        async with connected(kind, a, b):
            ta, tb = ends(a, b)
            return [
                ta.get_extra_info("peername") == tb.get_extra_info("sockname"),
                tb.get_extra_info("peername") == ta.get_extra_info("sockname"),
                ta.get_extra_info("peername") != ta.get_extra_info("sockname"),
                len(ta.get_extra_info("peername")),
                ta.get_extra_info("no such key", "default"),
            ]

    seen = both(scenario)
    assert seen["memory"] == seen["tcp"] == [True, True, True, 2, "default"]


def test_a_new_protocol_gets_the_bytes_from_then_on() -> None:
    async def scenario(kind: str) -> list[Any]:
        a, b, later = Events(), Events(), Events()
        async with connected(kind, a, b):
            ta, tb = ends(a, b)
            ta.write(b"one")
            await spin_until(lambda: b.data == b"one")
            tb.set_protocol(later)
            later.transport = tb
            ta.write(b"two")
            await spin_until(lambda: later.data == b"two")
            seen = [tb.get_protocol() is later, bytes(b.data)]
            tb.set_protocol(b)  # back, so the exit sees b's connection_lost
            return seen

    seen = both(scenario)
    assert seen["memory"] == seen["tcp"] == [True, b"one"]


# -- the memory link alone -----------------------------------------------------------


def test_a_protocol_that_closed_hears_no_eof_when_the_plan_then_closes_the_link() -> None:
    """As asyncio reads nothing more after close(): not the EOF of a close fault either."""

    async def main() -> None:
        a, b = Events(), Events()
        plan = FaultPlan(disconnect_after=3)
        async with connected("memory", a, b, plan):
            ta, _ = ends(a, b)
            ta.write(b"abcdef")
            ta.close()  # the link's close comes while a's close is still under way
            await asyncio.wait_for(asyncio.gather(a.lost, b.lost), WAIT)
            assert a.events == [("lost", None)]
            assert b.events == [("data", 3), ("eof",), ("lost", None)]

    run(main)


def test_close_ends_the_end_at_once_though_bytes_wait_for_a_paused_peer() -> None:
    """A deliberate difference: no kernel buffer, so close() does not wait for the bytes to go.

    connection_lost comes with everything still queued (TCP: once asyncio's buffer has
    drained); the bytes reach the peer when it reads, and an abort() after the close
    drops none of them. Writes after that close are dropped without a warning (TCP
    still sends them).
    """

    async def main() -> None:
        a, b = Events(), Events(keep_open=False)
        async with connected("memory", a, b):
            ta, tb = ends(a, b)
            tb.pause_reading()
            ta.write(b"q" * BIG)
            ta.close()
            warned = Warned()
            logging.getLogger("asyncio").addHandler(warned)
            try:
                for _ in range(7):
                    ta.write(b"z")
                assert await asyncio.wait_for(a.lost, WAIT) is None
                for _ in range(7):
                    ta.write(b"z")
            finally:
                logging.getLogger("asyncio").removeHandler(warned)
            assert warned.messages == []
            assert ta.get_write_buffer_size() == BIG
            ta.abort()
            tb.resume_reading()
            await asyncio.wait_for(b.got_eof.wait(), WAIT)
            assert bytes(b.data) == b"q" * BIG
            assert a.events == [("pause", True), ("lost", None)]

    run(main)


def test_set_protocol_refuses_what_it_cannot_deliver_to() -> None:
    async def main() -> None:
        a, b = Events(), Events()
        async with connected("memory", a, b):
            ta, _ = ends(a, b)
            with pytest.raises(TypeError, match=r"asyncio\.Protocol, not BufferedProtocol"):
                ta.set_protocol(asyncio.BufferedProtocol())
            assert ta.get_protocol() is a

    run(main)


def test_wait_closed_cancels_directions_still_running_at_its_bound() -> None:
    async def main() -> None:
        a, b = Events(), Events()
        ta, tb, link = memory_link(a, b)
        await link.wait_closed(0)  # nothing ended: both directions still wait for bytes
        assert [task.cancelled() for task in link.tasks] == [True, True]
        ta.write(b"into a cancelled link")
        for _ in range(5):
            await asyncio.sleep(0)
        assert b.data == b""
        ta.close()
        tb.close()
        await asyncio.wait_for(asyncio.gather(a.lost, b.lost), WAIT)

    run(main)


@pytest.mark.parametrize("kind", KINDS)
def test_the_tcp_helper_really_connects(kind: str) -> None:
    """The scenarios' TCP side is a real socket connection, not another in-memory one."""

    async def main() -> None:
        a, b = Events(), Events()
        async with connected(kind, a, b):
            ta, _ = ends(a, b)
            sock = ta.get_extra_info("socket")
            assert (sock is not None and sock.family == socket.AF_INET) == (kind == "tcp")

    run(main)
