"""The sync client's reading turn handed on, and callers that stop waiting: the base of ``_ReplyReader``.

Whoever holds the reading turn (``reading``) gives it to a follower, a caller
waiting for another thread to read (``_follower``), when it is done
(``_release_reader``, ``_wake_follower``). A caller that stops waiting (Ctrl-C,
say) is forgotten (``_abandon``), its request taken out of the outbox if still
there (``_unqueue``, also for a timeout), and a reader interrupted after taking
bytes off the connection closes it (``_interrupted``). Reading and waiting are
``_client_reader._ReplyReader``'s. Moved out of ``_client_reader``.
"""

from __future__ import annotations

from typing import Any

from ._client_settle import ReplySettler
from ._client_waiter import _Waiter
from ._errors import RPCError

__all__ = ["ReadingTurn"]


class ReadingTurn(ReplySettler):
    """The reading turn's hand-over and callers giving up, for ``_ReplyReader`` (``_Link`` sets the attributes)."""

    # Set by _Link.__init__ (with ReplySettler's).
    outbox: list[tuple[_Waiter, bytes]]
    reading: int  # the reader's thread id, 0 when nobody reads

    def _release_reader(self) -> None:
        with self.lock:
            self.reading = 0
            follower = self._follower()
        if follower is not None:
            follower.wake()

    def _wake_follower(self) -> None:
        """Wake a follower to take the reader's turn, which _Link._alone gave up without the lock.

        Speed: a lock round to give it up cost ~2k instructions a call. That is
        safe: the turn is only taken (under the lock) while it is free, and only
        given up by its holder. A caller that found it taken became a follower
        (``waiting``) in a round that read it before _alone's store, having
        registered its call before that: so _alone, looking at ``pending`` after
        its store, finds it there and calls this, whose round waits for the
        follower's to end. A caller that finds the turn free reads itself. (A store
        or a read of an attribute, and dict.pop, are single steps under the GIL.)
        """
        with self.lock:
            follower = None if self.reading else self._follower()
        if follower is not None:
            follower.wake()

    def _follower(self) -> _Waiter | None:
        """A caller waiting for another thread to read, to promote to reader (lock held)."""
        for other in self.pending.values():
            if other.waiting and not other.done:
                return other
        return None

    def _unqueue(self, waiter: _Waiter) -> bool:
        """Take ``waiter``'s request out of the outbox if it is still there (lock held); True if it was."""
        outbox = self.outbox
        for index, (queued, _) in enumerate(outbox):
            if queued is waiter:
                del outbox[index]
                return True
        return False

    def _interrupted(self, taken: bool) -> None:
        """A reader was interrupted: close the connection if bytes were lost.

        ``taken``: it held bytes not yet handed out (or the transport's read was cut
        after bytes arrived: ``interrupted_read``). Those bytes are gone, and nobody
        can tell whether they ended at a message's end: part of a reply lost leaves
        the framer inside it, reading the next reply as its rest (that call would
        wait for ever). So the connection is closed even when no other call waits.
        """
        transport: Any = self.transport
        if getattr(transport, "interrupted_read", False):  # cut inside the transport's read
            transport.interrupted_read = False
            taken = True
        if taken:
            self.fail_all("a read was interrupted after taking bytes off the connection; the connection is closed")

    def _abandon(self, waiter: _Waiter) -> None:
        """Forget a caller that stops waiting (interrupted): its late reply is dropped.

        Left pending, an error reply with id null could not be matched to the one
        call really outstanding, and a follower would stay ``waiting`` and could be
        picked to take over reading, a wake-up nobody takes (the other callers
        would then sit until their next poll). If it was just picked, the turn
        goes to another follower.
        """
        with self.lock:
            if self.pending.pop(waiter.id, None) is not None:
                self.proto.sent_unanswered()  # given up on (see ClientConnection.unread_before)
            self._unqueue(waiter)  # not to be sent any more
            if not waiter.done:  # a batch member's result() raises this (its reply, if it came, stands)
                error = waiter.error = RPCError(None, "interrupted before its reply came")
                error.method = waiter.method or None  # (str(error) names it)
            waiter.done = True
            waiter.waiting = False
            follower = None if self.reading else self._follower()
        if follower is not None:
            follower.wake()
