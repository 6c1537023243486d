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

It also keeps a client's half-close. asyncio's layer ends the connection when the
client ends its sending side, by a TCP FIN under TLS (``shutdown(SHUT_WR)`` on the
raw socket, no close_notify) or by its close_notify (which TLS 1.3 makes a
half-close): it closes the connection and drops every later write, so the replies
to the calls still running were lost, where over plain TCP the server answers
them all and then closes (README, Half-close). ``ServerTls`` hands the server's
protocol the client's last plain bytes and its end, and keeps writing until the
protocol closes the connection, as a plain transport does whose protocol's
``eof_received`` returns true.

It reads and overrides attributes of asyncio's layer that are not public
(``_incoming``, its read buffer, ``_sslobj``, ``_state``, ``_app_state``, and the
methods that read, end and resume it): where a Python version has them not,
nothing is decrypted and those notifications are lost, as before, and a
half-closing client gets asyncio's own end (it needs the layer of Python 3.11 on).
"""

from __future__ import annotations

import asyncio
import ssl
from asyncio import sslproto
from typing import Any, cast

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


_WRAPPED = getattr(getattr(sslproto, "SSLProtocolState", None), "WRAPPED", None)
_CON_MADE = getattr(getattr(sslproto, "AppProtocolState", None), "STATE_CON_MADE", None)
_EOF = getattr(getattr(sslproto, "AppProtocolState", None), "STATE_EOF", None)
# asyncio's layer as this module knows it (3.11 on); else the half-close is asyncio's own.
_KNOWN = None not in (_WRAPPED, _CON_MADE, _EOF) and all(
    hasattr(sslproto.SSLProtocol, name)
    for name in ("_call_eof_received", "_start_shutdown", "_resume_reading", "_fatal_error")
)


class ServerTls(sslproto.SSLProtocol):
    """asyncio's TLS layer, which keeps what a gone client sent and a client's half-close (see the module)."""

    # asyncio's layer's own attributes, which its type stub does not name.
    _state: Any
    _app_state: Any
    _app_reading_paused: bool
    _sslobj: ssl.SSLObject

    _peer_ended = False  # the plain connection under it ended (a TCP FIN): its end not handed on yet
    _half_open = False  # the server's protocol has the client's end and writes on until it closes

    def _keeps_half_close(self) -> bool:
        """Whether the client's end goes to the protocol, the connection kept for its replies."""
        return _KNOWN and isinstance(self._app_protocol, EndingProtocol)

    def eof_received(self) -> bool | None:  # type: ignore[override] # (True: asyncio's protocol contract)
        """The client ended its sending side without close_notify: keep the connection for the replies.

        Its last records are decrypted and handed on, then its end (the protocol
        closes the connection once it has answered); if the protocol paused reading,
        once it reads again. True: the plain transport under it stays open.
        """
        if not self._keeps_half_close() or self._state != _WRAPPED:
            return super().eof_received()  # (a handshake cut short, or the layer closing already)
        # asyncio's own mark of the peer's end: the close sends no close_notify and waits
        # for none (nothing can come), as after a FIN in asyncio's own layer.
        self._eof_received = True
        if not self._peer_ended:
            self._peer_ended = True
            self._end_input()
        return True

    def _end_input(self) -> None:
        """Hand the protocol the plain bytes left and the client's end (not while it has paused reading)."""
        if not self._peer_ended or self._app_reading_paused or self._state != _WRAPPED:
            return
        self._peer_ended = False
        chunks: list[bytes] = []
        try:
            while chunk := self._sslobj.read(256 * 1024):  # (b"": a close_notify before the FIN)
                chunks.append(chunk)
        except ssl.SSLWantReadError:  # all decrypted (a record cut short by the FIN stays so)
            pass
        except ssl.SSLError as exc:  # a broken record: as asyncio's own read
            self._fatal_error(exc, "Fatal error on SSL protocol")
            return
        if chunks:
            cast(asyncio.Protocol, self._app_protocol).data_received(b"".join(chunks))
        self._call_eof_received()

    def _resume_reading(self) -> None:
        """Reading resumed: asyncio's layer hands on what it holds, then the client's end if it came meanwhile."""
        super()._resume_reading()  # type: ignore[misc]
        if self._peer_ended:
            self._loop.call_soon(self._end_input)  # (after the read asyncio's layer has just scheduled)

    def _call_eof_received(self) -> None:
        """Hand the protocol the client's end (a FIN or a close_notify), and keep the connection for its replies."""
        if not self._keeps_half_close() or self._app_state != _CON_MADE:
            super()._call_eof_received()  # type: ignore[misc]
            return
        self._app_state = _EOF
        self._half_open = True
        try:
            cast(asyncio.Protocol, self._app_protocol).eof_received()  # (ServerProtocol closes once it has answered)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Error calling eof_received()")

    def _start_shutdown(self) -> None:
        """Close: when the server's protocol closes, not when the client's close_notify came (see the module)."""
        app_transport = self._app_transport
        if self._half_open and app_transport is not None and not app_transport.is_closing():
            return
        super()._start_shutdown()

    def connection_lost(self, exc: BaseException | None) -> None:
        """Give the server's protocol the client's last plain bytes, then end as asyncio's layer does."""
        app = self._app_protocol
        try:
            if isinstance(app, EndingProtocol) and (limit := app.unread_wanted()):
                # (Its connection_lost comes later, from the loop: the socket is closed by then.)
                app.peer_gone(decrypt_unread(self, limit))
        finally:  # (whatever happened above: the connection still ends, and is forgotten)
            super().connection_lost(exc)
