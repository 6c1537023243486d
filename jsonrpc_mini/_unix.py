"""Unix socket files for both servers: replacing a stale one, appearing only once set up and listening."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import socket
import stat
from typing import Union

from ._reprs import path_text

__all__ = ["bind_unix", "check_unix_path", "remove_stale_socket", "socket_file", "unlink_socket_file"]


UnixPath = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
"""What ``path=`` takes: a str, or bytes or a path-like object (as ``os.fsdecode`` reads them)."""


def unix_path(path: UnixPath | None) -> str | None:
    """``path=`` as the str the servers and clients use (None stays None).

    An empty path is refused with ValueError: Linux binds "" to a random abstract
    name (autobind) no client can reach by ``path=``, and connecting to it fails
    with a bare EINVAL. Both servers and both clients take ``path=`` through here.
    """
    if path is None:
        return None
    text = os.fsdecode(path)
    if not text:
        raise ValueError("Unix socket path is empty; give a file system path")
    return text


def check_unix_path(path: str) -> None:
    """Refuse a path no server can be reached at, before anything is bound or removed.

    An abstract name (starting with a NUL byte, Linux) or one with a NUL byte
    inside has no file: ValueError naming it. A path longer than AF_UNIX takes:
    OSError("AF_UNIX path too long"), as ``socket.bind`` says (the servers bind a
    short temporary name and link it onto ``path``, which no client could reach).
    """
    if "\0" in path:
        kind = "abstract socket names (a leading NUL byte) are" if path.startswith("\0") else "a NUL byte is"
        raise ValueError(f"Unix socket path {path!r}: {kind} not supported; give a file system path")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # The socket module checks the length before the system call; "/" * n names
        # the root directory (nothing is created and nobody is reached).
        probe.connect(b"/" * len(os.fsencode(path)))
    except OSError as exc:
        if exc.errno is None:  # the socket module's own check: too long
            raise OSError(f"AF_UNIX path too long ({len(os.fsencode(path))} bytes): {path_text(path)}") from None
    finally:
        probe.close()


def socket_file(path: str) -> tuple[int, int] | None:
    """The identity (device, inode) of the file at ``path`` (None if there is none)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def unlink_socket_file(path: str, identity: tuple[int, int] | None) -> None:
    """Remove the socket file a server bound at ``path``, unless it is not that file anymore.

    ``identity`` is ``socket_file(path)`` taken when the server bound it: a file
    removed meanwhile and replaced (say by another server now listening there) is
    left alone.
    """
    if identity is not None and socket_file(path) == identity:
        with contextlib.suppress(OSError):
            os.unlink(path)


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
        raise FileExistsError(f"{path_text(path)} exists and is not a socket; refusing to replace it")
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
        raise OSError(f"{path_text(path)} is in use by another server (it takes no connection now: {exc})") from exc
    finally:
        probe.close()
    raise OSError(f"{path_text(path)} is in use by another server")


def bind_unix(path: str, mode: int | None, backlog: int) -> socket.socket:
    """A Unix stream socket listening at ``path``; a stale file there is replaced.

    The file appears only once the socket listens, with ``mode`` (the ``unix_mode``
    option) already set: a client that connects as soon as it sees the file is
    neither refused nor let in under the permissions the umask gave. The socket is
    bound at a temporary name in the same directory, set up, then hard-linked onto
    ``path`` (which fails, as a bind would, if a file appeared there meanwhile) and
    the temporary name removed. Where that cannot be done (a temporary name too long
    for AF_UNIX, a file system without hard links) it binds ``path`` directly and
    listens right after setting the mode. A path no client could connect to is
    refused first (``check_unix_path``).
    """
    check_unix_path(path)
    remove_stale_socket(path)
    temporary = os.path.join(os.path.dirname(path), f".{secrets.token_hex(4)}.tmp")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            sock.bind(temporary)
        except OSError:
            sock.close()
            return _bind_in_place(path, mode, backlog)
        try:
            _set_up(sock, temporary, mode, backlog)
            try:
                os.link(temporary, path)
            except FileExistsError as exc:
                raise OSError(errno.EADDRINUSE, f"{path_text(path)} appeared while binding (another server?)") from exc
            except OSError:
                sock.close()
                return _bind_in_place(path, mode, backlog)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_in_place(path: str, mode: int | None, backlog: int) -> socket.socket:
    """``bind_unix`` without a temporary name: ``path`` exists a moment before the socket listens."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        try:
            _set_up(sock, path, mode, backlog)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
    except BaseException:
        sock.close()
        raise
    return sock


def _set_up(sock: socket.socket, path: str, mode: int | None, backlog: int) -> None:
    """Give the socket file at ``path`` its ``mode``, then listen (nobody can connect before)."""
    if mode is not None:
        os.chmod(path, mode)
    sock.listen(backlog)
