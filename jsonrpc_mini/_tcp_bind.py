"""Both servers' TCP listening socket: one socket for ``host``, however many addresses it has.

asyncio's ``create_server(host, port)`` binds one socket per address a host name
resolves to ("localhost": 127.0.0.1 and ::1 on many systems), each on a port of
its own when port 0 is asked, while ``start()`` returns one address. Both servers
bind one socket here instead, as the sync server always did; the asyncio one
accepts on it in its own loop (``_aio_listener``), or hands it to
``create_server(sock=...)`` on an event loop that cannot watch descriptors.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable
from typing import Any

__all__ = ["bind_tcp", "bind_tcp_async", "create_tcp_server", "host_port", "listen_address"]

SockAddr = tuple[Any, ...]


def host_port(host: str, port: object) -> str:
    """``host:port`` as people write it: an IPv6 address in brackets (``[::1]:5000``), once."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def listen_address(host: str, port: int) -> tuple[socket.AddressFamily, SockAddr]:
    """The family and address to bind for ``host``/``port`` (may block: it resolves host names).

    IPv6 if ``host`` holds a ``:``; else IPv4 (a host name's first IPv4 address), or
    the first IPv6 address of a host name that has no IPv4 one.
    """
    if ":" in host:
        return socket.AF_INET6, (host, port)
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    except socket.gaierror:
        infos = socket.getaddrinfo(host, port, socket.AF_INET6, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    family, _, _, _, address = infos[0]
    return family, address


def bind_tcp(family: socket.AddressFamily, address: SockAddr, backlog: int) -> socket.socket:
    """A TCP socket of ``family`` bound to ``address`` (SO_REUSEADDR), listening with ``backlog``.

    A failed bind names the address, as a failed open names its file:
    ``OSError(EADDRINUSE, "Address already in use", "127.0.0.1:5000")`` (a service
    starting several servers can tell which one; asyncio's own message did).
    """
    # IPPROTO_TCP, not 0: an accepted socket takes its listener's, and asyncio sets
    # TCP_NODELAY on a transport's socket only if it says IPPROTO_TCP. With 0 the aio
    # server's replies waited for Nagle (1,000 pipelined aio calls: 100k -> 20k/s).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno is None or exc.filename is not None:
                raise
            where = host_port(address[0], address[1])
            raise type(exc)(exc.errno, exc.strerror, where) from exc  # (socket.gaierror stays one)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


async def bind_tcp_async(host: str, port: int, backlog: int) -> socket.socket:
    """:func:`bind_tcp` for ``host``/``port`` in a running loop: a host name is resolved in its executor."""
    try:
        ipaddress.ip_address(host)
    except ValueError:  # a host name: resolving it may take a while
        family, address = await asyncio.get_running_loop().run_in_executor(None, listen_address, host, port)
    else:
        family, address = listen_address(host, port)
    return bind_tcp(family, address, backlog)


async def create_tcp_server(
    protocol: Callable[[], asyncio.BaseProtocol], host: str, port: int, backlog: int, **kwargs: Any
) -> asyncio.Server:
    """``loop.create_server`` on the one socket :func:`bind_tcp_async` binds (``kwargs``: e.g. ``ssl=``)."""
    sock = await bind_tcp_async(host, port, backlog)
    try:
        return await asyncio.get_running_loop().create_server(protocol, sock=sock, backlog=backlog, **kwargs)
    except BaseException:
        sock.close()
        raise
