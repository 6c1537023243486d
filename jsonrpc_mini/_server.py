"""The synchronous server: ``RPCServer``.

Registration (``register_function``, ``register``, ``register_instance``) is
independent of serving: one server object can listen with ``loop``/``start``, back
any number of in-memory connections from the test kit, and be started again after
``shutdown()``. The listening socket and its accept loop are in ``_listener``.
"""

from __future__ import annotations

import itertools
import ssl as _ssl
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import overload

from ._dispatch import Registry
from ._framing import FramingName
from ._json import DEFAULT_MAX_INT_DIGITS
from ._json_hook import Default, make_codec
from ._listen_checks import check_listen
from ._listener import Listener
from ._protocol import DEFAULT_MAX_DEPTH, DEFAULT_MAX_MESSAGE_SIZE
from ._refusal_log import RefusalLog
from ._refuse import TlsRefusals
from ._remote import LONGEST_WAIT, check_count, check_flag, is_count, is_seconds
from ._reprs import server_repr
from ._session import Session, current_session, serving
from ._transport import Setup, Transport
from ._unix import UnixPath, unix_path
from ._watch import ReadWatcher

__all__ = ["RPCServer", "ServerOptions"]

Address = tuple[str, int] | str

# How long shutdown() waits, once the grace is over, for the threads of the connections
# it closed to end: one allowance for all (a handler running past the grace holds it that long).
_CLOSE_ALLOWANCE = 1.0


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """The limits and switches of a server (see ``RPCServer`` for their meaning)."""

    debug: bool = False
    framing: FramingName = "auto"
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    max_depth: int = DEFAULT_MAX_DEPTH
    max_int_digits: int = DEFAULT_MAX_INT_DIGITS
    max_connections: int = 1024
    max_concurrent_calls: int = 32
    idle_timeout: float | None = 300.0
    read_timeout: float | None = 30.0
    handshake_timeout: float = 10.0
    shutdown_grace: float = 10.0
    backlog: int = 128
    unix_mode: int | None = None

    def __post_init__(self) -> None:
        check_flag("debug", self.debug)
        for name in (
            "max_message_size",
            "max_depth",
            "max_int_digits",
            "max_connections",
            "max_concurrent_calls",
            "backlog",
        ):
            check_count(name, getattr(self, name))
        for name in ("idle_timeout", "read_timeout", "handshake_timeout", "shutdown_grace"):
            value = getattr(self, name)
            optional = name in ("idle_timeout", "read_timeout")
            if value is None and optional:
                continue
            if name == "shutdown_grace":  # 0 is allowed: no grace, in-flight calls are cut at once
                if not (is_seconds(value) and value >= 0):
                    raise ValueError(f"shutdown_grace must be a number of seconds >= 0 (0: no grace), not {value!r}")
            elif not (is_seconds(value) and value > 0):
                raise ValueError(
                    f"{name} must be a positive number of seconds{' or None' if optional else ''}, not {value!r}"
                )
            if value > LONGEST_WAIT:  # (frozen: set through object) inf or over 24.8 days
                object.__setattr__(self, name, None if optional else float(LONGEST_WAIT))
        if self.framing not in ("auto", "newline", "content-length"):
            raise ValueError(f"unknown framing {self.framing!r}: use 'auto', 'newline' or 'content-length'")
        mode = self.unix_mode  # (600 for 0o600 would be mode 0o1130; -1 would be 0o7777)
        if mode is not None and not (is_count(mode, 0) and mode <= 0o777):
            raise ValueError(f"unix_mode must be an int from 0 to 0o777 such as 0o600 (or None), not {mode!r}")


