"""``loopback()``: an RPCClient joined to a server in memory, optionally through a fault plan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .._client import RPCClient
from .._errors import ConnectionLost
from .._framing import FramingName
from .._json_hook import Default
from .._protocol import DEFAULT_MAX_DEPTH, DEFAULT_MAX_MESSAGE_SIZE
from ._faults import FaultyTransport
from ._kit_args import check_client_args, check_connection, check_kit_args
from ._pipe import pipe_pair
from ._plan import FaultPlan, LinkState
from ._uses import hold, release

if TYPE_CHECKING:
    from .._server import RPCServer

__all__ = ["DEFAULT_TIMEOUT", "add_plan_note", "loopback"]

log = logging.getLogger("jsonrpc_mini.testing")

DEFAULT_TIMEOUT = 10.0
"""Per-call timeout of test-kit clients unless told otherwise: a fault never hangs a test."""

_JOIN = 5.0


def add_plan_note(exc: BaseException, plan: FaultPlan | None) -> None:
    """Attach the plan (with its seed) to an exception escaping a faulty connection."""
    if plan is not None and plan.active:
        note = f"jsonrpc_mini fault plan: {plan!r} (replay with this seed)"
        if note not in getattr(exc, "__notes__", ()):
            exc.add_note(note)


def loopback(
    server: RPCServer,
    faults: FaultPlan | None = None,
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
    framing: FramingName = "newline",
    connection: int = 0,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    max_depth: int = DEFAULT_MAX_DEPTH,
    default: Default | None = None,
) -> contextlib.AbstractContextManager[RPCClient]:
    """Yield an :class:`~jsonrpc_mini.RPCClient` served by ``server`` in memory (no socket).

    ``faults`` applies a :class:`FaultPlan` to the connection; ``timeout`` bounds
    every call (10 s by default, so that a fault never hangs a test);
    ``max_message_size``, ``max_depth`` and ``default`` (the encoder hook for
    arguments of types JSON lacks) are the client's; ``connection`` is
    which connection of the plan the link is (its choices are drawn per connection:
    ``k`` gets those of a ``LoopbackServer``'s ``k``-th, from 0). On exit the
    client is closed and the server side of the connection is stopped and joined
    (bytes the plan still holds in flight are dropped: the exit does not wait for them).
    An exception leaving the block gets a note naming the plan and its seed.
    While open it counts as a user of ``server``: a ``LoopbackServer`` that started
    the server and leaves first does not shut it down (the last user out does).
    A call's timeout also bounds sending its request through the plan's delays.

    Example::

        from jsonrpc_mini import RPCServer
        from jsonrpc_mini.testing import FaultPlan, loopback
        server = RPCServer()
        server.register_function(lambda a, b: a + b, name="add")
        with loopback(server, faults=FaultPlan(seed=3, max_chunk=1)) as client:
            assert client.add(1, 2) == 3
    """
    __tracebackhide__ = True  # (a usage error is raised here, on the user's call: see _kit_args)
    check_kit_args("loopback", server, faults, aio=False)
    check_client_args(timeout, framing, max_message_size, max_depth, default)
    check_connection("loopback", connection)
    return _loopback(
        server,
        faults,
        timeout=timeout,
        framing=framing,
        connection=connection,
        max_message_size=max_message_size,
        max_depth=max_depth,
        default=default,
    )


@contextlib.contextmanager
def _loopback(
    server: RPCServer,
    faults: FaultPlan | None,
    *,
    timeout: float | None,
    framing: FramingName,
    connection: int,
    max_message_size: int,
    max_depth: int,
    default: Default | None,
) -> Iterator[RPCClient]:
    plan = faults if faults is not None and faults.active else None
    link = None if plan is None else LinkState(plan, connection)
    if link is not None and (refusal := link.refused()) is not None:
        raise ConnectionLost(refusal, request_sent=False)
    hold(server)  # a user of the server: a LoopbackServer leaving first does not shut it down
    try:
        client_end, server_end = pipe_pair("loopback")
        session = server.serve_connection(server_end)
    except BaseException:
        release(server)
        raise
    transport = client_end if plan is None else FaultyTransport(client_end, plan, side="client", link=link)
    client = RPCClient(
        transport=transport,
        timeout=timeout,
        framing=framing,
        max_message_size=max_message_size,
        max_depth=max_depth,
        default=default,
    )
    try:
        yield client
    except BaseException as exc:
        add_plan_note(exc, faults)
        raise
    finally:
        try:
            client.close()
            # As over a socket, the server first reads what the client sent before closing
            # (a notification sent right before exit still runs); force it only if stuck.
            # Bytes the plan still holds in flight (a call that timed out) are dropped:
            # the exit does not wait for their delays.
            client_end.drop_in_flight()
            if not session.join(_JOIN):
                server_end.close()
                session.close()
            if not session.join(0.1):
                log.warning("loopback: a handler of the server is still running %.0f s after the client closed", _JOIN)
        finally:
            release(server)
