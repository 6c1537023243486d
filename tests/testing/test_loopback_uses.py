"""loopback() counts as a user of the server, and a Unix-path server is refused without a use.

A LoopbackServer that started the server shuts it down when the last user is
done. A loopback() was not counted: a LoopbackServer leaving while one was open
shut the server down under it (its connection closed). And a LoopbackServer over
a server listening on a Unix path raised ValueError after counting itself in, so
that count was never given back: a later LoopbackServer then started the server
and left it running.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import gc
import os
import socket
import tempfile
import threading
import weakref

import pytest

from jsonrpc_mini import ConnectionLost, RPCClient, RPCServer
from jsonrpc_mini.testing import LoopbackServer, _uses, loopback

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def server():
    srv = RPCServer(shutdown_grace=0.2)
    srv.gate = threading.Event()
    srv.entered = threading.Event()

    @srv.register
    def add(a, b):
        return a + b

    @srv.register
    def held(value):
        srv.entered.set()
        srv.gate.wait(30)
        return value

    yield srv
    srv.gate.set()
    srv.shutdown()


def test_a_loopback_is_a_user_of_the_server(server):
    with loopback(server) as client:
        with LoopbackServer(server) as lb:  # starts the server, then leaves
            assert lb.client().add(1, 2) == 3
        assert server.address is not None
        assert client.add(2, 2) == 4  # its connection is still open
    assert server.address is None  # the last user out shut down what the kit started


def test_a_call_in_flight_on_a_loopback_outlives_the_loopback_server(server):
    results = []
    with loopback(server) as client:
        caller = threading.Thread(target=lambda: results.append(client.held("in flight")))
        with LoopbackServer(server):
            caller.start()
            assert server.entered.wait(30)  # the server runs the call
        server.gate.set()
        caller.join(30)
        assert results == ["in flight"]
    assert server.address is None


def test_loopback_leaves_a_server_it_did_not_start_alone(server):
    with loopback(server) as client:
        assert client.add(1, 1) == 2
    assert server.address is None  # never started by a loopback()
    address = server.start("127.0.0.1", 0)
    with loopback(server), LoopbackServer(server):
        pass
    assert server.address == address  # the test started it: left running


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="Unix sockets")
def test_a_unix_path_server_is_refused_without_taking_a_use(server):
    with tempfile.TemporaryDirectory() as tmp:
        server.start(path=os.path.join(tmp, "s.sock"))
        with pytest.raises(ValueError, match="Unix socket"):
            LoopbackServer(server)
        with loopback(server) as client:  # in memory: fine on any server
            assert client.add(1, 2) == 3
        assert server.address is not None
        server.shutdown()
    with LoopbackServer(server) as lb:  # starts it on TCP...
        assert lb.client().add(2, 3) == 5
    assert server.address is None  # ...and, being its last user, shuts it down


class _LastUserLeaving:
    """A call in flight on ``server`` (started by a LoopbackServer) as that last user leaves.

    ``call(client)`` runs on a thread with a direct client; once ``entered`` is set,
    ``leave()`` closes the LoopbackServer on another thread: it shuts the server
    down, which waits for the call. ``results`` has what the call returned;
    ``join()`` joins both threads and closes the client.
    """

    def __init__(self, server, call, entered):
        self.results = []
        self.lb = LoopbackServer(server)  # starts it
        self.direct = RPCClient(*self.lb.direct_address, timeout=30)  # (lb.close() would close a client of its own)
        self.caller = threading.Thread(target=lambda: self.results.append(call(self.direct)))
        self.caller.start()
        assert entered.wait(30)

    def leave(self):
        self.closer = threading.Thread(target=self.lb.close)  # the last user: shuts it down, waits for the call
        self.closer.start()

    def join(self):
        self.closer.join(30)
        self.caller.join(30)
        self.direct.close()


def _until_shutdown_begins(server):
    for _ in range(3000):  # bounded: until the shutdown has begun (the listener is gone)
        if server.address is None:
            break
        threading.Event().wait(0.01)
    assert server.address is None


def test_a_server_shutting_down_holds_up_no_user_of_another(server):
    # The last LoopbackServer of a server the kit started shuts it down, which waits
    # for calls in flight (shutdown_grace). That wait held the kit's one lock, so a
    # loopback() or LoopbackServer of any other server could not start or end meanwhile.
    other = RPCServer(shutdown_grace=30)
    entered, gate = threading.Event(), threading.Event()

    @other.register
    def held():
        entered.set()
        gate.wait(30)
        return "done"

    flight = _LastUserLeaving(other, lambda client: client.held(), entered)
    flight.leave()
    try:
        _until_shutdown_begins(other)
        with loopback(server) as client, LoopbackServer(server) as mine:
            assert client.add(1, 2) == 3
            assert mine.client().add(2, 2) == 4
        assert flight.closer.is_alive()  # served while the other server was still shutting down
    finally:
        gate.set()
        flight.join()
    assert flight.results == ["done"]
    assert server.address is None


def test_a_use_never_given_back_goes_with_its_server(monkeypatch):
    # A LoopbackServer that never closed (its test failed first) keeps its use counted,
    # and its server, shut down by the test, is dropped. A new server that Python puts
    # at the same address (the same id(); forced here, the allocator does it at random)
    # must not inherit that use: its own LoopbackServer starts it and, its only user,
    # shuts it down on leaving.
    monkeypatch.setattr(_uses, "id", lambda _obj: 1, raising=False)

    def left_open():
        gone = RPCServer()
        _uses.acquire(gone, "127.0.0.1")  # as LoopbackServer(gone) does; never released
        gone.shutdown()
        return weakref.ref(gone)

    ref = left_open()
    gc.collect()
    assert ref() is None
    fresh = RPCServer()
    fresh.register_function(lambda a, b: a + b, "add")
    with LoopbackServer(fresh) as lb:
        assert lb.client().add(1, 2) == 3
    assert fresh.address is None


def _in_helper_thread(enter):
    # A thread the handler starts and waits for, running in a copy of the handler's
    # context (a plain new thread starts with an empty one: see README's test kit).
    out = []
    ctx = contextvars.copy_context()
    helper = threading.Thread(target=lambda: out.append(ctx.run(_outcome, enter)))
    helper.start()
    helper.join(30)
    assert not helper.is_alive()
    return out[0]


def _in_executor(enter):
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(contextvars.copy_context().run, _outcome, enter).result(30)


def _outcome(enter):
    try:
        return enter()
    except ConnectionLost as exc:
        return exc


@pytest.mark.parametrize("via", ["handler", "helper thread", "executor"])
@pytest.mark.parametrize("kit", ["loopback", "LoopbackServer"])
def test_a_handler_entering_the_kit_of_its_own_server_while_it_shuts_down_is_refused_at_once(kit, via):
    # review10 r4b: the last LoopbackServer shuts the server down holding the server's
    # turn, and that shutdown waits for calls in flight. A handler of that server
    # entering loopback() (or a LoopbackServer) of it waited for the turn: the shutdown
    # waited out shutdown_grace, then cut the call. Now the handler gets ConnectionLost
    # at once (as from a server that stopped listening), and the shutdown goes on.
    gateway = RPCServer(shutdown_grace=5)
    gateway.register_function(lambda a, b: a + b, "add")
    entered, go = threading.Event(), threading.Event()

    # Also from a thread the handler starts in a copy of its context (threading.Thread
    # with ctx.run, or an executor's submit(ctx.run, ...)): RPCServer.in_call() reads it.
    @gateway.register
    def fwd(a, b):
        entered.set()
        go.wait(30)

        def enter():
            if kit == "loopback":
                with loopback(gateway) as client:
                    return client.add(a, b)
            with LoopbackServer(gateway) as inner:
                return inner.client().add(a, b)

        outcome = (
            _outcome(enter)
            if via == "handler"
            else (_in_helper_thread if via == "helper thread" else _in_executor)(enter)
        )
        return f"refused: {outcome}" if isinstance(outcome, ConnectionLost) else outcome

    flight = _LastUserLeaving(gateway, lambda client: client.fwd(1, 2), entered)
    flight.leave()
    try:
        _until_shutdown_begins(gateway)
    finally:
        go.set()
        flight.join()
    results = flight.results
    name = "loopback()" if kit == "loopback" else "LoopbackServer"
    assert len(results) == 1, results
    assert results[0].startswith(f"refused: {name}: the server is shutting down (its last kit user left)"), results
    assert gateway.address is None


@pytest.mark.parametrize("who", ["a thread of the test", "a handler of another server"])
def test_others_entering_loopback_of_a_server_shutting_down_wait_and_are_served(who):
    # Only a handler of the server itself is refused: anyone else entering loopback()
    # of it during its shutdown waits for the shutdown (bounded by its grace) and is
    # then served in memory, as before.
    gateway = RPCServer(shutdown_grace=30)
    gateway.register_function(lambda a, b: a + b, "add")
    entered, go = threading.Event(), threading.Event()

    @gateway.register
    def held():
        entered.set()
        go.wait(30)
        return "done"

    def enter():
        try:
            with loopback(gateway) as client:
                return client.add(1, 2)
        except ConnectionLost as exc:
            return f"refused: {exc}"

    other = RPCServer()
    other.register_function(enter, "enter")
    entries = []
    flight = _LastUserLeaving(gateway, lambda client: client.held(), entered)
    flight.leave()
    with loopback(other) as via_other:
        if who == "a thread of the test":
            entry = threading.Thread(target=lambda: entries.append(enter()))
        else:
            entry = threading.Thread(target=lambda: entries.append(via_other.enter()))
        try:
            _until_shutdown_begins(gateway)
            entry.start()
            entry.join(0.3)  # (waits for the shutdown; not refused meanwhile)
            assert entries == []
        finally:
            go.set()
            flight.join()
            if entry.ident is not None:
                entry.join(30)
    assert flight.results == ["done"]
    assert entries == [3]


def test_a_server_restarted_after_a_refusing_shutdown_lets_its_handlers_wait_again():
    # 5a50bc3's flag ("the last user out is shutting the server down") must end with
    # that shutdown. It matters where the server's entry outlives the shutdown (a test
    # thread waited for it) and a handler of the server then waits for the turn held by
    # something else: here a handler that outlived the shutdown's grace enters
    # loopback() while that thread restarts the server (a slow start). It waits for the
    # restart and is served; with the flag left set it was refused as during the shutdown.
    gateway = RPCServer(shutdown_grace=1.0)
    gateway.register_function(lambda a, b: a + b, "add")
    entered, go, trying = threading.Event(), threading.Event(), threading.Event()
    starting, proceed, restarted_done = threading.Event(), threading.Event(), threading.Event()
    left = threading.Event()
    outcomes = []

    @gateway.register
    def linger():
        entered.set()
        go.wait(30)  # past the grace: the shutdown cuts this call, the handler goes on
        trying.set()
        try:
            with loopback(gateway) as client:
                outcomes.append(client.add(1, 2))
        except ConnectionLost as exc:
            outcomes.append(f"refused: {exc}")
        finally:
            left.set()  # out of loopback(): the restart's LoopbackServer is the last user

    real_start = gateway.start

    def slow_start(*args, **kwargs):
        starting.set()
        proceed.wait(30)
        return real_start(*args, **kwargs)

    def restart():
        with LoopbackServer(gateway):  # waits for the shutdown, then starts the server again
            restarted_done.wait(30)

    flight = _LastUserLeaving(gateway, lambda client: _call_quietly(client.linger), entered)
    gateway.start = slow_start  # (the restart below holds the server's turn until `proceed`)
    flight.leave()
    restarter = threading.Thread(target=restart)
    try:
        _until_shutdown_begins(gateway)
        restarter.start()  # waits for the turn while the shutdown holds it
        assert starting.wait(30)  # the shutdown is over; the restart holds the turn
        go.set()
        assert trying.wait(30)
        threading.Event().wait(0.3)  # (the handler waits for the turn: several looks at the flag)
    finally:
        go.set()
        proceed.set()
        flight.join()
        # The handler leaves loopback() first, so that the restart's LoopbackServer is
        # the last user out and shuts the server down as it leaves. (Leaving second,
        # the handler's thread did the shutdown, which the address below then raced.)
        left.wait(30)
        restarted_done.set()
        restarter.join(30)
    # A hang is reported as one, not as a server left listening.
    assert not flight.closer.is_alive(), "the first LoopbackServer's close() did not end"
    assert not flight.caller.is_alive(), "the cut call did not end"
    assert left.is_set(), "the handler did not leave loopback()"
    assert not restarter.is_alive(), "the restart's LoopbackServer did not leave"
    assert sorted(outcomes + flight.results, key=str) == [3, "cut"], (outcomes, flight.results)
    assert gateway.address is None  # the restart's LoopbackServer shut it down again


def _call_quietly(method):
    try:
        return method()
    except ConnectionLost:
        return "cut"
