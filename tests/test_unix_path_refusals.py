"""Unix socket paths no client could reach are refused at start; shutdown removes only its own file.

A path longer than AF_UNIX takes was once "served" at a file nobody could connect
to (a short temporary name hard-linked onto it): now both servers refuse it as
``socket.bind`` would, before anything is created. An abstract name (a leading
NUL byte) is refused by name. A socket file removed while the server runs and
replaced by another server's is left in place by ``shutdown()``.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator

import pytest
from test_unix_paths import probe, start_and_stop

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
