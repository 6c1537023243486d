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
doorbell is taken by a wait from the lock round that hands it out
(``signal_for_wait``, under the connection's lock) until that wait has ended
(``end_wait``): its ``holder``. A wait made meanwhile on the same thread (a
signal handler's call, run while its thread waits or is about to) gets a lock of
its own instead: it would take the outer wait's ring. Waits on locks in progress
are listed, outermost first (``_Mine.locks``). An interruption anywhere in
between is caught by ``_ReplyReader.wait``, which ends the wait too. (A second
interruption landing inside that handling can leave the doorbell taken, or a
wait listed: the thread's later waits then get locks, slower but correct. A
doorbell left taken and its holder refer to each other: once the thread has
ended, its eventfd is closed by the garbage collector's next cycle pass, not at
once.)

The outer wait cannot go on before the handler returns. So a wait made inside
it takes it off the followers a reader may hand its turn to (picked, it would
not come: the turn would wait for nobody, the handler's call with it, until
their next look), and wakes it as it ends, so that it looks again at once when
it goes on (the turn may be free then, its reply in). A reader may still hand
the outer wait the turn before that (the handler's call then finds it free and
takes it), or while the handler's call reads (the outer wait takes it when the
handler returns): a handler that goes on long after its call keeps that turn.

A doorbell's descriptor is closed once nothing refers to it any more: its thread
has ended and no waiter holds it (a waiter holds its signal only during its wait,
a waker while it rings; an exception raised while the thread sleeps on it does
not hold it in its traceback: see ``Doorbell.acquire``), so no ring can reach a
descriptor number closed and used again. A forked child forgets the doorbell and
the waits of the thread that forked: the eventfd, inherited, would be shared with
the parent's thread.
"""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Callable
from typing import Protocol

__all__ = ["Doorbell", "Signal", "Waits", "end_wait", "owners", "signal_for_wait"]


class Signal(Protocol):
    """What a waiting caller sleeps on: a threading.Lock held until signalled, or a ``Doorbell``."""

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool: ...
    def release(self) -> None: ...


class Waits(Protocol):
    """A waiting call (``_client_waiter._Waiter``): holds the signal its caller sleeps on."""

    signal: Signal | None
    waiting: bool  # its caller waits for another thread to read: a reader may hand it the turn

    def wake(self) -> None: ...


# Each open doorbell's descriptor -> the thread it belongs to (its ident): the test kit's
# leak check (testing.Resources) does not count those of threads running before it looked.
owners: dict[int, int] = {}


class Doorbell:
    """One thread's wake-up: an eventfd, rung by ``release`` (without the GIL), waited on by ``acquire``."""

    __slots__ = ("_fd", "_poll", "holder")

    def __init__(self) -> None:
        self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        owners[self._fd] = threading.get_ident()  # (made on its own thread's first wait)
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN)
        self.holder: Waits | None = None  # the wait it is handed out to, until it ends (see signal_for_wait)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Sleep until rung or ``timeout`` seconds pass (-1: no limit); take every ring made so far; True if rung.

        ``blocking`` False: do not sleep, as a Lock's (only look for a ring).
        """
        try:
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
        except BaseException:
            # E.g. KeyboardInterrupt, raised by a signal handler while the thread sleeps
            # here: the exception's traceback keeps this frame, for as long as the user
            # keeps the exception, and must not keep the doorbell (its thread's
            # eventfd) open after the thread has ended.
            del self
            raise

    def release(self) -> None:
        """Ring: end the current or the next wait. Never raises for a ring not yet taken (the rings add up)."""
        os.eventfd_write(self._fd, 1)

    def __del__(self, _close: Callable[[int], None] = os.close, _owners: dict[int, int] = owners) -> None:
        # Only once nothing refers to it (see the module's docstring).
        fd = getattr(self, "_fd", None)  # (None if the eventfd could not be made)
        if fd is not None:
            _owners.pop(fd, None)  # (before the number is free for another descriptor)
            _close(fd)


class _Mine(threading.local):
    """The calling thread's doorbell (None until its first wait as a follower) and its waits on locks."""

    bell: Doorbell | None = None

    def __init__(self) -> None:
        # Waits handed a lock and not yet ended, outermost first: each one made
        # inside the one before it (by a signal handler), the first inside the
        # doorbell's holder if there is one.
        self.locks: list[Waits] = []


