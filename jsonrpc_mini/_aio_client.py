"""The asyncio client: ``await aio.connect(...)`` -> ``aio.RPCClient``.

Go net/rpc's shape on an event loop: a counter for ids, a map of pending calls
(id -> future), and one protocol whose ``data_received`` feeds the sans-IO
ClientConnection and resolves futures by id. A call returns its future directly
(no task, no coroutine), so ``asyncio.gather`` of many calls pipelines them at
little more than the cost of the bytes. When the connection breaks,
``_Link.fail_all`` is the one error path.
"""

from __future__ import annotations

import asyncio
import collections.abc
import logging
import ssl as _ssl
from collections.abc import Callable, Generator
from types import TracebackType
from typing import Any, cast

from ._aio_batch import AsyncBatchBuilder
from ._codec import ErrorResponse, Id, Notification, Params, Request, Response, build_params
from ._errors import ConnectionLost, RPCTimeout, error_from_response
from ._framing import FramingName
from ._protocol import DEFAULT_MAX_MESSAGE_SIZE, ClientConnection, Closed, Violation

__all__ = ["Call", "RPCClient", "connect"]

log = logging.getLogger("jsonrpc_mini")

# Every this many calls, entries of cancelled calls whose reply never came are swept.
_SWEEP_EVERY = 1024


class Call(asyncio.Future[Any]):
    """A call in flight: ``await`` it for the result. Also usable as a coroutine.

    A future (so ``asyncio.gather`` of many calls creates no task per call) that
    also speaks the coroutine protocol, so ``asyncio.create_task(c.add(1, 2))``
    works as it does for ``async def`` methods.
    """

    _steps: Generator[Any, None, Any] | None = None

    def send(self, value: Any) -> Any:
        """Coroutine protocol: one step of awaiting this call."""
        if self._steps is None:
            self._steps = self.__await__()
        return self._steps.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        """Coroutine protocol: raise into the waiting."""
        if self._steps is None:
            self._steps = self.__await__()
        if val is None and tb is None:
            return self._steps.throw(typ)
        return self._steps.throw(typ, val, tb)  # pragma: no cover - the deprecated 3-argument form

    def close(self) -> None:
        """Coroutine protocol: stop waiting (the call itself is not affected)."""
        if self._steps is not None:
            self._steps.close()


collections.abc.Coroutine.register(Call)


class _Pending:
    """One outstanding call: its future, its method name, its timeout timer."""

    __slots__ = ("future", "method", "timer")

    def __init__(self, future: asyncio.Future[Any], method: str, timer: asyncio.TimerHandle | None) -> None:
        self.future = future
        self.method = method
        self.timer = timer


