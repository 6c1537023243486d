"""``EagerReader``: a socket transport read as the bytes come, each read stamped with its time.

For the proxy of ``LoopbackServer``: a fault plan holds each chunk its delay after
the chunk *arrived* (as a network link does), so the proxy must know when bytes
arrived even while it holds earlier ones back. One thread per end reads the socket
at once and keeps what it read with the time it came; ``recv_stamped`` hands it on
(the in-memory pipe has the same method). It holds at most ``_HOLD`` bytes: then it
stops reading until the proxy takes some, so the peer's sends fill the kernel's
buffers and block, as over a link whose far end stops reading (a server's
back-pressure and its closing of a peer that reads nothing keep working). What the
proxy does to the connection (close, half-close, reset) goes to the socket itself.
"""

from __future__ import annotations

import collections
import threading
import time

from .._transport import RECV_SIZE, SocketTransport
from ._end_faults import abort_transport, shutdown_write

__all__ = ["EagerReader"]

_POLL = 0.5
_HOLD = 1 << 20  # bytes read and not yet taken, at most (one read more may pass it)


class EagerReader:
    """A :class:`~jsonrpc_mini.Transport` over ``inner`` whose reads come from a reading thread."""

    def __init__(self, inner: SocketTransport, name: str) -> None:
        self.inner = inner
        self._cond = threading.Condition()
        self._segments: collections.deque[tuple[float, bytes]] = collections.deque()
        self._held = 0  # bytes in _segments
        self._eof = False
        self._error: OSError | None = None
        self._discard = False  # shutdown_read(): what comes is dropped, our reads get EOF
        self._stopping = False
        self.thread = threading.Thread(target=self._read, name=name, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self._stopping:
            with self._cond:
                while self._held >= _HOLD and not self._stopping:
                    self._cond.wait(_POLL)  # the proxy takes some (or the end stops)
            try:
                data = self.inner.recv(RECV_SIZE, _POLL)
            except TimeoutError:
                continue
            except (OSError, ValueError) as exc:
                with self._cond:
                    self._error = exc if isinstance(exc, ConnectionResetError) else None
                    self._eof = True
                    self._cond.notify_all()
                return
            with self._cond:
                if not data:
                    self._eof = True
                elif not self._discard:
                    self._segments.append((time.monotonic(), data))
                    self._held += len(data)
                self._cond.notify_all()
            if not data:
                return

    def recv_stamped(self, max_bytes: int, timeout: float | None) -> tuple[bytes, float]:
        """Up to ``max_bytes`` of the next bytes read, and when they arrived; ``b""`` at EOF."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._segments:
                    stamp, head = self._segments[0]
                    if len(head) <= max_bytes:
                        self._segments.popleft()
                    else:
                        self._segments[0] = (stamp, head[max_bytes:])
                        head = head[:max_bytes]
                    self._held -= len(head)
                    self._cond.notify_all()  # the reading thread may be waiting for room
                    return head, stamp
                if self._error is not None:
                    raise ConnectionResetError(str(self._error))
                if self._eof or self._discard or self._stopping:
                    return b"", time.monotonic()
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError("read timed out")
                self._cond.wait(left)

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        """As :meth:`recv_stamped`, without the time."""
        return self.recv_stamped(max_bytes, timeout)[0]

    def send(self, data: bytes) -> None:
        """Write to the socket."""
        self.inner.send(data)

    def shutdown_write(self) -> None:
        """Half-close the socket: the peer reads EOF."""
        shutdown_write(self.inner)

    def shutdown_read(self) -> None:
        """Our reads get EOF; what the peer still sends is read and dropped (it never blocks)."""
        with self._cond:
            self._discard = True
            self._segments.clear()
            self._held = 0
            self._cond.notify_all()

    def abort(self) -> None:
        """Reset the connection (RST)."""
        self._stop()
        abort_transport(self.inner)

    def close(self) -> None:
        """Close the socket; the reading thread ends. Idempotent."""
        self._stop()
        self.inner.close()

    def _stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def __repr__(self) -> str:
        return f"<EagerReader {self.inner!r}>"
