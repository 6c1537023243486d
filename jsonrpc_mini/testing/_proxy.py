"""``LoopbackServer``: a server on a real 127.0.0.1 port behind a fault-injecting TCP proxy."""

from __future__ import annotations

import contextlib
import enum
import logging
import selectors
import socket
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Final, NamedTuple

from .._client import RPCClient
from .._framing import FramingName
from .._protocol import DEFAULT_MAX_DEPTH, DEFAULT_MAX_MESSAGE_SIZE
from .._transport import SocketTransport, Transport
from ._eager import EagerReader
from ._end_faults import abort_transport, shutdown_write, was_reset
from ._faults import FaultyTransport
from ._kit_args import check_kit_args
from ._loopback import DEFAULT_TIMEOUT, add_plan_note
from ._plan import FaultPlan, LinkState
from ._uses import acquire, release

if TYPE_CHECKING:
    from .._server import RPCServer

__all__ = ["LoopbackServer"]

log = logging.getLogger("jsonrpc_mini.testing")

_POLL = 0.5
_JOIN = 5.0
_CHUNK = 64 * 1024


class _Inherit(enum.Enum):
    """The type of ``INHERIT``: "the LoopbackServer's own value" (None already means "none")."""

    TOKEN = 0


INHERIT: Final = _Inherit.TOKEN


class _Direction(NamedTuple):
    """One direction of a relay: where its bytes come from and go, and the ends it tells how it ends."""

    label: str
    source: Transport
    sink: Transport
    far: Transport  # the end its bytes go to, as the other end sees it
    read_end: Transport  # source's end, as a reset reaches it
    write_end: Transport  # sink's end, the same way (the other direction reads it: woken there)
    read_sock: socket.socket  # source's socket
    write_sock: socket.socket  # sink's socket


