"""Who uses a server through the test kit, so that the kit stops it only after its last user.

Several ``LoopbackServer``s and ``loopback()``s (or, under asyncio,
``AioLoopbackServer``s and ``aio_loopback()``s) may use one server at once. A
``LoopbackServer`` starts the server when it is not listening; the server is shut
down when the last of its users is done, and only if the kit started it (a server
the test started itself is left running). A ``loopback()`` never starts the
server, but it is a user all the same: shutting the server down closes its
in-memory connection too, calls in flight or not. A handler of a server entering
the kit for that server while the last user out shuts it down is refused at once
(ConnectionLost): the shutdown waits for that handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .._errors import ConnectionLost

if TYPE_CHECKING:
    from .._aio_server import RPCServer as AioRPCServer
    from .._server import Address, RPCServer

__all__ = ["acquire", "aio_acquire", "aio_hold", "aio_release", "hold", "release"]

_UNIX = "{} needs a TCP server; this one listens on a Unix socket"
_POLL = 0.05  # how often a user waiting for a server's turn checks whether it may wait


class _Uses:
    """The users of one ``RPCServer``; ``turn`` keeps a start or a shutdown from interleaving."""

    __slots__ = ("busy", "shutting", "started", "turn", "users")

    def __init__(self) -> None:
        self.users = 0
        self.started = False  # by the kit: the last user out shuts it down
        self.busy = 0  # threads inside acquire or release: the entry stays while any is
        self.shutting = False  # the last user out is shutting the server down (its turn held)
        self.turn = threading.Lock()


# Guards _users only: a server starting or shutting down (seconds, with calls in
# flight) holds its own turn, never this, so the users of other servers go on.
# Both tables hold their servers weakly: an entry left by a user that never left (its
# server shut down or its loop closed by hand) goes with its server, and a new server,
# even one that Python places at the same address (the same id()), starts afresh.
_lock = threading.Lock()
_users: weakref.WeakKeyDictionary[RPCServer, _Uses] = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def _turn(server: RPCServer, entering: str | None = None) -> Iterator[_Uses]:
    with _lock:
        entry = _users.setdefault(server, _Uses())
        entry.busy += 1
    try:
        # A handler of the server cannot wait for a shutdown of that server: the
        # shutdown waits for the handler (shutdown_grace). It is refused at once, as a
        # connection to a server that stopped listening would be.
        while not entry.turn.acquire(timeout=_POLL):
            if entering is not None and entry.shutting and _in_handler_of(server):
                raise ConnectionLost(
                    f"{entering}: the server is shutting down (its last kit user left) and this "
                    "handler of it cannot connect to it now",
                    request_sent=False,
                )
        try:
            yield entry
        finally:
            entry.turn.release()
    finally:
        with _lock:
            entry.busy -= 1
            if not entry.busy and not entry.users and _users.get(server) is entry:
                del _users[server]


def acquire(server: RPCServer, host: str) -> tuple[str, int]:
    """Count a user of ``server`` (a LoopbackServer), starting it on ``host`` unless it listens.

    Returns the server's address. A server listening on a Unix path is refused
    (ValueError) and not counted.
    """
    address = _count(server, host)
    assert isinstance(address, tuple)  # (started on host, or refused)
    return address


def hold(server: RPCServer) -> None:
    """Count a user of ``server`` that never starts it (a ``loopback()``)."""
    _count(server, None)


def _in_handler_of(server: RPCServer) -> bool:
    """Whether this code runs for a handler of ``server`` (its thread, or a copy of its context)."""
    return server.in_call()


def _count(server: RPCServer, host: str | None) -> Address | None:
    with _turn(server, "loopback()" if host is None else "LoopbackServer") as entry:
        address = server.address
        if host is not None and isinstance(address, str):
            raise ValueError(_UNIX.format("LoopbackServer"))
        if address is None and host is not None:
            address = server.start(host, 0)
            entry.started = True
        entry.users += 1
    return address


def release(server: RPCServer) -> None:
    """A user is done; the last one shuts the server down if the kit started it."""
    with _turn(server) as entry:
        entry.users -= 1
        if not entry.users and entry.started:
            entry.started = False
            entry.shutting = True
            try:
                server.shutdown()
            finally:
                entry.shutting = False


class _AioUses:
    """The users of one ``aio.RPCServer``; ``turn`` keeps a start or a shutdown from interleaving."""

    __slots__ = ("busy", "shutting", "started", "turn", "users")

    def __init__(self) -> None:
        self.users = 0
        self.started = False
        self.busy = 0  # tasks inside acquire or release: the entry stays while any is
        self.shutting = False  # the last user out is shutting the server down (its turn held)
        self.turn = asyncio.Lock()


_aio_users: weakref.WeakKeyDictionary[AioRPCServer, _AioUses] = weakref.WeakKeyDictionary()


def _aio_entry(server: AioRPCServer) -> _AioUses:
    entry = _aio_users.setdefault(server, _AioUses())
    entry.busy += 1
    return entry


def _aio_done(server: AioRPCServer, entry: _AioUses) -> None:
    entry.busy -= 1
    if not entry.busy and not entry.users and _aio_users.get(server) is entry:
        del _aio_users[server]


async def aio_acquire(server: AioRPCServer, host: str) -> tuple[str, int]:
    """As :func:`acquire`, for an ``aio.RPCServer`` (a start in progress is waited for)."""
    address = await _aio_count(server, host)
    assert isinstance(address, tuple)  # (started on host, or refused)
    return address


async def aio_hold(server: AioRPCServer) -> None:
    """As :func:`hold`: count an ``aio_loopback()`` as a user of ``server``."""
    await _aio_count(server, None)


async def _aio_turn(server: AioRPCServer, entry: _AioUses, entering: str) -> None:
    """Take ``entry.turn``; a call of ``server`` is refused while the server shuts down (as sync)."""
    while True:
        try:
            await asyncio.wait_for(entry.turn.acquire(), _POLL)
            return
        except TimeoutError:
            if entry.shutting and server.in_call():
                raise ConnectionLost(
                    f"{entering}: the server is shutting down (its last kit user left) and this "
                    "handler of it cannot connect to it now",
                    request_sent=False,
                ) from None


async def _aio_count(server: AioRPCServer, host: str | None) -> Address | None:
    entry = _aio_entry(server)
    try:
        await _aio_turn(server, entry, "aio_loopback()" if host is None else "AioLoopbackServer")
        try:
            address = server.address
            if host is not None and isinstance(address, str):
                raise ValueError(_UNIX.format("AioLoopbackServer"))
            if address is None and host is not None:
                address = await server.start(host, 0)
                entry.started = True
            entry.users += 1
        finally:
            entry.turn.release()
    finally:
        _aio_done(server, entry)
    return address


async def aio_release(server: AioRPCServer, *, shut: bool = True) -> None:
    """A user is done; the last one shuts the server down if the kit started it.

    ``shut=False`` (a user left open, closed as its event loop ends): only counted
    out; a server still running then is shut down by its own end-of-loop hook.
    """
    entry = _aio_entry(server)
    try:
        entry.users -= 1  # at once: a cancelled release still counts out
        if entry.users or not entry.started or not shut:
            if not entry.users:
                entry.started = False
                server._end_idle_pool()  # (not listening: an aio_loopback() server, or one shut down)
            return
        async with entry.turn:
            # A user may have come (and found the server running) while we waited.
            if not entry.users and entry.started:
                entry.started = False
                entry.shutting = True
                try:
                    await server.shutdown()
                finally:
                    entry.shutting = False
    finally:
        _aio_done(server, entry)
