"""Connections held back at ``max_total_calls`` take turns: a base class of ``aio.RPCServer``.

When the whole server is at its call limit, every connection with a call to take
waits in one queue. Each slot that frees wakes the first for a turn of one
message; one with more waits again. A connection whose own call just ended
queues behind them too, so clients that pipeline many calls cannot take every
slot that frees. Moved out of ``_aio_server``.

The order is a fair queue weighed by calls: each message held gets a start
tag, the virtual time (``_vtime``: the start tag of the last message taken on a
turn) or where the connection's last message ended if later, and an end tag,
its start plus its weight (1 for a call; a batch about its member count, seen in
the bytes read: ``_weight``); the lowest end tag goes first, ties in the order
held. So connections with one call each go in turns, one call per turn, in the
order they were held; and a batch of n members waits until each connection ahead
of it took about n calls: clients that send large batches and hang up cannot make
the others wait for a whole batch each.

A turn for a message weighing more than one call (a batch, mostly) is given at
most once per loop iteration: such turns wait in a queue of their own, and the
lowest tag of both queues goes first except that a second heavy turn waits for
the next iteration (a slot it would have had goes to the lightest held call, if
any). Taking a batch on its turn decodes it on the loop (~5 ms for 2,000
members) and starts its workers; a batch that ended freed one slot per worker,
and each woke a batch, so under a flood of large batches every loop iteration
decoded and started a dozen batches (tens of ms), and a call from another
client, which takes a few loop iterations, waited as many times for them
(measured under a flood of 2,000-member batches: 3 times as many calls of other
clients answered, ~95 -> ~300 in 10 s).
"""

from __future__ import annotations

import asyncio
import heapq
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._aio_conn import ServerProtocol

__all__ = ["TurnTaking"]


class TurnTaking:
    """The turn-taking part of ``aio.RPCServer``: ``_init_turns`` sets its attributes."""

    def _init_turns(self, max_total_calls: int) -> None:
        self.max_total_calls = max_total_calls
        # Connections held back by max_total_calls: each one's entry in _queue or _heavy (see _unblock).
        self._blocked: dict[ServerProtocol, int] = {}
        # (tag, entry, connection), the lowest first; entries no longer in _blocked are stale.
        # Connections whose message weighs 1 call, and those whose message weighs more.
        self._queue: list[tuple[int, int, ServerProtocol]] = []
        self._heavy: list[tuple[int, int, ServerProtocol]] = []
        self._heavy_turn = False  # a heavy message's turn was given in this loop iteration
        self._entries = 0  # entries made: a held connection's place among equal tags
        self._vtime = 0  # the tag of the last message taken on a turn (see the module's docstring)
        self._waking = 0  # of them, woken for a free slot they have not used yet (take_turn)
        # What connections compare total_busy with to take a call: max_total_calls, or 0
        # while any is held back or woken, so the rest queue behind them (one compare on
        # the hot path; a woken connection checks the real room itself: take_turn).
        self._admit_below = max_total_calls
        self.total_busy = 0

    def hold(self, conn: ServerProtocol) -> None:
        """``conn`` has a message to take but may not now (``max_total_calls``): it waits its turn.

        Its tags: its share starts at the virtual time or where its last message
        ended, if later; it ends that plus the message's weight (``_weight``). One
        woken for a turn that found no free slot (a batch before it took several),
        or one already held, keeps its tags and place.
        """
        if conn._turn:
            self.turn_taken(conn)
            entry = conn._entry
        elif conn in self._blocked:
            return  # (pumped again while held, as a call of its own ended: it keeps its place)
        else:
            conn._start = start = max(self._vtime, conn._tag)
            proto = conn._proto
            conn._tag = start + _weight(
                conn._backlog, conn._bpos, proto.in_message or proto.framing == "content-length"
            )
            entry = self._entries = self._entries + 1
        self._blocked[conn] = conn._entry = entry
        heapq.heappush(self._heavy if conn._tag - conn._start > 1 else self._queue, (conn._tag, entry, conn))
        self._admit_below = 0

    def turn_used(self, conn: ServerProtocol) -> None:
        """``conn``'s turn took its message: the virtual time moves on to where that message's share began."""
        self._vtime = max(self._vtime, conn._start)
        self.turn_taken(conn)

    def turn_taken(self, conn: ServerProtocol) -> None:
        """``conn``'s turn (``_unblock``) is used or given up: when nobody else waits, the gate opens."""
        conn._turn = False
        self._waking -= 1
        if not self._blocked and not self._waking:
            self._admit_below = self.max_total_calls

    def _unblock(self) -> None:
        """A call ended (or a held connection went): held connections take turns at the free slots.

        They are woken lowest tag first (see the module's docstring), one for each
        free slot, and each takes one message per turn (``ServerProtocol.take_turn``);
        one with more waits again. So a connection with one call waiting is served
        after one call of each ahead of it, not after all their calls (clients that
        pipeline calls and hang up used to take every slot that freed: they were
        woken first, or re-read at once as a call of theirs ended), and not after
        whole batches of theirs. A heavy message (a batch) gets one turn per loop
        iteration at most (see the module's docstring). Once nobody is held or
        woken, connections take calls freely again.
        """
        blocked, light, heavy = self._blocked, self._queue, self._heavy
        free = self.max_total_calls - self.total_busy - self._waking
        if free > 0 and blocked:
            loop = asyncio.get_running_loop()
            now = loop.time()
            while free and blocked:
                while light and blocked.get(light[0][2]) != light[0][1]:
                    heapq.heappop(light)  # (stale: the connection went, or was held again)
                while heavy and blocked.get(heavy[0][2]) != heavy[0][1]:
                    heapq.heappop(heavy)
                if heavy and not self._heavy_turn and (not light or heavy[0] < light[0]):
                    conn = heapq.heappop(heavy)[2]
                    self._heavy_turn = True
                    loop.call_soon(self._next_heavy)
                elif light:
                    conn = heapq.heappop(light)[2]
                else:
                    break  # only heavy ones wait: the next one in the next loop iteration
                del blocked[conn]
                free -= 1
                self._waking += 1
                conn._turn = True
                conn._last = now  # its idle time starts again (not idle while held: TimedProtocol)
                loop.call_soon(conn.take_turn)
        if not blocked:
            light.clear()
            heavy.clear()
            if not self._waking:
                self._admit_below = self.max_total_calls

    def _next_heavy(self) -> None:
        """A new loop iteration: a heavy message may have its turn again."""
        self._heavy_turn = False
        if self._blocked:
            self._unblock()


