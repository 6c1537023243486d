"""Helpers and fixtures for the interoperability tests: our server with known methods, node peers.

Every peer is required: a missing ``node`` or an uninstalled npm package fails the
test with the command that fixes it, it never skips. Node processes are started
with their output captured and always stopped with bounded waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jsonrpc_mini import MethodNotFound, RemoteError, RPCClient, RPCError, RPCServer, ServerError, aio

NODE_DIR = Path(__file__).parent / "node"
WAIT = 20.0  # upper bound for anything a test waits for; never reached when all is well
INSTALL_HINT = "npm ci --no-audit --no-fund --prefix tests/interop/node"

# The npm aliases in node/package.json and the exact versions they pin.
PEERS = {
    "jayson4": "4.3.0",
    "jayson5": "5.0.0",
    "vscode-jsonrpc9": "9.0.3",
    "vscode-jsonrpc10": "10.0.0",
}

CUSTOM_ERROR = {"code": -32001, "message": "custom failure", "data": {"why": "asked", "n": [1, 2]}}
APP_ERROR = {"code": 4711, "message": "application error", "data": None}


def unicode_payload(size: int = 300_000) -> str:
    """A large string of every awkward kind: astral, CJK, combining, escapes, U+2028."""
    pieces = [
        "ascii ",
        "\u00e9t\u00e9 ",  # Latin-1 range
        "\u65e5\u672c\u8a9e ",  # CJK
        "\U0001f600\U0001f680\U0001d11e ",  # astral: surrogate pairs in JS and UTF-16
        "e\u0301 ",  # combining mark
        '"quote" \\backslash\\ ',
        "\t\r\n\b\f\x00\x1f ",  # control characters that must be escaped
        "\u2028\u2029 ",  # line/paragraph separators: raw in JSON, not in old JS
        "\ufeff\ufffd ",
    ]
    unit = "".join(pieces)
    return (unit * (size // len(unit) + 1))[:size]


def describe(text: str) -> list[Any]:
    """What both sides compute to prove a string crossed intact: code points and UTF-8 hash."""
    return [len(text), hashlib.sha256(text.encode("utf-8")).hexdigest()]


class Methods:
    """The methods our server offers to every peer, with a record of notifications."""

    def __init__(self) -> None:
        self.records: list[Any] = []
        self.lock = threading.Lock()
        self.event = threading.Condition(self.lock)

    def install(self, server: RPCServer) -> None:
        server.register_function(lambda a, b: a + b, name="add")
        server.register_function(lambda minuend, subtrahend: minuend - subtrahend, name="subtract")
        server.register_function(lambda value: value, name="echo")
        server.register_function(describe, name="describe")
        server.register_function(self.fail, name="fail")
        server.register_function(self.app_fail, name="app_fail")
        server.register_function(self.boom, name="boom")
        server.register_function(self.record, name="record")
        server.register_function(self.get_records, name="records")
        server.register_function(lambda: None, name="nothing")

    @staticmethod
    def fail() -> None:
        raise RPCError(CUSTOM_ERROR["code"], CUSTOM_ERROR["message"], CUSTOM_ERROR["data"])

    @staticmethod
    def app_fail() -> None:
        raise RPCError(APP_ERROR["code"], APP_ERROR["message"])

    @staticmethod
    def boom() -> None:
        raise ValueError("secret detail that must not leak")

    def record(self, value: Any) -> None:
        with self.event:
            self.records.append(value)
            self.event.notify_all()

    def get_records(self) -> list[Any]:
        with self.lock:
            return list(self.records)

    def wait_records(self, count: int) -> list[Any]:
        """The notifications received once there are ``count`` of them (bounded wait)."""
        with self.event:
            self.event.wait_for(lambda: len(self.records) >= count, timeout=WAIT)
            return list(self.records)


@pytest.fixture
def methods() -> Methods:
    return Methods()


class AioServerThread:
    """Our ``aio.RPCServer`` on an event loop in its own thread, with the sync server's shape."""

    def __init__(self, **options: Any) -> None:
        self.server = aio.RPCServer(**options)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="interop-aio-server", daemon=True)

    def start(self, host: str, port: int, ssl: Any = None) -> tuple[str, int]:
        self.thread.start()
        address = asyncio.run_coroutine_threadsafe(self.server.start(host, port, ssl=ssl), self.loop).result(WAIT)
        assert isinstance(address, tuple)
        return address[0], address[1]

    @property
    def address(self) -> Any:
        return self.server.address

    @property
    def connection_count(self) -> int:
        return self.server.connection_count

    def shutdown(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.server.shutdown(), self.loop).result(WAIT)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(WAIT)
            assert not self.thread.is_alive(), "the asyncio server's loop did not stop"
            self.loop.close()


