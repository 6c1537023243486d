"""A notification sent from a signal handler while its thread is inside a call on the same client (review14 F9).

README: "A call made from a signal handler while its thread is inside a call on the
same client never waits for ever: ... a notification is sent". A handler runs
between any two bytecodes of the thread it interrupts, inside a round of the
client's lock, between a send and the release of the send lock, or (TLS) inside
an SSL call. Before: the notification waited for the lock its own thread held (a
hang), or closed the connection and freed the send lock under the outer call
(RuntimeError "cannot release un-acquired lock" out of it), or used the SSL object
inside one of its calls ("Invalid error code", the connection lost).

The deterministic cases run the "handler" at such a point on the calling thread;
the last ones send notifications from a real SIGALRM every millisecond while the
main thread makes calls, and count what the server received.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import pytest
from _driver_helpers import WAIT, LeakCheck, serving, tls_contexts, wait_for
from _signal_helpers import bounded

from jsonrpc_mini import ConnectionLost, RPCClient, RPCError, RPCServer, SocketTransport
from jsonrpc_mini._transport import RECV_SIZE

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


class _Server:
    """big(n) returns n bytes; size(s) its length; note(x) records x (a notification); ping() answers."""

    def __init__(self) -> None:
        self.server = RPCServer()
        self.notes: list[Any] = []
        self.server.register_function(lambda n: "r" * n, name="big")
        self.server.register_function(self.notes.append, name="note")
        self.server.register_function(lambda: "pong", name="ping")
        self.server.register_function(len, name="size")
        self.release = threading.Event()
        self.server.register_function(self._hold, name="hold")
        self.server.register_function(self._notes_seen, name="notes_seen")

    def _notes_seen(self) -> int:
        """How many notifications arrived, once one has (at most WAIT seconds later)."""
        for _ in range(int(WAIT / 0.01)):
            if self.notes:
                break
            threading.Event().wait(0.01)
        return len(self.notes)

    def _hold(self) -> str:
        """Answers once the test sets ``release`` (at most WAIT seconds later)."""
        return "released" if self.release.wait(WAIT) else "not released"


class _Handler:
    """Runs ``handler`` once, when armed, on the thread that armed it; records its outcome."""

    def __init__(self) -> None:
        self.handler: Callable[[], Any] | None = None
        self.thread: threading.Thread | None = None
        self.outcome: Any = "not run"

    def arm(self, handler: Callable[[], Any]) -> None:
        self.thread = threading.current_thread()
        self.handler = handler

    def run(self) -> None:
        handler = self.handler
        if handler is not None and threading.current_thread() is self.thread:
            self.handler = None
            try:
                self.outcome = handler()
            except Exception as exc:  # recorded for the test
                self.outcome = exc


class _HandlerInLock:
    """The link's lock; the ``skip``-th round taken by the armed thread after arming runs the handler inside it.

    A round that cannot take the lock within WAIT raises: a thread waiting for itself.
    """

    def __init__(self, inner: Any, handler: _Handler, skip: int) -> None:
        self.inner = inner
        self.handler = handler
        self.skip = skip

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if blocking and timeout == -1:
            timeout = WAIT
        return bool(self.inner.acquire(blocking, timeout))

    def release(self) -> None:
        self.inner.release()

    def _is_owned(self) -> bool:
        return bool(self.inner._is_owned())

    def __enter__(self) -> bool:
        if not self.inner.acquire(True, WAIT):
            raise AssertionError("the thread waits for the lock it holds itself")
        if self.handler.handler is not None and threading.current_thread() is self.handler.thread:
            if self.skip == 0:
                self.handler.run()
            self.skip -= 1
        return True

    def __exit__(self, *exc: object) -> None:
        self.inner.release()


class _HandlerAfterSend:
    """A transport whose sends run the armed handler once the bytes are out (before the send returns).

    ``middle``: once half of them are (as a signal landing inside a blocked sendall).
    """

    def __init__(self, inner: SocketTransport, handler: _Handler, middle: bool = False) -> None:
        self.inner = inner
        self.handler = handler
        self.middle = middle

    def send(self, data: bytes) -> None:
        if self.middle and self.handler.handler is not None:
            half = len(data) // 2
            self.inner.send(data[:half])
            self.handler.run()
            self.inner.send(data[half:])
            return
        self.inner.send(data)
        self.handler.run()

    def recv(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.recv(max_bytes, timeout)

    def close(self) -> None:
        self.inner.close()


def _client(address: Any, handler: _Handler | None = None, middle: bool = False) -> RPCClient:
    sock = socket.create_connection(address, timeout=WAIT)
    sock.settimeout(None)
    inner = SocketTransport(sock)
    transport = inner if handler is None else _HandlerAfterSend(inner, handler, middle)
    # No timeout: a call that waits does so for ever (bounded here by bounded()).
    return RPCClient(transport=transport, timeout=None)


@contextlib.contextmanager
def _connected(handler: _Handler | None = None, middle: bool = False) -> Iterator[tuple[_Server, RPCClient]]:
    """A ``_Server`` served on loopback and a ``_client`` of it (closed afterwards)."""
    srv = _Server()
    with serving(srv.server) as address:
        c = _client(address, handler, middle)
        try:
            yield srv, c
        finally:
            c.close()


@contextlib.contextmanager
def _connected_directly(tls: bool = True) -> Iterator[tuple[_Server, RPCClient]]:
    """A ``_Server`` and an RPCClient of its own making (no timeout), over TLS unless ``tls`` is False."""
    server_ctx, client_ctx = tls_contexts() if tls else (None, None)
    srv = _Server()
    with serving(srv.server, ssl=server_ctx) as address:
        c = RPCClient(*address, ssl=client_ctx, timeout=None)
        try:
            yield srv, c
        finally:
            c.close()


def _rounds_of_a_call(c: RPCClient, size: int | None = None) -> int:
    """How many rounds of the link's lock one lone call takes: ping(), or big(size)."""
    link = c._link
    assert link is not None
    handler = _Handler()
    counter = _HandlerInLock(link.lock, handler, 10**6)
    link.lock = counter  # type: ignore[assignment]
    try:
        handler.arm(lambda: None)
        if size is None:
            assert c.ping() == "pong"
        else:
            assert c.big(size) == "r" * size
        return 10**6 - counter.skip
    finally:
        link.lock = counter.inner
        handler.handler = None


