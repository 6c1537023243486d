"""A refused connect reads the same from the sync and the aio client: where, and what the OS said.

asyncio words a refusal "Connect call failed ('127.0.0.1', 5000)" where the socket
module says "Connection refused", and joins the words of several addresses after
"Multiple exceptions: ". Both clients now say ``cannot connect to HOST:PORT:
[Errno 111] Connection refused`` (the cause keeps asyncio's own exception).
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from _aio_support import run
from _driver_helpers import ipv6_loopback

from jsonrpc_mini import ConnectionLost, RPCClient, aio
from jsonrpc_mini._connect import connect_errors

pytestmark = pytest.mark.timeout(60)

WAIT = 10.0
REFUSED = f"[Errno {errno.ECONNREFUSED}] {os.strerror(errno.ECONNREFUSED)}"


@pytest.fixture(params=["127.0.0.1", "::1"])
def refused(request: pytest.FixtureRequest) -> Iterator[tuple[str, int, str]]:
    """A port bound but not listening (so connects to it are refused, and no one else takes it)."""
    host: str = request.param
    if host == "::1" and not ipv6_loopback():
        pytest.skip("no IPv6 loopback")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as holder:
        holder.bind((host, 0))
        port = holder.getsockname()[1]
        yield host, port, f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _sync_error(host: str, port: int) -> ConnectionLost:
    with pytest.raises(ConnectionLost) as info:
        RPCClient(host, port, timeout=WAIT)
    return info.value


def _aio_error(host: str, port: int) -> ConnectionLost:
    async def main() -> ConnectionLost:
        with pytest.raises(ConnectionLost) as info:
            await aio.connect(host, port, timeout=WAIT)
        return info.value

    return run(main)


def test_both_clients_word_a_refusal_alike(refused: tuple[str, int, str]) -> None:
    host, port, where = refused
    sync, aio_ = _sync_error(host, port), _aio_error(host, port)
    assert sync.message == f"cannot connect to {where}: {REFUSED}"
    assert aio_.message == sync.message
    assert str(aio_) == str(sync)
    for exc in (sync, aio_):
        assert isinstance(exc.__cause__, ConnectionRefusedError)
        assert exc.__cause__.errno == errno.ECONNREFUSED


def test_aio_reconnect_words_a_refusal_as_the_first_connect(refused: tuple[str, int, str]) -> None:
    host, port, where = refused
    listener = socket.create_server(("127.0.0.1", 0))
    real_host, real_port = listener.getsockname()[:2]

    async def main() -> ConnectionLost:
        client = await aio.connect(real_host, real_port, timeout=WAIT)
        await client.close()
        with pytest.raises(ConnectionLost) as info:
            await client.connect(host, port)
        return info.value

    try:
        error = run(main)
    finally:
        listener.close()
    assert error.message == f"cannot connect to {where}: {REFUSED}"


def test_both_clients_word_a_missing_unix_socket_alike(tmp_path: Path) -> None:
    path = str(tmp_path / "nobody-listens")
    with pytest.raises(ConnectionLost) as sync:
        RPCClient(path=path, timeout=WAIT)

    async def main() -> ConnectionLost:
        with pytest.raises(ConnectionLost) as info:
            await aio.connect(path=path, timeout=WAIT)
        return info.value

    aio_error = run(main)
    assert sync.value.message == f"cannot connect to {path}: [Errno {errno.ENOENT}] {os.strerror(errno.ENOENT)}"
    assert aio_error.message == sync.value.message


@pytest.mark.parametrize(
    ("raised", "said"),
    [
        (ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9)"), "[Errno 111] Connection refused"),
        # Every address refused: asyncio joins their words, which differ only by address.
        (
            OSError(
                "Multiple exceptions: [Errno 111] Connect call failed ('::1', 9, 0, 0), "
                "[Errno 111] Connect call failed ('127.0.0.1', 9)"
            ),
            "[Errno 111] Connection refused",
        ),
        # Different reasons: all of them, each in the OS's words.
        (
            OSError(
                "Multiple exceptions: [Errno 111] Connect call failed ('::1', 9, 0, 0), "
                "[Errno 101] Network is unreachable"
            ),
            "Multiple exceptions: [Errno 111] Connection refused, [Errno 101] Network is unreachable",
        ),
        (ConnectionRefusedError(111, "Connection refused"), "[Errno 111] Connection refused"),
        (ConnectionResetError(), "ConnectionResetError"),
    ],
)
def test_asyncio_words_become_the_os_words(raised: OSError, said: str) -> None:
    with pytest.raises(ConnectionLost) as info, connect_errors("localhost:9", WAIT):
        raise raised
    assert info.value.message == f"cannot connect to localhost:9: {said}"
    assert info.value.__cause__ is raised
