"""Type checks on entry to the test kits: the server of the kit's driver, a FaultPlan as the plan.

Without them the other driver's server (or a dict as the plan) failed deep inside
with an AttributeError or an empty AssertionError, and ``AioLoopbackServer`` given
a sync server left that server listening.
"""

from __future__ import annotations

from .._aio_server import RPCServer as AioRPCServer
from .._server import RPCServer
from ._fault_plan import FaultPlan

__all__ = ["check_kit_args"]

_SYNC, _AIO = "jsonrpc_mini.RPCServer", "jsonrpc_mini.aio.RPCServer"
_COUNTERPART = {
    "loopback": "aio_loopback",
    "LoopbackServer": "AioLoopbackServer",
    "aio_loopback": "loopback",
    "AioLoopbackServer": "LoopbackServer",
}


def check_kit_args(kit: str, server: object, faults: object, *, aio: bool) -> None:
    """Raise TypeError unless ``server`` is the kit's driver's server and ``faults`` a FaultPlan or None.

    ``kit`` names the kit in the message (``loopback``, ``AioLoopbackServer``, ...);
    the message says which kit takes the server that was given.
    """
    __tracebackhide__ = True  # a usage error: pytest shows the user's call, not this check
    want, want_name, other, other_name = (
        (AioRPCServer, _AIO, RPCServer, _SYNC) if aio else (RPCServer, _SYNC, AioRPCServer, _AIO)
    )
    if not isinstance(server, want):
        if isinstance(server, other):
            raise TypeError(
                f"{kit}() takes a {want_name}, not a {other_name}: for a {other_name} use {_COUNTERPART[kit]}()"
            )
        raise TypeError(f"{kit}() takes a {want_name}, not {type(server).__name__}")
    if faults is not None and not isinstance(faults, FaultPlan):
        hint = f": write faults=FaultPlan(**{faults!r})" if isinstance(faults, dict) else ""
        raise TypeError(f"{kit}() takes a FaultPlan (or None) as faults, not {type(faults).__name__}{hint}")
