"""The asyncio client: ``await aio.connect(...)`` -> ``aio.RPCClient``.

Go net/rpc's shape on an event loop: a counter for ids, a map of pending calls
(id -> future), and one protocol whose ``data_received`` feeds the sans-IO
ClientConnection and resolves futures by id. Futures only ever get a *result*
(the reply, or a ConnectionLost value) so an abandoned call never logs "exception
was never retrieved"; the caller turns it into a value or an exception. When the
connection breaks, ``_Link.fail_all`` is the one error path.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as _ssl
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, cast

from ._aio_batch import AsyncBatchBuilder
from ._codec import ErrorResponse, Id, Notification, Params, Request, Response, build_params
from ._errors import ConnectionLost, RPCTimeout, error_from_response
from ._framing import FramingName
from ._protocol import DEFAULT_MAX_MESSAGE_SIZE, ClientConnection, Closed, Violation

__all__ = ["RPCClient", "connect"]

log = logging.getLogger("jsonrpc_mini")

Reply = Response | ErrorResponse | ConnectionLost


class _Link(asyncio.Protocol):
    """One connection, shared by an RPCClient and its ``with_timeout`` views."""

    def __init__(self, proto: ClientConnection) -> None:
        self.proto = proto
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.pending: dict[Id, tuple[asyncio.Future[Reply], str]] = {}
        self.lost: str | None = None
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self._write_ready: asyncio.Future[None] | None = None
        self._out: list[bytes] | None = None

    # -- asyncio callbacks -----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Remember the transport."""
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        """Feed the core; hand each reply to the call waiting for its id."""
        proto = self.proto
        proto.receive_data(data)
        while (event := proto.next_event()) is not None:
            self._deliver(event)

    def eof_received(self) -> bool:
        """The server closed its side: every call still pending has lost its reply."""
        self.data_received(b"")
        self.fail_all("connection closed by the server")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail every pending call; wake anyone waiting to write."""
        self.fail_all(f"connection lost: {exc}" if exc is not None else "connection closed")
        if self._write_ready is not None and not self._write_ready.done():
            self._write_ready.set_result(None)
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        """The server reads slower than we send: callers wait before writing more."""
        if self._write_ready is None or self._write_ready.done():
            self._write_ready = self.loop.create_future()

    def resume_writing(self) -> None:
        """The write buffer drained."""
        if self._write_ready is not None and not self._write_ready.done():
            self._write_ready.set_result(None)

    # -- sending ---------------------------------------------------------------

    def check(self, method: str | None) -> None:
        """Raise ConnectionLost if the connection is gone."""
        if self.lost is not None:
            exc = ConnectionLost(self.lost)
            exc.method = method
            raise exc

    async def send(self, data: bytes, method: str | None) -> None:
        """Write ``data``, first waiting while the transport's buffer is full."""
        while self._write_ready is not None and not self._write_ready.done():
            await self._write_ready
        self.check(method)
        # The first message of a loop iteration goes out at once; later ones in the
        # same iteration (pipelined calls) are joined into one write by flush().
        if self._out is not None:
            self._out.append(data)
            return
        assert self.transport is not None
        self.transport.write(data)
        self._out = []
        self.loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write what send() held back in this loop iteration."""
        out, self._out = self._out, None
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(out))

    def expect(self, id_: Id, method: str) -> asyncio.Future[Reply]:
        """Register a pending call and return the future its reply will resolve."""
        future: asyncio.Future[Reply] = self.loop.create_future()
        self.pending[id_] = (future, method)
        return future

    # -- receiving -------------------------------------------------------------

    def _deliver(self, event: Response | ErrorResponse | Violation | Closed) -> None:
        if isinstance(event, Closed):
            self.fail_all("connection closed by the server")
            return
        if isinstance(event, Violation):
            self._violation(event)
            return
        entry = self.pending.pop(event.id, None)
        if entry is None:
            log.debug("dropping reply for unknown, timed-out or cancelled id %r", event.id)
            return
        if not entry[0].done():
            entry[0].set_result(event)

    def _violation(self, event: Violation) -> None:
        # An error with id null answers a request the server could not read. With a
        # single call outstanding it can only be that call's; otherwise it is logged.
        if event.error is None or len(self.pending) != 1:
            log.warning("ignoring message from server: %s", event.reason)
            return
        id_ = next(iter(self.pending))
        future, _ = self.pending.pop(id_)
        if not future.done():
            future.set_result(ErrorResponse(id_, event.error))

    def fail_all(self, reason: str) -> None:
        """The single error path: mark the link lost and fail every pending call."""
        if self.lost is None:
            self.lost = reason
        pending, self.pending = self.pending, {}
        for future, _ in pending.values():
            if not future.done():
                future.set_result(ConnectionLost(self.lost))
        if self.transport is not None:
            self.flush()
            self.transport.close()


class _TimedOut:
    """The value a call's future gets when its timeout expires first."""


