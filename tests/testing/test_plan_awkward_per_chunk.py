"""awkward_splits with max_chunk: one awkward cut per chunk, not one per character.

It cut at every awkward place (inside each UTF-8 sequence, after each backslash),
so a payload of accented or CJK text moved 1-2 bytes at a time whatever max_chunk
said: a 600 KB string of "é" took 15 s to echo over loopback() with
FaultPlan(max_chunk=4096, awkward_splits=True), past the kit's 10 s timeout (0.03 s
without awkward_splits). Now each chunk drawn from max_chunk is cut at its first
awkward place, if it has one, and goes on to its drawn end; without max_chunk every
awkward place is still a cut (tests/testing/test_plan.py).
"""

from __future__ import annotations

import json

from jsonrpc_mini.testing import FaultPlan, LinkState

TEXT = json.dumps({"jsonrpc": "2.0", "method": "echo", "params": ["é" * 30_000], "id": 1}, ensure_ascii=False).encode()


def _sizes(plan: FaultPlan, data: bytes, piece: int | None = None) -> list[int]:
    state = LinkState(plan).client_to_server
    sizes: list[int] = []
    pos = 0
    while pos < len(data):
        offered = data[pos : pos + (piece or len(data))]
        step = state.next_step(offered)
        state.commit(offered[: step.size], step)
        assert step.size > 0
        sizes.append(step.size)
        pos += step.size
    return sizes


def _ends(sizes: list[int]) -> list[int]:
    return [sum(sizes[: i + 1]) for i in range(len(sizes))]


def test_a_chunk_is_cut_once_at_its_first_awkward_place() -> None:
    plain = _ends(_sizes(FaultPlan(seed=3, max_chunk=4096), TEXT))
    awkward = _ends(_sizes(FaultPlan(seed=3, max_chunk=4096, awkward_splits=True), TEXT))
    assert len(awkward) <= 2 * len(plain) + 2  # it was one cut per character: ~30,000
    assert set(plain) <= set(awkward)  # the drawn chunk ends are kept
    inside = [end for end in awkward if end not in plain]
    assert inside  # and each chunk gets an awkward cut
    for end in inside:
        assert (TEXT[end] & 0xC0) == 0x80 or TEXT[end - 1] == 0x5C  # inside a UTF-8 sequence (or an escape)


def test_small_chunks_still_cut_inside_characters() -> None:
    data = "é€".encode() * 50
    ends = _ends(_sizes(FaultPlan(seed=1, max_chunk=7, awkward_splits=True), data))
    assert any((data[end] & 0xC0) == 0x80 for end in ends[:-1])


def test_the_cuts_do_not_depend_on_how_bytes_arrive() -> None:
    plan = FaultPlan(seed=8, max_chunk=64, awkward_splits=True)
    whole = set(_ends(_sizes(plan, TEXT[:5000])))
    for piece in (3, 50, 700):
        assert whole <= set(_ends(_sizes(plan, TEXT[:5000], piece=piece)))
