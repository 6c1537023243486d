"""The token scanner under the JSON stream reader: where a value that is still arriving ends.

Used by :class:`~jsonrpc_mini._json_stream.JsonStreamFramer` only (its base class).
The scanner walks a value that starts with a bracket token by token, keeping its
place (bracket stack, inside-a-string flag) between reads, so no byte is scanned
twice; it finds the closing bracket, refuses nesting past the limit as the bytes
arrive, and reports a raw newline in a string or a mismatched bracket where it
happens. It also holds the buffer bookkeeping after an event (``_complete``,
``_consume``, ``_error_at``). When to scan at all, and when a whole line may be
decoded without scanning, is the framer's part.
"""

from __future__ import annotations

import re
from typing import Final

from ._errors import ParseError
from ._frames import (
    COMPACT_AT,
    INVALID_REQUEST,
    PARSE_ERROR,
    Event,
    FrameError,
    Loads,
    Message,
    deep_error,
    nesting_message,
    parse_failure,
    slice_bytes,
    too_deep,
    too_large,
)
from ._json_lazy import LookAhead
from ._json_runs import CLOSE_ARRAY, RUN, RUN_DEPTH, RUN_WINDOW

__all__ = ["BACKSLASH", "CLOSER", "IDLE", "LINE", "SKIP", "VALUE", "ValueScanner"]

_IN_STRING: Final = re.compile(rb'["\\\n]')
_OUTSIDE: Final = re.compile(rb'[\[\]{}"]')
CLOSER: Final = {ord("{"): ord("}"), ord("["): ord("]")}
_QUOTE: Final = ord('"')
BACKSLASH: Final = ord("\\")
_NEWLINE: Final = ord("\n")
_BEFORE_OPEN: Final = frozenset(b"[{,:")  # what may precede a string or container inside a value
_SPACE: Final = frozenset(b" \t\r\n")
_CLOSE_OBJECT: Final = ord("}")
_COLON: Final = ord(":")
_LONG_STRING: Final = 64  # shorter strings are cheaper to walk with the regex
_DECODABLE_DEPTH: Final = 1000  # with depth_after_decoding, values nested deeper are refused unread

# Modes of the reader (JsonStreamFramer).
IDLE, VALUE, LINE, SKIP = range(4)


