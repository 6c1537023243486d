"""``_Relay``: one connection through ``LoopbackServer``'s proxy, its bytes moved both ways.

Two threads per connection move the bytes, one per direction, applying the fault
plan where they are read (``FaultyTransport`` over an ``EagerReader`` that stamps
when the bytes came), and pass on how a direction ends: EOF as a half-close, a reset
as a reset, a link the plan broke as both ends closed. A close or half-close of
either end reaches the other the plan's ``close_delay`` after the proxy read it (the
``FaultyTransport`` reading it holds the EOF that long; neither end's close waits);
so does a close or half-close of the plan, after the bytes before it. A reset the
proxy meets by writing reaches the other end after the bytes the proxy still holds
for it, as an RST on a real link arrives after the bytes sent before it.
``LoopbackServer`` (``_proxy``) accepts the connections and makes one relay for each.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import select
import socket
import threading
import time
from typing import NamedTuple

from .._socket_waits import HAVE_POLL
from .._transport import SocketTransport, Transport
from ._eager import EagerReader
from ._end_faults import abort_transport, shutdown_write, was_reset
from ._faults import FaultyTransport
from ._plan import FaultPlan, LinkState
from ._upstream import Woken, connect

__all__ = ["_Relay"]

log = logging.getLogger("jsonrpc_mini.testing")

_POLL = 0.5  # s: how long a read waits before it looks at stopping again (the accept loop too)
_JOIN = 5.0  # s: how long closing waits for a thread (connecting to the server too)
# s: how long a reset the proxy met by writing waits for the bytes the other direction
# holds for the other end (the plan's delays) before it resets that end anyway.
_FLUSH = 5.0
_CHUNK = 64 * 1024


def _writable(sock: socket.socket, wake: socket.socket, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for room to write to ``sock`` (or an error on it), or for ``wake``.

    True if there is room (or an error); OSError if either socket was closed meanwhile.
    """
    poller = select.poll()
    try:
        poller.register(sock, select.POLLOUT)
        poller.register(wake, select.POLLIN)
    except ValueError as exc:  # (closed meanwhile, by another thread)
        raise OSError(errno.EBADF, "the socket is closed") from exc
    return any(fd == sock.fileno() for fd, _ in poller.poll(timeout * 1000.0))


def _close_now(transport: Transport) -> None:
    """Close ``transport`` at once: a ``FaultyTransport``'s own close() waits its plan's ``close_delay`` first.

    The ends' closes reach the relay with their delay already (its ``FaultyTransport``
    reads an EOF ``close_delay`` after it came); closing the relay (the kit closing, or
    its last direction ending) or a link the plan broke closes at once.
    """
    if isinstance(transport, FaultyTransport):
        transport._stop_waits()
        transport.inner.close()
    else:
        transport.close()


class _Direction(NamedTuple):
    """One direction of a relay: where its bytes come from and go, and the ends it tells how it ends."""

    label: str
    source: Transport
    sink: Transport
    far: Transport  # the end its bytes go to, as the other end sees it
    read_end: Transport  # source's end, as a reset reaches it
    write_end: Transport  # sink's end, the same way (the other direction reads it: woken there)
    read_sock: socket.socket  # source's socket
    write_sock: socket.socket  # sink's socket


