"""The cheap depth bound on JSON text never lets a too-deep value through."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jsonrpc_mini._frames import deeper_than, surely_within, too_deep

KEY = 'k[]"\\'
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='ab[]{}"\\ ,:x', max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(alphabet='k[]"\\', max_size=3), inner, max_size=3)
    ),
    max_leaves=30,
)


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


@given(value=json_values, limit=st.integers(1, 12), ascii_only=st.booleans())
def test_the_bound_is_sound(value: Any, limit: int, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, indent=None if limit % 2 else 1).encode()
    if surely_within(text, limit):
        assert depth(value) <= limit
    assert too_deep(text, value, limit) == (depth(value) > limit) == deeper_than(value, limit)


def test_the_bound_decides_plain_values_without_a_walk() -> None:
    batch = [{"jsonrpc": "2.0", "method": "add", "params": [i, 1], "id": i} for i in range(1000)]
    rows = {"params": [[{"a": i, "b": "text", "c": [1, 2]} for i in range(1000)]]}
    for value in (batch, rows):
        assert surely_within(json.dumps(value).encode(), 8)
    assert not surely_within(b"[" * 10 + b"]" * 10, 8)  # too deep: never "surely within"
    assert not surely_within(b'{"a":[{"b":[]}]}', 3)  # depth 4: one round may take two levels
    assert surely_within(b'{"a":[{"b":[]}]}', 4)
    assert not surely_within(b'["a]"]', 8)  # a bracket inside a string: unknown, the walk decides
    assert not surely_within(b'["a\\"b"]', 8)  # an escaped quote: unknown


@pytest.mark.parametrize("many", [False, True], ids=["few-elements", "many-elements"])
@pytest.mark.parametrize("depth_", [1, 5, 6, 7, 40])
def test_large_texts_are_judged_exactly(many: bool, depth_: int) -> None:
    value: Any = "x" * (300 * 1024)  # large text: a value of few elements is walked
    for _ in range(depth_):
        value = [value, *range(300)] if many else [value]
    text = json.dumps(value).encode()
    for limit in (5, 6, 40):
        assert too_deep(text, value, limit) == (depth_ > limit)
