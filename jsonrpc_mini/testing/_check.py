"""``check(host, port)``: probe any JSON-RPC 2.0 server over TCP and report.

The probes (in ``_probes``; the connection they use is ``_check_conn``'s) only
assume JSON-RPC 2.0 over a byte stream with one JSON value per message: they call
a method name that cannot exist to provoke -32601, send broken JSON, invalid
requests and batches, ids of every type, split and 1-byte writes, large payloads,
and connections that stall, close or reset part way through a message.
``python -m jsonrpc_mini.testing check HOST:PORT`` runs them from the command
line; with ``ssl=`` (``--tls``, ``--cafile``, ...) over TLS.
"""

from __future__ import annotations

import json
import random
import ssl as _ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from .._connect import check_port, check_server_hostname
from .._refuse import TLS_REQUIRED
from .._remote import LONGEST_WAIT, is_seconds
from .._tcp_bind import host_port
from ._check_conn import Address, Conn, NoReply, ProbeFailed

__all__ = ["CheckReport", "ProbeResult", "check"]

Status = Literal["pass", "fail", "warn"]


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The outcome of one probe: ``status`` is ``pass``, ``fail`` or ``warn``."""

    name: str
    status: Status
    detail: str


@dataclass(slots=True)
class CheckReport:
    """All probe results for one server; ``ok`` is False if any probe failed."""

    host: str
    port: int
    seed: int
    results: list[ProbeResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no probe failed (warnings allowed)."""
        return all(result.status != "fail" for result in self.results)

    def count(self, status: Status) -> int:
        """How many probes ended with ``status``."""
        return sum(1 for result in self.results if result.status == status)

    def render(self) -> str:
        """The human-readable report."""
        lines = [f"jsonrpc_mini check {host_port(self.host, self.port)} (seed {self.seed})"]
        width = max((len(result.name) for result in self.results), default=0)
        for result in self.results:
            lines.append(f"  {result.status.upper():4}  {result.name:{width}}  {result.detail}")
        warned = self.count("warn")
        warnings = f"{warned} warning" if warned == 1 else f"{warned} warnings"
        summary = f"{self.count('pass')} passed, {self.count('fail')} failed, {warnings}"
        if any(result.status == "fail" and result.name != "connect" for result in self.results):
            summary += f" (replay with --seed {self.seed})"  # (no probe ran after a connect failure)
        lines.append(summary)
        return "\n".join(lines)


@dataclass
class Probe:
    """What a probe function gets: how to connect, the seed's randomness and options."""

    address: Address
    timeout: float
    rng: random.Random
    echo_method: str | None
    missing: str  # a method name that surely does not exist
    opened: list[Conn] = field(default_factory=list)

    def connect(self) -> Conn:
        """A new connection to the server (closed when the probe ends)."""
        conn = Conn(self.address, self.timeout)
        self.opened.append(conn)
        return conn

    def chunks(self, total: int, max_chunk: int) -> list[int]:
        """Seeded chunk sizes of 1..max_chunk covering ``total`` bytes."""
        sizes: list[int] = []
        while sum(sizes) < total:
            sizes.append(self.rng.randint(1, max_chunk))
        return sizes


ProbeFn = Callable[[Probe], tuple[Status, str]]


def check_arguments(timeout: float, only: list[str] | None, known: list[str], *, port: object) -> None:
    """Raise unless ``port`` and ``timeout`` are usable and ``only`` names known probes.

    ``check`` with a misspelt name in ``only`` (or ``only=[]``) would run nothing and
    report ok: a gate that checks nothing, so it refuses rather than skips. ``port``
    must be a TCP port number, as for RPCClient (the OS would wrap 70000 to 4464).
    """
    check_port(port)
    if not (is_seconds(timeout) and 0 < timeout <= LONGEST_WAIT):
        raise ValueError(
            f"timeout must be a positive number of seconds up to {LONGEST_WAIT} (about 24 days), not {timeout!r}"
        )
    if only is None:
        return
    if isinstance(only, str) or not all(isinstance(name, str) for name in only):
        raise TypeError(f"only must be a list of probe names, not {only!r}")
    if not only:
        raise ValueError(f"only=[] runs no probe; leave it out to run them all, or name some of: {', '.join(known)}")
    unknown = sorted(set(only) - set(known))
    if unknown:
        raise ValueError(f"unknown probe {', '.join(map(repr, unknown))} in only; probes: {', '.join(known)}")


