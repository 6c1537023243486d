"""A text that fails to decode is read once, and reported in the stdlib's words.

Decoding several MiB of small containers takes seconds with the event loop (or every
thread) waiting (SECURITY.md), so a large text that fails must not be read again
only to word its error: orjson's "content after the value" and the plain stdlib
reading's errors are reported at once when the hooked reading would fail at the
same character. The words stay exactly those of the hooked stdlib reading, with and
without orjson.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jsonrpc_mini import _json
from jsonrpc_mini._errors import ParseError
from jsonrpc_mini._json import HAVE_ORJSON, JsonCodec

BOTH = pytest.mark.parametrize("use_orjson", [False, True], ids=["stdlib", "orjson"])
LARGE = 300 * 1024  # past _WALK_FROM: orjson's large-text path


def reference_error(codec: JsonCodec, text: bytes) -> str:
    """The words of the hooked stdlib reading, the reference for every error."""
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"Parse error: not UTF-8 ({exc.reason} at byte {exc.start})"
    try:
        codec._decoder.decode(decoded)
    except RecursionError:
        return "Parse error: nesting too deep"
    except ValueError as exc:
        return f"Parse error: {_json._short(exc)}"
    raise AssertionError("the text was meant to be invalid")


numbers = st.one_of(
    st.integers(-(10**8), 10**8).map(str),
    st.integers(1, 30).map(lambda n: "9" * n),  # past a small digit limit, and past 64 bits
    st.sampled_from(["1e400", "-1E+400", "2.5e-3", "1e5", "0.5"]),
)
after = st.sampled_from(["x", "{}", "[1]", ",", "]", '"s"', "7", "1e400", "  \n {", "\t[2, 3]", "null", "\u00e9"])


@BOTH
@pytest.mark.parametrize("pad", [600, LARGE], ids=["medium", "large"])
@pytest.mark.parametrize("max_int_digits", [5, 4300])
@settings(max_examples=40, deadline=None)
@given(values=st.lists(numbers, max_size=4), extra=after, accent=st.booleans())
def test_a_value_and_more_is_refused_in_the_stdlibs_words(
    use_orjson: bool, pad: int, max_int_digits: int, values: list[str], extra: str, accent: bool
) -> None:
    codec = JsonCodec(use_orjson=use_orjson, max_int_digits=max_int_digits)
    filler = ("\u00e9" if accent else "x") * pad  # non-ASCII: the position counts characters
    text = ('["' + filler + '"' + "".join("," + v for v in values) + "] " + extra).encode()
    with pytest.raises(ParseError) as info:
        codec.loads(text)
    assert info.value.message == reference_error(codec, text)


@BOTH
@pytest.mark.parametrize(
    "text",
    [
        b"[1,]",
        b'{"a" 1}',
        b"[1e400, 1,]",  # a number the hooks refuse comes first
        b"[99999999, ]",  # past the digit limit of 5, then a syntax error
        b'["\\ud800", 1, 2',  # a lone surrogate (orjson refuses it), then the text ends
        b"[" * 3000 + b"]" * 2999,
    ],
)
@pytest.mark.parametrize("pad", [600, LARGE], ids=["medium", "large"])
def test_other_errors_keep_the_stdlibs_words(use_orjson: bool, text: bytes, pad: int) -> None:
    codec = JsonCodec(use_orjson=use_orjson, max_int_digits=5)
    padded = b'[["' + b"x" * pad + b'"],' + text + b"]"
    with pytest.raises(ParseError) as info:
        codec.loads(padded)
    assert info.value.message == reference_error(codec, padded)


class CountingDecoder:
    """Stands for a json.JSONDecoder and counts its readings."""

    def __init__(self, decoder: json.JSONDecoder, reads: list[str], name: str) -> None:
        self._decoder = decoder
        self._reads = reads
        self._name = name

    def decode(self, text: str) -> Any:
        self._reads.append(self._name)
        return self._decoder.decode(text)

    def scan_once(self, text: str, index: int) -> Any:
        # (JsonCodec.loads calls the scanner itself for a text whose value starts at once.)
        self._reads.append(self._name)
        return self._decoder.scan_once(text, index)


class CountingOrjson:
    """Stands for the orjson module and counts its readings."""

    def __init__(self, reads: list[str]) -> None:
        assert _json._orjson is not None
        self._orjson = _json._orjson
        self._reads = reads
        self.JSONDecodeError = self._orjson.JSONDecodeError

    def loads(self, data: Any) -> Any:
        self._reads.append("orjson")
        return self._orjson.loads(data)


def readings(use_orjson: bool, monkeypatch: pytest.MonkeyPatch, text: bytes) -> tuple[list[str], str]:
    """The decoders that read ``text`` (in order) and the ParseError's message."""
    if use_orjson and not HAVE_ORJSON:
        pytest.skip("orjson is not installed")
    reads: list[str] = []
    codec = JsonCodec(use_orjson=use_orjson)
    codec._plain = CountingDecoder(codec._plain, reads, "plain")  # type: ignore[assignment]
    codec._decoder = CountingDecoder(codec._decoder, reads, "hooked")  # type: ignore[assignment]
    if use_orjson:
        monkeypatch.setattr(_json, "_orjson", CountingOrjson(reads))
    with pytest.raises(ParseError) as info:
        codec.loads(text)
    return reads, info.value.message


@BOTH
@pytest.mark.parametrize(
    "tail",
    [b'{"jsonrpc":"2.0","method":"ping","id":2}', b"]"],  # two values sent on one line; a bracket too many
)
def test_a_large_value_and_more_is_read_once(use_orjson: bool, tail: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    text = b"[" + b",".join([b"[[1],[2]]"] * (LARGE // 8)) + b"]" + tail
    reads, message = readings(use_orjson, monkeypatch, text)
    assert message.startswith("Parse error: Extra data")
    assert reads == (["orjson"] if use_orjson else ["plain"])


@BOTH
@pytest.mark.parametrize("pad", [600, LARGE], ids=["medium", "large"])
def test_a_syntax_error_is_read_once_without_orjson_and_twice_with_it(
    use_orjson: bool, pad: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # orjson's other errors (here a trailing comma) may be ones the stdlib does not
    # make (big integers, lone surrogates): the stdlib's plain reading decides, once.
    reads, message = readings(use_orjson, monkeypatch, b'["' + b"x" * pad + b'", 1, 2,]')
    assert "Expecting value" in message
    assert reads == (["orjson", "plain"] if use_orjson else ["plain"])


@BOTH
def test_a_number_the_hooks_refuse_still_gets_the_hooked_reading(
    use_orjson: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads, message = readings(use_orjson, monkeypatch, b'["' + b"x" * LARGE + b'", 1e400] x')
    assert "overflows a float" in message
    assert reads[-1] == "hooked"


@BOTH
@pytest.mark.parametrize("depth", [300, 1010, 1020])
def test_a_deep_value_and_more_keeps_the_stdlibs_words(use_orjson: bool, depth: int) -> None:
    # orjson reads nesting up to 1,024 deep, the stdlib only to its recursion limit:
    # past that, "nesting too deep" (the reference's words), not orjson's "Extra data".
    codec = JsonCodec(use_orjson=use_orjson)
    text = b'["' + b"x" * LARGE + b'",' + b"[" * depth + b"]" * depth + b"] x"
    with pytest.raises(ParseError) as info:
        codec.loads(text)
    assert info.value.message == reference_error(codec, text)
