"""Sends and waits on a plain socket that never block past their bound.

Each send is non-blocking whatever the socket's mode, so a reader in another
thread is never disturbed; waits use poll() where there is one. Also the kernel's
own read and write timeouts (SO_RCVTIMEO / SO_SNDTIMEO), set where their layout
is known, and the count of bytes waiting unread (both servers' shutdown). Used by
``_transport`` and ``_tls_transport``.
"""

from __future__ import annotations

import select
import socket
import struct
import sys
import time

try:
    import fcntl
    import termios
except ImportError:  # pragma: no cover - Windows
    _FIONREAD: int | None = None
else:
    _FIONREAD = termios.FIONREAD
HAVE_FIONREAD = _FIONREAD is not None
"""Whether :func:`unread_count` can tell (where it cannot, it says 0)."""

__all__ = [
    "HAVE_FIONREAD",
    "HAVE_POLL",
    "MIN_RCVTIMEO",
    "RCVTIMEO",
    "send_taken",
    "send_until",
    "set_timeval",
    "unread_count",
    "wait_readable",
]


def send_taken(sock: socket.socket, data: bytes | memoryview, timeout: float) -> None:
    """Write all of ``data`` to the plain socket ``sock``; TimeoutError if the peer takes no byte for ``timeout`` s.

    Each send is non-blocking whatever the socket's mode (see send_until).
    """
    rest: bytes | memoryview = data  # a view only once part is sent (the usual send takes all)
    while rest:
        try:
            sent = sock.send(rest, socket.MSG_DONTWAIT)
        except BlockingIOError:
            sent = 0
        if sent == len(rest):
            return
        rest = memoryview(rest)[sent:]
        if not _wait(sock, select.POLLOUT, timeout):
            raise TimeoutError(f"the peer accepted no data for {timeout} s")


def send_until(sock: socket.socket, data: bytes, deadline: float | None, timeout: float) -> None:
    """Write all of ``data`` to the plain socket ``sock`` by ``deadline`` (None: no limit).

    Else TimeoutError, naming ``timeout`` (the caller's whole allowance). Each send
    is non-blocking whatever the socket's mode, so a reader in another thread is
    never disturbed.
    """
    if deadline is None or not HAVE_POLL:
        sock.sendall(data)
        return
    view = memoryview(data)
    while view:
        try:
            sent = sock.send(view, socket.MSG_DONTWAIT)
        except BlockingIOError:
            sent = 0
        view = view[sent:]
        remaining = deadline - time.monotonic()
        if view and (remaining <= 0 or not _wait(sock, select.POLLOUT, remaining)):
            raise TimeoutError(f"the peer took no more data within {round(timeout, 3)} s")


def wait_readable(sock: socket.socket, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``sock`` to be readable (or closed); True if it is.

    poll(), not select(): select() refuses descriptors numbered 1024 and above, which
    a server with many connections soon hands out.
    """
    if HAVE_POLL:
        return _wait(sock, select.POLLIN, timeout)
    ready, _, _ = select.select([sock], [], [], max(timeout, 0.0))  # pragma: no cover - no poll() (Windows)
    return bool(ready)  # pragma: no cover


def unread_count(fd: int) -> int:
    """How many bytes wait unread in the kernel for the socket ``fd`` (0: none, closed, or cannot tell).

    FIONREAD, which reads nothing: another thread's reads are not disturbed.
    """
    if _FIONREAD is None:  # pragma: no cover - no termios (Windows)
        return 0
    try:
        return int.from_bytes(fcntl.ioctl(fd, _FIONREAD, b"\0\0\0\0"), sys.byteorder)
    except (OSError, ValueError):  # closed by another thread meanwhile (ValueError: fd -1)
        return 0


def _wait(sock: socket.socket, events: int, timeout: float) -> bool:
    poller = select.poll()
    try:
        poller.register(sock, events)
    except ValueError as exc:  # closed by another thread meanwhile
        raise OSError("the socket is closed") from exc
    return bool(poller.poll(max(timeout, 0.0) * 1000.0))


HAVE_POLL = hasattr(select, "poll")
# SO_RCVTIMEO takes a struct timeval: two C longs on 64-bit Linux. Elsewhere the
# layout differs, so other platforms wait for readability with poll() instead.
RCVTIMEO = sys.platform.startswith("linux") and struct.calcsize("@l") == 8
MIN_RCVTIMEO = 0.001  # below this (0 would mean "no timeout") use poll()


def set_timeval(sock: socket.socket, option: int, seconds: float) -> None:
    """Set ``sock``'s kernel timeout ``option`` (SO_RCVTIMEO or SO_SNDTIMEO) to ``seconds`` (0: none).

    Linux's ``struct timeval`` layout (see RCVTIMEO).
    """
    whole = int(seconds)
    sock.setsockopt(socket.SOL_SOCKET, option, struct.pack("@ll", whole, int((seconds - whole) * 1e6)))
