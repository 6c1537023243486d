"""The test kit under asyncio: ``AioLoopbackServer``, the server behind a fault-injecting proxy.

The server runs on a real 127.0.0.1 port and an asyncio proxy in front applies a
:class:`~jsonrpc_mini.testing.FaultPlan` per connection, with the same seeded
decisions as the blocking ``LoopbackServer``, so any client (asyncio or not) can
be tested. Meant for ``async with``; left open, it closes itself as
``aio_loopback()`` does (``_aio_loopback``). Moved out of ``_aio_loopback``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import warnings
from collections.abc import AsyncGenerator
from types import TracebackType
from typing import TYPE_CHECKING, cast

from .._aio_client import RPCClient, connect
from .._errors import ConnectionLost
from .._framing import FramingName
from .._json_hook import Default
from .._protocol import DEFAULT_MAX_DEPTH, DEFAULT_MAX_MESSAGE_SIZE
from ._aio_links import Link
from ._aio_loopback import LEFT_OPEN
from ._aio_socket_end import _SocketEnd
from ._kit_args import check_kit_args
from ._loopback import DEFAULT_TIMEOUT
from ._per_connection import KitFaults, add_faults_note, as_plans, plan_for
from ._plan import FaultPlan
from ._proxy import INHERIT, _Inherit
from ._uses import aio_acquire, aio_release

if TYPE_CHECKING:
    from .._aio_server import RPCServer as AioRPCServer

__all__ = ["AioLoopbackServer"]

log = logging.getLogger("jsonrpc_mini.testing")
_OUTSIDE = "AioLoopbackServer.client() works inside `async with AioLoopbackServer(...) as lb:`"
_JOIN = 5.0  # how long the exit waits for connection setups, links and the proxy to end
_LINGER = 0.5  # how long a link may take to end by itself on exit


class _Refused(asyncio.Protocol):
    """A connection the proxy accepts while its block is being left: closed at once (a reset)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (Once the transport is made: an abort inside its making is logged as an error.)
        asyncio.get_running_loop().call_soon(cast(asyncio.Transport, transport).abort)


