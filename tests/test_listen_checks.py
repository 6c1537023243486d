"""Both servers refuse, before binding, an empty host and a client-side TLS context.

An empty host ("" or None) listened on every interface, differently per server
(sync 0.0.0.0; aio every address family, one socket and port each), where README
promises loopback unless told. A client-side ``SSLContext``
(``ssl.create_default_context()`` without ``Purpose.CLIENT_AUTH``) was taken, and
then every client was reset, with nothing said above INFO by the sync server.
Both are ValueError from ``start()`` and ``loop()`` / ``serve_forever()`` now.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import shutil
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from _aio_support import run
from _driver_helpers import tls_contexts

from jsonrpc_mini import RPCClient, RPCServer, aio
from jsonrpc_mini._listen_checks import presents_a_certificate

pytestmark = pytest.mark.timeout(60)

WAIT = 10.0
EMPTY_HOST = r"^host is empty \((''|None)\): give '127.0.0.1' for loopback, or '0.0.0.0' \(IPv4\) or '::' \(IPv6\)"
CLIENT_CONTEXT = r"^ssl= is a client-side context \(PROTOCOL_TLS_CLIENT\), with which no client could connect"
DRIVERS = ["sync", "aio"]
HOW = ["start", "loop"]  # loop: RPCServer.loop() / aio.RPCServer.serve_forever()


def _sync_attempt(server: RPCServer, how: str, kwargs: dict[str, Any]) -> BaseException | None:
    if how == "start":
        try:
            server.start(**kwargs)
        except Exception as exc:
            return exc
        server.shutdown()
        return None
    raised: list[BaseException] = []

    def loop() -> None:
        try:
            server.loop(**kwargs)
        except Exception as exc:
            raised.append(exc)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    thread.join(WAIT)
    if thread.is_alive():  # it listens: stop it (the test then fails)
        server.shutdown()
        thread.join(WAIT)
    return raised[0] if raised else None


async def _aio_attempt(server: aio.RPCServer, how: str, kwargs: dict[str, Any]) -> BaseException | None:
    try:
        if how == "start":
            await server.start(**kwargs)
        else:
            task = asyncio.ensure_future(server.serve_forever(**kwargs))
            done, _ = await asyncio.wait({task}, timeout=WAIT)
            if not done:  # it listens: stop it (the test then fails)
                await server.shutdown()
            await task
            return None
    except Exception as exc:
        return exc
    await server.shutdown()
    return None


def attempt(driver: str, how: str, **kwargs: Any) -> BaseException | None:
    """What ``start``/``loop`` of a new ``driver`` server raises given ``kwargs`` (None: it listened, now stopped)."""
    if driver == "sync":
        server = RPCServer()
        error = _sync_attempt(server, how, kwargs)
        assert server.address is None
        return error

    async def main() -> BaseException | None:
        server = aio.RPCServer()
        error = await _aio_attempt(server, how, kwargs)
        assert server.address is None
        return error

    return run(main)


@pytest.fixture
def directory() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="jrpc", dir="/tmp")  # short: AF_UNIX paths are limited
    yield path
    shutil.rmtree(path)


@pytest.mark.parametrize("host", ["", None])
@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("driver", DRIVERS)
def test_an_empty_host_is_refused(driver: str, how: str, host: str | None) -> None:
    error = attempt(driver, how, host=host, port=0)
    assert isinstance(error, ValueError), error
    assert re.match(EMPTY_HOST, str(error)), error
    assert str(error).endswith("to listen on every interface")


def client_side_context() -> ssl.SSLContext:
    """The usual mix-up: a default (client) context, with the server's certificate loaded."""
    trustme = pytest.importorskip("trustme")
    context = ssl.create_default_context()
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)
    assert context.protocol == ssl.PROTOCOL_TLS_CLIENT
    return context


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("driver", DRIVERS)
def test_a_client_side_tls_context_is_refused_on_tcp(driver: str, how: str) -> None:
    error = attempt(driver, how, host="127.0.0.1", port=0, ssl=client_side_context())
    assert isinstance(error, ValueError), error
    assert re.match(CLIENT_CONTEXT, str(error)), error
    assert "ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)" in str(error)


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets on this platform")
@pytest.mark.parametrize("driver", DRIVERS)
def test_a_client_side_tls_context_is_refused_before_binding(driver: str, directory: str) -> None:
    path = os.path.join(directory, "s.sock")
    error = attempt(driver, "start", path=path, ssl=client_side_context())
    assert isinstance(error, ValueError), error
    assert re.match(CLIENT_CONTEXT, str(error)), error
    assert os.listdir(directory) == []  # no socket file was ever bound


def _who_over_tls(driver: str, server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, **connect: Any) -> Any:
    """What ``who`` (the string "tls") gives over TLS from a ``driver`` server started with ``server_ctx``."""
    if driver == "sync":
        server = RPCServer()
        server.register_function(lambda: "tls", name="who")
        address = server.start("127.0.0.1", 0, ssl=server_ctx)
        assert isinstance(address, tuple)
        try:
            with RPCClient(*address, ssl=client_ctx, timeout=WAIT, **connect) as client:
                return client.call("who")
        finally:
            server.shutdown()

    async def main() -> Any:
        server = aio.RPCServer()
        server.register_function(lambda: "tls", name="who")
        address = await server.start("127.0.0.1", 0, ssl=server_ctx)
        assert isinstance(address, tuple)
        try:
            async with await aio.connect(*address, ssl=client_ctx, timeout=WAIT, **connect) as client:
                return await client.call("who")
        finally:
            await server.shutdown()

    return run(main)


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_server_side_context_still_serves_tls(driver: str) -> None:
    server_ctx, client_ctx = tls_contexts()
    assert server_ctx.protocol == ssl.PROTOCOL_TLS_SERVER
    assert _who_over_tls(driver, server_ctx, client_ctx) == "tls"


