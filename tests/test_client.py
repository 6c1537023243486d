"""RPCClient against real servers and against scripted raw-socket servers."""

from __future__ import annotations

import gc
import json
import socket
import threading
import time
import warnings
from typing import Any

import pytest
from _driver_helpers import WAIT, FakeServer, LeakCheck, Peer, ReadCount, free_port, serving, start_thread, wait_for

import jsonrpc_mini._client as client_module
import jsonrpc_mini._client_doorbell as doorbell_module
import jsonrpc_mini._client_link as link_module
import jsonrpc_mini._client_reader as reader_module
import jsonrpc_mini._client_waiter as waiter_module
from jsonrpc_mini import (
    BatchResult,
    ConnectionLost,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    RemoteError,
    RPCClient,
    RPCError,
    RPCServer,
    RPCTimeout,
    ServerError,
    SocketTransport,
    _remote,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


def echo(*args: Any, **kwargs: Any) -> Any:
    return {"args": list(args), "kwargs": kwargs}


def _send_lock_held(link: Any) -> bool:
    """Whether some thread holds the client's send lock (an RLock, which has no locked() before 3.14)."""
    return repr(link.send_lock).startswith("<locked")


@pytest.fixture
def server() -> Any:
    s = RPCServer()
    s.register_function(echo)
    s.register_function(lambda a, b: a + b, name="add")
    s.register_function(lambda a, b: a + b, name="math.add")
    return s


@pytest.fixture
def address(server: RPCServer) -> Any:
    with serving(server) as addr:
        yield addr


# -- connecting ----------------------------------------------------------------


def test_seed_style_and_one_line_construction(address: Any) -> None:
    host, port = address
    c = RPCClient()
    assert not c._connected
    assert c.connect(host, port) is c
    assert c._connected and c._timeout is None
    assert c.add(1, 2) == 3
    c.close()
    assert not c._connected

    d = RPCClient(host, port, timeout=5.0)
    assert d._connected and d._timeout == 5.0
    assert "connected" in repr(d)
    assert d.add(2, 2) == 4
    d.close()


def test_connect_rules(address: Any) -> None:
    host, port = address
    with RPCClient(host, port, timeout=WAIT) as c:
        with pytest.raises(RPCError, match="already connected"):
            c.connect(host, port)
        c.close()
        c.connect(host, port)  # a closed client may connect again
        assert c.add(1, 1) == 2
    with pytest.raises(ValueError, match="host"):
        RPCClient(port=port)
    with pytest.raises(ValueError, match="timeout"):
        RPCClient(timeout=0)
    with pytest.raises(ValueError, match="framing"):
        RPCClient(framing="auto")  # type: ignore[arg-type]
    with pytest.raises(ConnectionLost, match="connect"):
        RPCClient().add(1, 2)  # never connected
    with pytest.raises(ConnectionLost, match="connect"):
        RPCClient().call("add", 1, 2)  # (call() looks at the connection itself)


def test_connect_to_a_closed_port_is_connection_lost() -> None:
    port = free_port()
    with pytest.raises(ConnectionLost) as info:
        RPCClient("127.0.0.1", port, timeout=WAIT)
    assert isinstance(info.value, ConnectionError)
    assert info.value.code is None
    assert f"127.0.0.1:{port}" in str(info.value)
    c = RPCClient()
    with pytest.raises(ConnectionLost):
        c.connect("127.0.0.1", port)
    assert not c._connected


def test_content_length_framing_option(address: Any) -> None:
    with RPCClient(*address, framing="content-length", timeout=WAIT) as c:
        assert c.echo("测试项", kw1="1") == {"args": ["测试项"], "kwargs": {"kw1": "1"}}
        assert c.add(1, 2) == 3


def test_content_length_replies_are_parsed_without_reading_ahead(address: Any) -> None:
    # A whole Content-Length frame looks like part of one to the framer before it is
    # parsed (in_message): reading what has arrived after each such reply found nothing
    # and cost a system call per call. Large replies, which come in many reads, still
    # arrive whole.
    transport = ReadCount(socket.create_connection(address))
    with RPCClient(transport=transport, framing="content-length", timeout=WAIT) as c:
        for n in range(5):
            assert c.add(n, 1) == n + 1
        assert transport.ready_reads == 0
        big = "x" * (3 * 256 * 1024)
        assert c.echo(big) == {"args": [big], "kwargs": {}}
        assert c.add(2, 2) == 4


# -- calling -------------------------------------------------------------------


def test_attribute_calls_and_call(address: Any) -> None:
    with RPCClient(*address, timeout=WAIT) as c:
        assert c.echo() == {"args": [], "kwargs": {}}
        assert c.echo(1, [2], {"3": 4}) == {"args": [1, [2], {"3": 4}], "kwargs": {}}
        assert c.echo(a=None) == {"args": [], "kwargs": {"a": None}}
        assert c.call("add", 0.5, 0.25) == 0.75
        assert c.math.add(1, 2) == 3  # dotted names through attributes
        assert repr(c.math.add) == "<remote method 'math.add'>"
        with pytest.raises(AttributeError):
            c.math._private  # noqa: B018


def test_method_and_self_keywords_pass_through(address: Any) -> None:
    with RPCClient(*address, timeout=WAIT) as c:
        expected = {"args": [1], "kwargs": {"method": "m", "self": "s"}}
        assert c.call("echo", 1, method="m", self="s") == expected
        assert c.echo(1, method="m", self="s") == expected
        with c.batch() as b:
            r = b.echo(1, method="m", self="s")
            r2 = b.call("echo", 1, method="m", self="s")
        assert r.result() == expected and r2.result() == expected


def test_own_names_are_not_remote_calls(server: RPCServer, address: Any) -> None:
    closed = threading.Event()
    server.register_function(lambda: closed.set() or "remote close", name="close")
    server.register_function(lambda: "remote with_timeout", name="with_timeout")
    with RPCClient(*address, timeout=WAIT) as c:
        for own in ("call", "notify", "batch", "connect", "close", "with_timeout"):
            attr = getattr(c, own)
            assert attr.__self__ is c and attr.__func__ is getattr(RPCClient, own), own
        for private in ("_x", "__x__", "_link_"):
            with pytest.raises(AttributeError):
                getattr(c, private)
        assert c.call("close") == "remote close"
        assert closed.is_set()
        assert c._connected  # the remote close did not close our connection
        assert c.call("with_timeout") == "remote with_timeout"
        # only API.md's own names are reserved: state names stay remote methods
        server.register_function(lambda: "remote timeout", name="timeout")
        server.register_function(lambda: "remote connected", name="connected")
        assert c._timeout == WAIT and c._connected is True
        assert c.timeout() == "remote timeout"
        assert c.connected() == "remote connected"
        # any other name is a remote call, however close to an own name
        server.register_function(lambda: "remote closed", name="closed")
        server.register_function(lambda: "remote call_me", name="call_me")
        assert c.closed() == "remote closed"
        assert c.call_me() == "remote call_me"
        with pytest.raises(MethodNotFound):
            c.call("_x")  # reachable through call(), refused by the server


def test_arguments_that_cannot_be_sent_raise_and_leave_the_client_usable(address: Any) -> None:
    with RPCClient(*address, timeout=WAIT) as c:
        with pytest.raises(TypeError):
            c.echo({1, 2})
        with pytest.raises(TypeError, match="collides"):
            c.echo(1, **{"0": 2})
        assert c.add(1, 2) == 3


def test_errors_carry_code_message_data_and_name_the_method(server: RPCServer, address: Any) -> None:
    def fail(code: int) -> None:
        raise RPCError(code, f"failed with {code}", {"code": code})

    server.register_function(fail)
    with RPCClient(*address, timeout=WAIT) as c:
        for code, cls in ((-32001, ServerError), (-32602, InvalidParams), (404, RemoteError)):
            with pytest.raises(cls) as info:
                c.fail(code)
            err = info.value
            assert (err.code, err.message, err.data, err.method) == (
                code,
                f"failed with {code}",
                {"code": code},
                "fail",
            )
            assert "fail" in str(err) and str(code) in str(err)
        with pytest.raises(MethodNotFound) as missing:
            c.nowhere(1)
        assert missing.value.code == -32601 and "nowhere" in str(missing.value)
        with pytest.raises(InvalidParams) as bad:
            c.add(1)
        assert bad.value.method == "add"


def test_notify_runs_remotely_and_returns_nothing(server: RPCServer, address: Any) -> None:
    got: list[Any] = []
    done = threading.Event()

    def log(*args: Any, **kwargs: Any) -> str:
        got.append((args, kwargs))
        done.set()
        return "ignored"

    server.register_function(log)
    with RPCClient(*address, timeout=WAIT) as c:
        assert c.notify("log", "x", level="info") is None
        assert done.wait(WAIT)
        assert got == [(("x",), {"level": "info"})]
        c.notify("no_such_method", 1)  # errors of notifications are never answered
        assert c.add(1, 2) == 3  # ... so the next reply is ours


# -- batches ---------------------------------------------------------------------


def test_batch_results_errors_and_notifications(server: RPCServer, address: Any) -> None:
    noted = threading.Event()
    server.register_function(lambda text: noted.set(), name="note")
    with RPCClient(*address, timeout=WAIT) as c:
        with c.batch() as b:
            first = b.add(1, 2)
            second = b.call("echo", "x", k=1)
            dotted = b.math.add(10, 20)
            missing = b.nope()
            bad = b.add(1)
            b.notify("note", "in a batch")
            assert len(b) == 6
            with pytest.raises(RPCError, match="not been sent"):
                first.result()
        assert isinstance(first, BatchResult) and first.method == "add"
        assert first.result() == 3
        assert second.result() == {"args": ["x"], "kwargs": {"k": 1}}
        assert dotted.result() == 30
        with pytest.raises(MethodNotFound) as info:
            missing.result()
        assert info.value.method == "nope"
        with pytest.raises(InvalidParams):
            bad.result()
        assert noted.wait(WAIT)
        with pytest.raises(RPCError, match="already sent"):
            b.add(1, 2)
        assert c.add(2, 3) == 5  # the connection is in step afterwards


def test_batches_of_only_notifications_or_nothing(server: RPCServer, address: Any) -> None:
    seen: list[int] = []
    all_seen = threading.Event()

    def note(n: int) -> None:
        seen.append(n)
        if len(seen) == 3:
            all_seen.set()

    server.register_function(note)
    with RPCClient(*address, timeout=WAIT) as c:
        with c.batch() as b:
            for n in range(3):
                b.notify("note", n)
        assert all_seen.wait(WAIT)
        assert sorted(seen) == [0, 1, 2]
        with c.batch():
            pass  # nothing queued: nothing sent
        assert c.add(1, 2) == 3


def test_a_batch_is_not_sent_when_the_block_raises(server: RPCServer, address: Any) -> None:
    ran: list[int] = []
    server.register_function(lambda: ran.append(1), name="mark")
    with RPCClient(*address, timeout=WAIT) as c:
        with pytest.raises(KeyError), c.batch() as b:
            b.notify("mark")
            raise KeyError("abandon")
        assert c.add(1, 2) == 3
    assert ran == []


# -- timeouts ------------------------------------------------------------------


def test_with_timeout_and_late_replies_are_dropped(server: RPCServer, address: Any) -> None:
    release = threading.Event()
    finished = threading.Event()

    def slow(tag: str) -> str:
        release.wait(WAIT)
        finished.set()
        return f"slow {tag}"

    server.register_function(slow)
    with RPCClient(*address, timeout=WAIT) as c:
        quick = c.with_timeout(0.2)
        assert quick._timeout == 0.2 and c._timeout == WAIT
        with pytest.raises(RPCTimeout) as info:
            quick.slow("a")
        assert isinstance(info.value, TimeoutError)
        assert info.value.code is None and "slow" in str(info.value)
        release.set()
        assert finished.wait(WAIT)
        # The late reply for "slow a" arrives now and must not be taken for a later call
        # (views share the connection). Made with the full timeout: quick's 0.2 s assumed
        # each one answered that fast, on a loaded machine too.
        for n in range(20):
            assert c.add(n, 1) == n + 1
            assert c.echo(n) == {"args": [n], "kwargs": {}}
        assert c.with_timeout(None)._timeout is None
        with pytest.raises(ValueError):
            c.with_timeout(-1)


def test_a_client_dropped_without_close_frees_its_connection_at_once(server: RPCServer, address: Any) -> None:
    # No reference cycle may keep a dropped client (and its connection) alive until
    # the garbage collector runs: attribute calls and batches are what could make one.
    def use() -> None:
        c = RPCClient(*address, timeout=WAIT)
        assert c.add(1, 2) == 3
        assert c.add(2, 3) == 5
        with c.batch() as b:
            r = b.add(3, 4)
        assert r.result() == 7

    gc.disable()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)  # the socket closed by being freed
            for _ in range(3):
                use()
        wait_for(lambda: server.connection_count == 0, "the dropped clients' connections to close")
    finally:
        gc.enable()


