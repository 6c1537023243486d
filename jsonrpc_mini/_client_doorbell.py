"""How a sync caller waiting for another thread to read is woken: its thread's doorbell.

A caller that waits while another thread reads its reply (a follower, see
``_client_reader``) sleeps on a signal, and the reader rings it once the reply is
stored (or the reading turn is free). ``signal_for_wait`` gives the signal to
sleep on: on Linux the calling thread's ``Doorbell``, an eventfd made on the
thread's first wait as a follower (on any connection) and kept in a
``threading.local`` for all its later waits, on every connection; elsewhere (and
for a wait nested inside another, see below) a plain lock, held until it is
signalled. So the doorbells hold one descriptor per live thread that has waited,
whatever the number of clients: it is closed when the thread ends (the thread's
``threading.local`` data goes with it) and nothing else refers to the doorbell.

Why an eventfd: its write (``os.eventfd_write``) runs without the GIL, a lock's
release with it. A woken thread needs the GIL at once, and the kernel often runs
it at once (on the waker's CPU it preempts the waker): woken by a lock's release,
it found the GIL still held by the waker, slept again, and was woken a second time
when the waker let the GIL go (a GIL convoy: each hand-off cost two or three
context switches, and more under load, where every switch can wait behind another
process). Rung by an eventfd write, it finds the GIL free and runs on. Measured
(8 threads sharing one client, server on another CPU, busy-loop processes beside
the client): ~1.0 voluntary and 0.02-0.5 involuntary context switches per call
(before: 1.4-3.6 and 0.1-2.4), as Pyro5 with a connection per thread.

A doorbell is the thread's, not the call's: a ring meant for an earlier wait of
the thread (a caller woken twice, or after it stopped waiting, on this connection
or another) can end a later wait early. Every wait is a loop that looks again at
the call's state, so such a wake-up costs a lap, never a lost wake-up: each wait
takes every ring made before it (the eventfd's counter is read whole). The
doorbell is ``busy`` from the lock round that hands it out (``signal_for_wait``,
under the connection's lock) until that wait has ended (``_ReplyReader._wait``
clears it with the waiter's ``signal``); a wait made meanwhile on the same thread
(a signal handler's call, run while its thread waits or is about to) gets a lock
of its own instead: it would take the outer wait's ring. An interruption anywhere
in between is caught by ``_ReplyReader.wait``, which lets the doorbell go too.
A doorbell's descriptor is closed once nothing refers to it any more: its thread
has ended and no waiter holds it (a waiter holds its signal only during its wait,
a waker while it rings), so no ring can reach a descriptor number closed and used
again. A forked child forgets the doorbell of the thread that forked: the
eventfd, inherited, would be shared with the parent's thread.
"""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Callable
from typing import Protocol

__all__ = ["Doorbell", "Signal", "Waits", "end_wait", "signal_for_wait"]


class Signal(Protocol):
    """What a waiting caller sleeps on: a threading.Lock held until signalled, or a ``Doorbell``."""

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool: ...
    def release(self) -> None: ...


class Waits(Protocol):
    """A waiting call (``_client_waiter._Waiter``): holds the signal its caller sleeps on."""

    signal: Signal | None


class Doorbell:
    """One thread's wake-up: an eventfd, rung by ``release`` (without the GIL), waited on by ``acquire``."""

    __slots__ = ("_fd", "_poll", "busy")

    def __init__(self) -> None:
        self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN)
        self.busy = False  # handed out to a wait not yet ended (see signal_for_wait)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Sleep until rung or ``timeout`` seconds pass (-1: no limit); take every ring made so far; True if rung.

        ``blocking`` False: do not sleep, as a Lock's (only look for a ring).
        """
        if not blocking:
            timeout = 0.0
        # (poll, not select: any descriptor number. In milliseconds, rounded up.)
        if not self._poll.poll(None if timeout < 0 else timeout * 1000.0):
            return False
        try:
            os.eventfd_read(self._fd)  # the counter, read whole and reset: every ring so far
        except BlockingIOError:  # (taken already: cannot happen with one thread waiting)
            return False
        return True

    def release(self) -> None:
        """Ring: end the current or the next wait. Never raises for a ring not yet taken (the rings add up)."""
        os.eventfd_write(self._fd, 1)

    def __del__(self, _close: Callable[[int], None] = os.close) -> None:
        # Only once nothing refers to it (see the module's docstring).
        fd = getattr(self, "_fd", None)  # (None if the eventfd could not be made)
        if fd is not None:
            _close(fd)


class _Mine(threading.local):
    """The calling thread's doorbell: None until its first wait as a follower."""

    bell: Doorbell | None = None


_DOORBELLS = hasattr(os, "eventfd") and hasattr(select, "poll")
_mine = _Mine()


def signal_for_wait(waiter: Waits) -> Signal:
    """Set and give the signal ``waiter``'s caller sleeps on next: its thread's doorbell, or a held lock.

    Called under the connection's lock, for each wait; the doorbell is made on the
    thread's first wait (an eventfd that cannot be made, e.g. out of descriptors,
    leaves a lock) and is marked busy: the wait's end lets it go
    (``_ReplyReader._wait``, or ``wait`` if interrupted). Meanwhile the thread's
    other waits get locks.
    """
    if _DOORBELLS:
        mine = _mine
        bell = mine.bell
        if bell is None:
            try:
                bell = mine.bell = Doorbell()
            except OSError:  # e.g. out of descriptors: a lock does the same, GIL convoy and all
                bell = None
        if bell is not None and not bell.busy:
            # The waiter first: however this is interrupted after that, the wait's
            # end (or its interruption's handling) finds the doorbell there to let go.
            waiter.signal = bell
            bell.busy = True
            return bell
    lock = threading.Lock()
    lock.acquire()
    waiter.signal = lock
    return lock


def end_wait(waiter: Waits) -> None:
    """``waiter``'s caller has stopped sleeping (woken, timed out or interrupted): let its signal go.

    The thread's doorbell is free for its next wait first, then the waiter drops it:
    a call's error (so its waiter, and in a traceback the waiting frame) may be kept
    for long, and must not keep its thread's doorbell (a descriptor) once the thread
    has ended. Idempotent: an interruption between the two steps is handled by
    calling it again (``_ReplyReader.wait``).
    """
    signal = waiter.signal
    if signal is not None:
        if type(signal) is Doorbell:
            signal.busy = False
        waiter.signal = None


def _forget_mine() -> None:
    """In a forked child: the forking thread's doorbell, inherited, is the parent's thread's too."""
    global _mine
    _mine = _Mine()  # (the old one's doorbell is closed once nothing refers to it)


if _DOORBELLS:
    os.register_at_fork(after_in_child=_forget_mine)
