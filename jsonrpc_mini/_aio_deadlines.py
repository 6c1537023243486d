"""Call deadlines of an ``aio.RPCClient`` connection: one timer over a FIFO per timeout value.

Speed: one timer for all calls (a TimerHandle per call cost ~1.5 us). Calls with
the same timeout expire in the order they were made, so each timeout value has a
FIFO of ``(deadline, id)`` (an append per call; a heap push per call cost ~0.4 us
more). A heap holds one entry per FIFO, ``(deadline, timeout)``, whose deadline is
never later than that FIFO's head: the timer fires at the top of the heap and an
expiry touches only the FIFOs that are due, so a client whose calls use thousands
of distinct timeouts (deadline-derived ones, say) pays a logarithmic cost per
expiry instead of a look at every FIFO.

Answered calls leave their entries behind; they are dropped lazily: those at a
FIFO's head as calls go on (``Link.expect``), due ones when the timer fires, and
all of them at each ``keep()`` (a slow call at a head holds back the first way).
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import time
from collections.abc import Callable, Container

from ._codec import Id

__all__ = ["Deadlines"]

# A timer may fire this much before its time (asyncio's own slack).
_RESOLUTION = time.get_clock_info("monotonic").resolution


class Deadlines:
    """The deadlines of one connection's calls; ``expired(id)`` is called for each that passes.

    ``queues`` maps a timeout to its FIFO; the connection appends to an existing
    FIFO itself (the usual call) and calls ``first()`` for a timeout with none.
    Invariant: no FIFO is empty, each has exactly one entry in ``_heads`` whose
    deadline is at most its head's, and the timer is armed no later than the top.
    """

    __slots__ = ("_expired", "_heads", "_loop", "queues", "timer")

    def __init__(self, loop: asyncio.AbstractEventLoop, expired: Callable[[Id], None]) -> None:
        self.queues: dict[float, collections.deque[tuple[float, Id]]] = {}
        self._heads: list[tuple[float, float]] = []  # (at most the head's deadline, timeout), a heap
        self._loop = loop
        self._expired = expired
        self.timer: asyncio.TimerHandle | None = None

    def first(self, timeout: float, id_: Id) -> None:
        """Start the FIFO of ``timeout`` (it has none) with the call ``id_`` made now."""
        deadline = self._loop.time() + timeout
        self.queues[timeout] = collections.deque(((deadline, id_),))
        heapq.heappush(self._heads, (deadline, timeout))
        if self.timer is None or deadline < self.timer.when():
            self._arm(deadline)

    def keep(self, live: Container[Id]) -> None:
        """Drop the entries of calls not in ``live`` (answered, forgotten), in every FIFO."""
        queues = self.queues
        for timeout, queue in list(queues.items()):
            kept = collections.deque(item for item in queue if item[1] in live)
            if kept:
                queues[timeout] = kept
            else:
                del queues[timeout]
        # Exact heads again; the timer stays (armed no later than the earliest head).
        self._heads = [(queue[0][0], timeout) for timeout, queue in queues.items()]
        heapq.heapify(self._heads)

    def clear(self) -> None:
        """Forget every deadline and stop the timer."""
        self.queues.clear()
        self._heads = []
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def __len__(self) -> int:
        """How many entries are kept (answered calls' included until dropped)."""
        return sum(map(len, self.queues.values()))

    def _arm(self, deadline: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self._loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self.timer = None
        now = self._loop.time() + _RESOLUTION
        heads, queues, expired = self._heads, self.queues, self._expired
        while heads and heads[0][0] <= now:
            timeout = heads[0][1]
            queue = queues[timeout]
            while queue and queue[0][0] <= now:
                expired(queue.popleft()[1])
            if queue:
                heapq.heapreplace(heads, (queue[0][0], timeout))
            else:
                heapq.heappop(heads)
                del queues[timeout]
        if heads:
            self._arm(heads[0][0])
