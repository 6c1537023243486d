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


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_server_side_context_still_serves_tls(driver: str) -> None:
    server_ctx, client_ctx = tls_contexts()
    assert server_ctx.protocol == ssl.PROTOCOL_TLS_SERVER
    if driver == "sync":
        server = RPCServer()
        server.register_function(lambda: "tls", name="who")
        address = server.start("127.0.0.1", 0, ssl=server_ctx)
        assert isinstance(address, tuple)
        try:
            with RPCClient(*address, ssl=client_ctx, timeout=WAIT) as client:
                assert client.call("who") == "tls"
        finally:
            server.shutdown()
        return

    async def main() -> Any:
        server = aio.RPCServer()
        server.register_function(lambda: "tls", name="who")
        address = await server.start("127.0.0.1", 0, ssl=server_ctx)
        assert isinstance(address, tuple)
        try:
            async with await aio.connect(*address, ssl=client_ctx, timeout=WAIT) as client:
                return await client.call("who")
        finally:
            await server.shutdown()

    assert run(main) == "tls"
