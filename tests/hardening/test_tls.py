"""Issue 9, item 6 (TLS): ``ssl.SSLContext`` on both ends, mutual TLS, clear failures.

Certificates come from ``trustme`` (a throwaway CA per test module). A plaintext
client at a TLS server, or a TLS client at a plaintext server, must get a
``ConnectionLost`` with a readable message quickly, never a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import ssl
import threading
import time
from typing import Any

import pytest
import trustme
from _hardening import WAIT, Raw, running, settle

from jsonrpc_mini import ConnectionLost, RPCClient, RPCTimeout, ServerError, aio

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_context(ca: trustme.CA, *, mutual: bool = False, hostname: str = "127.0.0.1") -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(hostname, "localhost").configure_cert(ctx)
    if mutual:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ca.configure_trust(ctx)
    return ctx


def client_context(ca: trustme.CA | None, *, cert_from: trustme.CA | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if ca is not None:
        ca.configure_trust(ctx)
    if cert_from is not None:
        cert_from.issue_cert("client.example").configure_cert(ctx)
    return ctx


def tls_client(address: Any, ctx: ssl.SSLContext, **kwargs: Any) -> RPCClient:
    return RPCClient(address[0], address[1], ssl=ctx, timeout=WAIT, **kwargs)


def test_tls_round_trip(kind: str, ca: trustme.CA) -> None:
    big = "é" * (1 << 19)  # 1 MiB of UTF-8: many TLS records, exercises buffered reads
    with running(kind, ssl=server_context(ca)) as srv, tls_client(srv.address, client_context(ca)) as client:
        assert client.add(1, 2) == 3
        assert client.echo(big) == big
        results: list[Any] = []

        def worker(n: int) -> None:
            results.extend(client.add(n, i) for i in range(50))

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        assert sorted(results) == sorted(n + i for n in range(4) for i in range(50))


def test_aio_client_over_tls(kind: str, ca: trustme.CA) -> None:
    with running(kind, ssl=server_context(ca)) as srv:

        async def main() -> Any:
            host, port = srv.address
            async with await aio.connect(host, port, ssl=client_context(ca), timeout=WAIT) as client:
                return await client.add(40, 2)

        assert asyncio.run(main()) == 42


def test_mutual_tls_accepts_a_client_certificate(kind: str, ca: trustme.CA) -> None:
    ctx = client_context(ca, cert_from=ca)
    with running(kind, ssl=server_context(ca, mutual=True)) as srv, tls_client(srv.address, ctx) as client:
        assert client.echo("mutual") == "mutual"


@pytest.mark.parametrize("cert", ["none", "other-ca"])
def test_mutual_tls_refuses_a_client_without_a_trusted_certificate(kind: str, ca: trustme.CA, cert: str) -> None:
    cert_from = None if cert == "none" else trustme.CA()
    ctx = client_context(ca, cert_from=cert_from)
    with running(kind, ssl=server_context(ca, mutual=True)) as srv:
        # TLS 1.3 finishes the client's side of the handshake before the server checks
        # the certificate, so the refusal may surface at connect or at the first call.
        with pytest.raises(ConnectionLost) as info, tls_client(srv.address, ctx) as client:
            client.echo("let me in")
        assert str(info.value)
        with tls_client(srv.address, client_context(ca, cert_from=ca)) as good:
            assert good.echo("still serving") == "still serving"


@pytest.mark.parametrize("problem", ["untrusted-ca", "wrong-hostname"])
def test_client_refuses_a_server_it_cannot_verify(kind: str, ca: trustme.CA, problem: str) -> None:
    server_ctx = server_context(ca, hostname="example.org") if problem == "wrong-hostname" else server_context(ca)
    client_ctx = client_context(trustme.CA() if problem == "untrusted-ca" else ca)
    with running(kind, ssl=server_ctx) as srv:
        with pytest.raises(ConnectionLost) as info:
            tls_client(srv.address, client_ctx)
        assert "TLS handshake" in str(info.value) and "certificate" in str(info.value).lower()


def test_a_tls_client_on_a_unix_socket_needs_a_host_name_to_check(kind: str, ca: trustme.CA, tmp_path: Any) -> None:
    # No host to take the name from: a context that checks host names must be given
    # one (server_hostname=), as ssl.wrap_socket says; else no name would be checked.
    path = str(tmp_path / "tls.sock")
    with running(kind, ssl=server_context(ca, hostname="other.example"), path=path):
        for name in (None, ""):
            with pytest.raises(ValueError, match="check_hostname requires server_hostname"):
                RPCClient(path=path, ssl=client_context(ca), server_hostname=name, timeout=WAIT)
        with pytest.raises(ConnectionLost, match="certificate"):
            RPCClient(path=path, ssl=client_context(ca), server_hostname="127.0.0.1", timeout=WAIT)
        unchecked = client_context(ca)
        unchecked.check_hostname = False  # the CA chain is still verified
        with RPCClient(path=path, ssl=unchecked, timeout=WAIT) as client:
            assert client.echo("any name") == "any name"


def test_a_failed_handshake_tells_the_peer_why(ca: trustme.CA, caplog: pytest.LogCaptureFixture) -> None:
    # The sync side that fails sends OpenSSL's alert before closing, so the other
    # side's error (or log) names the reason, not a bare end of stream. (The aio
    # server's handshakes are asyncio's, which drops the alert: README says so.)
    without_cert = client_context(ca)
    without_cert.maximum_version = ssl.TLSVersion.TLSv1_2  # (TLS 1.3 refuses it after the handshake)
    with (
        running("sync", ssl=server_context(ca, mutual=True)) as srv,
        pytest.raises(ConnectionLost, match=r"(?i)alert handshake failure"),
    ):
        tls_client(srv.address, without_cert)  # the server's alert
    distrusting = client_context(trustme.CA())
    with caplog.at_level(logging.INFO, logger="jsonrpc_mini"), running("sync", ssl=server_context(ca)) as srv:
        with pytest.raises(ConnectionLost, match="certificate verify failed"):
            tls_client(srv.address, distrusting)  # the client's alert
        deadline = time.monotonic() + WAIT
        while "alert unknown ca" not in caplog.text.lower() and time.monotonic() < deadline:
            time.sleep(0.01)
    assert "alert unknown ca" in caplog.text.lower(), caplog.text


def test_plaintext_client_at_tls_server_fails_clearly(kind: str, ca: trustme.CA) -> None:
    with running(kind, ssl=server_context(ca)) as srv:
        # Both servers tell the client what is wrong: one plain error, then close.
        # (A client that waited for its own timeout would raise RPCTimeout, not ServerError.)
        with pytest.raises(ServerError) as info, RPCClient(*srv.address, timeout=WAIT) as client:
            client.echo("hello?")
        message = str(info.value)
        assert "echo" in message, message
        assert info.value.code == -32000 and "this server speaks TLS" in message, message
        with tls_client(srv.address, client_context(ca)) as good:
            assert good.echo("fine") == "fine"


def test_tls_client_at_plaintext_server_fails_clearly(kind: str, ca: trustme.CA) -> None:
    # read_timeout is long: the failure must not wait for the server to give up.
    with running(kind, {"read_timeout": 120}) as srv:
        with pytest.raises(ConnectionLost) as info:
            tls_client(srv.address, client_context(ca))
        assert not isinstance(info.value, RPCTimeout)
        assert "TLS handshake" in str(info.value), str(info.value)
        assert "the server did not answer in TLS" in str(info.value), str(info.value)
        with RPCClient(srv.address[0], srv.address[1], timeout=WAIT) as good:
            assert good.echo("fine") == "fine"


def test_silent_peer_is_dropped_after_handshake_timeout(kind: str, ca: trustme.CA) -> None:
    options = {"handshake_timeout": 0.5}
    with running(kind, options, ssl=server_context(ca)) as srv, Raw(srv.address) as silent:
        with tls_client(srv.address, client_context(ca)) as client:
            assert client.echo("not blocked by the silent peer") == "not blocked by the silent peer"
        assert silent.closed_within(WAIT), "a peer that never starts its handshake was kept"


def _client_hello(ctx: ssl.SSLContext) -> bytes:
    """The first flight of a TLS handshake from ``ctx`` (a ClientHello), as bytes to send by hand."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_a_dripped_handshake_is_dropped_after_handshake_timeout(kind: str, ca: trustme.CA) -> None:
    # handshake_timeout bounds the handshake as a whole, not each read: a peer that
    # sends its ClientHello a byte every 50 ms never lets a read wait 0.5 s.
    hello = _client_hello(client_context(ca))
    with running(kind, {"handshake_timeout": 0.5}, ssl=server_context(ca)) as srv, Raw(srv.address) as drip:
        sent = 0
        for byte in hello:  # bounded: at most len(hello) steps of 50 ms
            try:
                drip.sock.sendall(bytes([byte]))
            except OSError:  # reset by the server
                break
            sent += 1
            if drip.closed_within(0.05):
                break
        assert sent < len(hello), "the server waited for the whole dripped ClientHello"
        assert drip.closed_within(WAIT)


def test_tls_peer_that_never_reads_its_replies_is_closed(kind: str, ca: trustme.CA) -> None:
    payload = "r" * 65536
    options = {"read_timeout": 1.0, "idle_timeout": 2.0}
    with running(kind, options, ssl=server_context(ca)) as srv:
        plain = socket.create_connection(srv.address, timeout=WAIT)
        plain.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        hog = client_context(ca).wrap_socket(plain, server_hostname="127.0.0.1")

        def flood() -> None:
            with contextlib.suppress(OSError):
                for i in range(5000):
                    hog.sendall(json.dumps({"jsonrpc": "2.0", "method": "echo", "params": [payload], "id": i}).encode())

        flooder = threading.Thread(target=flood, name="hardening-tls-flood", daemon=True)
        flooder.start()
        try:
            assert settle(lambda: srv.server.connection_count == 1)
            assert settle(lambda: srv.server.connection_count == 0, WAIT * 2), "a non-reading TLS peer was kept"
        finally:
            hog.close()
            flooder.join(WAIT)
