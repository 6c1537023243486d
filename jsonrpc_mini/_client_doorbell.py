"""How a sync caller waiting for another thread to read is woken: its thread's doorbell.

A caller that waits while another thread reads its reply (a follower, see
``_client_reader``) sleeps on a signal, and the reader rings it once the reply is
stored (or the reading turn is the follower's). ``signal_for_wait`` gives the
signal to sleep on: on Linux the calling thread's ``Doorbell`` for the connection,
an eventfd made on the thread's first wait there and kept (in ``bells``) until the
connection is closed; elsewhere (and for a wait nested inside another, see below)
a plain lock, held until it is signalled.

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

A doorbell is the thread's, not the call's: a ring meant for an earlier call of
the thread (a caller woken twice, or after it stopped waiting) can end a later
wait early. Every wait is a loop that looks again at the call's state, so such a
wake-up costs a lap, never a lost wake-up: each wait takes every ring made before
it (the eventfd's counter is read whole). A wait made while the thread's doorbell
is in use (a signal handler's call, made while its thread sleeps on the doorbell)
gets a lock of its own instead: the inner wait would take the outer one's ring.
A doorbell's descriptor is closed once nothing refers to it any more: the
connection has forgotten it (closed) and no waiter holds it (a waiter holds its
signal only while its caller sleeps), so no ring can reach a descriptor number
closed and used again.
"""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Callable
from typing import Protocol

__all__ = ["Doorbell", "Signal", "signal_for_wait"]


class Signal(Protocol):
    """What a waiting caller sleeps on: a threading.Lock held until signalled, or a ``Doorbell``."""

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool: ...
    def release(self) -> None: ...


class Doorbell:
    """One thread's wake-up: an eventfd, rung by ``release`` (without the GIL), waited on by ``acquire``."""

    __slots__ = ("_fd", "_poll", "busy")

    def __init__(self) -> None:
        self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN)
        self.busy = False  # a wait is in progress (see signal_for_wait)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Sleep until rung or ``timeout`` seconds pass (-1: no limit); take every ring made so far; True if rung."""
        try:
            self.busy = True
            # (poll, not select: any descriptor number. In milliseconds, rounded up.)
            ready = self._poll.poll(None if timeout < 0 else timeout * 1000.0)
        finally:
            self.busy = False
        if not ready:
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


_DOORBELLS = hasattr(os, "eventfd") and hasattr(select, "poll")
# At most this many doorbells (descriptors) per connection; past it, those of threads
# that have ended are forgotten, and while it stays full a new thread waits on a lock.
_MOST_BELLS = 128


def signal_for_wait(bells: dict[int, Doorbell], me: int) -> Signal:
    """The signal thread ``me`` sleeps on for its next wait: its doorbell in ``bells`` (made if new), or a held lock.

    ``bells``: the connection's, by thread id (called under the connection's lock). A
    thread's doorbell is kept for the next wait while the connection lives, so
    many short-lived threads would leave many behind: at most ``_MOST_BELLS``.
    """
    if _DOORBELLS:
        bell = bells.get(me)
        if bell is None:
            if len(bells) >= _MOST_BELLS:
                _forget_ended(bells)
            if len(bells) < _MOST_BELLS:
                try:
                    bell = bells[me] = Doorbell()
                except OSError:  # e.g. out of descriptors: a lock does the same, GIL convoy and all
                    bell = None
        if bell is not None and not bell.busy:
            return bell
    lock = threading.Lock()
    lock.acquire()
    return lock


def _forget_ended(bells: dict[int, Doorbell]) -> None:
    """Drop the doorbells of threads that have ended.

    (A thread that ``threading`` does not list, started outside it and never
    registered, loses its doorbell too: harmless, its next wait makes another, and a
    caller asleep on the old one is woken through its waiter, which holds it.)
    """
    alive = {thread.ident for thread in threading.enumerate()}
    for ident in [ident for ident in bells if ident not in alive]:
        del bells[ident]
