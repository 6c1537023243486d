"""What a framer produces: decoded messages and errors to answer; shared constants."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

__all__ = [
    "BufferedReader",
    "deep_error",
    "Event",
    "FrameError",
    "FramingName",
    "Loads",
    "Message",
    "deeper_than",
    "lines_balanced",
    "nesting_message",
    "parse_failure",
    "slice_bytes",
    "surely_within",
    "too_deep",
    "too_large",
    "unclosed",
]

FramingName = Literal["newline", "content-length", "auto"]
Loads = Callable[[bytes | bytearray], Any]

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600


@dataclass(frozen=True, slots=True)
class Message:
    """One complete JSON value received (already decoded)."""

    value: Any


@dataclass(frozen=True, slots=True)
class FrameError:
    """Bytes that do not form a valid value; answer with ``code``.

    ``fatal`` means the stream cannot be resynchronised and must be closed after
    the answer is sent. ``value`` is the value itself when it was decoded whole
    and then refused (nested too deep; see ``depth_after_decoding``), else None:
    a client reads the ids in it, to fail the calls it answers. ``opened`` is set
    for a complete message that could not be decoded but opens an object or
    array (see :func:`parse_failure`): it may be a reply (a client's call may
    take it). ``text`` is then the message (up to where it broke off): a client
    reads the id it names in it, when that is still certain (``_reply_id``).
    ``at_eof`` is set for a value the end of the stream cut short: to a client,
    the connection ended inside a reply, not a message from the server.
    Hints, not part of the error: equality ignores them.
    """

    code: int
    message: str
    fatal: bool = False
    value: Any = None
    opened: bool = field(default=False, compare=False)
    text: bytes = field(default=b"", compare=False, repr=False)
    at_eof: bool = field(default=False, compare=False)


Event = Message | FrameError

# Any byte that is not JSON whitespace.
WS: Final = re.compile(rb"[^ \t\r\n]")
# Consume the buffer in place only past this offset and when most of it is consumed.
COMPACT_AT: Final = 1 << 16


class BufferedReader:
    """What both framers share: the receive buffer, its consumed prefix and end of stream."""

    _buffer_type: type[bytearray] = bytearray  # tests swap in a buffer that counts work

    def __init__(self, loads: Loads, max_message_size: int) -> None:
        self._loads = loads
        self._max_size = max_message_size
        self._buf = self._buffer_type()
        self._start = 0  # bytes before this offset are consumed
        self._eof = False
        self._failed = False  # after a fatal error nothing more is buffered

    def feed(self, data: bytes) -> None:
        """Add received bytes; ``b""`` means the peer will send nothing more (EOF)."""
        if not data:
            self._eof = True
        elif not self._failed:
            self._buf += data

    @property
    def buffered(self) -> int:
        """How many received bytes are not yet consumed."""
        return len(self._buf) - self._start


def slice_bytes(buf: bytearray, start: int, end: int) -> bytes:
    """``bytes(buf[start:end])`` with one copy instead of two (a view, not a bytearray, in between)."""
    with memoryview(buf) as view:  # released at once: buf may be resized afterwards
        return bytes(view[start:end])


def parse_failure(message: str, text: bytes | bytearray) -> FrameError:
    """The -32700 for a complete message ``text`` that could not be decoded; ``opened`` if it starts ``{`` or ``[``.

    ``text`` is kept with it then (a client reads its id: see FrameError).
    """
    first = WS.search(text)
    if first is None or text[first.start()] not in b"{[":
        return FrameError(PARSE_ERROR, message)
    return FrameError(PARSE_ERROR, message, opened=True, text=bytes(text))


def too_large(limit: int) -> FrameError:
    """The fatal -32600 both framers answer a message over ``limit`` bytes with."""
    return FrameError(INVALID_REQUEST, f"Invalid Request: message too large (limit {limit} bytes)", True)


def deeper_than(value: Any, limit: int) -> bool:
    """Whether containers in ``value`` nest more than ``limit`` deep."""
    # Level by level, each level one comprehension: ~3x faster than a stack of
    # (item, depth) pairs on wide values such as a list of 10,000 objects.
    if not isinstance(value, (dict, list)):
        return False
    level = [value]
    for _ in range(limit):
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, (dict, list))
        ]
        if not level:
            return False
    return True


# From this size on, too_deep walks a value of at most _WALK_BUDGET elements.
_WALK_FROM: Final = 256 * 1024
_WALK_BUDGET: Final = 256

# Every byte but brackets, quotes and backslashes (deleted by surely_within).
_NOT_STRUCTURE: Final = bytes(b for b in range(256) if b not in b'[]{}"\\')
# "\\" looked for with ``in`` as its int value: bytes.__contains__ takes an int
# straight to memchr, but first tries a bytes argument as an int (a TypeError
# raised and cleared: ~2k instructions, more than the search itself).
_BACKSLASH: Final = ord("\\")


def _unmatched(text: bytes | bytearray, not_kept: bytes, rounds: int) -> bytes | None:
    """The brackets of ``text`` left after ``rounds`` rounds of removing innermost pairs.

    Only brackets, quotes, backslashes (and what ``not_kept`` spares) are kept, and
    each string is dropped as the ``""`` it leaves. None if a quote or backslash
    remains: some string held a bracket, quote or backslash, so the brackets left
    would not be the structure's. Each round removes the innermost ``[]`` and then
    ``{}`` pairs: at least one and at most two levels of nesting.
    """
    # (bytes() hands bytes back as they are; a line the framer decoded in place is a bytearray.)
    kept = bytes(text.translate(None, not_kept))
    if _BACKSLASH in kept:
        return None
    return _pairs_removed(kept, rounds)


def _pairs_removed(kept: bytes, rounds: int) -> bytes | None:
    """``_unmatched`` once only brackets and quotes are left in ``kept``."""
    # Speed: ``kept.replace(b'""', b"")`` then "no quote left" is the same test as
    # counting (both pair quotes left to right without overlap), and then removing
    # every quote gives the same bytes; replace cost twice as much on quote-heavy text.
    # The quotes are counted by what removing them took away, not by a pass of their own.
    brackets = kept.translate(None, b'"')
    if kept.count(b'""') * 2 != len(kept) - len(brackets):
        return None
    for _ in range(rounds):
        fewer = brackets.replace(b"[]", b"").replace(b"{}", b"")
        if fewer == brackets:
            break
        brackets = fewer
    return brackets


def surely_within(text: bytes | bytearray, limit: int) -> bool:
    """True if the JSON ``text`` surely nests at most ``limit`` deep (False: not known).

    Speed: walking a decoded value costs ~80 ns per element in Python (5 ms for
    10,000 small objects, twice orjson's decoding); this costs ~1-2 ns per byte in
    C. Emptying the structure's brackets within ``limit // 2`` rounds (each takes
    at most two levels) proves the depth is at most ``limit``.
    """
    kept = bytes(text.translate(None, _NOT_STRUCTURE))
    if _BACKSLASH in kept:
        return False  # (as _unmatched: an escape may hide a quote)
    rounds = limit // 2
    return _repeats_within(kept, rounds) or _pairs_removed(kept, rounds) == b""


def _repeats_within(kept: bytes, rounds: int) -> bool:
    """True if ``kept`` is ``[`` + n copies of one unit + ``]``, the unit empties within ``rounds - 1`` rounds.

    ``kept`` holds only brackets and quotes (as ``_unmatched`` keeps them). Then
    ``_pairs_removed(kept, rounds)`` gives ``b""`` too, so the answer is the same:
    the unit's quotes pair up, so the copies' do (a unit starts with ``{`` and
    ends with ``}``: no quotes meet at a seam); a unit that empties is balanced,
    so what is left of it after any step still starts with an opening bracket and
    ends with a closing one, and no pair forms across a seam: each round removes
    the same pairs in every copy, the unit's last pair (its ``{}``) at the end of
    a round, and the outer ``[]`` goes in the round after.

    Speed: a batch (1,000 calls, or their replies) repeats one shape, and pair
    removal on it costs a replace per level that matches 1,000 times, plus a count
    of ``""`` pairs (~15 us for 1,000 replies, ~30 us for 1,000 calls; the
    translate before it ~12-16 us); comparing with the first member's unit
    repeated is a memcmp. The unit ends at the first ``}``: any other shape takes
    the general way.
    """
    end = kept.find(b"}") + 1
    if end < 3 or kept[:2] != b"[{":
        return False
    unit = kept[1:end]
    copies, extra = divmod(len(kept) - 2, len(unit))
    return (
        extra == 0
        and kept.endswith(b"]")
        and kept.startswith(unit * copies, 1)
        and _pairs_removed(unit, rounds - 1) == b""
    )


_NOT_BRACKET_OR_QUOTE: Final = bytes(b for b in range(256) if b not in b'[]{}"')


def unclosed(text: bytes, rounds: int) -> bytes | None:
    """The brackets ``text`` leaves unmatched, and a ``"`` if it ends inside a string.

    ``text`` starts outside a string or with a ``"`` that opens one (as this
    function's own result does, so results chain: ``unclosed(previous + more)``).
    Strings are dropped, escapes first (``\\\\`` and ``\\"``, then the other
    backslashes). Matched ``[]`` and ``{}`` pairs are removed for up to ``rounds``
    rounds, so for valid JSON the result is closing brackets followed by opening
    ones. None means "not known": a string holds a bracket (a stray quote looks like
    that too), or ``text`` ends with a backslash (an escape cut in two). Linear, in
    C: used to tell that a value still arriving cannot have ended yet without
    scanning it token by token.
    """
    if text.endswith(b"\\"):
        return None
    if _BACKSLASH in text:
        text = text.replace(b"\\\\", b"").replace(b'\\"', b"")
    kept = text.translate(None, _NOT_BRACKET_OR_QUOTE)
    open_string = kept.count(b'"') % 2 == 1
    if open_string:  # the last quote opens the string the text ends in: drop its contents
        last = kept.rindex(b'"')
        if last + 1 < len(kept):
            return None  # a bracket in that string, or a stray quote before a bracket
        kept = kept[:last]
    rest = _pairs_removed(kept, rounds)  # kept holds only brackets and quotes already
    if rest is None:
        return None
    return rest + b'"' if open_string else rest


_NOT_STRUCTURE_OR_NEWLINE: Final = bytes(b for b in range(256) if b not in b'[]{}"\\\n')


def lines_balanced(text: bytes, rounds: int) -> bool:
    """True if every line of ``text`` surely holds balanced brackets, strings closed on that line.

    ``rounds`` bounds the nesting looked at (each round removes at least one level).
    False also means "not known": a string holding a bracket, quote or backslash
    makes the answer False. Used to prove that lines joined with ``,`` and a
    newline decode to exactly one value per line (see ``ServerConnection.receive_requests``).
    Newlines are kept, so no pair is removed across lines.
    """
    rest = _unmatched(text, _NOT_STRUCTURE_OR_NEWLINE, rounds)
    return rest is not None and not rest.replace(b"\n", b"")


def nesting_message(limit: int) -> str:
    """The error text for a value nested deeper than ``limit``."""
    return f"Invalid Request: nesting deeper than {limit} levels"


def deep_error(limit: int, value: Any) -> FrameError:
    """The error for ``value``, decoded whole but nested deeper than ``limit``: it keeps the value."""
    return FrameError(INVALID_REQUEST, nesting_message(limit), value=value)


def too_deep(text: bytes | bytearray, value: Any, limit: int) -> bool:
    """Whether ``value``, decoded from ``text``, nests more than ``limit`` deep."""
    if len(text) <= 2 * limit + 1:
        return False  # each level takes an opening and a closing bracket: too short to be deeper
    if len(text) >= _WALK_FROM:
        # Speed: a large text holding few elements (one long string, say) is cheaper
        # to judge by walking the value than by a pass over every byte.
        depth = _small_depth(value)
        if depth is not None:
            return depth > limit
    return not surely_within(text, limit) and deeper_than(value, limit)


def _small_depth(value: Any) -> int | None:
    """How deep containers nest in ``value``; None if it has more than ``_WALK_BUDGET`` elements."""
    seen = 0
    depth = 0
    level = [value]
    while True:
        level = [item for item in level if isinstance(item, (dict, list))]
        if not level:
            return depth
        depth += 1
        seen += sum(map(len, level))
        if seen > _WALK_BUDGET:
            return None
        level = [child for item in level for child in (item.values() if isinstance(item, dict) else item)]
