"""What a sync server connection still reads once ``shutdown()`` began.

``shutdown()`` serves what clients had delivered when it began: the bytes then
unread in a connection's socket are read and their calls taken as before
(notifications run, requests get -32000). What arrives later is still read while
the connection stays open (calls of its are running), but as *late*: requests get
-32000, notifications are dropped, and the reader is not counted as busy. Else a
client that keeps sending notifications held ``shutdown()`` for its whole
``shutdown_grace``: every read found more to run.
"""

from __future__ import annotations

from ._ready import unread_of
from ._transport import Transport

__all__ = ["Drain"]


class Drain:
    """A connection's state once ``shutdown()`` began (``Session.draining``; None before)."""

    __slots__ = ("late", "left")

    def __init__(self, transport: Transport) -> None:
        # Bytes still to read of those the socket held unread when shutdown() began (over
        # TLS, of its records: the reads count the plain bytes, a little fewer; over the
        # test kit's pipe, its segments arrived). None where that cannot be told (a
        # transport of the user's own, no FIONREAD): everything is read as before.
        self.left = unread_of(transport)
        # Those bytes are read (``_refuse_late`` runs): what the core holds now came late,
        # also when a failed reply leaves it there for the session's last thread.
        self.late = False

    @property
    def spent(self) -> bool:
        """Whether the bytes there at the start are all read: whatever comes now arrived after shutdown() began."""
        return self.left is not None and self.left <= 0

    def budget(self, size: int) -> int | None:
        """How much the next read may take (at most ``size``); None once the bytes there at the start are read."""
        left = self.left
        if left is None:
            return size
        return min(size, left) if left > 0 else None

    def none_waiting(self, transport: Transport) -> None:
        """A read without waiting found nothing: if ``transport`` holds nothing unread either, all is read.

        Over TLS the count was of records and the reads count their plain text: what is
        left of it now is the records' overhead, not bytes still to come, and a read
        taking it would take late messages as delivered in time. (A record cut short
        at the start then ends as a plain socket's message cut short does: its rest
        came late.)
        """
        if self.left and unread_of(transport) == 0:
            self.left = 0

    def taken(self, count: int) -> None:
        """A read took ``count`` of the bytes there at the start."""
        if self.left is not None:
            self.left -= count
