"""The sync driver's TLS (client and server): OpenSSL works on memory buffers over a plain socket.

A timeout must bound a TLS read and a TLS send as it bounds plain ones.
An ``ssl.SSLSocket`` cannot do that: a socket that polls readable may hold only a
session ticket (the first reply of every TLS 1.3 connection) or part of a record,
and the blocking SSL read then waits for the rest. And OpenSSL forbids reading and
writing one SSL object from two threads at once, which an SSLSocket shared by a
reading thread and a sending one does (the client's callers, the server's reader
and handler threads). Here, as in asyncio, the SSL object reads and
writes ``ssl.MemoryBIO`` buffers and the socket stays a plain one, so every read
and send keeps the plain socket's deadlines. Only the SSL object's calls (no I/O)
take a lock, so that a reader and a writer never meet inside OpenSSL.
"""

from __future__ import annotations

import contextlib
import socket
import ssl as _ssl
import threading
import time

from ._socket_waits import send_taken, send_until, wait_readable
from ._transport import SocketTransport

__all__ = ["TlsTransport", "tls_handshake"]

# Plain text encrypted per step of a send: a large request is not held twice over
# (plain and encrypted) before its first bytes leave.
_CHUNK = 256 * 1024
_CIPHER_READ = 64 * 1024  # encrypted bytes taken off the socket per read (records are up to ~16 KiB)


