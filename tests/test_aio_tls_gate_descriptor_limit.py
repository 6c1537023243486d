"""aio.RPCServer on a TLS port near its process's descriptor limit (RLIMIT_NOFILE).

Invariant: silent peers waiting at the TLS gate cost one descriptor each, so a
server with room for N more descriptors still serves a TLS client while N - 10
silent peers wait (b644ffb's gate needed two per peer: review q15); and when
accepting fails for want of descriptors, the server says so in its log and
accepts again once descriptors are free.

The server runs in a child process: the limit is per process.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _aio_support import WAIT

from jsonrpc_mini import RPCClient

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc/self/fd (Linux)"),
]

ROOM = 30  # descriptors the child may open beyond those it holds once listening

SERVER = textwrap.dedent(
    """
    import asyncio, logging, os, resource, ssl, sys
    from jsonrpc_mini import aio

    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    async def main(certfile, room):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(certfile)
        srv = aio.RPCServer(handshake_timeout=60, max_connections=1000)
        srv.register_function(lambda: "pong", name="ping")
        _, port = await srv.start("127.0.0.1", 0, ssl=ctx)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + room, hard))
        print(port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the test closes stdin
        await srv.shutdown()

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


class Child:
    """The server process: its port, and its log as it comes (read by a thread)."""

    def __init__(self, certfile: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(certfile), str(ROOM)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log: list[str] = []
        assert self.process.stderr is not None and self.process.stdout is not None
        self._reader = threading.Thread(target=self.log.extend, args=(self.process.stderr,), daemon=True)
        self._reader.start()
        self.port = int(self.process.stdout.readline())

    def logged(self, text: str) -> bool:
        return any(text in line for line in self.log)

    def stop(self) -> None:
        """Let the server shut down and the process exit (closing stdin tells it to)."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        assert self.process.wait(WAIT * 3) == 0, "".join(self.log)
        self._reader.join(WAIT)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(WAIT)
        self._reader.join(WAIT)
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def child(tmp_path: Path) -> Iterator[tuple[Child, ssl.SSLContext]]:
    """A TLS server with ROOM descriptors to spare, in a child process; and a client context trusting it."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    certfile = tmp_path / "server.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(certfile))
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    server = Child(certfile)
    try:
        yield server, client_ctx
    finally:
        server.kill()


def ping(port: int, client_ctx: ssl.SSLContext) -> str:
    with RPCClient("127.0.0.1", port, ssl=client_ctx, timeout=WAIT) as c:
        result: str = c.ping()
        return result


def until(condition: Callable[[], bool]) -> None:
    for _ in range(int(WAIT / 0.01)):
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached")


def test_a_tls_client_is_served_while_silent_peers_fill_two_thirds_of_the_room(child: Any) -> None:
    server, client_ctx = child
    silent = [socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) for _ in range(ROOM - 10)]
    try:
        assert ping(server.port, client_ctx) == "pong"
    finally:
        for sock in silent:
            sock.close()
    server.stop()
    assert not server.logged("Too many open files") and not server.logged("accept failed"), server.log


def test_accepting_resumes_once_descriptors_are_free_again(child: Any) -> None:
    server, client_ctx = child
    silent = [socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) for _ in range(ROOM * 2)]
    try:
        until(lambda: server.logged("TLS port: accept failed"))  # more peers than room
    finally:
        for sock in silent:
            sock.close()
    assert ping(server.port, client_ctx) == "pong"
    server.stop()
