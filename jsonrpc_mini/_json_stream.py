"""Reader for JSON values sent newline-terminated, concatenated or pretty-printed.

Work is linear in the bytes fed, however they are chunked: the scanner keeps its
place (bracket stack, inside-a-string flag) between chunks and never re-reads a byte.
The scanner is in ``_json_scan`` and the look-ahead that lets it wait in
``_json_lazy`` (the framer's base classes); here is what the framer decides: a
whole line decoded at once (the fast path), scanning put off while a value cannot
have ended, scalars read to the end of their line.
"""

from __future__ import annotations

from typing import Final

from ._errors import ParseError
from ._frames import PARSE_ERROR, WS, Event, FrameError, Loads, Message, deep_error, slice_bytes, too_deep
from ._json_scan import BACKSLASH, CLOSER, IDLE, LINE, SKIP, VALUE, ValueScanner

__all__ = ["JsonStreamFramer"]

_VALUE_START: Final = frozenset(b'"-0123456789tfn')  # first bytes of scalars ({ and [ aside)
_QUOTE: Final = ord('"')
_NEWLINE: Final = ord("\n")
_CATCH_UP: Final = 65536  # the scanner catches up for a long string from at most this far behind
# From this size on, _fast_path decodes a line that fills the buffer in place. (The
# codec copies a smaller text that is not bytes anyway: see JsonCodec._orjson_loads.)
_HAND_OVER: Final = 256 * 1024


