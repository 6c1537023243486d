"""Wake a connection's threads only when bytes arrive while its reader runs a call.

The server's Leader/Followers rule says someone must be reading while a call runs,
so that a slow call never delays a fast one sent after it. Promoting a follower
for every request costs a thread wake-up per request (about as much as the round
trip itself). Instead, one thread per server watches for calls that run long:

- Each connection has a :class:`Probe`. The thread that starts a call with nobody
  left reading stamps it (``since``: when the call started), without a lock;
  whoever takes the reading turn, or ends the call keeping it, clears it. A quick
  call thus costs two attribute stores: no call into the watcher, no lock, no
  system call and no wake-up (registering every call with the watcher cost about
  a seventh of the server's time per request).
- The watcher polls the probes of active connections every grace period. A stamp
  older than the grace period gets its socket watched with the OS's readiness API
  (epoll, kqueue), and a follower is promoted only when bytes arrive while the
  call runs; an ``eager`` stamp (the session already holds more requests) is
  promoted at once. A request sent behind a slow call so waits at most about two
  grace periods (plus scheduling delays) for its reader; a test checks it is served.
- A probe is active (polled) from its connection's first call after a quiet
  spell until the watcher has seen no stamp on it for ``_LINGER``. The owner
  re-attaches it when it stamps an inactive probe. No stamp goes unseen, though
  the owner stamps without a lock: it stores ``since``, then reads ``active``; the
  watcher drops a probe by storing ``active = False``, then reading ``since`` (and
  keeps the probe if a stamp is there). Under the GIL one of the two sees the
  other's store, as with ``nudge`` below. (The watcher reads ``since`` without a
  lock: a stale read only makes it act a tick late or not at all on a call that
  already ended, and the session's callback checks under its lock whether anyone
  must be promoted.)

- When every active probe holds a stamp already acted on (the only calls running
  are long ones, their sockets watched or a reader promoted), nothing changes
  until bytes arrive or an owner stamps a new call. The watcher then stops
  polling every grace period: it sets each active probe's ``nudge`` and sleeps
  until bytes arrive or ``_POLL`` passes; an owner that stamps a nudged probe
  wakes it (``attach``). So a server whose handlers wait for minutes does not
  tick 500 times a second. A probe without a stamp (a connection between calls,
  e.g. a sequential client's) keeps the polling going until it is dropped: else
  every one of its requests would have to wake the watcher. (Setting ``nudge``
  and then re-reading ``since``, against the owner's storing ``since`` and then
  reading ``nudge``: one of the two sees the other's write.)

The price is a look at every active probe per grace period while calls start
(about 20 ns each in-process, 1,000 busy connections ~1 % of a core) instead of
two lock rounds and a dictionary entry per call.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable

__all__ = ["Probe", "ReadWatcher"]

log = logging.getLogger("jsonrpc_mini")

_POLL = 0.5
_GRACE = 0.002  # a call running longer than this gets its socket watched
_LINGER = 0.1  # keep polling a connection this long after its last stamp seen

# Only these see a registration made while another thread is already waiting; the
# poll/select based ones copy the set of descriptors when the wait starts.
_LIVE_NAMES = ("EpollSelector", "KqueueSelector", "DevpollSelector")
_LIVE_SELECTORS = tuple(getattr(selectors, name) for name in _LIVE_NAMES if hasattr(selectors, name))
_AVAILABLE = isinstance(selectors.DefaultSelector, type) and issubclass(selectors.DefaultSelector, _LIVE_SELECTORS)

Callback = Callable[[], None]


class Probe:
    """One connection's link to the watcher (see the module docstring for the rules).

    The owner sets ``eager`` and then ``since`` (``time.monotonic()``) when a call
    starts with nobody left reading, and sets ``since`` to None when a thread takes
    the reading turn; if ``active`` is False (read after storing ``since``), it calls
    :meth:`ReadWatcher.attach`. ``callback`` runs in the watcher's thread when a
    stamped call needs a reader.
    """

    __slots__ = (
        "_handled",
        "_quiet_since",
        "_registered",
        "active",
        "callback",
        "eager",
        "ended",
        "fd",
        "nudge",
        "since",
    )

    def __init__(self, fd: int, callback: Callback) -> None:
        self.fd = fd
        self.callback = callback
        self.since: float | None = None
        self.eager = False
        self.active = False
        self.nudge = False  # the watcher sleeps: a new stamp must wake it (attach)
        # Detached for good (its socket is closed or about to be): attach ignores it,
        # so a late stamp cannot have a reused descriptor number watched for it.
        self.ended = False
        # The watcher thread's own bookkeeping (under the watcher's lock):
        self._handled: float | None = None  # the stamp acted on (identity: each stamp is a new float)
        self._quiet_since = 0.0  # when the watcher last saw a stamp
        self._registered = False  # its fd is in the selector


class _Loop:
    """One selector and the thread waiting on it (replaced whole when restarted)."""

    def __init__(self, lock: threading.Lock) -> None:
        self.lock = lock
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.selector.register(self.wake_r, selectors.EVENT_READ, None)
        self.probes: set[Probe] = set()  # the active ones, polled every grace period
        self.registered: dict[int, Probe] = {}  # fd -> the probe whose socket is watched
        self.asleep = False  # in a long wait: an attach must wake the thread
        self.settled = False  # every stamp acted on: the probes are nudged, no polling
        self.next_sweep = 0.0  # when _poll next drops quiet probes
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="jsonrpc_mini-watch", daemon=True)

    def _run(self) -> None:
        # The owner's lock guards the probes and the selector; select() runs without it.
        try:
            callbacks: list[Callback] = []
            while not self.stopping:
                with self.lock:
                    timeout = self._poll(time.monotonic(), callbacks)
                    self.asleep = timeout >= _POLL or self.settled
                _wake_all(callbacks)
                ready = self.selector.select(timeout)
                with self.lock:
                    self.asleep = False
                    for key, _ in ready:
                        probe = key.data
                        if probe is None:
                            with contextlib.suppress(OSError):
                                self.wake_r.recv(4096)
                            continue
                        self.unregister(probe)  # one shot: a later stamp is watched anew
                        if probe.since is not None and probe.since is probe._handled:
                            callbacks.append(probe.callback)  # bytes arrived: the call still runs
                _wake_all(callbacks)
        except Exception:  # pragma: no cover - a bug here must not pass silently
            log.exception("the read watcher failed")
        finally:
            with self.lock:
                self.stopping = True
                self.selector.close()
                # As stop() does: no connection stays marked as polled by a thread that has ended.
                self.release_probes()
            self.wake_r.close()
            self.wake_w.close()

    def _poll(self, now: float, callbacks: list[Callback]) -> float:
        """Act on the stamps (the lock held); return how long to wait for the next look."""
        grace = _GRACE
        timeout = _POLL
        # Speed: every active probe is looked at once per grace period, so the usual
        # one (no stamp) costs a test or two; quiet ones are dropped on a sweep only
        # every _LINGER / 2 (a sweep iterates over a copy: it may remove probes).
        sweep = now >= self.next_sweep
        if sweep:
            self.next_sweep = now + _LINGER / 2
        settled = True  # every probe holds a stamp acted on
        for probe in list(self.probes) if sweep else self.probes:
            since = probe.since
            if since is None:
                settled = False
                if probe._registered:
                    self.unregister(probe)  # that call ended, or a thread reads now
                if sweep and now - probe._quiet_since >= _LINGER:
                    self._drop_if_quiet(probe)
                continue
            probe._quiet_since = now
            if probe._registered and since is not probe._handled:
                self.unregister(probe)  # another call's stamp: watched anew if it runs long
            if since is probe._handled:
                continue
            wait = since + grace - now
            if wait > 0:
                settled = False
                timeout = min(timeout, wait)
                continue
            probe._handled = since
            if probe.eager or not self.register(probe):
                callbacks.append(probe.callback)  # requests already wait, or it cannot be watched
        self.settled = bool(self.probes) and settled and self._nudge_owners()
        if self.probes and not self.settled:
            timeout = min(timeout, grace)  # look again for calls stamped meanwhile
        return timeout

    def release_probes(self) -> None:
        """Stop polling every probe (the watcher's lock held); each owner attaches it again, to a new loop."""
        for probe in self.probes:
            probe.active = False  # (a stamp made after this attaches it again)
        self.probes.clear()

    def _nudge_owners(self) -> bool:
        """Ask every active probe's owner to wake us on its next stamp; False if one stamped meanwhile."""
        for probe in self.probes:
            probe.nudge = True
        return all(probe.since is None or probe.since is probe._handled for probe in self.probes)

    def _drop_if_quiet(self, probe: Probe) -> None:
        # Inactive first, then the stamp looked at again: a call stamped meanwhile
        # (its owner stores since, then reads active) is either seen here, and the
        # probe kept, or finds the probe inactive and attaches it again (waiting for
        # the watcher's lock, held here).
        probe.active = False
        if probe.since is None:
            self.probes.discard(probe)
        else:
            probe.active = True

    def register(self, probe: Probe) -> bool:
        """Watch ``probe``'s socket for bytes; False if it cannot be watched."""
        stale = self.registered.get(probe.fd)
        if stale is not None:  # a closed socket's probe whose number was reused
            self.unregister(stale)
        try:
            self.selector.register(probe.fd, selectors.EVENT_READ, probe)
        except (KeyError, ValueError, OSError):
            return False
        self.registered[probe.fd] = probe
        probe._registered = True
        return True

    def unregister(self, probe: Probe) -> None:
        """Stop watching ``probe``'s socket (if it is watched)."""
        if not probe._registered:
            return
        probe._registered = False
        if self.registered.get(probe.fd) is probe:
            del self.registered[probe.fd]
            with contextlib.suppress(KeyError, ValueError, OSError):
                self.selector.unregister(probe.fd)


def _wake_all(callbacks: list[Callback]) -> None:
    """Run the owners' callbacks; one that fails (e.g. no thread could be started) stops no other."""
    for wake in callbacks:
        try:
            wake()
        except Exception:
            log.exception("the read watcher could not wake a reader")
    callbacks.clear()


class ReadWatcher:
    """Promote a reader when bytes arrive during a long call (one thread per server, started on demand)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: _Loop | None = None
        self._stopped: threading.Thread | None = None  # the thread of the loop stopped last
        self._single: dict[int, Probe] = {}  # fd -> probe made by watch()

    @staticmethod
    def available() -> bool:
        """Whether this platform's selector can watch sockets registered on the fly."""
        return _AVAILABLE

    def attach(self, probe: Probe) -> None:
        """Poll ``probe`` from now on (its owner stamped it while it was inactive); not once detached."""
        with self._lock:
            if probe.ended:
                return
            loop = self._loop
            if loop is None or loop.stopping:
                loop = self._loop = _Loop(self._lock)
                loop.thread.start()
            probe.active = True
            probe._quiet_since = time.monotonic()
            loop.probes.add(probe)
            asleep = loop.asleep
            loop.asleep = False
        if asleep:
            with contextlib.suppress(OSError):
                loop.wake_w.send(b"x")

    def detach(self, probe: Probe) -> None:
        """Forget ``probe`` for good (its socket is closing): no more polling, its socket no longer watched.

        Called before the socket is closed: once closed, its descriptor number can
        be reused by a new connection, which a stale registration would then watch
        (or, registered later, take over) on behalf of the dead one.
        """
        with self._lock:
            probe.ended = True
            probe.since = None
            probe.active = False
            loop = self._loop
            if loop is not None and not loop.stopping:
                loop.probes.discard(probe)
                loop.unregister(probe)

    def watch(self, fd: int, callback: Callback, *, eager: bool = False) -> bool:
        """One call starts on ``fd``: ``callback`` runs once if the call needs a reader.

        For a caller without a :class:`Probe` of its own: that is, if ``fd`` gets
        readable after the grace period (with ``eager``, once the grace period has
        passed). Returns False if ``fd`` is already watched this way.
        """
        with self._lock:
            if fd in self._single:
                return False
            probe = self._single[fd] = Probe(fd, callback)
        probe.eager = eager
        probe.since = time.monotonic()
        self.attach(probe)
        return True

    def unwatch(self, fd: int, callback: Callback) -> None:
        """The call :meth:`watch` announced ended: forget ``fd`` if it is still there with ``callback``."""
        with self._lock:
            probe = self._single.get(fd)
            if probe is None or probe.callback is not callback:
                return
            del self._single[fd]
        self.detach(probe)

    def stop(self, *, only_if_unused: bool = False, join: float | None = None) -> None:
        """End the thread (it starts again on the next ``attach``); ``only_if_unused``: only if no probe is active."""
        with self._lock:
            loop = self._loop
            if loop is None or loop.stopping or (only_if_unused and loop.probes):
                loop = None
            else:
                loop.stopping = True
                self._loop = None
                self._stopped = loop.thread
                self._single.clear()
                loop.release_probes()
            # Joined even if an earlier stop() ended it: that one may not have waited.
            thread = self._stopped
        if loop is not None:
            with contextlib.suppress(OSError):
                loop.wake_w.send(b"x")
        if join is not None and thread is not None and thread is not threading.current_thread():
            thread.join(join)
