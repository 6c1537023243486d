"""Both clients fed arbitrary server replies by a scripted server (127.0.0.1 TCP, Unix socket, TLS).

Several calls are in flight at once; the server answers them in any order, twice, with
an error, with a reply that cannot be decoded, or not at all, mixed with replies to
ids nobody sent, log lines, notifications and requests of its own, all split at
arbitrary points. Every call must end with its own result, its own error or its
timeout: never another caller's result, never later than its timeout.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jsonrpc_mini import ConnectionLost, RPCClient, RPCError, RPCTimeout, ServerError, aio

from ._transports import TRANSPORTS, Endpoint, budget

pytestmark = pytest.mark.timeout(600)

WAIT = 20.0  # bound on every wait
SHORT = 0.3  # timeout of a call that gets no usable reply
LONG = 15.0  # timeout of a call that gets one (generous: the machine may be busy)

ACTIONS = ["reply", "reply", "twice", "error", "omit", "nan"]
HARMLESS = ["unknown id", "log line", "notification", "server request", "blank"]
HARMFUL = ["id null error", "malformed", "array"]


@dataclass
class Script:
    """What the scripted server does with each call (by caller index), and the noise it adds."""

    actions: list[str]
    noise: list[tuple[int, str]]  # (position in the reply stream, kind)
    order: list[int]  # the callers' replies in the order they are written
    styles: list[str]
    harmful: bool
    cut_points: list[int]  # taken modulo the stream's length
    bytewise: bool  # every byte its own piece
    pause: bool

    def cuts(self, data: bytes) -> list[bytes]:
        """The stream split at the script's cut points."""
        if self.bytewise:
            return [data[i : i + 1] for i in range(len(data))]
        bounds = sorted({0, len(data), *(point % len(data) for point in self.cut_points)})
        return [data[a:b] for a, b in itertools.pairwise(bounds)]


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def frame(message: bytes | Any, style: str) -> bytes:
    if isinstance(message, bytes):
        return message + b"\n"
    if style == "pretty":
        return json.dumps(message, indent=1).encode() + b"\n"
    if style == "bare":
        return compact(message)
    return compact(message) + b"\n"


def reply_stream(script: Script, calls: dict[int, tuple[Any, Any]]) -> bytes:
    """The bytes the server writes: calls maps caller index -> (request id, tag)."""
    items: list[bytes] = []
    for position, index in enumerate(script.order):
        id_, tag = calls[index]
        action = script.actions[index]
        style = script.styles[position % len(script.styles)]
        if action in ("reply", "twice"):
            items.append(frame({"jsonrpc": "2.0", "id": id_, "result": tag}, style))
        elif action == "error":
            error = {"code": -32000 - index, "message": f"failed {index}", "data": tag}
            items.append(frame({"jsonrpc": "2.0", "id": id_, "error": error}, style))
        elif action == "nan":
            items.append(frame(b'{"jsonrpc":"2.0","id":' + compact(id_) + b',"result":NaN}', style))
    for index in script.order:
        if script.actions[index] == "twice":
            id_, tag = calls[index]
            items.append(frame({"jsonrpc": "2.0", "id": id_, "result": ["again", tag]}, "line"))
    some_id = calls[script.order[0]][0] if script.order else 1
    for position, kind in sorted(script.noise, reverse=True):
        if kind == "unknown id":
            noise = frame({"jsonrpc": "2.0", "id": f"nobody-{position}", "result": ["stray", position]}, "line")
        elif kind == "log line":
            noise = b"server says hello " + str(position).encode() + b"\n"
        elif kind == "notification":
            noise = frame({"jsonrpc": "2.0", "method": "window/log", "params": [position]}, "line")
        elif kind == "server request":
            noise = frame({"jsonrpc": "2.0", "method": "ping", "params": ["x"], "id": some_id}, "line")
        elif kind == "blank":
            noise = b"\n"
        elif kind == "id null error":
            noise = frame({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}}, "line")
        elif kind == "malformed":
            noise = b"{]\n"
        else:  # a batch's array answering no call (no batch was sent)
            stray = {"jsonrpc": "2.0", "id": f"nobody-{position}", "result": ["array", position]}
            noise = frame([stray, {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "no"}}], "line")
        items.insert(min(position, len(items)), noise)
    return b"".join(items)


