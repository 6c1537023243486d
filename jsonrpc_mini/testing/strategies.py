"""Hypothesis strategies for JSON-RPC: JSON values, argument shapes, requests, chunkings.

Use them to property-test your own handlers, clients and servers::

    from hypothesis import given
    from jsonrpc_mini import RPCServer
    from jsonrpc_mini.testing import loopback, strategies as rst

    server = RPCServer()
    server.register_function(lambda *args, **kwargs: [list(args), kwargs], name="echo")

    @given(rst.arguments())
    def test_echo(arguments):
        with loopback(server) as client:
            reply = client.call("echo", *arguments.args, **arguments.kwargs)
        assert reply == [list(arguments.args), arguments.kwargs]

Every value drawn from :func:`json_values` survives ``json.dumps``/``json.loads``
unchanged (no NaN, no infinities, no lone surrogates, string keys only), so a round
trip may be checked with ``==`` (or, stricter, with :func:`same_json`). Needs
``hypothesis`` (the ``test`` extra); nothing else in ``jsonrpc_mini.testing`` does.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from hypothesis import strategies as st

from ._json_strategies import (
    EDGE_CHARACTERS,
    big_integers,
    characters,
    deeply_nested,
    json_scalars,
    json_strings,
    json_values,
    large_values,
    round_trip_floats,
    same_json,
)
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
    ``ConnectionLost``/``RPCTimeout`` (stalls need a client timeout), or ``ParseError``
    when a half-close of the client's direction cut its request short (the server
    answers the partial value with -32700, id null). No plan here adds latency, so
    examples stay fast.
    """
    seed = st.integers(min_value=0, max_value=2**32 - 1) if seeds is None else seeds
    directions = _breaking_faults() if breaking else _chunking_faults()
    link_wide: dict[str, st.SearchStrategy[Any]] = {}
    if breaking:
        link_wide["disconnect_after"] = st.one_of(st.none(), _BYTES)
    return st.builds(FaultPlan, seed=seed, client_to_server=directions, server_to_client=directions, **link_wide)
