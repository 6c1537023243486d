"""The command line's ``call``: its words read as an address, a method and JSON arguments, and the call made.

``python -m jsonrpc_mini call HOST:PORT METHOD [ARG ...]`` (see ``__main__``, which
builds the parser): every ARG that is JSON is sent as that value, a bare word as a
string, ``name=value`` as a keyword; JSON that Python cannot hold is a usage error.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import socket
import sys
import time
from typing import Any

from ._cli_tls import CLIUsage as _Usage
from ._cli_tls import client_tls, speaks_tls
from ._client import RPCClient
from ._errors import ConnectionLost, RPCError, error_from_response
from ._refuse import TLS_REQUIRED
from ._socket_waits import wait_readable

__all__ = ["call_command"]

# How long ``call --notify`` (without TLS) waits for the server to close after it
# (seconds; --timeout if shorter), and reads of what it says meanwhile at most.
NOTIFY_WAIT = 1.0
_NOTIFY_READ = 64 * 1024


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise OverflowError(f"{text} is too large for a float")
    return number


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # past sys.get_int_max_str_digits(): no encoder could write it either
        limit = sys.get_int_max_str_digits()
        raise OverflowError(f"an integer of {len(text.lstrip('-'))} digits is longer than {limit} digits") from None


def _parse_value(text: str) -> Any:
    """An ARG as JSON (only what JSON allows: NaN and Infinity are words), else the string itself."""
    try:
        return json.loads(text, parse_constant=_not_json, parse_float=_finite, parse_int=_whole)
    except OverflowError:
        raise  # JSON that Python cannot hold: say so rather than send a string in its place
    except RecursionError:
        raise OverflowError("nested too deeply to read") from None
    except ValueError as exc:
        if text.lstrip()[:1] in ("{", "[", '"'):  # meant as JSON: a typo must not be sent as text instead
            quoted = shlex.quote(json.dumps(text))  # (what to type in a shell)
            hint = f"to send it as text, write it as a JSON string: {quoted}"
            raise OverflowError(f"not valid JSON ({exc}); {hint}") from None
        return text  # a bare word is a string


def _server(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """RPCClient's arguments to reach the server, and the words after its address: METHOD [ARG ...]."""
    words: list[str] = args.words
    if args.path is not None:
        return {"path": args.path}, words
    if len(words) < 2:
        raise _Usage(f"call needs HOST:PORT and METHOD (or --path PATH and METHOD), not only {words[0]!r}")
    host, _, port = words[0].rpartition(":")
    bracketed = host.startswith("["), host.endswith("]")
    if not host or not (port.isascii() and port.isdigit()) or bracketed[0] != bracketed[1]:
        # (int() reads "٣" as 3 and refuses "²"; "[::1:5000" lost its bracket: say so.)
        raise _Usage(f"address must be HOST:PORT, not {words[0]!r}")
    if not 0 < int(port) < 65536:
        raise _Usage(f"port must be 1-65535, not {port} (in {words[0]!r})")
    return {"host": host.strip("[]"), "port": int(port)}, words[1:]


def _arguments(items: list[str]) -> tuple[list[Any], dict[str, Any]]:
    """The ARGs: positional JSON values and name=value keywords."""
    positional: list[Any] = []
    keywords: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            if sep and key.isidentifier():
                keywords[key] = _parse_value(value)
            else:
                positional.append(_parse_value(item))
        except OverflowError as exc:
            shown = repr(item) if len(item) <= 60 else f"{item[:40]!r}... ({len(item)} characters)"
            raise _Usage(f"argument {shown}: {exc}") from None
    return positional, keywords


