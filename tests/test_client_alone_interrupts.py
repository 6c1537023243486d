"""Ctrl-C in the lone call's read (``_Link._alone``): the connection is closed exactly when bytes were lost.

A reader interrupted while it holds bytes taken off the connection and not yet
handed out closes the connection (``ReadingTurn._interrupted``); one interrupted
before it took any leaves the connection as it was. ``_alone`` keeps that flag in
a local until it calls ``_read_replies``, and in the list ``_read_replies`` sets
from then on: each case here is read from the right one.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from jsonrpc_mini import ConnectionLost, RPCClient

pytestmark = pytest.mark.timeout(60)

NOT_YOURS = {"jsonrpc": "2.0", "id": 9999, "result": "not yours"}  # (no call has that id: dropped)


class _Script:
    """A transport whose reads give ``reads`` in turn (each a function of the last request's id)."""

    def __init__(self, *reads: Any) -> None:
        self.reads = list(reads)
        self.sent: list[bytes] = []
        self.closed = False

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        read = self.reads.pop(0)
        if isinstance(read, BaseException):
            raise read
        return json.dumps(read(json.loads(self.sent[-1])["id"])).encode() + b"\n"

    def close(self) -> None:
        self.closed = True


def _yours(id_: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "result": "yours"}


def _cut_decode(c: RPCClient, monkeypatch: pytest.MonkeyPatch, at: int) -> None:
    """The link's ``decode_line`` raises KeyboardInterrupt at its ``at``-th call (as a signal landing there)."""
    link = c._link
    assert link is not None
    decode = link.proto.decode_line
    calls = [0]

    def cut(data: bytes) -> Any:
        calls[0] += 1
        if calls[0] == at:
            raise KeyboardInterrupt
        return decode(data)

    monkeypatch.setattr(link.proto, "decode_line", cut)


@pytest.mark.parametrize(
    "replies",
    [
        # _alone's own read, interrupted before it took a byte.
        [KeyboardInterrupt(), _yours],
        # The first read's line was handed out (a reply no call takes): nothing is held
        # when the next read, made by _read_replies, is interrupted before taking a byte.
        [lambda id_: NOT_YOURS, KeyboardInterrupt(), _yours],
    ],
    ids=["first-read", "later-read"],
)
def test_an_interrupt_before_a_read_took_bytes_leaves_the_connection_open(replies: list[Any]) -> None:
    transport = _Script(*replies)
    c = RPCClient(transport=transport)
    with pytest.raises(KeyboardInterrupt):
        c.echo(1)
    assert c._link is not None and c._link.lost is None
    assert not transport.closed
    assert c.echo(2) == "yours"


@pytest.mark.parametrize(
    ("replies", "cut_at"),
    [
        # Taken by _alone's own read, not yet handed out (the local flag).
        ([_yours], 1),
        # The first read's line was handed out (a reply no call takes); the next,
        # made by _read_replies, is interrupted holding its bytes (the list's flag).
        ([lambda id_: NOT_YOURS, _yours], 2),
    ],
    ids=["first-read", "later-read"],
)
def test_an_interrupt_holding_a_reads_bytes_closes_the_connection(
    monkeypatch: pytest.MonkeyPatch, replies: list[Any], cut_at: int
) -> None:
    transport = _Script(*replies)
    c = RPCClient(transport=transport)
    _cut_decode(c, monkeypatch, cut_at)
    with pytest.raises(KeyboardInterrupt):
        c.echo(1)
    assert transport.closed
    with pytest.raises(ConnectionLost, match="a read was interrupted after taking bytes"):
        c.echo(2)
