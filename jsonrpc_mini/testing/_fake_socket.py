"""``FakeSocket``: a socket-like object fed with scripted bytes, recording what is written."""

from __future__ import annotations

import collections
import errno
import io
import math
import operator
import os
import socket
import threading
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from .._remote import check_count, is_count

__all__ = ["FakeSocket"]

ScriptItem = bytes | bytearray | BaseException | type[BaseException]

# A recv that would block for ever in blocking mode fails after this long instead,
# so a test with too short a script fails rather than hangs.
MAX_BLOCK = 10.0


# What the kernel says with these errors: a bare ``ConnectionResetError`` in a script
# made the client's message end in nothing ("add: connection lost: ").
_ERRNO: dict[type[BaseException], int] = {
    BrokenPipeError: errno.EPIPE,
    ConnectionResetError: errno.ECONNRESET,
    ConnectionAbortedError: errno.ECONNABORTED,
    ConnectionRefusedError: errno.ECONNREFUSED,
}


def _as_raised(error: BaseException | type[BaseException]) -> BaseException | type[BaseException]:
    """``error`` as a real socket raises it: one of the classes above with its errno and text.

    ``TimeoutError`` reads "timed out", as a socket's timeout does; an instance, or any
    other class, is raised as given.
    """
    if isinstance(error, type):
        code = _ERRNO.get(error)
        if code is not None:
            return error(code, os.strerror(code))
        if error is TimeoutError:
            return TimeoutError("timed out")
    return error


# CPython keeps a socket's timeout in signed 64-bit nanoseconds.
_MAX_TIMEOUT_NS = 2**63


def _socket_timeout(value: float | None) -> float | None:
    """``value`` as a socket's ``settimeout`` takes it: its errors and texts, the float ``gettimeout`` gives."""
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            raise ValueError("Invalid value NaN (not a number)")
        if abs(value) * 1e9 >= _MAX_TIMEOUT_NS:  # (inf too)
            raise OverflowError("timestamp out of range for platform time_t")
        seconds = value
    else:
        whole = operator.index(value)  # (TypeError: "'str' object cannot be interpreted as an integer")
        if abs(whole) * 10**9 >= _MAX_TIMEOUT_NS:
            raise OverflowError("timestamp too large to convert to C _PyTime_t")
        seconds = float(whole)
    if seconds < 0:
        raise ValueError("Timeout value out of range")
    return seconds + 0.0  # (-0.0 is 0.0)


def _checked(items: Iterable[ScriptItem]) -> list[ScriptItem]:
    """The script items, each bytes-like or an exception; else TypeError (a str failed only in recv)."""
    checked = list(items)
    for item in checked:
        if isinstance(item, bytes | bytearray | memoryview | BaseException):
            continue
        if isinstance(item, type) and issubclass(item, BaseException):
            continue
        hint = f": write b{item!r}" if isinstance(item, str) else ""
        raise TypeError(f"FakeSocket script items are bytes or exceptions, not {type(item).__name__} {item!r}{hint}")
    return checked