@st.composite
def scripts(draw: st.DrawFn, callers: int) -> Script:
    harmful = draw(st.booleans())
    kinds = HARMLESS + HARMFUL if harmful else HARMLESS
    return Script(
        actions=draw(st.lists(st.sampled_from(ACTIONS), min_size=callers, max_size=callers)),
        noise=draw(st.lists(st.tuples(st.integers(0, 2 * callers), st.sampled_from(kinds)), max_size=5)),
        order=draw(st.permutations(range(callers))),
        styles=draw(st.lists(st.sampled_from(["line", "pretty", "bare"]), min_size=1, max_size=3)),
        harmful=harmful,
        cut_points=draw(st.lists(st.integers(1, 2**20), max_size=40)),
        bytewise=draw(st.integers(0, 9)) == 0,
        pause=draw(st.booleans()),
    )


def _requests_per_read(conn: socket.socket) -> Iterator[list[Any]]:
    """The whole request lines of each read from ``conn``, decoded, until its end."""
    buffer = b""
    while data := conn.recv(65536):
        buffer += data
        *lines, buffer = buffer.split(b"\n")
        yield [json.loads(line) for line in lines]


class ScriptedServer:
    """Accepts one client; once ``callers`` requests have arrived, writes the script's stream.

    Then it answers every later request correctly, until the client closes.
    """

    def __init__(self, script: Script, callers: int, endpoint: Endpoint) -> None:
        self.script = script
        self.callers = callers
        self.listener = endpoint.listener(WAIT)  # (TLS: accept() does the handshake)
        self.error: BaseException | None = None
        self.chunks: list[bytes] = []
        self.stream = b""
        self.sent = threading.Event()  # the script's stream is written
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError as exc:
            self.error = exc
            return
        with conn:
            conn.settimeout(WAIT)
            try:
                self.serve(conn)
            except OSError:
                pass
            except BaseException as exc:  # reported by the test
                self.error = exc

    def serve(self, conn: socket.socket) -> None:
        reads = _requests_per_read(conn)
        calls: dict[int, tuple[Any, Any]] = {}
        while len(calls) < self.callers:
            requests = next(reads, None)
            if requests is None:
                return
            for request in requests:
                calls[request["params"][0][0]] = (request["id"], request["params"][0])
        self.stream = reply_stream(self.script, calls)
        self.chunks = self.script.cuts(self.stream) if self.stream else []
        for chunk in self.chunks:
            conn.sendall(chunk)
            if self.script.pause:
                time.sleep(0.002)
        self.sent.set()
        for requests in reads:
            for request in requests:
                conn.sendall(compact({"jsonrpc": "2.0", "id": request["id"], "result": request["params"]}) + b"\n")

    def close(self) -> None:
        self.listener.close()
        self.thread.join(WAIT)
        assert not self.thread.is_alive()


def check_outcome(script: Script, index: int, outcome: Any, elapsed: float) -> None:
    """The caller's own result, its own error, or its timeout; nothing else."""
    tag = [index, "tag"]
    action = script.actions[index]
    if isinstance(outcome, BaseException) and not isinstance(outcome, RPCError):
        raise AssertionError(f"caller {index} ({action}) raised a non-library exception") from outcome
    if not isinstance(outcome, BaseException):
        assert outcome == tag, f"caller {index} ({action}) got {outcome!r}, not its own result"
    assert elapsed < (SHORT if action in ("omit",) else LONG) + 5.0, f"caller {index} waited {elapsed:.1f} s"
    if script.harmful:
        return  # an id-null error or an array may end a call early: only wrong results count
    if action in ("reply", "twice"):
        assert outcome == tag, f"caller {index} ({action}) got {outcome!r}"
    elif action == "error":
        assert isinstance(outcome, ServerError), repr(outcome)
        assert (outcome.code, outcome.message, outcome.data) == (-32000 - index, f"failed {index}", tag)
    elif action == "omit":
        assert isinstance(outcome, RPCTimeout), repr(outcome)
    else:
        assert type(outcome) is RPCError and outcome.code is None, repr(outcome)
        assert "could not be read" in outcome.message, outcome.message


def timeout_for(script: Script, index: int) -> float:
    return SHORT if script.actions[index] == "omit" else LONG


# Invariant: concurrent calls on one threaded RPCClient each end with their own result,
# their own error or their own timeout, whatever order, duplicates, undecodable replies,
# stray replies, log lines and server messages the server sends, split anywhere; the
# client then still works. Over TCP, a Unix socket and TLS.
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sync_client_gives_each_caller_its_own_reply(transport: str) -> None:
    test = given(callers=st.integers(1, 5), data=st.data())(
        lambda callers, data: run_sync_callers(Endpoint.new(transport), callers, data)
    )
    budget(transport, 0.25)(test)()


