"""A sync client's outstanding call (``_Waiter``), and the RPCTimeout it may end with.

The reading side (``_client_reader``) fills a waiter in when its reply arrives and
wakes its caller if that caller waits for another thread to read (on its thread's
doorbell: ``_client_doorbell``).
"""

from __future__ import annotations

from typing import Any

from ._batch import BatchResult, QueuedCalls, not_sent
from ._client_doorbell import Signal
from ._codec import Id, build_params
from ._errors import RPCError, RPCTimeout

__all__ = ["_BatchWaiter", "_QueuedWaiter", "_Waiter", "timed_out", "within"]


def timed_out(method: str | None, message: str) -> RPCTimeout:
    """RPCTimeout for a call of ``method`` (named in ``method``, and so in the message).

    ``method`` None: a batch as a whole, which names no remote method: ``.method``
    stays None and the message says "batch: " (as the aio client's).
    """
    exc = RPCTimeout(message if method is not None else f"batch: {message}")
    exc.method = method or None
    return exc


def within(timeout: float | None) -> str:
    """How a timeout's message names the call's ``timeout``: "within 0.5 s", as the aio client's.

    None: no timeout of the call's (a transport's own timeout ran out): "in time".
    """
    return "in time" if timeout is None else f"within {timeout} s"


class _Waiter(BatchResult):
    """One outstanding call: filled in by whichever thread reads its reply.

    It is a BatchResult: a batch member's waiter is the result its caller holds
    (speed: one object per call, made when the call is queued; its ``id`` is set
    as its reply is stored, or before: see _BatchWaiter.ids).
    """

    __slots__ = ("done", "error", "id", "signal", "waiting")
    # BatchResult's third slot, ``_params``, holds a batch member's params (set as it
    # is queued; a single call's waiter leaves it empty: its params go out at once).
    # ``method`` and ``value`` are BatchResult's other two under other names (the same
    # member descriptors). ``method`` (a str) is ``_method``, which BatchResult's
    # read-only ``method`` property reads too: set once, read directly. ``value`` is
    # ``_outcome``, which BatchResult alone never sets on a waiter: _Waiter overrides
    # ``_discard``, and the sync client's sender answers with the waiters themselves
    # (_BatchQueue._settle then stores no outcome). Speed: slots of their own left
    # those two empty in every waiter, and the garbage collector visits and
    # deallocation clears every slot: ~0.08M of the client's ~15M instructions for
    # a 1,000-call batch.
    method: Any = BatchResult.__dict__["_method"]
    value: Any = BatchResult.__dict__["_outcome"]

    # (``method`` first, ``id_`` optional: a batch's builder makes a member's waiter
    # from its method alone, without a functools.partial layer per member.)
    def __init__(self, method: str, id_: Id = None) -> None:
        self.id = id_
        self.method = method
        self.done = False
        self.waiting = False
        self.value: Any = None
        self.error: RPCError | None = None
        # Set only while its caller sleeps, waiting for another thread to read its
        # reply: a caller that reads its own reply (the usual case) never needs one.
        # Its thread's doorbell, or a held lock (see _client_doorbell): set by
        # signal_for_wait, released by wake(). Speed: threading.Event is a
        # Condition written in Python; with threads sharing a client, its wait/set
        # pair cost several us per call.
        self.signal: Signal | None = None

    def wake(self) -> None:
        signal = self.signal
        if signal is not None:
            # (Not contextlib.suppress: its three Python calls cost ~0.4 us a wake, and
            # threads sharing a client wake most of their callers.)
            try:  # noqa: SIM105
                signal.release()
            except RuntimeError:  # signalled already and not yet taken; one signal is enough
                pass

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value

    def result(self) -> Any:
        """A batch member's return value; raises its error (BatchResult's API)."""
        if not self.done:  # every member is done once the batch's send returned
            raise not_sent(self.method)
        if self.error is not None:  # (outcome()'s work in line: one call less per result)
            raise self.error
        return self.value

    @property
    def _sent(self) -> bool:
        return self.done

    def _discard(self, error: RPCError) -> None:
        """Never to be sent (its batch's block raised): ``result()`` raises ``error``."""
        self.error = error
        self.done = True


