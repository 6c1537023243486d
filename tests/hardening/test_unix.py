"""Issue 9, item 6 (Unix sockets): clients and servers, file permissions, stale files.

``unix_mode`` sets the socket file's permission bits (who may connect); without it
the process umask decides. A stale file left by a dead server is replaced; a file
a live server listens on is never taken over; anything that is not a socket is
never deleted.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
from _hardening import WAIT, Raw, assert_serves, running

from jsonrpc_mini import aio

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def sock_path(tmp_path: Path) -> str:
    # AF_UNIX paths are limited to ~107 bytes: keep it short.
    path = Path("/tmp") / f"jm-h9-{os.getpid()}-{tmp_path.name[-12:]}.sock"
    yield str(path)
    path.unlink(missing_ok=True)


def test_unix_round_trip_sync_and_aio_clients(kind: str, sock_path: str) -> None:
    with running(kind, path=sock_path) as srv:
        assert srv.address == sock_path
        assert stat.S_ISSOCK(os.stat(sock_path).st_mode)
        with srv.client() as client:
            assert client.add(2, 2) == 4
            assert client.echo("x" * 300_000) == "x" * 300_000

        async def main() -> Any:
            async with await aio.connect(path=sock_path, timeout=WAIT) as client:
                return await client.add(3, 4)

        assert asyncio.run(main()) == 7
    assert not os.path.exists(sock_path), "shutdown() must remove the socket file"


@pytest.mark.parametrize("mode", [0o600, 0o660, 0o666])
def test_unix_mode_sets_the_permission_bits(kind: str, sock_path: str, mode: int) -> None:
    with running(kind, {"unix_mode": mode}, path=sock_path) as srv:
        assert stat.S_IMODE(os.stat(sock_path).st_mode) == mode
        assert_serves(srv)


def test_without_unix_mode_the_umask_decides(kind: str, sock_path: str) -> None:
    old = os.umask(0o077)
    try:
        with running(kind, path=sock_path):
            assert stat.S_IMODE(os.stat(sock_path).st_mode) & 0o077 == 0
    finally:
        os.umask(old)


def test_stale_socket_file_is_replaced(kind: str, sock_path: str) -> None:
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(sock_path)  # bound, never listening, then closed: what a crash leaves
    dead.close()
    assert os.path.exists(sock_path)
    with running(kind, path=sock_path) as srv:
        assert_serves(srv)


def test_live_socket_is_not_stolen(kind: str, sock_path: str) -> None:
    with running(kind, path=sock_path) as first:
        inode = os.stat(sock_path).st_ino
        with pytest.raises(OSError, match="in use"):
            running(kind, path=sock_path).__enter__()
        assert os.stat(sock_path).st_ino == inode
        assert_serves(first)


def test_non_socket_file_is_never_deleted(kind: str, sock_path: str) -> None:
    Path(sock_path).write_text("precious", encoding="utf-8")
    with pytest.raises(FileExistsError):
        running(kind, path=sock_path).__enter__()
    assert Path(sock_path).read_text(encoding="utf-8") == "precious"


def test_bad_bytes_over_a_unix_socket(kind: str, sock_path: str) -> None:
    with running(kind, path=sock_path) as srv, Raw(sock_path) as raw:
        raw.send(b"\xff\x00garbage\n" + b"[" * 10_000 + b"\n")
        codes = [reply["error"]["code"] for reply in raw.replies(2)]
        assert codes == [-32700, -32600]
        assert_serves(srv)
