"""The lazy look-ahead of the JSON stream reader: can a value still arriving have ended?

Used by :class:`~jsonrpc_mini._json_stream.JsonStreamFramer` only (a base class of it):
while a value that starts with a bracket arrives in many reads, each read's new
bytes are looked at once, in C (``unclosed``: bracket and quote counting), and
the token-by-token scanner runs only when that look cannot rule out that the
value ended (see ``JsonStreamFramer._read_value``).
"""

from __future__ import annotations

import re
from typing import Final

from ._frames import BufferedReader, Loads, unclosed

__all__ = ["LookAhead"]

_CLOSING: Final = re.compile(rb"[\]}]")
# Byte kinds for _may_close: an opening bracket, what may come before one, anything else.
_KINDS: Final = bytes(ord("{") if b in b"[{" else ord(",") if b in b",:" else ord("a") for b in range(256))
_WHITESPACE: Final = b" \t\r\n"
# An opening bracket's kind right after a value's. Speed: written to start at the
# rare "{" (the regex engine skips ahead to it) and look back for the common "a":
# a plain search for b"a{" stops at every "a", ~2.5x slower on the kinds of typical text.
_OPENS_AFTER_VALUE: Final = re.compile(rb"\{(?<=a\{)")
_MAY_END: Final = frozenset(b"]} \t\r")  # bytes a value received whole may end with
# _may_close gives up (and lets the scanner run) on nesting deeper than these bound:
# each look then costs a few passes over the new bytes, whatever max_depth is.
_UNCLOSED_ROUNDS: Final = 16
_UNCLOSED_MAX: Final = 64
_LOOK_BACK: Final = 4096  # how far _kind_before looks for a byte that is not a space
_FIRST_LOOK: Final = 4096  # how far _may_close looks at first from the scanner's place


class LookAhead(BufferedReader):
    """What the bytes the scanner has not seen yet leave open, kept from read to read.

    The scanner's state (``_pos``, ``_in_string``, ``_stack``) is the subclass's
    (``_json_scan.ValueScanner``); this class only reads it.
    """

    _pos: int  # next byte the scanner looks at
    _in_string: bool  # the scanner is inside a string
    _stack: bytearray  # closing brackets the scanner still expects

    def __init__(self, loads: Loads, max_message_size: int) -> None:
        super().__init__(loads, max_message_size)
        self._checked_to = 0  # _may_close has looked at the bytes before this offset
        self._unclosed = b""  # what they left open (see unclosed())
        self._kinds_to = 0  # _opens_after_a_value has looked at the bytes before this offset
        self._before = b","  # the kind of the last non-space byte before _kinds_to

    def _may_close(self) -> bool:
        """False only if the bytes the scanner has not seen surely leave this value open.

        ``_unclosed`` holds what the bytes from the scanner's place up to
        ``_checked_to`` left open, so each byte is looked at once. After True the
        scanner runs, and the next look starts again from its new place.

        That look, from the scanner's place, may have many values ahead of it (a
        peer that sent many without newlines, read at once): it goes ``_FIRST_LOOK``
        bytes far and then grows threefold each step while they leave the value
        open, so a value that ends early is not paid for with a look at every byte
        after it (each value's look reached the buffer's end: quadratic, seconds for
        a few MiB of concatenated requests).
        """
        buf = self._buf
        end = len(buf)
        stop = end
        if self._checked_to <= self._pos:  # the scanner has caught up: go on from its place
            self._checked_to = self._kinds_to = self._pos
            self._unclosed = b'"' if self._in_string else b""
            self._before = self._kind_before(self._pos)
            stop = min(end, self._pos + _FIRST_LOOK)
        if not (self._eof or end - self._start > self._max_size):
            while True:
                rest = unclosed(self._unclosed + buf[self._checked_to : stop], _UNCLOSED_ROUNDS)  # bytes + slice: bytes
                if rest is not None and buf[-1] in _MAY_END and self._opens_after_a_value(stop):
                    rest = None
                if rest is None or not self._leaves_open(rest):
                    break
                self._unclosed = rest
                self._checked_to = stop
                if stop == end:
                    return False
                stop = min(end, stop + 2 * (stop - self._pos))
        self._checked_to = -1
        return True

    def _leaves_open(self, rest: bytes) -> bool:
        """Whether ``rest`` (what the bytes after the scanner's place leave unclosed) surely leaves its value open."""
        closers = len(rest) - len(rest.lstrip(b"]}"))
        # Valid JSON leaves closing brackets, then opening ones (and maybe an open
        # string). No value ended unless the closing ones close all the scanner had
        # open, and each must be the one expected (a wrong one is an error to report).
        return (
            closers < len(self._stack)
            and rest[:closers] == self._stack[::-1][:closers]
            and len(rest) <= _UNCLOSED_MAX
            and not _CLOSING.search(rest, closers)
        )

    def _opens_after_a_value(self, end: int) -> bool:
        """Whether a ``[`` or ``{`` follows a value (a number, string, closing bracket).

        That is an error (a value that lost its closing bracket, then the next
        request) which bracket counting cannot see: all pairs may still match.
        Looked for only when the bytes end as a value may (see _MAY_END), over the
        bytes not looked at yet: a peer that stops sending after a broken value
        still gets its error, and each byte is looked at once. Strings hold no
        bracket here (``unclosed`` checked), so every bracket is structural.
        """
        kinds = (self._before + self._buf[self._kinds_to : end]).translate(_KINDS, _WHITESPACE)
        self._kinds_to = end
        self._before = kinds[-1:]
        return _OPENS_AFTER_VALUE.search(kinds) is not None

    def _kind_before(self, pos: int) -> bytes:
        """The kind (see ``_KINDS``) of the last non-space byte before ``pos`` (looked for nearby).

        If only spaces are nearby, the kind of a value: an opening bracket next then
        makes ``_opens_after_a_value`` call the scanner, which decides exactly. (The
        kind of a comma would let a value that lost its closing bracket, spaces and
        the next request look fine, and that peer would never be answered.)
        """
        text = self._buf[max(self._start, pos - _LOOK_BACK) : pos].rstrip(_WHITESPACE)
        return bytes(text[-1:]).translate(_KINDS) if text else b"a"
