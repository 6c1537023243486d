"""What both servers check before they bind: the port and the TLS context.

A mistake here used to show only once clients came: a client-side TLS context
reset every connection. Both servers refuse it in ``start()``/``loop()`` instead.
"""

from __future__ import annotations

import ssl as _ssl

from ._connect import check_port

__all__ = ["check_listen"]


def check_listen(host: object, port: object, path: str | None, ssl: _ssl.SSLContext | None) -> None:
    """ValueError for arguments of ``start``/``loop`` no server should listen with.

    Without ``path``: a port outside 0..65535 (``check_port``). With ``ssl``: a
    client-side context (``ssl.create_default_context()`` without
    ``Purpose.CLIENT_AUTH``), with which every handshake would fail.
    """
    if path is None:
        check_port(port)
    if isinstance(ssl, _ssl.SSLContext) and ssl.protocol == _ssl.PROTOCOL_TLS_CLIENT:
        raise ValueError(
            "ssl= is a client-side context (PROTOCOL_TLS_CLIENT), with which no client could connect:"
            " a server needs ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)"
            " or ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)"
        )