def _big_with_handler_in_lock(c: RPCClient, run: Callable[[], Any], size: int = 10, skip: int = 0) -> _Handler:
    """``c.big(size)`` (bounded), with ``run`` as the "handler" inside the ``skip``-th round of the link's lock.

    Checks the outer call's result, puts the lock back, and returns the handler (for its outcome).
    """
    link = c._link
    assert link is not None
    handler = _Handler()
    lock = _HandlerInLock(link.lock, handler, skip)
    link.lock = lock  # type: ignore[assignment]
    try:

        def outer() -> Any:
            handler.arm(run)
            return c.big(size)

        assert bounded(outer, c) == "r" * size, (skip, run)
    finally:
        link.lock = lock.inner
    return handler


def _idle(c: RPCClient) -> None:
    link = c._link
    assert link is not None and link.lost is None
    assert not link.pending and not link.reading and not link.sending and not link.deferred
    assert not link.send_lock._is_owned() and not link.lock._is_owned()


def test_a_notification_made_inside_any_round_of_the_lock_is_sent() -> None:
    with _connected() as (srv, c):
        rounds = _rounds_of_a_call(c)
        assert rounds == 1  # (registering the call; its reply is handed over without one: _Link._wake_follower)
        for skip in range(rounds):
            handler = _big_with_handler_in_lock(c, lambda skip=skip: c.notify("note", skip), skip=skip)
            assert handler.outcome is None, (skip, handler.outcome)
            _idle(c)
        assert c.ping() == "pong"
        wait_for(lambda: len(srv.notes) == rounds, "the notifications")
        assert sorted(srv.notes) == list(range(rounds))


