"""asyncio's TLS layer for the asyncio server's connections, made to keep what a gone client sent.

At ``max_concurrent_calls`` the server pauses reading. Over TLS, asyncio's layer
(``asyncio.sslproto.SSLProtocol``) then goes on reading records from the socket
(up to 256 KiB) but decrypts none of them. When the client has gone (a reset, or
a reply that could not be written), the layer forgets those records and asyncio
closes the socket with the rest: notifications the client sent behind its calls
were lost, where over plain TCP the server reads them and runs them
(``_aio_ending.unread_bytes``; API.md: a notification is executed even when its
sender closes the connection right after).

``ServerTls`` decrypts them first: when the plain connection under it is lost, it
reads what the socket still holds (without waiting), decrypts every whole record
it has, and hands the plain bytes to the server's protocol, which runs the
notifications among them and skips the requests, as over TCP.

It reads attributes of asyncio's layer that are not public (``_incoming``, its
read buffer, and ``_sslobj``): where a Python version has them not,
nothing is decrypted and those notifications are lost, as before.
"""

from __future__ import annotations

import ssl
from asyncio import sslproto
from typing import Any

from ._aio_ending import EndingProtocol, unread_bytes

__all__ = ["ServerTls", "decrypt_unread"]


def decrypt_unread(layer: Any, limit: int) -> bytes:
    """The plain bytes ``layer`` (an ``SSLProtocol``) has not given its protocol, up to about ``limit``.

    Adds what its socket still holds (read without waiting) to the records it read
    ahead, and decrypts them; stops at a record cut short, a close_notify, or a
    broken record. b"" where ``layer`` is not one asyncio's 3.11+ layer looks like.
    """
    incoming = getattr(layer, "_incoming", None)
    sslobj = getattr(layer, "_sslobj", None)
    if not isinstance(incoming, ssl.MemoryBIO) or not isinstance(sslobj, ssl.SSLObject):
        return b""
    raw = unread_bytes(getattr(layer, "_transport", None), limit)
    if raw:
        incoming.write(raw)
    chunks: list[bytes] = []
    total = 0
    try:
        while total < limit:
            chunk = sslobj.read(256 * 1024)
            if not chunk:  # the client's close_notify
                break
            chunks.append(chunk)
            total += len(chunk)
    except (ssl.SSLError, ValueError):  # a record cut short (SSLWantReadError), or broken
        pass
    return b"".join(chunks)


class ServerTls(sslproto.SSLProtocol):
    """asyncio's TLS layer, which hands the server's protocol what a gone client sent (see the module)."""

    def connection_lost(self, exc: BaseException | None) -> None:
        """Give the server's protocol the client's last plain bytes, then end as asyncio's layer does."""
        app = self._app_protocol
        try:
            if isinstance(app, EndingProtocol) and (limit := app.unread_wanted()):
                # (Its connection_lost comes later, from the loop: the socket is closed by then.)
                app.peer_gone(decrypt_unread(self, limit))
        finally:  # (whatever happened above: the connection still ends, and is forgotten)
            super().connection_lost(exc)
