"""The reading half of ``FaultyTransport``: the plan's pieces, their delays and the peer's end.

``_FaultyReads`` owns what a read depends on (the bytes the wrapped transport gave and
the plan has not handed on yet, a piece held for its delay, the peer's EOF held for
``close_delay``) and what both halves share (the wrapped transport, the link's state
and its lock, the close that ends every wait, and doing a fault to the wrapped
transport). ``FaultyTransport`` (``_faults``) adds the sending half on top.
"""

from __future__ import annotations

import functools
import threading
import time

from .._ready import unread_of
from .._transport import RECV_SIZE, Transport
from ._end_faults import abort_transport, shutdown_read, shutdown_write
from ._plan import DirectionState, FaultPlan, LinkState, Step

__all__ = ["_FaultyReads"]

_DELAYED = ("close", "half_close")  # the plan's faults that reach the other end close_delay late, as an end's close


class _FaultyReads:
    """A transport under a fault plan, as far as reading it goes (see ``FaultyTransport``)."""

    def __init__(self, inner: Transport, plan: FaultPlan, link: LinkState, incoming: DirectionState) -> None:
        self.inner = inner
        self.plan = plan
        self.link = link
        self._in = incoming
        self._lock = threading.Lock()  # (the link's state: both halves commit to it)
        self._recv_lock = threading.Lock()
        self._closed = threading.Event()
        self._applied: set[str] = set()
        self._ready_at = time.monotonic() + plan.connect_delay
        self._buf = b""
        self._pos = 0
        self._eof = False
        self._eof_at = 0.0  # when the peer's close (the EOF read) reaches us: close_delay after it came
        # A piece the plan let through with a delay that a read's timeout cut short:
        # (the piece, its step, when it may be read). The next read delivers it.
        self._held: tuple[bytes, Step, float] | None = None
        # When the bytes in _buf arrived, if the wrapped transport says (recv_stamped,
        # as the pipe has): a piece's delay counts from then, not from when it is read.
        self._arrived: float | None = None
        self._in_due = 0.0  # when the last piece read with a delay arrived
        # An inbound fault behind the bytes the last read returned, and when it happens.
        self._fault_next: tuple[Step, float] | None = None
        # A close or half-close of the plan this direction met, and when it happens:
        # close_delay after the bytes before it arrived, as an end's close would.
        self._closing: tuple[Step, float] | None = None

    def _sleep(self, seconds: float, deadline: float | None = None) -> bool:
        """Sleep (cut short by close or ``deadline``); True if the full time passed."""
        if deadline is not None:
            left = deadline - time.monotonic()
            if left < seconds:
                self._closed.wait(max(left, 0.0))
                return False
        return not self._closed.wait(seconds)

    def _wait_connected(self, deadline: float | None) -> bool:
        left = self._ready_at - time.monotonic()
        return left <= 0 or self._sleep(left, deadline)

    def _apply(self, step: Step, outbound: bool) -> None:
        """Do the step's fault to the wrapped transport, once per kind and direction."""
        key = f"{step.fault}/{outbound}"
        if step.fault is None or key in self._applied:
            return
        self._applied.add(key)
        if step.fault == "close":
            self.inner.close()
        elif step.fault == "reset":
            abort_transport(self.inner)
        elif step.fault == "half_close":
            if outbound:
                shutdown_write(self.inner)
            else:
                shutdown_read(self.inner)

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        """Read the next piece the plan lets through; ``b""`` at EOF; TimeoutError on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._wait_connected(deadline):
            if self._closed.is_set():
                return b""
            raise TimeoutError("read timed out (connection not established yet by the fault plan)")
        with self._recv_lock:
            while True:
                if self._closed.is_set():
                    return b""
                if self._closing is not None:
                    return self._close_arrives(self._closing, deadline)
                if self._fault_next is not None:  # after the bytes the last read handed on
                    (step, at), self._fault_next = self._fault_next, None
                    return self._fault_arrives(step, at, deadline)
                fresh = False  # whether this read's plan decided the step (not a fault known before)
                if self._held is None:
                    pending = memoryview(self._buf)[self._pos : self._pos + max_bytes]
                    with self._lock:
                        fresh = bool(pending) and (self.link.broken or self._in.ended) is None
                        step = self._in.next_step(pending) if pending else self._blocked_step()
                        chunk = bytes(pending[: step.size])
                        if step.size or step.fault:
                            # (a fault behind bytes becomes known once they are handed on, a
                            # close or half-close once it happens: _fault_arrives)
                            later = chunk or (fresh and self._delays(step))
                            self._in.commit(chunk, Step(step.size, step.delay) if later else step)
                    if step.delay:
                        arrived = time.monotonic() if self._arrived is None else self._arrived
                        sent = max(arrived, self._ready_at)  # (what came before the connection was up left then)
                        self._in_due = self._in.arrival(sent, step, self._in_due)
                        self._held = (chunk, step, self._in_due)
                if self._held is not None:
                    # The read's timeout bounds the plan's delay too (latency, jitter,
                    # bandwidth): a piece due later waits for the next read, as bytes
                    # still on their way would.
                    chunk, step, due = self._held
                    if not self._sleep(due - time.monotonic(), deadline):
                        if self._closed.is_set():
                            return b""
                        raise TimeoutError(f"read timed out: the fault plan delays the next bytes; {self.plan!r}")
                    self._held = None
                    if 0 < max_bytes < len(chunk):
                        # Held by an earlier, larger read: this one takes at most what it
                        # asks for, and the rest stays due (its fault, if any, comes after it).
                        self._held = (chunk[max_bytes:], step, due)
                        self._pos += max_bytes
                        return chunk[:max_bytes]
                if chunk:
                    self._pos += len(chunk)
                    if self._pos >= len(self._buf):
                        self._buf, self._pos = b"", 0
                    if step.fault is not None:
                        self._after_bytes(step)
                    return chunk
                if step.fault is not None:
                    at = time.monotonic() + (self.plan.close_delay if fresh and self._delays(step) else 0.0)
                    return self._fault_arrives(step, at, deadline)
                if self._eof:
                    return self._peer_closed(deadline)
                self._fill(deadline)

    def _blocked_step(self) -> Step:
        """With nothing buffered: the fault that already ended this direction, if any."""
        broken = self.link.broken or self._in.ended
        if broken is None:
            return Step(0)
        return Step(0, fault=broken[0], reason=broken[1])

    def _after_fault(self, step: Step, deadline: float | None) -> bytes:
        if step.fault == "reset":
            raise ConnectionResetError(step.reason)
        if step.fault == "stall":
            if deadline is None:
                self._closed.wait()
            elif self._closed.wait(max(0.0, deadline - time.monotonic())):
                return b""
            if not self._closed.is_set():
                raise TimeoutError(f"read timed out: {step.reason}")
        return b""  # close / half_close: end of stream

    def _delays(self, step: Step) -> bool:
        """Whether ``step``'s fault reaches the other end ``close_delay`` after it arrives."""
        return step.fault in _DELAYED and self.plan.close_delay > 0

    def _fault_arrives(self, step: Step, at: float, deadline: float | None) -> bytes:
        """The read meets ``step``'s fault, which happens at ``at`` (later: a close held for close_delay)."""
        if at > time.monotonic():
            self._closing = (step, at)
            return self._close_arrives(self._closing, deadline)
        self._inbound(step)
        return self._after_fault(step, deadline)

    def _close_arrives(self, closing: tuple[Step, float], deadline: float | None) -> bytes:
        """A close or half-close of the plan reaches both ends ``close_delay`` after it arrived.

        As the asyncio kits' link does, and as an end's close does (``_peer_closed``):
        until then this end's reads time out (within their timeout) and the other end
        sees nothing; then it happens (the wrapped transport is closed or half-closed)
        and the read gets EOF. ``close()`` ends the wait.
        """
        step, at = closing
        if not self._sleep(at - time.monotonic(), deadline) and not self._closed.is_set():
            what = (step.fault or "").replace("_", "-")
            raise TimeoutError(f"read timed out: the fault plan delays its {what} (close_delay); {self.plan!r}")
        if not self._closed.is_set():
            self._inbound(step)
        return b""

    def _peer_closed(self, deadline: float | None) -> bytes:
        """The peer's close (EOF) reaches this end the plan's ``close_delay`` after it came.

        As a close of this end reaches the peer that long after ``close()`` (which waits
        it out): both ways alike. The read's timeout bounds the wait (TimeoutError; a
        later read returns ``b""`` once it is due); ``close()`` ends it.
        """
        if not self._sleep(self._eof_at - time.monotonic(), deadline) and not self._closed.is_set():
            raise TimeoutError(f"read timed out: the fault plan delays the peer's close (close_delay); {self.plan!r}")
        return b""

    def _fill(self, deadline: float | None) -> None:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        recv_stamped = getattr(self.inner, "recv_stamped", None)
        try:
            if recv_stamped is None:
                data = self.inner.recv(RECV_SIZE, timeout)
            else:
                data, self._arrived = recv_stamped(RECV_SIZE, timeout)
        except (OSError, ValueError):
            if self.link.broken is not None or self._closed.is_set():
                return  # our own fault closed the inner transport: the loop reports it
            raise
        if not data:
            self._eof = True
            self._eof_at = time.monotonic() + self.plan.close_delay
            return
        self._buf = self._buf[self._pos :] + data
        self._pos = 0

    def _after_bytes(self, step: Step) -> None:
        """The fault behind the bytes this read hands on happens once they are (a close ``close_delay`` later)."""
        at = time.monotonic() + (self.plan.close_delay if self._delays(step) else 0.0)
        self._fault_next = (step, at)
        call_at = getattr(self.inner, "call_at", None)
        if call_at is not None:
            call_at(at, functools.partial(self._inbound, step))

    def _inbound(self, step: Step) -> None:
        """A fault of the bytes read happens as they are handed on: now everyone sees it."""
        with self._lock:
            self._in.commit(b"", step)  # (counted already: this makes the fault known)
        self._apply(step, outbound=False)

    def _pending_reads(self) -> int:
        """Bytes that came and a read has not handed on yet (held, buffered, or in the wrapped transport)."""
        held = 0 if self._held is None else len(self._held[0])
        return held + len(self._buf) - self._pos + (unread_of(self.inner) or 0)

    def _stop_waits(self) -> None:
        """End a blocked ``recv``'s wait now (it returns ``b""``), as ``close`` does, closing nothing.

        For the proxy's relay, which closes the sockets itself: a direction waiting out
        a held chunk's delay stops at once instead of at its next poll.
        """
        self._closed.set()

    def _spent(self) -> bool:
        """Whether a read hands on no more bytes: the plan stalled this direction, or only an EOF is left.

        (The peer's EOF, or a close or half-close of the plan: each waits out the
        plan's ``close_delay``, and a read before then times out.)
        For the proxy's relay, which stops waiting for bytes that cannot come.
        """
        if self._held is not None:
            return False
        ended = self._in.ended
        return self._eof or self._closing is not None or (ended is not None and ended[0] == "stall")
