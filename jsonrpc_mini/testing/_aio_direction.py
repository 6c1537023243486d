"""One direction of a seeded-fault link under asyncio: bytes one end wrote, paced by the plan.

A :class:`Direction` takes the bytes its source :class:`End` wrote, asks the plan's
``DirectionState`` how many may cross now, how long to hold them and which fault
follows, then hands them to the other end; its task is started by the
``Link`` (``_aio_links``) that holds both directions of a connection.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from typing import TYPE_CHECKING, Protocol

from ._plan import DirectionState, Step

if TYPE_CHECKING:
    from ._aio_links import Link

__all__ = ["CHUNK", "Direction", "End"]

log = logging.getLogger("jsonrpc_mini.testing")

CHUNK = 64 * 1024  # at most this many bytes cross per step, like one socket read
# Chunks cut or delivered between two looks at the event loop: a large message in
# chunks of a byte (max_chunk=1) is a million of them, seconds in one loop step,
# and every other connection of the loop (clean ones beside a faulty one) waited.
_BUDGET = 256


class End(Protocol):
    """What a direction needs from the end it delivers to."""

    def deliver(self, data: bytes) -> None:
        """Hand ``data`` to the reader."""

    def deliver_eof(self) -> None:
        """The writer finished: the reader reads EOF."""

    def lose(self, exc: Exception | None) -> None:
        """The connection is gone for this end (``exc`` None: closed, else e.g. a reset)."""

    async def readable(self) -> bool:
        """Wait until the reader takes bytes; False if it never will again."""
        ...

    def drained(self, size: int) -> None:
        """Tell the writing end how many bytes are still queued (write flow control)."""


class Direction:
    """Bytes one end wrote, on their way to the other end, paced by the plan.

    As over a network link (and as ``FaultyTransport`` over ``loopback()``'s pipe):
    each chunk is cut and sent as soon as it is written, and is in flight until its
    delay (latency, jitter) after that, so chunks in flight together wait their
    delays out together; only their time at the plan's bandwidth adds up, and none
    overtakes one sent before it. A fault happens when the chunk before it arrives.
    """

    def __init__(self, link: Link, state: DirectionState, src: End, dst: End) -> None:
        self.link = link
        self.state = state
        self.src = src
        self.dst = dst
        self.buf = bytearray()
        # Chunks sent, not delivered yet: (when they arrive, the bytes, their step).
        self.flight: collections.deque[tuple[float, bytes, Step]] = collections.deque()
        self._flying = 0  # bytes in flight
        self._due = 0.0  # when the last chunk sent arrives
        self._faulted = False  # a step with a fault is in flight: nothing more is sent
        self._up = not link.plan.connect_delay  # no connect_delay holds what is written (see run)
        self.eof = False
        self._reset: ConnectionResetError | None = None  # what follows the bytes instead of the EOF
        self.ended = False
        self.dropping = False  # the kit is leaving: what the plan delays is dropped, not waited for
        self._wake = asyncio.Event()
        self._cut = asyncio.Event()  # set by stop() and drop_in_flight(): a delay under way ends now
        max_chunk = state.faults.max_chunk
        self._limit = CHUNK if max_chunk is None else min(CHUNK, max_chunk)
        self._work = 0  # chunks cut or delivered since the loop last ran other tasks
        self._cut_from: float | None = None  # when the bytes left uncut at the budget were sent

    @property
    def queued(self) -> int:
        """Bytes written but not delivered yet (in flight included)."""
        return len(self.buf) + self._flying

    def arrived(self, now: float) -> int:
        """Bytes that have reached the other end and are not delivered yet (a socket's FIONREAD there).

        The chunks in flight whose time has come, in order; and the bytes written and
        not cut yet, when the plan delays none (they are cut on this direction's next
        turn and arrive at once), not while its ``connect_delay`` holds them.
        """
        if self.ended:
            return 0
        total = 0
        for due, chunk, _ in self.flight:
            if due > now:
                return total  # (it holds back what follows it)
            total += len(chunk)
        faults = self.state.faults
        if self._up and not (faults.latency or faults.jitter or faults.bandwidth is not None):
            total += len(self.buf)
        return total

    def push(self, data: bytes) -> None:
        """Queue bytes the source end wrote (dropped once this direction has ended)."""
        if not self.ended and not self.eof and data:
            self.buf += data
            self._wake.set()

    def finish(self, reset: ConnectionResetError | None = None) -> None:
        """The source end closed its side: deliver EOF after the queued bytes.

        ``reset``: the end closed with bytes it had not read; the link breaks with
        ``reset`` instead of the EOF (TCP's RST), the source end spared.
        """
        self.eof = True
        self._reset = reset
        self._wake.set()

    def stop(self) -> None:
        """End this direction at once (the queued bytes vanish)."""
        self.ended = True
        self.buf.clear()
        self.flight.clear()
        self._flying = 0
        self._wake.set()
        self._cut.set()

    def drop_in_flight(self) -> None:
        """From now on drop the bytes the plan would delay (connect, latency, jitter, bandwidth).

        For the kit's exit: bytes still in flight (the request of a call that already
        timed out) never arrive, as when a connection is torn down, instead of holding
        the exit for their delays. Bytes with no delay still cross, then the EOF
        (after ``close_delay``).
        """
        self.dropping = True
        self._cut.set()
        self._wake.set()

    async def _delay(self, seconds: float) -> bool:
        """Hold the bytes ``seconds`` (the plan's delay); False if they are to be dropped.

        ``stop()`` and ``drop_in_flight()`` end a delay under way.
        """
        if seconds > 0 and not self.dropping and not self.ended:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._cut.wait(), seconds)
        return not (seconds > 0 and self.dropping)

    def _send(self, now: float) -> None:
        """Cut what was written into chunks and put them in flight (not past a fault).

        At most the budget's worth: the rest is cut on the next turn, as sent at ``now``.
        """
        if self._cut_from is not None:
            now = self._cut_from
        while self.buf and not self._faulted:
            if self._work >= _BUDGET:
                self._cut_from = now
                return
            self._work += 1
            view = bytes(self.buf[: self._limit])
            step = self.state.next_step(view)
            chunk = view[: step.size]
            del self.buf[: len(chunk)]
            self._due = self.state.arrival(now, step, self._due)
            if step.fault is None:
                self.state.commit(chunk, step)
            else:  # the bytes are counted now; the fault happens when they arrive
                self.state.commit(chunk, Step(step.size, step.delay))
                self._faulted = True
            self.flight.append((self._due, chunk, step))
            self._flying += len(chunk)
        self._cut_from = None

    async def _wait(self, seconds: float | None) -> None:
        """Wait ``seconds`` (None: no limit), or until bytes are written or cut."""
        self._wake.clear()
        if seconds is not None and seconds <= 0:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def run(self) -> None:
        """Move bytes until EOF, a fault, or ``stop()``."""
        loop = asyncio.get_running_loop()
        if not await self._delay(self.link.plan.connect_delay):
            self.buf.clear()
        self._up = True
        while not self.ended:
            if self._work >= _BUDGET:
                self._work = 0
                await asyncio.sleep(0)  # (the loop's other tasks run: see _BUDGET)
                continue
            self._send(loop.time())
            if self.flight:
                due, chunk, step = self.flight[0]
                if due > loop.time():
                    if self.dropping:  # in flight when the kit leaves: it (and all behind it) never arrives
                        self.flight.clear()
                        self._flying = 0
                        self._faulted = False  # (a fault dropped with them: decided again if more comes)
                        self.buf.clear()
                        self.src.drained(0)
                        continue
                    await self._wait(due - loop.time())
                    continue
                if not await self.dst.readable():
                    self.stop()
                    return
                if self.ended or not self.flight:
                    continue
                self.flight.popleft()
                self._flying -= len(chunk)
                if chunk:
                    self._work += 1
                    self.dst.deliver(chunk)
                self.src.drained(self.queued)
                if step.fault is not None:
                    self.state.commit(b"", step)
                    await self._fault(step)
                    return
                continue
            if self.eof and not self.buf:
                await self._end_of_stream()
                return
            await self._wait(None)

    async def _end_of_stream(self) -> None:
        if self.link.plan.close_delay:
            await asyncio.sleep(self.link.plan.close_delay)
        self.ended = True
        if self._reset is not None:
            self.link.break_link(self._reset, self.src)
        else:
            self.dst.deliver_eof()

    async def _fault(self, step: Step) -> None:
        self.ended = True
        self.buf.clear()
        log.debug("fault plan: %s", step.reason)
        if step.fault == "stall":
            return  # nothing more arrives, nothing closes
        if self.link.plan.close_delay and step.fault in ("close", "half_close"):
            await asyncio.sleep(self.link.plan.close_delay)
        if step.fault == "half_close":
            self.dst.deliver_eof()
        elif step.fault == "reset":
            self.link.break_link(ConnectionResetError(step.reason))
        else:
            self.link.break_link(None)
