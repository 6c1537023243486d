"""The sync client's outbox: small requests made while another thread sends go out with its send.

A caller that claimed the outbox (it sends, or waits for the send lock with no
deadline, and holds no reading turn) writes the requests other callers left there
after its own, in one write; those callers send nothing and wait for their replies.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from _driver_helpers import WAIT, wait_for

import jsonrpc_mini._client_link as link_module
from jsonrpc_mini import ConnectionLost, RPCClient, RPCTimeout

pytestmark = pytest.mark.timeout(60)

BIG = link_module._EARLY_TURN + 1000  # too large to be left in the outbox or to take the turn early


class _Wire:
    """A transport that answers each request it is sent with the length of its first argument.

    A send for which ``gate(data)`` is true waits for ``go`` (then raises ``fail``
    if set); ``sends`` records every write. Calls of method ``hold`` get no reply.
    """

    def __init__(self, gate: Callable[[bytes], bool], fail: BaseException | None = None) -> None:
        self.gate = gate
        self.fail = fail
        self.go = threading.Event()
        self.gated = threading.Event()  # a gated send has started
        self.sends: list[bytes] = []
        self._replies: list[bytes] = []
        self._held: list[bytes] = []  # replies never sent
        self._ready = threading.Condition()
        self.closed = False
        self.interrupt_read = False  # the next read raises KeyboardInterrupt (as by Ctrl-C)
        self.read_gave_up = False  # a read without a timeout waited WAIT for nothing (a hang)

    def send(self, data: bytes) -> None:
        if self.gate(data) and not self.gated.is_set():
            self.gated.set()
            assert self.go.wait(WAIT)
            if self.fail is not None:
                raise self.fail
        with self._ready:
            self.sends.append(data)
            for line in data.splitlines():
                request = json.loads(line)
                if "id" in request:
                    reply = {"jsonrpc": "2.0", "id": request["id"], "result": len(request["params"][0])}
                    held = request["method"] == "hold"
                    (self._held if held else self._replies).append(json.dumps(reply).encode() + b"\n")
            self._ready.notify_all()

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        if self.interrupt_read:
            self.interrupt_read = False
            raise KeyboardInterrupt
        with self._ready:
            arrived = self._ready.wait_for(lambda: self._replies or self.closed, WAIT if timeout is None else timeout)
            if not arrived and timeout is not None:
                raise TimeoutError("read timed out")
            if not arrived:
                self.read_gave_up = True  # reads as end of stream
            data = b"".join(self._replies)
            self._replies.clear()
            return data

    def close(self) -> None:
        with self._ready:
            self.closed = True
            self._ready.notify_all()
        self.go.set()

    def sent_arguments(self) -> list[Any]:
        """The first argument of every request written, in order."""
        return [json.loads(line)["params"][0] for data in self.sends for line in data.splitlines()]


def _is_big(data: bytes) -> bool:
    return len(data) >= BIG


def _call(results: dict[str, Any], key: str, call: Callable[[], Any]) -> threading.Thread:
    """Run ``call`` in a daemon thread named ``key``; ``results[key]`` gets its result or exception."""

    def run() -> None:
        try:
            results[key] = call()
        except BaseException as exc:  # recorded for the test to check
            results[key] = exc

    thread = threading.Thread(target=run, name=key, daemon=True)
    thread.start()
    return thread


def _link(c: RPCClient) -> Any:
    link = c._link
    assert link is not None
    return link


def _big_send_gated() -> tuple[_Wire, RPCClient, Any, dict[str, Any], threading.Thread]:
    """A client (timeout WAIT) whose big call ("big", in its own thread) is being sent: its write waits for ``go``."""
    wire = _Wire(_is_big)
    c = RPCClient(transport=wire, timeout=WAIT)
    results: dict[str, Any] = {}
    big = _call(results, "big", lambda: c.echo("x" * BIG))
    assert wire.gated.wait(WAIT)
    return wire, c, _link(c), results, big


def test_small_requests_made_during_a_send_go_out_after_it_in_one_write() -> None:
    wire, c, link, results, big = _big_send_gated()
    threads = [big]
    assert link.sending and not link.reading  # the claimant holds the send lock, not the turn
    threads += [_call(results, f"small{i}", lambda i=i: c.echo("y" * i)) for i in (1, 2)]
    wait_for(lambda: len(link.outbox) == 2, "both small requests to be left in the outbox")
    assert wire.sends == []  # neither caller wrote anything
    wire.go.set()
    for thread in threads:
        thread.join(WAIT)
    assert results == {"big": BIG, "small1": 1, "small2": 2}
    assert len(wire.sends) == 2  # the big request, then both small ones in one write
    assert sorted(wire.sent_arguments()[1:]) == ["y", "yy"]
    assert not link.sending and not link.outbox and not link.pending and not link.reading
    c.close()


def test_a_request_still_in_the_outbox_at_its_timeout_is_never_sent() -> None:
    wire, c, link, results, big = _big_send_gated()
    with pytest.raises(RPCTimeout, match=r"^echo: could not send within 0\.3 s \(another send is stuck\)$"):
        c.with_timeout(0.3).echo("late")
    assert not link.outbox and len(link.pending) == 1  # only the big call
    wire.go.set()
    big.join(WAIT)
    assert results == {"big": BIG}
    assert wire.sent_arguments() == ["x" * BIG]  # "late" never went out
    assert not link.sending
    c.close()


def test_a_send_waiting_for_a_stuck_one_times_out_naming_the_method_and_the_seconds() -> None:
    # Not left in the outbox (a big request, a notification, a batch): each waits for
    # the send lock at most its timeout. A batch as a whole names no method.
    wire, c, link, results, big = _big_send_gated()
    short = c.with_timeout(0.3)
    stuck = "could not send within 0.3 s (another send is stuck)"
    with pytest.raises(RPCTimeout) as info:
        short.echo("y" * BIG)
    assert (info.value.method, str(info.value)) == ("echo", f"echo: {stuck}")
    with pytest.raises(RPCTimeout) as info:
        short.notify("log", "z")
    assert (info.value.method, str(info.value)) == ("log", f"log: {stuck}")
    with pytest.raises(RPCTimeout) as info, short.batch() as b:
        b.echo("w")
    assert (info.value.method, str(info.value)) == (None, f"batch: {stuck}")
    assert len(link.pending) == 1  # only the big call
    wire.go.set()
    big.join(WAIT)
    assert results == {"big": BIG}
    assert wire.sent_arguments() == ["x" * BIG]  # none of the others went out
    c.close()


def test_a_caller_without_a_timeout_claims_the_outbox_while_it_waits_for_the_send_lock() -> None:
    # The first call is alone: it takes the reading turn and sends (held here). A
    # caller with a timeout that must wait for the send lock does not claim the
    # outbox (it could give up waiting); one without a timeout does, and the small
    # request made after it is left for it to write.
    wire = _Wire(lambda data: b'"gate"' in data)
    c = RPCClient(transport=wire, timeout=WAIT)
    link = _link(c)
    results: dict[str, Any] = {}
    threads = [_call(results, "reader", lambda: c.call("gate", "r"))]
    assert wire.gated.wait(WAIT)
    assert link.reading and not link.sending
    threads.append(_call(results, "bounded", lambda: c.echo("bb")))
    wait_for(lambda: len(link.pending) == 2, "the call with a timeout to register")
    assert not link.sending and not link.outbox  # it waits for the send lock without a claim
    threads.append(_call(results, "unbounded", lambda: c.with_timeout(None).echo("uuu")))
    wait_for(lambda: link.sending, "the call without a timeout to claim the outbox")
    threads.append(_call(results, "left", lambda: c.echo("llll")))
    wait_for(lambda: len(link.outbox) == 1, "the last call to be left in the outbox")
    wire.go.set()
    for thread in threads:
        thread.join(WAIT)
    assert results == {"reader": 1, "bounded": 2, "unbounded": 3, "left": 4}
    sent = wire.sent_arguments()
    assert sent[0] == "r" and sorted(sent) == ["bb", "llll", "r", "uuu"]
    assert sent.index("llll") > sent.index("uuu")  # written by its claimant, after its own
    assert not link.sending and not link.outbox and not link.pending and not link.reading
    c.close()


def test_an_interrupted_claimant_closes_the_connection_of_the_calls_it_left_unsent() -> None:
    # A held call reads (its reply waits); the claimant's send is interrupted (as by
    # Ctrl-C) while a small request waits in the outbox. That request is never sent
    # and the connection is closed: every pending call fails at once. (The write
    # itself was interrupted, so the connection is closed for that reason first:
    # part of the claimant's request may be on the wire.)
    wire = _Wire(_is_big, fail=KeyboardInterrupt())
    c = RPCClient(transport=wire, timeout=WAIT)
    link = _link(c)
    results: dict[str, Any] = {}
    holder = _call(results, "held", lambda: c.call("hold", "h"))
    wait_for(lambda: link.reading and wire.sends, "the held call to be sent and read")
    claimant = _call(results, "claimant", lambda: c.echo("x" * BIG))
    assert wire.gated.wait(WAIT)
    left = _call(results, "left", lambda: c.echo("ll"))
    wait_for(lambda: len(link.outbox) == 1, "the small request to be left in the outbox")
    wire.go.set()
    for thread in (left, claimant, holder):
        thread.join(WAIT)
    assert isinstance(results["claimant"], KeyboardInterrupt)
    for key in ("left", "held"):
        assert isinstance(results[key], ConnectionLost), results
        assert "a send was interrupted; part of a request may be on the wire" in str(results[key])
    assert not link.sending and not link.outbox and not link.pending
    assert wire.sent_arguments() == ["h"]
    assert not wire.read_gave_up


class _InterruptibleLock:
    """A send lock whose next blocking acquire (by the thread named ``victim``) is interrupted on ``interrupt``."""

    def __init__(self, victim: str) -> None:
        self._lock = threading.Lock()
        self.victim = victim
        self.waiting = threading.Event()
        self.interrupt = threading.Event()

        self._owner = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if blocking and threading.current_thread().name == self.victim and not self._lock.acquire(blocking=False):
            self.waiting.set()
            assert self.interrupt.wait(WAIT)
            raise KeyboardInterrupt
        acquired = self._lock.acquire(blocking, timeout)
        if acquired:
            self._owner = threading.get_ident()
        return acquired

    def release(self) -> None:
        self._owner = 0
        self._lock.release()

    def _is_owned(self) -> bool:  # as threading.RLock's, which the client's send lock is
        return self._owner == threading.get_ident()

    def locked(self) -> bool:
        return self._lock.locked()


def _claimant_waiting_for_the_lock(
    results: dict[str, Any],
) -> tuple[_Wire, RPCClient, Any, _InterruptibleLock, threading.Thread, threading.Thread]:
    """A notification holds the send lock (its send gated); a call ("claimant", no timeout) waits for the lock."""
    wire = _Wire(_is_big)
    c = RPCClient(transport=wire)
    link = _link(c)
    lock = link.send_lock = _InterruptibleLock("claimant")
    notifier = _call(results, "notify", lambda: c.notify("echo", "x" * BIG))
    assert wire.gated.wait(WAIT)
    claimant = _call(results, "claimant", lambda: c.echo("c"))
    assert lock.waiting.wait(WAIT)
    return wire, c, link, lock, notifier, claimant


def test_a_claimant_interrupted_while_waiting_for_the_send_lock_leaves_no_reader_waiting() -> None:
    # A notification holds the send lock (it claims nothing); a caller without a
    # timeout claims the outbox and waits for the lock; a second call is left in the
    # outbox and its caller, nobody else reading, reads (no timeout, no reply will
    # come). The claimant is interrupted: the request it was to send never goes out,
    # and the connection's end is what frees the reader (else it waits for ever).
    results: dict[str, Any] = {}
    wire, c, link, lock, notifier, claimant = _claimant_waiting_for_the_lock(results)
    assert link.sending
    reader = _call(results, "reader", lambda: c.echo("rr"))
    wait_for(lambda: len(link.outbox) == 1 and link.reading, "the last call to be left in the outbox and to read")
    lock.interrupt.set()
    claimant.join(WAIT)
    reader.join(WAIT)
    assert isinstance(results["claimant"], KeyboardInterrupt)
    assert isinstance(results["reader"], ConnectionLost), results
    assert not wire.read_gave_up, "the reader waited for a reply to a request never sent"
    assert not link.sending and not link.outbox and not link.pending
    notifier.join(WAIT)
    assert "rr" not in wire.sent_arguments() and "c" not in wire.sent_arguments()


def test_requests_left_in_the_outbox_are_not_written_once_the_connection_is_lost() -> None:
    wire, c, link, results, big = _big_send_gated()
    threads = [big]
    threads.append(_call(results, "left", lambda: c.echo("ll")))
    wait_for(lambda: len(link.outbox) == 1, "the small request to be left in the outbox")
    link.fail_all("lost for the test")  # (close() would also release the gate)
    for thread in threads:
        thread.join(WAIT)
    assert isinstance(results["left"], ConnectionLost)
    assert "ll" not in wire.sent_arguments()
    assert not link.sending
    c.close()


def test_a_caller_interrupted_while_its_request_is_in_the_outbox_takes_it_back() -> None:
    wire, c, link, results, big = _big_send_gated()
    wire.interrupt_read = True  # the small caller reads next (nobody else does) and is interrupted
    with pytest.raises(KeyboardInterrupt):
        c.echo("gone")
    assert not link.outbox and len(link.pending) == 1  # only the big call
    wire.go.set()
    big.join(WAIT)
    assert results == {"big": BIG}
    assert wire.sent_arguments() == ["x" * BIG]  # "gone" never went out
    c.close()


def test_a_claimant_interrupted_with_nothing_left_in_the_outbox_keeps_the_connection() -> None:
    results: dict[str, Any] = {}
    wire, c, link, lock, notifier, claimant = _claimant_waiting_for_the_lock(results)
    lock.interrupt.set()
    claimant.join(WAIT)
    assert isinstance(results["claimant"], KeyboardInterrupt)
    assert not link.sending and link.lost is None
    wire.go.set()
    notifier.join(WAIT)
    assert c.echo("ok") == 2
    assert wire.sent_arguments() == ["x" * BIG, "ok"]
    c.close()
