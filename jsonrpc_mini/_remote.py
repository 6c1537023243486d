"""Attribute calls (``client.add(1, 2)`` is ``client.call("add", 1, 2)``) and timeout checks.

Shared by the sync and asyncio clients and by both batch builders, so that the
rules for which attribute names are remote methods live in one place.
"""

from __future__ import annotations

from typing import Any, Generic, Protocol, TypeGuard, TypeVar

from ._codec import CallParams, build_params

__all__ = [
    "private_name",
    "KEEP_METHODS",
    "LONGEST_WAIT",
    "Caller",
    "KeptMethod",
    "RemoteMethod",
    "check_count",
    "check_flag",
    "check_timeout",
    "is_count",
    "is_seconds",
    "kept_attribute",
    "not_a_method_name",
    "remote_attribute",
]

_R_co = TypeVar("_R_co", covariant=True)


class Caller(Protocol[_R_co]):
    """Anything with ``call(method, /, *args, **kwargs)``: a client or a batch builder."""

    def call(self, method: str, /, *args: Any, **kwargs: Any) -> _R_co:
        """Call (or queue a call of) ``method`` with these arguments."""
        ...


def private_name(name: str, method: str) -> AttributeError:
    """The AttributeError for ``client.<method>`` whose last part, ``name``, starts with ``_``.

    Such names are Python's (copy, pickle, inspect probe them), never remote
    methods; for ``_secret`` (not a dunder) say how to reach a remote one anyway.
    """
    if name.startswith("__") and name.endswith("__"):
        return AttributeError(name)
    return AttributeError(f"{name}: a name starting with '_' is not a remote call here; use call({method!r})")


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
            raise private_name(name, f"{self._name}.{name}")
        return RemoteMethod(self._target, f"{self._name}.{name}")

    def __call__(self, /, *args: Any, **kwargs: Any) -> _R_co:
        return self._target.call(self._name, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<remote method {self._name!r}>"


# At most this many ``client.name`` methods are kept per client (dynamic names stay bounded).
KEEP_METHODS = 64


class Requester(Protocol[_R_co]):
    """A client's connection: ``request(method, params, timeout)`` makes one call."""

    def request(self, method: str, params: CallParams, timeout: float | None) -> _R_co:
        """Call ``method`` (the sync link returns its result, the asyncio link a Call)."""
        ...


class KeptMethod(Generic[_R_co]):
    """``client.add``: calls remote ``add`` on the client's connection with its timeout.

    A client keeps it (in its instance dict) after the first lookup, so
    ``client.add`` is then a plain attribute read: a RemoteMethod made per lookup
    and then ``client.call`` cost ~0.8-1 us per call. It holds the connection and
    the timeout, never the client: kept, a reference to the client would tie it
    into a cycle, and a client dropped without ``close()`` would hold its
    connection open until the garbage collector ran. ``link`` is what the client
    calls through (the sync and aio clients' ``_Current``), so kept and saved ones
    follow a reconnect; a ``with_timeout`` view keeps methods of its own.
    """

    __slots__ = ("_link", "_name", "_timeout")

    def __init__(self, link: Requester[_R_co], name: str, timeout: float | None) -> None:
        self._link = link
        self._name = name
        self._timeout = timeout

    def __call__(self, /, *args: Any, **kwargs: Any) -> _R_co:
        # build_params inlined for plain positional arguments (the usual call), kept as
        # their tuple: no list made per call (see RPCClient.call).
        params = build_params(args, kwargs) if kwargs else args or None
        return self._link.request(self._name, params, self._timeout)

    def __getattr__(self, name: str) -> KeptMethod[_R_co]:
        # As RemoteMethod: private and dunder names are Python's, never remote methods.
        if name.startswith("_"):
            raise private_name(name, f"{self._name}.{name}")
        return KeptMethod(self._link, f"{self._name}.{name}", self._timeout)

    def __repr__(self) -> str:
        return f"<remote method {self._name!r}>"


def kept_attribute(
    client: Any, own_call: Any, link: Requester[_R_co], name: str, timeout: float | None
) -> KeptMethod[_R_co] | RemoteMethod[Any]:
    """What ``client.name`` gives (for ``__getattr__``): a KeptMethod, kept on ``client``.

    ``own_call`` is the client class's ``call``: a subclass that overrides it gets a
    RemoteMethod instead, so that its ``call()`` sees every call. Names starting
    with ``_`` raise AttributeError, as in :func:`remote_attribute`.
    """
    if type(client).call is not own_call:
        return remote_attribute(client, name)
    if name.startswith("_"):
        raise private_name(name, name)  # Python's names (copy, pickle, inspect probe them)
    method = KeptMethod(link, name, timeout)
    if len(client.__dict__) < KEEP_METHODS:
        client.__dict__[name] = method  # found by the next lookup without __getattr__
    return method


def remote_attribute(target: Any, name: str) -> RemoteMethod[Any]:
    """What ``target.name`` gives when Python finds no such attribute: a RemoteMethod.

    For ``__getattr__``: names starting with ``_`` are Python's (copy, pickle and
    inspect probe them), never remote methods, so they raise AttributeError. The
    method is made anew each time, not kept on ``target``: kept, it would tie
    ``target`` into a reference cycle, and a client dropped without ``close()``
    would hold its connection open until the garbage collector runs.
    """
    if name.startswith("_"):
        raise private_name(name, name)
    return RemoteMethod(target, name)


# The longest wait one poll() can make (it counts int milliseconds): about 24.8 days.
# A longer timeout, or float("inf"), means no timeout where None is allowed.
LONGEST_WAIT = (2**31 - 1) // 1000


def is_count(value: object, least: int = 1) -> TypeGuard[int]:
    """Whether ``value`` is an integer (not a bool) of at least ``least``: a size, depth or count."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def check_count(name: str, value: int) -> None:
    """Raise ValueError unless ``value`` (the option ``name``) is an integer of at least 1 (not a bool)."""
    if not is_count(value):
        raise ValueError(f"{name} must be an integer of at least 1, not {value!r}")


def check_flag(name: str, value: object) -> None:
    """Raise ValueError unless ``value`` (the option ``name``) is True or False (not 1, not "no")."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, not {value!r}")


def is_seconds(value: object) -> bool:
    """Whether ``value`` is a number of seconds: an int or a float, not a bool (nor a str)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_timeout(timeout: float | None) -> float | None:
    """Return ``timeout`` if it is a positive number of seconds or None; else raise ValueError."""
    if timeout is not None and not (is_seconds(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds or None, not {timeout!r}")
    return timeout


def not_a_method_name(method: object) -> TypeError:
    """The error for a remote method's name that is not a str (the clients raise it before sending).

    A server would answer a number or null with -32600, which names neither the call
    nor the mistake, and a notification gets no answer at all.
    """
    return TypeError(f"the method name must be a str, not {type(method).__name__}: {method!r}")
