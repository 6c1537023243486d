"""The public strategies keep their promises (jsonrpc_mini.testing.strategies is product code)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jsonrpc_mini._codec import ErrorResponse, Notification, Request, parse_request
from jsonrpc_mini._protocol import Reply, ServerConnection
from jsonrpc_mini.testing import Resources
from jsonrpc_mini.testing import strategies as rst

README = Path(__file__).resolve().parents[1] / "README.md"


def utf8_ok(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# Invariant: every drawn JSON value survives stdlib JSON text unchanged, exactly (types,
# float bits), and holds no lone surrogate (it is valid UTF-8 text).
@given(st.one_of(rst.json_values(), rst.deeply_nested(max_depth=30), rst.large_values(max_bytes=5000)))
def test_json_values_survive_json_text_exactly(value):
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    assert utf8_ok(text)
    assert rst.same_json(json.loads(text), value)


# Invariant: deeply_nested stays within the requested depth; large_values within sizes.
@given(st.integers(1, 40), st.data())
def test_depth_and_size_bounds(max_depth, data):
    value = data.draw(rst.deeply_nested(min_depth=1, max_depth=max_depth))
    depth = 0
    while isinstance(value, (list, dict)):
        value = value[0] if isinstance(value, list) else next(iter(value.values()))
        depth += 1
    assert 1 <= depth <= max_depth
    big = data.draw(rst.large_values(min_bytes=1000, max_bytes=20_000))
    size = len(json.dumps(big, ensure_ascii=False).encode())
    assert 900 <= size <= 40_000, size


# Invariant: chunkings are non-empty pieces that join back to the data.
@given(st.binary(max_size=3000), st.data())
def test_chunkings_join_back(data_bytes, data):
    chunks = data.draw(rst.chunkings(data_bytes, max_chunks=16))
    assert b"".join(chunks) == data_bytes
    assert all(chunks)
    assert len(chunks) <= max(16, len(data_bytes))


# Invariant: chunkings reach the awkward cut points (inside UTF-8, escapes, CRLF).
def test_chunkings_can_cut_inside_utf8_escapes_and_crlf():
    wire = "é\\n\r\n".encode()
    seen: set[int] = set()

    @given(rst.chunkings(wire))
    def collect(chunks):
        seen.update(len(b"".join(chunks[:i])) for i in range(1, len(chunks)))

    collect()
    assert {1, 3, 5} <= seen  # inside 'é', after the backslash, between CR and LF


# Invariant: arguments have the requested shapes, and keyword names never look positional.
@given(st.sampled_from(["none", "positional", "keyword", "mixed"]), st.data())
def test_arguments_have_the_requested_kind(kind, data):
    arguments = data.draw(rst.arguments(rst.json_scalars(), kinds=[kind]))
    assert arguments.kind == kind
    assert not any(name.isascii() and name.isdigit() for name in arguments.kwargs)


# Invariant: requests, notifications and batches are valid; invalid_requests never are.
@given(rst.requests(), rst.notifications(), rst.batches(), rst.invalid_requests())
def test_messages_are_valid_or_invalid_as_promised(request, note, batch, invalid):
    assert isinstance(parse_request(request), Request)
    assert isinstance(parse_request(note), Notification)
    assert all(not isinstance(parse_request(item), ErrorResponse) for item in batch)
    if invalid != []:
        assert isinstance(parse_request(invalid), ErrorResponse)


# Invariant: each malformed line is one line that earns exactly one -32700.
@given(rst.malformed_lines())
def test_malformed_lines_earn_one_parse_error(line):
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    conn = ServerConnection(framing="newline")
    conn.receive_data(line)
    replies = []
    while (event := conn.next_event()) is not None:
        assert isinstance(event, Reply)
        replies.append(json.loads(event.data)["error"]["code"])
    assert replies == [-32700]


# Invariant: re-chunking plans never break the link; breaking plans are reproducible.
@given(rst.fault_plans(breaking=False), rst.fault_plans())
def test_fault_plans(chunking, breaking):
    for name in ("client_to_server", "server_to_client"):
        faults = chunking.direction(name)
        assert (faults.half_close_after, faults.reset_after, faults.stall_after, faults.disconnect_in_frame) == (
            None,
        ) * 4
        assert faults.latency == 0 and faults.jitter == 0
    assert chunking.disconnect_after is None and not chunking.refuse_connect
    assert (
        eval(
            repr(breaking),
            {"FaultPlan": type(breaking), "DirectionFaults": type(breaking.direction("client_to_server"))},
        )
        == breaking
    )


# Invariant: same_json tells apart exactly what JSON tells apart (and 1 from 1.0 and True).
@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (1, 1, True),
        (1, 1.0, False),
        (1, True, False),
        (0.0, -0.0, False),
        (float("nan"), float("nan"), True),
        ([1, {"a": (2,)}], [1, {"a": [2]}], True),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}, True),
        ({"a": 1}, {"a": 1, "b": 2}, False),
        ([1, 2], [1], False),
        ("x", "x ", False),
    ],
)
def test_same_json(a, b, same):
    assert rst.same_json(a, b) is same


# Invariant: the README's strategies example runs as written and leaves nothing behind.
def test_readme_fuzzing_example_runs():
    text = README.read_text(encoding="utf-8")
    section = text.split("## Property tests and fuzzing", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.S)
    before = Resources()
    namespace: dict[str, object] = {}
    # Compile at the block's own line numbers: Hypothesis reads the test's source back
    # (inspect.getsource) from README.md, and must land on the block, not on prose.
    offset = text[: text.index(block)].count("\n")
    exec(compile("\n" * offset + block, str(README), "exec"), namespace)
    namespace["test_echo_any_arguments"]()  # type: ignore[operator]
    before.assert_no_leaks()


# Invariant: impossible requests to the strategies fail loudly, not with empty draws.
def test_strategies_refuse_impossible_requests():
    with pytest.raises(ValueError, match="max_digits"):
        rst.big_integers(max_digits=0)
    with pytest.raises(ValueError, match="kinds"):
        rst.arguments(kinds=[])