def _unfit(address: Address, timeout: float, missing: str) -> str | None:
    """Why the server cannot be checked (TLS only, or HTTP), else None; OSError if unreachable.

    A request for the method ``missing`` is sent first: a server answering in HTTP (a
    status line, or the bare HTML page of a server taking the request line for
    HTTP/0.9), over TLS too (HTTPS), would fail every probe for that one reason; so,
    without ``ssl``, would one answering with a TLS record (an alert), or with the
    plain -32000 error by which this library's servers on a TLS port say so. Other
    answers (a reply, silence, a close, a TLS error after the handshake) leave it to
    the probes.
    """
    conn = Conn(address, timeout)
    try:
        try:
            conn.send_json({"jsonrpc": "2.0", "method": missing, "id": 0})
            head = _first_bytes(conn)
        except _ssl.SSLError:  # (after the handshake: each probe meets it and says so)
            return None
    finally:
        conn.close()
    first = head.lstrip()
    if first[:5] == b"HTTP/" or first[:1] == b"<":
        shown = first.split(b"\n", 1)[0].rstrip().decode("utf-8", "replace")[:60]
        return (
            f"it answered with HTTP ({shown!r}), not JSON-RPC: the check speaks JSON-RPC 2.0 over a plain"
            " TCP (or TLS) byte stream, one JSON text after another, not over HTTP"
        )
    if address.ssl is not None:
        return None  # (the handshake succeeded: the TLS-only answers below cannot come)
    if _tls_record(head):
        return "it answered plain text with TLS (a TLS record): check it over TLS (--tls, or ssl= from Python)"
    try:
        answer = json.loads(head)
    except (ValueError, RecursionError):  # (not this library's answer)
        return None
    error = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(error, dict) and error.get("code") == -32000 and error.get("message") == TLS_REQUIRED:
        return f"it speaks TLS (its answer: {TLS_REQUIRED!r}): check it over TLS (--tls, or ssl= from Python)"
    return None


def _tls_record(data: bytes) -> bool:
    """Whether ``data`` begins a TLS record: an alert (21) or a handshake (22), major version 3."""
    return data[:1] in (b"\x15", b"\x16") and data[1:2] == b"\x03"


def _first_bytes(conn: Conn) -> bytes:
    """What the server sends first: up to its first newline, 5 bytes of a TLS record, the end, or the timeout."""
    deadline = time.monotonic() + conn.timeout
    data = b""
    while b"\n" not in data and not (_tls_record(data) and len(data) >= 5):
        left = deadline - time.monotonic()
        if left <= 0 or len(data) > 65536:
            break
        conn.sock.settimeout(left)
        try:
            chunk = conn.sock.recv(65536)
        except (TimeoutError, ConnectionError):
            break
        if not chunk:
            break
        data += chunk
    return data


def check(
    host: str,
    port: int,
    *,
    timeout: float = 5.0,
    echo_method: str | None = None,
    seed: int = 0,
    only: list[str] | None = None,
    ssl: _ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> CheckReport:
    """Run every probe against ``host:port`` and return the :class:`CheckReport`.

    ``echo_method`` names a method that returns its one argument (enables the
    large round-trip probes); ``only`` restricts the run to probes by name.
    ``ssl`` (a client-side ``ssl.SSLContext``) probes a TLS server, checking the
    certificate for ``server_hostname`` (default ``host``) as RPCClient does; the
    half-close probe then only warns (Python's ssl cannot half-close a connection).
    Raises ValueError for a ``port`` that is not an int from 0 to 65535, a
    ``timeout`` that is not a positive number of seconds (up to about 24 days),
    an unknown probe name in ``only`` or ``only=[]``, and ``server_hostname``
    without ``ssl`` (as both clients).

    Example::

        from jsonrpc_mini.testing import check
        report = check("127.0.0.1", 5000)
        print(report.render())
        assert report.ok
    """
    from ._probes import PROBES  # noqa: PLC0415 - the probes import this module's helpers

    check_arguments(timeout, only, [name for name, _ in PROBES], port=port)
    check_server_hostname(ssl, server_hostname)  # (it would be ignored: a plain-text check)
    report = CheckReport(host, port, seed)
    address = Address(host, port, ssl, server_hostname)
    missing = f"jsonrpc_mini_check_no_such_method_{seed}"
    try:
        why = _unfit(address, timeout, missing)
    except OSError as exc:
        report.results.append(ProbeResult("connect", "fail", f"cannot connect to {host_port(host, port)}: {exc}"))
        return report
    if why is not None:  # every probe would fail on it: one line says why
        report.results.append(ProbeResult("connect", "fail", f"cannot check {host_port(host, port)}: {why}"))
        return report
    for name, fn in PROBES:
        if only is not None and name not in only:
            continue
        probe = Probe(
            address,
            timeout,
            random.Random(f"{seed}/{name}"),
            echo_method,
            missing,
        )
        try:
            status, detail = fn(probe)
        except ProbeFailed as exc:
            status, detail = "fail", str(exc)
        except NoReply as exc:
            status, detail = "fail", str(exc)
        except OSError as exc:
            status, detail = "fail", f"connection error: {exc}"
        except Exception as exc:  # a reply no probe foresaw fails that probe, not the whole run
            status, detail = "fail", f"the probe could not handle a reply: {type(exc).__name__}: {exc}"
        finally:
            for conn in probe.opened:
                conn.close()
        if status == "fail":
            detail += f" [seed {seed}]"
        report.results.append(ProbeResult(name, status, detail))
    return report
