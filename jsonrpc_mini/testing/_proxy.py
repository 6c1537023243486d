"""``LoopbackServer``: a server on a real 127.0.0.1 port behind a fault-injecting TCP proxy."""

from __future__ import annotations

import contextlib
import enum
import logging
import selectors
import socket
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Final, TypeVar

from .._aio_server import RPCServer as AioRPCServer
from .._client import RPCClient
from .._framing import FramingName
from .._protocol import DEFAULT_MAX_DEPTH, DEFAULT_MAX_MESSAGE_SIZE
from ._aio_host import RUN, LoopThread
from ._kit_args import check_kit_args
from ._loopback import DEFAULT_TIMEOUT
from ._per_connection import KitFaults, add_faults_note, as_plans, longest_close_delay, plan_for
from ._plan import FaultPlan
from ._relay import _JOIN, _POLL, _Relay
from ._uses import acquire, aio_acquire, aio_release, release

if TYPE_CHECKING:
    from .._json_hook import Default
    from .._server import RPCServer

__all__ = ["LoopbackServer"]

log = logging.getLogger("jsonrpc_mini.testing")


class _Inherit(enum.Enum):
    """The type of ``INHERIT``: "the LoopbackServer's own value" (None already means "none")."""

    TOKEN = 0


INHERIT: Final = _Inherit.TOKEN

_T = TypeVar("_T")
_CLOSED = "this LoopbackServer is closed: call client() inside `with LoopbackServer(...) as srv:`"
_CLOSE_WAIT = 5.0  # s: closing the kit waits for the plan's close_delay at most this long


