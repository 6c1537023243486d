"""``Resources``: check that a test left no thread and no file descriptor behind."""

from __future__ import annotations

import os
import threading
import time

__all__ = ["Resources"]


def _open_fds() -> set[int] | None:
    try:
        listed = {int(name) for name in os.listdir("/proc/self/fd")}
    except OSError:  # no /proc (macOS, Windows): threads only
        return None
    # The listing's own directory handle is in it but closed by now: drop it.
    return {fd for fd in listed if os.path.lexists(f"/proc/self/fd/{fd}")}


class Resources:
    """A snapshot of this process's threads and file descriptors, to compare later.

    Example::

        from jsonrpc_mini.testing import Resources
        before = Resources()
        with LoopbackServer(server) as srv:
            srv.client().add(1, 2)
        before.assert_no_leaks()   # waits (bounded) for threads to end, then checks
    """

    def __init__(self) -> None:
        self.threads = set(threading.enumerate())
        self.fds = _open_fds()

    def leaks(self) -> list[str]:
        """What is open now but was not at the snapshot (threads by name, fds by number)."""
        found = [f"thread {t.name}" for t in threading.enumerate() if t not in self.threads and t.is_alive()]
        now = _open_fds()
        if self.fds is not None and now is not None:
            for fd in sorted(now - self.fds):
                try:
                    target = os.readlink(f"/proc/self/fd/{fd}")
                except OSError:
                    continue  # closed while we looked (e.g. the listdir handle itself)
                found.append(f"fd {fd} -> {target}")
        return found

    def assert_no_leaks(self, timeout: float = 5.0) -> None:
        """Wait up to ``timeout`` seconds for new threads and fds to go; AssertionError if some stay."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.leaks()
            if not found or time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        if found:
            raise AssertionError("left behind: " + ", ".join(found))
