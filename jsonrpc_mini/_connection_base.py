"""What a server's and a client's sans-IO connection share: limits, framer, one-line reads.

:class:`_Base` holds the framer and codec state and the limits both sides check
(``max_message_size``, ``max_depth``); it feeds the framer and decodes the usual
read, exactly one compact line, without it (``_single_line``). Each side adds its
own half: ``ServerConnection`` in ``_protocol``, ``ClientConnection`` in
``_client_protocol``.
"""

from __future__ import annotations

from typing import Any

from ._errors import ParseError
from ._events import Closed
from ._frames import lines_balanced, too_deep
from ._framing import AutoFramer, FramingName, JsonStreamFramer, encode_frame, make_framer
from ._json import JsonCodec
from ._remote import check_count

__all__ = ["DEFAULT_MAX_DEPTH", "DEFAULT_MAX_MESSAGE_SIZE", "NOT_ONE"]

DEFAULT_MAX_MESSAGE_SIZE = 16 * 2**20
DEFAULT_MAX_DEPTH = 128
NOT_ONE: Any = object()  # _single_line: the bytes are not exactly one whole line


class _Base:
    # A client reads its server's replies whole before judging their depth: see ClientConnection.
    _DEPTH_AFTER_DECODING = False

    def __init__(
        self,
        framing: FramingName,
        codec: JsonCodec | None,
        max_message_size: int,
        max_depth: int,
        scan_steps: int | None = None,
    ) -> None:
        check_count("max_message_size", max_message_size)
        check_count("max_depth", max_depth)
        self.codec = codec if codec is not None else JsonCodec()
        self._max_size = max_message_size
        self._max_depth = max_depth
        # A line of at most this many bytes is within max_message_size and cannot nest
        # deeper than max_depth (each level takes an opening and a closing bracket).
        self._short_line = min(max_message_size, 2 * max_depth + 1)
        self._framer = make_framer(
            framing,
            self.codec.loads,
            max_message_size=max_message_size,
            max_depth=max_depth,
            depth_after_decoding=self._DEPTH_AFTER_DECODING,
            scan_steps=scan_steps,
        )
        self._eof = False
        self._closed_reported = False
        # The framer is a JsonStreamFramer between values and nothing was fed to it
        # since _single_line last saw so: one-step lines need not ask it (see there).
        self._between = False

    @property
    def framing(self) -> str:
        """The framing in use: ``newline``, ``content-length`` or ``auto`` (not yet known)."""
        return self._framer.name

    @property
    def max_message_size(self) -> int:
        """The largest message accepted, in bytes."""
        return self._max_size

    @property
    def max_depth(self) -> int:
        """The deepest nesting accepted, in levels."""
        return self._max_depth

    @property
    def in_message(self) -> bool:
        """True while a message has started arriving but is not complete."""
        return self._framer.in_message

    def receive_data(self, data: bytes) -> None:
        """Feed bytes received from the peer; ``b""`` means the peer closed its side."""
        if not data:
            self._eof = True
        self._between = False
        framer = self._framer
        framer.feed(data)
        if isinstance(framer, AutoFramer) and framer.chosen is not None:
            # Speed: once the framing is known, talk to its framer directly (a call less per message).
            self._framer = framer.chosen

    def _single_line(self, data: bytes, arrays: bool = False, newline: int | None = None) -> Any:
        """The value ``data`` holds if it is exactly one compact line (an object, or with
        ``arrays`` an array too) and nothing is buffered.

        Otherwise ``NOT_ONE``, and nothing is consumed: the caller feeds ``data`` to
        the framer, which handles everything else (and reports errors exactly). A
        line decoded here in vain is not decoded again by the framer's own fast path
        (it costs seconds for a line of many MiB).

        ``newline`` is ``data.find(b"\n")`` when the caller has searched already (speed:
        a search costs more instructions than the rest of this check without the decode).

        ``ClientConnection.decode_line`` and ``ServerConnection.receive_plain_call``
        repeat this usual case in line (speed: a call less per message): change them too.
        """
        first = data[:1]
        if (
            (first == b"{" or (arrays and first == b"["))
            and (data.find(b"\n") if newline is None else newline) == len(data) - 1
            # Speed: once seen between values, the framer stays so until bytes are fed
            # to it (receive_data): a line taken here leaves it untouched (and
            # tried_next_line only marks the line fed next), so the usual next line
            # needs no call (~0.6k instructions per message). Only receive_data
            # replaces an AutoFramer with the framer it chose.
            and (self._between or (type(framer := self._framer) is JsonStreamFramer and framer.between_values()))
        ):
            self._between = True
            # Speed: the usual line is short, so one comparison settles both the size
            # and the depth limits (too_deep's own first test, without its call: ~0.9k
            # of ~12k instructions per reply line).
            short = len(data) <= self._short_line
            if not short and len(data) > self._max_size:
                return NOT_ONE
            try:
                value = self.codec.loads(data)
            except ParseError:
                framer = self._framer
                if type(framer) is JsonStreamFramer:  # (always: see above; it stays between values)
                    framer.tried_next_line(len(data) - 1)
                return NOT_ONE
            if short or not too_deep(data, value, self._max_depth):
                return value
        return NOT_ONE

    def _whole_lines(self, data: bytes, limit: int, start: int) -> tuple[list[Any], int]:
        """Decode up to ``limit`` whole lines of ``data[start:]`` at once, if that is surely exact.

        Returns the values (one per line) and the offset past the last line taken,
        or ``([], start)``: fewer than two lines qualify, or the joined decode might
        not match what the framer would read line by line (see ``receive_requests``).
        """
        framer = self._framer
        if limit < 2 or type(framer) is not JsonStreamFramer or not framer.between_values():
            return [], start
        longest = min(2 * self._max_depth + 1, self._max_size)
        # Speed: the usual read, every whole line of which qualifies, is tested in C over
        # all of it (each line starts with "{" and is at most ``longest`` long) instead
        # of a Python lap a line (~40 bytecodes each, paid for every call of threads
        # sharing a client, on both sides). Else the lines up to the first that does
        # not qualify (at most ``limit``) are taken one by one: the same lines. Only
        # the first limit * (longest + 1) bytes can hold lines that qualify (so the
        # rest, e.g. a large message's first part, is not scanned).
        last = data.rfind(b"\n", start, start + limit * (longest + 1))
        group = data[start:last]
        count = group.count(b"\n") + 1
        if (
            last > start
            and count <= limit
            and data[start] == 0x7B  # "{"
            and group.count(b"\n{") == count - 1
            and (len(group) <= longest or max(map(len, group.split(b"\n"))) <= longest)
        ):
            pos = last + 1
        else:
            count = 0
            pos = start
            while count < limit:
                end = data.find(b"\n", pos)
                if end < 0 or end - pos > longest or data[pos : pos + 1] != b"{":
                    break
                count += 1
                pos = end + 1
            group = data[start : pos - 1]
        if count < 2:
            return [], start
        if not lines_balanced(group, self._max_depth):
            return [], start
        try:
            values = self.codec.loads(b"[" + group.replace(b"\n", b",\n") + b"]")
        except ParseError:
            return [], start
        if type(values) is not list or len(values) != count:
            return [], start
        return values, pos

    def _frame(self, body: bytes) -> bytes:
        name = self._framer.name
        return encode_frame(body, "newline" if name == "auto" else name)

    def _line(self, value: Any) -> bytes:
        """``value`` encoded and framed; with newline framing the codec writes the newline (one copy less)."""
        if self._framer.name == "content-length":
            return self._frame(self.codec.dumps(value))
        return self.codec.dumps_line(value)

    def _closed(self) -> Closed | None:
        if self._eof and not self._closed_reported:
            self._closed_reported = True
            return Closed()
        return None
