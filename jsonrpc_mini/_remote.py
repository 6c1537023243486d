"""Attribute calls (``client.add(1, 2)`` is ``client.call("add", 1, 2)``) and timeout checks.

Shared by the sync and asyncio clients and by both batch builders, so that the
rules for which attribute names are remote methods live in one place.
"""

from __future__ import annotations

from typing import Any, Generic, Protocol, TypeVar

__all__ = ["Caller", "RemoteMethod", "check_timeout", "remote_attribute"]

_R_co = TypeVar("_R_co", covariant=True)


class Caller(Protocol[_R_co]):
    """Anything with ``call(method, /, *args, **kwargs)``: a client or a batch builder."""

    def call(self, method: str, /, *args: Any, **kwargs: Any) -> _R_co:
        """Call (or queue a call of) ``method`` with these arguments."""
        ...


class RemoteMethod(Generic[_R_co]):
    """``target.name(...)``: calls remote ``name`` through ``target.call``; ``target.a.b(...)`` calls ``a.b``."""

    __slots__ = ("_name", "_target")

    def __init__(self, target: Caller[_R_co], name: str) -> None:
        self._target = target
        self._name = name

    def __getattr__(self, name: str) -> RemoteMethod[_R_co]:
        # Private and dunder names are Python's (copy, pickle, inspect probe them),
        # never remote methods: reach such a method with call("_name").
        if name.startswith("_"):
            raise AttributeError(name)
        return RemoteMethod(self._target, f"{self._name}.{name}")

    def __call__(self, /, *args: Any, **kwargs: Any) -> _R_co:
        return self._target.call(self._name, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<remote method {self._name!r}>"


# At most this many remote method names are kept as attributes of one object.
_KEPT_NAMES = 256


def remote_attribute(target: Any, name: str) -> RemoteMethod[Any]:
    """What ``target.name`` gives when Python finds no such attribute: a RemoteMethod.

    For ``__getattr__``: names starting with ``_`` are Python's (copy, pickle and
    inspect probe them), never remote methods, so they raise AttributeError. Speed:
    Python calls ``__getattr__`` only after a failed lookup (~0.7 us, a tenth of a
    call); the method is kept in ``target.__dict__`` (at most ``_KEPT_NAMES``
    names), so the next ``target.name`` is found at once. A RemoteMethod is
    immutable and the target's own names never get here, so nothing else changes.
    """
    if name.startswith("_"):
        raise AttributeError(name)
    method: RemoteMethod[Any] = RemoteMethod(target, name)
    kept = target.__dict__
    if len(kept) < _KEPT_NAMES:
        kept[name] = method
    return method


def check_timeout(timeout: float | None) -> float | None:
    """Return ``timeout`` if it is a positive number of seconds or None; else raise ValueError."""
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds or None, not {timeout!r}")
    return timeout