class RPCServer(Registry):
    """A JSON-RPC 2.0 server: register functions, then ``loop()`` or ``start()``.

    Keyword options (all have safe defaults):

    - ``debug`` (False): put the traceback of a failing handler in the error's data.
    - ``framing`` ("auto"): "auto" detects newline or Content-Length per connection.
    - ``max_message_size`` (16 MiB): larger messages get one -32600 and a close.
    - ``max_depth`` (128): deeper nesting of arrays/objects gets -32600.
    - ``max_int_digits`` (4300): longer integer literals get -32700.
    - ``max_connections`` (1024): further clients get a -32000 error and a close.
    - ``max_concurrent_calls`` (32): calls running at once per connection; beyond
      that the server stops reading from that connection (back-pressure).
    - ``idle_timeout`` (300 s): a connection with no message and no call running is
      closed. ``read_timeout`` (30 s): a message must arrive whole within this time.
    - ``handshake_timeout`` (10 s): TLS handshakes must finish within this time.
    - ``shutdown_grace`` (10 s): how long ``shutdown()`` waits for calls in flight;
      it then closes every connection and waits up to 1 s more for their threads.
    - ``backlog`` (128): the listen queue. ``unix_mode``: chmod for a Unix socket file
      (set before the file appears at ``path``, which happens once the socket listens),
      an int from 0 to 0o777 written in octal (0o600, not 600).
    - ``default`` (None): a callable, as ``json.dumps``' ``default``, that turns a
      result of a type JSON lacks (``datetime``, ``Decimal``, a dataclass...) into
      one it has; without it (or when it raises) such a result is a -32603.
    """

    def __init__(
        self,
        *,
        debug: bool = False,
        framing: FramingName = "auto",
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_depth: int = DEFAULT_MAX_DEPTH,
        max_int_digits: int = DEFAULT_MAX_INT_DIGITS,
        max_connections: int = 1024,
        max_concurrent_calls: int = 32,
        idle_timeout: float | None = 300.0,
        read_timeout: float | None = 30.0,
        handshake_timeout: float = 10.0,
        shutdown_grace: float = 10.0,
        backlog: int = 128,
        unix_mode: int | None = None,
        default: Default | None = None,
    ) -> None:
        super().__init__()
        self.options = ServerOptions(
            debug=debug,
            framing=framing,
            max_message_size=max_message_size,
            max_depth=max_depth,
            max_int_digits=max_int_digits,
            max_connections=max_connections,
            max_concurrent_calls=max_concurrent_calls,
            idle_timeout=idle_timeout,
            read_timeout=read_timeout,
            handshake_timeout=handshake_timeout,
            shutdown_grace=shutdown_grace,
            backlog=backlog,
            unix_mode=unix_mode,
        )
        self.codec = make_codec(max_int_digits=max_int_digits, default=default)
        self._lock = threading.Lock()
        self._sessions: set[Session] = set()
        # Threads of connections that ended on their own: out of _sessions, maybe not
        # returned yet. shutdown() joins them too, so that none outlives it.
        self._ending: list[threading.Thread] = []
        self._refusals = TlsRefusals()  # connections a full TLS port turns away over TLS
        self._refusal_log = RefusalLog()  # one warning per run of refusals, not one each
        self._shutting_down = 0  # shutdown() calls running: new connections are drained at once
        self._in_shutdown: set[int] = set()  # the threads inside shutdown() (see there)
        self._counter = itertools.count(1)
        self._listener: Listener | None = None
        self._watcher = ReadWatcher()

    # -- serving ---------------------------------------------------------------

    def loop(
        self,
        host: str = "127.0.0.1",
        port: int = 5000,
        *,
        path: UnixPath | None = None,
        ssl: _ssl.SSLContext | None = None,
    ) -> None:
        """Serve until ``shutdown()`` is called (from a handler, a signal or another thread).

        ``path=`` serves a Unix socket instead of TCP; ``ssl=`` (an ``ssl.SSLContext``
        with a certificate loaded) serves TLS. If an exception ends the loop (Ctrl-C's
        KeyboardInterrupt, a signal handler's SystemExit), the server shuts down
        (calls in flight get up to ``shutdown_grace`` to finish) before it propagates.
        """
        listener = self._listen(host, port, path, ssl)
        try:
            self._run_listener(listener)
        except BaseException:
            # (else the connections already open would be served after loop() raised)
            self.shutdown()
            raise

    # Typed per case, so that a user's `host, port = s.start(...)` type-checks.
    @overload
    def start(
        self, host: str = ..., port: int = ..., *, path: None = None, ssl: _ssl.SSLContext | None = None
    ) -> tuple[str, int]: ...
    @overload
    def start(self, host: str = ..., port: int = ..., *, path: UnixPath, ssl: _ssl.SSLContext | None = None) -> str: ...
    def start(
        self,
        host: str = "127.0.0.1",
        port: int = 5000,
        *,
        path: UnixPath | None = None,
        ssl: _ssl.SSLContext | None = None,
    ) -> Address:
        """Serve in a background thread; return the bound ``(host, port)`` (or the Unix path).

        Port 0 picks a free port.
        """
        listener = self._listen(host, port, path, ssl)
        thread = threading.Thread(target=self._run_listener, args=(listener,), name="jsonrpc_mini-accept", daemon=True)
        listener.thread = thread
        thread.start()
        return listener.address

    @property
    def address(self) -> Address | None:
        """The address being served, or None when not listening."""
        return None if self._listener is None else self._listener.address

    def _listen(self, host: str, port: int, path: UnixPath | None, ssl: _ssl.SSLContext | None) -> Listener:
        path = unix_path(path)
        check_listen(host, port, path, ssl)
        with self._lock:
            if self._listener is not None:
                raise RuntimeError("this server is already listening; call shutdown() first")
            listener = Listener(self, host, port, path, ssl)  # raises if it cannot bind
            self._listener = listener
            return listener

    def serve_connection(self, transport: Transport) -> Session:
        """Serve one already-open connection (any :class:`Transport`) in background threads.

        The test kit uses this for in-memory connections. Returns the session;
        ``shutdown()`` closes it along with every other.
        """
        return self._add_session(transport, None)

    def _add_session(self, transport: Transport, setup: Setup | None) -> Session:
        session = Session(self, transport, self._session_done, f"jsonrpc_mini-conn-{next(self._counter)}")
        with self._lock:
            self._sessions.add(session)
            if self._shutting_down:
                session.drain()
        session.start(setup)
        return session

    def _session_done(self, session: Session) -> None:
        with self._lock:
            self._sessions.discard(session)
            last = not self._sessions
            self._ending = [thread for thread in self._ending if thread.is_alive()]
            self._ending.append(threading.current_thread())
        if last:
            self._watcher.stop(only_if_unused=True)

    def in_call(self) -> bool:
        """Whether the code asking runs for a call of this server: its handler's thread.

        Also code run in a copy of that thread's context (``contextvars.copy_context()``,
        then ``ctx.run`` in a helper thread, or an executor's ``submit(ctx.run, fn)``), even
        once the call has ended; a plain new thread starts without that context.
        """
        return serving.get() is self

    @property
    def connection_count(self) -> int:
        """How many connections are being served now."""
        return len(self._sessions)

    def __repr__(self) -> str:
        return server_repr("RPCServer", self.address, len(self._methods), self.connection_count)

    def shutdown(self) -> None:
        """Stop accepting, let calls in flight finish (up to ``shutdown_grace``), close all.

        Idempotent; safe to call from a handler (that call is not waited for).
        The server may be started again afterwards. Called by a signal handler on the
        thread running ``loop()``, which cannot go on until the handler returns, it
        stops the loop and returns at once: ``loop()`` shuts down before it returns.
        Called by one on a thread inside ``shutdown()`` already, it returns at once too.
        """
        listener = self._listener
        if listener is not None and listener.runner is threading.current_thread():
            # Waiting here would wait for this thread (the listener to close, the calls'
            # replies: 5 s and the grace), or for ever for the lock it may hold, accepting.
            listener.shutdown_asked = True
            listener.stop()
            return
        me = threading.get_ident()
        if me in self._in_shutdown:
            # A signal handler's, inside this thread's own shutdown() (loop()'s after a
            # first signal): that one finishes it. Going on here waited for ever for a lock
            # this thread held, and a burst of signals nested calls to RecursionError.
            return
        self._in_shutdown.add(me)  # (set add and discard: single steps, safe for a handler)
        try:
            with self._lock:
                self._shutting_down += 1
                sessions = list(self._sessions)
            try:
                # Refuse new requests first: the listener and the TLS refusals may take seconds to stop.
                for session in sessions:
                    session.drain()
                self._shutdown()
            finally:
                with self._lock:
                    self._shutting_down -= 1
        finally:
            self._in_shutdown.discard(me)

    def _shutdown(self) -> None:
        with self._lock:
            listener = self._listener
        if listener is not None:
            listener.stop()
            listener.closed.wait(5.0)
            thread = listener.thread
            if thread is not None and thread is not threading.current_thread():
                thread.join(5.0)  # closed is set just before the accept thread ends
        self._refusals.close(5.0)
        self._refusal_log.flush()
        with self._lock:
            sessions = list(self._sessions)
        me = current_session()
        deadline = time.monotonic() + self.options.shutdown_grace
        limit = self.options.max_concurrent_calls
        for session in sessions:
            own = 1 if session is me else 0
            # (Also while bytes wait unread: its reader takes them, notifications run. Not at
            # the limit: nobody can read them then; a handler calling this holds a slot.)
            while (
                (busy := session.busy_now()) > own or (busy < limit and session.unread())
            ) and time.monotonic() < deadline:
                time.sleep(0.005)
        for session in sessions:
            if session is me:
                session.close_when_idle()  # the reply of the handler calling us still goes out
            else:
                session.close()
        # Closed, a connection's threads end at once (a blocked read or send fails), unless one
        # runs a handler past the grace. They get one allowance in all past the grace to do so:
        # a fixed 0.1 s each was too short on a loaded machine, and shutdown() returned with
        # a closed connection's thread alive and the connection still counted.
        ended_by = max(deadline, time.monotonic() + _CLOSE_ALLOWANCE)
        for session in sessions:
            if session is not me:
                session.join(max(0.0, ended_by - time.monotonic()))
        with self._lock:
            ending, self._ending = self._ending, []
        for thread in ending:
            if thread is not threading.current_thread():
                thread.join(max(0.0, ended_by - time.monotonic()))
        self._watcher.stop(join=1.0)  # its thread starts again when a connection needs it

    def _run_listener(self, listener: Listener) -> None:
        try:
            listener.run()
        finally:
            with self._lock:
                if self._listener is listener:
                    self._listener = None
            listener.close()
        if listener.shutdown_asked:  # by a signal handler on this thread: see shutdown()
            self.shutdown()

    def __enter__(self) -> RPCServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.shutdown()
