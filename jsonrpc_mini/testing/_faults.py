"""``FaultyTransport``: a fault plan applied to any Transport (blocking driver).

The decisions come from :class:`~jsonrpc_mini.testing._plan.LinkState` (pure); this
module only sleeps, moves bytes and does to the wrapped transport what the fault
says (close, reset, half-close: ``_end_faults``). ``loopback`` wraps the client end of an in-memory
pipe with it; the proxy of ``LoopbackServer`` wraps each accepted TCP connection.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Literal

from .._transport import RECV_SIZE, Transport
from ._end_faults import abort_transport, shutdown_read, shutdown_write
from ._plan import FaultPlan, LinkState, Step

__all__ = ["FaultyTransport"]

Side = Literal["client", "server"]

_TRAVELS = ("close", "reset", "half_close")  # faults that reach the peer (a stall only stops bytes)


class FaultyTransport:
    """A :class:`~jsonrpc_mini.Transport` that applies a :class:`FaultPlan` to ``inner``.

    ``side`` says whose end ``inner`` is: on the ``"client"`` side ``send`` carries
    client->server bytes and ``recv`` server->client bytes; on the ``"server"`` side
    the other way round. Errors it raises name the plan's seed. Like
    ``SocketTransport`` it has ``send_within(data, timeout)``, with which the client
    bounds a send by its call's deadline (TimeoutError when the plan's delays run past it).
    ``recv``'s timeout bounds the delays too: a piece due after it waits for a later read.
    The plan's ``close_delay`` holds a close both ways: ``close()`` (``shutdown_write()``)
    waits it out before the peer sees it, and ``recv`` returns the peer's EOF that long
    after it came.
    Over a transport that can carry bytes in flight (``send_at``, as the in-memory pipe
    has), a chunk's delay is its time in flight and the writer does not wait for it,
    nor for the ``connect_delay`` (bytes sent before the connection is up leave when it is);
    where the transport says when bytes arrived (``recv_stamped``, the pipe again), a
    read piece's delay counts from then. So, as over a network, each chunk arrives its
    latency (and jitter) after it was sent, chunks in flight together do not add
    their latencies up, only their time at the plan's ``bandwidth``, and none
    overtakes one sent before it. Where the transport can also run an action later
    (``call_at``, the pipe again), a close, reset or half-close the writer's plan
    decides travels too: it happens when the bytes before it arrive (at once with no
    delay), the send that crosses it goes through, and a later send fails once it has
    happened. A fault of the bytes read happens once they are handed on: at the next
    read (a relay forwards them first), or as soon as either end uses a ``call_at`` pipe.

    Example (any transport, here an in-memory pipe)::

        from jsonrpc_mini import RPCClient
        from jsonrpc_mini.testing import FaultPlan, FaultyTransport, pipe_pair
        a, b = pipe_pair()
        server.serve_connection(b)
        client = RPCClient(transport=FaultyTransport(a, FaultPlan(seed=1, max_chunk=3)), timeout=5)
    """

    def __init__(
        self,
        inner: Transport,
        plan: FaultPlan,
        *,
        side: Side = "client",
        link: LinkState | None = None,
        connection: int = 0,
    ) -> None:
        if side not in ("client", "server"):
            raise ValueError(f"side must be 'client' or 'server', not {side!r}")
        self.inner = inner
        self.plan = plan
        self.link = link if link is not None else LinkState(plan, connection)
        if side == "client":
            self._out, self._in = self.link.client_to_server, self.link.server_to_client
        else:
            self._out, self._in = self.link.server_to_client, self.link.client_to_server
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
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
        self._due = 0.0  # when the last chunk sent through send_at reaches the peer
        # When the bytes in _buf arrived, if the wrapped transport says (recv_stamped,
        # as the pipe has): a piece's delay counts from then, not from when it is read.
        self._arrived: float | None = None
        self._in_due = 0.0  # when the last piece read with a delay arrived
        # An outbound fault travelling in flight (call_at): when it arrives, and the fault.
        self._on_its_way: tuple[float, Step] | None = None
        self._fault_next: Step | None = None  # an inbound fault behind the bytes the last read returned

    # -- helpers -------------------------------------------------------------

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

    @staticmethod
    def _error(step: Step) -> OSError:
        if step.fault == "reset":
            return ConnectionResetError(step.reason)
        return BrokenPipeError(step.reason)

    # -- the Transport methods -------------------------------------------------

    def send(self, data: bytes) -> None:
        """Write ``data`` in the chunks, with the delays and faults the plan decides."""
        self._send(data, None)

    def send_within(self, data: bytes, timeout: float) -> None:
        """Write ``data`` as :meth:`send` does, but all of it within ``timeout`` seconds.

        Else TimeoutError, as ``SocketTransport.send_within`` raises for a peer that
        takes no more data: the plan's delays (``connect_delay``, ``latency``,
        ``jitter`` and ``bandwidth``, unless the wrapped transport carries the bytes
        in flight with ``send_at``: then they wait in flight for all of them and the
        writer does not) count against the time left, so a client's call
        timeout also bounds sending its request through a slow plan. Part of
        ``data`` may have gone out when it raises; the stream should then be closed
        (the client does). A chunk whose delay would end after the deadline is not
        sent (the plan does not count it): the wait runs to the deadline instead.
        """
        self._send(data, time.monotonic() + timeout)

    def _send(self, data: bytes, deadline: float | None) -> None:
        if self._closed.is_set():
            raise OSError("send on a closed FaultyTransport")
        # Over a transport with send_at the bytes wait in flight for the connection (the
        # writer goes on, as it does through the delays); elsewhere the writer waits.
        in_flight = getattr(self.inner, "send_at", None) is not None
        if not in_flight and not self._wait_connected(deadline) and not self._closed.is_set():
            raise self._late("the connection is not established yet by the fault plan")
        if not self._send_lock.acquire(timeout=-1 if deadline is None else max(0.0, deadline - time.monotonic())):
            raise self._late("another send held the connection")
        try:
            self._send_chunks(memoryview(data), deadline)
        finally:
            self._send_lock.release()

    def _send_chunks(self, view: memoryview, deadline: float | None) -> None:
        size = len(view)
        # Over a transport that can carry bytes in flight (the in-memory pipe), a
        # chunk's delay is its time in flight: the writer goes on, as over a network,
        # and the peer reads the chunk once it arrives (arrival: latency and jitter
        # do not add up across chunks in flight together, bandwidth does). Elsewhere
        # the writer sleeps through the delays, within its deadline.
        send_at = getattr(self.inner, "send_at", None)
        call_at = getattr(self.inner, "call_at", None)
        while view:
            if self._on_its_way is not None and self._on_its_way[0] <= time.monotonic():
                self._happen(self._on_its_way[1])  # it has arrived (whether or not the pipe was used since)
            with self._lock:
                known = self.link.broken or self._out.ended  # a fault that already happened
                step = self._out.next_step(view)
                if step.fault is not None and self._on_its_way is not None:
                    return  # after a fault of the plan still in flight: these bytes vanish
                late = send_at is None and deadline is not None and step.delay > deadline - time.monotonic()
                # Over the pipe a close, reset or half-close decided now travels too: it happens
                # when the bytes before it arrive (call_at), and until then nobody sees it.
                travels = known is None and call_at is not None and send_at is not None and step.fault in _TRAVELS
                if not late:  # (a chunk that cannot cross in time is neither sent nor counted)
                    chunk = bytes(view[: step.size])
                    self._out.commit(chunk, Step(step.size, step.delay) if travels else step)
            if deadline is not None and late:
                if not self._sleep(max(0.0, deadline - time.monotonic())):  # as a slow peer would
                    raise OSError("send on a closed FaultyTransport")  # (closed meanwhile)
                raise self._late(f"{len(view)} of {size} bytes still to send")
            if send_at is not None:
                sent = max(time.monotonic(), self._ready_at)  # (not before the connection is up)
                self._due = self._out.arrival(sent, step, self._due)
            elif step.delay:
                self._sleep(step.delay)
            if chunk:
                if send_at is not None:
                    send_at(chunk, self._due)
                else:
                    self._send_inner(chunk, deadline)
                view = view[step.size :]
            if step.fault is None:
                continue
            if travels and call_at is not None:
                # Even with no delay: the reader takes the bytes before it first, and this
                # send goes through (the bytes after the fault vanish), as over a network;
                # a later send learns of it once it has happened.
                self._on_its_way = (max(self._due, time.monotonic()), step)
                call_at(self._on_its_way[0], functools.partial(self._happen, step))
                return
            self._apply(step, outbound=True)
            if step.fault in ("stall", "half_close"):
                return  # the rest vanishes, nothing fails (as where a link stops carrying them)
            if view or not chunk:
                raise self._error(step)
            return

    def _happen(self, step: Step) -> None:
        """An outbound fault that travelled in flight arrives: now everyone sees it (once)."""
        with self._lock:
            if self._on_its_way is None or self._closed.is_set():
                return
            self._on_its_way = None
            self._out.commit(b"", step)
        self._apply(step, outbound=True)

    def _after_bytes(self, step: Step) -> None:
        """The fault behind the bytes this read hands on happens once they are (see the class)."""
        self._fault_next = step
        call_at = getattr(self.inner, "call_at", None)
        if call_at is not None:
            call_at(time.monotonic(), functools.partial(self._inbound, step))

    def _inbound(self, step: Step) -> None:
        """A fault of the bytes read happens as they are handed on: now everyone sees it."""
        with self._lock:
            self._in.commit(b"", step)  # (counted already: this makes the fault known)
        self._apply(step, outbound=False)

    def _send_inner(self, chunk: bytes, deadline: float | None) -> None:
        send_within = None if deadline is None else getattr(self.inner, "send_within", None)
        if send_within is not None and deadline is not None:
            send_within(chunk, max(0.0, deadline - time.monotonic()))
        else:
            self.inner.send(chunk)

    def _late(self, what: str) -> TimeoutError:
        return TimeoutError(f"the send did not finish within its time under the fault plan ({what}); {self.plan!r}")

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
                if self._fault_next is not None:  # after the bytes the last read handed on
                    step, self._fault_next = self._fault_next, None
                    self._inbound(step)
                    return self._after_fault(step, deadline)
                if self._held is None:
                    pending = memoryview(self._buf)[self._pos : self._pos + max_bytes]
                    with self._lock:
                        step = self._in.next_step(pending) if pending else self._blocked_step()
                        chunk = bytes(pending[: step.size])
                        if step.size or step.fault:
                            # (a fault behind bytes becomes known once they are handed on)
                            self._in.commit(chunk, Step(step.size, step.delay) if chunk else step)
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
                    self._inbound(step)
                    return self._after_fault(step, deadline)
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

    def close(self) -> None:
        """Close (after the plan's ``close_delay``); wakes a blocked ``recv``. Idempotent."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self.plan.close_delay:
            time.sleep(self.plan.close_delay)
        self.inner.close()

    def _stop_waits(self) -> None:
        """End a blocked ``recv``'s wait now (it returns ``b""``), as ``close`` does, closing nothing.

        For the proxy's relay, which closes the sockets itself: a direction waiting out
        a held chunk's delay stops at once instead of at its next poll.
        """
        self._closed.set()

    def shutdown_write(self) -> None:
        """Half-close our sending direction (after the plan's ``close_delay``)."""
        if self.plan.close_delay:
            self._sleep(self.plan.close_delay)
        shutdown_write(self.inner)

    def abort(self) -> None:
        """Reset the connection (RST)."""
        self._closed.set()
        abort_transport(self.inner)

    def __repr__(self) -> str:
        return f"<FaultyTransport {self.plan!r} over {self.inner!r}>"