class _QueuedWaiter(_Waiter):
    """A batch member's waiter that queues its call as it is made: what ``b.add(1, 2)`` runs.

    Speed: ``b.add`` (a functools.partial, see _batch._QueuedMethod) calls this
    class directly, so a call is queued in one Python frame. The general way
    (``_batch._queue_call``, then ``_Waiter(method)`` from it) takes two: ~45 ns
    more per call, ~15 % of queueing a 1,000-call batch. The body is
    ``_queue_call``'s and then ``_Waiter.__init__``'s, in line (but four of its
    slots left empty: see below): keep the three in step
    (tests/test_batch_members.py compares the members and the queue with the
    general way's).
    """

    __slots__ = ()

    def __init__(self, queued: QueuedCalls, method: str, /, *args: Any, **kwargs: Any) -> None:
        if queued.sent:
            queued.check_open()
        self._params = build_params(args, kwargs) if kwargs else args if args else None  # (before queueing: may raise)
        queued.entries.append(self)
        # ``id``, ``value``, ``waiting`` and ``signal`` are left empty (unlike
        # _Waiter's): nothing reads them before they are set. The id is set as the
        # batch's reply is stored, or by _BatchWaiter.number() before a member can
        # enter ``pending``; the value as its success is stored (a member done
        # otherwise has an ``error``, which result() and every other reader look at
        # first); ``waiting`` and ``signal`` concern a caller waiting for this call
        # alone, or its waking, both only once the member is in ``pending``, which
        # it enters only as its batch is expanded (ReplySettler._expand sets them).
        # Speed: four slot stores less per call, and empty slots the garbage
        # collector and the deallocator skip: ~0.3M of the client's ~13.8M
        # instructions for a 1,000-call batch.
        self.method = method
        self.done = False
        self.error = None

    def result(self) -> Any:
        """A batch member's return value; raises its error (BatchResult's API).

        Speed: ``value`` stays empty until the member's success is stored (see
        __init__), so reading it tells "sent" without ``done`` (a try costs
        nothing until it catches): three bytecodes less than _Waiter.result,
        ~50 of the ~600 instructions a call costs the caller's loop. Every
        member is done once its batch's send returned, its outcome stored before
        ``done`` is set; a thread asking while the reply is being stored may get
        the value a moment before ``done`` says so.
        """
        if self.error is None:
            try:
                return self.value
            except AttributeError:  # (empty: not answered yet, so not sent as far as the caller knows)
                raise not_sent(self.method) from None
        raise self.error


class _BatchWaiter(_Waiter):
    """A whole batch's one pending entry (keyed by its first id): its caller waits on this alone.

    Speed: a batch of 1,000 calls registered 1,000 waiters in ``pending`` and
    settled its reply array member by member (a dict pop and an id test each).
    Now the array that answers it whole and in order (the usual reply: a
    ``BatchAnswer``) fills ``members`` in one loop under the lock
    (ReplySettler._take_answer). Anything else that concerns a member (its reply
    alone, out of order, missing, an error with id null) first *expands* the
    batch (ReplySettler._expand): its members not done go into ``pending`` under
    their ids and this entry leaves it, done, with ``expanded`` set: from then on
    everything goes as for 1,000 separate waiters, and so does the batch's caller
    (_client.RPCClient._send_batch).
    """

    __slots__ = ("expanded", "ids", "members", "numbered")

    def __init__(self, members: list[_Waiter], ids: list[int]) -> None:
        super().__init__("", ids[0])  # (no remote method: the batch's caller names each member's)
        self.members = members  # the calls' waiters (the members' BatchResults), in order
        # The members' ids, in order. Speed: a member's ``id`` is set as its whole
        # array's reply is stored (ReplySettler._take_answer's loop, in the same step),
        # not by a loop of its own as the batch is sent (~0.15M of the client's ~15M
        # instructions for a 1,000-call batch). Otherwise number() sets them all:
        # when the batch is expanded (before its members enter ``pending``), and as
        # its caller returns (_client.RPCClient._send_batch), however the batch ended.
        self.ids = ids
        self.numbered = False
        self.expanded = False

    def number(self) -> None:
        """Set every member's ``id`` from ``ids``, unless that was done (see ``ids``)."""
        if not self.numbered:
            for waiter, id_ in zip(self.members, self.ids, strict=True):
                waiter.id = id_
            self.numbered = True
