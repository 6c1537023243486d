"""Split a byte stream into JSON values: newline/concatenated JSON and Content-Length.

A framer is fed bytes (``feed``) and yields events (``next_event``): a decoded
:class:`Message`, a :class:`FrameError` to answer, or ``None`` when it needs more
bytes. It never touches a socket. The readers live in ``_json_stream`` and
``_content_length``; this module picks one (:func:`make_framer`, :class:`AutoFramer`)
and frames outgoing bytes (:func:`encode_frame`).
"""

from __future__ import annotations

from ._content_length import MAX_HEADER_SIZE, ContentLengthFramer
from ._frames import WS, Event, FrameError, FramingName, Loads, Message
from ._json_stream import JsonStreamFramer

__all__ = [
    "MAX_HEADER_SIZE",
    "AutoFramer",
    "ContentLengthFramer",
    "Event",
    "FrameError",
    "Framer",
    "FramingName",
    "JsonStreamFramer",
    "Message",
    "encode_frame",
    "make_framer",
]

Framer = JsonStreamFramer | ContentLengthFramer


class AutoFramer:
    """Pick the framing from the first bytes a peer sends: a ``C`` starts headers."""

    def __init__(self, loads: Loads, *, max_message_size: int, max_depth: int, scan_steps: int | None = None) -> None:
        self._loads = loads
        self._max_size = max_message_size
        self._max_depth = max_depth
        self._scan_steps = scan_steps
        self._pending = bytearray()
        self._eof = False
        self.chosen: Framer | None = None

    @property
    def name(self) -> str:
        """The framing in use, or ``"auto"`` until it is known."""
        return "auto" if self.chosen is None else self.chosen.name

    @property
    def buffered(self) -> int:
        """How many received bytes are not yet consumed."""
        return len(self._pending) if self.chosen is None else self.chosen.buffered

    @property
    def in_message(self) -> bool:
        """True while part of a message has been received but not all of it."""
        # Until the framing is known only whitespace has arrived: no message yet.
        return self.chosen is not None and self.chosen.in_message

    def feed(self, data: bytes) -> None:
        """Add received bytes; ``b""`` means EOF."""
        if self.chosen is not None:
            self.chosen.feed(data)
            return
        if not data:
            self._eof = True
            return
        self._pending += data
        m = WS.search(self._pending)
        if m is None:
            if len(self._pending) > MAX_HEADER_SIZE:
                self._pending = bytearray()
            return
        if self._pending[m.start()] in b"Cc":
            self.chosen = ContentLengthFramer(self._loads, max_message_size=self._max_size, max_depth=self._max_depth)
        else:
            self.chosen = JsonStreamFramer(
                self._loads, max_message_size=self._max_size, max_depth=self._max_depth, scan_steps=self._scan_steps
            )
        self.chosen.feed(bytes(self._pending))
        self._pending = bytearray()
        if self._eof:  # pragma: no cover - feed after EOF is a caller bug
            self.chosen.feed(b"")

    def next_event(self) -> Event | None:
        """Return the next message or error, or ``None`` if more bytes are needed."""
        if self.chosen is None:
            return None
        return self.chosen.next_event()


def make_framer(
    framing: FramingName,
    loads: Loads,
    *,
    max_message_size: int,
    max_depth: int,
    depth_after_decoding: bool = False,
    scan_steps: int | None = None,
) -> Framer | AutoFramer:
    """Build the reader for ``framing``; ``depth_after_decoding``, ``scan_steps``: see :class:`JsonStreamFramer`."""
    if framing == "newline":
        return JsonStreamFramer(
            loads,
            max_message_size=max_message_size,
            max_depth=max_depth,
            depth_after_decoding=depth_after_decoding,
            scan_steps=scan_steps,
        )
    if framing == "content-length":
        return ContentLengthFramer(loads, max_message_size=max_message_size, max_depth=max_depth)
    if framing == "auto":
        return AutoFramer(loads, max_message_size=max_message_size, max_depth=max_depth, scan_steps=scan_steps)
    raise ValueError(f"unknown framing {framing!r}: use 'newline', 'content-length' or 'auto'")


def encode_frame(body: bytes, framing: str) -> bytes:
    """Wrap an encoded JSON value for the wire: newline-terminated or with a header.

    Everything written ends with a newline (API.md). With a header the newline is
    part of the body and counted in its length: JSON allows whitespace after the
    value, so a reader that takes exactly ``Content-Length`` bytes still decodes it.
    """
    if framing == "content-length":
        # Speed: one join copies the body once; ``header + body + b"\n"`` copied it twice
        # (a 1 MiB reply: a MiB of copying less).
        return b"".join((b"Content-Length: %d\r\n\r\n" % (len(body) + 1), body, b"\n"))
    return body + b"\n"
