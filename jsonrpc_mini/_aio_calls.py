"""The call part of a connection served by the asyncio server: running calls and answering them.

``ServerProtocol`` (``_aio_conn``) reads bytes and takes calls from the sans-IO
core while below the limits; each call it takes comes here. An ``async def``
handler's coroutine goes to the server's call runner (``_aio_runner``), a plain
handler to the thread pool or (``run_sync_in_thread=False``) runs inline, a batch
runs its members concurrently. However a call ends, its reply is written and the
connection's and the server's call counts go down (``_ended``), which may let
the connection read again.

Speed: the usual request, read as one whole line, arrives as its JSON object (a
*plain call*, from ``ServerConnection.receive_plain_call``) and stays one on the way
of an ``async def`` handler: no Request is made and its success reply is encoded
here. Every other way (errors, plain handlers, refusals) makes its Request first.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import types
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, cast

from ._aio_members import Members, handback
from ._aio_runner import stepping
from ._aio_timeouts import TimedProtocol
from ._codec import ErrorResponse, Notification, Request, Response, parse_request
from ._dispatch import PLAIN_RESULTS, Prepared, outcome_response
from ._errors import RPCError
from ._protocol import Batch, ServerConnection

if TYPE_CHECKING:
    from ._aio_execute import Outcome
    from ._aio_runner import CallRunner
    from ._aio_server import RPCServer

__all__ = ["BATCH_STEP", "CallMessage", "CallingProtocol", "PlainCall", "Replying", "as_message"]

log = logging.getLogger("jsonrpc_mini")

# Batch members run per loop iteration, at most, over all of a batch's workers (see
# CallingProtocol._run_batch): a few ms of quick calls before other connections' turn.
BATCH_STEP = 256
# The reply line of a call with an int id that returned an int, as the codecs write it:
# formatted, without a dict and the codec's call (an int too long to write: ValueError).
_INT_REPLY = b'{"jsonrpc":"2.0","id":%d,"result":%d}\n'

# The usual request as decoded: {"jsonrpc": "2.0", "method": str, "params": list, "id":
# int or str} (``ServerConnection.receive_plain_call``), read as one line (so framed by
# newlines). Speed: skipping parse_request and the Request it makes saved ~0.4 us per
# call (in-process, 16 connections: 5.7k of 92k instructions per call, callgrind).
PlainCall = dict[str, Any]
CallMessage = Request | Notification | PlainCall


def as_message(message: CallMessage) -> Request | Notification:
    """``message`` as a Request or Notification (a plain call becomes its Request)."""
    if type(message) is dict:
        return Request(message["method"], message["params"], message["id"])
    return message  # type: ignore[return-value]  # (mypy does not narrow on type() is dict)


class Replying:
    """What the runner gets as the message of a coroutine that builds its call's reply itself.

    (``await_result``'s: its return value is the reply. Should a GeneratorExit
    close it, see ``CallRunner._stay_with``, the call is still answered from
    ``message``.)
    """

    __slots__ = ("message",)

    def __init__(self, message: Request | Notification) -> None:
        self.message = message


class CallingProtocol(TimedProtocol):
    """The call part of ``ServerProtocol``, and what the call runner needs of a connection.

    ``ServerProtocol`` sets the attributes below and provides ``_write()``,
    ``pump()`` and ``repump_now()``.
    """

    # Slots: the attributes assigned through this type, here and by the runner
    # (the rest are ServerProtocol's).
    __slots__ = ("_last", "busy", "repump")

    busy: int  # calls of this connection running now (a batch: as many as its members running at once)
    tasks: set[asyncio.Task[None]]  # runner tasks staying with a call that waits
    repump: bool  # the runner pumps this connection once its queue is empty
    _srv: RPCServer
    _proto: ServerConnection
    _runner: CallRunner
    _dumps_line: Callable[[Any], bytes]  # the server codec's dumps_line
    _plain: Mapping[str, tuple[Callable[..., Any], int, int]]  # the server's plain_handlers
    _limit: int  # max_concurrent_calls
    _debug: bool
    _draining: bool
    _late: bool  # what is read now came after shutdown() began (see _aio_ending)
    _gone: bool  # nothing more can reach the peer (see ServerProtocol._peer_gone)
    _input_done: bool
    _read_paused: bool

    def _write(self, data: bytes) -> None:
        """Send ``data`` (with other replies of this loop iteration)."""
        raise NotImplementedError

    def pump(self) -> None:
        """Take calls from the core again (after a call ended while reading was held back)."""
        raise NotImplementedError

    def repump_now(self) -> None:
        """The runner's deferred pump (see ``CallRunner.later``)."""
        raise NotImplementedError

    def _call(self, message: CallMessage) -> None:
        srv = self._srv
        if self._draining:
            message = as_message(message)
            if type(message) is Request:
                self._write(self._proto.encode(srv.refusal(message)))
                return
            if self._late:
                return  # a notification that came after shutdown() began: not run (see _aio_ending)
        if type(message) is dict:
            method, params = message["method"], message["params"]
            # Speed: resolve's usual case (a list of arguments that binds for sure) looked up
            # here, as in the sync server's _plain_reply, without resolve's call and tuple.
            known = self._plain.get(method)
        else:
            method, params, known = message.method, message.params, None  # type: ignore[union-attr]
        if known is not None and known[1] <= len(params) <= known[2]:
            function, args = known[0], params
            kwargs: dict[str, Any] = {}
        else:
            try:
                function, args, kwargs = srv.resolve(method, params)
            except RPCError as exc:
                self._finish_reply(outcome_response(as_message(message), exc=exc, debug=self._debug, peer=self))
                return
        is_async = srv._is_async.get(function)
        if is_async is None:
            is_async = srv._handler_is_async(function)
        if is_async:
            try:
                work = function(*args, **kwargs)
            except Exception as exc:  # e.g. a wrapper that checks its arguments first
                self._finish_reply(outcome_response(as_message(message), exc=exc, debug=self._debug, peer=self))
                return
            self.busy += 1
            srv.total_busy += 1
            if type(work) is types.CoroutineType:
                # Speed: the runner drives the handler's own coroutine (no wrapper coroutine).
                self._runner.submit(self, message, work)
            else:  # some other awaitable: a coroutine awaits it and builds the reply
                call = as_message(message)
                self._runner.submit(self, Replying(call), srv.await_result(call, work, peer=self))
        elif srv.run_sync_in_thread:
            try:
                future = srv.executor().submit(function, *args, **kwargs)
            except Exception as exc:  # the executor refused it (shut down, full): -32603, no slot taken
                self._finish_reply(srv.refused(as_message(message), exc, self))
                return
            self.busy += 1
            srv.total_busy += 1
            srv.pool(self._loop).submit(self, as_message(message), future)
        else:
            call = as_message(message)
            reply = srv.execute_now(call, function, args, kwargs, self)
            if isinstance(reply, Coroutine):
                self._spawn(call, reply)
            else:
                self._finish_reply(reply)

    def _finish_reply(self, reply: Outcome) -> None:
        if reply is not None:
            self._write(self._proto.encode(reply))

    def _spawn(self, call: Request | Notification, work: Coroutine[Any, Any, Outcome]) -> None:
        self.busy += 1
        self._srv.total_busy += 1
        self._runner.submit(self, Replying(call), work)

    def _start_batch(self, batch: Batch) -> None:
        """Run a batch: it holds a call slot for each member it may run at once (see ``_run_batch``)."""
        if self._late:  # (came after shutdown() began: its notifications are dropped, see _aio_ending)
            late = batch.without_notifications()
            if late is None:
                return
            batch = late
        slots = _workers(len(batch.values), self._limit)
        self.busy += slots
        self._srv.total_busy += slots
        self._runner.submit(self, batch, self._run_batch(batch, slots))

    def abandon(self, message: CallMessage | Batch | Replying | None) -> None:
        """A queued call is dropped before it began (its runner was cancelled): give its slots back."""
        if type(message) is Batch:
            self._release(_workers(len(message.values), self._limit) - 1)
        self.finish(None)

    def _release(self, count: int) -> None:
        """Give back ``count`` call slots of this connection that no call holds any more."""
        self.busy -= count
        if not self.busy:
            self._last = self._loop.time()
        srv = self._srv
        srv.total_busy -= count
        if srv._blocked:
            srv._unblock()

    def finish_pooled(self, message: Request | Notification, future: concurrent.futures.Future[Any]) -> None:
        """A call run in the thread pool ended: answer it (an awaitable result is awaited first)."""
        reply = self._srv.pooled_outcome(message, future, self)
        if isinstance(reply, Coroutine):
            self._runner.submit(self, Replying(message), reply)  # still busy: the runner ends it
        else:
            self.finish(reply)

    def finish_call(self, message: CallMessage | Batch | Replying | None, result: Any) -> None:
        """A call's coroutine returned ``result`` (the reply itself for ``Replying``; a batch: None)."""
        if type(message) is Replying:
            self.finish(result)
            return
        if type(result) not in PLAIN_RESULTS and inspect.isawaitable(result):  # e.g. an async __call__
            call = cast(CallMessage, message)  # (a batch's coroutine returns None)
            request = as_message(call)
            # (Still busy: the runner ends the call.)
            self._runner.submit(self, Replying(request), self._srv.await_result(request, result, peer=self))
            return
        # Speed: a success reply is encoded without building a Response and, framed by
        # newlines, without encode_result's layers (same bytes: a test compares them).
        if type(message) is dict:  # a plain call: read as a line, so framed by newlines
            id_, lines = message["id"], True
        elif type(message) is Request:
            id_, lines = message.id, self._proto.framing == "newline"
        else:  # a notification, or a batch (which wrote its reply): nothing to send
            self._ended()
            return
        if lines:
            try:
                if type(result) is int and type(id_) is int:  # (as the sync server's _plain_reply)
                    data = _INT_REPLY % (id_, result)
                else:
                    data = self._dumps_line({"jsonrpc": "2.0", "id": id_, "result": result})
            except BaseException:  # not JSON (or user code raised SystemExit...): encode_result makes the -32603
                data = self._proto.encode_result(id_, result)
        else:
            data = self._proto.encode_result(id_, result)
        self._write(data)
        self._ended()

    def finish_error(self, message: CallMessage | Batch | Replying | None, exc: BaseException) -> None:
        """A call's coroutine raised ``exc`` (an ``await_result``'s: the GeneratorExit of ``_stay_with``)."""
        if isinstance(message, Replying):
            self.finish(outcome_response(message.message, exc=exc, debug=self._debug, peer=self))
            return
        # (pragma: the driver's own coroutines, a batch's too, turn errors into replies)
        if message is None or isinstance(message, Batch):  # pragma: no cover
            log.error("%s: call failed", self.peer_label(), exc_info=exc)
            self.finish(None)
            return
        self.finish(outcome_response(as_message(message), exc=exc, debug=self._debug, peer=self))

    def finish(self, reply: Outcome) -> None:
        """A call of this connection ended (``reply`` None: nothing to send)."""
        try:
            if reply is not None:
                self._write(self._proto.encode(reply))
        finally:
            self._ended()  # the call's slot is given back whatever happened

    def _ended(self) -> None:
        self.busy -= 1
        if not self.busy:  # idle from now on (while busy it is not idle anyway)
            self._last = self._loop.time()
        srv = self._srv
        srv.total_busy -= 1
        if srv._blocked:
            srv._unblock()
        # Otherwise nothing waits on this call; the runner pumps after its queue if it runs.
        if (self._read_paused or self._input_done) and not self._runner.later(self):
            self.pump()

    async def _run_batch(self, batch: Batch, slots: int) -> None:  # its reply is written here: returns None
        """Run a batch's members, at most ``max_concurrent_calls`` at a time, and answer them.

        ``slots`` workers (``max_concurrent_calls``, or fewer members) take the members
        in order from one iterator (a batch costs that many tasks, not one per
        member), and each lets the loop run others after every few members (at most
        ``BATCH_STEP`` members per loop iteration over all workers, or one per worker
        past that many workers), so a large batch of quick calls never holds the loop
        in one long step. The members are checked (``parse_request``) as they are
        taken, not all before the first runs.

        The batch holds a call slot of the connection and of the server for each
        worker (``_start_batch``), so a connection's batches and calls together run at
        most about ``max_concurrent_calls`` members at once, and the server stops
        reading at ``max_total_calls`` before batches pile up; a worker that finds no
        member left gives its slot back (the last one's goes when the reply is
        written), so a slow last member does not hold the others. Once the peer is
        gone (nothing can reach it), the members not yet started that need a reply
        are skipped; notifications still run.
        """
        srv, draining, values = self._srv, self._draining, batch.values
        # A success as its JSON object (see encode_replies): built here, member by
        # member, the one encode at the end is a C call (0.09 s, not 0.35 s, for 230,000).
        members = Members(srv, values, draining, lambda: self._gone, self)
        replies = members.replies
        every = max(1, BATCH_STEP // slots)
        held = slots - 1  # slots still to give back before the batch's own (see _start_batch)
        pooled = srv.run_sync_in_thread
        loop = self._loop

        async def worker() -> None:
            nonlocal held
            done = 0
            # A worker task of its own meets a GeneratorExit that a future a handler
            # awaited failed with (see CallRunner._stay_with): that member's reply.
            own = asyncio.current_task() if slots > 1 else None
            try:
                member = members.take()
                while member is not None:
                    i, value = member
                    member = None
                    item = parse_request(value)
                    if isinstance(item, ErrorResponse):
                        replies[i] = item
                    elif not (self._gone and type(item) is Request):  # (nobody could read its reply)
                        prepared = srv.prepare_or_reply(item, draining, self)
                        if isinstance(prepared, Prepared) and pooled and not srv._handler_is_async(prepared.function):
                            # This member and the plain ones after it, in one pool job (_aio_members).
                            back = await srv.run_members(loop, members, i, prepared)
                            if back is not None:
                                try:
                                    member = await handback(srv, back, replies, self)
                                except GeneratorExit as exc:  # (as below)
                                    if not stepping(own):
                                        raise
                                    replies[back.index] = outcome_response(
                                        back.message, exc=exc, debug=srv.options.debug, peer=self
                                    )
                            if member is None:
                                member = members.take()
                            continue
                        try:
                            reply = await srv.execute(prepared, self) if isinstance(prepared, Prepared) else prepared
                        except GeneratorExit as exc:
                            if not stepping(own):
                                raise  # closed
                            reply = outcome_response(item, exc=exc, debug=srv.options.debug, peer=self)
                        if type(reply) is Response:
                            replies[i] = {"jsonrpc": "2.0", "id": reply.id, "result": reply.result}
                        else:
                            replies[i] = reply
                    done += 1
                    if done == every:  # (the members that did not wait all ran in this loop step)
                        done = 0
                        await asyncio.sleep(0)
                    member = members.take()
            finally:
                if held:  # no member left for this worker: its slot goes back now
                    held -= 1
                    self._ended()

        try:
            if slots == 1:
                await worker()
            else:
                # Worker tasks known as the batch's (shutdown() awaited by a member's handler).
                batch_task, batch_tasks = asyncio.current_task(), srv._batch_tasks
                workers = [loop.create_task(worker()) for _ in range(slots)]
                if batch_task is not None:
                    for task in workers:
                        batch_tasks[task] = batch_task
                try:
                    await asyncio.gather(*workers)
                finally:
                    for task in workers:
                        batch_tasks.pop(task, None)
        except BaseException:
            members.stopped = True  # cancelled: the pool jobs still running take nothing more
            raise
        finally:
            while held:  # workers cancelled before they began
                held -= 1
                self._ended()
        if self._gone:
            return
        data = self._proto.encode_replies([reply for reply in replies if reply is not None])
        if data is not None:
            self._write(data)


def _workers(members: int, limit: int) -> int:
    """How many workers (and call slots) a batch of ``members`` gets with ``limit`` (max_concurrent_calls)."""
    return max(1, min(limit, members))
