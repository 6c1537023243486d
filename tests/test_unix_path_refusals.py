"""Unix socket paths no client could reach are refused at start; shutdown removes only its own file.

A path longer than AF_UNIX takes was once "served" at a file nobody could connect
to (a short temporary name hard-linked onto it): now both servers refuse it as
``socket.bind`` would, before anything is created. An abstract name (a leading
NUL byte) is refused by name, an empty path (Linux would bind a random abstract
name, "autobind") as empty, by servers and clients. A socket file removed while
the server runs and replaced by another server's is left in place by ``shutdown()``.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from _aio_support import run
from test_unix_paths import probe, start_and_stop

from jsonrpc_mini import RPCClient, aio

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets on this platform"),
]

DRIVERS = ["sync", "aio"]


@pytest.fixture
def directory() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="jrpc", dir="/tmp")  # short: AF_UNIX paths are limited
    yield path
    shutil.rmtree(path)


def too_long(directory: str, length: int) -> str:
    path = os.path.join(directory, "x" * (length - len(directory) - 1))
    assert len(os.fsencode(path)) == length
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock, pytest.raises(OSError, match="too long"):
        sock.bind(path)  # what the socket module says of it
    return path


LENGTHS = [200, *([108] if sys.platform.startswith("linux") else [])]  # (108: sun_path's size on Linux)


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("driver", DRIVERS)
def test_a_path_too_long_for_af_unix_is_refused_at_start(driver: str, length: int, directory: str) -> None:
    path = too_long(directory, length)
    with pytest.raises(OSError, match=r"^AF_UNIX path too long \(\d+ bytes\): "):
        start_and_stop(driver, path)
    assert os.listdir(directory) == []  # nothing bound, linked or left behind


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_path_too_long_is_refused_even_over_a_stale_file_there(driver: str, directory: str) -> None:
    # Before: the probe of a file at such a path failed "too long", read as "in use by another server".
    path = too_long(directory, 200)
    short = os.path.join(directory, "short")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
        stale.bind(short)
        os.link(short, path)  # a socket file at the long path (as the old servers left one)
    os.unlink(short)
    with pytest.raises(OSError, match=r"^AF_UNIX path too long"):
        start_and_stop(driver, path)
    assert os.listdir(directory) == [os.path.basename(path)]


@pytest.mark.parametrize(
    ("name", "words"),
    [("\0jrpc-abstract", "abstract socket names"), ("jrpc\0name", "a NUL byte is not supported")],
)
@pytest.mark.parametrize("driver", DRIVERS)
def test_a_name_with_a_nul_byte_is_refused_by_name(driver: str, name: str, words: str, directory: str) -> None:
    with pytest.raises(ValueError, match=words):
        start_and_stop(driver, name)


@pytest.mark.parametrize("options", [{}, {"unix_mode": 0o600}])
@pytest.mark.parametrize("empty", ["", b""])
@pytest.mark.parametrize("driver", DRIVERS)
def test_an_empty_path_is_refused_at_start(driver: str, empty: str, options: dict[str, Any]) -> None:
    # Before: start() returned "" and listened at an autobind abstract name nobody
    # could reach by path= (with unix_mode: a bare FileNotFoundError from chmod).
    with pytest.raises(ValueError, match=r"^Unix socket path is empty; give a file system path$"):
        start_and_stop(driver, empty, **options)


@pytest.mark.parametrize("empty", ["", b""])
def test_an_empty_path_is_refused_by_both_clients(empty: str) -> None:
    # Before: ConnectionLost "cannot connect to : [Errno 22] Invalid argument".
    with pytest.raises(ValueError, match=r"^Unix socket path is empty"):
        RPCClient(path=empty, timeout=5)
    with pytest.raises(ValueError, match=r"^Unix socket path is empty"):
        RPCClient(timeout=5).connect(path=empty)

    async def main() -> None:
        with pytest.raises(ValueError, match=r"^Unix socket path is empty"):
            await aio.connect(path=empty, timeout=5)

    run(main)


@pytest.mark.parametrize("driver", DRIVERS)
def test_shutdown_leaves_a_socket_file_that_is_no_longer_its_own(driver: str, directory: str) -> None:
    path = os.path.join(directory, "s.sock")
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    def taken_over() -> None:  # someone removes the server's file and listens there
        os.unlink(path)
        other.bind(path)
        other.listen()

    try:
        start_and_stop(driver, path, while_up=taken_over)
        assert probe(path) == "connected"  # the other socket's file is still there
    finally:
        other.close()


@pytest.mark.parametrize("driver", DRIVERS)
def test_shutdown_removes_its_own_socket_file(driver: str, directory: str) -> None:
    path = os.path.join(directory, "s.sock")
    seen: list[str] = []
    start_and_stop(driver, path, while_up=lambda: seen.append(probe(path)))
    assert seen == ["connected"]
    assert os.listdir(directory) == []
