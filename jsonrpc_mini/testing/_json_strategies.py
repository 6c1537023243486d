"""Hypothesis strategies for JSON values: text, numbers, nesting, large payloads, exact comparison.

Re-exported by :mod:`jsonrpc_mini.testing.strategies` (import them from there).
"""

from __future__ import annotations

import json
import struct
from typing import Any, Final

from hypothesis import strategies as st

__all__ = [
    "EDGE_CHARACTERS",
    "big_integers",
    "characters",
    "deeply_nested",
    "json_scalars",
    "json_strings",
    "json_values",
    "large_values",
    "round_trip_floats",
    "same_json",
]

EDGE_CHARACTERS: Final[tuple[str, ...]] = (
    "\x00", "\x08", "\x0c", "\t", "\r", "\n", "\x1f", '"', "\\", "/", "\x7f", "\x80",
    "\u00e9", "\u07ff", "\u0800", "\u2028", "\u2029", "\ud7ff", "\ue000", "\ufeff",
    "\ufffd", "\uffff", "\U00010000", "\U0001f600", "\U0010ffff", "测",
)  # fmt: skip
"""Characters that trip JSON encoders and UTF-8 splitters: escapes, control
characters, JavaScript line separators, the edges of each UTF-8 length, the BOM,
and astral code points (4 UTF-8 bytes, a surrogate pair in ``\\u`` escapes)."""

_INT_EDGES: Final = tuple(
    sign * (base + delta) for sign in (1, -1) for base in (2**31, 2**53, 2**63, 2**64, 10**18) for delta in (-1, 0, 1)
)
_FLOAT_EDGES: Final = (
    0.0, -0.0, 0.1, 1.0, -1.5, 1e16, 2.0**53, 5e-324, 2.2250738585072014e-308,
    1.7976931348623157e308, -1.7976931348623157e308, 1e-7, 123456789.123456789,
)  # fmt: skip


def characters() -> st.SearchStrategy[str]:
    """Any Unicode scalar value (no surrogates), biased towards :data:`EDGE_CHARACTERS` and astral planes."""
    return st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(EDGE_CHARACTERS),
        st.characters(min_codepoint=0x10000, codec="utf-8"),
    )


def json_strings(min_size: int = 0, max_size: int | None = 40) -> st.SearchStrategy[str]:
    """Strings that are valid UTF-8 text: escapes, control and astral characters included."""
    return st.text(characters(), min_size=min_size, max_size=max_size)


def big_integers(max_digits: int = 400) -> st.SearchStrategy[int]:
    """Integers of any size up to ``max_digits`` decimal digits, 32/53/64-bit edges included.

    Servers built on this library accept up to ``max_int_digits`` (4300) digits.
    """
    if max_digits < 1:
        raise ValueError("max_digits must be at least 1")
    bound = 10**max_digits - 1
    return st.one_of(
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from([value for value in _INT_EDGES if abs(value) <= bound] or [0]),
        st.integers(min_value=-bound, max_value=bound),
    )


def round_trip_floats() -> st.SearchStrategy[float]:
    """Finite floats, subnormals and ``-0.0`` included: each survives JSON text exactly."""
    return st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(_FLOAT_EDGES))


def json_scalars(strings: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[Any]:
    """null, booleans, integers of any size, finite floats and strings."""
    return st.one_of(
        st.none(),
        st.booleans(),
        big_integers(),
        round_trip_floats(),
        json_strings() if strings is None else strings,
    )


def json_values(*, max_leaves: int = 30, max_width: int = 6) -> st.SearchStrategy[Any]:
    """Any JSON value: scalars, lists and string-keyed dicts nested to any shape, empty ones too."""
    keys = json_strings(max_size=12)
    return st.recursive(
        json_scalars(),
        lambda children: st.one_of(
            st.lists(children, max_size=max_width),
            st.dictionaries(keys, children, max_size=max_width),
        ),
        max_leaves=max_leaves,
    )


@st.composite
def deeply_nested(draw: st.DrawFn, min_depth: int = 1, max_depth: int = 100) -> Any:
    """A scalar wrapped in ``min_depth``..``max_depth`` lists and dicts (one per level).

    A server rejects nesting deeper than its ``max_depth`` (default 128); a request
    adds 2 levels around its params and a response 1 around its result.
    """
    depth = draw(st.integers(min_value=min_depth, max_value=max_depth))
    value: Any = draw(json_scalars())
    shapes = draw(st.lists(st.booleans(), min_size=depth, max_size=depth))
    key = draw(json_strings(max_size=4))
    for as_list in shapes:
        value = [value] if as_list else {key: value}
    return value


def _json_size(value: Any) -> int:
    """Bytes of ``value`` as compact JSON text (escapes such as ``\\u001f`` count 6)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


@st.composite
def _large_string(draw: st.DrawFn, sizes: st.SearchStrategy[int]) -> str:
    target = draw(sizes)
    unit = draw(json_strings(min_size=1, max_size=8))
    # Whole copies only: the JSON text lands within one unit (<= 48 bytes) below the target.
    return unit * max(1, (target - 2) // (_json_size(unit) - 2))


def _copies_for(target: int, item: Any, *, keyed: bool = False) -> int:
    """How many copies of ``item`` make a list (or a ``{"k0": ...}`` dict) of >= ``target`` bytes of JSON."""
    item_size = _json_size(item)
    if not keyed:
        return max(1, -(-(target - 2) // (item_size + 1)))
    size, count = 2, 0
    while size < target:
        size += len(f'"k{count}":') + item_size + 1
        count += 1
    return max(1, count)


@st.composite
def _large_container(draw: st.DrawFn, sizes: st.SearchStrategy[int]) -> Any:
    target = draw(sizes)
    item = draw(json_scalars(strings=json_strings(max_size=6)))
    if draw(st.booleans()):
        return [item] * _copies_for(target, item)
    return {f"k{i}": item for i in range(_copies_for(target, item, keyed=True))}


def large_values(min_bytes: int = 1000, max_bytes: int = 300_000) -> st.SearchStrategy[Any]:
    """Strings, lists and dicts whose JSON text is around 1024 bytes or far above it.

    About half are within a few bytes of 1024 (where naive readers split a frame),
    the rest spread up to ``max_bytes``.
    """
    near = st.integers(min_value=max(min_bytes, 1000), max_value=max(min_bytes, 1100))
    far = st.integers(min_value=min_bytes, max_value=max_bytes)
    sizes = st.one_of(near, far)
    return st.one_of(_large_string(sizes), _large_container(sizes))


def same_json(left: Any, right: Any) -> bool:
    """Whether two JSON values are identical: types must match (``1`` is not ``1.0``, not ``True``).

    Floats compare bit for bit (``-0.0`` is not ``0.0``, a NaN equals itself); dict order is ignored;
    tuples count as lists (JSON has only arrays).
    """
    stack: list[tuple[Any, Any]] = [(left, right)]
    while stack:
        a, b = stack.pop()
        if isinstance(a, tuple):
            a = list(a)
        if isinstance(b, tuple):
            b = list(b)
        if type(a) is not type(b):
            return False
        if isinstance(a, float):
            if struct.pack("<d", a) != struct.pack("<d", b):
                return False
        elif isinstance(a, list):
            if len(a) != len(b):
                return False
            stack.extend(zip(a, b, strict=True))
        elif isinstance(a, dict):
            if a.keys() != b.keys():
                return False
            stack.extend((a[key], b[key]) for key in a)
        elif a != b:
            return False
    return True
