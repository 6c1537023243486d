"""A Unix socket path holding a newline or another control character is shown quoted and escaped.

Printed raw, ``RPCServer(...)``'s repr, a client's, the servers' log lines naming a
peer bound to such a path and a failed connect's message read as two lines (an
escape sequence in the path reached the terminal). They now show it as ``repr()``
does; a printable path is shown as it is.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from pathlib import Path

import pytest
from _driver_helpers import WAIT, wait_for

from jsonrpc_mini import ConnectionLost, RPCClient, RPCServer, aio
from jsonrpc_mini.__main__ import main
from jsonrpc_mini._peer_names import address_text
from jsonrpc_mini._reprs import path_text
from jsonrpc_mini._unix import bind_unix

pytestmark = pytest.mark.timeout(60)

ODD = "a\nb\x1b[31m\t.sock"  # (a newline, an escape sequence, a tab)


def test_path_text_quotes_only_what_is_not_printable() -> None:
    assert path_text("/run/app s.sock") == "/run/app s.sock"
    assert path_text("/run/é.sock") == "/run/é.sock"
    assert path_text("/run/a\nb") == "'/run/a\\nb'"
    assert path_text("/run/\x1b[31m\u2028") == "'/run/\\x1b[31m\\u2028'"
    assert address_text("/run/a\nb") == "unix:'/run/a\\nb'"


def test_sync_server_and_client_reprs_escape_the_path(tmp_path: Path) -> None:
    path = str(tmp_path / ODD)
    server = RPCServer()
    server.start(path=path)
    try:
        assert repr(server) == f"<RPCServer listening on {path!r} methods=0 connections=0>"
        with RPCClient(path=path, timeout=WAIT) as client:
            assert repr(client) == f"<RPCClient connected to {path!r} timeout={WAIT}>"
    finally:
        server.shutdown()


def test_aio_server_and_client_reprs_escape_the_path(tmp_path: Path) -> None:
    path = str(tmp_path / ODD)

    async def main() -> None:
        server = aio.RPCServer()
        await server.start(path=path)
        try:
            assert repr(server) == f"<aio.RPCServer listening on {path!r} methods=0 connections=0>"
            client = await aio.connect(path=path, timeout=WAIT)
            assert repr(client) == f"<aio.RPCClient connected to {path!r} timeout={WAIT}>"
            await client.close()
        finally:
            await server.shutdown()

    asyncio.run(main())


def test_a_failed_connect_names_the_path_escaped(tmp_path: Path) -> None:
    path = str(tmp_path / ODD)
    with pytest.raises(ConnectionLost) as sync_error:
        RPCClient(path=path, timeout=WAIT)
    with pytest.raises(ConnectionLost) as aio_error:
        asyncio.run(aio.connect(path=path, timeout=WAIT))
    for error in (sync_error.value, aio_error.value):
        assert f"cannot connect to {path!r}:" in str(error) and "\n" not in str(error)


def test_a_bind_refusal_names_the_path_escaped(tmp_path: Path) -> None:
    path = str(tmp_path / ODD)
    Path(path).write_text("not a socket")
    with pytest.raises(FileExistsError) as error:
        bind_unix(path, None, 8)
    assert str(error.value).startswith(f"{path!r} exists and is not a socket")


def test_the_servers_log_line_names_a_peer_path_escaped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path, peer = str(tmp_path / "s.sock"), str(tmp_path / ODD)
    server = RPCServer(idle_timeout=0.2)
    server.start(path=path)
    try:
        with caplog.at_level(logging.INFO, logger="jsonrpc_mini"), socket.socket(socket.AF_UNIX) as sock:
            sock.bind(peer)  # (a client's socket bound to a path: the server's peer name)
            sock.connect(path)
            sock.settimeout(WAIT)
            assert sock.recv(1) == b""  # (closed for idle_timeout: logged at INFO)
            wait_for(lambda: "idle" in caplog.text, "the idle close's log line")
    finally:
        server.shutdown()
    (line,) = [record.getMessage() for record in caplog.records if "idle" in record.getMessage()]
    assert f"(unix:{peer!r})" in line and "\n" not in line
    os.unlink(peer)


def test_the_cli_names_a_path_it_cannot_listen_on_escaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "shown_api.py").write_text("def one():\n    return 1\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = str(tmp_path / ODD)
    Path(path).write_text("not a socket")
    try:
        assert main(["serve", "shown_api", "--path", path]) == 1
    finally:
        sys.modules.pop("shown_api", None)
    err = capsys.readouterr().err
    assert f"error: cannot listen on {path!r}: {path!r} exists and is not a socket" in err
