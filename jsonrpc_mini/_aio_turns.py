"""Connections held back at ``max_total_calls`` take turns: a base class of ``aio.RPCServer``.

When the whole server is at its call limit, every connection with a call to take
waits in one queue, in the order it was held back. Each slot that frees wakes the
oldest for a turn of one call; one with more goes to the back. A connection whose
own call just ended queues behind them too, so clients that pipeline many calls
cannot take every slot that frees. Moved out of ``_aio_server``.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._aio_conn import ServerProtocol

__all__ = ["TurnTaking"]


class TurnTaking:
    """The turn-taking part of ``aio.RPCServer``: ``_init_turns`` sets its attributes."""

    def _init_turns(self, max_total_calls: int) -> None:
        self.max_total_calls = max_total_calls
        # Connections held back by max_total_calls, in the order they were (see _unblock).
        self._blocked: OrderedDict[ServerProtocol, None] = OrderedDict()
        self._waking = 0  # of them, woken for a free slot they have not used yet (take_turn)
        # What connections compare total_busy with to take a call: max_total_calls, or 0
        # while any is held back or woken, so the rest queue behind them (one compare on
        # the hot path; a woken connection checks the real room itself: take_turn).
        self._admit_below = max_total_calls
        self.total_busy = 0

    def hold(self, conn: ServerProtocol) -> None:
        """``conn`` has a call to take but may not now (``max_total_calls``): it waits at the back.

        One woken for a turn that found no free slot (a batch before it took
        several) waits at the front instead.
        """
        blocked = self._blocked
        blocked[conn] = None
        if conn._turn:
            self.turn_taken(conn)
            blocked.move_to_end(conn, last=False)
        self._admit_below = 0

    def turn_taken(self, conn: ServerProtocol) -> None:
        """``conn``'s turn (``_unblock``) is used or given up: when nobody else waits, the gate opens."""
        conn._turn = False
        self._waking -= 1
        if not self._blocked and not self._waking:
            self._admit_below = self.max_total_calls

    def _unblock(self) -> None:
        """A call ended (or a held connection went): held connections take turns at the free slots.

        They are woken in the order they were held back, one for each free slot,
        and each takes one call per turn (``ServerProtocol.take_turn``); one with
        more goes to the back. So a connection with one call waiting is served
        after one call of each ahead of it, not after all their calls (clients that
        pipeline calls and hang up used to take every slot that freed: they were
        woken first, or re-read at once as a call of theirs ended). Once nobody is
        held or woken, connections take calls freely again.
        """
        blocked = self._blocked
        free = self.max_total_calls - self.total_busy - self._waking
        if free > 0 and blocked:
            loop = asyncio.get_running_loop()
            now = loop.time()
            while free and blocked:
                conn = blocked.popitem(last=False)[0]
                free -= 1
                self._waking += 1
                conn._turn = True
                conn._last = now  # its idle time starts again (not idle while held: TimedProtocol)
                loop.call_soon(conn.take_turn)
        if not blocked and not self._waking:
            self._admit_below = self.max_total_calls
