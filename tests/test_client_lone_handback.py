"""A lone call that takes its own reply in one read gives the reading turn back without a lock round.

``_Link._alone`` then returns the result straight from the reply, keeps its waiter
for the next lone call (``_Link.spare``, never filled in) and, if other calls came
meanwhile, wakes one that waits for the turn (``_Link._wake_follower``). These
tests check the three: the waiter is used again, one that ended otherwise (timed
out) is not, and a caller that became a follower during the lone call is woken.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from _driver_helpers import WAIT, FakeServer, Peer, serving, start_thread, wait_for

import jsonrpc_mini._client_reader as reader_module
from jsonrpc_mini import ConnectionLost, RPCClient, RPCServer, RPCTimeout

pytestmark = pytest.mark.timeout(60)


def _reply(id_: Any, result: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": id_, "result": result}).encode() + b"\n"


def _request_id(peer: Peer) -> Any:
    return json.loads(peer.until())["id"]


@pytest.mark.parametrize("timeout", [None, WAIT], ids=["no-timeout", "timeout"])
def test_a_lone_call_uses_the_waiter_of_the_last_one(timeout: float | None) -> None:
    server = RPCServer()
    server.register_function(lambda x: x, name="echo")
    with serving(server) as address, RPCClient(*address, timeout=timeout) as client:
        assert client.echo(1) == 1
        link = client._link
        assert link is not None and len(link.spare) == 1
        kept = link.spare[0]
        first_id = kept.id
        assert client.echo([2]) == [2]
        assert len(link.spare) == 1 and link.spare[0] is kept
        assert kept.id != first_id  # it carried the second call
        # Never filled in: it holds no result and is as a new one.
        assert (kept.done, kept.value, kept.error, kept.signal, kept.waiting) == (False, None, None, None, False)
        assert not link.pending and not link.reading


def test_a_waiter_whose_call_timed_out_is_not_used_again() -> None:
    # The timed-out call's waiter is marked done with its RPCTimeout. Used again, the
    # next call would end with that error as soon as its first read is not its own
    # reply (here the late reply comes first in the same read).
    timed_out = threading.Event()

    def script(peer: Peer) -> None:
        peer.sendall(_reply(_request_id(peer), "a"))
        late = _request_id(peer)  # not answered in time
        timed_out.wait(WAIT)
        peer.sendall(_reply(late, "late") + _reply(_request_id(peer), "c"))
        peer.until()  # the client's closing notification

    with FakeServer(script) as fake, RPCClient(*fake.address, timeout=WAIT) as client:
        assert client.call("a") == "a"
        link = client._link
        assert link is not None
        with pytest.raises(RPCTimeout):
            client.with_timeout(0.2).call("slow")
        assert link.spare == []
        timed_out.set()
        assert client.call("c") == "c"
        assert not link.pending and not link.reading
        client.notify("bye")
    assert not fake.errors


def test_a_caller_that_waits_for_the_turn_is_woken_when_the_lone_caller_takes_its_reply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # B calls while A (alone until then) reads, and waits for the reading turn. A's
    # read is exactly its own reply: it gives the turn back without a lock round and
    # must wake B, whose reply comes only after A has returned. Followers re-check
    # every _POLL seconds in case a wake-up is lost: made longer than the test may
    # take, and B has no timeout, so only the wake-up can let B read its reply.
    monkeypatch.setattr(reader_module, "_POLL", 60.0)
    waiting, a_done = threading.Event(), threading.Event()

    def script(peer: Peer) -> None:
        a = _request_id(peer)
        b = _request_id(peer)
        waiting.wait(WAIT)
        peer.sendall(_reply(a, "a"))
        a_done.wait(WAIT)
        peer.sendall(_reply(b, "b"))
        peer.until()  # the client's closing notification

    results: dict[str, Any] = {}

    def run(name: str) -> None:
        try:
            results[name] = client.call(name)
        except ConnectionLost as exc:  # (only if B is never woken: the client is closed below)
            results[name] = exc

    with FakeServer(script) as fake:
        client = RPCClient(*fake.address)
        try:
            link = client._link
            assert link is not None
            first = start_thread(run, "a")
            wait_for(lambda: link.reading, "A to read")
            second = start_thread(run, "b")
            wait_for(lambda: any(w.waiting for w in list(link.pending.values())), "B to wait for the turn")
            waiting.set()
            first.join(WAIT)
            assert results.get("a") == "a"
            a_done.set()
            second.join(WAIT)
            assert results.get("b") == "b", "B was not woken to read its reply"
            assert not link.pending and not link.reading
            client.notify("bye")
        finally:
            client.close()
            first.join(WAIT)
            second.join(WAIT)
    assert not fake.errors
