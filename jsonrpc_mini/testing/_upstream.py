"""How ``LoopbackServer``'s proxy reaches the server for a connection: a connect the kit's close() can end.

The connect takes up to ``timeout`` seconds where the server's backlog is full (its
SYNs dropped). The proxy's accept thread makes it, and the kit's close() joins that
thread: so the connect also waits for the kit's wake-up socket, readable once
close() began, and then gives up at once (:class:`Woken`), the connection not
needed any more.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import time
from typing import Any

from .._socket_waits import HAVE_POLL

__all__ = ["Woken", "connect"]


class Woken(Exception):
    """The kit's close() began while the proxy connected to the server."""


def connect(upstream: tuple[str, int], timeout: float, wake: socket.socket | None) -> socket.socket:
    """A blocking socket connected to ``upstream`` within ``timeout`` seconds, as ``socket.create_connection``.

    OSError as it raises (TimeoutError "timed out" when the time runs out); :class:`Woken`
    as soon as ``wake`` is readable (or closed). Without ``wake`` (or poll()), a plain
    ``create_connection``.
    """
    if wake is None or not HAVE_POLL:
        return socket.create_connection(upstream, timeout=timeout)
    deadline = time.monotonic() + timeout
    error = OSError(f"no address for {upstream}")
    for family, kind, proto, _, address in socket.getaddrinfo(upstream[0], upstream[1], type=socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            _connect_one(sock, address, wake, deadline)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise error


def _connect_one(sock: socket.socket, address: tuple[Any, ...], wake: socket.socket, deadline: float) -> None:
    sock.setblocking(False)
    code = sock.connect_ex(address)
    if code == errno.EINPROGRESS:
        poller = select.poll()
        poller.register(sock, select.POLLOUT)
        try:
            poller.register(wake, select.POLLIN)
        except ValueError:  # (closed: the kit's close() is done with it)
            raise Woken from None
        ready = {fd for fd, _ in poller.poll(max(0.0, deadline - time.monotonic()) * 1000.0)}
        if wake.fileno() in ready:
            raise Woken
        if sock.fileno() not in ready:
            raise TimeoutError("timed out")
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if code:
        raise OSError(code, os.strerror(code))
    sock.setblocking(True)