@pytest.mark.parametrize("size", [10, 3 * RECV_SIZE], ids=["reply-in-one-read", "reply-in-several-reads"])
def test_a_call_made_inside_a_round_of_the_lock_never_waits_and_the_outer_call_goes_on(size: int) -> None:
    # Refused, as while the thread waits for a reply; only a lone call made while the
    # connection is idle (nothing pending, nobody reading or sending) is served, since
    # it waits for nothing but its own reply. A reply taken in one read is handed over
    # without a round (_Link._wake_follower): the call's one round registers it, on an
    # idle connection. One read in several takes rounds while the connection is in use.
    with _connected() as (srv, c):
        rounds = _rounds_of_a_call(c, size)
        served = 0
        for skip in range(rounds):
            for kind in ("call", "batch"):

                def call(kind: str = kind) -> Any:
                    if kind == "call":
                        return c.ping()
                    with c.batch() as b:
                        b.ping()
                    return None

                exc = _big_with_handler_in_lock(c, call, size, skip).outcome
                if kind == "call" and exc == "pong":
                    served += 1
                    continue
                assert type(exc) is RPCError, (skip, kind, exc)
                assert exc.code is None
                assert "refused: this thread is " in str(exc)  # (inside a call, or waiting for a reply)
                assert "nothing was sent" in str(exc)
                _idle(c)
        if size == 10:
            assert served == rounds == 1
        else:
            assert 1 == served < rounds  # (the hang: a round where the connection is in use)
        assert c.ping() == "pong"
        assert srv.notes == []


def test_a_notification_made_inside_a_round_of_the_lock_while_another_thread_sends_does_not_wait() -> None:
    # The send lock's holder needs the lock before it lets the send lock go (as send
    # does to mark a notification): a notification waiting for the send lock inside a
    # round of the lock waited for ever. It is left to that holder, which writes it
    # as it lets the send lock go (the holder here does what send does then).
    with _connected() as (srv, c):
        link = c._link
        assert link is not None
        taken = threading.Event()
        go = threading.Event()

        def hold() -> None:
            link.send_lock.acquire()
            try:
                taken.set()
                go.wait(WAIT)
                with link.lock:
                    pass
            finally:
                link.send_lock.release()
            link._flush_deferred()

        holder = threading.Thread(target=hold, daemon=True)
        holder.start()
        assert taken.wait(WAIT)

        def notify() -> None:
            c.notify("note", "while another thread sends")
            go.set()

        try:
            handler = _big_with_handler_in_lock(c, notify)
        finally:
            go.set()
        holder.join(WAIT)
        assert handler.outcome is None, handler.outcome
        wait_for(lambda: srv.notes == ["while another thread sends"], "the notification")
        _idle(c)


def test_a_call_made_inside_a_round_of_the_lock_while_another_thread_reads_is_refused() -> None:
    # Another thread holds the reader's turn: the handler's call, let in, would wait
    # for its reply, which that reader cannot hand over while this thread holds the
    # lock (it polls for ever).
    with _connected() as (srv, c):
        link = c._link
        assert link is not None
        held: list[Any] = []
        reader = threading.Thread(target=lambda: held.append(c.hold()), daemon=True)
        reader.start()
        wait_for(lambda: link.reading == reader.ident, "the other thread's read")
        try:
            handler = _big_with_handler_in_lock(c, c.ping)
        finally:
            srv.release.set()
        reader.join(WAIT)
        assert held == ["released"]
        exc = handler.outcome
        assert type(exc) is RPCError and exc.code is None, repr(exc)
        assert str(exc).startswith("ping: refused: this thread is inside a call on this connection")
        assert "nothing was sent" in str(exc)
        _idle(c)


@pytest.mark.parametrize("middle", [False, True], ids=["after", "middle"])
@pytest.mark.parametrize("size", [10, 100_000])
def test_a_notification_made_between_a_send_and_the_send_locks_release_is_sent(size: int, middle: bool) -> None:
    # The usual call (10) and the general way (a large request): the handler runs once
    # the request is out, the send lock still held (or half way through it: the
    # notification must wait for its end). Before: ConnectionLost in the handler, and
    # RuntimeError "cannot release un-acquired lock" out of the outer call.
    handler = _Handler()
    with _connected(handler, middle) as (srv, c):
        assert c.ping() == "pong"

        def outer() -> Any:
            handler.arm(lambda: c.notify("note", "after the send"))
            return c.size("x" * size)

        assert bounded(outer, c) == size
        assert handler.outcome is None, handler.outcome
        assert c.big(3) == "rrr"
        wait_for(lambda: srv.notes == ["after the send"], "the notification")
        _idle(c)


