"""A batch's members as the asyncio server's batch workers take them, and plain members run in a row.

A batch's workers (``CallingProtocol._run_batch``) take its members in order from
one ``Members``. A worker whose member has a plain handler (run in the thread
pool) hands that member to one pool job, ``run_plain``, which then goes on taking
the batch's next members itself while they are plain too, up to ``PLAIN_RUN`` of
them: one trip through the pool for a run of members, not one each (measured
21-36 us a member through the pool one by one, against a few us in a row; the sync
server runs a batch in its connection's thread). Each worker still runs one member
at a time, and every member is taken from the same sequence, so a batch's members
run as concurrently as before (32 slow members: 32 at once, not 2 jobs of 16).
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ._codec import ErrorResponse, Request, Response, parse_request
from ._dispatch import PLAIN_RESULTS, Peer, Prepared, outcome_response

if TYPE_CHECKING:
    from ._aio_server import RPCServer

__all__ = ["PLAIN_RUN", "Handback", "Members", "Reply", "handback", "run_plain"]

# Members a pool job runs in a row at most: ~100-200 us of quick calls, so a call
# waiting for a pool thread behind the jobs of many batches does not wait long.
PLAIN_RUN = 32

Reply = Response | ErrorResponse | dict[str, Any] | None


class Members:
    """A batch's members, taken in order by its workers on the loop and by its pool jobs (thread-safe).

    ``replies`` gets each member's reply at its index (None: no reply); ``gone()``
    tells whether the peer is gone (``ServerProtocol._gone``); ``draining``: the
    batch was taken once the server drained (its requests are refused); ``peer``:
    the connection, as a failing member's log line names it.
    """

    __slots__ = ("_lock", "_next", "draining", "gone", "peer", "replies", "srv", "stopped", "values")

    def __init__(
        self, srv: RPCServer, values: list[Any], draining: bool, gone: Callable[[], bool], peer: Peer | None = None
    ) -> None:
        self.srv = srv
        self.peer = peer
        self.values = values
        self.draining = draining
        self.gone = gone
        self.replies: list[Reply] = [None] * len(values)
        self._next = 0
        self._lock = threading.Lock()
        self.stopped = False  # the batch's workers were cancelled: its pool jobs take nothing more

    def take(self) -> tuple[int, Any] | None:
        """The next member not yet taken, with its index (None: none left)."""
        with self._lock:
            i = self._next
            if self.stopped or i >= len(self.values):
                return None
            self._next = i + 1
        return i, self.values[i]


class Handback:
    """What a pool job gives back to its worker on the loop: a member it may not run in the thread.

    ``awaitable`` None: the member at ``index`` is still to be run (an ``async def``
    handler's); else the plain handler returned an awaitable, to be awaited there.
    """

    __slots__ = ("awaitable", "index", "message", "value")

    def __init__(self, index: int, value: Any, message: Any = None, awaitable: Awaitable[Any] | None = None) -> None:
        self.index = index
        self.value = value
        self.message = message
        self.awaitable = awaitable


def run_plain(members: Members, index: int, prepared: Prepared) -> Handback | None:
    """Run ``prepared`` (member ``index``, a plain handler), then the next plain members (a pool thread).

    Each reply goes into ``members.replies``; a member this thread may not run is given back.
    Stops after ``PLAIN_RUN`` members, at the end of the batch, or once ``gone()``
    (the peer is gone: the worker goes on, skipping the members that need a reply).
    """
    srv, replies, draining, gone = members.srv, members.replies, members.draining, members.gone
    debug = srv.options.debug
    ran = 0
    while True:
        message = prepared.message
        try:
            result = prepared.run()
        except BaseException as exc:  # SystemExit and the like too: the handler's own, answered -32603
            replies[index] = outcome_response(message, exc=exc, debug=debug, peer=members.peer)
        else:
            if type(result) not in PLAIN_RESULTS and inspect.isawaitable(result):  # e.g. an async __call__
                return Handback(index, None, message, result)
            if isinstance(message, Request):
                replies[index] = {"jsonrpc": "2.0", "id": message.id, "result": result}
        ran += 1
        while True:  # the next member this thread may run
            if ran >= PLAIN_RUN or gone():
                return None
            member = members.take()
            if member is None:
                return None
            index, value = member
            item = parse_request(value)
            if isinstance(item, ErrorResponse):
                replies[index] = item
                ran += 1
                continue
            found = srv.prepare_or_reply(item, draining, members.peer)
            if not isinstance(found, Prepared):
                replies[index] = found  # refused (no such method, bad arguments, draining)
                ran += 1
                continue
            if srv._handler_is_async(found.function):
                return Handback(index, value)  # an async def handler's: the loop runs it
            prepared = found
            break


async def handback(
    srv: RPCServer, back: Handback, replies: list[Reply], peer: Peer | None = None
) -> tuple[int, Any] | None:
    """A member a pool job gave back (see ``run_plain``): the member to run here, or None once answered."""
    if back.awaitable is None:  # an async def handler's: run on the loop
        return back.index, back.value
    reply = await srv.await_result(back.message, back.awaitable, peer=peer)
    if type(reply) is Response:
        replies[back.index] = {"jsonrpc": "2.0", "id": reply.id, "result": reply.result}
    else:
        replies[back.index] = reply
    return None
