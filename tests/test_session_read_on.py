"""The sync server's read-on after a read ending inside a message stops at that message's line end.

A read that ends inside a message reads on, without waiting, what has arrived
already (``feed_ready``), so that a large message is decoded whole. It read on
until nothing more waited or ``max_message_size`` (16 MiB) was in: a client
flooding small notifications had megabytes buffered per connection (probe: 24-53 MiB
peak per flooding connection; the aio server ~1 MiB). It now stops after the read
that brings the line end: what is buffered is the message in part and one read.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
from _driver_helpers import WAIT, serving, wait_for

from jsonrpc_mini import RPCServer, SocketTransport

pytestmark = pytest.mark.timeout(60)


def _note(value: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "method": "note", "params": [value]}).encode() + b"\n"


def test_a_read_on_stops_after_the_read_bringing_the_line_end(monkeypatch: pytest.MonkeyPatch) -> None:
    # The first read ends inside note 1; what has "arrived" since is scripted as three
    # reads: the first ends note 1 (and begins note 2). The read-on took all three.
    first = _note(1)
    script = [first[20:] + _note(2)[:10], _note(2)[10:] + _note(3), _note(4)]
    served: list[bytes] = []
    real = SocketTransport.recv_ready

    def scripted(self: SocketTransport, max_bytes: int) -> bytes | None:
        if not script:
            return real(self, max_bytes)
        served.append(script.pop(0))
        return served[-1]

    monkeypatch.setattr(SocketTransport, "recv_ready", scripted)
    values: list[Any] = []
    server = RPCServer()
    server.register_function(values.append, name="note")
    with serving(server) as address, socket.create_connection(address, timeout=WAIT) as sock:
        sock.sendall(first[:20])
        # (the read-on ends before anything it read runs: its count is final by then)
        wait_for(lambda: bool(values), "note 1 to run")
        assert len(served) == 1, "the read-on went past the read that ended the message"
        assert values == [1]
