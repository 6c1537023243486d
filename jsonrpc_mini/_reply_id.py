"""The id of a message that could not be decoded, when it can still be read for certain.

A reply our strict decoder refuses (NaN in it, an integer of 5,000 digits, 1e400,
bytes that are not UTF-8, a raw newline in a string) usually still names its call:
``{"jsonrpc":"2.0","id":7,"result":NaN}``. :func:`named_id` reads the top-level
pairs of such an object leniently, in order, up to the first it cannot read, and
gives the ``"id"`` among them. Only a client's parse-error path calls it
(``ClientConnection.next_reply``, on a ``FrameError`` that is ``opened``): no cost
for a message that decodes, nor on a server.
"""

from __future__ import annotations

import json
import re
from typing import Final

__all__ = ["named_id"]

_NOT_WS: Final = re.compile(r"[^ \t\r\n]")
_MISSING: Final = object()


def _lenient_int(text: str) -> int | None:
    """An integer literal's value; None for one over int()'s digit limit (its value cannot matter here)."""
    try:
        return int(text)
    except ValueError:
        return None


# NaN, Infinity and 1e400 are read as floats (the stdlib's defaults), raw control
# characters in strings are let through, integers of any length are read.
_LENIENT: Final = json.JSONDecoder(strict=False, parse_int=_lenient_int)


def _skip(text: str, at: int) -> int:
    found = _NOT_WS.search(text, at)
    return len(text) if found is None else found.start()


def named_id(data: bytes) -> int | str | None:
    """The ``"id"`` of the object ``data`` opens, read leniently; None unless it is certain.

    Bytes that are not UTF-8 are replaced (U+FFFD). The pairs are read in order up
    to the end of the object or the first that cannot be read (a message cut
    short, say); the id is given when exactly one of them is ``"id"`` and its value
    is an integer (not a bool) or a string without a replaced byte, and no
    ``"method"`` is among them (a request of the server's names no call of ours).
    Anything else (no id read, an id that is itself unreadable: ``"id":NaN``, two
    ids): None.
    """
    text = data.decode("utf-8", "replace")
    at = _skip(text, 0)
    if not text.startswith("{", at):
        return None
    found: object = _MISSING
    at += 1
    while True:
        at = _skip(text, at)
        if not text.startswith('"', at):
            break
        try:
            key, at = _LENIENT.raw_decode(text, at)  # (a string: it starts with '"')
        except ValueError:
            break
        at = _skip(text, at)
        if not text.startswith(":", at):
            break
        try:
            value, at = _LENIENT.raw_decode(text, _skip(text, at + 1))
        except (ValueError, RecursionError):
            break
        if key == "method":
            return None
        if key == "id":
            if found is not _MISSING:
                return None  # two ids: which one answers?
            found = value
        at = _skip(text, at)
        if not text.startswith(",", at):
            break
        at += 1
    if type(found) is int or (type(found) is str and "\ufffd" not in found):
        return found
    return None
