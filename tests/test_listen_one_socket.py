"""Both servers listen on one TCP socket, however many addresses the host name has (P11).

The asyncio server used ``create_server(host, port)``, which binds one socket per
address of a host name ("localhost": 127.0.0.1 and ::1 on many systems), each on
a port of its own when port 0 is asked, while ``start()`` returned one address.
Both servers now bind one socket (``_tcp_bind``), plain and TLS. A resolver that
gives two loopback addresses is put in place of the system's here (this machine's
"localhost" has one), and the process's listening sockets are read from /proc.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import sys
from typing import Any

import pytest
from _driver_helpers import WAIT, ipv6_loopback, serving, tls_contexts

from jsonrpc_mini import RPCClient, RPCServer, aio

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/net/tcp"),
]

_real_getaddrinfo = socket.getaddrinfo


def fake_resolver(names: dict[str, list[str]]) -> Any:
    """A getaddrinfo that resolves ``names`` to the loopback addresses given (in order), others as usual."""

    def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> Any:
        if host not in names:
            return _real_getaddrinfo(host, port, family, type, proto, flags)
        infos = []
        for address in names[host]:
            fam = socket.AF_INET6 if ":" in address else socket.AF_INET
            if family in (0, fam):
                sockaddr = (address, int(port or 0), 0, 0) if fam == socket.AF_INET6 else (address, int(port or 0))
                infos.append((fam, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
        if not infos:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return infos

    return getaddrinfo


def listening() -> set[tuple[str, int]]:
    """This process's listening TCP sockets: ("tcp" or "tcp6", port)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:[") : -1])
    found = set()
    for table in ("tcp", "tcp6"):
        with open(f"/proc/net/{table}") as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    found.add((table, int(fields[1].rsplit(":", 1)[1], 16)))
    return found


def echo(x: Any) -> Any:
    return x


def serve_sync(host: str, tls: bool, connect_to: str) -> tuple[Any, set[tuple[str, int]], Any]:
    server_ctx, client_ctx = tls_contexts() if tls else (None, None)
    server = RPCServer()
    server.register_function(echo)
    before = listening()
    with serving(server, host, ssl=server_ctx) as address:
        opened = listening() - before
        extra: dict[str, Any] = {"ssl": client_ctx, "server_hostname": "localhost"} if tls else {}
        with RPCClient(connect_to, address[1], timeout=WAIT, **extra) as client:
            answer = client.echo("hi")
    return address, opened, answer


async def serve_aio(host: str, tls: bool, connect_to: str) -> tuple[Any, set[tuple[str, int]], Any]:
    server_ctx, client_ctx = tls_contexts() if tls else (None, None)
    server = aio.RPCServer()
    server.register_function(echo)
    before = listening()
    address = await server.start(host, 0, ssl=server_ctx)
    try:
        opened = listening() - before
        extra: dict[str, Any] = {"ssl": client_ctx, "server_hostname": "localhost"} if tls else {}
        async with await aio.connect(connect_to, address[1], timeout=WAIT, **extra) as client:
            answer = await client.echo("hi")
    finally:
        await server.shutdown()
    return address, opened, answer


def check(kind: str, host: str, tls: bool, connect_to: str) -> tuple[Any, set[tuple[str, int]]]:
    """Start a server of ``kind`` on ``host``, port 0; its address and the sockets it opened. One call must work."""
    if kind == "aio":
        address, opened, answer = asyncio.run(serve_aio(host, tls, connect_to))
    else:
        address, opened, answer = serve_sync(host, tls, connect_to)
    assert answer == "hi"
    return address, opened


@pytest.fixture(params=["sync", "aio"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=[False, True], ids=["plain", "tls"])
def tls(request: pytest.FixtureRequest) -> bool:
    if request.param and not hasattr(ssl, "MemoryBIO"):  # pragma: no cover
        pytest.skip("no TLS")
    return bool(request.param)


def test_localhost_port_0_is_one_socket_on_the_port_named(kind: str, tls: bool) -> None:
    address, opened = check(kind, "localhost", tls, "localhost")
    assert address[0] == "127.0.0.1"
    assert opened == {("tcp", address[1])}


def test_a_name_with_two_addresses_is_served_on_one_socket_on_the_port_named(
    kind: str, tls: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    second = "::1" if ipv6_loopback() else "127.0.0.2"
    monkeypatch.setattr(socket, "getaddrinfo", fake_resolver({"twice.test": ["127.0.0.1", second]}))
    address, opened = check(kind, "twice.test", tls, "127.0.0.1")
    assert address == ("127.0.0.1", address[1])
    assert opened == {("tcp", address[1])}  # not a second socket on a port of its own


def test_a_name_with_only_an_ipv6_address_is_served_there(
    kind: str, tls: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not ipv6_loopback():
        pytest.skip("no IPv6 loopback")
    monkeypatch.setattr(socket, "getaddrinfo", fake_resolver({"six.test": ["::1"]}))
    address, opened = check(kind, "six.test", tls, "::1")
    assert address[0] == "::1"
    assert opened == {("tcp6", address[1])}
