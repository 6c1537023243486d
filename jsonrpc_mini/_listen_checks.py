"""What both servers check before they bind: the host, the port and the TLS context.

A mistake here used to show only once clients came: an empty host listened on
every interface (differently per server), and a client-side TLS context reset
every connection. Both servers refuse them in ``start()``/``loop()`` instead.
"""

from __future__ import annotations

import ssl as _ssl

from ._connect import check_port

__all__ = ["check_listen"]


def check_listen(host: object, port: object, path: str | None, ssl: _ssl.SSLContext | None) -> None:
    """ValueError for arguments of ``start``/``loop`` no server should listen with.

    Without ``path``: an empty host ("" or None, which the socket layers read as
    "every interface": README promises loopback unless told) and a port outside
    0..65535 (``check_port``). With ``ssl``: a client-side context
    (``ssl.create_default_context()`` without ``Purpose.CLIENT_AUTH``), with which
    every handshake would fail.
    """
    if path is None:
        if host is None or host == "":
            raise ValueError(
                f"host is empty ({host!r}): give '127.0.0.1' for loopback, or '0.0.0.0' (IPv4) or '::'"
                " (IPv6) to listen on every interface"
            )
        check_port(port)
    if isinstance(ssl, _ssl.SSLContext) and ssl.protocol == _ssl.PROTOCOL_TLS_CLIENT:
        raise ValueError(
            "ssl= is a client-side context (PROTOCOL_TLS_CLIENT), with which no client could connect:"
            " a server needs ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)"
            " or ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)"
        )
