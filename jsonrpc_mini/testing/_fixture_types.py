"""The types of the pytest plugin's factory fixtures, for the type hints of users' tests.

``def test_add(jsonrpc_loopback: LoopbackFactory) -> None`` lets mypy check the
calls a test makes. The other fixtures are plain library types: ``jsonrpc_seed`` an
``int``, ``jsonrpc_faults`` a :class:`FaultPlan`, ``jsonrpc_no_leaks`` a
:class:`Resources`. Importable without pytest (nothing here imports it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterable
    from types import EllipsisType

    from .._aio_server import RPCServer as AioRPCServer
    from .._client import RPCClient
    from .._framing import FramingName
    from .._json_hook import Default
    from .._server import RPCServer
    from ._fake_socket import FakeSocket, ScriptItem
    from ._per_connection import KitFaults
    from ._plan import FaultPlan
    from ._proxy import LoopbackServer

__all__ = ["FakeSocketFactory", "LoopbackFactory", "LoopbackServerFactory"]


class LoopbackFactory(Protocol):
    """The ``jsonrpc_loopback`` fixture: ``jsonrpc_loopback(server)`` -> an in-memory ``RPCClient``.

    The keywords are :func:`~jsonrpc_mini.testing.loopback`'s; ``faults`` defaults to
    the test's plan (its ``jsonrpc_faults`` marker), which ``faults=...`` asks for too, and ``connection`` is counted by
    the fixture (the test's first client is connection 0, the next 1, ...). Every
    client is closed at teardown.
    """

    def __call__(
        self,
        server: RPCServer,
        faults: FaultPlan | EllipsisType | None = ...,
        *,
        timeout: float | None = ...,
        framing: FramingName = ...,
        max_message_size: int = ...,
        max_depth: int = ...,
        default: Default | None = ...,
    ) -> RPCClient:
        """Connect a client to ``server`` in memory, through ``faults``."""
        ...


class LoopbackServerFactory(Protocol):
    """The ``jsonrpc_server`` fixture: ``jsonrpc_server(server)`` -> a started :class:`LoopbackServer`.

    The keywords are ``LoopbackServer``'s; ``faults`` defaults to the test's plan (as
    ``faults=...`` does) and
    takes a list of plans (one per connection) as ``LoopbackServer`` does. ``server``
    may be an ``aio.RPCServer`` (run on a loop of the LoopbackServer's own). Every
    server is closed at teardown.
    """

    def __call__(
        self,
        server: RPCServer | AioRPCServer,
        faults: KitFaults | EllipsisType = ...,
        *,
        host: str = ...,
        timeout: float | None = ...,
    ) -> LoopbackServer:
        """Serve ``server`` on a real port behind the fault proxy."""
        ...


class FakeSocketFactory(Protocol):
    """The ``jsonrpc_fake_socket`` fixture: ``jsonrpc_fake_socket(inbound, **options)`` -> a :class:`FakeSocket`.

    The arguments are ``FakeSocket``'s; every socket is closed at teardown.
    """

    def __call__(
        self,
        inbound: Iterable[ScriptItem] = ...,
        *,
        eof: bool = ...,
        max_send: int | None = ...,
        fail_send_after: int | None = ...,
        send_error: BaseException | type[BaseException] = ...,
        family: int = ...,
        type: int = ...,
        peer: Any = ...,
        local: Any = ...,
    ) -> FakeSocket:
        """A socket-like object that reads ``inbound`` and records what is written."""
        ...
