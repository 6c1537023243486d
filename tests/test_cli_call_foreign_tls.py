"""``call HOST:PORT`` without TLS options to a TLS server that is not this library's: the --tls hint.

This library's TLS servers answer plain text with "this server speaks TLS" (and
``call`` adds its hint: test_cli_call_tls). Others say nothing useful: Python's ssl
server (OpenSSL) sends no byte and resets, node's and ``openssl s_server`` close,
Java's sends a TLS alert and closes; ``call`` printed only "connection lost: [Errno
104] Connection reset by peer". After such a close it now tries one TLS handshake
(nothing sent over it) and, if the server answers in TLS, adds the same hint. A
plain server that closes gets no hint.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _driver_helpers import tls_contexts
from _fixed_reply_server import answering, serving

from jsonrpc_mini.__main__ import main

pytestmark = pytest.mark.timeout(60)

HINT = "hint: the server speaks TLS: add --tls (to trust the system's CAs) or --cafile FILE"
ALERT = b"\x15\x03\x03\x00\x02\x02\x0a"  # a fatal unexpected_message alert, as Java's TLS server sends


class _Answer(socketserver.BaseRequestHandler):
    """Reads what the client sends first, writes ``answer``, then closes (over TLS with ``context``)."""

    answer = b""
    context: ssl.SSLContext | None = None

    def handle(self) -> None:
        self.request.settimeout(5)
        with contextlib.suppress(OSError):
            if self.context is not None:
                with self.context.wrap_socket(self.request, server_side=True) as tls:
                    tls.recv(65536)
                return
            self.request.recv(65536)
            self.request.sendall(self.answer)
            self.request.shutdown(socket.SHUT_WR)
            while self.request.recv(65536):  # (read to the end: a close, not a reset)
                pass


@contextlib.contextmanager
def closing_after(answer: bytes, context: ssl.SSLContext | None = None) -> Iterator[tuple[str, int]]:
    """A TCP server that answers anything with ``answer`` and closes, while in the block."""
    with serving(type("Handler", (_Answer,), {"answer": answer, "context": context})) as address:
        yield address


def test_call_without_tls_to_pythons_tls_server_says_which_option_to_add(capsys: Any) -> None:
    server_ctx, _ = tls_contexts()
    with answering(b'{"jsonrpc":"2.0","result":3,"id":1}\n', ssl=server_ctx) as (host, port):
        assert main(["call", f"{host}:{port}", "add", "1", "2"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: add: connection lost") and err[1:] == [HINT]


def test_the_hint_also_follows_a_tls_alert_and_a_clean_close(capsys: Any) -> None:
    # (Java's answer; the handshake then meets the same alert)
    with closing_after(ALERT) as (host, port):
        assert main(["call", f"{host}:{port}", "add", "1", "2"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "error: add: connection closed by the server" and err[-1] == HINT


@pytest.mark.parametrize("answer", [b"", b"bye\n", b'{"jsonrpc":"2.0","error":{"code":-1,"message":"x"}}'])
def test_a_plain_server_that_closes_gets_no_hint(capsys: Any, answer: bytes) -> None:
    with closing_after(answer) as (host, port):
        assert main(["call", f"{host}:{port}", "add", "1", "2"]) == 1
    err = capsys.readouterr().err
    assert "connection closed by the server" in err and "hint" not in err


def test_no_hint_when_tls_options_were_given(capsys: Any, tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    with closing_after(b"", server_ctx) as (host, port):
        # (over TLS already: a TLS server that closes gets no "add --tls")
        assert main(["call", "--cafile", str(tmp_path / "ca.pem"), f"{host}:{port}", "add", "1", "2"]) == 1
        err = capsys.readouterr().err
        assert "connection closed by the server" in err and "hint" not in err
        # (--tls with the wrong CAs: the certificate check's error is the whole story)
        assert main(["call", "--tls", f"{host}:{port}", "add", "1", "2"]) == 1
        err = capsys.readouterr().err
        assert "certificate verify failed" in err and "hint" not in err


def test_the_sniff_is_bounded_and_refused_quietly() -> None:
    from jsonrpc_mini._cli_tls import speaks_tls  # noqa: PLC0415 - the helper itself

    server_ctx, _ = tls_contexts()
    with answering(b"", ssl=server_ctx) as (host, port):
        assert speaks_tls({"host": host, "port": port}, 5.0)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # (accepted by the backlog, never answers)
        port = silent.getsockname()[1]
        assert not speaks_tls({"host": "127.0.0.1", "port": port}, 0.2)
    assert not speaks_tls({"host": "127.0.0.1", "port": port}, 1.0)  # (closed: refused)