class LoopbackServer:
    """The server on a real 127.0.0.1 port, with a fault plan applied by a proxy in front.

    Starts at once: ``server.start("127.0.0.1", 0)`` (unless it is already
    listening) plus a proxy on another ephemeral port. :attr:`address` is the
    proxy's ``(host, port)``; connect there with any client, or use
    :meth:`client`. :attr:`direct_address` reaches the server without faults.
    Each connection through the proxy gets the plan afresh (``connection`` number
    0, 1, ... mixed into its seed). ``faults`` may also be a list or tuple of
    ``FaultPlan | None``, one per connection: connection k (in accept order, from 0)
    gets item k, applied as connection k of that plan (the same seeds, the same run);
    connections past the end, and None items, get no faults (an empty list: none at
    all); an item with ``refuse_connect=True`` is refused (ValueError: the port listens
    for the other connections). :attr:`faults` holds the sequence as a tuple.
    ``close()`` (or leaving the ``with`` block) closes the clients it made, stops and
    joins every proxy thread and closes every proxy socket. The server is shut down when its last user is done (other
    LoopbackServers and ``loopback()`` blocks over it count), and only if a
    LoopbackServer started it. A server listening on a Unix path is refused
    (ValueError). With ``FaultPlan(refuse_connect=True)`` the port refuses connections.
    A connection the proxy cannot pass on (the server is not listening) is reset
    (SO_LINGER 0): accepted already, it cannot be refused; a reset is the nearest.
    ``server`` may be an ``aio.RPCServer`` too, for sync clients of an asyncio
    server: its start, shutdown and kit bookkeeping run on an event loop of the
    LoopbackServer's own, on a thread (``jsonrpc_mini-kit-loop``) that ends with it.
    How an end leaves its connection reaches the other end as over a network: a close
    or half-close as EOF (the plan's ``close_delay`` after the proxy read it, whichever
    end closed; closing the kit waits it out once for all its connections, at most 5 s,
    then closes the rest at once), a reset (RST) as a reset, also one the proxy meets by writing
    to the reset end (that one after the bytes the reset end sent before it, with the
    plan's delays, as on a real link; waiting for them at most 5 s). Where the plan
    breaks the link, both ends are closed at once.

    Example::

        from jsonrpc_mini.testing import FaultPlan, LoopbackServer
        with LoopbackServer(server, faults=FaultPlan(seed=5, max_chunk=2)) as srv:
            client = srv.client()
            assert client.add(1, 2) == 3
            host, port = srv.address

        # The first connection breaks after 10 bytes, the second (a retry) is clean:
        LoopbackServer(server, faults=[FaultPlan(seed=5, disconnect_after=10), None])
    """

    def __init__(
        self,
        server: RPCServer | AioRPCServer,
        faults: KitFaults = None,
        *,
        host: str = "127.0.0.1",
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        check_kit_args("LoopbackServer", server, faults, aio=False)
        self.server = server
        self.faults = as_plans(faults)
        self.timeout = timeout
        self._close_delay = longest_close_delay(self.faults)
        self._lock = threading.Lock()
        self._relays: list[_Relay] = []
        self._clients: list[RPCClient] = []
        self._closed = False
        self._count = 0
        self._accepter: threading.Thread | None = None
        self._loop: LoopThread | None = None
        if isinstance(server, AioRPCServer):
            self._loop = LoopThread("jsonrpc_mini-kit-loop")
            try:
                started = self._loop.run(aio_acquire(server, host), "the aio server's start")
                self.direct_address: tuple[str, int] = started
            except BaseException:
                self._loop.close()
                raise
        else:
            self.direct_address = acquire(server, host)
        try:
            self._listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
            self._listener.bind((host, 0))
            self.address: tuple[str, int] = self._listener.getsockname()[:2]
            self._wake_r, self._wake_w = socket.socketpair()
            if not (isinstance(self.faults, FaultPlan) and self.faults.refuse_connect):
                self._listener.listen(128)  # a bound socket that never listens refuses connections
                accepter = threading.Thread(target=self._accept_loop, name="jsonrpc_mini-proxy-accept", daemon=True)
                accepter.start()
                self._accepter = accepter
        except BaseException:
            for name in ("_listener", "_wake_r", "_wake_w"):
                if hasattr(self, name):
                    getattr(self, name).close()
            self._release()
            raise

    def _accept_loop(self) -> None:
        # A selector, not select.select(): that refuses descriptors above 1023,
        # which a test holding many connections reaches.
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            self._accept_until_closed(selector)

    def _accept_until_closed(self, selector: selectors.BaseSelector) -> None:
        while not self._closed:
            try:
                ready = {key.fileobj for key, _ in selector.select(_POLL)}
            except (OSError, ValueError):
                return
            if self._closed:
                return
            if self._listener not in ready:
                continue
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._closed:
                    conn.close()
                    return
                self._relays = [relay for relay in self._relays if not relay.finished]
                # Count before the relay starts: its threads can carry a whole call
                # (and a test can read ``connections``) before this thread runs again.
                index = self._count
                self._count += 1
            # Not under the lock: the relay connects to the server (up to _JOIN seconds
            # where its backlog is full), and client() and close() would wait for it.
            # close() wakes the connect (it joins this thread) through _wake_r.
            try:
                relay = _Relay(conn, self.direct_address, self._plan_for(index), index, self._wake_r)
            except Exception:  # (its threads stopped, the connection closed): go on accepting
                log.exception("LoopbackServer: cannot relay connection %d", index)
                continue
            if not self._kept(self._relays, relay):
                relay.close()
                relay.join(_JOIN)
                return

    def _kept(self, items: list[_T], item: _T) -> bool:
        """Add ``item`` to ``items`` for close() to close, unless close() began: then False (close it here)."""
        with self._lock:
            if self._closed:
                return False
            items.append(item)
            return True

    def _plan_for(self, index: int) -> FaultPlan | None:
        """The active plan of connection ``index`` (see ``_per_connection``), else None."""
        plan = plan_for(self.faults, index)
        return plan if plan is not None and plan.active else None

    @property
    def connections(self) -> int:
        """How many connections the proxy has accepted so far."""
        return self._count

    def client(
        self,
        *,
        timeout: float | _Inherit | None = INHERIT,
        framing: FramingName = "newline",
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_depth: int = DEFAULT_MAX_DEPTH,
        default: Default | None = None,
    ) -> RPCClient:
        """A new :class:`~jsonrpc_mini.RPCClient` connected through the proxy; closed by ``close()``.

        ``timeout`` defaults to the LoopbackServer's (10 s); ``None`` means no
        timeout, as for ``RPCClient``. ``max_message_size``, ``max_depth`` and
        ``default`` (the encoder hook for arguments of types JSON lacks) are the client's.
        """
        if self._closed:  # (its port refuses: "cannot connect" would blame the server)
            raise RuntimeError(_CLOSED)
        host, port = self.address
        client = RPCClient(
            host,
            port,
            timeout=self.timeout if isinstance(timeout, _Inherit) else timeout,
            framing=framing,
            max_message_size=max_message_size,
            max_depth=max_depth,
            default=default,
        )
        if not self._kept(self._clients, client):
            client.close()
            raise RuntimeError(_CLOSED)
        return client

    def close(self) -> None:
        """Close clients made by :meth:`client`, stop the proxy, give up the server (see above). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            clients, relays = list(self._clients), list(self._relays)
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._accepter is not None:
            self._accepter.join(_JOIN)
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()
        for client in clients:
            client.close()
        if self._close_delay and relays:
            # The ends' closes reach their peers after close_delay, all at once: one wait
            # for every connection (it ends early once all have ended), then the rest closes.
            # (Per-connection plans: the longest close_delay among them.)
            deadline = time.monotonic() + min(self._close_delay, _CLOSE_WAIT)
            for relay in relays:
                relay.join(max(0.0, deadline - time.monotonic()))
        for relay in relays:
            relay.close()
        deadline = time.monotonic() + _JOIN  # (one wait for all of them)
        stuck = [relay for relay in relays if not relay.join(max(0.0, deadline - time.monotonic()))]
        if stuck:
            log.warning("LoopbackServer: %d proxy connections did not stop within %.0f s", len(stuck), _JOIN)
        self._release()

    def _release(self) -> None:
        """Give up the server (the last user shuts it down if a LoopbackServer started it); end our loop."""
        server, loop = self.server, self._loop
        if loop is None:
            assert not isinstance(server, AioRPCServer)
            release(server)
            return
        assert isinstance(server, AioRPCServer)
        try:
            # (Bounded: the server's shutdown lets calls run shutdown_grace, then ends them.)
            loop.run(aio_release(server), "the aio server's shutdown", server.options.shutdown_grace + RUN)
        finally:
            loop.close()

    def __enter__(self) -> LoopbackServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None:
            add_faults_note(exc, self.faults)
        self.close()

    def __repr__(self) -> str:
        return f"<LoopbackServer {self.address} -> {self.direct_address} faults={self.faults!r}>"
