"""Helpers for the hardening tests: servers of each kind, raw sockets, leak counters.

Every wait here is bounded by ``WAIT`` (or an explicit timeout) so a broken server
fails a test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from jsonrpc_mini import RPCClient, RPCServer

WAIT = 10.0  # upper bound for anything a test waits for; never reached when all is well
HEAVY = os.environ.get("JSONRPC_MINI_HEAVY", "") not in ("", "0")

Address = Any  # (host, port) or a Unix socket path


def register_handlers(server: Any) -> Any:
    """The handlers every hardening test may call."""

    def echo(x: Any) -> Any:
        return x

    def add(a: Any, b: Any) -> Any:
        return a + b

    def typename(x: Any) -> str:
        return type(x).__name__

    def sleep(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    def fail(text: str) -> None:
        raise ValueError(text)

    for fn in (echo, add, typename, sleep, fail):
        server.register_function(fn)
    return server


@dataclass
class Running:
    """A server started by a test; ``stop()`` shuts it down (idempotent)."""

    kind: str
    address: Address
    server: Any
    _stop: Callable[[], None]
    stopped: bool = field(default=False)

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self._stop()

    def client(self, **kwargs: Any) -> RPCClient:
        kwargs.setdefault("timeout", WAIT)
        if isinstance(self.address, str):
            return RPCClient(path=self.address, **kwargs)
        host, port = self.address[0], self.address[1]
        return RPCClient(host, port, **kwargs)


def start_sync(options: dict[str, Any], **listen: Any) -> Running:
    server = register_handlers(RPCServer(**options))
    address = server.start("127.0.0.1", 0, **listen) if "path" not in listen else server.start(**listen)
    return Running("sync", address, server, server.shutdown)


def start_aio(options: dict[str, Any], **listen: Any) -> Running:
    from jsonrpc_mini import aio  # noqa: PLC0415 - only the aio variants need it

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="hardening-aio-loop", daemon=True)
    thread.start()
    server = register_handlers(aio.RPCServer(**options))

    async def _start() -> Any:
        if "path" in listen:
            return await server.start(**listen)
        return await server.start("127.0.0.1", 0, **listen)

    try:
        address = asyncio.run_coroutine_threadsafe(_start(), loop).result(WAIT)
    except BaseException:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT)
        loop.close()
        raise

    def stop() -> None:
        try:
            asyncio.run_coroutine_threadsafe(server.shutdown(), loop).result(WAIT * 3)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(WAIT)
            loop.close()

    return Running("aio", address, server, stop)


def start(kind: str, options: dict[str, Any] | None = None, **listen: Any) -> Running:
    """Start a server of ``kind`` ("sync" or "aio") with the standard handlers."""
    opts = dict(options or {})
    return start_sync(opts, **listen) if kind == "sync" else start_aio(opts, **listen)


@contextlib.contextmanager
def running(kind: str, options: dict[str, Any] | None = None, **listen: Any) -> Iterator[Running]:
    srv = start(kind, options, **listen)
    try:
        yield srv
    finally:
        srv.stop()


# -- raw sockets -------------------------------------------------------------


class Raw:
    """A plain socket speaking bytes, with bounded reads of newline-framed replies."""

    def __init__(self, address: Address, timeout: float = WAIT, *, rcvbuf: int | None = None) -> None:
        if isinstance(address, str):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            self.sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # (before connecting: TCP sets its window then)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(address if isinstance(address, str) else (address[0], address[1]))
        self.buf = bytearray()
        self.eof = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> bool:
        """Read once; False on EOF/reset or when the deadline passed."""
        remaining = deadline - time.monotonic()
        if remaining <= 0 or self.eof:
            return False
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        except OSError:  # reset by the peer counts as closed
            self.eof = True
            return False
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def replies(self, count: int, timeout: float = WAIT) -> list[Any]:
        """Read ``count`` newline-framed JSON replies (fewer if the peer closes or time runs out)."""
        deadline = time.monotonic() + timeout
        out: list[Any] = []
        while len(out) < count:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line = bytes(self.buf[:nl])
                del self.buf[: nl + 1]
                if line.strip():
                    out.append(json.loads(line))
                continue
            if not self._fill(deadline):
                break
        return out

    def reply(self, timeout: float = WAIT) -> Any:
        got = self.replies(1, timeout)
        assert got, f"no reply within {timeout} s (eof={self.eof}, buffered={bytes(self.buf[:200])!r})"
        return got[0]

    def closed_within(self, timeout: float) -> bool:
        """True if the peer closes (EOF or reset) within ``timeout``; data read meanwhile is kept."""
        deadline = time.monotonic() + timeout
        while not self.eof and self._fill(deadline):
            pass
        return self.eof

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def assert_serves(srv: Running) -> None:
    """A fresh client gets a correct answer (the server survived whatever came before)."""
    with srv.client() as c:
        assert c.add(2, 3) == 5
        assert c.echo("après") == "après"


# -- leaks -------------------------------------------------------------------


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def settle(condition: Callable[[], bool], timeout: float = WAIT) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        gc.collect()
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