def test_a_notification_left_behind_a_send_past_its_timeout_is_dropped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # README (Client, Notifications): a notification made while a message is being
    # written goes right after it, "dropped ... with a warning logged, if the client's
    # timeout passes first". Here the handler outlives the notification's 0.05 s
    # before the outer call lets the send lock go.
    handler = _Handler()
    with _connected(handler) as (srv, c):
        assert c.ping() == "pong"

        def late_notification() -> None:
            c.with_timeout(0.05).notify("note", "too late")
            threading.Event().wait(0.2)  # (the rest of the handler: the 0.05 s pass)

        def outer() -> Any:
            handler.arm(late_notification)
            return c.size("x" * 10)

        with caplog.at_level(logging.WARNING, logger="jsonrpc_mini"):
            assert bounded(outer, c) == 10
        assert handler.outcome is None, handler.outcome
        assert "dropping notification note: could not send it within 0.05 s" in caplog.text
        c.notify("note", "in time")  # sent after where the dropped one would have been
        wait_for(lambda: "in time" in srv.notes, "the later notification")
        assert srv.notes == ["in time"]
        _idle(c)


@pytest.mark.parametrize("size", [10, 100_000])
def test_a_call_made_between_a_send_and_the_send_locks_release_never_waits(size: int) -> None:
    # The usual call's thread holds the reader's turn as it sends: a call is refused
    # (README) and the outer call goes on. A large request's thread holds only the
    # send lock: a call closes the connection (it cannot go out inside another send),
    # and the outer call ends with ConnectionLost, not a RuntimeError from releasing
    # a send lock the handler's call freed.
    handler = _Handler()
    with _connected(handler) as (_, c):
        assert c.ping() == "pong"

        def outer() -> Any:
            handler.arm(c.ping)
            return c.size("x" * size)

        outcome = bounded(outer, c)
        link = c._link
        assert link is not None and not link.send_lock._is_owned()
        if size == 10:
            assert outcome == size
            assert type(handler.outcome) is RPCError and "refused" in str(handler.outcome)
            _idle(c)
        else:
            assert type(outcome) is ConnectionLost, repr(outcome)
            assert type(handler.outcome) is ConnectionLost, repr(handler.outcome)


class _CheckedSsl:
    """An SSL object that fails if it is used inside one of its own calls, as OpenSSL's state would break.

    Its first read that gives plain text (``when`` "data") or finds none yet ("want")
    runs the armed handler after the real read, as Python's ssl module runs signal
    handlers there (before it looks at the outcome).
    """

    def __init__(self, inner: ssl.SSLObject, handler: _Handler, when: str) -> None:
        self.inner = inner
        self.handler = handler
        self.when = when
        self.inside = False

    def _enter(self) -> None:
        if self.inside:
            raise AssertionError("the SSL object was used inside one of its calls")
        self.inside = True

    def read(self, *args: Any) -> Any:
        self._enter()
        try:
            try:
                result = self.inner.read(*args)
            except ssl.SSLWantReadError:
                if self.when == "want":
                    self.handler.run()
                raise
            if self.when == "data":
                self.handler.run()
            return result
        finally:
            self.inside = False

    def write(self, data: Any) -> int:
        self._enter()
        try:
            return self.inner.write(data)
        finally:
            self.inside = False


@pytest.mark.parametrize("when", ["data", "want"])
def test_over_tls_a_notification_made_inside_an_ssl_read_is_sent_after_it(when: str) -> None:
    with _connected_directly() as (srv, c):
        assert c.ping() == "pong"
        link = c._link
        assert link is not None
        transport: Any = link.transport
        handler = _Handler()
        transport._tls = _CheckedSsl(transport._tls, handler, when)

        def outer() -> Any:
            handler.arm(lambda: c.notify("note", "inside the read"))
            # "want": the reply waits for the notification, so the first read finds
            # no plain text; "data": one read gives the whole reply.
            return c.notes_seen() if when == "want" else c.big(10)

        assert bounded(outer, c) == (1 if when == "want" else "r" * 10)
        assert handler.outcome is None, handler.outcome
        assert transport._kept == []  # sent as the read let the SSL object go, not by a later send
        wait_for(lambda: srv.notes == ["inside the read"], "the notification")
        assert c.ping() == "pong"
        _idle(c)


