"""RPCServer on real sockets: registration, lifecycle, limits, concurrency, Unix and TLS."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import re
import select
import socket
import ssl
import threading
import time
from typing import Any

import pytest
from _driver_helpers import (
    WAIT,
    LeakCheck,
    LimitWatch,
    Peer,
    ReadCount,
    in_time_rounds,
    ipv6_loopback,
    raw_connect,
    request,
    sent_within,
    serving,
    start_thread,
    tls_contexts,
    wait_for,
)

import jsonrpc_mini._listener as listener_module
import jsonrpc_mini._refuse as refuse_module
import jsonrpc_mini._server as server_module
import jsonrpc_mini._watch as watch_module
from jsonrpc_mini import (
    ConnectionLost,
    InternalError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    RemoteError,
    RPCClient,
    RPCError,
    RPCServer,
    ServerError,
    aio,
)
from jsonrpc_mini.testing import loopback

pytestmark = pytest.mark.timeout(60)


def _served_pair(server: RPCServer) -> tuple[Peer, ReadCount]:
    """A socketpair's end served by ``server`` (its shutdown closes it) and the other, ours."""
    ours, theirs = socket.socketpair()
    ours.settimeout(WAIT)
    transport = ReadCount(theirs)
    server.serve_connection(transport)
    return Peer(ours), transport


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


def add(a: int, b: int) -> int:
    return a + b


# -- registration -------------------------------------------------------------


class Calculator:
    def __init__(self) -> None:
        self.memory = Memory()

    def mul(self, a: int, b: int) -> int:
        return a * b

    def _hidden(self) -> str:
        return "private"

    def __secret__(self) -> str:
        return "dunder"

    shared = 7  # not callable: not registered


class Memory:
    def recall(self) -> int:
        return 42


def test_every_way_of_registering() -> None:
    s = RPCServer()
    assert s.register_function(add) is add
    s.register_function(lambda x: -x, name="neg")

    @s.register
    def sub(a: int, b: int) -> int:
        return a - b

    @s.register(name="math.pow")
    def power(a: int, b: int) -> int:
        return int(a**b)

    names = s.register_instance(Calculator(), prefix="calc.")
    assert sorted(names) == ["calc.mul"]
    assert sub(5, 2) == 3 and power(2, 3) == 8  # the decorators return the function

    with serving(s) as address, RPCClient(*address, timeout=WAIT) as c:
        assert c.add(1, 2) == 3
        assert c.neg(4) == -4
        assert c.sub(5, 2) == 3
        assert c.call("math.pow", 2, 10) == 1024
        assert c.math.pow(2, 4) == 16  # dotted attribute access builds "math.pow"
        assert c.call("calc.mul", 6, 7) == 42
        for hidden in (
            "power",
            "calc._hidden",
            "calc.__secret__",
            "calc.__init__",
            "calc.memory.recall",
            "calc.shared",
        ):
            with pytest.raises(MethodNotFound) as info:
                c.call(hidden)
            assert info.value.method == hidden


