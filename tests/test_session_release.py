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
import sys
import threading
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


@pytest.mark.parametrize("kind", ["plain call", "small batch", "large batch"])
def test_the_request_is_let_go_of_only_after_its_reply_is_sent(kind: str) -> None:
    # Freeing a request is work on the reply's way if done before it is sent (a
    # batch of 1,000 calls: ~0.7M instructions of ~10M); after it, the client reads
    # the reply meanwhile. A witness put into the request's params is freed with the
    # request: it waits (bounded) for the test to have read the reply.
    reply_read = threading.Event()
    waited: list[bool] = []

    class Witness:
        def __del__(self) -> None:
            waited.append(reply_read.wait(2.0))

    def mark(x: list[Any]) -> int:
        if not x:
            x.append(Witness())
        return len(x)

    s = RPCServer()
    s.register_function(mark)
    # A large batch's reply is over the session's _SMALL_REPLY (16 KiB): sent the other way.
    count = {"plain call": 0, "small batch": 3, "large batch": 600}[kind]
    with serving(s) as address, raw_connect(address) as peer:
        if kind == "plain call":
            peer.sendall(request("mark", [[]], 1))
            assert peer.json_line()["result"] == 1
        else:
            calls = [
                {"jsonrpc": "2.0", "method": "mark", "params": [[] if i == 0 else [0]], "id": i} for i in range(count)
            ]
            peer.sendall(json.dumps(calls).encode() + b"\n")
            assert [r["result"] for r in peer.json_line()] == [1] * count
        reply_read.set()
        wait_for(lambda: waited, "the server to let go of the request")
    assert waited == [True]
