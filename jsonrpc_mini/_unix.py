"""Unix socket files for both servers: replacing a stale one, binding with the right mode."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
from collections.abc import Callable

__all__ = ["bind_unix", "listen_unix", "remove_stale_socket"]


def remove_stale_socket(path: str) -> None:
    """Remove the socket file at ``path`` if nobody listens on it (left by an earlier run).

    Only a refused probe proves that nobody listens. Any other failure (a server
    whose listen queue is full answers EAGAIN, a slow one times out, no permission)
    leaves the file alone: OSError, as for a server that accepts the probe.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise FileExistsError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # nobody is listening: a stale file from a previous run
        return
    except FileNotFoundError:
        return  # removed meanwhile
    except OSError as exc:
        raise OSError(f"{path} is in use by another server (it takes no connection now: {exc})") from exc
    finally:
        probe.close()
    raise OSError(f"{path} is in use by another server")


def bind_unix(path: str, mode: int | None) -> socket.socket:
    """A Unix stream socket bound at ``path``, not yet listening; a stale file there is replaced.

    ``mode`` (the ``unix_mode`` option) is applied before the caller listens: no
    peer can connect while the file still has the permissions the umask gave it.
    """
    remove_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        if mode is not None:
            try:
                os.chmod(path, mode)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(path)
                raise
    except BaseException:
        sock.close()
        raise
    return sock


async def listen_unix(
    loop: asyncio.AbstractEventLoop,
    protocol: Callable[[], asyncio.BaseProtocol],
    path: str,
    mode: int | None,
    backlog: int,
) -> asyncio.Server:
    """An asyncio server on the Unix socket ``bind_unix`` makes (its mode set before it listens)."""
    sock = bind_unix(path, mode)
    try:
        return await loop.create_unix_server(protocol, sock=sock, backlog=backlog)
    except BaseException:
        sock.close()
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
