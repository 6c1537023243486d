"""``call --notify`` without TLS options tells a notification the server did not take.

Nothing answers a notification, so ``call --notify`` wrote it and exited 0 even
when the server had turned the connection away: a TLS port of this library ("this
server speaks TLS"), a server at ``max_connections`` ("too many connections"), or
another TLS server (closes or resets). The notification was lost and the user told
nothing (README said so). Now ``call`` shuts its side down after the notification
and reads what the server sends before it closes (up to 1 s, or --timeout): an
error, a reset or bytes that are no JSON-RPC message exit 1 (with the TLS hint
where the server speaks TLS); a server that takes it still gets it, exit 0.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from _aio_support import aio_server_in_thread
from _driver_helpers import serving, tls_contexts, wait_for
from _fixed_reply_server import answering
from test_cli_call_foreign_tls import ALERT, HINT, closing_after

from jsonrpc_mini import RPCServer, aio
from jsonrpc_mini import _cli_call as cli_call
from jsonrpc_mini.__main__ import main

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _patient_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    # ``call`` reads for 1 s at most (NOTIFY_WAIT) what the server says before closing:
    # the server, a thread of this process, may take longer on a loaded machine, and
    # the refusal would go untold (exit 0). These tests end when the server closes, so
    # a longer wait costs nothing when they pass.
    monkeypatch.setattr(cli_call, "NOTIFY_WAIT", 30.0)


@contextmanager
def _server(kind: str, got: list[Any], **options: Any) -> Iterator[Any]:
    """A sync or aio server with ``note(x)`` (appends x to ``got``) and ``slow(s)``."""
    place = {key: options.pop(key) for key in ("ssl", "path") if key in options}
    server: Any = RPCServer(**options) if kind == "sync" else aio.RPCServer(**options)
    server.register_function(got.append, name="note")
    gate = threading.Event()
    server.register_function(lambda: gate.wait(10), name="held")
    with serving(server, **place) if kind == "sync" else aio_server_in_thread(server, **place) as address:
        try:
            yield address
        finally:
            gate.set()  # (before the server's shutdown, which waits for its calls)


def _target(address: Any) -> list[str]:
    return ["--path", address] if isinstance(address, str) else [f"{address[0]}:{address[1]}"]


@pytest.mark.parametrize("kind", ["sync", "aio"])
def test_a_notification_to_a_tls_port_is_told_with_the_hint(kind: str, capsys: Any) -> None:
    got: list[Any] = []
    with _server(kind, got, ssl=tls_contexts()[0]) as address:
        assert main(["call", "--notify", *_target(address), "note", "1"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "error: note: [-32000] Server error: this server speaks TLS; connect with an ssl.SSLContext (ssl=...)",
        HINT,
    ]
    assert got == []


@pytest.mark.parametrize("kind", ["sync", "aio"])
def test_a_notification_to_a_full_server_is_told(kind: str, capsys: Any) -> None:
    got: list[Any] = []
    with (
        _server(kind, got, max_connections=1) as address,
        socket.create_connection(address[:2], timeout=5) as held,  # the one connection allowed
    ):
        held.sendall(b'{"jsonrpc":"2.0","method":"note","params":["held"]}\n')
        wait_for(lambda: got == ["held"], "the first connection served")
        assert main(["call", "--notify", *_target(address), "note", "1"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == "error: note: [-32000] Server error: too many connections, try again later", err
    assert got == ["held"]


def test_a_notification_to_another_tls_server_is_told_with_the_hint(capsys: Any) -> None:
    # Python's TLS server (OpenSSL) sends no byte and resets.
    with answering(b"", ssl=tls_contexts()[0]) as (host, port):
        assert main(["call", "--notify", f"{host}:{port}", "note", "1"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: note: the server reset the connection: the notification may not have arrived")
    assert err[1:] == [HINT]


def test_bytes_that_are_no_message_are_told(capsys: Any) -> None:
    # (Java's TLS server: an alert, then a close; the handshake then meets the same alert)
    with closing_after(ALERT) as (host, port):
        assert main(["call", "--notify", f"{host}:{port}", "note", "1"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == ["error: note: the server answered the notification with bytes that are no JSON-RPC message", HINT]


@pytest.mark.parametrize("kind", ["sync", "aio"])
@pytest.mark.parametrize("where", ["tcp", "unix"])
def test_a_notification_taken_exits_0_silently(kind: str, where: str, capsys: Any, unix_path: str) -> None:
    got: list[Any] = []
    with _server(kind, got, **({"path": unix_path} if where == "unix" else {})) as address:
        for i in range(3):
            assert main(["call", "--notify", *_target(address), "note", str(i)]) == 0
        wait_for(lambda: len(got) == 3, "the notifications run")
        # A handler still running when the wait ends: sent, nothing said against it.
        assert main(["call", "--timeout", "0.1", "--notify", *_target(address), "held"]) == 0
    assert sorted(got) == [0, 1, 2]
    assert capsys.readouterr() == ("", "")


def test_a_plain_server_that_closes_quietly_took_it(capsys: Any) -> None:
    with closing_after(b"") as (host, port):
        assert main(["call", "--notify", f"{host}:{port}", "note", "1"]) == 0
    assert capsys.readouterr() == ("", "")
