"""A notification that could not run is logged: it gets no reply, so the log is all there is.

``c.notify("lgo", "x")`` (a typo) or ``c.notify("log", 1, 2, 3)`` (arguments that do not
fit) used to vanish without a line at any level, on both servers, while a notification
whose handler raised was logged at ERROR. Now the first gets a WARNING naming the
method and the error, then at most one WARNING per 10 s carrying the count (each at
DEBUG too), so a peer sending thousands cannot fill the disk. An unknown ``$/...``
method (LSP's ``$/cancelRequest``, sent expecting to be ignored) is logged at DEBUG only.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from jsonrpc_mini import RPCError, RPCServer, _dispatch, aio
from jsonrpc_mini._refusal_log import DroppedNotifications
from jsonrpc_mini.testing import aio_loopback, loopback

pytestmark = pytest.mark.timeout(60)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """A fresh process-wide limiter on a clock of the test's own (another test's warning must not mute this one's)."""
    clock = Clock()
    monkeypatch.setattr(_dispatch, "DROPPED", DroppedNotifications(clock=clock))
    return clock


def _lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "jsonrpc_mini" and r.levelno == level]


def _sync_server(done: threading.Event) -> RPCServer:
    server = RPCServer()

    @server.register
    def log(line: str) -> None:
        done.set()

    @server.register
    def refuse() -> None:
        raise RPCError(-32004, "no such key")

    return server


def test_sync_server_warns_once_then_counts(caplog: pytest.LogCaptureFixture, clock: Clock) -> None:
    caplog.set_level(logging.DEBUG, logger="jsonrpc_mini")
    done = threading.Event()
    server = _sync_server(done)
    with loopback(server) as client:
        client.notify("lgo", "typo")
        client.notify("log", 1, 2, 3)
        client.notify("refuse")
        client.notify("$/cancelRequest", id=1)
        client.notify("log", "ok")  # (one connection runs quick notifications in order: these are done then)
        assert done.wait(10)
        done.clear()
        clock.now += 11  # the next one warns again, with the count
        client.notify("lgo", "again")
        client.notify("log", "ok")
        assert done.wait(10)
    server.shutdown()
    warnings = _lines(caplog, logging.WARNING)
    assert len(warnings) == 2, warnings
    assert warnings[0].endswith(
        "notification 'lgo' dropped: [-32601] Method not found: 'lgo'"
        " (a notification gets no reply; further ones: one warning per 10 s at most)"
    )
    assert warnings[1].endswith(
        "notification 'lgo' dropped: [-32601] Method not found: 'lgo' (a notification gets no reply;"
        " 3 dropped since the last warning)"
    )
    debug = "\n".join(_lines(caplog, logging.DEBUG))
    assert "notification 'log' dropped: [-32602] Invalid params for 'log': too many positional arguments" in debug
    assert "notification 'refuse' dropped: [-32004] no such key" in debug
    assert "notification '$/cancelRequest' dropped: [-32601]" in debug


def test_aio_server_warns_too(caplog: pytest.LogCaptureFixture, clock: Clock) -> None:
    caplog.set_level(logging.WARNING, logger="jsonrpc_mini")
    server = aio.RPCServer()
    seen: list[str] = []

    @server.register
    async def log(line: str) -> None:
        seen.append(line)

    async def main() -> None:
        async with aio_loopback(server) as client:
            await client.notify("log", 1, 2)
            await client.notify("$/cancelRequest", id=1)
            await client.notify("log", "ok")
            for _ in range(1000):
                if seen:
                    break
                await asyncio.sleep(0.01)
        await server.shutdown()

    asyncio.run(main())
    assert seen == ["ok"]
    warnings = _lines(caplog, logging.WARNING)
    assert len(warnings) == 1, warnings
    assert "notification 'log' dropped: [-32602] Invalid params for 'log': too many positional arguments" in warnings[0]


def test_a_request_that_fails_is_answered_not_logged(caplog: pytest.LogCaptureFixture, clock: Clock) -> None:
    caplog.set_level(logging.DEBUG, logger="jsonrpc_mini")
    server = _sync_server(threading.Event())
    with loopback(server) as client, pytest.raises(RPCError):
        client.call("lgo")
    server.shutdown()
    assert not [line for line in _lines(caplog, logging.DEBUG) + _lines(caplog, logging.WARNING) if "dropped" in line]