def test_register_instance_without_prefix_and_bad_registrations() -> None:
    s = RPCServer()
    assert s.register_instance(Calculator()) == ["mul"]
    with pytest.raises(TypeError):
        s.register_function(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name="):
        s.register_function(lambda: None)
    with pytest.raises(ValueError):
        s.register_function(add, name="")
    assert set(s.methods) == {"mul"}


def test_invalid_params_is_decided_before_the_call() -> None:
    calls = []

    def strict(a: int) -> int:
        calls.append(a)
        raise TypeError("raised inside the handler")

    s = RPCServer()
    s.register_function(strict)
    with serving(s) as address, RPCClient(*address, timeout=WAIT) as c:
        with pytest.raises(InvalidParams):
            c.strict(1, 2)
        assert calls == []
        with pytest.raises(InternalError):
            c.strict(1)  # a TypeError inside the handler is -32603, not -32602
        assert calls == [1]


# -- lifecycle ----------------------------------------------------------------


def test_start_returns_the_bound_address_and_shutdown_is_idempotent() -> None:
    s = RPCServer()
    s.register_function(add)
    host, port = s.start("127.0.0.1", 0)
    try:
        assert host == "127.0.0.1" and port > 0
        assert s.address == (host, port)
        with pytest.raises(RuntimeError, match="already listening"):
            s.start("127.0.0.1", 0)
        with RPCClient(host, port, timeout=WAIT) as c:
            assert c.add(2, 3) == 5
    finally:
        s.shutdown()
    s.shutdown()
    s.shutdown()
    assert s.address is None
    with pytest.raises(ConnectionLost):
        RPCClient(host, port, timeout=WAIT)


def test_a_failed_bind_leaves_the_server_usable() -> None:
    s = RPCServer()
    s.register_function(add)
    with serving(s) as (host, port):
        other = RPCServer()
        other.register_function(add)
        with pytest.raises(OSError):
            other.start(host, port)  # the port is taken
        assert other.address is None
        with serving(other) as address, RPCClient(*address, timeout=WAIT) as c:  # and it can still start
            assert c.add(1, 2) == 3


def test_loop_and_start_default_to_loopback_port_5000() -> None:
    for method in (RPCServer.loop, RPCServer.start):
        params = inspect.signature(method).parameters
        assert params["host"].default == "127.0.0.1"
        assert params["port"].default == 5000
    assert inspect.signature(RPCServer).parameters["max_message_size"].default == 16 * 2**20


def test_loop_blocks_until_shutdown_from_a_handler() -> None:
    s = RPCServer()
    s.register_function(add)

    @s.register
    def stop() -> str:
        s.shutdown()  # shutting down from inside a handler must not deadlock
        return "stopping"

    thread = start_thread(s.loop, "127.0.0.1", 0)
    wait_for(lambda: s.address is not None, "the server to listen")
    with RPCClient(*s.address, timeout=WAIT) as c:  # type: ignore[misc]
        assert c.add(1, 1) == 2
        assert thread.is_alive()
        assert c.stop() == "stopping"
    thread.join(WAIT)
    assert not thread.is_alive()


def test_a_handler_calling_shutdown_leaves_its_connection_open_for_a_call_past_the_grace() -> None:
    # README: shutdown() called from a handler closes that connection once its calls
    # are answered. stop runs with the reading turn; slow can only be read once the
    # read watcher has counted stop and passed the turn on, so slow then runs with the
    # turn lent, not counted. Past the grace, stop's call ends first (every counted
    # call ended): the connection must stay open for slow's reply.
    stop_entered, slow_started, let_slow_go = threading.Event(), threading.Event(), threading.Event()
    s = RPCServer(shutdown_grace=0.05)  # (only shortens the wait: slow outlives it anyway)

    @s.register
    def slow() -> str:
        slow_started.set()
        let_slow_go.wait(WAIT)
        return "slow"

    @s.register
    def stop() -> str:
        stop_entered.set()
        assert slow_started.wait(WAIT)
        s.shutdown()
        return "stopping"

    address = s.start("127.0.0.1", 0)
    try:
        with raw_connect(address) as peer:
            peer.sendall(request("stop", id_=1))
            assert stop_entered.wait(WAIT)
            peer.sendall(request("slow", id_=2))
            assert peer.json_line() == {"jsonrpc": "2.0", "id": 1, "result": "stopping"}
            (session,) = s._sessions
            wait_for(lambda: session._busy == 0, "stop's call to end")
            let_slow_go.set()
            assert peer.json_line() == {"jsonrpc": "2.0", "id": 2, "result": "slow"}
            assert peer.to_eof() == b""
    finally:
        let_slow_go.set()
        s.shutdown()


def test_shutdown_waits_for_calls_in_flight() -> None:
    entered, release = threading.Event(), threading.Event()
    s = RPCServer()

    @s.register
    def slow(x: int) -> int:
        entered.set()
        release.wait(WAIT)
        return x * 2

    results: list[Any] = []
    address = s.start("127.0.0.1", 0)
    c = RPCClient(*address, timeout=WAIT)
    caller = start_thread(lambda: results.append(c.slow(21)))
    assert entered.wait(WAIT)
    stopper = start_thread(s.shutdown)
    stopper.join(0.3)
    assert stopper.is_alive(), "shutdown() returned while a call was still running"
    # no new connections while shutting down
    wait_for(lambda: s.address is None, "the listener to close")
    with pytest.raises(ConnectionLost):
        RPCClient(*address, timeout=WAIT)
    release.set()
    caller.join(WAIT)
    stopper.join(WAIT)
    assert results == [42], "the call in flight did not get its reply"
    assert not stopper.is_alive()
    c.close()


def test_requests_arriving_during_shutdown_are_refused_politely() -> None:
    entered, release = threading.Event(), threading.Event()
    s = RPCServer()
    s.register_function(add)

    @s.register
    def slow() -> str:
        entered.set()
        release.wait(WAIT)
        return "done"

    with serving(s) as address:
        sock = raw_connect(address)
        sock.sendall(request("slow", id_=1))
        assert entered.wait(WAIT)
        stopper = start_thread(s.shutdown)
        wait_for(lambda: s.address is None, "the listener to close")
        sock.sendall(request("add", [1, 2], id_=2))
        reply = sock.json_line()
        assert reply["id"] == 2 and reply["error"]["code"] == -32000
        assert "shutting down" in reply["error"]["message"]
        release.set()
        assert sock.json_line() == {"jsonrpc": "2.0", "id": 1, "result": "done"}
        stopper.join(WAIT)
        sock.close()


def test_shutdown_refuses_new_requests_before_the_listener_has_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    # Stopping the listener and the TLS refusals can take seconds; a request arriving
    # meanwhile on a connection already open is refused, not run, and so is one on a
    # connection that the test kit hands over while the shutdown runs.
    in_stop, resume = threading.Event(), threading.Event()
    s = RPCServer()
    s.register_function(add)
    close_refusals = s._refusals.close

    def slow_close(wait: float) -> None:
        in_stop.set()
        resume.wait(WAIT)
        close_refusals(wait)

    monkeypatch.setattr(s._refusals, "close", slow_close)
    with serving(s) as address:
        sock = raw_connect(address)
        sock.sendall(request("add", [1, 2], id_=1))
        assert sock.json_line()["result"] == 3
        stopper = start_thread(s.shutdown)
        try:
            assert in_stop.wait(WAIT)
            sock.sendall(request("add", [1, 2], id_=2))
            reply = sock.json_line()
            assert reply["id"] == 2 and "shutting down" in reply["error"]["message"]
            with loopback(s, timeout=WAIT) as c, pytest.raises(ServerError, match="shutting down"):
                c.add(3, 4)
        finally:
            resume.set()
            stopper.join(WAIT)
        sock.close()
    assert not stopper.is_alive()


def test_start_again_after_shutdown() -> None:
    s = RPCServer()
    s.register_function(add)
    for round_ in range(3):
        with serving(s) as address, RPCClient(*address, timeout=WAIT) as c:
            assert c.add(round_, 1) == round_ + 1
    # the same port again at once, although its old connections are in TIME_WAIT
    host, port = s.start("127.0.0.1", 0)
    try:
        with RPCClient(host, port, timeout=WAIT) as c:
            assert c.add(1, 1) == 2
    finally:
        s.shutdown()
    assert s.start(host, port) == (host, port)
    try:
        with RPCClient(host, port, timeout=WAIT) as c:
            assert c.add(2, 2) == 4
    finally:
        s.shutdown()


def test_context_manager_shuts_down() -> None:
    with RPCServer() as s:
        s.register_function(add)
        address = s.start("127.0.0.1", 0)
        c = RPCClient(*address, timeout=WAIT)
        assert c.add(1, 2) == 3
    assert s.address is None
    with pytest.raises(ConnectionLost):
        c.add(1, 2)
    c.close()


@pytest.mark.parametrize("slow", ["connection", "accept", "watcher"])
def test_no_thread_of_the_server_is_alive_when_shutdown_returns(slow: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # One kind of thread is made slow in its last moments (after the event it sets on
    # its way out): shutdown() must wait for the threads themselves.
    def slowly(original: Any) -> Any:
        def wrapper(*args: Any) -> None:
            original(*args)
            time.sleep(0.5)

        return wrapper

    target = {
        "connection": (server_module.RPCServer, "_session_done"),
        "accept": (listener_module.Listener, "close"),
        "watcher": (watch_module._Loop, "_run"),
    }[slow]
    monkeypatch.setattr(*target, slowly(getattr(*target)))
    before = set(threading.enumerate())  # (only this server's threads count: not an earlier test's)
    s = RPCServer()
    s.register_function(add)
    host, port = s.start("127.0.0.1", 0)  # type: ignore[misc]
    c = RPCClient(host, port, timeout=WAIT)
    assert c.add(1, 2) == 3
    s.shutdown()
    alive = [t.name for t in set(threading.enumerate()) - before if t.name.startswith("jsonrpc_mini")]
    c.close()
    assert not alive, f"threads still running after shutdown(): {alive}"


@pytest.mark.parametrize("first_call", [False, True])
def test_shutdown_answers_requests_received_behind_a_running_call(
    monkeypatch: pytest.MonkeyPatch, first_call: bool
) -> None:
    # Requests sent together run one after another; between two of them no call is
    # running for a moment (made long here): shutdown() must not close the
    # connection then, and each request still gets its answer. The first read of a
    # connection goes to the framer (framing not known yet); later ones holding
    # whole lines are decoded together and queued (Session._queued).
    release, started = threading.Event(), threading.Event()
    s = RPCServer()

    @s.register
    def slow() -> str:
        started.set()
        assert release.wait(WAIT)
        return "done"

    s.register_function(add)
    original = server_module.Session._read_event

    def slow_to_take_the_next(self: Any, *args: Any) -> Any:
        if release.is_set():
            time.sleep(0.3)
        return original(self, *args)

    monkeypatch.setattr(server_module.Session, "_read_event", slow_to_take_the_next)
    monkeypatch.setattr(watch_module, "_GRACE", 30.0)  # no other thread takes the requests meanwhile
    host, port = s.start("127.0.0.1", 0)  # type: ignore[misc]
    sock = raw_connect((host, port))
    if first_call:
        sock.sendall(request("add", [1, 1], id_="first"))
        assert sock.json_line() == {"jsonrpc": "2.0", "id": "first", "result": 2}
    sock.sendall(request("slow", id_="s") + b"".join(request("add", [i, 1], id_=i) for i in range(3)))
    assert started.wait(WAIT)
    stopper = threading.Thread(target=s.shutdown)
    stopper.start()
    # shutdown() has begun: new requests get -32000 (a fixed 0.1 s assumed it had by then).
    wait_for(lambda: s._shutting_down > 0 and all(x.draining for x in list(s._sessions)), "shutdown() to drain")
    release.set()
    stopper.join(WAIT)
    replies = [sock.json_line() for _ in range(4)]
    sock.close()
    assert replies[0] == {"jsonrpc": "2.0", "id": "s", "result": "done"}
    assert [(r["id"], r["error"]["code"]) for r in replies[1:]] == [(0, -32000), (1, -32000), (2, -32000)]


def test_a_read_of_many_request_lines_then_a_batch_and_a_cut_line() -> None:
    # After the first call (framing known), a read holding whole request lines is
    # decoded in one step and its calls queued; what follows (a batch, an invalid
    # request, a line cut by the end of the read) goes to the framer, in order.
    noted: list[int] = []
    s = RPCServer()
    s.register_function(add)
    s.register_function(noted.append, "note")
    with serving(s):
        sock, transport = _served_pair(s)
        first = request("add", [0, 0], id_=0)
        sock.sendall(first)
        assert sock.json_line()["result"] == 0
        burst = b"".join(request("add", [i, 1], id_=i) for i in range(1, 4))
        notification = json.dumps({"jsonrpc": "2.0", "method": "note", "params": [8]}).encode() + b"\n"
        batch = json.dumps([{"jsonrpc": "2.0", "method": "add", "params": [5, 5], "id": 5}]).encode() + b"\n"
        cut = request("add", [6, 1], id_=6)
        head = burst + notification + batch + b'{"id": 9}\n' + cut[:20]
        sock.sendall(head)
        transport.wait_read(len(first) + len(head))  # the read ends inside the cut line
        sock.sendall(cut[20:])
        replies = [sock.json_line() for _ in range(6)]
        sock.close()
    singles = {r["id"]: r.get("result", r.get("error", {}).get("code")) for r in replies if isinstance(r, dict)}
    batches = [r for r in replies if isinstance(r, list)]
    assert singles == {1: 2, 2: 3, 3: 4, 9: -32600, 6: 7}
    assert batches == [[{"jsonrpc": "2.0", "id": 5, "result": 10}]]
    assert noted == [8]


def test_a_call_sent_after_a_slow_batch_is_answered_while_the_batch_runs() -> None:
    # The batch's members run one after another on one thread (README, "How calls
    # run"), but the connection is read on while they do. The slow member ends only
    # after the later call has its answer: run after the batch, it would time out.
    s = RPCServer()
    answered = threading.Event()
    s.register_function(lambda: answered.wait(WAIT), name="slow")
    s.register_function(add)
    with serving(s) as address, RPCClient(*address, timeout=WAIT) as c:
        results: list[Any] = []

        def batch() -> None:
            with c.batch() as b:
                first, second = b.slow(), b.add(1, 2)
            results.extend([first.result(), second.result()])

        sender = start_thread(batch)
        # (The sync client's batch is pending as one entry: see _client_waiter._BatchWaiter.)
        wait_for(lambda: s.connection_count == 1 and c._link is not None and len(c._link.pending) == 1, "the batch")
        assert c.with_timeout(WAIT / 2).add(2, 3) == 5
        answered.set()
        sender.join(WAIT)
        assert results == [True, 3]


def test_shutdown_of_a_server_never_started_is_harmless() -> None:
    s = RPCServer()
    s.shutdown()
    with s:
        pass


def test_shutdown_waits_for_a_connection_thread_that_is_still_ending(monkeypatch: pytest.MonkeyPatch) -> None:
    # A connection that ended on its own leaves the server's list before its thread
    # returns. shutdown() must still wait for that thread: a test checking for
    # leftover threads right after it (the test kit's fixtures do) saw one alive.
    ending = threading.Event()
    original = server_module.RPCServer._session_done

    def slow_done(self: RPCServer, session: Any) -> None:
        original(self, session)
        ending.set()
        time.sleep(0.3)  # the thread is still alive for a while after leaving the list

    monkeypatch.setattr(server_module.RPCServer, "_session_done", slow_done)
    server = RPCServer()
    server.register_function(add)
    with serving(server) as (host, port):
        with RPCClient(host, port, timeout=WAIT) as client:
            assert client.add(1, 2) == 3
        assert ending.wait(WAIT)
        assert server.connection_count == 0
    assert not [t.name for t in threading.enumerate() if t.name.startswith("jsonrpc_mini-conn")]


def test_invalid_options_are_rejected() -> None:
    for bad in ({"max_message_size": 0}, {"idle_timeout": 0}, {"read_timeout": -1.0}, {"framing": "xml"}):
        with pytest.raises(ValueError):
            RPCServer(**bad)


# -- limits -------------------------------------------------------------------


def test_max_message_size_answers_once_closes_and_keeps_serving_others() -> None:
    s = RPCServer(max_message_size=1000)
    s.register_function(add)

    @s.register
    def echo(x: Any) -> Any:
        return x

    with serving(s) as address:
        bystander = RPCClient(*address, timeout=WAIT)
        assert bystander.add(1, 1) == 2
        sock = raw_connect(address)
        sock.sendall(request("echo", ["x" * 5000]))
        data = sock.to_eof()
        sock.close()
        reply = json.loads(data)  # exactly one value, then the connection closes
        assert reply["id"] is None
        assert reply["error"]["code"] == -32600
        assert "message too large" in reply["error"]["message"]

        with RPCClient(*address, timeout=WAIT) as big:
            with pytest.raises(InvalidRequest, match="message too large"):
                big.echo("y" * 5000)
            with pytest.raises(ConnectionLost):
                big.add(1, 2)

        assert bystander.add(2, 2) == 4  # an older connection is unaffected
        with RPCClient(*address, timeout=WAIT) as fresh:  # and new ones are served
            assert fresh.echo("small") == "small"
        bystander.close()


def test_max_connections_refuses_politely_and_recovers() -> None:
    s = RPCServer(max_connections=2)
    s.register_function(add)
    with serving(s) as address:
        first = RPCClient(*address, timeout=WAIT)
        second = RPCClient(*address, timeout=WAIT)
        assert first.add(1, 0) == 1 and second.add(2, 0) == 2
        wait_for(lambda: s.connection_count == 2, "two connections")
        extra = raw_connect(address)
        refusal = json.loads(extra.to_eof())
        extra.close()
        assert refusal["id"] is None and refusal["error"]["code"] == -32000
        assert "too many connections" in refusal["error"]["message"]
        assert first.add(3, 0) == 3  # the others keep working
        first.close()
        wait_for(lambda: s.connection_count == 1, "the closed connection to be released")
        with RPCClient(*address, timeout=WAIT) as third:
            assert third.add(4, 0) == 4
        second.close()


def test_idle_timeout_closes_idle_connections_only() -> None:
    rounds: list[tuple[threading.Event, threading.Event]] = []  # (entered, release) of each round
    s = RPCServer(idle_timeout=0.2)

    @s.register
    def slow() -> str:
        entered, release = rounds[-1]
        entered.set()
        release.wait(WAIT)
        return "finished"

    with serving(s) as address:
        idle = raw_connect(address)
        assert idle.to_eof() == b""  # closed by the server, bounded by the socket timeout
        idle.close()

        in_time_rounds(lambda: _busy_outlasts_idle_timeout(address, rounds), "idle_timeout")


def _busy_outlasts_idle_timeout(address: Any, rounds: list[tuple[threading.Event, threading.Event]]) -> bool:
    """A call outlasts idle_timeout (0.2 s), answered; then idle, closed. False: the round stalled."""
    entered, release = threading.Event(), threading.Event()
    rounds.append((entered, release))
    since = time.monotonic()  # the server's idle time starts after this
    with raw_connect(address) as busy:
        if not sent_within(busy.sendall, request("slow"), since, 0.2):
            release.set()  # this thread stalled past idle_timeout before the call was sent
            return False
        assert entered.wait(WAIT)
        time.sleep(1.0)  # five idle timeouts pass while the call runs
        release.set()
        assert busy.json_line() == {"jsonrpc": "2.0", "id": 1, "result": "finished"}
        assert busy.to_eof() == b""  # idle again afterwards: closed
    return True


def test_read_timeout_closes_a_connection_stuck_mid_message() -> None:
    s = RPCServer(read_timeout=0.2, idle_timeout=None)
    s.register_function(add)
    with serving(s) as address:
        sock = raw_connect(address)
        sock.sendall(b'{"jsonrpc": "2.0", "method": "add", ')
        assert sock.to_eof() == b""
        sock.close()


# -- concurrency --------------------------------------------------------------


def test_slow_call_never_delays_a_fast_one_on_the_same_connection() -> None:
    entered, release = threading.Event(), threading.Event()
    s = RPCServer()
    s.register_function(add)

    @s.register
    def slow() -> str:
        entered.set()
        assert release.wait(WAIT)
        return "slow done"

    with serving(s) as address:
        # client view: the fast call returns while the slow one is still blocked
        c = RPCClient(*address, timeout=WAIT)
        results: list[Any] = []
        caller = start_thread(lambda: results.append(c.slow()))
        assert entered.wait(WAIT)
        assert c.add(1, 2) == 3
        assert results == []
        release.set()
        caller.join(WAIT)
        assert results == ["slow done"]

        # wire view: both requests in one packet, the fast reply comes out first
        entered.clear()
        release.clear()
        sock = raw_connect(address)
        sock.sendall(request("slow", id_="s") + request("add", [2, 2], id_="f"))
        assert sock.json_line() == {"jsonrpc": "2.0", "id": "f", "result": 4}
        release.set()
        assert sock.json_line() == {"jsonrpc": "2.0", "id": "s", "result": "slow done"}
        sock.close()
        c.close()


def test_max_concurrent_calls_applies_back_pressure(monkeypatch: pytest.MonkeyPatch) -> None:
    limit = LimitWatch(monkeypatch)
    running = threading.Semaphore(0)
    release = threading.Event()
    started: list[int] = []
    s = RPCServer(max_concurrent_calls=2)

    @s.register
    def slow(n: int) -> int:
        started.append(n)
        running.release()
        release.wait(WAIT)
        return n

    with serving(s) as address:
        sock = raw_connect(address)
        sock.sendall(b"".join(request("slow", [n], id_=n) for n in range(3)))
        assert running.acquire(timeout=WAIT) and running.acquire(timeout=WAIT)
        limit.stopped(2)  # (not a sleep: without the limit, a thread is promoted for the third)
        assert len(started) == 2, "a third call started beyond max_concurrent_calls"
        release.set()
        replies = {sock.json_line()["id"] for _ in range(3)}
        assert replies == {0, 1, 2}
        sock.close()


def test_notification_runs_although_the_client_closes_at_once() -> None:
    ran = threading.Event()
    s = RPCServer()

    @s.register
    def log(text: str) -> None:
        time.sleep(0.05)  # still running when the connection is gone
        if text == "bye":
            ran.set()

    with serving(s) as address:
        for _ in range(3):
            ran.clear()
            sock = raw_connect(address)
            sock.sendall(b'{"jsonrpc": "2.0", "method": "log", "params": ["bye"]}\n')
            sock.close()
            assert ran.wait(WAIT), "the notification was dropped when its sender closed"


def test_replies_still_reach_a_half_closed_client() -> None:
    release = threading.Event()
    s = RPCServer()
    s.register_function(add)

    @s.register
    def slow() -> str:
        release.wait(WAIT)
        return "late"

    with serving(s) as address:
        sock = raw_connect(address)
        sock.sendall(request("slow", id_=1) + request("add", [1, 2], id_=2))
        sock.shutdown(socket.SHUT_WR)
        assert sock.json_line() == {"jsonrpc": "2.0", "id": 2, "result": 3}
        release.set()
        assert sock.json_line() == {"jsonrpc": "2.0", "id": 1, "result": "late"}
        assert sock.to_eof() == b""
        sock.close()


# -- framing on the wire -------------------------------------------------------


def _content_length(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


@pytest.mark.parametrize("split", [1, 5, 16, "header"])
def test_content_length_is_detected_per_connection(split: int | str) -> None:
    s = RPCServer()
    s.register_function(add)
    body = request("add", [20, 22], id_=7).rstrip(b"\n")
    framed = _content_length(body)
    cut = framed.index(b"\r\n\r\n") + 4 if split == "header" else int(split)
    with serving(s) as address:
        newline_peer = raw_connect(address)
        sock, transport = _served_pair(s)
        sock.sendall(framed[:cut])
        transport.wait_read(cut)  # the server sees the first part alone
        sock.sendall(framed[cut:])
        header = sock.until(b"\r\n\r\n")
        assert header.lower().startswith(b"content-length:")
        length = int(header.split(b":")[1].strip())
        assert json.loads(sock.exactly(length)) == {"jsonrpc": "2.0", "id": 7, "result": 42}
        # the same server still speaks newline framing to another connection
        newline_peer.sendall(request("add", [1, 1]))
        assert newline_peer.json_line() == {"jsonrpc": "2.0", "id": 1, "result": 2}
        sock.close()
        newline_peer.close()


def test_a_value_without_trailing_newline_is_answered() -> None:
    s = RPCServer()
    s.register_function(add)
    with serving(s) as address:
        sock = raw_connect(address)
        sock.sendall(b'{"jsonrpc":"2.0","method":"add","params":[1,2],"id":0}')
        assert sock.json_line() == {"jsonrpc": "2.0", "id": 0, "result": 3}
        sock.sendall(b'{"jsonrpc":"2.0","method":"add","params":[3,4],"id":"u"}')
        assert sock.json_line() == {"jsonrpc": "2.0", "id": "u", "result": 7}
        sock.close()


def test_parse_error_then_the_connection_keeps_working() -> None:
    s = RPCServer()
    s.register_function(add)
    with serving(s) as address:
        sock = raw_connect(address)
        sock.sendall(b'{"broken": ]\n' + request("add", [1, 2], id_=3))
        error = sock.json_line()
        assert error["id"] is None and error["error"]["code"] == -32700
        assert sock.json_line() == {"jsonrpc": "2.0", "id": 3, "result": 3}
        sock.close()


def test_a_batch_on_the_wire() -> None:
    ran = threading.Event()
    s = RPCServer()
    s.register_function(add)
    s.register_function(ran.set, name="mark")
    with serving(s) as address:
        sock = raw_connect(address)
        batch = [
            {"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": 1},
            {"jsonrpc": "2.0", "method": "mark"},
            {"jsonrpc": "2.0", "method": "nope", "id": 2},
        ]
        sock.sendall(json.dumps(batch).encode() + b"\n")
        replies = sorted(sock.json_line(), key=lambda r: r["id"])
        assert replies[0] == {"jsonrpc": "2.0", "id": 1, "result": 3}
        assert replies[1]["error"]["code"] == -32601
        assert ran.wait(WAIT)
        sock.close()


def test_a_batch_with_every_kind_of_member_is_answered_in_order() -> None:
    # Each member's reply in the order of the calls; one that cannot be encoded, one
    # that raises and an invalid one get their own errors, notifications nothing.
    s = RPCServer()
    s.register_function(add)
    s.register_function(lambda: {1, 2}, name="a_set")
    s.register_function(lambda: float("nan"), name="nan")
    s.register_function(_boom, name="boom")
    with serving(s) as address:
        sock = raw_connect(address)
        batch = [
            {"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": 1},
            {"jsonrpc": "2.0", "method": "a_set", "id": "set"},
            {"jsonrpc": "2.0", "method": "add", "params": [3, 4]},
            {"jsonrpc": "2.0", "method": "nan", "id": 3},
            {"jsonrpc": "2.0", "method": "boom", "id": 4},
            {"jsonrpc": "2.0", "id": 5},
            {"jsonrpc": "2.0", "method": "add", "params": [1], "id": 6},
            {"jsonrpc": "2.0", "method": "add", "params": [5, 6], "id": 7},
        ]
        sock.sendall(json.dumps(batch).encode() + b"\n")
        replies = sock.json_line()
        sock.close()
    assert [r["id"] for r in replies] == [1, "set", 3, 4, 5, 6, 7]
    assert replies[0] == {"jsonrpc": "2.0", "id": 1, "result": 3}
    assert [r["error"]["code"] for r in replies[1:6]] == [-32603, -32603, -32603, -32600, -32602]
    assert replies[6] == {"jsonrpc": "2.0", "id": 7, "result": 11}


# -- errors -------------------------------------------------------------------


def _boom() -> None:
    raise ValueError("secret detail")


@pytest.mark.parametrize("debug", [False, True])
def test_handler_exceptions_and_debug_tracebacks(debug: bool) -> None:
    s = RPCServer(debug=debug)
    s.register_function(_boom, name="boom")
    with serving(s) as address:
        sock = raw_connect(address)
        sock.sendall(request("boom"))
        raw = sock.until()
        sock.close()
        with RPCClient(*address, timeout=WAIT) as c, pytest.raises(InternalError) as info:
            c.boom()
    err = info.value
    assert err.code == -32603 and err.method == "boom"
    assert "boom" in str(err) and "-32603" in str(err)
    if debug:
        assert err.data["type"] == "ValueError"
        assert "Traceback" in err.data["traceback"] and "secret detail" in err.data["traceback"]
    else:
        assert err.data is None
        assert b"Traceback" not in raw and b"secret detail" not in raw


def test_handler_raising_rpc_errors_sends_code_message_and_data() -> None:
    s = RPCServer()

    @s.register
    def fail(kind: str) -> None:
        if kind == "server":
            raise ServerError(-32042, "quota exceeded", {"retry_after": 3})
        if kind == "remote":
            raise RPCError(17, "app specific", ["a", 1])
        raise InvalidParams("kind must be server or remote", {"got": kind})

    with serving(s) as address, RPCClient(*address, timeout=WAIT) as c:
        with pytest.raises(ServerError) as server_err:
            c.fail("server")
        assert (server_err.value.code, server_err.value.message) == (-32042, "quota exceeded")
        assert server_err.value.data == {"retry_after": 3}
        with pytest.raises(RemoteError) as remote_err:
            c.fail("remote")
        assert (remote_err.value.code, remote_err.value.data) == (17, ["a", 1])
        with pytest.raises(InvalidParams) as params_err:
            c.fail("other")
        assert params_err.value.data == {"got": "other"}


def test_result_that_is_not_json_becomes_internal_error_for_that_call() -> None:
    s = RPCServer()
    s.register_function(add)
    s.register_function(lambda: {1, 2}, name="a_set")
    s.register_function(lambda: float("nan"), name="nan")
    with serving(s) as address, RPCClient(*address, timeout=WAIT) as c:
        for name in ("a_set", "nan"):
            with pytest.raises(InternalError):
                c.call(name)
        assert c.add(1, 2) == 3


def test_async_handler_on_the_sync_server() -> None:
    s = RPCServer()

    @s.register
    async def slow_add(a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    @s.register
    async def async_fail() -> None:
        await asyncio.sleep(0)
        raise ServerError(-32001, "async failure")

    with serving(s) as address, RPCClient(*address, timeout=WAIT) as c:
        assert c.slow_add(2, 3) == 5
        with pytest.raises(ServerError, match="async failure"):
            c.async_fail()


def test_each_call_of_an_async_handler_runs_in_an_event_loop_of_its_own() -> None:
    # README (Server, Methods): the sync server runs a coroutine "by asyncio.run: each
    # call in an event loop of its own", which is why an asyncio object shared between
    # calls does not work there. Users rely on it to know what they may share.
    s = RPCServer()
    loops: list[asyncio.AbstractEventLoop] = []

    @s.register
    async def where() -> bool:
        loops.append(asyncio.get_running_loop())
        return loops[-1].is_running()

    with serving(s) as address, RPCClient(*address, timeout=WAIT) as c:
        assert [c.where(), c.where()] == [True, True]
    first, second = loops
    assert first is not second
    assert first.is_closed() and second.is_closed()  # asyncio.run closed each one


# -- Unix sockets and TLS ------------------------------------------------------


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets on this platform")
def test_unix_socket_round_trip(unix_path: str) -> None:
    s = RPCServer(unix_mode=0o600)
    s.register_function(add)
    with serving(s, path=unix_path) as address:
        assert address == unix_path
        assert os.stat(unix_path).st_mode & 0o777 == 0o600
        with RPCClient(path=unix_path, timeout=WAIT) as c:
            assert c.add(40, 2) == 42
            assert c.add("测", "试") == "测试"
    assert not os.path.exists(unix_path), "the socket file was left behind"


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets on this platform")
def test_unix_socket_path_safety(unix_path: str) -> None:
    with open(unix_path, "w") as f:  # a regular file is never replaced
        f.write("keep me")
    with pytest.raises(FileExistsError):
        RPCServer().start(path=unix_path)
    os.unlink(unix_path)
    # a stale socket file (nobody listening) is replaced
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(unix_path)
    stale.close()
    s = RPCServer()
    s.register_function(add)
    with serving(s, path=unix_path):
        with pytest.raises(OSError, match="in use"):  # a live one is not
            RPCServer().start(path=unix_path)
        with RPCClient(path=unix_path, timeout=WAIT) as c:
            assert c.add(1, 2) == 3


@pytest.fixture(scope="module")
def tls() -> Any:
    return tls_contexts()


def test_tls_round_trip(tls: Any) -> None:
    server_ctx, client_ctx = tls
    s = RPCServer()
    s.register_function(add)

    @s.register
    def echo(x: Any) -> Any:
        return x

    with serving(s, ssl=server_ctx) as (host, port):
        with RPCClient(host, port, ssl=client_ctx, timeout=WAIT) as c:
            assert c.add(1, 2) == 3
            big = "𝄞测试" * 100_000  # many TLS records
            assert c.echo(big) == big
        # a client that does not trust the certificate fails cleanly (no plain-text hint) ...
        with pytest.raises(ConnectionLost, match="TLS") as untrusted:
            RPCClient(host, port, ssl=ssl.create_default_context(), timeout=WAIT)
        assert "without ssl=" not in str(untrusted.value)
        # ... and a plain-text client does not disturb the server
        with raw_connect((host, port)) as plain:
            plain.sendall(request("add", [1, 2]))
            assert b'"result"' not in plain.to_eof()
        with RPCClient(host, port, ssl=client_ctx, timeout=WAIT) as c:
            assert c.add(2, 2) == 4


@pytest.mark.parametrize("size", [10, 8_000_000])
def test_a_plain_client_on_a_tls_port_is_told_to_use_tls(tls: Any, size: int) -> None:
    # Its request is read (not left unread, which would reset the connection and
    # lose the answer) and answered with one plain error; TLS clients go on.
    server_ctx, client_ctx = tls
    s = RPCServer()

    @s.register
    def length(x: str) -> int:
        return len(x)

    with serving(s, ssl=server_ctx) as (host, port):
        with RPCClient(host, port, timeout=WAIT) as plain:
            with pytest.raises(ServerError, match="this server speaks TLS") as refused:
                plain.length("x" * size)
            assert refused.value.code == -32000
        with raw_connect((host, port)) as sock:
            sock.sendall(request("length", ["x" * size]))
            reply = json.loads(sock.to_eof())
        assert reply["id"] is None and "speaks TLS" in reply["error"]["message"]
        with RPCClient(host, port, ssl=client_ctx, timeout=WAIT) as c:
            assert c.length("abc") == 3


def test_a_full_sync_tls_server_turns_clients_away_over_tls(tls: Any) -> None:
    # At max_connections a TLS client is refused over TLS (a plain-text answer would
    # only fail its handshake): its first call raises the server's error. A plain
    # client on that port is refused in plain text, as before.
    server_ctx, client_ctx = tls
    s = RPCServer(max_connections=1)
    s.register_function(add)
    with (
        LeakCheck(),
        serving(s, ssl=server_ctx) as (host, port),
        RPCClient(host, port, ssl=client_ctx, timeout=WAIT) as first,
    ):
        assert first.add(1, 2) == 3
        with (
            RPCClient(host, port, ssl=client_ctx, timeout=WAIT) as second,
            pytest.raises(ServerError, match="too many connections"),
        ):
            second.add(1, 2)
        with RPCClient(host, port, timeout=WAIT) as plain, pytest.raises(ServerError, match="too many connections"):
            plain.add(1, 2)
        assert first.add(2, 2) == 4


def test_shutdown_ends_a_tls_refusal_in_progress(tls: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # A connection to a full TLS port that sends nothing sits in its refusal (the
    # first byte is awaited, bounded): shutdown() ends it (its socket shut down)
    # rather than waiting for the bound, here made longer than shutdown's wait.
    monkeypatch.setattr(refuse_module, "DRAIN_SECONDS", 60.0)
    server_ctx, client_ctx = tls
    s = RPCServer(max_connections=1)
    s.register_function(add)
    with LeakCheck():
        address = s.start("127.0.0.1", 0, ssl=server_ctx)
        try:
            with RPCClient(*address, ssl=client_ctx, timeout=WAIT) as first:
                assert first.add(1, 2) == 3
                silent = socket.create_connection(address, timeout=WAIT)
                wait_for(
                    lambda: any(t.name == "jsonrpc_mini-refuse" for t in threading.enumerate()),
                    "the silent connection's refusal to start",
                )
                s.shutdown()
                assert not any(t.name == "jsonrpc_mini-refuse" for t in threading.enumerate())
                silent.close()
        finally:
            s.shutdown()


def test_a_tls_client_refused_in_plain_text_is_told_it_may_be_the_limit(tls: Any) -> None:
    # Past its few TLS refusals at once, a full sync TLS server refuses in plain
    # text: the TLS client's hint must not only blame a missing ssl=.
    server_ctx, client_ctx = tls
    s = RPCServer(max_connections=1)
    s.register_function(add)
    s._refusals = server_module.TlsRefusals(limit=0)
    with serving(s, ssl=server_ctx) as (host, port), RPCClient(host, port, ssl=client_ctx, timeout=WAIT) as first:
        assert first.add(1, 2) == 3
        with pytest.raises(ConnectionLost, match="TLS server flooded past max_connections also refuses in plain text"):
            RPCClient(host, port, ssl=client_ctx, timeout=WAIT)


def test_a_tls_client_on_a_plain_port_gets_a_hint(tls: Any) -> None:
    _server_ctx, client_ctx = tls
    s = RPCServer()
    s.register_function(add)
    with serving(s) as (host, port):
        with pytest.raises(ConnectionLost, match=r"did not answer in TLS: is it a server without ssl=\?"):
            RPCClient(host, port, ssl=client_ctx, timeout=WAIT)

        async def aio_client() -> None:
            await aio.connect(host, port, ssl=client_ctx, timeout=WAIT)

        with pytest.raises(ConnectionLost, match="did not answer in TLS"):
            asyncio.run(aio_client())
        with RPCClient(host, port, timeout=WAIT) as c:
            assert c.add(1, 2) == 3


def test_content_length_message_too_large_is_refused_before_reading_it() -> None:
    s = RPCServer(max_message_size=1000)
    s.register_function(add)
    with serving(s) as address:
        with raw_connect(address) as sock:
            sock.sendall(b"Content-Length: 5000000\r\n\r\n" + b"x" * 100)  # the body never comes whole
            data = sock.to_eof()
        _header, _, body = data.partition(b"\r\n\r\n")
        reply = json.loads(body)
        assert reply["id"] is None and reply["error"]["code"] == -32600
        assert "too large" in reply["error"]["message"]
        with RPCClient(*address, timeout=WAIT) as c:
            assert c.add(1, 2) == 3


def test_a_silent_tls_client_does_not_block_others(tls: Any) -> None:
    # handshake_timeout far past the client's timeout: the good client is answered
    # only if the silent client's unfinished handshake holds nobody else up.
    server_ctx, client_ctx = tls
    s = RPCServer(handshake_timeout=60)
    s.register_function(add)
    with serving(s, ssl=server_ctx) as (host, port), raw_connect((host, port)) as silent:
        # the silent client connected first and never starts its handshake
        with RPCClient(host, port, ssl=client_ctx, timeout=WAIT) as c:
            assert c.add(1, 2) == 3
        assert select.select([silent.sock], [], [], 0)[0] == []  # still open, mid-handshake: no byte, no EOF
    # (serving's shutdown closed it)


def test_a_silent_tls_client_is_dropped_after_handshake_timeout(tls: Any) -> None:
    server_ctx, _ = tls
    with serving(RPCServer(handshake_timeout=0.3), ssl=server_ctx) as address, raw_connect(address) as silent:
        assert silent.to_eof() == b""  # dropped once handshake_timeout passed


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_ipv6_loopback() -> None:
    s = RPCServer()
    s.register_function(add)
    with serving(s, host="::1") as (host, port):
        assert host == "::1" and port > 0
        with RPCClient(host, port, timeout=WAIT) as c:
            assert c.add(1, 2) == 3


@pytest.mark.parametrize(
    "raw_id",
    ["0", '"6f1c2f0e-8a4b-4c1e-9d3a-2b7e5c9a1f00"', "1.5", "-7", "123456789012345678901234567890", '""', '"测试"'],
)
def test_ids_are_echoed_exactly_on_the_wire(raw_id: str) -> None:
    s = RPCServer()
    s.register_function(add)
    with serving(s) as address, raw_connect(address) as sock:
        sock.sendall(b'{"jsonrpc":"2.0","method":"add","params":[1,2],"id":%s}\n' % raw_id.encode())
        line = sock.until(b"\n")
        assert json.loads(line) == {"jsonrpc": "2.0", "id": json.loads(raw_id), "result": 3}
        if not raw_id.startswith('"'):  # numbers keep their exact text (no float rounding)
            assert re.search(rb'"id":\s*' + re.escape(raw_id.encode()) + rb"[,}]", line), line


def test_a_connection_whose_thread_cannot_start_is_closed_and_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    # At the process's thread limit: the connection is closed, not kept open with
    # nobody serving it and counted for ever (shutdown() would wait for it).
    start = threading.Thread.start
    refused: list[str] = []

    def start_or_refuse(self: threading.Thread) -> None:
        if self.name.startswith("jsonrpc_mini-conn") and not refused:
            refused.append(self.name)
            raise RuntimeError("can't start new thread")
        start(self)

    s = RPCServer()
    s.register_function(add)
    with serving(s) as address:
        monkeypatch.setattr(threading.Thread, "start", start_or_refuse)
        with raw_connect(address) as sock:
            assert sock.to_eof() == b""  # closed at once
        wait_for(lambda: s.connection_count == 0, "the connection to be forgotten")
        with RPCClient(*address, timeout=WAIT) as c:  # the next one is served
            assert c.add(1, 2) == 3
    assert refused
