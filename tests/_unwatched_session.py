"""A sync server's session on a connection the read watcher cannot watch, and calls held until released.

Such a connection (TLS, a transport of the user's own) has every call counted at
once and another thread promoted to read, below ``max_concurrent_calls``; the
session tests that follow its threads at the limit share these pieces.
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterable
from typing import Any

import pytest
from _driver_helpers import WAIT, Peer, request

from jsonrpc_mini import RPCServer, SocketTransport
from jsonrpc_mini._session import Session


class Unwatched:
    """A transport the read watcher cannot watch (not a SocketTransport): every call is counted at once."""

    def __init__(self, inner: SocketTransport) -> None:
        self.inner = inner

    def send(self, data: bytes) -> None:
        self.inner.send(data)

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        return self.inner.recv(max_bytes, timeout)

    def close(self) -> None:
        self.inner.close()


def serve_unwatched(server: RPCServer) -> tuple[Session, Peer]:
    """``server`` serving one end of a socket pair through :class:`Unwatched`; the other end as a Peer."""
    ours, theirs = socket.socketpair()
    ours.settimeout(WAIT)
    return server.serve_connection(Unwatched(SocketTransport(theirs))), Peer(ours)


def reads_with(session: Session, busy: int) -> bool:
    """Whether a thread of ``session`` reads while ``busy`` calls are counted."""
    with session._lock:
        return session._reading and session._busy == busy


def at_the_limit(session: Session) -> bool:
    """Whether ``session`` counts ``max_concurrent_calls`` calls and nobody reads."""
    with session._lock:
        return not session._reading and session._busy == session._opts.max_concurrent_calls


class NamedSlowCalls:
    """Calls of ``slow(name)``, each running until released; which thread ran each."""

    def __init__(self, names: Iterable[str]) -> None:
        self.started = {name: threading.Event() for name in names}
        self.release = {name: threading.Event() for name in self.started}
        self.ran: dict[str, threading.Thread] = {}

    def slow(self, name: str) -> str:
        """The handler: records its thread, says it started, waits (bounded) to be released."""
        self.ran[name] = threading.current_thread()
        self.started[name].set()
        self.release[name].wait(WAIT)
        return name

    def start(self, peer: Peer, name: str) -> None:
        """Send the call ``name`` from ``peer`` and wait (bounded) until it runs."""
        peer.sendall(request("slow", [name], id_=name))
        assert self.started[name].wait(WAIT), f"{name} did not start"

    def finish(self, peer: Peer, name: str) -> None:
        """Release the call ``name``; ``peer`` must read its reply next."""
        self.release[name].set()
        assert peer.json_line()["id"] == name

    def release_all(self) -> None:
        """Let every call end (a test's clean-up)."""
        for event in self.release.values():
            event.set()


class NotifyLog:
    """A session's condition that records the name of the function calling each ``notify``."""

    def __init__(self, session: Session) -> None:
        self._inner = session._cond
        self.callers: list[str] = []

    def __enter__(self) -> bool:
        return self._inner.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._inner.__exit__(*exc)

    def wait(self, timeout: float | None = None) -> bool:
        return self._inner.wait(timeout)

    def notify(self, n: int = 1) -> None:
        self.callers.append(sys._getframe(1).f_code.co_name)
        self._inner.notify(n)

    def notify_all(self) -> None:
        self._inner.notify_all()


def log_notifies(monkeypatch: pytest.MonkeyPatch) -> list[NotifyLog]:
    """Every session made from now on gets a :class:`NotifyLog` as its condition; the logs, in order."""
    logs: list[NotifyLog] = []
    init = Session.__init__

    def logged_init(session: Session, *args: Any, **kwargs: Any) -> None:
        init(session, *args, **kwargs)
        log = NotifyLog(session)
        logs.append(log)
        session._cond = log  # type: ignore[assignment]

    monkeypatch.setattr(Session, "__init__", logged_init)
    return logs