class _Relay:
    """One proxied connection: two threads moving bytes, the plan applied where they are read.

    Each direction's faults and delays are applied as its bytes are read (the client's
    from the client socket, the server's from the server socket), each chunk held its
    delay after it arrived (an :class:`EagerReader` stamps the bytes as they come), so
    chunks in flight together wait out their delays together, as on ``loopback()``'s pipe.
    """

    def __init__(self, down: socket.socket, upstream: tuple[str, int], plan: FaultPlan | None, index: int) -> None:
        self.stopping = False
        self.up: Transport | None = None
        base = SocketTransport(down)
        self.down_out: Transport = base  # the relay writes the server's bytes here
        self.down: Transport = base
        self.up_in: Transport | None = None  # the relay reads the server's bytes here
        self.threads: list[threading.Thread] = []
        # The ends' reading threads. close() stops them itself: closing the socket does
        # not stop a reader that holds its bound and waits for room (none comes then).
        self.readers: list[EagerReader] = []
        self._running = 2
        self._lock = threading.Lock()
        self._fin_sent: set[socket.socket] = set()  # the sockets a direction half-closed
        try:
            self._start(base, upstream, plan, index)
        except BaseException:  # (a thread that could not start): stop those that did
            self.close()
            self.join(_JOIN)
            raise

    def _start(self, base: SocketTransport, upstream: tuple[str, int], plan: FaultPlan | None, index: int) -> None:
        link = None if plan is None else LinkState(plan, index)
        if plan is not None:
            reader = EagerReader(base, f"jsonrpc_mini-proxy-{index}-client-reader")
            self.readers.append(reader)
            self.down = FaultyTransport(reader, plan, side="server", link=link)
        try:
            up = socket.create_connection(upstream, timeout=_JOIN)
        except OSError as exc:
            log.warning("LoopbackServer: cannot reach the server at %s: %s", upstream, exc)
            self.close()
            return
        self.up = up_end = SocketTransport(up)
        try:
            up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            log.warning("LoopbackServer: cannot reach the server at %s: %s", upstream, exc)
            self.close()
            return
        up_in: Transport = up_end
        if plan is not None:
            reader = EagerReader(up_end, f"jsonrpc_mini-proxy-{index}-server-reader")
            self.readers.append(reader)
            up_in = FaultyTransport(reader, plan, side="client", link=link)
        self.up_in = up_in
        # The ends are the transports a reset reaches through (with a plan, the
        # FaultyTransports: resetting one also ends its direction's wait for a held chunk).
        directions = (
            ("c2s", _Direction("client->server", self.down, up_end, up_end, self.down, up_in, base.sock, up)),
            ("s2c", _Direction("server->client", up_in, self.down_out, self.down, up_in, self.down, up, base.sock)),
        )
        for name, direction in directions:
            thread = threading.Thread(
                target=self._run,
                args=(direction,),
                name=f"jsonrpc_mini-proxy-{index}-{name}",
                daemon=True,
            )
            self.threads.append(thread)
        for thread in self.threads:
            thread.start()

    def _run(self, direction: _Direction) -> None:
        """Run one direction; the last of the two to end closes both sockets."""
        try:
            self._pass_on(direction)
        finally:
            with self._lock:
                self._running -= 1
                last = self._running == 0
            if last:
                self.close()

    def _broken(self) -> bool:
        return isinstance(self.down, FaultyTransport) and self.down.link.broken is not None

    def _pass_on(self, direction: _Direction) -> None:
        """Move one direction's bytes from ``source`` to ``sink`` and pass on how it ends.

        ``far`` is the end its bytes go to, as the other end sees it: an EOF half-closes
        it (closes it where the plan broke the link), another error closes it. A reset
        resets both ends, the one still open first: ``write_end`` (``sink``'s) when
        ``source`` was reset (by its peer or the plan), ``read_end`` (``source``'s) when
        writing to ``sink`` failed with a reset or a broken pipe (its peer reset it: the
        reset may have been read first, by the other direction), as a real link tells the
        writer's peer. Where writing failed, resetting the open end first matters:
        resetting the dead one wakes the other direction, whose EOF would half-close the
        open end before the reset (for a reset read here, either order is the same).
        The kernel reports a reset once: where the other direction's write took it, the
        read here gets EOF, which ``was_reset`` tells from a close, and resets too.
        """
        label, source, sink, far, read_end, write_end = direction[:6]
        try:
            while not self.stopping:
                try:
                    data = source.recv(_CHUNK, _POLL)
                except TimeoutError:
                    continue
                except ConnectionResetError:
                    self._reset(write_end, read_end)
                    return
                if not data:
                    if self.stopping:  # (close() woke this read: it closes the sockets)
                        return
                    if self._broken():
                        self._close_broken(far, write_end)
                    elif direction.read_sock not in self._fin_sent and was_reset(direction.read_sock):
                        self._reset(write_end, read_end)  # (the other direction's write took the reset)
                    else:
                        self._fin_sent.add(direction.write_sock)
                        shutdown_write(far)
                    return
                try:
                    sink.send(data)
                except (ConnectionResetError, BrokenPipeError) as exc:
                    if self._broken():  # (the plan closed the link: its ends are closed, not reset)
                        raise
                    log.debug("proxy %s: the peer it writes to reset: %s", label, exc)
                    self._reset(read_end, write_end)
                    return
        except (OSError, ValueError) as exc:
            log.debug("proxy %s ended: %s", label, exc)
            far.close()

    @staticmethod
    def _close_broken(far: Transport, write_end: Transport) -> None:
        """Close ``far`` on a link the plan broke, and end the other direction's wait.

        The other direction reads ``write_end``: holding a chunk's delay (latency) or
        stalled, it would notice the broken link only when its wait ends (the delay, or
        its next poll), and the relay (its threads, its sockets) would outlive the link
        that long. Its bytes can reach no one now: both ends are closed.
        """
        far.close()
        if isinstance(write_end, FaultyTransport):
            write_end._stop_waits()

    def _reset(self, first: Transport, then: Transport) -> None:
        """Reset both ends of the connection, ``first`` first (unless close() is under way)."""
        if self.stopping:  # (close() closes the sockets: a write it cut short is no reset)
            return
        abort_transport(first)
        abort_transport(then)

    def close(self) -> None:
        """Stop both threads and both readers, close both sockets."""
        self.stopping = True
        if isinstance(self.up_in, FaultyTransport):
            self.up_in._stop_waits()  # (a held chunk's delay would keep its thread until its poll)
        self.down.close()
        if self.up is not None:
            self.up.close()
        for reader in self.readers:
            reader.close()

    def join(self, timeout: float) -> bool:
        """Wait for both threads (and the readers'); True if they ended."""
        for thread in self._all_threads():
            if thread.ident is not None:  # (started)
                thread.join(timeout)
        return self.finished

    def _all_threads(self) -> list[threading.Thread]:
        return [*self.threads, *(reader.thread for reader in self.readers)]

    @property
    def finished(self) -> bool:
        """Whether both threads (and the readers) have ended."""
        return not any(thread.is_alive() for thread in self._all_threads())


