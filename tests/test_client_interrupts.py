"""Ctrl-C anywhere in a sync client call leaves nothing held (review q06).

Python runs a signal handler right after a call returns, so a KeyboardInterrupt
can land just after the send lock or the reader's turn was taken, before the
code that releases it. Each case is injected where the signal would land; the
client must free what the interrupted thread held, and other threads' calls must
finish or fail with a clear error, never wait for ever.
"""

from __future__ import annotations

import json
import math
import socket
import sys
import threading
from typing import Any

import pytest
from _driver_helpers import WAIT, wait_for

import jsonrpc_mini._client_link as link_module
import jsonrpc_mini._client_waiter as waiter_module
from jsonrpc_mini import ConnectionLost, RPCClient, RPCError, RPCServer, RPCTimeout, SocketTransport

pytestmark = pytest.mark.timeout(60)


def _held(lock: Any) -> bool:
    return repr(lock).startswith("<locked")


class _LockCutAfterAcquire:
    """The client's send lock, whose acquire by thread ``victim`` is cut by KeyboardInterrupt after it succeeded."""

    def __init__(self, inner: Any, victim: str, blocking: bool) -> None:
        self.inner = inner
        self.victim = victim
        self.blocking = blocking
        self.cut = threading.Event()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        acquired = self.inner.acquire(blocking, timeout)
        mine = blocking == self.blocking and threading.current_thread().name == self.victim
        if acquired and mine and not self.cut.is_set():
            self.cut.set()
            raise KeyboardInterrupt  # as a signal handler run when acquire() returns
        return bool(acquired)

    def release(self) -> None:
        self.inner.release()

    def _is_owned(self) -> bool:
        return bool(self.inner._is_owned())


def _server() -> RPCServer:
    s = RPCServer()
    s.register_function(lambda x: x, name="echo")
    return s


def _run(results: dict[str, Any], name: str, call: Any) -> threading.Thread:
    def run() -> None:
        try:
            results[name] = call()
        except BaseException as exc:  # recorded for the test
            results[name] = exc

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("blocking", [False, True])
def test_an_interrupt_just_after_the_send_lock_was_taken_releases_it(blocking: bool) -> None:
    # blocking=False: the lone caller's lock round (request); True: a caller that
    # waits for the lock held by another send (send). Before, the lock stayed held:
    # every later call failed "another send is stuck" or waited for ever.
    server = _server()
    address = server.start("127.0.0.1", 0)
    try:
        with RPCClient(*address, timeout=WAIT) as c:
            link = c._link
            assert link is not None
            lock = link.send_lock = _LockCutAfterAcquire(link.send_lock, "victim", blocking)
            results: dict[str, Any] = {}
            if blocking:
                lock.inner.acquire()  # another send holds the lock: the victim waits for it
                victim = _run(results, "victim", lambda: c.echo(1))
                wait_for(lambda: len(link.pending) == 1, "the victim to wait for the send lock")
                lock.inner.release()
            else:
                victim = _run(results, "victim", lambda: c.echo(1))
            victim.join(WAIT)
            assert lock.cut.is_set()
            assert isinstance(results["victim"], KeyboardInterrupt)
            assert not _held(lock.inner), "the send lock stayed held"
            assert not link.reading and not link.sending and not link.pending
            assert link.lost is None  # nothing was written: the connection goes on
            assert c.with_timeout(2).echo(2) == 2
            other = _run(results, "other", lambda: c.echo(3))
            other.join(WAIT)
            assert results["other"] == 3
    finally:
        server.shutdown()


