"""TLS over a Unix socket, end to end: each server kind with each client kind.

README and API.md give both servers ``start(path=..., ssl=...)``. Tests had TLS
over a Unix path only in pieces: the sync client's host-name checks against both
servers (test_tls.py), the aio server with the aio client (test_aio_tls_gate.py),
the sync server from the CLI (test_cli_call_tls.py); never the aio client with the
sync server, a reply of many TLS records, mutual TLS, or the sync server's
plain-text refusal there. Here every pair does a round trip of 1 MiB (many
records, both ways), mutual TLS with and without a client certificate, and a
plain client's refusal; the socket file is gone after shutdown.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme
from _hardening import WAIT, running

from jsonrpc_mini import ConnectionLost, RPCClient, ServerError, aio

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets on this platform"),
]

NAME = "localhost"  # a Unix path has no host name: the client names the certificate's
BIG = "é" * (1 << 19)  # 1 MiB of UTF-8 each way: many TLS records


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "tls.sock")


@pytest.fixture(params=["sync", "aio"])
def client_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def server_context(ca: trustme.CA, *, mutual: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(NAME).configure_cert(ctx)
    if mutual:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ca.configure_trust(ctx)
    return ctx


def client_context(ca: trustme.CA, *, with_cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    if with_cert:
        ca.issue_cert("client.example").configure_cert(ctx)
    return ctx


def calls(
    client_kind: str, path: str, ctx: ssl.SSLContext | None, *todo: tuple[str, Any], name: str = NAME
) -> list[Any]:
    """Connect to ``path`` with a client of ``client_kind`` and make the calls ``todo`` (method, argument).

    With ``ctx``, over TLS, checking the server's certificate against ``name``.
    """
    tls: dict[str, Any] = {} if ctx is None else {"ssl": ctx, "server_hostname": name}
    if client_kind == "sync":
        with RPCClient(path=path, timeout=WAIT, **tls) as client:
            return [client.call(method, argument) for method, argument in todo]

    async def main() -> list[Any]:
        async with await aio.connect(path=path, timeout=WAIT, **tls) as client:
            return [await client.call(method, argument) for method, argument in todo]

    return asyncio.run(main())


def test_round_trip_of_many_records(kind: str, client_kind: str, ca: trustme.CA, path: str) -> None:
    with running(kind, ssl=server_context(ca), path=path) as srv:
        assert srv.address == path
        got = calls(client_kind, path, client_context(ca), ("typename", 1), ("echo", BIG), ("echo", "after"))
        assert got[0] == "int" and got[1] == BIG and got[2] == "after"
        assert calls(client_kind, path, client_context(ca), ("echo", "again")) == ["again"]  # still serving
    assert not os.path.exists(path)  # shutdown removed the socket file


def test_mutual_tls(kind: str, client_kind: str, ca: trustme.CA, path: str) -> None:
    with running(kind, ssl=server_context(ca, mutual=True), path=path):
        assert calls(client_kind, path, client_context(ca, with_cert=True), ("echo", "known")) == ["known"]
        # Without a certificate: refused in the handshake (TLS 1.2) or just after it
        # (TLS 1.3: the client has finished before the server checks), so at the
        # connect or at the first call.
        with pytest.raises(ConnectionLost):
            calls(client_kind, path, client_context(ca), ("echo", "unknown"))
        assert calls(client_kind, path, client_context(ca, with_cert=True), ("echo", "still")) == ["still"]


def test_a_plain_client_is_told_the_server_speaks_tls(kind: str, client_kind: str, ca: trustme.CA, path: str) -> None:
    with running(kind, ssl=server_context(ca), path=path):
        with pytest.raises(ServerError, match="speaks TLS"):
            calls(client_kind, path, None, ("echo", "plain"))
        assert calls(client_kind, path, client_context(ca), ("echo", "tls")) == ["tls"]


@pytest.mark.parametrize("name", [NAME, "other.example"], ids=["named", "wrong-name"])
def test_the_certificate_is_checked_against_server_hostname(
    kind: str, client_kind: str, ca: trustme.CA, path: str, name: str
) -> None:
    with running(kind, ssl=server_context(ca), path=path):
        if name == NAME:
            assert calls(client_kind, path, client_context(ca), ("echo", name), name=name) == [NAME]
        else:
            with pytest.raises(ConnectionLost, match="certificate"):
                calls(client_kind, path, client_context(ca), ("echo", name), name=name)