_DOORBELLS = hasattr(os, "eventfd") and hasattr(select, "poll")
_mine = _Mine()


def signal_for_wait(waiter: Waits) -> Signal:
    """Set and give the signal ``waiter``'s caller sleeps on next: its thread's doorbell, or a held lock.

    Called under the connection's lock, for each wait; the doorbell is made on the
    thread's first wait (an eventfd that cannot be made, e.g. out of descriptors,
    leaves a lock) and is taken by the wait until it ends (``end_wait``).
    Meanwhile the thread's other waits get locks, and the wait they are made
    inside is no follower to hand the reading turn to (see the module's
    docstring; it is one again from its next lock round).
    """
    mine = _mine
    bell = None
    if _DOORBELLS:
        bell = mine.bell
        if bell is None:
            try:
                bell = mine.bell = Doorbell()
            except OSError:  # e.g. out of descriptors: a lock does the same, GIL convoy and all
                bell = None
        if bell is not None and bell.holder is None:
            # The waiter first: however this is interrupted after that, the wait's
            # end (or its interruption's handling) finds the doorbell there to let go.
            waiter.signal = bell
            bell.holder = waiter
            return bell
    locks = mine.locks
    outer = locks[-1] if locks else None if bell is None else bell.holder
    if outer is not None:
        # A single store, without the lock of the outer wait's connection (it may be
        # another's: taking that lock inside this one's would order two locks). Enough:
        # only the outer wait's own thread stores True there (in its lock round; it
        # cannot go on before the handler returns), readers handing the turn on read it
        # under their connection's lock, and each sees the store whole. After it, none
        # picks the outer wait. One that read it before picked it as if the signal had
        # come just after that pick, which no lock can prevent: the turn stays free and
        # the pick's wake-up is kept for the outer wait (its doorbell's count, or its
        # lock left released: this wait sleeps on a lock of its own), so it takes the
        # turn as soon as the handler returns; until then its connection's other
        # followers take it at their next look (_POLL). Nothing is lost
        # (tests/test_client_signal_follower.py: a handler's call on another client).
        outer.waiting = False
    lock = threading.Lock()
    lock.acquire()
    waiter.signal = lock  # (first, as above)
    locks.append(waiter)
    return lock


def end_wait(waiter: Waits) -> None:
    """``waiter``'s caller has stopped sleeping (woken, timed out or interrupted): let its signal go.

    The thread's doorbell is free for its next wait first (or the wait leaves the
    thread's list), then the waiter drops its signal: a call's error (so its
    waiter, and in a traceback the waiting frame) may be kept for long, and must
    not keep its thread's doorbell (a descriptor) once the thread has ended.
    Idempotent: an interruption between the two steps is handled by calling it
    again (``_ReplyReader.wait``). Called on the waiter's own thread. A wait made
    inside another wakes that one (see the module's docstring).
    """
    signal = waiter.signal
    if signal is not None:
        if type(signal) is Doorbell:
            signal.holder = None
            waiter.signal = None
            return
        mine = _mine
        locks = mine.locks
        if waiter in locks:
            # (The waits listed after it were made inside it: ended with it, if an
            # interruption cut their own end short.)
            del locks[locks.index(waiter) :]
        waiter.signal = None
        bell = mine.bell if _DOORBELLS else None
        outer = locks[-1] if locks else None if bell is None else bell.holder
        if outer is not None:  # made inside another: that one looks again when it goes on
            outer.wake()


def _forget_mine() -> None:
    """In a forked child: the forking thread's doorbell, inherited, is the parent's thread's too (and its waits)."""
    global _mine
    _mine = _Mine()  # (the old one's doorbell is closed once nothing refers to it)


if _DOORBELLS:
    os.register_at_fork(after_in_child=_forget_mine)
