"""JSON text <-> Python values, strict in both directions.

Reading: UTF-8 only, no ``NaN``/``Infinity``, no number that overflows to infinity,
integers bounded by a digit limit. Writing: compact UTF-8, never ``NaN``/``Infinity``;
besides JSON's own types, ``uuid.UUID`` is written as its string and an ``enum.Enum``
member as its value. orjson is used when it is installed; whatever it cannot handle
(integers past 64 bits, lone surrogates, non-string keys) falls back to the standard
library, so the values read and written are the same with or without it (the
bytes may differ in spelling only: orjson writes ``1e-7`` where the stdlib
writes ``1e-07``; both read back as the same float).

This module is the codec (``JsonCodec``) and its reading; what writing uses
besides orjson (the stdlib encoder as called here, the NaN/Infinity check) is
``_json_write``.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable
from typing import Any

from ._errors import ParseError
from ._frames import surely_within
from ._json_write import _WALK_BUDGET, _WALK_FROM, _finite, _stdlib_dumps

__all__ = ["HAVE_ORJSON", "ORJSON_LINE_OPTS", "ORJSON_OPTS", "SMALL_OUTPUT", "JsonCodec", "dumps", "loads"]

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
# Texts from this size on are first checked on a sample (see JsonCodec._no_long_run).
_SAMPLE_FROM = 4096
_USE_STDLIB: Any = object()
# Standard library: a text of this size or more is read without the number hooks
# (C speed; a hook call costs ~0.2 us per number) unless it could hold a float that
# overflows or an integer past the digit limit. Digits become 0 and E becomes e.
_NUMBER_MARKS = bytes.maketrans(b"123456789E", b"000000000e")
# A positive exponent once digits are 0 and E is e. Speed: a regex, not ``b"e0" in``:
# its search goes from "e" to "e" (rare), where a two-byte ``in`` tests at every "0"
# (frequent in numbers): ~18 against ~48 us for a 61 KB batch of 1,000 calls.
_POSITIVE_EXPONENT = re.compile(rb"e\+?0")
_PLAIN_FROM = 512
_USE_HOOKS: Any = object()
# How orjson's error for text after a complete value begins (see _raise_extra_data).
_ORJSON_EXTRA_DATA = "unexpected content after document"
_EXTRA_DATA_DEPTH = 256  # far below any recursion limit the stdlib decoder runs under
_FLOAT_DIGITS = 309  # a float written with fewer digits and no positive exponent stays finite


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:40]!r} overflows a float")
    return value


class JsonCodec:
    """Encode and decode JSON text with the library's strict rules."""

    __slots__ = (
        "_decoder",
        "_int_bound",
        "_long_digits",
        "_long_run",
        "_max_int_digits",
        "_plain",
        "_samples",
        "orjson_dumps",
        "unchecked_loads",
        "use_orjson",
    )

    def __init__(self, *, max_int_digits: int = DEFAULT_MAX_INT_DIGITS, use_orjson: bool | None = None) -> None:
        if max_int_digits < 1:
            raise ValueError("max_int_digits must be at least 1")
        self._max_int_digits = max_int_digits
        self.use_orjson = HAVE_ORJSON if use_orjson is None else (use_orjson and HAVE_ORJSON)
        self._long_run = b"0" * (min(_ORJSON_SAFE_DIGITS, max_int_digits) + 1)
        # (stride, run): sampling every stride-th byte, a run of len(_long_run) digits
        # leaves at least len(_long_run) // stride digits in a row. Two strides: the
        # wide one (every 6th byte, three digits in a row) passes texts whose numbers
        # are far apart, and batches of calls or replies with small numbers; the
        # narrow one (every 4th, four in a row) texts of many short numbers, for a
        # sixth and a quarter of the full check's cost (see _no_long_run). Not every
        # 9th byte (two in a row), as before: nearly every batch has two digits 9
        # bytes apart somewhere ('1],"id":12' in a call, '"2.0","id":1' in a reply),
        # so batches paid for both samples: ~0.44M instructions against ~0.23M now
        # for 1,000 calls (texts the 9th-byte sample cleared pay a sixth, not a ninth).
        # The run is looked for by a regex: sre's search beats find() on a sample,
        # whose digits are all "0" (1.4-3x: 3.6 against 6.2 us for the every-4th-byte
        # sample of 1,000 batch replies). On the whole text either may win, by the
        # text (0.7-1.5x): find() is kept there.
        digits = len(self._long_run)
        strides = sorted({stride for stride in (digits // 3, digits // 4) if stride > 1}, reverse=True)
        self._samples = tuple((stride, re.compile(b"0" * (digits // stride))) for stride in strides)
        self._decoder = json.JSONDecoder(
            parse_float=_parse_float,
            parse_int=self._parse_int,
            parse_constant=_reject_constant,
        )
        self._plain = json.JSONDecoder(parse_constant=_reject_constant)
        self._long_digits = b"0" * min(_FLOAT_DIGITS, max_int_digits + 1)
        self._int_bound = _power_of_ten(max_int_digits)
        # orjson's own reader, for a caller that looks at the value instead of the text:
        # a value it returns holding no float is exactly the value ``loads`` returns for
        # the same text. orjson reads an integer past 64 bits (up to 309 digits) as a
        # float; with a digit limit of at least that, every integer it reads is one the
        # stdlib's reading accepts too (one hidden by a repeated key included). None
        # when that does not hold, and for any subclass: it may read otherwise through
        # ``loads`` or through the hooks (``_parse_int``) that orjson's value skips.
        self.unchecked_loads: Callable[[bytes], Any] | None = (
            _orjson.loads if self.use_orjson and max_int_digits >= _FLOAT_DIGITS and type(self) is JsonCodec else None
        )
        # orjson's writer, for a caller doing dumps_line's work in line (orjson called as
        # ``orjson_dumps(value, None, ORJSON_LINE_OPTS)``, then dumps_line's checks of
        # its output): None without orjson, and for any subclass (it may write
        # otherwise through dumps_line).
        self.orjson_dumps: Callable[[Any, None, int], bytes] | None = (
            _orjson.dumps if self.use_orjson and type(self) is JsonCodec else None
        )

    def _parse_int(self, text: str) -> int:
        digits = len(text) - (text[0] == "-")
        if digits > self._max_int_digits:
            raise ValueError(f"integer with {digits} digits exceeds the limit of {self._max_int_digits}")
        return int(text)

    def loads(self, data: bytes | bytearray | memoryview) -> Any:
        """Decode one JSON text; raise :class:`ParseError` with the reason if it is invalid."""
        if self.use_orjson:
            if type(data) is bytes and len(data) < _SAMPLE_FROM:
                # Speed: the usual message (small bytes) checked and read right here, as
                # _orjson_loads would: its call and the bytes() copy cost ~0.25 us of a
                # ~0.9 us decode. The run is looked for with replace(), not find() (whose
                # arguments are parsed the slow way: ~1.4k instructions a call against
                # ~0.8k) nor ``in`` (slower still): replace() hands back the very object
                # when there is nothing to replace, so ``is`` means "no run". (Where it
                # returned a copy, the text would only take the stdlib's way: same value.)
                # Larger texts take _orjson_loads (one size test here, not two).
                if (zeros := data.translate(_DIGITS_TO_ZERO)).replace(self._long_run, b"") is zeros:
                    try:
                        return _orjson.loads(data)
                    except (ValueError, TypeError):
                        pass  # big integers, lone surrogates, deep nesting: let the stdlib decide
            else:
                value = self._orjson_loads(data)
                if value is not _USE_STDLIB:
                    return value
        text = _utf8(data)
        try:
            if len(data) >= _PLAIN_FROM:
                value = self._plain_decode(data, text)
                if value is not _USE_HOOKS:
                    return value
            # Speed: what JSONDecoder.decode runs for a text whose value starts at its
            # first character (the usual one), without its two Python layers (decode,
            # raw_decode: ~50 bytecodes): the scanner, then JSON whitespace at most, else
            # decode's "Extra data" error (the text is not read again). Leading
            # whitespace or no value at all: decode itself, for its value or error.
            try:
                value, end = self._decoder.scan_once(text, 0)  # type: ignore[attr-defined]  # (not in typeshed)
            except StopIteration:
                return self._decoder.decode(text)
            if end != len(text):
                rest = text[end:]
                after = end + len(rest) - len(rest.lstrip(" \t\n\r"))
                if after != len(text):
                    raise json.JSONDecodeError("Extra data", text, after)
            return value
        except RecursionError:
            raise ParseError("Parse error: nesting too deep") from None
        except ValueError as exc:  # JSONDecodeError and our hooks' errors
            raise ParseError(f"Parse error: {_short(exc)}") from None

    def orjson_exact(self, data: bytes) -> bool:
        """Whether ``loads`` reads the small bytes text ``data`` with orjson alone (no long digit run).

        For a caller holding ``unchecked_loads``'s value: then it is ``loads``' value.
        """
        return (
            type(data) is bytes
            and len(data) < _SAMPLE_FROM
            and (zeros := data.translate(_DIGITS_TO_ZERO)).replace(self._long_run, b"") is zeros
        )

    def _orjson_loads(self, data: bytes | bytearray | memoryview) -> Any:
        """orjson's reading, or ``_USE_STDLIB`` when it could differ from the stdlib's."""
        if len(data) < _WALK_FROM:
            if not self._no_long_run(bytes(data)):
                return _USE_STDLIB
            try:
                return _orjson.loads(data)
            except (ValueError, TypeError):
                return _USE_STDLIB  # big integers, lone surrogates, deep nesting: let the stdlib decide
        # Speed: on a large text the digit-run check costs more than orjson itself
        # (~0.75 ms per MiB). A value with few elements (one long string, say) is
        # checked by looking at its numbers instead: without a float, orjson turned
        # no big integer into one. Only if that does not settle it, the text is checked.
        try:
            value = _orjson.loads(data)
        except (ValueError, TypeError) as exc:
            self._raise_extra_data(data, exc)
            return _USE_STDLIB
        bound = self._int_bound if self._max_int_digits < 20 else None  # orjson's integers have at most 20 digits
        if _plain_numbers(value, bound, floats=False) is not True and not self._no_long_run(bytes(data)):
            return _USE_STDLIB
        return value

    def _raise_extra_data(self, data: bytes | bytearray | memoryview, exc: Exception) -> None:
        """Raise the stdlib's "Extra data" error when that surely is orjson's ``exc`` too.

        Speed: a large text holding a whole value and then more (two values sent on
        one line) would otherwise be read twice more by the stdlib (see
        ``_plain_decode``) only to report this error: seconds for a few MiB of small
        containers, with the event loop or every thread waiting (SECURITY.md). orjson
        read the first value whole; unless a number in the text is one the hooks
        refuse (``_risky``), the stdlib reads it too and stops at the same character.
        An orjson that words this error otherwise just takes the longer way.
        """
        if isinstance(exc, _orjson.JSONDecodeError) and str(exc).startswith(_ORJSON_EXTRA_DATA):
            text = _utf8(data)  # (bytes that are not UTF-8: the stdlib reports that first)
            # orjson reads nesting up to 1,024 deep, the stdlib only to its recursion
            # limit ("nesting too deep"): the value must surely nest less than that.
            if not self._risky(data) and surely_within(text[: exc.pos].encode(), _EXTRA_DATA_DEPTH):
                raise ParseError(f"Parse error: {_short(json.JSONDecodeError('Extra data', text, exc.pos))}") from None

    def _no_long_run(self, data: bytes) -> bool:
        """True if ``data`` has no run of ``len(self._long_run)`` digits (orjson reads it as we do).

        Speed: the full check (every digit made ``0``, then a search for the run)
        costs ~0.9 ns per byte, ~0.5 ms for 600 KB. A run of 19 digits puts at
        least three digits, one after the other, into the sample of every 6th byte;
        most texts have no such three there, and the sample costs a sixth. A text
        of many short numbers may have them, but rarely four digits in a row among
        every 4th byte. Only if both samples have their run is the whole text checked.
        """
        for stride, run in self._samples:
            if run.search(data[::stride].translate(_DIGITS_TO_ZERO)) is None:
                return True
        return data.translate(_DIGITS_TO_ZERO).find(self._long_run) < 0

    def _plain_decode(self, data: bytes | bytearray | memoryview, text: str) -> Any:
        """The value read without number hooks, or ``_USE_HOOKS`` when they must decide.

        They must when the text has a positive exponent or a long run of digits (a
        float that could overflow, an integer that could pass the limit), and for
        an error in such a text (the hooked reading reports it exactly: it may fail
        earlier). An error in any other text is the hooked reading's error too and
        is raised here as ParseError. A large text of few elements is decoded first
        and its numbers looked at instead of its bytes.
        """
        large = len(data) >= _WALK_FROM
        if not large and self._risky(data):
            return _USE_HOOKS
        try:
            value = self._plain.decode(text)
        except json.JSONDecodeError as exc:
            # Without a number the hooks refuse, the hooked reading fails at the same
            # character with the same words: report it now rather than read the text
            # again (seconds for a few MiB of small containers, see _raise_extra_data).
            if not large or not self._risky(data):
                raise ParseError(f"Parse error: {_short(exc)}") from None
            return _USE_HOOKS
        except (ValueError, RecursionError):
            return _USE_HOOKS
        if large:
            plain = _plain_numbers(value, self._int_bound, floats=True)
            if plain is False or (plain is None and self._risky(data)):
                return _USE_HOOKS
        return value

    def _risky(self, data: bytes | bytearray | memoryview) -> bool:
        marks = bytes(data).translate(_NUMBER_MARKS)
        return _POSITIVE_EXPONENT.search(marks) is not None or self._long_digits in marks

    def dumps(self, value: Any) -> bytes:
        """Encode ``value`` as compact UTF-8 JSON; raise ValueError/TypeError if it is not JSON."""
        if self.use_orjson:
            try:
                out: bytes = _orjson.dumps(value, option=_ORJSON_OPTS)
            except (TypeError, ValueError):
                pass  # big ints, non-str keys, unknown types: the stdlib decides
            else:
                # (replace() ... is out: "no null", at ~0.6k instructions less than find(); see loads)
                if len(out) < _SAMPLE_FROM and out.replace(b"null", b"") is out:
                    return out  # the usual message: small, no null, so no NaN or Infinity
                return _finite(value, out)
        return _stdlib_dumps(value)

    def dumps_line(self, value: Any) -> bytes:
        """``dumps(value) + b"\\n"``: one newline-framed message, the same bytes.

        Speed: orjson writes the newline itself (no copy), and a small output holding
        no ``null`` (so no NaN or Infinity either) is returned at once: ~0.3 us less
        per message than ``dumps`` and a concatenation. ``_Link.request`` and
        ``SessionCalls._plain_reply`` do this work in line (with ``orjson_dumps``):
        change all three.
        """
        if self.use_orjson:
            try:
                out: bytes = _orjson.dumps(value, None, _ORJSON_LINE_OPTS)
            except (TypeError, ValueError):
                pass  # as in dumps: the stdlib decides
            else:
                if len(out) < _SAMPLE_FROM and out.replace(b"null", b"") is out:  # (see dumps)
                    return out
                return _finite(value, out)
        return _stdlib_dumps(value) + b"\n"


@functools.lru_cache(maxsize=8)
def _power_of_ten(digits: int) -> int:
    """``10**digits``, computed once per digit limit: 10**4300 costs ~50 us, and every client makes a codec."""
    power: int = 10**digits
    return power


def _plain_numbers(value: Any, int_bound: int | None, *, floats: bool) -> bool | None:
    """True if every number in ``value`` is as read: integers within ``int_bound``, floats finite.

    With ``floats`` False any float fails (orjson reads a too-big integer as one).
    False if a number fails; None if ``value`` has more than ``_WALK_BUDGET``
    elements (not looked at).
    """
    stack = [value]
    seen = 0
    while stack:
        item = stack.pop()
        seen += 1
        kind = type(item)
        if kind is dict or kind is list:
            if seen + len(item) > _WALK_BUDGET:
                return None
            stack.extend(item.values() if kind is dict else item)
        elif kind is float:
            if not floats or not math.isfinite(item):
                return False
        elif kind is int and int_bound is not None and not -int_bound < item < int_bound:
            return False
    return True


def _utf8(data: bytes | bytearray | memoryview) -> str:
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"Parse error: not UTF-8 ({exc.reason} at byte {exc.start})") from None


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."


if _orjson is not None:  # pragma: no branch
    # Refuse what the stdlib refuses, so both paths agree: these raise TypeError and fall back.
    _ORJSON_OPTS = (
        _orjson.OPT_PASSTHROUGH_DATACLASS | _orjson.OPT_PASSTHROUGH_DATETIME | _orjson.OPT_PASSTHROUGH_SUBCLASS
    )
    _ORJSON_LINE_OPTS = _ORJSON_OPTS | _orjson.OPT_APPEND_NEWLINE
else:  # pragma: no cover
    _ORJSON_OPTS = _ORJSON_LINE_OPTS = 0
# For a caller doing dumps_line's (or dumps') work in line (see JsonCodec.orjson_dumps).
ORJSON_LINE_OPTS = _ORJSON_LINE_OPTS
ORJSON_OPTS = _ORJSON_OPTS
SMALL_OUTPUT = _SAMPLE_FROM  # (dumps_line returns a smaller output holding no null at once)

_DEFAULT = JsonCodec()
loads: Callable[[bytes | bytearray | memoryview], Any] = _DEFAULT.loads
dumps: Callable[[Any], bytes] = _DEFAULT.dumps
