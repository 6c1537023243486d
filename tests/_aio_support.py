"""Helpers for the asyncio tests: a strict asyncio.run, servers on port 0, raw connections."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

from jsonrpc_mini import aio

T = TypeVar("T")
WAIT = 10.0  # upper bound for anything a test waits for; never reached when all is well


class Writes(asyncio.Transport):
    """An asyncio transport that keeps what is written (``data``) and only marks itself closed."""

    def __init__(self) -> None:
        super().__init__()
        self.data = b""
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.data += bytes(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True


@contextlib.contextmanager
def unraisable() -> Iterator[list[Any]]:
    """Collect what the interpreter could not raise (errors in __del__ or a closed coroutine's finally)."""
    seen: list[Any] = []
    previous = sys.unraisablehook
    sys.unraisablehook = seen.append
    try:
        yield seen
    finally:
        sys.unraisablehook = previous


def run(main: Callable[[], Awaitable[T]], timeout: float = 30.0, allow: tuple[str, ...] = ()) -> T:
    """asyncio.run in debug mode, bounded; fails on any loop error or task left behind.

    "Task was destroyed but it is pending", "Future exception was never retrieved",
    unclosed transports and callback errors all reach the loop's exception handler,
    which records them here; the test then fails. ``allow`` lists message prefixes
    that are expected (e.g. asyncio's debug-mode report of a failed TLS handshake).
    """
    errors: list[dict[str, Any]] = []

    async def wrapper() -> T:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: errors.append(context))
        async with asyncio.timeout(timeout):
            result = await main()
        # Let closing transports finish, then check nothing was left running.
        for _ in range(5):
            await asyncio.sleep(0)
        left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert not left, f"tasks left running: {left}"
        gc.collect()
        return result

    result = asyncio.run(wrapper(), debug=True)
    gc.collect()
    errors = [c for c in errors if not str(c.get("message")).startswith(allow)] if allow else errors
    assert not errors, f"event loop reported errors: {[c.get('message') for c in errors]}"
    return result