def test_a_tls_send_made_while_its_thread_holds_the_send_lock_is_sent_after_it_lets_go() -> None:
    # The client's reader holds the TLS send lock while it sends what the SSL object
    # made as it read (post-handshake messages); a signal handler's send then waited
    # for its own thread. Now it is kept and sent, in order, once the lock is let go.
    with _connected_directly() as (srv, c):
        link = c._link
        assert link is not None
        transport: Any = link.transport
        note = b'{"jsonrpc": "2.0", "method": "note", "params": ["kept"]}\n'

        def held() -> None:
            with transport._send_lock:
                transport.send(note)  # (a handler's, inside the holder's own send)
                assert transport._kept == [note]
            transport._send_kept()  # (what _flush does once it lets the lock go)

        assert bounded(held, c) is None
        assert c.ping() == "pong"
        wait_for(lambda: srv.notes == ["kept"], "the kept notification")


class _NestedInSocketSend:
    """A socket whose first send (of the armed size or more) runs ``nested`` first, inside the transport's send."""

    def __init__(self, inner: socket.socket, nested: Callable[[], None]) -> None:
        self._inner = inner
        self._nested: Callable[[], None] | None = nested

    def _run(self) -> None:
        nested, self._nested = self._nested, None
        if nested is not None:
            nested()

    def send(self, data: Any, *flags: int) -> int:
        self._run()
        return self._inner.send(data, *flags)

    def sendall(self, data: Any, *flags: int) -> None:
        self._run()
        self._inner.sendall(data, *flags)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_a_tls_send_made_inside_another_goes_out_after_the_whole_message() -> None:
    # A send made while this thread's own send of a large message (several chunks of
    # plain text) is on the socket: its plain text waits for that message's end, else
    # it lands inside it. (The client's nested notifications wait before they get
    # here; this is the transport's own rule.)
    with _connected_directly() as (srv, c):
        link = c._link
        assert link is not None
        transport: Any = link.transport
        note = b'{"jsonrpc": "2.0", "method": "note", "params": ["nested"]}\n'
        transport.sock = _NestedInSocketSend(transport.sock, lambda: transport.send(note))
        assert bounded(lambda: c.size("x" * 600_000), c) == 600_000
        assert transport._kept == []
        wait_for(lambda: srv.notes == ["nested"], "the nested send")
        assert c.ping() == "pong"


# -- real signals ----------------------------------------------------------------------


def _signals_here() -> None:
    if not hasattr(signal, "setitimer"):
        pytest.skip("needs signal.setitimer (POSIX)")
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers run on the main thread only")


@pytest.mark.parametrize("mode", ["plain", "tls"])
def test_notifications_from_a_signal_handler_every_millisecond_during_calls(mode: str) -> None:
    # f_tls_signal_notify.py's pattern, bounded: before, RuntimeError out of a call
    # within the first few, then a hang (the thread waiting for itself).
    _signals_here()
    with _connected_directly(tls=mode == "tls") as (srv, c):
        sent = [0]
        busy = [False]

        def on_alarm(signum: int, frame: FrameType | None) -> None:
            if busy[0]:
                return  # (no nested handlers: the timer may fire inside one)
            busy[0] = True
            try:
                c.notify("note", sent[0])
                sent[0] += 1
            finally:
                busy[0] = False

        previous = signal.signal(signal.SIGALRM, on_alarm)
        try:
            signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
            try:
                results = [c.big(100_000) for _ in range(300)]
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            assert all(result == "r" * 100_000 for result in results)
            assert sent[0] > 0  # (the timer fired during the calls)
            assert c.ping() == "pong"
            wait_for(lambda: len(srv.notes) == sent[0], "the handler's notifications")
            assert sorted(srv.notes) == list(range(sent[0]))
            _idle(c)
        finally:
            signal.signal(signal.SIGALRM, previous)