class _Relay:
    """One proxied connection: two threads moving bytes, the plan applied where they are read.

    Each direction's faults and delays are applied as its bytes are read (the client's
    from the client socket, the server's from the server socket), each chunk held its
    delay after it arrived (an :class:`EagerReader` stamps the bytes as they come), so
    chunks in flight together wait out their delays together, as on ``loopback()``'s pipe.
    """

    def __init__(
        self,
        down: socket.socket,
        upstream: tuple[str, int],
        plan: FaultPlan | None,
        index: int,
        wake: socket.socket | None = None,  # (readable once the kit is closing: the connect gives up)
    ) -> None:
        self.stopping = False
        self.up: Transport | None = None
        base = SocketTransport(down)
        self.down_out: Transport = base  # the relay writes the server's bytes here
        self.down: Transport = base
        self.up_in: Transport | None = None  # the relay reads the server's bytes here
        self.threads: list[threading.Thread] = []
        # The ends' reading threads. close() stops them itself: closing the socket does
        # not stop a reader that holds its bound and waits for room (none comes then).
        self.readers: list[EagerReader] = []
        self._running = 2
        self._lock = threading.Lock()
        self._fin_sent: set[socket.socket] = set()  # the sockets a direction half-closed
        self._reset_met: set[socket.socket] = set()  # the sockets a write found reset (by their peer)
        # A reset or close() ended the relay (both sockets closed): no send waits for room any
        # more. It wakes the waiting sends through the pair, made by the first that waits.
        self._ended = False
        self._wake: tuple[socket.socket, socket.socket] | None = None
        try:
            self._start(base, upstream, plan, index, wake)
        except BaseException:  # (a thread that could not start): stop those that did
            self.close()
            self.join(_JOIN)
            raise

    def _start(
        self,
        base: SocketTransport,
        upstream: tuple[str, int],
        plan: FaultPlan | None,
        index: int,
        wake: socket.socket | None,
    ) -> None:
        link = None if plan is None else LinkState(plan, index)
        if plan is not None:
            reader = EagerReader(base, f"jsonrpc_mini-proxy-{index}-client-reader")
            self.readers.append(reader)
            self.down = FaultyTransport(reader, plan, side="server", link=link)
        try:
            up = connect(upstream, _JOIN, wake)
            self.up = up_end = SocketTransport(up)  # (set first: close() closes it)
            up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except Woken:  # (the kit is closing: the client's connection is closed with the rest)
            self.close()
            return
        except OSError as exc:
            # The client's connect was accepted already (by the kernel, before the proxy
            # could try the server): a reset is the closest to the refusal it would get
            # from the server itself, and no EOF it could take for the server's close.
            log.warning("LoopbackServer: cannot reach the server at %s: %s", upstream, exc)
            abort_transport(base)
            self.close()
            return
        up_in: Transport = up_end
        if plan is not None:
            reader = EagerReader(up_end, f"jsonrpc_mini-proxy-{index}-server-reader")
            self.readers.append(reader)
            up_in = FaultyTransport(reader, plan, side="client", link=link)
        self.up_in = up_in
        # The ends are the transports a reset reaches through (with a plan, the
        # FaultyTransports: resetting one also ends its direction's wait for a held chunk).
        directions = (
            ("c2s", _Direction("client->server", self.down, up_end, up_end, self.down, up_in, base.sock, up)),
            ("s2c", _Direction("server->client", up_in, self.down_out, self.down, up_in, self.down, up, base.sock)),
        )
        for name, direction in directions:
            thread = threading.Thread(
                target=self._run,
                args=(direction,),
                name=f"jsonrpc_mini-proxy-{index}-{name}",
                daemon=True,
            )
            self.threads.append(thread)
        for thread in self.threads:
            thread.start()

    def _run(self, direction: _Direction) -> None:
        """Run one direction; the last of the two to end closes both sockets."""
        try:
            self._pass_on(direction)
        finally:
            with self._lock:
                self._running -= 1
                last = self._running == 0
            if last:
                self.close()

    def _broken(self) -> bool:
        return isinstance(self.down, FaultyTransport) and self.down.link.broken is not None

    def _pass_on(self, direction: _Direction) -> None:
        """Move one direction's bytes from ``source`` to ``sink`` and pass on how it ends.

        ``far`` is the end its bytes go to, as the other end sees it: an EOF half-closes
        it (with a plan, ``source`` returns the EOF its ``close_delay`` after it came,
        whichever end closed), closes it at once where the plan broke the link; another
        error closes it. A reset
        resets both ends, the one still open first: ``write_end`` (``sink``'s) when
        ``source`` was reset (by its peer or the plan), ``read_end`` (``source``'s) when
        writing to ``sink`` failed with a reset or a broken pipe (its peer reset it: the
        reset may have been read first, by the other direction), as a real link tells the
        writer's peer. Where writing failed, the other direction first passes on what it
        holds for ``source``'s end (bytes the reset end sent before its RST, which on a
        real link arrive first), with the plan's delays, for at most ``_FLUSH`` seconds
        (:meth:`_reset_after_flush`); reading on, it meets the reset itself (a reset, or
        the EOF left by the write that took it, not held for ``close_delay``, or a stall
        the plan put there) and resets the open end first. The kernel reports a reset once: where the other direction's
        write took it, the read here gets EOF, which resets too (``was_reset`` tells it
        from a close before that write's failure is recorded, on Linux).
        """
        label, source, _sink, far, read_end, write_end = direction[:6]
        try:
            while not self.stopping:
                try:
                    data = source.recv(_CHUNK, _POLL)
                except TimeoutError:
                    reset_met = direction.read_sock in self._reset_met
                    if reset_met and isinstance(source, FaultyTransport) and source._spent():
                        self._reset(write_end, read_end)  # (nothing more comes: stalled, or only the EOF)
                        return
                    continue
                except ConnectionResetError:
                    self._reset(write_end, read_end)
                    return
                if not data:
                    if self.stopping:  # (close() woke this read: it closes the sockets)
                        return
                    if self._broken():
                        self._close_broken(far, write_end)
                    elif direction.read_sock in self._reset_met or (
                        direction.read_sock not in self._fin_sent and was_reset(direction.read_sock)
                    ):
                        self._reset(write_end, read_end)  # (the other direction's write took the reset)
                    else:
                        self._fin_sent.add(direction.write_sock)
                        shutdown_write(far.inner if isinstance(far, FaultyTransport) else far)  # (no 2nd delay)
                    return
                try:
                    self._send(direction.write_sock, data)
                except (ConnectionResetError, BrokenPipeError) as exc:
                    if self._broken():  # (the plan closed the link: its ends are closed, not reset)
                        raise
                    log.debug("proxy %s: the peer it writes to reset: %s", label, exc)
                    self._reset_after_flush(direction)
                    return
        except (OSError, ValueError) as exc:
            log.debug("proxy %s ended: %s", label, exc)
            _close_now(far)

    def _send(self, sock: socket.socket, data: bytes) -> None:
        """Write all of ``data`` to ``sock`` (``sink``'s socket), in order; OSError once the relay ended.

        A send blocked on an end whose peer reads nothing holds its socket: closing it
        (a reset passed on or the plan's, closing the relay) left the kernel's socket
        open until that send returned, once the peer had read enough, and only then
        did the RST leave; closing the relay could not end the thread either. So each
        send is non-blocking, and a wait for room ends when the relay ends (a reset
        or close() wakes it, see :meth:`_end_waits`; a socket closed otherwise is seen
        at the next ``_POLL``): it stops, and the kernel lets the socket go at once.
        """
        if not HAVE_POLL:  # pragma: no cover - no poll() (Windows): a blocking send
            sock.sendall(data)
            return
        view = memoryview(data)
        while view:
            try:
                sent = sock.send(view, socket.MSG_DONTWAIT)
            except BlockingIOError:
                sent = 0
            view = view[sent:]
            if not view:
                return
            with self._lock:
                if not self._ended and self._wake is None:
                    self._wake = socket.socketpair()
                wake = None if self._ended else self._wake
            while wake is None or not _writable(sock, wake[0], _POLL):
                if wake is None or self._ended or sock.fileno() < 0:
                    raise OSError(errno.EBADF, "the proxy ended this connection while a send waited for room")

    def _end_waits(self) -> None:
        """Wake the sends waiting for room (after a reset or close() closed the sockets): they stop."""
        with self._lock:
            self._ended = True
            wake = self._wake
        if wake is not None:
            with contextlib.suppress(OSError):
                wake[1].send(b"x")

    def _reset_after_flush(self, direction: _Direction) -> None:
        """Writing to ``sink`` met its reset: reset ``source``'s end once the bytes held for it are through.

        The other direction carries the reset end's bytes to ``source``'s end: those it
        still holds (a chunk waiting out its delay, bytes its reader took, bytes in the
        socket ahead of the RST) were sent before the reset, and a real link delivers
        them first. So this waits for that direction to end (it resets ``source``'s end
        itself once it meets the reset, see :meth:`_pass_on`), at most ``_FLUSH``
        seconds (a long latency, an end that reads nothing), then resets both ends.
        """
        with self._lock:
            self._reset_met.add(direction.write_sock)
            # (both ends reset, the other direction waiting here too: no one to deliver to)
            both = direction.read_sock in self._reset_met
        me = threading.current_thread()
        for thread in self.threads:
            if not both and thread is not me and thread.ident is not None:
                thread.join(_FLUSH)
        self._reset(direction.read_end, direction.write_end)

    @staticmethod
    def _close_broken(far: Transport, write_end: Transport) -> None:
        """Close ``far`` on a link the plan broke, and end the other direction's wait.

        The other direction reads ``write_end``: holding a chunk's delay (latency) or
        stalled, it would notice the broken link only when its wait ends (the delay, or
        its next poll), and the relay (its threads, its sockets) would outlive the link
        that long. Its bytes can reach no one now: both ends are closed.
        """
        _close_now(far)
        if isinstance(write_end, FaultyTransport):
            write_end._stop_waits()

    def _reset(self, first: Transport, then: Transport) -> None:
        """Reset both ends of the connection, ``first`` first (unless close() is under way)."""
        if self.stopping:  # (close() closes the sockets: a write it cut short is no reset)
            return
        abort_transport(first)
        abort_transport(then)
        self._end_waits()  # (a send waiting on either end holds its socket: the RST leaves once it ends)

    def close(self) -> None:
        """Stop both threads and both readers, close both sockets, at once (no ``close_delay``)."""
        self.stopping = True
        if isinstance(self.up_in, FaultyTransport):
            self.up_in._stop_waits()  # (a held chunk's delay would keep its thread until its poll)
        _close_now(self.down)
        if self.up is not None:
            self.up.close()
        for reader in self.readers:
            reader.close()
        self._end_waits()
        with self._lock:
            wake, self._wake = self._wake, None
        for sock in wake or ():
            sock.close()  # (the byte _end_waits sent woke a send waiting on it; a later one finds _ended)

    def join(self, timeout: float) -> bool:
        """Wait for both threads (and the readers'), ``timeout`` seconds in all; True if they ended."""
        deadline = time.monotonic() + timeout
        for thread in self._all_threads():
            if thread.ident is not None:  # (started)
                thread.join(max(0.0, deadline - time.monotonic()))
        return self.finished

    def _all_threads(self) -> list[threading.Thread]:
        return [*self.threads, *(reader.thread for reader in self.readers)]

    @property
    def finished(self) -> bool:
        """Whether both threads (and the readers) have ended."""
        return not any(thread.is_alive() for thread in self._all_threads())
