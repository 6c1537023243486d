"""``Resources``: check that a test left no thread and no file descriptor behind."""

from __future__ import annotations

import os
import socket
import threading
import time

from .._client_doorbell import owners as _doorbell_owners

__all__ = ["Resources"]


def _open_fds() -> set[int] | None:
    try:
        listed = {int(name) for name in os.listdir("/proc/self/fd")}
    except OSError:  # no /proc (macOS, Windows): threads only
        return None
    # The listing's own directory handle is in it but closed by now: drop it.
    return {fd for fd in listed if os.path.lexists(f"/proc/self/fd/{fd}")}


def _address(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:  # (host, port, ...)
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    if isinstance(address, bytes):  # an abstract Unix name
        return repr(address)
    return str(address) or "unbound"


def _socket_detail(fd: int) -> str:
    """Which socket ``fd`` is (`` (TCP 127.0.0.1:40000 -> 127.0.0.1:5000)``), so a leak can be traced; "" if unknown."""
    try:
        sock = socket.socket(fileno=os.dup(fd))  # a duplicate: closing it leaves fd alone
    except OSError:  # not a socket after all, or no fd left to duplicate into
        return ""
    with sock:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            kind = {socket.SOCK_STREAM: "TCP", socket.SOCK_DGRAM: "UDP"}.get(sock.type, sock.type.name)
        else:
            kind = "Unix" if sock.family == getattr(socket, "AF_UNIX", None) else sock.family.name
            kind += "" if sock.type == socket.SOCK_STREAM else f" {sock.type.name}"
        try:
            local = _address(sock.getsockname())
        except OSError:
            return f" ({kind})"
        try:
            return f" ({kind} {local} -> {_address(sock.getpeername())})"
        except OSError:
            pass  # not connected
        if sock.getsockopt(socket.SOL_SOCKET, getattr(socket, "SO_ACCEPTCONN", 30)):
            return f" ({kind} listening on {local})"
        return f" ({kind} {local}, not connected)"


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
        """What is open now but was not at the snapshot (threads by name, fds by number).

        Not counted: the doorbell (an eventfd) of a thread that was running at the
        snapshot, which a client shared between threads gives a thread on its first
        wait for another's read, kept for the thread's life (a new thread is reported).
        """
        found = [f"thread {t.name}" for t in threading.enumerate() if t not in self.threads and t.is_alive()]
        now = _open_fds()
        if self.fds is not None and now is not None:
            running = {t.ident for t in self.threads if t.is_alive()}
            kept = {fd for fd, ident in list(_doorbell_owners.items()) if ident in running}
            for fd in sorted(now - self.fds - kept):
                try:
                    target = os.readlink(f"/proc/self/fd/{fd}")
                except OSError:
                    continue  # closed while we looked (e.g. the listdir handle itself)
                detail = _socket_detail(fd) if target.startswith("socket:") else ""
                found.append(f"fd {fd} -> {target}{detail}")
        return found

    def assert_no_leaks(self, timeout: float = 5.0) -> None:
        """Wait up to ``timeout`` seconds for new threads and fds to go; AssertionError if some stay."""
        __tracebackhide__ = True  # a verdict on the test: pytest shows the test, not this loop
        deadline = time.monotonic() + timeout
        while True:
            found = self.leaks()
            if not found or time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        if found:
            raise AssertionError("left behind: " + ", ".join(found))
