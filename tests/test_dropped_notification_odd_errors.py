"""A notification whose handler raised an odd RPCError: logged as a request's would be, the connection kept.

4b689d0 logs a notification that could not run ("notification 'x' dropped: [code]
message", a WARNING at most every 10 s). Two RPCErrors did not fit that line:
- one whose message cannot be made a str (its ``__str__`` raises): the sync server's
  connection died on it ("connection handler failed"), the next call on it got
  ConnectionLost; the request path answers such an error -32603 and logs it.
- one without an integer code (ConnectionLost from a call the handler made, say):
  the line said "[None] ..." as a WARNING, without the traceback, where a request's
  is an ERROR with it (README, Logging: "a handler raised anything but an RPCError
  with an integer code").
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

from jsonrpc_mini import ConnectionLost, RPCError, RPCServer, _dispatch, aio
from jsonrpc_mini._refusal_log import DroppedNotifications
from jsonrpc_mini.testing import aio_loopback, loopback

pytestmark = pytest.mark.timeout(60)


class _Unshowable:
    """A message object whose str() fails."""

    def __str__(self) -> str:
        raise ValueError("cannot show this")


@pytest.fixture(autouse=True)
def _fresh_limiter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_dispatch, "DROPPED", DroppedNotifications())  # (another test's warning must not mute it)


def _records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "jsonrpc_mini" and r.levelno == level]


def _server(kind: str, done: threading.Event) -> Any:
    server: Any = RPCServer() if kind == "sync" else aio.RPCServer()

    def unshowable() -> None:
        raise RPCError(-32000, _Unshowable())  # type: ignore[arg-type]

    def relay() -> None:
        raise ConnectionLost("upstream went away")

    server.register_function(unshowable, name="unshowable")
    server.register_function(relay, name="relay")
    server.register_function(lambda: done.set() or 1, name="ping")
    return server


def _run(kind: str, server: Any, method: str) -> int:
    """Notify ``method``, then call ping on the same connection: its result."""
    if kind == "sync":
        with loopback(server) as client:
            client.notify(method)
            result: int = client.ping()
        server.shutdown()
        return result

    async def main() -> int:
        async with aio_loopback(server) as client:
            await client.notify(method)
            result: int = await client.ping()
        await server.shutdown()
        return result

    return asyncio.run(main())


@pytest.mark.parametrize("kind", ["sync", "aio"])
def test_a_message_that_cannot_be_shown_keeps_the_connection(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="jsonrpc_mini")
    assert _run(kind, _server(kind, threading.Event()), "unshowable") == 1  # (the connection still serves)
    warnings = [r.getMessage() for r in _records(caplog, logging.WARNING)]
    assert len(warnings) == 1, warnings
    assert "notification 'unshowable' dropped: [-32000] <a message that cannot be shown>" in warnings[0]
    assert not _records(caplog, logging.ERROR)


@pytest.mark.parametrize("kind", ["sync", "aio"])
def test_an_rpc_error_without_a_code_is_an_error_with_its_traceback(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="jsonrpc_mini")
    assert _run(kind, _server(kind, threading.Event()), "relay") == 1
    errors = _records(caplog, logging.ERROR)
    assert [r.getMessage().split(": ", 1)[-1] for r in errors] == ["notification 'relay' raised ConnectionLost"]
    assert errors[0].exc_info is not None and isinstance(errors[0].exc_info[1], ConnectionLost)
    assert not [r for r in caplog.records if "dropped" in r.getMessage()]