class ValueScanner(LookAhead):
    """The scanner's state and steps; the reading decisions are JsonStreamFramer's."""

    def __init__(
        self, loads: Loads, max_message_size: int, max_depth: int, depth_after_decoding: bool, scan_steps: int | None
    ) -> None:
        super().__init__(loads, max_message_size)  # _start: first byte of the value being read
        self._max_depth = max_depth
        # At most this many scanner steps per next_event (None: no bound); see scan_pending.
        self._scan_steps = scan_steps
        self._scan_pending = False
        self._after_decoding = depth_after_decoding
        # Past _DECODABLE_DEPTH no decoder reads a value (Python's recursion limit, orjson's
        # own): refused as it arrives, as before, rather than scanned to its end for nothing.
        self._scan_depth = max(max_depth, _DECODABLE_DEPTH) if depth_after_decoding else max_depth
        self._pos = 0  # next byte the scanner looks at
        self._mode = IDLE
        self._stack = bytearray()  # closing brackets still expected
        self._in_string = False
        self._no_fast_before = 0  # lines before this offset already failed the fast path
        self._no_newline_before = 0  # the fast path found no newline before this offset

    def _scan_value(self) -> Event | None:
        buf = self._buf
        end = len(buf)
        pos = self._pos
        stack = self._stack
        in_string = self._in_string
        # A value must close within max_size bytes: never look past that point.
        stop = min(end, self._start + self._max_size)
        dirty_until = 0  # bytes before this offset hold an escape or a newline
        after: bool | None = None  # just past an opening bracket (True) or a value (False)
        steps = self._scan_steps
        while pos < stop:
            if steps is not None:
                if not steps:
                    self._pos = pos
                    self._in_string = in_string
                    self._scan_pending = True
                    return None
                steps -= 1
            if in_string:
                m = _IN_STRING.search(buf, pos, min(stop, pos + _LONG_STRING))
                if m is None and pos + _LONG_STRING < stop:
                    # Speed: the regex walks a string byte by byte (~10x slower than
                    # decoding it). A long string usually holds no escape and no newline:
                    # find its closing quote with memchr and check the bytes before it
                    # with memchr too; only a string that fails the check (dirty_until)
                    # takes the regex path. Short strings stay on the regex: one call.
                    pos += _LONG_STRING
                    if pos >= dirty_until:
                        quote = buf.find(b'"', pos, stop)
                        clean_to = stop if quote < 0 else quote
                        if buf.find(b"\\", pos, clean_to) < 0 and self._no_newline(pos, clean_to):
                            if quote < 0:
                                pos = stop
                                break
                            in_string = False
                            pos = quote + 1
                            after = False
                            continue
                        dirty_until = clean_to
                    m = _IN_STRING.search(buf, pos, stop)
                if m is None:
                    pos = stop
                    break
                i = m.start()
                ch = buf[i]
                if ch == _QUOTE:
                    in_string = False
                    pos = i + 1
                    after = False
                elif ch == BACKSLASH:
                    if i + 1 >= end:
                        pos = i  # look at the escape again when its next byte arrives
                        break
                    if buf[i + 1] == _NEWLINE:
                        return self._error_at(i + 1, "Parse error: raw newline inside a string")
                    pos = i + 2
                else:
                    return self._error_at(i, "Parse error: raw newline inside a string")
            else:
                if after is not None and len(stack) + RUN_DEPTH <= self._scan_depth:
                    run = RUN[(stack[-1] == CLOSE_ARRAY, after)].match(buf, pos, min(stop, pos + RUN_WINDOW))
                    if run is not None:
                        pos = run.end()
                    after = None
                m = _OUTSIDE.search(buf, pos, stop)
                if m is None:
                    pos = stop
                    break
                i = m.start()
                ch = buf[i]
                pos = i + 1
                if ch == _QUOTE or ch in CLOSER:
                    # A string or container needs '[', '{', ',' or ':' before it. Without
                    # this, a line missing its closing bracket would swallow every later
                    # request; the error is placed after the previous token so that
                    # reading resumes on the line where the new value starts.
                    j = i - 1
                    while buf[j] in _SPACE:  # stops at the latest at the opening bracket
                        j -= 1
                    if buf[j] not in _BEFORE_OPEN:
                        return self._error_at(j + 1, f"Parse error: missing ',' before {chr(ch)!r}")
                    if ch != _QUOTE and stack[-1] == _CLOSE_OBJECT and buf[j] != _COLON:
                        # In an object a container is a member's value, after its ':'. Caught
                        # here, a line that left an object open ("{", "[{") costs only itself:
                        # reading resumes at the next line (otherwise that line's request is lost).
                        return self._error_at(j + 1, f"Parse error: an object member needs a key before {chr(ch)!r}")
                if ch == _QUOTE:
                    in_string = True
                elif ch in CLOSER:
                    stack.append(CLOSER[ch])
                    after = True
                    if len(stack) > self._scan_depth:
                        return self._error_at(i, nesting_message(self._max_depth), INVALID_REQUEST)
                elif ch != stack[-1]:
                    return self._error_at(i, f"Parse error: mismatched {chr(ch)!r}")
                else:
                    stack.pop()
                    if not stack:
                        return self._complete(pos)
                    after = False
        if end - self._start > self._max_size:
            return self._too_large()
        self._pos = pos
        self._in_string = in_string
        if self._eof:
            self._discard_all()
            return FrameError(PARSE_ERROR, "Parse error: incomplete JSON value at end of stream", at_eof=True)
        return None

    def _no_newline(self, start: int, end: int) -> bool:
        """Whether ``buf[start:end]`` holds no newline; no byte is searched twice for one.

        The bytes before ``_no_newline_before`` are known to hold none (the fast path
        searched them); a search that starts inside that range extends it.
        """
        known = self._no_newline_before
        if start > known:
            return self._buf.find(b"\n", start, end) < 0
        if end > known:
            if self._buf.find(b"\n", known, end) >= 0:
                return False
            self._no_newline_before = end
        return True

    def _complete(self, end: int) -> Event:
        frame = slice_bytes(self._buf, self._start, end)
        self._consume(end)
        try:
            value = self._loads(frame)
        except ParseError as exc:
            # The contract: after a parse error, drop the rest of the offending line
            # (from where _consume left _pos: the buffer may have been compacted).
            self._mode = SKIP
            return parse_failure(exc.message, frame)
        if self._after_decoding and too_deep(frame, value, self._max_depth):
            return deep_error(self._max_depth, value)
        return Message(value)

    def _error_at(self, index: int, message: str, code: int = PARSE_ERROR) -> FrameError:
        start = self._start
        self._mode = SKIP
        self._start = self._pos = index
        opened = code == PARSE_ERROR and bool(self._stack)  # inside an object or array
        self._stack = bytearray()
        # (The message so far: a client may read its id before where it broke off.)
        text = bytes(self._buf[start:index]) if opened else b""
        return FrameError(code, message, opened=opened, text=text)

    def _too_large(self) -> FrameError:
        self._failed = True
        self._buf = self._buffer_type()
        self._start = self._pos = 0
        return too_large(self._max_size)

    def _consume(self, end: int) -> None:
        self._mode = IDLE
        self._start = self._pos = end
        if end >= len(self._buf):
            self._buf = self._buffer_type()
            self._start = self._pos = self._no_fast_before = self._no_newline_before = 0
        elif end > COMPACT_AT and end * 2 > len(self._buf):
            del self._buf[:end]  # amortised: only when most of the buffer is consumed
            self._no_fast_before = max(0, self._no_fast_before - end)
            self._no_newline_before = max(0, self._no_newline_before - end)
            self._start = self._pos = 0

    def _discard_all(self) -> None:
        self._buf = self._buffer_type()
        self._start = self._pos = self._no_fast_before = self._no_newline_before = 0
        if self._mode != SKIP:
            self._mode = IDLE
