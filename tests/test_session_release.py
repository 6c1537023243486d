"""The sync server lets go of a request once its reply is sent.

A connection's thread used to hold its last request (a batch's 1,000 members, or
a message up to ``max_message_size``) and its reply bytes until the next request
arrived: memory kept for as long as the connection idled, and for a batch, work
(freeing it) done on the next request's time. Each kind of request is checked:
what its handler received is referred to by nothing of the server's once the
reply is in.
"""

from __future__ import annotations

import json
import socket
import sys
from typing import Any

import pytest
from _driver_helpers import WAIT, LeakCheck, raw_connect, request, serving, wait_for

from jsonrpc_mini import RPCClient, RPCServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


def keeping_server() -> tuple[RPCServer, list[Any]]:
    kept: list[Any] = []

    def keep(x: Any) -> int:
        kept.append(x)
        return len(kept)

    s = RPCServer()
    s.register_function(keep)
    return s, kept


def released(kept: list[Any]) -> bool:
    """True when every kept argument is referred to only by ``kept`` (as a fresh list is by its holder)."""
    control = [[0] for _ in kept]
    return all(sys.getrefcount(kept[i]) == sys.getrefcount(control[i]) for i in range(len(kept)))


@pytest.mark.parametrize("kind", ["plain call", "framer call", "batch", "pipelined"])
def test_the_request_is_released_once_its_reply_is_sent(kind: str) -> None:
    s, kept = keeping_server()
    with serving(s) as address:
        if kind == "plain call":  # one compact line: the one-step path
            with RPCClient(*address, timeout=WAIT) as c:
                assert c.keep([1, 2]) == 1
                wait_for(lambda: released(kept), "the server to let go of the request")
        elif kind == "batch":
            with RPCClient(*address, timeout=WAIT) as c:
                with c.batch() as b:
                    results = [b.keep([i]) for i in range(50)]
                assert [r.result() for r in results] == list(range(1, 51))
                wait_for(lambda: released(kept), "the server to let go of the batch")
        else:
            with raw_connect(address) as peer:
                if kind == "framer call":  # a leading space: the framer's path
                    peer.sendall(b" " + request("keep", [[1, 2]], 1))
                    assert peer.json_line()["result"] == 1
                else:  # two lines in one read: the core takes them together
                    peer.sendall(request("keep", [[1]], 1) + request("keep", [[2]], 2))
                    assert [peer.json_line()["result"] for _ in range(2)] == [1, 2]
                wait_for(lambda: released(kept), "the server to let go of the request")
    assert kept


@pytest.mark.parametrize("kind", ["plain call", "batch"])
def test_the_request_is_let_go_of_while_a_reply_nobody_reads_is_sent(kind: str) -> None:
    # A reply the client does not read blocks its send (up to read_timeout without
    # progress; for ever for a peer that takes a byte now and then): the request,
    # up to max_message_size decoded, must not be held meanwhile, only the reply's
    # bytes (review F6 of 554f2a0: 4 stalled clients with 12 MB batches, server RSS
    # +122 MiB -> +362 MiB when it was held until the send ended).
    kept: list[Any] = []
    size = 12 << 20  # far more than the socket buffers hold with the peer's 4 KiB

    def keep(x: Any, last: bool) -> str:
        kept.append(x)
        return "r" * size if last else ""

    s = RPCServer()
    s.register_function(keep)
    with serving(s) as address:
        peer = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            peer.settimeout(WAIT)
            peer.connect(address)
            if kind == "plain call":
                peer.sendall(request("keep", [[1], True], 1))
            else:
                calls = [{"jsonrpc": "2.0", "method": "keep", "params": [[i], i == 2], "id": i} for i in range(3)]
                peer.sendall(json.dumps(calls).encode() + b"\n")
            wait_for(lambda: len(kept) == (1 if kind == "plain call" else 3), "the calls")
            wait_for(lambda: released(kept), "the server to let go of the request while its reply waits")
            assert s.connection_count == 1  # the send still waits for the peer: nothing read yet
        finally:
            peer.close()