def call_command(args: argparse.Namespace) -> int:
    """Run ``call``: print the result (0), or the error (1; 2 for a usage error)."""
    plain: dict[str, Any] | None = None  # the server, once reached without TLS (for the hint below)
    try:
        server, (method, *items) = _server(args)
        positional, keywords = _arguments(items)
        server.update(client_tls(args))
        with _connect(server, args.timeout) as client:
            plain = None if "ssl" in server else server
            if args.notify:
                client.notify(method, *positional, **keywords)
                if plain is not None:
                    _turned_away(client, method, min(args.timeout, NOTIFY_WAIT))
                return 0
            result = client.call(method, *positional, **keywords)
    except _Usage as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RPCError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.data is not None:
            print(_error_data(exc.data), file=sys.stderr)
        # This library's TLS servers say so (their advice is for Python code); others
        # close or reset a plain connection, mostly without a byte: ask them for TLS.
        if (exc.code == -32000 and exc.message == TLS_REQUIRED) or (
            isinstance(exc, ConnectionLost) and plain is not None and speaks_tls(plain, args.timeout)
        ):
            print(
                "hint: the server speaks TLS: add --tls (to trust the system's CAs) or --cafile FILE", file=sys.stderr
            )
        return 1
    _print_result(result)
    return 0


def _turned_away(client: RPCClient, method: str, wait: float) -> None:
    """After a notification on a plain connection: raise what tells it was not taken, if anything does.

    Nothing answers a notification, so a server that turned the connection away
    (this library's on a TLS port, or at max_connections: a -32000 error, id null)
    or a TLS server (closes or resets; Java's sends an alert) left ``call --notify``
    exiting 0. So our side is shut down for writing, and what the server sends
    before it closes is read, up to ``wait`` seconds: its error is raised as an
    RPCError; a reset, or bytes that are no JSON-RPC message, as ConnectionLost (the
    caller then asks whether the server speaks TLS). A server that closes quietly
    has read the notification (it read past it to our end); one that stays silent
    is taken to have it.
    """
    link = client._link  # (the sync client reads only in its callers: nobody else reads now)
    sock = getattr(link.transport, "sock", None) if link is not None else None
    if type(sock) is not socket.socket:  # pragma: no cover - RPCClient connects a socket
        return
    data = b""
    broken: OSError | None = None
    deadline = time.monotonic() + wait
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError as exc:  # the server has reset the connection already: what it sent is still readable
        broken = exc
    try:
        while len(data) < _NOTIFY_READ and (broken or wait_readable(sock, deadline - time.monotonic())):
            chunk = sock.recv(_NOTIFY_READ, socket.MSG_DONTWAIT)
            if not chunk:
                break
            data += chunk
    except (BlockingIOError, InterruptedError):  # nothing (more) to read
        pass
    except OSError as exc:  # a reset
        broken = exc
    if broken is not None and not data:
        lost = ConnectionLost(f"the server reset the connection: the notification may not have arrived ({broken})")
        lost.method = method
        raise lost from broken
    if not data:
        return
    try:
        said = json.loads(data.split(b"\n", 1)[0])
    except (ValueError, RecursionError):  # (RecursionError: nested deeper than json can read)
        said = None
    error = said.get("error") if isinstance(said, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), int) and isinstance(error.get("message"), str):
        raise error_from_response(error["code"], error["message"], error.get("data"), method)
    if said is None:
        lost = ConnectionLost("the server answered the notification with bytes that are no JSON-RPC message")
        lost.method = method
        raise lost


def _connect(server: dict[str, Any], timeout: float) -> RPCClient:
    try:
        return RPCClient(**server, timeout=timeout)
    except ValueError as exc:  # (an empty --path)
        raise _Usage(str(exc)) from None


def _error_data(data: Any) -> str:
    """An error reply's ``data`` for stderr: JSON, a ``traceback`` member (``serve --debug``) as text."""
    if isinstance(data, dict) and isinstance(data.get("traceback"), str):
        rest = {key: value for key, value in data.items() if key != "traceback"}
        head = f"data: {json.dumps(rest, ensure_ascii=False, default=repr)}\n" if rest else ""
        text: str = data["traceback"]
        return head + text.rstrip("\n")
    return f"data: {json.dumps(data, ensure_ascii=False, default=repr)}"


def _print_result(result: Any) -> None:
    """Print ``result`` as JSON: as it is where stdout can encode it, else with ASCII escapes.

    A lone surrogate ("\\ud800", which JavaScript peers send) or any non-ASCII text on
    an ASCII stdout cannot be encoded; the call succeeded, so print it escaped.
    """
    try:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    except UnicodeEncodeError:  # raised before anything is written (one write per print)
        print(json.dumps(result, indent=2))
