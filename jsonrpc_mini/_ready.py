"""Reading what has already arrived, from any transport, without blocking.

Duck-typed over :class:`~jsonrpc_mini._transport.Transport`: a transport that
can tell or hand over what it holds is asked (``unread_or_none()``,
``recv_ready()``), one that cannot is left alone. Moved out of ``_transport``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from ._transport import RECV_SIZE, Transport

__all__ = ["feed_ready", "unread_of"]


def unread_of(transport: object) -> int | None:
    """Bytes that have arrived for ``transport`` and are not read yet; None where it cannot tell.

    A transport that has ``unread_or_none()`` is asked: SocketTransport's (FIONREAD),
    the test kit's pipe's (its segments arrived) and its asyncio memory transport's.
    A server's ``shutdown()`` reads these before it closes the connection (the sync
    server's ``_session_drain``, the aio server's ``EndingProtocol``).
    """
    count = getattr(transport, "unread_or_none", None)
    return None if count is None else cast("int | None", count())


def feed_ready(
    transport: Transport,
    feed: Callable[[bytes], None],
    limit: int,
    ready: Callable[[int], bytes | None] | None = None,
    line: bool = False,
) -> OSError | None:
    """Pass ``feed`` the bytes already waiting on ``transport`` (about ``limit`` at most), without blocking.

    Returns the error if reading failed (the caller handles it as a failed recv).
    ``ready``: reads in place of the transport's ``recv_ready`` (None from it ends the
    reading; the sync server's stops once ``shutdown()`` began). ``line``: stop after
    the read that brings a newline (the line in part has ended: see below).

    Speed: a large message arrives in many reads. Parsing after each one makes the
    framer scan every partial chunk byte by byte (~15 ns a byte in Python) to learn
    whether the value has ended; reading what has already arrived first usually
    brings in the whole newline-terminated line, which is then decoded at once.
    Nothing waits longer: only bytes already there are read, and parsing follows.
    With ``line`` it reads no further than the read ending that line: a client
    flooding small messages got up to ``limit`` (16 MiB) buffered per read-on, and
    the sync server held 20-44 MiB per such connection (~5 MiB now; the aio server ~1 MiB).
    """
    recv_ready = getattr(transport, "recv_ready", None) if ready is None else ready
    if recv_ready is None:
        return None
    total = 0
    while total < limit:
        try:
            data = recv_ready(RECV_SIZE)
        except OSError as exc:
            return exc
        if data is None:
            return None
        feed(data)
        if not data or (line and b"\n" in data):
            return None
        total += len(data)
    return None
