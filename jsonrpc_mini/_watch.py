"""Wake a connection's threads only when bytes arrive while its reader runs a call.

The server's Leader/Followers rule says someone must be reading while a call runs,
so that a slow call never delays a fast one sent after it. Promoting a follower
for every request costs a thread wake-up per request (about as much as the round
trip itself). Instead, the reader that starts a call registers the socket here; one
thread per server waits on all registered sockets with the OS's readiness API
(epoll, kqueue) and promotes a follower only when a socket becomes readable while
its call runs. A sequential client therefore costs two cheap registration calls
per request and no wake-up at all.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
from collections.abc import Callable

__all__ = ["ReadWatcher"]

log = logging.getLogger("jsonrpc_mini")

_POLL = 0.5

# Only these see a registration made while another thread is already waiting; the
# poll/select based ones copy the set of descriptors when the wait starts.
_LIVE_NAMES = ("EpollSelector", "KqueueSelector", "DevpollSelector")
_LIVE_SELECTORS = tuple(getattr(selectors, name) for name in _LIVE_NAMES if hasattr(selectors, name))
_AVAILABLE = isinstance(selectors.DefaultSelector, type) and issubclass(selectors.DefaultSelector, _LIVE_SELECTORS)


class _Loop:
    """One selector and the thread waiting on it (replaced whole when restarted)."""

    def __init__(self, lock: threading.Lock) -> None:
        self.lock = lock
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.selector.register(self.wake_r, selectors.EVENT_READ, None)
        # fd -> callback of what is registered now (checked on every call: cheaper than
        # asking the selector, whose get_map() builds a new view object each time).
        self.watched: dict[int, Callable[[], None]] = {}
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="jsonrpc_mini-watch", daemon=True)

    def _run(self) -> None:
        # The owner's lock guards registrations; select() itself runs without it.
        try:
            while not self.stopping:
                ready = self.selector.select(_POLL)
                callbacks: list[Callable[[], None]] = []
                with self.lock:
                    for key, _ in ready:
                        if key.data is None:
                            with contextlib.suppress(OSError):
                                self.wake_r.recv(4096)
                            continue
                        # One shot: the session registers again for its next call.
                        callback = self.watched.get(key.fd)
                        if callback is not None and callback is key.data:
                            del self.watched[key.fd]
                            self.selector.unregister(key.fd)
                            callbacks.append(callback)
                for wake in callbacks:
                    wake()
        except Exception:  # pragma: no cover - a bug here must not pass silently
            log.exception("the read watcher failed")
        finally:
            with self.lock:
                self.stopping = True
                self.selector.close()
            self.wake_r.close()
            self.wake_w.close()


class ReadWatcher:
    """Call back once a registered socket becomes readable (one thread per server, started on demand)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: _Loop | None = None

    @staticmethod
    def available() -> bool:
        """Whether this platform's selector can watch sockets registered on the fly."""
        return _AVAILABLE

    def watch(self, fd: int, callback: Callable[[], None]) -> bool:
        """Call ``callback`` (in the watcher thread) when ``fd`` is readable; False if it cannot watch."""
        with self._lock:
            loop = self._loop
            if loop is None or loop.stopping:
                loop = self._loop = _Loop(self._lock)
                loop.thread.start()
            if fd in loop.watched:  # e.g. a stale registration of a reused fd
                return False
            try:
                loop.selector.register(fd, selectors.EVENT_READ, callback)
            except (KeyError, ValueError, OSError):
                return False
            loop.watched[fd] = callback
            return True

    def unwatch(self, fd: int, callback: Callable[[], None]) -> None:
        """Forget ``fd`` if it is still registered with ``callback`` (and not already fired)."""
        with self._lock:
            loop = self._loop
            if loop is None or loop.stopping:
                return
            if loop.watched.get(fd) is callback:
                del loop.watched[fd]
                loop.selector.unregister(fd)

    def stop(self, *, only_if_unused: bool = False, join: float | None = None) -> None:
        """End the thread (it starts again on the next ``watch``); ``only_if_unused``: only if nothing is watched."""
        with self._lock:
            loop = self._loop
            if loop is None or loop.stopping:
                return
            if only_if_unused and loop.watched:
                return
            loop.stopping = True
            self._loop = None
        with contextlib.suppress(OSError):
            loop.wake_w.send(b"x")
        if join is not None and loop.thread is not threading.current_thread():
            loop.thread.join(join)
