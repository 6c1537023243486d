"""Stateful: clients and a server used in any order still complete every call exactly once."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from jsonrpc_mini import ConnectionLost, RPCClient, RPCServer, RPCTimeout
from jsonrpc_mini.testing import Resources, loopback
from jsonrpc_mini.testing import strategies as rst

from ._budget import scaled

CALL_TIMEOUT = 20.0  # generous: the machine is busy; only the slow rule expects a timeout
SLOW = 0.3
SHORT = 0.05
NOTE_WAIT = 10.0


@dataclass
class Peer:
    """One client as the model sees it."""

    kind: str  # "tcp" or "loopback"
    client: RPCClient | None = None
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    healthy: bool = False  # connected to a running server: calls must succeed

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        self.stack.close()
        self.stack = contextlib.ExitStack()
        self.healthy = False


# Invariant: whatever the order of connects, calls, notifications, batches, concurrent
# calls, timeouts, disconnects, reconnects, shutdowns and restarts, every handler runs at
# most once, every call that returns ran exactly once and returned its own value, calls
# on broken links raise ConnectionLost, and nothing is left running afterwards.
class RPCModel(RuleBasedStateMachine):
    """Connect, call, notify, batch, time out, disconnect, reconnect, shut down, restart."""

    def __init__(self) -> None:
        super().__init__()
        self.resources = Resources()
        self.lock = threading.Lock()
        self.executed: Counter[int] = Counter()  # token -> times a handler ran with it
        self.returned: set[int] = set()  # tokens whose call returned a value
        self.notes_due: set[int] = set()  # notifications sent on healthy links
        self.notes_lost: set[int] = set()  # sent on links known to be closed
        self.tokens = itertools.count()
        self.peers: list[Peer] = []
        self.server = RPCServer(shutdown_grace=5.0)
        self.server.register_function(self._echo, name="echo")
        self.server.register_function(self._echo, name="note")
        self.server.register_function(self._slow, name="slow")
        self.address: Any = self.server.start("127.0.0.1", 0)
        self.running = True

    # -- handlers (run in server threads) ------------------------------------------

    def _echo(self, token: int, value: Any = None) -> Any:
        with self.lock:
            self.executed[token] += 1
        return [token, value]

    def _slow(self, token: int) -> Any:
        time.sleep(SLOW)
        return self._echo(token)

    # -- helpers -----------------------------------------------------------------------

    def _peer(self, index: int) -> Peer:
        return self.peers[index % len(self.peers)]

    def _open(self, peer: Peer) -> None:
        if peer.kind == "loopback":
            peer.client = peer.stack.enter_context(loopback(self.server, timeout=CALL_TIMEOUT))
            peer.healthy = True
            return
        if not self.running:
            with pytest.raises(ConnectionLost):
                RPCClient(*self.address, timeout=CALL_TIMEOUT)
            peer.healthy = False
            return
        if peer.client is None:
            peer.client = RPCClient(timeout=CALL_TIMEOUT)
        peer.client.connect(*self.address)
        peer.healthy = True

    def _expect(self, peer: Peer, token: int, outcome: Any, value: Any = None) -> None:
        """A healthy peer gets exactly its echo; a broken one ConnectionLost."""
        if peer.healthy:
            assert not isinstance(outcome, BaseException), f"call {token} failed: {outcome!r}"
            assert rst.same_json(outcome, [token, value]), (token, outcome)
            self.returned.add(token)
        else:
            assert isinstance(outcome, ConnectionLost), f"call {token} on a broken link gave {outcome!r}"

    @staticmethod
    def _outcome(fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            return exc

    def _wait_notes(self) -> None:
        deadline = time.monotonic() + NOTE_WAIT
        while time.monotonic() < deadline:
            with self.lock:
                if all(self.executed[token] >= 1 for token in self.notes_due):
                    break
            time.sleep(0.01)
        with self.lock:
            missing = sorted(token for token in self.notes_due if self.executed[token] != 1)
        assert not missing, f"notifications not executed exactly once: {missing}"

    # -- rules ---------------------------------------------------------------------------

    @precondition(lambda self: len(self.peers) < 4)
    @rule(kind=st.sampled_from(["tcp", "loopback"]))
    def connect(self, kind: str) -> None:
        peer = Peer(kind)
        self.peers.append(peer)
        self._open(peer)

    @precondition(lambda self: self.peers)
    @rule(index=st.integers(0, 3), value=rst.json_values(max_leaves=6))
    def call(self, index: int, value: Any) -> None:
        peer = self._peer(index)
        if peer.client is None:
            return
        token = next(self.tokens)
        self._expect(peer, token, self._outcome(peer.client.echo, token, value), value)

    @precondition(lambda self: self.peers)
    @rule(index=st.integers(0, 3))
    def notify(self, index: int) -> None:
        peer = self._peer(index)
        if peer.client is None:
            return
        token = next(self.tokens)
        outcome = self._outcome(peer.client.notify, "note", token)
        if peer.healthy:
            assert outcome is None, outcome
            self.notes_due.add(token)
        else:  # a write to a closed TCP link may still "succeed" locally
            assert outcome is None or isinstance(outcome, ConnectionLost), outcome
            self.notes_lost.add(token)

    @precondition(lambda self: self.peers)
    @rule(index=st.integers(0, 3), size=st.integers(1, 4), with_note=st.booleans())
    def batch(self, index: int, size: int, with_note: bool) -> None:
        peer = self._peer(index)
        if peer.client is None:
            return
        tokens = [next(self.tokens) for _ in range(size)]
        note = next(self.tokens) if with_note else None

        def run() -> list[Any]:
            assert peer.client is not None
            with peer.client.batch() as b:
                results = [b.echo(token) for token in tokens]
                if note is not None:
                    b.notify("note", note)
            return [self._outcome(result.result) for result in results]

        outcomes = self._outcome(run)
        if isinstance(outcomes, BaseException):
            outcomes = [outcomes] * size
        for token, outcome in zip(tokens, outcomes, strict=True):
            self._expect(peer, token, outcome)
        if note is not None:
            (self.notes_due if peer.healthy else self.notes_lost).add(note)

    @precondition(lambda self: self.peers)
    @rule(index=st.integers(0, 3))
    def time_out(self, index: int) -> None:
        peer = self._peer(index)
        if peer.client is None:
            return
        token = next(self.tokens)
        outcome = self._outcome(peer.client.with_timeout(SHORT).slow, token)
        if peer.healthy:
            assert isinstance(outcome, RPCTimeout), outcome
        else:
            assert isinstance(outcome, ConnectionLost), outcome

    @precondition(lambda self: self.peers)
    @rule(index=st.integers(0, 3), threads=st.integers(2, 4))
    def concurrent_calls(self, index: int, threads: int) -> None:
        peer = self._peer(index)
        client = peer.client
        if client is None:
            return
        tokens = [next(self.tokens) for _ in range(threads)]
        outcomes: dict[int, Any] = {}

        def worker(token: int) -> None:
            outcomes[token] = self._outcome(client.echo, token)

        workers = [threading.Thread(target=worker, args=(token,)) for token in tokens]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join(CALL_TIMEOUT * 2)
        assert not any(thread.is_alive() for thread in workers), "a concurrent call never completed"
        for token in tokens:
            self._expect(peer, token, outcomes[token])

    @precondition(lambda self: self.peers)
    @rule(index=st.integers(0, 3))
    def disconnect(self, index: int) -> None:
        peer = self._peer(index)
        peer.close()
        if peer.client is not None:
            token = next(self.tokens)
            self._expect(peer, token, self._outcome(peer.client.echo, token))

    @precondition(lambda self: self.peers)
    @rule(index=st.integers(0, 3))
    def reconnect(self, index: int) -> None:
        peer = self._peer(index)
        peer.close()
        self._open(peer)

    @precondition(lambda self: self.running)
    @rule()
    def shutdown(self) -> None:
        self._wait_notes()  # everything sent on a healthy link must have run by now
        self.server.shutdown()
        self.running = False
        assert self.server.connection_count == 0
        for peer in self.peers:
            peer.healthy = False

    @precondition(lambda self: not self.running)
    @rule()
    def restart(self) -> None:
        self.address = self.server.start("127.0.0.1", 0)
        self.running = True

    # -- the model ---------------------------------------------------------------------

    @invariant()
    def nothing_runs_twice(self) -> None:
        with self.lock:
            twice = [token for token, count in self.executed.items() if count > 1]
            wrong = [token for token in self.returned if self.executed[token] != 1]
        assert not twice, f"handlers ran more than once for tokens {twice}"
        assert not wrong, f"calls returned without running exactly once: {wrong}"

    def teardown(self) -> None:
        try:
            for peer in self.peers:
                peer.close()
            self._wait_notes()  # a notification runs even if its sender closes right after
            with self.lock:
                ran = sorted(token for token in self.notes_lost if self.executed[token])
            assert not ran, f"notifications sent on closed links were executed: {ran}"
        finally:
            self.server.shutdown()
        assert self.server.connection_count == 0
        self.resources.assert_no_leaks(timeout=10.0)


RPCModel.TestCase.settings = scaled(0.5, stateful_step_count=30)
# Invariant: see RPCModel above (each example is one random sequence of up to 30 rules).
test_rpc_model = RPCModel.TestCase