# -- a server context without a certificate ---------------------------------------------
# Every client's handshake failed ("no shared cipher"), which the sync server logged
# at INFO only; both servers refuse it in start() / loop() now.

NO_CERTIFICATE = r"^ssl= has no certificate to present, with which no client could connect"


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("driver", DRIVERS)
def test_a_tls_context_without_a_certificate_is_refused(driver: str, how: str) -> None:
    for context in (ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)):
        error = attempt(driver, how, host="127.0.0.1", port=0, ssl=context)
        assert isinstance(error, ValueError), error
        assert re.match(NO_CERTIFICATE, str(error)), error
        assert "load_cert_chain(certfile, keyfile)" in str(error)


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets on this platform")
@pytest.mark.parametrize("driver", DRIVERS)
def test_a_tls_context_without_a_certificate_is_refused_before_binding(driver: str, directory: str) -> None:
    path = os.path.join(directory, "s.sock")
    error = attempt(driver, "start", path=path, ssl=ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    assert isinstance(error, ValueError), error
    assert re.match(NO_CERTIFICATE, str(error)), error
    assert os.listdir(directory) == []


def test_which_contexts_present_a_certificate(tmp_path: Any) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    with_certificate, _ = tls_contexts()
    client_certificates = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)  # mutual TLS
    ca.issue_cert("127.0.0.1").configure_cert(client_certificates)
    client_certificates.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(client_certificates)
    tls13 = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(tls13)
    tls13.minimum_version = ssl.TLSVersion.TLSv1_3
    for context in (with_certificate, client_certificates, tls13):
        assert presents_a_certificate(context)
    assert not presents_a_certificate(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    only_tls13 = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # (OpenSSL turns TLS 1.3 off without a certificate)
    only_tls13.minimum_version = ssl.TLSVersion.TLSv1_3
    assert not presents_a_certificate(only_tls13)
    # Not tried: a context that picks another by server name.
    by_name = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    by_name.sni_callback = lambda _sock, _name, _ctx: None
    assert presents_a_certificate(by_name)
    # A context logging TLS keys is tried with a TLS 1.2 hello, which derives no key: none logged.
    for certificate, tls13_only in ((None, False), (ca.issue_cert("127.0.0.1"), False), (ca.issue_cert("x"), True)):
        logging_keys = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if certificate is not None:
            certificate.configure_cert(logging_keys)
        if tls13_only:
            logging_keys.minimum_version = ssl.TLSVersion.TLSv1_3
        keys = tmp_path / "keys"
        logging_keys.keylog_filename = str(keys)
        assert presents_a_certificate(logging_keys) is (certificate is not None)
        assert [line for line in keys.read_text().splitlines() if not line.startswith("#")] == []
        keys.unlink()


def test_sslkeylogfile_does_not_turn_the_check_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    # SSLKEYLOGFILE (TLS debugging) gives every default context a keylog_filename.
    monkeypatch.setenv("SSLKEYLOGFILE", str(tmp_path / "keys"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    assert context.keylog_filename
    error = attempt("sync", "start", host="127.0.0.1", port=0, ssl=context)
    assert isinstance(error, ValueError) and re.match(NO_CERTIFICATE, str(error)), error
    with_certificate, _ = tls_contexts()
    assert with_certificate.keylog_filename
    assert attempt("sync", "start", host="127.0.0.1", port=0, ssl=with_certificate) is None


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_context_choosing_its_certificate_by_server_name_still_serves(driver: str) -> None:
    # The usual multi-name server: the listening context has no certificate of its
    # own and its sni_callback switches to the one for the name asked.
    named, client_ctx = tls_contexts()
    listening = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)

    def by_name(sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, _ctx: ssl.SSLContext) -> None:
        if name == "localhost":
            sock.context = named

    listening.sni_callback = by_name
    assert _who_over_tls(driver, listening, client_ctx, server_hostname="localhost") == "tls"


# -- a port in use: the error names the address (review17 R5) ---------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("driver", DRIVERS)
def test_a_port_in_use_is_an_oserror_naming_the_address(driver: str, how: str, host: str) -> None:
    # asyncio's own create_server named it; binding one socket ourselves (07b7297) lost it.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as taken:
        try:
            taken.bind((host, 0))
        except OSError:
            pytest.skip(f"no {host} here")
        taken.listen()
        port = taken.getsockname()[1]
        error = attempt(driver, how, host=host, port=port)
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    assert isinstance(error, OSError), error
    assert error.errno == errno.EADDRINUSE
    assert error.filename == where
    assert str(error).endswith(f": '{where}'")


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_host_that_is_no_address_stays_a_gaierror_naming_it(driver: str) -> None:
    # Review17 R9: fe7908a re-raised every bind error as a plain OSError, so "::zz"
    # (no IPv6 address: it fails in bind) was no longer a socket.gaierror.
    error = attempt(driver, "start", host="::zz", port=0)
    assert isinstance(error, socket.gaierror), error
    assert error.filename == "[::zz]:0"
