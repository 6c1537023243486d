"""The command lines' TLS options: ``call`` and ``check`` (client side), ``serve`` (server side).

One set of names for all three: ``--cafile``, ``--certfile`` and ``--keyfile``
(PEM files), plus ``--tls`` and ``--server-hostname`` for the client side. A file
that cannot be read or is not what the option needs is a usage error (exit 2)
naming the option, not a traceback or a server that resets every handshake.
"""

from __future__ import annotations

import argparse
import ssl
from typing import Any

from ._connect import plain_socket

__all__ = ["CLIUsage", "add_client_options", "add_server_options", "client_tls", "server_context", "speaks_tls"]

_SNIFF_WAIT = 5.0  # longest wait (seconds) for speaks_tls's handshake, whatever the command's timeout


class CLIUsage(Exception):
    """A usage error of a command: the message is printed and the exit status is 2."""


def add_client_options(parser: argparse.ArgumentParser) -> None:
    """``--tls``, ``--cafile``, ``--certfile``, ``--keyfile``, ``--server-hostname`` (for ``client_tls``)."""
    tls = parser.add_argument_group("TLS (for a server started with ssl=...; each option implies --tls)")
    tls.add_argument("--tls", action="store_true", help="connect with TLS, trusting the system's CAs")
    tls.add_argument("--cafile", metavar="FILE", help="trust the CA certificates in FILE (PEM) instead")
    tls.add_argument("--certfile", metavar="FILE", help="present this client certificate (PEM; mutual TLS)")
    tls.add_argument("--keyfile", metavar="FILE", help="the private key of --certfile, if not in that file")
    tls.add_argument("--server-hostname", metavar="NAME", help="the name the certificate must carry (default: HOST)")


def client_tls(args: argparse.Namespace) -> dict[str, Any]:
    """``ssl`` and ``server_hostname`` arguments from the client options: none unless one is given.

    ``--cafile``, ``--certfile`` and ``--server-hostname`` each imply ``--tls``. The
    context checks the server's certificate and host name as
    ``ssl.create_default_context()`` does (the system's CAs, or ``--cafile``'s).
    """
    if args.keyfile and not args.certfile:
        raise CLIUsage("--keyfile needs --certfile (the client certificate it belongs to)")
    if not (args.tls or args.cafile or args.certfile or args.server_hostname):
        return {}
    if getattr(args, "path", None) is not None and not args.server_hostname:
        raise CLIUsage("TLS over --path needs --server-hostname NAME (a name the server's certificate carries)")
    try:
        context = ssl.create_default_context(cafile=args.cafile)
    except (OSError, ValueError) as exc:  # (ssl.SSLError is an OSError)
        raise CLIUsage(f"--cafile {args.cafile}: {exc}") from None
    if args.certfile:
        _load_chain(context, args)
    tls: dict[str, Any] = {"ssl": context}
    if args.server_hostname:
        tls["server_hostname"] = args.server_hostname
    return tls


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """``--certfile``, ``--keyfile``, ``--cafile`` of ``serve`` (for ``server_context``)."""
    tls = parser.add_argument_group("TLS (serve TLS when --certfile is given)")
    tls.add_argument("--certfile", metavar="FILE", help="serve TLS with this certificate (PEM)")
    tls.add_argument("--keyfile", metavar="FILE", help="the private key of --certfile, if not in that file")
    tls.add_argument(
        "--cafile", metavar="FILE", help="require a client certificate signed by a CA in FILE (PEM; mutual TLS)"
    )


def server_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The server-side context of ``serve``'s options, or None (plain text) without ``--certfile``.

    ``ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)`` with the certificate
    chain loaded; with ``--cafile`` it trusts those CAs for client certificates and
    requires one (``verify_mode = CERT_REQUIRED``).
    """
    if not args.certfile:
        if args.keyfile:
            raise CLIUsage("--keyfile needs --certfile (the server certificate it belongs to)")
        if args.cafile:
            raise CLIUsage("--cafile (mutual TLS) needs --certfile (the server's own certificate)")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    _load_chain(context, args)
    if args.cafile:
        try:
            context.load_verify_locations(cafile=args.cafile)
        except (OSError, ValueError) as exc:
            raise CLIUsage(f"--cafile {args.cafile}: {exc}") from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _load_chain(context: ssl.SSLContext, args: argparse.Namespace) -> None:
    try:
        context.load_cert_chain(args.certfile, args.keyfile)
    except (OSError, ValueError) as exc:
        key = f" --keyfile {args.keyfile}" if args.keyfile else ""
        raise CLIUsage(f"--certfile {args.certfile}{key}: {exc}") from None


def speaks_tls(target: dict[str, Any], timeout: float) -> bool:
    """Whether the server at ``target`` (``host``/``port`` or ``path``) answers a TLS handshake.

    For ``call`` without TLS options, after a server closed or reset its plain
    connection: many TLS servers (those on OpenSSL: Python's, node's) answer plain
    text with nothing at all, so only a handshake tells them from a server that
    just closed. It completes (the certificate is not checked: nothing is sent
    over it), or the server answers with a TLS alert (it wants a client
    certificate, another TLS version...): TLS. Anything else (the plain server's
    text or close, a refusal, silence for ``min(timeout, 5 s)``): not.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    wait = min(timeout, _SNIFF_WAIT)
    try:
        sock = plain_socket(target.get("host"), target.get("port"), target.get("path"), wait)
    except OSError:
        return False
    with sock:
        try:
            with context.wrap_socket(sock, server_hostname=target.get("host")):
                return True
        except ssl.SSLError as exc:
            return "ALERT" in str(exc.reason)  # (an alert record: only a TLS peer sends one)
        except OSError:
            return False
