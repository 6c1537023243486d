"""Unix socket files: a busy server's file is never taken over; ``unix_mode`` is set before anyone can connect."""

from __future__ import annotations

import os
import socket
import ssl as _ssl
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from _aio_support import run
from _driver_helpers import tls_contexts

from jsonrpc_mini import RPCServer, _unix, aio

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets on this platform"),
]


@pytest.fixture
def unix_path() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="jrpc", dir="/tmp")  # short: AF_UNIX paths are limited
    yield os.path.join(directory, "s.sock")
    for name in os.listdir(directory):
        os.unlink(os.path.join(directory, name))
    os.rmdir(directory)


def start_and_stop(driver: str, path: str, ssl: _ssl.SSLContext | None = None, **options: Any) -> None:
    """Start a server of ``driver`` on ``path``, then shut it down (raises what start raises)."""
    if driver == "sync":
        server = RPCServer(**options)
        server.start(path=path, ssl=ssl)
        server.shutdown()
        return

    async def main() -> None:
        server = aio.RPCServer(**options)
        await server.start(path=path, ssl=ssl)
        await server.shutdown()

    run(main)


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
    seen: list[tuple[int, str]] = []
    chmod = os.chmod

    def checking_chmod(path: Any, mode: int, *args: Any, **kwargs: Any) -> None:
        if path == unix_path:
            # Nobody may connect yet: the file still has the umask's permissions.
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(unix_path)
                seen.append((mode, "connected"))
            except ConnectionRefusedError:
                seen.append((mode, "refused"))
            finally:
                probe.close()
        chmod(path, mode, *args, **kwargs)

    monkeypatch.setattr(_unix.os, "chmod", checking_chmod)
    server_ctx = tls_contexts()[0] if tls else None
    start_and_stop(driver, unix_path, server_ctx, unix_mode=0o600)
    assert seen == [(0o600, "refused")]


def test_a_failing_chmod_leaves_no_socket_file(unix_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_chmod(path: Any, mode: int) -> None:
        raise PermissionError(1, "not allowed", path)

    monkeypatch.setattr(_unix.os, "chmod", failing_chmod)
    with pytest.raises(PermissionError):
        start_and_stop("sync", unix_path, unix_mode=0o600)
    assert not os.path.exists(unix_path)
    with pytest.raises(PermissionError):
        start_and_stop("aio", unix_path, unix_mode=0o600)
    assert not os.path.exists(unix_path)
