"""What both servers check before they bind: the host, the port and the TLS context.

A mistake here used to show only once clients came: an empty host listened on
every interface (differently per server), and a client-side TLS context, or one
without a certificate, reset every connection. Both servers refuse them in ``start()``/``loop()`` instead.
"""

from __future__ import annotations

import contextlib
import ssl as _ssl

from ._connect import check_port

__all__ = ["check_listen"]


def check_listen(host: object, port: object, path: str | None, ssl: _ssl.SSLContext | None) -> None:
    """ValueError for arguments of ``start``/``loop`` no server should listen with.

    Without ``path``: an empty host ("" or None, which the socket layers read as
    "every interface": README promises loopback unless told) and a port outside
    0..65535 (``check_port``). With ``ssl``: a client-side context
    (``ssl.create_default_context()`` without ``Purpose.CLIENT_AUTH``), or one
    without a certificate, with which every handshake would fail.
    """
    if path is None:
        if host is None or host == "":
            raise ValueError(
                f"host is empty ({host!r}): give '127.0.0.1' for loopback, or '0.0.0.0' (IPv4) or '::'"
                " (IPv6) to listen on every interface"
            )
        check_port(port)
    if not isinstance(ssl, _ssl.SSLContext):
        return
    if ssl.protocol == _ssl.PROTOCOL_TLS_CLIENT:
        raise ValueError(
            "ssl= is a client-side context (PROTOCOL_TLS_CLIENT), with which no client could connect:"
            " a server needs ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)"
            " or ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)"
        )
    if not presents_a_certificate(ssl):
        raise ValueError(
            "ssl= has no certificate to present, with which no client could connect (a handshake"
            " tried in memory found no shared cipher or protocol version): load one with"
            " context.load_cert_chain(certfile, keyfile)"
        )


def presents_a_certificate(context: _ssl.SSLContext) -> bool:
    """Whether a server with ``context`` gets past a client's hello (False: it has no certificate).

    Python cannot ask a context whether a certificate was loaded, so a client
    offering every cipher (anonymous and null ones too) and every protocol version
    says hello to it in memory: without a certificate the server has no cipher to
    choose, and no TLS 1.3 at all. Not tried (True) for a context whose
    ``sni_callback`` may pick another context by server name. For a context that
    writes TLS keys to a ``keylog_filename`` (``SSLKEYLOGFILE`` sets it) the hello
    offers TLS 1.2 at most, where no secret exists before the client's key exchange,
    which never comes: nothing is logged. (~1 ms, once per start; the context's
    ``session_stats()`` count it as one accept.)
    """
    if context.sni_callback is not None:
        return True
    client = _ssl.SSLContext(_ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = _ssl.CERT_NONE
    client.minimum_version = _ssl.TLSVersion.MINIMUM_SUPPORTED
    client.set_ciphers("ALL:eNULL:@SECLEVEL=0")
    capped = bool(context.keylog_filename)
    if capped:
        client.maximum_version = _ssl.TLSVersion.TLSv1_2
    hello, into_server = _ssl.MemoryBIO(), _ssl.MemoryBIO()
    greeter = client.wrap_bio(_ssl.MemoryBIO(), hello)
    server = context.wrap_bio(into_server, _ssl.MemoryBIO(), server_side=True)
    with contextlib.suppress(_ssl.SSLWantReadError):
        greeter.do_handshake()  # (writes its hello, then waits for the answer)
    into_server.write(hello.read())
    try:
        server.do_handshake()
    except _ssl.SSLWantReadError:  # it answered and waits for the client's next step
        return True
    except _ssl.SSLError as exc:
        if exc.reason == "UNSUPPORTED_PROTOCOL":  # no version in common: TLS 1.3 alone, without a certificate
            return capped  # (unless the hello was held to TLS 1.2)
        return exc.reason not in _NO_CERTIFICATE
    return True


# What OpenSSL says when a server has no certificate to present (which one depends on
# the path its handshake takes, e.g. with an sni_callback set).
_NO_CERTIFICATE = frozenset({"NO_SHARED_CIPHER", "NO_SUITABLE_SIGNATURE_ALGORITHM"})