class JsonStreamFramer(ValueScanner):
    """Reader for JSON values that are newline-terminated, concatenated or pretty-printed.

    A value that starts with ``{`` or ``[`` is complete at its matching closing
    bracket, newline or not. Anything else is read up to the end of its line. On a
    definite error (raw newline in a string, mismatched bracket, bad JSON) one
    :class:`FrameError` is produced and the bytes up to and including the newline
    that ends the offending line are dropped.

    Nesting deeper than ``max_depth`` is refused by the scanner as the bytes
    arrive (id null: the value is never decoded). With ``depth_after_decoding``
    (a client's replies) a value up to 1,000 levels deep is decoded whole first,
    so the error keeps its value, and with it the id (see :func:`deep_error`),
    whatever the chunking; deeper ones, which no decoder reads, are refused as
    they arrive.
    """

    name: Final = "newline"

    def __init__(
        self,
        loads: Loads,
        *,
        max_message_size: int,
        max_depth: int,
        depth_after_decoding: bool = False,
        scan_steps: int | None = None,
    ) -> None:
        super().__init__(loads, max_message_size, max_depth, depth_after_decoding, scan_steps)
        self._lazy = False  # the value being read may still end at a newline: see _read_value
        self._in_long_string = False  # the scanner is inside a long string: see next_event
        self._long_limit = 0  # while _in_long_string: the buffer's largest size within max_message_size

    @property
    def in_message(self) -> bool:
        """True while part of a value has been received but not all of it."""
        return self._mode in (VALUE, LINE) or (self._mode == IDLE and self.buffered > 0)

    @property
    def scan_pending(self) -> bool:
        """True when ``next_event`` stopped after its ``scan_steps`` with bytes left to scan.

        Call ``next_event`` again (on an event loop, after letting other work run):
        it goes on where the scanner stopped. Scanning a large value made of deeply
        nested small elements costs about 1-2 us per byte, so without a bound one
        8 MiB value would hold an event loop for seconds (SECURITY.md).
        """
        return self._scan_pending

    def between_values(self) -> bool:
        """True when nothing is buffered, no line is being skipped and no fatal error occurred.

        Bytes fed now start a new value: the connections' one-step paths may decode
        a whole line themselves instead of feeding it. (A method, not a property: on
        Python 3.11 a property's getter costs ~0.5k instructions more than a method
        call, once per message on both sides.)
        """
        return self._mode == IDLE and len(self._buf) == self._start and not self._failed

    def feed(self, data: bytes) -> None:
        """Add received bytes; ``b""`` means the peer will send nothing more (EOF)."""
        if not data:
            self._eof = True
            self._in_long_string = False  # next_event reports the string cut short
        elif not self._failed:
            buf = self._buf
            buf += data  # in place: self._buf grows
            # Speed: see _read_value. In a long string the scanner is inside a string it
            # has checked. Bytes holding no quote and no newline (and not ending in a
            # backslash: an escape cut in two) go on with the string: no other byte can
            # end it or be an error in it. They are looked at here, in ``data``, so that
            # next_event has nothing to do for them (``int in bytes`` is one memchr,
            # without the cost of a method call: at 1 KiB a read the calls cost more than
            # the search). The scanner's place (and _fast_path's, which had reached it
            # too) is moved past them once, when a read ends the string mode, not per
            # read (~40 ns a read). At EOF it is not: the scanner goes on from where it
            # stopped, inside the string, and reads to its end once.
            if self._in_long_string and (
                _QUOTE in data or _NEWLINE in data or data[-1] == BACKSLASH or len(buf) > self._long_limit
            ):
                self._in_long_string = False  # next_event reads these bytes the usual way
                self._pos = self._no_newline_before = len(buf) - len(data)

    def tried_next_line(self, newline: int) -> None:
        """The caller decoded the line it feeds next, between values, with no success.

        ``newline`` is that line's newline offset in it: the fast path leaves the
        line to the scanner, as if it had tried the line itself.
        """
        self._no_fast_before = len(self._buf) + newline

    def next_event(self) -> Event | None:
        """Return the next complete value or error, or ``None`` if more bytes are needed.

        ``None`` with :attr:`scan_pending` set means "call again": the scanner
        stopped after its ``scan_steps``.
        """
        if self._in_long_string:
            return None  # every byte fed since the last call goes on with a long string: see feed
        if self._scan_pending:
            self._scan_pending = False
            event = self._scan_value()
            if event is not None or self._scan_pending:
                return event
            # Everything fed is scanned and the value is still open: as after any read.
            return None
        if self._failed:
            return None
        while True:
            buf = self._buf
            if self._mode == SKIP:
                nl = buf.find(b"\n", self._pos)
                if nl < 0:
                    self._discard_all()
                    return None
                self._consume(nl + 1)
                continue
            if self._mode == IDLE:
                m = WS.search(buf, self._start)
                if m is None:
                    self._discard_all()
                    return None
                start = m.start()
                self._start = self._pos = start
                if buf[start] in CLOSER:
                    self._lazy = start >= self._no_fast_before
                    self._checked_to = -1
                    event = self._fast_path(start)
                    if event is not None:
                        return event
                    self._mode = VALUE
                    self._stack = bytearray((CLOSER[buf[start]],))
                    self._in_string = False
                    self._pos = start + 1
                elif buf[start] not in _VALUE_START:
                    # No JSON value starts with this byte (e.g. a TLS handshake): answer
                    # now rather than when a newline or read_timeout comes.
                    return self._error_at(start, "Parse error: no JSON value starts with this byte")
                else:
                    self._mode = LINE
            if self._mode == LINE:
                return self._read_line()
            return self._read_value()

    def _fast_path(self, start: int) -> Event | None:
        # Most peers send one compact value per line: try the whole line with the C
        # decoder first. Each line is tried at most once, so the cost stays linear.
        if start < self._no_fast_before:
            return None
        buf = self._buf
        nl = buf.find(b"\n", max(start, self._no_newline_before))
        if nl < 0:
            # Concatenated values with no newline yet: never search these bytes again.
            self._no_newline_before = len(buf)
            return None
        self._lazy = False  # this line is tried now, and never again
        if nl - start > self._max_size:
            return None
        # Speed: a large line that fills the buffer (the usual large message: one value,
        # its newline last in the last read) is decoded from the buffer itself, newline
        # included (JSON whitespace: the same value, and a failed try's error is dropped
        # below). A copy would cost as much fresh memory again (a page fault every
        # 4 KiB) and a pass over it; the buffer is replaced by an empty one when the
        # line is consumed, so nothing changes it meanwhile. Smaller lines stay bytes:
        # the codec's usual path takes bytes.
        whole = start == 0 and nl + 1 == len(buf) and nl >= _HAND_OVER
        line = buf if whole else slice_bytes(buf, start, nl)
        try:
            value = self._loads(line)
        except ParseError:
            self._no_fast_before = nl
            return None
        if too_deep(line, value, self._max_depth):
            if self._after_decoding:
                self._consume(nl + 1)
                return deep_error(self._max_depth, value)
            self._no_fast_before = nl  # let the scanner report it exactly where it happens
            return None
        self._consume(nl + 1)
        return Message(value)

    def _read_value(self) -> Event | None:
        """Go on reading a value that starts with a bracket and did not come in one read.

        Speed: the scanner costs about as much per byte as decoding (more on arrays
        of small objects), while a compact value sent in many reads usually ends at
        a newline. So while ``_lazy``, the scan waits: each read's new bytes are
        searched for a newline, and that line is decoded whole as in ``_fast_path``.
        The scan catches up (its state is kept, so no byte is scanned twice) when
        that line fails, at the end of stream or the size limit, and whenever
        ``_may_close`` cannot rule out that a value ended in the new bytes: a value
        sent without a newline is still answered at its closing bracket. The events
        are those of scanning every read; only an error inside a value still
        arriving may be reported later, at the latest with the bracket that closes
        the value (tests/test_framing_lazy.py holds both to this).
        """
        if self._lazy:
            event = self._fast_path(self._start)
            if event is not None:
                # The value ended without the scanner: its stack is stale. Left as it was,
                # a later line that opens no value (a log line) would count as a reply
                # that could not be read (``opened``), and a client's lone call would fail.
                self._stack = bytearray()
                return event
            if self._lazy:
                buf = self._buf
                start = self._checked_to
                if (
                    start > self._pos
                    and self._unclosed[-1:] == b'"'
                    and buf.find(b'"', start) < 0
                    and buf.find(b"\n", start) < 0
                ):
                    # A string went on for a whole read: a long one, as large values
                    # usually are. The scanner catches up once, so that the string is
                    # surely one (a stray quote would have made ``_unclosed`` see a string
                    # where there is none), and then reads that only continue it take
                    # two memchr in feed (``_in_long_string``) and nothing else.
                    if len(buf) - self._pos <= _CATCH_UP:
                        event = self._scan_value()
                        self._in_long_string = event is None and self._in_string and self._pos == len(buf)
                        self._long_limit = self._start + self._max_size  # feed's size check
                        return event
                    # Far behind (token by token, catching up with a large structure-heavy
                    # start would cost more than it saves): a few memchr more. A closing
                    # bracket might be a stray quote's doing, so that read goes to _may_close.
                    if (
                        buf.find(b"}", start) < 0
                        and buf.find(b"]", start) < 0
                        and buf[-1] != BACKSLASH
                        and not self._eof
                        and len(buf) - self._start <= self._max_size
                    ):
                        self._checked_to = len(buf)
                        return None
                if not self._may_close():
                    return None
        return self._scan_value()

    def _read_line(self) -> Event | None:
        buf = self._buf
        nl = buf.find(b"\n", self._pos)
        if nl < 0:
            if len(buf) - self._start > self._max_size:
                return self._too_large()
            if not self._eof:
                self._pos = len(buf)
                return None
            end = len(buf)
        else:
            end = nl
        if end - self._start > self._max_size:
            return self._too_large()
        line = slice_bytes(buf, self._start, end)
        self._consume(end + 1)
        try:
            return Message(self._loads(line))
        except ParseError as exc:
            return FrameError(PARSE_ERROR, exc.message)
