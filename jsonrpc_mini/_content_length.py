"""Reader for ``Content-Length: N\\r\\n\\r\\n<body>`` messages (LSP / vscode-jsonrpc)."""

from __future__ import annotations

import re
from typing import Final

from ._errors import ParseError
from ._frames import (
    COMPACT_AT,
    PARSE_ERROR,
    WS,
    BufferedReader,
    Event,
    FrameError,
    Loads,
    Message,
    deep_error,
    parse_failure,
    slice_bytes,
    too_deep,
    too_large,
)

__all__ = ["MAX_HEADER_SIZE", "ContentLengthFramer"]

# The blank line after the headers: CRLF as the LSP spec says, or bare LF as some
# hand-written clients send (accepted, as HTTP readers accept it). At most 4 bytes.
_HEADER_END: Final = re.compile(rb"\r?\n\r?\n")
_WHITESPACE: Final = b" \t\r\n"
MAX_HEADER_SIZE: Final = 8192
# From this size on, a body that ends the buffer is decoded in place (see next_event).
_HAND_OVER: Final = 256 * 1024


class ContentLengthFramer(BufferedReader):
    """Reader for ``Content-Length: N\\r\\n\\r\\n<body>`` messages (LSP style).

    Header names are case-insensitive; headers other than Content-Length are ignored.
    Header lines may end in a bare LF instead of CRLF.
    A bad header (missing, negative, non-numeric or conflicting length) cannot be
    resynchronised, so it is a fatal :class:`FrameError`.
    """

    name: Final = "content-length"

    def __init__(self, loads: Loads, *, max_message_size: int, max_depth: int | None = None) -> None:
        super().__init__(loads, max_message_size)
        self._max_depth = max_depth
        self._search_from = 0
        self._body_len = -1  # -1 while reading headers

    @property
    def in_message(self) -> bool:
        """True while part of a message has been received but not all of it."""
        return self._body_len >= 0 or WS.search(self._buf, self._start) is not None

    def next_event(self) -> Event | None:
        """Return the next message or error, or ``None`` if more bytes are needed."""
        if self._failed:
            return None
        buf = self._buf
        if self._body_len < 0:
            m = WS.search(buf, self._start)
            if m is None:
                self._reset(len(buf))
                return None
            self._start = m.start()
            # The header block may hold MAX_HEADER_SIZE bytes before its blank line,
            # however the bytes arrive: the blank line is not looked for past that.
            search_end = self._start + MAX_HEADER_SIZE + 4
            found = _HEADER_END.search(buf, max(self._start, self._search_from), search_end)
            if found is None:
                self._search_from = max(self._start, len(buf) - 3)
                if len(buf) >= search_end:
                    return self._fail("Parse error: Content-Length header block too long")
                return self._at_eof()
            if found.start() - self._start > MAX_HEADER_SIZE:  # a bare LF blank line is shorter
                return self._fail("Parse error: Content-Length header block too long")
            header = slice_bytes(buf, self._start, found.start())
            length = self._content_length(header)
            if isinstance(length, FrameError):
                return length
            self._body_len = length
            self._start = found.end()
        if len(buf) - self._start < self._body_len:
            return self._at_eof()
        body_end = self._start + self._body_len
        if self._body_len > self._max_size and buf[body_end - 1] not in _WHITESPACE:
            # The limit is on the JSON text, as with newline framing: a body may be one
            # byte longer when that byte is the whitespace after the text (the newline
            # that ends all we write, counted in our Content-Length).
            return self._too_large()
        body: bytes | bytearray
        if body_end == len(buf) and self._body_len >= _HAND_OVER:
            # Speed: as JsonStreamFramer._fast_path, a large body that ends the buffer
            # (the usual large message: one frame, read whole) is decoded from the buffer
            # itself: a copy would take as much fresh memory again (a page fault per
            # 4 KiB) and a pass over it. The header goes first: deleting a bytearray's
            # front only moves its start (no copy). The buffer is then the body's alone:
            # a new one takes what comes next.
            del buf[: self._start]
            body = buf
            self._buf = self._buffer_type()
            self._start = self._search_from = 0
        else:
            body = slice_bytes(buf, self._start, body_end)
            self._reset(body_end)
        self._body_len = -1
        try:
            value = self._loads(body)
        except ParseError as exc:
            return parse_failure(exc.message, body)
        limit = self._max_depth
        if limit is not None and too_deep(body, value, limit):
            return deep_error(limit, value)
        return Message(value)

    def _content_length(self, header: bytes) -> int | FrameError:
        length: int | None = None
        for line in header.split(b"\n"):  # a CR before the LF goes with strip() below
            name, sep, value = line.partition(b":")
            if not sep:
                return self._fail("Parse error: malformed header line (no colon)")
            if name.strip().lower() != b"content-length":
                continue
            text = value.strip()
            if not text.isdigit() or len(text) > 20:
                return self._fail("Parse error: Content-Length must be a decimal number of bytes")
            if length is not None and int(text) != length:
                return self._fail("Parse error: conflicting Content-Length headers")
            length = int(text)
        if length is None:
            return self._fail("Parse error: missing Content-Length header")
        if length > self._max_size + 1:  # one byte more: see next_event
            return self._too_large()
        return length

    def _at_eof(self) -> FrameError | None:
        if self._eof and self.buffered:
            self._reset(len(self._buf))
            self._body_len = -1
            return FrameError(PARSE_ERROR, "Parse error: incomplete message at end of stream", at_eof=True)
        return None

    def _fail(self, message: str) -> FrameError:
        return self._give_up(FrameError(PARSE_ERROR, message, True))

    def _too_large(self) -> FrameError:
        return self._give_up(too_large(self._max_size))

    def _give_up(self, error: FrameError) -> FrameError:
        # A fatal error: the connection closes after the answer, so drop the bytes.
        self._failed = True
        self._buf = self._buffer_type()
        self._start = self._search_from = 0
        return error

    def _reset(self, end: int) -> None:
        self._start = self._search_from = end
        if end >= len(self._buf):
            self._buf = self._buffer_type()
            self._start = self._search_from = 0
        elif end > COMPACT_AT and end * 2 > len(self._buf):
            del self._buf[:end]
            self._start = self._search_from = 0
