"""JSON text <-> Python values, strict in both directions.

Reading: UTF-8 only, no ``NaN``/``Infinity``, no number that overflows to infinity,
integers bounded by a digit limit. Writing: compact UTF-8, never ``NaN``/``Infinity``;
besides JSON's own types, ``uuid.UUID`` is written as its string and an ``enum.Enum``
member as its value. orjson is used when it is installed; whatever it cannot handle
(integers past 64 bits, lone surrogates, non-string keys) falls back to the standard
library, so the results are the same with or without it.
"""

from __future__ import annotations

import enum
import json
import math
import uuid
from collections.abc import Callable
from typing import Any

from ._errors import ParseError

__all__ = ["HAVE_ORJSON", "JsonCodec", "dumps", "loads"]

_orjson: Any
try:  # pragma: no cover - which branch runs depends on the environment
    import orjson as _orjson
except ImportError:  # pragma: no cover
    _orjson = None

HAVE_ORJSON = _orjson is not None

DEFAULT_MAX_INT_DIGITS = 4300

# orjson reads an integer past 64 bits as a float, and knows nothing of our digit
# limit: a run of this many digits anywhere sends the text to the stdlib decoder.
_ORJSON_SAFE_DIGITS = 18
# Speed: finding such a run with a regex ([0-9]{19}) costs ~20x orjson's own parse on
# digit-rich text; mapping every digit to "0" and searching for a run of zeros is
# two C passes over the bytes.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:40]!r} overflows a float")
    return value


class JsonCodec:
    """Encode and decode JSON text with the library's strict rules."""

    __slots__ = ("_decoder", "_long_run", "_max_int_digits", "use_orjson")

    def __init__(self, *, max_int_digits: int = DEFAULT_MAX_INT_DIGITS, use_orjson: bool | None = None) -> None:
        if max_int_digits < 1:
            raise ValueError("max_int_digits must be at least 1")
        self._max_int_digits = max_int_digits
        self.use_orjson = HAVE_ORJSON if use_orjson is None else (use_orjson and HAVE_ORJSON)
        self._long_run = b"0" * (min(_ORJSON_SAFE_DIGITS, max_int_digits) + 1)
        self._decoder = json.JSONDecoder(
            parse_float=_parse_float,
            parse_int=self._parse_int,
            parse_constant=_reject_constant,
        )

    def _parse_int(self, text: str) -> int:
        digits = len(text) - (text[0] == "-")
        if digits > self._max_int_digits:
            raise ValueError(f"integer with {digits} digits exceeds the limit of {self._max_int_digits}")
        return int(text)

    def loads(self, data: bytes | bytearray | memoryview) -> Any:
        """Decode one JSON text; raise :class:`ParseError` with the reason if it is invalid."""
        if self.use_orjson and self._long_run not in bytes(data).translate(_DIGITS_TO_ZERO):
            try:
                return _orjson.loads(data)
            except (ValueError, TypeError):
                pass  # big integers, lone surrogates, deep nesting: let the stdlib decide
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError(f"Parse error: not UTF-8 ({exc.reason} at byte {exc.start})") from None
        try:
            return self._decoder.decode(text)
        except RecursionError:
            raise ParseError("Parse error: nesting too deep") from None
        except ValueError as exc:  # JSONDecodeError and our hooks' errors
            raise ParseError(f"Parse error: {_short(exc)}") from None

    def dumps(self, value: Any) -> bytes:
        """Encode ``value`` as compact UTF-8 JSON; raise ValueError/TypeError if it is not JSON."""
        if self.use_orjson:
            try:
                out: bytes = _orjson.dumps(value, option=_ORJSON_OPTS)
            except (TypeError, ValueError):
                pass  # big ints, non-str keys, unknown types: the stdlib decides
            else:
                # orjson writes NaN and Infinity as null; a null in the output is the only
                # sign, so only then walk the value to refuse non-finite floats.
                if b"null" in out and _has_nonfinite(value):
                    raise ValueError("NaN and Infinity are not valid JSON")
                return out
        return _stdlib_dumps(value)


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."


def _default(value: Any) -> Any:
    # What orjson writes natively, so that both paths agree.
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _stdlib_dumps(value: Any) -> bytes:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_default)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (it arrived as an escape) cannot be UTF-8: escape everything.
        ascii_text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False, default=_default)
        return ascii_text.encode("ascii")


def _has_nonfinite(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, enum.Enum):
            stack.append(item.value)
    return False


if _orjson is not None:  # pragma: no branch
    # Refuse what the stdlib refuses, so both paths agree: these raise TypeError and fall back.
    _ORJSON_OPTS = (
        _orjson.OPT_PASSTHROUGH_DATACLASS | _orjson.OPT_PASSTHROUGH_DATETIME | _orjson.OPT_PASSTHROUGH_SUBCLASS
    )
else:  # pragma: no cover
    _ORJSON_OPTS = 0

_DEFAULT = JsonCodec()
loads: Callable[[bytes | bytearray | memoryview], Any] = _DEFAULT.loads
dumps: Callable[[Any], bytes] = _DEFAULT.dumps
