"""The transport seam: the three methods everything that moves bytes provides.

Real sockets (TCP, Unix, TLS), the test kit's in-memory pipe, its fault proxy and
``FakeSocket`` all fit :class:`Transport`, so drivers never know which they use.
:class:`SocketTransport` is the real socket's; opening one (the client's connect)
is ``_connect``'s.
"""

from __future__ import annotations

import contextlib
import mmap
import socket
import ssl as _ssl
import time
from collections.abc import Callable
from typing import Protocol, cast, runtime_checkable

from ._large_reads import GATHER_MAX, PRIVATE, give_back, take_large
from ._socket_like import SocketLike
from ._socket_waits import (
    HAVE_FIONREAD,
    HAVE_POLL,
    MIN_RCVTIMEO,
    RCVTIMEO,
    send_taken,
    send_until,
    set_timeval,
    unread_count,
    wait_readable,
)

__all__ = ["RECV_SIZE", "Setup", "SocketTransport", "Transport", "send_of"]

RECV_SIZE = 256 * 1024
_NEVER = object()  # (see SocketTransport._same)


@runtime_checkable
class Transport(Protocol):
    """A bidirectional byte stream.

    ``send`` writes all of ``data`` or raises OSError. ``recv`` returns up to
    ``max_bytes`` bytes, ``b""`` at end of stream, raises TimeoutError when
    ``timeout`` seconds pass with nothing to read (``None`` waits for ever) and
    OSError when the stream breaks. ``close`` is idempotent and makes a ``recv``
    blocked in another thread return.
    """

    def send(self, data: bytes) -> None:
        """Write all of ``data``."""

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        """Read what is available, waiting at most ``timeout`` seconds."""

    def close(self) -> None:
        """Close both directions; idempotent."""


# A step run in a connection's own thread before it is served (e.g. a TLS
# handshake): the transport to serve, or None when the connection was dropped.
Setup = Callable[[], Transport | None]


