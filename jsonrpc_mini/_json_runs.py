"""Patterns that let the JSON stream scanner pass over runs of well-formed elements.

Used by :class:`~jsonrpc_mini._json_stream.JsonStreamFramer`'s scanner only.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["CLOSE_ARRAY", "RUN", "RUN_DEPTH", "RUN_WINDOW"]

# Speed: the scanner handles one token per Python iteration, ~50x slower than the
# decoder on structure-heavy values (arrays of small objects). These patterns let it
# pass over a run of complete, well-formed elements (nested at most two levels) in
# one C call. They only match text in which the scanner could find no error (no
# raw newline in a string, a ',' or ':' before every string and container, brackets
# balanced), so the result is the same as walking it token by token.
_WS_ = rb"[ \t\r\n]*+"
_STR_ = rb'"[^"\\\n]*+(?:\\[^\n][^"\\\n]*+)*+"'  # "unrolled": no alternation per byte
_V0_ = rb"(?:" + _STR_ + rb'|[^ \t\r\n\[\]{}",:]++)'


def _containers(inner: bytes) -> bytes:
    pair = _STR_ + _WS_ + rb":" + _WS_ + inner + _WS_
    array = rb"\[" + _WS_ + rb"(?:" + inner + _WS_ + rb"(?:," + _WS_ + inner + _WS_ + rb")*+)?\]"
    obj = rb"\{" + _WS_ + rb"(?:" + pair + rb"(?:," + _WS_ + pair + rb")*+)?\}"
    return rb"(?:" + inner + rb"|" + array + rb"|" + obj + rb")"


_ELEM_ = _containers(_containers(_V0_))
_PAIR_ = _STR_ + _WS_ + rb":" + _WS_ + _ELEM_
RUN: Final = {  # (in an array?, right after the opening bracket?) -> pattern
    (True, True): re.compile(_WS_ + rb"(?:" + _ELEM_ + _WS_ + rb"," + _WS_ + rb")*+"),
    (True, False): re.compile(_WS_ + rb"," + _WS_ + rb"(?:" + _ELEM_ + _WS_ + rb"," + _WS_ + rb")*+"),
    (False, True): re.compile(_WS_ + rb"(?:" + _PAIR_ + _WS_ + rb"," + _WS_ + rb")*+"),
    (False, False): re.compile(_WS_ + rb"," + _WS_ + rb"(?:" + _PAIR_ + _WS_ + rb"," + _WS_ + rb")*+"),
}
RUN_DEPTH: Final = 2
# A run is matched within this many bytes at a time: an element still arriving (a
# long string, say) fails to match after at most this much work, not after all of
# it each time more bytes arrive. The scanner goes on token by token and tries again.
RUN_WINDOW: Final = 32768
CLOSE_ARRAY: Final = ord("]")
