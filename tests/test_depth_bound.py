"""The cheap depth bound on JSON text never lets a too-deep value through."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jsonrpc_mini._frames import _NOT_STRUCTURE, _unmatched, deeper_than, surely_within, too_deep

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


def general_bound(text: bytes, limit: int) -> bool:
    """surely_within's answer by pair removal on the whole text (its way before the repeated-unit shortcut)."""
    return _unmatched(text, _NOT_STRUCTURE, limit // 2) == b""


members = st.dictionaries(st.text(alphabet='k[]"\\', max_size=3), json_values, min_size=1, max_size=3)


@given(first=members, rest=st.lists(members, max_size=3), copies=st.integers(1, 30), limit=st.integers(1, 12))
def test_a_repeated_shape_is_judged_as_by_pair_removal(first: Any, rest: Any, copies: int, limit: int) -> None:
    # Batches repeat one member's shape: the same answer as the general way, and sound.
    for value in ([first] * copies, [first] * copies + rest, rest + [first] * copies):
        text = json.dumps(value, separators=(",", ":")).encode()
        assert surely_within(text, limit) == general_bound(text, limit)
        assert too_deep(text, value, limit) == (depth(value) > limit)


# (member, rounds of pair removal a batch array of 1,000 such members needs: the
# member's own rounds, then one for the array's brackets)
SHAPES = [
    ({"jsonrpc": "2.0", "result": 3, "id": 7}, 2),  # {}: one round
    ({"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": 7}, 2),  # {[]}: one round
    ({"a": [[[1]]]}, 4),  # {[[[]]]}: three rounds (one level each until the {})
    ({"a": [{"b": 1}]}, 3),  # the unit ends at the first "}": not one copy, the general way
]


@pytest.mark.parametrize(("member", "rounds"), SHAPES)
def test_a_batchs_bound_holds_exactly_at_its_rounds(member: Any, rounds: int) -> None:
    value = [member] * 1000
    text = json.dumps(value, separators=(",", ":")).encode()
    for limit in range(1, 12):  # (each round may take two levels: limit // 2 rounds)
        assert surely_within(text, limit) == general_bound(text, limit) == (limit // 2 >= rounds), limit
        assert too_deep(text, value, limit) == (depth(value) > limit)


@pytest.mark.parametrize(
    "text",
    [
        b'[{"a":"x"},{"a":"]"},{"a":"x"}]',  # a bracket in a later member's string
        b'[{"a":"}"},{"a":"}"}]',  # the first "}" inside a string: its quotes do not pair
        b'[{"a":1},{"a":1},{"a":1}' + b"]" * 2,  # an extra "]"
        b'[{"a":1},{"a":1}{"a":1}]',  # (not JSON) copies without commas are still copies
        b'[{"a":"\\\\"},{"a":"\\\\"}]',  # an escape: unknown
        b'[{"a":1},{"a":1},{"a":[1]}]',  # the last member differs
        b'[{"a":"b"},{"a":"b"},[[[]]]]',  # ... and is as long as the others: depth 4
        b'[{"a":1},{"a":1},{"a":1},{"a":1]',  # (not JSON) one "}" short: copies and a rest
        b'[{"a":1},{"a":1}{',  # unclosed
        b'[{"a":[1,2]',  # no "}" at all
    ],
)
def test_near_copies_take_the_general_way(text: bytes) -> None:
    for limit in range(1, 8):
        assert surely_within(text, limit) == general_bound(text, limit)
