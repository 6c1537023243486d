"""What a framer produces: decoded messages and errors to answer; shared constants."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

__all__ = ["Event", "FrameError", "FramingName", "Loads", "Message"]

FramingName = Literal["newline", "content-length", "auto"]
Loads = Callable[[bytes], Any]

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600


@dataclass(frozen=True, slots=True)
class Message:
    """One complete JSON value received (already decoded)."""

    value: Any


@dataclass(frozen=True, slots=True)
class FrameError:
    """Bytes that do not form a valid value; answer with ``code`` (id null).

    ``fatal`` means the stream cannot be resynchronised and must be closed after
    the answer is sent.
    """

    code: int
    message: str
    fatal: bool = False


Event = Message | FrameError

# Any byte that is not JSON whitespace.
WS: Final = re.compile(rb"[^ \t\r\n]")
# Consume the buffer in place only past this offset and when most of it is consumed.
COMPACT_AT: Final = 1 << 16
