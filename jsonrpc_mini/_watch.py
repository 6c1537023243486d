"""Wake a connection's threads only when bytes arrive while its reader runs a call.

The server's Leader/Followers rule says someone must be reading while a call runs,
so that a slow call never delays a fast one sent after it. Promoting a follower
for every request costs a thread wake-up per request (about as much as the round
trip itself). Instead, the reader that starts a call tells the watcher; a call
still running after a short grace period gets its socket watched with the OS's
readiness API (epoll, kqueue) by one thread per server, which promotes a follower
only when bytes arrive while the call runs (or, for an "eager" watch, when the
session already holds more requests, at once). Most calls end within the grace
period: they cost a dictionary entry, no system call and no wake-up. A request
sent behind a slow call waits at most about two grace periods for its reader.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable

__all__ = ["ReadWatcher"]

log = logging.getLogger("jsonrpc_mini")

_POLL = 0.5
_GRACE = 0.002  # a call running longer than this gets its socket watched
_LINGER = 0.1  # keep ticking this long after the last call, so the next needs no wake-up

# Only these see a registration made while another thread is already waiting; the
# poll/select based ones copy the set of descriptors when the wait starts.
_LIVE_NAMES = ("EpollSelector", "KqueueSelector", "DevpollSelector")
_LIVE_SELECTORS = tuple(getattr(selectors, name) for name in _LIVE_NAMES if hasattr(selectors, name))
_AVAILABLE = isinstance(selectors.DefaultSelector, type) and issubclass(selectors.DefaultSelector, _LIVE_SELECTORS)

Callback = Callable[[], None]


class _Loop:
    """One selector and the thread waiting on it (replaced whole when restarted)."""

    def __init__(self, lock: threading.Lock) -> None:
        self.lock = lock
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.selector.register(self.wake_r, selectors.EVENT_READ, None)
        # Calls running, not watched yet: fd -> (callback, started, eager). Watched
        # sockets: fd -> callback (checked on every call: cheaper than asking the selector).
        self.running: dict[int, tuple[Callback, float, bool]] = {}
        self.watched: dict[int, Callback] = {}
        self.ticking_until = 0.0
        self.asleep = False  # in a long wait: a new call must wake the thread
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="jsonrpc_mini-watch", daemon=True)

    def _timeout(self, now: float) -> float:
        if self.running:
            oldest = min(started for _, started, _ in self.running.values())
            return max(0.0, oldest + _GRACE - now)
        return _GRACE if now < self.ticking_until else _POLL

    def _run(self) -> None:
        # The owner's lock guards the maps; select() itself runs without it.
        try:
            while not self.stopping:
                with self.lock:
                    timeout = self._timeout(time.monotonic())
                    self.asleep = timeout >= _POLL
                ready = self.selector.select(timeout)
                callbacks: list[Callback] = []
                with self.lock:
                    self.asleep = False
                    for key, _ in ready:
                        if key.data is None:
                            with contextlib.suppress(OSError):
                                self.wake_r.recv(4096)
                            continue
                        # One shot: the session tells us again for its next call.
                        callback = self.watched.get(key.fd)
                        if callback is not None and callback is key.data:
                            del self.watched[key.fd]
                            self.selector.unregister(key.fd)
                            callbacks.append(callback)
                    self._watch_slow_calls(time.monotonic(), callbacks)
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

    def _watch_slow_calls(self, now: float, callbacks: list[Callback]) -> None:
        for fd, (callback, started, eager) in list(self.running.items()):
            if now - started < _GRACE:
                continue
            del self.running[fd]
            if eager:  # requests are waiting in the session's buffer: promote now
                callbacks.append(callback)
                continue
            try:
                self.selector.register(fd, selectors.EVENT_READ, callback)
            except (KeyError, ValueError, OSError):
                callbacks.append(callback)  # cannot watch it: let the session promote now
            else:
                self.watched[fd] = callback


class ReadWatcher:
    """Promote a reader when bytes arrive during a call (one thread per server, started on demand)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: _Loop | None = None
        self._stopped: threading.Thread | None = None  # the thread of the loop stopped last

    @staticmethod
    def available() -> bool:
        """Whether this platform's selector can watch sockets registered on the fly."""
        return _AVAILABLE

    def watch(self, fd: int, callback: Callback, *, eager: bool = False) -> bool:
        """A call starts: ``callback`` runs (in the watcher thread) if ``fd`` gets readable meanwhile.

        With ``eager`` it runs once the call has taken the grace period, readable or
        not: the session already holds more requests. Returns False if ``fd`` cannot
        be watched (the caller then promotes at once).
        """
        with self._lock:
            loop = self._loop
            if loop is None or loop.stopping:
                loop = self._loop = _Loop(self._lock)
                loop.thread.start()
            if fd in loop.running or fd in loop.watched:  # e.g. a stale entry of a reused fd
                return False
            now = time.monotonic()
            loop.running[fd] = (callback, now, eager)
            loop.ticking_until = now + _LINGER
            asleep = loop.asleep
            loop.asleep = False
        if asleep:
            with contextlib.suppress(OSError):
                loop.wake_w.send(b"x")
        return True

    def unwatch(self, fd: int, callback: Callback) -> None:
        """The call ended: forget ``fd`` if it is still there with ``callback`` (and has not fired)."""
        with self._lock:
            loop = self._loop
            if loop is None or loop.stopping:
                return
            entry = loop.running.get(fd)
            if entry is not None and entry[0] is callback:
                del loop.running[fd]  # the usual case: no system call
            elif loop.watched.get(fd) is callback:
                del loop.watched[fd]
                loop.selector.unregister(fd)

    def stop(self, *, only_if_unused: bool = False, join: float | None = None) -> None:
        """End the thread (it starts again on the next ``watch``); ``only_if_unused``: only if nothing is watched."""
        with self._lock:
            loop = self._loop
            if loop is None or loop.stopping or (only_if_unused and (loop.watched or loop.running)):
                loop = None
            else:
                loop.stopping = True
                self._loop = None
                self._stopped = loop.thread
            # Joined even if an earlier stop() ended it: that one may not have waited.
            thread = self._stopped
        if loop is not None:
            with contextlib.suppress(OSError):
                loop.wake_w.send(b"x")
        if join is not None and thread is not None and thread is not threading.current_thread():
            thread.join(join)