class OneLoop:
    """``run``'s checks, on one debug-mode event loop for all of a property test's examples.

    ``run`` per example (a new debug-mode loop, and two full ``gc.collect()``: 19 ms
    each with the test process's heap) was most of the property tests' time. Here
    each example still fails on a loop error or a task left behind, and a collection
    of the young generations (where an example's garbage is) brings out what only a
    collection reports (a future's exception never retrieved, held in a cycle);
    ``close`` collects everything once more and checks again, so nothing an example
    leaves goes unreported. An example that fails leaves nothing to the next (as
    ``run`` closing its loop): its loop is closed with what it left, and the next
    example gets a new one, so that shrinking sees the same failure. Use it through
    the ``one_loop`` fixture.
    """

    def __init__(self) -> None:
        self._new_loop()

    def _new_loop(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_debug(True)
        errors: list[dict[str, Any]] = []
        self.errors = errors  # (this loop's: a closed one's late reports go to its own list)
        self.loop.set_exception_handler(lambda _loop, context: errors.append(context))

    def run(self, main: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
        """``main()`` run to its end on the shared loop, bounded, then checked as ``run`` does."""

        async def checked() -> T:
            async with asyncio.timeout(timeout):
                result = await main()
            for _ in range(5):  # let closing transports finish, then check nothing was left running
                await asyncio.sleep(0)
            left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            assert not left, f"tasks left running: {left}"
            return result

        try:
            result = self.loop.run_until_complete(checked())
        except BaseException:
            self._replace_loop()
            raise
        gc.collect(1)
        self.check()
        return result

    def _replace_loop(self) -> None:
        """Close the loop with the tasks a failed example left (cancelled, bounded); start a new one."""
        loop = self.loop
        try:
            left = asyncio.all_tasks(loop)
            for task in left:
                task.cancel()
            if left:
                loop.run_until_complete(asyncio.wait(left, timeout=WAIT))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
            self._new_loop()

    def check(self) -> None:
        """Fail if the loop reported an error (an exception never retrieved, a callback's error...)."""
        if self.errors:
            messages = [c.get("message") for c in self.errors]
            self.errors.clear()  # reported once: the next example starts clean
            raise AssertionError(f"event loop reported errors: {messages}")

    def close(self) -> None:
        """Collect everything, check once more, then close the loop."""
        try:
            gc.collect()
            self.check()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()


class StoppedClock:
    """The running loop's clock, stopped: it moves only by ``advance`` until ``run_on``.

    The server reads the time from its loop (``loop.time()``), as the loop does for
    its timers, so a test can say how long each step took whatever the machine's
    speed. ``run_on`` lets it run at the real pace again, from where it stands.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._real = self._loop.time
        self._now = self._real()
        self._offset: float | None = None
        self._loop.time = self.time  # type: ignore[method-assign]

    def time(self) -> float:
        """The loop's time."""
        return self._now if self._offset is None else self._real() + self._offset

    def advance(self, seconds: float) -> None:
        """``seconds`` pass (while stopped)."""
        self._now += seconds

    def run_on(self) -> None:
        """Run at the real pace again, from the time it stopped at."""
        if self._offset is None:
            self._offset = self._now - self._real()


async def spin_until(condition: Callable[[], Any]) -> None:
    """``until`` for a stopped clock (see StoppedClock): loop turns, not timers, bounded by real time (WAIT)."""
    end = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < end, "condition not reached"
        await asyncio.sleep(0)


async def until(condition: Callable[[], Any]) -> None:
    """Wait (polling every 10 ms, at most WAIT) until ``condition()`` is true."""
    for _ in range(int(WAIT / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


@contextlib.asynccontextmanager
async def serving(server: aio.RPCServer, **kwargs: Any) -> AsyncIterator[tuple[str, int]]:
    """Start ``server`` on 127.0.0.1 port 0; shut it down afterwards."""
    address = await server.start("127.0.0.1", 0, **kwargs)
    assert isinstance(address, tuple)
    try:
        yield address
    finally:
        await server.shutdown()


class RawConn:
    """A raw asyncio stream connection speaking newline JSON, for wire-level checks."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, address: tuple[str, int]) -> RawConn:
        return cls(*await asyncio.open_connection(*address))

    async def send(self, value: Any) -> None:
        data = value if isinstance(value, bytes) else json.dumps(value).encode() + b"\n"
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self, timeout: float = WAIT) -> Any:
        """The next JSON line, or None at EOF."""
        async with asyncio.timeout(timeout):
            line = await self.reader.readline()
        return json.loads(line) if line else None

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def request(method: str, params: Any = None, id_: Any = 1) -> dict[str, Any]:
    """A request object (a notification when ``id_`` is None)."""
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        msg["params"] = params
    if id_ is not None:
        msg["id"] = id_
    return msg


@contextlib.contextmanager
def aio_server_in_thread(server: aio.RPCServer, **kwargs: Any) -> Iterator[tuple[str, int]]:
    """Run ``server`` on its own event loop in a thread (for sync clients); stop it after."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    address: list[Any] = []
    stop: list[asyncio.Event] = []

    async def main() -> None:
        stop.append(asyncio.Event())
        address.append(await server.start("127.0.0.1", 0, **kwargs))
        ready.set()
        await stop[0].wait()
        await server.shutdown()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        assert ready.wait(WAIT), "aio server did not start"
        yield address[0]
    finally:
        loop.call_soon_threadsafe(stop[0].set)
        thread.join(WAIT)
        assert not thread.is_alive(), "aio server thread did not stop"
        loop.close()


class SlowReader:
    """A raw server that reads nothing until ``go`` is set (or it is closed), then answers.

    Its one connection's requests (and batches) are answered by ``answer``: by
    default the number of requests read so far, with ``seen`` listing the first
    param of each ``tag`` request and "big" for any other.
    """

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(WAIT)
        self.address = self.listener.getsockname()
        self.go = threading.Event()
        self.seen: list[Any] = []
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            conn, _ = self.listener.accept()
            self.conns.append(conn)
            conn.settimeout(WAIT)
            if not self.go.wait(WAIT):
                return
            buffer = b""
            while chunk := conn.recv(1 << 20):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    message = json.loads(line)
                    replies = [self.answer(m) for m in (message if isinstance(message, list) else [message])]
                    replies = [reply for reply in replies if reply is not None]
                    if replies:
                        body = replies if isinstance(message, list) else replies[0]
                        conn.sendall(json.dumps(body).encode() + b"\n")

    def answer(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """The reply to one request read (None: none is sent)."""
        self.seen.append(request["params"][0] if request["method"] == "tag" else "big")
        return {"jsonrpc": "2.0", "id": request["id"], "result": len(self.seen)}

    def close(self) -> None:
        """Let it read, then close everything and join its thread (bounded)."""
        self.go.set()
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self.listener.close()
        self.thread.join(WAIT)


@contextlib.contextmanager
def slow_reader(kind: type[SlowReader] = SlowReader) -> Iterator[SlowReader]:
    """A started ``kind`` of SlowReader, closed afterwards."""
    server = kind()
    server.thread.start()
    try:
        yield server
    finally:
        server.close()
