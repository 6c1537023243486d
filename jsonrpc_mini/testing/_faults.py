"""``FaultyTransport``: a fault plan applied to any Transport (blocking driver).

The decisions come from :class:`~jsonrpc_mini.testing._plan.LinkState` (pure); this
module only sleeps, moves bytes and does to the wrapped transport what the fault
says (close, reset, half-close: ``_end_faults``). It holds the sending half and the
ends; the reading half (``recv``) is ``_fault_reads``. ``loopback`` wraps the client
end of an in-memory pipe with it; the proxy of ``LoopbackServer`` wraps each accepted
TCP connection.
"""

from __future__ import annotations

import errno
import functools
import threading
import time
from collections.abc import Callable
from typing import Literal

from .._transport import Transport
from ._end_faults import abort_transport, shutdown_write
from ._fault_reads import _FaultyReads
from ._plan import FaultPlan, LinkState, Step

__all__ = ["FaultyTransport"]

Side = Literal["client", "server"]

_TRAVELS = ("close", "reset", "half_close")  # faults that reach the peer (a stall only stops bytes)


class FaultyTransport(_FaultyReads):
    """A :class:`~jsonrpc_mini.Transport` that applies a :class:`FaultPlan` to ``inner``.

    ``side`` says whose end ``inner`` is: on the ``"client"`` side ``send`` carries
    client->server bytes and ``recv`` server->client bytes; on the ``"server"`` side
    the other way round. Errors it raises name the plan's seed. Like
    ``SocketTransport`` it has ``send_within(data, timeout)``, with which the client
    bounds a send by its call's deadline (TimeoutError when the plan's delays run past it).
    ``recv``'s timeout bounds the delays too: a piece due after it waits for a later read.
    The plan's ``close_delay`` holds a close both ways: the peer sees ``close()`` that
    long later (in flight over a ``call_at`` transport, the pipe: ``close()`` and
    ``shutdown_write()`` return at once; elsewhere they wait it out), and ``recv``
    returns the peer's EOF that long after it came.
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
    A close or half-close of the plan, either way, happens the plan's ``close_delay``
    after that, as an end's close reaches its peer (reads time out meanwhile); over
    a transport without ``call_at`` the writer waits it out, as its other delays.

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
        link = link if link is not None else LinkState(plan, connection)
        if side == "client":
            outgoing, incoming = link.client_to_server, link.server_to_client
        else:
            outgoing, incoming = link.server_to_client, link.client_to_server
        super().__init__(inner, plan, link, incoming)
        self._out = outgoing
        self._send_lock = threading.Lock()
        self._due = 0.0  # when the last chunk sent through send_at reaches the peer
        # An outbound fault travelling in flight (call_at): when it arrives, and the fault.
        self._on_its_way: tuple[float, Step] | None = None
        self._write_shut = False  # shutdown_write() was called: our sends fail at once, as over TCP
        # When the peer's close or reset a send met reaches this end: after the bytes that
        # came before it have come through the read side's delays (see _before_peer_end).
        self._peer_end_at: float | None = None

    # -- helpers -------------------------------------------------------------

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
        ``jitter`` and ``bandwidth``, and ``close_delay`` for a close or half-close of
        the plan, unless the wrapped transport carries the bytes in flight with
        ``send_at``: then they wait in flight for all of them and the writer does
        not) count against the time left, so a client's call
        timeout also bounds sending its request through a slow plan. Part of
        ``data`` may have gone out when it raises; the stream should then be closed
        (the client does). A chunk whose delay would end after the deadline is not
        sent (the plan does not count it): the wait runs to the deadline instead.
        """
        self._send(data, time.monotonic() + timeout)

    def _send(self, data: bytes, deadline: float | None) -> None:
        if self._closed.is_set():
            raise OSError("send on a closed FaultyTransport")
        if self._write_shut:
            raise BrokenPipeError(errno.EPIPE, "send after this FaultyTransport's shutdown_write()")
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
                # A close or half-close reaches the peer close_delay after it happens (as an end's close).
                held = known is None and self._delays(step)
                if not late:  # (a chunk that cannot cross in time is neither sent nor counted)
                    chunk = bytes(view[: step.size])
                    self._out.commit(chunk, Step(step.size, step.delay) if travels or held else step)
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
                try:
                    if send_at is not None:
                        send_at(chunk, self._due)
                    else:
                        self._send_inner(chunk, deadline)
                except ConnectionError:
                    if not self._before_peer_end():
                        raise
                    return  # (lost, as bytes sent to a peer whose reset is on its way)
                view = view[step.size :]
            if step.fault is None:
                continue
            if travels and call_at is not None:
                # Even with no delay: the reader takes the bytes before it first, and this
                # send goes through (the bytes after the fault vanish), as over a network;
                # a later send learns of it once it has happened.
                arrives = max(self._due, time.monotonic()) + (self.plan.close_delay if held else 0.0)
                self._on_its_way = (arrives, step)
                call_at(self._on_its_way[0], functools.partial(self._happen, step))
                return
            if held:  # (the writer waits, as through the plan's other delays over such a transport)
                if not self._sleep(self.plan.close_delay, deadline) and not self._closed.is_set():
                    # (as a delay ending after the deadline: the fault has not happened yet)
                    raise self._late(f"the plan's {(step.fault or '').replace('_', '-')} is held for close_delay")
                with self._lock:
                    self._out.commit(b"", step)
            self._apply(step, outbound=True)
            if step.fault in ("stall", "half_close"):
                return  # the rest vanishes, nothing fails (as where a link stops carrying them)
            if view or not chunk:
                raise self._error(step)
            return

    def _before_peer_end(self) -> bool:
        """Whether a send that met the peer's close or reset goes through still (its bytes lost).

        The plan delays what we read (latency, jitter, bandwidth), but the peer's end
        reaches the wrapped transport's send at once: a client's send failed, and it
        failed its calls, while the reply the peer sent before closing was still held
        by the read side's delay (Review29's F2). Over a network the reset comes behind
        those bytes. So while the read side holds bytes that came before it, sends go
        through until those bytes' delay has passed and no read is taking them.
        Not after a fault of our plan (that is the plan's own end).
        """
        if self.link.broken is not None or self._out.ended is not None:
            return False
        pending = self._pending_reads()
        if not pending:
            return False
        if self._peer_end_at is None:
            faults = self._in.faults
            wire = 0.0 if faults.bandwidth is None else pending / faults.bandwidth
            self._peer_end_at = time.monotonic() + faults.latency + faults.jitter + wire
        return time.monotonic() < self._peer_end_at or self._recv_lock.locked()

    def _happen(self, step: Step) -> None:
        """An outbound fault that travelled in flight arrives: now everyone sees it (once)."""
        with self._lock:
            if self._on_its_way is None or self._closed.is_set():
                return
            self._on_its_way = None
            self._out.commit(b"", step)
        self._apply(step, outbound=True)

    def _send_inner(self, chunk: bytes, deadline: float | None) -> None:
        send_within = None if deadline is None else getattr(self.inner, "send_within", None)
        if send_within is not None and deadline is not None:
            send_within(chunk, max(0.0, deadline - time.monotonic()))
        else:
            self.inner.send(chunk)

    def _late(self, what: str) -> TimeoutError:
        return TimeoutError(f"the send did not finish within its time under the fault plan ({what}); {self.plan!r}")

    def close(self) -> None:
        """Close (reaching the peer after the plan's ``close_delay``); wakes a blocked ``recv``. Idempotent.

        Over a transport that can run an action later (``call_at``: the in-memory
        pipe) the close travels in flight and this returns at once, as a socket's
        close does; elsewhere it waits the delay out first. Over a link the plan
        closed or reset already there is nothing left to reach the peer: no delay
        (a client failing its calls on it does not wait either).
        """
        if self._closed.is_set():
            return
        self._closed.set()
        if self.plan.close_delay and self.link.broken is None:
            self._after_close_delay(self.inner.close, time.sleep)  # (not _sleep: closed, it would not wait)
        else:
            self.inner.close()

    def shutdown_write(self) -> None:
        """Half-close our sending direction: the peer reads EOF the plan's ``close_delay`` later.

        Our later sends fail at once (BrokenPipeError), as over TCP. Over a transport
        that can run an action later (``call_at``: the in-memory pipe) the EOF travels
        in flight and this returns at once, as ``close()`` does; elsewhere it waits the
        delay out first.
        """
        self._write_shut = True
        eof = functools.partial(shutdown_write, self.inner)
        if self.plan.close_delay:
            self._after_close_delay(eof, self._sleep)
        else:
            eof()

    def _after_close_delay(self, action: Callable[[], None], wait: Callable[[float], object]) -> None:
        """Do ``action`` (a close, a half-close) so that the peer sees it the plan's ``close_delay`` later.

        Over a transport that can run an action later (``call_at``: the in-memory
        pipe) it travels in flight and this returns at once; elsewhere ``wait`` waits
        the delay out first.
        """
        call_at = getattr(self.inner, "call_at", None)
        if call_at is not None:
            call_at(time.monotonic() + self.plan.close_delay, action, keep=True)
        else:
            wait(self.plan.close_delay)
            action()

    def abort(self) -> None:
        """Reset the connection (RST)."""
        self._closed.set()
        abort_transport(self.inner)

    def __repr__(self) -> str:
        return f"<FaultyTransport {self.plan!r} over {self.inner!r}>"