@contextlib.contextmanager
def serving(kind: str, methods: Methods, ssl: Any = None, **options: Any) -> Iterator[Any]:
    """Our server of ``kind`` ("threads" or "asyncio") with :class:`Methods`; always shut down."""
    server: Any = RPCServer(**options) if kind == "threads" else AioServerThread(**options)
    methods.install(server if kind == "threads" else server.server)
    server.start("127.0.0.1", 0, ssl=ssl)
    try:
        yield server
    finally:
        server.shutdown()


SERVER_KINDS = ["threads", "asyncio"]


@pytest.fixture(params=SERVER_KINDS)
def rpc_server(request: pytest.FixtureRequest, methods: Methods) -> Iterator[Any]:
    """Our RPCServer (sync, then asyncio) with :class:`Methods` on a free 127.0.0.1 port."""
    with serving(request.param, methods) as server:
        yield server


@pytest.fixture
def our_server(rpc_server: Any) -> tuple[str, int]:
    """The (host, port) of :func:`rpc_server`."""
    address = rpc_server.address
    assert isinstance(address, tuple)
    return address[0], address[1]


def _peer_problem() -> str | None:
    """Why the pinned npm peers are not usable as installed, or None if they are."""
    for alias, version in PEERS.items():
        manifest = NODE_DIR / "node_modules" / alias / "package.json"
        if not manifest.is_file():
            return f"npm peer {alias} is not installed"
        found = json.loads(manifest.read_text("utf-8"))["version"]
        if found != version:
            return f"npm peer {alias} is {found}, the tests pin {version}"
    return None


