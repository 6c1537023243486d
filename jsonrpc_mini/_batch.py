"""Client-side batches: ``with client.batch() as b: r = b.add(1, 2)``.

The queue of calls (``QueuedCalls``), what ``b.add`` is, the batch array's objects
(``call_values``) and the builders; what each queued call hands out (``BatchResult``,
``Notice``) is in ``_batch_results``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import partial
from types import TracebackType
from typing import Any, cast

from ._batch_results import BatchResult, Deferred, Notice, Outcome, discarded, not_sent, send_failed
from ._codec import CallParams, Params, build_params, call_value
from ._errors import RPCError
from ._remote import RemoteMethod, not_a_method_name, remote_attribute

__all__ = ["BatchBuilder", "BatchResult", "Notice", "QueuedCalls", "call_values", "not_sent"]

# Given the queued calls, sends them and returns, per request in order, what gives
# its outcome: all callables, or all objects with an ``outcome()`` method, or the
# requests' results themselves (BatchResult subclasses that hold their outcome:
# the sync client's waiters, one object per call).
_Sender = Callable[["QueuedCalls"], "Sequence[Callable[[], Any]] | Sequence[Outcome] | Sequence[BatchResult]"]


class QueuedCalls:
    """A batch's queued calls, and whether it was sent; iterating gives ``(method, params, is_notification)``.

    Held by the builder and by the methods it hands out (``b.add``), never the
    other way round: a method kept on the builder refers to this, not to the
    builder, so no reference cycle keeps a builder (and its client) alive.

    ``entries``: per call in order, its BatchResult (a request) or a Notice (a
    notification); each holds the call's method (``_method``) and params
    (``_params``). Speed: one list and no object but the result per request:
    the sync client's members queue themselves with one append (see
    _client_waiter._QueuedWaiter; parallel lists of methods and params cost two
    appends more per call, ~0.17M instructions for 1,000 calls with sending).

    Positional arguments alone are kept as the tuple the call received (they are
    the array ``params``; iterating gives a list). Speed: no list per call, and
    the garbage collector stops tracking a tuple of plain values at its first
    pass, and with it the request object made from it when the batch is sent: a
    batch of 1,000 calls triggered ~40 % fewer collections (``gc.get_stats``).
    """

    __slots__ = ("discarded", "entries", "make_result", "notifications", "sent")

    def __init__(self, make_result: Callable[[str], BatchResult] = BatchResult) -> None:
        self.make_result = make_result  # given the method name, the BatchResult of a call
        self.entries: list[BatchResult | Notice] = []
        self.notifications = 0  # how many of the calls are notifications (see answered)
        self.sent = False
        # The type name of the exception its with block raised, once discarded (sent is
        # then True too: nothing may be queued or sent any more).
        self.discarded: str | None = None

    def __iter__(self) -> Iterator[tuple[str, Params, bool]]:
        return (
            (
                entry._method,
                list(params) if isinstance(params := entry._params, tuple) else params,
                type(entry) is Notice,
            )
            for entry in self.entries
        )

    def __len__(self) -> int:
        return len(self.entries)

    def answered(self) -> list[BatchResult]:
        """The results of the calls that get a reply (not the notifications), in order: a new list.

        Speed: without notifications (the usual batch), a copy made in C: no test
        per call in Python (~0.1M instructions for 1,000 calls; the sync client
        asks twice per batch).
        """
        if not self.notifications:
            return cast("list[BatchResult]", self.entries.copy())
        return [entry for entry in self.entries if isinstance(entry, BatchResult)]

    def one_method(self) -> tuple[Any, list[CallParams]] | None:
        """The method and each call's params of a batch of requests of one method (the usual batch), else None.

        No notification, and every call's method the first's very object (``b.add``
        hands out one name; literal names are one object too): equal names that
        are distinct objects give None too. Speed: an identity test per call in
        one comprehension (~0.28M instructions for 1,000 calls; a type test of the
        params in it too cost ~0.2M more: see ClientConnection.encode_calls).
        """
        entries = self.entries
        if self.notifications or not entries:
            return None
        method = entries[0]._method
        params = [entry._params for entry in entries if entry._method is method]
        return (method, params) if len(params) == len(entries) else None

    def check_open(self) -> None:
        """Raise RPCError if the batch was sent already, or discarded (its with block raised)."""
        if self.sent:
            if self.discarded is not None:
                raise RPCError(
                    None,
                    f"this batch was discarded: its with block raised {self.discarded};"
                    " start a new one with client.batch()",
                )
            raise RPCError(None, "this batch was already sent; start a new one with client.batch()")

    def call(self, method: str, /, *args: Any, **kwargs: Any) -> BatchResult:
        """Queue a call of ``method``; its result."""
        if not isinstance(method, str):
            raise not_a_method_name(method)
        self.check_open()
        params = args if args and not kwargs else build_params(args, kwargs)  # (a tuple: see above)
        result = self.make_result(method)
        result._params = params
        self.entries.append(result)
        return result

    def notify(self, method: str, /, *args: Any, **kwargs: Any) -> None:
        """Queue a notification of ``method``."""
        if not isinstance(method, str):
            raise not_a_method_name(method)
        self.check_open()
        self.entries.append(Notice(method, build_params(args, kwargs)))
        self.notifications += 1


def _queue_call(queued: QueuedCalls, method: str, /, *args: Any, **kwargs: Any) -> BatchResult:
    """Queue a call of ``method`` (what ``b.add(...)`` runs; QueuedCalls.call's work)."""
    if queued.sent:
        queued.check_open()
    params = build_params(args, kwargs) if kwargs else args if args else None
    result = queued.make_result(method)
    result._params = params
    queued.entries.append(result)
    return result


# What ``b.add(...)`` runs: ``(queue, method, *args, **kwargs)`` -> the call's result.
_Queue = Callable[..., BatchResult]


class _QueuedMethod(partial[BatchResult]):
    """``b.add``: queues a call of ``add`` (``b.add.x`` gives a plain RemoteMethod of ``add.x``).

    Speed: a ``functools.partial`` of :func:`_queue_call` with the queue and the
    method's name, so calling it runs in C up to ``_queue_call``'s frame. An
    instance of a Python class with ``__call__`` (a RemoteMethod) is called
    through ``slot_tp_call``, which looks ``__call__`` up and packs the arguments
    again: ~90 ns more per call, ~10 % of a 1,000-call batch's client time.
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> RemoteMethod[BatchResult]:
        if name.startswith("_"):
            raise AttributeError(name)  # Python's names, as for RemoteMethod
        queued, method = super().args
        return RemoteMethod(queued, f"{method}.{name}")

    # partial's own public attributes would hide remote methods of these names
    # (``b.calc.args(1)`` must queue ``calc.args``): these properties hide them in
    # turn. partial's C code reads its fields directly, never through these names.
    @property
    def func(self) -> RemoteMethod[BatchResult]:
        return self.__getattr__("func")

    @property
    def args(self) -> RemoteMethod[BatchResult]:  # type: ignore[override]
        return self.__getattr__("args")

    @property
    def keywords(self) -> RemoteMethod[BatchResult]:  # type: ignore[override]
        return self.__getattr__("keywords")

    def __repr__(self) -> str:
        return f"<remote method {super().args[1]!r}>"


def call_values(calls: QueuedCalls, ids: Sequence[int]) -> list[dict[str, Any]]:
    """The objects of the batch array: each call as ``call_value`` makes it, requests numbered with ``ids``.

    ``ids``: one per request (the calls that are no notifications), in order.
    Positional arguments kept as a tuple stay one: JSON has no tuples, a tuple is
    written as the same array its list would be.
    """
    # Speed: a request with params (the usual call) is written out here, without a call.
    if not calls.notifications:
        # Speed: every call is a request (the usual batch), so its id comes from the
        # zip: no next() call per request (~190 instructions a call; ~0.19M of the
        # client's ~15M for a 1,000-call batch).
        return [
            {"jsonrpc": "2.0", "method": entry._method, "params": params, "id": id_}
            if (params := entry._params) is not None
            else call_value(entry._method, None, id_, False)
            for entry, id_ in zip(calls.entries, ids, strict=True)
        ]
    numbers = iter(ids)
    return [
        call_value(entry._method, entry._params, None, True)
        if type(entry) is Notice
        else {"jsonrpc": "2.0", "method": entry._method, "params": params, "id": next(numbers)}
        if (params := entry._params) is not None
        else call_value(entry._method, None, next(numbers), False)
        for entry in calls.entries
    ]


class _BatchQueue:
    """What the sync and asyncio batch builders share: queueing calls, handing out results.

    ``queue``: what ``b.name(...)`` runs, given the queue, the method's name and the
    call's arguments (queues the call; its result). A sender whose results queue
    themselves as they are made passes their class (see _client_waiter._QueuedWaiter).
    """

    def __init__(self, make_result: Callable[[str], BatchResult] = BatchResult, queue: _Queue = _queue_call) -> None:
        self._queued = QueuedCalls(make_result)
        self._queue = queue

    def call(self, method: str, /, *args: Any, **kwargs: Any) -> BatchResult:
        """Queue a call of ``method``; returns its :class:`~jsonrpc_mini.BatchResult`."""
        return self._queued.call(method, *args, **kwargs)

    def notify(self, method: str, /, *args: Any, **kwargs: Any) -> None:
        """Queue a notification of ``method``."""
        self._queued.notify(method, *args, **kwargs)

    def __getattr__(self, name: str) -> _QueuedMethod | RemoteMethod[BatchResult]:
        if name.startswith("_"):
            return remote_attribute(self, name)  # raises AttributeError: Python's names
        method = _QueuedMethod(self._queue, self._queued, name)
        # Speed: kept on the builder, so the next ``b.name`` is found without calling
        # __getattr__ (a batch calls the same few methods many times). It refers to
        # the queue, not the builder: no reference cycle (see QueuedCalls).
        self.__dict__[name] = method
        return method

    def __len__(self) -> int:
        return len(self._queued)

    def _take_queued(self) -> QueuedCalls:
        """Mark the batch sent; return the queued calls (empty: nothing to send)."""
        queued = self._queued
        queued.check_open()
        queued.sent = True
        return queued

    def _discard(self, exc_type: type[BaseException]) -> None:
        """The block raised ``exc_type``: nothing is sent; each member's result() says so.

        The batch is closed too: a later ``send()`` or call raises RPCError saying it
        was discarded (else it would send calls whose results already said "not sent").
        """
        queued = self._queued
        if not queued.sent:  # (a batch sent inside the block keeps its outcomes)
            queued.sent = True
            queued.discarded = exc_type.__name__
            for entry in queued.entries:
                if isinstance(entry, BatchResult):
                    entry._discard(discarded(entry.method, exc_type))

    def _send_failed(self, exc: BaseException) -> None:
        """Sending the batch raised ``exc``: each member not answered raises it from ``result()``.

        Else they said "not sent yet (leave the with block first)" after the block was left.
        """
        for entry in self._queued.entries:
            if isinstance(entry, BatchResult) and not entry._sent:
                entry._discard(send_failed(entry.method, exc))

    def _take(self) -> list[tuple[str, Params, bool]]:
        """Mark the batch sent; return the queued calls as ``(method, params, is_notification)``."""
        return list(self._take_queued())

    def _settle(
        self, outcomes: Sequence[Callable[[], Any]] | Sequence[Outcome] | Sequence[BatchResult]
    ) -> list[BatchResult]:
        results = self._queued.answered()
        if outcomes and results and outcomes[0] is results[0]:
            # The sender answered with the results themselves: they hold their outcomes.
            if len(outcomes) != len(results):
                raise ValueError(f"the sender answered {len(outcomes)} of {len(results)} calls")
            return results
        if outcomes and callable(outcomes[0]):
            outcomes = [Deferred(get) for get in cast("Sequence[Callable[[], Any]]", outcomes)]
        for result, outcome in zip(results, cast("Sequence[Outcome]", outcomes), strict=True):
            result._outcome = outcome
        return results


class BatchBuilder(_BatchQueue):
    """Collects calls; on leaving the ``with`` block sends them as one JSON array and waits.

    ``b.add(1, 2)`` / ``b.call("add", 1, 2)`` queue a request and return a
    :class:`BatchResult`; ``b.notify("log", "x")`` queues a notification. If the
    block raises, nothing is sent: each result's ``result()`` raises RPCError
    naming the exception's type.
    """

    def __init__(
        self, send: _Sender, make_result: Callable[[str], BatchResult] = BatchResult, queue: _Queue = _queue_call
    ) -> None:
        super().__init__(make_result, queue)
        self._send = send

    def send(self) -> list[BatchResult]:
        """Send the queued calls now and wait for their replies (done by the ``with`` exit)."""
        calls = self._take_queued()
        if not calls:
            return self._settle([])
        try:
            outcomes = self._send(calls)
        except BaseException as exc:
            self._send_failed(exc)
            raise
        return self._settle(outcomes)

    def __enter__(self) -> BatchBuilder:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.send()
        else:
            self._discard(exc_type)
