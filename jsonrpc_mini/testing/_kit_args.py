"""Type checks on entry to the test kits: the server of the kit's driver, a FaultPlan as the plan.

Without them the other driver's server (or a dict as the plan) failed deep inside
with an AttributeError or an empty AssertionError, and ``AioLoopbackServer`` given
a sync server left that server listening. The real-port kits also take a list or
tuple of plans, one per connection; its items are checked here too.
"""

from __future__ import annotations

from .._aio_server import RPCServer as AioRPCServer
from .._client_protocol import ClientConnection
from .._json_hook import check_default
from .._remote import check_timeout, is_count
from .._server import RPCServer
from ._fault_plan import FaultPlan

__all__ = ["check_client_args", "check_connection", "check_kit_args"]

_SYNC, _AIO = "jsonrpc_mini.RPCServer", "jsonrpc_mini.aio.RPCServer"
_COUNTERPART = {
    "loopback": "aio_loopback",
    "LoopbackServer": "AioLoopbackServer",
    "aio_loopback": "loopback",
    "AioLoopbackServer": "LoopbackServer",
}
_PER_CONNECTION = frozenset({"LoopbackServer", "AioLoopbackServer"})  # faults may be a sequence, one per connection


def check_kit_args(kit: str, server: object, faults: object, *, aio: bool) -> None:
    """Raise TypeError unless ``server`` is the kit's driver's server and ``faults`` a plan (see below) or None.

    ``kit`` names the kit in the message (``loopback``, ``AioLoopbackServer``, ...);
    the message says which kit takes the server that was given. ``LoopbackServer``
    takes either driver's server (an ``aio.RPCServer`` on a loop of its own). The real-port kits
    (``LoopbackServer``, ``AioLoopbackServer``) also take a list or tuple of
    ``FaultPlan | None``, one per connection; an item with ``refuse_connect=True`` is
    a ValueError there (a listening port cannot refuse one connection).
    """
    __tracebackhide__ = True  # a usage error: pytest shows the user's call, not this check
    if kit == "LoopbackServer" and isinstance(server, AioRPCServer):
        _check_faults(kit, faults)
        return
    want, want_name, other, other_name = (
        (AioRPCServer, _AIO, RPCServer, _SYNC) if aio else (RPCServer, _SYNC, AioRPCServer, _AIO)
    )
    if not isinstance(server, want):
        if isinstance(server, other):
            raise TypeError(
                f"{kit}() takes a {want_name}, not a {other_name}: for a {other_name} use {_COUNTERPART[kit]}()"
            )
        if kit == "LoopbackServer":
            want_name = f"{_SYNC} or a {_AIO}"
        raise TypeError(f"{kit}() takes a {want_name}, not {type(server).__name__}")
    _check_faults(kit, faults)


def _check_faults(kit: str, faults: object) -> None:
    """Raise TypeError unless ``faults`` is a plan, None, or (real-port kits) a sequence of them."""
    __tracebackhide__ = True
    if isinstance(faults, (list, tuple)):
        _check_plans(kit, faults)
    elif faults is not None and not isinstance(faults, FaultPlan):
        hint = f": write faults=FaultPlan(**{faults!r})" if isinstance(faults, dict) else ""
        raise TypeError(f"{kit}() takes a FaultPlan (or None) as faults, not {type(faults).__name__}{hint}")


def _check_plans(kit: str, faults: list[object] | tuple[object, ...]) -> None:
    """Check a per-connection sequence of plans: real-port kits only, FaultPlan or None items."""
    __tracebackhide__ = True
    if kit not in _PER_CONNECTION:
        raise TypeError(
            f"{kit}() takes a FaultPlan (or None) as faults, not {type(faults).__name__}: "
            "a list of plans, one per connection, is for LoopbackServer() and AioLoopbackServer()"
        )
    for k, item in enumerate(faults):
        if item is not None and not isinstance(item, FaultPlan):
            hint = f": write FaultPlan(**{item!r})" if isinstance(item, dict) else ""
            raise TypeError(
                f"{kit}() takes FaultPlan or None items in a faults {type(faults).__name__}, "
                f"not {type(item).__name__} (item {k}){hint}"
            )
        if item is not None and item.refuse_connect:
            raise ValueError(
                f"{kit}(): refuse_connect=True refuses the kit's whole port, not one connection "
                f"(faults item {k}); to break connection {k} at once use FaultPlan(disconnect_after=0)"
            )


def check_client_args(
    timeout: object, framing: object, max_message_size: object, max_depth: object, default: object = None
) -> None:
    """Raise the client's own error for a bad ``timeout``, ``framing``, size or ``default``, from here.

    The in-memory kits build their client inside the ``with`` block's entry: a bad
    ``timeout=0`` was raised there, under contextlib's and the kit's frames. Checked
    on the kit's call instead, with the client's frames dropped, pytest shows the
    user's line and the message only.
    """
    __tracebackhide__ = True
    try:
        check_timeout(timeout)  # type: ignore[arg-type]
        ClientConnection(framing=framing, max_message_size=max_message_size, max_depth=max_depth)  # type: ignore[arg-type]
        check_default(default)
    except (TypeError, ValueError) as exc:
        raise exc.with_traceback(None) from None


def check_connection(kit: str, connection: object) -> None:
    """Raise ValueError unless ``connection`` (which connection of its plan a kit's link is) is an int >= 0.

    ``loopback(server, plan, connection=k)`` draws the plan's choices as connection
    ``k`` of a ``LoopbackServer`` with that plan would (0, the default, is the first).
    """
    __tracebackhide__ = True
    if not is_count(connection, 0):
        raise ValueError(
            f"{kit}() takes connection= as an int of at least 0 (which connection of the plan this is),"
            f" not {connection!r}"
        ) from None
