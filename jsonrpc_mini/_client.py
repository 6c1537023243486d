"""The synchronous client: ``RPCClient``.

Go net/rpc's shape with Leader/Followers reading: a map of pending calls keyed by
id, and whichever caller is waiting reads the socket itself, handing other
callers' replies to them as it goes. With one caller there is no thread hand-off
at all. When reading fails, every pending call fails with ConnectionLost. The
connection is ``_client_link._Link`` (registering requests) on
``_client_sender._RequestSender`` (sending them) on ``_client_reader._ReplyReader``
(waiting for and reading replies) on ``_client_turn.ReadingTurn`` (handing the
reading turn on) on ``_client_settle.ReplySettler`` (storing replies).
"""

from __future__ import annotations

import ssl as _ssl
import threading
import time
from types import TracebackType
from typing import Any, cast

from ._batch import BatchBuilder, QueuedCalls, call_values
from ._client_link import _Link
from ._client_protocol import ClientConnection
from ._client_waiter import _BatchWaiter, _QueuedWaiter, _Waiter, timed_out, within
from ._codec import CallParams, Notification, build_params
from ._connect import connect_target, open_connection
from ._errors import ConnectionLost, RPCError, RPCTimeout
from ._framing import FramingName
from ._json_hook import Default, make_codec
from ._large_reads import gather_limit
from ._protocol import DEFAULT_MAX_DEPTH, DEFAULT_MAX_MESSAGE_SIZE
from ._remote import (
    LONGEST_WAIT,
    KeptMethod,
    RemoteMethod,
    check_timeout,
    kept_attribute,
    not_a_method_name,
    private_name,
)
from ._reprs import client_repr
from ._transport import SocketTransport, Transport
from ._unix import UnixPath, unix_path

__all__ = ["RPCClient"]


_CONNECTED = "this client is already connected; close() it first or make a new RPCClient"
# connect()'s last check and its swap of the connection, one thread at a time (connects are rare).
_ATTACHING = threading.Lock()


class _Current:
    """The connection a client uses now; ``connect()`` replaces it.

    ``client.add`` (a KeptMethod) calls through this, so a method kept or saved by
    the caller follows a reconnect, and it holds no reference to the client (a
    cycle would keep a dropped client's connection open until the garbage
    collector ran).

    ``timeout`` is the call timeout of the client (or ``with_timeout`` view) that
    holds it, read by ``RPCClient._timeout``. Speed: RPCClient has ``__getattr__``,
    so Python 3.11 does not specialise attribute reads on it (~0.3k instructions
    each, against a few on this slotted class); ``call`` reads the client once.
    """

    __slots__ = ("link", "timeout")

    def __init__(self, link: _Link | None = None, timeout: float | None = None) -> None:
        self.link = link
        self.timeout = timeout

    def request(self, method: str, params: CallParams, timeout: float | None) -> Any:
        """Call ``method`` on the current connection (ConnectionLost if there is none)."""
        link = self.link
        if link is None:
            raise _not_connected(method)
        return link.request(method, params, timeout)


def _not_connected(method: str | None) -> ConnectionLost:
    """The error of a call (of ``method``; None: a batch) on a client that is not connected."""
    exc = ConnectionLost("not connected: call connect(host, port) first", request_sent=False)
    exc.method = method or None
    return exc


def _fail_members(waiters: list[_Waiter], error: RPCError) -> None:
    """Fail the members of a batch not done with ``error`` (each its own copy, naming its method)."""
    for waiter in waiters:
        if not waiter.done:
            exc = (
                ConnectionLost(error.message, request_sent=error.request_sent)
                if isinstance(error, ConnectionLost)
                else RPCError(None, error.message)
            )
            exc.__cause__ = error.__cause__
            exc.method = waiter.method or None
            waiter.error = exc
            waiter.done = True


def _timeout(timeout: float | None) -> float | None:
    """``timeout`` checked (check_timeout); None (no timeout) for inf or anything over LONGEST_WAIT."""
    checked = check_timeout(timeout)
    return None if checked is not None and checked > LONGEST_WAIT else checked