# Invariant (pinned): two id-null errors written byte by byte after the one reply are
# still unread when the caller has its result; each may end one later call (the only call
# in flight), and the client then still works. Over TCP, a Unix socket and TLS.
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sync_client_works_after_unread_id_null_errors(transport: str) -> None:
    script = Script(
        actions=["reply"],
        noise=[(1, "id null error"), (2, "id null error")],
        order=[0],
        styles=["line"],
        harmful=True,
        cut_points=[],
        bytewise=True,
        pause=True,
    )
    run_sync_script(Endpoint.new(transport), 1, script)


def run_sync_callers(endpoint: Endpoint, callers: int, data: st.DataObject) -> None:
    run_sync_script(endpoint, callers, data.draw(scripts(callers), label="script"))


def run_sync_script(endpoint: Endpoint, callers: int, script: Script) -> None:
    server = ScriptedServer(script, callers, endpoint)
    outcomes: dict[int, tuple[Any, float]] = {}
    try:
        with RPCClient(**endpoint.client_kwargs(), timeout=WAIT) as client:

            def caller(index: int) -> None:
                start = time.monotonic()
                try:
                    result: Any = client.with_timeout(timeout_for(script, index)).echo([index, "tag"])
                except BaseException as exc:  # checked below
                    result = exc
                outcomes[index] = (result, time.monotonic() - start)

            threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(LONG + WAIT)
            assert not any(t.is_alive() for t in threads), "a call hung past its timeout"
            # The rest of the stream is read by this call: the sync client reads only
            # while a call waits, and over a Unix socket a stream written byte by byte
            # fills the socket's buffer (each write takes ~1 KiB of it) before it is all
            # written. The server answers this call once it has written the stream.
            # Each harmful item still unread (an id-null error, alone or in an array, or a
            # malformed line) may end the one call in flight: one more call for each.
            unread_harmful = sum(kind in HARMFUL for _, kind in script.noise)
            while True:
                try:
                    after = client.echo("after")
                    break
                except RPCError as exc:
                    assert not isinstance(exc, (ConnectionLost, RPCTimeout)), repr(exc)
                    assert unread_harmful > 0, f"an after-call failed with no harmful item left: {exc!r}"
                    unread_harmful -= 1
            assert after == ["after"]
            assert server.sent.is_set()
    finally:
        server.close()
        endpoint.close()
    assert server.error is None, server.error
    for index in range(callers):
        check_outcome(script, index, *outcomes[index])


# Invariant: the same for concurrent calls on one asyncio client.
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_aio_client_gives_each_caller_its_own_reply(transport: str) -> None:
    test = given(callers=st.integers(1, 5), data=st.data())(
        lambda callers, data: run_aio_callers(Endpoint.new(transport), callers, data)
    )
    budget(transport, 0.25)(test)()


def run_aio_callers(endpoint: Endpoint, callers: int, data: st.DataObject) -> None:
    script = data.draw(scripts(callers), label="script")
    server = ScriptedServer(script, callers, endpoint)

    async def main() -> dict[int, tuple[Any, float]]:
        outcomes: dict[int, tuple[Any, float]] = {}
        async with await aio.connect(**endpoint.client_kwargs(), timeout=WAIT) as client:

            async def caller(index: int) -> None:
                start = time.monotonic()
                try:
                    result: Any = await client.with_timeout(timeout_for(script, index)).echo([index, "tag"])
                except Exception as exc:  # checked below
                    result = exc
                outcomes[index] = (result, time.monotonic() - start)

            await asyncio.wait_for(asyncio.gather(*(caller(i) for i in range(callers))), LONG + WAIT)
            assert await asyncio.to_thread(server.sent.wait, WAIT)
            try:
                after = await client.echo("after")
            except RPCError:
                assert script.harmful  # (as in the sync test)
                after = await client.echo("after")
            assert after == ["after"]
        return outcomes

    try:
        outcomes = asyncio.run(main())
    finally:
        server.close()
        endpoint.close()
    assert server.error is None, server.error
    for index in range(callers):
        check_outcome(script, index, *outcomes[index])


# --- batches ----------------------------------------------------------------------------

BATCH_ACTIONS = ["reply", "reply", "twice", "error", "omit"]


@dataclass
class BatchScript:
    """How the server answers each member of one batch (by index), in one array."""

    actions: list[str]
    order: list[int]  # the members' replies in the array, in this order
    strays: int  # replies to ids nobody sent, inserted into the array
    cut_points: list[int]


@st.composite
def batch_scripts(draw: st.DrawFn, members: int) -> BatchScript:
    actions = draw(st.lists(st.sampled_from(BATCH_ACTIONS), min_size=members, max_size=members))
    if all(action == "omit" for action in actions):  # (an array naming none of the batch's ids ends nothing)
        actions[draw(st.integers(0, members - 1))] = "reply"
    return BatchScript(
        actions=actions,
        order=draw(st.permutations(range(members))),
        strays=draw(st.integers(0, 2)),
        cut_points=draw(st.lists(st.integers(1, 2**20), max_size=20)),
    )


