"""The sync client's connection, registering part: ``_Starter.start`` for notifications and batches.

A base class of ``_client_link._Link`` (whose ``request`` is the usual call); the
sending is its own base's (``_client_sender._RequestSender``).
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Sequence

from ._client_sender import _INSIDE, _RequestSender
from ._client_waiter import _Waiter

__all__ = ["_Starter"]

_waiter_id = operator.attrgetter("id")


class _Starter(_RequestSender):
    """Registers the waiters of a notification or a batch and sends it (see ``start``)."""

    def start(
        self,
        waiters: Sequence[_Waiter],
        data: bytes,
        deadline: float | None,
        what: str,
        *,
        unanswered: bool = False,
        batch: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Register ``waiters`` (their replies may come as soon as ``data`` is out) and send ``data``.

        ``deadline``: ``timeout`` seconds (named in an RPCTimeout's message) from the call's start.

        ``what``: the notification's method, or "batch" (``batch`` True: no remote
        method: the batch-wide errors have ``.method`` None, as in the aio client;
        their message says "batch: ", see timed_out).
        ``unanswered``: ``data`` holds a notification (alone, or in a batch with
        ``waiters``); it is marked where it takes its place in the output (see send).

        Made while this thread is inside a call on this connection (from a signal
        handler, see _nested), notifications alone never wait (see _defer); a call
        is refused while the thread waits for a reply or is inside a round of the lock.
        """
        method = None if batch else what
        if waiters:
            if self.reading == threading.get_ident():
                raise self._refused(method)  # (before the try: what this thread holds is its outer call's)
            if self.lock._is_owned():
                raise self._refused(method, _INSIDE)
        elif self._nested():
            self._defer(data, deadline, method, timeout)
            return
        try:
            with self.lock:
                if self.lost is not None:
                    raise self._lost_error(method)
                # In C, no Python step per member (a batch's 1,000): ~0.5M instructions less.
                self.pending.update(zip(map(_waiter_id, waiters), waiters, strict=True))
                if waiters and self.proto.unread:  # (see ClientConnection.unread_before)
                    self.proto.witness_call(waiters[0].id)
            witness = waiters[0].id if unanswered and waiters else None
            self.send(data, deadline, method, unanswered=unanswered, witness=witness, timeout=timeout)
        except BaseException:
            try:
                self._let_go(())
            finally:
                with self.lock:
                    for waiter in waiters:
                        self.pending.pop(waiter.id, None)
                    if waiters:  # given up on, maybe sent in part
                        self.proto.sent_unanswered()
            raise