# JSON whitespace, skipped before a message (a regex: C speed, no copy).
_SPACE = re.compile(rb"[ \t\r\n]*")


def _weight(backlog: bytes | None, start: int, bulk: bool) -> int:
    """The weight of the next message in ``backlog`` (from ``start``, a line's start): its calls, about.

    A batch weighs the objects begun in it (each member is one; an object in
    arguments, or a brace in a string, adds one), however it is laid out: JSON
    whitespace before it is skipped; a compact batch (its first line ends with
    ``]`` and closes every ``{`` it opens) is counted on that line; one that goes
    on over several lines (pretty-printed, or not all read yet) takes every byte
    read after it to the core at its turn, so those are counted too, to the end
    of the backlog (a brace in a string may only make it weigh more). So are
    bytes that go to the core whole at a turn (``bulk``: Content-Length framing,
    or the rest of a value begun before), whatever they begin with: the messages
    among them are not seen again here (they weigh 1 each when held again, from
    the core). Content-Length headers (a ``C``) count the same. Anything else
    (a call, bytes already given to the core) weighs 1. A look at bytes already
    read, not a decode: a batch held is not kept decoded (~7 times its size)
    while it waits.
    """
    if backlog is None:
        return 1
    pos = _SPACE.match(backlog, start).end()  # type: ignore[union-attr]  # (always matches)
    if not bulk:
        first = backlog[pos : pos + 1]
        if first == b"[":
            end = backlog.find(b"\n", pos)
            if end >= 0:
                last = end
                while last > pos and backlog[last - 1] in b" \t\r":
                    last -= 1
                if backlog[last - 1] == 93:  # "]", and as many "}" as "{": one compact line
                    members = backlog.count(b"{", pos, end)
                    if members == backlog.count(b"}", pos, end):
                        return max(1, members)
        elif first not in b"Cc" or not first:
            return 1
    return max(1, backlog.count(b"{", pos))
