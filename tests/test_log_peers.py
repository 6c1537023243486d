"""Both servers' log lines about one connection name its client's address.

A line such as "idle for idle_timeout; closing" or "TLS handshake failed" told an
operator nothing about whom it was about (the sync server gave its own counter,
``jsonrpc_mini-conn-3``; the aio server nothing). README's Logging section.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from typing import Any

import pytest
from _aio_support import aio_server_in_thread
from _driver_helpers import WAIT, serving

from jsonrpc_mini import RPCServer, aio
from jsonrpc_mini._peer_names import address_text, client_text, session_label

pytestmark = pytest.mark.timeout(60)


def _closed_by_server(sock: socket.socket) -> None:
    sock.settimeout(WAIT)
    while sock.recv(4096):
        pass


def _served(kind: str, caplog: pytest.LogCaptureFixture, **options: Any) -> Any:
    """A sync or aio server serving on 127.0.0.1 (``ssl=`` goes to start), its INFO lines captured."""
    caplog.set_level(logging.INFO, logger="jsonrpc_mini")
    ssl_context = options.pop("ssl", None)
    if kind == "sync":
        return serving(RPCServer(**options), ssl=ssl_context)
    return aio_server_in_thread(aio.RPCServer(**options), ssl=ssl_context)


def _lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "jsonrpc_mini" and text in r.getMessage()]


def _wait_for_line(caplog: pytest.LogCaptureFixture, text: str) -> None:
    """Until the server (in its own thread) has logged a line holding ``text`` (bounded)."""
    deadline = time.monotonic() + WAIT
    while not _lines(caplog, text) and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.parametrize("kind", ["sync", "aio"])
def test_an_idle_connection_closed_is_logged_with_its_client_address(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        _served(kind, caplog, idle_timeout=0.2) as address,
        socket.create_connection(address[:2], timeout=WAIT) as sock,
    ):
        port = sock.getsockname()[1]
        _closed_by_server(sock)
    (line,) = _lines(caplog, "idle for idle_timeout")
    expected = f"(127.0.0.1:{port}): idle" if kind == "sync" else f"connection from 127.0.0.1:{port}: idle"
    assert expected in line, line
    if kind == "sync":
        assert line.startswith("jsonrpc_mini-conn-"), line


@pytest.mark.parametrize("kind", ["sync", "aio"])
def test_a_plain_client_on_a_tls_port_is_logged_with_its_address(
    kind: str, caplog: pytest.LogCaptureFixture, contexts: Any
) -> None:
    with _served(kind, caplog, ssl=contexts[0]) as address, socket.create_connection(address[:2], timeout=WAIT) as sock:
        port = sock.getsockname()[1]
        sock.sendall(b'{"jsonrpc":"2.0","method":"x","id":1}\n')
        _closed_by_server(sock)
    (line,) = _lines(caplog, "spoke plain text on a TLS port")
    assert line.startswith(f"client 127.0.0.1:{port} spoke"), line


@pytest.mark.parametrize("kind", ["sync", "aio"])
def test_a_failed_tls_handshake_is_logged_with_its_client_address(
    kind: str, caplog: pytest.LogCaptureFixture, contexts: Any
) -> None:
    untrusting = ssl.create_default_context()  # trusts no test CA: the handshake fails
    with _served(kind, caplog, ssl=contexts[0]) as address, socket.create_connection(address[:2], timeout=WAIT) as sock:
        port = sock.getsockname()[1]
        with pytest.raises(OSError):
            untrusting.wrap_socket(sock, server_hostname="127.0.0.1", do_handshake_on_connect=True)
        _wait_for_line(caplog, "TLS handshake with")
    (line,) = _lines(caplog, "TLS handshake with")
    assert f"TLS handshake with client 127.0.0.1:{port} failed: " in line, line


@pytest.mark.parametrize(
    ("address", "text"),
    [
        (("127.0.0.1", 5555), "127.0.0.1:5555"),
        (("::1", 5555, 0, 0), "[::1]:5555"),
        ("/tmp/s.sock", "unix:/tmp/s.sock"),
        ("", "a Unix socket"),
        (b"\x00abstract", "unix:@abstract"),  # (no NUL byte in a log line)
        (b"\x00a\x00b\xff", "unix:@a\\x00b\\xff"),
        (None, "an unknown peer"),
    ],
)
def test_address_text(address: Any, text: str) -> None:
    assert address_text(address) == text


def test_labels_of_a_closed_socket_fall_back_to_the_name() -> None:
    a, b = socket.socketpair()
    with b:
        assert client_text(a) == "client a Unix socket"
        a.close()
        assert client_text(a) == "a client"
        assert session_label("jsonrpc_mini-conn-7", object()) == "jsonrpc_mini-conn-7"
