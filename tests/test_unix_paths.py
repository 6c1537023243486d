"""Unix socket files: a busy server's file is never taken over; ``unix_mode`` is set before anyone can connect."""

from __future__ import annotations

import os
import pathlib
import shutil
import socket
import ssl as _ssl
import tempfile
from collections.abc import Callable
from typing import Any

import pytest
from _aio_support import run
from _driver_helpers import tls_contexts

from jsonrpc_mini import RPCClient, RPCServer, _unix, aio

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets on this platform"),
]


def start_and_stop(
    driver: str,
    path: str,
    ssl: _ssl.SSLContext | None = None,
    while_up: Callable[[], None] = lambda: None,
    **options: Any,
) -> None:
    """Start a server of ``driver`` on ``path``, call ``while_up``, then shut it down (raises what start raises)."""
    if driver == "sync":
        server = RPCServer(**options)
        server.start(path=path, ssl=ssl)
        try:
            while_up()
        finally:
            server.shutdown()
        return

    async def main() -> None:
        server = aio.RPCServer(**options)
        await server.start(path=path, ssl=ssl)
        try:
            while_up()
        finally:
            await server.shutdown()

    run(main)


def probe(path: str) -> str:
    """What a client connecting to ``path`` now meets: connected, refused or absent."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        return "connected"
    except ConnectionRefusedError:
        return "refused"
    except FileNotFoundError:
        return "absent"
    finally:
        sock.close()


@pytest.mark.parametrize("driver", ["sync", "aio"])
def test_a_live_server_whose_listen_queue_is_full_keeps_its_socket_file(driver: str, unix_path: str) -> None:
    busy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    busy.bind(unix_path)
    busy.listen(0)
    queued: list[socket.socket] = []
    try:
        for _ in range(64):  # fill the queue: the next connect would wait (EAGAIN without blocking)
            peer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            peer.setblocking(False)
            try:
                peer.connect(unix_path)
            except BlockingIOError:
                peer.close()
                break
            queued.append(peer)
        else:
            pytest.fail("the listen queue never filled")
        inode = os.stat(unix_path).st_ino
        with pytest.raises(OSError, match="in use by another server"):
            start_and_stop(driver, unix_path)
        assert os.stat(unix_path).st_ino == inode  # still the busy server's file
    finally:
        for peer in queued:
            peer.close()
        busy.close()


@pytest.mark.parametrize("tls", [False, True])
@pytest.mark.parametrize("driver", ["sync", "aio"])
def test_unix_mode_is_set_before_the_socket_listens(
    driver: str, tls: bool, unix_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[int, str, str]] = []
    chmod = os.chmod

    def checking_chmod(path: Any, mode: int, *args: Any, **kwargs: Any) -> None:
        # Nobody may connect yet: the file still has the umask's permissions, and
        # the server's path does not exist yet (the file has a temporary name).
        seen.append((mode, probe(path), probe(unix_path)))
        chmod(path, mode, *args, **kwargs)

    monkeypatch.setattr(_unix.os, "chmod", checking_chmod)
    server_ctx = tls_contexts()[0] if tls else None
    modes: list[int] = []
    start_and_stop(
        driver, unix_path, server_ctx, lambda: modes.append(os.stat(unix_path).st_mode & 0o777), unix_mode=0o600
    )
    assert seen == [(0o600, "refused", "absent")]
    assert modes == [0o600]
    assert os.listdir(os.path.dirname(unix_path)) == []


@pytest.mark.parametrize("tls", [False, True])
@pytest.mark.parametrize("driver", ["sync", "aio"])
def test_the_socket_file_appears_only_once_the_server_listens(
    driver: str, tls: bool, unix_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A client that connects as soon as the file appears must not be refused: at every
    # listen() of a Unix socket (the first one makes it listen), the path is not there yet
    # or already accepts.
    seen: list[str] = []
    listen = socket.socket.listen

    def watching_listen(self: socket.socket, *args: Any) -> None:
        if self.family == socket.AF_UNIX:
            seen.append(probe(unix_path))
        listen(self, *args)

    monkeypatch.setattr(socket.socket, "listen", watching_listen)
    server_ctx = tls_contexts()[0] if tls else None
    up: list[tuple[str, list[str]]] = []
    directory = os.path.dirname(unix_path)
    start_and_stop(driver, unix_path, server_ctx, lambda: up.append((probe(unix_path), os.listdir(directory))))
    assert seen[0] == "absent"
    assert "refused" not in seen
    assert up == [("connected", ["s.sock"])]  # no temporary file left beside it
    assert os.listdir(directory) == []


@pytest.mark.parametrize("driver", ["sync", "aio"])
def test_a_file_appearing_while_binding_is_kept(driver: str, unix_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    link = os.link
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    inodes: list[int] = []

    def racing_link(source: Any, target: Any) -> None:
        if target == unix_path:
            other.bind(unix_path)  # another server binds the path meanwhile
            inodes.append(os.stat(unix_path).st_ino)
        link(source, target)

    monkeypatch.setattr(_unix.os, "link", racing_link)
    try:
        with pytest.raises(OSError, match="appeared while binding"):
            start_and_stop(driver, unix_path)
        assert os.listdir(os.path.dirname(unix_path)) == ["s.sock"]  # no temporary file left
        assert [os.stat(unix_path).st_ino] == inodes  # the other's file, not replaced
    finally:
        other.close()


@pytest.mark.parametrize("driver", ["sync", "aio"])
def test_without_hard_links_the_server_binds_its_path_directly(
    driver: str, unix_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_link(source: Any, target: Any) -> None:
        raise PermissionError(1, "hard links not supported", source)

    monkeypatch.setattr(_unix.os, "link", no_link)
    directory = os.path.dirname(unix_path)
    up: list[tuple[str, int, list[str]]] = []

    def check() -> None:
        up.append((probe(unix_path), os.stat(unix_path).st_mode & 0o777, os.listdir(directory)))

    start_and_stop(driver, unix_path, while_up=check, unix_mode=0o640)
    assert up == [("connected", 0o640, ["s.sock"])]
    assert os.listdir(directory) == []


@pytest.mark.parametrize("driver", ["sync", "aio"])
def test_a_path_too_long_for_a_temporary_name_is_bound_directly(driver: str) -> None:
    # The longest path AF_UNIX takes here, with a one-letter name: a temporary name
    # beside it would be too long, so the server binds the path itself.
    directory = tempfile.mkdtemp(prefix="jrpc", dir="/tmp")
    try:
        deep = os.path.join(directory, "d" * (104 - len(directory)))
        os.mkdir(deep)
        path = os.path.join(deep, "s")
        assert len(path) == 107
        up: list[tuple[str, list[str]]] = []
        start_and_stop(driver, path, while_up=lambda: up.append((probe(path), os.listdir(deep))), unix_mode=0o600)
        assert up == [("connected", ["s"])]
        assert os.listdir(deep) == []
    finally:
        shutil.rmtree(directory)


def test_a_failing_chmod_leaves_no_socket_file(unix_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_chmod(path: Any, mode: int) -> None:
        raise PermissionError(1, "not allowed", path)

    monkeypatch.setattr(_unix.os, "chmod", failing_chmod)
    directory = os.path.dirname(unix_path)
    with pytest.raises(PermissionError):
        start_and_stop("sync", unix_path, unix_mode=0o600)
    assert os.listdir(directory) == []  # neither the path nor a temporary file
    with pytest.raises(PermissionError):
        start_and_stop("aio", unix_path, unix_mode=0o600)
    assert os.listdir(directory) == []


@pytest.mark.parametrize("driver", ["sync", "aio"])
def test_a_failing_listen_leaves_no_socket_file(driver: str, unix_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    listen = socket.socket.listen

    def failing_listen(self: socket.socket, *args: Any) -> None:
        if self.family == socket.AF_UNIX:
            raise OSError(98, "cannot listen")
        listen(self, *args)

    monkeypatch.setattr(socket.socket, "listen", failing_listen)
    with pytest.raises(OSError, match="cannot listen"):
        start_and_stop(driver, unix_path)
    assert os.listdir(os.path.dirname(unix_path)) == []


# review11 f6: path= takes bytes and path-like objects too (26616c8 broke bytes on the
# servers; a pathlib.Path worked on the servers but not on the sync client).
PATH_TYPES = {"Path": pathlib.Path, "bytes": os.fsencode}


@pytest.mark.parametrize("kind", sorted(PATH_TYPES))
def test_sync_server_and_client_take_bytes_and_path_like_paths(kind: str, unix_path: str) -> None:
    given = PATH_TYPES[kind](unix_path)
    server = RPCServer()
    server.register_function(lambda: "pong", name="ping")
    try:
        assert server.start(path=given) == unix_path  # the address is the path as a str
        with RPCClient(path=given, timeout=10) as client:
            assert client.ping() == "pong"
    finally:
        server.shutdown()
    assert os.listdir(os.path.dirname(unix_path)) == []


@pytest.mark.parametrize("kind", sorted(PATH_TYPES))
def test_aio_server_and_client_take_bytes_and_path_like_paths(kind: str, unix_path: str) -> None:
    given = PATH_TYPES[kind](unix_path)

    async def main() -> None:
        server = aio.RPCServer()

        async def ping() -> str:
            return "pong"

        server.register_function(ping)
        try:
            assert await server.start(path=given) == unix_path
            async with await aio.connect(path=given, timeout=10) as client:
                assert await client.ping() == "pong"
        finally:
            await server.shutdown()

    run(main)
    assert os.listdir(os.path.dirname(unix_path)) == []