class SocketTransport:
    """A :class:`Transport` over a socket or any socket-like object.

    A real socket stays in blocking mode (the fastest path); a read timeout is
    applied by waiting for readability first, so concurrent writers are never
    affected by a reader's timeout. Socket-like objects without a real file
    descriptor get ``settimeout`` instead.

    ``gather`` (plain sockets only; 0, the default: never): a read that fills the
    ``max_bytes`` asked for goes on, without waiting, with what has arrived since,
    up to ``gather`` bytes in all and at most ``GATHER_MAX`` (4 MiB): such a read
    returns more than ``max_bytes``. The server's connections and a client that
    connects itself set it to their ``max_message_size`` plus one.
    """

    __slots__ = (
        "_buffer",
        "_closed",
        "_failed",
        "_rcvtimeo",
        "_real",
        "_same",
        "_send_timeout",
        "_size",
        "_sndtimeo",
        "_view",
        "gather",
        "interrupted_read",
        "sock",
    )

    # The read buffer and a view of it (see _recv_real): set on the first read.
    _buffer: mmap.mmap
    _view: memoryview

    def __init__(self, sock: socket.socket | SocketLike, *, send_timeout: float | None = None, gather: int = 0) -> None:
        # Typed as a socket inside: every use of a socket's other methods is behind
        # self._real, so a SocketLike meets only its own methods (no cast per read).
        self.sock = cast(socket.socket, sock)
        # A read that fills the bytes asked for goes on with what has arrived already,
        # up to this many bytes in all (0: never; see _gather). Plain sockets only.
        self.gather = gather
        self._failed: OSError | None = None  # what a gathering read met, raised by the next read
        self._real = isinstance(sock, socket.socket)
        self._closed = False
        self._size = 0  # the read buffer's length (0: none yet)
        self._rcvtimeo = 0.0  # SO_RCVTIMEO in force (0: none)
        # The timeout object a read passing it finds in force (SO_RCVTIMEO, set by
        # _set_recv_timeout; None: no timeout) and so takes recv's first branch; _NEVER
        # (passed by no one) where reads are not bounded by SO_RCVTIMEO.
        self._same: object = None if self._real and RCVTIMEO and type(sock) is socket.socket else _NEVER
        # True once a read was interrupted (e.g. Ctrl-C) after bytes had arrived: they
        # are lost, so the stream cannot be trusted any more (see _recv_real).
        self.interrupted_read = False
        # send_timeout: raise TimeoutError when the peer takes no bytes for this long
        # (a peer that never reads its replies must not pin a sending thread for ever).
        self._send_timeout = send_timeout if HAVE_POLL else None
        self._sndtimeo: float | None = None  # the send_timeout SO_SNDTIMEO applies (see send)
        if self._real:
            tls = isinstance(sock, _ssl.SSLSocket)
            # TLS cannot send with MSG_DONTWAIT: the socket's own timeout bounds it instead.
            sock.settimeout(send_timeout if tls else None)
            if tls:
                self._send_timeout = None

    def send(self, data: bytes) -> None:
        """Write all of ``data`` (blocking; TimeoutError if ``send_timeout`` passes with no progress)."""
        timeout = self._send_timeout
        if timeout is None or not self._real:
            try:
                self.sock.sendall(data)
            except BlockingIOError:  # (a plain socket's SO_SNDTIMEO expired with no byte taken)
                if self._sndtimeo is None:
                    raise
                raise TimeoutError(f"the peer accepted no data for {self._sndtimeo} s") from None
            return
        sock = self.sock
        if RCVTIMEO and type(sock) is socket.socket and timeout >= MIN_RCVTIMEO:
            # Speed: a server's every reply went out by a non-blocking send, its count
            # compared, its flag looked up (~0.5k instructions more than sendall). The
            # kernel's send timeout (SO_SNDTIMEO, set once here; it affects no reader and
            # no non-blocking send) bounds each blocking send instead: sendall's send
            # fails with EAGAIN when the peer took no byte for that long, or returns part
            # and sendall goes on (the same "no progress" rule as send_taken's).
            set_timeval(sock, socket.SO_SNDTIMEO, timeout)
            self._sndtimeo = timeout
            self._send_timeout = None  # (the branch above from now on)
            SocketTransport.send(self, data)  # (that branch: not a subclass's send again)
            return
        # Speed: send_taken's first step in line. The usual write goes out whole in one
        # non-blocking send; only a part left over (or none taken) needs send_taken's
        # loop (a Python call less per write, ~0.5k instructions).
        try:
            sent = sock.send(data, socket.MSG_DONTWAIT)
        except BlockingIOError:
            sent = 0
        if sent != len(data):
            send_taken(sock, memoryview(data)[sent:], timeout)

    def send_within(self, data: bytes, timeout: float) -> None:
        """Write all of ``data`` within ``timeout`` seconds, else raise TimeoutError.

        Part of ``data`` may have been written when it raises, so the stream should
        then be closed. The client uses this so that a call's timeout also bounds
        sending to a peer that stopped reading. Plain sockets only: TLS sockets and
        socket-like objects send as :meth:`send` does.
        """
        sock = self.sock
        if not self._real or isinstance(sock, _ssl.SSLSocket) or not HAVE_POLL:
            self.send(data)
            return
        send_until(sock, data, time.monotonic() + timeout, timeout)

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        """Read up to ``max_bytes``; TimeoutError if nothing arrives within ``timeout``.

        With ``gather`` (plain sockets), a read that fills ``max_bytes`` goes on with
        what has arrived already, up to ``gather`` bytes in all (see _gather).
        """
        sock = self.sock
        if timeout is self._same:
            # Speed: the usual read (a client waiting for its reply without a timeout, a
            # server's connection given its idle time): the branch below without its
            # tests and its _set_recv_timeout call (the timeout in force is the one asked),
            # and _recv_real's read in line once its buffer is there (a call less per read).
            # The callers pass the same object each time (None, the server's idle_timeout):
            # "is" costs ~0.13k instructions less than "==" on None. The buffer is made
            # exactly max_bytes long (a read asking less than the last one gets a smaller
            # one; the drivers always ask RECV_SIZE), so recv_into takes its length from
            # the view alone (~0.18k less: no nbytes argument to parse).
            if self._size != max_bytes:
                self._grow(max_bytes)
            buffer = self._buffer
            buffer[0] = 0  # (see _recv_real)
            try:
                count = sock.recv_into(self._view)
            except BlockingIOError:  # (as below; no byte was taken)
                raise TimeoutError("read timed out") from None
            except BaseException:
                if buffer[0]:
                    self.interrupted_read = True
                raise
            if count == max_bytes and self.gather > count:
                return self._gather(sock, count)
            return buffer[:count]
        if not self._real:
            if timeout is None:
                return sock.recv(max_bytes)
            sock.settimeout(max(timeout, 0.0))
            try:
                return sock.recv(max_bytes)
            except TimeoutError as exc:
                raise TimeoutError("read timed out") from exc
        if RCVTIMEO and type(sock) is socket.socket and (timeout is None or timeout >= MIN_RCVTIMEO):
            # Speed: waiting for readability first (poll, then recv) cost two system
            # calls and a second wake-up per read. The kernel's receive timeout
            # (SO_RCVTIMEO) bounds the blocking recv itself; it affects no sender.
            self._set_recv_timeout(timeout)
            try:
                return self._recv_real(sock, max_bytes)
            except BlockingIOError:  # the receive timeout expired
                raise TimeoutError("read timed out") from None
        pending = isinstance(sock, _ssl.SSLSocket) and sock.pending()
        if timeout is not None and not pending and not wait_readable(sock, timeout):
            raise TimeoutError("read timed out")
        return self._recv_real(sock, max_bytes)

    def recv_ready(self, max_bytes: int) -> bytes | None:
        """Bytes already received and waiting, without blocking: None if there are none.

        ``b""`` means end of stream. Only plain sockets can tell; for an SSLSocket
        (the sync server's TLS) and socket-like objects this always returns None.
        The sync client's TLS transport (``_tls_transport``) can tell too. The drivers use it to read a
        message's remaining bytes before parsing (see :func:`feed_ready`).
        """
        sock = self.sock
        if not self._real or isinstance(sock, _ssl.SSLSocket):
            return None
        try:
            return self._recv_real(sock, max_bytes, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return None

    def _set_recv_timeout(self, timeout: float | None) -> None:
        # The option is set only when it must change: a value up to 1% (+5 ms) longer
        # than asked is kept (a read may time out that much late, never early).
        current = self._rcvtimeo
        if timeout is None:
            if current == 0.0:
                return
            wanted = 0.0  # no timeout
        elif timeout <= current <= timeout * 1.01 + 0.005:
            return
        else:
            wanted = timeout
        set_timeval(self.sock, socket.SO_RCVTIMEO, wanted)
        self._rcvtimeo = wanted
        self._same = timeout  # (None or the float asked: equal to the option now in force)

    def _recv_real(self, sock: socket.socket, max_bytes: int, flags: int = 0) -> bytes:
        # Speed: sock.recv(256 KiB) allocates 256 KiB for every read, above malloc's
        # mmap threshold, so each small read paid an mmap, a munmap and page faults
        # (about 2x the cost of a small round trip). Reading into one reused buffer
        # and copying out only what arrived avoids that. The buffer is an anonymous
        # mmap so that its pages use memory only once data has filled them (an idle
        # connection costs a page, not 256 KiB). Only one thread reads a transport
        # at a time (the drivers' Leader/Followers rule guarantees it).
        if self._size < max_bytes:
            self._grow(max_bytes)
        buffer = self._buffer
        # A NUL never starts a JSON-RPC stream's bytes (JSON text or a header): if the
        # first byte changed, the read took bytes before an interruption cut it short
        # (Python runs a signal handler right after a call returns; its result is lost).
        buffer[0] = 0
        try:
            count = sock.recv_into(self._view, max_bytes, flags)
        except BaseException:
            if buffer[0]:
                self.interrupted_read = True
            raise
        if count == max_bytes and self.gather > count and type(sock) is socket.socket:
            return self._gather(sock, count)
        return buffer[:count]  # a slice of the mmap is a bytes copy: one object, not a view and a copy

    def _gather(self, sock: socket.socket, count: int) -> bytes:
        """What a read that filled the buffer with ``count`` bytes returns: those and what has arrived since.

        Read without waiting, up to ``gather`` bytes in all (``GATHER_MAX`` at most).

        Speed: a large message arrives in many reads. Each became bytes of its own,
        then went into the framer's buffer, whose growth copied most of it again
        (~3.5 MiB of copies per MiB received, and Python work per read). Read whole
        here, a message that has arrived is one bytes object, which the drivers'
        one-step paths decode as it is: ~1.25 copies per byte. The larger buffer is
        lent by a small pool shared by all connections (``_large_reads``): a fresh one
        costs a page fault per 4 KiB touched (~1.5 us each here, more than the copies
        saved), and one kept per connection would hold memory while it idles.
        """
        limit = min(self.gather, GATHER_MAX)  # (the larger buffer's length: a user may set more)
        if limit <= count:
            # Turned off since the caller looked (the sync server's drain(), from the
            # shutdown() thread): a negative length asked of the socket raised ValueError,
            # and the bytes read were lost.
            return self._buffer[:count]
        large = take_large()
        try:
            with memoryview(large) as view:
                view[:count] = self._view[:count]
                try:
                    # (One read: the socket hands over all it holds, up to the room given.)
                    count += sock.recv_into(view[count:limit], limit - count, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    pass  # nothing more has arrived
                except OSError as exc:
                    # The bytes read so far go out; the error (e.g. a reset, which the
                    # socket reports once) is the next read's: with no buffer, it
                    # calls _grow, which raises it (no test on the usual read's way).
                    self._failed = exc
                    self._size = 0
            return large[:count]
        except BaseException:
            self.interrupted_read = True  # the bytes read are lost (e.g. Ctrl-C)
            raise
        finally:
            give_back(large)

    def _grow(self, size: int) -> None:
        """Make the read buffer ``size`` bytes long (a new anonymous mmap)."""
        failed = self._failed
        if failed is not None:
            self._failed = None
            raise failed
        self._buffer = mmap.mmap(-1, size, **PRIVATE)  # (see _large_reads.PRIVATE)
        self._view = memoryview(self._buffer)
        self._size = size

    def unread(self) -> int:
        """Bytes the kernel holds for this socket, not read yet (0: none, closed, or cannot tell).

        Over TLS these are records. Reads nothing: a reader in another thread is not disturbed.
        """
        if not self._real or self._closed:
            return 0
        return unread_count(self.sock.fileno())

    def unread_or_none(self) -> int | None:
        """As :meth:`unread`, but None where it cannot be told (not a kernel socket, or no FIONREAD)."""
        if not self._real or not HAVE_FIONREAD:
            return None
        return self.unread()

    def peer_closed(self) -> OSError | bool:
        """Whether the peer ended the connection with nothing unread before its end; reads nothing, never blocks.

        True: its EOF is next; an OSError: a reset (or another error) is waiting;
        False: bytes are waiting (a TLS close_notify too), nothing is, or it cannot
        be told (not a plain socket). The sync client asks before a call that
        follows a quiet spell: a server's idle close is then told before the request
        goes out into a dead connection.
        """
        sock = self.sock
        if not self._real or self._closed or isinstance(sock, _ssl.SSLSocket):
            return False
        try:
            return not sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            return exc

    def watchable_fd(self) -> int | None:
        """The descriptor whose readiness tells that bytes arrived, or None.

        None for TLS (decrypted bytes may wait inside the TLS layer, unseen by the
        OS) and for socket-like objects without a real descriptor.
        """
        if not self._real or self._closed or isinstance(self.sock, _ssl.SSLSocket):
            return None
        fd = self.sock.fileno()
        return fd if fd >= 0 else None

    def close(self) -> None:
        """Shut the socket down (waking a blocked reader) and close it; idempotent."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def send_of(transport: Transport) -> Callable[[bytes], None]:
    """``transport.send``, or the socket's ``sendall`` where send() only calls that (a plain
    SocketTransport, not TLS, with no send timeout). Speed: a client's write without send()'s
    Python call (~0.4k instructions a call)."""
    if type(transport) is SocketTransport and transport._send_timeout is None and transport._sndtimeo is None:
        return transport.sock.sendall
    return transport.send