class FakeSocket:
    """A drop-in for the socket methods clients and servers call; no real descriptor.

    ``inbound`` is the script of what ``recv`` returns: each ``bytes`` item is
    delivered as one piece (split when the reader asks for fewer bytes), and an
    exception (instance or class) in the script is raised by ``recv`` at that
    point: ``TimeoutError`` (``socket.timeout``), ``ConnectionResetError``, ...
    After the script, ``recv`` returns ``b""`` (EOF) when ``eof=True`` (the
    default); with ``eof=False`` it waits for :meth:`feed` like an idle peer.

    Writes are recorded: :attr:`sent` is every byte written, :attr:`writes` each
    ``send`` call. ``max_send`` (an integer of at least 1) makes ``send`` accept at
    most that many bytes (partial writes; ``sendall`` loops), and after
    ``fail_send_after`` (an integer >= 0) bytes in all ``send`` raises
    ``send_error`` (default BrokenPipeError; a class among the socket errors is
    raised with the kernel's errno and text, as in the script); counting them takes the same time
    however many writes came before (even ``max_send=1``). Both may be changed
    later (``sock.max_send = 2``); a bad value, given or set, raises ValueError
    naming the option.

    Example::

        from jsonrpc_mini import RPCClient, SocketTransport
        from jsonrpc_mini.testing import FakeSocket
        sock = FakeSocket([b'{"jsonrpc": "2.0", "id": 1, "result": 3}\\n'])
        client = RPCClient(transport=SocketTransport(sock), timeout=1)
        assert client.add(1, 2) == 3
        assert b'"method":"add"' in sock.sent
    """

    def __init__(
        self,
        inbound: Iterable[ScriptItem] = (),
        *,
        eof: bool = True,
        max_send: int | None = None,
        fail_send_after: int | None = None,
        send_error: BaseException | type[BaseException] = BrokenPipeError,
        family: int = socket.AF_INET,
        type: int = socket.SOCK_STREAM,
        peer: Any = ("127.0.0.1", 5000),
        local: Any = ("127.0.0.1", 54321),
    ) -> None:
        self.max_send = max_send  # checked: 0 made sendall spin for ever, -1 dropped a byte
        self.fail_send_after = fail_send_after  # checked: 1.5 or "5" failed at a send, not here
        self._script: collections.deque[ScriptItem] = collections.deque(_checked(inbound))
        self._eof = eof
        self._cond = threading.Condition()
        self._timeout: float | None = None
        self._closed = False
        self._shut_rd = False
        self._shut_wr = False
        self.send_error = send_error
        self.family = family
        self.type = type
        self.proto = 0
        self.peer = peer
        self.local = local
        self.writes: list[bytes] = []
        self._taken = 0  # bytes send() took in all (fail_send_after counts these; not len(sent): O(n) a call)
        self.options: dict[tuple[int, int], Any] = {}
        self.shutdowns: list[int] = []

    @property
    def max_send(self) -> int | None:
        """At most this many bytes per ``send`` (None: all); set at any time, checked as in the constructor."""
        return self._max_send

    @max_send.setter
    def max_send(self, value: int | None) -> None:
        if value is not None:
            check_count("max_send", value)
        self._max_send = value

    @property
    def fail_send_after(self) -> int | None:
        """``send`` fails once this many bytes were sent in all (None: never); checked like ``max_send``."""
        return self._fail_send_after

    @fail_send_after.setter
    def fail_send_after(self, value: int | None) -> None:
        if value is not None and not is_count(value, 0):
            raise ValueError(f"fail_send_after must be an integer number of bytes >= 0 (or None), not {value!r}")
        self._fail_send_after = value

    # -- script ------------------------------------------------------------------

    def feed(self, *items: ScriptItem) -> None:
        """Append to the inbound script (from any thread); wakes a waiting ``recv``."""
        checked = _checked(items)
        with self._cond:
            self._script.extend(checked)
            self._cond.notify_all()

    def feed_eof(self) -> None:
        """End the inbound stream once the script is read: ``recv`` then returns ``b""``."""
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    @property
    def sent(self) -> bytes:
        """Every byte written so far."""
        return b"".join(self.writes)

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._closed

    # -- reading -----------------------------------------------------------------

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Return the next scripted bytes (at most ``bufsize``), raise a scripted error, or EOF."""
        bufsize = operator.index(bufsize)  # (recv(1.5): TypeError, as a socket)
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        with self._cond:
            self._check_open()
            if bufsize == 0 and not self._script:
                return b""  # (a socket's recv(0) returns at once, whether or not anything has arrived)
            if not self._cond.wait_for(self._readable, self._wait_time()):
                if self._timeout == 0.0:
                    raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
                if self._timeout is None:
                    raise RuntimeError(
                        f"FakeSocket.recv blocked for {MAX_BLOCK} s with an empty script: "
                        "script more bytes, call feed()/feed_eof(), or use FakeSocket(eof=True)"
                    )
                raise TimeoutError("timed out")
            self._check_open()
            if self._shut_rd or not self._script:
                return b""
            item = self._script[0]
            if isinstance(item, BaseException) or (isinstance(item, type) and issubclass(item, BaseException)):
                self._script.popleft()
                raise _as_raised(item)
            if bufsize == 0:
                return b""
            data = bytes(item)
            if len(data) <= bufsize:
                self._script.popleft()
                return data
            self._script[0] = data[bufsize:]
            return data[:bufsize]

    def _readable(self) -> bool:
        return bool(self._closed or self._shut_rd or self._script or self._eof)

    def _wait_time(self) -> float:
        return MAX_BLOCK if self._timeout is None else self._timeout

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        """Like ``recv``, but into ``buffer``; returns the number of bytes stored."""
        view = memoryview(buffer).cast("B")
        nbytes = operator.index(nbytes)
        if nbytes < 0:
            raise ValueError("negative buffersize in recv_into")
        if nbytes > len(view):
            raise ValueError("buffer too small for requested bytes")
        data = self.recv(nbytes or len(view), flags)
        view[: len(data)] = data
        return len(data)

    # -- writing -----------------------------------------------------------------

    def send(self, data: bytes | bytearray | memoryview, flags: int = 0) -> int:
        """Record (up to ``max_send`` bytes of) ``data``; return how many bytes were taken."""
        with self._cond:
            self._check_open()
            if self._shut_wr:
                raise BrokenPipeError(errno.EPIPE, "Broken pipe")
            size = len(data) if self._max_send is None else min(len(data), self._max_send)
            if self._fail_send_after is not None:
                room = self._fail_send_after - self._taken
                if room <= 0:
                    raise _as_raised(self.send_error)
                size = min(size, room)
            self.writes.append(bytes(data[:size]))
            self._taken += size
            return size

    def sendall(self, data: bytes | bytearray | memoryview, flags: int = 0) -> None:
        """Record all of ``data`` (looping over partial sends, like a real socket)."""
        view = memoryview(data)
        while view:
            view = view[self.send(view, flags) :]

    # -- control -----------------------------------------------------------------

    def settimeout(self, value: float | None) -> None:
        """Set the timeout of blocking calls (None = blocking, 0 = non-blocking), checked as a socket checks it."""
        self._timeout = _socket_timeout(value)

    def gettimeout(self) -> float | None:
        """The current timeout (None in blocking mode)."""
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        """``setblocking(True)`` = ``settimeout(None)``; ``False`` = ``settimeout(0.0)``."""
        self._timeout = None if flag else 0.0

    def getblocking(self) -> bool:
        """Whether the socket is in blocking mode (a timeout of 0 means non-blocking)."""
        return self._timeout != 0.0

    def setsockopt(self, level: int, option: int, value: Any, *args: Any) -> None:
        """Record a socket option (it has no effect)."""
        self.options[(level, option)] = value

    def getsockopt(self, level: int, option: int, *args: Any) -> Any:
        """Return a recorded socket option (0 if never set)."""
        return self.options.get((level, option), 0)

    def getpeername(self) -> Any:
        """The scripted peer address."""
        self._check_open()
        return self.peer

    def getsockname(self) -> Any:
        """The scripted local address."""
        self._check_open()
        return self.local

    def connect(self, address: Any) -> None:
        """Pretend to connect (records the address as the peer)."""
        self._check_open()
        self.peer = address

    def fileno(self) -> int:
        """-1: there is no real descriptor (``select`` cannot wait on a FakeSocket)."""
        return -1

    def shutdown(self, how: int) -> None:
        """Shut down reading (later reads get EOF) and/or writing (writes get BrokenPipeError).

        After ``SHUT_RD`` every read gets EOF at once, the unread script too: a real
        socket on Linux still returns the bytes it had received (the BSDs drop them),
        so a test never depends on that difference.
        """
        how = operator.index(how)
        with self._cond:
            self._check_open()
            if how not in (socket.SHUT_RD, socket.SHUT_WR, socket.SHUT_RDWR):
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
            self.shutdowns.append(how)
            if how in (socket.SHUT_RD, socket.SHUT_RDWR):
                self._shut_rd = True
            if how in (socket.SHUT_WR, socket.SHUT_RDWR):
                self._shut_wr = True
            self._cond.notify_all()

    def close(self) -> None:
        """Close; later calls raise OSError(EBADF) like a real closed socket. Idempotent."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def makefile(self, mode: str = "rb", buffering: int = -1) -> io.BufferedIOBase:
        """A binary file over this socket (``"rb"``, ``"wb"`` or ``"rwb"``)."""
        raw = _SocketIO(self, mode)
        size = io.DEFAULT_BUFFER_SIZE if buffering < 0 else max(buffering, 1)
        if "r" in mode and "w" in mode:
            return io.BufferedRWPair(raw, raw, size)
        if "w" in mode:
            return io.BufferedWriter(raw, size)
        return io.BufferedReader(raw, size)

    def _check_open(self) -> None:
        if self._closed:
            raise OSError(errno.EBADF, "Bad file descriptor")

    def __enter__(self) -> FakeSocket:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._script)} scripted, {len(self.sent)} bytes sent"
        return f"<FakeSocket {state}>"


class _SocketIO(io.RawIOBase):
    """The raw file behind ``FakeSocket.makefile``."""

    def __init__(self, sock: FakeSocket, mode: str) -> None:
        super().__init__()
        self._sock = sock
        self._mode = mode

    def readable(self) -> bool:
        return "r" in self._mode

    def writable(self) -> bool:
        return "w" in self._mode

    def readinto(self, buffer: Any) -> int:
        return self._sock.recv_into(buffer)

    def write(self, data: Any) -> int:
        return self._sock.send(bytes(data))
