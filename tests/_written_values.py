"""Values where writing JSON fast and writing it the general way could part: for the byte tests.

The in-line writers (``_Link.request``, ``SessionCalls._plain_reply``) call orjson
themselves with ``dumps_line``'s checks; these strategies hold what those checks and
orjson's options are about: bools, integers at and past 64 bits and past the digit
limit of int-to-str conversion, NaN and infinities (nested too), every code point
(lone surrogates included), "null" in strings (it sends an output to the NaN check),
outputs past the small-output size, and subclasses of int, str, float, list and
dict and Enum members (orjson must pass those on to the stdlib, which decides).
"""

from __future__ import annotations

import enum
import json
import math
from typing import Any

from hypothesis import strategies as st

from jsonrpc_mini._json import JsonCodec

__all__ = ["EDGE_INTS", "SUBCLASSED", "WriterSubclass", "ints", "scalars", "texts", "values"]

EDGE_INTS = [0, -1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, 10**30, -(10**30)]
# (Built, not listed: a strategy's repr writes its values, and these have too many digits for str().)
HUGE_INTS = st.integers(4299, 4300).map(lambda digits: 10**digits)
ints = st.one_of(st.sampled_from(EDGE_INTS), st.integers(), st.booleans(), HUGE_INTS)
texts = st.one_of(
    st.text(st.characters(blacklist_categories=()), max_size=8),
    st.sampled_from(["null", "a\x00\x1f\x7f", "é€😀", "\ud800", "x" * 5000]),
)
# (1e-07 and 1e300: orjson writes 1e-7 and 1e300, the stdlib 1e-07 and 1e+300, so a
# float subclass orjson wrote itself would show.)
floats = st.sampled_from([math.nan, math.inf, -math.inf, 1.5, -0.0, 1e-07, 1e300])


class _Int(int):
    """An int subclass."""


class _Str(str):
    """A str subclass."""

    __slots__ = ()


class _Float(float):
    """A float subclass."""


class _List(list[Any]):
    """A list subclass."""


class _Dict(dict[str, Any]):
    """A dict subclass."""


class _Small(enum.IntEnum):
    """An IntEnum: written as its int by the stdlib."""

    ONE = 1


class _Word(enum.StrEnum):
    """A StrEnum: written as its str by the stdlib."""

    A = "a"


class _Odd(enum.Enum):
    """A plain Enum whose value is NaN."""

    NAN = math.nan


# The edge cases' own list: one of each kind (the containers hold a float whose
# spelling tells which writer wrote them).
SUBCLASSED = [
    _Int(7),
    _Str("s"),
    _Float(1e-07),
    _Float(math.nan),
    _List([1e-07]),
    _Dict(a=1e300),
    _Small.ONE,
    _Word.A,
    _Odd.NAN,
]

subclassed = st.one_of(
    ints.map(_Int), texts.map(_Str), floats.map(_Float), st.sampled_from([_Small.ONE, _Word.A, _Odd.NAN])
)
scalars = st.one_of(ints, ints, texts, texts, floats, st.none(), subclassed)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(texts, inner, max_size=2),
        st.lists(inner, max_size=2).map(_List),
        st.dictionaries(texts, inner, max_size=2).map(_Dict),
    ),
)


class WriterSubclass(JsonCodec):
    """Writes every non-ASCII character as an escape: a caller must not write as JsonCodec does."""

    __slots__ = ()

    def dumps_line(self, value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode() + b"\n"
