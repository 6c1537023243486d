"""The codec with a user's ``default=`` hook: results and arguments of types JSON lacks.

``make_codec(default=fn)`` returns a :class:`HookedCodec`, whose writing calls
``fn(obj)`` for every object neither encoder can write itself (a ``datetime``, a
``Decimal``, a dataclass, the user's own classes) and writes what it returns
instead, as ``json.dumps(default=fn)`` does. Both encoders call it for the same
objects, so one function gives the same text with or without orjson:

- What the library writes itself never reaches the hook: JSON's own types and
  their subclasses (a ``str`` subclass is written as its string, as the stdlib
  does), ``uuid.UUID`` and ``enum.Enum`` members. orjson is told to pass datetimes,
  dataclasses and subclasses on (its own spellings would differ from the stdlib's);
  subclasses go to the stdlib encoder.
- What the hook returns is written with the same rules, hooks included: a NaN
  or an infinity in it is refused (orjson would write ``null``).
- An exception from the hook is the encoder's error: on a server that call's
  reply becomes the usual -32603, on a client the call raises it. A hook may be
  called more than once for an object (orjson's attempt, then the stdlib's).

Without a hook the codec is the plain :class:`JsonCodec`: no work is added to
any call.
"""

from __future__ import annotations

import enum
import math
import uuid
from collections.abc import Callable
from typing import Any

from ._json import _FLOAT_DIGITS, _ORJSON_LINE_OPTS, _ORJSON_OPTS, _SAMPLE_FROM, DEFAULT_MAX_INT_DIGITS, JsonCodec
from ._json import _orjson as _orjson_module
from ._json_write import _default, _finite, _stdlib_dumps

__all__ = ["Default", "HookedCodec", "check_default", "make_codec"]

Default = Callable[[Any], Any]
"""A ``default=`` hook: an object JSON cannot hold -> a value it can (or raise)."""

_orjson: Any = _orjson_module
# Written by the stdlib as their base type without asking the hook: orjson (told to
# pass subclasses on) hands them to the hook instead, which sends them to the stdlib.
_BUILTINS = (str, int, float, list, dict, tuple)


def check_default(default: object) -> Default | None:
    """``default`` if it is None or callable, else TypeError naming it."""
    if default is not None and not callable(default):
        raise TypeError(f"default must be a callable taking one object (or None), not {default!r}")
    return default


def make_codec(*, max_int_digits: int = DEFAULT_MAX_INT_DIGITS, default: Default | None = None) -> JsonCodec:
    """The codec for these options: the plain :class:`JsonCodec` without a hook."""
    hook = check_default(default)
    if hook is None:
        return JsonCodec(max_int_digits=max_int_digits)
    return HookedCodec(hook, max_int_digits=max_int_digits)


def _holds_nonfinite(value: Any) -> bool:
    """Whether a hook's ``value`` holds NaN or an infinity, each list, tuple or dict looked at once.

    Not ``_json_write._has_nonfinite``: a hook's value may hold itself (``a = [];
    a.append(a)``), which that walk would follow for ever; orjson then gives up at
    its depth limit and the stdlib says "Circular reference detected".
    """
    stack = [value]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, (dict, list, tuple)):
            if id(item) in seen:
                continue
            seen.add(id(item))
            stack.extend(item.values() if isinstance(item, dict) else item)
        elif isinstance(item, enum.Enum):
            stack.append(item.value)
    return False


def _reraise_interrupt(exc: BaseException) -> None:
    """Raise the hook's KeyboardInterrupt, SystemExit... that orjson wrapped in its TypeError.

    orjson turns whatever the hook raised into a JSONEncodeError (a TypeError), the
    hook's exception its ``__cause__``; the stdlib, asked next, would call the hook
    again, and a one-shot Ctrl-C would be lost (the value written on the second try).
    """
    cause = exc.__cause__
    if cause is not None and not isinstance(cause, Exception):
        raise cause


class _Refused(TypeError):
    """orjson's hook refuses: the stdlib encoder decides (it writes subclasses as their base)."""


class HookedCodec(JsonCodec):
    """A :class:`JsonCodec` whose writing hands other objects to ``default``."""

    __slots__ = ("_orjson_hook", "_stdlib_hook", "default")

    def __init__(
        self, default: Default, *, max_int_digits: int = DEFAULT_MAX_INT_DIGITS, use_orjson: bool | None = None
    ) -> None:
        super().__init__(max_int_digits=max_int_digits, use_orjson=use_orjson)
        self.default = default
        # Reading is JsonCodec's own: orjson's value for the callers that take it (a
        # subclass gets None from JsonCodec, which cannot know this one reads alike).
        # Writing has no inline orjson path (orjson_dumps stays None): every message
        # goes through dumps / dumps_line below.
        self.unchecked_loads = _orjson.loads if self.use_orjson and max_int_digits >= _FLOAT_DIGITS else None

        def stdlib_hook(obj: Any) -> Any:
            if isinstance(obj, (uuid.UUID, enum.Enum)):
                return _default(obj)  # (written as orjson writes them, never by the hook)
            return default(obj)

        def orjson_hook(obj: Any) -> Any:
            if isinstance(obj, _BUILTINS):
                raise _Refused
            value = default(obj)
            # orjson writes NaN and Infinity as null: the stdlib refuses them (with its
            # error, the same as for a NaN in the value itself). Objects in ``value``
            # come back through this hook and are looked at then.
            if _holds_nonfinite(value):
                raise _Refused
            return value

        self._stdlib_hook = stdlib_hook
        self._orjson_hook = orjson_hook

    def dumps(self, value: Any) -> bytes:
        """Encode ``value`` as compact UTF-8 JSON, calling the hook for other objects."""
        return self._dumps(value, _ORJSON_OPTS, b"")

    def dumps_line(self, value: Any) -> bytes:
        """``dumps(value) + b"\\n"``, calling the hook for other objects."""
        return self._dumps(value, _ORJSON_LINE_OPTS, b"\n")

    def _dumps(self, value: Any, orjson_opts: int, end: bytes) -> bytes:
        if self.use_orjson:
            try:
                out: bytes = _orjson.dumps(value, self._orjson_hook, orjson_opts)
            except (TypeError, ValueError) as exc:
                _reraise_interrupt(exc)
                # as JsonCodec.dumps: the stdlib decides (and raises the hook's error)
            else:
                if len(out) < _SAMPLE_FROM and out.replace(b"null", b"") is out:
                    return out
                return _finite(value, out)
        return _stdlib_dumps(value, self._stdlib_hook) + end
