"""The reader alone: JsonStreamFramer fed a 1 MiB frame in chunks vs in one buffer.

In-process (no sockets): the cost measured is the framer's own, per byte received.
"""

from __future__ import annotations

import json
import time

from benchmarks import _codecs
from benchmarks._scenarios import MIB_STRING, SMALL_DICTS
from jsonrpc_mini._framing import JsonStreamFramer, Message
from jsonrpc_mini._json import JsonCodec

CHUNKS = [0, 65536, 1024, 1]  # 0 = the whole frame in one buffer


def frames() -> dict[str, bytes]:
    """Two 1 MiB requests: one long string, and many small objects (the scanner's worst case)."""
    dicts: list[object] = []
    body = {"jsonrpc": "2.0", "method": "echo", "params": [dicts], "id": 1}
    item = 0
    while len(json.dumps(body, separators=(",", ":"))) < 2**20:
        dicts.extend(SMALL_DICTS[item % len(SMALL_DICTS)] for item in range(item, item + 500))
        item += 500
    string = {"jsonrpc": "2.0", "method": "echo", "params": [MIB_STRING], "id": 1}
    return {
        "string": json.dumps(string, separators=(",", ":")).encode() + b"\n",
        "dicts": json.dumps(body, separators=(",", ":")).encode() + b"\n",
    }


def feed_once(frame: bytes, chunk: int, codec: str) -> float:
    """Seconds per byte to read ``frame`` fed in ``chunk``-byte pieces (0: one buffer)."""
    with _codecs.pinned(codec):
        framer = JsonStreamFramer(JsonCodec().loads, max_message_size=16 * 2**20, max_depth=128)
    size = len(frame)
    step = chunk or size
    # The pieces are cut before timing: a socket hands the reader bytes objects it
    # made, so cutting them is not the framer's cost (at 1 KiB it was ~0.2 us a piece).
    pieces = [frame[offset : offset + step] for offset in range(0, size, step)]
    start = time.perf_counter()
    for piece in pieces:
        framer.feed(piece)
        event = framer.next_event()
        if event is not None:
            break
    elapsed = time.perf_counter() - start
    assert isinstance(event, Message), event
    return elapsed / size