class LoopbackServer:
    """The server on a real 127.0.0.1 port, with a fault plan applied by a proxy in front.

    Starts at once: ``server.start("127.0.0.1", 0)`` (unless it is already
    listening) plus a proxy on another ephemeral port. :attr:`address` is the
    proxy's ``(host, port)``; connect there with any client, or use
    :meth:`client`. :attr:`direct_address` reaches the server without faults.
    Each connection through the proxy gets the plan afresh (``connection`` number
    0, 1, ... mixed into its seed). ``close()`` (or leaving the ``with`` block)
    closes the clients it made, stops and joins every proxy thread and closes every
    proxy socket. The server is shut down when its last user is done (other
    LoopbackServers and ``loopback()`` blocks over it count), and only if a
    LoopbackServer started it. A server listening on a Unix path is refused
    (ValueError). With ``FaultPlan(refuse_connect=True)`` the port refuses connections.
    How an end leaves its connection reaches the other end as over a network: a close
    or half-close as EOF, a reset (RST) as a reset, also one the proxy meets by writing
    to the reset end (that one at once, ahead of bytes the plan still holds for the
    other end). Where the plan breaks the link, both ends are closed at once.

    Example::

        from jsonrpc_mini.testing import FaultPlan, LoopbackServer
        with LoopbackServer(server, faults=FaultPlan(seed=5, max_chunk=2)) as srv:
            client = srv.client()
            assert client.add(1, 2) == 3
            host, port = srv.address
    """

    def __init__(
        self,
        server: RPCServer,
        faults: FaultPlan | None = None,
        *,
        host: str = "127.0.0.1",
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        check_kit_args("LoopbackServer", server, faults, aio=False)
        self.server = server
        self.faults = faults
        self.timeout = timeout
        self._plan = faults if faults is not None and faults.active else None
        self._lock = threading.Lock()
        self._relays: list[_Relay] = []
        self._clients: list[RPCClient] = []
        self._closed = False
        self._count = 0
        self._accepter: threading.Thread | None = None
        self.direct_address: tuple[str, int] = acquire(server, host)
        try:
            self._listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
            self._listener.bind((host, 0))
            self.address: tuple[str, int] = self._listener.getsockname()[:2]
            self._wake_r, self._wake_w = socket.socketpair()
            if self._plan is None or not self._plan.refuse_connect:
                self._listener.listen(128)  # a bound socket that never listens refuses connections
                accepter = threading.Thread(target=self._accept_loop, name="jsonrpc_mini-proxy-accept", daemon=True)
                accepter.start()
                self._accepter = accepter
        except BaseException:
            for name in ("_listener", "_wake_r", "_wake_w"):
                if hasattr(self, name):
                    getattr(self, name).close()
            release(server)
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
                try:
                    relay = _Relay(conn, self.direct_address, self._plan, index)
                except Exception:  # (its threads stopped, the connection closed): go on accepting
                    log.exception("LoopbackServer: cannot relay connection %d", index)
                    continue
                self._relays.append(relay)

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
    ) -> RPCClient:
        """A new :class:`~jsonrpc_mini.RPCClient` connected through the proxy; closed by ``close()``.

        ``timeout`` defaults to the LoopbackServer's (10 s); ``None`` means no
        timeout, as for ``RPCClient``. ``max_message_size`` and ``max_depth`` are
        the client's.
        """
        host, port = self.address
        client = RPCClient(
            host,
            port,
            timeout=self.timeout if isinstance(timeout, _Inherit) else timeout,
            framing=framing,
            max_message_size=max_message_size,
            max_depth=max_depth,
        )
        with self._lock:
            self._clients.append(client)
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
        for relay in relays:
            relay.close()
        stuck = [relay for relay in relays if not relay.join(_JOIN)]
        if stuck:
            log.warning("LoopbackServer: %d proxy connections did not stop within %.0f s", len(stuck), _JOIN)
        release(self.server)

    def __enter__(self) -> LoopbackServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None:
            add_plan_note(exc, self.faults)
        self.close()

    def __repr__(self) -> str:
        return f"<LoopbackServer {self.address} -> {self.direct_address} faults={self.faults!r}>"