class RPCClient:
    """A JSON-RPC 2.0 client over one connection, safe to share between threads.

    ``RPCClient()`` then ``connect(host, port)``, or ``RPCClient(host, port)`` to
    connect at once. ``client.add(1, 2)`` calls remote ``add`` and returns its
    result. The client's own names are ``call``, ``notify``, ``batch``,
    ``connect``, ``close``, ``with_timeout`` and anything starting with ``_``
    (so ``client.timeout(...)`` and ``client.connected()`` are remote calls);
    reach a remote method named like one of them with ``call("close")``.

    ``timeout`` (seconds, None = wait for ever) bounds connecting and every call;
    ``float("inf")`` or more than about 24.8 days (2,147,483 s) also means no timeout.
    ``framing`` is ``"newline"`` (default) or ``"content-length"``. ``path`` picks
    a Unix socket (not with ``host`` or ``port``: ValueError); ``ssl`` (an
    ``ssl.SSLContext``) turns on TLS, ``server_hostname`` (with ``ssl`` only) the
    name its certificate is checked against (default: ``host``).
    ``max_message_size`` (bytes) and ``max_depth`` (nesting levels) bound a reply:
    a larger one loses the connection, a deeper one fails its call.
    ``default`` (a callable, as ``json.dumps``' ``default``) turns an argument of a
    type JSON lacks (``datetime``, ``Decimal``, a dataclass...) into one it has;
    without it such an argument raises TypeError.
    """

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        timeout: float | None = None,
        framing: FramingName = "newline",
        path: UnixPath | None = None,
        ssl: _ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        transport: Transport | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_depth: int = DEFAULT_MAX_DEPTH,
        default: Default | None = None,
    ) -> None:
        timeout = _timeout(timeout)
        self._framing = framing
        self._max_message_size = max_message_size
        self._max_depth = max_depth
        self._codec = make_codec(default=default)  # (every connection of this client writes with it)
        # Validate the framing name and the limits now.
        ClientConnection(framing=framing, max_message_size=max_message_size, max_depth=max_depth)
        self._current = _Current(None, timeout)
        if path is not None and (host is not None or port is not None):
            raise ValueError("RPCClient takes host and port, or path= for a Unix socket, not both")
        if transport is not None:
            self._attach(transport)
        elif host is not None or path is not None:
            self.connect(host, port, path=path, ssl=ssl, server_hostname=server_hostname)
        elif port is not None:
            raise ValueError("RPCClient(port=...) needs a host too")

    def _attach(self, transport: Transport) -> _Link:
        proto = ClientConnection(
            framing=self._framing,
            codec=self._codec,
            max_message_size=self._max_message_size,
            max_depth=self._max_depth,
        )
        link = self._current.link = _Link(transport, proto)
        return link

    def connect(
        self,
        host: str | None = "127.0.0.1",
        port: int | None = 5000,
        *,
        path: UnixPath | None = None,
        ssl: _ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> RPCClient:
        """Connect to a server (TCP, TLS with ``ssl=``, or Unix socket with ``path=``); returns self."""
        if self._link is not None and self._link.lost is None:
            raise RPCError(None, _CONNECTED)
        path = unix_path(path)
        transport = open_connection(
            host, port, path=path, timeout=self._timeout, ssl=ssl, server_hostname=server_hostname
        )
        if isinstance(transport, SocketTransport):
            transport.gather = gather_limit(self._max_message_size)  # (see SocketTransport._gather)
        with _ATTACHING:
            if self._link is not None and self._link.lost is None:  # another thread connected meanwhile
                transport.close()
                raise RPCError(None, _CONNECTED)
            self._attach(transport).peer = connect_target(host, port, path)  # (for repr)
        return self

    @property
    def _connected(self) -> bool:
        # Private on purpose: API.md reserves only call/notify/batch/connect/close/
        # with_timeout and _names, so "connected" must stay a remote method name.
        return self._link is not None and self._link.lost is None

    @property
    def _timeout(self) -> float | None:
        # The call timeout (seconds, None: none), held by _current (see _Current).
        return self._current.timeout

    @property
    def _link(self) -> _Link | None:
        # The connection, held once: by the holder kept methods call through.
        return self._current.link

    def _require_link(self, method: str | None) -> _Link:
        if self._link is None:
            raise _not_connected(method)
        return self._link

    def __getattr__(self, name: str) -> KeptMethod[Any] | RemoteMethod[Any]:
        if name.startswith("_"):
            raise private_name(name, name)  # Python's names, and ours before __init__ set them
        return kept_attribute(self, RPCClient.call, self._current, name, self._timeout)

    def call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call remote ``method`` with these arguments and return its result."""
        # Speed: _Current.request and build_params's usual case in line (two Python
        # calls less per call; ~0.15 us in-process). The client is read once (see _Current).
        if not isinstance(method, str):
            raise not_a_method_name(method)
        current = self._current
        link = current.link
        if link is None:
            raise _not_connected(method)
        # Positional arguments go as their tuple, written as the same array (CallParams):
        # no list made per call (~0.4k instructions).
        params = build_params(args, kwargs) if kwargs else args or None
        return link.request(method, params, current.timeout)

    def notify(self, method: str, /, *args: Any, **kwargs: Any) -> None:
        """Send a notification: ``method`` runs remotely, nothing comes back."""
        if not isinstance(method, str):
            raise not_a_method_name(method)
        link = self._require_link(method)
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        data = link.proto.encode(Notification(method, build_params(args, kwargs)))
        link.start([], data, deadline, method, unanswered=True, timeout=self._timeout)

    def batch(self) -> BatchBuilder:
        """Collect calls and send them as one batch when the ``with`` block ends."""
        return BatchBuilder(self._send_batch, _Waiter, _QueuedWaiter)

    def _send_batch(self, calls: QueuedCalls) -> list[_Waiter]:
        link = self._require_link(None)
        proto = link.proto
        waiters = cast("list[_Waiter]", calls.answered())
        ids = proto.next_ids(len(waiters))
        # (The usual batch, requests of one method, is written without a request
        # object per call when that is sure to give the same bytes: see encode_calls.
        # Without orjson it never is, and one_method's pass is not made.)
        usual = None if proto.codec.orjson_dumps is None else calls.one_method()
        data = None if usual is None else proto.encode_calls(usual[0], usual[1], ids)
        if data is None:
            data = proto.encode_values(call_values(calls, ids))
        # (Members without a result are notifications: marked as the batch is sent.)
        unanswered = len(waiters) < len(calls)
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        if not waiters:  # notifications only
            link.start([], data, deadline, "batch", unanswered=unanswered, batch=True, timeout=self._timeout)
            return waiters
        # The calls are pending as one (see _BatchWaiter: it gives the members their
        # ids); members the reply array leaves out fail at once (the core tells:
        # expect_batch).
        batch = _BatchWaiter(waiters, ids)
        proto.expect_batch(ids)
        link.batch_waiters[batch.id] = batch
        try:
            link.start([batch], data, deadline, "batch", unanswered=unanswered, batch=True, timeout=self._timeout)
            try:
                try:
                    link.wait(batch, deadline, self._timeout)
                except RPCTimeout:
                    message = f"no reply {within(self._timeout)}; a late reply will be dropped"
                    for waiter in waiters:
                        if not waiter.done:
                            waiter.error = timed_out(waiter.method, message)
                            waiter.done = True
                if batch.expanded:  # its members wait one by one (as _BatchWaiter tells)
                    self._wait_members(link, waiters, deadline)
                elif batch.error is not None:  # lost or failed as a whole: every member fails so
                    _fail_members(waiters, batch.error)
            except BaseException:  # e.g. KeyboardInterrupt: the members not answered stop waiting too
                if batch.expanded:
                    for waiter in waiters:
                        if not waiter.done:
                            link._abandon(waiter)
                else:  # (wait() abandoned the batch's entry)
                    _fail_members(waiters, RPCError(None, "interrupted before its reply came"))
                raise
        finally:
            proto.forget_batch(ids)
            link.batch_waiters.pop(batch.id, None)
            batch.number()  # (done already when the reply was stored whole)
        return waiters  # the members' BatchResults, holding their outcomes

    def _wait_members(self, link: _Link, waiters: list[_Waiter], deadline: float | None) -> None:
        """Wait for each member of an expanded batch (see _BatchWaiter); an RPCTimeout is its error."""
        for waiter in waiters:
            if not waiter.done:  # replies come together: most are in once the first wait ends
                try:
                    link.wait(waiter, deadline, self._timeout)
                except RPCTimeout as exc:
                    waiter.error = exc

    def with_timeout(self, timeout: float | None) -> RPCClient:
        """A view of the same connection whose calls use ``timeout`` seconds."""
        view = object.__new__(RPCClient)
        # Not the kept methods: they carry this client's timeout and connection holder.
        view.__dict__.update((name, value) for name, value in self.__dict__.items() if type(value) is not KeptMethod)
        view._current = _Current(self._link, _timeout(timeout))  # the view stays on this connection
        return view

    def close(self) -> None:
        """Close the connection; pending calls fail with ConnectionLost. Idempotent."""
        if self._link is not None:
            self._link.fail_all("the client was closed")

    def __enter__(self) -> RPCClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        link = self._link
        return client_repr("RPCClient", self._connected, None if link is None else link.peer, self._timeout)
