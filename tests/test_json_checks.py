"""The codec's cheap checks of orjson's work give the answers of the full checks.

Reading: orjson turns an integer past 64 bits into a float, so a text with a long
run of digits goes to the standard library; from 4 KiB on, the run is first
looked for in a sample of the bytes. Writing: orjson writes NaN and Infinity as
``null``, so an output holding ``null`` is looked at; from 4 KiB on, ``null`` is
found through its ``u``. Each test places the number or the ``null`` at every
offset the shortcut could miss.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jsonrpc_mini._errors import ParseError
from jsonrpc_mini._json import HAVE_ORJSON, JsonCodec

needs_orjson = pytest.mark.skipif(not HAVE_ORJSON, reason="the shortcuts check orjson's work")
PAD = "x" * 5000  # past the size from which the shortcuts are taken


def both(value: Any) -> tuple[Any, Any]:
    """What each codec makes of ``value`` (dumps), or the exception type it raises."""
    out = []
    for use_orjson in (False, True):
        try:
            out.append(JsonCodec(use_orjson=use_orjson).dumps(value))
        except (TypeError, ValueError) as exc:
            out.append(type(exc))
    return out[0], out[1]


# -- reading: long runs of digits --------------------------------------------------


@needs_orjson
@pytest.mark.parametrize("digits", [19, 20, 21, 27, 40])
def test_a_long_integer_at_any_offset_stays_an_exact_integer(digits: int) -> None:
    codec = JsonCodec(use_orjson=True)
    number = int("9" * digits)
    for shift in range(20):  # every position relative to the sampled bytes
        text = json.dumps([PAD + "x" * shift, number, "tail"]).encode()
        value = codec.loads(text)
        assert value[1] == number and type(value[1]) is int, (digits, shift)


@needs_orjson
@pytest.mark.parametrize("limit", [1, 2, 3, 4, 5, 9, 17, 18])
def test_the_digit_limit_holds_at_any_offset(limit: int) -> None:
    codec = JsonCodec(use_orjson=True, max_int_digits=limit)
    allowed, too_long = int("7" * limit), int("7" * (limit + 1))
    for shift in range(2 * limit + 2):
        prefix = PAD + "x" * shift
        assert codec.loads(json.dumps([prefix, allowed]).encode())[1] == allowed
        with pytest.raises(ParseError, match="exceeds the limit"):
            codec.loads(json.dumps([prefix, too_long]).encode())


@needs_orjson
@given(
    st.lists(
        st.one_of(st.integers(-(10**25), 10**25), st.text("0123456789ab.-", max_size=30), st.floats(allow_nan=False)),
        max_size=40,
    ),
    st.integers(0, 30),
)
def test_texts_with_numbers_everywhere_read_as_the_stdlib_reads_them(items: list[Any], shift: int) -> None:
    text = json.dumps([PAD[: 4096 + shift], *items]).encode()
    assert JsonCodec(use_orjson=True).loads(text) == JsonCodec(use_orjson=False).loads(text)


class _Search:
    """A sample's run pattern that counts its searches and how many found the run."""

    def __init__(self, pattern: re.Pattern[bytes]) -> None:
        self.pattern = pattern
        self.searches = self.found = 0

    def search(self, sample: bytes) -> re.Match[bytes] | None:
        self.searches += 1
        match = self.pattern.search(sample)
        self.found += match is not None
        return match


def _batch(member: Callable[[int], dict[str, Any]]) -> bytes:
    return json.dumps([member(i) for i in range(1000)], separators=(",", ":")).encode()


@needs_orjson
@pytest.mark.parametrize(
    "text",
    [
        _batch(lambda i: {"jsonrpc": "2.0", "method": "add", "params": [i, 1], "id": i + 1}),
        _batch(lambda i: {"jsonrpc": "2.0", "id": i + 1, "result": i + 1}),
        _batch(lambda i: {"jsonrpc": "2.0", "method": "add", "params": [1000 + i, 9000 - i], "id": i + 1}),
    ],
    ids=["calls", "replies", "calls-4-digit-params"],
)
def test_a_batch_of_small_numbers_is_cleared_by_the_first_sample(text: bytes) -> None:
    # Speed, issue 8: a batch of 1,000 calls (and its replies) has no digit run, and
    # its first sample shows none: neither the second sample nor the whole text is
    # looked at. (With every 9th byte first, both samples were taken: see JsonCodec.)
    codec = JsonCodec(use_orjson=True)
    spies = [(stride, _Search(run)) for stride, run in codec._samples]
    codec._samples = tuple(spies)  # type: ignore[assignment]
    assert codec.loads(text) == json.loads(text)
    assert [(spy.searches, spy.found) for _, spy in spies] == [(1, 0)] + [(0, 0)] * (len(spies) - 1)


# -- writing: null, NaN and Infinity -------------------------------------------------


@needs_orjson
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("us", [0, 1, 7, 8, 9, 30])
def test_a_non_finite_float_after_any_number_of_u_is_refused(bad: float, us: int) -> None:
    # orjson writes it as null: it must be found whatever comes before it.
    words = ["u"] * us
    assert both([PAD, *words, bad]) == (ValueError, ValueError)
    assert both([PAD, *words, "nul", "ull", bad]) == (ValueError, ValueError)
    assert both({"k": PAD, "u" * us: bad}) == (ValueError, ValueError)
    stdlib, orjson = both([PAD, *words, None, "nu", "ll"])
    assert stdlib == orjson and b"null" in orjson


@needs_orjson
@given(
    st.lists(st.one_of(st.text('nul"\\ x', max_size=6), st.none(), st.sampled_from([math.nan, 1.5])), max_size=30),
    st.integers(0, 30),
)
def test_outputs_with_u_and_null_everywhere_agree_with_the_stdlib(items: list[Any], shift: int) -> None:
    stdlib, orjson = both([PAD[: 4096 + shift], *items])
    assert stdlib == orjson