def batch_reply(script: BatchScript, members: dict[int, tuple[Any, Any]]) -> bytes:
    replies: list[Any] = []
    for index in script.order:
        id_, tag = members[index]
        action = script.actions[index]
        if action in ("reply", "twice"):
            replies += [{"jsonrpc": "2.0", "id": id_, "result": tag}] * (2 if action == "twice" else 1)
        elif action == "error":
            replies.append(
                {"jsonrpc": "2.0", "id": id_, "error": {"code": -32000 - index, "message": "m", "data": tag}}
            )
    for stray in range(script.strays):
        replies.insert(stray * 2, {"jsonrpc": "2.0", "id": f"nobody-{stray}", "result": ["stray"]})
    return compact(replies) + b"\n"


def serve_batch(listener: socket.socket, script: BatchScript, errors: list[BaseException]) -> None:
    """Answer the one batch with the script's array (in pieces), then every request correctly."""
    try:
        conn, _ = listener.accept()
    except OSError as exc:
        errors.append(exc)
        return
    with conn:
        conn.settimeout(WAIT)
        try:
            buffer = b""
            while b"\n" not in buffer:
                data = conn.recv(65536)
                if not data:
                    return
                buffer += data
            line, buffer = buffer.split(b"\n", 1)
            members = {m["params"][0][0]: (m["id"], m["params"][0]) for m in json.loads(line)}
            data = batch_reply(script, members)
            bounds = sorted({0, len(data), *(point % len(data) for point in script.cut_points)})
            for a, b in itertools.pairwise(bounds):
                conn.sendall(data[a:b])
                time.sleep(0.001)
            while True:
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    request = json.loads(line)
                    conn.sendall(compact({"jsonrpc": "2.0", "id": request["id"], "result": request["params"]}) + b"\n")
                data = conn.recv(65536)
                if not data:
                    return
                buffer += data
        except OSError:
            pass
        except BaseException as exc:  # reported by the test
            errors.append(exc)


def check_member(script: BatchScript, index: int, outcome: Any) -> None:
    tag = [index, "tag"]
    action = script.actions[index]
    if action in ("reply", "twice"):
        assert outcome == tag, f"member {index} ({action}) got {outcome!r}"
    elif action == "error":
        assert isinstance(outcome, ServerError), repr(outcome)
        assert (outcome.code, outcome.data) == (-32000 - index, tag), repr(outcome)
    else:
        assert type(outcome) is RPCError and outcome.code is None, repr(outcome)
        assert "no response for this call" in outcome.message, outcome.message


# Invariant: a batch's reply array, members in any order, some left out, some twice,
# with replies to ids nobody sent, split anywhere: each member gets its own result or
# error, a member left out fails at once (not by a timeout) on both clients, and the
# client then still works.
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_clients_give_each_batch_member_its_own_reply(transport: str) -> None:
    test = given(members=st.integers(1, 5), data=st.data(), use_aio=st.booleans())(
        lambda members, data, use_aio: run_batch(Endpoint.new(transport), members, data, use_aio)
    )
    budget(transport, 0.25)(test)()


def run_batch(endpoint: Endpoint, members: int, data: st.DataObject, use_aio: bool) -> None:
    script = data.draw(batch_scripts(members), label="script")
    listener = endpoint.listener(WAIT)
    errors: list[BaseException] = []
    thread = threading.Thread(target=serve_batch, args=(listener, script, errors))
    thread.start()
    outcomes: list[Any] = []

    def take(result: Any) -> None:
        try:
            outcomes.append(result.result())
        except RPCError as exc:
            outcomes.append(exc)

    async def aio_main() -> None:
        async with await aio.connect(**endpoint.client_kwargs(), timeout=LONG) as client:
            async with client.batch() as batch:
                pending = [batch.echo([index, "tag"]) for index in range(members)]
            for result in pending:
                take(result)
            assert await client.echo("after") == ["after"]

    try:
        if use_aio:
            asyncio.run(aio_main())
        else:
            with RPCClient(**endpoint.client_kwargs(), timeout=LONG) as client:
                with client.batch() as batch:
                    pending = [batch.echo([index, "tag"]) for index in range(members)]
                for result in pending:
                    take(result)
                assert client.echo("after") == ["after"]
    finally:
        listener.close()
        thread.join(WAIT)
        endpoint.close()
    assert not thread.is_alive() and not errors, errors
    for index in range(members):
        check_member(script, index, outcomes[index])
