"""The test kit under asyncio: ``aio_loopback()`` (``AioLoopbackServer``: ``_aio_loopback_server``).

Both apply a :class:`~jsonrpc_mini.testing.FaultPlan` with the same seeded decisions
as the blocking ``loopback``/``LoopbackServer`` (``LinkState``), moved by asyncio
tasks: ``aio_loopback`` joins an ``aio.RPCClient`` to an ``aio.RPCServer`` in
memory; ``AioLoopbackServer`` puts the server on a real 127.0.0.1 port behind a
fault-injecting asyncio proxy, so any client (asyncio or not) can be tested.

Both are meant for ``async with``. Left open (the block never exited: the
context manager dropped, or the event loop ended first), they close themselves
when their event loop closes its async generators (``asyncio.run`` does; so does
``loop.shutdown_asyncgens()``) or when the context manager is collected, and warn
with a ``ResourceWarning`` saying so; nothing is left for the loop to report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from .._aio_client import RPCClient
from .._aio_link import Link as ClientLink
from .._aio_runner import log_destroy
from .._client_protocol import ClientConnection
from .._errors import ConnectionLost
from .._framing import FramingName
from .._json_hook import Default, make_codec
from .._protocol import DEFAULT_MAX_DEPTH, DEFAULT_MAX_MESSAGE_SIZE
from ._aio_links import memory_link
from ._kit_args import check_client_args, check_connection, check_kit_args
from ._loopback import DEFAULT_TIMEOUT, add_plan_note
from ._plan import FaultPlan, LinkState
from ._uses import aio_hold, aio_release

if TYPE_CHECKING:
    from .._aio_server import RPCServer as AioRPCServer

__all__ = ["LEFT_OPEN", "aio_loopback"]

log = logging.getLogger("jsonrpc_mini.testing")

_JOIN = 5.0  # how long the exit waits for the server's side to finish
LEFT_OPEN = (
    "{} was left open (its context manager was dropped, or the event loop ended, before the "
    "`async with` block was left); it is closed now. Use it as `async with ...`."
)


def aio_loopback(
    server: AioRPCServer,
    faults: FaultPlan | None = None,
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
    framing: FramingName = "newline",
    connection: int = 0,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    max_depth: int = DEFAULT_MAX_DEPTH,
    default: Default | None = None,
) -> contextlib.AbstractAsyncContextManager[RPCClient]:
    """Yield an ``aio.RPCClient`` served by an ``aio.RPCServer`` in memory (no socket).

    ``faults`` applies a :class:`FaultPlan` (same seed, same cut and failure points
    as with ``loopback``); ``timeout`` bounds every call (10 s by default, so a
    fault never hangs a test); ``max_message_size``, ``max_depth`` and ``default``
    (the encoder hook for arguments of types JSON lacks) are the client's;
    ``connection`` is which connection of the plan the link is (as for
    ``loopback``). On exit the client is closed and the server's side
    of the connection finishes (bytes the plan still holds in flight are dropped:
    the exit does not wait for their delays); an exception leaving the block gets a note naming
    the plan and its seed. While open it counts as a user of ``server``: an
    ``AioLoopbackServer`` that started the server and leaves first does not shut
    it down (the last user out does). Use it with ``async with``: entered by hand and left
    open, it is closed (with a ``ResourceWarning``) when the context manager is
    collected or the event loop ends, and its client then raises ``ConnectionLost``.

    Example::

        from jsonrpc_mini import aio
        from jsonrpc_mini.testing import FaultPlan, aio_loopback
        server = aio.RPCServer()
        server.register_function(lambda a, b: a + b, name="add")
        async with aio_loopback(server, faults=FaultPlan(seed=3, max_chunk=1)) as client:
            assert await client.add(1, 2) == 3
    """
    __tracebackhide__ = True  # (a usage error is raised here, on the user's call: see _kit_args)
    check_kit_args("aio_loopback", server, faults, aio=True)
    check_client_args(timeout, framing, max_message_size, max_depth, default)
    check_connection("aio_loopback", connection)
    return _aio_loopback(
        server,
        faults,
        timeout=timeout,
        framing=framing,
        connection=connection,
        max_message_size=max_message_size,
        max_depth=max_depth,
        default=default,
    )


@contextlib.asynccontextmanager
async def _aio_loopback(
    server: AioRPCServer,
    faults: FaultPlan | None,
    *,
    timeout: float | None,
    framing: FramingName,
    connection: int,
    max_message_size: int,
    max_depth: int,
    default: Default | None,
) -> AsyncIterator[RPCClient]:
    plan = faults if faults is not None and faults.active else None
    if plan is not None and (refusal := LinkState(plan, connection).refused()) is not None:
        raise ConnectionLost(refusal, request_sent=False)
    await aio_hold(server)  # a user of the server: an AioLoopbackServer leaving first does not shut it down
    try:
        codec = make_codec(default=default)  # (the plain JsonCodec without a hook, as aio.connect's)
        proto = ClientConnection(framing=framing, codec=codec, max_message_size=max_message_size, max_depth=max_depth)
        client_protocol = ClientLink(proto)
        _, server_end, link = memory_link(client_protocol, server.protocol(), plan, connection)
    except BaseException:
        await aio_release(server)
        raise
    client = RPCClient(client_protocol, timeout=timeout)
    owner = asyncio.current_task()
    left = False  # the block was left (normally or by an exception), not abandoned
    try:
        yield client
        left = True
    except GeneratorExit:  # closed from outside: collected, or the loop's end closed it
        raise
    except asyncio.CancelledError as exc:
        # Dropped, its finalizer's task (not the one that entered) is cancelled by the
        # loop's end before it ran: abandoned. A block cancelled in its own task was left.
        left = asyncio.current_task() is owner
        if left:
            add_plan_note(exc, faults)
        raise
    except BaseException as exc:
        left = True
        add_plan_note(exc, faults)
        raise
    finally:
        cleanup = asyncio.current_task()
        if not left and cleanup is not None:  # it may itself be cut short by a loop closed by hand
            log_destroy(cleanup, False)
        try:
            await client.close()
            # As over a socket, the server reads what the client sent before it closes
            # (a notification sent right before exit still runs); force it only if stuck.
            # Bytes the plan still holds in flight (a call that timed out) are dropped:
            # the exit does not wait for their delays.
            link.drop_in_flight()
            done, _ = await asyncio.wait(link.tasks, timeout=_JOIN)
            if len(done) < len(link.tasks):
                log.warning("aio_loopback: the server side did not finish within %.0f s; closing it", _JOIN)
                server_end.lose(None)
            await link.wait_closed(1.0)
            if not left or any(task.cancelled() for task in link.tasks):
                # Cut short (abandoned, or the loop's end cancelled the link before the
                # EOF crossed): the server's side must still hear the end. Not otherwise:
                # it ends its connection itself once its calls are answered, and cutting
                # it here made the server forget calls still running (shutdown() then
                # returned at once while a handler ran on).
                server_end.lose(None)
        finally:
            try:
                await aio_release(server, shut=left)
            finally:
                if not left:
                    warnings.warn(LEFT_OPEN.format("aio_loopback()"), ResourceWarning, stacklevel=1)