_TIMED_OUT: Any = _TimedOut()


def _expire(future: asyncio.Future[Reply]) -> None:
    if not future.done():
        future.set_result(_TIMED_OUT)


def _expire_all(futures: list[asyncio.Future[Reply]]) -> None:
    for future in futures:
        _expire(future)


def outcome(reply: Reply, method: str) -> Any:
    """The result of a reply, or raise its error (with ``.method`` set)."""
    if isinstance(reply, Response):
        return reply.result
    if isinstance(reply, ErrorResponse):
        err = reply.error
        raise error_from_response(err.code, err.message, err.data, method)
    reply.method = method
    raise reply


class _RemoteMethod:
    """``client.name(...)``: a coroutine calling remote ``name``; ``client.a.b(...)`` calls ``a.b``."""

    __slots__ = ("_client", "_name")

    def __init__(self, client: RPCClient, name: str) -> None:
        self._client = client
        self._name = name

    def __getattr__(self, name: str) -> _RemoteMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        return _RemoteMethod(self._client, f"{self._name}.{name}")

    def __call__(self, /, *args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        return self._client.call(self._name, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<remote method {self._name!r}>"


class RPCClient:
    """An asyncio JSON-RPC 2.0 client over one connection; get one with ``await aio.connect()``.

    ``await client.add(1, 2)`` calls remote ``add``; ``call``, ``notify``, ``batch``,
    ``with_timeout`` and ``close`` are the client's own names (reach a remote
    method named like one of them with ``call("close")``). Any number of tasks may
    call at once: requests are pipelined on the connection and replies matched by id.

    ``timeout`` (seconds, None = wait for ever) bounds every call and raises
    :class:`RPCTimeout`; ``asyncio.timeout()`` around a call works too. A call whose
    task is cancelled or times out leaves the connection usable; its late reply is
    dropped. When the connection breaks every pending call raises ConnectionLost.
    """

    def __init__(self, link: _Link, *, timeout: float | None = None) -> None:
        self._link = link
        self._timeout = _check_timeout(timeout)

    @property
    def timeout(self) -> float | None:
        """The per-call timeout of this client (or view), in seconds."""
        return self._timeout

    @property
    def connected(self) -> bool:
        """Whether the connection is open (as far as the client knows)."""
        return self._link.lost is None

    def __getattr__(self, name: str) -> _RemoteMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        return _RemoteMethod(self, name)

    async def call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call remote ``method`` with these arguments and return its result."""
        link = self._link
        link.check(method)
        request = Request(method, build_params(args, kwargs), link.proto.next_id())
        data = link.proto.encode(request)
        future = link.expect(request.id, method)
        timer = None
        try:
            await link.send(data, method)
            if self._timeout is not None:
                timer = link.loop.call_later(self._timeout, _expire, future)
            reply = await future
        finally:
            link.pending.pop(request.id, None)  # a cancelled or timed-out call: drop its late reply
            if timer is not None:
                timer.cancel()
        if reply is _TIMED_OUT:
            raise RPCTimeout(f"{method}: no reply within {self._timeout} s; a late reply will be dropped")
        return outcome(reply, method)

    async def notify(self, method: str, /, *args: Any, **kwargs: Any) -> None:
        """Send a notification: ``method`` runs remotely, nothing comes back."""
        link = self._link
        link.check(method)
        await link.send(link.proto.encode(Notification(method, build_params(args, kwargs))), method)

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
        waits = [(m.id, link.expect(m.id, m.method), m.method) for m in messages if isinstance(m, Request)]
        outcomes: list[Callable[[], Any]] = []
        timer = None
        try:
            await link.send(data, None)
            if self._timeout is not None:  # the timeout bounds the whole batch
                timer = link.loop.call_later(self._timeout, _expire_all, [future for _, future, _ in waits])
            for _, future, _ in waits:
                await future
        finally:
            for id_, _, _ in waits:
                link.pending.pop(id_, None)
            if timer is not None:
                timer.cancel()
        for _, future, method in waits:
            reply: Reply | RPCTimeout = future.result()
            if reply is _TIMED_OUT:
                reply = RPCTimeout(f"{method}: no reply within {self._timeout} s; a late reply will be dropped")
            outcomes.append(_deferred(reply, method))
        return outcomes

    def with_timeout(self, timeout: float | None) -> RPCClient:
        """A view of the same connection whose calls use ``timeout`` seconds."""
        return RPCClient(self._link, timeout=timeout)

    async def close(self) -> None:
        """Close the connection; pending calls fail with ConnectionLost. Idempotent."""
        self._link.fail_all("the client was closed")
        await asyncio.wait([self._link.closed], timeout=5.0)

    async def __aenter__(self) -> RPCClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "connected" if self.connected else "not connected"
        return f"<aio.RPCClient {state} timeout={self._timeout}>"


def _deferred(reply: Reply | RPCTimeout, method: str) -> Callable[[], Any]:
    def result() -> Any:
        if isinstance(reply, RPCTimeout):
            raise reply
        return outcome(reply, method)

    return result


async def connect(
    host: str | None = "127.0.0.1",
    port: int | None = 5000,
    *,
    path: str | None = None,
    ssl: _ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    timeout: float | None = None,
    framing: FramingName = "newline",
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
) -> RPCClient:
    """Connect to a server and return an :class:`RPCClient` (use it with ``async with``).

    TCP by default, TLS with ``ssl=`` (an ``ssl.SSLContext``), a Unix socket with
    ``path=``. ``timeout`` bounds connecting and becomes the client's per-call
    timeout. ``framing`` is ``"newline"`` (default) or ``"content-length"``.
    Raises ConnectionLost if the server cannot be reached, RPCTimeout if
    connecting takes longer than ``timeout``.
    """
    timeout = _check_timeout(timeout)
    proto = ClientConnection(framing=framing, max_message_size=max_message_size)
    loop = asyncio.get_running_loop()
    where = path if path is not None else f"{host}:{port}"
    link: _Link
    try:
        async with asyncio.timeout(timeout):
            if path is not None:
                _, link = await loop.create_unix_connection(
                    lambda: _Link(proto), path, ssl=ssl, server_hostname=server_hostname
                )
            else:
                if host is None or port is None:
                    raise ValueError("connect needs host and port (or path= for a Unix socket)")
                _, link = await loop.create_connection(
                    lambda: _Link(proto), host, port, ssl=ssl, server_hostname=server_hostname
                )
    except TimeoutError as exc:
        raise RPCTimeout(f"connecting to {where} timed out after {timeout} s") from exc
    except _ssl.SSLError as exc:
        raise ConnectionLost(f"TLS handshake with {where} failed: {exc}") from exc
    except OSError as exc:
        raise ConnectionLost(f"cannot connect to {where}: {exc}") from exc
    return RPCClient(link, timeout=timeout)


def _check_timeout(timeout: float | None) -> float | None:
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds or None, not {timeout!r}")
    return timeout
