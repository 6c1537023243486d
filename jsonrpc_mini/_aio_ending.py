"""How a connection served by the asyncio server ends: the base of ``ServerProtocol``.

Closing (replies still flushed), aborting (a peer that does not read its
replies), answering "shutting down" from the server's drain on, and a peer that
has gone (its requests not started yet are dropped, its notifications run). ``ServerProtocol``
(``_aio_conn``) keeps reading and back-pressure. Moved out of ``_aio_conn``.
"""

from __future__ import annotations

import asyncio
import os
import ssl

from ._aio_linger import LINGER, close_under, drop
from ._aio_writes import WritingProtocol
from ._ready import unread_of
from ._socket_waits import HAVE_FIONREAD, unread_count

__all__ = ["EndingProtocol", "unread_bytes"]

_READ = 256 * 1024


def unread_bytes(transport: asyncio.BaseTransport | None, limit: int) -> bytes:
    """What the peer sent that asyncio has not read, read now without waiting (up to about ``limit`` bytes).

    For a peer that has gone: its socket is still open then (asyncio closes it
    after ``connection_lost``), and the bytes it sent before it went wait there
    while reading is paused (at the call limit), or when a write failed before
    asyncio's reader ran. Nothing over TLS (those bytes are records: the TLS layer
    reads and decrypts them, see ``_aio_tls_layer``) or without a socket (the test
    kit's memory links).
    """
    if transport is None or transport.get_extra_info("sslcontext") is not None:
        return b""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return b""
    chunks: list[bytes] = []
    total = 0
    try:
        fd = sock.fileno()
        while total < limit:
            data = os.read(fd, _READ)  # (non-blocking: BlockingIOError once nothing is left)
            if not data:
                break
            chunks.append(data)
            total += len(data)
    except OSError:  # nothing waits, a reset, or closed already
        pass
    return b"".join(chunks)


def _tls_held(transport: object) -> int:
    """What asyncio's TLS layer under ``transport`` read and has not handed on (0: none, or not TLS).

    Its records not decrypted (it reads ahead while reading is paused) and the plain
    bytes its SSL object holds. Reads attributes of asyncio's layer that are not public
    (as ``_aio_tls_layer`` does): where they are missing, 0.
    """
    layer = getattr(transport, "_ssl_protocol", None)
    incoming, tls = getattr(layer, "_incoming", None), getattr(layer, "_sslobj", None)
    held = incoming.pending if isinstance(incoming, ssl.MemoryBIO) else 0
    return held + (tls.pending() if isinstance(tls, ssl.SSLObject) else 0)


