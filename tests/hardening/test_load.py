"""Issue 9, item 4: many connections, many pipelined calls, polite refusal, no leaks.

CI sizes are chosen for two busy cores; JSONRPC_MINI_HEAVY=1 runs the sizes the
issue names (100,000 pipelined calls and 100,000 calls through one shared client).
1,000 concurrent connections run in CI too.
"""

from __future__ import annotations

import json
import random
import resource
import threading
import time
import tracemalloc
from collections import Counter
from typing import Any

import pytest
from _hardening import HEAVY, WAIT, Raw, open_fds, running, settle

from jsonrpc_mini import RPCClient
from jsonrpc_mini._connect import open_connection
from jsonrpc_mini._transport import SocketTransport

pytestmark = pytest.mark.timeout(180)

CONNECTIONS = 1000
PIPELINED = 100_000 if HEAVY else 20_000
SHARED_CALLS = 100_000 if HEAVY else 8_000


def ensure_fds(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.fail(f"this test needs {needed} file descriptors; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def test_default_settings_serve_1000_concurrent_connections(kind: str, record_property: Any) -> None:
    ensure_fds(4 * CONNECTIONS + 256)
    with running(kind) as srv:
        started = time.monotonic()
        clients = [srv.client() for _ in range(CONNECTIONS)]
        try:
            assert settle(lambda: srv.server.connection_count == CONNECTIONS)
            results: dict[int, Any] = {}
            errors: list[BaseException] = []

            def work(part: int) -> None:
                try:
                    for i in range(part, CONNECTIONS, 8):
                        results[i] = clients[i].add(i, 1)
                except BaseException as exc:  # report in the main thread
                    errors.append(exc)

            threads = [threading.Thread(target=work, args=(p,)) for p in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(WAIT * 6)
            assert not errors, errors[:3]
            assert results == {i: i + 1 for i in range(CONNECTIONS)}
            assert srv.server.connection_count == CONNECTIONS  # all still open at once
            record_property("seconds_for_1000_connections", round(time.monotonic() - started, 2))
        finally:
            for client in clients:
                client.close()
        assert settle(lambda: srv.server.connection_count == 0, WAIT * 3)


class ChunkingTransport:
    """Wraps a socket transport: every send and recv moves a seeded random 1..max_chunk bytes."""

    def __init__(self, inner: SocketTransport, seed: int, max_chunk: int = 97) -> None:
        self.inner = inner
        self.rng = random.Random(seed)
        self.max_chunk = max_chunk
        self.lock = threading.Lock()

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            with self.lock:
                n = self.rng.randint(1, self.max_chunk)
            self.inner.send(bytes(view[:n]))
            view = view[n:]

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        with self.lock:
            n = self.rng.randint(1, self.max_chunk)
        return self.inner.recv(min(max_bytes, n), timeout)

    def close(self) -> None:
        self.inner.close()


def test_pipelined_calls_each_answered_exactly_once(kind: str, record_property: Any) -> None:
    rng = random.Random(9)
    stream = b"".join(
        json.dumps({"jsonrpc": "2.0", "method": "add", "params": [i, i], "id": i}).encode() + b"\n"
        for i in range(PIPELINED)
    )
    cuts = sorted(rng.sample(range(1, len(stream)), PIPELINED // 2))
    with running(kind) as srv, Raw(srv.address, timeout=WAIT * 6) as raw:
        started = time.monotonic()

        def write() -> None:
            last = 0
            for cut in [*cuts, len(stream)]:  # random chunk boundaries, mid-token included
                raw.sock.sendall(stream[last:cut])
                last = cut

        writer = threading.Thread(target=write, name="hardening-pipeline-writer")
        writer.start()
        replies = raw.replies(PIPELINED, timeout=WAIT * 12)
        writer.join(WAIT)
        elapsed = time.monotonic() - started
        seen = Counter(reply["id"] for reply in replies)
        assert len(replies) == PIPELINED, f"{len(replies)} of {PIPELINED} replies"
        assert set(seen) == set(range(PIPELINED)) and max(seen.values()) == 1
        assert all(reply["result"] == 2 * reply["id"] for reply in replies)
        assert raw.replies(1, 0.2) == [], "more replies than requests"
        record_property("pipelined_calls_per_second", round(PIPELINED / elapsed))


def test_shared_client_with_random_chunking_delivers_to_the_right_caller(kind: str, record_property: Any) -> None:
    threads_n = 8
    per_thread = SHARED_CALLS // threads_n
    with running(kind) as srv:
        host, port = srv.address
        transport = ChunkingTransport(open_connection(host, port, timeout=WAIT), seed=4)
        delivered: Counter[str] = Counter()
        wrong: list[tuple[str, Any]] = []
        errors: list[BaseException] = []
        lock = threading.Lock()
        with RPCClient(transport=transport, timeout=WAIT * 3) as client:
            started = time.monotonic()

            def caller(t: int) -> None:
                try:
                    for i in range(per_thread):
                        token = f"{t}:{i}"
                        got = client.echo(token)
                        with lock:
                            delivered[token] += 1
                            if got != token:
                                wrong.append((token, got))
                except BaseException as exc:
                    errors.append(exc)

            workers = [threading.Thread(target=caller, args=(t,)) for t in range(threads_n)]
            for w in workers:
                w.start()
            for w in workers:
                w.join(WAIT * 18)
            elapsed = time.monotonic() - started
        assert not errors, errors[:3]
        assert not wrong, wrong[:5]
        assert len(delivered) == threads_n * per_thread and set(delivered.values()) == {1}
        record_property("shared_client_calls_per_second", round(threads_n * per_thread / elapsed))


def test_max_connections_refuses_politely(kind: str) -> None:
    with running(kind, {"max_connections": 5}) as srv:
        clients = [srv.client() for _ in range(5)]
        try:
            for i, client in enumerate(clients):
                assert client.add(i, 0) == i
            with Raw(srv.address) as extra:
                reply = extra.reply()
                assert extra.closed_within(WAIT)
            assert reply["id"] is None and reply["error"]["code"] == -32000
            assert "too many connections" in reply["error"]["message"]
            clients.pop().close()
            assert settle(lambda: srv.server.connection_count == 4)
            with srv.client() as late:
                assert late.echo("room again") == "room again"
            for i, client in enumerate(clients):
                assert client.add(i, 1) == i + 1  # the refusal did not disturb the others
        finally:
            for client in clients:
                client.close()


def test_no_thread_fd_or_memory_leak_after_load(kind: str, record_property: Any) -> None:
    def round_of_load(srv: Any) -> None:
        clients = [srv.client() for _ in range(100)]
        try:
            for i, client in enumerate(clients):
                assert client.add(i, i) == 2 * i
                with client.batch() as batch:
                    r = batch.echo("b")
                assert r.result() == "b"
        finally:
            for client in clients:
                client.close()
        assert settle(lambda: srv.server.connection_count == 0)

    threads_before, fds_before = threading.active_count(), open_fds()
    tracemalloc.start()
    try:
        with running(kind) as srv:
            round_of_load(srv)  # warm-up: caches, thread pools, interned strings
            settle(lambda: False, 0.2)
            base = tracemalloc.get_traced_memory()[0]
            for _ in range(3):
                round_of_load(srv)
            assert settle(lambda: tracemalloc.get_traced_memory()[0] - base < 512 * 1024, 5.0), (
                f"{(tracemalloc.get_traced_memory()[0] - base) / 1024:.0f} KiB kept after 300 connections"
            )
            record_property("kib_growth_after_300_connections", (tracemalloc.get_traced_memory()[0] - base) // 1024)
    finally:
        tracemalloc.stop()
    assert settle(lambda: threading.active_count() <= threads_before), [t.name for t in threading.enumerate()]
    assert settle(lambda: open_fds() <= fds_before), f"{open_fds() - fds_before} file descriptors leaked"


def test_large_batch_is_answered_whole_and_exactly_once(kind: str) -> None:
    # A batch is parsed and answered as one: 10,000 calls (100,000 in the heavy run).
    count = 100_000 if HEAVY else 10_000
    batch = (
        b"["
        + b",".join(
            json.dumps({"jsonrpc": "2.0", "method": "add", "params": [i, 1], "id": i}).encode() for i in range(count)
        )
        + b"]\n"
    )
    with running(kind) as srv, Raw(srv.address, timeout=WAIT * 6) as raw:
        raw.send(batch)
        replies = raw.reply(WAIT * 12)
        assert isinstance(replies, list) and len(replies) == count
        assert sorted(r["id"] for r in replies) == list(range(count))
        assert all(r["result"] == r["id"] + 1 for r in replies)