def _install_peers() -> None:
    """``npm ci`` the pinned peers once, under a lock (pytest-xdist workers share the folder)."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(
            f"{_peer_problem()} and npm is not on PATH: install Node.js >= 20 with npm, then run {INSTALL_HINT}"
        )
    key = hashlib.sha256(str(NODE_DIR.resolve()).encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"jsonrpc-mini-interop-{key}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other worker waits here, then finds the peers installed
        if _peer_problem() is None:
            return
        command = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]
        try:
            proc = subprocess.run(command, cwd=NODE_DIR, capture_output=True, timeout=300, check=False)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`{' '.join(command)}` in {NODE_DIR} did not finish in 300 s")
        if proc.returncode != 0:
            pytest.fail(
                f"`{' '.join(command)}` in {NODE_DIR} failed:\n{proc.stderr.decode('utf-8', 'replace')[-4000:]}"
            )


@pytest.fixture(scope="session")
def node() -> str:
    """The node executable, with every pinned peer installed; fails (never skips) otherwise.

    Missing peers are installed with ``npm ci`` from the lockfile (CI does that up
    front); an install that fails fails the tests with npm's message.
    """
    path = shutil.which("node")
    if path is None:
        pytest.fail("interop tests need Node.js >= 20 (`node` on PATH); install it, then run " + INSTALL_HINT)
    if _peer_problem() is not None:
        _install_peers()
    problem = _peer_problem()
    if problem is not None:
        pytest.fail(f"{problem} even after npm ci: run {INSTALL_HINT}")
    return path


def run_node(node: str, script: str, *args: Any, timeout: float = 45.0) -> Any:
    """Run a node script to completion and return the JSON it prints on stdout."""
    command = [node, str(NODE_DIR / script), *(str(a) for a in args)]
    try:
        proc = subprocess.run(command, cwd=NODE_DIR, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{script} {args} did not finish in {timeout}s\nstdout: {exc.stdout!r}\nstderr: {exc.stderr!r}")
    stdout, stderr = proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        pytest.fail(f"{script} {args} exited {proc.returncode}\nstdout: {stdout[-4000:]}\nstderr: {stderr[-4000:]}")
    try:
        return json.loads(stdout)
    except ValueError:
        pytest.fail(f"{script} {args} printed no JSON\nstdout: {stdout[-4000:]}\nstderr: {stderr[-4000:]}")


@contextlib.contextmanager
def node_server(node: str, script: str, *args: Any) -> Iterator[tuple[str, int]]:
    """Start a node server script; it prints ``{"port": N}`` when listening. Always stopped.

    The script exits when its stdin closes; it is killed if it does not within 5 s.
    """
    command = [node, str(NODE_DIR / script), *(str(a) for a in args)]
    proc = subprocess.Popen(
        command, cwd=NODE_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out: list[bytes] = []
    err: list[bytes] = []
    readers = [
        threading.Thread(target=_drain, args=(proc.stdout, out), daemon=True),
        threading.Thread(target=_drain, args=(proc.stderr, err), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        deadline = time.monotonic() + WAIT
        while not out or b"\n" not in out[0]:
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"{script} did not report its port\nstdout: {b''.join(out)!r}\nstderr: {b''.join(err)!r}")
            time.sleep(0.01)
        port = json.loads(out[0].split(b"\n")[0])["port"]
        yield "127.0.0.1", port
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()  # type: ignore[union-attr]
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=WAIT)
        for reader in readers:
            reader.join(WAIT)
    if proc.returncode != 0:
        # A peer that crashed is a failure even if every call before it passed.
        pytest.fail(f"{script} exited {proc.returncode}\nstderr: {b''.join(err).decode('utf-8', 'replace')[-4000:]}")


def _drain(stream: Any, sink: list[bytes]) -> None:
    for chunk in iter(lambda: stream.read1(65536), b""):
        if sink:
            sink[0] += chunk
        else:
            sink.append(chunk)
    stream.close()


def check_fail_and_app_fail(c: RPCClient) -> None:
    """``c.fail()`` raises our custom ServerError, ``c.app_fail()`` the application error: code, message, data."""
    with pytest.raises(ServerError) as custom:
        c.fail()
    assert (custom.value.code, custom.value.message, custom.value.data) == (
        CUSTOM_ERROR["code"],
        CUSTOM_ERROR["message"],
        CUSTOM_ERROR["data"],
    )
    with pytest.raises(RemoteError) as app:
        c.app_fail()
    assert (app.value.code, app.value.message, app.value.data) == (APP_ERROR["code"], APP_ERROR["message"], None)


def notes_around_a_batch(c: RPCClient) -> Any:
    """Notify "one", then a batch (add 3 + 4, notify "two", an unknown method), checked; the server's records."""
    c.notify("record", "one")
    with c.batch() as b:
        first = b.add(3, 4)
        b.notify("record", "two")
        missing = b.nope()
    assert first.result() == 7
    with pytest.raises(MethodNotFound):
        missing.result()
    return c.records()


def slow_calls_from_threads(c: RPCClient, longest: int, step: int, count: int = 16) -> dict[int, Any]:
    """``count`` threads each call ``c.slow(i, longest - step * i)`` (the later, the sooner done): results by i."""
    results: dict[int, Any] = {}

    def worker(i: int) -> None:
        results[i] = c.slow(i, longest - step * i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    return results


def wait_until(predicate: Any, what: str) -> None:
    """Poll ``predicate`` (bounded); fail with ``what`` if it never holds."""
    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)