@pytest.mark.parametrize("kind", ["call", "batch"])
def test_an_interrupt_just_after_the_reading_turn_was_taken_hands_it_on(
    monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    # The turn is taken in wait()'s lock round and read in _lead: a signal landing
    # between them left it taken, and every other caller waited as a follower.
    # (A batch member waits through wait() alone, a call also through request().)
    server = _server()
    gate = threading.Event()
    server.register_function(lambda: gate.wait(WAIT) and "slow", name="slow")
    later = threading.Event()
    server.register_function(lambda: later.wait(WAIT) and "later", name="later")
    address = server.start("127.0.0.1", 0)
    real_lead = link_module._Link._lead
    cut = threading.Event()

    def lead(self: Any, waiter: Any, deadline: float | None) -> None:
        if threading.current_thread().name == "victim" and not cut.is_set():
            cut.set()
            raise KeyboardInterrupt  # as when _lead's frame starts (a signal check)
        real_lead(self, waiter, deadline)

    try:
        with RPCClient(*address) as c:  # no timeout: a call left waiting would hang
            link = c._link
            assert link is not None
            results: dict[str, Any] = {}
            slow = _run(results, "slow", c.slow)  # reads (alone, it takes the turn as it sends)
            wait_for(lambda: bool(link.reading) and not _held(link.send_lock), "the slow call to read")
            monkeypatch.setattr(link_module._Link, "_lead", lead)

            def batch() -> Any:
                with c.batch() as b:
                    member = b.later()
                return member.result()

            # A follower for now (its reply waits for ``later``).
            victim = _run(results, "victim", c.later if kind == "call" else batch)
            wait_for(lambda: len(link.pending) == 2, "the victim to wait")
            gate.set()  # the slow call's reader hands the turn to the victim, which is cut
            slow.join(WAIT)
            victim.join(WAIT)
            assert results["slow"] == "slow"
            assert cut.is_set() and isinstance(results["victim"], KeyboardInterrupt)
            assert not link.reading, "the reading turn stayed taken"
            later.set()
            other = _run(results, "other", lambda: c.echo(3))
            other.join(WAIT)
            assert results["other"] == 3
    finally:
        server.shutdown()


class _CutSocket(socket.socket):
    """A socket whose first read that takes ``marker`` is cut by KeyboardInterrupt after the bytes arrived."""

    marker = b""
    cut = False

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        count = super().recv_into(buffer, nbytes, flags)
        if not type(self).cut and self.marker in bytes(buffer[:count]):
            type(self).cut = True
            raise KeyboardInterrupt  # as a signal handler run when recv_into() returns
        return count


def _cut_client(marker: bytes) -> tuple[RPCClient, socket.socket, Any]:
    mine, peer = socket.socketpair()
    cut = type("Cut", (_CutSocket,), {"marker": marker})
    sock = cut(fileno=mine.detach())
    return RPCClient(transport=SocketTransport(sock)), peer, cut


def _answer(peer: socket.socket, ids: list[int]) -> None:
    peer.sendall(b"".join(b'{"jsonrpc": "2.0", "id": %d, "result": %d}\n' % (i, i) for i in ids))


def _request_ids(peer: socket.socket, count: int) -> list[int]:
    data = b""
    while data.count(b"\n") < count:
        chunk = peer.recv(65536)
        assert chunk
        data += chunk
    return [json.loads(line)["id"] for line in data.splitlines()]


def test_a_read_cut_after_taking_other_calls_replies_closes_the_connection() -> None:
    # The bytes read are lost with the interruption; the other call's reply was in
    # them. Before, that call waited for ever (no timeout).
    c, peer, cut = _cut_client(b'"result"')
    try:
        link = c._link
        assert link is not None
        results: dict[str, Any] = {}
        first = _run(results, "first", lambda: c.echo(1))  # alone: it reads
        wait_for(lambda: bool(link.reading), "the first call to read")
        second = _run(results, "second", lambda: c.echo(2))
        ids = _request_ids(peer, 2)
        wait_for(lambda: len(link.pending) == 2, "both calls to wait")
        _answer(peer, ids)  # one read takes both replies, and is cut
        first.join(WAIT)
        second.join(WAIT)
        assert cut.cut
        assert isinstance(results["first"], KeyboardInterrupt)
        assert isinstance(results["second"], ConnectionLost), results
        assert "a read was interrupted after taking bytes off the connection" in str(results["second"])
        with pytest.raises(ConnectionLost):
            c.echo(3)
    finally:
        c.close()
        peer.close()


def test_a_lone_call_whose_read_is_cut_closes_the_connection() -> None:
    # Alone, the caller loses its own reply with the bytes its read took. Before
    # (review12 F2) the connection stayed; but which bytes were lost is unknown (see
    # the next test), so now it closes: the next call raises ConnectionLost.
    c, peer, cut = _cut_client(b'"result"')
    try:
        results: dict[str, Any] = {}
        lone = _run(results, "lone", lambda: c.echo(1))
        _answer(peer, _request_ids(peer, 1))
        lone.join(WAIT)
        assert isinstance(results["lone"], KeyboardInterrupt)
        assert cut.cut
        link = c._link
        assert link is not None and not link.pending and not link.reading
        assert link.lost is not None and "a read was interrupted after taking bytes" in link.lost
        with pytest.raises(ConnectionLost, match="a read was interrupted after taking bytes"):
            c.echo(2)
    finally:
        c.close()
        peer.close()


def test_a_lone_call_that_loses_part_of_its_reply_does_not_leave_the_next_call_waiting() -> None:
    # review12 F2: the reply's first part was read (the framer is inside its string),
    # the read taking the rest is cut and its bytes are lost. Kept open, the framer
    # read the next reply as the rest of the lost one and the next call waited for
    # ever (no timeout).
    c, peer, cut = _cut_client(b"MARK")
    try:
        link = c._link
        assert link is not None
        results: dict[str, Any] = {}
        lone = _run(results, "lone", lambda: c.echo(1))
        (call_id,) = _request_ids(peer, 1)
        peer.sendall(b'{"jsonrpc": "2.0", "id": %d, "result": "%s' % (call_id, b"a" * 2000))
        wait_for(lambda: link.proto.in_message, "the reply's first part to be read")
        peer.sendall(b'bbbbMARK"}\n')  # the read that takes it is cut: these bytes are lost
        lone.join(WAIT)
        assert isinstance(results["lone"], KeyboardInterrupt)
        assert cut.cut
        results2: dict[str, Any] = {}
        nxt = _run(results2, "next", lambda: c.echo(2))
        nxt.join(WAIT)
        assert isinstance(results2.get("next"), ConnectionLost), results2
    finally:
        c.close()
        peer.close()


# -- timeouts past what the sync client can wait (review p27) ------------------------


@pytest.mark.parametrize("timeout", [math.inf, 1e12, 1e300])
def test_an_endless_or_huge_timeout_means_no_timeout(timeout: float) -> None:
    server = _server()
    address = server.start("127.0.0.1", 0)
    try:
        with RPCClient(*address, timeout=timeout) as c:
            assert c.echo(1) == 1
            assert c._timeout is None
        with RPCClient(*address, timeout=5) as c:
            view = c.with_timeout(timeout)
            assert view._timeout is None
            assert view.echo(2) == 2
            assert c.echo(3) == 3
    finally:
        server.shutdown()


def test_the_longest_timeout_is_kept_and_works() -> None:
    server = _server()
    address = server.start("127.0.0.1", 0)
    longest = (2**31 - 1) // 1000
    try:
        with RPCClient(*address, timeout=longest) as c:
            assert c._timeout == longest
            assert c.echo(1) == 1
            assert c.with_timeout(longest + 1)._timeout is None
    finally:
        server.shutdown()


def test_a_timeout_names_its_method() -> None:
    server = _server()
    gate = threading.Event()
    server.register_function(lambda: gate.wait(WAIT), name="slow")
    address = server.start("127.0.0.1", 0)
    try:
        with RPCClient(*address, timeout=0.2) as c:
            with pytest.raises(RPCTimeout) as info:
                c.slow()
            assert info.value.method == "slow"
            assert str(info.value) == "slow: no reply within 0.2 s; a late reply will be dropped"
            gate.set()
    finally:
        server.shutdown()


def test_a_call_whose_reply_an_interrupted_reader_took_fails_instead_of_waiting() -> None:
    # The reader was cut after taking the other call out of ``pending`` and before
    # storing its reply (the reply is lost with it). That call, with no timeout,
    # read on for ever before; it now fails at its next look (a follower polls).
    c, peer, _ = _cut_client(b"never")  # (no cut by the socket here)
    try:
        link = c._link
        assert link is not None
        results: dict[str, Any] = {}
        first = _run(results, "first", lambda: c.echo(1))
        wait_for(lambda: bool(link.reading), "the first call to read")
        second = _run(results, "second", lambda: c.echo(2))
        ids = _request_ids(peer, 2)
        wait_for(lambda: len(link.pending) == 2, "both calls to wait")
        real = link._settle_lines

        def settle_cut(values: Any, waiter: Any) -> bool:
            with link.lock:
                link.pending.pop(ids[1])  # the second call's reply is being handed out ...
            raise KeyboardInterrupt  # ... when the signal lands

        link._settle_lines = settle_cut
        _answer(peer, ids[1:])
        first.join(WAIT)
        link._settle_lines = real
        second.join(WAIT)
        assert not second.is_alive(), "the call whose reply was taken waits for ever"
        assert isinstance(results["first"], KeyboardInterrupt)
        assert isinstance(results["second"], ConnectionLost), results
    finally:
        c.close()
        peer.close()


def test_a_thread_holding_the_send_lock_as_it_sends_closes_the_connection() -> None:
    # A leftover hold (a second Ctrl-C while the first was handled), or a signal
    # handler calling while its thread is inside a send: writing now would put a
    # request inside another. The connection is closed and the lock freed.
    c, peer, _ = _cut_client(b"never")
    try:
        link = c._link
        assert link is not None
        link.send_lock.acquire()  # left held by this thread
        results: dict[str, Any] = {}
        waiting = _run(results, "waiting", lambda: c.notify("x"))  # waits for the lock
        wait_for(lambda: "waiting" not in results and waiting.is_alive(), "the other sender to wait")
        with pytest.raises(ConnectionLost, match="a send was interrupted and left the connection in use"):
            c.with_timeout(2).echo(1)
        assert not _held(link.send_lock)
        waiting.join(WAIT)
        assert isinstance(results["waiting"], ConnectionLost), results
        peer.settimeout(0.2)
        assert peer.recv(100) == b"", "a request was written"
    finally:
        c.close()
        peer.close()


def test_an_error_without_a_message_prints_so() -> None:
    assert str(RPCError(-32000, None)) == "[-32000] (no message)"
    assert str(RPCError(-32000, "x")) == "[-32000] x"


def test_a_send_timeout_is_reported_rounded() -> None:
    mine, peer = socket.socketpair()
    try:
        transport = SocketTransport(mine)
        with pytest.raises(TimeoutError) as info:
            transport.send_within(b"x" * (64 << 20), 0.123456789)  # the peer reads nothing
        assert str(info.value) == "the peer took no more data within 0.123 s"
    finally:
        mine.close()
        peer.close()


def _top_frame(thread: threading.Thread) -> str | None:
    frame = sys._current_frames().get(thread.ident or 0)
    return None if frame is None else frame.f_code.co_name


class _WakeCut(waiter_module._Waiter):
    """A waiter whose wake-up is cut by KeyboardInterrupt (as a signal landing inside fail_all)."""

    __slots__ = ()

    def wake(self) -> None:
        raise KeyboardInterrupt


def test_fail_all_cut_short_still_closes_the_transport() -> None:
    # A reader blocked in the transport returns only when it is closed: before, a
    # signal landing in fail_all's wake-ups left it open and that reader blocked.
    c, peer, _ = _cut_client(b"never")
    try:
        link = c._link
        assert link is not None
        results: dict[str, Any] = {}
        reader = _run(results, "reader", lambda: c.echo(1))  # alone: reads, no timeout
        _request_ids(peer, 1)
        wait_for(lambda: _top_frame(reader) == "recv_into", "the call to block reading")
        cut = _WakeCut(99, "cut")
        link.pending[cut.id] = cut
        with pytest.raises(KeyboardInterrupt):
            link.fail_all("lost for the test")
        reader.join(WAIT)
        assert not reader.is_alive(), "the reader stayed blocked in an open transport"
        assert isinstance(results["reader"], ConnectionLost)
    finally:
        c.close()
        peer.close()