class _Link(asyncio.Protocol):
    """One connection, shared by an RPCClient and its ``with_timeout`` views."""

    def __init__(self, proto: ClientConnection) -> None:
        self.proto = proto
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.pending: dict[Id, _Pending] = {}
        self.lost: str | None = None
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self._write_ready: asyncio.Future[None] | None = None
        self._out: list[bytes] | None = None
        self._until_sweep = _SWEEP_EVERY
        self._senders: set[asyncio.Task[None]] = set()

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
        """The server reads slower than we send: new calls wait before writing."""
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

    @property
    def paused(self) -> bool:
        """True while writes should wait for ``writable()``."""
        return self._write_ready is not None and not self._write_ready.done()

    async def writable(self) -> None:
        """Wait while the transport's write buffer is over its high-water mark."""
        while self._write_ready is not None and not self._write_ready.done():
            await self._write_ready

    def send(self, data: bytes, method: str | None) -> None:
        """Write ``data`` now, or (pipelined) with the others of this loop iteration."""
        self.check(method)
        # With several calls in flight, messages sent in the same loop iteration
        # (pipelined calls) are joined into one write (one system call) by flush().
        if self._out is not None:
            self._out.append(data)
            return
        assert self.transport is not None
        if len(self.pending) > 1:
            self._out = [data]
            self.loop.call_soon(self.flush)
        else:
            self.transport.write(data)

    def send_soon(self, data: bytes, method: str | None) -> None:
        """Send now, or once the write buffer has drained (back-pressure from a slow server)."""
        if not self.paused:
            self.send(data, method)
            return
        task = self.loop.create_task(self._send_when_writable(data, method))
        self._senders.add(task)
        task.add_done_callback(self._senders.discard)

    async def _send_when_writable(self, data: bytes, method: str | None) -> None:
        await self.writable()
        if self.lost is None:  # else fail_all has failed the call already
            self.send(data, method)

    def flush(self) -> None:
        """Write what send() held back in this loop iteration."""
        out, self._out = self._out, None
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(out))

    def expect(self, id_: Id, method: str, timeout: float | None) -> Call:
        """Register a pending call; its future gets the result or the call's exception."""
        future = Call(loop=self.loop)
        timer = None if timeout is None else self.loop.call_later(timeout, self._expire, id_, timeout)
        self.pending[id_] = _Pending(future, method, timer)
        self._until_sweep -= 1
        if not self._until_sweep:
            self._sweep()
        return future

    def forget(self, id_: Id) -> None:
        """Drop a pending call: a reply arriving for it later is ignored."""
        entry = self.pending.pop(id_, None)
        if entry is not None and entry.timer is not None:
            entry.timer.cancel()

    def _sweep(self) -> None:
        # A cancelled call keeps its entry until its reply arrives; drop those whose
        # reply never does, so the map stays bounded by the calls really in flight.
        self._until_sweep = _SWEEP_EVERY
        for id_ in [id_ for id_, entry in self.pending.items() if entry.future.done()]:
            self.forget(id_)

    def _expire(self, id_: Id, timeout: float) -> None:
        entry = self.pending.pop(id_, None)
        if entry is not None and not entry.future.done():
            why = f"{entry.method}: no reply within {timeout} s; a late reply will be dropped"
            entry.future.set_exception(RPCTimeout(why))

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
            log.debug("dropping reply for unknown or timed-out id %r", event.id)
            return
        if entry.timer is not None:
            entry.timer.cancel()
        future = entry.future
        if future.done():  # the caller gave up (cancelled): drop the late reply
            return
        if isinstance(event, Response):
            future.set_result(event.result)
        else:
            err = event.error
            future.set_exception(error_from_response(err.code, err.message, err.data, entry.method))

    def _violation(self, event: Violation) -> None:
        # An error with id null answers a request the server could not read. With a
        # single call outstanding it can only be that call's; otherwise it is logged.
        live = [id_ for id_, entry in self.pending.items() if not entry.future.done()]
        if event.error is None or len(live) != 1:
            log.warning("ignoring message from server: %s", event.reason)
            return
        self._deliver(ErrorResponse(live[0], event.error))

    def fail_all(self, reason: str) -> None:
        """The single error path: mark the link lost and fail every pending call."""
        if self.lost is None:
            self.lost = reason
        pending, self.pending = self.pending, {}
        for entry in pending.values():
            if entry.timer is not None:
                entry.timer.cancel()
            if not entry.future.done():
                exc = ConnectionLost(self.lost)
                exc.method = entry.method
                entry.future.set_exception(exc)
        if self.transport is not None:
            self.flush()
            self.transport.close()


class _RemoteMethod:
    """``client.name(...)``: calls remote ``name`` (await the result); ``client.a.b(...)`` calls ``a.b``."""

    __slots__ = ("_client", "_name")

    def __init__(self, client: RPCClient, name: str) -> None:
        self._client = client
        self._name = name

    def __getattr__(self, name: str) -> _RemoteMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        return _RemoteMethod(self._client, f"{self._name}.{name}")

    def __call__(self, /, *args: Any, **kwargs: Any) -> Call:
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

    def call(self, method: str, /, *args: Any, **kwargs: Any) -> Call:
        """Call remote ``method`` with these arguments; ``await`` the result.

        The request is sent at once (with other calls of this loop iteration) and
        the returned :class:`Call` (a future, also usable as a coroutine) resolves to
        the result or raises the call's error, so ``asyncio.gather(*(c.add(i, 1) for
        i in range(1000)))`` pipelines without a task per call. Raises
        ConnectionLost at once if the connection is gone.
        """
        link = self._link
        link.check(method)
        id_ = link.proto.next_id()
        data = link.proto.encode(Request(method, build_params(args, kwargs), id_))
        future = link.expect(id_, method, self._timeout)
        link.send_soon(data, method)
        return future

    async def notify(self, method: str, /, *args: Any, **kwargs: Any) -> None:
        """Send a notification: ``method`` runs remotely, nothing comes back."""
        link = self._link
        link.check(method)
        data = link.proto.encode(Notification(method, build_params(args, kwargs)))
        if link.paused:
            await link.writable()
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
        if link.paused:
            await link.writable()
            link.check(None)
        # Every member gets the client's timeout from now: it bounds the whole batch.
        waits = [(m, link.expect(m.id, m.method, self._timeout)) for m in messages if isinstance(m, Request)]
        try:
            link.send(data, None)
            if waits:
                await asyncio.gather(*(future for _, future in waits), return_exceptions=True)
        finally:
            for message, future in waits:
                if not future.done():
                    link.forget(message.id)
        return [_deferred(future) for _, future in waits]

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


def _deferred(future: asyncio.Future[Any]) -> Callable[[], Any]:
    exc = future.exception()  # retrieved now: a member nobody asks about is not an error

    def result() -> Any:
        if exc is not None:
            raise exc
        return future.result()

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
