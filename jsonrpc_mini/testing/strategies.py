"""Hypothesis strategies for JSON-RPC: JSON values, argument shapes, requests, chunkings.

Use them to property-test your own handlers, clients and servers::

    from hypothesis import given
    from jsonrpc_mini.testing import strategies as rst

    @given(rst.arguments())
    def test_echo(jsonrpc_client, arguments):
        assert jsonrpc_client.call("echo", *arguments.args, **arguments.kwargs) == ...

Every value drawn from :func:`json_values` survives ``json.dumps``/``json.loads``
unchanged (no NaN, no infinities, no lone surrogates, string keys only), so a round
trip may be checked with ``==`` (or, stricter, with :func:`same_json`). Needs
``hypothesis`` (the ``test`` extra); nothing else in ``jsonrpc_mini.testing`` does.
"""

from __future__ import annotations

import itertools
import json
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from hypothesis import strategies as st

from ._plan import DirectionFaults, FaultPlan

__all__ = [
    "EDGE_CHARACTERS",
    "Arguments",
    "arguments",
    "batches",
    "big_integers",
    "characters",
    "chunkings",
    "deeply_nested",
    "fault_plans",
    "invalid_requests",
    "json_scalars",
    "json_strings",
    "json_values",
    "keyword_names",
    "large_values",
    "malformed_lines",
    "method_names",
    "notifications",
    "params",
    "request_ids",
    "requests",
    "round_trip_floats",
    "same_json",
]

ArgumentKind = Literal["none", "positional", "keyword", "mixed"]

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


def keyword_names() -> st.SearchStrategy[str]:
    """Keyword argument names: any string except all-ASCII-digit ones.

    Names made only of ASCII digits are reserved: they carry positional arguments
    when a call mixes positional and keyword arguments.
    """
    return json_strings(max_size=12).filter(lambda name: not (name.isascii() and name.isdigit()))


@dataclass(frozen=True)
class Arguments:
    """Arguments of one call: ``client.call(method, *arguments.args, **arguments.kwargs)``."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> ArgumentKind:
        """``"none"``, ``"positional"``, ``"keyword"`` or ``"mixed"``."""
        if self.args and self.kwargs:
            return "mixed"
        if self.args:
            return "positional"
        return "keyword" if self.kwargs else "none"


def arguments(
    values: st.SearchStrategy[Any] | None = None,
    *,
    kinds: Sequence[ArgumentKind] = ("none", "positional", "keyword", "mixed"),
    max_args: int = 4,
) -> st.SearchStrategy[Arguments]:
    """Call arguments of the given shapes; values from ``values`` (default :func:`json_values`)."""
    if not kinds:
        raise ValueError("kinds must name at least one of none, positional, keyword, mixed")
    items = json_values() if values is None else values
    positional = st.lists(items, min_size=1, max_size=max_args).map(tuple)
    keyword = st.dictionaries(keyword_names(), items, min_size=1, max_size=max_args)
    shapes: dict[ArgumentKind, st.SearchStrategy[Arguments]] = {
        "none": st.just(Arguments(())),
        "positional": positional.map(Arguments),
        "keyword": keyword.map(lambda kwargs: Arguments((), kwargs)),
        "mixed": st.builds(Arguments, positional, keyword),
    }
    return st.one_of([shapes[kind] for kind in kinds])


def method_names() -> st.SearchStrategy[str]:
    """Method names: non-empty strings, dotted names and unicode included."""
    dotted = st.lists(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True), min_size=1, max_size=3)
    return st.one_of(dotted.map(".".join), json_strings(min_size=1, max_size=20))


def request_ids(*, allow_null: bool = False) -> st.SearchStrategy[Any]:
    """Request ids: strings, integers of any size (``0`` included) and finite floats."""
    ids: list[st.SearchStrategy[Any]] = [json_strings(max_size=20), big_integers(60), round_trip_floats(), st.just(0)]
    if allow_null:
        ids.append(st.none())
    return st.one_of(ids)


def params(values: st.SearchStrategy[Any] | None = None) -> st.SearchStrategy[Any]:
    """A request's ``params``: absent (None), an array or an object."""
    items = json_values(max_leaves=10) if values is None else values
    return st.one_of(
        st.none(), st.lists(items, max_size=4), st.dictionaries(json_strings(max_size=8), items, max_size=4)
    )


def _message(with_id: bool) -> st.SearchStrategy[dict[str, Any]]:
    required: dict[str, st.SearchStrategy[Any]] = {"jsonrpc": st.just("2.0"), "method": method_names()}
    if with_id:
        required["id"] = request_ids()
    return st.fixed_dictionaries(required, optional={"params": params().filter(lambda p: p is not None)})


def requests() -> st.SearchStrategy[dict[str, Any]]:
    """Valid JSON-RPC 2.0 request objects (as JSON values), with an id."""
    return _message(with_id=True)


def notifications() -> st.SearchStrategy[dict[str, Any]]:
    """Valid JSON-RPC 2.0 notification objects (no id)."""
    return _message(with_id=False)