def test_client_timeout_bounds_every_call_and_batch(server: RPCServer) -> None:
    release = threading.Event()
    server.register_function(lambda: release.wait(WAIT) and "done", name="slow")
    server.register_function(lambda a, b: a + b, name="add")
    with serving(server) as address, RPCClient(*address, timeout=0.2) as c:
        with pytest.raises(RPCTimeout):
            c.slow()
        with c.batch() as b:
            late = b.slow()
        with pytest.raises(RPCTimeout):
            late.result()
        release.set()
        assert c.with_timeout(WAIT).add(1, 2) == 3


# -- sharing between threads -----------------------------------------------------


def test_one_client_shared_by_many_threads(address: Any) -> None:
    threads_n, calls_n = 8, 200
    barrier = threading.Barrier(threads_n, timeout=WAIT)
    wrong: list[str] = []
    finished: list[int] = []
    with RPCClient(*address, timeout=WAIT) as c:

        def worker(t: int) -> None:
            try:
                barrier.wait()
                for i in range(calls_n):
                    got = c.add(t * 1_000_000, i)
                    if got != t * 1_000_000 + i:
                        wrong.append(f"thread {t} call {i} got {got}")
                finished.append(t)
            except Exception as exc:
                wrong.append(f"thread {t}: {exc!r}")

        workers = [start_thread(worker, t) for t in range(threads_n)]
        for w in workers:
            w.join(WAIT * 6)
    assert not wrong, wrong[:5]
    assert sorted(finished) == list(range(threads_n))


