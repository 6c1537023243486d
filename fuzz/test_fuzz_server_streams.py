"""Both servers fed arbitrary byte streams over several concurrent connections (TCP, Unix, TLS).

Each connection carries a random mix of calls, notifications, batches, unknown methods,
invalid requests and malformed lines, split at arbitrary points, the pieces of all
connections interleaved in a random order; some connections are reset half-way.
"""

from __future__ import annotations

import asyncio
import json
import select
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jsonrpc_mini import RPCClient, RPCServer, aio
from jsonrpc_mini.testing import strategies as rst

from ._transports import TRANSPORTS, Endpoint, budget

pytestmark = pytest.mark.timeout(600)

WAIT = 20.0  # bound on every wait: a server that needs longer than this has hung
LIMIT = 16_000  # the servers' max_message_size (every other message is far smaller)


class Notes:
    """Tags of the notifications the handlers ran, from any thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: Counter[str] = Counter()

    def add(self, tag: Any) -> None:
        with self.lock:
            self.seen[json.dumps(tag)] += 1

    def count(self, tag: Any) -> int:
        with self.lock:
            return self.seen[json.dumps(tag)]


NOTES = Notes()


def echo(tag: Any) -> Any:
    return tag


def note(tag: Any) -> None:
    NOTES.add(tag)


async def aecho(tag: Any) -> Any:
    await asyncio.sleep(0)
    return tag


def slow(tag: Any, ms: int) -> Any:
    time.sleep(ms / 1000)
    return tag


async def aslow(tag: Any, ms: int) -> Any:
    await asyncio.sleep(ms / 1000)
    return tag


@pytest.fixture(scope="module", params=TRANSPORTS)
def sync_address(request: pytest.FixtureRequest) -> Iterator[Endpoint]:
    endpoint = Endpoint.new(request.param)
    server = RPCServer(shutdown_grace=2.0, max_message_size=LIMIT)
    server.register_function(echo)
    server.register_function(slow)
    server.register_function(note)
    endpoint.address = server.start(**endpoint.listen_kwargs())
    yield endpoint
    server.shutdown()
    endpoint.close()


@pytest.fixture(scope="module", params=TRANSPORTS)
def aio_address(request: pytest.FixtureRequest) -> Iterator[Endpoint]:
    endpoint = Endpoint.new(request.param)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = aio.RPCServer(shutdown_grace=2.0, max_message_size=LIMIT)
    server.register_function(aecho, name="echo")
    server.register_function(aslow, name="slow")
    server.register_function(note)
    try:
        start = server.start(**endpoint.listen_kwargs())
        endpoint.address = asyncio.run_coroutine_threadsafe(start, loop).result(WAIT)
        yield endpoint
        asyncio.run_coroutine_threadsafe(server.shutdown(), loop).result(WAIT)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT)
        loop.close()
        endpoint.close()


# --- what a connection carries ------------------------------------------------------


@dataclass
class Expected:
    """What the server owes one connection."""

    results: dict[str, Any] = field(default_factory=dict)  # json id -> tag
    unknown: set[str] = field(default_factory=set)  # json ids of calls to a missing method
    batches: list[set[str]] = field(default_factory=list)  # json ids of each batch's calls
    notes: list[Any] = field(default_factory=list)
    parse_errors: int = 0
    invalid: int = 0
    too_large: bool = False  # a message over the limit: one -32600, then the server closes
    never: list[Any] = field(default_factory=list)  # notifications after it: never run


def key(id_: Any) -> str:
    return json.dumps(id_)


@st.composite
def connection_stream(
    draw: st.DrawFn, run: int, conn: int, ids: Iterator[int], content_length: bool
) -> tuple[bytes, Expected]:
    """The bytes one connection sends, and what the server owes it for them.

    With ``content_length`` each message (or malformed line) is a Content-Length frame.

    Tags carry the run's serial number, so a notification of a reset connection that
    runs late cannot be counted for a later example (fixed width: a replayed example
    must have the same bytes, and so the same chunkings, as the first time).
    """
    owed = Expected()
    expected = owed  # after a message over the limit, a scratch one: nothing more is owed
    parts: list[bytes] = []
    for seq in range(draw(st.integers(min_value=1, max_value=8))):
        tag = [f"r{run:09d}", conn, seq]
        if not owed.too_large and draw(st.integers(0, 15)) == 0:
            parts.append(b'{"jsonrpc":"2.0","method":"echo","params":["' + b"x" * (LIMIT + 1) + b'"],"id":0}\n')
            owed.too_large = True
            expected = Expected()
            continue

        def new_id() -> Any:
            n = next(ids)
            return n if n % 2 else f"c{n}"

        kind = draw(st.sampled_from(["call", "call", "slow", "note", "unknown", "batch", "malformed", "invalid"]))
        if kind == "malformed":
            parts.append(draw(rst.malformed_lines()))
            expected.parse_errors += 1
            continue
        if kind == "invalid":
            parts.append(json.dumps(draw(rst.invalid_requests())).encode() + b"\n")
            expected.invalid += 1
            continue
        message: Any
        if kind == "call":
            id_ = new_id()
            message = {"jsonrpc": "2.0", "method": "echo", "params": [tag], "id": id_}
            expected.results[key(id_)] = tag
        elif kind == "slow":  # (replies then overtake each other)
            id_ = new_id()
            message = {"jsonrpc": "2.0", "method": "slow", "params": [tag, draw(st.integers(0, 30))], "id": id_}
            expected.results[key(id_)] = tag
        elif kind == "unknown":
            id_ = new_id()
            message = {"jsonrpc": "2.0", "method": "nope", "params": [tag], "id": id_}
            expected.unknown.add(key(id_))
        elif kind == "note":
            message = {"jsonrpc": "2.0", "method": "note", "params": [tag]}
            expected.notes.append(tag)
            if owed.too_large:
                owed.never.append(tag)
        else:
            message = []
            calls: set[str] = set()
            for member in range(draw(st.integers(min_value=1, max_value=4))):
                member_tag = [f"r{run:09d}", conn, seq, member]
                if draw(st.booleans()):
                    id_ = new_id()
                    message.append({"jsonrpc": "2.0", "method": "echo", "params": [member_tag], "id": id_})
                    expected.results[key(id_)] = member_tag
                    calls.add(key(id_))
                else:
                    message.append({"jsonrpc": "2.0", "method": "note", "params": [member_tag]})
                    expected.notes.append(member_tag)
                    if owed.too_large:
                        owed.never.append(member_tag)
            if calls:
                expected.batches.append(calls)
        style = draw(st.sampled_from(["line", "pretty", "bare"]))
        if style == "pretty":
            parts.append(json.dumps(message, indent=1).encode() + b"\n")
        elif style == "bare":  # complete at its closing bracket: no newline needed
            parts.append(json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode())
        else:
            parts.append(json.dumps(message, separators=(",", ":")).encode() + b"\n")
    if content_length:
        return b"".join(b"Content-Length: %d\r\n\r\n%s" % (len(part), part) for part in parts), owed
    return b"".join(parts), owed


@dataclass
class Connection:
    sock: socket.socket
    chunks: list[bytes]
    expected: Expected
    abort_after: int | None  # reset after sending this many chunks
    content_length: bool
    received: bytearray = field(default_factory=bytearray)
    reader: threading.Thread | None = None
    ended: bool = False
    reset_seen: bool = False
    stop: threading.Event = field(default_factory=threading.Event)
    # A TLS socket must not read and write at once from two threads: one at a time.
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, data: bytes) -> None:
        with self.lock:
            self.sock.sendall(data)

    def read_all(self) -> None:
        deadline = time.monotonic() + 5 * WAIT
        try:
            while not self.stop.is_set() and time.monotonic() < deadline:
                with self.lock:
                    pending = getattr(self.sock, "pending", lambda: 0)()  # (TLS: decrypted, unread)
                if not pending and not select.select([self.sock], [], [], 0.05)[0]:
                    continue
                try:
                    with self.lock:
                        data = self.sock.recv(65536)
                except TimeoutError:  # (TLS: only part of a record has arrived yet)
                    continue
                if not data:
                    self.ended = True
                    return
                self.received += data
        except (OSError, ValueError) as exc:
            # A reset of ours (ValueError: select() on the socket reset() closed, between
            # the look at stop and the select); or the server's kernel answering bytes we
            # sent after it closed for a message over the limit (TCP: what we had not
            # read is lost).
            if isinstance(exc, ValueError) and not self.stop.is_set():
                raise
            self.ended = self.abort_after is not None
            self.reset_seen = True

    def reset(self) -> None:
        self.stop.set()
        with self.lock:  # (TLS: not while the reader is inside the SSL object)
            if self.sock.family != socket.AF_UNIX:  # (no reset on a Unix socket: a close)
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()


def messages(received: bytes, content_length: bool) -> list[Any]:
    """The replies in what the server wrote: newline-ended lines, or Content-Length frames."""
    if not content_length:
        assert received.endswith(b"\n") or not received, received[-200:]
        return [json.loads(line) for line in received.split(b"\n") if line]
    out = []
    while received:
        head, end, received = received.partition(b"\r\n\r\n")
        assert end, head[-200:]
        lengths = [line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
        assert len(lengths) == 1, head
        length = int(lengths[0])
        assert len(received) >= length, received[-200:]
        out.append(json.loads(received[:length]))
        received = received[length:]
    return out


def check_replies(conn: Connection) -> None:
    """Exactly the replies the connection is owed, each once, nothing else.

    After a reset that followed a message over the limit, only replies it is owed,
    each at most once: TCP dropped what had not been read.
    """
    exp = conn.expected
    complete = not conn.reset_seen
    received = bytes(conn.received)
    if not complete and conn.content_length:
        received = received[: received.rfind(b"Content-Length:")]  # (a frame may be cut short)
    elif not complete:
        received = received[: received.rfind(b"\n") + 1]
    lines = messages(received, conn.content_length)
    results: dict[str, Any] = {}
    unknown: list[str] = []
    batches: list[set[str]] = []
    parse_errors = invalid = too_large = 0

    def single(reply: dict[str, Any], in_batch: bool) -> None:
        nonlocal parse_errors, invalid, too_large
        assert reply.get("jsonrpc") == "2.0", reply
        rid = key(reply["id"])
        if "result" in reply:
            assert rid in exp.results, f"a reply for an id this connection never sent: {reply}"
            assert rid not in results, f"two replies for one id: {reply}"
            results[rid] = reply["result"]
            return
        code = reply["error"]["code"]
        if code == -32601:
            assert rid in exp.unknown, reply
            unknown.append(rid)
        elif code == -32700:
            assert reply["id"] is None and not in_batch, reply
            parse_errors += 1
        elif code == -32600 and "too large" in reply["error"]["message"]:
            assert reply["id"] is None and not in_batch, reply
            too_large += 1
        elif code == -32600:
            assert rid not in exp.results and rid not in exp.unknown, reply
            invalid += 1
        else:
            raise AssertionError(f"unexpected error reply {reply}")

    for line in lines:
        if isinstance(line, list):
            batches.append({key(member["id"]) for member in line})
            for member in line:
                single(member, True)
        else:
            single(line, False)
    if not complete:
        return
    assert results == exp.results
    assert sorted(unknown) == sorted(exp.unknown)
    assert sorted(map(sorted, batches)) == sorted(map(sorted, exp.batches))
    assert (parse_errors, invalid, too_large) == (exp.parse_errors, exp.invalid, int(exp.too_large))


RUNS = iter(range(10**9))


def run_streams(endpoint: Endpoint, data: st.DataObject) -> None:
    ids = iter(range(1, 10**6))
    run = next(RUNS)
    conns: list[Connection] = []
    try:
        for index in range(data.draw(st.integers(min_value=1, max_value=3), label="connections")):
            content_length = data.draw(st.integers(0, 3), label=f"Content-Length {index}") == 0
            stream, expected = data.draw(connection_stream(run, index, ids, content_length), label=f"stream {index}")
            chunks = data.draw(rst.chunkings(stream), label=f"chunks {index}")
            abort = data.draw(st.one_of(st.none(), st.integers(0, len(chunks))), label=f"reset after {index}")
            sock = endpoint.raw(WAIT)
            # Short timeouts: closing a socket does not wake a recv() blocked in another
            # thread. (sendall never waits: a stream is far smaller than a send buffer.)
            sock.settimeout(0.05)
            conns.append(Connection(sock, chunks, expected, abort, content_length))
        for conn in conns:
            conn.reader = threading.Thread(target=conn.read_all, daemon=True)
            conn.reader.start()
        order = data.draw(
            st.permutations([i for i, conn in enumerate(conns) for _ in conn.chunks]), label="interleaving"
        )
        pause = data.draw(st.booleans(), label="pause between pieces")
        sent = [0] * len(conns)
        for index in order:
            conn = conns[index]
            if conn.abort_after is not None and sent[index] >= conn.abort_after:
                if sent[index] == conn.abort_after:
                    conn.reset()
                    sent[index] += 1
                continue
            try:
                conn.send(conn.chunks[sent[index]])
            except OSError:
                # Only once the server closed the connection after a message over the limit.
                assert conn.expected.too_large, "the server closed a connection it owed replies"
            sent[index] += 1
            if pause:
                time.sleep(0.001)
        for index, conn in enumerate(conns):
            if conn.abort_after is not None and sent[index] == conn.abort_after:
                conn.reset()
            elif conn.abort_after is None:
                try:
                    with conn.lock:  # TLS: a TCP half-close, no close_notify (see _transports)
                        socket.socket.shutdown(conn.sock, socket.SHUT_WR)
                except OSError:
                    assert conn.expected.too_large, "the server closed a connection it owed replies"
        for conn in conns:
            assert conn.reader is not None
            conn.reader.join(WAIT if conn.abort_after is None else 1.0)
            assert not conn.reader.is_alive(), "the server never closed a connection the client half-closed"
        for conn in conns:
            if conn.abort_after is None:
                assert conn.ended or (conn.reset_seen and conn.expected.too_large)
                check_replies(conn)
        # Every notification of a connection that was not reset runs exactly once.
        deadline = time.monotonic() + WAIT
        for conn in conns:
            if conn.abort_after is None:
                for tag in conn.expected.notes:
                    while NOTES.count(tag) < 1 and time.monotonic() < deadline:
                        time.sleep(0.005)
        for conn in conns:
            for tag in conn.expected.notes:
                assert NOTES.count(tag) <= 1, f"notification {tag} ran twice"
                if conn.abort_after is None:
                    assert NOTES.count(tag) == 1, f"notification {tag} never ran"
            for tag in conn.expected.never:
                assert NOTES.count(tag) == 0, f"notification {tag} after a message over the limit ran"
        # The server still serves.
        with RPCClient(**endpoint.client_kwargs(), timeout=WAIT) as client:
            assert client.echo("still there") == "still there"
    finally:
        for conn in conns:
            conn.stop.set()
            conn.sock.close()
        for conn in conns:
            if conn.reader is not None:
                conn.reader.join(WAIT)


# Invariant: over several concurrent connections with arbitrary splits and
# interleavings, the threaded server answers each connection exactly what it owes it
# (each call once with its own result, each batch one array, one -32700 per malformed
# line, one -32600 per invalid request, nothing from another connection), runs each
# notification once, closes a half-closed connection, survives resets, and still serves;
# over TCP, a Unix socket and TLS.
def test_sync_server_answers_every_stream(sync_address):
    budget(sync_address.transport, 0.25)(given(data=st.data())(lambda data: run_streams(sync_address, data)))()


# Invariant: the same for the asyncio server.
def test_aio_server_answers_every_stream(aio_address):
    budget(aio_address.transport, 0.25)(given(data=st.data())(lambda data: run_streams(aio_address, data)))()