class EndingProtocol(WritingProtocol):
    """The ending part of ``ServerProtocol``, which sets the attributes below."""

    # Slots: the attributes assigned through this type (the rest are ServerProtocol's).
    __slots__ = (
        "_backlog",
        "_close_after",
        "_drain_left",
        "_draining",
        "_gone",
        "_input_done",
        "_late",
        "_late_bytes",
        "_read_paused",
    )

    _backlog: bytes | None  # received, not yet given to the core (see ServerProtocol)
    _events: bool  # the core may hold events (see ServerProtocol)

    # Once shutdown() began (``drain``): the bytes still to receive of those the socket held
    # unread then (None: not draining, or it cannot be told). Their messages are served as
    # before; what comes after them waits in ``_late_bytes`` (reading paused) until every
    # message before is taken, then is served late (``_late``): requests get -32000,
    # notifications are dropped, so that a client that keeps sending them does not hold
    # shutdown() (which waits for calls running and for unread bytes).
    _drain_left: int | None
    _late: bool
    _late_bytes: bytes | None
    _close_after: bool  # close_when_idle() waits for those messages to be taken first

    def _feed_backlog(self, more: bytes = b"") -> None:
        """Give every byte not yet given to the core to its framer, then ``more`` (``ServerProtocol``'s)."""
        raise NotImplementedError

    def data_received(self, data: bytes) -> None:
        """``ServerProtocol``'s."""
        raise NotImplementedError

    def _drained(self, data: bytes) -> bytes:
        """The part of ``data`` among the bytes there when shutdown() began; the rest waits as late."""
        left = self._drain_left
        assert left is not None
        if len(data) <= left:
            left -= len(data)
            # Over TLS the count was of records and data_received counts their plain text:
            # once the socket and the TLS layer hold nothing, what is left of it is the
            # records' overhead, not bytes still to come (as the sync server's Drain.none_waiting).
            self._drain_left = 0 if left and self._held() == 0 else left
            return data
        self._drain_left = 0
        late = data[left:]
        if self._late_bytes is None:
            self._late_bytes = late
            # (the pump looks again as it ends; not the one-line fast path of data_received)
            asyncio.get_running_loop().call_soon(self._go_late)
        else:
            self._late_bytes += late
        if self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()  # (resumed by _go_late, or by the pump at the call limits)
        return data[:left]

    def _go_late(self) -> None:
        """Serve what came after the bytes there when shutdown() began, once those are all taken (see above)."""
        if self._late or self._drain_left != 0 or self._events or self._backlog is not None or self._input_done:
            return
        self._late = True
        if self._close_after:  # (shutdown() from a handler here: nothing late is read)
            self.close_when_idle()
            return
        data, self._late_bytes = self._late_bytes, None
        transport = self._transport
        if transport is not None and not transport.is_closing() and not self._read_paused:
            transport.resume_reading()
        if data:
            self.data_received(data)

    def unread_wanted(self) -> int:
        """How many bytes the peer sent and this connection has not read it still takes (0: none).

        For ``_aio_tls_layer``, which decrypts them when a TLS client has gone: none
        before the connection was handed over (a handshake that failed), once input
        is done (the server closed the connection, or took it all), or once the peer
        was found gone.
        """
        if self._transport is None or self._gone or self._input_done:
            return 0
        return self._readable()

    def _readable(self) -> int:
        """How many more bytes of the peer's to read at most: ``max_message_size``, or less once shutdown() began."""
        if self._drain_left is not None:  # (only what there was then)
            return min(self._opts.max_message_size, self._drain_left)
        return self._opts.max_message_size

    def peer_gone(self, unread: bytes) -> None:
        """``_peer_gone`` with ``unread``: the plain bytes a gone TLS client sent, not read (``_aio_tls_layer``)."""
        self._peer_gone(unread)

    def _peer_gone(self, unread: bytes | None = None) -> None:
        """Nothing more can reach the peer: skip its requests not started, still run its notifications.

        As on the sync server, whose threads stop taking requests once a reply
        cannot be sent: a client that sends many calls and hangs up does not keep
        the server running them. Calls already running finish; notifications
        already taken still run (the runner's queue keeps them; a batch's workers
        run its notification members and skip the rest: ``_run_batch``). So do
        the notifications among the bytes received and not taken yet (API.md: a
        notification runs even if its sender closes right after): they all go to
        the core now, with what the socket holds still (``unread_bytes``: at the
        call limit reading was paused), and the pump goes on taking its
        events within the call limits, skipping requests, until none is left
        (then input is done: ``ServerProtocol._pump``); a message left incomplete
        is dropped.
        """
        if self._gone:
            return
        self._gone = True
        if not self._input_done:
            if unread is None:
                unread = unread_bytes(self._transport, self._readable())
            self._feed_backlog(unread)
            if not self._events:
                self._input_done = True  # (nothing received is left to take)
            self._read_paused = True  # (never resumed: an ended call pumps, see _ended)
            self._write_paused = False  # (nothing will resume it: the transport is closing)
        if self.busy:  # (else nothing of this connection is queued: no need to look)
            dropped = self._runner.drop_requests(self)
            if dropped:
                self._release(dropped)

    # -- control from the server -----------------------------------------------

    def drain(self) -> None:
        """Answer new requests with 'server is shutting down' from now on; what comes later is late (see below)."""
        self._draining = True
        held = self._held()
        if held is not None:
            self._drain_left = held
            self._go_late()

    def _held(self) -> int | None:
        """Bytes of the peer's that wait unread (None where that cannot be told, or the transport is closing).

        In the socket, and over TLS the records asyncio's layer read ahead and the plain
        bytes it holds (the plain bytes are fewer than their records); on the test kit's
        memory transport (no socket), what has arrived in memory (``unread_or_none()``).
        """
        transport = self._transport
        if transport is None or transport.is_closing():
            return None
        sock = transport.get_extra_info("socket")
        if sock is None:
            return unread_of(transport)
        return unread_count(sock.fileno()) + _tls_held(transport) if HAVE_FIONREAD else None

    def unread(self) -> bool:
        """Whether the peer's bytes wait in the socket for the loop to read (shutdown() lets it).

        Until the loop has read them, no call of theirs runs: closing then would drop
        notifications the client had delivered (README, "Shutdown"). Over TLS
        they are records, which the loop reads too. Not while reading is paused (at
        the call limits: calls run, and shutdown() waits for them anyway) or has ended.
        """
        transport = self._transport
        if transport is None or self._read_paused or self._input_done or self._gone or transport.is_closing():
            return False
        if self._drain_left == 0:  # (what was there is read: the rest came late)
            return False
        sock = transport.get_extra_info("socket")
        if sock is None:  # (the test kit's memory transport counts what has arrived in memory)
            return (self._held() or 0) > 0
        return unread_count(sock.fileno()) > 0

    def close(self, linger: float = LINGER) -> None:
        """Close the transport (buffered replies are still flushed); idempotent.

        Over TLS the close_notify follows the replies, and the peer's is waited for
        ``linger`` seconds at most (see ``_aio_linger``), not asyncio's 30 s: then the
        socket closes once everything is sent, as over plain TCP.
        """
        self._input_done = True
        self._backlog = None
        self._srv._orphans.discard(self)
        if self._transport is not None:
            self._flush()
            self._transport.close()
            if self.under is not None:
                close_under(self.under, self._transport, linger)

    def close_when_idle(self) -> None:
        """Take nothing more; close once the calls running have been answered (see ``_maybe_close``).

        Reading stops too (nothing resumes it once input is done), so a peer
        sending meanwhile piles nothing up here. Once shutdown() began (awaited by a
        handler of this connection), what the client had delivered then is taken
        first, as on the other connections (notifications run, requests get
        -32000): it was dropped, and bytes left unread reset the connection.
        """
        if self._drain_left is not None and not (self._late or self._gone or self._input_done):
            self._close_after = True  # (_go_late closes, once they are all taken)
            self.pump()
            return
        self._input_done = True
        self._backlog = None
        if self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()
        self._maybe_close()

    def abort(self) -> None:
        """Drop the connection now, with whatever still waits to be sent (a peer that does not read).

        The peer sees a reset (see ``_aio_linger.drop``). Over TLS the plain
        transport under it is the one dropped: the TLS transport, once closed
        twice, forgets its layer and its ``abort()`` does nothing.
        """
        self._input_done = True
        self._backlog = None
        self._out = None
        if self._transport is not None:
            drop(self._transport if self.under is None else self.under)
            self._transport.abort()

    def _maybe_close(self) -> None:
        if self._input_done and self.busy == 0:
            self.close()