def test_a_waiting_caller_is_woken_for_its_reply_and_to_take_over_reading(
    server: RPCServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Followers re-check every _POLL seconds in case a wake-up is lost; made longer
    # than the test may take, so only the wake-ups themselves can end these waits.
    monkeypatch.setattr(reader_module, "_POLL", 60.0)
    first, second = threading.Event(), threading.Event()
    server.register_function(lambda: first.wait(WAIT) and "first", name="first")
    server.register_function(lambda: second.wait(WAIT) and "second", name="second")
    results: dict[str, Any] = {}
    with serving(server) as address, RPCClient(*address, timeout=WAIT) as c:
        reader = start_thread(lambda: results.update(a=c.first()))
        wait_for(lambda: c._link is not None and c._link.reading, "the first caller to read")
        # B waits while A reads: A must wake B when B's reply comes.
        quick = start_thread(lambda: results.update(b=c.add(1, 2)))
        quick.join(WAIT)
        assert results.get("b") == 3, "a follower was not woken for its reply"
        # C waits while A reads; A gets its own reply and must hand reading to C.
        follower = start_thread(lambda: results.update(c=c.second()))
        wait_for(lambda: c._link is not None and len(c._link.pending) == 2, "the second call to wait")
        first.set()
        reader.join(WAIT)
        second.set()
        follower.join(WAIT)
        assert results == {"a": "first", "b": 3, "c": "second"}, "reading was not handed over"


def test_every_pending_call_fails_when_the_server_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    # The followers among them sleep on their doorbells: only being woken (not the
    # poll's end) may end their waits.
    monkeypatch.setattr(reader_module, "_POLL", 60.0)
    callers = 8
    received = threading.Semaphore(0)

    def script(peer: Peer) -> None:
        for _ in range(callers):
            peer.until(b"\n")
            received.release()
        peer.close()  # eight calls pending: the server goes away

    outcomes: list[BaseException | Any] = []
    with FakeServer(script) as fake:
        c = RPCClient(*fake.address)  # no timeout: only the lost connection can end the calls

        def call(n: int) -> None:
            try:
                outcomes.append(c.slow(n))
            except BaseException as exc:
                outcomes.append(exc)

        threads = [start_thread(call, n) for n in range(callers)]
        for t in threads:
            t.join(WAIT)
        assert not any(t.is_alive() for t in threads), "a pending call was not failed"
        assert len(outcomes) == callers
        assert all(isinstance(o, ConnectionLost) for o in outcomes), outcomes
        assert {o.method for o in outcomes} == {"slow"}
        assert not c._connected
        with pytest.raises(ConnectionLost):
            c.add(1, 2)  # and later calls fail at once
        c.close()
    assert not fake.errors


def test_pending_calls_fail_when_a_real_server_stops_early() -> None:
    callers = 5
    entered = threading.Semaphore(0)
    release = threading.Event()
    s = RPCServer(shutdown_grace=0.1)

    @s.register
    def slow() -> str:
        entered.release()
        release.wait(WAIT)
        return "too late"

    outcomes: list[Any] = []
    address = s.start("127.0.0.1", 0)
    c = RPCClient(*address)
    threads = [start_thread(lambda: outcomes.append(_outcome(c.slow))) for _ in range(callers)]
    for _ in range(callers):
        assert entered.acquire(timeout=WAIT)
    stopper = start_thread(s.shutdown)
    for t in threads:
        t.join(WAIT)
    assert [type(o) for o in outcomes] == [ConnectionLost] * callers
    release.set()
    stopper.join(WAIT)
    c.close()


def _outcome(fn: Any) -> Any:
    try:
        return fn()
    except BaseException as exc:
        return exc


def test_close_fails_calls_waiting_in_other_threads(server: RPCServer, address: Any) -> None:
    entered, release = threading.Event(), threading.Event()

    def slow() -> None:
        entered.set()
        release.wait(WAIT)

    server.register_function(slow)
    c = RPCClient(*address)
    outcomes: list[Any] = []
    caller = start_thread(lambda: outcomes.append(_outcome(c.slow)))
    assert entered.wait(WAIT)
    c.close()
    caller.join(WAIT)
    assert len(outcomes) == 1 and isinstance(outcomes[0], ConnectionLost)
    c.close()  # idempotent
    release.set()


# -- scripted servers -----------------------------------------------------------


def _reply(id_: Any, result: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": id_, "result": result}).encode()


def test_replies_without_trailing_newline() -> None:
    def script(peer: Peer) -> None:
        for _ in range(2):
            req = peer.json_line()
            peer.sendall(_reply(req["id"], req["params"][0] * 2))  # no newline, ever
        peer.until(b"\n")

    with FakeServer(script) as fake, RPCClient(*fake.address, timeout=WAIT) as c:
        assert c.double(21) == 42
        assert c.double("ab") == "abab"
        c.notify("bye")
    assert not fake.errors


def test_replies_in_another_order_are_matched_by_id() -> None:
    calls = 4

    def script(peer: Peer) -> None:
        requests = [peer.json_line() for _ in range(calls)]
        for req in reversed(requests):  # answer the last first
            peer.sendall(_reply(req["id"], req["params"]) + b"\n")
        peer.until(b"\n")

    with FakeServer(script) as fake, RPCClient(*fake.address, timeout=WAIT) as c:
        outcomes: dict[int, Any] = {}
        threads = [start_thread(lambda n=n: outcomes.__setitem__(n, c.ident(n))) for n in range(calls)]
        for t in threads:
            t.join(WAIT)
        assert outcomes == {n: [n] for n in range(calls)}
        c.notify("bye")
    assert not fake.errors


def _counted_client(address: Any, counted: list[ReadCount]) -> RPCClient:
    """A client of ``address`` whose transport (appended to ``counted``) counts the bytes it has read."""
    sock = socket.create_connection(address, timeout=WAIT)
    sock.settimeout(None)
    counted.append(ReadCount(sock))
    return RPCClient(transport=counted[0], timeout=WAIT)


def test_many_reply_lines_in_one_read_reach_their_calls() -> None:
    # The reader decodes a read's whole lines at once: successes, an error reply, a
    # reply for nobody, and a line cut by the end of the read (finished by the next).
    calls = 4
    counted: list[ReadCount] = []

    def script(peer: Peer) -> None:
        reqs = {r["params"][0]: r for r in (peer.json_line() for _ in range(calls))}
        error = {"jsonrpc": "2.0", "id": reqs[0]["id"], "error": {"code": -32601, "message": "no"}}
        cut = _reply(reqs[1]["id"], [1])
        first = _reply(reqs[3]["id"], [3]) + b"\n" + json.dumps(error).encode() + b"\n"
        head = first + _reply(999, "nobody") + b"\n" + cut[:10]
        peer.sendall(head)
        counted[0].wait_read(len(head))  # the reader has taken what came so far
        peer.sendall(cut[10:] + b"\n" + _reply(reqs[2]["id"], [2]) + b"\n")
        peer.until(b"\n")

    with FakeServer(script) as fake, _counted_client(fake.address, counted) as c:
        outcomes: dict[int, Any] = {}
        threads = [
            start_thread(lambda n=n: outcomes.__setitem__(n, _outcome(lambda: c.ident(n)))) for n in range(calls)
        ]
        for t in threads:
            t.join(WAIT)
        assert isinstance(outcomes.pop(0), MethodNotFound)
        assert outcomes == {n: [n] for n in (1, 2, 3)}
        c.notify("bye")
    assert not fake.errors


class _OneRead:
    """A transport whose first recv returns ``data``, then the end of the stream."""

    def __init__(self, data: bytes) -> None:
        self.reads = [data]

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        return self.reads.pop(0) if self.reads else b""

    def send(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def _reading_link(data: bytes, ids: range) -> tuple[Any, list[Any]]:
    """A client link holding one pending call per id, this thread as its reader, ``data`` to read."""
    link = link_module._Link(_OneRead(data), client_module.ClientConnection())
    waiters = [waiter_module._Waiter("m", i) for i in ids]
    link.pending.update((w.id, w) for w in waiters)
    link.reading = True
    return link, waiters


def test_a_batch_reply_line_settles_its_members_in_one_step(monkeypatch: pytest.MonkeyPatch) -> None:
    # A read that is a batch reply (one array line) is decoded by the core in one
    # step; success members are stored from their objects, the rest checked by
    # parse_reply (here the error and nothing else).
    checked: list[Any] = []
    real = client_module.ClientConnection.parse_reply
    monkeypatch.setattr(
        client_module.ClientConnection, "parse_reply", staticmethod(lambda v: checked.append(v) or real(v))
    )
    error = {"jsonrpc": "2.0", "id": 2, "error": {"code": -32601, "message": "no"}}
    members = [json.loads(_reply(1, "a")), error, json.loads(_reply(99, "nobody")), json.loads(_reply(3, [3]))]
    link, waiters = _reading_link(json.dumps(members).encode() + b"\n", range(1, 4))
    assert link._read_replies(waiters[-1], None, [False])  # the reading turn handed back with the last reply
    assert [w.value for w in waiters] == ["a", None, [3]]
    assert isinstance(waiters[1].error, MethodNotFound)
    assert checked == [error]
    assert not link.reading and link.pending == {}


def test_reply_lines_that_cannot_be_decoded_as_a_group_go_to_the_framer(monkeypatch: pytest.MonkeyPatch) -> None:
    # Results holding an escape or a bracket keep the core from decoding lines as a
    # group; the reader then gives the rest of the read to the framer instead of
    # asking again for each line (each ask looks at up to 64 lines).
    asked = 0
    real = client_module.ClientConnection.decode_lines

    def counting(self: Any, data: bytes, limit: int, start: int = 0) -> Any:
        nonlocal asked
        asked += 1
        return real(self, data, limit, start)

    monkeypatch.setattr(client_module.ClientConnection, "decode_lines", counting)

    results = ["a\nb", "[x]", {"k": "}"}]
    data = b"".join(_reply(i, results[i % 3]) + b"\n" for i in range(1, 301))
    link, waiters = _reading_link(data, range(1, 301))
    link._read_replies(waiters[-1], None, [False])
    assert [w.value for w in waiters] == [results[i % 3] for i in range(1, 301)]
    assert asked <= 2, asked


def test_a_batch_reply_line_settles_every_kind_of_member_in_order() -> None:
    # One loop checks and stores the members: a success with a member beyond the
    # usual three (checked by the core, as any reply), an error, a reply naming a
    # pending call that cannot be used (a violation, delivered outside the lock),
    # and a success after it, which must still be stored.
    extra = {"jsonrpc": "2.0", "id": 1, "result": "a", "x": 1}
    error = {"jsonrpc": "2.0", "id": 2, "error": {"code": -32601, "message": "no"}}
    unusable = {"jsonrpc": "2.0", "id": 3}  # neither result nor error
    members = [extra, error, unusable, json.loads(_reply(4, [4]))]
    link, waiters = _reading_link(json.dumps(members).encode() + b"\n", range(1, 5))
    assert link._read_replies(waiters[-1], None, [False])  # the turn handed back with the last reply
    assert waiters[0].value == "a" and waiters[0].error is None
    assert isinstance(waiters[1].error, MethodNotFound)
    assert isinstance(waiters[2].error, RPCError) and "cannot be used" in str(waiters[2].error)
    assert waiters[3].value == [4] and waiters[3].error is None
    assert all(w.done for w in waiters)
    assert not link.reading and link.pending == {}


def test_a_reader_hands_out_one_line_reads_until_its_own_reply_comes() -> None:
    # Reads of one line each (the lone caller's quick path): another call's success,
    # another call's error, then this call's own reply.
    error = {"jsonrpc": "2.0", "id": 2, "error": {"code": -32602, "message": "bad"}}
    link, waiters = _reading_link(_reply(1, "other") + b"\n", range(1, 4))
    link.transport.reads += [json.dumps(error).encode() + b"\n", _reply(3, "mine") + b"\n"]
    assert link._read_replies(waiters[2], None, [False])
    assert waiters[0].value == "other"
    assert isinstance(waiters[1].error, InvalidParams)
    assert waiters[2].value == "mine"
    assert not link.reading and link.pending == {}


def test_a_one_line_error_reply_completes_its_own_call() -> None:
    error = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "no"}}
    link, waiters = _reading_link(json.dumps(error).encode() + b"\n", range(1, 2))
    assert link._read_replies(waiters[0], None, [False])
    assert isinstance(waiters[0].error, MethodNotFound)
    assert not link.reading and link.pending == {}


def test_closing_while_a_reply_is_half_received_logs_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    # The reader then sees the end of the stream inside a value: that concerns nobody
    # once the client is closed (it used to log "ignoring message from server").
    half = threading.Event()

    def script(peer: Peer) -> None:
        req = peer.json_line()
        peer.sendall(_reply(req["id"], "x" * 100)[:30])
        half.set()
        peer.to_eof()

    with FakeServer(script) as fake, caplog.at_level("DEBUG", logger="jsonrpc_mini"):
        c = RPCClient(*fake.address, timeout=WAIT)
        outcome: list[Any] = []
        caller = start_thread(lambda: outcome.append(_outcome(lambda: c.call("slow"))))
        assert half.wait(WAIT)
        wait_for(lambda: c._link is not None and c._link.reading and c._link.proto.in_message, "the half reply read")
        c.close()
        caller.join(WAIT)
    assert [type(o) for o in outcome] == [ConnectionLost]
    assert not [r for r in caplog.records if r.levelname == "WARNING"], caplog.records
    assert not fake.errors


@pytest.mark.parametrize("stray_first", [True, False])
def test_reply_lines_of_one_read_are_taken_in_order(stray_first: bool) -> None:
    # An error with id null goes to the only pending call, so order matters. Read
    # before a's reply, it finds two calls pending and is ignored (b gets its reply);
    # read after, it fails b, the only call left (b's reply then finds nobody).
    counted: list[ReadCount] = []

    def script(peer: Peer) -> None:
        reqs = {r["method"]: r for r in (peer.json_line(), peer.json_line())}
        stray = b'{"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "Parse error"}}\n'
        a = _reply(reqs["a"]["id"], "A") + b"\n"
        peer.sendall(stray + a if stray_first else a + stray)
        counted[0].wait_read(len(stray + a))  # b's reply comes in a later read
        peer.sendall(_reply(reqs["b"]["id"], "B") + b"\n")
        peer.until(b"\n")

    with FakeServer(script) as fake, _counted_client(fake.address, counted) as c:
        outcomes: dict[str, Any] = {}
        threads = [start_thread(lambda m=m: outcomes.__setitem__(m, _outcome(lambda: c.call(m)))) for m in "ab"]
        for t in threads:
            t.join(WAIT)
        assert outcomes.pop("a") == "A"
        b = outcomes.pop("b")
        if stray_first:
            assert b == "B"
        else:
            assert isinstance(b, RPCError) and b.code == -32700 and b.method == "b", b
        c.notify("bye")
    assert not fake.errors


def test_a_batch_reply_array_in_any_order() -> None:
    def script(peer: Peer) -> None:
        batch = peer.json_line()
        replies = [
            {"jsonrpc": "2.0", "id": item["id"], "result": item["params"][0] + 1}
            if item["method"] == "inc"
            else {"jsonrpc": "2.0", "id": item["id"], "error": {"code": -32601, "message": "no", "data": [1]}}
            for item in reversed(batch)
            if "id" in item
        ]
        peer.sendall(json.dumps(replies).encode())
        peer.sendall(b"\n" + _reply(99, "after") + b"\n")
        peer.until(b"\n")

    with FakeServer(script) as fake, RPCClient(*fake.address, timeout=WAIT) as c:
        with c.batch() as b:
            one, two = b.inc(1), b.inc(2)
            b.notify("note")
            missing = b.other()
        assert (one.result(), two.result()) == (2, 3)
        with pytest.raises(MethodNotFound) as info:
            missing.result()
        assert info.value.data == [1]
        c.notify("bye")
    assert not fake.errors


def test_garbage_and_stray_messages_from_the_server_are_survived() -> None:
    def script(peer: Peer) -> None:
        req = peer.json_line()
        peer.sendall(b"this is not json\n")
        peer.sendall(b'{"jsonrpc": "2.0", "method": "server_push"}\n')  # not a response
        peer.sendall(b'{"unrelated": true}\n')
        peer.sendall(_reply(12345, "for nobody") + b"\n")  # an id nobody waits for
        peer.sendall(_reply(req["id"], "ok") + b"\n")
        req = peer.json_line()
        peer.sendall(_reply(req["id"], "still ok") + b"\n")
        peer.until(b"\n")

    with FakeServer(script) as fake, RPCClient(*fake.address, timeout=WAIT) as c:
        assert c.first() == "ok"
        assert c.second() == "still ok"
        c.notify("bye")
    assert not fake.errors


def test_an_error_with_null_id_fails_the_only_pending_call() -> None:
    def script(peer: Peer) -> None:
        peer.json_line()
        peer.sendall(b'{"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "Parse error"}}\n')
        peer.until(b"\n")

    with FakeServer(script) as fake, RPCClient(*fake.address, timeout=WAIT) as c:
        with pytest.raises(RPCError) as info:
            c.anything()
        assert info.value.code == -32700 and info.value.method == "anything"
        c.notify("bye")
    assert not fake.errors


@pytest.mark.parametrize("tail", [b"", b'{"jsonrpc": "2.0", "id": 1, "res'])
def test_server_closing_mid_reply_is_connection_lost(tail: bytes) -> None:
    def script(peer: Peer) -> None:
        peer.json_line()
        peer.sendall(tail)
        peer.close()

    with FakeServer(script) as fake, RPCClient(*fake.address, timeout=WAIT) as c:
        with pytest.raises(ConnectionLost) as info:
            c.anything()
        assert info.value.method == "anything"
    assert not fake.errors


def test_sending_to_a_reset_connection_is_connection_lost() -> None:
    def script(peer: Peer) -> None:
        peer.until(b"\n")
        peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        peer.sock.close()  # RST

    with FakeServer(script) as fake, RPCClient(*fake.address, timeout=WAIT) as c:
        c.notify("hello")
        with pytest.raises(ConnectionLost):
            for _ in range(50):  # the first sends may still be buffered locally
                c.notify("x", "y" * 65536)
            c.anything()
        assert not c._connected
    assert not fake.errors


def test_a_reply_over_the_client_size_limit_loses_the_connection(address: Any) -> None:
    with RPCClient(*address, timeout=WAIT, max_message_size=1000) as c:
        assert c.echo("small") == {"args": ["small"], "kwargs": {}}
        with pytest.raises(ConnectionLost) as info:
            c.echo("x" * 5000)
        assert info.value.method == "echo"
        with pytest.raises(ConnectionLost):
            c.echo("again")


class _SlowToFill(waiter_module._Waiter):
    """A waiter whose outcome takes a while to be stored: widens a race window."""

    __slots__ = ("_error", "_value")

    @property
    def value(self) -> Any:
        return self._value

    @value.setter
    def value(self, value: Any) -> None:
        time.sleep(0.05)
        self._value = value

    @property
    def error(self) -> Any:
        return self._error

    @error.setter
    def error(self, value: Any) -> None:
        time.sleep(0.05)
        self._error = value


@pytest.mark.parametrize("ending", ["reply", "close"])
def test_a_call_never_sees_done_before_its_outcome_is_stored(
    server: RPCServer, address: Any, monkeypatch: pytest.MonkeyPatch, ending: str
) -> None:
    # Regression: a waiting caller could see done=True before the thread that read
    # its reply (or failed the connection) had stored the result/error, and then
    # returned None instead of the value or raising ConnectionLost.
    monkeypatch.setattr(link_module, "_Waiter", _SlowToFill)
    monkeypatch.setattr(reader_module, "_POLL", 0.001)  # followers re-check constantly
    release = threading.Event()
    entered = threading.Semaphore(0)

    def slow(n: int) -> int:
        entered.release()
        release.wait(WAIT)
        return n

    server.register_function(slow)
    c = RPCClient(*address)
    outcomes: dict[int, Any] = {}
    threads = [start_thread(lambda n=n: outcomes.__setitem__(n, _outcome(lambda: c.slow(n)))) for n in range(4)]
    for _ in range(4):
        assert entered.acquire(timeout=WAIT)
    if ending == "reply":
        release.set()
    else:
        c.close()
    for t in threads:
        t.join(WAIT)
    release.set()
    c.close()
    if ending == "reply":
        assert outcomes == {n: n for n in range(4)}
    else:
        assert all(isinstance(o, ConnectionLost) for o in outcomes.values()), outcomes


def test_a_reset_while_waiting_is_connection_lost() -> None:
    def script(peer: Peer) -> None:
        peer.json_line()
        peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        peer.sock.close()  # RST while the client waits for the reply

    with FakeServer(script) as fake, RPCClient(*fake.address) as c:
        with pytest.raises(ConnectionLost, match=r"connection (lost|closed)") as info:
            c.anything()
        assert info.value.method == "anything"
    assert not fake.errors


def test_close_without_connecting_is_harmless() -> None:
    c = RPCClient()
    c.close()
    c.close()
    assert not c._connected
    assert repr(c) == "<RPCClient not connected timeout=None>"


BIG = "x" * 20_000_000  # far more than the socket buffers of both ends hold


def _never_reads(done: threading.Event) -> Any:
    def script(peer: Peer) -> None:
        done.wait(WAIT)  # accept, then never read a byte

    return script


@pytest.mark.parametrize("how", ["call", "notify", "batch"])
def test_timeout_bounds_sending_to_a_server_that_stopped_reading(how: str) -> None:
    # Regression: a blocking send ignored the timeout, so one stuck server hung the
    # caller for ever although RPCClient(timeout=...) bounds every call.
    finished = threading.Event()
    with FakeServer(_never_reads(finished)) as fake, RPCClient(*fake.address, timeout=0.3) as c:
        outcome: list[Any] = []

        def send() -> None:
            if how == "call":
                outcome.append(_outcome(lambda: c.echo(BIG)))
            elif how == "notify":
                outcome.append(_outcome(lambda: c.notify("echo", BIG)))
            else:
                outcome.append(_outcome(lambda: _batch(c)))

        thread = start_thread(send)
        thread.join(WAIT)
        finished.set()
        assert not thread.is_alive(), "the send was not bounded by the timeout"
        assert len(outcome) == 1 and isinstance(outcome[0], RPCTimeout), outcome
        assert "send" in str(outcome[0])
        # README: .method is the remote method; a batch names none (.method None, "batch: " in the text, as aio's).
        assert outcome[0].method == (None if how == "batch" else "echo")
        assert str(outcome[0]).startswith("batch: could not send" if how == "batch" else "echo: could not send")
        # part of a message may be on the wire: the connection cannot be used again
        with pytest.raises(ConnectionLost):
            c.add(1, 2)


def _batch(c: RPCClient) -> None:
    with c.batch() as b:
        b.echo(BIG)


def test_a_caller_queued_behind_a_stuck_send_is_bounded_too() -> None:
    finished = threading.Event()
    with FakeServer(_never_reads(finished)) as fake, RPCClient(*fake.address) as c:
        stuck = start_thread(lambda: _outcome(lambda: c.notify("echo", BIG)))  # no timeout: blocks
        outcome: list[Any] = []
        queued = start_thread(lambda: outcome.append(_outcome(lambda: c.with_timeout(0.3).ping())))
        queued.join(WAIT)
        assert not queued.is_alive(), "a call waiting to send was not bounded by its timeout"
        assert len(outcome) == 1 and isinstance(outcome[0], (RPCTimeout, ConnectionLost)), outcome
        finished.set()
        c.close()  # unblocks the sender without a timeout
        stuck.join(WAIT)
        assert not stuck.is_alive()


class _SendGate:
    """A transport whose sends of at least ``min_size`` bytes block until ``go`` is set.

    A request is answered (its first argument's length) once it is sent.
    """

    def __init__(self, min_size: int = 0) -> None:
        self.min_size = min_size
        self.go = threading.Event()
        self.sending = threading.Event()  # a gated send has started
        self._replies: list[bytes] = []
        self._ready = threading.Condition()

    def send(self, data: bytes) -> None:
        if len(data) >= self.min_size:
            self.sending.set()
            self.go.wait(WAIT)
        request = json.loads(data)
        if "id" in request:
            with self._ready:
                self._replies.append(_reply(request["id"], len(request["params"][0])))
                self._ready.notify_all()

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        with self._ready:
            self._ready.wait_for(lambda: self._replies, WAIT)
            return self._replies.pop(0) if self._replies else b""

    def close(self) -> None:
        self.go.set()


@pytest.mark.parametrize("size", [100, link_module._EARLY_TURN + 1])
def test_only_a_small_request_holds_the_reading_turn_while_it_is_sent(size: int) -> None:
    # A caller of a small request takes the reader's turn as it registers (one lock
    # round less); a large send may block, and while it does the turn must stay free
    # for callers whose replies are arriving.
    gate = _SendGate()
    c = RPCClient(transport=gate, timeout=WAIT)
    outcome: list[Any] = []
    caller = start_thread(lambda: outcome.append(c.echo("x" * size)))
    assert gate.sending.wait(WAIT)
    link = c._link
    assert link is not None
    assert bool(link.reading) is (size <= link_module._EARLY_TURN)
    gate.go.set()
    caller.join(WAIT)
    assert outcome == [size]
    assert not link.reading and not link.pending
    c.close()


def test_kept_attribute_methods_follow_the_timeout_and_the_connection(server: RPCServer, address: Any) -> None:
    # client.name is kept on the client after its first lookup (speed); a view with
    # another timeout and a client connected again must not use a kept one.
    release = threading.Event()
    server.register_function(lambda hold: release.wait(WAIT) if hold else "quick", name="slow")
    c = RPCClient(*address, timeout=WAIT)
    try:
        assert c.slow(False) == "quick"
        assert "slow" in vars(c)  # kept
        assert c.slow(False) == "quick"
        with pytest.raises(RPCTimeout):
            c.with_timeout(0.2).slow(True)
        saved = c.slow
        release.set()
        c.close()
        c.connect(*address)
        assert c.slow(False) == "quick"  # on the new connection
        assert saved(False) == "quick"  # a method saved before the reconnect follows it
        assert c.math.add(1, 2) == 3
    finally:
        release.set()
        c.close()


def test_kept_attribute_methods_are_bounded_and_skip_private_names(address: Any) -> None:
    with RPCClient(*address, timeout=WAIT) as c:
        for i in range(200):
            assert repr(getattr(c, f"m{i}")) == f"<remote method 'm{i}'>"
        assert len(vars(c)) <= _remote.KEEP_METHODS
        assert c.echo(5) == {"args": [5], "kwargs": {}}  # still a remote call past the bound
        assert c.math.add(1, 2) == 3
        with pytest.raises(AttributeError):
            c._private  # noqa: B018 - the lookup itself must raise
        assert repr(c.a.b) == "<remote method 'a.b'>"
        with pytest.raises(AttributeError):
            c.a._b  # noqa: B018


def test_a_subclass_call_sees_attribute_calls_too(address: Any) -> None:
    seen: list[str] = []

    class Traced(RPCClient):
        def call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
            seen.append(method)
            return super().call(method, *args, **kwargs)

    with Traced(*address, timeout=WAIT) as c:
        assert c.echo(1) == {"args": [1], "kwargs": {}}
        assert c.echo(b=2) == {"args": [], "kwargs": {"b": 2}}
    assert seen == ["echo", "echo"]


class _Interrupted:
    """A follower's signal whose wait is interrupted (as by Ctrl-C)."""

    def acquire(self, timeout: float = -1) -> bool:
        raise KeyboardInterrupt

    def release(self) -> None:
        raise AssertionError("a wake-up went to a caller that stopped waiting")


def _interrupting_signal_for_wait(waiter: Any) -> Any:
    """signal_for_wait, but the call of ``interrupted`` gets an ``_Interrupted``."""
    if waiter.method == "interrupted":
        signal = waiter.signal = _Interrupted()
        return signal
    return doorbell_module.signal_for_wait(waiter)


def test_an_interrupted_follower_is_forgotten_and_never_picked_to_read(
    server: RPCServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A caller interrupted while another thread reads for it must leave: kept as a
    # waiting follower it could be picked to take over reading, and nobody would.
    monkeypatch.setattr(reader_module, "signal_for_wait", _interrupting_signal_for_wait)
    monkeypatch.setattr(reader_module, "_POLL", 60.0)  # only wake-ups can end the waits
    first, late = threading.Event(), threading.Event()
    server.register_function(lambda: first.wait(WAIT) and "first", name="first")
    server.register_function(lambda: late.wait(WAIT) and "late", name="interrupted")
    outcomes: dict[str, Any] = {}

    def run(name: str, fn: Any) -> None:
        try:
            outcomes[name] = fn()
        except BaseException as exc:  # the interruption is the point
            outcomes[name] = exc

    with serving(server) as address, RPCClient(*address, timeout=WAIT) as c:
        reader = start_thread(run, "first", c.first)
        wait_for(lambda: c._link is not None and c._link.reading, "the first caller to read")
        interrupted = start_thread(run, "interrupted", c.interrupted)
        interrupted.join(WAIT)
        assert isinstance(outcomes.get("interrupted"), KeyboardInterrupt)
        link = c._link
        assert link is not None
        assert [w.method for w in link.pending.values()] == ["first"]
        quick = start_thread(run, "quick", lambda: c.add(1, 2))
        wait_for(lambda: len(link.pending) == 2, "the quick call to wait")
        first.set()  # the reader is done and must hand reading to the quick caller
        reader.join(WAIT)
        quick.join(WAIT)
        late.set()
        assert outcomes == {"first": "first", "interrupted": outcomes["interrupted"], "quick": 3}


class _WatchedLock:
    """A send lock (``inner``) that tells when a blocking acquire starts while it is held (a wait)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.waiting = threading.Event()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self.inner.acquire(False):
            return True
        if blocking:
            self.waiting.set()
        return bool(self.inner.acquire(blocking, timeout))

    def release(self) -> None:
        self.inner.release()

    def _is_owned(self) -> bool:
        return bool(self.inner._is_owned())


@pytest.mark.parametrize("big", ["call", "notification"])
def test_a_caller_waiting_to_send_does_not_hold_the_reading_turn(big: str) -> None:
    # Regression (a7a2f56): a small call took the reader's turn and then waited for
    # the send lock held by a large send; replies went unread, and a server blocked
    # writing them never read the large send: a hang.
    gate = _SendGate(min_size=1024)
    c = RPCClient(transport=gate, timeout=WAIT)
    outcomes: dict[str, Any] = {}
    size = link_module._EARLY_TURN + 1000  # too large to take the turn early
    if big == "call":
        sender = start_thread(lambda: outcomes.update(big=c.echo("x" * size)))
    else:
        sender = start_thread(lambda: outcomes.update(big=c.notify("echo", "x" * size)))
    assert gate.sending.wait(WAIT)
    link = c._link
    assert link is not None
    lock = link.send_lock = _WatchedLock(link.send_lock)  # type: ignore[assignment]
    small = start_thread(lambda: outcomes.update(small=c.echo("y")))
    wait_for(lambda: len(link.pending) == (2 if big == "call" else 1), "the small call to register")
    if big == "call":
        # The large call's thread claimed the outbox (tests/test_client_outbox.py): the
        # small request is left there for it to write, and its caller, sending nothing,
        # is free to read meanwhile (and does: nobody else reads).
        assert [waiter.method for waiter, _ in link.outbox] == ["echo"]
        wait_for(lambda: link.reading == small.ident, "the small caller to read")
    else:
        # A notification's sender claims no outbox: the small call waits for the send lock.
        assert lock.waiting.wait(WAIT), "the small call never waited for the send lock"
        assert not link.outbox
        assert not link.reading, "a caller waiting for the send lock holds the reading turn"
    assert small.is_alive()
    gate.go.set()
    sender.join(WAIT)
    small.join(WAIT)
    assert outcomes == {"big": size if big == "call" else None, "small": 1}
    assert not link.reading and not link.pending
    c.close()


class _InterruptedRead:
    """A transport whose first read is interrupted (as by Ctrl-C); later reads answer."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.interrupted = False

    def send(self, data: bytes) -> None:
        self.requests.append(json.loads(data))

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        if not self.interrupted:
            self.interrupted = True
            raise KeyboardInterrupt
        last = self.requests[-1]
        members = last if isinstance(last, list) else [last]
        replies = [{"jsonrpc": "2.0", "id": m["id"], "result": m["params"][0]} for m in members if "id" in m]
        return json.dumps(replies if isinstance(last, list) else replies[0]).encode() + b"\n"

    def close(self) -> None:
        pass


@pytest.mark.parametrize("kind", ["call", "batch"])
def test_a_caller_interrupted_while_reading_leaves_no_call_pending(kind: str) -> None:
    # Left pending, an interrupted call kept an error reply with id null from being
    # matched to the one call really outstanding.
    transport = _InterruptedRead()
    c = RPCClient(transport=transport, timeout=WAIT)
    members: list[BatchResult] = []
    with pytest.raises(KeyboardInterrupt):
        if kind == "call":
            c.echo(1)
        else:
            with c.batch() as b:
                members += [b.echo(1), b.echo(2)]
    for member in members:  # an unanswered member raises; it never passes for a None result
        with pytest.raises(RPCError, match="echo: interrupted before its reply came"):
            member.result()
    link = c._link
    assert link is not None
    assert not link.pending and not link.reading
    assert c.echo(3) == 3  # the client goes on
    c.close()


# -- a server that answers and closes while a request is still going out ---------


def test_a_refused_large_request_raises_the_servers_answer_not_a_broken_pipe() -> None:
    # The server answers "message too large" and closes after reading 100 kB of a
    # 20 MB request; the rest of the send fails. The answer is already in the
    # socket: the caller gets it (as with a small request), not ConnectionLost.
    s = RPCServer(max_message_size=100_000)
    s.register_function(echo)
    with serving(s) as address, RPCClient(*address, timeout=WAIT) as c:
        with pytest.raises(InvalidRequest, match="message too large"):
            c.echo("x" * 20_000_000)
        with pytest.raises(ConnectionLost):
            c.echo("small")


def test_a_refused_large_notification_says_what_the_server_said() -> None:
    s = RPCServer(max_message_size=100_000)
    s.register_function(echo)
    said = r"while sending: .*\(the server said: .*message too large"
    with serving(s) as address, RPCClient(*address, timeout=WAIT) as c, pytest.raises(ConnectionLost, match=said):
        c.notify("echo", "x" * 20_000_000)


def test_a_large_request_to_a_full_server_gets_too_many_connections() -> None:
    s = RPCServer(max_connections=1)
    s.register_function(echo)
    with serving(s) as address, RPCClient(*address, timeout=WAIT) as first:
        assert first.echo(1) == {"args": [1], "kwargs": {}}
        wait_for(lambda: s.connection_count == 1, "the first connection")
        with RPCClient(*address, timeout=WAIT) as second, pytest.raises(ServerError, match="too many connections"):
            second.echo("x" * 20_000_000)
        assert first.echo(2) == {"args": [2], "kwargs": {}}


def test_a_small_call_behind_a_pending_one_does_not_take_the_turn_early(monkeypatch: pytest.MonkeyPatch) -> None:
    # The early reading turn is only for a caller that is alone. Here call 1 (a large
    # request, so no early turn) is sent and its thread is held just before it starts
    # waiting; the sequential server is blocked writing call 1's 4 MB reply, and with
    # small socket buffers call 2's send blocks. Had call 2 taken the turn early it
    # would hold it while blocked in send: call 1's thread could not read, the server
    # could not finish writing, and both would hang until their timeout.
    writing = threading.Event()

    def script(peer: Peer) -> None:
        first = peer.json_line()
        writing.set()
        peer.sendall(_reply(first["id"], "r" * 4_000_000) + b"\n")
        second = peer.json_line()
        peer.sendall(_reply(second["id"], len(second["params"][0])) + b"\n")

    held = threading.Event()
    original_wait = link_module._Link.wait

    def held_wait(self: Any, waiter: Any, deadline: float | None, timeout: float | None) -> None:
        if threading.current_thread().name == "call-1":
            assert held.wait(WAIT)
        original_wait(self, waiter, deadline, timeout)

    monkeypatch.setattr(link_module._Link, "wait", held_wait)
    original_send_within = SocketTransport.send_within

    def send_in_pieces(self: SocketTransport, data: bytes, timeout: float) -> None:
        # Call 2's request goes to the kernel 1 KiB at a time: in one piece the kernel
        # may take the whole 15 KB into a single buffer whatever SO_SNDBUF says (a
        # large first write on an empty queue), and then call 2 never blocks (seen
        # once in a loaded full-suite run). Small pieces fill the send buffer and block.
        if threading.current_thread().name != "call-2":
            original_send_within(self, data, timeout)
            return
        deadline = time.monotonic() + timeout
        for start in range(0, len(data), 1024):
            original_send_within(self, data[start : start + 1024], deadline - time.monotonic())

    monkeypatch.setattr(SocketTransport, "send_within", send_in_pieces)
    with FakeServer(script) as fake:
        fake._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)  # inherited by the accepted socket
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)  # the kernel's minimum
        sock.connect(fake.address)
        c = RPCClient(transport=SocketTransport(sock), timeout=WAIT)
        results: dict[str, Any] = {}
        first = threading.Thread(target=lambda: results.update(one=c.echo("x" * 20_000)), name="call-1", daemon=True)
        first.start()
        assert writing.wait(WAIT)
        link = c._link
        assert link is not None
        # Call 1's send (and its claim on the outbox) is over: call 2 sends itself, rather
        # than leaving its request for call 1's thread to write (tests/test_client_outbox.py).
        wait_for(lambda: not link.sending and not _send_lock_held(link), "call 1's send to end")
        second = threading.Thread(target=lambda: results.update(two=c.echo("y" * 15_000)), name="call-2", daemon=True)
        second.start()
        wait_for(lambda: len(link.pending) == 2 and _send_lock_held(link), "call 2 to be sending")
        assert not link.reading  # call 2 is sending without holding the turn
        held.set()
        first.join(WAIT)
        second.join(WAIT)
        assert results == {"one": "r" * 4_000_000, "two": 15_000}
        c.close()


def test_a_connection_lost_later_does_not_quote_an_old_server_error() -> None:
    # An error with id null that no call could take (two were pending) is quoted
    # only while it is the last thing the server sent: here replies followed it.
    s = RPCServer(max_depth=3)
    release = threading.Event()
    s.register_function(lambda: release.wait(WAIT), name="hold")
    s.register_function(echo)
    address = s.start("127.0.0.1", 0)
    try:
        c = RPCClient(*address, timeout=WAIT)
        holder = start_thread(c.hold)
        wait_for(lambda: c._link is not None and len(c._link.pending) == 1, "the held call")
        with pytest.raises(RPCTimeout):  # its -32600 (id null, too deep) cannot be matched
            c.with_timeout(0.5).echo([[[[1]]]])
        release.set()
        holder.join(WAIT)
        assert c.echo(1) == {"args": [1], "kwargs": {}}
    finally:
        s.shutdown()
    with pytest.raises(ConnectionLost) as lost:
        c.echo(2)
    assert "the server said" not in str(lost.value)
    c.close()