class TlsTransport(SocketTransport):
    """A TLS :class:`~jsonrpc_mini.Transport` whose reads and sends keep their deadlines.

    ``sock`` is the plain connected socket; ``tls`` an ``ssl.SSLObject`` over the
    two memory buffers. One thread reads and one sends at a time (the drivers'
    rules); the two may run at once. ``send_timeout`` as for SocketTransport.
    """

    __slots__ = ("_cipher", "_eof", "_incoming", "_kept", "_outgoing", "_send_lock", "_tls", "_tls_lock")

    def __init__(
        self,
        sock: socket.socket,
        tls: _ssl.SSLObject,
        incoming: _ssl.MemoryBIO,
        outgoing: _ssl.MemoryBIO,
        *,
        send_timeout: float | None = None,
    ) -> None:
        super().__init__(sock, send_timeout=send_timeout)
        self._tls = tls
        self._incoming = incoming
        self._outgoing = outgoing
        self._cipher = memoryview(bytearray(_CIPHER_READ))
        self._eof = False  # the socket's end of stream came (kept here, not handed to the SSL object: see _take)
        # Held for every call on the SSL object or its buffers, never across I/O.
        # Re-entrant so that its holder is known: a signal handler can run while this
        # thread holds it, even inside an SSL call (Python's ssl module runs handlers
        # there), and a send it makes must not use the SSL object then (see _send).
        self._tls_lock = threading.RLock()
        # Held while encrypted bytes taken from the outgoing buffer are sent, so that
        # they reach the socket in the order they were made (a read can make some too).
        # Re-entrant so that its holder is known, as above.
        self._send_lock = threading.RLock()
        # Plain text of sends made while this thread held one of the two locks (see
        # _send), in order: encrypted and sent as it lets them go. Always this list.
        self._kept: list[bytes] = []

    def unread_or_none(self) -> int | None:
        """As for a plain socket, plus what this transport has read and not handed on.

        The records in its buffer and the plain bytes the SSL object holds: a shutdown
        counts them as delivered (``_session_drain``). Plain bytes are fewer than their
        records, so the count errs towards reading a little more.
        """
        unread = super().unread_or_none()
        if unread is None:
            return None
        with self._tls_lock:
            return unread + self._incoming.pending + self._tls.pending()

    def send(self, data: bytes) -> None:
        """Write all of ``data`` (blocking; TimeoutError if ``send_timeout`` passes with no progress)."""
        self._send(data, None, 0.0)

    def send_within(self, data: bytes, timeout: float) -> None:
        """Write all of ``data`` within ``timeout`` seconds, else raise TimeoutError (see SocketTransport)."""
        self._send(data, time.monotonic() + timeout, timeout)

    def _send(self, data: bytes, deadline: float | None, timeout: float) -> None:
        tls_lock = self._tls_lock
        send_lock = self._send_lock
        if tls_lock._is_owned() or send_lock._is_owned():  # type: ignore[attr-defined]
            # A send made inside this thread's own use of the SSL object or of the
            # socket's sending side: a signal handler's (the client's readers hold
            # no lock of the client's here). Using the SSL object inside one of its
            # calls breaks that call; waiting for the send lock waits for ever. The
            # plain text is kept, and sent as this thread lets the locks go.
            self._kept.append(data)
            return
        view = memoryview(data)
        kept = self._kept
        with send_lock:
            first = True
            while True:
                with tls_lock:
                    if kept and (first or not view):  # between two messages: before this one, or after it
                        self._encrypt_kept()
                    first = False
                    if view:
                        # Memory buffers take every byte: no SSLWantWriteError. A write
                        # that needs to read first (renegotiation) raises, and the
                        # connection is then lost (TLS 1.3 has none; 1.2 servers rarely ask).
                        view = view[self._tls.write(view[:_CHUNK]) :]
                    out = self._outgoing.read()
                if out:
                    self._send_out(out, deadline, timeout)
                elif not view and not kept:
                    break
        if kept:  # kept after the last look: its sender was this thread, inside the last send out
            self._send_kept()

    def _encrypt_kept(self) -> None:
        """Hand the SSL object the plain text of the sends kept (see _send), in order (the SSL lock held)."""
        kept = self._kept
        while kept:
            rest = memoryview(kept.pop(0))
            while rest:
                rest = rest[self._tls.write(rest) :]

    def _send_kept(self) -> None:
        """Send what sends made inside this thread's use of the locks kept (see _send), once it let them go.

        Only if the send lock is free now: else its holder sends them (every holder
        looks again after letting it go; a sender that waited for it would wait for
        a thread that may need this one's reads to get on).
        """
        kept = self._kept
        send_lock = self._send_lock
        while kept and not self._tls_lock._is_owned() and send_lock.acquire(False):  # type: ignore[attr-defined]
            try:
                while True:
                    with self._tls_lock:
                        self._encrypt_kept()
                        out = self._outgoing.read()
                    if not out:
                        break
                    self._send_out(out, None, 0.0)
            finally:
                send_lock.release()

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        """Read up to ``max_bytes`` of plain text; TimeoutError if none comes within ``timeout``.

        The deadline bounds the whole read, however the records arrive: bytes that
        make no plain text yet (a session ticket, part of a record) wait in the SSL
        object for the next read.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            data = self._decrypt(max_bytes)
            if data is not None:
                return data
            if self._eof:
                return b""  # the peer's end (see _take), maybe inside a record: nothing more will come
            self._flush(deadline)  # what the SSL object must say before it can go on (rare)
            self._fill(deadline, "read timed out")

    def recv_ready(self, max_bytes: int) -> bytes | None:
        """Plain text already decrypted or decryptable from bytes already here; None if none.

        Never blocks, and it is safe while another thread sends (only the SSL
        object's calls are shared, under their lock).
        """
        data = self._decrypt(max_bytes)
        if data is not None or self._eof:
            return data if data is not None else b""
        try:
            count = self._read_cipher(socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return None
        self._take(count)
        return self._decrypt(max_bytes)

    def watchable_fd(self) -> int | None:
        """None: plain text may wait inside the SSL object, unseen by the OS."""
        return None

    def _fill(self, deadline: float | None, late: str) -> None:
        """Wait for encrypted bytes until ``deadline`` (None: for ever) and hand them to the SSL object.

        TimeoutError(``late``) if none come in time. A deadline passed still gets one
        look without waiting, as a plain socket's read does: ``recv(n, 0.0)`` takes what
        has arrived (a shutdown's drain reads so what it counted as delivered).
        """
        if deadline is not None and not wait_readable(self.sock, max(deadline - time.monotonic(), 0.0)):
            raise TimeoutError(late)
        self._take(self._read_cipher(0))

    def _read_cipher(self, flags: int) -> int:
        """Read encrypted bytes into ``_cipher``; their count (0: the peer closed)."""
        cipher = self._cipher
        # As SocketTransport._recv_real: a first byte that changed means the read took
        # bytes before an interruption cut it short. The new first byte can be 0 too
        # (1 in 256); the lost bytes then break the stream's next record instead,
        # which OpenSSL reports (a bad record MAC): the connection fails either way.
        cipher[0] = 0
        try:
            return self.sock.recv_into(cipher, 0, flags)
        except BaseException:
            if cipher[0]:
                self.interrupted_read = True
            raise

    def _take(self, count: int) -> None:
        """Hand the SSL object ``count`` bytes just read into ``_cipher`` (0: the peer closed).

        The peer's end is kept here, not handed to the SSL object: OpenSSL takes an end
        without close_notify (a TCP half-close, ``shutdown(SHUT_WR)`` on the socket
        under TLS) as a fatal error, queues a ``decode_error`` alert and refuses every
        later write, so the replies owed to a client that half-closed were lost (or
        followed by that alert). Reads end at it all the same (:meth:`recv`).
        """
        with self._tls_lock:
            if count:
                self._incoming.write(self._cipher[:count])
            else:
                self._eof = True

    def _decrypt(self, max_bytes: int) -> bytes | None:
        """Plain text the SSL object can give now, ``b""`` at the end of the stream, else None."""
        if self._size < max_bytes:
            self._grow(max_bytes)
        buffer = self._buffer
        buffer[0] = 0  # (see SocketTransport._recv_real: a read cut after it took bytes)
        try:
            with self._tls_lock:
                # With a buffer, read returns the count (typeshed says bytes).
                count: int = self._tls.read(max_bytes, self._view)  # type: ignore[assignment]
        except _ssl.SSLWantReadError:
            if self._kept:  # (see _send)
                self._send_kept()
            return None
        except BaseException:
            if buffer[0]:
                self.interrupted_read = True
            raise
        if self._kept:  # (see _send)
            self._send_kept()
        return buffer[:count]  # count 0: close_notify

    def _flush(self, deadline: float | None) -> None:
        """Send what the SSL object made while reading (post-handshake messages), if anything."""
        with self._tls_lock:
            if not self._outgoing.pending:
                return
        if not self._send_lock.acquire(timeout=-1 if deadline is None else max(deadline - time.monotonic(), 0.0)):
            raise TimeoutError("read timed out")
        try:
            with self._tls_lock:
                out = self._outgoing.read()
            if out:
                self._send_out(out, deadline, 0.0 if deadline is None else deadline - time.monotonic())
        finally:
            self._send_lock.release()
        if self._kept:  # (see _send)
            self._send_kept()

    def _send_alert(self) -> None:
        """Send what a failing SSL object wrote (its alert, which tells the peer why), if it can at once."""
        with self._tls_lock:
            out = self._outgoing.read()
        with contextlib.suppress(OSError):
            if out:
                self.sock.send(out, socket.MSG_DONTWAIT)  # a few bytes: they fit, or are dropped

    def _send_out(self, out: bytes, deadline: float | None, timeout: float) -> None:
        """Send encrypted bytes: by ``deadline`` if given, else as :meth:`send` bounds a send."""
        if deadline is None and self._send_timeout is not None:
            send_taken(self.sock, out, self._send_timeout)
        else:
            send_until(self.sock, out, deadline, timeout)


def tls_handshake(
    sock: socket.socket,
    context: _ssl.SSLContext,
    timeout: float | None,
    *,
    server_hostname: str | None = None,
    server_side: bool = False,
    send_timeout: float | None = None,
) -> TlsTransport:
    """Run a TLS handshake over the connected ``sock`` within ``timeout`` seconds as a whole.

    Raises TimeoutError, ``ssl.SSLError`` (e.g. a certificate refused, a peer not
    speaking TLS; the alert saying why is sent to the peer first) or OSError;
    ValueError for a client whose context checks host names, given none.
    ``send_timeout``: the transport's (see TlsTransport).
    """
    if not server_side and context.check_hostname and not server_hostname:
        # What wrap_socket says; wrap_bio would skip the host name check instead.
        raise ValueError("check_hostname requires server_hostname")
    incoming, outgoing = _ssl.MemoryBIO(), _ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_side=server_side, server_hostname=server_hostname)
    transport = TlsTransport(sock, tls, incoming, outgoing, send_timeout=send_timeout)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            tls.do_handshake()
        except _ssl.SSLWantReadError:
            pass
        except _ssl.SSLError:
            transport._send_alert()
            raise
        else:
            try:
                transport._flush(deadline)  # the last handshake message (and a server's session tickets)
            except (ConnectionResetError, BrokenPipeError):
                if not server_side:
                    raise
                # The handshake is done. A TLS 1.3 client sends its requests without
                # waiting for the session tickets, so one that reset the connection at
                # once has had them refused; what it sent before the reset is still
                # read and served as usual (its replies fail to send).
            return transport
        transport._flush(deadline)
        transport._fill(deadline, "the TLS handshake timed out")
        if transport._eof:
            incoming.write_eof()  # (a handshake cut short: OpenSSL's own error for it, as before)
