"""Ctrl-C in the lone caller's round of the client's lock, taken by acquire and release (not "with").

``_Link.request`` takes that round by hand for speed, so it frees the lock itself
when an exception cuts the round: only if the round took it (an acquire
interrupted while it waited took nothing, and releasing then would raise
RuntimeError over the KeyboardInterrupt, or free a round another frame holds).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from _driver_helpers import WAIT

from jsonrpc_mini import RPCClient, RPCServer

pytestmark = pytest.mark.timeout(60)


class _CutLock:
    """The link's lock; the first blocking acquire by ``victim`` raises KeyboardInterrupt.

    ``taken``: after it took the lock (a signal handler run as acquire returns), else
    before (one run while acquire waited for the lock: nothing taken).
    """

    def __init__(self, inner: Any, victim: threading.Thread, taken: bool) -> None:
        self.inner = inner
        self.victim = victim
        self.taken = taken
        self.cut = False

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        mine = blocking and threading.current_thread() is self.victim and not self.cut
        if mine and not self.taken:
            self.cut = True
            raise KeyboardInterrupt
        acquired = bool(self.inner.acquire(blocking, timeout))
        if mine and acquired:
            self.cut = True
            raise KeyboardInterrupt
        return acquired

    def release(self) -> None:
        self.inner.release()

    def _is_owned(self) -> bool:
        return bool(self.inner._is_owned())

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.inner.release()


def _other_thread_calls(c: RPCClient) -> Any:
    """``c.echo(3)`` made on another thread (the lock, left held by this one, would make it wait for ever)."""
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(c.echo(3)), daemon=True)
    thread.start()
    thread.join(WAIT)
    return results


@pytest.mark.parametrize("taken", [True, False], ids=["after-acquire", "inside-acquire"])
def test_an_interrupt_in_the_lone_callers_lock_round_leaves_the_lock_free(taken: bool) -> None:
    server = RPCServer()
    server.register_function(lambda x: x, name="echo")
    address = server.start("127.0.0.1", 0)
    try:
        with RPCClient(*address, timeout=WAIT) as c:
            link = c._link
            assert link is not None
            inner = link.lock
            lock = link.lock = _CutLock(inner, threading.current_thread(), taken)  # type: ignore[assignment]
            try:
                # Not RuntimeError ("cannot release un-acquired lock") for an acquire that took nothing.
                with pytest.raises(KeyboardInterrupt):
                    c.echo(1)
                assert lock.cut
                assert not inner._is_owned(), "the interrupted round kept the lock"
            finally:
                link.lock = inner
            assert not link.pending and not link.reading and not link.sending
            assert not link.send_lock._is_owned()
            assert link.lost is None  # nothing was written: the connection goes on
            assert _other_thread_calls(c) == [3]
            assert c.echo(2) == 2
    finally:
        server.shutdown()
