"""What the framer hand-over tests share: a loads that records its inputs, and a bounded event drain."""

from __future__ import annotations

from typing import Any

from jsonrpc_mini._framing import ContentLengthFramer, JsonStreamFramer
from jsonrpc_mini._json import JsonCodec


class RecordingLoads:
    """The codec's loads, keeping what each call was given (its type and bytes)."""

    def __init__(self) -> None:
        self.codec = JsonCodec()
        self.seen: list[tuple[type, bytes]] = []

    def __call__(self, data: Any) -> Any:
        self.seen.append((type(data), bytes(data)))
        return self.codec.loads(data)


def events(framer: ContentLengthFramer | JsonStreamFramer) -> list[Any]:
    """Every event the framer has now (it must stop with None within 100)."""
    out = []
    for _ in range(100):  # bounded: a framer stops with None
        event = framer.next_event()
        if event is None:
            return out
        out.append(event)
    raise AssertionError("the framer never stopped")
