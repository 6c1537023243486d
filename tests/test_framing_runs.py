"""The scanner's run-skipping patterns change speed only: events equal a token-by-token walk."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from jsonrpc_mini import _json_scan
from jsonrpc_mini._json import JsonCodec
from jsonrpc_mini._json_stream import JsonStreamFramer

CODEC = JsonCodec(use_orjson=False)


def events(data: bytes, chunk: int, *, runs: bool, max_depth: int = 8) -> list[Any]:
    saved = _json_scan.RUN_DEPTH
    if not runs:
        _json_scan.RUN_DEPTH = 10**9  # never skip: every token goes through the loop
    try:
        framer = JsonStreamFramer(CODEC.loads, max_message_size=1 << 20, max_depth=max_depth)
        out: list[Any] = []
        step = chunk or len(data)
        for i in range(0, len(data), step):
            framer.feed(data[i : i + step])
            while (event := framer.next_event()) is not None:
                out.append(event)
        framer.feed(b"")
        while (event := framer.next_event()) is not None:
            out.append(event)
        return out
    finally:
        _json_scan.RUN_DEPTH = saved


def sample(rng: random.Random) -> bytes:
    value: Any = [
        {"id": i, "name": f"n{i}", "tags": ["a", "b\\n", {"x": [1, 2]}], "ok": True} for i in range(rng.randint(1, 6))
    ]
    text = json.dumps({"jsonrpc": "2.0", "method": "m", "params": [value], "id": 1}, indent=rng.choice([None, 1]))
    chars = list(text)
    for _ in range(rng.randint(0, 3)):  # damage: drop, duplicate or insert a structural byte
        at = rng.randrange(len(chars))
        action = rng.choice(["drop", "dup", "insert"])
        if action == "drop":
            del chars[at]
        elif action == "dup":
            chars.insert(at, chars[at])
        else:
            chars.insert(at, rng.choice(['"', ",", ":", "[", "]", "{", "}", "\n", "\\", " ", "7"]))
    tail = rng.choice(["\n", "", '{"jsonrpc":"2.0","method":"n"}\n'])
    return ("".join(chars) + tail).encode()


@pytest.mark.parametrize("seed", range(60))
def test_runs_give_the_same_events_as_the_token_walk(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(5):
        data = sample(rng)
        for chunk in (0, 1, 7, 64):
            for depth in (3, 8):
                assert events(data, chunk, runs=True, max_depth=depth) == events(
                    data, chunk, runs=False, max_depth=depth
                ), f"seed {seed}, chunk {chunk}, depth {depth}: {data!r}"
