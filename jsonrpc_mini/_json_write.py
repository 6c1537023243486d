"""Writing JSON: the standard library's encoder as the codec calls it, and the non-finite check.

``JsonCodec.dumps`` (``_json``) writes with orjson when it can and with
``_stdlib_dumps`` otherwise; ``_finite`` refuses NaN and Infinity, which orjson
writes as null. Also the walk limits the codec's reading shares.
"""

from __future__ import annotations

import enum
import json
import math
import re
import uuid
from collections.abc import Callable
from typing import Any

# Texts from this size on are checked by walking the decoded value when it has at
# most _WALK_BUDGET elements (see JsonCodec._orjson_loads); outputs from this size
# on are walked before they are searched (see _finite).
_WALK_FROM = 256 * 1024
_WALK_BUDGET = 256


# What every writer says of a NaN or an infinity, whichever encoder met it.
NONFINITE = "NaN and Infinity are not valid JSON"


def _finite(value: Any, out: bytes) -> bytes:
    """``out`` (orjson's encoding of ``value``), or ValueError if ``value`` holds NaN or Infinity."""
    # orjson writes NaN and Infinity as null; a null in the output is the only
    # sign, so only then walk the value to refuse non-finite floats. Speed: on
    # a large output the search costs ~0.5 ms per MiB, more than walking a value
    # of few elements (one long string, say): such a value is walked instead.
    nonfinite = _has_nonfinite(value, _WALK_BUDGET) if len(out) >= _WALK_FROM else None
    if nonfinite is None:
        nonfinite = _has_null(out) and bool(_has_nonfinite(value))
    if nonfinite:
        raise ValueError(NONFINITE)
    return out


# A search for "null" gives up its shortcut after this many other "u" bytes.
_U_TRIES = 8
# Then a regex search: sre steps through the bytes to each "n" and compares from
# there, 2-2.5x faster than find() (see _has_null) on ~100 KB of numbers or small
# objects, 1.3x on prose: 10 against 24 us for a batch's 1,000 replies.
_NULL = re.compile(rb"null")


def _has_null(out: bytes) -> bool:
    """Whether ``out`` contains ``null``.

    Speed: ``find(b"null")`` costs ~0.5 ns per byte (0.3 ms for 600 KB: its skip
    test matches ``,``, ``.`` and ``5`` as if they were letters of ``null``); a
    one-byte search is memchr, a tenth of that. So the ``u`` bytes are looked at
    (many texts have just the one of ``"result"``), and only after _U_TRIES that
    are not in a ``null`` is the rest searched for ``null`` itself, by ``_NULL``.
    """
    at = out.find(b"u")
    for _ in range(_U_TRIES):
        if at < 0:
            return False
        if out[at - 1 : at + 3] == b"null":
            return True
        at = out.find(b"u", at + 1)
    return at >= 0 and _NULL.search(out, max(at - 1, 0)) is not None


def _default(value: Any) -> Any:
    # What orjson writes natively, so that both paths agree.
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _stdlib_dumps(value: Any, default: Callable[[Any], Any] = _default) -> bytes:
    """``value`` as compact UTF-8 JSON by the standard library's encoder; ``default`` for other objects."""
    try:
        if _c_make_encoder is not None:
            # Speed: what json.dumps(value, ensure_ascii=False, separators=(",", ":"),
            # allow_nan=False, default=_default) runs, without its four Python layers
            # (dumps, JSONEncoder.__init__, encode, iterencode: ~150 bytecodes, ~5k
            # instructions per message): the C encoder it makes, with a fresh markers
            # dict (check_circular), called at once. The same text and errors.
            encode = _c_make_encoder({}, default, _c_encode_basestring, None, ":", ",", False, False, False)
            text = "".join(encode(value, 0))
        else:  # pragma: no cover - CPython always has the C encoder
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=default)
    except ValueError as exc:
        # The stdlib's words for a NaN ("Out of range float values are not JSON
        # compliant") become orjson's path's, so a caller's error does not depend on
        # which encoder wrote the rest of the value (or on orjson being installed).
        if str(exc).startswith("Out of range float"):
            raise ValueError(NONFINITE) from None
        raise
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (it arrived as an escape) cannot be UTF-8: escape everything.
        ascii_text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False, default=default)
        return ascii_text.encode("ascii")


# The C encoder json.dumps uses (None without the _json accelerator): see _stdlib_dumps.
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_c_encode_basestring: Any = getattr(json.encoder, "c_encode_basestring", None)
if _c_encode_basestring is None:  # pragma: no cover
    _c_make_encoder = None


def _has_nonfinite(value: Any, budget: int | None = None) -> bool | None:
    """Whether ``value`` holds NaN or an infinity; None if it has more than ``budget`` elements."""
    stack = [value]
    seen = 0
    while stack:
        item = stack.pop()
        seen += 1
        if budget is not None and seen > budget:
            return None
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, (dict, list, tuple)):
            if budget is not None and seen + len(item) > budget:
                return None
            stack.extend(item.values() if isinstance(item, dict) else item)
        elif isinstance(item, enum.Enum):
            stack.append(item.value)
    return False
