"""A call made from a signal handler on a client its own thread is using never waits for ever (review8 F6).

A signal handler runs inside whatever the main thread was doing, on that thread.
If the thread was waiting for a reply (it holds the reader's turn), a call made
then could never have its reply read: it is refused at once, nothing is sent,
and the outer call goes on. If the thread was sending, the call is not left in
the outbox for that suspended send to write: it closes the connection, as a
large request made then does (f8ec250). A notification needs no reply: it is
sent, while the thread waits for a reply at once, while it sends right after
that send (test_client_signal_notify.py has more).

Each case runs the "handler" inside the transport's recv or send, on the calling
thread, as a signal handler landing there would; every client has no timeout,
so a call that waits does so for ever (bounded here by the thread join). "At
once" is shown by order, not by time: the server answers the outer call only
after the handler's call has returned, so that call waited for nothing the
outer call's reply frees; and the transport records what moved while it ran.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _driver_helpers import WAIT, LeakCheck, serving, wait_for
from _signal_helpers import bounded

from jsonrpc_mini import ConnectionLost, RPCClient, RPCError, RPCServer, SocketTransport

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


class _HandlerIn:
    """A transport that, once armed, runs ``handler`` inside its next recv (or send of ``min_size`` bytes or more).

    ``returned`` is set once the handler has returned (the server's ``slow`` waits
    for it); ``inside`` lists the sends and recvs made while it ran, ``sent`` every
    send's bytes, in order.
    """

    def __init__(self, inner: SocketTransport, where: str, min_size: int = 0) -> None:
        self.inner = inner
        self.where = where
        self.min_size = min_size
        self.handler: Callable[[], Any] | None = None
        self.outcome: Any = None
        self.running = False
        self.returned = threading.Event()
        self.inside: list[str] = []
        self.sent: list[bytes] = []

    def _run(self) -> None:
        handler, self.handler = self.handler, None
        if handler is not None:
            self.running = True
            try:
                self.outcome = handler()
            except Exception as exc:  # recorded for the test
                self.outcome = exc
            finally:
                self.running = False
                self.returned.set()

    def send(self, data: bytes) -> None:
        if self.where == "send" and len(data) >= self.min_size:
            self._run()
        if self.running:
            self.inside.append("send")
        self.sent.append(data)
        self.inner.send(data)

    def recv(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self.where == "recv":
            self._run()
        if self.running:
            self.inside.append("recv")
        return self.inner.recv(max_bytes, timeout)

    def close(self) -> None:
        self.inner.close()


class _Server:
    def __init__(self) -> None:
        self.server = RPCServer()
        self.seen: list[str] = []
        # ``slow`` answers once this is set (the handler has returned: see _connected).
        self.gate = threading.Event()
        self.server.register_function(self._slow, name="slow")
        self.server.register_function(self._ping, name="ping")
        self.server.register_function(self._note, name="note")
        self.server.register_function(len, name="size")

    def _slow(self) -> str:
        return "slept" if self.gate.wait(WAIT) else "the handler's call never returned"

    def _ping(self) -> str:
        self.seen.append("ping")
        return "pong"

    def _note(self, text: str) -> None:
        self.seen.append(text)


def _ran(srv: _Server, note: str) -> None:
    """Wait until the notification ``note`` has run on the server.

    Requests on one connection may run concurrently (API.md): the next call, made
    at once, could be run first, by another thread, if the notification's thread
    was descheduled a little longer than the watcher's grace (2 ms).
    """
    wait_for(lambda: note in srv.seen, f"the notification {note!r} to run")


def _client(address: Any, where: str, min_size: int = 0) -> tuple[RPCClient, _HandlerIn]:
    sock = socket.create_connection(address, timeout=WAIT)
    sock.settimeout(None)
    transport = _HandlerIn(SocketTransport(sock), where, min_size)
    return RPCClient(transport=transport, timeout=None), transport


@contextlib.contextmanager
def _connected(where: str, min_size: int = 0) -> Iterator[tuple[_Server, RPCClient, _HandlerIn]]:
    """A ``_Server`` served on loopback and a ``_client`` of it with its transport (closed afterwards).

    The server's ``slow`` answers only once the transport's handler has returned.
    """
    srv = _Server()
    with serving(srv.server) as address:
        c, transport = _client(address, where, min_size)
        srv.gate = transport.returned
        try:
            yield srv, c, transport
        finally:
            c.close()


def _refused(exc: Any, method: str | None) -> None:
    # A batch names no remote method: .method None, "batch: " in the text (README: .method).
    assert type(exc) is RPCError, repr(exc)
    assert exc.code is None and exc.method == method
    assert str(exc).startswith(f"{method or 'batch'}: refused: this thread is waiting for a reply on this connection")
    assert "nothing was sent" in str(exc)


@pytest.mark.parametrize("kind", ["small", "large", "batch"])
def test_a_call_made_while_its_thread_waits_for_a_reply_is_refused_at_once(kind: str) -> None:
    with _connected("recv") as (srv, c, transport):
        assert c.ping() == "pong"

        def handler() -> Any:
            if kind == "small":
                return c.ping()
            if kind == "large":
                return c.size("x" * (64 * 1024))
            with c.batch() as b:
                b.ping()
                b.ping()
            return None

        transport.handler = handler
        # The outer call goes on; its reply comes only after the handler's call returned.
        assert bounded(c.slow, c) == "slept"
        _refused(transport.outcome, {"small": "ping", "large": "size", "batch": None}[kind])
        assert transport.inside == []  # it neither sent nor read
        assert c.ping() == "pong"  # the connection stays usable
        assert srv.seen == ["ping", "ping"]  # nothing of the refused call reached the server
        link = c._link
        assert link is not None and not link.pending and not link.reading and not link.sending
        assert link.proto._batches == {}


@pytest.mark.parametrize("where", ["recv", "send"], ids=["waits-for-a-reply", "sends-a-large-request"])
def test_a_notification_made_while_its_thread_waits_for_a_reply_or_sends_a_large_request_is_sent(where: str) -> None:
    # While it sends: before review14 F9 it closed the connection, as a call does (below);
    # it needs no reply, so it waits for that send to end instead (the send lock's holder writes it).
    with _connected(where, min_size=100_000 if where == "send" else 0) as (srv, c, transport):
        c.ping()
        transport.handler = lambda: c.notify("note", "from the handler")
        if where == "recv":
            assert bounded(c.slow, c) == "slept"  # (answered only once the handler returned)
            assert transport.inside == ["send"]  # the send lock was free: written at once
        else:
            assert bounded(lambda: c.size("x" * 200_000), c) == 200_000
            # Not written inside the suspended send: by it, right after the large request.
            assert transport.inside == []
            assert [b'"note"' in data for data in transport.sent[-2:]] == [False, True]
            assert len(transport.sent[-2]) > 200_000
        assert transport.outcome is None
        _ran(srv, "from the handler")
        assert c.ping() == "pong"
        assert srv.seen == ["ping", "from the handler", "ping"]  # (size is not recorded)
        link = c._link
        assert link is not None and not link.deferred and not link.send_lock._is_owned()


def test_a_call_made_while_its_thread_sends_a_small_request_is_refused() -> None:
    # The lone caller's path: it holds the send lock and the reader's turn as it writes.
    with _connected("send", min_size=40) as (srv, c, transport):
        c.ping()
        transport.handler = c.ping
        assert bounded(c.slow, c) == "slept"
        _refused(transport.outcome, "ping")
        assert transport.inside == []
        assert c.ping() == "pong"
        assert srv.seen == ["ping", "ping"]


def _large_send_interrupted(c: RPCClient, transport: _HandlerIn, handler: Callable[[], Any]) -> ConnectionLost:
    """``handler`` run inside the send of a 200 kB request: the connection is closed under both calls.

    Returns the handler's ConnectionLost ("a send was interrupted ..."); the outer call's is checked.
    """
    c.ping()
    transport.handler = handler
    outer = bounded(lambda: c.size("x" * 200_000), c)
    exc = transport.outcome
    assert type(exc) is ConnectionLost, repr(exc)
    assert "a send was interrupted and left the connection in use" in str(exc)
    assert type(outer) is ConnectionLost, repr(outer)  # (the large request is not half sent)
    return exc


@pytest.mark.parametrize("kind", ["small", "batch"])
def test_a_call_made_while_its_thread_sends_a_large_request_closes_the_connection(kind: str) -> None:
    # The thread holds the send lock and has claimed the outbox: a small request was
    # left in the outbox for that very send to write, and waited for ever.
    with _connected("send", min_size=100_000) as (_, c, transport):

        def handler() -> Any:
            if kind == "small":
                return c.ping()
            with c.batch() as b:
                b.ping()
            return None

        exc = _large_send_interrupted(c, transport, handler)
        # It names the method, as other lost-connection errors do (a batch names none).
        assert exc.method == {"small": "ping", "batch": None}[kind]
        assert str(exc).startswith(f"{exc.method}: a send" if exc.method else "a send")
        assert transport.inside == []  # it closed the connection without a send or a read
        link = c._link
        assert link is not None and not link.pending and not link.outbox and not link.send_lock._is_owned()


class _HandlerInAcquire:
    """The send lock; a blocking acquire by ``thread`` first runs ``handler`` (a signal landing in the wait).

    ``nested`` is set when the handler's call itself waits for the lock.
    """

    def __init__(self, inner: Any, thread: threading.Thread, handler: Callable[[], Any]) -> None:
        self.inner = inner
        self.thread = thread
        self.handler: Callable[[], Any] | None = handler
        self.outcome: Any = None
        self.running = False
        self.nested = threading.Event()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if blocking and self.handler is not None and threading.current_thread() is self.thread:
            handler, self.handler = self.handler, None
            self.running = True
            try:
                self.outcome = handler()
            except Exception as exc:  # recorded for the test
                self.outcome = exc
            finally:
                self.running = False
        elif blocking and self.running:
            self.nested.set()
        return bool(self.inner.acquire(blocking, timeout))

    def release(self) -> None:
        self.inner.release()

    def _is_owned(self) -> bool:
        return bool(self.inner._is_owned())


def test_a_call_made_while_its_thread_waits_for_the_send_lock_it_claimed_is_served() -> None:
    # The thread has claimed the outbox (no timeout) and waits for the send lock,
    # which another thread holds: the small call was left in that thread's own
    # outbox, to be written once its wait ends: never. Now it waits for the lock too:
    # the holder lets the lock go only once it does (so the lock is still held then).
    holder_done = threading.Event()
    with _connected("none") as (srv, c, _):
        try:
            assert c.ping() == "pong"
            link = c._link
            assert link is not None
            taken = threading.Event()
            waits = threading.Event()  # the handler's call waits for the lock (the wrapper's nested)

            def hold() -> None:
                link.send_lock.acquire()
                taken.set()
                waits.wait(WAIT)
                link.send_lock.release()
                holder_done.set()

            holder = threading.Thread(target=hold, daemon=True)
            outer: list[Any] = []

            def main() -> Any:
                lock = _HandlerInAcquire(link.send_lock, threading.current_thread(), c.ping)
                lock.nested = waits
                link.send_lock = lock
                holder.start()
                assert taken.wait(WAIT)
                outer.append(lock)
                return c.size("x" * 100_000)

            assert bounded(main, c) == 100_000
            assert outer[0].outcome == "pong"  # served once the lock was free
            assert waits.is_set()  # (it was not free before)
            assert srv.seen == ["ping", "ping"]
            assert c.ping() == "pong"
        finally:
            holder_done.wait(WAIT)


def test_a_call_made_while_its_thread_sends_for_another_claimant_closes_the_connection() -> None:
    # The thread holds the send lock while another thread has claimed the outbox (it
    # waits for the lock this one holds): a small call left there waited for ever.
    # (The other claimant's mark is set by hand here: the state it leaves.)
    with _connected("send", min_size=100_000) as (_, c, transport):
        link = c._link
        assert link is not None
        other = threading.Thread(target=lambda: None)
        other.start()
        other.join()

        def handler() -> Any:
            mine, link.sending = link.sending, other.ident or 1
            try:
                return c.ping()
            finally:
                link.sending = mine

        _large_send_interrupted(c, transport, handler)