def batches(max_size: int = 8) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Non-empty batches (JSON arrays) of requests and notifications."""
    return st.lists(st.one_of(requests(), notifications()), min_size=1, max_size=max_size)


_NOT_A_STRING = st.one_of(st.none(), st.booleans(), big_integers(30), round_trip_floats(), st.just([]), st.just({}))


@st.composite
def invalid_requests(draw: st.DrawFn) -> Any:
    """JSON values that are not valid requests: a conforming server answers each with -32600.

    The answer echoes the value's ``id`` when it is a valid id, else ``null``. A
    non-empty array is a batch, so arrays here are only ever empty.
    """
    kind = draw(st.sampled_from(["scalar", "empty batch", "jsonrpc", "method", "params", "id"]))
    if kind == "scalar":
        return draw(json_scalars())
    if kind == "empty batch":
        return []
    value: dict[str, Any] = draw(requests())
    if kind == "jsonrpc":
        wrong = draw(st.one_of(_NOT_A_STRING, json_strings(max_size=5).filter(lambda s: s != "2.0")))
        if draw(st.booleans()):
            value["jsonrpc"] = wrong
        else:
            del value["jsonrpc"]
    elif kind == "method":
        if draw(st.booleans()):
            value["method"] = draw(_NOT_A_STRING)
        else:
            del value["method"]
    elif kind == "params":
        value["params"] = draw(st.one_of(st.booleans(), big_integers(30), round_trip_floats(), json_strings()))
    else:
        value["id"] = draw(st.one_of(st.booleans(), st.lists(json_scalars(), max_size=2), st.just({})))
    return value


_MALFORMED: Final = (
    b"tru",
    b"nul",
    b"NaN",
    b"-Infinity",
    b"1e400",
    b"-",
    b"01",
    b"{]",
    b"[}",
    b"[1,]",
    b'{"a":1,}',
    b"[1 2]",
    b"{'a': 1}",
    b'{"a" 1}',
    b'"\xff"',
    b'{"s":"\xed\xa0\x80"}',
    b'"unterminated',
    b'{"s": "unterminated',
    b'"bad escape \\x"',
    b"[" + b"9" * 5000 + b"]",
)


@st.composite
def malformed_lines(draw: st.DrawFn) -> bytes:
    """One newline-terminated line that is definitely not JSON: it earns exactly one -32700.

    Truncated literals, NaN/Infinity, overflowing and over-long numbers, mismatched
    brackets, trailing commas, invalid UTF-8, unterminated strings; optionally
    prefixed by whitespace.
    """
    line = draw(st.sampled_from(_MALFORMED))
    pad = draw(st.sampled_from([b"", b" ", b"\t", b"\r"]))
    return pad + line + b"\n"


_AWKWARD: Final = re.compile(rb"(?<=\\)|(?<=\r)(?=\n)|(?<=\r\n\r\n)|[\x80-\xbf]")


def _awkward_cuts(data: bytes) -> list[int]:
    """Cut points inside a UTF-8 sequence, after a backslash, inside a CRLF, after a header."""
    return [m.start() for m in _AWKWARD.finditer(data, 1) if m.start() < len(data)]


@st.composite
def chunkings(draw: st.DrawFn, data: bytes, max_chunks: int = 64) -> list[bytes]:
    """``data`` split into 1..``max_chunks`` non-empty pieces that join back to it.

    Cut points favour awkward places: inside a multi-byte UTF-8 character, right
    after a backslash, between ``\\r`` and ``\\n``. Sometimes every byte is its own chunk.
    """
    if len(data) <= 1:
        return [data] if data else []
    if len(data) <= 4096 and draw(st.integers(min_value=0, max_value=9)) == 0:
        return [data[i : i + 1] for i in range(len(data))]
    cuts: set[int] = draw(st.sets(st.integers(min_value=1, max_value=len(data) - 1), max_size=max_chunks - 1))
    awkward = _awkward_cuts(data)
    if awkward:
        cuts |= draw(st.sets(st.sampled_from(awkward), max_size=max(0, max_chunks - 1 - len(cuts))))
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def _chunking_faults() -> st.SearchStrategy[DirectionFaults]:
    return st.builds(
        DirectionFaults,
        max_chunk=st.one_of(st.none(), st.integers(min_value=1, max_value=8), st.integers(min_value=9, max_value=4096)),
        awkward_splits=st.booleans(),
    )


_BYTES = st.integers(min_value=0, max_value=4096)


def _breaking_faults() -> st.SearchStrategy[DirectionFaults]:
    return st.builds(
        DirectionFaults,
        max_chunk=st.one_of(st.none(), st.integers(min_value=1, max_value=64)),
        awkward_splits=st.booleans(),
        disconnect_in_frame=st.one_of(st.none(), st.integers(min_value=1, max_value=4)),
        half_close_after=st.one_of(st.none(), _BYTES),
        reset_after=st.one_of(st.none(), _BYTES),
        stall_after=st.one_of(st.none(), _BYTES),
    )


def fault_plans(*, breaking: bool = True, seeds: st.SearchStrategy[int] | None = None) -> st.SearchStrategy[FaultPlan]:
    """Seeded :class:`~jsonrpc_mini.testing.FaultPlan` objects, different per direction.

    With ``breaking=False`` the plans only re-chunk the byte streams (1-byte pieces,
    cuts inside UTF-8 sequences and escapes): a correct client and server give the
    same results through them as without them. With ``breaking=True`` (the default)
    they may also close, reset, half-close or stall the link after some bytes or in
    the middle of a frame: every call must then return the right value or raise
    ``ConnectionLost``/``RPCTimeout`` (stalls need a client timeout). No plan here
    adds latency, so examples stay fast.
    """
    seed = st.integers(min_value=0, max_value=2**32 - 1) if seeds is None else seeds
    directions = _breaking_faults() if breaking else _chunking_faults()
    link_wide: dict[str, st.SearchStrategy[Any]] = {}
    if breaking:
        link_wide["disconnect_after"] = st.one_of(st.none(), _BYTES)
    return st.builds(FaultPlan, seed=seed, client_to_server=directions, server_to_client=directions, **link_wide)


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
