"""The asyncio client: ``await aio.connect(...)`` -> ``aio.RPCClient``.

Go net/rpc's shape on an event loop: a counter for ids, and one connection
(``_aio_link.Link``) holding the pending calls, matching replies by id and failing
them all with ConnectionLost when it breaks. A call returns its future directly
(no task, no coroutine), so ``asyncio.gather`` of many calls pipelines them at
little more than the cost of the bytes.
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
from collections.abc import Callable
from types import TracebackType
from typing import Any, cast

from ._aio_batch import AsyncBatchBuilder
from ._aio_call_future import Call
from ._aio_connecting import Connecting, coroutine_function
from ._aio_link import Link
from ._client_protocol import ClientConnection
from ._codec import CallParams, Notification, Params, Request, build_params
from ._connect import check_port, connect_errors, connect_target
from ._errors import RPCError, RPCTimeout
from ._framing import FramingName
from ._json_hook import Default, make_codec
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
from ._unix import UnixPath, unix_path

__all__ = ["Call", "RPCClient", "connect"]

# How long close() waits for the peer to take what is still buffered before dropping it.
_CLOSE_FLUSH = 5.0
_RESOLUTION = 1e-6  # the least time left a batch's members get (a timeout must be positive)


class RPCClient:
    """An asyncio JSON-RPC 2.0 client over one connection; get one with ``await aio.connect()``.

    ``await client.add(1, 2)`` calls remote ``add``; ``call``, ``notify``, ``batch``,
    ``connect``, ``with_timeout`` and ``close`` are the client's own names (reach a
    remote method named like one of them with ``call("close")``). Any number of tasks may
    call at once: requests are pipelined on the connection and replies matched by id.

    ``timeout`` (seconds, None = wait for ever) bounds every call and raises
    :class:`RPCTimeout`; ``asyncio.timeout()`` around a call works too. A call whose
    task is cancelled or times out leaves the connection usable; its late reply is
    dropped. When the connection breaks every pending call raises ConnectionLost.
    """

    def __init__(self, link: Link, *, timeout: float | None = None) -> None:
        if not isinstance(link, Link):  # (a user's aio.RPCClient(host, port), as the sync client's)
            raise TypeError(f"make an aio.RPCClient with `await aio.connect(host, port)` (got {link!r})")
        self._link = link
        self._current = _Current(link)  # (the kept methods' way to the connection: connect() moves it)
        self._timeout = check_timeout(timeout)

    @property
    def _connected(self) -> bool:
        # Private on purpose: API.md reserves only call/notify/batch/connect/close/
        # with_timeout and _names, so "connected" must stay a remote method name.
        return self._link.lost is None

    def __getattr__(self, name: str) -> KeptMethod[Call] | RemoteMethod[Any]:
        if name.startswith("_"):
            raise private_name(name, name)  # Python's names, and ours before __init__ set them (copy, pickle)
        return kept_attribute(self, RPCClient.call, self._current, name, self._timeout)

    def call(self, method: str, /, *args: Any, **kwargs: Any) -> Call:
        """Call remote ``method`` with these arguments; ``await`` the result.

        The request is sent at once (with other calls of this loop iteration) and
        the returned :class:`Call` (a future, also usable as a coroutine) resolves to
        the result or raises the call's error, so ``asyncio.gather(*(c.add(i, 1) for
        i in range(1000)))`` pipelines without a task per call. Raises
        ConnectionLost at once if the connection is gone.
        """
        if not isinstance(method, str):
            raise not_a_method_name(method)
        return self._link.request(method, build_params(args, kwargs), self._timeout)

    async def notify(self, method: str, /, *args: Any, **kwargs: Any) -> None:
        """Send a notification: ``method`` runs remotely, nothing comes back."""
        if not isinstance(method, str):
            raise not_a_method_name(method)
        link = self._link
        link.check(method)
        data = link.proto.encode(Notification(method, build_params(args, kwargs)))
        if link.paused:
            await self._writable(method)
        # Its place in the output is taken here: a call made while it waited to write
        # went out before it and is no witness of it (see ClientConnection.unread_before).
        link.proto.sent_unanswered()
        link.send(data, method)

    def batch(self) -> AsyncBatchBuilder:
        """Collect calls; ``async with client.batch() as b:`` sends them as one array on exit."""
        return AsyncBatchBuilder(self._send_batch)

    async def _send_batch(self, calls: list[tuple[str, Params, bool]]) -> list[Callable[[], Any]]:
        link = self._link
        link.check(None)
        messages: list[Request | Notification] = [
            Notification(method, params) if notify else Request(method, params, link.proto.next_id())
            for method, params, notify in calls
        ]
        data = link.proto.encode(messages)
        timeout = self._timeout
        if link.paused:
            timeout = await self._writable(None)
            link.check(None)
        if any(notify for _, _, notify in calls):
            link.proto.sent_unanswered()  # here, as in notify; the batch's first call witnesses it
        # Every member gets what is left of the client's timeout: it bounds the whole batch.
        waits = [(m, link.expect(m.id, m.method, timeout)) for m in messages if isinstance(m, Request)]
        ids = [message.id for message, _ in waits]
        link.proto.expect_batch(ids)  # members the reply array leaves out fail at once
        try:
            link.send(data, None)
            if waits:
                await asyncio.gather(*(future for _, future in waits), return_exceptions=True)
        finally:
            link.proto.forget_batch(ids)
            for message, future in waits:
                if not future.done():
                    link.forget(message.id)
        return [_deferred(future) for _, future in waits]

    async def _writable(self, method: str | None) -> float | None:
        """Wait while the write buffer is full (a server not reading), within the client's timeout.

        Returns the time left of the timeout (None: no timeout); RPCTimeout when it
        runs out first (nothing of this message was written; the connection stays).
        It names ``method`` in ``.method``; None: a batch, which names no remote
        method (``.method`` None, "batch: " in the message, as the sync client's).
        """
        link, timeout = self._link, self._timeout
        if timeout is None or timeout > LONGEST_WAIT:
            await link.writable()
            return timeout
        start = link.loop.time()
        if not await link.writable(timeout):
            why = f"could not send within {timeout} s (the server is not reading); nothing was sent"
            exc = RPCTimeout(why if method is not None else f"batch: {why}")
            exc.method = method or None
            raise exc
        return max(timeout - (link.loop.time() - start), _RESOLUTION)

    def with_timeout(self, timeout: float | None) -> RPCClient:
        """A view of the same connection whose calls use ``timeout`` seconds."""
        return RPCClient(self._link, timeout=timeout)

    async def connect(
        self,
        host: str | None = "127.0.0.1",
        port: int | None = 5000,
        *,
        path: UnixPath | None = None,
        ssl: _ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> RPCClient:
        """Connect again once the connection is closed or lost (as the sync client's ``connect``); returns self.

        The new connection has this client's timeout, framing and limits; methods
        kept or saved before (``add = client.add``) call on it, as the sync client's
        do; views made with ``with_timeout`` before stay on the old one. RPCError
        while the client is still connected (also when another task connected it
        meanwhile; not when that connection is already closed or lost again).
        """
        old = self._link
        if old.lost is None:
            raise RPCError(None, _CONNECTED)
        proto = ClientConnection(
            framing=cast(FramingName, old.proto.framing),
            codec=old.proto.codec,
            max_message_size=old.proto.max_message_size,
            max_depth=old.proto.max_depth,
        )
        link = await _opened(
            proto, host, port, unix_path(path), ssl=ssl, server_hostname=server_hostname, timeout=self._timeout
        )
        if self._link.lost is None:  # another task connected this client meanwhile: keep its connection
            link.fail_all("the client was closed")
            await asyncio.wait([link.closed], timeout=_CLOSE_FLUSH)
            raise RPCError(None, _CONNECTED)
        self._link = link
        self._current.request = link.request
        return self

    async def close(self) -> None:
        """Close the connection; pending calls fail with ConnectionLost. Idempotent.

        What is already written (a notification, say) still goes out: the close
        waits up to ``_CLOSE_FLUSH`` seconds (5; at most the client's timeout, when
        it has one) for the peer to take it, then drops the rest and closes anyway
        (a peer that reads nothing must not keep the socket).
        """
        link = self._link
        link.fail_all("the client was closed")
        flush = _CLOSE_FLUSH if self._timeout is None else min(_CLOSE_FLUSH, self._timeout)
        done, _ = await asyncio.wait([link.closed], timeout=flush)
        if not done and link.transport is not None:
            try:
                link.transport.abort()
            except NotImplementedError:  # a transport without abort() (a test double)
                return
            await asyncio.wait([link.closed], timeout=1.0)

    def __enter__(self) -> RPCClient:
        raise TypeError("an asyncio client needs 'async with' (`async with aio.connect(host, port) as c:`), not 'with'")

    def __exit__(self, *exc_info: object) -> None:  # pragma: no cover - __enter__ always raises
        return None

    async def __aenter__(self) -> RPCClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return client_repr("aio.RPCClient", self._connected, self._link.peer, self._timeout)


class _Current:
    """The connection an aio client uses now; ``connect()`` replaces it.

    The client's kept methods (``client.add``) call through this, so a method kept
    or saved by the caller follows a reconnect, as the sync client's do. It holds
    no reference to the client (a cycle would keep a dropped client's connection
    open until the garbage collector ran). Speed: ``request`` is the current link's
    bound method itself, not a method of this class calling it: a kept method's
    call costs no frame more than one holding the link did.
    """

    __slots__ = ("request",)

    def __init__(self, link: Link) -> None:
        self.request: Callable[[str, CallParams, float | None], Call] = link.request


_CONNECTED = "this client is already connected; close() it first or make a new one with aio.connect()"


def _deferred(future: asyncio.Future[Any]) -> Callable[[], Any]:
    exc = future.exception()  # retrieved now: a member nobody asks about is not an error

    def result() -> Any:
        if exc is not None:
            raise exc
        return future.result()

    return result


@coroutine_function  # (for asyncio, as the ``async def`` it was: a mock.patch of it awaits)
def connect(
    host: str | None = "127.0.0.1",
    port: int | None = 5000,
    *,
    path: UnixPath | None = None,
    ssl: _ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    timeout: float | None = None,
    framing: FramingName = "newline",
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    max_depth: int = DEFAULT_MAX_DEPTH,
    default: Default | None = None,
) -> Connecting:
    """Connect to a server: ``await`` it for an :class:`RPCClient`, or ``async with`` it.

    ``async with await aio.connect(...) as c:`` and ``async with aio.connect(...) as c:``
    both connect and close the client on exit.

    TCP by default, TLS with ``ssl=`` (an ``ssl.SSLContext``), a Unix socket with
    ``path=``. ``timeout`` bounds connecting and becomes the client's per-call
    timeout. ``framing`` is ``"newline"`` (default) or ``"content-length"``.
    Raises ConnectionLost if the server cannot be reached, RPCTimeout if
    connecting takes longer than ``timeout``. ``max_message_size`` (bytes) and
    ``max_depth`` (nesting levels) bound a reply: a larger one loses the
    connection, a deeper one fails its call. ``default`` (a callable, as
    ``json.dumps``' ``default``) turns an argument of a type JSON lacks into one
    it has; ``connect()`` again keeps it.
    """
    return Connecting(
        _connect(
            host,
            port,
            path=path,
            ssl=ssl,
            server_hostname=server_hostname,
            timeout=timeout,
            framing=framing,
            max_message_size=max_message_size,
            max_depth=max_depth,
            default=default,
        )
    )


async def _connect(
    host: str | None = "127.0.0.1",
    port: int | None = 5000,
    *,
    path: UnixPath | None = None,
    ssl: _ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    timeout: float | None = None,
    framing: FramingName = "newline",
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    max_depth: int = DEFAULT_MAX_DEPTH,
    default: Default | None = None,
) -> RPCClient:
    """What connect() awaits."""
    timeout = check_timeout(timeout)
    path = unix_path(path)  # (as the other entry points; asyncio would also take the others)
    codec = make_codec(default=default)
    proto = ClientConnection(framing=framing, codec=codec, max_message_size=max_message_size, max_depth=max_depth)
    return RPCClient(
        await _opened(proto, host, port, path, ssl=ssl, server_hostname=server_hostname, timeout=timeout),
        timeout=timeout,
    )


_connect.__qualname__ = _connect.__name__ = "connect"  # (Python's "coroutine 'connect' was never awaited")


async def _opened(
    proto: ClientConnection,
    host: str | None,
    port: int | None,
    path: str | None,
    *,
    ssl: _ssl.SSLContext | None,
    server_hostname: str | None,
    timeout: float | None,
) -> Link:
    """``_open`` within ``timeout``, its failures as ConnectionLost/RPCTimeout (connect's errors)."""
    target = connect_target(host, port, path)
    with connect_errors(target, timeout):
        async with asyncio.timeout(timeout):
            link = await _open(proto, host, port, path, ssl=ssl, server_hostname=server_hostname)
    link.peer = target  # (for repr)
    return link


async def _open(
    proto: ClientConnection,
    host: str | None,
    port: int | None,
    path: str | None,
    *,
    ssl: _ssl.SSLContext | None,
    server_hostname: str | None,
) -> Link:
    """Connect and, with ``ssl``, do the TLS handshake: the link of a new client.

    TLS starts on a plain connection (``start_tls``) rather than through connect's
    ``ssl=``, so that the link holds the plain transport too: its close does not
    wait long for the server's close_notify (see ``Link.fail_all``). The checks of
    ``server_hostname`` are asyncio's for ``ssl=``.
    """
    loop = asyncio.get_running_loop()
    plain_hostname = server_hostname if ssl is None else None  # (asyncio refuses one without ssl=)
    if path is not None:
        if ssl is not None and server_hostname is None:
            raise ValueError("you have to pass server_hostname when using ssl")
        raw, link = await loop.create_unix_connection(lambda: Link(proto), path, server_hostname=plain_hostname)
    else:
        if host is None or port is None:
            raise ValueError("connect needs host and port (or path= for a Unix socket)")
        check_port(port)
        if ssl is not None and server_hostname is None:
            if not host:
                raise ValueError("You must set server_hostname when using ssl without a host")
            server_hostname = host
        raw, link = await loop.create_connection(lambda: Link(proto), host, port, server_hostname=plain_hostname)
    if ssl is not None:
        try:
            tls = await loop.start_tls(raw, link, ssl, server_hostname=server_hostname)
        except ConnectionResetError as exc:
            if str(exc):
                raise
            # asyncio's word for a peer that closed during the handshake: ConnectionResetError()
            raise ConnectionResetError("the server closed the connection during the TLS handshake") from exc
        link.transport = cast(asyncio.Transport, tls)  # (None only for a transport closed meanwhile)
        link.under = raw
    return link