class AioLoopbackServer:
    """An ``aio.RPCServer`` on a real 127.0.0.1 port behind a fault-injecting asyncio proxy.

    Use with ``async with``. ``address`` is the proxy's ``(host, port)`` (faults
    applied), ``direct_address`` the server's own; ``await lb.client()`` opens an
    ``aio.RPCClient`` through the proxy (closed on exit). Connections are numbered
    in accept order, each with its own seeded randomness. ``faults`` may also be a
    list or tuple of ``FaultPlan | None``, one per connection, as for
    ``LoopbackServer``: connection k gets item k (as connection k of that plan), those
    past the end and None items no faults; :attr:`faults` holds it as a tuple.
    The server is started if it is not listening yet (it must not listen on a Unix path: ValueError), and
    shut down when its last user is done: other AioLoopbackServers and
    ``aio_loopback()`` blocks over it count as users while open. Left open (entered by hand
    and never exited), it is closed with a ``ResourceWarning`` when the event loop
    closes its async generators (``asyncio.run`` does); ``client()`` outside the
    block raises ``RuntimeError``.

    Example::

        async with AioLoopbackServer(server, FaultPlan(seed=1, max_chunk=3)) as lb:
            client = await lb.client()
            assert await client.add(1, 2) == 3
    """

    def __init__(
        self,
        server: AioRPCServer,
        faults: KitFaults = None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        host: str = "127.0.0.1",
    ) -> None:
        check_kit_args("AioLoopbackServer", server, faults, aio=True)
        self.server = server
        plans = as_plans(faults)
        self.faults: FaultPlan | tuple[FaultPlan | None, ...] = FaultPlan() if plans is None else plans
        self.timeout = timeout
        self.host = host
        self._holding = False  # counted as a user of the server (see _uses)
        self._proxy: asyncio.Server | None = None
        self._refuser: socket.socket | None = None
        self._links: list[tuple[Link, tuple[_SocketEnd, _SocketEnd]]] = []
        self._clients: list[RPCClient] = []
        self._setups: set[asyncio.Task[None]] = set()
        self._count = 0
        self._guard: AsyncGenerator[None, None] | None = None
        self.address: tuple[str, int] = ("", 0)
        self.direct_address: tuple[str, int] = ("", 0)

    async def __aenter__(self) -> AioLoopbackServer:
        if self._guard is not None:
            raise RuntimeError("this AioLoopbackServer is running already; leave its `async with` block first")
        self.direct_address = await aio_acquire(self.server, self.host)  # (started unless it listens)
        self._holding = True
        try:
            if isinstance(self.faults, FaultPlan) and self.faults.refuse_connect:
                # A bound socket that never listens: connecting to it is refused for real.
                self._refuser = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
                self._refuser.bind((self.host, 0))
                bound = self._refuser.getsockname()
            else:
                self._proxy = await asyncio.get_running_loop().create_server(self._accept, self.host, 0)
                bound = self._proxy.sockets[0].getsockname()
        except BaseException:
            await self._close(shut_server=True)
            raise
        self.address = (bound[0], bound[1])
        self._guard = guard = self._until_loop_ends()
        await anext(guard)
        return self

    async def _until_loop_ends(self) -> AsyncGenerator[None, None]:
        # Entered and never exited: closed when the loop closes its async generators
        # (asyncio.run does, after cancelling every task), or its proxy's sockets and
        # the tasks moving bytes would be left to the loop's end.
        try:
            yield
        finally:
            if self._guard is not None:  # not closed by __aexit__
                self._guard = None
                try:
                    await self._close(shut_server=False)  # (a server we started shuts down by itself)
                finally:
                    warnings.warn(LEFT_OPEN.format("AioLoopbackServer"), ResourceWarning, stacklevel=1)

    def _accept(self) -> asyncio.Protocol:
        if self._guard is None:
            # The block is being left (another task's client() connecting meanwhile): a
            # link made now would land after _close took the list, closed by nobody.
            return _Refused()
        index = self._count
        self._count += 1
        down = _SocketEnd(f"client #{index}")
        up = _SocketEnd(f"server #{index}")
        up.outbound_is_c2s = False
        link = Link(plan_for(self.faults, index) or FaultPlan(), index, down, up)
        down.out = up.out = link
        self._links.append((link, (down, up)))
        task = asyncio.get_running_loop().create_task(self._setup(link, down, up))
        self._setups.add(task)
        task.add_done_callback(self._setups.discard)
        return down

    async def _setup(self, link: Link, down: _SocketEnd, up: _SocketEnd) -> None:
        await down.connected
        try:
            await asyncio.get_running_loop().create_connection(lambda: up, *self.direct_address)
        except OSError as exc:
            log.warning("AioLoopbackServer: cannot reach the server: %s", exc)
            down.lose(None)
            return
        link.start()

    async def client(
        self,
        *,
        timeout: float | _Inherit | None = INHERIT,
        framing: FramingName = "newline",
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_depth: int = DEFAULT_MAX_DEPTH,
        default: Default | None = None,
    ) -> RPCClient:
        """An ``aio.RPCClient`` connected through the proxy (faults applied); closed on exit.

        ``timeout`` defaults to the AioLoopbackServer's (10 s); ``None`` means no
        timeout, as for ``aio.connect``, which refuses (ValueError) what is not a
        positive number of seconds. ``max_message_size``, ``max_depth`` and ``default``
        are the client's (see ``aio.connect``).
        """
        if self._guard is None:
            raise RuntimeError(_OUTSIDE)
        try:
            client = await connect(
                *self.address,
                timeout=self.timeout if isinstance(timeout, _Inherit) else timeout,
                framing=framing,
                max_message_size=max_message_size,
                max_depth=max_depth,
                default=default,
            )
        except ConnectionLost as exc:
            if self._guard is None:  # the block was left while connecting: its proxy refused it
                raise RuntimeError(_OUTSIDE) from None
            add_faults_note(exc, self.faults)
            raise
        if self._guard is None:  # the block was left while this client connected (another task's)
            await client.close()
            raise RuntimeError(_OUTSIDE)
        self._clients.append(client)
        return client

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None:
            add_faults_note(exc, self.faults)
        guard, self._guard = self._guard, None
        if guard is not None:
            await guard.aclose()
        await self._close(shut_server=True)

    async def _close(self, *, shut_server: bool) -> None:
        clients, self._clients = self._clients, []
        links, self._links = self._links, []
        try:
            await self._close_links(clients, links)
        except BaseException:  # cut short (a cancelled exit): stop moving bytes at once
            for link, ends in links:
                link.break_link(None)
                for task in link.tasks:
                    task.cancel()
                for end in ends:
                    end.lose(None)
            raise
        finally:
            # Given back even when the exit is cancelled (a test's timeout): a use kept
            # here would leave the server running, and every later user with it.
            if self._proxy is not None:
                self._proxy.close()
            if self._refuser is not None:
                self._refuser.close()
            self._proxy, self._refuser = None, None
            if self._holding:
                self._holding = False
                await aio_release(self.server, shut=shut_server)  # (counts out before it awaits)

    async def _stop_proxy(self) -> None:
        """Close the proxy's listening socket once the connections it accepted already are made.

        asyncio (3.11) accepts a connection in one step and makes its transport in the
        next; a server closed in between fails to make it (an assertion in
        ``Server._attach``) and leaves its socket open until the garbage collector finds
        it (a ResourceWarning, in whatever test runs then). So the proxy stops taking
        connections first, lets those taken make their transports (``_accept`` closes
        them at once: the block is being left), then closes.
        """
        proxy = self._proxy
        if proxy is None:
            return
        loop = asyncio.get_running_loop()
        for sock in proxy.sockets:
            with contextlib.suppress(NotImplementedError):  # (a loop that does not poll: nothing to wait for)
                loop.remove_reader(sock.fileno())
        await asyncio.sleep(0)  # (the accepts' tasks, scheduled before this, make their transports)
        proxy.close()

    async def _close_links(
        self, clients: list[RPCClient], links: list[tuple[Link, tuple[_SocketEnd, _SocketEnd]]]
    ) -> None:
        for client in clients:
            await client.close()
        await self._stop_proxy()
        if self._refuser is not None:
            self._refuser.close()
        if self._setups:
            await asyncio.wait(self._setups, timeout=_JOIN)
        for link, _ in links:
            link.drop_in_flight()  # what the plan still delays (a call that timed out) is dropped
        for link, ends in links:
            if link.tasks:
                done, _ = await asyncio.wait(link.tasks, timeout=_LINGER)
                if len(done) < len(link.tasks):
                    link.break_link(None)
            await link.wait_closed(_JOIN)
            for end in ends:
                end.lose(None)
        if self._proxy is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._proxy.wait_closed(), _JOIN)
